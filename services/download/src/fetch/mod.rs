//! Safe fetching of user-supplied URLs. The URL is hostile input: it may point at
//! the metadata service, a database on the private network, or a body that never
//! ends. [`Fetcher`] downloads at most `max_bytes` within one deadline, follows at
//! most [`MAX_REDIRECTS`] http(s) redirects and, unless private networks are
//! allowed, connects only to public unicast addresses.
//!
//! The address check happens where the connection is made, not on the URL text:
//! host names go through the filtering resolver (`resolver`), which hands reqwest
//! only permitted addresses (so a name that resolves differently the second time
//! cannot slip through), and IP-literal hosts, which reqwest never resolves, are
//! checked on the first URL and on every redirect. Proxies are disabled, since
//! through a proxy the resolver would judge the proxy instead of the target. Which
//! addresses are permitted is `address_policy`'s to say.
//!
//! This module only fetches bytes; it does not look at what they are (the
//! `Content-Type` header is passed on for information, never trusted).

mod address_policy;
mod resolver;

use std::error::Error as StdError;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use pixpress_domain::download::FailureReason;
use pixpress_kit::client::is_transient;
use reqwest::redirect::{Attempt, Policy};
use reqwest::Url;

pub use address_policy::is_forbidden;
use address_policy::AddressGuard;
use resolver::GuardedResolver;

/// Redirects followed before giving up with `http_status`.
pub const MAX_REDIRECTS: usize = 5;

/// Longest a connection attempt may take, whatever the whole-download timeout.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a download may do.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// Largest body accepted (`DOWNLOAD_MAX_BYTES`).
    pub max_bytes: u64,
    /// The whole download: connecting, every redirect, headers and body
    /// (`DOWNLOAD_TIMEOUT_MS`).
    pub timeout: Duration,
    /// One connection attempt; a host that does not accept in time is `unreachable`.
    pub connect_timeout: Duration,
    /// Skip the address ban entirely (`DOWNLOAD_ALLOW_PRIVATE_NETWORKS`).
    pub allow_private: bool,
    /// Host names, as written in URLs and lowercase, whose addresses are not
    /// checked, e.g. an internal image host. The exemption holds for the hops to
    /// that host only, not for where it redirects.
    pub exempt_hosts: Vec<String>,
}

impl FetchPolicy {
    /// A policy without exempt hosts, connecting within `min(5 s, timeout)`.
    pub fn new(max_bytes: u64, timeout: Duration, allow_private: bool) -> Self {
        Self {
            max_bytes,
            timeout,
            connect_timeout: timeout.min(MAX_CONNECT_TIMEOUT),
            allow_private,
            exempt_hosts: Vec::new(),
        }
    }
}

/// A downloaded body.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    /// The URL after redirects.
    pub final_url: String,
    /// The `Content-Type` header, for information only: the format is sniffed.
    pub content_type: Option<String>,
}

/// Why a download failed, as a stable code plus whether retrying may help.
#[derive(Debug, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct FetchError {
    pub reason: FailureReason,
    /// The same request may succeed later (timeouts, connection failures, 5xx,
    /// 408, 429); otherwise it is a property of the URL.
    pub transient: bool,
    /// For logs; may name hosts and addresses, so not for the task's client.
    pub detail: String,
}

impl FetchError {
    fn new(reason: FailureReason, transient: bool, detail: impl Into<String>) -> Self {
        Self {
            reason,
            transient,
            detail: detail.into(),
        }
    }
}

/// A refusal by policy, raised inside reqwest (by the resolver or the redirect
/// policy) and found again in the reqwest error's source chain.
#[derive(Debug, thiserror::Error)]
enum PolicyRefusal {
    #[error("{0} is not a public unicast address")]
    ForbiddenIp(IpAddr),
    #[error("{host} resolves only to forbidden addresses ({addresses})")]
    ForbiddenName { host: String, addresses: String },
    #[error("the URL has no host")]
    NoHost,
    #[error("scheme {0:?} is not http or https")]
    ForbiddenScheme(String),
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
}

impl From<&PolicyRefusal> for FetchError {
    fn from(refusal: &PolicyRefusal) -> Self {
        let reason = match refusal {
            PolicyRefusal::ForbiddenIp(_)
            | PolicyRefusal::ForbiddenName { .. }
            | PolicyRefusal::NoHost
            | PolicyRefusal::ForbiddenScheme(_) => FailureReason::ForbiddenAddress,
            PolicyRefusal::TooManyRedirects => FailureReason::HttpStatus,
        };
        FetchError::new(reason, false, refusal.to_string())
    }
}

/// Downloads user-supplied URLs under a [`FetchPolicy`]. Cheap to clone: clones
/// share one connection pool.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    guard: Arc<AddressGuard>,
    max_bytes: u64,
    timeout: Duration,
}

impl Fetcher {
    pub fn new(policy: FetchPolicy, user_agent: &str) -> Fetcher {
        let guard = Arc::new(AddressGuard::new(policy.allow_private, policy.exempt_hosts));
        let redirect_guard = Arc::clone(&guard);
        let redirects = Policy::custom(move |attempt: Attempt| {
            // `previous` holds every URL requested so far, so its length is the
            // number of this redirect.
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(PolicyRefusal::TooManyRedirects);
            }
            match redirect_guard.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refusal) => attempt.error(refusal),
            }
        });
        let client = reqwest::Client::builder()
            .user_agent(user_agent)
            .connect_timeout(policy.connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(8)
            .redirect(redirects)
            .dns_resolver(Arc::new(GuardedResolver::new(Arc::clone(&guard))))
            .no_proxy()
            // The user's URL is nobody else's business.
            .referer(false)
            .build()
            // Fails only if the TLS backend cannot initialize, which is a broken build.
            .expect("the download HTTP client can be built");
        Fetcher {
            client,
            guard,
            max_bytes: policy.max_bytes,
            timeout: policy.timeout,
        }
    }

    /// Downloads `url` whole, or says why not.
    pub async fn fetch(&self, url: &str) -> Result<Fetched, FetchError> {
        let url = Url::parse(url).map_err(|e| {
            FetchError::new(
                FailureReason::ForbiddenAddress,
                false,
                format!("not a URL: {e}"),
            )
        })?;
        self.guard
            .check_url(&url)
            .map_err(|refusal| FetchError::from(&refusal))?;
        match tokio::time::timeout(self.timeout, self.download(url)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(FetchError::new(
                FailureReason::Timeout,
                true,
                format!("not done within {:?}", self.timeout),
            )),
        }
    }

    async fn download(&self, url: Url) -> Result<Fetched, FetchError> {
        let mut response = self.client.get(url).send().await.map_err(classify)?;
        let status = response.status();
        if status.is_redirection() {
            // reqwest hands a redirect back unfollowed when its Location is not an
            // http-style URI (`file:///...`); such a target is refused like any
            // other non-http(s) hop, the rest end as http_status below.
            if let Some(target) = redirect_target(&response) {
                self.guard
                    .check_url(&target)
                    .map_err(|refusal| FetchError::from(&refusal))?;
            }
        }
        if !status.is_success() {
            return Err(FetchError::new(
                FailureReason::HttpStatus,
                is_transient(status),
                format!("{} answered {status}", response.url()),
            ));
        }
        // Refused before reading any of the body.
        let declared = response.content_length();
        if let Some(length) = declared.filter(|&length| length > self.max_bytes) {
            return Err(too_large(format!(
                "Content-Length {length} exceeds {} bytes",
                self.max_bytes
            )));
        }
        let final_url = response.url().to_string();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        // `declared` is at most max_bytes here, so the reservation is bounded.
        let mut bytes = Vec::with_capacity(usize::try_from(declared.unwrap_or(0)).unwrap_or(0));
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if bytes.len() as u64 + chunk.len() as u64 > self.max_bytes {
                // Dropping the response closes the connection mid-body.
                return Err(too_large(format!("body exceeds {} bytes", self.max_bytes)));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            bytes,
            final_url,
            content_type,
        })
    }
}

/// Where an unfollowed redirect points, if anywhere parseable.
fn redirect_target(response: &reqwest::Response) -> Option<Url> {
    let location = response.headers().get(reqwest::header::LOCATION)?;
    response.url().join(location.to_str().ok()?).ok()
}

fn too_large(detail: String) -> FetchError {
    FetchError::new(FailureReason::TooLarge, false, detail)
}

/// Maps a reqwest failure to its stable code, policy refusals first.
fn classify(error: reqwest::Error) -> FetchError {
    if let Some(refusal) = find_refusal(&error) {
        return FetchError::from(refusal);
    }
    let detail = error_chain(&error);
    if error.is_redirect() || error.is_builder() {
        // A redirect to an unusable Location, or a URL reqwest cannot request.
        FetchError::new(FailureReason::HttpStatus, false, detail)
    } else if error.is_connect() {
        // Includes DNS failures and connect timeouts: the host could not be reached.
        FetchError::new(FailureReason::Unreachable, true, detail)
    } else if error.is_timeout() {
        FetchError::new(FailureReason::Timeout, true, detail)
    } else {
        // The connection broke or the response was malformed mid-way.
        FetchError::new(FailureReason::Unreachable, true, detail)
    }
}

/// Our refusal, wherever reqwest and hyper wrapped it; `io::Error` hides a custom
/// payload from `source()`, so it is looked into explicitly.
fn find_refusal<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a PolicyRefusal> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(refusal) = error.downcast_ref::<PolicyRefusal>() {
            return Some(refusal);
        }
        if let Some(refusal) = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<PolicyRefusal>())
        {
            return Some(refusal);
        }
        next = error.source();
    }
    None
}

/// "outer: cause: root cause", since reqwest's own message omits the causes.
fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Instant;

    use pixpress_testkit::fixture::{Fixture, Reply};

    const LIMIT: u64 = 100_000;

    pub(super) fn policy(allow_private: bool) -> FetchPolicy {
        FetchPolicy::new(LIMIT, Duration::from_secs(5), allow_private)
    }

    pub(super) fn fetcher(policy: FetchPolicy) -> Fetcher {
        Fetcher::new(policy, "pixpress-download-test")
    }

    pub(super) fn exempting(hosts: &[&str]) -> Fetcher {
        fetcher(FetchPolicy {
            exempt_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            ..policy(false)
        })
    }

    pub(super) fn image_host() -> Fixture {
        Fixture::start(|_| Reply::bytes(200, "image/png", b"not really a png".to_vec()))
    }

    /// `/hop/N` redirects to `/hop/N-1`; `/hop/0` is the image.
    fn redirect_chain() -> Fixture {
        Fixture::start(|req| {
            let left: u32 = req
                .path
                .strip_prefix("/hop/")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if left == 0 {
                Reply::bytes(200, "image/png", b"image".to_vec())
            } else {
                Reply::redirect(302, &format!("/hop/{}", left - 1))
            }
        })
    }

    /// The fixture URL with its 127.0.0.1 host replaced by `host`.
    pub(super) fn on_host(fixture: &Fixture, host: &str, path: &str) -> String {
        format!("{}{path}", fixture.url.replace("127.0.0.1", host))
    }

    pub(super) async fn refused(fetcher: &Fetcher, url: &str) -> FetchError {
        match fetcher.fetch(url).await {
            Ok(fetched) => panic!("{url} was fetched: {} bytes", fetched.bytes.len()),
            Err(error) => error,
        }
    }

    #[tokio::test]
    async fn a_normal_fetch_returns_the_bytes_and_headers() {
        let host = image_host();
        let url = format!("{}/cat.png", host.url);
        let fetched = fetcher(policy(true)).fetch(&url).await.unwrap();
        assert_eq!(fetched.bytes, b"not really a png");
        assert_eq!(fetched.final_url, url);
        assert_eq!(fetched.content_type.as_deref(), Some("image/png"));
        let requests = host.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(
            requests[0].header("user-agent"),
            Some("pixpress-download-test")
        );
    }

    #[tokio::test]
    async fn a_chunked_body_within_the_limit_is_read_whole() {
        let host = Fixture::start(|_| {
            Reply::chunked("image/png", vec![7; 1000], 3, Duration::from_millis(5))
        });
        let fetched = fetcher(policy(true))
            .fetch(&format!("{}/x", host.url))
            .await
            .unwrap();
        assert_eq!(fetched.bytes, vec![7; 3000]);
    }

    #[tokio::test]
    async fn a_body_of_exactly_the_limit_is_accepted() {
        let host = Fixture::start(|_| Reply::bytes(200, "image/png", vec![1; LIMIT as usize]));
        let fetched = fetcher(policy(true))
            .fetch(&format!("{}/x", host.url))
            .await
            .unwrap();
        assert_eq!(fetched.bytes.len() as u64, LIMIT);
    }

    #[tokio::test]
    async fn a_content_length_over_the_limit_is_refused_before_the_body() {
        // 200 chunks, 50 ms apart: sending it all would take 10 s.
        let host = Fixture::start(|_| {
            Reply::chunked("image/png", vec![0; 4096], 200, Duration::from_millis(50))
                .with_content_length()
        });
        let started = Instant::now();
        let error = refused(&fetcher(policy(true)), &format!("{}/big", host.url)).await;
        assert_eq!(error.reason, FailureReason::TooLarge);
        assert!(!error.transient);
        assert!(error.detail.contains("Content-Length"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_chunked_body_over_the_limit_is_cut_off() {
        // 64 MiB over 8 s would follow if the fetcher kept reading.
        let host = Fixture::start(|_| {
            Reply::chunked(
                "image/png",
                vec![0; 16 * 1024],
                4096,
                Duration::from_millis(2),
            )
        });
        let started = Instant::now();
        let error = refused(&fetcher(policy(true)), &format!("{}/endless", host.url)).await;
        assert_eq!(error.reason, FailureReason::TooLarge);
        assert!(!error.transient);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_slow_server_times_out() {
        let host = Fixture::start(|_| {
            Reply::bytes(200, "image/png", b"late".to_vec()).delayed(Duration::from_secs(3))
        });
        let fetcher = fetcher(FetchPolicy::new(LIMIT, Duration::from_millis(300), true));
        let started = Instant::now();
        let error = refused(&fetcher, &format!("{}/slow", host.url)).await;
        assert_eq!(error.reason, FailureReason::Timeout);
        assert!(error.transient);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn the_timeout_covers_a_trickling_body() {
        // Headers come at once, the body would take 5 s.
        let host = Fixture::start(|_| {
            Reply::chunked("image/png", vec![0; 10], 50, Duration::from_millis(100))
        });
        let fetcher = fetcher(FetchPolicy::new(LIMIT, Duration::from_millis(500), true));
        let error = refused(&fetcher, &format!("{}/trickle", host.url)).await;
        assert_eq!(error.reason, FailureReason::Timeout);
        assert!(error.transient);
    }

    #[tokio::test]
    async fn http_errors_are_http_status_transient_only_for_server_trouble() {
        let host = Fixture::start(|req| {
            let status = req.path.trim_start_matches('/').parse().unwrap_or(500);
            Reply::bytes(status, "text/plain", b"nope".to_vec())
        });
        let fetcher = fetcher(policy(true));
        for (status, transient) in [
            (404, false),
            (403, false),
            (304, false),
            (503, true),
            (500, true),
            (408, true),
            (429, true),
        ] {
            let error = refused(&fetcher, &format!("{}/{status}", host.url)).await;
            assert_eq!(error.reason, FailureReason::HttpStatus, "{status}");
            assert_eq!(error.transient, transient, "{status}");
        }
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let error = refused(
            &fetcher(policy(true)),
            &format!("http://127.0.0.1:{port}/x"),
        )
        .await;
        assert_eq!(error.reason, FailureReason::Unreachable);
        assert!(error.transient);
    }

    #[tokio::test]
    async fn five_redirects_are_followed() {
        let host = redirect_chain();
        let fetched = fetcher(policy(true))
            .fetch(&format!("{}/hop/5", host.url))
            .await
            .unwrap();
        assert_eq!(fetched.bytes, b"image");
        assert_eq!(fetched.final_url, format!("{}/hop/0", host.url));
        assert_eq!(host.requests().len(), 6);
    }

    #[tokio::test]
    async fn a_sixth_redirect_is_http_status() {
        let host = redirect_chain();
        let error = refused(&fetcher(policy(true)), &format!("{}/hop/6", host.url)).await;
        assert_eq!(error.reason, FailureReason::HttpStatus);
        assert!(!error.transient);
        assert_eq!(host.requests().len(), 6);
    }
}
