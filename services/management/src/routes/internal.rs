//! `/internal/…`: routes only other pixpress services call. Today that is
//! `/internal/images/{image_id}/download`, where download-service reports how an
//! image's download ended (the `callback_url` management-api gave it).
//!
//! A report proves itself twice (DESIGN.md §12): signed per Standard Webhooks with
//! `DOWNLOAD_CALLBACK_SECRET`, and sent with a bearer token that has the `service`
//! role (download-service's `MANAGEMENT_TOKEN`; `admin` is accepted too, as on
//! `/lookup`). The signature is checked first (with the body's shape: a signed body
//! that is no task is a 400), then the token; either refusal (401, 403) comes
//! before the report is applied, so strangers learn nothing about which images
//! exist and change nothing. A report settles a pending image once;
//! repeating it changes nothing (download-service retries until it gets an answer),
//! contradicting it is a 409.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use pixpress_domain::download::DownloadTask;
use pixpress_kit::auth::Authenticator;
use pixpress_kit::problem::resource;
use pixpress_kit::webhook::{CallbackRefused, SignedJson};

use crate::error::ManagementError;
use crate::reports::{self, Applied};
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
    security(("bearer" = [])),
    description = "For download-service only. Signed per Standard Webhooks with \
                   `DOWNLOAD_CALLBACK_SECRET`: the three `webhook-*` headers carry the message id, \
                   its Unix time and `v1,<base64 HMAC-SHA256 of \"{webhook-id}.{webhook-timestamp}.{body}\">`; \
                   and sent with a bearer token that has the `service` role (or `admin`). The \
                   signature is checked first, then the token, both before any image is looked at.",
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
        (status = 401, description = "Missing or bad signature, stale timestamp, no secret configured, or a missing, malformed, expired or foreign bearer token"),
        (status = 403, description = "The token has neither the `service` nor the `admin` role"),
        (status = 404, description = "No such image"),
        (status = 409, description = "The image already holds a different result, or waits for another task"),
        (status = 413, description = "Body over 64 KiB"),
    ))]
pub async fn download_callback(
    state: web::Data<State>,
    authenticator: web::Data<Authenticator>,
    req: HttpRequest,
    image_id: web::Path<i64>,
    report: Result<SignedJson<DownloadTask>, CallbackRefused>,
) -> Result<HttpResponse, ManagementError> {
    let image_id = image_id.into_inner();
    let recorded = receive(&state, &authenticator, &req, image_id, report);
    let outcome = match &recorded {
        Ok(applied) => applied.as_str(),
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

/// The signature (and a body that is a task), then the token, then the report.
fn receive(
    state: &State,
    authenticator: &Authenticator,
    req: &HttpRequest,
    image_id: i64,
    report: Result<SignedJson<DownloadTask>, CallbackRefused>,
) -> Result<Applied, ManagementError> {
    let task = report?.into_inner();
    service_caller(authenticator, req)?;
    reports::apply(state, image_id, task)
}

/// The caller's bearer token has the `service` (or `admin`) role.
fn service_caller(authenticator: &Authenticator, req: &HttpRequest) -> Result<(), ManagementError> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = authenticator
        .authenticate(header)
        .map_err(ManagementError::Unauthenticated)?;
    if caller.has_role("service") || caller.is_admin() {
        Ok(())
    } else {
        Err(ManagementError::ServiceRoleRequired("the download report"))
    }
}

/// The `download_callbacks_total` outcome a refused report counts under.
fn refusal_outcome(refusal: &ManagementError) -> &'static str {
    match refusal {
        ManagementError::Callback(refused) => refused.outcome(),
        ManagementError::Unauthenticated(_) => "unauthenticated",
        ManagementError::ServiceRoleRequired(_) => "forbidden",
        ManagementError::NoSuchImage(_) => "unknown",
        ManagementError::ReportConflict { .. } | ManagementError::OtherTask(_) => "conflict",
        _ => "invalid",
    }
}
