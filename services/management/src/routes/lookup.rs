//! `/lookup`: may this user print this file, where is it, which printer takes it?

use actix_web::{web, HttpResponse};
use pixpress_domain::management::{Lookup, LookupQuery};
use pixpress_kit::auth::Caller;
use pixpress_kit::problem::resource;

use crate::error::ManagementError;
use crate::State;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/lookup").route(web::get().to(lookup)));
}

#[utoipa::path(get, path = "/lookup", security(("bearer" = [])), tag = "lookup", params(LookupQuery),
    description = "For services: the token needs the `service` role (print-service's \
                   `MANAGEMENT_TOKEN`) or `admin`; an end user's token is refused with 403.",
    responses(
        (status = 200, description = "The user may print the file", body = Lookup),
        (status = 400, description = "Missing or non-integer `user_id`/`file_id`"),
        (status = 401, description = "Missing, malformed, expired or foreign bearer token"),
        (status = 403, description = "The token has neither the `service` nor the `admin` role, or the image belongs to someone else"),
        (status = 404, description = "No such image (`image-not-found`), or no such printer (`printer-not-found`)"),
        (status = 409, description = "The image is not downloaded yet (`image-not-ready`), or the printer is disabled (`printer-disabled`)"),
        (status = 503, description = "No printer was asked for and none is enabled (`no-printer`)"),
    ))]
pub async fn lookup(
    state: web::Data<State>,
    caller: Caller,
    query: web::Query<LookupQuery>,
) -> Result<HttpResponse, ManagementError> {
    // Services (print-service) and admins ask; end users do not.
    if !(caller.has_role("service") || caller.is_admin()) {
        return Err(ManagementError::ServiceRoleRequired("lookup"));
    }
    let _in_flight = state.lookups.enter();
    if !state.lookup_latency.is_zero() {
        tokio::time::sleep(state.lookup_latency).await;
    }
    let LookupQuery {
        user_id,
        file_id,
        printer_id,
    } = query.into_inner();
    Ok(HttpResponse::Ok().json(state.catalog.lookup(user_id, file_id, printer_id)?))
}
