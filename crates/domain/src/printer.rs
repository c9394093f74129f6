//! What print-service and printers say to each other: a job sent to a printer, and
//! the printer's signed status callbacks.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use crate::management::{http_url, http_url_schema, long_http_url_schema};
use crate::JobState;

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
    /// The last status the printer reached: `queued`, `printing`, `completed` or `failed`.
    pub status: String,
    /// Whether print-service acknowledged the final callback.
    pub reported: bool,
}
