//! management-api: a faithful in-memory mock of the management service another team
//! owns (Spring Boot in real life). It keeps users' image records, has download-service
//! fetch each new image (and takes its signed report when done), answers print
//! authorization lookups (`/lookup`) and holds the printer registry. Records live
//! in memory: this service stands in for one we do not run. Downloads whose report
//! never arrives are reconciled (`reconcile`); a deleted image's download task is
//! deleted at download-service.

mod catalog;
mod config;
mod download_service;
mod error;
mod metrics;
mod reconcile;
mod reports;
mod routes;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::web;
use pixpress_domain::management::http_url;
use pixpress_kit::auth::Authenticator;
use pixpress_kit::health::Readiness;
use pixpress_kit::metrics::http_metrics;
use pixpress_kit::server::{Background, HttpSettings, Service, JSON_LIMIT};
use pixpress_kit::webhook::{CallbackSecret, WebhookSecret};
use utoipa::OpenApi;

use catalog::Catalog;
pub use config::Config;
use download_service::DownloadService;
use metrics::{DownloadMetrics, LookupMetrics};
pub use reconcile::{Reconciled, Reconciler};

/// What every handler shares.
pub struct State {
    catalog: Catalog,
    lookups: LookupMetrics,
    lookup_latency: Duration,
    downloads: DownloadService,
}

#[derive(OpenApi)]
#[openapi(
    info(description = "Users' images, print authorization lookup, printers."),
    paths(
        routes::images::create_image,
        routes::images::list_images,
        routes::images::get_image,
        routes::images::delete_image,
        routes::images::retry_image,
        routes::internal::download_callback,
        routes::lookup::lookup,
        routes::printers::list_printers,
        routes::printers::put_printer,
    )
)]
struct ManagementApi;

/// management-api built, with a handle on its reconciliation (which tests drive).
pub struct ManagementApp {
    pub service: Service,
    /// The step the service's own reconciliation loop runs.
    pub reconciler: Reconciler,
}

/// Builds management-api on `listener`; fails naming the setting that is malformed.
pub fn build(config: Config, listener: TcpListener) -> anyhow::Result<Service> {
    Ok(build_app(config, listener)?.service)
}

/// [`build`], keeping a handle on the reconciliation step.
pub fn build_app(config: Config, listener: TcpListener) -> anyhow::Result<ManagementApp> {
    let authenticator = web::Data::new(Authenticator::from_args(&config.auth)?);
    let urls = [
        ("DOWNLOAD_URL", &config.download_url),
        ("MANAGEMENT_PUBLIC_URL", &config.management_public_url),
        ("PRINTER_URL", &config.printer_url),
    ]
    .into_iter()
    .chain(
        config
            .download_public_url
            .iter()
            .map(|u| ("DOWNLOAD_PUBLIC_URL", u)),
    )
    .chain(
        config
            .extra_printer_urls
            .iter()
            .map(|u| ("EXTRA_PRINTER_URLS", u)),
    );
    for (name, value) in urls {
        http_url(value).map_err(|_| anyhow::anyhow!("{name} must hold http(s) URLs"))?;
    }
    let callback_secret = WebhookSecret::from_setting(
        "DOWNLOAD_CALLBACK_SECRET",
        config.download_callback_secret.as_deref(),
        "every download callback will be refused, so no image will become ready",
    )?;
    if config.download_token.is_none() {
        log::warn!(
            "DOWNLOAD_TOKEN is not set: a download-service that checks tokens will refuse \
             every download, task query and deletion"
        );
    }
    let mut background = Background::new();
    let metrics = http_metrics("management");
    let state = web::Data::new(State {
        catalog: Catalog::new(
            std::iter::once(&config.printer_url)
                .chain(&config.extra_printer_urls)
                .map(String::as_str),
        ),
        lookups: LookupMetrics::new(&metrics.registry),
        lookup_latency: config.lookup_latency(),
        downloads: DownloadService::new(
            &config.download_url,
            config
                .download_public_url
                .as_deref()
                .unwrap_or(&config.download_url),
            &config.management_public_url,
            config.download_token.as_deref(),
            config.download_retry_window(),
            background.token(),
            DownloadMetrics::new(&metrics.registry),
        ),
    });
    let reconciler = Reconciler::new(state.clone(), config.reconcile_deadline());
    let round = reconciler.clone();
    background.spawn(move |stop| round.run(stop));
    // `None` when `DOWNLOAD_CALLBACK_SECRET` is unset: every callback is refused.
    let callback_secret = web::Data::new(CallbackSecret(callback_secret));
    let settings = HttpSettings {
        metrics,
        readiness: Readiness::new(),
        openapi: ManagementApi::openapi(),
        shutdown_grace: config.common.shutdown_grace(),
        json_limit: JSON_LIMIT,
        workers: 0,
        otlp: config.common.otlp(),
    };
    let service = Service::start(
        "management-api",
        listener,
        settings,
        background,
        move |cfg| {
            cfg.app_data(state.clone())
                .app_data(authenticator.clone())
                .app_data(callback_secret.clone())
                .configure(routes::images::configure)
                .configure(routes::internal::configure)
                .configure(routes::lookup::configure)
                .configure(routes::printers::configure);
        },
    )?;
    Ok(ManagementApp {
        service,
        reconciler,
    })
}
