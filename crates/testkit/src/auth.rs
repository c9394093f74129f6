//! Tokens for tests: services under test verify HS256 tokens signed with [`SECRET`].

use std::time::Duration;

use pixpress_kit::auth::{mint, AuthArgs};

/// The JWT secret every service under test is configured with.
pub const SECRET: &str = "pixpress-test-jwt-secret-0123456789";

/// Authentication settings that accept tokens made here.
pub fn args() -> AuthArgs {
    AuthArgs::with_secret(SECRET)
}

pub fn token(subject: &str, roles: &[&str]) -> String {
    mint(SECRET, subject, roles, Duration::from_secs(3600))
}

/// User `id`'s token.
pub fn user(id: i64) -> String {
    token(&id.to_string(), &[])
}

/// An admin's token (may act for any user).
pub fn admin() -> String {
    token("0", &["admin"])
}

/// print-service's token for the management API's `/lookup`.
pub fn service() -> String {
    token("print-service", &["service"])
}

/// A token for `subject` that expired an hour ago (beyond any clock leeway).
pub fn expired(subject: &str) -> String {
    let an_hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|now| now.as_secs().saturating_sub(3600))
        .unwrap_or(0);
    pixpress_kit::auth::sign(
        SECRET,
        &pixpress_kit::auth::Claims {
            sub: subject.into(),
            exp: an_hour_ago,
            roles: Vec::new(),
            iss: None,
            aud: None,
        },
    )
}

/// A test client that sends `token` on every request (a request's own
/// `Authorization` header wins) and does not follow redirects.
pub fn client_as(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .expect("a token is a valid header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a test HTTP client")
}
