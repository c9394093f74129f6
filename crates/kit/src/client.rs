//! The one outbound HTTP client per service: pooled, with timeouts, forwarding the
//! current request id.

use std::time::Duration;

use crate::request_id;

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

/// Adds `X-Request-Id` of the current request (if any) to an outgoing request.
pub trait ForwardRequestId {
    fn forward_request_id(self) -> Self;
}

impl ForwardRequestId for reqwest::RequestBuilder {
    fn forward_request_id(self) -> Self {
        match request_id::current() {
            Some(id) => self.header(request_id::HEADER.as_str(), id),
            None => self,
        }
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
