//! The printer's spool (`PRINTER_STATE_DIR`), tested on the real binary killed with
//! SIGKILL and started again: accepted jobs survive and are printed once, repeats
//! stay repeats, undelivered callbacks are sent, what it fetched is still known, a
//! torn last line is tolerated and a damaged journal keeps the printer out of
//! service instead of losing jobs.

mod support;

use std::path::{Path, PathBuf};

use pixpress_printer_sim::spool::{Entry, JOURNAL_FILE};
use pixpress_testkit::fixture::Fixture;
use pixpress_testkit::http::{client, eventually};
use pixpress_testkit::printer::{image_host, photo, printed};
use pixpress_testkit::process::RunningBinary;
use serde_json::{json, Value};
use uuid::Uuid;

use support::{job_status, receiver, sha256, statuses, submit, PATIENCE, SECRET};

const BINARY: &str = env!("CARGO_BIN_EXE_printer-sim");

/// A spool folder of its own, removed afterwards.
struct StateDir(tempfile::TempDir);

impl StateDir {
    fn new() -> Self {
        Self(tempfile::tempdir().expect("a temporary directory"))
    }

    fn path(&self) -> &str {
        self.0.path().to_str().expect("a UTF-8 temporary path")
    }

    fn journal(&self) -> PathBuf {
        self.0.path().join(JOURNAL_FILE)
    }
}

async fn printer(dir: &StateDir, delay_ms: &str) -> RunningBinary {
    let printer = RunningBinary::start(
        BINARY,
        &[
            ("PRINTER_STATE_DIR", dir.path()),
            ("PRINTER_DELAY_MS", delay_ms),
            ("PRINTER_CALLBACK_SECRET", SECRET),
        ],
    )
    .await;
    wait_ready(&printer.url).await;
    printer
}

async fn wait_ready(url: &str) {
    eventually("the printer to be ready", PATIENCE, || async {
        let res = client().get(format!("{url}/ready")).send().await.ok()?;
        (res.status() == 200).then_some(())
    })
    .await;
}

/// One copy of the image `images` serves, reported to `receiver`.
fn job(id: Uuid, images: &Fixture, receiver: &Fixture) -> Value {
    support::job(id, &format!("{}/photo.jpg", images.url), 1, receiver)
}

fn write_journal(path: &Path, entries: &[Entry], torn: &[u8]) {
    let mut text = Vec::new();
    for entry in entries {
        text.extend(serde_json::to_vec(entry).unwrap());
        text.push(b'\n');
    }
    text.extend_from_slice(torn);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn a_printer_killed_mid_job_prints_its_accepted_jobs_once_when_started_again() {
    let dir = StateDir::new();
    let receiver = receiver();
    let images = image_host(photo());
    // Printing takes a minute: the kill comes while every job is accepted, unprinted.
    let mut printer = printer(&dir, "60000").await;
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        let (status, body) = submit(&printer.url, &job(*id, &images, &receiver)).await;
        assert_eq!((status, &body["duplicate"]), (202, &json!(false)));
    }
    let (status, body) = submit(&printer.url, &job(ids[0], &images, &receiver)).await;
    assert_eq!((status, &body["duplicate"]), (202, &json!(true)));
    assert!(printed(&printer.url).await.iter().all(|j| j.printed == 0));

    printer.kill();
    printer.set_env("PRINTER_DELAY_MS", "0");
    printer.start_again().await;
    wait_ready(&printer.url).await;

    let done = eventually(
        "the resumed jobs to be printed and reported",
        PATIENCE,
        || async {
            let jobs = printed(&printer.url).await;
            (jobs.len() == 3 && jobs.iter().all(|j| j.reported)).then_some(jobs)
        },
    )
    .await;
    for job in &done {
        assert_eq!(
            (job.printed, job.status.as_str()),
            (1, "completed"),
            "{job:?}"
        );
        let expected = if job.correlation_id == ids[0] { 2 } else { 1 };
        assert_eq!(job.received, expected, "{job:?}");
        let statuses = statuses(&receiver, job.correlation_id);
        assert_eq!(
            statuses.iter().filter(|s| *s == "completed").count(),
            1,
            "{statuses:?}"
        );
    }

    // Once printed, a job stays printed across restarts: a repeat is only a repeat.
    printer.kill();
    printer.start_again().await;
    wait_ready(&printer.url).await;
    let (status, body) = submit(&printer.url, &job(ids[1], &images, &receiver)).await;
    assert_eq!((status, &body["duplicate"]), (202, &json!(true)));
    let after = printed(&printer.url).await;
    assert_eq!(after.len(), 3);
    assert!(
        after.iter().all(|j| j.printed == 1 && j.reported),
        "{after:?}"
    );
}

#[tokio::test]
async fn the_size_and_digest_of_a_printed_image_survive_a_restart() {
    let dir = StateDir::new();
    let receiver = receiver();
    let image = photo();
    let images = image_host(image.clone());
    let mut printer = printer(&dir, "0").await;
    let id = Uuid::new_v4();
    assert_eq!(
        submit(&printer.url, &job(id, &images, &receiver)).await.0,
        202
    );
    support::reported(&printer.url, id).await;

    printer.kill();
    printer.start_again().await;
    wait_ready(&printer.url).await;
    let expected = (Some(image.len() as u64), Some(sha256(&image)));
    let status = job_status(&printer.url, id).await;
    assert_eq!((status.image_bytes, status.image_sha256), expected);
    let listed = support::reported(&printer.url, id).await;
    assert_eq!((listed.image_bytes, listed.image_sha256), expected);
    assert_eq!(
        support::gets(&images),
        1,
        "a printed job's image is not fetched again"
    );
}

#[tokio::test]
async fn a_final_callback_not_delivered_before_the_crash_is_delivered_after() {
    let dir = StateDir::new();
    let receiver = receiver();
    let images = image_host(photo());
    let id = Uuid::new_v4();
    let body: pixpress_domain::printer::PrinterJob =
        serde_json::from_value(job(id, &images, &receiver)).unwrap();
    // Printed, but print-service never took the callback before the printer died.
    write_journal(
        &dir.journal(),
        &[
            Entry::Accepted { job: body },
            Entry::Printed {
                correlation_id: id,
                failed: false,
                detail: None,
                image_bytes: None,
                image_sha256: None,
            },
        ],
        b"",
    );
    let printer = printer(&dir, "0").await;
    let done = eventually("the callback to be delivered", PATIENCE, || async {
        printed(&printer.url).await.into_iter().find(|j| j.reported)
    })
    .await;
    assert_eq!(done.printed, 1, "not printed again");
    assert_eq!(statuses(&receiver, id), ["completed"]);
}

#[tokio::test]
async fn a_torn_last_line_is_dropped_and_the_journal_stays_usable() {
    let dir = StateDir::new();
    let receiver = receiver();
    let images = image_host(photo());
    let done_id = Uuid::new_v4();
    let done: pixpress_domain::printer::PrinterJob =
        serde_json::from_value(job(done_id, &images, &receiver)).unwrap();
    let torn = serde_json::to_vec(&Entry::Accepted {
        job: serde_json::from_value(job(Uuid::new_v4(), &images, &receiver)).unwrap(),
    })
    .unwrap();
    write_journal(
        &dir.journal(),
        &[
            Entry::Accepted { job: done },
            Entry::Printed {
                correlation_id: done_id,
                failed: false,
                detail: None,
                image_bytes: None,
                image_sha256: None,
            },
            Entry::Reported {
                correlation_id: done_id,
            },
        ],
        &torn[..torn.len() / 2],
    );
    let mut printer = printer(&dir, "0").await;
    let known = printed(&printer.url).await;
    assert_eq!(known.len(), 1, "{known:?}");
    assert_eq!((known[0].correlation_id, known[0].printed), (done_id, 1));

    // New lines go after the last whole one: the next start reads them all.
    let new_id = Uuid::new_v4();
    assert_eq!(
        submit(&printer.url, &job(new_id, &images, &receiver))
            .await
            .0,
        202
    );
    eventually("the new job to be reported", PATIENCE, || async {
        printed(&printer.url)
            .await
            .into_iter()
            .find(|j| j.correlation_id == new_id && j.reported)
    })
    .await;
    printer.kill();
    printer.start_again().await;
    wait_ready(&printer.url).await;
    let known = printed(&printer.url).await;
    assert_eq!(known.len(), 2, "{known:?}");
    assert!(
        known.iter().all(|j| j.printed == 1 && j.reported),
        "{known:?}"
    );
    assert_eq!(statuses(&receiver, new_id), ["printing", "completed"]);
    assert!(
        statuses(&receiver, done_id).is_empty(),
        "a reported job is not reported again"
    );
}

#[tokio::test]
async fn a_damaged_journal_keeps_the_printer_out_of_service_saying_where() {
    let dir = StateDir::new();
    write_journal(
        &dir.journal(),
        &[],
        b"{\"event\": \"accepted\", \"job\": 42}\n{}\n",
    );
    let printer = RunningBinary::start(BINARY, &[("PRINTER_STATE_DIR", dir.path())]).await;
    let c = client();
    let problem: Value = eventually("/ready to report the damage", PATIENCE, || async {
        let res = c.get(format!("{}/ready", printer.url)).send().await.ok()?;
        assert_eq!(res.status(), 503);
        let body: Value = res.json().await.ok()?;
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("line 1"))
            .then_some(body)
    })
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains(JOURNAL_FILE),
        "{problem}"
    );
    let receiver = receiver();
    let images = image_host(photo());
    let (status, _) = submit(&printer.url, &job(Uuid::new_v4(), &images, &receiver)).await;
    assert_eq!(status, 503, "a job it could not record is not acknowledged");
    // The damaged file is left for an operator to look at.
    assert!(std::fs::read(dir.journal())
        .unwrap()
        .starts_with(b"{\"event\""));
}

#[tokio::test]
async fn without_a_state_dir_a_restarted_printer_has_forgotten_its_jobs() {
    let mut printer = RunningBinary::start(BINARY, &[("PRINTER_DELAY_MS", "60000")]).await;
    let receiver = receiver();
    let images = image_host(photo());
    assert_eq!(
        submit(&printer.url, &job(Uuid::new_v4(), &images, &receiver))
            .await
            .0,
        202
    );
    assert_eq!(printed(&printer.url).await.len(), 1);
    printer.kill();
    printer.start_again().await;
    assert!(printed(&printer.url).await.is_empty());
}
