//! The admin JSON API (mounted under `/api`, bearer token required; routes in the
//! module docs of [`super`]).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::actions::{self, ResyncKind};
use super::params::{Params, parse_id};
use super::store::{self, EventFilter, JOB_STATES, JobFilter};
use super::{AdminError, AdminState, auth};
use crate::mirror::removals;
/// `limit` of a listing when none is given (at most `admin.max_page_size`).
const DEFAULT_LIMIT: i64 = 50;
/// Largest request body (only `POST /api/resync` reads one, a few dozen bytes).
const MAX_BODY: usize = 64 * 1024;

type ApiResult = Result<Response, AdminError>;

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/merchants", get(list_merchants))
        .route("/merchants/{id}", get(show_merchant))
        .route("/merchants/{id}/removals", get(show_removals))
        .route("/merchants/{id}/removals/confirm", post(confirm_removals))
        .route("/merchants/{id}/removals/discard", post(discard_removals))
        .route("/resync", post(resync))
        .route("/reindex", post(reindex))
        .route("/jobs", get(list_jobs))
        .route("/jobs/{id}", get(show_job))
        .route("/jobs/{id}/retry", post(retry_job))
        .route("/events", get(list_events))
        .route("/events/{id}", get(show_event))
        .route("/events/{id}/replay", post(replay_event))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_bearer,
        ))
        .with_state(state)
}

async fn method_not_allowed() -> Response {
    let body = json!({ "error": "method_not_allowed", "message": "this admin route does not take that method" });
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

async fn not_found() -> AdminError {
    AdminError::NotFound("no such admin route; see `catalog-mirror admin --help`".into())
}

fn path_id(path: Result<Path<String>, PathRejection>, what: &str) -> Result<i64, AdminError> {
    match path {
        Ok(Path(text)) => parse_id(&text, what),
        Err(rejection) => Err(AdminError::bad_request(format!("{what}: {rejection}"))),
    }
}

async fn list_merchants(State(state): State<AdminState>, RawQuery(query): RawQuery) -> ApiResult {
    Params::parse(query.as_deref(), &[])?;
    let applied = state.applied_change_no();
    let mut merchants = store::merchants(&state.pool, None, applied).await?;
    state.attach_progress(&mut merchants);
    Ok(Json(json!({
        "merchants": merchants,
        "index": { "reported": state.index.is_some(), "applied_change_no": applied },
    }))
    .into_response())
}

async fn show_merchant(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let id = path_id(path, "merchant id")?;
    let params = Params::parse(query.as_deref(), &["runs", "events"])?;
    let max = state.max_page_size;
    let runs_limit = limit_of(&params, "runs", DEFAULT_LIMIT.min(max), max)?;
    let events_limit = limit_of(&params, "events", 20.min(max), max)?;
    let mut merchants = store::merchants(&state.pool, Some(id), state.applied_change_no()).await?;
    state.attach_progress(&mut merchants);
    let merchant = merchants
        .pop()
        .ok_or_else(|| AdminError::NotFound(format!("no merchant {id}")))?;
    let runs = store::runs_of_merchant(&state.pool, id, runs_limit).await?;
    let events = store::events(
        &state.pool,
        &EventFilter {
            merchant_id: Some(id),
            limit: events_limit,
            ..Default::default()
        },
    )
    .await?;
    let jobs = store::jobs(
        &state.pool,
        &JobFilter {
            merchant_id: Some(id),
            limit: 20,
            ..Default::default()
        },
    )
    .await?;
    let held_removals = removals::held(&state.pool, id).await?;
    Ok(Json(json!({
        "merchant": merchant,
        "held_removals": held_removals,
        "runs": runs,
        "events": events,
        "jobs": jobs,
    }))
    .into_response())
}

fn no_held_removals(id: i64) -> AdminError {
    AdminError::NotFound(format!("merchant {id} has no held removals"))
}

/// `GET /api/merchants/{id}/removals`: the removals a complete pass held, if any.
async fn show_removals(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = path_id(path, "merchant id")?;
    let held = removals::held(&state.pool, id)
        .await?
        .ok_or_else(|| no_held_removals(id))?;
    Ok(Json(json!({ "held_removals": held })).into_response())
}

/// `POST /api/merchants/{id}/removals/confirm`: apply the held removals.
async fn confirm_removals(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = path_id(path, "merchant id")?;
    let removed = actions::confirm_removals(&state, id)
        .await?
        .ok_or_else(|| no_held_removals(id))?;
    Ok(Json(json!({ "merchant_id": id, "confirmed": true, "removed": removed })).into_response())
}

/// `POST /api/merchants/{id}/removals/discard`: drop the held removals, remove nothing.
async fn discard_removals(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = path_id(path, "merchant id")?;
    if !actions::discard_removals(&state, id).await? {
        return Err(no_held_removals(id));
    }
    Ok(Json(json!({ "merchant_id": id, "discarded": true, "removed": 0 })).into_response())
}

fn limit_of(params: &Params, name: &str, default: i64, max: i64) -> Result<i64, AdminError> {
    match params.text(name) {
        None => Ok(default),
        Some(value) => match value.parse::<i64>() {
            Ok(limit) if (1..=max).contains(&limit) => Ok(limit),
            _ => Err(AdminError::bad_request(format!(
                "{name} must be a whole number from 1 to {max}, not {value:?}"
            ))),
        },
    }
}

/// `POST /api/resync` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResyncRequest {
    merchant_id: Option<i64>,
    #[serde(default)]
    all: bool,
    kind: Option<String>,
}

async fn resync(State(state): State<AdminState>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return Ok(crate::web::last_on_connection(
                AdminError::bad_request(format!("cannot read the body: {rejection}"))
                    .into_response(),
            ));
        }
    };
    let request: ResyncRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ResyncRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|err| AdminError::bad_request(format!("invalid JSON body: {err}")))?
    };
    let merchant = match (request.merchant_id, request.all) {
        (Some(_), true) => {
            return Err(AdminError::bad_request(
                "give either merchant_id or \"all\": true, not both",
            ));
        }
        (None, false) => {
            return Err(AdminError::bad_request(
                "say which merchants: {\"merchant_id\": ID} or {\"all\": true}",
            ));
        }
        (Some(id), false) if id <= 0 => {
            return Err(AdminError::bad_request(format!(
                "merchant_id must be positive, not {id}"
            )));
        }
        (merchant, _) => merchant,
    };
    let kind = ResyncKind::parse(request.kind.as_deref().unwrap_or("both"))?;
    let enqueued = actions::resync(&state, merchant, kind).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "count": enqueued.len(), "enqueued": enqueued })),
    )
        .into_response())
}

async fn reindex(State(state): State<AdminState>) -> ApiResult {
    let Some(index) = &state.index else {
        return Err(AdminError::Unavailable(
            "reindex is not available: the search index is not running in this daemon".into(),
        ));
    };
    match index.request_rebuild() {
        Ok(message) => {
            tracing::info!("index rebuild requested by an operator");
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "status": "started", "message": message })),
            )
                .into_response())
        }
        Err(reason) => Err(AdminError::Conflict(reason)),
    }
}

async fn list_jobs(State(state): State<AdminState>, RawQuery(query): RawQuery) -> ApiResult {
    let params = Params::parse(query.as_deref(), &["state", "merchant", "kind", "limit"])?;
    let mut states: Vec<&str> = JOB_STATES.to_vec();
    states.push("all");
    let filter = JobFilter {
        state: params
            .choice("state", &states)?
            .filter(|state| state != "all"),
        merchant_id: params.id("merchant")?,
        kind: params.choice("kind", store::JOB_KINDS)?,
        limit: params.limit(DEFAULT_LIMIT.min(state.max_page_size), state.max_page_size)?,
    };
    let jobs = store::jobs(&state.pool, &filter).await?;
    let counts = store::job_counts(&state.pool).await?;
    Ok(Json(json!({ "counts": counts, "jobs": jobs })).into_response())
}

async fn show_job(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = path_id(path, "job id")?;
    let job = crate::jobs::Queue::new(state.pool.clone())
        .get(id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no job {id}")))?;
    Ok(Json(json!({ "job": job })).into_response())
}

async fn retry_job(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = path_id(path, "job id")?;
    let job = actions::retry(&state, id).await?;
    Ok(Json(json!({ "job": job })).into_response())
}

/// Every status an event can have (`webhook_events.status`).
pub const EVENT_STATUSES: &[&str] = &[
    "processed",
    "unprocessable",
    "ignored",
    "pending",
    "folded",
    "applied",
];

async fn list_events(State(state): State<AdminState>, RawQuery(query): RawQuery) -> ApiResult {
    let params = Params::parse(
        query.as_deref(),
        &["merchant", "topic", "status", "since", "before", "limit"],
    )?;
    let topic = params.text("topic").map(str::to_ascii_uppercase);
    if let Some(topic) = &topic
        && (topic.len() > 256
            || !topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.'))
    {
        return Err(AdminError::bad_request(format!(
            "topic must be a Violet topic such as PRODUCT_SYNC_COMPLETED, not {topic:?}"
        )));
    }
    let filter = EventFilter {
        merchant_id: params.id("merchant")?,
        topic,
        status: params.choice("status", EVENT_STATUSES)?,
        since: params.since("since", chrono::Utc::now())?,
        before_id: params.id("before")?,
        limit: params.limit(DEFAULT_LIMIT.min(state.max_page_size), state.max_page_size)?,
    };
    let events = store::events(&state.pool, &filter).await?;
    Ok(Json(json!({ "events": events })).into_response())
}

async fn show_event(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = path_id(path, "event id")?;
    let event = store::event(&state.pool, id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no event {id}")))?;
    let body = serde_json::from_slice::<Value>(&event.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&event.body).into_owned()));
    Ok(Json(json!({ "event": event.row, "body": body })).into_response())
}

async fn replay_event(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = path_id(path, "event id")?;
    let replayed = actions::replay(&state, id).await?;
    Ok(Json(json!({
        "previous_status": replayed.previous_status,
        "status": replayed.event.status,
        "event": replayed.event,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::EventStatus;

    #[test]
    fn every_planner_status_can_be_filtered_on() {
        for status in [
            EventStatus::Processed,
            EventStatus::Unprocessable,
            EventStatus::Ignored,
            EventStatus::Pending,
        ] {
            assert!(
                EVENT_STATUSES.contains(&status.as_str()),
                "{}",
                status.as_str()
            );
        }
    }
}
