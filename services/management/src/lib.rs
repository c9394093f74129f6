//! management-api: a faithful in-memory mock of the management service another team
//! owns (Spring Boot in real life). It keeps users' image records, answers print
//! authorization lookups (`/lookup`) and holds the printer registry. Records live
//! in memory: this service stands in for one we do not run.

mod catalog;
mod config;
mod metrics;
mod routes;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::web;
use pixpress_kit::health::{openapi_document, Readiness};
use pixpress_kit::metrics::http_metrics;
use pixpress_kit::server::{self, Background, HttpSettings, Service};
use utoipa::OpenApi;

use catalog::Catalog;
pub use config::Config;
use metrics::LookupMetrics;

/// What every handler shares.
pub struct State {
    catalog: Catalog,
    lookups: LookupMetrics,
    lookup_latency: Duration,
}

#[derive(OpenApi)]
#[openapi(
    info(description = "Users' images, print authorization lookup, printers."),
    paths(
        routes::images::create_image,
        routes::images::list_images,
        routes::images::get_image,
        routes::images::delete_image,
        routes::lookup::lookup,
        routes::printers::list_printers,
        routes::printers::put_printer,
    )
)]
struct ManagementApi;

pub fn build(config: Config, listener: TcpListener) -> anyhow::Result<Service> {
    let addr = listener.local_addr()?;
    let metrics = http_metrics("management");
    let state = web::Data::new(State {
        catalog: Catalog::new(&config.printer_url),
        lookups: LookupMetrics::new(&metrics.registry),
        lookup_latency: config.lookup_latency(),
    });
    let settings = HttpSettings {
        metrics,
        readiness: Readiness::new(),
        openapi: openapi_document("management-api", ManagementApi::openapi()),
        shutdown_grace: config.common.shutdown_grace(),
        json_limit: 64 * 1024,
        workers: 0,
    };
    let server = server::serve(listener, settings, move |cfg| {
        cfg.app_data(state.clone())
            .configure(routes::images::configure)
            .configure(routes::lookup::configure)
            .configure(routes::printers::configure);
    })?;
    Ok(Service::new(
        "management-api",
        addr,
        server,
        Background::new(),
        config.common.shutdown_grace(),
    ))
}
