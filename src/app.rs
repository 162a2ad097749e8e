//! Wiring: builds the daemon from settings, binds its listeners, runs it until the
//! shutdown token is cancelled, then drains.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::normalize_path::NormalizePath;

use crate::config::Settings;
use crate::http::{self, AppState};
use crate::intake::{BatchSettings, Writers};
use crate::jobs::{Queue, WorkerPool};
use crate::lifecycle::{Planner, PlanningSettings};
use crate::notify::Notifier;
use crate::runner::AppRunner;
use crate::search::{Indexer, SearchIndex, SearchParts, Startup};
use crate::violet::VioletClient;

/// A built daemon: every component constructed and the listeners bound (port 0 gives a
/// free port in tests); nothing runs until [`Application::run_until_stopped`].
pub struct Application {
    settings: Settings,
    pool: PgPool,
    public: TcpListener,
    public_addr: SocketAddr,
    admin: TcpListener,
    admin_addr: SocketAddr,
    public_router: axum::Router,
    admin_router: axum::Router,
    indexer: Indexer,
    index_startup: Startup,
    search_index: Arc<SearchIndex>,
    notifier: Notifier,
    workers: Arc<WorkerPool>,
    /// Intake's writers: started with the listeners, stopped with them.
    intake_writers: Writers,
    /// Every task's token descends from it (see [`Application::run_until_stopped`]).
    root: CancellationToken,
    /// The listeners' child of `root`: cancelled by the shutdown signal, it also ends
    /// the notification streams and an admin-requested rebuild.
    listeners: CancellationToken,
}

/// How long the drain waits for the background tasks (workers, indexer, notifications)
/// once intake has stopped, before it stops waiting and says which did not finish.
const DRAIN_BOUND: Duration = Duration::from_secs(60);

impl Application {
    /// Prepares the database (create if allowed, migrate), builds every component from
    /// `settings` and binds the listeners.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        // Loading validated this already; settings built in code must not skip it.
        settings.refuse_published_secrets()?;
        crate::telemetry::install_metrics();
        let pool = prepare_database(&settings).await?;
        let public = bind(settings.http.public_addr, "http.public_addr").await?;
        let public_addr = public.local_addr()?;
        let admin = bind(settings.http.admin_addr, "http.admin_addr").await?;
        let admin_addr = admin.local_addr()?;

        let root = CancellationToken::new();
        let listeners = root.child_token();
        let planner = Arc::new(Planner::new(PlanningSettings::new(
            &settings.jobs,
            &settings.sync,
        )));
        let SearchParts {
            routes: search_routes,
            index: search_index,
            indexer,
            startup: index_startup,
        } = crate::search::build(&settings, pool.clone()).await?;
        let notifier = Notifier::new(
            pool.clone(),
            settings.notifications.clone(),
            settings.search.api_key.clone(),
        );
        let intake_timeout = settings.database.acquire_timeout() + Duration::from_millis(150);
        let (intake, intake_writers) = Writers::new(
            pool.clone(),
            planner.clone(),
            BatchSettings::new(&settings.webhooks, intake_timeout),
            crate::db::server_address(&settings.database),
        );
        let state = AppState {
            pool: pool.clone(),
            intake,
            webhook_secrets: settings.webhooks.accepted_secrets(&settings.violet).into(),
            intake_timeout,
            search_index: search_index.clone(),
            ready_max_lag_changes: settings.search.ready_max_lag_changes,
            webhook_bodies: Arc::new(tokio::sync::Semaphore::new(
                settings.webhooks.max_bodies_in_flight,
            )),
        };
        let public_router =
            http::public_router(state, settings.webhooks.body_limit_bytes, search_routes)
                .merge(crate::notify::router(notifier.clone(), listeners.clone()));

        let violet =
            VioletClient::new(&settings.violet).context("cannot build the Violet client")?;
        let runner = AppRunner::with_client(pool.clone(), &settings, violet);
        // The admin side reads the progress of the refreshes this runner's mirror runs.
        let admin_index = crate::admin::IndexDir::new(
            pool.clone(),
            settings.search.index_dir.clone(),
            search_index.clone(),
            listeners.clone(),
        );
        let admin_router = crate::admin::router(
            crate::admin::AdminState::new(pool.clone(), planner, &settings)
                .with_index(Arc::new(admin_index))
                .with_progress(runner.mirror().progress().clone()),
        );
        let workers = Arc::new(WorkerPool::new(
            Queue::new(pool.clone()),
            runner,
            settings.jobs.clone(),
        ));
        Ok(Application {
            settings,
            pool,
            public,
            public_addr,
            admin,
            admin_addr,
            public_router,
            admin_router,
            indexer,
            index_startup,
            search_index,
            notifier,
            workers,
            intake_writers,
            root,
            listeners,
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

    /// The index searches read (its change number is what `/readyz` and admin report).
    pub fn search_index(&self) -> &Arc<SearchIndex> {
        &self.search_index
    }

    /// Serves until `shutdown` is cancelled: intake stops first, then jobs drain.
    ///
    /// One root token has two children: the listeners' (cancelled by `shutdown`) and
    /// the background's (workers, indexer, notifications, gauges, watchdog), cancelled
    /// with the root once the public listener has stopped, so work accepted before the
    /// stop is still done. Every task is tracked, and the drain waits for them at most
    /// [`DRAIN_BOUND`].
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        // Moved out field by field: each part goes to the task that runs it.
        let (settings, root, listeners) = (self.settings, self.root, self.listeners);
        let background = root.child_token();
        let tasks = TaskTracker::new();

        tasks.spawn(
            self.indexer
                .run(Some(self.index_startup), background.clone()),
        );
        tasks.spawn(crate::notify::forward_sync_changes(
            self.notifier.clone(),
            background.clone(),
        ));
        tasks.spawn(crate::notify::announce_catalogs(
            self.notifier,
            self.search_index.subscribe_commits(),
            background.clone(),
        ));
        tasks.spawn(crate::gauges::run(
            self.pool,
            self.search_index,
            Duration::from_millis(settings.admin.metrics_sample_ms),
            background.clone(),
        ));
        tasks.spawn(crate::systemd::watchdog(background.clone()));
        tasks.spawn(self.workers.run(background.clone()));

        // Stopped by the listeners' token, so intake stops with the listener; the writers
        // answer what they hold before they stop.
        self.intake_writers.start(listeners.clone());
        let admin_stop = listeners.clone();
        let admin_task = tasks.spawn(
            axum::serve(self.admin, self.admin_router)
                .with_graceful_shutdown(async move { admin_stop.cancelled().await })
                .into_future(),
        );
        tracing::info!(addr = %self.admin_addr, enabled = !settings.admin.token.is_empty(), "admin listener ready");
        tracing::info!(addr = %self.public_addr, "public listener ready");
        crate::systemd::ready();
        let public = http::GuardedListener::new(
            self.public,
            settings.http.write_stall_timeout(),
            settings.http.idle_timeout(),
        );
        // `shutdown` stops the listeners' token, and with it the admin listener, the
        // intake writers and the notification streams, at the moment the public
        // listener starts its graceful stop.
        let stop_listeners = listeners.clone();
        // Meilisearch trims a trailing slash before routing (`NormalizePath::trim` in
        // crates/meilisearch/src/lib.rs, `create_app`), so `/indexes/offers/search/`
        // is the search route; routing happens inside the router, so the trim must
        // wrap it from outside.
        let public_service = axum::ServiceExt::<axum::extract::Request>::into_make_service(
            NormalizePath::trim_trailing_slash(self.public_router),
        );
        let served = axum::serve(public, public_service)
            .with_graceful_shutdown(async move {
                shutdown.cancelled().await;
                stop_listeners.cancel();
                crate::systemd::stopping();
            })
            .await
            .context("public listener failed");
        // An error of the public listener stops the rest as a shutdown would.
        listeners.cancel();
        // Intake stops with the listener: the writers answer what they hold first.
        self.intake_writers.stopped().await;
        match admin_task.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "admin listener failed"),
            Err(err) => tracing::warn!(error = %err, "admin listener task failed"),
        }
        tracing::info!("intake stopped; draining jobs");
        root.cancel();
        tasks.close();
        if tokio::time::timeout(DRAIN_BOUND, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                still_running = tasks.len(),
                bound_secs = DRAIN_BOUND.as_secs(),
                "tasks did not finish within the drain bound; stopping without them"
            );
        }
        served?;
        tracing::info!("stopped");
        Ok(())
    }
}

async fn bind(addr: SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {key} {addr}"))
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

/// Whether starting should wait for the database rather than fail. A TLS failure is
/// fatal here: at startup it is a configuration error, not an outage to wait out.
fn is_unreachable(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<sqlx::Error>().is_some_and(|err| {
            !matches!(err, sqlx::Error::Tls(_)) && crate::db::Failure::of(err).is_connectivity()
        })
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
