//! What the end-to-end tests share: the stack on random ports with a fresh
//! database, waiting for an image or a job to get where it is going, and (for the
//! fault tests) the services as separate processes plus steady client load.

#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pixpress_domain::printer::PrintedJob;
use pixpress_stack::{Stack, StackOptions};
use pixpress_testkit::auth;
use pixpress_testkit::http::eventually;
use pixpress_testkit::metrics;
use pixpress_testkit::process::RunningBinary;
use pixpress_testkit::TestDatabase;
use serde_json::{json, Value};
use tokio_postgres::NoTls;
use uuid::Uuid;

pub const PATIENCE: Duration = Duration::from_secs(90);

/// The whole system on random loopback ports, on a database of its own.
pub async fn stack() -> (Stack, TestDatabase) {
    let db = TestDatabase::empty().await;
    let mut options = StackOptions::ephemeral();
    options.database_url = Some(db.url.clone());
    (Stack::start(options).await.expect("the stack starts"), db)
}

/// The stack with its `ipp-sim` printer (CUPS's ippeveprinter behind ipp-gateway,
/// management-api's printer 2), which must start.
#[allow(dead_code)] // not every test binary prints on IPP
pub async fn stack_with_ipp_sim() -> (Stack, TestDatabase) {
    pixpress_testkit::ipp::ensure_daemons();
    let db = TestDatabase::empty().await;
    let mut options = StackOptions::ephemeral();
    options.database_url = Some(db.url.clone());
    options.ipp_sim = true;
    let stack = Stack::start(options).await.expect("the stack starts");
    assert!(
        stack.ipp_sim.is_some(),
        "ippeveprinter did not start (see the log)"
    );
    (stack, db)
}

/// Adds an image of `user` by its `image_url` at the management-api at
/// `management_url` (201); the image as created.
pub async fn add_image(
    http: &reqwest::Client,
    management_url: &str,
    user: i64,
    image_url: &str,
) -> Value {
    let res = http
        .post(format!("{management_url}/users/{user}/images"))
        .json(&json!({ "url": image_url }))
        .send()
        .await
        .expect("POST /users/{user}/images gets an answer");
    assert_eq!(res.status(), 201, "adding {image_url}");
    res.json().await.expect("an image")
}

/// Waits until `user`'s image `id` at the management-api at `management_url` is no
/// longer `pending`; returns it.
pub async fn settled_image(
    http: &reqwest::Client,
    management_url: &str,
    user: i64,
    id: &Value,
) -> Value {
    let url = format!("{management_url}/users/{user}/images/{id}");
    eventually("the image to settle", PATIENCE, || async {
        let image: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
        (image["status"] != "pending").then_some(image)
    })
    .await
}

/// Waits until print job `id` is in `state`.
pub async fn job_reaches(http: &reqwest::Client, stack: &Stack, id: &str, state: &str) {
    let url = format!("{}/print/jobs/{id}", stack.print_url);
    eventually(&format!("job {id} to be {state}"), PATIENCE, || async {
        let job: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
        (job["state"] == state).then_some(())
    })
    .await
}

// ---------------------------------------------------------------------------------
// The services as real processes, for the fault tests.

/// The Standard Webhooks secret print-service and printer-sim share.
pub const CALLBACK_SECRET: &str = pixpress_testkit::WEBHOOK_SECRET;

/// Where service binary `name` of `package` is (next to this test's executable).
pub fn binary(name: &str, package: &str) -> String {
    let path = pixpress_testkit::process::workspace_binary(name, package);
    path.to_str().expect("a UTF-8 target path").to_owned()
}

/// printer-sim's binary, refusing one built before it had a spool (a stale build
/// would fail the test for the wrong reason).
pub fn printer_binary() -> String {
    let path = binary("printer-sim", "pixpress-printer-sim");
    let help = std::process::Command::new(&path)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("running {path} --help: {e}"));
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("PRINTER_STATE_DIR"),
        "{path} predates PRINTER_STATE_DIR: run `cargo build -p pixpress-printer-sim`"
    );
    path
}

/// Settings of the three processes that a fault test tunes.
#[derive(Debug, Clone)]
pub struct Tuning {
    pub backend_timeout_ms: u64,
    pub shutdown_grace_secs: u64,
    pub management_latency_ms: u64,
    pub printer_delay_ms: u64,
    pub printer_accept_delay_ms: u64,
    pub printer_state_dir: Option<String>,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            backend_timeout_ms: 2000,
            shutdown_grace_secs: 10,
            management_latency_ms: 0,
            printer_delay_ms: 0,
            printer_accept_delay_ms: 0,
            printer_state_dir: None,
        }
    }
}

/// print-service, management-api and printer-sim as separate processes, wired to
/// each other on fixed loopback ports (so each can be killed and started again on
/// its address).
pub struct Processes {
    pub print: RunningBinary,
    pub management: RunningBinary,
    pub printer: RunningBinary,
    pub database_url: String,
    /// An admin: may act for any user.
    pub http: reqwest::Client,
}

impl Processes {
    pub async fn start(database_url: &str, tuning: &Tuning) -> Self {
        let (print_path, management_path, printer_path) = (
            binary("print-service", "pixpress-print"),
            binary("management-api", "pixpress-management"),
            printer_binary(),
        );
        let [print_port, management_port, printer_port] = free_ports();
        let url = |port: u16| format!("http://127.0.0.1:{port}");

        let mut printer_env = vec![
            ("PRINTER_CALLBACK_SECRET", CALLBACK_SECRET.to_owned()),
            ("PRINTER_DELAY_MS", tuning.printer_delay_ms.to_string()),
            (
                "PRINTER_ACCEPT_DELAY_MS",
                tuning.printer_accept_delay_ms.to_string(),
            ),
            ("PRINTER_CAPACITY", "1000".to_owned()),
        ];
        if let Some(dir) = &tuning.printer_state_dir {
            printer_env.push(("PRINTER_STATE_DIR", dir.clone()));
        }
        let printer =
            RunningBinary::start_on(&printer_path, printer_port, &borrowed(&printer_env)).await;

        let management_env = [
            ("AUTH_JWT_SECRET", auth::SECRET.to_owned()),
            ("PRINTER_URL", url(printer_port)),
            ("MANAGEMENT_PUBLIC_URL", url(management_port)),
            // Unused here (images are recorded ready), but set as in production.
            ("DOWNLOAD_CALLBACK_SECRET", CALLBACK_SECRET.to_owned()),
            (
                "MANAGEMENT_LATENCY_MS",
                tuning.management_latency_ms.to_string(),
            ),
        ];
        let management = RunningBinary::start_on(
            &management_path,
            management_port,
            &borrowed(&management_env),
        )
        .await;

        let print_env = [
            ("DATABASE_URL", database_url.to_owned()),
            ("AUTH_JWT_SECRET", auth::SECRET.to_owned()),
            ("MANAGEMENT_URL", url(management_port)),
            ("MANAGEMENT_TOKEN", auth::service()),
            ("PUBLIC_URL", url(print_port)),
            ("PRINTER_CALLBACK_SECRET", CALLBACK_SECRET.to_owned()),
            ("BACKEND_TIMEOUT_MS", tuning.backend_timeout_ms.to_string()),
            (
                "SHUTDOWN_GRACE_SECS",
                tuning.shutdown_grace_secs.to_string(),
            ),
        ];
        let print = RunningBinary::start_on(&print_path, print_port, &borrowed(&print_env)).await;
        let processes = Self {
            print,
            management,
            printer,
            database_url: database_url.to_owned(),
            http: auth::client_as(&auth::admin()),
        };
        processes.wait_ready(&processes.print.url).await;
        processes
    }

    /// Waits until `base_url`'s `/ready` answers 200.
    pub async fn wait_ready(&self, base_url: &str) {
        self.wait_ready_is(base_url, 200).await;
    }

    /// Waits until `base_url`'s `/ready` answers `status`.
    pub async fn wait_ready_is(&self, base_url: &str, status: u16) {
        let url = format!("{base_url}/ready");
        eventually(&format!("{url} to answer {status}"), PATIENCE, || async {
            let res = self.http.get(&url).send().await.ok()?;
            (res.status() == status).then_some(())
        })
        .await;
    }

    /// Records an image ready to print for `user` in management-api; its file id.
    pub async fn ready_image(&self, user: i64) -> i64 {
        let res = self
            .http
            .post(format!("{}/users/{user}/images", self.management.url))
            .json(&json!({"url": pixpress_testkit::images::sample_image_url(), "ready": true}))
            .send()
            .await
            .expect("POST /users/{user}/images");
        assert_eq!(res.status(), 201);
        let image: Value = res.json().await.expect("an image");
        image["id"].as_i64().expect("an image id")
    }

    /// `POST /print/jobs` for `user`'s `file_id`.
    pub async fn post_job(&self, user: i64, file_id: i64) -> reqwest::Response {
        self.http
            .post(format!("{}/print/jobs", self.print.url))
            .json(&json!({"user_id": user, "file_id": file_id}))
            .send()
            .await
            .expect("POST /print/jobs gets an answer")
    }

    /// What the printer says it received and printed.
    pub async fn printed(&self) -> Vec<PrintedJob> {
        pixpress_testkit::printer::printed(&self.printer.url).await
    }

    /// The value of the sample `name` with exactly `labels` in the metrics of the
    /// process at `base_url` (`None` also while it does not answer).
    pub async fn metric(&self, base_url: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let text = metrics::try_scrape(&self.http, base_url).await?;
        metrics::value(&text, name, labels)
    }

    /// A direct connection to print-service's database.
    pub async fn db(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.database_url, NoTls)
            .await
            .expect("connecting to print-service's database");
        tokio::spawn(conn);
        client
    }
}

/// Three distinct ports that were free a moment ago (held together while picked).
fn free_ports() -> [u16; 3] {
    let held: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    let port = |i: usize| held[i].local_addr().expect("a bound port").port();
    [port(0), port(1), port(2)]
}

/// An environment as [`RunningBinary`] takes it.
pub fn borrowed<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Every job print-service has: `(id, correlation_id, state)`.
pub async fn stored_jobs(db: &tokio_postgres::Client) -> Vec<(Uuid, Uuid, String)> {
    db.query("SELECT id, correlation_id, state FROM print_jobs", &[])
        .await
        .expect("reading print_jobs")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

/// Waits until print-service has exactly `expected` jobs, all `completed`.
pub async fn all_jobs_complete(db: &tokio_postgres::Client, expected: usize) {
    eventually(
        &format!("{expected} jobs to be completed"),
        PATIENCE,
        || async {
            let jobs = stored_jobs(db).await;
            (jobs.len() == expected && jobs.iter().all(|(_, _, state)| state == "completed"))
                .then_some(())
        },
    )
    .await;
}

/// Asserts that the printer printed exactly the jobs in `db`, each exactly once.
pub async fn assert_each_job_printed_once(processes: &Processes) {
    let db = processes.db().await;
    let stored: HashSet<Uuid> = stored_jobs(&db)
        .await
        .into_iter()
        .map(|(_, c, _)| c)
        .collect();
    let printed = processes.printed().await;
    let twice: Vec<_> = printed.iter().filter(|j| j.printed != 1).collect();
    assert!(twice.is_empty(), "not printed exactly once: {twice:?}");
    let on_printer: HashSet<Uuid> = printed.iter().map(|j| j.correlation_id).collect();
    assert_eq!(on_printer.len(), printed.len());
    assert_eq!(
        on_printer, stored,
        "the printer's jobs are not the stored jobs"
    );
}

/// One `POST /print/jobs` of a [`Load`].
#[derive(Debug, Clone)]
pub struct Attempt {
    pub idempotency_key: String,
    pub sent: Instant,
    pub took: Duration,
    /// The answer, or why there was none (connection refused or reset).
    pub outcome: Result<Answer, String>,
}

#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl Attempt {
    pub fn status(&self) -> Option<u16> {
        self.outcome.as_ref().ok().map(|a| a.status)
    }

    /// The id of the job a 201 created.
    pub fn job_id(&self) -> Option<Uuid> {
        let answer = self.outcome.as_ref().ok().filter(|a| a.status == 201)?;
        answer.body["id"].as_str().and_then(|id| id.parse().ok())
    }
}

/// Steady `POST /print/jobs` traffic: `workers` clients, each posting one job after
/// another (pausing `pause` between), each with its own `Idempotency-Key`.
pub struct Load {
    stop: Arc<AtomicBool>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(
        http: &reqwest::Client,
        url: &str,
        body: Value,
        workers: usize,
        pause: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let workers = (0..workers)
            .map(|_| {
                let (http, url, body) = (http.clone(), url.to_owned(), body.clone());
                let (stop, attempts) = (Arc::clone(&stop), Arc::clone(&attempts));
                tokio::spawn(async move {
                    while !stop.load(Ordering::Acquire) {
                        let attempt = post_once(&http, &url, &body).await;
                        let failed = attempt.outcome.is_err();
                        attempts.lock().unwrap().push(attempt);
                        // Refused connections come back at once: do not spin.
                        let rest = if failed {
                            pause.max(Duration::from_millis(20))
                        } else {
                            pause
                        };
                        tokio::time::sleep(rest).await;
                    }
                })
            })
            .collect();
        Self {
            stop,
            attempts,
            workers,
        }
    }

    /// The attempts so far.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().unwrap().clone()
    }

    /// How many attempts sent after `since` got `status`.
    pub fn answered_since(&self, status: u16, since: Instant) -> usize {
        self.attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.sent >= since && a.status() == Some(status))
            .count()
    }

    /// Waits until `n` attempts sent after `since` got `status`.
    pub async fn wait_for(&self, n: usize, status: u16, since: Instant) {
        eventually(
            &format!("{n} answers {status} under load"),
            PATIENCE,
            || async { (self.answered_since(status, since) >= n).then_some(()) },
        )
        .await;
    }

    /// Stops the clients (each finishes its request in flight); every attempt made.
    pub async fn stop(self) -> Vec<Attempt> {
        self.stop.store(true, Ordering::Release);
        for worker in self.workers {
            worker.await.expect("a load worker");
        }
        let attempts = self.attempts.lock().unwrap().clone();
        attempts
    }
}

async fn post_once(http: &reqwest::Client, url: &str, body: &Value) -> Attempt {
    let idempotency_key = Uuid::new_v4().to_string();
    let sent = Instant::now();
    let result = http
        .post(url)
        .header("idempotency-key", &idempotency_key)
        .json(body)
        .send()
        .await;
    let outcome = match result {
        Ok(res) => {
            let status = res.status().as_u16();
            let content_type = res
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            match res.bytes().await {
                Ok(bytes) => Ok(Answer {
                    status,
                    content_type,
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                }),
                Err(e) => Err(format!("body cut off after {status}: {e}")),
            }
        }
        Err(e) => Err(pixpress_kit::client::error_chain(&e)),
    };
    Attempt {
        idempotency_key,
        sent,
        took: sent.elapsed(),
        outcome,
    }
}
