//! Tests of fetching: the streaming download and its limits; the address policy and
//! resolver tests use the helpers defined here.

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
    let host =
        Fixture::start(|_| Reply::chunked("image/png", vec![7; 1000], 3, Duration::from_millis(5)));
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
