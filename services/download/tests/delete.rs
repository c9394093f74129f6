//! `DELETE /downloads/{id}`: the task and its links are gone, and its objects leave
//! S3 once no other task (of the same bytes) refers to them.

mod helpers;

use std::time::Duration;

use helpers::{TestApp, PATIENCE};
use image::ImageFormat;
use pixpress_testkit::fixture::Reply;
use pixpress_testkit::http::eventually;
use pixpress_testkit::images::{encode, two_tone};
use serde_json::Value;

/// Downloads [`png`] from `path` on the image host, to the end.
async fn downloaded(app: &TestApp, path: &str) -> Value {
    app.downloaded(&app.host.image(path, "image/png", png()))
        .await
}

fn png() -> Vec<u8> {
    encode(&two_tone(40, 20).into(), ImageFormat::Png)
}

fn id(task: &Value) -> &str {
    task["id"].as_str().unwrap()
}

/// Every object in the bucket.
fn objects(app: &TestApp) -> Vec<String> {
    let mut keys = app.bucket.keys("originals/");
    keys.extend(app.bucket.keys("thumbnails/"));
    keys
}

#[tokio::test]
async fn deleting_the_only_task_of_an_image_removes_its_objects_and_its_links() {
    let app = TestApp::spawn().await;
    let task = downloaded(&app, "/a.png").await;
    assert_eq!(objects(&app).len(), 2);

    assert_eq!(app.delete(id(&task)).await, 204);
    assert!(objects(&app).is_empty(), "left behind: {:?}", objects(&app));
    assert_eq!(app.image_status(id(&task), "original").await, 404);
    assert_eq!(app.image_status(id(&task), "thumbnail").await, 404);
    assert_eq!(app.get_task(&app.http, id(&task)).await.status(), 404);
}

#[tokio::test]
async fn objects_another_task_refers_to_stay_until_the_last_one_goes() {
    let app = TestApp::spawn().await;
    let first = downloaded(&app, "/a.png").await;
    let second = downloaded(&app, "/b.png").await;
    assert_eq!(first["original_key"], second["original_key"]);

    assert_eq!(app.delete(id(&first)).await, 204);
    assert_eq!(
        objects(&app).len(),
        2,
        "the second task still refers to them"
    );
    assert_eq!(app.image_status(id(&first), "original").await, 404);
    let (original, _) = app.fetch_image(id(&second), "original").await;
    assert_eq!(original, png(), "the second task's links still work");
    app.fetch_image(id(&second), "thumbnail").await;

    assert_eq!(app.delete(id(&second)).await, 204);
    assert!(objects(&app).is_empty(), "left behind: {:?}", objects(&app));
}

#[tokio::test]
async fn deleting_again_is_204_and_an_unknown_task_is_404() {
    let app = TestApp::spawn().await;
    let task = downloaded(&app, "/a.png").await;
    assert_eq!(app.delete(id(&task)).await, 204);
    assert_eq!(
        app.delete(id(&task)).await,
        204,
        "idempotent for a retrying caller"
    );
    assert_eq!(
        app.delete("0191e0c2-7f3a-7000-8000-000000000000").await,
        404
    );
}

#[tokio::test]
async fn a_task_deleted_before_it_ran_is_never_downloaded_nor_reported() {
    let app = TestApp::spawn_with(|c| c.download_concurrency = 1).await;
    // The only worker is busy with a slow download while the second task waits.
    let slow = app.host.serve(
        "/slow.png",
        Reply::bytes(200, "image/png", png()).delayed(Duration::from_secs(2)),
    );
    let busy = app.download(&slow).await;
    let waiting = app
        .download(&app.host.image("/deleted.png", "image/png", png()))
        .await;
    assert_eq!(app.delete(id(&waiting)).await, 204);
    app.finished(&busy).await;
    // Tasks are claimed in order: had the deleted one been claimable, it would have
    // run before this one.
    let after = app
        .download(&app.host.image("/after.png", "image/png", png()))
        .await;
    app.finished(&after).await;

    let paths = app.host.requested_paths();
    assert_eq!(paths, ["/slow.png", "/after.png"]);
    eventually("both reports", PATIENCE, || async {
        (app.receiver.requests().len() == 2).then_some(())
    })
    .await;
    for report in app.receiver.requests() {
        let task: Value = serde_json::from_slice(&report.body).unwrap();
        assert_ne!(task["id"], waiting["id"], "the deleted task was reported");
    }
}
