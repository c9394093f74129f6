//! Reconciliation: no job stays `dispatched` or `printing` forever because a
//! callback never came (a lost callback, a printer that lost its spool).
//!
//! A job at a printer whose deadline passed (`PRINT_JOB_DEADLINE_MS` per copy, from
//! when it reached the printer or last changed) is asked about there with
//! `GET {printer_url}/jobs/{correlation_id}`:
//! - the printer knows it: its state is applied as if its callback had arrived (a
//!   `completed` job passes through `printing`); a state behind or equal to the
//!   job's changes nothing, and the next check is a deadline away;
//! - the printer does not know it (404): the job is sent again under the same
//!   correlation id (a printer that dedups prints it once) and its deadline
//!   restarts; once `DISPATCH_MAX_ATTEMPTS` re-sends are spent, the next 404 fails
//!   it with `printer_lost_job`;
//! - no usable answer (down, timeout, 5xx) or its breaker is open: asked again later
//!   with backoff. A printer that is down never fails a job by itself.
//!
//! Workers in every replica (with `DISPATCH_ENABLED`) claim due jobs with a lease
//! and `SKIP LOCKED`, like the dispatcher. Deadlines come from the clock, not from
//! commits, so nothing announces them: the queue's poll finds them.

use std::sync::Arc;
use std::time::Duration;

use pixpress_domain::job::Evidence;
use pixpress_domain::printer::PrinterJobStatus;
use pixpress_kit::db::{Database, DbError};
use pixpress_kit::queue::{self, QueueWorker};
use pixpress_kit::request_id::RequestContext;
use pixpress_kit::retry::{jitter, Backoff};
use pixpress_kit::server::Background;
use tokio::sync::Notify;

use crate::leases::JobLeases;
use crate::metrics::PrintMetrics;
use crate::print_jobs::checks;
use crate::print_jobs::{self, ClaimedJob, PrinterReport, ReportOutcome, Stage};
use crate::printer::{PrinterClient, SendOutcome, StatusAnswer};

/// The error of a job its printer lost more often than it may be re-sent.
pub const PRINTER_LOST_JOB: &str = "printer_lost_job";
/// Between checks that could not reach the printer.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));

pub struct ReconcilerSettings {
    pub owner: String,
    pub lease: Duration,
    /// Re-sends to a printer that does not know the job before it fails.
    pub max_resends: i32,
    /// A job's deadline at its printer, per copy.
    pub job_deadline: Duration,
}

pub struct Reconciler {
    jobs: JobLeases,
    max_resends: i32,
    job_deadline: Duration,
    printers: Arc<PrinterClient>,
    metrics: PrintMetrics,
}

impl Reconciler {
    pub fn new(
        settings: ReconcilerSettings,
        db: Database,
        printers: Arc<PrinterClient>,
        metrics: PrintMetrics,
    ) -> Self {
        let ReconcilerSettings {
            owner,
            lease,
            max_resends,
            job_deadline,
        } = settings;
        Self {
            jobs: JobLeases::new(Stage::AtPrinter, db, owner, lease, metrics.clone()),
            max_resends,
            job_deadline,
            printers,
            metrics,
        }
    }

    /// Runs the reconciler in `background` with `concurrency` slots, once the schema
    /// is current.
    pub fn start(self: Arc<Self>, background: &mut Background, concurrency: usize) {
        let database = self.jobs.db.clone();
        background.spawn(move |stop| async move {
            if database.wait_until_migrated(&stop).await {
                // Never notified: due checks are found by the poll.
                queue::run(self, concurrency, Arc::new(Notify::new()), stop).await;
            }
        });
    }

    /// Asks the job's printer and records what that came to; returns the outcome's
    /// metric label.
    async fn check(&self, job: &ClaimedJob) -> Result<&'static str, DbError> {
        if let Err(wait) = self.printers.allow(job.printer_id) {
            self.check_later(job, jitter(wait), job.check_failures)
                .await?;
            return Ok("breaker_open");
        }
        match self.printers.status(job).await {
            StatusAnswer::Known(status) => self.apply(job, &status).await,
            StatusAnswer::Unknown => self.resend(job).await,
            StatusAnswer::Unreachable(why) => {
                log::info!(
                    "cannot ask printer {} about job {} ({why}); asking again later",
                    job.printer_id,
                    job.id
                );
                self.back_off(job).await?;
                Ok("unreachable")
            }
        }
    }

    /// The printer's record of the job, applied as its callback would have been.
    async fn apply(
        &self,
        job: &ClaimedJob,
        status: &PrinterJobStatus,
    ) -> Result<&'static str, DbError> {
        let report = PrinterReport {
            correlation_id: job.correlation_id,
            state: status.status.job_state(),
            detail: status.error.clone(),
            evidence: Evidence::PrinterRecord,
        };
        let (db, deadline) = (&self.jobs.db, self.job_deadline);
        let outcome = db
            .with_connection(async |conn| print_jobs::apply_report(conn, report, deadline).await)
            .await?;
        match outcome {
            ReportOutcome::Applied(moves) => {
                for (from, to) in moves {
                    self.metrics.transition(Some(from), to);
                }
                log::info!(
                    "job {} is {} at printer {}: applied, its callback never came",
                    job.id,
                    status.status,
                    job.printer_id
                );
                Ok("applied")
            }
            // The printer is where the job is (or behind it): it is still at work.
            ReportOutcome::Unchanged | ReportOutcome::Illegal(_) | ReportOutcome::NotFound => {
                self.check_later(job, self.deadline_of(job), 0).await?;
                Ok("unchanged")
            }
        }
    }

    /// The printer does not know the job: send it again, or give up on it.
    async fn resend(&self, job: &ClaimedJob) -> Result<&'static str, DbError> {
        if job.resends >= self.max_resends {
            log::warn!(
                "job {} failed: printer {} lost it after {} re-sends",
                job.id,
                job.printer_id,
                job.resends
            );
            self.jobs.fail(job, PRINTER_LOST_JOB).await?;
            return Ok("lost");
        }
        match self.printers.send(job).await {
            SendOutcome::Accepted => {
                let (db, owner) = (&self.jobs.db, self.jobs.owner.as_str());
                let deadline = self.job_deadline;
                db.with_connection(async |conn| {
                    checks::record_resend(conn, job.id, owner, deadline).await
                })
                .await?;
                log::info!(
                    "job {} re-sent to printer {}, which did not know it (re-send {})",
                    job.id,
                    job.printer_id,
                    job.resends + 1
                );
                Ok("resent")
            }
            SendOutcome::Transient(why) => {
                log::info!("job {} could not be re-sent ({why}); later", job.id);
                self.back_off(job).await?;
                Ok("unreachable")
            }
            SendOutcome::Rejected(status) => {
                log::warn!("job {} failed: its printer rejected the re-send", job.id);
                self.jobs
                    .fail(job, &format!("the printer rejected the job ({status})"))
                    .await?;
                Ok("rejected")
            }
        }
    }

    /// One more check that could not reach the printer: the next waits longer.
    async fn back_off(&self, job: &ClaimedJob) -> Result<(), DbError> {
        let failures = job.check_failures + 1;
        self.check_later(job, BACKOFF.jittered(failures as u32), failures)
            .await
    }

    async fn check_later(
        &self,
        job: &ClaimedJob,
        delay: Duration,
        failures: i32,
    ) -> Result<(), DbError> {
        let (db, owner) = (&self.jobs.db, self.jobs.owner.as_str());
        db.with_connection(async |conn| {
            checks::check_later(conn, job.id, owner, delay, failures).await
        })
        .await?;
        Ok(())
    }

    /// `job`'s whole deadline: the setting per copy.
    fn deadline_of(&self, job: &ClaimedJob) -> Duration {
        self.job_deadline * job.copies.max(1) as u32
    }
}

impl QueueWorker for Reconciler {
    type Item = ClaimedJob;
    const WHAT: &'static str = "print jobs to reconcile";

    async fn claim(&self, limit: usize) -> Result<Vec<ClaimedJob>, DbError> {
        self.jobs.claim(limit).await
    }

    async fn work(self: Arc<Self>, job: ClaimedJob) {
        let context = RequestContext::for_item(
            format!("job-{}", job.id.simple()),
            job.traceparent.as_deref(),
        );
        let what = format!("the check of job {}", job.id);
        queue::scoped(context, what, async {
            let outcome = self.check(&job).await?;
            self.metrics.reconciled.with_label_values(&[outcome]).inc();
            Ok(())
        })
        .await
    }
}
