//! management-api's routes, one module per URL family.

pub mod images;
pub mod internal;
pub mod lookup;
pub mod printers;

use crate::error::ManagementError;

/// Ids in paths are positive; anything else names no `what` (404).
pub(crate) fn positive(id: i64, what: &'static str) -> Result<i64, ManagementError> {
    if id > 0 {
        Ok(id)
    } else {
        Err(ManagementError::NotAnId { what, id })
    }
}
