//! Cache invalidation for storefronts: `catalog.ready` on the SSE stream only once a
//! search returns that catalog, and signed, retried outbound webhooks for catalog and
//! sync state notifications.

mod common;

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
use common::{TestApp, TestDb};
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
    let db = TestDb::empty().await;
    let mut settings = common::settings(&db.url);
    settings.violet.base_url = sandbox.base_url();
    settings.notifications.webhook_urls = vec![format!("http://{receiver_addr}/hook")];
    settings.notifications.secret = Secret::new(SECRET);
    settings.sync.failed_retry_base_secs = 3600;
    let app = TestApp::spawn(settings).await;

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
    let db = TestDb::empty().await;
    let mut settings = common::settings(&db.url);
    settings.search.api_key = Secret::new("search-key-123");
    let app = TestApp::spawn(settings).await;
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
