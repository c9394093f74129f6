//! printer-sim: a simulated HTTP printer. It accepts jobs (deduplicated by
//! correlation id), fetches each job's image as a real printer would (checking that
//! it is an image and recording its size and SHA-256; one it cannot get fails the
//! job with `image_unreachable` or `image_undecodable`), "prints" it for
//! `PRINTER_DELAY_MS` per copy, and calls the print service back with Standard
//! Webhooks–signed status updates, retrying while the print service is unreachable.
//! With `PRINTER_STATE_DIR` its jobs survive a restart (a journal on disk, like a
//! real printer's spool); otherwise they live in memory.

mod config;
mod error;
mod fetch;
mod printer;
mod routes;
pub mod spool;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::web;
use pixpress_kit::client::http_client;
use pixpress_kit::health::Readiness;
use pixpress_kit::metrics::{http_metrics, MetricsRegistrar};
use pixpress_kit::server::{Background, HttpSettings, Service, JSON_LIMIT};
use pixpress_kit::webhook::WebhookSecret;
use utoipa::OpenApi;

pub use config::Config;
pub use fetch::FetchedImage;
use fetch::ImageFetcher;
use printer::Printer;

#[derive(OpenApi)]
#[openapi(
    info(description = "A simulated printer: it fetches each job's image, prints it slowly \
                         and calls back with signed status updates."),
    paths(
        routes::submit_job,
        routes::list_jobs,
        routes::job_status,
        // Readiness checks the spool: /ready can answer 503.
        pixpress_kit::health::ready,
    )
)]
struct PrinterApi;

pub fn build(config: Config, listener: TcpListener) -> anyhow::Result<Service> {
    let secret = WebhookSecret::from_setting(
        "PRINTER_CALLBACK_SECRET",
        config.printer_callback_secret.as_deref(),
        "callbacks go unsigned and will be refused",
    )?;
    let metrics = http_metrics("printer");
    let registrar = MetricsRegistrar::new(&metrics.registry, "printer");
    let outcomes = registrar.int_counter_vec(
        "jobs_printed_total",
        "Jobs printed, by outcome",
        &["outcome"],
    );
    let fetches = registrar.int_counter_vec(
        "image_fetches_total",
        "Jobs' images fetched (after retries), by outcome: ok, unreachable, undecodable",
        &["outcome"],
    );
    let http = http_client("printer-sim", std::time::Duration::from_secs(5));
    let images = ImageFetcher::new(
        http.clone(),
        config.printer_max_image_bytes,
        config.fetch_timeout(),
        fetches,
    );
    let mut background = Background::new();
    let printer = Arc::new(Printer::new(
        &config,
        secret,
        http,
        images,
        outcomes,
        background.token(),
    ));
    // The spool is read off the async runtime; until then jobs get 503.
    background.spawn({
        let printer = Arc::clone(&printer);
        move |stop| printer.open_spool(stop)
    });
    let readiness = Readiness::new().with_check("spool", {
        let printer = Arc::clone(&printer);
        move || {
            let printer = Arc::clone(&printer);
            async move { printer.check() }
        }
    });
    let settings = HttpSettings {
        metrics,
        readiness,
        openapi: PrinterApi::openapi(),
        shutdown_grace: config.common.shutdown_grace(),
        json_limit: JSON_LIMIT,
        workers: 0,
        otlp: config.common.otlp(),
    };
    let printer = web::Data::new(printer);
    let service = Service::start("printer-sim", listener, settings, background, move |cfg| {
        cfg.app_data(printer.clone()).configure(routes::configure);
    })?;
    Ok(service)
}
