//! `sort`: what a criterion is, how a segment reads a document's value for it, and how
//! string values are compared within and across segments.
//!
//! A criterion orders as Meilisearch's sort rule does
//! (crates/milli/src/search/new/sort.rs: the number facets walked first, then the string
//! facets, both in the asked direction; the documents met in neither come last): numbers
//! first, then strings (lexicographic on the normalized value, `schema::sort_key`;
//! booleans are the strings `false` < `true`), then the documents missing the value,
//! whatever the direction. A document with several values sorts at the first of them
//! met in that walk: its smallest ascending, its largest descending.
//!
//! Strings are compared by their term ordinal in the segment's sort-key column (an
//! integer compare per document, as cheap as a number); ordinals mean nothing across
//! segments, so each segment turns the ordinals of the candidates it keeps into their
//! strings at harvest ([`resolve_texts`]), and the merge ranks the strings of all
//! segments together ([`rank_across_segments`]).

use std::cmp::Ordering;

use tantivy::columnar::{Cardinality, Column, StrColumn};
use tantivy::{DocId, SegmentReader};

use super::collect::Ranked;
use super::schema::SortField;

/// One sort criterion.
#[derive(Debug, Clone)]
pub struct SortBy {
    pub attribute: &'static str,
    /// The name the request gave (`price` for `min_price`), for the ranking details.
    pub requested: &'static str,
    /// Where its values are read.
    pub field: SortField,
    pub descending: bool,
}

/// A document's value for one sort criterion, ordered by [`compare_values`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SortValue {
    Number(f64),
    /// A term ordinal of the segment's sort-key column while collecting; after harvest
    /// and merge, a rank among the strings kept (see the module doc).
    Text(u64),
    Missing,
}

/// One criterion's order: numbers, then strings, both in the asked direction, then
/// missing values.
pub fn compare_values(a: SortValue, b: SortValue, descending: bool) -> Ordering {
    use SortValue::{Missing, Number, Text};
    let directed = |ordering: Ordering| {
        if descending {
            ordering.reverse()
        } else {
            ordering
        }
    };
    match (a, b) {
        (Number(x), Number(y)) => directed(x.partial_cmp(&y).unwrap_or(Ordering::Equal)),
        (Text(x), Text(y)) => directed(x.cmp(&y)),
        (Missing, Missing) => Ordering::Equal,
        (Missing, _) => Ordering::Greater,
        (_, Missing) => Ordering::Less,
        (Number(_), Text(_)) => Ordering::Less,
        (Text(_), Number(_)) => Ordering::Greater,
    }
}

/// Where one segment reads a sort criterion's values. `multi`: some document has
/// several values (then the smallest or largest is taken, see the module doc).
pub(super) enum SortColumn {
    Number {
        column: Column<f64>,
        multi: bool,
    },
    /// `None`: no document of the segment has the attribute.
    Text {
        column: Option<StrColumn>,
        multi: bool,
    },
}

impl SortColumn {
    pub(super) fn open(reader: &SegmentReader, by: &SortBy) -> tantivy::Result<SortColumn> {
        let fast = reader.fast_fields();
        Ok(match by.field {
            SortField::Number(name) => {
                let column = fast.f64(name)?;
                let multi = column.get_cardinality() == Cardinality::Multivalued;
                SortColumn::Number { column, multi }
            }
            SortField::Text(name) => {
                let column = fast.str(name)?;
                let multi = column.as_ref().is_some_and(|column| {
                    column.ords().get_cardinality() == Cardinality::Multivalued
                });
                SortColumn::Text { column, multi }
            }
        })
    }

    pub(super) fn value(&self, doc: DocId, descending: bool) -> SortValue {
        match self {
            SortColumn::Number {
                column,
                multi: false,
            } => column
                .first(doc)
                .map_or(SortValue::Missing, SortValue::Number),
            SortColumn::Number {
                column,
                multi: true,
            } => {
                let values = column.values_for_doc(doc);
                let value = if descending {
                    values.max_by(f64::total_cmp)
                } else {
                    values.min_by(f64::total_cmp)
                };
                value.map_or(SortValue::Missing, SortValue::Number)
            }
            SortColumn::Text { column: None, .. } => SortValue::Missing,
            SortColumn::Text {
                column: Some(column),
                multi,
            } => {
                let ords = column.ords();
                let ord = match (multi, descending) {
                    (false, _) => ords.first(doc),
                    (true, false) => ords.values_for_doc(doc).min(),
                    (true, true) => ords.values_for_doc(doc).max(),
                };
                ord.map_or(SortValue::Missing, SortValue::Text)
            }
        }
    }
}

/// Replaces each segment's `Text` ordinals in `top` by the indexes of their strings in
/// its `texts` (sorted like the ordinals, so the order within the segment holds).
pub(super) fn resolve_texts(top: &mut [Ranked], columns: &[SortColumn]) -> SegmentTexts {
    let mut texts = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        let SortColumn::Text {
            column: Some(column),
            ..
        } = column
        else {
            texts.push(Vec::new());
            continue;
        };
        let mut ords: Vec<u64> = top
            .iter()
            .filter_map(|ranked| match ranked.sort_values[i] {
                SortValue::Text(ord) => Some(ord),
                _ => None,
            })
            .collect();
        ords.sort_unstable();
        ords.dedup();
        let mut strings = Vec::with_capacity(ords.len());
        // One sorted pass over the dictionary (see `harvest_facet`). A read error
        // leaves fewer strings than ordinals: those values then sort as missing.
        let _ = column
            .dictionary()
            .sorted_ords_to_term_cb(&ords, |bytes| strings.push(bytes.to_vec()));
        for ranked in top.iter_mut() {
            if let SortValue::Text(ord) = ranked.sort_values[i] {
                ranked.sort_values[i] = match ords.binary_search(&ord) {
                    Ok(at) if at < strings.len() => SortValue::Text(at as u64),
                    _ => SortValue::Missing,
                };
            }
        }
        texts.push(strings);
    }
    SegmentTexts(texts)
}

/// Per sort criterion, the sorted strings a segment's kept `Text` values index (empty
/// for a number criterion).
#[derive(Debug, Default)]
pub struct SegmentTexts(Vec<Vec<Vec<u8>>>);

/// Makes the `Text` values of every segment's kept candidates comparable across
/// segments: each becomes the rank of its string among the strings all segments kept.
pub(super) fn rank_across_segments(parts: &mut [(&mut [Ranked], &SegmentTexts)], criteria: usize) {
    for i in 0..criteria {
        fn texts_of(texts: &SegmentTexts, i: usize) -> &[Vec<u8>] {
            texts.0.get(i).map(Vec::as_slice).unwrap_or_default()
        }
        let mut all: Vec<&[u8]> = Vec::new();
        for (_, texts) in parts.iter() {
            all.extend(texts_of(texts, i).iter().map(Vec::as_slice));
        }
        if all.is_empty() {
            continue;
        }
        all.sort_unstable();
        all.dedup();
        for (top, texts) in parts.iter_mut() {
            let ranks: Vec<u64> = texts_of(texts, i)
                .iter()
                .map(|text| all.binary_search(&text.as_slice()).unwrap_or_default() as u64)
                .collect();
            for ranked in top.iter_mut() {
                if let SortValue::Text(local) = ranked.sort_values[i] {
                    ranked.sort_values[i] = SortValue::Text(ranks[local as usize]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Value, json};
    use tantivy::query::AllQuery;
    use tantivy::{Index, IndexWriter};

    use crate::search::collect::{IdsBySegment, SearchCollector};
    use crate::search::document::document_from_source;
    use crate::search::params::SearchRequest;
    use crate::search::schema::{self, OfferSchema};

    /// A small catalog written in three segments, so that equal and ordered strings sit
    /// in different segments (their ordinals are then unrelated).
    fn catalog() -> Index {
        let offers = OfferSchema::current();
        let index = Index::create_in_ram(schema::build());
        schema::register_tokenizers(&index);
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 20_000_000).unwrap();
        let segments = [
            vec![
                json!({ "id": 1, "name": "banana", "vendor": "Zeta", "available": true, "min_price": 300, "collection_ids": [5, 1] }),
                json!({ "id": 2, "name": "Apple", "vendor": null, "available": false, "min_price": 100, "collection_ids": [3] }),
                json!({ "id": 3, "name": "cherry", "vendor": "alpha", "available": true, "min_price": null, "collection_ids": [] }),
            ],
            vec![
                json!({ "id": 4, "name": "apple", "vendor": "Beta", "available": true, "min_price": 200, "collection_ids": [2, 4] }),
                // "É" decomposes to "e" and a combining accent, which sorts after "c".
                json!({ "id": 5, "name": "Éclair", "vendor": "", "available": false, "min_price": 100 }),
                json!({ "id": 6, "name": "eclair", "vendor": "beta", "available": null, "min_price": 300 }),
            ],
            vec![
                json!({ "id": 7, "name": null, "vendor": "zeta", "available": true }),
                json!({ "id": 8, "name": " APPLE ", "available": false, "min_price": 50 }),
            ],
        ];
        for documents in segments {
            for source in documents {
                writer
                    .add_document(document_from_source(&offers, &source))
                    .unwrap();
            }
            writer.commit().unwrap();
        }
        index
    }

    /// The ids of the first `keep` offers in the order `sort` gives.
    fn sorted(index: &Index, sort: Value, keep: usize) -> Vec<i64> {
        let request =
            SearchRequest::from_object(json!({ "sort": sort }).as_object().unwrap(), &[]).unwrap();
        let collector = SearchCollector {
            keep,
            scored: false,
            order: Default::default(),
            sort: request.sort,
            facets: Vec::new(),
            ids: Arc::new(IdsBySegment::default()),
            deadline: None,
            distinct: None,
            threshold: None,
        };
        let searcher = index.reader().unwrap().searcher();
        assert_eq!(searcher.segment_readers().len(), 3);
        let collected = searcher.search(&AllQuery, &collector).unwrap();
        collected
            .top
            .iter()
            .map(|ranked| ranked.id as i64)
            .collect()
    }

    #[test]
    fn texts_sort_lowercased_and_decomposed_with_missing_values_last_both_ways() {
        let index = catalog();
        for (sort, expected) in [
            // apple (2, 4, 8: " APPLE " trimmed), banana, cherry, eclair, Éclair; no name.
            (json!(["name:asc"]), vec![2, 4, 8, 1, 3, 6, 5, 7]),
            // Ties stay in id order, the missing name stays last.
            (json!(["name:desc"]), vec![5, 6, 3, 1, 2, 4, 8, 7]),
            // alpha, beta (Beta, beta), zeta (Zeta, zeta); null, "" and absent last.
            (json!(["vendor:asc"]), vec![3, 4, 6, 1, 7, 2, 5, 8]),
            (json!(["vendor:desc"]), vec![1, 7, 4, 6, 3, 2, 5, 8]),
        ] {
            assert_eq!(sorted(&index, sort.clone(), 100), expected, "{sort}");
            assert_eq!(
                sorted(&index, sort.clone(), 3),
                expected[..3],
                "{sort}, three kept"
            );
        }
    }

    #[test]
    fn booleans_sort_as_false_then_true_and_criteria_break_ties_in_turn() {
        let index = catalog();
        for (sort, expected) in [
            (json!(["available:asc"]), vec![2, 5, 8, 1, 3, 4, 7, 6]),
            (json!(["available:desc"]), vec![1, 3, 4, 7, 2, 5, 8, 6]),
            // Available: apple, banana, cherry, no name; unavailable: the two apples by
            // price (8 at 50 before 2 at 100), Éclair; then 6 (availability unknown).
            (
                json!(["available:desc", "name:asc", "min_price:asc"]),
                vec![4, 1, 3, 7, 8, 2, 5, 6],
            ),
            (
                json!(["available:desc", "name:asc", "min_price:desc"]),
                vec![4, 1, 3, 7, 2, 8, 5, 6],
            ),
            // Numbers mixed with texts: price, then name among equal prices.
            (
                json!(["min_price:asc", "name:desc"]),
                vec![8, 5, 2, 4, 6, 1, 3, 7],
            ),
        ] {
            assert_eq!(sorted(&index, sort.clone(), 100), expected, "{sort}");
            assert_eq!(sorted(&index, sort.clone(), 2), expected[..2], "{sort}");
        }
    }

    #[test]
    fn several_values_sort_at_the_smallest_ascending_and_the_largest_descending() {
        let index = catalog();
        // 1 holds [5, 1], 2 [3], 4 [2, 4]; 3 is empty, the others have none.
        assert_eq!(
            sorted(&index, json!(["collection_ids:asc"]), 100),
            [1, 4, 2, 3, 5, 6, 7, 8]
        );
        assert_eq!(
            sorted(&index, json!(["collection_ids:desc"]), 100),
            [1, 4, 2, 3, 5, 6, 7, 8]
        );
        assert_eq!(
            sorted(&index, json!(["collection_ids:desc", "id:desc"]), 100),
            [1, 4, 2, 8, 7, 6, 5, 3]
        );
    }

    #[test]
    fn sort_keys_are_meilisearchs_normalized_facet_values() {
        assert_eq!(schema::sort_key(" Blue FOX "), Some("blue fox".into()));
        assert_eq!(schema::sort_key("Éclair"), Some("e\u{301}clair".into()));
        assert_eq!(
            schema::sort_key("ﬁne"),
            Some("fine".into()),
            "NFKD folds ligatures"
        );
        assert_eq!(schema::sort_key(""), None);
    }
}
