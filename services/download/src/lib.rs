//! download-service: fetches images from user-supplied URLs, makes thumbnails and
//! stores both in S3, keeping its tasks in PostgreSQL so replicas share the work
//! and a crash loses nothing. It reports each finished task to the task's
//! `callback_url`, signed per Standard Webhooks (`reports`), and only under
//! `MANAGEMENT_URL` (`management_url`). `/downloads…` is for services (a token with
//! the `service` role); the image links are open.

mod config;
mod download_tasks;
mod error;
pub mod fetch;
mod management_url;
mod metrics;
mod objects;
mod reports;
mod routes;
pub mod storage;
pub mod thumbnail;
mod worker;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use pixpress_kit::auth::Authenticator;
use pixpress_kit::client::http_client;
use pixpress_kit::db::Database;
use pixpress_kit::health::Readiness;
use pixpress_kit::metrics::http_metrics;
use pixpress_kit::queue::{self, WorkQueue};
use pixpress_kit::retry::Backoff;
use pixpress_kit::server::{replica_name, Background, HttpSettings, Service, JSON_LIMIT};
use pixpress_kit::webhook::WebhookSecret;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

pub use config::Config;
use fetch::{FetchPolicy, Fetcher};
use management_url::ManagementUrl;
use metrics::DownloadMetrics;
use reports::Reporter;
use storage::{Storage, StorageConfig, StorageError};
use worker::{Worker, WorkerSettings};

/// What every handler shares.
pub struct State {
    db: Database,
    storage: Option<Storage>,
    /// Where callbacks may go; none: no `callback_url` is accepted.
    management: Option<ManagementUrl>,
    /// Wakes the workers of every replica once a task is committed.
    queued: WorkQueue,
}

#[derive(OpenApi)]
#[openapi(
    info(description = "Image downloads and thumbnails."),
    paths(
        routes::downloads::create_download,
        routes::downloads::get_download,
        routes::downloads::delete_download,
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

/// `MANAGEMENT_URL` parsed; an empty setting counts as unset.
fn management(config: &Config) -> anyhow::Result<Option<ManagementUrl>> {
    let url = config.management_url.as_deref().map(str::trim);
    Ok(url
        .filter(|u| !u.is_empty())
        .map(ManagementUrl::parse)
        .transpose()?)
}

/// `MANAGEMENT_TOKEN`; an empty setting counts as unset. Warns when only one of the
/// URL and the token is there.
fn management_token(config: &Config, url: Option<&ManagementUrl>) -> Option<String> {
    let token = config.management_token.clone().filter(|t| !t.is_empty());
    match (url, &token) {
        (None, None) => {
            log::warn!("MANAGEMENT_URL is not set: downloads with a callback_url are refused")
        }
        (None, Some(_)) => {
            log::warn!("MANAGEMENT_TOKEN is set without MANAGEMENT_URL: no reports are sent")
        }
        (Some(_), None) => log::warn!(
            "MANAGEMENT_URL is set without MANAGEMENT_TOKEN: reports carry no bearer token \
             and a management API that requires one refuses them"
        ),
        (Some(_), Some(_)) => {}
    }
    token
}

/// Creates the bucket if missing, retrying until S3 answers or the service stops.
async fn ensure_bucket(storage: Storage, stop: CancellationToken) {
    const RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    for attempt in 1u32.. {
        let Err(e) = storage.ensure_bucket().await else {
            return;
        };
        let delay = RETRY.delay(attempt);
        log::warn!("bucket not ready yet, retrying in {delay:?}: {e}");
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

pub fn build(config: Config, listener: TcpListener) -> anyhow::Result<Service> {
    // Settings that stop the service first, before any warning about the others.
    let authenticator = Authenticator::from_args(&config.auth)?;
    let management = management(&config)?;
    let callback_secret = WebhookSecret::from_setting(
        "DOWNLOAD_CALLBACK_SECRET",
        config.download_callback_secret.as_deref(),
        "completion callbacks go unsigned",
    )?;
    let storage = storage(&config)?;
    let management_token = management_token(&config, management.as_ref());
    let mut background = Background::new();
    let database = Database::start(&config.database, Duration::from_secs(2), &mut background)?;
    if let Some(storage) = storage.clone() {
        background.spawn(move |stop| ensure_bucket(storage, stop));
    }

    let http_metrics = http_metrics("download");
    let metrics = DownloadMetrics::new(&http_metrics.registry);
    background.spawn({
        let database = database.clone();
        let gauges = queue::DepthGauges {
            depth: metrics.queue_depth.clone(),
            oldest_age: metrics.queue_oldest_age.clone(),
        };
        move |stop| queue::watch_depths(database, download_tasks::QUEUE_DEPTHS, gauges, stop)
    });
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
    let reports = WorkQueue::start(&database, reports::DUE_CHANNEL, &mut background);
    let reporter = Arc::new(Reporter {
        db: database.clone(),
        http: http_client("download", Duration::from_secs(10)),
        secret: callback_secret,
        management: management.clone(),
        token: management_token,
        metrics: metrics.clone(),
    });
    reports.run_workers(&mut background, reporter, reports::CONCURRENCY);

    let queued = WorkQueue::start(&database, download_tasks::QUEUED_CHANNEL, &mut background);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let worker = Arc::new(Worker {
        settings: WorkerSettings {
            owner: replica_name("download"),
            // Longer than any one task can take: the download, then decoding and S3.
            lease: timeout * 2 + Duration::from_secs(30),
            thumbnail_size: config.thumbnail_size,
            limits: thumbnail::Limits::default(),
        },
        db: database.clone(),
        fetcher,
        storage: storage.clone(),
        reports,
        metrics,
        cpu: Arc::new(Semaphore::new(cores)),
    });
    queued.run_workers(
        &mut background,
        worker,
        config.download_concurrency as usize,
    );

    let readiness = Readiness::new().with_database(&database).with_check("s3", {
        let storage = storage.clone();
        move || {
            let storage = storage.clone();
            async move {
                match storage {
                    Some(storage) => storage.check().await,
                    None => Err(StorageError::NotConfigured),
                }
            }
        }
    });
    let state = web::Data::new(State {
        db: database,
        storage,
        management,
        queued,
    });
    let authenticator = web::Data::new(authenticator);
    let settings = HttpSettings {
        metrics: http_metrics,
        readiness,
        openapi: DownloadApi::openapi(),
        shutdown_grace: config.common.shutdown_grace(),
        json_limit: JSON_LIMIT,
        workers: 0,
        otlp: config.common.otlp(),
    };
    let service = Service::start(
        "download-service",
        listener,
        settings,
        background,
        move |cfg| {
            cfg.app_data(state.clone())
                .app_data(authenticator.clone())
                .configure(routes::downloads::configure)
                .configure(routes::images::configure);
        },
    )?;
    Ok(service)
}
