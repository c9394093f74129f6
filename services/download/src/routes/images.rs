//! `/images/{id}/original|thumbnail`: a redirect to a short-lived presigned S3 URL,
//! so image bytes never pass through this service. Open (no token): users' browsers
//! and printers follow these links. A deleted task's links answer 404.
//!
//! Browsers and printers may reach S3 by different names (under docker compose a
//! browser on the host knows `localhost:8333`, a printer container `s3:8333`), so
//! `?network=internal` asks for a link on the services' own S3 endpoint: the link
//! management-api hands printers (its `/lookup`'s `image_url`).

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use pixpress_domain::download::DownloadState;
use pixpress_kit::problem::resource;
use pixpress_kit::query::ValidQuery;
use uuid::Uuid;

use crate::download_tasks;
use crate::error::DownloadError;
use crate::storage::Audience;
use crate::State;

/// How long a presigned URL stays valid.
const PRESIGNED_FOR_SECS: u32 = 3600;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/images/{id}/original").route(web::get().to(original)))
        .service(resource("/images/{id}/thumbnail").route(web::get().to(thumbnail)));
}

/// The query of an image link.
#[derive(Debug, serde::Deserialize, validator::Validate, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    /// Where the opener reaches S3: `public` (the default: users' browsers,
    /// `S3_PUBLIC_ENDPOINT`) or `internal` (printers and services, `S3_ENDPOINT`).
    #[serde(default)]
    #[param(inline)]
    network: Audience,
}

#[derive(Clone, Copy)]
enum Variant {
    Original,
    Thumbnail,
}

async fn redirect(
    state: &State,
    id: Uuid,
    variant: Variant,
    audience: Audience,
) -> Result<HttpResponse, DownloadError> {
    let task = state
        .db
        .with_connection(async |conn| download_tasks::get(conn, id).await)
        .await?
        .ok_or(DownloadError::ImageNotFound(id))?;
    let key = match (task.state, variant) {
        (DownloadState::Completed, Variant::Original) => task.original_key,
        (DownloadState::Completed, Variant::Thumbnail) => task.thumbnail_key,
        (DownloadState::Failed, _) => {
            return Err(DownloadError::ImageFailed {
                id,
                reason: task.error.unwrap_or_default(),
            })
        }
        (DownloadState::Queued | DownloadState::Running, _) => {
            return Err(DownloadError::ImageNotReady(id))
        }
    };
    let key = key.ok_or(DownloadError::ObjectMissing(id))?;
    let storage = state
        .storage
        .as_ref()
        .ok_or(DownloadError::StorageNotConfigured)?;
    let url = storage
        .presign_get_for(audience, &key, PRESIGNED_FOR_SECS)
        .await
        .map_err(DownloadError::StorageUnavailable)?;
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, url))
        .insert_header((header::CACHE_CONTROL, "private, max-age=60"))
        .finish())
}

/// Redirects to the stored original.
#[utoipa::path(get, path = "/images/{id}/original", tag = "images",
    params(("id" = Uuid, Path, description = "The download task"), LinkQuery),
    responses(
        (status = 302, description = "To a presigned S3 URL of the original, valid for an hour",
            headers(("Location" = String, description = "The presigned URL"),
                ("Cache-Control" = String, description = "`private, max-age=60`"))),
        (status = 400, description = "`network` is neither `public` nor `internal`"),
        (status = 404, description = "No such image, it was deleted, or its download failed"),
        (status = 409, description = "Not downloaded yet",
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
        (status = 503, description = "The database or object storage is unavailable",
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    ))]
pub async fn original(
    state: web::Data<State>,
    id: web::Path<Uuid>,
    query: ValidQuery<LinkQuery>,
) -> Result<HttpResponse, DownloadError> {
    let network = query.into_inner().network;
    redirect(&state, id.into_inner(), Variant::Original, network).await
}

/// Redirects to the stored JPEG thumbnail.
#[utoipa::path(get, path = "/images/{id}/thumbnail", tag = "images",
    params(("id" = Uuid, Path, description = "The download task"), LinkQuery),
    responses(
        (status = 302, description = "To a presigned S3 URL of the JPEG thumbnail, valid for an hour",
            headers(("Location" = String, description = "The presigned URL"),
                ("Cache-Control" = String, description = "`private, max-age=60`"))),
        (status = 400, description = "`network` is neither `public` nor `internal`"),
        (status = 404, description = "No such image, it was deleted, or its download failed"),
        (status = 409, description = "Not downloaded yet",
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
        (status = 503, description = "The database or object storage is unavailable",
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    ))]
pub async fn thumbnail(
    state: web::Data<State>,
    id: web::Path<Uuid>,
    query: ValidQuery<LinkQuery>,
) -> Result<HttpResponse, DownloadError> {
    let network = query.into_inner().network;
    redirect(&state, id.into_inner(), Variant::Thumbnail, network).await
}
