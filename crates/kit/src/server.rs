//! The HTTP server every service runs, its background tasks, and graceful shutdown.
//!
//! A service hands [`serve`] its routes; the kit wraps them with the request-context
//! (request id, trace context, access log, span) middleware, metrics and
//! problem+json, and mounts the operational routes. [`Service::start`] also starts
//! the service's span exporter when `HttpSettings::otlp` says where to.
//! [`Service::run_until_stopped`] then waits for SIGTERM/SIGINT (or a
//! [`ServiceHandle::stop`]), stops accepting, lets in-flight requests and claimed
//! background work finish within the grace period, and returns.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use actix_web_prom::PrometheusMetrics;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::health::{self, Readiness};
use crate::openapi::AllowedMethods;
use crate::otlp::{Exporter, OtlpSettings, SpanSink};
use crate::{problem, request_id};

/// Open connections one worker thread accepts before it stops accepting more.
pub const MAX_CONNECTIONS_PER_WORKER: usize = 4096;

/// The largest JSON body a service accepts unless it says otherwise (413 above).
pub const JSON_LIMIT: usize = 64 * 1024;

/// Everything the kit needs to serve a service's routes.
pub struct HttpSettings {
    pub metrics: PrometheusMetrics,
    pub readiness: Readiness,
    /// The service's own operations; [`Service::start`] adds the shared parts.
    pub openapi: utoipa::openapi::OpenApi,
    pub shutdown_grace: Duration,
    /// Largest JSON body accepted (413 above).
    pub json_limit: usize,
    /// actix worker threads (0: one per core).
    pub workers: usize,
    /// Where [`Service::start`] exports the spans of served requests
    /// (`CommonArgs::otlp`); `None`: nowhere.
    pub otlp: Option<OtlpSettings>,
}

/// How long, at shutdown, the spans still queued may take to reach the collector.
const SPAN_FLUSH: Duration = Duration::from_secs(5);

/// Binds `routes` (plus the operational routes) to `listener`; `settings.openapi` is
/// the finished document (see [`Service::start`]). The span of each request served
/// goes to `spans`, when given (`settings.otlp` is [`Service::start`]'s business).
pub fn serve<F>(
    listener: TcpListener,
    settings: HttpSettings,
    spans: Option<SpanSink>,
    routes: F,
) -> io::Result<Server>
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    let openapi_json =
        Arc::new(serde_json::to_string(&settings.openapi).map_err(io::Error::other)?);
    let allowed = web::Data::new(AllowedMethods::from_openapi(&settings.openapi));
    let docs_page = Arc::new(crate::docs::page(&settings.openapi.info.title));
    let HttpSettings {
        metrics,
        readiness,
        json_limit,
        ..
    } = settings;
    let mut server = HttpServer::new(move || {
        let readiness = readiness.clone();
        let openapi_json = Arc::clone(&openapi_json);
        let docs_page = Arc::clone(&docs_page);
        let allowed = allowed.clone();
        let mut app = App::new();
        if let Some(spans) = &spans {
            app = app.app_data(spans.clone());
        }
        app.app_data(problem::json_config(json_limit))
            .app_data(web::PayloadConfig::new(json_limit))
            .app_data(problem::path_config())
            .app_data(problem::query_config())
            .configure(move |cfg| health::configure(cfg, readiness, allowed, openapi_json))
            .configure(move |cfg| crate::docs::configure(cfg, docs_page))
            .configure(routes.clone())
            .default_service(web::to(problem::not_found))
            .wrap(problem::error_handlers())
            .wrap(metrics.clone())
            .wrap(from_fn(request_id::middleware))
    })
    // The kit handles signals itself, so background work stops together with HTTP.
    .disable_signals()
    // Slow clients cannot hold a worker: the request head must arrive within 5 s,
    // and a connection is capped per worker (25k by default in actix).
    .client_request_timeout(Duration::from_secs(5))
    .client_disconnect_timeout(Duration::from_secs(1))
    .keep_alive(Duration::from_secs(30))
    .max_connections(MAX_CONNECTIONS_PER_WORKER)
    .shutdown_timeout(settings.shutdown_grace.as_secs())
    .listen(listener)?;
    if settings.workers > 0 {
        server = server.workers(settings.workers);
    }
    Ok(server.run())
}

/// Background work tied to a service's lifetime: each task gets the stop token and
/// is awaited (up to the grace period) at shutdown.
#[derive(Default)]
pub struct Background {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Spawns `task(stop)`; the task should return soon after `stop` is cancelled,
    /// once the work it has claimed is finished or released.
    pub fn spawn<F, Fut>(&mut self, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.tasks.push(tokio::spawn(task(self.stop.clone())));
    }

    async fn stop(self, grace: Duration) {
        self.stop.cancel();
        let all = futures_util::future::join_all(self.tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            log::warn!("background work did not finish within {grace:?}; leaving it");
        }
    }
}

/// Who this process is, in leases and logs: `{HOSTNAME or service}-{pid}-{random}`,
/// unique per process even when replicas share a host name.
pub fn replica_name(service: &str) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| service.to_owned());
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &nonce[..8])
}

/// A bound, running service.
pub struct Service {
    name: &'static str,
    addr: SocketAddr,
    server: Server,
    background: Background,
    grace: Duration,
    exporter: Option<Exporter>,
}

/// Stops a running [`Service`] from elsewhere (tests, the stack).
#[derive(Clone)]
pub struct ServiceHandle {
    stop: CancellationToken,
}

impl ServiceHandle {
    /// Asks the service to shut down gracefully; `run_until_stopped` returns when done.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Service {
    /// Serves `routes` (plus the operational routes) on `listener` as the service
    /// `name`, whose OpenAPI document is `settings.openapi` completed by
    /// [`crate::openapi::document`]; `background` stops with it, and so does the
    /// span exporter `settings.otlp` asks for (started here, on the current runtime).
    pub fn start<F>(
        name: &'static str,
        listener: TcpListener,
        mut settings: HttpSettings,
        background: Background,
        routes: F,
    ) -> io::Result<Self>
    where
        F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        let addr = listener.local_addr()?;
        let grace = settings.shutdown_grace;
        settings.openapi = crate::openapi::document(name, settings.openapi);
        let exporter = settings.otlp.take().map(|otlp| {
            let exporter = Exporter::start(otlp, name, &settings.metrics.registry);
            log::info!("{name}: exporting spans to {}", exporter.traces_url());
            exporter
        });
        let server = serve(
            listener,
            settings,
            exporter.as_ref().map(Exporter::sink),
            routes,
        )?;
        Ok(Self {
            name,
            addr,
            server,
            background,
            grace,
            exporter,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:<port>` (the loopback address even when bound to 0.0.0.0).
    pub fn local_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    pub fn handle(&self) -> ServiceHandle {
        ServiceHandle {
            stop: self.background.token(),
        }
    }

    /// Runs the service on the current runtime in the background (tests, the
    /// stack); returns its loopback URL and a handle to stop it.
    pub fn spawn(self) -> (String, ServiceHandle) {
        let url = self.local_url();
        let handle = self.handle();
        let name = self.name;
        tokio::spawn(async move {
            if let Err(e) = self.run_until_stopped().await {
                log::error!("{name} stopped with an error: {e}");
            }
        });
        (url, handle)
    }

    /// Serves until SIGTERM/SIGINT or [`ServiceHandle::stop`], then shuts down
    /// gracefully: no new connections, in-flight requests and claimed work finish
    /// within the grace period.
    pub async fn run_until_stopped(self) -> io::Result<()> {
        let Service {
            name,
            server,
            background,
            grace,
            exporter,
            ..
        } = self;
        let server_handle: ServerHandle = server.handle();
        let stop = background.token();
        let mut server = tokio::spawn(server);
        let early_exit = tokio::select! {
            _ = shutdown_signal() => None,
            _ = stop.cancelled() => None,
            result = &mut server => Some(result),
        };
        log::info!("{name}: shutting down (grace {grace:?})");
        let http = async {
            match early_exit {
                Some(result) => result,
                None => {
                    server_handle.stop(true).await;
                    server.await
                }
            }
        };
        let ((), result) = tokio::join!(background.stop(grace), http);
        // Every request has ended: their spans are all queued.
        if let Some(exporter) = exporter {
            exporter.shutdown(SPAN_FLUSH).await;
        }
        log::info!("{name}: stopped");
        result.map_err(io::Error::other)?
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Binds `addr`, naming it in the error (so "port taken" is one clear line).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// Ends a binary that failed to start or run with one line naming the binary and
/// the cause chain (no backtrace: these are operator-facing errors), exit code 1.
pub fn exit_on_error(binary: &str, result: anyhow::Result<()>) {
    if let Err(err) = result {
        eprintln!("{binary}: {err:#}");
        std::process::exit(1);
    }
}
