//! Shared test support: a fresh PostgreSQL database per test, settings pointing at it,
//! and a daemon spawned on free ports (`TestApp::builder()`).

pub mod daemon;
pub mod demo;
pub mod proxy;
pub mod violet;
pub mod webhook;

use std::net::SocketAddr;
use std::time::Duration;

use catalog_mirror::app::Application;
use catalog_mirror::config::{ConfigSource, Secret, Settings};
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

/// Server used for test databases; `scripts/test` sets it, this is the same default.
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into())
}

/// A database created for one test and dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// Creates an empty database (not migrated).
    pub async fn empty() -> TestDb {
        let name = format!("cm_test_{:016x}", rand::random::<u64>());
        let mut conn = PgConnection::connect(&server_url())
            .await
            .expect("connect to the test server");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let url = with_database(&server_url(), &name);
        TestDb { name, url }
    }

    /// Creates a database and applies the migrations.
    pub async fn migrated() -> (TestDb, PgPool) {
        let db = TestDb::empty().await;
        let pool = db.pool().await;
        catalog_mirror::db::migrate(&pool).await.expect("migrate");
        (db, pool)
    }

    pub async fn pool(&self) -> PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&self.url)
            .await
            .expect("connect to the test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop needs its own runtime: the test's may be shutting down.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&server_url()).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .ok()
            })
        })
        .join();
    }
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, name: &str) -> String {
    let mut url = url::Url::parse(url).expect("valid server url");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Defaults, pointed at `database_url`, listening on free ports, with short timers.
pub fn settings(database_url: &str) -> Settings {
    let mut settings = Settings::load(&ConfigSource::DefaultsOnly).expect("defaults load");
    settings.database.url = Secret::new(database_url);
    settings.database.max_connections = 12;
    settings.database.min_connections = 2;
    // Tests share two cores with compilers and other tests: allow slow moments. The
    // test of the 503-within-a-second promise sets the production value back.
    settings.database.acquire_timeout_ms = 5_000;
    settings.http.public_addr = "127.0.0.1:0".parse().unwrap();
    settings.http.admin_addr = "127.0.0.1:0".parse().unwrap();
    settings.jobs.debounce_ms = 200;
    settings.jobs.poll_interval_ms = 100;
    settings.jobs.retry_base_ms = 50;
    settings.jobs.retry_max_ms = 200;
    settings.search.index_dir =
        std::env::temp_dir().join(format!("cm-index-{:016x}", rand::random::<u64>()));
    settings
}

/// How a test builds its daemon: `TestApp::builder()`, the settings the test changes
/// (`configure`, `sandbox`), then `spawn()` on a new empty database or `spawn_on` the
/// test's own (migrated and seeded first). A restart reuses what it ran with:
/// `TestApp::spawn(app.settings.clone())`.
#[derive(Default)]
pub struct TestAppBuilder {
    changes: Vec<SettingsChange>,
}

/// One change a test makes to its daemon's settings.
type SettingsChange = Box<dyn FnOnce(&mut Settings) + Send>;

impl TestAppBuilder {
    /// Changes the settings after the test defaults ([`settings`]) and the changes given
    /// before.
    pub fn configure(mut self, change: impl FnOnce(&mut Settings) + Send + 'static) -> Self {
        self.changes.push(Box::new(change));
        self
    }

    /// Violet's API is `sandbox`'s.
    pub fn sandbox(self, sandbox: &catalog_mirror::sandbox::Sandbox) -> Self {
        let url = sandbox.base_url();
        self.configure(move |settings| settings.violet.base_url = url)
    }

    /// The settings for a daemon on `database_url`.
    fn settings(self, database_url: &str) -> Settings {
        let mut settings = settings(database_url);
        for change in self.changes {
            change(&mut settings);
        }
        settings
    }

    /// The daemon on a new empty database (the daemon migrates it).
    pub async fn spawn(self) -> (TestDb, TestApp) {
        let db = TestDb::empty().await;
        let app = TestApp::spawn(self.settings(&db.url)).await;
        (db, app)
    }

    /// The daemon on the test's database `db`.
    pub async fn spawn_on(self, db: &TestDb) -> TestApp {
        TestApp::spawn(self.settings(&db.url)).await
    }
}

/// A daemon running in the test's runtime.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The admin listener (admin API, admin page, /metrics).
    pub admin_addr: SocketAddr,
    pub pool: PgPool,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub http: reqwest::Client,
    /// What it runs with (a restart spawns with them again).
    pub settings: Settings,
}

impl TestApp {
    /// See [`TestAppBuilder`].
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    /// A daemon with exactly `settings`: a restart (see [`TestAppBuilder`]).
    pub async fn spawn(settings: Settings) -> TestApp {
        // TEST_LOG=debug (or any filter) shows the daemon's logs while debugging a test.
        if let Ok(filter) = std::env::var("TEST_LOG") {
            catalog_mirror::telemetry::init(&catalog_mirror::config::LogSettings {
                format: catalog_mirror::config::LogFormat::Text,
                filter,
            });
        }
        let app = Application::build(settings.clone())
            .await
            .expect("build app");
        let addr = app.public_addr();
        let admin_addr = app.admin_addr();
        let pool = app.pool().clone();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        TestApp {
            addr,
            admin_addr,
            pool,
            shutdown,
            task,
            http: reqwest::Client::new(),
            settings,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A URL on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin_addr, path)
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

/// Polls `check` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
