//! Wake-ups across processes through a real PostgreSQL: what an `Announcer` sends
//! after a commit reaches a `listen`er on another connection.

use std::sync::Arc;
use std::time::Duration;

use pixpress_kit::config::DatabaseArgs;
use pixpress_kit::db::Connector;
use pixpress_kit::notify::{listen, Announcer};
use pixpress_testkit::TestDatabase;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const CHANNEL: &str = "kit_notify_test";

#[tokio::test]
async fn an_announcement_wakes_a_listener_on_another_connection() {
    let db = TestDatabase::empty().await;
    let stop = CancellationToken::new();
    let wake = Arc::new(Notify::new());
    let connector = Connector::new(&DatabaseArgs::new(&db.url), Duration::from_secs(5)).unwrap();
    tokio::spawn(listen(connector, CHANNEL, Arc::clone(&wake), stop.clone()));
    let announcer = Announcer::new(db.pool(), CHANNEL);
    tokio::spawn(announcer.clone().run(stop.clone()));

    // The listener subscribes asynchronously: announce until a wake-up arrives.
    let woken = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            announcer.announce();
            if tokio::time::timeout(Duration::from_millis(200), wake.notified())
                .await
                .is_ok()
            {
                return;
            }
        }
    })
    .await;
    assert!(woken.is_ok(), "no wake-up within 10 s of announcing");

    // Announcements made while one NOTIFY is in flight are not lost.
    for _ in 0..1000 {
        announcer.announce();
    }
    let burst = tokio::time::timeout(Duration::from_secs(10), wake.notified()).await;
    assert!(burst.is_ok(), "a burst of announcements woke nobody");
    stop.cancel();
}
