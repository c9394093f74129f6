//! download-service under test: the real service on port 0 with its own database
//! and S3 bucket, an image host and a callback receiver (scripted HTTP servers)
//! standing for management-api: `MANAGEMENT_URL` is the receiver's URL, and the
//! service's own token is management-api's (role `service`).

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use image::ImageFormat;
use pixpress_testkit::auth;
use pixpress_testkit::fixture::{Fixture, Reply};
use pixpress_testkit::http::{client, eventually};
use pixpress_testkit::images::{encode, two_tone};
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

    /// The paths asked for so far, in order.
    pub fn requested_paths(&self) -> Vec<String> {
        self.fixture
            .requests()
            .into_iter()
            .map(|r| r.path)
            .collect()
    }

    /// Serves a `width`×`height` two-tone PNG at `path`; returns its full URL.
    pub fn png(&self, path: &str, width: u32, height: u32) -> String {
        let bytes = encode(&two_tone(width, height).into(), ImageFormat::Png);
        self.image(path, "image/png", bytes)
    }
}

pub struct TestApp {
    pub url: String,
    pub db: TestDatabase,
    pub bucket: TestBucket,
    pub host: ImageHost,
    /// Stands for management-api, at `MANAGEMENT_URL`: receives completion callbacks
    /// (answers 204).
    pub receiver: Fixture,
    /// Calls as management-api does (a `service` token).
    pub http: reqwest::Client,
    /// Calls as a browser does: no token (the image links and S3's presigned URLs).
    pub browser: reqwest::Client,
    /// What download-service presents to management-api (`MANAGEMENT_TOKEN`).
    pub management_token: String,
}

impl TestApp {
    /// download-service allowed to fetch from loopback (where the image host is).
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// `configure` sees the receiver's URL as `management_url` and may change it.
    pub async fn spawn_with(configure: impl FnOnce(&mut pixpress_download::Config)) -> Self {
        let db = TestDatabase::new().await;
        let bucket = TestBucket::new().await;
        let receiver = Fixture::start(|_| Reply::bytes(204, "text/plain", Vec::new()));
        let mut config = pixpress_download::Config::with_database(&db.url);
        config.auth = auth::args();
        config.management_url = Some(receiver.url.clone());
        let management_token = auth::token("download-service", &["service"]);
        config.management_token = Some(management_token.clone());
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
            receiver,
            http: auth::client_as(&auth::service()),
            browser: client(),
            management_token,
        }
    }

    /// POSTs `body` to `/downloads` with `client`.
    pub async fn post_download(&self, client: &reqwest::Client, body: &Value) -> reqwest::Response {
        client
            .post(format!("{}/downloads", self.url))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `GET /downloads/{id}` with `client`.
    pub async fn get_task(&self, client: &reqwest::Client, id: &str) -> reqwest::Response {
        client
            .get(format!("{}/downloads/{id}", self.url))
            .send()
            .await
            .unwrap()
    }

    /// `DELETE /downloads/{id}` with `client`.
    pub async fn delete_task(&self, client: &reqwest::Client, id: &str) -> reqwest::Response {
        client
            .delete(format!("{}/downloads/{id}", self.url))
            .send()
            .await
            .unwrap()
    }

    /// DELETEs task `id` as management-api; returns the status.
    pub async fn delete(&self, id: &str) -> u16 {
        self.delete_task(&self.http, id).await.status().as_u16()
    }

    /// What `GET /images/{id}/{variant}` answers a browser.
    pub async fn image_status(&self, id: &str, variant: &str) -> u16 {
        self.browser
            .get(format!("{}/images/{id}/{variant}", self.url))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// How many tasks the database holds, deleted ones included.
    pub async fn stored_tasks(&self) -> i64 {
        self.db
            .client()
            .await
            .query_one("SELECT count(*) FROM download_tasks", &[])
            .await
            .unwrap()
            .get(0)
    }

    /// POSTs a download of `image_url` (calling back the receiver); returns the task.
    pub async fn download(&self, image_url: &str) -> Value {
        let body = json!({"url": image_url, "callback_url": format!("{}/done", self.receiver.url)});
        let res = self.post_download(&self.http, &body).await;
        assert_eq!(res.status(), 202);
        assert!(res.headers().contains_key("location"));
        res.json().await.unwrap()
    }

    /// Task `id` as management-api reads it.
    pub async fn task(&self, id: &str) -> Value {
        self.get_task(&self.http, id).await.json().await.unwrap()
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

    /// Downloads `image_url` to the end; the completed task.
    pub async fn downloaded(&self, image_url: &str) -> Value {
        let task = self.finished(&self.download(image_url).await).await;
        assert_eq!(task["state"], "completed", "{task}");
        task
    }

    /// Follows `/images/{id}/{variant}` to S3 as a browser (no token) and returns the
    /// bytes and content type.
    pub async fn fetch_image(&self, id: &str, variant: &str) -> (Vec<u8>, String) {
        let res = self
            .browser
            .get(format!("{}/images/{id}/{variant}", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302, "GET /images/{id}/{variant}");
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let object = self.browser.get(&location).send().await.unwrap();
        assert_eq!(object.status(), 200, "presigned GET {location}");
        let content_type = object.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        (object.bytes().await.unwrap().to_vec(), content_type)
    }
}
