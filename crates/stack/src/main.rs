//! `cargo run --release`: the whole pixpress system on this machine.

use std::path::PathBuf;

use clap::Parser;
use pixpress_kit::telemetry::LogFormat;
use pixpress_stack::{ExternalS3, Ports, Stack, StackOptions};

/// Runs PostgreSQL (unless DATABASE_URL is set), an S3-compatible store (unless
/// S3_ENDPOINT is set) and the five pixpress services on their default ports, plus
/// CUPS's ippeveprinter as the IPP printer `ipp-sim` when it is installed.
#[derive(Parser)]
#[command(name = "pixpress", version)]
struct Args {
    /// Where the embedded PostgreSQL and S3 keep their data between runs.
    #[arg(long, env = "PIXPRESS_DATA_DIR", default_value = ".pixpress")]
    data_dir: PathBuf,
    /// The address the services listen on: loopback by default, so nothing is
    /// reachable from other machines; `--host 0.0.0.0` exposes them (mind that the
    /// printed tokens then work from anywhere that reaches this machine).
    #[arg(long, env = "PIXPRESS_HOST", default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Keep nothing: data in a temporary folder, removed on exit.
    #[arg(long)]
    throwaway: bool,
    /// Use this PostgreSQL database instead of starting one.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Use this S3 endpoint instead of the in-process store (with the S3_* settings).
    #[arg(long, env = "S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    #[arg(long, env = "S3_PUBLIC_ENDPOINT")]
    s3_public_endpoint: Option<String>,
    #[arg(long, env = "S3_REGION", default_value = "us-east-1")]
    s3_region: String,
    #[arg(long, env = "S3_BUCKET", default_value = "pixpress")]
    s3_bucket: String,
    #[arg(long, env = "S3_ACCESS_KEY", hide_env_values = true)]
    s3_access_key: Option<String>,
    #[arg(long, env = "S3_SECRET_KEY", hide_env_values = true)]
    s3_secret_key: Option<String>,
    /// Print time per copy on the simulated printer, in milliseconds.
    #[arg(long, env = "PRINTER_DELAY_MS", default_value_t = 500)]
    printer_delay_ms: u64,
    /// Do not start ippeveprinter (the `ipp-sim` printer) even when it is installed.
    #[arg(long)]
    no_ipp_sim: bool,
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    rust_log: String,
    /// Log lines as `text` or `json` (one object per line).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// An OTLP/HTTP collector (e.g. `http://127.0.0.1:4318`) every service exports
    /// its request spans to.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otel_exporter_otlp_endpoint: Option<String>,
}

#[tokio::main]
async fn main() {
    pixpress_kit::server::exit_on_error("pixpress", run().await);
}

async fn run() -> anyhow::Result<()> {
    let args: Args = pixpress_kit::config::parse();
    pixpress_kit::telemetry::init_logging(&args.rust_log, args.log_format);
    let s3 = match args.s3_endpoint {
        Some(endpoint) => Some(ExternalS3 {
            endpoint,
            public_endpoint: args.s3_public_endpoint,
            region: args.s3_region,
            bucket: args.s3_bucket,
            access_key: args
                .s3_access_key
                .ok_or_else(|| anyhow::anyhow!("S3_ACCESS_KEY is required with S3_ENDPOINT"))?,
            secret_key: args
                .s3_secret_key
                .ok_or_else(|| anyhow::anyhow!("S3_SECRET_KEY is required with S3_ENDPOINT"))?,
        }),
        None => None,
    };
    let stack = Stack::start(StackOptions {
        ports: Ports::DEFAULT,
        host: args.host,
        data_dir: (!args.throwaway).then_some(args.data_dir),
        database_url: args.database_url,
        s3,
        printer_delay_ms: args.printer_delay_ms,
        ipp_sim: !args.no_ipp_sim,
        log_filter: args.rust_log,
        otlp_endpoint: args.otel_exporter_otlp_endpoint,
    })
    .await?;
    let ipp_sim = match &stack.ipp_sim {
        Some(sim) => format!(
            "printer 2, {} ({}, spool {})",
            sim.url,
            sim.uri,
            sim.spool_dir.display()
        ),
        None => "not running (install cups-ipp-utils; see the log)".to_owned(),
    };
    println!(
        "\npixpress is up:\n  print-service     {}\n  download-service  {}\n  management-api    {}\n  printer-sim       {} (printer 1)\n  ipp-gateway       {}\n  ipp-sim           {ipp_sim}\n  S3                {}\n  PostgreSQL        {}\n",
        stack.print_url,
        stack.download_url,
        stack.management_url,
        stack.printer_url,
        stack.ipp_gateway_url,
        stack.s3_endpoint,
        redact(&stack.database_url),
    );
    println!(
        "API docs: /docs on every service, e.g. {}/docs\n",
        stack.print_url
    );
    println!(
        "Tokens (valid 24 h; `cargo run -p pixpress-stack --bin pixpress-token` mints more with AUTH_JWT_SECRET):\n  user 1: export TOKEN={}\n  admin:  export ADMIN_TOKEN={}\n\nCtrl-C stops everything.\n",
        stack.token("1", &[]),
        stack.token("0", &["admin"]),
    );
    pixpress_kit::server::shutdown_signal().await;
    println!("stopping…");
    stack.stop().await;
    Ok(())
}

/// The URL without its password, for the banner.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
