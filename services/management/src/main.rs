//! management-api: see the library crate.

use pixpress_kit::{config, server, telemetry};
use pixpress_management::Config;

#[tokio::main]
async fn main() {
    server::exit_on_error("management-api", run().await);
}

async fn run() -> anyhow::Result<()> {
    let config: Config = config::parse();
    telemetry::init_logging(&config.common.rust_log, config.common.log_format);
    let listener = server::bind(config.http_addr)?;
    let service = pixpress_management::build(config, listener)?;
    log::info!("management-api listening on {}", service.addr());
    service.run_until_stopped().await?;
    Ok(())
}
