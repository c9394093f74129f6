//! Standard Webhooks (standardwebhooks.com) signing and verification: how printers
//! and the download service prove that a callback is theirs.
//!
//! A message is signed as `v1,<base64 HMAC-SHA256("{id}.{timestamp}.{body}")>` with
//! the key in a `whsec_<base64>` secret, and travels with the headers `webhook-id`,
//! `webhook-timestamp` (Unix seconds) and `webhook-signature` (space-separated
//! signatures, so a secret can be rotated). Verification compares in constant time
//! and refuses timestamps more than five minutes away from now.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use sha2::Sha256;

use crate::client::ForwardRequestId;
use crate::json;
use crate::problem::{ApiError, ServiceError};

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// How far a timestamp may be from now, either way.
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);

const PREFIX: &str = "whsec_";

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the secret must be `whsec_` followed by base64")]
    BadSecret,
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("malformed webhook-timestamp")]
    BadTimestamp,
    #[error("webhook-timestamp is outside the tolerance")]
    StaleTimestamp,
    #[error("no signature matches")]
    BadSignature,
    #[error("no webhook secret is configured, so no signature can be checked")]
    NoSecret,
}

/// A webhook secret setting that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {source}")]
pub struct BadSecretSetting {
    pub variable: &'static str,
    pub source: WebhookError,
}

/// A signing key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl WebhookSecret {
    /// Parses `whsec_<base64>`.
    pub fn parse(secret: &str) -> Result<Self, WebhookError> {
        let encoded = secret
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(WebhookError::BadSecret)?;
        let key = BASE64
            .decode(encoded)
            .map_err(|_| WebhookError::BadSecret)?;
        if key.is_empty() {
            return Err(WebhookError::BadSecret);
        }
        Ok(Self { key })
    }

    /// The secret of setting `variable` (e.g. `PRINTER_CALLBACK_SECRET`): `None`, with
    /// a warning that says what happens `when_unset`, if it is not set.
    pub fn from_setting(
        variable: &'static str,
        value: Option<&str>,
        when_unset: &str,
    ) -> Result<Option<Self>, BadSecretSetting> {
        let Some(text) = value else {
            log::warn!("{variable} is not set: {when_unset}");
            return Ok(None);
        };
        Self::parse(text)
            .map(Some)
            .map_err(|source| BadSecretSetting { variable, source })
    }

    /// A fresh random 32-byte secret and its `whsec_…` form.
    pub fn generate() -> (Self, String) {
        let key: [u8; 32] = rand::random();
        let text = format!("{PREFIX}{}", BASE64.encode(key));
        (Self { key: key.to_vec() }, text)
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` value for a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", BASE64.encode(tag))
    }

    /// The three headers for `body`, with a fresh message id and the current time.
    pub fn headers(&self, body: &[u8]) -> [(&'static str, String); 3] {
        let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
        let timestamp = unix_now();
        let signature = self.sign(&id, timestamp, body);
        [
            (ID_HEADER, id),
            (TIMESTAMP_HEADER, timestamp.to_string()),
            (SIGNATURE_HEADER, signature),
        ]
    }

    /// Checks a received message against this secret at time `now` (Unix seconds).
    pub fn verify(
        &self,
        id: Option<&str>,
        timestamp: Option<&str>,
        signatures: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), WebhookError> {
        let id = id.ok_or(WebhookError::MissingHeader(ID_HEADER))?;
        let timestamp = timestamp.ok_or(WebhookError::MissingHeader(TIMESTAMP_HEADER))?;
        let signatures = signatures.ok_or(WebhookError::MissingHeader(SIGNATURE_HEADER))?;
        let timestamp: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| WebhookError::BadTimestamp)?;
        if timestamp.abs_diff(now) > TOLERANCE.as_secs() {
            return Err(WebhookError::StaleTimestamp);
        }
        let expected = self.mac(id, timestamp, body);
        let matches = signatures.split_whitespace().any(|candidate| {
            let Some(("v1", encoded)) = candidate.split_once(',') else {
                return false;
            };
            match BASE64.decode(encoded) {
                // `verify_slice` compares in constant time.
                Ok(tag) => expected.clone().verify_slice(&tag).is_ok(),
                Err(_) => false,
            }
        });
        if matches {
            Ok(())
        } else {
            Err(WebhookError::BadSignature)
        }
    }
}

/// A POST of the JSON `body` to `url`, signed with `secret` when there is one, with
/// the current request context (request id, trace context): how a printer or the
/// download service sends a callback.
pub fn signed_post(
    http: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    secret: Option<&WebhookSecret>,
) -> reqwest::RequestBuilder {
    let headers = secret.map(|secret| secret.headers(&body));
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .forward_request_id();
    for (name, value) in headers.into_iter().flatten() {
        request = request.header(name, value);
    }
    request
}

/// How long [`deliver`] keeps retrying one callback.
pub const CALLBACK_PATIENCE: Duration = Duration::from_secs(600);
/// Between [`deliver`]'s attempts.
const CALLBACK_RETRY: crate::retry::Backoff =
    crate::retry::Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// What became of a callback [`deliver`] sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Answered 2xx.
    Taken,
    /// Answered with this status, which it would answer again (a 4xx other than
    /// 408/429): not retried.
    Refused(u16),
    /// Still unreachable or failing after [`CALLBACK_PATIENCE`].
    GaveUp,
}

/// Sends the JSON `body` to `url` as [`signed_post`] does, retrying with jittered
/// backoff (100 ms doubling to 5 s) while the receiver is down or answers a
/// transient status, for at most [`CALLBACK_PATIENCE`]; `on_retry` runs before each
/// retry. How a printer (printer-sim, ipp-gateway) reports on a job.
pub async fn deliver(
    http: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    secret: Option<&WebhookSecret>,
    mut on_retry: impl FnMut(),
) -> Delivery {
    let started = tokio::time::Instant::now();
    let mut failures = 0;
    loop {
        match signed_post(http, url, body.clone(), secret).send().await {
            Ok(res) if res.status().is_success() => return Delivery::Taken,
            Ok(res) if !crate::client::is_transient(res.status()) => {
                log::warn!(
                    "callback to {url} refused with {}; not retrying",
                    res.status()
                );
                return Delivery::Refused(res.status().as_u16());
            }
            Ok(res) => log::info!("callback to {url} answered {}; retrying", res.status()),
            Err(e) => log::info!("callback to {url} failed ({e}); retrying"),
        }
        if started.elapsed() > CALLBACK_PATIENCE {
            log::error!("giving up on the callback to {url}");
            return Delivery::GaveUp;
        }
        on_retry();
        failures += 1;
        tokio::time::sleep(CALLBACK_RETRY.jittered(failures)).await;
    }
}

/// Checks that an incoming request was signed with `secret` (refused when no secret
/// is configured: an unsigned callback is never trusted).
pub fn verify_request(
    secret: Option<&WebhookSecret>,
    req: &actix_web::HttpRequest,
    body: &[u8],
) -> Result<(), WebhookError> {
    let secret = secret.ok_or(WebhookError::NoSecret)?;
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    secret.verify(
        header(ID_HEADER),
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        body,
        unix_now(),
    )
}

/// The secret a service checks incoming callbacks against (app data, as
/// `web::Data<CallbackSecret>`). `None`: no secret configured, every callback refused.
pub struct CallbackSecret(pub Option<WebhookSecret>);

/// A JSON body whose Standard Webhooks signature was checked before anything else
/// was read from it: the extractor of every callback route.
pub struct SignedJson<T>(pub T);

impl<T> SignedJson<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// Why a callback was refused before its handler ran.
#[derive(Debug, thiserror::Error)]
pub enum CallbackRefused {
    /// 401: missing or bad signature, stale timestamp, or no secret configured.
    #[error("missing or invalid webhook signature")]
    Unsigned(#[source] WebhookError),
    /// 400 (413 over the size limit): signed, but not the JSON the route takes.
    #[error("{}", .0.problem().detail)]
    Invalid(ApiError),
}

impl CallbackRefused {
    /// The outcome label a callback metric counts this refusal under.
    pub fn outcome(&self) -> &'static str {
        match self {
            CallbackRefused::Unsigned(_) => "unauthorized",
            CallbackRefused::Invalid(_) => "invalid",
        }
    }
}

impl ServiceError for CallbackRefused {
    fn api_error(&self) -> ApiError {
        match self {
            CallbackRefused::Unsigned(_) => ApiError::new(
                "invalid-signature",
                StatusCode::UNAUTHORIZED,
                self.to_string(),
            ),
            CallbackRefused::Invalid(api) => api.clone(),
        }
    }
}

impl ResponseError for CallbackRefused {
    fn error_response(&self) -> HttpResponse {
        crate::problem::respond(self)
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for SignedJson<T> {
    type Error = CallbackRefused;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        // Bytes honours the app's PayloadConfig limit (413 above it).
        let body = Bytes::from_request(&req, payload);
        Box::pin(async move {
            let body = body.await.map_err(|e| {
                CallbackRefused::Invalid(ApiError::new(
                    "body-too-large",
                    e.as_response_error().status_code(),
                    e.to_string(),
                ))
            })?;
            let secret = req
                .app_data::<web::Data<CallbackSecret>>()
                .and_then(|secret| secret.0.as_ref());
            verify_request(secret, &req, &body).map_err(|e| {
                log::warn!("refused a callback to {}: {e}", req.path());
                CallbackRefused::Unsigned(e)
            })?;
            let value = json::deserialize(&body).map_err(CallbackRefused::Invalid)?;
            Ok(SignedJson(value))
        })
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from the Standard Webhooks specification's reference tests.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1614265330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn matches_the_specification_example() {
        let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
        assert_eq!(secret.sign(SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIG);
        let ts = SPEC_TS.to_string();
        assert_eq!(
            secret.verify(
                Some(SPEC_ID),
                Some(&ts),
                Some(SPEC_SIG),
                SPEC_BODY,
                SPEC_TS + 10
            ),
            Ok(())
        );
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
        let header = format!("v1,Zm9vYmFy v2,abc {SPEC_SIG}");
        let ts = SPEC_TS.to_string();
        assert!(secret
            .verify(Some(SPEC_ID), Some(&ts), Some(&header), SPEC_BODY, SPEC_TS)
            .is_ok());
    }

    #[test]
    fn tampered_stale_and_incomplete_messages_are_refused() {
        let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
        let ts = SPEC_TS.to_string();
        let verify = |id, ts: Option<&str>, sig, body, now| secret.verify(id, ts, sig, body, now);
        assert_eq!(
            verify(
                Some(SPEC_ID),
                Some(&ts),
                Some(SPEC_SIG),
                b"{\"test\": 1}",
                SPEC_TS
            ),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify(
                Some("msg_other"),
                Some(&ts),
                Some(SPEC_SIG),
                SPEC_BODY,
                SPEC_TS
            ),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify(
                Some(SPEC_ID),
                Some(&ts),
                Some(SPEC_SIG),
                SPEC_BODY,
                SPEC_TS + 301
            ),
            Err(WebhookError::StaleTimestamp)
        );
        assert_eq!(
            verify(
                Some(SPEC_ID),
                Some(&ts),
                Some(SPEC_SIG),
                SPEC_BODY,
                SPEC_TS - 301
            ),
            Err(WebhookError::StaleTimestamp)
        );
        assert_eq!(
            verify(Some(SPEC_ID), None, Some(SPEC_SIG), SPEC_BODY, SPEC_TS),
            Err(WebhookError::MissingHeader(TIMESTAMP_HEADER))
        );
        assert_eq!(
            verify(
                Some(SPEC_ID),
                Some("soon"),
                Some(SPEC_SIG),
                SPEC_BODY,
                SPEC_TS
            ),
            Err(WebhookError::BadTimestamp)
        );
        let other = WebhookSecret::generate().0;
        assert_eq!(
            other.verify(Some(SPEC_ID), Some(&ts), Some(SPEC_SIG), SPEC_BODY, SPEC_TS),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn secrets_must_be_whsec_base64_and_never_print() {
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(WebhookSecret::parse("whsec_!!!").is_err());
        assert!(WebhookSecret::parse("whsec_").is_err());
        let (secret, text) = WebhookSecret::generate();
        assert!(WebhookSecret::parse(&text).is_ok());
        assert!(!format!("{secret:?}").contains(&text[6..]));
    }
}
