//! `/print/jobs…`: intake, status, listing and cancellation of print jobs, and the
//! operator's retry of a failed one.
//!
//! Intake (DESIGN.md §3): validate → take a backend permit (429 if none) → ask the
//! management API → insert the queued job → 201 only after the commit. The permit
//! covers the lookup; the insert then takes its pool connection in arrival order
//! (`kit::db::CheckoutLine`), so under overload no admitted request starves past the
//! checkout timeout. Every piece of database work runs within the database deadline
//! (`Database::within`), so a frozen database answers 503 rather than hanging.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use pixpress_domain::job::JobListQuery;
use pixpress_domain::{CreatePrintJob, JobState, PrintJob, PrintJobList};
use pixpress_kit::auth::Caller;
use pixpress_kit::json::ValidJson;
use pixpress_kit::problem::resource;
use pixpress_kit::query::ValidQuery;
use pixpress_kit::request_id;
use uuid::Uuid;

use crate::error::PrintError;
use crate::print_jobs::{self, CancelOutcome, JobFilter, NewJob, RetryOutcome};
use crate::State;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
const DEFAULT_PAGE: i64 = 20;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/print/jobs")
            .route(web::post().to(create_job))
            .route(web::get().to(list_jobs)),
    )
    .service(resource("/print/jobs/{id}").route(web::get().to(get_job)))
    .service(resource("/print/jobs/{id}/cancel").route(web::post().to(cancel_job)))
    .service(resource("/print/jobs/{id}/retry").route(web::post().to(retry_job)));
}

fn created(job: &PrintJob, replayed: bool) -> HttpResponse {
    let mut res = HttpResponse::Created();
    res.insert_header((header::LOCATION, format!("/print/jobs/{}", job.id)));
    if replayed {
        res.insert_header(("idempotent-replayed", "true"));
    }
    res.json(job)
}

/// The optional `Idempotency-Key` header: 1..=255 visible ASCII characters.
fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, PrintError> {
    let Some(value) = req.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(PrintError::BadRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
        ));
    }
    Ok(Some(key.to_owned()))
}

/// The job an earlier request with this key created: the same job if the body is
/// the same, 422 if it is not.
async fn replay(
    state: &State,
    request: &CreatePrintJob,
    key: &str,
) -> Result<Option<PrintJob>, PrintError> {
    let earlier = state
        .db
        .with_connection(async |conn| {
            print_jobs::find_by_idempotency_key(conn, request.user_id, key).await
        })
        .await?;
    match earlier {
        None => Ok(None),
        Some((job, fingerprint)) => {
            let this = NewJob::fingerprint(request);
            if fingerprint == this {
                Ok(Some(job))
            } else {
                Err(PrintError::IdempotencyKeyReused)
            }
        }
    }
}

/// Creates a print job.
#[utoipa::path(post, path = "/print/jobs", security(("bearer" = [])), tag = "jobs",
    request_body = CreatePrintJob,
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$",
        description = "1 to 255 visible ASCII characters. A retry with the same key and body returns \
                       the original job (201, `Idempotent-Replayed: true`) and creates nothing")),
    responses(
        (status = 201, description = "Job queued (committed)", body = PrintJob,
            headers(("Location" = String, description = "The job"),
                ("Idempotent-Replayed" = String, description = "`true` when this is the job an earlier request with the same Idempotency-Key created"))),
        (status = 400, description = "Invalid body (each bad field is named) or Idempotency-Key"),
        (status = 401, description = "Missing, malformed, expired or foreign bearer token"),
        (status = 403, description = "`user_id` is not the token's user, or the file belongs to another user"),
        (status = 404, description = "No such file (`file-not-found`), or no such printer (`printer-not-found`)"),
        (status = 409, description = "The image is not downloaded yet (`file-not-ready`), or the printer chosen is disabled (`printer-disabled`)"),
        (status = 413, description = "Body over 64 KiB"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "Idempotency-Key reused with another body"),
        (status = 429, description = "At capacity (`saturated`: no backend permit free), or this user already holds their share of the permits (`user-share-exceeded`, BACKEND_PERMITS_PER_USER)"),
        (status = 502, description = "The management API answered unexpectedly", headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
        (status = 503, description = "The management API is unreachable, the database is unavailable, or no printer is enabled (`no-printer`)", headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
        (status = 504, description = "The management API did not answer in time", headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    ))]
pub async fn create_job(
    state: web::Data<State>,
    caller: Caller,
    req: HttpRequest,
    body: ValidJson<CreatePrintJob>,
) -> Result<HttpResponse, PrintError> {
    let request = body.into_inner();
    if !caller.may_act_for(request.user_id) {
        return Err(PrintError::NotYourself);
    }
    let key = idempotency_key(&req)?;

    // The permit covers the calls to the management API and is released on every path.
    let permit = state.gate.try_enter(request.user_id)?;
    if let Some(key) = &key {
        if let Some(job) = replay(&state, &request, key).await? {
            return Ok(created(&job, true));
        }
    }
    let lookup = state
        .management
        .lookup(request.user_id, request.file_id, request.printer_id)
        .await?;
    drop(permit);

    let new = NewJob {
        fingerprint: NewJob::fingerprint(&request),
        user_id: request.user_id,
        file_id: request.file_id,
        copies: request.copies,
        printer_id: lookup.printer_id,
        printer_url: lookup.printer_url,
        image_url: lookup.image_url,
        idempotency_key: key.clone(),
        traceparent: request_id::current_traceparent(),
    };
    let inserted = state
        .db
        .within(async {
            let (_turn, conn) = state.insert_line.get(&state.db).await?;
            print_jobs::insert(&*conn, &new).await
        })
        .await?;
    match inserted {
        Some(job) => {
            state.queued.announce();
            state.metrics.transition(None, JobState::Queued);
            log::info!("job {} queued for user {}", job.id, job.user_id);
            Ok(created(&job, false))
        }
        // A concurrent retry with the same key committed first.
        None => {
            let key = key.unwrap_or_default();
            match replay(&state, &request, &key).await? {
                Some(job) => Ok(created(&job, true)),
                None => Err(PrintError::IdempotencyKeyReused),
            }
        }
    }
}

/// One job.
#[utoipa::path(get, path = "/print/jobs/{id}", security(("bearer" = [])), tag = "jobs",
    params(("id" = Uuid, Path, description = "The job")),
    responses(
        (status = 200, description = "The job", body = PrintJob),
        (status = 401, description = "Missing, malformed, expired or foreign bearer token"),
        (status = 404, description = "No such job (or another user's)"),
        (status = 503, description = "The database is unavailable", headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    ))]
pub async fn get_job(
    state: web::Data<State>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, PrintError> {
    let id = id.into_inner();
    let job = state
        .db
        .with_connection(async |conn| print_jobs::get(conn, id).await)
        .await?
        // Another user's job is as absent as a missing one.
        .filter(|job| caller.may_act_for(job.user_id))
        .ok_or(PrintError::JobNotFound)?;
    Ok(HttpResponse::Ok().json(job))
}

/// Jobs, newest first, filtered by user and state, a page at a time.
#[utoipa::path(get, path = "/print/jobs", security(("bearer" = [])), tag = "jobs", params(JobListQuery),
    responses(
        (status = 200, description = "A page of jobs, newest first", body = PrintJobList),
        (status = 400, description = "Bad query parameter or cursor"),
        (status = 401, description = "Missing, malformed, expired or foreign bearer token"),
        (status = 403, description = "`user_id` names another user than the token's"),
        (status = 503, description = "The database is unavailable", headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    ))]
pub async fn list_jobs(
    state: web::Data<State>,
    caller: Caller,
    query: ValidQuery<JobListQuery>,
) -> Result<HttpResponse, PrintError> {
    let mut query = query.into_inner();
    // A user lists their own jobs; asking for someone else's is refused.
    if let Some(only) = caller.restricted_to() {
        if query.user_id.is_some_and(|asked| asked != only) {
            return Err(PrintError::NotYourself);
        }
        query.user_id = Some(only);
    }
    let before = query.cursor;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    let filter = JobFilter {
        user_id: query.user_id,
        state: query.state,
        before,
        // One more than asked tells whether there is a next page.
        limit: limit + 1,
    };
    let mut jobs = state
        .db
        .with_connection(async |conn| print_jobs::list(conn, &filter).await)
        .await?;
    let next_cursor = if jobs.len() as i64 > limit {
        jobs.truncate(limit as usize);
        jobs.last().map(|j| j.id.to_string())
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(PrintJobList { jobs, next_cursor }))
}

/// Cancels a job that is still queued.
#[utoipa::path(post, path = "/print/jobs/{id}/cancel", security(("bearer" = [])), tag = "jobs",
    params(("id" = Uuid, Path, description = "The job")),
    responses(
        (status = 200, description = "Canceled", body = PrintJob),
        (status = 401, description = "Missing, malformed, expired or foreign bearer token"),
        (status = 404, description = "No such job (or another user's)"),
        (status = 409, description = "The job is no longer queued"),
        (status = 503, description = "The database is unavailable", headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    ))]
pub async fn cancel_job(
    state: web::Data<State>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, PrintError> {
    let id = id.into_inner();
    let outcome = state
        .db
        .with_connection(async |conn| {
            let owned = print_jobs::get(conn, id)
                .await?
                .is_some_and(|job| caller.may_act_for(job.user_id));
            if !owned {
                return Ok(CancelOutcome::NotFound);
            }
            print_jobs::cancel(conn, id).await
        })
        .await?;
    match outcome {
        CancelOutcome::Canceled(job) => {
            state
                .metrics
                .transition(Some(JobState::Queued), JobState::Canceled);
            Ok(HttpResponse::Ok().json(job))
        }
        CancelOutcome::NotFound => Err(PrintError::JobNotFound),
        CancelOutcome::NotCancelable(state) => Err(PrintError::NotCancelable(state)),
        CancelOutcome::BeingDispatched => Err(PrintError::BeingDispatched),
    }
}

/// An operator sends a failed job again.
#[utoipa::path(post, path = "/print/jobs/{id}/retry", security(("bearer" = [])), tag = "jobs",
    description = "Admin only. Puts a `failed` job back to `queued` with its attempts reset and \
                   its error cleared, under a new correlation id (its printer prints it afresh; \
                   late reports about the failed attempt are ignored), to the printer it was \
                   placed with. The retry is logged with the admin's subject and the job's \
                   previous error.",
    params(("id" = Uuid, Path, description = "The job")),
    responses(
        (status = 200, description = "Queued again", body = PrintJob),
        (status = 401, description = "Missing, malformed, expired or foreign bearer token"),
        (status = 403, description = "The token has no `admin` role"),
        (status = 404, description = "No such job"),
        (status = 409, description = "The job is not `failed`"),
        (status = 503, description = "The database is unavailable", headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    ))]
pub async fn retry_job(
    state: web::Data<State>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, PrintError> {
    if !caller.is_admin() {
        return Err(PrintError::AdminOnly);
    }
    let id = id.into_inner();
    let traceparent = request_id::current_traceparent();
    let outcome = state
        .db
        .with_connection(async |conn| print_jobs::retry(conn, id, traceparent.as_deref()).await)
        .await?;
    match outcome {
        RetryOutcome::Queued {
            job,
            previous_error,
        } => {
            state.queued.announce();
            state
                .metrics
                .transition(Some(JobState::Failed), JobState::Queued);
            log::info!(
                "audit: {} retried failed job {id} (its error was {:?})",
                caller.subject,
                previous_error.as_deref().unwrap_or("none")
            );
            Ok(HttpResponse::Ok().json(job))
        }
        RetryOutcome::NotFound => Err(PrintError::JobNotFound),
        RetryOutcome::NotFailed(state) => Err(PrintError::NotFailed(state)),
    }
}
