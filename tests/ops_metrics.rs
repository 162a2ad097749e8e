//! Operations: `/metrics` on the admin listener carries every family an operator
//! watches after real traffic (webhooks, a bad signature, a refresh against the
//! sandbox, searches), including every metric the shipped alert rules and Grafana
//! dashboard (`deploy/`) name; the dashboard's queries are valid PromQL; and `/readyz`
//! follows the database, the migrations and the index's lag behind the change log.

// Its own test binary, not a module of tests/it: the Prometheus recorder is global to
// the process, and this test reads counters that other tests would move (it checks
// that they exist at 0 before their first event).
#[allow(dead_code)]
#[path = "it/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
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

    // The refresh's progress, exported at scrape time: its final numbers.
    let progress = [("merchant", "3101"), ("kind", "products")];
    assert_eq!(
        value(&text, "catalog_mirror_refresh_running", &progress),
        Some(0.0)
    );
    assert_eq!(
        value(&text, "catalog_mirror_refresh_staged_items", &progress),
        Some(OFFERS as f64)
    );
    assert!(
        value(&text, "catalog_mirror_refresh_pages_fetched", &progress)
            .is_some_and(|pages| pages >= (OFFERS / 100) as f64)
    );
    // Counters the alert rules watch exist at 0 before their first event.
    assert_eq!(
        value(
            &text,
            "catalog_mirror_sync_needs_attention_total",
            &[("kind", "collections")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &text,
            "catalog_mirror_jobs_total",
            &[("kind", "notify"), ("outcome", "dead")]
        ),
        Some(0.0)
    );

    // Every metric a shipped alert rule or dashboard panel names is exported.
    let families = exported_families(&text);
    for file in [
        "deploy/prometheus/alerts.yml",
        "deploy/grafana/catalog-mirror.json",
    ] {
        let names = metric_names(&read_deployed(file));
        assert!(names.len() >= 8, "{file} names metrics: {names:?}");
        for name in names {
            assert!(
                families.contains(family_of(&name, &families)),
                "{file} uses {name}, which /metrics does not export:\n{text}"
            );
        }
    }

    app.stop().await;
}

fn read_deployed(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// The families `/metrics` declares (`# TYPE name kind`).
fn exported_families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Every `catalog_mirror_*` name in `text` (the rules' and panels' expressions; the
/// only other metric they use is Prometheus' own `up`).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("catalog_mirror_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// The family a sample name belongs to: a histogram's `_bucket`, `_sum` and `_count`
/// series belong to the histogram.
fn family_of<'a>(name: &'a str, families: &BTreeSet<String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && families.contains(base)
        {
            return base;
        }
    }
    name
}

/// The dashboard's queries parse as PromQL: promtool checks them as recording rules
/// (with the `$instance` variable replaced by what Grafana sends for "All").
#[test]
fn the_dashboard_queries_are_valid_promql() {
    let dashboard: Value =
        serde_json::from_str(&read_deployed("deploy/grafana/catalog-mirror.json")).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().replace("$instance", ".*"));
        }
    }
    assert!(exprs.len() >= 20, "{exprs:?}");
    let rules: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, expr)| json!({ "record": format!("dashboard:query_{i}"), "expr": expr }))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-queries.yml");
    // JSON is YAML: promtool reads this as a rule file.
    std::fs::write(
        &file,
        json!({ "groups": [{ "name": "dashboard", "rules": rules }] }).to_string(),
    )
    .unwrap();
    let output = std::process::Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&file)
        .output()
        .expect("promtool runs (scripts/test-deps installs it)");
    assert!(
        output.status.success(),
        "promtool refused a dashboard query:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
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
