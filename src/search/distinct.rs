//! `distinct`: at most one document per value of an attribute (Meilisearch's
//! `distinctAttribute` setting, or a search's own `distinct`, which overrides it).
//!
//! The rule is milli's (`apply_distinct_rule`, crates/milli/src/search/new/distinct.rs):
//! walking documents in some order, a document is kept unless it shares a value of the
//! attribute with a document kept before it; a document without a value is kept. Two
//! orders are walked, as Meilisearch walks them:
//! - **hits** in ranking order ([`first_in_ranking_order`]), so the best offer of a
//!   product stands for it;
//! - **totals and facet counts** over every match in index order
//!   ([`SegmentDistinct::keep`], run by the collector at harvest), which is what
//!   Meilisearch counts when it computes exhaustive totals (`page`/`hitsPerPage`).
//!
//! The two may keep different documents of a product, and then a facet that differs
//! between them counts the one the index order kept, as in Meilisearch.
//!
//! Values are given small ids shared by all segments ([`ValueIds`]), so the rule runs
//! over arrays of ids, and each segment's values are read from its columns in one
//! sorted pass over the dictionary.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tantivy::columnar::{Column, StrColumn};
use tantivy::{DocId, Searcher, SegmentReader};

use super::collect::Ranked;
use super::schema::AttrKind;

/// What the collector needs to count with `distinct`: the attribute, and the values
/// taken so far by the segments already harvested (one search's; not reused).
pub struct DistinctCount {
    pub attribute: (&'static str, AttrKind),
    pub(super) ids: Arc<Mutex<ValueIds>>,
}

impl DistinctCount {
    pub fn new(attribute: (&'static str, AttrKind)) -> DistinctCount {
        DistinctCount {
            attribute,
            ids: Arc::default(),
        }
    }
}

/// Ids for the attribute's values across segments, and which values a kept document
/// has taken.
#[derive(Default)]
pub struct ValueIds {
    texts: HashMap<Box<[u8]>, u32>,
    numbers: HashMap<u64, u32>,
    taken: Vec<bool>,
}

impl ValueIds {
    fn text(&mut self, bytes: &[u8]) -> u32 {
        if let Some(&id) = self.texts.get(bytes) {
            return id;
        }
        let id = self.new_id();
        self.texts.insert(bytes.into(), id);
        id
    }

    fn number(&mut self, value: f64) -> u32 {
        // -0.0 and 0.0 are one value.
        let bits = if value == 0.0 { 0 } else { value.to_bits() };
        if let Some(&id) = self.numbers.get(&bits) {
            return id;
        }
        let id = self.new_id();
        self.numbers.insert(bits, id);
        id
    }

    fn new_id(&mut self) -> u32 {
        self.taken.push(false);
        (self.taken.len() - 1) as u32
    }

    /// The rule for one document: kept when none of `values` is taken, and then they
    /// all are.
    fn keep(&mut self, values: &[u32]) -> bool {
        if values.iter().any(|&id| self.taken[id as usize]) {
            return false;
        }
        for &id in values {
            self.taken[id as usize] = true;
        }
        true
    }
}

/// The attribute's column in one segment.
pub enum SegmentDistinct {
    Keyword(Option<StrColumn>),
    Number(Column<f64>),
}

/// Each document's value ids, in the order the documents were given.
struct DocValues {
    /// Document `i`'s ids are `ids[starts[i]..starts[i + 1]]`.
    starts: Vec<usize>,
    ids: Vec<u32>,
}

impl DocValues {
    fn of(&self, i: usize) -> &[u32] {
        &self.ids[self.starts[i]..self.starts[i + 1]]
    }
}

impl SegmentDistinct {
    pub fn open(
        reader: &SegmentReader,
        (attribute, kind): (&'static str, AttrKind),
    ) -> tantivy::Result<SegmentDistinct> {
        let fast = reader.fast_fields();
        Ok(match kind {
            AttrKind::Keyword => SegmentDistinct::Keyword(fast.str(attribute)?),
            AttrKind::Number => SegmentDistinct::Number(fast.f64(attribute)?),
        })
    }

    /// The value ids of `docs` (any order; a document listed twice reads twice). A
    /// term the dictionary cannot give back is an error: ignoring it would let every
    /// document holding it through.
    fn values(&self, docs: &[DocId], ids: &mut ValueIds) -> tantivy::Result<DocValues> {
        let mut starts = Vec::with_capacity(docs.len() + 1);
        starts.push(0);
        let values = match self {
            SegmentDistinct::Keyword(None) => {
                starts.resize(docs.len() + 1, 0);
                Vec::new()
            }
            SegmentDistinct::Keyword(Some(column)) => {
                let mut ords: Vec<u64> = Vec::with_capacity(docs.len());
                for &doc in docs {
                    ords.extend(column.ords().values_for_doc(doc));
                    starts.push(ords.len());
                }
                // One sorted pass over the dictionary names every ordinal used.
                let mut used = ords.clone();
                used.sort_unstable();
                used.dedup();
                let mut named = Vec::with_capacity(used.len());
                let complete = column
                    .dictionary()
                    .sorted_ords_to_term_cb(&used, |bytes| named.push(ids.text(bytes)))?;
                if !complete || named.len() != used.len() {
                    return Err(tantivy::TantivyError::InternalError(
                        "distinct: a term ordinal is missing from its dictionary".into(),
                    ));
                }
                ords.iter()
                    .map(|ord| named[used.partition_point(|used| used < ord)])
                    .collect()
            }
            SegmentDistinct::Number(column) => {
                let mut values = Vec::with_capacity(docs.len());
                for &doc in docs {
                    values.extend(column.values_for_doc(doc).map(|value| ids.number(value)));
                    starts.push(values.len());
                }
                values
            }
        };
        Ok(DocValues {
            starts,
            ids: values,
        })
    }

    /// Keeps, of `docs` in their order, those the rule keeps given what earlier
    /// documents (of this and of other segments, through `ids`) have taken.
    pub fn keep(&self, docs: &mut Vec<DocId>, ids: &mut ValueIds) -> tantivy::Result<()> {
        let values = self.values(docs, ids)?;
        let mut i = 0;
        docs.retain(|_| {
            let kept = ids.keep(values.of(i));
            i += 1;
            kept
        });
        Ok(())
    }
}

/// The first `wanted` of `ranked` (in ranking order) that the rule keeps; fewer when
/// `ranked` runs out first.
pub fn first_in_ranking_order(
    searcher: &Searcher,
    attribute: (&'static str, AttrKind),
    ranked: &[Ranked],
    wanted: usize,
) -> tantivy::Result<Vec<Ranked>> {
    let mut ids = ValueIds::default();
    // Values are read a segment at a time; `slot[i]` says where candidate `i`'s are.
    let mut in_segment: Vec<Vec<usize>> = vec![Vec::new(); searcher.segment_readers().len()];
    for (i, candidate) in ranked.iter().enumerate() {
        in_segment[candidate.address.segment_ord as usize].push(i);
    }
    let mut slot = vec![(0, 0); ranked.len()];
    let mut per_segment = Vec::with_capacity(in_segment.len());
    for (segment, candidates) in in_segment.iter().enumerate() {
        let docs: Vec<DocId> = candidates
            .iter()
            .map(|&i| ranked[i].address.doc_id)
            .collect();
        let reader = searcher.segment_reader(segment as u32);
        per_segment.push(SegmentDistinct::open(reader, attribute)?.values(&docs, &mut ids)?);
        for (k, &i) in candidates.iter().enumerate() {
            slot[i] = (segment, k);
        }
    }
    let mut kept = Vec::with_capacity(wanted.min(ranked.len()));
    for (candidate, &(segment, k)) in ranked.iter().zip(&slot) {
        if kept.len() == wanted {
            break;
        }
        if ids.keep(per_segment[segment].of(k)) {
            kept.push(*candidate);
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tantivy::query::AllQuery;
    use tantivy::{Index, IndexWriter};

    use super::{DistinctCount, ValueIds, first_in_ranking_order};
    use crate::search::collect::{IdsBySegment, SearchCollector};
    use crate::search::document::document_from_source;
    use crate::search::schema::SortField;
    use crate::search::schema::{self, AttrKind, OfferSchema};
    use crate::search::sort::SortBy;

    /// Offers `(id, gtins)` in three segments, one commit each: a product's offers are
    /// spread over segments, as after incremental commits.
    fn index_of(segments: &[&[(i64, &[&str])]]) -> Index {
        let offers = OfferSchema::current();
        let index = Index::create_in_ram(schema::build());
        schema::register_tokenizers(&index);
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 20_000_000).unwrap();
        for segment in segments {
            for (id, gtins) in segment.iter() {
                let source = serde_json::json!({ "id": id, "name": "offer", "gtins": gtins });
                writer
                    .add_document(document_from_source(&offers, &source))
                    .unwrap();
            }
            writer.commit().unwrap();
        }
        index
    }

    #[test]
    fn values_shared_across_segments_count_once_and_rank_once() {
        let index = index_of(&[
            &[(1, &["a", "b"]), (2, &["c"])],
            &[(3, &["a"]), (4, &[]), (5, &["d"])],
            &[(6, &["c"]), (7, &["e", "a"]), (8, &[])],
        ]);
        let searcher = index.reader().unwrap().searcher();
        assert_eq!(searcher.segment_readers().len(), 3);
        let gtins = ("gtins", AttrKind::Keyword);
        let by_id = SortBy {
            attribute: "id",
            requested: "id",
            field: SortField::Number("id"),
            descending: false,
        };
        let collector = |distinct| SearchCollector {
            keep: 8,
            scored: false,
            order: Default::default(),
            sort: vec![by_id.clone()],
            facets: Vec::new(),
            ids: Arc::new(IdsBySegment::default()),
            deadline: None,
            distinct,
            threshold: None,
        };
        // Whatever order the segments are walked in, one offer of each product is kept:
        // of {1, 3, 7} (all hold "a"), of {2, 6} ("c"), and 5; the two without a GTIN
        // are each kept.
        let counted = searcher
            .search(&AllQuery, &collector(Some(DistinctCount::new(gtins))))
            .unwrap();
        assert_eq!((counted.matched, counted.count), (8, 5));
        let ranked = searcher.search(&AllQuery, &collector(None)).unwrap();
        let ids = |kept: &[crate::search::collect::Ranked]| -> Vec<f64> {
            kept.iter().map(|ranked| ranked.id).collect()
        };
        assert_eq!(ids(&ranked.top), [1., 2., 3., 4., 5., 6., 7., 8.]);
        // In ranking (id) order: 3 and 7 go (a, with 1), 6 goes (c, with 2).
        let kept = first_in_ranking_order(&searcher, gtins, &ranked.top, 10).unwrap();
        assert_eq!(ids(&kept), [1., 2., 4., 5., 8.]);
        let first = first_in_ranking_order(&searcher, gtins, &ranked.top, 3).unwrap();
        assert_eq!(ids(&first), [1., 2., 4.]);
    }

    #[test]
    fn a_document_is_dropped_when_it_shares_a_value_with_one_kept_before() {
        let mut ids = ValueIds::default();
        let (a, b, c) = (ids.text(b"a"), ids.text(b"b"), ids.text(b"c"));
        assert_eq!(ids.text(b"a"), a, "a value keeps its id");
        assert!(ids.keep(&[a, b]));
        assert!(!ids.keep(&[b, c]), "shares b with the first");
        // milli's rule, not groups: c was never taken (its only holder was dropped).
        assert!(ids.keep(&[c]));
        assert!(ids.keep(&[]), "a document without a value is always kept");
        assert!(ids.keep(&[]));
        let zero = ids.number(0.0);
        assert_eq!(ids.number(-0.0), zero);
        assert!(ids.keep(&[zero]));
        let negative_zero = ids.number(-0.0);
        assert!(!ids.keep(&[negative_zero]));
    }
}
