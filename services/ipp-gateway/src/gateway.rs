//! The gateway itself: the jobs it took, and for each one the work of a printer
//! driver — fetch the image, wait until the printer can take it, Validate-Job and
//! Print-Job, follow it with Get-Job-Attributes to its end — and the signed
//! callbacks that tell print-service, retried until taken. This file holds the jobs
//! and their intake; the per-job work is in `gateway/driver.rs`, the callbacks in
//! `gateway/reporter.rs`.
//!
//! Jobs are deduplicated by correlation id across the gateway: a repeat is
//! acknowledged and never sent to a printer again. A printer that is stopped, out
//! of paper or unreachable keeps its jobs waiting (retried with backoff behind a
//! per-printer breaker); nothing fails for that. With `IPP_STATE_DIR` every step is
//! journaled ([`crate::store`]) before it counts, so a restarted gateway resumes
//! following its jobs by their printer job ids, and sends a job again only when its
//! printer lost it (once per loss) — after asking the printer (Get-Jobs) whether it
//! has the job already, when the gateway may have died between Print-Job and
//! journaling its answer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pixpress_domain::ipp::IppPrinter;
use pixpress_domain::printer::{CallbackStatus, PrinterJob, PrinterJobState, PrinterJobStatus};
use pixpress_kit::breaker::{BreakerPolicy, Breakers};
use pixpress_kit::fetch::FetchLimits;
use pixpress_kit::journal::{JournalError, JournalSlot};
use pixpress_kit::request_id::RequestContext;
use pixpress_kit::retry::Backoff;
use pixpress_kit::webhook::WebhookSecret;
use prometheus::{IntCounterVec, IntGaugeVec};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::{Config, PrinterUri};
use crate::error::GatewayError;
use crate::fetch;
use crate::ipp_client::{IppClient, PrinterAttributes};
use crate::store::{self, Entry, ImageRecord, Restored, JOURNAL_FILE};

mod driver;
mod reporter;

/// How long a printer's attributes are trusted before they are asked again.
const ATTRIBUTES_TTL: Duration = Duration::from_secs(2);
/// How long `GET /printers` waits for each printer.
const LISTING_TIMEOUT: Duration = Duration::from_secs(3);
/// Between attempts to open a journal that cannot be opened.
const JOURNAL_RETRY: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
/// A printer away for a while is asked again at least this often.
const BREAKER: BreakerPolicy = BreakerPolicy {
    threshold: 5,
    first_cool_down: Duration::from_secs(1),
    max_cool_down: Duration::from_secs(10),
};

/// The gateway's own metrics.
pub struct Metrics {
    /// Jobs by `state` (accepted, printing, completed, failed).
    pub jobs: IntGaugeVec,
    /// Callbacks by `status` and `outcome` (taken, refused, retried, gave_up).
    pub callbacks: IntCounterVec,
    /// 1 when `printer` answered its last IPP request, 0 when it did not.
    pub reachable: IntGaugeVec,
    /// Breaker state by `printer`: 0 closed, 1 half-open, 2 open.
    pub breaker: IntGaugeVec,
}

/// A configured printer and what it last said about itself.
struct Printer {
    name: String,
    uri: PrinterUri,
    seen: Mutex<Option<(Instant, PrinterAttributes)>>,
}

impl Printer {
    fn fresh_attributes(&self) -> Option<PrinterAttributes> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.as_ref()
            .filter(|(at, _)| at.elapsed() < ATTRIBUTES_TTL)
            .map(|(_, attributes)| attributes.clone())
    }

    fn remember(&self, attributes: &PrinterAttributes) {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), attributes.clone()));
    }
}

/// A job the gateway knows.
struct Tracked {
    printer: String,
    job: PrinterJob,
    received: u32,
    status: PrinterJobState,
    image: Option<ImageRecord>,
    /// The printer's URI and job id, while the printer has the job.
    submitted: Option<(String, i32)>,
    /// Why it failed, when it did.
    error: Option<String>,
    /// Callbacks print-service answered.
    reported: Vec<CallbackStatus>,
    /// Wakes the job's reporter when there may be a callback to send.
    wake: Option<mpsc::UnboundedSender<()>>,
}

impl Tracked {
    fn new(printer: &str, job: PrinterJob) -> Self {
        Self {
            printer: printer.to_owned(),
            job,
            received: 1,
            status: PrinterJobState::Accepted,
            image: None,
            submitted: None,
            error: None,
            reported: Vec::new(),
            wake: None,
        }
    }

    fn restored(restored: Restored) -> Self {
        let (status, error) = match restored.finished {
            Some((true, detail)) => (PrinterJobState::Failed, detail),
            Some((false, _)) => (PrinterJobState::Completed, None),
            None if restored.printing => (PrinterJobState::Printing, None),
            None => (PrinterJobState::Accepted, None),
        };
        Self {
            printer: restored.printer,
            job: restored.job,
            received: restored.received,
            status,
            image: restored.image,
            submitted: restored.submitted,
            error,
            reported: restored.reported,
            wake: None,
        }
    }

    fn is_finished(&self) -> bool {
        matches!(
            self.status,
            PrinterJobState::Completed | PrinterJobState::Failed
        )
    }

    /// The callback to send next, in order: `printing` always precedes `completed`
    /// (a job can finish between two polls, but print-service's job must go
    /// through printing).
    fn next_callback(&self) -> Option<(CallbackStatus, Option<String>)> {
        let told = |status| self.reported.contains(&status);
        match self.status {
            PrinterJobState::Accepted => None,
            PrinterJobState::Printing | PrinterJobState::Completed
                if !told(CallbackStatus::Printing) =>
            {
                Some((CallbackStatus::Printing, None))
            }
            PrinterJobState::Printing => None,
            PrinterJobState::Completed => {
                (!told(CallbackStatus::Completed)).then_some((CallbackStatus::Completed, None))
            }
            PrinterJobState::Failed => (!told(CallbackStatus::Failed))
                .then(|| (CallbackStatus::Failed, self.error.clone())),
        }
    }

    fn fully_reported(&self) -> bool {
        self.is_finished() && self.next_callback().is_none()
    }
}

/// A submitted job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submission {
    /// New: it will be printed.
    Accepted,
    /// Seen before: acknowledged, not sent to a printer again.
    Duplicate,
}

pub struct Gateway {
    printers: HashMap<String, Printer>,
    /// Printer names in configuration order, for listings.
    order: Vec<String>,
    jobs: Mutex<HashMap<Uuid, Tracked>>,
    store: JournalSlot<Entry>,
    ipp: IppClient,
    images: reqwest::Client,
    callbacks: reqwest::Client,
    secret: Option<WebhookSecret>,
    breakers: Breakers<String>,
    poll: Duration,
    image_limits: FetchLimits,
    metrics: Metrics,
    stop: CancellationToken,
}

impl Gateway {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: &Config,
        secret: Option<WebhookSecret>,
        ipp: IppClient,
        images: reqwest::Client,
        callbacks: reqwest::Client,
        metrics: Metrics,
        stop: CancellationToken,
    ) -> Self {
        if config.ipp_state_dir.is_none() {
            log::warn!("IPP_STATE_DIR is not set: jobs are kept in memory and lost at exit");
        }
        let store = JournalSlot::new(config.ipp_state_dir.clone(), JOURNAL_FILE);
        let printers = config
            .ipp_printers
            .0
            .iter()
            .map(|entry| {
                (
                    entry.name.clone(),
                    Printer {
                        name: entry.name.clone(),
                        uri: entry.uri.clone(),
                        seen: Mutex::new(None),
                    },
                )
            })
            .collect();
        for state in ["accepted", "printing", "completed", "failed"] {
            metrics.jobs.with_label_values(&[state]).set(0);
        }
        Self {
            printers,
            order: config
                .ipp_printers
                .0
                .iter()
                .map(|e| e.name.clone())
                .collect(),
            jobs: Mutex::new(HashMap::new()),
            store,
            ipp,
            images,
            callbacks,
            secret,
            breakers: Breakers::with_policy(metrics.breaker.clone(), BREAKER),
            poll: config.poll_interval(),
            image_limits: fetch::limits(
                config.ipp_max_image_bytes,
                Duration::from_millis(config.ipp_fetch_timeout_ms),
            ),
            metrics,
            stop,
        }
    }

    // Every update to the map is a field write or an insert/removal: a poisoned lock
    // still guards consistent data.
    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Tracked>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_job<T>(&self, id: Uuid, f: impl FnOnce(&mut Tracked) -> T) -> Option<T> {
        self.jobs().get_mut(&id).map(f)
    }

    /// Moves a job to `status`, keeping the jobs-by-state gauge exact.
    fn set_status(&self, job: &mut Tracked, status: PrinterJobState) {
        self.metrics
            .jobs
            .with_label_values(&[job.status.as_str()])
            .dec();
        self.metrics
            .jobs
            .with_label_values(&[status.as_str()])
            .inc();
        job.status = status;
    }

    /// Readiness: jobs can be taken and recorded. Printers are not checked: one that
    /// is off keeps its jobs waiting, and the others still print.
    pub fn check(&self) -> Result<(), JournalError> {
        self.store.check()
    }

    fn state_dir(&self) -> Option<PathBuf> {
        self.store.dir().map(Path::to_path_buf)
    }

    /// Opens and replays the journal (with `IPP_STATE_DIR`), retrying while it cannot
    /// be opened, then resumes every job left unfinished or unreported.
    pub async fn open_store(self: Arc<Self>, stop: CancellationToken) {
        // Restored before the journal takes records, so no submission misses them.
        let opened = self
            .store
            .open(
                store::replay,
                JOURNAL_RETRY,
                &stop,
                |restored: Vec<Restored>| self.restore(restored),
            )
            .await;
        let (Some(resume), Some(dir)) = (opened, self.store.dir()) else {
            return;
        };
        log::info!(
            "job journal {}: {} jobs to resume",
            dir.display(),
            resume.len()
        );
        for id in resume {
            // A job with no printer job id may have been sent just before a crash.
            self.spawn_work(id, None, true);
        }
    }

    /// Takes the replayed jobs in; returns those to resume (unfinished or unreported).
    fn restore(&self, restored: Vec<Restored>) -> Vec<Uuid> {
        let mut resume = Vec::new();
        let mut jobs = self.jobs();
        for job in restored {
            let id = job.job.correlation_id;
            let tracked = Tracked::restored(job);
            self.metrics
                .jobs
                .with_label_values(&[tracked.status.as_str()])
                .inc();
            if !tracked.fully_reported() {
                resume.push(id);
            }
            jobs.insert(id, tracked);
        }
        resume
    }

    /// Takes a job for printer `printer`: new ones are recorded (on disk first, with
    /// a state dir) and then printed.
    pub async fn submit(
        self: &Arc<Self>,
        printer: &str,
        job: PrinterJob,
    ) -> Result<Submission, GatewayError> {
        if !self.printers.contains_key(printer) {
            return Err(GatewayError::UnknownPrinter(printer.to_owned()));
        }
        let journal = self
            .store
            .journal()
            .map_err(GatewayError::JournalUnavailable)?;
        let id = job.correlation_id;
        let (repeat, recorded) = {
            let mut jobs = self.jobs();
            match jobs.get_mut(&id) {
                Some(seen) => {
                    seen.received += 1;
                    let entry = Entry::Received { correlation_id: id };
                    (true, journal.map(|j| j.append(&entry)))
                }
                None => {
                    let entry = Entry::Accepted {
                        printer: printer.to_owned(),
                        job: job.clone(),
                    };
                    let recorded = journal.map(|j| j.append(&entry));
                    jobs.insert(id, Tracked::new(printer, job));
                    self.metrics.jobs.with_label_values(&["accepted"]).inc();
                    (false, recorded)
                }
            }
        };
        if let Some(recorded) = recorded {
            if let Err(why) = recorded.written().await {
                if !repeat && self.jobs().remove(&id).is_some() {
                    // Not on disk: not accepted. The sender will try again.
                    self.metrics.jobs.with_label_values(&["accepted"]).dec();
                }
                return Err(GatewayError::JournalUnavailable(why));
            }
        }
        if repeat {
            return Ok(Submission::Duplicate);
        }
        self.spawn_work(id, None, false);
        Ok(Submission::Accepted)
    }

    /// What became of the job sent under `id`, to whichever printer.
    pub fn status(&self, id: Uuid) -> Option<PrinterJobStatus> {
        self.jobs().get(&id).map(|t| PrinterJobStatus {
            correlation_id: id,
            status: t.status,
            received: t.received,
            printed: u32::from(t.status == PrinterJobState::Completed),
            image_bytes: t.image.as_ref().map(|i| i.bytes),
            image_sha256: t.image.as_ref().map(|i| i.sha256.clone()),
            error: t.error.clone(),
        })
    }

    pub fn knows_printer(&self, name: &str) -> bool {
        self.printers.contains_key(name)
    }

    /// Every printer as it answers now (each asked at most [`LISTING_TIMEOUT`]).
    pub async fn printers(&self) -> Vec<IppPrinter> {
        let asks = self
            .order
            .iter()
            .filter_map(|name| self.printers.get(name))
            .map(|printer| async move {
                let answer = match printer.fresh_attributes() {
                    Some(fresh) => Ok(fresh),
                    None => {
                        let ask = self.ipp.printer_attributes(&printer.uri);
                        match tokio::time::timeout(LISTING_TIMEOUT, ask).await {
                            Ok(Ok(attributes)) => {
                                printer.remember(&attributes);
                                Ok(attributes)
                            }
                            Ok(Err(e)) => Err(e.to_string()),
                            Err(_) => Err(format!("no answer within {LISTING_TIMEOUT:?}")),
                        }
                    }
                };
                self.metrics
                    .reachable
                    .with_label_values(&[&printer.name])
                    .set(i64::from(answer.is_ok()));
                match answer {
                    Ok(attributes) => IppPrinter {
                        name: printer.name.clone(),
                        uri: printer.uri.to_string(),
                        reachable: true,
                        printer_state: attributes.state_name().map(str::to_owned),
                        state_reasons: attributes.state_reasons,
                        accepting_jobs: attributes.accepting_jobs,
                        document_formats: attributes.document_formats,
                        error: None,
                    },
                    Err(error) => IppPrinter {
                        name: printer.name.clone(),
                        uri: printer.uri.to_string(),
                        reachable: false,
                        printer_state: None,
                        state_reasons: Vec::new(),
                        accepting_jobs: None,
                        document_formats: Vec::new(),
                        error: Some(error),
                    },
                }
            });
        futures_util::future::join_all(asks).await
    }

    /// Starts the job's driver and its reporter, both stopped with the gateway, in
    /// the current request context (the submitting request's, none on resumption):
    /// the image fetch, the IPP calls and the callbacks continue its trace.
    fn spawn_work(self: &Arc<Self>, id: Uuid, image: Option<Vec<u8>>, maybe_sent: bool) {
        let (wake, woken) = mpsc::unbounded_channel();
        self.with_job(id, |t| t.wake = Some(wake));
        let context = RequestContext::current();
        let gateway = Arc::clone(self);
        tokio::spawn(context.clone().scope(async move {
            tokio::select! {
                _ = gateway.report(id, woken) => {}
                _ = gateway.stop.cancelled() => {}
            }
        }));
        let gateway = Arc::clone(self);
        tokio::spawn(context.scope(async move {
            tokio::select! {
                _ = gateway.drive(id, image, maybe_sent) => {}
                _ = gateway.stop.cancelled() => {}
            }
        }));
    }
}

fn wake(job: &Tracked) {
    if let Some(wake) = &job.wake {
        let _ = wake.send(());
    }
}
