//! download-service under test: the real service on port 0 with its own database
//! and S3 bucket, an image host and a callback receiver (scripted HTTP servers).

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pixpress_testkit::fixture::{Fixture, Reply};
use pixpress_testkit::http::{client, eventually};
use pixpress_testkit::s3::TestBucket;
use pixpress_testkit::TestDatabase;
use serde_json::{json, Value};

pub const SECRET: &str = "whsec_ZG93bmxvYWQtY2FsbGJhY2stc2VjcmV0LWZvci10ZXN0cw==";
pub const PATIENCE: Duration = Duration::from_secs(60);

/// An image host: serves whatever `serve` put at a path, 404 elsewhere.
pub struct ImageHost {
    pub fixture: Fixture,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
}

impl ImageHost {
    pub fn start() -> Self {
        let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let table = Arc::clone(&routes);
        let fixture = Fixture::start(move |req| {
            table
                .lock()
                .unwrap()
                .get(&req.path)
                .cloned()
                .unwrap_or_else(|| Reply::bytes(404, "text/plain", b"no such file".to_vec()))
        });
        Self { fixture, routes }
    }

    /// Serves `reply` at `path`; returns its full URL.
    pub fn serve(&self, path: &str, reply: Reply) -> String {
        self.routes.lock().unwrap().insert(path.to_owned(), reply);
        format!("{}{path}", self.fixture.url)
    }

    pub fn image(&self, path: &str, content_type: &str, bytes: Vec<u8>) -> String {
        self.serve(path, Reply::bytes(200, content_type, bytes))
    }
}

pub struct TestApp {
    pub url: String,
    pub db: TestDatabase,
    pub bucket: TestBucket,
    pub host: ImageHost,
    /// Receives completion callbacks (answers 204).
    pub receiver: Fixture,
    pub http: reqwest::Client,
}

impl TestApp {
    /// download-service allowed to fetch from loopback (where the image host is).
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut pixpress_download::Config)) -> Self {
        let db = TestDatabase::new().await;
        let bucket = TestBucket::new().await;
        let mut config = pixpress_download::Config::with_database(&db.url);
        config.s3_endpoint = Some(bucket.endpoint.clone());
        config.s3_bucket = bucket.bucket.clone();
        config.s3_region = bucket.region.clone();
        config.s3_access_key = Some(bucket.access_key.clone());
        config.s3_secret_key = Some(bucket.secret_key.clone());
        config.download_allow_private_networks = true;
        config.download_callback_secret = Some(SECRET.into());
        configure(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (url, _) = pixpress_download::build(config, listener).unwrap().spawn();
        Self {
            url,
            db,
            bucket,
            host: ImageHost::start(),
            receiver: Fixture::start(|_| Reply::bytes(204, "text/plain", Vec::new())),
            http: client(),
        }
    }

    /// POSTs a download of `image_url` (calling back the receiver); returns the task.
    pub async fn download(&self, image_url: &str) -> Value {
        let res = self
            .http
            .post(format!("{}/downloads", self.url))
            .json(&json!({"url": image_url, "callback_url": format!("{}/done", self.receiver.url)}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        assert!(res.headers().contains_key("location"));
        res.json().await.unwrap()
    }

    pub async fn task(&self, id: &str) -> Value {
        self.http
            .get(format!("{}/downloads/{id}", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits for the task to be `completed` or `failed`.
    pub async fn finished(&self, task: &Value) -> Value {
        let id = task["id"].as_str().unwrap().to_owned();
        eventually("the download to finish", PATIENCE, || async {
            let task = self.task(&id).await;
            matches!(task["state"].as_str(), Some("completed" | "failed")).then_some(task)
        })
        .await
    }

    /// Follows `/images/{id}/{variant}` to S3 and returns the bytes and content type.
    pub async fn fetch_image(&self, id: &str, variant: &str) -> (Vec<u8>, String) {
        let res = self
            .http
            .get(format!("{}/images/{id}/{variant}", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302, "GET /images/{id}/{variant}");
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let object = self.http.get(&location).send().await.unwrap();
        assert_eq!(object.status(), 200, "presigned GET {location}");
        let content_type = object.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        (object.bytes().await.unwrap().to_vec(), content_type)
    }
}
