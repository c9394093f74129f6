//! Faults the system survives, each against real processes, with nothing lost:
//! PostgreSQL stopped under load and started again, PostgreSQL frozen (SIGSTOP)
//! under load and thawed, management-api killed and
//! started again, printer-sim killed mid-job and started again, and print-service
//! stopped with SIGTERM under load. (S3 going away is covered where the downloads
//! are: `while_s3_is_down_downloads_retry_and_complete_when_it_is_back` in
//! services/download/tests/downloads.rs.)
//!
//! print-service, management-api and printer-sim run as their real binaries, found
//! next to this test's executable: `cargo test --workspace` builds them first.
//! `cargo test -p pixpress-e2e` alone does not (nor rebuild them after a change): run
//! `cargo build --bins` before it; a missing binary is named with the `cargo build`
//! that makes it.
//!
//! The only time bounds asserted are the generous ones that are the point of a
//! test: an answer while a dependency is down comes within the backend timeout plus
//! a margin, and a stopping process exits within its grace period.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use pixpress_testkit::cluster::OwnServer;
use pixpress_testkit::http::eventually;
use pixpress_testkit::TestDatabase;
use serde_json::json;
use support::{
    all_jobs_complete, assert_each_job_printed_once, stored_jobs, Attempt, Load, Processes, Tuning,
    PATIENCE,
};
use uuid::Uuid;

/// What "fast" means for an answer while a dependency is down: the backend timeout
/// plus this margin (a hang would be minutes, or the client's 30 s timeout).
const MARGIN: Duration = Duration::from_secs(3);

/// Jobs a printer answered 202 to, as print-service counts them.
async fn acknowledged(system: &Processes) -> Option<f64> {
    let name = "pixpress_print_dispatch_attempts_total";
    system
        .metric(&system.print.url, name, &[("outcome", "accepted")])
        .await
}

/// The ids of the jobs answered 201.
fn created_ids(attempts: &[Attempt]) -> HashSet<Uuid> {
    attempts.iter().filter_map(Attempt::job_id).collect()
}

fn slowest(attempts: &[Attempt], status: u16) -> Duration {
    attempts
        .iter()
        .filter(|a| a.status() == Some(status))
        .map(|a| a.took)
        .max()
        .unwrap_or_default()
}

fn count(attempts: &[Attempt], status: u16) -> usize {
    attempts
        .iter()
        .filter(|a| a.status() == Some(status))
        .count()
}

/// After a database outage under load: print-service was not restarted, every
/// request got an answer, each 201 or a problem+json 503 within the backend timeout
/// (plus a margin), and every job answered 201 is stored and printed exactly once.
async fn assert_outage_lost_nothing(
    system: &Processes,
    print_pid: Option<u32>,
    attempts: &[Attempt],
    backend_timeout: Duration,
    what: &str,
) {
    assert_eq!(
        system.print.pid(),
        print_pid,
        "print-service was not restarted"
    );
    let failures: Vec<_> = attempts.iter().filter(|a| a.outcome.is_err()).collect();
    assert!(
        failures.is_empty(),
        "requests without an answer: {failures:?}"
    );
    let unexpected: Vec<_> = attempts
        .iter()
        .filter(|a| !matches!(a.status(), Some(201 | 503)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "answers other than 201/503: {unexpected:?}"
    );
    for attempt in attempts.iter().filter(|a| a.status() == Some(503)) {
        let answer = attempt.outcome.as_ref().unwrap();
        assert_eq!(
            answer.content_type, "application/problem+json",
            "{attempt:?}"
        );
        assert_eq!(answer.body["status"], 503, "{attempt:?}");
    }
    let slowest_answer = attempts.iter().map(|a| a.took).max().unwrap_or_default();
    assert!(
        slowest_answer <= backend_timeout + MARGIN,
        "an answer took {slowest_answer:?} (BACKEND_TIMEOUT_MS {backend_timeout:?})"
    );

    let created = created_ids(attempts);
    let db = system.db().await;
    let stored: HashSet<Uuid> = stored_jobs(&db)
        .await
        .into_iter()
        .map(|(id, ..)| id)
        .collect();
    let missing: Vec<_> = created.difference(&stored).collect();
    assert!(missing.is_empty(), "201 but not stored: {missing:?}");
    all_jobs_complete(&db, stored.len()).await;
    assert_each_job_printed_once(system).await;
    eprintln!(
        "{what}: {} requests, {} × 201 ({} stored, {} printed once each), {} × 503 \
         (slowest 503 {:?}, slowest 201 {:?})",
        attempts.len(),
        created.len(),
        stored.len(),
        system.printed().await.len(),
        count(attempts, 503),
        slowest(attempts, 503),
        slowest(attempts, 201),
    );
}

/// A database outage test: the system on a PostgreSQL server of the test's own, under
/// steady load. Its fields drop in order: the processes stop before the server.
struct DatabaseUnderLoad {
    load: Load,
    system: Processes,
    print_pid: Option<u32>,
    server: OwnServer,
}

impl DatabaseUnderLoad {
    /// The answer to every request while PostgreSQL is away comes within this.
    const BACKEND_TIMEOUT: Duration = Duration::from_millis(1000);

    /// A server with a `pixpress` database, the system on it, and load on
    /// `POST /print/jobs` that has had 20 jobs created.
    async fn start() -> Self {
        let server = OwnServer::start().await;
        let (admin, conn) = tokio_postgres::connect(&server.url("postgres"), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        admin
            .batch_execute("CREATE DATABASE pixpress")
            .await
            .unwrap();
        drop(admin);

        let tuning = Tuning {
            backend_timeout_ms: Self::BACKEND_TIMEOUT.as_millis() as u64,
            ..Tuning::default()
        };
        let system = Processes::start(&server.url("pixpress"), &tuning).await;
        let print_pid = system.print.pid();
        let file_id = system.ready_image(1).await;
        let load = Load::start(
            &system.http,
            &format!("{}/print/jobs", system.print.url),
            json!({"user_id": 1, "file_id": file_id}),
            4,
            Duration::from_millis(50),
        );
        load.wait_for(20, 201, Instant::now()).await;
        Self {
            load,
            system,
            print_pid,
            server,
        }
    }

    /// Waits until, PostgreSQL being away since `since`, print-service is not ready and
    /// 10 requests got 503.
    async fn wait_for_503s(&self, since: Instant) {
        self.system.wait_ready_is(&self.system.print.url, 503).await;
        self.load.wait_for(10, 503, since).await;
    }

    /// Waits until, PostgreSQL being back since `since`, print-service is ready and 20
    /// more jobs were created; then stops the load and asserts that the outage (`what`)
    /// lost nothing.
    async fn assert_recovered(self, since: Instant, what: &str) {
        self.system.wait_ready(&self.system.print.url).await;
        self.load.wait_for(20, 201, since).await;
        let attempts = self.load.stop().await;
        assert_outage_lost_nothing(
            &self.system,
            self.print_pid,
            &attempts,
            Self::BACKEND_TIMEOUT,
            what,
        )
        .await;
    }
}

#[tokio::test]
async fn postgres_stopped_under_load_gives_fast_503s_and_loses_no_accepted_job() {
    let mut outage = DatabaseUnderLoad::start().await;

    outage.server = outage.server.stop().await;
    let stopped = Instant::now();
    outage.wait_for_503s(stopped).await;
    // Down for a few seconds, as an operator's restart takes.
    tokio::time::sleep(Duration::from_secs(2)).await;

    outage.server = outage.server.start_again().await;
    let restarted = Instant::now();
    outage.assert_recovered(restarted, "postgres outage").await;
    eprintln!("outage {:?}", restarted - stopped);
}

// Several threads: the server's drop at the end waits for its backends, which wait on
// the services' connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_frozen_under_load_gives_503s_within_the_deadline_and_loses_no_accepted_job() {
    let outage = DatabaseUnderLoad::start().await;

    // A stalled disk: connections stay open, nothing answers, nothing is refused.
    let frozen = outage.server.freeze();
    let froze = Instant::now();
    outage.wait_for_503s(froze).await;
    drop(frozen);

    let thawed = Instant::now();
    outage.assert_recovered(thawed, "frozen postgres").await;
    eprintln!("frozen for {:?}", thawed - froze);
}

#[tokio::test]
async fn management_api_killed_gives_fast_503s_until_it_is_back() {
    let db = TestDatabase::new().await;
    let backend_timeout = Duration::from_millis(2000);
    let tuning = Tuning {
        backend_timeout_ms: backend_timeout.as_millis() as u64,
        // Lookups take a moment, so some are in flight when the process dies.
        management_latency_ms: 300,
        ..Tuning::default()
    };
    let mut system = Processes::start(&db.url, &tuning).await;
    let file_id = system.ready_image(1).await;
    let before = system.post_job(1, file_id).await;
    assert_eq!(before.status(), 201);
    let before: serde_json::Value = before.json().await.unwrap();

    let in_flight: Vec<_> = (0..3)
        .map(|_| {
            let (http, url) = (
                system.http.clone(),
                format!("{}/print/jobs", system.print.url),
            );
            tokio::spawn(async move {
                let sent = Instant::now();
                let res = http
                    .post(url)
                    .json(&json!({"user_id": 1, "file_id": file_id}))
                    .send()
                    .await
                    .expect("print-service answers");
                (res.status().as_u16(), sent.elapsed())
            })
        })
        .collect();
    eventually("a lookup in flight", PATIENCE, || async {
        let in_flight = "pixpress_management_lookups_in_flight";
        let lookups = system
            .metric(&system.management.url, in_flight, &[])
            .await?;
        (lookups != 0.0).then_some(())
    })
    .await;
    system.management.kill();

    let mut answers = Vec::new();
    for request in in_flight {
        answers.push(request.await.unwrap());
    }
    for _ in 0..5 {
        let sent = Instant::now();
        let res = system.post_job(1, file_id).await;
        let took = sent.elapsed();
        let status = res.status().as_u16();
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        assert!(res.headers().contains_key("retry-after"));
        let problem: serde_json::Value = res.json().await.unwrap();
        assert_eq!(problem["status"], status);
        answers.push((status, took));
    }
    for (status, took) in &answers {
        assert!(matches!(status, 502 | 503), "{answers:?}");
        assert!(*took <= backend_timeout + MARGIN, "{answers:?}");
    }
    // What needs no management API keeps working.
    let job = system
        .http
        .get(format!(
            "{}/print/jobs/{}",
            system.print.url,
            before["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(job.status(), 200);

    system.management.start_again().await;
    // The mock keeps its records in memory: the image is recorded again.
    let file_id = system.ready_image(1).await;
    let after = system.post_job(1, file_id).await;
    assert_eq!(after.status(), 201);
    let db_client = system.db().await;
    all_jobs_complete(&db_client, 2).await;
    assert_each_job_printed_once(&system).await;
    eprintln!(
        "management-api killed: answers while down {:?} (status, time)",
        answers
    );
}

#[tokio::test]
async fn printer_killed_mid_job_prints_every_job_exactly_once_after_a_restart() {
    let db = TestDatabase::new().await;
    let spool = tempfile::tempdir().unwrap();
    let tuning = Tuning {
        // Slow to accept and to print, so the kill finds jobs in both windows.
        printer_accept_delay_ms: 1000,
        printer_delay_ms: 4000,
        printer_state_dir: Some(spool.path().to_str().unwrap().to_owned()),
        ..Tuning::default()
    };
    let mut system = Processes::start(&db.url, &tuning).await;
    system.wait_ready(&system.printer.url).await;
    let file_id = system.ready_image(1).await;
    let db_client = system.db().await;

    // Three jobs the printer acknowledged (its 202 reached the dispatcher)...
    for _ in 0..3 {
        assert_eq!(system.post_job(1, file_id).await.status(), 201);
    }
    eventually("3 jobs acknowledged by the printer", PATIENCE, || async {
        (acknowledged(&system).await? == 3.0).then_some(())
    })
    .await;
    // ...and three it has taken but not acknowledged yet.
    for _ in 0..3 {
        assert_eq!(system.post_job(1, file_id).await.status(), 201);
    }
    let at_kill = eventually("6 jobs on the printer's spool", PATIENCE, || async {
        let jobs = system.printed().await;
        (jobs.len() == 6).then_some(jobs)
    })
    .await;
    system.printer.kill();
    assert!(
        at_kill.iter().all(|j| j.printed == 0),
        "the kill came after printing: {at_kill:?}"
    );
    let acknowledged = acknowledged(&system).await.unwrap_or_default();

    // Jobs keep coming while the printer is down.
    for _ in 0..2 {
        assert_eq!(system.post_job(1, file_id).await.status(), 201);
    }
    system.printer.set_env("PRINTER_ACCEPT_DELAY_MS", "0");
    system.printer.set_env("PRINTER_DELAY_MS", "100");
    system.printer.start_again().await;

    all_jobs_complete(&db_client, 8).await;
    assert_each_job_printed_once(&system).await;
    // A job whose acknowledgement the kill cut off is finished by whichever comes
    // first: the restarted printer resuming it from its spool, or the dispatcher
    // sending it again (then recognised as a repeat). Either way it prints once.
    let printed = system.printed().await;
    eprintln!(
        "printer killed: {} jobs on its spool at the kill, none printed, {acknowledged} \
         acknowledged; after the restart {} jobs printed once each, received counts {:?}",
        at_kill.len(),
        printed.len(),
        printed.iter().map(|j| j.received).collect::<Vec<_>>(),
    );
}

#[tokio::test]
async fn sigterm_under_load_finishes_in_flight_requests_and_loses_nothing() {
    let db = TestDatabase::new().await;
    let grace = Duration::from_secs(10);
    let tuning = Tuning {
        shutdown_grace_secs: grace.as_secs(),
        // Every request spends a while in its lookup: many are in flight at SIGTERM.
        management_latency_ms: 200,
        ..Tuning::default()
    };
    let mut system = Processes::start(&db.url, &tuning).await;
    let file_id = system.ready_image(1).await;
    let load = Load::start(
        &system.http,
        &format!("{}/print/jobs", system.print.url),
        json!({"user_id": 1, "file_id": file_id}),
        8,
        Duration::ZERO,
    );
    let began = Instant::now();
    load.wait_for(30, 201, began).await;

    let signalled = Instant::now();
    let status = system.print.sigterm(grace).await;
    let exited_after = signalled.elapsed();
    assert!(status.success(), "print-service exited with {status}");
    let attempts = load.stop().await;

    // Any answer is a 201; a request without one was never taken (refused, or sent on
    // a connection the server was closing) and created nothing.
    let answered_otherwise: Vec<_> = attempts
        .iter()
        .filter(|a| a.status().is_some_and(|s| s != 201))
        .collect();
    assert!(answered_otherwise.is_empty(), "{answered_otherwise:?}");
    let finished_after_signal = attempts
        .iter()
        .filter(|a| a.status() == Some(201) && a.sent < signalled && a.sent + a.took > signalled)
        .count();
    assert!(
        finished_after_signal > 0,
        "no request was in flight at SIGTERM"
    );

    let created = created_ids(&attempts);
    let db_client = system.db().await;
    let stored: HashSet<Uuid> = stored_jobs(&db_client)
        .await
        .into_iter()
        .map(|(id, ..)| id)
        .collect();
    assert_eq!(
        stored, created,
        "the stored jobs are exactly those answered 201 (none created for a request \
         that got no answer)"
    );

    // The next instance dispatches what the stopped one accepted.
    system.print.start_again().await;
    all_jobs_complete(&db_client, stored.len()).await;
    assert_each_job_printed_once(&system).await;
    let unanswered = attempts.iter().filter(|a| a.outcome.is_err()).count();
    let why: HashSet<&str> = attempts
        .iter()
        .filter_map(|a| a.outcome.as_ref().err())
        .map(|e| e.rsplit(": ").next().unwrap_or(e))
        .collect();
    eprintln!(
        "sigterm: {} × 201 ({finished_after_signal} in flight at the signal and finished), \
         {unanswered} never taken ({why:?}); exit 0 after {exited_after:?}; {} stored, all \
         printed once",
        created.len(),
        stored.len()
    );
}
