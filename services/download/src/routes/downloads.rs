//! `/downloads…`: queue a download, read its task, delete it.
//!
//! This is an internal API: the management API calls it with a token that has the
//! `service` role (admins may too); end users never do. A `callback_url` must lie
//! under `MANAGEMENT_URL` (`crate::management_url`); it is not subject to the
//! private-network ban that applies to image URLs.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use pixpress_domain::download::{CreateDownload, DownloadTask};
use pixpress_kit::auth::Caller;
use pixpress_kit::json::ValidJson;
use pixpress_kit::problem::resource;
use pixpress_kit::request_id;
use uuid::Uuid;

use crate::error::DownloadError;
use crate::{download_tasks, management_url, objects, State};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/downloads").route(web::post().to(create_download)))
        .service(
            resource("/downloads/{id}")
                .route(web::get().to(get_download))
                .route(web::delete().to(delete_download)),
        );
}

/// A caller with the `service` or `admin` role. Extracted before the body, so an end
/// user's request is refused (403) whatever it carries.
pub struct ServiceCaller(pub Caller);

impl FromRequest for ServiceCaller {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let checked = Caller::from_request(req, payload)
            .into_inner()
            .and_then(|caller| {
                if caller.has_role("service") || caller.is_admin() {
                    Ok(ServiceCaller(caller))
                } else {
                    Err(DownloadError::ServiceRoleRequired.into())
                }
            });
        ready(checked)
    }
}

/// Queues the download of an image; a worker picks it up at once.
#[utoipa::path(post, path = "/downloads", security(("bearer" = [])), tag = "downloads",
    request_body = CreateDownload,
    description = "For services: the token needs the `service` role (management-api's) or \
                   `admin`. `callback_url`, when given, must lie under download-service's \
                   `MANAGEMENT_URL` (same scheme, host and port, path under its path); \
                   without a `MANAGEMENT_URL` no callback is accepted.",
    responses(
        (status = 202, description = "Queued", body = DownloadTask,
            headers(("Location" = String, description = "The task"))),
        (status = 400, description = "Invalid body, or a `callback_url` not under `MANAGEMENT_URL`; each bad field is named"),
        (status = 401, description = "Missing, malformed, expired or foreign bearer token"),
        (status = 403, description = "The token has neither the `service` nor the `admin` role"),
        (status = 413, description = "Body over 64 KiB"),
        (status = 415, description = "Not JSON"),
        (status = 503, description = "The database is unavailable",
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    ))]
pub async fn create_download(
    _caller: ServiceCaller,
    state: web::Data<State>,
    body: ValidJson<CreateDownload>,
) -> Result<HttpResponse, DownloadError> {
    let request = body.into_inner();
    if let Some(callback) = &request.callback_url {
        management_url::admit(state.management.as_ref(), callback)
            .map_err(DownloadError::CallbackRefused)?;
    }
    let traceparent = request_id::current_traceparent();
    let task = state
        .db
        .with_connection(async |conn| {
            let callback_url = request.callback_url.as_deref();
            download_tasks::insert(conn, &request.url, callback_url, traceparent.as_deref()).await
        })
        .await?;
    state.queued.announce();
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/downloads/{}", task.id)))
        .json(task))
}

/// Reads a task (management-api's reconciliation asks for reports that never came).
#[utoipa::path(get, path = "/downloads/{id}", security(("bearer" = [])), tag = "downloads",
    params(("id" = Uuid, Path, description = "The task")),
    responses(
        (status = 200, description = "The task", body = DownloadTask),
        (status = 401, description = "Missing, malformed, expired or foreign bearer token"),
        (status = 403, description = "The token has neither the `service` nor the `admin` role"),
        (status = 404, description = "No such task, or it was deleted"),
        (status = 503, description = "The database is unavailable",
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    ))]
pub async fn get_download(
    _caller: ServiceCaller,
    state: web::Data<State>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, DownloadError> {
    let id = id.into_inner();
    let task = state
        .db
        .with_connection(async |conn| download_tasks::get(conn, id).await)
        .await?
        .ok_or(DownloadError::DownloadNotFound(id))?;
    Ok(HttpResponse::Ok().json(task))
}

/// Deletes a task: it answers 404 from then on, its `/images/{id}/…` links too, and
/// its objects leave S3 once no other task refers to them.
#[utoipa::path(delete, path = "/downloads/{id}", security(("bearer" = [])), tag = "downloads",
    params(("id" = Uuid, Path, description = "The task")),
    description = "For services (`service` or `admin` role). Objects are content-addressed, so \
                   the original and thumbnail are deleted only when no other task of the same \
                   bytes refers to them. Idempotent: deleting a deleted task answers 204 again \
                   and finishes releasing its objects (retry after a 503). A task still queued \
                   or running is deleted too; its result is dropped.",
    responses(
        (status = 204, description = "Deleted (now or before)"),
        (status = 401, description = "Missing, malformed, expired or foreign bearer token"),
        (status = 403, description = "The token has neither the `service` nor the `admin` role"),
        (status = 404, description = "No such task"),
        (status = 503, description = "The database or object storage is unavailable; the task may \
                                      be deleted already and a retry finishes releasing its objects",
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    ))]
pub async fn delete_download(
    ServiceCaller(caller): ServiceCaller,
    state: web::Data<State>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, DownloadError> {
    let id = id.into_inner();
    if !objects::delete_task(&state.db, state.storage.as_ref(), id).await? {
        return Err(DownloadError::DownloadNotFound(id));
    }
    log::info!("download {id} deleted by {}", caller.subject);
    Ok(HttpResponse::NoContent().finish())
}
