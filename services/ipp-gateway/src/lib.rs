//! ipp-gateway: looks to print-service exactly like an HTTP printer (the printer
//! protocol of DESIGN.md §3 and §12, once per configured printer at
//! `/printers/{name}`) and prints on real printers over IPP (RFC 8011): IPP
//! Everywhere and AirPrint printers, and CUPS queues. Each job's image is fetched,
//! checked against the printer's `document-format-supported`, sent with Validate-Job
//! and Print-Job, and followed with Get-Job-Attributes to its end; print-service
//! hears of it through Standard Webhooks–signed callbacks. With `IPP_STATE_DIR` its
//! jobs survive a restart (see [`gateway`]).
//!
//! It converts no images (JPEG and PNG go as they are) and drives no printer by any
//! other protocol.

mod config;
mod error;
mod fetch;
mod gateway;
mod ipp_client;
mod routes;
pub mod store;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use pixpress_kit::client::http_client;
use pixpress_kit::health::Readiness;
use pixpress_kit::metrics::{http_metrics, latency_buckets, MetricsRegistrar};
use pixpress_kit::server::{Background, HttpSettings, Service, JSON_LIMIT};
use pixpress_kit::webhook::WebhookSecret;
use utoipa::OpenApi;

pub use config::{Config, PrinterEntry, PrinterList, PrinterUri};
use gateway::{Gateway, Metrics};

#[derive(OpenApi)]
#[openapi(
    info(description = "An HTTP printer that prints on IPP printers."),
    paths(
        routes::submit_job,
        routes::job_status,
        routes::list_printers,
        // Readiness checks the journal: /ready can answer 503.
        pixpress_kit::health::ready,
    )
)]
struct GatewayApi;

pub fn build(config: Config, listener: TcpListener) -> anyhow::Result<Service> {
    let secret = WebhookSecret::from_setting(
        "PRINTER_CALLBACK_SECRET",
        config.printer_callback_secret.as_deref(),
        "callbacks go unsigned and will be refused",
    )?;
    if config.ipp_printers.0.is_empty() {
        log::warn!("IPP_PRINTERS is empty: every job is refused (404)");
    }
    let metrics = http_metrics("ipp-gateway");
    let registrar = MetricsRegistrar::new(&metrics.registry, "ipp_gateway");
    let ipp = {
        let http = reqwest::Client::builder()
            .user_agent(concat!("pixpress-ipp-gateway/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_millis(config.ipp_timeout_ms))
            .connect_timeout(Duration::from_secs(2))
            .danger_accept_invalid_certs(config.ipp_tls_accept_invalid_certs)
            .build()?;
        ipp_client::IppClient::new(
            http,
            registrar.histogram_vec(
                "ipp_operation_duration_seconds",
                "IPP operations' durations, by operation",
                &["operation"],
                latency_buckets(),
            ),
            registrar.int_counter_vec(
                "ipp_operations_total",
                "IPP operations, by operation and outcome",
                &["operation", "outcome"],
            ),
        )
    };
    let gateway_metrics = Metrics {
        jobs: registrar.int_gauge_vec("jobs", "Jobs known, by state", &["state"]),
        callbacks: registrar.int_counter_vec(
            "callbacks_total",
            "Callbacks to print-service, by status and outcome",
            &["status", "outcome"],
        ),
        reachable: registrar.int_gauge_vec(
            "printer_reachable",
            "1 when the printer answered its last IPP request",
            &["printer"],
        ),
        breaker: registrar.int_gauge_vec(
            "printer_breaker_state",
            "Circuit breaker per printer: 0 closed, 1 half-open, 2 open",
            &["printer"],
        ),
    };
    let mut background = Background::new();
    let gateway = Arc::new(Gateway::new(
        &config,
        secret,
        ipp,
        http_client(
            "ipp-gateway",
            Duration::from_millis(config.ipp_fetch_timeout_ms),
        ),
        http_client("ipp-gateway", Duration::from_secs(5)),
        gateway_metrics,
        background.token(),
    ));
    // The journal is read off the async runtime; until then jobs get 503.
    background.spawn({
        let gateway = Arc::clone(&gateway);
        move |stop| gateway.open_store(stop)
    });
    let readiness = Readiness::new().with_check("journal", {
        let gateway = Arc::clone(&gateway);
        move || {
            let gateway = Arc::clone(&gateway);
            async move { gateway.check() }
        }
    });
    let settings = HttpSettings {
        metrics,
        readiness,
        openapi: GatewayApi::openapi(),
        shutdown_grace: config.common.shutdown_grace(),
        json_limit: JSON_LIMIT,
        workers: 0,
        otlp: config.common.otlp(),
    };
    let gateway = web::Data::new(gateway);
    let service = Service::start("ipp-gateway", listener, settings, background, move |cfg| {
        cfg.app_data(gateway.clone()).configure(routes::configure);
    })?;
    Ok(service)
}
