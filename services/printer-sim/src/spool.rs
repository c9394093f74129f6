//! The printer's spool on disk (`PRINTER_STATE_DIR`): an append-only journal of the
//! jobs it accepted, printed and reported, so a printer that crashes or restarts
//! still knows every job it acknowledged — it does not print a re-sent job twice, and
//! it finishes the jobs it had accepted but not yet printed.
//!
//! The journal is `journal.jsonl`, one JSON [`Entry`] per line. A job's `accepted`
//! line is on disk (written and synced) before the printer answers 202. Lines are
//! written by one task, batched (one sync per batch), off the async runtime. At start
//! the journal is replayed: a torn last line (a crash mid-write; it was never
//! acknowledged) is dropped, then the journal is rewritten compactly (one line per
//! fact still needed) and appended to from there. A complete line that does not
//! parse means the file was damaged: the spool stays unavailable and says where.
//!
//! When a write fails the spool goes out of service (the printer answers 503 and
//! `/ready` says why) until the printer is restarted, rather than acknowledge a job
//! it might forget.

use std::collections::hash_map::{self, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use pixpress_domain::printer::PrinterJob;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// The journal's file name inside `PRINTER_STATE_DIR`.
pub const JOURNAL_FILE: &str = "journal.jsonl";
/// Lines written with one sync at most.
const MAX_BATCH: usize = 256;

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Entry {
    /// A new job, recorded before its 202.
    Accepted { job: PrinterJob },
    /// A job already accepted was sent again.
    Received { correlation_id: Uuid },
    /// The job came out of the printer, completed or (`failed`) not.
    Printed {
        correlation_id: Uuid,
        failed: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// print-service took the job's final callback.
    Reported { correlation_id: Uuid },
}

/// How a printed job came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub failed: bool,
    pub detail: Option<String>,
}

/// A job as the journal remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledJob {
    pub job: PrinterJob,
    /// Times it was sent to the printer.
    pub received: u32,
    /// Set once printed.
    pub printed: Option<Outcome>,
    /// Whether print-service took the final callback.
    pub reported: bool,
}

impl SpooledJob {
    /// The lines that restore this job, in order.
    fn entries(&self) -> Vec<Entry> {
        let id = self.job.correlation_id;
        let mut entries = vec![Entry::Accepted {
            job: self.job.clone(),
        }];
        for _ in 1..self.received {
            entries.push(Entry::Received { correlation_id: id });
        }
        if let Some(outcome) = &self.printed {
            entries.push(Entry::Printed {
                correlation_id: id,
                failed: outcome.failed,
                detail: outcome.detail.clone(),
            });
        }
        if self.reported {
            entries.push(Entry::Reported { correlation_id: id });
        }
        entries
    }
}

/// What a journal's text says: its jobs in the order they were accepted, and
/// whether its last line was torn.
#[derive(Debug, Default)]
pub struct Replay {
    pub jobs: Vec<SpooledJob>,
    pub torn_tail: bool,
}

/// Replays journal text. Errors name the first damaged (complete) line.
pub fn replay(text: &[u8]) -> Result<Replay, String> {
    let mut replay = Replay::default();
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    for (number, line) in text.split_inclusive(|b| *b == b'\n').enumerate() {
        let Some(line) = line.strip_suffix(b"\n") else {
            // Only the last line can lack its newline: written, never acknowledged.
            replay.torn_tail = true;
            break;
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let entry: Entry = serde_json::from_slice(line)
            .map_err(|e| format!("line {} is damaged: {e}", number + 1))?;
        match entry {
            Entry::Accepted { job } => {
                if let hash_map::Entry::Vacant(slot) = index.entry(job.correlation_id) {
                    slot.insert(replay.jobs.len());
                    replay.jobs.push(SpooledJob {
                        job,
                        received: 1,
                        printed: None,
                        reported: false,
                    });
                }
            }
            // Lines about a job never accepted cannot come from the writer: ignored.
            Entry::Received { correlation_id } => {
                if let Some(&i) = index.get(&correlation_id) {
                    replay.jobs[i].received += 1;
                }
            }
            Entry::Printed {
                correlation_id,
                failed,
                detail,
            } => {
                if let Some(&i) = index.get(&correlation_id) {
                    replay.jobs[i].printed = Some(Outcome { failed, detail });
                }
            }
            Entry::Reported { correlation_id } => {
                if let Some(&i) = index.get(&correlation_id) {
                    replay.jobs[i].reported = true;
                }
            }
        }
    }
    Ok(replay)
}

/// Serializes entries as journal lines.
fn lines(entries: &[Entry]) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    for entry in entries {
        serde_json::to_writer(&mut bytes, entry).map_err(|e| e.to_string())?;
        bytes.push(b'\n');
    }
    Ok(bytes)
}

/// Opens the journal in `dir` (created if needed): replays it, rewrites it compactly
/// and opens it for appending. Blocking: run it on the blocking pool.
pub fn open(dir: &Path) -> Result<(File, Replay), String> {
    let describe =
        |what: &str, path: &Path, e: io::Error| format!("{what} {}: {e}", path.display());
    std::fs::create_dir_all(dir).map_err(|e| describe("cannot create", dir, e))?;
    let path = dir.join(JOURNAL_FILE);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(describe("cannot read", &path, e)),
    };
    let replay = replay(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if replay.torn_tail {
        log::warn!(
            "{}: dropped a torn last line (a crash while it was written)",
            path.display()
        );
    }
    // Rewrite compactly beside it, then swap: a crash meanwhile leaves one whole file.
    let entries: Vec<Entry> = replay.jobs.iter().flat_map(SpooledJob::entries).collect();
    let bytes = lines(&entries)?;
    let fresh = dir.join(format!("{JOURNAL_FILE}.new"));
    let write = || -> io::Result<()> {
        let mut file = File::create(&fresh)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&fresh, &path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| describe("cannot rewrite", &path, e))?;
    let file = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| describe("cannot open", &path, e))?;
    Ok((file, replay))
}

/// A line waiting to be written, and who waits for it.
struct QueuedLine {
    line: Vec<u8>,
    done: oneshot::Sender<Result<(), String>>,
}

/// Appends entries to an open journal. Cheap to clone.
#[derive(Clone)]
pub struct Journal {
    writes: mpsc::UnboundedSender<QueuedLine>,
    /// Set by the first failed write; the journal refuses everything afterwards.
    failure: Arc<OnceLock<String>>,
    path: PathBuf,
}

/// An entry handed to the journal; [`Pending::written`] says when it is on disk.
pub struct Pending(Result<oneshot::Receiver<Result<(), String>>, String>);

impl Pending {
    /// Resolves once the entry is written and synced, or failed to be.
    pub async fn written(self) -> Result<(), String> {
        match self.0 {
            Ok(receiver) => receiver
                .await
                .unwrap_or_else(|_| Err("the journal writer stopped".to_owned())),
            Err(e) => Err(e),
        }
    }
}

impl Journal {
    /// Starts the writer task for `file` (opened by [`open`], at `path`).
    pub fn start(file: File, path: PathBuf) -> Self {
        let (writes, queue) = mpsc::unbounded_channel();
        let failure = Arc::new(OnceLock::new());
        tokio::spawn(write_batches(file, queue, Arc::clone(&failure)));
        Self {
            writes,
            failure,
            path,
        }
    }

    /// Hands `entry` to the writer without waiting. Entries are written in the order
    /// they are handed over, so a caller holding a lock orders them with it.
    pub fn append(&self, entry: &Entry) -> Pending {
        if let Some(failure) = self.failure() {
            return Pending(Err(failure));
        }
        let mut line = match serde_json::to_vec(entry) {
            Ok(line) => line,
            Err(e) => return Pending(Err(format!("cannot encode a journal entry: {e}"))),
        };
        line.push(b'\n');
        let (done, receiver) = oneshot::channel();
        match self.writes.send(QueuedLine { line, done }) {
            Ok(()) => Pending(Ok(receiver)),
            Err(_) => Pending(Err("the journal writer stopped".to_owned())),
        }
    }

    /// Why the journal is out of service, if it is.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .get()
            .map(|e| format!("{}: {e}", self.path.display()))
    }
}

/// Writes queued lines in batches, each written and synced on the blocking pool,
/// until every [`Journal`] is dropped.
async fn write_batches(
    file: File,
    mut queue: mpsc::UnboundedReceiver<QueuedLine>,
    failure: Arc<OnceLock<String>>,
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
            (None, None) => Err("the journal file is lost".to_owned()),
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
                        result.map_err(|e| e.to_string())
                    }
                    Err(e) => Err(format!("the journal writer panicked: {e}")),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn job(n: u128) -> PrinterJob {
        PrinterJob {
            correlation_id: Uuid::from_u128(n),
            image_url: "http://images/x.jpg".into(),
            copies: 1,
            callback_url: "http://print/cb".into(),
        }
    }

    #[test]
    fn replay_restores_counts_outcomes_and_order() {
        let entries = [
            Entry::Accepted { job: job(2) },
            Entry::Accepted { job: job(1) },
            Entry::Received {
                correlation_id: Uuid::from_u128(2),
            },
            Entry::Printed {
                correlation_id: Uuid::from_u128(2),
                failed: true,
                detail: Some("paper jam".into()),
            },
            Entry::Reported {
                correlation_id: Uuid::from_u128(2),
            },
        ];
        let replay = replay(&lines(&entries).unwrap()).unwrap();
        assert!(!replay.torn_tail);
        let ids: Vec<_> = replay.jobs.iter().map(|j| j.job.correlation_id).collect();
        assert_eq!(ids, [Uuid::from_u128(2), Uuid::from_u128(1)]);
        let first = &replay.jobs[0];
        assert_eq!(first.received, 2);
        assert_eq!(
            first.printed,
            Some(Outcome {
                failed: true,
                detail: Some("paper jam".into())
            })
        );
        assert!(first.reported);
        assert_eq!(replay.jobs[1].printed, None);
        // What a compaction writes replays to the same jobs.
        let compact: Vec<Entry> = replay.jobs.iter().flat_map(SpooledJob::entries).collect();
        assert_eq!(
            super::replay(&lines(&compact).unwrap()).unwrap().jobs,
            replay.jobs
        );
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_the_rest_kept() {
        let mut text = lines(&[Entry::Accepted { job: job(1) }]).unwrap();
        let torn = lines(&[Entry::Accepted { job: job(2) }]).unwrap();
        text.extend_from_slice(&torn[..torn.len() / 2]);
        let replay = replay(&text).unwrap();
        assert!(replay.torn_tail);
        assert_eq!(replay.jobs.len(), 1);
        // A whole line that lost only its newline was never acknowledged either.
        let mut text = lines(&[Entry::Accepted { job: job(1) }]).unwrap();
        text.pop();
        assert!(super::replay(&text).unwrap().jobs.is_empty());
    }

    #[test]
    fn a_damaged_line_before_the_end_is_an_error_naming_it() {
        let mut text = lines(&[Entry::Accepted { job: job(1) }]).unwrap();
        text.extend_from_slice(b"{not json\n");
        text.extend_from_slice(&lines(&[Entry::Accepted { job: job(2) }]).unwrap());
        let err = replay(&text).unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }
}
