//! One access-log line per request, after the response is ready:
//! `<peer> "<method> <path>" <status> <bytes> <ms>ms`, with the request id that the
//! logger adds to every line. The request-id middleware writes it (one layer for
//! both: each `from_fn` layer costs a boxed future per request).
//!
//! Probes and scrapes (`/health`, `/ready`, `/metrics`) are logged at `debug`, so an
//! orchestrator polling every few seconds does not bury the requests that matter.
//! When the line's level is filtered out, nothing is measured or formatted: the
//! line costs one level check (actix-web's `Logger` formats every request whatever
//! the filter, which was 10 % of `/health`'s throughput; BENCHMARKS.md).

use std::time::Instant;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use log::Level;

/// The log target of access lines (`RUST_LOG=pixpress_kit::access=warn` silences them).
pub const TARGET: &str = "pixpress_kit::access";

/// The operational routes, logged at `debug`.
fn is_operational(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics")
}

/// An access line being timed; `None` from [`AccessLine::start`] when its level is
/// filtered out.
pub struct AccessLine {
    level: Level,
    started: Instant,
    peer: String,
    request: String,
}

impl AccessLine {
    pub fn start(req: &ServiceRequest) -> Option<Self> {
        let level = if is_operational(req.path()) {
            Level::Debug
        } else {
            Level::Info
        };
        if !log::log_enabled!(target: TARGET, level) {
            return None;
        }
        Some(Self {
            level,
            started: Instant::now(),
            peer: req
                .peer_addr()
                .map_or_else(|| "-".to_owned(), |a| a.ip().to_string()),
            request: format!("{} {}", req.method(), req.path()),
        })
    }

    /// Writes the line (call it where the request id is in scope).
    pub fn finish<B: MessageBody>(self, result: &Result<ServiceResponse<B>, actix_web::Error>) {
        let Self {
            level,
            started,
            peer,
            request,
        } = self;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok(res) => {
                let bytes = match res.response().body().size() {
                    BodySize::Sized(n) => n.to_string(),
                    BodySize::None => "0".to_owned(),
                    BodySize::Stream => "-".to_owned(),
                };
                let status = res.status().as_u16();
                log::log!(target: TARGET, level, "{peer} \"{request}\" {status} {bytes} {ms:.3}ms");
            }
            Err(e) => {
                log::log!(target: TARGET, level, "{peer} \"{request}\" failed: {e} {ms:.3}ms")
            }
        }
    }
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
