//! HTTP: the public router (webhooks, health; search joins it) and shared state.

mod guard;
mod health;
mod observe;
pub mod webhooks;

pub use guard::GuardedListener;

pub use crate::web::last_on_connection;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use sqlx::PgPool;

use crate::config::Secret;
use crate::intake::IntakeQueue;
use crate::search::SearchIndex;

/// What the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// The intake writers' queue: webhook events are stored through it.
    pub intake: IntakeQueue,
    /// Every secret a webhook may be signed with (rotation).
    pub webhook_secrets: Arc<[Secret]>,
    /// Longest a health check may wait on the database.
    pub intake_timeout: Duration,
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
