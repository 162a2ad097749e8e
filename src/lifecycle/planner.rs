//! Planning: what a newly stored event changes and which jobs it schedules.
//!
//! - COMPLETED schedules a refresh of that merchant and kind after the debounce: for
//!   products a delta, which makes a full pass when one is due (`mirror::delta`); for
//!   collections a full refresh.
//! - FAILED, a stall and MERCHANT_ENABLED make the next products refresh a full pass.
//! - Offer and collection events during that merchant's sync window are held: the
//!   refresh after COMPLETED covers them. Outside a window they gather into one
//!   batched incremental job per merchant.
//! - FAILED schedules a retry (a safe refresh) on the sync retry schedule; repeated
//!   failures mark the sync as needing attention.
//! - A new STARTED or COMPLETED cancels pending retries.
//! - STARTED schedules a stall check `sync.stall_timeout_secs` later. It fetches nothing.

use std::time::Duration;

use chrono::Utc;
use sqlx::PgConnection;

use super::state::{self, SyncEvent};
use super::{EventClass, IncomingEvent, SyncKind, Topic, merchants};
use crate::config::{JobSettings, SyncSettings};
use crate::jobs::{Backoff, ENQUEUE_ARGS, EnqueueArgs, NewJob, OnConflict, Queue};
use crate::mirror::delta;
use crate::work::{JobKind, RefreshMode};

/// The settings planning needs, copied out of the configuration.
#[derive(Debug, Clone)]
pub struct PlanningSettings {
    pub debounce: Duration,
    pub stall_timeout: Duration,
    pub job_max_attempts: i32,
    pub retry: Backoff,
    pub retry_max_attempts: i32,
}

impl PlanningSettings {
    pub fn new(jobs: &JobSettings, sync: &SyncSettings) -> Self {
        Self {
            debounce: jobs.debounce(),
            stall_timeout: Duration::from_secs(sync.stall_timeout_secs),
            job_max_attempts: jobs.max_attempts,
            retry: Backoff {
                base: Duration::from_secs(sync.failed_retry_base_secs),
                factor: sync.failed_retry_factor,
                cap: Duration::from_secs(sync.failed_retry_cap_secs),
                jitter: sync.failed_retry_jitter,
            },
            retry_max_attempts: sync.failed_retry_max_attempts.max(1) as i32,
        }
    }
}

/// What became of an event; stored in `webhook_events.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    Processed,
    /// Signed correctly but unusable (body not JSON, no merchant id, a header and a
    /// body naming different merchants): kept for replay.
    Unprocessable,
    /// A topic the daemon does not act on.
    Ignored,
    /// An offer or collection event waiting for a batched job or a refresh.
    Pending,
}

impl EventStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            EventStatus::Processed => "processed",
            EventStatus::Unprocessable => "unprocessable",
            EventStatus::Ignored => "ignored",
            EventStatus::Pending => "pending",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Planner {
    settings: PlanningSettings,
}

impl Planner {
    pub fn new(settings: PlanningSettings) -> Self {
        Self { settings }
    }

    pub fn settings(&self) -> &PlanningSettings {
        &self.settings
    }

    /// What becomes of an event, decided from the event alone (before any database
    /// work), so intake stores it with its final status in one statement.
    pub fn classify(event: &IncomingEvent) -> (EventStatus, Option<String>) {
        let class = event.topic.class();
        if class == EventClass::Unknown {
            return (EventStatus::Ignored, None);
        }
        if event.body.is_none() {
            return (
                EventStatus::Unprocessable,
                Some("body is not valid JSON".into()),
            );
        }
        if let Some((header, body)) = event.merchant_conflict() {
            return (
                EventStatus::Unprocessable,
                Some(format!(
                    "X-Violet-Merchant-Id {header} and the body's merchant {body} disagree; \
                     not acted on"
                )),
            );
        }
        if event.merchant_id().is_none() {
            return (
                EventStatus::Unprocessable,
                Some("no merchant id in X-Violet-Merchant-Id or the body".into()),
            );
        }
        match class {
            EventClass::Offer | EventClass::Collection => (EventStatus::Pending, None),
            _ => (EventStatus::Processed, None),
        }
    }

    /// Applies a newly stored event inside the intake transaction: moves the state
    /// machine and schedules jobs. Does nothing for events [`Planner::classify`] does
    /// not mark processed or pending.
    pub async fn apply(&self, conn: &mut PgConnection, event: &IncomingEvent) -> sqlx::Result<()> {
        let mut visibility_moved = Vec::new();
        self.apply_deferring(conn, event, &mut visibility_moved)
            .await?;
        merchants::append_visibility_changes(conn, &visibility_moved).await
    }

    /// [`Planner::apply`] for a transaction that applies several events: the merchants
    /// whose visibility moved are pushed onto `visibility_moved`, for the caller to pass
    /// to [`super::append_visibility_changes`] after its last event, just before commit.
    pub async fn apply_deferring(
        &self,
        conn: &mut PgConnection,
        event: &IncomingEvent,
        visibility_moved: &mut Vec<i64>,
    ) -> sqlx::Result<()> {
        if !matches!(
            Self::classify(event).0,
            EventStatus::Processed | EventStatus::Pending
        ) {
            return Ok(());
        }
        let (Some(body), Some(merchant_id)) = (event.body.as_ref(), event.merchant_id()) else {
            return Ok(());
        };
        let at = event.occurred_at().unwrap_or_else(Utc::now);
        match &event.topic {
            Topic::SyncStarted(kind) | Topic::SyncCompleted(kind) | Topic::SyncFailed(kind) => {
                // The merchant row first: the lock order every planning transaction keeps.
                merchants::lock(conn, merchant_id).await?;
                let sync_id = event.sync_id();
                let sync = SyncEvent {
                    merchant_id,
                    kind: *kind,
                    sync_id: sync_id.as_deref(),
                    at,
                    event_id: &event.event_id,
                    total_products: event.body_int("total_products"),
                    total_products_synced: event.body_int("total_products_synced"),
                };
                match event.topic {
                    Topic::SyncStarted(_) => self.started(conn, &sync).await,
                    Topic::SyncCompleted(_) => self.completed(conn, &sync).await,
                    _ => self.failed(conn, &sync).await,
                }
            }
            topic => match topic.class() {
                EventClass::Merchant => {
                    let moved =
                        merchants::apply(conn, merchant_id, topic, body, at, visibility_moved)
                            .await?;
                    // Offers a disabled merchant changed may not all carry newer dates.
                    if moved && *topic == Topic::MerchantEnabled {
                        delta::require_full_pass(conn, merchant_id, "the merchant was enabled")
                            .await?;
                    }
                    Ok(())
                }
                EventClass::Offer => {
                    self.hold_or_batch(conn, merchant_id, SyncKind::Products)
                        .await
                }
                EventClass::Collection => {
                    self.hold_or_batch(conn, merchant_id, SyncKind::Collections)
                        .await
                }
                _ => Ok(()),
            },
        }
    }

    async fn started(&self, conn: &mut PgConnection, sync: &SyncEvent<'_>) -> sqlx::Result<()> {
        let moved = state::on_started(conn, sync).await?;
        self.cancel_retries(conn, sync.merchant_id, sync.kind)
            .await?;
        if moved {
            // Timed from receipt, not from the body's date: a clock difference with
            // Violet (or a late redelivery) must not declare a sync stalled at once.
            self.enqueue(
                conn,
                JobKind::StallCheck {
                    merchant_id: sync.merchant_id,
                    sync: sync.kind,
                    sync_id: sync.sync_id.map(str::to_string),
                },
                self.settings.stall_timeout,
                OnConflict::Replace,
            )
            .await?;
        }
        Ok(())
    }

    async fn completed(&self, conn: &mut PgConnection, sync: &SyncEvent<'_>) -> sqlx::Result<()> {
        // Recovered: this completion follows failures (even with a new STARTED between),
        // a stall or a need for attention.
        let troubled = state::SyncState::get(conn, sync.merchant_id, sync.kind)
            .await?
            .is_some_and(|s| {
                s.consecutive_failures > 0
                    || matches!(s.state.as_str(), "failed" | "stalled" | "needs_attention")
            });
        let ended = state::on_ended(conn, sync, true).await?;
        if ended.moved && troubled {
            tracing::info!(
                merchant_id = sync.merchant_id,
                kind = sync.kind.as_str(),
                "sync recovered"
            );
            crate::notify::sync_state_changed(conn, sync.merchant_id, sync.kind, "recovered")
                .await?;
        }
        self.cancel_retries(conn, sync.merchant_id, sync.kind)
            .await?;
        if ended.moved {
            self.cancel_stall_check(conn, sync.merchant_id, sync.kind)
                .await?;
            if sync.kind == SyncKind::Products {
                sqlx::query("UPDATE merchants SET resync_expected = false WHERE merchant_id = $1")
                    .bind(sync.merchant_id)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        // Even a late or unpaired COMPLETED means Violet's copy changed: refresh.
        let mode = match sync.kind {
            SyncKind::Products => RefreshMode::Delta,
            SyncKind::Collections => RefreshMode::Full,
        };
        self.enqueue(
            conn,
            refresh(sync.merchant_id, sync.kind, mode),
            self.settings.debounce,
            OnConflict::Debounce,
        )
        .await?;
        Ok(())
    }

    async fn failed(&self, conn: &mut PgConnection, sync: &SyncEvent<'_>) -> sqlx::Result<()> {
        let ended = state::on_ended(conn, sync, false).await?;
        if !ended.moved {
            return Ok(());
        }
        self.cancel_stall_check(conn, sync.merchant_id, sync.kind)
            .await?;
        metrics::counter!("catalog_mirror_sync_failures_total", "kind" => sync.kind.as_str())
            .increment(1);
        if sync.kind == SyncKind::Products {
            delta::require_full_pass(conn, sync.merchant_id, "a products sync failed").await?;
        }
        crate::notify::sync_state_changed(conn, sync.merchant_id, sync.kind, "failed").await?;
        // Events held during the failed window are applied on their own now.
        self.enqueue(
            conn,
            JobKind::Incremental {
                merchant_id: sync.merchant_id,
            },
            self.settings.debounce,
            OnConflict::Debounce,
        )
        .await?;
        if ended.consecutive_failures >= self.settings.retry_max_attempts {
            state::mark_needs_attention(conn, sync.merchant_id, sync.kind).await?;
            return Ok(());
        }
        let delay = self.settings.retry.delay(ended.consecutive_failures);
        Queue::enqueue(
            conn,
            &NewJob {
                kind: JobKind::SyncRetry {
                    merchant_id: sync.merchant_id,
                    sync: sync.kind,
                },
                delay,
                max_attempts: self.settings.retry_max_attempts,
                on_conflict: OnConflict::KeepEarlier,
            },
        )
        .await?;
        tracing::warn!(
            merchant_id = sync.merchant_id,
            kind = sync.kind.as_str(),
            failures = ended.consecutive_failures,
            retry_in_secs = delay.as_secs(),
            "sync failed: cached catalog kept, retry scheduled"
        );
        Ok(())
    }

    /// Offer or collection event: held while that kind is syncing (the refresh after
    /// COMPLETED covers it), otherwise batched into the merchant's incremental job.
    /// Intake does the same in its single-statement path; replays come through here.
    async fn hold_or_batch(
        &self,
        conn: &mut PgConnection,
        merchant_id: i64,
        kind: SyncKind,
    ) -> sqlx::Result<()> {
        let job = self.batched_job(merchant_id);
        let sql = format!(
            "WITH merchant AS (INSERT INTO merchants (merchant_id) VALUES ($1) ON CONFLICT DO NOTHING) SELECT {}",
            batch_unless_syncing("$1", "$2", 3)
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(merchant_id)
            .bind(kind.as_str());
        EnqueueArgs::new(&job)
            .bind(query)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// The job an offer or collection event outside a sync window joins.
    pub fn batched_job(&self, merchant_id: i64) -> NewJob<JobKind> {
        NewJob {
            kind: JobKind::Incremental { merchant_id },
            delay: self.settings.debounce,
            max_attempts: self.settings.job_max_attempts,
            on_conflict: OnConflict::Debounce,
        }
    }

    async fn cancel_retries(
        &self,
        conn: &mut PgConnection,
        merchant_id: i64,
        kind: SyncKind,
    ) -> sqlx::Result<()> {
        let key = JobKind::SyncRetry {
            merchant_id,
            sync: kind,
        }
        .dedupe_key();
        Queue::cancel_pending(conn, merchant_id, Some(&key), "superseded by a newer sync").await?;
        Ok(())
    }

    async fn cancel_stall_check(
        &self,
        conn: &mut PgConnection,
        merchant_id: i64,
        kind: SyncKind,
    ) -> sqlx::Result<()> {
        let key = JobKind::StallCheck {
            merchant_id,
            sync: kind,
            sync_id: None,
        }
        .dedupe_key();
        Queue::cancel_pending(conn, merchant_id, Some(&key), "the sync ended").await?;
        Ok(())
    }

    async fn enqueue(
        &self,
        conn: &mut PgConnection,
        kind: JobKind,
        delay: Duration,
        on_conflict: OnConflict,
    ) -> sqlx::Result<()> {
        Queue::enqueue_quietly(
            conn,
            &NewJob {
                kind,
                delay,
                max_attempts: self.settings.job_max_attempts,
                on_conflict,
            },
        )
        .await?;
        Ok(())
    }
}

/// SQL expression of the hold rule: enqueues a job (the arguments of `enqueue_job`,
/// bound from `$first` by [`EnqueueArgs::bind`]) unless `kind` of `merchant` is syncing.
pub fn batch_unless_syncing(merchant: &str, kind: &str, first: usize) -> String {
    let args: Vec<String> = (first..first + ENQUEUE_ARGS)
        .map(|i| format!("${i}"))
        .collect();
    format!(
        "CASE WHEN EXISTS (SELECT 1 FROM sync_state WHERE merchant_id = {merchant} AND kind = {kind} \
         AND state = 'syncing') THEN NULL ELSE enqueue_job({}) END",
        args.join(", ")
    )
}

/// The refresh job for a merchant and kind.
pub fn refresh(merchant_id: i64, kind: SyncKind, mode: RefreshMode) -> JobKind {
    match kind {
        SyncKind::Products => JobKind::RefreshProducts { merchant_id, mode },
        SyncKind::Collections => JobKind::RefreshCollections { merchant_id, mode },
    }
}
