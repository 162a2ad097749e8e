//! The simulated Violet HTTP API under `/v1`, exactly as VIOLET.md describes it.
//!
//! Every API handler goes through [`SandboxState::admit`] (latency, hang, 5xx knobs, app
//! credentials, token, per merchant rate limit) and page handlers answer through
//! [`SandboxState::page_response`] (truncated and malformed bodies). Bodies come from the
//! [`Catalog`], so what the API serves and what tests read from the catalog agree.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::auth::Auth;
use super::catalog::Catalog;
use super::error::{SandboxError, TOKEN_EXPIRED};
use super::faults::{Corruption, Faults, ServerError};
use super::generator::{split_collection_id, split_offer_id};
use super::paging::{date_filter, include_collections, paging, parse_id, spring_page};
use super::stats::{Stats, add, bump};
use super::{SandboxConfig, control};

/// How long a "hanging" request sleeps: far beyond any sane client timeout.
const HANG: Duration = Duration::from_secs(600);

pub struct SandboxState {
    pub catalog: Arc<Catalog>,
    pub auth: Auth,
    pub faults: Faults,
    pub stats: Stats,
    pub base_url: String,
    pub seed: u64,
    /// Mixed into scenario seeds so two plays never share event ids.
    pub plays: AtomicU64,
    pub cancel: CancellationToken,
}

impl SandboxState {
    pub fn new(
        config: SandboxConfig,
        catalog: Arc<Catalog>,
        addr: SocketAddr,
        cancel: CancellationToken,
    ) -> SandboxState {
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            addr.ip().to_string()
        };
        let host = if addr.is_ipv6() && !addr.ip().is_unspecified() {
            format!("[{host}]")
        } else {
            host
        };
        SandboxState {
            catalog,
            auth: Auth::new(&config),
            faults: Faults::new(config.seed),
            stats: Stats::default(),
            base_url: format!("http://{host}:{}/v1", addr.port()),
            seed: config.seed,
            plays: AtomicU64::new(0),
            cancel,
        }
    }

    async fn delay(&self) {
        let latency = self.faults.latency();
        if !latency.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(latency) => {}
                _ = self.cancel.cancelled() => {}
            }
        }
    }

    /// Everything an API call passes before its handler runs, in this order:
    /// latency, hang, scheduled/random 5xx, app credentials, token, rate limit.
    async fn admit(&self, headers: &HeaderMap, merchant: u64) -> Result<(), Response> {
        bump(&self.stats.requests);
        self.delay().await;
        if self.faults.take_hang() {
            bump(&self.stats.hangs);
            tokio::select! {
                _ = tokio::time::sleep(HANG) => {}
                _ = self.cancel.cancelled() => {}
            }
            return Err(self.server_error(StatusCode::SERVICE_UNAVAILABLE, "Request timed out"));
        }
        match self.faults.take_server_error() {
            Some(ServerError::Scheduled) => {
                return Err(
                    self.server_error(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable")
                );
            }
            Some(ServerError::Random(code)) => {
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return Err(self.server_error(status, "Upstream platform error"));
            }
            None => {}
        }
        self.auth.check_app(headers).map_err(|e| self.error(e))?;
        self.auth.check_token(headers).map_err(|e| self.error(e))?;
        if let Some(retry_after) = self.faults.rate_limited(merchant) {
            let mut e = SandboxError::new(StatusCode::TOO_MANY_REQUESTS, 429, "Too many requests");
            e.retry_after = Some(retry_after);
            return Err(self.error(e));
        }
        Ok(())
    }

    fn server_error(&self, status: StatusCode, message: &str) -> Response {
        self.error(SandboxError::new(
            status,
            u32::from(status.as_u16()),
            message,
        ))
    }

    /// Counts the error, then renders it.
    pub fn error(&self, e: SandboxError) -> Response {
        let counter = match e.status.as_u16() {
            401 | 403 => {
                if e.error_code == TOKEN_EXPIRED {
                    bump(&self.stats.expired_tokens);
                }
                Some(&self.stats.unauthorized)
            }
            404 => Some(&self.stats.not_found),
            429 => Some(&self.stats.rate_limited),
            500..=599 => Some(&self.stats.server_errors),
            _ => None,
        };
        if let Some(c) = counter {
            bump(c);
        }
        e.into_response()
    }

    /// Serialises a page, unless a knob spoils it. (`Value`'s `Display` writes the
    /// same bytes as `serde_json::to_vec` but runs code compiled inside serde_json,
    /// which is twice as fast in debug builds.)
    fn page_response(&self, page: Value) -> Response {
        let offers = page["content"].as_array().map_or(0, |c| c.len() as u64);
        let page_index = page["number"].as_u64().unwrap_or(0);
        let body = match self.faults.take_corruption(page_index) {
            Some(Corruption::Truncate) => {
                bump(&self.stats.truncated);
                let mut bytes = page.to_string().into_bytes();
                bytes.truncate(bytes.len() / 2);
                bytes
            }
            Some(Corruption::Malformed) => {
                bump(&self.stats.malformed);
                let wrong = json!({
                    "content": "sandbox: this page has the wrong shape",
                    "last": "maybe",
                    "number": {"value": page["number"]},
                    "size": [page["size"]],
                });
                wrong.to_string().into_bytes()
            }
            Some(Corruption::OddOk) => {
                bump(&self.stats.malformed);
                br#"{"status":"ok","message":"maintenance window"}"#.to_vec()
            }
            Some(Corruption::StalePage) => {
                bump(&self.stats.malformed);
                let mut stale = page;
                stale["number"] = json!(0);
                stale["last"] = json!(true);
                stale.to_string().into_bytes()
            }
            None => {
                bump(&self.stats.pages_served);
                add(&self.stats.offers_served, offers);
                page.to_string().into_bytes()
            }
        };
        json_bytes(StatusCode::OK, body)
    }
}

fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub fn router(state: Arc<SandboxState>) -> Router {
    let api = Router::new()
        .route("/login", post(login))
        .route("/auth/token", get(refresh))
        .route(
            "/catalog/offers/merchants/{merchant_id}",
            get(merchant_offers),
        )
        .route("/catalog/offers/{offer_id}", get(one_offer))
        .route(
            "/catalog/collections/merchants/{merchant_id}",
            get(merchant_collections),
        )
        .route(
            "/catalog/collections/{collection_id}/offers",
            get(collection_offers),
        )
        .route("/merchants/{merchant_id}", get(merchant))
        .fallback(unknown_endpoint);
    Router::new()
        .nest("/v1", api)
        .nest("/_sandbox", control::router())
        // `nest` matches `/_sandbox` but not `/_sandbox/`; both show the index.
        .route("/_sandbox/", get(control::info))
        .with_state(state)
}

type Params = Query<HashMap<String, String>>;

async fn login(
    State(s): State<Arc<SandboxState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    bump(&s.stats.requests);
    s.delay().await;
    if let Err(e) = s.auth.check_app(&headers) {
        return s.error(e);
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return s.error(SandboxError::bad_request(
            "Body must be JSON: {\"username\":...,\"password\":...}",
        ));
    };
    match s.auth.login(&body) {
        Ok(user) => {
            bump(&s.stats.logins);
            axum::Json(user).into_response()
        }
        Err(e) => s.error(e),
    }
}

async fn refresh(State(s): State<Arc<SandboxState>>, headers: HeaderMap) -> Response {
    bump(&s.stats.requests);
    s.delay().await;
    if let Err(e) = s.auth.check_app(&headers) {
        return s.error(e);
    }
    match s.auth.refresh(&headers) {
        Ok(token) => {
            bump(&s.stats.refreshes);
            axum::Json(token).into_response()
        }
        Err(e) => s.error(e),
    }
}

async fn merchant_offers(
    State(s): State<Arc<SandboxState>>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(q): Params,
) -> Response {
    let merchant_id = parse_id(&raw, "merchant_id").unwrap_or(0);
    if let Err(r) = s.admit(&headers, merchant_id).await {
        return r;
    }
    let result = (|| {
        let merchant_id = parse_id(&raw, "merchant_id")?;
        let (page, size) = paging(&q)?;
        let filter = date_filter(&q)?;
        if !s.catalog.has_merchant(merchant_id) {
            return Err(SandboxError::not_found(format!(
                "Merchant {merchant_id} not found"
            )));
        }
        Ok((merchant_id, page, size, filter))
    })();
    let (merchant_id, page, size, filter) = match result {
        Ok(v) => v,
        Err(e) => return s.error(e),
    };
    if s.faults.take_page_fault(merchant_id, page) {
        return s.server_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
    }
    let (content, last) =
        s.catalog
            .offer_page(merchant_id, page, size, include_collections(&q), filter);
    s.page_response(spring_page(content, page, size, last, None))
}

async fn one_offer(
    State(s): State<Arc<SandboxState>>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(q): Params,
) -> Response {
    let merchant = raw
        .parse::<u64>()
        .ok()
        .and_then(split_offer_id)
        .map_or(0, |(m, _)| m);
    if let Err(r) = s.admit(&headers, merchant).await {
        return r;
    }
    let id = match parse_id(&raw, "offer_id") {
        Ok(id) => id,
        Err(e) => return s.error(e),
    };
    match s.catalog.offer_json_with(id, include_collections(&q)) {
        Some(offer) => {
            bump(&s.stats.offers_served);
            axum::Json(offer).into_response()
        }
        None => s.error(SandboxError::not_found(format!("Offer {id} not found"))),
    }
}

async fn merchant_collections(
    State(s): State<Arc<SandboxState>>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(q): Params,
) -> Response {
    let merchant_id = parse_id(&raw, "merchant_id").unwrap_or(0);
    if let Err(r) = s.admit(&headers, merchant_id).await {
        return r;
    }
    let (merchant_id, page, size) = match parse_id(&raw, "merchant_id")
        .and_then(|m| Ok((m, paging(&q)?)))
    {
        Ok((m, (p, z))) if s.catalog.has_merchant(m) => (m, p, z),
        Ok((m, _)) => return s.error(SandboxError::not_found(format!("Merchant {m} not found"))),
        Err(e) => return s.error(e),
    };
    let all = s.catalog.collections(merchant_id);
    let total = all.len() as u64;
    let content: Vec<Value> = all
        .into_iter()
        .skip(((page - 1) * size) as usize)
        .take(size as usize)
        .collect();
    s.page_response(spring_page(
        content,
        page,
        size,
        page * size >= total,
        Some(total),
    ))
}

async fn collection_offers(
    State(s): State<Arc<SandboxState>>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(q): Params,
) -> Response {
    let merchant = raw
        .parse::<u64>()
        .ok()
        .and_then(split_collection_id)
        .map_or(0, |(m, _)| m);
    if let Err(r) = s.admit(&headers, merchant).await {
        return r;
    }
    let (id, page, size) = match parse_id(&raw, "collection_id").and_then(|c| Ok((c, paging(&q)?)))
    {
        Ok((c, (p, z))) if s.catalog.collection_json(c).is_some() => (c, p, z),
        Ok((c, _)) => return s.error(SandboxError::not_found(format!("Collection {c} not found"))),
        Err(e) => return s.error(e),
    };
    let ids = s.catalog.collection_offer_ids(id);
    let total = ids.len() as u64;
    let include = include_collections(&q);
    let content: Vec<Value> = ids
        .into_iter()
        .skip(((page - 1) * size) as usize)
        .take(size as usize)
        .filter_map(|o| s.catalog.offer_json_with(o, include))
        .collect();
    s.page_response(spring_page(
        content,
        page,
        size,
        page * size >= total,
        Some(total),
    ))
}

async fn merchant(
    State(s): State<Arc<SandboxState>>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Response {
    let merchant_id = parse_id(&raw, "merchant_id").unwrap_or(0);
    if let Err(r) = s.admit(&headers, merchant_id).await {
        return r;
    }
    match parse_id(&raw, "merchant_id") {
        Ok(m) => match s.catalog.merchant_json(m) {
            Some(body) => axum::Json(body).into_response(),
            None => s.error(SandboxError::not_found(format!("Merchant {m} not found"))),
        },
        Err(e) => s.error(e),
    }
}

async fn unknown_endpoint(State(s): State<Arc<SandboxState>>, uri: axum::http::Uri) -> Response {
    s.error(SandboxError::not_found(format!(
        "No sandbox endpoint at {}",
        uri.path()
    )))
}
