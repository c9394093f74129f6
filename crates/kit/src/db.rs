//! PostgreSQL: the bb8 pool, migrations, and the database's part in readiness.
//!
//! A binary never waits for the database to start: the pool connects lazily, the
//! migrations run (and retry) in the background, and `/ready` stays 503 until both
//! the database answers and the schema is current.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bb8_postgres::PostgresConnectionManager;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;

use crate::config::DatabaseArgs;
use crate::retry::Backoff;
use crate::server::Background;
use actix_web::http::StatusCode;

use crate::problem::{ApiError, ServiceError};

pub type PgPool = bb8::Pool<PostgresConnectionManager<NoTls>>;
pub type PgConnection<'a> = bb8::PooledConnection<'a, PostgresConnectionManager<NoTls>>;

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// Key of the advisory lock that serializes migrations across replicas ("pixpress").
const MIGRATION_LOCK_KEY: i64 = 0x7069_7870_7265_7373;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unavailable: {0}")]
    Pool(#[from] bb8::RunError<tokio_postgres::Error>),
    #[error("database error: {}", describe(.0))]
    Query(#[from] tokio_postgres::Error),
    /// A row the code cannot read: an unknown state, a missing value that the
    /// schema allows but the row's state forbids.
    #[error("unreadable row: {0}")]
    Corrupt(String),
    /// The schema is not current yet (migrations are still pending).
    #[error("migrations not applied yet")]
    NotMigrated,
}

/// tokio-postgres says only "db error" for server errors; the server's message is
/// what an operator needs.
fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => err.to_string(),
    }
}

impl ServiceError for DbError {
    /// Database trouble is the service's, not the client's: 503 without the cause
    /// (which [`crate::problem::respond`] logs).
    fn api_error(&self) -> ApiError {
        ApiError::new(
            "database-unavailable",
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is unavailable; retry later",
        )
        .retry_after(1)
    }
}

/// `DATABASE_URL` does not parse.
#[derive(Debug, thiserror::Error)]
#[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
pub struct BadDatabaseUrl(#[source] tokio_postgres::Error);

fn config(
    args: &DatabaseArgs,
    connect_timeout: Duration,
) -> Result<tokio_postgres::Config, BadDatabaseUrl> {
    let mut config =
        tokio_postgres::Config::from_str(&args.database_url).map_err(BadDatabaseUrl)?;
    config.connect_timeout(connect_timeout);
    Ok(config)
}

/// Builds the pool without connecting. Fails only when `DATABASE_URL` is malformed.
pub fn pool(args: &DatabaseArgs, connect_timeout: Duration) -> Result<PgPool, BadDatabaseUrl> {
    Ok(pool_of(
        config(args, connect_timeout)?,
        args,
        connect_timeout,
    ))
}

fn pool_of(
    config: tokio_postgres::Config,
    args: &DatabaseArgs,
    connect_timeout: Duration,
) -> PgPool {
    let manager = PostgresConnectionManager::new(config, NoTls);
    bb8::Pool::builder()
        .max_size(args.db_pool_size)
        .connection_timeout(connect_timeout)
        .build_unchecked(manager)
}

/// A first-come, first-served line in front of the pool, for a hot path under load.
/// bb8 gives a returned connection to whoever asks at that moment, so a newcomer can
/// take it ahead of earlier waiters, and under overload some of those waited past the
/// checkout timeout (503s in BENCHMARKS.md's `overload`). Callers that queue here are
/// served in arrival order (tokio's semaphore is fair); the time in line counts
/// against the same timeout, so nobody waits longer than a plain checkout would.
pub struct CheckoutLine {
    turns: Semaphore,
    timeout: Duration,
}

impl CheckoutLine {
    /// `size`: the pool's size; `timeout`: the pool's checkout timeout.
    pub fn new(size: usize, timeout: Duration) -> Self {
        Self {
            turns: Semaphore::new(size),
            timeout,
        }
    }

    /// A connection, once the callers ahead have had theirs; hold the turn as long as
    /// the connection.
    pub async fn get<'a>(
        &'a self,
        pool: &'a PgPool,
    ) -> Result<(SemaphorePermit<'a>, PgConnection<'a>), DbError> {
        let turn = async {
            // The semaphore is never closed, so an error here cannot happen.
            let turn = self.turns.acquire().await.ok();
            Ok::<_, DbError>((turn, pool.get().await?))
        };
        match tokio::time::timeout(self.timeout, turn).await {
            Ok(Ok((Some(turn), conn))) => Ok((turn, conn)),
            Ok(Err(e)) => Err(e),
            Ok(Ok((None, _))) | Err(_) => Err(DbError::Pool(bb8::RunError::TimedOut)),
        }
    }
}

/// Applies every pending migration in one transaction, holding an advisory lock so
/// replicas starting together apply each migration exactly once. Returns how many
/// were applied.
pub async fn migrate(pool: &PgPool) -> Result<usize, DbError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version text PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let applied: Vec<String> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut count = 0;
    for (version, sql) in MIGRATIONS {
        if applied.iter().any(|v| v == version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await?;
        log::info!("applied migration {version}");
        count += 1;
    }
    tx.commit().await?;
    Ok(count)
}

/// The service's database: the pool, the settings `LISTEN` connects with, and
/// whether the schema is current.
#[derive(Clone)]
pub struct Database {
    pub pool: PgPool,
    listen_config: tokio_postgres::Config,
    migrated: Arc<AtomicBool>,
}

/// Migrations are retried this way until they succeed.
const MIGRATE_RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));

impl Database {
    /// The service's database, without connecting, migrated in `background` (retried
    /// until the database answers). Fails only when `DATABASE_URL` is malformed.
    pub fn start(
        args: &DatabaseArgs,
        connect_timeout: Duration,
        background: &mut Background,
    ) -> Result<Self, BadDatabaseUrl> {
        let listen_config = config(args, connect_timeout)?;
        let database = Self {
            pool: pool_of(listen_config.clone(), args, connect_timeout),
            listen_config,
            migrated: Arc::new(AtomicBool::new(false)),
        };
        let db = database.clone();
        background.spawn(move |stop| async move { db.migrate_until_done(stop).await });
        Ok(database)
    }

    /// A pooled connection.
    pub async fn get(&self) -> Result<PgConnection<'_>, DbError> {
        Ok(self.pool.get().await?)
    }

    /// Where a dedicated (non-pooled) connection, such as `LISTEN`'s, connects.
    pub fn listen_config(&self) -> &tokio_postgres::Config {
        &self.listen_config
    }

    async fn migrate_until_done(&self, stop: CancellationToken) {
        let mut failures = 0;
        loop {
            match migrate(&self.pool).await {
                Ok(_) => {
                    self.migrated.store(true, Ordering::Release);
                    return;
                }
                Err(err) => {
                    failures += 1;
                    let delay = MIGRATE_RETRY.delay(failures);
                    log::warn!("migrations not applied yet, retrying in {delay:?}: {err}");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    pub fn is_migrated(&self) -> bool {
        self.migrated.load(Ordering::Acquire)
    }

    /// Waits until the schema is current (false if `stop` comes first): workers
    /// start after the migrations instead of failing against missing tables.
    pub async fn wait_until_migrated(&self, stop: &CancellationToken) -> bool {
        while !self.is_migrated() {
            tokio::select! {
                _ = stop.cancelled() => return false,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        true
    }

    /// Ready when the schema is current and a connection answers a query.
    pub async fn check(&self) -> Result<(), DbError> {
        if !self.is_migrated() {
            return Err(DbError::NotMigrated);
        }
        let conn = self.pool.get().await?;
        conn.simple_query("SELECT 1").await?;
        Ok(())
    }
}
