//! Relevance settings: typo thresholds, attribute weights, synonyms, stop words, the
//! ranking rules (`rankingRules`, see `rules`), the order facet values are listed in
//! (Meilisearch's `faceting.sortFacetValuesBy`) and the attribute searches keep one
//! document per value of (`distinctAttribute`).
//!
//! They ship in `index/` (`relevance.toml`, `synonyms.json`, `stop_words.txt`) and are
//! compiled in; `search.settings_dir` may point at a directory holding the same files
//! to override them. They only shape queries, so changing them needs no reindex.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::rules::{self, Order, Rule};
use super::schema::{self, AttrKind, FILTERABLE, TextField, text_analyzer};

const RELEVANCE_TOML: &str = include_str!("../../index/relevance.toml");
const SYNONYMS_JSON: &str = include_str!("../../index/synonyms.json");
const STOP_WORDS_TXT: &str = include_str!("../../index/stop_words.txt");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RelevanceFile {
    typo: Typo,
    weights: Weights,
    #[serde(default)]
    faceting: Faceting,
    #[serde(default)]
    distinct: DistinctFile,
    #[serde(default)]
    ranking: RankingFile,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RankingFile {
    rules: Vec<String>,
}

impl Default for RankingFile {
    fn default() -> RankingFile {
        RankingFile {
            rules: Rule::DEFAULT.map(|rule| rule.name().to_string()).to_vec(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DistinctFile {
    attribute: Option<String>,
}

/// The order a facet's values are listed in, in `facetDistribution` and facet search
/// (Meilisearch's `OrderBy`: `alpha` by value, `count` most frequent first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FacetOrder {
    #[default]
    Alpha,
    Count,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faceting {
    /// Attribute (or `*`, every other attribute) → order; Meilisearch's default is
    /// `alpha` for every attribute.
    #[serde(default)]
    pub sort_facet_values_by: BTreeMap<String, FacetOrder>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Typo {
    /// Shortest word allowed one typo.
    pub one_typo: usize,
    /// Shortest word allowed two typos.
    pub two_typos: usize,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    pub name: u32,
    pub secondary: u32,
    pub description: u32,
    pub codes: u32,
}

impl Weights {
    /// The weight of a match in `field`.
    pub fn of(&self, field: TextField) -> u32 {
        match field {
            TextField::Name => self.name,
            TextField::Secondary => self.secondary,
            TextField::Description => self.description,
            TextField::Codes => self.codes,
        }
    }
}

/// Everything that shapes how a query matches and ranks.
#[derive(Debug, Clone)]
pub struct Relevance {
    pub typo: Typo,
    pub weights: Weights,
    pub faceting: Faceting,
    /// Meilisearch's `distinctAttribute`: every search keeps one document per value of
    /// it unless the search names its own `distinct` (see `distinct`). A filterable
    /// attribute; unset, as Meilisearch ships.
    pub distinct_attribute: Option<(&'static str, AttrKind)>,
    /// word → alternatives, each a list of words (all must match).
    pub synonyms: HashMap<String, Vec<Vec<String>>>,
    pub stop_words: HashSet<String>,
    /// Meilisearch's `rankingRules` as listed (what the settings API answers).
    pub ranking_rules: Vec<Rule>,
    /// The order they rank in (`rules`).
    pub order: Order,
}

impl Relevance {
    /// The settings compiled in from `index/`.
    pub fn embedded() -> Relevance {
        Relevance::parse(RELEVANCE_TOML, SYNONYMS_JSON, STOP_WORDS_TXT)
            .expect("index/ settings are valid")
    }

    /// Reads `relevance.toml`, `synonyms.json` and `stop_words.txt` from `dir`; a file
    /// missing there falls back to the embedded one.
    pub fn load(dir: Option<&Path>) -> anyhow::Result<Relevance> {
        let Some(dir) = dir else {
            return Ok(Relevance::embedded());
        };
        let read = |name: &str, fallback: &str| -> anyhow::Result<String> {
            let path = dir.join(name);
            if path.exists() {
                std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))
            } else {
                Ok(fallback.to_string())
            }
        };
        Relevance::parse(
            &read("relevance.toml", RELEVANCE_TOML)?,
            &read("synonyms.json", SYNONYMS_JSON)?,
            &read("stop_words.txt", STOP_WORDS_TXT)?,
        )
    }

    fn parse(relevance: &str, synonyms: &str, stop_words: &str) -> anyhow::Result<Relevance> {
        let file: RelevanceFile = toml::from_str(relevance).context("relevance.toml is invalid")?;
        anyhow::ensure!(
            file.typo.one_typo >= 1 && file.typo.two_typos >= file.typo.one_typo,
            "relevance.toml: typo.two_typos must be at least typo.one_typo, both at least 1"
        );
        let weights = file.weights;
        for (name, weight) in [
            ("name", weights.name),
            ("secondary", weights.secondary),
            ("description", weights.description),
            ("codes", weights.codes),
        ] {
            // The ranking key gives the attribute rule room for ten terms at this weight.
            anyhow::ensure!(
                weight <= super::rank::MAX_WEIGHT,
                "relevance.toml: weights.{name} is {weight}, at most {} is allowed",
                super::rank::MAX_WEIGHT
            );
        }
        for attribute in file.faceting.sort_facet_values_by.keys() {
            anyhow::ensure!(
                attribute == "*"
                    || FILTERABLE
                        .iter()
                        .any(|(filterable, _)| filterable == attribute),
                "relevance.toml: faceting.sort_facet_values_by names `{attribute}`, which is \
                 not a filterable attribute; use `*` or one of: {}",
                filterable_list()
            );
        }
        let ranking_rules = rules::parse(&file.ranking.rules)
            .map_err(|err| anyhow::anyhow!("relevance.toml: ranking.rules: {err}"))?;
        let distinct_attribute = match &file.distinct.attribute {
            None => None,
            Some(name) => Some(schema::filterable(name).ok_or_else(|| {
                anyhow::anyhow!(
                    "relevance.toml: distinct.attribute names `{name}`, which is not a \
                     filterable attribute; use one of: {}",
                    filterable_list()
                )
            })?),
        };
        let raw: HashMap<String, serde_json::Value> =
            serde_json::from_str(synonyms).context("synonyms.json is invalid")?;
        let mut map: HashMap<String, Vec<Vec<String>>> = HashMap::new();
        for (key, value) in raw {
            if key.starts_with('_') {
                continue;
            }
            let alternatives: Vec<String> = serde_json::from_value(value)
                .with_context(|| format!("synonyms.json: `{key}` must map to a list of strings"))?;
            let key_words = words(&key);
            let [key_word] = key_words.as_slice() else {
                anyhow::bail!("synonyms.json: key `{key}` must be one word");
            };
            let entry = map.entry(key_word.clone()).or_default();
            entry.extend(
                alternatives
                    .iter()
                    .map(|alt| words(alt))
                    .filter(|alt| !alt.is_empty()),
            );
        }
        let stop_words = stop_words
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .flat_map(words)
            .collect();
        Ok(Relevance {
            typo: file.typo,
            weights: file.weights,
            faceting: file.faceting,
            distinct_attribute,
            synonyms: map,
            stop_words,
            order: Order::of(&ranking_rules),
            ranking_rules,
        })
    }

    /// The order of `attribute`'s values: its own entry, else `*`'s, else `alpha`
    /// (Meilisearch's `sortFacetValuesBy` lookup).
    pub fn facet_order(&self, attribute: &str) -> FacetOrder {
        let orders = &self.faceting.sort_facet_values_by;
        orders
            .get(attribute)
            .or_else(|| orders.get("*"))
            .copied()
            .unwrap_or_default()
    }

    /// Typos allowed in a query word of this length (Meilisearch's rule).
    pub fn typos_for(&self, word: &str) -> u8 {
        let len = word.chars().count();
        if len >= self.typo.two_typos {
            2
        } else if len >= self.typo.one_typo {
            1
        } else {
            0
        }
    }
}

fn filterable_list() -> String {
    FILTERABLE
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The words of `text` as the index sees them.
pub fn words(text: &str) -> Vec<String> {
    let mut analyzer = text_analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_settings_parse_with_meilisearch_typo_defaults() {
        let relevance = Relevance::embedded();
        assert_eq!(relevance.typos_for("shoe"), 0);
        assert_eq!(relevance.typos_for("shoes"), 1);
        assert_eq!(relevance.typos_for("sweatshirt"), 2);
        assert!(relevance.stop_words.contains("the"));
        assert!(relevance.synonyms["tee"].contains(&vec!["t".to_string(), "shirt".to_string()]));
        assert_eq!(relevance.facet_order("vendor"), FacetOrder::Alpha);
    }

    fn with_faceting(faceting: &str) -> anyhow::Result<Relevance> {
        let relevance = format!(
            "[typo]\none_typo = 5\ntwo_typos = 9\n[weights]\nname = 3\nsecondary = 2\n\
             description = 1\ncodes = 2\n{faceting}"
        );
        Relevance::parse(&relevance, SYNONYMS_JSON, STOP_WORDS_TXT)
    }

    #[test]
    fn a_facet_takes_its_own_order_then_the_wildcard_then_alpha() {
        let none = with_faceting("").unwrap();
        assert_eq!(none.facet_order("vendor"), FacetOrder::Alpha);
        let set = with_faceting(
            "[faceting]\nsort_facet_values_by = { \"*\" = \"count\", tags = \"alpha\" }",
        )
        .unwrap();
        assert_eq!(set.facet_order("tags"), FacetOrder::Alpha);
        assert_eq!(set.facet_order("vendor"), FacetOrder::Count);
        let only_vendor =
            with_faceting("[faceting]\nsort_facet_values_by = { vendor = \"count\" }").unwrap();
        assert_eq!(only_vendor.facet_order("vendor"), FacetOrder::Count);
        assert_eq!(only_vendor.facet_order("tags"), FacetOrder::Alpha);
    }

    #[test]
    fn the_distinct_attribute_is_unset_unless_configured_and_must_be_filterable() {
        assert_eq!(Relevance::embedded().distinct_attribute, None);
        let set = with_faceting("[distinct]\nattribute = \"gtins\"").unwrap();
        assert_eq!(set.distinct_attribute, Some(("gtins", AttrKind::Keyword)));
        let err = with_faceting("[distinct]\nattribute = \"name\"").unwrap_err();
        assert!(format!("{err:#}").contains("`name`"), "{err:#}");
    }

    #[test]
    fn a_weight_above_the_ranking_keys_room_is_refused_with_its_name() {
        let relevance = "[typo]\none_typo = 5\ntwo_typos = 9\n[weights]\nname = 101\n\
                         secondary = 2\ndescription = 1\ncodes = 2\n";
        let err = Relevance::parse(relevance, SYNONYMS_JSON, STOP_WORDS_TXT).unwrap_err();
        assert!(
            format!("{err:#}").contains("weights.name is 101"),
            "{err:#}"
        );
        let at_most = relevance.replace("101", "100");
        assert!(Relevance::parse(&at_most, SYNONYMS_JSON, STOP_WORDS_TXT).is_ok());
    }

    #[test]
    fn ranking_rules_default_to_meilisearchs_and_a_bad_list_is_refused_with_its_entry() {
        let shipped = Relevance::embedded();
        assert_eq!(shipped.ranking_rules, Rule::DEFAULT);
        assert_eq!(with_faceting("").unwrap().ranking_rules, Rule::DEFAULT);
        let set = with_faceting("[ranking]\nrules = [\"sort\", \"exactness\"]").unwrap();
        assert_eq!(set.ranking_rules, [Rule::Sort, Rule::Exactness]);
        assert_eq!(
            set.order.rules(),
            [Rule::Sort, Rule::Words, Rule::Exactness]
        );
        let err = with_faceting("[ranking]\nrules = [\"words\", \"price:desc\"]").unwrap_err();
        assert!(
            format!("{err:#}").contains("ranking.rules: `price:desc`"),
            "{err:#}"
        );
    }

    #[test]
    fn an_unknown_facet_order_or_attribute_is_refused_with_its_name() {
        let err =
            with_faceting("[faceting]\nsort_facet_values_by = { colour = \"count\" }").unwrap_err();
        assert!(format!("{err:#}").contains("`colour`"), "{err:#}");
        let err =
            with_faceting("[faceting]\nsort_facet_values_by = { \"*\" = \"random\" }").unwrap_err();
        assert!(format!("{err:#}").contains("random"), "{err:#}");
    }
}
