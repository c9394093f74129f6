//! Wire types of the management API (management-api, a mock of another team's
//! service): users' images, the print authorization lookup, the printer registry.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::{Validate, ValidationError};

/// Where an image is in its download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageStatus {
    Pending,
    Ready,
    Failed,
}

/// A user's image record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Image {
    /// The file id print jobs refer to.
    pub id: i64,
    pub user_id: i64,
    /// The URL the user gave.
    pub url: String,
    pub status: ImageStatus,
    /// Where the stored original can be fetched (once `ready`).
    pub original_url: Option<String>,
    /// Where the thumbnail can be fetched (once `ready`).
    pub thumbnail_url: Option<String>,
    /// Why the download failed (a stable code), when it did.
    pub error: Option<String>,
}

/// `POST /users/{user_id}/images` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateImage {
    /// http(s) URL of the image, at most 2048 characters.
    #[validate(length(max = 2048), custom(function = "http_url"))]
    pub url: String,
    /// Test and development shortcut: record the image as `ready` at once, with
    /// `original_url` = `url`, instead of downloading it.
    #[serde(default)]
    pub ready: bool,
}

/// `GET /lookup` query.
#[derive(Debug, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LookupQuery {
    pub user_id: i64,
    pub file_id: i64,
}

/// `GET /lookup` answer: the user may print this file, here is where it is and
/// which printer takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Lookup {
    pub file_id: i64,
    /// Where a printer can fetch the original.
    pub image_url: String,
    pub printer_id: i64,
    pub printer_url: String,
}

/// A registered printer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Printer {
    pub id: i64,
    pub url: String,
}

/// `PUT /printers/{id}` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPrinter {
    #[validate(length(max = 2048), custom(function = "http_url"))]
    pub url: String,
}

/// An absolute http:// or https:// URL with a host.
pub fn http_url(value: &str) -> Result<(), ValidationError> {
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"));
    match rest {
        Some(rest)
            if !rest.is_empty()
                && !rest.starts_with('/')
                && !rest.contains(char::is_whitespace) =>
        {
            Ok(())
        }
        _ => Err(ValidationError::new("url")
            .with_message("must be an absolute http:// or https:// URL".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_http_urls_are_accepted() {
        assert!(http_url("http://example.com/a.jpg").is_ok());
        assert!(http_url("https://127.0.0.1:8080/x").is_ok());
        for bad in [
            "ftp://x/y",
            "file:///etc/passwd",
            "http://",
            "example.com",
            "http:///x",
            "http://a b",
        ] {
            assert!(http_url(bad).is_err(), "{bad}");
        }
    }
}
