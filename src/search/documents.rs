//! Reading offers as documents, as Meilisearch's documents routes do
//! (crates/meilisearch/src/routes/indexes/documents.rs): one by id
//! (`GET /indexes/offers/documents/{id}`), or a page of them
//! (`GET /indexes/offers/documents`, `POST /indexes/offers/documents/fetch`) with
//! `fields`, `filter`, `ids`, `limit`, `offset`, answered as `{results, offset, limit,
//! total}`. Documents come in offer id order (Meilisearch's is its internal id order,
//! which a mirror has no use for), `total` counts every match.
//!
//! They see exactly what search sees: the served index, and the caller's key filter
//! (restricted keys, tenant tokens) ANDed with the request's. An offer outside it is
//! `document_not_found`, like one that does not exist. (Meilisearch would refuse a
//! tenant token on these routes; the storefront's product pages use the token they
//! search with, so here it reads what it may search.)
//!
//! Bounded: `limit` is cut at [`MAX_DOCUMENTS_LIMIT`] (and the answer's `limit` says
//! so), `ids` hold at most [`MAX_DOCUMENT_IDS`], and the read runs on the search threads
//! with the search deadline.

use serde_json::{Map, Value, json};

use super::collect::SearchCollector;
use super::error::{ApiError, invalid_type};
use super::execute::{self, Deadline, StoredSource};
use super::filter::{self, Filter};
use super::query::MatchingStrategy;
use super::relevance::Relevance;
use super::store::Generation;

/// Documents per page when nothing is said (Meilisearch's `PAGINATION_DEFAULT_LIMIT`).
pub const DEFAULT_DOCUMENTS_LIMIT: usize = 20;
/// Most documents one page returns; a larger `limit` is cut to it.
pub const MAX_DOCUMENTS_LIMIT: usize = 1000;
/// Most `ids` one request may name.
pub const MAX_DOCUMENT_IDS: usize = 1000;

const BODY_FIELDS: &[&str] = &[
    "offset",
    "limit",
    "fields",
    "filter",
    "ids",
    "retrieveVectors",
    "sort",
];

/// A checked documents request.
#[derive(Debug, Clone, Default)]
pub struct DocumentsQuery {
    pub offset: usize,
    pub limit: usize,
    /// `None`: every attribute.
    pub fields: Option<Vec<String>>,
    pub filter: Option<Filter>,
    /// Only these offer ids (`None`: any).
    pub ids: Option<Vec<i64>>,
}

impl DocumentsQuery {
    /// A `POST /indexes/offers/documents/fetch` body (unknown fields refused, as
    /// Meilisearch's `BrowseQuery` denies them).
    pub fn from_object(object: &Map<String, Value>) -> Result<DocumentsQuery, ApiError> {
        super::params::reject_unknown(object, BODY_FIELDS, &[])?;
        let fields = super::params::string_list(object, "fields", "invalid_document_fields")?;
        let ids = match object.get("ids") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| match item {
                        Value::String(_) | Value::Number(_) => Ok(item.clone()),
                        other => Err(invalid_type(
                            "invalid_document_ids",
                            &format!(".ids[{i}]"),
                            "a string or an integer",
                            other,
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(other) => {
                return Err(invalid_type(
                    "invalid_document_ids",
                    ".ids",
                    "an array",
                    other,
                ));
            }
        };
        match object.get("retrieveVectors") {
            None | Some(Value::Null | Value::Bool(_)) => {}
            Some(other) => {
                return Err(invalid_type(
                    "invalid_document_retrieve_vectors",
                    ".retrieveVectors",
                    "a boolean",
                    other,
                ));
            }
        }
        if object.get("sort").is_some_and(|sort| !sort.is_null()) {
            return Err(sort_unsupported());
        }
        Ok(DocumentsQuery {
            offset: super::params::count(object, "offset", "invalid_document_offset")?.unwrap_or(0),
            limit: super::params::count(object, "limit", "invalid_document_limit")?
                .unwrap_or(DEFAULT_DOCUMENTS_LIMIT)
                .min(MAX_DOCUMENTS_LIMIT),
            fields: fields.filter(|names| !names.iter().any(|name| name == "*")),
            filter: match object.get("filter") {
                None => None,
                Some(value) => filter::from_json(value)
                    .map_err(|err| ApiError::invalid("invalid_document_filter", err.0))?,
            },
            ids: ids.map(|ids| offer_ids(&ids)).transpose()?,
        })
    }

    /// A `GET /indexes/offers/documents` query string: `fields` and `ids` are
    /// comma-separated, `filter` is a filter string (or JSON, as Meilisearch tries it
    /// first), numbers and booleans are spelled out; unknown parameters are refused.
    pub fn from_query_pairs(pairs: &[(String, String)]) -> Result<DocumentsQuery, ApiError> {
        let mut object = Map::new();
        for (key, value) in pairs {
            let json = match key.as_str() {
                "offset" | "limit" => value
                    .parse::<u64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::String(value.clone())),
                "fields" | "ids" => Value::Array(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|item| !item.is_empty())
                        .map(|item| Value::String(item.to_string()))
                        .collect(),
                ),
                "retrieveVectors" => match value.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => Value::String(value.clone()),
                },
                "filter" => match serde_json::from_str::<Value>(value) {
                    Ok(json @ (Value::Array(_) | Value::String(_))) => json,
                    _ => Value::String(value.clone()),
                },
                "sort" => Value::String(value.clone()),
                _ => {
                    let expected: Vec<String> =
                        BODY_FIELDS.iter().map(|name| format!("`{name}`")).collect();
                    return Err(ApiError::bad_request(format!(
                        "Unknown parameter `{key}`: expected one of {}",
                        expected.join(", ")
                    )));
                }
            };
            object.insert(key.clone(), json);
        }
        DocumentsQuery::from_object(&object)
    }

    /// The one document `id`, with `fields` from a query string.
    pub fn one(id: &str, pairs: &[(String, String)]) -> Result<Option<DocumentsQuery>, ApiError> {
        let mut fields = None;
        for (key, value) in pairs {
            match key.as_str() {
                "fields" => {
                    let names: Vec<String> = value
                        .split(',')
                        .map(str::trim)
                        .filter(|name| !name.is_empty())
                        .map(String::from)
                        .collect();
                    fields = Some(names).filter(|names| !names.iter().any(|name| name == "*"));
                }
                "retrieveVectors" if value == "true" || value == "false" => {}
                "retrieveVectors" => {
                    return Err(ApiError::invalid(
                        "invalid_document_retrieve_vectors",
                        format!(
                            "Invalid value in parameter `retrieveVectors`: could not parse `{value}` as a boolean, expected either `true` or `false`"
                        ),
                    ));
                }
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "Unknown parameter `{key}`: expected one of `fields`, `retrieveVectors`"
                    )));
                }
            }
        }
        // An id that is not an offer id names no document.
        let Some(id) = parse_offer_id(id) else {
            return Ok(None);
        };
        Ok(Some(DocumentsQuery {
            offset: 0,
            limit: 1,
            fields,
            filter: None,
            ids: Some(vec![id]),
        }))
    }
}

fn sort_unsupported() -> ApiError {
    ApiError::invalid(
        "invalid_document_sort",
        "Sorting documents is not supported by this server: documents come in offer id order. Use a search with `sort` instead.",
    )
}

/// Offer ids are integers; an id spelled otherwise names no offer (Meilisearch would
/// look it up and not find it), so it is dropped rather than refused.
fn offer_ids(ids: &[Value]) -> Result<Vec<i64>, ApiError> {
    if ids.len() > MAX_DOCUMENT_IDS {
        return Err(ApiError::invalid(
            "invalid_document_ids",
            format!(
                "Too many ids in `.ids`: {} given, at most {MAX_DOCUMENT_IDS} are accepted in one request.",
                ids.len()
            ),
        ));
    }
    Ok(ids
        .iter()
        .filter_map(|id| match id {
            Value::Number(number) => number.as_i64(),
            Value::String(text) => parse_offer_id(text),
            _ => None,
        })
        .collect())
}

fn parse_offer_id(text: &str) -> Option<i64> {
    text.parse::<i64>().ok().filter(|id| *id >= 0)
}

/// One page of documents: (`total` matching, the page).
pub fn fetch(
    generation: &Generation,
    relevance: &Relevance,
    request: &DocumentsQuery,
    key_filter: Option<&Filter>,
    deadline: Option<Deadline>,
) -> Result<(usize, Vec<Value>), ApiError> {
    execute::check(deadline)?;
    let ids_filter = match &request.ids {
        None => None,
        Some(ids) if ids.is_empty() => return Ok((0, Vec::new())),
        Some(ids) => {
            let list: Vec<String> = ids.iter().map(i64::to_string).collect();
            filter::parse(&format!("id IN [{}]", list.join(", "))).map_err(ApiError::internal)?
        }
    };
    let filters: Vec<&Filter> = request
        .filter
        .iter()
        .chain(ids_filter.iter())
        .chain(key_filter)
        .collect();
    let execute::Prepared { query, .. } = execute::prepare(
        generation,
        relevance,
        "",
        MatchingStrategy::All,
        &super::query::ALL_TEXT_FIELDS,
        &filters,
    )
    .map_err(|err| match err.code {
        "invalid_search_filter" => ApiError::invalid("invalid_document_filter", err.message),
        _ => err,
    })?;
    let searcher = generation.reader.searcher();
    generation.ids.keep_only(&searcher);
    let total_docs = searcher.num_docs() as usize;
    // Unscored, unsorted: the collector's order is the offer id order.
    let collector = SearchCollector {
        keep: request.offset.saturating_add(request.limit).min(total_docs),
        scored: false,
        order: relevance.order,
        sort: Vec::new(),
        facets: Vec::new(),
        ids: generation.ids.clone(),
        deadline: deadline.map(|deadline| deadline.at),
        distinct: None,
        threshold: None,
    };
    let collected = searcher
        .search(&query, &collector)
        .map_err(ApiError::internal)?;
    if collected.stopped {
        execute::check(deadline)?;
    }
    let documents = collected
        .top
        .iter()
        .skip(request.offset)
        .map(|ranked| {
            execute::check(deadline)?;
            let StoredSource(text) = searcher.doc(ranked.address).map_err(ApiError::internal)?;
            let text = text.ok_or_else(|| ApiError::internal("a document has no _source"))?;
            let source: Map<String, Value> =
                serde_json::from_str(&text).map_err(ApiError::internal)?;
            Ok(Value::Object(match &request.fields {
                None => source,
                Some(names) => source
                    .into_iter()
                    .filter(|(key, _)| names.iter().any(|name| name == key))
                    .collect(),
            }))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok((collected.count, documents))
}

/// Meilisearch's `PaginationView`.
pub fn page(request: &DocumentsQuery, total: usize, results: Vec<Value>) -> Value {
    json!({
        "results": results,
        "offset": request.offset,
        "limit": request.limit,
        "total": total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> Result<DocumentsQuery, ApiError> {
        DocumentsQuery::from_object(value.as_object().unwrap())
    }

    fn pairs(query: &str) -> Vec<(String, String)> {
        url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }

    #[test]
    fn bodies_and_query_strings_read_like_meilisearch() {
        let query = body(json!({ "offset": 5, "limit": 3, "fields": ["id", "name"], "ids": [7, "8", "x"], "filter": "vendor = Acme" })).unwrap();
        assert_eq!((query.offset, query.limit), (5, 3));
        assert_eq!(
            query.fields,
            Some(vec!["id".to_string(), "name".to_string()])
        );
        assert_eq!(
            query.ids,
            Some(vec![7, 8]),
            "an id that is no offer id names nothing"
        );
        assert!(query.filter.is_some());
        let query = body(json!({ "fields": ["*"], "limit": 1_000_000 })).unwrap();
        assert_eq!(query.fields, None);
        assert_eq!(
            query.limit, MAX_DOCUMENTS_LIMIT,
            "limit is cut at the bound"
        );
        assert_eq!(body(json!({})).unwrap().limit, DEFAULT_DOCUMENTS_LIMIT);

        let query = DocumentsQuery::from_query_pairs(&pairs(
            "fields=id,name&limit=2&offset=4&filter=merchant_id%20%3D%201002&ids=1,2",
        ))
        .unwrap();
        assert_eq!((query.offset, query.limit), (4, 2));
        assert_eq!(query.ids, Some(vec![1, 2]));
        assert!(query.filter.is_some());
        let query = DocumentsQuery::from_query_pairs(&pairs(
            "filter=%5B%22vendor%20%3D%20Acme%22%2C%22tags%20%3D%20eco%22%5D",
        ))
        .unwrap();
        assert!(query.filter.is_some(), "a JSON array filter");

        for (query, code) in [
            ("limit=ten", "invalid_document_limit"),
            ("offset=-1", "invalid_document_offset"),
            ("filter=price%20%3E", "invalid_document_filter"),
            ("retrieveVectors=maybe", "invalid_document_retrieve_vectors"),
            ("sort=price:asc", "invalid_document_sort"),
            ("q=wool", "bad_request"),
        ] {
            assert_eq!(
                DocumentsQuery::from_query_pairs(&pairs(query))
                    .unwrap_err()
                    .code,
                code,
                "{query}"
            );
        }
        for (value, code) in [
            (json!({ "fields": "id" }), "invalid_document_fields"),
            (json!({ "ids": [true] }), "invalid_document_ids"),
            (
                json!({ "ids": vec![1; MAX_DOCUMENT_IDS + 1] }),
                "invalid_document_ids",
            ),
            (json!({ "limit": -1 }), "invalid_document_limit"),
            (json!({ "filter": 3 }), "invalid_document_filter"),
            (json!({ "q": "x" }), "bad_request"),
        ] {
            assert_eq!(body(value.clone()).unwrap_err().code, code, "{value}");
        }
        assert!(DocumentsQuery::one("abc", &[]).unwrap().is_none());
        let one = DocumentsQuery::one("42", &pairs("fields=name"))
            .unwrap()
            .unwrap();
        assert_eq!(one.ids, Some(vec![42]));
        assert_eq!(one.fields, Some(vec!["name".to_string()]));
        assert_eq!(
            DocumentsQuery::one("42", &pairs("limit=1"))
                .unwrap_err()
                .code,
            "bad_request"
        );
    }
}
