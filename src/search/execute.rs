//! Running a checked request against one generation's searcher (one snapshot per
//! request, so a response never mixes two commits) and writing Meilisearch's response.
//! Blocking: callers run it on a blocking thread.
//!
//! [`Bounds`] caps what one search may cost: the hits it can reach (`maxTotalHits`,
//! with Meilisearch's totals), the values per facet, and a deadline after which the
//! search stops and answers `search_timeout` instead of a late answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tantivy::Searcher;
use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, Query};
use tantivy::schema::document::{DeserializeError, DocumentDeserialize, DocumentDeserializer};

use super::collect::{FacetCounts, Ranked, SearchCollector, Threshold, format_number};
use super::distinct::{self, DistinctCount};
use super::error::ApiError;
use super::filter::{self, Filter};
use super::format;
use super::params::{Pagination, SearchRequest};
use super::proximity::{self, Proximity};
use super::query::{self, MatchingStrategy};
use super::relevance::{FacetOrder, Relevance};
use super::rules::Rule;
use super::schema::{AttrKind, TextField};
use super::score::{self, Scoring};
use super::store::Generation;
use super::terms::{self, Highlights};

/// What one search may cost (`search.max_total_hits`, `search.max_values_per_facet`,
/// `search.timeout_ms`).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Hits reachable by a query, and the most its totals count (Meilisearch's
    /// `pagination.maxTotalHits`).
    pub max_total_hits: usize,
    /// Values per facet in `facetDistribution`, and facet-search hits (Meilisearch's
    /// `maxValuesPerFacet`).
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

/// A request's query, ready to run.
pub(super) struct Prepared {
    /// `q` (its words and phrases matching in the text fields asked for, minus its
    /// exclusions, see `terms`), the request's filter and the key's filter.
    pub query: Box<dyn Query>,
    /// What to highlight: nothing when `q` has no term (the search is then unscored).
    pub highlights: Highlights,
    /// How the best candidates are ranked by proximity, when `q` has several terms.
    pub proximity: Option<Proximity>,
    /// What hits' ranking scores are measured against, when `q` has terms.
    pub scoring: Option<Scoring>,
}

/// Prepares `q` matching in the text fields `on`, with `filters`.
pub(super) fn prepare(
    generation: &Generation,
    relevance: &Relevance,
    q: &str,
    strategy: MatchingStrategy,
    on: &[TextField],
    filters: &[&Filter],
) -> Result<Prepared, ApiError> {
    let parsed = terms::parse(q, relevance);
    let terms::Scored { query: text, ranks } = terms::build(
        &parsed,
        strategy,
        &generation.schema,
        relevance,
        on,
        &generation.reader.searcher(),
    )
    .map_err(ApiError::internal)?;
    let highlights = parsed.highlighted();
    let proximity = Proximity::of(&parsed, &ranks, &generation.schema, on, &relevance.order);
    let scoring = Scoring::of(&parsed, &ranks, relevance, on, strategy);
    if filters.is_empty() {
        return Ok(Prepared {
            query: text,
            highlights,
            proximity,
            scoring,
        });
    }
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, text)];
    for filter in filters {
        let compiled = filter::compile(filter, &generation.schema)
            .map_err(|err| ApiError::invalid("invalid_search_filter", err.0))?;
        clauses.push((Occur::Must, Box::new(ConstScoreQuery::new(compiled, 0.0))));
    }
    Ok(Prepared {
        query: Box::new(BooleanQuery::new(clauses)),
        highlights,
        proximity,
        scoring,
    })
}

/// A search answer: the hits as raw JSON (a stored document is sent as it is unless the
/// request reshapes it), and every other field.
#[derive(Debug)]
pub struct SearchResponse {
    pub hits: Vec<Box<RawValue>>,
    pub fields: Map<String, Value>,
    /// `facetDistribution`, already written: a `Value` map would list each facet's
    /// values by key, losing `sortFacetValuesBy: count`'s order.
    pub facet_distribution: Option<Box<RawValue>>,
}

impl Serialize for SearchResponse {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let entries = self.fields.len() + 1 + usize::from(self.facet_distribution.is_some());
        let mut map = serializer.serialize_map(Some(entries))?;
        map.serialize_entry("hits", &self.hits)?;
        for (key, value) in &self.fields {
            map.serialize_entry(key, value)?;
        }
        if let Some(distribution) = &self.facet_distribution {
            map.serialize_entry("facetDistribution", distribution)?;
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
    if !request.sort.is_empty() && !relevance.order.has(Rule::Sort) {
        return Err(ApiError::invalid(
            "invalid_search_sort",
            "You must specify where `sort` is listed in the rankingRules setting to use the sort parameter at search time.",
        ));
    }
    let filters: Vec<&Filter> = request.filter.iter().chain(key_filter).collect();
    let Prepared {
        query,
        highlights,
        proximity,
        scoring,
    } = prepare(
        generation,
        relevance,
        &request.q,
        request.matching_strategy,
        &request.search_on,
        &filters,
    )?;
    let searcher = generation.reader.searcher();
    generation.ids.keep_only(&searcher);
    let (skip, take) = request.pagination.capped(bounds.max_total_hits);
    let total_docs = searcher.num_docs() as usize;
    let wanted = skip + take;
    let distinct = request.distinct.or(relevance.distinct_attribute);
    // With `distinct`, more candidates than the page: some will be dropped. With
    // proximity, more than the page as well: it reorders the best of them.
    let keep = match distinct {
        None => wanted,
        Some(_) => wanted.saturating_mul(DISTINCT_WIDENING).saturating_add(64),
    };
    let keep = match &proximity {
        None => keep,
        Some(_) => keep.saturating_add(proximity::window(wanted)),
    }
    .min(total_docs);
    // A search without terms scores 1: no threshold leaves any of it out.
    let threshold = match (request.ranking_score_threshold, &scoring) {
        (Some(min), Some(scoring)) => Some(Arc::new(Threshold {
            scoring: scoring.clone(),
            min,
        })),
        _ => None,
    };
    let scores_shown = request.show_ranking_score || request.show_ranking_score_details;
    let mut collector = SearchCollector {
        keep,
        scored: !highlights.is_empty() || threshold.is_some(),
        order: relevance.order,
        sort: request.sort.clone(),
        facets: request.facets.clone(),
        ids: generation.ids.clone(),
        deadline: bounds.deadline.map(|deadline| deadline.at),
        distinct: distinct.map(DistinctCount::new),
        threshold: threshold.clone(),
    };
    let mut collected = searcher
        .search(&query, &collector)
        .map_err(ApiError::internal)?;
    stopped(collected.stopped, bounds.deadline)?;
    // Without `distinct` the page is the first `wanted`; with it, every candidate is
    // kept in order for `distinct` to choose from.
    let page = distinct.is_none().then_some(wanted);
    // Scores shown or a threshold applied need every candidate's proximity. Returns
    // how many candidates the threshold dropped.
    let every = scores_shown || threshold.is_some();
    let by_proximity = |ranked: &mut Vec<Ranked>| -> Result<usize, ApiError> {
        // Under a threshold the exact scores decide, before the page is cut.
        let cut_here = if threshold.is_some() { None } else { page };
        if let Some(proximity) = &proximity {
            check(bounds.deadline)?;
            proximity
                .settle(
                    &searcher,
                    &generation.schema,
                    ranked,
                    cut_here,
                    &request.sort,
                    every,
                )
                .map_err(ApiError::internal)?;
        }
        let Some(threshold) = &threshold else {
            return Ok(0);
        };
        // The collector kept what may reach the threshold; with proximity known, the
        // exact scores decide.
        let before = ranked.len();
        ranked.retain(|candidate| threshold.scoring.score(candidate) >= threshold.min);
        let dropped = before - ranked.len();
        if let Some(page) = page {
            ranked.truncate(page);
        }
        Ok(dropped)
    };
    let dropped = by_proximity(&mut collected.top)?;
    // The candidates found below the threshold leave the count too (as Meilisearch
    // leaves those it ranked); those beyond the candidates stay in it, an estimate.
    // A `distinct` count is of values, which the dropped may share with others.
    if distinct.is_none() {
        collected.count -= dropped.min(collected.count);
    }
    // Without `distinct`, `top` is the page already: the collector kept `wanted`, or
    // proximity cut its wider window back to it.
    let top = match distinct {
        None => std::mem::take(&mut collected.top),
        Some(attribute) => {
            // The first `wanted` documents `distinct` keeps in ranking order: widen
            // the candidates until they hold that many, or every match. The wider
            // passes only rank (no facets, no count).
            collector.facets.clear();
            collector.distinct = None;
            let mut ranked = std::mem::take(&mut collected.top);
            loop {
                let kept = distinct::first_in_ranking_order(&searcher, attribute, &ranked, wanted)
                    .map_err(ApiError::internal)?;
                if kept.len() == wanted || ranked.len() >= collected.matched {
                    break kept;
                }
                check(bounds.deadline)?;
                collector.keep = collector
                    .keep
                    .saturating_mul(DISTINCT_WIDENING)
                    .min(collected.matched);
                let wider = searcher
                    .search(&query, &collector)
                    .map_err(ApiError::internal)?;
                stopped(wider.stopped, bounds.deadline)?;
                ranked = wider.top;
                by_proximity(&mut ranked)?;
            }
        }
    };
    let hits = hits(
        &searcher,
        &top,
        skip,
        request,
        &highlights,
        scoring.as_ref(),
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
    let mut facet_distribution = None;
    if !request.facets.is_empty() {
        let (distribution, stats) = facet_maps(
            &request.facet_names,
            &request.facets,
            &collected.facets,
            relevance,
            bounds.max_values_per_facet,
        );
        facet_distribution =
            Some(serde_json::value::to_raw_value(&distribution).map_err(ApiError::internal)?);
        response.insert("facetStats".into(), Value::Object(stats));
    }
    Ok(SearchResponse {
        hits,
        fields: response,
        facet_distribution,
    })
}

/// How much wider each pass over the candidates is than the last, with `distinct`.
const DISTINCT_WIDENING: usize = 4;

/// A collection that stopped at the deadline answers `search_timeout`.
fn stopped(stopped: bool, deadline: Option<Deadline>) -> Result<(), ApiError> {
    if !stopped {
        return Ok(());
    }
    Err(deadline.map_or_else(
        || ApiError::internal("a search stopped without a deadline"),
        |deadline| deadline.error(),
    ))
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
    top: &[Ranked],
    skip: usize,
    request: &SearchRequest,
    highlights: &Highlights,
    scoring: Option<&Scoring>,
    deadline: Option<Deadline>,
) -> Result<Vec<Box<RawValue>>, ApiError> {
    let retrieve_all = request
        .attributes_to_retrieve
        .as_ref()
        .is_none_or(|names| names.iter().any(|name| name == "*"));
    let as_stored = retrieve_all
        && request.attributes_to_highlight.is_empty()
        && request.attributes_to_crop.is_empty()
        && !request.show_matches_position
        && !request.show_ranking_score
        && !request.show_ranking_score_details;
    top.iter()
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
            let mut hit = format::hit(&source, request, highlights);
            if let Value::Object(fields) = &mut hit {
                add_ranking_score(fields, ranked, request, scoring, &source);
            }
            serde_json::value::to_raw_value(&hit).map_err(ApiError::internal)
        })
        .collect()
}

/// `_rankingScore` and `_rankingScoreDetails`, as asked, after the hit's other fields
/// (where Meilisearch writes them).
fn add_ranking_score(
    fields: &mut Map<String, Value>,
    ranked: &Ranked,
    request: &SearchRequest,
    scoring: Option<&Scoring>,
    source: &Map<String, Value>,
) {
    if request.show_ranking_score {
        let score = scoring.map_or(1.0, |scoring| scoring.score(ranked));
        fields.insert("_rankingScore".into(), json!(score));
    }
    if request.show_ranking_score_details {
        let details = match scoring {
            Some(scoring) => scoring.details(ranked, &request.sort, source),
            None => score::placeholder_details(&request.sort, source),
        };
        fields.insert("_rankingScoreDetails".into(), details);
    }
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

/// Each facet's values in its listed order, written as JSON objects in that order.
struct Distribution<'a>(Vec<(&'a String, Vec<(&'a String, &'a u64)>)>);

/// One facet's values, written as a JSON object in their order.
struct Values<'a>(&'a [(&'a String, &'a u64)]);

impl Serialize for Values<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().copied())
    }
}

impl Serialize for Distribution<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, values)| (name, Values(values))))
    }
}

fn facet_maps<'a>(
    names: &'a [String],
    facets: &[(&'static str, AttrKind)],
    counts: &'a [FacetCounts],
    relevance: &Relevance,
    max_values_per_facet: usize,
) -> (Distribution<'a>, Map<String, Value>) {
    let mut distribution = Vec::new();
    let mut stats = Map::new();
    for ((name, &(attribute, kind)), facet) in names.iter().zip(facets).zip(counts) {
        let mut values = ordered_values(&facet.values, kind, relevance.facet_order(attribute));
        values.truncate(max_values_per_facet);
        distribution.push((name, values));
        if let (AttrKind::Number, Some(min), Some(max)) = (kind, facet.min, facet.max) {
            stats.insert(
                name.clone(),
                json!({ "min": number(min), "max": number(max) }),
            );
        }
    }
    (Distribution(distribution), stats)
}

/// A facet's values in `order`, as Meilisearch lists them: `alpha` by value (numbers
/// numerically), `count` most frequent first with equal counts greater value first
/// (milli pops its count heap by count, then value: `facet_distribution_iter.rs`,
/// `count_iterate_over_facet_distribution`, and facet search's `ValuesCollection`).
fn ordered_values<'a, I>(values: I, kind: AttrKind, order: FacetOrder) -> Vec<(&'a String, &'a u64)>
where
    I: IntoIterator<Item = (&'a String, &'a u64)>,
{
    let by_value = |a: &String, b: &String| match kind {
        AttrKind::Number => {
            let x: f64 = a.parse().unwrap_or(f64::MAX);
            let y: f64 = b.parse().unwrap_or(f64::MAX);
            x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
        }
        AttrKind::Keyword => a.cmp(b),
    };
    let mut values: Vec<(&String, &u64)> = values.into_iter().collect();
    match order {
        FacetOrder::Alpha => values.sort_by(|a, b| by_value(a.0, b.0)),
        FacetOrder::Count => values.sort_by(|a, b| b.1.cmp(a.1).then_with(|| by_value(b.0, a.0))),
    }
    values
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
    /// `rankingScoreThreshold`: only the offers that may score it are counted.
    pub ranking_score_threshold: Option<f64>,
}

/// `POST /indexes/offers/facet-search`: the facet's values among the offers matching
/// `q` and `filter`, keeping those whose words match `facetQuery` (prefix and typos as
/// in search), in the facet's `sortFacetValuesBy` order (`relevance::Relevance::facet_order`),
/// at most `maxValuesPerFacet` of them (as Meilisearch's `perform_facet_search` caps
/// them).
pub fn facet_search(
    generation: &Generation,
    relevance: &Relevance,
    request: &FacetSearchRequest,
    key_filter: Option<&Filter>,
    bounds: &Bounds,
) -> Result<Value, ApiError> {
    let deadline = bounds.deadline;
    let started = Instant::now();
    check(deadline)?;
    let filters: Vec<&Filter> = request.filter.iter().chain(key_filter).collect();
    let Prepared { query, scoring, .. } = prepare(
        generation,
        relevance,
        &request.q,
        request.matching_strategy,
        &request.search_on,
        &filters,
    )?;
    // Facet search ranks nothing, so proximity is never read: an offer counts when its
    // other rules may reach the threshold (`collect::Threshold`), an overestimate.
    let threshold = match (request.ranking_score_threshold, scoring) {
        (Some(min), Some(scoring)) => Some(Arc::new(Threshold { scoring, min })),
        _ => None,
    };
    let searcher = generation.reader.searcher();
    let collector = SearchCollector {
        keep: 0,
        scored: threshold.is_some(),
        order: relevance.order,
        sort: Vec::new(),
        facets: vec![request.facet],
        ids: generation.ids.clone(),
        deadline: deadline.map(|deadline| deadline.at),
        distinct: None,
        threshold,
    };
    let collected = searcher
        .search(&query, &collector)
        .map_err(ApiError::internal)?;
    stopped(collected.stopped, deadline)?;
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
    let (attribute, kind) = request.facet;
    let hits: Vec<(&String, &u64)> =
        ordered_values(&values, kind, relevance.facet_order(attribute))
            .into_iter()
            .take(bounds.max_values_per_facet)
            .collect();
    Ok(json!({
        "facetHits": hits.into_iter().map(|(value, count)| json!({ "value": value, "count": count })).collect::<Vec<_>>(),
        "facetQuery": request.facet_query,
        "processingTimeMs": started.elapsed().as_millis() as u64,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::{AttrKind, FacetOrder, ordered_values, pagination_fields};
    use crate::search::params::Pagination;

    #[test]
    fn facet_values_are_listed_by_value_or_by_count_as_meilisearch_lists_them() {
        let counts: Vec<(String, u64)> = [("b", 2), ("a", 2), ("c", 5), ("d", 1)]
            .into_iter()
            .map(|(value, count)| (value.to_string(), count))
            .collect();
        let listed = |kind, order| -> Vec<String> {
            ordered_values(counts.iter().map(|(v, c)| (v, c)), kind, order)
                .into_iter()
                .map(|(value, _)| value.clone())
                .collect()
        };
        assert_eq!(
            listed(AttrKind::Keyword, FacetOrder::Alpha),
            ["a", "b", "c", "d"]
        );
        // Most frequent first; equal counts greater value first.
        assert_eq!(
            listed(AttrKind::Keyword, FacetOrder::Count),
            ["c", "b", "a", "d"]
        );
        let numbers: Vec<(String, u64)> = [("10", 1), ("9", 1), ("100", 3)]
            .into_iter()
            .map(|(value, count)| (value.to_string(), count))
            .collect();
        let numeric: Vec<&String> = ordered_values(
            numbers.iter().map(|(v, c)| (v, c)),
            AttrKind::Number,
            FacetOrder::Alpha,
        )
        .into_iter()
        .map(|(value, _)| value)
        .collect();
        assert_eq!(numeric, ["9", "10", "100"]);
    }

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
