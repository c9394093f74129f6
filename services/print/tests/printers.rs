//! Several printers: a job prints on the printer its user chose (or the default),
//! a printer that does not exist or is disabled refuses new jobs, and the queued
//! jobs of a printer an operator moved go to its new URL.

mod helpers;

use std::time::Duration;

use helpers::{assert_problem, spawn_management, spawn_printer, TestApp};
use pixpress_testkit::auth;
use pixpress_testkit::printer::printed;
use serde_json::{json, Value};

/// An admin's `PUT /printers/{id}` at management-api.
async fn put_printer(app: &TestApp, id: i64, body: Value) {
    let res = auth::client_as(&auth::admin())
        .put(format!("{}/printers/{id}", app.management_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_success(),
        "PUT /printers/{id}: {}",
        res.status()
    );
}

#[tokio::test]
async fn a_job_prints_on_the_printer_chosen_or_the_default() {
    let (first, second) = (spawn_printer(|_| {}), spawn_printer(|_| {}));
    let urls = (first.clone(), second.clone());
    let management = spawn_management(move |c| {
        c.printer_url = urls.0;
        c.extra_printer_urls = vec![urls.1];
    });
    let app = TestApp::spawn_with(management, |_| {}).await;
    let file_id = app.ready_image(1).await;

    let chosen = app
        .post_job(json!({"user_id": 1, "file_id": file_id, "printer_id": 2}))
        .await;
    assert_eq!(chosen.status(), 201);
    let chosen: Value = chosen.json().await.unwrap();
    assert_eq!(chosen["printer_id"], 2);
    let default = app.create_job(1, file_id).await;
    app.job_reaches(chosen["id"].as_str().unwrap(), "completed")
        .await;
    let default = app.job_reaches(&default, "completed").await;
    assert_eq!(default["printer_id"], 1);
    assert_eq!(
        printed(&first).await.len(),
        1,
        "the default printer printed one"
    );
    assert_eq!(
        printed(&second).await.len(),
        1,
        "the chosen printer printed one"
    );

    let unknown = app
        .post_job(json!({"user_id": 1, "file_id": file_id, "printer_id": 9}))
        .await;
    let problem = assert_problem(unknown, 404).await;
    assert_eq!(
        problem["type"],
        "https://pixpress.dev/problems/printer-not-found"
    );

    put_printer(&app, 2, json!({"url": second, "enabled": false})).await;
    let disabled = app
        .post_job(json!({"user_id": 1, "file_id": file_id, "printer_id": 2}))
        .await;
    let problem = assert_problem(disabled, 409).await;
    assert_eq!(
        problem["type"],
        "https://pixpress.dev/problems/printer-disabled"
    );

    let invalid = app
        .post_job(json!({"user_id": 1, "file_id": file_id, "printer_id": 0}))
        .await;
    let problem = assert_problem(invalid, 400).await;
    assert_eq!(problem["errors"][0]["field"], "printer_id", "{problem}");
    assert_eq!(app.job_rows().await, 2, "no refused job was stored");
}

#[tokio::test]
async fn queued_jobs_of_a_moved_printer_go_to_its_new_url() {
    // Printer 1 is registered where nothing listens: its job waits, retrying.
    let (listener, nowhere) = helpers::bind();
    drop(listener);
    let management = spawn_management(move |c| c.printer_url = nowhere);
    let app = TestApp::spawn_with(management, |c| c.printer_refresh_ms = 100).await;
    let file_id = app.ready_image(1).await;
    let id = app.create_job(1, file_id).await;
    pixpress_testkit::http::eventually(
        "a failed attempt at the old URL",
        Duration::from_secs(30),
        || async { (app.job(&id).await["attempts"].as_i64() >= Some(1)).then_some(()) },
    )
    .await;
    assert_eq!(app.job(&id).await["state"], "queued");

    let moved_to = spawn_printer(|_| {});
    put_printer(&app, 1, json!({"url": moved_to})).await;
    let job = app.job_reaches(&id, "completed").await;
    assert_eq!(job["printer_id"], 1);
    let jobs = printed(&moved_to).await;
    assert_eq!((jobs.len(), jobs[0].printed), (1, 1));
    let url: String = app.job_column(&id, "printer_url").await;
    assert_eq!(url, moved_to);
}
