//! `LISTEN` on a dedicated connection, turned into wake-ups for local workers (a
//! `NOTIFY` sent in the transaction that queues work wakes them within
//! milliseconds). Reconnects with backoff; while it is down, the workers' poll still
//! finds new work, only later.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

/// Wakes `wake` on every notification on `channel` until `stop`.
pub async fn listen(
    config: tokio_postgres::Config,
    channel: &'static str,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut delay = Duration::from_millis(200);
    while !stop.is_cancelled() {
        match listen_once(&config, channel, &wake, &stop).await {
            Ok(()) => return,
            Err(e) => log::warn!("LISTEN {channel} lost ({e}); reconnecting in {delay:?}"),
        }
        // Jobs queued while we were away are found by the poll; wake it now anyway.
        wake.notify_one();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    channel: &str,
    wake: &Notify,
    stop: &CancellationToken,
) -> Result<(), String> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let statement = format!("LISTEN {channel}");
    let subscribe = client.batch_execute(&statement);
    tokio::pin!(subscribe);
    let mut subscribed = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            result = &mut subscribe, if !subscribed => {
                result.map_err(|e| e.to_string())?;
                subscribed = true;
                log::debug!("listening on {channel}");
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("the server closed the connection".into()),
            }
        }
    }
}
