//! PostgreSQL: the connection pool, creating the database when it is missing, and
//! migrations applied under an advisory lock so instances starting together never race.

use anyhow::Context;
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool, Postgres};

use crate::config::DatabaseSettings;

/// The schema, embedded at build time from `migrations/`.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Key of the advisory lock held while migrating ("catalog-mirror" folded into an i64).
const MIGRATION_LOCK_KEY: i64 = 0x6361_7461_6c6f_676d;

/// A pool for `settings`; connections are made lazily, so a daemon can start while the
/// database is down and recover when it is back.
pub fn pool(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = settings
        .url
        .expose()
        .parse()
        .context("database.url is not a valid PostgreSQL URL")?;
    // Every statement at trace (debugging only). Slow ones at warn, which the log
    // subscriber turns into one line with a name and a duration, never the SQL text
    // (`crate::telemetry::slow_statements`).
    let slow = match settings.slow_statement() {
        Some(threshold) => (tracing::log::LevelFilter::Warn, threshold),
        None => (tracing::log::LevelFilter::Off, std::time::Duration::ZERO),
    };
    let options = options
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(slow.0, slow.1);
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(settings.min_connections)
        .acquire_timeout(settings.acquire_timeout())
        // A broken connection shows up as a query error (503, Violet retries); pinging
        // before every use would add a round trip to each delivery.
        .test_before_acquire(false)
        .connect_lazy_with(options))
}

/// `host:port` of the server in `database.url` (None for a Unix socket URL).
pub fn server_address(settings: &DatabaseSettings) -> Option<String> {
    let url = url::Url::parse(settings.url.expose()).ok()?;
    let host = url.host_str().filter(|h| !h.is_empty())?;
    Some(format!("{host}:{}", url.port().unwrap_or(5432)))
}

/// What a database error means to a caller choosing its answer. One classification
/// for every surface (the webhook intake, the admin API, startup); each keeps its own
/// answer and wire shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server cannot be reached: the connection or TLS failed, or the pool closed.
    Unreachable,
    /// No connection became free in time: the server is down, or only saturated by a
    /// burst. [`server_answers`] tells the two apart where it matters.
    PoolTimedOut,
    /// A statement failed on a live connection.
    Statement,
}

impl Failure {
    pub fn of(err: &sqlx::Error) -> Failure {
        match err {
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => {
                Failure::Unreachable
            }
            sqlx::Error::PoolTimedOut => Failure::PoolTimedOut,
            _ => Failure::Statement,
        }
    }

    /// Whether the database may be unreachable (anything but a failed statement).
    pub fn is_connectivity(self) -> bool {
        self != Failure::Statement
    }
}

/// Whether the server at `addr` (`host:port`, from [`server_address`]) accepts a TCP
/// connection within 200 ms: settles a [`Failure::PoolTimedOut`].
pub async fn server_answers(addr: &str) -> bool {
    let probe = tokio::net::TcpStream::connect(addr);
    matches!(
        tokio::time::timeout(std::time::Duration::from_millis(200), probe).await,
        Ok(Ok(_))
    )
}

/// Creates the database named in `url` when it does not exist. Two processes doing
/// this at once is fine: losing the race to `CREATE DATABASE` is not an error.
pub async fn create_database_if_missing(url: &str) -> anyhow::Result<()> {
    if Postgres::database_exists(url)
        .await
        .context("cannot reach PostgreSQL to check that the database exists")?
    {
        return Ok(());
    }
    match Postgres::create_database(url).await {
        Ok(()) => {
            tracing::info!("created the database");
            Ok(())
        }
        Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some("42P04") => Ok(()),
        Err(err) => Err(anyhow::Error::new(err).context(
            "the database does not exist and cannot be created (does the role have CREATEDB?)",
        )),
    }
}

/// Applies pending migrations while holding a session advisory lock, so a second
/// instance waits and then finds nothing to do.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    let mut conn = pool
        .acquire()
        .await
        .context("cannot connect to PostgreSQL")?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK_KEY)
        .execute(&mut *conn)
        .await
        .context("cannot take the migration lock")?;
    let result = MIGRATOR.run(&mut *conn).await;
    let unlock = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK_KEY)
        .execute(&mut *conn)
        .await;
    result.context("migration failed")?;
    unlock.context("cannot release the migration lock")?;
    Ok(())
}

/// Creates the database if allowed and missing, connects, and migrates.
pub async fn prepare(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    if settings.create_if_missing {
        create_database_if_missing(settings.url.expose()).await?;
    }
    let pool = pool(settings)?;
    migrate(&pool).await?;
    Ok(pool)
}

/// True when every embedded migration is applied (readiness).
pub async fn migrations_current(pool: &PgPool) -> anyhow::Result<bool> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await?;
    Ok(MIGRATOR
        .iter()
        .all(|migration| applied.contains(&migration.version)))
}
