//! The journal's writer: appends entries to the open journal file in order, from one
//! task, batched (one sync per batch) and off the async runtime. The first failed
//! write puts the journal out of service for good: a printer that cannot record a
//! job must not acknowledge it.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use super::{lines, Entry, SpoolError};

/// Lines written with one sync at most.
const MAX_BATCH: usize = 256;

/// A line waiting to be written, and who waits for it.
struct QueuedLine {
    line: Vec<u8>,
    done: oneshot::Sender<Result<(), SpoolError>>,
}

/// Appends entries to an open journal. Cheap to clone.
#[derive(Clone)]
pub struct Journal {
    writes: mpsc::UnboundedSender<QueuedLine>,
    /// Set by the first failed write; the journal refuses everything afterwards.
    failure: Arc<OnceLock<SpoolError>>,
}

/// An entry handed to the journal; [`Pending::written`] says when it is on disk.
pub struct Pending(Result<oneshot::Receiver<Result<(), SpoolError>>, SpoolError>);

impl Pending {
    /// Resolves once the entry is written and synced, or failed to be.
    pub async fn written(self) -> Result<(), SpoolError> {
        match self.0 {
            Ok(receiver) => receiver.await.unwrap_or(Err(SpoolError::WriterStopped)),
            Err(e) => Err(e),
        }
    }
}

impl Journal {
    /// Starts the writer task for `file` (opened by [`super::open`], at `path`).
    pub fn start(file: File, path: PathBuf) -> Self {
        let (writes, queue) = mpsc::unbounded_channel();
        let failure = Arc::new(OnceLock::new());
        tokio::spawn(write_batches(file, path, queue, Arc::clone(&failure)));
        Self { writes, failure }
    }

    /// Hands `entry` to the writer without waiting. Entries are written in the order
    /// they are handed over, so a caller holding a lock orders them with it.
    pub fn append(&self, entry: &Entry) -> Pending {
        if let Some(failure) = self.failure() {
            return Pending(Err(failure));
        }
        let line = match lines(std::slice::from_ref(entry)) {
            Ok(line) => line,
            Err(e) => return Pending(Err(e)),
        };
        let (done, receiver) = oneshot::channel();
        match self.writes.send(QueuedLine { line, done }) {
            Ok(()) => Pending(Ok(receiver)),
            Err(_) => Pending(Err(SpoolError::WriterStopped)),
        }
    }

    /// Why the journal is out of service, if it is.
    pub fn failure(&self) -> Option<SpoolError> {
        self.failure.get().cloned()
    }
}

/// Writes queued lines in batches, each written and synced on the blocking pool,
/// until every [`Journal`] is dropped.
async fn write_batches(
    file: File,
    path: PathBuf,
    mut queue: mpsc::UnboundedReceiver<QueuedLine>,
    failure: Arc<OnceLock<SpoolError>>,
) {
    let mut file = Some(file);
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let result = match (failure.get(), file.take()) {
            (Some(reason), _) => Err(reason.clone()),
            // Only a panicked write loses the file, and it set the failure.
            (None, None) => Err(SpoolError::Panicked {
                task: "the journal writer",
                message: "the journal file is lost".to_owned(),
            }),
            (None, Some(mut open)) => {
                let bytes: Vec<u8> = batch.iter().flat_map(|w| w.line.clone()).collect();
                let written = tokio::task::spawn_blocking(move || {
                    let result = append_synced(&mut open, &bytes);
                    (open, result)
                })
                .await;
                match written {
                    Ok((open, result)) => {
                        file = Some(open);
                        result.map_err(|e| SpoolError::io("append to", &path, e))
                    }
                    Err(e) => Err(SpoolError::Panicked {
                        task: "the journal writer",
                        message: e.to_string(),
                    }),
                }
            }
        };
        if let Err(reason) = &result {
            if failure.set(reason.clone()).is_ok() {
                log::error!("the spool is out of service: {reason}");
            }
        }
        for write in batch {
            let _ = write.done.send(result.clone());
        }
    }
}

/// Appends `bytes` and syncs them; after a failure cuts the file back to where it
/// was, so no fragment is left for later lines to be glued to.
fn append_synced(file: &mut File, bytes: &[u8]) -> io::Result<()> {
    let before = file.metadata()?.len();
    let result = file.write_all(bytes).and_then(|()| file.sync_data());
    if result.is_err() {
        let _ = file.set_len(before);
    }
    result
}
