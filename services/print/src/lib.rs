//! print-service: takes print jobs over REST, asks the management API whether the
//! user may print the file, keeps the jobs in PostgreSQL, dispatches them to their
//! printers and takes the printers' signed callbacks.
//!
//! [`build`] turns a [`Config`] and a bound listener into a running
//! [`pixpress_kit::server::Service`]; `main.rs`, the tests and the stack all use it.

mod breaker;
mod config;
mod dispatcher;
mod error;
mod management;
mod metrics;
mod print_jobs;
mod routes;

use std::net::TcpListener;
use std::str::FromStr;
use std::sync::Arc;

use actix_web::web;
use pixpress_kit::auth::Authenticator;
use pixpress_kit::client::http_client;
use pixpress_kit::db::{self, CheckoutLine, Database};
use pixpress_kit::gate::BackendGate;
use pixpress_kit::health::{openapi_document, Readiness};
use pixpress_kit::metrics::http_metrics;
use pixpress_kit::notify::{self, Announcer};
use pixpress_kit::queue;
use pixpress_kit::server::{self, Background, HttpSettings, Service};
use pixpress_kit::webhook::WebhookSecret;
use tokio::sync::Notify;
use utoipa::OpenApi;

pub use config::Config;
use dispatcher::{Dispatcher, DispatcherSettings};
use management::ManagementClient;
use metrics::PrintMetrics;

/// Largest request body print-service accepts (DESIGN.md §3: 413 above 64 KiB).
pub const JSON_LIMIT: usize = 64 * 1024;

/// What every handler shares.
pub struct State {
    db: Database,
    gate: BackendGate,
    /// Wakes the dispatchers of every replica once a job is committed.
    queued: Announcer,
    /// Intake's inserts take pool connections in arrival order.
    insert_line: CheckoutLine,
    management: ManagementClient,
    metrics: PrintMetrics,
    callback_secret: Option<WebhookSecret>,
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

/// Who this replica is, in leases (unique per process).
fn replica_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "print".to_owned());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Builds print-service on `listener` with its dispatcher. Never waits for the
/// database: migrations run in the background and `/ready` says when they are done.
pub fn build(config: Config, listener: TcpListener) -> anyhow::Result<Service> {
    let addr = listener.local_addr()?;
    let authenticator = Authenticator::from_args(&config.auth).map_err(anyhow::Error::msg)?;
    let callback_secret = match &config.printer_callback_secret {
        Some(text) => Some(
            WebhookSecret::parse(text)
                .map_err(|e| anyhow::anyhow!("PRINTER_CALLBACK_SECRET: {e}"))?,
        ),
        None => {
            log::warn!(
                "PRINTER_CALLBACK_SECRET is not set: every printer callback will be refused"
            );
            None
        }
    };
    let pool = db::pool(&config.database, config.backend_timeout()).map_err(anyhow::Error::msg)?;
    let listen_config = tokio_postgres::Config::from_str(&config.database.database_url)?;
    let database = Database::new(pool.clone());
    let queued = Announcer::new(pool.clone(), print_jobs::QUEUED_CHANNEL);
    let mut background = Background::new();
    background.push(database.migrate_in_background(background.token()));
    background.spawn({
        let queued = queued.clone();
        move |stop| queued.run(stop)
    });

    let http_metrics = http_metrics("print");
    let registry = &http_metrics.registry;
    let metrics = PrintMetrics::new(registry);
    let http = http_client("print", config.backend_timeout());

    let dispatcher = Arc::new(Dispatcher::new(
        DispatcherSettings {
            owner: replica_name(),
            lease: config.dispatch_lease(),
            concurrency: config.dispatch_concurrency as usize,
            max_attempts: config.dispatch_max_attempts as i32,
            public_url: config.public_url.clone(),
            send_timeout: config.backend_timeout(),
        },
        pool,
        http.clone(),
        metrics.clone(),
    ));
    if config.dispatch_enabled {
        let wake = Arc::new(Notify::new());
        background.spawn({
            let wake = Arc::clone(&wake);
            move |stop| notify::listen(listen_config, print_jobs::QUEUED_CHANNEL, wake, stop)
        });
        let schema = database.clone();
        background.spawn(move |stop| async move {
            if schema.wait_until_migrated(&stop).await {
                let concurrency = dispatcher.concurrency();
                queue::run(dispatcher, concurrency, wake, stop).await;
            }
        });
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
        callback_secret,
    });
    let settings = HttpSettings {
        metrics: http_metrics,
        readiness: Readiness::new().with_database(&database),
        openapi: openapi_document("print-service", PrintApi::openapi()),
        shutdown_grace: config.common.shutdown_grace(),
        json_limit: JSON_LIMIT,
        workers: 0,
    };
    let authenticator = web::Data::new(authenticator);
    let server = server::serve(listener, settings, move |cfg| {
        cfg.app_data(state.clone())
            .app_data(authenticator.clone())
            .configure(routes::jobs::configure)
            .configure(routes::callbacks::configure);
    })?;
    Ok(Service::new(
        "print-service",
        addr,
        server,
        background,
        config.common.shutdown_grace(),
    ))
}
