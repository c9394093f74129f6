//! management-api's own metrics: how many lookups are being served, and the most
//! ever served at once (what backpressure tests and operators look at); how
//! download requests, the download service's callbacks, reconciliation rounds and
//! task deletions turned out.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use pixpress_kit::metrics::MetricsRegistrar;
use prometheus::{IntCounterVec, IntGauge, Registry};

#[derive(Clone, Default)]
pub struct LookupMetrics {
    in_flight: Arc<AtomicI64>,
    in_flight_max: Arc<AtomicI64>,
}

/// Counts one lookup in flight until dropped.
pub struct InFlight(LookupMetrics);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl LookupMetrics {
    pub fn new(registry: &Registry) -> Self {
        let this = Self::default();
        let metrics = MetricsRegistrar::new(registry, "management");
        let now = Arc::clone(&this.in_flight);
        metrics.gauge_fn("lookups_in_flight", "Lookups being served now", move || {
            now.load(Ordering::Acquire)
        });
        let max = Arc::clone(&this.in_flight_max);
        metrics.gauge_fn(
            "lookups_in_flight_max",
            "Most lookups ever served at once since start",
            move || max.load(Ordering::Acquire),
        );
        this
    }

    pub fn enter(&self) -> InFlight {
        let now = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        self.in_flight_max.fetch_max(now, Ordering::AcqRel);
        InFlight(self.clone())
    }
}

#[derive(Clone)]
pub struct DownloadMetrics {
    /// `pixpress_management_downloads_requested_total{outcome}`, once per image:
    /// accepted, refused (a 4xx), unreachable (gave up retrying), abandoned (the image
    /// was deleted or settled meanwhile, or the service is stopping).
    pub requested: IntCounterVec,
    /// `pixpress_management_download_callbacks_total{outcome}`: completed, failed,
    /// unchanged, conflict, unknown, invalid, unauthorized (bad signature),
    /// unauthenticated (no valid bearer token), forbidden (a token without the
    /// `service` role).
    pub callbacks: IntCounterVec,
    /// `pixpress_management_download_reconciliations_total{outcome}`, once per overdue
    /// image per round (`reconcile::Reconciled`): completed, failed, running, lost,
    /// untracked, unanswered, refused, superseded.
    pub reconciled: IntCounterVec,
    /// `pixpress_management_task_deletions_total{outcome}`, per attempt: deleted,
    /// retried (download-service unavailable; asked again later), refused (a 4xx other
    /// than 404: given up), abandoned (the service stopped first).
    pub deletions: IntCounterVec,
    /// `pixpress_management_task_deletions_pending`: tasks waiting to be deleted at
    /// download-service (the in-memory retry list).
    pub deletions_pending: IntGauge,
}

impl DownloadMetrics {
    pub fn new(registry: &Registry) -> Self {
        let metrics = MetricsRegistrar::new(registry, "management");
        Self {
            requested: metrics.int_counter_vec(
                "downloads_requested_total",
                "Downloads asked of the download service, by final outcome",
                &["outcome"],
            ),
            callbacks: metrics.int_counter_vec(
                "download_callbacks_total",
                "Download callbacks received, by outcome",
                &["outcome"],
            ),
            reconciled: metrics.int_counter_vec(
                "download_reconciliations_total",
                "Overdue pending images checked at the download service, by outcome",
                &["outcome"],
            ),
            deletions: metrics.int_counter_vec(
                "task_deletions_total",
                "Attempts to delete a download task at the download service, by outcome",
                &["outcome"],
            ),
            deletions_pending: metrics.int_gauge(
                "task_deletions_pending",
                "Download tasks waiting to be deleted at the download service",
            ),
        }
    }
}
