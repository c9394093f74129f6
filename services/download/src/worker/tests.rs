//! The worker against the deletes it can race with, step by step: a real
//! PostgreSQL, a real S3 server and an image host, with the worker's steps
//! (`claim`, `download`, `record`) called one at a time and a delete in between.

use super::*;

use image::ImageFormat;
use pixpress_domain::download::{DownloadState, DownloadTask};
use pixpress_kit::config::DatabaseArgs;
use pixpress_kit::server::Background;
use pixpress_testkit::fixture::{Fixture, Reply};
use pixpress_testkit::images::{encode, two_tone};
use pixpress_testkit::s3::TestBucket;
use pixpress_testkit::TestDatabase;
use uuid::Uuid;

use crate::fetch::FetchPolicy;
use crate::storage::StorageConfig;

struct Setup {
    worker: Arc<Worker>,
    db: Database,
    storage: Storage,
    bucket: TestBucket,
    image_url: String,
    _host: Fixture,
    _test_db: TestDatabase,
    _background: Background,
}

async fn setup() -> Setup {
    let test_db = TestDatabase::new().await;
    let bucket = TestBucket::new().await;
    let mut background = Background::new();
    let db = Database::start(
        &DatabaseArgs::new(&test_db.url),
        Duration::from_secs(5),
        &mut background,
    )
    .unwrap();
    let storage = Storage::new(&StorageConfig {
        endpoint: bucket.endpoint.clone(),
        public_endpoint: None,
        region: bucket.region.clone(),
        bucket: bucket.bucket.clone(),
        access_key: bucket.access_key.clone(),
        secret_key: bucket.secret_key.clone(),
    })
    .unwrap();
    let png = encode(&two_tone(40, 20).into(), ImageFormat::Png);
    let host = Fixture::start(move |_| Reply::bytes(200, "image/png", png.clone()));
    let worker = Arc::new(Worker {
        settings: WorkerSettings {
            owner: "test-worker".into(),
            lease: Duration::from_secs(60),
            thumbnail_size: 16,
            limits: Limits::default(),
        },
        db: db.clone(),
        fetcher: Fetcher::new(
            FetchPolicy::new(1 << 20, Duration::from_secs(5), true),
            "pixpress-download-test",
        ),
        storage: Some(storage.clone()),
        reports: WorkQueue::start(&db, "download_test_reports", &mut background),
        metrics: DownloadMetrics::new(&prometheus::Registry::new()),
        cpu: Arc::new(Semaphore::new(1)),
    });
    Setup {
        worker,
        db,
        storage,
        bucket,
        image_url: format!("{}/a.png", host.url),
        _host: host,
        _test_db: test_db,
        _background: background,
    }
}

impl Setup {
    /// Queues a download of the image (the same bytes every time).
    async fn queue(&self) -> Uuid {
        let conn = self.db.get().await.unwrap();
        download_tasks::insert(&*conn, &self.image_url, None, None)
            .await
            .unwrap()
            .id
    }

    /// Claims the one due task.
    async fn claim(&self) -> ClaimedTask {
        let mut claimed = self.worker.claim(1).await.unwrap();
        assert_eq!(claimed.len(), 1);
        claimed.remove(0)
    }

    /// Queues a task and runs it to the end.
    async fn complete(&self) -> Uuid {
        let id = self.queue().await;
        let task = self.claim().await;
        let made = self.worker.download(&task).await;
        self.worker.record(&task, made).await.unwrap();
        id
    }

    /// Deletes task `id` as `DELETE /downloads/{id}` does.
    async fn delete(&self, id: Uuid) {
        let deleted = objects::delete_task(&self.db, Some(&self.storage), id).await;
        assert!(deleted.unwrap(), "task {id} exists");
    }

    async fn task(&self, id: Uuid) -> Option<DownloadTask> {
        let conn = self.db.get().await.unwrap();
        download_tasks::get(&*conn, id).await.unwrap()
    }

    /// Every object in the bucket, sorted.
    fn objects(&self) -> Vec<String> {
        let mut keys = self.bucket.keys("originals/");
        keys.extend(self.bucket.keys("thumbnails/"));
        keys.sort();
        keys
    }
}

#[tokio::test]
async fn a_completion_stores_again_what_a_delete_removed_after_it_found_them() {
    let s = setup().await;
    let first = s.complete().await;
    s.queue().await;
    let second = s.claim().await;
    // The second task finds the first one's objects and does not upload them...
    let made = s.worker.download(&second).await;
    // ...then the first task is deleted before the second is recorded.
    s.delete(first).await;
    assert!(s.objects().is_empty(), "nobody referred to them yet");

    s.worker.record(&second, made).await.unwrap();
    let task = s.task(second.id).await.unwrap();
    assert_eq!(task.state, DownloadState::Completed);
    let mut keys = vec![task.original_key.unwrap(), task.thumbnail_key.unwrap()];
    keys.sort();
    assert_eq!(s.objects(), keys, "the completed task's objects are in S3");
}

#[tokio::test]
async fn a_task_deleted_while_it_ran_leaves_no_objects_behind() {
    let s = setup().await;
    let id = s.queue().await;
    let task = s.claim().await;
    let made = s.worker.download(&task).await;
    assert_eq!(s.objects().len(), 2, "uploaded before the delete");
    s.delete(id).await;

    s.worker.record(&task, made).await.unwrap();
    assert!(s.task(id).await.is_none());
    assert!(s.objects().is_empty(), "left behind: {:?}", s.objects());
}

#[tokio::test]
async fn a_deleted_task_is_not_claimed() {
    let s = setup().await;
    let id = s.queue().await;
    s.delete(id).await;
    assert!(s.worker.claim(1).await.unwrap().is_empty());
}
