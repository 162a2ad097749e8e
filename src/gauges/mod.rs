//! Gauges sampled from PostgreSQL and the index, for `/metrics`: what counters cannot
//! say because it is state, not events.
//!
//! | metric | labels | from |
//! |---|---|---|
//! | `catalog_mirror_queue_jobs` | `kind`, `state` | `jobs`, counted by kind and state |
//! | `catalog_mirror_sync_state_merchants` | `kind`, `state` | `sync_state` (every state, 0 when none) |
//! | `catalog_mirror_merchant_offers` | `merchant` | `merchants.offer_count` (live offers in the mirror) |
//! | `catalog_mirror_index_lag_changes` | | newest change number minus the served index's |
//! | `catalog_mirror_index_lag_seconds` | | age of the oldest change not yet searchable |
//!
//! At start it also creates, at 0, the counters the shipped alert rules
//! (`deploy/prometheus/alerts.yml`) watch for rare events (sync failures, stalls,
//! merchants needing attention, dead jobs, bad signatures): a series that first appears
//! at 1 has no earlier sample, so `increase()` would miss the first event.
//!
//! One small task samples them every `admin.metrics_sample_ms` (first at start) and
//! stops with the daemon. A label set that disappears (no more running jobs of a kind)
//! is set to 0 rather than left at its last value. A failed sample (database down) is
//! logged at debug and leaves the previous values; `/readyz` reports the outage.

pub mod lag;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::search::SearchIndex;

const JOB_STATES: [&str; 5] = ["pending", "running", "done", "dead", "cancelled"];
const SYNC_KINDS: [&str; 2] = ["products", "collections"];
const SYNC_STATES: [&str; 6] = [
    "idle",
    "syncing",
    "completed",
    "failed",
    "stalled",
    "needs_attention",
];

/// Samples until `shutdown` is cancelled.
pub async fn run(
    pool: PgPool,
    index: Arc<SearchIndex>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    describe();
    zero_alerted_counters();
    let mut sampler = Sampler {
        pool,
        index,
        job_kinds: BTreeSet::new(),
    };
    loop {
        if let Err(err) = sampler.sample().await {
            tracing::debug!(error = %err, "cannot sample gauges; keeping the last values");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

struct Sampler {
    pool: PgPool,
    index: Arc<SearchIndex>,
    /// Every job kind seen since start, so its series drop to 0 instead of going stale.
    job_kinds: BTreeSet<String>,
}

impl Sampler {
    async fn sample(&mut self) -> sqlx::Result<()> {
        let jobs: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT kind, state, count(*) FROM jobs GROUP BY kind, state")
                .fetch_all(&self.pool)
                .await?;
        self.job_kinds
            .extend(jobs.iter().map(|(kind, _, _)| kind.clone()));
        for kind in &self.job_kinds {
            for state in JOB_STATES {
                let count = find(&jobs, kind, state);
                metrics::gauge!("catalog_mirror_queue_jobs", "kind" => kind.clone(), "state" => state)
                    .set(count as f64);
            }
        }

        let syncs: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT kind, state, count(*) FROM sync_state GROUP BY kind, state")
                .fetch_all(&self.pool)
                .await?;
        for kind in SYNC_KINDS {
            for state in SYNC_STATES {
                metrics::gauge!("catalog_mirror_sync_state_merchants", "kind" => kind, "state" => state)
                    .set(find(&syncs, kind, state) as f64);
            }
        }

        let offers: Vec<(i64, i64)> =
            sqlx::query_as("SELECT merchant_id, offer_count FROM merchants")
                .fetch_all(&self.pool)
                .await?;
        for (merchant, count) in offers {
            metrics::gauge!("catalog_mirror_merchant_offers", "merchant" => merchant.to_string())
                .set(count as f64);
        }

        let lag = lag::of(&self.pool, &self.index).await?;
        metrics::gauge!("catalog_mirror_index_lag_changes").set(lag.changes as f64);
        metrics::gauge!("catalog_mirror_index_lag_seconds").set(lag.seconds);
        Ok(())
    }
}

/// Job kinds whose dead jobs the alert rules count (every kind the queue runs).
const ALERTED_JOB_KINDS: [&str; 7] = [
    "refresh_products",
    "refresh_collections",
    "collection_members",
    "incremental",
    "sync_retry",
    "stall_check",
    "notify",
];

/// Creates the alerted counters at 0 (adding 0 registers a series without changing it).
fn zero_alerted_counters() {
    for kind in SYNC_KINDS {
        metrics::counter!("catalog_mirror_sync_failures_total", "kind" => kind).increment(0);
        metrics::counter!("catalog_mirror_sync_stalled_total", "kind" => kind).increment(0);
        metrics::counter!("catalog_mirror_sync_needs_attention_total", "kind" => kind).increment(0);
    }
    for kind in ALERTED_JOB_KINDS {
        metrics::counter!("catalog_mirror_jobs_total", "kind" => kind, "outcome" => "dead")
            .increment(0);
    }
    metrics::counter!("catalog_mirror_webhook_signature_failures_total").increment(0);
}

fn find(rows: &[(String, String, i64)], kind: &str, state: &str) -> i64 {
    rows.iter()
        .find(|(k, s, _)| k == kind && s == state)
        .map(|(_, _, count)| *count)
        .unwrap_or(0)
}

/// Help text for the gauges sampled here and the search latency histogram.
fn describe() {
    metrics::describe_gauge!(
        "catalog_mirror_queue_jobs",
        "Jobs in the queue by kind and state."
    );
    metrics::describe_gauge!(
        "catalog_mirror_sync_state_merchants",
        "Merchants per sync kind and state (idle, syncing, completed, failed, stalled, needs_attention)."
    );
    metrics::describe_gauge!(
        "catalog_mirror_merchant_offers",
        "Live offers in the mirror per merchant."
    );
    metrics::describe_gauge!(
        "catalog_mirror_index_lag_changes",
        "Change-log entries committed to the mirror and not yet applied to the served index."
    );
    metrics::describe_gauge!(
        "catalog_mirror_index_lag_seconds",
        metrics::Unit::Seconds,
        "Age of the oldest change not yet applied to the served index (0 when caught up)."
    );
    metrics::describe_histogram!(
        "catalog_mirror_search_duration_seconds",
        metrics::Unit::Seconds,
        "Time to answer a search API request, by route and status."
    );
}
