//! download-service: see the library crate.

use pixpress_download::Config;
use pixpress_kit::{config, server, telemetry};

#[tokio::main]
async fn main() {
    server::exit_on_error("download-service", run().await);
}

async fn run() -> anyhow::Result<()> {
    let config: Config = config::parse();
    telemetry::init_logging(&config.common.rust_log, config.common.log_format);
    let listener = server::bind(config.http_addr)?;
    let service = pixpress_download::build(config, listener)?;
    log::info!("download-service listening on {}", service.addr());
    service.run_until_stopped().await?;
    Ok(())
}
