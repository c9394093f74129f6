//! The loop every queue worker runs: claim what is due whenever a slot is free,
//! work on each claimed item in its own task (at most `concurrency` at once), and
//! between rounds wait for a wake-up (`NOTIFY`), the poll tick or a free slot.
//!
//! On stop it claims nothing more and waits for the items in hand: claimed work is
//! finished and recorded rather than abandoned on a lease.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::db::DbError;
use crate::retry::Backoff;

/// How often to look for due retries and expired leases without a wake-up.
pub const POLL: Duration = Duration::from_millis(500);
const DB_RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));

/// Work claimed from a table, one item at a time.
pub trait QueueWorker: Send + Sync + 'static {
    type Item: Send + 'static;

    /// What the log calls the items, e.g. "print jobs".
    const WHAT: &'static str;

    /// Leases up to `limit` due items.
    fn claim(&self, limit: usize) -> impl Future<Output = Result<Vec<Self::Item>, DbError>> + Send;

    /// Does and records one item.
    fn work(self: Arc<Self>, item: Self::Item) -> impl Future<Output = ()> + Send;

    /// Anything to do once per round, before claiming (e.g. due callbacks).
    fn between_rounds(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Runs `worker` until `stop`, then waits for the items in hand.
pub async fn run<W: QueueWorker>(
    worker: Arc<W>,
    concurrency: usize,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    let mut in_flight = JoinSet::new();
    let mut db_failures = 0;
    while !stop.is_cancelled() {
        while in_flight.try_join_next().is_some() {}
        worker.between_rounds().await;
        let free = slots.available_permits();
        let mut claimed_all = false;
        if free > 0 {
            match worker.claim(free).await {
                Ok(items) => {
                    db_failures = 0;
                    claimed_all = items.len() == free;
                    for item in items {
                        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                            break;
                        };
                        let worker = Arc::clone(&worker);
                        in_flight.spawn(async move {
                            worker.work(item).await;
                            drop(slot);
                        });
                    }
                }
                Err(e) => {
                    db_failures += 1;
                    let delay = DB_RETRY.delay(db_failures);
                    log::warn!("cannot claim {} (retrying in {delay:?}): {e}", W::WHAT);
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    continue;
                }
            }
        }
        if claimed_all {
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            Some(_) = in_flight.join_next(), if free == 0 => {}
        }
    }
    while in_flight.join_next().await.is_some() {}
}
