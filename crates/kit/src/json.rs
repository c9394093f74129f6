//! `ValidJson<T>`: a JSON body that is parsed and validated, or a problem+json
//! answer that says exactly what is wrong — 415 for a non-JSON content type, 413
//! above the size limit, 400 naming the field that does not parse or each field
//! that does not validate.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{header, StatusCode};
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest};
use pixpress_domain::{FieldError, Problem};
use serde::de::DeserializeOwned;
use validator::Validate;

use crate::ApiError;

/// A parsed, validated JSON body.
#[derive(Debug)]
pub struct ValidJson<T>(pub T);

impl<T> ValidJson<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Parses `bytes` as `T` and validates it, naming the offending fields on failure.
pub fn parse<T: DeserializeOwned + Validate>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: T = deserialize(bytes)?;
    value.validate()?;
    Ok(value)
}

/// Parses `bytes` as `T`, naming the offending field on failure.
pub fn deserialize<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(de).map_err(|err| {
        let mut path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        // serde reports missing and unknown fields at the parent: name them.
        if message.starts_with("missing field `") || message.starts_with("unknown field `") {
            if let Some(name) = message.split('`').nth(1) {
                path = if path.is_empty() || path == "." {
                    name.to_owned()
                } else {
                    format!("{path}.{name}")
                };
            }
        }
        let names_a_field = inner.classify() == serde_json::error::Category::Data
            && !path.is_empty()
            && path != "."
            && path != "?";
        if !names_a_field {
            crate::problem::invalid_json(inner)
        } else {
            invalid_field(path, message)
        }
    })?;
    Ok(value)
}

/// 400 `validation-error` naming one field: the same problem a body or a query
/// string with a field that does not parse answers with (a field that parses but
/// does not validate names itself through `Problem::from_validation`).
pub fn invalid_field(field: String, message: String) -> ApiError {
    Problem::typed(
        "validation-error",
        400,
        "Invalid request",
        format!("invalid field(s): {field}"),
    )
    .with_errors(vec![FieldError { field, message }])
    .into()
}

impl<T: DeserializeOwned + Validate + 'static> FromRequest for ValidJson<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if !is_json(req) {
            let err = ApiError::new(
                "unsupported-media-type",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the request body must be application/json",
            );
            return Box::pin(async move { Err(err.into()) });
        }
        // Bytes honours the app's PayloadConfig limit (413 above it).
        let body = Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = body.await?;
            Ok(ValidJson(parse::<T>(&bytes)?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pixpress_domain::CreatePrintJob;

    #[test]
    fn a_mistyped_field_is_named() {
        let err = parse::<CreatePrintJob>(br#"{"user_id":"x","file_id":1}"#).unwrap_err();
        assert_eq!(err.problem().status, 400);
        assert_eq!(err.problem().errors[0].field, "user_id");
    }

    #[test]
    fn each_invalid_field_is_named() {
        let err = parse::<CreatePrintJob>(br#"{"user_id":0,"file_id":0,"copies":0}"#).unwrap_err();
        let fields: Vec<_> = err
            .problem()
            .errors
            .iter()
            .map(|e| e.field.as_str())
            .collect();
        assert_eq!(fields, ["copies", "file_id", "user_id"]);
    }

    #[test]
    fn a_missing_field_is_named() {
        let err = parse::<CreatePrintJob>(br#"{"user_id":1}"#).unwrap_err();
        assert_eq!(err.problem().errors[0].field, "file_id");
    }

    #[test]
    fn broken_json_is_a_plain_400() {
        let err = parse::<CreatePrintJob>(b"{").unwrap_err();
        assert_eq!(err.problem().status, 400);
        assert!(err.problem().errors.is_empty());
    }
}
