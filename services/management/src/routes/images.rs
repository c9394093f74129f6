//! `/users/{user_id}/images…`: a user's image records, and the operator's retry of
//! a failed download.

use actix_web::{http::header, web, HttpResponse};
use pixpress_domain::management::{CreateImage, Image};
use pixpress_kit::auth::Caller;
use pixpress_kit::json::ValidJson;
use pixpress_kit::problem::resource;
use pixpress_kit::request_id;

use super::positive;
use crate::catalog::RetryRefusal;
use crate::error::ManagementError;
use crate::State;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/users/{user_id}/images")
            .route(web::post().to(create_image))
            .route(web::get().to(list_images)),
    )
    .service(
        resource("/users/{user_id}/images/{id}")
            .route(web::get().to(get_image))
            .route(web::delete().to(delete_image)),
    )
    .service(resource("/users/{user_id}/images/{id}/retry").route(web::post().to(retry_image)));
}

/// Adds an image to the user's collection by URL. It is `pending` while download-service
/// fetches it, then `ready` or `failed`. `"ready": true` (tests and development only)
/// records it `ready` at once with `original_url` = `url`, and downloads nothing.
#[utoipa::path(post, path = "/users/{user_id}/images", security(("bearer" = [])), tag = "images",
    params(("user_id" = i64, Path, minimum = 1, description = "The user")),
    request_body = CreateImage,
    responses(
        (status = 201, description = "Image recorded", body = Image,
            headers(("Location" = String, description = "The new image"))),
        (status = 400, description = "Invalid body; each bad field is named"),
        (status = 401, description = "Missing, malformed, expired or foreign bearer token"),
        (status = 403, description = "Not the token's user (and not an admin)"),
        (status = 404, description = "Not a user id"),
        (status = 413, description = "Body over 64 KiB"),
        (status = 415, description = "Not JSON"),
    ))]
pub async fn create_image(
    state: web::Data<State>,
    caller: Caller,
    user_id: web::Path<i64>,
    body: ValidJson<CreateImage>,
) -> Result<HttpResponse, ManagementError> {
    let user_id = positive(user_id.into_inner(), "user")?;
    if !caller.may_act_for(user_id) {
        return Err(ManagementError::NotYourself);
    }
    let CreateImage { url, ready } = body.into_inner();
    let image = state.catalog.create_image(user_id, url, ready);
    if !ready {
        ask_for_download(&state, image.id, &image.url);
    }
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/users/{user_id}/images/{}", image.id),
        ))
        .json(image))
}

/// The user's images, oldest first.
#[utoipa::path(get, path = "/users/{user_id}/images", security(("bearer" = [])), tag = "images",
    params(("user_id" = i64, Path, minimum = 1, description = "The user")),
    responses(
        (status = 200, description = "The user's images, oldest first", body = [Image]),
        (status = 401, description = "Missing, malformed, expired or foreign bearer token"),
        (status = 404, description = "Not a user id, or another user than the token's"),
    ))]
pub async fn list_images(
    state: web::Data<State>,
    caller: Caller,
    user_id: web::Path<i64>,
) -> Result<HttpResponse, ManagementError> {
    let user_id = positive(user_id.into_inner(), "user")?;
    if !caller.may_act_for(user_id) {
        return Err(ManagementError::UserNotFound(user_id));
    }
    Ok(HttpResponse::Ok().json(state.catalog.images_of(user_id)))
}

/// One image; another user's image is 404 like a missing one.
#[utoipa::path(get, path = "/users/{user_id}/images/{id}", security(("bearer" = [])), tag = "images",
    params(("user_id" = i64, Path, minimum = 1, description = "The user"), ("id" = i64, Path, minimum = 1, description = "The image")),
    responses(
        (status = 200, description = "The image", body = Image),
        (status = 401, description = "Missing, malformed, expired or foreign bearer token"),
        (status = 404, description = "No such image (or another user's)"),
    ))]
pub async fn get_image(
    state: web::Data<State>,
    caller: Caller,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ManagementError> {
    let (user_id, id) = path.into_inner();
    let image = if caller.may_act_for(user_id) {
        state.catalog.image_of(user_id, id)
    } else {
        None
    };
    let image = image.ok_or(ManagementError::ImageNotFound { user_id, id })?;
    Ok(HttpResponse::Ok().json(image))
}

/// Deletes the image. Its download task is deleted at download-service (in the
/// background, retried while download-service is unavailable), so the image's
/// `original_url`/`thumbnail_url` stop working and its stored objects go once no
/// other image refers to the same bytes.
#[utoipa::path(delete, path = "/users/{user_id}/images/{id}", security(("bearer" = [])), tag = "images",
    params(("user_id" = i64, Path, minimum = 1, description = "The user"), ("id" = i64, Path, minimum = 1, description = "The image")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing, malformed, expired or foreign bearer token"),
        (status = 404, description = "No such image (or another user's)"),
    ))]
pub async fn delete_image(
    state: web::Data<State>,
    caller: Caller,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ManagementError> {
    let (user_id, id) = path.into_inner();
    let deleted = if caller.may_act_for(user_id) {
        state.catalog.delete_image(user_id, id)
    } else {
        None
    };
    let task = deleted.ok_or(ManagementError::ImageNotFound { user_id, id })?;
    if let Some(task) = task {
        state.downloads.forget(task);
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Operators only: asks download-service again for a `failed` image's URL. The image
/// is `pending` again (its error cleared) and goes `ready` or `failed` like a new one;
/// the failed download's task is deleted. The retry is logged with who asked and the
/// error it replaces.
#[utoipa::path(post, path = "/users/{user_id}/images/{id}/retry", security(("bearer" = [])), tag = "images",
    params(("user_id" = i64, Path, minimum = 1, description = "The user"), ("id" = i64, Path, minimum = 1, description = "The image")),
    responses(
        (status = 200, description = "Asked again: the image, `pending`", body = Image),
        (status = 401, description = "Missing, malformed, expired or foreign bearer token"),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "No such image"),
        (status = 409, description = "The image is not `failed` (`pending` or `ready`)"),
    ))]
pub async fn retry_image(
    state: web::Data<State>,
    caller: Caller,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ManagementError> {
    if !caller.is_admin() {
        return Err(ManagementError::AdminOnly("retry downloads"));
    }
    let (user_id, id) = path.into_inner();
    let retried = state
        .catalog
        .retry(user_id, id)
        .map_err(|refusal| match refusal {
            RetryRefusal::NoSuchImage => ManagementError::ImageNotFound { user_id, id },
            RetryRefusal::NotFailed(status) => ManagementError::NotFailed { id, status },
        })?;
    log::info!(
        "audit: {} retried the download of image {id} of user {user_id} (it had failed with {})",
        caller.subject,
        retried.previous_error.as_deref().unwrap_or("no error code")
    );
    if let Some(task) = retried.previous_task {
        state.downloads.forget(task);
    }
    ask_for_download(&state, id, &retried.image.url);
    Ok(HttpResponse::Ok().json(retried.image))
}

/// Asks download-service for image `image_id`'s download in the background: the
/// answer to the user does not wait for it. The request carries this request's id,
/// so both services' logs tell one story.
fn ask_for_download(state: &web::Data<State>, image_id: i64, url: &str) {
    let state = state.clone();
    let url = url.to_owned();
    let id = request_id::current().unwrap_or_else(request_id::generate);
    tokio::spawn(request_id::scope(id, async move {
        state
            .downloads
            .request(&state.catalog, image_id, &url)
            .await;
    }));
}
