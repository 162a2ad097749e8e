//! `POST /webhooks/violet` against a running daemon and a real database.

mod common;

use std::time::{Duration, Instant};

use common::webhook::{Delivery, sync_body};
use common::{TestApp, TestDb};
use futures::StreamExt;
use serde_json::json;
use sqlx::PgPool;

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn spawn() -> (TestDb, TestApp) {
    let db = TestDb::empty().await;
    let app = TestApp::spawn(common::settings(&db.url)).await;
    (db, app)
}

#[tokio::test]
async fn a_signed_event_is_stored_once_and_a_duplicate_creates_no_work() {
    let (_db, app) = spawn().await;
    let url = app.url("/webhooks/violet");
    let delivery = Delivery::new(
        "evt-1",
        "PRODUCT_SYNC_COMPLETED",
        &sync_body(9, 42, "COMPLETED", "2026-01-01T10:00:00+0000"),
    )
    .entity("9");
    let first = delivery.send(&app.http, &url).await;
    assert_eq!(first.status(), 200);
    assert_eq!(
        first.json::<serde_json::Value>().await.unwrap()["status"],
        "processed"
    );
    let jobs_after_first = count(&app.pool, "SELECT count(*) FROM jobs").await;
    assert_eq!(jobs_after_first, 1, "one refresh scheduled");

    let second = delivery.send(&app.http, &url).await;
    assert_eq!(second.status(), 200);
    assert_eq!(
        second.json::<serde_json::Value>().await.unwrap()["status"],
        "duplicate"
    );
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM webhook_events").await,
        1
    );
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM jobs").await,
        jobs_after_first
    );
    let (merchant, entity): (i64, String) = sqlx::query_as(
        "SELECT merchant_id, entity_id FROM webhook_events WHERE event_id = 'evt-1'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((merchant, entity.as_str()), (42, "9"));
    app.stop().await;
}

#[tokio::test]
async fn bad_signatures_missing_headers_and_oversized_bodies_store_nothing() {
    let (_db, app) = spawn().await;
    let url = app.url("/webhooks/violet");
    let good = Delivery::new(
        "evt-x",
        "OFFER_UPDATED",
        &json!({"id": 1, "merchant_id": 3}),
    );

    let mut wrong = good.clone();
    wrong.hmac = Some(catalog_mirror::violet::signature::sign(
        "not-the-secret",
        &good.body,
    ));
    assert_eq!(
        wrong.send(&app.http, &url).await.status(),
        401,
        "wrong secret"
    );

    let mut tampered = good.clone();
    tampered.body = br#"{"id": 1, "merchant_id": 4}"#.to_vec();
    assert_eq!(
        tampered.send(&app.http, &url).await.status(),
        401,
        "tampered body"
    );

    let mut unsigned = good.clone();
    unsigned.hmac = None;
    assert_eq!(
        unsigned.send(&app.http, &url).await.status(),
        401,
        "missing signature"
    );

    let mut garbage = good.clone();
    garbage.hmac = Some("%%%".into());
    assert_eq!(
        garbage.send(&app.http, &url).await.status(),
        401,
        "malformed signature"
    );

    let huge_body = json!({ "merchant_id": 3, "padding": "x".repeat(3 * 1024 * 1024) });
    let huge = Delivery::new("evt-huge", "OFFER_UPDATED", &huge_body);
    let refused = huge.send(&app.http, &url).await;
    assert_eq!(refused.status(), 413, "over the 2 MiB default");
    assert_eq!(
        refused
            .headers()
            .get("connection")
            .map(|value| value.as_bytes()),
        Some(&b"close"[..]),
        "the unread rest of the body ends the connection, and the answer says so"
    );
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "payload_too_large", "{body}");

    let mut no_id = good.clone();
    no_id.event_id = None;
    assert_eq!(
        no_id.send(&app.http, &url).await.status(),
        400,
        "missing event id"
    );
    let mut no_topic = good.clone();
    no_topic.topic = None;
    assert_eq!(
        no_topic.send(&app.http, &url).await.status(),
        400,
        "missing topic"
    );

    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM webhook_events").await,
        0
    );
    assert_eq!(count(&app.pool, "SELECT count(*) FROM jobs").await, 0);

    app.stop().await;
}

#[tokio::test]
async fn unparseable_bodies_and_unknown_topics_are_stored_and_acknowledged() {
    let (_db, app) = spawn().await;
    let url = app.url("/webhooks/violet");
    let mut broken = Delivery::new("evt-broken", "OFFER_UPDATED", &json!({}));
    broken.body = b"{not json".to_vec();
    broken.hmac = Some(catalog_mirror::violet::signature::sign(
        common::webhook::SECRET,
        &broken.body,
    ));
    assert_eq!(broken.send(&app.http, &url).await.status(), 200);

    let unknown =
        Delivery::new("evt-new", "ORDER_SHIPPED_SOMEWHERE", &json!({"id": 5})).merchant(8);
    assert_eq!(unknown.send(&app.http, &url).await.status(), 200);

    let statuses: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT event_id, status, detail FROM webhook_events ORDER BY event_id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(statuses[0].0, "evt-broken");
    assert_eq!(statuses[0].1, "unprocessable");
    assert_eq!(statuses[0].2.as_deref(), Some("body is not valid JSON"));
    assert_eq!(
        (statuses[1].0.as_str(), statuses[1].1.as_str()),
        ("evt-new", "ignored")
    );
    assert_eq!(count(&app.pool, "SELECT count(*) FROM jobs").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_body_naming_another_merchant_than_the_header_is_stored_but_not_acted_on() {
    let (_db, app) = spawn().await;
    let url = app.url("/webhooks/violet");
    // A sync end, a merchant event and an offer removal, each signed correctly, whose
    // body names merchant 43 while X-Violet-Merchant-Id says 42.
    let deliveries = [
        Delivery::new(
            "evt-sync",
            "PRODUCT_SYNC_COMPLETED",
            &sync_body(9, 43, "COMPLETED", "2026-01-01T10:00:00+0000"),
        )
        .entity("9")
        .merchant(42),
        Delivery::new(
            "evt-merchant",
            "MERCHANT_DISCONNECTED",
            &json!({"id": 43, "merchant_name": "Other", "status": "DISCONNECTED"}),
        )
        .merchant(42),
        Delivery::new(
            "evt-offer",
            "OFFER_REMOVED",
            &json!({"id": 4_300_001, "merchant_id": 43}),
        )
        .merchant(42),
    ];
    for delivery in &deliveries {
        let response = delivery.send(&app.http, &url).await;
        assert_eq!(
            response.status(),
            200,
            "acknowledged: Violet must not retry it"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "unprocessable", "{body}");
    }
    let stored: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT event_id, status, detail FROM webhook_events ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored.len(), 3, "every delivery is kept for replay");
    for (event_id, status, detail) in &stored {
        assert_eq!(status, "unprocessable", "{event_id}");
        let detail = detail.as_deref().unwrap_or("");
        assert!(
            detail.contains("42") && detail.contains("43"),
            "{event_id}: the detail names both merchants: {detail}"
        );
    }
    // Neither merchant was acted on: no job, no sync state, nobody disconnected.
    assert_eq!(count(&app.pool, "SELECT count(*) FROM jobs").await, 0);
    assert_eq!(count(&app.pool, "SELECT count(*) FROM sync_state").await, 0);
    assert_eq!(count(&app.pool, "SELECT count(*) FROM sync_runs").await, 0);
    assert_eq!(
        count(
            &app.pool,
            "SELECT count(*) FROM merchants WHERE NOT connected"
        )
        .await,
        0
    );

    // The same events with agreeing merchants are acted on as usual.
    let agreeing = Delivery::new(
        "evt-sync-ok",
        "PRODUCT_SYNC_COMPLETED",
        &sync_body(10, 42, "COMPLETED", "2026-01-01T11:00:00+0000"),
    )
    .entity("10")
    .merchant(42);
    let response = agreeing.send(&app.http, &url).await;
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["status"],
        "processed"
    );
    assert_eq!(
        count(
            &app.pool,
            "SELECT count(*) FROM jobs WHERE merchant_id = 42 AND kind = 'refresh_products'"
        )
        .await,
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn a_rotated_secret_is_accepted() {
    let db = TestDb::empty().await;
    let mut settings = common::settings(&db.url);
    settings.webhooks.extra_secrets = vec![catalog_mirror::config::Secret::new("previous-secret")];
    let app = TestApp::spawn(settings).await;
    let mut delivery = Delivery::new(
        "evt-r",
        "MERCHANT_CONNECTED",
        &json!({"id": 77, "merchant_name": "Acme"}),
    );
    delivery.hmac = Some(catalog_mirror::violet::signature::sign(
        "previous-secret",
        &delivery.body,
    ));
    assert_eq!(
        delivery
            .send(&app.http, &app.url("/webhooks/violet"))
            .await
            .status(),
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn a_thousand_concurrent_deliveries_with_duplicates_store_each_event_once() {
    let db = TestDb::empty().await;
    let mut settings = common::settings(&db.url);
    // Keep the refreshes pending while the test counts them.
    settings.jobs.debounce_ms = 60_000;
    let app = TestApp::spawn(settings).await;
    let url = app.url("/webhooks/violet");
    const UNIQUE: usize = 700;
    const MERCHANTS: i64 = 10;
    let unique: Vec<Delivery> = (0..UNIQUE)
        .map(|i| {
            let merchant = 100 + ((i / 2) as i64 % MERCHANTS);
            let topic = if i % 2 == 0 {
                "PRODUCT_SYNC_COMPLETED"
            } else {
                "OFFER_UPDATED"
            };
            let body = if i % 2 == 0 {
                sync_body(i as i64, merchant, "COMPLETED", "2026-01-01T10:00:00Z")
            } else {
                json!({"id": 1000 + i, "merchant_id": merchant, "name": "Mug"})
            };
            Delivery::new(&format!("evt-{i}"), topic, &body).entity(&i.to_string())
        })
        .collect();
    // 30% of the 1,000 deliveries repeat an earlier event id.
    let mut deliveries: Vec<Delivery> = unique.clone();
    deliveries.extend((0..300).map(|i| unique[(i * 7) % UNIQUE].clone()));
    assert_eq!(deliveries.len(), 1000);

    let http = reqwest::Client::new();
    let statuses: Vec<u16> = futures::stream::iter(deliveries)
        .map(|delivery| {
            let (http, url) = (http.clone(), url.clone());
            async move { delivery.send(&http, &url).await.status().as_u16() }
        })
        .buffer_unordered(1000)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "every delivery acknowledged: {statuses:?}"
    );

    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM webhook_events").await,
        UNIQUE as i64
    );
    let refreshes: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT merchant_id, count(*) FROM jobs WHERE kind = 'refresh_products' AND state = 'pending' GROUP BY merchant_id ORDER BY merchant_id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        refreshes.len(),
        MERCHANTS as usize,
        "every merchant has a refresh"
    );
    assert!(
        refreshes.iter().all(|(_, n)| *n == 1),
        "exactly one pending refresh per merchant: {refreshes:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn with_postgres_unreachable_intake_answers_503_within_a_second_then_recovers() {
    let db = TestDb::empty().await;
    let proxy = common::proxy::Proxy::start("127.0.0.1:5432").await;
    let proxied_url = db.url.replace("127.0.0.1:5432", &proxy.addr().to_string());
    let mut settings = common::settings(&proxied_url);
    settings.database.acquire_timeout_ms = 800; // the production default
    let app = TestApp::spawn(settings).await;
    let url = app.url("/webhooks/violet");

    proxy.cut();
    let delivery = Delivery::new(
        "evt-down",
        "MERCHANT_CONNECTED",
        &json!({"id": 5, "merchant_name": "Shop"}),
    );
    let started = Instant::now();
    let response = delivery.send(&app.http, &url).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 503);
    assert!(elapsed < Duration::from_secs(1), "answered in {elapsed:?}");
    assert!(response.headers().contains_key("retry-after"));

    proxy.restore();
    let recovered = common::eventually(Duration::from_secs(10), || async {
        delivery.send(&app.http, &url).await.status() == 200
    })
    .await;
    assert!(
        recovered,
        "intake recovers by itself when the database is back"
    );
    let direct = db.pool().await;
    assert_eq!(
        count(
            &direct,
            "SELECT count(*) FROM webhook_events WHERE event_id = 'evt-down'"
        )
        .await,
        1
    );
    app.stop().await;
}
