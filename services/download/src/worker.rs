//! The download workers: claim a task, fetch the URL safely, make the thumbnail off
//! the async runtime, store both objects in S3 under content-addressed keys, and
//! record the result, which makes its completion report due (`crate::reports`).
//!
//! Tasks live in PostgreSQL and are claimed with `FOR UPDATE SKIP LOCKED` and a
//! lease, so replicas share the work and a task whose worker died is claimed again
//! when the lease ends. Transient failures (timeouts, unreachable hosts, 5xx, S3)
//! retry with backoff; the rest fail at once with their stable code.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pixpress_domain::download::FailureReason;
use pixpress_kit::db::{Database, DbError};
use pixpress_kit::queue::{QueueWorker, WorkQueue};
use pixpress_kit::retry::Backoff;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::download_tasks::{self, ClaimedTask, Stored};
use crate::fetch::Fetcher;
use crate::metrics::DownloadMetrics;
use crate::storage::{Storage, StorageError};
use crate::thumbnail::{self, Limits, ThumbnailError};

/// Attempts at a download before a transient failure becomes final.
const MAX_ATTEMPTS: i32 = 6;
const RETRY: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
/// Objects are content-addressed, so they never change: cache them for a year.
const CACHE_FOREVER: &str = "public, max-age=31536000, immutable";

pub struct WorkerSettings {
    pub owner: String,
    pub lease: Duration,
    pub thumbnail_size: u32,
    pub limits: Limits,
}

pub struct Worker {
    pub settings: WorkerSettings,
    pub db: Database,
    pub fetcher: Fetcher,
    pub storage: Option<Storage>,
    /// Announced when a task ends, so its completion report goes out at once.
    pub reports: WorkQueue,
    pub metrics: DownloadMetrics,
    /// Decoding is CPU and memory heavy: at most one per core at a time.
    pub cpu: Arc<Semaphore>,
}

/// Why a task did not complete this time.
struct Failure {
    reason: FailureReason,
    transient: bool,
    detail: String,
}

impl Failure {
    fn new(reason: FailureReason, transient: bool, detail: impl Into<String>) -> Self {
        Self {
            reason,
            transient,
            detail: detail.into(),
        }
    }
}

impl Worker {
    async fn process(&self, task: ClaimedTask) {
        let scope = format!("download-{}", task.id.simple());
        pixpress_kit::request_id::scope(scope, async {
            self.metrics.workers_busy.inc();
            let result = self.download(&task).await;
            self.metrics.workers_busy.dec();
            if let Err(e) = self.record(&task, result).await {
                // The lease will expire and the task will be claimed again.
                log::error!("could not record download {}: {e}", task.id);
            }
        })
        .await
    }

    async fn download(&self, task: &ClaimedTask) -> Result<Stored, Failure> {
        let started = Instant::now();
        let fetched = self
            .fetcher
            .fetch(&task.url)
            .await
            .map_err(|e| Failure::new(e.reason, e.transient, e.detail))?;
        self.metrics
            .fetch_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.bytes.inc_by(fetched.bytes.len() as u64);

        let size = self.settings.thumbnail_size;
        let limits = self.settings.limits.clone();
        let started = Instant::now();
        let cpu = Arc::clone(&self.cpu)
            .acquire_owned()
            .await
            .map_err(|_| Failure::new(FailureReason::DecodeFailed, true, "shutting down"))?;
        let bytes = fetched.bytes;
        let (bytes, made) = tokio::task::spawn_blocking(move || {
            let _cpu = cpu;
            let made = thumbnail::make_thumbnail(&bytes, size, &limits)
                .map(|thumb| (thumb, hex::encode(Sha256::digest(&bytes))));
            (bytes, made)
        })
        .await
        .map_err(|e| {
            Failure::new(
                FailureReason::DecodeFailed,
                false,
                format!("decoder crashed: {e}"),
            )
        })?;
        let (thumb, hash) = made.map_err(|e| match e {
            ThumbnailError::NotAnImage => Failure::new(
                FailureReason::NotAnImage,
                false,
                "not a JPEG, PNG, WebP or GIF",
            ),
            ThumbnailError::DecodeFailed(why) => {
                Failure::new(FailureReason::DecodeFailed, false, why)
            }
        })?;
        self.metrics
            .thumbnail_seconds
            .observe(started.elapsed().as_secs_f64());

        let storage = self.storage.as_ref().ok_or_else(|| {
            Failure::new(
                FailureReason::StorageFailed,
                true,
                StorageError::NotConfigured.to_string(),
            )
        })?;
        let original_key = format!("originals/{hash}");
        let thumbnail_key = format!("thumbnails/{hash}-{size}.jpg");
        let content_type = thumb.kind.content_type();
        let started = Instant::now();
        let store = |key: String, body: Vec<u8>, content_type: &'static str| async move {
            // Content-addressed: an object that exists already holds these bytes.
            if !storage.exists(&key).await? {
                storage
                    .put(&key, &body, content_type, CACHE_FOREVER)
                    .await?;
            }
            Ok::<_, StorageError>(())
        };
        let len = bytes.len();
        store(original_key.clone(), bytes, content_type)
            .await
            .map_err(|e| Failure::new(FailureReason::StorageFailed, true, e.to_string()))?;
        store(thumbnail_key.clone(), thumb.jpeg, "image/jpeg")
            .await
            .map_err(|e| Failure::new(FailureReason::StorageFailed, true, e.to_string()))?;
        self.metrics
            .s3_put_seconds
            .observe(started.elapsed().as_secs_f64());

        Ok(Stored {
            content_type: content_type.to_owned(),
            width: thumb.width as i32,
            height: thumb.height as i32,
            bytes: len as i64,
            original_key,
            thumbnail_key,
        })
    }

    async fn record(
        &self,
        task: &ClaimedTask,
        result: Result<Stored, Failure>,
    ) -> Result<(), DbError> {
        let conn = self.db.get().await?;
        let owner = self.settings.owner.as_str();
        match result {
            Ok(stored) => {
                self.metrics
                    .tasks
                    .with_label_values(&["completed", "none"])
                    .inc();
                log::info!("download {} completed ({} bytes)", task.id, stored.bytes);
                download_tasks::complete(&*conn, task.id, owner, &stored).await?;
                self.reports.announce();
            }
            Err(failure) if failure.transient && task.attempts + 1 < MAX_ATTEMPTS => {
                let reason = failure.reason;
                self.metrics
                    .tasks
                    .with_label_values(&["retried", reason.as_str()])
                    .inc();
                let delay = RETRY.jittered((task.attempts + 1) as u32);
                log::info!(
                    "download {} will retry in {delay:?}: {reason}: {}",
                    task.id,
                    failure.detail
                );
                download_tasks::retry_later(&*conn, task.id, owner, delay, reason).await?;
            }
            Err(failure) => {
                let reason = failure.reason;
                self.metrics
                    .tasks
                    .with_label_values(&["failed", reason.as_str()])
                    .inc();
                log::warn!("download {} failed: {reason}: {}", task.id, failure.detail);
                download_tasks::fail(&*conn, task.id, owner, reason).await?;
                self.reports.announce();
            }
        }
        Ok(())
    }
}

impl QueueWorker for Worker {
    type Item = ClaimedTask;
    const WHAT: &'static str = "download tasks";

    async fn claim(&self, limit: usize) -> Result<Vec<ClaimedTask>, DbError> {
        let conn = self.db.get().await?;
        download_tasks::claim(
            &*conn,
            &self.settings.owner,
            self.settings.lease,
            limit as i64,
        )
        .await
    }

    async fn work(self: Arc<Self>, task: ClaimedTask) {
        self.process(task).await
    }
}
