//! The Violet client against the real sandbox's fault knobs (no mocks): 429 with
//! Retry-After waited out (and clamped), 5xx and hanging requests retried, giving up
//! after the maximum with a clear error, truncated and malformed pages retried or
//! failing the fetch cleanly, a failing page ending the listing there.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use catalog_mirror::sandbox::{PageFault, RateLimit};
use catalog_mirror::violet::{Offer, Page, VioletClient, VioletError};
use futures::{StreamExt, TryStreamExt};

use crate::common;

use common::violet::*;

async fn all_pages(client: &VioletClient) -> Vec<Result<Page<Offer>, VioletError>> {
    client.offer_pages(MERCHANT).collect().await
}

#[tokio::test]
async fn waits_out_429_retry_after_and_clamps_it() {
    let sandbox = sandbox(10, Duration::from_secs(3600)).await;
    let client = client(&settings(&sandbox));
    client.login().await.unwrap();
    // Two requests a second per merchant, Retry-After 1 s. Our own backoff (10-50 ms,
    // 3 retries) would be spent long before a token comes back: only honouring
    // Retry-After gets the third and fourth calls through.
    sandbox.set_knobs(|k| {
        k.rate_limit = Some(RateLimit {
            requests_per_sec: 2,
            retry_after_secs: 1,
        });
    });
    let started = Instant::now();
    for _ in 0..4 {
        client.merchant(MERCHANT).await.expect("429 is waited out");
    }
    let waited = started.elapsed();
    assert!(
        sandbox.stats().rate_limited >= 1,
        "the sandbox did answer 429"
    );
    assert!(
        waited >= Duration::from_millis(950),
        "waited only {waited:?}"
    );
    assert!(waited < Duration::from_secs(4), "waited {waited:?}");

    // Retry-After 30 s is clamped to retry_after_max_secs = 1.
    let mut clamped = settings(&sandbox);
    clamped.retry_after_max_secs = 1;
    let client = VioletClient::new(&clamped).unwrap();
    client.login().await.unwrap();
    sandbox.set_knobs(|k| {
        k.rate_limit = Some(RateLimit {
            requests_per_sec: 1,
            retry_after_secs: 30,
        });
    });
    let before = sandbox.stats().rate_limited;
    let started = Instant::now();
    client.merchant(MERCHANT).await.unwrap();
    client
        .merchant(MERCHANT)
        .await
        .expect("clamped wait, then success");
    let waited = started.elapsed();
    assert_eq!(sandbox.stats().rate_limited, before + 1);
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(5),
        "waited {waited:?}"
    );
}

#[tokio::test]
async fn retries_503_and_hanging_requests_then_succeeds() {
    let sandbox = sandbox(10, Duration::from_secs(3600)).await;
    let mut settings = settings(&sandbox);
    settings.request_timeout_ms = 300;
    let client = client(&settings);
    client.login().await.unwrap();

    sandbox.set_knobs(|k| k.fail_next_5xx = 2);
    let offer = client
        .offer(first_offer_id(&sandbox))
        .await
        .expect("third attempt succeeds");
    assert!(offer.is_some());
    assert_eq!(sandbox.stats().server_errors, 2);

    sandbox.set_knobs(|k| k.hang_next = 1);
    let started = Instant::now();
    client
        .merchant(MERCHANT)
        .await
        .expect("timeout is retried")
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(sandbox.stats().hangs, 1);
    assert_eq!(
        sandbox.stats().requests,
        1 + 3 + 2,
        "login, 2 x 503 + 1, hang + 1"
    );
}

#[tokio::test]
async fn gives_up_after_the_maximum_with_a_clear_error() {
    let sandbox = sandbox(10, Duration::from_secs(3600)).await;
    let mut settings = settings(&sandbox);
    settings.max_retries = 2;
    let client = client(&settings);
    client.login().await.unwrap();
    sandbox.set_knobs(|k| k.fail_next_5xx = 100);

    let mut pages = client.offer_pages(MERCHANT);
    let err = pages.next().await.unwrap().unwrap_err();
    assert!(
        pages.next().await.is_none(),
        "the stream ends after its first error"
    );
    match &err {
        VioletError::GaveUp { attempts, last, .. } => {
            assert_eq!(*attempts, 3);
            assert_eq!(last.status(), Some(503));
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(
        text.contains("GET /catalog/offers/merchants/1001?page=1&size=100"),
        "{text}"
    );
    assert!(text.contains("gave up after 3 attempts"), "{text}");
    assert!(text.contains("HTTP 503"), "{text}");
    assert_no_secret(&text, &settings);
    assert_no_secret(&format!("{err:?} {client:?}"), &settings);
    assert_eq!(
        sandbox.stats().server_errors,
        3,
        "exactly 1 + max_retries attempts"
    );
}

#[tokio::test]
async fn truncated_and_malformed_pages_are_retried() {
    let sandbox = sandbox(250, Duration::from_secs(3600)).await;
    let client = client(&settings(&sandbox));
    sandbox.set_knobs(|k| {
        k.truncate_next = 1;
        k.malformed_next = 1;
    });
    let offers: Vec<Offer> = client.offers(MERCHANT).try_collect().await.unwrap();
    let ids: HashSet<i64> = offers.iter().map(|o| o.id).collect();
    assert_eq!((offers.len(), ids), (250, sandbox_offer_ids(&sandbox)));
    let stats = sandbox.stats();
    assert_eq!(
        (stats.truncated, stats.malformed, stats.pages_served),
        (1, 1, 3)
    );
}

#[tokio::test]
async fn persistently_broken_pages_fail_the_fetch_cleanly() {
    let sandbox = sandbox(250, Duration::from_secs(3600)).await;
    let mut settings = settings(&sandbox);
    settings.max_retries = 1;
    let client = client(&settings);

    for (truncate, malformed, expect) in [(2, 0, "EOF"), (0, 2, "not a catalog page")] {
        sandbox.set_knobs(|k| {
            k.truncate_next = truncate;
            k.malformed_next = malformed;
        });
        let results = all_pages(&client).await;
        assert_eq!(results.len(), 1, "nothing after the error");
        let err = results.into_iter().next().unwrap().unwrap_err();
        let VioletError::GaveUp {
            attempts: 2, last, ..
        } = &err
        else {
            panic!("expected GaveUp after 2 attempts, got {err:?}");
        };
        assert!(
            matches!(**last, VioletError::Decode { page: Some(1), .. }),
            "{last:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("cannot decode response (page 1)") && text.contains(expect),
            "{text}"
        );
        assert_no_secret(&text, &settings);
    }
}

#[tokio::test]
async fn a_failing_page_ends_the_listing_there_and_a_transient_one_recovers() {
    let sandbox = sandbox(500, Duration::from_secs(3600)).await;
    let mut settings = settings(&sandbox);
    settings.page_size = 20;
    settings.max_retries = 2;
    let client = client(&settings);

    sandbox.set_knobs(|k| {
        k.fail_at_page = Some(PageFault {
            merchant_id: Some(MERCHANT as u64),
            page: 17,
            times: None,
        });
    });
    let results = all_pages(&client).await;
    assert_eq!(results.len(), 17, "16 pages, then the error, then nothing");
    assert!(
        results[..16]
            .iter()
            .all(|r| r.as_ref().is_ok_and(|p| !p.last))
    );
    let err = results[16].as_ref().unwrap_err();
    assert!(err.to_string().contains("?page=17&size=20"), "{err}");
    assert_eq!(err.status(), Some(500));

    sandbox.set_knobs(|k| {
        k.fail_at_page = Some(PageFault {
            merchant_id: Some(MERCHANT as u64),
            page: 17,
            times: Some(2),
        });
    });
    let offers: Vec<Offer> = client.offers(MERCHANT).try_collect().await.unwrap();
    assert_eq!(offers.len(), 500);
}
