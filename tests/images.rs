//! Images against the real download-service: deleting an image deletes its task
//! (its links stop working) and its stored objects once no other image refers to
//! the same bytes; a download whose completion report never reached management-api
//! is reconciled, and the image becomes ready anyway.

mod support;

use image::ImageFormat;
use pixpress_testkit::auth::{self, client_as};
use pixpress_testkit::fixture::{Fixture, Reply};
use pixpress_testkit::http::{eventually, free_port};
use pixpress_testkit::images::{encode, two_tone};
use pixpress_testkit::metrics;
use pixpress_testkit::process::RunningBinary;
use pixpress_testkit::s3::TestBucket;
use pixpress_testkit::TestDatabase;
use serde_json::Value;
use support::{add_image, binary, borrowed, settled_image, stack, CALLBACK_SECRET, PATIENCE};

/// An image host serving one PNG at every path.
fn png_host() -> Fixture {
    let png = encode(&two_tone(320, 240).into(), ImageFormat::Png);
    Fixture::start(move |_| Reply::bytes(200, "image/png", png.clone()))
}

/// The status of a GET of `url` (redirects not followed), and where it redirects.
async fn fetch(url: &str) -> (u16, Option<String>) {
    let res = pixpress_testkit::http::client()
        .get(url)
        .send()
        .await
        .unwrap();
    let location = res
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    (res.status().as_u16(), location)
}

async fn eventually_answers(url: &str, status: u16) {
    eventually(&format!("{url} to answer {status}"), PATIENCE, || async {
        (fetch(url).await.0 == status).then_some(())
    })
    .await;
}

#[tokio::test]
async fn deleted_images_lose_their_links_and_the_last_one_its_objects() {
    let (stack, _db) = stack().await;
    let host = png_host();
    let http = client_as(&stack.token("0", &["admin"]));
    let images = format!("{}/users/1/images", stack.management_url);
    // The same bytes twice: stored once, referred to by both images' tasks.
    let mut ready = Vec::new();
    for name in ["first.png", "second.png"] {
        let image_url = format!("{}/{name}", host.url);
        let created = add_image(&http, &stack.management_url, 1, &image_url).await;
        let image = settled_image(&http, &stack.management_url, 1, &created["id"]).await;
        assert_eq!(image["status"], "ready", "{image}");
        ready.push(image);
    }
    let link = |image: &Value| image["original_url"].as_str().unwrap().to_owned();
    let (status, stored) = fetch(&link(&ready[0])).await;
    assert_eq!(status, 302);
    let stored = stored.expect("a presigned URL");
    assert_eq!(fetch(&stored).await.0, 200);

    let delete = |image: &Value| http.delete(format!("{images}/{}", image["id"])).send();
    assert_eq!(delete(&ready[0]).await.unwrap().status(), 204);
    eventually_answers(&link(&ready[0]), 404).await;
    eventually_answers(ready[0]["thumbnail_url"].as_str().unwrap(), 404).await;
    // The other image still refers to the bytes: its links and the objects stay.
    assert_eq!(fetch(&link(&ready[1])).await.0, 302);
    assert_eq!(fetch(&stored).await.0, 200);

    assert_eq!(delete(&ready[1]).await.unwrap().status(), 204);
    eventually_answers(&link(&ready[1]), 404).await;
    // Nothing refers to the bytes any more: S3 no longer has them.
    eventually_answers(&stored, 404).await;
    stack.stop().await;
}

/// download-service and management-api as processes, on one fresh database and
/// bucket, management-api reconciling images pending for `reconcile_secs`;
/// `download_env` is added to (and overrides) download-service's correct settings.
struct DownloadPair {
    download: RunningBinary,
    management: RunningBinary,
    _db: TestDatabase,
    _bucket: TestBucket,
}

impl DownloadPair {
    async fn start(download_env: &[(&'static str, String)], reconcile_secs: u64) -> Self {
        let (db, bucket) = (TestDatabase::empty().await, TestBucket::new().await);
        let (download_port, management_port) = (free_port(), free_port());
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let mut download = bucket.env();
        download.extend([
            ("DATABASE_URL", db.url.clone()),
            ("DOWNLOAD_ALLOW_PRIVATE_NETWORKS", "true".into()),
            ("DOWNLOAD_CALLBACK_SECRET", CALLBACK_SECRET.into()),
            ("AUTH_JWT_SECRET", auth::SECRET.into()),
            ("MANAGEMENT_URL", url(management_port)),
            (
                "MANAGEMENT_TOKEN",
                auth::token("download-service", &["service"]),
            ),
        ]);
        for (name, value) in download_env {
            download.retain(|(n, _)| n != name);
            download.push((name, value.clone()));
        }
        let download = RunningBinary::start_on(
            &binary("download-service", "pixpress-download"),
            download_port,
            &borrowed(&download),
        )
        .await;
        let management = [
            ("AUTH_JWT_SECRET", auth::SECRET.to_owned()),
            ("DOWNLOAD_URL", url(download_port)),
            ("MANAGEMENT_PUBLIC_URL", url(management_port)),
            ("DOWNLOAD_CALLBACK_SECRET", CALLBACK_SECRET.to_owned()),
            (
                "DOWNLOAD_TOKEN",
                auth::token("management-api", &["service"]),
            ),
            ("MANAGEMENT_RECONCILE_SECS", reconcile_secs.to_string()),
        ];
        let management = RunningBinary::start_on(
            &binary("management-api", "pixpress-management"),
            management_port,
            &borrowed(&management),
        )
        .await;
        Self {
            download,
            management,
            _db: db,
            _bucket: bucket,
        }
    }

    async fn metric(&self, base_url: &str, name: &str, outcome: &str) -> Option<f64> {
        let text = metrics::scrape(&pixpress_testkit::http::client(), base_url).await;
        metrics::value(&text, name, &[("outcome", outcome)])
    }

    /// Adds an image of user 1 and waits until it settles; the image.
    async fn settled_image(&self, host: &Fixture) -> Value {
        let http = client_as(&auth::admin());
        let management = &self.management.url;
        let image_url = format!("{}/cat.png", host.url);
        let created = add_image(&http, management, 1, &image_url).await;
        settled_image(&http, management, 1, &created["id"]).await
    }

    /// The report was refused as `refusal`, and the image became ready by
    /// reconciliation; its original can be fetched.
    async fn assert_reconciled(&self, image: &Value, refusal: &str) {
        assert_eq!(image["status"], "ready", "{image}");
        let management = &self.management.url;
        let callbacks = "pixpress_management_download_callbacks_total";
        let refused = eventually("the refused report to be counted", PATIENCE, || async {
            self.metric(management, callbacks, refusal).await
        })
        .await;
        assert!(refused >= 1.0);
        assert_eq!(self.metric(management, callbacks, "completed").await, None);
        let reconciled = "pixpress_management_download_reconciliations_total";
        assert_eq!(
            self.metric(management, reconciled, "completed").await,
            Some(1.0)
        );
        let (status, _) = fetch(image["original_url"].as_str().unwrap()).await;
        assert_eq!(status, 302, "served by {}", self.download.url);
    }
}

#[tokio::test]
async fn a_report_signed_with_the_wrong_secret_is_lost_and_reconciled() {
    let (_, wrong_secret) = pixpress_kit::webhook::WebhookSecret::generate();
    let pair = DownloadPair::start(&[("DOWNLOAD_CALLBACK_SECRET", wrong_secret)], 1).await;
    let image = pair.settled_image(&png_host()).await;
    pair.assert_reconciled(&image, "unauthorized").await;
}

#[tokio::test]
async fn a_report_sent_without_the_service_role_is_lost_and_reconciled() {
    let pair = DownloadPair::start(&[("MANAGEMENT_TOKEN", auth::user(1))], 1).await;
    let image = pair.settled_image(&png_host()).await;
    pair.assert_reconciled(&image, "forbidden").await;
}

/// What the two tests above break: the real download-service's report, signed and
/// sent with its service token, reaches management-api (no reconciliation needed).
#[tokio::test]
async fn a_download_service_configured_right_reports_with_its_service_token() {
    let pair = DownloadPair::start(&[], 300).await;
    let image = pair.settled_image(&png_host()).await;
    assert_eq!(image["status"], "ready", "{image}");
    let callbacks = "pixpress_management_download_callbacks_total";
    assert_eq!(
        pair.metric(&pair.management.url, callbacks, "completed")
            .await,
        Some(1.0)
    );
    let reconciled = "pixpress_management_download_reconciliations_total";
    assert_eq!(
        pair.metric(&pair.management.url, reconciled, "completed")
            .await,
        None
    );
}
