//! Traces and logs an operator can follow (issue 15, item 5): the four services as
//! real processes with `LOG_FORMAT=json` and an OTLP endpoint (a small receiver this
//! test runs). One print job, sent with a known `traceparent`, leaves its trace id
//! in the logs of all four services and spans of that trace in the receiver, each
//! the child of the hop that called it; a download continues the trace of the
//! request that asked for it, across the database; a request without a usable
//! `traceparent` starts a trace of its own.

mod support;

use std::collections::HashSet;

use image::ImageFormat;
use pixpress_testkit::auth::{self, client_as};
use pixpress_testkit::fixture::{Fixture, Reply};
use pixpress_testkit::http::{eventually, free_port};
use pixpress_testkit::images::{encode, two_tone};
use pixpress_testkit::process::RunningBinary;
use pixpress_testkit::s3::TestBucket;
use pixpress_testkit::TestDatabase;
use serde_json::{json, Value};
use support::{binary, borrowed, settled_image, CALLBACK_SECRET, PATIENCE};

/// The trace of the client's request, and the client's span in it.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const TRACESTATE: &str = "pixpress-test=t61rcWkgMzE";

fn traceparent(trace_id: &str, span_id: &str) -> String {
    format!("00-{trace_id}-{span_id}-01")
}

/// Service binary `name` of `package`, refusing one built before it could export
/// traces (a stale build would fail the test for the wrong reason).
fn traced_binary(name: &str, package: &str) -> String {
    let path = binary(name, package);
    let help = std::process::Command::new(&path)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("running {path} --help: {e}"));
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("OTEL_EXPORTER_OTLP_ENDPOINT"),
        "{path} predates OTEL_EXPORTER_OTLP_ENDPOINT: run `cargo build -p {package}`"
    );
    path
}

/// An OTLP/HTTP receiver: takes every export and keeps it.
fn otlp_receiver() -> Fixture {
    Fixture::start(|_| Reply::json(200, json!({})))
}

/// An exported span and the `service.name` that exported it.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    span: Value,
}

impl Span {
    fn name(&self) -> &str {
        self.span["name"].as_str().unwrap_or_default()
    }

    fn id(&self) -> &str {
        self.span["spanId"].as_str().unwrap_or_default()
    }

    fn parent(&self) -> Option<&str> {
        self.span["parentSpanId"].as_str()
    }

    fn attribute(&self, key: &str) -> Option<&Value> {
        let attributes = self.span["attributes"].as_array()?;
        let attribute = attributes.iter().find(|a| a["key"] == key)?;
        attribute["value"]
            .get("stringValue")
            .or_else(|| attribute["value"].get("intValue"))
    }
}

/// Every span the receiver got, in OTLP's JSON encoding (each request must be one).
fn received_spans(receiver: &Fixture) -> Vec<Span> {
    let mut spans = Vec::new();
    for request in receiver.requests() {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/v1/traces");
        assert_eq!(request.header("content-type"), Some("application/json"));
        let body: Value = serde_json::from_slice(&request.body).expect("an OTLP JSON export");
        for resource in body["resourceSpans"].as_array().expect("resourceSpans") {
            let service = resource["resource"]["attributes"]
                .as_array()
                .and_then(|a| a.iter().find(|a| a["key"] == "service.name"))
                .and_then(|a| a["value"]["stringValue"].as_str())
                .expect("a service.name")
                .to_owned();
            for scope in resource["scopeSpans"].as_array().expect("scopeSpans") {
                for span in scope["spans"].as_array().expect("spans") {
                    spans.push(Span {
                        service: service.clone(),
                        span: span.clone(),
                    });
                }
            }
        }
    }
    spans
}

/// Waits until `receiver` has a span of `trace_id` named `name` from `service`.
async fn span_named(receiver: &Fixture, trace_id: &str, service: &str, name: &str) -> Span {
    eventually(
        &format!("{service} to export a span {name:?} of trace {trace_id}"),
        PATIENCE,
        || async {
            received_spans(receiver)
                .into_iter()
                .find(|s| s.service == service && s.span["traceId"] == trace_id && s.name() == name)
        },
    )
    .await
}

/// A binary's log, each line parsed: every line must be one JSON object with
/// `ts`, `level`, `target` and `msg`.
fn json_log(service: &str, binary: &RunningBinary) -> Vec<Value> {
    binary
        .logs()
        .iter()
        .map(|line| {
            let parsed: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("{service} logged a line that is not JSON ({e}): {line}")
            });
            for key in ["ts", "level", "target", "msg"] {
                assert!(parsed[key].is_string(), "{service}: no {key} in {line}");
            }
            parsed
        })
        .collect()
}

/// The four services as processes, logging JSON at `info` and exporting spans to
/// one receiver; print-service and download-service share a database.
struct System {
    print: RunningBinary,
    download: RunningBinary,
    management: RunningBinary,
    printer: RunningBinary,
    otlp: Fixture,
    /// Serves one PNG at every path: the image users add.
    image_host: Fixture,
    /// An admin: may act for any user.
    http: reqwest::Client,
    _db: TestDatabase,
    _bucket: TestBucket,
}

impl System {
    async fn start() -> Self {
        let (db, bucket, otlp) = (
            TestDatabase::empty().await,
            TestBucket::new().await,
            otlp_receiver(),
        );
        let png = encode(&two_tone(64, 48).into(), ImageFormat::Png);
        let image_host = Fixture::start(move |_| Reply::bytes(200, "image/png", png.clone()));
        let [print_port, download_port, management_port, printer_port] =
            [free_port(), free_port(), free_port(), free_port()];
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let observed = |mut env: Vec<(&'static str, String)>| {
            env.extend([
                ("RUST_LOG", "info".to_owned()),
                ("LOG_FORMAT", "json".to_owned()),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url.clone()),
            ]);
            env
        };

        let mut download = bucket.env();
        download.extend([
            ("DATABASE_URL", db.url.clone()),
            ("DOWNLOAD_ALLOW_PRIVATE_NETWORKS", "true".into()),
            ("DOWNLOAD_CALLBACK_SECRET", CALLBACK_SECRET.into()),
            ("AUTH_JWT_SECRET", auth::SECRET.into()),
            ("MANAGEMENT_URL", url(management_port)),
            (
                "MANAGEMENT_TOKEN",
                auth::token("download-service", &["service"]),
            ),
        ]);
        let download = RunningBinary::start_logged(
            &traced_binary("download-service", "pixpress-download"),
            download_port,
            &borrowed(&observed(download)),
        )
        .await;
        let printer = vec![
            ("PRINTER_CALLBACK_SECRET", CALLBACK_SECRET.to_owned()),
            ("PRINTER_DELAY_MS", "0".to_owned()),
        ];
        let printer = RunningBinary::start_logged(
            &traced_binary("printer-sim", "pixpress-printer-sim"),
            printer_port,
            &borrowed(&observed(printer)),
        )
        .await;
        let management = vec![
            ("AUTH_JWT_SECRET", auth::SECRET.to_owned()),
            ("DOWNLOAD_URL", url(download_port)),
            ("MANAGEMENT_PUBLIC_URL", url(management_port)),
            ("DOWNLOAD_CALLBACK_SECRET", CALLBACK_SECRET.to_owned()),
            (
                "DOWNLOAD_TOKEN",
                auth::token("management-api", &["service"]),
            ),
            ("PRINTER_URL", url(printer_port)),
        ];
        let management = RunningBinary::start_logged(
            &traced_binary("management-api", "pixpress-management"),
            management_port,
            &borrowed(&observed(management)),
        )
        .await;
        let print = vec![
            ("DATABASE_URL", db.url.clone()),
            ("AUTH_JWT_SECRET", auth::SECRET.to_owned()),
            ("MANAGEMENT_URL", url(management_port)),
            ("MANAGEMENT_TOKEN", auth::service()),
            ("PUBLIC_URL", url(print_port)),
            ("PRINTER_CALLBACK_SECRET", CALLBACK_SECRET.to_owned()),
        ];
        let print = RunningBinary::start_logged(
            &traced_binary("print-service", "pixpress-print"),
            print_port,
            &borrowed(&observed(print)),
        )
        .await;
        let system = Self {
            print,
            download,
            management,
            printer,
            otlp,
            image_host,
            http: client_as(&auth::admin()),
            _db: db,
            _bucket: bucket,
        };
        for base in [&system.print.url, &system.download.url] {
            system.wait_ready(base).await;
        }
        system
    }

    async fn wait_ready(&self, base_url: &str) {
        let url = format!("{base_url}/ready");
        eventually(&format!("{url} to answer 200"), PATIENCE, || async {
            let res = self.http.get(&url).send().await.ok()?;
            (res.status() == 200).then_some(())
        })
        .await;
    }

    /// Adds an image of user 1, sent in the trace `traceparent` when given, and
    /// waits until it is ready; the image.
    async fn ready_image(&self, traceparent: Option<&str>) -> Value {
        let mut request = self
            .http
            .post(format!("{}/users/1/images", self.management.url))
            .json(&json!({ "url": format!("{}/cat.png", self.image_host.url) }));
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        let res = request.send().await.expect("POST /users/1/images");
        assert_eq!(res.status(), 201);
        let created: Value = res.json().await.expect("an image");
        let image = settled_image(&self.http, &self.management.url, 1, &created["id"]).await;
        assert_eq!(image["status"], "ready", "{image}");
        image
    }

    /// Prints image `file_id` of user 1 in the client's trace ([`TRACE_ID`], whose
    /// span is [`CLIENT_SPAN`]) and waits until the job is completed; the job.
    async fn print_in_trace(&self, file_id: &Value) -> Value {
        let res = self
            .http
            .post(format!("{}/print/jobs", self.print.url))
            .header("traceparent", traceparent(TRACE_ID, CLIENT_SPAN))
            .header("tracestate", TRACESTATE)
            .header("x-request-id", "print-in-trace")
            .json(&json!({"user_id": 1, "file_id": file_id}))
            .send()
            .await
            .expect("POST /print/jobs");
        assert_eq!(res.status(), 201);
        let job: Value = res.json().await.expect("a job");
        let url = format!(
            "{}/print/jobs/{}",
            self.print.url,
            job["id"].as_str().unwrap()
        );
        eventually("the job to be completed", PATIENCE, || async {
            let job: Value = self.http.get(&url).send().await.ok()?.json().await.ok()?;
            (job["state"] == "completed").then_some(job)
        })
        .await
    }

    fn services(&self) -> [(&'static str, &RunningBinary); 4] {
        [
            ("print-service", &self.print),
            ("management-api", &self.management),
            ("printer-sim", &self.printer),
            ("download-service", &self.download),
        ]
    }

    fn binary(&self, service: &str) -> &RunningBinary {
        let found = self
            .services()
            .into_iter()
            .find(|(name, _)| *name == service);
        found
            .map(|(_, binary)| binary)
            .expect("one of the four services")
    }
}

#[tokio::test]
async fn one_print_jobs_trace_id_is_in_the_json_logs_of_all_four_services() {
    let system = System::start().await;
    let image = system.ready_image(None).await;
    system.print_in_trace(&image["id"]).await;

    // What each service logs of the job, once the printer has fetched the image and
    // print-service has taken the final callback (the job is completed).
    let expected = [
        ("print-service", "\"POST /print/jobs\" 201"),
        ("print-service", "\"POST /print/callbacks/"),
        ("management-api", "\"GET /lookup\" 200"),
        ("printer-sim", "\"POST /jobs\" 202"),
        ("download-service", "/original\" 302"),
    ];
    for (service, what) in expected {
        let binary = system.binary(service);
        eventually(
            &format!("{service} to log {what:?} in the job's trace"),
            PATIENCE,
            || async {
                json_log(service, binary).into_iter().find(|line| {
                    line["trace_id"] == TRACE_ID
                        && line["msg"].as_str().is_some_and(|m| m.contains(what))
                })
            },
        )
        .await;
    }
    for (service, binary) in system.services() {
        for line in json_log(service, binary) {
            if line["trace_id"] == TRACE_ID {
                let span = line["span_id"].as_str().unwrap_or_default();
                assert_eq!(span.len(), 16, "{service}: a span id in {line}");
                assert!(line["request_id"].is_string(), "{service}: {line}");
            }
        }
    }
}

#[tokio::test]
async fn every_service_exports_the_print_jobs_spans_each_the_child_of_its_caller() {
    let system = System::start().await;
    let image = system.ready_image(None).await;
    let job = system.print_in_trace(&image["id"]).await;
    let otlp = &system.otlp;

    let intake = span_named(otlp, TRACE_ID, "print-service", "POST /print/jobs").await;
    let lookup = span_named(otlp, TRACE_ID, "management-api", "GET /lookup").await;
    let submission = span_named(otlp, TRACE_ID, "printer-sim", "POST /jobs").await;
    let fetch = span_named(
        otlp,
        TRACE_ID,
        "download-service",
        "GET /images/{id}/original",
    )
    .await;
    // The client's span is the intake's parent; each hop's span is its callee's.
    assert_eq!(intake.parent(), Some(CLIENT_SPAN));
    assert_eq!(lookup.parent(), Some(intake.id()), "print → management");
    assert_eq!(
        submission.parent(),
        Some(intake.id()),
        "the dispatcher sends the job in the trace stored with it"
    );
    assert_eq!(fetch.parent(), Some(submission.id()), "printer → download");
    let callbacks = eventually("both callbacks' spans", PATIENCE, || async {
        let callbacks: Vec<Span> = received_spans(otlp)
            .into_iter()
            .filter(|s| s.span["traceId"] == TRACE_ID)
            .filter(|s| s.name() == "POST /print/callbacks/{correlation_id}")
            .collect();
        (callbacks.len() >= 2).then_some(callbacks)
    })
    .await;
    for callback in &callbacks {
        assert_eq!(callback.service, "print-service");
        assert_eq!(callback.parent(), Some(submission.id()), "printer → print");
        assert_eq!(
            callback.attribute("http.response.status_code"),
            Some(&json!("204"))
        );
    }

    // The intake span says what was asked and how it went; tracestate travels on.
    assert_eq!(intake.span["kind"], 2, "a SERVER span");
    assert_eq!(
        intake.attribute("http.request.method"),
        Some(&json!("POST"))
    );
    assert_eq!(intake.attribute("http.route"), Some(&json!("/print/jobs")));
    assert_eq!(
        intake.attribute("http.response.status_code"),
        Some(&json!("201"))
    );
    assert_eq!(lookup.span["traceState"], TRACESTATE);
    let ids: HashSet<&str> = [&intake, &lookup, &submission, &fetch]
        .iter()
        .map(|s| s.id())
        .chain(callbacks.iter().map(Span::id))
        .collect();
    assert_eq!(
        ids.len(),
        4 + callbacks.len(),
        "each hop has a span of its own"
    );
    assert!(job["id"].is_string());
}

#[tokio::test]
async fn a_download_and_its_report_continue_the_trace_of_the_request_that_asked() {
    let system = System::start().await;
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let image = system
        .ready_image(Some(&traceparent(trace_id, "b7ad6b7169203331")))
        .await;
    let otlp = &system.otlp;

    let added = span_named(
        otlp,
        trace_id,
        "management-api",
        "POST /users/{user_id}/images",
    )
    .await;
    let asked = span_named(otlp, trace_id, "download-service", "POST /downloads").await;
    let report = span_named(
        otlp,
        trace_id,
        "management-api",
        "POST /internal/images/{image_id}/download",
    )
    .await;
    assert_eq!(
        asked.parent(),
        Some(added.id()),
        "management-api asks in the background, in the request's trace"
    );
    assert_eq!(
        report.parent(),
        Some(asked.id()),
        "the worker's report continues the trace stored with the task"
    );
    // The worker's own lines (request id `download-…`) are in the trace too.
    let worker_lines = eventually("the worker to log in the trace", PATIENCE, || async {
        let lines: Vec<Value> = json_log("download-service", &system.download)
            .into_iter()
            .filter(|l| l["trace_id"] == trace_id)
            .filter(|l| {
                l["request_id"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("download-"))
            })
            .collect();
        (!lines.is_empty()).then_some(lines)
    })
    .await;
    assert!(
        worker_lines
            .iter()
            .any(|l| l["msg"].as_str().is_some_and(|m| m.contains("completed"))),
        "{worker_lines:?}"
    );
    assert_eq!(image["status"], "ready");
}

#[tokio::test]
async fn a_request_without_a_valid_traceparent_starts_a_trace_of_its_own() {
    let otlp = otlp_receiver();
    let env = [
        ("AUTH_JWT_SECRET", auth::SECRET.to_owned()),
        ("RUST_LOG", "info".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url.clone()),
    ];
    let management = RunningBinary::start_logged(
        &traced_binary("management-api", "pixpress-management"),
        free_port(),
        &borrowed(&env),
    )
    .await;
    let http = client_as(&auth::admin());
    let invalid_trace = "0af7651916cd43dd8448eb211c80319c";
    let cases = [
        ("no-traceparent", None),
        (
            "version-ff",
            Some(format!("ff-{invalid_trace}-b7ad6b7169203331-01")),
        ),
        (
            "uppercase",
            Some(format!(
                "00-{}-B7AD6B7169203331-01",
                invalid_trace.to_uppercase()
            )),
        ),
        (
            "all-zero-trace-id",
            Some(format!("00-{}-b7ad6b7169203331-01", "0".repeat(32))),
        ),
    ];
    for (request_id, traceparent) in &cases {
        let mut request = http
            .get(format!("{}/printers", management.url))
            .header("x-request-id", *request_id);
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        assert_eq!(request.send().await.unwrap().status(), 200, "{request_id}");
    }

    let mut traces = HashSet::new();
    for (request_id, _) in &cases {
        let logged = eventually(
            &format!("the access line of {request_id}"),
            PATIENCE,
            || async {
                json_log("management-api", &management)
                    .into_iter()
                    .find(|l| {
                        l["request_id"] == *request_id && l["target"] == "pixpress_kit::access"
                    })
            },
        )
        .await;
        let trace_id = logged["trace_id"].as_str().expect("a trace id").to_owned();
        assert_eq!(trace_id.len(), 32, "{logged}");
        assert!(
            trace_id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{logged}"
        );
        assert_ne!(trace_id, "0".repeat(32));
        assert_ne!(
            trace_id, invalid_trace,
            "{request_id}: the invalid header was adopted"
        );
        let span = eventually(&format!("the span of {request_id}"), PATIENCE, || async {
            received_spans(&otlp)
                .into_iter()
                .find(|s| s.attribute("pixpress.request_id") == Some(&json!(request_id)))
        })
        .await;
        assert_eq!(span.span["traceId"], trace_id.as_str(), "{request_id}");
        assert_eq!(
            span.parent(),
            None,
            "{request_id}: a new trace has no parent span"
        );
        traces.insert(trace_id);
    }
    assert_eq!(
        traces.len(),
        cases.len(),
        "each request has a trace of its own"
    );
}
