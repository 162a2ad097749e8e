//! A merchant with 1,000,000 offers: nothing is materialised, a page near the end
//! is served quickly, and `advance` stays cheap. One test in this binary so the
//! resident-memory measurement is not disturbed by other tests.

use std::time::{Duration, Instant};

use catalog_mirror::sandbox::{MerchantSpec, Sandbox, SandboxConfig};
use serde_json::{Value, json};

/// Resident set size of this process in KiB (Linux).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_million_offers_are_generated_lazily() {
    const N: u64 = 1_000_000;
    let rss_before = rss_kib();
    let started = Instant::now();
    let config = SandboxConfig {
        seed: 77,
        merchants: vec![MerchantSpec {
            id: 1001,
            name: "Huge Store".into(),
            offers: N,
            collections: 20,
        }],
        ..SandboxConfig::default()
    };
    let sb = Sandbox::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "start took {:?}",
        started.elapsed()
    );
    let catalog = sb.catalog();
    assert_eq!(catalog.offer_count(1001), N);

    let http = reqwest::Client::new();
    let base = sb.base_url();
    let app = |r: reqwest::RequestBuilder| {
        r.header("X-Violet-App-Id", "10000")
            .header("X-Violet-App-Secret", "sandbox-app-secret")
    };
    let user: Value = app(http.post(format!("{base}/login")))
        .json(&json!({"username": "sandbox@example.com", "password": "sandbox-password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = user["token"].as_str().unwrap().to_string();
    let page = |p: u64| {
        app(http.get(format!(
            "{base}/catalog/offers/merchants/1001?page={p}&size=100&include=collections"
        )))
        .header("X-Violet-Token", token.clone())
        .send()
    };

    // The last page (10,000) and the one before it, fetched directly.
    let t = Instant::now();
    let last: Value = page(10_000).await.unwrap().json().await.unwrap();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(2), "last page took {took:?}");
    assert_eq!(last["last"], true);
    assert_eq!(last["number"], 9_999);
    let content = last["content"].as_array().unwrap();
    assert_eq!(content.len(), 100);
    assert_eq!(content[99]["id"].as_u64(), Some(1001 * 10_000_000 + N));
    assert_eq!(
        Some(&content[99]),
        catalog.offer_json(1001 * 10_000_000 + N).as_ref()
    );
    let before_last: Value = page(9_999).await.unwrap().json().await.unwrap();
    assert_eq!(before_last["last"], false);
    let beyond: Value = page(10_001).await.unwrap().json().await.unwrap();
    assert_eq!(
        (beyond["empty"].as_bool(), beyond["last"].as_bool()),
        (Some(true), Some(true))
    );

    // Changes on a million offers stay cheap, and paging past them stays exact.
    let t = Instant::now();
    let cs = catalog.advance(1001);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "advance took {:?}",
        t.elapsed()
    );
    // The default change mix: 1% added, 2% updated, 1% removed.
    assert_eq!(
        (cs.added.len(), cs.updated.len(), cs.removed.len()),
        (10_000, 20_000, 10_000)
    );
    assert_eq!(catalog.offer_count(1001), N);
    let t = Instant::now();
    let last: Value = page(10_000).await.unwrap().json().await.unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "last page after advance took {:?}",
        t.elapsed()
    );
    let last_ids: Vec<u64> = last["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        last_ids,
        cs.added[cs.added.len() - 100..].to_vec(),
        "the newest offers are at the end"
    );
    assert_eq!(last["last"], true);

    // Nothing proportional to a million offers was kept (a materialised catalog of
    // this size would take gigabytes).
    let grown_mib = rss_kib().saturating_sub(rss_before) / 1024;
    eprintln!("resident memory grew by {grown_mib} MiB");
    assert!(grown_mib < 64, "resident memory grew by {grown_mib} MiB");
    sb.shutdown().await;
}
