//! print-service's side of the printer protocol (DESIGN.md §3, §12): `POST /jobs`
//! hands a job to its printer, `GET /jobs/{correlation_id}` asks what became of it.
//! One circuit breaker per printer covers both, so the dispatcher and reconciliation
//! back off from a failing printer together. What to do with an answer is the
//! caller's business; this module only says what the printer answered.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pixpress_domain::printer::{PrinterJob, PrinterJobStatus};
use pixpress_kit::breaker::Breakers;
use pixpress_kit::client::{is_transient, ForwardRequestId};
use pixpress_kit::retry::Backoff;
use reqwest::StatusCode;

use crate::metrics::PrintMetrics;
use crate::print_jobs::ClaimedJob;

pub struct PrinterSettings {
    /// Base URL printers call back on (`PUBLIC_URL`).
    pub public_url: String,
    /// How long one call to a printer may take.
    pub timeout: Duration,
}

/// Talks to every printer, each behind its breaker.
pub struct PrinterClient {
    http: reqwest::Client,
    settings: PrinterSettings,
    breakers: Breakers<i64>,
    /// The printers that answered busy since they last took a job.
    busy: Mutex<HashMap<i64, BusySince>>,
}

/// A printer's busy answers since it last took a job.
struct BusySince {
    first: Instant,
    answers: u32,
}

/// What a printer at capacity answers (408, 429, 503): `SendOutcome::Transient(BUSY)`.
/// It is up, only full: its slots free up as it prints.
pub const BUSY: &str = "busy";
/// Retries to a busy printer: soon after one busy answer, backing off while it stays
/// full ([`PrinterClient::busy_delay`]).
const BUSY_PACING: Backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(5));
/// A printer that has answered busy this long, taking nothing, is failing (one whose
/// spool is broken answers 503 for ever; a slow one takes a job whenever a slot
/// frees): from then on each busy answer counts against its breaker.
const BUSY_FAILING_AFTER: Duration = Duration::from_secs(10);

/// What one `POST /jobs` came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    Accepted,
    /// Worth retrying: the printer is down, busy or failing.
    Transient(&'static str),
    /// The printer refused the job itself: retrying will not help.
    Rejected(u16),
}

/// What one `GET /jobs/{correlation_id}` came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusAnswer {
    Known(PrinterJobStatus),
    /// 404: the printer does not know the job.
    Unknown,
    /// No usable answer (down, timeout, 5xx, a body that does not parse): ask again
    /// later.
    Unreachable(&'static str),
}

impl PrinterClient {
    pub fn new(http: reqwest::Client, settings: PrinterSettings, metrics: &PrintMetrics) -> Self {
        Self {
            http,
            settings,
            breakers: Breakers::new(metrics.breaker_state.clone()),
            busy: Mutex::default(),
        }
    }

    /// May `printer` be called now? `Err(wait)` says when to try again.
    pub fn allow(&self, printer: i64) -> Result<(), Duration> {
        self.breakers.allow(&printer)
    }

    /// Sends `job` to its printer (`POST {printer_url}/jobs`); a printer that dedups
    /// by correlation id prints a job sent twice once.
    pub async fn send(&self, job: &ClaimedJob) -> SendOutcome {
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
            .timeout(self.settings.timeout)
            .json(&body)
            .forward_request_id()
            .send()
            .await;
        let outcome = match sent {
            Ok(res) if res.status().is_success() => SendOutcome::Accepted,
            Ok(res) => match res.status() {
                // The printer refused this job; it will refuse it again.
                status if status.is_client_error() && !is_transient(status) => {
                    SendOutcome::Rejected(status.as_u16())
                }
                StatusCode::REQUEST_TIMEOUT
                | StatusCode::TOO_MANY_REQUESTS
                | StatusCode::SERVICE_UNAVAILABLE => SendOutcome::Transient(BUSY),
                _ => SendOutcome::Transient("error"),
            },
            Err(e) if e.is_timeout() => SendOutcome::Transient("timeout"),
            Err(_) => SendOutcome::Transient("unreachable"),
        };
        match outcome {
            SendOutcome::Accepted => {
                self.breakers.record_success(&job.printer_id);
                self.busy_printers().remove(&job.printer_id);
            }
            // A busy printer answered: it is up, only full. Its breaker stays closed
            // (an open one held every job of the printer back for a cool-down after a
            // moment of saturation) unless it stays full, taking nothing.
            SendOutcome::Transient(BUSY) => {
                let failing = {
                    let mut busy = self.busy_printers();
                    let since = busy.entry(job.printer_id).or_insert(BusySince {
                        first: Instant::now(),
                        answers: 0,
                    });
                    since.answers += 1;
                    since.first.elapsed() > BUSY_FAILING_AFTER
                };
                if failing {
                    self.breakers.record_failure(&job.printer_id);
                }
            }
            SendOutcome::Transient(_) => self.breakers.record_failure(&job.printer_id),
            // The printer answered, about this job only.
            SendOutcome::Rejected(_) => {}
        }
        outcome
    }

    /// How long a job its printer answered busy waits before it is sent again: a
    /// few milliseconds after the first busy answer, doubling with each busy answer in
    /// a row from that printer (up to 5 s), jittered.
    pub fn busy_delay(&self, printer: i64) -> Duration {
        let answers = self.busy_printers().get(&printer).map_or(0, |b| b.answers);
        BUSY_PACING.jittered(answers)
    }

    fn busy_printers(&self) -> std::sync::MutexGuard<'_, HashMap<i64, BusySince>> {
        self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks `job`'s printer what became of it (`GET {printer_url}/jobs/{correlation_id}`).
    pub async fn status(&self, job: &ClaimedJob) -> StatusAnswer {
        let url = format!(
            "{}/jobs/{}",
            job.printer_url.trim_end_matches('/'),
            job.correlation_id
        );
        let asked = self
            .http
            .get(&url)
            .timeout(self.settings.timeout)
            .forward_request_id()
            .send()
            .await;
        let answer = match asked {
            Ok(res) if res.status() == StatusCode::OK => match res.json().await {
                Ok(status) => StatusAnswer::Known(status),
                Err(e) => {
                    log::warn!(
                        "printer {} answered an unreadable status: {e}",
                        job.printer_id
                    );
                    StatusAnswer::Unreachable("bad_answer")
                }
            },
            Ok(res) if res.status() == StatusCode::NOT_FOUND => StatusAnswer::Unknown,
            Ok(res) => {
                log::warn!(
                    "printer {} answered {} to a status query",
                    job.printer_id,
                    res.status()
                );
                StatusAnswer::Unreachable("error")
            }
            Err(e) if e.is_timeout() => StatusAnswer::Unreachable("timeout"),
            Err(_) => StatusAnswer::Unreachable("unreachable"),
        };
        match answer {
            StatusAnswer::Unreachable(_) => self.breakers.record_failure(&job.printer_id),
            _ => self.breakers.record_success(&job.printer_id),
        }
        answer
    }
}
