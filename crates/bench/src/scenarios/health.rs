//! `health`: `GET /health` on print-service (authentication on, as everywhere; the
//! probe itself needs no token), through every middleware the kit wraps
//! around its routes (request id, metrics, problem+json, access log; `/health`'s
//! access line is `debug`, so the harness's `warn` and the default `info` take the
//! same path), against a bare actix-web app serving the same route and body with the
//! same worker count, in the same process, driven by the same wrk settings. The
//! runs alternate so drift in the machine's load hits both alike.

use crate::report::{num, Row};
use crate::scenarios::{note, Ctx};
use crate::services::{self, NOWHERE};
use crate::wrk::{self, Load, Outcome};

const CONNECTIONS: u32 = 64;

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let db = services::database().await;
    let auth = services::Auth::new();
    let print = services::print(&db.url, NOWHERE, &services::secret(), &auth, |c| {
        c.dispatch_enabled = false;
    })?;
    let bare = services::bare_health()?;
    services::wait_ok(&print.url, "/health").await?;
    services::wait_ok(&bare.url, "/health").await?;

    let service_load = Load::get(format!("{}/health", print.url), CONNECTIONS, ctx.secs(5, 2));
    let bare_load = Load::get(format!("{}/health", bare.url), CONNECTIONS, ctx.secs(5, 2));
    // Warm-up: connections, allocator pools, branch predictors.
    wrk::run(&service_load.with_duration(ctx.secs(1, 1))).await?;
    wrk::run(&bare_load.with_duration(ctx.secs(1, 1))).await?;

    let mut service = Outcome::default();
    let mut reference = Outcome::default();
    for _ in 0..ctx.pick(3, 1) {
        service.merge(&wrk::run(&service_load).await?);
        reference.merge(&wrk::run(&bare_load).await?);
    }
    note(format!(
        "print-service {:.0} req/s (p99 {:.2} ms), bare actix-web {:.0} req/s (p99 {:.2} ms)",
        service.rate(),
        service.latency("p99"),
        reference.rate(),
        reference.latency("p99")
    ));
    ctx.push(Row::ratio_at_least(
        "health",
        format!("GET /health req/s ({CONNECTIONS} conns)"),
        num(service.rate()),
        format!("{} bare actix-web", num(reference.rate())),
        service.rate() / reference.rate(),
        0.9,
    ));
    ctx.push(Row::info(
        "health",
        "GET /health p99 latency",
        format!("{:.2} ms", service.latency("p99")),
        format!("{:.2} ms", reference.latency("p99")),
        Some(service.latency("p99") / reference.latency("p99")),
    ));
    if service.non_success + service.socket_errors() > 0 {
        ctx.push(Row::checked(
            "health",
            "failed requests",
            (service.non_success + service.socket_errors()).to_string(),
            "—",
            "0",
            false,
        ));
    }

    print.stop().await;
    bare.stop().await;
    drop(db); // drops the scenario's database
    Ok(())
}
