//! print-service: takes print jobs over REST, asks the management API whether the
//! user may print the file, keeps the jobs in PostgreSQL and dispatches them to
//! printers.
//!
//! [`build`] turns a [`Config`] and a bound listener into a running
//! [`pixpress_kit::server::Service`]; `main.rs`, the tests and the stack all use it.

mod config;
mod error;
mod management;
mod metrics;
mod print_jobs;
mod routes;

use std::net::TcpListener;

use actix_web::web;
use pixpress_kit::client::http_client;
use pixpress_kit::db::{self, Database};
use pixpress_kit::gate::BackendGate;
use pixpress_kit::health::{openapi_document, Readiness};
use pixpress_kit::metrics::http_metrics;
use pixpress_kit::server::{self, Background, HttpSettings, Service};
use utoipa::OpenApi;

pub use config::Config;
use management::ManagementClient;
use metrics::PrintMetrics;

/// Largest request body print-service accepts (DESIGN.md §3: 413 above 64 KiB).
pub const JSON_LIMIT: usize = 64 * 1024;

/// What every handler shares.
pub struct State {
    db: Database,
    gate: BackendGate,
    management: ManagementClient,
    metrics: PrintMetrics,
}

#[derive(OpenApi)]
#[openapi(
    info(description = "Print jobs: intake, status, listing, cancellation."),
    paths(
        routes::jobs::create_job,
        routes::jobs::list_jobs,
        routes::jobs::get_job,
        routes::jobs::cancel_job,
    )
)]
struct PrintApi;

/// Builds print-service on `listener`. Never waits for the database: migrations
/// run in the background and `/ready` reports when they are done.
pub fn build(config: Config, listener: TcpListener) -> anyhow::Result<Service> {
    let addr = listener.local_addr()?;
    let pool = db::pool(&config.database, config.backend_timeout()).map_err(anyhow::Error::msg)?;
    let database = Database::new(pool);
    let mut background = Background::new();
    background.push(database.migrate_in_background(background.token()));

    let http_metrics = http_metrics("print");
    let registry = &http_metrics.registry;
    let metrics = PrintMetrics::new(registry);
    let http = http_client("print", config.backend_timeout());
    let state = web::Data::new(State {
        db: database.clone(),
        gate: BackendGate::new(config.backend_permits as usize, registry, "print"),
        management: ManagementClient::new(
            http,
            &config.management_url,
            config.backend_timeout(),
            metrics.management_call_seconds.clone(),
        ),
        metrics,
    });
    let settings = HttpSettings {
        metrics: http_metrics,
        readiness: Readiness::new().with_database(&database),
        openapi: openapi_document("print-service", PrintApi::openapi()),
        shutdown_grace: config.common.shutdown_grace(),
        json_limit: JSON_LIMIT,
        workers: 0,
    };
    let server = server::serve(listener, settings, move |cfg| {
        cfg.app_data(state.clone())
            .configure(routes::jobs::configure);
    })?;
    Ok(Service::new(
        "print-service",
        addr,
        server,
        background,
        config.common.shutdown_grace(),
    ))
}
