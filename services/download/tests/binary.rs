//! The download-service binary as operators run it: configured from the environment, serving the
//! operational routes, exiting 0 on SIGTERM, refusing to start on settings that cannot work.

use pixpress_testkit::process::{assert_help_lists, assert_serves_and_stops_on_sigterm};
use pixpress_testkit::TestDatabase;

const BINARY: &str = env!("CARGO_BIN_EXE_download-service");

#[tokio::test]
async fn serves_operational_routes_and_stops_on_sigterm() {
    let db = TestDatabase::new().await;
    assert_serves_and_stops_on_sigterm(
        BINARY,
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("AUTH_JWT_SECRET", pixpress_testkit::auth::SECRET),
            ("MANAGEMENT_URL", "http://127.0.0.1:8082"),
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
            "S3_ENDPOINT",
            "DOWNLOAD_MAX_BYTES",
            "THUMBNAIL_SIZE",
            "AUTH_JWT_SECRET",
            "AUTH_DISABLED",
            "MANAGEMENT_URL",
            "MANAGEMENT_TOKEN",
        ],
    );
}

/// Runs the binary with `env` (and no authentication settings inherited); returns
/// its exit code and standard error.
fn start_failure(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = std::process::Command::new(BINARY)
        .env("DATABASE_URL", "postgres://pixpress@127.0.0.1:1/none")
        .env_remove("AUTH_JWT_SECRET")
        .env_remove("AUTH_JWT_PUBLIC_KEY")
        .env_remove("AUTH_DISABLED")
        .env_remove("MANAGEMENT_URL")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn without_authentication_configured_it_refuses_to_start() {
    let (code, err) = start_failure(&[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("AUTH_JWT_SECRET"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn a_management_url_that_cannot_be_a_base_stops_it_with_one_line_naming_it() {
    let (code, err) = start_failure(&[
        ("AUTH_JWT_SECRET", pixpress_testkit::auth::SECRET),
        ("MANAGEMENT_URL", "http://user:pw@127.0.0.1:8082"),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("MANAGEMENT_URL"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
