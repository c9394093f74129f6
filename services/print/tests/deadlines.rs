//! A frozen PostgreSQL (every server process SIGSTOPped, as a stalled disk would
//! leave it) makes every print-service route that needs it answer 503 within the
//! database deadline instead of hanging; once it thaws, the same service works again.

mod helpers;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use helpers::{record_image, spawn_management, SECRET};
use pixpress_kit::webhook::{unix_now, WebhookSecret};
use pixpress_testkit::auth;
use pixpress_testkit::cluster::OwnServer;
use pixpress_testkit::http::eventually;
use serde_json::{json, Value};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_millis(500);
/// Room for a loaded machine on top of the deadline; far below "hangs".
const MARGIN: Duration = Duration::from_secs(4);

// Several threads: the server's drop at the end waits for its backends to exit, and
// those wait on the service's connections, which a single blocked thread would starve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needing_a_frozen_database_answers_503_within_the_deadline() {
    let server = OwnServer::start().await;
    let management = spawn_management(|c| c.printer_url = "http://127.0.0.1:1".into());
    let mut config = pixpress_print::Config::with_database(server.url("postgres"));
    config.database.db_statement_timeout_ms = Some(DEADLINE.as_millis() as u64);
    config.management_url = management.clone();
    config.management_token = Some(auth::service());
    config.printer_callback_secret = Some(SECRET.into());
    config.auth = auth::args();
    config.dispatch_enabled = false;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (url, _handle) = pixpress_print::build(config, listener).unwrap().spawn();
    let http = auth::client_as(&auth::admin());
    eventually(
        "print-service to be ready",
        Duration::from_secs(60),
        || async {
            let res = http.get(format!("{url}/ready")).send().await.ok()?;
            (res.status() == 200).then_some(())
        },
    )
    .await;
    let file_id = record_image(&http, &management, 1, true).await;
    let job = json!({"user_id": 1, "file_id": file_id});
    let created = http
        .post(format!("{url}/print/jobs"))
        .json(&job)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job_url = format!("{url}/print/jobs/{id}");

    let frozen = server.freeze();
    let secret = WebhookSecret::parse(SECRET).unwrap();
    let body = r#"{"status": "printing"}"#;
    let now = unix_now();
    let callback = http
        .post(format!("{url}/print/callbacks/{}", Uuid::new_v4()))
        .header("content-type", "application/json")
        .header("webhook-id", "msg_frozen")
        .header("webhook-timestamp", now.to_string())
        .header(
            "webhook-signature",
            secret.sign("msg_frozen", now, body.as_bytes()),
        )
        .body(body);
    let requests = [
        (
            "POST a job",
            http.post(format!("{url}/print/jobs")).json(&job),
        ),
        ("GET the jobs", http.get(format!("{url}/print/jobs"))),
        ("GET the job", http.get(&job_url)),
        ("cancel the job", http.post(format!("{job_url}/cancel"))),
        ("retry the job", http.post(format!("{job_url}/retry"))),
        ("a printer callback", callback),
    ];
    let answers =
        futures_util::future::join_all(requests.into_iter().map(|(what, req)| async move {
            let started = Instant::now();
            let res = req.send().await.unwrap();
            (what, res.status().as_u16(), started.elapsed())
        }))
        .await;
    for (what, status, took) in answers {
        assert_eq!(status, 503, "{what}");
        assert!(
            took < DEADLINE + MARGIN,
            "{what} answered only after {took:?}"
        );
    }

    drop(frozen);
    eventually(
        "the job to be readable again",
        Duration::from_secs(60),
        || async {
            let res = http.get(&job_url).send().await.ok()?;
            (res.status() == 200).then_some(())
        },
    )
    .await;
}
