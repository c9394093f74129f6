//! print-service's own metrics (the gate registers its own in the kit).

use pixpress_domain::JobState;
use pixpress_kit::metrics::{latency_buckets, MetricsRegistrar};
use prometheus::{Histogram, HistogramVec, IntCounterVec, IntGaugeVec, Registry};

#[derive(Clone)]
pub struct PrintMetrics {
    /// `pixpress_print_management_call_seconds{outcome}`.
    pub management_call_seconds: HistogramVec,
    /// `pixpress_print_job_transitions_total{from,to}`; a new job counts as
    /// `from="none"`.
    pub job_transitions: IntCounterVec,
    /// `pixpress_print_dispatch_attempts_total{outcome}`: accepted, busy, error,
    /// timeout, unreachable, rejected, breaker_open.
    pub dispatch_attempts: IntCounterVec,
    /// `pixpress_print_dispatch_latency_seconds`: from the job's commit to the
    /// printer's acceptance.
    pub dispatch_latency: Histogram,
    /// `pixpress_print_printer_breaker_state{printer_id}`: 0 closed, 1 half-open, 2 open.
    pub breaker_state: IntGaugeVec,
    /// `pixpress_print_callbacks_total{outcome}`: applied, unchanged, unauthorized,
    /// unknown, illegal, invalid.
    pub callbacks: IntCounterVec,
    /// `pixpress_print_jobs_reconciled_total{outcome}`: what asking a job's printer
    /// came to — applied, unchanged, resent, lost, rejected, unreachable, breaker_open.
    pub reconciled: IntCounterVec,
    /// `pixpress_print_oldest_job_age_seconds{state}`: age of the oldest job still
    /// queued, dispatched or printing (0 when none), refreshed every few seconds.
    pub oldest_job_age: IntGaugeVec,
    /// `pixpress_print_queue_depth{state}`: jobs in each state still on its way.
    pub queue_depth: IntGaugeVec,
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
            dispatch_attempts: metrics.int_counter_vec(
                "dispatch_attempts_total",
                "Attempts to hand a job to its printer, by outcome",
                &["outcome"],
            ),
            dispatch_latency: metrics.histogram(
                "dispatch_latency_seconds",
                "Time from a job's commit to its printer's acceptance",
                latency_buckets(),
            ),
            breaker_state: metrics.int_gauge_vec(
                "printer_breaker_state",
                "Circuit breaker per printer: 0 closed, 1 half-open, 2 open",
                &["printer_id"],
            ),
            callbacks: metrics.int_counter_vec(
                "callbacks_total",
                "Printer callbacks received, by outcome",
                &["outcome"],
            ),
            reconciled: metrics.int_counter_vec(
                "jobs_reconciled_total",
                "Jobs past their deadline checked at their printer, by outcome",
                &["outcome"],
            ),
            oldest_job_age: metrics.int_gauge_vec(
                "oldest_job_age_seconds",
                "Age of the oldest job in each state still on its way (queued, dispatched, printing)",
                &["state"],
            ),
            queue_depth: metrics.int_gauge_vec(
                "queue_depth",
                "Jobs in each state still on its way (queued, dispatched, printing)",
                &["state"],
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
