//! Cache invalidation for storefronts: `catalog.ready` on the SSE stream only once a
//! search returns that catalog, and signed, retried outbound webhooks for catalog and
//! sync state notifications.

use crate::common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use catalog_mirror::config::Secret;
use catalog_mirror::sandbox::scenarios::{Scenario, ScenarioOptions};
use catalog_mirror::sandbox::webhooks::DeliveryFaults;
use catalog_mirror::sandbox::{MerchantSpec, Sandbox, SandboxConfig};
use catalog_mirror::violet::signature;
use common::TestApp;
use futures::StreamExt;
use serde_json::{Value, json};

const MERCHANT: u64 = 3001;
const SECRET: &str = "notification-secret";

/// Records every delivery; answers 500 to the first attempt of each notification.
#[derive(Clone, Default)]
struct Receiver {
    deliveries: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut deliveries = receiver.deliveries.lock().unwrap();
    let first_time = !deliveries.iter().any(|(_, seen)| *seen == body);
    deliveries.push((headers, body));
    if first_time {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

async fn start_receiver() -> (Receiver, SocketAddr) {
    let receiver = Receiver::default();
    let router = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (receiver, addr)
}

/// Reads SSE `data:` lines of the stream into parsed notifications.
fn notifications(response: reqwest::Response) -> impl futures::Stream<Item = Value> {
    let mut buffer = String::new();
    response.bytes_stream().flat_map(move |chunk| {
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap_or_default()));
        let mut found = Vec::new();
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            for line in event.lines() {
                if let Some(data) = line.strip_prefix("data:") {
                    found.push(serde_json::from_str::<Value>(data.trim()).expect("JSON data"));
                }
            }
        }
        futures::stream::iter(found)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_ready_follows_searchability_and_webhooks_are_signed_and_retried() {
    let sandbox = Sandbox::start(
        SandboxConfig {
            seed: 5,
            merchants: vec![MerchantSpec {
                id: MERCHANT,
                name: "Notify Goods".into(),
                offers: 250,
                collections: 2,
            }],
            ..Default::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let (receiver, receiver_addr) = start_receiver().await;
    let (_db, app) = TestApp::builder()
        .sandbox(&sandbox)
        .configure(move |settings| {
            settings.notifications.webhook_urls = vec![format!("http://{receiver_addr}/hook")];
            settings.notifications.secret = Secret::new(SECRET);
            settings.sync.failed_retry_base_secs = 3600;
        })
        .spawn()
        .await;

    let stream = app
        .http
        .get(app.url("/notifications/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut events = Box::pin(notifications(stream));

    let target = app.url("/webhooks/violet");
    let options = ScenarioOptions {
        seed: 1,
        max_offer_events: Some(0),
    };
    sandbox
        .play(
            Scenario::Onboarding,
            MERCHANT,
            &target,
            DeliveryFaults::default(),
            &options,
        )
        .await
        .unwrap();

    // The first catalog.ready for the merchant with its whole catalog...
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let event = events.next().await.expect("stream open");
            if event["type"] == "catalog.ready"
                && event["merchant_id"] == MERCHANT
                && event["offers"].as_i64() > Some(0)
            {
                return event;
            }
        }
    })
    .await
    .expect("catalog.ready within a minute");
    // ... is only sent once a search already returns that catalog.
    let found: Value = app
        .http
        .post(app.url("/indexes/offers/search"))
        .json(&json!({"q": "", "filter": format!("merchant_id = {MERCHANT}"), "limit": 0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(found["estimatedTotalHits"].as_i64().unwrap() > 0, "{found}");
    assert!(ready["catalog_version"].as_i64().unwrap() >= 1);

    // A failed sync then its recovery are announced too.
    sandbox
        .play(
            Scenario::FailedThenRecovered,
            MERCHANT,
            &target,
            DeliveryFaults::default(),
            &ScenarioOptions {
                seed: 2,
                max_offer_events: Some(0),
            },
        )
        .await
        .unwrap();

    // Outbound: every notification arrives signed, after a retry of the refused first try.
    let delivered = common::eventually(Duration::from_secs(60), || {
        let receiver = receiver.clone();
        async move {
            let deliveries = receiver.deliveries.lock().unwrap();
            let kinds: Vec<String> = deliveries
                .iter()
                .filter_map(|(_, body)| serde_json::from_slice::<Value>(body).ok())
                .map(|n| n["type"].as_str().unwrap_or("").to_string())
                .collect();
            ["catalog.ready", "sync.failed", "sync.recovered"]
                .iter()
                .all(|k| kinds.iter().filter(|s| s == k).count() >= 2)
        }
    })
    .await;
    let deliveries = receiver.deliveries.lock().unwrap().clone();
    let kinds: Vec<String> = deliveries
        .iter()
        .map(|(_, body)| String::from_utf8_lossy(body).into_owned())
        .collect();
    assert!(
        delivered,
        "each notification retried after the 500 and delivered: {kinds:#?}"
    );
    for (headers, body) in &deliveries {
        let given = headers
            .get("x-catalog-mirror-hmac")
            .and_then(|v| v.to_str().ok())
            .expect("signed");
        assert_eq!(
            given,
            signature::sign(SECRET, body),
            "signature over the raw body"
        );
        assert!(headers.get("x-catalog-mirror-event").is_some());
    }
    app.stop().await;
}

#[tokio::test]
async fn the_stream_requires_the_search_key_when_one_is_set() {
    let (_db, app) = TestApp::builder()
        .configure(|settings| settings.search.api_key = Secret::new("search-key-123"))
        .spawn()
        .await;
    let url = app.url("/notifications/stream");
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        app.http
            .get(&url)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let ok = app
        .http
        .get(&url)
        .bearer_auth("search-key-123")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    drop(ok);
    let by_query = app
        .http
        .get(format!("{url}?key=search-key-123"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_query.status(), 200);
    drop(by_query);
    app.stop().await;
}

/// Log lines written while a test runs, for asserting what never reaches them.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn refuse_every_hook() -> StatusCode {
    StatusCode::INTERNAL_SERVER_ERROR
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_delivery_never_shows_the_target_url_in_errors_logs_or_the_admin_page() {
    // The daemon's logs at its default level (this test's own debug lines too), into a
    // buffer. This binary's other tests log nothing secret, so sharing it is harmless.
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_env_filter("catalog_mirror=debug,info")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .expect("this test installs the process's log subscriber (unset TEST_LOG)");

    // One receiver answers 500; the other address refuses connections. Both URLs hold
    // the receiver's secret in their path and query, as Slack-style hooks do.
    const PATH_SECRET: &str = "path-secret-7f3a";
    const QUERY_SECRET: &str = "query-secret-91c2";
    const ADMIN_TOKEN: &str = "admin-token-for-the-page";
    let refusing = axum::Router::new().route("/hooks/{*rest}", post(refuse_every_hook));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refusing_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, refusing).await });
    let closed_addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (_db, app) = TestApp::builder()
        .configure(move |settings| {
            settings.notifications.webhook_urls = [refusing_addr, closed_addr]
                .iter()
                .map(|addr| format!("http://{addr}/hooks/{PATH_SECRET}?token={QUERY_SECRET}"))
                .collect();
            settings.notifications.secret = Secret::new(SECRET);
            settings.notifications.max_attempts = 2;
            settings.admin.token = Secret::new(ADMIN_TOKEN);
            settings.sync.failed_retry_base_secs = 3600;
        })
        .spawn()
        .await;

    // A failed sync announces sync.failed to both URLs, through the instance's
    // listener: wait until it listens, or the announcement has nobody to reach.
    let listening = common::eventually(Duration::from_secs(10), || {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND query LIKE 'LISTEN%catalog_mirror_notifications%'",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
                > 0
        }
    })
    .await;
    assert!(listening, "the notification listener is connected");
    let url = app.url("/webhooks/violet");
    for (id, topic, status, at) in [
        (
            "s",
            "PRODUCT_SYNC_STARTED",
            "IN_PROGRESS",
            "2026-03-01T10:00:00+0000",
        ),
        (
            "f",
            "PRODUCT_SYNC_FAILED",
            "FAILED",
            "2026-03-01T10:01:00+0000",
        ),
    ] {
        let delivery = common::webhook::Delivery::new(
            id,
            topic,
            &common::webhook::sync_body(77, MERCHANT as i64, status, at),
        )
        .entity("77");
        assert_eq!(delivery.send(&app.http, &url).await.status(), 200);
    }
    let dead = common::eventually(Duration::from_secs(30), || {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM jobs WHERE kind = 'notify' AND state = 'dead'",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
                == 2
        }
    })
    .await;
    assert!(dead, "both deliveries used their two attempts");

    let errors: Vec<String> =
        sqlx::query_scalar("SELECT last_error FROM jobs WHERE kind = 'notify' ORDER BY last_error")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    // The admin page as an operator sees it, signed in.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = no_redirects
        .post(app.admin_url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303, "signed in");
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let page =
        crate::admin_support::page_html(&app, &no_redirects, cookie.split(';').next().unwrap())
            .await;
    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("job is dead after its last attempt"),
        "the failures were logged: {logs}"
    );
    assert!(
        page.contains("id=\"dead-jobs\"") && page.contains("notify"),
        "the page lists the dead jobs: {page}"
    );
    for (place, text) in [
        ("last_error", errors.join("\n")),
        ("page", page),
        ("logs", logs),
    ] {
        for secret in [PATH_SECRET, QUERY_SECRET] {
            assert!(!text.contains(secret), "{place} shows {secret}: {text}");
        }
    }
    // Still useful: each error names the host it could not reach and why.
    assert_eq!(errors.len(), 2);
    let names = |addr: SocketAddr, why: &str| {
        errors
            .iter()
            .any(|e| e.contains(&format!("http://{addr}/")) && e.contains(why))
    };
    assert!(names(closed_addr, "not delivered"), "{errors:?}");
    assert!(names(refusing_addr, "refused with 500"), "{errors:?}");
    app.stop().await;
}
