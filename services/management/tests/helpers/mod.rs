//! The management-api under test: the real service on port 0, with a scripted
//! download-service (or a closed port) in place of the real one, and the signed
//! download reports download-service would send.

#![allow(dead_code)]

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pixpress_kit::webhook::WebhookSecret;
use pixpress_management::Reconciler;
use pixpress_testkit::auth;
use pixpress_testkit::fixture::{Fixture, Recorded, Reply};
use pixpress_testkit::http::AnswerJson;
use serde_json::{json, Value};
use uuid::Uuid;

/// The Standard Webhooks secret management-api and "download-service" share in tests.
pub const SECRET: &str = pixpress_testkit::WEBHOOK_SECRET;

/// The image URL of [`RequestedImage`].
pub const CAT: &str = "https://images.test/cat.jpg";

/// A loopback URL nothing listens on: a download-service that is down.
pub fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// management-api's token for download-service (`DOWNLOAD_TOKEN`).
pub fn download_token() -> String {
    auth::token("management-api", &["service"])
}

/// download-service's token for management-api's report route (its `MANAGEMENT_TOKEN`).
pub fn report_token() -> String {
    auth::token("download-service", &["service"])
}

/// Starts a real management-api and returns its base URL. Unless `configure` says
/// otherwise it shares [`SECRET`], calls back on its own address, sends
/// [`download_token`], and asks a download-service that is down (so pending images
/// stay pending for a minute).
pub fn spawn(configure: impl FnOnce(&mut pixpress_management::Config)) -> String {
    spawn_app(configure).0
}

/// [`spawn`], with a handle on the service's reconciliation step.
pub fn spawn_app(configure: impl FnOnce(&mut pixpress_management::Config)) -> (String, Reconciler) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut config = pixpress_management::Config::local();
    config.management_public_url = url.clone();
    config.download_url = closed_port_url();
    config.download_callback_secret = Some(SECRET.into());
    config.download_token = Some(download_token());
    config.auth = auth::args();
    configure(&mut config);
    let app = pixpress_management::build_app(config, listener).unwrap();
    (app.service.spawn().0, app.reconciler)
}

/// A download-service stand-in that keeps its tasks like the real one:
/// `POST /downloads` queues a task (202), `GET /downloads/{id}` answers it (or 404),
/// `DELETE /downloads/{id}` removes it (204, or 404). It never reports: tests send
/// the reports themselves, or let them be lost.
pub struct FakeDownloadService {
    pub fixture: Fixture,
    tasks: Arc<Mutex<Vec<(Uuid, Value)>>>,
    /// Answer 503 to this many requests first.
    outage: Arc<AtomicUsize>,
}

impl FakeDownloadService {
    pub fn start() -> Self {
        let tasks: Arc<Mutex<Vec<(Uuid, Value)>>> = Arc::default();
        let outage = Arc::new(AtomicUsize::new(0));
        let (known, down) = (Arc::clone(&tasks), Arc::clone(&outage));
        let fixture = Fixture::start(move |req: &Recorded| {
            let busy = down.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            if busy.is_ok() {
                return Reply::json(503, json!({"title": "busy"}));
            }
            let mut tasks = known.lock().unwrap();
            let id = req
                .path
                .strip_prefix("/downloads/")
                .and_then(|id| id.parse::<Uuid>().ok());
            let position = |id: Uuid| tasks.iter().position(|(t, _)| *t == id);
            match (req.method.as_str(), id) {
                ("POST", None) if req.path == "/downloads" => {
                    let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
                    let id = Uuid::new_v4();
                    let queued = task(id, body["url"].as_str().unwrap_or_default(), "queued", None);
                    tasks.push((id, queued.clone()));
                    Reply::json(202, queued).header("Location", &format!("/downloads/{id}"))
                }
                ("GET", Some(id)) => match position(id) {
                    Some(i) => Reply::json(200, tasks[i].1.clone()),
                    None => Reply::json(404, json!({"title": "no such task"})),
                },
                ("DELETE", Some(id)) => match position(id) {
                    Some(i) => {
                        tasks.remove(i);
                        Reply::bytes(204, "text/plain", Vec::new())
                    }
                    None => Reply::json(404, json!({"title": "no such task"})),
                },
                _ => Reply::json(405, json!({"title": "not here"})),
            }
        });
        Self {
            fixture,
            tasks,
            outage,
        }
    }

    pub fn url(&self) -> String {
        self.fixture.url.clone()
    }

    /// The tasks it holds, oldest first.
    pub fn tasks(&self) -> Vec<Uuid> {
        self.tasks
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| *id)
            .collect()
    }

    /// Ends task `id` in `state` (`completed`, `failed` with `error`, or `running`).
    pub fn finish(&self, id: Uuid, state: &str, error: Option<&str>) {
        let mut tasks = self.tasks.lock().unwrap();
        let (_, task_json) = tasks.iter_mut().find(|(t, _)| *t == id).expect("a task");
        let url = task_json["url"].as_str().unwrap_or_default().to_owned();
        *task_json = task(id, &url, state, error);
    }

    /// Forgets task `id`, as a download-service that lost it.
    pub fn lose(&self, id: Uuid) {
        self.tasks.lock().unwrap().retain(|(t, _)| *t != id);
    }

    /// Answers 503 to the next `requests` requests.
    pub fn go_down_for(&self, requests: usize) {
        self.outage.store(requests, Ordering::SeqCst);
    }

    /// The requests received with `method` on a path starting with `path`.
    pub fn requests(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.fixture
            .requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.starts_with(path))
            .collect()
    }
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

/// Deletes `user`'s image `id` (as an admin).
pub async fn delete(url: &str, user: i64, id: &Value) -> reqwest::Response {
    client()
        .delete(format!("{url}/users/{user}/images/{id}"))
        .send()
        .await
        .unwrap()
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

/// Waits until management-api at `url` knows that `downloads` took its download
/// (`downloads_requested_total{outcome="accepted"}` counts it after recording the
/// task): the first task `downloads` holds.
pub async fn taken_task(url: &str, downloads: &FakeDownloadService) -> Uuid {
    let name = "pixpress_management_downloads_requested_total";
    pixpress_testkit::http::eventually(
        "management-api to know its download task",
        std::time::Duration::from_secs(10),
        || async {
            let accepted = outcome_count(url, name, "accepted").await;
            accepted.filter(|n| *n >= 1.0)?;
            downloads.tasks().first().copied()
        },
    )
    .await
}

/// A management-api asking `downloads`, with a pending image of user 1 (of [`CAT`])
/// whose download `downloads` has taken.
pub struct RequestedImage {
    pub url: String,
    pub reconciler: Reconciler,
    pub image: Value,
    pub task: Uuid,
}

impl RequestedImage {
    /// No report of the task sent yet.
    pub async fn start(downloads: &FakeDownloadService) -> Self {
        Self::start_with(downloads, |_| {}).await
    }

    /// [`start`](Self::start) with more settings.
    pub async fn start_with(
        downloads: &FakeDownloadService,
        configure: impl FnOnce(&mut pixpress_management::Config),
    ) -> Self {
        let download_url = downloads.url();
        let (url, reconciler) = spawn_app(|c| {
            c.download_url = download_url;
            configure(c);
        });
        let image = create_pending(&url, 1, CAT).await;
        let task = taken_task(&url, downloads).await;
        Self {
            url,
            reconciler,
            image,
            task,
        }
    }

    /// The management-api's URL, the image and its task, for a test that does not
    /// reconcile.
    pub fn into_parts(self) -> (String, Value, Uuid) {
        (self.url, self.image, self.task)
    }

    /// [`start`](Self::start), then the task reported ended in `state` (with
    /// `error`), which management-api accepts.
    pub async fn reported(
        downloads: &FakeDownloadService,
        state: &str,
        error: Option<&str>,
    ) -> Self {
        let requested = Self::start(downloads).await;
        let report = task(requested.task, CAT, state, error);
        let res = signed_callback(&requested.url, &requested.image["id"], &report).await;
        assert_eq!(res.status(), 204, "the {state} report");
        requested
    }
}

/// POSTs `body` to image `image_id`'s download callback with `headers` (and no
/// other credentials).
pub async fn callback_with(
    url: &str,
    image_id: &Value,
    body: &[u8],
    headers: &[(&str, String)],
) -> reqwest::Response {
    let mut req = pixpress_testkit::http::client()
        .post(format!("{url}/internal/images/{image_id}/download"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    req.send().await.unwrap()
}

/// POSTs `body` to image `image_id`'s download callback, signed with [`SECRET`],
/// with download-service's token ([`report_token`]).
pub async fn signed_callback(url: &str, image_id: &Value, body: &Value) -> reqwest::Response {
    let body = body.to_string();
    let secret = WebhookSecret::parse(SECRET).unwrap();
    let mut headers = secret.headers(body.as_bytes()).to_vec();
    headers.push(("authorization", format!("Bearer {}", report_token())));
    callback_with(url, image_id, body.as_bytes(), &headers).await
}

pub async fn metrics(url: &str) -> String {
    pixpress_testkit::metrics::scrape(&client(), url).await
}

/// The value of counter `name` for `outcome` in management-api's metrics.
pub async fn outcome_count(url: &str, name: &str, outcome: &str) -> Option<f64> {
    pixpress_testkit::metrics::value(&metrics(url).await, name, &[("outcome", outcome)])
}

/// Asserts that management-api's OpenAPI document has `method` `path` answering
/// each of `statuses`; returns the operation.
pub async fn assert_documented(url: &str, path: &str, method: &str, statuses: &[&str]) -> Value {
    let doc: Value = client()
        .get(format!("{url}/openapi.json"))
        .answer_json()
        .await;
    let operation = doc["paths"][path][method].clone();
    for status in statuses {
        assert!(
            operation["responses"][*status].is_object(),
            "{status} in {operation}"
        );
    }
    operation
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
