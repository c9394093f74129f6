//! The gateway itself: the jobs it took, and for each one the work of a printer
//! driver — fetch the image, wait until the printer can take it, Validate-Job and
//! Print-Job, follow it with Get-Job-Attributes to its end — and the signed
//! callbacks that tell print-service, retried until taken.
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
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipp::model::{JobState, StatusCode};
use pixpress_domain::ipp::IppPrinter;
use pixpress_domain::printer::{
    CallbackStatus, PrinterCallback, PrinterJob, PrinterJobState, PrinterJobStatus,
};
use pixpress_kit::breaker::{BreakerPolicy, Breakers};
use pixpress_kit::fetch::{fetch_bounded, sha256_hex, FetchLimits};
use pixpress_kit::journal::{JournalError, JournalSlot};
use pixpress_kit::request_id::RequestContext;
use pixpress_kit::retry::Backoff;
use pixpress_kit::webhook::{deliver, Delivery, WebhookSecret};
use prometheus::{IntCounterVec, IntGaugeVec};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::{Config, PrinterUri};
use crate::error::GatewayError;
use crate::fetch::{self, ImageFormat, FORMAT_UNSUPPORTED};
use crate::ipp_client::{retry_delay, Document, IppCallError, IppClient, PrinterAttributes};
use crate::store::{self, Entry, ImageRecord, Restored, JOURNAL_FILE};

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

/// What one IPP exchange came to, for a job's loop.
enum Asked<T> {
    Answer(T),
    /// The printer is away, busy or its breaker is open: ask again after this.
    Away(Duration),
    /// The printer refused the request; it would refuse it again.
    Refused(IppCallError),
}

/// How following a submitted job ended.
enum Watched {
    /// Completed (`None`), or failed with the reason.
    Finished(Option<String>),
    /// The printer no longer has the job.
    Lost,
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

    /// Takes a job from accepted to its end at the printer.
    async fn drive(&self, id: Uuid, mut image: Option<Vec<u8>>, mut maybe_sent: bool) {
        let Some((printer_name, job)) = self.with_job(id, |t| (t.printer.clone(), t.job.clone()))
        else {
            return;
        };
        let Some(printer) = self.printers.get(&printer_name) else {
            let detail = format!("printer_unknown: {printer_name} is no longer configured");
            self.finish(id, Some(detail)).await;
            return;
        };
        loop {
            let Some((finished, submitted)) =
                self.with_job(id, |t| (t.is_finished(), t.submitted.clone()))
            else {
                return;
            };
            if finished {
                return;
            }
            match submitted {
                Some((_, ipp_job_id)) => match self.watch(printer, id, ipp_job_id).await {
                    Watched::Finished(outcome) => {
                        self.finish(id, outcome).await;
                        return;
                    }
                    Watched::Lost => self.lose(id, printer).await,
                },
                None => {
                    let bytes = match image.take() {
                        Some(bytes) => bytes,
                        None => match self.image(id, &job).await {
                            Ok(bytes) => bytes,
                            Err(detail) => {
                                self.finish(id, Some(detail)).await;
                                return;
                            }
                        },
                    };
                    if let Err(detail) = self.send(printer, &job, &bytes, &mut maybe_sent).await {
                        self.finish(id, Some(detail)).await;
                        return;
                    }
                    // Kept while the job lives: a printer that loses it gets it again.
                    image = Some(bytes);
                }
            }
        }
    }

    /// The job's image: kept on disk from an earlier fetch, or fetched now. `Err`
    /// is the job's failure reason.
    async fn image(&self, id: Uuid, job: &PrinterJob) -> Result<Vec<u8>, String> {
        let known = self.with_job(id, |t| t.image.clone()).flatten();
        if let (Some(known), Some(dir)) = (&known, self.state_dir()) {
            let kept = tokio::task::spawn_blocking(move || store::load_image(&dir, id))
                .await
                .ok()
                .flatten();
            if let Some(bytes) = kept.filter(|b| sha256_hex(b) == known.sha256) {
                return Ok(bytes);
            }
        }
        let fetched = fetch_bounded(&self.images, &job.image_url, &self.image_limits)
            .await
            .map_err(|e| {
                log::warn!(
                    "job {id} fails, its image did not arrive from {}: {e}",
                    job.image_url
                );
                e.reason().to_owned()
            })?;
        let format = ImageFormat::sniff(&fetched);
        let record = ImageRecord {
            bytes: fetched.len() as u64,
            sha256: sha256_hex(&fetched),
            format: format.map_or("unknown", ImageFormat::mime).to_owned(),
        };
        self.with_job(id, |t| t.image = Some(record.clone()));
        if format.is_none() {
            log::warn!("job {id} fails: its image is neither JPEG nor PNG");
            return Err(FORMAT_UNSUPPORTED.to_owned());
        }
        if let Some(dir) = self.state_dir() {
            let bytes = fetched.clone();
            let saved =
                tokio::task::spawn_blocking(move || store::save_image(&dir, id, &bytes)).await;
            match saved {
                Ok(Ok(())) => {}
                // Not fatal: the bytes are in memory; after a restart it is fetched again.
                Ok(Err(e)) => log::warn!("cannot keep the image of job {id}: {e}"),
                Err(e) => log::warn!("cannot keep the image of job {id}: {e}"),
            }
        }
        self.store
            .record(&Entry::Fetched {
                correlation_id: id,
                bytes: record.bytes,
                sha256: record.sha256,
                format: record.format,
            })
            .await;
        Ok(fetched)
    }

    /// One IPP exchange with `printer`, behind its breaker.
    async fn ask<T>(
        &self,
        printer: &Printer,
        failures: &mut u32,
        call: impl Future<Output = Result<T, IppCallError>>,
    ) -> Asked<T> {
        if let Err(wait) = self.breakers.allow(&printer.name) {
            return Asked::Away(wait);
        }
        let result = call.await;
        let reachable = !matches!(&result, Err(e) if e.is_transport());
        self.metrics
            .reachable
            .with_label_values(&[&printer.name])
            .set(i64::from(reachable));
        match result {
            Ok(answer) => {
                self.breakers.record_success(&printer.name);
                *failures = 0;
                Asked::Answer(answer)
            }
            Err(e) if e.is_transport() => {
                self.breakers.record_failure(&printer.name);
                *failures += 1;
                log::info!("printer {} is away ({e}); its jobs wait", printer.name);
                Asked::Away(retry_delay(*failures))
            }
            Err(e) => {
                // It answered: it is there, even if it said no.
                self.breakers.record_success(&printer.name);
                if e.waits() {
                    *failures += 1;
                    log::info!("printer {} cannot take work now ({e})", printer.name);
                    Asked::Away(retry_delay(*failures))
                } else {
                    Asked::Refused(e)
                }
            }
        }
    }

    /// The printer's attributes, fresh enough.
    async fn attributes(&self, printer: &Printer, failures: &mut u32) -> Asked<PrinterAttributes> {
        if let Some(fresh) = printer.fresh_attributes() {
            return Asked::Answer(fresh);
        }
        let asked = self
            .ask(printer, failures, self.ipp.printer_attributes(&printer.uri))
            .await;
        if let Asked::Answer(attributes) = &asked {
            printer.remember(attributes);
        }
        asked
    }

    /// Waits until `printer` can take the job, then has it printed (Validate-Job,
    /// Print-Job) and journals its job id. `Err` is the job's failure reason: the
    /// printer will never take it.
    async fn send(
        &self,
        printer: &Printer,
        job: &PrinterJob,
        bytes: &[u8],
        maybe_sent: &mut bool,
    ) -> Result<(), String> {
        let id = job.correlation_id;
        let name = id.to_string();
        let Some(format) = ImageFormat::sniff(bytes) else {
            return Err(FORMAT_UNSUPPORTED.to_owned());
        };
        let mut failures = 0;
        let mut validate = true;
        loop {
            let attributes = match self.attributes(printer, &mut failures).await {
                Asked::Answer(attributes) => attributes,
                Asked::Away(delay) => {
                    tokio::time::sleep(delay).await;
                    continue;
                }
                Asked::Refused(e) => {
                    log::warn!(
                        "printer {} refuses Get-Printer-Attributes: {e}",
                        printer.name
                    );
                    failures += 1;
                    tokio::time::sleep(retry_delay(failures)).await;
                    continue;
                }
            };
            if let Some(why) = attributes.not_ready() {
                failures += 1;
                log::info!("job {id} waits for printer {}: {why}", printer.name);
                tokio::time::sleep(retry_delay(failures)).await;
                continue;
            }
            // No fallback to application/octet-stream, which most printers list: it
            // means "guess the format", and a printer that cannot print a JPEG would
            // guess wrong and print garbage, or nothing, and still call it completed.
            if !attributes
                .document_formats
                .iter()
                .any(|f| f.eq_ignore_ascii_case(format.mime()))
            {
                return Err(unsupported(&attributes.document_formats));
            }
            if *maybe_sent {
                match self
                    .ask(printer, &mut failures, self.ipp.jobs(&printer.uri))
                    .await
                {
                    Asked::Answer(jobs) => {
                        *maybe_sent = false;
                        if let Some(found) = jobs.iter().find(|j| j.name.as_deref() == Some(&name))
                        {
                            log::info!(
                                "job {id} is on printer {} already as job {}; not sending it again",
                                printer.name,
                                found.id
                            );
                            self.submitted(id, printer, found.id).await;
                            return Ok(());
                        }
                    }
                    Asked::Away(delay) => {
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    // A printer without Get-Jobs cannot say; sending is all there is.
                    Asked::Refused(e) => {
                        log::warn!("printer {} cannot list its jobs ({e})", printer.name);
                        *maybe_sent = false;
                    }
                }
            }
            if validate {
                let validation =
                    self.ipp
                        .validate_job(&printer.uri, &name, format.mime(), job.copies);
                match self.ask(printer, &mut failures, validation).await {
                    Asked::Answer(()) => validate = false,
                    Asked::Away(delay) => {
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    // Validate-Job is optional for older printers: Print-Job decides.
                    Asked::Refused(e) if e.is_unsupported_operation() => validate = false,
                    Asked::Refused(e) => return Err(refused(&e, &attributes)),
                }
            }
            let print = self.ipp.print_job(
                &printer.uri,
                &name,
                job.copies,
                Document {
                    bytes,
                    format: format.mime(),
                },
            );
            match self.ask(printer, &mut failures, print).await {
                Asked::Answer(ipp_job_id) => {
                    self.submitted(id, printer, ipp_job_id).await;
                    return Ok(());
                }
                Asked::Away(delay) => {
                    // The request may have reached the printer before the answer was
                    // lost: ask it (Get-Jobs) before sending again.
                    *maybe_sent = true;
                    tokio::time::sleep(delay).await;
                }
                Asked::Refused(e) => return Err(refused(&e, &attributes)),
            }
        }
    }

    async fn submitted(&self, id: Uuid, printer: &Printer, ipp_job_id: i32) {
        let uri = printer.uri.to_string();
        self.with_job(id, |t| t.submitted = Some((uri.clone(), ipp_job_id)));
        log::info!("job {id} is job {ipp_job_id} of printer {}", printer.name);
        self.store
            .record(&Entry::Submitted {
                correlation_id: id,
                printer_uri: uri,
                ipp_job_id,
            })
            .await;
    }

    async fn lose(&self, id: Uuid, printer: &Printer) {
        log::warn!(
            "printer {} no longer has job {id}; sending it again",
            printer.name
        );
        self.with_job(id, |t| t.submitted = None);
        self.store.record(&Entry::Lost { correlation_id: id }).await;
    }

    /// Follows job `ipp_job_id` with Get-Job-Attributes until it ends or the printer
    /// turns out not to have it (any more).
    async fn watch(&self, printer: &Printer, id: Uuid, ipp_job_id: i32) -> Watched {
        let name = id.to_string();
        let mut failures = 0;
        loop {
            let asked = self
                .ask(
                    printer,
                    &mut failures,
                    self.ipp.job_attributes(&printer.uri, ipp_job_id),
                )
                .await;
            match asked {
                Asked::Answer(job) => {
                    // ippeveprinter restarts its ids at 1: the id may be another job's now.
                    if job.name.as_deref().is_some_and(|n| n != name) {
                        return Watched::Lost;
                    }
                    match job.state {
                        Some(JobState::Processing | JobState::ProcessingStopped) => {
                            self.started(id).await
                        }
                        Some(JobState::Completed) => return Watched::Finished(None),
                        Some(state @ (JobState::Canceled | JobState::Aborted)) => {
                            let reasons = job.reasons();
                            let detail = if reasons.is_empty() {
                                let state = if state == JobState::Canceled {
                                    "job-canceled"
                                } else {
                                    "job-aborted"
                                };
                                state.to_owned()
                            } else {
                                reasons
                            };
                            return Watched::Finished(Some(detail));
                        }
                        // Pending or held: it waits its turn.
                        _ => {}
                    }
                    tokio::time::sleep(self.poll).await;
                }
                Asked::Away(delay) => tokio::time::sleep(delay.max(self.poll)).await,
                Asked::Refused(e) if e.is_not_found() => return Watched::Lost,
                Asked::Refused(e) => {
                    log::warn!(
                        "printer {} refuses to tell about job {id}: {e}",
                        printer.name
                    );
                    failures += 1;
                    tokio::time::sleep(retry_delay(failures).max(self.poll)).await;
                }
            }
        }
    }

    /// The printer is printing the job.
    async fn started(&self, id: Uuid) {
        let changed = self.with_job(id, |t| {
            let accepted = t.status == PrinterJobState::Accepted;
            if accepted {
                self.set_status(t, PrinterJobState::Printing);
                wake(t);
            }
            accepted
        });
        if changed == Some(true) {
            self.store
                .record(&Entry::Printing { correlation_id: id })
                .await;
        }
    }

    /// The job's outcome: completed (`None`) or failed with `detail`.
    async fn finish(&self, id: Uuid, detail: Option<String>) {
        let failed = detail.is_some();
        self.with_job(id, |t| {
            let status = if failed {
                PrinterJobState::Failed
            } else {
                PrinterJobState::Completed
            };
            self.set_status(t, status);
            t.error = detail.clone();
            wake(t);
        });
        match &detail {
            Some(why) => log::info!("job {id} failed: {why}"),
            None => log::info!("job {id} completed"),
        }
        self.store
            .record(&Entry::Finished {
                correlation_id: id,
                failed,
                detail,
            })
            .await;
        if let Some(dir) = self.state_dir() {
            let _ = tokio::task::spawn_blocking(move || store::remove_image(&dir, id)).await;
        }
    }

    /// Sends the job's callbacks in order as they become due, until the last.
    async fn report(&self, id: Uuid, mut woken: mpsc::UnboundedReceiver<()>) {
        loop {
            while let Some((job, (status, detail))) = self
                .with_job(id, |t| t.next_callback().map(|next| (t.job.clone(), next)))
                .flatten()
            {
                if !self.deliver(&job, status, detail).await {
                    return;
                }
                self.with_job(id, |t| t.reported.push(status));
                self.store
                    .record(&Entry::Reported {
                        correlation_id: id,
                        status,
                    })
                    .await;
            }
            if self.with_job(id, |t| t.fully_reported()).unwrap_or(true) {
                return;
            }
            if woken.recv().await.is_none() {
                return;
            }
        }
    }

    /// Sends one signed callback, retrying while print-service is down or failing.
    /// `true` once print-service answered it (taken, or refused for good: it would
    /// refuse it again); `false` when the gateway gave up.
    async fn deliver(
        &self,
        job: &PrinterJob,
        status: CallbackStatus,
        detail: Option<String>,
    ) -> bool {
        let label = match status {
            CallbackStatus::Printing => "printing",
            CallbackStatus::Completed => "completed",
            CallbackStatus::Failed => "failed",
        };
        let count = |outcome: &str| {
            self.metrics
                .callbacks
                .with_label_values(&[label, outcome])
                .inc()
        };
        let body = match serde_json::to_vec(&PrinterCallback { status, detail }) {
            Ok(body) => body,
            Err(e) => {
                log::error!("cannot encode a callback: {e}");
                return false;
            }
        };
        let delivery = deliver(
            &self.callbacks,
            &job.callback_url,
            body,
            self.secret.as_ref(),
            || count("retried"),
        )
        .await;
        match delivery {
            Delivery::Taken => count("taken"),
            // print-service would refuse it again: as good as answered.
            Delivery::Refused(_) => count("refused"),
            Delivery::GaveUp => {
                log::error!(
                    "giving up on the {label} callback for {} until a restart",
                    job.correlation_id
                );
                count("gave_up");
            }
        }
        delivery != Delivery::GaveUp
    }
}

fn wake(job: &Tracked) {
    if let Some(wake) = &job.wake {
        let _ = wake.send(());
    }
}

/// The reason of a job whose type its printer does not take.
fn unsupported(formats: &[String]) -> String {
    format!(
        "{FORMAT_UNSUPPORTED}: printer accepts {}",
        formats.join(", ")
    )
}

/// The reason of a job its printer refused (Validate-Job or Print-Job).
fn refused(e: &IppCallError, attributes: &PrinterAttributes) -> String {
    if e.is_format_refused() {
        return unsupported(&attributes.document_formats);
    }
    match e {
        IppCallError::Refused {
            status: StatusCode::ClientErrorAttributesOrValuesNotSupported,
            ..
        } => format!("ipp_refused: the printer does not support this job's settings ({e})"),
        _ => format!("ipp_refused: {e}"),
    }
}
