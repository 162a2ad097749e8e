//! The storefront's search API: a Meilisearch-compatible subset for the index `offers`.
//!
//! | route | answer |
//! |---|---|
//! | `POST`/`GET /indexes/offers/search` | hits, pagination, facets |
//! | `POST /multi-search` | `{"results": [...]}`, one per query (no federation) |
//! | `POST /indexes/offers/facet-search` | `facetHits` |
//! | `GET /indexes/offers`, `GET /indexes/offers/stats` | index information and document count |
//! | `GET /health`, `GET /version` | what SDKs ask before anything else |
//!
//! Bodies are read by hand (size limit, content type, JSON) so that every failure is a
//! Meilisearch-shaped 4xx. Searches run against one snapshot on the search threads
//! (`pool`, `search.max_concurrent_searches` of them), in arrival order.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::auth::{Access, Grant};
use super::error::{ApiError, invalid_type};
use super::execute::{self, FacetSearchRequest};
use super::params::{self, SearchRequest};
use super::pool::SearchPool;
use super::schema::{self, FILTERABLE};
use super::{INDEX_UID, SearchIndex};

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 1024 * 1024;

#[derive(Clone)]
pub struct SearchApi {
    pub index: Arc<SearchIndex>,
    pub access: Arc<Access>,
    /// The threads that compute searches, first come first served.
    pool: SearchPool,
}

impl SearchApi {
    /// Starts `threads` search threads; 0 means one per CPU.
    pub fn new(
        index: Arc<SearchIndex>,
        access: Access,
        threads: u32,
    ) -> std::io::Result<SearchApi> {
        Ok(SearchApi {
            index,
            access: Arc::new(access),
            pool: SearchPool::start(threads as usize)?,
        })
    }

    /// Runs `work` on a search thread, after the searches that arrived before it.
    async fn computed<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        self.pool.run(work).await.map_err(ApiError::internal)
    }
}

/// The routes, to merge into the public router.
pub fn router(api: SearchApi) -> Router {
    Router::new()
        .route("/indexes/{uid}/search", post(search_post).get(search_get))
        .route("/indexes/{uid}/facet-search", post(facet_search))
        .route("/indexes/{uid}", get(index_info))
        .route("/indexes/{uid}/stats", get(index_stats))
        .route("/multi-search", post(multi_search))
        .route(
            "/health",
            get(|| async { Json(json!({ "status": "available" })) }),
        )
        .route("/version", get(version))
        .layer(axum::middleware::from_fn(cors))
        .with_state(api)
}

/// CORS as Meilisearch does it: any origin may search (a storefront page calls the API
/// from the browser); preflights are answered here.
async fn cors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use axum::http::{HeaderValue, Method, StatusCode};
    let requested_headers = request
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned();
    let mut response = if request.method() == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            requested_headers
                .unwrap_or_else(|| HeaderValue::from_static("content-type, authorization")),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        response
    } else {
        next.run(request).await
    };
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

type ApiResult = Result<Response, ApiError>;

fn authorize(api: &SearchApi, headers: &HeaderMap) -> Result<Grant, ApiError> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    api.access.authorize(header)
}

fn check_uid(uid: &str) -> Result<(), ApiError> {
    if uid == INDEX_UID {
        Ok(())
    } else {
        Err(ApiError::index_not_found(uid))
    }
}

/// Reads a JSON object body with Meilisearch's errors for each way it can be wrong.
async fn json_object(headers: &HeaderMap, body: Body) -> Result<Map<String, Value>, ApiError> {
    let bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
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

async fn run_search(
    api: &SearchApi,
    request: SearchRequest,
    grant: Grant,
) -> Result<execute::SearchResponse, ApiError> {
    let generation = api.index.current();
    let relevance = api.index.relevance();
    api.computed(move || execute::search(&generation, &relevance, &request, grant.filter()))
        .await?
}

async fn search_post(
    State(api): State<SearchApi>,
    Path(uid): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let grant = authorize(&api, &headers)?;
    check_uid(&uid)?;
    let object = json_object(&headers, body).await?;
    let request = SearchRequest::from_object(&object, &[])?;
    Ok(Json(run_search(&api, request, grant).await?).into_response())
}

async fn search_get(
    State(api): State<SearchApi>,
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
    Ok(Json(run_search(&api, request, grant).await?).into_response())
}

async fn multi_search(State(api): State<SearchApi>, headers: HeaderMap, body: Body) -> ApiResult {
    let grant = authorize(&api, &headers)?;
    let object = json_object(&headers, body).await?;
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
        let mut result = run_search(&api, request, grant.clone())
            .await
            .map_err(|err| err.prefixed(&prefix))?;
        result.fields.insert("indexUid".into(), Value::String(uid));
        results.push(result);
    }
    #[derive(serde::Serialize)]
    struct MultiSearch {
        results: Vec<execute::SearchResponse>,
    }
    Ok(Json(MultiSearch { results }).into_response())
}

async fn facet_search(
    State(api): State<SearchApi>,
    Path(uid): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let grant = authorize(&api, &headers)?;
    check_uid(&uid)?;
    let object = json_object(&headers, body).await?;
    params::reject_unknown(
        &object,
        &[
            "facetName",
            "facetQuery",
            "q",
            "filter",
            "matchingStrategy",
            "attributesToSearchOn",
            "exhaustiveFacetCount",
            "vector",
            "hybrid",
            "locales",
            "rankingScoreThreshold",
        ],
        &[],
    )?;
    let name = match object.get("facetName") {
        Some(Value::String(name)) => name.clone(),
        None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                "missing_facet_search_facet_name",
                "Missing field `facetName`",
            ));
        }
        Some(other) => {
            return Err(invalid_type(
                "invalid_facet_search_facet_name",
                ".facetName",
                "a string",
                other,
            ));
        }
    };
    let canonical = schema::canonical(&name);
    let Some(&facet) = FILTERABLE
        .iter()
        .find(|(attribute, _)| *attribute == canonical)
    else {
        return Err(ApiError::invalid(
            "invalid_facet_search_facet_name",
            format!(
                "Attribute `{name}` is not facet-searchable. Available facet-searchable attributes are: `{}`.",
                schema::filterable_names().join(", ")
            ),
        ));
    };
    let request = FacetSearchRequest {
        facet,
        facet_query: params::string(&object, "facetQuery", "invalid_facet_search_facet_query")?,
        q: params::string(&object, "q", "invalid_search_q")?.unwrap_or_default(),
        filter: match object.get("filter") {
            None => None,
            Some(value) => super::filter::from_json(value)
                .map_err(|err| ApiError::invalid("invalid_search_filter", err.0))?,
        },
        matching_strategy: params::matching_strategy(
            object.get("matchingStrategy"),
            "invalid_search_matching_strategy",
        )?,
    };
    let generation = api.index.current();
    let relevance = api.index.relevance();
    let value = api
        .computed(move || execute::facet_search(&generation, &relevance, &request, grant.filter()))
        .await??;
    Ok(Json(value).into_response())
}

async fn index_info(
    State(api): State<SearchApi>,
    Path(uid): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    authorize(&api, &headers)?;
    check_uid(&uid)?;
    let updated = api
        .index
        .updated_at()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Ok(Json(json!({
        "uid": INDEX_UID,
        "primaryKey": "id",
        "createdAt": updated,
        "updatedAt": updated,
        "numberOfDocuments": api.index.current().reader.searcher().num_docs(),
    }))
    .into_response())
}

async fn index_stats(
    State(api): State<SearchApi>,
    Path(uid): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    authorize(&api, &headers)?;
    check_uid(&uid)?;
    let documents = api.index.current().reader.searcher().num_docs();
    let field_distribution: Map<String, Value> = schema::DISPLAYED
        .iter()
        .map(|name| (name.to_string(), json!(documents)))
        .collect();
    Ok(Json(json!({
        "numberOfDocuments": documents,
        "isIndexing": api.index.is_indexing(),
        "fieldDistribution": field_distribution,
    }))
    .into_response())
}

async fn version(State(api): State<SearchApi>, headers: HeaderMap) -> ApiResult {
    authorize(&api, &headers)?;
    Ok(Json(json!({
        "pkgVersion": env!("CARGO_PKG_VERSION"),
        "commitSha": "unknown",
        "commitDate": "unknown",
    }))
    .into_response())
}
