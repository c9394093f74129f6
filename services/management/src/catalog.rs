//! The mock's records, in memory: users' images and the printer registry.
//!
//! Locks are `std` locks held only for map operations, never across an `.await`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::RwLock;

use pixpress_domain::management::{Image, ImageStatus, Lookup, Printer};

/// Why a lookup refuses.
#[derive(Debug, PartialEq, Eq)]
pub enum LookupRefusal {
    NoSuchImage,
    NotOwner,
    NotReady,
    NoPrinter,
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

    /// May `user_id` print `file_id`, and where?
    pub fn lookup(&self, user_id: i64, file_id: i64) -> Result<Lookup, LookupRefusal> {
        let image = self
            .images_read()
            .get(&file_id)
            .cloned()
            .ok_or(LookupRefusal::NoSuchImage)?;
        if image.user_id != user_id {
            return Err(LookupRefusal::NotOwner);
        }
        let image_url = match (image.status, image.original_url) {
            (ImageStatus::Ready, Some(url)) => url,
            _ => return Err(LookupRefusal::NotReady),
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
        assert_eq!(catalog.lookup(1, 999), Err(LookupRefusal::NoSuchImage));
        assert_eq!(catalog.lookup(2, ready.id), Err(LookupRefusal::NotOwner));
        assert_eq!(catalog.lookup(1, pending.id), Err(LookupRefusal::NotReady));
        let ok = catalog.lookup(1, ready.id).unwrap();
        assert_eq!(ok.image_url, "http://x/b.jpg");
        assert_eq!(
            (ok.printer_id, ok.printer_url.as_str()),
            (1, "http://printer")
        );
    }
}
