//! The `download_tasks` table: every statement download-service runs against it.
//!
//! A deleted task (`deleted_at` set) is gone for every statement here but
//! [`mark_deleted`]: it is not read, claimed, completed or reported.

use std::time::Duration;

use pixpress_domain::download::{DownloadState, DownloadTask, FailureReason};
use pixpress_kit::db::{DbError, Sql};
use tokio_postgres::Row;
use uuid::Uuid;

/// The columns a [`DownloadTask`] is read from (by name, in [`task_from_row`]).
const TASK_COLUMNS: &str = "id, url, state, error, content_type, width, height, bytes, \
                            original_key, thumbnail_key, created_at, updated_at";

/// Channel notified when a task is queued.
pub const QUEUED_CHANNEL: &str = "download_tasks_queued";

/// Reads a [`DownloadTask`] (the domain crate's type, hence a function here rather
/// than a `from_row` of its own). A state the code does not know is an error.
fn task_from_row(row: &Row) -> Result<DownloadTask, DbError> {
    let id: Uuid = row.try_get("id")?;
    let state: String = row.try_get("state")?;
    let state = DownloadState::parse(&state)
        .ok_or_else(|| DbError::Corrupt(format!("download {id} has unknown state {state:?}")))?;
    Ok(DownloadTask {
        id,
        url: row.try_get("url")?,
        state,
        error: row.try_get("error")?,
        content_type: row.try_get("content_type")?,
        width: row.try_get("width")?,
        height: row.try_get("height")?,
        bytes: row.try_get("bytes")?,
        original_key: row.try_get("original_key")?,
        thumbnail_key: row.try_get("thumbnail_key")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Queues (and commits) a download; announce it to the workers afterwards. Its
/// work and its report continue the trace of `traceparent` (the request's).
pub async fn insert(
    db: &impl Sql,
    url: &str,
    callback_url: Option<&str>,
    traceparent: Option<&str>,
) -> Result<DownloadTask, DbError> {
    let sql = format!(
        "INSERT INTO download_tasks (id, url, callback_url, state, traceparent)
         VALUES ($1, $2, $3, 'queued', $4)
         RETURNING {TASK_COLUMNS}"
    );
    let row = db
        .query_one(&sql, &[&Uuid::now_v7(), &url, &callback_url, &traceparent])
        .await?;
    task_from_row(&row)
}

pub async fn get(db: &impl Sql, id: Uuid) -> Result<Option<DownloadTask>, DbError> {
    let sql =
        format!("SELECT {TASK_COLUMNS} FROM download_tasks WHERE id = $1 AND deleted_at IS NULL");
    let row = db.query_opt(&sql, &[&id]).await?;
    row.as_ref().map(task_from_row).transpose()
}

/// A task a worker holds the lease on.
#[derive(Debug, Clone)]
pub struct ClaimedTask {
    pub id: Uuid,
    pub url: String,
    /// Attempts made before this one.
    pub attempts: i32,
    /// The `traceparent` of the request that asked for it.
    pub traceparent: Option<String>,
}

impl ClaimedTask {
    fn from_row(row: &Row) -> Result<Self, DbError> {
        Ok(Self {
            id: row.try_get("id")?,
            url: row.try_get("url")?,
            attempts: row.try_get("attempts")?,
            traceparent: row.try_get("traceparent")?,
        })
    }
}

/// Leases up to `limit` due tasks (queued, or running with an expired lease) to
/// `owner`, marking them running.
pub async fn claim(
    db: &impl Sql,
    owner: &str,
    lease: Duration,
    limit: i64,
) -> Result<Vec<ClaimedTask>, DbError> {
    let rows = db
        .query(
            "UPDATE download_tasks AS t
             SET state = 'running', lease_owner = $1,
                 lease_expires_at = now() + make_interval(secs => $2), updated_at = now()
             FROM (SELECT id FROM download_tasks
                   WHERE next_attempt_at <= now() AND deleted_at IS NULL
                     AND (state = 'queued' OR (state = 'running' AND lease_expires_at < now()))
                   ORDER BY next_attempt_at
                   LIMIT $3
                   FOR UPDATE SKIP LOCKED) AS due
             WHERE t.id = due.id
             RETURNING t.id, t.url, t.attempts, t.traceparent",
            &[&owner, &lease.as_secs_f64(), &limit],
        )
        .await?;
    rows.iter().map(ClaimedTask::from_row).collect()
}

/// What a finished download produced.
pub struct Stored {
    pub content_type: String,
    pub width: i32,
    pub height: i32,
    pub bytes: i64,
    pub original_key: String,
    pub thumbnail_key: String,
}

/// Records success; the callback (if any) becomes due. False if the lease was lost
/// or the task deleted meanwhile. Run it holding the [`lock_objects`] of the keys.
pub async fn complete(
    db: &impl Sql,
    id: Uuid,
    owner: &str,
    stored: &Stored,
) -> Result<bool, DbError> {
    let n = db
        .execute(
            "UPDATE download_tasks
             SET state = 'completed', error = NULL, attempts = attempts + 1,
                 content_type = $3, width = $4, height = $5, bytes = $6,
                 original_key = $7, thumbnail_key = $8,
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
                 callback_due_at = CASE WHEN callback_url IS NULL THEN NULL ELSE now() END
             WHERE id = $1 AND lease_owner = $2 AND state = 'running' AND deleted_at IS NULL",
            &[
                &id,
                &owner,
                &stored.content_type,
                &stored.width,
                &stored.height,
                &stored.bytes,
                &stored.original_key,
                &stored.thumbnail_key,
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Records a final failure; the callback (if any) becomes due.
pub async fn fail(
    db: &impl Sql,
    id: Uuid,
    owner: &str,
    reason: FailureReason,
) -> Result<bool, DbError> {
    let n = db
        .execute(
            "UPDATE download_tasks
             SET state = 'failed', error = $3, attempts = attempts + 1,
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
                 callback_due_at = CASE WHEN callback_url IS NULL THEN NULL ELSE now() END
             WHERE id = $1 AND lease_owner = $2 AND state = 'running' AND deleted_at IS NULL",
            &[&id, &owner, &reason.as_str()],
        )
        .await?;
    Ok(n == 1)
}

/// Puts the task back in the queue, due after `delay`, remembering why.
pub async fn retry_later(
    db: &impl Sql,
    id: Uuid,
    owner: &str,
    delay: Duration,
    reason: FailureReason,
) -> Result<(), DbError> {
    db.execute(
        "UPDATE download_tasks
         SET state = 'queued', error = $4, attempts = attempts + 1,
             next_attempt_at = now() + make_interval(secs => $3),
             lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
         WHERE id = $1 AND lease_owner = $2 AND state = 'running' AND deleted_at IS NULL",
        &[&id, &owner, &delay.as_secs_f64(), &reason.as_str()],
    )
    .await?;
    Ok(())
}

/// A callback to deliver: the finished task and where to send it.
pub struct DueCallback {
    pub task: DownloadTask,
    pub callback_url: String,
    /// Deliveries tried before this one.
    pub attempts: i32,
    /// The `traceparent` of the request that asked for the download.
    pub traceparent: Option<String>,
}

impl DueCallback {
    /// A task's columns plus `callback_url` and `callback_attempts`; a due callback
    /// without a URL is an error (completing a task sets it due only with one).
    fn from_row(row: &Row) -> Result<Self, DbError> {
        let task = task_from_row(row)?;
        let callback_url: Option<String> = row.try_get("callback_url")?;
        let callback_url = callback_url.ok_or_else(|| {
            DbError::Corrupt(format!(
                "download {} has a callback due but no URL",
                task.id
            ))
        })?;
        Ok(Self {
            task,
            callback_url,
            attempts: row.try_get("callback_attempts")?,
            traceparent: row.try_get("traceparent")?,
        })
    }
}

/// Claims due callbacks by pushing their due time past `lease` (so another replica
/// does not send them meanwhile).
pub async fn claim_callbacks(
    db: &impl Sql,
    lease: Duration,
    limit: i64,
) -> Result<Vec<DueCallback>, DbError> {
    let sql = format!(
        "UPDATE download_tasks
         SET callback_due_at = now() + make_interval(secs => $1)
         FROM (SELECT id AS due_id FROM download_tasks
               WHERE callback_due_at <= now() AND deleted_at IS NULL
               ORDER BY callback_due_at
               LIMIT $2
               FOR UPDATE SKIP LOCKED) AS due
         WHERE id = due.due_id
         RETURNING {TASK_COLUMNS}, callback_url, callback_attempts, traceparent"
    );
    let rows = db.query(&sql, &[&lease.as_secs_f64(), &limit]).await?;
    rows.iter().map(DueCallback::from_row).collect()
}

/// The callback was delivered, or will never be: nothing more to send.
pub async fn callback_done(db: &impl Sql, id: Uuid) -> Result<(), DbError> {
    db.execute(
        "UPDATE download_tasks SET callback_due_at = NULL, callback_attempts = callback_attempts + 1
         WHERE id = $1",
        &[&id],
    )
    .await?;
    Ok(())
}

/// The callback failed; try again after `delay`.
pub async fn callback_later(db: &impl Sql, id: Uuid, delay: Duration) -> Result<(), DbError> {
    db.execute(
        "UPDATE download_tasks
         SET callback_due_at = now() + make_interval(secs => $2),
             callback_attempts = callback_attempts + 1
         WHERE id = $1",
        &[&id, &delay.as_secs_f64()],
    )
    .await?;
    Ok(())
}

/// The objects a deleted task referred to.
pub struct DeletedTask {
    pub original_key: Option<String>,
    pub thumbnail_key: Option<String>,
}

impl DeletedTask {
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        [&self.original_key, &self.thumbnail_key]
            .into_iter()
            .flatten()
            .map(String::as_str)
    }
}

/// Marks the task deleted (its report, if still due, is dropped); `None` if there is
/// no such task. Deleting a deleted task changes nothing and names its objects
/// again, so a repeated delete can finish releasing them.
pub async fn mark_deleted(db: &impl Sql, id: Uuid) -> Result<Option<DeletedTask>, DbError> {
    let row = db
        .query_opt(
            "UPDATE download_tasks
             SET deleted_at = coalesce(deleted_at, now()), callback_due_at = NULL,
                 updated_at = CASE WHEN deleted_at IS NULL THEN now() ELSE updated_at END
             WHERE id = $1
             RETURNING original_key, thumbnail_key",
            &[&id],
        )
        .await?;
    row.map(|row| {
        Ok(DeletedTask {
            original_key: row.try_get("original_key")?,
            thumbnail_key: row.try_get("thumbnail_key")?,
        })
    })
    .transpose()
}

/// Advisory-lock class of object keys (two-key locks do not share the one-key
/// space the migrations lock in): "pxob".
const OBJECT_LOCK_CLASS: i32 = 0x7078_6f62;

/// Locks the objects `keys` until the end of the transaction `tx`. Whoever decides
/// about an object holds its lock from the check to the commit: a completion from
/// "the object is stored" to the commit of its reference, a release from "nobody
/// refers to it" to its deletion from S3.
pub async fn lock_objects(tx: &impl Sql, keys: &[&str]) -> Result<(), DbError> {
    let mut keys = keys.to_vec();
    // One order for everyone, so two holders of several keys cannot deadlock.
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&OBJECT_LOCK_CLASS, &key],
        )
        .await?;
    }
    Ok(())
}

/// Whether a live (not deleted) task refers to the object `key`.
pub async fn is_referenced(db: &impl Sql, key: &str) -> Result<bool, DbError> {
    let row = db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM download_tasks
                            WHERE deleted_at IS NULL
                              AND (original_key = $1 OR thumbnail_key = $1)) AS referenced",
            &[&key],
        )
        .await?;
    Ok(row.try_get("referenced")?)
}

/// download-service's two queues, for `kit::queue::watch_depths`: `downloads`
/// (queued or running, by age since the image was asked for) and `reports`
/// (completion reports still to send, by age since the task finished). Both read
/// their claim index.
pub const QUEUE_DEPTHS: &str = "
    SELECT 'downloads' AS queue, count(*) AS depth,
           COALESCE(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest_age
    FROM download_tasks WHERE state IN ('queued', 'running') AND deleted_at IS NULL
    UNION ALL
    SELECT 'reports', count(*),
           COALESCE(extract(epoch FROM now() - min(updated_at)), 0)::float8
    FROM download_tasks WHERE callback_due_at IS NOT NULL AND deleted_at IS NULL";
