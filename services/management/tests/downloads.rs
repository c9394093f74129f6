//! management-api and download-service: a pending image is sent to download-service
//! (a scripted stand-in here), and download-service's signed report makes it `ready`
//! or `failed`. Who may report is in `report_auth.rs`.

mod helpers;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use helpers::{
    assert_documented, assert_problem, callback_with, client, closed_port_url, create,
    create_pending, delete, download_token, image, lookup, metrics, outcome_count, signed_callback,
    spawn, taken_task, task, FakeDownloadService, RequestedImage, CAT, SECRET,
};
use pixpress_kit::webhook::{unix_now, WebhookSecret};
use pixpress_testkit::fixture::{Fixture, Recorded, Reply};
use pixpress_testkit::http::eventually;
use serde_json::{json, Value};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

/// The `POST /downloads` requests `fixture` has received so far.
fn download_requests(fixture: &Fixture) -> Vec<Recorded> {
    fixture
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/downloads")
        .collect()
}

async fn first_download_request(fixture: &Fixture) -> Recorded {
    eventually("a POST /downloads", WAIT, || async {
        download_requests(fixture).into_iter().next()
    })
    .await
}

#[tokio::test]
async fn a_pending_image_is_answered_at_once_then_sent_to_download_service() {
    // download-service takes its time: the 201 must not wait for it.
    let fixture = Fixture::start(|_| {
        Reply::json(202, task(Uuid::new_v4(), "x", "queued", None)).delayed(Duration::from_secs(3))
    });
    let download_url = fixture.url.clone();
    let url = spawn(|c| c.download_url = download_url);

    let started = Instant::now();
    let res = client()
        .post(format!("{url}/users/7/images"))
        .header("x-request-id", "create-cat-7")
        .json(&json!({"url": CAT}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the 201 waited for download-service"
    );
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["status"], "pending");

    let request = first_download_request(&fixture).await;
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({
            "url": CAT,
            "callback_url": format!("{url}/internal/images/{}/download", created["id"]),
        })
    );
    assert_eq!(request.header("x-request-id"), Some("create-cat-7"));
    let bearer = format!("Bearer {}", download_token());
    assert_eq!(request.header("authorization"), Some(bearer.as_str()));
    assert_eq!(image(&url, 7, &created["id"]).await["status"], "pending");
}

#[tokio::test]
async fn a_test_only_ready_image_is_not_downloaded() {
    let downloads = FakeDownloadService::start();
    let download_url = downloads.url();
    let url = spawn(|c| c.download_url = download_url);
    let res = create(&url, 1, json!({"url": "http://x/ready.jpg", "ready": true})).await;
    assert_eq!(res.status(), 201);
    // A pending image created afterwards is asked for; the ready one never was.
    create_pending(&url, 1, "http://x/pending.jpg").await;
    let request = first_download_request(&downloads.fixture).await;
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["url"], "http://x/pending.jpg");
    assert_eq!(download_requests(&downloads.fixture).len(), 1);
}

#[tokio::test]
async fn a_completed_download_makes_the_image_ready_and_printable() {
    let downloads = FakeDownloadService::start();
    // Users' browsers reach download-service by another name than printers do.
    let public = "http://photos.example:8081";
    let requested = RequestedImage::start_with(&downloads, |c| {
        c.download_public_url = Some(public.into());
    });
    let (url, created, task_id) = requested.await.into_parts();
    let id = &created["id"];
    let report = task(task_id, CAT, "completed", None);

    assert_eq!(signed_callback(&url, id, &report).await.status(), 204);
    let ready = image(&url, 1, id).await;
    let original = format!("{public}/images/{task_id}/original");
    assert_eq!(
        ready,
        json!({
            "id": id,
            "user_id": 1,
            "url": CAT,
            "status": "ready",
            "original_url": original,
            "thumbnail_url": format!("{public}/images/{task_id}/thumbnail"),
            "error": null,
        })
    );
    let found = lookup(&url, 1, id).await;
    assert_eq!(found.status(), 200);
    assert_eq!(
        found.json::<Value>().await.unwrap()["image_url"],
        format!(
            "{}/images/{task_id}/original?network=internal",
            downloads.url()
        ),
        "printers get download-service's internal link"
    );

    // download-service retrying the same report: accepted, nothing changes.
    assert_eq!(signed_callback(&url, id, &report).await.status(), 204);
    assert_eq!(image(&url, 1, id).await, ready);

    // A different outcome for an image already settled is refused, and so is the
    // report of a task the image never waited for.
    let failed = task(task_id, CAT, "failed", Some("timeout"));
    assert_problem(signed_callback(&url, id, &failed).await, 409).await;
    let other_task = task(Uuid::new_v4(), CAT, "completed", None);
    assert_problem(signed_callback(&url, id, &other_task).await, 409).await;
    assert_eq!(image(&url, 1, id).await, ready);

    let text = metrics(&url).await;
    let requested = "pixpress_management_downloads_requested_total";
    let callbacks = "pixpress_management_download_callbacks_total";
    for (name, outcome, count) in [
        (requested, "accepted", 1.0),
        (callbacks, "completed", 1.0),
        (callbacks, "unchanged", 1.0),
        (callbacks, "conflict", 2.0),
    ] {
        let counted = pixpress_testkit::metrics::value(&text, name, &[("outcome", outcome)]);
        assert_eq!(counted, Some(count), "{name} {outcome} in:\n{text}");
    }
}

#[tokio::test]
async fn a_failed_download_fails_the_image_with_its_code() {
    let downloads = FakeDownloadService::start();
    let (url, created, task_id) = RequestedImage::start(&downloads).await.into_parts();
    let id = &created["id"];
    let report = task(task_id, CAT, "failed", Some("not_an_image"));

    assert_eq!(signed_callback(&url, id, &report).await.status(), 204);
    let failed = image(&url, 1, id).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"], "not_an_image");
    assert!(failed["original_url"].is_null());
    assert!(failed["thumbnail_url"].is_null());
    assert_problem(lookup(&url, 1, id).await, 409).await;

    assert_eq!(signed_callback(&url, id, &report).await.status(), 204);
    assert_eq!(image(&url, 1, id).await, failed);
}

#[tokio::test]
async fn reports_without_a_valid_signature_are_refused_and_change_nothing() {
    let downloads = FakeDownloadService::start();
    let (url, created, task_id) = RequestedImage::start(&downloads).await.into_parts();
    let id = &created["id"];
    let body = task(task_id, CAT, "completed", None).to_string();
    let secret = WebhookSecret::parse(SECRET).unwrap();
    let (stranger, _) = WebhookSecret::generate();
    let stale = unix_now() - 600;
    let refused: Vec<Vec<(&str, String)>> = vec![
        // No signature at all.
        vec![],
        // Signed by someone else.
        stranger.headers(body.as_bytes()).to_vec(),
        // Signed over another body.
        secret.headers(b"{}").to_vec(),
        // Signed ten minutes ago (a replay).
        vec![
            ("webhook-id", "msg_old".into()),
            ("webhook-timestamp", stale.to_string()),
            (
                "webhook-signature",
                secret.sign("msg_old", stale, body.as_bytes()),
            ),
        ],
    ];
    for headers in refused {
        assert_problem(
            callback_with(&url, id, body.as_bytes(), &headers).await,
            401,
        )
        .await;
    }
    assert_eq!(image(&url, 1, id).await, created);
    let name = "pixpress_management_download_callbacks_total";
    assert_eq!(outcome_count(&url, name, "unauthorized").await, Some(4.0));
}

#[tokio::test]
async fn without_a_configured_secret_every_report_is_refused() {
    let downloads = FakeDownloadService::start();
    let download_url = downloads.url();
    let url = spawn(|c| {
        c.download_url = download_url;
        c.download_callback_secret = None;
    });
    let created = create_pending(&url, 1, CAT).await;
    let task_id = taken_task(&url, &downloads).await;
    let report = task(task_id, CAT, "completed", None);
    assert_problem(signed_callback(&url, &created["id"], &report).await, 401).await;
    assert_eq!(image(&url, 1, &created["id"]).await["status"], "pending");
}

#[tokio::test]
async fn reports_for_unknown_or_deleted_images_are_404() {
    let downloads = FakeDownloadService::start();
    let (url, created, task_id) = RequestedImage::start(&downloads).await.into_parts();
    let report = task(task_id, CAT, "completed", None);
    assert_problem(signed_callback(&url, &json!(9999), &report).await, 404).await;

    assert_eq!(delete(&url, 1, &created["id"]).await.status(), 204);
    assert_problem(signed_callback(&url, &created["id"], &report).await, 404).await;
}

#[tokio::test]
async fn reports_that_are_not_a_finished_task_are_400() {
    let downloads = FakeDownloadService::start();
    let (url, created, task_id) = RequestedImage::start(&downloads).await.into_parts();
    let id = &created["id"];
    for report in [
        json!({"state": "completed"}),
        task(task_id, CAT, "running", None),
        task(task_id, CAT, "failed", None),
    ] {
        assert_problem(signed_callback(&url, id, &report).await, 400).await;
    }
    assert_eq!(image(&url, 1, id).await, created);
}

#[tokio::test]
async fn an_unreachable_download_service_fails_the_image_as_unreachable() {
    let url = spawn(|c| {
        c.download_url = closed_port_url();
        c.download_retry_secs = 1;
    });
    let created = create_pending(&url, 1, CAT).await;
    let id = &created["id"];
    let failed = eventually("the image to fail", WAIT, || async {
        let now = image(&url, 1, id).await;
        (now["status"] != "pending").then_some(now)
    })
    .await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"], "unreachable");
    assert_problem(lookup(&url, 1, id).await, 409).await;
    let name = "pixpress_management_downloads_requested_total";
    assert_eq!(outcome_count(&url, name, "unreachable").await, Some(1.0));
}

#[tokio::test]
async fn a_download_service_answering_5xx_is_asked_again_until_it_takes_the_download() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let fixture = Fixture::start(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) < 2 {
            Reply::json(503, json!({"title": "busy"}))
        } else {
            Reply::json(202, task(Uuid::new_v4(), "x", "queued", None))
        }
    });
    let download_url = fixture.url.clone();
    let url = spawn(|c| c.download_url = download_url);
    let created = create_pending(&url, 1, CAT).await;
    eventually("the download to be accepted", WAIT, || async {
        let name = "pixpress_management_downloads_requested_total";
        (outcome_count(&url, name, "accepted").await == Some(1.0)).then_some(())
    })
    .await;
    assert_eq!(download_requests(&fixture).len(), 3);
    assert_eq!(image(&url, 1, &created["id"]).await["status"], "pending");
}

#[tokio::test]
async fn a_download_service_refusing_the_url_fails_the_image_without_asking_again() {
    let fixture = Fixture::start(|_| Reply::json(400, json!({"title": "bad url"})));
    let download_url = fixture.url.clone();
    let url = spawn(|c| c.download_url = download_url);
    let created = create_pending(&url, 1, CAT).await;
    let failed = eventually("the image to fail", WAIT, || async {
        let now = image(&url, 1, &created["id"]).await;
        (now["status"] != "pending").then_some(now)
    })
    .await;
    assert_eq!(failed["error"], "http_status");
    assert_eq!(download_requests(&fixture).len(), 1);
}

#[tokio::test]
async fn the_download_callback_is_documented() {
    let url = spawn(|_| {});
    let path = "/internal/images/{image_id}/download";
    let statuses = ["204", "400", "401", "403", "404", "409"];
    let route = assert_documented(&url, path, "post", &statuses).await;
    assert_eq!(route["security"], json!([{"bearer": []}]));
}

#[tokio::test]
async fn malformed_download_settings_stop_the_start_naming_the_variable() {
    let build = |configure: fn(&mut pixpress_management::Config)| {
        let mut config = pixpress_management::Config::local();
        configure(&mut config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        match pixpress_management::build(config, listener) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    };
    let secret = build(|c| c.download_callback_secret = Some("hunter2".into()));
    assert!(secret.contains("DOWNLOAD_CALLBACK_SECRET"), "{secret}");
    assert!(!secret.contains("hunter2"), "{secret}");
    let public = build(|c| c.management_public_url = "localhost:8082".into());
    assert!(public.contains("MANAGEMENT_PUBLIC_URL"), "{public}");
}
