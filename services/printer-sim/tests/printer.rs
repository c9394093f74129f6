//! printer-sim over real HTTP: deduplication, capacity, signed callbacks that are
//! retried until the print service takes them, and the status of one job by its
//! correlation id. Every job's image is served by a real image host.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pixpress_domain::printer::{PrinterJobState, PrinterJobStatus};
use pixpress_kit::webhook::{unix_now, WebhookSecret};
use pixpress_testkit::fixture::{Fixture, Reply};
use pixpress_testkit::http::{client, eventually};
use pixpress_testkit::printer::{image_host, photo};
use serde_json::json;
use uuid::Uuid;

use support::{
    gets, job, job_status, receiver, reported, sha256, spawn, statuses, submit, PATIENCE, SECRET,
};

#[tokio::test]
async fn a_repeated_job_is_acknowledged_but_printed_once_with_signed_callbacks() {
    let receiver = receiver();
    let images = image_host(photo());
    let printer = spawn(|_| {});
    let id = Uuid::new_v4();
    let body = job(id, &format!("{}/photo.jpg", images.url), 2, &receiver);
    for duplicate in [false, true] {
        let (status, answer) = submit(&printer, &body).await;
        assert_eq!((status, &answer["duplicate"]), (202, &json!(duplicate)));
    }
    let done = reported(&printer, id).await;
    assert_eq!(
        (done.received, done.printed, done.status.as_str()),
        (2, 1, "completed")
    );
    assert_eq!(
        gets(&images),
        1,
        "the image is fetched once, for the one print"
    );

    assert_eq!(statuses(&receiver, id), ["printing", "completed"]);
    assert_eq!(receiver.requests().len(), 2, "no callback elsewhere");
    let secret = WebhookSecret::parse(SECRET).unwrap();
    for call in receiver.requests() {
        secret
            .verify(
                call.header("webhook-id"),
                call.header("webhook-timestamp"),
                call.header("webhook-signature"),
                &call.body,
                unix_now(),
            )
            .expect("a valid Standard Webhooks signature");
    }
}

#[tokio::test]
async fn callbacks_are_retried_while_the_print_service_fails() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    // Down for the first three calls, then fine.
    let receiver = Fixture::start(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) < 3 {
            Reply::bytes(503, "text/plain", Vec::new())
        } else {
            Reply::bytes(204, "text/plain", Vec::new())
        }
    });
    let images = image_host(photo());
    let printer = spawn(|_| {});
    let id = Uuid::new_v4();
    submit(
        &printer,
        &job(id, &format!("{}/photo.jpg", images.url), 1, &receiver),
    )
    .await;
    reported(&printer, id).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        5,
        "3 refused + printing + completed"
    );
}

#[tokio::test]
async fn a_full_printer_answers_503_and_bad_jobs_400() {
    let receiver = receiver();
    let images = image_host(photo());
    let image_url = format!("{}/photo.jpg", images.url);
    let printer = spawn(|c| {
        c.printer_capacity = 1;
        c.printer_delay_ms = 2000;
    });
    let (first, _) = submit(&printer, &job(Uuid::new_v4(), &image_url, 1, &receiver)).await;
    assert_eq!(first, 202);
    let second = client()
        .post(format!("{printer}/jobs"))
        .json(&job(Uuid::new_v4(), &image_url, 1, &receiver))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 503);
    assert_eq!(second.headers()["retry-after"], "1");
    let bad = json!({
        "correlation_id": Uuid::new_v4(),
        "image_url": "ftp://x",
        "copies": 0,
        "callback_url": format!("{}/cb", receiver.url),
    });
    assert_eq!(submit(&printer, &bad).await.0, 400);
}

#[tokio::test]
async fn at_a_fail_rate_of_one_every_job_fails_with_a_detail() {
    let receiver = receiver();
    let images = image_host(photo());
    let printer = spawn(|c| c.printer_fail_rate = 1.0);
    let id = Uuid::new_v4();
    submit(
        &printer,
        &job(id, &format!("{}/photo.jpg", images.url), 1, &receiver),
    )
    .await;
    let done = reported(&printer, id).await;
    assert_eq!(done.status, PrinterJobState::Failed);
    let last = support::callbacks(&receiver, id).pop().unwrap();
    assert_eq!(last, json!({"status": "failed", "detail": "paper jam"}));
    let status = job_status(&printer, id).await;
    assert_eq!(status.error.as_deref(), Some("paper jam"));
}

#[tokio::test]
async fn a_job_is_asked_after_by_its_correlation_id_through_its_life() {
    let receiver = receiver();
    let image = photo();
    let images = image_host(image.clone());
    let printer = spawn(|c| c.printer_delay_ms = 300);
    let id = Uuid::new_v4();
    let body = job(id, &format!("{}/photo.jpg", images.url), 2, &receiver);
    for _ in 0..2 {
        submit(&printer, &body).await;
    }
    let printing = job_status(&printer, id).await;
    assert!(
        matches!(
            printing.status,
            PrinterJobState::Accepted | PrinterJobState::Printing
        ),
        "{printing:?}"
    );
    assert_eq!((printing.received, printing.printed), (2, 0));

    let done = eventually("the job to be printed", PATIENCE, || async {
        let status = job_status(&printer, id).await;
        (status.status == PrinterJobState::Completed).then_some(status)
    })
    .await;
    assert_eq!(
        done,
        PrinterJobStatus {
            correlation_id: id,
            status: PrinterJobState::Completed,
            received: 2,
            printed: 1,
            image_bytes: Some(image.len() as u64),
            image_sha256: Some(sha256(&image)),
            error: None,
        }
    );
}

#[tokio::test]
async fn a_job_the_printer_never_received_is_404() {
    let printer = spawn(|_| {});
    for id in [Uuid::new_v4().to_string(), "not-a-uuid".to_owned()] {
        let res = client()
            .get(format!("{printer}/jobs/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{id}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
}
