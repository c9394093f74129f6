//! The simulated printer itself: its queue, the slow "printing", and the signed
//! callbacks it keeps retrying until print-service takes them.
//!
//! Jobs are deduplicated by correlation id: a job sent twice (a dispatcher retrying
//! after a crash or a lost answer) is acknowledged again but printed once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pixpress_domain::printer::{CallbackStatus, PrintedJob, PrinterCallback, PrinterJob};
use pixpress_kit::webhook::WebhookSecret;
use prometheus::IntCounterVec;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long the printer keeps retrying one callback before giving up.
const CALLBACK_PATIENCE: Duration = Duration::from_secs(600);

pub struct Printer {
    jobs: Mutex<HashMap<Uuid, PrintedJob>>,
    capacity: Arc<Semaphore>,
    delay_per_copy: Duration,
    accept_delay: Duration,
    fail_rate: f64,
    secret: Option<WebhookSecret>,
    http: reqwest::Client,
    outcomes: IntCounterVec,
    stop: CancellationToken,
}

/// What the printer says to a submitted job.
pub enum Submission {
    /// New: it will be printed.
    Accepted,
    /// Seen before: acknowledged, not printed again.
    Duplicate,
    /// Every slot is busy: try again later.
    Busy,
}

impl Printer {
    /// A printer with `config`'s capacity, speed and failure rate.
    pub fn new(
        config: &crate::Config,
        secret: Option<WebhookSecret>,
        http: reqwest::Client,
        outcomes: IntCounterVec,
        stop: CancellationToken,
    ) -> Self {
        Self {
            jobs: Mutex::new(HashMap::new()),
            capacity: Arc::new(Semaphore::new(config.printer_capacity as usize)),
            delay_per_copy: config.delay_per_copy(),
            accept_delay: Duration::from_millis(config.printer_accept_delay_ms),
            fail_rate: config.printer_fail_rate.clamp(0.0, 1.0),
            secret,
            http,
            outcomes,
            stop,
        }
    }

    // Every update to the map is a single insert or field write: a poisoned lock
    // still guards consistent data.
    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, PrintedJob>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn submit(self: &Arc<Self>, job: PrinterJob) -> Submission {
        let permit = {
            let mut jobs = self.jobs();
            if let Some(seen) = jobs.get_mut(&job.correlation_id) {
                seen.received += 1;
                return Submission::Duplicate;
            }
            let Ok(permit) = Arc::clone(&self.capacity).try_acquire_owned() else {
                return Submission::Busy;
            };
            jobs.insert(
                job.correlation_id,
                PrintedJob {
                    correlation_id: job.correlation_id,
                    image_url: job.image_url.clone(),
                    copies: job.copies,
                    received: 1,
                    printed: 0,
                    status: "queued".into(),
                    reported: false,
                },
            );
            permit
        };
        let printer = Arc::clone(self);
        tokio::spawn(async move {
            tokio::select! {
                _ = printer.print(job, permit) => {}
                _ = printer.stop.cancelled() => {}
            }
        });
        Submission::Accepted
    }

    pub fn accept_delay(&self) -> Duration {
        self.accept_delay
    }

    pub fn list(&self) -> Vec<PrintedJob> {
        let mut jobs: Vec<PrintedJob> = self.jobs().values().cloned().collect();
        jobs.sort_by_key(|j| j.correlation_id);
        jobs
    }

    fn set_status(&self, id: Uuid, change: impl FnOnce(&mut PrintedJob)) {
        if let Some(job) = self.jobs().get_mut(&id) {
            change(job);
        }
    }

    async fn print(&self, job: PrinterJob, permit: OwnedSemaphorePermit) {
        let id = job.correlation_id;
        self.set_status(id, |j| j.status = "printing".into());
        self.report(&job, CallbackStatus::Printing, None).await;
        tokio::time::sleep(self.delay_per_copy * job.copies.max(1) as u32).await;
        let failed = self.fail_rate > 0.0 && rand::random::<f64>() < self.fail_rate;
        let (status, detail) = if failed {
            (CallbackStatus::Failed, Some("paper jam".to_owned()))
        } else {
            (CallbackStatus::Completed, None)
        };
        self.set_status(id, |j| {
            j.printed += 1;
            j.status = if failed { "failed" } else { "completed" }.into();
        });
        self.outcomes
            .with_label_values(&[if failed { "failed" } else { "completed" }])
            .inc();
        // The paper is out: the slot is free while we tell print-service.
        drop(permit);
        if self.report(&job, status, detail).await {
            self.set_status(id, |j| j.reported = true);
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
        let started = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            let mut request = self
                .http
                .post(&job.callback_url)
                .header("content-type", "application/json")
                .body(body.clone());
            if let Some(secret) = &self.secret {
                for (name, value) in secret.headers(&body) {
                    request = request.header(name, value);
                }
            }
            match request.send().await {
                Ok(res) if res.status().is_success() => return true,
                Ok(res)
                    if res.status().is_client_error()
                        && !matches!(res.status().as_u16(), 408 | 429) =>
                {
                    log::warn!(
                        "callback {status:?} for {} refused with {}; not retrying",
                        job.correlation_id,
                        res.status()
                    );
                    return false;
                }
                Ok(res) => log::info!(
                    "callback for {} answered {}; retrying",
                    job.correlation_id,
                    res.status()
                ),
                Err(e) => log::info!("callback for {} failed ({e}); retrying", job.correlation_id),
            }
            if started.elapsed() > CALLBACK_PATIENCE {
                log::error!(
                    "giving up on the {status:?} callback for {}",
                    job.correlation_id
                );
                return false;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}
