//! Every way printer-sim refuses a request, the status each maps to and its stable
//! code (the problem `type` is `https://pixpress.dev/problems/{code}`). Both refusals
//! of a job are "not now": the sender keeps the job and tries again after
//! `Retry-After`. Bodies that do not parse or validate are answered 400 by the kit's
//! `ValidJson`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use pixpress_kit::{ApiError, ServiceError};

use pixpress_kit::journal::JournalError;

/// Seconds a refused sender waits before trying again.
const RETRY_AFTER_SECS: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PrinterError {
    /// 503 `printer-busy` + Retry-After: every print slot is taken.
    #[error("every print slot is busy; retry later")]
    Busy,
    /// 503 `spool-unavailable` + Retry-After: the spool cannot record the job (it is
    /// being read at start, or its disk failed). Why goes to the log, not the sender.
    #[error("the printer cannot take jobs right now; retry later")]
    SpoolUnavailable(#[source] JournalError),
    /// 404 `job-not-found`: the printer does not know this correlation id.
    #[error("this printer knows no job with that correlation id")]
    UnknownJob,
}

impl ServiceError for PrinterError {
    fn api_error(&self) -> ApiError {
        let code = match self {
            PrinterError::Busy => "printer-busy",
            PrinterError::SpoolUnavailable(_) => "spool-unavailable",
            PrinterError::UnknownJob => {
                return ApiError::new("job-not-found", StatusCode::NOT_FOUND, self.to_string())
            }
        };
        ApiError::new(code, StatusCode::SERVICE_UNAVAILABLE, self.to_string())
            .retry_after(RETRY_AFTER_SECS)
    }
}

impl ResponseError for PrinterError {
    fn error_response(&self) -> HttpResponse {
        pixpress_kit::problem::respond(self)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::RETRY_AFTER;

    use super::*;

    #[test]
    fn both_refusals_are_503s_that_say_when_to_retry() {
        for (err, code) in [
            (PrinterError::Busy, "printer-busy"),
            (
                PrinterError::SpoolUnavailable(JournalError::Opening),
                "spool-unavailable",
            ),
        ] {
            let res = err.error_response();
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(res.headers().get(RETRY_AFTER).unwrap(), "1");
            assert!(err.api_error().problem().kind.ends_with(code));
        }
    }
}
