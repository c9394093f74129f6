//! `image-latency`: how soon an image a user adds by URL is `ready`. The whole path
//! as users run it, authentication on: `POST /users/1/images` with the user's token
//! at management-api → download-service (asked with management's `service` token) →
//! fetch from the harness's image origin (a 12 MP, 2.7 MB photo; every URL a
//! different file, so nothing is deduplicated) → thumbnail → both objects into the
//! in-process S3 → the task recorded → the signed completion report (with
//! download's `service` token) → management marks the image `ready`. The harness
//! polls `GET /users/1/images/{id}` every 2 ms.
//!
//! Figures and references, all in the same run:
//! - one image at a time, 50 (quick 5): p50/p99 of POST → `ready`, against the
//!   processing alone done in-process between them — the service's own pieces
//!   (`Fetcher::fetch`, `make_thumbnail` and the SHA-256 of the content address off
//!   the runtime, the two S3 uploads with their existence checks, as the worker
//!   does): what the image costs without the queueing, the task rows and the reports;
//! - 16 distinct images added at once: images per second end to end (first POST →
//!   last `ready`), against the seed's method (`image::load_from_memory`, `thumbnail`,
//!   JPEG encode) on one core on the same bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use pixpress_download::fetch::{FetchPolicy, Fetcher};
use pixpress_download::storage::{Storage, StorageConfig};
use pixpress_download::thumbnail::{make_thumbnail, Limits};
use pixpress_testkit::s3::TestBucket;
use sha2::{Digest, Sha256};

use crate::images;
use crate::report::{num, Row};
use crate::scenarios::{note, Ctx};
use crate::services::{self, Auth};

const USER: i64 = 1;
const AT_ONCE: usize = 16;
const THUMBNAIL_SIZE: u32 = 128;
const POLL: Duration = Duration::from_millis(2);
const LIMIT: Duration = Duration::from_secs(120);

/// Adds `url` for the user; the image's id.
async fn add(
    client: &reqwest::Client,
    management: &str,
    authorization: &str,
    url: &str,
) -> anyhow::Result<i64> {
    let image: serde_json::Value = client
        .post(format!("{management}/users/{USER}/images"))
        .header("authorization", authorization)
        .json(&serde_json::json!({ "url": url }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    image["id"].as_i64().context("an image id")
}

/// Polls image `id` until it is `ready` (an error if it failed).
async fn wait_ready(
    client: &reqwest::Client,
    management: &str,
    authorization: &str,
    id: i64,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let image: serde_json::Value = client
            .get(format!("{management}/users/{USER}/images/{id}"))
            .header("authorization", authorization)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        match image["status"].as_str() {
            Some("ready") => return Ok(()),
            Some("failed") => bail!("image {id} failed: {}", image["error"]),
            _ => {}
        }
        if started.elapsed() > LIMIT {
            bail!("image {id} was not ready within {LIMIT:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The processing alone, as the download worker does it; its time, and the time of
/// each piece (fetch, thumbnail + hash, store).
async fn process(fetcher: &Fetcher, storage: &Storage, url: &str) -> anyhow::Result<[Duration; 4]> {
    let started = Instant::now();
    let fetched = fetcher.fetch(url).await?;
    let fetch = started.elapsed();
    let bytes = fetched.bytes;
    let (bytes, made) = tokio::task::spawn_blocking(move || {
        let made = make_thumbnail(&bytes, THUMBNAIL_SIZE, &Limits::default())
            .map(|thumb| (thumb, hex::encode(Sha256::digest(&bytes))));
        (bytes, made)
    })
    .await?;
    let (thumb, hash) = made?;
    let thumbnail = started.elapsed() - fetch;
    let objects = [
        (
            format!("originals/{hash}"),
            &bytes,
            thumb.kind.content_type(),
        ),
        (
            format!("thumbnails/{hash}-{THUMBNAIL_SIZE}.jpg"),
            &thumb.jpeg,
            "image/jpeg",
        ),
    ];
    for (key, bytes, content_type) in objects {
        if !storage.exists(&key).await? {
            storage
                .put(
                    &key,
                    bytes,
                    content_type,
                    "public, max-age=31536000, immutable",
                )
                .await?;
        }
    }
    let total = started.elapsed();
    Ok([total, fetch, thumbnail, total - fetch - thumbnail])
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

fn median_ms(values: &mut [Duration]) -> f64 {
    values.sort();
    percentile_ms(values, 50.0)
}

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let photo =
        tokio::task::spawn_blocking(|| images::jpeg(&images::photo_like(4000, 3000, 6))).await??;
    let megabytes = photo.len() as f64 / 1e6;
    let photo = Arc::new(photo);
    let origin = services::image_origin(Arc::clone(&photo))?;
    let db = services::database().await;
    let bucket = TestBucket::new().await;
    let auth = Auth::new();
    let callback_secret = services::secret();
    let (management_side, download_side) = (services::loopback()?, services::loopback()?);
    let (management_url, download_url) = (management_side.1.clone(), download_side.1.clone());
    let management = services::management_on(management_side, &auth, |c| {
        c.download_url = download_url.clone();
        c.download_callback_secret = Some(callback_secret.clone());
    })?;
    let download = services::download_on(
        download_side,
        &db.url,
        &bucket,
        &callback_secret,
        &management_url,
        &auth,
        |_| {},
    )?;
    services::wait_ok(&download.url, "/ready").await?;
    services::wait_ok(&management.url, "/health").await?;

    let fetcher = Fetcher::new(
        FetchPolicy::new(20 * 1024 * 1024, Duration::from_secs(30), true),
        "pixpress-bench",
    );
    let storage = Storage::new(&StorageConfig {
        endpoint: bucket.endpoint.clone(),
        public_endpoint: None,
        region: bucket.region.clone(),
        bucket: bucket.bucket.clone(),
        access_key: bucket.access_key.clone(),
        secret_key: bucket.secret_key.clone(),
    })?;
    let client = services::client();
    let token = auth.user(USER);
    let image_url = |name: String| format!("{}/img/{name}.jpg", origin.url);

    // Warm-up: connections, the decoder's tables, the bucket.
    for i in 0..2 {
        let id = add(
            &client,
            &management_url,
            &token,
            &image_url(format!("warm-{i}")),
        )
        .await?;
        wait_ready(&client, &management_url, &token, id).await?;
        process(&fetcher, &storage, &image_url(format!("warm-ref-{i}"))).await?;
    }

    // One at a time, each followed by the processing alone on another file.
    let count = ctx.pick(50, 5);
    let service_before = services::scrape(&download.url).await?;
    let mut whole = Vec::with_capacity(count);
    let mut alone = Vec::with_capacity(count);
    let mut pieces: [Vec<Duration>; 3] = Default::default();
    for i in 0..count {
        let started = Instant::now();
        let id = add(
            &client,
            &management_url,
            &token,
            &image_url(format!("one-{i}")),
        )
        .await?;
        wait_ready(&client, &management_url, &token, id).await?;
        whole.push(started.elapsed());
        let [total, fetch, thumbnail, store] =
            process(&fetcher, &storage, &image_url(format!("ref-{i}"))).await?;
        alone.push(total);
        for (list, piece) in pieces.iter_mut().zip([fetch, thumbnail, store]) {
            list.push(piece);
        }
    }
    let service_after = services::scrape(&download.url).await?;
    // The same pieces as download-service timed them (its histograms' means).
    let mean_ms = |name: &str| {
        let sum = |text: &str, suffix: &str| {
            services::metric(text, &format!("pixpress_download_{name}_seconds_{suffix}"))
                .unwrap_or(0.0)
        };
        let n = sum(&service_after, "count") - sum(&service_before, "count");
        1000.0 * (sum(&service_after, "sum") - sum(&service_before, "sum")) / n.max(1.0)
    };
    let inside = [mean_ms("fetch"), mean_ms("thumbnail"), mean_ms("s3_put")];
    let inside_ms: f64 = inside.iter().sum();
    note(format!(
        "inside download-service, mean per image: fetch {:.1} ms, thumbnail + SHA-256 {:.1} ms, S3 {:.1} ms",
        inside[0], inside[1], inside[2]
    ));
    whole.sort();
    alone.sort();
    let (p50, p99) = (percentile_ms(&whole, 50.0), percentile_ms(&whole, 99.0));
    let (alone_p50, alone_p99) = (percentile_ms(&alone, 50.0), percentile_ms(&alone, 99.0));
    let [fetch, thumbnail, store] = pieces.map(|mut list| median_ms(&mut list));
    note(format!(
        "one image ({megabytes:.1} MB): POST → ready p50 {p50:.1} ms, p99 {p99:.1} ms; processing alone p50 {alone_p50:.1} ms, p99 {alone_p99:.1} ms (fetch {fetch:.1}, thumbnail + SHA-256 {thumbnail:.1}, S3 {store:.1} ms)"
    ));

    // 16 at once.
    let started = Instant::now();
    let adds = (0..AT_ONCE).map(|i| {
        let (client, management_url, token) = (&client, &management_url, &token);
        let url = image_url(format!("burst-{i}"));
        async move { add(client, management_url, token, &url).await }
    });
    let ids = futures_util::future::try_join_all(adds).await?;
    let waits = ids
        .iter()
        .map(|id| wait_ready(&client, &management_url, &token, *id));
    futures_util::future::try_join_all(waits).await?;
    let burst_seconds = started.elapsed().as_secs_f64();
    let burst_rate = AT_ONCE as f64 / burst_seconds;

    // The seed's method on one core, same bytes.
    let runs = ctx.pick(5, 2);
    let seed_ms = {
        let photo = Arc::clone(&photo);
        tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
            images::seed_thumbnail(&photo, THUMBNAIL_SIZE)?; // warm-up
            let mut times = Vec::with_capacity(runs);
            for _ in 0..runs {
                let started = Instant::now();
                std::hint::black_box(images::seed_thumbnail(&photo, THUMBNAIL_SIZE)?);
                times.push(started.elapsed());
            }
            Ok(median_ms(&mut times))
        })
        .await??
    };
    let seed_rate = 1000.0 / seed_ms;
    note(format!(
        "{AT_ONCE} images at once: all ready in {burst_seconds:.2} s ({burst_rate:.1} images/s); the seed's method on one core: {seed_ms:.1} ms per image ({seed_rate:.1} images/s)"
    ));

    ctx.push(Row::ratio_at_most(
        "image-latency",
        format!("one 12 MP image, POST → ready p50 ({count} images)"),
        format!("{p50:.1} ms"),
        format!("{alone_p50:.1} ms download + thumbnail + store alone"),
        p50 / alone_p50,
        1.5,
    ));
    ctx.push(Row::info(
        "image-latency",
        "one 12 MP image, POST → ready p99",
        format!("{p99:.1} ms"),
        format!("{alone_p99:.1} ms alone (fetch {fetch:.1}, thumbnail + hash {thumbnail:.1}, S3 {store:.1})"),
        Some(p99 / alone_p99),
    ));
    ctx.push(Row::info(
        "image-latency",
        "one 12 MP image, POST → ready p50 ÷ the service's own processing",
        format!("{p50:.1} ms"),
        format!("{inside_ms:.1} ms mean fetch + thumbnail + S3 inside download-service"),
        Some(p50 / inside_ms),
    ));
    ctx.push(Row::ratio_at_least(
        "image-latency",
        format!("{AT_ONCE} images at once, images/s end to end"),
        num(burst_rate),
        format!("{} seed method, one core", num(seed_rate)),
        burst_rate / seed_rate,
        4.0,
    ));

    download.stop().await;
    management.stop().await;
    origin.stop().await;
    drop(bucket);
    drop(db); // drops the scenario's database
    Ok(())
}
