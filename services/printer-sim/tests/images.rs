//! printer-sim fetches each job's image as a real printer does, before it reports
//! `printing`: through redirects, retrying a host that fails for a moment, and
//! failing the job with a stable reason (`image_unreachable`, `image_undecodable`)
//! when the image cannot be had — with no `printing` callback, and the final
//! `failed` callback carrying the reason. The image hosts are real HTTP servers.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pixpress_domain::printer::PrinterJobState;
use pixpress_testkit::fixture::{Fixture, Reply};
use pixpress_testkit::http::{client, free_port};
use pixpress_testkit::metrics::{scrape, value};
use pixpress_testkit::printer::{image_host, photo};
use serde_json::json;
use uuid::Uuid;

use support::{
    callbacks, gets, job, job_status, receiver, reported, sha256, spawn, statuses, submit,
};

/// Sends one job for the image at `image_url` to `printer` and waits until its
/// final callback is taken; the job's id.
async fn print_one(printer: &str, image_url: &str, receiver: &Fixture) -> Uuid {
    let id = Uuid::new_v4();
    let (status, _) = submit(printer, &job(id, image_url, 1, receiver)).await;
    assert_eq!(status, 202);
    reported(printer, id).await;
    id
}

/// `pixpress_printer_image_fetches_total{outcome}` on `printer`.
async fn fetches(printer: &str, outcome: &str) -> f64 {
    let text = scrape(&client(), printer).await;
    value(
        &text,
        "pixpress_printer_image_fetches_total",
        &[("outcome", outcome)],
    )
    .unwrap_or(0.0)
}

/// The job failed with `reason`, said by `GET /jobs/{id}` and by its one callback.
async fn assert_failed_with(printer: &str, receiver: &Fixture, id: Uuid, reason: &str) {
    let status = job_status(printer, id).await;
    assert_eq!(status.status, PrinterJobState::Failed, "{status:?}");
    assert_eq!(status.error.as_deref(), Some(reason));
    assert_eq!((status.image_bytes, status.image_sha256), (None, None));
    assert_eq!(
        callbacks(receiver, id),
        [json!({"status": "failed", "detail": reason})],
        "no `printing` callback, one `failed` with the reason"
    );
}

#[tokio::test]
async fn a_fetched_image_is_printed_and_its_size_and_digest_shown() {
    let receiver = receiver();
    let image = photo();
    let images = image_host(image.clone());
    let printer = spawn(|_| {});
    let id = print_one(&printer, &format!("{}/photo.jpg", images.url), &receiver).await;

    let status = job_status(&printer, id).await;
    assert_eq!(status.status, PrinterJobState::Completed);
    assert_eq!(status.image_bytes, Some(image.len() as u64));
    assert_eq!(status.image_sha256, Some(sha256(&image)));
    let listed = reported(&printer, id).await;
    assert_eq!(
        (listed.image_bytes, listed.image_sha256),
        (status.image_bytes, status.image_sha256)
    );
    let requests = images.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("GET", "/photo.jpg")
    );
    assert_eq!(statuses(&receiver, id), ["printing", "completed"]);
    assert_eq!(fetches(&printer, "ok").await, 1.0);
}

#[tokio::test]
async fn an_image_behind_a_redirect_is_fetched_where_it_points() {
    let receiver = receiver();
    let image = photo();
    let storage = image_host(image.clone());
    // As download-service's /images/{id}/original answers: 302 to a presigned link.
    let target = format!("{}/bucket/photo.jpg?X-Amz-Signature=abc", storage.url);
    let link = Fixture::start(move |_| Reply::redirect(302, &target));
    let printer = spawn(|_| {});
    let id = print_one(
        &printer,
        &format!("{}/images/7/original?exp=1", link.url),
        &receiver,
    )
    .await;

    let status = job_status(&printer, id).await;
    assert_eq!(status.status, PrinterJobState::Completed);
    assert_eq!(status.image_sha256, Some(sha256(&image)));
    let fetched = storage.requests();
    assert_eq!(fetched.len(), 1);
    assert_eq!(
        (fetched[0].path.as_str(), fetched[0].query.as_str()),
        ("/bucket/photo.jpg", "X-Amz-Signature=abc")
    );
}

#[tokio::test]
async fn an_image_that_is_not_found_fails_the_job_image_unreachable_at_once() {
    let receiver = receiver();
    let missing = Fixture::start(|_| Reply::bytes(404, "text/plain", b"no such key".to_vec()));
    let printer = spawn(|_| {});
    let id = print_one(&printer, &format!("{}/photo.jpg", missing.url), &receiver).await;

    assert_failed_with(&printer, &receiver, id, "image_unreachable").await;
    assert_eq!(gets(&missing), 1, "a 404 is not retried");
    let text = scrape(&client(), &printer).await;
    assert_eq!(
        value(
            &text,
            "pixpress_printer_jobs_printed_total",
            &[("outcome", "failed")]
        ),
        Some(1.0)
    );
    assert_eq!(fetches(&printer, "unreachable").await, 1.0);
}

#[tokio::test]
async fn a_host_that_fails_twice_then_serves_is_retried_and_the_job_completes() {
    let receiver = receiver();
    let image = photo();
    let answered = Arc::new(AtomicUsize::new(0));
    let host = {
        let answered = Arc::clone(&answered);
        let image = image.clone();
        Fixture::start(move |_| {
            if answered.fetch_add(1, Ordering::SeqCst) < 2 {
                Reply::bytes(503, "text/plain", Vec::new())
            } else {
                Reply::bytes(200, "image/jpeg", image.clone())
            }
        })
    };
    let printer = spawn(|_| {});
    let id = print_one(&printer, &format!("{}/photo.jpg", host.url), &receiver).await;

    let status = job_status(&printer, id).await;
    assert_eq!(status.status, PrinterJobState::Completed, "{status:?}");
    assert_eq!(status.image_sha256, Some(sha256(&image)));
    assert_eq!(gets(&host), 3);
    assert_eq!(statuses(&receiver, id), ["printing", "completed"]);
}

#[tokio::test]
async fn a_host_that_stays_silent_is_tried_three_times_then_the_job_fails() {
    let receiver = receiver();
    let silent = Fixture::start(|_| {
        Reply::bytes(200, "image/jpeg", photo()).delayed(Duration::from_secs(10))
    });
    let printer = spawn(|c| c.printer_fetch_timeout_ms = 200);
    let id = print_one(&printer, &format!("{}/photo.jpg", silent.url), &receiver).await;

    assert_failed_with(&printer, &receiver, id, "image_unreachable").await;
    assert_eq!(gets(&silent), 3);
}

#[tokio::test]
async fn a_host_nothing_listens_on_fails_the_job_image_unreachable() {
    let receiver = receiver();
    let printer = spawn(|_| {});
    let nowhere = format!("http://127.0.0.1:{}/photo.jpg", free_port());
    let id = print_one(&printer, &nowhere, &receiver).await;

    assert_failed_with(&printer, &receiver, id, "image_unreachable").await;
}

#[tokio::test]
async fn bytes_that_are_not_an_image_fail_the_job_image_undecodable() {
    let receiver = receiver();
    let page =
        Fixture::start(|_| Reply::bytes(200, "image/jpeg", b"<html>an error page</html>".to_vec()));
    let printer = spawn(|_| {});
    let id = print_one(&printer, &format!("{}/photo.jpg", page.url), &receiver).await;

    assert_failed_with(&printer, &receiver, id, "image_undecodable").await;
    assert_eq!(gets(&page), 1, "not an image is not retried");
    assert_eq!(fetches(&printer, "undecodable").await, 1.0);
}

#[tokio::test]
async fn an_image_over_the_size_cap_fails_the_job_without_being_read_through() {
    const CAP: u64 = 64 * 1024;
    let chunk = vec![0xFF; 16 * 1024];
    // 16 MiB, a chunk every 10 ms: read to the end, it would take almost 10 s.
    let cases = [
        (
            "announced with Content-Length",
            Reply::chunked("image/jpeg", chunk.clone(), 1024, Duration::from_millis(10))
                .with_content_length(),
        ),
        (
            "streamed without a length",
            Reply::chunked("image/jpeg", chunk, 1024, Duration::from_millis(10)),
        ),
    ];
    for (case, reply) in cases {
        let receiver = receiver();
        let host = Fixture::start(move |_| reply.clone());
        let printer = spawn(|c| c.printer_max_image_bytes = CAP);
        let started = std::time::Instant::now();
        let id = print_one(&printer, &format!("{}/big.jpg", host.url), &receiver).await;

        assert_failed_with(&printer, &receiver, id, "image_unreachable").await;
        assert_eq!(gets(&host), 1, "{case}: too large is not retried");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{case}: the body was read through ({:?})",
            started.elapsed()
        );
    }
}
