//! The catalog's rules on its own: lookups, settling a download once and only
//! by the task the image waits for, retries, what is overdue.

use super::*;

#[test]
fn lookup_refuses_strangers_unready_images_and_unknown_files() {
    let catalog = Catalog::new(["http://printer"]);
    let pending = catalog.create_image(1, "http://x/a.jpg".into(), false);
    let ready = catalog.create_image(1, "http://x/b.jpg".into(), true);
    assert_eq!(
        catalog.lookup(1, 999, None),
        Err(LookupRefusal::NoSuchImage(999))
    );
    assert_eq!(
        catalog.lookup(2, ready.id, None),
        Err(LookupRefusal::NotOwner(ready.id))
    );
    assert_eq!(
        catalog.lookup(1, pending.id, None),
        Err(LookupRefusal::NotReady(pending.id))
    );
    let ok = catalog.lookup(1, ready.id, None).unwrap();
    assert_eq!(ok.image_url, "http://x/b.jpg");
    assert_eq!(
        (ok.printer_id, ok.printer_url.as_str()),
        (1, "http://printer")
    );
}

#[test]
fn lookup_takes_the_printer_asked_for_or_the_first_enabled_one() {
    let catalog = Catalog::new(["http://one", "http://two"]);
    let image = catalog.create_image(1, "http://x/b.jpg".into(), true);
    let printer = |asked| catalog.lookup(1, image.id, asked).map(|l| l.printer_url);
    assert_eq!(printer(None).as_deref(), Ok("http://one"));
    assert_eq!(printer(Some(2)).as_deref(), Ok("http://two"));
    assert_eq!(printer(Some(3)), Err(LookupRefusal::NoSuchPrinter(3)));

    assert!(!catalog.put_printer(1, "http://one".into(), false));
    assert_eq!(printer(Some(1)), Err(LookupRefusal::PrinterDisabled(1)));
    assert_eq!(
        printer(None).as_deref(),
        Ok("http://two"),
        "the default moves on"
    );
    catalog.put_printer(2, "http://two".into(), false);
    assert_eq!(printer(None), Err(LookupRefusal::NoPrinter));
}

fn completed(task: Uuid) -> DownloadResult {
    DownloadResult::Completed {
        original_url: format!("http://d/images/{task}/original"),
        thumbnail_url: format!("http://d/images/{task}/thumbnail"),
        print_url: format!("http://internal/images/{task}/original?network=internal"),
    }
}

fn failed(error: &str) -> DownloadResult {
    DownloadResult::Failed {
        error: error.into(),
    }
}

#[test]
fn a_download_result_settles_a_pending_image_once() {
    let catalog = Catalog::new(["http://printer"]);
    let image = catalog.create_image(1, "http://x/a.jpg".into(), false);
    let task = Uuid::new_v4();
    assert!(catalog.awaits_request(image.id));
    assert!(catalog.task_taken(image.id, Some(task)));
    assert!(!catalog.awaits_request(image.id));
    assert_eq!(
        catalog.settle(image.id, task, completed(task)),
        Ok(Settled::Applied)
    );
    assert_eq!(
        catalog.settle(image.id, task, completed(task)),
        Ok(Settled::Unchanged)
    );
    assert_eq!(
        catalog.settle(image.id, task, failed("timeout")),
        Err(SettleRefusal::AlreadySettled(image.id, ImageStatus::Ready))
    );
    assert_eq!(
        catalog.lookup(1, image.id, None).unwrap().image_url,
        format!("http://internal/images/{task}/original?network=internal"),
        "printers get the link for their network, not the user's"
    );
    assert_eq!(
        catalog.settle(999, task, failed("timeout")),
        Err(SettleRefusal::NoSuchImage(999))
    );
}

#[test]
fn only_the_task_an_image_waits_for_settles_it() {
    let catalog = Catalog::new(["http://printer"]);
    let image = catalog.create_image(1, "http://x/a.jpg".into(), false);
    let (taken, stranger) = (Uuid::new_v4(), Uuid::new_v4());
    catalog.task_taken(image.id, Some(taken));
    assert_eq!(
        catalog.settle(image.id, stranger, completed(stranger)),
        Err(SettleRefusal::OtherTask(image.id))
    );
    assert_eq!(
        catalog.image_of(1, image.id).unwrap().status,
        ImageStatus::Pending
    );
}

#[test]
fn a_report_before_the_answer_names_the_task() {
    let catalog = Catalog::new(["http://printer"]);
    let image = catalog.create_image(1, "http://x/a.jpg".into(), false);
    let task = Uuid::new_v4();
    // The report overtakes download-service's answer to `POST /downloads`.
    assert_eq!(
        catalog.settle(image.id, task, completed(task)),
        Ok(Settled::Applied)
    );
    assert!(catalog.task_taken(image.id, Some(task)));
    assert_eq!(catalog.delete_image(1, image.id), Some(Some(task)));
    assert!(!catalog.task_taken(image.id, Some(task)));
}

#[test]
fn a_retried_image_refuses_its_old_tasks_report() {
    let catalog = Catalog::new(["http://printer"]);
    let image = catalog.create_image(1, "http://x/a.jpg".into(), false);
    let old = Uuid::new_v4();
    catalog.task_taken(image.id, Some(old));
    assert_eq!(
        catalog.retry(1, image.id).unwrap_err(),
        RetryRefusal::NotFailed(ImageStatus::Pending)
    );
    catalog.settle(image.id, old, failed("timeout")).unwrap();
    assert_eq!(
        catalog.retry(2, image.id).unwrap_err(),
        RetryRefusal::NoSuchImage
    );

    let retried = catalog.retry(1, image.id).unwrap();
    assert_eq!(retried.image.status, ImageStatus::Pending);
    assert_eq!(retried.image.error, None);
    assert_eq!(retried.previous_error.as_deref(), Some("timeout"));
    assert_eq!(retried.previous_task, Some(old));
    assert!(catalog.awaits_request(image.id));
    assert_eq!(
        catalog.settle(image.id, old, failed("timeout")),
        Err(SettleRefusal::OtherTask(image.id))
    );
    let new = Uuid::new_v4();
    catalog.task_taken(image.id, Some(new));
    assert_eq!(
        catalog.settle(image.id, new, completed(new)),
        Ok(Settled::Applied)
    );
}

#[test]
fn only_taken_downloads_pending_past_the_deadline_are_overdue() {
    let catalog = Catalog::new(["http://printer"]);
    let asking = catalog.create_image(1, "http://x/a.jpg".into(), false);
    let taken = catalog.create_image(1, "http://x/b.jpg".into(), false);
    let untracked = catalog.create_image(1, "http://x/c.jpg".into(), false);
    catalog.create_image(1, "http://x/d.jpg".into(), true);
    let task = Uuid::new_v4();
    catalog.task_taken(taken.id, Some(task));
    catalog.task_taken(untracked.id, None);
    let deadline = Duration::from_secs(60);
    assert_eq!(catalog.overdue(Instant::now(), deadline), vec![]);
    let later = Instant::now() + deadline;
    assert_eq!(
        catalog.overdue(later, deadline),
        vec![
            (taken.id, DownloadStage::Task(task)),
            (untracked.id, DownloadStage::Untracked)
        ]
    );
    assert!(catalog.fail_without_task(untracked.id, DownloadStage::Untracked, "unreachable"));
    assert!(!catalog.fail_without_task(asking.id, DownloadStage::Untracked, "unreachable"));
    assert_eq!(catalog.overdue(later, deadline).len(), 1);
}
