//! Download results go to `MANAGEMENT_URL` only: a `callback_url` elsewhere is
//! refused when the download is asked for and again when its report is due, and
//! every report carries download-service's `MANAGEMENT_TOKEN`.

mod helpers;

use helpers::{TestApp, PATIENCE};
use pixpress_testkit::fixture::{Fixture, Reply};
use pixpress_testkit::http::eventually;
use pixpress_testkit::metrics;
use serde_json::{json, Value};

/// download-service whose `MANAGEMENT_URL` is the receiver's `/mgmt`.
async fn spawn_under_mgmt() -> TestApp {
    TestApp::spawn_with(|c| {
        let root = c.management_url.take().unwrap();
        c.management_url = Some(format!("{root}/mgmt"));
    })
    .await
}

fn image(app: &TestApp) -> String {
    app.host.png("/a.png", 8, 8)
}

/// Asks for a download of [`image`] whose result goes to `callback_url`.
async fn download_calling_back(app: &TestApp, callback_url: &str) -> reqwest::Response {
    let body = json!({"url": image(app), "callback_url": callback_url});
    app.post_download(&app.http, &body).await
}

/// `host:port` of the receiver.
fn authority(app: &TestApp) -> String {
    app.receiver.url.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn callback_urls_outside_management_url_are_refused_and_nothing_is_queued() {
    let app = spawn_under_mgmt().await;
    let at = authority(&app);
    let port: u16 = at.rsplit(':').next().unwrap().parse().unwrap();
    let hostile = [
        format!("http://198.51.100.7:{port}/mgmt/x"),
        format!("http://localhost:{port}/mgmt/x"),
        format!("https://{at}/mgmt/x"),
        format!("http://127.0.0.1:{}/mgmt/x", port.wrapping_add(1)),
        format!("http://{at}/mgmtx/y"),
        format!("http://{at}/mgmt"),
        format!("http://{at}/elsewhere"),
        format!("http://{at}/mgmt/../admin"),
        format!("http://{at}/mgmt/%2e%2e/admin"),
        format!("http://{at}/mgmt/%2E%2E%2Fadmin"),
        format!("http://{at}/mgmt/..%5cadmin"),
        format!("http://{at}@198.51.100.7/mgmt/x"),
        format!("http://evil@{at}/mgmt/x"),
        format!("http://{at}\\@198.51.100.7/mgmt/x"),
        format!("http://{at}.evil.example/mgmt/x"),
        format!("//{at}/mgmt/x"),
    ];
    for callback in &hostile {
        let res = download_calling_back(&app, callback).await;
        assert_eq!(res.status(), 400, "{callback}");
        let problem: Value = res.json().await.unwrap();
        assert_eq!(
            problem["type"], "https://pixpress.dev/problems/validation-error",
            "{callback}"
        );
        assert_eq!(problem["errors"][0]["field"], "callback_url", "{callback}");
    }
    assert_eq!(app.stored_tasks().await, 0);
}

#[tokio::test]
async fn callback_urls_under_management_url_are_accepted() {
    let app = spawn_under_mgmt().await;
    let at = authority(&app);
    for callback in [
        format!("http://{at}/mgmt/internal/images/1/download"),
        format!("http://{at}/mgmt/./internal/images/2/download"),
        format!("http://{at}/mgmt/internal/../internal/images/3/download?attempt=2"),
    ] {
        let res = download_calling_back(&app, &callback).await;
        assert_eq!(res.status(), 202, "{callback}");
    }
    assert_eq!(app.stored_tasks().await, 3);
}

#[tokio::test]
async fn without_a_management_url_no_callback_is_accepted() {
    let app = TestApp::spawn_with(|c| c.management_url = None).await;
    let callback = format!("{}/done", app.receiver.url);
    let res = download_calling_back(&app, &callback).await;
    assert_eq!(res.status(), 400);
    let res = app
        .post_download(&app.http, &json!({"url": image(&app)}))
        .await;
    assert_eq!(res.status(), 202, "a download without a callback is fine");
    assert_eq!(app.stored_tasks().await, 1);
}

#[tokio::test]
async fn a_report_carries_the_management_token() {
    let app = TestApp::spawn().await;
    let task = app.finished(&app.download(&image(&app)).await).await;
    let call = eventually("the report", PATIENCE, || async {
        app.receiver.requests().pop()
    })
    .await;
    assert_eq!(call.path, "/done");
    assert_eq!(
        call.header("authorization"),
        Some(format!("Bearer {}", app.management_token).as_str())
    );
    assert!(call.header("webhook-signature").is_some(), "still signed");
    let reported: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(reported["id"], task["id"]);
}

#[tokio::test]
async fn a_stored_callback_outside_management_url_is_never_sent() {
    let app = TestApp::spawn().await;
    let elsewhere = Fixture::start(|_| Reply::bytes(204, "text/plain", Vec::new()));
    // A finished task stored before callbacks were checked, its report due.
    let db = app.db.client().await;
    db.execute(
        "INSERT INTO download_tasks (id, url, callback_url, state, error, callback_due_at)
         VALUES (gen_random_uuid(), 'http://images.example/a.png', $1, 'failed', 'timeout', now())",
        &[&format!("{}/internal", elsewhere.url)],
    )
    .await
    .unwrap();
    eventually("the report to be settled", PATIENCE, || async {
        let row = db
            .query_one(
                "SELECT callback_due_at IS NULL AS settled, callback_attempts FROM download_tasks",
                &[],
            )
            .await
            .unwrap();
        (row.get::<_, bool>("settled") && row.get::<_, i32>("callback_attempts") == 1).then_some(())
    })
    .await;
    assert!(elsewhere.requests().is_empty(), "nothing sent elsewhere");
    assert!(app.receiver.requests().is_empty(), "nor redirected");
    let text = metrics::scrape(&app.http, &app.url).await;
    let refused = metrics::value(
        &text,
        "pixpress_download_callbacks_total",
        &[("outcome", "refused")],
    );
    assert_eq!(refused, Some(1.0));
}
