//! What print-service and printers say to each other (DESIGN.md §3 and §12's printer
//! protocol): a job sent to a printer, the printer's signed status callbacks, and its
//! answer to `GET /jobs/{correlation_id}`, which reconciliation asks when a callback
//! is overdue.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use crate::management::{http_url, http_url_schema, long_http_url_schema};
use crate::JobState;

/// The stable reason (callback `detail`, status `error`) of a job that failed because
/// its printer could not fetch its image.
pub const IMAGE_UNREACHABLE: &str = "image_unreachable";
/// The stable reason of a job that failed because what its printer fetched is not an
/// image.
pub const IMAGE_UNDECODABLE: &str = "image_undecodable";

/// `POST {printer_url}/jobs` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate, ToSchema)]
pub struct PrinterJob {
    /// Names the job towards the printer; a printer prints each id once.
    pub correlation_id: Uuid,
    /// Where the printer fetches the image.
    #[validate(length(max = 4096), custom(function = "http_url"))]
    #[schema(schema_with = long_http_url_schema)]
    pub image_url: String,
    #[serde(deserialize_with = "crate::integral::deserialize")]
    #[validate(range(min = 1, max = 100))]
    #[schema(minimum = 1, maximum = 100)]
    pub copies: i32,
    /// Where the printer reports progress (`POST`, Standard Webhooks–signed).
    #[validate(length(max = 2048), custom(function = "http_url"))]
    #[schema(schema_with = http_url_schema)]
    pub callback_url: String,
}

/// A printer's answer to `POST /jobs`: the job is taken (now or before).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobAccepted {
    pub correlation_id: Uuid,
    /// The printer had this job already; it is not printed again.
    pub duplicate: bool,
}

/// What a printer reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallbackStatus {
    Printing,
    Completed,
    Failed,
}

impl CallbackStatus {
    /// The job state the report moves the job to.
    pub fn job_state(self) -> JobState {
        match self {
            CallbackStatus::Printing => JobState::Printing,
            CallbackStatus::Completed => JobState::Completed,
            CallbackStatus::Failed => JobState::Failed,
        }
    }
}

/// `POST /print/callbacks/{correlation_id}` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PrinterCallback {
    pub status: CallbackStatus,
    #[serde(default)]
    pub detail: Option<String>,
}

/// Where a job is at its printer: the callback vocabulary plus `accepted` (taken,
/// not started yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PrinterJobState {
    /// Taken (on the printer's spool), not printing yet.
    Accepted,
    Printing,
    Completed,
    Failed,
}

impl PrinterJobState {
    /// The job state the printer's word puts the job in: a job its printer has
    /// accepted is `dispatched`.
    pub fn job_state(self) -> JobState {
        match self {
            PrinterJobState::Accepted => JobState::Dispatched,
            PrinterJobState::Printing => JobState::Printing,
            PrinterJobState::Completed => JobState::Completed,
            PrinterJobState::Failed => JobState::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PrinterJobState::Accepted => "accepted",
            PrinterJobState::Printing => "printing",
            PrinterJobState::Completed => "completed",
            PrinterJobState::Failed => "failed",
        }
    }
}

impl std::fmt::Display for PrinterJobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `GET {printer_url}/jobs/{correlation_id}` answer (200; a printer that does not
/// know the job answers 404).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PrinterJobStatus {
    pub correlation_id: Uuid,
    pub status: PrinterJobState,
    /// How many times the job was sent to the printer (repeats are not printed again).
    pub received: u32,
    /// How many times the printer printed it: 1 once finished, never more.
    pub printed: u32,
    /// Size in bytes of the image the printer fetched from the job's `image_url`;
    /// `null` until it fetched one, and for a job whose image it could not get.
    #[schema(required = true)]
    pub image_bytes: Option<u64>,
    /// Lowercase hex SHA-256 of the image the printer fetched; `null` like
    /// `image_bytes`.
    #[schema(required = true, pattern = "^[0-9a-f]{64}$")]
    pub image_sha256: Option<String>,
    /// Why the job failed, when it did. Stable reasons every printer uses:
    /// `image_unreachable` (its image could not be fetched) and `image_undecodable`
    /// (what was fetched is not an image); printers add their own (printer-sim's
    /// simulated `paper jam`).
    #[schema(required = true)]
    pub error: Option<String>,
}

/// A job as printer-sim's `GET /jobs` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PrintedJob {
    pub correlation_id: Uuid,
    pub image_url: String,
    pub copies: i32,
    /// How many times the job was sent to the printer (repeats are not printed again).
    pub received: u32,
    /// How many times the printer printed it: 1 once finished, never more.
    pub printed: u32,
    /// The last status the printer reached.
    pub status: PrinterJobState,
    /// Whether print-service acknowledged the final callback.
    pub reported: bool,
    /// Size in bytes of the image the printer fetched; `null` until fetched, and for
    /// a job whose image could not be fetched (absent from older printers' lists).
    #[serde(default)]
    #[schema(required = true)]
    pub image_bytes: Option<u64>,
    /// Lowercase hex SHA-256 of the image the printer fetched; `null` like
    /// `image_bytes`.
    #[serde(default)]
    #[schema(required = true, pattern = "^[0-9a-f]{64}$")]
    pub image_sha256: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_states_name_themselves_as_on_the_wire() {
        for state in [
            PrinterJobState::Accepted,
            PrinterJobState::Printing,
            PrinterJobState::Completed,
            PrinterJobState::Failed,
        ] {
            let wire = serde_json::to_value(state).unwrap();
            assert_eq!(wire, state.as_str());
        }
    }

    #[test]
    fn an_accepted_job_is_dispatched_and_the_rest_keep_their_names() {
        assert_eq!(PrinterJobState::Accepted.job_state(), JobState::Dispatched);
        for state in [
            PrinterJobState::Printing,
            PrinterJobState::Completed,
            PrinterJobState::Failed,
        ] {
            assert_eq!(state.job_state().as_str(), state.as_str());
        }
    }
}
