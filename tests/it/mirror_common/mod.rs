//! Support for the mirror tests: a real PostgreSQL database, the real sandbox, the
//! application's job runner driven through the real queue, and an exact comparison of
//! the mirror with the sandbox's catalog.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use catalog_mirror::config::Settings;
use catalog_mirror::jobs::{JobRunner, NewJob, OnConflict, Queue, WorkerPool};
use catalog_mirror::lifecycle::{IncomingEvent, Planner, PlanningSettings, Topic};
use catalog_mirror::mirror::{content_hash, queries};
use catalog_mirror::runner::AppRunner;
use catalog_mirror::sandbox::{Catalog, MerchantSpec, Sandbox, SandboxConfig, WebhookEvent};
use catalog_mirror::work::{JobKind, RefreshMode};
use serde_json::Value;
use sqlx::PgPool;

use crate::common::{self, TestDb};

/// A sandbox merchant.
pub fn merchant(id: u64, offers: u64, collections: u32) -> MerchantSpec {
    MerchantSpec {
        id,
        name: format!("Merchant {id}"),
        offers,
        collections,
    }
}

pub async fn sandbox(merchants: Vec<MerchantSpec>) -> Sandbox {
    Sandbox::start(
        SandboxConfig {
            seed: 11,
            merchants,
            ..Default::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("sandbox starts")
}

/// Test settings pointed at `db` and `sandbox`, as [`quick_refreshes`] makes them.
pub fn settings(db: &TestDb, sandbox: &Sandbox) -> Settings {
    let mut settings = common::settings(&db.url);
    settings.violet.base_url = sandbox.base_url();
    quick_refreshes(&mut settings);
    settings
}

/// No client rate limit, quick retries, no debounce (jobs are due at once), quick job
/// backoff (a [`TestApp::builder`](common::TestApp::builder) change).
pub fn quick_refreshes(settings: &mut Settings) {
    let violet = &mut settings.violet;
    violet.max_retries = 2;
    violet.retry_base_ms = 5;
    violet.retry_max_ms = 20;
    violet.request_timeout_ms = 5_000;
    violet.rate_limit_per_sec = 100_000;
    violet.merchant_rate_limit_per_sec = 100_000;
    violet.max_concurrency = 64;
    violet.merchant_max_concurrency = 16;
    settings.jobs.debounce_ms = 0;
    settings.jobs.retry_base_ms = 300;
    settings.jobs.retry_max_ms = 300;
    settings.refresh.batch_size = 500;
}

/// A database, a sandbox, and the application's runner on the real queue.
pub struct Harness {
    /// Kept so the database lives (and is dropped) with the harness.
    pub _db: TestDb,
    pub pool: PgPool,
    pub sandbox: Sandbox,
    pub settings: Settings,
    pub runner: Arc<AppRunner>,
    pub workers: Arc<WorkerPool>,
    pub planner: Planner,
}

impl Harness {
    pub async fn start(merchants: Vec<MerchantSpec>) -> Harness {
        Self::start_with(merchants, |_| {}).await
    }

    pub async fn start_with(
        merchants: Vec<MerchantSpec>,
        configure: impl FnOnce(&mut Settings),
    ) -> Harness {
        let (db, pool) = TestDb::migrated().await;
        let sandbox = sandbox(merchants).await;
        let mut settings = settings(&db, &sandbox);
        configure(&mut settings);
        let runner = AppRunner::new(pool.clone(), &settings);
        let workers = Arc::new(WorkerPool::new(
            Queue::new(pool.clone()),
            runner.clone() as Arc<dyn JobRunner>,
            settings.jobs.clone(),
        ));
        let planner = Planner::new(PlanningSettings::new(&settings.jobs, &settings.sync));
        Harness {
            _db: db,
            pool,
            sandbox,
            settings,
            runner,
            workers,
            planner,
        }
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.sandbox.catalog()
    }

    pub async fn enqueue(&self, kind: JobKind) -> i64 {
        let mut conn = self.pool.acquire().await.unwrap();
        Queue::enqueue(
            &mut conn,
            &NewJob {
                kind,
                delay: Duration::ZERO,
                max_attempts: self.settings.jobs.max_attempts,
                on_conflict: OnConflict::KeepEarlier,
            },
        )
        .await
        .unwrap()
    }

    /// Enqueues a full products refresh and a full collections refresh of `merchant`,
    /// as an onboarding does.
    pub async fn enqueue_full_refreshes(&self, merchant: i64) {
        for kind in [
            JobKind::RefreshProducts {
                merchant_id: merchant,
                mode: RefreshMode::Full,
            },
            JobKind::RefreshCollections {
                merchant_id: merchant,
                mode: RefreshMode::Full,
            },
        ] {
            self.enqueue(kind).await;
        }
    }

    /// Runs every due job through the worker pool until none is due.
    pub async fn run_jobs(&self) -> usize {
        self.workers.run_until_empty().await.expect("jobs run")
    }

    /// Stores a webhook event through intake (the same transaction intake uses).
    pub async fn deliver(&self, event: &IncomingEvent) {
        catalog_mirror::intake::record(&self.pool, &self.planner, event)
            .await
            .expect("event stored");
    }

    /// `(state, attempts, last_error)` of a job.
    pub async fn job(&self, id: i64) -> (String, i32, Option<String>) {
        sqlx::query_as("SELECT state, attempts, last_error FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

/// An event as intake would build it from a delivery.
pub fn incoming(
    event_id: &str,
    topic: &str,
    merchant_id: i64,
    entity_id: Option<String>,
    body: Value,
) -> IncomingEvent {
    IncomingEvent {
        event_id: event_id.to_string(),
        topic_name: topic.to_string(),
        topic: Topic::parse(topic),
        entity_id,
        webhook_id: Some("1".into()),
        event_id_source: None,
        header_merchant_id: Some(merchant_id),
        raw_body: serde_json::to_vec(&body).unwrap(),
        body: Some(body),
    }
}

/// A sandbox scenario event, as intake would receive it.
pub fn from_sandbox(event: &WebhookEvent) -> IncomingEvent {
    IncomingEvent {
        event_id: event.event_id.clone(),
        topic_name: event.topic.clone(),
        topic: Topic::parse(&event.topic),
        entity_id: Some(event.entity_id.clone()),
        webhook_id: Some(event.webhook_id.clone()),
        event_id_source: event.source_event_id.clone(),
        header_merchant_id: event.merchant_id.map(|m| m as i64),
        raw_body: event.body_bytes(),
        body: Some(event.body.clone()),
    }
}

/// Asserts two id sets are equal, naming a few differences (not thousands of ids).
pub fn assert_same_ids(actual: &BTreeSet<i64>, expected: &BTreeSet<i64>, what: &str) {
    if actual != expected {
        let extra: Vec<&i64> = actual.difference(expected).take(10).collect();
        let missing: Vec<&i64> = expected.difference(actual).take(10).collect();
        panic!(
            "{what}: {} ids, expected {}; unexpected {extra:?}..., missing {missing:?}...",
            actual.len(),
            expected.len()
        );
    }
}

/// Everything the tests compare about a merchant's live rows (for before/after).
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub offers: Vec<(i64, String, Option<chrono::DateTime<chrono::Utc>>, i64)>,
    pub skus: Vec<(i64, i64, Value)>,
    pub members: Vec<(i64, i64)>,
    pub merchant: (i64, i64),
    pub changes: i64,
}

pub async fn snapshot(pool: &PgPool, merchant_id: i64) -> Snapshot {
    Snapshot {
        offers: sqlx::query_as(
            "SELECT offer_id, content_hash, removed_at, catalog_version FROM offers WHERE merchant_id = $1 ORDER BY offer_id",
        )
        .bind(merchant_id)
        .fetch_all(pool)
        .await
        .unwrap(),
        skus: sqlx::query_as("SELECT sku_id, offer_id, raw FROM skus WHERE merchant_id = $1 ORDER BY sku_id")
            .bind(merchant_id)
            .fetch_all(pool)
            .await
            .unwrap(),
        members: sqlx::query_as(
            "SELECT collection_id, offer_id FROM collection_offers WHERE merchant_id = $1 ORDER BY 1, 2",
        )
        .bind(merchant_id)
        .fetch_all(pool)
        .await
        .unwrap(),
        merchant: sqlx::query_as("SELECT catalog_version, offer_count FROM merchants WHERE merchant_id = $1")
            .bind(merchant_id)
            .fetch_one(pool)
            .await
            .unwrap(),
        changes: sqlx::query_scalar("SELECT count(*) FROM change_log WHERE merchant_id = $1")
            .bind(merchant_id)
            .fetch_one(pool)
            .await
            .unwrap(),
    }
}

pub async fn staged_rows(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM staged_offers) + (SELECT count(*) FROM staged_skus)
              + (SELECT count(*) FROM staged_collections) + (SELECT count(*) FROM staged_collection_offers)",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

fn int(value: &Value, key: &str) -> Option<i64> {
    value.get(key).and_then(Value::as_i64)
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// Asserts the mirror's offers and SKUs of `merchant_id` equal the sandbox's catalog:
/// the same live offer ids, each offer's JSON and typed columns, each SKU, and every
/// offer the catalog no longer has marked removed (never deleted). Returns how many
/// live offers were compared.
pub async fn assert_offers_match(pool: &PgPool, catalog: &Catalog, merchant_id: i64) -> usize {
    let expected: Vec<i64> = catalog
        .offer_ids(merchant_id as u64)
        .map(|id| id as i64)
        .collect();
    let rows = queries::merchant_offers(pool, merchant_id).await.unwrap();
    let live: Vec<i64> = rows
        .iter()
        .filter(|o| o.removed_at.is_none())
        .map(|o| o.offer_id)
        .collect();
    assert_eq!(live.len(), expected.len(), "live offer count");
    assert_eq!(live, expected, "live offer ids");

    let mut skus: BTreeMap<i64, Vec<queries::MirrorSku>> = BTreeMap::new();
    for sku in queries::merchant_skus(pool, merchant_id).await.unwrap() {
        skus.entry(sku.offer_id).or_default().push(sku);
    }
    for row in &rows {
        let Some(json) = catalog.offer_json(row.offer_id as u64) else {
            assert!(
                row.removed_at.is_some(),
                "offer {} is gone from the catalog but not removed",
                row.offer_id
            );
            continue;
        };
        assert!(
            row.removed_at.is_none(),
            "offer {} is in the catalog but marked removed",
            row.offer_id
        );
        assert_eq!(row.raw, json, "offer {} JSON", row.offer_id);
        assert_eq!(
            row.content_hash,
            content_hash(&serde_json::to_string(&json).unwrap()),
            "offer {} hash",
            row.offer_id
        );
        assert_eq!(
            Some(row.name.as_str()),
            text(&json, "name"),
            "offer {} name",
            row.offer_id
        );
        assert_eq!(
            row.min_price,
            int(&json, "min_price"),
            "offer {} min_price",
            row.offer_id
        );
        assert_eq!(
            row.max_price,
            int(&json, "max_price"),
            "offer {} max_price",
            row.offer_id
        );
        assert_eq!(
            row.status.as_deref(),
            text(&json, "status"),
            "offer {} status",
            row.offer_id
        );
        assert_eq!(
            row.vendor.as_deref(),
            text(&json, "vendor"),
            "offer {} vendor",
            row.offer_id
        );
        assert_eq!(
            row.visible,
            json["visible"].as_bool(),
            "offer {} visible",
            row.offer_id
        );
        let tags: Vec<&str> = json["tags"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(row.tags, tags, "offer {} tags", row.offer_id);
        let modified =
            catalog_mirror::violet::dates::parse(text(&json, "date_last_modified").unwrap())
                .unwrap();
        assert_eq!(
            row.date_last_modified,
            Some(modified),
            "offer {} date_last_modified",
            row.offer_id
        );

        let expected_skus = json["skus"].as_array().unwrap();
        let mirrored = skus.remove(&row.offer_id).unwrap_or_default();
        assert_eq!(
            mirrored.len(),
            expected_skus.len(),
            "offer {} SKU count",
            row.offer_id
        );
        let mut expected_skus: Vec<&Value> = expected_skus.iter().collect();
        expected_skus.sort_by_key(|s| int(s, "id"));
        for (sku, json) in mirrored.iter().zip(expected_skus) {
            assert_eq!(
                Some(sku.sku_id),
                int(json, "id"),
                "offer {} SKU id",
                row.offer_id
            );
            assert_eq!(&sku.raw, json, "SKU {} JSON", sku.sku_id);
            assert_eq!(sku.merchant_id, merchant_id);
            assert_eq!(
                sku.sale_price,
                int(json, "sale_price"),
                "SKU {} sale_price",
                sku.sku_id
            );
            assert_eq!(
                sku.retail_price,
                int(json, "retail_price"),
                "SKU {} retail_price",
                sku.sku_id
            );
            assert_eq!(
                sku.in_stock,
                json["in_stock"].as_bool(),
                "SKU {} in_stock",
                sku.sku_id
            );
            let quantity = int(json, "qty_available").or_else(|| int(json, "quantity_available"));
            assert_eq!(
                sku.quantity, quantity,
                "SKU {} quantity (either spelling)",
                sku.sku_id
            );
            assert_eq!(
                sku.upc.as_deref(),
                text(json, "upc"),
                "SKU {} upc",
                sku.sku_id
            );
        }
    }
    // No SKU points at a missing offer (the schema leaves this to the publisher).
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM skus k WHERE NOT EXISTS (SELECT 1 FROM offers o WHERE o.offer_id = k.offer_id)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(orphans, 0, "SKUs without their offer");
    // SKUs of removed offers stay with them; no SKU may hang off an offer not listed.
    for (offer_id, left) in &skus {
        let removed = rows
            .iter()
            .any(|o| o.offer_id == *offer_id && o.removed_at.is_some());
        assert!(
            removed,
            "{} SKUs of offer {offer_id}, which the mirror does not hold",
            left.len()
        );
    }
    expected.len()
}

/// Asserts the mirror's collections and membership of `merchant_id` equal the
/// sandbox's, membership by membership. Returns how many memberships were compared.
pub async fn assert_collections_match(pool: &PgPool, catalog: &Catalog, merchant_id: i64) -> usize {
    let collection_ids = catalog.collection_ids(merchant_id as u64);
    let rows: Vec<(i64, Value, Option<chrono::DateTime<chrono::Utc>>)> = sqlx::query_as(
        "SELECT collection_id, raw, removed_at FROM collections WHERE merchant_id = $1 ORDER BY collection_id",
    )
    .bind(merchant_id)
    .fetch_all(pool)
    .await
    .unwrap();
    let live: Vec<i64> = rows.iter().filter(|r| r.2.is_none()).map(|r| r.0).collect();
    let expected: Vec<i64> = collection_ids.iter().map(|&c| c as i64).collect();
    assert_eq!(live, expected, "live collection ids");
    let mut compared = 0;
    for (id, raw, _) in rows.iter().filter(|r| r.2.is_none()) {
        assert_eq!(
            Some(raw),
            catalog.collection_json(*id as u64).as_ref(),
            "collection {id} JSON"
        );
        let expected: Vec<i64> = catalog
            .collection_offer_ids(*id as u64)
            .into_iter()
            .map(|o| o as i64)
            .collect();
        let mirrored = queries::collection_offer_ids(pool, *id).await.unwrap();
        assert_eq!(mirrored, expected, "members of collection {id}");
        compared += expected.len();
    }
    let total: i64 =
        sqlx::query_scalar("SELECT count(*) FROM collection_offers WHERE merchant_id = $1")
            .bind(merchant_id)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(
        total as usize, compared,
        "no membership beyond the catalog's"
    );
    compared
}

/// The last change-log row of a merchant: `(reason, offer_ids, upserted, removed, catalog_version)`.
pub async fn last_change(
    pool: &PgPool,
    merchant_id: i64,
) -> Option<(String, Option<Vec<i64>>, i32, i32, i64)> {
    sqlx::query_as(
        "SELECT reason, offer_ids, upserted, removed, catalog_version FROM change_log
         WHERE merchant_id = $1 ORDER BY change_no DESC LIMIT 1",
    )
    .bind(merchant_id)
    .fetch_optional(pool)
    .await
    .unwrap()
}
