//! Printing on a real IPP printer through the whole system, as the local stack runs
//! it: print-service → ipp-gateway → CUPS's ippeveprinter (`ipp-sim`, management-api's
//! printer 2). The document the printer spooled is the user's image, byte for byte.

mod support;

use image::ImageFormat;
use pixpress_testkit::auth::client_as;
use pixpress_testkit::fixture::{Fixture, Reply};
use pixpress_testkit::http::{eventually, AnswerJson};
use pixpress_testkit::images::{encode, two_tone};
use serde_json::{json, Value};
use support::{add_image, job_reaches, settled_image, stack_with_ipp_sim, PATIENCE};

#[tokio::test]
async fn a_job_for_the_ipp_printer_is_printed_there_byte_for_byte() {
    let (stack, _db) = stack_with_ipp_sim().await;
    let sim = stack.ipp_sim.as_ref().expect("ipp-sim");
    let jpeg = encode(&two_tone(320, 240).into(), ImageFormat::Jpeg);
    let served = jpeg.clone();
    let host = Fixture::start(move |_| Reply::bytes(200, "image/jpeg", served.clone()));
    let http = client_as(&stack.token("0", &["admin"]));

    let printers: Value = http
        .get(format!("{}/printers", stack.management_url))
        .answer_json()
        .await;
    assert_eq!(
        printers[1],
        json!({"id": 2, "url": sim.url, "enabled": true})
    );

    let image = add_image(
        &http,
        &stack.management_url,
        1,
        &format!("{}/cat.jpg", host.url),
    )
    .await;
    let ready = settled_image(&http, &stack.management_url, 1, &image["id"]).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    let res = http
        .post(format!("{}/print/jobs", stack.print_url))
        .json(&json!({"user_id": 1, "file_id": image["id"], "copies": 2, "printer_id": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let job: Value = res.json().await.unwrap();
    assert_eq!(job["printer_id"], 2);
    let id = job["id"].as_str().unwrap();
    job_reaches(&http, &stack, id, "completed").await;

    // What the printer spooled: one document, the user's very bytes (not printed
    // twice, not converted), named after the job's correlation id.
    let spooled = eventually("the printer to spool the document", PATIENCE, || async {
        let files: Vec<_> = std::fs::read_dir(&sim.spool_dir)
            .ok()?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.extension()
                    .is_some_and(|ext| ext == "jpg" || ext == "jpeg")
            })
            .collect();
        (!files.is_empty()).then_some(files)
    })
    .await;
    assert_eq!(spooled.len(), 1, "{spooled:?}");
    assert_eq!(std::fs::read(&spooled[0]).unwrap(), jpeg, "byte for byte");

    // The gateway's own record of it, as reconciliation would ask.
    let db = tokio_postgres::connect(&stack.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(db.1);
    let job_id = uuid::Uuid::parse_str(id).unwrap();
    let row =
        db.0.query_one(
            "SELECT correlation_id, printer_url FROM print_jobs WHERE id = $1",
            &[&job_id],
        )
        .await
        .unwrap();
    let (correlation_id, printer_url): (uuid::Uuid, String) = (row.get(0), row.get(1));
    assert_eq!(printer_url, sim.url);
    let status: Value = http
        .get(format!("{printer_url}/jobs/{correlation_id}"))
        .answer_json()
        .await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["printed"], 1);
    assert_eq!(status["image_bytes"], jpeg.len());
    assert_eq!(
        status["image_sha256"],
        pixpress_testkit::images::sha256_hex(&jpeg)
    );
    stack.stop().await;
}
