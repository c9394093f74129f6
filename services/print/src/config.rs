//! print-service settings (DESIGN.md §2); `print-service --help` lists them.

use std::net::SocketAddr;
use std::time::Duration;

use pixpress_kit::auth::AuthArgs;
use pixpress_kit::config::{CommonArgs, DatabaseArgs};
use pixpress_kit::gate::BackendGate;

#[derive(Clone, clap::Parser)]
#[command(
    name = "print-service",
    version,
    about = "Accepts print jobs, authorizes them with the management API, keeps them in \
             PostgreSQL and dispatches them to printers. Settings come from the environment."
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Base URL of the management API.
    #[arg(long, env = "MANAGEMENT_URL", default_value = "http://127.0.0.1:8082")]
    pub management_url: String,
    /// Bearer token (role `service`) print-service presents to the management API.
    #[arg(long, env = "MANAGEMENT_TOKEN", hide_env_values = true)]
    pub management_token: Option<String>,
    /// Concurrent management API calls before answering 429.
    #[arg(long, env = "BACKEND_PERMITS", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub backend_permits: u32,
    /// Of those, how many one user may hold at once (a flooding user gets 429s while
    /// others still get through); default a quarter of BACKEND_PERMITS, at least 1.
    #[arg(long, env = "BACKEND_PERMITS_PER_USER",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub backend_permits_per_user: Option<u32>,
    /// Timeout of one management API call, in milliseconds.
    #[arg(long, env = "BACKEND_TIMEOUT_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub backend_timeout_ms: u64,
    /// Base URL printers call back on.
    #[arg(long, env = "PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
    pub public_url: String,
    /// Standard Webhooks secret (`whsec_…`) printers sign their callbacks with.
    #[arg(long, env = "PRINTER_CALLBACK_SECRET", hide_env_values = true)]
    pub printer_callback_secret: Option<String>,
    /// Jobs dispatched to printers at once.
    #[arg(long, env = "DISPATCH_CONCURRENCY", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub dispatch_concurrency: u32,
    /// Attempts to hand a job to its printer before it fails.
    #[arg(long, env = "DISPATCH_MAX_ATTEMPTS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub dispatch_max_attempts: u32,
    /// Run the dispatcher in this replica; `false` makes an intake-only replica
    /// (the API without the workers).
    #[arg(long, env = "DISPATCH_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub dispatch_enabled: bool,
    /// How long a dispatcher holds a claimed job before another replica may take it
    /// (milliseconds). Longer than a send can take.
    #[arg(long, env = "DISPATCH_LEASE_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(100..))]
    pub dispatch_lease_ms: u64,
    /// How long a job may stay `dispatched` or `printing` without news, per copy, in
    /// milliseconds, before reconciliation asks its printer what became of it (and
    /// again after each answer that changes nothing).
    #[arg(long, env = "PRINT_JOB_DEADLINE_MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(MIN_JOB_DEADLINE_MS..))]
    pub print_job_deadline_ms: u64,
    /// How often dispatching replicas read the management API's printer registry
    /// (milliseconds): a printer moved there gets its queued jobs at its new URL
    /// within this time.
    #[arg(long, env = "PRINTER_REFRESH_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(100..))]
    pub printer_refresh_ms: u64,
}

/// The shortest `PRINT_JOB_DEADLINE_MS`: a printer is not asked about a job more
/// often than this.
const MIN_JOB_DEADLINE_MS: u64 = 100;

impl Config {
    /// Defaults for everything but the database, for tests and the local stack
    /// (authentication disabled until they configure it).
    pub fn with_database(database_url: impl Into<String>) -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            common: CommonArgs::default(),
            database: DatabaseArgs::new(database_url),
            auth: AuthArgs::disabled(),
            management_url: "http://127.0.0.1:8082".to_owned(),
            management_token: None,
            backend_permits: 64,
            backend_permits_per_user: None,
            backend_timeout_ms: 2000,
            public_url: "http://127.0.0.1:8080".to_owned(),
            printer_callback_secret: None,
            dispatch_concurrency: 16,
            dispatch_max_attempts: 8,
            dispatch_enabled: true,
            dispatch_lease_ms: 30_000,
            print_job_deadline_ms: 60_000,
            printer_refresh_ms: 5_000,
        }
    }

    pub fn dispatch_lease(&self) -> Duration {
        Duration::from_millis(self.dispatch_lease_ms)
    }

    /// The permits one user may hold at once.
    pub fn backend_permits_per_user(&self) -> usize {
        self.backend_permits_per_user.map_or_else(
            || BackendGate::default_share(self.backend_permits as usize),
            |share| share as usize,
        )
    }

    /// A job's deadline at its printer, per copy.
    pub fn job_deadline(&self) -> Duration {
        Duration::from_millis(self.print_job_deadline_ms)
    }

    pub fn printer_refresh(&self) -> Duration {
        Duration::from_millis(self.printer_refresh_ms)
    }

    pub fn backend_timeout(&self) -> Duration {
        Duration::from_millis(self.backend_timeout_ms)
    }
}
