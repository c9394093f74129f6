//! problem+json on every error path (RFC 9457): the errors services return, actix's
//! own extractor errors, unknown routes, wrong methods and anything else that would
//! otherwise leave with an empty or plain-text body.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use pixpress_domain::problem::PROBLEM_CONTENT_TYPE;
use pixpress_domain::Problem;

use crate::openapi::AllowedMethods;

/// Where every pixpress problem `type` lives: `{PROBLEM_TYPE_BASE}{code}`.
pub const PROBLEM_TYPE_BASE: &str = "https://pixpress.dev/problems/";

/// An error answered as problem+json. Services build their own error enums (see
/// [`ServiceError`]) and turn them into this at the HTTP edge.
#[derive(Debug, Clone)]
pub struct ApiError {
    problem: Box<Problem>,
    retry_after_secs: Option<u64>,
    www_authenticate: bool,
}

impl ApiError {
    /// A problem of type `https://pixpress.dev/problems/{code}`, titled after the
    /// status. `code` is stable and machine-readable (kebab-case, e.g.
    /// `file-not-ready`), so clients can tell apart two problems of one status.
    pub fn new(code: &str, status: StatusCode, detail: impl Into<String>) -> Self {
        let title = status.canonical_reason().unwrap_or("Error");
        Self::from(Problem::typed(code, status.as_u16(), title, detail))
    }

    /// 500 with a generic detail: the cause belongs in the log, not in the response.
    pub fn internal() -> Self {
        Self::new(
            "internal-error",
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

/// A service's error enum: one variant per way a request can fail, each documenting
/// the status it maps to (`services/print/src/error.rs` is the model). `Display` is
/// what the client reads for client errors; for server errors the client gets the
/// problem's detail and the log gets `Display` and the error's sources.
pub trait ServiceError: std::error::Error {
    /// The problem this error answers with: a stable code, the status, the detail.
    fn api_error(&self) -> ApiError;
}

/// The response of a [`ServiceError`]: what a service's `ResponseError::error_response`
/// returns. A server error (5xx) that carries a cause (a `source`: a database or
/// storage failure) is logged here with the chain of causes, once; one without
/// (a busy printer, an unreachable backend already logged where it was called) is not.
pub fn respond(err: &impl ServiceError) -> HttpResponse {
    let api = err.api_error();
    if err.source().is_some() && api.status_code().is_server_error() {
        // Many errors' messages already name their cause: add a cause only when the
        // line does not say it yet.
        let mut cause = err.to_string();
        let mut source = err.source();
        while let Some(inner) = source {
            let text = inner.to_string();
            if !cause.contains(&text) {
                cause.push_str(": ");
                cause.push_str(&text);
            }
            source = inner.source();
        }
        log::error!("{} ({}): {cause}", api.problem.kind, api.problem.status);
    }
    api.error_response()
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
                    "body-too-large",
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the request body is larger than {limit} bytes"),
                ),
                E::ContentType => ApiError::new(
                    "unsupported-media-type",
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "the request body must be application/json",
                ),
                E::Deserialize(e) => invalid_json(e),
                other => invalid_json(other),
            };
            api.into()
        })
}

/// 400 for a body that is not the JSON the route takes.
pub fn invalid_json(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        "invalid-json",
        StatusCode::BAD_REQUEST,
        format!("invalid JSON body: {err}"),
    )
}

/// A path segment that does not parse (`/print/jobs/not-a-uuid`) names no resource: 404.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| {
        ApiError::new(
            "not-found",
            StatusCode::NOT_FOUND,
            format!("no such resource: {err}"),
        )
        .into()
    })
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        ApiError::new(
            "invalid-query",
            StatusCode::BAD_REQUEST,
            format!("invalid query string: {err}"),
        )
        .into()
    })
}

/// The default service: unknown routes are problem+json 404s.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::new(
        "no-route",
        StatusCode::NOT_FOUND,
        format!("no route for {} {}", req.method(), req.path()),
    )
    .error_response()
}

/// A resource whose unsupported methods answer 405 with `Allow` (without this, the
/// app's default service would answer 404 for them).
pub fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

fn method_not_allowed_error(req: &HttpRequest) -> ApiError {
    ApiError::new(
        "method-not-allowed",
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}", req.method(), req.path()),
    )
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let mut res = method_not_allowed_error(&req).error_response();
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
        _ if status == StatusCode::METHOD_NOT_ALLOWED => {
            method_not_allowed_error(res.request()).problem.detail
        }
        _ => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned(),
    };
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body-too-large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        s if s.is_server_error() => "internal-error",
        _ => "bad-request",
    };
    let (req, old) = res.into_parts();
    let mut new = ApiError::new(code, status, detail).error_response();
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().append(name.clone(), value.clone());
        }
    }
    let res = ServiceResponse::new(req, new).map_body(|_, body| EitherBody::right(body));
    Ok(ErrorHandlerResponse::Response(res))
}
