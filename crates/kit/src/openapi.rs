//! The shared part of every service's OpenAPI document: the operational routes
//! (`/health`, `/ready`, `/metrics`, `/openapi.json`), the bearer scheme, the
//! `X-Request-Id` header on every response, the problem+json body of every error
//! response, and the `Allow` header 405s answer with, read from the document.
//!
//! Routes declare an error as `(status = 404, description = "No such job")`: the
//! body (`Problem`, `application/problem+json`), `WWW-Authenticate` on 401s and
//! `Retry-After` on 429s are added here, once, rather than on every route.

use std::collections::HashMap;

use pixpress_domain::problem::PROBLEM_CONTENT_TYPE;
use pixpress_domain::Problem;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder, Schema};
use utoipa::OpenApi as _;

use crate::health::{self, Status};

#[derive(utoipa::OpenApi)]
#[openapi(paths(health::health), components(schemas(Problem, Status)))]
struct OperationsApi;

/// The service's document with the operational routes and the shared parts merged in.
pub fn document(title: &str, mut service: OpenApi) -> OpenApi {
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
    add_operational_routes(&mut service);
    for operation in operations_mut(&mut service) {
        document_problems(operation);
        document_request_id(operation);
    }
    service
}

fn add_operational_routes(service: &mut OpenApi) {
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
    // A service whose readiness has checks lists `health::ready` (it can answer
    // 503); the others are ready whenever they serve.
    paths.entry("/ready".to_owned()).or_insert_with(|| {
        PathItem::new(
            HttpMethod::Get,
            ok(
                "ready",
                "Ready to serve (this service has no dependency to wait for)",
                "application/json",
                Ref::from_schema_name("Status").into(),
            ),
        )
    });
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
    paths.insert(
        "/docs".to_owned(),
        PathItem::new(
            HttpMethod::Get,
            ok(
                "docs",
                "This document as a page to read (Redoc, served by this service)",
                "text/html",
                ObjectBuilder::new().schema_type(Type::String).into(),
            ),
        ),
    );
    paths.insert(
        crate::docs::REDOC_PATH.to_owned(),
        PathItem::new(
            HttpMethod::Get,
            ok(
                "docs_bundle",
                "The Redoc bundle the docs page runs",
                "text/javascript",
                ObjectBuilder::new().schema_type(Type::String).into(),
            ),
        ),
    );
}

/// Every operation of the document, with its HTTP method.
fn operations(item: &PathItem) -> impl Iterator<Item = (&'static str, &Operation)> {
    [
        ("GET", &item.get),
        ("PUT", &item.put),
        ("POST", &item.post),
        ("DELETE", &item.delete),
        ("OPTIONS", &item.options),
        ("HEAD", &item.head),
        ("PATCH", &item.patch),
        ("TRACE", &item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_ref().map(|op| (method, op)))
}

fn operations_mut(service: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    service.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
    })
}

fn string_header(description: &str) -> Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(description))
        .build()
}

/// Error responses (4xx, 5xx) without a body get the problem+json body; 401s of
/// bearer-secured operations get `WWW-Authenticate` and 429s `Retry-After`.
fn document_problems(operation: &mut Operation) {
    let bearer = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    for (status, response) in operation.responses.responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if !(status.starts_with('4') || status.starts_with('5')) {
            continue;
        }
        if response.content.is_empty() {
            response.content.insert(
                PROBLEM_CONTENT_TYPE.to_owned(),
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            );
        }
        let header = match status.as_str() {
            "401" if bearer => Some(("WWW-Authenticate", "`Bearer`")),
            "429" => Some(("Retry-After", "Seconds to wait before retrying")),
            _ => None,
        };
        if let Some((name, description)) = header {
            response
                .headers
                .entry(name.to_owned())
                .or_insert_with(|| string_header(description));
        }
    }
}

/// Every response carries `X-Request-Id` (the kit's request-id middleware). The
/// request header it may come from is described here rather than as a parameter of
/// every operation (it is never required, never refused).
fn document_request_id(operation: &mut Operation) {
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
    for response in operation.responses.responses.values_mut() {
        if let RefOr::T(response) = response {
            response
                .headers
                .insert("X-Request-Id".to_owned(), header.clone());
        }
    }
}

/// The methods each route pattern serves, read from the service's OpenAPI document:
/// what a 405 names in its `Allow` header (RFC 9110 §15.5.6). App data.
#[derive(Debug, Clone, Default)]
pub struct AllowedMethods {
    by_pattern: HashMap<String, String>,
}

impl AllowedMethods {
    /// The operations of a document, by path template (`/print/jobs/{id}`, the same
    /// spelling as actix's route patterns).
    pub fn from_openapi(document: &OpenApi) -> Self {
        let by_pattern = document
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods: Vec<&str> = operations(item).map(|(method, _)| method).collect();
                (path.clone(), methods.join(", "))
            })
            .filter(|(_, methods)| !methods.is_empty())
            .collect();
        Self { by_pattern }
    }

    /// The `Allow` value of a route pattern, when the document has the route.
    pub fn for_pattern(&self, pattern: &str) -> Option<&str> {
        self.by_pattern.get(pattern).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::path::PathsBuilder;
    use utoipa::openapi::security::SecurityRequirement;
    use utoipa::openapi::OpenApiBuilder;

    fn operation(statuses: &[&str]) -> Operation {
        let mut builder = OperationBuilder::new();
        for status in statuses {
            builder = builder.response(*status, ResponseBuilder::new().description("x").build());
        }
        builder.build()
    }

    fn service() -> OpenApi {
        let mut jobs = PathItem::new(HttpMethod::Get, operation(&["200"]));
        let mut post = operation(&["201", "401", "429"]);
        post.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
        jobs.post = Some(post);
        OpenApiBuilder::new()
            .paths(PathsBuilder::new().path("/print/jobs", jobs).path(
                "/print/jobs/{id}",
                PathItem::new(HttpMethod::Get, operation(&["200", "404"])),
            ))
            .build()
    }

    #[test]
    fn allow_lists_the_documented_methods_of_each_route() {
        let allowed = AllowedMethods::from_openapi(&document("test", service()));
        assert_eq!(allowed.for_pattern("/print/jobs"), Some("GET, POST"));
        assert_eq!(allowed.for_pattern("/print/jobs/{id}"), Some("GET"));
        assert_eq!(allowed.for_pattern("/health"), Some("GET"));
        assert_eq!(allowed.for_pattern("/unknown"), None);
    }

    #[test]
    fn error_responses_get_the_problem_body_and_their_headers() {
        let json = serde_json::to_value(document("test", service())).unwrap();
        let post = &json["paths"]["/print/jobs"]["post"]["responses"];
        let schema = &post["429"]["content"][PROBLEM_CONTENT_TYPE]["schema"]["$ref"];
        assert_eq!(schema, "#/components/schemas/Problem");
        assert!(post["429"]["headers"]["Retry-After"].is_object());
        assert!(post["401"]["headers"]["WWW-Authenticate"].is_object());
        assert!(
            post["201"]["content"].is_null(),
            "success bodies are the route's own"
        );
        let get = &json["paths"]["/print/jobs/{id}"]["get"]["responses"];
        assert!(get["401"].is_null());
        assert!(get["404"]["content"][PROBLEM_CONTENT_TYPE].is_object());
        assert!(get["200"]["headers"]["X-Request-Id"].is_object());
    }
}
