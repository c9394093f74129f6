//! `/health` (liveness), `/ready` (readiness: every named check passes) and the
//! shared part of every service's OpenAPI document.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use pixpress_domain::Problem;
use serde::Serialize;
use utoipa::OpenApi;

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
    pub fn with_check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks
            .push((name, Arc::new(move || Box::pin(check()) as Pin<Box<_>>)));
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
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Status),
        (status = 503, description = "A dependency is unusable", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn ready(readiness: web::Data<Readiness>) -> Result<HttpResponse, ApiError> {
    match readiness.run().await {
        Ok(()) => Ok(HttpResponse::Ok().json(Status { status: "ready" })),
        Err(failures) => {
            // The reasons name our own dependencies, not user data: useful to operators.
            log::warn!("not ready: {}", failures.join("; "));
            Err(ApiError::unavailable(format!(
                "not ready: {}",
                failures.join("; ")
            )))
        }
    }
}

#[derive(OpenApi)]
#[openapi(paths(health, ready), components(schemas(Problem, Status)))]
struct OperationsApi;

/// The service's document with the operational routes (`/health`, `/ready`,
/// `/metrics`, `/openapi.json`) merged in.
pub fn openapi_document(
    title: &str,
    mut service: utoipa::openapi::OpenApi,
) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
    use utoipa::openapi::{ContentBuilder, ResponseBuilder};

    service.merge(OperationsApi::openapi());
    // End-user routes declare `security(("bearer" = []))`; this is the scheme.
    let components = service.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        utoipa::openapi::security::SecurityScheme::Http(
            utoipa::openapi::security::HttpBuilder::new()
                .scheme(utoipa::openapi::security::HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    service.info.title = title.to_owned();
    service.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let text = |description: &str, media: &str| {
        OperationBuilder::new()
            .tag("operations")
            .response(
                "200",
                ResponseBuilder::new()
                    .description(description)
                    .content(media, ContentBuilder::new().build())
                    .build(),
            )
            .build()
    };
    service.paths.paths.insert(
        "/metrics".to_owned(),
        PathItem::new(HttpMethod::Get, text("Prometheus metrics", "text/plain")),
    );
    service.paths.paths.insert(
        "/openapi.json".to_owned(),
        PathItem::new(HttpMethod::Get, text("This document", "application/json")),
    );
    service
}

/// Mounts `/health`, `/ready` and `/openapi.json` (`/metrics` is served by the
/// metrics middleware).
pub fn configure(cfg: &mut web::ServiceConfig, readiness: Readiness, openapi_json: Arc<String>) {
    cfg.app_data(web::Data::new(readiness))
        .service(resource("/health").route(web::get().to(health)))
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
