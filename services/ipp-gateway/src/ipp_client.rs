//! The gateway's IPP client (RFC 8011 operations, RFC 8010 encoding): the five
//! operations it needs — Get-Printer-Attributes, Validate-Job, Print-Job,
//! Get-Job-Attributes and Get-Jobs — encoded and parsed with the `ipp` crate and
//! POSTed as `application/ipp` with the workspace's reqwest (the crate's own client
//! would bring a second HTTP stack). Every call is timed and counted by operation.
//!
//! It says what a printer answered, not what to do about it: [`IppCallError::waits`]
//! tells a printer that is away or busy (try again) from one that refused the job
//! (it will refuse it again). What the answers mean (printer readiness, job states,
//! the kinds of refusal) is in `ipp_client/answers.rs`.

use std::io::Cursor;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use ipp::attribute::{IppAttribute, IppAttributeGroup, IppAttributeName};
use ipp::model::{DelimiterTag, IppVersion, JobState, Operation};
use ipp::parser::IppParser;
use ipp::request::IppRequestResponse;
use ipp::value::IppValue;
use pixpress_kit::client::ForwardRequestId;
use prometheus::{HistogramVec, IntCounterVec};

use crate::config::PrinterUri;

mod answers;

pub use answers::{IppCallError, JobAttributes, PrinterAttributes};

/// `requesting-user-name` of every request.
pub const USER_NAME: &str = "pixpress";
/// Largest IPP answer read (attribute lists are a few kilobytes).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// A document to print: its bytes and MIME type.
pub struct Document<'a> {
    pub bytes: &'a [u8],
    pub format: &'a str,
}

/// Talks IPP to any printer; holds no per-printer state.
pub struct IppClient {
    http: reqwest::Client,
    durations: HistogramVec,
    outcomes: IntCounterVec,
    request_id: AtomicI32,
}

impl IppClient {
    /// `durations` is labelled by `operation`, `outcomes` by `operation` and `outcome`.
    pub fn new(http: reqwest::Client, durations: HistogramVec, outcomes: IntCounterVec) -> Self {
        Self {
            http,
            durations,
            outcomes,
            request_id: AtomicI32::new(1),
        }
    }

    /// A request for `operation` on `printer`, with the operation attributes every
    /// request carries (charset, language, printer-uri, requesting-user-name).
    fn request(
        &self,
        operation: Operation,
        printer: &PrinterUri,
    ) -> Result<IppRequestResponse, IppCallError> {
        let mut request = IppRequestResponse::new(IppVersion::v1_1(), operation, None)?;
        request.header_mut().request_id = self.request_id.fetch_add(1, Ordering::Relaxed).max(1);
        let ops = request.attributes_mut();
        ops.add(
            DelimiterTag::OperationAttributes,
            IppAttribute::new(
                IppAttributeName::PRINTER_URI,
                IppValue::new_uri(printer.as_str())?,
            ),
        );
        ops.add(
            DelimiterTag::OperationAttributes,
            IppAttribute::new(
                IppAttributeName::REQUESTING_USER_NAME,
                IppValue::new_name_without_language(USER_NAME)?,
            ),
        );
        Ok(request)
    }

    /// Sends `request` (followed by `document`, if any) and parses the answer; an
    /// IPP error status is an error.
    async fn call(
        &self,
        name: &'static str,
        printer: &PrinterUri,
        request: IppRequestResponse,
        document: Option<&[u8]>,
    ) -> Result<IppRequestResponse, IppCallError> {
        let started = Instant::now();
        let result = self.exchange(name, printer, request, document).await;
        self.durations
            .with_label_values(&[name])
            .observe(started.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        self.outcomes.with_label_values(&[name, outcome]).inc();
        result
    }

    async fn exchange(
        &self,
        name: &'static str,
        printer: &PrinterUri,
        request: IppRequestResponse,
        document: Option<&[u8]>,
    ) -> Result<IppRequestResponse, IppCallError> {
        let mut body = request.to_bytes().to_vec();
        if let Some(document) = document {
            body.extend_from_slice(document);
        }
        let response = self
            .http
            .post(printer.http_url())
            .header("content-type", "application/ipp")
            .body(body)
            // The job's trace, for a printer that logs it (most ignore it).
            .forward_request_id()
            .send()
            .await
            .map_err(IppCallError::Unreachable)?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(IppCallError::Http(response.status().as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(IppCallError::Malformed("the answer is too large".into()));
        }
        let bytes = response.bytes().await.map_err(IppCallError::Unreachable)?;
        if bytes.len() > MAX_ANSWER_BYTES {
            return Err(IppCallError::Malformed("the answer is too large".into()));
        }
        // Parsing an in-memory buffer: no I/O blocks here.
        let answer = IppParser::new(Cursor::new(bytes.to_vec()))
            .parse()
            .map_err(|e| IppCallError::Malformed(e.to_string()))?;
        let status = answer.header().status_code();
        if !status.is_success() {
            let message = group(&answer, DelimiterTag::OperationAttributes)
                .and_then(|g| text(g, "status-message"));
            return Err(IppCallError::Refused {
                operation: name,
                status,
                code: answer.header().operation_or_status as u16,
                message,
            });
        }
        Ok(answer)
    }

    /// Get-Printer-Attributes: state, reasons, whether it accepts jobs, formats.
    pub async fn printer_attributes(
        &self,
        printer: &PrinterUri,
    ) -> Result<PrinterAttributes, IppCallError> {
        let mut request = self.request(Operation::GetPrinterAttributes, printer)?;
        let wanted = [
            "printer-state",
            "printer-state-reasons",
            "printer-is-accepting-jobs",
            "document-format-supported",
        ]
        .into_iter()
        .map(IppValue::new_keyword)
        .collect::<Result<Vec<_>, _>>()?;
        request.attributes_mut().add(
            DelimiterTag::OperationAttributes,
            IppAttribute::new(
                IppAttributeName::REQUESTED_ATTRIBUTES,
                IppValue::Array(wanted),
            ),
        );
        let answer = self
            .call("Get-Printer-Attributes", printer, request, None)
            .await?;
        let Some(attributes) = group(&answer, DelimiterTag::PrinterAttributes) else {
            return Err(IppCallError::Malformed("no printer attributes".into()));
        };
        Ok(PrinterAttributes {
            state: attributes
                .get("printer-state")
                .and_then(|a| a.value().as_enum().copied()),
            state_reasons: strings(attributes, "printer-state-reasons"),
            accepting_jobs: attributes
                .get("printer-is-accepting-jobs")
                .and_then(|a| a.value().as_boolean().copied()),
            document_formats: strings(attributes, "document-format-supported"),
        })
    }

    /// The operation and job attributes of a job request (Validate-Job, Print-Job).
    fn job_request(
        &self,
        operation: Operation,
        printer: &PrinterUri,
        job_name: &str,
        format: &str,
        copies: i32,
    ) -> Result<IppRequestResponse, IppCallError> {
        let mut request = self.request(operation, printer)?;
        let attributes = request.attributes_mut();
        attributes.add(
            DelimiterTag::OperationAttributes,
            IppAttribute::new(
                IppAttributeName::JOB_NAME,
                IppValue::new_name_without_language(job_name)?,
            ),
        );
        attributes.add(
            DelimiterTag::OperationAttributes,
            IppAttribute::new(
                IppAttributeName::DOCUMENT_FORMAT,
                IppValue::new_mime_media_type(format)?,
            ),
        );
        attributes.add(
            DelimiterTag::JobAttributes,
            IppAttribute::new(IppAttributeName::COPIES, IppValue::Integer(copies)),
        );
        Ok(request)
    }

    /// Validate-Job: would the printer take this job? (No document is sent.)
    pub async fn validate_job(
        &self,
        printer: &PrinterUri,
        job_name: &str,
        format: &str,
        copies: i32,
    ) -> Result<(), IppCallError> {
        let request =
            self.job_request(Operation::ValidateJob, printer, job_name, format, copies)?;
        self.call("Validate-Job", printer, request, None).await?;
        Ok(())
    }

    /// Print-Job: sends the job with its document; the printer's `job-id`.
    pub async fn print_job(
        &self,
        printer: &PrinterUri,
        job_name: &str,
        copies: i32,
        document: Document<'_>,
    ) -> Result<i32, IppCallError> {
        let request = self.job_request(
            Operation::PrintJob,
            printer,
            job_name,
            document.format,
            copies,
        )?;
        let answer = self
            .call("Print-Job", printer, request, Some(document.bytes))
            .await?;
        group(&answer, DelimiterTag::JobAttributes)
            .and_then(|g| g.get("job-id"))
            .and_then(|a| a.value().as_integer().copied())
            .ok_or_else(|| IppCallError::Malformed("Print-Job answered no job-id".into()))
    }

    /// Get-Job-Attributes of job `id`.
    pub async fn job_attributes(
        &self,
        printer: &PrinterUri,
        id: i32,
    ) -> Result<JobAttributes, IppCallError> {
        let mut request = self.request(Operation::GetJobAttributes, printer)?;
        request.attributes_mut().add(
            DelimiterTag::OperationAttributes,
            IppAttribute::new(IppAttributeName::JOB_ID, IppValue::Integer(id)),
        );
        add_job_attribute_names(&mut request)?;
        let answer = self
            .call("Get-Job-Attributes", printer, request, None)
            .await?;
        let attributes = group(&answer, DelimiterTag::JobAttributes)
            .ok_or_else(|| IppCallError::Malformed("no job attributes".into()))?;
        Ok(job(attributes).unwrap_or(JobAttributes {
            id,
            name: None,
            state: None,
            state_reasons: Vec::new(),
        }))
    }

    /// Get-Jobs (`which-jobs` all): every job the printer still knows.
    pub async fn jobs(&self, printer: &PrinterUri) -> Result<Vec<JobAttributes>, IppCallError> {
        let mut request = self.request(Operation::GetJobs, printer)?;
        request.attributes_mut().add(
            DelimiterTag::OperationAttributes,
            IppAttribute::new(IppAttributeName::WHICH_JOBS, IppValue::new_keyword("all")?),
        );
        add_job_attribute_names(&mut request)?;
        let answer = self.call("Get-Jobs", printer, request, None).await?;
        Ok(answer
            .attributes()
            .groups_of(DelimiterTag::JobAttributes)
            .filter_map(job)
            .collect())
    }
}

fn add_job_attribute_names(request: &mut IppRequestResponse) -> Result<(), IppCallError> {
    let wanted = ["job-id", "job-name", "job-state", "job-state-reasons"]
        .into_iter()
        .map(IppValue::new_keyword)
        .collect::<Result<Vec<_>, _>>()?;
    request.attributes_mut().add(
        DelimiterTag::OperationAttributes,
        IppAttribute::new(
            IppAttributeName::REQUESTED_ATTRIBUTES,
            IppValue::Array(wanted),
        ),
    );
    Ok(())
}

fn group(answer: &IppRequestResponse, tag: DelimiterTag) -> Option<&IppAttributeGroup> {
    answer.attributes().groups_of(tag).next()
}

fn job(attributes: &IppAttributeGroup) -> Option<JobAttributes> {
    let id = attributes
        .get("job-id")
        .and_then(|a| a.value().as_integer().copied())?;
    Some(JobAttributes {
        id,
        name: text(attributes, "job-name"),
        state: attributes
            .get("job-state")
            .and_then(|a| a.value().as_enum().copied())
            .and_then(job_state),
        state_reasons: strings(attributes, "job-state-reasons"),
    })
}

/// The `job-state` enum value, if it is one RFC 8011 defines.
fn job_state(value: i32) -> Option<JobState> {
    Some(match value {
        3 => JobState::Pending,
        4 => JobState::PendingHeld,
        5 => JobState::Processing,
        6 => JobState::ProcessingStopped,
        7 => JobState::Canceled,
        8 => JobState::Aborted,
        9 => JobState::Completed,
        _ => return None,
    })
}

/// A text or name attribute's value, without its language.
fn text(group: &IppAttributeGroup, name: &str) -> Option<String> {
    group.get(name).map(|a| match a.value() {
        IppValue::NameWithLanguage { name, .. } => name.to_string(),
        IppValue::TextWithLanguage { text, .. } => text.to_string(),
        other => other.to_string(),
    })
}

/// A keyword or MIME type attribute's values (one or a set).
fn strings(group: &IppAttributeGroup, name: &str) -> Vec<String> {
    group
        .get(name)
        .map(|a| a.value().into_iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}

/// How long to wait before asking a printer again after `failures` failures in a
/// row: 200 ms doubling to 5 s.
pub fn retry_delay(failures: u32) -> Duration {
    pixpress_kit::retry::Backoff::new(Duration::from_millis(200), Duration::from_secs(5))
        .jittered(failures)
}
