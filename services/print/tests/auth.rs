//! Authentication on /print/jobs…: a user acts for themselves, another user's job
//! does not exist for them, an admin may act for anyone, and the operational and
//! callback routes stay open to their own callers.

mod helpers;

use helpers::{assert_problem, TestApp};
use pixpress_testkit::auth;
use serde_json::{json, Value};

async fn post_as(app: &TestApp, token: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{}/print/jobs", app.url))
        .json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

async fn get_as(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}{path}", app.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn missing_malformed_expired_and_foreign_tokens_are_401_with_a_challenge() {
    let app = TestApp::spawn().await;
    let body = json!({"user_id": 1, "file_id": 1});
    let expired = auth::expired("1");
    let foreign = pixpress_kit::auth::mint(
        "not-our-secret",
        "1",
        &[],
        std::time::Duration::from_secs(60),
    );
    for token in [
        None,
        Some("garbage"),
        Some(expired.as_str()),
        Some(foreign.as_str()),
    ] {
        let res = post_as(&app, token, body.clone()).await;
        assert_eq!(res.headers()["www-authenticate"], "Bearer", "{token:?}");
        assert_problem(res, 401).await;
    }
    assert_eq!(app.job_rows().await, 0);
}

#[tokio::test]
async fn a_user_orders_only_for_themselves_and_sees_only_their_jobs() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (auth::user(1), auth::user(2));
    let file = app.ready_image(1).await;

    let res = post_as(&app, Some(&alice), json!({"user_id": 1, "file_id": file})).await;
    assert_eq!(res.status(), 201);
    let job: Value = res.json().await.unwrap();
    let path = format!("/print/jobs/{}", job["id"].as_str().unwrap());

    // Bob may not order in Alice's name…
    assert_problem(
        post_as(&app, Some(&bob), json!({"user_id": 1, "file_id": file})).await,
        403,
    )
    .await;
    // …and Alice's job does not exist for him.
    assert_problem(get_as(&app, &bob, &path).await, 404).await;
    let cancel = reqwest::Client::new()
        .post(format!("{}{path}/cancel", app.url))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_problem(cancel, 404).await;
    assert_problem(get_as(&app, &bob, "/print/jobs?user_id=1").await, 403).await;
    let bobs: Value = get_as(&app, &bob, "/print/jobs")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bobs["jobs"], json!([]));

    let alices: Value = get_as(&app, &alice, "/print/jobs")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(alices["jobs"][0]["id"], job["id"]);
    assert_eq!(get_as(&app, &alice, &path).await.status(), 200);
    // An admin sees everyone's.
    assert_eq!(get_as(&app, &auth::admin(), &path).await.status(), 200);
}

#[tokio::test]
async fn operational_routes_need_no_token() {
    let app = TestApp::spawn().await;
    for path in ["/health", "/metrics", "/openapi.json"] {
        let res = reqwest::get(format!("{}{path}", app.url)).await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    // The OpenAPI document says which routes want a bearer token.
    let doc: Value = reqwest::get(format!("{}/openapi.json", app.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["paths"]["/print/jobs"]["post"]["security"][0]["bearer"],
        json!([])
    );
    assert!(doc["paths"]["/print/jobs"]["post"]["responses"]["401"].is_object());
    assert!(doc["paths"]["/health"]["get"]["security"].is_null());
}
