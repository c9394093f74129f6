//! Wire types of download-service: download tasks, their states and the stable
//! failure codes clients and the management API act on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use crate::management::{http_url, http_url_schema, optional_http_url_schema};

/// Where a download task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DownloadState {
    Queued,
    Running,
    Completed,
    Failed,
}

impl DownloadState {
    pub fn as_str(self) -> &'static str {
        match self {
            DownloadState::Queued => "queued",
            DownloadState::Running => "running",
            DownloadState::Completed => "completed",
            DownloadState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Completed, Self::Failed]
            .into_iter()
            .find(|state| state.as_str() == s)
    }
}

/// Why a download failed: stable codes, part of the API (DESIGN.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// The body is larger than `DOWNLOAD_MAX_BYTES`.
    TooLarge,
    /// The bytes are not a JPEG, PNG, WebP or GIF.
    NotAnImage,
    /// The host could not be resolved or connected to.
    Unreachable,
    /// The server answered a non-success status.
    HttpStatus,
    /// The URL (or a redirect) leads to a loopback, private or otherwise internal address.
    ForbiddenAddress,
    /// The image could not be decoded, or exceeds the pixel limits.
    DecodeFailed,
    /// The objects could not be stored.
    StorageFailed,
    /// The download took longer than `DOWNLOAD_TIMEOUT_MS`.
    Timeout,
}

impl FailureReason {
    pub const ALL: [FailureReason; 8] = [
        FailureReason::TooLarge,
        FailureReason::NotAnImage,
        FailureReason::Unreachable,
        FailureReason::HttpStatus,
        FailureReason::ForbiddenAddress,
        FailureReason::DecodeFailed,
        FailureReason::StorageFailed,
        FailureReason::Timeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::TooLarge => "too_large",
            FailureReason::NotAnImage => "not_an_image",
            FailureReason::Unreachable => "unreachable",
            FailureReason::HttpStatus => "http_status",
            FailureReason::ForbiddenAddress => "forbidden_address",
            FailureReason::DecodeFailed => "decode_failed",
            FailureReason::StorageFailed => "storage_failed",
            FailureReason::Timeout => "timeout",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Worth another attempt later (the same request may succeed), as opposed to a
    /// property of the URL or the bytes.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            FailureReason::Unreachable
                | FailureReason::Timeout
                | FailureReason::StorageFailed
                | FailureReason::HttpStatus
        )
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `POST /downloads` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDownload {
    /// http(s) URL of the image.
    #[validate(length(max = 2048), custom(function = "http_url"))]
    #[schema(schema_with = http_url_schema)]
    pub url: String,
    /// Called (signed, Standard Webhooks, with download-service's `MANAGEMENT_TOKEN`)
    /// with the finished task. Must lie under download-service's `MANAGEMENT_URL`.
    #[validate(length(max = 2048), custom(function = "http_url"))]
    #[schema(schema_with = optional_http_url_schema)]
    pub callback_url: Option<String>,
}

/// A download task as clients see it; also the body of the completion callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DownloadTask {
    pub id: Uuid,
    pub url: String,
    pub state: DownloadState,
    /// A [`FailureReason`] code when `failed`.
    pub error: Option<String>,
    /// The sniffed format, e.g. `image/jpeg`.
    pub content_type: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub bytes: Option<i64>,
    pub original_key: Option<String>,
    pub thumbnail_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_codes_are_the_documented_strings() {
        for reason in FailureReason::ALL {
            let json = serde_json::to_value(reason).unwrap();
            assert_eq!(json, reason.as_str());
            assert_eq!(FailureReason::parse(reason.as_str()), Some(reason));
        }
    }
}
