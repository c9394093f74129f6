//! One access-log line per request, after the response is ready:
//! `<peer> "<method> <path>" <status> <bytes> <ms>ms`, with the request id that the
//! logger adds to every line.
//!
//! Probes and scrapes (`/health`, `/ready`, `/metrics`) are logged at `debug`, so an
//! orchestrator polling every few seconds does not bury the requests that matter.
//! When the line's level is filtered out, nothing is measured or formatted: the
//! layer then costs one level check (actix-web's `Logger` formats every request
//! whatever the filter, which was 10 % of `/health`'s throughput; BENCHMARKS.md).

use std::time::Instant;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use log::Level;

/// The log target of access lines (`RUST_LOG=pixpress_kit::access=warn` silences them).
pub const TARGET: &str = "pixpress_kit::access";

/// The operational routes, logged at `debug`.
fn is_operational(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics")
}

/// Middleware (use with `actix_web::middleware::from_fn`, inside the request-id layer
/// so the line carries the id).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let level = if is_operational(req.path()) {
        Level::Debug
    } else {
        Level::Info
    };
    if !log::log_enabled!(target: TARGET, level) {
        return next.call(req).await;
    }
    let started = Instant::now();
    let peer = req.peer_addr().map(|a| a.ip().to_string());
    let peer = peer.as_deref().unwrap_or("-").to_owned();
    let line = format!("{} {}", req.method(), req.path());
    let result = next.call(req).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    match &result {
        Ok(res) => {
            let bytes = match res.response().body().size() {
                BodySize::Sized(n) => n.to_string(),
                BodySize::None => "0".to_owned(),
                BodySize::Stream => "-".to_owned(),
            };
            let status = res.status().as_u16();
            log::log!(target: TARGET, level, "{peer} \"{line}\" {status} {bytes} {ms:.3}ms");
        }
        Err(e) => log::log!(target: TARGET, level, "{peer} \"{line}\" failed: {e} {ms:.3}ms"),
    }
    result
}

#[cfg(test)]
mod tests {
    use super::is_operational;

    #[test]
    fn probes_and_scrapes_are_operational_and_nothing_else_is() {
        for path in ["/health", "/ready", "/metrics"] {
            assert!(is_operational(path), "{path}");
        }
        for path in ["/print/jobs", "/healthz", "/health/x", "/"] {
            assert!(!is_operational(path), "{path}");
        }
    }
}
