//! Full, safe and collections refreshes against the real sandbox and PostgreSQL, driven
//! through the real job queue with the application's runner: onboarding mirrors the
//! catalog exactly, a second sync converges exactly, a sync failing at page 37 of 50
//! changes nothing and its retry converges, a safe refresh never removes, refreshes of
//! several merchants and kinds run together, and cancellation stops a refresh.

use crate::common;
use crate::mirror_common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use catalog_mirror::lifecycle::SyncKind;
use catalog_mirror::mirror::queries;
use catalog_mirror::sandbox::PageFault;
use catalog_mirror::work::{JobKind, RefreshMode};
use mirror_common::{
    Harness, assert_collections_match, assert_offers_match, assert_same_ids, last_change, merchant,
    snapshot, staged_rows,
};
use tokio_util::sync::CancellationToken;

const M: i64 = 1001;

fn products(mode: RefreshMode) -> JobKind {
    JobKind::RefreshProducts {
        merchant_id: M,
        mode,
    }
}

fn collections(mode: RefreshMode) -> JobKind {
    JobKind::RefreshCollections {
        merchant_id: M,
        mode,
    }
}

/// Onboards merchant M: a full products and a full collections refresh through the queue.
async fn onboard(h: &Harness) {
    let a = h.enqueue(products(RefreshMode::Full)).await;
    let b = h.enqueue(collections(RefreshMode::Full)).await;
    assert_eq!(h.run_jobs().await, 2);
    assert_eq!(h.job(a).await.0, "done", "{:?}", h.job(a).await);
    assert_eq!(h.job(b).await.0, "done", "{:?}", h.job(b).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onboarding_mirrors_a_5000_offer_merchant_offer_by_offer_sku_by_sku_and_membership_by_membership()
 {
    let h = Harness::start(vec![merchant(M as u64, 5_000, 8)]).await;
    onboard(&h).await;

    let catalog = h.catalog();
    assert_eq!(assert_offers_match(&h.pool, &catalog, M).await, 5_000);
    let members = assert_collections_match(&h.pool, &catalog, M).await;
    assert!(members > 1_000, "collections have members ({members})");

    let (version, count): (i64, i64) =
        sqlx::query_as("SELECT catalog_version, offer_count FROM merchants WHERE merchant_id = $1")
            .bind(M)
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert_eq!(
        (version, count),
        (2, 5_000),
        "one version per publish; all offers live"
    );
    let changes: Vec<(String, Option<Vec<i64>>, i32)> =
        sqlx::query_as("SELECT reason, offer_ids, upserted FROM change_log WHERE merchant_id = $1 ORDER BY change_no")
            .bind(M)
            .fetch_all(&h.pool)
            .await
            .unwrap();
    assert_eq!(changes.len(), 2);
    let products_change = changes
        .iter()
        .find(|c| c.0 == "full_refresh")
        .expect("products change");
    assert_eq!(products_change.2, 5_000);
    let all: Vec<i64> = catalog.offer_ids(M as u64).map(|id| id as i64).collect();
    assert_eq!(
        products_change.1.as_deref(),
        Some(&all[..]),
        "the change names every new offer"
    );
    assert_eq!(
        staged_rows(&h.pool).await,
        0,
        "staging is emptied after publishing"
    );

    // The storefront sees what the `storefront_offers` view (the one statement of the
    // rule, pinned case by case in tests/it/search_index.rs) selects from the mirror, which
    // equals the sandbox (above): the sandbox's hidden offers are left out.
    let expected: Vec<i64> = sqlx::query_scalar(
        "SELECT offer_id FROM storefront_offers WHERE merchant_id = $1 ORDER BY offer_id",
    )
    .bind(M)
    .fetch_all(&h.pool)
    .await
    .unwrap();
    let shown: Vec<i64> = queries::storefront_offers(&h.pool, M)
        .await
        .unwrap()
        .iter()
        .map(|o| o.offer_id)
        .collect();
    assert!(
        expected.len() > 4_000 && expected.len() < 5_000,
        "{}",
        expected.len()
    );
    assert_eq!(shown, expected);

    // Nothing changed upstream: a second refresh rewrites nothing and logs nothing.
    let before = snapshot(&h.pool, M).await;
    let report = h
        .runner
        .mirror()
        .refresh_products(M, RefreshMode::Full, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        (
            report.seen,
            report.upserted,
            report.removed,
            report.change_no
        ),
        (5_000, 0, 0, None)
    );
    assert_eq!(
        snapshot(&h.pool, M).await,
        before,
        "unchanged offers are skipped by content hash"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sync_with_adds_updates_and_removals_converges_exactly() {
    let h = Harness::start(vec![merchant(M as u64, 5_000, 8)]).await;
    onboard(&h).await;
    let versions_before: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT offer_id, catalog_version FROM offers WHERE merchant_id = $1 ORDER BY offer_id",
    )
    .bind(M)
    .fetch_all(&h.pool)
    .await
    .unwrap();

    let catalog = h.catalog();
    let change = catalog.advance(M as u64);
    assert!(!change.added.is_empty() && !change.updated.is_empty() && !change.removed.is_empty());
    onboard(&h).await;

    assert_offers_match(&h.pool, &catalog, M).await;
    assert_collections_match(&h.pool, &catalog, M).await;

    // Exactly the changed offers were written, and the change log names exactly them.
    let expected: BTreeSet<i64> = change
        .added
        .iter()
        .chain(&change.updated)
        .chain(&change.removed)
        .map(|&id| id as i64)
        .collect();
    let products_change: (Option<Vec<i64>>, i32, i32, i64) = sqlx::query_as(
        "SELECT offer_ids, upserted, removed, catalog_version FROM change_log
         WHERE merchant_id = $1 AND reason = 'full_refresh' ORDER BY change_no DESC LIMIT 1",
    )
    .bind(M)
    .fetch_one(&h.pool)
    .await
    .unwrap();
    let listed: BTreeSet<i64> = products_change.0.expect("listed").into_iter().collect();
    assert_same_ids(&listed, &expected, "offers named by the change");
    assert_eq!(
        products_change.1 as usize,
        change.added.len() + change.updated.len()
    );
    assert_eq!(products_change.2 as usize, change.removed.len());
    let new_version = products_change.3;
    for (offer_id, version) in versions_before {
        let now: i64 = sqlx::query_scalar("SELECT catalog_version FROM offers WHERE offer_id = $1")
            .bind(offer_id)
            .fetch_one(&h.pool)
            .await
            .unwrap();
        if expected.contains(&offer_id) {
            assert_eq!(
                now, new_version,
                "changed offer {offer_id} carries the new version"
            );
        } else {
            assert_eq!(now, version, "unchanged offer {offer_id} was not rewritten");
        }
    }
    // Removed offers keep their rows and leave the storefront.
    for &id in &change.removed {
        let row = queries::offer(&h.pool, id as i64)
            .await
            .unwrap()
            .expect("the row stays");
        assert!(row.removed_at.is_some());
        assert!(!queries::is_on_storefront(&h.pool, id as i64).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_failing_at_page_37_of_50_leaves_the_catalog_intact_and_the_retry_converges() {
    let h = Harness::start(vec![merchant(M as u64, 5_000, 4)]).await;
    onboard(&h).await;
    let before = snapshot(&h.pool, M).await;
    let catalog = h.catalog();
    let change = catalog.advance(M as u64);
    assert!(!change.removed.is_empty(), "the new catalog removes offers");

    h.sandbox.set_knobs(|k| {
        k.fail_at_page = Some(PageFault {
            merchant_id: Some(M as u64),
            page: 37,
            times: None,
        })
    });
    let pages_before = h.sandbox.stats().pages_served;
    let job = h.enqueue(products(RefreshMode::Full)).await;
    assert_eq!(h.run_jobs().await, 1);
    let (state, attempts, error) = h.job(job).await;
    assert_eq!(
        (state.as_str(), attempts),
        ("pending", 1),
        "the failed attempt is retried later"
    );
    let error = error.unwrap();
    assert!(error.contains("page 37"), "{error}");
    assert_eq!(
        h.sandbox.stats().pages_served - pages_before,
        36,
        "pages 1 to 36 were read"
    );

    // Nothing live changed: no upsert of the 36 pages read, no removal.
    assert_eq!(
        snapshot(&h.pool, M).await,
        before,
        "the previous catalog is intact"
    );
    let removed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM offers WHERE removed_at IS NOT NULL")
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert_eq!(removed, 0, "no removal after an incomplete pass");
    assert_eq!(
        staged_rows(&h.pool).await,
        0,
        "the partial staging was discarded"
    );

    // The fault clears; the retry (after its backoff) converges.
    h.sandbox.set_knobs(|k| k.fail_at_page = None);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(h.run_jobs().await, 1);
    let (state, attempts, _) = h.job(job).await;
    assert_eq!((state.as_str(), attempts), ("done", 2));
    assert_offers_match(&h.pool, &catalog, M).await;
    let (reason, _, upserted, removed, _) = last_change(&h.pool, M).await.unwrap();
    assert_eq!(reason, "full_refresh");
    assert_eq!(upserted as usize, change.added.len() + change.updated.len());
    assert_eq!(removed as usize, change.removed.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_retry_is_a_safe_refresh_that_never_removes() {
    let h = Harness::start(vec![merchant(M as u64, 1_200, 4)]).await;
    onboard(&h).await;
    let catalog = h.catalog();
    let change = catalog.advance(M as u64);

    let job = h
        .enqueue(JobKind::SyncRetry {
            merchant_id: M,
            sync: SyncKind::Products,
        })
        .await;
    assert_eq!(h.run_jobs().await, 1);
    assert_eq!(h.job(job).await.0, "done");

    for &id in &change.removed {
        let row = queries::offer(&h.pool, id as i64).await.unwrap().unwrap();
        assert!(row.removed_at.is_none(), "a safe refresh keeps offer {id}");
    }
    for &id in change.added.iter().chain(&change.updated) {
        let row = queries::offer(&h.pool, id as i64).await.unwrap().unwrap();
        assert_eq!(
            Some(row.raw),
            catalog.offer_json(id),
            "offer {id} is upserted"
        );
    }
    let (reason, _, upserted, removed, _) = last_change(&h.pool, M).await.unwrap();
    assert_eq!((reason.as_str(), removed), ("safe_refresh", 0));
    assert_eq!(upserted as usize, change.added.len() + change.updated.len());

    // A later full refresh applies the removals.
    let job = h.enqueue(products(RefreshMode::Full)).await;
    h.run_jobs().await;
    assert_eq!(h.job(job).await.0, "done");
    assert_offers_match(&h.pool, &catalog, M).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_and_collections_refreshes_of_several_merchants_run_together() {
    let ids = [2001u64, 2002, 2003];
    let h = Harness::start_with(
        ids.iter().map(|&id| merchant(id, 1_500, 5)).collect(),
        |s| {
            s.jobs.workers = 6;
            s.refresh.concurrency = 3;
        },
    )
    .await;
    for &id in &ids {
        h.enqueue_full_refreshes(id as i64).await;
    }
    let shutdown = CancellationToken::new();
    let pool_task = tokio::spawn(h.workers.clone().run(shutdown.clone()));
    let finished = common::eventually(Duration::from_secs(120), || async {
        let open: i64 =
            sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state IN ('pending', 'running')")
                .fetch_one(&h.pool)
                .await
                .unwrap();
        open == 0
    })
    .await;
    shutdown.cancel();
    pool_task.await.unwrap();
    assert!(finished, "every job ended");
    let states: Vec<String> = sqlx::query_scalar("SELECT DISTINCT state FROM jobs")
        .fetch_all(&h.pool)
        .await
        .unwrap();
    assert_eq!(states, vec!["done".to_string()]);
    let catalog = h.catalog();
    for &id in &ids {
        assert_offers_match(&h.pool, &catalog, id as i64).await;
        assert_collections_match(&h.pool, &catalog, id as i64).await;
        let version: i64 =
            sqlx::query_scalar("SELECT catalog_version FROM merchants WHERE merchant_id = $1")
                .bind(id as i64)
                .fetch_one(&h.pool)
                .await
                .unwrap();
        assert_eq!(version, 2, "merchant {id}: two publishes, two versions");
    }
    // Change numbers follow commit order: versions of each merchant ascend with them.
    let rows: Vec<(i64, i64)> =
        sqlx::query_as("SELECT merchant_id, catalog_version FROM change_log ORDER BY change_no")
            .fetch_all(&h.pool)
            .await
            .unwrap();
    for &id in &ids {
        let versions: Vec<i64> = rows
            .iter()
            .filter(|r| r.0 == id as i64)
            .map(|r| r.1)
            .collect();
        assert_eq!(versions, vec![1, 2], "merchant {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_refresh_stops_it_promptly_and_publishes_nothing() {
    let h = Harness::start(vec![merchant(M as u64, 3_000, 2)]).await;
    h.sandbox
        .set_knobs(|k| k.latency = Duration::from_millis(40));
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let result = h
        .runner
        .mirror()
        .refresh_products(M, RefreshMode::Full, &cancel)
        .await;
    let elapsed = started.elapsed();
    let err = result.expect_err("a cancelled refresh fails");
    assert!(format!("{err:#}").contains("cancelled"), "{err:#}");
    assert!(
        elapsed < Duration::from_millis(1_200),
        "stopped in {elapsed:?}"
    );
    let offers: i64 = sqlx::query_scalar("SELECT count(*) FROM offers")
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert_eq!(offers, 0, "nothing published");
    assert_eq!(staged_rows(&h.pool).await, 0, "staging discarded");
}

// Refresh safety (DESIGN.md, invariants 2, 9 and 10).

/// Live offers of merchant M.
async fn live_offers(h: &Harness) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM offers WHERE merchant_id = $1 AND removed_at IS NULL")
        .bind(M)
        .fetch_one(&h.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_that_is_not_a_page_is_retried_and_never_ends_a_pass() {
    let h = Harness::start(vec![merchant(M as u64, 1_000, 2)]).await;
    onboard(&h).await;
    let before = snapshot(&h.pool, M).await;
    // What a maintenance page or a proxy answers, on every attempt of the first page
    // (1 + violet.max_retries = 3): read as an empty last page it would sweep it all.
    h.sandbox.set_knobs(|k| k.odd_ok_next = 3);
    let job = h.enqueue(products(RefreshMode::Full)).await;
    assert_eq!(h.run_jobs().await, 1);
    let (state, _, error) = h.job(job).await;
    assert_eq!(state, "pending", "the attempt failed and is retried later");
    let error = error.unwrap();
    assert!(error.contains("not a catalog page"), "{error}");
    assert_eq!(snapshot(&h.pool, M).await, before, "nothing live changed");
    assert_eq!(live_offers(&h).await, 1_000);

    // A cached first page served for page 4 (number 0, `last: true`) is not page 4.
    h.sandbox.set_knobs(|k| k.stale_page_next = 3);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(h.run_jobs().await, 1);
    let (state, _, error) = h.job(job).await;
    assert_eq!(state, "pending");
    let error = error.unwrap();
    assert!(error.contains("not the page asked for"), "{error}");
    assert_eq!(snapshot(&h.pool, M).await, before, "nothing live changed");

    // Once upstream answers pages again, the retry converges.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(h.run_jobs().await, 1);
    assert_eq!(h.job(job).await.0, "done");
    assert_offers_match(&h.pool, &h.catalog(), M).await;
}

/// An HTTP proxy in front of the sandbox that answers page `page` of the offers
/// listing with `200 {"status":"ok","message":"maintenance window"}` (what a proxy or
/// a maintenance page answers) while `odd_left` is above zero, and forwards everything
/// else. (The sandbox's `odd_ok_next` corrupts whichever page comes next: the first.)
struct OddPageProxy {
    url: String,
    upstream: Arc<OnceLock<String>>,
    odd_left: Arc<AtomicU32>,
}

impl OddPageProxy {
    async fn start(page: u32) -> OddPageProxy {
        use axum::body::Body;
        use axum::extract::{Request, State};
        use axum::http::{StatusCode, header};
        use axum::response::{IntoResponse, Response};

        #[derive(Clone)]
        struct Shared {
            upstream: Arc<OnceLock<String>>,
            odd_left: Arc<AtomicU32>,
            page: String,
            http: reqwest::Client,
        }
        async fn forward(State(shared): State<Shared>, request: Request) -> Response {
            let uri = request.uri().clone();
            let asked = uri.path().contains("/catalog/offers/merchants/")
                && uri
                    .query()
                    .is_some_and(|q| q.split('&').any(|pair| pair == shared.page));
            if asked
                && shared
                    .odd_left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            {
                return (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"status":"ok","message":"maintenance window"}"#,
                )
                    .into_response();
            }
            let upstream = shared.upstream.get().expect("upstream set");
            let target = format!(
                "{upstream}{}",
                uri.path_and_query().map_or("/", |p| p.as_str())
            );
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            let mut call = shared.http.request(parts.method, target).body(body);
            for (name, value) in &parts.headers {
                if name != header::HOST {
                    call = call.header(name, value);
                }
            }
            let answer = call.send().await.unwrap();
            let mut response = Response::new(Body::empty());
            *response.status_mut() = answer.status();
            for (name, value) in answer.headers() {
                if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            *response.body_mut() = Body::from(answer.bytes().await.unwrap());
            response
        }

        let shared = Shared {
            upstream: Arc::new(OnceLock::new()),
            odd_left: Arc::new(AtomicU32::new(0)),
            page: format!("page={page}"),
            http: reqwest::Client::new(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        OddPageProxy {
            url: format!("http://{addr}/v1"),
            upstream: shared.upstream,
            odd_left: shared.odd_left,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_that_is_not_a_page_on_page_2_is_retried_and_never_ends_a_pass() {
    // Issue 11's case: page 2 (not page 1) of a full refresh answers a 200 that is no
    // page. Read as an empty last page, it would end the pass after page 1 and sweep
    // the other 900 offers.
    let proxy = OddPageProxy::start(2).await;
    let h = Harness::start_with(vec![merchant(M as u64, 1_000, 2)], |s| {
        s.violet.base_url = proxy.url.clone()
    })
    .await;
    let sandbox = format!("http://{}", h.sandbox.addr());
    proxy.upstream.set(sandbox).unwrap();
    onboard(&h).await;
    let before = snapshot(&h.pool, M).await;

    // Every attempt of page 2 (1 + violet.max_retries = 3).
    proxy.odd_left.store(3, Ordering::SeqCst);
    let job = h.enqueue(products(RefreshMode::Full)).await;
    let ran = h.run_jobs().await;
    assert_eq!(
        proxy.odd_left.load(Ordering::SeqCst),
        0,
        "odd answers left: page 2 was asked for on every attempt (a pass that took the \
         answer for its last page asks once)"
    );
    let (state, _, error) = h.job(job).await;
    let removals = catalog_mirror::mirror::removals::held(&h.pool, M)
        .await
        .unwrap()
        .map(|held| held.offers);
    assert_eq!(
        (state.as_str(), removals),
        ("pending", None),
        "the attempt failed and is retried later; no removal is held ({error:?})"
    );
    assert_eq!(ran, 1);
    let error = error.unwrap();
    assert!(error.contains("not a catalog page"), "{error}");
    assert_eq!(snapshot(&h.pool, M).await, before, "nothing live changed");
    assert_eq!(live_offers(&h).await, 1_000);

    // Once page 2 is a page again, the retry converges.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(h.run_jobs().await, 1);
    assert_eq!(h.job(job).await.0, "done");
    assert_offers_match(&h.pool, &h.catalog(), M).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_above_the_fraction_wait_for_a_second_pass_that_agrees() {
    // advance() removes 1% of the catalog: above a 0.5% threshold.
    let h = Harness::start_with(vec![merchant(M as u64, 2_000, 2)], |s| {
        s.refresh.max_removal_fraction = 0.005
    })
    .await;
    onboard(&h).await;
    let catalog = h.catalog();
    let change = catalog.advance(M as u64);
    assert!(change.removed.len() > 10, "{}", change.removed.len());

    let job = h.enqueue(products(RefreshMode::Full)).await;
    h.run_jobs().await;
    assert_eq!(h.job(job).await.0, "done");
    // The upserts are published, the removals held, the merchant flagged.
    for &id in change.added.iter().chain(&change.updated) {
        let row = queries::offer(&h.pool, id as i64).await.unwrap().unwrap();
        assert_eq!(Some(row.raw), catalog.offer_json(id), "offer {id} upserted");
    }
    for &id in &change.removed {
        let row = queries::offer(&h.pool, id as i64).await.unwrap().unwrap();
        assert!(row.removed_at.is_none(), "removal of {id} is held");
    }
    let held = catalog_mirror::mirror::removals::held(&h.pool, M)
        .await
        .unwrap()
        .expect("held");
    assert_eq!(held.offers as usize, change.removed.len());
    let (state, reason): (String, Option<String>) = sqlx::query_as(
        "SELECT state, attention_reason FROM sync_state WHERE merchant_id = $1 AND kind = 'products'",
    )
    .bind(M)
    .fetch_one(&h.pool)
    .await
    .unwrap();
    assert_eq!(state, "needs_attention");
    assert!(
        reason.unwrap().contains("refresh.max_removal_fraction"),
        "the reason names the setting"
    );

    // The next complete pass sees the same offers gone: the two agree.
    let job = h.enqueue(products(RefreshMode::Full)).await;
    h.run_jobs().await;
    assert_eq!(h.job(job).await.0, "done");
    assert_offers_match(&h.pool, &catalog, M).await;
    assert!(
        catalog_mirror::mirror::removals::held(&h.pool, M)
            .await
            .unwrap()
            .is_none()
    );
    let state: String = sqlx::query_scalar(
        "SELECT state FROM sync_state WHERE merchant_id = $1 AND kind = 'products'",
    )
    .bind(M)
    .fetch_one(&h.pool)
    .await
    .unwrap();
    assert_eq!(
        state, "completed",
        "the attention the hold raised is cleared"
    );

    // Held again, then an operator confirms; held a third time, then discards.
    let change = catalog.advance(M as u64);
    h.enqueue(products(RefreshMode::Full)).await;
    h.run_jobs().await;
    let removed = catalog_mirror::mirror::removals::confirm(&h.pool, M)
        .await
        .unwrap();
    assert_eq!(removed, Some(change.removed.len() as u64));
    assert_offers_match(&h.pool, &catalog, M).await;
    let (reason, ..) = last_change(&h.pool, M).await.unwrap();
    assert_eq!(reason, "removals_confirmed");

    let change = catalog.advance(M as u64);
    h.enqueue(products(RefreshMode::Full)).await;
    h.run_jobs().await;
    assert!(
        catalog_mirror::mirror::removals::discard(&h.pool, M)
            .await
            .unwrap()
    );
    for &id in &change.removed {
        let row = queries::offer(&h.pool, id as i64).await.unwrap().unwrap();
        assert!(
            row.removed_at.is_none(),
            "a discarded removal removes nothing"
        );
    }
    assert_eq!(
        catalog_mirror::mirror::removals::confirm(&h.pool, M)
            .await
            .unwrap(),
        None,
        "nothing is held any more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_retry_waits_for_the_running_full_refresh_and_a_pending_one_absorbs_it() {
    let h = Harness::start(vec![merchant(M as u64, 2_000, 2)]).await;
    onboard(&h).await;
    let catalog = h.catalog();
    catalog.advance(M as u64);
    h.sandbox
        .set_knobs(|k| k.latency = Duration::from_millis(30));
    let pages = 20;

    // COMPLETED, then FAILED while the refresh it scheduled is fetching.
    let pages_before = h.sandbox.stats().pages_served;
    let full = h.enqueue(products(RefreshMode::Full)).await;
    let workers = h.workers.clone();
    let running = tokio::spawn(async move { workers.run_until_empty().await });
    let staging = common::eventually(Duration::from_secs(20), || async {
        staged_rows(&h.pool).await > 0
    })
    .await;
    assert!(staging, "the full refresh is staging");
    let retry = h
        .enqueue(JobKind::SyncRetry {
            merchant_id: M,
            sync: SyncKind::Products,
        })
        .await;
    // A second worker would claim the retry now if the lane let it.
    let second = h.workers.clone();
    let beside = tokio::spawn(async move { second.run_until_empty().await });
    for _ in 0..10 {
        let running: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'running'")
            .fetch_one(&h.pool)
            .await
            .unwrap();
        assert!(running <= 1, "{running} jobs of one lane ran at once");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.await.unwrap().unwrap();
    beside.await.unwrap().unwrap();
    h.run_jobs().await;
    for job in [full, retry] {
        let (state, attempts, error) = h.job(job).await;
        assert_eq!(
            (state.as_str(), attempts),
            ("done", 1),
            "job {job}: {error:?}"
        );
    }
    assert_eq!(
        h.sandbox.stats().pages_served - pages_before,
        2 * pages,
        "one pass each, one after the other: neither destroyed the other's staging"
    );
    assert_offers_match(&h.pool, &catalog, M).await;
    assert_eq!(staged_rows(&h.pool).await, 0);

    // A retry due while a full refresh is still pending is absorbed by it; so it is by
    // a pending delta, which the FAILED that queued the retry made a full pass.
    for mode in [RefreshMode::Full, RefreshMode::Delta] {
        let pages_before = h.sandbox.stats().pages_served;
        let mut conn = h.pool.acquire().await.unwrap();
        catalog_mirror::mirror::delta::require_full_pass(&mut conn, M, "a products sync failed")
            .await
            .unwrap();
        let pending = catalog_mirror::jobs::Queue::enqueue(
            &mut conn,
            &catalog_mirror::jobs::NewJob {
                kind: products(mode),
                delay: Duration::from_millis(500),
                max_attempts: 3,
                on_conflict: catalog_mirror::jobs::OnConflict::KeepEarlier,
            },
        )
        .await
        .unwrap();
        drop(conn);
        let retry = h
            .enqueue(JobKind::SyncRetry {
                merchant_id: M,
                sync: SyncKind::Products,
            })
            .await;
        assert_eq!(h.run_jobs().await, 1, "{mode:?}: only the retry is due");
        assert_eq!(h.job(retry).await.0, "done");
        assert_eq!(
            h.sandbox.stats().pages_served,
            pages_before,
            "{mode:?}: absorbed, no fetch"
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(h.run_jobs().await, 1);
        assert_eq!(h.job(pending).await.0, "done");
        assert_eq!(
            h.sandbox.stats().pages_served - pages_before,
            pages,
            "{mode:?}: a full pass"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_never_purges_the_staging_of_a_refresh_whose_claim_still_runs() {
    let h = Harness::start(vec![merchant(M as u64, 2_000, 2)]).await;
    onboard(&h).await;
    let catalog = h.catalog();
    catalog.advance(M as u64);
    h.sandbox
        .set_knobs(|k| k.latency = Duration::from_millis(15));
    let queue = catalog_mirror::jobs::Queue::new(h.pool.clone());
    let job = h.enqueue(products(RefreshMode::Full)).await;
    let claimed = queue
        .claim("test", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, job);
    let fenced = h
        .runner
        .mirror()
        .fenced(claimed.lease(Duration::from_secs(60)));
    let owner = tokio::spawn(async move {
        fenced
            .refresh_products(M, RefreshMode::Full, &CancellationToken::new())
            .await
    });
    // While it stages, another refresh of the merchant starts (a tool bypassing the
    // queue): it must leave the running claim's rows alone.
    let staging = common::eventually(Duration::from_secs(20), || async {
        staged_rows(&h.pool).await > 0
    })
    .await;
    assert!(staging, "the first refresh is staging");
    let other = h
        .runner
        .mirror()
        .refresh_products(M, RefreshMode::Safe, &CancellationToken::new())
        .await
        .expect("the second refresh publishes");
    let first = owner
        .await
        .unwrap()
        .expect("the first refresh still publishes");
    assert_eq!(
        first.seen,
        catalog.offer_count(M as u64),
        "it read the whole listing"
    );
    assert!(other.seen > 0);
    assert_offers_match(&h.pool, &catalog, M).await;
    assert_eq!(staged_rows(&h.pool).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_whose_lease_was_taken_over_publishes_nothing() {
    let h = Harness::start(vec![merchant(M as u64, 1_000, 2)]).await;
    h.sandbox
        .set_knobs(|k| k.latency = Duration::from_millis(50));
    let queue = catalog_mirror::jobs::Queue::new(h.pool.clone());
    h.enqueue(products(RefreshMode::Full)).await;
    let lease = Duration::from_millis(300);
    let claimed = queue.claim("test", lease).await.unwrap().unwrap();
    // The copy keeps running but nobody renews its lease (a paused process).
    let stale = h.runner.mirror().fenced(claimed.lease(lease));
    let copy = tokio::spawn(async move {
        stale
            .refresh_products(M, RefreshMode::Full, &CancellationToken::new())
            .await
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(queue.reap_expired().await.unwrap(), 1);
    let again = queue
        .claim("test", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.id, claimed.id);
    let err = copy
        .await
        .unwrap()
        .expect_err("the stale copy cannot publish");
    assert!(format!("{err:#}").contains("no longer held"), "{err:#}");
    assert_eq!(live_offers(&h).await, 0, "nothing was published");
    assert_eq!(staged_rows(&h.pool).await, 0, "its staging was discarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_removed_while_a_refresh_reads_stays_removed() {
    let h = Harness::start(vec![merchant(M as u64, 2_000, 2)]).await;
    onboard(&h).await;
    let catalog = h.catalog();
    let victim = catalog.offer_ids(M as u64).next().unwrap() as i64;
    h.sandbox
        .set_knobs(|k| k.latency = Duration::from_millis(15));
    // Touch every offer so the refresh rewrites them all (including the victim).
    sqlx::query("UPDATE offers SET content_hash = 'stale' WHERE merchant_id = $1")
        .bind(M)
        .execute(&h.pool)
        .await
        .unwrap();
    let mirror = h.runner.mirror().clone();
    let refresh = tokio::spawn(async move {
        mirror
            .refresh_products(M, RefreshMode::Full, &CancellationToken::new())
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The first page (with the victim) is staged; now Violet says it was removed.
    let body = catalog.offer_json(victim as u64).unwrap();
    h.deliver(&mirror_common::incoming(
        "evt-removed-during-refresh",
        "OFFER_REMOVED",
        M,
        Some(victim.to_string()),
        body,
    ))
    .await;
    h.runner
        .mirror()
        .apply_pending(M, &CancellationToken::new())
        .await
        .unwrap();
    assert!(
        queries::offer(&h.pool, victim)
            .await
            .unwrap()
            .unwrap()
            .removed_at
            .is_some()
    );
    refresh.await.unwrap().unwrap();
    let row = queries::offer(&h.pool, victim).await.unwrap().unwrap();
    assert!(
        row.removed_at.is_some(),
        "the refresh's older copy did not bring the removed offer back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_shifts_while_paged_removes_nothing_violet_still_has() {
    let h = Harness::start(vec![merchant(M as u64, 3_000, 2)]).await;
    onboard(&h).await;
    let catalog = h.catalog();
    h.sandbox
        .set_knobs(|k| k.latency = Duration::from_millis(20));
    let mirror = h.runner.mirror().clone();
    let refresh = tokio::spawn(async move {
        mirror
            .refresh_products(M, RefreshMode::Full, &CancellationToken::new())
            .await
    });
    // Half way through the 30 pages, 1% of the offers go, most of them on pages
    // already read: every later page shifts, and offers fall between two pages.
    let pages_before = h.sandbox.stats().pages_served;
    assert!(
        common::eventually(Duration::from_secs(20), || async {
            h.sandbox.stats().pages_served >= pages_before + 15
        })
        .await
    );
    let change = catalog.advance(M as u64);
    let report = refresh.await.unwrap().unwrap();
    let removed: Vec<i64> = sqlx::query_scalar(
        "SELECT offer_id FROM offers WHERE merchant_id = $1 AND removed_at IS NOT NULL",
    )
    .bind(M)
    .fetch_all(&h.pool)
    .await
    .unwrap();
    let still_there: Vec<i64> = removed
        .iter()
        .copied()
        .filter(|&id| catalog.offer_json(id as u64).is_some())
        .collect();
    assert!(
        still_there.is_empty(),
        "removed although Violet still has them: {still_there:?} (report {report:?})"
    );
    // What Violet did remove is gone (those the listing could not have seen again).
    assert!(
        removed.len() <= change.removed.len(),
        "{} removed, {} gone upstream",
        removed.len(),
        change.removed.len()
    );
}
