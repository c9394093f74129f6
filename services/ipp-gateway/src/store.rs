//! What the gateway remembers about its jobs, on disk with `IPP_STATE_DIR`: a
//! journal (the kit's [`pixpress_kit::journal`]) of every acknowledged job, the job
//! id its printer gave it, what the printer said about it and which callbacks
//! print-service took; and, beside it, the fetched image of each unfinished job, so
//! a job the printer lost can be sent again without fetching it again.
//!
//! Replaying the journal rebuilds each job's [`Restored`] state; nothing here talks
//! to printers or decides what to do next (that is [`crate::gateway`]).

use std::collections::{hash_map, HashMap};
use std::path::{Path, PathBuf};

use pixpress_domain::printer::{CallbackStatus, PrinterJob};
use pixpress_kit::journal::JournalError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The journal's file in `IPP_STATE_DIR`.
pub const JOURNAL_FILE: &str = "jobs.jsonl";
/// The folder of unfinished jobs' images in `IPP_STATE_DIR`.
const IMAGES_DIR: &str = "images";

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Entry {
    /// A new job for printer `printer`, recorded before its 202.
    Accepted { printer: String, job: PrinterJob },
    /// A job already accepted was sent again (acknowledged, not printed again).
    Received { correlation_id: Uuid },
    /// Its image was fetched (and, with a state dir, kept beside the journal).
    Fetched {
        correlation_id: Uuid,
        bytes: u64,
        sha256: String,
        format: String,
    },
    /// Print-Job succeeded: the printer at `printer_uri` calls it `ipp_job_id`.
    Submitted {
        correlation_id: Uuid,
        printer_uri: String,
        ipp_job_id: i32,
    },
    /// The printer no longer knows the job (it restarted): it is sent again.
    Lost { correlation_id: Uuid },
    /// The printer reported the job processing.
    Printing { correlation_id: Uuid },
    /// The job's outcome is known: completed, or failed with `detail`.
    Finished {
        correlation_id: Uuid,
        failed: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// print-service answered the `status` callback.
    Reported {
        correlation_id: Uuid,
        status: CallbackStatus,
    },
}

impl Entry {
    /// The job the line is about.
    pub fn correlation_id(&self) -> Uuid {
        match self {
            Entry::Accepted { job, .. } => job.correlation_id,
            Entry::Received { correlation_id }
            | Entry::Fetched { correlation_id, .. }
            | Entry::Submitted { correlation_id, .. }
            | Entry::Lost { correlation_id }
            | Entry::Printing { correlation_id }
            | Entry::Finished { correlation_id, .. }
            | Entry::Reported { correlation_id, .. } => *correlation_id,
        }
    }
}

/// The fetched image of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    pub bytes: u64,
    pub sha256: String,
    pub format: String,
}

/// A job as the journal remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub printer: String,
    pub job: PrinterJob,
    pub received: u32,
    pub image: Option<ImageRecord>,
    /// The printer's URI and job id, while it has the job.
    pub submitted: Option<(String, i32)>,
    /// Times Print-Job succeeded for it (more than once only after losses).
    pub sends: u32,
    pub printing: bool,
    /// `Some((failed, detail))` once the outcome is known.
    pub finished: Option<(bool, Option<String>)>,
    pub reported: Vec<CallbackStatus>,
}

impl Restored {
    /// The lines that restore this job, in order.
    fn entries(&self) -> Vec<Entry> {
        let id = self.job.correlation_id;
        let mut entries = vec![Entry::Accepted {
            printer: self.printer.clone(),
            job: self.job.clone(),
        }];
        entries.extend((1..self.received).map(|_| Entry::Received { correlation_id: id }));
        if let Some(image) = &self.image {
            entries.push(Entry::Fetched {
                correlation_id: id,
                bytes: image.bytes,
                sha256: image.sha256.clone(),
                format: image.format.clone(),
            });
        }
        // Sends before the current one were lost: replaying them restores the count.
        let current = u32::from(self.submitted.is_some());
        for _ in current..self.sends {
            entries.push(Entry::Submitted {
                correlation_id: id,
                printer_uri: String::new(),
                ipp_job_id: 0,
            });
            entries.push(Entry::Lost { correlation_id: id });
        }
        if let Some((printer_uri, ipp_job_id)) = &self.submitted {
            entries.push(Entry::Submitted {
                correlation_id: id,
                printer_uri: printer_uri.clone(),
                ipp_job_id: *ipp_job_id,
            });
        }
        if self.printing {
            entries.push(Entry::Printing { correlation_id: id });
        }
        if let Some((failed, detail)) = &self.finished {
            entries.push(Entry::Finished {
                correlation_id: id,
                failed: *failed,
                detail: detail.clone(),
            });
        }
        entries.extend(self.reported.iter().map(|status| Entry::Reported {
            correlation_id: id,
            status: *status,
        }));
        entries
    }
}

/// Folds journal entries into jobs (in the order they were accepted) and the
/// compact entries that restore them; `Err((line, why))` for a line the writer
/// cannot have written.
pub fn replay(entries: Vec<Entry>) -> Result<(Vec<Restored>, Vec<Entry>), (usize, String)> {
    let mut jobs: Vec<Restored> = Vec::new();
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    for (number, entry) in entries.into_iter().enumerate() {
        let line = number + 1;
        if let Entry::Accepted { printer, job } = entry {
            let hash_map::Entry::Vacant(slot) = index.entry(job.correlation_id) else {
                return Err((line, format!("job {} accepted twice", job.correlation_id)));
            };
            slot.insert(jobs.len());
            jobs.push(Restored {
                printer,
                job,
                received: 1,
                image: None,
                submitted: None,
                sends: 0,
                printing: false,
                finished: None,
                reported: Vec::new(),
            });
            continue;
        }
        let id = entry.correlation_id();
        let Some(&i) = index.get(&id) else {
            return Err((line, format!("job {id} was never accepted")));
        };
        let job = &mut jobs[i];
        match entry {
            Entry::Accepted { .. } => {}
            Entry::Received { .. } => job.received += 1,
            Entry::Fetched {
                bytes,
                sha256,
                format,
                ..
            } => {
                job.image = Some(ImageRecord {
                    bytes,
                    sha256,
                    format,
                })
            }
            Entry::Submitted {
                printer_uri,
                ipp_job_id,
                ..
            } => {
                job.sends += 1;
                job.submitted = Some((printer_uri, ipp_job_id));
            }
            Entry::Lost { .. } => {
                job.submitted = None;
                job.printing = false;
            }
            Entry::Printing { .. } => job.printing = true,
            Entry::Finished { failed, detail, .. } => job.finished = Some((failed, detail)),
            Entry::Reported { status, .. } => {
                if !job.reported.contains(&status) {
                    job.reported.push(status);
                }
            }
        }
    }
    let compact = jobs.iter().flat_map(Restored::entries).collect();
    Ok((jobs, compact))
}

/// Where an unfinished job's image is kept.
pub fn image_path(dir: &Path, id: Uuid) -> PathBuf {
    dir.join(IMAGES_DIR).join(id.to_string())
}

/// Writes and syncs a job's image. Blocking: run it on the blocking pool.
pub fn save_image(dir: &Path, id: Uuid, bytes: &[u8]) -> Result<(), JournalError> {
    use std::io::Write;
    let folder = dir.join(IMAGES_DIR);
    std::fs::create_dir_all(&folder).map_err(|e| JournalError::io("create", &folder, e))?;
    let path = image_path(dir, id);
    let fresh = folder.join(format!("{id}.new"));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&fresh)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&fresh, &path)?;
        std::fs::File::open(&folder)?.sync_all()
    };
    write().map_err(|e| JournalError::io("write", &path, e))
}

/// A job's kept image, if it is there. Blocking: run it on the blocking pool.
pub fn load_image(dir: &Path, id: Uuid) -> Option<Vec<u8>> {
    std::fs::read(image_path(dir, id)).ok()
}

/// Drops a finished job's image. Blocking: run it on the blocking pool.
pub fn remove_image(dir: &Path, id: Uuid) {
    let path = image_path(dir, id);
    if let Err(e) = std::fs::remove_file(&path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("cannot remove {}: {e}", path.display());
        }
    }
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
    fn replay_restores_a_job_through_a_loss_and_compacts_to_the_same_state() {
        let id = Uuid::from_u128(1);
        let entries = vec![
            Entry::Accepted {
                printer: "office".into(),
                job: job(1),
            },
            Entry::Received { correlation_id: id },
            Entry::Submitted {
                correlation_id: id,
                printer_uri: "ipp://p/ipp/print".into(),
                ipp_job_id: 7,
            },
            Entry::Printing { correlation_id: id },
            Entry::Reported {
                correlation_id: id,
                status: CallbackStatus::Printing,
            },
            Entry::Lost { correlation_id: id },
            Entry::Submitted {
                correlation_id: id,
                printer_uri: "ipp://p/ipp/print".into(),
                ipp_job_id: 1,
            },
        ];
        let (jobs, compact) = replay(entries).unwrap();
        let restored = &jobs[0];
        assert_eq!(restored.received, 2);
        assert_eq!(restored.sends, 2);
        assert_eq!(
            restored.submitted,
            Some(("ipp://p/ipp/print".to_owned(), 1))
        );
        assert!(!restored.printing, "a lost job starts over");
        assert_eq!(restored.reported, [CallbackStatus::Printing]);
        assert_eq!(replay(compact).unwrap().0, jobs);
    }

    #[test]
    fn lines_about_unknown_jobs_are_damage_naming_the_line() {
        let err = replay(vec![
            Entry::Accepted {
                printer: "a".into(),
                job: job(1),
            },
            Entry::Lost {
                correlation_id: Uuid::from_u128(2),
            },
        ])
        .unwrap_err();
        assert_eq!(err.0, 2);
    }
}
