//! `/printers…`: the printer registry.

use actix_web::{web, HttpResponse};
use pixpress_domain::management::{Printer, PutPrinter};
use pixpress_kit::auth::Caller;
use pixpress_kit::json::ValidJson;
use pixpress_kit::problem::resource;

use super::positive;
use crate::error::ManagementError;
use crate::State;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/printers").route(web::get().to(list_printers)))
        .service(resource("/printers/{id}").route(web::put().to(put_printer)));
}

#[utoipa::path(get, path = "/printers", security(("bearer" = [])), tag = "printers",
    responses(
        (status = 200, description = "Registered printers", body = [Printer]),
        (status = 401, description = "Missing, malformed, expired or foreign bearer token"),
    ))]
pub async fn list_printers(state: web::Data<State>, _caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(state.catalog.printers())
}

/// Registers printer `id` at `url`, or moves it there; `enabled: false` takes it out
/// of service for new jobs (lookups naming it answer 409, and the default printer
/// is the next enabled one). Jobs print-service already holds for it still print:
/// print-service reads this registry and sends a moved printer's queued jobs to its
/// new URL.
#[utoipa::path(put, path = "/printers/{id}", security(("bearer" = [])), tag = "printers",
    params(("id" = i64, Path, minimum = 1, description = "The printer")),
    request_body = PutPrinter,
    responses(
        (status = 200, description = "Printer moved, enabled or disabled", body = Printer),
        (status = 201, description = "Printer registered", body = Printer),
        (status = 400, description = "Invalid body"),
        (status = 401, description = "Missing, malformed, expired or foreign bearer token"),
        (status = 403, description = "Only admins register printers"),
        (status = 404, description = "Not a printer id"),
        (status = 413, description = "Body over 64 KiB"),
        (status = 415, description = "Not JSON"),
    ))]
pub async fn put_printer(
    state: web::Data<State>,
    caller: Caller,
    id: web::Path<i64>,
    body: ValidJson<PutPrinter>,
) -> Result<HttpResponse, ManagementError> {
    if !caller.is_admin() {
        return Err(ManagementError::AdminOnly("register printers"));
    }
    let id = positive(id.into_inner(), "printer")?;
    let PutPrinter { url, enabled } = body.into_inner();
    let printer = Printer {
        id,
        url: url.clone(),
        enabled,
    };
    if state.catalog.put_printer(id, url, enabled) {
        Ok(HttpResponse::Created().json(printer))
    } else {
        Ok(HttpResponse::Ok().json(printer))
    }
}
