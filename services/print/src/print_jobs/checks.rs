//! Reconciliation's own statements: record what asking a job's printer came to,
//! and watch the oldest jobs' ages. For jobs at a printer `next_attempt_at` is when
//! to ask next. Every record is guarded by the lease: a callback that moved the job
//! meanwhile released it, and wins. Claiming and failing are [`super::claim`] and
//! [`super::mark_failed`] at [`super::Stage::AtPrinter`], as the dispatcher's at
//! `Queued`; applying the printer's state is [`super::apply_report`], as for callbacks.

use std::time::Duration;

use pixpress_kit::db::{DbError, Sql};
use uuid::Uuid;

/// Releases the job until its next check, `delay` from now, with `check_failures`
/// checks in a row that could not reach its printer. False if it was no longer ours.
pub async fn check_later(
    db: &impl Sql,
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
    db: &impl Sql,
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

/// For each state a job passes on its way (queued, dispatched, printing): how many
/// jobs are in it, and the age in seconds of the oldest (0 when it has none), for
/// `kit::queue::watch_depths`. Index lookups (`print_jobs_state_idx`): ids are
/// UUIDv7, so the lowest id is the oldest job.
pub const QUEUE_DEPTHS: &str = "
    SELECT s.state,
           (SELECT count(*) FROM print_jobs WHERE state = s.state) AS depth,
           COALESCE((SELECT extract(epoch FROM now() - created_at)::float8
                     FROM print_jobs WHERE state = s.state
                     ORDER BY id LIMIT 1), 0) AS oldest_age
    FROM (VALUES ('queued'), ('dispatched'), ('printing')) AS s(state)";
