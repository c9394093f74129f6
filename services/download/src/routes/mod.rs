//! download-service's routes.

pub mod downloads;
pub mod images;
