//! Offer events outside a sync window and merchant visibility, against the real sandbox
//! and PostgreSQL: events stored through intake, jobs run through the real queue with
//! the application's runner.

use crate::mirror_common;

use std::collections::BTreeSet;

use catalog_mirror::mirror::queries;
use catalog_mirror::sandbox::{Scenario, ScenarioOptions};
use catalog_mirror::work::{JobKind, RefreshMode};
use chrono::Duration as ChronoDuration;
use mirror_common::{
    Harness, assert_collections_match, assert_offers_match, assert_same_ids, from_sandbox,
    incoming, last_change, merchant,
};
use serde_json::{Value, json};

const M: i64 = 1001;

async fn onboard(h: &Harness) {
    h.enqueue_full_refreshes(M).await;
    assert_eq!(h.run_jobs().await, 2);
}

async fn event_states(h: &Harness) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as("SELECT event_id, status, detail FROM webhook_events ORDER BY id")
        .fetch_all(&h.pool)
        .await
        .unwrap()
}

fn with_date(mut offer: Value, date: chrono::DateTime<chrono::Utc>, name: &str) -> Value {
    offer["date_last_modified"] = json!(date.format("%Y-%m-%dT%H:%M:%S+0000").to_string());
    offer["name"] = json!(name);
    offer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_update_older_than_the_stored_offer_is_ignored() {
    let h = Harness::start(vec![merchant(M as u64, 300, 3)]).await;
    onboard(&h).await;
    let id = h.catalog().offer_ids(M as u64).nth(17).unwrap() as i64;
    let stored = queries::offer(&h.pool, id).await.unwrap().unwrap();
    let stored_date = stored.date_last_modified.unwrap();
    let changes_before = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM change_log")
        .fetch_one(&h.pool)
        .await
        .unwrap();

    // A late OFFER_UPDATED carrying an older version: ignored.
    let stale = with_date(
        stored.raw.clone(),
        stored_date - ChronoDuration::days(1),
        "Stale name",
    );
    h.deliver(&incoming(
        "stale-1",
        "OFFER_UPDATED",
        M,
        Some(id.to_string()),
        stale,
    ))
    .await;
    assert_eq!(
        h.run_jobs().await,
        1,
        "the event schedules one incremental job"
    );
    let after = queries::offer(&h.pool, id).await.unwrap().unwrap();
    assert_eq!(after, stored, "the stored offer is untouched");
    let changes = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM change_log")
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert_eq!(changes, changes_before, "nothing to index");
    let events = event_states(&h).await;
    assert_eq!(events[0].1, "applied");
    assert!(
        events[0].2.as_deref().unwrap().contains("newer"),
        "{events:?}"
    );

    // A newer one is applied, and the change log names that offer alone.
    let fresh = with_date(
        stored.raw.clone(),
        stored_date + ChronoDuration::days(1),
        "Fresh name",
    );
    h.deliver(&incoming(
        "fresh-1",
        "OFFER_UPDATED",
        M,
        Some(id.to_string()),
        fresh.clone(),
    ))
    .await;
    h.run_jobs().await;
    let after = queries::offer(&h.pool, id).await.unwrap().unwrap();
    assert_eq!(after.name, "Fresh name");
    assert_eq!(after.raw, fresh);
    let (reason, offer_ids, upserted, removed, version) = last_change(&h.pool, M).await.unwrap();
    assert_eq!(
        (reason.as_str(), offer_ids, upserted, removed),
        ("incremental", Some(vec![id]), 1, 0)
    );
    assert_eq!(after.catalog_version, version);

    // The older one arriving again (a redelivery with a new id) changes nothing.
    let stale = with_date(stored.raw.clone(), stored_date, "Stale again");
    h.deliver(&incoming(
        "stale-2",
        "OFFER_UPDATED",
        M,
        Some(id.to_string()),
        stale,
    ))
    .await;
    h.run_jobs().await;
    assert_eq!(
        queries::offer(&h.pool, id).await.unwrap().unwrap().name,
        "Fresh name"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_batch_applies_full_bodies_and_fetches_partial_ones_by_id() {
    let h = Harness::start(vec![merchant(M as u64, 2_000, 4)]).await;
    onboard(&h).await;
    let catalog = h.catalog();
    let change = catalog.advance(M as u64);
    let (full_updates, partial_updates) = change.updated.split_at(change.updated.len() / 2);
    let (full_removals, partial_removals) = change.removed.split_at(change.removed.len() / 2);
    assert!(
        !partial_updates.is_empty() && !partial_removals.is_empty() && !full_removals.is_empty()
    );

    let mut n = 0;
    let mut send = |topic: &'static str, id: u64, body: Value| {
        n += 1;
        incoming(&format!("ev-{n}"), topic, M, Some(id.to_string()), body)
    };
    let mut events = Vec::new();
    for &id in &change.added {
        events.push(send("OFFER_ADDED", id, catalog.offer_json(id).unwrap()));
    }
    for &id in full_updates {
        events.push(send("OFFER_UPDATED", id, catalog.offer_json(id).unwrap()));
    }
    for &id in partial_updates {
        events.push(send("OFFER_UPDATED", id, json!({"id": id})));
    }
    for &id in full_removals {
        events.push(send(
            "OFFER_REMOVED",
            id,
            catalog.removed_offer_json(id).unwrap(),
        ));
    }
    for &id in partial_removals {
        events.push(send("OFFER_DELETED", id, json!({"id": id})));
    }
    for event in &events {
        h.deliver(event).await;
    }
    let stats_before = h.sandbox.stats();
    assert_eq!(h.run_jobs().await, 1, "one batched job for the burst");
    let stats_after = h.sandbox.stats();
    assert_eq!(
        stats_after.offers_served - stats_before.offers_served,
        partial_updates.len() as u64,
        "only the partial bodies were fetched, one call each"
    );
    assert_eq!(
        stats_after.pages_served, stats_before.pages_served,
        "no listing was read"
    );

    // The mirror now equals the advanced catalog, as a refresh would have made it.
    assert_offers_match(&h.pool, &catalog, M).await;
    for &id in full_removals {
        let row = queries::offer(&h.pool, id as i64).await.unwrap().unwrap();
        assert_eq!(
            row.status.as_deref(),
            Some("UNAVAILABLE"),
            "the removal body's status is kept"
        );
        assert!(row.removed_at.is_some());
    }
    let (reason, offer_ids, upserted, removed, _) = last_change(&h.pool, M).await.unwrap();
    assert_eq!(reason, "incremental");
    let expected: BTreeSet<i64> = change
        .added
        .iter()
        .chain(&change.updated)
        .chain(&change.removed)
        .map(|&id| id as i64)
        .collect();
    let listed: BTreeSet<i64> = offer_ids.unwrap().into_iter().collect();
    assert_same_ids(&listed, &expected, "one change names the whole batch");
    assert_eq!(removed as usize, change.removed.len());
    assert_eq!(
        upserted as usize,
        change.added.len() + change.updated.len() + full_removals.len()
    );
    let changes: i64 =
        sqlx::query_scalar("SELECT count(*) FROM change_log WHERE reason = 'incremental'")
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert_eq!(changes, 1);
    let statuses: BTreeSet<String> = event_states(&h).await.into_iter().map(|e| e.1).collect();
    assert_eq!(statuses, BTreeSet::from(["applied".to_string()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_events_of_one_merchant_never_touch_another_merchants_offer() {
    const OTHER: i64 = 1002;
    let h = Harness::start(vec![
        merchant(M as u64, 200, 2),
        merchant(OTHER as u64, 200, 2),
    ])
    .await;
    onboard(&h).await;
    h.enqueue(JobKind::RefreshProducts {
        merchant_id: OTHER,
        mode: RefreshMode::Full,
    })
    .await;
    assert_eq!(h.run_jobs().await, 1);
    let catalog = h.catalog();
    let theirs: Vec<i64> = catalog
        .offer_ids(OTHER as u64)
        .take(3)
        .map(|id| id as i64)
        .collect();
    let ours = catalog.offer_ids(M as u64).nth(5).unwrap() as i64;
    let before = mirror_common::snapshot(&h.pool, OTHER).await;

    // All of these name merchant M (header and body agree), but the offers are OTHER's:
    // a removal by id, a removal whose full body was relabelled to M (staging it would
    // move the offer to M before removing it), and an update by id whose fetched copy
    // says OTHER. One removal of M's own offer rides in the same batch.
    let mut relabelled = catalog.offer_json(theirs[1] as u64).unwrap();
    relabelled["merchant_id"] = json!(M);
    let events = [
        incoming(
            "rm-by-id",
            "OFFER_REMOVED",
            M,
            Some(theirs[0].to_string()),
            json!({"id": theirs[0]}),
        ),
        incoming(
            "rm-relabelled",
            "OFFER_DELETED",
            M,
            Some(theirs[1].to_string()),
            relabelled,
        ),
        incoming(
            "up-by-id",
            "OFFER_UPDATED",
            M,
            Some(theirs[2].to_string()),
            json!({"id": theirs[2]}),
        ),
        incoming(
            "rm-ours",
            "OFFER_DELETED",
            M,
            Some(ours.to_string()),
            json!({"id": ours}),
        ),
    ];
    for event in &events {
        h.deliver(event).await;
    }
    assert_eq!(h.run_jobs().await, 1, "one batched job for the burst");

    assert_eq!(
        mirror_common::snapshot(&h.pool, OTHER).await,
        before,
        "the other merchant's rows, version and change log are untouched"
    );
    assert_offers_match(&h.pool, &catalog, OTHER).await;
    let own = queries::offer(&h.pool, ours).await.unwrap().unwrap();
    assert!(
        own.removed_at.is_some(),
        "the merchant's own offer is removed"
    );
    let (_, offer_ids, _, removed, _) = last_change(&h.pool, M).await.unwrap();
    assert_eq!((offer_ids, removed), (Some(vec![ours]), 1));

    let states = event_states(&h).await;
    for (event_id, status, detail) in &states {
        if event_id == "rm-ours" {
            assert_eq!(status, "applied");
            continue;
        }
        let detail = detail.as_deref().unwrap_or("");
        assert_eq!(status, "unprocessable", "{event_id}: {detail}");
        assert!(
            detail.contains(&OTHER.to_string()),
            "{event_id}: the detail names the owner: {detail}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_merchant_is_hidden_and_comes_back_after_reenabling() {
    let h = Harness::start(vec![merchant(M as u64, 400, 3)]).await;
    onboard(&h).await;
    let shown = queries::storefront_offers(&h.pool, M).await.unwrap();
    assert!(
        shown.len() > 300,
        "most offers are published ({})",
        shown.len()
    );
    let some = shown[0].offer_id;

    let merchant_body = |status: &str, at: &str| {
        let mut body = h
            .catalog()
            .merchant_json_with_status(M as u64, status)
            .unwrap();
        body["date_last_modified"] = json!(at);
        body
    };
    h.deliver(&incoming(
        "m-1",
        "MERCHANT_DISABLED",
        M,
        None,
        merchant_body("DISABLED", "2030-01-01T00:00:00+0000"),
    ))
    .await;
    assert!(
        queries::storefront_offers(&h.pool, M)
            .await
            .unwrap()
            .is_empty(),
        "hidden while disabled"
    );
    assert!(!queries::is_on_storefront(&h.pool, some).await.unwrap());
    assert!(
        queries::offer(&h.pool, some).await.unwrap().is_some(),
        "the rows stay"
    );
    let (reason, offer_ids, ..) = last_change(&h.pool, M).await.unwrap();
    assert_eq!(
        (reason.as_str(), offer_ids),
        ("visibility", None),
        "the indexer re-projects the merchant"
    );

    // An older event does not flip it back.
    h.deliver(&incoming(
        "m-0",
        "MERCHANT_ENABLED",
        M,
        None,
        merchant_body("CONNECTED", "2029-01-01T00:00:00+0000"),
    ))
    .await;
    assert!(
        queries::storefront_offers(&h.pool, M)
            .await
            .unwrap()
            .is_empty()
    );

    h.deliver(&incoming(
        "m-2",
        "MERCHANT_ENABLED",
        M,
        None,
        merchant_body("CONNECTED", "2030-01-02T00:00:00+0000"),
    ))
    .await;
    assert_eq!(
        queries::storefront_offers(&h.pool, M).await.unwrap(),
        shown,
        "the same offers come back"
    );
    let visibility: i64 =
        sqlx::query_scalar("SELECT count(*) FROM change_log WHERE reason = 'visibility'")
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert_eq!(
        visibility, 2,
        "one change per visibility move, none for the stale event"
    );

    // Disconnected: hidden as well.
    h.deliver(&incoming(
        "m-3",
        "MERCHANT_DISCONNECTED",
        M,
        None,
        merchant_body("DISCONNECTED", "2030-01-03T00:00:00+0000"),
    ))
    .await;
    assert!(
        queries::storefront_offers(&h.pool, M)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_events_during_a_sync_are_applied_after_the_delta_that_completed_queues() {
    let h = Harness::start(vec![merchant(M as u64, 1_000, 3)]).await;
    onboard(&h).await;
    let catalog = h.catalog();
    // STARTED, OFFER_ADDED/UPDATED/REMOVED for the change set, COMPLETED (advances the catalog).
    let events = Scenario::ScheduledSync
        .events(&catalog, M as u64, &ScenarioOptions::default())
        .unwrap();
    let offer_events = events
        .iter()
        .filter(|e| e.topic.starts_with("OFFER_"))
        .count();
    assert!(offer_events > 10);
    let upserts = events
        .iter()
        .filter(|e| e.topic == "OFFER_ADDED" || e.topic == "OFFER_UPDATED")
        .count() as u64;
    for event in &events {
        h.deliver(&from_sandbox(event)).await;
    }
    let stats_before = h.sandbox.stats();
    h.run_jobs().await;
    assert_offers_match(&h.pool, &catalog, M).await;
    // The delta read what changed (and the few offers inside the watermark's overlap);
    // the events of the window, removals included, were applied from their bodies.
    let served = h.sandbox.stats().offers_served - stats_before.offers_served;
    assert!(
        served >= upserts && served < upserts + 30,
        "{served} offers read for {upserts} changed"
    );
    assert_eq!(
        h.sandbox.stats().requests - stats_before.requests,
        1,
        "one page, no offer fetched one by one"
    );
    let states: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM webhook_events WHERE topic LIKE 'OFFER_%' GROUP BY status",
    )
    .fetch_all(&h.pool)
    .await
    .unwrap();
    assert_eq!(states, vec![("applied".to_string(), offer_events as i64)]);

    // A collection event outside a window schedules a job that reads the collection it
    // names again and folds it; the other collections wait for their own events or the
    // next collection sync.
    let collection = catalog.collection_ids(M as u64)[0];
    let body = catalog.collection_json(collection).unwrap();
    h.deliver(&incoming(
        "c-1",
        "COLLECTION_OFFERS_UPDATED",
        M,
        Some(collection.to_string()),
        body,
    ))
    .await;
    h.run_jobs().await;
    let status: String =
        sqlx::query_scalar("SELECT status FROM webhook_events WHERE event_id = 'c-1'")
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert_eq!(status, "folded");
    let (raw, members): (serde_json::Value, i64) = sqlx::query_as(
        "SELECT raw, (SELECT count(*) FROM collection_offers co WHERE co.collection_id = c.collection_id)
         FROM collections c WHERE collection_id = $1",
    )
    .bind(collection as i64)
    .fetch_one(&h.pool)
    .await
    .unwrap();
    assert_eq!(
        Some(raw),
        catalog.collection_json(collection),
        "the row, from the body"
    );
    assert_eq!(
        members as usize,
        catalog.collection_offer_ids(collection).len(),
        "the named collection's membership"
    );
    h.enqueue(JobKind::RefreshCollections {
        merchant_id: M,
        mode: RefreshMode::Full,
    })
    .await;
    h.run_jobs().await;
    assert_collections_match(&h.pool, &catalog, M).await;
}
