//! printer-sim: a simulated HTTP printer. It accepts jobs, "prints" them slowly and
//! calls the print service back with signed status updates.

mod config;

use std::net::TcpListener;

use pixpress_kit::health::{openapi_document, Readiness};
use pixpress_kit::metrics::http_metrics;
use pixpress_kit::server::{self, Background, HttpSettings, Service};
use utoipa::OpenApi;

pub use config::Config;

#[derive(OpenApi)]
#[openapi(info(description = "A simulated printer."))]
struct PrinterApi;

pub fn build(config: Config, listener: TcpListener) -> anyhow::Result<Service> {
    let addr = listener.local_addr()?;
    let settings = HttpSettings {
        metrics: http_metrics("printer"),
        readiness: Readiness::new(),
        openapi: openapi_document("printer-sim", PrinterApi::openapi()),
        shutdown_grace: config.common.shutdown_grace(),
        json_limit: 64 * 1024,
        workers: 0,
    };
    let server = server::serve(listener, settings, |_cfg| {})?;
    Ok(Service::new(
        "printer-sim",
        addr,
        server,
        Background::new(),
        config.common.shutdown_grace(),
    ))
}
