//! Every way a download-service request can fail, and the status each maps to.
//! Each problem has a stable code in its `type`, so a client can tell "not
//! downloaded yet" (retry soon) from "the download failed" (never will be).
//! Causes of server errors go to the log (via `pixpress_kit::problem::respond`),
//! never to the client.
//!
//! Malformed request bodies are answered by the kit's `ValidJson` extractor before a
//! handler runs, and bad or missing tokens (401) by the kit's `Caller`, so they have
//! no variant here.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use pixpress_kit::db::DbError;
use pixpress_kit::json::invalid_field;
use pixpress_kit::{ApiError, ServiceError};
use uuid::Uuid;

use crate::management_url::CallbackRefusal;
use crate::objects::ObjectsError;
use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// 403 `service-role-required`: `/downloads…` asked with a token that has neither
    /// the `service` nor the `admin` role (an end user's).
    #[error("downloads are for services: a token with the `service` role is required")]
    ServiceRoleRequired,
    /// 400 `validation-error` naming `callback_url`: not under `MANAGEMENT_URL`.
    #[error("callback_url {0}")]
    CallbackRefused(#[source] CallbackRefusal),
    /// 404: no such download task.
    #[error("no download {0}")]
    DownloadNotFound(Uuid),
    /// 404: no download task for this image.
    #[error("no image {0}")]
    ImageNotFound(Uuid),
    /// 404: the image's download failed for good; `reason` is its failure code.
    #[error("image {id} could not be downloaded ({reason})")]
    ImageFailed { id: Uuid, reason: String },
    /// 409 with `Retry-After: 1`: the image is queued or being downloaded.
    #[error("image {0} is not downloaded yet")]
    ImageNotReady(Uuid),
    /// 404: the task completed but names no stored object of this variant.
    #[error("image {0} has no stored object")]
    ObjectMissing(Uuid),
    /// 503: this replica has no object storage (`S3_ENDPOINT` is not set).
    #[error("object storage is not configured")]
    StorageNotConfigured,
    /// 503 with `Retry-After: 1`: object storage failed to answer.
    #[error("object storage is unavailable; retry later")]
    StorageUnavailable(#[source] StorageError),
    /// 503 with `Retry-After`: the database is unavailable.
    #[error(transparent)]
    Database(#[from] DbError),
}

impl ServiceError for DownloadError {
    fn api_error(&self) -> ApiError {
        use DownloadError::*;
        let (code, status) = match self {
            ServiceRoleRequired => ("service-role-required", StatusCode::FORBIDDEN),
            CallbackRefused(why) => return invalid_field("callback_url".into(), why.to_string()),
            DownloadNotFound(_) => ("download-not-found", StatusCode::NOT_FOUND),
            ImageNotFound(_) => ("image-not-found", StatusCode::NOT_FOUND),
            ImageFailed { .. } => ("image-download-failed", StatusCode::NOT_FOUND),
            ImageNotReady(_) => ("image-not-ready", StatusCode::CONFLICT),
            ObjectMissing(_) => ("image-object-missing", StatusCode::NOT_FOUND),
            StorageNotConfigured => ("storage-not-configured", StatusCode::SERVICE_UNAVAILABLE),
            StorageUnavailable(_) => ("storage-unavailable", StatusCode::SERVICE_UNAVAILABLE),
            Database(e) => return e.api_error(),
        };
        let api = ApiError::new(code, status, self.to_string());
        match self {
            ImageNotReady(_) | StorageUnavailable(_) => api.retry_after(1),
            _ => api,
        }
    }
}

impl From<ObjectsError> for DownloadError {
    fn from(err: ObjectsError) -> Self {
        match err {
            ObjectsError::Database(e) => DownloadError::Database(e),
            ObjectsError::Storage(StorageError::NotConfigured) => {
                DownloadError::StorageNotConfigured
            }
            ObjectsError::Storage(e) => DownloadError::StorageUnavailable(e),
        }
    }
}

impl ResponseError for DownloadError {
    fn error_response(&self) -> HttpResponse {
        pixpress_kit::problem::respond(self)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::RETRY_AFTER;

    use super::*;

    #[test]
    fn each_problem_has_its_status_stable_type_and_retry_after() {
        let id = Uuid::nil();
        let failed = DownloadError::ImageFailed {
            id,
            reason: "too_large".into(),
        };
        let cases = [
            (
                DownloadError::ServiceRoleRequired,
                403,
                "service-role-required",
                None,
            ),
            (
                DownloadError::CallbackRefused(CallbackRefusal::NoManagementUrl),
                400,
                "validation-error",
                None,
            ),
            (
                DownloadError::DownloadNotFound(id),
                404,
                "download-not-found",
                None,
            ),
            (
                DownloadError::ImageNotFound(id),
                404,
                "image-not-found",
                None,
            ),
            (failed, 404, "image-download-failed", None),
            (
                DownloadError::ImageNotReady(id),
                409,
                "image-not-ready",
                Some("1"),
            ),
            (
                DownloadError::ObjectMissing(id),
                404,
                "image-object-missing",
                None,
            ),
            (
                DownloadError::StorageNotConfigured,
                503,
                "storage-not-configured",
                None,
            ),
            (
                DownloadError::StorageUnavailable(StorageError::NotConfigured),
                503,
                "storage-unavailable",
                Some("1"),
            ),
        ];
        for (error, status, code, retry_after) in cases {
            let api = error.api_error();
            assert_eq!(api.problem().status, status, "{error}");
            assert_eq!(
                api.problem().kind,
                format!("https://pixpress.dev/problems/{code}")
            );
            let res = error.error_response();
            let header = res.headers().get(RETRY_AFTER).map(|v| v.to_str().unwrap());
            assert_eq!(header, retry_after, "{error}");
        }
    }
}
