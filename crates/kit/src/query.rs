//! `ValidQuery<T>`: a query string parsed and validated like a JSON body
//! (`crate::json::ValidJson`), so a list endpoint reports bad fields exactly as a
//! body does: 400 `validation-error` naming each field that does not parse or
//! validate.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use validator::Validate;

use crate::json::invalid_field;
use crate::ApiError;

/// A parsed, validated query string.
#[derive(Debug)]
pub struct ValidQuery<T>(pub T);

impl<T> ValidQuery<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// Parses a query string as `T` and validates it.
pub fn parse<T: DeserializeOwned + Validate>(query: &str) -> Result<T, ApiError> {
    let pairs = form_urlencoded::parse(query.as_bytes());
    let value: T = serde_path_to_error::deserialize(serde_urlencoded::Deserializer::new(pairs))
        .map_err(|err| {
            let path = err.path().to_string();
            let message = err.into_inner().to_string();
            // A missing or unknown parameter is reported at the top: name it.
            let field = match message.split('`').nth(1) {
                Some(name) if path == "." || path.is_empty() => name.to_owned(),
                _ => path,
            };
            invalid_field(field, message)
        })?;
    value.validate()?;
    Ok(value)
}

impl<T: DeserializeOwned + Validate> FromRequest for ValidQuery<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse(req.query_string()).map(ValidQuery))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, Validate)]
    struct Page {
        #[validate(range(min = 1, max = 100))]
        limit: Option<i64>,
        state: Option<String>,
    }

    #[test]
    fn a_field_that_does_not_parse_is_named() {
        let err = parse::<Page>("limit=ten").unwrap_err();
        let problem = err.problem();
        assert_eq!(problem.status, 400);
        assert!(problem.kind.ends_with("/validation-error"));
        assert_eq!(problem.errors[0].field, "limit");
    }

    #[test]
    fn a_field_out_of_range_is_named_as_in_a_body() {
        let err = parse::<Page>("limit=0&state=queued").unwrap_err();
        assert_eq!(err.problem().errors[0].field, "limit");
        assert!(err.problem().kind.ends_with("/validation-error"));
    }

    #[test]
    fn a_good_query_parses() {
        let page = parse::<Page>("limit=5&state=queued").unwrap();
        assert_eq!(page.limit, Some(5));
        assert_eq!(page.state.as_deref(), Some("queued"));
    }
}
