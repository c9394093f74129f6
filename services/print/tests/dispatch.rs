//! Jobs reach their printer: the dispatcher, the real printer-sim and its signed
//! callbacks, retries while the printer is down, several replicas on one database,
//! a replica that dies holding leases, and a shutdown mid-dispatch.

mod helpers;

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use helpers::{bind, spawn_management, spawn_printer_on, TestApp, SECRET};
use pixpress_testkit::fixture::{Fixture, Reply};
use pixpress_testkit::http::eventually;
use pixpress_testkit::metrics;
use pixpress_testkit::printer::printed;
use pixpress_testkit::process::RunningBinary;
use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_job_goes_queued_dispatched_printing_completed() {
    let (app, printer) = TestApp::spawn_with_printer(|p| p.printer_delay_ms = 400, |_| {}).await;
    let file_id = app.ready_image(1).await;
    let id = app.create_job(1, file_id).await;

    let mut seen: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + PATIENCE;
    let job: Value = loop {
        let job: Value = app
            .get(&format!("/print/jobs/{id}"))
            .await
            .json()
            .await
            .unwrap();
        let state = job["state"].as_str().unwrap().to_owned();
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        if state == "completed" {
            break job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not completed; states seen: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        seen.contains(&"printing".to_owned()),
        "states seen: {seen:?}"
    );
    assert_eq!(job["attempts"], 1);
    assert!(job["error"].is_null());

    let jobs = printed(&printer).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].printed, jobs[0].received, jobs[0].copies),
        (1, 1, 1)
    );
    assert_eq!(
        jobs[0].image_url,
        pixpress_testkit::images::sample_image_url()
    );

    let text = app.metrics().await;
    let value = |name, labels: &[(&str, &str)]| metrics::value(&text, name, labels);
    assert_eq!(
        value(
            "pixpress_print_dispatch_attempts_total",
            &[("outcome", "accepted")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            "pixpress_print_job_transitions_total",
            &[("from", "printing"), ("to", "completed")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value("pixpress_print_callbacks_total", &[("outcome", "applied")]),
        Some(2.0)
    );
    assert_eq!(
        value("pixpress_print_dispatch_latency_seconds_count", &[]),
        Some(1.0)
    );
}

#[tokio::test]
async fn jobs_wait_for_a_printer_that_is_down_and_each_prints_once_when_it_is_back() {
    // The printer's port is reserved but nobody answers yet.
    let (printer_listener, printer_url) = bind();
    let printer_addr = printer_listener.local_addr().unwrap();
    drop(printer_listener);
    let management = spawn_management({
        let url = printer_url.clone();
        move |c| c.printer_url = url
    });
    let app = TestApp::spawn_with(management, |c| c.dispatch_max_attempts = 30).await;
    let file_id = app.ready_image(1).await;
    for _ in 0..10 {
        app.create_job(1, file_id).await;
    }
    let db = app.db.client().await;
    eventually(
        "failed attempts while the printer is down",
        PATIENCE,
        || async {
            let tried: i64 = db
                .query_one("SELECT count(*) FROM print_jobs WHERE attempts > 0", &[])
                .await
                .ok()?
                .get(0);
            (tried > 0).then_some(())
        },
    )
    .await;
    let metrics = app.metrics().await;
    assert!(metrics.contains(r#"outcome="unreachable""#), "{metrics}");

    // The printer comes up on its address.
    let listener = std::net::TcpListener::bind(printer_addr).unwrap();
    spawn_printer_on(listener, |_| {});
    app.all_jobs_reach("completed", 10, PATIENCE).await;
    let jobs = printed(&printer_url).await;
    assert_eq!(jobs.len(), 10);
    assert!(jobs.iter().all(|j| j.printed == 1), "{jobs:?}");
}

/// print-service whose printer answers every job with `status`; the printer, to see
/// what it was sent.
async fn app_whose_printer_answers(status: u16) -> (TestApp, Fixture) {
    let printer = Fixture::start(move |_| Reply::json(status, serde_json::json!({"error": "no"})));
    let url = printer.url.clone();
    let management = spawn_management(move |c| c.printer_url = url);
    (TestApp::spawn_with(management, |_| {}).await, printer)
}

#[tokio::test]
async fn a_printer_that_rejects_a_job_fails_it_with_the_reason() {
    let (app, fixture) = app_whose_printer_answers(400).await;
    let file_id = app.ready_image(1).await;
    let id = app.create_job(1, file_id).await;
    app.all_jobs_reach("failed", 1, PATIENCE).await;
    let job: Value = app
        .get(&format!("/print/jobs/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(job["error"].as_str().unwrap().contains("rejected"), "{job}");
    assert_eq!(fixture.requests().len(), 1, "a rejected job is not retried");
}

#[tokio::test]
async fn three_replicas_on_one_database_print_300_jobs_exactly_once() {
    let (app, printer) = TestApp::spawn_with_printer(|p| p.printer_capacity = 1000, |_| {}).await;
    let (second, _) = app.spawn_replica(|_| {});
    let (third, _) = app.spawn_replica(|_| {});
    let file_id = app.ready_image(1).await;
    let replicas = [app.url.clone(), second, third];
    let posts = (0..300).map(|i| {
        let url = format!("{}/print/jobs", replicas[i % 3]);
        let http = app.http.clone();
        async move {
            let res = http
                .post(url)
                .json(&serde_json::json!({"user_id": 1, "file_id": file_id}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
        }
    });
    // 30 at a time, so the 429 gate is not what this test measures.
    futures_util::stream::iter(posts)
        .buffer_unordered(30)
        .collect::<Vec<()>>()
        .await;
    app.all_jobs_reach("completed", 300, PATIENCE).await;
    let jobs = printed(&printer).await;
    assert_eq!(jobs.len(), 300);
    assert!(jobs.iter().all(|j| j.printed == 1), "a job printed twice");
    let ids: HashSet<_> = jobs.iter().map(|j| j.correlation_id).collect();
    assert_eq!(ids.len(), 300);
}

#[tokio::test]
async fn jobs_leased_by_a_replica_that_died_are_dispatched_after_the_lease() {
    let (app, printer) = TestApp::spawn_with_printer(|_| {}, |c| c.dispatch_concurrency = 1).await;
    let file_id = app.ready_image(1).await;
    // Every job is born leased to a replica that "died" before sending it: the state
    // a crash leaves behind. Only the lease's expiry lets this replica take them.
    let db = app.db.client().await;
    db.execute(
        "CREATE FUNCTION hold_new_jobs() RETURNS trigger AS $$
         BEGIN NEW.lease_owner := 'dead-replica'; NEW.lease_expires_at := now() + interval '2 seconds'; RETURN NEW; END
         $$ LANGUAGE plpgsql",
        &[],
    )
    .await
    .unwrap();
    db.execute(
        "CREATE TRIGGER hold BEFORE INSERT ON print_jobs FOR EACH ROW EXECUTE FUNCTION hold_new_jobs()",
        &[],
    )
    .await
    .unwrap();
    for _ in 0..3 {
        app.create_job(1, file_id).await;
    }
    // One round of a dispatcher, run here rather than waited for: it claims none.
    let claimed = app.workers(3, PATIENCE).dispatch().await;
    assert_eq!(claimed, 0, "leased jobs must wait for their lease");
    assert!(printed(&printer).await.is_empty());
    app.all_jobs_reach("completed", 3, PATIENCE).await;
    assert!(printed(&printer).await.iter().all(|j| j.printed == 1));
}

/// A printer that takes a second to accept each job, so sends are in flight long
/// enough to kill or stop the replica making them; and a print-service whose own
/// dispatcher is stopped once the test's image exists, so only the replicas the
/// test starts dispatch.
async fn slow_printer_setup() -> (TestApp, String, i64) {
    let (printer_listener, printer_url) = bind();
    spawn_printer_on(printer_listener, |p| p.printer_accept_delay_ms = 1000);
    let printer = printer_url.clone();
    let management = spawn_management(move |c| c.printer_url = printer);
    let app = TestApp::spawn_with(management, |_| {}).await;
    let file_id = app.ready_image(1).await;
    app.handle.stop();
    (app, printer_url, file_id)
}

async fn post_jobs(app: &TestApp, base_url: &str, file_id: i64, n: usize) {
    for _ in 0..n {
        let res = app
            .http
            .post(format!("{base_url}/print/jobs"))
            .json(&serde_json::json!({"user_id": 1, "file_id": file_id}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
}

#[tokio::test]
async fn a_replica_killed_mid_dispatch_leaves_its_jobs_to_another_after_the_lease() {
    let (app, printer_url, file_id) = slow_printer_setup().await;
    // The survivor's address: where a load balancer sends printer callbacks.
    let (survivor_listener, survivor_url) = bind();
    let service_token = pixpress_testkit::auth::service();
    let doomed = RunningBinary::start(
        env!("CARGO_BIN_EXE_print-service"),
        &[
            ("DATABASE_URL", app.db.url.as_str()),
            ("MANAGEMENT_URL", app.management_url.as_str()),
            ("PUBLIC_URL", survivor_url.as_str()),
            ("PRINTER_CALLBACK_SECRET", SECRET),
            ("DISPATCH_LEASE_MS", "1500"),
            ("BACKEND_TIMEOUT_MS", "10000"),
            ("AUTH_JWT_SECRET", pixpress_testkit::auth::SECRET),
            ("MANAGEMENT_TOKEN", &service_token),
        ],
    )
    .await;
    post_jobs(&app, &doomed.url, file_id, 3).await;
    eventually("the printer to receive a job", PATIENCE, || async {
        (!printed(&printer_url).await.is_empty()).then_some(())
    })
    .await;
    drop(doomed); // SIGKILL: its leases are never released.

    app.spawn_replica_on(survivor_listener, survivor_url, |_| {});
    app.all_jobs_reach("completed", 3, PATIENCE).await;
    let jobs = printed(&printer_url).await;
    assert_eq!(jobs.len(), 3);
    assert!(jobs.iter().all(|j| j.printed == 1), "{jobs:?}");
}

#[tokio::test]
async fn shutting_down_mid_dispatch_finishes_the_sends_and_loses_nothing() {
    let (app, printer_url, file_id) = slow_printer_setup().await;
    // Printers call back on the address the next instance will take.
    let (next_listener, next_url) = bind();
    let (replica, handle) =
        app.spawn_replica_on(bind().0, next_url.clone(), |c| c.dispatch_concurrency = 4);
    post_jobs(&app, &replica, file_id, 4).await;
    eventually("sends in flight", PATIENCE, || async {
        (!printed(&printer_url).await.is_empty()).then_some(())
    })
    .await;

    handle.stop();
    // The stopping replica finishes its sends and records them: no job is left
    // behind on a lease for someone to wait out.
    let db = app.db.client().await;
    eventually("every send to be recorded", PATIENCE, || async {
        let leased: i64 = db
            .query_one(
                "SELECT count(*) FROM print_jobs WHERE lease_owner IS NOT NULL",
                &[],
            )
            .await
            .ok()?
            .get(0);
        (leased == 0).then_some(())
    })
    .await;

    app.spawn_replica_on(next_listener, next_url, |_| {});
    app.all_jobs_reach("completed", 4, PATIENCE).await;
    let jobs = printed(&printer_url).await;
    assert_eq!(jobs.len(), 4);
    assert!(jobs.iter().all(|j| j.printed == 1), "{jobs:?}");
}

/// A printer at capacity answers 503 "busy": it is up, so its breaker stays closed
/// and every job gets through as slots free up.
#[tokio::test]
async fn a_busy_printer_does_not_open_its_breaker() {
    let (app, printer) = TestApp::spawn_with_printer(
        |p| {
            p.printer_capacity = 1;
            p.printer_delay_ms = 200;
        },
        |_| {},
    )
    .await;
    let file_id = app.ready_image(1).await;
    for _ in 0..8 {
        app.create_job(1, file_id).await;
    }
    app.all_jobs_reach("completed", 8, PATIENCE).await;
    let text = app.metrics().await;
    let busy = metrics::value(
        &text,
        "pixpress_print_dispatch_attempts_total",
        &[("outcome", "busy")],
    );
    assert!(
        busy.unwrap_or(0.0) >= 5.0,
        "the printer was never full: {text}"
    );
    assert_eq!(
        metrics::value(
            &text,
            "pixpress_print_dispatch_attempts_total",
            &[("outcome", "breaker_open")]
        ),
        None,
        "{text}"
    );
    assert!(printed(&printer).await.iter().all(|j| j.printed == 1));
}

/// A printer that answers busy for ever, taking nothing (its spool is broken, say),
/// is failing after all: once it has taken nothing for 10 s its breaker opens, and
/// its jobs wait without using up their attempts.
#[tokio::test]
async fn a_printer_that_only_ever_answers_busy_opens_its_breaker() {
    let (app, _printer) = app_whose_printer_answers(503).await;
    let file_id = app.ready_image(1).await;
    let started = std::time::Instant::now();
    let id = app.create_job(1, file_id).await;
    for _ in 0..40 {
        app.create_job(1, file_id).await;
    }
    eventually("the breaker opens", PATIENCE, || async {
        let text = app.metrics().await;
        let state = metrics::value(
            &text,
            "pixpress_print_printer_breaker_state",
            &[("printer_id", "1")],
        );
        (state == Some(2.0)).then_some(())
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "the breaker opened after {:?} of busy answers",
        started.elapsed()
    );
    let job = app.job(&id).await;
    assert_eq!(job["state"], "queued", "{job}");
    assert_eq!(job["attempts"], 0, "busy answers are not attempts: {job}");
}
