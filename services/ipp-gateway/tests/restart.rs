//! The gateway's state surviving it (IPP_STATE_DIR): killed mid-job and started
//! again it resumes following the job at the printer by its printer job id, and a
//! job it may have sent just before dying is looked for at the printer (Get-Jobs)
//! before it is sent: nothing is printed twice.

mod helpers;

use std::time::Duration;

use helpers::*;
use pixpress_domain::printer::PrinterJobState;
use pixpress_testkit::ipp::{Ippeveprinter, PrinterOptions};
use pixpress_testkit::process::RunningBinary;
use serde_json::json;
use uuid::Uuid;

const BINARY: &str = env!("CARGO_BIN_EXE_ipp-gateway");

#[tokio::test]
async fn a_gateway_killed_mid_job_resumes_it_and_sends_it_to_the_printer_once() {
    let printer = Ippeveprinter::start(PrinterOptions {
        print_delay: Duration::from_secs(3),
        ..PrinterOptions::default()
    })
    .await;
    let image = jpeg();
    let host = image_host(image.clone(), "image/jpeg");
    let receiver = callback_receiver();
    let state = tempfile::tempdir().unwrap();
    let printers = format!("office={}", printer.uri);
    let state_dir = state.path().to_str().unwrap();
    let mut gateway = RunningBinary::start(
        BINARY,
        &[
            ("IPP_PRINTERS", &printers),
            ("IPP_STATE_DIR", state_dir),
            ("IPP_POLL_MS", "100"),
            ("PRINTER_CALLBACK_SECRET", SECRET),
        ],
    )
    .await;
    until_ready(&gateway.url).await;
    let id = Uuid::new_v4();

    let (status, _) = submit(&gateway.url, "office", &job(id, &host.url, 2, &receiver)).await;
    assert_eq!(status, 202);
    until_callback(&receiver, id, "printing").await;
    gateway.kill();
    gateway.start_again().await;

    let done = until_state(&gateway.url, "office", id, PrinterJobState::Completed).await;
    assert_eq!(done.image_sha256.as_deref(), Some(sha256(&image).as_str()));
    let jobs = printer.jobs().await;
    assert_eq!(jobs.len(), 1, "sent to the printer once: {jobs:?}");
    assert_eq!(jobs[0].copies, Some(2));
    assert_eq!(printer.spooled().len(), 1);
    until_callback(&receiver, id, "completed").await;
    let completed = callbacks_of(&receiver, id)
        .into_iter()
        .filter(|(s, _)| s == "completed")
        .count();
    assert_eq!(completed, 1);
    // Still known after a restart: a repeat is a duplicate.
    let (_, answer) = submit(&gateway.url, "office", &job(id, &host.url, 2, &receiver)).await;
    assert_eq!(answer["duplicate"], true);
}

#[tokio::test]
async fn a_job_on_the_printer_but_not_in_the_journal_is_found_there_not_sent_again() {
    let printer = Ippeveprinter::start_default().await;
    let image = jpeg();
    let host = image_host(image.clone(), "image/jpeg");
    let receiver = callback_receiver();
    let id = Uuid::new_v4();
    // The gateway died after its Print-Job reached the printer and before it
    // journaled the printer's answer: the journal knows the job as accepted only.
    let state = tempfile::tempdir().unwrap();
    let accepted = json!({
        "event": "accepted",
        "printer": "office",
        "job": job(id, &host.url, 1, &receiver),
    });
    std::fs::write(
        state.path().join(pixpress_ipp_gateway::store::JOURNAL_FILE),
        format!("{accepted}\n"),
    )
    .unwrap();
    let file = state.path().join("photo.jpg");
    std::fs::write(&file, &image).unwrap();
    let printer_job = printer.print(&file, "image/jpeg", &id.to_string()).await;

    let gateway = spawn_gateway(&[("office", &printer.uri)], |c| {
        c.ipp_state_dir = Some(state.path().to_owned());
    });
    let done = until_state(&gateway, "office", id, PrinterJobState::Completed).await;
    assert_eq!(done.printed, 1);
    let jobs = printer.jobs().await;
    assert_eq!(jobs.len(), 1, "not sent again: {jobs:?}");
    assert_eq!(jobs[0].id, printer_job);
    until_callback(&receiver, id, "completed").await;
}
