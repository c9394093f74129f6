//! A fresh, migrated database per test, dropped when the test is done with it.
//!
//! The server is found once per test binary, in this order: `TEST_DATABASE_URL`,
//! then `DATABASE_URL`, then `postgres://postgres@127.0.0.1:5432`, and if none of
//! them answers, a throwaway cluster started from the installed server binaries in
//! a temporary directory (stopped when the test binary exits).
//!
//! Each test's database is dropped when its [`TestDatabase`] is (also when the test
//! panics), connections and all. A test binary that is killed cannot do that, so
//! each binary, when it first reaches the server, sweeps up the `pixpress_test_*`
//! databases left there. Every test database is labelled (in its comment) with the
//! process that made it, and a database counts as left over only when
//! - that process was on this host and is gone, or
//! - it was elsewhere or is unknown (an unlabelled database), the database is more
//!   than an hour old, and nobody is connected to it.
//!
//! So concurrent test binaries never drop each other's databases: on one host each
//! sees the other running, and no test lasts an hour. Details in `db/cleanup.rs`.

mod cleanup;

use std::sync::OnceLock;
use std::time::Duration;

use pixpress_embedded::postgres::{free_port, ClusterOptions, PostgresCluster, PostgresError};
use tokio::sync::OnceCell;
use tokio_postgres::NoTls;

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The server URL (of its maintenance database) every test database is created on.
static SERVER: OnceCell<String> = OnceCell::const_new();
/// Keeps the throwaway cluster (and its directory) alive for the whole test binary.
static THROWAWAY: OnceLock<(PostgresCluster, tempfile::TempDir)> = OnceLock::new();

/// A database of its own for one test, created empty and migrated, and dropped
/// (its connections cut first) when this value is.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    /// The maintenance database it is dropped from.
    server: &'static str,
}

impl TestDatabase {
    /// Creates and migrates a new database. Panics with one clear line when no
    /// PostgreSQL can be reached or started (tests cannot run without one).
    pub async fn new() -> Self {
        let db = Self::empty().await;
        let pool = db.pool();
        pixpress_kit::db::migrate(&pool)
            .await
            .unwrap_or_else(|e| panic!("migrating {}: {e}", db.name));
        db
    }

    /// Creates a new database without migrating it.
    pub async fn empty() -> Self {
        let server = server_url().await;
        let name = cleanup::new_name();
        let (client, conn) = tokio_postgres::connect(server, NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to {server}: {e}"));
        tokio::spawn(conn);
        // CREATE DATABASE cannot share a transaction with the COMMENT: until the
        // comment is there, the database counts as one of unknown owner (kept).
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        let url = replace_database(server, &name);
        let db = Self { name, url, server };
        client
            .batch_execute(&cleanup::label_statement(&db.name))
            .await
            .unwrap_or_else(|e| panic!("labelling database {}: {e}", db.name));
        db
    }

    /// A pool on this database (small: tests share the server).
    pub fn pool(&self) -> pixpress_kit::db::PgPool {
        let mut args = pixpress_kit::config::DatabaseArgs::new(&self.url);
        args.db_pool_size = 8;
        pixpress_kit::db::pool(&args, Duration::from_secs(5)).expect("a valid test database URL")
    }

    /// A direct client, for asserting on what a service stored.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.url));
        tokio::spawn(conn);
        client
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        cleanup::drop_now(self.server, &self.name);
    }
}

/// `postgres://…/old` → `postgres://…/new` (query string kept).
fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{database}?{q}"),
        None => format!("{root}/{database}"),
    }
}

async fn answers(url: &str) -> bool {
    let connect = tokio_postgres::connect(url, NoTls);
    match tokio::time::timeout(Duration::from_secs(3), connect).await {
        Ok(Ok((client, conn))) => {
            tokio::spawn(conn);
            client.simple_query("SELECT 1").await.is_ok()
        }
        _ => false,
    }
}

async fn server_url() -> &'static str {
    SERVER
        .get_or_init(|| async {
            let Some(url) = configured_server().await else {
                // A fresh cluster has no leftovers to sweep.
                return tokio::task::spawn_blocking(start_throwaway)
                    .await
                    .unwrap_or_else(|e| panic!("starting a throwaway PostgreSQL: {e}"));
            };
            cleanup::sweep_in_background(url.clone());
            url
        })
        .await
}

/// `TEST_DATABASE_URL`, `DATABASE_URL`, or the default server if it answers.
async fn configured_server() -> Option<String> {
    for var in ["TEST_DATABASE_URL", "DATABASE_URL"] {
        if let Ok(url) = std::env::var(var) {
            if !url.is_empty() {
                return Some(url);
            }
        }
    }
    answers(DEFAULT_SERVER)
        .await
        .then(|| DEFAULT_SERVER.to_owned())
}

/// Removes throwaway clusters of earlier test binaries (their servers died with
/// them, but statics are never dropped, so their directories stay).
fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_ours = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("pixpress-pg-"));
        // A directory younger than a minute may be a cluster still being initialized.
        let young = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < Duration::from_secs(60));
        if !is_ours || young {
            continue;
        }
        let pid = std::fs::read_to_string(path.join("data/postmaster.pid"))
            .ok()
            .and_then(|text| {
                text.lines()
                    .next()
                    .and_then(|l| l.trim().parse::<i32>().ok())
            });
        // SAFETY: signal 0 only checks that the process exists.
        let alive = pid.is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0);
        if !alive {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// A fresh, non-durable cluster on a free port, in a new temporary directory whose
/// name starts with `prefix` (one of [`remove_stale_clusters`]'s `pixpress-pg-…`),
/// after sweeping the leftovers of earlier test binaries. Drop the cluster before
/// the directory.
pub(crate) fn start_cluster(
    prefix: &str,
) -> Result<(PostgresCluster, tempfile::TempDir), PostgresError> {
    remove_stale_clusters();
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .unwrap_or_else(|e| panic!("creating a temporary directory: {e}"));
    let options = ClusterOptions {
        data_dir: dir.path().join("data"),
        port: free_port().unwrap_or_else(|e| panic!("finding a free port: {e}")),
        durable: false,
    };
    Ok((PostgresCluster::start(&options)?, dir))
}

fn start_throwaway() -> String {
    let (cluster, _dir) = THROWAWAY.get_or_init(|| {
        start_cluster("pixpress-pg-").unwrap_or_else(|e| {
            panic!("no PostgreSQL at {DEFAULT_SERVER} and none could be started: {e}")
        })
    });
    cluster.url("postgres")
}

#[cfg(test)]
mod tests {
    use super::replace_database;

    #[test]
    fn replaces_only_the_database_name() {
        assert_eq!(
            replace_database("postgres://u:p@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://h", "t2"), "postgres://h/t2");
    }
}
