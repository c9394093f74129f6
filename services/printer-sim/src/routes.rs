//! printer-sim's HTTP face: `POST /jobs` to print (the image is fetched afterwards,
//! not while the sender waits), `GET /jobs` to see what it printed and the images it
//! fetched, `GET /jobs/{correlation_id}` for what became of one job (the printer
//! protocol's status query, which print-service's reconciliation asks).

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use pixpress_domain::printer::{JobAccepted, PrintedJob, PrinterJob, PrinterJobStatus};
use pixpress_kit::json::ValidJson;
use pixpress_kit::problem::resource;
use uuid::Uuid;

use crate::error::PrinterError;
use crate::printer::{Printer, Submission};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/jobs")
            .route(web::post().to(submit_job))
            .route(web::get().to(list_jobs)),
    )
    .service(resource("/jobs/{correlation_id}").route(web::get().to(job_status)));
}

/// Takes a job: 202 whether new or a repeat (a repeat is not printed again), 503
/// with `Retry-After` when every slot is busy or the spool cannot record it (the
/// printer is starting, or its disk failed).
#[utoipa::path(post, path = "/jobs", tag = "printer", request_body = PrinterJob,
    responses(
        (status = 202, description = "Accepted (or already accepted before)", body = JobAccepted),
        (status = 400, description = "Invalid job; each bad field is named"),
        (status = 413, description = "Body over 64 KiB"),
        (status = 415, description = "Not JSON"),
        (status = 503, description = "At capacity, starting, or the spool cannot record jobs", headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    ))]
pub async fn submit_job(
    printer: web::Data<Arc<Printer>>,
    job: ValidJson<PrinterJob>,
) -> Result<HttpResponse, PrinterError> {
    let job = job.into_inner();
    let correlation_id = job.correlation_id;
    let submission = printer.submit(job).await?;
    let delay = printer.accept_delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    Ok(HttpResponse::Accepted().json(JobAccepted {
        correlation_id,
        duplicate: submission == Submission::Duplicate,
    }))
}

/// Every job the printer has received, with how often it was received and printed,
/// and the size and SHA-256 of the image it fetched for it.
#[utoipa::path(get, path = "/jobs", tag = "printer",
    description = "Every job the printer has received: how often it was received and printed, \
                   its last status, whether print-service took its final callback, and the size \
                   and SHA-256 of the image fetched for it (`null` until fetched, and for a job \
                   whose image could not be fetched).",
    responses((status = 200, description = "Jobs seen", body = [PrintedJob])))]
pub async fn list_jobs(printer: web::Data<Arc<Printer>>) -> HttpResponse {
    HttpResponse::Ok().json(printer.list())
}

/// What became of the job sent under `correlation_id`.
#[utoipa::path(get, path = "/jobs/{correlation_id}", tag = "printer",
    description = "The printer protocol's status query (DESIGN.md §12), asked by print-service's \
                   reconciliation when a job's callback is overdue. `status` is `accepted` (taken, \
                   not printing yet, or fetching its image), `printing`, `completed` or `failed`. \
                   `image_bytes` and `image_sha256` are the size and lowercase hex SHA-256 of the \
                   image the printer fetched from the job's `image_url` (following redirects) \
                   before it reported `printing`; `null` until then, and for a job whose image \
                   it could not get. `error` says why a job failed, with a stable reason: \
                   `image_unreachable` (the image could not be fetched: a 4xx, a server still \
                   failing, timing out or unreachable after 3 attempts, or a body over \
                   `PRINTER_MAX_IMAGE_BYTES`), `image_undecodable` (what was fetched is not a \
                   JPEG, PNG, GIF or WebP image), or `paper jam` (the simulated failure of \
                   `PRINTER_FAIL_RATE`). The job's final `failed` callback carries the same \
                   reason as its `detail`.",
    params(("correlation_id" = Uuid, Path, description = "The job's correlation id")),
    responses(
        (status = 200, description = "The printer knows the job", body = PrinterJobStatus),
        (status = 404, description = "The printer does not know the job (never sent, or forgotten)"),
    ))]
pub async fn job_status(
    printer: web::Data<Arc<Printer>>,
    correlation_id: web::Path<Uuid>,
) -> Result<HttpResponse, PrinterError> {
    let status = printer
        .status(correlation_id.into_inner())
        .ok_or(PrinterError::UnknownJob)?;
    Ok(HttpResponse::Ok().json(status))
}
