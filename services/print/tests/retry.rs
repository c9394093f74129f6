//! `POST /print/jobs/{id}/retry`: an admin sends a failed job again, and the log
//! says who did; everyone else, and every job that has not failed, is refused.

mod helpers;

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use helpers::{assert_problem, bind, rebind, spawn_management, spawn_printer_on, TestApp};
use pixpress_testkit::auth;
use pixpress_testkit::http::{eventually, free_port};
use pixpress_testkit::metrics;
use pixpress_testkit::printer::printed;
use pixpress_testkit::TestDatabase;
use serde_json::Value;
use uuid::Uuid;

async fn retry_as(app: &TestApp, token: Option<&str>, id: &str) -> reqwest::Response {
    let mut req = reqwest::Client::new().post(format!("{}/print/jobs/{id}/retry", app.url));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_failed_job_retried_by_an_admin_is_queued_afresh_and_printed() {
    let (listener, printer_url) = bind();
    let addr = listener.local_addr().unwrap();
    let jammed = spawn_printer_on(listener, |p| {
        p.printer_fail_rate = 1.0;
        // Once stopped it drops its connections at once: nothing reaches it after.
        p.common.shutdown_grace_secs = 0;
    });
    let printer = printer_url.clone();
    let management = spawn_management(move |c| c.printer_url = printer);
    let app = TestApp::spawn_with(management, |_| {}).await;
    let file_id = app.ready_image(1).await;
    let id = app.create_job(1, file_id).await;
    let failed = app.job_reaches(&id, "failed").await;
    assert_eq!(failed["error"], "paper jam");
    let first_attempt = app.job_column::<Uuid>(&id, "correlation_id").await;

    // The jam is cleared: a working printer where the jammed one was.
    jammed.stop();
    spawn_printer_on(rebind(addr).await, |_| {});
    let res = retry_as(&app, Some(&auth::admin()), &id).await;
    assert_eq!(res.status(), 200);
    let queued: Value = res.json().await.unwrap();
    assert_eq!(
        (&queued["state"], &queued["attempts"], &queued["error"]),
        (&Value::from("queued"), &Value::from(0), &Value::Null),
        "{queued}"
    );

    app.job_reaches(&id, "completed").await;
    assert_ne!(
        app.job_column::<Uuid>(&id, "correlation_id").await,
        first_attempt,
        "a retry is a new job to the printer"
    );
    let jobs = printed(&printer_url).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].printed, 1);

    let text = app.metrics().await;
    assert_eq!(
        metrics::value(
            &text,
            "pixpress_print_job_transitions_total",
            &[("from", "failed"), ("to", "queued")]
        ),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn only_an_admin_may_retry_and_only_a_failed_job_that_exists() {
    let app = TestApp::spawn().await;
    let file_id = app.ready_image(1).await;
    let id = app.create_job(1, file_id).await;
    let admin = auth::admin();
    let owner = auth::user(1);

    let res = retry_as(&app, None, &id).await;
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_problem(res, 401).await;
    // Not even the job's owner.
    let refused = assert_problem(retry_as(&app, Some(&owner), &id).await, 403).await;
    assert!(
        refused["type"].as_str().unwrap().ends_with("admin-only"),
        "{refused}"
    );
    let missing = Uuid::new_v4().to_string();
    for unknown in [missing.as_str(), "not-a-uuid"] {
        assert_problem(retry_as(&app, Some(&admin), unknown).await, 404).await;
    }
    let conflict = assert_problem(retry_as(&app, Some(&admin), &id).await, 409).await;
    assert!(
        conflict["type"].as_str().unwrap().ends_with("not-failed"),
        "{conflict}"
    );
    assert_eq!(app.job(&id).await["state"], "queued", "nothing changed");
}

#[tokio::test]
async fn a_retry_while_the_database_is_unreachable_is_503() {
    let mut config = pixpress_print::Config::with_database("postgres://postgres@127.0.0.1:1/none");
    config.auth = auth::args();
    config.backend_timeout_ms = 500;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (url, _handle) = pixpress_print::build(config, listener).unwrap().spawn();
    let res = reqwest::Client::new()
        .post(format!("{url}/print/jobs/{}/retry", Uuid::new_v4()))
        .bearer_auth(auth::admin())
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["retry-after"], "1");
    assert_problem(res, 503).await;
}

#[tokio::test]
async fn a_retry_is_logged_with_the_admin_the_job_and_its_previous_error() {
    let db = TestDatabase::new().await;
    let id = Uuid::now_v7();
    db.client()
        .await
        .execute(
            "INSERT INTO print_jobs (id, user_id, file_id, copies, state, correlation_id,
                                     printer_id, printer_url, image_url, error)
             VALUES ($1, 1, 1, 1, 'failed', $2, 1, 'http://127.0.0.1:1', 'http://images/x.jpg',
                     'printer_lost_job')",
            &[&id, &Uuid::new_v4()],
        )
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{}", free_port());
    let mut binary = KilledOnDrop(
        Command::new(env!("CARGO_BIN_EXE_print-service"))
            .env("HTTP_ADDR", url.trim_start_matches("http://"))
            .env("DATABASE_URL", &db.url)
            .env("AUTH_JWT_SECRET", auth::SECRET)
            .env("DISPATCH_ENABLED", "false")
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    eventually(
        "print-service to be ready",
        Duration::from_secs(60),
        || async {
            let res = reqwest::get(format!("{url}/ready")).await.ok()?;
            (res.status() == 200).then_some(())
        },
    )
    .await;

    let res = reqwest::Client::new()
        .post(format!("{url}/print/jobs/{id}/retry"))
        .bearer_auth(auth::token("operator-ann", &["admin"]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut stderr = binary.0.stderr.take().unwrap();
    drop(binary);
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();
    let audit: Vec<&str> = log.lines().filter(|l| l.contains("audit")).collect();
    assert_eq!(audit.len(), 1, "{log}");
    for part in [
        " INFO ",
        "operator-ann",
        &id.to_string(),
        "printer_lost_job",
    ] {
        assert!(
            audit[0].contains(part),
            "{part:?} missing from {:?}",
            audit[0]
        );
    }
}

/// A child process that does not outlive the test, whatever happens in it.
struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
