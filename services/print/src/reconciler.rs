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
//! [`watch_job_ages`] keeps `pixpress_print_oldest_job_age_seconds` current.

use std::sync::Arc;
use std::time::Duration;

use pixpress_domain::job::Evidence;
use pixpress_domain::printer::PrinterJobStatus;
use pixpress_domain::JobState;
use pixpress_kit::db::{Database, DbError};
use pixpress_kit::queue::{self, QueueWorker};
use pixpress_kit::retry::{jitter, Backoff};
use pixpress_kit::server::Background;
use prometheus::IntGaugeVec;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::PrintMetrics;
use crate::print_jobs::checks;
use crate::print_jobs::{self, ClaimedJob, PrinterReport, ReportOutcome};
use crate::printer::{PrinterClient, SendOutcome, StatusAnswer};

/// The error of a job its printer lost more often than it may be re-sent.
pub const PRINTER_LOST_JOB: &str = "printer_lost_job";
/// Between checks that could not reach the printer.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
/// How often the oldest-job gauge is refreshed.
const AGE_REFRESH: Duration = Duration::from_secs(5);

pub struct ReconcilerSettings {
    pub owner: String,
    pub lease: Duration,
    /// Re-sends to a printer that does not know the job before it fails.
    pub max_resends: i32,
    /// A job's deadline at its printer, per copy.
    pub job_deadline: Duration,
}

pub struct Reconciler {
    settings: ReconcilerSettings,
    db: Database,
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
        Self {
            settings,
            db,
            printers,
            metrics,
        }
    }

    /// Runs the reconciler in `background` with `concurrency` slots, once the schema
    /// is current.
    pub fn start(self: Arc<Self>, background: &mut Background, concurrency: usize) {
        let database = self.db.clone();
        background.spawn(move |stop| async move {
            if database.wait_until_migrated(&stop).await {
                // Never notified: due checks are found by the poll.
                queue::run(self, concurrency, Arc::new(Notify::new()), stop).await;
            }
        });
    }

    async fn reconcile(&self, job: ClaimedJob) {
        let scope = format!("job-{}", job.id.simple());
        pixpress_kit::request_id::scope(scope, async {
            match self.check(&job).await {
                Ok(outcome) => self.metrics.reconciled.with_label_values(&[outcome]).inc(),
                // The lease will expire and the job will be checked again.
                Err(e) => log::error!("could not record the check of job {}: {e}", job.id),
            }
        })
        .await
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
            state: status.status.job_state(),
            detail: status.error.as_deref(),
            evidence: Evidence::PrinterRecord,
        };
        let deadline = self.settings.job_deadline;
        let outcome = self
            .db
            .within(async {
                let mut conn = self.db.get().await?;
                print_jobs::apply_report(&mut conn, job.correlation_id, report, deadline).await
            })
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
        if job.resends >= self.settings.max_resends {
            log::warn!(
                "job {} failed: printer {} lost it after {} re-sends",
                job.id,
                job.printer_id,
                job.resends
            );
            self.fail(job, PRINTER_LOST_JOB).await?;
            return Ok("lost");
        }
        match self.printers.send(job).await {
            SendOutcome::Accepted => {
                let (owner, deadline) = (&self.settings.owner, self.settings.job_deadline);
                self.db
                    .within(async {
                        let conn = self.db.get().await?;
                        checks::record_resend(&*conn, job.id, owner, deadline).await
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
                self.fail(job, &format!("the printer rejected the job ({status})"))
                    .await?;
                Ok("rejected")
            }
        }
    }

    async fn fail(&self, job: &ClaimedJob, reason: &str) -> Result<(), DbError> {
        let owner = &self.settings.owner;
        let failed = self
            .db
            .within(async {
                let conn = self.db.get().await?;
                checks::mark_failed(&*conn, job.id, owner, reason).await
            })
            .await?;
        if failed {
            self.metrics.transition(Some(job.state), JobState::Failed);
        }
        Ok(())
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
        let owner = &self.settings.owner;
        self.db
            .within(async {
                let conn = self.db.get().await?;
                checks::check_later(&*conn, job.id, owner, delay, failures).await
            })
            .await?;
        Ok(())
    }

    /// `job`'s whole deadline: the setting per copy.
    fn deadline_of(&self, job: &ClaimedJob) -> Duration {
        self.settings.job_deadline * job.copies.max(1) as u32
    }
}

impl QueueWorker for Reconciler {
    type Item = ClaimedJob;
    const WHAT: &'static str = "print jobs to reconcile";

    async fn claim(&self, limit: usize) -> Result<Vec<ClaimedJob>, DbError> {
        self.db
            .within(async {
                let conn = self.db.get().await?;
                checks::claim_due(
                    &*conn,
                    &self.settings.owner,
                    self.settings.lease,
                    limit as i64,
                )
                .await
            })
            .await
    }

    async fn work(self: Arc<Self>, job: ClaimedJob) {
        self.reconcile(job).await
    }
}

/// Keeps `gauge` (`pixpress_print_oldest_job_age_seconds{state}`) at the age of the
/// oldest job in each state still on its way, refreshed every few seconds off the
/// scrape path. While the database cannot answer, the last values stay.
pub async fn watch_job_ages(db: Database, gauge: IntGaugeVec, stop: CancellationToken) {
    if !db.wait_until_migrated(&stop).await {
        return;
    }
    loop {
        let ages = db
            .within(async {
                let conn = db.get().await?;
                checks::oldest_ages(&*conn).await
            })
            .await;
        match ages {
            Ok(ages) => {
                for (state, age) in ages {
                    gauge.with_label_values(&[state.as_str()]).set(age as i64);
                }
            }
            Err(e) => log::debug!("cannot read the oldest jobs' ages: {e}"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(AGE_REFRESH) => {}
        }
    }
}
