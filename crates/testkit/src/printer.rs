//! What a printer (printer-sim) says about the jobs it was sent, and an image host
//! for the jobs tests send straight to a printer: a printer fetches every job's
//! `image_url`, so a URL nothing serves fails the job (`image_unreachable`).

use pixpress_domain::printer::PrintedJob;

use crate::fixture::{Fixture, Reply};
use crate::http::client;

/// Every job the printer at `printer_url` received, with how often it printed each.
pub async fn printed(printer_url: &str) -> Vec<PrintedJob> {
    client()
        .get(format!("{printer_url}/jobs"))
        .send()
        .await
        .expect("GET /jobs on the printer")
        .json()
        .await
        .expect("the printer's job list")
}

/// A small real JPEG (64×48, red and blue halves): what tests give printers to print.
pub fn photo() -> Vec<u8> {
    crate::images::sample_jpeg().to_vec()
}

/// A host answering every `GET` (any path, e.g. `{url}/photo.jpg`) with `image` as
/// `image/jpeg`, recording each request.
pub fn image_host(image: Vec<u8>) -> Fixture {
    Fixture::start(move |_| Reply::bytes(200, "image/jpeg", image.clone()))
}
