//! A durable, append-only journal of JSON lines: how a service that must not lose
//! what it acknowledged (a printer's spool, the IPP gateway's jobs) keeps it on disk.
//!
//! [`open`] reads a journal file back (dropping a torn last line: it was being
//! written when the process died, so it was never acknowledged), lets the caller fold
//! the entries into its state and rewrites the file compactly; [`Journal`] then
//! appends entries in order from one writer task, batched (one sync per batch), on the
//! blocking pool. The first failed write puts the journal out of service for good: a
//! service that cannot record must stop acknowledging. What the entries mean is the
//! service's business; this module only keeps them in order and on disk.
//! [`JournalSlot`] (`slot.rs`) is where a service holds its journal, or none.

mod slot;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

pub use slot::JournalSlot;

/// Lines written with one sync at most.
const MAX_BATCH: usize = 256;

/// Why a journal cannot be read or written. Cheap to clone, so that every waiter of
/// a failed batch gets the reason.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    /// The journal is still being read at start.
    #[error("the journal is being opened")]
    Opening,
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// A complete line before the end does not parse: not a crash, a damaged file.
    #[error("{} is damaged at line {line}: {error}", path.display())]
    Damaged {
        path: PathBuf,
        line: usize,
        error: String,
    },
    #[error("cannot encode a journal entry: {0}")]
    Encode(Arc<serde_json::Error>),
    #[error("the journal writer has stopped")]
    WriterStopped,
    #[error("{task} panicked: {message}")]
    Panicked { task: &'static str, message: String },
}

impl JournalError {
    pub fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        JournalError::Io {
            op,
            path: path.to_owned(),
            source: Arc::new(source),
        }
    }
}

/// The entries of a journal file, in the order they were written.
#[derive(Debug)]
pub struct Replay<E> {
    pub entries: Vec<E>,
    /// The file's line number (from 1) of each entry: blank lines are skipped.
    pub line_numbers: Vec<usize>,
    /// The last line was cut short by a crash (and dropped).
    pub torn_tail: bool,
}

/// Parses journal text. A complete line that does not parse is damage, reported
/// with its 1-based number; an unterminated last line is a torn write, dropped.
pub fn parse<E: DeserializeOwned>(text: &[u8]) -> Result<Replay<E>, (usize, String)> {
    let mut replay = Replay {
        entries: Vec::new(),
        line_numbers: Vec::new(),
        torn_tail: false,
    };
    for (number, line) in text.split_inclusive(|b| *b == b'\n').enumerate() {
        let Some(line) = line.strip_suffix(b"\n") else {
            replay.torn_tail = true;
            break;
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let entry = serde_json::from_slice(line).map_err(|e| (number + 1, e.to_string()))?;
        replay.entries.push(entry);
        replay.line_numbers.push(number + 1);
    }
    Ok(replay)
}

/// Serializes entries as journal lines.
pub fn lines<E: Serialize>(entries: &[E]) -> Result<Vec<u8>, JournalError> {
    let mut bytes = Vec::new();
    for entry in entries {
        serde_json::to_writer(&mut bytes, entry).map_err(|e| JournalError::Encode(Arc::new(e)))?;
        bytes.push(b'\n');
    }
    Ok(bytes)
}

/// [`open`] on the blocking pool, tried again with `backoff` while the journal cannot
/// be opened (a disk not mounted yet, a damaged file an operator is looking at):
/// each failure is logged and kept in `trouble`, where readiness reads why jobs are
/// refused meanwhile. `None` when `stop` fires first.
async fn open_retrying<E, S, F>(
    dir: &Path,
    name: &'static str,
    fold: F,
    backoff: crate::retry::Backoff,
    trouble: &std::sync::Mutex<Option<JournalError>>,
    stop: &tokio_util::sync::CancellationToken,
) -> Option<(File, S)>
where
    E: Serialize + DeserializeOwned,
    S: Send + 'static,
    F: Fn(Vec<E>) -> Result<(S, Vec<E>), (usize, String)> + Clone + Send + 'static,
{
    let mut failures = 0;
    loop {
        let opening = {
            let (dir, fold) = (dir.to_path_buf(), fold.clone());
            tokio::task::spawn_blocking(move || open(&dir, name, fold)).await
        };
        let reason = match opening {
            Ok(Ok(opened)) => return Some(opened),
            Ok(Err(reason)) => reason,
            Err(e) => JournalError::Panicked {
                task: "reading the journal",
                message: e.to_string(),
            },
        };
        failures += 1;
        let delay = backoff.delay(failures);
        log::error!(
            "cannot open the journal in {} (retrying in {delay:?}): {reason}",
            dir.display()
        );
        *trouble.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
        tokio::select! {
            _ = stop.cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Opens the journal `dir/name` (both created if missing): reads its entries, hands
/// them to `fold`, which builds the caller's state and returns the entries that
/// restore it (the compact form), writes those beside the file and swaps them in
/// (a crash meanwhile leaves one whole file), and opens the result for appending.
/// `fold` may refuse an entry that cannot have been written: `Err((n, why))` names
/// the `n`th entry (from 1), reported with its line number in the file.
///
/// Blocking: run it on the blocking pool.
pub fn open<E, S>(
    dir: &Path,
    name: &str,
    fold: impl FnOnce(Vec<E>) -> Result<(S, Vec<E>), (usize, String)>,
) -> Result<(File, S), JournalError>
where
    E: Serialize + DeserializeOwned,
{
    std::fs::create_dir_all(dir).map_err(|e| JournalError::io("create", dir, e))?;
    let path = dir.join(name);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(JournalError::io("read", &path, e)),
    };
    let damaged = |(line, error)| JournalError::Damaged {
        path: path.clone(),
        line,
        error,
    };
    let replay = parse::<E>(&text).map_err(damaged)?;
    if replay.torn_tail {
        log::warn!(
            "{}: dropped a torn last line (a crash while it was written)",
            path.display()
        );
    }
    let line_numbers = replay.line_numbers;
    let (state, compact) = fold(replay.entries)
        .map_err(|(n, why)| {
            let line = n
                .checked_sub(1)
                .and_then(|i| line_numbers.get(i))
                .copied()
                .unwrap_or(n);
            (line, why)
        })
        .map_err(damaged)?;
    let bytes = lines(&compact)?;
    let fresh = dir.join(format!("{name}.new"));
    let write = || -> io::Result<()> {
        let mut file = File::create(&fresh)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&fresh, &path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| JournalError::io("rewrite", &path, e))?;
    let file = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| JournalError::io("open", &path, e))?;
    Ok((file, state))
}

/// A line waiting to be written, and who waits for it.
struct QueuedLine {
    line: Vec<u8>,
    done: oneshot::Sender<Result<(), JournalError>>,
}

/// Appends entries of type `E` to an open journal file. Cheap to clone.
pub struct Journal<E> {
    writes: mpsc::UnboundedSender<QueuedLine>,
    /// Set by the first failed write; the journal refuses everything afterwards.
    failure: Arc<OnceLock<JournalError>>,
    entry: PhantomData<fn(&E)>,
}

impl<E> Clone for Journal<E> {
    fn clone(&self) -> Self {
        Self {
            writes: self.writes.clone(),
            failure: Arc::clone(&self.failure),
            entry: PhantomData,
        }
    }
}

/// An entry handed to the journal; [`Pending::written`] says when it is on disk.
#[must_use = "an entry is acknowledged only once written"]
pub struct Pending(Result<oneshot::Receiver<Result<(), JournalError>>, JournalError>);

impl Pending {
    /// Resolves once the entry is written and synced, or failed to be.
    pub async fn written(self) -> Result<(), JournalError> {
        match self.0 {
            Ok(receiver) => receiver.await.unwrap_or(Err(JournalError::WriterStopped)),
            Err(e) => Err(e),
        }
    }
}

impl<E: Serialize> Journal<E> {
    /// Starts the writer task for `file` (opened by [`open`], at `path`). Needs a
    /// Tokio runtime.
    pub fn start(file: File, path: PathBuf) -> Self {
        let (writes, queue) = mpsc::unbounded_channel();
        let failure = Arc::new(OnceLock::new());
        tokio::spawn(write_batches(file, path, queue, Arc::clone(&failure)));
        Self {
            writes,
            failure,
            entry: PhantomData,
        }
    }

    /// Hands `entry` to the writer without waiting. Entries are written in the order
    /// they are handed over, so a caller holding a lock orders them with it.
    pub fn append(&self, entry: &E) -> Pending {
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
            Err(_) => Pending(Err(JournalError::WriterStopped)),
        }
    }
}

impl<E> Journal<E> {
    /// Why the journal is out of service, if it is.
    pub fn failure(&self) -> Option<JournalError> {
        self.failure.get().cloned()
    }
}

/// Writes queued lines in batches, each written and synced on the blocking pool,
/// until every [`Journal`] is dropped.
async fn write_batches(
    file: File,
    path: PathBuf,
    mut queue: mpsc::UnboundedReceiver<QueuedLine>,
    failure: Arc<OnceLock<JournalError>>,
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
            (None, None) => Err(JournalError::Panicked {
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
                        result.map_err(|e| JournalError::io("append to", &path, e))
                    }
                    Err(e) => Err(JournalError::Panicked {
                        task: "the journal writer",
                        message: e.to_string(),
                    }),
                }
            }
        };
        if let Err(reason) = &result {
            if failure.set(reason.clone()).is_ok() {
                log::error!("the journal is out of service: {reason}");
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

#[cfg(test)]
mod tests {
    use super::*;

    type Entry = serde_json::Value;

    fn keep_all(entries: Vec<Entry>) -> Result<(Vec<Entry>, Vec<Entry>), (usize, String)> {
        Ok((entries.clone(), entries))
    }

    #[tokio::test]
    async fn appended_entries_are_read_back_in_order_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (file, replayed) = open(dir.path(), "j.jsonl", keep_all).unwrap();
        assert!(replayed.is_empty());
        let journal: Journal<Entry> = Journal::start(file, dir.path().join("j.jsonl"));
        for n in 0..3 {
            journal
                .append(&serde_json::json!({ "n": n }))
                .written()
                .await
                .unwrap();
        }
        let (_, replayed) = open(dir.path(), "j.jsonl", keep_all).unwrap();
        let ns: Vec<_> = replayed.iter().map(|e| e["n"].as_i64().unwrap()).collect();
        assert_eq!(ns, [0, 1, 2]);
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_the_rest_kept() {
        let replay = parse::<Entry>(b"{\"n\":1}\n{\"n\":").unwrap();
        assert!(replay.torn_tail);
        assert_eq!(replay.entries.len(), 1);
        // A whole line that lost only its newline was never acknowledged either.
        assert!(parse::<Entry>(b"{\"n\":1}").unwrap().entries.is_empty());
    }

    #[test]
    fn a_damaged_line_before_the_end_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("j.jsonl"), b"{\"n\":1}\n{not json\n{}\n").unwrap();
        let err = open(dir.path(), "j.jsonl", keep_all).unwrap_err();
        assert!(
            matches!(err, JournalError::Damaged { line: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn an_entry_the_fold_refuses_is_reported_with_its_line_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("j.jsonl"), b"1\n\n2\n").unwrap();
        let refuse_second =
            |_: Vec<Entry>| -> Result<((), Vec<Entry>), _> { Err((2, "no".to_owned())) };
        let err = open(dir.path(), "j.jsonl", refuse_second).unwrap_err();
        assert!(
            matches!(err, JournalError::Damaged { line: 3, .. }),
            "{err}"
        );
    }

    #[test]
    fn the_fold_decides_what_the_rewritten_file_holds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("j.jsonl"), b"1\n2\n3\n").unwrap();
        let last_only = |entries: Vec<Entry>| Ok((entries.len(), entries[2..].to_vec()));
        let (_, count) = open(dir.path(), "j.jsonl", last_only).unwrap();
        assert_eq!(count, 3);
        assert_eq!(std::fs::read(dir.path().join("j.jsonl")).unwrap(), b"3\n");
    }
}
