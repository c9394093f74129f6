//! Reading and canceling jobs: GET one, list with filters and keyset pagination,
//! cancel only while queued.

mod helpers;

use std::collections::HashSet;

use helpers::{assert_problem, TestApp};
use serde_json::{json, Value};

async fn create(app: &TestApp, user_id: i64, file_id: i64) -> Value {
    let res = app
        .post_job(json!({"user_id": user_id, "file_id": file_id}))
        .await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

#[tokio::test]
async fn unknown_and_malformed_job_ids_are_404() {
    let app = TestApp::spawn().await;
    assert_problem(
        app.get("/print/jobs/0191e0c2-7f3a-7000-8000-000000000000")
            .await,
        404,
    )
    .await;
    assert_problem(app.get("/print/jobs/not-a-uuid").await, 404).await;
}

#[tokio::test]
async fn a_queued_job_can_be_canceled_once() {
    let app = TestApp::spawn().await;
    let file_id = app.ready_image(1).await;
    let job = create(&app, 1, file_id).await;
    let cancel = format!(
        "{}/print/jobs/{}/cancel",
        app.url,
        job["id"].as_str().unwrap()
    );

    let res = app.http.post(&cancel).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["state"], "canceled");
    let again = app.http.post(&cancel).send().await.unwrap();
    let body = assert_problem(again, 409).await;
    assert!(body["detail"].as_str().unwrap().contains("canceled"));

    let fetched: Value = app
        .get(&format!("/print/jobs/{}", job["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["state"], "canceled");

    let missing = format!(
        "{}/print/jobs/0191e0c2-7f3a-7000-8000-000000000000/cancel",
        app.url
    );
    assert_problem(app.http.post(&missing).send().await.unwrap(), 404).await;
}

#[tokio::test]
async fn jobs_a_dispatcher_holds_or_has_sent_cannot_be_canceled() {
    let app = TestApp::spawn().await;
    let file_id = app.ready_image(1).await;
    let held = create(&app, 1, file_id).await;
    let sent = create(&app, 1, file_id).await;
    let db = app.db.client().await;
    let id = |j: &Value| uuid::Uuid::parse_str(j["id"].as_str().unwrap()).unwrap();
    db.execute(
        "UPDATE print_jobs SET lease_owner = 'other', lease_expires_at = now() + interval '1 minute' WHERE id = $1",
        &[&id(&held)],
    )
    .await
    .unwrap();
    db.execute(
        "UPDATE print_jobs SET state = 'dispatched' WHERE id = $1",
        &[&id(&sent)],
    )
    .await
    .unwrap();
    for job in [&held, &sent] {
        let url = format!(
            "{}/print/jobs/{}/cancel",
            app.url,
            job["id"].as_str().unwrap()
        );
        assert_problem(app.http.post(&url).send().await.unwrap(), 409).await;
    }
}

async fn page(app: &TestApp, query: &str) -> (Vec<String>, Option<String>) {
    let res = app.get(&format!("/print/jobs?{query}")).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let ids = body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect();
    (ids, body["next_cursor"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn listing_pages_through_every_job_once_even_while_new_jobs_arrive() {
    let app = TestApp::spawn().await;
    let mine = app.ready_image(1).await;
    let theirs = app.ready_image(2).await;
    let mut created = Vec::new();
    for _ in 0..25 {
        created.push(
            create(&app, 1, mine).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    create(&app, 2, theirs).await;

    let (first, cursor) = page(&app, "user_id=1&limit=10").await;
    assert_eq!(first.len(), 10);
    // Newest first.
    assert_eq!(first[0], created[24]);
    // A job created between pages does not shift the pages that follow.
    create(&app, 1, mine).await;
    let (second, cursor) = page(
        &app,
        &format!("user_id=1&limit=10&cursor={}", cursor.unwrap()),
    )
    .await;
    let (third, cursor) = page(
        &app,
        &format!("user_id=1&limit=10&cursor={}", cursor.unwrap()),
    )
    .await;
    assert_eq!(second.len(), 10);
    assert_eq!(third.len(), 5);
    assert_eq!(cursor, None);

    let seen: Vec<String> = first.into_iter().chain(second).chain(third).collect();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 25);
    let mut expected = created.clone();
    expected.reverse();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn listing_filters_by_state_and_rejects_bad_queries() {
    let app = TestApp::spawn().await;
    let file_id = app.ready_image(1).await;
    let keep = create(&app, 1, file_id).await;
    let drop = create(&app, 1, file_id).await;
    let url = format!(
        "{}/print/jobs/{}/cancel",
        app.url,
        drop["id"].as_str().unwrap()
    );
    app.http.post(&url).send().await.unwrap();

    let (canceled, _) = page(&app, "state=canceled").await;
    assert_eq!(canceled, [drop["id"].as_str().unwrap()]);
    let (queued, _) = page(&app, "user_id=1&state=queued").await;
    assert_eq!(queued, [keep["id"].as_str().unwrap()]);

    for bad in [
        "limit=0",
        "limit=101",
        "state=lost",
        "cursor=nope",
        "user_id=abc",
    ] {
        assert_problem(app.get(&format!("/print/jobs?{bad}")).await, 400).await;
    }
}
