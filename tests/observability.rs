//! What operators see: a real Prometheus scraping the running system with the
//! shipped scrape configuration, and a Grafana dashboard that asks only for metrics
//! the services really expose.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use image::ImageFormat;
use pixpress_stack::Stack;
use pixpress_testkit::auth::client_as;
use pixpress_testkit::fixture::{Fixture, Reply};
use pixpress_testkit::http::{eventually, free_port, AnswerJson};
use pixpress_testkit::images::{encode, two_tone};
use pixpress_testkit::metrics;
use serde_json::{json, Value};
use support::{add_image, job_reaches, settled_image, stack, stack_with_ipp_sim, PATIENCE};

/// The scrape jobs of the shipped Prometheus configuration.
const SERVICES: [&str; 5] = [
    "print-service",
    "download-service",
    "management-api",
    "printer-sim",
    "ipp-gateway",
];
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Drives one image download and one print job through the system, so every
/// labelled metric has at least one series; with the `ipp-sim` printer, a second
/// job through ipp-gateway.
async fn exercise(stack: &Stack) {
    let http = client_as(&stack.token("0", &["admin"]));
    let png = encode(&two_tone(64, 48).into(), ImageFormat::Png);
    let host = Fixture::start(move |_| Reply::bytes(200, "image/png", png.clone()));
    let image_url = format!("{}/x.png", host.url);
    let image = add_image(&http, &stack.management_url, 1, &image_url).await;
    let ready = settled_image(&http, &stack.management_url, 1, &image["id"]).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    // printer-sim (the default printer), and ipp-sim through ipp-gateway when it runs.
    let printers = if stack.ipp_sim.is_some() {
        1..=2
    } else {
        1..=1
    };
    for printer_id in printers {
        let job: Value = http
            .post(format!("{}/print/jobs", stack.print_url))
            .json(&json!({"user_id": 1, "file_id": image["id"], "printer_id": printer_id}))
            .answer_json()
            .await;
        job_reaches(&http, stack, job["id"].as_str().unwrap(), "completed").await;
    }
}

/// Every `pixpress_…` metric name in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("pixpress_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

fn exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_metric_the_dashboard_asks_for_is_exposed() {
    let dashboard_path = Path::new(ROOT).join("docker/grafana/dashboards/pixpress.json");
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(&dashboard_path).expect("the shipped Grafana dashboard"),
    )
    .expect("the dashboard is JSON");
    let (stack, _db) = stack_with_ipp_sim().await;
    exercise(&stack).await;

    let http = client_as(&stack.token("0", &["admin"]));
    let mut exposed = BTreeSet::new();
    for url in [
        &stack.print_url,
        &stack.download_url,
        &stack.management_url,
        &stack.printer_url,
        &stack.ipp_gateway_url,
    ] {
        let text = metrics::scrape(&http, url).await;
        // Histograms as their `_bucket`/`_sum`/`_count` samples, as PromQL names them.
        exposed.extend(metrics::samples(&text).into_iter().map(|s| s.name));
    }
    let mut all = Vec::new();
    exprs(&dashboard, &mut all);
    assert!(!all.is_empty(), "the dashboard has no queries");
    let asked: BTreeSet<String> = all.iter().flat_map(|e| metric_names(e)).collect();
    let missing: Vec<&String> = asked.iter().filter(|m| !exposed.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard asks for metrics nobody exposes: {missing:?}"
    );
    stack.stop().await;
}

/// A Prometheus server as a child process, killed on drop.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find_prometheus() -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("prometheus"))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

#[tokio::test]
async fn a_real_prometheus_scrapes_all_five_services() {
    let Some(binary) = find_prometheus() else {
        eprintln!(
            "SKIPPED a_real_prometheus_scrapes_all_five_services: `prometheus` is not installed \
             (Debian: apt-get install prometheus; .ci/run installs it)"
        );
        return;
    };
    let (stack, _db) = stack().await;
    // The shipped configuration, with each compose service's DNS discovery swapped
    // for the loopback address the stack gave it (everything else as shipped).
    let shipped = std::fs::read_to_string(Path::new(ROOT).join("docker/prometheus/prometheus.yml"))
        .expect("the shipped Prometheus configuration");
    let mut config = shipped.clone();
    for (name, port, url) in [
        ("print-service", 8080, &stack.print_url),
        ("download-service", 8081, &stack.download_url),
        ("management-api", 8082, &stack.management_url),
        ("printer-sim", 8083, &stack.printer_url),
        ("ipp-gateway", 8084, &stack.ipp_gateway_url),
    ] {
        let discovery = format!(
            "dns_sd_configs:\n      - names: [\"{name}\"]\n        type: A\n        port: {port}\n        refresh_interval: 5s"
        );
        assert!(
            shipped.contains(&discovery),
            "the shipped config scrapes {name}"
        );
        let here = url.trim_start_matches("http://");
        config = config.replace(
            &discovery,
            &format!("static_configs:\n      - targets: [\"{here}\"]"),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    // The shipped alert rules load too (Prometheus refuses to start on a bad one).
    std::fs::copy(
        Path::new(ROOT).join("docker/prometheus/alerts.yml"),
        dir.path().join("alerts.yml"),
    )
    .expect("the shipped alert rules");
    let port = free_port();
    let _prometheus = Prometheus(
        Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    );
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let http = client_as(&stack.token("0", &["admin"]));
    for url in [
        &stack.print_url,
        &stack.download_url,
        &stack.management_url,
        &stack.printer_url,
        &stack.ipp_gateway_url,
    ] {
        http.get(format!("{url}/health")).send().await.unwrap();
    }

    let targets: Vec<Value> = eventually("all five targets up", PATIENCE, || async {
        let body: Value = http
            .get(format!("{api}/targets"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        // The five services (the shipped config also scrapes Prometheus itself).
        let ours: Vec<Value> = body["data"]["activeTargets"]
            .as_array()?
            .iter()
            .filter(|t| SERVICES.contains(&t["labels"]["job"].as_str().unwrap_or("")))
            .cloned()
            .collect();
        let up = ours.iter().filter(|t| t["health"] == "up").count();
        (ours.len() == 5 && up == 5).then_some(ours)
    })
    .await;
    let jobs: BTreeSet<&str> = targets
        .iter()
        .filter_map(|t| t["labels"]["job"].as_str())
        .collect();
    assert_eq!(jobs.len(), 5, "{jobs:?}");

    for query in [
        "pixpress_print_backend_permits_available",
        r#"pixpress_http_requests_total{service="print"}"#,
    ] {
        eventually(&format!("Prometheus to have {query}"), PATIENCE, || async {
            let body: Value = http
                .get(format!("{api}/query"))
                .query(&[("query", query)])
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let results = body["data"]["result"].as_array()?;
            (!results.is_empty()).then_some(())
        })
        .await;
    }
    stack.stop().await;
}

#[test]
fn metric_names_are_found_in_promql() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.95, sum by (le) (rate(pixpress_http_request_duration_seconds_bucket{service="print"}[5m])))"#
        ),
        ["pixpress_http_request_duration_seconds_bucket"]
    );
    assert_eq!(
        metric_names("pixpress_a_total / pixpress_b"),
        ["pixpress_a_total", "pixpress_b"]
    );
}
