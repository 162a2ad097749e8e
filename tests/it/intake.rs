//! `POST /webhooks/violet` against a running daemon and a real database.

use crate::common;

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
    TestApp::builder().spawn().await
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
    let (_db, app) = TestApp::builder()
        .configure(|settings| {
            settings.webhooks.extra_secrets =
                vec![catalog_mirror::config::Secret::new("previous-secret")];
        })
        .spawn()
        .await;
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
    // Keep the refreshes pending while the test counts them.
    let (_db, app) = TestApp::builder()
        .configure(|settings| settings.jobs.debounce_ms = 60_000)
        .spawn()
        .await;
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
    let app = TestApp::builder()
        .configure(move |settings| {
            settings.database.url = catalog_mirror::config::Secret::new(proxied_url);
            settings.database.acquire_timeout_ms = 800; // the production default
        })
        .spawn_on(&db)
        .await;
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

// Group commit: deliveries that arrive together share one transaction and one commit.

/// A daemon whose single writer gathers for `window_ms`, so deliveries sent together
/// land in one batch; refreshes stay pending while the test looks at them.
async fn spawn_batching(window_ms: u64, max_events: usize) -> (TestDb, TestApp) {
    TestApp::builder()
        .configure(move |settings| {
            settings.webhooks.batch_window_ms = window_ms;
            settings.webhooks.batch_max_events = max_events;
            settings.webhooks.writers = 1;
            settings.jobs.debounce_ms = 600_000;
        })
        .spawn()
        .await
}

/// Sends `deliveries` in this order, `gap` apart, without waiting for the answers.
fn send_spaced(
    app: &TestApp,
    deliveries: Vec<Delivery>,
    gap: Duration,
) -> Vec<tokio::task::JoinHandle<reqwest::Response>> {
    let url = app.url("/webhooks/violet");
    deliveries
        .into_iter()
        .enumerate()
        .map(|(i, delivery)| {
            let (http, url) = (app.http.clone(), url.clone());
            tokio::spawn(async move {
                tokio::time::sleep(gap * i as u32).await;
                delivery.send(&http, &url).await
            })
        })
        .collect()
}

async fn answers(sent: Vec<tokio::task::JoinHandle<reqwest::Response>>) -> Vec<(u16, String)> {
    let mut answers = Vec::new();
    for response in sent {
        let response = response.await.unwrap();
        let status = response.status().as_u16();
        let retry_after = response.headers().contains_key("retry-after");
        let body: serde_json::Value = response.json().await.unwrap();
        let said = body["status"]
            .as_str()
            .or(body["error"].as_str())
            .unwrap_or_default()
            .to_string();
        if status == 503 {
            assert!(retry_after, "a 503 asks Violet to retry: {body}");
        }
        answers.push((status, said));
    }
    answers
}

/// Waits until a backend of the test database waits for a lock; its pid.
async fn backend_waiting_for_a_lock(pool: &PgPool) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pid: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_optional(pool)
        .await
        .unwrap();
        if let Some(pid) = pid {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "the writer reached the locked merchant"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Four offer events of merchant 5, then a sync start of merchant 7, whose row the test
/// locks: the batch stores the offers (merchant 5 comes first), then waits for the lock,
/// between its statements and its commit.
fn offers_then_a_locked_merchant() -> Vec<Delivery> {
    let mut deliveries: Vec<Delivery> = (0..4)
        .map(|i| {
            Delivery::new(
                &format!("evt-offer-{i}"),
                "OFFER_UPDATED",
                &json!({"id": 500 + i, "merchant_id": 5}),
            )
        })
        .collect();
    deliveries.push(
        Delivery::new(
            "evt-start-7",
            "PRODUCT_SYNC_STARTED",
            &sync_body(70, 7, "IN_PROGRESS", "2026-01-01T10:00:00Z"),
        )
        .entity("70"),
    );
    deliveries
}

async fn lock_merchant(
    pool: &PgPool,
    merchant_id: i64,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    sqlx::query("INSERT INTO merchants (merchant_id) VALUES ($1)")
        .bind(merchant_id)
        .execute(pool)
        .await
        .unwrap();
    let mut locker = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM merchants WHERE merchant_id = $1 FOR UPDATE")
        .bind(merchant_id)
        .execute(&mut *locker)
        .await
        .unwrap();
    locker
}

/// An offer event's statement takes its job's advisory lock; a batch storing a
/// MERCHANT_* event updates the merchant's row and then plans jobs, whose advisory lock
/// it may wait for. So an offer event must not wait on that update: here it is held
/// uncommitted while offers of the merchant arrive, two in one batch (one statement)
/// and one alone, which must be stored at once (they waited for the update, and the
/// two batches deadlocked past their time limit).
#[tokio::test]
async fn an_offer_event_does_not_wait_for_a_merchant_update_in_progress() {
    // One writer gathering for 200 ms: deliveries sent together share a batch.
    let (db, app) = spawn_batching(200, 64).await;
    let direct = db.pool().await;
    sqlx::query("INSERT INTO merchants (merchant_id) VALUES (9)")
        .execute(&direct)
        .await
        .unwrap();
    let mut updating = direct.begin().await.unwrap();
    sqlx::query("UPDATE merchants SET name = 'Renamed' WHERE merchant_id = 9")
        .execute(&mut *updating)
        .await
        .unwrap();
    let offer = |n: i64| {
        Delivery::new(
            &format!("evt-offer-during-update-{n}"),
            "OFFER_UPDATED",
            &json!({"id": 900 + n, "merchant_id": 9}),
        )
    };
    // Two offers in one batch (one statement for the run), then one alone.
    for deliveries in [vec![offer(1), offer(2)], vec![offer(3)]] {
        let sent = send_spaced(&app, deliveries, Duration::ZERO);
        let answered = tokio::time::timeout(Duration::from_secs(5), answers(sent))
            .await
            .expect("the offers were answered while the merchant's update was in progress");
        assert!(
            answered.iter().all(|(status, _)| *status == 200),
            "{answered:?}"
        );
    }
    assert_eq!(
        count(
            &direct,
            "SELECT count(*) FROM webhook_events WHERE event_id LIKE 'evt-offer-during-update-%'"
        )
        .await,
        3
    );
    assert_eq!(
        count(
            &direct,
            "SELECT count(DISTINCT xmin::text) FROM webhook_events WHERE event_id IN ('evt-offer-during-update-1', 'evt-offer-during-update-2')"
        )
        .await,
        1,
        "the first two were stored by one transaction"
    );
    assert_eq!(
        count(&direct, "SELECT count(*) FROM jobs WHERE merchant_id = 9").await,
        1,
        "their refresh is planned once"
    );
    updating.rollback().await.unwrap();
    app.stop().await;
}

/// A batch past its time limit while the database answers (here: waiting for a lock
/// the test holds) gets its 503, and only it: the next delivery, of another merchant,
/// is stored at once (the slow batch used to close intake's gate for half a second, as
/// if the database were down).
#[tokio::test]
async fn a_batch_past_its_time_limit_refuses_only_its_own_deliveries() {
    // The batch's limit is 450 ms.
    let (db, app) = TestApp::builder()
        .configure(|settings| settings.database.acquire_timeout_ms = 300)
        .spawn()
        .await;
    let direct = db.pool().await;
    let url = app.url("/webhooks/violet");
    let locker = lock_merchant(&direct, 7).await;
    let started = Instant::now();
    let held = Delivery::new(
        "evt-start-7",
        "PRODUCT_SYNC_STARTED",
        &sync_body(70, 7, "IN_PROGRESS", "2026-01-01T10:00:00Z"),
    )
    .entity("70")
    .send(&app.http, &url)
    .await;
    assert_eq!(held.status(), 503, "the batch waited past its limit");
    assert!(started.elapsed() < Duration::from_secs(3));
    let other = Delivery::new(
        "evt-offer-5",
        "OFFER_UPDATED",
        &json!({"id": 501, "merchant_id": 5}),
    )
    .send(&app.http, &url)
    .await;
    assert_eq!(other.status(), 200, "intake stays open");
    locker.rollback().await.unwrap();
    assert_eq!(
        count(
            &direct,
            "SELECT count(*) FROM webhook_events WHERE event_id = 'evt-start-7'"
        )
        .await,
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn deliveries_are_answered_only_after_the_commit_that_holds_them() {
    let (db, app) = spawn_batching(500, 64).await;
    let direct = db.pool().await;
    let locker = lock_merchant(&direct, 7).await;

    let sent = send_spaced(&app, offers_then_a_locked_merchant(), Duration::ZERO);
    backend_waiting_for_a_lock(&direct).await;
    // The batch has stored the offers and waits for the lock before its commit.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        sent.iter().all(|request| !request.is_finished()),
        "no delivery is answered before its batch commits"
    );
    assert_eq!(
        count(&direct, "SELECT count(*) FROM webhook_events").await,
        0,
        "nothing is visible before the commit"
    );

    locker.rollback().await.unwrap();
    let answers = answers(sent).await;
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    assert_eq!(
        count(&direct, "SELECT count(*) FROM webhook_events").await,
        5
    );
    assert_eq!(
        count(
            &direct,
            "SELECT count(DISTINCT xmin::text) FROM webhook_events"
        )
        .await,
        1,
        "the five events were committed by one transaction"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_batch_cut_before_its_commit_answers_503_to_each_and_stores_nothing() {
    let (db, app) = spawn_batching(500, 64).await;
    let direct = db.pool().await;
    let locker = lock_merchant(&direct, 7).await;

    let sent = send_spaced(&app, offers_then_a_locked_merchant(), Duration::ZERO);
    let writer = backend_waiting_for_a_lock(&direct).await;
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(writer)
        .fetch_one(&direct)
        .await
        .unwrap();
    assert!(terminated);

    let answers = answers(sent).await;
    assert_eq!(
        answers,
        vec![(503, "unavailable".to_string()); 5],
        "each delivery of the failed batch is asked to retry"
    );
    locker.rollback().await.unwrap();
    assert_eq!(
        count(&direct, "SELECT count(*) FROM webhook_events").await,
        0,
        "none of the batch was stored"
    );
    assert_eq!(count(&direct, "SELECT count(*) FROM jobs").await, 0);
    assert_eq!(count(&direct, "SELECT count(*) FROM sync_state").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn duplicates_inside_one_batch_and_across_batches_create_work_once() {
    let (db, app) = spawn_batching(300, 64).await;
    let direct = db.pool().await;
    let offer = Delivery::new(
        "evt-offer",
        "OFFER_UPDATED",
        &json!({"id": 501, "merchant_id": 5}),
    );
    let completed = Delivery::new(
        "evt-done",
        "PRODUCT_SYNC_COMPLETED",
        &sync_body(60, 6, "COMPLETED", "2026-01-01T10:00:00Z"),
    )
    .entity("60");
    let deliveries = vec![offer.clone(), completed.clone(), offer, completed];
    let work = "SELECT count(*) FROM jobs WHERE state = 'pending'";

    let first = answers(send_spaced(
        &app,
        deliveries.clone(),
        Duration::from_millis(20),
    ))
    .await;
    let mut said: Vec<&str> = first.iter().map(|(_, said)| said.as_str()).collect();
    said.sort();
    assert_eq!(
        said,
        ["duplicate", "duplicate", "pending", "processed"],
        "{first:?}"
    );
    assert!(first.iter().all(|(status, _)| *status == 200));
    assert_eq!(
        count(
            &direct,
            "SELECT count(DISTINCT xmin::text) FROM webhook_events"
        )
        .await,
        1,
        "one batch"
    );
    assert_eq!(
        count(&direct, "SELECT count(*) FROM webhook_events").await,
        2
    );
    let jobs: Vec<(String, i64)> = sqlx::query_as(
        "SELECT kind, merchant_id FROM jobs WHERE state = 'pending' ORDER BY kind, merchant_id",
    )
    .fetch_all(&direct)
    .await
    .unwrap();
    assert_eq!(
        jobs,
        [
            ("incremental".to_string(), 5),
            ("refresh_products".to_string(), 6)
        ],
        "one batched offer job and one refresh"
    );
    let runs = "SELECT count(*) FROM sync_runs";
    let runs_after_first = count(&direct, runs).await;

    let again = answers(send_spaced(&app, deliveries, Duration::from_millis(20))).await;
    assert_eq!(again, vec![(200, "duplicate".to_string()); 4]);
    assert_eq!(
        count(&direct, "SELECT count(*) FROM webhook_events").await,
        2
    );
    assert_eq!(count(&direct, work).await, 2);
    assert_eq!(count(&direct, runs).await, runs_after_first);
    app.stop().await;
}

/// A sync window in arrival order: STARTED, an offer held by it, COMPLETED, an offer
/// after it, of one merchant.
fn a_sync_window() -> Vec<Delivery> {
    vec![
        Delivery::new(
            "evt-start",
            "PRODUCT_SYNC_STARTED",
            &sync_body(90, 9, "IN_PROGRESS", "2026-01-01T10:00:00Z"),
        )
        .entity("90"),
        Delivery::new(
            "evt-during",
            "OFFER_UPDATED",
            &json!({"id": 901, "merchant_id": 9}),
        ),
        Delivery::new(
            "evt-done",
            "PRODUCT_SYNC_COMPLETED",
            &sync_body(90, 9, "COMPLETED", "2026-01-01T10:05:00Z"),
        )
        .entity("90"),
        Delivery::new(
            "evt-after",
            "OFFER_UPDATED",
            &json!({"id": 902, "merchant_id": 9}),
        ),
    ]
}

/// What planning left behind, without the columns that hold times of day.
async fn planned(pool: &PgPool) -> String {
    let mut out = String::new();
    for sql in [
        "SELECT event_id, status, detail FROM webhook_events ORDER BY event_id",
        "SELECT merchant_id, kind, state, state_event_at, current_sync_id, consecutive_failures, \
         last_started_at, last_completed_at, last_failed_at FROM sync_state ORDER BY merchant_id, kind",
        "SELECT merchant_id, kind, sync_id, started_at, ended_at, outcome, total_products, \
         started_event_id, ended_event_id FROM sync_runs ORDER BY id",
        "SELECT kind, merchant_id, dedupe_key, payload, state FROM jobs ORDER BY kind, dedupe_key, state",
        "SELECT merchant_id, connected, enabled, resync_expected FROM merchants ORDER BY merchant_id",
    ] {
        let rows: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT coalesce(json_agg(t)::text, '[]') FROM ({sql}) t"
        )))
        .fetch_one(pool)
        .await
        .unwrap();
        out.push_str(&rows);
        out.push('\n');
    }
    out
}

/// `deliveries` planned one at a time (batches of one, each answered before the next is
/// sent), then sent `gap` apart, in the same order, to a daemon whose one batch takes
/// them all (checked: one transaction stored them): both plans, and the second daemon
/// with its database for further checks.
async fn planned_alone_and_together(
    deliveries: fn() -> Vec<Delivery>,
    gap: Duration,
) -> (String, String, TestDb, TestApp) {
    let (one_db, one_app) = spawn_batching(0, 1).await;
    let url = one_app.url("/webhooks/violet");
    for delivery in deliveries() {
        assert_eq!(delivery.send(&one_app.http, &url).await.status(), 200);
    }
    let one_at_a_time = planned(&one_db.pool().await).await;
    one_app.stop().await;

    let (db, app) = spawn_batching(1_000, 64).await;
    let answers = answers(send_spaced(&app, deliveries(), gap)).await;
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    let direct = db.pool().await;
    assert_eq!(
        count(
            &direct,
            "SELECT count(DISTINCT xmin::text) FROM webhook_events"
        )
        .await,
        1,
        "one transaction stored the batch"
    );
    let together = planned(&direct).await;
    (one_at_a_time, together, db, app)
}

#[tokio::test]
async fn started_then_completed_in_one_batch_plans_as_one_at_a_time_would() {
    let (one_at_a_time, together, _db, app) =
        planned_alone_and_together(a_sync_window, Duration::from_millis(100)).await;
    assert_eq!(together, one_at_a_time);
    // And what that is: the offer inside the window was held, the one after it batched.
    assert!(
        one_at_a_time.contains(r#""state":"completed""#),
        "{one_at_a_time}"
    );
    assert!(
        one_at_a_time.contains(r#""kind":"incremental""#),
        "{one_at_a_time}"
    );
    app.stop().await;
}

/// [`a_sync_window`] with more offer events in a row: another during the sync (held)
/// and a copy of the first, another after it, and another merchant's with a copy: the
/// runs of a merchant's offer events share one statement, and plan what one event at a
/// time plans.
fn runs_of_offer_events() -> Vec<Delivery> {
    let offer = |id: &str, offer: i64, merchant: i64| {
        Delivery::new(
            id,
            "OFFER_UPDATED",
            &json!({"id": offer, "merchant_id": merchant}),
        )
    };
    let mut deliveries = a_sync_window();
    // After "evt-during": another, then its copy, before "evt-done".
    deliveries.insert(2, offer("evt-during-2", 903, 9));
    deliveries.insert(3, offer("evt-during", 901, 9));
    deliveries.extend([
        offer("evt-after-2", 904, 9),
        offer("evt-other-1", 1101, 11),
        offer("evt-other-2", 1102, 11),
        offer("evt-other-1", 1101, 11),
    ]);
    deliveries
}

#[tokio::test]
async fn runs_of_offer_events_in_one_batch_plan_as_one_at_a_time_would() {
    let (one_at_a_time, together, db, app) =
        planned_alone_and_together(runs_of_offer_events, Duration::from_millis(20)).await;
    let direct = db.pool().await;
    assert_eq!(together, one_at_a_time);
    assert_eq!(
        count(&direct, "SELECT count(*) FROM webhook_events").await,
        8,
        "each copy stored once"
    );
    // What that is: the offers during the sync held, those after it and the other
    // merchant's in an incremental job each.
    assert!(
        one_at_a_time.contains(r#""event_id":"evt-during-2","status":"pending""#),
        "{one_at_a_time}"
    );
    assert_eq!(
        count(
            &direct,
            "SELECT count(*) FROM jobs WHERE kind = 'incremental'"
        )
        .await,
        2,
        "{together}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_event_the_database_refuses_fails_alone_and_the_rest_of_its_batch_is_stored() {
    let (db, app) = spawn_batching(300, 64).await;
    let direct = db.pool().await;
    // A delivery the database refuses, as it would one with data it cannot store.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF NEW.event_id = 'evt-poison' THEN RAISE EXCEPTION 'refused for the test'; END IF; \
           RETURN NEW; END $$; \
         CREATE TRIGGER refuse_poison BEFORE INSERT ON webhook_events \
           FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    )
    .execute(&direct)
    .await
    .unwrap();
    let deliveries: Vec<Delivery> = ["evt-a", "evt-poison", "evt-b", "evt-c"]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            Delivery::new(
                id,
                "OFFER_UPDATED",
                &json!({"id": 600 + i, "merchant_id": 5 + i}),
            )
        })
        .collect();
    let answers = answers(send_spaced(&app, deliveries, Duration::from_millis(10))).await;
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [200, 503, 200, 200], "{answers:?}");
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT event_id FROM webhook_events ORDER BY event_id")
            .fetch_all(&direct)
            .await
            .unwrap();
    assert_eq!(stored, ["evt-a", "evt-b", "evt-c"]);
    app.stop().await;
}

#[tokio::test]
async fn on_shutdown_the_writer_answers_what_it_holds_and_what_is_queued_then_stops() {
    let (db, app) = spawn_batching(200, 64).await;
    let direct = db.pool().await;
    let locker = lock_merchant(&direct, 7).await;
    // The only writer holds a batch that waits for the lock; three more deliveries
    // queue behind it.
    let mut sent = send_spaced(
        &app,
        offers_then_a_locked_merchant().split_off(4),
        Duration::ZERO,
    );
    backend_waiting_for_a_lock(&direct).await;
    let queued: Vec<Delivery> = (0..3)
        .map(|i| {
            Delivery::new(
                &format!("evt-queued-{i}"),
                "OFFER_UPDATED",
                &json!({"id": 700 + i, "merchant_id": 5}),
            )
        })
        .collect();
    sent.extend(send_spaced(&app, queued, Duration::from_millis(10)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sent.iter().all(|request| !request.is_finished()));

    app.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    locker.rollback().await.unwrap();
    let answers = answers(sent).await;
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "every delivery held or queued is stored and answered: {answers:?}"
    );
    let stopped = tokio::time::timeout(Duration::from_secs(10), app.task).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "the daemon stopped: {stopped:?}"
    );
    assert_eq!(
        count(&direct, "SELECT count(*) FROM webhook_events").await,
        4
    );
}

#[tokio::test]
async fn a_full_intake_queue_answers_503_busy_at_once() {
    let (db, app) = TestApp::builder()
        .configure(|settings| {
            settings.webhooks.writers = 1;
            settings.webhooks.queue_capacity = 1;
            settings.jobs.debounce_ms = 600_000;
        })
        .spawn()
        .await;
    let direct = db.pool().await;
    let locker = lock_merchant(&direct, 7).await;
    // The only writer waits for the lock with the sync start; one offer fills the queue.
    let mut sent = send_spaced(
        &app,
        offers_then_a_locked_merchant().split_off(4),
        Duration::ZERO,
    );
    backend_waiting_for_a_lock(&direct).await;
    let offers = offers_then_a_locked_merchant();
    sent.extend(send_spaced(&app, vec![offers[0].clone()], Duration::ZERO));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let refused = offers[1]
        .send(&app.http, &app.url("/webhooks/violet"))
        .await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "busy", "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once"
    );

    locker.rollback().await.unwrap();
    assert_eq!(
        answers(sent).await,
        [(200, "processed".to_string()), (200, "pending".to_string())]
    );
    assert_eq!(
        count(&direct, "SELECT count(*) FROM webhook_events").await,
        2
    );
    app.stop().await;
}
