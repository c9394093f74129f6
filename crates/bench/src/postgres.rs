//! The PostgreSQL side of the harness: the server every scenario's database lives
//! on, pgbench (the database's own figure for a statement, the reference of
//! `lifecycle` and `get-job`), and the server's counters (`pg_stat_database`,
//! optionally `pg_stat_statements`) and CPU time, to say what one job costs there.
//!
//! The server: `TEST_DATABASE_URL`/`DATABASE_URL` or PostgreSQL on 127.0.0.1:5432
//! when set or answering (as `pixpress_testkit::TestDatabase` finds it); otherwise a
//! cluster of the harness's own, started here *durable* (fsync and synchronous
//! commit on, as in production). The testkit's own fallback skips fsync, which makes
//! a committed insert a memory write and every commit-bound figure meaningless.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use pixpress_embedded::postgres::{free_port, ClusterOptions, PostgresCluster};

use crate::system;

/// The harness's own durable cluster; stopped (and its directory removed) on drop.
pub struct OwnServer {
    // Declared first: the server stops before its directory goes.
    _cluster: PostgresCluster,
    _dir: tempfile::TempDir,
}

/// Where the scenarios' databases go: an external server if one is configured or
/// answers on 5432, else a durable cluster of our own, whose URL is handed to the
/// testkit through `TEST_DATABASE_URL`. Call before any thread is started (it sets
/// an environment variable). `statements`: load `pg_stat_statements` (own cluster
/// only), for a per-statement profile of `lifecycle`.
pub fn ensure_server(statements: bool) -> anyhow::Result<Option<OwnServer>> {
    let configured = ["TEST_DATABASE_URL", "DATABASE_URL"]
        .iter()
        .any(|var| std::env::var(var).is_ok_and(|v| !v.is_empty()));
    let local = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], 5432)),
        Duration::from_millis(300),
    )
    .is_ok();
    if configured || local {
        if statements {
            eprintln!("pixpress-bench: --pg-stat-statements applies to the harness's own cluster only; ignored");
        }
        return Ok(None);
    }
    let dir = tempfile::Builder::new()
        .prefix("pixpress-bench-pg-")
        .tempdir()?;
    let options = ClusterOptions {
        data_dir: dir.path().join("data"),
        port: free_port()?,
        durable: true,
    };
    let mut cluster = PostgresCluster::start(&options)
        .map_err(|e| anyhow::anyhow!("starting a durable PostgreSQL: {e}"))?;
    if statements {
        // Read at start only: stop, configure, start again.
        cluster.stop();
        let conf = options.data_dir.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)?;
        text.push_str(
            "\nshared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = all\n",
        );
        std::fs::write(&conf, text)?;
        cluster
            .start_again()
            .map_err(|e| anyhow::anyhow!("restarting PostgreSQL with pg_stat_statements: {e}"))?;
    }
    // Before any other thread exists (main calls this first): nothing reads the
    // environment concurrently.
    std::env::set_var("TEST_DATABASE_URL", cluster.url("postgres"));
    Ok(Some(OwnServer {
        _cluster: cluster,
        _dir: dir,
    }))
}

/// `PostgreSQL 15.18 …, fsync on, synchronous_commit on`: printed with the table.
pub async fn describe(client: &tokio_postgres::Client) -> String {
    let show = |name: &'static str| async move {
        client
            .query_one(&format!("SHOW {name}"), &[])
            .await
            .map(|row| row.get::<_, String>(0))
            .unwrap_or_else(|_| "?".to_owned())
    };
    format!(
        "PostgreSQL {} (fsync {}, synchronous_commit {})",
        show("server_version").await,
        show("fsync").await,
        show("synchronous_commit").await
    )
}

/// What one pgbench run measured.
#[derive(Debug, Clone)]
pub struct Pgbench {
    /// Transactions per second (without the initial connection time).
    pub tps: f64,
    pub latency_ms: f64,
}

/// The newest `/usr/lib/postgresql/*/bin/pgbench`, else `pgbench` on the PATH.
fn pgbench_binary() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let path = entry.path().join("bin/pgbench");
            path.is_file().then_some((version, path))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map_or_else(|| PathBuf::from("pgbench"), |(_, path)| path)
}

/// Runs pgbench with the custom `script` (prepared statements, `clients` clients on
/// 2 threads, no vacuum) against `url` for `duration`.
pub async fn pgbench(
    url: &str,
    script: &str,
    clients: u32,
    duration: Duration,
) -> anyhow::Result<Pgbench> {
    let file = tempfile::Builder::new()
        .prefix("pixpress-bench-")
        .suffix(".sql")
        .tempfile()?;
    std::fs::write(file.path(), script)?;
    let binary = pgbench_binary();
    let output = tokio::process::Command::new(&binary)
        .args(["-n", "-M", "prepared", "-j", "2"])
        .arg(format!("-c{clients}"))
        .arg(format!("-T{}", duration.as_secs().max(1)))
        .arg("-f")
        .arg(file.path())
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("starting {}", binary.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed ({}): {} {}",
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    parse_pgbench(&stdout)
}

fn parse_pgbench(stdout: &str) -> anyhow::Result<Pgbench> {
    let number_after = |prefix: &str| {
        stdout.lines().find_map(|line| {
            line.trim()
                .strip_prefix(prefix)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<f64>().ok())
        })
    };
    let tps = number_after("tps = ").context("pgbench printed no tps")?;
    let latency_ms = number_after("latency average = ").unwrap_or(f64::NAN);
    Ok(Pgbench { tps, latency_ms })
}

/// A database's counters in `pg_stat_database` (what its backends reported so far:
/// a backend reports at most once a second while busy, and when it exits).
#[derive(Debug, Clone, Copy, Default)]
pub struct DbCounters {
    pub commits: i64,
    pub rollbacks: i64,
    pub inserted: i64,
    pub updated: i64,
    pub deleted: i64,
}

impl DbCounters {
    pub fn since(&self, before: &DbCounters) -> DbCounters {
        DbCounters {
            commits: self.commits - before.commits,
            rollbacks: self.rollbacks - before.rollbacks,
            inserted: self.inserted - before.inserted,
            updated: self.updated - before.updated,
            deleted: self.deleted - before.deleted,
        }
    }
}

pub async fn counters(client: &tokio_postgres::Client) -> anyhow::Result<DbCounters> {
    let row = client
        .query_one(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted
             FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await?;
    Ok(DbCounters {
        commits: row.try_get("xact_commit")?,
        rollbacks: row.try_get("xact_rollback")?,
        inserted: row.try_get("tup_inserted")?,
        updated: row.try_get("tup_updated")?,
        deleted: row.try_get("tup_deleted")?,
    })
}

/// The server's WAL counters (`pg_stat_wal`: the whole server, every database).
#[derive(Debug, Clone, Copy, Default)]
pub struct WalCounters {
    pub records: i64,
    /// Flushes of the WAL to disk (`wal_sync`): what commits wait for, shared by
    /// the commits of one group.
    pub syncs: i64,
    pub bytes: f64,
}

impl WalCounters {
    pub fn since(&self, before: &WalCounters) -> WalCounters {
        WalCounters {
            records: self.records - before.records,
            syncs: self.syncs - before.syncs,
            bytes: self.bytes - before.bytes,
        }
    }
}

pub async fn wal(client: &tokio_postgres::Client) -> anyhow::Result<WalCounters> {
    let row = client
        .query_one(
            "SELECT wal_records, wal_sync, wal_bytes::float8 AS wal_bytes FROM pg_stat_wal",
            &[],
        )
        .await?;
    Ok(WalCounters {
        records: row.try_get("wal_records")?,
        syncs: row.try_get("wal_sync")?,
        bytes: row.try_get("wal_bytes")?,
    })
}

/// What `pg_stat_database.xact_commit` counts for the round trips a service makes
/// besides its own statements: per `prepare` (Parse/Describe/Sync, which
/// tokio-postgres sends before every `query(&str)`) and per empty simple query
/// (the pool's check on each checkout). Measured on a connection of its own, closed
/// so its backend reports.
pub async fn commits_per_round_trip(url: &str) -> anyhow::Result<(f64, f64)> {
    const N: i64 = 50;
    let connect = || async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        anyhow::Ok(client)
    };
    let reader = connect().await?;
    let mut measured = [0.0; 2];
    for (i, slot) in measured.iter_mut().enumerate() {
        let before = counters(&reader).await?.commits;
        let probe = connect().await?;
        for n in 0..N {
            if i == 0 {
                probe.prepare(&format!("SELECT {n}")).await?;
            } else {
                probe.simple_query("").await?;
            }
        }
        drop(probe);
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The reader's own reading commits once, reported a second later at most.
        *slot = (counters(&reader).await?.commits - before) as f64 / N as f64;
    }
    Ok((measured[0], measured[1]))
}

/// The server's process id (the parent of this connection's backend), to read its
/// CPU time; `None` when the server is not on this machine.
pub async fn postmaster_pid(client: &tokio_postgres::Client) -> Option<u32> {
    let backend: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .ok()?
        .get(0);
    system::parent_of(u32::try_from(backend).ok()?)
}

/// One statement's share in `pg_stat_statements`.
#[derive(Debug, Clone)]
pub struct Statement {
    pub query: String,
    pub calls: i64,
    pub total_ms: f64,
}

/// Whether `pg_stat_statements` is loaded; if so, creates the view in this
/// database and clears it.
pub async fn statements_reset(client: &tokio_postgres::Client) -> bool {
    let loaded = client
        .query_one("SHOW shared_preload_libraries", &[])
        .await
        .map(|row| row.get::<_, String>(0).contains("pg_stat_statements"))
        .unwrap_or(false);
    loaded
        && client
            .batch_execute(
                "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()",
            )
            .await
            .is_ok()
}

/// The statements run in this database since the reset, most time first.
pub async fn statements(client: &tokio_postgres::Client) -> anyhow::Result<Vec<Statement>> {
    let rows = client
        .query(
            "SELECT query, calls, total_exec_time + total_plan_time AS total_ms
             FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             ORDER BY total_exec_time + total_plan_time DESC",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Statement {
                query: row.try_get("query")?,
                calls: row.try_get("calls")?,
                total_ms: row.try_get("total_ms")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pgbench_output() {
        let out = parse_pgbench(
            "transaction type: x.sql\nnumber of clients: 16\nlatency average = 2.150 ms\n\
             initial connection time = 12.3 ms\ntps = 7436.123456 (without initial connection time)\n",
        )
        .unwrap();
        assert_eq!(out.tps, 7436.123456);
        assert_eq!(out.latency_ms, 2.15);
    }
}
