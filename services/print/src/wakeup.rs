//! `LISTEN print_jobs_queued` on a dedicated connection, turned into wake-ups for
//! the local dispatcher. Reconnects with backoff; while it is down the dispatcher's
//! poll still finds new jobs, only later.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use crate::print_jobs::QUEUED_CHANNEL;

pub async fn listen(config: tokio_postgres::Config, wake: Arc<Notify>, stop: CancellationToken) {
    let mut delay = Duration::from_millis(200);
    while !stop.is_cancelled() {
        match listen_once(&config, &wake, &stop).await {
            Ok(()) => return,
            Err(e) => log::warn!("LISTEN {QUEUED_CHANNEL} lost ({e}); reconnecting in {delay:?}"),
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
    wake: &Notify,
    stop: &CancellationToken,
) -> Result<(), String> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let statement = format!("LISTEN {QUEUED_CHANNEL}");
    let subscribe = client.batch_execute(&statement);
    tokio::pin!(subscribe);
    let mut subscribed = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            result = &mut subscribe, if !subscribed => {
                result.map_err(|e| e.to_string())?;
                subscribed = true;
                log::debug!("listening on {QUEUED_CHANNEL}");
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
