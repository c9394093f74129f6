//! The client of the management API: `/lookup` (may this user print this file, and
//! where does it go?), whose answers become the statuses DESIGN.md §3 step 3 names,
//! and `/printers`, the registry the dispatchers follow when a printer moves. The
//! backend's own words go to the log only.

use std::time::{Duration, Instant};

use pixpress_domain::management::{Lookup, Printer};
use pixpress_domain::problem::Problem;
use pixpress_kit::client::ForwardRequestId;
use pixpress_kit::problem::PROBLEM_TYPE_BASE;
use prometheus::HistogramVec;

use crate::error::PrintError;

#[derive(Clone)]
pub struct ManagementClient {
    http: reqwest::Client,
    lookup_url: String,
    printers_url: String,
    /// `Bearer <MANAGEMENT_TOKEN>`: print-service asks as a service, not as the user.
    authorization: Option<String>,
    timeout: Duration,
    durations: HistogramVec,
}

impl ManagementClient {
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        token: Option<&str>,
        timeout: Duration,
        durations: HistogramVec,
    ) -> Self {
        Self {
            http,
            lookup_url: format!("{}/lookup", base_url.trim_end_matches('/')),
            printers_url: format!("{}/printers", base_url.trim_end_matches('/')),
            authorization: token.map(|t| format!("Bearer {t}")),
            timeout,
            durations,
        }
    }

    /// Asks whether `user_id` may print `file_id` on `printer_id` (or the default).
    pub async fn lookup(
        &self,
        user_id: i64,
        file_id: i64,
        printer_id: Option<i64>,
    ) -> Result<Lookup, PrintError> {
        let started = Instant::now();
        let result = self.call(user_id, file_id, printer_id).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(PrintError::FileNotFound) => "not_found",
            Err(PrintError::Forbidden) => "forbidden",
            Err(PrintError::FileNotReady) => "not_ready",
            Err(PrintError::PrinterNotFound | PrintError::PrinterDisabled) => "printer_refused",
            Err(PrintError::NoPrinter) => "no_printer",
            Err(PrintError::ManagementTimeout) => "timeout",
            Err(PrintError::ManagementUnreachable) => "unreachable",
            Err(_) => "bad_answer",
        };
        self.durations
            .with_label_values(&[outcome])
            .observe(started.elapsed().as_secs_f64());
        result
    }

    async fn call(
        &self,
        user_id: i64,
        file_id: i64,
        printer_id: Option<i64>,
    ) -> Result<Lookup, PrintError> {
        let mut query = vec![("user_id", user_id), ("file_id", file_id)];
        query.extend(printer_id.map(|id| ("printer_id", id)));
        let request = self.get(&self.lookup_url).query(&query);
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                log::warn!("management lookup timed out after {:?}", self.timeout);
                PrintError::ManagementTimeout
            } else {
                log::warn!("management API unreachable: {e}");
                PrintError::ManagementUnreachable
            }
        })?;
        match response.status().as_u16() {
            200 => response.json::<Lookup>().await.map_err(|e| {
                if e.is_timeout() {
                    PrintError::ManagementTimeout
                } else {
                    log::error!("management lookup answered an unparseable body: {e}");
                    PrintError::ManagementBadAnswer
                }
            }),
            status @ (403 | 404 | 409 | 503) => {
                // Which 404 or 409 it is, the problem's stable code says.
                let code = match response.json::<Problem>().await {
                    Ok(problem) => problem
                        .kind
                        .strip_prefix(PROBLEM_TYPE_BASE)
                        .map(str::to_owned),
                    Err(_) => None,
                };
                match (status, code.as_deref()) {
                    (404, Some("printer-not-found")) => Err(PrintError::PrinterNotFound),
                    (404, _) => Err(PrintError::FileNotFound),
                    (403, _) => Err(PrintError::Forbidden),
                    (409, Some("printer-disabled")) => Err(PrintError::PrinterDisabled),
                    (409, _) => Err(PrintError::FileNotReady),
                    (_, Some("no-printer")) => Err(PrintError::NoPrinter),
                    (_, code) => {
                        log::error!("management lookup answered {status} ({code:?})");
                        Err(PrintError::ManagementBadAnswer)
                    }
                }
            }
            status => {
                let body = response.text().await.unwrap_or_default();
                log::error!(
                    "management lookup answered {status}: {}",
                    body.chars().take(500).collect::<String>()
                );
                Err(PrintError::ManagementBadAnswer)
            }
        }
    }

    /// The printer registry (`GET /printers`).
    pub async fn printers(&self) -> Result<Vec<Printer>, reqwest::Error> {
        self.get(&self.printers_url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    }

    /// A GET with the service token, the timeout and the request id.
    fn get(&self, url: &str) -> reqwest::RequestBuilder {
        let request = self
            .http
            .get(url)
            .timeout(self.timeout)
            .forward_request_id();
        match &self.authorization {
            Some(authorization) => request.header("authorization", authorization),
            None => request,
        }
    }
}
