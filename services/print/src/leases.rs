//! A replica's leases on the print jobs at one [`Stage`]: the dispatcher holds them
//! on queued jobs, reconciliation on jobs at their printer. Claiming due jobs and
//! failing one are the same for both but for the stage; what each does with a job
//! in between (and records with the other statements of [`print_jobs`]) is its own.

use std::time::Duration;

use pixpress_domain::JobState;
use pixpress_kit::db::{Database, DbError};

use crate::metrics::PrintMetrics;
use crate::print_jobs::{self, ClaimedJob, Stage};

pub struct JobLeases {
    pub db: Database,
    /// This replica's name on its leases.
    pub owner: String,
    stage: Stage,
    /// How long a claimed job is this replica's before another may claim it.
    lease: Duration,
    metrics: PrintMetrics,
}

impl JobLeases {
    pub fn new(
        stage: Stage,
        db: Database,
        owner: String,
        lease: Duration,
        metrics: PrintMetrics,
    ) -> Self {
        Self {
            db,
            stage,
            owner,
            lease,
            metrics,
        }
    }

    /// Leases up to `limit` due jobs at the stage, within the database deadline.
    pub async fn claim(&self, limit: usize) -> Result<Vec<ClaimedJob>, DbError> {
        let (owner, lease) = (self.owner.as_str(), self.lease);
        self.db
            .with_connection(async |conn| {
                print_jobs::claim(conn, self.stage, owner, lease, limit as i64).await
            })
            .await
    }

    /// Gives up on `job`: `failed` with `reason`, counted as a transition unless it
    /// was no longer ours.
    pub async fn fail(&self, job: &ClaimedJob, reason: &str) -> Result<(), DbError> {
        let owner = self.owner.as_str();
        let failed = self
            .db
            .with_connection(async |conn| {
                print_jobs::mark_failed(conn, self.stage, job.id, owner, reason).await
            })
            .await?;
        if failed {
            self.metrics.transition(Some(job.state), JobState::Failed);
        }
        Ok(())
    }
}
