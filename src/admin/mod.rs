//! Operating the daemon: the admin API, the admin web page and the `catalog-mirror
//! admin` command that calls the API.
//!
//! Everything here is served on the admin listener (`http.admin_addr`, loopback by
//! default), never on the public one:
//!
//! | route | auth | what |
//! |---|---|---|
//! | `GET /metrics` | none | Prometheus text ([`crate::telemetry::render_metrics`]), refresh progress gauges set at scrape time |
//! | `GET /api/merchants` | bearer | every merchant with sync states, last sync, durations, success rate, offers (live, and on the storefront), catalog version, index lag, refresh progress |
//! | `GET /api/merchants/{id}` | bearer | one merchant: states, sync history, recent events and jobs |
//! | `POST /api/resync` | bearer | `{"merchant_id": 7}` or `{"all": true}`, `"kind": "products"\|"collections"\|"both"`: enqueue full refreshes |
//! | `POST /api/reindex` | bearer | ask the search side to rebuild the index from PostgreSQL |
//! | `GET /api/jobs` | bearer | `?state=&merchant=&kind=&limit=`: jobs (dead ones with their error) and counts per state |
//! | `POST /api/jobs/{id}/retry` | bearer | a dead or cancelled job back to pending with fresh attempts |
//! | `GET /api/events` | bearer | `?merchant=&topic=&status=&since=&before=&limit=`: the stored webhook events |
//! | `GET /api/events/{id}` | bearer | one event with its body |
//! | `POST /api/events/{id}/replay` | bearer | plan a stored event again (state machine, jobs) and update its status |
//! | `GET /ui`, `POST /ui/...` | session cookie | the admin web page (see [`page`]) |
//!
//! Authentication (see [`auth`]): the API takes `Authorization: Bearer <admin.token>`,
//! compared in constant time; no token or a wrong one gets 401. The page takes only
//! its session cookie, which a login form sets after checking the same token; the API
//! never accepts the cookie, so a browser session cannot be used to script the API and
//! cross-site form posts cannot reach it. With `admin.token` empty the admin API and
//! page are disabled: they answer 403 `admin_disabled` saying how to enable them, while
//! `/metrics` keeps working (it carries no secrets and is meant for a local scraper).
//!
//! Errors are JSON `{"error": code, "message": text}` like the rest of the daemon; bad
//! input is a 400 that says which parameter and why, never a 500.

mod actions;
pub mod api;
pub mod auth;
pub mod cli;
mod client;
mod error;
pub mod index;
mod output;
mod page;
mod params;
pub mod store;
mod table;

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use sqlx::PgPool;

use crate::config::{Secret, Settings};
use crate::lifecycle::Planner;
use crate::mirror::{ProgressKind, RefreshProgress};

pub use error::AdminError;
pub use index::{IndexControl, IndexDir};

/// What the admin handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    pub pool: PgPool,
    /// Replays go through the same planner as intake.
    pub planner: Arc<Planner>,
    /// `admin.token`; empty disables the admin API and page.
    pub token: Secret,
    /// Attempts of the jobs a resync enqueues (`jobs.max_attempts`).
    pub job_max_attempts: i32,
    /// Largest `limit` of a listing (`admin.max_page_size`).
    pub max_page_size: i64,
    /// The search side's hooks, once it runs in this daemon (index lag, reindex).
    pub index: Option<Arc<dyn IndexControl>>,
    /// The refreshes this daemon runs, for their progress.
    pub progress: Option<RefreshProgress>,
}

impl AdminState {
    pub fn new(pool: PgPool, planner: Arc<Planner>, settings: &Settings) -> Self {
        Self {
            pool,
            planner,
            token: settings.admin.token.clone(),
            job_max_attempts: settings.jobs.max_attempts,
            max_page_size: settings.admin.max_page_size,
            index: None,
            progress: None,
        }
    }

    /// Plugs in the mirror's progress registry: refresh progress in the merchant
    /// views, the page and `/metrics`.
    pub fn with_progress(mut self, progress: RefreshProgress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Fills in each merchant's refresh progress, when this daemon runs refreshes.
    pub fn attach_progress(&self, merchants: &mut [store::MerchantSummary]) {
        let Some(progress) = &self.progress else {
            return;
        };
        for merchant in merchants {
            let id = merchant.merchant_id;
            merchant.products.progress = progress.snapshot(id, ProgressKind::Products);
            merchant.collections.progress = progress.snapshot(id, ProgressKind::Collections);
        }
    }

    /// Plugs in the search side: index lag in the merchant views, and `reindex`.
    pub fn with_index(mut self, index: Arc<dyn IndexControl>) -> Self {
        self.index = Some(index);
        self
    }

    pub fn enabled(&self) -> bool {
        !self.token.is_empty()
    }

    /// The index's watermark, when the search side reports it.
    pub fn applied_change_no(&self) -> Option<i64> {
        self.index.as_ref()?.applied_change_no()
    }
}

/// The admin listener's routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .nest("/api", api::router(state.clone()))
        .merge(page::router(state.clone()))
        .route("/metrics", get(metrics).with_state(state))
        .layer(crate::web::request_spans("admin"))
}

async fn metrics(
    axum::extract::State(state): axum::extract::State<AdminState>,
) -> impl IntoResponse {
    if let Some(progress) = &state.progress {
        progress.export_gauges();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::render_metrics(),
    )
}
