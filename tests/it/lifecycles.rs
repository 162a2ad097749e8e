//! Violet's lifecycles (onboarding, scheduled sync, failed then recovered, disabled then
//! re-enabled), played by the sandbox's webhook emitter against a running daemon with
//! duplicate and out-of-order deliveries, leave the right states and history.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use catalog_mirror::sandbox::scenarios::{Scenario, ScenarioOptions};
use catalog_mirror::sandbox::webhooks::{DeliveryFaults, Emitter};
use catalog_mirror::sandbox::{MerchantSpec, Sandbox, SandboxConfig};
use common::{TestApp, TestDb};
use sqlx::PgPool;

const MERCHANT: u64 = 2001;

async fn setup() -> (TestDb, Sandbox, TestApp) {
    let sandbox = Sandbox::start(
        SandboxConfig {
            seed: 11,
            merchants: vec![MerchantSpec {
                id: MERCHANT,
                name: "Lifecycle Goods".into(),
                offers: 60,
                collections: 3,
            }],
            ..Default::default()
        },
        "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
    )
    .await
    .unwrap();
    // These tests look at tracking and planning; refresh jobs wait.
    let (db, app) = TestApp::builder()
        .sandbox(&sandbox)
        .configure(|settings| settings.jobs.debounce_ms = 60_000)
        .spawn()
        .await;
    (db, sandbox, app)
}

fn emitter(app: &TestApp, seed: u64) -> Emitter {
    Emitter::new(app.url("/webhooks/violet"), common::webhook::SECRET).with_faults(DeliveryFaults {
        duplicate_rate: 0.3,
        out_of_order: true,
        redeliver_on_failure: 3,
        retry_backoff: Duration::from_millis(20),
        seed,
    })
}

async fn play(sandbox: &Sandbox, app: &TestApp, scenario: Scenario, seed: u64) -> usize {
    let events = scenario
        .events(
            &sandbox.catalog(),
            MERCHANT,
            &ScenarioOptions {
                seed,
                max_offer_events: None,
            },
        )
        .unwrap();
    let report = emitter(app, seed).play(&events).await;
    assert!(
        report.failed.is_empty(),
        "every event acknowledged: {:?}",
        report.failed
    );
    assert!(
        report.duplicates_sent > 0,
        "the run included duplicate deliveries"
    );
    events.len()
}

async fn state(pool: &PgPool, kind: &str) -> (String, i32) {
    sqlx::query_as(
        "SELECT state, consecutive_failures FROM sync_state WHERE merchant_id = $1 AND kind = $2",
    )
    .bind(MERCHANT as i64)
    .bind(kind)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn outcomes(pool: &PgPool, kind: &str) -> Vec<(String, bool)> {
    sqlx::query_as(
        "SELECT outcome, started_at IS NOT NULL AND ended_at IS NOT NULL FROM sync_runs WHERE merchant_id = $1 AND kind = $2 ORDER BY COALESCE(started_at, ended_at)",
    )
    .bind(MERCHANT as i64)
    .bind(kind)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(MERCHANT as i64)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_four_lifecycles_with_duplicates_and_disorder() {
    let (_db, sandbox, app) = setup().await;
    let pool = app.pool.clone();

    // Onboarding: connected, complete, one paired run per kind, offer events held.
    let onboarding = play(&sandbox, &app, Scenario::Onboarding, 1).await;
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM webhook_events WHERE merchant_id = $1"
        )
        .await,
        onboarding as i64
    );
    let (connected, visible, health): (bool, bool, Option<String>) =
        sqlx::query_as("SELECT connected, visible, health FROM merchants WHERE merchant_id = $1")
            .bind(MERCHANT as i64)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(connected && visible);
    assert_eq!(health.as_deref(), Some("complete"));
    assert_eq!(state(&pool, "products").await.0, "completed");
    assert_eq!(state(&pool, "collections").await.0, "completed");
    assert_eq!(
        outcomes(&pool, "products").await,
        [("completed".to_string(), true)]
    );
    assert_eq!(
        outcomes(&pool, "collections").await,
        [("completed".to_string(), true)]
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM jobs WHERE merchant_id = $1 AND state = 'pending' AND kind = 'refresh_products'").await,
        1,
        "one batched refresh, however many offer events"
    );

    // A scheduled sync with catalog changes: a second completed run.
    let scheduled = play(&sandbox, &app, Scenario::ScheduledSync, 2).await;
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM webhook_events WHERE merchant_id = $1"
        )
        .await,
        (onboarding + scheduled) as i64,
        "each event stored once despite duplicates"
    );
    assert_eq!(state(&pool, "products").await.0, "completed");
    assert_eq!(outcomes(&pool, "products").await.len(), 2);

    // Failed then recovered: the failure is history, the state is completed, retries gone.
    play(&sandbox, &app, Scenario::FailedThenRecovered, 3).await;
    assert_eq!(state(&pool, "products").await, ("completed".to_string(), 0));
    let runs = outcomes(&pool, "products").await;
    let names: Vec<&str> = runs.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(names, ["completed", "completed", "failed", "completed"]);
    assert!(
        runs.iter().all(|(_, paired)| *paired),
        "every run has its start and end: {runs:?}"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM jobs WHERE merchant_id = $1 AND state = 'pending' AND kind = 'sync_retry'").await,
        0,
        "the recovery superseded the retry"
    );

    // Disabled then re-enabled: visible again, the expected resync arrived.
    play(&sandbox, &app, Scenario::DisabledThenReenabled, 4).await;
    let (visible, enabled, resync): (bool, bool, bool) = sqlx::query_as(
        "SELECT visible, enabled, resync_expected FROM merchants WHERE merchant_id = $1",
    )
    .bind(MERCHANT as i64)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(visible && enabled && !resync);
    assert_eq!(state(&pool, "products").await.0, "completed");
    assert_eq!(outcomes(&pool, "products").await.len(), 5);

    app.stop().await;
    sandbox.shutdown().await;
}

/// A merchant's sync completes while it disconnects: both deliveries land at once, in
/// either order, many times over. Each takes row locks on the merchant, its sync state
/// and its pending jobs; whatever the interleaving, neither may deadlock the other
/// (which PostgreSQL breaks by failing one: a 503 to Violet, and a delivery retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_sync_and_a_disconnection_arriving_together_never_deadlock() {
    use common::webhook::{Delivery, sync_body};
    use futures::StreamExt;
    use rand::seq::SliceRandom;
    use serde_json::json;

    // Refreshes and stall checks stay pending: the test is about the planning locks.
    let (_db, app) = TestApp::builder()
        .configure(|settings| settings.jobs.debounce_ms = 60_000)
        .spawn()
        .await;
    let url = app.url("/webhooks/violet");
    let deadlocks = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let deadlocks_before = deadlocks(app.pool.clone()).await;

    const ROUNDS: i64 = 5;
    const MERCHANTS: i64 = 40;
    let mut statuses = Vec::new();
    for round in 0..ROUNDS {
        let merchants: Vec<i64> = (0..MERCHANTS).map(|i| 5000 + round * 100 + i).collect();
        // A sync in progress for each: its stall check is a pending job both events lock.
        for &m in &merchants {
            let started = Delivery::new(
                &format!("started-{m}"),
                "PRODUCT_SYNC_STARTED",
                &sync_body(m, m, "IN_PROGRESS", "2026-03-01T10:00:00+0000"),
            )
            .entity(&m.to_string())
            .merchant(m);
            assert_eq!(started.send(&app.http, &url).await.status(), 200);
        }
        let mut together: Vec<Delivery> = merchants
            .iter()
            .flat_map(|&m| {
                [
                    Delivery::new(
                        &format!("completed-{m}"),
                        "PRODUCT_SYNC_COMPLETED",
                        &sync_body(m, m, "COMPLETED", "2026-03-01T10:05:00+0000"),
                    )
                    .entity(&m.to_string())
                    .merchant(m),
                    Delivery::new(
                        &format!("disconnected-{m}"),
                        "MERCHANT_DISCONNECTED",
                        &json!({"id": m, "status": "DISCONNECTED",
                                "date_last_modified": "2026-03-01T10:05:00+0000"}),
                    )
                    .merchant(m),
                ]
            })
            .collect();
        together.shuffle(&mut rand::rng());
        let http = app.http.clone();
        let answered: Vec<(String, u16)> = futures::stream::iter(together)
            .map(|delivery| {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    let status = delivery.send(&http, &url).await.status().as_u16();
                    (delivery.event_id.unwrap_or_default(), status)
                }
            })
            .buffer_unordered(2 * MERCHANTS as usize)
            .collect()
            .await;
        statuses.extend(answered);
    }
    let refused: Vec<&(String, u16)> = statuses.iter().filter(|(_, s)| *s != 200).collect();
    assert!(
        refused.is_empty(),
        "{} of {} deliveries refused: {refused:?}",
        refused.len(),
        statuses.len()
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, ROUNDS * MERCHANTS * 3);
    let connected: i64 = sqlx::query_scalar("SELECT count(*) FROM merchants WHERE connected")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(connected, 0, "every merchant ended disconnected");
    assert_eq!(
        deadlocks(app.pool.clone()).await,
        deadlocks_before,
        "PostgreSQL saw no deadlock"
    );
    app.stop().await;
}
