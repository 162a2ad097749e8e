//! The PostgreSQL catalog mirror: full, safe and collections refreshes, incremental
//! offer events, the change log the search indexer follows, and read queries.
//!
//! Invariants kept here (DESIGN.md, 2 and 5):
//! - A products refresh after COMPLETED is a delta (only offers modified since the
//!   merchant's watermark, upserts only) unless a full pass is due (`delta`).
//! - A refresh streams pages from Violet into staging (short transactions, never one
//!   open across a network call) and publishes in ONE transaction after the last page.
//!   A fetch that fails part way discards its staging and changes nothing live; the job
//!   fails and the queue retries it with backoff.
//! - Removals happen only in a full refresh, after a complete pass (the listing's
//!   final page was read); a safe refresh (failed-sync retries, stalled syncs) only
//!   upserts. Nothing is deleted: removed offers keep their row with `removed_at`.
//!   Each offer a full pass would remove is first fetched by id (`verify`: a listing
//!   that shifted while paged skips offers); a pass that would remove an unusually
//!   large share of a catalog holds its removals for agreement (`removals`).
//! - A refresh run for a job publishes only while the job's claim holds its lease
//!   ([`Mirror::fenced`]), and only from staging it still owns (`staging::own`).
//! - Memory is bounded by the page buffer and `refresh.batch_size`, not by the catalog:
//!   pages stream through, staging and publishing work in batches.
//!
//! Layout: `products` and `collections` (the refreshes), `delta` (full or delta, the
//! watermark), `collection_delta` (the memberships a collections refresh reads again),
//! `collection_members` (just the collections a COLLECTION_OFFERS_UPDATED names),
//! `incremental` and `events`
//! (offer events), `staging`, `publish` and `rows` (how rows get in), `copy` (COPY text
//! format), `changes` (publish lock, change log, event folding), `queries` (reads),
//! `progress` (what running refreshes have done so far, for operators).

mod changes;
mod collection_delta;
mod collection_members;
mod collections;
mod copy;
pub mod delta;
mod events;
mod incremental;
mod products;
pub mod progress;
mod publish;
pub mod queries;
pub mod removals;
mod rows;
mod staging;
mod verify;

use std::time::Duration;

use sqlx::PgPool;

pub use changes::{
    CHANGES_CHANNEL, Change, MAX_LISTED_OFFERS, Reason, append as append_change, visibility_changed,
};
pub use collection_delta::forget_membership_reads;
pub use collection_members::MembersReport;
pub use delta::{DeltaSettings, DeltaState};
pub use incremental::IncrementalReport;
pub use progress::{ProgressKind, ProgressSnapshot, RefreshProgress};
pub use rows::{content_hash, primary_image};

use crate::config::{JobSettings, RefreshSettings};
use crate::jobs::Lease;
use crate::violet::VioletClient;

/// How the mirror works, from `[refresh]` and `[jobs]`.
#[derive(Debug, Clone)]
pub struct MirrorSettings {
    /// Rows per staging COPY and per publishing statement.
    pub batch_size: usize,
    /// Pages fetched ahead of staging (each at most `violet.page_size` offers).
    pub prefetch_pages: usize,
    /// Single-offer fetches in flight during an incremental batch.
    pub fetch_concurrency: usize,
    /// Attempts of jobs the mirror enqueues itself.
    pub job_max_attempts: i32,
    /// Removals above this share of a merchant's live offers wait for agreement.
    pub max_removal_fraction: f64,
    /// At most this many unseen offers are checked one by one before a removal.
    pub verify_removals_max: usize,
    /// When a products refresh may be a delta.
    pub delta: DeltaSettings,
    /// A membership whose collection's date did not move is read again after this
    /// long (zero: always read; see `collection_delta`).
    pub collections_recheck: Duration,
}

impl MirrorSettings {
    pub fn new(refresh: &RefreshSettings, jobs: &JobSettings) -> Self {
        Self {
            batch_size: refresh.batch_size.max(1),
            prefetch_pages: 4,
            fetch_concurrency: 4,
            job_max_attempts: jobs.max_attempts.max(1),
            max_removal_fraction: refresh.max_removal_fraction,
            verify_removals_max: refresh.verify_removals_max,
            delta: DeltaSettings {
                policy: refresh.mode,
                full_every: Duration::from_secs(refresh.full_every_secs),
                overlap: Duration::from_secs(refresh.delta_overlap_secs),
                watermark_max_age: Duration::from_secs(refresh.watermark_max_age_secs),
            },
            collections_recheck: Duration::from_secs(refresh.collections_recheck_secs),
        }
    }
}

/// What a refresh did.
#[derive(Debug, Clone, Default)]
pub struct RefreshReport {
    pub merchant_id: i64,
    pub refresh_id: i64,
    /// Offers (or collections) read from Violet.
    pub seen: u64,
    /// Rows inserted or rewritten (unchanged ones are skipped).
    pub upserted: u64,
    /// Rows marked removed (full refreshes only).
    pub removed: u64,
    /// Removals held for agreement (full refreshes only; see `removals`).
    pub held: u64,
    /// Collection membership rows added plus removed (collections refreshes).
    pub membership_changes: u64,
    /// The merchant's catalog version after the refresh.
    pub catalog_version: i64,
    /// The change-log row written, when something changed.
    pub change_no: Option<i64>,
    /// Pending webhook events the refresh covered.
    pub folded: u64,
    /// The whole refresh, and of it the publishing transaction.
    pub elapsed: Duration,
    pub publish: Duration,
}

/// The mirror: a pool, a Violet client, settings, the progress of its refreshes and
/// the lease of the job claim it runs for, if any. Cheap to clone; clones share the
/// progress registry.
#[derive(Debug, Clone)]
pub struct Mirror {
    pool: PgPool,
    client: VioletClient,
    settings: MirrorSettings,
    lease: Option<Lease>,
    progress: RefreshProgress,
}

impl Mirror {
    pub fn new(pool: PgPool, client: VioletClient, settings: MirrorSettings) -> Self {
        Self {
            progress: RefreshProgress::new(pool.clone(), client.clone()),
            pool,
            client,
            settings,
            lease: None,
        }
    }

    /// This mirror working for one job claim: every publishing transaction first
    /// proves the claim still holds its job ([`Lease::hold`]), so a copy that lost its
    /// lease publishes nothing. Without a lease (tools, tests) nothing is fenced.
    pub fn fenced(&self, lease: Lease) -> Self {
        Self {
            lease: Some(lease),
            ..self.clone()
        }
    }

    /// In a publishing transaction: fails unless this mirror's claim (if any) still
    /// holds its job, and keeps the job row locked until commit.
    pub(crate) async fn hold_lease(&self, conn: &mut sqlx::PgConnection) -> anyhow::Result<()> {
        match &self.lease {
            Some(lease) => lease.hold(conn).await,
            None => Ok(()),
        }
    }

    /// What this mirror's refreshes have done so far (shared with the admin side).
    pub fn progress(&self) -> &RefreshProgress {
        &self.progress
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn settings(&self) -> &MirrorSettings {
        &self.settings
    }
}

/// Stops the fetching task when the refresh returns early (error or cancellation).
type Fetcher = tokio_util::task::AbortOnDropHandle<()>;
