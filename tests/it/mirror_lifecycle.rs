//! The mirror inside the running daemon, fed by the sandbox's signed webhook emitter
//! (duplicates and reordering on): onboarding, a scheduled sync with changes, and a
//! disable/re-enable each end with the mirror equal to the sandbox. And the refresh
//! concurrency bounds: at most `refresh.concurrency` refreshes publish-or-stage at once,
//! never two of the same merchant and kind.

use crate::common;
use crate::mirror_common;

use std::collections::HashMap;
use std::time::Duration;

use catalog_mirror::mirror::queries;
use catalog_mirror::sandbox::{DeliveryFaults, Scenario, ScenarioOptions};
use catalog_mirror::work::{JobKind, RefreshMode};
use common::{TestApp, eventually};
use mirror_common::{Harness, assert_collections_match, assert_offers_match, merchant};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const M: u64 = 1001;

/// Waits until no job is pending or running.
async fn settled(pool: &PgPool) -> bool {
    eventually(Duration::from_secs(120), || async {
        let open: i64 =
            sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state IN ('pending', 'running')")
                .fetch_one(pool)
                .await
                .unwrap();
        open == 0
    })
    .await
}

async fn offer_event_states(pool: &PgPool) -> HashMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT status, count(*) FROM webhook_events WHERE topic LIKE 'OFFER_%' GROUP BY status",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_mirrors_onboarding_a_scheduled_sync_and_a_disable_from_signed_webhooks() {
    let sandbox = mirror_common::sandbox(vec![merchant(M, 2_000, 6)]).await;
    let (_db, app) = TestApp::builder()
        .sandbox(&sandbox)
        .configure(mirror_common::quick_refreshes)
        .configure(|settings| {
            // The scenarios' events are dated in the sandbox's past; no stall check
            // should fire.
            settings.sync.stall_timeout_secs = 20 * 365 * 86_400;
            settings.jobs.debounce_ms = 300;
        })
        .spawn()
        .await;
    let target = app.url("/webhooks/violet");
    let faults = DeliveryFaults {
        duplicate_rate: 0.1,
        out_of_order: true,
        seed: 5,
        ..Default::default()
    };
    let options = ScenarioOptions {
        seed: 3,
        max_offer_events: Some(150),
    };
    let catalog = sandbox.catalog();
    let merchant_id = M as i64;

    let report = sandbox
        .play(Scenario::Onboarding, M, &target, faults.clone(), &options)
        .await
        .unwrap();
    assert!(
        report.failed.is_empty() && report.duplicates_sent > 0,
        "{report:?}"
    );
    assert!(settled(&app.pool).await, "jobs settle after onboarding");
    assert_offers_match(&app.pool, &catalog, merchant_id).await;
    assert_collections_match(&app.pool, &catalog, merchant_id).await;
    let states = offer_event_states(&app.pool).await;
    assert_eq!(
        states.get("pending"),
        None,
        "no offer event left behind: {states:?}"
    );

    // Violet syncs again after its catalog changed: adds, updates, removals.
    let report = sandbox
        .play(
            Scenario::ScheduledSync,
            M,
            &target,
            faults.clone(),
            &options,
        )
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(
        settled(&app.pool).await,
        "jobs settle after the scheduled sync"
    );
    assert_offers_match(&app.pool, &catalog, merchant_id).await;
    let states = offer_event_states(&app.pool).await;
    assert_eq!(states.get("pending"), None, "{states:?}");

    // Disabled, re-enabled, resynced: visible again and still equal.
    let report = sandbox
        .play(
            Scenario::DisabledThenReenabled,
            M,
            &target,
            faults,
            &options,
        )
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(settled(&app.pool).await, "jobs settle after re-enabling");
    assert_offers_match(&app.pool, &catalog, merchant_id).await;
    assert!(
        !queries::storefront_offers(&app.pool, merchant_id)
            .await
            .unwrap()
            .is_empty()
    );
    let visibility: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM change_log WHERE merchant_id = $1 AND reason = 'visibility'",
    )
    .bind(merchant_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(visibility, 2, "hidden once, shown once");
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'dead'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(dead, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_stay_within_refresh_concurrency_and_one_per_merchant_and_kind() {
    let ids = [3001u64, 3002, 3003];
    let h = Harness::start_with(
        ids.iter().map(|&id| merchant(id, 1_200, 2)).collect(),
        |s| {
            s.jobs.workers = 6;
            s.refresh.concurrency = 2;
            s.refresh.batch_size = 100;
        },
    )
    .await;
    // Slow pages: each refresh stages for a while, so overlaps are visible.
    h.sandbox
        .set_knobs(|k| k.latency = Duration::from_millis(25));
    let first = ids[0] as i64;
    for &id in &ids {
        h.enqueue(JobKind::RefreshProducts {
            merchant_id: id as i64,
            mode: RefreshMode::Full,
        })
        .await;
    }
    let shutdown = CancellationToken::new();
    let pool_task = tokio::spawn(h.workers.clone().run(shutdown.clone()));

    // Once the first merchant's refresh runs, ask for another one of it.
    let key = format!("refresh_products:{first}");
    assert!(
        eventually(Duration::from_secs(30), || async {
            let running: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM jobs WHERE dedupe_key = $1 AND state = 'running'",
            )
            .bind(&key)
            .fetch_one(&h.pool)
            .await
            .unwrap();
            running == 1
        })
        .await
    );
    let again = h
        .enqueue(JobKind::RefreshProducts {
            merchant_id: first,
            mode: RefreshMode::Full,
        })
        .await;

    // Sample: refreshes holding staged rows (at most two), jobs running per key (at most one).
    let (mut most_staging, mut most_same_key) = (0i64, 0i64);
    loop {
        let staging: i64 =
            sqlx::query_scalar("SELECT count(DISTINCT refresh_id) FROM staged_offers")
                .fetch_one(&h.pool)
                .await
                .unwrap();
        let same_key: i64 = sqlx::query_scalar(
            "SELECT COALESCE(max(n), 0) FROM (SELECT count(*) AS n FROM jobs WHERE state = 'running' GROUP BY dedupe_key) r",
        )
        .fetch_one(&h.pool)
        .await
        .unwrap();
        most_staging = most_staging.max(staging);
        most_same_key = most_same_key.max(same_key);
        let open: i64 =
            sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state IN ('pending', 'running')")
                .fetch_one(&h.pool)
                .await
                .unwrap();
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    pool_task.await.unwrap();

    assert_eq!(most_staging, 2, "refreshes ran two at a time, never more");
    assert_eq!(
        most_same_key, 1,
        "never two running jobs of one merchant and kind"
    );
    assert_eq!(
        h.job(again).await.0,
        "done",
        "the second refresh ran after the first"
    );
    let catalog = h.catalog();
    for &id in &ids {
        assert_offers_match(&h.pool, &catalog, id as i64).await;
    }
    let versions: i64 =
        sqlx::query_scalar("SELECT catalog_version FROM merchants WHERE merchant_id = $1")
            .bind(first)
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert_eq!(
        versions, 1,
        "the second refresh of an unchanged catalog changed nothing"
    );
}
