//! PostgreSQL: the bb8 pool, migrations, and the database's part in readiness.
//!
//! A binary never waits for the database to start: the pool connects lazily, the
//! migrations run (and retry) in the background, and `/ready` stays 503 until both
//! the database answers and the schema is current.
//!
//! Every connection carries the deadline (DB_STATEMENT_TIMEOUT_MS): the server
//! cancels a statement past it, a connection attempt gives up at it, a checkout
//! waits no longer for a free connection, and [`Database::within`] bounds a whole
//! piece of work by it, which also covers a server too frozen to cancel anything.
//! A refused connection fails the checkouts waiting for it at once. TLS: `tls.rs`;
//! the statements each connection keeps prepared: `statements.rs`.
//!
//! A checkout costs no round trip: a connection is not tested with a query when it
//! is handed out (bb8's `test_on_check_out`), only skipped when its socket has
//! closed. One that broke unnoticed fails the statement that finds out, with a 503,
//! and is dropped when it goes back.

mod statements;
mod tls;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore, SemaphorePermit};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Socket};
use tokio_util::sync::CancellationToken;

use crate::config::DatabaseArgs;
use crate::retry::Backoff;
use crate::server::Background;
use actix_web::http::StatusCode;

use crate::problem::{ApiError, ServiceError};

pub use statements::{Params, PgClient, Sql, Statements, Tx};
pub use tls::Tls;

pub type PgPool = bb8::Pool<Connector>;
pub type PgConnection<'a> = bb8::PooledConnection<'a, Connector>;
/// A connection's driver (to poll, or spawn), as [`Connector::open`] returns it.
pub type PgDriver = tokio_postgres::Connection<Socket, <Tls as MakeTlsConnect<Socket>>::Stream>;

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// Key of the advisory lock that serializes migrations across replicas ("pixpress").
const MIGRATION_LOCK_KEY: i64 = 0x7069_7870_7265_7373;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unavailable: {0}")]
    Pool(#[from] bb8::RunError<ConnectError>),
    #[error("database error: {}", describe(.0))]
    Query(#[from] tokio_postgres::Error),
    /// A row the code cannot read: an unknown state, a missing value that the
    /// schema allows but the row's state forbids.
    #[error("unreadable row: {0}")]
    Corrupt(String),
    /// The schema is not current yet (migrations are still pending).
    #[error("migrations not applied yet")]
    NotMigrated,
    /// The database did not answer within the deadline (a frozen or overloaded
    /// server): see [`Database::within`].
    #[error("the database did not answer within {0:?}")]
    Timeout(Duration),
    /// The group write ([`crate::batch`]) that carried this one failed.
    #[error("{0}")]
    Batch(#[from] crate::batch::BatchError<DbError>),
}

/// tokio-postgres says only "db error" for server errors; the server's message is
/// what an operator needs.
fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => err.to_string(),
    }
}

/// [`describe`] with the causes, for an error that does not pass them on as its
/// `source`: tokio-postgres says "error connecting to server" without why.
pub(crate) fn describe_fully(err: &tokio_postgres::Error) -> String {
    if err.as_db_error().is_some() {
        return describe(err);
    }
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(e) = cause {
        text = format!("{text}: {e}");
        cause = e.source();
    }
    text
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

/// The database settings are unusable; the binary stops at start.
#[derive(Debug, thiserror::Error)]
pub enum BadDatabaseSettings {
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {}", describe_fully(.0))]
    Url(tokio_postgres::Error),
    #[error("DATABASE_CA_FILE {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error("TLS for the database cannot be set up: {0}")]
    Tls(#[source] rustls::Error),
}

/// A connection attempt failed (refused, TLS or authentication failed), or the
/// server did not answer it within the deadline.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    #[error("{}", describe_fully(.0))]
    Failed(Arc<tokio_postgres::Error>),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

/// How this service reaches its database: `DATABASE_URL` with the deadline's
/// settings, and TLS as its `sslmode` asks. The pool's connections and `LISTEN`'s
/// are made here.
#[derive(Clone)]
pub struct Connector {
    config: tokio_postgres::Config,
    tls: Tls,
    deadline: Duration,
    /// The latest failed attempt of the pool's, for the checkouts waiting on it.
    refused: watch::Sender<Option<ConnectError>>,
}

impl Connector {
    /// Fails only when the settings are unusable (a malformed URL, an unreadable
    /// CA file); nothing is connected yet.
    pub fn new(args: &DatabaseArgs, deadline: Duration) -> Result<Self, BadDatabaseSettings> {
        let (mut config, tls) = tls::parse(&args.database_url, args.database_ca_file.as_deref())?;
        config.connect_timeout(deadline);
        config.options(server_deadline(deadline, config.get_options()));
        Ok(Self {
            config,
            tls,
            deadline,
            refused: watch::Sender::new(None),
        })
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// A connection of its own (not pooled), within the deadline; the caller polls
    /// or spawns the driver.
    pub async fn open(&self) -> Result<(Client, PgDriver), ConnectError> {
        let connect = self.config.connect(self.tls.clone());
        match tokio::time::timeout(self.deadline, connect).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(e)) => Err(ConnectError::Failed(Arc::new(e))),
            Err(_) => Err(ConnectError::TimedOut(self.deadline)),
        }
    }

    /// The next failed attempt of the pool's after this call.
    fn next_refusal(&self) -> impl Future<Output = ConnectError> {
        let mut refused = self.refused.subscribe();
        async move {
            while refused.changed().await.is_ok() {
                if let Some(e) = refused.borrow_and_update().clone() {
                    return e;
                }
            }
            std::future::pending().await
        }
    }
}

/// The session settings that hold every statement to the deadline, ahead of any
/// `options` in `DATABASE_URL` (so a setting there wins). A transaction left idle
/// past the deadline belongs to work that was abandoned (or a client that froze),
/// and would hold its locks until the connection closed. `lock_timeout` is not set:
/// the statement's timeout already bounds its lock waits.
fn server_deadline(deadline: Duration, theirs: Option<&str>) -> String {
    let ms = deadline.as_millis().clamp(1, i32::MAX as u128);
    let ours = format!("-c statement_timeout={ms} -c idle_in_transaction_session_timeout={ms}");
    match theirs {
        Some(theirs) => format!("{ours} {theirs}"),
        None => ours,
    }
}

impl bb8::ManageConnection for Connector {
    type Connection = PgClient;
    type Error = ConnectError;

    async fn connect(&self) -> Result<PgClient, ConnectError> {
        match self.open().await {
            Ok((client, driver)) => {
                tokio::spawn(async move {
                    if let Err(e) = driver.await {
                        log::debug!("database connection closed: {e}");
                    }
                });
                Ok(PgClient::new(client))
            }
            Err(e) => {
                // bb8 does not hand a failed attempt to the checkouts waiting on it:
                // they would wait out their timeout. Database::get listens for this.
                self.refused.send_replace(Some(e.clone()));
                Err(e)
            }
        }
    }

    /// Unused at checkout (see the module's doc); bb8 asks it of idle connections
    /// it reaps.
    async fn is_valid(&self, conn: &mut PgClient) -> Result<(), ConnectError> {
        conn.simple_query("")
            .await
            .map(|_| ())
            .map_err(|e| ConnectError::Failed(Arc::new(e)))
    }

    fn has_broken(&self, conn: &mut PgClient) -> bool {
        conn.is_closed()
    }
}

/// Builds the pool without connecting, with DB_STATEMENT_TIMEOUT_MS or else
/// `deadline`. Fails only when the settings are unusable.
pub fn pool(args: &DatabaseArgs, deadline: Duration) -> Result<PgPool, BadDatabaseSettings> {
    Ok(pool_of(
        &Connector::new(args, args.deadline(deadline))?,
        args,
    ))
}

fn pool_of(connector: &Connector, args: &DatabaseArgs) -> PgPool {
    bb8::Pool::builder()
        .max_size(args.db_pool_size)
        .connection_timeout(connector.deadline)
        .test_on_check_out(false)
        // A failed attempt is not retried until the timeout: the checkout that needed
        // it fails at once (Database::get), and the next checkout tries again.
        .retry_connection(false)
        .build_unchecked(connector.clone())
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
    /// `size`: the pool's size; `timeout`: the database deadline
    /// ([`Database::deadline`]).
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
        db: &'a Database,
    ) -> Result<(SemaphorePermit<'a>, PgConnection<'a>), DbError> {
        let turn = async {
            // The semaphore is never closed, so an error here cannot happen.
            let turn = self.turns.acquire().await.ok();
            Ok::<_, DbError>((turn, db.get().await?))
        };
        match tokio::time::timeout(self.timeout, turn).await {
            Ok(Ok((Some(turn), conn))) => Ok((turn, conn)),
            Ok(Err(e)) => Err(e),
            Ok(Ok((None, _))) | Err(_) => Err(DbError::Timeout(self.timeout)),
        }
    }
}

/// Applies every pending migration in one transaction, holding an advisory lock so
/// replicas starting together apply each migration exactly once. Returns how many
/// were applied.
pub async fn migrate(pool: &PgPool) -> Result<usize, DbError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    // A migration may rightly take longer than a request's deadline (an index on a
    // big table), and so may waiting for another replica's.
    tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
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

/// The service's database: the pool, how `LISTEN` connects, and whether the schema
/// is current.
#[derive(Clone)]
pub struct Database {
    pub pool: PgPool,
    connector: Connector,
    migrated: Arc<AtomicBool>,
}

/// Migrations are retried this way until they succeed.
const MIGRATE_RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));

impl Database {
    /// The service's database, without connecting, migrated in `background` (retried
    /// until the database answers). Its deadline is DB_STATEMENT_TIMEOUT_MS, or else
    /// `deadline` (the service's backend timeout). Fails only when the settings are
    /// unusable.
    pub fn start(
        args: &DatabaseArgs,
        deadline: Duration,
        background: &mut Background,
    ) -> Result<Self, BadDatabaseSettings> {
        let connector = Connector::new(args, args.deadline(deadline))?;
        let database = Self {
            pool: pool_of(&connector, args),
            connector,
            migrated: Arc::new(AtomicBool::new(false)),
        };
        let db = database.clone();
        background.spawn(move |stop| async move { db.migrate_until_done(stop).await });
        Ok(database)
    }

    /// A pooled connection, within the deadline; at once an error if the server
    /// refuses the connection this checkout waits for.
    /// A connection whose socket has closed (the server restarted, say) is dropped
    /// and the next one taken.
    pub async fn get(&self) -> Result<PgConnection<'_>, DbError> {
        let open = async {
            loop {
                let conn = self.pool.get().await?;
                if !conn.is_closed() {
                    return Ok::<_, bb8::RunError<ConnectError>>(conn);
                }
            }
        };
        tokio::select! {
            conn = open => conn.map_err(|e| match e {
                bb8::RunError::TimedOut => DbError::Timeout(self.deadline()),
                e => e.into(),
            }),
            refused = self.connector.next_refusal() => Err(bb8::RunError::User(refused).into()),
        }
    }

    /// How long one piece of database work may take before it is abandoned.
    pub fn deadline(&self) -> Duration {
        self.connector.deadline
    }

    /// Runs `work` (a checkout and the statements that follow it) within the
    /// database deadline: past it, `DbError::Timeout` (503), whatever the server is
    /// doing. A frozen server answers nothing, not even with its own
    /// `statement_timeout`, so every request handler and worker step wraps its
    /// database work in this.
    pub async fn within<T>(
        &self,
        work: impl Future<Output = Result<T, DbError>>,
    ) -> Result<T, DbError> {
        let deadline = self.deadline();
        tokio::time::timeout(deadline, work)
            .await
            .unwrap_or(Err(DbError::Timeout(deadline)))
    }

    /// A pooled connection for `work`, the whole within the deadline (see
    /// [`Database::within`]).
    pub async fn with_connection<T>(
        &self,
        work: impl AsyncFnOnce(&PgClient) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.within(async { work(&*self.get().await?).await }).await
    }

    /// How a dedicated (non-pooled) connection, such as `LISTEN`'s, connects.
    pub fn listen_config(&self) -> &Connector {
        &self.connector
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

    /// Ready when the schema is current and a connection answers a query within
    /// the deadline.
    pub async fn check(&self) -> Result<(), DbError> {
        if !self.is_migrated() {
            return Err(DbError::NotMigrated);
        }
        self.within(async {
            self.get().await?.simple_query("SELECT 1").await?;
            Ok(())
        })
        .await
    }
}
