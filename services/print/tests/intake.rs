//! POST /print/jobs: every status of DESIGN.md §3 steps 1–4, against a real
//! PostgreSQL and a real management-api (or a scripted fixture standing in for a
//! misbehaving one).

mod helpers;

use std::time::Duration;

use helpers::{assert_problem, TestApp};
use pixpress_testkit::fixture::{Fixture, Reply};
use serde_json::{json, Value};

#[tokio::test]
async fn a_valid_job_is_committed_and_answered_201_with_location() {
    let app = TestApp::spawn().await;
    let file_id = app.ready_image(1).await;
    let res = app
        .post_job(json!({"user_id": 1, "file_id": file_id, "copies": 3}))
        .await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let job: Value = res.json().await.unwrap();
    assert_eq!(
        location,
        format!("/print/jobs/{}", job["id"].as_str().unwrap())
    );
    assert_eq!(job["state"], "queued");
    assert_eq!(job["copies"], 3);
    assert_eq!(job["printer_id"], 1);
    assert_eq!(job["attempts"], 0);
    assert!(job["error"].is_null());
    for field in ["created_at", "updated_at"] {
        let t = job[field].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(t).is_ok(),
            "{field}: {t}"
        );
    }

    // It is in the database, queued, with a correlation id and where to print it.
    let row = app
        .db
        .client()
        .await
        .query_one(
            "SELECT state, correlation_id IS NOT NULL, printer_url, image_url FROM print_jobs",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "queued");
    assert!(row.get::<_, bool>(1));
    assert_eq!(row.get::<_, String>(2), "http://127.0.0.1:8083");
    assert_eq!(
        row.get::<_, String>(3),
        pixpress_testkit::images::sample_image_url()
    );

    let fetched: Value = app.get(&location).await.json().await.unwrap();
    assert_eq!(fetched, job);
}

#[tokio::test]
async fn the_seed_body_without_copies_prints_one_copy() {
    let app = TestApp::spawn().await;
    let file_id = app.ready_image(7).await;
    let res = app
        .post_job(json!({"user_id": 7, "file_id": file_id}))
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().await.unwrap()["copies"], 1);
}

#[tokio::test]
async fn invalid_fields_are_each_named_in_a_400_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let res = app
        .post_job(json!({"user_id": 0, "file_id": -4, "copies": 101}))
        .await;
    let body = assert_problem(res, 400).await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["copies", "file_id", "user_id"]);

    let body = assert_problem(
        app.post_job(json!({"user_id": "one", "file_id": 1})).await,
        400,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "user_id");
    let body = assert_problem(app.post_job(json!({"user_id": 1})).await, 400).await;
    assert_eq!(body["errors"][0]["field"], "file_id");
    assert_eq!(app.job_rows().await, 0);
}

#[tokio::test]
async fn non_json_is_415_and_bodies_over_64_kib_are_413() {
    let app = TestApp::spawn().await;
    let res = app
        .http
        .post(format!("{}/print/jobs", app.url))
        .header("content-type", "text/plain")
        .body(r#"{"user_id":1,"file_id":1}"#)
        .send()
        .await
        .unwrap();
    assert_problem(res, 415).await;

    let padding = "x".repeat(65 * 1024);
    let res = app
        .http
        .post(format!("{}/print/jobs", app.url))
        .header("content-type", "application/json")
        .body(format!(r#"{{"user_id":1,"file_id":1,"pad":"{padding}"}}"#))
        .send()
        .await
        .unwrap();
    assert_problem(res, 413).await;
    assert_eq!(app.job_rows().await, 0);
}

#[tokio::test]
async fn management_refusals_become_404_403_and_409() {
    let app = TestApp::spawn().await;
    let owned_by_2 = app.ready_image(2).await;
    let pending = app.pending_image(1).await;

    let body = assert_problem(
        app.post_job(json!({"user_id": 1, "file_id": 999})).await,
        404,
    )
    .await;
    assert_eq!(body["detail"], "no such file");
    assert_problem(
        app.post_job(json!({"user_id": 1, "file_id": owned_by_2}))
            .await,
        403,
    )
    .await;
    assert_problem(
        app.post_job(json!({"user_id": 1, "file_id": pending}))
            .await,
        409,
    )
    .await;
    assert_eq!(app.job_rows().await, 0);
}

/// print-service against a fixture that answers /lookup with `reply`.
async fn against(reply: Reply) -> (TestApp, Fixture) {
    let fixture = Fixture::start(move |_| reply.clone());
    let app = TestApp::spawn_with(fixture.url.clone(), |c| {
        c.backend_timeout_ms = 300;
        c.dispatch_enabled = false;
    })
    .await;
    (app, fixture)
}

#[tokio::test]
async fn a_failing_management_api_is_502_and_its_words_stay_in_the_log() {
    let (app, _fixture) = against(Reply::json(
        500,
        json!({"trace": "NullPointerException at Foo.java:42"}),
    ))
    .await;
    let body = assert_problem(app.post_job(json!({"user_id": 1, "file_id": 1})).await, 502).await;
    assert!(!body.to_string().contains("NullPointer"), "{body}");

    let (app, _fixture) =
        against(Reply::bytes(200, "application/json", b"{not json".to_vec())).await;
    assert_problem(app.post_job(json!({"user_id": 1, "file_id": 1})).await, 502).await;
    assert_eq!(app.job_rows().await, 0);
}

#[tokio::test]
async fn an_unreachable_management_api_is_503() {
    // Nothing listens on port 1.
    let app = TestApp::spawn_with("http://127.0.0.1:1".into(), |_| {}).await;
    let res = app.post_job(json!({"user_id": 1, "file_id": 1})).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_problem(res, 503).await;
}

#[tokio::test]
async fn a_management_api_slower_than_the_timeout_is_504() {
    let slow = Reply::json(200, json!({})).delayed(Duration::from_secs(5));
    let (app, _fixture) = against(slow).await;
    assert_problem(app.post_job(json!({"user_id": 1, "file_id": 1})).await, 504).await;
    assert_eq!(app.job_rows().await, 0);
}

#[tokio::test]
async fn the_request_id_is_forwarded_to_the_management_api() {
    let lookup = json!({"file_id": 5, "image_url": "http://i/x.jpg", "printer_id": 1, "printer_url": "http://p"});
    let (app, fixture) = against(Reply::json(200, lookup)).await;
    let res = app
        .http
        .post(format!("{}/print/jobs", app.url))
        .header("x-request-id", "trace-me-42")
        .json(&json!({"user_id": 1, "file_id": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["x-request-id"], "trace-me-42");
    let seen = fixture.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/lookup");
    assert_eq!(seen[0].query, "user_id=1&file_id=5");
    assert_eq!(seen[0].header("x-request-id"), Some("trace-me-42"));
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_returns_the_same_job() {
    let app = TestApp::spawn().await;
    let file_id = app.ready_image(1).await;
    let post = |key: &'static str, copies: i32| {
        app.http
            .post(format!("{}/print/jobs", app.url))
            .header("idempotency-key", key)
            .json(&json!({"user_id": 1, "file_id": file_id, "copies": copies}))
            .send()
    };
    let first: Value = post("order-77", 2).await.unwrap().json().await.unwrap();
    let retry = post("order-77", 2).await.unwrap();
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["id"], first["id"]);
    assert_eq!(app.job_rows().await, 1);

    assert_problem(post("order-77", 3).await.unwrap(), 422).await;
    assert_eq!(app.job_rows().await, 1);

    // Concurrent first attempts with one key still make one job.
    let (a, b) = tokio::join!(post("order-78", 1), post("order-78", 1));
    let (a, b): (Value, Value) = (
        a.unwrap().json().await.unwrap(),
        b.unwrap().json().await.unwrap(),
    );
    assert_eq!(a["id"], b["id"]);
    assert_eq!(app.job_rows().await, 2);
}

#[tokio::test]
async fn an_overlong_idempotency_key_is_400() {
    let app = TestApp::spawn().await;
    let res = app
        .http
        .post(format!("{}/print/jobs", app.url))
        .header("idempotency-key", "k".repeat(256))
        .json(&json!({"user_id": 1, "file_id": 1}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 400).await;
}
