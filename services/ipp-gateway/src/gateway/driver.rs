//! A job's driver: from accepted to its end at the printer — fetch the image (or
//! take it from the state dir), wait until the printer can take it, Validate-Job
//! and Print-Job, then follow it with Get-Job-Attributes; each step journaled.

use std::future::Future;
use std::time::Duration;

use ipp::model::{JobState, StatusCode};
use pixpress_domain::printer::{PrinterJob, PrinterJobState};
use pixpress_kit::fetch::{fetch_bounded, sha256_hex};
use uuid::Uuid;

use super::{store, wake, Entry, Gateway, ImageRecord, Printer};
use crate::fetch::{ImageFormat, FORMAT_UNSUPPORTED};
use crate::ipp_client::{retry_delay, Document, IppCallError, PrinterAttributes};

/// What one IPP exchange came to, for a job's loop.
enum Asked<T> {
    Answer(T),
    /// The printer is away, busy or its breaker is open: ask again after this.
    Away(Duration),
    /// The printer refused the request; it would refuse it again.
    Refused(IppCallError),
}

/// How following a submitted job ended.
enum Watched {
    /// Completed (`None`), or failed with the reason.
    Finished(Option<String>),
    /// The printer no longer has the job.
    Lost,
}

impl Gateway {
    /// Takes a job from accepted to its end at the printer.
    pub(super) async fn drive(&self, id: Uuid, mut image: Option<Vec<u8>>, mut maybe_sent: bool) {
        let Some((printer_name, job)) = self.with_job(id, |t| (t.printer.clone(), t.job.clone()))
        else {
            return;
        };
        let Some(printer) = self.printers.get(&printer_name) else {
            let detail = format!("printer_unknown: {printer_name} is no longer configured");
            self.finish(id, Some(detail)).await;
            return;
        };
        loop {
            let Some((finished, submitted)) =
                self.with_job(id, |t| (t.is_finished(), t.submitted.clone()))
            else {
                return;
            };
            if finished {
                return;
            }
            match submitted {
                Some((_, ipp_job_id)) => match self.watch(printer, id, ipp_job_id).await {
                    Watched::Finished(outcome) => {
                        self.finish(id, outcome).await;
                        return;
                    }
                    Watched::Lost => self.lose(id, printer).await,
                },
                None => {
                    let bytes = match image.take() {
                        Some(bytes) => bytes,
                        None => match self.image(id, &job).await {
                            Ok(bytes) => bytes,
                            Err(detail) => {
                                self.finish(id, Some(detail)).await;
                                return;
                            }
                        },
                    };
                    if let Err(detail) = self.send(printer, &job, &bytes, &mut maybe_sent).await {
                        self.finish(id, Some(detail)).await;
                        return;
                    }
                    // Kept while the job lives: a printer that loses it gets it again.
                    image = Some(bytes);
                }
            }
        }
    }

    /// The job's image: kept on disk from an earlier fetch, or fetched now. `Err`
    /// is the job's failure reason.
    async fn image(&self, id: Uuid, job: &PrinterJob) -> Result<Vec<u8>, String> {
        let known = self.with_job(id, |t| t.image.clone()).flatten();
        if let (Some(known), Some(dir)) = (&known, self.state_dir()) {
            let kept = tokio::task::spawn_blocking(move || store::load_image(&dir, id))
                .await
                .ok()
                .flatten();
            if let Some(bytes) = kept.filter(|b| sha256_hex(b) == known.sha256) {
                return Ok(bytes);
            }
        }
        let fetched = fetch_bounded(&self.images, &job.image_url, &self.image_limits)
            .await
            .map_err(|e| {
                log::warn!(
                    "job {id} fails, its image did not arrive from {}: {e}",
                    job.image_url
                );
                e.reason().to_owned()
            })?;
        let format = ImageFormat::sniff(&fetched);
        let record = ImageRecord {
            bytes: fetched.len() as u64,
            sha256: sha256_hex(&fetched),
            format: format.map_or("unknown", ImageFormat::mime).to_owned(),
        };
        self.with_job(id, |t| t.image = Some(record.clone()));
        if format.is_none() {
            log::warn!("job {id} fails: its image is neither JPEG nor PNG");
            return Err(FORMAT_UNSUPPORTED.to_owned());
        }
        if let Some(dir) = self.state_dir() {
            let bytes = fetched.clone();
            let saved =
                tokio::task::spawn_blocking(move || store::save_image(&dir, id, &bytes)).await;
            match saved {
                Ok(Ok(())) => {}
                // Not fatal: the bytes are in memory; after a restart it is fetched again.
                Ok(Err(e)) => log::warn!("cannot keep the image of job {id}: {e}"),
                Err(e) => log::warn!("cannot keep the image of job {id}: {e}"),
            }
        }
        self.store
            .record(&Entry::Fetched {
                correlation_id: id,
                bytes: record.bytes,
                sha256: record.sha256,
                format: record.format,
            })
            .await;
        Ok(fetched)
    }

    /// One IPP exchange with `printer`, behind its breaker.
    async fn ask<T>(
        &self,
        printer: &Printer,
        failures: &mut u32,
        call: impl Future<Output = Result<T, IppCallError>>,
    ) -> Asked<T> {
        if let Err(wait) = self.breakers.allow(&printer.name) {
            return Asked::Away(wait);
        }
        let result = call.await;
        let reachable = !matches!(&result, Err(e) if e.is_transport());
        self.metrics
            .reachable
            .with_label_values(&[&printer.name])
            .set(i64::from(reachable));
        match result {
            Ok(answer) => {
                self.breakers.record_success(&printer.name);
                *failures = 0;
                Asked::Answer(answer)
            }
            Err(e) if e.is_transport() => {
                self.breakers.record_failure(&printer.name);
                *failures += 1;
                log::info!("printer {} is away ({e}); its jobs wait", printer.name);
                Asked::Away(retry_delay(*failures))
            }
            Err(e) => {
                // It answered: it is there, even if it said no.
                self.breakers.record_success(&printer.name);
                if e.waits() {
                    *failures += 1;
                    log::info!("printer {} cannot take work now ({e})", printer.name);
                    Asked::Away(retry_delay(*failures))
                } else {
                    Asked::Refused(e)
                }
            }
        }
    }

    /// The printer's attributes, fresh enough.
    async fn attributes(&self, printer: &Printer, failures: &mut u32) -> Asked<PrinterAttributes> {
        if let Some(fresh) = printer.fresh_attributes() {
            return Asked::Answer(fresh);
        }
        let asked = self
            .ask(printer, failures, self.ipp.printer_attributes(&printer.uri))
            .await;
        if let Asked::Answer(attributes) = &asked {
            printer.remember(attributes);
        }
        asked
    }

    /// Waits until `printer` can take the job, then has it printed (Validate-Job,
    /// Print-Job) and journals its job id. `Err` is the job's failure reason: the
    /// printer will never take it.
    async fn send(
        &self,
        printer: &Printer,
        job: &PrinterJob,
        bytes: &[u8],
        maybe_sent: &mut bool,
    ) -> Result<(), String> {
        let id = job.correlation_id;
        let name = id.to_string();
        let Some(format) = ImageFormat::sniff(bytes) else {
            return Err(FORMAT_UNSUPPORTED.to_owned());
        };
        let mut failures = 0;
        let mut validate = true;
        loop {
            let attributes = match self.attributes(printer, &mut failures).await {
                Asked::Answer(attributes) => attributes,
                Asked::Away(delay) => {
                    tokio::time::sleep(delay).await;
                    continue;
                }
                Asked::Refused(e) => {
                    log::warn!(
                        "printer {} refuses Get-Printer-Attributes: {e}",
                        printer.name
                    );
                    failures += 1;
                    tokio::time::sleep(retry_delay(failures)).await;
                    continue;
                }
            };
            if let Some(why) = attributes.not_ready() {
                failures += 1;
                log::info!("job {id} waits for printer {}: {why}", printer.name);
                tokio::time::sleep(retry_delay(failures)).await;
                continue;
            }
            // No fallback to application/octet-stream, which most printers list: it
            // means "guess the format", and a printer that cannot print a JPEG would
            // guess wrong and print garbage, or nothing, and still call it completed.
            if !attributes
                .document_formats
                .iter()
                .any(|f| f.eq_ignore_ascii_case(format.mime()))
            {
                return Err(unsupported(&attributes.document_formats));
            }
            if *maybe_sent {
                match self
                    .ask(printer, &mut failures, self.ipp.jobs(&printer.uri))
                    .await
                {
                    Asked::Answer(jobs) => {
                        *maybe_sent = false;
                        if let Some(found) = jobs.iter().find(|j| j.name.as_deref() == Some(&name))
                        {
                            log::info!(
                                "job {id} is on printer {} already as job {}; not sending it again",
                                printer.name,
                                found.id
                            );
                            self.submitted(id, printer, found.id).await;
                            return Ok(());
                        }
                    }
                    Asked::Away(delay) => {
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    // A printer without Get-Jobs cannot say; sending is all there is.
                    Asked::Refused(e) => {
                        log::warn!("printer {} cannot list its jobs ({e})", printer.name);
                        *maybe_sent = false;
                    }
                }
            }
            if validate {
                let validation =
                    self.ipp
                        .validate_job(&printer.uri, &name, format.mime(), job.copies);
                match self.ask(printer, &mut failures, validation).await {
                    Asked::Answer(()) => validate = false,
                    Asked::Away(delay) => {
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    // Validate-Job is optional for older printers: Print-Job decides.
                    Asked::Refused(e) if e.is_unsupported_operation() => validate = false,
                    Asked::Refused(e) => return Err(refused(&e, &attributes)),
                }
            }
            let print = self.ipp.print_job(
                &printer.uri,
                &name,
                job.copies,
                Document {
                    bytes,
                    format: format.mime(),
                },
            );
            match self.ask(printer, &mut failures, print).await {
                Asked::Answer(ipp_job_id) => {
                    self.submitted(id, printer, ipp_job_id).await;
                    return Ok(());
                }
                Asked::Away(delay) => {
                    // The request may have reached the printer before the answer was
                    // lost: ask it (Get-Jobs) before sending again.
                    *maybe_sent = true;
                    tokio::time::sleep(delay).await;
                }
                Asked::Refused(e) => return Err(refused(&e, &attributes)),
            }
        }
    }

    async fn submitted(&self, id: Uuid, printer: &Printer, ipp_job_id: i32) {
        let uri = printer.uri.to_string();
        self.with_job(id, |t| t.submitted = Some((uri.clone(), ipp_job_id)));
        log::info!("job {id} is job {ipp_job_id} of printer {}", printer.name);
        self.store
            .record(&Entry::Submitted {
                correlation_id: id,
                printer_uri: uri,
                ipp_job_id,
            })
            .await;
    }

    async fn lose(&self, id: Uuid, printer: &Printer) {
        log::warn!(
            "printer {} no longer has job {id}; sending it again",
            printer.name
        );
        self.with_job(id, |t| t.submitted = None);
        self.store.record(&Entry::Lost { correlation_id: id }).await;
    }

    /// Follows job `ipp_job_id` with Get-Job-Attributes until it ends or the printer
    /// turns out not to have it (any more).
    async fn watch(&self, printer: &Printer, id: Uuid, ipp_job_id: i32) -> Watched {
        let name = id.to_string();
        let mut failures = 0;
        loop {
            let asked = self
                .ask(
                    printer,
                    &mut failures,
                    self.ipp.job_attributes(&printer.uri, ipp_job_id),
                )
                .await;
            match asked {
                Asked::Answer(job) => {
                    // ippeveprinter restarts its ids at 1: the id may be another job's now.
                    if job.name.as_deref().is_some_and(|n| n != name) {
                        return Watched::Lost;
                    }
                    match job.state {
                        Some(JobState::Processing | JobState::ProcessingStopped) => {
                            self.started(id).await
                        }
                        Some(JobState::Completed) => return Watched::Finished(None),
                        Some(state @ (JobState::Canceled | JobState::Aborted)) => {
                            let reasons = job.reasons();
                            let detail = if reasons.is_empty() {
                                let state = if state == JobState::Canceled {
                                    "job-canceled"
                                } else {
                                    "job-aborted"
                                };
                                state.to_owned()
                            } else {
                                reasons
                            };
                            return Watched::Finished(Some(detail));
                        }
                        // Pending or held: it waits its turn.
                        _ => {}
                    }
                    tokio::time::sleep(self.poll).await;
                }
                Asked::Away(delay) => tokio::time::sleep(delay.max(self.poll)).await,
                Asked::Refused(e) if e.is_not_found() => return Watched::Lost,
                Asked::Refused(e) => {
                    log::warn!(
                        "printer {} refuses to tell about job {id}: {e}",
                        printer.name
                    );
                    failures += 1;
                    tokio::time::sleep(retry_delay(failures).max(self.poll)).await;
                }
            }
        }
    }

    /// The printer is printing the job.
    async fn started(&self, id: Uuid) {
        let changed = self.with_job(id, |t| {
            let accepted = t.status == PrinterJobState::Accepted;
            if accepted {
                self.set_status(t, PrinterJobState::Printing);
                wake(t);
            }
            accepted
        });
        if changed == Some(true) {
            self.store
                .record(&Entry::Printing { correlation_id: id })
                .await;
        }
    }

    /// The job's outcome: completed (`None`) or failed with `detail`.
    async fn finish(&self, id: Uuid, detail: Option<String>) {
        let failed = detail.is_some();
        self.with_job(id, |t| {
            let status = if failed {
                PrinterJobState::Failed
            } else {
                PrinterJobState::Completed
            };
            self.set_status(t, status);
            t.error = detail.clone();
            wake(t);
        });
        match &detail {
            Some(why) => log::info!("job {id} failed: {why}"),
            None => log::info!("job {id} completed"),
        }
        self.store
            .record(&Entry::Finished {
                correlation_id: id,
                failed,
                detail,
            })
            .await;
        if let Some(dir) = self.state_dir() {
            let _ = tokio::task::spawn_blocking(move || store::remove_image(&dir, id)).await;
        }
    }
}

/// The reason of a job whose type its printer does not take.
fn unsupported(formats: &[String]) -> String {
    format!(
        "{FORMAT_UNSUPPORTED}: printer accepts {}",
        formats.join(", ")
    )
}

/// The reason of a job its printer refused (Validate-Job or Print-Job).
fn refused(e: &IppCallError, attributes: &PrinterAttributes) -> String {
    if e.is_format_refused() {
        return unsupported(&attributes.document_formats);
    }
    match e {
        IppCallError::Refused {
            status: StatusCode::ClientErrorAttributesOrValuesNotSupported,
            ..
        } => format!("ipp_refused: the printer does not support this job's settings ({e})"),
        _ => format!("ipp_refused: {e}"),
    }
}
