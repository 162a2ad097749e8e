//! The sandbox catalog without HTTP: determinism, the shape of every generated
//! offer against VIOLET.md (including Violet's deliberate variations), collection
//! membership, and what `advance` changes.

use std::collections::{BTreeSet, HashSet};

use catalog_mirror::sandbox::{Catalog, ChangeMix, MerchantSpec, default_merchants};
use chrono::DateTime;
use serde_json::Value;

fn specs(offers: u64) -> Vec<MerchantSpec> {
    default_merchants(3, offers, 8)
}

fn all_json(c: &Catalog) -> Vec<u8> {
    let mut out = Vec::new();
    for m in c.merchant_ids() {
        out.extend(serde_json::to_vec(&c.merchant_json(m)).unwrap());
        out.extend(serde_json::to_vec(&c.collections(m)).unwrap());
        for id in c.offer_ids(m) {
            out.extend(serde_json::to_vec(&c.offer_json(id).unwrap()).unwrap());
        }
    }
    out
}

#[test]
fn same_seed_gives_byte_identical_json_even_after_advances() {
    let a = Catalog::new(5, &specs(500)).unwrap();
    let b = Catalog::new(5, &specs(500)).unwrap();
    assert_eq!(all_json(&a), all_json(&b));
    for m in [1001, 1003, 1001] {
        assert_eq!(a.advance(m), b.advance(m));
    }
    assert_eq!(all_json(&a), all_json(&b));
    assert_eq!(a.generation(1001), 2);
}

#[test]
fn different_seed_gives_different_offers() {
    let a = Catalog::new(5, &specs(300)).unwrap();
    let b = Catalog::new(6, &specs(300)).unwrap();
    let ids: Vec<u64> = a.offer_ids(1002).collect();
    assert_eq!(
        ids,
        b.offer_ids(1002).collect::<Vec<_>>(),
        "ids depend on the spec, not the seed"
    );
    let differing = ids
        .iter()
        .filter(|&&id| a.offer_json(id) != b.offer_json(id))
        .count();
    assert!(differing >= 295, "only {differing} of 300 offers differ");
}

#[test]
fn offer_ids_are_unique_across_merchants_and_resolve_to_their_merchant() {
    let c = Catalog::new(1, &specs(2_000)).unwrap();
    let mut seen = HashSet::new();
    for m in c.merchant_ids() {
        assert_eq!(c.offer_count(m), 2_000);
        for id in c.offer_ids(m) {
            assert!(seen.insert(id), "offer id {id} repeated");
            assert_eq!(c.offer_json(id).unwrap()["merchant_id"], m);
        }
    }
    assert_eq!(seen.len(), 6_000);
    assert_eq!(c.offer_json(999), None);
    assert_eq!(c.offer_ids(4242).count(), 0);
}

fn parse_violet_date(s: &str) -> i64 {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z")
        .unwrap_or_else(|e| panic!("date {s:?} does not parse: {e}"))
        .timestamp()
}

const STATUSES: &[&str] = &[
    "AVAILABLE",
    "UNAVAILABLE",
    "DISABLED_AVAILABLE",
    "DISABLED_UNAVAILABLE",
    "ARCHIVED",
    "FOR_DELETION",
];

#[test]
fn every_offer_has_the_documented_shape_and_violet_variations_occur() {
    let c = Catalog::new(11, &specs(2_000)).unwrap();
    let (mut qty, mut quantity, mut zulu, mut offset) = (0, 0, 0, 0);
    let (mut unknown_status, mut extra_field, mut multi_sku, mut html) = (0, 0, 0, 0);
    let known: BTreeSet<&str> = [
        "id",
        "external_id",
        "name",
        "description",
        "html_description",
        "source",
        "seller",
        "vendor",
        "merchant_id",
        "available",
        "visible",
        "min_price",
        "max_price",
        "currency",
        "status",
        "publishing_status",
        "tags",
        "source_category_name",
        "variants",
        "skus",
        "albums",
        "collections",
        "date_created",
        "date_last_modified",
        "type",
    ]
    .into();
    for id in c.offer_ids(1001) {
        let o = c.offer_json(id).unwrap();
        let obj = o.as_object().unwrap();
        for key in &known {
            assert!(obj.contains_key(*key), "offer {id} lacks {key}");
        }
        if obj.keys().any(|k| !known.contains(k.as_str())) {
            extra_field += 1;
        }
        assert_eq!(o["id"], id);
        let name = o["name"].as_str().unwrap();
        assert!(
            name.split(' ').count() >= 3,
            "name {name:?} is adjective material noun"
        );
        assert!(o["html_description"].as_str().unwrap().starts_with("<p>"));
        if o["description"].as_str().unwrap().contains('<') {
            html += 1;
        }
        let status = o["status"].as_str().unwrap();
        if !STATUSES.contains(&status) {
            unknown_status += 1;
        }
        for field in ["date_created", "date_last_modified"] {
            let d = o[field].as_str().unwrap();
            if d.ends_with('Z') {
                zulu += 1;
            } else {
                assert!(d.ends_with("+0000"), "{d}");
                offset += 1;
            }
        }
        let d = |s: &str| {
            if s.ends_with('Z') {
                s.replace('Z', "+0000")
            } else {
                s.to_string()
            }
        };
        let created = parse_violet_date(&d(o["date_created"].as_str().unwrap()));
        let modified = parse_violet_date(&d(o["date_last_modified"].as_str().unwrap()));
        assert!(
            modified >= created,
            "offer {id} modified before it was created"
        );

        let skus = o["skus"].as_array().unwrap();
        assert!(
            (1..=5).contains(&skus.len()),
            "offer {id} has {} skus",
            skus.len()
        );
        if skus.len() > 1 {
            multi_sku += 1;
        }
        let sku_ids: HashSet<u64> = skus.iter().map(|s| s["id"].as_u64().unwrap()).collect();
        assert_eq!(sku_ids.len(), skus.len());
        let prices: Vec<u64> = skus
            .iter()
            .map(|s| s["sale_price"].as_u64().unwrap())
            .collect();
        assert_eq!(o["min_price"].as_u64(), prices.iter().min().copied());
        assert_eq!(o["max_price"].as_u64(), prices.iter().max().copied());
        for s in skus {
            assert_eq!(s["offer_id"], id);
            assert_eq!(s["merchant_id"], 1001);
            assert!(s["retail_price"].as_u64().unwrap() >= s["sale_price"].as_u64().unwrap());
            let upc = s["upc"].as_str().unwrap();
            assert_eq!(upc.len(), 12);
            assert_eq!(s["ean"].as_str().unwrap(), format!("0{upc}"));
            let count = match (s.get("qty_available"), s.get("quantity_available")) {
                (Some(q), None) => {
                    qty += 1;
                    q.as_u64().unwrap()
                }
                (None, Some(q)) => {
                    quantity += 1;
                    q.as_u64().unwrap()
                }
                other => panic!("sku {} has stock fields {other:?}", s["id"]),
            };
            assert_eq!(s["in_stock"].as_bool().unwrap(), count > 0);
        }
        // Each variant dimension partitions the SKUs through values[].sku_ids.
        for v in o["variants"].as_array().unwrap() {
            let mut covered: Vec<u64> = v["values"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|val| {
                    val["sku_ids"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_u64().unwrap())
                })
                .collect();
            covered.sort_unstable();
            let mut expected: Vec<u64> = sku_ids.iter().copied().collect();
            expected.sort_unstable();
            assert_eq!(covered, expected, "variant {} of offer {id}", v["name"]);
        }
        assert_eq!(
            o["variants"].as_array().unwrap().is_empty(),
            skus.len() == 1
        );
        let media = o["albums"][0]["media"].as_array().unwrap();
        assert!(!media.is_empty());
        assert_eq!(media.iter().filter(|m| m["primary"] == true).count(), 1);
        assert!(
            media
                .iter()
                .all(|m| m["url"].as_str().unwrap().starts_with("https://"))
        );
        let available = o["available"].as_bool().unwrap();
        assert!(!available || status == "AVAILABLE");
    }
    for (what, n) in [
        ("qty_available", qty),
        ("quantity_available", quantity),
        ("...Z dates", zulu),
        ("...+0000 dates", offset),
        ("unknown status", unknown_status),
        ("unknown extra field", extra_field),
        ("several SKUs", multi_sku),
        ("HTML description", html),
    ] {
        assert!(n > 0, "no offer shows {what}");
    }
}

#[test]
fn collection_membership_agrees_both_ways() {
    let c = Catalog::new(3, &specs(600)).unwrap();
    let cols = c.collections(1002);
    assert_eq!(cols.len(), 8);
    let mut members = 0;
    for col in &cols {
        let cid = col["id"].as_u64().unwrap();
        assert_eq!(col["merchant_id"], 1002);
        assert_eq!(c.collection_json(cid).as_ref(), Some(col));
        for id in c.collection_offer_ids(cid) {
            members += 1;
            let offer = c.offer_json(id).unwrap();
            let ids: Vec<u64> = offer["collections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["id"].as_u64().unwrap())
                .collect();
            assert!(ids.contains(&cid), "offer {id} lists {ids:?}, not {cid}");
        }
    }
    let listed: usize = c
        .offer_ids(1002)
        .map(|id| {
            c.offer_json(id).unwrap()["collections"]
                .as_array()
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(members, listed);
    assert!(members > 300, "membership too sparse: {members}");
    assert!(
        c.offer_json_bare(c.offer_ids(1002).next().unwrap())
            .unwrap()
            .get("collections")
            .is_none()
    );
}

#[test]
fn advance_adds_updates_and_removes_and_the_listing_reflects_it_exactly() {
    let c = Catalog::new(9, &specs(2_000)).unwrap();
    let before_ids: Vec<u64> = c.offer_ids(1001).collect();
    let before: Vec<Value> = before_ids
        .iter()
        .map(|&id| c.offer_json(id).unwrap())
        .collect();
    let other_merchant: Vec<u64> = c.offer_ids(1002).collect();

    let cs = c.advance(1001);
    assert_eq!((cs.merchant_id, cs.generation), (1001, 1));
    assert_eq!(
        (cs.added.len(), cs.updated.len(), cs.removed.len()),
        (20, 40, 20)
    );
    assert_eq!(c.generation(1001), 1);
    assert_eq!(c.generation(1002), 0);
    assert_eq!(c.offer_ids(1002).collect::<Vec<_>>(), other_merchant);

    let mut expected: BTreeSet<u64> = before_ids.iter().copied().collect();
    for id in &cs.removed {
        assert!(expected.remove(id), "removed {id} was not there");
        assert_eq!(c.offer_json(*id), None);
        let gone = c.removed_offer_json(*id).unwrap();
        assert_eq!(gone["status"], "UNAVAILABLE");
        assert_eq!(gone["available"], false);
    }
    for id in &cs.added {
        assert!(expected.insert(*id), "added {id} already existed");
        assert!(c.offer_json(*id).is_some());
    }
    assert!(
        cs.updated
            .iter()
            .all(|id| expected.contains(id) && !cs.removed.contains(id))
    );
    assert_eq!(
        c.offer_ids(1001).collect::<Vec<_>>(),
        expected.iter().copied().collect::<Vec<_>>()
    );
    assert_eq!(c.offer_count(1001), 2_000);

    let latest_before = before
        .iter()
        .map(|o| {
            o["date_last_modified"]
                .as_str()
                .unwrap()
                .replace('Z', "+0000")
        })
        .map(|d| parse_violet_date(&d))
        .max()
        .unwrap();
    for (id, old) in before_ids.iter().zip(&before) {
        let Some(now) = c.offer_json(*id) else {
            continue;
        };
        if cs.updated.contains(id) {
            assert_ne!(&now, old, "updated offer {id} did not change");
            let modified = parse_violet_date(
                &now["date_last_modified"]
                    .as_str()
                    .unwrap()
                    .replace('Z', "+0000"),
            );
            assert!(
                modified > latest_before,
                "updated offer {id} is not newer than every old offer"
            );
        } else {
            assert_eq!(&now, old, "untouched offer {id} changed");
        }
    }
    let changed = |field: &dyn Fn(&Value) -> Value| {
        cs.updated
            .iter()
            .filter(|&&id| {
                let i = before_ids.iter().position(|x| *x == id).unwrap();
                field(&c.offer_json(id).unwrap()) != field(&before[i])
            })
            .count()
    };
    let renamed = changed(&|o| o["name"].clone());
    let repriced = changed(&|o| o["skus"][0]["retail_price"].clone());
    assert!(renamed > 30, "most updates should rename: {renamed} of 40");
    assert!(
        repriced > 20,
        "most updates should reprice: {repriced} of 40"
    );

    // A second advance never re-adds ids and never touches removed ones.
    let cs2 = c.advance(1001);
    assert_eq!(cs2.generation, 2);
    assert!(
        cs2.added
            .iter()
            .all(|id| !before_ids.contains(id) && !cs.added.contains(id))
    );
    assert!(
        cs2.removed
            .iter()
            .chain(&cs2.updated)
            .all(|id| !cs.removed.contains(id))
    );
    assert_eq!(c.offer_count(1001), c.offer_ids(1001).count() as u64);
    assert_eq!(
        c.advance(4242).added.len(),
        0,
        "unknown merchant: empty change set"
    );
}

#[test]
fn a_change_mix_sets_the_shares_and_undated_updates_keep_their_old_date() {
    let c = Catalog::new(9, &specs(2_000)).unwrap();
    let date = |id: u64| {
        c.offer_json(id).unwrap()["date_last_modified"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mix = ChangeMix {
        updated: 0.05,
        removed: 0.0,
        added: 0.002,
        undated: 0.5,
    };
    assert_eq!(ChangeMix::default(), c.change_mix());
    let before: Vec<(u64, Value, String)> = c
        .offer_ids(1001)
        .map(|id| (id, c.offer_json(id).unwrap(), date(id)))
        .collect();
    let cs = c.advance_with(1001, &mix);
    assert_eq!(
        (cs.added.len(), cs.updated.len(), cs.removed.len()),
        (4, 100, 0)
    );
    let mut undated = 0;
    for (id, old, old_date) in &before {
        let now = c.offer_json(*id).unwrap();
        if cs.updated.contains(id) {
            assert_ne!(&now, old, "updated offer {id} changed");
            undated += usize::from(date(*id) == *old_date);
        } else {
            assert_eq!(&now, old);
        }
    }
    assert_eq!(undated, 50, "half the updates kept their date");

    // What the listing's date filter sees follows the date shown, not the update: a
    // filter from just before this generation finds only the dated updates and adds.
    let newest_before = before
        .iter()
        .map(|(_, _, d)| parse_violet_date(&d.replace('Z', "+0000")))
        .max()
        .unwrap();
    let (items, last) = c.offer_page(1001, 1, 1_000, false, Some((Some(newest_before + 1), None)));
    assert!(last);
    assert_eq!(items.len(), 50 + 4);

    // Updated again with its date moved, an undated offer shows the new date.
    let again = c.advance_with(
        1001,
        &ChangeMix {
            updated: 1.0,
            removed: 0.0,
            added: 0.0,
            undated: 0.0,
        },
    );
    assert_eq!(again.updated.len(), 2_004);
    let (items, _) = c.offer_page(1001, 1, 5_000, false, Some((Some(newest_before + 1), None)));
    assert_eq!(items.len(), 2_004);

    assert!(
        c.set_change_mix(ChangeMix {
            undated: 1.5,
            ..mix
        })
        .is_err()
    );
    c.set_change_mix(mix).unwrap();
    assert_eq!(c.change_mix(), mix);
}
