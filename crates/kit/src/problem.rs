//! problem+json on every error path (RFC 9457): the errors services return, actix's
//! own extractor errors, unknown routes, wrong methods and anything else that would
//! otherwise leave with an empty or plain-text body.

use std::collections::HashMap;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use pixpress_domain::problem::PROBLEM_CONTENT_TYPE;
use pixpress_domain::Problem;

/// An error answered as problem+json. Services build their own error enums and turn
/// them into this at the HTTP edge.
#[derive(Debug, Clone)]
pub struct ApiError {
    problem: Box<Problem>,
    retry_after_secs: Option<u64>,
    www_authenticate: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        let title = status.canonical_reason().unwrap_or("Error");
        Self::from(Problem::new(status.as_u16(), title, detail))
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, detail)
    }
    /// 500 with a generic detail: the cause belongs in the log, not in the response.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the server failed to handle the request; it has been logged",
        )
    }

    /// Adds `Retry-After` (seconds) to the response.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// Adds `WWW-Authenticate: Bearer` (for 401s).
    pub fn bearer_challenge(mut self) -> Self {
        self.www_authenticate = true;
        self
    }

    pub fn problem(&self) -> &Problem {
        &self.problem
    }
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        Self {
            problem: Box::new(problem),
            retry_after_secs: None,
            www_authenticate: false,
        }
    }
}

impl From<validator::ValidationErrors> for ApiError {
    fn from(errors: validator::ValidationErrors) -> Self {
        Problem::from_validation(&errors).into()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.problem.status, self.problem.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        res.content_type(PROBLEM_CONTENT_TYPE);
        if let Some(secs) = self.retry_after_secs {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if self.www_authenticate {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        // Serializing a struct of strings and integers cannot fail.
        res.body(serde_json::to_vec(&*self.problem).unwrap_or_default())
    }
}

/// Bad JSON bodies: 400 with serde's message, 413 over the limit, 415 for a
/// non-JSON content type.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |err, _req| {
            use actix_web::error::JsonPayloadError as E;
            let api = match &err {
                E::OverflowKnownLength { .. } | E::Overflow { .. } => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the request body is larger than {limit} bytes"),
                ),
                E::ContentType => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "the request body must be application/json",
                ),
                E::Deserialize(e) => ApiError::bad_request(format!("invalid JSON body: {e}")),
                other => ApiError::bad_request(format!("invalid JSON body: {other}")),
            };
            api.into()
        })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|err, _req| ApiError::not_found(format!("no such resource: {err}")).into())
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        ApiError::bad_request(format!("invalid query string: {err}")).into()
    })
}

/// The default service: unknown routes are problem+json 404s.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::not_found(format!("no route for {} {}", req.method(), req.path())).error_response()
}

/// A resource whose unsupported methods answer 405 with `Allow` (without this, the
/// app's default service would answer 404 for them).
pub fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

/// The methods each route pattern serves, read from the service's OpenAPI document:
/// what a 405 names in its `Allow` header (RFC 9110 §15.5.6). App data.
#[derive(Debug, Clone, Default)]
pub struct AllowedMethods {
    by_pattern: HashMap<String, String>,
}

impl AllowedMethods {
    /// The operations of an OpenAPI document, by path template (`/print/jobs/{id}`,
    /// the same spelling as actix's route patterns).
    pub fn from_openapi(document: &serde_json::Value) -> Self {
        const METHODS: [&str; 8] = [
            "get", "put", "post", "delete", "options", "head", "patch", "trace",
        ];
        let by_pattern = document
            .get("paths")
            .and_then(|paths| paths.as_object())
            .into_iter()
            .flatten()
            .map(|(path, item)| {
                let methods: Vec<String> = METHODS
                    .iter()
                    .filter(|m| item.get(**m).is_some())
                    .map(|m| m.to_ascii_uppercase())
                    .collect();
                (path.clone(), methods.join(", "))
            })
            .filter(|(_, methods)| !methods.is_empty())
            .collect();
        Self { by_pattern }
    }

    /// The `Allow` value of a route pattern, when the document has the route.
    pub fn for_pattern(&self, pattern: &str) -> Option<&str> {
        self.by_pattern.get(pattern).map(String::as_str)
    }
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let mut res = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}", req.method(), req.path()),
    )
    .error_response();
    let allow = req
        .app_data::<web::Data<AllowedMethods>>()
        .zip(req.match_pattern())
        .and_then(|(allowed, pattern)| allowed.for_pattern(&pattern).map(str::to_owned))
        .and_then(|allow| header::HeaderValue::from_str(&allow).ok());
    match allow {
        Some(allow) => {
            res.headers_mut().insert(header::ALLOW, allow);
        }
        None => log::warn!(
            "{} {}: the OpenAPI document has no operations for this route",
            req.method(),
            req.path()
        ),
    }
    res
}

/// Rewrites any error response that is not problem+json yet (actix's 405, payload
/// errors, panics caught as 500…) into one, keeping its status and headers.
pub fn error_handlers<B: MessageBody + 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(to_problem)
}

fn to_problem<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(PROBLEM_CONTENT_TYPE.as_bytes()));
    if is_problem {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    // Client errors may say what actix objected to; server errors say nothing.
    let detail = match res.response().error() {
        Some(err) if status.is_client_error() => err.to_string(),
        _ if status == StatusCode::METHOD_NOT_ALLOWED => format!(
            "{} is not allowed on {}",
            res.request().method(),
            res.request().path()
        ),
        _ => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned(),
    };
    let (req, old) = res.into_parts();
    let mut new = ApiError::new(status, detail).error_response();
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().append(name.clone(), value.clone());
        }
    }
    let res = ServiceResponse::new(req, new).map_body(|_, body| EitherBody::right(body));
    Ok(ErrorHandlerResponse::Response(res))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_the_documented_methods_of_each_route() {
        let document = serde_json::json!({"paths": {
            "/print/jobs": {"get": {}, "post": {}, "parameters": []},
            "/print/jobs/{id}": {"get": {}},
            "/empty": {},
        }});
        let allowed = AllowedMethods::from_openapi(&document);
        assert_eq!(allowed.for_pattern("/print/jobs"), Some("GET, POST"));
        assert_eq!(allowed.for_pattern("/print/jobs/{id}"), Some("GET"));
        assert_eq!(allowed.for_pattern("/empty"), None);
        assert_eq!(allowed.for_pattern("/unknown"), None);
    }
}
