//! A job printed through the gateway on a real IPP printer (ippeveprinter): the
//! document the printer spooled is the image byte for byte, with the copies asked
//! for, each job printed once however often it is sent, and every way a job cannot
//! print ends `failed` with a reason print-service can show.

mod helpers;

use std::time::Duration;

use helpers::*;
use pixpress_domain::printer::PrinterJobState;
use pixpress_testkit::http::{client, AnswerJson};
use pixpress_testkit::ipp::{Ippeveprinter, PrinterOptions};
use serde_json::Value;
use uuid::Uuid;

#[tokio::test]
async fn a_job_reaches_the_printer_byte_for_byte_and_is_reported_printing_then_completed() {
    let printer = Ippeveprinter::start(PrinterOptions {
        print_delay: Duration::from_millis(1500),
        ..PrinterOptions::default()
    })
    .await;
    let image = jpeg();
    let host = image_host(image.clone(), "image/jpeg");
    let receiver = callback_receiver();
    let gateway = spawn_gateway(&[("office", &printer.uri)], |_| {});
    let id = Uuid::new_v4();

    let (status, body) = submit(
        &gateway,
        "office",
        &job(id, &format!("{}/photo.jpg", host.url), 1, &receiver),
    )
    .await;
    assert_eq!(
        (status, &body["duplicate"]),
        (202, &Value::Bool(false)),
        "{body}"
    );

    let done = until_state(&gateway, "office", id, PrinterJobState::Completed).await;
    assert_eq!(done.image_bytes, Some(image.len() as u64));
    assert_eq!(done.image_sha256.as_deref(), Some(sha256(&image).as_str()));
    assert_eq!((done.received, done.printed, done.error), (1, 1, None));

    let spooled = printer.spooled();
    assert_eq!(spooled.len(), 1, "{spooled:?}");
    assert_eq!(spooled[0].name, id.to_string());
    assert!(
        spooled[0].bytes == image,
        "the spooled document is not the image"
    );
    let jobs = printer.jobs().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(
        (
            jobs[0].name.as_str(),
            jobs[0].state.as_str(),
            jobs[0].user.as_str()
        ),
        (id.to_string().as_str(), "completed", "pixpress")
    );

    until_callback(&receiver, id, "completed").await;
    assert_eq!(
        callbacks_of(&receiver, id),
        [
            ("printing".to_owned(), None),
            ("completed".to_owned(), None)
        ]
    );
}

#[tokio::test]
async fn a_png_is_sent_as_png_with_the_copies_asked_for() {
    let printer = Ippeveprinter::start_default().await;
    let image = png();
    let host = image_host(image.clone(), "image/png");
    let receiver = callback_receiver();
    let gateway = spawn_gateway(&[("office", &printer.uri)], |_| {});
    let id = Uuid::new_v4();

    submit(&gateway, "office", &job(id, &host.url, 3, &receiver)).await;
    until_state(&gateway, "office", id, PrinterJobState::Completed).await;

    let jobs = printer.jobs().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].copies, Some(3));
    let spooled = printer.spooled();
    assert!(
        spooled[0].path.extension().is_some_and(|e| e == "png"),
        "{spooled:?}"
    );
    assert!(spooled[0].bytes == image);
}

#[tokio::test]
async fn a_job_sent_twice_is_acknowledged_twice_and_printed_once() {
    let printer = Ippeveprinter::start_default().await;
    let host = image_host(jpeg(), "image/jpeg");
    let receiver = callback_receiver();
    let gateway = spawn_gateway(&[("office", &printer.uri)], |_| {});
    let id = Uuid::new_v4();
    let body = job(id, &host.url, 1, &receiver);

    for duplicate in [false, true] {
        let (status, answer) = submit(&gateway, "office", &body).await;
        assert_eq!(
            (status, &answer["duplicate"]),
            (202, &Value::Bool(duplicate))
        );
    }
    let done = until_state(&gateway, "office", id, PrinterJobState::Completed).await;
    assert_eq!((done.received, done.printed), (2, 1));
    // Sent again after it printed: still a duplicate, never sent to the printer.
    let (_, answer) = submit(&gateway, "office", &body).await;
    assert_eq!(answer["duplicate"], true);
    until_callback(&receiver, id, "completed").await;
    assert_eq!(printer.jobs().await.len(), 1);
    assert_eq!(printer.spooled().len(), 1);
}

#[tokio::test]
async fn a_printer_that_does_not_take_the_images_format_fails_the_job_saying_what_it_takes() {
    let printer = Ippeveprinter::start(PrinterOptions {
        formats: "image/pwg-raster".into(),
        ..PrinterOptions::default()
    })
    .await;
    let host = image_host(jpeg(), "image/jpeg");
    let receiver = callback_receiver();
    let gateway = spawn_gateway(&[("office", &printer.uri)], |_| {});
    let id = Uuid::new_v4();

    submit(&gateway, "office", &job(id, &host.url, 1, &receiver)).await;
    let failed = until_state(&gateway, "office", id, PrinterJobState::Failed).await;
    let error = failed.error.expect("a reason");
    assert!(
        error.starts_with("format_unsupported: printer accepts "),
        "{error}"
    );
    assert!(error.contains("image/pwg-raster"), "{error}");
    until_callback(&receiver, id, "failed").await;
    assert_eq!(
        callbacks_of(&receiver, id),
        [("failed".to_owned(), Some(error))]
    );
    assert!(
        printer.jobs().await.is_empty(),
        "nothing was sent to the printer"
    );
}

#[tokio::test]
async fn an_image_that_cannot_be_fetched_or_is_not_jpeg_or_png_fails_the_job() {
    let printer = Ippeveprinter::start_default().await;
    let gif = image_host(b"GIF89a not really".to_vec(), "image/gif");
    let missing = pixpress_testkit::fixture::Fixture::start(|_| {
        pixpress_testkit::fixture::Reply::bytes(404, "text/plain", Vec::new())
    });
    let closed = format!(
        "http://127.0.0.1:{}/x.jpg",
        pixpress_testkit::http::free_port()
    );
    let receiver = callback_receiver();
    let gateway = spawn_gateway(&[("office", &printer.uri)], |_| {});

    for (url, reason) in [
        (format!("{}/x.jpg", missing.url), "image_unreachable"),
        (closed, "image_unreachable"),
        (gif.url.clone(), "format_unsupported"),
    ] {
        let id = Uuid::new_v4();
        submit(&gateway, "office", &job(id, &url, 1, &receiver)).await;
        let failed = until_state(&gateway, "office", id, PrinterJobState::Failed).await;
        assert_eq!(failed.error.as_deref(), Some(reason), "{url}");
        until_callback(&receiver, id, "failed").await;
    }
    assert!(printer.jobs().await.is_empty());
}

#[tokio::test]
async fn unknown_printers_and_jobs_are_404_problems() {
    let printer = Ippeveprinter::start_default().await;
    let receiver = callback_receiver();
    let gateway = spawn_gateway(&[("office", &printer.uri)], |_| {});
    let id = Uuid::new_v4();

    let (status, body) = submit(
        &gateway,
        "basement",
        &job(id, "http://x/y.jpg", 1, &receiver),
    )
    .await;
    assert_eq!(status, 404);
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with("printer-not-found"),
        "{body}"
    );
    for path in [format!("office/jobs/{id}"), format!("basement/jobs/{id}")] {
        let res = client()
            .get(format!("{gateway}/printers/{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
}

#[tokio::test]
async fn the_printer_list_shows_each_printer_as_it_answers() {
    let printer = Ippeveprinter::start_default().await;
    let away = format!(
        "ipp://127.0.0.1:{}/ipp/print",
        pixpress_testkit::http::free_port()
    );
    let gateway = spawn_gateway(&[("office", &printer.uri), ("away", &away)], |_| {});

    let list: Value = client()
        .get(format!("{gateway}/printers"))
        .answer_json()
        .await;
    let office = &list[0];
    assert_eq!(
        (
            &office["name"],
            &office["reachable"],
            &office["printer_state"],
            &office["accepting_jobs"]
        ),
        (
            &Value::from("office"),
            &Value::Bool(true),
            &Value::from("idle"),
            &Value::Bool(true)
        ),
        "{list}"
    );
    let formats: Vec<&str> = office["document_formats"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        formats.contains(&"image/jpeg") && formats.contains(&"image/png"),
        "{formats:?}"
    );
    assert_eq!(
        (&list[1]["name"], &list[1]["reachable"]),
        (&Value::from("away"), &Value::Bool(false))
    );
    assert!(list[1]["error"].is_string());
}
