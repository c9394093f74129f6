//! print-service: takes print jobs over REST, asks the management API whether the
//! user may print the file, keeps the jobs in PostgreSQL and (later) dispatches
//! them to printers.
//!
//! [`build`] turns a [`Config`] and a bound listener into a running
//! [`pixpress_kit::server::Service`]; `main.rs` and the tests both use it.

mod config;

use std::net::TcpListener;

use pixpress_kit::db::{self, Database};
use pixpress_kit::health::{openapi_document, Readiness};
use pixpress_kit::metrics::http_metrics;
use pixpress_kit::server::{self, Background, HttpSettings, Service};
use utoipa::OpenApi;

pub use config::Config;

/// Largest request body print-service accepts (DESIGN.md §3: 413 above 64 KiB).
pub const JSON_LIMIT: usize = 64 * 1024;

#[derive(OpenApi)]
#[openapi(info(description = "Print jobs: intake, status, cancellation."))]
struct PrintApi;

/// Builds print-service on `listener`. Never waits for the database: migrations
/// run in the background and `/ready` reports when they are done.
pub fn build(config: Config, listener: TcpListener) -> anyhow::Result<Service> {
    let addr = listener.local_addr()?;
    let pool = db::pool(&config.database, config.backend_timeout()).map_err(anyhow::Error::msg)?;
    let database = Database::new(pool);
    let mut background = Background::new();
    background.push(database.migrate_in_background(background.token()));

    let metrics = http_metrics("print");
    let readiness = Readiness::new().with_database(&database);
    let settings = HttpSettings {
        metrics,
        readiness,
        openapi: openapi_document("print-service", PrintApi::openapi()),
        shutdown_grace: config.common.shutdown_grace(),
        json_limit: JSON_LIMIT,
        workers: 0,
    };
    let server = server::serve(listener, settings, |_cfg| {})?;
    Ok(Service::new(
        "print-service",
        addr,
        server,
        background,
        config.common.shutdown_grace(),
    ))
}
