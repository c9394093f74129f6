//! Trace context and span export over real HTTP: a kit service on port 0 that calls
//! a fixture downstream, with an OTLP receiver (another fixture) as its collector.
//! The request's span is the caller's child and the parent of the downstream call;
//! spans reach the collector, also when queued at shutdown; a slow collector costs
//! dropped (and counted) spans, never a waiting request.

use std::net::TcpListener;
use std::time::{Duration, Instant, SystemTime};

use actix_web::{web, HttpResponse};
use pixpress_kit::client::ForwardRequestId;
use pixpress_kit::health::Readiness;
use pixpress_kit::metrics::http_metrics;
use pixpress_kit::otlp::{Exporter, OtlpSettings, SpanKind, SpanRecord, MAX_BATCH, QUEUE_CAPACITY};
use pixpress_kit::problem::resource;
use pixpress_kit::server::{Background, HttpSettings, Service};
use pixpress_kit::trace::TraceContext;
use pixpress_testkit::fixture::{Fixture, Reply};
use pixpress_testkit::http::{client, eventually};
use serde_json::{json, Value};

const PATIENCE: Duration = Duration::from_secs(30);
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn collector() -> Fixture {
    Fixture::start(|_| Reply::json(200, json!({})))
}

fn settings(collector: &Fixture) -> OtlpSettings {
    OtlpSettings {
        traces_url: format!("{}/v1/traces", collector.url),
        service_name: None,
    }
}

/// Every span `collector` received, with the `service.name` it came under.
fn spans(collector: &Fixture) -> Vec<(String, Value)> {
    let mut spans = Vec::new();
    for request in collector.requests() {
        let body: Value = serde_json::from_slice(&request.body).expect("OTLP JSON");
        for resource in body["resourceSpans"].as_array().unwrap() {
            let service = resource["resource"]["attributes"][0]["value"]["stringValue"]
                .as_str()
                .unwrap()
                .to_owned();
            for span in resource["scopeSpans"][0]["spans"].as_array().unwrap() {
                spans.push((service.clone(), span.clone()));
            }
        }
    }
    spans
}

/// A kit service "hop" whose `GET /hop` calls `downstream` with the request context.
fn start_hop(downstream: &Fixture, collector: &Fixture) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let settings = HttpSettings {
        metrics: http_metrics("hop"),
        readiness: Readiness::new(),
        openapi: utoipa::openapi::OpenApi::default(),
        shutdown_grace: Duration::from_secs(1),
        json_limit: 1024,
        workers: 1,
        otlp: Some(settings(collector)),
    };
    let downstream = web::Data::new(format!("{}/next", downstream.url));
    let service = Service::start("hop", listener, settings, Background::new(), move |cfg| {
        cfg.app_data(downstream.clone())
            .service(resource("/hop").route(web::get().to(hop)));
    })
    .unwrap();
    service.spawn().0
}

async fn hop(downstream: web::Data<String>) -> HttpResponse {
    let called = client()
        .get(downstream.as_str())
        .forward_request_id()
        .send()
        .await;
    match called {
        Ok(_) => HttpResponse::Ok().finish(),
        Err(_) => HttpResponse::BadGateway().finish(),
    }
}

#[tokio::test]
async fn a_served_request_is_the_callers_child_and_the_parent_of_its_calls() {
    let (downstream, collector) = (Fixture::start(|_| Reply::json(200, json!({}))), collector());
    let url = start_hop(&downstream, &collector);
    let res = client()
        .get(format!("{url}/hop"))
        .header("traceparent", PARENT)
        .header("tracestate", "vendor=opaque")
        .header("x-request-id", "hop-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let call = &downstream.requests()[0];
    assert_eq!(call.header("x-request-id"), Some("hop-1"));
    assert_eq!(call.header("tracestate"), Some("vendor=opaque"));
    let forwarded = TraceContext::parse(call.header("traceparent").unwrap(), None).unwrap();
    let parent = TraceContext::parse(PARENT, None).unwrap();
    assert_eq!(forwarded.trace_id, parent.trace_id, "the same trace");
    assert_ne!(forwarded.span_id, parent.span_id, "the hop's own span");

    let (service, span) = eventually("the hop's span", PATIENCE, || async {
        spans(&collector).into_iter().next()
    })
    .await;
    assert_eq!(service, "hop");
    assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        span["spanId"],
        forwarded.span_id_hex(),
        "the span downstream names"
    );
    assert_eq!(
        span["parentSpanId"], "00f067aa0ba902b7",
        "the caller's span"
    );
    assert_eq!(span["name"], "GET /hop");
    assert_eq!(span["kind"], 2);
    assert_eq!(span["traceState"], "vendor=opaque");
}

#[tokio::test]
async fn an_unsampled_trace_is_propagated_but_not_exported() {
    let (downstream, collector) = (Fixture::start(|_| Reply::json(200, json!({}))), collector());
    let url = start_hop(&downstream, &collector);
    let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    for traceparent in [unsampled, PARENT] {
        let res = client()
            .get(format!("{url}/hop"))
            .header("traceparent", traceparent)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let forwarded = downstream.requests()[0]
        .header("traceparent")
        .unwrap()
        .to_owned();
    assert!(
        forwarded.ends_with("-00"),
        "the flag travels on: {forwarded}"
    );
    // The sampled request's span arrives; the unsampled one's never does.
    eventually("the sampled span", PATIENCE, || async {
        (!spans(&collector).is_empty()).then_some(())
    })
    .await;
    let exported = spans(&collector);
    assert_eq!(exported.len(), 1, "{exported:?}");
    assert!(exported[0].1["spanId"] != forwarded[36..52]);
}

fn span(name: &str) -> SpanRecord {
    let now = SystemTime::now();
    SpanRecord {
        context: TraceContext::new_root(),
        parent_span_id: None,
        name: name.to_owned(),
        kind: SpanKind::Server,
        start: now,
        end: now,
        attributes: Vec::new(),
        error: false,
    }
}

#[tokio::test]
async fn spans_queued_at_shutdown_reach_the_collector_before_it_returns() {
    let collector = collector();
    let exporter = Exporter::start(settings(&collector), "svc", &prometheus::Registry::new());
    for name in ["a", "b", "c"] {
        exporter.sink().record(span(name));
    }
    exporter.shutdown(PATIENCE).await;
    let names: Vec<Value> = spans(&collector)
        .into_iter()
        .map(|(_, s)| s["name"].clone())
        .collect();
    assert_eq!(names, [json!("a"), json!("b"), json!("c")]);
}

#[tokio::test]
async fn a_slow_collector_costs_dropped_spans_never_a_wait() {
    let slow = Fixture::start(|_| Reply::json(200, json!({})).delayed(Duration::from_secs(5)));
    let registry = prometheus::Registry::new();
    let exporter = Exporter::start(settings(&slow), "svc", &registry);
    let sink = exporter.sink();
    // The first batch goes out and hangs; the queue fills behind it.
    let sent = 2 * QUEUE_CAPACITY + MAX_BATCH;
    let started = Instant::now();
    for i in 0..sent {
        sink.record(span(&i.to_string()));
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "recording waited: {:?}",
        started.elapsed()
    );
    let dropped = registry
        .gather()
        .into_iter()
        .find(|family| family.name() == "pixpress_otlp_spans_dropped_total")
        .expect("the drop counter is registered")
        .get_metric()
        .iter()
        .find(|m| m.get_label().iter().any(|l| l.value() == "queue_full"))
        .map(|m| m.get_counter().get_value())
        .unwrap_or_default();
    let kept = (QUEUE_CAPACITY + MAX_BATCH) as f64;
    assert!(
        dropped >= sent as f64 - kept,
        "{dropped} dropped of {sent} with room for at most {kept}"
    );
    exporter.shutdown(Duration::from_millis(100)).await;
}
