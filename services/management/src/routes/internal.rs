//! `/internal/…`: routes only other pixpress services call. Today that is
//! `/internal/images/{image_id}/download`, where download-service reports how an
//! image's download ended (the `callback_url` management-api gave it).
//!
//! Reports are signed per Standard Webhooks with `DOWNLOAD_CALLBACK_SECRET`; the
//! signature is checked before anything else, so strangers learn nothing about which
//! images exist. A report settles a pending image once; repeating it changes nothing
//! (download-service retries until it gets an answer), contradicting it is a 409.

use actix_web::{web, HttpResponse};
use pixpress_domain::download::{DownloadState, DownloadTask, FailureReason};
use pixpress_kit::problem::resource;
use pixpress_kit::webhook::{CallbackRefused, SignedJson};

use crate::catalog::{DownloadResult, Settled};
use crate::error::ManagementError;
use crate::State;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/internal/images/{image_id}/download").route(web::post().to(download_callback)),
    );
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
        (status = 400, description = "Not a completed or failed download task"),
        (status = 401, description = "Missing or bad signature, stale timestamp, or no secret configured"),
        (status = 404, description = "No such image"),
        (status = 409, description = "The image already holds a different result"),
        (status = 413, description = "Body over 64 KiB"),
    ))]
pub async fn download_callback(
    state: web::Data<State>,
    image_id: web::Path<i64>,
    report: Result<SignedJson<DownloadTask>, CallbackRefused>,
) -> Result<HttpResponse, ManagementError> {
    let image_id = image_id.into_inner();
    let recorded = record(&state, image_id, report);
    let outcome = match &recorded {
        Ok(outcome) => outcome,
        Err(refusal) => {
            // The extractor has logged the unsigned ones already.
            if !matches!(
                refusal,
                ManagementError::Callback(CallbackRefused::Unsigned(_))
            ) {
                log::warn!("refused image {image_id}'s download report: {refusal}");
            }
            refusal_outcome(refusal)
        }
    };
    state
        .downloads
        .metrics
        .callbacks
        .with_label_values(&[outcome])
        .inc();
    recorded.map(|_| HttpResponse::NoContent().finish())
}

/// Records a signed report on its image; says what it did: `completed` or `failed`
/// (the image took the result), or `unchanged` (a repeat).
fn record(
    state: &State,
    image_id: i64,
    report: Result<SignedJson<DownloadTask>, CallbackRefused>,
) -> Result<&'static str, ManagementError> {
    let result = result_of(state, report?.into_inner())?;
    let outcome = match &result {
        DownloadResult::Completed { .. } => "completed",
        DownloadResult::Failed { .. } => "failed",
    };
    match state.catalog.settle(image_id, result)? {
        Settled::Applied => {
            log::info!("image {image_id}'s download {outcome}");
            Ok(outcome)
        }
        Settled::Unchanged => Ok("unchanged"),
    }
}

/// The `download_callbacks_total` outcome a refused report counts under.
fn refusal_outcome(refusal: &ManagementError) -> &'static str {
    match refusal {
        ManagementError::Callback(refused) => refused.outcome(),
        ManagementError::NoSuchImage(_) => "unknown",
        ManagementError::ReportConflict { .. } => "conflict",
        _ => "invalid",
    }
}

/// What a reported task makes of its image.
fn result_of(state: &State, task: DownloadTask) -> Result<DownloadResult, ManagementError> {
    match task.state {
        DownloadState::Completed => Ok(DownloadResult::Completed {
            original_url: state.downloads.original_url(task.id),
            thumbnail_url: state.downloads.thumbnail_url(task.id),
        }),
        DownloadState::Failed => {
            let error = task.error.ok_or(ManagementError::FailureWithoutReason)?;
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
            Err(ManagementError::UnfinishedReport(state))
        }
    }
}
