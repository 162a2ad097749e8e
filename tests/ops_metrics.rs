//! Operations: `/metrics` on the admin listener carries every family an operator
//! watches after real traffic (webhooks, a bad signature, a refresh against the
//! sandbox, searches), and `/readyz` follows the database, the migrations and the
//! index's lag behind the change log.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use catalog_mirror::sandbox::{
    DeliveryFaults, MerchantSpec, Sandbox, SandboxConfig, Scenario, ScenarioOptions,
};
use common::{TestApp, TestDb, eventually};
use serde_json::{Value, json};

const MERCHANT: u64 = 3101;
const OFFERS: u64 = 240;

async fn sandbox() -> Sandbox {
    Sandbox::start(
        SandboxConfig {
            seed: 31,
            merchants: vec![MerchantSpec {
                id: MERCHANT,
                name: "Metric Goods".into(),
                offers: OFFERS,
                collections: 3,
            }],
            ..Default::default()
        },
        "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
    )
    .await
    .unwrap()
}

/// The sample lines of `family` (`name{labels} value` or `name value`).
fn samples<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .collect()
}

/// The value of the sample of `family` whose labels include every `labels` pair.
fn value(text: &str, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(text, family)
        .into_iter()
        .find(|line| {
            labels
                .iter()
                .all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

async fn scrape(app: &TestApp) -> String {
    let response = app
        .http
        .get(app.admin_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

async fn offers_in_mirror(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM offers WHERE merchant_id = $1 AND removed_at IS NULL")
        .bind(MERCHANT as i64)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn search(app: &TestApp, body: Value) -> reqwest::Response {
    app.http
        .post(app.url("/indexes/offers/search"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn readyz(app: &TestApp) -> (u16, Value) {
    let response = app.http.get(app.url("/readyz")).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_every_family_after_traffic() {
    let sandbox = sandbox().await;
    let db = TestDb::empty().await;
    let mut settings = common::settings(&db.url);
    settings.violet.base_url = sandbox.base_url();
    settings.admin.metrics_sample_ms = 200;
    let app = TestApp::spawn(settings).await;

    // Traffic: onboarding (signed webhooks, then a refresh through the Violet client and
    // the indexer), a delivery with a bad signature, searches good and bad.
    let report = sandbox
        .play(
            Scenario::Onboarding,
            MERCHANT,
            &app.url("/webhooks/violet"),
            DeliveryFaults::default(),
            &ScenarioOptions {
                seed: 5,
                max_offer_events: Some(10),
            },
        )
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let bad = app
        .http
        .post(app.url("/webhooks/violet"))
        .header("X-Violet-Event-Id", "bad-signature-1")
        .header("X-Violet-Topic", "OFFER_UPDATED")
        .header("X-Violet-Hmac", "bm90IGEgc2lnbmF0dXJl")
        .body(r#"{"id":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);

    assert!(
        eventually(Duration::from_secs(60), || async {
            offers_in_mirror(&app).await == OFFERS as i64
        })
        .await,
        "the refresh mirrors the catalog"
    );
    assert!(
        eventually(Duration::from_secs(30), || async {
            let response = search(&app, json!({ "q": "", "limit": 1 })).await;
            let body: Value = response.json().await.unwrap();
            body["estimatedTotalHits"].as_u64().unwrap_or(0) > 0
        })
        .await,
        "the catalog becomes searchable"
    );
    assert_eq!(
        search(&app, json!({ "filter": "price >" })).await.status(),
        400
    );

    // The sampled gauges follow within a few sampling periods.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = scrape(&app).await;
        let sampled = value(
            &text,
            "catalog_mirror_merchant_offers",
            &[("merchant", "3101")],
        ) == Some(OFFERS as f64)
            && value(&text, "catalog_mirror_index_lag_changes", &[]) == Some(0.0)
            && value(
                &text,
                "catalog_mirror_queue_jobs",
                &[("kind", "refresh_products"), ("state", "done")],
            )
            .is_some_and(|done| done >= 1.0);
        if sampled {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sampled gauges:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let expect = |family: &str, labels: &[(&str, &str)]| {
        assert!(
            value(&text, family, labels).is_some(),
            "{family} {labels:?} is missing from /metrics:\n{text}"
        );
    };
    // Webhooks by topic and outcome, signature failures.
    expect(
        "catalog_mirror_webhooks_total",
        &[
            ("topic", "PRODUCT_SYNC_COMPLETED"),
            ("outcome", "processed"),
        ],
    );
    expect("catalog_mirror_webhook_signature_failures_total", &[]);
    // Jobs by kind and state (gauge), job outcomes and durations.
    expect(
        "catalog_mirror_queue_jobs",
        &[("kind", "refresh_products"), ("state", "running")],
    );
    expect(
        "catalog_mirror_jobs_total",
        &[("kind", "refresh_products"), ("outcome", "done")],
    );
    expect(
        "catalog_mirror_job_duration_seconds_count",
        &[("kind", "refresh_products")],
    );
    // Violet API calls by status with latency, rate-limit waits.
    expect("catalog_mirror_violet_requests_total", &[("status", "200")]);
    expect("catalog_mirror_violet_request_duration_seconds_count", &[]);
    expect("catalog_mirror_violet_rate_limit_wait_seconds_count", &[]);
    // Refresh durations and offers per merchant.
    expect(
        "catalog_mirror_refresh_duration_seconds_count",
        &[("kind", "products")],
    );
    expect(
        "catalog_mirror_refresh_offers_total",
        &[("merchant", "3101")],
    );
    // Index lag in changes and seconds.
    expect("catalog_mirror_index_lag_seconds", &[]);
    // Search latency by route and status.
    expect(
        "catalog_mirror_search_duration_seconds_count",
        &[("route", "/indexes/{uid}/search"), ("status", "200")],
    );
    expect(
        "catalog_mirror_search_duration_seconds_count",
        &[("route", "/indexes/{uid}/search"), ("status", "400")],
    );
    // Merchants per sync state: every state is present, 0 when no merchant is in it.
    assert_eq!(
        value(
            &text,
            "catalog_mirror_sync_state_merchants",
            &[("kind", "products"), ("state", "completed")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "catalog_mirror_sync_state_merchants",
            &[("kind", "collections"), ("state", "needs_attention")]
        ),
        Some(0.0)
    );
    assert!(
        text.contains("# TYPE catalog_mirror_queue_jobs gauge"),
        "{text}"
    );
    assert!(text.contains("# TYPE catalog_mirror_search_duration_seconds histogram"));

    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_index_lag_and_the_database() {
    let db = TestDb::empty().await;
    let index_dir = tempfile::tempdir().unwrap();
    let mut settings = common::settings(&db.url);
    settings.search.index_dir = index_dir.path().to_path_buf();
    settings.search.ready_max_lag_changes = 10;
    settings.search.poll_interval_ms = 100;

    // Ready: migrated, the first (empty) index is built and caught up.
    let app = TestApp::spawn(settings.clone()).await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            readyz(&app).await.0 == 200
        })
        .await,
        "a fresh daemon becomes ready: {:?}",
        readyz(&app).await
    );
    let (_, body) = readyz(&app).await;
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["migrations"], "current");
    assert_eq!(body["index"], "caught_up");
    assert_eq!(body["max_lag_changes"], 10);
    let pool = app.pool.clone();
    app.stop().await;

    // Lagging: the index on disk stops at the current change while 50 more are
    // committed, and its writer is held elsewhere, so the next daemon serves it but
    // cannot apply anything until the writer is let go.
    let catalog_mirror::search::store::Found::Ready(generation, payload) =
        catalog_mirror::search::store::open_current(index_dir.path())
    else {
        panic!("the first daemon left a usable index");
    };
    let writer = generation.writer(1, 15_000_000).unwrap();
    sqlx::query(
        "INSERT INTO change_log (merchant_id, catalog_version, reason, offer_ids)
         SELECT 9999, g, 'incremental', ARRAY[]::bigint[] FROM generate_series(1, 50) g",
    )
    .execute(&pool)
    .await
    .unwrap();
    let app = TestApp::spawn(settings).await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["index"], "lagging");
    assert_eq!(body["index_change_no"], payload.change_no);
    assert_eq!(body["index_lag_changes"], 50);
    assert!(body["index_lag_seconds"].as_f64().unwrap() >= 0.0);

    // Caught up once the indexer gets its writer and applies the backlog.
    drop(writer);
    drop(generation);
    assert!(
        eventually(Duration::from_secs(60), || async {
            readyz(&app).await.0 == 200
        })
        .await,
        "ready again after catching up: {:?}",
        readyz(&app).await
    );
    assert_eq!(readyz(&app).await.1["index_lag_changes"], 0);

    // A migration this build knows is not applied (a rolled-back schema).
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["migrations"], "pending");
    pool.close().await;

    // The database goes away (the test database is dropped under the daemon).
    let app_pool = app.pool.clone();
    drop(db);
    assert!(
        eventually(Duration::from_secs(30), || async {
            readyz(&app).await.0 == 503
        })
        .await,
        "not ready without the database"
    );
    assert_eq!(readyz(&app).await.1["database"], "unreachable");
    app_pool.close().await;
    app.stop().await;
}
