//! Printers' reports on their jobs (signed callbacks, and printers' records read by
//! reconciliation) applied to the `print_jobs` table.
//!
//! Each report is judged by the domain's state machine against the job's state
//! ([`JobState::moves_on_report`]) and written with a compare-and-set: the update
//! takes effect only if the job is still in the state it was judged against, and a
//! job that moved meanwhile (a cancel, reconciliation, another replica) has its
//! reports judged again. No row lock is held between the read and the write.
//!
//! [`ReportWriter`] applies the callbacks that arrive together as one batch
//! (`kit::batch`): one read and one update, one commit, however many jobs. Two
//! reports on one job in one batch (`printing`, then `completed`) are judged in
//! their order of arrival, as if they had come one by one.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use pixpress_domain::job::Evidence;
use pixpress_domain::JobState;
use pixpress_kit::batch::Batcher;
use pixpress_kit::db::{Database, DbError, Sql};
use uuid::Uuid;

use super::{state_from_row, LOCKED_IN_ORDER};

/// A printer's word on a job: a callback, or its record read by reconciliation.
#[derive(Debug, Clone)]
pub struct PrinterReport {
    /// The job's correlation id (the printer knows no other).
    pub correlation_id: Uuid,
    pub state: JobState,
    /// Why the job failed, when it did.
    pub detail: Option<String>,
    pub evidence: Evidence,
}

/// What a printer's report did to its job.
#[derive(Debug, PartialEq, Eq)]
pub enum ReportOutcome {
    /// The job moved through these states (see [`JobState::moves_on_report`]).
    Applied(Vec<(JobState, JobState)>),
    /// The job is already in that state: nothing changes.
    Unchanged,
    NotFound,
    /// The state machine forbids it (or the printer is behind the job); the job's
    /// current state.
    Illegal(JobState),
}

/// Applies printers' reports in batches; see the module's doc.
pub struct ReportWriter(Batcher<PrinterReport, ReportOutcome, DbError>);

impl ReportWriter {
    /// A job still at its printer after a report is checked there after `deadline`
    /// per copy.
    pub fn spawn(db: Database, deadline: Duration) -> Self {
        Self(Batcher::spawn(move |reports: Vec<PrinterReport>| {
            let db = db.clone();
            async move {
                db.with_connection(async |conn| apply_reports(conn, &reports, deadline).await)
                    .await
            }
        }))
    }

    /// What `report` did, once the batch that carries it is committed.
    pub async fn apply(&self, report: PrinterReport) -> Result<ReportOutcome, DbError> {
        Ok(self.0.submit(report).await?)
    }
}

/// [`apply_reports`] for one report.
pub async fn apply_report(
    db: &impl Sql,
    report: PrinterReport,
    deadline: Duration,
) -> Result<ReportOutcome, DbError> {
    let mut outcomes = apply_reports(db, std::slice::from_ref(&report), deadline).await?;
    Ok(outcomes.pop().unwrap_or(ReportOutcome::NotFound))
}

/// One job's reports within a batch, judged in order from the state it was read in.
struct Judged {
    id: Uuid,
    read: JobState,
    /// Where the reports judged so far take it.
    at: JobState,
    error: Option<String>,
    /// The batch's reports on this job (indices), judged again if the write misses.
    reports: Vec<usize>,
}

/// Applies `reports` (in their order; each job's compare-and-set in one statement
/// for all) and gives one outcome per report, in order. Callers bound the whole by
/// the database deadline ([`Database::within`]).
pub async fn apply_reports(
    db: &impl Sql,
    reports: &[PrinterReport],
    deadline: Duration,
) -> Result<Vec<ReportOutcome>, DbError> {
    let mut outcomes: Vec<ReportOutcome> =
        reports.iter().map(|_| ReportOutcome::NotFound).collect();
    let mut pending: Vec<usize> = (0..reports.len()).collect();
    while !pending.is_empty() {
        let correlation_ids: Vec<Uuid> =
            pending.iter().map(|&i| reports[i].correlation_id).collect();
        let rows = db
            .query(
                "SELECT id, correlation_id, state FROM print_jobs WHERE correlation_id = ANY($1)",
                &[&correlation_ids],
            )
            .await?;
        let mut jobs = HashMap::with_capacity(rows.len());
        for row in &rows {
            let state = state_from_row(row)?;
            let judged = Judged {
                id: row.try_get("id")?,
                read: state,
                at: state,
                error: None,
                reports: Vec::new(),
            };
            jobs.insert(row.try_get::<_, Uuid>("correlation_id")?, judged);
        }
        for &i in &pending {
            let report = &reports[i];
            let Some(job) = jobs.get_mut(&report.correlation_id) else {
                outcomes[i] = ReportOutcome::NotFound;
                continue;
            };
            job.reports.push(i);
            outcomes[i] = match job.at.moves_on_report(report.state, report.evidence) {
                None => ReportOutcome::Illegal(job.at),
                Some(steps) if steps.is_empty() => ReportOutcome::Unchanged,
                Some(steps) => {
                    job.at = report.state;
                    if report.state == JobState::Failed {
                        let detail = report.detail.as_deref();
                        job.error = Some(detail.unwrap_or("the printer reported a failure").into());
                    }
                    ReportOutcome::Applied(steps)
                }
            };
        }
        let moved: Vec<&Judged> = jobs.values().filter(|job| job.at != job.read).collect();
        pending = write(db, &moved, deadline)
            .await?
            .into_iter()
            .flat_map(|missed| missed.reports.iter().copied())
            .collect();
        pending.sort_unstable();
    }
    Ok(outcomes)
}

/// Moves each job to its judged state unless it left the state it was read in; the
/// jobs that had.
async fn write<'a>(
    db: &impl Sql,
    moved: &[&'a Judged],
    deadline: Duration,
) -> Result<Vec<&'a Judged>, DbError> {
    if moved.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = moved.iter().map(|job| job.id).collect();
    let states: Vec<&str> = moved.iter().map(|job| job.at.as_str()).collect();
    let errors: Vec<Option<&str>> = moved.iter().map(|job| job.error.as_deref()).collect();
    let read: Vec<&str> = moved.iter().map(|job| job.read.as_str()).collect();
    let sql = format!(
        "{LOCKED_IN_ORDER}
         UPDATE print_jobs AS j
         SET state = u.state, error = COALESCE(u.error, j.error), updated_at = now(),
             attempts = CASE WHEN j.state = 'queued' THEN j.attempts + 1 ELSE j.attempts END,
             next_attempt_at = now() + make_interval(secs => $5::float8 * j.copies),
             check_failures = 0, lease_owner = NULL, lease_expires_at = NULL
         FROM locked, unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS u(id, state, error, read)
         WHERE j.id = locked.id AND u.id = locked.id AND j.state = u.read
         RETURNING j.id"
    );
    let rows = db
        .query(
            &sql,
            &[&ids, &states, &errors, &read, &deadline.as_secs_f64()],
        )
        .await?;
    let written = rows
        .iter()
        .map(|row| row.try_get::<_, Uuid>("id"))
        .collect::<Result<HashSet<_>, _>>()?;
    Ok(moved
        .iter()
        .copied()
        .filter(|job| !written.contains(&job.id))
        .collect())
}
