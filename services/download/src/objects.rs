//! The objects of download tasks in S3, and when one may be deleted.
//!
//! Objects are content-addressed (`originals/<sha256>`, `thumbnails/<sha256>-<size>.jpg`),
//! so every task of the same bytes shares them: deleting a task deletes an object
//! only once no live task refers to it. The race to close is a completion that found
//! the object stored (by the task being deleted) and is about to commit its reference
//! while the delete finds no reference yet and removes the object. So both sides
//! decide under the object's lock (`download_tasks::lock_objects`):
//! - a release locks, checks that no live task refers to the object, deletes it from
//!   S3, then commits;
//! - a completion locks, makes sure its objects are stored (storing them again from
//!   the bytes in hand if a release removed them meanwhile), then commits its
//!   reference; if the task was deleted while it ran, it releases them instead.
//!
//! Whichever comes second sees what the first did. Not covered: a worker that dies
//! between storing the objects of a task deleted meanwhile and recording it leaves
//! those objects behind (harmless bytes, referenced by nobody).

use pixpress_kit::db::{Database, DbError, Sql};
use uuid::Uuid;

use crate::download_tasks;
use crate::storage::{Storage, StorageError};

/// Objects never change once stored: cache them for a year.
const CACHE_FOREVER: &str = "public, max-age=31536000, immutable";

#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// An object in hand, to be stored under its key.
pub struct Object {
    pub key: String,
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
}

/// Stores `object` unless an object is stored under its key already (which then
/// holds these very bytes).
pub async fn store(storage: &Storage, object: &Object) -> Result<(), StorageError> {
    if !storage.exists(&object.key).await? {
        storage
            .put(
                &object.key,
                &object.bytes,
                object.content_type,
                CACHE_FOREVER,
            )
            .await?;
    }
    Ok(())
}

/// Marks task `id` deleted and deletes whichever of its objects no live task refers
/// to any more. `Ok(false)`: there is no such task. A task deleted before is deleted
/// again (its objects released again): a caller retrying after a storage failure
/// finishes the job.
pub async fn delete_task(
    db: &Database,
    storage: Option<&Storage>,
    id: Uuid,
) -> Result<bool, ObjectsError> {
    let deleted = db
        .with_connection(async |conn| download_tasks::mark_deleted(conn, id).await)
        .await?;
    let Some(deleted) = deleted else {
        return Ok(false);
    };
    for key in deleted.keys() {
        release(db, storage, key).await?;
    }
    Ok(true)
}

/// Deletes the object `key` unless a live task refers to it, holding its lock from
/// the check to the deletion.
pub async fn release(
    db: &Database,
    storage: Option<&Storage>,
    key: &str,
) -> Result<(), ObjectsError> {
    let mut conn = db.within(db.get()).await?;
    let tx = db
        .within(async {
            let tx = conn.transaction().await?;
            download_tasks::lock_objects(&tx, &[key]).await?;
            Ok(tx)
        })
        .await?;
    delete_unreferenced(db, &tx, storage, key).await?;
    db.within(async { Ok(tx.commit().await?) }).await?;
    Ok(())
}

/// Deletes the object `key` from S3 unless a live task refers to it; true if it did.
/// Call it holding the object's lock in `tx`, and commit after.
pub async fn delete_unreferenced(
    db: &Database,
    tx: &impl Sql,
    storage: Option<&Storage>,
    key: &str,
) -> Result<bool, ObjectsError> {
    if db.within(download_tasks::is_referenced(tx, key)).await? {
        return Ok(false);
    }
    let storage = storage.ok_or(StorageError::NotConfigured)?;
    storage.delete(key).await?;
    log::info!("deleted object {key}: no task refers to it any more");
    Ok(true)
}
