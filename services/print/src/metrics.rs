//! print-service's own metrics (the gate registers its own in the kit).

use pixpress_domain::JobState;
use pixpress_kit::metrics::{latency_buckets, MetricsRegistrar};
use prometheus::{HistogramVec, IntCounterVec, Registry};

#[derive(Clone)]
pub struct PrintMetrics {
    /// `pixpress_print_management_call_seconds{outcome}`.
    pub management_call_seconds: HistogramVec,
    /// `pixpress_print_job_transitions_total{from,to}`; a new job counts as
    /// `from="none"`.
    pub job_transitions: IntCounterVec,
}

impl PrintMetrics {
    pub fn new(registry: &Registry) -> Self {
        let metrics = MetricsRegistrar::new(registry, "print");
        Self {
            management_call_seconds: metrics.histogram_vec(
                "management_call_seconds",
                "Duration of management API lookups, by outcome",
                &["outcome"],
                latency_buckets(),
            ),
            job_transitions: metrics.int_counter_vec(
                "job_transitions_total",
                "Print job state transitions",
                &["from", "to"],
            ),
        }
    }

    pub fn transition(&self, from: Option<JobState>, to: JobState) {
        let from = from.map_or("none", JobState::as_str);
        self.job_transitions
            .with_label_values(&[from, to.as_str()])
            .inc();
    }
}
