//! download-service: fetches images from user-supplied URLs, makes thumbnails and
//! stores both in S3, keeping its tasks in PostgreSQL.

mod config;
pub mod storage;
pub mod thumbnail;

use std::net::TcpListener;
use std::time::Duration;

use pixpress_kit::db::{self, Database};
use pixpress_kit::health::{openapi_document, Readiness};
use pixpress_kit::metrics::http_metrics;
use pixpress_kit::server::{self, Background, HttpSettings, Service};
use utoipa::OpenApi;

pub use config::Config;

#[derive(OpenApi)]
#[openapi(info(description = "Image downloads and thumbnails."))]
struct DownloadApi;

pub fn build(config: Config, listener: TcpListener) -> anyhow::Result<Service> {
    let addr = listener.local_addr()?;
    let pool = db::pool(&config.database, Duration::from_secs(2)).map_err(anyhow::Error::msg)?;
    let database = Database::new(pool);
    let mut background = Background::new();
    background.push(database.migrate_in_background(background.token()));

    let readiness = Readiness::new().with_database(&database);
    let settings = HttpSettings {
        metrics: http_metrics("download"),
        readiness,
        openapi: openapi_document("download-service", DownloadApi::openapi()),
        shutdown_grace: config.common.shutdown_grace(),
        json_limit: 64 * 1024,
        workers: 0,
    };
    let server = server::serve(listener, settings, |_cfg| {})?;
    Ok(Service::new(
        "download-service",
        addr,
        server,
        background,
        config.common.shutdown_grace(),
    ))
}
