//! Deleting an image deletes its download task at download-service (so its objects
//! and links go), retried in the background while download-service is unavailable;
//! the image is gone for the user at once.

mod helpers;

use std::time::Duration;

use helpers::{
    client, create_pending, delete, metrics, outcome_count, spawn, FakeDownloadService,
    RequestedImage, CAT,
};
use pixpress_testkit::http::eventually;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);
const DELETIONS: &str = "pixpress_management_task_deletions_total";

/// An image of user 1 downloaded to the end.
async fn ready_image(downloads: &FakeDownloadService) -> RequestedImage {
    RequestedImage::reported(downloads, "completed", None).await
}

async fn get_status(url: &str, id: &Value) -> u16 {
    client()
        .get(format!("{url}/users/1/images/{id}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn deleting_an_image_deletes_its_download_task() {
    let downloads = FakeDownloadService::start();
    let (url, created, task_id) = ready_image(&downloads).await.into_parts();
    assert_eq!(delete(&url, 1, &created["id"]).await.status(), 204);
    assert_eq!(get_status(&url, &created["id"]).await, 404);
    eventually("the task to be deleted", WAIT, || async {
        downloads.tasks().is_empty().then_some(())
    })
    .await;
    let asked = downloads.requests("DELETE", "/downloads");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].path, format!("/downloads/{task_id}"));
    assert_eq!(outcome_count(&url, DELETIONS, "deleted").await, Some(1.0));
}

#[tokio::test]
async fn a_deletion_download_service_cannot_take_is_retried_until_it_does() {
    let downloads = FakeDownloadService::start();
    let (url, created, _) = ready_image(&downloads).await.into_parts();
    downloads.go_down_for(3);
    assert_eq!(delete(&url, 1, &created["id"]).await.status(), 204);
    // Gone for the user at once, whatever download-service says.
    assert_eq!(get_status(&url, &created["id"]).await, 404);

    eventually("the task to be deleted", WAIT, || async {
        downloads.tasks().is_empty().then_some(())
    })
    .await;
    assert_eq!(downloads.requests("DELETE", "/downloads").len(), 4);
    let text = eventually("the deletion to be counted", WAIT, || async {
        let text = metrics(&url).await;
        let deleted = pixpress_testkit::metrics::value(&text, DELETIONS, &[("outcome", "deleted")]);
        (deleted == Some(1.0)).then_some(text)
    })
    .await;
    let value =
        |name: &str, labels: &[(&str, &str)]| pixpress_testkit::metrics::value(&text, name, labels);
    assert_eq!(
        value(DELETIONS, &[("outcome", "retried")]),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value("pixpress_management_task_deletions_pending", &[]),
        Some(0.0),
        "{text}"
    );
}

#[tokio::test]
async fn a_task_download_service_no_longer_has_counts_as_deleted() {
    let downloads = FakeDownloadService::start();
    let (url, created, task_id) = ready_image(&downloads).await.into_parts();
    downloads.lose(task_id);
    assert_eq!(delete(&url, 1, &created["id"]).await.status(), 204);
    eventually("the deletion to be counted", WAIT, || async {
        (outcome_count(&url, DELETIONS, "deleted").await == Some(1.0)).then_some(())
    })
    .await;
    assert_eq!(downloads.requests("DELETE", "/downloads").len(), 1);
}

#[tokio::test]
async fn an_image_deleted_before_download_service_took_it_is_never_downloaded() {
    let downloads = FakeDownloadService::start();
    let download_url = downloads.url();
    let url = spawn(|c| c.download_url = download_url);
    // download-service is busy: it refuses every request until the image is gone.
    downloads.go_down_for(usize::MAX);
    let created = create_pending(&url, 1, CAT).await;
    assert_eq!(delete(&url, 1, &created["id"]).await.status(), 204);
    let name = "pixpress_management_downloads_requested_total";
    eventually("the request to be abandoned", WAIT, || async {
        (outcome_count(&url, name, "abandoned").await == Some(1.0)).then_some(())
    })
    .await;
    assert!(downloads.tasks().is_empty());
}
