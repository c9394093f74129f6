//! Every status code a service's OpenAPI document declares is one it really produces,
//! and every status it produced on a documented operation is declared.
//!
//! The test starts the system (the stack, on a database of its own) plus service
//! binaries configured into the situations a healthy stack never is in: a
//! print-service whose database is gone and whose management API answers 500, one
//! whose management API is slower than its backend timeout with a single backend
//! permit, an intake-only print-service (no dispatcher) on a database of its own, a
//! management-api with a known download-callback secret, a download-service without
//! its database, and a printer whose spool cannot be written. It then makes a tour
//! of requests, each meant to produce one documented status (and asserted to), and
//! finally reads what the services counted themselves: actix-web-prom's
//! `pixpress_http_requests_total`, labelled by route pattern, method and status, in
//! each instance's `/metrics`. A status documented but never produced fails the test
//! (so does one produced but undocumented); removing a request from the tour makes
//! it fail too, which is the point.
//!
//! The extra instances are the real binaries, found next to this test's executable
//! (`cargo test --workspace` builds them; a missing one is named with the `cargo
//! build` that makes it).

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::time::Duration;

use pixpress_kit::webhook::WebhookSecret;
use pixpress_stack::{Stack, StackOptions};
use pixpress_testkit::fixture::{Fixture, Reply};
use pixpress_testkit::http::{client, eventually};
use pixpress_testkit::images::{encode, two_tone};
use pixpress_testkit::process::{workspace_binary, RunningBinary};
use pixpress_testkit::TestDatabase;
use reqwest::{Client, RequestBuilder};
use serde_json::{json, Value};
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(30);

/// A body over every service's 64 KiB limit.
fn oversized() -> String {
    format!(
        r#"{{"url": "http://example.com/{}"}}"#,
        "a".repeat(70 * 1024)
    )
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

fn binary(name: &str, package: &str) -> String {
    let path = workspace_binary(name, package);
    path.to_str().expect("a UTF-8 target path").to_owned()
}

/// Sends `request` and asserts its status; error answers must be problem+json.
/// Returns the JSON body (or `Null`).
async fn expect(request: RequestBuilder, status: u16, what: &str) -> Value {
    let res = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let got = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = res.text().await.unwrap_or_default();
    assert_eq!(got, status, "{what}: answered {got} {text}");
    if status >= 400 {
        assert_eq!(
            content_type, "application/problem+json",
            "{what}: a {status} must be problem+json"
        );
    }
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A request with `token` as its bearer token.
fn bearer(request: RequestBuilder, token: &str) -> RequestBuilder {
    request.header("authorization", format!("Bearer {token}"))
}

/// A Standard Webhooks–signed POST of `body`.
fn signed(http: &Client, url: &str, secret: &WebhookSecret, body: &str) -> RequestBuilder {
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in secret.headers(body.as_bytes()) {
        request = request.header(name, value);
    }
    request
}

/// (route pattern, METHOD, status) triples.
type Statuses = BTreeSet<(String, String, u16)>;

/// What an OpenAPI document declares.
fn documented(doc: &Value) -> Statuses {
    let mut statuses = Statuses::new();
    for (path, item) in doc["paths"].as_object().expect("paths").iter() {
        for (method, operation) in item.as_object().expect("a path item").iter() {
            let Some(responses) = operation["responses"].as_object() else {
                continue;
            };
            for status in responses.keys() {
                let status = status
                    .parse()
                    .unwrap_or_else(|_| panic!("{method} {path}: response {status:?}"));
                statuses.insert((path.clone(), method.to_ascii_uppercase(), status));
            }
        }
    }
    statuses
}

/// The `pixpress_http_requests_total` series of a Prometheus text exposition.
fn counted(metrics: &str) -> Statuses {
    let mut statuses = Statuses::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("pixpress_http_requests_total{") else {
            continue;
        };
        let Some((labels, _count)) = rest.split_once("} ") else {
            continue;
        };
        let labels: BTreeMap<&str, &str> = labels
            .split("\",")
            .filter_map(|pair| pair.split_once("=\""))
            .map(|(k, v)| (k, v.trim_end_matches('"')))
            .collect();
        if let (Some(endpoint), Some(method), Some(status)) = (
            labels.get("endpoint"),
            labels.get("method"),
            labels.get("status").and_then(|s| s.parse().ok()),
        ) {
            statuses.insert(((*endpoint).to_owned(), (*method).to_owned(), status));
        }
    }
    statuses
}

/// Everything the instances of one service counted. Each `/metrics` is read twice,
/// so that the second read counts the first.
async fn produced(http: &Client, instances: &[&str]) -> Statuses {
    let mut statuses = Statuses::new();
    for url in instances {
        let mut text = String::new();
        for _ in 0..2 {
            let res = http
                .get(format!("{url}/metrics"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {url}/metrics: {e}"));
            assert_eq!(res.status(), 200, "GET {url}/metrics");
            text = res.text().await.unwrap_or_default();
        }
        statuses.extend(counted(&text));
    }
    statuses
}

/// Compares one service's document with what its instances produced.
async fn compare(http: &Client, service: &str, instances: &[&str]) -> Vec<String> {
    let doc = expect(
        http.get(format!("{}/openapi.json", instances[0])),
        200,
        "GET /openapi.json",
    )
    .await;
    let declared = documented(&doc);
    assert!(!declared.is_empty(), "{service} documents no operation");
    let produced = produced(http, instances).await;
    let operations: BTreeSet<(&str, &str)> = declared
        .iter()
        .map(|(path, method, _)| (path.as_str(), method.as_str()))
        .collect();
    let mut problems = Vec::new();
    for (path, method, status) in declared.difference(&produced) {
        problems.push(format!(
            "{service}: {method} {path} documents {status}, which nothing produced"
        ));
    }
    for (path, method, status) in produced.difference(&declared) {
        if operations.contains(&(path.as_str(), method.as_str())) {
            problems.push(format!(
                "{service}: {method} {path} answered {status}, which its document does not declare"
            ));
        }
    }
    problems
}

#[tokio::test]
async fn every_documented_status_is_produced_and_every_produced_status_documented() {
    // The system, on a database of its own.
    let db = TestDatabase::empty().await;
    let mut options = StackOptions::ephemeral();
    options.database_url = Some(db.url.clone());
    let stack = Stack::start(options).await.expect("the stack starts");
    let http = client();
    let admin = stack.token("0", &["admin"]);
    let user1 = stack.token("1", &[]);
    let service = stack.token("print-service", &["service"]);
    let (printer_secret, printer_secret_text) = WebhookSecret::generate();
    let (download_secret, download_secret_text) = WebhookSecret::generate();

    // Backends that misbehave on purpose.
    let png = encode(&two_tone(64, 48).into(), image::ImageFormat::Png);
    let image_host = Fixture::start(move |_| Reply::bytes(200, "image/png", png.clone()));
    let slow_host = Fixture::start(|_| {
        Reply::bytes(200, "image/png", Vec::new()).delayed(Duration::from_secs(60))
    });
    let broken_management = Fixture::start(|_| Reply::json(500, json!({"error": "boom"})));
    let nowhere = format!("http://127.0.0.1:{}", closed_port());
    let no_database = format!("postgres://postgres@127.0.0.1:{}/gone", closed_port());

    // The extra instances, as their binaries.
    let print = binary("print-service", "pixpress-print");
    let management = binary("management-api", "pixpress-management");
    let download = binary("download-service", "pixpress-download");
    let printer = binary("printer-sim", "pixpress-printer-sim");
    let intake_db = TestDatabase::new().await;
    let spool_file = tempfile::NamedTempFile::new().expect("a temporary file");
    let broken_spool = spool_file.path().join("spool");
    let secret = stack.auth_secret.as_str();
    // Their expected complaints (no database, no spool) would only be noise here.
    let common = [("RUST_LOG", "off"), ("AUTH_JWT_SECRET", secret)];
    let with = |extra: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        common
            .iter()
            .chain(extra)
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect()
    };
    let start = |path: String, env: Vec<(&'static str, String)>| async move {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        RunningBinary::start(&path, &env).await
    };
    let (print_outage, print_intake, slow_management, download_outage, printer_broken) = tokio::join!(
        // No database; a management API that answers 500.
        start(
            print.clone(),
            with(&[
                ("DATABASE_URL", &no_database),
                ("MANAGEMENT_URL", &broken_management.url),
                ("PRINTER_CALLBACK_SECRET", &printer_secret_text),
                ("BACKEND_TIMEOUT_MS", "300"),
                ("DISPATCH_ENABLED", "false"),
            ]),
        ),
        // Takes jobs, never dispatches them: they stay queued.
        start(
            print.clone(),
            with(&[
                ("DATABASE_URL", &intake_db.url),
                ("MANAGEMENT_URL", &stack.management_url),
                ("MANAGEMENT_TOKEN", &service),
                ("PRINTER_CALLBACK_SECRET", &printer_secret_text),
                ("DISPATCH_ENABLED", "false"),
            ]),
        ),
        // Slower than any backend timeout; downloads asked of nobody stay pending.
        start(
            management,
            with(&[
                ("MANAGEMENT_LATENCY_MS", "3000"),
                ("DOWNLOAD_URL", &nowhere),
                ("DOWNLOAD_CALLBACK_SECRET", &download_secret_text),
                ("PRINTER_URL", &nowhere),
            ]),
        ),
        start(download, with(&[("DATABASE_URL", &no_database)])),
        start(
            printer,
            with(&[(
                "PRINTER_STATE_DIR",
                broken_spool.to_str().unwrap_or_default()
            )]),
        ),
    );
    // One permit, and a management API that never answers in time.
    let print_slow = start(
        print,
        with(&[
            ("DATABASE_URL", &intake_db.url),
            ("MANAGEMENT_URL", &slow_management.url),
            ("MANAGEMENT_TOKEN", &service),
            ("BACKEND_TIMEOUT_MS", "500"),
            ("BACKEND_PERMITS", "1"),
            ("DISPATCH_ENABLED", "false"),
        ]),
    )
    .await;

    for url in [
        &stack.print_url,
        &stack.download_url,
        &stack.management_url,
        &stack.printer_url,
    ] {
        eventually(&format!("{url} to be ready"), PATIENCE, || async {
            let res = http.get(format!("{url}/ready")).send().await.ok()?;
            (res.status() == 200).then_some(())
        })
        .await;
        expect(http.get(format!("{url}/health")), 200, "GET /health").await;
    }
    eventually("the intake print-service to be ready", PATIENCE, || async {
        let res = http
            .get(format!("{}/ready", print_intake.url))
            .send()
            .await
            .ok()?;
        (res.status() == 200).then_some(())
    })
    .await;

    // ---------------------------------------------------------------- management-api
    let m = &stack.management_url;
    let images = format!("{m}/users/1/images");
    let ready_image = expect(
        bearer(http.post(&images), &admin)
            .json(&json!({"url": "http://example.com/ready.jpg", "ready": true})),
        201,
        "POST an image recorded ready",
    )
    .await;
    let ready_id = ready_image["id"].as_i64().expect("an image id");
    let pending_image = expect(
        bearer(http.post(&images), &user1)
            .json(&json!({"url": format!("{}/slow.png", slow_host.url)})),
        201,
        "POST an image that downloads slowly",
    )
    .await;
    let pending_id = pending_image["id"].as_i64().expect("an image id");
    expect(
        bearer(http.post(&images), &admin).json(&json!({"url": "ftp://example.com/a.jpg"})),
        400,
        "POST an image with a non-http URL",
    )
    .await;
    expect(
        http.post(&images)
            .json(&json!({"url": "http://example.com/a.jpg"})),
        401,
        "POST an image without a token",
    )
    .await;
    expect(
        bearer(http.post(format!("{m}/users/2/images")), &user1)
            .json(&json!({"url": "http://example.com/a.jpg"})),
        403,
        "POST an image to another user's collection",
    )
    .await;
    expect(
        bearer(http.post(format!("{m}/users/0/images")), &admin)
            .json(&json!({"url": "http://example.com/a.jpg"})),
        404,
        "POST an image for user 0",
    )
    .await;
    expect(
        bearer(http.post(&images), &admin)
            .header("content-type", "application/json")
            .body(oversized()),
        413,
        "POST an oversized image body",
    )
    .await;
    expect(
        bearer(http.post(&images), &admin)
            .header("content-type", "text/plain")
            .body("http://example.com/a.jpg"),
        415,
        "POST an image as text",
    )
    .await;
    expect(bearer(http.get(&images), &user1), 200, "GET own images").await;
    expect(http.get(&images), 401, "GET images without a token").await;
    expect(
        bearer(http.get(format!("{m}/users/2/images")), &user1),
        404,
        "GET another user's images",
    )
    .await;
    let one = format!("{images}/{ready_id}");
    expect(bearer(http.get(&one), &user1), 200, "GET an image").await;
    expect(http.get(&one), 401, "GET an image without a token").await;
    expect(
        bearer(http.get(format!("{images}/999999")), &user1),
        404,
        "GET a missing image",
    )
    .await;
    let doomed = expect(
        bearer(http.post(&images), &admin)
            .json(&json!({"url": "http://example.com/doomed.jpg", "ready": true})),
        201,
        "POST an image to delete",
    )
    .await;
    let doomed = format!("{images}/{}", doomed["id"]);
    expect(http.delete(&doomed), 401, "DELETE without a token").await;
    expect(bearer(http.delete(&doomed), &user1), 204, "DELETE an image").await;
    expect(bearer(http.delete(&doomed), &user1), 404, "DELETE it again").await;

    let lookup = |user: &str, file: String| format!("{m}/lookup?user_id={user}&file_id={file}");
    expect(
        bearer(http.get(lookup("1", ready_id.to_string())), &service),
        200,
        "lookup a ready image",
    )
    .await;
    expect(
        bearer(http.get(lookup("x", "1".into())), &service),
        400,
        "lookup with a non-integer user",
    )
    .await;
    expect(
        http.get(lookup("1", ready_id.to_string())),
        401,
        "lookup without a token",
    )
    .await;
    expect(
        bearer(http.get(lookup("1", ready_id.to_string())), &user1),
        403,
        "lookup with an end user's token",
    )
    .await;
    expect(
        bearer(http.get(lookup("1", "999999".into())), &service),
        404,
        "lookup a missing image",
    )
    .await;
    expect(
        bearer(http.get(lookup("1", pending_id.to_string())), &service),
        409,
        "lookup a pending image",
    )
    .await;

    let printers = format!("{m}/printers");
    expect(bearer(http.get(&printers), &user1), 200, "GET printers").await;
    expect(http.get(&printers), 401, "GET printers without a token").await;
    let printer1 = format!("{printers}/1");
    expect(
        bearer(http.put(&printer1), &admin).json(&json!({"url": stack.printer_url})),
        200,
        "PUT printer 1 where it is",
    )
    .await;
    expect(
        bearer(http.put(&printer1), &admin).json(&json!({"url": "nowhere"})),
        400,
        "PUT a printer at a non-URL",
    )
    .await;
    expect(
        http.put(&printer1).json(&json!({"url": stack.printer_url})),
        401,
        "PUT a printer without a token",
    )
    .await;
    expect(
        bearer(http.put(&printer1), &user1).json(&json!({"url": stack.printer_url})),
        403,
        "PUT a printer as an end user",
    )
    .await;
    expect(
        bearer(http.put(format!("{printers}/0")), &admin).json(&json!({"url": stack.printer_url})),
        404,
        "PUT printer 0",
    )
    .await;
    expect(
        bearer(http.put(&printer1), &admin)
            .header("content-type", "application/json")
            .body(oversized()),
        413,
        "PUT an oversized printer body",
    )
    .await;
    expect(
        bearer(http.put(&printer1), &admin)
            .header("content-type", "text/plain")
            .body("http://example.com"),
        415,
        "PUT a printer as text",
    )
    .await;

    // The second management-api: a new printer (not to move the stack's jobs), and
    // the download callbacks, signed with a secret the test knows.
    let sm = &slow_management.url;
    expect(
        bearer(http.put(format!("{sm}/printers/9")), &admin).json(&json!({"url": nowhere})),
        201,
        "PUT a new printer",
    )
    .await;
    let waiting = expect(
        bearer(http.post(format!("{sm}/users/1/images")), &admin)
            .json(&json!({"url": "http://example.com/waiting.jpg"})),
        201,
        "POST an image whose download nobody takes",
    )
    .await;
    // A finished download task, as download-service reports it.
    let report = |state: &str, error: Option<&str>| {
        json!({
            "id": Uuid::new_v4(),
            "url": "http://example.com/waiting.jpg",
            "state": state,
            "error": error,
            "content_type": "image/jpeg",
            "width": 64,
            "height": 48,
            "bytes": 1234,
            "original_key": "originals/x",
            "thumbnail_key": "thumbnails/x.jpg",
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:01Z",
        })
        .to_string()
    };
    let callback = format!("{sm}/internal/images/{}/download", waiting["id"]);
    let completed = report("completed", None);
    expect(
        signed(&http, &callback, &download_secret, &completed),
        204,
        "report a completed download",
    )
    .await;
    expect(
        signed(&http, &callback, &download_secret, &completed),
        204,
        "report it again",
    )
    .await;
    expect(
        signed(
            &http,
            &callback,
            &download_secret,
            &report("failed", Some("timeout")),
        ),
        409,
        "report a different result",
    )
    .await;
    expect(
        signed(&http, &callback, &download_secret, &report("running", None)),
        400,
        "report an unfinished download",
    )
    .await;
    expect(
        signed(
            &http,
            &format!("{sm}/internal/images/999999/download"),
            &download_secret,
            &completed,
        ),
        404,
        "report the download of a missing image",
    )
    .await;
    expect(
        http.post(&callback)
            .header("content-type", "application/json")
            .body(completed.clone()),
        401,
        "report without a signature",
    )
    .await;
    expect(
        http.post(&callback)
            .header("content-type", "application/json")
            .body(oversized()),
        413,
        "report an oversized body",
    )
    .await;

    // ---------------------------------------------------------------- print-service
    let p = &stack.print_url;
    let jobs = format!("{p}/print/jobs");
    let job = expect(
        bearer(http.post(&jobs), &user1).json(&json!({"user_id": 1, "file_id": ready_id})),
        201,
        "POST a job",
    )
    .await;
    let job_url = format!("{jobs}/{}", job["id"].as_str().expect("a job id"));
    expect(
        bearer(http.post(&jobs), &user1).json(&json!({"user_id": 0, "file_id": 0})),
        400,
        "POST an invalid job",
    )
    .await;
    expect(
        http.post(&jobs)
            .json(&json!({"user_id": 1, "file_id": ready_id})),
        401,
        "POST a job without a token",
    )
    .await;
    expect(
        bearer(http.post(&jobs), &user1).json(&json!({"user_id": 2, "file_id": ready_id})),
        403,
        "POST a job for another user",
    )
    .await;
    expect(
        bearer(http.post(&jobs), &user1).json(&json!({"user_id": 1, "file_id": 999999})),
        404,
        "POST a job for a missing file",
    )
    .await;
    expect(
        bearer(http.post(&jobs), &user1).json(&json!({"user_id": 1, "file_id": pending_id})),
        409,
        "POST a job for a pending image",
    )
    .await;
    expect(
        bearer(http.post(&jobs), &user1)
            .header("content-type", "application/json")
            .body(oversized()),
        413,
        "POST an oversized job",
    )
    .await;
    expect(
        bearer(http.post(&jobs), &user1)
            .header("content-type", "text/plain")
            .body("user 1, file 1"),
        415,
        "POST a job as text",
    )
    .await;
    expect(bearer(http.get(&jobs), &user1), 200, "GET own jobs").await;
    expect(
        bearer(http.get(format!("{jobs}?limit=0")), &user1),
        400,
        "GET jobs with limit 0",
    )
    .await;
    expect(http.get(&jobs), 401, "GET jobs without a token").await;
    expect(
        bearer(http.get(format!("{jobs}?user_id=2")), &user1),
        403,
        "GET another user's jobs",
    )
    .await;
    expect(bearer(http.get(&job_url), &user1), 200, "GET a job").await;
    expect(http.get(&job_url), 401, "GET a job without a token").await;
    expect(
        bearer(http.get(format!("{jobs}/{}", Uuid::new_v4())), &user1),
        404,
        "GET a missing job",
    )
    .await;
    expect(
        http.post(format!("{job_url}/cancel")),
        401,
        "cancel without a token",
    )
    .await;
    expect(
        bearer(
            http.post(format!("{jobs}/{}/cancel", Uuid::new_v4())),
            &user1,
        ),
        404,
        "cancel a missing job",
    )
    .await;

    // Intake only: jobs stay queued, so they can be canceled and called back on.
    let intake_jobs = format!("{}/print/jobs", print_intake.url);
    let create = |key: &'static str, copies: i32| {
        bearer(http.post(&intake_jobs), &user1)
            .header("idempotency-key", key)
            .json(&json!({"user_id": 1, "file_id": ready_id, "copies": copies}))
    };
    let queued = expect(create("first", 1), 201, "POST a job to the intake").await;
    expect(create("first", 2), 422, "reuse its key with another body").await;
    let cancel = format!(
        "{intake_jobs}/{}/cancel",
        queued["id"].as_str().unwrap_or_default()
    );
    expect(
        bearer(http.post(&cancel), &user1),
        200,
        "cancel a queued job",
    )
    .await;
    expect(bearer(http.post(&cancel), &user1), 409, "cancel it again").await;
    let other = expect(create("second", 1), 201, "POST another job").await;
    let intake = intake_db.client().await;
    let correlation_id = |job: &Value| {
        let id = job["id"].as_str().and_then(|id| Uuid::parse_str(id).ok());
        let intake = &intake;
        async move {
            let row = intake
                .query_one(
                    "SELECT correlation_id FROM print_jobs WHERE id = $1",
                    &[&id],
                )
                .await
                .expect("the job's correlation id");
            row.get::<_, Uuid>(0)
        }
    };
    let callbacks = format!("{}/print/callbacks", print_intake.url);
    let canceled_job = format!("{callbacks}/{}", correlation_id(&queued).await);
    let this_job = format!("{callbacks}/{}", correlation_id(&other).await);
    let printing = r#"{"status": "printing"}"#;
    let failed = r#"{"status": "failed", "detail": "paper jam"}"#;
    expect(
        signed(&http, &canceled_job, &printer_secret, printing),
        409,
        "report printing for a canceled job",
    )
    .await;
    expect(
        signed(&http, &this_job, &printer_secret, failed),
        204,
        "report it failed",
    )
    .await;
    expect(
        signed(&http, &this_job, &printer_secret, failed),
        204,
        "report it failed again",
    )
    .await;
    expect(
        signed(&http, &this_job, &printer_secret, r#"{"status": "lost"}"#),
        400,
        "report a status that does not exist",
    )
    .await;
    expect(
        signed(
            &http,
            &format!("{callbacks}/{}", Uuid::new_v4()),
            &printer_secret,
            failed,
        ),
        404,
        "report on an unknown correlation id",
    )
    .await;
    expect(
        http.post(&this_job)
            .header("content-type", "application/json")
            .body(failed),
        401,
        "report without a signature",
    )
    .await;
    expect(
        http.post(&this_job)
            .header("content-type", "application/json")
            .body(oversized()),
        413,
        "report an oversized body",
    )
    .await;

    // No database, and a management API that answers 500.
    let outage = &print_outage.url;
    let outage_jobs = format!("{outage}/print/jobs");
    let body = json!({"user_id": 1, "file_id": ready_id});
    let missing = format!("{outage_jobs}/{}", Uuid::new_v4());
    // Most wait for the pool's connection timeout: all at once.
    tokio::join!(
        expect(
            bearer(http.post(&outage_jobs), &user1).json(&body),
            502,
            "POST a job while the management API fails",
        ),
        expect(
            bearer(http.post(&outage_jobs), &user1)
                .header("idempotency-key", "outage")
                .json(&body),
            503,
            "POST a job with a key while the database is down",
        ),
        expect(
            bearer(http.get(&outage_jobs), &user1),
            503,
            "GET jobs while the database is down",
        ),
        expect(
            bearer(http.get(&missing), &user1),
            503,
            "GET a job while the database is down",
        ),
        expect(
            bearer(http.post(format!("{missing}/cancel")), &user1),
            503,
            "cancel while the database is down",
        ),
        expect(
            signed(
                &http,
                &format!("{outage}/print/callbacks/{}", Uuid::new_v4()),
                &printer_secret,
                failed,
            ),
            503,
            "a printer callback while the database is down",
        ),
        expect(
            http.get(format!("{outage}/ready")),
            503,
            "GET /ready without a database",
        ),
    );

    // A single permit, and lookups slower than the backend timeout: of requests sent
    // together, the one holding the permit times out and the others are turned away.
    let slow_jobs = format!("{}/print/jobs", print_slow.url);
    let answers = futures_util::future::join_all(
        (0..4).map(|_| bearer(http.post(&slow_jobs), &user1).json(&body).send()),
    )
    .await;
    let statuses: Vec<u16> = answers
        .into_iter()
        .map(|res| res.expect("an answer").status().as_u16())
        .collect();
    assert!(
        statuses.contains(&504) && statuses.contains(&429),
        "one 504 and 429s expected: {statuses:?}"
    );

    // ---------------------------------------------------------------- download-service
    let d = &stack.download_url;
    let downloads = format!("{d}/downloads");
    let done = expect(
        http.post(&downloads)
            .json(&json!({"url": format!("{}/cat.png", image_host.url)})),
        202,
        "POST a download",
    )
    .await;
    let slow = expect(
        http.post(&downloads)
            .json(&json!({"url": format!("{}/slow.png", slow_host.url)})),
        202,
        "POST a slow download",
    )
    .await;
    expect(
        http.post(&downloads).json(&json!({"url": "nowhere"})),
        400,
        "POST a download of a non-URL",
    )
    .await;
    expect(
        http.post(&downloads)
            .header("content-type", "application/json")
            .body(oversized()),
        413,
        "POST an oversized download",
    )
    .await;
    expect(
        http.post(&downloads)
            .header("content-type", "text/plain")
            .body("http://example.com/a.png"),
        415,
        "POST a download as text",
    )
    .await;
    let done_url = format!("{downloads}/{}", done["id"].as_str().unwrap_or_default());
    eventually("the download to complete", PATIENCE, || async {
        let task: Value = http.get(&done_url).send().await.ok()?.json().await.ok()?;
        (task["state"] == "completed").then_some(())
    })
    .await;
    expect(http.get(&done_url), 200, "GET a download").await;
    expect(
        http.get(format!("{downloads}/{}", Uuid::new_v4())),
        404,
        "GET a missing download",
    )
    .await;
    for variant in ["original", "thumbnail"] {
        let image =
            |id: &Value| format!("{d}/images/{}/{variant}", id.as_str().unwrap_or_default());
        expect(http.get(image(&done["id"])), 302, "GET a stored image").await;
        expect(
            http.get(image(&slow["id"])),
            409,
            "GET an image still downloading",
        )
        .await;
        expect(
            http.get(image(&json!(Uuid::new_v4().to_string()))),
            404,
            "GET a missing image",
        )
        .await;
    }
    let outage_downloads = format!("{}/downloads", download_outage.url);
    let outage_image = |variant: &str| {
        format!(
            "{}/images/{}/{variant}",
            download_outage.url,
            Uuid::new_v4()
        )
    };
    // Each waits for the pool's connection timeout: all at once.
    tokio::join!(
        expect(
            http.post(&outage_downloads)
                .json(&json!({"url": "http://example.com/a.png"})),
            503,
            "POST a download while the database is down",
        ),
        expect(
            http.get(format!("{outage_downloads}/{}", Uuid::new_v4())),
            503,
            "GET a download while the database is down",
        ),
        expect(
            http.get(outage_image("original")),
            503,
            "GET an original while the database is down",
        ),
        expect(
            http.get(outage_image("thumbnail")),
            503,
            "GET a thumbnail while the database is down",
        ),
        expect(
            http.get(format!("{}/ready", download_outage.url)),
            503,
            "GET /ready without a database",
        ),
    );

    // ---------------------------------------------------------------- printer-sim
    let printer_jobs = format!("{}/jobs", stack.printer_url);
    let printer_job = json!({
        "correlation_id": Uuid::new_v4(),
        "image_url": "http://example.com/a.jpg",
        "copies": 1,
        "callback_url": format!("{}/callback", image_host.url),
    });
    expect(
        http.post(&printer_jobs).json(&printer_job),
        202,
        "POST a print",
    )
    .await;
    expect(
        http.post(&printer_jobs)
            .json(&json!({"correlation_id": Uuid::new_v4(), "image_url": "x", "copies": 0, "callback_url": "y"})),
        400,
        "POST an invalid print",
    )
    .await;
    expect(
        http.post(&printer_jobs)
            .header("content-type", "application/json")
            .body(oversized()),
        413,
        "POST an oversized print",
    )
    .await;
    expect(
        http.post(&printer_jobs)
            .header("content-type", "text/plain")
            .body("print this"),
        415,
        "POST a print as text",
    )
    .await;
    expect(http.get(&printer_jobs), 200, "GET prints").await;
    expect(
        http.post(format!("{}/jobs", printer_broken.url))
            .json(&printer_job),
        503,
        "POST a print to a printer whose spool cannot be written",
    )
    .await;
    expect(
        http.get(format!("{}/ready", printer_broken.url)),
        503,
        "GET /ready of a printer whose spool cannot be written",
    )
    .await;

    // ---------------------------------------------------------------- the comparison
    let mut problems = Vec::new();
    for (service, instances) in [
        (
            "print-service",
            vec![
                stack.print_url.as_str(),
                print_outage.url.as_str(),
                print_intake.url.as_str(),
                print_slow.url.as_str(),
            ],
        ),
        (
            "management-api",
            vec![stack.management_url.as_str(), slow_management.url.as_str()],
        ),
        (
            "download-service",
            vec![stack.download_url.as_str(), download_outage.url.as_str()],
        ),
        (
            "printer-sim",
            vec![stack.printer_url.as_str(), printer_broken.url.as_str()],
        ),
    ] {
        problems.extend(compare(&http, service, &instances).await);
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    // The slow download would hold the stack's shutdown for its whole grace period.
    drop(slow_host);
    stack.stop().await;
}
