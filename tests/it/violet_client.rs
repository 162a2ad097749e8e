//! The Violet client against the real sandbox (no mocks), happy paths and auth:
//! lazy login, token renewal before `exp` and after server-side expiry, paging a
//! 10,000-offer merchant to the last page exactly, collections, both SKU quantity
//! spellings, wrong credentials failing at once, client-side rate limits.
//! Injected faults (429, 5xx, hangs, broken pages) are in `violet_faults.rs`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use catalog_mirror::config::Secret;
use catalog_mirror::violet::{Offer, Page, VioletError};
use futures::{StreamExt, TryStreamExt};

use crate::common;

use common::violet::*;

#[tokio::test]
async fn logs_in_lazily_once_and_reads_merchants_and_offers() {
    let sandbox = sandbox(30, Duration::from_secs(3600)).await;
    let client = client(&settings(&sandbox));
    assert_eq!(
        sandbox.stats().logins,
        0,
        "building the client sends nothing"
    );

    let merchant = client
        .merchant(MERCHANT)
        .await
        .unwrap()
        .expect("merchant exists");
    assert_eq!(merchant.id, MERCHANT);
    assert_eq!(merchant.merchant_name.as_deref(), Some("Acme Outfitters"));
    assert_eq!(
        Some(&merchant.raw),
        sandbox.catalog().merchant_json(MERCHANT as u64).as_ref()
    );
    assert!(
        client.merchant(4242).await.unwrap().is_none(),
        "404 is None"
    );

    let id = first_offer_id(&sandbox);
    let offer = client.offer(id).await.unwrap().expect("offer exists");
    assert_eq!(offer.id, id);
    assert_eq!(offer.merchant_id, Some(MERCHANT));
    assert_eq!(
        Some(&offer.raw),
        sandbox.catalog().offer_json(id as u64).as_ref(),
        "raw is the offer as served"
    );
    assert!(client.offer(id + 5_000_000).await.unwrap().is_none());

    let stats = sandbox.stats();
    assert_eq!(
        (stats.logins, stats.refreshes),
        (1, 0),
        "one login serves every call"
    );
    assert_eq!(stats.requests, 5, "login + 4 calls, no retries");
}

#[tokio::test]
async fn pages_a_10000_offer_merchant_to_the_last_page_exactly() {
    let sandbox = sandbox(10_000, Duration::from_secs(3600)).await;
    let client = client(&settings(&sandbox));
    let pages: Vec<Page<Offer>> = client.offer_pages(MERCHANT).try_collect().await.unwrap();

    assert_eq!(pages.len(), 100, "10,000 offers at 100 a page");
    for (i, page) in pages.iter().enumerate() {
        assert_eq!(
            page.number,
            Some(i as i64),
            "0-based number in the response"
        );
        assert_eq!(page.content.len(), 100);
        assert_eq!(page.last, i == 99, "only the final page says last");
        assert_eq!(
            (page.total_elements, page.total_pages),
            (0, 0),
            "counts are not served"
        );
    }
    let ids: Vec<i64> = pages
        .iter()
        .flat_map(|p| p.content.iter().map(|o| o.id))
        .collect();
    let unique: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 10_000);
    assert_eq!(unique.len(), 10_000, "no offer served twice");
    assert_eq!(
        unique,
        sandbox_offer_ids(&sandbox),
        "exactly the sandbox's offers"
    );
    let sample = &pages[42].content[17];
    assert_eq!(
        Some(&sample.raw),
        sandbox.catalog().offer_json(sample.id as u64).as_ref()
    );
    assert!(
        pages
            .iter()
            .flat_map(|p| &p.content)
            .all(|o| o.raw.get("collections").is_some()),
        "include=collections was sent"
    );
    assert_eq!(sandbox.stats().pages_served, 100, "no page fetched twice");
}

#[tokio::test]
async fn renews_tokens_before_exp_and_after_the_server_expires_them() {
    // Tokens live 4 s (`exp` in whole seconds: 3-4 s left at login); the default
    // 300 s margin is longer, so the client renews half-way (after 1.5-2 s) instead
    // of before every call.
    let sandbox = sandbox(250, Duration::from_secs(4)).await;
    let client = client(&settings(&sandbox));
    client.merchant(MERCHANT).await.unwrap().unwrap();
    client.merchant(MERCHANT).await.unwrap().unwrap();
    assert_eq!((sandbox.stats().logins, sandbox.stats().refreshes), (1, 0));

    tokio::time::sleep(Duration::from_millis(2_100)).await;
    client.merchant(MERCHANT).await.unwrap().unwrap();
    let stats = sandbox.stats();
    assert_eq!(
        (stats.logins, stats.refreshes),
        (1, 1),
        "refreshed ahead of exp"
    );
    assert_eq!(stats.expired_tokens, 0, "never sent an expired token");

    // Server-side expiry in the middle of a listing: 401 error_code 11, refresh, resend.
    let mut pages = client.offer_pages(MERCHANT);
    let first = pages.next().await.unwrap().unwrap();
    sandbox.expire_tokens();
    let mut ids: HashSet<i64> = first.content.iter().map(|o| o.id).collect();
    while let Some(page) = pages.next().await {
        ids.extend(page.unwrap().content.iter().map(|o| o.id));
    }
    assert_eq!(ids, sandbox_offer_ids(&sandbox));
    let stats = sandbox.stats();
    assert_eq!(stats.expired_tokens, 1, "one 401 error_code 11");
    assert_eq!(
        (stats.logins, stats.refreshes),
        (1, 2),
        "one refresh, no new login"
    );
}

#[tokio::test]
async fn reads_both_sku_quantity_spellings_from_sandbox_offers() {
    let sandbox = sandbox(300, Duration::from_secs(3600)).await;
    let client = client(&settings(&sandbox));
    let offers: Vec<Offer> = client.offers(MERCHANT).try_collect().await.unwrap();
    let (mut short, mut long) = (0, 0);
    for offer in &offers {
        let raw_skus = offer.raw["skus"].as_array().expect("raw skus");
        assert_eq!(raw_skus.len(), offer.skus.len());
        for (sku, raw) in offer.skus.iter().zip(raw_skus) {
            let expected = if let Some(q) = raw.get("qty_available") {
                short += 1;
                q.as_i64()
            } else {
                long += 1;
                raw["quantity_available"].as_i64()
            };
            assert!(expected.is_some(), "sandbox SKU without a quantity: {raw}");
            assert_eq!(sku.quantity, expected, "sku {}", sku.id);
        }
    }
    assert!(
        short > 0 && long > 0,
        "both spellings seen: {short} / {long}"
    );
}

#[tokio::test]
async fn lists_collections_and_their_offers() {
    let sandbox = sandbox(200, Duration::from_secs(3600)).await;
    let client = client(&settings(&sandbox));
    let collections: Vec<_> = client.collections(MERCHANT).try_collect().await.unwrap();
    assert_eq!(collections.len(), 5);
    let catalog = sandbox.catalog();
    for collection in &collections {
        assert_eq!(
            Some(&collection.raw),
            catalog.collection_json(collection.id as u64).as_ref()
        );
        let ids: Vec<i64> = client
            .collection_offers(collection.id)
            .map_ok(|o| o.id)
            .try_collect()
            .await
            .unwrap();
        let expected: Vec<i64> = catalog
            .collection_offer_ids(collection.id as u64)
            .into_iter()
            .map(|id| id as i64)
            .collect();
        assert_eq!(ids, expected, "collection {}", collection.id);
    }
}

#[tokio::test]
async fn wrong_credentials_fail_at_once_without_retries() {
    let sandbox = sandbox(10, Duration::from_secs(3600)).await;
    let mut wrong_secret = settings(&sandbox);
    wrong_secret.app_secret = Secret::new("not-the-app-secret");
    let err = client(&wrong_secret).merchant(MERCHANT).await.unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
    assert_eq!(err.status(), Some(403));
    let text = err.to_string();
    assert!(text.starts_with("POST /login: HTTP 403"), "{text}");
    assert_no_secret(&text, &wrong_secret);
    assert_eq!(sandbox.stats().requests, 1, "refused once, never retried");

    let mut wrong_password = settings(&sandbox);
    wrong_password.password = Secret::new("not-the-password");
    let err = client(&wrong_password)
        .offers(MERCHANT)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(matches!(err, VioletError::Unauthorized { .. }), "{err:?}");
    assert_no_secret(&err.to_string(), &wrong_password);
    assert_eq!(sandbox.stats().requests, 2);
}

#[tokio::test]
async fn client_side_merchant_rate_limit_paces_requests() {
    let sandbox = sandbox(10, Duration::from_secs(3600)).await;
    let mut settings = settings(&sandbox);
    settings.merchant_rate_limit_per_sec = 5;
    let client = client(&settings);
    client.login().await.unwrap();
    let started = Instant::now();
    let calls = (0..10).map(|_| client.merchant(MERCHANT));
    for result in futures::future::join_all(calls).await {
        result.unwrap().unwrap();
    }
    // A burst of 5, then one every 200 ms.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "took {took:?}");
    // Merchant 1001's budget is spent; five calls about merchant 1002 are not held
    // back by it (a shared budget would space them 200 ms apart).
    let started = Instant::now();
    let calls = (0..5).map(|_| client.merchant(1002));
    for result in futures::future::join_all(calls).await {
        assert!(result.unwrap().is_none(), "1002 is not a sandbox merchant");
    }
    let took = started.elapsed();
    assert!(took < Duration::from_millis(600), "took {took:?}");
}
