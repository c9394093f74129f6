//! printer-sim over real HTTP: deduplication, capacity, signed callbacks that are
//! retried until the print service takes them, and the status of one job by its
//! correlation id.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pixpress_domain::printer::{PrinterJobState, PrinterJobStatus};
use pixpress_kit::webhook::{unix_now, WebhookSecret};
use pixpress_testkit::fixture::{Fixture, Reply};
use pixpress_testkit::http::{client, eventually};
use pixpress_testkit::printer::printed;
use serde_json::{json, Value};
use uuid::Uuid;

const SECRET: &str = pixpress_testkit::WEBHOOK_SECRET;

fn spawn(configure: impl FnOnce(&mut pixpress_printer_sim::Config)) -> String {
    let mut config = pixpress_printer_sim::Config::local();
    config.printer_callback_secret = Some(SECRET.into());
    config.printer_delay_ms = 0;
    configure(&mut config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    pixpress_printer_sim::build(config, listener)
        .unwrap()
        .spawn()
        .0
}

fn job(id: Uuid, callback_url: &str) -> Value {
    json!({"correlation_id": id, "image_url": "http://images/x.jpg", "copies": 2, "callback_url": callback_url})
}

#[tokio::test]
async fn a_repeated_job_is_acknowledged_but_printed_once_with_signed_callbacks() {
    let receiver = Fixture::start(|_| Reply::bytes(204, "text/plain", Vec::new()));
    let printer = spawn(|_| {});
    let id = Uuid::new_v4();
    let callback = format!("{}/print/callbacks/{id}", receiver.url);
    for duplicate in [false, true] {
        let res = client()
            .post(format!("{printer}/jobs"))
            .json(&job(id, &callback))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        assert_eq!(res.json::<Value>().await.unwrap()["duplicate"], duplicate);
    }
    let done = eventually(
        "the job to be printed and reported",
        Duration::from_secs(30),
        || async { printed(&printer).await.into_iter().find(|j| j.reported) },
    )
    .await;
    assert_eq!(
        (done.received, done.printed, done.status.as_str()),
        (2, 1, "completed")
    );

    let calls = receiver.requests();
    let statuses: Vec<String> = calls
        .iter()
        .map(|c| {
            serde_json::from_slice::<Value>(&c.body).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(statuses, ["printing", "completed"]);
    let secret = WebhookSecret::parse(SECRET).unwrap();
    for call in &calls {
        assert_eq!(call.path, format!("/print/callbacks/{id}"));
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
    let printer = spawn(|_| {});
    let id = Uuid::new_v4();
    let callback = format!("{}/cb", receiver.url);
    client()
        .post(format!("{printer}/jobs"))
        .json(&job(id, &callback))
        .send()
        .await
        .unwrap();
    eventually(
        "the final callback to be taken",
        Duration::from_secs(30),
        || async { printed(&printer).await.into_iter().find(|j| j.reported) },
    )
    .await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        5,
        "3 refused + printing + completed"
    );
}

#[tokio::test]
async fn a_full_printer_answers_503_and_bad_jobs_400() {
    let receiver = Fixture::start(|_| Reply::bytes(204, "text/plain", Vec::new()));
    let printer = spawn(|c| {
        c.printer_capacity = 1;
        c.printer_delay_ms = 2000;
    });
    let cb = format!("{}/cb", receiver.url);
    let first = client()
        .post(format!("{printer}/jobs"))
        .json(&job(Uuid::new_v4(), &cb))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 202);
    let second = client()
        .post(format!("{printer}/jobs"))
        .json(&job(Uuid::new_v4(), &cb))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 503);
    assert_eq!(second.headers()["retry-after"], "1");
    let bad = client()
        .post(format!("{printer}/jobs"))
        .json(&json!({"correlation_id": Uuid::new_v4(), "image_url": "ftp://x", "copies": 0, "callback_url": cb}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn at_a_fail_rate_of_one_every_job_fails_with_a_detail() {
    let receiver = Fixture::start(|_| Reply::bytes(204, "text/plain", Vec::new()));
    let printer = spawn(|c| c.printer_fail_rate = 1.0);
    let cb = format!("{}/cb", receiver.url);
    client()
        .post(format!("{printer}/jobs"))
        .json(&job(Uuid::new_v4(), &cb))
        .send()
        .await
        .unwrap();
    let done = eventually(
        "the failure to be reported",
        Duration::from_secs(30),
        || async { printed(&printer).await.into_iter().find(|j| j.reported) },
    )
    .await;
    assert_eq!(done.status, PrinterJobState::Failed);
    let last: Value = serde_json::from_slice(&receiver.requests().last().unwrap().body).unwrap();
    assert_eq!(last, json!({"status": "failed", "detail": "paper jam"}));
    let status = job_status(&printer, done.correlation_id).await;
    assert_eq!(status.error.as_deref(), Some("paper jam"));
}

async fn job_status(printer: &str, id: Uuid) -> PrinterJobStatus {
    let res = client()
        .get(format!("{printer}/jobs/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn a_job_is_asked_after_by_its_correlation_id_through_its_life() {
    let receiver = Fixture::start(|_| Reply::bytes(204, "text/plain", Vec::new()));
    let printer = spawn(|c| c.printer_delay_ms = 300);
    let id = Uuid::new_v4();
    let cb = format!("{}/cb", receiver.url);
    for _ in 0..2 {
        client()
            .post(format!("{printer}/jobs"))
            .json(&job(id, &cb))
            .send()
            .await
            .unwrap();
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

    let done = eventually("the job to be printed", Duration::from_secs(30), || async {
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
            // printer-sim fetches no images.
            image_bytes: None,
            image_sha256: None,
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
