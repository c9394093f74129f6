//! What a printer's IPP answers mean: whether it can take a job now, where a job
//! is, and what kind of trouble a failed call is (try again, or refused for good).

use ipp::model::{JobState, StatusCode};

/// What the gateway reads from a printer before sending it a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterAttributes {
    /// `printer-state`: 3 idle, 4 processing, 5 stopped.
    pub state: Option<i32>,
    pub state_reasons: Vec<String>,
    pub accepting_jobs: Option<bool>,
    pub document_formats: Vec<String>,
}

impl PrinterAttributes {
    /// `printer-state` as its keyword.
    pub fn state_name(&self) -> Option<&'static str> {
        self.state.map(|state| match state {
            3 => "idle",
            4 => "processing",
            5 => "stopped",
            _ => "unknown",
        })
    }

    /// Why the printer cannot take a job now, if it cannot: stopped, not accepting,
    /// or a reason that stops printing (out of paper, jammed, paused…). A reason
    /// ending in `-report` or `-warning` is informational (RFC 8011 §5.4.12).
    pub fn not_ready(&self) -> Option<String> {
        if self.state == Some(5) {
            return Some(format!(
                "the printer is stopped ({})",
                self.state_reasons.join(", ")
            ));
        }
        if self.accepting_jobs == Some(false) {
            return Some("the printer is not accepting jobs".to_owned());
        }
        let blocking: Vec<&str> = self
            .state_reasons
            .iter()
            .map(String::as_str)
            .filter(|r| *r != "none" && !r.ends_with("-report") && !r.ends_with("-warning"))
            .filter(|r| {
                let reason = r.trim_end_matches("-error");
                BLOCKING_REASONS.contains(&reason)
            })
            .collect();
        (!blocking.is_empty()).then(|| format!("the printer reports {}", blocking.join(", ")))
    }
}

/// `printer-state-reasons` (without an `-error` suffix) that keep a job from
/// printing now but will clear: the job waits for them.
const BLOCKING_REASONS: &[&str] = &[
    "media-empty",
    "media-needed",
    "media-jam",
    "toner-empty",
    "marker-supply-empty",
    "cover-open",
    "door-open",
    "input-tray-missing",
    "output-tray-missing",
    "output-area-full",
    "spool-area-full",
    "paused",
    "shutdown",
    "offline",
    "moving-to-paused",
    "stopped-partly",
];

/// A job as a printer reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobAttributes {
    pub id: i32,
    pub name: Option<String>,
    /// `job-state`, 3 (pending) to 9 (completed).
    pub state: Option<JobState>,
    pub state_reasons: Vec<String>,
}

impl JobAttributes {
    /// The reasons worth reporting (without `none`), comma-separated.
    pub fn reasons(&self) -> String {
        let reasons: Vec<&str> = self
            .state_reasons
            .iter()
            .map(String::as_str)
            .filter(|r| *r != "none")
            .collect();
        reasons.join(", ")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IppCallError {
    /// No answer: connection refused, timed out, TLS failed.
    #[error("cannot reach the printer: {0}")]
    Unreachable(#[source] reqwest::Error),
    /// An HTTP answer that is not 200.
    #[error("the printer answered HTTP {0}")]
    Http(u16),
    /// A 200 whose body is not an IPP response.
    #[error("the printer's answer is not IPP: {0}")]
    Malformed(String),
    /// An IPP answer with an error status.
    #[error("{operation}: {status} ({code:#06x}){}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Refused {
        operation: &'static str,
        status: StatusCode,
        code: u16,
        message: Option<String>,
    },
    /// A request the gateway could not encode (a value too long for IPP).
    #[error("cannot encode the IPP request: {0}")]
    Encode(String),
}

impl IppCallError {
    /// Whether the printer could not be talked to at all (what a breaker counts).
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            IppCallError::Unreachable(_) | IppCallError::Http(_) | IppCallError::Malformed(_)
        )
    }

    /// Whether trying again later may succeed: the printer is away, or answered
    /// with a server error (busy, not accepting jobs, temporary error…). A client
    /// error is the printer refusing this request; it would refuse it again.
    pub fn waits(&self) -> bool {
        match self {
            // An operation or version the printer does not have will not appear.
            IppCallError::Refused {
                status:
                    StatusCode::ServerErrorOperationNotSupported
                    | StatusCode::ServerErrorVersionNotSupported,
                ..
            } => false,
            IppCallError::Refused { code, .. } => *code >= 0x0500,
            IppCallError::Encode(_) => false,
            _ => true,
        }
    }

    /// `client-error-not-found`: the printer does not know the job.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            IppCallError::Refused {
                status: StatusCode::ClientErrorNotFound,
                ..
            }
        )
    }

    /// `server-error-operation-not-supported`: the printer lacks the operation.
    pub fn is_unsupported_operation(&self) -> bool {
        matches!(
            self,
            IppCallError::Refused {
                status: StatusCode::ServerErrorOperationNotSupported,
                ..
            }
        )
    }

    /// `client-error-document-format-not-supported`.
    pub fn is_format_refused(&self) -> bool {
        matches!(
            self,
            IppCallError::Refused {
                status: StatusCode::ClientErrorDocumentFormatNotSupported,
                ..
            }
        )
    }

    pub(super) fn outcome(&self) -> &'static str {
        match self {
            IppCallError::Unreachable(_) => "unreachable",
            IppCallError::Http(_) | IppCallError::Malformed(_) => "bad_answer",
            IppCallError::Refused { .. } if self.waits() => "server_error",
            IppCallError::Refused { .. } => "client_error",
            IppCallError::Encode(_) => "encode_error",
        }
    }
}

impl From<ipp::parser::IppParseError> for IppCallError {
    fn from(e: ipp::parser::IppParseError) -> Self {
        IppCallError::Encode(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(state: i32, reasons: &[&str], accepting: bool) -> PrinterAttributes {
        PrinterAttributes {
            state: Some(state),
            state_reasons: reasons.iter().map(|r| (*r).to_owned()).collect(),
            accepting_jobs: Some(accepting),
            document_formats: vec!["image/jpeg".into()],
        }
    }

    #[test]
    fn a_printer_is_ready_unless_stopped_refusing_or_out_of_something() {
        assert_eq!(attributes(3, &["none"], true).not_ready(), None);
        assert_eq!(
            attributes(4, &["media-low-warning", "toner-low-report"], true).not_ready(),
            None
        );
        for blocked in [
            attributes(5, &["paused"], true),
            attributes(3, &["none"], false),
            attributes(3, &["media-empty-error"], true),
            attributes(4, &["media-jam"], true),
        ] {
            assert!(blocked.not_ready().is_some(), "{blocked:?}");
        }
    }

    #[test]
    fn server_errors_wait_and_client_errors_do_not() {
        let refused = |status: StatusCode| IppCallError::Refused {
            operation: "Print-Job",
            status,
            code: status as u16,
            message: None,
        };
        assert!(refused(StatusCode::ServerErrorBusy).waits());
        assert!(refused(StatusCode::ServerErrorNotAcceptingJobs).waits());
        assert!(!refused(StatusCode::ClientErrorDocumentFormatNotSupported).waits());
        assert!(refused(StatusCode::ClientErrorNotFound).is_not_found());
        assert!(IppCallError::Http(503).waits());
    }
}
