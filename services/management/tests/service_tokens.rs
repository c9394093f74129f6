//! Internal calls carry the `service` role both ways (DESIGN.md §12): the download
//! report needs download-service's token besides its signature, and every call
//! management-api makes to download-service carries `DOWNLOAD_TOKEN`.

mod helpers;

use std::time::{Duration, Instant};

use helpers::{
    callback_with, delete, download_token, image, outcome_count, report_token, signed_callback,
    task, FakeDownloadService, RequestedImage, CAT, SECRET,
};
use pixpress_kit::webhook::WebhookSecret;
use pixpress_testkit::auth;
use pixpress_testkit::http::eventually;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

/// A report that must be refused: its headers, the status and the metric outcome.
struct Forged {
    what: &'static str,
    headers: Vec<(&'static str, String)>,
    status: u16,
    outcome: &'static str,
}

#[tokio::test]
async fn a_forged_report_is_refused_before_anything_changes() {
    let downloads = FakeDownloadService::start();
    let (url, created, task_id) = RequestedImage::start(&downloads).await.into_parts();
    let id = &created["id"];
    let body = task(task_id, CAT, "completed", None).to_string();
    let signed = || {
        WebhookSecret::parse(SECRET)
            .unwrap()
            .headers(body.as_bytes())
            .to_vec()
    };
    let bearer = |token: String| ("authorization", format!("Bearer {token}"));
    let (stranger, _) = WebhookSecret::generate();

    let cases = [
        Forged {
            what: "signed, no token",
            headers: signed(),
            status: 401,
            outcome: "unauthenticated",
        },
        Forged {
            what: "signed, an expired service token",
            headers: [signed(), vec![bearer(auth::expired("download-service"))]].concat(),
            status: 401,
            outcome: "unauthenticated",
        },
        Forged {
            what: "signed, an end user's token",
            headers: [signed(), vec![bearer(auth::user(1))]].concat(),
            status: 403,
            outcome: "forbidden",
        },
        Forged {
            what: "a service token, signed by a stranger",
            headers: [
                stranger.headers(body.as_bytes()).to_vec(),
                vec![bearer(report_token())],
            ]
            .concat(),
            status: 401,
            outcome: "unauthorized",
        },
    ];
    for Forged {
        what,
        headers,
        status,
        outcome,
    } in cases
    {
        let res = callback_with(&url, id, body.as_bytes(), &headers).await;
        assert_eq!(res.status(), status, "{what}");
        if status == 401 && outcome == "unauthenticated" {
            assert_eq!(res.headers()["www-authenticate"], "Bearer", "{what}");
        }
        let problem: Value = res.json().await.unwrap();
        assert_eq!(problem["status"], status, "{what}: {problem}");
        assert_eq!(
            image(&url, 1, id).await,
            created,
            "{what} changed the image"
        );
    }
    let name = "pixpress_management_download_callbacks_total";
    for (outcome, count) in [
        ("unauthenticated", 2.0),
        ("forbidden", 1.0),
        ("unauthorized", 1.0),
    ] {
        assert_eq!(
            outcome_count(&url, name, outcome).await,
            Some(count),
            "{outcome}"
        );
    }

    // The genuine report: signed, with the service's token.
    let report = task(task_id, CAT, "completed", None);
    assert_eq!(signed_callback(&url, id, &report).await.status(), 204);
    assert_eq!(image(&url, 1, id).await["status"], "ready");
}

#[tokio::test]
async fn every_call_to_download_service_carries_the_download_token() {
    let downloads = FakeDownloadService::start();
    let RequestedImage {
        url,
        reconciler,
        image: created,
        ..
    } = RequestedImage::start(&downloads).await;
    // A round long after: asks about the task (GET); then the image is deleted (DELETE).
    reconciler
        .reconcile_once(Instant::now() + Duration::from_secs(3600))
        .await;
    assert_eq!(delete(&url, 1, &created["id"]).await.status(), 204);
    eventually("the task to be deleted", WAIT, || async {
        downloads.tasks().is_empty().then_some(())
    })
    .await;

    let bearer = format!("Bearer {}", download_token());
    for method in ["POST", "GET", "DELETE"] {
        let calls = downloads.requests(method, "/downloads");
        assert_eq!(calls.len(), 1, "{method} /downloads…");
        assert_eq!(
            calls[0].header("authorization"),
            Some(bearer.as_str()),
            "{method}"
        );
    }
}
