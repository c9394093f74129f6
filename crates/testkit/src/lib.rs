//! Test support shared by every crate's tests: a fresh, migrated PostgreSQL
//! database per test, small HTTP and polling helpers, and a reader of `/metrics`.
//! A dev-dependency only.

pub mod auth;
pub mod cluster;
pub mod db;
pub mod fixture;
pub mod http;
pub mod images;
pub mod ipp;
pub mod metrics;
pub mod printer;
pub mod process;
pub mod s3;

pub use db::TestDatabase;

/// The Standard Webhooks secret tests sign and verify callbacks with.
pub const WEBHOOK_SECRET: &str = "whsec_dGVzdC1zZWNyZXQtZm9yLXBpeHByZXNzLXRlc3Rz";
