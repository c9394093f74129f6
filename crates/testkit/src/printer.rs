//! What a printer (printer-sim) says about the jobs it was sent.

use pixpress_domain::printer::PrintedJob;

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
