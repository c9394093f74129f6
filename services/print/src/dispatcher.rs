//! The dispatcher: background workers that hand committed jobs to their printers.
//!
//! Each replica claims due jobs with `FOR UPDATE SKIP LOCKED` and a lease, sends
//! each to its printer (at most `DISPATCH_CONCURRENCY` at once), and records the
//! outcome: `dispatched`, a retry with exponential backoff and jitter, or `failed`
//! after `DISPATCH_MAX_ATTEMPTS`. A replica that dies leaves its leases to expire;
//! another replica then claims those jobs again, and the printer's deduplication by
//! correlation id keeps a re-sent job from printing twice.
//!
//! It wakes on `NOTIFY print_jobs_queued` (sent after each intake commit, coalesced
//! under load: `pixpress_kit::notify::Announcer`), so a new job reaches its printer
//! within milliseconds; a short poll catches retries that come due and leases that
//! expire.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use pixpress_domain::printer::PrinterJob;
use pixpress_domain::JobState;
use pixpress_kit::client::is_transient;
use pixpress_kit::db::{Database, DbError};
use pixpress_kit::queue::QueueWorker;
use pixpress_kit::retry::{jitter, Backoff};
use prometheus::{Histogram, IntCounterVec};
use reqwest::StatusCode;

use crate::breaker::Breakers;
use crate::metrics::PrintMetrics;
use crate::print_jobs::{self, ClaimedJob};

/// Between attempts to hand a job to its printer.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(60));

pub struct DispatcherSettings {
    pub owner: String,
    pub lease: Duration,
    pub max_attempts: i32,
    pub public_url: String,
    pub send_timeout: Duration,
}

pub struct Dispatcher {
    settings: DispatcherSettings,
    db: Database,
    http: reqwest::Client,
    breakers: Breakers,
    metrics: PrintMetrics,
    attempts: IntCounterVec,
    latency: Histogram,
}

/// What one send came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SendOutcome {
    Accepted,
    /// Worth retrying: the printer is down, busy or failing.
    Transient(&'static str),
    /// The printer refused the job itself: retrying will not help.
    Rejected(u16),
}

impl Dispatcher {
    pub fn new(
        settings: DispatcherSettings,
        db: Database,
        http: reqwest::Client,
        metrics: PrintMetrics,
    ) -> Self {
        Self {
            breakers: Breakers::new(metrics.breaker_state.clone()),
            attempts: metrics.dispatch_attempts.clone(),
            latency: metrics.dispatch_latency.clone(),
            settings,
            db,
            http,
            metrics,
        }
    }

    async fn dispatch(&self, job: ClaimedJob) {
        let scope = format!("job-{}", job.id.simple());
        pixpress_kit::request_id::scope(scope, async {
            if let Err(e) = self.dispatch_claimed(&job).await {
                // The lease will expire and the job will be claimed again.
                log::error!("could not record the dispatch of job {}: {e}", job.id);
            }
        })
        .await
    }

    async fn dispatch_claimed(&self, job: &ClaimedJob) -> Result<(), DbError> {
        let owner = self.settings.owner.as_str();
        if let Err(wait) = self.breakers.allow(job.printer_id) {
            self.attempts.with_label_values(&["breaker_open"]).inc();
            let conn = self.db.get().await?;
            let reason = format!(
                "printer {} is failing; waiting before the next try",
                job.printer_id
            );
            return print_jobs::retry_later(&*conn, job.id, owner, jitter(wait), &reason, false)
                .await;
        }
        let outcome = self.send(job).await;
        let conn = self.db.get().await?;
        match outcome {
            SendOutcome::Accepted => {
                self.breakers.record_success(job.printer_id);
                self.attempts.with_label_values(&["accepted"]).inc();
                let waited = (Utc::now() - job.created_at).to_std().unwrap_or_default();
                self.latency.observe(waited.as_secs_f64());
                if print_jobs::mark_dispatched(&*conn, job.id, owner).await? {
                    self.metrics
                        .transition(Some(JobState::Queued), JobState::Dispatched);
                }
                Ok(())
            }
            SendOutcome::Transient(why) => {
                self.breakers.record_failure(job.printer_id);
                self.attempts.with_label_values(&[why]).inc();
                let attempt = job.attempts + 1;
                let reason = format!("printer {why} (attempt {attempt})");
                if attempt >= self.settings.max_attempts {
                    self.fail(
                        &conn,
                        job,
                        &format!("gave up after {attempt} attempts: printer {why}"),
                    )
                    .await
                } else {
                    let delay = BACKOFF.jittered(attempt as u32);
                    log::info!("job {} not accepted ({why}); retrying in {delay:?}", job.id);
                    print_jobs::retry_later(&*conn, job.id, owner, delay, &reason, true).await
                }
            }
            SendOutcome::Rejected(status) => {
                self.attempts.with_label_values(&["rejected"]).inc();
                self.fail(
                    &conn,
                    job,
                    &format!("the printer rejected the job ({status})"),
                )
                .await
            }
        }
    }

    async fn fail(
        &self,
        conn: &tokio_postgres::Client,
        job: &ClaimedJob,
        reason: &str,
    ) -> Result<(), DbError> {
        log::warn!("job {} failed: {reason}", job.id);
        if print_jobs::mark_failed(conn, job.id, &self.settings.owner, reason).await? {
            self.metrics
                .transition(Some(JobState::Queued), JobState::Failed);
        }
        Ok(())
    }

    async fn send(&self, job: &ClaimedJob) -> SendOutcome {
        let body = PrinterJob {
            correlation_id: job.correlation_id,
            image_url: job.image_url.clone(),
            copies: job.copies,
            callback_url: format!(
                "{}/print/callbacks/{}",
                self.settings.public_url.trim_end_matches('/'),
                job.correlation_id
            ),
        };
        let url = format!("{}/jobs", job.printer_url.trim_end_matches('/'));
        let sent = self
            .http
            .post(&url)
            .timeout(self.settings.send_timeout)
            .json(&body)
            .send()
            .await;
        match sent {
            Ok(res) if res.status().is_success() => SendOutcome::Accepted,
            Ok(res) => match res.status() {
                // The printer refused this job; it will refuse it again.
                status if status.is_client_error() && !is_transient(status) => {
                    SendOutcome::Rejected(status.as_u16())
                }
                StatusCode::REQUEST_TIMEOUT
                | StatusCode::TOO_MANY_REQUESTS
                | StatusCode::SERVICE_UNAVAILABLE => SendOutcome::Transient("busy"),
                _ => SendOutcome::Transient("error"),
            },
            Err(e) if e.is_timeout() => SendOutcome::Transient("timeout"),
            Err(_) => SendOutcome::Transient("unreachable"),
        }
    }
}

impl QueueWorker for Dispatcher {
    type Item = ClaimedJob;
    const WHAT: &'static str = "print jobs";

    async fn claim(&self, limit: usize) -> Result<Vec<ClaimedJob>, DbError> {
        let conn = self.db.get().await?;
        print_jobs::claim(
            &*conn,
            &self.settings.owner,
            self.settings.lease,
            limit as i64,
        )
        .await
    }

    async fn work(self: Arc<Self>, job: ClaimedJob) {
        self.dispatch(job).await
    }
}
