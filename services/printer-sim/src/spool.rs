//! The printer's spool on disk (`PRINTER_STATE_DIR`): an append-only journal of the
//! jobs it accepted, printed and reported, so a printer that crashes or restarts
//! still knows every job it acknowledged — it does not print a re-sent job twice, and
//! it finishes the jobs it had accepted but not yet printed.
//!
//! The journal is `journal.jsonl`, one JSON [`Entry`] per line. A job's `accepted`
//! line is on disk (written and synced) before the printer answers 202. Lines are
//! written by one task ([`Journal`]), batched (one sync per batch), off the async
//! runtime. At start the journal is replayed: a torn last line (a crash mid-write; it
//! was never acknowledged) is dropped, then the journal is rewritten compactly (one
//! line per fact still needed) and appended to from there. A complete line that does not
//! parse, or that the writer cannot have written (a second acceptance of a job, news
//! of a job never accepted), means the file was damaged: the spool stays unavailable
//! and says where.
//!
//! When a write fails the spool goes out of service (the printer answers 503 and
//! `/ready` says why) until the printer is restarted, rather than acknowledge a job
//! it might forget.

mod journal;

use std::collections::hash_map::{self, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pixpress_domain::printer::PrinterJob;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::fetch::FetchedImage;

pub use journal::{Journal, Pending};

/// The journal's file name inside `PRINTER_STATE_DIR`.
pub const JOURNAL_FILE: &str = "journal.jsonl";

/// Why the spool cannot be opened, or cannot record an entry. Its text is what
/// `/ready` reports. Cheap to clone: one failed write answers every entry of its
/// batch, and every entry after it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SpoolError {
    /// The spool's folder or journal cannot be created, read, written or synced.
    #[error("cannot {action} {}: {error}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        error: Arc<io::Error>,
    },
    /// The journal at `path` says something its writer cannot have written.
    #[error("{}: {damage}", path.display())]
    Damaged { path: PathBuf, damage: Damage },
    /// An entry cannot be encoded as JSON.
    #[error("cannot encode a journal entry: {0}")]
    Encode(Arc<serde_json::Error>),
    /// The journal is still being read, at start.
    #[error("the spool is being read")]
    Opening,
    /// A task of the spool panicked: reading the spool, or writing a batch (the
    /// journal file is lost with it).
    #[error("{task} panicked: {message}")]
    Panicked { task: &'static str, message: String },
    /// The writer task is gone (the printer is stopping).
    #[error("the journal writer stopped")]
    WriterStopped,
}

impl SpoolError {
    fn io(action: &'static str, path: &Path, error: io::Error) -> Self {
        SpoolError::Io {
            action,
            path: path.to_owned(),
            error: Arc::new(error),
        }
    }
}

/// Why a journal's text cannot be trusted, naming its first bad line (from 1).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Damage {
    #[error("line {line} is damaged: {error}")]
    Unreadable {
        line: usize,
        error: Arc<serde_json::Error>,
    },
    #[error("line {line} accepts job {correlation_id} a second time")]
    AcceptedTwice { line: usize, correlation_id: Uuid },
    #[error("line {line} is about job {correlation_id}, which no earlier line accepted")]
    NeverAccepted { line: usize, correlation_id: Uuid },
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Entry {
    /// A new job, recorded before its 202.
    Accepted { job: PrinterJob },
    /// A job already accepted was sent again.
    Received { correlation_id: Uuid },
    /// The job came out of the printer, completed or (`failed`) not, with the size
    /// and digest of the image it fetched (absent when the image could not be
    /// fetched, and in lines written before printer-sim fetched images).
    Printed {
        correlation_id: Uuid,
        failed: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image_bytes: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image_sha256: Option<String>,
    },
    /// print-service took the job's final callback.
    Reported { correlation_id: Uuid },
}

/// How a printed job came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub failed: bool,
    pub detail: Option<String>,
    /// The image the printer fetched, if it got one.
    pub image: Option<FetchedImage>,
}

impl Outcome {
    /// The journal line saying job `correlation_id` came out like this.
    pub fn entry(&self, correlation_id: Uuid) -> Entry {
        Entry::Printed {
            correlation_id,
            failed: self.failed,
            detail: self.detail.clone(),
            image_bytes: self.image.as_ref().map(|i| i.bytes),
            image_sha256: self.image.as_ref().map(|i| i.sha256.clone()),
        }
    }
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
            entries.push(outcome.entry(id));
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
pub fn replay(text: &[u8]) -> Result<Replay, Damage> {
    let mut replay = Replay::default();
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    for (number, line) in text.split_inclusive(|b| *b == b'\n').enumerate() {
        let number = number + 1;
        let Some(line) = line.strip_suffix(b"\n") else {
            // Only the last line can lack its newline: written, never acknowledged.
            replay.torn_tail = true;
            break;
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let entry: Entry = serde_json::from_slice(line).map_err(|e| Damage::Unreadable {
            line: number,
            error: Arc::new(e),
        })?;
        match entry {
            Entry::Accepted { job } => {
                let correlation_id = job.correlation_id;
                let hash_map::Entry::Vacant(slot) = index.entry(correlation_id) else {
                    return Err(Damage::AcceptedTwice {
                        line: number,
                        correlation_id,
                    });
                };
                slot.insert(replay.jobs.len());
                replay.jobs.push(SpooledJob {
                    job,
                    received: 1,
                    printed: None,
                    reported: false,
                });
            }
            Entry::Received { correlation_id } => {
                accepted(&mut replay, &index, correlation_id, number)?.received += 1;
            }
            Entry::Printed {
                correlation_id,
                failed,
                detail,
                image_bytes,
                image_sha256,
            } => {
                // Both or neither: the writer records them together.
                let image = image_bytes
                    .zip(image_sha256)
                    .map(|(bytes, sha256)| FetchedImage { bytes, sha256 });
                accepted(&mut replay, &index, correlation_id, number)?.printed = Some(Outcome {
                    failed,
                    detail,
                    image,
                });
            }
            Entry::Reported { correlation_id } => {
                accepted(&mut replay, &index, correlation_id, number)?.reported = true;
            }
        }
    }
    Ok(replay)
}

/// The job a line (numbered `line`) is about: the writer notes a job's acceptance
/// before anything else about it.
fn accepted<'a>(
    replay: &'a mut Replay,
    index: &HashMap<Uuid, usize>,
    correlation_id: Uuid,
    line: usize,
) -> Result<&'a mut SpooledJob, Damage> {
    match index.get(&correlation_id) {
        Some(&i) => Ok(&mut replay.jobs[i]),
        None => Err(Damage::NeverAccepted {
            line,
            correlation_id,
        }),
    }
}

/// Serializes entries as journal lines.
fn lines(entries: &[Entry]) -> Result<Vec<u8>, SpoolError> {
    let mut bytes = Vec::new();
    for entry in entries {
        serde_json::to_writer(&mut bytes, entry).map_err(|e| SpoolError::Encode(Arc::new(e)))?;
        bytes.push(b'\n');
    }
    Ok(bytes)
}

/// Opens the journal in `dir` (created if needed): replays it, rewrites it compactly
/// and opens it for appending. Blocking: run it on the blocking pool.
pub fn open(dir: &Path) -> Result<(File, Replay), SpoolError> {
    std::fs::create_dir_all(dir).map_err(|e| SpoolError::io("create", dir, e))?;
    let path = dir.join(JOURNAL_FILE);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(SpoolError::io("read", &path, e)),
    };
    let replay = replay(&text).map_err(|damage| SpoolError::Damaged {
        path: path.clone(),
        damage,
    })?;
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
    write().map_err(|e| SpoolError::io("rewrite", &path, e))?;
    let file = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| SpoolError::io("open", &path, e))?;
    Ok((file, replay))
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
                image_bytes: Some(1234),
                image_sha256: Some("ab".repeat(32)),
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
                detail: Some("paper jam".into()),
                image: Some(FetchedImage {
                    bytes: 1234,
                    sha256: "ab".repeat(32)
                }),
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
    fn a_printed_line_written_before_images_were_fetched_still_replays() {
        let mut text = lines(&[Entry::Accepted { job: job(1) }]).unwrap();
        let id = Uuid::from_u128(1);
        text.extend_from_slice(
            format!("{{\"event\":\"printed\",\"correlation_id\":\"{id}\",\"failed\":false}}\n")
                .as_bytes(),
        );
        let replay = replay(&text).unwrap();
        assert_eq!(
            replay.jobs[0].printed,
            Some(Outcome {
                failed: false,
                detail: None,
                image: None
            })
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
        let err = replay(&text).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn lines_the_writer_cannot_have_written_are_damage_naming_the_line() {
        let damage = |entries: &[Entry]| replay(&lines(entries).unwrap()).unwrap_err();
        let accepted = Entry::Accepted { job: job(1) };
        let other = Uuid::from_u128(2);
        let orphan = Entry::Reported {
            correlation_id: other,
        };
        let err = damage(&[accepted.clone(), orphan]);
        assert!(
            matches!(err, Damage::NeverAccepted { line: 2, .. }),
            "{err}"
        );
        let err = damage(&[accepted.clone(), accepted]);
        assert!(
            matches!(err, Damage::AcceptedTwice { line: 2, .. }),
            "{err}"
        );
    }
}
