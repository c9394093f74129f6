//! The completion reports: once a task ends, its `callback_url` gets the task,
//! signed per Standard Webhooks and with the bearer token `MANAGEMENT_TOKEN`,
//! retried with backoff for about an hour while it fails.
//!
//! A report goes only under `MANAGEMENT_URL`: the URL is checked again when it is
//! sent, so a task stored before the check existed, or under another setting, is
//! not sent elsewhere (it is abandoned, and counted `refused`).
//!
//! Reports are a queue of their own (`callback_due_at` in `download_tasks`), with
//! workers of their own: a slow or dead callback URL never delays a download, and a
//! finished task's report is sent the moment it is recorded (the task worker
//! announces it), not on some later round.

use std::sync::Arc;
use std::time::Duration;

use pixpress_kit::client::is_transient;
use pixpress_kit::db::{Database, DbError};
use pixpress_kit::queue::{self, QueueWorker};
use pixpress_kit::request_id::RequestContext;
use pixpress_kit::retry::Backoff;
use pixpress_kit::webhook::{signed_post, WebhookSecret};

use crate::download_tasks::{self, DueCallback};
use crate::management_url::{self, ManagementUrl};
use crate::metrics::DownloadMetrics;

/// Channel notified when a report becomes due.
pub const DUE_CHANNEL: &str = "download_reports_due";
/// Reports being sent at once, per replica.
pub const CONCURRENCY: usize = 16;
/// Reports are retried for about an hour, then abandoned.
const MAX_ATTEMPTS: i32 = 60;
const RETRY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
/// How long a claimed report is this replica's before another may send it.
const LEASE: Duration = Duration::from_secs(60);

pub struct Reporter {
    pub db: Database,
    pub http: reqwest::Client,
    pub secret: Option<WebhookSecret>,
    /// Where reports may go (`MANAGEMENT_URL`); none: nowhere.
    pub management: Option<ManagementUrl>,
    /// Presented as `Authorization: Bearer …` (`MANAGEMENT_TOKEN`).
    pub token: Option<String>,
    pub metrics: DownloadMetrics,
}

impl Reporter {
    async fn deliver(&self, report: DueCallback) -> Result<(), DbError> {
        let id = report.task.id;
        let count = |outcome: &str| self.metrics.callbacks.with_label_values(&[outcome]).inc();
        let url = match management_url::admit(self.management.as_ref(), &report.callback_url) {
            Ok(url) => url,
            Err(why) => {
                count("refused");
                // The URL itself is not logged: it may carry credentials.
                log::warn!("not sending the report of download {id}: its callback_url {why}");
                return self.done(id).await;
            }
        };
        // Serializing a struct of strings, numbers and times cannot fail.
        let body = serde_json::to_vec(&report.task).unwrap_or_default();
        let mut request = signed_post(&self.http, url.as_str(), body, self.secret.as_ref());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let outcome = match request.send().await {
            Ok(res) if res.status().is_success() => Ok(()),
            // A client error other than "later, please" will not change on a retry.
            Ok(res) if res.status().is_client_error() && !is_transient(res.status()) => {
                Err((false, format!("answered {}", res.status())))
            }
            Ok(res) => Err((true, format!("answered {}", res.status()))),
            Err(e) => Err((true, e.to_string())),
        };
        match outcome {
            Ok(()) => {
                count("delivered");
                self.done(id).await
            }
            Err((true, why)) if report.attempts + 1 < MAX_ATTEMPTS => {
                count("retried");
                let delay = RETRY.jittered((report.attempts + 1) as u32);
                log::info!("callback for download {id} {why}; retrying in {delay:?}");
                self.db
                    .with_connection(async |conn| {
                        download_tasks::callback_later(conn, id, delay).await
                    })
                    .await
            }
            Err((_, why)) => {
                count("abandoned");
                log::warn!("giving up on the callback for download {id}: {why}");
                self.done(id).await
            }
        }
    }

    /// Nothing more to send for download `id`.
    async fn done(&self, id: uuid::Uuid) -> Result<(), DbError> {
        self.db
            .with_connection(async |conn| download_tasks::callback_done(conn, id).await)
            .await
    }
}

impl QueueWorker for Reporter {
    type Item = DueCallback;
    const WHAT: &'static str = "download completion reports";

    async fn claim(&self, limit: usize) -> Result<Vec<DueCallback>, DbError> {
        self.db
            .with_connection(async |conn| {
                download_tasks::claim_callbacks(conn, LEASE, limit as i64).await
            })
            .await
    }

    /// Delivers one report in the download's request context (its request id, the
    /// trace of the request that asked for it). One it could not record is claimed
    /// again when its lease expires.
    async fn work(self: Arc<Self>, report: DueCallback) {
        let id = report.task.id;
        let context = RequestContext::for_item(
            format!("download-{}", id.simple()),
            report.traceparent.as_deref(),
        );
        let what = format!("the callback of download {id}");
        queue::scoped(context, what, self.deliver(report)).await
    }
}
