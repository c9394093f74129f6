//! `/docs`: the service's OpenAPI document as a page to read, rendered in the browser
//! by Redoc from `/openapi.json`. Redoc's bundle is compiled into the binary (see
//! `crates/kit/assets/redoc/README.md`) and served at `/docs/redoc.standalone.js`,
//! so the page needs no network: behind a firewall, on a laptop on a plane, in CI.
//!
//! It only renders the document; it sends no request to the API itself (no "try it").

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::problem::resource;

/// Redoc 2.5.4's standalone bundle (MIT, © Rebilly, Inc.).
const REDOC_JS: &[u8] = include_bytes!("../assets/redoc/redoc.standalone.js");
/// Where the page loads the bundle from; its name carries the version, so the bundle
/// may be cached for good.
pub const REDOC_PATH: &str = "/docs/redoc-2.5.4.standalone.js";

/// The page for a service whose document is titled `title`.
pub fn page(title: &str) -> String {
    let title = escape(title);
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — API</title>
<style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<redoc spec-url="/openapi.json" hide-download-button="false"></redoc>
<script src="{REDOC_PATH}"></script>
</body>
</html>
"#
    )
}

/// Minimal HTML escaping for the title.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Mounts `/docs` (the page) and the Redoc bundle.
pub fn configure(cfg: &mut web::ServiceConfig, page: std::sync::Arc<String>) {
    cfg.service(resource("/docs").route(web::get().to(move || {
        let page = std::sync::Arc::clone(&page);
        async move {
            HttpResponse::Ok()
                .content_type("text/html; charset=utf-8")
                .insert_header((header::CACHE_CONTROL, "no-cache"))
                .body(page.as_str().to_owned())
        }
    })))
    .service(resource(REDOC_PATH).route(web::get().to(|| async {
        HttpResponse::Ok()
            .content_type("text/javascript; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
            .body(REDOC_JS)
    })));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_the_bundle_and_the_document_and_escapes_the_title() {
        let html = page("a <b> & \"c\"");
        assert!(html.contains("<title>a &lt;b&gt; &amp; &quot;c&quot; — API</title>"));
        assert!(html.contains(r#"spec-url="/openapi.json""#));
        assert!(html.contains(REDOC_PATH));
        assert!(REDOC_JS.len() > 1_000_000, "the bundle is compiled in");
    }
}
