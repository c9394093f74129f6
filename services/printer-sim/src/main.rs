//! printer-sim: see the library crate.

use pixpress_kit::{config, server, telemetry};
use pixpress_printer_sim::Config;

#[tokio::main]
async fn main() {
    server::exit_on_error("printer-sim", run().await);
}

async fn run() -> anyhow::Result<()> {
    let config: Config = config::parse();
    telemetry::init_logging(&config.common.rust_log, config.common.log_format);
    let listener = server::bind(config.http_addr)?;
    let service = pixpress_printer_sim::build(config, listener)?;
    log::info!("printer-sim listening on {}", service.addr());
    service.run_until_stopped().await?;
    Ok(())
}
