//! The mock's records, in memory: users' images and the printer registry.
//!
//! Locks are `std` locks held only for map operations, never across an `.await`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::RwLock;

use pixpress_domain::management::{Image, ImageStatus, Lookup, Printer};

/// Why a lookup refuses, naming the image asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum LookupRefusal {
    NoSuchImage(i64),
    NotOwner(i64),
    NotReady(i64),
    NoPrinter,
}

/// How a download ended, as it is recorded on the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadResult {
    Completed {
        original_url: String,
        thumbnail_url: String,
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
}

#[derive(Default)]
pub struct Catalog {
    next_image_id: AtomicI64,
    images: RwLock<BTreeMap<i64, Image>>,
    printers: RwLock<BTreeMap<i64, Printer>>,
}

impl Catalog {
    /// A catalog with printer 1 at `printer_url`.
    pub fn new(printer_url: &str) -> Self {
        let catalog = Self::default();
        catalog.put_printer(1, printer_url.to_owned());
        catalog
    }

    // A poisoned lock only means another request panicked mid-update of a map whose
    // every update is a single insert/remove, so the data is still consistent.
    fn images_read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<i64, Image>> {
        self.images.read().unwrap_or_else(|e| e.into_inner())
    }
    fn images_write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<i64, Image>> {
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
        self.images_write().insert(id, image.clone());
        image
    }

    /// The user's images, oldest first.
    pub fn images_of(&self, user_id: i64) -> Vec<Image> {
        self.images_read()
            .values()
            .filter(|i| i.user_id == user_id)
            .cloned()
            .collect()
    }

    /// The image if it exists and belongs to `user_id`.
    pub fn image_of(&self, user_id: i64, id: i64) -> Option<Image> {
        self.images_read()
            .get(&id)
            .filter(|i| i.user_id == user_id)
            .cloned()
    }

    pub fn delete_image(&self, user_id: i64, id: i64) -> bool {
        let mut images = self.images_write();
        match images.get(&id) {
            Some(image) if image.user_id == user_id => images.remove(&id).is_some(),
            _ => false,
        }
    }

    /// Whether image `id` still waits for its download (false once final or gone).
    pub fn is_pending(&self, id: i64) -> bool {
        self.images_read()
            .get(&id)
            .is_some_and(|i| i.status == ImageStatus::Pending)
    }

    /// Records how image `id`'s download ended. Only a pending image changes: a final
    /// image accepts a repeat of its own result and refuses any other.
    pub fn settle(&self, id: i64, result: DownloadResult) -> Result<Settled, SettleRefusal> {
        let mut images = self.images_write();
        let image = images.get_mut(&id).ok_or(SettleRefusal::NoSuchImage(id))?;
        let (status, original_url, thumbnail_url, error) = match result {
            DownloadResult::Completed {
                original_url,
                thumbnail_url,
            } => (
                ImageStatus::Ready,
                Some(original_url),
                Some(thumbnail_url),
                None,
            ),
            DownloadResult::Failed { error } => (ImageStatus::Failed, None, None, Some(error)),
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
        Ok(Settled::Applied)
    }

    /// May `user_id` print `file_id`, and where?
    pub fn lookup(&self, user_id: i64, file_id: i64) -> Result<Lookup, LookupRefusal> {
        let image = self
            .images_read()
            .get(&file_id)
            .cloned()
            .ok_or(LookupRefusal::NoSuchImage(file_id))?;
        if image.user_id != user_id {
            return Err(LookupRefusal::NotOwner(file_id));
        }
        let image_url = match (image.status, image.original_url) {
            (ImageStatus::Ready, Some(url)) => url,
            _ => return Err(LookupRefusal::NotReady(file_id)),
        };
        // Every image prints on the first registered printer.
        let printer = self
            .printers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .next()
            .cloned()
            .ok_or(LookupRefusal::NoPrinter)?;
        Ok(Lookup {
            file_id,
            image_url,
            printer_id: printer.id,
            printer_url: printer.url,
        })
    }

    pub fn printers(&self) -> Vec<Printer> {
        self.printers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Registers or moves printer `id`; true when it is new.
    pub fn put_printer(&self, id: i64, url: String) -> bool {
        self.printers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Printer { id, url })
            .is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_refuses_strangers_unready_images_and_unknown_files() {
        let catalog = Catalog::new("http://printer");
        let pending = catalog.create_image(1, "http://x/a.jpg".into(), false);
        let ready = catalog.create_image(1, "http://x/b.jpg".into(), true);
        assert_eq!(catalog.lookup(1, 999), Err(LookupRefusal::NoSuchImage(999)));
        assert_eq!(
            catalog.lookup(2, ready.id),
            Err(LookupRefusal::NotOwner(ready.id))
        );
        assert_eq!(
            catalog.lookup(1, pending.id),
            Err(LookupRefusal::NotReady(pending.id))
        );
        let ok = catalog.lookup(1, ready.id).unwrap();
        assert_eq!(ok.image_url, "http://x/b.jpg");
        assert_eq!(
            (ok.printer_id, ok.printer_url.as_str()),
            (1, "http://printer")
        );
    }

    #[test]
    fn a_download_result_settles_a_pending_image_once() {
        let catalog = Catalog::new("http://printer");
        let image = catalog.create_image(1, "http://x/a.jpg".into(), false);
        let completed = DownloadResult::Completed {
            original_url: "http://d/images/t/original".into(),
            thumbnail_url: "http://d/images/t/thumbnail".into(),
        };
        assert!(catalog.is_pending(image.id));
        assert_eq!(
            catalog.settle(image.id, completed.clone()),
            Ok(Settled::Applied)
        );
        assert!(!catalog.is_pending(image.id));
        assert_eq!(catalog.settle(image.id, completed), Ok(Settled::Unchanged));
        let failed = DownloadResult::Failed {
            error: "timeout".into(),
        };
        assert_eq!(
            catalog.settle(image.id, failed.clone()),
            Err(SettleRefusal::AlreadySettled(image.id, ImageStatus::Ready))
        );
        assert_eq!(
            catalog.lookup(1, image.id).unwrap().image_url,
            "http://d/images/t/original"
        );
        assert_eq!(
            catalog.settle(999, failed),
            Err(SettleRefusal::NoSuchImage(999))
        );
    }
}
