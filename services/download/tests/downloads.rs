//! Downloads end to end: a real local image host, the real service, a real
//! PostgreSQL and a real S3-compatible server.

mod helpers;

use helpers::{TestApp, PATIENCE, SECRET};
use image::{ImageFormat, Rgb};
use pixpress_kit::webhook::{unix_now, WebhookSecret};
use pixpress_testkit::fixture::Reply;
use pixpress_testkit::http::eventually;
use pixpress_testkit::images::{encode, png_declaring, two_tone, with_exif_orientation, BLUE, RED};
use serde_json::Value;

fn is_close(actual: Rgb<u8>, expected: Rgb<u8>) -> bool {
    actual
        .0
        .iter()
        .zip(expected.0)
        .all(|(a, e)| a.abs_diff(e) < 60)
}

#[tokio::test]
async fn every_format_is_stored_with_a_thumbnail_that_fits() {
    let app = TestApp::spawn().await;
    let source = two_tone(300, 150);
    let cases = [
        (ImageFormat::Jpeg, "image/jpeg"),
        (ImageFormat::Png, "image/png"),
        (ImageFormat::WebP, "image/webp"),
        (ImageFormat::Gif, "image/gif"),
    ];
    for (format, content_type) in cases {
        let bytes = encode(&source.clone().into(), format);
        // The host lies about the type: the service must sniff the bytes.
        let url = app.host.image(
            &format!("/{content_type}"),
            "application/octet-stream",
            bytes.clone(),
        );
        let task = app.finished(&app.download(&url).await).await;
        assert_eq!(task["state"], "completed", "{content_type}: {task}");
        assert_eq!(task["content_type"], content_type);
        assert_eq!(
            (task["width"].as_i64(), task["height"].as_i64()),
            (Some(300), Some(150))
        );
        assert_eq!(task["bytes"].as_u64(), Some(bytes.len() as u64));

        let id = task["id"].as_str().unwrap();
        let (original, original_type) = app.fetch_image(id, "original").await;
        assert_eq!(
            original, bytes,
            "the presigned URL serves the exact original"
        );
        assert_eq!(original_type, content_type);
        let (thumb, thumb_type) = app.fetch_image(id, "thumbnail").await;
        assert_eq!(thumb_type, "image/jpeg");
        let thumb = image::load_from_memory_with_format(&thumb, ImageFormat::Jpeg).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (128, 64), "{content_type}");
    }
}

#[tokio::test]
async fn a_phone_photo_with_exif_orientation_6_gets_an_upright_thumbnail() {
    let app = TestApp::spawn().await;
    // Stored landscape (left red, right blue); orientation 6 says "rotate 90° clockwise".
    let photo = with_exif_orientation(&encode(&two_tone(400, 200).into(), ImageFormat::Jpeg), 6);
    let url = app.host.image("/phone.jpg", "image/jpeg", photo);
    let task = app.finished(&app.download(&url).await).await;
    assert_eq!(task["state"], "completed", "{task}");
    assert_eq!(
        (task["width"].as_i64(), task["height"].as_i64()),
        (Some(200), Some(400))
    );
    let (thumb, _) = app
        .fetch_image(task["id"].as_str().unwrap(), "thumbnail")
        .await;
    let thumb = image::load_from_memory(&thumb).unwrap().to_rgb8();
    assert_eq!(thumb.dimensions(), (64, 128));
    // Upright: what was the left (red) is now on top.
    assert!(
        is_close(*thumb.get_pixel(32, 10), RED),
        "top is {:?}",
        thumb.get_pixel(32, 10)
    );
    assert!(is_close(*thumb.get_pixel(32, 118), BLUE));
}

#[tokio::test]
async fn the_same_image_twice_is_stored_once() {
    let app = TestApp::spawn().await;
    let bytes = encode(&two_tone(64, 64).into(), ImageFormat::Png);
    let a = app.host.image("/a.png", "image/png", bytes.clone());
    let b = app.host.image("/b.png", "image/png", bytes);
    let first = app.finished(&app.download(&a).await).await;
    let second = app.finished(&app.download(&b).await).await;
    assert_eq!(first["original_key"], second["original_key"]);
    assert_eq!(first["thumbnail_key"], second["thumbnail_key"]);
    assert_ne!(first["id"], second["id"]);
    assert_eq!(app.bucket.keys("originals/").len(), 1);
    assert_eq!(app.bucket.keys("thumbnails/").len(), 1);
}

async fn failure(app: &TestApp, url: &str) -> Value {
    let task = app.finished(&app.download(url).await).await;
    assert_eq!(task["state"], "failed", "{task}");
    task
}

#[tokio::test]
async fn bad_inputs_fail_with_their_stable_codes() {
    let app = TestApp::spawn_with(|c| c.download_max_bytes = 10_000).await;
    let text = app.host.image(
        "/notes.txt",
        "image/jpeg",
        b"just some text, not a picture".to_vec(),
    );
    assert_eq!(failure(&app, &text).await["error"], "not_an_image");

    let big = app.host.image("/big.png", "image/png", vec![0x89; 50_000]);
    assert_eq!(failure(&app, &big).await["error"], "too_large");

    let missing = format!("{}/missing.jpg", app.host.fixture.url);
    assert_eq!(failure(&app, &missing).await["error"], "http_status");

    let bomb = app
        .host
        .image("/bomb.png", "image/png", png_declaring(100_000, 100_000));
    assert_eq!(failure(&app, &bomb).await["error"], "decode_failed");

    // No image, no thumbnail: the image routes say why.
    let failed = failure(&app, &text).await;
    let res = app
        .http
        .get(format!(
            "{}/images/{}/thumbnail",
            app.url,
            failed["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn a_slow_server_times_out_and_is_retried() {
    let app = TestApp::spawn_with(|c| c.download_timeout_ms = 300).await;
    let bytes = encode(&two_tone(32, 32).into(), ImageFormat::Png);
    let url = app.host.serve(
        "/slow.png",
        Reply::bytes(200, "image/png", bytes).delayed(std::time::Duration::from_secs(3)),
    );
    let task = app.download(&url).await;
    let id = task["id"].as_str().unwrap().to_owned();
    // A timeout is transient: the task goes back to the queue with the reason.
    let retrying = eventually("a timed-out attempt", PATIENCE, || async {
        let task = app.task(&id).await;
        (task["error"] == "timeout").then_some(task)
    })
    .await;
    assert_ne!(retrying["state"], "completed");
}

#[tokio::test]
async fn a_redirect_to_loopback_is_a_forbidden_address_when_private_networks_are_banned() {
    let app = TestApp::spawn_with(|c| {
        c.download_allow_private_networks = false;
        // The image host itself is exempt by name; `localhost` is not.
        c.download_allowed_internal_hosts = vec!["127.0.0.1".into()];
    })
    .await;
    let port = app.host.fixture.url.rsplit(':').next().unwrap().to_owned();
    let target = app.host.png("/secret.png", 8, 8);
    let _ = target;
    let hop = app.host.serve(
        "/hop",
        Reply::bytes(302, "text/plain", Vec::new())
            .header("location", &format!("http://localhost:{port}/secret.png")),
    );
    assert_eq!(failure(&app, &hop).await["error"], "forbidden_address");
    let paths = app.host.requested_paths();
    assert_eq!(paths, ["/hop"], "the forbidden hop is never requested");
}

#[tokio::test]
async fn while_s3_is_down_downloads_retry_and_complete_when_it_is_back() {
    let mut app = TestApp::spawn().await;
    let url = app.host.png("/later.png", 32, 16);
    app.bucket.stop_server().await;
    let task = app.download(&url).await;
    let id = task["id"].as_str().unwrap().to_owned();
    eventually("a storage failure while S3 is down", PATIENCE, || async {
        (app.task(&id).await["error"] == "storage_failed").then_some(())
    })
    .await;
    app.bucket.restart_server().await;
    let done = app.finished(&task).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(app.bucket.keys("originals/").len(), 1);
}

#[tokio::test]
async fn the_completion_callback_is_signed_and_carries_the_task() {
    let app = TestApp::spawn().await;
    let url = app.host.png("/cb.png", 16, 16);
    let task = app.finished(&app.download(&url).await).await;
    let call = eventually("the callback", PATIENCE, || async {
        app.receiver.requests().pop()
    })
    .await;
    assert_eq!(call.path, "/done");
    WebhookSecret::parse(SECRET)
        .unwrap()
        .verify(
            call.header("webhook-id"),
            call.header("webhook-timestamp"),
            call.header("webhook-signature"),
            &call.body,
            unix_now(),
        )
        .expect("signed with DOWNLOAD_CALLBACK_SECRET");
    let reported: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(reported["id"], task["id"]);
    assert_eq!(reported["state"], "completed");
    assert_eq!(reported["original_key"], task["original_key"]);
}

#[tokio::test]
async fn images_not_downloaded_yet_are_409_and_unknown_ones_404() {
    let app = TestApp::spawn().await;
    let slow = app.host.serve(
        "/slow.png",
        Reply::bytes(
            200,
            "image/png",
            encode(&two_tone(8, 8).into(), ImageFormat::Png),
        )
        .delayed(std::time::Duration::from_secs(2)),
    );
    let task = app.download(&slow).await;
    let res = app
        .http
        .get(format!(
            "{}/images/{}/original",
            app.url,
            task["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    let res = app
        .http
        .get(format!(
            "{}/images/0191e0c2-7f3a-7000-8000-000000000000/original",
            app.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let bad = app
        .http
        .post(format!("{}/downloads", app.url))
        .json(&serde_json::json!({"url": "file:///etc/passwd"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn the_service_is_ready_only_with_its_database_and_bucket() {
    let mut app = TestApp::spawn().await;
    let ready = || async {
        app.http
            .get(format!("{}/ready", app.url))
            .send()
            .await
            .unwrap()
            .status()
    };
    eventually("ready", PATIENCE, || async {
        (ready().await == 200).then_some(())
    })
    .await;
    app.bucket.stop_server().await;
    assert_eq!(ready().await, 503);
}

#[tokio::test]
async fn browsers_and_printers_get_links_for_their_own_network() {
    // Browsers know S3 as `localhost`, the services (and printers) as 127.0.0.1.
    let app = TestApp::spawn_with(|c| {
        let internal = c.s3_endpoint.clone().unwrap();
        c.s3_public_endpoint = Some(internal.replace("127.0.0.1", "localhost"));
    })
    .await;
    let task = app.downloaded(&app.host.png("/p.png", 40, 30)).await;
    let id = task["id"].as_str().unwrap();
    let link = |query: &str| {
        let url = format!("{}/images/{id}/original{query}", app.url);
        let browser = &app.browser;
        async move { browser.get(url).send().await.unwrap() }
    };
    let location = |res: reqwest::Response| {
        assert_eq!(res.status(), 302);
        res.headers()["location"].to_str().unwrap().to_owned()
    };
    let public = location(link("").await);
    assert!(public.starts_with("http://localhost:"), "{public}");
    assert_eq!(location(link("?network=public").await), public.clone());
    let internal = location(link("?network=internal").await);
    assert!(internal.starts_with("http://127.0.0.1:"), "{internal}");
    let fetched = app.browser.get(&internal).send().await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.headers()["content-type"], "image/png");

    let bad = link("?network=moon").await;
    assert_eq!(bad.status(), 400);
    let problem: Value = bad.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "network", "{problem}");
}
