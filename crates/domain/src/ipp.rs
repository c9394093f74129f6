//! What ipp-gateway says about the IPP printers it drives (`GET /printers`,
//! DESIGN.md §12). The jobs it takes and reports are the printer protocol's own
//! types ([`crate::printer`]); only the printer list is the gateway's.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One configured printer, as the gateway last heard from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IppPrinter {
    /// The name print-service addresses it by: `{gateway}/printers/{name}`.
    pub name: String,
    /// Its IPP URI (`ipp://…` or `ipps://…`).
    pub uri: String,
    /// Whether it answered Get-Printer-Attributes just now.
    pub reachable: bool,
    /// IPP `printer-state`: `idle`, `processing` or `stopped`; `null` when unreachable.
    #[schema(required = true)]
    pub printer_state: Option<String>,
    /// IPP `printer-state-reasons` (`none`, `media-empty`, `paused`…).
    pub state_reasons: Vec<String>,
    /// IPP `printer-is-accepting-jobs`; `null` when unreachable or not reported.
    #[schema(required = true)]
    pub accepting_jobs: Option<bool>,
    /// IPP `document-format-supported`: the MIME types it takes.
    pub document_formats: Vec<String>,
    /// Why it is unreachable, when it is.
    #[schema(required = true)]
    pub error: Option<String>,
}
