//! `layers` (not part of `all`): where `health`'s gap comes from. The bare `/health`
//! app alone, then wrapped in each layer the kit puts around every route, one at a
//! time, then print-service itself; each against the bare app measured in the same
//! round. Run it before and after changing the kit's middleware.

use crate::report::{num, Row};
use crate::scenarios::{note, Ctx};
use crate::services::{self, Layer, NOWHERE};
use crate::wrk::{self, Load, Outcome};

const CONNECTIONS: u32 = 64;

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let db = services::database().await;
    let auth = services::Auth::new();
    let print = services::print(&db.url, NOWHERE, &services::secret(), &auth, |c| {
        c.dispatch_enabled = false;
    })?;
    let bare = services::bare_health()?;
    let mut layered = Vec::new();
    for layer in Layer::EVERY {
        layered.push((layer.name().to_owned(), services::layered_health(layer)?));
    }
    services::wait_ok(&print.url, "/health").await?;
    services::wait_ok(&bare.url, "/health").await?;
    let duration = ctx.secs(4, 1);
    let bare_load = Load::get(format!("{}/health", bare.url), CONNECTIONS, duration);
    wrk::run(&bare_load.with_duration(ctx.secs(1, 1))).await?; // warm-up

    let mut targets: Vec<(String, String)> = layered
        .iter()
        .map(|(name, server)| (name.clone(), server.url.clone()))
        .collect();
    // With the request id sent by the client: no id generated (uuid v7, getrandom).
    targets.push((
        "request id, sent by the client".to_owned(),
        layered[2].1.url.clone(),
    ));
    targets.push(("print-service (every layer)".to_owned(), print.url.clone()));
    for (name, url) in targets {
        let mut load = Load::get(format!("{url}/health"), CONNECTIONS, duration);
        if name.contains("sent by the client") {
            load.headers
                .push(("X-Request-Id", "bench-fixed-request-id".to_owned()));
        }
        let mut measured = Outcome::default();
        let mut reference = Outcome::default();
        for _ in 0..ctx.pick(2, 1) {
            measured.merge(&wrk::run(&load).await?);
            reference.merge(&wrk::run(&bare_load).await?);
        }
        note(format!(
            "{name}: {:.0} req/s, bare {:.0} req/s",
            measured.rate(),
            reference.rate()
        ));
        ctx.push(Row::info(
            "layers",
            format!("GET /health req/s: bare + {name}"),
            num(measured.rate()),
            format!("{} bare", num(reference.rate())),
            Some(measured.rate() / reference.rate()),
        ));
    }

    print.stop().await;
    bare.stop().await;
    for (_, server) in layered {
        server.stop().await;
    }
    drop(db); // drops the scenario's database
    Ok(())
}
