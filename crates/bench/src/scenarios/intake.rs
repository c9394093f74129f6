//! `intake`: `POST /print/jobs` at 64 connections, each with the user's bearer token,
//! against print-service and the real management-api (print-service presenting its
//! `service` token; no added latency; the image is recorded `ready` with the test-only
//! shortcut; dispatch off, so only intake is measured). Figures: jobs committed per
//! second (counted in the database), wrk's p50/p99, and this process's CPU time per
//! job (print-service and management-api both run in it; PostgreSQL's own CPU is not
//! counted).
//!
//! Reference, the database floor: the very statement print-service runs to insert a
//! job (a copy of `print_jobs::insert`, issued the same way: prepared once per pooled
//! connection, `pixpress_kit::db::Sql`) sent straight to
//! PostgreSQL from 64 tasks through a bb8 pool of print-service's size. It is what
//! intake would reach if HTTP, JSON, validation and the lookup cost nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use pixpress_kit::config::DatabaseArgs;
use pixpress_kit::db::{PgPool, Sql};
use uuid::Uuid;

use crate::report::{num, Row};
use crate::scenarios::{note, Ctx};
use crate::services::{self, Lookup, NOWHERE};
use crate::system::cpu_time;
use crate::wrk::{self, Load};

pub const CONNECTIONS: u32 = 64;
/// The URL the ready image is recorded at (no printer fetches it here).
pub const PHOTO_URL: &str = "http://127.0.0.1:9/photo.jpg";
/// print-service's default `DB_POOL_SIZE`.
const POOL_SIZE: u32 = 16;
/// Upper bound on inserts per floor task (the loop is also bounded in time).
const MAX_PER_TASK: usize = 200_000;

/// A copy of the statement in services/print/src/print_jobs.rs `insert` (keep in step).
const INSERT_JOB: &str = "INSERT INTO print_jobs (id, user_id, file_id, copies, state, correlation_id,
                             printer_id, printer_url, image_url,
                             idempotency_key, request_fingerprint)
     VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $8, $9, $10)
     ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL
     DO NOTHING
     RETURNING id, user_id, file_id, copies, state, printer_id, attempts, created_at, updated_at, error";

/// [`INSERT_JOB`] with the `pg_notify` the seed sent inside the inserting
/// transaction. PostgreSQL serializes the commits of notifying transactions (one
/// database-wide lock held until the commit is flushed); print-service now
/// announces jobs after the commit, coalesced (`pixpress_kit::notify::Announcer`).
fn insert_notifying() -> String {
    format!(
        "WITH inserted AS ({INSERT_JOB}) SELECT inserted.*, pg_notify('print_jobs_queued', '') FROM inserted"
    )
}

/// Inserts one queued job exactly as print-service does (through the connection's
/// prepared statements, `pixpress_kit::db::Sql`).
pub async fn insert_job(db: &impl Sql, job: &Lookup) -> anyhow::Result<()> {
    insert_with(db, INSERT_JOB, job).await
}

async fn insert_with(db: &impl Sql, sql: &str, job: &Lookup) -> anyhow::Result<()> {
    let copies = 1i32;
    let key: Option<String> = None;
    let fingerprint = format!("{}:{}:{copies}", job.user_id, job.file_id);
    db.query_opt(
        sql,
        &[
            &Uuid::now_v7(),
            &job.user_id,
            &job.file_id,
            &copies,
            &Uuid::new_v4(),
            &job.printer_id,
            &job.printer_url,
            &job.image_url,
            &key,
            &fingerprint,
        ],
    )
    .await?
    .context("the insert returned no row")?;
    Ok(())
}

pub async fn count_jobs(client: &tokio_postgres::Client) -> anyhow::Result<i64> {
    Ok(client
        .query_one("SELECT count(*) FROM print_jobs", &[])
        .await?
        .get(0))
}

struct Floor {
    jobs: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu: Duration,
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

async fn floor(
    pool: &PgPool,
    sql: &str,
    job: &Lookup,
    duration: Duration,
) -> anyhow::Result<Floor> {
    let job = Arc::new(job.clone());
    let sql: Arc<str> = Arc::from(sql);
    // bb8 lets a caller that just returned a connection take it straight back, so 64
    // tight loops on 16 connections starve some callers for seconds (its checkout
    // times out). A FIFO semaphore of the pool's size queues them fairly instead,
    // as the gaps between HTTP requests do for print-service.
    let turns = Arc::new(tokio::sync::Semaphore::new(POOL_SIZE as usize));
    let started = Instant::now();
    let deadline = started + duration;
    let cpu_before = cpu_time();
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let pool = pool.clone();
            let job = Arc::clone(&job);
            let sql = Arc::clone(&sql);
            let turns = Arc::clone(&turns);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline && latencies.len() < MAX_PER_TASK {
                    let sent = Instant::now();
                    let _turn = turns.acquire().await?;
                    let conn = pool.get().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    insert_with(&*conn, &sql, &job).await?;
                    drop(conn);
                    latencies.push(sent.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_time().saturating_sub(cpu_before);
    all.sort();
    Ok(Floor {
        jobs: all.len(),
        seconds,
        p50_ms: percentile_ms(&all, 50.0),
        p99_ms: percentile_ms(&all, 99.0),
        cpu,
    })
}

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let db = services::database().await;
    let auth = services::Auth::new();
    let management = services::management(&auth, NOWHERE, 0)?;
    let print = services::print(&db.url, &management.url, &services::secret(), &auth, |c| {
        c.dispatch_enabled = false;
        c.database.db_pool_size = POOL_SIZE;
        // One user makes all the load here: the gate's per-user share is not measured.
        c.backend_permits_per_user = Some(c.backend_permits);
    })?;
    services::wait_ok(&print.url, "/ready").await?;
    let job = services::ready_image(&management.url, &auth, 1, PHOTO_URL).await?;
    let client = db.client().await;

    // The floor first: 64 tasks, a pool of print-service's size.
    let mut args = DatabaseArgs::new(&db.url);
    args.db_pool_size = POOL_SIZE;
    let pool = pixpress_kit::db::pool(&args, Duration::from_secs(5)).map_err(anyhow::Error::msg)?;
    floor(&pool, INSERT_JOB, &job, ctx.secs(1, 1)).await?; // warm-up: connections opened
    let floor_duration = ctx.secs(10, 2);
    let floor = floor(&pool, INSERT_JOB, &job, floor_duration).await?;
    let floor_rate = floor.jobs as f64 / floor.seconds;
    note(format!(
        "database floor: {:.0} inserts/s, p50 {:.2} ms, p99 {:.2} ms",
        floor_rate, floor.p50_ms, floor.p99_ms
    ));
    let notifying = self::floor(&pool, &insert_notifying(), &job, ctx.secs(3, 1)).await?;
    let notifying_rate = notifying.jobs as f64 / notifying.seconds;
    note(format!(
        "the insert with pg_notify in its transaction: {:.0} inserts/s, p50 {:.2} ms, p99 {:.2} ms",
        notifying_rate, notifying.p50_ms, notifying.p99_ms
    ));
    drop(pool);

    let body = format!(r#"{{"user_id":{},"file_id":{}}}"#, job.user_id, job.file_id);
    let load = Load::post_json(
        format!("{}/print/jobs", print.url),
        body,
        CONNECTIONS,
        ctx.secs(10, 2),
    )
    .authorized(auth.user(job.user_id));
    wrk::run(&load.with_duration(ctx.secs(2, 1))).await?; // warm-up
    let before = count_jobs(&client).await?;
    let cpu_before = cpu_time();
    let out = wrk::run(&load).await?;
    let cpu = cpu_time().saturating_sub(cpu_before);
    tokio::time::sleep(Duration::from_millis(200)).await; // commits of the last answers
    let jobs = (count_jobs(&client).await? - before).max(0) as f64;
    let rate = jobs / out.seconds;
    note(format!(
        "intake: {:.0} jobs/s committed, p50 {:.2} ms, p99 {:.2} ms, {} not 2xx, {} socket errors",
        rate,
        out.latency("p50"),
        out.latency("p99"),
        out.non_success,
        out.socket_errors()
    ));

    ctx.push(Row::ratio_at_least(
        "intake",
        format!("committed jobs/s ({CONNECTIONS} conns)"),
        num(rate),
        format!("{} DB floor", num(floor_rate)),
        rate / floor_rate,
        0.5,
    ));
    ctx.push(Row::info(
        "intake",
        "DB floor ÷ the insert with NOTIFY inside (the seed's)",
        format!("{} inserts/s", num(floor_rate)),
        format!("{} with pg_notify inside", num(notifying_rate)),
        Some(floor_rate / notifying_rate),
    ));
    ctx.push(Row::info(
        "intake",
        "p50 / p99 latency",
        format!("{:.1} / {:.1} ms", out.latency("p50"), out.latency("p99")),
        format!("{:.1} / {:.1} ms", floor.p50_ms, floor.p99_ms),
        Some(out.latency("p99") / floor.p99_ms),
    ));
    let per_job_ms = |cpu: Duration, jobs: f64| cpu.as_secs_f64() * 1000.0 / jobs.max(1.0);
    ctx.push(Row::info(
        "intake",
        "CPU per job (this process: print + management)",
        format!("{:.3} ms", per_job_ms(cpu, jobs)),
        format!(
            "{:.3} ms floor client",
            per_job_ms(floor.cpu, floor.jobs as f64)
        ),
        Some(per_job_ms(cpu, jobs) / per_job_ms(floor.cpu, floor.jobs as f64)),
    ));
    if out.non_success + out.socket_errors() > 0 {
        ctx.push(Row::checked(
            "intake",
            "failed requests",
            (out.non_success + out.socket_errors()).to_string(),
            "—",
            "0",
            false,
        ));
    }

    print.stop().await;
    management.stop().await;
    drop(client);
    drop(db); // drops the scenario's database
    Ok(())
}
