//! `GET /notifications/stream`: Server-Sent Events, one `data:` JSON line per
//! notification, event name = the notification type. When a search key is configured it
//! is required, as `Authorization: Bearer <key>` or `?key=<key>` (browsers' EventSource
//! cannot set headers).
//!
//! At most `notifications.max_stream_subscribers` streams are open at once; one more
//! gets 503 with `Retry-After`. Each stream holds
//! a receiver of the notifier's bounded channel: a subscriber that falls behind gets a
//! `lagged` event, not an ever-growing backlog.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{Stream, StreamExt};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::Notifier;

/// `shutdown` ends open streams, so a graceful shutdown does not wait on subscribers.
pub fn router(notifier: Notifier, shutdown: CancellationToken) -> Router {
    let places = Arc::new(Semaphore::new(notifier.settings().max_stream_subscribers));
    Router::new()
        .route("/notifications/stream", get(stream))
        .with_state(StreamState {
            notifier,
            shutdown,
            places,
        })
}

#[derive(Clone)]
struct StreamState {
    notifier: Notifier,
    shutdown: CancellationToken,
    /// One per open stream.
    places: Arc<Semaphore>,
}

#[derive(serde::Deserialize)]
struct KeyParam {
    key: Option<String>,
}

async fn stream(
    State(state): State<StreamState>,
    headers: HeaderMap,
    Query(param): Query<KeyParam>,
) -> Response {
    let notifier = state.notifier;
    let expected = notifier.inner.stream_key.expose();
    if !expected.is_empty() {
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string)
            .or(param.key)
            .unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            return (StatusCode::UNAUTHORIZED, "a valid search key is required").into_response();
        }
    }
    let Ok(place) = state.places.clone().try_acquire_owned() else {
        let mut response = (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "error": "too_many_subscribers",
                "message": "this instance has as many notification streams open as it allows; retry later",
            })),
        )
            .into_response();
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("5"),
        );
        return response;
    };
    let until_shutdown = state.shutdown.cancelled_owned();
    // The place goes with the stream: it is released when the stream ends or the
    // subscriber disconnects.
    let events = events(notifier).map(move |event| {
        let _held = &place;
        event
    });
    Sse::new(events.take_until(until_shutdown))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn events(notifier: Notifier) -> impl Stream<Item = Result<Event, Infallible>> {
    let receiver = notifier.subscribe();
    futures::stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok(notification) => Event::default()
                .event(notification.kind.clone())
                .json_data(&notification)
                .unwrap_or_else(|_| Event::default().comment("unserializable notification")),
            Err(RecvError::Lagged(missed)) => {
                Event::default().event("lagged").data(missed.to_string())
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), receiver))
    })
}
