//! What the gateway's tests share: a gateway on port 0 in front of real
//! ippeveprinters, an image host and a callback receiver (real HTTP servers), and
//! reading what the gateway and print-service's side saw.

#![allow(dead_code)]

use std::net::TcpListener;
use std::time::Duration;

use image::{DynamicImage, ImageFormat};
use pixpress_domain::printer::{PrinterJobState, PrinterJobStatus};
use pixpress_ipp_gateway::{Config, PrinterList};
use pixpress_kit::webhook::{unix_now, WebhookSecret};
use pixpress_testkit::fixture::{Fixture, Reply};
use pixpress_testkit::http::{client, eventually};
use pixpress_testkit::images::{encode, two_tone};
use serde_json::{json, Value};
use uuid::Uuid;

pub const SECRET: &str = pixpress_testkit::WEBHOOK_SECRET;
/// Long enough for a printer restart and a breaker cool-down.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A JPEG photo and a PNG, real encoded files.
pub fn jpeg() -> Vec<u8> {
    encode(
        &DynamicImage::ImageRgb8(two_tone(64, 48)),
        ImageFormat::Jpeg,
    )
}

pub fn png() -> Vec<u8> {
    encode(&DynamicImage::ImageRgb8(two_tone(32, 32)), ImageFormat::Png)
}

/// Serves `bytes` at `/image` (any path, really) as `content_type`.
pub fn image_host(bytes: Vec<u8>, content_type: &'static str) -> Fixture {
    Fixture::start(move |_| Reply::bytes(200, content_type, bytes.clone()))
}

/// print-service's callback route, taking every callback.
pub fn callback_receiver() -> Fixture {
    Fixture::start(|_| Reply::bytes(204, "text/plain", Vec::new()))
}

/// `printers` as `name=uri` pairs, e.g. `[("office", &printer.uri)]`.
pub fn printer_list(printers: &[(&str, &str)]) -> PrinterList {
    let text: Vec<String> = printers.iter().map(|(n, u)| format!("{n}={u}")).collect();
    text.join(",").parse().expect("a valid printer list")
}

/// A gateway on a loopback port 0 polling every 100 ms; its URL.
pub fn spawn_gateway(printers: &[(&str, &str)], configure: impl FnOnce(&mut Config)) -> String {
    let mut config = Config::local(printer_list(printers));
    config.printer_callback_secret = Some(SECRET.into());
    config.ipp_poll_ms = 100;
    configure(&mut config);
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    pixpress_ipp_gateway::build(config, listener)
        .expect("the gateway starts")
        .spawn()
        .0
}

/// The printer protocol's job body.
pub fn job(id: Uuid, image_url: &str, copies: i32, callbacks: &Fixture) -> Value {
    json!({
        "correlation_id": id,
        "image_url": image_url,
        "copies": copies,
        "callback_url": format!("{}/print/callbacks/{id}", callbacks.url),
    })
}

/// POSTs `job` to printer `printer` of the gateway; its status and body.
pub async fn submit(gateway: &str, printer: &str, job: &Value) -> (u16, Value) {
    let res = client()
        .post(format!("{gateway}/printers/{printer}/jobs"))
        .json(job)
        .send()
        .await
        .expect("POST a job");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub async fn status(gateway: &str, printer: &str, id: Uuid) -> Option<PrinterJobStatus> {
    let res = client()
        .get(format!("{gateway}/printers/{printer}/jobs/{id}"))
        .send()
        .await
        .ok()?;
    if res.status() != 200 {
        return None;
    }
    res.json().await.ok()
}

/// Waits until the job reaches `state`; its status then.
pub async fn until_state(
    gateway: &str,
    printer: &str,
    id: Uuid,
    state: PrinterJobState,
) -> PrinterJobStatus {
    eventually(&format!("job {id} to be {state}"), PATIENCE, || async {
        status(gateway, printer, id)
            .await
            .filter(|s| s.status == state)
    })
    .await
}

/// The callbacks the receiver got for job `id`, as `(status, detail)`, each checked
/// to carry a valid Standard Webhooks signature.
pub fn callbacks_of(receiver: &Fixture, id: Uuid) -> Vec<(String, Option<String>)> {
    let secret = WebhookSecret::parse(SECRET).expect("the test secret");
    receiver
        .requests()
        .into_iter()
        .filter(|r| r.path == format!("/print/callbacks/{id}"))
        .map(|r| {
            secret
                .verify(
                    r.header("webhook-id"),
                    r.header("webhook-timestamp"),
                    r.header("webhook-signature"),
                    &r.body,
                    unix_now(),
                )
                .expect("a valid Standard Webhooks signature");
            let body: Value = serde_json::from_slice(&r.body).expect("a JSON callback");
            (
                body["status"].as_str().unwrap_or_default().to_owned(),
                body["detail"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// Waits until the receiver got a `status` callback for job `id`.
pub async fn until_callback(receiver: &Fixture, id: Uuid, status: &str) {
    eventually(
        &format!("a {status} callback for {id}"),
        PATIENCE,
        || async {
            callbacks_of(receiver, id)
                .iter()
                .any(|(s, _)| s == status)
                .then_some(())
        },
    )
    .await;
}

/// Lowercase hex SHA-256, as printers report what they fetched.
#[allow(unused_imports)] // Not every test file checks digests.
pub use pixpress_testkit::images::sha256_hex as sha256;

/// Waits until the gateway at `url` answers `/ready` with 200: its journal is open
/// and it takes jobs (it serves `/health` before that).
pub async fn until_ready(url: &str) {
    let ready = format!("{url}/ready");
    eventually(
        "the gateway to be ready",
        Duration::from_secs(30),
        || async {
            let res = client().get(&ready).send().await.ok()?;
            (res.status() == 200).then_some(())
        },
    )
    .await;
}
