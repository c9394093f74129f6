//! The print-service under test: the real service on port 0 with its own fresh
//! database, next to a real management-api (or a scripted fixture in its place).

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use pixpress_kit::config::DatabaseArgs;
use pixpress_kit::db::Database;
use pixpress_kit::server::Background;
use pixpress_print::dispatcher::{Dispatcher, DispatcherSettings};
use pixpress_print::metrics::PrintMetrics;
use pixpress_print::printer::{PrinterClient, PrinterSettings};
use pixpress_print::reconciler::{Reconciler, ReconcilerSettings};
use pixpress_testkit::auth;
use pixpress_testkit::http::eventually;
use pixpress_testkit::metrics;
use pixpress_testkit::TestDatabase;
use serde_json::{json, Value};

pub struct TestApp {
    pub url: String,
    pub management_url: String,
    pub db: TestDatabase,
    pub http: reqwest::Client,
    /// Stops this instance (HTTP and dispatcher).
    pub handle: pixpress_kit::server::ServiceHandle,
}

/// The Standard Webhooks secret print-service and printer-sim share in tests.
pub const SECRET: &str = pixpress_testkit::WEBHOOK_SECRET;

/// A bound loopback listener and its URL, for services that must know their own
/// address before they are built.
pub fn bind() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

/// Starts a real printer-sim on `listener` (signing with [`SECRET`], no print
/// delay unless `configure` sets one).
pub fn spawn_printer_on(
    listener: TcpListener,
    configure: impl FnOnce(&mut pixpress_printer_sim::Config),
) -> pixpress_kit::server::ServiceHandle {
    let mut config = pixpress_printer_sim::Config::local();
    config.printer_callback_secret = Some(SECRET.into());
    config.printer_delay_ms = 0;
    configure(&mut config);
    pixpress_printer_sim::build(config, listener)
        .unwrap()
        .spawn()
        .1
}

/// Binds `addr` again once whatever listened there (a printer being stopped) has let
/// go of it.
pub async fn rebind(addr: SocketAddr) -> TcpListener {
    eventually(
        "the old listener to let go of its port",
        Duration::from_secs(60),
        || async move { TcpListener::bind(addr).ok() },
    )
    .await
}

pub fn spawn_printer(configure: impl FnOnce(&mut pixpress_printer_sim::Config)) -> String {
    let (listener, url) = bind();
    spawn_printer_on(listener, configure);
    url
}

/// Starts a real management-api with `configure` applied; returns its base URL.
pub fn spawn_management(configure: impl FnOnce(&mut pixpress_management::Config)) -> String {
    let mut config = pixpress_management::Config::local();
    config.auth = auth::args();
    configure(&mut config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    pixpress_management::build(config, listener)
        .unwrap()
        .spawn()
        .0
}

/// Records an image for `user_id` in the management-api at `management_url` (`ready`
/// to print, or still `pending`); returns its file id.
pub async fn record_image(
    http: &reqwest::Client,
    management_url: &str,
    user_id: i64,
    ready: bool,
) -> i64 {
    let res = http
        .post(format!("{management_url}/users/{user_id}/images"))
        .json(&json!({"url": pixpress_testkit::images::sample_image_url(), "ready": ready}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

impl TestApp {
    /// An intake-only print-service (no dispatcher: jobs stay `queued`) against a
    /// real management-api with default settings.
    pub async fn spawn() -> Self {
        let management_url = spawn_management(|_| {});
        Self::spawn_with(management_url, |c| c.dispatch_enabled = false).await
    }

    /// The whole print path: a printer-sim, a management-api that sends jobs to it,
    /// and print-service with the shared callback secret. Returns the printer's URL.
    pub async fn spawn_with_printer(
        configure_printer: impl FnOnce(&mut pixpress_printer_sim::Config),
        configure: impl FnOnce(&mut pixpress_print::Config),
    ) -> (Self, String) {
        let printer_url = spawn_printer(configure_printer);
        let printer = printer_url.clone();
        let management_url = spawn_management(move |c| c.printer_url = printer);
        let app = Self::spawn_with(management_url, configure).await;
        (app, printer_url)
    }

    /// Another print-service replica on the same database and management API.
    pub fn spawn_replica(
        &self,
        configure: impl FnOnce(&mut pixpress_print::Config),
    ) -> (String, pixpress_kit::server::ServiceHandle) {
        let (listener, url) = bind();
        self.spawn_replica_on(listener, url, configure)
    }

    /// A replica on `listener` whose printers call back on `public_url`.
    pub fn spawn_replica_on(
        &self,
        listener: TcpListener,
        public_url: String,
        configure: impl FnOnce(&mut pixpress_print::Config),
    ) -> (String, pixpress_kit::server::ServiceHandle) {
        let mut config = pixpress_print::Config::with_database(&self.db.url);
        config.management_url = self.management_url.clone();
        config.public_url = public_url;
        config.printer_callback_secret = Some(SECRET.into());
        config.auth = auth::args();
        config.management_token = Some(auth::service());
        configure(&mut config);
        pixpress_print::build(config, listener).unwrap().spawn()
    }

    /// print-service against the management API at `management_url`.
    pub async fn spawn_with(
        management_url: String,
        configure: impl FnOnce(&mut pixpress_print::Config),
    ) -> Self {
        let db = TestDatabase::new().await;
        let (listener, url) = bind();
        let mut config = pixpress_print::Config::with_database(&db.url);
        config.management_url = management_url.clone();
        config.public_url = url.clone();
        config.printer_callback_secret = Some(SECRET.into());
        config.auth = auth::args();
        config.management_token = Some(auth::service());
        configure(&mut config);
        let (_, handle) = pixpress_print::build(config, listener).unwrap().spawn();
        Self {
            url,
            management_url,
            db,
            // An admin may act for the many users these tests invent.
            http: auth::client_as(&auth::admin()),
            handle,
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
        record_image(&self.http, &self.management_url, user_id, ready).await
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

    /// `SELECT <expression> FROM print_jobs WHERE id = <id>`.
    pub async fn job_column<T: for<'a> tokio_postgres::types::FromSql<'a>>(
        &self,
        id: &str,
        expression: &str,
    ) -> T {
        let id = uuid::Uuid::parse_str(id).unwrap();
        self.db
            .client()
            .await
            .query_one(
                &format!("SELECT {expression} FROM print_jobs WHERE id = $1"),
                &[&id],
            )
            .await
            .unwrap()
            .get(0)
    }

    pub async fn metrics(&self) -> String {
        metrics::scrape(&self.http, &self.url).await
    }

    /// management-api's metrics.
    pub async fn management_metrics(&self) -> String {
        metrics::scrape(&self.http, &self.management_url).await
    }

    /// Waits until management-api has exactly `n` lookups in flight: that many
    /// requests hold a permit of the gate, waiting on its (slowed) answer.
    pub async fn wait_for_lookups_in_flight(&self, n: f64) {
        eventually(
            &format!("{n} lookups in flight at management-api"),
            Duration::from_secs(30),
            || async {
                let text = metrics::try_scrape(&self.http, &self.management_url).await?;
                let in_flight = metrics::value(&text, "pixpress_management_lookups_in_flight", &[]);
                (in_flight == Some(n)).then_some(())
            },
        )
        .await
    }
}

pub async fn assert_problem(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], status);
    body
}

impl TestApp {
    /// Waits until every job the service has is in `state`, returning how many.
    pub async fn all_jobs_reach(&self, state: &str, expected: i64, limit: std::time::Duration) {
        let db = self.db.client().await;
        pixpress_testkit::http::eventually(
            &format!("{expected} jobs to be {state}"),
            limit,
            || async {
                let row = db
                    .query_one(
                        "SELECT count(*) FILTER (WHERE state = $1), count(*) FROM print_jobs",
                        &[&state],
                    )
                    .await
                    .ok()?;
                let (done, all): (i64, i64) = (row.get(0), row.get(1));
                (done == expected && all == expected).then_some(())
            },
        )
        .await;
    }

    /// Posts a job for a fresh ready image of `user_id` and returns its id.
    pub async fn create_job(&self, user_id: i64, file_id: i64) -> String {
        let res = self
            .post_job(json!({"user_id": user_id, "file_id": file_id}))
            .await;
        assert_eq!(res.status(), 201);
        res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

impl TestApp {
    /// Job `id` as the API shows it.
    pub async fn job(&self, id: &str) -> Value {
        let res = self.get(&format!("/print/jobs/{id}")).await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// Waits until job `id` is in `state`; returns it.
    pub async fn job_reaches(&self, id: &str, state: &str) -> Value {
        eventually(
            &format!("job {id} to be {state}"),
            Duration::from_secs(60),
            || async {
                let job = self.job(id).await;
                (job["state"] == state).then_some(job)
            },
        )
        .await
    }

    /// A dispatcher and a reconciler of the test's own on this app's database, run a
    /// round at a time with `pixpress_kit::queue::step` (give the app
    /// `dispatch_enabled = false` so that nothing else works its jobs): jobs are
    /// re-sent at most `max_attempts` times and due for a check `job_deadline` per copy
    /// after they reach their printer.
    pub fn workers(&self, max_attempts: i32, job_deadline: Duration) -> Workers {
        let args = DatabaseArgs::new(&self.db.url);
        let db = Database::start(&args, Duration::from_secs(5), &mut Background::new()).unwrap();
        let metrics = PrintMetrics::new(&prometheus::Registry::new());
        let printers = Arc::new(PrinterClient::new(
            reqwest::Client::new(),
            PrinterSettings {
                public_url: self.url.clone(),
                timeout: Duration::from_secs(2),
            },
            &metrics,
        ));
        // Each set of workers is a replica of its own.
        let owner = format!("test-replica-{}", uuid::Uuid::new_v4().simple());
        Workers {
            dispatcher: Arc::new(Dispatcher::new(
                DispatcherSettings {
                    owner: owner.clone(),
                    lease: Duration::from_secs(30),
                    max_attempts,
                    job_deadline,
                },
                db.clone(),
                Arc::clone(&printers),
                metrics.clone(),
            )),
            reconciler: Arc::new(Reconciler::new(
                ReconcilerSettings {
                    owner,
                    lease: Duration::from_secs(30),
                    max_resends: max_attempts,
                    job_deadline,
                },
                db,
                printers,
                metrics.clone(),
            )),
            metrics,
        }
    }
}

/// See [`TestApp::workers`].
pub struct Workers {
    pub dispatcher: Arc<Dispatcher>,
    pub reconciler: Arc<Reconciler>,
    /// Their metrics, in a registry of their own.
    pub metrics: PrintMetrics,
}

impl Workers {
    /// Sends every due queued job to its printer.
    pub async fn dispatch(&self) -> usize {
        pixpress_kit::queue::step(&self.dispatcher, 16)
            .await
            .unwrap()
    }

    /// Runs reconciliation rounds until one checks a job (its deadline has to pass
    /// first).
    pub async fn reconcile(&self) {
        eventually(
            "a job to come due for a check",
            Duration::from_secs(60),
            || async {
                let checked = pixpress_kit::queue::step(&self.reconciler, 16)
                    .await
                    .unwrap();
                (checked > 0).then_some(())
            },
        )
        .await
    }

    /// How many checks came to `outcome`.
    pub fn reconciled(&self, outcome: &str) -> u64 {
        self.metrics.reconciled.with_label_values(&[outcome]).get()
    }
}
