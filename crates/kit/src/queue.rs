//! Work kept in a table and done by workers in every replica: [`WorkQueue`] wakes
//! the workers when work is committed, and [`run`] is the loop each replica's
//! workers run: claim what is due whenever a slot is free, work on each claimed item
//! in its own task (at most `concurrency` at once), and between rounds wait for a
//! wake-up, the poll tick or a free slot. [`step`] is one round, for tests;
//! [`scoped`] runs a worker's work on one item under the item's request context;
//! [`watch_depths`] keeps each queue's depth and oldest item's age on `/metrics`.
//!
//! On stop the loop claims nothing more and waits for the items in hand: claimed
//! work is finished and recorded rather than abandoned on a lease.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntGaugeVec;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::db::{Database, DbError, Sql};
use crate::notify::{self, Announcer};
use crate::request_id::RequestContext;
use crate::retry::Backoff;
use crate::server::Background;

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
}

/// A table of work and its wake-ups: [`WorkQueue::announce`] after committing work
/// wakes this replica's workers at once and, through one coalesced `NOTIFY` on the
/// queue's channel, every other replica's.
#[derive(Clone)]
pub struct WorkQueue {
    database: Database,
    channel: &'static str,
    wake: Arc<Notify>,
    announcer: Announcer,
}

impl WorkQueue {
    /// The queue announced on `channel`; its `NOTIFY` sender runs in `background`.
    pub fn start(database: &Database, channel: &'static str, background: &mut Background) -> Self {
        let announcer = Announcer::new(database.pool.clone(), channel);
        background.spawn({
            let announcer = announcer.clone();
            move |stop| announcer.run(stop)
        });
        Self {
            database: database.clone(),
            channel,
            wake: Arc::new(Notify::new()),
            announcer,
        }
    }

    /// Call after the commit of new or newly due work. Never waits.
    pub fn announce(&self) {
        self.wake.notify_one();
        self.announcer.announce();
    }

    /// Runs `worker` in `background` with `concurrency` slots, once the schema is
    /// current, woken by [`WorkQueue::announce`], by other replicas' `NOTIFY`s on the
    /// channel and by the poll.
    pub fn run_workers<W: QueueWorker>(
        &self,
        background: &mut Background,
        worker: Arc<W>,
        concurrency: usize,
    ) {
        let listen_config = self.database.listen_config().clone();
        let (channel, wake) = (self.channel, Arc::clone(&self.wake));
        background.spawn(move |stop| notify::listen(listen_config, channel, wake, stop));
        let (database, wake) = (self.database.clone(), Arc::clone(&self.wake));
        background.spawn(move |stop| async move {
            if database.wait_until_migrated(&stop).await {
                run(worker, concurrency, wake, stop).await;
            }
        });
    }
}

/// One round, as the loop does it: claims up to `limit` due items and works them
/// all (concurrently) to the end. Returns how many it claimed. For tests, which
/// call it instead of waiting for the loop.
pub async fn step<W: QueueWorker>(worker: &Arc<W>, limit: usize) -> Result<usize, DbError> {
    let items = worker.claim(limit).await?;
    let claimed = items.len();
    let work = items.into_iter().map(|item| Arc::clone(worker).work(item));
    futures_util::future::join_all(work).await;
    Ok(claimed)
}

/// Works one claimed item (a [`QueueWorker::work`]) under `context` (the item's
/// request id, and the trace of the request that created it:
/// [`RequestContext::for_item`]), so its log lines and outgoing calls carry them.
/// Work it could not record is logged as "could not record {what}"; the item's
/// lease will expire and it will be claimed again.
pub async fn scoped(
    context: RequestContext,
    what: impl std::fmt::Display,
    work: impl Future<Output = Result<(), DbError>>,
) {
    context
        .scope(async {
            if let Err(e) = work.await {
                log::error!("could not record {what}: {e}");
            }
        })
        .await
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

/// How often [`watch_depths`] reads the queues.
const DEPTH_REFRESH: Duration = Duration::from_secs(5);

/// The gauges [`watch_depths`] keeps, labelled by queue (or state).
pub struct DepthGauges {
    /// Items waiting or in hand.
    pub depth: IntGaugeVec,
    /// Age in seconds of the oldest of them (0 when there is none).
    pub oldest_age: IntGaugeVec,
}

/// Keeps `gauges` at what `sql` reads, every few seconds, off the scrape path. `sql`
/// takes no parameters and returns one row per queue: its label (text), `depth`
/// (bigint) and `oldest_age` (float8, seconds). While the database cannot answer,
/// the last values stay.
pub async fn watch_depths(
    db: Database,
    sql: &'static str,
    gauges: DepthGauges,
    stop: CancellationToken,
) {
    if !db.wait_until_migrated(&stop).await {
        return;
    }
    loop {
        let read = db
            .with_connection(async |conn| Ok(conn.query(sql, &[]).await?))
            .await;
        match read {
            Ok(rows) => {
                for row in rows {
                    let (Ok(queue), Ok(depth), Ok(age)) = (
                        row.try_get::<_, &str>(0),
                        row.try_get::<_, i64>("depth"),
                        row.try_get::<_, f64>("oldest_age"),
                    ) else {
                        log::warn!("the queue depth query returns unreadable rows: {sql}");
                        return;
                    };
                    gauges.depth.with_label_values(&[queue]).set(depth);
                    gauges
                        .oldest_age
                        .with_label_values(&[queue])
                        .set(age as i64);
                }
            }
            Err(e) => log::debug!("cannot read the queues' depths: {e}"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(DEPTH_REFRESH) => {}
        }
    }
}
