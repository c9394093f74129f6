//! The pieces a scenario starts: each service in-process on a loopback port 0, built
//! from its library as the stack builds it (so settings the stack does not expose,
//! like `dispatch_enabled`, can be set), with authentication on as the stack sets it
//! up ([`Auth`]: one HS256 secret, a `service` token wherever a service calls
//! another); the bare actix-web reference app; a sink for callbacks; a throwaway
//! database; and figures read back from `/metrics`.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::{bail, Context};
use pixpress_kit::auth::{mint, AuthArgs};
use pixpress_kit::config::CommonArgs;
use pixpress_kit::server::{Service, ServiceHandle};
use pixpress_kit::webhook::WebhookSecret;
use pixpress_testkit::s3::TestBucket;
use pixpress_testkit::TestDatabase;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// A service running on this process's runtime. Dropping it asks it to stop (so a
/// scenario that fails half-way leaves nothing serving); [`Running::stop`] also waits.
pub struct Running {
    pub url: String,
    handle: ServiceHandle,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.stop();
    }
}

impl Running {
    pub fn start(service: Service) -> Self {
        let url = service.local_url();
        let handle = service.handle();
        Self {
            url,
            handle,
            task: Some(tokio::spawn(service.run_until_stopped())),
        }
    }

    /// Graceful stop, as SIGTERM would.
    pub async fn stop(mut self) {
        self.handle.stop();
        let Some(task) = self.task.take() else {
            return;
        };
        match tokio::time::timeout(Duration::from_secs(15), task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => log::warn!("{} stopped with an error: {e}", self.url),
            Ok(Err(e)) => log::warn!("{} crashed: {e}", self.url),
            Err(_) => log::warn!("{} did not stop within 15 s", self.url),
        }
    }
}

pub async fn stop_all(services: Vec<Running>) {
    futures_util::future::join_all(services.into_iter().map(Running::stop)).await;
}

/// A listener on a free loopback port and its base URL.
pub fn loopback() -> anyhow::Result<(TcpListener, String)> {
    let listener = pixpress_kit::server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    Ok((listener, url))
}

/// Quiet logs (a line per request would measure the terminal) and a short grace.
fn common() -> CommonArgs {
    CommonArgs {
        rust_log: "warn".to_owned(),
        shutdown_grace_secs: 5,
        ..CommonArgs::default()
    }
}

/// A fresh `whsec_…` secret.
pub fn secret() -> String {
    WebhookSecret::generate().1
}

/// A URL nothing listens on (for settings a scenario never uses).
pub const NOWHERE: &str = "http://127.0.0.1:9";

/// How long the tokens of a run are valid: longer than any run.
const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// Authentication as the stack sets it up (crates/stack): every service checks
/// HS256 bearer tokens signed with one secret; users send a token whose `sub` is
/// their id, services calling each other one with the `service` role.
#[derive(Clone)]
pub struct Auth {
    secret: String,
}

impl Auth {
    /// A fresh secret.
    pub fn new() -> Self {
        Self { secret: secret() }
    }

    /// What the services check tokens with.
    pub fn args(&self) -> AuthArgs {
        AuthArgs::with_secret(self.secret.clone())
    }

    /// `Bearer …` for user `user_id` (no roles): what a user's client sends.
    pub fn user(&self, user_id: i64) -> String {
        format!(
            "Bearer {}",
            mint(&self.secret, &user_id.to_string(), &[], TOKEN_TTL)
        )
    }

    /// A `service` token (no `Bearer `), for a service's `*_TOKEN` setting.
    pub fn service_token(&self, name: &str) -> String {
        mint(&self.secret, name, &["service"], TOKEN_TTL)
    }

    /// `Bearer …` with the `service` role: what the harness sends where it stands in
    /// for a service.
    pub fn service(&self, name: &str) -> String {
        format!("Bearer {}", self.service_token(name))
    }

    /// The secret itself (for service binaries' `AUTH_JWT_SECRET`).
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

pub fn printer(secret: &str, capacity: u32) -> anyhow::Result<Running> {
    printer_with(secret, |c| c.printer_capacity = capacity)
}

/// printer-sim with no print delay; `tweak` sets the rest.
pub fn printer_with(
    secret: &str,
    tweak: impl FnOnce(&mut pixpress_printer_sim::Config),
) -> anyhow::Result<Running> {
    let (listener, _) = loopback()?;
    let mut config = pixpress_printer_sim::Config::local();
    config.common = common();
    config.printer_callback_secret = Some(secret.to_owned());
    config.printer_delay_ms = 0;
    tweak(&mut config);
    Ok(Running::start(pixpress_printer_sim::build(
        config, listener,
    )?))
}

/// printer-sim as the stack runs it, at full speed: no print delay, the default
/// capacity, and a spool on disk (`PRINTER_STATE_DIR`: a synced journal line before
/// each 202).
pub fn spooling_printer(secret: &str, spool: PathBuf) -> anyhow::Result<Running> {
    printer_with(secret, |c| c.printer_state_dir = Some(spool))
}

pub fn management(auth: &Auth, printer_url: &str, latency_ms: u64) -> anyhow::Result<Running> {
    management_on(loopback()?, auth, |c| {
        c.printer_url = printer_url.to_owned();
        c.management_latency_ms = latency_ms;
    })
}

/// management-api on `listener` (its URL beside it), checking tokens, with a
/// `service` token for download-service; `tweak` sets the rest.
pub fn management_on(
    (listener, url): (TcpListener, String),
    auth: &Auth,
    tweak: impl FnOnce(&mut pixpress_management::Config),
) -> anyhow::Result<Running> {
    let mut config = pixpress_management::Config::local();
    config.common = common();
    config.auth = auth.args();
    config.download_token = Some(auth.service_token("management-api"));
    config.printer_url = NOWHERE.to_owned();
    config.download_url = NOWHERE.to_owned();
    config.management_public_url = url;
    config.download_callback_secret = Some(secret());
    tweak(&mut config);
    Ok(Running::start(pixpress_management::build(
        config, listener,
    )?))
}

/// print-service, checking tokens and presenting a `service` token to the
/// management API; `tweak` sets what the scenario varies.
pub fn print(
    database_url: &str,
    management_url: &str,
    printer_secret: &str,
    auth: &Auth,
    tweak: impl FnOnce(&mut pixpress_print::Config),
) -> anyhow::Result<Running> {
    let (listener, url) = loopback()?;
    let mut config = pixpress_print::Config::with_database(database_url);
    config.common = common();
    config.auth = auth.args();
    config.management_token = Some(auth.service_token("print-service"));
    config.management_url = management_url.to_owned();
    config.public_url = url;
    config.printer_callback_secret = Some(printer_secret.to_owned());
    tweak(&mut config);
    Ok(Running::start(pixpress_print::build(config, listener)?))
}

/// download-service on the in-process S3 bucket, checking tokens (callers of
/// `/downloads` need the `service` role) and reporting under `management_url` with
/// a `service` token.
pub fn download(
    database_url: &str,
    bucket: &TestBucket,
    concurrency: u32,
    callback_secret: &str,
    management_url: &str,
    auth: &Auth,
) -> anyhow::Result<Running> {
    download_on(
        loopback()?,
        database_url,
        bucket,
        callback_secret,
        management_url,
        auth,
        |c| c.download_concurrency = concurrency,
    )
}

pub fn download_on(
    (listener, _url): (TcpListener, String),
    database_url: &str,
    bucket: &TestBucket,
    callback_secret: &str,
    management_url: &str,
    auth: &Auth,
    tweak: impl FnOnce(&mut pixpress_download::Config),
) -> anyhow::Result<Running> {
    let mut config = pixpress_download::Config::with_database(database_url);
    config.common = common();
    config.auth = auth.args();
    config.s3_endpoint = Some(bucket.endpoint.clone());
    config.s3_region = bucket.region.clone();
    config.s3_bucket = bucket.bucket.clone();
    config.s3_access_key = Some(bucket.access_key.clone());
    config.s3_secret_key = Some(bucket.secret_key.clone());
    config.download_allow_private_networks = true;
    config.download_callback_secret = Some(callback_secret.to_owned());
    // Reports go only under MANAGEMENT_URL, with a service token.
    config.management_url = Some(management_url.to_owned());
    config.management_token = Some(auth.service_token("download-service"));
    tweak(&mut config);
    Ok(Running::start(pixpress_download::build(config, listener)?))
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Polls `GET {base}{path}` until it answers 200 (at most 30 s).
pub async fn wait_ok(base: &str, path: &str) -> anyhow::Result<()> {
    let client = client();
    let started = Instant::now();
    loop {
        if let Ok(res) = client.get(format!("{base}{path}")).send().await {
            if res.status() == 200 {
                return Ok(());
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("{base}{path} did not answer 200 within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// What `/lookup` says about a file: the values a queued job row holds.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub user_id: i64,
    pub file_id: i64,
    pub printer_id: i64,
    pub printer_url: String,
    pub image_url: String,
}

/// Records a `ready` image at `image_url` for `user_id` with the management API's
/// test-only shortcut (nothing is downloaded; a printer fetches `image_url` itself),
/// with the user's token, and looks it up as print-service would (a service token).
pub async fn ready_image(
    management_url: &str,
    auth: &Auth,
    user_id: i64,
    image_url: &str,
) -> anyhow::Result<Lookup> {
    let client = client();
    let image: serde_json::Value = client
        .post(format!("{management_url}/users/{user_id}/images"))
        .header("authorization", auth.user(user_id))
        .json(&serde_json::json!({"url": image_url, "ready": true}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let file_id = image["id"].as_i64().context("an image id")?;
    let lookup: serde_json::Value = client
        .get(format!(
            "{management_url}/lookup?user_id={user_id}&file_id={file_id}"
        ))
        .header("authorization", auth.service("print-service"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(Lookup {
        user_id,
        file_id,
        printer_id: lookup["printer_id"].as_i64().context("printer_id")?,
        printer_url: lookup["printer_url"]
            .as_str()
            .context("printer_url")?
            .to_owned(),
        image_url: lookup["image_url"]
            .as_str()
            .context("image_url")?
            .to_owned(),
    })
}

/// What printer-sim's `GET /jobs` says against the database's jobs.
pub struct Printed {
    /// Jobs of the database the printer printed exactly once.
    pub once: usize,
    /// Jobs in the database.
    pub jobs: usize,
    /// Repeat sends the printer deduplicated.
    pub resent: u64,
    /// Entries the printer has (a job it knows that the database does not counts).
    pub at_printer: usize,
}

/// Exactly once: every job of the database appears once at the printer with
/// `printed = 1`.
pub async fn printed_exactly_once(
    printer_url: &str,
    db: &tokio_postgres::Client,
) -> anyhow::Result<Printed> {
    let printed: serde_json::Value = client()
        .get(format!("{printer_url}/jobs"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let printed = printed.as_array().context("GET /jobs is a list")?;
    let ids: HashSet<Uuid> = db
        .query("SELECT correlation_id FROM print_jobs", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut once = 0;
    let mut resent = 0;
    let mut seen = HashSet::new();
    for entry in printed {
        let id = entry["correlation_id"]
            .as_str()
            .and_then(|s| s.parse::<Uuid>().ok());
        let received = entry["received"].as_u64().unwrap_or(0);
        resent += received.saturating_sub(1);
        if let Some(id) = id {
            if ids.contains(&id) && entry["printed"].as_u64() == Some(1) && seen.insert(id) {
                once += 1;
            }
        }
    }
    Ok(Printed {
        once,
        jobs: ids.len(),
        resent,
        at_printer: printed.len(),
    })
}

/// A throwaway, migrated database (see `pixpress_testkit::db` for where the server
/// comes from), dropped with the value.
pub async fn database() -> TestDatabase {
    TestDatabase::new().await
}

/// An actix-web server the harness runs itself (reference app, sinks, image origin).
/// Dropping it stops it (the stop command is sent at once, unawaited).
pub struct Plain {
    pub url: String,
    handle: ServerHandle,
}

impl Drop for Plain {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

impl Plain {
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// `/health`'s body, serialized the way the kit serializes it.
#[derive(serde::Serialize)]
struct Status {
    status: &'static str,
}

/// The reference for `health`: actix-web with the same worker count and the same
/// route and body as the kit's `/health`, and no middleware at all.
pub fn bare_health_server(listener: TcpListener) -> std::io::Result<actix_web::dev::Server> {
    Ok(HttpServer::new(|| {
        App::new().route(
            "/health",
            web::get().to(|| async { HttpResponse::Ok().json(Status { status: "ok" }) }),
        )
    })
    .disable_signals()
    .listen(listener)?
    .run())
}

pub fn bare_health() -> anyhow::Result<Plain> {
    let (listener, url) = loopback()?;
    let server = bare_health_server(listener)?;
    let handle = server.handle();
    tokio::spawn(server);
    Ok(Plain { url, handle })
}

/// Answers 204 to any request and counts them, plus those whose JSON body has
/// `"state": "completed"` (download callbacks).
#[derive(Clone, Default)]
pub struct SinkCounts {
    pub received: Arc<AtomicU64>,
    pub completed: Arc<AtomicU64>,
}

impl SinkCounts {
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::SeqCst)
    }
    pub fn reset(&self) {
        self.received.store(0, Ordering::SeqCst);
        self.completed.store(0, Ordering::SeqCst);
    }
}

pub fn sink() -> anyhow::Result<(Plain, SinkCounts)> {
    let (listener, url) = loopback()?;
    let counts = SinkCounts::default();
    let shared = counts.clone();
    let server = HttpServer::new(move || {
        let counts = shared.clone();
        App::new()
            .app_data(web::PayloadConfig::new(1024 * 1024))
            .default_service(web::to(move |body: web::Bytes| {
                let counts = counts.clone();
                async move {
                    counts.received.fetch_add(1, Ordering::SeqCst);
                    let state = serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["state"].as_str().map(str::to_owned));
                    if state.as_deref() == Some("completed") {
                        counts.completed.fetch_add(1, Ordering::SeqCst);
                    }
                    HttpResponse::NoContent().finish()
                }
            }))
    })
    .workers(2)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok((Plain { url, handle }, counts))
}

/// Serves `GET /img/{name}` as `jpeg` tagged with `name`, so every URL is a
/// different file holding the same picture.
pub fn image_origin(jpeg: Arc<Vec<u8>>) -> anyhow::Result<Plain> {
    let (listener, url) = loopback()?;
    let server = HttpServer::new(move || {
        let jpeg = Arc::clone(&jpeg);
        App::new().route(
            "/img/{name}",
            web::get().to(move |name: web::Path<String>| {
                let jpeg = Arc::clone(&jpeg);
                async move {
                    HttpResponse::Ok()
                        .content_type("image/jpeg")
                        .body(crate::images::tagged_jpeg(&jpeg, &name))
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(Plain { url, handle })
}

/// `GET {base}/metrics`.
pub async fn scrape(base: &str) -> anyhow::Result<String> {
    Ok(client()
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?)
}

/// The sum of every sample of `name` (any labels), `None` when absent.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    let mut sum = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        if let Some(value) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *sum.get_or_insert(0.0) += value;
        }
    }
    sum
}

/// The cumulative buckets of histogram `name` (summed over other labels), by `le`.
pub fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{");
    let mut by_le: Vec<(f64, f64)> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let le = labels
            .split(',')
            .find_map(|l| l.trim().strip_prefix("le=\""))
            .map(|v| v.trim_end_matches('"'))
            .and_then(|v| {
                if v == "+Inf" {
                    Some(f64::INFINITY)
                } else {
                    v.parse::<f64>().ok()
                }
            });
        let (Some(le), Ok(value)) = (le, value.trim().parse::<f64>()) else {
            continue;
        };
        match by_le.iter_mut().find(|(l, _)| *l == le) {
            Some((_, count)) => *count += value,
            None => by_le.push((le, value)),
        }
    }
    by_le.sort_by(|a, b| a.0.total_cmp(&b.0));
    by_le
}

/// `after - before`, bucket by bucket.
pub fn bucket_delta(before: &[(f64, f64)], after: &[(f64, f64)]) -> Vec<(f64, f64)> {
    after
        .iter()
        .map(|(le, count)| {
            let earlier = before
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |(_, c)| *c);
            (*le, count - earlier)
        })
        .collect()
}

/// The `q` quantile of cumulative buckets, interpolated linearly inside the bucket as
/// Prometheus' `histogram_quantile` does (so its precision is the bucket layout's).
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let inside = count - lower.1;
            let share = if inside > 0.0 {
                (rank - lower.1) / inside
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * share);
        }
        lower = (le, count);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE x histogram\n\
        x_bucket{le=\"0.001\"} 0\nx_bucket{le=\"0.01\"} 50\nx_bucket{le=\"0.1\"} 100\n\
        x_bucket{le=\"+Inf\"} 100\nx_sum 1\nx_count 100\n\
        pixpress_print_backend_permits_available{service=\"print\"} 64\n";

    #[test]
    fn reads_gauges_and_histograms() {
        assert_eq!(
            metric(TEXT, "pixpress_print_backend_permits_available"),
            Some(64.0)
        );
        assert_eq!(metric(TEXT, "x_count"), Some(100.0));
        assert_eq!(metric(TEXT, "pixpress_print"), None);
        let b = buckets(TEXT, "x");
        assert_eq!(b.len(), 4);
        let p50 = quantile(&b, 0.5).unwrap();
        assert!((p50 - 0.01).abs() < 1e-9, "{p50}");
        let p75 = quantile(&b, 0.75).unwrap();
        assert!((p75 - 0.055).abs() < 1e-9, "{p75}");
        let none = bucket_delta(&b, &b);
        assert_eq!(quantile(&none, 0.5), None);
    }
}

/// One of the layers the kit wraps around every route (`pixpress_kit::server::serve`),
/// alone on the bare `/health` app: the `layers` scenario weighs each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// actix-web-prom's HTTP metrics.
    Metrics,
    /// The kit's request-id middleware (it also writes the access line; `/health`'s
    /// is `debug`, filtered out as at the default `info`).
    RequestId,
    /// The kit's problem+json error handlers.
    ErrorHandlers,
}

impl Layer {
    pub const EVERY: [Layer; 3] = [Layer::Metrics, Layer::RequestId, Layer::ErrorHandlers];

    pub fn name(self) -> &'static str {
        match self {
            Layer::Metrics => "HTTP metrics (actix-web-prom)",
            Layer::RequestId => "request id + access line",
            Layer::ErrorHandlers => "problem+json error handlers",
        }
    }
}

async fn health_ok() -> HttpResponse {
    HttpResponse::Ok().json(Status { status: "ok" })
}

/// The bare `/health` app wrapped in one kit layer.
pub fn layered_health(layer: Layer) -> anyhow::Result<Plain> {
    use actix_web::middleware::from_fn;
    let (listener, url) = loopback()?;
    let server = match layer {
        Layer::Metrics => {
            let metrics = pixpress_kit::metrics::http_metrics("bench");
            HttpServer::new(move || {
                App::new()
                    .route("/health", web::get().to(health_ok))
                    .wrap(metrics.clone())
            })
            .disable_signals()
            .listen(listener)?
            .run()
        }
        Layer::RequestId => HttpServer::new(|| {
            App::new()
                .route("/health", web::get().to(health_ok))
                .wrap(from_fn(pixpress_kit::request_id::middleware))
        })
        .disable_signals()
        .listen(listener)?
        .run(),
        Layer::ErrorHandlers => HttpServer::new(|| {
            App::new()
                .route("/health", web::get().to(health_ok))
                .wrap(pixpress_kit::problem::error_handlers())
        })
        .disable_signals()
        .listen(listener)?
        .run(),
    };
    let handle = server.handle();
    tokio::spawn(server);
    Ok(Plain { url, handle })
}

/// The reference for `overload`'s 429 latency: actix-web with no middleware answering
/// every `POST /print/jobs` with the same 429 problem+json print-service sends,
/// echoing `X-Request-Id` (the Lua timer reads it back).
pub fn bare_rejecting() -> anyhow::Result<Plain> {
    let (listener, url) = loopback()?;
    let server = HttpServer::new(|| {
        App::new().route(
            "/print/jobs",
            web::post().to(|req: actix_web::HttpRequest| async move {
                let mut res = HttpResponse::TooManyRequests();
                res.content_type("application/problem+json")
                    .insert_header(("retry-after", "1"));
                if let Some(id) = req.headers().get("x-request-id") {
                    res.insert_header(("x-request-id", id.clone()));
                }
                res.body(
                    r#"{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"the service is at capacity; retry after a second"}"#,
                )
            }),
        )
    })
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(Plain { url, handle })
}
