//! HTTP: the public router (webhooks, health; search joins it) and shared state.

mod gate;
mod guard;
mod health;
mod observe;
pub mod webhooks;

pub use gate::IntakeGate;
pub use guard::GuardedListener;

pub use crate::web::last_on_connection;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use sqlx::PgPool;

use crate::config::Secret;
use crate::lifecycle::Planner;
use crate::search::SearchIndex;

/// What the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub planner: Arc<Planner>,
    /// Every secret a webhook may be signed with (rotation).
    pub webhook_secrets: Arc<[Secret]>,
    /// Longest a delivery may wait on the database before it gets 503.
    pub intake_timeout: Duration,
    /// Bounds concurrent intake transactions and fails fast while the database is down.
    pub intake_gate: Arc<IntakeGate>,
    /// `host:port` of the database server, probed to tell "down" from "busy".
    pub database_addr: Option<String>,
    /// The served search index, whose lag `/readyz` checks.
    pub search_index: Arc<SearchIndex>,
    /// `/readyz` fails while the index is more changes behind than this.
    pub ready_max_lag_changes: u64,
    /// Places for webhook bodies being read or stored (`webhooks.max_bodies_in_flight`).
    pub webhook_bodies: Arc<tokio::sync::Semaphore>,
}

/// The public listener's routes; `search` is the search API (`crate::search::http`),
/// timed into `catalog_mirror_search_duration_seconds`.
pub fn public_router(state: AppState, webhook_body_limit: usize, search: Router) -> Router {
    Router::new()
        .route(
            "/webhooks/violet",
            post(webhooks::receive)
                .layer(DefaultBodyLimit::max(webhook_body_limit))
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    webhooks::one_body_of_many,
                )),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(state)
        .merge(search.layer(axum::middleware::from_fn(observe::search_latency)))
        .layer(crate::web::request_spans("public"))
}
