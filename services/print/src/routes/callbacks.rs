//! `/print/callbacks/{correlation_id}`: the correlation endpoint printers report to.
//!
//! Callbacks are signed per Standard Webhooks with `PRINTER_CALLBACK_SECRET`; the
//! signature is checked before anything else, so strangers learn nothing about
//! which jobs exist. The domain's state machine decides what is legal; a repeat of
//! the current state (a printer retrying) changes nothing.

use actix_web::{web, HttpResponse};
use pixpress_domain::job::Evidence;
use pixpress_domain::printer::PrinterCallback;
use pixpress_kit::problem::resource;
use pixpress_kit::webhook::{CallbackRefused, SignedJson};
use uuid::Uuid;

use crate::error::PrintError;
use crate::print_jobs::{PrinterReport, ReportOutcome};
use crate::State;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/print/callbacks/{correlation_id}").route(web::post().to(printer_callback)),
    );
}

/// A printer reports progress on the job it was sent under `correlation_id`.
#[utoipa::path(post, path = "/print/callbacks/{correlation_id}", tag = "callbacks",
    description = "Signed per Standard Webhooks with `PRINTER_CALLBACK_SECRET`: the three `webhook-*` \
                   headers carry the message id, its Unix time and `v1,<base64 HMAC-SHA256 of \
                   \"{webhook-id}.{webhook-timestamp}.{body}\">` (space-separated when a secret is \
                   rotated). The signature is checked before anything else; no bearer token is used.",
    params(
        ("correlation_id" = Uuid, Path, description = "The job's correlation id"),
        ("webhook-id" = String, Header, description = "Standard Webhooks message id"),
        ("webhook-timestamp" = i64, Header, description = "Unix seconds; at most 5 minutes off"),
        ("webhook-signature" = String, Header, description = "`v1,<base64 HMAC-SHA256>`, signed with PRINTER_CALLBACK_SECRET"),
    ),
    request_body = PrinterCallback,
    responses(
        (status = 204, description = "Accepted, or a repeat of the current state"),
        (status = 400, description = "Malformed body"),
        (status = 401, description = "Missing or bad signature, or stale timestamp"),
        (status = 404, description = "No job has this correlation id"),
        (status = 409, description = "Illegal state transition"),
        (status = 413, description = "Body over 64 KiB"),
        (status = 503, description = "The database is unavailable", headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    ))]
pub async fn printer_callback(
    state: web::Data<State>,
    correlation_id: web::Path<Uuid>,
    callback: Result<SignedJson<PrinterCallback>, CallbackRefused>,
) -> Result<HttpResponse, PrintError> {
    let count = |outcome: &str| state.metrics.callbacks.with_label_values(&[outcome]).inc();
    let callback = callback
        .inspect_err(|refused| count(refused.outcome()))?
        .into_inner();

    let target = callback.status.job_state();
    let correlation_id = correlation_id.into_inner();
    let report = PrinterReport {
        correlation_id,
        state: target,
        detail: callback.detail,
        evidence: Evidence::Callback,
    };
    let outcome = state.db.within(state.reports.apply(report)).await?;
    match outcome {
        ReportOutcome::Applied(steps) => {
            count("applied");
            for (from, to) in steps {
                state.metrics.transition(Some(from), to);
            }
            log::info!("job with correlation id {correlation_id} is now {target}");
            Ok(HttpResponse::NoContent().finish())
        }
        ReportOutcome::Unchanged => {
            count("unchanged");
            Ok(HttpResponse::NoContent().finish())
        }
        ReportOutcome::NotFound => {
            count("unknown");
            Err(PrintError::JobNotFound)
        }
        ReportOutcome::Illegal(current) => {
            count("illegal");
            Err(PrintError::IllegalTransition(current, target))
        }
    }
}
