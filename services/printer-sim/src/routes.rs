//! printer-sim's HTTP face: `POST /jobs` to print, `GET /jobs` to see what it printed.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use pixpress_domain::printer::{JobAccepted, PrintedJob, PrinterJob};
use pixpress_kit::json::ValidJson;
use pixpress_kit::problem::resource;

use crate::error::PrinterError;
use crate::printer::{Printer, Submission};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/jobs")
            .route(web::post().to(submit_job))
            .route(web::get().to(list_jobs)),
    );
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

/// Every job the printer has received, with how often it was received and printed.
#[utoipa::path(get, path = "/jobs", tag = "printer",
    responses((status = 200, description = "Jobs seen", body = [PrintedJob])))]
pub async fn list_jobs(printer: web::Data<Arc<Printer>>) -> HttpResponse {
    HttpResponse::Ok().json(printer.list())
}
