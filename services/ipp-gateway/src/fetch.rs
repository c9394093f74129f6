//! Getting a job's image from its `image_url`, as a printer would: redirects
//! followed, the size capped, the whole fetch under a deadline, transient failures
//! (no connection, 5xx, 408, 429, a timeout) retried a few times with backoff. What
//! cannot be fetched ends the job with printer-sim's stable reason
//! `image_unreachable`; the cause goes to the log.
//!
//! It also names what was fetched by its magic bytes: the gateway sends JPEG and
//! PNG as they are and converts nothing.

use std::time::Duration;

use futures_util::StreamExt;
use pixpress_kit::client::is_transient;
use pixpress_kit::retry::Backoff;
use sha2::{Digest, Sha256};

/// The failure reason of a job whose image could not be fetched (printer-sim's).
pub const IMAGE_UNREACHABLE: &str = "image_unreachable";
/// The failure reason of an image no printer is sent (neither JPEG nor PNG), or
/// one its printer does not take (followed by what it takes).
pub const FORMAT_UNSUPPORTED: &str = "format_unsupported";

/// Fetches made of one image before giving up.
const ATTEMPTS: u32 = 4;
const RETRY: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(4));

/// The image types the gateway sends, by their magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Jpeg,
    Png,
}

impl ImageFormat {
    /// What the bytes are, if JPEG (`FF D8 FF`) or PNG (its 8-byte signature).
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ImageFormat::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageFormat::Png)
        } else {
            None
        }
    }

    /// The IPP `document-format` of the type.
    pub fn mime(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Png => "image/png",
        }
    }
}

/// A fetched image.
pub struct Fetched {
    pub bytes: Vec<u8>,
    /// Lowercase hex SHA-256 of `bytes`.
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
enum Attempt {
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Final(String),
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Fetches `url` with `http` (whose timeout bounds each attempt), at most
/// `max_bytes`. `Err` carries why, for the log; the job's reason is
/// [`IMAGE_UNREACHABLE`].
pub async fn fetch(http: &reqwest::Client, url: &str, max_bytes: u64) -> Result<Fetched, String> {
    let mut failures = 0;
    loop {
        match attempt(http, url, max_bytes).await {
            Ok(bytes) => {
                let sha256 = sha256_hex(&bytes);
                return Ok(Fetched { bytes, sha256 });
            }
            Err(Attempt::Final(why)) => return Err(why),
            Err(Attempt::Transient(why)) => {
                failures += 1;
                if failures >= ATTEMPTS {
                    return Err(format!("{why} ({failures} attempts)"));
                }
                log::info!("fetching {url} failed ({why}); retrying");
                tokio::time::sleep(RETRY.jittered(failures)).await;
            }
        }
    }
}

async fn attempt(http: &reqwest::Client, url: &str, max_bytes: u64) -> Result<Vec<u8>, Attempt> {
    let response = http.get(url).send().await.map_err(|e| {
        if e.is_redirect() || e.is_builder() {
            Attempt::Final(format!("cannot follow {url}: {e}"))
        } else {
            Attempt::Transient(format!("cannot fetch {url}: {e}"))
        }
    })?;
    let status = response.status();
    if !status.is_success() {
        let why = format!("{url} answered {status}");
        return Err(if is_transient(status) {
            Attempt::Transient(why)
        } else {
            Attempt::Final(why)
        });
    }
    let too_large = || Attempt::Final(format!("{url} is larger than {max_bytes} bytes"));
    if response.content_length().is_some_and(|n| n > max_bytes) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Attempt::Transient(format!("reading {url} failed: {e}")))?;
        if (body.len() + chunk.len()) as u64 > max_bytes {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_and_png_are_named_by_their_magic_bytes_and_nothing_else_is() {
        assert_eq!(
            ImageFormat::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(ImageFormat::Jpeg)
        );
        assert_eq!(
            ImageFormat::sniff(b"\x89PNG\r\n\x1a\n...."),
            Some(ImageFormat::Png)
        );
        for other in [&b"GIF89a"[..], b"RIFF....WEBP", b"%PDF-1.7", b""] {
            assert_eq!(ImageFormat::sniff(other), None);
        }
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
