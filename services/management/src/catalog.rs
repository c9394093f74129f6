//! The mock's records, in memory: users' images (with where each one's download is)
//! and the printer registry.
//!
//! Locks are `std` locks held only for map operations, never across an `.await`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use pixpress_domain::management::{Image, ImageStatus, Lookup, Printer};
use uuid::Uuid;

/// Why a lookup refuses, naming the image asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum LookupRefusal {
    NoSuchImage(i64),
    NotOwner(i64),
    NotReady(i64),
    /// The printer asked for is not registered.
    NoSuchPrinter(i64),
    /// The printer asked for is disabled.
    PrinterDisabled(i64),
    /// No printer was asked for, and none is enabled.
    NoPrinter,
}

/// How a download ended, as it is recorded on the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadResult {
    Completed {
        original_url: String,
        thumbnail_url: String,
        /// Where printers fetch the original (a link on the services' network).
        print_url: String,
    },
    /// `error` is a download failure code (`FailureReason`).
    Failed { error: String },
}

/// What recording a download result did.
#[derive(Debug, PartialEq, Eq)]
pub enum Settled {
    /// The pending image took the result.
    Applied,
    /// The image already holds exactly this result (a repeated report).
    Unchanged,
}

/// Why a download result cannot be recorded.
#[derive(Debug, PartialEq, Eq)]
pub enum SettleRefusal {
    /// No image has this id (never created, or deleted since).
    NoSuchImage(i64),
    /// The image already holds a different final result, of this status.
    AlreadySettled(i64, ImageStatus),
    /// The result is of a task the image no longer waits for (one replaced by an
    /// operator retry, or another task than the one download-service said it took).
    OtherTask(i64),
}

/// Why an image cannot be retried.
#[derive(Debug, PartialEq, Eq)]
pub enum RetryRefusal {
    /// No such image in this user's collection.
    NoSuchImage,
    /// Only a `failed` image is retried; this one is of this status.
    NotFailed(ImageStatus),
}

/// An image put back to `pending` by an operator.
#[derive(Debug)]
pub struct Retried {
    pub image: Image,
    /// Why its last download failed.
    pub previous_error: Option<String>,
    /// The task of that download, which nothing needs any more.
    pub previous_task: Option<Uuid>,
}

/// Where an image's download is, as management-api knows it (not on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadStage {
    /// Nothing was taken: recorded `ready` without a download, or download-service
    /// never took the request (the image failed asking).
    NoTask,
    /// management-api is still asking download-service to take the download.
    Asking,
    /// download-service took it as this task.
    Task(Uuid),
    /// download-service took it, but its answer did not say as which task.
    Untracked,
}

struct Record {
    image: Image,
    /// Where printers fetch the original once the image is ready: `original_url` is
    /// for the user's browser, which may reach storage by another name.
    print_url: Option<String>,
    stage: DownloadStage,
    /// When the image last became `pending`.
    pending_since: Instant,
    /// Tasks of downloads an operator retry replaced: their late reports are refused.
    retired: Vec<Uuid>,
}

#[derive(Default)]
pub struct Catalog {
    next_image_id: AtomicI64,
    images: RwLock<BTreeMap<i64, Record>>,
    printers: RwLock<BTreeMap<i64, Printer>>,
}

impl Catalog {
    /// A catalog with printers 1, 2, … at `printer_urls`, all enabled.
    pub fn new<'a>(printer_urls: impl IntoIterator<Item = &'a str>) -> Self {
        let catalog = Self::default();
        for (id, url) in (1..).zip(printer_urls) {
            catalog.put_printer(id, url.to_owned(), true);
        }
        catalog
    }

    // A poisoned lock only means another request panicked mid-update of a map whose
    // every update is a single insert/remove or a record changed in one go, so the
    // data is still consistent.
    fn images_read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<i64, Record>> {
        self.images.read().unwrap_or_else(|e| e.into_inner())
    }
    fn images_write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<i64, Record>> {
        self.images.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn create_image(&self, user_id: i64, url: String, ready: bool) -> Image {
        let id = self.next_image_id.fetch_add(1, Ordering::Relaxed) + 1;
        let image = Image {
            id,
            user_id,
            original_url: ready.then(|| url.clone()),
            thumbnail_url: None,
            url,
            status: if ready {
                ImageStatus::Ready
            } else {
                ImageStatus::Pending
            },
            error: None,
        };
        let record = Record {
            print_url: image.original_url.clone(),
            image: image.clone(),
            stage: if ready {
                DownloadStage::NoTask
            } else {
                DownloadStage::Asking
            },
            pending_since: Instant::now(),
            retired: Vec::new(),
        };
        self.images_write().insert(id, record);
        image
    }

    /// The user's images, oldest first.
    pub fn images_of(&self, user_id: i64) -> Vec<Image> {
        self.images_read()
            .values()
            .filter(|r| r.image.user_id == user_id)
            .map(|r| r.image.clone())
            .collect()
    }

    /// The image if it exists and belongs to `user_id`.
    pub fn image_of(&self, user_id: i64, id: i64) -> Option<Image> {
        self.images_read()
            .get(&id)
            .filter(|r| r.image.user_id == user_id)
            .map(|r| r.image.clone())
    }

    /// Removes the user's image; `None` if there is none, else the download task
    /// it had (whose objects nothing of this image needs any more).
    pub fn delete_image(&self, user_id: i64, id: i64) -> Option<Option<Uuid>> {
        let mut images = self.images_write();
        match images.get(&id) {
            Some(record) if record.image.user_id == user_id => {
                let record = images.remove(&id)?;
                Some(match record.stage {
                    DownloadStage::Task(task) => Some(task),
                    _ => None,
                })
            }
            _ => None,
        }
    }

    /// Whether image `id` still waits for download-service to take its download
    /// (false once taken, settled or deleted).
    pub fn awaits_request(&self, id: i64) -> bool {
        self.images_read().get(&id).is_some_and(|r| {
            r.image.status == ImageStatus::Pending && r.stage == DownloadStage::Asking
        })
    }

    /// download-service took image `id`'s download (as `task`, when its answer said).
    /// False when the image is gone: then nothing needs the task.
    pub fn task_taken(&self, id: i64, task: Option<Uuid>) -> bool {
        let mut images = self.images_write();
        let Some(record) = images.get_mut(&id) else {
            return false;
        };
        // A report may have arrived first and named the task already.
        if record.stage == DownloadStage::Asking {
            record.stage = task.map_or(DownloadStage::Untracked, DownloadStage::Task);
        }
        true
    }

    /// Fails the pending image `id` whose download is still at `stage` (`Asking`:
    /// download-service never took it; `Untracked`: no task can be asked about)
    /// with `error`. False when the image moved on meanwhile (or is gone).
    pub fn fail_without_task(&self, id: i64, stage: DownloadStage, error: &str) -> bool {
        let mut images = self.images_write();
        match images.get_mut(&id) {
            Some(r) if r.image.status == ImageStatus::Pending && r.stage == stage => {
                r.image.status = ImageStatus::Failed;
                r.image.error = Some(error.to_owned());
                r.stage = DownloadStage::NoTask;
                true
            }
            _ => false,
        }
    }

    /// Records how task `task` of image `id` ended. Only a pending image changes,
    /// and only with the result of the task it waits for: a final image accepts a
    /// repeat of its own result and refuses any other.
    pub fn settle(
        &self,
        id: i64,
        task: Uuid,
        result: DownloadResult,
    ) -> Result<Settled, SettleRefusal> {
        let mut images = self.images_write();
        let record = images.get_mut(&id).ok_or(SettleRefusal::NoSuchImage(id))?;
        let other_task = match record.stage {
            DownloadStage::Task(known) => known != task,
            _ => false,
        };
        if other_task || record.retired.contains(&task) {
            return Err(SettleRefusal::OtherTask(id));
        }
        let image = &mut record.image;
        let (status, original_url, thumbnail_url, print_url, error) = match result {
            DownloadResult::Completed {
                original_url,
                thumbnail_url,
                print_url,
            } => (
                ImageStatus::Ready,
                Some(original_url),
                Some(thumbnail_url),
                Some(print_url),
                None,
            ),
            DownloadResult::Failed { error } => {
                (ImageStatus::Failed, None, None, None, Some(error))
            }
        };
        if image.status != ImageStatus::Pending {
            let same = image.status == status
                && image.original_url == original_url
                && image.thumbnail_url == thumbnail_url
                && image.error == error;
            return if same {
                Ok(Settled::Unchanged)
            } else {
                Err(SettleRefusal::AlreadySettled(id, image.status))
            };
        }
        image.status = status;
        image.original_url = original_url;
        image.thumbnail_url = thumbnail_url;
        image.error = error;
        record.print_url = print_url;
        record.stage = DownloadStage::Task(task);
        Ok(Settled::Applied)
    }

    /// Puts the user's `failed` image back to `pending`, to be asked for again.
    pub fn retry(&self, user_id: i64, id: i64) -> Result<Retried, RetryRefusal> {
        let mut images = self.images_write();
        let record = images
            .get_mut(&id)
            .filter(|r| r.image.user_id == user_id)
            .ok_or(RetryRefusal::NoSuchImage)?;
        if record.image.status != ImageStatus::Failed {
            return Err(RetryRefusal::NotFailed(record.image.status));
        }
        let previous_task = match record.stage {
            DownloadStage::Task(task) => {
                record.retired.push(task);
                Some(task)
            }
            _ => None,
        };
        record.stage = DownloadStage::Asking;
        record.pending_since = Instant::now();
        record.print_url = None;
        let image = &mut record.image;
        image.status = ImageStatus::Pending;
        image.original_url = None;
        image.thumbnail_url = None;
        let previous_error = image.error.take();
        Ok(Retried {
            image: image.clone(),
            previous_error,
            previous_task,
        })
    }

    /// The images pending at `now` for `deadline` or longer whose download
    /// download-service has taken: the ones whose report may have been lost.
    pub fn overdue(&self, now: Instant, deadline: Duration) -> Vec<(i64, DownloadStage)> {
        self.images_read()
            .values()
            .filter(|r| r.image.status == ImageStatus::Pending)
            .filter(|r| matches!(r.stage, DownloadStage::Task(_) | DownloadStage::Untracked))
            .filter(|r| now.saturating_duration_since(r.pending_since) >= deadline)
            .map(|r| (r.image.id, r.stage))
            .collect()
    }

    /// May `user_id` print `file_id` (on `printer_id`, or the default printer), and
    /// where?
    pub fn lookup(
        &self,
        user_id: i64,
        file_id: i64,
        printer_id: Option<i64>,
    ) -> Result<Lookup, LookupRefusal> {
        let (owner, status, print_url) = self
            .images_read()
            .get(&file_id)
            .map(|r| (r.image.user_id, r.image.status, r.print_url.clone()))
            .ok_or(LookupRefusal::NoSuchImage(file_id))?;
        if owner != user_id {
            return Err(LookupRefusal::NotOwner(file_id));
        }
        let image_url = match (status, print_url) {
            (ImageStatus::Ready, Some(url)) => url,
            _ => return Err(LookupRefusal::NotReady(file_id)),
        };
        let printer = self.printer_for(printer_id)?;
        Ok(Lookup {
            file_id,
            image_url,
            printer_id: printer.id,
            printer_url: printer.url,
        })
    }

    /// The printer asked for, or the default: the enabled printer with the lowest id.
    fn printer_for(&self, printer_id: Option<i64>) -> Result<Printer, LookupRefusal> {
        let printers = self.printers.read().unwrap_or_else(|e| e.into_inner());
        match printer_id {
            Some(id) => match printers.get(&id) {
                None => Err(LookupRefusal::NoSuchPrinter(id)),
                Some(printer) if !printer.enabled => Err(LookupRefusal::PrinterDisabled(id)),
                Some(printer) => Ok(printer.clone()),
            },
            None => printers
                .values()
                .find(|p| p.enabled)
                .cloned()
                .ok_or(LookupRefusal::NoPrinter),
        }
    }

    pub fn printers(&self) -> Vec<Printer> {
        self.printers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Registers printer `id`, or moves, enables or disables it; true when it is new.
    pub fn put_printer(&self, id: i64, url: String, enabled: bool) -> bool {
        self.printers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Printer { id, url, enabled })
            .is_none()
    }
}

#[cfg(test)]
mod tests;
