//! The management-api binary as operators run it: configured from the environment, serving the
//! operational routes, exiting 0 on SIGTERM.

use pixpress_testkit::process::{assert_help_lists, assert_serves_and_stops_on_sigterm};

const BINARY: &str = env!("CARGO_BIN_EXE_management-api");

#[tokio::test]
async fn serves_operational_routes_and_stops_on_sigterm() {
    assert_serves_and_stops_on_sigterm(
        BINARY,
        &[("AUTH_JWT_SECRET", pixpress_testkit::auth::SECRET)],
    )
    .await;
}

#[test]
fn help_lists_its_environment_variables() {
    assert_help_lists(
        BINARY,
        &[
            "HTTP_ADDR",
            "DOWNLOAD_URL",
            "MANAGEMENT_PUBLIC_URL",
            "DOWNLOAD_CALLBACK_SECRET",
            "DOWNLOAD_TOKEN",
            "MANAGEMENT_DOWNLOAD_RETRY_SECS",
            "MANAGEMENT_RECONCILE_SECS",
            "PRINTER_URL",
            "MANAGEMENT_LATENCY_MS",
        ],
    );
}

#[test]
fn without_authentication_configured_it_refuses_to_start() {
    let out = std::process::Command::new(BINARY)
        .env_remove("AUTH_JWT_SECRET")
        .env_remove("AUTH_JWT_PUBLIC_KEY")
        .env_remove("AUTH_DISABLED")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AUTH_JWT_SECRET"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
