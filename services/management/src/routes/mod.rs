//! management-api's routes, one module per URL family.

pub mod images;
pub mod internal;
pub mod lookup;
pub mod printers;

use actix_web::http::StatusCode;
use pixpress_kit::ApiError;

/// Ids in paths are positive; anything else names no resource.
pub(crate) fn positive(id: i64, what: &str) -> Result<i64, ApiError> {
    if id > 0 {
        Ok(id)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no such {what}: {id}"),
        ))
    }
}
