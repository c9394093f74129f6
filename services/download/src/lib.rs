//! download-service: fetches images from user-supplied URLs, makes thumbnails and
//! stores both in S3, keeping its tasks in PostgreSQL so replicas share the work
//! and a crash loses nothing. It reports each finished task to the task's
//! `callback_url`, signed per Standard Webhooks.

mod config;
mod download_tasks;
pub mod fetch;
mod metrics;
mod routes;
pub mod storage;
pub mod thumbnail;
mod worker;

use std::net::TcpListener;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use pixpress_kit::client::http_client;
use pixpress_kit::db::{self, Database, DbError};
use pixpress_kit::health::{openapi_document, Readiness};
use pixpress_kit::metrics::http_metrics;
use pixpress_kit::notify::{self, Announcer};
use pixpress_kit::queue;
use pixpress_kit::server::{self, Background, HttpSettings, Service};
use pixpress_kit::webhook::WebhookSecret;
use pixpress_kit::ApiError;
use tokio::sync::{Notify, Semaphore};
use utoipa::OpenApi;

pub use config::Config;
use fetch::{FetchPolicy, Fetcher};
use metrics::DownloadMetrics;
use storage::{Storage, StorageConfig};
use worker::{Worker, WorkerSettings};

/// What every handler shares.
pub struct State {
    db: Database,
    storage: Option<Storage>,
    /// Wakes the workers of every replica once a task is committed.
    queued: Announcer,
}

impl State {
    /// Database trouble is ours, not the client's: log it, answer 503.
    fn db_error(&self, err: DbError) -> ApiError {
        log::error!("{err}");
        ApiError::from(&err)
    }
}

#[derive(OpenApi)]
#[openapi(
    info(description = "Image downloads and thumbnails."),
    paths(
        routes::downloads::create_download,
        routes::downloads::get_download,
        routes::images::original,
        routes::images::thumbnail,
        // Readiness checks the database and S3: /ready can answer 503.
        pixpress_kit::health::ready,
    )
)]
struct DownloadApi;

fn storage(config: &Config) -> anyhow::Result<Option<Storage>> {
    let Some(endpoint) = &config.s3_endpoint else {
        log::warn!("S3_ENDPOINT is not set: downloads cannot be stored and /ready stays 503");
        return Ok(None);
    };
    let key = |value: &Option<String>, name: &str| {
        value
            .clone()
            .ok_or_else(|| anyhow::anyhow!("{name} is required when S3_ENDPOINT is set"))
    };
    let storage = Storage::new(&StorageConfig {
        endpoint: endpoint.clone(),
        public_endpoint: config.s3_public_endpoint.clone(),
        region: config.s3_region.clone(),
        bucket: config.s3_bucket.clone(),
        access_key: key(&config.s3_access_key, "S3_ACCESS_KEY")?,
        secret_key: key(&config.s3_secret_key, "S3_SECRET_KEY")?,
    })
    .map_err(|e| anyhow::anyhow!("S3 settings: {e}"))?;
    Ok(Some(storage))
}

/// Creates the bucket if missing, retrying until S3 answers or the service stops.
async fn ensure_bucket(storage: Storage, stop: tokio_util::sync::CancellationToken) {
    let mut delay = Duration::from_millis(200);
    loop {
        match storage.ensure_bucket().await {
            Ok(()) => return,
            Err(e) => log::warn!("bucket not ready yet, retrying in {delay:?}: {e}"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

pub fn build(config: Config, listener: TcpListener) -> anyhow::Result<Service> {
    let addr = listener.local_addr()?;
    let callback_secret = match &config.download_callback_secret {
        Some(text) => Some(
            WebhookSecret::parse(text)
                .map_err(|e| anyhow::anyhow!("DOWNLOAD_CALLBACK_SECRET: {e}"))?,
        ),
        None => {
            log::warn!("DOWNLOAD_CALLBACK_SECRET is not set: completion callbacks go unsigned");
            None
        }
    };
    let storage = storage(&config)?;
    let pool = db::pool(&config.database, Duration::from_secs(2)).map_err(anyhow::Error::msg)?;
    let listen_config = tokio_postgres::Config::from_str(&config.database.database_url)?;
    let database = Database::new(pool.clone());
    let mut background = Background::new();
    background.push(database.migrate_in_background(background.token()));
    if let Some(storage) = storage.clone() {
        background.spawn(move |stop| ensure_bucket(storage, stop));
    }

    let http_metrics = http_metrics("download");
    let metrics = DownloadMetrics::new(&http_metrics.registry);
    let timeout = config.download_timeout();
    let fetcher = Fetcher::new(
        FetchPolicy {
            max_bytes: config.download_max_bytes,
            timeout,
            connect_timeout: timeout.min(Duration::from_secs(5)),
            allow_private: config.download_allow_private_networks,
            exempt_hosts: config
                .download_allowed_internal_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        },
        concat!("pixpress-download/", env!("CARGO_PKG_VERSION")),
    );
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let worker = Arc::new(Worker {
        settings: WorkerSettings {
            owner: format!(
                "{}-{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "download".into()),
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            concurrency: config.download_concurrency as usize,
            // Longer than any one task can take: the download, then decoding and S3.
            lease: timeout * 2 + Duration::from_secs(30),
            thumbnail_size: config.thumbnail_size,
            limits: thumbnail::Limits::default(),
        },
        db: pool,
        fetcher,
        storage: storage.clone(),
        http: http_client("download", Duration::from_secs(10)),
        callback_secret,
        metrics,
        cpu: Arc::new(Semaphore::new(cores)),
    });
    let wake = Arc::new(Notify::new());
    background.spawn({
        let wake = Arc::clone(&wake);
        move |stop| notify::listen(listen_config, download_tasks::QUEUED_CHANNEL, wake, stop)
    });
    let queued = Announcer::new(database.pool.clone(), download_tasks::QUEUED_CHANNEL);
    background.spawn({
        let queued = queued.clone();
        move |stop| queued.run(stop)
    });
    let schema = database.clone();
    background.spawn(move |stop| async move {
        if schema.wait_until_migrated(&stop).await {
            let concurrency = worker.settings.concurrency;
            queue::run(worker, concurrency, wake, stop).await;
        }
    });

    let readiness = Readiness::new().with_database(&database).with_check("s3", {
        let storage = storage.clone();
        move || {
            let storage = storage.clone();
            async move {
                match storage {
                    Some(storage) => storage.check().await,
                    None => Err("S3_ENDPOINT is not configured".to_owned()),
                }
            }
        }
    });
    let state = web::Data::new(State {
        db: database,
        storage,
        queued,
    });
    let settings = HttpSettings {
        metrics: http_metrics,
        readiness,
        openapi: openapi_document("download-service", DownloadApi::openapi()),
        shutdown_grace: config.common.shutdown_grace(),
        json_limit: 64 * 1024,
        workers: 0,
    };
    let server = server::serve(listener, settings, move |cfg| {
        cfg.app_data(state.clone())
            .configure(routes::downloads::configure)
            .configure(routes::images::configure);
    })?;
    Ok(Service::new(
        "download-service",
        addr,
        server,
        background,
        config.common.shutdown_grace(),
    ))
}
