//! Configuration from the environment (DESIGN.md §2).
//!
//! Each binary declares its settings as a `clap::Parser` whose arguments read from
//! environment variables, so `--help` documents every variable. The settings every
//! binary shares are here, to be `#[command(flatten)]`ed.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::otlp::OtlpSettings;
use crate::telemetry::LogFormat;

/// Settings of every binary.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Log filter (env_logger syntax), e.g. `info` or `pixpress_print=debug,info`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub rust_log: String,
    /// Seconds to finish in-flight requests and claimed work after SIGTERM/SIGINT.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
    /// Log lines as `text` (`… [request_id=… trace_id=…] message`) or `json` (one
    /// object per line: ts, level, target, msg, request_id, trace_id, span_id).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Base URL of an OpenTelemetry collector's OTLP/HTTP receiver (e.g.
    /// `http://otel-collector:4318`): when set, one span per request served is
    /// exported to `<that URL>/v1/traces` (OTLP/HTTP, JSON encoding).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_parser = otlp_url)]
    pub otel_exporter_otlp_endpoint: Option<String>,
    /// The full URL spans are posted to, instead of OTEL_EXPORTER_OTLP_ENDPOINT's
    /// `/v1/traces`.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", value_parser = otlp_url)]
    pub otel_exporter_otlp_traces_endpoint: Option<String>,
    /// `service.name` of the exported spans (default: the binary's name, e.g.
    /// `print-service`).
    #[arg(long, env = "OTEL_SERVICE_NAME")]
    pub otel_service_name: Option<String>,
}

impl CommonArgs {
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// Where to export spans, if anywhere (OTEL_EXPORTER_OTLP_*).
    pub fn otlp(&self) -> Option<OtlpSettings> {
        OtlpSettings::from_endpoints(
            self.otel_exporter_otlp_endpoint.as_deref(),
            self.otel_exporter_otlp_traces_endpoint.as_deref(),
            self.otel_service_name.as_deref(),
        )
    }
}

impl Default for CommonArgs {
    fn default() -> Self {
        Self {
            rust_log: "info".to_owned(),
            shutdown_grace_secs: 30,
            log_format: LogFormat::Text,
            otel_exporter_otlp_endpoint: None,
            otel_exporter_otlp_traces_endpoint: None,
            otel_service_name: None,
        }
    }
}

/// An OTLP endpoint: an http(s) URL (empty: unset, as the OTel specification says).
fn otlp_url(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() || value.starts_with("http://") || value.starts_with("https://") {
        Ok(value.to_owned())
    } else {
        Err(format!("{value:?} is not an http:// or https:// URL"))
    }
}

/// Settings of the binaries that keep state in PostgreSQL.
#[derive(Clone, clap::Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL, e.g. `postgres://pixpress@127.0.0.1:5432/pixpress`. TLS as
    /// libpq's `sslmode=`: `disable`; `prefer` (the default: TLS if the server offers
    /// it) and `require` (TLS, certificate unchecked, unless DATABASE_CA_FILE is set:
    /// then as `verify-ca`); `verify-ca` (the certificate must chain to a trusted CA);
    /// `verify-full` (and name the URL's host).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// PEM file of the CA certificate(s) the database server's certificate must
    /// chain to. Without it, `verify-ca` and `verify-full` trust the public (Mozilla)
    /// roots.
    #[arg(long, env = "DATABASE_CA_FILE")]
    pub database_ca_file: Option<PathBuf>,
    /// Maximum connections in the pool.
    #[arg(long, env = "DB_POOL_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_pool_size: u32,
    /// Milliseconds a piece of database work may take (a checkout and its
    /// statements, a connection attempt): past it the service gives up (503, /ready
    /// 503) and the server cancels the statement (`statement_timeout`). Default:
    /// print-service's BACKEND_TIMEOUT_MS; download-service's 2000.
    #[arg(long, env = "DB_STATEMENT_TIMEOUT_MS", value_parser = clap::value_parser!(u64).range(1..=i32::MAX as u64))]
    pub db_statement_timeout_ms: Option<u64>,
}

impl DatabaseArgs {
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            database_ca_file: None,
            db_pool_size: 16,
            db_statement_timeout_ms: None,
        }
    }

    /// The database deadline: DB_STATEMENT_TIMEOUT_MS, or else the service's `default`.
    pub fn deadline(&self, default: Duration) -> Duration {
        self.db_statement_timeout_ms
            .map_or(default, Duration::from_millis)
    }
}

/// Parses a binary's settings from the environment and arguments.
///
/// `--help` prints and exits 0; a missing or malformed setting prints one line naming
/// it and exits 2.
pub fn parse<C: Parser>() -> C {
    match C::try_parse() {
        Ok(config) => config,
        Err(err) => {
            use clap::error::ErrorKind;
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) {
                let _ = err.print();
                std::process::exit(0);
            }
            // clap's message spans lines (the missing argument is on the second);
            // keep everything before the usage block, on one line.
            let message = err.to_string();
            let summary: Vec<&str> = message
                .lines()
                .map(str::trim)
                .take_while(|line| !line.is_empty() && !line.starts_with("Usage:"))
                .collect();
            let bin = std::env::args().next().unwrap_or_default();
            let bin = bin.rsplit('/').next().unwrap_or("pixpress");
            eprintln!("{bin}: configuration {}", summary.join(" "));
            std::process::exit(2);
        }
    }
}
