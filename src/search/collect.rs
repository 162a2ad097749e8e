//! One pass over the matching documents: the count, the top `offset + limit` in
//! ranking order, and the facet counts and numeric stats, read from fast fields.
//!
//! Ranking order: the ranking rules as `index/relevance.toml` lists them
//! (`rules::Order`), proximity 0 here (`proximity` fills it in for the best
//! candidates), and last the offer id ascending, so equal documents always come in the
//! same order and pages never overlap.
//!
//! How a `sort` criterion orders and is read is `sort`'s. With `distinct`, the count
//! and the facets are those of the matches `distinct` keeps in index order; the top
//! candidates are not deduplicated here (see `distinct`).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Cardinality, Column, StrColumn};
use tantivy::index::SegmentId;
use tantivy::{DocAddress, DocId, Score, Searcher, SegmentOrdinal, SegmentReader};

use super::distinct::{DistinctCount, SegmentDistinct, ValueIds};
use super::rank::Key;
use super::rules::Order;
use super::schema::AttrKind;
use super::score::Scoring;
use super::sort::{self, SegmentTexts, SortBy, SortColumn, SortValue};

/// Offer ids by document, per segment, read once from the `id` fast field. Ties are
/// broken by id, and all the matches of a common word tie, so the fast field was
/// decoded for nearly every match (the collector's fast-field reads, ids and sort
/// values, were 9.5% of a 16-client benchmark run's CPU); an array read is next to
/// nothing. A segment's values never change (deletes do not
/// alter them), so the arrays live as long as the segment is searched; 8 bytes per
/// document.
#[derive(Default)]
pub struct IdsBySegment(Mutex<HashMap<SegmentId, Arc<[f64]>>>);

impl IdsBySegment {
    /// The ids of `reader`'s documents (`f64::MAX` where missing, so last).
    fn get(&self, reader: &SegmentReader) -> tantivy::Result<Arc<[f64]>> {
        let segment = reader.segment_id();
        if let Some(ids) = self.lock().get(&segment) {
            return Ok(ids.clone());
        }
        let column = reader.fast_fields().f64("id")?;
        let ids: Arc<[f64]> = (0..reader.max_doc())
            .map(|doc| column.first(doc).unwrap_or(f64::MAX))
            .collect();
        self.lock().insert(segment, ids.clone());
        Ok(ids)
    }

    /// Forgets the segments `searcher` no longer has (merged away or deleted).
    pub fn keep_only(&self, searcher: &Searcher) {
        let mut cached = self.lock();
        if cached.len() > searcher.segment_readers().len() {
            let live: Vec<SegmentId> = searcher
                .segment_readers()
                .iter()
                .map(|reader| reader.segment_id())
                .collect();
            cached.retain(|segment, _| live.contains(segment));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SegmentId, Arc<[f64]>>> {
        // The map is only ever left whole: a panic elsewhere cannot have broken it.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What to collect.
pub struct SearchCollector {
    /// How many of the best documents to keep (`offset + limit`).
    pub keep: usize,
    pub scored: bool,
    /// The ranking rules' order.
    pub order: Order,
    pub sort: Vec<SortBy>,
    pub facets: Vec<(&'static str, AttrKind)>,
    /// The generation's ids (see `IdsBySegment`).
    pub ids: Arc<IdsBySegment>,
    /// Past it, collecting stops and the result says so (`Collected::stopped`).
    pub deadline: Option<Instant>,
    /// Count and facet only the matches the `distinct` rule keeps.
    pub distinct: Option<DistinctCount>,
    /// `rankingScoreThreshold`: leave out the matches that cannot score it.
    pub threshold: Option<Arc<Threshold>>,
}

/// A `rankingScoreThreshold` and the scoring it is measured with.
#[derive(Debug)]
pub struct Threshold {
    pub scoring: Scoring,
    pub min: f64,
}

impl Threshold {
    /// Whether a match with `score` may reach the threshold. Its proximity is not
    /// known yet: taken at its best, so this keeps every match that can, and a few that
    /// the page's exact scores then drop (counts and facets may include those, an
    /// overestimate Meilisearch's own `estimatedTotalHits` allows under a threshold).
    fn may_reach(&self, score: Score) -> bool {
        self.scoring.at_most(Key::of(score)) >= self.min
    }
}

/// Documents counted between two looks at the clock (reading it per document would
/// cost more than collecting).
const CLOCK_EVERY: usize = 4096;

/// Most `sort` criteria a request may give (a fixed-size key keeps collection free of
/// allocations per document).
pub const MAX_SORT: usize = 4;

/// A ranked candidate.
#[derive(Debug, Clone, Copy)]
pub struct Ranked {
    /// The ranking key (`rank::Key`) as tantivy's score carries it.
    pub score: Score,
    /// Meilisearch's proximity rule, higher first (`proximity`; 0 until it is known).
    pub proximity: u8,
    pub sort_values: [SortValue; MAX_SORT],
    pub id: f64,
    pub address: DocAddress,
}

/// Counts of one facet over the matching documents.
#[derive(Debug, Clone, Default)]
pub struct FacetCounts {
    pub kind: Option<AttrKind>,
    /// Value → number of documents.
    pub values: HashMap<String, u64>,
    /// Numeric facets: smallest and largest value seen.
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// What a search collected.
#[derive(Debug, Default)]
pub struct Collected {
    /// Matches (those `distinct` keeps, with `distinct`).
    pub count: usize,
    /// Every match, `distinct` or not: when `top` holds this many, it holds them all.
    pub matched: usize,
    pub top: Vec<Ranked>,
    pub facets: Vec<FacetCounts>,
    /// The deadline passed: the rest is incomplete and must not be served.
    pub stopped: bool,
}

impl SearchCollector {
    fn compare(&self, a: &Ranked, b: &Ranked) -> Ordering {
        self.order.compare(&self.sort, a, b)
    }
}

/// Keeps the best `keep` of `candidates` (unordered).
fn prune(candidates: &mut Vec<Ranked>, keep: usize, order: &Order, sort: &[SortBy]) {
    if candidates.len() > keep {
        if keep == 0 {
            candidates.clear();
            return;
        }
        candidates.select_nth_unstable_by(keep - 1, |a, b| order.compare(sort, a, b));
        candidates.truncate(keep);
    }
}

enum FacetColumn {
    Keyword {
        column: Option<StrColumn>,
        counts: Vec<u64>,
    },
    Number {
        column: Column<f64>,
        counts: HashMap<u64, u64>,
        min: Option<f64>,
        max: Option<f64>,
    },
}

pub struct SegmentSearch {
    segment: SegmentOrdinal,
    keep: usize,
    order: Order,
    sort: Vec<SortBy>,
    sort_columns: Vec<SortColumn>,
    ids: Arc<[f64]>,
    facets: Vec<FacetColumn>,
    count: usize,
    candidates: Vec<Ranked>,
    /// The worst candidate kept at the last prune.
    worst: Option<Ranked>,
    /// The keys that tie with `worst` before `sort` (`Order::tying_before_sort`): one
    /// comparison per document instead of decoding its key.
    worst_ties: std::ops::Range<u32>,
    /// Facets or `distinct` need the matching documents (`facet_docs`).
    keeps_docs: bool,
    /// Matching documents, for facets counted in batches (and `distinct` applied) at
    /// harvest.
    facet_docs: Vec<DocId>,
    distinct: Option<(SegmentDistinct, Arc<Mutex<ValueIds>>)>,
    threshold: Option<Arc<Threshold>>,
    scratch: Vec<u64>,
    deadline: Option<Instant>,
    /// The deadline passed: every further document is ignored.
    stopped: bool,
}

impl Collector for SearchCollector {
    type Fruit = Collected;
    type Child = SegmentSearch;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentSearch> {
        let fast = reader.fast_fields();
        let sort_columns = self
            .sort
            .iter()
            .map(|by| SortColumn::open(reader, by))
            .collect::<tantivy::Result<Vec<_>>>()?;
        let mut facets = Vec::with_capacity(self.facets.len());
        for &(attribute, kind) in &self.facets {
            facets.push(match kind {
                AttrKind::Keyword => {
                    let column = fast.str(attribute)?;
                    let terms = column
                        .as_ref()
                        .map(|column| column.num_terms())
                        .unwrap_or(0);
                    FacetColumn::Keyword {
                        column,
                        counts: vec![0; terms],
                    }
                }
                AttrKind::Number => FacetColumn::Number {
                    column: fast.f64(attribute)?,
                    counts: HashMap::new(),
                    min: None,
                    max: None,
                },
            });
        }
        Ok(SegmentSearch {
            segment,
            keep: self.keep,
            order: self.order,
            sort: self.sort.clone(),
            sort_columns,
            // Only ranking needs them.
            ids: if self.keep > 0 {
                self.ids.get(reader)?
            } else {
                Arc::from([])
            },
            facets,
            count: 0,
            candidates: Vec::new(),
            worst: None,
            worst_ties: 0..0,
            keeps_docs: !self.facets.is_empty() || self.distinct.is_some(),
            facet_docs: Vec::new(),
            distinct: match &self.distinct {
                Some(count) => Some((
                    SegmentDistinct::open(reader, count.attribute)?,
                    count.ids.clone(),
                )),
                None => None,
            },
            threshold: self.threshold.clone(),
            scratch: Vec::new(),
            deadline: self.deadline,
            stopped: self
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline),
        })
    }

    fn requires_scoring(&self) -> bool {
        self.scored
    }

    fn merge_fruits(&self, fruits: Vec<SegmentFruit>) -> tantivy::Result<Collected> {
        let mut collected = Collected {
            facets: self
                .facets
                .iter()
                .map(|&(_, kind)| FacetCounts {
                    kind: Some(kind),
                    ..FacetCounts::default()
                })
                .collect(),
            ..Collected::default()
        };
        let mut fruits = fruits;
        let mut parts: Vec<(&mut [Ranked], &SegmentTexts)> = fruits
            .iter_mut()
            .map(|fruit| (fruit.top.as_mut_slice(), &fruit.texts))
            .collect();
        sort::rank_across_segments(&mut parts, self.sort.len());
        for fruit in fruits {
            if let Some(err) = fruit.failed {
                return Err(err);
            }
            collected.stopped |= fruit.stopped;
            collected.count += fruit.count;
            collected.matched += fruit.matched;
            collected.top.extend(fruit.top);
            prune(&mut collected.top, self.keep, &self.order, &self.sort);
            for (total, part) in collected.facets.iter_mut().zip(fruit.facets) {
                for (value, count) in part.values {
                    *total.values.entry(value).or_default() += count;
                }
                total.min = min_of(total.min, part.min);
                total.max = max_of(total.max, part.max);
            }
        }
        collected.top.sort_by(|a, b| self.compare(a, b));
        Ok(collected)
    }
}

/// What one segment collected.
pub struct SegmentFruit {
    count: usize,
    matched: usize,
    top: Vec<Ranked>,
    facets: Vec<FacetCounts>,
    stopped: bool,
    /// What harvesting could not read (harvest cannot return an error; merging does).
    failed: Option<tantivy::TantivyError>,
    /// Per sort criterion, the strings the `Text` values of `top` index.
    texts: SegmentTexts,
}

impl SegmentCollector for SegmentSearch {
    type Fruit = SegmentFruit;

    fn collect(&mut self, doc: DocId, score: Score) {
        if self.stopped {
            return;
        }
        if let Some(threshold) = &self.threshold
            && !threshold.may_reach(score)
        {
            return;
        }
        self.count += 1;
        if self.count.is_multiple_of(CLOCK_EVERY)
            && let Some(deadline) = self.deadline
            && Instant::now() >= deadline
        {
            self.stopped = true;
            return;
        }
        if self.keeps_docs {
            self.facet_docs.push(doc);
        }
        if self.keep == 0 {
            return;
        }
        // The rules before `sort` rank first: below the worst kept in those, nothing
        // else needs reading (`worst_ties` starts at 0 until there is a worst).
        let key = Key::of(score).0;
        if key < self.worst_ties.start {
            return;
        }
        // Most matches of a common word tie with the worst kept on every rule: with
        // no `sort` and proximity not known yet (0 for both), the id alone decides,
        // without the general comparison.
        if self.sort.is_empty()
            && let Some(worst) = &self.worst
            && score.to_bits() == worst.score.to_bits()
            && self.ids[doc as usize] >= worst.id
        {
            return;
        }
        let mut sort_values = [SortValue::Missing; MAX_SORT];
        for ((slot, column), by) in sort_values
            .iter_mut()
            .zip(&self.sort_columns)
            .zip(&self.sort)
        {
            *slot = column.value(doc, by.descending);
        }
        let candidate = Ranked {
            score,
            proximity: 0,
            sort_values,
            id: self.ids[doc as usize],
            address: DocAddress::new(self.segment, doc),
        };
        // Once `keep` candidates are known, anything not better than the worst kept
        // can never make the page (better before `sort` is better: proximity is not
        // known here).
        if let Some(worst) = &self.worst
            && self.worst_ties.contains(&key)
            && self.order.compare(&self.sort, &candidate, worst) != Ordering::Less
        {
            return;
        }
        self.candidates.push(candidate);
        if self.candidates.len() >= 2 * self.keep.max(64) {
            prune(&mut self.candidates, self.keep, &self.order, &self.sort);
            self.worst = self
                .candidates
                .iter()
                .max_by(|a, b| self.order.compare(&self.sort, a, b))
                .copied();
            if let Some(worst) = &self.worst {
                self.worst_ties = self.order.tying_before_sort(Key::of(worst.score));
            }
        }
    }

    fn harvest(mut self) -> SegmentFruit {
        if self.stopped {
            // Nothing of it will be served: skip the facet counting.
            return SegmentFruit {
                count: self.count,
                matched: self.count,
                top: Vec::new(),
                facets: self
                    .facets
                    .into_iter()
                    .map(|_| FacetCounts::default())
                    .collect(),
                stopped: true,
                failed: None,
                texts: SegmentTexts::default(),
            };
        }
        prune(&mut self.candidates, self.keep, &self.order, &self.sort);
        let texts = sort::resolve_texts(&mut self.candidates, &self.sort_columns);
        let matched = self.count;
        let mut failed = None;
        if let Some((column, ids)) = &self.distinct {
            // Segments may be harvested on several threads: one at a time takes values.
            let mut ids = ids.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            failed = column.keep(&mut self.facet_docs, &mut ids).err();
            self.count = self.facet_docs.len();
        }
        for facet in &mut self.facets {
            count_facet_batch(facet, &self.facet_docs, &mut self.scratch);
        }
        let facets = self.facets.into_iter().map(harvest_facet).collect();
        SegmentFruit {
            count: self.count,
            matched,
            top: self.candidates,
            facets,
            stopped: false,
            failed,
            texts,
        }
    }
}

/// Counts a facet over `docs`, each value once per document: keyword columns through
/// their term ordinals (single-valued ones in batches), numbers document by document.
fn count_facet_batch(facet: &mut FacetColumn, docs: &[DocId], scratch: &mut Vec<u64>) {
    match facet {
        FacetColumn::Keyword {
            column: Some(column),
            counts,
        } => {
            let ords = column.ords();
            if ords.get_cardinality() != Cardinality::Multivalued {
                let mut values = [None; 256];
                for chunk in docs.chunks(values.len()) {
                    let values = &mut values[..chunk.len()];
                    ords.first_vals(chunk, values);
                    for ord in values.iter().flatten() {
                        if let Some(slot) = counts.get_mut(*ord as usize) {
                            *slot += 1;
                        }
                    }
                }
                return;
            }
            // Multi-valued (tags): remembering the last document that counted each
            // value replaces sorting and deduplicating every document's values.
            let mut counted_for: Vec<DocId> = vec![DocId::MAX; counts.len()];
            for &doc in docs {
                for ord in ords.values_for_doc(doc) {
                    let ord = ord as usize;
                    if let (Some(slot), Some(last)) =
                        (counts.get_mut(ord), counted_for.get_mut(ord))
                        && *last != doc
                    {
                        *last = doc;
                        *slot += 1;
                    }
                }
            }
        }
        FacetColumn::Keyword { column: None, .. } => {}
        FacetColumn::Number {
            column,
            counts,
            min,
            max,
        } => {
            for &doc in docs {
                scratch.clear();
                for value in column.values_for_doc(doc) {
                    *min = min_of(*min, Some(value));
                    *max = max_of(*max, Some(value));
                    scratch.push(value.to_bits());
                }
                scratch.sort_unstable();
                scratch.dedup();
                for &bits in scratch.iter() {
                    *counts.entry(bits).or_default() += 1;
                }
            }
        }
    }
}

fn harvest_facet(facet: FacetColumn) -> FacetCounts {
    let mut out = FacetCounts::default();
    match facet {
        FacetColumn::Keyword { column, counts } => {
            out.kind = Some(AttrKind::Keyword);
            if let Some(column) = column {
                // One sorted pass over the dictionary: looking each ordinal up on its
                // own decodes its whole block again, which cost more than the counting.
                let (ords, hits): (Vec<u64>, Vec<u64>) = counts
                    .into_iter()
                    .enumerate()
                    .filter(|(_, count)| *count > 0)
                    .map(|(ord, count)| (ord as u64, count))
                    .unzip();
                let mut hits = hits.into_iter();
                let _ = column.dictionary().sorted_ords_to_term_cb(&ords, |bytes| {
                    let count = hits.next().unwrap_or(0);
                    if let Ok(text) = std::str::from_utf8(bytes) {
                        *out.values.entry(text.to_owned()).or_default() += count;
                    }
                });
            }
        }
        FacetColumn::Number {
            counts, min, max, ..
        } => {
            out.kind = Some(AttrKind::Number);
            out.min = min;
            out.max = max;
            out.values = counts
                .into_iter()
                .map(|(bits, count)| (format_number(f64::from_bits(bits)), count))
                .collect();
        }
    }
    out
}

fn min_of(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn max_of(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// A number as Meilisearch writes facet values: integers without a fraction.
pub fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        format!("{}", value as i64)
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use tantivy::{Index, IndexWriter};

    use super::*;
    use crate::search::document::document_from_source;
    use crate::search::schema::{self, OfferSchema};

    /// An empty in-RAM index of offers and its writer.
    fn empty_index() -> (OfferSchema, Index, IndexWriter) {
        let index = Index::create_in_ram(schema::build());
        schema::register_tokenizers(&index);
        let writer = index.writer_with_num_threads(1, 20_000_000).unwrap();
        (OfferSchema::current(), index, writer)
    }

    /// Adds the offer `id`, named after it.
    fn add_offer(writer: &mut IndexWriter, offers: &OfferSchema, id: u64) {
        let source = serde_json::json!({ "id": id, "name": format!("offer {id}") });
        writer
            .add_document(document_from_source(offers, &source))
            .unwrap();
    }

    /// Ranks by the shipped rules, counts `facets`, nothing else.
    fn ranking(keep: usize, facets: Vec<(&'static str, AttrKind)>) -> SearchCollector {
        SearchCollector {
            keep,
            scored: false,
            order: Default::default(),
            sort: Vec::new(),
            facets,
            ids: Arc::new(IdsBySegment::default()),
            deadline: None,
            distinct: None,
            threshold: None,
        }
    }

    #[test]
    fn ids_are_read_per_segment_and_forgotten_once_merged_away() {
        let (offers, index, mut writer) = empty_index();
        for batch in [[30, 10], [20, 40]] {
            for id in batch {
                add_offer(&mut writer, &offers, id);
            }
            writer.commit().unwrap();
        }
        let reader = index.reader().unwrap();
        let ids = IdsBySegment::default();
        let searcher = reader.searcher();
        let mut read: Vec<Vec<f64>> = searcher
            .segment_readers()
            .iter()
            .map(|segment| ids.get(segment).unwrap().to_vec())
            .collect();
        read.sort_by(|a, b| a[0].total_cmp(&b[0]));
        assert_eq!(read, [vec![20.0, 40.0], vec![30.0, 10.0]]);

        let segments = index.searchable_segment_ids().unwrap();
        writer.merge(&segments).wait().unwrap();
        reader.reload().unwrap();
        let merged = reader.searcher();
        ids.keep_only(&merged);
        assert!(
            ids.lock().is_empty(),
            "the merged-away segments are forgotten"
        );
        let mut all = ids.get(&merged.segment_readers()[0]).unwrap().to_vec();
        all.sort_by(f64::total_cmp);
        assert_eq!(all, [10.0, 20.0, 30.0, 40.0]);
        assert_eq!(ids.lock().len(), 1);
    }

    #[test]
    fn documents_that_tie_on_every_rule_keep_the_lowest_ids_whatever_their_order() {
        // Every match of the query ties (one score, no sort): the collector's shortcut
        // compares ids alone. The ids come shuffled over two segments, so later
        // documents keep displacing the kept ones, across many prunes.
        let (offers, index, mut writer) = empty_index();
        let count = 5_000u64;
        for half in [0..count / 2, count / 2..count] {
            for i in half {
                let id = (i * 7_919) % count;
                add_offer(&mut writer, &offers, id);
            }
            writer.commit().unwrap();
        }
        let searcher = index.reader().unwrap().searcher();
        assert_eq!(searcher.segment_readers().len(), 2);
        for keep in [1, 20, 300] {
            let collector = ranking(keep, Vec::new());
            let mut collected = searcher
                .search(&tantivy::query::AllQuery, &collector)
                .unwrap();
            assert_eq!(collected.count, count as usize);
            collected
                .top
                .sort_by(|a, b| collector.order.compare(&[], a, b));
            let ids: Vec<f64> = collected.top.iter().map(|ranked| ranked.id).collect();
            let lowest: Vec<f64> = (0..keep as u64).map(|id| id as f64).collect();
            assert_eq!(ids, lowest, "keep {keep}");
        }
    }

    #[test]
    fn a_passed_deadline_stops_collecting_and_says_so() {
        let (offers, index, mut writer) = empty_index();
        for id in 0..10_000 {
            add_offer(&mut writer, &offers, id);
        }
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        let collector = |deadline| SearchCollector {
            deadline,
            ..ranking(20, vec![("id", AttrKind::Number)])
        };
        let query = tantivy::query::AllQuery;
        let whole = searcher.search(&query, &collector(None)).unwrap();
        assert!(!whole.stopped);
        assert_eq!(whole.count, 10_000);
        assert_eq!(whole.top.len(), 20);

        let later = Instant::now() + std::time::Duration::from_secs(60);
        let in_time = searcher.search(&query, &collector(Some(later))).unwrap();
        assert!(!in_time.stopped);
        assert_eq!(in_time.count, 10_000);

        let passed = Instant::now() - std::time::Duration::from_millis(1);
        let late = searcher.search(&query, &collector(Some(passed))).unwrap();
        assert!(
            late.stopped,
            "a search past its deadline says it is incomplete"
        );
        assert!(late.top.is_empty() && late.count < 10_000);
    }
}
