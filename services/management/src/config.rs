//! management-api settings (DESIGN.md §2); `management-api --help` lists them.

use std::net::SocketAddr;
use std::time::Duration;

use pixpress_kit::config::CommonArgs;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "management-api",
    version,
    about = "An in-memory stand-in for the management service: users' images, print \
             authorization lookup and the printer registry. Settings come from the environment."
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8082")]
    pub http_addr: SocketAddr,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Base URL of the download service.
    #[arg(long, env = "DOWNLOAD_URL", default_value = "http://127.0.0.1:8081")]
    pub download_url: String,
    /// URL of printer 1, registered at start.
    #[arg(long, env = "PRINTER_URL", default_value = "http://127.0.0.1:8083")]
    pub printer_url: String,
    /// Artificial delay added to every `/lookup`, in milliseconds (load tests).
    #[arg(long, env = "MANAGEMENT_LATENCY_MS", default_value_t = 0)]
    pub management_latency_ms: u64,
}

impl Config {
    /// Defaults on an ephemeral loopback port, for tests and the local stack.
    pub fn local() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            common: CommonArgs::default(),
            download_url: "http://127.0.0.1:8081".to_owned(),
            printer_url: "http://127.0.0.1:8083".to_owned(),
            management_latency_ms: 0,
        }
    }

    pub fn lookup_latency(&self) -> Duration {
        Duration::from_millis(self.management_latency_ms)
    }
}
