//! management-api settings (DESIGN.md §2); `management-api --help` lists them.

use std::net::SocketAddr;
use std::time::Duration;

use pixpress_kit::auth::AuthArgs;
use pixpress_kit::config::CommonArgs;

#[derive(Clone, clap::Parser)]
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
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Base URL of the download service on the services' network: where downloads
    /// are requested, and the base of the `image_url` printers get from `/lookup`
    /// (a link that redirects to S3 by its internal name, `S3_ENDPOINT`).
    #[arg(long, env = "DOWNLOAD_URL", default_value = "http://127.0.0.1:8081")]
    pub download_url: String,
    /// Base URL of the download service as users' browsers reach it: the base of
    /// images' `original_url`/`thumbnail_url` (which redirect to
    /// `S3_PUBLIC_ENDPOINT`). Default: `DOWNLOAD_URL`.
    #[arg(long, env = "DOWNLOAD_PUBLIC_URL")]
    pub download_public_url: Option<String>,
    /// Bearer token (role `service`) management-api presents to the download service
    /// on every `/downloads` call. Unset: a warning at start, and a download service
    /// that checks tokens refuses every request (so no image downloads).
    #[arg(long, env = "DOWNLOAD_TOKEN", hide_env_values = true)]
    pub download_token: Option<String>,
    /// Base URL the download service calls back on when a download ends (the download
    /// service's `MANAGEMENT_URL` must be this URL or a prefix of it).
    #[arg(
        long,
        env = "MANAGEMENT_PUBLIC_URL",
        default_value = "http://127.0.0.1:8082"
    )]
    pub management_public_url: String,
    /// Standard Webhooks secret (`whsec_…`) the download service signs its callbacks
    /// with. Unset: every download callback is refused (401).
    #[arg(long, env = "DOWNLOAD_CALLBACK_SECRET", hide_env_values = true)]
    pub download_callback_secret: Option<String>,
    /// How long to keep asking an unreachable (or 5xx-answering) download service for
    /// a download before the image is marked `failed` with `unreachable`, in seconds.
    #[arg(long, env = "MANAGEMENT_DOWNLOAD_RETRY_SECS", default_value_t = 60)]
    pub download_retry_secs: u64,
    /// How long an image may stay `pending` with its download taken before
    /// management-api asks the download service how the task is doing (a report
    /// that never arrived), in seconds.
    #[arg(long, env = "MANAGEMENT_RECONCILE_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub reconcile_secs: u64,
    /// URL of printer 1, registered at start.
    #[arg(long, env = "PRINTER_URL", default_value = "http://127.0.0.1:8083")]
    pub printer_url: String,
    /// URLs of printers 2, 3, … registered at start, comma-separated (e.g. IPP
    /// printers behind ipp-gateway: `http://ipp-gateway:8084/printers/office`).
    #[arg(long, env = "EXTRA_PRINTER_URLS", value_delimiter = ',')]
    pub extra_printer_urls: Vec<String>,
    /// Artificial delay added to every `/lookup`, in milliseconds (load tests).
    #[arg(long, env = "MANAGEMENT_LATENCY_MS", default_value_t = 0)]
    pub management_latency_ms: u64,
}

impl Config {
    /// Defaults on an ephemeral loopback port, for tests and the local stack
    /// (authentication disabled until they configure it).
    pub fn local() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            common: CommonArgs::default(),
            auth: AuthArgs::disabled(),
            download_url: "http://127.0.0.1:8081".to_owned(),
            download_public_url: None,
            management_public_url: "http://127.0.0.1:8082".to_owned(),
            download_callback_secret: None,
            download_token: None,
            download_retry_secs: 60,
            reconcile_secs: 300,
            printer_url: "http://127.0.0.1:8083".to_owned(),
            extra_printer_urls: Vec::new(),
            management_latency_ms: 0,
        }
    }

    pub fn lookup_latency(&self) -> Duration {
        Duration::from_millis(self.management_latency_ms)
    }

    pub fn download_retry_window(&self) -> Duration {
        Duration::from_secs(self.download_retry_secs)
    }

    pub fn reconcile_deadline(&self) -> Duration {
        Duration::from_secs(self.reconcile_secs)
    }
}
