//! Reconciliation's statements: claim the jobs at a printer (`dispatched`,
//! `printing`) whose deadline passed, and record what asking the printer came to.
//! For these jobs `next_attempt_at` is when to ask next. Every record is guarded by
//! the lease: a callback that moved the job meanwhile released it, and wins.
//! Applying the printer's state is [`super::apply_report`], as for callbacks.

use std::time::Duration;

use pixpress_domain::JobState;
use pixpress_kit::db::DbError;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::{claimed_from_row, ClaimedJob, CLAIMED_COLUMNS};

/// Leases up to `limit` jobs at a printer whose deadline passed to `owner`, oldest
/// deadline first; `SKIP LOCKED` lets replicas share them.
pub async fn claim_due(
    db: &impl GenericClient,
    owner: &str,
    lease: Duration,
    limit: i64,
) -> Result<Vec<ClaimedJob>, DbError> {
    let sql = format!(
        "UPDATE print_jobs AS j
         SET lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2)
         FROM (SELECT id FROM print_jobs
               WHERE state IN ('dispatched', 'printing') AND next_attempt_at <= now()
                 AND (lease_expires_at IS NULL OR lease_expires_at < now())
               ORDER BY next_attempt_at
               LIMIT $3
               FOR UPDATE SKIP LOCKED) AS due
         WHERE j.id = due.id
         RETURNING {CLAIMED_COLUMNS}"
    );
    let rows = db
        .query(&sql, &[&owner, &lease.as_secs_f64(), &limit])
        .await?;
    rows.iter().map(claimed_from_row).collect()
}

/// Releases the job until its next check, `delay` from now, with `check_failures`
/// checks in a row that could not reach its printer. False if it was no longer ours.
pub async fn check_later(
    db: &impl GenericClient,
    id: Uuid,
    owner: &str,
    delay: Duration,
    check_failures: i32,
) -> Result<bool, DbError> {
    let n = db
        .execute(
            "UPDATE print_jobs
             SET next_attempt_at = now() + make_interval(secs => $3), check_failures = $4,
                 lease_owner = NULL, lease_expires_at = NULL
             WHERE id = $1 AND lease_owner = $2 AND state IN ('dispatched', 'printing')",
            &[&id, &owner, &delay.as_secs_f64(), &check_failures],
        )
        .await?;
    Ok(n == 1)
}

/// The job was sent again to a printer that had lost it: one more resend (and
/// attempt), its deadline restarts. False if it was no longer ours.
pub async fn record_resend(
    db: &impl GenericClient,
    id: Uuid,
    owner: &str,
    deadline: Duration,
) -> Result<bool, DbError> {
    let n = db
        .execute(
            "UPDATE print_jobs
             SET resends = resends + 1, attempts = attempts + 1, check_failures = 0,
                 next_attempt_at = now() + make_interval(secs => $3::float8 * copies),
                 updated_at = now(), lease_owner = NULL, lease_expires_at = NULL
             WHERE id = $1 AND lease_owner = $2 AND state IN ('dispatched', 'printing')",
            &[&id, &owner, &deadline.as_secs_f64()],
        )
        .await?;
    Ok(n == 1)
}

/// Gives up on a job at its printer: `failed` with `reason`. False if it was no
/// longer ours.
pub async fn mark_failed(
    db: &impl GenericClient,
    id: Uuid,
    owner: &str,
    reason: &str,
) -> Result<bool, DbError> {
    let n = db
        .execute(
            "UPDATE print_jobs
             SET state = 'failed', error = $3, updated_at = now(),
                 lease_owner = NULL, lease_expires_at = NULL
             WHERE id = $1 AND lease_owner = $2 AND state IN ('dispatched', 'printing')",
            &[&id, &owner, &reason],
        )
        .await?;
    Ok(n == 1)
}

/// The states whose oldest job's age is watched.
pub const WATCHED: [JobState; 3] = [JobState::Queued, JobState::Dispatched, JobState::Printing];

/// For each watched state, the age in seconds of its oldest job (0 when it has
/// none). Three index lookups: ids are UUIDv7, so the lowest id is the oldest job.
pub async fn oldest_ages(db: &impl GenericClient) -> Result<Vec<(JobState, f64)>, DbError> {
    let states: Vec<&str> = WATCHED.iter().map(|s| s.as_str()).collect();
    let rows = db
        .query(
            "SELECT s.state,
                    COALESCE((SELECT extract(epoch FROM now() - created_at)::float8
                              FROM print_jobs WHERE state = s.state
                              ORDER BY id LIMIT 1), 0) AS age
             FROM unnest($1::text[]) AS s(state)",
            &[&states],
        )
        .await?;
    rows.iter()
        .map(|row| Ok((super::state_from_row(row)?, row.try_get("age")?)))
        .collect()
}
