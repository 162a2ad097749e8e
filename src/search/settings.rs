//! The index settings as Meilisearch would report them
//! (`GET /indexes/offers/settings` and its sub-routes, crates/meilisearch/src/routes/
//! indexes/settings.rs), computed from what the daemon actually uses: the schema's
//! attributes, the relevance settings in `index/` (or `search.settings_dir`), and the
//! search bounds. Nothing here is stored: a setting changes when the code, `index/` or
//! the configuration does, and the settings API is read-only.

use serde_json::{Map, Value, json};

use super::relevance::Relevance;
use super::schema::{self, ALIASES, FILTERABLE, SEARCHABLE, TextField};

/// Sub-routes of `/indexes/offers/settings/{name}` and the field each answers, as
/// Meilisearch names them (kebab-case route, camelCase field).
pub const SUB_ROUTES: &[(&str, &str)] = &[
    ("displayed-attributes", "displayedAttributes"),
    ("searchable-attributes", "searchableAttributes"),
    ("filterable-attributes", "filterableAttributes"),
    ("sortable-attributes", "sortableAttributes"),
    ("ranking-rules", "rankingRules"),
    ("stop-words", "stopWords"),
    ("non-separator-tokens", "nonSeparatorTokens"),
    ("separator-tokens", "separatorTokens"),
    ("dictionary", "dictionary"),
    ("synonyms", "synonyms"),
    ("distinct-attribute", "distinctAttribute"),
    ("proximity-precision", "proximityPrecision"),
    ("typo-tolerance", "typoTolerance"),
    ("faceting", "faceting"),
    ("pagination", "pagination"),
    ("embedders", "embedders"),
    ("search-cutoff-ms", "searchCutoffMs"),
    ("localized-attributes", "localizedAttributes"),
    ("facet-search", "facetSearch"),
    ("prefix-search", "prefixSearch"),
];

/// What the settings depend on besides the relevance files.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub max_total_hits: usize,
    pub max_values_per_facet: usize,
    pub timeout_ms: u64,
}

/// `faceting.sortFacetValuesBy` as `index/relevance.toml` sets it; `*` is always
/// there, as Meilisearch answers it (`alpha` unless set).
fn sort_facet_values_by(relevance: &Relevance) -> Value {
    let mut orders = json!(relevance.faceting.sort_facet_values_by);
    orders["*"] = json!(relevance.facet_order("*"));
    orders
}

/// The whole settings object.
pub fn all(relevance: &Relevance, bounds: Bounds) -> Map<String, Value> {
    let weight = |field: TextField| relevance.weights.of(field);
    // Meilisearch's searchable order is the attribute ranking: here the weight of the
    // text field each attribute is searched in (ties keep the schema's order).
    let mut searchable: Vec<(&str, TextField)> = SEARCHABLE.to_vec();
    searchable.sort_by_key(|(_, field)| std::cmp::Reverse(weight(*field)));
    // Meilisearch lists filterable and sortable attributes sorted. The aliases
    // (`price`) are accepted in requests but are no attributes of a document.
    let mut filterable: Vec<&str> = FILTERABLE
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !ALIASES.iter().any(|(alias, _)| alias == name))
        .collect();
    filterable.sort_unstable();
    let mut stop_words: Vec<&String> = relevance.stop_words.iter().collect();
    stop_words.sort();
    let synonyms: std::collections::BTreeMap<&String, Vec<String>> = relevance
        .synonyms
        .iter()
        .map(|(word, alternatives)| {
            (
                word,
                alternatives.iter().map(|words| words.join(" ")).collect(),
            )
        })
        .collect();
    let exact_only: Vec<&str> = SEARCHABLE
        .iter()
        .filter(|(_, field)| *field == TextField::Codes)
        .map(|(name, _)| *name)
        .collect();
    let settings = json!({
        // Every attribute of a document is returned.
        "displayedAttributes": ["*"],
        "searchableAttributes": searchable.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        "filterableAttributes": filterable,
        // Numbers, texts and booleans (see `schema::sortable`).
        "sortableAttributes": schema::sortable_attributes(),
        "rankingRules": relevance.ranking_rules.iter().map(|rule| rule.name()).collect::<Vec<_>>(),
        "stopWords": stop_words,
        "nonSeparatorTokens": [],
        "separatorTokens": [],
        "dictionary": [],
        "synonyms": synonyms,
        "distinctAttribute": relevance.distinct_attribute.map(|(attribute, _)| attribute),
        "proximityPrecision": "byWord",
        "typoTolerance": {
            "enabled": true,
            "minWordSizeForTypos": {
                "oneTypo": relevance.typo.one_typo,
                "twoTypos": relevance.typo.two_typos,
            },
            "disableOnWords": [],
            // SKU codes (GTIN, UPC, EAN) match exactly only (see `query`).
            "disableOnAttributes": exact_only,
            "disableOnNumbers": false,
        },
        "faceting": {
            "maxValuesPerFacet": bounds.max_values_per_facet,
            "sortFacetValuesBy": sort_facet_values_by(relevance),
        },
        "pagination": { "maxTotalHits": bounds.max_total_hits },
        "embedders": {},
        // The search deadline (`search.timeout_ms`) plays Meilisearch's cut-off.
        "searchCutoffMs": bounds.timeout_ms,
        "localizedAttributes": null,
        "facetSearch": true,
        // The last word matches as a prefix (see `query`).
        "prefixSearch": "indexingTime",
    });
    match settings {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    }
}

/// The field a settings sub-route answers.
pub fn field_of(route: &str) -> Option<&'static str> {
    SUB_ROUTES
        .iter()
        .find(|(name, _)| *name == route)
        .map(|(_, field)| *field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_follow_the_shipped_relevance_files_and_bounds() {
        let relevance = Relevance::embedded();
        let bounds = Bounds {
            max_total_hits: 1000,
            max_values_per_facet: 100,
            timeout_ms: 2000,
        };
        let settings = Value::Object(all(&relevance, bounds));
        assert_eq!(
            settings["searchableAttributes"],
            json!([
                "name",
                "vendor",
                "seller",
                "tags",
                "category",
                "collections",
                "sku_names",
                "gtins",
                "upcs",
                "eans",
                "description"
            ]),
            "index/relevance.toml weighs name 3, the secondary fields and codes 2, description 1"
        );
        assert_eq!(
            settings["sortableAttributes"],
            json!([
                "available",
                "category",
                "collection_ids",
                "currency",
                "date_last_modified",
                "id",
                "max_price",
                "merchant_id",
                "min_price",
                "name",
                "seller",
                "status",
                "vendor",
                "visible"
            ])
        );
        assert_eq!(
            settings["filterableAttributes"].as_array().unwrap().len(),
            FILTERABLE.len()
        );
        assert_eq!(
            settings["typoTolerance"]["minWordSizeForTypos"],
            json!({ "oneTypo": 5, "twoTypos": 9 })
        );
        assert_eq!(settings["synonyms"]["jumper"], json!(["sweater"]));
        assert_eq!(settings["stopWords"][0], "a");
        assert_eq!(settings["pagination"]["maxTotalHits"], 1000);
        assert_eq!(settings["faceting"]["maxValuesPerFacet"], 100);
        for (route, field) in SUB_ROUTES {
            assert!(settings.get(field).is_some(), "{route}");
        }
        assert_eq!(field_of("typo-tolerance"), Some("typoTolerance"));
        assert_eq!(field_of("typoTolerance"), None);
    }
}
