//! The `print_jobs` table: every statement print-service runs against it
//! (those only reconciliation runs are in [`checks`], printers' reports in
//! `reports.rs`).

pub mod checks;
mod reports;

pub use reports::{apply_report, apply_reports, PrinterReport, ReportOutcome, ReportWriter};

use std::time::Duration;

use chrono::{DateTime, Utc};
use pixpress_domain::job::CreatePrintJob;
use pixpress_domain::{JobState, PrintJob};
use pixpress_kit::db::{DbError, Sql};
use tokio_postgres::Row;
use uuid::Uuid;

/// The columns a [`PrintJob`] is read from (by name, in [`job_from_row`]).
const JOB_COLUMNS: &str =
    "id, user_id, file_id, copies, state, printer_id, attempts, created_at, updated_at, error";

/// Channel notified when a job becomes dispatchable.
pub const QUEUED_CHANNEL: &str = "print_jobs_queued";

fn job_from_row(row: &Row) -> Result<PrintJob, DbError> {
    Ok(PrintJob {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        file_id: row.try_get("file_id")?,
        copies: row.try_get("copies")?,
        state: state_from_row(row)?,
        printer_id: row.try_get("printer_id")?,
        attempts: row.try_get("attempts")?,
        created_at: row.try_get::<_, DateTime<Utc>>("created_at")?,
        updated_at: row.try_get::<_, DateTime<Utc>>("updated_at")?,
        error: row.try_get("error")?,
    })
}

/// The row's `state`; one this code does not know is an error, never a guess.
fn state_from_row(row: &Row) -> Result<JobState, DbError> {
    let state: &str = row.try_get("state")?;
    JobState::parse(state).ok_or_else(|| DbError::Corrupt(format!("unknown job state {state:?}")))
}

/// A column the schema allows to be NULL but that a row in this state must have.
fn required<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    column: &str,
) -> Result<T, DbError> {
    row.try_get::<_, Option<T>>(column)?
        .ok_or_else(|| DbError::Corrupt(format!("a print job has no {column} where it must")))
}

/// A job about to be queued, with what the management API said about it.
pub struct NewJob {
    /// What identifies the request, for idempotent retries.
    pub fingerprint: String,
    pub user_id: i64,
    pub file_id: i64,
    pub copies: i32,
    pub printer_id: i64,
    pub printer_url: String,
    pub image_url: String,
    pub idempotency_key: Option<String>,
    /// The request's `traceparent`, which the job's dispatch and checks continue.
    pub traceparent: Option<String>,
}

impl NewJob {
    /// What identifies the request for idempotent retries (the seed's form when no
    /// printer is chosen, so keys stored before printers could be chosen still match).
    pub fn fingerprint(request: &CreatePrintJob) -> String {
        let CreatePrintJob {
            user_id,
            file_id,
            copies,
            printer_id,
        } = request;
        match printer_id {
            None => format!("{user_id}:{file_id}:{copies}"),
            Some(printer) => format!("{user_id}:{file_id}:{copies}:printer={printer}"),
        }
    }
}

/// Inserts (and commits) a queued job; announce it to the dispatchers afterwards.
/// `None` when the user's idempotency key is already taken.
pub async fn insert(db: &impl Sql, job: &NewJob) -> Result<Option<PrintJob>, DbError> {
    let sql = format!(
        "INSERT INTO print_jobs (id, user_id, file_id, copies, state, correlation_id,
                                 printer_id, printer_url, image_url,
                                 idempotency_key, request_fingerprint, traceparent)
         VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL
         DO NOTHING
         RETURNING {JOB_COLUMNS}"
    );
    let row = db
        .query_opt(
            &sql,
            &[
                &Uuid::now_v7(),
                &job.user_id,
                &job.file_id,
                &job.copies,
                &Uuid::new_v4(),
                &job.printer_id,
                &job.printer_url,
                &job.image_url,
                &job.idempotency_key,
                &job.fingerprint,
                &job.traceparent,
            ],
        )
        .await?;
    row.as_ref().map(job_from_row).transpose()
}

/// Points the queued jobs of each printer `(id, url)` at its current URL; returns how
/// many moved. Jobs already at a printer stay with it: that printer calls back.
pub async fn reroute(db: &impl Sql, printers: &[(i64, String)]) -> Result<u64, DbError> {
    let (ids, urls): (Vec<i64>, Vec<&str>) =
        printers.iter().map(|(id, url)| (*id, url.as_str())).unzip();
    let moved = db
        .execute(
            "UPDATE print_jobs AS j SET printer_url = r.url, updated_at = now()
             FROM unnest($1::bigint[], $2::text[]) AS r(id, url)
             WHERE j.printer_id = r.id AND j.state = 'queued' AND j.printer_url <> r.url",
            &[&ids, &urls],
        )
        .await?;
    Ok(moved)
}

/// The job a user created with `key`, and the fingerprint of its request.
pub async fn find_by_idempotency_key(
    db: &impl Sql,
    user_id: i64,
    key: &str,
) -> Result<Option<(PrintJob, String)>, DbError> {
    let sql = format!(
        "SELECT {JOB_COLUMNS}, request_fingerprint FROM print_jobs
         WHERE user_id = $1 AND idempotency_key = $2"
    );
    let Some(row) = db.query_opt(&sql, &[&user_id, &key]).await? else {
        return Ok(None);
    };
    let fingerprint: String = required(&row, "request_fingerprint")?;
    Ok(Some((job_from_row(&row)?, fingerprint)))
}

pub async fn get(db: &impl Sql, id: Uuid) -> Result<Option<PrintJob>, DbError> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM print_jobs WHERE id = $1");
    let row = db.query_opt(&sql, &[&id]).await?;
    row.as_ref().map(job_from_row).transpose()
}

/// Which jobs to list, newest first, starting after `before` (a keyset cursor).
pub struct JobFilter {
    pub user_id: Option<i64>,
    pub state: Option<JobState>,
    pub before: Option<Uuid>,
    pub limit: i64,
}

/// Up to `limit` jobs, newest first. Ids are UUIDv7 (time-ordered and unique), so
/// "id < cursor" pages are stable while new jobs arrive.
pub async fn list(db: &impl Sql, filter: &JobFilter) -> Result<Vec<PrintJob>, DbError> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM print_jobs
         WHERE ($1::bigint IS NULL OR user_id = $1)
           AND ($2::text IS NULL OR state = $2)
           AND ($3::uuid IS NULL OR id < $3)
         ORDER BY id DESC
         LIMIT $4"
    );
    let state = filter.state.map(JobState::as_str);
    db.query(
        &sql,
        &[&filter.user_id, &state, &filter.before, &filter.limit],
    )
    .await?
    .iter()
    .map(job_from_row)
    .collect()
}

pub enum CancelOutcome {
    Canceled(PrintJob),
    NotFound,
    /// The job has moved on.
    NotCancelable(JobState),
    /// A dispatcher is handing the job to its printer right now.
    BeingDispatched,
}

/// Cancels a queued job that no dispatcher holds.
pub async fn cancel(db: &impl Sql, id: Uuid) -> Result<CancelOutcome, DbError> {
    debug_assert!(JobState::Queued.can_transition_to(JobState::Canceled));
    let sql = format!(
        "UPDATE print_jobs SET state = 'canceled', updated_at = now(), next_attempt_at = now()
         WHERE id = $1 AND state = 'queued'
           AND (lease_expires_at IS NULL OR lease_expires_at < now())
         RETURNING {JOB_COLUMNS}"
    );
    if let Some(row) = db.query_opt(&sql, &[&id]).await? {
        return Ok(CancelOutcome::Canceled(job_from_row(&row)?));
    }
    Ok(match get(db, id).await? {
        None => CancelOutcome::NotFound,
        Some(job) if job.state == JobState::Queued => CancelOutcome::BeingDispatched,
        Some(job) => CancelOutcome::NotCancelable(job.state),
    })
}

pub enum RetryOutcome {
    /// Back in the queue; what it had failed with.
    Queued {
        job: PrintJob,
        previous_error: Option<String>,
    },
    NotFound,
    /// Only a failed job can be retried; the job's state.
    NotFailed(JobState),
}

/// An operator's retry: a failed job goes back to `queued`, due at once, with its
/// attempts and error reset and a fresh correlation id, so its printer prints it
/// anew (it would take the old id for a repeat) and late reports about the failed
/// attempt find no job. Its dispatch continues the retry's trace (`traceparent`),
/// or the original request's when the retry has none.
pub async fn retry(
    db: &impl Sql,
    id: Uuid,
    traceparent: Option<&str>,
) -> Result<RetryOutcome, DbError> {
    debug_assert!(JobState::Failed.can_retry());
    let sql = format!(
        "UPDATE print_jobs
         SET state = 'queued', attempts = 0, resends = 0, check_failures = 0, error = NULL,
             correlation_id = $2, next_attempt_at = now(), updated_at = now(),
             lease_owner = NULL, lease_expires_at = NULL,
             traceparent = COALESCE($3, traceparent)
         FROM (SELECT id AS failed_id, error AS previous_error FROM print_jobs
               WHERE id = $1 AND state = 'failed'
               FOR UPDATE) AS failed
         WHERE id = failed.failed_id
         RETURNING {JOB_COLUMNS}, previous_error"
    );
    if let Some(row) = db
        .query_opt(&sql, &[&id, &Uuid::new_v4(), &traceparent])
        .await?
    {
        return Ok(RetryOutcome::Queued {
            job: job_from_row(&row)?,
            previous_error: row.try_get("previous_error")?,
        });
    }
    Ok(match get(db, id).await? {
        None => RetryOutcome::NotFound,
        Some(job) => RetryOutcome::NotFailed(job.state),
    })
}

/// A job a dispatcher (or reconciliation) holds the lease on, with what it needs to
/// send it or ask its printer about it.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub correlation_id: Uuid,
    pub state: JobState,
    pub printer_id: i64,
    pub printer_url: String,
    pub image_url: String,
    pub copies: i32,
    /// Attempts made before this one.
    pub attempts: i32,
    /// Times reconciliation sent it again to a printer that did not know it.
    pub resends: i32,
    /// Checks in a row that could not reach its printer.
    pub check_failures: i32,
    pub created_at: DateTime<Utc>,
    /// The `traceparent` of the request that created (or retried) it.
    pub traceparent: Option<String>,
}

/// What a claim returns, read by [`claimed_from_row`].
const CLAIMED_COLUMNS: &str = "j.id, j.correlation_id, j.state, j.printer_id, j.printer_url, \
     j.image_url, j.copies, j.attempts, j.resends, j.check_failures, j.created_at, j.traceparent";

fn claimed_from_row(row: &Row) -> Result<ClaimedJob, DbError> {
    Ok(ClaimedJob {
        id: row.try_get("id")?,
        correlation_id: row.try_get("correlation_id")?,
        state: state_from_row(row)?,
        printer_id: required(row, "printer_id")?,
        printer_url: required(row, "printer_url")?,
        image_url: required(row, "image_url")?,
        copies: row.try_get("copies")?,
        attempts: row.try_get("attempts")?,
        resends: row.try_get("resends")?,
        check_failures: row.try_get("check_failures")?,
        created_at: row.try_get("created_at")?,
        traceparent: row.try_get("traceparent")?,
    })
}

/// Where the jobs a worker leases stand: the dispatcher's are `queued`,
/// reconciliation's at their printer. A claim takes the due jobs at a stage, and a
/// failure is recorded only for a job still there (and still leased).
#[derive(Debug, Clone, Copy)]
pub enum Stage {
    /// `queued`: due when its next attempt is.
    Queued,
    /// `dispatched` or `printing`: due when its deadline at the printer passes.
    AtPrinter,
}

impl Stage {
    /// The condition on `state` of a job at this stage.
    fn condition(self) -> &'static str {
        match self {
            Stage::Queued => "state = 'queued'",
            Stage::AtPrinter => "state IN ('dispatched', 'printing')",
        }
    }
}

/// Leases up to `limit` due, unleased (or lease-expired) jobs at `stage` to `owner`,
/// the earliest due first. `SKIP LOCKED` lets replicas claim side by side without
/// waiting on each other.
pub async fn claim(
    db: &impl Sql,
    stage: Stage,
    owner: &str,
    lease: Duration,
    limit: i64,
) -> Result<Vec<ClaimedJob>, DbError> {
    let sql = format!(
        "UPDATE print_jobs AS j
         SET lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2)
         FROM (SELECT id FROM print_jobs
               WHERE {} AND next_attempt_at <= now()
                 AND (lease_expires_at IS NULL OR lease_expires_at < now())
               ORDER BY next_attempt_at
               LIMIT $3
               FOR UPDATE SKIP LOCKED) AS due
         WHERE j.id = due.id
         RETURNING {CLAIMED_COLUMNS}",
        stage.condition()
    );
    let rows = db
        .query(&sql, &[&owner, &lease.as_secs_f64(), &limit])
        .await?;
    rows.iter().map(claimed_from_row).collect()
}

/// The start of a statement that updates many jobs at once (the dispatcher's marks,
/// a batch of printer reports): `locked` holds the jobs whose ids are in `$1`, their
/// row locks taken in id order (a sort under `FOR UPDATE` locks in the sorted order),
/// and the update joins it, so it touches no job before it is locked. Two such
/// statements on the same jobs then wait on each other in one order and cannot
/// deadlock, as they did (40P01) when each locked in the order of its join.
pub(crate) const LOCKED_IN_ORDER: &str = "WITH locked AS MATERIALIZED (
    SELECT id FROM print_jobs WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE)";

/// Their printers took these jobs: each `queued` → `dispatched` (unless its
/// callback already moved it further), lease released, checked at its printer after
/// `deadline` per copy; one statement for them all (the dispatcher's group write,
/// `kit::batch`). For each job, in order: false if its lease was lost meanwhile.
pub async fn mark_dispatched(
    db: &impl Sql,
    ids: &[Uuid],
    owner: &str,
    deadline: Duration,
) -> Result<Vec<bool>, DbError> {
    let sql = format!(
        "{LOCKED_IN_ORDER}
         UPDATE print_jobs AS j
         SET state = CASE WHEN j.state = 'queued' THEN 'dispatched' ELSE j.state END,
             attempts = j.attempts + 1, error = NULL, updated_at = now(),
             next_attempt_at = now() + make_interval(secs => $3::float8 * j.copies),
             lease_owner = NULL, lease_expires_at = NULL
         FROM locked
         WHERE j.id = locked.id AND j.lease_owner = $2
         RETURNING j.id"
    );
    let rows = db
        .query(&sql, &[&ids, &owner, &deadline.as_secs_f64()])
        .await?;
    let marked = rows
        .iter()
        .map(|row| row.try_get::<_, Uuid>("id"))
        .collect::<Result<std::collections::HashSet<_>, _>>()?;
    Ok(ids.iter().map(|id| marked.contains(id)).collect())
}

/// Gives the job back to the queue, due again after `delay`. `counts` says whether
/// this was a real attempt (a breaker that never let it out is not).
pub async fn retry_later(
    db: &impl Sql,
    id: Uuid,
    owner: &str,
    delay: Duration,
    reason: &str,
    counts: bool,
) -> Result<(), DbError> {
    db.execute(
        "UPDATE print_jobs
         SET attempts = attempts + CASE WHEN $5 THEN 1 ELSE 0 END,
             next_attempt_at = now() + make_interval(secs => $3),
             error = $4, updated_at = now(), lease_owner = NULL, lease_expires_at = NULL
         WHERE id = $1 AND lease_owner = $2 AND state = 'queued'",
        &[&id, &owner, &delay.as_secs_f64(), &reason, &counts],
    )
    .await?;
    Ok(())
}

/// Gives up on a job at `stage`: `failed` with `reason`. A queued job's failure
/// ends an attempt; a job at its printer had its attempt counted when it was sent.
/// False if it was no longer ours.
pub async fn mark_failed(
    db: &impl Sql,
    stage: Stage,
    id: Uuid,
    owner: &str,
    reason: &str,
) -> Result<bool, DbError> {
    let sql = format!(
        "UPDATE print_jobs
         SET state = 'failed', error = $3, updated_at = now(),
             attempts = CASE WHEN state = 'queued' THEN attempts + 1 ELSE attempts END,
             lease_owner = NULL, lease_expires_at = NULL
         WHERE id = $1 AND lease_owner = $2 AND {}",
        stage.condition()
    );
    let n = db.execute(&sql, &[&id, &owner, &reason]).await?;
    Ok(n == 1)
}
