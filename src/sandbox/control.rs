//! The sandbox control API under `/_sandbox/` (JSON, no auth: bind it to loopback).
//!
//! It lets someone running `catalog-mirror sandbox`, and the demo, drive the
//! simulation from outside the process: read and change knobs, advance a merchant's
//! catalog, expire tokens, read counters, and play a webhook scenario at a URL.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::catalog::ChangeMix;
use super::error::SandboxError;
use super::hash::mix;
use super::server::SandboxState;
use super::{DeliveryFaults, Emitter, Knobs, Scenario, ScenarioOptions};

pub fn router() -> Router<Arc<SandboxState>> {
    Router::new()
        .route("/", get(info))
        .route(
            "/knobs",
            get(get_knobs)
                .put(put_knobs)
                .patch(patch_knobs)
                .delete(reset_knobs),
        )
        .route("/stats", get(stats))
        .route("/tokens/expire", post(expire_tokens))
        .route("/merchants", get(merchants))
        .route("/merchants/{merchant_id}/advance", post(advance))
        .route("/change-mix", get(get_change_mix).put(put_change_mix))
        .route("/play", post(play))
        .fallback(|| async {
            SandboxError::not_found("Unknown control endpoint; GET /_sandbox/ lists them")
        })
}

pub async fn info(State(s): State<Arc<SandboxState>>) -> Json<Value> {
    Json(json!({
        "base_url": s.base_url,
        "app_id": s.auth.app_id(),
        "app_secret": s.auth.app_secret(),
        "username": s.auth.username(),
        "password": s.auth.password(),
        "seed": s.seed,
        "merchants": s.catalog.merchant_ids(),
        "scenarios": Scenario::ALL.iter().map(|sc| sc.name()).collect::<Vec<_>>(),
        "control": [
            "GET /_sandbox/knobs", "PUT /_sandbox/knobs", "PATCH /_sandbox/knobs", "DELETE /_sandbox/knobs",
            "GET /_sandbox/stats", "POST /_sandbox/tokens/expire", "GET /_sandbox/merchants",
            "POST /_sandbox/merchants/{merchant_id}/advance", "GET /_sandbox/change-mix",
            "PUT /_sandbox/change-mix", "POST /_sandbox/play",
        ],
    }))
}

async fn get_knobs(State(s): State<Arc<SandboxState>>) -> Json<Knobs> {
    Json(s.faults.knobs())
}

/// Parses knobs from raw bytes so a bad body gets a JSON 400, not a text rejection.
fn knobs_from(value: Value) -> Result<Knobs, SandboxError> {
    let knobs: Knobs = serde_json::from_value(value)
        .map_err(|e| SandboxError::bad_request(format!("bad knobs: {e}")))?;
    if !(0.0..=1.0).contains(&knobs.error_rate_5xx) {
        return Err(SandboxError::bad_request(
            "error_rate_5xx must be between 0 and 1",
        ));
    }
    if knobs
        .rate_limit
        .as_ref()
        .is_some_and(|r| r.requests_per_sec == 0)
    {
        return Err(SandboxError::bad_request(
            "rate_limit.requests_per_sec must be at least 1",
        ));
    }
    Ok(knobs)
}

fn json_body(body: &[u8]) -> Result<Value, SandboxError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| SandboxError::bad_request(format!("body is not JSON: {e}")))
}

/// Replaces all knobs; omitted fields are off.
async fn put_knobs(State(s): State<Arc<SandboxState>>, body: axum::body::Bytes) -> Response {
    match json_body(&body).and_then(knobs_from) {
        Ok(knobs) => {
            s.faults.update(|k| *k = knobs.clone());
            Json(knobs).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Changes only the fields given (`null` clears an optional knob).
async fn patch_knobs(State(s): State<Arc<SandboxState>>, body: axum::body::Bytes) -> Response {
    let patch = match json_body(&body) {
        Ok(Value::Object(p)) => p,
        Ok(_) => {
            return SandboxError::bad_request("knobs patch must be a JSON object").into_response();
        }
        Err(e) => return e.into_response(),
    };
    let mut current = serde_json::to_value(s.faults.knobs()).unwrap_or_else(|_| json!({}));
    if let Some(obj) = current.as_object_mut() {
        obj.extend(patch);
    }
    match knobs_from(current) {
        Ok(knobs) => {
            s.faults.update(|k| *k = knobs.clone());
            Json(knobs).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn reset_knobs(State(s): State<Arc<SandboxState>>) -> Json<Knobs> {
    s.faults.update(|k| *k = Knobs::default());
    Json(Knobs::default())
}

async fn stats(State(s): State<Arc<SandboxState>>) -> Response {
    Json(s.stats.snapshot()).into_response()
}

async fn expire_tokens(State(s): State<Arc<SandboxState>>) -> Json<Value> {
    s.auth.expire_all();
    Json(json!({"expired": true}))
}

async fn merchants(State(s): State<Arc<SandboxState>>) -> Json<Vec<Value>> {
    let c = &s.catalog;
    Json(
        c.merchant_ids()
            .into_iter()
            .map(|m| {
                json!({
                    "merchant": c.merchant_json(m),
                    "generation": c.generation(m),
                    "offer_count": c.offer_count(m),
                    "collection_count": c.collection_count(m),
                })
            })
            .collect(),
    )
}

/// Advances a merchant's catalog by the current change mix, or by the mix in the body
/// (`{"updated": 0.01, "removed": 0, "added": 0, "undated": 0.5}`, missing fields at
/// their defaults) for this one advance.
async fn advance(
    State(s): State<Arc<SandboxState>>,
    Path(raw): Path<String>,
    body: Option<Json<ChangeMix>>,
) -> Response {
    let m = match raw.parse::<u64>() {
        Ok(m) if s.catalog.has_merchant(m) => m,
        _ => {
            return SandboxError::not_found(format!("unknown sandbox merchant {raw:?}"))
                .into_response();
        }
    };
    match body {
        None => Json(s.catalog.advance(m)).into_response(),
        Some(Json(mix)) => match mix.check() {
            Ok(()) => Json(s.catalog.advance_with(m, &mix)).into_response(),
            Err(err) => SandboxError::bad_request(err).into_response(),
        },
    }
}

/// What `advance` (and the scheduled-sync scenario) changes from now on.
async fn get_change_mix(State(s): State<Arc<SandboxState>>) -> Json<ChangeMix> {
    Json(s.catalog.change_mix())
}

async fn put_change_mix(
    State(s): State<Arc<SandboxState>>,
    Json(mix): Json<ChangeMix>,
) -> Response {
    match s.catalog.set_change_mix(mix) {
        Ok(()) => Json(mix).into_response(),
        Err(err) => SandboxError::bad_request(err).into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlayRequest {
    scenario: String,
    /// Webhook endpoint, e.g. `http://127.0.0.1:8080/webhooks/violet`.
    target: String,
    /// One merchant; all merchants when absent.
    #[serde(default)]
    merchant_id: Option<u64>,
    #[serde(default)]
    max_offer_events: Option<usize>,
    #[serde(default)]
    faults: Option<DeliveryFaults>,
    /// Signs with this instead of the app secret (to test a receiver's refusal).
    #[serde(default)]
    secret: Option<String>,
}

/// Plays a scenario synchronously and answers one delivery report per merchant.
async fn play(State(s): State<Arc<SandboxState>>, body: axum::body::Bytes) -> Response {
    let request: PlayRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return SandboxError::bad_request(format!("bad play request: {e}")).into_response();
        }
    };
    match run_play(&s, request).await {
        Ok(reports) => Json(reports).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn run_play(s: &SandboxState, r: PlayRequest) -> Result<Value, SandboxError> {
    let scenario: Scenario = r.scenario.parse().map_err(SandboxError::bad_request)?;
    let url = url::Url::parse(&r.target)
        .map_err(|e| SandboxError::bad_request(format!("bad target URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(SandboxError::bad_request(
            "target must be an http or https URL",
        ));
    }
    let merchants = match r.merchant_id {
        Some(m) if s.catalog.has_merchant(m) => vec![m],
        Some(m) => {
            return Err(SandboxError::not_found(format!(
                "unknown sandbox merchant {m}"
            )));
        }
        None => s.catalog.merchant_ids(),
    };
    let faults = r.faults.unwrap_or_default();
    if !(0.0..=1.0).contains(&faults.duplicate_rate) {
        return Err(SandboxError::bad_request(
            "duplicate_rate must be between 0 and 1",
        ));
    }
    let secret = r.secret.unwrap_or_else(|| s.auth.app_secret().to_string());
    let emitter = Emitter::new(url.as_str(), secret).with_faults(faults);
    let mut reports = Vec::new();
    for m in merchants {
        let play = s.plays.fetch_add(1, Ordering::Relaxed);
        let options = ScenarioOptions {
            seed: mix(&[s.seed, play]),
            max_offer_events: r.max_offer_events,
        };
        let events = scenario.events(&s.catalog, m, &options).map_err(|e| {
            SandboxError::new(StatusCode::INTERNAL_SERVER_ERROR, 500, e.to_string())
        })?;
        let report = emitter.play(&events).await;
        reports.push(json!({"merchant_id": m, "scenario": scenario.name(), "report": report}));
    }
    Ok(Value::Array(reports))
}
