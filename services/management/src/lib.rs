//! management-api: a faithful in-memory mock of the management service another team
//! owns (Spring Boot in real life). It keeps users' image records, answers print
//! authorization lookups and holds the printer registry.

mod config;

use std::net::TcpListener;

use pixpress_kit::health::{openapi_document, Readiness};
use pixpress_kit::metrics::http_metrics;
use pixpress_kit::server::{self, Background, HttpSettings, Service};
use utoipa::OpenApi;

pub use config::Config;

#[derive(OpenApi)]
#[openapi(info(description = "Users' images, print authorization lookup, printers."))]
struct ManagementApi;

pub fn build(config: Config, listener: TcpListener) -> anyhow::Result<Service> {
    let addr = listener.local_addr()?;
    let settings = HttpSettings {
        metrics: http_metrics("management"),
        readiness: Readiness::new(),
        openapi: openapi_document("management-api", ManagementApi::openapi()),
        shutdown_grace: config.common.shutdown_grace(),
        json_limit: 64 * 1024,
        workers: 0,
    };
    let server = server::serve(listener, settings, |_cfg| {})?;
    Ok(Service::new(
        "management-api",
        addr,
        server,
        Background::new(),
        config.common.shutdown_grace(),
    ))
}
