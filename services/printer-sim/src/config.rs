//! printer-sim settings (DESIGN.md §2); `printer-sim --help` lists them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use pixpress_kit::config::CommonArgs;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "printer-sim",
    version,
    about = "A simulated HTTP printer: accepts jobs, prints them slowly and calls back \
             with signed status updates. Settings come from the environment."
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8083")]
    pub http_addr: SocketAddr,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Standard Webhooks secret (`whsec_…`) callbacks are signed with.
    #[arg(long, env = "PRINTER_CALLBACK_SECRET", hide_env_values = true)]
    pub printer_callback_secret: Option<String>,
    /// Time to print one copy, in milliseconds.
    #[arg(long, env = "PRINTER_DELAY_MS", default_value_t = 500)]
    pub printer_delay_ms: u64,
    /// Time to accept a job (answer its POST) in milliseconds: a slow spooler.
    /// The job is registered before the wait, so a repeat sent meanwhile is a duplicate.
    #[arg(long, env = "PRINTER_ACCEPT_DELAY_MS", default_value_t = 0)]
    pub printer_accept_delay_ms: u64,
    /// Share of jobs that fail, 0.0..=1.0.
    #[arg(long, env = "PRINTER_FAIL_RATE", default_value_t = 0.0)]
    pub printer_fail_rate: f64,
    /// Jobs printing at once before answering 503.
    #[arg(long, env = "PRINTER_CAPACITY", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub printer_capacity: u32,
    /// Folder of the printer's spool: an append-only journal of the jobs it accepted,
    /// printed and reported, replayed at start, so a restarted printer still knows
    /// every job it acknowledged (a repeat is not printed again), prints those it had
    /// not printed yet and sends the callbacks it had not delivered. Created if
    /// missing. Unset: jobs are kept in memory only and forgotten at exit.
    #[arg(long, env = "PRINTER_STATE_DIR")]
    pub printer_state_dir: Option<PathBuf>,
    /// Largest image the printer fetches, in bytes; a larger one fails the job
    /// (`image_unreachable`) without being read to the end.
    #[arg(long, env = "PRINTER_MAX_IMAGE_BYTES", default_value_t = 50 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub printer_max_image_bytes: u64,
    /// Time one attempt to fetch a job's image may take (connecting, redirects and the
    /// whole body), in milliseconds. A timed-out attempt is retried, as a refused
    /// connection, a 5xx or a 429 are.
    #[arg(long, env = "PRINTER_FETCH_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub printer_fetch_timeout_ms: u64,
}

impl Config {
    /// Defaults on an ephemeral loopback port, for tests and the local stack.
    pub fn local() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            common: CommonArgs::default(),
            printer_callback_secret: None,
            printer_delay_ms: 500,
            printer_accept_delay_ms: 0,
            printer_fail_rate: 0.0,
            printer_capacity: 32,
            printer_state_dir: None,
            printer_max_image_bytes: 50 * 1024 * 1024,
            printer_fetch_timeout_ms: 30_000,
        }
    }

    pub fn delay_per_copy(&self) -> Duration {
        Duration::from_millis(self.printer_delay_ms)
    }

    pub fn fetch_timeout(&self) -> Duration {
        Duration::from_millis(self.printer_fetch_timeout_ms)
    }
}
