//! `/health` (liveness), `/ready` (readiness: every named check passes), and the
//! mounting of the operational routes (`/metrics`, `/openapi.json` too). The shared
//! part of every OpenAPI document is `crate::openapi`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::openapi::AllowedMethods;
use crate::problem::resource;
use crate::ApiError;

type CheckFn = dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync;

/// The checks `/ready` runs; each gets [`CHECK_TIMEOUT`] to pass.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Arc<CheckFn>)>,
}

pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a named check, e.g. `("database", move || db.check())`.
    pub fn with_check<F, Fut, E>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        self.checks.push((
            name,
            Arc::new(move || {
                let fut = check();
                Box::pin(async move { fut.await.map_err(|e| e.to_string()) }) as Pin<Box<_>>
            }),
        ));
        self
    }

    /// Adds the "database" check: schema current and a query answered.
    pub fn with_database(self, database: &crate::db::Database) -> Self {
        let database = database.clone();
        self.with_check("database", move || {
            let database = database.clone();
            async move { database.check().await }
        })
    }

    /// Runs every check concurrently; `Err` lists the failing ones.
    pub async fn run(&self) -> Result<(), Vec<String>> {
        let results = futures_util::future::join_all(self.checks.iter().map(|(name, check)| {
            let fut = check();
            async move {
                match tokio::time::timeout(CHECK_TIMEOUT, fut).await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(format!("{name}: {e}")),
                    Err(_) => Some(format!("{name}: no answer within {CHECK_TIMEOUT:?}")),
                }
            }
        }))
        .await;
        let failures: Vec<String> = results.into_iter().flatten().collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures)
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Status {
    pub status: &'static str,
}

/// Liveness: 200 while the process serves.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process serves", body = Status)))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Status { status: "ok" })
}

/// Readiness: 200 when the database and required backends are usable, else 503.
// A service whose `Readiness` has checks lists this operation in its own document (it
// can answer 503); `openapi::document` gives the others a 200-only `/ready`.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Status),
        (status = 503, description = "A dependency is unusable (named in `detail`)"),
    ))]
pub async fn ready(readiness: web::Data<Readiness>) -> Result<HttpResponse, ApiError> {
    match readiness.run().await {
        Ok(()) => Ok(HttpResponse::Ok().json(Status { status: "ready" })),
        Err(failures) => {
            // The reasons name our own dependencies, not user data: useful to operators.
            log::warn!("not ready: {}", failures.join("; "));
            Err(ApiError::new(
                "not-ready",
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {}", failures.join("; ")),
            ))
        }
    }
}

/// Mounts `/health`, `/ready`, `/metrics` and `/openapi.json`, and gives 405s the
/// methods the document lists for their route.
pub fn configure(
    cfg: &mut web::ServiceConfig,
    readiness: Readiness,
    allowed: web::Data<AllowedMethods>,
    openapi_json: Arc<String>,
) {
    cfg.app_data(web::Data::new(readiness))
        .app_data(allowed)
        .service(resource("/health").route(web::get().to(health)))
        // The metrics middleware answers GET /metrics itself, replacing this empty
        // 200; the route is here so that other methods get a 405.
        .service(resource("/metrics").route(web::get().to(HttpResponse::Ok)))
        .service(resource("/ready").route(web::get().to(ready)))
        .service(resource("/openapi.json").route(web::get().to(move || {
            let body = Arc::clone(&openapi_json);
            async move {
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(body.as_str().to_owned())
            }
        })));
}
