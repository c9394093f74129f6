//! What printer-sim's tests share: a printer in this process, the body of a job, a
//! callback receiver and an image host (real HTTP servers on port 0), and what the
//! printer and the receiver say afterwards.

// Each test file uses its own share of these.
#![allow(dead_code)]

use std::net::TcpListener;
use std::time::Duration;

use pixpress_domain::printer::{PrintedJob, PrinterJobStatus};
use pixpress_testkit::fixture::{Fixture, Reply};
use pixpress_testkit::http::{client, eventually};
use pixpress_testkit::printer::printed;
use serde_json::{json, Value};
use uuid::Uuid;

pub use pixpress_testkit::images::sha256_hex as sha256;

pub const SECRET: &str = pixpress_testkit::WEBHOOK_SECRET;
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A printer in this process, printing instantly unless `configure` says otherwise;
/// its base URL.
pub fn spawn(configure: impl FnOnce(&mut pixpress_printer_sim::Config)) -> String {
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

/// The callback receiver: takes every callback (204).
pub fn receiver() -> Fixture {
    Fixture::start(|_| Reply::bytes(204, "text/plain", Vec::new()))
}

/// `POST /jobs` body for job `id`: `copies` of the image at `image_url`, reported to
/// `{receiver}/print/callbacks/{id}`.
pub fn job(id: Uuid, image_url: &str, copies: i32, receiver: &Fixture) -> Value {
    json!({
        "correlation_id": id,
        "image_url": image_url,
        "copies": copies,
        "callback_url": format!("{}/print/callbacks/{id}", receiver.url),
    })
}

/// Posts `body` to the printer; its status and JSON body (`null` if none).
pub async fn submit(printer: &str, body: &Value) -> (u16, Value) {
    let res = client()
        .post(format!("{printer}/jobs"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// `GET /jobs/{id}`, which must answer 200.
pub async fn job_status(printer: &str, id: Uuid) -> PrinterJobStatus {
    let res = client()
        .get(format!("{printer}/jobs/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Job `id` as `GET /jobs` lists it once print-service took its final callback.
pub async fn reported(printer: &str, id: Uuid) -> PrintedJob {
    eventually("the job's final callback to be taken", PATIENCE, || async {
        printed(printer)
            .await
            .into_iter()
            .find(|j| j.correlation_id == id && j.reported)
    })
    .await
}

/// The callback bodies `receiver` got for job `id`, in order.
pub fn callbacks(receiver: &Fixture, id: Uuid) -> Vec<Value> {
    receiver
        .requests()
        .iter()
        .filter(|r| r.path == format!("/print/callbacks/{id}"))
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

/// Just the statuses of [`callbacks`].
pub fn statuses(receiver: &Fixture, id: Uuid) -> Vec<String> {
    callbacks(receiver, id)
        .iter()
        .map(|c| c["status"].as_str().unwrap().to_owned())
        .collect()
}

/// The `GET`s `host` received.
pub fn gets(host: &Fixture) -> usize {
    host.requests().iter().filter(|r| r.method == "GET").count()
}
