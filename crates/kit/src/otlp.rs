//! OpenTelemetry export of the spans a service records: one `SERVER` span per
//! request it serves ([`ServerSpan`], started by the request-context middleware),
//! sent to an OTLP/HTTP collector when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
//!
//! The encoding is OTLP's JSON mapping (`POST {endpoint}/v1/traces`,
//! `application/json`, hex ids, unix nanoseconds as strings), which every OTLP/HTTP
//! receiver accepts; it needs no protobuf code generation nor the opentelemetry
//! crates (see `crate::trace` for why they are not used).
//!
//! A request never waits for the collector: spans go into a bounded queue
//! ([`QUEUE_CAPACITY`]) that one background task empties in batches, every
//! [`SCHEDULE_DELAY`] or sooner when a batch is full. When the queue is full (a slow
//! or absent collector) a span is dropped and counted in
//! `pixpress_otlp_spans_dropped_total{reason="queue_full"}`; a batch the collector
//! does not take is dropped too (`reason="export_failed"`), not retried. At
//! shutdown, what is queued is sent before the service returns.
//!
//! Each service has its own exporter (the stack runs five services in one process,
//! each with its own `service.name`), hung on its [`crate::server::Service`]. The
//! exporter posts with a client of its own, not the service's: its calls are not
//! the service's work and must not be traced themselves.
//!
//! Not done here: `CLIENT` spans for outgoing calls (the callee's `SERVER` span
//! names the caller's span as its parent, which links the hops), metrics and logs
//! over OTLP, `OTEL_EXPORTER_OTLP_HEADERS`, and protocols other than http/json.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::trace::TraceContext;

/// Spans waiting for the collector; past this, new ones are dropped.
pub const QUEUE_CAPACITY: usize = 2048;
/// The most spans in one export request.
pub const MAX_BATCH: usize = 512;
/// How long a span waits at most before its batch is sent.
pub const SCHEDULE_DELAY: Duration = Duration::from_secs(1);
/// How long one export request may take (the OTLP default).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and as whom spans are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpSettings {
    /// The full URL spans are posted to, e.g. `http://collector:4318/v1/traces`.
    pub traces_url: String,
    /// `service.name` of the spans; `None`: the service's own name.
    pub service_name: Option<String>,
}

impl OtlpSettings {
    /// Per the OTel specification: `traces_endpoint` as it is, or else `endpoint`
    /// with `/v1/traces` appended; empty values count as unset. `None`: no export.
    pub fn from_endpoints(
        endpoint: Option<&str>,
        traces_endpoint: Option<&str>,
        service_name: Option<&str>,
    ) -> Option<Self> {
        fn set(v: Option<&str>) -> Option<&str> {
            v.map(str::trim).filter(|v| !v.is_empty())
        }
        let traces_url = match (set(traces_endpoint), set(endpoint)) {
            (Some(url), _) => url.to_owned(),
            (None, Some(base)) => format!("{}/v1/traces", base.trim_end_matches('/')),
            (None, None) => return None,
        };
        Some(Self {
            traces_url,
            service_name: set(service_name).map(str::to_owned),
        })
    }
}

/// `url` without the `user:password@` it may carry (never logged).
fn without_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

/// The kind of a span, as OTLP numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Server = 2,
    Client = 3,
}

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    String(String),
    Int(i64),
}

/// A finished span, as exported.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    /// Its trace, its own span id and the trace state.
    pub context: TraceContext,
    pub parent_span_id: Option<[u8; 8]>,
    pub name: String,
    pub kind: SpanKind,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(&'static str, AttributeValue)>,
    /// Whether the span's status is `ERROR` (a 5xx for a server span).
    pub error: bool,
}

impl SpanRecord {
    /// The span in OTLP's JSON mapping.
    fn to_json(&self) -> Value {
        let mut span = json!({
            "traceId": self.context.trace_id_hex(),
            "spanId": self.context.span_id_hex(),
            "name": self.name,
            "kind": self.kind as i32,
            "startTimeUnixNano": unix_nanos(self.start),
            "endTimeUnixNano": unix_nanos(self.end),
            "attributes": self.attributes.iter().map(|(key, value)| attribute(key, value)).collect::<Vec<_>>(),
            "status": if self.error { json!({"code": 2}) } else { json!({}) },
        });
        if let Some(parent) = self.parent_span_id {
            span["parentSpanId"] = json!(hex::encode(parent));
        }
        if let Some(state) = &self.context.tracestate {
            span["traceState"] = json!(state);
        }
        span
    }
}

fn attribute(key: &str, value: &AttributeValue) -> Value {
    let value = match value {
        AttributeValue::String(s) => json!({ "stringValue": s }),
        // int64 is a decimal string in OTLP JSON.
        AttributeValue::Int(i) => json!({ "intValue": i.to_string() }),
    };
    json!({ "key": key, "value": value })
}

fn unix_nanos(time: SystemTime) -> String {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .to_string()
}

/// The body of one export request: `spans` of service `service`.
pub fn export_request(service: &str, spans: &[SpanRecord]) -> Value {
    json!({
        "resourceSpans": [{
            "resource": {
                "attributes": [
                    attribute("service.name", &AttributeValue::String(service.to_owned())),
                    attribute("service.version", &AttributeValue::String(env!("CARGO_PKG_VERSION").to_owned())),
                ],
            },
            "scopeSpans": [{
                "scope": { "name": "pixpress-kit", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans.iter().map(SpanRecord::to_json).collect::<Vec<_>>(),
            }],
        }],
    })
}

/// Where a service records finished spans; cheap to clone, never waits.
#[derive(Clone)]
pub struct SpanSink {
    queue: mpsc::Sender<SpanRecord>,
    dropped_full: IntCounter,
}

impl SpanSink {
    /// Queues `span` for export, or drops (and counts) it when the queue is full.
    pub fn record(&self, span: SpanRecord) {
        if self.queue.try_send(span).is_err() {
            self.dropped_full.inc();
        }
    }
}

/// A service's exporter: the queue and the task that empties it.
pub struct Exporter {
    sink: SpanSink,
    traces_url: String,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Exporter {
    /// Starts exporting as `settings.service_name`, or else `service`; its counters
    /// go in `registry`. Must be called on a Tokio runtime.
    pub fn start(settings: OtlpSettings, service: &str, registry: &Registry) -> Self {
        let service = settings.service_name.unwrap_or_else(|| service.to_owned());
        let counters = Counters::register(registry);
        let (queue, spans) = mpsc::channel(QUEUE_CAPACITY);
        let stop = CancellationToken::new();
        let export = Export {
            http: crate::client::http_client("otlp-exporter", EXPORT_TIMEOUT),
            url: settings.traces_url.clone(),
            shown_url: without_userinfo(&settings.traces_url),
            service,
            counters: counters.clone(),
            failing: false,
        };
        let task = tokio::spawn(export.run(spans, stop.clone()));
        Self {
            sink: SpanSink {
                queue,
                dropped_full: counters.dropped.with_label_values(&["queue_full"]),
            },
            traces_url: without_userinfo(&settings.traces_url),
            stop,
            task,
        }
    }

    pub fn sink(&self) -> SpanSink {
        self.sink.clone()
    }

    /// Where spans go (without any credentials the URL carries), for the log.
    pub fn traces_url(&self) -> &str {
        &self.traces_url
    }

    /// Sends what is queued and stops, waiting at most `limit`.
    pub async fn shutdown(self, limit: Duration) {
        self.stop.cancel();
        if tokio::time::timeout(limit, self.task).await.is_err() {
            log::warn!(
                "spans still queued for {} after {limit:?}: dropped",
                self.traces_url
            );
        }
    }
}

#[derive(Clone)]
struct Counters {
    exported: IntCounter,
    dropped: IntCounterVec,
}

impl Counters {
    fn register(registry: &Registry) -> Self {
        let exported = IntCounter::new(
            "pixpress_otlp_spans_exported_total",
            "Spans the OTLP collector took",
        )
        .expect("valid metric");
        let dropped = IntCounterVec::new(
            Opts::new(
                "pixpress_otlp_spans_dropped_total",
                "Spans not exported: the queue was full (queue_full) or the collector did \
                 not take their batch (export_failed)",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for reason in ["queue_full", "export_failed"] {
            dropped.with_label_values(&[reason]);
        }
        let registered = registry
            .register(Box::new(exported.clone()))
            .and_then(|()| registry.register(Box::new(dropped.clone())));
        if let Err(e) = registered {
            // A second exporter on one registry: its spans are still exported.
            log::warn!("the OTLP exporter's metrics are not served: {e}");
        }
        Self { exported, dropped }
    }
}

/// The task that sends batches.
struct Export {
    http: reqwest::Client,
    url: String,
    /// `url` as logged.
    shown_url: String,
    service: String,
    counters: Counters,
    /// Whether the last export failed (failures are logged once, then recovery).
    failing: bool,
}

impl Export {
    async fn run(mut self, mut spans: mpsc::Receiver<SpanRecord>, stop: CancellationToken) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut tick = tokio::time::interval(SCHEDULE_DELAY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let room = MAX_BATCH - batch.len();
            tokio::select! {
                _ = stop.cancelled() => break,
                received = spans.recv_many(&mut batch, room) => {
                    if received == 0 {
                        break;
                    }
                    if batch.len() < MAX_BATCH {
                        continue;
                    }
                }
                _ = tick.tick() => {
                    if batch.is_empty() {
                        continue;
                    }
                }
            }
            self.send(&mut batch).await;
        }
        spans.close();
        while let Some(span) = spans.recv().await {
            batch.push(span);
            if batch.len() == MAX_BATCH {
                self.send(&mut batch).await;
            }
        }
        if !batch.is_empty() {
            self.send(&mut batch).await;
        }
    }

    /// Posts `batch` (emptying it); a batch that is not taken is dropped.
    async fn send(&mut self, batch: &mut Vec<SpanRecord>) {
        let body = export_request(&self.service, batch);
        let count = batch.len() as u64;
        batch.clear();
        let started = Instant::now();
        let answer = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await;
        let failure = match answer {
            Ok(res) if res.status().is_success() => None,
            Ok(res) => Some(format!("it answered {}", res.status())),
            // The URL is in the log line already, without credentials.
            Err(e) => Some(crate::client::error_chain(&e.without_url())),
        };
        match failure {
            None => {
                self.counters.exported.inc_by(count);
                if self.failing {
                    log::info!("OTLP export to {} works again", self.shown_url);
                    self.failing = false;
                }
                log::debug!("exported {count} spans in {:?}", started.elapsed());
            }
            Some(why) => {
                self.counters
                    .dropped
                    .with_label_values(&["export_failed"])
                    .inc_by(count);
                if !self.failing {
                    log::warn!(
                        "OTLP export to {} failed ({why}); dropping spans until it works",
                        self.shown_url
                    );
                    self.failing = true;
                }
            }
        }
    }
}

/// The `SERVER` span of one request being served.
pub struct ServerSpan {
    sink: SpanSink,
    context: TraceContext,
    parent_span_id: Option<[u8; 8]>,
    method: String,
    path: String,
    request_id: String,
    start: SystemTime,
    started: Instant,
}

impl ServerSpan {
    /// Starts the span `context` (child of `parent_span_id`) for `req`.
    pub fn start(
        sink: SpanSink,
        req: &ServiceRequest,
        context: TraceContext,
        parent_span_id: Option<[u8; 8]>,
        request_id: &str,
    ) -> Self {
        Self {
            sink,
            context,
            parent_span_id,
            method: req.method().as_str().to_owned(),
            path: req.path().to_owned(),
            request_id: request_id.to_owned(),
            start: SystemTime::now(),
            started: Instant::now(),
        }
    }

    /// Ends the span with the request's outcome and queues it.
    pub fn finish<B: MessageBody>(self, result: &Result<ServiceResponse<B>, actix_web::Error>) {
        let (status, route) = match result {
            Ok(res) => (res.status().as_u16(), res.request().match_pattern()),
            Err(e) => (e.as_response_error().status_code().as_u16(), None),
        };
        let name = match &route {
            Some(route) => format!("{} {route}", self.method),
            None => self.method.clone(),
        };
        let mut attributes = vec![
            ("http.request.method", AttributeValue::String(self.method)),
            ("url.path", AttributeValue::String(self.path)),
            ("url.scheme", AttributeValue::String("http".to_owned())),
            (
                "http.response.status_code",
                AttributeValue::Int(i64::from(status)),
            ),
            (
                "pixpress.request_id",
                AttributeValue::String(self.request_id),
            ),
        ];
        if let Some(route) = route {
            attributes.push(("http.route", AttributeValue::String(route)));
        }
        self.sink.record(SpanRecord {
            context: self.context,
            parent_span_id: self.parent_span_id,
            name,
            kind: SpanKind::Server,
            start: self.start,
            end: self.start + self.started.elapsed(),
            attributes,
            error: status >= 500,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_endpoint_wins_and_the_base_endpoint_gets_v1_traces() {
        let from = OtlpSettings::from_endpoints;
        let url = |s: Option<OtlpSettings>| s.map(|s| s.traces_url);
        assert_eq!(url(from(None, None, None)), None);
        assert_eq!(url(from(Some(""), Some(" "), None)), None, "empty is unset");
        assert_eq!(
            url(from(Some("http://c:4318"), None, None)).as_deref(),
            Some("http://c:4318/v1/traces")
        );
        assert_eq!(
            url(from(Some("http://c:4318/"), None, None)).as_deref(),
            Some("http://c:4318/v1/traces")
        );
        assert_eq!(
            url(from(Some("http://c:4318"), Some("http://t:1/x"), None)).as_deref(),
            Some("http://t:1/x"),
            "the signal-specific endpoint is used as it is"
        );
        let named = from(Some("http://c:4318"), None, Some("printers-eu")).unwrap();
        assert_eq!(named.service_name.as_deref(), Some("printers-eu"));
    }

    #[test]
    fn credentials_in_the_endpoint_are_not_shown() {
        assert_eq!(
            without_userinfo("https://user:secret@collector:4318/v1/traces"),
            "https://collector:4318/v1/traces"
        );
        assert_eq!(
            without_userinfo("http://collector:4318/v1/traces?a=b@c"),
            "http://collector:4318/v1/traces?a=b@c"
        );
    }

    #[test]
    fn a_span_is_encoded_in_the_otlp_json_mapping() {
        let context = TraceContext::parse(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Some("k=v"),
        )
        .unwrap();
        let start = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let span = SpanRecord {
            context,
            parent_span_id: Some([1, 2, 3, 4, 5, 6, 7, 8]),
            name: "GET /jobs/{id}".into(),
            kind: SpanKind::Server,
            start,
            end: start + Duration::from_millis(2),
            attributes: vec![("http.response.status_code", AttributeValue::Int(503))],
            error: true,
        };
        let body = export_request("printer-sim", &[span]);
        let resource = &body["resourceSpans"][0];
        assert_eq!(
            resource["resource"]["attributes"][0],
            json!({"key": "service.name", "value": {"stringValue": "printer-sim"}})
        );
        let span = &resource["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span["spanId"], "00f067aa0ba902b7");
        assert_eq!(span["parentSpanId"], "0102030405060708");
        assert_eq!(span["traceState"], "k=v");
        assert_eq!(span["kind"], 2);
        assert_eq!(span["startTimeUnixNano"], "1700000000123456789");
        assert_eq!(span["endTimeUnixNano"], "1700000000125456789");
        assert_eq!(
            span["attributes"][0],
            json!({"key": "http.response.status_code", "value": {"intValue": "503"}})
        );
        assert_eq!(span["status"]["code"], 2);
    }
}
