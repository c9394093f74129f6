//! Getting a job's image from its `image_url`, as a printer does before it prints
//! (printer-sim, ipp-gateway): a `GET` following the client's redirects
//! (download-service's `/images/{id}/original` answers 302 to a presigned S3 link),
//! each attempt under a deadline and never reading past a byte cap, transient
//! failures (no connection, a body cut off, a timeout, 5xx, 408, 429) tried again
//! with backoff. Every failure ends the job with the stable reason
//! [`IMAGE_UNREACHABLE`]; the cause is for the log.
//!
//! What the bytes must be (an image `image` can read, JPEG or PNG by magic bytes)
//! and what is counted is each service's business; this module only brings the
//! bytes and their digest. The URL is trusted (it comes from print-service), so no
//! address is refused here, unlike download-service's user-supplied ones, and the
//! request context is forwarded (download-service logs the fetch in the job's trace).

use std::time::Duration;

use pixpress_domain::printer::IMAGE_UNREACHABLE;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use crate::client::{is_transient, ForwardRequestId};
use crate::retry::Backoff;

/// How much, how long and how often one image is fetched.
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    /// The largest body read; a larger one is refused without being read through.
    pub max_bytes: u64,
    /// How long one attempt may take (connecting, redirects, body).
    pub timeout: Duration,
    /// Attempts in all, the first included, while failures are transient.
    pub attempts: u32,
    /// Between attempts (jittered).
    pub backoff: Backoff,
}

/// Why an image did not arrive. Not an API error: each fails the job with
/// [`FetchError::reason`], `image_unreachable`.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Transient for 5xx, 408 and 429: the image host (after redirects) answered
    /// something other than 2xx.
    #[error("the image host answered {0}")]
    Status(StatusCode),
    /// The body is larger than [`FetchLimits::max_bytes`].
    #[error("the image is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// Transient: no whole answer within [`FetchLimits::timeout`].
    #[error("the image did not arrive within {0:?}")]
    TimedOut(Duration),
    /// A redirect that cannot be followed (too many, or to no usable URL) or a URL
    /// that cannot be requested.
    #[error("the image URL cannot be followed: {}", crate::client::error_chain(.0))]
    Unfollowable(#[source] reqwest::Error),
    /// Transient: the connection failed or broke mid-way.
    #[error("the image host cannot be reached: {}", crate::client::error_chain(.0))]
    Transport(#[source] reqwest::Error),
}

impl FetchError {
    /// The stable reason a job whose image did not arrive fails with.
    pub fn reason(&self) -> &'static str {
        IMAGE_UNREACHABLE
    }

    /// Whether the same request may succeed a moment later.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Status(status) => is_transient(*status),
            FetchError::TimedOut(_) | FetchError::Transport(_) => true,
            FetchError::TooLarge { .. } | FetchError::Unfollowable(_) => false,
        }
    }

    fn from_reqwest(error: reqwest::Error, timeout: Duration) -> Self {
        if error.is_timeout() {
            FetchError::TimedOut(timeout)
        } else if error.is_redirect() || error.is_builder() {
            FetchError::Unfollowable(error)
        } else {
            FetchError::Transport(error)
        }
    }
}

/// Fetches `url` with `http` within `limits`, trying transient failures again; the
/// error is the last attempt's.
pub async fn fetch_bounded(
    http: &reqwest::Client,
    url: &str,
    limits: &FetchLimits,
) -> Result<Vec<u8>, FetchError> {
    let mut failures = 0;
    loop {
        match attempt(http, url, limits).await {
            Ok(bytes) => return Ok(bytes),
            Err(e) if e.is_transient() && failures + 1 < limits.attempts => {
                failures += 1;
                let delay = limits.backoff.jittered(failures);
                log::info!("fetching {url}: {e}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One attempt: the whole body, or why not.
async fn attempt(
    http: &reqwest::Client,
    url: &str,
    limits: &FetchLimits,
) -> Result<Vec<u8>, FetchError> {
    let reqwest_error = |e| FetchError::from_reqwest(e, limits.timeout);
    let mut response = http
        .get(url)
        .timeout(limits.timeout)
        .forward_request_id()
        .send()
        .await
        .map_err(reqwest_error)?;
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError::Status(status));
    }
    let too_large = || FetchError::TooLarge {
        limit: limits.max_bytes,
    };
    let declared = response.content_length();
    if declared.is_some_and(|length| length > limits.max_bytes) {
        return Err(too_large());
    }
    // At most max_bytes, checked above.
    let mut bytes = Vec::with_capacity(declared.and_then(|n| usize::try_from(n).ok()).unwrap_or(0));
    while let Some(chunk) = response.chunk().await.map_err(reqwest_error)? {
        if bytes.len() as u64 + chunk.len() as u64 > limits.max_bytes {
            // Dropping the response closes the connection mid-body.
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Lowercase hex SHA-256 of `bytes`: how a fetched image is named in journals and
/// `GET /jobs`. Tens of milliseconds for a large photo: call it off the runtime.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use pixpress_testkit::fixture::{Fixture, Reply};

    use super::*;

    const LIMITS: FetchLimits = FetchLimits {
        max_bytes: 1024,
        timeout: Duration::from_secs(2),
        attempts: 3,
        backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(20)),
    };

    async fn fetch(url: &str, limits: &FetchLimits) -> Result<Vec<u8>, FetchError> {
        fetch_bounded(&reqwest::Client::new(), url, limits).await
    }

    fn answer(status: u16) -> Reply {
        Reply::json(status, serde_json::json!({}))
    }

    /// A host answering `replies` in turn (the last one from then on).
    fn host(replies: Vec<Reply>) -> Fixture {
        let served = Arc::new(AtomicUsize::new(0));
        Fixture::start(move |_| {
            let n = served.fetch_add(1, Ordering::SeqCst);
            replies[n.min(replies.len() - 1)].clone()
        })
    }

    fn ok(body: &[u8]) -> Reply {
        Reply::bytes(200, "image/jpeg", body.to_vec())
    }

    #[tokio::test]
    async fn an_image_behind_a_redirect_arrives_whole() {
        let image = host(vec![ok(b"the image")]);
        let target = format!("{}/photo.jpg", image.url);
        let link = Fixture::start(move |_| Reply::redirect(302, &target));
        let bytes = fetch(&format!("{}/x", link.url), &LIMITS).await.unwrap();
        assert_eq!(bytes, b"the image");
    }

    #[tokio::test]
    async fn transient_failures_are_tried_again_until_the_image_arrives() {
        let busy = answer(503);
        let image = host(vec![busy.clone(), busy, ok(b"the image")]);
        let bytes = fetch(&image.url, &LIMITS).await.unwrap();
        assert_eq!(bytes, b"the image");
        assert_eq!(image.requests().len(), 3);
    }

    #[tokio::test]
    async fn a_host_that_stays_busy_is_tried_as_often_as_allowed() {
        let image = host(vec![answer(503)]);
        let err = fetch(&image.url, &LIMITS).await.unwrap_err();
        assert!(
            matches!(err, FetchError::Status(StatusCode::SERVICE_UNAVAILABLE)),
            "{err}"
        );
        assert_eq!(image.requests().len(), LIMITS.attempts as usize);
    }

    #[tokio::test]
    async fn a_missing_image_is_asked_for_once() {
        let image = host(vec![answer(404)]);
        let err = fetch(&image.url, &LIMITS).await.unwrap_err();
        assert_eq!(err.reason(), IMAGE_UNREACHABLE);
        assert_eq!(image.requests().len(), 1);
    }

    #[tokio::test]
    async fn a_body_over_the_cap_is_refused_declared_or_not() {
        let big = vec![0u8; 600];
        for reply in [
            Reply::bytes(200, "image/jpeg", vec![0u8; 2048]),
            Reply::chunked("image/jpeg", big, 2, Duration::ZERO),
        ] {
            let image = host(vec![reply]);
            let err = fetch(&image.url, &LIMITS).await.unwrap_err();
            assert!(matches!(err, FetchError::TooLarge { limit: 1024 }), "{err}");
            assert_eq!(image.requests().len(), 1, "not tried again");
        }
    }

    #[tokio::test]
    async fn a_host_that_answers_too_late_times_out_each_attempt() {
        let slow = ok(b"late").delayed(Duration::from_secs(5));
        let image = host(vec![slow]);
        let limits = FetchLimits {
            timeout: Duration::from_millis(200),
            attempts: 2,
            ..LIMITS
        };
        let err = fetch(&image.url, &limits).await.unwrap_err();
        assert!(matches!(err, FetchError::TimedOut(_)), "{err}");
        assert_eq!(image.requests().len(), 2);
    }

    #[test]
    fn the_digest_is_lowercase_hex_sha256() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
