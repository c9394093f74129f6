//! Which addresses a download may connect to: public unicast only, unless private
//! networks are allowed or the host is exempt. [`AddressGuard`] judges URLs (their
//! scheme, and hosts that are IP literals, which reqwest connects to without
//! resolving); the resolver uses the same guard for names.
//!
//! This module decides; it does not resolve names or make connections.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use reqwest::Url;

use super::PolicyRefusal;

/// The address rules shared by the resolver and the redirect policy.
#[derive(Debug)]
pub(super) struct AddressGuard {
    allow_private: bool,
    exempt_hosts: Vec<String>,
}

impl AddressGuard {
    /// `exempt_hosts`: lowercase host names, as written in URLs.
    pub(super) fn new(allow_private: bool, exempt_hosts: Vec<String>) -> Self {
        Self {
            allow_private,
            exempt_hosts,
        }
    }

    /// Whether connections to `host` may go to any address at all: private
    /// networks are allowed, or the host is exempt.
    pub(super) fn trusts(&self, host: &str) -> bool {
        self.allow_private || self.is_exempt(host)
    }

    fn is_exempt(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.exempt_hosts.iter().any(|exempt| {
            exempt
                .trim_start_matches('[')
                .trim_end_matches(']')
                .eq_ignore_ascii_case(host)
        })
    }

    /// Checks what can be judged from a URL alone: its scheme, and its host when
    /// that is an IP literal (reqwest connects to those without resolving them).
    pub(super) fn check_url(&self, url: &Url) -> Result<(), PolicyRefusal> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(PolicyRefusal::ForbiddenScheme(url.scheme().to_owned()));
        }
        let Some(host) = url.host_str() else {
            return Err(PolicyRefusal::NoHost);
        };
        if self.trusts(host) {
            return Ok(());
        }
        // `Url` has already normalised IP hosts (`0x7f.1`, `2130706433`, ...) to
        // dotted quads and bracketed IPv6.
        let literal = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
            None => host.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
        };
        match literal {
            Some(ip) if is_forbidden(ip) => Err(PolicyRefusal::ForbiddenIp(ip)),
            _ => Ok(()),
        }
    }
}

/// Whether `ip` is anything but public unicast: loopback, private, link-local,
/// shared (CGNAT), multicast, broadcast, reserved, documentation, benchmarking,
/// or an IPv6 form that embeds or tunnels to such an address.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    match a {
        0 => true,                             // "this network", unspecified
        10 => true,                            // private
        100 if (64..128).contains(&b) => true, // shared address space (CGNAT)
        127 => true,                           // loopback
        169 if b == 254 => true,               // link-local
        172 if (16..32).contains(&b) => true,  // private
        192 if b == 0 && c == 0 => true,       // IETF protocol assignments
        192 if b == 0 && c == 2 => true,       // documentation (TEST-NET-1)
        192 if b == 88 && c == 99 => true,     // 6to4 relay anycast
        192 if b == 168 => true,               // private
        198 if b == 18 || b == 19 => true,     // benchmarking
        198 if b == 51 && c == 100 => true,    // documentation (TEST-NET-2)
        203 if b == 0 && c == 113 => true,     // documentation (TEST-NET-3)
        224.. => true,                         // multicast, reserved 240/4, broadcast
        _ => false,
    }
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let octets = ip.octets();
    let embedded_v4 =
        |at: usize| Ipv4Addr::new(octets[at], octets[at + 1], octets[at + 2], octets[at + 3]);
    // ::ffff:a.b.c.d reaches a.b.c.d itself.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_forbidden_v4(v4);
    }
    // NAT64 (64:ff9b::/96) translates to the embedded address.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_forbidden_v4(embedded_v4(12));
    }
    // Only global unicast (2000::/3) is public; this refuses ::, ::1,
    // IPv4-compatible ::/96, unique-local fc00::/7, link-local fe80::/10,
    // site-local fec0::/10, multicast ff00::/8 and the other reserved blocks.
    if segments[0] & 0xe000 != 0x2000 {
        return true;
    }
    match segments[0] {
        // IETF protocol assignments 2001::/23: Teredo 2001::/32, benchmarking
        // 2001:2::/48, ORCHID, ...
        0x2001 if segments[1] < 0x0200 => true,
        0x2001 if segments[1] == 0x0db8 => true, // documentation
        0x2002 => is_forbidden_v4(embedded_v4(2)), // 6to4 tunnels to the embedded address
        0x3fff if segments[1] < 0x1000 => true,  // documentation 3fff::/20
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use pixpress_domain::download::FailureReason;
    use pixpress_testkit::fixture::{Fixture, Reply};

    use crate::fetch::tests::{exempting, fetcher, image_host, on_host, policy, refused};

    #[tokio::test]
    async fn a_loopback_ip_literal_is_refused_without_connecting() {
        let host = image_host();
        for url in [
            format!("{}/x", host.url),
            on_host(&host, "2130706433", "/x"),
            on_host(&host, "0x7f.1", "/x"),
        ] {
            let error = refused(&fetcher(policy(false)), &url).await;
            assert_eq!(error.reason, FailureReason::ForbiddenAddress, "{url}");
            assert!(!error.transient);
        }
        assert!(host.requests().is_empty());
    }

    #[tokio::test]
    async fn exempt_hosts_skip_the_ban() {
        let host = image_host();
        let by_ip = exempting(&["127.0.0.1"])
            .fetch(&format!("{}/x", host.url))
            .await;
        assert_eq!(by_ip.unwrap().bytes, b"not really a png");
        let by_name = exempting(&["localhost"])
            .fetch(&on_host(&host, "localhost", "/x"))
            .await;
        assert_eq!(by_name.unwrap().bytes, b"not really a png");
    }

    #[tokio::test]
    async fn an_exempt_host_cannot_redirect_to_a_forbidden_name() {
        let host = Fixture::start(|req| {
            if req.path == "/start" {
                let port = req
                    .header("host")
                    .and_then(|h| h.rsplit(':').next())
                    .unwrap_or("0");
                Reply::redirect(302, &format!("http://localhost:{port}/inside"))
            } else {
                Reply::bytes(200, "image/png", b"secret".to_vec())
            }
        });
        let error = refused(&exempting(&["127.0.0.1"]), &format!("{}/start", host.url)).await;
        assert_eq!(error.reason, FailureReason::ForbiddenAddress);
        let paths: Vec<String> = host.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(paths, ["/start"]);
    }

    #[tokio::test]
    async fn an_exempt_host_cannot_redirect_to_a_forbidden_ip_literal() {
        let host = Fixture::start(|req| {
            if req.path == "/start" {
                let port = req
                    .header("host")
                    .and_then(|h| h.rsplit(':').next())
                    .unwrap_or("0");
                Reply::redirect(307, &format!("http://127.0.0.1:{port}/inside"))
            } else {
                Reply::bytes(200, "image/png", b"secret".to_vec())
            }
        });
        let error = refused(
            &exempting(&["localhost"]),
            &on_host(&host, "localhost", "/start"),
        )
        .await;
        assert_eq!(error.reason, FailureReason::ForbiddenAddress);
        let paths: Vec<String> = host.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(paths, ["/start"]);
    }

    #[tokio::test]
    async fn non_http_schemes_are_refused() {
        let fetcher = fetcher(policy(true));
        for url in [
            "file:///etc/passwd",
            "ftp://example.com/a.png",
            "gopher://example.com/",
            "not a url",
        ] {
            let error = refused(&fetcher, url).await;
            assert_eq!(error.reason, FailureReason::ForbiddenAddress, "{url}");
            assert!(!error.transient, "{url}");
        }
    }

    #[tokio::test]
    async fn a_redirect_to_a_non_http_scheme_is_refused() {
        let host = Fixture::start(|req| match req.path.as_str() {
            "/file" => Reply::redirect(302, "file:///etc/passwd"),
            _ => Reply::redirect(301, "gopher://example.com/1"),
        });
        let fetcher = fetcher(policy(true));
        for path in ["/file", "/gopher"] {
            let error = refused(&fetcher, &format!("{}{path}", host.url)).await;
            assert_eq!(error.reason, FailureReason::ForbiddenAddress, "{error}");
            assert!(!error.transient);
        }
    }

    #[tokio::test]
    async fn allowing_private_networks_fetches_from_loopback() {
        let host = image_host();
        let fetcher = fetcher(policy(true));
        let by_ip = fetcher.fetch(&format!("{}/x", host.url)).await;
        assert_eq!(by_ip.unwrap().bytes, b"not really a png");
        let by_name = fetcher.fetch(&on_host(&host, "localhost", "/x")).await;
        assert_eq!(by_name.unwrap().bytes, b"not really a png");
    }

    #[test]
    fn only_public_unicast_addresses_pass() {
        let forbidden = [
            // IPv4
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.255.255",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6
            "::",
            "::1",
            "::127.0.0.1",
            "::8.8.8.8",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::127.0.0.1",
            "64:ff9b::10.1.2.3",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:10::1",
            "2001:db8::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "100::1",
        ];
        for ip in forbidden {
            let parsed: IpAddr = ip.parse().unwrap();
            assert!(is_forbidden(parsed), "{ip} should be forbidden");
        }
        let public = [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.254",
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
        ];
        for ip in public {
            let parsed: IpAddr = ip.parse().unwrap();
            assert!(!is_forbidden(parsed), "{ip} should pass");
        }
    }
}
