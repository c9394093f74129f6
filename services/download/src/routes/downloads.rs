//! `/downloads…`: queue a download, read its task.
//!
//! This is an internal API (the management API calls it): `callback_url` is trusted
//! and not subject to the private-network ban that applies to image URLs.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use pixpress_domain::download::{CreateDownload, DownloadTask};
use pixpress_kit::json::ValidJson;
use pixpress_kit::problem::resource;
use uuid::Uuid;

use crate::download_tasks;
use crate::error::DownloadError;
use crate::State;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/downloads").route(web::post().to(create_download)))
        .service(resource("/downloads/{id}").route(web::get().to(get_download)));
}

/// Queues the download of an image; a worker picks it up at once.
#[utoipa::path(post, path = "/downloads", tag = "downloads", request_body = CreateDownload,
    responses(
        (status = 202, description = "Queued", body = DownloadTask,
            headers(("Location" = String, description = "The task"))),
        (status = 400, description = "Invalid body; each bad field is named"),
        (status = 413, description = "Body over 64 KiB"),
        (status = 415, description = "Not JSON"),
        (status = 503, description = "The database is unavailable",
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    ))]
pub async fn create_download(
    state: web::Data<State>,
    body: ValidJson<CreateDownload>,
) -> Result<HttpResponse, DownloadError> {
    let request = body.into_inner();
    let conn = state.db.get().await?;
    let task =
        download_tasks::insert(&*conn, &request.url, request.callback_url.as_deref()).await?;
    state.queued.announce();
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/downloads/{}", task.id)))
        .json(task))
}

#[utoipa::path(get, path = "/downloads/{id}", tag = "downloads",
    params(("id" = Uuid, Path, description = "The task")),
    responses(
        (status = 200, description = "The task", body = DownloadTask),
        (status = 404, description = "No such task"),
        (status = 503, description = "The database is unavailable",
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    ))]
pub async fn get_download(
    state: web::Data<State>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, DownloadError> {
    let id = id.into_inner();
    let conn = state.db.get().await?;
    let task = download_tasks::get(&*conn, id)
        .await?
        .ok_or(DownloadError::DownloadNotFound(id))?;
    Ok(HttpResponse::Ok().json(task))
}
