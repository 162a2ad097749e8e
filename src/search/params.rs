//! Search parameters: read from a JSON body (POST) or a query string (GET), checked
//! field by field with Meilisearch's error codes. Unknown fields are refused; fields
//! Meilisearch has but this subset does not act on (vectors, hybrid, ranking scores,
//! ...) are accepted and ignored, so clients that send them still work.

use serde_json::{Map, Value};

use super::collect::MAX_SORT;
use super::error::{ApiError, invalid_type};
use super::filter::{self, Filter};
use super::query::MatchingStrategy;
use super::schema::{self, AttrKind, FILTERABLE, SEARCHABLE, TextField};
use super::sort::SortBy;

/// Hits per page when nothing is said (Meilisearch's default).
pub const DEFAULT_LIMIT: usize = 20;
/// Words kept by `attributesToCrop` when nothing is said.
pub const DEFAULT_CROP_LENGTH: usize = 10;
/// Longest `highlightPreTag`, `highlightPostTag` or `cropMarker`: each is copied around
/// every match of every hit, so a long one would multiply the answer's size.
pub const MAX_MARKER_BYTES: usize = 256;

const SEARCH_FIELDS: &[&str] = &[
    "q",
    "offset",
    "limit",
    "page",
    "hitsPerPage",
    "filter",
    "facets",
    "sort",
    "attributesToRetrieve",
    "attributesToHighlight",
    "highlightPreTag",
    "highlightPostTag",
    "attributesToCrop",
    "cropLength",
    "cropMarker",
    "matchingStrategy",
    "showMatchesPosition",
    "showRankingScore",
    "showRankingScoreDetails",
    "rankingScoreThreshold",
    "attributesToSearchOn",
    "distinct",
    "vector",
    "hybrid",
    "retrieveVectors",
    "locales",
    "media",
];

/// `limit`/`offset` or `page`/`hitsPerPage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pagination {
    Offset { offset: usize, limit: usize },
    Page { page: usize, hits_per_page: usize },
}

impl Pagination {
    /// The hits to skip and to return.
    pub fn window(self) -> (usize, usize) {
        match self {
            Pagination::Offset { offset, limit } => (offset, limit),
            Pagination::Page { page: 0, .. } => (0, 0),
            Pagination::Page {
                page,
                hits_per_page,
            } => ((page - 1).saturating_mul(hits_per_page), hits_per_page),
        }
    }

    /// The window cut at `max_total_hits`, as Meilisearch cuts it: the offset is capped
    /// at `max_total_hits`, then the limit at what is left, so no hit ranked past
    /// `max_total_hits` is ever returned (`limit: 1e9` returns at most that many).
    /// Meilisearch's `perform_search` (crates/meilisearch/src/search/mod.rs) does the
    /// same: `offset = min(offset, max_total_hits)`, then
    /// `limit = min(limit, max_total_hits - offset)`.
    pub fn capped(self, max_total_hits: usize) -> (usize, usize) {
        let (skip, take) = self.window();
        let skip = skip.min(max_total_hits);
        (skip, take.min(max_total_hits - skip))
    }
}

/// A checked search request.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub q: String,
    pub filter: Option<Filter>,
    pub facets: Vec<(&'static str, AttrKind)>,
    /// The facets as the request spelled them (`price` for `min_price`), for the response.
    pub facet_names: Vec<String>,
    pub sort: Vec<SortBy>,
    pub pagination: Pagination,
    /// `None`: every attribute.
    pub attributes_to_retrieve: Option<Vec<String>>,
    pub attributes_to_highlight: Vec<String>,
    pub highlight_pre_tag: String,
    pub highlight_post_tag: String,
    /// Attribute and its own crop length, if given as `attr:n`.
    pub attributes_to_crop: Vec<(String, Option<usize>)>,
    pub crop_length: usize,
    pub crop_marker: String,
    pub matching_strategy: MatchingStrategy,
    /// The text fields `q` matches in (`attributesToSearchOn`, see [`search_on`]).
    pub search_on: Vec<TextField>,
    /// `showMatchesPosition`: each hit lists where its attributes match (`format`).
    pub show_matches_position: bool,
    /// `showRankingScore` and `showRankingScoreDetails` (see `score`).
    pub show_ranking_score: bool,
    pub show_ranking_score_details: bool,
    /// `rankingScoreThreshold`: hits scoring below it are left out.
    pub ranking_score_threshold: Option<f64>,
    /// `distinct`: the attribute to keep one document per value of, for this search
    /// (else the configured `distinctAttribute`, see `Relevance`).
    pub distinct: Option<(&'static str, AttrKind)>,
}

impl SearchRequest {
    /// Parses a JSON body's object. `extra` lists further accepted fields (e.g.
    /// `indexUid` in a multi-search query) that the caller reads itself.
    pub fn from_object(
        object: &Map<String, Value>,
        extra: &[&str],
    ) -> Result<SearchRequest, ApiError> {
        reject_unknown(object, SEARCH_FIELDS, extra)?;
        let q = match object.get("q") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(q)) => q.clone(),
            Some(other) => return Err(invalid_type("invalid_search_q", ".q", "a string", other)),
        };
        let offset = count(object, "offset", "invalid_search_offset")?;
        let limit = count(object, "limit", "invalid_search_limit")?;
        let page = count(object, "page", "invalid_search_page")?;
        let hits_per_page = count(object, "hitsPerPage", "invalid_search_hits_per_page")?;
        let pagination = if page.is_some() || hits_per_page.is_some() {
            Pagination::Page {
                page: page.unwrap_or(1),
                hits_per_page: hits_per_page.unwrap_or(DEFAULT_LIMIT),
            }
        } else {
            Pagination::Offset {
                offset: offset.unwrap_or(0),
                limit: limit.unwrap_or(DEFAULT_LIMIT),
            }
        };
        let filter = match object.get("filter") {
            None => None,
            Some(value) => filter::from_json(value)
                .map_err(|err| ApiError::invalid("invalid_search_filter", err.0))?,
        };
        let (facet_names, facets) = parse_facets(object.get("facets"))?.into_iter().unzip();
        let sort = parse_sort(object.get("sort"))?;
        let attributes_to_retrieve = string_list(
            object,
            "attributesToRetrieve",
            "invalid_search_attributes_to_retrieve",
        )?;
        let attributes_to_highlight = string_list(
            object,
            "attributesToHighlight",
            "invalid_search_attributes_to_highlight",
        )?
        .unwrap_or_default();
        let highlight_pre_tag = marker(
            object,
            "highlightPreTag",
            "invalid_search_highlight_pre_tag",
        )?
        .unwrap_or_else(|| "<em>".into());
        let highlight_post_tag = marker(
            object,
            "highlightPostTag",
            "invalid_search_highlight_post_tag",
        )?
        .unwrap_or_else(|| "</em>".into());
        let crop = string_list(
            object,
            "attributesToCrop",
            "invalid_search_attributes_to_crop",
        )?
        .unwrap_or_default();
        let mut attributes_to_crop = Vec::with_capacity(crop.len());
        for entry in crop {
            match entry.rsplit_once(':') {
                Some((name, length)) => {
                    let length = length.parse::<usize>().map_err(|_| {
                        ApiError::invalid(
                            "invalid_search_attributes_to_crop",
                            format!("Invalid value at `.attributesToCrop`: `{entry}` must be `attribute` or `attribute:length` with a positive integer length."),
                        )
                    })?;
                    attributes_to_crop.push((name.to_string(), Some(length)));
                }
                None => attributes_to_crop.push((entry, None)),
            }
        }
        let crop_length = count(object, "cropLength", "invalid_search_crop_length")?
            .unwrap_or(DEFAULT_CROP_LENGTH);
        let crop_marker = marker(object, "cropMarker", "invalid_search_crop_marker")?
            .unwrap_or_else(|| "…".into());
        let matching_strategy = matching_strategy(
            object.get("matchingStrategy"),
            "invalid_search_matching_strategy",
        )?;
        for (name, code) in [
            (
                "showMatchesPosition",
                "invalid_search_show_matches_position",
            ),
            ("showRankingScore", "invalid_search_show_ranking_score"),
            (
                "showRankingScoreDetails",
                "invalid_search_show_ranking_score_details",
            ),
            ("retrieveVectors", "invalid_search_retrieve_vectors"),
        ] {
            match object.get(name) {
                None | Some(Value::Null | Value::Bool(_)) => {}
                Some(other) => {
                    return Err(invalid_type(code, &format!(".{name}"), "a boolean", other));
                }
            }
        }
        let search_on = search_on(object.get("attributesToSearchOn"))?;
        let ranking_score_threshold = ranking_score_threshold(object.get("rankingScoreThreshold"))?;
        let flag = |name: &str| object.get(name) == Some(&Value::Bool(true));
        let show_matches_position = flag("showMatchesPosition");
        let show_ranking_score = flag("showRankingScore");
        let show_ranking_score_details = flag("showRankingScoreDetails");
        let distinct = match object.get("distinct") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => Some(distinct_attribute(name)?),
            Some(other) => {
                return Err(invalid_type(
                    "invalid_search_distinct",
                    ".distinct",
                    "a string",
                    other,
                ));
            }
        };
        Ok(SearchRequest {
            q,
            filter,
            facets,
            facet_names,
            sort,
            pagination,
            attributes_to_retrieve,
            attributes_to_highlight,
            highlight_pre_tag,
            highlight_post_tag,
            attributes_to_crop,
            crop_length,
            crop_marker,
            matching_strategy,
            search_on,
            show_matches_position,
            show_ranking_score,
            show_ranking_score_details,
            ranking_score_threshold,
            distinct,
        })
    }

    /// Parses the query string of `GET /indexes/{uid}/search`: lists are comma-separated,
    /// numbers and booleans are spelled out, `filter` is a filter string.
    pub fn from_query_pairs(pairs: &[(String, String)]) -> Result<SearchRequest, ApiError> {
        let mut object = Map::new();
        for (key, value) in pairs {
            let json = match key.as_str() {
                "offset" | "limit" | "page" | "hitsPerPage" | "cropLength" => {
                    match value.parse::<u64>() {
                        Ok(number) => Value::from(number),
                        Err(_) => Value::String(value.clone()),
                    }
                }
                "rankingScoreThreshold" => match value.parse::<f64>() {
                    Ok(number) if number.is_finite() => Value::from(number),
                    _ => Value::String(value.clone()),
                },
                "facets"
                | "sort"
                | "attributesToSearchOn"
                | "attributesToRetrieve"
                | "attributesToHighlight"
                | "attributesToCrop" => Value::Array(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|item| !item.is_empty())
                        .map(|item| Value::String(item.to_string()))
                        .collect(),
                ),
                "showMatchesPosition"
                | "showRankingScore"
                | "showRankingScoreDetails"
                | "retrieveVectors" => match value.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => Value::String(value.clone()),
                },
                _ => Value::String(value.clone()),
            };
            object.insert(key.clone(), json);
        }
        SearchRequest::from_object(&object, &[])
    }
}

/// The attribute a search's `distinct` names: it must be filterable, as Meilisearch
/// requires (milli's `InvalidDistinctAttribute`).
fn distinct_attribute(name: &str) -> Result<(&'static str, AttrKind), ApiError> {
    schema::filterable(name).ok_or_else(|| {
            ApiError::invalid(
                "invalid_search_distinct",
                format!(
                    "Attribute `{name}` is not filterable and thus, cannot be used as distinct attribute. Available filterable attributes are: `{}`.",
                    schema::filterable_names().join(", ")
                ),
            )
        })
}

/// The text fields `attributesToSearchOn` names (every one when absent, `null` or
/// `["*"]`). Attributes share text fields (vendor, seller, tags, category, collections
/// and SKU names are one field, GTIN, UPC and EAN another), so naming one of a group
/// searches the whole group: `["vendor"]` also matches a word in the seller's name.
/// An attribute that is not searchable is refused, as Meilisearch refuses it.
pub fn search_on(value: Option<&Value>) -> Result<Vec<TextField>, ApiError> {
    const CODE: &str = "invalid_search_attributes_to_search_on";
    let all = super::query::ALL_TEXT_FIELDS.to_vec();
    let names = match value {
        None | Some(Value::Null) => return Ok(all),
        Some(Value::Array(names)) => names,
        Some(other) => {
            return Err(invalid_type(
                CODE,
                ".attributesToSearchOn",
                "an array",
                other,
            ));
        }
    };
    let mut fields = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let Value::String(name) = name else {
            return Err(invalid_type(
                CODE,
                &format!(".attributesToSearchOn[{i}]"),
                "a string",
                name,
            ));
        };
        if name == "*" {
            return Ok(all);
        }
        let Some(&(_, field)) = SEARCHABLE
            .iter()
            .find(|(attribute, _)| *attribute == name.as_str())
        else {
            let available: Vec<&str> = SEARCHABLE.iter().map(|(attribute, _)| *attribute).collect();
            return Err(ApiError::invalid(
                CODE,
                format!(
                    "Attribute `{name}` is not searchable. Available searchable attributes are: `{}`.",
                    available.join(", ")
                ),
            ));
        };
        if !fields.contains(&field) {
            fields.push(field);
        }
    }
    Ok(fields)
}

/// `rankingScoreThreshold`, checked as Meilisearch checks it (a number from 0.0 to 1.0).
pub(super) fn ranking_score_threshold(value: Option<&Value>) -> Result<Option<f64>, ApiError> {
    const CODE: &str = "invalid_search_ranking_score_threshold";
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => match number.as_f64() {
            Some(threshold) if (0.0..=1.0).contains(&threshold) => Ok(Some(threshold)),
            _ => Err(ApiError::invalid(
                CODE,
                "Invalid value at `.rankingScoreThreshold`: the value of `rankingScoreThreshold` is invalid, expected a float between `0.0` and `1.0`.",
            )),
        },
        Some(other) => Err(invalid_type(
            CODE,
            ".rankingScoreThreshold",
            "a number",
            other,
        )),
    }
}

/// Refuses fields that are neither in `known` nor `extra`, as Meilisearch does.
pub fn reject_unknown(
    object: &Map<String, Value>,
    known: &[&str],
    extra: &[&str],
) -> Result<(), ApiError> {
    for key in object.keys() {
        if !known.contains(&key.as_str()) && !extra.contains(&key.as_str()) {
            let expected: Vec<String> = known
                .iter()
                .chain(extra)
                .map(|name| format!("`{name}`"))
                .collect();
            return Err(ApiError::bad_request(format!(
                "Unknown field `{key}`: expected one of {}",
                expected.join(", ")
            )));
        }
    }
    Ok(())
}

pub fn matching_strategy(
    value: Option<&Value>,
    code: &'static str,
) -> Result<MatchingStrategy, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(MatchingStrategy::Last),
        Some(Value::String(text)) if text == "last" => Ok(MatchingStrategy::Last),
        Some(Value::String(text)) if text == "frequency" => Ok(MatchingStrategy::Frequency),
        Some(Value::String(text)) if text == "all" => Ok(MatchingStrategy::All),
        Some(Value::String(text)) => Err(ApiError::invalid(
            code,
            format!(
                "Unknown value `{text}` at `.matchingStrategy`: expected one of `last`, `all`, `frequency`"
            ),
        )),
        Some(other) => Err(invalid_type(code, ".matchingStrategy", "a string", other)),
    }
}

/// An optional non-negative integer (larger than `usize` saturates).
pub(super) fn count(
    object: &Map<String, Value>,
    name: &str,
    code: &'static str,
) -> Result<Option<usize>, ApiError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) if number.as_u64().is_some() => Ok(Some(
            number.as_u64().unwrap_or_default().min(usize::MAX as u64) as usize,
        )),
        Some(other) => Err(invalid_type(
            code,
            &format!(".{name}"),
            "a positive integer",
            other,
        )),
    }
}

pub fn string(
    object: &Map<String, Value>,
    name: &str,
    code: &'static str,
) -> Result<Option<String>, ApiError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(invalid_type(code, &format!(".{name}"), "a string", other)),
    }
}

/// A highlight tag or crop marker, at most [`MAX_MARKER_BYTES`] long.
fn marker(
    object: &Map<String, Value>,
    name: &str,
    code: &'static str,
) -> Result<Option<String>, ApiError> {
    let text = string(object, name, code)?;
    match &text {
        Some(text) if text.len() > MAX_MARKER_BYTES => Err(ApiError::invalid(
            code,
            format!(
                "Invalid value at `.{name}`: {} bytes given, at most {MAX_MARKER_BYTES} are accepted.",
                text.len()
            ),
        )),
        _ => Ok(text),
    }
}

/// An optional array of strings, each checked, with `code` naming the bad element.
pub(super) fn string_list(
    object: &Map<String, Value>,
    name: &str,
    code: &'static str,
) -> Result<Option<Vec<String>>, ApiError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(text) => Ok(text.clone()),
                other => Err(invalid_type(
                    code,
                    &format!(".{name}[{i}]"),
                    "a string",
                    other,
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(invalid_type(code, &format!(".{name}"), "an array", other)),
    }
}

/// The requested facets: the name as spelled, and the attribute it resolves to.
type RequestedFacets = Vec<(String, (&'static str, AttrKind))>;

fn parse_facets(value: Option<&Value>) -> Result<RequestedFacets, ApiError> {
    let names = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(invalid_type(
                "invalid_search_facets",
                ".facets",
                "an array",
                other,
            ));
        }
    };
    let mut facets: RequestedFacets = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let Value::String(name) = name else {
            return Err(invalid_type(
                "invalid_search_facets",
                &format!(".facets[{i}]"),
                "a string",
                name,
            ));
        };
        if name == "*" {
            for &(attribute, kind) in FILTERABLE {
                if !facets.iter().any(|(_, (seen, _))| *seen == attribute) {
                    facets.push((attribute.to_string(), (attribute, kind)));
                }
            }
            continue;
        }
        let Some((attribute, kind)) = schema::filterable(name) else {
            return Err(ApiError::invalid(
                "invalid_search_facets",
                format!(
                    "Invalid facet distribution, attribute `{name}` is not filterable. The available filterable attributes are `{}`.",
                    schema::filterable_names().join(", ")
                ),
            ));
        };
        if !facets.iter().any(|(_, (seen, _))| *seen == attribute) {
            facets.push((name.clone(), (attribute, kind)));
        }
    }
    Ok(facets)
}

fn parse_sort(value: Option<&Value>) -> Result<Vec<SortBy>, ApiError> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(invalid_type(
                "invalid_search_sort",
                ".sort",
                "an array",
                other,
            ));
        }
    };
    if items.len() > MAX_SORT {
        return Err(ApiError::invalid(
            "invalid_search_sort",
            format!(
                "Too many sort criteria: {} given, at most {MAX_SORT} are supported.",
                items.len()
            ),
        ));
    }
    let mut sort = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::String(text) = item else {
            return Err(invalid_type(
                "invalid_search_sort",
                &format!(".sort[{i}]"),
                "a string",
                item,
            ));
        };
        let (name, descending) = match text.rsplit_once(':') {
            Some((name, "asc")) => (name, false),
            Some((name, "desc")) => (name, true),
            _ => {
                return Err(ApiError::invalid(
                    "invalid_search_sort",
                    format!(
                        "Invalid syntax for the sort parameter: expected expression ending by `:asc` or `:desc`, found `{text}`."
                    ),
                ));
            }
        };
        let Some((attribute, field)) = schema::sortable(name) else {
            return Err(ApiError::invalid(
                "invalid_search_sort",
                format!(
                    "Attribute `{name}` is not sortable. Available sortable attributes are: `{}`.",
                    schema::sortable_names().join(", ")
                ),
            ));
        };
        let requested = schema::ALIASES
            .iter()
            .find(|(alias, _)| *alias == name)
            .map_or(attribute, |(alias, _)| *alias);
        sort.push(SortBy {
            attribute,
            requested,
            field,
            descending,
        });
    }
    Ok(sort)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{Pagination, TextField, search_on};

    #[test]
    fn windows_are_cut_at_max_total_hits_like_meilisearch() {
        let offset = |offset, limit| Pagination::Offset { offset, limit };
        let page = |page, hits_per_page| Pagination::Page {
            page,
            hits_per_page,
        };
        assert_eq!(offset(0, 20).capped(1000), (0, 20));
        assert_eq!(offset(0, 1_000_000_000).capped(1000), (0, 1000));
        assert_eq!(offset(990, 20).capped(1000), (990, 10));
        assert_eq!(
            offset(5000, 20).capped(1000),
            (1000, 0),
            "the offset is capped too"
        );
        assert_eq!(offset(usize::MAX, usize::MAX).capped(1000), (1000, 0));
        assert_eq!(page(1, 20).capped(1000), (0, 20));
        assert_eq!(page(50, 20).capped(1000), (980, 20));
        assert_eq!(page(51, 20).capped(1000), (1000, 0));
        assert_eq!(page(2, 999).capped(1000), (999, 1));
        assert_eq!(page(0, 20).capped(1000), (0, 0), "page 0 returns nothing");
        assert_eq!(page(usize::MAX, usize::MAX).capped(1000), (1000, 0));
    }

    #[test]
    fn attributes_to_search_on_name_the_text_fields() {
        let on = |value: Value| search_on(Some(&value)).unwrap();
        assert_eq!(on(json!(["name"])), [TextField::Name]);
        assert_eq!(
            on(json!(["description", "vendor", "seller"])),
            [TextField::Description, TextField::Secondary]
        );
        assert_eq!(on(json!(["gtins"])), [TextField::Codes]);
        assert_eq!(
            on(json!(["name", "*"])),
            crate::search::query::ALL_TEXT_FIELDS
        );
        assert!(
            on(json!([])).is_empty(),
            "nothing to search on: only an empty q matches"
        );
    }
}
