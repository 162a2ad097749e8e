//! The sync state machine, history pairing, merchant events and planning rules,
//! driven through intake against a real database.

use crate::common;

use std::time::Duration;

use catalog_mirror::config::{JobSettings, SyncSettings};
use catalog_mirror::intake::{self, IntakeOutcome};
use catalog_mirror::lifecycle::{
    IncomingEvent, Planner, PlanningSettings, SyncKind, SyncState, Topic,
};
use common::TestDb;
use serde_json::{Value, json};
use sqlx::PgPool;

fn planner(sync: impl FnOnce(&mut SyncSettings)) -> Planner {
    let settings = common::settings("postgres://unused@127.0.0.1/x");
    let mut sync_settings = settings.sync.clone();
    sync(&mut sync_settings);
    let jobs = JobSettings {
        debounce_ms: 2000,
        ..settings.jobs.clone()
    };
    Planner::new(PlanningSettings::new(&jobs, &sync_settings))
}

/// Feeds events to intake in order.
struct Feed {
    pool: PgPool,
    planner: Planner,
    next: u32,
}

impl Feed {
    fn new(pool: &PgPool, planner: Planner) -> Self {
        Self {
            pool: pool.clone(),
            planner,
            next: 0,
        }
    }

    async fn send(&mut self, topic: &str, entity: Option<&str>, body: Value) -> IntakeOutcome {
        self.next += 1;
        let event = IncomingEvent {
            event_id: format!("evt-{}", self.next),
            topic_name: topic.into(),
            topic: Topic::parse(topic),
            entity_id: entity.map(str::to_string),
            webhook_id: Some("wh-1".into()),
            event_id_source: None,
            header_merchant_id: None,
            raw_body: serde_json::to_vec(&body).unwrap(),
            body: Some(body),
        };
        intake::record(&self.pool, &self.planner, &event)
            .await
            .expect("stored")
    }

    async fn sync(&mut self, topic: &str, sync_id: i64, merchant: i64, at: &str) -> IntakeOutcome {
        let body = common::webhook::sync_body(sync_id, merchant, "X", at);
        self.send(topic, Some(&sync_id.to_string()), body).await
    }
}

async fn state(pool: &PgPool, merchant: i64, kind: SyncKind) -> SyncState {
    let mut conn = pool.acquire().await.unwrap();
    SyncState::get(&mut conn, merchant, kind)
        .await
        .unwrap()
        .expect("state row")
}

async fn pending_jobs(pool: &PgPool, merchant: i64) -> Vec<(String, Value)> {
    sqlx::query_as(
        "SELECT kind, payload FROM jobs WHERE merchant_id = $1 AND state = 'pending' ORDER BY id",
    )
    .bind(merchant)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn pending_kinds(pool: &PgPool, merchant: i64) -> Vec<String> {
    pending_jobs(pool, merchant)
        .await
        .into_iter()
        .map(|(kind, _)| kind)
        .collect()
}

#[derive(Debug, sqlx::FromRow)]
struct Run {
    sync_id: Option<String>,
    outcome: String,
    duration_secs: Option<f64>,
    total_products: Option<i64>,
    has_start: bool,
}

async fn runs(pool: &PgPool, merchant: i64, kind: &str) -> Vec<Run> {
    sqlx::query_as(
        r#"SELECT sync_id, outcome, EXTRACT(EPOCH FROM ended_at - started_at)::float8 AS duration_secs,
                  total_products, started_at IS NOT NULL AS has_start
           FROM sync_runs WHERE merchant_id = $1 AND kind = $2 ORDER BY id"#,
    )
    .bind(merchant)
    .bind(kind)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn started_then_completed_records_a_run_and_schedules_one_debounced_refresh() {
    let (_db, pool) = TestDb::migrated().await;
    let mut feed = Feed::new(&pool, planner(|_| {}));
    feed.sync("PRODUCT_SYNC_STARTED", 1, 7, "2026-03-01T10:00:00+0000")
        .await;
    assert_eq!(state(&pool, 7, SyncKind::Products).await.state, "syncing");
    assert_eq!(
        pending_kinds(&pool, 7).await,
        ["stall_check"],
        "STARTED fetches nothing"
    );

    feed.sync("PRODUCT_SYNC_COMPLETED", 1, 7, "2026-03-01T10:05:30Z")
        .await;
    let after = state(&pool, 7, SyncKind::Products).await;
    assert_eq!(after.state, "completed");
    let history = runs(&pool, 7, "products").await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].outcome, "completed");
    assert_eq!(history[0].duration_secs, Some(330.0));
    assert_eq!(history[0].total_products, Some(120));
    assert_eq!(
        pending_kinds(&pool, 7).await,
        ["refresh_products"],
        "stall check cancelled, refresh pending"
    );

    let delay: f64 = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM run_at - now())::float8 FROM jobs WHERE kind = 'refresh_products'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        (1.0..=2.1).contains(&delay),
        "refresh waits for the 2 s debounce: {delay}"
    );
    let mut conn = pool.acquire().await.unwrap();
    let collections = SyncState::get(&mut conn, 7, SyncKind::Collections)
        .await
        .unwrap();
    assert!(collections.is_none(), "collections untouched (idle)");
}

#[tokio::test]
async fn a_completed_without_started_still_records_a_run_and_refreshes() {
    let (_db, pool) = TestDb::migrated().await;
    let mut feed = Feed::new(&pool, planner(|_| {}));
    feed.sync("COLLECTION_SYNC_COMPLETED", 5, 8, "2026-03-01T10:00:00Z")
        .await;
    let history = runs(&pool, 8, "collections").await;
    assert_eq!(history.len(), 1);
    assert!(!history[0].has_start);
    assert_eq!(history[0].outcome, "completed");
    assert_eq!(
        state(&pool, 8, SyncKind::Collections).await.state,
        "completed"
    );
    assert_eq!(pending_kinds(&pool, 8).await, ["refresh_collections"]);
}

#[tokio::test]
async fn a_started_arriving_after_its_own_completed_does_not_flip_the_state_back() {
    let (_db, pool) = TestDb::migrated().await;
    let mut feed = Feed::new(&pool, planner(|_| {}));
    feed.sync("PRODUCT_SYNC_COMPLETED", 3, 9, "2026-03-01T10:10:00Z")
        .await;
    feed.sync("PRODUCT_SYNC_STARTED", 3, 9, "2026-03-01T10:00:00Z")
        .await;
    assert_eq!(state(&pool, 9, SyncKind::Products).await.state, "completed");
    let history = runs(&pool, 9, "products").await;
    assert_eq!(history.len(), 1, "paired by sync id into one run");
    assert_eq!(history[0].sync_id.as_deref(), Some("3"));
    assert_eq!(history[0].duration_secs, Some(600.0));
    assert!(
        !pending_kinds(&pool, 9)
            .await
            .contains(&"stall_check".to_string())
    );
}

#[tokio::test]
async fn an_older_event_never_overwrites_newer_state() {
    let (_db, pool) = TestDb::migrated().await;
    let mut feed = Feed::new(&pool, planner(|_| {}));
    feed.sync("PRODUCT_SYNC_COMPLETED", 20, 10, "2026-03-02T10:00:00Z")
        .await;
    // A failure of an earlier sync delivered late.
    feed.sync("PRODUCT_SYNC_FAILED", 19, 10, "2026-03-01T10:00:00Z")
        .await;
    let now = state(&pool, 10, SyncKind::Products).await;
    assert_eq!(now.state, "completed");
    assert_eq!(now.consecutive_failures, 0);
    assert!(
        !pending_kinds(&pool, 10)
            .await
            .contains(&"sync_retry".to_string())
    );
    let outcomes: Vec<String> = runs(&pool, 10, "products")
        .await
        .into_iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(outcomes, ["completed", "failed"], "both runs are history");
}

#[tokio::test]
async fn an_end_without_sync_id_pairs_with_the_latest_open_run() {
    let (_db, pool) = TestDb::migrated().await;
    let mut feed = Feed::new(&pool, planner(|_| {}));
    let body = |status: &str, at: &str| json!({"merchant_id": 11, "status": status, "date_last_synced": at});
    feed.send(
        "PRODUCT_SYNC_STARTED",
        None,
        body("IN_PROGRESS", "2026-03-01T10:00:00Z"),
    )
    .await;
    feed.send(
        "PRODUCT_SYNC_COMPLETED",
        None,
        body("COMPLETED", "2026-03-01T10:01:00Z"),
    )
    .await;
    let history = runs(&pool, 11, "products").await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].duration_secs, Some(60.0));
}

#[tokio::test]
async fn offer_events_during_a_sync_are_held_and_outside_batch_into_one_job() {
    let (_db, pool) = TestDb::migrated().await;
    let mut feed = Feed::new(&pool, planner(|_| {}));
    feed.sync("PRODUCT_SYNC_STARTED", 1, 12, "2026-03-01T10:00:00Z")
        .await;
    for offer in 0..5 {
        let outcome = feed
            .send("OFFER_ADDED", None, json!({"id": offer, "merchant_id": 12}))
            .await;
        assert_eq!(
            outcome,
            IntakeOutcome::Stored(catalog_mirror::lifecycle::EventStatus::Pending)
        );
    }
    assert_eq!(
        pending_kinds(&pool, 12).await,
        ["stall_check"],
        "held: the refresh after COMPLETED covers them"
    );

    feed.sync("PRODUCT_SYNC_COMPLETED", 1, 12, "2026-03-01T10:02:00Z")
        .await;
    for offer in 0..5 {
        feed.send(
            "OFFER_UPDATED",
            None,
            json!({"id": offer, "merchant_id": 12}),
        )
        .await;
    }
    feed.send(
        "COLLECTION_OFFERS_UPDATED",
        None,
        json!({"id": 3, "merchant_id": 12}),
    )
    .await;
    assert_eq!(
        pending_kinds(&pool, 12).await,
        ["refresh_products", "incremental"],
        "one batched job"
    );
    let pending_events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_events WHERE merchant_id = 12 AND status = 'pending'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(pending_events, 11);
}

#[tokio::test]
async fn failed_schedules_retries_then_needs_attention_and_a_new_sync_cancels_retries() {
    let (_db, pool) = TestDb::migrated().await;
    let mut feed = Feed::new(
        &pool,
        planner(|sync| {
            sync.failed_retry_base_secs = 60;
            sync.failed_retry_jitter = 0.0;
            sync.failed_retry_max_attempts = 3;
        }),
    );
    feed.sync("PRODUCT_SYNC_STARTED", 1, 13, "2026-03-01T10:00:00Z")
        .await;
    feed.sync("PRODUCT_SYNC_FAILED", 1, 13, "2026-03-01T10:01:00Z")
        .await;
    let failed = state(&pool, 13, SyncKind::Products).await;
    assert_eq!(
        (failed.state.as_str(), failed.consecutive_failures),
        ("failed", 1)
    );
    let (retry_in, max_attempts): (f64, i32) = sqlx::query_as(
        "SELECT EXTRACT(EPOCH FROM run_at - now())::float8, max_attempts FROM jobs WHERE kind = 'sync_retry' AND state = 'pending'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        (55.0..=60.5).contains(&retry_in),
        "first retry after the 60 s base: {retry_in}"
    );
    assert_eq!(max_attempts, 3);

    // Violet's own retry starts: our pending retry is superseded.
    feed.sync("PRODUCT_SYNC_STARTED", 2, 13, "2026-03-01T11:00:00Z")
        .await;
    assert!(
        !pending_kinds(&pool, 13)
            .await
            .contains(&"sync_retry".to_string())
    );
    let cancelled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE kind = 'sync_retry' AND state = 'cancelled'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(cancelled, 1);

    feed.sync("PRODUCT_SYNC_FAILED", 2, 13, "2026-03-01T11:01:00Z")
        .await;
    feed.sync("PRODUCT_SYNC_STARTED", 3, 13, "2026-03-01T12:00:00Z")
        .await;
    feed.sync("PRODUCT_SYNC_FAILED", 3, 13, "2026-03-01T12:01:00Z")
        .await;
    let exhausted = state(&pool, 13, SyncKind::Products).await;
    assert_eq!(exhausted.consecutive_failures, 3);
    assert_eq!(
        exhausted.state, "needs_attention",
        "third consecutive failure"
    );

    feed.sync("PRODUCT_SYNC_STARTED", 4, 13, "2026-03-01T13:00:00Z")
        .await;
    feed.sync("PRODUCT_SYNC_COMPLETED", 4, 13, "2026-03-01T13:05:00Z")
        .await;
    let recovered = state(&pool, 13, SyncKind::Products).await;
    assert_eq!(
        (recovered.state.as_str(), recovered.consecutive_failures),
        ("completed", 0)
    );
}

#[tokio::test]
async fn a_sync_with_no_end_is_marked_stalled_and_a_safe_refresh_is_scheduled() {
    let (db, pool) = TestDb::migrated().await;
    let mut feed = Feed::new(&pool, planner(|sync| sync.stall_timeout_secs = 1));
    // The STARTED happened just now; the stall check fires a second later.
    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    feed.sync("PRODUCT_SYNC_STARTED", 1, 14, &now).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;

    let settings = common::settings(&db.url);
    run_stall_check(&pool, &settings).await;

    assert_eq!(state(&pool, 14, SyncKind::Products).await.state, "stalled");
    assert_eq!(runs(&pool, 14, "products").await[0].outcome, "stalled");
    let jobs = pending_jobs(&pool, 14).await;
    let refresh = jobs
        .iter()
        .find(|(kind, _)| kind == "refresh_products")
        .expect("refresh scheduled");
    assert_eq!(
        refresh.1["mode"], "safe",
        "a stalled sync never removes offers"
    );
    let due: Option<String> =
        sqlx::query_scalar("SELECT full_refresh_due FROM merchants WHERE merchant_id = 14")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        due.as_deref(),
        Some("a products sync stalled"),
        "the next products refresh after a stall is a full pass"
    );

    // A late COMPLETED still closes the sync normally.
    feed.sync(
        "PRODUCT_SYNC_COMPLETED",
        1,
        14,
        &chrono::Utc::now().to_rfc3339(),
    )
    .await;
    assert_eq!(
        state(&pool, 14, SyncKind::Products).await.state,
        "completed"
    );
}

/// Runs the one due job, the stall check, with the application's runner.
async fn run_stall_check(pool: &PgPool, settings: &catalog_mirror::config::Settings) {
    use catalog_mirror::jobs::JobRunner;
    let runner = catalog_mirror::runner::AppRunner::new(pool.clone(), settings);
    let queue = catalog_mirror::jobs::Queue::new(pool.clone());
    let job = queue
        .claim("test", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a due job");
    assert_eq!(
        job.kind, "stall_check",
        "the stall check is the only due job"
    );
    let lease = job.lease(Duration::from_secs(30));
    runner
        .run(job.clone(), lease, Default::default())
        .await
        .expect("stall check runs");
    queue.complete(&lease).await.unwrap();
}

#[tokio::test]
async fn merchant_events_drive_visibility_health_and_pending_work() {
    let (_db, pool) = TestDb::migrated().await;
    let mut feed = Feed::new(&pool, planner(|_| {}));
    let merchant = |at: &str| json!({"id": 15, "merchant_name": "Acme Goods", "platform": "SHOPIFY", "store_url": "https://acme.example", "date_last_modified": at});
    let visible = |pool: PgPool| async move {
        sqlx::query_as::<_, (bool, bool, bool, Option<String>, Option<String>)>(
            "SELECT visible, connected, resync_expected, health, name FROM merchants WHERE merchant_id = 15",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    feed.send("MERCHANT_CONNECTED", None, merchant("2026-03-01T10:00:00Z"))
        .await;
    let (shown, _, _, _, name) = visible(pool.clone()).await;
    assert!(shown);
    assert_eq!(name.as_deref(), Some("Acme Goods"));

    feed.send("MERCHANT_COMPLETE", None, merchant("2026-03-01T10:01:00Z"))
        .await;
    assert_eq!(visible(pool.clone()).await.3.as_deref(), Some("complete"));
    feed.send(
        "MERCHANT_NEEDS_ATTENTION",
        None,
        merchant("2026-03-01T10:02:00Z"),
    )
    .await;
    assert_eq!(
        visible(pool.clone()).await.3.as_deref(),
        Some("needs_attention")
    );

    feed.send("MERCHANT_DISABLED", None, merchant("2026-03-01T11:00:00Z"))
        .await;
    assert!(!visible(pool.clone()).await.0, "disabled hides");
    // A late ENABLED from before the DISABLED changes nothing.
    feed.send("MERCHANT_ENABLED", None, merchant("2026-03-01T10:30:00Z"))
        .await;
    assert!(
        !visible(pool.clone()).await.0,
        "an older event never overwrites newer state"
    );
    feed.send("MERCHANT_ENABLED", None, merchant("2026-03-01T12:00:00Z"))
        .await;
    let (shown, _, resync, _, _) = visible(pool.clone()).await;
    assert!(shown && resync, "enabled shows again and expects a resync");
    feed.sync("PRODUCT_SYNC_COMPLETED", 1, 15, "2026-03-01T12:30:00Z")
        .await;
    assert!(!visible(pool.clone()).await.2, "the resync arrived");

    feed.send("OFFER_UPDATED", None, json!({"id": 1, "merchant_id": 15}))
        .await;
    assert!(!pending_kinds(&pool, 15).await.is_empty());
    feed.send(
        "MERCHANT_DISCONNECTED",
        None,
        merchant("2026-03-01T13:00:00Z"),
    )
    .await;
    let (shown, connected, ..) = visible(pool.clone()).await;
    assert!(!shown && !connected, "disconnected hides");
    assert!(
        pending_kinds(&pool, 15).await.is_empty(),
        "pending jobs cancelled"
    );
}

#[tokio::test]
async fn products_and_collections_are_independent() {
    let (_db, pool) = TestDb::migrated().await;
    let mut feed = Feed::new(&pool, planner(|_| {}));
    feed.sync("PRODUCT_SYNC_STARTED", 1, 16, "2026-03-01T10:00:00Z")
        .await;
    feed.sync("COLLECTION_SYNC_STARTED", 2, 16, "2026-03-01T10:00:00Z")
        .await;
    feed.sync("COLLECTION_SYNC_FAILED", 2, 16, "2026-03-01T10:01:00Z")
        .await;
    feed.sync("PRODUCT_SYNC_COMPLETED", 1, 16, "2026-03-01T10:02:00Z")
        .await;
    assert_eq!(
        state(&pool, 16, SyncKind::Products).await.state,
        "completed"
    );
    assert_eq!(
        state(&pool, 16, SyncKind::Collections).await.state,
        "failed"
    );
}
