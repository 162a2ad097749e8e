//! The index as a projection of the mirror (DESIGN invariants 3 and 4): a merchant's
//! replacement is seen in one step, a crash between the mirror commit and the index
//! commit is caught up from the stored change number, and a schema change or a
//! `reindex` rebuilds into a new generation swapped in while search keeps answering;
//! the storefront rule is one: the `storefront_offers` view, the index and the admin
//! counts agree on every edge case of it; and a change naming a whole merchant
//! rewrites only the documents that differ from the mirror, leaving an index equal to
//! a rebuild's.

use crate::common;
use crate::search_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use catalog_mirror::config::Settings;
use catalog_mirror::search::diff::DocumentCounts;
use catalog_mirror::search::indexer::{self, Live};
use catalog_mirror::search::params::SearchRequest;
use catalog_mirror::search::schema::SCHEMA_VERSION;
use catalog_mirror::search::source;
use catalog_mirror::search::store::{self, Found, Payload};
use catalog_mirror::search::{Generation, Indexer, IndexerSettings, Relevance};
use common::{TestApp, TestDb};
use futures::TryStreamExt;
use search_support::*;
use serde_json::json;

/// These tests' indexer polls every 100 ms (a [`TestApp::builder`] change).
fn fast_indexer(settings: &mut Settings) {
    settings.search.poll_interval_ms = 100;
}

/// The daemon on the test's database, with [`fast_indexer`].
async fn spawn_on(db: &TestDb) -> TestApp {
    TestApp::builder()
        .configure(fast_indexer)
        .spawn_on(db)
        .await
}

/// The payload of the generation `CURRENT` names, and its name (daemon stopped).
fn on_disk(dir: &Path) -> (String, Payload) {
    match store::open_current(dir) {
        Found::Ready(generation, payload) => (generation.name.clone(), payload),
        Found::Rebuild { reason, .. } => panic!("index not usable: {reason}"),
    }
}

async fn max_change(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT max(change_no) FROM change_log")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_merchants_replacement_becomes_visible_in_one_step() {
    let (db, pool) = TestDb::migrated().await;
    let offers = seed(&pool).await;
    let app = spawn_on(&db).await;
    let base = app.url("");
    wait_for_count(&app.http, &base, shown_count(&offers)).await;
    let merchant_count = offers
        .iter()
        .filter(|offer| offer.shown() && offer.merchant_id == 1003)
        .count();

    // Readers hammer merchant 1003 while its catalog is replaced five times.
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..3 {
        let (http, base, stop) = (app.http.clone(), base.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            let mut responses = 0;
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = search(
                    &http,
                    &base,
                    json!({ "filter": "merchant_id = 1003", "limit": 1000, "attributesToRetrieve": ["name"] }),
                )
                .await;
                assert_eq!(status, 200, "{body}");
                let generations: BTreeSet<String> = body["hits"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|hit| hit["name"].as_str().unwrap().split(' ').next().unwrap().to_string())
                    .map(|word| if word.starts_with("Gen") { word } else { "Gen0".into() })
                    .collect();
                assert_eq!(generations.len(), 1, "a reader saw old and new documents mixed: {generations:?}");
                assert_eq!(body["hits"].as_array().unwrap().len(), merchant_count, "documents missing mid-update");
                seen.extend(generations);
                responses += 1;
            }
            (seen, responses)
        }));
    }
    for generation in 1..=5 {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE offers SET name = 'Gen{generation} ' || regexp_replace(name, '^Gen[0-9]+ ', '') WHERE merchant_id = 1003"
        )))
        .execute(&pool)
        .await
        .unwrap();
        publish(&pool, 1003, None).await;
        let applied = common::eventually(Duration::from_secs(10), || async {
            let (_, body) = search(
                &app.http,
                &base,
                json!({ "q": format!("gen{generation}"), "limit": 0 }),
            )
            .await;
            body["estimatedTotalHits"] == json!(merchant_count)
        })
        .await;
        assert!(applied, "generation {generation} never became visible");
    }
    stop.store(true, Ordering::Relaxed);
    let mut all_seen = BTreeSet::new();
    for reader in readers {
        let (seen, responses) = reader.await.unwrap();
        assert!(responses > 5, "readers ran");
        all_seen.extend(seen);
    }
    assert!(
        all_seen.len() >= 3,
        "readers saw several generations: {all_seen:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_crash_between_the_mirror_commit_and_the_index_commit_is_caught_up_on_restart() {
    let (db, pool) = TestDb::migrated().await;
    let offers = seed(&pool).await;
    let app = spawn_on(&db).await;
    let settings = app.settings.clone();
    let dir = settings.search.index_dir.clone();
    wait_for_count(&app.http, &app.url(""), shown_count(&offers)).await;
    app.stop().await;
    let (generation, payload) = on_disk(&dir);
    assert_eq!(payload.change_no, max_change(&pool).await);

    // The mirror commits while no indexer runs: the index never commits this change.
    let mut new = special_offers()[0].clone();
    new.id = 1_001_977;
    new.name = "Axolotl Mug".into();
    write_offers(&pool, &[new]).await;
    let missed = publish(&pool, 1001, Some(vec![1_001_977])).await;
    assert_eq!(
        on_disk(&dir).1.change_no,
        missed - 1,
        "the index is one change behind"
    );

    let app = TestApp::spawn(settings).await;
    let base = app.url("");
    let caught_up = common::eventually(Duration::from_secs(10), || async {
        let (_, body) = search(&app.http, &base, json!({ "q": "axolotl" })).await;
        ids(&body) == [1_001_977]
    })
    .await;
    assert!(caught_up, "the missed change was never applied");
    app.stop().await;
    let (after, payload) = on_disk(&dir);
    assert_eq!(after, generation, "caught up in place, no rebuild");
    assert_eq!(payload.change_no, missed);
}

/// Rewrites the live generation's payload as an older build would have left it.
fn stamp_old_schema(dir: &Path) {
    let name = store::current_name(dir).unwrap();
    let index = tantivy::Index::open_in_dir(dir.join(name)).unwrap();
    let change_no = on_disk(dir).1.change_no;
    let mut writer: tantivy::IndexWriter = index.writer_with_num_threads(1, 20_000_000).unwrap();
    let mut commit = writer.prepare_commit().unwrap();
    commit.set_payload(
        &json!({ "schema_version": SCHEMA_VERSION - 1, "change_no": change_no }).to_string(),
    );
    commit.commit().unwrap();
}

#[tokio::test]
async fn a_schema_change_rebuilds_aside_and_swaps_while_search_keeps_answering() {
    let (db, pool) = TestDb::migrated().await;
    let offers = seed(&pool).await;
    let before = shown_count(&offers);
    let app = spawn_on(&db).await;
    let settings = app.settings.clone();
    let dir = settings.search.index_dir.clone();
    wait_for_count(&app.http, &app.url(""), before).await;
    app.stop().await;
    let (old_generation, _) = on_disk(&dir);
    stamp_old_schema(&dir);

    // More offers land while the daemon is down: the rebuilt index will have them.
    let extra: Vec<Offer> = (0..400)
        .map(|i| {
            let mut offer = special_offers()[4].clone();
            offer.id = 1_005_000 + i;
            offer.name = format!("Rebuilt Lantern {i}");
            offer
        })
        .collect();
    write_offers(&pool, &extra).await;
    publish(&pool, 1001, None).await;
    let after = before + extra.len();

    let app = TestApp::spawn(settings).await;
    let base = app.url("");
    let mut answers = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = search(&app.http, &base, json!({ "limit": 0 })).await;
        assert_eq!(status, 200, "{body}");
        let total = body["estimatedTotalHits"].as_u64().unwrap() as usize;
        assert!(
            total == before || total == after,
            "search answered {total}: neither the old nor the new index"
        );
        answers.insert(total);
        if total == after {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rebuild never completed"
        );
    }
    assert!(
        answers.contains(&before),
        "the old index served while the new one was built"
    );
    app.stop().await;

    let (new_generation, payload) = on_disk(&dir);
    assert!(
        new_generation > old_generation,
        "rebuilt into a new generation"
    );
    assert_eq!(payload.schema_version, SCHEMA_VERSION);
    assert_eq!(payload.change_no, max_change(&pool).await);
    assert!(
        !dir.join(&old_generation).exists(),
        "the old generation was removed after the swap"
    );
}

#[tokio::test]
async fn the_reindex_command_builds_a_generation_that_a_running_daemon_adopts() {
    let (db, pool) = TestDb::migrated().await;
    let offers = seed(&pool).await;
    let app = spawn_on(&db).await;
    let settings = app.settings.clone();
    let dir = settings.search.index_dir.clone();
    let base = app.url("");
    wait_for_count(&app.http, &base, shown_count(&offers)).await;
    let old_generation = store::current_name(&dir).unwrap();

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_catalog-mirror"))
        .arg("reindex")
        .env("CATALOG_MIRROR_DATABASE__URL", &db.url)
        .env("CATALOG_MIRROR_SEARCH__INDEX_DIR", &dir)
        .env("CATALOG_MIRROR_LOG__FILTER", "warn")
        .output()
        .expect("run catalog-mirror reindex");
    assert!(
        output.status.success(),
        "reindex failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("reindexed {} offers", shown_count(&offers))),
        "{stdout}"
    );
    let new_generation = store::current_name(&dir).unwrap();
    assert!(new_generation > old_generation);

    // The daemon adopts it: the old generation goes, and later changes land in the new one.
    let adopted = common::eventually(Duration::from_secs(10), || async {
        !dir.join(&old_generation).exists()
    })
    .await;
    assert!(adopted, "the daemon never adopted the rebuilt index");
    let mut new = special_offers()[0].clone();
    new.id = 1_001_978;
    new.name = "Capybara Kettle".into();
    write_offers(&pool, &[new]).await;
    publish(&pool, 1001, Some(vec![1_001_978])).await;
    let applied = common::eventually(Duration::from_secs(10), || async {
        let (_, body) = search(&app.http, &base, json!({ "q": "capybara" })).await;
        ids(&body) == [1_001_978]
    })
    .await;
    assert!(applied);
    wait_for_count(&app.http, &base, shown_count(&offers) + 1).await;
    app.stop().await;
    assert_eq!(on_disk(&dir).0, new_generation);
}

/// One edge of the storefront rule: how an offer (and its merchant) is written, and
/// whether a storefront may see it. The table states the rule the daemon applied before
/// the rule moved into the `storefront_offers` view (migration 0006), unchanged.
struct Edge {
    why: &'static str,
    merchant: i64,
    status: Option<&'static str>,
    publishing_status: Option<&'static str>,
    visible: Option<bool>,
    available: Option<bool>,
    removed: bool,
    shown: bool,
}

/// Connected and enabled.
const OPEN: i64 = 3101;
/// Connected, disabled.
const DISABLED: i64 = 3102;
/// Enabled, disconnected.
const DISCONNECTED: i64 = 3103;
/// Neither.
const CLOSED: i64 = 3104;
/// Offers without a merchant row (the mirror never writes these; the rule still hides them).
const UNKNOWN: i64 = 3199;

const fn edge(why: &'static str, status: Option<&'static str>, shown: bool) -> Edge {
    Edge {
        why,
        merchant: OPEN,
        status,
        publishing_status: Some("PUBLISHED"),
        visible: Some(true),
        available: Some(true),
        removed: false,
        shown,
    }
}

const fn publishing(
    why: &'static str,
    publishing_status: Option<&'static str>,
    shown: bool,
) -> Edge {
    Edge {
        publishing_status,
        ..edge(why, Some("AVAILABLE"), shown)
    }
}

const fn of(why: &'static str, merchant: i64) -> Edge {
    Edge {
        merchant,
        ..edge(why, Some("AVAILABLE"), false)
    }
}

const EDGES: &[Edge] = &[
    edge("for sale", Some("AVAILABLE"), true),
    Edge {
        available: Some(false),
        ..edge(
            "out of stock stays searchable (available is a filter)",
            Some("UNAVAILABLE"),
            true,
        )
    },
    Edge {
        publishing_status: None,
        visible: None,
        available: None,
        ..edge(
            "no status, no publishing status, no visible flag",
            None,
            true,
        )
    },
    edge("empty status", Some(""), true),
    edge("status Violet may add later", Some("SOMETHING_NEW"), true),
    edge(
        "DISABLED alone is not a hiding status",
        Some("DISABLED"),
        true,
    ),
    edge("archived", Some("ARCHIVED"), false),
    edge("archived, lower case", Some("archived"), false),
    edge("archived, mixed case", Some("Archived"), false),
    edge(
        "archived with a leading space: not trimmed",
        Some(" ARCHIVED"),
        true,
    ),
    edge(
        "archived with a trailing space: not trimmed",
        Some("archived "),
        true,
    ),
    edge("for deletion", Some("FOR_DELETION"), false),
    edge("for deletion, lower case", Some("for_deletion"), false),
    edge("disabled available", Some("DISABLED_AVAILABLE"), false),
    edge(
        "disabled unavailable, lower case",
        Some("disabled_unavailable"),
        false,
    ),
    publishing("not published", Some("NOT_PUBLISHED"), false),
    publishing("not published, lower case", Some("Not_Published"), false),
    publishing(
        "not published with a space: not trimmed",
        Some("NOT_PUBLISHED "),
        true,
    ),
    publishing("another publishing state", Some("SCHEDULED"), true),
    publishing("empty publishing status", Some(""), true),
    Edge {
        visible: Some(false),
        ..edge("Violet's visible flag false", Some("AVAILABLE"), false)
    },
    Edge {
        removed: true,
        ..edge("removed", Some("AVAILABLE"), false)
    },
    of("merchant disabled", DISABLED),
    of("merchant disconnected", DISCONNECTED),
    of("merchant disconnected and disabled", CLOSED),
    of("no merchant row", UNKNOWN),
];

#[tokio::test]
async fn the_storefront_rule_is_one_the_view_the_index_and_admin_counts_agree_edge_by_edge() {
    let (db, pool) = TestDb::migrated().await;
    for (merchant, connected, enabled) in [
        (OPEN, true, true),
        (DISABLED, true, false),
        (DISCONNECTED, false, true),
        (CLOSED, false, false),
    ] {
        sqlx::query(
            "INSERT INTO merchants (merchant_id, name, connected, enabled) VALUES ($1, $2, $3, $4)",
        )
        .bind(merchant)
        .bind(format!("Edge {merchant}"))
        .bind(connected)
        .bind(enabled)
        .execute(&pool)
        .await
        .unwrap();
    }
    let id = |i: usize| 3_000_000 + i as i64;
    for (i, e) in EDGES.iter().enumerate() {
        sqlx::query(
            r#"INSERT INTO offers (offer_id, merchant_id, name, status, publishing_status, visible, available,
                   content_hash, raw, removed_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, 'x', '{}', CASE WHEN $8 THEN now() END)"#,
        )
        .bind(id(i))
        .bind(e.merchant)
        .bind(format!("Edge offer {i}"))
        .bind(e.status)
        .bind(e.publishing_status)
        .bind(e.visible)
        .bind(e.available)
        .bind(e.removed)
        .execute(&pool)
        .await
        .unwrap();
    }
    for merchant in [OPEN, DISABLED, DISCONNECTED, CLOSED, UNKNOWN] {
        publish(&pool, merchant, None).await;
    }

    // The view states the rule, edge by edge.
    let shown = storefront_ids(&pool).await;
    let wrong: Vec<String> = EDGES
        .iter()
        .enumerate()
        .filter(|(i, e)| shown.contains(&id(*i)) != e.shown)
        .map(|(i, e)| format!("{} ({}): expected shown = {}", e.why, id(i), e.shown))
        .collect();
    assert!(
        wrong.is_empty(),
        "the view disagrees:\n{}",
        wrong.join("\n")
    );
    // The mirror's reads select through it.
    let mirror: BTreeSet<i64> = catalog_mirror::mirror::queries::storefront_offers(&pool, OPEN)
        .await
        .unwrap()
        .iter()
        .map(|o| o.offer_id)
        .collect();
    assert_eq!(mirror, shown);
    for (i, e) in EDGES.iter().enumerate() {
        assert_eq!(
            catalog_mirror::mirror::queries::is_on_storefront(&pool, id(i))
                .await
                .unwrap(),
            e.shown,
            "{}",
            e.why
        );
    }

    // The index holds exactly the view's offers.
    let app = TestApp::builder()
        .configure(fast_indexer)
        .configure(|settings| {
            settings.admin.token = catalog_mirror::config::Secret::new("edge-admin-token");
        })
        .spawn_on(&db)
        .await;
    let base = app.url("");
    wait_for_count(&app.http, &base, shown.len()).await;
    let (_, body) = search(
        &app.http,
        &base,
        json!({ "limit": 1000, "attributesToRetrieve": ["id"] }),
    )
    .await;
    assert_eq!(ids(&body).into_iter().collect::<BTreeSet<_>>(), shown);

    // Admin counts it per merchant.
    let admin_counts = || async {
        let body: serde_json::Value = app
            .http
            .get(app.admin_url("/api/merchants"))
            .bearer_auth("edge-admin-token")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["merchants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["merchant_id"].as_i64().unwrap(),
                    m["storefront_offers"].as_i64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        admin_counts().await,
        vec![
            (OPEN, shown.len() as i64),
            (DISABLED, 0),
            (DISCONNECTED, 0),
            (CLOSED, 0)
        ]
    );

    // Re-enabling a merchant shows its offers everywhere at once; disabling hides them.
    sqlx::query("UPDATE merchants SET enabled = true WHERE merchant_id = $1")
        .bind(DISABLED)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE merchants SET enabled = false WHERE merchant_id = $1")
        .bind(OPEN)
        .execute(&pool)
        .await
        .unwrap();
    publish(&pool, DISABLED, None).await;
    publish(&pool, OPEN, None).await;
    let shown = storefront_ids(&pool).await;
    let disabled_offer = id(EDGES.iter().position(|e| e.merchant == DISABLED).unwrap());
    assert_eq!(shown, BTreeSet::from([disabled_offer]));
    wait_for_count(&app.http, &base, 1).await;
    let (_, body) = search(&app.http, &base, json!({ "attributesToRetrieve": ["id"] })).await;
    assert_eq!(ids(&body), [disabled_offer]);
    assert_eq!(
        admin_counts().await,
        vec![(OPEN, 0), (DISABLED, 1), (DISCONNECTED, 0), (CLOSED, 0)]
    );
    app.stop().await;
}

/// Every live document's hit JSON by offer id, asserting one document per offer.
fn stored_documents(generation: &Generation) -> BTreeMap<i64, String> {
    let searcher = generation.reader.searcher();
    let mut all = BTreeMap::new();
    for (ordinal, segment) in searcher.segment_readers().iter().enumerate() {
        for doc in 0..segment.max_doc() {
            if segment.is_deleted(doc) {
                continue;
            }
            let stored: tantivy::TantivyDocument = searcher
                .doc(tantivy::DocAddress::new(ordinal as u32, doc))
                .unwrap();
            let text = stored
                .get_first(generation.schema.source)
                .and_then(|value| tantivy::schema::Value::as_str(&value))
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

/// Searches a generation in process, as the API would answer.
fn search_in(generation: &Generation, body: serde_json::Value) -> serde_json::Value {
    let request = SearchRequest::from_object(body.as_object().unwrap(), &[]).unwrap();
    let response = catalog_mirror::search::execute::search(
        generation,
        &Relevance::embedded(),
        &request,
        None,
        &catalog_mirror::search::execute::Bounds::default(),
    )
    .unwrap();
    let mut value = serde_json::to_value(&response).unwrap();
    value.as_object_mut().unwrap().remove("processingTimeMs");
    value
}

/// An indexer driven batch by batch over a generation rebuilt from the mirror now.
async fn indexer_over(pool: &sqlx::PgPool, dir: &Path) -> (Indexer, Live) {
    let (live, _) = indexer::rebuild(pool, dir).await.unwrap();
    let index = catalog_mirror::search::SearchIndex::new(Relevance::embedded());
    index.swap(live.generation.clone());
    let settings = IndexerSettings {
        index_dir: dir.to_path_buf(),
        poll_interval: Duration::from_millis(100),
    };
    (Indexer::new(pool.clone(), settings, index), live)
}

fn counts(added: u64, deleted: u64, unchanged: u64) -> DocumentCounts {
    DocumentCounts {
        added,
        deleted,
        unchanged,
    }
}

#[tokio::test]
async fn a_whole_merchant_change_rewrites_only_what_changed_and_equals_a_rebuild() {
    let (_db, pool) = TestDb::migrated().await;
    let offers = seed(&pool).await;
    let dir = tempfile::tempdir().unwrap();
    let (indexer, mut live) = indexer_over(&pool, dir.path()).await;
    let shown: Vec<Offer> = offers
        .iter()
        .filter(|offer| offer.merchant_id == 1002 && offer.shown())
        .cloned()
        .collect();
    let n = shown.len() as u64;

    // A whole-merchant change with nothing changed touches no document.
    publish(&pool, 1002, None).await;
    let report = indexer.apply_batch(&mut live).await.unwrap();
    assert_eq!(report.changes, 1);
    assert_eq!(report.documents, counts(0, 0, n));

    // Three offers change, one is removed, one is new.
    let mut changed: Vec<Offer> = shown[..3].to_vec();
    for offer in &mut changed {
        offer.name = format!("Quokka {}", offer.name);
    }
    let mut removed = shown[5].clone();
    removed.removed = true;
    let mut new = shown[6].clone();
    new.id = 1_002_777;
    new.name = "Wombat Lamp".into();
    write_offers(
        &pool,
        &[changed.clone(), vec![removed.clone(), new]].concat(),
    )
    .await;
    publish(&pool, 1002, None).await;
    let report = indexer.apply_batch(&mut live).await.unwrap();
    assert_eq!(
        report.documents,
        counts(4, 4, n - 4),
        "3 rewritten and 1 added; 3 replaced and 1 deleted; the rest untouched"
    );
    assert_eq!(
        live.change_no,
        max_change(&pool).await,
        "the payload moved on"
    );

    let fresh_dir = tempfile::tempdir().unwrap();
    let (fresh, _) = indexer::rebuild(&pool, fresh_dir.path()).await.unwrap();
    let documents = stored_documents(&live.generation);
    assert!(
        !documents.contains_key(&removed.id),
        "the removed offer is gone"
    );
    assert!(documents[&1_002_777].contains("Wombat Lamp"));
    assert_eq!(documents, stored_documents(&fresh.generation));
    let quokkas = search_in(&live.generation, json!({ "q": "quokka" }));
    assert_eq!(ids(&quokkas).len(), 3, "{quokkas}");
    for body in [
        json!({ "q": "quokka" }),
        json!({ "q": "wombat lamp" }),
        json!({ "q": "cotton jacket", "limit": 50 }),
        json!({ "q": "lether", "filter": "merchant_id = 1002" }),
        json!({ "filter": "merchant_id = 1002", "limit": 1000, "sort": ["min_price:desc"] }),
        json!({ "q": "blue", "facets": ["vendor", "tags", "category", "min_price"] }),
    ] {
        assert_eq!(
            search_in(&live.generation, body.clone()),
            search_in(&fresh.generation, body.clone()),
            "{body}"
        );
    }
}

#[tokio::test]
async fn hiding_and_showing_a_merchant_and_listed_changes_write_only_what_differs() {
    let (_db, pool) = TestDb::migrated().await;
    let offers = seed(&pool).await;
    let dir = tempfile::tempdir().unwrap();
    let (indexer, mut live) = indexer_over(&pool, dir.path()).await;
    let shown = |merchant: i64| {
        offers
            .iter()
            .filter(|offer| offer.merchant_id == merchant && offer.shown())
            .cloned()
            .collect::<Vec<Offer>>()
    };
    let n = shown(1003).len() as u64;

    sqlx::query("UPDATE merchants SET enabled = false WHERE merchant_id = 1003")
        .execute(&pool)
        .await
        .unwrap();
    publish(&pool, 1003, None).await;
    let report = indexer.apply_batch(&mut live).await.unwrap();
    assert_eq!(
        report.documents,
        counts(0, n, 0),
        "hidden: every document goes"
    );
    sqlx::query("UPDATE merchants SET enabled = true WHERE merchant_id = 1003")
        .execute(&pool)
        .await
        .unwrap();
    publish(&pool, 1003, None).await;
    let report = indexer.apply_batch(&mut live).await.unwrap();
    assert_eq!(
        report.documents,
        counts(n, 0, 0),
        "shown again: every document back"
    );

    // A listed change: one offer changed, one did not, one is hidden now, one is unknown.
    let mine = shown(1001);
    let mut renamed = mine[0].clone();
    renamed.name = "Pangolin Scarf".into();
    let mut hidden = mine[2].clone();
    hidden.visible = false;
    write_offers(&pool, &[renamed.clone(), hidden.clone()]).await;
    publish(
        &pool,
        1001,
        Some(vec![renamed.id, mine[1].id, hidden.id, 9_999_999]),
    )
    .await;
    let report = indexer.apply_batch(&mut live).await.unwrap();
    assert_eq!(report.documents, counts(1, 2, 1));

    let fresh_dir = tempfile::tempdir().unwrap();
    let (fresh, _) = indexer::rebuild(&pool, fresh_dir.path()).await.unwrap();
    assert_eq!(
        stored_documents(&live.generation),
        stored_documents(&fresh.generation)
    );
}

/// Whether a plan node, or any node under it, aggregates.
fn aggregates(node: &serde_json::Value) -> bool {
    node["Node Type"].as_str() == Some("Aggregate")
        || node["Plans"]
            .as_array()
            .is_some_and(|plans| plans.iter().any(aggregates))
}

/// The nested loops of a plan that run an aggregation once per outer row.
fn nested_aggregations(node: &serde_json::Value, found: &mut Vec<String>) {
    if node["Node Type"].as_str() == Some("Nested Loop")
        && node["Plans"]
            .as_array()
            .and_then(|plans| plans.get(1))
            .is_some_and(aggregates)
    {
        found.push(node.to_string());
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        nested_aggregations(child, found);
    }
}

/// The demo's third merchant: its offers are published after the tables were analyzed
/// with the other merchants' offers only, so the statistics say it has none when the
/// indexer reads it whole, at once. The read must not put its per-offer aggregations
/// inside a nested loop on that estimate (it did: minutes for 33,334 offers, each
/// offer recomputing the merchant's aggregation).
#[tokio::test]
async fn a_merchant_read_under_stale_statistics_aggregates_once() {
    let (_db, pool) = TestDb::migrated().await;
    let write = |merchant: i64, first: i64| {
        let pool = pool.clone();
        async move {
            let statements = [
                "INSERT INTO merchants (merchant_id) VALUES ($1)".to_string(),
                "INSERT INTO offers (offer_id, merchant_id, name, content_hash, raw)
                 SELECT $2 + i, $1, 'Offer ' || i, 'x', '{}' FROM generate_series(0, 4999) i"
                    .to_string(),
                "INSERT INTO skus (sku_id, offer_id, merchant_id, name, gtin, raw)
                 SELECT ($2 + i) * 10 + k, $2 + i, $1, 'Sku ' || k, lpad((($2 + i) * 10 + k)::text, 13, '0'), '{}'
                 FROM generate_series(0, 4999) i, generate_series(0, 2) k"
                    .to_string(),
                "INSERT INTO collections (collection_id, merchant_id, name, content_hash, raw)
                 VALUES ($1, $1, 'Summer', 'x', '{}')"
                    .to_string(),
                "INSERT INTO collection_offers (collection_id, offer_id, merchant_id)
                 SELECT $1, $2 + i, $1 FROM generate_series(0, 4999, 2) i"
                    .to_string(),
            ];
            for statement in statements {
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .bind(merchant)
                    .bind(first)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        }
    };
    write(1, 100_000).await;
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    write(2, 200_000).await;

    let mut tx = source::snapshot(&pool).await.unwrap();
    source::for_bulk_reads(&mut tx).await.unwrap();
    let explain = format!("EXPLAIN (FORMAT JSON) {}", source::MERCHANT_OFFERS);
    let plan: serde_json::Value = sqlx::query_scalar(sqlx::AssertSqlSafe(explain))
        .bind(2_i64)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let root = &plan[0]["Plan"];
    let mut nested = Vec::new();
    nested_aggregations(root, &mut nested);
    assert!(
        nested.is_empty(),
        "an aggregation runs once per offer:\n{}",
        serde_json::to_string_pretty(root).unwrap()
    );
    // The statistics were indeed stale: the planner still believes in a tiny merchant.
    assert!(
        root["Plan Rows"].as_f64().unwrap() < 100.0,
        "estimated rows: {}",
        root["Plan Rows"]
    );
    let rows = source::merchant_offers(&mut tx, 2)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(rows.len(), 5_000);
}
