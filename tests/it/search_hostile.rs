//! Hostile load against the daemon binary (DESIGN invariant 11): while hostile bodies
//! (`limit: 1e9`, a 400-query multi-search, the largest multi-search allowed), a flood
//! of slow clients (ones that never read their answer, ones that never finish their
//! body) and a burst of searches beyond the queue arrive at once, the daemon's resident
//! memory stays under [`RSS_BOUND_MIB`], `/healthz` keeps answering and webhook intake
//! keeps acknowledging.
//!
//! The daemon runs as a child process with its default configuration (only addresses,
//! database and index directory set), so its RSS is its own. The catalog is 5,000
//! offers of about 600 bytes each: with the bounds off, one 400-query `limit: 1e9`
//! multi-search alone would hold 400 × 5,000 hits, well over a gigabyte.

use crate::common;
use crate::search_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::TestDb;
use common::daemon::Daemon;
use common::webhook::Delivery;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The stated bound: the daemon's RSS under the whole flood (a debug build). Measured
/// on 2026-12-02: 262 to 271 MiB, the same for the commit that introduced the bound
/// (e7b73e8) and for today's code, so 256 had no margin on this machine. Without the
/// request bounds one multi-search alone grew the daemon by 841 MiB.
const RSS_BOUND_MIB: u64 = 320;
const OFFERS: i64 = 5000;
/// How long the flood lasts.
const FLOOD: Duration = Duration::from_secs(8);

/// Resident memory of process `pid` in MiB, from /proc (`None` once it is gone).
fn rss_mib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024)
}

/// `OFFERS` offers of one merchant, written in one statement, then published.
async fn seed(pool: &PgPool) {
    sqlx::query("INSERT INTO merchants (merchant_id, name) VALUES (2001, 'Hostile Goods')")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        r#"INSERT INTO offers (offer_id, merchant_id, name, html_description, vendor, seller, tags,
               category, available, visible, min_price, max_price, currency, status, publishing_status,
               date_last_modified, content_hash, raw)
           SELECT 2001000000 + i, 2001,
                  (ARRAY['Red','Blue','Green','Black'])[i % 4 + 1] || ' Wool Sweater ' || i,
                  '<p>' || repeat('A warm knitted sweater made of soft wool. ', 10) || '</p>',
                  'Vendor ' || (i % 37), 'Hostile Goods', ARRAY['tag' || (i % 11)], 'Apparel',
                  true, true, 1000 + i, 1000 + i, 'USD', 'AVAILABLE', 'PUBLISHED',
                  now(), 'x', '{}'
           FROM generate_series(1, $1) AS i"#,
    )
    .bind(OFFERS)
    .execute(pool)
    .await
    .unwrap();
    search_support::publish(pool, 2001, None).await;
}

/// Peak RSS seen by a sampler running until `stop`.
fn sample_rss(
    daemon: &Daemon,
    stop: Arc<AtomicBool>,
) -> (Arc<AtomicU64>, std::thread::JoinHandle<()>) {
    let peak = Arc::new(AtomicU64::new(0));
    let pid = daemon.child.id();
    let seen = peak.clone();
    let handle = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Some(mib) = rss_mib(pid) {
                seen.fetch_max(mib, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    (peak, handle)
}

fn hostile_search() -> Value {
    json!({ "q": "wool sweater", "limit": 1_000_000_000, "attributesToHighlight": ["name"] })
}

fn multi_search(queries: usize) -> Value {
    let query = json!({ "indexUid": "offers", "limit": 1_000_000_000 });
    json!({ "queries": vec![query; queries] })
}

/// A connection that sends a search and never reads a byte of the answer.
async fn non_reader(addr: SocketAddr) -> Option<TcpStream> {
    let body = hostile_search().to_string();
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let request = format!(
        "POST /indexes/offers/search HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    Some(stream)
}

/// A connection that sends a search's headers and a few bytes of its body, no more.
async fn half_sender(addr: SocketAddr) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(b"POST /multi-search HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 4096\r\n\r\n{\"queries\":[")
        .await
        .ok()?;
    Some(stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_load_keeps_rss_bounded_and_health_and_intake_answering() {
    let (db, pool) = TestDb::migrated().await;
    seed(&pool).await;
    let index = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn(
        None,
        &[
            ("CATALOG_MIRROR_LOG__FILTER", "info".into()),
            ("CATALOG_MIRROR_DATABASE__URL", db.url.clone()),
            ("CATALOG_MIRROR_HTTP__PUBLIC_ADDR", "127.0.0.1:0".into()),
            ("CATALOG_MIRROR_HTTP__ADMIN_ADDR", "127.0.0.1:0".into()),
            (
                "CATALOG_MIRROR_SEARCH__INDEX_DIR",
                index.path().display().to_string(),
            ),
        ],
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let ready = common::eventually(Duration::from_secs(60), || async {
        let Ok(response) = http
            .post(daemon.url("/indexes/offers/search"))
            .json(&json!({ "hitsPerPage": 0 }))
            .send()
            .await
        else {
            return false;
        };
        response
            .json::<Value>()
            .await
            .ok()
            .and_then(|body| body["totalHits"].as_u64())
            .is_some_and(|total| total >= 1000)
    })
    .await;
    assert!(ready, "the catalog was never indexed");
    let before = rss_mib(daemon.child.id()).expect("the daemon is running");

    let stop = Arc::new(AtomicBool::new(false));
    let (peak, sampler) = sample_rss(&daemon, stop.clone());
    let started = Instant::now();
    let flooding = move || started.elapsed() < FLOOD;

    // Hostile bodies, over and over.
    let mut hostile = Vec::new();
    for kind in 0..4 {
        let (http, base) = (http.clone(), daemon.url(""));
        hostile.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            while flooding() {
                let (path, body) = match kind {
                    0 | 1 => ("/indexes/offers/search", hostile_search()),
                    2 => ("/multi-search", multi_search(400)),
                    _ => ("/multi-search", multi_search(50)),
                };
                let response = http.post(format!("{base}{path}")).json(&body).send().await;
                let Ok(response) = response else { continue };
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                let hits = body["hits"].as_array().map(Vec::len);
                statuses.push((kind, status, body["code"].as_str().map(str::to_owned), hits));
            }
            statuses
        }));
    }

    // A flood of slow clients: 200 that never read their answer, 100 that never finish
    // their body, all held open for the whole flood.
    let addr = daemon.public;
    let slow = tokio::spawn(async move {
        let mut held = Vec::new();
        for i in 0..300 {
            let stream = if i % 3 == 2 {
                half_sender(addr).await
            } else {
                non_reader(addr).await
            };
            held.extend(stream);
        }
        while flooding() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        held.len()
    });

    // A burst far beyond the queue: 1000 searches at once.
    let burst = {
        let (http, url) = (http.clone(), daemon.url("/indexes/offers/search"));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let requests: Vec<_> = (0..1000)
                .map(|i| {
                    let (http, url) = (http.clone(), url.clone());
                    tokio::spawn(async move {
                        let q = ["red", "blue", "green", "black"][i % 4];
                        let body = json!({ "q": q, "limit": 20 });
                        match http.post(url).json(&body).send().await {
                            Ok(response) => {
                                let status = response.status().as_u16();
                                let retry = response.headers().contains_key("retry-after");
                                let body: Value = response.json().await.unwrap_or(Value::Null);
                                (status, retry, body["code"].as_str().map(str::to_owned))
                            }
                            Err(_) => (0, false, None),
                        }
                    })
                })
                .collect();
            let mut answers = Vec::new();
            for request in requests {
                answers.push(request.await.unwrap());
            }
            answers
        })
    };

    // Meanwhile: /healthz and webhook intake, every 100 ms.
    let mut health_worst = Duration::ZERO;
    let mut intake_worst = Duration::ZERO;
    let mut checks = 0;
    while flooding() {
        let sent = Instant::now();
        let health = http.get(daemon.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        health_worst = health_worst.max(sent.elapsed());
        let delivery = Delivery::new(
            &format!("evt-hostile-{checks}"),
            "HOSTILE_PING",
            &json!({ "id": checks }),
        );
        let sent = Instant::now();
        let acknowledged = delivery.send(&http, &daemon.url("/webhooks/violet")).await;
        let status = acknowledged.status();
        let answer = acknowledged.text().await.unwrap_or_default();
        assert_eq!(
            status, 200,
            "intake acknowledges during the flood: {answer}"
        );
        intake_worst = intake_worst.max(sent.elapsed());
        checks += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut statuses = Vec::new();
    for task in hostile {
        statuses.extend(task.await.unwrap());
    }
    let slow_opened = slow.await.unwrap();
    let answers = burst.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);

    let refused = answers
        .iter()
        .filter(|(status, retry, code)| {
            *status == 503 && *retry && code.as_deref() == Some("too_many_search_requests")
        })
        .count();
    let served = answers.iter().filter(|(status, ..)| *status == 200).count();
    let timed_out = answers
        .iter()
        .filter(|(_, _, code)| code.as_deref() == Some("search_timeout"))
        .count();
    eprintln!(
        "rss before {before} MiB, peak {peak} MiB (bound {RSS_BOUND_MIB}); {checks} health and \
         intake checks, worst {health_worst:?} / {intake_worst:?}; {slow_opened} slow clients; \
         burst: {served} served, {refused} refused 503, {timed_out} timed out; {} hostile requests",
        statuses.len()
    );
    assert!(
        peak < RSS_BOUND_MIB,
        "peak RSS {peak} MiB over {RSS_BOUND_MIB} MiB"
    );
    assert!(
        checks >= 20,
        "health and intake were checked all along: {checks}"
    );
    // Generous: the machine running the tests may be busy with compilers (runs on two
    // shared cores saw up to 1.7 s for either).
    assert!(health_worst < Duration::from_secs(5), "{health_worst:?}");
    assert!(intake_worst < Duration::from_secs(5), "{intake_worst:?}");
    assert!(
        refused > 0,
        "a burst of 1000 goes beyond the queue: {answers:?}"
    );
    assert!(served > 0);
    for (status, _, code) in &answers {
        assert!(
            matches!(status, 200 | 503),
            "a burst search gets an answer or a 503: {status} {code:?}"
        );
    }
    for (kind, status, code, hits) in &statuses {
        match kind {
            2 => assert_eq!(
                (*status, code.as_deref()),
                (400, Some("bad_request")),
                "400 queries are refused"
            ),
            _ => assert!(
                *status == 200 || *status == 503,
                "kind {kind}: {status} {code:?}"
            ),
        }
        if *kind < 2 && *status == 200 {
            assert_eq!(*hits, Some(1000), "limit 1e9 answers max_total_hits hits");
        }
    }
    assert!(
        statuses
            .iter()
            .any(|(kind, status, ..)| *kind == 2 && *status == 400)
    );
    // The daemon is still whole after the flood.
    let response = http
        .post(daemon.url("/indexes/offers/search"))
        .json(&json!({ "q": "wool", "limit": 5 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
