//! The request context: the `X-Request-Id` (accepted from the client when sane, or
//! generated) and the W3C trace context (`crate::trace`: a new span per served
//! request, child of the caller's `traceparent`, or a new trace without one), kept
//! for the duration of the request so every log line and every outgoing call
//! carries both. The id is echoed on the response. The same layer writes the
//! request's access line (`crate::access_log`) and, when the service exports
//! traces, its `SERVER` span (`crate::otlp`).
//!
//! Work done later on behalf of a request (a spawned task, a queued job) runs under
//! a context kept for it: [`RequestContext::current`] then
//! [`RequestContext::scope`], or [`scope`] for a request id of its own in the
//! current trace.

use std::future::Future;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;

use crate::access_log::AccessLine;
use crate::otlp::{ServerSpan, SpanSink};
use crate::trace::{self, TraceContext};

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Who the current work is for: a request id and where it stands in a trace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    pub request_id: Option<String>,
    pub trace: Option<TraceContext>,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

impl RequestContext {
    /// The context of the current task (empty outside any).
    pub fn current() -> Self {
        CONTEXT.try_with(Clone::clone).unwrap_or_default()
    }

    /// Background work on one stored item: its own request id, in the trace of the
    /// request that created the item (its stored `traceparent`, when it has a valid
    /// one).
    pub fn for_item(request_id: String, traceparent: Option<&str>) -> Self {
        Self {
            request_id: Some(request_id),
            trace: traceparent.and_then(|t| TraceContext::parse(t, None)),
        }
    }

    /// Runs `fut` under this context (a spawned task does not inherit it: wrap the
    /// future before spawning it).
    pub fn scope<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        CONTEXT.scope(self, fut)
    }
}

/// The id of the request being served by the current task, if any.
pub fn current() -> Option<String> {
    CONTEXT.try_with(|c| c.request_id.clone()).ok().flatten()
}

/// The trace context of the current task, if any: the span outgoing calls name as
/// their parent.
pub fn current_trace() -> Option<TraceContext> {
    CONTEXT.try_with(|c| c.trace.clone()).ok().flatten()
}

/// The current `traceparent` (for storing with work done later on its behalf).
pub fn current_traceparent() -> Option<String> {
    current_trace().map(|t| t.traceparent())
}

/// Runs `fut` with `id` as the current request id, in the current trace (taken
/// now, so `tokio::spawn(scope(id, fut))` keeps it): background work done on
/// behalf of a request or a job, whose logs and outgoing calls carry both.
pub fn scope<F: Future>(id: String, fut: F) -> impl Future<Output = F::Output> {
    RequestContext {
        request_id: Some(id),
        trace: current_trace(),
    }
    .scope(fut)
}

/// The caller's span, from `traceparent` and `tracestate`; `None` when absent or
/// invalid (the request then starts a new trace).
fn incoming_trace(headers: &HeaderMap) -> Option<TraceContext> {
    let parent = headers.get(trace::TRACEPARENT)?.to_str().ok()?;
    let state = headers.get(trace::TRACESTATE).and_then(|v| v.to_str().ok());
    TraceContext::parse(parent, state)
}

/// Keeps a client-supplied id only if it is short and made of safe characters, so it
/// cannot forge log lines or blow up label sets.
fn sanitize(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| s.to_owned())
}

pub fn generate() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Middleware (use with `actix_web::middleware::from_fn`): the request context,
/// the access line, and the request's span when a [`SpanSink`] is in the app data.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // A sane client id is echoed as it came (a cheap clone of the header).
    let sane = req
        .headers()
        .get(&HEADER)
        .and_then(|value| Some((sanitize(value)?, value.clone())));
    let (id, echo) = match sane {
        Some((id, value)) => (id, Some(value)),
        None => {
            let id = generate();
            let value = HeaderValue::from_str(&id).ok();
            (id, value)
        }
    };
    let (trace, parent) = match incoming_trace(req.headers()) {
        Some(parent) => (parent.child(), Some(parent.span_id)),
        None => (TraceContext::new_root(), None),
    };
    let span = req
        .app_data::<SpanSink>()
        .filter(|_| trace.sampled)
        .map(|sink| ServerSpan::start(sink.clone(), &req, trace.clone(), parent, &id));
    let line = AccessLine::start(&req);
    let context = RequestContext {
        request_id: Some(id),
        trace: Some(trace),
    };
    let served = context.scope(async move {
        let result = next.call(req).await;
        if let Some(line) = line {
            line.finish(&result);
        }
        if let Some(span) = span {
            span.finish(&result);
        }
        result
    });
    let mut res = served.await?;
    if let Some(value) = echo {
        res.headers_mut().insert(HEADER, value);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_ids_that_could_forge_log_lines() {
        assert_eq!(
            sanitize(&HeaderValue::from_static("abc-123")),
            Some("abc-123".into())
        );
        assert_eq!(sanitize(&HeaderValue::from_static("a b")), None);
        assert_eq!(sanitize(&HeaderValue::from_static("")), None);
        let long = "a".repeat(129);
        assert_eq!(sanitize(&HeaderValue::from_str(&long).unwrap()), None);
    }

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[tokio::test]
    async fn spawned_work_under_scope_keeps_the_requests_trace_with_its_own_id() {
        let request = RequestContext {
            request_id: Some("req-1".into()),
            trace: TraceContext::parse(TRACEPARENT, Some("k=v")),
        };
        let seen = request
            .clone()
            .scope(async {
                // As management-api spawns a download request on behalf of a request.
                tokio::spawn(scope("image-7".into(), async { RequestContext::current() }))
                    .await
                    .unwrap()
            })
            .await;
        assert_eq!(seen.request_id.as_deref(), Some("image-7"));
        assert_eq!(seen.trace, request.trace);
        // Outside any scope there is no context, and a bare spawn does not inherit one.
        assert_eq!(RequestContext::current(), RequestContext::default());
        let bare = request
            .scope(async { tokio::spawn(async { current_trace() }).await.unwrap() })
            .await;
        assert_eq!(bare, None);
    }

    #[test]
    fn an_items_stored_traceparent_is_its_trace_when_valid() {
        let item = RequestContext::for_item("job-1".into(), Some(TRACEPARENT));
        assert_eq!(
            item.trace.map(|t| t.traceparent()).as_deref(),
            Some(TRACEPARENT)
        );
        for stored in [None, Some("garbage")] {
            let item = RequestContext::for_item("job-1".into(), stored);
            assert_eq!(item.trace, None, "{stored:?}");
            assert_eq!(item.request_id.as_deref(), Some("job-1"));
        }
    }
}
