//! `/ready` follows the database: 503 while it is unreachable, 200 once it answers
//! and the schema is migrated.

use std::net::TcpListener;
use std::time::Duration;

use pixpress_print::{build, Config};
use pixpress_testkit::http::{client, eventually};
use pixpress_testkit::TestDatabase;

fn start(database_url: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    build(Config::with_database(database_url), listener)
        .unwrap()
        .spawn()
        .0
}

#[tokio::test]
async fn ready_is_503_while_the_database_is_unreachable() {
    // Nothing listens on port 1; the service must still start and serve /health.
    let url = start("postgres://postgres@127.0.0.1:1/none");
    let c = client();
    assert_eq!(
        c.get(format!("{url}/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let res = c.get(format!("{url}/ready")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn ready_is_200_once_the_database_answers_and_is_migrated() {
    let db = TestDatabase::empty().await;
    let url = start(&db.url);
    let c = client();
    eventually("/ready to answer 200", Duration::from_secs(30), || {
        let c = c.clone();
        let url = url.clone();
        async move {
            let res = c.get(format!("{url}/ready")).send().await.ok()?;
            (res.status() == 200).then_some(())
        }
    })
    .await;
    let tables: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'print_jobs'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 1, "the service migrated its database at start");
}
