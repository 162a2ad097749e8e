//! `_rankingScore`, `_rankingScoreDetails` and `rankingScoreThreshold`: Meilisearch's
//! normalized score, read from the ranking key each hit already carries.
//!
//! Meilisearch gives each ranking rule a rank between 1 and its highest, and merges the
//! rules' ranks in order into one fraction (milli's `Rank::merge`, crates/milli/src/
//! score_details.rs): each rule divides the share of the rules before it, so the score
//! orders hits as the rules do, and a hit matching every rule at its best scores 1.
//! The ranks here are those of our rules:
//! - **words**: how many of the query's terms, from the last dropped, an offer matches
//!   in full (Meilisearch's rank), then, as a rank of its own inside that one, the
//!   terms it matches beyond them (which Meilisearch does not rank: it ties an offer
//!   matching the first and third of three words with one matching the first only);
//! - **typo**: the typos of the matched terms against the most they allow;
//! - **proximity**: the cost `proximity` computed, against its highest (8 a pair);
//! - **attribute**: the matched terms' attribute weights against the highest weight of
//!   the fields searched (Meilisearch's attribute rank also ranks the words' positions
//!   in the attribute, which ours does not);
//! - **exactness**: the terms matched as typed, against the terms matched (Meilisearch
//!   ranks first whether an attribute equals the query or starts with it; ours counts
//!   the words only).
//!
//! Only the rules `index/relevance.toml` lists rank, merged in its order (`rules`);
//! with the matching strategy `all` `words` does not (every hit matches every term),
//! as in Meilisearch. `sort` orders hits but has no rank (as in Meilisearch); a search
//! without terms scores 1.

use serde_json::{Map, Value, json};

use super::collect::Ranked;
use super::proximity::APART;
use super::query::MatchingStrategy;
use super::rank::{Key, Part};
use super::relevance::Relevance;
use super::rules::{Order, Rule};
use super::schema::TextField;
use super::sort::SortBy;
use super::terms::{Parsed, Term};

/// One rule's rank: `rank` out of `max_rank`, 1 the lowest a match can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rank {
    rank: u64,
    max_rank: u64,
}

impl Rank {
    fn new(rank: u64, max_rank: u64) -> Rank {
        let max_rank = max_rank.max(1);
        Rank {
            rank: rank.clamp(1, max_rank),
            max_rank,
        }
    }

    fn local(self) -> f64 {
        self.rank as f64 / self.max_rank as f64
    }

    /// `inner` ranks within `outer`'s rank: the hits of one outer rank share its slice
    /// of the scores, which `inner` divides again.
    fn merge(outer: Rank, inner: Rank) -> Rank {
        Rank {
            rank: (outer.rank - 1) * inner.max_rank + inner.rank,
            max_rank: outer.max_rank * inner.max_rank,
        }
    }

    fn global(ranks: impl IntoIterator<Item = Rank>) -> f64 {
        ranks.into_iter().fold(Rank::new(1, 1), Rank::merge).local()
    }
}

/// The terms of one words rank (see `terms::Scored::ranks`): they are dropped together.
#[derive(Debug, Clone)]
struct Group {
    rank: u32,
    /// The typos each of its terms allows, most first.
    typos: Vec<u32>,
}

/// What a query's ranks are measured against.
#[derive(Debug, Clone)]
pub struct Scoring {
    /// The terms' groups, the last dropped first.
    groups: Vec<Group>,
    terms: u32,
    /// The highest weight of the fields the query searches.
    top_weight: u32,
    /// The rules that rank, in order.
    order: Order,
    /// Whether `words` ranks: not with the matching strategy `all`, where every hit
    /// matches every term (Meilisearch leaves the rule out then).
    words_ranked: bool,
}

/// One hit's ranks, rule by rule, and what they count.
#[derive(Debug, Clone, Copy)]
struct Ranks {
    matched: u32,
    typos: u32,
    max_typos: u32,
    words: Rank,
    beyond: Rank,
    typo: Rank,
    proximity: Rank,
    attribute: Rank,
    exactness: Rank,
}

impl Ranks {
    /// The ranks `rule` merges (`sort` has none).
    fn of(&self, rule: Rule) -> impl Iterator<Item = Rank> {
        let (first, second) = match rule {
            Rule::Words => (Some(self.words), Some(self.beyond)),
            Rule::Typo => (Some(self.typo), None),
            Rule::Proximity => (Some(self.proximity), None),
            Rule::Attribute => (Some(self.attribute), None),
            Rule::Exactness => (Some(self.exactness), None),
            Rule::Sort => (None, None),
        };
        first.into_iter().chain(second)
    }
}

impl Scoring {
    /// The scoring of `parsed`, whose terms have the words `ranks`, searching `on`
    /// with `strategy`; `None` when it has no term (every hit scores 1).
    pub fn of(
        parsed: &Parsed,
        ranks: &[u32],
        relevance: &Relevance,
        on: &[TextField],
        strategy: MatchingStrategy,
    ) -> Option<Scoring> {
        if parsed.terms.is_empty() || ranks.len() != parsed.terms.len() {
            return None;
        }
        let terms = parsed.terms.iter().zip(ranks).map(|(term, &rank)| {
            let typos = match term {
                Term::Word(word) => u32::from(word.typos),
                Term::Phrase(_) => 0,
            };
            (rank, typos)
        });
        let top_weight = on
            .iter()
            .map(|field| relevance.weights.of(*field))
            .max()
            .unwrap_or(1);
        Some(Scoring::new(
            terms,
            top_weight,
            relevance.order,
            strategy != MatchingStrategy::All,
        ))
    }

    /// The scoring of terms given as (words rank, typos allowed), searching fields of
    /// at most `top_weight`, ranked in `order`.
    fn new(
        terms: impl Iterator<Item = (u32, u32)>,
        top_weight: u32,
        order: Order,
        words_ranked: bool,
    ) -> Scoring {
        let mut terms: Vec<(u32, u32)> = terms.collect();
        let count = terms.len() as u32;
        terms.sort_unstable_by(|a, b| b.cmp(a));
        let mut groups: Vec<Group> = Vec::new();
        for (rank, typos) in terms {
            match groups.last_mut() {
                Some(group) if group.rank == rank => group.typos.push(typos),
                _ => groups.push(Group {
                    rank,
                    typos: vec![typos],
                }),
            }
        }
        Scoring {
            groups,
            terms: count,
            top_weight,
            order,
            words_ranked,
        }
    }

    /// The rules that rank this query's hits, in order.
    fn rules(&self) -> impl Iterator<Item = Rule> + '_ {
        self.order
            .rules()
            .iter()
            .copied()
            .filter(|rule| self.words_ranked || *rule != Rule::Words)
    }

    /// The ranks of a hit with `key` and, when known, `proximity`'s value (`None`: at
    /// its best, which is what [`Scoring::at_most`] assumes).
    fn ranks(&self, key: Key, proximity: Option<u8>) -> Ranks {
        // A group outweighs every lower group together: the words rank tells how many
        // terms of each group matched.
        let layout = self.order.layout();
        let part = |part| layout.part(key, part);
        let words_rank = part(Part::Words);
        let mut left = words_rank;
        let (mut matched, mut max_typos, mut leading, mut leading_rank) = (0, 0, 0, 0);
        let mut first_short: Option<u32> = None;
        for group in &self.groups {
            let size = group.typos.len() as u32;
            let count = (left / group.rank).min(size);
            left -= count * group.rank;
            matched += count;
            // Which of a group's terms matched is not known when only some did: the
            // most typos they could allow (so the count never passes the most).
            max_typos += group.typos.iter().take(count as usize).sum::<u32>();
            if first_short.is_none() {
                if count == size {
                    leading += size;
                    leading_rank += size * group.rank;
                } else {
                    first_short = Some(group.rank);
                }
            }
        }
        let total_rank: u32 = self
            .groups
            .iter()
            .map(|group| group.rank * group.typos.len() as u32)
            .sum();
        // Beyond the terms matched in full, the most the rest could add: every term
        // after them but one of the first group short.
        let most_beyond = first_short.map_or(0, |short| total_rank - leading_rank - short);
        let beyond = words_rank - leading_rank.min(words_rank);
        let typos = (2 * matched)
            .saturating_sub(part(Part::Typo))
            .min(max_typos);
        let pairs = u64::from(self.terms.saturating_sub(1));
        let best_proximity = pairs * u64::from(APART);
        let proximity = proximity.map_or(best_proximity, u64::from);
        Ranks {
            matched,
            typos,
            max_typos,
            words: Rank::new(u64::from(leading), u64::from(self.terms)),
            beyond: Rank::new(u64::from(beyond) + 1, u64::from(most_beyond) + 1),
            typo: Rank::new(u64::from(max_typos - typos) + 1, u64::from(max_typos) + 1),
            proximity: Rank::new(proximity + 1, best_proximity + 1),
            attribute: Rank::new(
                u64::from(part(Part::Attribute)) + 1,
                u64::from(matched * self.top_weight) + 1,
            ),
            exactness: Rank::new(u64::from(part(Part::Exactness)) + 1, u64::from(matched) + 1),
        }
    }

    /// The hit's `_rankingScore`.
    pub fn score(&self, ranked: &Ranked) -> f64 {
        self.merged(&self.ranks(Key::of(ranked.score), Some(ranked.proximity)))
    }

    /// The highest score an offer with `key` can have, whatever its proximity: what
    /// `rankingScoreThreshold` keeps or drops an offer by while collecting, before
    /// proximity is known.
    pub fn at_most(&self, key: Key) -> f64 {
        self.merged(&self.ranks(key, None))
    }

    /// The rules' ranks merged in their order.
    fn merged(&self, ranks: &Ranks) -> f64 {
        Rank::global(self.rules().flat_map(|rule| ranks.of(rule)))
    }

    /// The hit's `_rankingScoreDetails`, the rules in their order; `source` is the
    /// hit's document, for the sort values.
    pub fn details(&self, ranked: &Ranked, sort: &[SortBy], source: &Map<String, Value>) -> Value {
        let ranks = self.ranks(Key::of(ranked.score), Some(ranked.proximity));
        let mut details = Map::new();
        let mut order = 0;
        for rule in self.rules() {
            let detail = match rule {
                Rule::Words => json!({
                    "order": order,
                    "matchingWords": ranks.matched,
                    "maxMatchingWords": self.terms,
                    "score": Rank::global([ranks.words, ranks.beyond]),
                }),
                Rule::Typo => json!({
                    "order": order,
                    "typoCount": ranks.typos,
                    "maxTypoCount": ranks.max_typos,
                    "score": ranks.typo.local(),
                }),
                Rule::Proximity => json!({ "order": order, "score": ranks.proximity.local() }),
                Rule::Attribute => json!({
                    "order": order,
                    "attributeRankingOrderScore": ranks.attribute.local(),
                    "score": ranks.attribute.local(),
                }),
                Rule::Exactness => json!({
                    "order": order,
                    "matchingWords": self.order.layout().part(Key::of(ranked.score), Part::Exactness),
                    "maxMatchingWords": ranks.matched,
                    "score": ranks.exactness.local(),
                }),
                Rule::Sort => {
                    sort_details(&mut details, &mut order, sort, source);
                    continue;
                }
            };
            details.insert(rule.name().into(), detail);
            order += 1;
        }
        Value::Object(details)
    }
}

/// `_rankingScoreDetails` of a search without terms: its sort criteria only.
pub fn placeholder_details(sort: &[SortBy], source: &Map<String, Value>) -> Value {
    let mut details = Map::new();
    sort_details(&mut details, &mut 0, sort, source);
    Value::Object(details)
}

/// Each sort criterion as the request named it (`price:asc`) with the value it sorted
/// the hit by (the smallest of a list ascending, the largest descending; `null` when
/// missing).
fn sort_details(
    details: &mut Map<String, Value>,
    order: &mut usize,
    sort: &[SortBy],
    source: &Map<String, Value>,
) {
    for by in sort {
        let value = match source.get(by.attribute) {
            Some(Value::Array(values)) => {
                let mut values: Vec<&Value> = values.iter().filter(|v| !v.is_null()).collect();
                values.sort_by(|a, b| compare_json(a, b));
                let pick = if by.descending {
                    values.last()
                } else {
                    values.first()
                };
                pick.map_or(Value::Null, |value| (*value).clone())
            }
            Some(value) => value.clone(),
            None => Value::Null,
        };
        let direction = if by.descending { "desc" } else { "asc" };
        details.insert(
            format!("{}:{direction}", by.requested),
            json!({ "order": *order, "value": value }),
        );
        *order += 1;
    }
}

fn compare_json(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

#[cfg(test)]
#[path = "score_tests.rs"]
mod tests;
