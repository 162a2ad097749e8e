//! Shared by the admin tests: a daemon with an admin token, and a seeded history made
//! through real signed webhooks (sync runs, states, events) plus rows the mirror and
//! the queue would write (offers, change log, dead jobs).

pub mod cdp;

use catalog_mirror::config::{Secret, Settings};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::webhook::{Delivery, sync_body};
use crate::common::{TestApp, TestDb, eventually, settings};

pub const TOKEN: &str = "admin-test-token-5f1d2c";
pub const ACME: i64 = 101;
pub const BOLT: i64 = 202;
/// A merchant that was disconnected.
pub const GONE: i64 = 303;

/// The admin tests' settings (a [`TestApp::builder`] change): an admin token, and a
/// Violet address nobody listens on, so refresh jobs fail fast instead of reaching a
/// sandbox someone left running.
pub fn with_admin(settings: &mut Settings) {
    settings.admin.token = Secret::new(TOKEN);
    settings.violet.base_url = "http://127.0.0.1:9/v1".into();
    settings.violet.max_retries = 0;
    // The seeded syncs started hours ago: no stall check may fire during a test.
    settings.sync.stall_timeout_secs = 30 * 24 * 3600;
}

/// [`with_admin`]'s settings on `database_url`.
pub fn admin_settings(database_url: &str) -> Settings {
    let mut settings = settings(database_url);
    with_admin(&mut settings);
    settings
}

pub async fn spawn() -> (TestDb, TestApp) {
    TestApp::builder().configure(with_admin).spawn().await
}

fn violet_date(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S+0000").to_string()
}

/// What [`seed`] made.
pub struct Seed {
    /// A dead job of ACME with a known error.
    pub dead_job: i64,
    /// ACME's last change number.
    pub acme_change_no: i64,
}

/// ACME: a completed products sync of 4 minutes, then one that failed after 1 minute;
/// 3 live offers and 1 removed, catalog version 2, two change-log rows.
/// BOLT: a collections sync started and still running. GONE: connected, then disconnected.
pub async fn seed(app: &TestApp) -> Seed {
    let url = app.url("/webhooks/violet");
    let t0 = Utc::now() - Duration::hours(3);
    let t1 = t0 + Duration::hours(1);
    let sends = [
        Delivery::new("ev-acme-connected", "MERCHANT_CONNECTED", &json!({"id": ACME, "merchant_name": "Acme", "status": "CONNECTED", "date_last_modified": violet_date(t0)})).merchant(ACME),
        Delivery::new("ev-bolt-connected", "MERCHANT_CONNECTED", &json!({"id": BOLT, "merchant_name": "Bolt", "status": "CONNECTED", "date_last_modified": violet_date(t0)})).merchant(BOLT),
        Delivery::new("ev-gone-connected", "MERCHANT_CONNECTED", &json!({"id": GONE, "merchant_name": "Gone", "status": "CONNECTED", "date_last_modified": violet_date(t0)})).merchant(GONE),
        Delivery::new("ev-gone-disconnected", "MERCHANT_DISCONNECTED", &json!({"id": GONE, "merchant_name": "Gone", "status": "DISCONNECTED", "date_last_modified": violet_date(t1)})).merchant(GONE),
        Delivery::new("ev-acme-started-1", "PRODUCT_SYNC_STARTED", &sync_body(9001, ACME, "IN_PROGRESS", &violet_date(t0))).entity("9001").merchant(ACME),
        Delivery::new("ev-acme-completed-1", "PRODUCT_SYNC_COMPLETED", &sync_body(9001, ACME, "COMPLETED", &violet_date(t0 + Duration::minutes(4)))).entity("9001").merchant(ACME),
        Delivery::new("ev-acme-started-2", "PRODUCT_SYNC_STARTED", &sync_body(9002, ACME, "IN_PROGRESS", &violet_date(t1))).entity("9002").merchant(ACME),
        Delivery::new("ev-acme-failed-2", "PRODUCT_SYNC_FAILED", &sync_body(9002, ACME, "FAILED", &violet_date(t1 + Duration::minutes(1)))).entity("9002").merchant(ACME),
        Delivery::new("ev-bolt-started", "COLLECTION_SYNC_STARTED", &sync_body(9100, BOLT, "IN_PROGRESS", &violet_date(t1))).entity("9100").merchant(BOLT),
    ];
    for delivery in &sends {
        let response = delivery.send(&app.http, &url).await;
        assert_eq!(response.status(), 200, "seeding {:?}", delivery.event_id);
    }
    let pool = &app.pool;
    for (offer_id, removed) in [(5001, false), (5002, false), (5003, false), (5004, true)] {
        sqlx::query(
            r#"INSERT INTO offers (offer_id, merchant_id, name, content_hash, raw, removed_at, catalog_version, visible, status, publishing_status)
               VALUES ($1, $2, $3, md5($3), '{}', CASE WHEN $4 THEN now() END, 2, true, 'AVAILABLE', 'PUBLISHED')"#,
        )
        .bind(offer_id)
        .bind(ACME)
        .bind(format!("Offer {offer_id}"))
        .bind(removed)
        .execute(pool)
        .await
        .unwrap();
    }
    sqlx::query("UPDATE merchants SET catalog_version = 2 WHERE merchant_id = $1")
        .bind(ACME)
        .execute(pool)
        .await
        .unwrap();
    let mut acme_change_no = 0;
    for version in [1, 2] {
        acme_change_no = sqlx::query_scalar(
            "INSERT INTO change_log (merchant_id, catalog_version, reason, upserted) VALUES ($1, $2, 'full_refresh', 3) RETURNING change_no",
        )
        .bind(ACME)
        .bind(version)
        .fetch_one(pool)
        .await
        .unwrap();
    }
    let dead_job = insert_job(
        pool,
        "refresh_collections",
        ACME,
        "dead",
        "violet answered 404 for collections of merchant 101",
    )
    .await;
    Seed {
        dead_job,
        acme_change_no,
    }
}

/// Inserts a job row as the queue would have left it.
pub async fn insert_job(
    pool: &PgPool,
    kind: &str,
    merchant_id: i64,
    state: &str,
    error: &str,
) -> i64 {
    let payload = json!({ "kind": kind, "merchant_id": merchant_id, "mode": "full" });
    sqlx::query_scalar(
        r#"INSERT INTO jobs (kind, merchant_id, dedupe_key, payload, state, attempts, max_attempts, last_error, finished_at, lane)
           VALUES ($1, $2, $3, $4, $5, 8, 8, $6, CASE WHEN $5 IN ('dead', 'done', 'cancelled') THEN now() END, $7)
           RETURNING id"#,
    )
    .bind(kind)
    .bind(merchant_id)
    .bind(format!("{kind}:{merchant_id}"))
    .bind(&payload)
    .bind(state)
    .bind(error)
    .bind(lane(&payload))
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The lane the daemon gives a job with this payload (its dedupe key for kinds whose
/// payload this does not describe fully).
fn lane(payload: &Value) -> String {
    serde_json::from_value::<catalog_mirror::work::JobKind>(payload.clone())
        .map(|kind| kind.lane())
        .unwrap_or_else(|_| {
            format!(
                "{}:{}",
                payload["kind"].as_str().unwrap(),
                payload["merchant_id"]
            )
        })
}

/// Keeps workers away from `kind` jobs of `merchant_id`: the queue never claims a job
/// while another of its lane is running, so a running job with a long lease held by
/// nobody makes retried jobs stay `pending` for the test to see.
pub async fn block_claims(pool: &PgPool, kind: &str, merchant_id: i64) {
    let payload = json!({ "kind": kind, "merchant_id": merchant_id, "mode": "full" });
    sqlx::query(
        r#"INSERT INTO jobs (kind, merchant_id, dedupe_key, payload, state, attempts, max_attempts, locked_by, locked_until, lane)
           VALUES ($1, $2, $3, $4, 'running', 1, 8, 'test-blocker', now() + interval '1 hour', $5)"#,
    )
    .bind(kind)
    .bind(merchant_id)
    .bind(format!("{kind}:{merchant_id}"))
    .bind(&payload)
    .bind(lane(&payload))
    .execute(pool)
    .await
    .unwrap();
}

/// An authenticated admin API call; returns the status and the JSON body.
pub async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app
        .http
        .request(method, app.admin_url(path))
        .bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("admin request sent");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{path} answered {status} with non-JSON: {text}"));
    (status, json)
}

pub async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    call(app, reqwest::Method::GET, path, None).await
}

pub async fn post(app: &TestApp, path: &str, body: Option<Value>) -> (u16, Value) {
    call(app, reqwest::Method::POST, path, body).await
}

/// The sandbox merchant of [`SlowRefresh`], its catalog and the page size the daemon asks for.
pub const SLOW_MERCHANT: u64 = 4401;
pub const SLOW_OFFERS: u64 = 300;
pub const SLOW_PAGE_SIZE: u64 = 10;

/// A daemon on a sandbox whose merchant was onboarded and mirrored once at full speed
/// (so a next refresh has a last complete pass to size its estimate on), with the
/// sandbox then made slow: 300 ms per call and 2 calls a second per merchant, over
/// which it answers 429 with `Retry-After: 1`. A refresh of the 30 pages then takes
/// fifteen seconds or more, part of it waiting on the rate limit.
pub struct SlowRefresh {
    pub db: TestDb,
    pub app: TestApp,
    /// Kept so the sandbox serves as long as the daemon runs.
    pub _sandbox: catalog_mirror::sandbox::Sandbox,
}

pub async fn spawn_slow_refresh() -> SlowRefresh {
    use catalog_mirror::sandbox::{
        DeliveryFaults, MerchantSpec, RateLimit, Sandbox, SandboxConfig, Scenario, ScenarioOptions,
    };
    let sandbox = Sandbox::start(
        SandboxConfig {
            seed: 16,
            merchants: vec![MerchantSpec {
                id: SLOW_MERCHANT,
                name: "Slow Goods".into(),
                offers: SLOW_OFFERS,
                collections: 2,
            }],
            ..Default::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let (db, app) = TestApp::builder()
        .configure(with_admin)
        .sandbox(&sandbox)
        .configure(|settings| {
            settings.violet.page_size = SLOW_PAGE_SIZE as u32;
            // 429s are retried after their Retry-After, as in production.
            settings.violet.max_retries = 6;
        })
        .spawn()
        .await;
    let report = sandbox
        .play(
            Scenario::Onboarding,
            SLOW_MERCHANT,
            &app.url("/webhooks/violet"),
            DeliveryFaults::default(),
            &ScenarioOptions {
                seed: 3,
                max_offer_events: Some(0),
            },
        )
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let path = format!("/api/merchants/{SLOW_MERCHANT}");
    assert!(
        eventually(std::time::Duration::from_secs(90), || async {
            let (_, body) = get(&app, &path).await;
            body["merchant"]["products"]["progress"]["phase"] == "completed"
                && body["merchant"]["collections"]["progress"]["phase"] == "completed"
        })
        .await,
        "the first refreshes complete: {}",
        get(&app, &path).await.1
    );
    sandbox.set_knobs(|knobs| {
        knobs.latency = std::time::Duration::from_millis(300);
        knobs.rate_limit = Some(RateLimit {
            requests_per_sec: 2,
            retry_after_secs: 1,
        });
    });
    SlowRefresh {
        db,
        app,
        _sandbox: sandbox,
    }
}

impl SlowRefresh {
    /// Asks for a full products refresh of the merchant (it starts within the debounce).
    pub async fn resync_products(&self) {
        let (status, body) = post(
            &self.app,
            "/api/resync",
            Some(json!({ "merchant_id": SLOW_MERCHANT, "kind": "products" })),
        )
        .await;
        assert_eq!(status, 202, "{body}");
    }

    /// The merchant's products `progress` object from the admin API.
    pub async fn products_progress(&self) -> Value {
        let (_, body) = get(&self.app, &format!("/api/merchants/{SLOW_MERCHANT}")).await;
        body["merchant"]["products"]["progress"].clone()
    }

    /// Waits until the products refresh runs and has read at least `pages` pages.
    pub async fn wait_until_fetching(&self, pages: u64) -> Value {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let progress = self.products_progress().await;
            if progress["running"] == true && progress["pages_fetched"].as_u64() >= Some(pages) {
                return progress;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the slow refresh did not get going: {progress}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    pub async fn stop(self) {
        self.app.stop().await;
        drop(self.db);
    }
}

/// Holds the removal of ACME's offers 5001 and 5002 (of 3 live, see [`seed`]) as a
/// complete pass would have, with the attention it raises.
pub async fn hold_removals(app: &TestApp) {
    sqlx::query(
        r#"INSERT INTO held_removals (merchant_id, offer_ids, live_offers, refresh_id, reason)
           VALUES ($1, '{5001,5002}', 3, 77, 'removals held: a complete pass (refresh 77) would remove 2 of 3 live offers')"#,
    )
    .bind(ACME)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        r#"UPDATE sync_state SET state = 'needs_attention', attention_reason = 'removals held: a complete pass (refresh 77) would remove 2 of 3 live offers'
           WHERE merchant_id = $1 AND kind = 'products'"#,
    )
    .bind(ACME)
    .execute(&app.pool)
    .await
    .unwrap();
}

/// ACME's delta bookkeeping: a full pass, a later delta, a watermark and a due reason.
pub async fn set_freshness(app: &TestApp) {
    sqlx::query(
        r#"UPDATE merchants SET last_full_refresh_at = '2026-11-30T08:00:00Z',
               last_delta_refresh_at = '2026-12-01T09:30:00Z', offers_watermark = '2026-11-30T23:55:00Z',
               full_refresh_due = 'a products sync failed', full_refresh_due_at = '2026-12-01T10:00:00Z'
           WHERE merchant_id = $1"#,
    )
    .bind(ACME)
    .execute(&app.pool)
    .await
    .unwrap();
}

/// The admin page (`/ui`) as `http` gets it with the session `cookie`
/// (`name=value`).
pub async fn page_html(app: &TestApp, http: &reqwest::Client, cookie: &str) -> String {
    http.get(app.admin_url("/ui"))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
