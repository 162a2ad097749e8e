//! Running a checked request against one generation's searcher (one snapshot per
//! request, so a response never mixes two commits) and writing Meilisearch's response.
//! Blocking: callers run it on a blocking thread.
//!
//! [`Bounds`] caps what one search may cost: the hits it can reach (`maxTotalHits`,
//! with Meilisearch's totals), the values per facet, and a deadline after which the
//! search stops and answers `search_timeout` instead of a late answer.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tantivy::Searcher;
use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, Query};
use tantivy::schema::document::{DeserializeError, DocumentDeserialize, DocumentDeserializer};

use super::collect::{Collected, FacetCounts, SearchCollector, format_number};
use super::error::ApiError;
use super::filter::{self, Filter};
use super::format;
use super::params::{Pagination, SearchRequest};
use super::query::{self, MatchingStrategy, Word};
use super::relevance::Relevance;
use super::schema::{AttrKind, TextField};
use super::store::Generation;
use super::terms;

/// Facet-search hits returned (Meilisearch's `maxFacetHits` default).
pub const MAX_FACET_HITS: usize = 100;

/// What one search may cost (`search.max_total_hits`, `search.max_values_per_facet`,
/// `search.timeout_ms`).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Hits reachable by a query, and the most its totals count (Meilisearch's
    /// `pagination.maxTotalHits`).
    pub max_total_hits: usize,
    /// Values per facet in `facetDistribution` (Meilisearch's `maxValuesPerFacet`).
    pub max_values_per_facet: usize,
    pub deadline: Option<Deadline>,
}

impl Default for Bounds {
    /// Meilisearch's defaults, no deadline.
    fn default() -> Bounds {
        Bounds {
            max_total_hits: 1000,
            max_values_per_facet: 100,
            deadline: None,
        }
    }
}

/// When a request's answer stops being wanted, and the limit it came from.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: Instant,
    pub limit_ms: u64,
}

impl Deadline {
    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    pub fn error(&self) -> ApiError {
        ApiError::search_timeout(self.limit_ms)
    }
}

pub(super) fn check(deadline: Option<Deadline>) -> Result<(), ApiError> {
    match deadline {
        Some(deadline) if deadline.passed() => Err(deadline.error()),
        _ => Ok(()),
    }
}

/// The query for `q` (its words and phrases matching in the text fields `on`, minus
/// its exclusions, see `terms`), the request's filter and the key's filter, plus the
/// words to highlight (none when `q` has no term: the search is then unscored).
pub(super) fn prepare(
    generation: &Generation,
    relevance: &Relevance,
    q: &str,
    strategy: MatchingStrategy,
    on: &[TextField],
    filters: &[&Filter],
) -> Result<(Box<dyn Query>, Vec<Word>), ApiError> {
    let parsed = terms::parse(q, relevance);
    let text = terms::build(
        &parsed,
        strategy,
        &generation.schema,
        relevance,
        on,
        &generation.reader.searcher(),
    )
    .map_err(ApiError::internal)?;
    let words = parsed.highlighted();
    if filters.is_empty() {
        return Ok((text, words));
    }
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, text)];
    for filter in filters {
        let compiled = filter::compile(filter, &generation.schema)
            .map_err(|err| ApiError::invalid("invalid_search_filter", err.0))?;
        clauses.push((Occur::Must, Box::new(ConstScoreQuery::new(compiled, 0.0))));
    }
    Ok((Box::new(BooleanQuery::new(clauses)), words))
}

/// A search answer: the hits as raw JSON (a stored document is sent as it is unless the
/// request reshapes it), and every other field.
#[derive(Debug)]
pub struct SearchResponse {
    pub hits: Vec<Box<RawValue>>,
    pub fields: Map<String, Value>,
}

impl Serialize for SearchResponse {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.fields.len() + 1))?;
        map.serialize_entry("hits", &self.hits)?;
        for (key, value) in &self.fields {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// `POST /indexes/offers/search`.
pub fn search(
    generation: &Generation,
    relevance: &Relevance,
    request: &SearchRequest,
    key_filter: Option<&Filter>,
    bounds: &Bounds,
) -> Result<SearchResponse, ApiError> {
    let started = Instant::now();
    check(bounds.deadline)?;
    let filters: Vec<&Filter> = request.filter.iter().chain(key_filter).collect();
    let (query, words) = prepare(
        generation,
        relevance,
        &request.q,
        request.matching_strategy,
        &query::ALL_TEXT_FIELDS,
        &filters,
    )?;
    let searcher = generation.reader.searcher();
    generation.ids.keep_only(&searcher);
    let (skip, take) = request.pagination.capped(bounds.max_total_hits);
    let total_docs = searcher.num_docs() as usize;
    let keep = (skip + take).min(total_docs);
    let collector = SearchCollector {
        keep,
        scored: !words.is_empty(),
        sort: request.sort.clone(),
        facets: request.facets.clone(),
        ids: generation.ids.clone(),
        deadline: bounds.deadline.map(|deadline| deadline.at),
    };
    let collected = searcher
        .search(&query, &collector)
        .map_err(ApiError::internal)?;
    if collected.stopped {
        return Err(bounds.deadline.map_or_else(
            || ApiError::internal("a search stopped without a deadline"),
            |deadline| deadline.error(),
        ));
    }
    let hits = hits(
        &searcher,
        &collected,
        skip,
        request,
        &words,
        bounds.deadline,
    )?;

    let mut response = Map::new();
    response.insert("query".into(), Value::String(request.q.clone()));
    response.insert(
        "processingTimeMs".into(),
        json!(started.elapsed().as_millis() as u64),
    );
    pagination_fields(
        &mut response,
        request.pagination,
        collected.count,
        bounds.max_total_hits,
    );
    if !request.facets.is_empty() {
        let (distribution, stats) = facet_maps(
            &request.facet_names,
            &request.facets,
            &collected.facets,
            bounds.max_values_per_facet,
        );
        response.insert("facetDistribution".into(), Value::Object(distribution));
        response.insert("facetStats".into(), Value::Object(stats));
    }
    Ok(SearchResponse {
        hits,
        fields: response,
    })
}

/// The pagination fields as Meilisearch writes them: the totals count at most
/// `max_total_hits` hits; `limit`, `page` and `hitsPerPage` are echoed as asked, the
/// offset as capped.
fn pagination_fields(
    response: &mut Map<String, Value>,
    pagination: Pagination,
    count: usize,
    max_total_hits: usize,
) {
    let total = count.min(max_total_hits);
    match pagination {
        Pagination::Offset { offset, limit } => {
            response.insert("limit".into(), json!(limit));
            response.insert("offset".into(), json!(offset.min(max_total_hits)));
            response.insert("estimatedTotalHits".into(), json!(total));
        }
        Pagination::Page {
            page,
            hits_per_page,
        } => {
            // hitsPerPage 0: no page can be computed, so 0 (as Meilisearch).
            let total_pages = if hits_per_page == 0 {
                0
            } else {
                total.div_ceil(hits_per_page)
            };
            response.insert("hitsPerPage".into(), json!(hits_per_page));
            response.insert("page".into(), json!(page));
            response.insert("totalPages".into(), json!(total_pages));
            response.insert("totalHits".into(), json!(total));
        }
    }
}

fn hits(
    searcher: &Searcher,
    collected: &Collected,
    skip: usize,
    request: &SearchRequest,
    words: &[Word],
    deadline: Option<Deadline>,
) -> Result<Vec<Box<RawValue>>, ApiError> {
    let retrieve_all = request
        .attributes_to_retrieve
        .as_ref()
        .is_none_or(|names| names.iter().any(|name| name == "*"));
    let as_stored = retrieve_all
        && request.attributes_to_highlight.is_empty()
        && request.attributes_to_crop.is_empty();
    collected
        .top
        .iter()
        .skip(skip)
        .map(|ranked| {
            check(deadline)?;
            let StoredSource(text) = searcher.doc(ranked.address).map_err(ApiError::internal)?;
            let text = text.ok_or_else(|| ApiError::internal("a document has no _source"))?;
            if as_stored {
                return RawValue::from_string(text).map_err(ApiError::internal);
            }
            let source: Map<String, Value> =
                serde_json::from_str(&text).map_err(ApiError::internal)?;
            serde_json::value::to_raw_value(&format::hit(&source, request, words))
                .map_err(ApiError::internal)
        })
        .collect()
}

/// A stored document read for its `_source` alone (the only stored field), without
/// building a general document first.
pub(super) struct StoredSource(pub(super) Option<String>);

impl DocumentDeserialize for StoredSource {
    fn deserialize<'de, D: DocumentDeserializer<'de>>(
        mut deserializer: D,
    ) -> Result<Self, DeserializeError> {
        let mut source = None;
        while let Some((_, text)) = deserializer.next_field::<String>()? {
            source = Some(text);
        }
        Ok(StoredSource(source))
    }
}

fn facet_maps(
    names: &[String],
    facets: &[(&'static str, AttrKind)],
    counts: &[FacetCounts],
    max_values_per_facet: usize,
) -> (Map<String, Value>, Map<String, Value>) {
    let mut distribution = Map::new();
    let mut stats = Map::new();
    for ((name, &(_, kind)), facet) in names.iter().zip(facets).zip(counts) {
        let mut values: Vec<(&String, &u64)> = facet.values.iter().collect();
        match kind {
            AttrKind::Number => values.sort_by(|a, b| {
                let x: f64 = a.0.parse().unwrap_or(f64::MAX);
                let y: f64 = b.0.parse().unwrap_or(f64::MAX);
                x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
            }),
            AttrKind::Keyword => values.sort_by(|a, b| a.0.cmp(b.0)),
        }
        let object: Map<String, Value> = values
            .into_iter()
            .take(max_values_per_facet)
            .map(|(value, count)| (value.clone(), json!(count)))
            .collect();
        distribution.insert(name.clone(), Value::Object(object));
        if let (AttrKind::Number, Some(min), Some(max)) = (kind, facet.min, facet.max) {
            stats.insert(
                name.clone(),
                json!({ "min": number(min), "max": number(max) }),
            );
        }
    }
    (distribution, stats)
}

fn number(value: f64) -> Value {
    serde_json::from_str(&format_number(value)).unwrap_or(Value::Null)
}

/// A checked facet-search request (read by `facet_search`).
#[derive(Debug, Clone)]
pub struct FacetSearchRequest {
    pub facet: (&'static str, AttrKind),
    pub facet_query: Option<String>,
    pub q: String,
    pub filter: Option<Filter>,
    pub matching_strategy: MatchingStrategy,
    /// The text fields `q` matches in (`attributesToSearchOn`).
    pub search_on: Vec<TextField>,
}

/// `POST /indexes/offers/facet-search`: the facet's values among the offers matching
/// `q` and `filter`, keeping those whose words match `facetQuery` (prefix and typos as
/// in search), most frequent first.
pub fn facet_search(
    generation: &Generation,
    relevance: &Relevance,
    request: &FacetSearchRequest,
    key_filter: Option<&Filter>,
    deadline: Option<Deadline>,
) -> Result<Value, ApiError> {
    let started = Instant::now();
    check(deadline)?;
    let filters: Vec<&Filter> = request.filter.iter().chain(key_filter).collect();
    let (query, _) = prepare(
        generation,
        relevance,
        &request.q,
        request.matching_strategy,
        &request.search_on,
        &filters,
    )?;
    let searcher = generation.reader.searcher();
    let collector = SearchCollector {
        keep: 0,
        scored: false,
        sort: Vec::new(),
        facets: vec![request.facet],
        ids: generation.ids.clone(),
        deadline: deadline.map(|deadline| deadline.at),
    };
    let collected = searcher
        .search(&query, &collector)
        .map_err(ApiError::internal)?;
    if collected.stopped {
        check(deadline)?;
    }
    let wanted = request
        .facet_query
        .as_deref()
        .map(|facet_query| query::analyze(facet_query, relevance))
        .unwrap_or_default();
    let mut values: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(facet) = collected.facets.first() {
        for (value, count) in &facet.values {
            let value_words = super::relevance::words(value);
            let matches = wanted.iter().all(|word| {
                value_words
                    .iter()
                    .any(|token| query::token_matches(token, word))
            });
            if matches {
                values.insert(value.clone(), *count);
            }
        }
    }
    let mut hits: Vec<(String, u64)> = values.into_iter().collect();
    hits.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    hits.truncate(MAX_FACET_HITS);
    Ok(json!({
        "facetHits": hits.into_iter().map(|(value, count)| json!({ "value": value, "count": count })).collect::<Vec<_>>(),
        "facetQuery": request.facet_query,
        "processingTimeMs": started.elapsed().as_millis() as u64,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::pagination_fields;
    use crate::search::params::Pagination;

    fn fields(pagination: Pagination, count: usize, max: usize) -> Value {
        let mut response = Map::new();
        pagination_fields(&mut response, pagination, count, max);
        Value::Object(response)
    }

    #[test]
    fn totals_count_at_most_max_total_hits_as_meilisearch() {
        let offset = |offset, limit| Pagination::Offset { offset, limit };
        assert_eq!(
            fields(offset(0, 1_000_000_000), 5000, 1000),
            json!({ "limit": 1_000_000_000, "offset": 0, "estimatedTotalHits": 1000 }),
            "the limit is echoed as asked, the total capped"
        );
        assert_eq!(
            fields(offset(4000, 20), 5000, 1000),
            json!({ "limit": 20, "offset": 1000, "estimatedTotalHits": 1000 }),
            "the offset is echoed as capped"
        );
        assert_eq!(
            fields(offset(0, 20), 42, 1000),
            json!({ "limit": 20, "offset": 0, "estimatedTotalHits": 42 })
        );
        let page = |page, hits_per_page| Pagination::Page {
            page,
            hits_per_page,
        };
        assert_eq!(
            fields(page(3, 30), 5000, 1000),
            json!({ "hitsPerPage": 30, "page": 3, "totalPages": 34, "totalHits": 1000 })
        );
        assert_eq!(
            fields(page(80, 30), 5000, 1000),
            json!({ "hitsPerPage": 30, "page": 80, "totalPages": 34, "totalHits": 1000 }),
            "a page past the last is echoed, with the capped totals"
        );
        assert_eq!(
            fields(page(1, 0), 5000, 1000),
            json!({ "hitsPerPage": 0, "page": 1, "totalPages": 0, "totalHits": 1000 })
        );
        assert_eq!(
            fields(page(1, 20), 41, 1000),
            json!({ "hitsPerPage": 20, "page": 1, "totalPages": 3, "totalHits": 41 })
        );
    }
}
