//! `/healthz` (the process answers) and `/readyz` (the database is reachable and the
//! schema is current).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use super::AppState;

pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "alive" }))
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let check = tokio::time::timeout(state.intake_timeout, crate::db::migrations_current(&state.pool)).await;
    match check {
        Ok(Ok(true)) => (StatusCode::OK, Json(json!({ "status": "ready", "database": "ok", "migrations": "current" }))),
        Ok(Ok(false)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "database": "ok", "migrations": "pending" })),
        ),
        Ok(Err(_)) | Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "database": "unreachable" })),
        ),
    }
}
