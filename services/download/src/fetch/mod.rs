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
    let detail = pixpress_kit::client::error_chain(&error);
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

#[cfg(test)]
mod tests;
