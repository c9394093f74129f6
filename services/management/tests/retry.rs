//! The operator's retry of a failed download: `POST /users/{uid}/images/{id}/retry`.

mod helpers;

use std::time::Duration;

use helpers::{
    assert_documented, assert_problem, client, create, create_pending, image, signed_callback,
    spawn, task, FakeDownloadService, RequestedImage, CAT,
};
use pixpress_kit::problem::PROBLEM_TYPE_BASE;
use pixpress_testkit::auth;
use pixpress_testkit::http::eventually;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

/// An image of user 1 whose download failed with `timeout`.
async fn failed_image(downloads: &FakeDownloadService) -> RequestedImage {
    RequestedImage::reported(downloads, "failed", Some("timeout")).await
}

async fn retry(http: &reqwest::Client, url: &str, user: i64, id: &Value) -> reqwest::Response {
    http.post(format!("{url}/users/{user}/images/{id}/retry"))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_failed_image_is_asked_for_again_and_becomes_ready() {
    let downloads = FakeDownloadService::start();
    let (url, created, failed_task) = failed_image(&downloads).await.into_parts();
    let id = &created["id"];

    let res = retry(&client(), &url, 1, id).await;
    assert_eq!(res.status(), 200);
    let pending: Value = res.json().await.unwrap();
    assert_eq!(
        pending,
        json!({
            "id": id, "user_id": 1, "url": CAT, "status": "pending",
            "original_url": null, "thumbnail_url": null, "error": null,
        })
    );
    assert_eq!(image(&url, 1, id).await, pending);

    // The same URL asked for again, as a new task; the failed one is deleted.
    let new_task = eventually("a new task, the failed one gone", WAIT, || async {
        match downloads.tasks()[..] {
            [only] if only != failed_task => Some(only),
            _ => None,
        }
    })
    .await;
    let asked = downloads.requests("POST", "/downloads");
    assert_eq!(asked.len(), 2);
    let body: Value = serde_json::from_slice(&asked[1].body).unwrap();
    assert_eq!(body["url"], CAT);

    let report = task(new_task, CAT, "completed", None);
    assert_eq!(signed_callback(&url, id, &report).await.status(), 204);
    assert_eq!(image(&url, 1, id).await["status"], "ready");
}

#[tokio::test]
async fn a_late_report_of_the_replaced_download_is_refused() {
    let downloads = FakeDownloadService::start();
    let (url, created, failed_task) = failed_image(&downloads).await.into_parts();
    let id = &created["id"];
    assert_eq!(retry(&client(), &url, 1, id).await.status(), 200);

    let late = task(failed_task, CAT, "completed", None);
    assert_problem(signed_callback(&url, id, &late).await, 409).await;
    assert_eq!(image(&url, 1, id).await["status"], "pending");
}

#[tokio::test]
async fn refused_retries_change_nothing() {
    let downloads = FakeDownloadService::start();
    let (url, failed, _) = failed_image(&downloads).await.into_parts();
    let pending = create_pending(&url, 1, "https://images.test/dog.jpg").await;
    let ready = create(&url, 1, json!({"url": "http://x/ready.jpg", "ready": true}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    eventually("the pending image's task", WAIT, || async {
        (downloads.tasks().len() == 2).then_some(())
    })
    .await;
    let (admin, owner) = (client(), auth::client_as(&auth::user(1)));
    let anonymous = pixpress_testkit::http::client();

    let cases: [(&str, &reqwest::Client, i64, &Value, u16, &str); 6] = [
        (
            "no token",
            &anonymous,
            1,
            &failed["id"],
            401,
            "unauthorized",
        ),
        (
            "the owner, not an admin",
            &owner,
            1,
            &failed["id"],
            403,
            "admin-only",
        ),
        (
            "an unknown image",
            &admin,
            1,
            &json!(9999),
            404,
            "image-not-found",
        ),
        (
            "another user's path",
            &admin,
            2,
            &failed["id"],
            404,
            "image-not-found",
        ),
        (
            "a pending image",
            &admin,
            1,
            &pending["id"],
            409,
            "not-failed",
        ),
        ("a ready image", &admin, 1, &ready["id"], 409, "not-failed"),
    ];
    for (what, http, user, id, status, code) in cases {
        let res = retry(http, &url, user, id).await;
        assert_eq!(res.status(), status, "{what}");
        let problem: Value = res.json().await.unwrap();
        assert_eq!(
            problem["type"],
            format!("{PROBLEM_TYPE_BASE}{code}"),
            "{what}"
        );
    }
    assert_eq!(image(&url, 1, &failed["id"]).await["status"], "failed");
    assert_eq!(image(&url, 1, &pending["id"]).await, pending);
    assert_eq!(image(&url, 1, &ready["id"]).await, ready);
    // Only the two images' first downloads were ever asked for.
    assert_eq!(downloads.requests("POST", "/downloads").len(), 2);
}

#[tokio::test]
async fn the_retry_route_is_documented() {
    let url = spawn(|_| {});
    let path = "/users/{user_id}/images/{id}/retry";
    assert_documented(&url, path, "post", &["200", "401", "403", "404", "409"]).await;
}
