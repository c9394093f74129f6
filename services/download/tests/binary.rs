//! The download-service binary as operators run it: configured from the environment, serving the
//! operational routes, exiting 0 on SIGTERM.

use pixpress_testkit::process::{assert_help_lists, assert_serves_and_stops_on_sigterm};
use pixpress_testkit::TestDatabase;

const BINARY: &str = env!("CARGO_BIN_EXE_download-service");

#[tokio::test]
async fn serves_operational_routes_and_stops_on_sigterm() {
    let db = TestDatabase::new().await;
    assert_serves_and_stops_on_sigterm(BINARY, &[("DATABASE_URL", db.url.as_str())]).await;
}

#[test]
fn help_lists_its_environment_variables() {
    assert_help_lists(
        BINARY,
        &[
            "HTTP_ADDR",
            "DATABASE_URL",
            "S3_ENDPOINT",
            "DOWNLOAD_MAX_BYTES",
            "THUMBNAIL_SIZE",
        ],
    );
}
