//! `get-job`: `GET /print/jobs/{id}` with the user's bearer token at 64 connections
//! (wrk; each request a random one of 10,000 jobs of that user), against pgbench's
//! select of the same columns by primary key from the same table, same ids, same
//! client count, prepared (`-M prepared`), on the same server. The difference is
//! what print-service adds to a primary-key read: HTTP, the token check, the pool
//! checkout, the statement's round trips and JSON. Two alternating rounds (quick:
//! one) so drift in the machine's load hits both alike.

use crate::postgres;
use crate::report::{num, Row};
use crate::scenarios::{note, Ctx};
use crate::services::{self, Auth, NOWHERE};
use crate::wrk::{self, Load, Outcome};

const CONNECTIONS: u32 = 64;
const JOBS: u32 = 10_000;
/// Job `n` has id `{ID_PREFIX}{n:012}` (a valid UUID of version 7's shape).
const ID_PREFIX: &str = "00000000-0000-7000-8000-";

/// print-service's `JOB_COLUMNS` (services/print/src/print_jobs.rs; keep in step).
const JOB_COLUMNS: &str =
    "id, user_id, file_id, copies, state, printer_id, attempts, created_at, updated_at, error";

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let db = services::database().await;
    let auth = Auth::new();
    let print = services::print(&db.url, NOWHERE, &services::secret(), &auth, |c| {
        c.dispatch_enabled = false;
    })?;
    services::wait_ok(&print.url, "/ready").await?;
    let client = db.client().await;
    client
        .execute(
            &format!(
                "INSERT INTO print_jobs (id, user_id, file_id, copies, state, correlation_id,
                                         printer_id, printer_url, image_url)
                 SELECT ('{ID_PREFIX}' || lpad(n::text, 12, '0'))::uuid, 1, 1, 1, 'completed',
                        gen_random_uuid(), 1, 'http://127.0.0.1:9/jobs', 'http://127.0.0.1:9/img/1.jpg'
                 FROM generate_series(1, $1::int) AS n"
            ),
            &[&(JOBS as i32)],
        )
        .await?;
    client.batch_execute("VACUUM ANALYZE print_jobs").await?;
    drop(client);

    let script = format!(
        "\\set n random(1, {JOBS})\nSELECT {JOB_COLUMNS} FROM print_jobs WHERE id = ('{ID_PREFIX}' || lpad(:n::text, 12, '0'))::uuid;\n"
    );
    let duration = ctx.secs(5, 2);
    let load = Load {
        random_id: Some((format!("/print/jobs/{ID_PREFIX}"), JOBS)),
        ..Load::get(format!("{}/print/jobs", print.url), CONNECTIONS, duration)
            .authorized(auth.user(1))
    };
    wrk::run(&load.with_duration(ctx.secs(2, 1))).await?; // warm-up
    let mut service = Outcome::default();
    let (mut pg_tps, mut pg_latency, mut rounds) = (0.0, 0.0, 0);
    for _ in 0..ctx.pick(2, 1) {
        service.merge(&wrk::run(&load).await?);
        let pg = postgres::pgbench(&db.url, &script, CONNECTIONS, duration).await?;
        pg_tps += pg.tps;
        pg_latency += pg.latency_ms;
        rounds += 1;
    }
    let (pg_tps, pg_latency) = (pg_tps / rounds as f64, pg_latency / rounds as f64);
    note(format!(
        "GET /print/jobs/{{id}}: {:.0} req/s (p50 {:.2} ms, p99 {:.2} ms, {} not 2xx, {} socket errors); pgbench select by id: {pg_tps:.0} tps (latency average {pg_latency:.2} ms)",
        service.rate(),
        service.latency("p50"),
        service.latency("p99"),
        service.non_success,
        service.socket_errors()
    ));
    ctx.push(Row::ratio_at_least(
        "get-job",
        format!("GET /print/jobs/{{id}} req/s ({CONNECTIONS} conns, user token)"),
        num(service.rate()),
        format!(
            "{} pgbench select by id ({CONNECTIONS} clients)",
            num(pg_tps)
        ),
        service.rate() / pg_tps,
        0.8,
    ));
    ctx.push(Row::info(
        "get-job",
        "p50 / p99 latency",
        format!(
            "{:.2} / {:.2} ms",
            service.latency("p50"),
            service.latency("p99")
        ),
        format!("{pg_latency:.2} ms pgbench average"),
        None,
    ));
    if service.non_success + service.socket_errors() > 0 {
        ctx.push(Row::checked(
            "get-job",
            "failed requests",
            (service.non_success + service.socket_errors()).to_string(),
            "—",
            "0",
            false,
        ));
    }
    print.stop().await;
    drop(db); // drops the scenario's database
    Ok(())
}
