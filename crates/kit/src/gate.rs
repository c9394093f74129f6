//! The backpressure gate: a fixed number of permits for calls to a slow backend.
//! When none is free the caller is told "429, retry later" at once, without waiting
//! and without touching the backend, so overload never piles up work.

use std::sync::Arc;

use prometheus::{IntCounter, Registry};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::MetricsRegistrar;
use crate::problem::{ApiError, ServiceError};

#[derive(Clone)]
pub struct BackendGate {
    semaphore: Arc<Semaphore>,
    rejections: IntCounter,
}

/// Held for exactly the duration of one backend call; the permit goes back on drop,
/// on every path (panics included).
pub type GatePermit = OwnedSemaphorePermit;

/// No permit was free: answer 429.
#[derive(Debug, thiserror::Error)]
#[error("too many requests in flight to the backend")]
pub struct GateSaturated;

impl ServiceError for GateSaturated {
    /// 429 with `Retry-After`, answered before any backend is touched.
    fn api_error(&self) -> ApiError {
        ApiError::new(
            "saturated",
            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            "the service is at capacity; retry after a second",
        )
        .retry_after(1)
    }
}

impl BackendGate {
    /// A gate of `permits` permits whose metrics are
    /// `pixpress_<service>_backend_permits_available`, `…_backend_permits_total` and
    /// `pixpress_<service>_backpressure_rejections_total`.
    pub fn new(permits: usize, registry: &Registry, service: &str) -> Self {
        let semaphore = Arc::new(Semaphore::new(permits));
        let metrics = MetricsRegistrar::new(registry, service);
        let total = metrics.int_gauge("backend_permits_total", "Backend call permits in all");
        total.set(permits as i64);
        let rejections = metrics.int_counter(
            "backpressure_rejections_total",
            "Requests answered 429 because no backend permit was free",
        );
        let read = Arc::clone(&semaphore);
        metrics.gauge_fn(
            "backend_permits_available",
            "Backend call permits free right now",
            move || read.available_permits() as i64,
        );
        Self {
            semaphore,
            rejections,
        }
    }

    /// Takes a permit without waiting.
    pub fn try_enter(&self) -> Result<GatePermit, GateSaturated> {
        Arc::clone(&self.semaphore)
            .try_acquire_owned()
            .map_err(|_| {
                self.rejections.inc();
                GateSaturated
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge(registry: &Registry, name: &str) -> f64 {
        registry
            .gather()
            .iter()
            .find(|f| f.name() == name)
            .map(|f| f.get_metric()[0].get_gauge().get_value())
            .unwrap_or(f64::NAN)
    }

    #[test]
    fn saturated_gate_rejects_and_recovers_when_permits_drop() {
        let registry = Registry::new();
        let gate = BackendGate::new(2, &registry, "test");
        let a = gate.try_enter().unwrap();
        let b = gate.try_enter().unwrap();
        assert!(gate.try_enter().is_err());
        assert_eq!(
            gauge(&registry, "pixpress_test_backend_permits_available"),
            0.0
        );
        assert_eq!(gate.rejections.get(), 1);
        drop(a);
        drop(b);
        assert_eq!(
            gauge(&registry, "pixpress_test_backend_permits_available"),
            2.0
        );
        assert!(gate.try_enter().is_ok());
    }
}
