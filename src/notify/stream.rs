//! `GET /notifications/stream`: Server-Sent Events, one `data:` JSON line per
//! notification, event name = the notification type. When a search key is configured it
//! is required, as `Authorization: Bearer <key>` or `?key=<key>` (browsers' EventSource
//! cannot set headers).

use std::convert::Infallible;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{Stream, StreamExt};
use subtle::ConstantTimeEq;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::Notifier;

/// `shutdown` ends open streams, so a graceful shutdown does not wait on subscribers.
pub fn router(notifier: Notifier, shutdown: CancellationToken) -> Router {
    Router::new()
        .route("/notifications/stream", get(stream))
        .with_state(StreamState { notifier, shutdown })
}

#[derive(Clone)]
struct StreamState {
    notifier: Notifier,
    shutdown: CancellationToken,
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
    let until_shutdown = state.shutdown.cancelled_owned();
    Sse::new(events(notifier).take_until(until_shutdown))
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
