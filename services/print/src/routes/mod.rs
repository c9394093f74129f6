//! print-service's routes.

pub mod jobs;
