//! The download workers: claim a task, fetch the URL safely, make the thumbnail off
//! the async runtime, store both objects in S3 under content-addressed keys, and
//! record the result, which makes its completion report due (`crate::reports`).
//! A completion is recorded under the locks of its objects (`crate::objects`), so a
//! task deleted meanwhile cannot take objects this task refers to.
//!
//! Tasks live in PostgreSQL and are claimed with `FOR UPDATE SKIP LOCKED` and a
//! lease, so replicas share the work and a task whose worker died is claimed again
//! when the lease ends. Transient failures (timeouts, unreachable hosts, 5xx, S3)
//! retry with backoff; the rest fail at once with their stable code.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pixpress_domain::download::FailureReason;
use pixpress_kit::db::{Database, DbError};
use pixpress_kit::queue::{self, QueueWorker, WorkQueue};
use pixpress_kit::request_id::RequestContext;
use pixpress_kit::retry::Backoff;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::download_tasks::{self, ClaimedTask, Stored};
use crate::fetch::Fetcher;
use crate::metrics::DownloadMetrics;
use crate::objects::{self, Object};
use crate::storage::{Storage, StorageError};
use crate::thumbnail::{self, Limits, ThumbnailError};

/// Attempts at a download before a transient failure becomes final.
const MAX_ATTEMPTS: i32 = 6;
const RETRY: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));

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

/// A download stored in S3, with the objects still in hand until it is recorded
/// (to store them again should a delete remove them meanwhile).
pub(crate) struct Made {
    stored: Stored,
    original: Object,
    thumbnail: Object,
}

/// Why a task did not complete this time.
pub(crate) struct Failure {
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
    pub(crate) async fn download(&self, task: &ClaimedTask) -> Result<Made, Failure> {
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
        let content_type = thumb.kind.content_type();
        let original = Object {
            key: format!("originals/{hash}"),
            bytes,
            content_type,
        };
        let thumbnail = Object {
            key: format!("thumbnails/{hash}-{size}.jpg"),
            bytes: thumb.jpeg,
            content_type: "image/jpeg",
        };
        // The bulk of the uploading, outside any transaction; `complete` checks again.
        let started = Instant::now();
        for object in [&original, &thumbnail] {
            objects::store(storage, object)
                .await
                .map_err(storage_failure)?;
        }
        self.metrics
            .s3_put_seconds
            .observe(started.elapsed().as_secs_f64());

        Ok(Made {
            stored: Stored {
                content_type: content_type.to_owned(),
                width: thumb.width as i32,
                height: thumb.height as i32,
                bytes: original.bytes.len() as i64,
                original_key: original.key.clone(),
                thumbnail_key: thumbnail.key.clone(),
            },
            original,
            thumbnail,
        })
    }

    pub(crate) async fn record(
        &self,
        task: &ClaimedTask,
        result: Result<Made, Failure>,
    ) -> Result<(), DbError> {
        let failure = match result {
            Ok(made) => match self.complete(task, made).await? {
                Ok(()) => return Ok(()),
                Err(failure) => failure,
            },
            Err(failure) => failure,
        };
        self.record_failure(task, failure).await
    }

    /// Records a completion holding the locks of its objects, after making sure they
    /// are still stored: a delete of the last other task of the same bytes may have
    /// removed them since `download` found them there. `Err`: they cannot be stored.
    async fn complete(
        &self,
        task: &ClaimedTask,
        made: Made,
    ) -> Result<Result<(), Failure>, DbError> {
        let Some(storage) = &self.storage else {
            return Ok(Err(storage_failure(StorageError::NotConfigured)));
        };
        let keys = [made.original.key.as_str(), made.thumbnail.key.as_str()];
        let mut conn = self.db.within(self.db.get()).await?;
        let tx = self
            .db
            .within(async {
                let tx = conn.transaction().await?;
                download_tasks::lock_objects(&tx, &keys).await?;
                Ok(tx)
            })
            .await?;
        for object in [&made.original, &made.thumbnail] {
            if let Err(e) = objects::store(storage, object).await {
                return Ok(Err(storage_failure(e)));
            }
        }
        let owner = self.settings.owner.as_str();
        let completed = self
            .db
            .within(download_tasks::complete(&tx, task.id, owner, &made.stored))
            .await?;
        if !completed {
            // Deleted while it ran (or its lease passed to another worker, which will
            // store them again if needed): perhaps nobody refers to them now.
            for key in keys {
                if let Err(e) =
                    objects::delete_unreferenced(&self.db, &tx, Some(storage), key).await
                {
                    log::warn!(
                        "could not release object {key} of download {}: {e}",
                        task.id
                    );
                }
            }
        }
        self.db.within(async { Ok(tx.commit().await?) }).await?;
        if completed {
            self.metrics
                .tasks
                .with_label_values(&["completed", "none"])
                .inc();
            log::info!(
                "download {} completed ({} bytes)",
                task.id,
                made.stored.bytes
            );
            self.reports.announce();
        } else {
            log::info!(
                "download {} was deleted or taken over while it ran; its result is dropped",
                task.id
            );
        }
        Ok(Ok(()))
    }

    async fn record_failure(&self, task: &ClaimedTask, failure: Failure) -> Result<(), DbError> {
        let owner = self.settings.owner.as_str();
        let reason = failure.reason;
        if failure.transient && task.attempts + 1 < MAX_ATTEMPTS {
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
            return self
                .db
                .with_connection(async |conn| {
                    download_tasks::retry_later(conn, task.id, owner, delay, reason).await
                })
                .await;
        }
        self.metrics
            .tasks
            .with_label_values(&["failed", reason.as_str()])
            .inc();
        log::warn!("download {} failed: {reason}: {}", task.id, failure.detail);
        let failed = self
            .db
            .with_connection(async |conn| download_tasks::fail(conn, task.id, owner, reason).await)
            .await?;
        if failed {
            self.reports.announce();
        }
        Ok(())
    }
}

fn storage_failure(e: StorageError) -> Failure {
    Failure::new(FailureReason::StorageFailed, true, e.to_string())
}

impl QueueWorker for Worker {
    type Item = ClaimedTask;
    const WHAT: &'static str = "download tasks";

    async fn claim(&self, limit: usize) -> Result<Vec<ClaimedTask>, DbError> {
        self.db
            .with_connection(async |conn| {
                download_tasks::claim(
                    conn,
                    &self.settings.owner,
                    self.settings.lease,
                    limit as i64,
                )
                .await
            })
            .await
    }

    async fn work(self: Arc<Self>, task: ClaimedTask) {
        let context = RequestContext::for_item(
            format!("download-{}", task.id.simple()),
            task.traceparent.as_deref(),
        );
        let what = format!("download {}", task.id);
        queue::scoped(context, what, async {
            self.metrics.workers_busy.inc();
            let result = self.download(&task).await;
            self.metrics.workers_busy.dec();
            self.record(&task, result).await
        })
        .await
    }
}

#[cfg(test)]
mod tests;
