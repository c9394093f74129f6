//! print-service: takes print jobs over REST, asks the management API whether the
//! user may print the file, keeps the jobs in PostgreSQL, dispatches them to their
//! printers and takes the printers' signed callbacks.
//!
//! [`build`] turns a [`Config`] and a bound listener into a running
//! [`pixpress_kit::server::Service`]; `main.rs`, the tests and the stack all use it.

mod breaker;
mod config;
pub mod dispatcher;
mod error;
mod management;
pub mod metrics;
mod print_jobs;
mod routes;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::web;
use pixpress_kit::auth::Authenticator;
use pixpress_kit::client::http_client;
use pixpress_kit::db::{CheckoutLine, Database};
use pixpress_kit::gate::BackendGate;
use pixpress_kit::health::Readiness;
use pixpress_kit::metrics::http_metrics;
use pixpress_kit::queue::WorkQueue;
use pixpress_kit::server::{replica_name, Background, HttpSettings, Service};
use pixpress_kit::webhook::{CallbackSecret, WebhookSecret};
use utoipa::OpenApi;

pub use config::Config;
use dispatcher::{Dispatcher, DispatcherSettings};
use management::ManagementClient;
use metrics::PrintMetrics;

/// Largest request body print-service accepts (DESIGN.md §3: 413 above 64 KiB).
pub use pixpress_kit::server::JSON_LIMIT;

/// What every handler shares.
pub struct State {
    db: Database,
    gate: BackendGate,
    /// Wakes the dispatchers of every replica once a job is committed.
    queued: WorkQueue,
    /// Intake's inserts take pool connections in arrival order.
    insert_line: CheckoutLine,
    management: ManagementClient,
    metrics: PrintMetrics,
}

#[derive(OpenApi)]
#[openapi(
    info(description = "Print jobs: intake, status, listing, cancellation, printer callbacks."),
    paths(
        routes::jobs::create_job,
        routes::jobs::list_jobs,
        routes::jobs::get_job,
        routes::jobs::cancel_job,
        routes::callbacks::printer_callback,
        // Readiness checks the database: /ready can answer 503.
        pixpress_kit::health::ready,
    )
)]
struct PrintApi;

/// Builds print-service on `listener` with its dispatcher. Never waits for the
/// database: migrations run in the background and `/ready` says when they are done.
pub fn build(config: Config, listener: TcpListener) -> anyhow::Result<Service> {
    let authenticator = Authenticator::from_args(&config.auth)?;
    let callback_secret = WebhookSecret::from_setting(
        "PRINTER_CALLBACK_SECRET",
        config.printer_callback_secret.as_deref(),
        "every printer callback will be refused",
    )?;
    let mut background = Background::new();
    let database = Database::start(&config.database, config.backend_timeout(), &mut background)?;
    let queued = WorkQueue::start(&database, print_jobs::QUEUED_CHANNEL, &mut background);

    let http_metrics = http_metrics("print");
    let registry = &http_metrics.registry;
    let metrics = PrintMetrics::new(registry);
    let http = http_client("print", config.backend_timeout());

    if config.dispatch_enabled {
        let dispatcher = Arc::new(Dispatcher::new(
            DispatcherSettings {
                owner: replica_name("print"),
                lease: config.dispatch_lease(),
                max_attempts: config.dispatch_max_attempts as i32,
                public_url: config.public_url.clone(),
                send_timeout: config.backend_timeout(),
            },
            database.clone(),
            http.clone(),
            metrics.clone(),
        ));
        let concurrency = config.dispatch_concurrency as usize;
        queued.run_workers(&mut background, dispatcher, concurrency);
    } else {
        log::info!("DISPATCH_ENABLED=false: this replica takes jobs but does not dispatch them");
    }

    let state = web::Data::new(State {
        db: database.clone(),
        gate: BackendGate::new(config.backend_permits as usize, registry, "print"),
        queued,
        insert_line: CheckoutLine::new(
            config.database.db_pool_size as usize,
            config.backend_timeout(),
        ),
        management: ManagementClient::new(
            http,
            &config.management_url,
            config.management_token.as_deref(),
            config.backend_timeout(),
            metrics.management_call_seconds.clone(),
        ),
        metrics,
    });
    let settings = HttpSettings {
        metrics: http_metrics,
        readiness: Readiness::new().with_database(&database),
        openapi: PrintApi::openapi(),
        shutdown_grace: config.common.shutdown_grace(),
        json_limit: JSON_LIMIT,
        workers: 0,
    };
    let authenticator = web::Data::new(authenticator);
    let callback_secret = web::Data::new(CallbackSecret(callback_secret));
    let service = Service::start(
        "print-service",
        listener,
        settings,
        background,
        move |cfg| {
            cfg.app_data(state.clone())
                .app_data(authenticator.clone())
                .app_data(callback_secret.clone())
                .configure(routes::jobs::configure)
                .configure(routes::callbacks::configure);
        },
    )?;
    Ok(service)
}
