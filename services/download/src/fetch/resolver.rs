//! The DNS resolver of the download client: the system resolver, minus every
//! address the [`AddressGuard`] forbids. Checking here, where reqwest gets the
//! addresses it connects to, means a name that resolves differently the second
//! time (DNS rebinding) cannot slip past a check made earlier on the URL.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::address_policy::{is_forbidden, AddressGuard};
use super::PolicyRefusal;

/// Resolves host names with the system resolver and drops every forbidden
/// address, so reqwest can only connect to what the policy allows.
pub(super) struct GuardedResolver {
    guard: Arc<AddressGuard>,
}

impl GuardedResolver {
    pub(super) fn new(guard: Arc<AddressGuard>) -> Self {
        Self { guard }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = Arc::clone(&self.guard);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port in.
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if resolved.is_empty() {
                let missing = std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{host} has no addresses"),
                );
                return Err(missing.into());
            }
            if guard.trusts(&host) {
                return Ok(Box::new(resolved.into_iter()) as Addrs);
            }
            let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = resolved
                .into_iter()
                .partition(|addr| !is_forbidden(addr.ip()));
            if allowed.is_empty() {
                let addresses = refused
                    .iter()
                    .map(|addr| addr.ip().to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(PolicyRefusal::ForbiddenName { host, addresses }.into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use pixpress_domain::download::FailureReason;

    use crate::fetch::tests::{fetcher, image_host, on_host, policy, refused};

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_by_the_resolver() {
        let host = image_host();
        let error = refused(&fetcher(policy(false)), &on_host(&host, "localhost", "/x")).await;
        assert_eq!(error.reason, FailureReason::ForbiddenAddress);
        assert!(!error.transient);
        assert!(error.detail.contains("localhost"), "{error}");
        assert!(host.requests().is_empty());
    }

    #[tokio::test]
    async fn an_unresolvable_host_is_unreachable() {
        let error = refused(&fetcher(policy(false)), "http://no-such-host.invalid/x").await;
        assert_eq!(error.reason, FailureReason::Unreachable);
        assert!(error.transient);
    }
}
