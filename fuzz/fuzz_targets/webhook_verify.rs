//! Fuzzes the Standard Webhooks verifier (`pixpress_kit::webhook`), the gate in front of
//! every printer and download callback.
//!
//! Three properties, on every input:
//! - `verify` never panics, and accepts exactly when the timestamp parses, lies within the
//!   tolerance of `now`, and one of the space-separated signatures is what `sign` produces
//!   for that id, timestamp and body (base64 here is canonical, so the text must match);
//! - `verify_request` on a request with arbitrary header names and values never panics and
//!   agrees with `verify` on the headers it sees;
//! - round trip: what `sign` produces verifies (and what `headers` produces passes
//!   `verify_request`), and changing any single byte of the body, the id or the timestamp
//!   makes it fail.
#![no_main]

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::test::TestRequest;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use pixpress_kit::webhook::{
    unix_now, verify_request, WebhookError, WebhookSecret, ID_HEADER, SIGNATURE_HEADER,
    TIMESTAMP_HEADER, TOLERANCE,
};

#[derive(Debug, Arbitrary)]
struct Input {
    /// Tried as a `whsec_…` secret; when it does not parse, `key` is the secret.
    secret_text: String,
    key: Vec<u8>,
    id: Option<String>,
    timestamp: Option<String>,
    signatures: Option<String>,
    body: Vec<u8>,
    now: i64,
    /// Extra signatures mixed into the round trip's header, before and after the real one.
    decoys: Vec<String>,
    /// Seconds between signing and verifying in the round trip (kept within tolerance).
    skew: i16,
    /// Which single byte the round trip changes, and how.
    tamper: Tamper,
    tamper_at: usize,
    tamper_xor: u8,
    /// Raw headers for `verify_request`; invalid names or values are skipped.
    headers: Vec<(Vec<u8>, Vec<u8>)>,
}

#[derive(Debug, Arbitrary)]
enum Tamper {
    Body,
    Id,
    Timestamp,
}

fuzz_target!(|input: Input| {
    let secret = match WebhookSecret::parse(&input.secret_text) {
        Ok(secret) => secret,
        Err(_) => {
            let Ok(secret) = WebhookSecret::parse(&format!("whsec_{}", BASE64.encode(&input.key)))
            else {
                // Only the empty key is refused.
                assert!(input.key.is_empty());
                return;
            };
            secret
        }
    };
    verify_matches_its_definition(&secret, &input);
    verify_request_agrees_with_verify(&secret, &input);
    signed_messages_verify_and_tampered_ones_do_not(&secret, &input);
});

fn verify_matches_its_definition(secret: &WebhookSecret, input: &Input) {
    let result = secret.verify(
        input.id.as_deref(),
        input.timestamp.as_deref(),
        input.signatures.as_deref(),
        &input.body,
        input.now,
    );
    assert_eq!(
        result,
        expected(
            secret,
            input.id.as_deref(),
            input.timestamp.as_deref(),
            input.signatures.as_deref(),
            &input.body,
            input.now
        )
    );
}

/// The verifier's contract, written out from the specification rather than the code.
fn expected(
    secret: &WebhookSecret,
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
    let distance = i128::from(timestamp) - i128::from(now);
    if distance.unsigned_abs() > u128::from(TOLERANCE.as_secs()) {
        return Err(WebhookError::StaleTimestamp);
    }
    let wanted = secret.sign(id, timestamp, body);
    if signatures.split_whitespace().any(|s| s == wanted) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

fn verify_request_agrees_with_verify(secret: &WebhookSecret, input: &Input) {
    let mut request = TestRequest::default();
    for (name, value) in &input.headers {
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        else {
            continue;
        };
        request = request.append_header((name, value));
    }
    let request = request.to_http_request();
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());

    assert_eq!(
        verify_request(None, &request, &input.body),
        Err(WebhookError::NoSecret)
    );
    let before = unix_now();
    let result = verify_request(Some(secret), &request, &input.body);
    let after = unix_now();
    if before == after {
        let direct = secret.verify(
            header(ID_HEADER),
            header(TIMESTAMP_HEADER),
            header(SIGNATURE_HEADER),
            &input.body,
            before,
        );
        assert_eq!(result, direct);
    }
}

fn signed_messages_verify_and_tampered_ones_do_not(secret: &WebhookSecret, input: &Input) {
    let id = input.id.as_deref().unwrap_or("msg_fuzz");
    let now = input.now.clamp(i64::MIN + 301, i64::MAX - 301);
    let max_skew = TOLERANCE.as_secs() as i64;
    let timestamp = now + i64::from(input.skew).clamp(-max_skew, max_skew);
    let body = &input.body;

    let signature = secret.sign(id, timestamp, body);
    // Other signatures around the real one (as during a key rotation) change nothing,
    // unless one of them is a token the verifier would split apart.
    let decoys: Vec<&str> = input
        .decoys
        .iter()
        .map(String::as_str)
        .filter(|d| !d.is_empty() && !d.contains(char::is_whitespace))
        .collect();
    let header = [decoys.as_slice(), &[signature.as_str()], decoys.as_slice()]
        .concat()
        .join(" ");
    let ts = timestamp.to_string();
    let verify = |id: &str, ts: &str, body: &[u8]| {
        secret.verify(Some(id), Some(ts), Some(&header), body, now)
    };
    assert_eq!(verify(id, &ts, body), Ok(()), "a signed message verifies");

    // What a sender attaches (`headers`) is what a receiver accepts (`verify_request`).
    let mut request = TestRequest::default();
    for header in secret.headers(body) {
        request = request.append_header(header);
    }
    assert_eq!(
        verify_request(Some(secret), &request.to_http_request(), body),
        Ok(())
    );

    match input.tamper {
        Tamper::Body => {
            if let Some(tampered) = flip(body, input.tamper_at, input.tamper_xor) {
                assert_eq!(verify(id, &ts, &tampered), Err(WebhookError::BadSignature));
            }
        }
        Tamper::Id => {
            let tampered = flip(id.as_bytes(), input.tamper_at, input.tamper_xor)
                .and_then(|bytes| String::from_utf8(bytes).ok());
            if let Some(tampered) = tampered {
                assert_eq!(
                    verify(&tampered, &ts, body),
                    Err(WebhookError::BadSignature)
                );
            }
        }
        Tamper::Timestamp => {
            let tampered = flip(ts.as_bytes(), input.tamper_at, input.tamper_xor)
                .and_then(|bytes| String::from_utf8(bytes).ok());
            if let Some(tampered) = tampered {
                // A changed timestamp may also be unparseable or stale; it never verifies.
                assert!(
                    verify(id, &tampered, body).is_err(),
                    "timestamp {tampered:?}"
                );
            }
        }
    }
}

/// `bytes` with the byte at `at` (modulo the length) XORed with `xor`, or `None` when
/// nothing would change.
fn flip(bytes: &[u8], at: usize, xor: u8) -> Option<Vec<u8>> {
    if bytes.is_empty() || xor == 0 {
        return None;
    }
    let mut changed = bytes.to_vec();
    changed[at % bytes.len()] ^= xor;
    Some(changed)
}
