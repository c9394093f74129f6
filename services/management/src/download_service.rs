//! download-service as management-api sees it (DESIGN.md §5, §12): asking it to
//! fetch an image, asking how a task is doing, deleting a task nothing needs any
//! more, and where it serves the stored original and thumbnail. Every call carries
//! `Authorization: Bearer {DOWNLOAD_TOKEN}` (a token with the `service` role).
//!
//! A pending image is answered 201 at once and asked for in the background. While
//! download-service cannot take the request (unreachable, timeout, 5xx, 429) it is
//! asked again with backoff, for at most the retry window; then the image fails with
//! `unreachable`. Any other refusal (a 4xx: it will not take this URL) fails the image
//! at once with `http_status`: asking again would get the same answer.
//!
//! Deleting a task is retried with backoff for as long as download-service is
//! unavailable, so a deleted image's objects and links do go. The retry list is in
//! memory, like every record of this mock: a restart forgets the deletions still
//! waiting (the task's objects then stay; the image is gone either way), and so is
//! a task whose id download-service's answer did not carry.
//!
//! How the download itself ends arrives later, signed, on `routes::internal` (or is
//! fetched by `reconcile` when that report never comes); this module only records
//! the failures to *ask*.

use std::time::{Duration, Instant};

use pixpress_domain::download::{CreateDownload, DownloadTask, FailureReason};
use pixpress_kit::client::{http_client, is_transient, ForwardRequestId};
use pixpress_kit::request_id;
use pixpress_kit::retry::Backoff;
use reqwest::{header, StatusCode};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::catalog::{Catalog, DownloadStage};
use crate::metrics::DownloadMetrics;

/// How long one call to download-service may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The pauses between requests for a download: from a quarter second, doubling up to 5 s.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
/// The pauses between attempts to delete a task: from a quarter second, doubling up
/// to a minute, with no end while download-service stays unavailable.
const DELETE_BACKOFF: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(60));

/// Why one call to download-service did not get through.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Worth asking again later: no connection, a timeout, an unreadable answer or
    /// a transient status (`pixpress_kit::client::is_transient`: a 5xx, 408 or 429).
    #[error("download service unavailable: {0}")]
    Unavailable(String),
    /// download-service refused the request; the same request would be refused
    /// again (a 401/403 means `DOWNLOAD_TOKEN` is missing or wrong).
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

/// Cheap to clone: the background deletions each hold a copy.
#[derive(Clone)]
pub struct DownloadService {
    http: reqwest::Client,
    base_url: String,
    public_base_url: String,
    callback_base_url: String,
    /// `Bearer <DOWNLOAD_TOKEN>`, when configured.
    authorization: Option<String>,
    retry_window: Duration,
    stop: CancellationToken,
    pub metrics: DownloadMetrics,
}

impl DownloadService {
    /// `base_url` is download-service's on the services' network (printers too
    /// fetch from it), `public_base_url` the one users' browsers reach;
    /// `callback_base_url` is management-api's own public base URL, which
    /// download-service calls back on; `token` is sent as the bearer token of every
    /// call.
    pub fn new(
        base_url: &str,
        public_base_url: &str,
        callback_base_url: &str,
        token: Option<&str>,
        retry_window: Duration,
        stop: CancellationToken,
        metrics: DownloadMetrics,
    ) -> Self {
        Self {
            http: http_client("management", REQUEST_TIMEOUT),
            base_url: base_url.trim_end_matches('/').to_owned(),
            public_base_url: public_base_url.trim_end_matches('/').to_owned(),
            callback_base_url: callback_base_url.trim_end_matches('/').to_owned(),
            authorization: token.map(|t| format!("Bearer {t}")),
            retry_window,
            stop,
            metrics,
        }
    }

    /// Where users' browsers fetch the stored original of task `task_id`.
    pub fn original_url(&self, task_id: Uuid) -> String {
        format!("{}/images/{task_id}/original", self.public_base_url)
    }

    /// Where users' browsers fetch the thumbnail of task `task_id`.
    pub fn thumbnail_url(&self, task_id: Uuid) -> String {
        format!("{}/images/{task_id}/thumbnail", self.public_base_url)
    }

    /// Where printers fetch the stored original of task `task_id`: download-service
    /// by the name the services know it by, redirecting to S3 by the name they
    /// know it by (`network=internal`).
    pub fn print_url(&self, task_id: Uuid) -> String {
        format!(
            "{}/images/{task_id}/original?network=internal",
            self.base_url
        )
    }

    fn callback_url(&self, image_id: i64) -> String {
        format!(
            "{}/internal/images/{image_id}/download",
            self.callback_base_url
        )
    }

    /// A call to `path` of download-service, with the token and the request id.
    fn call(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .forward_request_id();
        match &self.authorization {
            Some(authorization) => request.header(header::AUTHORIZATION, authorization),
            None => request,
        }
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
            if !catalog.awaits_request(image_id) {
                return RequestOutcome::Abandoned;
            }
            let attempt = tokio::select! {
                result = self.try_request(image_id, url) => result,
                () = self.stop.cancelled() => return RequestOutcome::Abandoned,
            };
            let cause = match attempt {
                Ok(task) => {
                    if catalog.task_taken(image_id, task) {
                        return RequestOutcome::Accepted;
                    }
                    // The image was deleted while download-service took it.
                    if let Some(task) = task {
                        self.forget(task);
                    }
                    return RequestOutcome::Abandoned;
                }
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

    /// One `POST /downloads` for image `image_id`; the task it became, when the
    /// answer says.
    async fn try_request(&self, image_id: i64, url: &str) -> Result<Option<Uuid>, RequestError> {
        let body = CreateDownload {
            url: url.to_owned(),
            callback_url: Some(self.callback_url(image_id)),
        };
        let response = self
            .call(reqwest::Method::POST, "/downloads")
            .json(&body)
            .send()
            .await
            .map_err(|e| RequestError::Unavailable(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            // The task is taken whatever its body says; asking again would duplicate it.
            let location = task_in_location(&response);
            let task = match response.json::<DownloadTask>().await {
                Ok(task) => Some(task.id),
                Err(e) => {
                    log::warn!(
                        "download-service took image {image_id}'s download with an unreadable body: {e}"
                    );
                    location
                }
            };
            match task {
                Some(task) => log::info!("image {image_id} is download task {task}"),
                None => log::warn!("download-service did not say which task image {image_id} is"),
            }
            return Ok(task);
        }
        Err(refusal(response, &format!("image {image_id}'s download")).await)
    }

    /// `GET /downloads/{task}`: the task, or `None` when download-service has no such
    /// task (lost, or deleted).
    pub async fn task(&self, task: Uuid) -> Result<Option<DownloadTask>, RequestError> {
        let response = self
            .call(reqwest::Method::GET, &format!("/downloads/{task}"))
            .send()
            .await
            .map_err(|e| RequestError::Unavailable(e.to_string()))?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => response
                .json::<DownloadTask>()
                .await
                .map(Some)
                .map_err(|e| RequestError::Unavailable(format!("an unreadable task: {e}"))),
            _ => Err(refusal(response, &format!("task {task}")).await),
        }
    }

    /// Deletes task `task` at download-service in the background (its objects go
    /// once no other task refers to them, and its links stop working), asking again
    /// with backoff while download-service is unavailable.
    pub fn forget(&self, task: Uuid) {
        let this = self.clone();
        let id = request_id::current().unwrap_or_else(request_id::generate);
        tokio::spawn(request_id::scope(id, async move {
            this.metrics.deletions_pending.inc();
            this.delete_until_done(task).await;
            this.metrics.deletions_pending.dec();
        }));
    }

    async fn delete_until_done(&self, task: Uuid) {
        let count = |outcome: &str| self.metrics.deletions.with_label_values(&[outcome]).inc();
        let mut failures = 0;
        loop {
            let attempt = tokio::select! {
                result = self.try_delete(task) => result,
                () = self.stop.cancelled() => Err(RequestError::Unavailable("stopping".into())),
            };
            let cause = match attempt {
                Ok(()) => {
                    log::info!("deleted download task {task}");
                    return count("deleted");
                }
                Err(RequestError::Refused(status)) => {
                    log::error!(
                        "download-service refused to delete task {task} with {status}; \
                         its objects stay (check DOWNLOAD_TOKEN)"
                    );
                    return count("refused");
                }
                Err(RequestError::Unavailable(cause)) => cause,
            };
            if self.stop.is_cancelled() {
                log::warn!("stopping with download task {task} not deleted: its objects stay");
                return count("abandoned");
            }
            count("retried");
            failures += 1;
            let delay = DELETE_BACKOFF.jittered(failures);
            log::warn!("deleting download task {task} again in {delay:?}: {cause}");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.stop.cancelled() => {}
            }
        }
    }

    /// One `DELETE /downloads/{task}`; a task download-service does not know is
    /// deleted already.
    async fn try_delete(&self, task: Uuid) -> Result<(), RequestError> {
        let response = self
            .call(reqwest::Method::DELETE, &format!("/downloads/{task}"))
            .send()
            .await
            .map_err(|e| RequestError::Unavailable(e.to_string()))?;
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(refusal(response, &format!("deleting task {task}")).await)
    }
}

/// What an unsuccessful answer about `what` means: try again later, or never.
async fn refusal(response: reqwest::Response, what: &str) -> RequestError {
    let status = response.status();
    if is_transient(status) {
        return RequestError::Unavailable(format!("it answered {status}"));
    }
    let detail = response.text().await.unwrap_or_default();
    log::warn!(
        "download-service refused {what} with {status}: {}",
        detail.chars().take(500).collect::<String>()
    );
    RequestError::Refused(status)
}

/// The task id in an accepted download's `Location: /downloads/{id}`.
fn task_in_location(response: &reqwest::Response) -> Option<Uuid> {
    let location = response.headers().get(header::LOCATION)?.to_str().ok()?;
    location.rsplit('/').next()?.parse().ok()
}

/// Fails the image still waiting to be taken with `reason` and answers `outcome`;
/// `Abandoned` when a report settled the image, or it was deleted, first.
fn fail(
    catalog: &Catalog,
    image_id: i64,
    reason: FailureReason,
    outcome: RequestOutcome,
) -> RequestOutcome {
    if catalog.fail_without_task(image_id, DownloadStage::Asking, reason.as_str()) {
        outcome
    } else {
        RequestOutcome::Abandoned
    }
}
