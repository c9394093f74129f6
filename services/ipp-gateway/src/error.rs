//! Every way ipp-gateway refuses a request, the status each maps to and its stable
//! code (the problem `type` is `https://pixpress.dev/problems/{code}`). A job the
//! journal cannot record is "not now": the sender keeps it and tries again after
//! `Retry-After`. Bodies that do not parse or validate are answered 400 by the kit's
//! `ValidJson`. What happens to a job at its printer is never an HTTP error: it is
//! reported by callback and by the job's status.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use pixpress_kit::journal::JournalError;
use pixpress_kit::{ApiError, ServiceError};

/// Seconds a refused sender waits before trying again.
const RETRY_AFTER_SECS: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// 404 `printer-not-found`: no printer of that name is configured.
    #[error("no printer named `{0}` is configured")]
    UnknownPrinter(String),
    /// 404 `job-not-found`: the gateway knows no job with that correlation id.
    #[error("this printer knows no job with that correlation id")]
    UnknownJob,
    /// 503 `journal-unavailable` + Retry-After: the journal cannot record the job
    /// (it is being read at start, or its disk failed). Why goes to the log.
    #[error("the gateway cannot take jobs right now; retry later")]
    JournalUnavailable(#[source] JournalError),
}

impl ServiceError for GatewayError {
    fn api_error(&self) -> ApiError {
        let (code, status) = match self {
            GatewayError::UnknownPrinter(_) => ("printer-not-found", StatusCode::NOT_FOUND),
            GatewayError::UnknownJob => ("job-not-found", StatusCode::NOT_FOUND),
            GatewayError::JournalUnavailable(_) => {
                return ApiError::new(
                    "journal-unavailable",
                    StatusCode::SERVICE_UNAVAILABLE,
                    self.to_string(),
                )
                .retry_after(RETRY_AFTER_SECS)
            }
        };
        ApiError::new(code, status, self.to_string())
    }
}

impl ResponseError for GatewayError {
    fn error_response(&self) -> HttpResponse {
        pixpress_kit::problem::respond(self)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::RETRY_AFTER;

    use super::*;

    #[test]
    fn a_journal_that_cannot_record_is_a_503_that_says_when_to_retry() {
        let err = GatewayError::JournalUnavailable(JournalError::Opening);
        let res = err.error_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers().get(RETRY_AFTER).unwrap(), "1");
        assert!(err
            .api_error()
            .problem()
            .kind
            .ends_with("journal-unavailable"));
        let res = GatewayError::UnknownPrinter("x".into()).error_response();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
}
