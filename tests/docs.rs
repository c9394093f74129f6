//! Every service's `/docs` page, opened in a real browser (Debian's `chromium`,
//! headless, with no network but loopback): the page renders that service's
//! operations from its own OpenAPI document, with nothing fetched from elsewhere.

mod support;

use pixpress_testkit::http::AnswerJson;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use support::stack;

/// The DOM of `url` after chromium ran its scripts (at most `budget` of virtual time).
async fn rendered_dom(url: &str, budget: Duration) -> String {
    let profile = tempfile::tempdir().expect("a browser profile folder");
    let output = tokio::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-dev-shm-usage",
            // Nothing but loopback: a page that needs the network cannot render.
            "--proxy-server=http://0.0.0.0:1",
            "--proxy-bypass-list=<-loopback>;127.0.0.1",
            &format!("--user-data-dir={}", profile.path().display()),
            &format!("--virtual-time-budget={}", budget.as_millis()),
            "--dump-dom",
            url,
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("chromium finishes")
        .expect("chromium runs (apt-get install chromium)");
    assert!(output.status.success(), "chromium: {}", output.status);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn every_service_docs_page_renders_its_operations_in_a_browser() {
    let (stack, _db) = stack().await;
    let http = reqwest::Client::new();
    let services = [
        ("print-service", &stack.print_url),
        ("download-service", &stack.download_url),
        ("management-api", &stack.management_url),
        ("printer-sim", &stack.printer_url),
        ("ipp-gateway", &stack.ipp_gateway_url),
    ];
    for (name, url) in services {
        let doc: Value = http.get(format!("{url}/openapi.json")).answer_json().await;
        let dom = rendered_dom(&format!("{url}/docs"), Duration::from_secs(20)).await;
        let title = doc["info"]["title"].as_str().unwrap();
        assert!(
            dom.contains(&format!("<title>{title} — API</title>")),
            "{name}"
        );
        // Redoc writes each operation's path into the page; the script tag alone does not.
        let paths = doc["paths"].as_object().unwrap();
        for path in paths.keys().filter(|p| !p.starts_with("/docs")) {
            assert!(
                dom.contains(&format!(">{path}<")) || dom.contains(&format!("{path}</")),
                "{name}'s /docs does not show {path}"
            );
        }
        assert!(dom.contains("redoc-wrap"), "{name}: Redoc rendered");
    }
    stack.stop().await;
}
