//! `/health` (liveness), `/ready` (readiness: every named check passes) and the
//! shared part of every service's OpenAPI document: the operational routes, the
//! bearer scheme, and the `Allow` header 405s answer with.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use pixpress_domain::Problem;
use serde::Serialize;
use utoipa::OpenApi;

use crate::problem::{resource, AllowedMethods};
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
// A service whose `Readiness` has checks lists this operation in its own document (it
// can answer 503); `openapi_document` gives the others a 200-only `/ready`.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Status),
        (status = 503, description = "A dependency is unusable (named in `detail`)", body = Problem,
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
#[openapi(paths(health), components(schemas(Problem, Status)))]
struct OperationsApi;

/// The service's document with the operational routes (`/health`, `/ready`,
/// `/metrics`, `/openapi.json`) and the `bearer` security scheme merged in.
pub fn openapi_document(
    title: &str,
    mut service: utoipa::openapi::OpenApi,
) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, Schema};

    service.merge(OperationsApi::openapi());
    // End-user routes declare `security(("bearer" = []))`; this is the scheme.
    let components = service.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "A JWT whose `sub` is the user id; `roles` may hold `admin` (acts for \
                     any user) or `service` (service-to-service calls)",
                ))
                .build(),
        ),
    );
    service.info.title = title.to_owned();
    service.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let ok = |id: &str, summary: &str, media: &str, schema: RefOr<Schema>| {
        OperationBuilder::new()
            .tag("operations")
            .operation_id(Some(id))
            .summary(Some(summary))
            .response(
                "200",
                ResponseBuilder::new()
                    .description(summary)
                    .content(media, ContentBuilder::new().schema(Some(schema)).build())
                    .build(),
            )
            .build()
    };
    let paths = &mut service.paths.paths;
    if !paths.contains_key("/ready") {
        // No readiness checks: ready whenever it serves.
        paths.insert(
            "/ready".to_owned(),
            PathItem::new(
                HttpMethod::Get,
                ok(
                    "ready",
                    "Ready to serve (this service has no dependency to wait for)",
                    "application/json",
                    Ref::from_schema_name("Status").into(),
                ),
            ),
        );
    }
    paths.insert(
        "/metrics".to_owned(),
        PathItem::new(
            HttpMethod::Get,
            ok(
                "metrics",
                "Prometheus metrics (text exposition format)",
                "text/plain",
                ObjectBuilder::new().schema_type(Type::String).into(),
            ),
        ),
    );
    paths.insert(
        "/openapi.json".to_owned(),
        PathItem::new(
            HttpMethod::Get,
            ok(
                "openapi",
                "This OpenAPI document",
                "application/json",
                ObjectBuilder::new().schema_type(Type::Object).into(),
            ),
        ),
    );
    document_request_ids(&mut service);
    service
}

/// Every response carries `X-Request-Id` (the kit's request-id middleware): documented
/// on every response. The request header it may come from is described there rather
/// than as a parameter of every operation (it is never required, never refused).
fn document_request_ids(service: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::RefOr;

    let header = HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[A-Za-z0-9._:-]{1,128}$")),
        )
        .description(Some(
            "The request's id: the client's own `X-Request-Id` when it is 1 to 128 of \
             `A-Z a-z 0-9 - _ . :`, else a generated one. Every log line and outgoing call \
             about the request carries it.",
        ))
        .build();
    for item in service.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            for response in operation.responses.responses.values_mut() {
                if let RefOr::T(response) = response {
                    response
                        .headers
                        .insert("X-Request-Id".to_owned(), header.clone());
                }
            }
        }
    }
}

/// Mounts `/health`, `/ready`, `/metrics` and `/openapi.json`, and gives 405s the
/// methods the document lists for their route.
pub fn configure(cfg: &mut web::ServiceConfig, readiness: Readiness, openapi_json: Arc<String>) {
    let allowed = serde_json::from_str(&openapi_json)
        .map(|document| AllowedMethods::from_openapi(&document))
        .unwrap_or_default();
    cfg.app_data(web::Data::new(readiness))
        .app_data(web::Data::new(allowed))
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
