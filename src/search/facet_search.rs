//! The parameters of `POST /indexes/offers/facet-search`, read as Meilisearch reads them
//! (crates/meilisearch/src/routes/indexes/facet_search.rs, `FacetSearchQuery`).
//!
//! Unlike search, facet search deliberately accepts fields it does not know: Meilisearch
//! does not deny unknown fields there, and InstantSearch's searchable `refinementList`
//! sends its facet search with the page's search parameters (`attributesToHighlight`,
//! `highlightPreTag`, `limit`, `offset`, ...). Those are ignored. The fields Meilisearch
//! reads are still checked, with its codes: `facetName`, `facetQuery`, `q`, `filter`,
//! `matchingStrategy`, `attributesToSearchOn`, `exhaustiveFacetCount`,
//! `rankingScoreThreshold`, plus `vector`, `hybrid`, `media`, `locales` and
//! `useNetwork`, accepted and without effect here (no vectors, one language, one node).

use serde_json::{Map, Value};

use super::error::{ApiError, invalid_type};
use super::execute::FacetSearchRequest;
use super::filter;
use super::params;
use super::schema;

impl FacetSearchRequest {
    /// Reads a facet-search body; fields Meilisearch does not read are ignored.
    pub fn from_object(object: &Map<String, Value>) -> Result<FacetSearchRequest, ApiError> {
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
        let Some(facet) = schema::filterable(&name) else {
            return Err(ApiError::invalid(
                "invalid_facet_search_facet_name",
                format!(
                    "Attribute `{name}` is not facet-searchable. Available facet-searchable attributes are: `{}`.",
                    schema::filterable_names().join(", ")
                ),
            ));
        };
        // Every facet count here is exact (the collector counts every match), which is
        // what `exhaustiveFacetCount: true` asks for; `false` (an estimate) may be
        // answered exactly too. Only its type is checked.
        match object.get("exhaustiveFacetCount") {
            None | Some(Value::Null | Value::Bool(_)) => {}
            Some(other) => {
                return Err(invalid_type(
                    "invalid_facet_search_exhaustive_facet_count",
                    ".exhaustiveFacetCount",
                    "a boolean",
                    other,
                ));
            }
        }
        Ok(FacetSearchRequest {
            facet,
            // Meilisearch's `InvalidFacetSearchQuery`.
            facet_query: params::string(object, "facetQuery", "invalid_facet_search_query")?,
            q: params::string(object, "q", "invalid_search_q")?.unwrap_or_default(),
            filter: match object.get("filter") {
                None => None,
                Some(value) => filter::from_json(value)
                    .map_err(|err| ApiError::invalid("invalid_search_filter", err.0))?,
            },
            matching_strategy: params::matching_strategy(
                object.get("matchingStrategy"),
                "invalid_search_matching_strategy",
            )?,
            search_on: params::search_on(object.get("attributesToSearchOn"))?,
            ranking_score_threshold: params::ranking_score_threshold(
                object.get("rankingScoreThreshold"),
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(body: Value) -> Result<FacetSearchRequest, ApiError> {
        FacetSearchRequest::from_object(body.as_object().unwrap())
    }

    #[test]
    fn instantsearch_parameters_are_ignored_and_known_ones_checked() {
        // What a searchable refinementList sends (instant-meilisearch 0.31).
        let request = parse(json!({
            "facetName": "vendor", "facetQuery": "nor", "q": "wool",
            "attributesToHighlight": ["*"], "highlightPreTag": "__ais-highlight__",
            "highlightPostTag": "__/ais-highlight__", "limit": 10, "offset": 0,
            "attributesToSnippet": [], "facets": [], "sort": [], "page": 0,
        }))
        .unwrap();
        assert_eq!(request.facet.0, "vendor");
        assert_eq!(request.facet_query.as_deref(), Some("nor"));
        assert_eq!(request.q, "wool");
        assert_eq!(request.search_on, super::super::query::ALL_TEXT_FIELDS);

        for (body, code) in [
            (
                json!({ "facetName": "vendor", "facetQuery": 1 }),
                "invalid_facet_search_query",
            ),
            (
                json!({ "facetName": "vendor", "q": [] }),
                "invalid_search_q",
            ),
            (
                json!({ "facetName": "vendor", "rankingScoreThreshold": 1.5 }),
                "invalid_search_ranking_score_threshold",
            ),
            (
                json!({ "facetName": "vendor", "exhaustiveFacetCount": "yes" }),
                "invalid_facet_search_exhaustive_facet_count",
            ),
            (
                json!({ "facetName": "vendor", "attributesToSearchOn": "name" }),
                "invalid_search_attributes_to_search_on",
            ),
            (
                json!({ "facetName": "vendor", "attributesToSearchOn": ["min_price"] }),
                "invalid_search_attributes_to_search_on",
            ),
            (
                json!({ "facetName": "vendor", "matchingStrategy": "most" }),
                "invalid_search_matching_strategy",
            ),
            (
                json!({ "facetName": "vendor", "filter": "price >" }),
                "invalid_search_filter",
            ),
            (
                json!({ "facetName": "name" }),
                "invalid_facet_search_facet_name",
            ),
            (json!({ "q": "x" }), "missing_facet_search_facet_name"),
        ] {
            assert_eq!(parse(body.clone()).unwrap_err().code, code, "{body}");
        }
    }
}
