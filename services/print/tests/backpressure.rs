//! The backpressure gate: when the management API is slow, requests beyond
//! `BACKEND_PERMITS` get an immediate 429 instead of piling up.

mod helpers;

use std::time::{Duration, Instant};

use helpers::{assert_problem, spawn_management, TestApp};
use pixpress_testkit::metrics;
use serde_json::json;

#[tokio::test]
async fn a_saturated_gate_answers_429_with_retry_after_without_waiting() {
    let management = spawn_management(|c| c.management_latency_ms = 1000);
    let app = TestApp::spawn_with(management, |c| c.backend_permits = 1).await;
    let file_id = app.ready_image(1).await;

    let slow = app.post_job(json!({"user_id": 1, "file_id": file_id}));
    let rejected = async {
        // Wait until the first request holds the only permit (its lookup is at the
        // management API), then knock.
        app.wait_for_lookups_in_flight(1.0).await;
        let started = Instant::now();
        let res = app
            .post_job(json!({"user_id": 1, "file_id": file_id}))
            .await;
        (res, started.elapsed())
    };
    let (accepted, (res, waited)) = tokio::join!(slow, rejected);
    assert_eq!(accepted.status(), 201);
    assert_eq!(res.headers()["retry-after"], "1");
    // The point of the gate: the 429 never waits on the 1 s backend.
    assert!(waited < Duration::from_millis(500), "429 took {waited:?}");
    assert_problem(res, 429).await;

    let text = app.metrics().await;
    assert_eq!(
        metrics::value(&text, "pixpress_print_backpressure_rejections_total", &[]),
        Some(1.0)
    );
}

#[tokio::test]
async fn fifty_simultaneous_posts_through_four_permits_give_only_201s_and_429s() {
    let management = spawn_management(|c| c.management_latency_ms = 300);
    // One user sends all fifty: their share is the whole gate here (fair_share.rs
    // tests the share).
    let app = TestApp::spawn_with(management, |c| {
        c.backend_permits = 4;
        c.backend_permits_per_user = Some(4);
    })
    .await;
    let file_id = app.ready_image(1).await;

    let posts = (0..50).map(|_| app.post_job(json!({"user_id": 1, "file_id": file_id})));
    let responses = futures_util::future::join_all(posts).await;
    let mut created = 0;
    let mut rejected = 0;
    for res in responses {
        match res.status().as_u16() {
            201 => created += 1,
            429 => rejected += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(created + rejected, 50);
    assert!(
        created >= 4,
        "at least the first four get through, got {created}"
    );
    assert!(rejected > 0, "fifty at once must overflow four permits");

    // Every accepted job is stored; the management API never saw more than 4 at once.
    assert_eq!(app.job_rows().await, created);
    let management_metrics = app.management_metrics().await;
    let max = metrics::value(
        &management_metrics,
        "pixpress_management_lookups_in_flight_max",
        &[],
    )
    .unwrap();
    assert!(max <= 4.0, "{max} lookups were in flight at once");

    let text = app.metrics().await;
    assert_eq!(
        metrics::value(&text, "pixpress_print_backend_permits_available", &[]),
        Some(4.0)
    );
    assert_eq!(
        metrics::value(&text, "pixpress_print_backend_permits_capacity", &[]),
        Some(4.0)
    );
    assert_eq!(
        metrics::value(&text, "pixpress_print_backpressure_rejections_total", &[]),
        Some(rejected as f64)
    );
}
