//! The whole system, as the local stack composes it (on random ports, with a fresh
//! database): a user adds an image by URL, it is downloaded, thumbnailed and stored
//! in S3, and a print job for it reaches the printer and completes.

mod support;

use image::ImageFormat;
use pixpress_testkit::auth::client_as;
use pixpress_testkit::fixture::{Fixture, Reply};
use pixpress_testkit::images::{encode, two_tone};
use serde_json::{json, Value};
use support::{add_image, job_reaches, settled_image, stack};

async fn json(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status(), status);
    res.json().await.unwrap()
}

#[tokio::test]
async fn an_image_added_by_url_is_downloaded_thumbnailed_and_printed() {
    let (stack, _db) = stack().await;
    let png = encode(&two_tone(640, 480).into(), ImageFormat::Png);
    let served = png.clone();
    let host = Fixture::start(move |_| Reply::bytes(200, "image/png", served.clone()));
    let http = client_as(&stack.token("0", &["admin"]));

    let image_url = format!("{}/cat.png", host.url);
    let image = add_image(&http, &stack.management_url, 1, &image_url).await;
    assert_eq!(image["status"], "pending");
    let ready = settled_image(&http, &stack.management_url, 1, &image["id"]).await;
    assert_eq!(ready["status"], "ready", "{ready}");

    // The thumbnail a browser would show: a redirect to S3, then a JPEG that fits.
    let browser = reqwest::Client::new();
    let thumb = browser
        .get(ready["thumbnail_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        thumb.status(),
        200,
        "redirect followed to the presigned URL"
    );
    let thumb = image::load_from_memory(&thumb.bytes().await.unwrap()).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (128, 96));

    let job = json(
        http.post(format!("{}/print/jobs", stack.print_url))
            .json(&json!({"user_id": 1, "file_id": image["id"], "copies": 2}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    job_reaches(&http, &stack, job["id"].as_str().unwrap(), "completed").await;
    let printed = pixpress_testkit::printer::printed(&stack.printer_url).await;
    assert_eq!(printed[0].printed, 1);
    assert_eq!(printed[0].copies, 2);
    // The printer got the printers' link to the same original, and fetched it: the
    // very bytes the user's image host served.
    let original = ready["original_url"].as_str().unwrap();
    assert_eq!(printed[0].image_url, format!("{original}?network=internal"));
    assert_eq!(printed[0].image_bytes, Some(png.len() as u64));
    let digest = pixpress_testkit::images::sha256_hex(&png);
    assert_eq!(printed[0].image_sha256.as_deref(), Some(digest.as_str()));
    // And the user's own link works from a browser.
    let original = browser.get(original).send().await.unwrap();
    assert_eq!(original.status(), 200);
    assert_eq!(original.headers()["content-type"], "image/png");
    stack.stop().await;
}

#[tokio::test]
async fn an_image_that_cannot_be_downloaded_fails_and_cannot_be_printed() {
    let (stack, _db) = stack().await;
    let host = Fixture::start(|_| Reply::bytes(404, "text/plain", b"gone".to_vec()));
    let http = client_as(&stack.token("0", &["admin"]));
    let image_url = format!("{}/gone.jpg", host.url);
    let image = add_image(&http, &stack.management_url, 2, &image_url).await;
    let failed = settled_image(&http, &stack.management_url, 2, &image["id"]).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"], "http_status");
    let res = http
        .post(format!("{}/print/jobs", stack.print_url))
        .json(&json!({"user_id": 2, "file_id": image["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    stack.stop().await;
}
