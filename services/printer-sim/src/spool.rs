//! The printer's spool on disk (`PRINTER_STATE_DIR`): an append-only journal of the
//! jobs it accepted, printed and reported, so a printer that crashes or restarts
//! still knows every job it acknowledged — it does not print a re-sent job twice, and
//! it finishes the jobs it had accepted but not yet printed.
//!
//! The journal is `journal.jsonl`, one JSON [`Entry`] per line, kept by the kit's
//! [`pixpress_kit::journal`] (ordered, batched, synced writes off the runtime; a torn
//! last line dropped at start, then a compact rewrite; out of service after the first
//! failed write). A job's `accepted` line is on disk before the printer answers 202.
//! What is printer-sim's own is here: what the lines mean, and [`replay`], which
//! rebuilds the jobs and refuses lines the printer cannot have written (a second
//! acceptance of a job, news of a job never accepted): then the file was damaged, and
//! the spool stays unavailable and says where.
//!
//! When a write fails the spool goes out of service (the printer answers 503 and
//! `/ready` says why) until the printer is restarted, rather than acknowledge a job
//! it might forget.

use std::collections::hash_map::{self, HashMap};

use pixpress_domain::printer::PrinterJob;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::fetch::FetchedImage;

/// The journal's file name inside `PRINTER_STATE_DIR`.
pub const JOURNAL_FILE: &str = "journal.jsonl";

/// A line the printer cannot have written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    #[error("it accepts job {0} a second time")]
    AcceptedTwice(Uuid),
    #[error("it is about job {0}, which no earlier line accepted")]
    NeverAccepted(Uuid),
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

/// The journal's fold (for [`pixpress_kit::journal::open`]): the jobs its entries
/// describe, in the order they were accepted, and the entries that restore them
/// compactly. A line the printer cannot have written is refused with its number.
pub fn replay(entries: Vec<Entry>) -> Result<(Vec<SpooledJob>, Vec<Entry>), (usize, String)> {
    let jobs = jobs(entries).map_err(|(line, damage)| (line, damage.to_string()))?;
    let compact = jobs.iter().flat_map(SpooledJob::entries).collect();
    Ok((jobs, compact))
}

/// Rebuilds the jobs; an error names the first entry (from 1) the writer cannot have
/// written.
fn jobs(entries: Vec<Entry>) -> Result<Vec<SpooledJob>, (usize, Damage)> {
    let mut jobs: Vec<SpooledJob> = Vec::new();
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    for (number, entry) in entries.into_iter().enumerate() {
        let number = number + 1;
        // The writer notes a job's acceptance before anything else about it.
        let accepted = |correlation_id: Uuid| match index.get(&correlation_id) {
            Some(&i) => Ok(i),
            None => Err((number, Damage::NeverAccepted(correlation_id))),
        };
        match entry {
            Entry::Accepted { job } => {
                let correlation_id = job.correlation_id;
                let hash_map::Entry::Vacant(slot) = index.entry(correlation_id) else {
                    return Err((number, Damage::AcceptedTwice(correlation_id)));
                };
                slot.insert(jobs.len());
                jobs.push(SpooledJob {
                    job,
                    received: 1,
                    printed: None,
                    reported: false,
                });
            }
            Entry::Received { correlation_id } => {
                jobs[accepted(correlation_id)?].received += 1;
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
                jobs[accepted(correlation_id)?].printed = Some(Outcome {
                    failed,
                    detail,
                    image,
                });
            }
            Entry::Reported { correlation_id } => {
                jobs[accepted(correlation_id)?].reported = true;
            }
        }
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use pixpress_kit::journal::{self, JournalError};

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
        let entries = vec![
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
        let (jobs, compact) = replay(entries).unwrap();
        let ids: Vec<_> = jobs.iter().map(|j| j.job.correlation_id).collect();
        assert_eq!(ids, [Uuid::from_u128(2), Uuid::from_u128(1)]);
        let first = &jobs[0];
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
        assert_eq!(jobs[1].printed, None);
        // What a compaction writes replays to the same jobs.
        assert_eq!(replay(compact).unwrap().0, jobs);
    }

    #[test]
    fn a_printed_line_written_before_images_were_fetched_still_replays() {
        let mut text = journal::lines(&[Entry::Accepted { job: job(1) }]).unwrap();
        let id = Uuid::from_u128(1);
        text.extend_from_slice(
            format!("{{\"event\":\"printed\",\"correlation_id\":\"{id}\",\"failed\":false}}\n")
                .as_bytes(),
        );
        let entries = journal::parse::<Entry>(&text).unwrap().entries;
        let (jobs, _) = replay(entries).unwrap();
        assert_eq!(
            jobs[0].printed,
            Some(Outcome {
                failed: false,
                detail: None,
                image: None
            })
        );
    }

    #[test]
    fn lines_the_writer_cannot_have_written_are_damage_naming_the_line() {
        let accepted = Entry::Accepted { job: job(1) };
        let orphan = Entry::Reported {
            correlation_id: Uuid::from_u128(2),
        };
        for (entries, says) in [
            (vec![accepted.clone(), orphan], "no earlier line accepted"),
            (vec![accepted.clone(), accepted], "a second time"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(JOURNAL_FILE);
            std::fs::write(&path, journal::lines(&entries).unwrap()).unwrap();
            let err = journal::open(dir.path(), JOURNAL_FILE, replay).unwrap_err();
            assert!(
                matches!(&err, JournalError::Damaged { line: 2, .. }),
                "{err}"
            );
            assert!(err.to_string().contains(says), "{err}");
            // The damaged file is left as it was, for an operator to look at.
            assert_eq!(
                std::fs::read(&path).unwrap(),
                journal::lines(&entries).unwrap()
            );
        }
    }
}
