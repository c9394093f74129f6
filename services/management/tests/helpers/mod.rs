//! The management-api under test: the real service on port 0, with a scripted
//! download-service (or a closed port) in place of the real one, and the signed
//! download reports download-service would send.

#![allow(dead_code)]

use std::net::TcpListener;

use pixpress_kit::webhook::WebhookSecret;
use pixpress_testkit::auth;
use serde_json::{json, Value};
use uuid::Uuid;

/// The Standard Webhooks secret management-api and "download-service" share in tests.
pub const SECRET: &str = pixpress_testkit::WEBHOOK_SECRET;

/// A loopback URL nothing listens on: a download-service that is down.
pub fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// Starts a real management-api and returns its base URL. Unless `configure` says
/// otherwise it shares [`SECRET`], calls back on its own address, and asks a
/// download-service that is down (so pending images stay pending for a minute).
pub fn spawn(configure: impl FnOnce(&mut pixpress_management::Config)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut config = pixpress_management::Config::local();
    config.management_public_url = url.clone();
    config.download_url = closed_port_url();
    config.download_callback_secret = Some(SECRET.into());
    config.auth = auth::args();
    configure(&mut config);
    pixpress_management::build(config, listener)
        .unwrap()
        .spawn()
        .0
}

pub async fn create(url: &str, user: i64, body: Value) -> reqwest::Response {
    client()
        .post(format!("{url}/users/{user}/images"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Creates a pending image of `user` and returns it.
pub async fn create_pending(url: &str, user: i64, image_url: &str) -> Value {
    let res = create(url, user, json!({ "url": image_url })).await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

pub async fn image(url: &str, user: i64, id: &Value) -> Value {
    let res = client()
        .get(format!("{url}/users/{user}/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

pub async fn lookup(url: &str, user: i64, id: &Value) -> reqwest::Response {
    client()
        .get(format!("{url}/lookup?user_id={user}&file_id={id}"))
        .send()
        .await
        .unwrap()
}

/// A finished download task as download-service reports it.
pub fn task(id: Uuid, url: &str, state: &str, error: Option<&str>) -> Value {
    let completed = state == "completed";
    json!({
        "id": id,
        "url": url,
        "state": state,
        "error": error,
        "content_type": completed.then_some("image/jpeg"),
        "width": completed.then_some(640),
        "height": completed.then_some(480),
        "bytes": completed.then_some(12345),
        "original_key": completed.then(|| format!("originals/{id}")),
        "thumbnail_key": completed.then(|| format!("thumbnails/{id}.jpg")),
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-01T00:00:05Z",
    })
}

/// POSTs `body` to image `image_id`'s download callback with `headers`.
pub async fn callback_with(
    url: &str,
    image_id: &Value,
    body: &[u8],
    headers: &[(&str, String)],
) -> reqwest::Response {
    let mut req = client()
        .post(format!("{url}/internal/images/{image_id}/download"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    req.send().await.unwrap()
}

/// POSTs `body` to image `image_id`'s download callback, signed with [`SECRET`].
pub async fn signed_callback(url: &str, image_id: &Value, body: &Value) -> reqwest::Response {
    let body = body.to_string();
    let headers = WebhookSecret::parse(SECRET)
        .unwrap()
        .headers(body.as_bytes());
    callback_with(url, image_id, body.as_bytes(), &headers).await
}

pub async fn metrics(url: &str) -> String {
    client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of counter `name` for `outcome` in management-api's metrics.
pub async fn outcome_count(url: &str, name: &str, outcome: &str) -> Option<f64> {
    pixpress_testkit::metrics::value(&metrics(url).await, name, &[("outcome", outcome)])
}

/// Asserts a problem+json answer with `status`.
pub async fn assert_problem(res: reqwest::Response, status: u16) {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], status);
}

/// A client acting as an admin (these tests invent many users).
pub fn client() -> reqwest::Client {
    auth::client_as(&auth::admin())
}
