//! The one outbound HTTP client per service: pooled, with timeouts, forwarding the
//! current request context (request id and trace context).

use std::time::Duration;

use crate::request_id::{self, RequestContext};
use crate::trace;

/// A pooled client whose every request gives up after `timeout` (connecting after
/// at most a second or `timeout`, whichever is shorter).
pub fn http_client(service: &str, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(format!("pixpress-{service}/{}", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(1)))
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .build()
        // Fails only if the TLS backend cannot initialize, which is a broken build.
        .expect("the HTTP client can be built")
}

/// Adds the current request context (if any) to an outgoing request:
/// `X-Request-Id`, and `traceparent` (naming the current span as the parent) with
/// the `tracestate` that came with it.
pub trait ForwardRequestId {
    fn forward_request_id(self) -> Self;
}

impl ForwardRequestId for reqwest::RequestBuilder {
    fn forward_request_id(self) -> Self {
        let RequestContext { request_id, trace } = RequestContext::current();
        let mut request = self;
        if let Some(id) = request_id {
            request = request.header(request_id::HEADER.as_str(), id);
        }
        if let Some(context) = trace {
            request = request.header(trace::TRACEPARENT, context.traceparent());
            if let Some(state) = context.tracestate {
                request = request.header(trace::TRACESTATE, state);
            }
        }
        request
    }
}

/// Whether an answer of `status` is worth trying again later: server errors, 408
/// (request timeout) and 429 (too many requests). Any other client error will be
/// answered the same way next time.
pub fn is_transient(status: reqwest::StatusCode) -> bool {
    status.is_server_error()
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
}

/// "error: cause: root cause": an error with its chain of causes on one line
/// (reqwest's own message says only "error sending request").
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}
