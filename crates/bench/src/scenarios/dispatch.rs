//! `dispatch`: a backlog of queued jobs (5,000; quick: 300) committed in one
//! transaction, then drained by one and then two print-service replicas on one
//! database into printer-sim (no print delay, capacity far above the backlog).
//! Figures: jobs per second reaching the printer (commit of the backlog → every job
//! out of `queued`, which happens only once its printer accepted it), exactly-once
//! printing (printer-sim's `GET /jobs` against the database), and commit → printer
//! acceptance latency for jobs arriving one by one at a steady rate after the drain
//! (`pixpress_print_dispatch_latency_seconds`, differenced around that phase and
//! summed over the replicas; interpolated inside its buckets).
//!
//! printer-sim fetches every job's image before it prints: the jobs point at a small
//! real JPEG (320×240) served by the harness's image origin, so the drain waits for
//! the fetches as it would for a real printer's.
//!
//! Reference: what printer-sim itself accepts per second when wrk posts unique jobs
//! to it at the dispatcher's concurrency (16), its callbacks going to a sink — the
//! most a dispatcher could hand it. The two-replica drain is also set against the
//! one-replica drain.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::images;
use crate::report::{num, Row};
use crate::scenarios::{intake, note, Ctx};
use crate::services::{self, Lookup, Plain, Running, NOWHERE};
use crate::wrk::{self, Load};

const LATENCY_METRIC: &str = "pixpress_print_dispatch_latency_seconds";
/// print-service's default `DISPATCH_CONCURRENCY`.
const DISPATCH_CONCURRENCY: u32 = 16;
const PRINTER_CAPACITY: u32 = 100_000;
/// Jobs per second in the latency phase: well under the drain rate.
const TRICKLE_RATE: u64 = 200;

/// The image origin every job's `image_url` points into, and that URL: printer-sim
/// fetches (and checks) the image of each job it prints.
pub fn photo_origin() -> anyhow::Result<(Plain, String)> {
    let photo = images::jpeg(&images::photo_like(320, 240, 6))?;
    let origin = services::image_origin(Arc::new(photo))?;
    let url = format!("{}/img/photo.jpg", origin.url);
    Ok((origin, url))
}

struct Drain {
    backlog: usize,
    jobs_per_second: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    printed_once: usize,
    jobs: usize,
    resent: u64,
}

async fn count_where(client: &tokio_postgres::Client, condition: &str) -> anyhow::Result<i64> {
    Ok(client
        .query_one(
            &format!("SELECT count(*) FROM print_jobs WHERE {condition}"),
            &[],
        )
        .await?
        .get(0))
}

async fn wait_for(
    client: &tokio_postgres::Client,
    condition: &str,
    expected: i64,
    limit: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let n = count_where(client, condition).await?;
        if n >= expected {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!("only {n} of {expected} jobs reached `{condition}` within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn latency_buckets(replicas: &[Running]) -> anyhow::Result<Vec<(f64, f64)>> {
    let mut sum: Vec<(f64, f64)> = Vec::new();
    for replica in replicas {
        let text = services::scrape(&replica.url).await?;
        for (le, count) in services::buckets(&text, LATENCY_METRIC) {
            match sum.iter_mut().find(|(l, _)| *l == le) {
                Some((_, c)) => *c += count,
                None => sum.push((le, count)),
            }
        }
    }
    sum.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(sum)
}

async fn drain(ctx: &Ctx, replica_count: usize) -> anyhow::Result<Drain> {
    let jobs = ctx.pick(5_000, 300);
    let db = services::database().await;
    let auth = services::Auth::new();
    let secret = services::secret();
    let printer = services::printer(&secret, PRINTER_CAPACITY)?;
    let (origin, image_url) = photo_origin()?;
    let mut replicas = Vec::new();
    for _ in 0..replica_count {
        replicas.push(services::print(&db.url, NOWHERE, &secret, &auth, |c| {
            c.dispatch_enabled = true;
            c.dispatch_concurrency = DISPATCH_CONCURRENCY;
        })?);
    }
    for replica in &replicas {
        services::wait_ok(&replica.url, "/ready").await?;
    }
    // The dispatchers start once the schema is current; give their LISTEN a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut client = db.client().await;

    let started = Instant::now();
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO print_jobs (id, user_id, file_id, copies, state, correlation_id,
                                 printer_id, printer_url, image_url)
         SELECT gen_random_uuid(), 1, 1, 1, 'queued', gen_random_uuid(), 1, $1, $2
         FROM generate_series(1, $3::int)",
        &[&printer.url, &image_url, &(jobs as i32)],
    )
    .await?;
    tx.execute("SELECT pg_notify('print_jobs_queued', '')", &[])
        .await?;
    tx.commit().await?;
    let limit = ctx.secs(300, 90);
    wait_for(&client, "state <> 'queued'", jobs as i64, limit).await?;
    let seconds = started.elapsed().as_secs_f64();
    note(format!(
        "{replica_count} replica(s): {jobs} jobs reached the printer in {seconds:.2} s"
    ));
    wait_for(&client, "state = 'completed'", jobs as i64, limit).await?;

    // Latency: jobs committed one at a time, at a steady rate.
    let before = latency_buckets(&replicas).await?;
    let trickle = ctx.pick(400, 100);
    let job = Lookup {
        user_id: 1,
        file_id: 1,
        printer_id: 1,
        printer_url: printer.url.clone(),
        image_url: image_url.clone(),
    };
    let inserter = pixpress_kit::db::PgClient::new(db.client().await);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / TRICKLE_RATE));
    for _ in 0..trickle {
        tick.tick().await;
        intake::insert_job(&inserter, &job).await?;
        // As print-service announces a job: NOTIFY after the commit.
        inserter
            .execute("SELECT pg_notify('print_jobs_queued', '')", &[])
            .await?;
    }
    let total = (jobs + trickle) as i64;
    wait_for(&client, "state <> 'queued'", total, limit).await?;
    wait_for(&client, "state = 'completed'", total, limit).await?;
    let after = latency_buckets(&replicas).await?;
    let delta = services::bucket_delta(&before, &after);
    let p50_ms = services::quantile(&delta, 0.5).map(|s| s * 1000.0);
    let p99_ms = services::quantile(&delta, 0.99).map(|s| s * 1000.0);

    // Exactly once: the printer printed every job in the database once, and nothing else.
    let printed = services::printed_exactly_once(&printer.url, &client).await?;
    if printed.at_printer != printed.jobs {
        note(format!(
            "the printer knows {} jobs, the database {}",
            printed.at_printer, printed.jobs
        ));
    }

    services::stop_all(replicas).await;
    printer.stop().await;
    origin.stop().await;
    drop(client);
    drop(db); // drops the scenario's database
    Ok(Drain {
        backlog: jobs,
        jobs_per_second: jobs as f64 / seconds,
        p50_ms,
        p99_ms,
        printed_once: printed.once,
        jobs: printed.jobs,
        resent: printed.resent,
    })
}

/// printer-sim's own acceptance rate at the dispatcher's concurrency.
async fn printer_capacity(ctx: &Ctx) -> anyhow::Result<f64> {
    let secret = services::secret();
    let printer = services::printer(&secret, PRINTER_CAPACITY)?;
    let (sink, _) = services::sink()?;
    let (origin, image_url) = photo_origin()?;
    let body = format!(
        r#"{{"correlation_id":"{{unique}}","image_url":"{image_url}","copies":1,"callback_url":"{}/print/callbacks/{{unique}}"}}"#,
        sink.url
    );
    let mut load = Load::post_json(
        format!("{}/jobs", printer.url),
        body,
        DISPATCH_CONCURRENCY,
        // One second: printer-sim calls back for every job at once, unbounded, and
        // tens of thousands of callbacks in flight exhaust this process's files.
        ctx.secs(1, 1),
    );
    load.unique_ids = true;
    load.count_statuses = true;
    let out = wrk::run(&load).await?;
    let accepted = out.status(202) as f64 / out.seconds;
    note(format!(
        "printer-sim accepts {accepted:.0} jobs/s at {DISPATCH_CONCURRENCY} conns (statuses {:?})",
        out.statuses
    ));
    printer.stop().await;
    sink.stop().await;
    origin.stop().await;
    Ok(accepted)
}

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let capacity = printer_capacity(ctx).await?;
    let one = drain(ctx, 1).await?;
    let two = drain(ctx, 2).await?;
    let ms = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |ms| format!("{ms:.1}"));

    ctx.push(Row::info(
        "dispatch",
        format!("1 replica: jobs/s to the printer ({} queued)", one.backlog),
        num(one.jobs_per_second),
        format!("{} printer-sim accepts", num(capacity)),
        Some(one.jobs_per_second / capacity),
    ));
    ctx.push(Row::info(
        "dispatch",
        "2 replicas: jobs/s to the printer",
        num(two.jobs_per_second),
        format!("{} with 1 replica", num(one.jobs_per_second)),
        Some(two.jobs_per_second / one.jobs_per_second),
    ));
    for (name, d) in [("1 replica", &one), ("2 replicas", &two)] {
        ctx.push(Row::checked(
            "dispatch",
            format!("{name}: commit → printer acceptance p50 / p99"),
            format!("{} / {} ms", ms(d.p50_ms), ms(d.p99_ms)),
            format!("{TRICKLE_RATE} jobs/s arriving"),
            "p99 < 500 ms (no poll wait)",
            d.p99_ms.is_some_and(|p| p < 500.0),
        ));
        ctx.push(Row::checked(
            "dispatch",
            format!("{name}: jobs printed exactly once"),
            format!("{} / {}", d.printed_once, d.jobs),
            format!("{} repeat sends deduplicated", d.resent),
            "all",
            d.printed_once == d.jobs,
        ));
    }
    Ok(())
}
