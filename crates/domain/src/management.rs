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
    #[schema(schema_with = http_url_schema)]
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
    /// Who wants to print.
    #[serde(deserialize_with = "crate::integral::from_text")]
    #[param(minimum = 1)]
    pub user_id: i64,
    /// The image (its id in this API).
    #[serde(deserialize_with = "crate::integral::from_text")]
    #[param(minimum = 1)]
    pub file_id: i64,
    /// The printer the user chose; absent: the default printer (the enabled one with
    /// the lowest id).
    #[serde(default, deserialize_with = "crate::integral::optional_from_text")]
    #[param(minimum = 1)]
    pub printer_id: Option<i64>,
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
    /// Where jobs are sent (the printer protocol, DESIGN.md §3 and §12).
    pub url: String,
    /// A disabled printer takes no new jobs: a lookup naming it answers 409.
    pub enabled: bool,
}

/// `PUT /printers/{id}` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPrinter {
    /// http(s) URL of the printer, at most 2048 characters.
    #[validate(length(max = 2048), custom(function = "http_url"))]
    #[schema(schema_with = http_url_schema)]
    pub url: String,
    /// Whether the printer takes new jobs; default `true`.
    #[serde(default = "enabled")]
    #[schema(default = true)]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

/// What may not appear in a URL: control characters and whitespace (Unicode's
/// `Cc` and `White_Space`), exactly the class [`HTTP_URL_PATTERN`] excludes.
fn forbidden_in_url(c: char) -> bool {
    c.is_control() || c.is_whitespace()
}

/// The JSON Schema `pattern` of [`http_url`]: the same rule, so a fuzzer's valid URL
/// is one the services accept. The class spells out `Cc` ∪ `White_Space`.
pub const HTTP_URL_PATTERN: &str = concat!(
    r"^https?://",
    r"[^/\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
    r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
);

/// An absolute http:// or https:// URL with a host: something after the scheme that
/// does not start with `/`, and no control character or whitespace anywhere.
pub fn http_url(value: &str) -> Result<(), ValidationError> {
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"));
    match rest {
        Some(rest)
            if !rest.is_empty() && !rest.starts_with('/') && !rest.contains(forbidden_in_url) =>
        {
            Ok(())
        }
        _ => Err(ValidationError::new("url")
            .with_message("must be an absolute http:// or https:// URL".into())),
    }
}

fn url_schema(max_length: usize, nullable: bool) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    let schema_type = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::new(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(schema_type)
        .pattern(Some(HTTP_URL_PATTERN))
        .max_length(Some(max_length))
        .examples(["https://example.com/cat.jpg"])
        .description(Some(
            "An absolute http:// or https:// URL without whitespace or control characters",
        ))
        .build()
}

/// Schema of a URL [`http_url`] accepts, at most 2048 characters.
pub fn http_url_schema() -> utoipa::openapi::schema::Object {
    url_schema(2048, false)
}

/// Schema of an optional (`null`able) URL [`http_url`] accepts, at most 2048 characters.
pub fn optional_http_url_schema() -> utoipa::openapi::schema::Object {
    url_schema(2048, true)
}

/// Schema of a URL [`http_url`] accepts, at most 4096 characters.
pub fn long_http_url_schema() -> utoipa::openapi::schema::Object {
    url_schema(4096, false)
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
            "http://a\u{85}b",
            "http://a\u{7f}",
            "http://a\u{3000}",
        ] {
            assert!(http_url(bad).is_err(), "{bad}");
        }
        assert!(http_url("https://example.com/bild-\u{e4}.jpg").is_ok());
    }

    #[test]
    fn the_documented_pattern_excludes_exactly_what_the_validator_refuses() {
        let class: [(u32, u32); 8] = [
            (0x00, 0x20),
            (0x7f, 0xa0),
            (0x1680, 0x1680),
            (0x2000, 0x200a),
            (0x2028, 0x2029),
            (0x202f, 0x202f),
            (0x205f, 0x205f),
            (0x3000, 0x3000),
        ];
        let escape = |c: u32| {
            if c <= 0xff {
                format!("\\x{c:02x}")
            } else {
                format!("\\u{c:04x}")
            }
        };
        let spelled: String = class
            .iter()
            .map(|&(lo, hi)| match hi - lo {
                0 => escape(lo),
                1 => format!("{}{}", escape(lo), escape(hi)),
                _ => format!("{}-{}", escape(lo), escape(hi)),
            })
            .collect();
        assert!(HTTP_URL_PATTERN.contains(&format!("[^/{spelled}][^{spelled}]*$")));
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let in_class = class
                .iter()
                .any(|&(lo, hi)| (lo..=hi).contains(&(c as u32)));
            assert_eq!(forbidden_in_url(c), in_class, "U+{:04X}", c as u32);
        }
    }
}
