//! `lifecycle`: the whole life of a print job as users run the system — print-service
//! with every background worker (dispatcher, reconciler, printer registry), the
//! management API, printer-sim as the stack runs it at full speed (no print delay,
//! default capacity, its spool on disk: a synced journal line before each 202, and
//! the image of each job fetched from the harness's image origin) and the printer's
//! signed callbacks, authentication on everywhere (each POST with its user's token,
//! 16 users, print-service's `service` token on `/lookup`).
//!
//! Load is open-loop: POSTs fired on a fixed schedule (rate × 30 s; quick 5 s) by a
//! driver on a thread of its own, whatever the answers, so a slow system faces a
//! growing queue instead of a politely waiting client. A window *sustains* its rate
//! when every POST was answered 201, the driver kept to the schedule (≤ 250 ms
//! behind), the backlog (jobs scheduled but not completed) at the end of the window
//! is at most half a second of arrivals — a system falling behind by 2 % over 30 s
//! already exceeds it — and every job then completes, printed exactly once
//! (printer-sim's `GET /jobs` against the database). The rate is searched by
//! doubling from 200/s, then bisecting (3 steps; quick 1), each window on fresh
//! services and a fresh database.
//!
//! Figures at the best sustained rate: POST → completed p50/p99 (the scheduled send
//! time of each POST to its job's `updated_at` when it became `completed`, both wall
//! clock on this machine), commits per job (`pg_stat_database.xact_commit` of the
//! window's database, read after the services stopped so every backend reported),
//! HTTP requests per job (the services' `pixpress_http_requests_total`), CPU per job
//! (this process minus the driver's thread; PostgreSQL's server processes), and with
//! `--pg-stat-statements` the statements per job.
//!
//! Reference: pgbench's bare committed insert of one print_jobs row (prepared, 16
//! clients = print-service's database pool) on the same server, in the same run —
//! the floor of what any design writing one row per job commits per second.
//! `--rate N` runs one window at N jobs/s instead of the search (for profiling).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use uuid::Uuid;

use crate::postgres::{self, DbCounters};
use crate::report::{num, Row};
use crate::scenarios::{dispatch, note, Ctx};
use crate::services::{self, Auth, Running};
use crate::system;

/// Users sending jobs (each with their own token and image).
const USERS: i64 = 16;
/// print-service's default `DB_POOL_SIZE`: the sessions it holds, pgbench's clients.
const POOL_CLIENTS: u32 = 16;
const START_RATE: f64 = 200.0;
/// POSTs in flight at once before the driver counts one as dropped.
const MAX_IN_FLIGHT: usize = 4096;
/// A window's backlog at its end may hold this much of its arrivals.
const BACKLOG_SECONDS: f64 = 0.5;
const MAX_DRIVER_LAG: Duration = Duration::from_millis(250);

/// One open-loop window at a fixed rate.
struct Window {
    rate: f64,
    scheduled: usize,
    created: usize,
    refused: HashMap<u16, usize>,
    dropped: usize,
    driver_lag: Duration,
    backlog_at_end: i64,
    drained: bool,
    p50_ms: f64,
    p99_ms: f64,
    post_p50_ms: f64,
    post_p99_ms: f64,
    printed: services::Printed,
    db: DbCounters,
    wal: postgres::WalCounters,
    /// Jobs in the window's database (the warm-up's included).
    jobs_in_db: i64,
    requests: Vec<(&'static str, f64)>,
    requests_by_route: Vec<(String, f64)>,
    services_cpu: Duration,
    driver_cpu: Duration,
    postgres_cpu: Option<Duration>,
    statements: Vec<postgres::Statement>,
    dispatch_outcomes: Vec<(String, f64)>,
}

impl Window {
    fn sustained(&self) -> bool {
        self.why_not().is_none()
    }

    /// Why the window did not sustain its rate.
    fn why_not(&self) -> Option<String> {
        let refused: usize = self.refused.values().sum();
        if self.dropped > 0 {
            return Some(format!(
                "{} POSTs not sent ({MAX_IN_FLIGHT} in flight)",
                self.dropped
            ));
        }
        if refused > 0 {
            return Some(format!("{refused} POSTs not 201: {:?}", self.refused));
        }
        if self.driver_lag > MAX_DRIVER_LAG {
            return Some(format!("the driver fell {:?} behind", self.driver_lag));
        }
        let allowed = (self.rate * BACKLOG_SECONDS).max(20.0);
        if self.backlog_at_end as f64 > allowed {
            return Some(format!(
                "backlog {} at the end (> {allowed:.0})",
                self.backlog_at_end
            ));
        }
        if !self.drained {
            return Some("not every job completed".to_owned());
        }
        if self.printed.once != self.printed.jobs {
            return Some(format!(
                "{} of {} jobs printed exactly once",
                self.printed.once, self.printed.jobs
            ));
        }
        None
    }

    fn per_job(&self, value: f64) -> f64 {
        value / self.created.max(1) as f64
    }
}

/// One POST's fate, for the latency.
struct Sent {
    scheduled_epoch: f64,
    answered: Duration,
    status: u16,
    id: Option<Uuid>,
}

struct Driven {
    sent: Vec<Sent>,
    dropped: usize,
    lag: Duration,
    cpu: Duration,
}

#[derive(serde::Deserialize)]
struct Created {
    id: Uuid,
}

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Fires `rate × duration` POSTs on schedule from a thread and runtime of its own (so
/// its CPU time is its own and the services' workers do not delay it), whatever the
/// answers, cycling through `requests` (body, `Authorization`).
fn drive(
    url: String,
    requests: Arc<Vec<(String, String)>>,
    rate: f64,
    duration: Duration,
) -> std::thread::JoinHandle<anyhow::Result<Driven>> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let cpu_before = system::thread_cpu_time();
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .tcp_nodelay(true)
                .pool_max_idle_per_host(MAX_IN_FLIGHT)
                .build()?;
            let total = (rate * duration.as_secs_f64()).round() as usize;
            let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
            let mut tasks = tokio::task::JoinSet::new();
            let mut sent = Vec::with_capacity(total);
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let (started, started_epoch) = (Instant::now(), epoch_now());
            let (mut next, mut dropped, mut lag) = (0usize, 0usize, Duration::ZERO);
            while next < total {
                tick.tick().await;
                let due = ((started.elapsed().as_secs_f64() * rate) as usize + 1).min(total);
                while next < due {
                    let offset = Duration::from_secs_f64(next as f64 / rate);
                    lag = lag.max(started.elapsed().saturating_sub(offset));
                    let (body, authorization) = &requests[next % requests.len()];
                    next += 1;
                    let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
                        dropped += 1;
                        continue;
                    };
                    let request = client
                        .post(&url)
                        .header("authorization", authorization)
                        .header("content-type", "application/json")
                        .body(body.clone());
                    let scheduled_epoch = started_epoch + offset.as_secs_f64();
                    tasks.spawn(async move {
                        let _permit = permit;
                        let (status, id) = match request.send().await {
                            Ok(res) => {
                                let status = res.status().as_u16();
                                let id = match res.bytes().await {
                                    Ok(body) => {
                                        serde_json::from_slice::<Created>(&body).ok().map(|c| c.id)
                                    }
                                    Err(_) => None,
                                };
                                (status, id)
                            }
                            Err(_) => (0, None),
                        };
                        Sent {
                            scheduled_epoch,
                            answered: started.elapsed().saturating_sub(offset),
                            status,
                            id,
                        }
                    });
                }
                while let Some(done) = tasks.try_join_next() {
                    sent.push(done?);
                }
            }
            while let Some(done) = tasks.join_next().await {
                sent.push(done?);
            }
            Ok(Driven {
                sent,
                dropped,
                lag,
                cpu: system::thread_cpu_time().saturating_sub(cpu_before),
            })
        })
    })
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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `pixpress_http_requests_total` of one service, by method and route.
fn requests_by_route(text: &str) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("pixpress_http_requests_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|l| l.trim().strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let key = format!(
            "{} {} {} {}",
            label("service"),
            label("method"),
            label("endpoint"),
            label("status")
        );
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += value,
            None => out.push((key, value)),
        }
    }
    out
}

fn delta(before: &[(String, f64)], after: &[(String, f64)]) -> Vec<(String, f64)> {
    after
        .iter()
        .map(|(k, v)| {
            let was = before.iter().find(|(b, _)| b == k).map_or(0.0, |(_, n)| *n);
            (k.clone(), v - was)
        })
        .filter(|(_, n)| *n > 0.0)
        .collect()
}

/// `pixpress_print_dispatch_attempts_total` by outcome.
fn labelled(text: &str, name: &str, label: &str) -> Vec<(String, f64)> {
    let prefix = format!("{name}{{");
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (labels, value) = rest.rsplit_once("} ")?;
            let which = labels
                .split(',')
                .find_map(|l| l.trim().strip_prefix(&format!("{label}=\"")))?
                .trim_end_matches('"')
                .to_owned();
            Some((which, value.trim().parse::<f64>().ok()?))
        })
        .collect()
}

async fn scrape_all(services: &[(&'static str, &Running)]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for (_, service) in services {
        out.push(services::scrape(&service.url).await?);
    }
    Ok(out)
}

async fn window(ctx: &Ctx, rate: f64) -> anyhow::Result<Window> {
    let duration = ctx.secs(30, 5);
    let db = services::database().await;
    let auth = Auth::new();
    let secret = services::secret();
    let spool = tempfile::tempdir()?;
    let printer = services::spooling_printer(&secret, spool.path().join("printer"))?;
    let (origin, _) = dispatch::photo_origin()?;
    let management = services::management(&auth, &printer.url, 0)?;
    // Every default, dispatcher and reconciler included.
    let print = services::print(&db.url, &management.url, &secret, &auth, |_| {})?;
    services::wait_ok(&print.url, "/ready").await?;
    services::wait_ok(&printer.url, "/ready").await?;
    services::wait_ok(&management.url, "/health").await?;

    let mut requests = Vec::new();
    for user in 1..=USERS {
        let image = format!("{}/img/user-{user}.jpg", origin.url);
        let job = services::ready_image(&management.url, &auth, user, &image).await?;
        requests.push((
            format!(r#"{{"user_id":{},"file_id":{}}}"#, job.user_id, job.file_id),
            auth.user(user),
        ));
    }
    let requests = Arc::new(requests);
    let client = db.client().await;

    // Warm-up: a job per user, every connection opened, each completed.
    let http = services::client();
    for (body, authorization) in requests.iter() {
        http.post(format!("{}/print/jobs", print.url))
            .header("authorization", authorization)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?
            .error_for_status()?;
    }
    let warm = requests.len() as i64;
    let limit = Instant::now() + Duration::from_secs(30);
    while count_where(&client, "state = 'completed'").await? < warm {
        if Instant::now() > limit {
            bail!("the warm-up jobs did not complete within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Backends report their counters at most once a second while busy.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let pg_pid = postgres::postmaster_pid(&client).await;
    let statements_on = postgres::statements_reset(&client).await;
    let counters_before = postgres::counters(&client).await?;
    let wal_before = postgres::wal(&client).await?;
    // The harness's own statements from here on (each its own commit), taken off the
    // services' count: this reading, and each below.
    let mut own_commits = 2i64;
    let watched = [
        ("print", &print),
        ("management", &management),
        ("printer", &printer),
    ];
    let metrics_before = scrape_all(&watched).await?;
    let cpu_before = system::cpu_time();
    let pg_cpu_before = pg_pid.map(system::cpu_time_of_tree);

    let driver = drive(
        format!("{}/print/jobs", print.url),
        Arc::clone(&requests),
        rate,
        duration,
    );
    tokio::time::sleep(duration).await;
    let completed_at_end = count_where(&client, "state = 'completed'").await? - warm;
    own_commits += 1;
    let scheduled = (rate * duration.as_secs_f64()).round() as i64;
    let backlog_at_end = scheduled - completed_at_end;
    let driven = tokio::task::spawn_blocking(move || driver.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the driver thread panicked"))??;

    let created: Vec<&Sent> = driven.sent.iter().filter(|s| s.status == 201).collect();
    let mut refused: HashMap<u16, usize> = HashMap::new();
    for s in driven.sent.iter().filter(|s| s.status != 201) {
        *refused.entry(s.status).or_default() += 1;
    }
    // Drain: everything accepted reaches an end.
    let expected = warm + created.len() as i64;
    let drain_limit = Instant::now() + ctx.secs(60, 30);
    let drained = loop {
        let ended = count_where(&client, "state IN ('completed', 'failed', 'canceled')").await?;
        own_commits += 1;
        if ended >= expected {
            break true;
        }
        if Instant::now() > drain_limit {
            note(format!(
                "only {ended} of {expected} jobs ended within the drain"
            ));
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let services_cpu = system::cpu_time()
        .saturating_sub(cpu_before)
        .saturating_sub(driven.cpu);
    let postgres_cpu = pg_pid
        .zip(pg_cpu_before)
        .map(|(pid, before)| system::cpu_time_of_tree(pid).saturating_sub(before));
    let metrics_after = scrape_all(&watched).await?;
    let printed = services::printed_exactly_once(&printer.url, &client).await?;
    own_commits += 1;

    // Latency: scheduled send → `completed`.
    let completed_at: HashMap<Uuid, f64> = client
        .query(
            "SELECT id, extract(epoch FROM updated_at)::float8 AS at FROM print_jobs
             WHERE state = 'completed'",
            &[],
        )
        .await?
        .iter()
        .map(|row| Ok((row.try_get("id")?, row.try_get("at")?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    own_commits += 1;
    let mut latencies: Vec<f64> = created
        .iter()
        .map(|s| {
            s.id.and_then(|id| completed_at.get(&id))
                .map_or(f64::INFINITY, |at| (at - s.scheduled_epoch) * 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let mut answered: Vec<f64> = created
        .iter()
        .map(|s| s.answered.as_secs_f64() * 1000.0)
        .collect();
    answered.sort_by(f64::total_cmp);

    let mut requests_total = Vec::new();
    let mut by_route = Vec::new();
    for (((name, _), before), after) in watched.iter().zip(&metrics_before).zip(&metrics_after) {
        let change = delta(&requests_by_route(before), &requests_by_route(after));
        requests_total.push((*name, change.iter().map(|(_, n)| n).sum::<f64>()));
        by_route.extend(change);
    }
    let dispatch_outcomes = delta(
        &labelled(
            &metrics_before[0],
            "pixpress_print_dispatch_attempts_total",
            "outcome",
        ),
        &labelled(
            &metrics_after[0],
            "pixpress_print_dispatch_attempts_total",
            "outcome",
        ),
    );
    let statements = if statements_on {
        own_commits += 1;
        postgres::statements(&client).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let jobs_in_db = count_where(&client, "true").await?;
    own_commits += 1;
    drop(client);

    // Stop everything: exiting backends report their last counters.
    services::stop_all(vec![print, management, printer]).await;
    origin.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reader = db.client().await;
    let mut counters = postgres::counters(&reader).await?.since(&counters_before);
    let wal = postgres::wal(&reader).await?.since(&wal_before);
    counters.commits -= own_commits;
    drop(reader);
    drop(db);

    let w = Window {
        rate,
        scheduled: driven.sent.len() + driven.dropped,
        created: created.len(),
        refused,
        dropped: driven.dropped,
        driver_lag: driven.lag,
        backlog_at_end,
        drained,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        post_p50_ms: percentile(&answered, 50.0),
        post_p99_ms: percentile(&answered, 99.0),
        printed,
        db: counters,
        wal,
        jobs_in_db,
        requests: requests_total,
        requests_by_route: by_route,
        services_cpu,
        driver_cpu: driven.cpu,
        postgres_cpu,
        statements,
        dispatch_outcomes,
    };
    note(format!(
        "{rate:.0} jobs/s: {} scheduled, {} created, backlog {} at the end, POST→completed p50 {:.1} / p99 {:.1} ms (POST p99 {:.1} ms), {:.2} commits/job, driver {:?} behind: {}",
        w.scheduled,
        w.created,
        w.backlog_at_end,
        w.p50_ms,
        w.p99_ms,
        w.post_p99_ms,
        w.per_job(w.db.commits as f64),
        w.driver_lag,
        w.why_not().unwrap_or_else(|| "sustained".to_owned())
    ));
    Ok(w)
}

/// pgbench's committed one-row insert into print_jobs on the same server.
async fn insert_floor(ctx: &Ctx) -> anyhow::Result<postgres::Pgbench> {
    let db = services::database().await;
    let script = "INSERT INTO print_jobs (id, user_id, file_id, copies, state, correlation_id, \
        printer_id, printer_url, image_url, request_fingerprint) VALUES (gen_random_uuid(), 1, 1, 1, \
        'queued', gen_random_uuid(), 1, 'http://127.0.0.1:9/jobs', 'http://127.0.0.1:9/img/user-1.jpg', '1:1:1');\n";
    let client = db.client().await;
    note(postgres::describe(&client).await);
    drop(client);
    let floor = postgres::pgbench(&db.url, script, POOL_CLIENTS, ctx.secs(10, 3)).await?;
    note(format!(
        "pgbench insert, {POOL_CLIENTS} clients: {:.0} tps, latency average {:.2} ms",
        floor.tps, floor.latency_ms
    ));
    drop(db);
    Ok(floor)
}

fn ms(d: Duration, jobs: usize) -> f64 {
    d.as_secs_f64() * 1000.0 / jobs.max(1) as f64
}

/// What one job costs, as progress lines (the profile's numbers).
fn describe_costs(w: &Window) {
    let per_job = |v: f64| w.per_job(v);
    note(format!(
        "per job at {:.0}/s: {:.2} commits, {:.2} rollbacks, {:.2} rows inserted, {:.2} updated, {:.2} deleted ({} jobs in the database)",
        w.rate,
        per_job(w.db.commits as f64),
        per_job(w.db.rollbacks as f64),
        per_job(w.db.inserted as f64),
        per_job(w.db.updated as f64),
        per_job(w.db.deleted as f64),
        w.jobs_in_db
    ));
    note(format!(
        "WAL per job: {:.2} records, {:.0} bytes, {:.2} syncs (flushes to disk, shared by a group of commits)",
        per_job(w.wal.records as f64),
        per_job(w.wal.bytes),
        per_job(w.wal.syncs as f64)
    ));
    if !w.statements.is_empty() {
        let calls: i64 = w.statements.iter().map(|s| s.calls).sum();
        note(format!(
            "statements per job (pg_stat_statements, BEGIN/COMMIT included): {:.2}",
            per_job(calls as f64)
        ));
    }
    note(format!(
        "CPU per job: services {:.3} ms, PostgreSQL {}, driver {:.3} ms",
        ms(w.services_cpu, w.created),
        w.postgres_cpu.map_or_else(
            || "n/a".to_owned(),
            |d| format!("{:.3} ms", ms(d, w.created))
        ),
        ms(w.driver_cpu, w.created)
    ));
    for (route, n) in &w.requests_by_route {
        note(format!("  HTTP {route}: {:.2} per job", per_job(*n)));
    }
    for (outcome, n) in &w.dispatch_outcomes {
        note(format!(
            "  dispatch attempts {outcome}: {:.2} per job",
            per_job(*n)
        ));
    }
    for s in w.statements.iter().take(15) {
        let query: String = s.query.split_whitespace().collect::<Vec<_>>().join(" ");
        let short: String = query.chars().take(110).collect();
        note(format!(
            "  SQL {:.2} calls/job, {:.3} ms/job: {short}",
            per_job(s.calls as f64),
            per_job(s.total_ms)
        ));
    }
}

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let floor = insert_floor(ctx).await?;
    {
        let db = services::database().await;
        match postgres::commits_per_round_trip(&db.url).await {
            Ok((prepare, empty)) => note(format!(
                "xact_commit counts {prepare:.2} per prepare (Parse/Describe/Sync) and {empty:.2} per empty query (a pool checkout's check)"
            )),
            Err(e) => note(format!("could not calibrate xact_commit: {e:#}")),
        }
    }
    let mut best: Option<Window> = None;
    let mut failed: Option<Window> = None;
    if let Some(rate) = ctx.rate {
        let w = window(ctx, rate).await?;
        if w.sustained() {
            best = Some(w);
        } else {
            failed = Some(w);
        }
    } else {
        // Doubling until a rate is not sustained (or passes the insert floor) …
        let mut rate = START_RATE;
        loop {
            let w = window(ctx, rate).await?;
            if w.sustained() {
                best = Some(w);
                rate *= 2.0;
                if rate > floor.tps * 1.5 {
                    break;
                }
            } else {
                failed = Some(w);
                break;
            }
        }
        // … then bisecting between the best sustained rate and the first that was not.
        for _ in 0..ctx.pick(3, 1) {
            let (Some(good), Some(bad)) = (&best, &failed) else {
                break;
            };
            let rate = ((good.rate + bad.rate) / 2.0).round();
            let w = window(ctx, rate).await?;
            if w.sustained() {
                best = Some(w);
            } else {
                failed = Some(w);
            }
        }
    }

    let shown = match (&best, &failed) {
        (Some(good), _) => good,
        (None, Some(bad)) => bad,
        (None, None) => bail!("no window ran"),
    };
    describe_costs(shown);
    let sustained = best.as_ref().map_or(0.0, |w| w.rate);
    ctx.push(Row::ratio_at_least(
        "lifecycle",
        "sustained jobs/s, POST → completed (open loop, 16 users)",
        num(sustained),
        format!("{} pgbench insert ({POOL_CLIENTS} clients)", num(floor.tps)),
        sustained / floor.tps,
        0.25,
    ));
    ctx.push(Row::checked(
        "lifecycle",
        format!("POST → completed p50 / p99 at {} jobs/s", num(shown.rate)),
        format!("{:.1} / {:.1} ms", shown.p50_ms, shown.p99_ms),
        format!(
            "POST → 201 p50 / p99 {:.1} / {:.1} ms",
            shown.post_p50_ms, shown.post_p99_ms
        ),
        "p99 ≤ 250 ms",
        best.is_some() && shown.p99_ms <= 250.0,
    ));
    ctx.push(Row::info(
        "lifecycle",
        "commits per job (pg_stat_database)",
        format!("{:.2}", shown.per_job(shown.db.commits as f64)),
        format!(
            "{:.2} WAL flushes, {:.2} rows updated, {:.2} inserted per job",
            shown.per_job(shown.wal.syncs as f64),
            shown.per_job(shown.db.updated as f64),
            shown.per_job(shown.db.inserted as f64)
        ),
        None,
    ));
    let requests: Vec<String> = shown
        .requests
        .iter()
        .map(|(name, n)| format!("{name} {:.2}", shown.per_job(*n)))
        .collect();
    ctx.push(Row::info(
        "lifecycle",
        "HTTP requests served per job",
        requests.join(" / "),
        format!(
            "{:.2} in all",
            shown.per_job(shown.requests.iter().map(|(_, n)| n).sum())
        ),
        None,
    ));
    ctx.push(Row::info(
        "lifecycle",
        "CPU per job: services / PostgreSQL",
        format!(
            "{:.3} / {} ms",
            ms(shown.services_cpu, shown.created),
            shown.postgres_cpu.map_or_else(
                || "n/a".to_owned(),
                |d| format!("{:.3}", ms(d, shown.created))
            )
        ),
        format!(
            "{:.3} ms the load driver",
            ms(shown.driver_cpu, shown.created)
        ),
        None,
    ));
    ctx.push(Row::checked(
        "lifecycle",
        "jobs completed, printed exactly once",
        format!("{} / {}", shown.printed.once, shown.printed.jobs),
        format!("{} repeat sends deduplicated", shown.printed.resent),
        "all",
        shown.printed.once == shown.printed.jobs,
    ));
    if let Some(bad) = &failed {
        ctx.push(Row::info(
            "lifecycle",
            "lowest rate tried and not sustained",
            num(bad.rate),
            bad.why_not().unwrap_or_default(),
            None,
        ));
    }
    if best.is_none() {
        note("no rate was sustained");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_requests_by_route() {
        let text = "pixpress_http_requests_total{endpoint=\"/print/jobs\",method=\"POST\",service=\"print\",status=\"201\"} 10\n\
            pixpress_http_requests_total{endpoint=\"/lookup\",method=\"GET\",service=\"management\",status=\"200\"} 4\n";
        let routes = requests_by_route(text);
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0], ("print POST /print/jobs 201".to_owned(), 10.0));
        let later = requests_by_route(&text.replace("} 10", "} 25"));
        assert_eq!(
            delta(&routes, &later),
            vec![("print POST /print/jobs 201".to_owned(), 15.0)]
        );
    }

    #[test]
    fn percentiles_take_the_upper_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
