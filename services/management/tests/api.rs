//! management-api over real HTTP: image records, the print lookup, printers.

mod helpers;

use pixpress_testkit::http::AnswerJson;
use std::time::{Duration, Instant};

use helpers::{client, create, spawn};
use serde_json::{json, Value};

#[tokio::test]
async fn images_are_created_listed_fetched_and_deleted_per_user() {
    let url = spawn(|_| {});
    let c = client();
    let res = create(&url, 3, json!({"url": "https://example.com/a.png"})).await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let image: Value = res.json().await.unwrap();
    assert_eq!(image["status"], "pending");
    assert_eq!(image["user_id"], 3);
    assert!(image["original_url"].is_null());
    assert_eq!(location, format!("/users/3/images/{}", image["id"]));

    let listed: Value = c.get(format!("{url}/users/3/images")).answer_json().await;
    assert_eq!(listed, json!([image]));
    let empty: Value = c.get(format!("{url}/users/4/images")).answer_json().await;
    assert_eq!(empty, json!([]));

    // Another user's image is as absent as a missing one.
    let other = c
        .get(format!("{url}/users/4/images/{}", image["id"]))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    let mine = c.get(format!("{url}{location}")).send().await.unwrap();
    assert_eq!(mine.json::<Value>().await.unwrap(), image);

    assert_eq!(
        c.delete(format!("{url}/users/4/images/{}", image["id"]))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.delete(format!("{url}{location}"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        c.get(format!("{url}{location}"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn image_urls_must_be_http_and_ids_positive() {
    let url = spawn(|_| {});
    for bad in [
        json!({"url": "file:///etc/passwd"}),
        json!({"url": 5}),
        json!({}),
    ] {
        let res = create(&url, 1, bad).await;
        assert_eq!(res.status(), 400);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["errors"][0]["field"], "url");
    }
    assert_eq!(
        create(&url, 0, json!({"url": "http://x/y"})).await.status(),
        404
    );
}

#[tokio::test]
async fn lookup_answers_200_404_403_and_409() {
    let url = spawn(|c| c.printer_url = "http://printer.test:9".into());
    let c = client();
    let ready: Value = create(&url, 1, json!({"url": "http://x/ready.jpg", "ready": true}))
        .await
        .json()
        .await
        .unwrap();
    let pending: Value = create(&url, 1, json!({"url": "http://x/pending.jpg"}))
        .await
        .json()
        .await
        .unwrap();
    let lookup = |user: i64, file: &Value| {
        c.get(format!("{url}/lookup?user_id={user}&file_id={file}"))
            .send()
    };

    let ok = lookup(1, &ready["id"]).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.json::<Value>().await.unwrap(),
        json!({"file_id": ready["id"], "image_url": "http://x/ready.jpg", "printer_id": 1, "printer_url": "http://printer.test:9"})
    );
    assert_eq!(lookup(2, &ready["id"]).await.unwrap().status(), 403);
    assert_eq!(lookup(1, &pending["id"]).await.unwrap().status(), 409);
    assert_eq!(lookup(1, &json!(12345)).await.unwrap().status(), 404);
    let bad = c
        .get(format!("{url}/lookup?user_id=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn lookup_latency_is_added_when_configured() {
    let url = spawn(|c| c.management_latency_ms = 200);
    let started = Instant::now();
    let res = client()
        .get(format!("{url}/lookup?user_id=1&file_id=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn printers_are_registered_moved_and_disabled() {
    let url = spawn(|c| c.printer_url = "http://p1".into());
    let c = client();
    let printers = || async {
        let res = c.get(format!("{url}/printers")).send().await.unwrap();
        res.json::<Value>().await.unwrap()
    };
    assert_eq!(
        printers().await,
        json!([{"id": 1, "url": "http://p1", "enabled": true}])
    );
    let put = |id: i64, body: Value| c.put(format!("{url}/printers/{id}")).json(&body).send();
    assert_eq!(
        put(2, json!({"url": "http://p2"})).await.unwrap().status(),
        201
    );
    assert_eq!(
        put(1, json!({"url": "http://p1b"})).await.unwrap().status(),
        200
    );
    assert_eq!(
        put(3, json!({"url": "gopher://p3"}))
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        printers().await,
        json!([{"id": 1, "url": "http://p1b", "enabled": true}, {"id": 2, "url": "http://p2", "enabled": true}])
    );

    // A lookup takes the printer asked for; a disabled one is refused, and the
    // default moves on to the next enabled printer.
    let image: Value = create(&url, 1, json!({"url": "http://x/a.jpg", "ready": true}))
        .await
        .json()
        .await
        .unwrap();
    let lookup = |printer: &str| {
        c.get(format!(
            "{url}/lookup?user_id=1&file_id={}{printer}",
            image["id"]
        ))
        .send()
    };
    let printer_url = |res: reqwest::Response| async move {
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()["printer_url"].clone()
    };
    assert_eq!(printer_url(lookup("").await.unwrap()).await, "http://p1b");
    assert_eq!(
        printer_url(lookup("&printer_id=2").await.unwrap()).await,
        "http://p2"
    );
    let unknown = lookup("&printer_id=9").await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_problem_type(unknown, "printer-not-found").await;

    let disabled = put(1, json!({"url": "http://p1b", "enabled": false}))
        .await
        .unwrap();
    assert_eq!(disabled.status(), 200);
    assert_eq!(disabled.json::<Value>().await.unwrap()["enabled"], false);
    let refused = lookup("&printer_id=1").await.unwrap();
    assert_eq!(refused.status(), 409);
    assert_problem_type(refused, "printer-disabled").await;
    assert_eq!(printer_url(lookup("").await.unwrap()).await, "http://p2");
    put(2, json!({"url": "http://p2", "enabled": false}))
        .await
        .unwrap();
    let none = lookup("").await.unwrap();
    assert_eq!(none.status(), 503);
    assert_problem_type(none, "no-printer").await;
}

async fn assert_problem_type(res: reqwest::Response, code: &str) {
    let problem: Value = res.json().await.unwrap();
    assert_eq!(
        problem["type"],
        format!("https://pixpress.dev/problems/{code}"),
        "{problem}"
    );
}
