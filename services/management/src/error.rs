//! Every way a management-api request can fail, the status each maps to and its
//! stable code (the problem `type` is `https://pixpress.dev/problems/{code}`), so a
//! client tells "not downloaded yet" from "belongs to someone else" without reading
//! the detail. Bodies that do not parse or validate are answered by the kit's
//! extractors (400 naming each field) before a handler runs.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use pixpress_domain::download::DownloadState;
use pixpress_domain::management::ImageStatus;
use pixpress_kit::webhook::CallbackRefused;
use pixpress_kit::{ApiError, ServiceError};

use crate::catalog::{LookupRefusal, SettleRefusal};

#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    /// 404 `not-found`: an id in the path that is not positive names nothing, like a
    /// path segment that does not parse.
    #[error("no such {what}: {id}")]
    NotAnId { what: &'static str, id: i64 },
    /// 404 `user-not-found`: another user's collection (and not an admin asking).
    #[error("no user {0}")]
    UserNotFound(i64),
    /// 404 `image-not-found`: no such image in this user's collection (another user's
    /// image is missing too, so strangers learn nothing).
    #[error("no image {id} for user {user_id}")]
    ImageNotFound { user_id: i64, id: i64 },
    /// 404 `image-not-found`: no image has this id (lookups and download reports).
    #[error("no image {0}")]
    NoSuchImage(i64),
    /// 403 `not-yourself`: adding to another user's collection (and not an admin).
    #[error("you may only add images to your own collection")]
    NotYourself,
    /// 401 `unauthorized` (with `WWW-Authenticate: Bearer`): a route that checks its
    /// bearer token itself (the download report) got none, or a bad one.
    #[error("{}", .0.problem().detail)]
    Unauthenticated(ApiError),
    /// 403 `service-role-required`: a route for services (`/lookup`, the download
    /// report) asked with a token that has neither the `service` nor the `admin` role.
    #[error("{0} is for services: a token with the `service` role is required")]
    ServiceRoleRequired(&'static str),
    /// 403 `admin-only`: an operator action (registering a printer, retrying a
    /// download) without the admin role.
    #[error("only admins {0}")]
    AdminOnly(&'static str),
    /// 403 `not-image-owner`: the image to print belongs to another user.
    #[error("image {0} belongs to another user")]
    NotImageOwner(i64),
    /// 409 `image-not-ready`: the image to print is not downloaded yet.
    #[error("image {0} is not downloaded yet")]
    ImageNotReady(i64),
    /// 404 `printer-not-found`: the printer asked for is not registered.
    #[error("no printer {0}")]
    NoSuchPrinter(i64),
    /// 409 `printer-disabled`: the printer asked for takes no new jobs.
    #[error("printer {0} is disabled")]
    PrinterDisabled(i64),
    /// 503 `no-printer`: no printer was asked for and none is enabled (printers are
    /// never removed, but an operator may disable every one).
    #[error("no printer is enabled")]
    NoPrinter,
    /// 401 `invalid-signature` (missing or bad signature, stale timestamp, no secret
    /// configured), or 400/413 (signed, but not a download task): a download report
    /// refused before it was read, by the kit's `SignedJson`.
    #[error(transparent)]
    Callback(#[from] CallbackRefused),
    /// 400 `invalid-report`: a `failed` task without its failure code.
    #[error("a failed download task must carry its error code")]
    FailureWithoutReason,
    /// 400 `invalid-report`: a task still `queued` or `running` reported as done.
    #[error("only a finished download can be reported, not a {} one", .0.as_str())]
    UnfinishedReport(DownloadState),
    /// 409 `report-conflict`: the image already holds a different download result.
    #[error("image {image_id} is already {} with a different result", status_name(*.status))]
    ReportConflict { image_id: i64, status: ImageStatus },
    /// 409 `report-conflict`: the report is of a download task the image does not
    /// wait for (one an operator retry replaced, or a stranger).
    #[error("image {0} waits for another download task")]
    OtherTask(i64),
    /// 409 `not-failed`: only a `failed` image's download is retried.
    #[error("image {id} is {}, not failed: there is nothing to retry", status_name(*.status))]
    NotFailed { id: i64, status: ImageStatus },
}

impl ServiceError for ManagementError {
    fn api_error(&self) -> ApiError {
        use ManagementError::*;
        let (code, status) = match self {
            NotAnId { .. } => ("not-found", StatusCode::NOT_FOUND),
            UserNotFound(_) => ("user-not-found", StatusCode::NOT_FOUND),
            ImageNotFound { .. } | NoSuchImage(_) => ("image-not-found", StatusCode::NOT_FOUND),
            NotYourself => ("not-yourself", StatusCode::FORBIDDEN),
            Unauthenticated(api) => return api.clone(),
            ServiceRoleRequired(_) => ("service-role-required", StatusCode::FORBIDDEN),
            AdminOnly(_) => ("admin-only", StatusCode::FORBIDDEN),
            NotImageOwner(_) => ("not-image-owner", StatusCode::FORBIDDEN),
            ImageNotReady(_) => ("image-not-ready", StatusCode::CONFLICT),
            NoSuchPrinter(_) => ("printer-not-found", StatusCode::NOT_FOUND),
            PrinterDisabled(_) => ("printer-disabled", StatusCode::CONFLICT),
            NoPrinter => ("no-printer", StatusCode::SERVICE_UNAVAILABLE),
            Callback(refused) => return refused.api_error(),
            FailureWithoutReason | UnfinishedReport(_) => {
                ("invalid-report", StatusCode::BAD_REQUEST)
            }
            ReportConflict { .. } | OtherTask(_) => ("report-conflict", StatusCode::CONFLICT),
            NotFailed { .. } => ("not-failed", StatusCode::CONFLICT),
        };
        ApiError::new(code, status, self.to_string())
    }
}

impl ResponseError for ManagementError {
    fn error_response(&self) -> HttpResponse {
        pixpress_kit::problem::respond(self)
    }
}

impl From<LookupRefusal> for ManagementError {
    fn from(refusal: LookupRefusal) -> Self {
        match refusal {
            LookupRefusal::NoSuchImage(id) => ManagementError::NoSuchImage(id),
            LookupRefusal::NotOwner(id) => ManagementError::NotImageOwner(id),
            LookupRefusal::NotReady(id) => ManagementError::ImageNotReady(id),
            LookupRefusal::NoSuchPrinter(id) => ManagementError::NoSuchPrinter(id),
            LookupRefusal::PrinterDisabled(id) => ManagementError::PrinterDisabled(id),
            LookupRefusal::NoPrinter => ManagementError::NoPrinter,
        }
    }
}

impl From<SettleRefusal> for ManagementError {
    fn from(refusal: SettleRefusal) -> Self {
        match refusal {
            SettleRefusal::NoSuchImage(id) => ManagementError::NoSuchImage(id),
            SettleRefusal::AlreadySettled(image_id, status) => {
                ManagementError::ReportConflict { image_id, status }
            }
            SettleRefusal::OtherTask(image_id) => ManagementError::OtherTask(image_id),
        }
    }
}

fn status_name(status: ImageStatus) -> &'static str {
    match status {
        ImageStatus::Pending => "pending",
        ImageStatus::Ready => "ready",
        ImageStatus::Failed => "failed",
    }
}

#[cfg(test)]
mod tests {
    use pixpress_kit::problem::PROBLEM_TYPE_BASE;

    use super::*;

    #[test]
    fn each_lookup_refusal_has_its_own_status_and_code() {
        let cases = [
            (LookupRefusal::NoSuchImage(7), 404, "image-not-found"),
            (LookupRefusal::NotOwner(7), 403, "not-image-owner"),
            (LookupRefusal::NotReady(7), 409, "image-not-ready"),
            (LookupRefusal::NoSuchPrinter(2), 404, "printer-not-found"),
            (LookupRefusal::PrinterDisabled(2), 409, "printer-disabled"),
            (LookupRefusal::NoPrinter, 503, "no-printer"),
        ];
        for (refusal, status, code) in cases {
            let api = ManagementError::from(refusal).api_error();
            let problem = api.problem();
            assert_eq!(problem.status, status, "{problem:?}");
            assert_eq!(problem.kind, format!("{PROBLEM_TYPE_BASE}{code}"));
        }
    }

    #[test]
    fn a_conflicting_report_is_not_mistaken_for_an_unready_image() {
        let conflict = ManagementError::from(SettleRefusal::AlreadySettled(7, ImageStatus::Ready));
        let problem = conflict.api_error().problem().clone();
        assert_eq!(problem.status, 409);
        assert_eq!(problem.kind, format!("{PROBLEM_TYPE_BASE}report-conflict"));
        assert_eq!(
            problem.detail,
            "image 7 is already ready with a different result"
        );
    }
}
