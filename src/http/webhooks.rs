//! `POST /webhooks/violet`: verify the signature over the raw body, store the event
//! durably, answer. Nothing else happens on the request path: storing is the intake
//! writers' ([`crate::intake`]), which answer once the event's batch has committed.
//!
//! At most `webhooks.max_bodies_in_flight` deliveries are read and stored at once, each
//! body at most `webhooks.body_limit_bytes`, so a burst cannot hold more than their
//! product in memory; the others wait [`BODY_WAIT`] for a place, then get 503 with
//! `Retry-After`, which Violet retries.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::config::Secret;
use crate::intake::{IntakeOutcome, Refused};
use crate::lifecycle::{IncomingEvent, Topic};
use crate::violet::signature;

/// Longest event id, topic or entity id accepted.
const MAX_HEADER_LEN: usize = 256;

/// How long a delivery waits for a place among the bodies in flight. Violet gives a
/// delivery 10 s; storing is bounded by the intake writers' batch timeout after this.
pub const BODY_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Admits a delivery to have its body read once one of the places is free (waiting up
/// to [`BODY_WAIT`]), and holds the place until it is answered.
pub async fn one_body_of_many(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let place = tokio::time::timeout(BODY_WAIT, state.webhook_bodies.clone().acquire_owned()).await;
    let Ok(Ok(_place)) = place else {
        tracing::warn!("webhook not read: too many deliveries in flight; asking Violet to retry");
        metrics::counter!("catalog_mirror_webhooks_total", "topic" => "other", "outcome" => "busy")
            .increment(1);
        // The body is left unread: the connection cannot be reused.
        return super::last_on_connection(retry_later(
            "busy",
            "too many deliveries are being received; retry later",
        ));
    };
    next.run(request).await
}

pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return unread_body(&rejection),
    };
    let event = match parse_delivery(&state.webhook_secrets, &headers, &body) {
        Ok(event) => event,
        Err(rejection) => return rejection.into_response(),
    };
    let topic = metric_topic(&event);
    let event_id = event.event_id.clone();
    let stored = store(&state, event).await;
    let outcome = match stored {
        Ok(status) => status,
        Err(Refused::Busy) => "busy",
        Err(Refused::DatabaseDown | Refused::NotStored) => "unavailable",
    };
    metrics::counter!("catalog_mirror_webhooks_total", "topic" => topic, "outcome" => outcome)
        .increment(1);
    match stored {
        Ok(status) => (
            StatusCode::OK,
            Json(json!({ "status": status, "event_id": event_id })),
        )
            .into_response(),
        Err(Refused::Busy) => retry_later(
            "busy",
            "too many deliveries are waiting to be stored; retry later",
        ),
        Err(_) => retry_later("unavailable", "the event could not be stored; retry later"),
    }
}

/// Everything intake does before the database: verifies the signature over the raw
/// body, then reads the headers and the body. Public so the intake benchmark can
/// measure this same work without storage as its baseline.
pub fn parse_delivery(
    secrets: &[Secret],
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<IncomingEvent, Rejection> {
    let hmac = headers.get("x-violet-hmac").and_then(|v| v.to_str().ok());
    if let Err(err) = signature::verify(secrets, body, hmac) {
        metrics::counter!("catalog_mirror_webhook_signature_failures_total").increment(1);
        tracing::warn!(reason = %err, "webhook refused: bad signature");
        return Err(Rejection::Unauthorized(err));
    }
    let event_id = required(headers, "x-violet-event-id")?;
    let topic_name = required(headers, "x-violet-topic")?;
    Ok(IncomingEvent {
        event_id,
        topic: Topic::parse(&topic_name),
        entity_id: optional(headers, "x-violet-entity-id"),
        webhook_id: optional(headers, "x-violet-webhook-id"),
        event_id_source: optional(headers, "x-violet-event-id-source"),
        header_merchant_id: optional(headers, "x-violet-merchant-id")
            .and_then(|id| id.parse().ok()),
        body: serde_json::from_slice(body).ok(),
        raw_body: body.to_vec(),
        topic_name,
    })
}

/// Queues the event for the writers and waits for the commit that holds it; any
/// refusal is a 503 so Violet retries.
async fn store(state: &AppState, event: IncomingEvent) -> Result<&'static str, Refused> {
    match state.intake.store(event).await {
        Ok(IntakeOutcome::Stored(status)) => Ok(status.as_str()),
        Ok(IntakeOutcome::Duplicate) => Ok("duplicate"),
        Err(refused) => {
            match refused {
                Refused::Busy => tracing::warn!(
                    "webhook not stored: the intake queue is full; asking Violet to retry"
                ),
                Refused::DatabaseDown => tracing::warn!(
                    "webhook not stored: database unavailable; asking Violet to retry"
                ),
                // The writer logged why, once for its batch.
                Refused::NotStored => {}
            }
            Err(refused)
        }
    }
}

/// Topic label for metrics: known topics by name, anything else as "other", so a
/// sender cannot create unbounded label values.
fn metric_topic(event: &IncomingEvent) -> String {
    if event.topic == Topic::Other {
        "other".into()
    } else {
        event.topic_name.trim().to_ascii_uppercase()
    }
}

fn optional(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= MAX_HEADER_LEN)
        .map(str::to_string)
}

fn required(headers: &HeaderMap, name: &str) -> Result<String, Rejection> {
    let Some(raw) = headers.get(name) else {
        return Err(Rejection::BadRequest(format!("missing {name} header")));
    };
    match raw.to_str().map(str::trim) {
        Ok(value) if !value.is_empty() && value.len() <= MAX_HEADER_LEN => Ok(value.to_string()),
        _ => Err(Rejection::BadRequest(format!(
            "{name} must be 1 to {MAX_HEADER_LEN} visible ASCII characters"
        ))),
    }
}

/// Why a delivery was refused before storage.
#[derive(Debug)]
pub enum Rejection {
    /// 401: the signature is missing, malformed or wrong.
    Unauthorized(signature::SignatureError),
    /// 400: a required header is missing or unusable.
    BadRequest(String),
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Rejection::Unauthorized(err) => {
                reply(StatusCode::UNAUTHORIZED, "unauthorized", &err.to_string())
            }
            Rejection::BadRequest(message) => {
                reply(StatusCode::BAD_REQUEST, "bad_request", &message)
            }
        }
    }
}

/// A body that could not be read (over `webhooks.body_limit_bytes`, or cut off).
fn unread_body(rejection: &BytesRejection) -> Response {
    let status = rejection.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "payload_too_large"
    } else {
        "bad_request"
    };
    super::last_on_connection(reply(status, code, &rejection.body_text()))
}

/// 503 with `Retry-After`, so Violet delivers again later.
fn retry_later(code: &str, message: &str) -> Response {
    let mut response = reply(StatusCode::SERVICE_UNAVAILABLE, code, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

fn reply(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": code, "message": message }))).into_response()
}
