//! Collections cost what changed, against the real sandbox and PostgreSQL through the
//! real queue: an unchanged collections refresh reads only the collection listing; a
//! change reads again only the collections whose date moved and converges; a
//! COLLECTION_OFFERS_UPDATED reads only the collection it names (no listing), other
//! collection events list and read what they name; a membership whose
//! date did not move is repaired by a forced pass (manual resync, safe refresh, the
//! recheck bound); a collection gone from a complete listing is removed, never by a
//! safe refresh. Counted in API calls through the sandbox's stats.

use crate::mirror_common;

use std::collections::BTreeMap;

use catalog_mirror::mirror::{forget_membership_reads, queries};
use catalog_mirror::sandbox::Catalog;
use catalog_mirror::work::{JobKind, RefreshMode};
use mirror_common::{Harness, assert_collections_match, incoming, last_change, merchant};

const M: i64 = 1001;

fn collections(mode: RefreshMode) -> JobKind {
    JobKind::RefreshCollections {
        merchant_id: M,
        mode,
    }
}

/// Pages of a listing of `n` items at the client's page size (an empty one is a page).
fn pages(n: usize) -> u64 {
    n.div_ceil(100).max(1) as u64
}

fn listing_pages(catalog: &Catalog) -> u64 {
    pages(catalog.collection_count(M as u64) as usize)
}

fn membership_pages(catalog: &Catalog, collection_id: u64) -> u64 {
    pages(catalog.collection_offer_ids(collection_id).len())
}

/// Catalog API calls so far (every request but logins and token refreshes).
fn api_calls(h: &Harness) -> u64 {
    let stats = h.sandbox.stats();
    stats.requests - stats.logins - stats.refreshes
}

/// Runs one collections refresh through the queue; returns the API calls it made.
async fn refresh(h: &Harness, mode: RefreshMode) -> u64 {
    let before = api_calls(h);
    let job = h.enqueue(collections(mode)).await;
    h.run_jobs().await;
    assert_eq!(h.job(job).await.0, "done", "{:?}", h.job(job).await);
    api_calls(h) - before
}

/// Collection id -> `date_last_modified` as the sandbox lists it.
fn listed_dates(catalog: &Catalog) -> BTreeMap<u64, String> {
    catalog
        .collections(M as u64)
        .iter()
        .map(|c| {
            (
                c["id"].as_u64().unwrap(),
                c["date_last_modified"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Drops the mirror's membership of `collection_id` behind the refreshes' back (its
/// stored date stays): only a refresh that reads it again brings it back.
async fn forget_members(h: &Harness, collection_id: u64) -> u64 {
    sqlx::query("DELETE FROM collection_offers WHERE collection_id = $1")
        .bind(collection_id as i64)
        .execute(&h.pool)
        .await
        .unwrap()
        .rows_affected()
}

async fn members(h: &Harness, collection_id: u64) -> usize {
    queries::collection_offer_ids(&h.pool, collection_id as i64)
        .await
        .unwrap()
        .len()
}

async fn changes(h: &Harness) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM change_log WHERE merchant_id = $1")
        .bind(M)
        .fetch_one(&h.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_collections_refresh_reads_only_the_collection_listing() {
    let h = Harness::start(vec![merchant(M as u64, 3_000, 250)]).await;
    let catalog = h.catalog();
    let first = refresh(&h, RefreshMode::Full).await;
    let every: u64 = catalog
        .collection_ids(M as u64)
        .iter()
        .map(|&c| membership_pages(&catalog, c))
        .sum();
    assert_eq!(
        first,
        listing_pages(&catalog) + every,
        "onboarding reads all"
    );
    assert_collections_match(&h.pool, &catalog, M).await;
    let log = changes(&h).await;

    let second = refresh(&h, RefreshMode::Full).await;
    assert_eq!(
        second,
        listing_pages(&catalog),
        "nothing changed: the listing's {} pages and no member page",
        listing_pages(&catalog)
    );
    assert_collections_match(&h.pool, &catalog, M).await;
    assert_eq!(changes(&h).await, log, "nothing changed, nothing logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_reads_again_only_the_collections_whose_date_moved_and_converges() {
    // Few offers, many collections: an advance touches a handful of collections.
    let h = Harness::start(vec![merchant(M as u64, 300, 60)]).await;
    let catalog = h.catalog();
    refresh(&h, RefreshMode::Full).await;
    let before = listed_dates(&catalog);
    let old_members: BTreeMap<u64, Vec<u64>> = before
        .keys()
        .map(|&c| (c, catalog.collection_offer_ids(c)))
        .collect();

    catalog.advance(M as u64);
    let after = listed_dates(&catalog);
    let moved: Vec<u64> = after
        .iter()
        .filter(|(id, date)| before.get(*id) != Some(*date))
        .map(|(id, _)| *id)
        .collect();
    let changed: Vec<u64> = old_members
        .iter()
        .filter(|(c, m)| catalog.collection_offer_ids(**c) != **m)
        .map(|(c, _)| *c)
        .collect();
    assert_eq!(
        moved, changed,
        "the sandbox moves the date of exactly the collections whose membership changed"
    );
    assert!(
        !changed.is_empty() && changed.len() < 20,
        "a few collections changed ({changed:?})"
    );

    let calls = refresh(&h, RefreshMode::Full).await;
    let expected: u64 = listing_pages(&catalog)
        + changed
            .iter()
            .map(|&c| membership_pages(&catalog, c))
            .sum::<u64>();
    assert_eq!(
        calls, expected,
        "the listing and the changed collections' pages"
    );
    assert_collections_match(&h.pool, &catalog, M).await;
    let (reason, offer_ids, ..) = last_change(&h.pool, M).await.expect("a change");
    assert_eq!(reason, "collections");
    let offer_ids = offer_ids.expect("the change lists its offers");
    for &c in &changed {
        let old: std::collections::BTreeSet<u64> = old_members[&c].iter().copied().collect();
        let new: std::collections::BTreeSet<u64> =
            catalog.collection_offer_ids(c).into_iter().collect();
        for offer in old.symmetric_difference(&new) {
            assert!(
                offer_ids.contains(&(*offer as i64)),
                "offer {offer} moved in or out of collection {c}: the index must hear of it"
            );
        }
    }
}

/// Delivers a collection event through intake and runs the jobs it leads to; returns
/// the API calls they made.
async fn deliver(
    h: &Harness,
    event_id: &str,
    topic: &str,
    collection: u64,
    body: serde_json::Value,
) -> u64 {
    let before = api_calls(h);
    h.deliver(&incoming(
        event_id,
        topic,
        M,
        Some(collection.to_string()),
        body,
    ))
    .await;
    h.run_jobs().await;
    let status: String =
        sqlx::query_scalar("SELECT status FROM webhook_events WHERE event_id = $1")
            .bind(event_id)
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert_eq!(status, "folded", "{event_id} is covered");
    api_calls(h) - before
}

async fn jobs_done(h: &Harness, kind: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = $1 AND state = 'done'")
        .bind(kind)
        .fetch_one(&h.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_offers_updated_reads_only_the_collection_it_names() {
    // More than a page of collections: a listing would show in the count.
    let h = Harness::start(vec![merchant(M as u64, 2_000, 150)]).await;
    let catalog = h.catalog();
    refresh(&h, RefreshMode::Full).await;
    let ids = catalog.collection_ids(M as u64);
    let (named, other, third) = (ids[3], ids[4], ids[5]);
    // All three lose their membership in the mirror; Violet's dates do not move.
    for c in [named, other, third] {
        assert!(forget_members(&h, c).await > 0);
    }

    let calls = deliver(
        &h,
        "offers-updated-1",
        "COLLECTION_OFFERS_UPDATED",
        named,
        catalog.collection_json(named).unwrap(),
    )
    .await;
    assert_eq!(
        calls,
        membership_pages(&catalog, named),
        "the named collection's offer pages only: no listing, no other collection"
    );
    assert_eq!(jobs_done(&h, "collection_members").await, 1);
    assert_eq!(
        jobs_done(&h, "refresh_collections").await,
        1,
        "only onboarding's"
    );
    assert_eq!(
        members(&h, named).await,
        catalog.collection_offer_ids(named).len(),
        "the named collection is read again"
    );
    assert_eq!(members(&h, other).await, 0, "the other one was not read");
    let (reason, offer_ids, ..) = last_change(&h.pool, M).await.unwrap();
    assert_eq!(reason, "collections");
    assert_eq!(
        offer_ids.unwrap().len(),
        catalog.collection_offer_ids(named).len(),
        "the index hears of the offers that came back"
    );

    // The entity id alone names it too (a body that is not the collection).
    let calls = deliver(
        &h,
        "offers-updated-2",
        "COLLECTION_OFFERS_UPDATED",
        other,
        serde_json::json!({"merchant_id": M}),
    )
    .await;
    assert_eq!(calls, membership_pages(&catalog, other));
    assert_eq!(
        members(&h, other).await,
        catalog.collection_offer_ids(other).len()
    );

    // COLLECTION_UPDATED needs the collection's fields: the listing, and its members.
    let calls = deliver(
        &h,
        "updated-1",
        "COLLECTION_UPDATED",
        third,
        catalog.collection_json(third).unwrap(),
    )
    .await;
    assert_eq!(
        calls,
        listing_pages(&catalog) + membership_pages(&catalog, third)
    );
    assert_collections_match(&h.pool, &catalog, M).await;

    // A collection the mirror does not hold: handed over to a full refresh.
    let unknown = M as u64 * 100_000 + 99_999;
    let calls = deliver(
        &h,
        "offers-updated-3",
        "COLLECTION_OFFERS_UPDATED",
        unknown,
        serde_json::json!({"id": unknown, "merchant_id": M}),
    )
    .await;
    assert_eq!(
        calls,
        listing_pages(&catalog),
        "listed; the unknown one is not there"
    );
    assert_eq!(jobs_done(&h, "refresh_collections").await, 3);
    assert_collections_match(&h.pool, &catalog, M).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_whose_date_did_not_move_is_repaired_by_a_forced_pass() {
    let h = Harness::start(vec![merchant(M as u64, 2_000, 20)]).await;
    let catalog = h.catalog();
    refresh(&h, RefreshMode::Full).await;
    let ids = catalog.collection_ids(M as u64);
    let every: u64 = ids.iter().map(|&c| membership_pages(&catalog, c)).sum();

    // Violet changed a membership without moving the date (the assumption failing).
    forget_members(&h, ids[0]).await;
    assert_eq!(
        refresh(&h, RefreshMode::Full).await,
        listing_pages(&catalog)
    );
    assert_eq!(
        members(&h, ids[0]).await,
        0,
        "a date that did not move is trusted"
    );

    // A manual resync forgets the reads: the next refresh reads every membership.
    let mut conn = h.pool.acquire().await.unwrap();
    assert_eq!(
        forget_membership_reads(&mut conn, M).await.unwrap(),
        ids.len() as u64
    );
    drop(conn);
    assert_eq!(
        refresh(&h, RefreshMode::Full).await,
        listing_pages(&catalog) + every
    );
    assert_collections_match(&h.pool, &catalog, M).await;
    assert_eq!(
        refresh(&h, RefreshMode::Full).await,
        listing_pages(&catalog)
    );

    // A safe refresh (after a failed or stalled sync) reads every membership.
    forget_members(&h, ids[1]).await;
    assert_eq!(
        refresh(&h, RefreshMode::Safe).await,
        listing_pages(&catalog) + every
    );
    assert_collections_match(&h.pool, &catalog, M).await;

    // A membership read longer ago than the recheck bound is read again.
    forget_members(&h, ids[2]).await;
    sqlx::query(
        "UPDATE collections SET members_read_at = now() - interval '2 days' WHERE collection_id = $1",
    )
    .bind(ids[2] as i64)
    .execute(&h.pool)
    .await
    .unwrap();
    assert_eq!(
        refresh(&h, RefreshMode::Full).await,
        listing_pages(&catalog) + membership_pages(&catalog, ids[2])
    );
    assert_collections_match(&h.pool, &catalog, M).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_gone_from_a_complete_listing_is_removed_by_a_full_refresh_only() {
    let h = Harness::start(vec![merchant(M as u64, 500, 5)]).await;
    let catalog = h.catalog();
    refresh(&h, RefreshMode::Full).await;
    // A collection the mirror holds but Violet no longer lists, with members.
    let gone = M * 100_000 + 99;
    sqlx::query(
        r#"INSERT INTO collections (collection_id, merchant_id, name, date_last_modified, content_hash, raw, members_read_at)
           VALUES ($1, $2, 'Gone', now(), 'x', '{}', now())"#,
    )
    .bind(gone)
    .bind(M)
    .execute(&h.pool)
    .await
    .unwrap();
    let some_offer = catalog.offer_ids(M as u64).next().unwrap() as i64;
    sqlx::query(
        "INSERT INTO collection_offers (collection_id, offer_id, merchant_id) VALUES ($1, $2, $3)",
    )
    .bind(gone)
    .bind(some_offer)
    .bind(M)
    .execute(&h.pool)
    .await
    .unwrap();

    refresh(&h, RefreshMode::Safe).await;
    assert_eq!(
        members(&h, gone as u64).await,
        1,
        "a safe refresh removes nothing"
    );

    assert_eq!(
        refresh(&h, RefreshMode::Full).await,
        listing_pages(&catalog)
    );
    let removed: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT removed_at FROM collections WHERE collection_id = $1")
            .bind(gone)
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert!(removed.is_some(), "gone from a complete listing: removed");
    assert_collections_match(&h.pool, &catalog, M).await;
}

/// The figure for the closing note: API calls of an unchanged collections refresh of a
/// merchant with many collections, reading every membership (recheck 0: what every
/// refresh did before) and with the dates trusted, in the same run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figure_unchanged_collections_refresh_api_calls() {
    let spec = || vec![merchant(M as u64, 10_000, 500)];
    let every = Harness::start_with(spec(), |s| s.refresh.collections_recheck_secs = 0).await;
    refresh(&every, RefreshMode::Full).await;
    let before = refresh(&every, RefreshMode::Full).await;
    assert_collections_match(&every.pool, &every.catalog(), M).await;
    drop(every);

    let delta = Harness::start(spec()).await;
    refresh(&delta, RefreshMode::Full).await;
    let after = refresh(&delta, RefreshMode::Full).await;
    assert_collections_match(&delta.pool, &delta.catalog(), M).await;
    println!(
        "FIGURE unchanged collections refresh, 10000 offers, 500 collections: \
         {before} API calls reading every membership, {after} with dates trusted"
    );
    assert_eq!(after, listing_pages(&delta.catalog()));
    assert!(before > 100 * after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_job_takes_the_row_from_a_whole_body_never_an_older_one_and_hands_over_a_404()
{
    let h = Harness::start(vec![merchant(M as u64, 500, 5)]).await;
    let catalog = h.catalog();
    refresh(&h, RefreshMode::Full).await;
    let collection = catalog.collection_ids(M as u64)[1];
    let raw = |h: &Harness| {
        let pool = h.pool.clone();
        async move {
            sqlx::query_scalar::<_, serde_json::Value>(
                "SELECT raw FROM collections WHERE collection_id = $1",
            )
            .bind(collection as i64)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };

    // An older copy of the collection in the body: the membership is read, the row stays.
    let mut stale = catalog.collection_json(collection).unwrap();
    stale["name"] = "Stale name".into();
    stale["date_last_modified"] = "2020-01-01T00:00:00Z".into();
    deliver(&h, "stale", "COLLECTION_OFFERS_UPDATED", collection, stale).await;
    assert_eq!(Some(raw(&h).await), catalog.collection_json(collection));

    // A newer whole copy: the row follows it.
    let mut newer = catalog.collection_json(collection).unwrap();
    newer["name"] = "Renamed".into();
    newer["date_last_modified"] = "2030-01-01T00:00:00Z".into();
    deliver(
        &h,
        "newer",
        "COLLECTION_OFFERS_UPDATED",
        collection,
        newer.clone(),
    )
    .await;
    assert_eq!(raw(&h).await, newer);
    assert_eq!(jobs_done(&h, "collection_members").await, 2);

    // A collection the mirror holds but Violet answers 404 for: only the full refresh
    // it hands over to (a complete listing) removes it.
    let gone = M * 100_000 + 98;
    sqlx::query(
        r#"INSERT INTO collections (collection_id, merchant_id, name, date_last_modified, content_hash, raw, members_read_at)
           VALUES ($1, $2, 'Gone', now(), 'x', '{}', now())"#,
    )
    .bind(gone)
    .bind(M)
    .execute(&h.pool)
    .await
    .unwrap();
    let calls = deliver(
        &h,
        "gone",
        "COLLECTION_OFFERS_UPDATED",
        gone as u64,
        serde_json::json!({"id": gone, "merchant_id": M}),
    )
    .await;
    assert_eq!(
        calls,
        1 + listing_pages(&catalog) + membership_pages(&catalog, collection),
        "the 404, then the listing and the renamed collection (its stored date is not Violet's)"
    );
    assert_eq!(
        jobs_done(&h, "collection_members").await,
        3,
        "the 404 is no failure"
    );
    let removed: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT removed_at FROM collections WHERE collection_id = $1")
            .bind(gone)
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert!(removed.is_some(), "removed after the complete listing");
    assert_collections_match(&h.pool, &catalog, M).await;
}
