//! `MANAGEMENT_URL`: the one place download results may go. A task's `callback_url`
//! is accepted (at `POST /downloads`) and used (when its report is sent) only when it
//! lies under `{MANAGEMENT_URL}/`, so whoever can queue a download cannot make this
//! service post into the rest of the network.
//!
//! URLs are compared parsed (WHATWG rules, as reqwest sends them), never as strings:
//! same scheme, host and port, and a path under the base path, after `.`/`..`
//! segments are resolved. User info is refused outright (`http://host@evil/`), and
//! so is a path that hides a separator or a dot in percent-encoding (`%2F`, `%5C`,
//! `%2E`), which some servers decode after routing. What passes is sent exactly as
//! parsed here.

use reqwest::Url;

/// The base every callback must lie under.
#[derive(Debug, Clone)]
pub struct ManagementUrl {
    base: Url,
    /// The base's path, ending in `/`: a callback's path must start with it.
    prefix: String,
}

/// `MANAGEMENT_URL` cannot be a base for callbacks (a start-up error). The value is
/// not repeated: it might carry a password.
#[derive(Debug, thiserror::Error)]
#[error("MANAGEMENT_URL {why}")]
pub struct BadManagementUrl {
    why: &'static str,
}

/// Why a `callback_url` is refused; the message is for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackRefusal {
    #[error("callbacks are not accepted: download-service has no MANAGEMENT_URL")]
    NoManagementUrl,
    #[error("must be an absolute URL")]
    Unparseable,
    #[error("must not carry a user name or password")]
    Credentials,
    #[error("must not percent-encode `/`, `\\` or `.` in its path")]
    EncodedSeparator,
    #[error("must be under {0}")]
    Elsewhere(String),
}

impl ManagementUrl {
    /// An http(s) URL with a host, without user info, query or fragment.
    pub fn parse(value: &str) -> Result<Self, BadManagementUrl> {
        let bad = |why| BadManagementUrl { why };
        let base = Url::parse(value).map_err(|_| bad("is not an absolute URL"))?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(bad("is not an http(s) URL with a host"));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(bad("must not carry a user name or password"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(bad("must not have a query or fragment"));
        }
        let mut prefix = base.path().to_owned();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(Self { base, prefix })
    }

    /// The URL to send to, when `callback` lies under this base.
    pub fn admit(&self, callback: &str) -> Result<Url, CallbackRefusal> {
        let mut url = Url::parse(callback).map_err(|_| CallbackRefusal::Unparseable)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(CallbackRefusal::Credentials);
        }
        let elsewhere = || CallbackRefusal::Elsewhere(format!("{}{}", self.origin(), self.prefix));
        let same_origin = url.scheme() == self.base.scheme()
            && url.host() == self.base.host()
            && url.port_or_known_default() == self.base.port_or_known_default();
        if !same_origin {
            return Err(elsewhere());
        }
        let path = url.path().to_ascii_lowercase();
        if ["%2e", "%2f", "%5c"]
            .iter()
            .any(|hidden| path.contains(hidden))
        {
            return Err(CallbackRefusal::EncodedSeparator);
        }
        if !url.path().starts_with(&self.prefix) {
            return Err(elsewhere());
        }
        // Never sent anyway; dropped so the stored and the sent URL are the same.
        url.set_fragment(None);
        Ok(url)
    }

    fn origin(&self) -> String {
        self.base.origin().ascii_serialization()
    }
}

/// [`ManagementUrl::admit`] when there may be no base: without one, nothing is.
pub fn admit(management: Option<&ManagementUrl>, callback: &str) -> Result<Url, CallbackRefusal> {
    management
        .ok_or(CallbackRefusal::NoManagementUrl)?
        .admit(callback)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(value: &str) -> ManagementUrl {
        ManagementUrl::parse(value).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn callbacks_under_the_base_are_admitted_as_parsed() {
        let cases = [
            (
                "http://mgmt:8082",
                "http://mgmt:8082/internal/images/1/download",
            ),
            ("http://mgmt:8082/", "http://MGMT:8082/x"),
            ("http://mgmt/api", "http://mgmt:80/api/x"),
            ("http://mgmt/api/", "http://mgmt/api/./x?attempt=2#frag"),
            ("https://10.0.0.5", "https://10.0.0.5/a/b/../c"),
        ];
        for (management, callback) in cases {
            let url = base(management).admit(callback);
            assert!(url.is_ok(), "{callback} under {management}: {url:?}");
        }
        let url = base("http://mgmt/api")
            .admit("http://MGMT:80/api/./x#f")
            .unwrap();
        assert_eq!(url.as_str(), "http://mgmt/api/x");
    }

    #[test]
    fn callbacks_elsewhere_are_refused_however_they_are_spelled() {
        let management = base("http://mgmt:8082/api");
        let cases = [
            ("http://evil/api/x", "a different host"),
            ("https://mgmt:8082/api/x", "a different scheme"),
            ("http://mgmt:8083/api/x", "a different port"),
            ("http://mgmt/api/x", "the default port instead of 8082"),
            (
                "http://mgmt:8082/apix/y",
                "a sibling path sharing the prefix",
            ),
            ("http://mgmt:8082/api", "the base itself, not under it"),
            ("http://mgmt:8082/api/../admin", "a dot-dot out of the base"),
            ("http://mgmt:8082/api/%2e%2e/admin", "an encoded dot-dot"),
            (
                "http://mgmt:8082/api/%2E%2E%2Fadmin",
                "an encoded separator",
            ),
            (
                "http://mgmt:8082/api/x%5c..%5cadmin",
                "an encoded backslash",
            ),
            ("http://mgmt:8082@evil/api/x", "the base as user info"),
            ("http://evil@mgmt:8082/api/x", "user info on the right host"),
            ("http://mgmt:8082.evil/api/x", "a host extending the base"),
            (
                "http://mgmt:8082\\@evil/api/x",
                "a backslash before user info",
            ),
            ("//mgmt:8082/api/x", "a scheme-relative URL"),
            ("/api/x", "a relative path"),
            ("not a url", "no URL at all"),
        ];
        for (callback, what) in cases {
            assert!(
                management.admit(callback).is_err(),
                "{what}: {callback} admitted"
            );
        }
    }

    #[test]
    fn without_a_management_url_no_callback_is_admitted() {
        assert_eq!(
            admit(None, "http://mgmt:8082/x"),
            Err(CallbackRefusal::NoManagementUrl)
        );
    }

    #[test]
    fn a_management_url_that_cannot_be_a_base_stops_the_service() {
        for value in [
            "mgmt:8082",
            "ftp://mgmt/",
            "http://user:pw@mgmt/",
            "http://mgmt/?a=1",
            "http://mgmt/#f",
            "",
        ] {
            let err = ManagementUrl::parse(value).err();
            assert!(
                err.is_some_and(|e| e.to_string().contains("MANAGEMENT_URL")),
                "{value:?}"
            );
        }
    }
}
