//! Meilisearch's proximity rule: among offers that tie on the rules before it (words
//! and typo in the default order), those whose query terms stand close together and in
//! the query's order rank first.
//!
//! The cost of two consecutive query terms in an offer is, over the text fields with
//! positions, the smallest distance between them: `d` when the second follows the
//! first `d` words later, `d + 1` when it comes before, at most 7; 8 when they never
//! share a field (as milli's proximity graph, crates/milli/src/search/new/ranking_rule_
//! graph/proximity). An offer's proximity is the sum over every consecutive pair of the
//! query's terms; a term the offer does not hold costs its pairs 8, the same for every
//! offer of its words bucket, so only the terms it holds set it apart there.
//!
//! Positions are not read while scoring (that would cost every match): they are read
//! for the best candidates only, the page and [`window`] more, whose order this then
//! settles. An offer beyond the window that ties with the page's last on the rules
//! before proximity cannot be lifted into the page by its proximity: with buckets
//! larger than the window, the page is ranked by proximity among the window's offers,
//! the best of the bucket by the rules after proximity. A phrase stands for its first
//! word on its left and its last on its right; a prefix or typo word is looked for
//! through its first [`MAX_LOOSE_TERMS`] dictionary words per field, which covers the
//! words typed.

use std::sync::OnceLock;

use tantivy::postings::{Postings, SegmentPostings};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocId, DocSet, Searcher, SegmentReader, TERMINATED, Term as IndexTerm};

use super::collect::Ranked;
use super::query::{self, ExceptWord, Word};
use super::rank::{Key, Part};
use super::rules::{Order, Rule};
use super::schema::{OfferSchema, TextField};
use super::sort::SortBy;
use super::terms::{self, Parsed, Term};

/// Most dictionary words a prefix or typo word is looked for through, per field.
pub const MAX_LOOSE_TERMS: usize = 64;

/// A pair's cost when its terms never share a field (milli's maximum plus one).
pub const APART: u32 = 8;
/// The highest cost of two terms that share a field.
const MAX_NEAR: u32 = 7;

/// How many candidates beyond the page are collected for proximity to choose from.
pub fn window(wanted: usize) -> usize {
    wanted.saturating_add(32)
}

/// What finds one side of a query term in a field.
#[derive(Debug, Clone)]
struct Finder {
    /// The words themselves: the word, its one-word synonyms (or a phrase's edge word).
    exact: Vec<String>,
    /// A word with prefix or typo matches.
    loose: Option<Word>,
    /// Its automaton, built the first time an offer needs it (most never do: building
    /// one costs about what reading a page's positions does).
    automaton: OnceLock<Option<ExceptWord>>,
}

/// The query's terms in order, each as its left and right side.
#[derive(Debug, Clone)]
pub struct Proximity {
    sides: Vec<(Finder, Finder)>,
    /// The terms' words ranks (`terms::Scored::ranks`), highest first: each rank, how
    /// many terms have it, and those terms as a bit per term in query order.
    rank_groups: Vec<(u32, u32, u32)>,
    fields: Vec<Field>,
    /// The ranking rules' order: what proximity ranks within, and what it settles.
    order: Order,
}

impl Proximity {
    /// The rule for `parsed` (whose terms have the words `ranks`) matching in `on`,
    /// ranking in `order`; `None` when it cannot tell offers apart (fewer than two
    /// terms) or `order` does not rank by it.
    pub fn of(
        parsed: &Parsed,
        ranks: &[u32],
        schema: &OfferSchema,
        on: &[TextField],
        order: &Order,
    ) -> Option<Proximity> {
        if parsed.terms.len() < 2
            || ranks.len() != parsed.terms.len()
            || !order.has(Rule::Proximity)
        {
            return None;
        }
        let sides = parsed
            .terms
            .iter()
            .map(|term| match term {
                Term::Word(word) => {
                    let mut exact = vec![word.text.clone()];
                    exact.extend(word.synonyms.iter().filter_map(
                        |synonym| match synonym.as_slice() {
                            [one] => Some(one.clone()),
                            _ => None,
                        },
                    ));
                    let finder = Finder {
                        exact,
                        loose: (word.prefix || word.typos > 0).then(|| word.clone()),
                        automaton: OnceLock::new(),
                    };
                    (finder.clone(), finder)
                }
                Term::Phrase(phrase) => {
                    let edge = |word: Option<&String>| Finder {
                        exact: word.into_iter().cloned().collect(),
                        loose: None,
                        automaton: OnceLock::new(),
                    };
                    let words = || phrase.iter().flatten();
                    (edge(words().next()), edge(words().last()))
                }
            })
            .collect();
        let fields = on
            .iter()
            .filter(|which| terms::has_positions(**which))
            .map(|which| schema.text_field(*which))
            .collect();
        let mut distinct: Vec<u32> = ranks.to_vec();
        distinct.sort_unstable_by(|a, b| b.cmp(a));
        distinct.dedup();
        let rank_groups = distinct
            .into_iter()
            .map(|rank| {
                let of_rank = ranks.iter().enumerate().filter(|(_, r)| **r == rank);
                let mask = of_rank.clone().fold(0, |mask, (i, _)| mask | 1 << i);
                (rank, of_rank.count() as u32, mask)
            })
            .collect();
        Some(Proximity {
            sides,
            rank_groups,
            fields,
            order: *order,
        })
    }

    /// The terms an offer with `key` may have matched, as a bit per term (query
    /// order). A term outweighs every term of lower rank together, so the words rank
    /// tells how many of each rank matched; when only some of several terms of one
    /// rank did, any of them may have.
    fn maybe_matched(&self, key: Key) -> u32 {
        let mut left = self.order.layout().part(key, Part::Words);
        let mut matched = 0;
        for &(rank, terms, mask) in &self.rank_groups {
            let count = (left / rank).min(terms);
            left -= count * rank;
            if count > 0 {
                matched |= mask;
            }
        }
        matched
    }

    /// The highest proximity value (every pair adjacent and in order).
    fn best(&self) -> u32 {
        (self.sides.len() as u32 - 1) * APART
    }

    /// Orders `ranked` (in ranking order without proximity) with proximity. With
    /// `page`, the first `page` are what is wanted: the candidates after them that
    /// cannot move into them (a lower bucket of the rules before proximity than the
    /// last of them) are dropped unread, and `ranked` ends with the `page` best. Only
    /// candidates that share their bucket with another have their positions read,
    /// unless `every` asks for each one's proximity (its ranking score shows it).
    pub fn settle(
        &self,
        searcher: &Searcher,
        schema: &OfferSchema,
        ranked: &mut Vec<Ranked>,
        page: Option<usize>,
        sort: &[SortBy],
        every: bool,
    ) -> tantivy::Result<()> {
        if page == Some(0) {
            ranked.clear();
            return Ok(());
        }
        let same_bucket = |a: &Ranked, b: &Ranked| self.order.same_before_proximity(sort, a, b);
        if let Some(page) = page
            && let Some(last) = ranked.get(page - 1).copied()
        {
            let tied = ranked[page..]
                .iter()
                .take_while(|candidate| same_bucket(candidate, &last))
                .count();
            ranked.truncate(page + tied);
        }
        // Buckets of one need no proximity; the rest are read together.
        let mut shared: Vec<usize> = Vec::new();
        let mut at = 0;
        for group in ranked.chunk_by(|a, b| same_bucket(a, b)) {
            if every || group.len() > 1 {
                shared.extend(at..at + group.len());
            }
            at += group.len();
        }
        self.rank(searcher, schema, ranked, &shared)?;
        ranked.sort_by(|a, b| self.order.compare(sort, a, b));
        if let Some(page) = page {
            ranked.truncate(page);
        }
        Ok(())
    }

    /// Fills in the proximity of the candidates at `which`.
    fn rank(
        &self,
        searcher: &Searcher,
        schema: &OfferSchema,
        candidates: &mut [Ranked],
        which: &[usize],
    ) -> tantivy::Result<()> {
        // (segment, document, candidate), in the order postings are read.
        let mut order: Vec<(u32, DocId, usize)> = which
            .iter()
            .map(|&i| {
                let address = candidates[i].address;
                (address.segment_ord, address.doc_id, i)
            })
            .collect();
        order.sort_unstable();
        for segment in order.chunk_by(|a, b| a.0 == b.0) {
            let reader = searcher.segment_reader(segment[0].0);
            let docs: Vec<(DocId, u32)> = segment
                .iter()
                .map(|&(_, doc, i)| (doc, self.maybe_matched(Key::of(candidates[i].score))))
                .collect();
            let found = self.positions(reader, schema, &docs)?;
            for (&(_, _, i), occurrences) in segment.iter().zip(found) {
                candidates[i].proximity = (self.best() - self.cost(&occurrences)) as u8;
            }
        }
        Ok(())
    }

    /// For each of `docs` (ascending, each with the terms it may have matched), where
    /// each side of each term occurs: first the words as typed (and one-word synonyms)
    /// in every field, then, for the documents that matched the term but hold that side
    /// through none of them, its prefix and typo matches.
    fn positions(
        &self,
        reader: &SegmentReader,
        schema: &OfferSchema,
        docs: &[(DocId, u32)],
    ) -> tantivy::Result<Vec<Vec<Occurrence>>> {
        let (docs, matched): (Vec<DocId>, Vec<u32>) = docs.iter().copied().unzip();
        let mut found: Vec<Vec<Occurrence>> = vec![Vec::new(); docs.len()];
        let inverted = self
            .fields
            .iter()
            .map(|&field| reader.inverted_index(field))
            .collect::<tantivy::Result<Vec<_>>>()?;
        for (term_index, (left, right)) in self.sides.iter().enumerate() {
            // A word is one finder on both sides: read once.
            let sides: &[(&Finder, Side)] = if left.exact == right.exact {
                &[(left, Side::Both)]
            } else {
                &[(left, Side::Left), (right, Side::Right)]
            };
            for &(finder, side) in sides {
                let mut seen = Seen {
                    found: &mut found,
                    term: term_index as u8,
                    side,
                };
                for (field_index, inverted) in inverted.iter().enumerate() {
                    for text in &finder.exact {
                        let term = IndexTerm::from_field_text(self.fields[field_index], text);
                        if let Some(mut list) = inverted
                            .read_postings(&term, IndexRecordOption::WithFreqsAndPositions)?
                        {
                            seen.read(&mut list, field_index as u8, &docs, |_| true);
                        }
                    }
                }
                let Some(word) = &finder.loose else {
                    continue;
                };
                let missing: Vec<bool> = (0..docs.len())
                    .map(|slot| matched[slot] & (1 << term_index) != 0 && !seen.has(slot))
                    .collect();
                if !missing.contains(&true) {
                    continue;
                }
                let Some(automaton) = finder
                    .automaton
                    .get_or_init(|| query::loose_automaton(word, schema))
                else {
                    continue;
                };
                for (field_index, inverted) in inverted.iter().enumerate() {
                    let mut words = inverted
                        .terms()
                        .search(automaton)
                        .without_keys()
                        .into_stream()?;
                    let mut read = 0;
                    while read < MAX_LOOSE_TERMS && words.advance() {
                        read += 1;
                        let mut list = inverted.read_postings_from_terminfo(
                            words.value(),
                            IndexRecordOption::WithFreqsAndPositions,
                        )?;
                        seen.read(&mut list, field_index as u8, &docs, |slot| missing[slot]);
                    }
                }
            }
        }
        Ok(found)
    }

    /// The sum of the pairs' costs.
    fn cost(&self, occurrences: &[Occurrence]) -> u32 {
        (1..self.sides.len())
            .map(|second| {
                let first = second - 1;
                let mut cost = APART;
                for a in occurrences
                    .iter()
                    .filter(|o| o.term as usize == first && o.side.right())
                {
                    for b in occurrences.iter().filter(|o| {
                        o.term as usize == second && o.side.left() && o.field == a.field
                    }) {
                        let distance = if b.position > a.position {
                            b.position - a.position
                        } else {
                            a.position - b.position + 1
                        };
                        cost = cost.min(distance.min(MAX_NEAR));
                    }
                }
                cost
            })
            .sum()
    }
}

/// Records where one side of a term occurs.
struct Seen<'a> {
    found: &'a mut [Vec<Occurrence>],
    term: u8,
    side: Side,
}

impl Seen<'_> {
    /// Records the positions `list` holds in the documents of `docs` that `wanted`
    /// (by their slot), `docs` ascending.
    fn read(
        &mut self,
        list: &mut SegmentPostings,
        field: u8,
        docs: &[DocId],
        wanted: impl Fn(usize) -> bool,
    ) {
        let mut buffer = Vec::new();
        for (slot, &doc) in docs.iter().enumerate() {
            if !wanted(slot) {
                continue;
            }
            let at = if list.doc() < doc {
                list.seek(doc)
            } else {
                list.doc()
            };
            if at == TERMINATED {
                return;
            }
            if at != doc {
                continue;
            }
            buffer.clear();
            list.positions(&mut buffer);
            self.found[slot].extend(buffer.iter().map(|&position| Occurrence {
                field,
                term: self.term,
                side: self.side,
                position,
            }));
        }
    }

    /// Whether the document at `slot` holds this side anywhere yet.
    fn has(&self, slot: usize) -> bool {
        self.found[slot]
            .iter()
            .any(|o| o.term == self.term && o.side == self.side)
    }
}

/// Which side of a term a position stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
    Both,
}

impl Side {
    fn left(self) -> bool {
        self != Side::Right
    }

    fn right(self) -> bool {
        self != Side::Left
    }
}

/// A term's side at a position of a field of one offer.
#[derive(Debug, Clone, Copy)]
struct Occurrence {
    field: u8,
    term: u8,
    side: Side,
    position: u32,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use serde_json::json;
    use tantivy::{Index, IndexWriter};

    use super::*;
    use crate::search::collect::{IdsBySegment, SearchCollector};
    use crate::search::document::document_from_source;
    use crate::search::query::{ALL_TEXT_FIELDS, MatchingStrategy};
    use crate::search::relevance::Relevance;
    use crate::search::schema;

    /// Each offer's pair costs for `q` (the best proximity less each offer's).
    fn costs(index: &Index, q: &str) -> BTreeMap<i64, u32> {
        let relevance = Relevance::embedded();
        let offers = OfferSchema::current();
        let parsed = terms::parse(q, &relevance);
        let searcher = index.reader().unwrap().searcher();
        let scored = terms::build(
            &parsed,
            MatchingStrategy::Last,
            &offers,
            &relevance,
            &ALL_TEXT_FIELDS,
            &searcher,
        )
        .unwrap();
        let collector = SearchCollector {
            keep: 100,
            scored: true,
            order: relevance.order,
            sort: Vec::new(),
            facets: Vec::new(),
            ids: Arc::new(IdsBySegment::default()),
            deadline: None,
            distinct: None,
            threshold: None,
        };
        let mut top = searcher
            .search(scored.query.as_ref(), &collector)
            .unwrap()
            .top;
        let proximity = Proximity::of(
            &parsed,
            &scored.ranks,
            &offers,
            &ALL_TEXT_FIELDS,
            &relevance.order,
        )
        .unwrap();
        let every: Vec<usize> = (0..top.len()).collect();
        proximity
            .rank(&searcher, &offers, &mut top, &every)
            .unwrap();
        top.iter()
            .map(|ranked| {
                (
                    ranked.id as i64,
                    proximity.best() - u32::from(ranked.proximity),
                )
            })
            .collect()
    }

    #[test]
    fn the_words_rank_tells_which_terms_an_offer_may_have_matched() {
        let relevance = Relevance::embedded();
        let offers = OfferSchema::current();
        let parsed = terms::parse("red velvet lipstick", &relevance);
        let with = |ranks: &[u32]| {
            Proximity::of(&parsed, ranks, &offers, &ALL_TEXT_FIELDS, &relevance.order)
        };
        let key = |words: u32| Key(relevance.order.layout().words(words));
        // `last`: each term outweighs all later ones.
        let last = with(&[4, 2, 1]).unwrap();
        assert_eq!(last.maybe_matched(key(4 + 1)), 0b101);
        assert_eq!(last.maybe_matched(key(7)), 0b111);
        // Two terms of one rank: one of them matched, either may have.
        let frequency = with(&[1, 1, 3]).unwrap();
        assert_eq!(frequency.maybe_matched(key(3 + 1)), 0b111);
        assert_eq!(frequency.maybe_matched(key(3)), 0b100);
        assert_eq!(frequency.maybe_matched(key(2)), 0b011);
        assert!(with(&[1, 1]).is_none(), "a rank per term");
    }

    #[test]
    fn pairs_cost_their_distance_one_more_reversed_and_eight_apart() {
        let offers = OfferSchema::current();
        let index = Index::create_in_ram(schema::build());
        schema::register_tokenizers(&index);
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 20_000_000).unwrap();
        for (i, source) in [
            json!({ "id": 1, "name": "red lipstick" }),
            json!({ "id": 2, "name": "lipstick red" }),
            json!({ "id": 3, "name": "red velvet matte lipstick" }),
            json!({ "id": 4, "name": "lipstick", "vendor": "red star" }),
            json!({ "id": 5, "name": "red one two three four five six seven eight lipstick" }),
            json!({ "id": 6, "name": "red gloss", "description": "lipstick and red lipstick" }),
            json!({ "id": 7, "name": "north face red lipstick" }),
        ]
        .into_iter()
        .enumerate()
        {
            writer
                .add_document(document_from_source(&offers, &source))
                .unwrap();
            // Candidates in several segments.
            if i % 3 == 2 {
                writer.commit().unwrap();
            }
        }
        writer.commit().unwrap();

        let red_lipstick = costs(&index, "red lipstick ");
        assert_eq!(
            red_lipstick,
            BTreeMap::from([(1, 1), (2, 2), (3, 3), (4, 8), (5, 7), (6, 1), (7, 1)]),
            "the nearest pair counts, in any field that holds both"
        );
        // Three terms, two pairs; `north` is missing from most: its pair costs 8 there.
        let three = costs(&index, "red lipstick north ");
        assert_eq!(
            three[&7],
            1 + 4,
            "lipstick ... north: reversed, three apart"
        );
        assert_eq!(three[&1], 1 + 8);
        // A phrase stands for its first word on its left, its last on its right.
        let phrase = costs(&index, "\"north face\" red ");
        assert_eq!(phrase[&7], 1, "face red: adjacent");
        // A prefix is found through the dictionary words it covers.
        let prefix = costs(&index, "red lipst");
        assert_eq!(prefix[&1], 1);
        assert_eq!(prefix[&2], 2);
    }
}
