//! `/downloads…` is an internal API: only a token with the `service` (or `admin`)
//! role gets in; a forged or end-user call is refused before anything is queued.
//! The image links stay open to browsers.

mod helpers;

use helpers::TestApp;
use pixpress_testkit::auth;
use pixpress_testkit::http::client;
use serde_json::{json, Value};

const SOME_TASK: &str = "0191e0c2-7f3a-7000-8000-000000000000";

/// Every way a caller without the service role may come, and what it gets.
fn refused_callers() -> Vec<(&'static str, reqwest::Client, u16, &'static str)> {
    vec![
        ("no token", client(), 401, "unauthorized"),
        (
            "an expired token",
            auth::client_as(&auth::expired("management-api")),
            401,
            "unauthorized",
        ),
        (
            "a token signed with another secret",
            auth::client_as(&pixpress_kit::auth::mint(
                "not-the-secret",
                "management-api",
                &["service"],
                std::time::Duration::from_secs(60),
            )),
            401,
            "unauthorized",
        ),
        ("garbage", auth::client_as("not.a.jwt"), 401, "unauthorized"),
        (
            "an end user's token",
            auth::client_as(&auth::user(7)),
            403,
            "service-role-required",
        ),
    ]
}

async fn assert_refused(res: reqwest::Response, status: u16, code: &str, what: &str) {
    assert_eq!(res.status().as_u16(), status, "{what}");
    if status == 401 {
        assert!(res.headers().contains_key("www-authenticate"), "{what}");
    }
    let problem: Value = res.json().await.unwrap();
    assert_eq!(
        problem["type"],
        format!("https://pixpress.dev/problems/{code}"),
        "{what}"
    );
}

#[tokio::test]
async fn a_download_without_a_service_token_is_refused_and_nothing_is_queued() {
    let app = TestApp::spawn().await;
    let url = app.host.png("/a.png", 8, 8);
    let body = json!({"url": url, "callback_url": format!("{}/done", app.receiver.url)});
    for (what, caller, status, code) in refused_callers() {
        let res = app.post_download(&caller, &body).await;
        assert_refused(res, status, code, what).await;
    }
    // Refused before the body is read: an end user learns nothing from a bad body.
    let res = app
        .post_download(
            &auth::client_as(&auth::user(7)),
            &json!({"url": "file:///x"}),
        )
        .await;
    assert_refused(res, 403, "service-role-required", "a bad body from a user").await;
    assert_eq!(app.stored_tasks().await, 0);
    assert!(
        app.host.fixture.requests().is_empty(),
        "nothing was fetched"
    );
}

#[tokio::test]
async fn reading_and_deleting_tasks_want_the_service_role_too() {
    let app = TestApp::spawn().await;
    let task = app.downloaded(&app.host.png("/a.png", 8, 8)).await;
    let id = task["id"].as_str().unwrap();
    for (what, caller, status, code) in refused_callers() {
        let res = app.get_task(&caller, id).await;
        assert_refused(res, status, code, &format!("GET with {what}")).await;
        let res = app.delete_task(&caller, id).await;
        assert_refused(res, status, code, &format!("DELETE with {what}")).await;
    }
    assert_eq!(app.task(id).await["state"], "completed", "still there");
    assert_eq!(app.bucket.keys("originals/").len(), 1, "objects kept");
}

#[tokio::test]
async fn admins_may_call_the_internal_routes() {
    let app = TestApp::spawn().await;
    let admin = auth::client_as(&auth::admin());
    let url = app.host.png("/a.png", 8, 8);
    let res = app.post_download(&admin, &json!({"url": url})).await;
    assert_eq!(res.status(), 202);
    let res = app.get_task(&admin, SOME_TASK).await;
    assert_eq!(res.status(), 404, "let in, and told there is no such task");
}

#[tokio::test]
async fn image_links_need_no_token() {
    let app = TestApp::spawn().await;
    let task = app.downloaded(&app.host.png("/a.png", 8, 8)).await;
    let id = task["id"].as_str().unwrap();
    assert_eq!(app.image_status(id, "original").await, 302);
    assert_eq!(app.image_status(id, "thumbnail").await, 302);
}
