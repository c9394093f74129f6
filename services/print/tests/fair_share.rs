//! The gate's fair share: one user flooding print-service holds at most
//! `BACKEND_PERMITS_PER_USER` permits, so another user's jobs still get through
//! while the flood gets immediate 429s.

mod helpers;

use helpers::{assert_problem, spawn_management, TestApp};
use pixpress_testkit::metrics;
use serde_json::json;

#[tokio::test]
async fn a_flooding_user_gets_429s_while_another_users_jobs_are_created() {
    // Slow lookups keep the flood's permits held while the other user knocks.
    let management = spawn_management(|c| c.management_latency_ms = 500);
    let app = TestApp::spawn_with(management, |c| {
        c.backend_permits = 8;
        c.backend_permits_per_user = Some(2);
    })
    .await;
    let flooder_file = app.ready_image(1).await;
    let other_file = app.ready_image(2).await;

    let flood = (0..20).map(|_| app.post_job(json!({"user_id": 1, "file_id": flooder_file})));
    let other = async {
        // Knock once the flood holds its share (two lookups in flight).
        app.wait_for_lookups_in_flight(2.0).await;
        let posts = (0..2).map(|_| app.post_job(json!({"user_id": 2, "file_id": other_file})));
        futures_util::future::join_all(posts).await
    };
    let (flood, other) = tokio::join!(futures_util::future::join_all(flood), other);

    for res in other {
        assert_eq!(res.status(), 201, "the other user's job is created");
    }
    let mut created = 0;
    let mut refused = Vec::new();
    for res in flood {
        match res.status().as_u16() {
            201 => created += 1,
            429 => refused.push(res),
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(created >= 2, "the flood's share got through ({created})");
    assert!(
        !refused.is_empty(),
        "twenty at once must overflow a share of two"
    );
    let first = refused.remove(0);
    assert_eq!(first.headers()["retry-after"], "1");
    let problem = assert_problem(first, 429).await;
    assert_eq!(
        problem["type"],
        "https://pixpress.dev/problems/user-share-exceeded"
    );

    let text = app.metrics().await;
    let share_refusals =
        metrics::value(&text, "pixpress_print_fair_share_rejections_total", &[]).unwrap();
    assert_eq!(share_refusals, (refused.len() + 1) as f64);
    assert_eq!(
        metrics::value(&text, "pixpress_print_backend_permits_available", &[]),
        Some(8.0),
        "every permit is back"
    );
}
