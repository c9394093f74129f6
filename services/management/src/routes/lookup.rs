//! `/lookup`: may this user print this file, where is it, which printer takes it?

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use pixpress_domain::management::{Lookup, LookupQuery};
use pixpress_domain::Problem;
use pixpress_kit::auth::Caller;
use pixpress_kit::problem::resource;
use pixpress_kit::ApiError;

use crate::catalog::LookupRefusal;
use crate::State;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/lookup").route(web::get().to(lookup)));
}

#[utoipa::path(get, path = "/lookup", security(("bearer" = [])), tag = "lookup", params(LookupQuery),
    description = "For services: the token needs the `service` role (print-service's \
                   `MANAGEMENT_TOKEN`) or `admin`; an end user's token is refused with 403.",
    responses(
        (status = 200, description = "The user may print the file", body = Lookup),
        (status = 400, description = "Missing or non-integer `user_id`/`file_id`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, malformed, expired or foreign bearer token", body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "The token has neither the `service` nor the `admin` role, or the image belongs to someone else", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such image", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The image is not downloaded yet", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn lookup(
    state: web::Data<State>,
    caller: Caller,
    query: web::Query<LookupQuery>,
) -> Result<HttpResponse, ApiError> {
    // Services (print-service) and admins ask; end users do not.
    if !(caller.has_role("service") || caller.is_admin()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "lookup is for services: a token with the `service` role is required",
        ));
    }
    let _in_flight = state.lookups.enter();
    if !state.lookup_latency.is_zero() {
        tokio::time::sleep(state.lookup_latency).await;
    }
    let LookupQuery { user_id, file_id } = query.into_inner();
    match state.catalog.lookup(user_id, file_id) {
        Ok(found) => Ok(HttpResponse::Ok().json(found)),
        Err(LookupRefusal::NoSuchImage) => Err(ApiError::not_found(format!("no image {file_id}"))),
        Err(LookupRefusal::NotOwner) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("image {file_id} belongs to another user"),
        )),
        Err(LookupRefusal::NotReady) => Err(ApiError::conflict(format!(
            "image {file_id} is not downloaded yet"
        ))),
        // Not documented: printer 1 is registered at start and printers are never
        // removed, so this cannot happen; it stays a 503, never a 500, if that changes.
        Err(LookupRefusal::NoPrinter) => Err(ApiError::unavailable("no printer is registered")),
    }
}
