//! The search API's routes besides searching: documents (read through the search
//! threads, with the caller's key filter), settings, index information, `/stats`,
//! `/version`, and Meilisearch's errors for writes, unknown routes and wrong methods.
//! `http` wires them; the answers' contents come from `documents` and `settings`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::documents::{self, DocumentsQuery};
use super::error::ApiError;
use super::execute::Deadline;
use super::http::{SearchApi, authorize, check_uid, json_object};
use super::schema;
use super::settings;
use super::{INDEX_UID, SearchIndex};

type ApiResult = Result<Response, ApiError>;

/// The Meilisearch version whose API this server follows, reported as `pkgVersion` so
/// that clients checking it pick the matching behaviour: 1.16 added the `media` search
/// parameter, the newest one the search API accepts (README, Search).
pub const MEILISEARCH_API_VERSION: &str = "1.16.0";

fn pairs(query: Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

async fn read_documents(
    api: &SearchApi,
    grant: super::auth::Grant,
    request: DocumentsQuery,
    deadline: Deadline,
) -> Result<(usize, Vec<Value>, DocumentsQuery), ApiError> {
    let generation = api.index.current();
    let relevance = api.index.relevance();
    api.computed(deadline, move || {
        documents::fetch(
            &generation,
            &relevance,
            &request,
            grant.filter(),
            Some(deadline),
        )
        .map(|(total, results)| (total, results, request))
    })
    .await?
}

/// `GET /indexes/offers/documents/{id}`: the document, or `404 document_not_found`.
pub async fn document(
    State(api): State<SearchApi>,
    Extension(deadline): Extension<Deadline>,
    Path((uid, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let grant = authorize(&api, &headers)?;
    check_uid(&uid)?;
    let Some(request) = DocumentsQuery::one(&id, &pairs(query))? else {
        return Err(ApiError::document_not_found(&id));
    };
    let (_, mut results, _) = read_documents(&api, grant, request, deadline).await?;
    match results.pop() {
        Some(document) => Ok(Json(document).into_response()),
        None => Err(ApiError::document_not_found(&id)),
    }
}

/// `GET /indexes/offers/documents`.
pub async fn documents_get(
    State(api): State<SearchApi>,
    Extension(deadline): Extension<Deadline>,
    Path(uid): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let grant = authorize(&api, &headers)?;
    check_uid(&uid)?;
    let request = DocumentsQuery::from_query_pairs(&pairs(query))?;
    let (total, results, request) = read_documents(&api, grant, request, deadline).await?;
    Ok(Json(documents::page(&request, total, results)).into_response())
}

/// `POST /indexes/offers/documents/fetch`.
pub async fn documents_fetch(
    State(api): State<SearchApi>,
    Extension(deadline): Extension<Deadline>,
    Path(uid): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let grant = authorize(&api, &headers)?;
    check_uid(&uid)?;
    let object = json_object(&headers, body, deadline).await?;
    let request = DocumentsQuery::from_object(&object)?;
    let (total, results, request) = read_documents(&api, grant, request, deadline).await?;
    Ok(Json(documents::page(&request, total, results)).into_response())
}

fn all_settings(api: &SearchApi) -> Map<String, Value> {
    settings::all(
        &api.index.relevance(),
        settings::Bounds {
            max_total_hits: api.limits().max_total_hits,
            max_values_per_facet: api.limits().max_values_per_facet,
            timeout_ms: api.limits().timeout.as_millis() as u64,
        },
    )
}

/// `GET /indexes/offers/settings`.
pub async fn settings_all(
    State(api): State<SearchApi>,
    Path(uid): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    authorize(&api, &headers)?;
    check_uid(&uid)?;
    Ok(Json(all_settings(&api)).into_response())
}

/// `GET /indexes/offers/settings/{name}`: one setting's value, bare (Meilisearch
/// answers `["*"]`, not `{"displayedAttributes": ["*"]}`).
pub async fn settings_one(
    State(api): State<SearchApi>,
    Path((uid, name)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult {
    let Some(field) = settings::field_of(&name) else {
        return Err(ApiError::unrecognized_url(method.as_str(), uri.path()));
    };
    authorize(&api, &headers)?;
    check_uid(&uid)?;
    let mut all = all_settings(&api);
    Ok(Json(all.remove(field).unwrap_or(Value::Null)).into_response())
}

/// Settings writes (`PATCH`/`PUT`/`DELETE` on the settings and their sub-routes).
pub async fn settings_write(
    State(api): State<SearchApi>,
    Path(params): Path<Vec<(String, String)>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult {
    if let Some((_, name)) = params.iter().find(|(key, _)| key == "name")
        && settings::field_of(name).is_none()
    {
        return Err(ApiError::unrecognized_url(method.as_str(), uri.path()));
    }
    authorize(&api, &headers)?;
    Err(ApiError::read_only("the index settings"))
}

/// Document writes (add, replace, update, delete, edit).
pub async fn documents_write(State(api): State<SearchApi>, headers: HeaderMap) -> ApiResult {
    authorize(&api, &headers)?;
    Err(ApiError::read_only("documents"))
}

/// Index writes (create, update, delete, swap).
pub async fn indexes_write(State(api): State<SearchApi>, headers: HeaderMap) -> ApiResult {
    authorize(&api, &headers)?;
    Err(ApiError::read_only("indexes"))
}

fn index_object(index: &SearchIndex) -> Value {
    let updated = index
        .updated_at()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "uid": INDEX_UID,
        "primaryKey": "id",
        "createdAt": updated,
        "updatedAt": updated,
        "numberOfDocuments": index.current().reader.searcher().num_docs(),
    })
}

/// `GET /indexes/offers`.
pub async fn index_info(
    State(api): State<SearchApi>,
    Path(uid): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    authorize(&api, &headers)?;
    check_uid(&uid)?;
    Ok(Json(index_object(&api.index)).into_response())
}

/// `GET /indexes`: the one index, in Meilisearch's paginated list.
pub async fn indexes(
    State(api): State<SearchApi>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult {
    authorize(&api, &headers)?;
    let (mut offset, mut limit) = (0usize, 20usize);
    for (key, value) in pairs(query) {
        let (slot, code) = match key.as_str() {
            "offset" => (&mut offset, "invalid_index_offset"),
            "limit" => (&mut limit, "invalid_index_limit"),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Unknown parameter `{key}`: expected one of `offset`, `limit`"
                )));
            }
        };
        *slot = value.parse().map_err(|_| {
            ApiError::invalid(
                code,
                format!("Invalid value in parameter `{key}`: could not parse `{value}` as a positive integer"),
            )
        })?;
    }
    let results: Vec<Value> = std::iter::once(index_object(&api.index))
        .skip(offset)
        .take(limit)
        .collect();
    Ok(
        Json(json!({ "results": results, "offset": offset, "limit": limit, "total": 1 }))
            .into_response(),
    )
}

/// The index's statistics (Meilisearch's `IndexStats`).
fn index_stats_object(index: &SearchIndex) -> Value {
    let searcher = index.current().reader.searcher();
    let documents = searcher.num_docs();
    let size = searcher
        .space_usage()
        .map(|usage| usage.total().get_bytes())
        .unwrap_or(0);
    let field_distribution: Map<String, Value> = schema::DISPLAYED
        .iter()
        .map(|name| (name.to_string(), json!(documents)))
        .collect();
    json!({
        "numberOfDocuments": documents,
        "rawDocumentDbSize": size,
        "avgDocumentSize": size.checked_div(documents).unwrap_or(0),
        "isIndexing": index.is_indexing(),
        "numberOfEmbeddings": 0,
        "numberOfEmbeddedDocuments": 0,
        "fieldDistribution": field_distribution,
    })
}

/// `GET /indexes/offers/stats`.
pub async fn index_stats(
    State(api): State<SearchApi>,
    Path(uid): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    authorize(&api, &headers)?;
    check_uid(&uid)?;
    Ok(Json(index_stats_object(&api.index)).into_response())
}

/// `GET /stats` (crates/meilisearch/src/routes/mod.rs, `Stats`): the one index; the
/// database size is the served index's size on disk.
pub async fn stats(State(api): State<SearchApi>, headers: HeaderMap) -> ApiResult {
    authorize(&api, &headers)?;
    let index = index_stats_object(&api.index);
    let size = index["rawDocumentDbSize"].clone();
    Ok(Json(json!({
        "databaseSize": size,
        "usedDatabaseSize": size,
        "lastUpdate": api.index.updated_at().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "indexes": { INDEX_UID: index },
    }))
    .into_response())
}

/// `GET /version` (crates/meilisearch/src/routes/mod.rs, `VersionResponse`), plus the
/// daemon's own version.
pub async fn version(State(api): State<SearchApi>, headers: HeaderMap) -> ApiResult {
    authorize(&api, &headers)?;
    Ok(Json(json!({
        "commitSha": "unknown",
        "commitDate": "unknown",
        "pkgVersion": MEILISEARCH_API_VERSION,
        "catalogMirrorVersion": env!("CARGO_PKG_VERSION"),
    }))
    .into_response())
}

/// Any path no route serves.
pub async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError::unrecognized_url(method.as_str(), uri.path())
}

/// A route asked with a method it does not serve.
pub async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(method.as_str(), uri.path())
}
