//! Where a service keeps what its journal holds: in memory only (no state directory
//! configured), or in a [`Journal`] in a directory, usable once it has been opened
//! and replayed. printer-sim's spool and ipp-gateway's job store are both a
//! [`JournalSlot`]; what their entries mean stays theirs.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{open_retrying, Journal, JournalError};
use crate::retry::Backoff;

/// A journal in a directory, or none; see the module's doc.
pub struct JournalSlot<E> {
    /// `None`: in memory only.
    durable: Option<Durable<E>>,
}

struct Durable<E> {
    dir: PathBuf,
    name: &'static str,
    /// Set once the file is opened, replayed and the service's state restored.
    journal: OnceLock<Journal<E>>,
    /// Why it could not be opened (yet).
    trouble: Mutex<Option<JournalError>>,
}

impl<E> JournalSlot<E> {
    /// The journal `name` in `dir`, or in memory only without a directory.
    pub fn new(dir: Option<PathBuf>, name: &'static str) -> Self {
        Self {
            durable: dir.map(|dir| Durable {
                dir,
                name,
                journal: OnceLock::new(),
                trouble: Mutex::new(None),
            }),
        }
    }

    /// The state directory, if there is one.
    pub fn dir(&self) -> Option<&Path> {
        self.durable.as_ref().map(|d| d.dir.as_path())
    }

    /// The journal to record in: `Ok(None)` in memory, `Err(why)` while it cannot
    /// take records (not opened yet, or out of service after a failed write).
    pub fn journal(&self) -> Result<Option<&Journal<E>>, JournalError> {
        let Some(durable) = &self.durable else {
            return Ok(None);
        };
        match durable.journal.get() {
            Some(journal) => match journal.failure() {
                Some(failure) => Err(failure),
                None => Ok(Some(journal)),
            },
            None => Err(durable
                .trouble
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or(JournalError::Opening)),
        }
    }

    /// Readiness: records can be taken.
    pub fn check(&self) -> Result<(), JournalError> {
        self.journal().map(|_| ())
    }
}

impl<E: Serialize + DeserializeOwned> JournalSlot<E> {
    /// Opens and replays the journal (retrying with `backoff` while it cannot be
    /// opened, see [`open_retrying`]), folding its entries with `fold`; `restore`
    /// takes the folded state before the journal takes records, so no new record
    /// misses what it restored. `None` in memory, or when `stop` fires first.
    pub async fn open<S, F, R>(
        &self,
        fold: F,
        backoff: Backoff,
        stop: &CancellationToken,
        restore: impl FnOnce(S) -> R,
    ) -> Option<R>
    where
        S: Send + 'static,
        F: Fn(Vec<E>) -> Result<(S, Vec<E>), (usize, String)> + Clone + Send + 'static,
    {
        let durable = self.durable.as_ref()?;
        let (file, state) = open_retrying(
            &durable.dir,
            durable.name,
            fold,
            backoff,
            &durable.trouble,
            stop,
        )
        .await?;
        let restored = restore(state);
        durable
            .journal
            .set(Journal::start(file, durable.dir.join(durable.name)))
            .ok()?;
        Some(restored)
    }

    /// Appends `entry` to the journal, if there is one, and waits until it is on
    /// disk; a failure is logged (and puts the journal out of service, which
    /// [`JournalSlot::check`] reports).
    pub async fn record(&self, entry: &E)
    where
        E: std::fmt::Debug,
    {
        let Some(journal) = self.durable.as_ref().and_then(|d| d.journal.get()) else {
            return;
        };
        if let Err(e) = journal.append(entry).written().await {
            log::error!("could not record {entry:?}: {e}");
        }
    }
}
