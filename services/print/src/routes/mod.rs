//! print-service's routes.

pub mod callbacks;
pub mod jobs;
