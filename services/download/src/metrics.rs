//! download-service's own metrics.

use pixpress_kit::metrics::{latency_buckets, MetricsRegistrar};
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

#[derive(Clone)]
pub struct DownloadMetrics {
    /// `pixpress_download_tasks_total{outcome,reason}`: outcome completed, failed or
    /// retried; reason a failure code or `none`.
    pub tasks: IntCounterVec,
    /// `pixpress_download_bytes_total`: bytes of images downloaded.
    pub bytes: IntCounter,
    /// `pixpress_download_fetch_seconds`: the HTTP download.
    pub fetch_seconds: Histogram,
    /// `pixpress_download_thumbnail_seconds`: sniff + decode + resize + encode + hash.
    pub thumbnail_seconds: Histogram,
    /// `pixpress_download_s3_put_seconds`: storing original and thumbnail.
    pub s3_put_seconds: Histogram,
    /// `pixpress_download_workers_busy`: tasks being worked on in this replica.
    pub workers_busy: IntGauge,
    /// `pixpress_download_callbacks_total{outcome}`: delivered, retried, abandoned
    /// (failed for good), refused (not under `MANAGEMENT_URL`, never sent).
    pub callbacks: IntCounterVec,
    /// `pixpress_download_queue_depth{queue}`: images to download (`downloads`:
    /// queued or running) and completion reports to send (`reports`).
    pub queue_depth: IntGaugeVec,
    /// `pixpress_download_queue_oldest_age_seconds{queue}`: how long the oldest of
    /// them has waited (a download since it was asked for, a report since its
    /// image was done).
    pub queue_oldest_age: IntGaugeVec,
}

impl DownloadMetrics {
    pub fn new(registry: &Registry) -> Self {
        let m = MetricsRegistrar::new(registry, "download");
        let seconds = || {
            let mut buckets = latency_buckets();
            buckets.extend([30.0, 60.0]);
            buckets
        };
        Self {
            tasks: m.int_counter_vec(
                "tasks_total",
                "Download task outcomes, by reason",
                &["outcome", "reason"],
            ),
            bytes: m.int_counter("bytes_total", "Bytes of images downloaded"),
            fetch_seconds: m.histogram("fetch_seconds", "Duration of image downloads", seconds()),
            thumbnail_seconds: m.histogram(
                "thumbnail_seconds",
                "Duration of decoding and thumbnailing one image",
                seconds(),
            ),
            s3_put_seconds: m.histogram(
                "s3_put_seconds",
                "Duration of storing one image's objects in S3",
                seconds(),
            ),
            workers_busy: m.int_gauge("workers_busy", "Download tasks being worked on now"),
            callbacks: m.int_counter_vec(
                "callbacks_total",
                "Completion callbacks, by outcome",
                &["outcome"],
            ),
            queue_depth: m.int_gauge_vec(
                "queue_depth",
                "Items in each queue: downloads to do, reports to send",
                &["queue"],
            ),
            queue_oldest_age: m.int_gauge_vec(
                "queue_oldest_age_seconds",
                "Age of the oldest item in each queue",
                &["queue"],
            ),
        }
    }
}
