//! `X-Request-Id`: accepted from the client (when sane) or generated, kept for the
//! duration of the request so every log line and every outgoing call carries it,
//! and echoed on the response. The same layer writes the request's access line
//! (`crate::access_log`).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;

use crate::access_log::AccessLine;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served by the current task, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(|id| id.clone()).ok()
}

/// Runs `fut` with `id` as the current request id (for background work done on
/// behalf of a request or a job, so its logs and outgoing calls carry the id).
pub async fn scope<F: std::future::Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
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

/// Middleware (use with `actix_web::middleware::from_fn`): the request id and the
/// access line.
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
    let line = AccessLine::start(&req);
    let served = REQUEST_ID.scope(id, async move {
        let result = next.call(req).await;
        if let Some(line) = line {
            line.finish(&result);
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
}
