//! Every way a print-service request can fail, and the status each maps to.
//! Causes from backends are logged where they happen; responses say only what the
//! client can act on.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use pixpress_domain::JobState;
use pixpress_kit::db::DbError;
use pixpress_kit::gate::GateSaturated;
use pixpress_kit::webhook::CallbackRefused;
use pixpress_kit::{ApiError, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    /// 400: the request is malformed (query parameters, cursor).
    #[error("{0}")]
    BadRequest(String),
    /// 404: no such job.
    #[error("no such print job")]
    JobNotFound,
    /// 404: the management API knows no such file.
    #[error("no such file")]
    FileNotFound,
    /// 403: the file belongs to someone else.
    #[error("the file belongs to another user")]
    Forbidden,
    /// 403: the body names another user than the token.
    #[error("you may only act for yourself: user_id must be the authenticated user")]
    NotYourself,
    /// 409: the image is not downloaded yet.
    #[error("the image is not ready to print yet")]
    FileNotReady,
    /// 404: the management API knows no such printer.
    #[error("no such printer")]
    PrinterNotFound,
    /// 409: the printer asked for is disabled.
    #[error("the printer is disabled and takes no new jobs")]
    PrinterDisabled,
    /// 503: no printer was asked for and none is enabled.
    #[error("no printer is available")]
    NoPrinter,
    /// 403: only an admin may do this.
    #[error("this needs the admin role")]
    AdminOnly,
    /// 409: only failed jobs can be retried.
    #[error("a {0} job cannot be retried; only failed jobs can")]
    NotFailed(JobState),
    /// 409: only queued jobs can be canceled.
    #[error("a {0} job cannot be canceled")]
    NotCancelable(JobState),
    /// 409: a dispatcher is handing the job to its printer.
    #[error("the job is being sent to its printer and can no longer be canceled")]
    BeingDispatched,
    /// 401 (bad signature) or 400 (bad body): a printer callback refused before
    /// its handler ran.
    #[error(transparent)]
    Callback(#[from] CallbackRefused),
    /// 409: the state machine forbids this move.
    #[error("a {0} job cannot become {1}")]
    IllegalTransition(JobState, JobState),
    /// 422: the Idempotency-Key was used with a different body.
    #[error("this Idempotency-Key was used with a different request body")]
    IdempotencyKeyReused,
    /// 429: no backend permit free.
    #[error(transparent)]
    Saturated(#[from] GateSaturated),
    /// 504: the management API did not answer in time.
    #[error("the management API did not answer in time")]
    ManagementTimeout,
    /// 502: the management API answered something unusable (5xx, garbage).
    #[error("the management API answered unexpectedly")]
    ManagementBadAnswer,
    /// 503: the management API could not be reached.
    #[error("the management API is unreachable")]
    ManagementUnreachable,
    /// 503: the database is unavailable.
    #[error(transparent)]
    Database(#[from] DbError),
}

impl ServiceError for PrintError {
    fn api_error(&self) -> ApiError {
        use PrintError::*;
        let (code, status) = match self {
            BadRequest(_) => ("bad-request", StatusCode::BAD_REQUEST),
            JobNotFound => ("job-not-found", StatusCode::NOT_FOUND),
            FileNotFound => ("file-not-found", StatusCode::NOT_FOUND),
            Forbidden => ("not-file-owner", StatusCode::FORBIDDEN),
            NotYourself => ("not-yourself", StatusCode::FORBIDDEN),
            AdminOnly => ("admin-only", StatusCode::FORBIDDEN),
            NotFailed(_) => ("not-failed", StatusCode::CONFLICT),
            FileNotReady => ("file-not-ready", StatusCode::CONFLICT),
            PrinterNotFound => ("printer-not-found", StatusCode::NOT_FOUND),
            PrinterDisabled => ("printer-disabled", StatusCode::CONFLICT),
            NoPrinter => ("no-printer", StatusCode::SERVICE_UNAVAILABLE),
            NotCancelable(_) => ("not-cancelable", StatusCode::CONFLICT),
            BeingDispatched => ("being-dispatched", StatusCode::CONFLICT),
            IllegalTransition(..) => ("illegal-transition", StatusCode::CONFLICT),
            IdempotencyKeyReused => ("idempotency-key-reused", StatusCode::UNPROCESSABLE_ENTITY),
            ManagementTimeout => ("management-timeout", StatusCode::GATEWAY_TIMEOUT),
            ManagementBadAnswer => ("management-bad-answer", StatusCode::BAD_GATEWAY),
            ManagementUnreachable => ("management-unreachable", StatusCode::SERVICE_UNAVAILABLE),
            Callback(e) => return e.api_error(),
            Saturated(e) => return e.api_error(),
            Database(e) => return e.api_error(),
        };
        let api = ApiError::new(code, status, self.to_string());
        match self {
            ManagementUnreachable | ManagementBadAnswer | ManagementTimeout => api.retry_after(1),
            NoPrinter => api.retry_after(30),
            _ => api,
        }
    }
}

impl ResponseError for PrintError {
    fn error_response(&self) -> HttpResponse {
        pixpress_kit::problem::respond(self)
    }
}
