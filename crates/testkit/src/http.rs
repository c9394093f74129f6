//! HTTP helpers for tests: a client and polling until a condition holds.

use std::future::Future;
use std::time::{Duration, Instant};

/// A request's answer read as JSON, whatever its status: `request.answer_json().await`
/// for the `send().await.unwrap().json().await.unwrap()` of a test.
pub trait AnswerJson {
    fn answer_json<T: serde::de::DeserializeOwned>(self) -> impl Future<Output = T>;
}

impl AnswerJson for reqwest::RequestBuilder {
    async fn answer_json<T: serde::de::DeserializeOwned>(self) -> T {
        let answer = self.send().await.expect("the request is answered");
        answer
            .json()
            .await
            .expect("the answer is JSON of the expected shape")
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a test HTTP client")
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `limit`
/// saying what was awaited. For state reached asynchronously (background work),
/// never as a speed assertion: give generous limits.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_every(what, limit, Duration::from_millis(20), check).await
}

/// [`eventually`], polling every `interval`.
pub async fn eventually_every<T, F, Fut>(
    what: &str,
    limit: Duration,
    interval: Duration,
    mut check: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(interval).await;
    }
}

/// A port that was free a moment ago (for binaries that must be given one).
pub fn free_port() -> u16 {
    pixpress_embedded::postgres::free_port().expect("a free port")
}

/// Asserts what every pixpress service serves: `/health` 200, `/metrics` in the
/// Prometheus text format with the HTTP request counter, and an OpenAPI 3 document
/// that lists the operational routes.
pub async fn assert_operational_routes(base_url: &str) {
    let c = client();
    let health = c
        .get(format!("{base_url}/health"))
        .send()
        .await
        .expect("GET /health");
    assert_eq!(health.status(), 200);

    let text = crate::metrics::scrape(&c, base_url).await;
    assert!(
        text.contains("# TYPE pixpress_http_requests_total counter"),
        "no HTTP request counter in:\n{text}"
    );
    assert!(text.contains(r#"endpoint="/health""#), "{text}");

    let doc: serde_json::Value = c
        .get(format!("{base_url}/openapi.json"))
        .send()
        .await
        .expect("GET /openapi.json")
        .json()
        .await
        .expect("an OpenAPI JSON document");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{doc}"
    );
    for path in ["/health", "/ready", "/metrics", "/openapi.json"] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
}
