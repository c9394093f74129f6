//! A test's database lives exactly as long as its `TestDatabase`, on whatever
//! server the tests use.

use pixpress_testkit::TestDatabase;

async fn exists(witness: &tokio_postgres::Client, name: &str) -> bool {
    witness
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .expect("reading pg_database")
        .is_some()
}

#[tokio::test]
async fn a_test_database_is_dropped_with_its_value_even_while_connections_are_open() {
    let witness_db = TestDatabase::empty().await;
    let witness = witness_db.client().await;
    let db = TestDatabase::new().await;
    let name = db.name.clone();
    assert!(exists(&witness, &name).await);
    // Like a service still running on it when the test ends.
    let pool = db.pool();
    let held = pool.get().await.expect("a pooled connection");
    held.simple_query("SELECT 1").await.expect("a query");
    let client = db.client().await;

    drop(db);
    assert!(!exists(&witness, &name).await, "{name} is still there");
    assert!(
        client.simple_query("SELECT 1").await.is_err(),
        "its connections were cut"
    );
    drop(held);
}
