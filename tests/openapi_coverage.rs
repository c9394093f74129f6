//! Every status code a service's OpenAPI document declares is one it really produces,
//! and every status it produced on a documented operation is declared: one test per
//! service.
//!
//! Each test starts the system (the stack, on a database of its own) plus that
//! service's binaries configured into the situations a healthy stack never is in: a
//! print-service whose database is gone and whose management API answers 500, one
//! whose management API is slower than its backend timeout with a single backend
//! permit, an intake-only print-service (no dispatcher) on a database of its own; a
//! management-api with a known download-callback secret; a download-service without
//! its database; a printer whose spool cannot be written. It then makes a tour of
//! requests in named steps, each request meant to produce one documented status (and
//! asserted to), and finally reads what the service's instances counted themselves:
//! actix-web-prom's `pixpress_http_requests_total`, labelled by route pattern, method
//! and status, in each instance's `/metrics`. A status documented but never produced
//! fails the test (so does one produced but undocumented); removing a request from
//! the tour makes it fail too, which is the point.
//!
//! The extra instances are the real binaries, found next to this test's executable
//! (`cargo test --workspace` builds them; a missing one is named with the `cargo
//! build` that makes it).

mod support;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::time::Duration;

use pixpress_kit::webhook::WebhookSecret;
use pixpress_stack::Stack;
use pixpress_testkit::fixture::{Fixture, Reply};
use pixpress_testkit::http::{client, eventually};
use pixpress_testkit::images::{encode, two_tone};
use pixpress_testkit::metrics;
use pixpress_testkit::process::RunningBinary;
use pixpress_testkit::TestDatabase;
use reqwest::{Client, RequestBuilder};
use serde_json::{json, Value};
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn management_api_produces_every_documented_status_and_no_other() {
    let system = System::start().await;
    let slow_host = slow_image_host();
    let images = catalog_images(&system, &slow_host).await;
    let (slow_management, download_secret) = start_slow_management(&system).await;

    posting_images(&system).await;
    reading_images(&system, &images).await;
    deleting_an_image(&system).await;
    looking_images_up(&system, &images).await;
    placing_printers(&system).await;
    placing_a_new_printer(&system, &slow_management.url).await;
    reporting_downloads(&system, &slow_management.url, &download_secret).await;
    retrying_a_failed_download(&system, &slow_management.url, &download_secret).await;

    let instances = [system.stack.management_url.as_str(), &slow_management.url];
    assert_documented_statuses_produced(&system.http, "management-api", &instances).await;
    // The slow download would hold the stack's shutdown for its whole grace period.
    drop(slow_host);
    system.stop().await;
}

#[tokio::test]
async fn print_service_produces_every_documented_status_and_no_other() {
    let system = System::start().await;
    let slow_host = slow_image_host();
    let images = catalog_images(&system, &slow_host).await;
    let (printer_secret, printer_secret_text) = WebhookSecret::generate();
    let intake_db = TestDatabase::new().await;
    let broken_management = Fixture::start(|_| Reply::json(500, json!({"error": "boom"})));
    let no_database = gone_database_url();
    let print = |env: Vec<(&'static str, String)>| system.print_instance(env);
    let ((slow_management, _), outage, intake) = tokio::join!(
        start_slow_management(&system),
        // No database; a management API that answers 500.
        print(vec![
            ("DATABASE_URL", no_database),
            ("MANAGEMENT_URL", broken_management.url.clone()),
            ("PRINTER_CALLBACK_SECRET", printer_secret_text.clone()),
            ("BACKEND_TIMEOUT_MS", "300".into()),
        ]),
        // Takes jobs, never dispatches them: they stay queued.
        print(vec![
            ("DATABASE_URL", intake_db.url.clone()),
            ("MANAGEMENT_URL", system.stack.management_url.clone()),
            ("MANAGEMENT_TOKEN", system.service.clone()),
            ("PRINTER_CALLBACK_SECRET", printer_secret_text),
        ]),
    );
    // One permit, and a management API that never answers in time.
    let slow = print(vec![
        ("DATABASE_URL", intake_db.url.clone()),
        ("MANAGEMENT_URL", slow_management.url.clone()),
        ("MANAGEMENT_TOKEN", system.service.clone()),
        ("BACKEND_TIMEOUT_MS", "500".into()),
        ("BACKEND_PERMITS", "1".into()),
    ])
    .await;
    wait_ready(&system.http, &intake.url).await;

    let job = posting_jobs(&system, &images).await;
    reading_and_canceling_jobs(&system, &job).await;
    let queued = Intake {
        url: &intake.url,
        db: &intake_db,
        printer_secret: &printer_secret,
    };
    canceling_a_queued_job(&system, &queued, &images).await;
    reporting_prints(&system, &queued, &images).await;
    retrying_a_failed_job(&system, &queued, &images).await;
    answering_without_database_or_management(&system, &outage.url, &printer_secret, &images).await;
    answering_with_a_saturated_backend(&system, &slow.url, &images).await;

    let instances = [
        system.stack.print_url.as_str(),
        &outage.url,
        &intake.url,
        &slow.url,
    ];
    assert_documented_statuses_produced(&system.http, "print-service", &instances).await;
    drop(slow_host);
    system.stop().await;
}

#[tokio::test]
async fn download_service_produces_every_documented_status_and_no_other() {
    let system = System::start().await;
    let image_host = image_host();
    let slow_host = slow_image_host();
    let no_database = gone_database_url();
    let outage = system
        .instance(
            "download-service",
            "pixpress-download",
            &[("DATABASE_URL", &no_database)],
        )
        .await;

    let (done, slow) = posting_downloads(&system, &image_host, &slow_host).await;
    refusing_callers_without_the_service_role(&system).await;
    reading_downloads(&system, &done).await;
    reading_stored_images(&system, &done, &slow).await;
    deleting_a_download(&system, &image_host).await;
    answering_downloads_without_database(&system, &outage.url).await;

    let instances = [system.stack.download_url.as_str(), &outage.url];
    assert_documented_statuses_produced(&system.http, "download-service", &instances).await;
    drop(slow_host);
    system.stop().await;
}

#[tokio::test]
async fn printer_sim_produces_every_documented_status_and_no_other() {
    let system = System::start().await;
    let image_host = image_host();
    let spool_file = tempfile::NamedTempFile::new().expect("a temporary file");
    // A directory inside a file: the spool cannot be written.
    let broken_spool = spool_file.path().join("spool");
    let broken = system
        .instance(
            "printer-sim",
            "pixpress-printer-sim",
            &[(
                "PRINTER_STATE_DIR",
                broken_spool.to_str().unwrap_or_default(),
            )],
        )
        .await;

    let print = printing(&system, &image_host).await;
    answering_status_queries(&system, &print).await;
    printing_on_a_broken_spool(&system, &broken.url, &print).await;

    let instances = [system.stack.printer_url.as_str(), &broken.url];
    assert_documented_statuses_produced(&system.http, "printer-sim", &instances).await;
    system.stop().await;
}

#[tokio::test]
async fn ipp_gateway_produces_every_documented_status_and_no_other() {
    let system = System::start().await;
    let callbacks = image_host();
    let printer = pixpress_testkit::ipp::Ippeveprinter::start_default().await;
    let printers = format!("office={}", printer.uri);
    let gateway = system
        .instance(
            "ipp-gateway",
            "pixpress-ipp-gateway",
            &[("IPP_PRINTERS", printers.as_str())],
        )
        .await;
    let spool_file = tempfile::NamedTempFile::new().expect("a temporary file");
    // A directory inside a file: the journal cannot be written.
    let broken_journal = spool_file.path().join("journal");
    let broken = system
        .instance(
            "ipp-gateway",
            "pixpress-ipp-gateway",
            &[
                ("IPP_PRINTERS", printers.as_str()),
                ("IPP_STATE_DIR", broken_journal.to_str().unwrap_or_default()),
            ],
        )
        .await;

    printing_through_the_gateway(&system, &gateway.url, &broken.url, &callbacks).await;

    let instances = [gateway.url.as_str(), &broken.url];
    assert_documented_statuses_produced(&system.http, "ipp-gateway", &instances).await;
    system.stop().await;
}

/// The gateway's printer protocol, per printer: a job taken and asked about, the
/// refusals, a gateway whose journal cannot be written.
async fn printing_through_the_gateway(
    system: &System,
    gateway: &str,
    broken: &str,
    callbacks: &Fixture,
) {
    let http = &system.http;
    let jobs = format!("{gateway}/printers/office/jobs");
    let print = json!({
        "correlation_id": Uuid::new_v4(),
        "image_url": pixpress_testkit::images::sample_image_url(),
        "copies": 1,
        "callback_url": format!("{}/callback", callbacks.url),
    });
    expect(
        http.post(&jobs).json(&print),
        202,
        "POST a job to an IPP printer",
    )
    .await;
    let status = format!(
        "{jobs}/{}",
        print["correlation_id"].as_str().unwrap_or_default()
    );
    expect(http.get(&status), 200, "GET a job's status").await;
    expect(
        http.get(format!("{jobs}/{}", Uuid::new_v4())),
        404,
        "GET the status of a job never sent",
    )
    .await;
    expect(
        http.post(format!("{gateway}/printers/nowhere/jobs"))
            .json(&print),
        404,
        "POST a job to a printer the gateway does not drive",
    )
    .await;
    expect(
        http.post(&jobs)
            .json(&json!({"correlation_id": "x", "image_url": "y", "copies": 0})),
        400,
        "POST an invalid job",
    )
    .await;
    expect(
        http.post(&jobs)
            .header("content-type", "application/json")
            .body(oversized()),
        413,
        "POST an oversized job",
    )
    .await;
    expect(
        http.post(&jobs)
            .header("content-type", "text/plain")
            .body("print this"),
        415,
        "POST a job as text",
    )
    .await;
    expect(
        http.get(format!("{gateway}/printers")),
        200,
        "GET the printers",
    )
    .await;
    expect(
        http.get(format!("{gateway}/ready")),
        200,
        "GET /ready of a gateway",
    )
    .await;
    expect(
        http.post(format!("{broken}/printers/office/jobs"))
            .json(&print),
        503,
        "POST a job to a gateway whose journal cannot be written",
    )
    .await;
    expect(
        http.get(format!("{broken}/ready")),
        503,
        "GET /ready of a gateway whose journal cannot be written",
    )
    .await;
}

// ---------------------------------------------------------------------------------
// The system and the extra instances.

/// The stack on a database of its own, every service ready, and the tokens the
/// tours use.
struct System {
    stack: Stack,
    _db: TestDatabase,
    http: Client,
    admin: String,
    user1: String,
    /// A service's token (role `service`), as print-service sends the management API
    /// and management-api sends download-service.
    service: String,
}

impl System {
    async fn start() -> Self {
        let (stack, db) = support::stack().await;
        let http = client();
        for url in [
            &stack.print_url,
            &stack.download_url,
            &stack.management_url,
            &stack.printer_url,
        ] {
            wait_ready(&http, url).await;
            expect(http.get(format!("{url}/health")), 200, "GET /health").await;
        }
        Self {
            admin: stack.token("0", &["admin"]),
            user1: stack.token("1", &[]),
            service: stack.token("print-service", &["service"]),
            stack,
            _db: db,
            http,
        }
    }

    /// Starts binary `name` of `package` with `env`, trusting the stack's tokens.
    async fn instance(&self, name: &str, package: &str, env: &[(&str, &str)]) -> RunningBinary {
        // Their expected complaints (no database, no spool) would only be noise here.
        let mut all = vec![
            ("RUST_LOG", "off"),
            ("AUTH_JWT_SECRET", self.stack.auth_secret.as_str()),
        ];
        all.extend_from_slice(env);
        RunningBinary::start(&support::binary(name, package), &all).await
    }

    /// A print-service with `env` that never dispatches (so nothing reaches a printer).
    async fn print_instance(&self, env: Vec<(&'static str, String)>) -> RunningBinary {
        let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.push(("DISPATCH_ENABLED", "false"));
        self.instance("print-service", "pixpress-print", &env).await
    }

    async fn stop(self) {
        self.stack.stop().await;
    }
}

/// A management-api slower than any backend timeout, asking nobody for downloads
/// (they stay pending), with a download-callback secret the test knows.
async fn start_slow_management(system: &System) -> (RunningBinary, WebhookSecret) {
    let (secret, secret_text) = WebhookSecret::generate();
    let nowhere = nowhere();
    let env = [
        ("MANAGEMENT_LATENCY_MS", "3000"),
        ("DOWNLOAD_URL", nowhere.as_str()),
        ("DOWNLOAD_CALLBACK_SECRET", secret_text.as_str()),
        ("PRINTER_URL", nowhere.as_str()),
    ];
    let binary = system
        .instance("management-api", "pixpress-management", &env)
        .await;
    (binary, secret)
}

/// An image host that serves a PNG at once.
fn image_host() -> Fixture {
    let png = encode(&two_tone(64, 48).into(), image::ImageFormat::Png);
    Fixture::start(move |_| Reply::bytes(200, "image/png", png.clone()))
}

/// An image host that takes a minute to answer: its downloads stay running.
fn slow_image_host() -> Fixture {
    Fixture::start(|_| Reply::bytes(200, "image/png", Vec::new()).delayed(Duration::from_secs(60)))
}

/// A loopback URL nothing listens on.
fn nowhere() -> String {
    format!("http://127.0.0.1:{}", closed_port())
}

/// A database URL on a port nothing listens on.
fn gone_database_url() -> String {
    format!("postgres://postgres@127.0.0.1:{}/gone", closed_port())
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

async fn wait_ready(http: &Client, url: &str) {
    eventually(&format!("{url} to be ready"), PATIENCE, || async {
        let res = http.get(format!("{url}/ready")).send().await.ok()?;
        (res.status() == 200).then_some(())
    })
    .await;
}

// ---------------------------------------------------------------------------------
// Requests and what they must answer.

/// A body over every service's 64 KiB limit.
fn oversized() -> String {
    format!(
        r#"{{"url": "http://example.com/{}"}}"#,
        "a".repeat(70 * 1024)
    )
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

/// A JSON POST of `body` as it is, without a signature.
fn unsigned(http: &Client, url: &str, body: String) -> RequestBuilder {
    http.post(url)
        .header("content-type", "application/json")
        .body(body)
}

// ---------------------------------------------------------------------------------
// The documented statuses against the produced ones.

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
fn counted(text: &str) -> Statuses {
    metrics::samples(text)
        .into_iter()
        .filter(|s| s.name == "pixpress_http_requests_total")
        .filter_map(|s| {
            let status = s.label("status")?.parse().ok()?;
            Some((
                s.label("endpoint")?.to_owned(),
                s.label("method")?.to_owned(),
                status,
            ))
        })
        .collect()
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

/// Compares one service's document (read from its first instance) with what its
/// instances produced: each documented status was produced, and nothing produced
/// on a documented operation is undocumented.
async fn assert_documented_statuses_produced(http: &Client, service: &str, instances: &[&str]) {
    let doc = expect(
        http.get(format!("{}/openapi.json", instances[0])),
        200,
        "GET /openapi.json",
    )
    .await;
    let declared = documented(&doc);
    assert!(!declared.is_empty(), "{service} documents no operation");
    // Every service's docs page and the bundle it runs (the kit's, the same in all).
    expect(http.get(format!("{}/docs", instances[0])), 200, "GET /docs").await;
    let bundle = format!("{}{}", instances[0], pixpress_kit::docs::REDOC_PATH);
    expect(http.get(bundle), 200, "GET the docs bundle").await;
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
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------
// management-api

/// Images recorded in the stack's management API for the tours to use.
struct Images {
    /// User 1's image, recorded ready to print.
    ready: i64,
    /// User 1's image whose download (from the slow host) never finishes.
    pending: i64,
}

async fn catalog_images(system: &System, slow_host: &Fixture) -> Images {
    let (http, images) = (&system.http, images_url(system, 1));
    let ready = expect(
        bearer(http.post(&images), &system.admin)
            .json(&json!({"url": pixpress_testkit::images::sample_image_url(), "ready": true})),
        201,
        "POST an image recorded ready",
    )
    .await;
    let pending = expect(
        bearer(http.post(&images), &system.user1)
            .json(&json!({"url": format!("{}/slow.png", slow_host.url)})),
        201,
        "POST an image that downloads slowly",
    )
    .await;
    Images {
        ready: ready["id"].as_i64().expect("an image id"),
        pending: pending["id"].as_i64().expect("an image id"),
    }
}

fn images_url(system: &System, user: i64) -> String {
    format!("{}/users/{user}/images", system.stack.management_url)
}

async fn posting_images(system: &System) {
    let (http, admin, images) = (&system.http, &system.admin, images_url(system, 1));
    let cat = json!({"url": "http://example.com/a.jpg"});
    expect(
        bearer(http.post(&images), admin).json(&json!({"url": "ftp://example.com/a.jpg"})),
        400,
        "POST an image with a non-http URL",
    )
    .await;
    expect(
        http.post(&images).json(&cat),
        401,
        "POST an image without a token",
    )
    .await;
    expect(
        bearer(http.post(images_url(system, 2)), &system.user1).json(&cat),
        403,
        "POST an image to another user's collection",
    )
    .await;
    expect(
        bearer(http.post(images_url(system, 0)), admin).json(&cat),
        404,
        "POST an image for user 0",
    )
    .await;
    expect(
        bearer(http.post(&images), admin)
            .header("content-type", "application/json")
            .body(oversized()),
        413,
        "POST an oversized image body",
    )
    .await;
    expect(
        bearer(http.post(&images), admin)
            .header("content-type", "text/plain")
            .body("http://example.com/a.jpg"),
        415,
        "POST an image as text",
    )
    .await;
}

async fn reading_images(system: &System, images: &Images) {
    let (http, user1, list) = (&system.http, &system.user1, images_url(system, 1));
    expect(bearer(http.get(&list), user1), 200, "GET own images").await;
    expect(http.get(&list), 401, "GET images without a token").await;
    expect(
        bearer(http.get(images_url(system, 2)), user1),
        404,
        "GET another user's images",
    )
    .await;
    let one = format!("{list}/{}", images.ready);
    expect(bearer(http.get(&one), user1), 200, "GET an image").await;
    expect(http.get(&one), 401, "GET an image without a token").await;
    expect(
        bearer(http.get(format!("{list}/999999")), user1),
        404,
        "GET a missing image",
    )
    .await;
}

async fn deleting_an_image(system: &System) {
    let (http, user1, images) = (&system.http, &system.user1, images_url(system, 1));
    let doomed = expect(
        bearer(http.post(&images), &system.admin)
            .json(&json!({"url": "http://example.com/doomed.jpg", "ready": true})),
        201,
        "POST an image to delete",
    )
    .await;
    let doomed = format!("{images}/{}", doomed["id"]);
    expect(http.delete(&doomed), 401, "DELETE without a token").await;
    expect(bearer(http.delete(&doomed), user1), 204, "DELETE an image").await;
    expect(bearer(http.delete(&doomed), user1), 404, "DELETE it again").await;
}

async fn looking_images_up(system: &System, images: &Images) {
    let (http, service) = (&system.http, &system.service);
    let m = &system.stack.management_url;
    let lookup = |user: &str, file: String| format!("{m}/lookup?user_id={user}&file_id={file}");
    let ready = images.ready.to_string();
    expect(
        bearer(http.get(lookup("1", ready.clone())), service),
        200,
        "lookup a ready image",
    )
    .await;
    expect(
        bearer(http.get(lookup("x", "1".into())), service),
        400,
        "lookup with a non-integer user",
    )
    .await;
    expect(
        http.get(lookup("1", ready.clone())),
        401,
        "lookup without a token",
    )
    .await;
    expect(
        bearer(http.get(lookup("1", ready)), &system.user1),
        403,
        "lookup with an end user's token",
    )
    .await;
    expect(
        bearer(http.get(lookup("1", "999999".into())), service),
        404,
        "lookup a missing image",
    )
    .await;
    expect(
        bearer(http.get(lookup("1", images.pending.to_string())), service),
        409,
        "lookup a pending image",
    )
    .await;
}

async fn placing_printers(system: &System) {
    let (http, admin) = (&system.http, &system.admin);
    let printers = format!("{}/printers", system.stack.management_url);
    let here = json!({"url": system.stack.printer_url});
    expect(
        bearer(http.get(&printers), &system.user1),
        200,
        "GET printers",
    )
    .await;
    expect(http.get(&printers), 401, "GET printers without a token").await;
    let printer1 = format!("{printers}/1");
    expect(
        bearer(http.put(&printer1), admin).json(&here),
        200,
        "PUT printer 1 where it is",
    )
    .await;
    expect(
        bearer(http.put(&printer1), admin).json(&json!({"url": "nowhere"})),
        400,
        "PUT a printer at a non-URL",
    )
    .await;
    expect(
        http.put(&printer1).json(&here),
        401,
        "PUT a printer without a token",
    )
    .await;
    expect(
        bearer(http.put(&printer1), &system.user1).json(&here),
        403,
        "PUT a printer as an end user",
    )
    .await;
    expect(
        bearer(http.put(format!("{printers}/0")), admin).json(&here),
        404,
        "PUT printer 0",
    )
    .await;
    expect(
        bearer(http.put(&printer1), admin)
            .header("content-type", "application/json")
            .body(oversized()),
        413,
        "PUT an oversized printer body",
    )
    .await;
    expect(
        bearer(http.put(&printer1), admin)
            .header("content-type", "text/plain")
            .body("http://example.com"),
        415,
        "PUT a printer as text",
    )
    .await;
}

/// A finished download task, as download-service reports it.
fn download_report(state: &str, error: Option<&str>) -> String {
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
}

/// On the second management-api, not to move the stack's jobs.
async fn placing_a_new_printer(system: &System, sm: &str) {
    expect(
        bearer(system.http.put(format!("{sm}/printers/9")), &system.admin)
            .json(&json!({"url": nowhere()})),
        201,
        "PUT a new printer",
    )
    .await;
    // With every printer disabled, a lookup that names none finds none.
    for id in [1, 9] {
        expect(
            bearer(
                system.http.put(format!("{sm}/printers/{id}")),
                &system.admin,
            )
            .json(&json!({"url": nowhere(), "enabled": false})),
            200,
            "PUT a printer out of service",
        )
        .await;
    }
    let ready = expect(
        bearer(
            system.http.post(format!("{sm}/users/1/images")),
            &system.admin,
        )
        .json(&json!({"url": "http://example.com/ready.jpg", "ready": true})),
        201,
        "POST a ready image",
    )
    .await;
    expect(
        bearer(
            system
                .http
                .get(format!("{sm}/lookup?user_id=1&file_id={}", ready["id"])),
            &system.service,
        ),
        503,
        "lookup with every printer disabled",
    )
    .await;
}

/// User 1's image on the second management-api whose download nobody takes (it
/// stays pending until a report comes); its id and download-callback URL.
async fn waiting_image(system: &System, sm: &str) -> (i64, String) {
    let waiting = expect(
        bearer(
            system.http.post(format!("{sm}/users/1/images")),
            &system.admin,
        )
        .json(&json!({"url": "http://example.com/waiting.jpg"})),
        201,
        "POST an image whose download nobody takes",
    )
    .await;
    let id = waiting["id"].as_i64().expect("an image id");
    (id, format!("{sm}/internal/images/{id}/download"))
}

/// On the second management-api: the download callbacks, signed with a secret the
/// test knows and sent with a service token.
async fn reporting_downloads(system: &System, sm: &str, secret: &WebhookSecret) {
    let http = &system.http;
    let (_, callback) = waiting_image(system, sm).await;
    let completed = download_report("completed", None);
    let failed = download_report("failed", Some("timeout"));
    let report = |body: &str| bearer(signed(http, &callback, secret, body), &system.service);
    expect(report(&completed), 204, "report a completed download").await;
    expect(report(&completed), 204, "report it again").await;
    expect(report(&failed), 409, "report a different result").await;
    expect(
        report(&download_report("running", None)),
        400,
        "report an unfinished download",
    )
    .await;
    let missing = format!("{sm}/internal/images/999999/download");
    expect(
        bearer(signed(http, &missing, secret, &completed), &system.service),
        404,
        "report the download of a missing image",
    )
    .await;
    expect(
        unsigned(http, &callback, completed.clone()),
        401,
        "report without a signature",
    )
    .await;
    expect(
        signed(http, &callback, secret, &completed),
        401,
        "report signed but without a bearer token",
    )
    .await;
    expect(
        bearer(signed(http, &callback, secret, &completed), &system.user1),
        403,
        "report signed with an end user's token",
    )
    .await;
    expect(
        unsigned(http, &callback, oversized()),
        413,
        "report an oversized body",
    )
    .await;
}

/// On the second management-api: an operator asks again for a download reported
/// failed; only a failed image can be retried, only by an admin.
async fn retrying_a_failed_download(system: &System, sm: &str, secret: &WebhookSecret) {
    let (http, admin) = (&system.http, &system.admin);
    let (id, callback) = waiting_image(system, sm).await;
    let failed = download_report("failed", Some("timeout"));
    expect(
        bearer(signed(http, &callback, secret, &failed), &system.service),
        204,
        "report a failed download",
    )
    .await;
    let retry = |id: i64| http.post(format!("{sm}/users/1/images/{id}/retry"));
    expect(bearer(retry(id), admin), 200, "retry a failed image").await;
    expect(
        bearer(retry(id), admin),
        409,
        "retry it again (pending now)",
    )
    .await;
    expect(retry(id), 401, "retry without a token").await;
    expect(
        bearer(retry(id), &system.user1),
        403,
        "retry as the image's user",
    )
    .await;
    expect(bearer(retry(999999), admin), 404, "retry a missing image").await;
}

// ---------------------------------------------------------------------------------
// print-service

fn jobs_url(system: &System) -> String {
    format!("{}/print/jobs", system.stack.print_url)
}

/// The job posted; its URL.
async fn posting_jobs(system: &System, images: &Images) -> String {
    let (http, user1, jobs) = (&system.http, &system.user1, jobs_url(system));
    let job = |user: i64, file: i64| json!({"user_id": user, "file_id": file});
    let posted = expect(
        bearer(http.post(&jobs), user1).json(&job(1, images.ready)),
        201,
        "POST a job",
    )
    .await;
    expect(
        bearer(http.post(&jobs), user1).json(&job(0, 0)),
        400,
        "POST an invalid job",
    )
    .await;
    expect(
        http.post(&jobs).json(&job(1, images.ready)),
        401,
        "POST a job without a token",
    )
    .await;
    expect(
        bearer(http.post(&jobs), user1).json(&job(2, images.ready)),
        403,
        "POST a job for another user",
    )
    .await;
    expect(
        bearer(http.post(&jobs), user1).json(&job(1, 999999)),
        404,
        "POST a job for a missing file",
    )
    .await;
    expect(
        bearer(http.post(&jobs), user1).json(&job(1, images.pending)),
        409,
        "POST a job for a pending image",
    )
    .await;
    expect(
        bearer(http.post(&jobs), user1)
            .header("content-type", "application/json")
            .body(oversized()),
        413,
        "POST an oversized job",
    )
    .await;
    expect(
        bearer(http.post(&jobs), user1)
            .header("content-type", "text/plain")
            .body("user 1, file 1"),
        415,
        "POST a job as text",
    )
    .await;
    format!("{jobs}/{}", posted["id"].as_str().expect("a job id"))
}

async fn reading_and_canceling_jobs(system: &System, job_url: &str) {
    let (http, user1, jobs) = (&system.http, &system.user1, jobs_url(system));
    expect(bearer(http.get(&jobs), user1), 200, "GET own jobs").await;
    expect(
        bearer(http.get(format!("{jobs}?limit=0")), user1),
        400,
        "GET jobs with limit 0",
    )
    .await;
    expect(http.get(&jobs), 401, "GET jobs without a token").await;
    expect(
        bearer(http.get(format!("{jobs}?user_id=2")), user1),
        403,
        "GET another user's jobs",
    )
    .await;
    expect(bearer(http.get(job_url), user1), 200, "GET a job").await;
    expect(http.get(job_url), 401, "GET a job without a token").await;
    expect(
        bearer(http.get(format!("{jobs}/{}", Uuid::new_v4())), user1),
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
            user1,
        ),
        404,
        "cancel a missing job",
    )
    .await;
}

/// The intake-only print-service: its jobs stay queued, so they can be canceled and
/// called back on.
struct Intake<'a> {
    url: &'a str,
    db: &'a TestDatabase,
    printer_secret: &'a WebhookSecret,
}

impl Intake<'_> {
    /// `POST /print/jobs` of `copies` of the ready image with idempotency `key`.
    fn post_job(&self, system: &System, images: &Images, key: &str, copies: i32) -> RequestBuilder {
        bearer(
            system.http.post(format!("{}/print/jobs", self.url)),
            &system.user1,
        )
        .header("idempotency-key", key)
        .json(&json!({"user_id": 1, "file_id": images.ready, "copies": copies}))
    }

    /// Where the printer of `job` (as answered to its POST) calls back.
    async fn callback_url(&self, job: &Value) -> String {
        let id = job["id"].as_str().and_then(|id| Uuid::parse_str(id).ok());
        let row = self
            .db
            .client()
            .await
            .query_one(
                "SELECT correlation_id FROM print_jobs WHERE id = $1",
                &[&id],
            )
            .await
            .expect("the job's correlation id");
        let correlation_id: Uuid = row.get("correlation_id");
        format!("{}/print/callbacks/{correlation_id}", self.url)
    }
}

async fn canceling_a_queued_job(system: &System, intake: &Intake<'_>, images: &Images) {
    let http = &system.http;
    let queued = expect(
        intake.post_job(system, images, "first", 1),
        201,
        "POST a job to the intake",
    )
    .await;
    expect(
        intake.post_job(system, images, "first", 2),
        422,
        "reuse its key with another body",
    )
    .await;
    let cancel = format!(
        "{}/print/jobs/{}/cancel",
        intake.url,
        queued["id"].as_str().unwrap_or_default()
    );
    expect(
        bearer(http.post(&cancel), &system.user1),
        200,
        "cancel a queued job",
    )
    .await;
    expect(
        bearer(http.post(&cancel), &system.user1),
        409,
        "cancel it again",
    )
    .await;
    let printing = r#"{"status": "printing"}"#;
    expect(
        signed(
            http,
            &intake.callback_url(&queued).await,
            intake.printer_secret,
            printing,
        ),
        409,
        "report printing for a canceled job",
    )
    .await;
}

async fn reporting_prints(system: &System, intake: &Intake<'_>, images: &Images) {
    let (http, secret) = (&system.http, intake.printer_secret);
    let job = expect(
        intake.post_job(system, images, "second", 1),
        201,
        "POST another job",
    )
    .await;
    let this_job = intake.callback_url(&job).await;
    let failed = r#"{"status": "failed", "detail": "paper jam"}"#;
    expect(
        signed(http, &this_job, secret, failed),
        204,
        "report it failed",
    )
    .await;
    expect(
        signed(http, &this_job, secret, failed),
        204,
        "report it failed again",
    )
    .await;
    expect(
        signed(http, &this_job, secret, r#"{"status": "lost"}"#),
        400,
        "report a status that does not exist",
    )
    .await;
    let unknown = format!("{}/print/callbacks/{}", intake.url, Uuid::new_v4());
    expect(
        signed(http, &unknown, secret, failed),
        404,
        "report on an unknown correlation id",
    )
    .await;
    expect(
        unsigned(http, &this_job, failed.to_owned()),
        401,
        "report without a signature",
    )
    .await;
    expect(
        unsigned(http, &this_job, oversized()),
        413,
        "report an oversized body",
    )
    .await;
}

/// An operator sends a job its printer reported failed again; only a failed job can
/// be retried, only by an admin.
async fn retrying_a_failed_job(system: &System, intake: &Intake<'_>, images: &Images) {
    let (http, admin) = (&system.http, &system.admin);
    let job = expect(
        intake.post_job(system, images, "third", 1),
        201,
        "POST a job to fail",
    )
    .await;
    expect(
        signed(
            http,
            &intake.callback_url(&job).await,
            intake.printer_secret,
            r#"{"status": "failed", "detail": "paper jam"}"#,
        ),
        204,
        "report it failed",
    )
    .await;
    let retry = |id: &str| http.post(format!("{}/print/jobs/{id}/retry", intake.url));
    let id = job["id"].as_str().unwrap_or_default();
    expect(bearer(retry(id), admin), 200, "retry a failed job").await;
    expect(bearer(retry(id), admin), 409, "retry it again (queued now)").await;
    expect(retry(id), 401, "retry without a token").await;
    expect(
        bearer(retry(id), &system.user1),
        403,
        "retry as the job's user",
    )
    .await;
    expect(
        bearer(retry(&Uuid::new_v4().to_string()), admin),
        404,
        "retry a missing job",
    )
    .await;
}

/// No database, and a management API that answers 500.
async fn answering_without_database_or_management(
    system: &System,
    outage: &str,
    printer_secret: &WebhookSecret,
    images: &Images,
) {
    let (http, user1) = (&system.http, &system.user1);
    let jobs = format!("{outage}/print/jobs");
    let body = json!({"user_id": 1, "file_id": images.ready});
    let missing = format!("{jobs}/{}", Uuid::new_v4());
    let callback = format!("{outage}/print/callbacks/{}", Uuid::new_v4());
    let failed = r#"{"status": "failed", "detail": "paper jam"}"#;
    // Most wait for the pool's connection timeout: all at once.
    tokio::join!(
        expect(
            bearer(http.post(&jobs), user1).json(&body),
            502,
            "POST a job while the management API fails",
        ),
        expect(
            bearer(http.post(&jobs), user1)
                .header("idempotency-key", "outage")
                .json(&body),
            503,
            "POST a job with a key while the database is down",
        ),
        expect(
            bearer(http.get(&jobs), user1),
            503,
            "GET jobs while the database is down",
        ),
        expect(
            bearer(http.get(&missing), user1),
            503,
            "GET a job while the database is down",
        ),
        expect(
            bearer(http.post(format!("{missing}/cancel")), user1),
            503,
            "cancel while the database is down",
        ),
        expect(
            bearer(http.post(format!("{missing}/retry")), &system.admin),
            503,
            "retry while the database is down",
        ),
        expect(
            signed(http, &callback, printer_secret, failed),
            503,
            "a printer callback while the database is down",
        ),
        expect(
            http.get(format!("{outage}/ready")),
            503,
            "GET /ready without a database",
        ),
    );
}

/// A single permit, and lookups slower than the backend timeout: of requests sent
/// together, the one holding the permit times out and the others are turned away.
async fn answering_with_a_saturated_backend(system: &System, slow: &str, images: &Images) {
    let jobs = format!("{slow}/print/jobs");
    let body = json!({"user_id": 1, "file_id": images.ready});
    let answers = futures_util::future::join_all((0..4).map(|_| {
        bearer(system.http.post(&jobs), &system.user1)
            .json(&body)
            .send()
    }))
    .await;
    let statuses: Vec<u16> = answers
        .into_iter()
        .map(|res| res.expect("an answer").status().as_u16())
        .collect();
    assert!(
        statuses.contains(&504) && statuses.contains(&429),
        "one 504 and 429s expected: {statuses:?}"
    );
}

// ---------------------------------------------------------------------------------
// download-service

fn downloads_url(system: &System) -> String {
    format!("{}/downloads", system.stack.download_url)
}

/// One download that completes and one that stays running; their tasks.
async fn posting_downloads(
    system: &System,
    image_host: &Fixture,
    slow_host: &Fixture,
) -> (Value, Value) {
    let downloads = downloads_url(system);
    let post = || bearer(system.http.post(&downloads), &system.service);
    let done = expect(
        post().json(&json!({"url": format!("{}/cat.png", image_host.url)})),
        202,
        "POST a download",
    )
    .await;
    let slow = expect(
        post().json(&json!({"url": format!("{}/slow.png", slow_host.url)})),
        202,
        "POST a slow download",
    )
    .await;
    expect(
        post().json(&json!({"url": "nowhere"})),
        400,
        "POST a download of a non-URL",
    )
    .await;
    expect(
        post().json(&json!({
            "url": "http://example.com/a.png",
            "callback_url": "http://example.com/internal/images/1/download",
        })),
        400,
        "POST a download whose callback is not under MANAGEMENT_URL",
    )
    .await;
    expect(
        post()
            .header("content-type", "application/json")
            .body(oversized()),
        413,
        "POST an oversized download",
    )
    .await;
    expect(
        post()
            .header("content-type", "text/plain")
            .body("http://example.com/a.png"),
        415,
        "POST a download as text",
    )
    .await;
    (done, slow)
}

/// `/downloads…` is for services: no token, a token the stack never signed and an
/// end user's are refused on every route.
async fn refusing_callers_without_the_service_role(system: &System) {
    let (http, downloads) = (&system.http, downloads_url(system));
    let task = format!("{downloads}/{}", Uuid::new_v4());
    let body = json!({"url": "http://example.com/a.png"});
    let foreign = pixpress_testkit::auth::token("print-service", &["service"]);
    let callers = [
        (None, 401, "without a token"),
        (Some(foreign.as_str()), 401, "with a foreign token"),
        (Some(system.user1.as_str()), 403, "with an end user's token"),
    ];
    for (token, status, how) in callers {
        let requests = [
            ("POST a download", http.post(&downloads).json(&body)),
            ("GET a download", http.get(&task)),
            ("DELETE a download", http.delete(&task)),
        ];
        for (what, request) in requests {
            let request = match token {
                Some(token) => bearer(request, token),
                None => request,
            };
            expect(request, status, &format!("{what} {how}")).await;
        }
    }
}

async fn reading_downloads(system: &System, done: &Value) {
    let downloads = downloads_url(system);
    let get = |url: &str| bearer(system.http.get(url), &system.service);
    let done_url = format!("{downloads}/{}", done["id"].as_str().unwrap_or_default());
    eventually("the download to complete", PATIENCE, || async {
        let task: Value = get(&done_url).send().await.ok()?.json().await.ok()?;
        (task["state"] == "completed").then_some(())
    })
    .await;
    expect(get(&done_url), 200, "GET a download").await;
    expect(
        get(&format!("{downloads}/{}", Uuid::new_v4())),
        404,
        "GET a missing download",
    )
    .await;
}

async fn reading_stored_images(system: &System, done: &Value, slow: &Value) {
    let (http, d) = (&system.http, &system.stack.download_url);
    for variant in ["original", "thumbnail"] {
        let image =
            |id: &Value| format!("{d}/images/{}/{variant}", id.as_str().unwrap_or_default());
        expect(http.get(image(&done["id"])), 302, "GET a stored image").await;
        let for_printers = format!("{}?network=internal", image(&done["id"]));
        expect(http.get(for_printers), 302, "GET a printer's link").await;
        let elsewhere = format!("{}?network=moon", image(&done["id"]));
        expect(http.get(elsewhere), 400, "GET a link for no known network").await;
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
}

/// A deleted task is gone, and deleting it again still answers 204.
async fn deleting_a_download(system: &System, image_host: &Fixture) {
    let downloads = downloads_url(system);
    let as_service = |request: RequestBuilder| bearer(request, &system.service);
    let doomed = expect(
        as_service(system.http.post(&downloads))
            .json(&json!({"url": format!("{}/doomed.png", image_host.url)})),
        202,
        "POST a download to delete",
    )
    .await;
    let doomed = format!("{downloads}/{}", doomed["id"].as_str().unwrap_or_default());
    let delete = |url: &str| as_service(system.http.delete(url));
    expect(delete(&doomed), 204, "DELETE a download").await;
    expect(delete(&doomed), 204, "DELETE it again").await;
    expect(
        as_service(system.http.get(&doomed)),
        404,
        "GET a deleted download",
    )
    .await;
    expect(
        delete(&format!("{downloads}/{}", Uuid::new_v4())),
        404,
        "DELETE a missing download",
    )
    .await;
}

async fn answering_downloads_without_database(system: &System, outage: &str) {
    let (http, service) = (&system.http, &system.service);
    let downloads = format!("{outage}/downloads");
    let task = format!("{downloads}/{}", Uuid::new_v4());
    let image = |variant: &str| format!("{outage}/images/{}/{variant}", Uuid::new_v4());
    // Each waits for the pool's connection timeout: all at once.
    tokio::join!(
        expect(
            bearer(http.post(&downloads), service)
                .json(&json!({"url": "http://example.com/a.png"})),
            503,
            "POST a download while the database is down",
        ),
        expect(
            bearer(http.get(&task), service),
            503,
            "GET a download while the database is down",
        ),
        expect(
            bearer(http.delete(&task), service),
            503,
            "DELETE a download while the database is down",
        ),
        expect(
            http.get(image("original")),
            503,
            "GET an original while the database is down",
        ),
        expect(
            http.get(image("thumbnail")),
            503,
            "GET a thumbnail while the database is down",
        ),
        expect(
            http.get(format!("{outage}/ready")),
            503,
            "GET /ready without a database",
        ),
    );
}

// ---------------------------------------------------------------------------------
// printer-sim

/// The stack's printer takes a print and refuses bad ones; the print it took.
async fn printing(system: &System, image_host: &Fixture) -> Value {
    let http = &system.http;
    let jobs = format!("{}/jobs", system.stack.printer_url);
    let print = json!({
        "correlation_id": Uuid::new_v4(),
        "image_url": pixpress_testkit::images::sample_image_url(),
        "copies": 1,
        "callback_url": format!("{}/callback", image_host.url),
    });
    expect(http.post(&jobs).json(&print), 202, "POST a print").await;
    expect(
        http.post(&jobs)
            .json(&json!({"correlation_id": Uuid::new_v4(), "image_url": "x", "copies": 0, "callback_url": "y"})),
        400,
        "POST an invalid print",
    )
    .await;
    expect(
        http.post(&jobs)
            .header("content-type", "application/json")
            .body(oversized()),
        413,
        "POST an oversized print",
    )
    .await;
    expect(
        http.post(&jobs)
            .header("content-type", "text/plain")
            .body("print this"),
        415,
        "POST a print as text",
    )
    .await;
    expect(http.get(&jobs), 200, "GET prints").await;
    print
}

/// The printer protocol's status query: a print it took, one it never saw.
async fn answering_status_queries(system: &System, print: &Value) {
    let jobs = format!("{}/jobs", system.stack.printer_url);
    let took = format!(
        "{jobs}/{}",
        print["correlation_id"].as_str().unwrap_or_default()
    );
    let status = expect(system.http.get(&took), 200, "GET a print's status").await;
    assert_eq!(
        status["correlation_id"], print["correlation_id"],
        "the status of the print asked about"
    );
    expect(
        system.http.get(format!("{jobs}/{}", Uuid::new_v4())),
        404,
        "GET the status of a print never sent",
    )
    .await;
}

async fn printing_on_a_broken_spool(system: &System, broken: &str, print: &Value) {
    let http = &system.http;
    expect(
        http.post(format!("{broken}/jobs")).json(print),
        503,
        "POST a print to a printer whose spool cannot be written",
    )
    .await;
    expect(
        http.get(format!("{broken}/ready")),
        503,
        "GET /ready of a printer whose spool cannot be written",
    )
    .await;
}
