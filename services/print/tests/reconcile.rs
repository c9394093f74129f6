//! Reconciliation: a job whose callback is overdue is asked about at its printer
//! (`GET /jobs/{correlation_id}`), with a real printer-sim (or a scripted one) and a
//! real PostgreSQL. A printer that forgot the job gets it again; a lost callback is
//! made up for from the printer's record; a printer that keeps forgetting fails the
//! job with `printer_lost_job`; a printer that is down or still at work is left be.
//!
//! Most tests drive a dispatcher and a reconciler of their own a round at a time
//! (the app runs none); one runs the app's own, as deployed.

mod helpers;

use std::time::Duration;

use helpers::{bind, rebind, spawn_management, spawn_printer_on, TestApp, Workers};
use pixpress_domain::printer::PrinterJobState;
use pixpress_kit::webhook::WebhookSecret;
use pixpress_testkit::fixture::{Fixture, Reply};
use pixpress_testkit::http::eventually;
use pixpress_testkit::metrics;
use pixpress_testkit::printer::printed;
use serde_json::json;
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(60);
/// Short, so checks come due quickly.
const DEADLINE: Duration = Duration::from_millis(100);

/// An app without workers of its own whose jobs go to the printer at `printer_url`,
/// and the test's workers.
async fn app_printing_on(printer_url: &str, max_attempts: i32) -> (TestApp, Workers) {
    let printer = printer_url.to_owned();
    let management = spawn_management(move |c| c.printer_url = printer);
    let app = TestApp::spawn_with(management, |c| {
        c.dispatch_enabled = false;
        c.print_job_deadline_ms = DEADLINE.as_millis() as u64;
    })
    .await;
    let workers = app.workers(max_attempts, DEADLINE);
    (app, workers)
}

/// A printer taking `delay_ms` per copy that, once stopped, drops its connections
/// at once (no grace), so nothing reaches it after it is gone.
fn stops_at_once(delay_ms: u64) -> impl FnOnce(&mut pixpress_printer_sim::Config) {
    move |p| {
        p.printer_delay_ms = delay_ms;
        p.common.shutdown_grace_secs = 0;
    }
}

/// A job of `copies` sent to its printer by the test's dispatcher; its id.
async fn dispatched_job(app: &TestApp, workers: &Workers, copies: i32) -> String {
    let file_id = app.ready_image(1).await;
    let res = app
        .post_job(json!({"user_id": 1, "file_id": file_id, "copies": copies}))
        .await;
    assert_eq!(res.status(), 201);
    let id = res.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(workers.dispatch().await, 1);
    id
}

#[tokio::test]
async fn a_job_its_restarted_printer_forgot_is_sent_again_and_printed_once_there() {
    let (listener, printer_url) = bind();
    let addr = listener.local_addr().unwrap();
    // Slow: still printing when it restarts, and with no spool it forgets the job.
    let first = spawn_printer_on(listener, stops_at_once(600_000));
    let (app, workers) = app_printing_on(&printer_url, 3).await;
    let id = dispatched_job(&app, &workers, 1).await;
    app.job_reaches(&id, "printing").await;

    first.stop();
    spawn_printer_on(rebind(addr).await, |_| {});
    assert!(
        printed(&printer_url).await.is_empty(),
        "the new printer knows nothing"
    );

    // (A check may first meet the old printer's last connection closing: then it is
    // only asked again.)
    eventually("the job to be re-sent", PATIENCE, || async {
        workers.reconcile().await;
        (workers.reconciled("resent") == 1).then_some(())
    })
    .await;
    let job = app.job_reaches(&id, "completed").await;
    assert_eq!(job["attempts"], 2, "dispatched once, re-sent once: {job}");
    let jobs = printed(&printer_url).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0].received, jobs[0].printed), (1, 1), "{jobs:?}");
}

#[tokio::test]
async fn a_completed_job_whose_callbacks_were_refused_is_completed_from_the_printers_record() {
    // The printer signs with a secret print-service does not know: every callback is
    // refused (401) and the printer gives up on it. The app's own workers run.
    let (_, other_secret) = WebhookSecret::generate();
    let (app, printer_url) = TestApp::spawn_with_printer(
        |p| p.printer_callback_secret = Some(other_secret),
        |c| c.print_job_deadline_ms = 200,
    )
    .await;
    let file_id = app.ready_image(1).await;
    let id = app.create_job(1, file_id).await;

    let job = app.job_reaches(&id, "completed").await;
    assert!(job["error"].is_null(), "{job}");
    let at_printer = printed(&printer_url).await;
    assert_eq!(at_printer.len(), 1);
    assert_eq!(at_printer[0].status, PrinterJobState::Completed);
    assert!(!at_printer[0].reported, "no callback got through");

    let text = app.metrics().await;
    let value = |name, labels: &[(&str, &str)]| metrics::value(&text, name, labels);
    assert!(
        value(
            "pixpress_print_callbacks_total",
            &[("outcome", "unauthorized")]
        ) >= Some(1.0),
        "{text}"
    );
    assert!(
        value(
            "pixpress_print_jobs_reconciled_total",
            &[("outcome", "applied")]
        ) >= Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            "pixpress_print_job_transitions_total",
            &[("from", "printing"), ("to", "completed")]
        ),
        Some(1.0),
        "a completed job passes through printing: {text}"
    );
}

#[tokio::test]
async fn a_printer_that_never_knows_the_job_fails_it_with_printer_lost_job_after_the_resends() {
    // Takes every job and then never knows it.
    let printer = Fixture::start(|req| match req.method.as_str() {
        "POST" => Reply::json(
            202,
            json!({"correlation_id": Uuid::nil(), "duplicate": false}),
        ),
        _ => Reply::json(404, json!({"title": "no such job", "status": 404})),
    });
    let (app, workers) = app_printing_on(&printer.url, 2).await;
    let id = dispatched_job(&app, &workers, 1).await;

    for _ in 0..3 {
        workers.reconcile().await;
    }
    let job = app.job(&id).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"], "printer_lost_job");
    assert_eq!(job["attempts"], 3, "dispatched once, re-sent twice: {job}");
    let calls: Vec<String> = printer
        .requests()
        .iter()
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(calls, ["POST", "GET", "POST", "GET", "POST", "GET"]);
    assert_eq!(
        (workers.reconciled("resent"), workers.reconciled("lost")),
        (2, 1)
    );
}

#[tokio::test]
async fn a_job_whose_printer_is_down_is_asked_about_later_and_never_failed_for_it() {
    let (listener, printer_url) = bind();
    let printer = spawn_printer_on(listener, stops_at_once(600_000));
    // One re-send allowed: three unanswered checks are not three lost jobs.
    let (app, workers) = app_printing_on(&printer_url, 1).await;
    let id = dispatched_job(&app, &workers, 1).await;
    app.job_reaches(&id, "printing").await;
    printer.stop();
    // Nothing listens there any more.
    drop(rebind(bind_addr(&printer_url)).await);

    for _ in 0..3 {
        workers.reconcile().await;
    }
    assert_eq!(workers.reconciled("unreachable"), 3);
    let job = app.job(&id).await;
    assert_eq!(job["state"], "printing", "{job}");
    assert!(job["error"].is_null(), "{job}");
    assert_eq!(app.job_column::<i32>(&id, "check_failures").await, 3);
    // The third wait of the backoff (≥ 1 s) is longer than the deadline.
    assert!(
        app.job_column::<bool>(&id, "next_attempt_at > now() + interval '500 ms'")
            .await
    );
}

fn bind_addr(url: &str) -> std::net::SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

#[tokio::test]
async fn a_job_still_printing_is_checked_after_its_deadline_per_copy_and_left_alone() {
    let (listener, printer_url) = bind();
    spawn_printer_on(listener, |p| p.printer_delay_ms = 600_000);
    let printer = printer_url.clone();
    let management = spawn_management(move |c| c.printer_url = printer);
    let app = TestApp::spawn_with(management, |c| {
        c.dispatch_enabled = false;
        c.print_job_deadline_ms = 1000;
    })
    .await;
    let workers = app.workers(3, Duration::from_secs(1));
    let id = dispatched_job(&app, &workers, 3).await;
    app.job_reaches(&id, "printing").await;

    // Three copies at a second each: not due for a while.
    let wait = "extract(epoch FROM next_attempt_at - now())::float8";
    assert!(app.job_column::<f64>(&id, wait).await > 2.0);
    assert_eq!(
        pixpress_kit::queue::step(&workers.reconciler, 16)
            .await
            .unwrap(),
        0,
        "not checked before its deadline"
    );

    workers.reconcile().await;
    assert_eq!(workers.reconciled("unchanged"), 1);
    assert_eq!(app.job(&id).await["state"], "printing");
    assert!(
        app.job_column::<f64>(&id, wait).await > 2.0,
        "the next check is a whole deadline away"
    );
    let jobs = printed(&printer_url).await;
    assert_eq!(
        jobs[0].received, 1,
        "a job its printer knows is not re-sent"
    );
}

#[tokio::test]
async fn two_replicas_never_check_the_same_job_at_once() {
    let (listener, printer_url) = bind();
    spawn_printer_on(listener, |p| p.printer_delay_ms = 600_000);
    let (app, workers) = app_printing_on(&printer_url, 3).await;
    let other = app.workers(3, DEADLINE);
    dispatched_job(&app, &workers, 1).await;

    let checked = eventually("the job to come due", PATIENCE, || async {
        let (a, b) = tokio::join!(
            pixpress_kit::queue::step(&workers.reconciler, 16),
            pixpress_kit::queue::step(&other.reconciler, 16),
        );
        let checked = a.unwrap() + b.unwrap();
        (checked > 0).then_some(checked)
    })
    .await;
    assert_eq!(checked, 1);
}

#[tokio::test]
async fn the_depth_and_oldest_job_age_are_gauges_per_state() {
    let app = TestApp::spawn().await;
    let file_id = app.ready_image(1).await;
    let id = app.create_job(1, file_id).await;
    app.db
        .client()
        .await
        .execute(
            "UPDATE print_jobs SET created_at = now() - interval '1 hour' WHERE id = $1",
            &[&Uuid::parse_str(&id).unwrap()],
        )
        .await
        .unwrap();

    let text = eventually("the gauge to see the old job", PATIENCE, || async {
        let text = app.metrics().await;
        let age = metrics::value(
            &text,
            "pixpress_print_oldest_job_age_seconds",
            &[("state", "queued")],
        )?;
        (age >= 3600.0).then_some(text)
    })
    .await;
    for state in ["dispatched", "printing"] {
        assert_eq!(
            metrics::value(
                &text,
                "pixpress_print_oldest_job_age_seconds",
                &[("state", state)]
            ),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            metrics::value(&text, "pixpress_print_queue_depth", &[("state", state)]),
            Some(0.0),
            "{text}"
        );
    }
    assert_eq!(
        metrics::value(&text, "pixpress_print_queue_depth", &[("state", "queued")]),
        Some(1.0),
        "{text}"
    );
}
