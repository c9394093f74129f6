//! What the end-to-end tests share: the stack on random ports with a fresh
//! database, and waiting for an image or a job to get where it is going.

#![allow(dead_code)]

use std::time::Duration;

use pixpress_stack::{Stack, StackOptions};
use pixpress_testkit::http::eventually;
use pixpress_testkit::TestDatabase;
use serde_json::Value;

pub const PATIENCE: Duration = Duration::from_secs(90);

/// The whole system on random loopback ports, on a database of its own.
pub async fn stack() -> (Stack, TestDatabase) {
    let db = TestDatabase::empty().await;
    let mut options = StackOptions::ephemeral();
    options.database_url = Some(db.url.clone());
    (Stack::start(options).await.expect("the stack starts"), db)
}

/// Waits until `user`'s image `id` is no longer `pending`; returns it.
pub async fn settled_image(http: &reqwest::Client, stack: &Stack, user: i64, id: &Value) -> Value {
    let url = format!("{}/users/{user}/images/{id}", stack.management_url);
    eventually("the image to settle", PATIENCE, || async {
        let image: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
        (image["status"] != "pending").then_some(image)
    })
    .await
}

/// Waits until print job `id` is in `state`.
pub async fn job_reaches(http: &reqwest::Client, stack: &Stack, id: &str, state: &str) {
    let url = format!("{}/print/jobs/{id}", stack.print_url);
    eventually(&format!("job {id} to be {state}"), PATIENCE, || async {
        let job: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
        (job["state"] == state).then_some(())
    })
    .await
}
