//! Getting a job's image from its `image_url`, as a printer would: the kit's
//! [`pixpress_kit::fetch`] brings the bytes (redirects followed, the size capped by
//! `IPP_MAX_IMAGE_BYTES`, each attempt under `IPP_FETCH_TIMEOUT_MS`, transient
//! failures tried again with backoff); what cannot be fetched ends the job with the
//! stable reason `image_unreachable`, the cause goes to the log.
//!
//! What is the gateway's own is here: how often it tries, and naming what was
//! fetched by its magic bytes. The gateway sends JPEG and PNG as they are and
//! converts nothing.

use std::time::Duration;

use pixpress_kit::fetch::FetchLimits;
use pixpress_kit::retry::Backoff;

/// The failure reason of an image no printer is sent (neither JPEG nor PNG), or
/// one its printer does not take (followed by what it takes).
pub const FORMAT_UNSUPPORTED: &str = "format_unsupported";

/// Fetches made of one image before giving up.
const ATTEMPTS: u32 = 4;
const RETRY: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(4));

/// The gateway's limits on fetching one image: at most `max_bytes`, each attempt
/// within `timeout`.
pub fn limits(max_bytes: u64, timeout: Duration) -> FetchLimits {
    FetchLimits {
        max_bytes,
        timeout,
        attempts: ATTEMPTS,
        backoff: RETRY,
    }
}

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
    }
}
