//! The application's job runner: dispatches each job kind to the code that does it.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::jobs::{Backoff, Job, JobFuture, JobKind, JobRunner, NewJob, OnConflict, Queue, RefreshMode};
use crate::sync::{self, PlanningSettings, SyncKind};

pub struct AppRunner {
    pool: PgPool,
    planning: PlanningSettings,
    job_backoff: Backoff,
}

impl AppRunner {
    pub fn new(pool: PgPool, settings: &Settings) -> Arc<Self> {
        Arc::new(Self {
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

    async fn run_kind(&self, kind: JobKind, _cancel: CancellationToken) -> anyhow::Result<()> {
        match kind {
            JobKind::StallCheck {
                merchant_id,
                sync,
                sync_id,
            } => self.stall_check(merchant_id, sync, sync_id).await,
            JobKind::RefreshProducts { .. }
            | JobKind::RefreshCollections { .. }
            | JobKind::Incremental { .. }
            | JobKind::SyncRetry { .. } => {
                anyhow::bail!("{} jobs are not handled by this build", kind.name())
            }
        }
    }

    /// A STARTED got no end in time: mark the sync stalled, alert, and schedule a safe
    /// refresh plus the events held during the window.
    async fn stall_check(&self, merchant_id: i64, kind: SyncKind, sync_id: Option<String>) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        if sync::mark_stalled(&mut tx, merchant_id, kind, sync_id.as_deref()).await? {
            metrics::counter!("catalog_mirror_sync_stalled_total", "kind" => kind.as_str()).increment(1);
            tracing::error!(merchant_id, kind = kind.as_str(), sync_id, "sync stalled: no end within the timeout");
            for job in [sync::refresh(merchant_id, kind, RefreshMode::Safe), JobKind::Incremental { merchant_id }] {
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
    fn run(&self, job: Job, cancel: CancellationToken) -> JobFuture {
        let kind = job.kind();
        let this = AppRunner {
            pool: self.pool.clone(),
            planning: self.planning.clone(),
            job_backoff: self.job_backoff,
        };
        Box::pin(async move {
            let kind = kind.map_err(|err| anyhow::anyhow!("job payload does not describe a known kind: {err}"))?;
            this.run_kind(kind, cancel).await
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
                sync::mark_needs_attention(&mut conn, merchant_id, sync).await?;
            }
            Ok(())
        })
    }
}
