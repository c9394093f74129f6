//! The print-service under test: the real service on port 0 with its own fresh
//! database, next to a real management-api (or a scripted fixture in its place).

#![allow(dead_code)]

use std::net::TcpListener;

use pixpress_testkit::http::client;
use pixpress_testkit::TestDatabase;
use serde_json::{json, Value};

pub struct TestApp {
    pub url: String,
    pub management_url: String,
    pub db: TestDatabase,
    pub http: reqwest::Client,
}

/// Starts a real management-api with `configure` applied; returns its base URL.
pub fn spawn_management(configure: impl FnOnce(&mut pixpress_management::Config)) -> String {
    let mut config = pixpress_management::Config::local();
    configure(&mut config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    pixpress_management::build(config, listener)
        .unwrap()
        .spawn()
        .0
}

impl TestApp {
    /// print-service against a real management-api with default settings.
    pub async fn spawn() -> Self {
        let management_url = spawn_management(|_| {});
        Self::spawn_with(management_url, |_| {}).await
    }

    /// print-service against the management API at `management_url`.
    pub async fn spawn_with(
        management_url: String,
        configure: impl FnOnce(&mut pixpress_print::Config),
    ) -> Self {
        let db = TestDatabase::new().await;
        let mut config = pixpress_print::Config::with_database(&db.url);
        config.management_url = management_url.clone();
        configure(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (url, _) = pixpress_print::build(config, listener).unwrap().spawn();
        Self {
            url,
            management_url,
            db,
            http: client(),
        }
    }

    /// Records an image for `user_id` in management-api, ready to print; returns
    /// its file id.
    pub async fn ready_image(&self, user_id: i64) -> i64 {
        self.image(user_id, true).await
    }

    /// Records an image that is still `pending` (not downloaded).
    pub async fn pending_image(&self, user_id: i64) -> i64 {
        self.image(user_id, false).await
    }

    async fn image(&self, user_id: i64, ready: bool) -> i64 {
        let res = self
            .http
            .post(format!("{}/users/{user_id}/images", self.management_url))
            .json(&json!({"url": "http://images.example/cat.jpg", "ready": ready}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        res.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
    }

    pub async fn post_job(&self, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/print/jobs", self.url))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    pub async fn job_rows(&self) -> i64 {
        self.db
            .client()
            .await
            .query_one("SELECT count(*) FROM print_jobs", &[])
            .await
            .unwrap()
            .get(0)
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }
}

/// The value of an unlabelled gauge or counter in Prometheus text.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

pub async fn assert_problem(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], status);
    body
}
