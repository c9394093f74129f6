//! Prometheus metrics: actix-web-prom's HTTP metrics (labelled by route pattern) and
//! one registry per service for its own metrics, all served on `GET /metrics`.

use std::collections::HashMap;

use actix_web_prom::{ActixMetricsConfiguration, PrometheusMetrics, PrometheusMetricsBuilder};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// Builds the HTTP metrics middleware for `service`: `pixpress_http_requests_total`
/// and `pixpress_http_request_duration_seconds` with a constant `service` label
/// (unmatched paths are masked so random URLs cannot explode the label set), plus, in
/// the same registry, `pixpress_build_info{service,version}` (always 1) and the
/// standard `process_*` metrics (CPU, memory, file descriptors, start time).
pub fn http_metrics(service: &str) -> PrometheusMetrics {
    let labels = HashMap::from([("service".to_owned(), service.to_owned())]);
    let names = ActixMetricsConfiguration::default()
        .http_requests_duration_seconds_name("http_request_duration_seconds");
    let metrics = PrometheusMetricsBuilder::new("pixpress")
        .endpoint("/metrics")
        .const_labels(labels)
        .metrics_configuration(names)
        .mask_unmatched_patterns("UNKNOWN")
        .build()
        // Only fails when the builder's own metric definitions are invalid.
        .expect("actix-web-prom metric definitions are valid");
    let build_info = IntGaugeVec::new(
        Opts::new("pixpress_build_info", "The running build: always 1"),
        &["service", "version"],
    )
    .expect("valid metric");
    build_info
        .with_label_values(&[service, env!("CARGO_PKG_VERSION")])
        .set(1);
    let registered = metrics
        .registry
        .register(Box::new(build_info))
        .and_then(|()| {
            metrics.registry.register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
        });
    // Only fails on a name registered twice: every test run would see it.
    registered.expect("build and process metrics register once");
    metrics
}

/// Registers service metrics in a registry, panicking on a programming error (two
/// metrics with one name), which every test run would catch at start-up.
pub struct MetricsRegistrar<'a> {
    registry: &'a Registry,
    prefix: String,
}

impl<'a> MetricsRegistrar<'a> {
    /// Metrics registered through this get names `pixpress_<service>_<name>`.
    pub fn new(registry: &'a Registry, service: &str) -> Self {
        Self {
            registry,
            prefix: format!("pixpress_{service}_"),
        }
    }

    fn register<M: prometheus::core::Collector + Clone + 'static>(&self, metric: M) -> M {
        self.registry
            .register(Box::new(metric.clone()))
            .expect("metric names are unique per service");
        metric
    }

    /// A gauge whose value `read` computes at scrape time: exact, and free on the
    /// hot path.
    pub fn gauge_fn(&self, name: &str, help: &str, read: impl Fn() -> i64 + Send + Sync + 'static) {
        let gauge = IntGauge::new(format!("{}{name}", self.prefix), help).expect("valid metric");
        self.registry
            .register(Box::new(FnGauge {
                gauge,
                read: Box::new(read),
            }))
            .expect("metric names are unique per service");
    }

    pub fn int_gauge(&self, name: &str, help: &str) -> IntGauge {
        self.register(IntGauge::new(format!("{}{name}", self.prefix), help).expect("valid metric"))
    }

    pub fn int_counter(&self, name: &str, help: &str) -> IntCounter {
        self.register(
            IntCounter::new(format!("{}{name}", self.prefix), help).expect("valid metric"),
        )
    }

    pub fn int_gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        let opts = Opts::new(format!("{}{name}", self.prefix), help);
        self.register(IntGaugeVec::new(opts, labels).expect("valid metric"))
    }

    pub fn int_counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        let opts = Opts::new(format!("{}{name}", self.prefix), help);
        self.register(IntCounterVec::new(opts, labels).expect("valid metric"))
    }

    pub fn histogram(&self, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
        let opts = HistogramOpts::new(format!("{}{name}", self.prefix), help).buckets(buckets);
        self.register(Histogram::with_opts(opts).expect("valid metric"))
    }

    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: Vec<f64>,
    ) -> HistogramVec {
        let opts = HistogramOpts::new(format!("{}{name}", self.prefix), help).buckets(buckets);
        self.register(HistogramVec::new(opts, labels).expect("valid metric"))
    }
}

/// Buckets for calls to other services and databases: 1 ms to 10 s.
pub fn latency_buckets() -> Vec<f64> {
    vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
}

struct FnGauge {
    gauge: IntGauge,
    read: Box<dyn Fn() -> i64 + Send + Sync>,
}

impl prometheus::core::Collector for FnGauge {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.gauge.set((self.read)());
        self.gauge.collect()
    }
}
