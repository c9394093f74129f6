//! The kit's HTTP plumbing, exercised over real HTTP on a port-0 server: every
//! error is problem+json, request ids are echoed, metrics use route patterns.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use pixpress_kit::health::Readiness;
use pixpress_kit::metrics::http_metrics;
use pixpress_kit::problem::resource;
use pixpress_kit::server::{serve, HttpSettings};
use pixpress_testkit::http::client;
use serde_json::Value;

#[derive(serde::Deserialize)]
struct Item {
    #[allow(dead_code)]
    name: String,
}

async fn create(_item: web::Json<Item>) -> HttpResponse {
    HttpResponse::Created().finish()
}

async fn get(path: web::Path<u32>) -> HttpResponse {
    HttpResponse::Ok().json(path.into_inner())
}

/// Starts a kit server with two routes and returns its base URL.
fn spawn_app(readiness: Readiness) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let settings = HttpSettings {
        metrics: http_metrics("test"),
        readiness,
        openapi: pixpress_kit::openapi::document("test", utoipa::openapi::OpenApi::default()),
        shutdown_grace: Duration::from_secs(1),
        json_limit: 1024,
        workers: 1,
        otlp: None,
    };
    let server = serve(listener, settings, None, |cfg| {
        cfg.service(resource("/items").route(web::post().to(create)))
            .service(resource("/items/{id}").route(web::get().to(get)));
    })
    .unwrap();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}")
}

async fn assert_problem(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status(), status);
    assert_eq!(
        res.headers()["content-type"],
        "application/problem+json",
        "status {status} must be problem+json"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string() && body["detail"].is_string() && body["type"].is_string());
    body
}

#[tokio::test]
async fn malformed_json_is_a_problem_400() {
    let url = spawn_app(Readiness::new());
    let res = client()
        .post(format!("{url}/items"))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let body = assert_problem(res, 400).await;
    assert!(body["detail"].as_str().unwrap().contains("invalid JSON"));
}

#[tokio::test]
async fn oversized_and_non_json_bodies_are_413_and_415() {
    let url = spawn_app(Readiness::new());
    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(2000));
    let res = client()
        .post(format!("{url}/items"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_problem(res, 413).await;
    let res = client()
        .post(format!("{url}/items"))
        .header("content-type", "text/plain")
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_problem(res, 415).await;
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_bad_paths_are_problems() {
    let url = spawn_app(Readiness::new());
    let c = client();
    assert_problem(c.get(format!("{url}/nowhere")).send().await.unwrap(), 404).await;
    assert_problem(c.delete(format!("{url}/items")).send().await.unwrap(), 405).await;
    assert_problem(c.post(format!("{url}/health")).send().await.unwrap(), 405).await;
    assert_problem(
        c.get(format!("{url}/items/notanumber"))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
}

#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let url = spawn_app(Readiness::new());
    let c = client();
    let res = c
        .get(format!("{url}/health"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    let res = c.get(format!("{url}/health")).send().await.unwrap();
    let generated = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(generated.len() >= 16);
    // A value that could forge log lines is replaced, not echoed.
    let res = c
        .get(format!("{url}/health"))
        .header("x-request-id", "bad id\twith tabs")
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], "bad id\twith tabs");
}

#[tokio::test]
async fn metrics_are_labelled_by_route_pattern() {
    let url = spawn_app(Readiness::new());
    let c = client();
    for id in [1, 2, 3] {
        c.get(format!("{url}/items/{id}")).send().await.unwrap();
    }
    c.get(format!("{url}/random/junk/path"))
        .send()
        .await
        .unwrap();
    let text = pixpress_testkit::metrics::scrape(&c, &url).await;
    let endpoints: Vec<String> = pixpress_testkit::metrics::samples(&text)
        .into_iter()
        .filter_map(|s| s.label("endpoint").map(str::to_owned))
        .collect();
    assert!(endpoints.iter().any(|e| e == "/items/{id}"), "{text}");
    assert!(!endpoints.iter().any(|e| e == "/items/1"), "{text}");
    assert!(!text.contains("/random/junk/path"));
}

#[tokio::test]
async fn ready_reports_each_failing_check() {
    let readiness = Readiness::new()
        .with_check("always", || async { Ok::<(), String>(()) })
        .with_check("backend", || async { Err("refused".to_owned()) });
    let url = spawn_app(readiness);
    let res = client().get(format!("{url}/ready")).send().await.unwrap();
    let body = assert_problem(res, 503).await;
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("backend: refused"));
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_head_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = spawn_app(Readiness::new());
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Half a request head, then silence (a slowloris client).
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "the server kept the half-open request past 15 s"
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
}
