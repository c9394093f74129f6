//! Reconciliation: download tasks whose report never reached management-api (a
//! report refused for a wrong secret or token, or given up after an hour of
//! retries) would leave their image `pending` forever. An image pending for
//! `MANAGEMENT_RECONCILE_SECS` whose download download-service took is checked with
//! `GET /downloads/{task}`:
//! - a finished task's result is applied exactly as its report would have been
//!   (`reports::apply`, the completion route's own path);
//! - a task still queued or running is left alone, and asked about next round;
//! - a task download-service does not know (lost, or deleted) fails the image with
//!   `unreachable`; an operator may retry it (`POST …/retry`). Asking for a new
//!   download instead would hide a download-service that loses tasks.
//!
//! download-service being unavailable (or refusing the token) changes nothing: the
//! image is asked about again next round. Images still being asked for are the
//! request loop's (`download_service`), not this one's. The rounds keep no state of
//! their own: what is pending, since when and as which task is in the catalog.
//!
//! [`Reconciler::reconcile_once`] is one round, which tests call directly with a
//! `now` of their choosing; the service runs it every quarter of the deadline
//! (between a quarter second and a minute).

use std::time::{Duration, Instant};

use actix_web::web;
use futures_util::StreamExt;
use pixpress_domain::download::{DownloadState, FailureReason};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::catalog::{DownloadResult, DownloadStage, Settled};
use crate::download_service::RequestError;
use crate::error::ManagementError;
use crate::reports::{self, Applied};
use crate::State;

/// Overdue images asked about at once.
const CONCURRENCY: usize = 8;

/// What a round did with one overdue image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciled {
    /// The task had completed: the image is `ready`, as if its report had arrived.
    Completed,
    /// The task had failed: the image is `failed` with the task's code.
    Failed,
    /// The task is still queued or running: asked about again next round.
    Running,
    /// download-service has no such task: the image is `failed` with `unreachable`.
    Lost,
    /// download-service never said which task it took, so there is nothing to ask
    /// about: the image is `failed` with `unreachable`.
    Untracked,
    /// download-service did not answer (down, 5xx, garbage): asked again next round.
    Unanswered,
    /// download-service refused to answer (a 401/403: check `DOWNLOAD_TOKEN`):
    /// asked again next round.
    Refused,
    /// The image moved on meanwhile (its report arrived, it was deleted or retried).
    Superseded,
}

impl Reconciled {
    pub fn as_str(self) -> &'static str {
        match self {
            Reconciled::Completed => "completed",
            Reconciled::Failed => "failed",
            Reconciled::Running => "running",
            Reconciled::Lost => "lost",
            Reconciled::Untracked => "untracked",
            Reconciled::Unanswered => "unanswered",
            Reconciled::Refused => "refused",
            Reconciled::Superseded => "superseded",
        }
    }
}

/// Checks overdue pending images at download-service. Cheap to clone.
#[derive(Clone)]
pub struct Reconciler {
    state: web::Data<State>,
    deadline: Duration,
}

impl Reconciler {
    pub(crate) fn new(state: web::Data<State>, deadline: Duration) -> Self {
        Self { state, deadline }
    }

    /// One round: every image pending since `deadline` before `now` whose download
    /// was taken, checked at download-service; what happened to each, by image id.
    pub async fn reconcile_once(&self, now: Instant) -> Vec<(i64, Reconciled)> {
        let overdue = self.state.catalog.overdue(now, self.deadline);
        futures_util::stream::iter(overdue)
            .map(|(image_id, stage)| async move { (image_id, self.check(image_id, stage).await) })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await
    }

    /// Runs a round every quarter of the deadline until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let period = (self.deadline / 4).clamp(Duration::from_millis(250), Duration::from_secs(60));
        loop {
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                () = stop.cancelled() => return,
            }
            tokio::select! {
                _ = self.reconcile_once(Instant::now()) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    async fn check(&self, image_id: i64, stage: DownloadStage) -> Reconciled {
        let outcome = match stage {
            DownloadStage::Task(task) => self.check_task(image_id, task).await,
            _ => self.fail_untracked(image_id, stage),
        };
        self.state
            .downloads
            .metrics
            .reconciled
            .with_label_values(&[outcome.as_str()])
            .inc();
        outcome
    }

    async fn check_task(&self, image_id: i64, task_id: Uuid) -> Reconciled {
        let task = match self.state.downloads.task(task_id).await {
            Ok(Some(task)) if task.id == task_id => task,
            Ok(Some(other)) => {
                log::warn!(
                    "download-service answered task {} when asked for {task_id}",
                    other.id
                );
                return Reconciled::Unanswered;
            }
            Ok(None) => return self.fail_lost(image_id, task_id),
            Err(RequestError::Unavailable(cause)) => {
                log::warn!("could not ask about image {image_id}'s task {task_id}: {cause}");
                return Reconciled::Unanswered;
            }
            Err(RequestError::Refused(_)) => return Reconciled::Refused,
        };
        if matches!(task.state, DownloadState::Queued | DownloadState::Running) {
            return Reconciled::Running;
        }
        match reports::apply(&self.state, image_id, task) {
            Ok(applied @ (Applied::Completed | Applied::Failed)) => {
                log::warn!(
                    "image {image_id}'s download report never arrived; task {task_id} had {}: applied",
                    applied.as_str()
                );
                if applied == Applied::Completed {
                    Reconciled::Completed
                } else {
                    Reconciled::Failed
                }
            }
            Ok(Applied::Unchanged)
            | Err(
                ManagementError::NoSuchImage(_)
                | ManagementError::OtherTask(_)
                | ManagementError::ReportConflict { .. },
            ) => Reconciled::Superseded,
            Err(e) => {
                log::warn!("image {image_id}'s task {task_id} is not a result: {e}");
                Reconciled::Unanswered
            }
        }
    }

    /// download-service does not know the task the image waits for.
    fn fail_lost(&self, image_id: i64, task_id: Uuid) -> Reconciled {
        let failed = DownloadResult::Failed {
            error: FailureReason::Unreachable.as_str().to_owned(),
        };
        match self.state.catalog.settle(image_id, task_id, failed) {
            Ok(Settled::Applied) => {
                log::warn!(
                    "download-service has no task {task_id}: image {image_id} failed as unreachable"
                );
                Reconciled::Lost
            }
            _ => Reconciled::Superseded,
        }
    }

    fn fail_untracked(&self, image_id: i64, stage: DownloadStage) -> Reconciled {
        let error = FailureReason::Unreachable.as_str();
        if self.state.catalog.fail_without_task(image_id, stage, error) {
            log::warn!(
                "image {image_id}'s report never arrived and its task is unknown: failed as unreachable"
            );
            Reconciled::Untracked
        } else {
            Reconciled::Superseded
        }
    }
}
