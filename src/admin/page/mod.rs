//! The admin web page: server-rendered HTML with inline CSS and an inline SVG chart, no
//! scripts, no external assets, no build step.
//!
//! - `GET /ui`: the dashboard (merchants with sync states and a resync button each,
//!   job counts, the progress of running refreshes, dead jobs with a retry button,
//!   recent jobs, a chart of sync durations and failures), or the login form without a
//!   session. It reloads itself with a meta refresh (no script): every 3 s while a
//!   refresh runs, every 30 s otherwise; `?reload=off` stops it (a link in the header).
//! - `POST /ui/login` (form field `token`): checks the admin token and sets the session
//!   cookie (see [`super::auth`]); `POST /ui/logout` clears it.
//! - `POST /ui/resync` (`merchant_id` or `all=1`, `kind`), `POST /ui/jobs/{id}/retry`
//!   and `POST /ui/merchants/{id}/removals/{confirm|discard}`: the same actions as the API; on success they redirect back to `/ui` with a notice
//!   (post/redirect/get), on failure the dashboard is shown with the error.

mod chart;
mod html;

pub use html::millis;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::actions::{self, ResyncKind};
use super::params::parse_id;
use super::store::{self, JobFilter};
use super::{AdminError, AdminState, auth};

/// How many runs the chart draws, and how many jobs each table lists.
const CHART_RUNS: i64 = 120;
const DEAD_JOBS: i64 = 50;
const RECENT_JOBS: i64 = 25;

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui", get(dashboard))
        .route("/ui/login", post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/resync", post(resync))
        .route("/ui/jobs/{id}/retry", post(retry))
        .route("/ui/merchants/{id}/removals/{decision}", post(removals))
        .with_state(state)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Why a page request is refused, if it is.
fn gate(state: &AdminState, headers: &HeaderMap) -> Option<Response> {
    if !state.enabled() {
        return Some((StatusCode::FORBIDDEN, Html(html::disabled())).into_response());
    }
    if !auth::has_session(&state.token, headers, now()) {
        return Some((StatusCode::UNAUTHORIZED, Html(html::login(None))).into_response());
    }
    None
}

/// Page POSTs: a session and, when the browser says where the form came from, this site.
fn gate_post(state: &AdminState, headers: &HeaderMap) -> Option<Response> {
    if let Some(refused) = gate(state, headers) {
        return Some(refused);
    }
    if !auth::same_origin(headers) {
        return Some(
            (
                StatusCode::FORBIDDEN,
                Html(html::message(
                    "Refused",
                    "This form was posted from another site.",
                )),
            )
                .into_response(),
        );
    }
    None
}

async fn dashboard(
    State(state): State<AdminState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if !state.enabled() {
        return (StatusCode::FORBIDDEN, Html(html::disabled())).into_response();
    }
    if !auth::has_session(&state.token, &headers, now()) {
        return Html(html::login(None)).into_response();
    }
    let notice = notice(query.as_deref());
    let paused = reload_paused(query.as_deref());
    render_dashboard(&state, StatusCode::OK, notice.as_deref(), None, paused).await
}

/// The success notice after a redirect: fixed texts only, nothing reflected verbatim.
fn notice(query: Option<&str>) -> Option<String> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let number = |name: &str| get(name).and_then(|value| value.parse::<i64>().ok());
    match get("done")? {
        "resync" => Some(format!(
            "Resync requested: {} refresh job(s) enqueued.",
            number("count").unwrap_or(0)
        )),
        "retry" => Some(format!(
            "Job {} is back in the queue.",
            number("job").unwrap_or(0)
        )),
        "login" => Some("Signed in.".into()),
        "confirmed" => Some(format!(
            "Held removals confirmed: {} offer(s) removed.",
            number("removed").unwrap_or(0)
        )),
        "discarded" => Some("Held removals discarded: nothing removed.".into()),
        _ => None,
    }
}

/// The dashboard with the error of a failed action. It does not reload itself: the
/// message would vanish.
async fn action_failed(state: &AdminState, err: AdminError) -> Response {
    render_dashboard(state, err.status(), None, Some(&err.public_message()), true).await
}

async fn render_dashboard(
    state: &AdminState,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
    paused: bool,
) -> Response {
    match load(state, paused).await {
        Ok(view) => (status, Html(html::dashboard(&view, notice, error))).into_response(),
        Err(err) => {
            if let AdminError::Database(cause) = &err {
                tracing::error!(error = %cause, "admin page failed on the database");
            }
            (
                err.status(),
                Html(html::message(
                    "Admin page unavailable",
                    &err.public_message(),
                )),
            )
                .into_response()
        }
    }
}

/// Everything the dashboard shows.
pub struct View {
    pub merchants: Vec<store::MerchantSummary>,
    pub index_reported: bool,
    pub counts: std::collections::BTreeMap<String, i64>,
    pub dead: Vec<crate::jobs::Job>,
    pub recent: Vec<crate::jobs::Job>,
    pub runs: Vec<store::SyncRun>,
    /// Refreshes running in this daemon, then the latest finished ones.
    pub refreshes: Vec<crate::mirror::ProgressSnapshot>,
    /// Seconds between the page's reloads; `None` when paused.
    pub reload_secs: Option<u32>,
    pub generated_at: chrono::DateTime<chrono::Utc>,
}

/// Reload periods of the page: short while a refresh runs, so its progress moves.
const RELOAD_RUNNING_SECS: u32 = 3;
const RELOAD_IDLE_SECS: u32 = 30;
/// Finished refreshes listed under the running ones.
const FINISHED_REFRESHES: usize = 10;

/// Running refreshes first (oldest first), then the latest finished ones.
fn refreshes(state: &AdminState) -> Vec<crate::mirror::ProgressSnapshot> {
    let Some(progress) = &state.progress else {
        return Vec::new();
    };
    let (mut running, mut finished): (Vec<_>, Vec<_>) =
        progress.all().into_iter().partition(|p| p.running);
    running.sort_by_key(|p| p.started_at);
    finished.sort_by_key(|p| std::cmp::Reverse(p.finished_at));
    finished.truncate(FINISHED_REFRESHES);
    running.extend(finished);
    running
}

/// Whether the page asked not to reload itself (`?reload=off`).
fn reload_paused(query: Option<&str>) -> bool {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .any(|(key, value)| key == "reload" && value == "off")
}

async fn load(state: &AdminState, paused: bool) -> Result<View, AdminError> {
    let applied = state.applied_change_no();
    let pool = &state.pool;
    let mut merchants = store::merchants(pool, None, applied).await?;
    state.attach_progress(&mut merchants);
    let refreshes = refreshes(state);
    let reload_secs = (!paused).then(|| {
        if refreshes.iter().any(|p| p.running) {
            RELOAD_RUNNING_SECS
        } else {
            RELOAD_IDLE_SECS
        }
    });
    Ok(View {
        merchants,
        index_reported: state.index.is_some(),
        counts: store::job_counts(pool).await?,
        dead: store::jobs(
            pool,
            &JobFilter {
                state: Some("dead".into()),
                limit: DEAD_JOBS,
                ..Default::default()
            },
        )
        .await?,
        recent: store::jobs(
            pool,
            &JobFilter {
                limit: RECENT_JOBS,
                ..Default::default()
            },
        )
        .await?,
        runs: store::recent_runs(pool, CHART_RUNS).await?,
        refreshes,
        reload_secs,
        generated_at: chrono::Utc::now(),
    })
}

fn form(body: &Bytes) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

async fn login(State(state): State<AdminState>, headers: HeaderMap, body: Bytes) -> Response {
    if !state.enabled() {
        return (StatusCode::FORBIDDEN, Html(html::disabled())).into_response();
    }
    if !auth::same_origin(&headers) {
        return (
            StatusCode::FORBIDDEN,
            Html(html::message(
                "Refused",
                "This form was posted from another site.",
            )),
        )
            .into_response();
    }
    let form = form(&body);
    let token = field(&form, "token").unwrap_or_default();
    if !auth::token_matches(&state.token, token) {
        tracing::warn!("admin page login refused: wrong token");
        return (
            StatusCode::UNAUTHORIZED,
            Html(html::login(Some("That is not the admin token."))),
        )
            .into_response();
    }
    let cookie = auth::session_cookie(&auth::new_session(&state.token, now()));
    let mut response = Redirect::to("/ui?done=login").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn logout() -> Response {
    let mut response = Redirect::to("/ui").into_response();
    if let Ok(value) = HeaderValue::from_str(&auth::cleared_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn resync(State(state): State<AdminState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = gate_post(&state, &headers) {
        return refused;
    }
    let form = form(&body);
    let outcome = async {
        let kind = ResyncKind::parse(field(&form, "kind").unwrap_or("both"))?;
        let merchant = match (field(&form, "merchant_id"), field(&form, "all")) {
            (Some(id), _) => Some(parse_id(id, "merchant_id")?),
            (None, Some(_)) => None,
            (None, None) => {
                return Err(AdminError::bad_request(
                    "choose a merchant or all merchants",
                ));
            }
        };
        actions::resync(&state, merchant, kind).await
    }
    .await;
    match outcome {
        Ok(enqueued) => {
            Redirect::to(&format!("/ui?done=resync&count={}", enqueued.len())).into_response()
        }
        Err(err) => action_failed(&state, err).await,
    }
}

async fn retry(
    State(state): State<AdminState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    if let Some(refused) = gate_post(&state, &headers) {
        return refused;
    }
    let outcome = async {
        let id = match path {
            Ok(Path(text)) => parse_id(&text, "job id")?,
            Err(rejection) => return Err(AdminError::bad_request(format!("job id: {rejection}"))),
        };
        actions::retry(&state, id).await
    }
    .await;
    match outcome {
        Ok(job) => Redirect::to(&format!("/ui?done=retry&job={}", job.id)).into_response(),
        Err(err) => action_failed(&state, err).await,
    }
}

/// `POST /ui/merchants/{id}/removals/{confirm|discard}`.
async fn removals(
    State(state): State<AdminState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    if let Some(refused) = gate_post(&state, &headers) {
        return refused;
    }
    let outcome = async {
        let (id, decision) = match path {
            Ok(Path((id, decision))) => (parse_id(&id, "merchant id")?, decision),
            Err(rejection) => {
                return Err(AdminError::bad_request(format!("merchant id: {rejection}")));
            }
        };
        let none_held = || AdminError::NotFound(format!("merchant {id} has no held removals"));
        match decision.as_str() {
            "confirm" => actions::confirm_removals(&state, id)
                .await?
                .map(|removed| format!("/ui?done=confirmed&removed={removed}"))
                .ok_or_else(none_held),
            "discard" => match actions::discard_removals(&state, id).await? {
                true => Ok("/ui?done=discarded".to_string()),
                false => Err(none_held()),
            },
            _ => Err(AdminError::NotFound(
                "held removals are confirmed or discarded".into(),
            )),
        }
    }
    .await;
    match outcome {
        Ok(to) => Redirect::to(&to).into_response(),
        Err(err) => action_failed(&state, err).await,
    }
}
