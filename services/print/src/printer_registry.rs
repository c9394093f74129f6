//! Follows the management API's printer registry, so that a printer an operator moves
//! (`PUT /printers/{id}` with a new URL) gets its queued jobs at the new URL. A job
//! keeps the URL its lookup gave it until then; jobs already handed to a printer
//! stay with that printer, which calls back. Disabling a printer only stops new
//! lookups naming it: jobs already taken still print.

use std::time::Duration;

use pixpress_kit::db::Database;
use tokio_util::sync::CancellationToken;

use crate::management::ManagementClient;
use crate::print_jobs;

/// Reads the registry every `every` until `stop`, rerouting queued jobs of moved
/// printers. A registry that cannot be read changes nothing (logged, tried again).
pub async fn follow(
    management: ManagementClient,
    db: Database,
    every: Duration,
    stop: CancellationToken,
) {
    if !db.wait_until_migrated(&stop).await {
        return;
    }
    loop {
        if let Err(e) = step(&management, &db).await {
            log::warn!("cannot follow the printer registry: {e}");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// One round: the registry read, and the queued jobs of moved printers rerouted.
/// Returns how many jobs moved.
pub async fn step(management: &ManagementClient, db: &Database) -> anyhow::Result<u64> {
    let printers: Vec<(i64, String)> = management
        .printers()
        .await?
        .into_iter()
        .map(|p| (p.id, p.url))
        .collect();
    let moved = db
        .with_connection(async |conn| print_jobs::reroute(conn, &printers).await)
        .await?;
    if moved > 0 {
        log::info!("{moved} queued jobs sent to their printer's new URL");
    }
    Ok(moved)
}
