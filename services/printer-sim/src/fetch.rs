//! How printer-sim gets a job's image, as a real printer does before it prints: the
//! kit's [`pixpress_kit::fetch`] brings the bytes (redirects followed, within
//! `PRINTER_FETCH_TIMEOUT_MS` per attempt, never more than `PRINTER_MAX_IMAGE_BYTES`,
//! [`FETCH_ATTEMPTS`] attempts while failures are transient); a job whose image does
//! not arrive fails `image_unreachable`. What is printer-sim's own is here: the bytes
//! must be an image (else `image_undecodable`), they are summed up (size and SHA-256,
//! shown by `GET /jobs`), and each job's fetch is counted.
//!
//! The check reads the image's header only (`into_dimensions`), not its pixels: a full
//! decode of a 12 MP photo costs ~100 ms of CPU per job, and the benchmarks run
//! printer-sim on the same two cores as the services they measure. So a file whose
//! header is sound but whose data is cut short passes; one that is not a JPEG, PNG,
//! GIF or WebP at all does not. The digest and the check run on the blocking pool.

use std::io::Cursor;
use std::time::Duration;

use pixpress_domain::printer::IMAGE_UNDECODABLE;
use pixpress_kit::fetch::{self, fetch_bounded, FetchLimits};
use pixpress_kit::retry::Backoff;
use prometheus::IntCounterVec;
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
    /// `image_unreachable`: the image did not arrive (see the kit's error).
    #[error(transparent)]
    Unreachable(#[from] fetch::FetchError),
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
            FetchError::Unreachable(e) => e.reason(),
            FetchError::Undecodable(_) | FetchError::Panicked(_) => IMAGE_UNDECODABLE,
        }
    }

    /// The `outcome` label of the fetch counter.
    fn outcome(&self) -> &'static str {
        match self {
            FetchError::Unreachable(_) => "unreachable",
            FetchError::Undecodable(_) | FetchError::Panicked(_) => "undecodable",
        }
    }
}

/// Fetches and checks jobs' images. Shares the printer's HTTP client.
pub struct ImageFetcher {
    http: reqwest::Client,
    limits: FetchLimits,
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
            limits: FetchLimits {
                max_bytes,
                timeout,
                attempts: FETCH_ATTEMPTS,
                backoff: FETCH_RETRY,
            },
            fetches,
        }
    }

    /// Fetches job `job`'s image from `url`, retrying transient failures, and checks
    /// that it is an image.
    pub async fn fetch(&self, job: Uuid, url: &str) -> Result<FetchedImage, FetchError> {
        let result = match fetch_bounded(&self.http, url, &self.limits).await {
            Ok(bytes) => inspect(job, bytes).await,
            Err(e) => Err(e.into()),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        self.fetches.with_label_values(&[outcome]).inc();
        result
    }
}

/// Checks that `bytes` are an image (its header) and sums them up, on the blocking
/// pool: hashing 12 MB takes tens of milliseconds.
async fn inspect(job: Uuid, bytes: Vec<u8>) -> Result<FetchedImage, FetchError> {
    let checked = tokio::task::spawn_blocking(move || {
        let (width, height) = image::ImageReader::new(Cursor::new(&bytes))
            .with_guessed_format()
            .map_err(image::ImageError::IoError)?
            .into_dimensions()?;
        log::debug!(
            "job {job}: fetched a {width}×{height} image of {} bytes",
            bytes.len()
        );
        Ok(FetchedImage {
            bytes: bytes.len() as u64,
            sha256: fetch::sha256_hex(&bytes),
        })
    })
    .await;
    match checked {
        Ok(result) => result.map_err(FetchError::Undecodable),
        Err(e) => Err(FetchError::Panicked(e.to_string())),
    }
}
