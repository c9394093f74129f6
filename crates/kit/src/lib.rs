//! The service kit: everything a pixpress binary would otherwise repeat.
//!
//! A service brings its routes, its SQL and its background work; the kit brings
//! configuration, logging, the Postgres pool and migrations, the HTTP server with
//! its middleware (request ids and trace context, metrics, problem+json errors),
//! span export, health and readiness, the backpressure gate, the outbound HTTP
//! client and graceful shutdown.

pub mod access_log;
pub mod auth;
pub mod batch;
pub mod breaker;
pub mod client;
pub mod config;
pub mod db;
pub mod docs;
pub mod fetch;
pub mod gate;
pub mod health;
pub mod journal;
pub mod json;
pub mod metrics;
pub mod notify;
pub mod openapi;
pub mod otlp;
pub mod problem;
pub mod query;
pub mod queue;
pub mod request_id;
pub mod retry;
pub mod server;
pub mod telemetry;
pub mod trace;
pub mod webhook;

pub use problem::{ApiError, ServiceError};
