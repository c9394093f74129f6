//! Reconciliation: an image pending past `MANAGEMENT_RECONCILE_SECS` whose report
//! never arrived is checked at download-service (`GET /downloads/{task}`), one round
//! at a time (`Reconciler::reconcile_once`, called here with a `now` past the
//! deadline instead of waiting for it).

mod helpers;

use std::time::{Duration, Instant};

use helpers::{
    create_pending, image, outcome_count, signed_callback, spawn_app, taken_task, task,
    FakeDownloadService, RequestedImage, CAT,
};
use pixpress_management::{Reconciled, Reconciler};
use pixpress_testkit::http::eventually;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

/// A round as if the default deadline (300 s) had passed.
async fn round_after_the_deadline(reconciler: &Reconciler) -> Vec<(i64, Reconciled)> {
    reconciler
        .reconcile_once(Instant::now() + Duration::from_secs(300))
        .await
}

/// Asserts that the image is `failed` with `code`.
async fn assert_failed_with(lost: &RequestedImage, code: &str) {
    let failed = image(&lost.url, 1, &lost.image["id"]).await;
    assert_eq!(
        (failed["status"].as_str(), failed["error"].as_str()),
        (Some("failed"), Some(code))
    );
}

fn id(image: &Value) -> i64 {
    image["id"].as_i64().unwrap()
}

#[tokio::test]
async fn a_completed_task_makes_the_image_ready_as_its_report_would() {
    let downloads = FakeDownloadService::start();
    let lost = RequestedImage::start(&downloads).await;
    downloads.finish(lost.task, "completed", None);

    let round = round_after_the_deadline(&lost.reconciler).await;
    assert_eq!(round, vec![(id(&lost.image), Reconciled::Completed)]);
    let base = downloads.url();
    assert_eq!(
        image(&lost.url, 1, &lost.image["id"]).await,
        json!({
            "id": lost.image["id"], "user_id": 1, "url": CAT, "status": "ready",
            "original_url": format!("{base}/images/{}/original", lost.task),
            "thumbnail_url": format!("{base}/images/{}/thumbnail", lost.task),
            "error": null,
        })
    );
    // The report, should it come after all, is a repeat.
    let report = task(lost.task, CAT, "completed", None);
    assert_eq!(
        signed_callback(&lost.url, &lost.image["id"], &report)
            .await
            .status(),
        204
    );
    let name = "pixpress_management_download_reconciliations_total";
    assert_eq!(outcome_count(&lost.url, name, "completed").await, Some(1.0));
}

#[tokio::test]
async fn a_failed_task_fails_the_image_with_its_code() {
    let downloads = FakeDownloadService::start();
    let lost = RequestedImage::start(&downloads).await;
    downloads.finish(lost.task, "failed", Some("not_an_image"));

    let round = round_after_the_deadline(&lost.reconciler).await;
    assert_eq!(round, vec![(id(&lost.image), Reconciled::Failed)]);
    assert_failed_with(&lost, "not_an_image").await;
}

#[tokio::test]
async fn a_task_still_running_leaves_the_image_pending() {
    let downloads = FakeDownloadService::start();
    let lost = RequestedImage::start(&downloads).await;
    downloads.finish(lost.task, "running", None);

    let round = round_after_the_deadline(&lost.reconciler).await;
    assert_eq!(round, vec![(id(&lost.image), Reconciled::Running)]);
    assert_eq!(image(&lost.url, 1, &lost.image["id"]).await, lost.image);
}

#[tokio::test]
async fn a_task_download_service_lost_fails_the_image_as_unreachable() {
    let downloads = FakeDownloadService::start();
    let lost = RequestedImage::start(&downloads).await;
    downloads.lose(lost.task);

    let round = round_after_the_deadline(&lost.reconciler).await;
    assert_eq!(round, vec![(id(&lost.image), Reconciled::Lost)]);
    assert_failed_with(&lost, "unreachable").await;
}

#[tokio::test]
async fn an_unavailable_download_service_is_asked_again_next_round() {
    let downloads = FakeDownloadService::start();
    let lost = RequestedImage::start(&downloads).await;
    downloads.finish(lost.task, "completed", None);
    downloads.go_down_for(1);

    let round = round_after_the_deadline(&lost.reconciler).await;
    assert_eq!(round, vec![(id(&lost.image), Reconciled::Unanswered)]);
    assert_eq!(image(&lost.url, 1, &lost.image["id"]).await, lost.image);
    let round = round_after_the_deadline(&lost.reconciler).await;
    assert_eq!(round, vec![(id(&lost.image), Reconciled::Completed)]);
}

#[tokio::test]
async fn images_pending_for_less_than_the_deadline_are_left_alone() {
    let downloads = FakeDownloadService::start();
    let lost = RequestedImage::start(&downloads).await;
    downloads.finish(lost.task, "completed", None);

    assert_eq!(lost.reconciler.reconcile_once(Instant::now()).await, vec![]);
    assert!(downloads.requests("GET", "/downloads").is_empty());
    assert_eq!(
        image(&lost.url, 1, &lost.image["id"]).await["status"],
        "pending"
    );
}

#[tokio::test]
async fn the_service_reconciles_by_itself_once_the_deadline_passes() {
    let downloads = FakeDownloadService::start();
    let download_url = downloads.url();
    let (url, _) = spawn_app(|c| {
        c.download_url = download_url;
        c.reconcile_secs = 1;
    });
    let created = create_pending(&url, 1, CAT).await;
    let task_id = taken_task(&url, &downloads).await;
    downloads.finish(task_id, "completed", None);
    eventually("the image to be reconciled", WAIT, || async {
        (image(&url, 1, &created["id"]).await["status"] == "ready").then_some(())
    })
    .await;
}
