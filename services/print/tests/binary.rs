//! The print-service binary as operators run it: configured from the environment, serving the
//! operational routes, exiting 0 on SIGTERM.

use pixpress_testkit::process::{assert_help_lists, assert_serves_and_stops_on_sigterm};
use pixpress_testkit::TestDatabase;

const BINARY: &str = env!("CARGO_BIN_EXE_print-service");

#[tokio::test]
async fn serves_operational_routes_and_stops_on_sigterm() {
    let db = TestDatabase::new().await;
    assert_serves_and_stops_on_sigterm(
        BINARY,
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("AUTH_JWT_SECRET", pixpress_testkit::auth::SECRET),
        ],
    )
    .await;
}

#[test]
fn help_lists_its_environment_variables() {
    assert_help_lists(
        BINARY,
        &[
            "HTTP_ADDR",
            "DATABASE_URL",
            "MANAGEMENT_URL",
            "BACKEND_PERMITS",
            "PRINTER_CALLBACK_SECRET",
            "PRINT_JOB_DEADLINE_MS",
        ],
    );
}

#[test]
fn missing_database_url_stops_the_binary_with_one_line_naming_it() {
    let out = std::process::Command::new(BINARY)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("DATABASE_URL"), "{err}");
}

#[test]
fn a_job_deadline_below_its_floor_stops_the_binary_naming_it() {
    let out = std::process::Command::new(BINARY)
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .env("PRINT_JOB_DEADLINE_MS", "5")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PRINT_JOB_DEADLINE_MS"), "{err}");
}
