//! The simulated printer itself: its queue, the image it fetches for each job
//! ([`crate::fetch`]) before it reports `printing`, the slow "printing", and the
//! signed callbacks it keeps retrying until print-service takes them. A job whose
//! image it cannot get ends `failed` (`image_unreachable`, or `image_undecodable`
//! for bytes that are not an image) without a `printing` callback.
//!
//! Jobs are deduplicated by correlation id: a job sent twice (a dispatcher retrying
//! after a crash or a lost answer) is acknowledged again but printed once. With
//! `PRINTER_STATE_DIR` the printer keeps its jobs in a journal on disk
//! ([`crate::spool`]): a restarted printer still knows them, prints the ones it had
//! accepted but not printed, and sends the final callbacks it had not delivered.
//! Without it, it forgets everything at exit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pixpress_domain::printer::{
    CallbackStatus, PrintedJob, PrinterCallback, PrinterJob, PrinterJobState, PrinterJobStatus,
};
use pixpress_kit::journal::{Journal, JournalError, JournalSlot, Pending};
use pixpress_kit::request_id::RequestContext;
use pixpress_kit::retry::Backoff;
use pixpress_kit::webhook::{deliver, Delivery, WebhookSecret};
use prometheus::IntCounterVec;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::PrinterError;
use crate::fetch::{FetchedImage, ImageFetcher};
use crate::spool::{self, Entry, Outcome, SpooledJob, JOURNAL_FILE};

/// Between attempts to open a spool that cannot be opened.
const SPOOL_RETRY: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));

pub struct Printer {
    jobs: Mutex<HashMap<Uuid, Tracked>>,
    capacity: Arc<Semaphore>,
    delay_per_copy: Duration,
    accept_delay: Duration,
    fail_rate: f64,
    secret: Option<WebhookSecret>,
    http: reqwest::Client,
    images: ImageFetcher,
    outcomes: IntCounterVec,
    stop: CancellationToken,
    spool: JournalSlot<Entry>,
}

/// A job the printer knows.
struct Tracked {
    job: PrinterJob,
    received: u32,
    printed: u32,
    status: PrinterJobState,
    /// Why it failed, when it did.
    error: Option<String>,
    /// The image fetched for it, once fetched.
    image: Option<FetchedImage>,
    reported: bool,
}

impl Tracked {
    fn new(job: PrinterJob) -> Self {
        Self {
            job,
            received: 1,
            printed: 0,
            status: PrinterJobState::Accepted,
            error: None,
            image: None,
            reported: false,
        }
    }
}

/// A submitted job, noted in memory (its journal line on the way).
enum Registered {
    New(Option<Pending>, OwnedSemaphorePermit),
    Repeat(Option<Pending>),
    Busy,
}

/// A job the printer took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submission {
    /// New: it will be printed.
    Accepted,
    /// Seen before: acknowledged, not printed again.
    Duplicate,
}

impl Printer {
    /// A printer with `config`'s capacity, speed, failure rate and spool, fetching
    /// images with `images`.
    pub fn new(
        config: &crate::Config,
        secret: Option<WebhookSecret>,
        http: reqwest::Client,
        images: ImageFetcher,
        outcomes: IntCounterVec,
        stop: CancellationToken,
    ) -> Self {
        let spool = JournalSlot::new(config.printer_state_dir.clone(), JOURNAL_FILE);
        Self {
            jobs: Mutex::new(HashMap::new()),
            capacity: Arc::new(Semaphore::new(config.printer_capacity as usize)),
            delay_per_copy: config.delay_per_copy(),
            accept_delay: Duration::from_millis(config.printer_accept_delay_ms),
            fail_rate: config.printer_fail_rate.clamp(0.0, 1.0),
            secret,
            http,
            images,
            outcomes,
            stop,
            spool,
        }
    }

    // Every update to the map is a single insert, removal or field write: a poisoned
    // lock still guards consistent data.
    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Tracked>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Readiness: jobs can be taken and recorded.
    pub fn check(&self) -> Result<(), JournalError> {
        self.spool.check()
    }

    /// Opens and replays the spool (if the printer has one), retrying while it cannot
    /// be opened, then resumes the jobs it left unfinished. Returns at once in memory.
    pub async fn open_spool(self: Arc<Self>, stop: CancellationToken) {
        // Restored before the journal takes records, so no submission misses them.
        let opened = self
            .spool
            .open(
                spool::replay,
                SPOOL_RETRY,
                &stop,
                |spooled: Vec<SpooledJob>| (spooled.len(), self.restore(&spooled)),
            )
            .await;
        let (Some((known, unfinished)), Some(dir)) = (opened, self.spool.dir()) else {
            return;
        };
        log::info!(
            "spool {}: {} jobs known, {} to print, {} callbacks to deliver",
            dir.display(),
            known,
            unfinished.iter().filter(|(_, o)| o.is_none()).count(),
            unfinished.iter().filter(|(_, o)| o.is_some()).count(),
        );
        for (job, outcome) in unfinished {
            let printer = Arc::clone(&self);
            tokio::spawn(async move {
                let work = async {
                    match outcome {
                        None => {
                            let Ok(permit) = Arc::clone(&printer.capacity).acquire_owned().await
                            else {
                                return;
                            };
                            printer.print(job, permit).await;
                        }
                        Some(outcome) => printer.deliver(&job, outcome).await,
                    }
                };
                tokio::select! {
                    _ = work => {}
                    _ = printer.stop.cancelled() => {}
                }
            });
        }
    }

    /// Takes the replayed jobs in; returns those to finish: to print (`None`), or
    /// printed with a final callback to deliver.
    fn restore(&self, spooled: &[SpooledJob]) -> Vec<(PrinterJob, Option<Outcome>)> {
        let mut jobs = self.jobs();
        let mut unfinished = Vec::new();
        for spooled in spooled {
            let status = match &spooled.printed {
                None => PrinterJobState::Accepted,
                Some(o) if o.failed => PrinterJobState::Failed,
                Some(_) => PrinterJobState::Completed,
            };
            jobs.insert(
                spooled.job.correlation_id,
                Tracked {
                    job: spooled.job.clone(),
                    received: spooled.received,
                    printed: u32::from(spooled.printed.is_some()),
                    status,
                    error: spooled.printed.as_ref().and_then(|o| o.detail.clone()),
                    image: spooled.printed.as_ref().and_then(|o| o.image.clone()),
                    reported: spooled.reported,
                },
            );
            if !spooled.reported {
                unfinished.push((spooled.job.clone(), spooled.printed.clone()));
            }
        }
        unfinished
    }

    /// Takes a job: new ones are recorded (on disk first, with a spool) and printed.
    pub async fn submit(self: &Arc<Self>, job: PrinterJob) -> Result<Submission, PrinterError> {
        let journal = self
            .spool
            .journal()
            .map_err(PrinterError::SpoolUnavailable)?;
        let id = job.correlation_id;
        let (repeat, recorded, permit) = match self.register(&job, journal) {
            Registered::Busy => return Err(PrinterError::Busy),
            Registered::Repeat(recorded) => (true, recorded, None),
            Registered::New(recorded, permit) => (false, recorded, Some(permit)),
        };
        if let Some(recorded) = recorded {
            if let Err(why) = recorded.written().await {
                if !repeat {
                    // Not on disk: not accepted. The sender will try again.
                    self.jobs().remove(&id);
                }
                return Err(PrinterError::SpoolUnavailable(why));
            }
        }
        let Some(permit) = permit else {
            return Ok(Submission::Duplicate);
        };
        // Printed in the submitting request's context: the image fetch and the
        // callbacks carry its request id and continue its trace.
        let printer = Arc::clone(self);
        tokio::spawn(RequestContext::current().scope(async move {
            tokio::select! {
                _ = printer.print(job, permit) => {}
                _ = printer.stop.cancelled() => {}
            }
        }));
        Ok(Submission::Accepted)
    }

    /// Notes a submitted job in memory and hands its journal entry over, under the
    /// lock: a repeat's line always follows the acceptance it repeats.
    fn register(&self, job: &PrinterJob, journal: Option<&Journal<Entry>>) -> Registered {
        let id = job.correlation_id;
        let mut jobs = self.jobs();
        if let Some(seen) = jobs.get_mut(&id) {
            seen.received += 1;
            let recorded = journal.map(|j| j.append(&Entry::Received { correlation_id: id }));
            return Registered::Repeat(recorded);
        }
        let Ok(permit) = Arc::clone(&self.capacity).try_acquire_owned() else {
            return Registered::Busy;
        };
        let recorded = journal.map(|j| j.append(&Entry::Accepted { job: job.clone() }));
        jobs.insert(id, Tracked::new(job.clone()));
        Registered::New(recorded, permit)
    }

    pub fn accept_delay(&self) -> Duration {
        self.accept_delay
    }

    pub fn list(&self) -> Vec<PrintedJob> {
        let mut jobs: Vec<PrintedJob> = self
            .jobs()
            .values()
            .map(|t| PrintedJob {
                correlation_id: t.job.correlation_id,
                image_url: t.job.image_url.clone(),
                copies: t.job.copies,
                received: t.received,
                printed: t.printed,
                status: t.status,
                reported: t.reported,
                image_bytes: t.image.as_ref().map(|i| i.bytes),
                image_sha256: t.image.as_ref().map(|i| i.sha256.clone()),
            })
            .collect();
        jobs.sort_by_key(|j| j.correlation_id);
        jobs
    }

    /// What became of one job, if the printer knows it (`GET /jobs/{correlation_id}`),
    /// with the size and digest of its image once fetched.
    pub fn status(&self, id: Uuid) -> Option<PrinterJobStatus> {
        self.jobs().get(&id).map(|t| PrinterJobStatus {
            correlation_id: id,
            status: t.status,
            received: t.received,
            printed: t.printed,
            image_bytes: t.image.as_ref().map(|i| i.bytes),
            image_sha256: t.image.as_ref().map(|i| i.sha256.clone()),
            error: t.error.clone(),
        })
    }

    fn set_status(&self, id: Uuid, change: impl FnOnce(&mut Tracked)) {
        if let Some(job) = self.jobs().get_mut(&id) {
            change(job);
        }
    }

    /// Fetches the job's image, prints it, records how it came out and reports that.
    async fn print(&self, job: PrinterJob, permit: OwnedSemaphorePermit) {
        let id = job.correlation_id;
        let outcome = self.fetch_and_print(&job).await;
        self.set_status(id, |j| {
            j.printed += 1;
            j.status = if outcome.failed {
                PrinterJobState::Failed
            } else {
                PrinterJobState::Completed
            };
            j.error = outcome.detail.clone();
        });
        self.outcomes
            .with_label_values(&[if outcome.failed {
                "failed"
            } else {
                "completed"
            }])
            .inc();
        self.spool.record(&outcome.entry(id)).await;
        // The paper is out: the slot is free while we tell print-service.
        drop(permit);
        self.deliver(&job, outcome).await;
    }

    /// The image first: only a job whose image arrived is reported `printing`.
    async fn fetch_and_print(&self, job: &PrinterJob) -> Outcome {
        let id = job.correlation_id;
        let image = match self.images.fetch(id, &job.image_url).await {
            Ok(image) => image,
            Err(e) => {
                log::warn!("job {id} fails, its image did not arrive: {e}");
                return Outcome {
                    failed: true,
                    detail: Some(e.reason().to_owned()),
                    image: None,
                };
            }
        };
        self.set_status(id, |j| {
            j.status = PrinterJobState::Printing;
            j.image = Some(image.clone());
        });
        self.report(job, CallbackStatus::Printing, None).await;
        tokio::time::sleep(self.delay_per_copy * job.copies.max(1) as u32).await;
        let failed = self.fail_rate > 0.0 && rand::random::<f64>() < self.fail_rate;
        Outcome {
            failed,
            detail: failed.then(|| "paper jam".to_owned()),
            image: Some(image),
        }
    }

    /// Sends the final callback of a printed job and records that it was taken.
    async fn deliver(&self, job: &PrinterJob, outcome: Outcome) {
        let status = if outcome.failed {
            CallbackStatus::Failed
        } else {
            CallbackStatus::Completed
        };
        if self.report(job, status, outcome.detail).await {
            self.set_status(job.correlation_id, |j| j.reported = true);
            self.spool
                .record(&Entry::Reported {
                    correlation_id: job.correlation_id,
                })
                .await;
        }
    }

    /// Sends one signed callback, retrying with backoff while print-service is down
    /// or failing; returns whether it was taken.
    async fn report(
        &self,
        job: &PrinterJob,
        status: CallbackStatus,
        detail: Option<String>,
    ) -> bool {
        let body = match serde_json::to_vec(&PrinterCallback { status, detail }) {
            Ok(body) => body,
            Err(e) => {
                log::error!("cannot encode a callback: {e}");
                return false;
            }
        };
        let delivery = deliver(
            &self.http,
            &job.callback_url,
            body,
            self.secret.as_ref(),
            || {},
        )
        .await;
        if delivery != Delivery::Taken {
            log::warn!(
                "callback {status:?} for {} not taken: {delivery:?}",
                job.correlation_id
            );
        }
        delivery == Delivery::Taken
    }
}
