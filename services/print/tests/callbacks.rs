//! POST /print/callbacks/{correlation_id}: Standard Webhooks signatures, the state
//! machine, repeats, and everything that must be refused.

mod helpers;

use helpers::{assert_problem, spawn_management, TestApp, SECRET};
use pixpress_kit::webhook::{unix_now, WebhookSecret};
use pixpress_testkit::metrics;
use serde_json::{json, Value};
use uuid::Uuid;

/// An intake-only print-service, so jobs stay where callbacks put them.
async fn app_with_a_job() -> (TestApp, String, Uuid) {
    let management = spawn_management(|c| c.printer_url = "http://127.0.0.1:1".into());
    let app = TestApp::spawn_with(management, |c| c.dispatch_enabled = false).await;
    let file_id = app.ready_image(1).await;
    let id = app.create_job(1, file_id).await;
    let correlation: Uuid = app.job_column(&id, "correlation_id").await;
    (app, id, correlation)
}

/// Sends `body` signed with `secret` at `timestamp`.
async fn callback(
    app: &TestApp,
    correlation: &str,
    body: &Value,
    secret: &str,
    timestamp: i64,
) -> reqwest::Response {
    let body = body.to_string();
    let secret = WebhookSecret::parse(secret).unwrap();
    let id = format!("msg_{}", Uuid::new_v4().simple());
    app.http
        .post(format!("{}/print/callbacks/{correlation}", app.url))
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            secret.sign(&id, timestamp, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn signed(app: &TestApp, correlation: Uuid, body: Value) -> reqwest::Response {
    callback(app, &correlation.to_string(), &body, SECRET, unix_now()).await
}

async fn job(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/print/jobs/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn printing_then_completed_moves_the_job_and_repeats_change_nothing() {
    let (app, id, correlation) = app_with_a_job().await;
    let res = signed(&app, correlation, json!({"status": "printing"})).await;
    assert_eq!(res.status(), 204);
    let printing = job(&app, &id).await;
    assert_eq!(printing["state"], "printing");

    // A printer retrying the same report: accepted, nothing changes.
    let res = signed(&app, correlation, json!({"status": "printing"})).await;
    assert_eq!(res.status(), 204);
    assert_eq!(job(&app, &id).await["updated_at"], printing["updated_at"]);

    assert_eq!(
        signed(&app, correlation, json!({"status": "completed"}))
            .await
            .status(),
        204
    );
    assert_eq!(job(&app, &id).await["state"], "completed");
    // Too late to go back.
    assert_problem(
        signed(&app, correlation, json!({"status": "printing"})).await,
        409,
    )
    .await;
    assert_problem(
        signed(&app, correlation, json!({"status": "failed"})).await,
        409,
    )
    .await;
    assert_eq!(job(&app, &id).await["state"], "completed");
}

#[tokio::test]
async fn completed_without_printing_is_an_illegal_transition() {
    let (app, id, correlation) = app_with_a_job().await;
    assert_problem(
        signed(&app, correlation, json!({"status": "completed"})).await,
        409,
    )
    .await;
    assert_eq!(job(&app, &id).await["state"], "queued");
}

#[tokio::test]
async fn a_failure_report_fails_the_job_with_the_printers_detail() {
    let (app, id, correlation) = app_with_a_job().await;
    signed(&app, correlation, json!({"status": "printing"})).await;
    let res = signed(
        &app,
        correlation,
        json!({"status": "failed", "detail": "out of toner"}),
    )
    .await;
    assert_eq!(res.status(), 204);
    let failed = job(&app, &id).await;
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["error"], "out of toner");
}

#[tokio::test]
async fn forged_unsigned_and_stale_callbacks_are_401_and_change_nothing() {
    let (app, id, correlation) = app_with_a_job().await;
    let body = json!({"status": "printing"});
    let c = correlation.to_string();
    let (other_secret, other) = WebhookSecret::generate();
    let _ = other_secret;
    assert_problem(callback(&app, &c, &body, &other, unix_now()).await, 401).await;
    let six_minutes_ago = unix_now() - 6 * 60;
    assert_problem(
        callback(&app, &c, &body, SECRET, six_minutes_ago).await,
        401,
    )
    .await;
    let in_six_minutes = unix_now() + 6 * 60;
    assert_problem(callback(&app, &c, &body, SECRET, in_six_minutes).await, 401).await;

    let unsigned = app
        .http
        .post(format!("{}/print/callbacks/{c}", app.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_problem(unsigned, 401).await;

    // A valid signature over another body does not cover this one.
    let secret = WebhookSecret::parse(SECRET).unwrap();
    let ts = unix_now();
    let signature = secret.sign("msg_1", ts, br#"{"status":"printing"}"#);
    let tampered = app
        .http
        .post(format!("{}/print/callbacks/{c}", app.url))
        .header("webhook-id", "msg_1")
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(r#"{"status":"completed"}"#)
        .send()
        .await
        .unwrap();
    assert_problem(tampered, 401).await;
    assert_eq!(job(&app, &id).await["state"], "queued");

    let text = app.metrics().await;
    assert_eq!(
        metrics::value(
            &text,
            "pixpress_print_callbacks_total",
            &[("outcome", "unauthorized")]
        ),
        Some(5.0),
        "{text}"
    );
}

#[tokio::test]
async fn unknown_ids_are_404_and_bad_bodies_400() {
    let (app, _id, correlation) = app_with_a_job().await;
    assert_problem(
        signed(&app, Uuid::new_v4(), json!({"status": "printing"})).await,
        404,
    )
    .await;
    let res = callback(
        &app,
        "not-a-uuid",
        &json!({"status": "printing"}),
        SECRET,
        unix_now(),
    )
    .await;
    assert_problem(res, 404).await;
    assert_problem(
        signed(&app, correlation, json!({"status": "lost"})).await,
        400,
    )
    .await;
    assert_problem(signed(&app, correlation, json!({})).await, 400).await;
}

/// Reports that arrive together are applied as one batch; each is judged in its
/// order, as if it had come alone.
#[tokio::test]
async fn reports_in_one_batch_are_judged_in_their_order() {
    use pixpress_domain::job::Evidence;
    use pixpress_domain::JobState::{self, *};
    use pixpress_kit::db::PgClient;
    use pixpress_print::print_jobs::{apply_reports, PrinterReport, ReportOutcome};

    let (app, first, first_correlation) = app_with_a_job().await;
    let second = app.create_job(1, app.ready_image(1).await).await;
    let second_correlation: Uuid = app.job_column(&second, "correlation_id").await;
    let report = |correlation_id, state: JobState| PrinterReport {
        correlation_id,
        state,
        detail: None,
        evidence: Evidence::Callback,
    };
    let conn = PgClient::new(app.db.client().await);
    let outcomes = apply_reports(
        &conn,
        &[
            report(first_correlation, Printing),
            report(first_correlation, Completed),
            report(second_correlation, Completed),
            report(Uuid::now_v7(), Printing),
            report(first_correlation, Completed),
        ],
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(
        outcomes,
        [
            ReportOutcome::Applied(vec![(Queued, Dispatched), (Dispatched, Printing)]),
            ReportOutcome::Applied(vec![(Printing, Completed)]),
            // A callback cannot skip printing, whatever else the batch holds.
            ReportOutcome::Illegal(Queued),
            ReportOutcome::NotFound,
            ReportOutcome::Unchanged,
        ]
    );
    let first = job(&app, &first).await;
    assert_eq!(first["state"], "completed");
    assert_eq!(first["attempts"], 1, "{first}");
    assert_eq!(job(&app, &second).await["state"], "queued");
}

/// Many printers reporting at once: every report lands, whatever batches they
/// shared.
#[tokio::test]
async fn reports_on_many_jobs_at_once_all_land() {
    let (app, _, _) = app_with_a_job().await;
    let file_id = app.ready_image(1).await;
    let mut jobs = Vec::new();
    for _ in 0..40 {
        let id = app.create_job(1, file_id).await;
        let correlation: Uuid = app.job_column(&id, "correlation_id").await;
        jobs.push((id, correlation));
    }
    let reports = jobs.iter().map(|(_, correlation)| {
        let app = &app;
        async move {
            let printing = signed(app, *correlation, json!({"status": "printing"})).await;
            let completed = signed(app, *correlation, json!({"status": "completed"})).await;
            (printing.status().as_u16(), completed.status().as_u16())
        }
    });
    for statuses in futures_util::future::join_all(reports).await {
        assert_eq!(statuses, (204, 204));
    }
    for (id, _) in &jobs {
        assert_eq!(job(&app, id).await["state"], "completed");
    }
    let text = app.metrics().await;
    assert_eq!(
        metrics::value(
            &text,
            "pixpress_print_job_transitions_total",
            &[("from", "printing"), ("to", "completed")]
        ),
        Some(40.0),
        "{text}"
    );
}
