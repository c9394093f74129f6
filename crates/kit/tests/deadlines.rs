//! Every piece of database work has a deadline (DB_STATEMENT_TIMEOUT_MS): against a
//! frozen server (every PostgreSQL process SIGSTOPped) work gives up at it and `/ready`'s
//! check fails, and the same `Database` works again once the server thaws; the server
//! cancels a statement past it; a refused connection fails a checkout at once.

use std::time::{Duration, Instant};

use pixpress_kit::config::DatabaseArgs;
use pixpress_kit::db::{Database, DbError};
use pixpress_kit::server::Background;
use pixpress_testkit::cluster::OwnServer;
use pixpress_testkit::http::{eventually, free_port};
use pixpress_testkit::TestDatabase;

const DEADLINE: Duration = Duration::from_millis(500);
/// Room for a loaded machine on top of the deadline; far below "hangs".
const MARGIN: Duration = Duration::from_secs(3);

/// A migrated `Database` with DB_STATEMENT_TIMEOUT_MS = [`DEADLINE`] (the service's
/// own default, 30 s here, must not be the one that applies).
async fn database(url: &str) -> (Database, Background) {
    let mut args = DatabaseArgs::new(url);
    args.db_statement_timeout_ms = Some(DEADLINE.as_millis() as u64);
    let mut background = Background::new();
    let db = Database::start(&args, Duration::from_secs(30), &mut background).unwrap();
    let migrated = tokio::time::timeout(
        Duration::from_secs(30),
        db.wait_until_migrated(&background.token()),
    )
    .await;
    assert_eq!(migrated, Ok(true), "migrations not applied within 30 s");
    (db, background)
}

/// A checkout and a query, as a request handler does them.
async fn select_one(db: &Database) -> Result<(), DbError> {
    db.within(async {
        db.get().await?.simple_query("SELECT 1").await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn work_against_a_frozen_server_gives_up_at_the_deadline() {
    let server = OwnServer::start().await;
    let (db, _background) = database(&server.url("postgres")).await;
    select_one(&db)
        .await
        .expect("the server answers before it is frozen");

    let _frozen = server.freeze();
    let started = Instant::now();
    let result = select_one(&db).await;
    let took = started.elapsed();

    assert!(
        matches!(result, Err(DbError::Timeout(d)) if d == DEADLINE),
        "{result:?}"
    );
    assert!(
        took >= DEADLINE,
        "gave up after {took:?}, before the deadline"
    );
    assert!(took < DEADLINE + MARGIN, "gave up only after {took:?}");
}

#[tokio::test]
async fn the_ready_check_fails_within_the_deadline_while_the_server_is_frozen() {
    let server = OwnServer::start().await;
    let (db, _background) = database(&server.url("postgres")).await;
    db.check().await.expect("ready before the server is frozen");

    let _frozen = server.freeze();
    let started = Instant::now();
    let result = db.check().await;

    assert!(result.is_err(), "ready against a frozen server");
    assert!(
        started.elapsed() < DEADLINE + MARGIN,
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_same_database_works_again_once_the_server_thaws() {
    let server = OwnServer::start().await;
    let (db, _background) = database(&server.url("postgres")).await;
    let frozen = server.freeze();
    // Work abandoned while frozen: its connections are back in the pool, mid-query.
    for _ in 0..3 {
        assert!(select_one(&db).await.is_err(), "answered while frozen");
    }
    drop(frozen);

    eventually(
        "the database answering after the thaw",
        Duration::from_secs(10),
        || async { select_one(&db).await.ok() },
    )
    .await;
    db.check().await.expect("ready again after the thaw");
}

#[tokio::test]
async fn the_server_cancels_a_statement_past_the_deadline() {
    let test_db = TestDatabase::empty().await;
    let (db, _background) = database(&test_db.url).await;
    let conn = db.get().await.unwrap();

    // Without `within`: only the server's statement_timeout can end this.
    let err = conn
        .simple_query("SELECT pg_sleep(30)")
        .await
        .expect_err("a 30 s statement ran to its end");

    let code = err.as_db_error().map(|e| e.code().code());
    assert_eq!(
        code,
        Some("57014"),
        "not canceled by statement_timeout: {err}"
    );
}

#[tokio::test]
async fn options_in_the_database_url_are_kept_beside_the_deadline() {
    let test_db = TestDatabase::empty().await;
    let url = format!("{}?options=-c%20application_name%3Dmine", test_db.url);
    let (db, _background) = database(&url).await;
    let conn = db.get().await.unwrap();

    let row = conn
        .query_one(
            "SELECT current_setting('application_name') AS name,
                    current_setting('statement_timeout') AS timeout,
                    current_setting('idle_in_transaction_session_timeout') AS idle",
            &[],
        )
        .await
        .unwrap();

    assert_eq!(row.get::<_, String>("name"), "mine");
    assert_eq!(row.get::<_, String>("timeout"), "500ms");
    assert_eq!(row.get::<_, String>("idle"), "500ms");
}

#[tokio::test]
async fn a_checkout_fails_at_once_when_nothing_listens_on_the_port() {
    let port = free_port();
    let mut args = DatabaseArgs::new(format!("postgres://postgres@127.0.0.1:{port}/postgres"));
    let pool_timeout = Duration::from_secs(30);
    args.db_statement_timeout_ms = Some(pool_timeout.as_millis() as u64);
    // Not migrated: a checkout does not need the schema.
    let db = Database::start(&args, pool_timeout, &mut Background::new()).unwrap();

    let started = Instant::now();
    let result = db.get().await.map(drop);
    let took = started.elapsed();

    assert!(
        matches!(result, Err(DbError::Pool(bb8::RunError::User(_)))),
        "{result:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "refused only after {took:?} (pool timeout {pool_timeout:?})"
    );
}
