//! Diff tests on an in-memory index: what a batch rewrites, deletes and leaves alone,
//! and that the result equals an index built from scratch from the same rows.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tantivy::schema::Value as _;
use tantivy::{DocAddress, IndexWriter, TantivyDocument};

use super::*;
use crate::search::store::Generation;

fn row(id: i64, merchant: i64, name: &str) -> OfferRow {
    OfferRow {
        offer_id: id,
        merchant_id: merchant,
        name: name.into(),
        description: Some(format!("About {name}")),
        html_description: None,
        vendor: Some("Acme".into()),
        seller: None,
        tags: vec!["new".into()],
        category: Some("Apparel".into()),
        available: Some(true),
        visible: Some(true),
        min_price: Some(1000 + id),
        max_price: Some(2000 + id),
        currency: Some("USD".into()),
        status: Some("AVAILABLE".into()),
        image_url: None,
        date_last_modified: None,
        collection_ids: vec![],
        collections: vec![],
        sku_names: vec![],
        gtins: vec![],
        upcs: vec![],
        eans: vec![],
    }
}

fn catalog(merchant: i64, count: i64) -> Vec<OfferRow> {
    (0..count)
        .map(|i| row(merchant * 1000 + i, merchant, &format!("Offer {i}")))
        .collect()
}

/// An in-memory generation holding `rows`, and its writer.
fn indexed(rows: &[OfferRow]) -> (Arc<Generation>, IndexWriter) {
    let generation = Generation::empty();
    let mut writer = generation.writer(1, 15_000_000).unwrap();
    for row in rows {
        writer
            .add_document(row.to_document(&generation.schema))
            .unwrap();
    }
    store::commit(&mut writer, payload(1)).unwrap();
    generation.reader.reload().unwrap();
    (generation, writer)
}

fn payload(change_no: i64) -> Payload {
    Payload {
        schema_version: crate::search::schema::SCHEMA_VERSION,
        change_no,
    }
}

/// Every live document's hit JSON by offer id (a duplicate id fails the test).
fn documents(generation: &Generation) -> BTreeMap<i64, String> {
    let searcher = generation.reader.searcher();
    let mut all = BTreeMap::new();
    for (ordinal, segment) in searcher.segment_readers().iter().enumerate() {
        for doc in 0..segment.max_doc() {
            if segment.is_deleted(doc) {
                continue;
            }
            let stored: TantivyDocument =
                searcher.doc(DocAddress::new(ordinal as u32, doc)).unwrap();
            let text = stored
                .get_first(generation.schema.source)
                .and_then(|value| value.as_str())
                .unwrap()
                .to_string();
            let id = serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"]
                .as_i64()
                .unwrap();
            assert!(
                all.insert(id, text).is_none(),
                "offer {id} has two documents"
            );
        }
    }
    all
}

/// Applies whole-merchant passes (merchant, its rows now) and listed offers, commits.
fn apply(
    generation: &Generation,
    writer: &mut IndexWriter,
    merchants: Vec<(i64, Vec<OfferRow>)>,
    listed: Option<(Vec<i64>, Vec<OfferRow>)>,
) -> DocumentCounts {
    let whole: BTreeSet<i64> = merchants.iter().map(|(merchant, _)| *merchant).collect();
    let (sender, receiver) = tokio::sync::mpsc::channel(1024);
    for (merchant, rows) in merchants {
        sender.try_send(Work::Merchant(merchant)).unwrap();
        for chunk in rows.chunks(3) {
            sender.try_send(Work::Rows(chunk.to_vec())).unwrap();
        }
    }
    if let Some((ids, rows)) = listed {
        sender.try_send(Work::Listed { ids, rows }).unwrap();
    }
    sender.try_send(Work::Commit(payload(2))).unwrap();
    run(writer, generation, &whole, receiver)
        .unwrap()
        .expect("committed")
}

fn fresh(rows: &[OfferRow]) -> BTreeMap<i64, String> {
    documents(&indexed(rows).0)
}

#[test]
fn an_unchanged_merchant_writes_nothing() {
    let rows = catalog(7, 20);
    let (generation, mut writer) = indexed(&rows);
    let counts = apply(&generation, &mut writer, vec![(7, rows.clone())], None);
    assert_eq!(
        counts,
        DocumentCounts {
            added: 0,
            deleted: 0,
            unchanged: 20
        }
    );
    assert_eq!(documents(&generation), fresh(&rows));
}

#[test]
fn only_what_differs_is_rewritten_and_what_is_gone_is_deleted() {
    let mut rows = catalog(7, 20);
    let other = catalog(8, 5);
    let (generation, mut writer) = indexed(&[rows.clone(), other.clone()].concat());
    for changed in [2, 9, 15] {
        rows[changed].name = format!("Changed {changed}");
    }
    rows[4].collection_ids = vec![77];
    rows.remove(11);
    rows.push(row(7_999, 7, "Brand new"));
    let counts = apply(&generation, &mut writer, vec![(7, rows.clone())], None);
    assert_eq!(
        counts,
        DocumentCounts {
            added: 5,
            deleted: 5,
            unchanged: 15
        },
        "4 changed, 1 gone, 1 new"
    );
    assert_eq!(documents(&generation), fresh(&[rows, other].concat()));
}

#[test]
fn a_merchant_the_mirror_no_longer_shows_loses_every_document() {
    let rows = catalog(7, 10);
    let other = catalog(8, 5);
    let (generation, mut writer) = indexed(&[rows, other.clone()].concat());
    let counts = apply(&generation, &mut writer, vec![(7, vec![])], None);
    assert_eq!(counts.deleted, 10);
    assert_eq!(counts.added, 0);
    assert_eq!(documents(&generation), fresh(&other));
}

#[test]
fn an_offer_moving_between_merchants_of_one_batch_keeps_one_document_in_either_order() {
    for order in [[7, 8], [8, 7]] {
        let a = catalog(7, 4);
        let b = catalog(8, 4);
        let (generation, mut writer) = indexed(&[a.clone(), b.clone()].concat());
        let mut moved = a[1].clone();
        moved.merchant_id = 8;
        let a_now: Vec<OfferRow> = a
            .iter()
            .filter(|r| r.offer_id != moved.offer_id)
            .cloned()
            .collect();
        let mut b_now = b.clone();
        b_now.insert(0, moved.clone());
        let passes = order
            .iter()
            .map(|merchant| {
                (
                    *merchant,
                    if *merchant == 7 {
                        a_now.clone()
                    } else {
                        b_now.clone()
                    },
                )
            })
            .collect();
        apply(&generation, &mut writer, passes, None);
        assert_eq!(
            documents(&generation),
            fresh(&[a_now, b_now].concat()),
            "order {order:?}"
        );
    }
}

#[test]
fn listed_offers_skip_the_unchanged_and_leave_whole_merchants_to_their_pass() {
    let mut a = catalog(7, 6);
    let mut b = catalog(8, 4);
    let (generation, mut writer) = indexed(&[a.clone(), b.clone()].concat());
    a[0].name = "Renamed".into();
    let hidden = a.remove(2).offer_id;
    let unchanged = a[3].offer_id;
    b[1].name = "Whole pass".into();
    let ids = vec![a[0].offer_id, hidden, unchanged, b[1].offer_id, 123_456];
    let shown: Vec<OfferRow> = [a[0].clone(), a[3].clone(), b[1].clone()].to_vec();
    let counts = apply(
        &generation,
        &mut writer,
        vec![(8, b.clone())],
        Some((ids, shown)),
    );
    assert_eq!(
        counts,
        DocumentCounts {
            added: 2,
            deleted: 3,
            unchanged: 4
        },
        "merchant 8: one rewritten, 3 unchanged; listed: one rewritten, one hidden, one unchanged"
    );
    assert_eq!(documents(&generation), fresh(&[a, b].concat()));
}

#[test]
fn a_batch_that_ends_without_its_commit_leaves_nothing_behind() {
    let rows = catalog(7, 5);
    let (generation, mut writer) = indexed(&rows);
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    sender.try_send(Work::Merchant(7)).unwrap();
    sender
        .try_send(Work::Rows(vec![row(7_000, 7, "Half applied")]))
        .unwrap();
    drop(sender);
    let whole = BTreeSet::from([7]);
    assert!(
        run(&mut writer, &generation, &whole, receiver)
            .unwrap()
            .is_none()
    );
    // The next batch commits only its own work.
    let counts = apply(&generation, &mut writer, vec![(7, rows.clone())], None);
    assert_eq!(counts.unchanged, 5);
    assert_eq!(documents(&generation), fresh(&rows));
}
