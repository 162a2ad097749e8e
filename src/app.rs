//! Wiring: builds the daemon from settings, binds its listeners, runs it until the
//! shutdown token is cancelled, then drains.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::http::{self, AppState};
use crate::intake::{BatchSettings, Writers};
use crate::jobs::{Queue, WorkerPool};
use crate::notify::Notifier;
use crate::runner::AppRunner;
use crate::sync::{Planner, PlanningSettings};
use crate::violet::VioletClient;

/// A built daemon: listeners bound (port 0 gives a free port in tests), not yet serving.
pub struct Application {
    settings: Settings,
    pool: PgPool,
    public: TcpListener,
    public_addr: SocketAddr,
    admin: TcpListener,
    admin_addr: SocketAddr,
}

impl Application {
    /// Prepares the database (create if allowed, migrate) and binds the listeners.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        // Loading validated this already; settings built in code must not skip it.
        settings.refuse_published_secrets()?;
        crate::telemetry::install_metrics();
        let pool = prepare_database(&settings).await?;
        let public = TcpListener::bind(settings.http.public_addr)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on http.public_addr {}",
                    settings.http.public_addr
                )
            })?;
        let public_addr = public.local_addr()?;
        let admin = TcpListener::bind(settings.http.admin_addr)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on http.admin_addr {}",
                    settings.http.admin_addr
                )
            })?;
        let admin_addr = admin.local_addr()?;
        Ok(Application {
            settings,
            pool,
            public,
            public_addr,
            admin,
            admin_addr,
        })
    }

    pub fn public_addr(&self) -> SocketAddr {
        self.public_addr
    }

    /// The admin listener: admin API, admin page, `/metrics`.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Serves until `shutdown` is cancelled: intake stops first, then jobs drain.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let settings = &self.settings;
        let planner = Arc::new(Planner::new(PlanningSettings::new(
            &settings.jobs,
            &settings.sync,
        )));
        let admin_index = crate::admin::IndexDir::new(
            self.pool.clone(),
            settings.search.index_dir.clone(),
            shutdown.clone(),
        );
        let indexer_shutdown = CancellationToken::new();
        let (search_routes, indexer_task, search_index) =
            crate::search::start(settings, self.pool.clone(), indexer_shutdown.clone()).await?;
        let notifier = Notifier::new(
            self.pool.clone(),
            settings.notifications.clone(),
            settings.search.api_key.clone(),
        );
        tokio::spawn(crate::notify::forward_sync_changes(
            notifier.clone(),
            indexer_shutdown.clone(),
        ));
        tokio::spawn(crate::notify::announce_catalogs(
            notifier.clone(),
            search_index.subscribe_commits(),
            indexer_shutdown.clone(),
        ));
        let intake_timeout = settings.database.acquire_timeout() + Duration::from_millis(150);
        // Stopped by the shutdown token like the listener, so intake stops first; the
        // writers answer what they hold before they stop.
        let (intake, intake_writers) = Writers::spawn(
            self.pool.clone(),
            planner.clone(),
            BatchSettings::new(&settings.webhooks, intake_timeout),
            crate::db::server_address(&settings.database),
            shutdown.clone(),
        );
        let state = AppState {
            pool: self.pool.clone(),
            intake,
            webhook_secrets: settings.webhooks.accepted_secrets(&settings.violet).into(),
            intake_timeout,
            search_index: search_index.clone(),
            ready_max_lag_changes: settings.search.ready_max_lag_changes,
            webhook_bodies: Arc::new(tokio::sync::Semaphore::new(
                settings.webhooks.max_bodies_in_flight,
            )),
        };
        crate::gauges::spawn(
            self.pool.clone(),
            search_index.clone(),
            Duration::from_millis(settings.admin.metrics_sample_ms),
            shutdown.clone(),
        );
        let router = http::public_router(state, settings.webhooks.body_limit_bytes, search_routes)
            .merge(crate::notify::router(notifier, shutdown.clone()));

        let violet =
            VioletClient::new(&settings.violet).context("cannot build the Violet client")?;
        let runner = AppRunner::with_client(self.pool.clone(), settings, violet);
        // The admin side reads the progress of the refreshes this runner's mirror runs.
        let admin_router = crate::admin::router(
            crate::admin::AdminState::new(self.pool.clone(), planner.clone(), settings)
                .with_index(Arc::new(admin_index))
                .with_progress(runner.mirror().progress().clone()),
        );
        let workers = Arc::new(WorkerPool::new(
            Queue::new(self.pool.clone()),
            runner,
            settings.jobs.clone(),
        ));
        let jobs_shutdown = CancellationToken::new();
        let worker_task = tokio::spawn(workers.run(jobs_shutdown.clone()));

        let admin_shutdown = shutdown.clone();
        let admin_task = tokio::spawn(
            axum::serve(self.admin, admin_router)
                .with_graceful_shutdown(async move { admin_shutdown.cancelled().await })
                .into_future(),
        );
        tracing::info!(addr = %self.admin_addr, enabled = !settings.admin.token.is_empty(), "admin listener ready");
        tracing::info!(addr = %self.public_addr, "public listener ready");
        crate::systemd::ready();
        crate::systemd::spawn_watchdog(shutdown.clone());
        let intake_shutdown = shutdown.clone();
        let public = http::GuardedListener::new(
            self.public,
            settings.http.write_stall_timeout(),
            settings.http.idle_timeout(),
        );
        axum::serve(public, router)
            .with_graceful_shutdown(async move {
                intake_shutdown.cancelled().await;
                crate::systemd::stopping();
            })
            .await
            .context("public listener failed")?;
        intake_writers.stopped().await;
        match admin_task.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "admin listener failed"),
            Err(err) => tracing::warn!(error = %err, "admin listener task failed"),
        }
        tracing::info!("intake stopped; draining jobs");
        jobs_shutdown.cancel();
        indexer_shutdown.cancel();
        let _ = worker_task.await;
        let _ = indexer_task.await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Retries until the database answers, so a daemon started before PostgreSQL waits for it
/// (systemd ordering is not always enough), unless shutdown comes first.
async fn prepare_database(settings: &Settings) -> anyhow::Result<PgPool> {
    let mut delay = Duration::from_millis(250);
    loop {
        match crate::db::prepare(&settings.database).await {
            Ok(pool) => return Ok(pool),
            Err(err) if is_unreachable(&err) => {
                tracing::warn!(
                    error = format!("{err:#}"),
                    retry_in_ms = delay.as_millis() as u64,
                    "database unreachable at start"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(err) => return Err(err),
        }
    }
}

fn is_unreachable(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<sqlx::Error>(),
            Some(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
        )
    })
}

/// `catalog-mirror serve`.
pub async fn serve(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let app = tokio::select! {
        app = Application::build(settings) => app?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    app.run_until_stopped(shutdown).await
}
