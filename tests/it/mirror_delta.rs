//! Delta refreshes against the real sandbox and PostgreSQL, through the real queue and
//! the application's runner: a delta after random change sets converges to the catalog
//! exactly (what a full pass makes), it never removes, the scheduled full pass repairs
//! a change whose date Violet did not move, a failed sync or MERCHANT_ENABLED makes the
//! next pass full, the watermark outlives the runner, an unchanged sync costs a page,
//! and `refresh.mode = "full"` keeps every refresh a full pass.

use crate::common;
use crate::mirror_common;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use catalog_mirror::config::RefreshPolicy;
use catalog_mirror::runner::AppRunner;
use catalog_mirror::sandbox::{ChangeMix, Scenario, ScenarioOptions};
use catalog_mirror::work::{JobKind, RefreshMode};
use mirror_common::{Harness, assert_offers_match, from_sandbox, incoming, last_change, merchant};
use serde_json::json;

const M: i64 = 1001;

fn products(mode: RefreshMode) -> JobKind {
    JobKind::RefreshProducts {
        merchant_id: M,
        mode,
    }
}

/// Onboards M with a full pass, as the first COMPLETED does.
async fn onboard(h: &Harness) {
    h.enqueue(products(RefreshMode::Full)).await;
    assert_eq!(h.run_jobs().await, 1);
}

/// `(last_full_refresh_at, last_delta_refresh_at)` of M.
async fn passes(h: &Harness) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    sqlx::query_as(
        "SELECT last_full_refresh_at, last_delta_refresh_at FROM merchants WHERE merchant_id = $1",
    )
    .bind(M)
    .fetch_one(&h.pool)
    .await
    .unwrap()
}

/// Runs the refresh a COMPLETED queues (a delta, unless a full pass is due) and the
/// jobs it leads to; returns which pass it made ("full" or "delta") and the API
/// requests it made.
async fn completed(h: &Harness) -> (&'static str, u64) {
    let before = (passes(h).await, h.sandbox.stats().requests);
    h.enqueue(products(RefreshMode::Delta)).await;
    h.run_jobs().await;
    let after = passes(h).await;
    let pass = if after.0 != before.0.0 {
        "full"
    } else if after.1 != before.0.1 {
        "delta"
    } else {
        "none"
    };
    (pass, h.sandbox.stats().requests - before.1)
}

async fn full_refresh_due(h: &Harness) -> Option<String> {
    sqlx::query_scalar("SELECT full_refresh_due FROM merchants WHERE merchant_id = $1")
        .bind(M)
        .fetch_one(&h.pool)
        .await
        .unwrap()
}

async fn live_ids(h: &Harness) -> BTreeSet<i64> {
    sqlx::query_scalar("SELECT offer_id FROM offers WHERE merchant_id = $1 AND removed_at IS NULL")
        .bind(M)
        .fetch_all(&h.pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// Delivers the OFFER_REMOVED Violet sends for each removed offer.
async fn deliver_removals(h: &Harness, removed: &[u64], round: usize) {
    let catalog = h.catalog();
    for &id in removed {
        let body = catalog.removed_offer_json(id).unwrap();
        h.deliver(&incoming(
            &format!("removed-{round}-{id}"),
            "OFFER_REMOVED",
            M,
            Some(id.to_string()),
            body,
        ))
        .await;
    }
}

/// Shares of the offers an advance updates, removes and adds, and of the updates whose
/// date does not move.
fn mix(updated: f64, removed: f64, added: f64, undated: f64) -> ChangeMix {
    ChangeMix {
        updated,
        removed,
        added,
        undated,
    }
}

/// A small deterministic generator of change mixes (xorshift).
struct Mixes(u64);

impl Mixes {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn next(&mut self) -> ChangeMix {
        mix(
            self.unit() * 0.08,
            self.unit() * 0.03,
            self.unit() * 0.05,
            0.0,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_after_random_change_sets_converge_to_the_catalog_exactly() {
    let h = Harness::start(vec![merchant(M as u64, 3_000, 4)]).await;
    onboard(&h).await;
    let full_calls = h.sandbox.stats().requests;
    let mut mixes = Mixes(0x5eed_de17a);
    for round in 0..6 {
        let mix = mixes.next();
        let change = h.catalog().advance_with(M as u64, &mix);
        deliver_removals(&h, &change.removed, round).await;
        let (pass, calls) = completed(&h).await;
        let changed = change.added.len() + change.updated.len();
        assert_eq!(pass, "delta", "round {round} ({mix:?})");
        // The mirror equals the catalog offer by offer and SKU by SKU, as after a
        // full pass (which the other mirror tests hold to the same comparison).
        assert_offers_match(&h.pool, &h.catalog(), M).await;
        let pages = changed as u64 / 100 + 3;
        assert!(
            calls <= pages + change.removed.len() as u64,
            "round {round}: {calls} requests for {changed} changed offers (a full pass took {full_calls})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_never_removes_and_the_next_full_pass_does() {
    let h = Harness::start(vec![merchant(M as u64, 2_000, 4)]).await;
    onboard(&h).await;
    let change = h
        .catalog()
        .advance_with(M as u64, &mix(0.01, 0.05, 0.01, 0.0));
    assert_eq!(change.removed.len(), 100);
    // No OFFER_REMOVED arrives: the delta cannot know, and removes nothing.
    let (pass, _) = completed(&h).await;
    assert_eq!(pass, "delta");
    assert_eq!(last_change(&h.pool, M).await.unwrap().0, "delta_refresh");
    let live = live_ids(&h).await;
    for id in &change.removed {
        assert!(live.contains(&(*id as i64)), "{id} kept by the delta");
    }
    for id in change.added.iter().chain(&change.updated) {
        assert!(live.contains(&(*id as i64)), "{id} upserted");
    }
    let (_, _, _, removed, _) = last_change(&h.pool, M).await.unwrap();
    assert_eq!(removed, 0);

    // A manual resync (a full job) removes them.
    onboard(&h).await;
    assert_offers_match(&h.pool, &h.catalog(), M).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_full_pass_repairs_a_change_whose_date_did_not_move() {
    let h = Harness::start(vec![merchant(M as u64, 2_000, 4)]).await;
    onboard(&h).await;
    // Every update of this advance keeps its old date_last_modified.
    let change = h
        .catalog()
        .advance_with(M as u64, &mix(0.02, 0.0, 0.0, 1.0));
    assert_eq!(change.updated.len(), 40);
    let hashes = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT content_hash FROM offers WHERE offer_id = ANY($1) ORDER BY offer_id",
        )
        .bind(
            change
                .updated
                .iter()
                .map(|&id| id as i64)
                .collect::<Vec<_>>(),
        )
        .fetch_all(&h.pool)
        .await
        .unwrap()
    };
    let stale = hashes().await;
    let (pass, _) = completed(&h).await;
    assert_eq!(pass, "delta");
    assert_eq!(hashes().await, stale, "the delta could not see them");

    // The last full pass is now older than refresh.full_every_secs.
    sqlx::query(
        "UPDATE merchants SET last_full_refresh_at = now() - interval '25 hours' WHERE merchant_id = $1",
    )
    .bind(M)
    .execute(&h.pool)
    .await
    .unwrap();
    let (pass, calls) = completed(&h).await;
    assert_eq!(pass, "full");
    assert!(calls >= 20, "a full pass reads every page ({calls})");
    assert_offers_match(&h.pool, &h.catalog(), M).await;
    assert_ne!(hashes().await, stale, "the full pass repaired them");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_or_merchant_enabled_makes_the_next_pass_full() {
    let h = Harness::start(vec![merchant(M as u64, 1_000, 4)]).await;
    onboard(&h).await;
    assert_eq!(
        completed(&h).await,
        ("delta", 1),
        "an unchanged delta is one page"
    );

    let event =
        |id: &str, topic: &str| incoming(id, topic, M, None, json!({"merchant_id": M, "id": 900}));
    // FAILED ends a sync that started.
    h.deliver(&event("started", "PRODUCT_SYNC_STARTED")).await;
    h.deliver(&event("failed", "PRODUCT_SYNC_FAILED")).await;
    assert_eq!(
        full_refresh_due(&h).await.as_deref(),
        Some("a products sync failed")
    );
    // The retry FAILED schedules waits for its backoff; the COMPLETED's refresh runs.
    let (pass, calls) = completed(&h).await;
    assert_eq!(pass, "full");
    assert!(calls >= 10, "a full pass reads every page ({calls})");
    assert_eq!(full_refresh_due(&h).await, None, "the full pass clears it");
    assert_eq!(completed(&h).await, ("delta", 1), "then deltas again");

    h.deliver(&event("enabled", "MERCHANT_ENABLED")).await;
    assert_eq!(
        full_refresh_due(&h).await.as_deref(),
        Some("the merchant was enabled")
    );
    assert_eq!(completed(&h).await.0, "full");
    assert_eq!(full_refresh_due(&h).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watermark_outlives_the_runner_and_an_unchanged_sync_is_one_page() {
    let h = Harness::start(vec![merchant(M as u64, 5_000, 4)]).await;
    onboard(&h).await;
    let watermark: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT offers_watermark FROM merchants WHERE merchant_id = $1")
            .bind(M)
            .fetch_one(&h.pool)
            .await
            .unwrap();
    let newest = h
        .catalog()
        .offer_ids(M as u64)
        .filter_map(|id| h.catalog().offer_json(id))
        .filter_map(|o| o["date_last_modified"].as_str().map(str::to_string))
        .filter_map(|d| catalog_mirror::violet::dates::parse(&d).ok())
        .max();
    assert_eq!(watermark, newest, "the newest date the full pass saw");

    // A new runner on the same database (a restart) reads the stored watermark.
    let restarted = AppRunner::new(h.pool.clone(), &h.settings);
    let before = h.sandbox.stats().requests;
    let report = restarted
        .mirror()
        .refresh_products(
            M,
            RefreshMode::Delta,
            &tokio_util::sync::CancellationToken::new(),
        )
        .await
        .unwrap();
    let calls = h.sandbox.stats().requests - before;
    assert!(calls <= 3, "an unchanged delta: {calls} requests");
    assert!(
        report.seen < 100,
        "only the overlap is read ({})",
        report.seen
    );
    assert_eq!((report.upserted, report.removed), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_refresh_mode_full_every_completed_is_a_full_pass() {
    let h = Harness::start_with(vec![merchant(M as u64, 2_000, 4)], |s| {
        s.refresh.mode = RefreshPolicy::Full;
    })
    .await;
    onboard(&h).await;
    // The scheduled sync as Violet sends it (it advances the catalog), without
    // per-offer events: only a full pass can see its removals.
    let events = Scenario::ScheduledSync
        .events(
            &h.catalog(),
            M as u64,
            &ScenarioOptions::without_offer_events(3),
        )
        .unwrap();
    for event in &events {
        h.deliver(&from_sandbox(event)).await;
    }
    h.run_jobs().await;
    assert_eq!(last_change(&h.pool, M).await.unwrap().0, "full_refresh");
    assert_offers_match(&h.pool, &h.catalog(), M).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_queued_while_a_full_pass_runs_waits_for_it() {
    let h = Harness::start(vec![merchant(M as u64, 3_000, 4)]).await;
    h.sandbox
        .set_knobs(|k| k.latency = std::time::Duration::from_millis(40));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let workers = tokio::spawn(h.workers.clone().run(shutdown.clone()));
    let full = h.enqueue(products(RefreshMode::Full)).await;
    let running = |id: i64| {
        let pool = h.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT state FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
                == "running"
        }
    };
    assert!(common::eventually(std::time::Duration::from_secs(10), || running(full)).await);
    // The COMPLETED's delta arrives while the full pass pages.
    let delta = h.enqueue(products(RefreshMode::Delta)).await;
    assert_ne!(delta, full, "a running job takes no merges");
    let mut overlapped = false;
    let done = |id: i64| {
        let pool = h.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT state FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
                == "done"
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done(delta).await {
        overlapped |= running(full).await && running(delta).await;
        assert!(std::time::Instant::now() < deadline, "the delta finished");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    workers.await.unwrap();
    assert!(
        !overlapped,
        "a delta and a full pass of one merchant ran at once"
    );
    let finished: Vec<chrono::DateTime<Utc>> =
        sqlx::query_scalar("SELECT finished_at FROM jobs WHERE id = ANY($1) ORDER BY id")
            .bind(vec![full, delta])
            .fetch_all(&h.pool)
            .await
            .unwrap();
    assert!(finished[0] < finished[1]);
    // It ran as a delta from the watermark the full pass left.
    assert!(passes(&h).await.1.is_some());
}

#[tokio::test]
async fn the_watermark_is_never_later_than_the_listing_began_and_a_delta_only_moves_it_on() {
    use catalog_mirror::mirror::delta::{self, Newest, Pass};
    let (_db, pool) = common::TestDb::migrated().await;
    sqlx::query("INSERT INTO merchants (merchant_id) VALUES ($1)")
        .bind(M)
        .execute(&pool)
        .await
        .unwrap();
    let watermark = || async {
        sqlx::query_scalar::<_, Option<DateTime<Utc>>>(
            "SELECT offers_watermark FROM merchants WHERE merchant_id = $1",
        )
        .bind(M)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let record = |pass: Pass, newest: Option<DateTime<Utc>>, started_at: DateTime<Utc>| {
        let pool = pool.clone();
        async move {
            let mut seen = Newest::default();
            seen.see(newest);
            let mut conn = pool.acquire().await.unwrap();
            delta::record(&mut conn, M, &pass, seen, started_at)
                .await
                .unwrap();
        }
    };
    let full = || Pass::Full { why: "test".into() };
    let delta = || Pass::Delta { since: Utc::now() };
    let began = Utc::now() - chrono::Duration::minutes(10);
    // Violet's clock ahead of ours: an offer dated after the listing began is capped.
    record(full(), Some(began + chrono::Duration::hours(1)), began).await;
    let capped = watermark().await.unwrap();
    assert!(
        (capped - began).num_milliseconds().abs() < 1,
        "{capped} vs {began}"
    );
    // A delta that saw only older offers keeps it; a safe pass leaves it alone.
    record(
        delta(),
        Some(began - chrono::Duration::hours(2)),
        Utc::now(),
    )
    .await;
    assert_eq!(watermark().await, Some(capped));
    record(Pass::Safe, Some(Utc::now()), Utc::now()).await;
    assert_eq!(watermark().await, Some(capped));
    // A full pass sets it outright, even backwards.
    let older = began - chrono::Duration::days(3);
    record(full(), Some(older), Utc::now()).await;
    assert_eq!(
        watermark().await.map(|w| w.timestamp_micros()),
        Some(older.timestamp_micros())
    );
}
