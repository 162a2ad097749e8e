//! `/healthz` (the process answers) and `/readyz` (this instance can serve: the
//! database is reachable, the schema is current, and a search index is open and at most
//! `search.ready_max_lag_changes` changes behind the mirror).
//!
//! `/readyz` answers 200 or 503 with what it checked, e.g.
//! `{"status":"not_ready","database":"ok","migrations":"current","index":"lagging",
//! "index_lag_changes":1520,"index_lag_seconds":12.5,"max_lag_changes":1000}`.
//! `index` is `caught_up`, `lagging`, or `opening` (the first build has not finished).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use crate::gauges::lag;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "alive" }))
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let check = tokio::time::timeout(
        state.intake_timeout,
        crate::db::migrations_current(&state.pool),
    )
    .await;
    match check {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return not_ready(json!({ "database": "ok", "migrations": "pending" })),
        Ok(Err(_)) | Err(_) => return not_ready(json!({ "database": "unreachable" })),
    }
    let measured = tokio::time::timeout(
        state.intake_timeout,
        lag::of(&state.pool, &state.search_index),
    )
    .await;
    let Ok(Ok(lag)) = measured else {
        return not_ready(json!({ "database": "unreachable" }));
    };
    let max = state.ready_max_lag_changes;
    let index = match lag.applied {
        None => "opening",
        Some(_) if lag.within(max) => "caught_up",
        Some(_) => "lagging",
    };
    let body = json!({
        "database": "ok",
        "migrations": "current",
        "index": index,
        "index_change_no": lag.applied,
        "index_lag_changes": lag.changes,
        "index_lag_seconds": lag.seconds,
        "max_lag_changes": max,
    });
    if lag.within(max) {
        (StatusCode::OK, Json(with_status("ready", body)))
    } else {
        not_ready(body)
    }
}

fn not_ready(body: Value) -> (StatusCode, Json<Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(with_status("not_ready", body)),
    )
}

fn with_status(status: &str, mut body: Value) -> Value {
    if let Value::Object(fields) = &mut body {
        fields.insert("status".into(), json!(status));
    }
    body
}
