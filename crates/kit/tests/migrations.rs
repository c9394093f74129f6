//! Migrations against a real PostgreSQL: applied once even when replicas race.

use pixpress_kit::db::{migrate, MIGRATIONS};
use pixpress_testkit::TestDatabase;

#[tokio::test]
async fn concurrent_migrations_apply_each_file_exactly_once() {
    let db = TestDatabase::empty().await;
    let (a, b) = (db.pool(), db.pool());
    let (ra, rb) = tokio::join!(migrate(&a), migrate(&b));
    let (na, nb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(
        na + nb,
        MIGRATIONS.len(),
        "one of the two applied everything"
    );

    let client = db.client().await;
    let versions: Vec<String> = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected: Vec<String> = MIGRATIONS.iter().map(|(v, _)| v.to_string()).collect();
    assert_eq!(versions, expected);

    // Running again later is a no-op.
    assert_eq!(migrate(&a).await.unwrap(), 0);
}
