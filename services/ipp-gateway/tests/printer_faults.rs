//! The printer misbehaving under a job: canceled at the printer, killed mid-job
//! and started again (it forgets every job), off when the job arrives. A job ends
//! `failed` only when the printer says so; otherwise it waits for the printer and
//! is printed once.

mod helpers;

use std::time::Duration;

use helpers::*;
use pixpress_domain::printer::PrinterJobState;
use pixpress_testkit::http::{client, eventually};
use pixpress_testkit::ipp::{Ippeveprinter, PrinterOptions};
use uuid::Uuid;

fn slow() -> PrinterOptions {
    PrinterOptions {
        print_delay: Duration::from_secs(3),
        ..PrinterOptions::default()
    }
}

#[tokio::test]
async fn a_job_canceled_at_the_printer_fails_with_the_printers_reason() {
    let printer = Ippeveprinter::start(slow()).await;
    let host = image_host(jpeg(), "image/jpeg");
    let receiver = callback_receiver();
    let gateway = spawn_gateway(&[("office", &printer.uri)], |_| {});
    let id = Uuid::new_v4();

    submit(&gateway, "office", &job(id, &host.url, 1, &receiver)).await;
    until_callback(&receiver, id, "printing").await;
    let on_printer = printer.jobs().await;
    assert_eq!(on_printer.len(), 1, "{on_printer:?}");
    printer.cancel(on_printer[0].id).await;

    let failed = until_state(&gateway, "office", id, PrinterJobState::Failed).await;
    assert_eq!(failed.error.as_deref(), Some("job-canceled-by-user"));
    assert_eq!(failed.printed, 0);
    until_callback(&receiver, id, "failed").await;
    assert_eq!(
        callbacks_of(&receiver, id),
        [
            ("printing".to_owned(), None),
            ("failed".to_owned(), Some("job-canceled-by-user".to_owned()))
        ]
    );
}

#[tokio::test]
async fn a_printer_killed_mid_job_and_started_again_prints_the_job_once() {
    let mut printer = Ippeveprinter::start(slow()).await;
    let image = jpeg();
    let host = image_host(image.clone(), "image/jpeg");
    let receiver = callback_receiver();
    let gateway = spawn_gateway(&[("office", &printer.uri)], |_| {});
    let id = Uuid::new_v4();

    submit(&gateway, "office", &job(id, &host.url, 1, &receiver)).await;
    until_callback(&receiver, id, "printing").await;
    printer.kill();
    printer.set_print_delay(Duration::ZERO);
    printer.start_again().await;

    let done = until_state(&gateway, "office", id, PrinterJobState::Completed).await;
    assert_eq!(done.printed, 1);
    // The restarted printer knows only the job sent again, and printed it.
    let jobs = printer.jobs().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(
        (jobs[0].name.as_str(), jobs[0].state.as_str()),
        (id.to_string().as_str(), "completed")
    );
    let spooled = printer.spooled();
    assert_eq!(spooled.len(), 1, "{spooled:?}");
    assert!(spooled[0].bytes == image);
    until_callback(&receiver, id, "completed").await;
    assert_eq!(
        callbacks_of(&receiver, id),
        [
            ("printing".to_owned(), None),
            ("completed".to_owned(), None)
        ]
    );
}

#[tokio::test]
async fn a_job_for_a_printer_that_is_off_waits_and_prints_when_it_comes_up() {
    let mut printer = Ippeveprinter::start_default().await;
    printer.kill();
    let host = image_host(jpeg(), "image/jpeg");
    let receiver = callback_receiver();
    let gateway = spawn_gateway(&[("office", &printer.uri)], |_| {});
    let id = Uuid::new_v4();

    let (status, _) = submit(&gateway, "office", &job(id, &host.url, 1, &receiver)).await;
    assert_eq!(status, 202);
    // The gateway tried the printer and found it away; the job waits, the gateway
    // stays ready.
    eventually("the printer to be seen away", PATIENCE, || async {
        let metrics = pixpress_testkit::metrics::scrape(&client(), &gateway).await;
        metrics
            .contains(r#"pixpress_ipp_gateway_printer_reachable{printer="office"} 0"#)
            .then_some(())
    })
    .await;
    let waiting = status_now(&gateway, id).await;
    assert_eq!(waiting.status, PrinterJobState::Accepted);
    let ready = client()
        .get(format!("{gateway}/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "a printer that is off leaves the gateway ready"
    );

    printer.start_again().await;
    until_state(&gateway, "office", id, PrinterJobState::Completed).await;
    assert_eq!(printer.jobs().await.len(), 1);
}

async fn status_now(gateway: &str, id: Uuid) -> pixpress_domain::printer::PrinterJobStatus {
    status(gateway, "office", id)
        .await
        .expect("the job's status")
}
