//! `download`: images per second through the whole download path — a local HTTP
//! origin serving a generated 12 MP photo (each URL a different file of the same
//! picture, so content-addressed storage keeps them all) → download-service (fetch,
//! sniff, thumbnail, both objects into the in-process S3, task row in PostgreSQL) →
//! the signed completion callback, counted by a sink. The harness asks for the
//! downloads as management-api does, with a `service` token. N downloads are requested at
//! once; the figure is N ÷ (first request → last callback), at
//! `download_concurrency` 2 and 8.
//!
//! Reference: `make_thumbnail` alone on two threads on the same image — the CPU work
//! no download can avoid; the ratio is the share of that ceiling the whole path keeps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use pixpress_testkit::s3::TestBucket;

use crate::images;
use crate::report::{num, Row};
use crate::scenarios::{note, thumbnail, Ctx};
use crate::services::{self, SinkCounts};

async fn images_per_second(
    ctx: &Ctx,
    concurrency: u32,
    origin: &str,
    sink_url: &str,
    sink: &SinkCounts,
) -> anyhow::Result<f64> {
    let count = ctx.pick(80u64, 6);
    let db = services::database().await;
    let bucket = TestBucket::new().await;
    let auth = services::Auth::new();
    let service = services::download(
        &db.url,
        &bucket,
        concurrency,
        &services::secret(),
        sink_url,
        &auth,
    )?;
    let token = auth.service("management-api");
    services::wait_ok(&service.url, "/ready").await?;
    sink.reset();
    let client = services::client();
    let started = Instant::now();
    let requests = (0..count).map(|i| {
        let body = serde_json::json!({
            "url": format!("{origin}/img/c{concurrency}-{i}.jpg"),
            "callback_url": format!("{sink_url}/downloads/{i}"),
        });
        let client = client.clone();
        let url = format!("{}/downloads", service.url);
        let token = token.clone();
        async move {
            client
                .post(url)
                .header("authorization", token)
                .json(&body)
                .send()
                .await?
                .error_for_status()
        }
    });
    for result in futures_util::future::join_all(requests).await {
        result?;
    }
    let limit = ctx.secs(300, 120);
    while sink.received() < count {
        if started.elapsed() > limit {
            bail!(
                "only {} of {count} downloads called back within {limit:?}",
                sink.received()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let completed = sink.completed();
    note(format!(
        "download_concurrency {concurrency}: {count} images in {seconds:.2} s, {completed} completed"
    ));
    service.stop().await;
    drop(db); // drops the scenario's database
    if completed < count {
        bail!("{} of {count} downloads failed", count - completed);
    }
    Ok(count as f64 / seconds)
}

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let photo =
        tokio::task::spawn_blocking(|| images::jpeg(&images::photo_like(4000, 3000, 6))).await??;
    let photo = Arc::new(photo);
    let megabytes = photo.len() as f64 / 1e6;
    let per_thread = ctx.pick(4, 1);
    let reference = {
        let photo = Arc::clone(&photo);
        tokio::task::spawn_blocking(move || {
            thumbnail::two_thread_rate(true, Arc::clone(&photo), 1)?; // warm-up
            thumbnail::two_thread_rate(true, photo, per_thread)
        })
        .await??
    };
    note(format!(
        "make_thumbnail alone, 2 threads: {reference:.1} images/s ({megabytes:.1} MB JPEG)"
    ));
    let origin = services::image_origin(Arc::clone(&photo))?;
    let (sink, counts) = services::sink()?;
    for concurrency in [2, 8] {
        let rate = images_per_second(ctx, concurrency, &origin.url, &sink.url, &counts).await?;
        ctx.push(Row::info(
            "download",
            format!("images/s, download_concurrency {concurrency} (12 MP, {megabytes:.1} MB)"),
            num(rate),
            format!("{} make_thumbnail alone", num(reference)),
            Some(rate / reference),
        ));
    }
    origin.stop().await;
    sink.stop().await;
    Ok(())
}
