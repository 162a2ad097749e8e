//! The storefront's search API: a Meilisearch-compatible subset for the index `offers`.
//!
//! | route | answer |
//! |---|---|
//! | `POST`/`GET /indexes/offers/search` | hits, pagination, facets |
//! | `POST /multi-search` | `{"results": [...]}`, one per query (no federation) |
//! | `POST /indexes/offers/facet-search` | `facetHits` (parameters: `facet_search`) |
//! | `GET /indexes/offers/documents/{id}`, `GET /indexes/offers/documents`, `POST /indexes/offers/documents/fetch` | documents (`documents`) |
//! | `GET /indexes/offers/settings`, `GET /indexes/offers/settings/{name}` | the settings in use (`settings`) |
//! | `GET /indexes`, `GET /indexes/offers`, `GET /indexes/offers/stats`, `GET /stats` | the one index |
//! | `GET /health`, `GET /version` | what SDKs ask before anything else |
//! | writes to documents, settings, indexes | `403 invalid_api_key`: the mirror is read-only |
//! | any other path, or a wrong method | `404 unrecognized_request_url`, `405 method_not_allowed` |
//!
//! Every answer, errors and preflights included, carries the CORS headers (`cors`).
//! The handlers besides searches are in `read_routes`.
//!
//! Bodies are read by hand (size limit, content type, JSON) so that every failure is a
//! Meilisearch-shaped 4xx. Searches run against one snapshot on the search threads
//! (`pool`, `search.max_concurrent_searches` of them), in arrival order.
//!
//! Every search request is bounded (the README's Search section lists the bounds):
//! [`admit`] gives it one of `search.max_requests_in_flight` places, held from its
//! arrival until its answer is sent, and a deadline (`search.timeout_ms`) that the
//! body read, the wait for a thread and the search itself all stop at. A full queue or
//! no free place is a 503 `too_many_search_requests` with `Retry-After`. The answer is
//! computed before the client reads any of it, so a slow reader holds its place and
//! its answer, never a search thread.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};

use super::auth::{Access, Grant};
use super::error::{ApiError, invalid_type};
use super::execute::{self, Bounds, Deadline, FacetSearchRequest};
use super::params::{self, SearchRequest};
use super::pool::{PoolError, SearchPool};
use super::{INDEX_UID, SearchIndex};

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Answers larger than this are sent in pieces of this size, so that the server's write
/// buffer holds a few of them at a time while the answer's place stays held.
const SEND_CHUNK: usize = 64 * 1024;

/// The search API's request bounds (`search.*` in config/default.toml).
#[derive(Debug, Clone)]
pub struct SearchLimits {
    /// Search threads; 0: one per CPU.
    pub threads: usize,
    pub max_total_hits: usize,
    pub max_queries_per_multi_search: usize,
    pub max_values_per_facet: usize,
    pub max_queued_searches: usize,
    pub max_requests_in_flight: usize,
    pub timeout: Duration,
}

impl SearchLimits {
    pub fn from_settings(settings: &crate::config::SearchSettings) -> SearchLimits {
        SearchLimits {
            threads: settings.max_concurrent_searches as usize,
            max_total_hits: settings.max_total_hits,
            max_queries_per_multi_search: settings.max_queries_per_multi_search,
            max_values_per_facet: settings.max_values_per_facet,
            max_queued_searches: settings.max_queued_searches,
            max_requests_in_flight: settings.max_requests_in_flight,
            timeout: Duration::from_millis(settings.timeout_ms),
        }
    }

    fn bounds(&self, deadline: Deadline) -> Bounds {
        Bounds {
            max_total_hits: self.max_total_hits,
            max_values_per_facet: self.max_values_per_facet,
            deadline: Some(deadline),
        }
    }
}

#[derive(Clone)]
pub struct SearchApi {
    pub index: Arc<SearchIndex>,
    pub access: Arc<Access>,
    /// The threads that compute searches, first come first served.
    pool: SearchPool,
    limits: Arc<SearchLimits>,
    /// Places for search requests, from arrival until their answer is sent.
    in_flight: Arc<Semaphore>,
}

impl SearchApi {
    /// Starts the search threads and their bounded queue.
    pub fn new(
        index: Arc<SearchIndex>,
        access: Access,
        limits: SearchLimits,
    ) -> std::io::Result<SearchApi> {
        Ok(SearchApi {
            index,
            access: Arc::new(access),
            pool: SearchPool::start(limits.threads, limits.max_queued_searches)?,
            in_flight: Arc::new(Semaphore::new(limits.max_requests_in_flight)),
            limits: Arc::new(limits),
        })
    }

    pub(super) fn limits(&self) -> &SearchLimits {
        &self.limits
    }

    /// Runs `work` on a search thread, after the searches that arrived before it,
    /// unless the queue is full or `deadline` passes first.
    pub(super) async fn computed<T: Send + 'static>(
        &self,
        deadline: Deadline,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        self.pool
            .run_until(Some(deadline.at), work)
            .await
            .map_err(|err| match err {
                PoolError::Full(capacity) => ApiError::too_many_searches(capacity),
                PoolError::TimedOut => deadline.error(),
                other => ApiError::internal(other),
            })
    }
}

/// The routes, to merge into the public router. Its fallbacks (Meilisearch's errors
/// for unknown routes and wrong methods) become the public listener's.
pub fn router(api: SearchApi) -> Router {
    use super::read_routes as read;
    // Routes computed on the search threads: admitted, with a deadline.
    let searches = Router::new()
        .route("/indexes/{uid}/search", post(search_post).get(search_get))
        .route("/indexes/{uid}/facet-search", post(facet_search))
        .route("/multi-search", post(multi_search))
        .route(
            "/indexes/{uid}/documents",
            get(read::documents_get)
                .post(read::documents_write)
                .put(read::documents_write)
                .delete(read::documents_write),
        )
        .route(
            "/indexes/{uid}/documents/fetch",
            post(read::documents_fetch),
        )
        .route(
            "/indexes/{uid}/documents/{id}",
            get(read::document).delete(read::documents_write),
        )
        .route_layer(axum::middleware::from_fn_with_state(api.clone(), admit));
    Router::new()
        .merge(searches)
        .route(
            "/indexes/{uid}/documents/delete-batch",
            post(read::documents_write),
        )
        .route(
            "/indexes/{uid}/documents/delete",
            post(read::documents_write),
        )
        .route("/indexes/{uid}/documents/edit", post(read::documents_write))
        .route(
            "/indexes/{uid}/settings",
            get(read::settings_all)
                .patch(read::settings_write)
                .put(read::settings_write)
                .delete(read::settings_write),
        )
        .route(
            "/indexes/{uid}/settings/{name}",
            get(read::settings_one)
                .patch(read::settings_write)
                .put(read::settings_write)
                .post(read::settings_write)
                .delete(read::settings_write),
        )
        .route("/indexes", get(read::indexes).post(read::indexes_write))
        .route(
            "/indexes/{uid}",
            get(read::index_info)
                .patch(read::indexes_write)
                .delete(read::indexes_write),
        )
        .route("/swap-indexes", post(read::indexes_write))
        .route("/indexes/{uid}/stats", get(read::index_stats))
        .route("/stats", get(read::stats))
        .route(
            "/health",
            get(|| async { Json(json!({ "status": "available" })) }),
        )
        .route("/version", get(read::version))
        .method_not_allowed_fallback(read::wrong_method)
        .fallback(read::unknown_route)
        .layer(cors())
        .with_state(api)
}

/// Admits a search request if one of the places is free, gives it its deadline, and
/// keeps the place until the answer has been sent (or the client went away).
async fn admit(State(api): State<SearchApi>, mut request: Request, next: Next) -> Response {
    let Ok(place) = api.in_flight.clone().try_acquire_owned() else {
        return ApiError::too_many_searches(api.limits.max_requests_in_flight).into_response();
    };
    request.extensions_mut().insert(Deadline {
        at: Instant::now() + api.limits.timeout,
        limit_ms: api.limits.timeout.as_millis() as u64,
    });
    let response = next.run(request).await;
    held_until_sent(response, place).await
}

/// `response` with `place` released once its body has been sent. A small answer is
/// handed to the connection whole (it fits its buffers); a large one is sent in pieces
/// that share the one buffer, the last piece releasing the place.
async fn held_until_sent(response: Response, place: OwnedSemaphorePermit) -> Response {
    let (mut parts, body) = response.into_parts();
    // Answers are built whole in memory: this only takes the bytes out of the body.
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(err) => return ApiError::internal(err).into_response(),
    };
    if bytes.len() <= SEND_CHUNK {
        return Response::from_parts(parts, Body::from(bytes));
    }
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    let pieces = futures::stream::unfold((bytes, place), |(mut rest, place)| async move {
        if rest.is_empty() {
            return None;
        }
        let piece: Bytes = rest.split_to(rest.len().min(SEND_CHUNK));
        Some((Ok::<_, Infallible>(piece), (rest, place)))
    });
    Response::from_parts(parts, Body::from_stream(pieces))
}

/// CORS as Meilisearch sets it (crates/meilisearch/src/lib.rs: `Cors::default()
/// .send_wildcard().allow_any_header().allow_any_origin().allow_any_method()
/// .max_age(86_400)`): any origin may call the API (a storefront page calls it from the
/// browser), preflights are answered here. Methods and headers are mirrored from the
/// preflight rather than answered `*`: browsers never let a wildcard cover
/// `Authorization`, which every keyed storefront sends.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods(AllowMethods::mirror_request())
        .allow_headers(AllowHeaders::mirror_request())
        .max_age(Duration::from_secs(86_400))
}

type ApiResult = Result<Response, ApiError>;

pub(super) fn authorize(api: &SearchApi, headers: &HeaderMap) -> Result<Grant, ApiError> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    api.access.authorize(header)
}

pub(super) fn check_uid(uid: &str) -> Result<(), ApiError> {
    if uid == INDEX_UID {
        Ok(())
    } else {
        Err(ApiError::index_not_found(uid))
    }
}

/// Reads a JSON object body with Meilisearch's errors for each way it can be wrong; a
/// body still arriving at `deadline` is refused.
pub(super) async fn json_object(
    headers: &HeaderMap,
    body: Body,
    deadline: Deadline,
) -> Result<Map<String, Value>, ApiError> {
    let bytes = tokio::time::timeout_at(deadline.at.into(), axum::body::to_bytes(body, BODY_LIMIT))
        .await
        .map_err(|_| ApiError::request_timeout(deadline.limit_ms))?
        .map_err(|_| ApiError::payload_too_large(BODY_LIMIT))?;
    if bytes.is_empty() {
        return Err(ApiError::invalid(
            "missing_payload",
            "A json payload is missing.",
        ));
    }
    match headers
        .get(header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap_or("?"))
    {
        None => return Err(ApiError::content_type(None)),
        Some(found)
            if !found
                .trim()
                .to_ascii_lowercase()
                .starts_with("application/json") =>
        {
            return Err(ApiError::content_type(Some(found)));
        }
        Some(_) => {}
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(|err| {
        ApiError::invalid(
            "malformed_payload",
            format!("The json payload provided is malformed. `{err}`."),
        )
    })?;
    match value {
        Value::Object(object) => Ok(object),
        other => Err(ApiError::bad_request(format!(
            "Invalid value type: expected an object, but found {}: `{other}`",
            super::filter::json_kind(&other)
        ))),
    }
}

/// Searches and writes the answer's JSON on a search thread: writing a thousand hits
/// is CPU work too, and kept there it cannot slow down the listener's threads (health
/// checks, webhook intake). `index_uid` is added to the answer (multi-search).
async fn run_search(
    api: &SearchApi,
    request: SearchRequest,
    grant: Grant,
    deadline: Deadline,
    index_uid: Option<String>,
) -> Result<Box<RawValue>, ApiError> {
    let generation = api.index.current();
    let relevance = api.index.relevance();
    let bounds = api.limits.bounds(deadline);
    api.computed(deadline, move || {
        let mut response =
            execute::search(&generation, &relevance, &request, grant.filter(), &bounds)?;
        if let Some(uid) = index_uid {
            response
                .fields
                .insert("indexUid".into(), Value::String(uid));
        }
        serde_json::value::to_raw_value(&response).map_err(ApiError::internal)
    })
    .await?
}

/// A JSON answer already written (its bytes are not copied).
fn json_response(json: Box<RawValue>) -> Response {
    let text: Box<str> = json.into();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        text.into_string(),
    )
        .into_response()
}

async fn search_post(
    State(api): State<SearchApi>,
    Extension(deadline): Extension<Deadline>,
    Path(uid): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let grant = authorize(&api, &headers)?;
    check_uid(&uid)?;
    let object = json_object(&headers, body, deadline).await?;
    let request = SearchRequest::from_object(&object, &[])?;
    Ok(json_response(
        run_search(&api, request, grant, deadline, None).await?,
    ))
}

async fn search_get(
    State(api): State<SearchApi>,
    Extension(deadline): Extension<Deadline>,
    Path(uid): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let grant = authorize(&api, &headers)?;
    check_uid(&uid)?;
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let request = SearchRequest::from_query_pairs(&pairs)?;
    Ok(json_response(
        run_search(&api, request, grant, deadline, None).await?,
    ))
}

async fn multi_search(
    State(api): State<SearchApi>,
    Extension(deadline): Extension<Deadline>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let grant = authorize(&api, &headers)?;
    let object = json_object(&headers, body, deadline).await?;
    params::reject_unknown(&object, &["queries", "federation"], &[])?;
    if object
        .get("federation")
        .is_some_and(|federation| !federation.is_null())
    {
        return Err(ApiError::bad_request(
            "Federated multi-search is not supported by this server.",
        ));
    }
    let queries = match object.get("queries") {
        Some(Value::Array(queries)) => queries,
        None => {
            return Err(ApiError::invalid(
                "missing_multi_search_queries",
                "Missing field `queries`",
            ));
        }
        Some(other) => return Err(invalid_type("bad_request", ".queries", "an array", other)),
    };
    let max = api.limits.max_queries_per_multi_search;
    if queries.len() > max {
        return Err(ApiError::bad_request(format!(
            "Too many queries in `.queries`: {} given, at most {max} are accepted in one multi-search.",
            queries.len()
        )));
    }
    let mut results = Vec::with_capacity(queries.len());
    for (i, query) in queries.iter().enumerate() {
        let prefix = format!("Inside `.queries[{i}]`: ");
        let Value::Object(query) = query else {
            return Err(
                invalid_type("bad_request", &format!(".queries[{i}]"), "an object", query)
                    .prefixed(&prefix),
            );
        };
        let uid = match query.get("indexUid") {
            Some(Value::String(uid)) => uid.clone(),
            None => {
                return Err(
                    ApiError::invalid("missing_index_uid", "Missing field `indexUid`")
                        .prefixed(&prefix),
                );
            }
            Some(other) => {
                return Err(
                    invalid_type("invalid_index_uid", ".indexUid", "a string", other)
                        .prefixed(&prefix),
                );
            }
        };
        check_uid(&uid).map_err(|err| err.prefixed(&prefix))?;
        let request = SearchRequest::from_object(query, &["indexUid", "federationOptions"])
            .map_err(|err| err.prefixed(&prefix))?;
        let result = run_search(&api, request, grant.clone(), deadline, Some(uid))
            .await
            .map_err(|err| err.prefixed(&prefix))?;
        results.push(result);
    }
    #[derive(serde::Serialize)]
    struct MultiSearch {
        results: Vec<Box<RawValue>>,
    }
    Ok(Json(MultiSearch { results }).into_response())
}

async fn facet_search(
    State(api): State<SearchApi>,
    Extension(deadline): Extension<Deadline>,
    Path(uid): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let grant = authorize(&api, &headers)?;
    check_uid(&uid)?;
    let object = json_object(&headers, body, deadline).await?;
    let request = FacetSearchRequest::from_object(&object)?;
    let generation = api.index.current();
    let relevance = api.index.relevance();
    let bounds = api.limits.bounds(deadline);
    let value = api
        .computed(deadline, move || {
            execute::facet_search(&generation, &relevance, &request, grant.filter(), &bounds)
        })
        .await??;
    Ok(Json(value).into_response())
}
