//! Merchants as an operator sees them: per kind (products, collections) the state,
//! the last sync, its duration, the success rate over recent runs and consecutive
//! failures; the live offer count, how many of those the storefront may see, the
//! catalog version and how far the index lags.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::mirror::{DeltaState, ProgressSnapshot};

/// How many ended runs (completed, failed or stalled) the success rate looks at.
pub const RECENT_RUNS_WINDOW: i64 = 20;

#[derive(Debug, Clone, Serialize)]
pub struct MerchantSummary {
    pub merchant_id: i64,
    pub name: Option<String>,
    pub platform: Option<String>,
    pub connected: bool,
    pub enabled: bool,
    /// Connected and enabled: what the storefront may see.
    pub visible: bool,
    /// complete | needs_attention, from Violet's merchant events.
    pub health: Option<String>,
    /// Live (not removed) offers in the mirror.
    pub offer_count: i64,
    /// Offers the storefront may see now (the `storefront_offers` view, the rule the
    /// index applies): what a search of this merchant finds once the index caught up.
    pub storefront_offers: i64,
    pub catalog_version: i64,
    pub last_refresh_at: Option<DateTime<Utc>>,
    pub last_refresh_ms: Option<i64>,
    /// Offers whose removal a complete pass held for agreement (`None`: nothing held).
    pub held_removals: Option<i64>,
    /// The last full pass, the last delta, the watermark and why the next products
    /// refresh must be a full pass (if it must).
    pub freshness: DeltaState,
    pub products: KindSummary,
    pub collections: KindSummary,
    pub index: MerchantIndexLag,
}

#[derive(Debug, Clone, Serialize)]
pub struct KindSummary {
    /// idle | syncing | completed | failed | stalled | needs_attention.
    pub state: String,
    pub state_changed_at: Option<DateTime<Utc>>,
    pub current_sync_id: Option<String>,
    pub consecutive_failures: i32,
    /// Why the state is `needs_attention` (repeated failures, held removals), if known.
    pub attention_reason: Option<String>,
    /// The most recent run, whatever its outcome (a running one included).
    pub last_sync: Option<LastSync>,
    /// Duration of the most recent run that has both a start and an end.
    pub last_duration_ms: Option<i64>,
    /// Completed / ended over the last [`RECENT_RUNS_WINDOW`] ended runs; `None` without any.
    pub success_rate: Option<f64>,
    /// How many ended runs the success rate is over.
    pub recent_runs: i64,
    /// The refresh of this listing running in the daemon that answers, or its last one
    /// since the daemon started; `null` when none ran (filled in by the API, not here).
    pub progress: Option<ProgressSnapshot>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastSync {
    pub run_id: i64,
    pub sync_id: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub outcome: String,
}

/// Changes not yet in the index: `latest_change_no` is the merchant's newest change-log
/// row; `applied_change_no` the index's watermark, `None` while the search side does
/// not report it (then `pending_changes` is `None` too).
#[derive(Debug, Clone, Serialize)]
pub struct MerchantIndexLag {
    pub latest_change_no: Option<i64>,
    pub applied_change_no: Option<i64>,
    pub pending_changes: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct MerchantRow {
    merchant_id: i64,
    name: Option<String>,
    platform: Option<String>,
    connected: bool,
    enabled: bool,
    visible: bool,
    health: Option<String>,
    offer_count: i64,
    storefront_offers: i64,
    catalog_version: i64,
    last_refresh_at: Option<DateTime<Utc>>,
    last_refresh_ms: Option<i64>,
    held_removals: Option<i64>,
    #[sqlx(flatten)]
    freshness: DeltaState,
    latest_change_no: Option<i64>,
    pending_changes: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct KindRow {
    merchant_id: i64,
    kind: String,
    state: Option<String>,
    state_changed_at: Option<DateTime<Utc>>,
    current_sync_id: Option<String>,
    consecutive_failures: Option<i32>,
    attention_reason: Option<String>,
    last_run_id: Option<i64>,
    last_sync_id: Option<String>,
    last_started_at: Option<DateTime<Utc>>,
    last_ended_at: Option<DateTime<Utc>>,
    last_outcome: Option<String>,
    last_duration_ms: Option<i64>,
    completed: i64,
    ended: i64,
}

/// Every merchant (or just `only`), ordered by id. `applied_change_no` is the index's
/// watermark when known.
pub async fn merchants(
    pool: &PgPool,
    only: Option<i64>,
    applied_change_no: Option<i64>,
) -> sqlx::Result<Vec<MerchantSummary>> {
    let rows: Vec<MerchantRow> = sqlx::query_as(
        r#"SELECT m.merchant_id, m.name, m.platform, m.connected, m.enabled, m.visible, m.health,
                  live.offers AS offer_count, shown.offers AS storefront_offers, m.catalog_version, m.last_refresh_at, m.last_refresh_ms,
                  m.offers_watermark, m.last_full_refresh_at, m.last_delta_refresh_at, m.full_refresh_due,
                  (SELECT cardinality(h.offer_ids)::bigint FROM held_removals h
                   WHERE h.merchant_id = m.merchant_id) AS held_removals,
                  (SELECT max(c.change_no) FROM change_log c WHERE c.merchant_id = m.merchant_id) AS latest_change_no,
                  CASE WHEN $2::bigint IS NULL THEN NULL ELSE
                      (SELECT count(*) FROM change_log c WHERE c.merchant_id = m.merchant_id AND c.change_no > $2)
                  END AS pending_changes
           FROM merchants m
           CROSS JOIN LATERAL (SELECT count(*) AS offers FROM offers o
                               WHERE o.merchant_id = m.merchant_id AND o.removed_at IS NULL) live
           CROSS JOIN LATERAL (SELECT count(*) AS offers FROM storefront_offers s
                               WHERE s.merchant_id = m.merchant_id) shown
           WHERE $1::bigint IS NULL OR m.merchant_id = $1
           ORDER BY m.merchant_id"#,
    )
    .bind(only)
    .bind(applied_change_no)
    .fetch_all(pool)
    .await?;
    let kinds: Vec<KindRow> = sqlx::query_as(
        r#"SELECT m.merchant_id, k.kind, s.state, s.state_changed_at, s.current_sync_id, s.consecutive_failures,
                  s.attention_reason,
                  last.id AS last_run_id, last.sync_id AS last_sync_id, last.started_at AS last_started_at,
                  last.ended_at AS last_ended_at, last.outcome AS last_outcome,
                  dur.ms AS last_duration_ms, rate.completed, rate.ended
           FROM merchants m
           CROSS JOIN (VALUES ('products'), ('collections')) AS k(kind)
           LEFT JOIN sync_state s ON s.merchant_id = m.merchant_id AND s.kind = k.kind
           LEFT JOIN LATERAL (
               SELECT r.id, r.sync_id, r.started_at, r.ended_at, r.outcome FROM sync_runs r
               WHERE r.merchant_id = m.merchant_id AND r.kind = k.kind
               ORDER BY COALESCE(r.started_at, r.ended_at) DESC NULLS LAST, r.id DESC LIMIT 1) last ON true
           LEFT JOIN LATERAL (
               SELECT (extract(epoch FROM r.ended_at - r.started_at) * 1000)::bigint AS ms FROM sync_runs r
               WHERE r.merchant_id = m.merchant_id AND r.kind = k.kind
                 AND r.started_at IS NOT NULL AND r.ended_at IS NOT NULL
               ORDER BY r.ended_at DESC, r.id DESC LIMIT 1) dur ON true
           CROSS JOIN LATERAL (
               SELECT count(*) FILTER (WHERE w.outcome = 'completed') AS completed, count(*) AS ended
               FROM (SELECT r.outcome FROM sync_runs r
                     WHERE r.merchant_id = m.merchant_id AND r.kind = k.kind
                       AND r.outcome IN ('completed', 'failed', 'stalled')
                     ORDER BY COALESCE(r.ended_at, r.started_at) DESC NULLS LAST, r.id DESC
                     LIMIT $2) w) rate
           WHERE $1::bigint IS NULL OR m.merchant_id = $1"#,
    )
    .bind(only)
    .bind(RECENT_RUNS_WINDOW)
    .fetch_all(pool)
    .await?;
    let mut by_key: HashMap<(i64, String), KindSummary> = kinds
        .into_iter()
        .map(|row| ((row.merchant_id, row.kind.clone()), row.into()))
        .collect();
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut take = |kind: &str| {
                by_key
                    .remove(&(row.merchant_id, kind.to_string()))
                    .unwrap_or_else(KindSummary::idle)
            };
            let products = take("products");
            let collections = take("collections");
            MerchantSummary {
                merchant_id: row.merchant_id,
                name: row.name,
                platform: row.platform,
                connected: row.connected,
                enabled: row.enabled,
                visible: row.visible,
                health: row.health,
                offer_count: row.offer_count,
                storefront_offers: row.storefront_offers,
                catalog_version: row.catalog_version,
                last_refresh_at: row.last_refresh_at,
                last_refresh_ms: row.last_refresh_ms,
                held_removals: row.held_removals,
                freshness: row.freshness,
                products,
                collections,
                index: MerchantIndexLag {
                    latest_change_no: row.latest_change_no,
                    applied_change_no,
                    pending_changes: row.pending_changes,
                },
            }
        })
        .collect())
}

impl KindSummary {
    fn idle() -> KindSummary {
        KindSummary {
            state: "idle".into(),
            state_changed_at: None,
            current_sync_id: None,
            consecutive_failures: 0,
            attention_reason: None,
            last_sync: None,
            last_duration_ms: None,
            success_rate: None,
            recent_runs: 0,
            progress: None,
        }
    }
}

impl From<KindRow> for KindSummary {
    fn from(row: KindRow) -> Self {
        KindSummary {
            state: row.state.unwrap_or_else(|| "idle".into()),
            state_changed_at: row.state_changed_at,
            current_sync_id: row.current_sync_id,
            consecutive_failures: row.consecutive_failures.unwrap_or(0),
            attention_reason: row.attention_reason,
            last_sync: match (row.last_run_id, row.last_outcome) {
                (Some(run_id), Some(outcome)) => Some(LastSync {
                    run_id,
                    sync_id: row.last_sync_id,
                    started_at: row.last_started_at,
                    ended_at: row.last_ended_at,
                    outcome,
                }),
                _ => None,
            },
            last_duration_ms: row.last_duration_ms,
            success_rate: (row.ended > 0).then(|| row.completed as f64 / row.ended as f64),
            recent_runs: row.ended,
            progress: None,
        }
    }
}

/// One paired sync (STARTED with its end), as stored in `sync_runs`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SyncRun {
    pub id: i64,
    pub merchant_id: i64,
    pub kind: String,
    pub sync_id: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// running | completed | failed | stalled | abandoned
    pub outcome: String,
    /// `None` unless both the start and the end are known.
    pub duration_ms: Option<i64>,
    pub total_products: Option<i64>,
    pub total_products_synced: Option<i64>,
}

const RUN_COLUMNS: &str = r#"id, merchant_id, kind, sync_id, started_at, ended_at, outcome,
    (extract(epoch FROM ended_at - started_at) * 1000)::bigint AS duration_ms,
    total_products, total_products_synced"#;

/// A merchant's sync history, newest first.
pub async fn runs_of_merchant(
    pool: &PgPool,
    merchant_id: i64,
    limit: i64,
) -> sqlx::Result<Vec<SyncRun>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM sync_runs WHERE merchant_id = $1
         ORDER BY COALESCE(started_at, ended_at) DESC NULLS LAST, id DESC LIMIT $2"
    )))
    .bind(merchant_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The latest runs of every merchant that have an outcome (not running, not
/// abandoned), newest first: what the page's chart draws.
pub async fn recent_runs(pool: &PgPool, limit: i64) -> sqlx::Result<Vec<SyncRun>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM sync_runs WHERE outcome IN ('completed', 'failed', 'stalled')
         ORDER BY COALESCE(ended_at, started_at) DESC NULLS LAST, id DESC LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(pool)
    .await
}
