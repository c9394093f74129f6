//! How printer-sim gets a job's image, as a real printer does before it prints: a
//! `GET` of the job's `image_url`, following redirects (download-service's
//! `/images/{id}/original` answers 302 to a presigned S3 link; the service's one
//! client follows reqwest's default of at most 10), within `PRINTER_FETCH_TIMEOUT_MS`
//! per attempt and never reading more than `PRINTER_MAX_IMAGE_BYTES`.
//!
//! A connection that fails, a timeout, a 5xx, 408 or 429 is tried again
//! ([`FETCH_ATTEMPTS`] attempts in all, with backoff); any other answer, a body over
//! the cap, or bytes that are not an image end the job at once. What the printer got
//! is then checked and summed up: its size and SHA-256, shown by `GET /jobs`.
//!
//! The check reads the image's header only (`into_dimensions`), not its pixels: a full
//! decode of a 12 MP photo costs ~100 ms of CPU per job, and the benchmarks run
//! printer-sim on the same two cores as the services they measure. So a file whose
//! header is sound but whose data is cut short passes; one that is not a JPEG, PNG,
//! GIF or WebP at all does not. The digest and the check run on the blocking pool.
//!
//! The URL is trusted, unlike download-service's user-supplied ones: it comes from
//! print-service, so no address is refused here.

use std::error::Error as StdError;
use std::io::Cursor;
use std::time::Duration;

use pixpress_domain::printer::{IMAGE_UNDECODABLE, IMAGE_UNREACHABLE};
use pixpress_kit::client::is_transient;
use pixpress_kit::retry::Backoff;
use prometheus::IntCounterVec;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Attempts at fetching one image, the first included, while failures are transient.
pub const FETCH_ATTEMPTS: u32 = 3;
/// Between attempts.
const FETCH_RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));

/// What the printer fetched for a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedImage {
    /// Its size in bytes.
    pub bytes: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

/// Why a job's image did not reach the printer. Each ends the job `failed` with the
/// [`FetchError::reason`] named in its doc; why exactly goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// `image_unreachable`; transient for 5xx, 408 and 429: the image host (after
    /// redirects) answered something other than 2xx.
    #[error("the image host answered {0}")]
    Status(reqwest::StatusCode),
    /// `image_unreachable`: the body is larger than `PRINTER_MAX_IMAGE_BYTES`.
    #[error("the image is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// `image_unreachable`, transient: no whole answer within the fetch timeout.
    #[error("the image did not arrive within {0:?}")]
    TimedOut(Duration),
    /// `image_unreachable`: a redirect that cannot be followed (too many, or to no
    /// usable URL) or a URL that cannot be requested.
    #[error("the image URL cannot be followed: {}", causes(.0))]
    Unfollowable(#[source] reqwest::Error),
    /// `image_unreachable`, transient: the connection failed or broke mid-way.
    #[error("the image host cannot be reached: {}", causes(.0))]
    Transport(#[source] reqwest::Error),
    /// `image_undecodable`: the bytes are not an image this printer reads.
    #[error("the bytes fetched are not an image: {0}")]
    Undecodable(#[source] image::ImageError),
    /// `image_undecodable`: checking the image panicked (a decoder bug on hostile
    /// bytes).
    #[error("checking the image panicked: {0}")]
    Panicked(String),
}

impl FetchError {
    /// The stable reason the job fails with.
    pub fn reason(&self) -> &'static str {
        match self {
            FetchError::Undecodable(_) | FetchError::Panicked(_) => IMAGE_UNDECODABLE,
            _ => IMAGE_UNREACHABLE,
        }
    }

    /// Whether the same request may succeed a moment later.
    fn is_transient(&self) -> bool {
        match self {
            FetchError::Status(status) => is_transient(*status),
            FetchError::TimedOut(_) | FetchError::Transport(_) => true,
            _ => false,
        }
    }

    /// The `outcome` label of the fetch counter.
    fn outcome(&self) -> &'static str {
        match self.reason() {
            IMAGE_UNDECODABLE => "undecodable",
            _ => "unreachable",
        }
    }

    fn from_reqwest(error: reqwest::Error, timeout: Duration) -> Self {
        if error.is_timeout() {
            FetchError::TimedOut(timeout)
        } else if error.is_redirect() || error.is_builder() {
            FetchError::Unfollowable(error)
        } else {
            FetchError::Transport(error)
        }
    }
}

/// Fetches and checks jobs' images. Shares the printer's HTTP client.
pub struct ImageFetcher {
    http: reqwest::Client,
    max_bytes: u64,
    timeout: Duration,
    /// `image_fetches_total{outcome="ok|unreachable|undecodable"}`, once per job.
    fetches: IntCounterVec,
}

impl ImageFetcher {
    pub fn new(
        http: reqwest::Client,
        max_bytes: u64,
        timeout: Duration,
        fetches: IntCounterVec,
    ) -> Self {
        Self {
            http,
            max_bytes,
            timeout,
            fetches,
        }
    }

    /// Fetches job `job`'s image from `url`, retrying transient failures, and checks
    /// that it is an image.
    pub async fn fetch(&self, job: Uuid, url: &str) -> Result<FetchedImage, FetchError> {
        let result = match self.download_retrying(job, url).await {
            Ok(bytes) => inspect(bytes).await,
            Err(e) => Err(e),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        self.fetches.with_label_values(&[outcome]).inc();
        result
    }

    async fn download_retrying(&self, job: Uuid, url: &str) -> Result<Vec<u8>, FetchError> {
        let mut failures = 0;
        loop {
            match self.download(url).await {
                Ok(bytes) => return Ok(bytes),
                Err(e) if e.is_transient() && failures + 1 < FETCH_ATTEMPTS => {
                    failures += 1;
                    let delay = FETCH_RETRY.jittered(failures);
                    log::info!("image of job {job}: {e}; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One attempt: the whole body, or why not.
    async fn download(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let reqwest_error = |e| FetchError::from_reqwest(e, self.timeout);
        let mut response = self
            .http
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(reqwest_error)?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status(status));
        }
        let too_large = FetchError::TooLarge {
            limit: self.max_bytes,
        };
        let declared = response.content_length();
        if declared.is_some_and(|length| length > self.max_bytes) {
            return Err(too_large);
        }
        // At most max_bytes, checked above.
        let mut bytes =
            Vec::with_capacity(declared.and_then(|n| usize::try_from(n).ok()).unwrap_or(0));
        while let Some(chunk) = response.chunk().await.map_err(reqwest_error)? {
            if bytes.len() as u64 + chunk.len() as u64 > self.max_bytes {
                // Dropping the response closes the connection mid-body.
                return Err(too_large);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

/// Checks that `bytes` are an image (its header) and sums them up, on the blocking
/// pool: hashing 12 MB takes tens of milliseconds.
async fn inspect(bytes: Vec<u8>) -> Result<FetchedImage, FetchError> {
    let checked = tokio::task::spawn_blocking(move || {
        let (width, height) = image::ImageReader::new(Cursor::new(&bytes))
            .with_guessed_format()
            .map_err(image::ImageError::IoError)?
            .into_dimensions()?;
        log::debug!("fetched a {width}×{height} image of {} bytes", bytes.len());
        Ok(FetchedImage {
            bytes: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
        })
    })
    .await;
    match checked {
        Ok(result) => result.map_err(FetchError::Undecodable),
        Err(e) => Err(FetchError::Panicked(e.to_string())),
    }
}

/// "error: cause: root cause": reqwest's own message leaves the causes out.
fn causes(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}
