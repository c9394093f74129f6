//! Wake-ups across replicas: [`Announcer`] sends `NOTIFY` once work is committed, and
//! [`listen`] turns the notifications into wake-ups for local workers, within
//! milliseconds. Both are hints: a lost notification only delays the work until the
//! workers' poll finds it.
//!
//! The notification is sent after the commit, not inside the inserting transaction:
//! a transaction that notifies takes PostgreSQL's global notify-queue lock while it
//! commits, which serialized the inserts and halved their rate (BENCHMARKS.md).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use crate::db::{ConnectError, Connector, PgPool, Sql};
use crate::retry::Backoff;

/// Announces committed work on a channel. [`Announcer::announce`] never waits: the
/// announcements made while one `NOTIFY` is being sent are covered by the next, so a
/// burst of commits costs the database a few notifications, not one each.
#[derive(Clone)]
pub struct Announcer {
    pool: PgPool,
    channel: &'static str,
    pending: Arc<Notify>,
}

impl Announcer {
    pub fn new(pool: PgPool, channel: &'static str) -> Self {
        Self {
            pool,
            channel,
            pending: Arc::new(Notify::new()),
        }
    }

    /// Call after the commit of work that the channel's listeners should pick up.
    pub fn announce(&self) {
        self.pending.notify_one();
    }

    /// Sends the notifications until `stop` (run it in the background).
    pub async fn run(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.pending.notified() => {}
            }
            if let Err(e) = self.notify().await {
                let channel = self.channel;
                log::debug!("NOTIFY {channel} failed ({e}); the poll will find the work");
            }
        }
    }

    async fn notify(&self) -> Result<(), crate::db::DbError> {
        let conn = self.pool.get().await?;
        conn.execute("SELECT pg_notify($1, '')", &[&self.channel])
            .await?;
        Ok(())
    }
}

/// Why a `LISTEN` connection ended.
#[derive(Debug, thiserror::Error)]
enum ListenLost {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("{}", crate::db::describe_fully(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("the server closed the connection")]
    Closed,
}

/// Wakes `wake` on every notification on `channel` until `stop`, on a connection
/// of its own (made as the pool's are: same TLS, same deadline).
pub async fn listen(
    connector: Connector,
    channel: &'static str,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    const RECONNECT: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut failures = 0;
    while !stop.is_cancelled() {
        let mut subscribed = false;
        let result = listen_once(&connector, channel, &wake, &stop, &mut subscribed).await;
        if subscribed {
            // The connection worked: the next outage starts over with a short delay.
            failures = 0;
        }
        failures += 1;
        let delay = RECONNECT.delay(failures);
        match result {
            Ok(()) => return,
            Err(e) => log::warn!("LISTEN {channel} lost ({e}); reconnecting in {delay:?}"),
        }
        // Jobs queued while we were away are found by the poll; wake it now anyway.
        wake.notify_one();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

async fn listen_once(
    connector: &Connector,
    channel: &str,
    wake: &Notify,
    stop: &CancellationToken,
    subscribed: &mut bool,
) -> Result<(), ListenLost> {
    let (client, mut connection) = connector.open().await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let statement = format!("LISTEN {channel}");
    let subscribe = client.batch_execute(&statement);
    tokio::pin!(subscribe);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            result = &mut subscribe, if !*subscribed => {
                result?;
                *subscribed = true;
                log::debug!("listening on {channel}");
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err(ListenLost::Closed),
            }
        }
    }
}
