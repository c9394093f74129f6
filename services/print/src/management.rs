//! The client of the management API's `/lookup`: may this user print this file,
//! and where does it go? Its answers become the statuses DESIGN.md §3 step 3 names;
//! the backend's own words go to the log only.

use std::time::{Duration, Instant};

use pixpress_domain::management::Lookup;
use pixpress_kit::client::ForwardRequestId;
use prometheus::HistogramVec;

use crate::error::PrintError;

#[derive(Clone)]
pub struct ManagementClient {
    http: reqwest::Client,
    lookup_url: String,
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
            authorization: token.map(|t| format!("Bearer {t}")),
            timeout,
            durations,
        }
    }

    /// Asks whether `user_id` may print `file_id`.
    pub async fn lookup(&self, user_id: i64, file_id: i64) -> Result<Lookup, PrintError> {
        let started = Instant::now();
        let result = self.call(user_id, file_id).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(PrintError::FileNotFound) => "not_found",
            Err(PrintError::Forbidden) => "forbidden",
            Err(PrintError::FileNotReady) => "not_ready",
            Err(PrintError::ManagementTimeout) => "timeout",
            Err(PrintError::ManagementUnreachable) => "unreachable",
            Err(_) => "bad_answer",
        };
        self.durations
            .with_label_values(&[outcome])
            .observe(started.elapsed().as_secs_f64());
        result
    }

    async fn call(&self, user_id: i64, file_id: i64) -> Result<Lookup, PrintError> {
        let mut request = self
            .http
            .get(&self.lookup_url)
            .query(&[("user_id", user_id), ("file_id", file_id)])
            .timeout(self.timeout)
            .forward_request_id();
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
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
            404 => Err(PrintError::FileNotFound),
            403 => Err(PrintError::Forbidden),
            409 => Err(PrintError::FileNotReady),
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
}
