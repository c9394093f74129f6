//! The whole pixpress system in one process, for a developer's machine and for the
//! end-to-end tests: PostgreSQL (started from the installed server binaries unless a
//! `DATABASE_URL` is given), an S3-compatible store (in-process unless an S3 endpoint
//! is given), and the five services wired to each other with generated secrets and
//! service tokens (DESIGN.md §12: internal routes need the `service` role). When
//! CUPS's `ippeveprinter` is installed it runs too, as a real IPP printer behind
//! ipp-gateway, registered in management-api as printer 2, `ipp-sim`.
//!
//! The services listen on [`StackOptions::host`] (the binary's default is loopback;
//! `0.0.0.0` exposes them); they reach each other on that address, or on loopback
//! when it is a wildcard. The embedded PostgreSQL and S3 stay on loopback.
//!
//! Production runs the same service libraries as separate binaries (docker/, k8s/);
//! nothing here is used by a service.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

/// The stack mints the services' own tokens (role `service`) at every start.
const SERVICE_TOKEN_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

use anyhow::Context;
use pixpress_embedded::ipp::{IppEveOptions, IppEvePrinter};
use pixpress_embedded::postgres::{free_port, ClusterOptions, PostgresCluster};
use pixpress_embedded::s3::{S3Options, S3Server};
use pixpress_kit::auth::{mint, AuthArgs};
use pixpress_kit::server::{bind, ServiceHandle};
use pixpress_kit::webhook::WebhookSecret;
use tokio_postgres::NoTls;

/// Where each service listens; 0 picks a free port.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub print: u16,
    pub download: u16,
    pub management: u16,
    pub printer: u16,
    pub ipp_gateway: u16,
    /// The `ipp-sim` IPP printer (ippeveprinter, when installed).
    pub ipp_sim: u16,
    /// The in-process S3 store (when one is started).
    pub s3: u16,
    /// The PostgreSQL cluster (when one is started).
    pub postgres: u16,
}

impl Ports {
    /// The default ports of DESIGN.md §1; S3 on 9000 and PostgreSQL on 54329 (so a
    /// server already on 5432 is left alone).
    pub const DEFAULT: Ports = Ports {
        print: 8080,
        download: 8081,
        management: 8082,
        printer: 8083,
        ipp_gateway: 8084,
        ipp_sim: 8631,
        s3: 9000,
        postgres: 54329,
    };
    pub const RANDOM: Ports = Ports {
        print: 0,
        download: 0,
        management: 0,
        printer: 0,
        ipp_gateway: 0,
        ipp_sim: 0,
        s3: 0,
        postgres: 0,
    };
}

/// An S3 store the stack does not run itself.
#[derive(Clone)]
pub struct ExternalS3 {
    pub endpoint: String,
    pub public_endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
}

pub struct StackOptions {
    pub ports: Ports,
    /// Where the services listen (`0.0.0.0` or `::`: every interface).
    pub host: IpAddr,
    /// Folder for the embedded PostgreSQL and S3 data; `None`: a temporary folder,
    /// removed when the stack stops.
    pub data_dir: Option<PathBuf>,
    /// Use this database instead of starting PostgreSQL.
    pub database_url: Option<String>,
    /// Use this S3 store instead of the in-process one.
    pub s3: Option<ExternalS3>,
    /// Print time per copy on the simulated printer.
    pub printer_delay_ms: u64,
    /// Run `ippeveprinter` as printer 2, `ipp-sim`, behind ipp-gateway (when it is
    /// installed; the stack goes on without it, saying why, when it cannot start).
    pub ipp_sim: bool,
    pub log_filter: String,
    /// The OTLP/HTTP collector every service exports its spans to
    /// (`OTEL_EXPORTER_OTLP_ENDPOINT`), each as its own `service.name`.
    pub otlp_endpoint: Option<String>,
}

impl StackOptions {
    /// Random loopback ports, throwaway data: what tests want.
    pub fn ephemeral() -> Self {
        Self {
            ports: Ports::RANDOM,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            data_dir: None,
            database_url: None,
            s3: None,
            printer_delay_ms: 0,
            ipp_sim: false,
            log_filter: "warn".into(),
            otlp_endpoint: None,
        }
    }
}

/// A running stack. Dropping it stops the embedded servers; call [`Stack::stop`]
/// for a graceful shutdown of the services first.
pub struct Stack {
    pub print_url: String,
    pub download_url: String,
    pub management_url: String,
    pub printer_url: String,
    pub ipp_gateway_url: String,
    /// printer 2, `ipp-sim`, when it runs: its URL at ipp-gateway, and the printer.
    pub ipp_sim: Option<IppSim>,
    pub s3_endpoint: String,
    pub database_url: String,
    /// The HS256 secret end-user tokens are signed with (generated per start).
    pub auth_secret: String,
    services: Vec<(
        &'static str,
        ServiceHandle,
        tokio::task::JoinHandle<std::io::Result<()>>,
    )>,
    s3: Option<S3Server>,
    postgres: Option<PostgresCluster>,
    _temp: Option<tempfile::TempDir>,
}

/// The local IPP printer (`ippeveprinter`) and how pixpress reaches it.
pub struct IppSim {
    /// Its printer-protocol URL at ipp-gateway (management-api's printer 2).
    pub url: String,
    /// Its own IPP URI.
    pub uri: String,
    /// Where it keeps every document it received.
    pub spool_dir: PathBuf,
    pub printer: IppEvePrinter,
}

/// The name of the local IPP printer, at ipp-gateway and to ippeveprinter.
pub const IPP_SIM: &str = "ipp-sim";

/// Starts ippeveprinter as `ipp-sim` on `port`; `None` (with a warning) when it is
/// not installed or cannot start: the rest of the stack does not need it.
async fn start_ipp_sim(port: u16, spool_dir: PathBuf) -> Option<(IppEvePrinter, PathBuf)> {
    if !IppEvePrinter::installed() {
        log::info!("ippeveprinter is not installed: no `ipp-sim` printer (cups-ipp-utils)");
        return None;
    }
    let port = match port {
        0 => free_port().ok()?,
        port => port,
    };
    let options = IppEveOptions {
        name: IPP_SIM.to_owned(),
        port,
        spool_dir: spool_dir.clone(),
        formats: "image/jpeg,image/png".to_owned(),
        // Prints at once (its own simulation takes 5 to 15 s a job).
        print_command: Some(PathBuf::from("/bin/true")),
        env: Vec::new(),
    };
    match IppEvePrinter::start(&options).await {
        Ok(printer) => Some((printer, spool_dir)),
        Err(e) => {
            log::warn!("no `ipp-sim` printer: {e}");
            None
        }
    }
}

/// Creates `name` on the server of `admin_url` unless it exists.
async fn ensure_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let (client, conn) = tokio_postgres::connect(admin_url, NoTls)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {admin_url}"))?;
    tokio::spawn(conn);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
    }
    Ok(())
}

/// A listener on `host:port` and the URL the other services reach it on: `host`
/// itself, or loopback when `host` is a wildcard.
fn listener(host: IpAddr, port: u16) -> anyhow::Result<(TcpListener, String)> {
    let listener = bind(SocketAddr::new(host, port))?;
    let port = listener.local_addr()?.port();
    let reach = match host {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok((listener, format!("http://{}", SocketAddr::new(reach, port))))
}

impl Stack {
    pub async fn start(options: StackOptions) -> anyhow::Result<Stack> {
        let (data_dir, temp) = match &options.data_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("pixpress-stack-")
                    .tempdir()?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        // Bind every service first: a taken port fails before anything starts.
        let (print_listener, print_url) = listener(options.host, options.ports.print)?;
        let (download_listener, download_url) = listener(options.host, options.ports.download)?;
        let (management_listener, management_url) =
            listener(options.host, options.ports.management)?;
        let (printer_listener, printer_url) = listener(options.host, options.ports.printer)?;
        let (gateway_listener, ipp_gateway_url) =
            listener(options.host, options.ports.ipp_gateway)?;

        let (database_url, postgres) = match &options.database_url {
            Some(url) => (url.clone(), None),
            None => {
                let port = match options.ports.postgres {
                    0 => free_port()?,
                    port => port,
                };
                let cluster_options = ClusterOptions {
                    data_dir: data_dir.join("postgres"),
                    port,
                    durable: options.data_dir.is_some(),
                };
                let cluster =
                    tokio::task::spawn_blocking(move || PostgresCluster::start(&cluster_options))
                        .await??;
                ensure_database(&cluster.url("postgres"), "pixpress").await?;
                (cluster.url("pixpress"), Some(cluster))
            }
        };

        let (s3_settings, s3) = match &options.s3 {
            Some(external) => (external.clone(), None),
            None => {
                let (_, secret_text) = WebhookSecret::generate();
                let server = S3Server::start(S3Options {
                    root: data_dir.join("s3"),
                    addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), options.ports.s3),
                    access_key: "pixpress".into(),
                    secret_key: secret_text,
                    region: "us-east-1".into(),
                })
                .await
                .context("starting the in-process S3 store")?;
                let settings = ExternalS3 {
                    endpoint: server.endpoint(),
                    public_endpoint: None,
                    region: server.region().to_owned(),
                    bucket: "pixpress".into(),
                    access_key: server.access_key().to_owned(),
                    secret_key: server.secret_key().to_owned(),
                };
                (settings, Some(server))
            }
        };

        let (_, auth_secret) = WebhookSecret::generate();
        let auth = AuthArgs::with_secret(auth_secret.clone());
        let service_token = |name: &str| mint(&auth_secret, name, &["service"], SERVICE_TOKEN_TTL);
        let (_, printer_secret) = WebhookSecret::generate();
        let (_, download_secret) = WebhookSecret::generate();
        let common = pixpress_kit::config::CommonArgs {
            rust_log: options.log_filter.clone(),
            shutdown_grace_secs: 10,
            otel_exporter_otlp_endpoint: options.otlp_endpoint.clone(),
            ..Default::default()
        };

        let mut printer = pixpress_printer_sim::Config::local();
        printer.common = common.clone();
        printer.printer_callback_secret = Some(printer_secret.clone());
        printer.printer_delay_ms = options.printer_delay_ms;
        // Like a real printer's spool: a restarted stack finishes what it accepted.
        printer.printer_state_dir = Some(data_dir.join("printer"));

        let ipp_sim = match options.ipp_sim {
            true => start_ipp_sim(options.ports.ipp_sim, data_dir.join("ipp-sim")).await,
            false => None,
        };
        let printers = match &ipp_sim {
            Some((printer, _)) => pixpress_ipp_gateway::PrinterList::one(IPP_SIM, &printer.uri)
                .map_err(|e| anyhow::anyhow!("the ipp-sim printer: {e}"))?,
            None => pixpress_ipp_gateway::PrinterList::default(),
        };
        let mut gateway = pixpress_ipp_gateway::Config::local(printers);
        gateway.common = common.clone();
        gateway.printer_callback_secret = Some(printer_secret.clone());
        gateway.ipp_state_dir = Some(data_dir.join("ipp-gateway"));
        gateway.ipp_poll_ms = 250;
        let ipp_sim = ipp_sim.map(|(printer, spool_dir)| IppSim {
            url: format!("{ipp_gateway_url}/printers/{IPP_SIM}"),
            uri: printer.uri.clone(),
            spool_dir,
            printer,
        });

        let mut management = pixpress_management::Config::local();
        management.common = common.clone();
        management.auth = auth.clone();
        management.printer_url = printer_url.clone();
        management.extra_printer_urls = ipp_sim.iter().map(|sim| sim.url.clone()).collect();
        management.download_url = download_url.clone();
        management.management_public_url = management_url.clone();
        management.download_callback_secret = Some(download_secret.clone());
        management.download_token = Some(service_token("management-api"));

        let mut download = pixpress_download::Config::with_database(&database_url);
        download.common = common.clone();
        download.s3_endpoint = Some(s3_settings.endpoint.clone());
        download.s3_public_endpoint = s3_settings.public_endpoint.clone();
        download.s3_region = s3_settings.region.clone();
        download.s3_bucket = s3_settings.bucket.clone();
        download.s3_access_key = Some(s3_settings.access_key.clone());
        download.s3_secret_key = Some(s3_settings.secret_key.clone());
        // The local stack's images and services live on this machine.
        download.download_allow_private_networks = true;
        download.download_callback_secret = Some(download_secret);
        // Reports go to management-api only (its callback URLs are under this one),
        // with a service token; callers of `/downloads` need one too.
        download.auth = auth.clone();
        download.management_url = Some(management_url.clone());
        download.management_token = Some(service_token("download-service"));

        let mut print = pixpress_print::Config::with_database(&database_url);
        print.common = common;
        print.auth = auth;
        print.management_token = Some(service_token("print-service"));
        print.management_url = management_url.clone();
        print.public_url = print_url.clone();
        print.printer_callback_secret = Some(printer_secret);

        let mut services = Vec::new();
        let mut run = |name: &'static str, service: pixpress_kit::server::Service| {
            let handle = service.handle();
            services.push((name, handle, tokio::spawn(service.run_until_stopped())));
        };
        run(
            "printer-sim",
            pixpress_printer_sim::build(printer, printer_listener)?,
        );
        run(
            "ipp-gateway",
            pixpress_ipp_gateway::build(gateway, gateway_listener)?,
        );
        run(
            "management-api",
            pixpress_management::build(management, management_listener)?,
        );
        run(
            "download-service",
            pixpress_download::build(download, download_listener)?,
        );
        run(
            "print-service",
            pixpress_print::build(print, print_listener)?,
        );

        Ok(Stack {
            print_url,
            download_url,
            management_url,
            printer_url,
            ipp_gateway_url,
            ipp_sim,
            s3_endpoint: s3_settings.endpoint,
            database_url,
            auth_secret,
            services,
            s3,
            postgres,
            _temp: temp,
        })
    }

    /// A token for user `user_id` (or an admin with `admin`), valid for a day.
    pub fn token(&self, subject: &str, roles: &[&str]) -> String {
        mint(
            &self.auth_secret,
            subject,
            roles,
            Duration::from_secs(24 * 3600),
        )
    }

    /// Stops every service gracefully, then the embedded servers.
    pub async fn stop(mut self) {
        for (_, handle, _) in &self.services {
            handle.stop();
        }
        for (name, _, task) in self.services.drain(..) {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => log::error!("{name} stopped with an error: {e}"),
                Err(e) => log::error!("{name} crashed: {e}"),
            }
        }
        if let Some(s3) = self.s3.take() {
            s3.stop().await;
        }
        if let Some(mut postgres) = self.postgres.take() {
            tokio::task::spawn_blocking(move || postgres.stop())
                .await
                .ok();
        }
    }
}
