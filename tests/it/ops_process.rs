//! Operations of the real binary (`catalog-mirror serve`) as systemd runs it, against
//! the sandbox:
//! - its logs over a whole run (JSON, debug level) hold none of the configured secrets
//!   nor the Violet tokens the sandbox issued (invariant 7), and no SQL: slow
//!   statements are logged by name;
//! - SIGTERM during a slow refresh exits 0 within the drain, the job done or back in
//!   the queue with its attempt given back, and a second daemon finishes it (invariant 6).

use crate::common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use catalog_mirror::sandbox::{
    DeliveryFaults, MerchantSpec, Sandbox, SandboxConfig, Scenario, ScenarioOptions,
};
use catalog_mirror::violet::signature;
use common::daemon::Daemon;
use common::{TestDb, eventually};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool};

fn sandbox_config(merchant: u64, offers: u64) -> SandboxConfig {
    SandboxConfig {
        seed: merchant,
        merchants: vec![MerchantSpec {
            id: merchant,
            name: "Process Goods".into(),
            offers,
            collections: 2,
        }],
        ..Default::default()
    }
}

async fn start_sandbox(config: SandboxConfig) -> Sandbox {
    Sandbox::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn onboard(sandbox: &Sandbox, merchant: u64, daemon: &Daemon) {
    let report = sandbox
        .play(
            Scenario::Onboarding,
            merchant,
            &daemon.url("/webhooks/violet"),
            DeliveryFaults::default(),
            &ScenarioOptions {
                seed: 1,
                max_offer_events: Some(5),
            },
        )
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
}

async fn live_offers(pool: &PgPool, merchant: u64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM offers WHERE merchant_id = $1 AND removed_at IS NULL")
        .bind(merchant as i64)
        .fetch_one(pool)
        .await
        .unwrap()
}

// Distinctive values, so that any appearance in the output is a leak.
const APP_SECRET: &str = "appsecret-Qv7Xk3LmZw41";
const VIOLET_PASSWORD: &str = "violetpass-R2d8Hq1WnB";
const EXTRA_SECRET: &str = "rotatedsecret-T5y6U7i8O9";
const ADMIN_TOKEN: &str = "admintoken-P0o9I8u7Y6t5";
const SEARCH_KEY: &str = "searchkey-A1s2D3f4G5h6";
const DB_PASSWORD: &str = "dbpassword-Z9x8C7v6B5n4";
/// The base64url JWT header of every access token the sandbox issues.
const JWT_HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// A role with a password owning a fresh database; dropped by [`OwnedDb::drop_all`].
struct OwnedDb {
    role: String,
    name: String,
    url: String,
}

impl OwnedDb {
    async fn create() -> OwnedDb {
        let suffix = format!("{:012x}", rand::random::<u64>() >> 16);
        let (role, name) = (format!("cm_ops_{suffix}"), format!("cm_test_ops_{suffix}"));
        let mut conn = PgConnection::connect(&common::server_url()).await.unwrap();
        for statement in [
            format!("CREATE ROLE {role} LOGIN PASSWORD '{DB_PASSWORD}'"),
            format!("CREATE DATABASE {name} OWNER {role}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        let mut url = url::Url::parse(&common::server_url()).unwrap();
        url.set_username(&role).unwrap();
        url.set_password(Some(DB_PASSWORD)).unwrap();
        url.set_path(&format!("/{name}"));
        OwnedDb {
            role,
            name,
            url: url.to_string(),
        }
    }

    async fn drop_all(self) {
        let mut conn = PgConnection::connect(&common::server_url()).await.unwrap();
        for statement in [
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            format!("DROP ROLE IF EXISTS {}", self.role),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_run_logs_no_secrets() {
    const MERCHANT: u64 = 4201;
    let db = OwnedDb::create().await;
    let sandbox = start_sandbox(SandboxConfig {
        app_secret: APP_SECRET.into(),
        username: "ops@example.com".into(),
        password: VIOLET_PASSWORD.into(),
        ..sandbox_config(MERCHANT, 150)
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        toml_config(&[
            ("database", "url", json!(db.url)),
            ("http", "public_addr", json!("127.0.0.1:0")),
            ("http", "admin_addr", json!("127.0.0.1:0")),
            ("webhooks", "extra_secrets", json!([EXTRA_SECRET])),
            ("violet", "base_url", json!(sandbox.base_url())),
            ("violet", "app_secret", json!(APP_SECRET)),
            ("violet", "username", json!("ops@example.com")),
            ("violet", "password", json!(VIOLET_PASSWORD)),
            ("jobs", "debounce_ms", json!(200)),
            ("jobs", "poll_interval_ms", json!(100)),
            ("search", "index_dir", json!(dir.path().join("index"))),
            ("search", "api_key", json!(SEARCH_KEY)),
            ("admin", "token", json!(ADMIN_TOKEN)),
            // Every statement is "slow": each is logged, by name, never its SQL.
            ("database", "slow_statement_ms", json!(1)),
        ]),
    )
    .unwrap();
    let mut daemon = Daemon::spawn(Some(&config), &[("RUST_LOG", "debug".into())]);
    let http = reqwest::Client::new();
    let pool = common_pool(&db.url).await;

    // Webhooks signed with the app secret (a whole onboarding) and the rotated one.
    onboard(&sandbox, MERCHANT, &daemon).await;
    let body = serde_json::to_vec(&json!({ "id": MERCHANT, "name": "Process Goods" })).unwrap();
    let rotated = http
        .post(daemon.url("/webhooks/violet"))
        .header("X-Violet-Event-Id", "ops-rotated-1")
        .header("X-Violet-Topic", "MERCHANT_CONNECTED")
        .header("X-Violet-Merchant-Id", MERCHANT.to_string())
        .header("X-Violet-Hmac", signature::sign(EXTRA_SECRET, &body))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    let forged = http
        .post(daemon.url("/webhooks/violet"))
        .header("X-Violet-Event-Id", "ops-forged-1")
        .header("X-Violet-Topic", "MERCHANT_CONNECTED")
        .header("X-Violet-Hmac", signature::sign("not-the-secret", &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);

    // The refresh logs in with the password and pages through the catalog.
    let offers = sandbox.catalog().offer_count(MERCHANT) as i64;
    assert!(
        eventually(Duration::from_secs(90), || async {
            live_offers(&pool, MERCHANT).await == offers
        })
        .await,
        "the refresh completes:\n{}",
        daemon.output()
    );

    // Admin calls with the token (API and page login), one with a wrong token; a resync
    // after the sandbox expired every token, so the client renews with its refresh token.
    sandbox.expire_tokens();
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    for path in ["/api/merchants", "/api/jobs", "/api/events?limit=5"] {
        let response = http
            .get(daemon.admin_url(path))
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let resync = http
        .post(daemon.admin_url("/api/resync"))
        .header("authorization", &bearer)
        .json(&json!({ "merchant_id": MERCHANT, "kind": "products" }))
        .send()
        .await
        .unwrap();
    assert!(
        resync.status().is_success(),
        "{}",
        resync.text().await.unwrap()
    );
    let wrong = http
        .get(daemon.admin_url("/api/merchants"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let login = http
        .post(daemon.admin_url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert!(login.status().is_success() || login.status().is_redirection());
    let refreshes_done = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM jobs WHERE kind = 'refresh_products' AND state = 'done'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    assert!(
        eventually(Duration::from_secs(90), || async {
            refreshes_done().await >= 2
        })
        .await,
        "the resync runs after the tokens expired:\n{}",
        daemon.output()
    );
    assert!(sandbox.stats().refreshes + sandbox.stats().logins >= 2);

    // Searches with the key; one without it is refused.
    assert!(
        eventually(Duration::from_secs(30), || async {
            let response = http
                .post(daemon.url("/indexes/offers/search"))
                .header("authorization", format!("Bearer {SEARCH_KEY}"))
                .json(&json!({ "q": "", "limit": 2 }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.unwrap();
            body["hits"].as_array().is_some_and(|hits| !hits.is_empty())
        })
        .await
    );
    let anonymous = http
        .post(daemon.url("/indexes/offers/search"))
        .json(&json!({ "q": "" }))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    daemon.terminate();
    let status = daemon.wait(Duration::from_secs(60)).await;
    assert!(status.is_some_and(|status| status.success()), "{status:?}");
    let output = daemon.output();

    // The capture is the real thing: JSON lines at debug level over the whole run.
    let lines: Vec<&str> = output.lines().collect();
    assert!(lines.len() > 50, "{output}");
    assert!(
        lines
            .iter()
            .all(|line| serde_json::from_str::<Value>(line).is_ok()),
        "{output}"
    );
    for expected in [
        "\"level\":\"DEBUG\"",
        "products refreshed",
        "webhook refused: bad signature",
        "stopped",
    ] {
        assert!(output.contains(expected), "no {expected} in the logs");
    }
    // What a handler logs carries its request's span: listener, method and path.
    let refused = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["message"] == "webhook refused: bad signature")
        .expect("the forged delivery is logged");
    assert_eq!(
        refused["span"],
        json!({"name": "request", "listener": "public", "method": "POST", "path": "/webhooks/violet"}),
        "{refused}"
    );
    let secrets = [
        ("violet.app_secret", APP_SECRET),
        ("violet.password", VIOLET_PASSWORD),
        ("webhooks.extra_secrets", EXTRA_SECRET),
        ("admin.token", ADMIN_TOKEN),
        ("search.api_key", SEARCH_KEY),
        ("database password", DB_PASSWORD),
        ("a Violet access token", JWT_HEADER),
    ];
    for (what, secret) in secrets {
        let leaks: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|line| line.contains(secret))
            .collect();
        assert!(
            leaks.is_empty(),
            "{what} appears in the logs:\n{}",
            leaks.join("\n")
        );
    }
    // Slow statements: one JSON line each with a name and a duration, no SQL text.
    let slow: Vec<Value> = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == "slow statement")
        .collect();
    assert!(slow.len() >= 10, "{output}");
    // Where they ran: the refresh's statements inside its job span.
    assert!(
        slow.iter().any(|line| line["within"]
            .as_str()
            .is_some_and(|w| w.contains("refresh_products"))),
        "{output}"
    );
    assert!(slow.iter().all(|line| line["statement"].is_string()
        && line["elapsed_ms"].is_u64()
        && line["target"] == "catalog_mirror::db"));
    for marker in [
        "SELECT ",
        "INSERT INTO",
        "UPDATE ",
        " FROM ",
        " WHERE ",
        "exceeded alert threshold",
    ] {
        let sql: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|line| line.contains(marker))
            .collect();
        assert!(sql.is_empty(), "SQL in the logs:\n{}", sql.join("\n"));
    }
    let refresh_tokens: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|line| has_refresh_token(line))
        .collect();
    assert!(
        refresh_tokens.is_empty(),
        "a Violet refresh token appears in the logs:\n{}",
        refresh_tokens.join("\n")
    );

    pool.close().await;
    drop(daemon);
    db.drop_all().await;
}

/// The sandbox's refresh tokens are `rt_` and 32 hex digits.
fn has_refresh_token(line: &str) -> bool {
    line.match_indices("rt_").any(|(at, _)| {
        let rest = &line[at + 3..];
        rest.len() >= 32 && rest[..32].chars().all(|c| c.is_ascii_hexdigit())
    })
}

/// A TOML file from (section, key, value) triples.
fn toml_config(entries: &[(&str, &str, Value)]) -> String {
    let mut sections: Vec<(&str, Vec<String>)> = Vec::new();
    for (section, key, value) in entries {
        let line = format!("{key} = {value}");
        match sections.iter_mut().find(|(name, _)| name == section) {
            Some((_, lines)) => lines.push(line),
            None => sections.push((section, vec![line])),
        }
    }
    sections
        .into_iter()
        .map(|(name, lines)| format!("[{name}]\n{}\n", lines.join("\n")))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn common_pool(url: &str) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_refresh_drains_and_loses_nothing() {
    const MERCHANT: u64 = 4301;
    const DRAIN_SECS: u64 = 2;
    let db = TestDb::empty().await;
    let sandbox = start_sandbox(sandbox_config(MERCHANT, 3_000)).await;
    // 30 pages at 300 ms each: the refresh takes far longer than the drain.
    sandbox.set_knobs(|knobs| knobs.latency = Duration::from_millis(300));
    let index = tempfile::tempdir().unwrap();
    let env = |index_dir: &Path| {
        vec![
            ("DATABASE_URL", db.url.clone()),
            ("CATALOG_MIRROR_HTTP__PUBLIC_ADDR", "127.0.0.1:0".into()),
            ("CATALOG_MIRROR_HTTP__ADMIN_ADDR", "127.0.0.1:0".into()),
            ("CATALOG_MIRROR_VIOLET__BASE_URL", sandbox.base_url()),
            ("CATALOG_MIRROR_JOBS__DEBOUNCE_MS", "200".into()),
            ("CATALOG_MIRROR_JOBS__POLL_INTERVAL_MS", "100".into()),
            ("CATALOG_MIRROR_JOBS__DRAIN_SECS", DRAIN_SECS.to_string()),
            (
                "CATALOG_MIRROR_SEARCH__INDEX_DIR",
                index_dir.display().to_string(),
            ),
            ("CATALOG_MIRROR_LOG__FILTER", "info".into()),
        ]
    };
    let mut daemon = Daemon::spawn(None, &env(index.path()));
    let pool = db.pool().await;
    let events_sent = {
        onboard(&sandbox, MERCHANT, &daemon).await;
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM webhook_events")
            .fetch_one(&pool)
            .await
            .unwrap()
    };

    // Wait until the refresh is running and has read a few pages.
    let running = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM jobs WHERE kind = 'refresh_products' AND state = 'running'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
            == 1
    };
    assert!(
        eventually(Duration::from_secs(60), running).await,
        "a refresh starts:\n{}",
        daemon.output()
    );
    let pages_before = sandbox.stats().pages_served;
    assert!(
        eventually(Duration::from_secs(30), || async {
            sandbox.stats().pages_served >= pages_before + 3
        })
        .await
    );

    let signalled = Instant::now();
    daemon.terminate();
    let status = daemon
        .wait(Duration::from_secs(DRAIN_SECS + 8))
        .await
        .unwrap_or_else(|| panic!("still running 10 s after SIGTERM:\n{}", daemon.output()));
    let took = signalled.elapsed();
    assert!(status.success(), "exit {status}:\n{}", daemon.output());
    assert!(took < Duration::from_secs(DRAIN_SECS + 8), "{took:?}");
    let output = daemon.output();
    assert!(
        output.contains("drain time ran out: releasing running jobs"),
        "{output}"
    );
    drop(daemon);

    // Back in the queue with its attempt given back; nothing half-published.
    let jobs: Vec<(String, i32, Option<String>)> = sqlx::query_as(
        "SELECT state, attempts, locked_by FROM jobs WHERE kind = 'refresh_products' AND merchant_id = $1",
    )
    .bind(MERCHANT as i64)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let (state, attempts, locked_by) = &jobs[0];
    match state.as_str() {
        "pending" => {
            assert_eq!(*attempts, 0, "a released job keeps its attempts");
            assert_eq!(*locked_by, None);
            assert_eq!(
                live_offers(&pool, MERCHANT).await,
                0,
                "an interrupted refresh publishes nothing"
            );
        }
        "done" => {}
        other => panic!("the refresh job is {other} after shutdown"),
    }
    let events_after: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        events_after, events_sent,
        "every acknowledged event is still stored"
    );

    // A second daemon completes it: the mirror holds the whole catalog.
    sandbox.set_knobs(|knobs| knobs.latency = Duration::ZERO);
    let mut second = Daemon::spawn(None, &env(index.path()));
    let offers = sandbox.catalog().offer_count(MERCHANT) as i64;
    assert!(
        eventually(Duration::from_secs(120), || async {
            live_offers(&pool, MERCHANT).await == offers
        })
        .await,
        "the second daemon finishes the refresh:\n{}",
        second.output()
    );
    let job = || async {
        sqlx::query_as::<_, (String, i32)>(
            "SELECT state, attempts FROM jobs WHERE kind = 'refresh_products' AND merchant_id = $1",
        )
        .bind(MERCHANT as i64)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    assert!(
        eventually(Duration::from_secs(30), || async {
            job().await.0 == "done"
        })
        .await,
        "the job is recorded done: {:?}",
        job().await
    );
    assert_eq!(
        job().await.1,
        1,
        "one attempt counted: the released one was given back"
    );
    second.terminate();
    assert!(
        second
            .wait(Duration::from_secs(30))
            .await
            .is_some_and(|status| status.success())
    );
}

/// `catalog-mirror check-config` with only `env`: (success, stdout, stderr).
fn check_config(env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_catalog-mirror"));
    command
        .arg("check-config")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_configuration_error_names_the_key_but_not_the_secret_value() {
    for (variable, key, value) in [
        ("CATALOG_MIRROR_ADMIN__TOKEN", "admin.token", "918273645546"),
        ("CATALOG_MIRROR_VIOLET__PASSWORD", "violet.password", "true"),
        (
            "CATALOG_MIRROR_SEARCH__API_KEY",
            "search.api_key",
            "5551234.5",
        ),
    ] {
        let (ok, stdout, stderr) = check_config(&[(variable, value)]);
        assert!(!ok, "{variable}={value} is refused");
        assert!(
            stderr.contains(key) && stderr.contains("expected a string"),
            "{stderr}"
        );
        assert!(
            !stderr.contains(value) && !stdout.contains(value),
            "{stderr}"
        );
    }

    // Quoted, the same value is a valid secret (and still redacted).
    let (ok, stdout, stderr) = check_config(&[("CATALOG_MIRROR_ADMIN__TOKEN", "\"918273645546\"")]);
    assert!(ok, "{stderr}");
    assert!(
        !stdout.contains("918273645546") && stdout.contains("[redacted]"),
        "{stdout}"
    );
}

/// Stops when cancelled, with an error, as a refresh does when the drain runs out.
struct StopsWhenCancelled;

impl catalog_mirror::jobs::JobRunner for StopsWhenCancelled {
    fn run(
        &self,
        _job: catalog_mirror::jobs::Job,
        _lease: catalog_mirror::jobs::Lease,
        cancel: tokio_util::sync::CancellationToken,
    ) -> catalog_mirror::jobs::JobFuture {
        Box::pin(async move {
            cancel.cancelled().await;
            anyhow::bail!("refresh cancelled")
        })
    }

    fn backoff(&self, _job: &catalog_mirror::jobs::Job) -> catalog_mirror::jobs::Backoff {
        catalog_mirror::jobs::Backoff {
            base: Duration::from_secs(60),
            factor: 2.0,
            cap: Duration::from_secs(60),
            jitter: 0.0,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_errors_because_the_drain_cancelled_it_is_released_not_failed() {
    use catalog_mirror::jobs::{NewJob, OnConflict, Queue, WorkerPool};
    use catalog_mirror::work::JobKind;

    let (_db, pool) = TestDb::migrated().await;
    let settings = catalog_mirror::config::JobSettings {
        workers: 4,
        debounce_ms: 0,
        lease_secs: 60,
        max_attempts: 8,
        retry_base_ms: 60_000,
        retry_max_ms: 60_000,
        poll_interval_ms: 50,
        drain_secs: 0,
    };
    // Several rounds of four jobs each: the job's error and the drain's cancellation
    // arrive together, whichever the pool looks at first.
    for round in 0..5i64 {
        let mut conn = pool.acquire().await.unwrap();
        for merchant in 0..4 {
            let job = NewJob {
                kind: JobKind::Incremental {
                    merchant_id: round * 10 + merchant,
                },
                delay: Duration::ZERO,
                max_attempts: 8,
                on_conflict: OnConflict::Debounce,
            };
            Queue::enqueue(&mut conn, &job).await.unwrap();
        }
        drop(conn);
        let workers = Arc::new(WorkerPool::new(
            Queue::new(pool.clone()),
            Arc::new(StopsWhenCancelled),
            settings.clone(),
        ));
        let shutdown = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(workers.run(shutdown.clone()));
        let all_running = eventually(Duration::from_secs(10), || async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM jobs WHERE state = 'running'")
                .fetch_one(&pool)
                .await
                .unwrap()
                == 4
        })
        .await;
        assert!(all_running);
        shutdown.cancel();
        task.await.unwrap();
        let states: Vec<(String, i32)> =
            sqlx::query_as("SELECT state, attempts FROM jobs ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert!(
            states
                .iter()
                .all(|(state, attempts)| state == "pending" && *attempts == 0),
            "round {round}: every job released with its attempt given back: {states:?}"
        );
        sqlx::query("DELETE FROM jobs")
            .execute(&pool)
            .await
            .unwrap();
    }
}
