//! download-service settings (DESIGN.md §2); `download-service --help` lists them.

use std::net::SocketAddr;
use std::time::Duration;

use pixpress_kit::auth::AuthArgs;
use pixpress_kit::config::{CommonArgs, DatabaseArgs};

#[derive(Clone, clap::Parser)]
#[command(
    name = "download-service",
    version,
    about = "Downloads images from user-supplied URLs, stores the original and a thumbnail \
             in S3 and reports the result. Settings come from the environment."
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8081")]
    pub http_addr: SocketAddr,
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Who may call `/downloads…`: tokens with the `service` or `admin` role.
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Base URL of the management API, e.g. `http://127.0.0.1:8082`: completion
    /// reports go only to callback URLs under it. Unset: no `callback_url` is accepted.
    #[arg(long, env = "MANAGEMENT_URL")]
    pub management_url: Option<String>,
    /// Bearer token (role `service`) sent with every completion report to the
    /// management API.
    #[arg(long, env = "MANAGEMENT_TOKEN", hide_env_values = true)]
    pub management_token: Option<String>,
    /// S3 endpoint, e.g. `http://127.0.0.1:9000`.
    #[arg(long, env = "S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Endpoint used in presigned URLs (what browsers and printers can reach).
    #[arg(long, env = "S3_PUBLIC_ENDPOINT")]
    pub s3_public_endpoint: Option<String>,
    #[arg(long, env = "S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    #[arg(long, env = "S3_BUCKET", default_value = "pixpress")]
    pub s3_bucket: String,
    #[arg(long, env = "S3_ACCESS_KEY", hide_env_values = true)]
    pub s3_access_key: Option<String>,
    #[arg(long, env = "S3_SECRET_KEY", hide_env_values = true)]
    pub s3_secret_key: Option<String>,
    /// Downloads running at once in this replica.
    #[arg(long, env = "DOWNLOAD_CONCURRENCY", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub download_concurrency: u32,
    /// Largest image accepted, in bytes.
    #[arg(long, env = "DOWNLOAD_MAX_BYTES", default_value_t = 20 * 1024 * 1024)]
    pub download_max_bytes: u64,
    /// Time allowed for a whole download, in milliseconds.
    #[arg(long, env = "DOWNLOAD_TIMEOUT_MS", default_value_t = 30_000)]
    pub download_timeout_ms: u64,
    /// The thumbnail fits a square of this side (pixels), aspect kept.
    #[arg(long, env = "THUMBNAIL_SIZE", default_value_t = 128,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub thumbnail_size: u32,
    /// Allow downloads from loopback/private addresses (local stack and tests only).
    #[arg(long, env = "DOWNLOAD_ALLOW_PRIVATE_NETWORKS", default_value_t = false,
          action = clap::ArgAction::Set)]
    pub download_allow_private_networks: bool,
    /// Host names (as written in URLs, comma-separated) exempt from the private-network
    /// ban, e.g. an internal image host. Other names resolving to the same addresses
    /// stay banned.
    #[arg(long, env = "DOWNLOAD_ALLOWED_INTERNAL_HOSTS", value_delimiter = ',')]
    pub download_allowed_internal_hosts: Vec<String>,
    /// Standard Webhooks secret (`whsec_…`) completion callbacks are signed with.
    #[arg(long, env = "DOWNLOAD_CALLBACK_SECRET", hide_env_values = true)]
    pub download_callback_secret: Option<String>,
}

impl Config {
    /// Defaults for everything but the database, for tests and the local stack
    /// (authentication disabled and no management URL until they configure them).
    pub fn with_database(database_url: impl Into<String>) -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            common: CommonArgs::default(),
            database: DatabaseArgs::new(database_url),
            auth: AuthArgs::disabled(),
            management_url: None,
            management_token: None,
            s3_endpoint: None,
            s3_public_endpoint: None,
            s3_region: "us-east-1".to_owned(),
            s3_bucket: "pixpress".to_owned(),
            s3_access_key: None,
            s3_secret_key: None,
            download_concurrency: 8,
            download_max_bytes: 20 * 1024 * 1024,
            download_timeout_ms: 30_000,
            thumbnail_size: 128,
            download_allow_private_networks: false,
            download_allowed_internal_hosts: Vec::new(),
            download_callback_secret: None,
        }
    }

    pub fn download_timeout(&self) -> Duration {
        Duration::from_millis(self.download_timeout_ms)
    }
}
