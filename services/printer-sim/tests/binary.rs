//! The printer-sim binary as operators run it: configured from the environment, serving the
//! operational routes, exiting 0 on SIGTERM.

use pixpress_testkit::process::{assert_help_lists, assert_serves_and_stops_on_sigterm};

const BINARY: &str = env!("CARGO_BIN_EXE_printer-sim");

#[tokio::test]
async fn serves_operational_routes_and_stops_on_sigterm() {
    assert_serves_and_stops_on_sigterm(BINARY, &[]).await;
}

#[test]
fn help_lists_its_environment_variables() {
    assert_help_lists(
        BINARY,
        &[
            "HTTP_ADDR",
            "PRINTER_CALLBACK_SECRET",
            "PRINTER_DELAY_MS",
            "PRINTER_CAPACITY",
            "PRINTER_STATE_DIR",
            "PRINTER_MAX_IMAGE_BYTES",
            "PRINTER_FETCH_TIMEOUT_MS",
        ],
    );
}
