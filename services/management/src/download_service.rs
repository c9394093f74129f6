//! download-service as management-api sees it (DESIGN.md §5): asking it to fetch a
//! new image, and where it serves the stored original and thumbnail afterwards.
//!
//! A pending image is answered 201 at once and asked for in the background. While
//! download-service cannot take the request (unreachable, timeout, 5xx, 429) it is
//! asked again with backoff, for at most the retry window; then the image fails with
//! `unreachable`. Any other refusal (a 4xx: it will not take this URL) fails the image
//! at once with `http_status`: asking again would get the same answer.
//!
//! How the download itself ends arrives later, signed, on `routes::internal`; this
//! module only records the failures to *ask*.

use std::time::{Duration, Instant};

use pixpress_domain::download::{CreateDownload, DownloadTask, FailureReason};
use pixpress_kit::client::{http_client, is_transient, ForwardRequestId};
use pixpress_kit::retry::Backoff;
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::catalog::{Catalog, DownloadResult, SettleRefusal, Settled};
use crate::metrics::DownloadMetrics;

/// How long one `POST /downloads` may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The pauses between attempts: from a quarter second, doubling up to 5 s.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));

/// Why one request for a download did not get through.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Worth asking again later: no connection, a timeout, or a transient status
    /// (`pixpress_kit::client::is_transient`: a 5xx, 408 or 429).
    #[error("download service unavailable: {0}")]
    Unavailable(String),
    /// download-service refused the request; the same request would be refused again.
    #[error("download service refused the request with {0}")]
    Refused(StatusCode),
}

/// How asking for one image's download ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// download-service took the task; it will call back.
    Accepted,
    /// download-service refused it; the image is `failed` with `http_status`.
    Refused,
    /// It stayed unavailable for the whole retry window; the image is `failed` with
    /// `unreachable`.
    Unreachable,
    /// Nobody needs the download any more: the image was deleted or settled meanwhile,
    /// or the service is stopping.
    Abandoned,
}

impl RequestOutcome {
    fn as_str(self) -> &'static str {
        match self {
            RequestOutcome::Accepted => "accepted",
            RequestOutcome::Refused => "refused",
            RequestOutcome::Unreachable => "unreachable",
            RequestOutcome::Abandoned => "abandoned",
        }
    }
}

pub struct DownloadService {
    http: reqwest::Client,
    base_url: String,
    callback_base_url: String,
    retry_window: Duration,
    stop: CancellationToken,
    pub metrics: DownloadMetrics,
}

impl DownloadService {
    /// `base_url` is download-service's; `callback_base_url` is management-api's own
    /// public base URL, which download-service calls back on.
    pub fn new(
        base_url: &str,
        callback_base_url: &str,
        retry_window: Duration,
        stop: CancellationToken,
        metrics: DownloadMetrics,
    ) -> Self {
        Self {
            http: http_client("management", REQUEST_TIMEOUT),
            base_url: base_url.trim_end_matches('/').to_owned(),
            callback_base_url: callback_base_url.trim_end_matches('/').to_owned(),
            retry_window,
            stop,
            metrics,
        }
    }

    /// Where download-service serves the stored original of task `task_id`.
    pub fn original_url(&self, task_id: Uuid) -> String {
        format!("{}/images/{task_id}/original", self.base_url)
    }

    /// Where download-service serves the thumbnail of task `task_id`.
    pub fn thumbnail_url(&self, task_id: Uuid) -> String {
        format!("{}/images/{task_id}/thumbnail", self.base_url)
    }

    fn callback_url(&self, image_id: i64) -> String {
        format!(
            "{}/internal/images/{image_id}/download",
            self.callback_base_url
        )
    }

    /// Asks for image `image_id`'s download until download-service takes or refuses
    /// it, or the retry window passes; a failure to ask is recorded on the image.
    pub async fn request(&self, catalog: &Catalog, image_id: i64, url: &str) -> RequestOutcome {
        let outcome = self.request_until_settled(catalog, image_id, url).await;
        self.metrics
            .requested
            .with_label_values(&[outcome.as_str()])
            .inc();
        outcome
    }

    async fn request_until_settled(
        &self,
        catalog: &Catalog,
        image_id: i64,
        url: &str,
    ) -> RequestOutcome {
        let deadline = Instant::now() + self.retry_window;
        let mut failures = 0;
        loop {
            if !catalog.is_pending(image_id) {
                return RequestOutcome::Abandoned;
            }
            let attempt = tokio::select! {
                result = self.try_request(image_id, url) => result,
                () = self.stop.cancelled() => return RequestOutcome::Abandoned,
            };
            let cause = match attempt {
                Ok(()) => return RequestOutcome::Accepted,
                Err(RequestError::Refused(_)) => {
                    return fail(
                        catalog,
                        image_id,
                        FailureReason::HttpStatus,
                        RequestOutcome::Refused,
                    );
                }
                Err(RequestError::Unavailable(cause)) => cause,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::error!(
                    "gave up asking download-service for image {image_id} after {:?}: {cause}",
                    self.retry_window
                );
                return fail(
                    catalog,
                    image_id,
                    FailureReason::Unreachable,
                    RequestOutcome::Unreachable,
                );
            }
            log::warn!("asking download-service for image {image_id} again: {cause}");
            failures += 1;
            tokio::select! {
                () = tokio::time::sleep(BACKOFF.jittered(failures).min(left)) => {}
                () = self.stop.cancelled() => return RequestOutcome::Abandoned,
            }
        }
    }

    /// One `POST /downloads` for image `image_id`.
    async fn try_request(&self, image_id: i64, url: &str) -> Result<(), RequestError> {
        let body = CreateDownload {
            url: url.to_owned(),
            callback_url: Some(self.callback_url(image_id)),
        };
        let response = self
            .http
            .post(format!("{}/downloads", self.base_url))
            .json(&body)
            .forward_request_id()
            .send()
            .await
            .map_err(|e| RequestError::Unavailable(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            // The task is taken whatever its body says; asking again would duplicate it.
            match response.json::<DownloadTask>().await {
                Ok(task) => log::info!("image {image_id} is download task {}", task.id),
                Err(e) => log::warn!(
                    "download-service took image {image_id}'s download with an unreadable body: {e}"
                ),
            }
            return Ok(());
        }
        if is_transient(status) {
            return Err(RequestError::Unavailable(format!("it answered {status}")));
        }
        let detail = response.text().await.unwrap_or_default();
        log::warn!(
            "download-service refused image {image_id}'s download with {status}: {}",
            detail.chars().take(500).collect::<String>()
        );
        Err(RequestError::Refused(status))
    }
}

/// Fails the still-pending image with `reason` and answers `outcome`; `Abandoned`
/// when a callback settled the image, or it was deleted, first.
fn fail(
    catalog: &Catalog,
    image_id: i64,
    reason: FailureReason,
    outcome: RequestOutcome,
) -> RequestOutcome {
    let failed = DownloadResult::Failed {
        error: reason.as_str().to_owned(),
    };
    match catalog.settle(image_id, failed) {
        Ok(Settled::Applied) => outcome,
        Ok(Settled::Unchanged)
        | Err(SettleRefusal::NoSuchImage(_) | SettleRefusal::AlreadySettled(..)) => {
            RequestOutcome::Abandoned
        }
    }
}
