//! RFC 9457 problem details: the one error body every pixpress service answers with.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The media type of every error response.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// An `application/problem+json` body (RFC 9457).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short, human-readable summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, for a human.
    pub detail: String,
    /// For validation failures: one entry per bad field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl Problem {
    /// A problem of type `about:blank`, titled after the status (RFC 9457 §4.2.1).
    pub fn new(status: u16, title: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank".to_owned(),
            title: title.into(),
            status,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// A problem with a project-specific type, e.g. `validation-error`.
    pub fn typed(
        kind: &str,
        status: u16,
        title: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: format!("https://pixpress.dev/problems/{kind}"),
            ..Self::new(status, title, detail)
        }
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    /// Field errors from a `validator` failure, sorted by field for stable output.
    pub fn from_validation(errors: &validator::ValidationErrors) -> Self {
        let mut fields: Vec<FieldError> = errors
            .field_errors()
            .into_iter()
            .flat_map(|(field, errs)| {
                errs.iter().map(move |e| FieldError {
                    field: field.to_string(),
                    message: e
                        .message
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_else(|| e.code.to_string()),
                })
            })
            .collect();
        fields.sort_by(|a, b| a.field.cmp(&b.field));
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        Self::typed(
            "validation-error",
            400,
            "Invalid request",
            format!("invalid field(s): {}", names.join(", ")),
        )
        .with_errors(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_type_field_and_omits_empty_errors() {
        let p = Problem::new(404, "Not Found", "no such job");
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["type"], "about:blank");
        assert_eq!(v["status"], 404);
        assert!(v.get("errors").is_none());
    }
}
