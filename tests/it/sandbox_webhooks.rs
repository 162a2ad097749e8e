//! The webhook emitter and scenarios against a tiny axum receiver: every delivery's
//! `X-Violet-Hmac` checks out with an independent HMAC-SHA256 (not the crate's
//! `sign`) and a tampered body does not; scenario contents; duplicates reusing
//! event ids; reordering; redelivery after a 500 and after a refused connection.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use catalog_mirror::sandbox::{
    DeliveryFaults, Emitter, MerchantSpec, Sandbox, SandboxConfig, Scenario, ScenarioOptions,
    WebhookEvent,
};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "sandbox-app-secret";

/// The documented algorithm, written out independently of the crate.
fn expected_hmac(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

#[derive(Clone, Debug)]
struct Delivery {
    headers: HashMap<String, String>,
    body: Bytes,
}

impl Delivery {
    fn h(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {name} header"))
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Delivery>>>,
    /// Answer 500 to this many requests first.
    fail_first: Arc<AtomicU32>,
}

impl Receiver {
    async fn start(fail_first: u32) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/webhooks/violet", listener.local_addr().unwrap());
        let r = Receiver {
            url,
            got: Arc::default(),
            fail_first: Arc::new(AtomicU32::new(fail_first)),
        };
        let app = axum::Router::new()
            .route("/webhooks/violet", axum::routing::post(receive))
            .with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        r
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    r.got.lock().unwrap().push(Delivery { headers, body });
    let failing = r
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

async fn sandbox() -> Sandbox {
    let config = SandboxConfig {
        seed: 5,
        merchants: vec![
            MerchantSpec {
                id: 1001,
                name: "Acme".into(),
                offers: 150,
                collections: 3,
            },
            MerchantSpec {
                id: 1002,
                name: "Bolt".into(),
                offers: 10,
                collections: 0,
            },
        ],
        ..SandboxConfig::default()
    };
    Sandbox::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn quick(faults: DeliveryFaults) -> DeliveryFaults {
    DeliveryFaults {
        retry_backoff: Duration::from_millis(5),
        ..faults
    }
}

/// Topics with each run of `OFFER_*` events collapsed to one entry.
fn shape(events: &[WebhookEvent]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in events {
        if !(e.topic.starts_with("OFFER_") && out.last() == Some(&e.topic)) {
            out.push(e.topic.clone());
        }
    }
    out
}

fn assert_verifies(d: &Delivery) {
    let given = d.h("x-violet-hmac");
    assert_eq!(
        given,
        expected_hmac(SECRET, &d.body),
        "signature of {}",
        d.h("x-violet-event-id")
    );
    let mut tampered = d.body.to_vec();
    let at = tampered
        .iter()
        .position(|b| b.is_ascii_digit())
        .expect("a digit to change");
    tampered[at] = if tampered[at] == b'9' {
        b'1'
    } else {
        tampered[at] + 1
    };
    assert_ne!(
        given,
        expected_hmac(SECRET, &tampered),
        "a tampered body must not verify"
    );
    assert_ne!(given, expected_hmac("another-secret", &d.body));
}

#[tokio::test]
async fn every_scenario_delivers_events_that_verify_and_describe_the_catalog() {
    let sb = sandbox().await;
    let catalog = sb.catalog();
    for (n, scenario) in Scenario::ALL.into_iter().enumerate() {
        let rx = Receiver::start(0).await;
        let generation = catalog.generation(1001);
        let events = scenario
            .events(
                &catalog,
                1001,
                &ScenarioOptions {
                    seed: n as u64,
                    max_offer_events: None,
                },
            )
            .unwrap();
        let report = Emitter::new(&rx.url, sb.app_secret())
            .with_faults(quick(DeliveryFaults::default()))
            .play(&events)
            .await;
        assert_eq!(
            (report.events, report.acknowledged, report.sent),
            (events.len(), events.len(), events.len())
        );
        assert!(report.failed.is_empty(), "{:?}", report.failed);

        let got = rx.deliveries();
        assert_eq!(got.len(), events.len());
        let mut ids = HashSet::new();
        for (d, e) in got.iter().zip(&events) {
            assert_verifies(d);
            assert_eq!(d.h("content-type"), "application/json");
            assert_eq!(d.h("x-violet-topic"), e.topic);
            assert_eq!(d.h("x-violet-event-id"), e.event_id);
            assert_eq!(d.h("x-violet-entity-id"), e.entity_id);
            assert_eq!(d.h("x-violet-merchant-id"), "1001");
            assert!(!d.h("x-violet-webhook-id").is_empty());
            assert!(
                ids.insert(e.event_id.clone()),
                "event id {} repeated",
                e.event_id
            );
            assert_eq!(d.json(), e.body);
            let body = d.json();
            if e.topic.contains("_SYNC_") {
                assert_eq!(
                    body["id"].to_string(),
                    e.entity_id,
                    "sync entity id is the sync id"
                );
                assert_eq!(body["merchant_id"], 1001);
                for key in [
                    "status",
                    "total_products",
                    "total_products_synced",
                    "date_last_synced",
                ] {
                    assert!(body.get(key).is_some(), "{} lacks {key}", e.topic);
                }
            } else if e.topic.starts_with("MERCHANT_") {
                assert_eq!(e.entity_id, "1001");
                assert_eq!(body["merchant_name"], "Acme");
            } else if e.topic == "OFFER_REMOVED" {
                let id: u64 = e.entity_id.parse().unwrap();
                assert_eq!(catalog.offer_json(id), None);
                assert_eq!(Some(body), catalog.removed_offer_json(id));
            } else {
                assert!(e.topic.starts_with("OFFER_"), "{}", e.topic);
                assert_eq!(
                    Some(body),
                    catalog.offer_json(e.entity_id.parse().unwrap()),
                    "{} body",
                    e.topic
                );
            }
        }
        // Every STARTED is closed by a COMPLETED or FAILED with the same sync id.
        let syncs: Vec<&WebhookEvent> = events
            .iter()
            .filter(|e| e.topic.contains("_SYNC_"))
            .collect();
        for pair in syncs.chunks(2) {
            assert!(pair[0].topic.ends_with("_STARTED") && !pair[1].topic.ends_with("_STARTED"));
            assert_eq!(pair[0].entity_id, pair[1].entity_id);
        }
        let offers = events
            .iter()
            .filter(|e| e.topic.starts_with("OFFER_"))
            .count();
        match scenario {
            Scenario::Onboarding => {
                assert_eq!(
                    shape(&events),
                    [
                        "MERCHANT_CONNECTED",
                        "PRODUCT_SYNC_STARTED",
                        "OFFER_ADDED",
                        "PRODUCT_SYNC_COMPLETED",
                        "COLLECTION_SYNC_STARTED",
                        "COLLECTION_SYNC_COMPLETED",
                        "MERCHANT_COMPLETE",
                    ]
                );
                assert_eq!(offers as u64, catalog.offer_count(1001));
            }
            Scenario::ScheduledSync => {
                assert_eq!(
                    catalog.generation(1001),
                    generation + 1,
                    "scheduled sync advances the catalog"
                );
                assert_eq!(
                    shape(&events),
                    [
                        "PRODUCT_SYNC_STARTED",
                        "OFFER_ADDED",
                        "OFFER_UPDATED",
                        "OFFER_REMOVED",
                        "PRODUCT_SYNC_COMPLETED"
                    ]
                );
                let count = |t: &str| events.iter().filter(|e| e.topic == t).count();
                assert_eq!(
                    (
                        count("OFFER_ADDED"),
                        count("OFFER_UPDATED"),
                        count("OFFER_REMOVED")
                    ),
                    (1, 3, 1)
                );
                let completed = &events.last().unwrap().body;
                assert_eq!(
                    completed["total_products_synced"],
                    catalog.offer_count(1001)
                );
            }
            Scenario::FailedThenRecovered => {
                assert_eq!(
                    shape(&events),
                    [
                        "PRODUCT_SYNC_STARTED",
                        "PRODUCT_SYNC_FAILED",
                        "PRODUCT_SYNC_STARTED",
                        "PRODUCT_SYNC_COMPLETED"
                    ]
                );
                assert_ne!(
                    events[0].entity_id, events[2].entity_id,
                    "the retry is a new sync"
                );
                assert_eq!(events[1].body["status"], "FAILED");
            }
            Scenario::DisabledThenReenabled => {
                assert_eq!(
                    shape(&events),
                    [
                        "MERCHANT_DISABLED",
                        "MERCHANT_ENABLED",
                        "PRODUCT_SYNC_STARTED",
                        "OFFER_UPDATED",
                        "PRODUCT_SYNC_COMPLETED",
                    ]
                );
                assert_eq!(events[0].body["status"], "DISABLED");
                assert_eq!(offers as u64, catalog.offer_count(1001));
            }
        }
    }
}

#[tokio::test]
async fn event_ids_are_deterministic_and_distinct_between_runs() {
    let a = sandbox().await;
    let b = sandbox().await;
    let opts = ScenarioOptions {
        seed: 9,
        max_offer_events: None,
    };
    let ea = Scenario::Onboarding
        .events(&a.catalog(), 1001, &opts)
        .unwrap();
    let eb = Scenario::Onboarding
        .events(&b.catalog(), 1001, &opts)
        .unwrap();
    assert_eq!(ea, eb, "same seed, same events");
    let other = Scenario::Onboarding
        .events(
            &a.catalog(),
            1001,
            &ScenarioOptions {
                seed: 10,
                ..opts.clone()
            },
        )
        .unwrap();
    assert!(ea.iter().zip(&other).all(|(x, y)| x.event_id != y.event_id));
    let s1 = Scenario::ScheduledSync
        .events(&a.catalog(), 1001, &opts)
        .unwrap();
    let s2 = Scenario::ScheduledSync
        .events(&a.catalog(), 1001, &opts)
        .unwrap();
    let ids1: HashSet<_> = s1.iter().map(|e| e.event_id.clone()).collect();
    assert!(
        s2.iter().all(|e| !ids1.contains(&e.event_id)),
        "a later sync never reuses ids"
    );
    assert_ne!(s1[0].entity_id, s2[0].entity_id);

    let none = Scenario::DisabledThenReenabled
        .events(
            &a.catalog(),
            1001,
            &ScenarioOptions::without_offer_events(1),
        )
        .unwrap();
    assert_eq!(none.len(), 4);
    assert!(none.iter().all(|e| !e.topic.starts_with("OFFER_")));
    let capped = Scenario::Onboarding
        .events(
            &a.catalog(),
            1001,
            &ScenarioOptions {
                seed: 1,
                max_offer_events: Some(5),
            },
        )
        .unwrap();
    assert_eq!(
        capped.iter().filter(|e| e.topic == "OFFER_ADDED").count(),
        5
    );
    assert!(
        Scenario::Onboarding
            .events(&a.catalog(), 4242, &opts)
            .is_err(),
        "unknown merchant"
    );
}

#[tokio::test]
async fn duplicates_reuse_the_event_id_and_the_exact_bytes() {
    let sb = sandbox().await;
    let rx = Receiver::start(0).await;
    let events = Scenario::Onboarding
        .events(&sb.catalog(), 1001, &ScenarioOptions::default())
        .unwrap();
    let faults = DeliveryFaults {
        duplicate_rate: 0.3,
        seed: 4,
        ..DeliveryFaults::default()
    };
    let report = Emitter::new(&rx.url, SECRET)
        .with_faults(quick(faults))
        .play(&events)
        .await;
    assert!(report.duplicates_sent > 10, "{report:?}");
    assert_eq!(report.sent, events.len() + report.duplicates_sent);
    assert_eq!(report.acknowledged, events.len());

    let got = rx.deliveries();
    assert_eq!(got.len(), report.sent);
    let mut by_id: HashMap<String, Vec<&Delivery>> = HashMap::new();
    for d in &got {
        assert_verifies(d);
        by_id
            .entry(d.h("x-violet-event-id").to_string())
            .or_default()
            .push(d);
    }
    assert_eq!(by_id.len(), events.len(), "duplicates add no new event ids");
    let repeated: Vec<_> = by_id.values().filter(|v| v.len() > 1).collect();
    assert_eq!(
        repeated.iter().map(|v| v.len() - 1).sum::<usize>(),
        report.duplicates_sent
    );
    for copies in repeated {
        assert!(
            copies.iter().all(|d| d.body == copies[0].body
                && d.h("x-violet-hmac") == copies[0].h("x-violet-hmac"))
        );
    }
}

#[tokio::test]
async fn out_of_order_shuffles_only_within_small_windows() {
    let sb = sandbox().await;
    let rx = Receiver::start(0).await;
    let events = Scenario::Onboarding
        .events(&sb.catalog(), 1001, &ScenarioOptions::default())
        .unwrap();
    let faults = DeliveryFaults {
        out_of_order: true,
        seed: 8,
        ..DeliveryFaults::default()
    };
    let report = Emitter::new(&rx.url, SECRET)
        .with_faults(quick(faults))
        .play(&events)
        .await;
    let sent: Vec<String> = rx
        .deliveries()
        .iter()
        .map(|d| d.h("x-violet-event-id").to_string())
        .collect();
    assert_eq!(sent, report.deliveries);
    let original: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    assert_ne!(sent, original, "nothing was reordered");
    for (got, want) in sent.chunks(4).zip(original.chunks(4)) {
        let (mut g, mut w) = (got.to_vec(), want.to_vec());
        g.sort();
        w.sort();
        assert_eq!(g, w, "an event left its window");
    }
}

#[tokio::test]
async fn a_500_is_redelivered_with_the_same_event_and_failures_are_reported() {
    let sb = sandbox().await;
    let events = Scenario::FailedThenRecovered
        .events(&sb.catalog(), 1001, &ScenarioOptions::default())
        .unwrap();

    let rx = Receiver::start(1).await;
    let faults = quick(DeliveryFaults {
        redeliver_on_failure: 2,
        ..DeliveryFaults::default()
    });
    let report = Emitter::new(&rx.url, SECRET)
        .with_faults(faults.clone())
        .play(&events)
        .await;
    assert_eq!(
        (report.acknowledged, report.redeliveries, report.sent),
        (4, 1, 5)
    );
    assert!(report.failed.is_empty());
    let got = rx.deliveries();
    assert_eq!(
        got[0].h("x-violet-event-id"),
        got[1].h("x-violet-event-id"),
        "the retry repeats the event"
    );
    assert_eq!(got[0].body, got[1].body);
    got.iter().for_each(assert_verifies);

    let always = Receiver::start(u32::MAX).await;
    let report = Emitter::new(&always.url, SECRET)
        .with_faults(faults.clone())
        .play(&events)
        .await;
    assert_eq!((report.acknowledged, report.sent), (0, 12));
    let failed: Vec<_> = events
        .iter()
        .map(|e| (e.event_id.clone(), Some(500)))
        .collect();
    assert_eq!(report.failed, failed);

    // Nobody listening: connection errors are retried, then reported without a status.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/webhooks/violet", l.local_addr().unwrap())
    };
    let report = Emitter::new(closed, SECRET)
        .with_faults(faults)
        .play(&events[..1])
        .await;
    assert_eq!((report.sent, report.redeliveries), (3, 2));
    assert_eq!(report.failed, vec![(events[0].event_id.clone(), None)]);
}

#[tokio::test]
async fn manual_resend_carries_the_source_event_id() {
    let sb = sandbox().await;
    let rx = Receiver::start(0).await;
    let events = Scenario::FailedThenRecovered
        .events(&sb.catalog(), 1002, &ScenarioOptions::default())
        .unwrap();
    let resent = events[3].manual_resend(1);
    assert_ne!(resent.event_id, events[3].event_id);
    Emitter::new(&rx.url, SECRET)
        .play(std::slice::from_ref(&resent))
        .await;
    let d = &rx.deliveries()[0];
    assert_verifies(d);
    assert_eq!(d.h("x-violet-event-id-source"), events[3].event_id);
    assert_eq!(d.h("x-violet-merchant-id"), "1002");
}

#[tokio::test]
async fn the_control_api_plays_scenarios_with_fresh_event_ids() {
    let sb = sandbox().await;
    let rx = Receiver::start(0).await;
    let control = format!("http://{}/_sandbox", sb.addr());
    let http = reqwest::Client::new();
    let play = json!({"scenario": "failed-then-recovered", "target": rx.url, "merchant_id": 1002});
    for _ in 0..2 {
        let r = http
            .post(format!("{control}/play"))
            .json(&play)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let reports: Value = r.json().await.unwrap();
        assert_eq!(reports[0]["report"]["acknowledged"], 4);
    }
    let got = rx.deliveries();
    assert_eq!(got.len(), 8);
    got.iter().for_each(assert_verifies);
    let ids: HashSet<&str> = got.iter().map(|d| d.h("x-violet-event-id")).collect();
    assert_eq!(ids.len(), 8, "a second play is new events, not duplicates");

    let all = json!({"scenario": "onboarding", "target": rx.url, "max_offer_events": 0});
    let reports: Value = http
        .post(format!("{control}/play"))
        .json(&all)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        reports.as_array().unwrap().len(),
        2,
        "every merchant when none is named"
    );

    for (bad, needle) in [
        (
            json!({"scenario": "weekly", "target": rx.url}),
            "onboarding",
        ),
        (
            json!({"scenario": "onboarding", "target": "ftp://x"}),
            "http",
        ),
        (
            json!({"scenario": "onboarding", "target": rx.url, "merchant_id": 5}),
            "merchant",
        ),
    ] {
        let r = http
            .post(format!("{control}/play"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{bad}");
        let body: Value = r.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().contains(needle), "{body}");
    }
}
