//! The ipp-gateway binary as operators run it: configured from the environment,
//! refusing a bad printer list at start, serving the operational routes, exiting 0
//! on SIGTERM.

use std::process::Command;

use pixpress_testkit::process::{assert_help_lists, assert_serves_and_stops_on_sigterm};

const BINARY: &str = env!("CARGO_BIN_EXE_ipp-gateway");

#[tokio::test]
async fn serves_operational_routes_and_stops_on_sigterm() {
    assert_serves_and_stops_on_sigterm(
        BINARY,
        &[("IPP_PRINTERS", "office=ipp://127.0.0.1:9/ipp/print")],
    )
    .await;
}

#[test]
fn help_lists_its_environment_variables() {
    assert_help_lists(
        BINARY,
        &[
            "HTTP_ADDR",
            "IPP_PRINTERS",
            "IPP_POLL_MS",
            "PRINTER_CALLBACK_SECRET",
            "IPP_STATE_DIR",
            "IPP_MAX_IMAGE_BYTES",
            "IPP_FETCH_TIMEOUT_MS",
            "IPP_TIMEOUT_MS",
        ],
    );
}

#[test]
fn a_bad_printer_list_stops_it_at_start_naming_the_problem() {
    for (printers, says) in [
        ("Office=ipp://a/ipp/print", "must be 1 to 64"),
        ("a=ipp://x/p,a=ipp://y/p", "given twice"),
        ("a=http://x/ipp/print", "is not ipp or ipps"),
    ] {
        let out = Command::new(BINARY)
            .env("IPP_PRINTERS", printers)
            .env("HTTP_ADDR", "127.0.0.1:0")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{printers}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("IPP_PRINTERS") || stderr.contains("ipp-printers"),
            "{stderr}"
        );
        assert!(stderr.contains(says), "{printers}: {stderr}");
    }
}
