//! ipp-gateway's HTTP face, the printer protocol of DESIGN.md §12 once per printer:
//! `POST /printers/{name}/jobs` to print, `GET /printers/{name}/jobs/{correlation_id}`
//! for what became of a job (print-service's reconciliation asks it), and
//! `GET /printers` for how each printer is doing.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use pixpress_domain::ipp::IppPrinter;
use pixpress_domain::printer::{JobAccepted, PrinterJob, PrinterJobStatus};
use pixpress_kit::json::ValidJson;
use pixpress_kit::problem::resource;
use uuid::Uuid;

use crate::error::GatewayError;
use crate::gateway::{Gateway, Submission};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/printers").route(web::get().to(list_printers)))
        .service(resource("/printers/{name}/jobs").route(web::post().to(submit_job)))
        .service(
            resource("/printers/{name}/jobs/{correlation_id}").route(web::get().to(job_status)),
        );
}

/// Takes a job for printer `name`: 202 whether new or a repeat (a repeat is never
/// sent to the printer again), 404 for a printer that is not configured, 503 with
/// `Retry-After` when the journal cannot record it. The printer's own troubles
/// (off, out of paper) do not refuse the job: it waits for the printer.
#[utoipa::path(post, path = "/printers/{name}/jobs", tag = "printer", request_body = PrinterJob,
    params(("name" = String, Path, description = "The printer's name in IPP_PRINTERS")),
    responses(
        (status = 202, description = "Accepted (or already accepted before)", body = JobAccepted),
        (status = 400, description = "Invalid job; each bad field is named"),
        (status = 404, description = "No printer of that name"),
        (status = 413, description = "Body over 64 KiB"),
        (status = 415, description = "Not JSON"),
        (status = 503, description = "Starting, or the journal cannot record jobs", headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    ))]
pub async fn submit_job(
    gateway: web::Data<Arc<Gateway>>,
    name: web::Path<String>,
    job: ValidJson<PrinterJob>,
) -> Result<HttpResponse, GatewayError> {
    let job = job.into_inner();
    let correlation_id = job.correlation_id;
    let submission = gateway.submit(&name, job).await?;
    Ok(HttpResponse::Accepted().json(JobAccepted {
        correlation_id,
        duplicate: submission == Submission::Duplicate,
    }))
}

/// What became of the job sent under `correlation_id`.
#[utoipa::path(get, path = "/printers/{name}/jobs/{correlation_id}", tag = "printer",
    description = "The printer protocol's status query (DESIGN.md §12). `status` is `accepted` \
                   (taken; waiting for its image, its printer or its turn), `printing`, \
                   `completed` or `failed` (`error` says why: `image_unreachable`, \
                   `format_unsupported…`, the printer's `job-state-reasons`…). `image_bytes` and \
                   `image_sha256` describe the image fetched from `image_url` once it was. \
                   Correlation ids are unique across the gateway, so any configured printer \
                   name answers for a job.",
    params(
        ("name" = String, Path, description = "The printer's name in IPP_PRINTERS"),
        ("correlation_id" = Uuid, Path, description = "The job's correlation id"),
    ),
    responses(
        (status = 200, description = "The gateway knows the job", body = PrinterJobStatus),
        (status = 404, description = "No such printer, or the gateway does not know the job"),
    ))]
pub async fn job_status(
    gateway: web::Data<Arc<Gateway>>,
    path: web::Path<(String, Uuid)>,
) -> Result<HttpResponse, GatewayError> {
    let (name, correlation_id) = path.into_inner();
    if !gateway.knows_printer(&name) {
        return Err(GatewayError::UnknownPrinter(name));
    }
    let status = gateway
        .status(correlation_id)
        .ok_or(GatewayError::UnknownJob)?;
    Ok(HttpResponse::Ok().json(status))
}

/// Every configured printer as it answers Get-Printer-Attributes now.
#[utoipa::path(get, path = "/printers", tag = "printer",
    responses((status = 200, description = "The printers, in configuration order", body = [IppPrinter])))]
pub async fn list_printers(gateway: web::Data<Arc<Gateway>>) -> HttpResponse {
    HttpResponse::Ok().json(gateway.printers().await)
}
