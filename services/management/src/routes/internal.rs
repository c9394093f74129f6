//! `/internal/…`: routes only other pixpress services call. Today that is
//! `/internal/images/{image_id}/download`, where download-service reports how an
//! image's download ended (the `callback_url` management-api gave it).
//!
//! Reports are signed per Standard Webhooks with `DOWNLOAD_CALLBACK_SECRET`; the
//! signature is checked before anything else, so strangers learn nothing about which
//! images exist. A report settles a pending image once; repeating it changes nothing
//! (download-service retries until it gets an answer), contradicting it is a 409.

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use pixpress_domain::download::{DownloadState, DownloadTask, FailureReason};
use pixpress_domain::management::ImageStatus;
use pixpress_domain::Problem;
use pixpress_kit::problem::resource;
use pixpress_kit::webhook::verify_request;
use pixpress_kit::ApiError;

use crate::catalog::{DownloadResult, SettleRefusal, Settled};
use crate::State;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/internal/images/{image_id}/download").route(web::post().to(download_callback)),
    );
}

/// Why a download report is refused.
#[derive(Debug, thiserror::Error)]
pub enum CallbackRefusal {
    /// 401: no valid signature, a stale timestamp, or no secret configured.
    #[error("missing or invalid webhook signature")]
    Unauthorized,
    /// 400: the body is not a finished download task.
    #[error("{0}")]
    Invalid(String),
    /// 404: no such image (never created, or deleted since it was asked for).
    #[error("no image {0}")]
    NoSuchImage(i64),
    /// 409: the image already holds a different result.
    #[error("image {0} is already {1} with a different result")]
    AlreadySettled(i64, &'static str),
}

impl ResponseError for CallbackRefusal {
    fn status_code(&self) -> StatusCode {
        match self {
            CallbackRefusal::Unauthorized => StatusCode::UNAUTHORIZED,
            CallbackRefusal::Invalid(_) => StatusCode::BAD_REQUEST,
            CallbackRefusal::NoSuchImage(_) => StatusCode::NOT_FOUND,
            CallbackRefusal::AlreadySettled(..) => StatusCode::CONFLICT,
        }
    }

    fn error_response(&self) -> HttpResponse {
        ApiError::new(self.status_code(), self.to_string()).error_response()
    }
}

fn status_name(status: ImageStatus) -> &'static str {
    match status {
        ImageStatus::Pending => "pending",
        ImageStatus::Ready => "ready",
        ImageStatus::Failed => "failed",
    }
}

/// download-service reports the finished download task of image `image_id`: `completed`
/// makes the image `ready` (its `original_url` and `thumbnail_url` point at
/// download-service), `failed` makes it `failed` with the task's error code.
#[utoipa::path(post, path = "/internal/images/{image_id}/download", tag = "internal",
    description = "Signed per Standard Webhooks with `DOWNLOAD_CALLBACK_SECRET`: the three `webhook-*` \
                   headers carry the message id, its Unix time and `v1,<base64 HMAC-SHA256 of \
                   \"{webhook-id}.{webhook-timestamp}.{body}\">`. The signature is checked before \
                   anything else; no bearer token is used.",
    params(
        ("image_id" = i64, Path, description = "The image the download was asked for"),
        ("webhook-id" = String, Header, description = "Standard Webhooks message id"),
        ("webhook-timestamp" = i64, Header, description = "Unix seconds; at most 5 minutes off"),
        ("webhook-signature" = String, Header, description = "`v1,<base64 HMAC-SHA256>`, signed with DOWNLOAD_CALLBACK_SECRET"),
    ),
    request_body = DownloadTask,
    responses(
        (status = 204, description = "Recorded, or a repeat of the recorded result"),
        (status = 400, description = "Not a completed or failed download task", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad signature, stale timestamp, or no secret configured", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such image", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The image already holds a different result", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn download_callback(
    state: web::Data<State>,
    req: HttpRequest,
    image_id: web::Path<i64>,
    body: Bytes,
) -> Result<HttpResponse, CallbackRefusal> {
    let count = |outcome: &str| {
        state
            .downloads
            .metrics
            .callbacks
            .with_label_values(&[outcome])
            .inc()
    };
    if let Err(e) = verify_request(state.callback_secret.as_ref(), &req, &body) {
        count("unauthorized");
        log::warn!("refused a download callback: {e}");
        return Err(CallbackRefusal::Unauthorized);
    }

    let image_id = image_id.into_inner();
    let result = match result_of(&state, &body) {
        Ok(result) => result,
        Err(refusal) => {
            count("invalid");
            log::warn!("refused image {image_id}'s download callback: {refusal}");
            return Err(refusal);
        }
    };
    let outcome = match &result {
        DownloadResult::Completed { .. } => "completed",
        DownloadResult::Failed { .. } => "failed",
    };
    match state.catalog.settle(image_id, result) {
        Ok(Settled::Applied) => {
            count(outcome);
            log::info!("image {image_id}'s download {outcome}");
            Ok(HttpResponse::NoContent().finish())
        }
        Ok(Settled::Unchanged) => {
            count("unchanged");
            Ok(HttpResponse::NoContent().finish())
        }
        Err(SettleRefusal::NoSuchImage) => {
            count("unknown");
            Err(CallbackRefusal::NoSuchImage(image_id))
        }
        Err(SettleRefusal::AlreadySettled(status)) => {
            count("conflict");
            log::warn!(
                "image {image_id} is already {status:?}; refused a different download report"
            );
            Err(CallbackRefusal::AlreadySettled(
                image_id,
                status_name(status),
            ))
        }
    }
}

/// What a reported task makes of its image.
fn result_of(state: &State, body: &[u8]) -> Result<DownloadResult, CallbackRefusal> {
    let task: DownloadTask = serde_json::from_slice(body)
        .map_err(|e| CallbackRefusal::Invalid(format!("invalid download task: {e}")))?;
    match task.state {
        DownloadState::Completed => Ok(DownloadResult::Completed {
            original_url: state.downloads.original_url(task.id),
            thumbnail_url: state.downloads.thumbnail_url(task.id),
        }),
        DownloadState::Failed => {
            let error = task.error.ok_or_else(|| {
                CallbackRefusal::Invalid("a failed download task must carry its error code".into())
            })?;
            // Kept as reported: a code newer than this mock is still the best explanation.
            if FailureReason::parse(&error).is_none() {
                log::warn!(
                    "download task {} failed with an unknown code {error:?}",
                    task.id
                );
            }
            Ok(DownloadResult::Failed { error })
        }
        state @ (DownloadState::Queued | DownloadState::Running) => {
            Err(CallbackRefusal::Invalid(format!(
                "only a finished download can be reported, not a {} one",
                state.as_str()
            )))
        }
    }
}
