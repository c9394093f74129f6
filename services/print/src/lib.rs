//! print-service: takes print jobs over REST, asks the management API whether the
//! user may print the file, keeps the jobs in PostgreSQL, dispatches them to their
//! printers, takes the printers' signed callbacks, and asks a printer about a job
//! whose callback is overdue (reconciliation).
//!
//! [`build`] turns a [`Config`] and a bound listener into a running
//! [`pixpress_kit::server::Service`]; `main.rs`, the tests and the stack all use it.

mod config;
pub mod dispatcher;
mod error;
mod leases;
mod management;
pub mod metrics;
pub mod print_jobs;
pub mod printer;
mod printer_registry;
pub mod reconciler;
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
use pixpress_kit::queue::{self, WorkQueue};
use pixpress_kit::server::{replica_name, Background, HttpSettings, Service};
use pixpress_kit::webhook::{CallbackSecret, WebhookSecret};
use utoipa::OpenApi;

pub use config::Config;
use dispatcher::{Dispatcher, DispatcherSettings};
use management::ManagementClient;
use metrics::PrintMetrics;
use print_jobs::ReportWriter;
use printer::{PrinterClient, PrinterSettings};
use reconciler::{Reconciler, ReconcilerSettings};

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
    /// Applies printers' callbacks, those that arrive together in one commit.
    reports: ReportWriter,
}

#[derive(OpenApi)]
#[openapi(
    info(description = "Print jobs: intake, status, listing, cancellation, operator retries, printer callbacks."),
    paths(
        routes::jobs::create_job,
        routes::jobs::list_jobs,
        routes::jobs::get_job,
        routes::jobs::cancel_job,
        routes::jobs::retry_job,
        routes::callbacks::printer_callback,
        // Readiness checks the database: /ready can answer 503.
        pixpress_kit::health::ready,
    )
)]
struct PrintApi;

/// Builds print-service on `listener` with its dispatcher and reconciler. Never
/// waits for the database: migrations run in the background and `/ready` says when
/// they are done.
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
    let management = ManagementClient::new(
        http.clone(),
        &config.management_url,
        config.management_token.as_deref(),
        config.backend_timeout(),
        metrics.management_call_seconds.clone(),
    );

    background.spawn({
        let database = database.clone();
        let gauges = queue::DepthGauges {
            depth: metrics.queue_depth.clone(),
            oldest_age: metrics.oldest_job_age.clone(),
        };
        move |stop| queue::watch_depths(database, print_jobs::checks::QUEUE_DEPTHS, gauges, stop)
    });
    if config.dispatch_enabled {
        let owner = replica_name("print");
        let printers = Arc::new(PrinterClient::new(
            http.clone(),
            PrinterSettings {
                public_url: config.public_url.clone(),
                timeout: config.backend_timeout(),
            },
            &metrics,
        ));
        let dispatcher = Arc::new(Dispatcher::new(
            DispatcherSettings {
                owner: owner.clone(),
                lease: config.dispatch_lease(),
                max_attempts: config.dispatch_max_attempts as i32,
                job_deadline: config.job_deadline(),
            },
            database.clone(),
            Arc::clone(&printers),
            metrics.clone(),
        ));
        let concurrency = config.dispatch_concurrency as usize;
        queued.run_workers(&mut background, dispatcher, concurrency);
        let reconciler = Arc::new(Reconciler::new(
            ReconcilerSettings {
                owner,
                lease: config.dispatch_lease(),
                max_resends: config.dispatch_max_attempts as i32,
                job_deadline: config.job_deadline(),
            },
            database.clone(),
            printers,
            metrics.clone(),
        ));
        reconciler.start(&mut background, concurrency);
        background.spawn({
            let (management, database) = (management.clone(), database.clone());
            let every = config.printer_refresh();
            move |stop| printer_registry::follow(management, database, every, stop)
        });
    } else {
        log::info!(
            "DISPATCH_ENABLED=false: this replica takes jobs but neither dispatches nor \
             reconciles them"
        );
    }

    let state = web::Data::new(State {
        db: database.clone(),
        gate: BackendGate::new(
            config.backend_permits as usize,
            config.backend_permits_per_user(),
            registry,
            "print",
        ),
        queued,
        insert_line: CheckoutLine::new(config.database.db_pool_size as usize, database.deadline()),
        management,
        metrics,
        reports: ReportWriter::spawn(database.clone(), config.job_deadline()),
    });
    let settings = HttpSettings {
        metrics: http_metrics,
        readiness: Readiness::new().with_database(&database),
        openapi: PrintApi::openapi(),
        shutdown_grace: config.common.shutdown_grace(),
        json_limit: JSON_LIMIT,
        workers: 0,
        otlp: config.common.otlp(),
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
