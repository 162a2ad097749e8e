//! The application's job runner: dispatches each job kind to the code that does it.
//!
//! Refreshes (products, collections, failed-sync retries) run through the catalog
//! mirror, at most `refresh.concurrency` at once across merchants (a semaphore here);
//! the queue already runs one job per lane (merchant and tables) at a time. Each job
//! runs with its claim's lease, which the mirror checks in every publishing
//! transaction, and the worker's cancellation token, so a long refresh stops promptly
//! on shutdown or when its lease is lost. A failed-sync retry is absorbed by a pending
//! full refresh of the same merchant and kind (the full refresh reads everything the
//! retry would, and more).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::{NotificationSettings, Settings};
use crate::jobs::{Backoff, Job, JobFuture, JobRunner, Lease, NewJob, OnConflict, Queue};
use crate::lifecycle::{self, PlanningSettings, SyncKind};
use crate::mirror::{Mirror, MirrorSettings};
use crate::violet::VioletClient;
use crate::work::{JobKind, RefreshMode};

#[derive(Clone)]
pub struct AppRunner {
    pool: PgPool,
    notifications: NotificationSettings,
    http: reqwest::Client,
    planning: PlanningSettings,
    job_backoff: Backoff,
    mirror: Mirror,
    refresh_slots: Arc<Semaphore>,
}

impl AppRunner {
    /// A runner with a Violet client built from `settings.violet` (validated settings
    /// always build one).
    pub fn new(pool: PgPool, settings: &Settings) -> Arc<Self> {
        let violet =
            VioletClient::new(&settings.violet).expect("validated violet settings build a client");
        Self::with_client(pool, settings, violet)
    }

    pub fn with_client(pool: PgPool, settings: &Settings, violet: VioletClient) -> Arc<Self> {
        Arc::new(Self {
            notifications: settings.notifications.clone(),
            http: reqwest::Client::new(),
            mirror: Mirror::new(
                pool.clone(),
                violet,
                MirrorSettings::new(&settings.refresh, &settings.jobs),
            ),
            refresh_slots: Arc::new(Semaphore::new(settings.refresh.concurrency.max(1))),
            pool,
            planning: PlanningSettings::new(&settings.jobs, &settings.sync),
            job_backoff: Backoff {
                base: Duration::from_millis(settings.jobs.retry_base_ms),
                factor: 2.0,
                cap: Duration::from_millis(settings.jobs.retry_max_ms),
                jitter: 0.2,
            },
        })
    }

    pub fn mirror(&self) -> &Mirror {
        &self.mirror
    }

    async fn run_kind(
        &self,
        kind: JobKind,
        lease: Lease,
        cancel: CancellationToken,
    ) -> anyhow::Result<()> {
        let span = tracing::info_span!("job", merchant_id = kind.merchant_id(), kind = kind.name());
        let mirror = self.mirror.fenced(lease);
        async move {
            match kind {
                JobKind::StallCheck {
                    merchant_id,
                    sync,
                    sync_id,
                } => self.stall_check(merchant_id, sync, sync_id, lease).await,
                JobKind::RefreshProducts { merchant_id, mode } => {
                    self.refresh(&mirror, merchant_id, SyncKind::Products, mode, &cancel)
                        .await
                }
                JobKind::RefreshCollections { merchant_id, mode } => {
                    self.refresh(&mirror, merchant_id, SyncKind::Collections, mode, &cancel)
                        .await
                }
                JobKind::CollectionMembers { merchant_id } => mirror
                    .refresh_collection_members(merchant_id, &cancel)
                    .await
                    .map(drop),
                // A retry after a failed sync: Violet's copy may be partial, remove nothing.
                JobKind::SyncRetry { merchant_id, sync } => {
                    if let Some(full) = self.pending_full_refresh(merchant_id, sync).await? {
                        tracing::info!(
                            absorbed_by = full,
                            "retry absorbed by the pending full refresh"
                        );
                        return Ok(());
                    }
                    self.refresh(&mirror, merchant_id, sync, RefreshMode::Safe, &cancel)
                        .await
                }
                JobKind::Incremental { merchant_id } => {
                    mirror.apply_pending(merchant_id, &cancel).await.map(drop)
                }
                JobKind::Notify {
                    url, notification, ..
                } => {
                    crate::notify::deliver(&self.http, &self.notifications, &url, &notification)
                        .await
                }
            }
        }
        .instrument(span)
        .await
    }

    /// The pending full refresh of this merchant and kind, if one is queued. A pending
    /// products delta counts: the failure that queued this retry made a full pass due,
    /// so it will run as one (unless a full pass since then already covered it).
    async fn pending_full_refresh(
        &self,
        merchant_id: i64,
        kind: SyncKind,
    ) -> anyhow::Result<Option<i64>> {
        let full = lifecycle::refresh(merchant_id, kind, RefreshMode::Full);
        let delta = lifecycle::refresh(merchant_id, kind, RefreshMode::Delta);
        let pending = Queue::new(self.pool.clone())
            .pending(&full.dedupe_key())
            .await?;
        Ok(pending
            .filter(|job| {
                job.kind::<JobKind>()
                    .is_ok_and(|kind| kind == full || kind == delta)
            })
            .map(|job| job.id))
    }

    /// One refresh, once a refresh slot is free.
    async fn refresh(
        &self,
        mirror: &Mirror,
        merchant_id: i64,
        kind: SyncKind,
        mode: RefreshMode,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        let _slot = tokio::select! {
            slot = self.refresh_slots.clone().acquire_owned() => slot.context("refresh slots closed")?,
            _ = cancel.cancelled() => anyhow::bail!("cancelled while waiting for a refresh slot"),
        };
        match kind {
            SyncKind::Products => mirror.refresh_products(merchant_id, mode, cancel).await,
            SyncKind::Collections => mirror.refresh_collections(merchant_id, mode, cancel).await,
        }
        .map(drop)
    }

    /// A STARTED got no end in time: mark the sync stalled, alert, and schedule a safe
    /// refresh plus the events held during the window.
    async fn stall_check(
        &self,
        merchant_id: i64,
        kind: SyncKind,
        sync_id: Option<String>,
        lease: Lease,
    ) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        lease.hold(&mut tx).await?;
        if lifecycle::mark_stalled(&mut tx, merchant_id, kind, sync_id.as_deref()).await? {
            metrics::counter!("catalog_mirror_sync_stalled_total", "kind" => kind.as_str())
                .increment(1);
            tracing::error!(
                merchant_id,
                kind = kind.as_str(),
                sync_id,
                "sync stalled: no end within the timeout"
            );
            crate::notify::sync_state_changed(&mut tx, merchant_id, kind, "stalled").await?;
            if kind == SyncKind::Products {
                crate::mirror::delta::require_full_pass(
                    &mut tx,
                    merchant_id,
                    "a products sync stalled",
                )
                .await?;
            }
            for job in [
                lifecycle::refresh(merchant_id, kind, RefreshMode::Safe),
                JobKind::Incremental { merchant_id },
            ] {
                Queue::enqueue(
                    &mut tx,
                    &NewJob {
                        kind: job,
                        delay: Duration::ZERO,
                        max_attempts: self.planning.job_max_attempts,
                        on_conflict: OnConflict::KeepEarlier,
                    },
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

impl JobRunner for AppRunner {
    fn run(&self, job: Job, lease: Lease, cancel: CancellationToken) -> JobFuture {
        let kind = job.kind();
        let this = self.clone();
        Box::pin(async move {
            let kind = kind.map_err(|err| {
                anyhow::anyhow!("job payload does not describe a known kind: {err}")
            })?;
            this.run_kind(kind, lease, cancel).await
        })
    }

    fn backoff(&self, job: &Job) -> Backoff {
        if job.kind == "sync_retry" {
            self.planning.retry
        } else {
            self.job_backoff
        }
    }

    fn on_dead(&self, job: Job, _error: String) -> JobFuture {
        let pool = self.pool.clone();
        Box::pin(async move {
            if let Ok(JobKind::SyncRetry { merchant_id, sync }) = job.kind() {
                let mut conn = pool.acquire().await?;
                lifecycle::mark_needs_attention(&mut conn, merchant_id, sync).await?;
            }
            Ok(())
        })
    }
}
