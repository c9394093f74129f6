//! `pixpress-s3`: the in-process S3 server of [`pixpress_embedded::s3`] as a
//! program of its own, so a container can run it where no S3 server image can be
//! had (the compose override of `.ci/containers.sh`, docker/local/s3/). It is a
//! development and test server: one access key, no TLS, path-style URLs only.
//!
//! Settings (environment, named as the AWS tools and SeaweedFS name them):
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (both required), `S3_ADDR`
//! (default `0.0.0.0:8333`), `S3_DATA_DIR` (default `/data`), `S3_REGION` (default
//! `us-east-1`), `S3_BUCKET` (created at start when set and missing). It serves
//! until SIGTERM or SIGINT; objects stay in `S3_DATA_DIR`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use pixpress_embedded::s3::{S3Options, S3Server, S3ServerError};
use tokio::signal::unix::{signal, SignalKind};

#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("S3_ADDR {0:?} is not an address such as 0.0.0.0:8333")]
    Addr(String),
    #[error(transparent)]
    Server(#[from] S3ServerError),
    #[error("cannot listen for signals: {0}")]
    Signals(#[source] std::io::Error),
}

fn setting(name: &'static str) -> Result<String, StartError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(StartError::Missing(name))
}

fn setting_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

async fn run() -> Result<(), StartError> {
    let addr_setting = setting_or("S3_ADDR", "0.0.0.0:8333");
    let addr: SocketAddr = addr_setting
        .parse()
        .map_err(|_| StartError::Addr(addr_setting.clone()))?;
    let options = S3Options {
        root: PathBuf::from(setting_or("S3_DATA_DIR", "/data")),
        addr,
        access_key: setting("AWS_ACCESS_KEY_ID")?,
        secret_key: setting("AWS_SECRET_ACCESS_KEY")?,
        region: setting_or("S3_REGION", "us-east-1"),
    };
    let mut terminate = signal(SignalKind::terminate()).map_err(StartError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(StartError::Signals)?;

    let server = S3Server::start(options).await?;
    if let Ok(bucket) = setting("S3_BUCKET") {
        server.create_bucket(&bucket).await?;
    }
    eprintln!(
        "pixpress-s3: serving {} on {} (access key {})",
        server.root().display(),
        server.endpoint(),
        server.access_key()
    );
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    server.stop().await;
    eprintln!("pixpress-s3: stopped");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pixpress-s3: {e}");
            ExitCode::FAILURE
        }
    }
}
