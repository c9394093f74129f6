//! Batteries for running pixpress without any infrastructure installed beyond the
//! PostgreSQL server binaries: used by the local stack and the test kit, never by a
//! service.

pub mod ipp;
pub mod postgres;
pub mod s3;

pub use postgres::{PostgresCluster, PostgresError};
