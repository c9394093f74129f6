//! The dispatcher: background workers that hand committed jobs to their printers.
//!
//! Each replica claims due jobs with `FOR UPDATE SKIP LOCKED` and a lease, sends
//! each to its printer (at most `DISPATCH_CONCURRENCY` at once), and records the
//! outcome: `dispatched`, a retry with exponential backoff and jitter, or `failed`
//! after `DISPATCH_MAX_ATTEMPTS`. A replica that dies leaves its leases to expire;
//! another replica then claims those jobs again, and the printer's deduplication by
//! correlation id keeps a re-sent job from printing twice. A dispatched job is
//! [`crate::reconciler`]'s once its deadline passes without news.
//!
//! It wakes on `NOTIFY print_jobs_queued` (sent after each intake commit and operator
//! retry, coalesced
//! under load: `pixpress_kit::notify::Announcer`), so a new job reaches its printer
//! within milliseconds; a short poll catches retries that come due and leases that
//! expire.
//!
//! The `dispatched` marks of jobs their printers took at about the same time are
//! written together, one statement and one commit for all (`kit::batch`).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use pixpress_domain::JobState;
use pixpress_kit::batch::Batcher;
use pixpress_kit::db::{Database, DbError};
use pixpress_kit::queue::{self, QueueWorker};
use pixpress_kit::request_id::RequestContext;
use pixpress_kit::retry::{jitter, Backoff};
use prometheus::{Histogram, IntCounterVec};
use uuid::Uuid;

use crate::leases::JobLeases;
use crate::metrics::PrintMetrics;
use crate::print_jobs::{self, ClaimedJob, Stage};
use crate::printer::{PrinterClient, SendOutcome, BUSY};

/// Between attempts to hand a job to its printer.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(60));

pub struct DispatcherSettings {
    pub owner: String,
    pub lease: Duration,
    pub max_attempts: i32,
    /// A job's deadline at its printer, per copy: reconciliation asks after it.
    pub job_deadline: Duration,
}

pub struct Dispatcher {
    jobs: JobLeases,
    max_attempts: i32,
    /// Marks taken jobs `dispatched`, many in one statement: true for each whose
    /// lease was still ours.
    dispatched: Batcher<Uuid, bool, DbError>,
    printers: Arc<PrinterClient>,
    metrics: PrintMetrics,
    attempts: IntCounterVec,
    latency: Histogram,
}

impl Dispatcher {
    pub fn new(
        settings: DispatcherSettings,
        db: Database,
        printers: Arc<PrinterClient>,
        metrics: PrintMetrics,
    ) -> Self {
        let DispatcherSettings {
            owner,
            lease,
            max_attempts,
            job_deadline,
        } = settings;
        let dispatched = Batcher::spawn({
            let (db, owner) = (db.clone(), owner.clone());
            move |ids: Vec<Uuid>| {
                let (db, owner) = (db.clone(), owner.clone());
                async move {
                    db.with_connection(async |conn| {
                        print_jobs::mark_dispatched(conn, &ids, &owner, job_deadline).await
                    })
                    .await
                }
            }
        });
        Self {
            jobs: JobLeases::new(Stage::Queued, db, owner, lease, metrics.clone()),
            max_attempts,
            dispatched,
            attempts: metrics.dispatch_attempts.clone(),
            latency: metrics.dispatch_latency.clone(),
            printers,
            metrics,
        }
    }

    async fn dispatch(&self, job: &ClaimedJob) -> Result<(), DbError> {
        let (db, owner) = (&self.jobs.db, self.jobs.owner.as_str());
        if let Err(wait) = self.printers.allow(job.printer_id) {
            self.attempts.with_label_values(&["breaker_open"]).inc();
            let reason = format!(
                "printer {} is failing; waiting before the next try",
                job.printer_id
            );
            return db
                .with_connection(async |conn| {
                    print_jobs::retry_later(conn, job.id, owner, jitter(wait), &reason, false).await
                })
                .await;
        }
        match self.printers.send(job).await {
            SendOutcome::Accepted => {
                self.attempts.with_label_values(&["accepted"]).inc();
                let waited = (Utc::now() - job.created_at).to_std().unwrap_or_default();
                self.latency.observe(waited.as_secs_f64());
                if self.dispatched.submit(job.id).await? {
                    self.metrics
                        .transition(Some(JobState::Queued), JobState::Dispatched);
                }
                Ok(())
            }
            // Not a failed attempt: the printer is up and will take the job once a
            // slot is free; it waits as long as the printer stays full.
            SendOutcome::Transient(BUSY) => {
                self.attempts.with_label_values(&[BUSY]).inc();
                let delay = self.printers.busy_delay(job.printer_id);
                db.with_connection(async |conn| {
                    print_jobs::retry_later(conn, job.id, owner, delay, "printer busy", false).await
                })
                .await
            }
            SendOutcome::Transient(why) => {
                self.attempts.with_label_values(&[why]).inc();
                let attempt = job.attempts + 1;
                if attempt >= self.max_attempts {
                    return self
                        .fail(
                            job,
                            &format!("gave up after {attempt} attempts: printer {why}"),
                        )
                        .await;
                }
                let reason = format!("printer {why} (attempt {attempt})");
                let delay = BACKOFF.jittered(attempt as u32);
                log::info!("job {} not accepted ({why}); retrying in {delay:?}", job.id);
                db.with_connection(async |conn| {
                    print_jobs::retry_later(conn, job.id, owner, delay, &reason, true).await
                })
                .await
            }
            SendOutcome::Rejected(status) => {
                self.attempts.with_label_values(&["rejected"]).inc();
                self.fail(job, &format!("the printer rejected the job ({status})"))
                    .await
            }
        }
    }

    async fn fail(&self, job: &ClaimedJob, reason: &str) -> Result<(), DbError> {
        log::warn!("job {} failed: {reason}", job.id);
        self.jobs.fail(job, reason).await
    }
}

impl QueueWorker for Dispatcher {
    type Item = ClaimedJob;
    const WHAT: &'static str = "print jobs";

    async fn claim(&self, limit: usize) -> Result<Vec<ClaimedJob>, DbError> {
        self.jobs.claim(limit).await
    }

    async fn work(self: Arc<Self>, job: ClaimedJob) {
        let context = RequestContext::for_item(
            format!("job-{}", job.id.simple()),
            job.traceparent.as_deref(),
        );
        let what = format!("the dispatch of job {}", job.id);
        queue::scoped(context, what, self.dispatch(&job)).await
    }
}
