//! Relevance settings: typo thresholds, attribute weights, synonyms and stop words.
//!
//! They ship in `index/` (`relevance.toml`, `synonyms.json`, `stop_words.txt`) and are
//! compiled in; `search.settings_dir` may point at a directory holding the same files
//! to override them. They only shape queries, so changing them needs no reindex.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use super::schema::text_analyzer;

const RELEVANCE_TOML: &str = include_str!("../../index/relevance.toml");
const SYNONYMS_JSON: &str = include_str!("../../index/synonyms.json");
const STOP_WORDS_TXT: &str = include_str!("../../index/stop_words.txt");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RelevanceFile {
    typo: Typo,
    weights: Weights,
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

/// Everything that shapes how a query matches and ranks.
#[derive(Debug, Clone)]
pub struct Relevance {
    pub typo: Typo,
    pub weights: Weights,
    /// word → alternatives, each a list of words (all must match).
    pub synonyms: HashMap<String, Vec<Vec<String>>>,
    pub stop_words: HashSet<String>,
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
            synonyms: map,
            stop_words,
        })
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
    }
}
