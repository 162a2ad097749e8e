//! The collections refresh: a merchant's collections and, for each, its member offers
//! (ids only), staged and then published in one transaction with the same
//! all-or-nothing rule as products.
//!
//! It touches only `collections` and `collection_offers`, so it runs in its own lane
//! beside the products refresh of the same merchant; the two meet only at the
//! merchant's publish lock, catalog version and change log. A full refresh marks
//! collections not listed as removed and drops their membership; a safe one removes
//! nothing. Either replaces the membership of the collections whose offer listing it
//! read, and only those: every collection is listed, but a collection whose
//! membership cannot have moved keeps its stored one (`collection_delta` says which).

use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::changes::{self, COLLECTION_TOPICS, ChangedOffers, MAX_LISTED_OFFERS, Reason};
use super::collection_delta;
use super::products::{mode_name, prefetch};
use super::progress::ProgressKind::Collections;
use super::publish;
use super::rows::StageKey;
use super::staging::{self, CollectionStager, Tables};
use super::{Mirror, RefreshReport};
use crate::work::RefreshMode;

pub(super) const UPSERT_COLLECTIONS: &str = r#"
INSERT INTO collections AS c (collection_id, merchant_id, external_id, parent_id, name, handle, description,
    status, type, image_url, date_last_modified, content_hash, raw, removed_at, catalog_version, updated_at)
SELECT DISTINCT ON (collection_id) collection_id, merchant_id, external_id, parent_id, name, handle, description,
    status, type, image_url, date_last_modified, content_hash, raw, NULL, $2, now()
FROM staged_collections WHERE refresh_id = $1
ORDER BY collection_id, seq DESC
ON CONFLICT (collection_id) DO UPDATE SET
    merchant_id = EXCLUDED.merchant_id, external_id = EXCLUDED.external_id, parent_id = EXCLUDED.parent_id,
    name = EXCLUDED.name, handle = EXCLUDED.handle, description = EXCLUDED.description,
    status = EXCLUDED.status, type = EXCLUDED.type, image_url = EXCLUDED.image_url,
    date_last_modified = EXCLUDED.date_last_modified, content_hash = EXCLUDED.content_hash, raw = EXCLUDED.raw,
    removed_at = NULL, catalog_version = EXCLUDED.catalog_version, updated_at = EXCLUDED.updated_at
WHERE c.content_hash <> EXCLUDED.content_hash OR c.removed_at IS NOT NULL OR c.merchant_id <> EXCLUDED.merchant_id
RETURNING c.collection_id
"#;

const SWEEP_COLLECTIONS: &str = r#"
UPDATE collections c SET removed_at = now(), catalog_version = $3, updated_at = now()
WHERE c.merchant_id = $1 AND c.removed_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM staged_collections s WHERE s.refresh_id = $2 AND s.collection_id = c.collection_id)
RETURNING c.collection_id
"#;

/// Membership: drop the pairs of each collection whose offer listing was read ($5)
/// that the listing did not show, and (full refresh, $3) every pair of a collection
/// not listed; add the new ones. The pairs of a collection listed but not read stay.
/// Returns how many pairs changed and (up to a bound) which offers they concern.
const REPLACE_MEMBERSHIP: &str = r#"
WITH dropped AS (
    DELETE FROM collection_offers co
    WHERE co.merchant_id = $1
      AND ((co.collection_id = ANY($5)
            AND NOT EXISTS (SELECT 1 FROM staged_collection_offers s
                            WHERE s.refresh_id = $2 AND s.collection_id = co.collection_id AND s.offer_id = co.offer_id))
           OR ($3 AND NOT EXISTS (SELECT 1 FROM staged_collections s
                                  WHERE s.refresh_id = $2 AND s.collection_id = co.collection_id)))
    RETURNING co.offer_id
), added AS (
    INSERT INTO collection_offers (collection_id, offer_id, merchant_id)
    SELECT DISTINCT collection_id, offer_id, $1 FROM staged_collection_offers WHERE refresh_id = $2
    ON CONFLICT DO NOTHING
    RETURNING offer_id
), touched AS (
    SELECT offer_id FROM dropped UNION SELECT offer_id FROM added
)
SELECT (SELECT count(*) FROM dropped) + (SELECT count(*) FROM added),
       (SELECT count(*) FROM touched),
       COALESCE((SELECT array_agg(offer_id) FROM (SELECT offer_id FROM touched LIMIT $4) t), '{}')
"#;

/// Replaces the memberships of the collections in `read` (of `key`'s staging; with
/// `sweep`, also those of collections the complete listing no longer shows), dates
/// their reading `read_at`, and returns the membership rows changed with the offers to
/// re-project: those whose membership moved and the members of the `upserted`
/// collections (a collection's fields appear on its offers' documents).
pub(super) async fn replace_memberships(
    tx: &mut sqlx::PgConnection,
    key: StageKey,
    sweep: bool,
    read: &[i64],
    read_at: DateTime<Utc>,
    upserted: &[i64],
) -> sqlx::Result<(i64, ChangedOffers)> {
    let (pairs, touched, touched_ids): (i64, i64, Vec<i64>) = sqlx::query_as(REPLACE_MEMBERSHIP)
        .bind(key.merchant_id)
        .bind(key.refresh_id)
        .bind(sweep)
        .bind(MAX_LISTED_OFFERS as i64 + 1)
        .bind(read)
        .fetch_one(&mut *tx)
        .await?;
    // The memberships just replaced were read after the refresh started: dated then,
    // they are due for a recheck no later than they should be.
    sqlx::query(
        "UPDATE collections SET members_read_at = $3 WHERE merchant_id = $1 AND collection_id = ANY($2)",
    )
    .bind(key.merchant_id)
    .bind(read)
    .bind(read_at)
    .execute(&mut *tx)
    .await?;
    let mut changed = ChangedOffers::default();
    if touched as usize > touched_ids.len() {
        changed.whole_merchant();
    }
    changed.add(&touched_ids);
    if !upserted.is_empty() {
        let members: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT offer_id FROM collection_offers WHERE collection_id = ANY($1) LIMIT $2",
        )
        .bind(upserted)
        .bind(MAX_LISTED_OFFERS as i64 + 1)
        .fetch_all(&mut *tx)
        .await?;
        if members.len() > MAX_LISTED_OFFERS {
            changed.whole_merchant();
        }
        changed.add(&members);
    }
    Ok((pairs, changed))
}

impl Mirror {
    /// Refreshes a merchant's collections and their membership.
    #[tracing::instrument(name = "refresh_collections", skip(self, mode, cancel), fields(mode = mode_name(mode), refresh_id = tracing::field::Empty))]
    pub async fn refresh_collections(
        &self,
        merchant_id: i64,
        mode: RefreshMode,
        cancel: &CancellationToken,
    ) -> anyhow::Result<RefreshReport> {
        let started = Instant::now();
        self.progress
            .start(merchant_id, Collections, mode_name(mode))
            .await;
        let outcome = self.collections(merchant_id, mode, cancel, started).await;
        self.progress.finished(merchant_id, Collections, &outcome);
        let mode = mode_name(mode);
        metrics::histogram!("catalog_mirror_refresh_duration_seconds", "kind" => "collections", "mode" => mode)
            .record(started.elapsed().as_secs_f64());
        let result = if outcome.is_ok() { "ok" } else { "error" };
        metrics::counter!("catalog_mirror_refreshes_total", "kind" => "collections", "mode" => mode, "outcome" => result)
            .increment(1);
        if let Ok(report) = &outcome {
            tracing::info!(
                collections = report.seen,
                upserted = report.upserted,
                removed = report.removed,
                membership_changes = report.membership_changes,
                elapsed_ms = report.elapsed.as_millis() as u64,
                "collections refreshed"
            );
        }
        outcome
    }

    async fn collections(
        &self,
        merchant_id: i64,
        mode: RefreshMode,
        cancel: &CancellationToken,
        started: Instant,
    ) -> anyhow::Result<RefreshReport> {
        let pool = &self.pool;
        let (started_at, key) =
            staging::begin(pool, merchant_id, Tables::Collections, self.lease.as_ref()).await?;
        let refresh_id = key.refresh_id;
        let staged = match self.stage_collections(key, mode, started_at, cancel).await {
            Ok(staged) => staged,
            Err(err) => {
                staging::discard_quietly(pool, refresh_id, Tables::Collections).await;
                return Err(err);
            }
        };
        let result = self
            .publish_collections(key, mode, started_at, staged, started, cancel)
            .await;
        staging::discard_quietly(pool, refresh_id, Tables::Collections).await;
        result
    }

    /// Stages the listing and the memberships read; returns how many collections were
    /// listed and which memberships were read.
    async fn stage_collections(
        &self,
        key: StageKey,
        mode: RefreshMode,
        started_at: DateTime<Utc>,
        cancel: &CancellationToken,
    ) -> anyhow::Result<(u64, Vec<i64>)> {
        let depth = self.settings.prefetch_pages;
        let (mut pages, _fetcher) = prefetch(self.client.collection_pages(key.merchant_id), depth);
        let mut stager = CollectionStager::new(key);
        // Ids and dates only: a merchant has far fewer collections than offers.
        let mut listed = Vec::new();
        let mut complete = false;
        let mut page_no = 0u32;
        loop {
            let next = tokio::select! {
                biased;
                _ = cancel.cancelled() => anyhow::bail!("cancelled while fetching collections"),
                next = pages.recv() => next,
            };
            let Some(page) = next else { break };
            page_no += 1;
            let page = page.with_context(|| {
                format!("cannot read page {page_no} of merchant {}'s collections; nothing was published", key.merchant_id)
            })?;
            complete = page.is_final();
            self.progress
                .page_fetched(key.merchant_id, Collections, page.content.len(), false);
            for collection in &page.content {
                stager.push(collection);
                listed.push((collection.id, collection.date_last_modified));
            }
        }
        anyhow::ensure!(
            complete,
            "the collection listing ended without a final page; nothing was published"
        );
        stager
            .flush(&self.pool)
            .await
            .context("cannot write staged collections")?;
        // A collection listed twice (the listing shifted) counts with its last date.
        listed.reverse();
        listed.sort_by_key(|(id, _)| *id);
        listed.dedup_by_key(|(id, _)| *id);
        let plan = {
            let mut conn = self.pool.acquire().await?;
            collection_delta::plan(
                &mut conn,
                key.merchant_id,
                &listed,
                mode,
                self.settings.collections_recheck,
                started_at,
            )
            .await?
        };
        tracing::info!(
            listed = listed.len(),
            read = plan.read.len(),
            kept = plan.kept,
            "collection memberships to read"
        );
        metrics::counter!("catalog_mirror_collection_memberships_total", "outcome" => "read")
            .increment(plan.read.len() as u64);
        metrics::counter!("catalog_mirror_collection_memberships_total", "outcome" => "kept")
            .increment(plan.kept as u64);
        for &collection_id in &plan.read {
            self.stage_membership(key, collection_id, cancel).await?;
        }
        Ok((stager.staged(), plan.read))
    }

    /// Reads one collection's offer listing to its end, staging member ids in batches.
    pub(super) async fn stage_membership(
        &self,
        key: StageKey,
        collection_id: i64,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        let batch = self.settings.batch_size;
        let (mut pages, _fetcher) = prefetch(
            self.client.collection_offer_pages(collection_id),
            self.settings.prefetch_pages,
        );
        let mut members: Vec<i64> = Vec::with_capacity(batch.min(10_000));
        let mut complete = false;
        let mut page_no = 0u32;
        loop {
            let next = tokio::select! {
                biased;
                _ = cancel.cancelled() => anyhow::bail!("cancelled while fetching collection {collection_id}"),
                next = pages.recv() => next,
            };
            let Some(page) = next else { break };
            page_no += 1;
            let page = page.with_context(|| {
                format!("cannot read page {page_no} of collection {collection_id}'s offers; nothing was published")
            })?;
            complete = page.is_final();
            self.progress
                .page_fetched(key.merchant_id, Collections, 0, false);
            members.extend(page.content.iter().map(|offer| offer.id));
            if members.len() >= batch {
                let mut conn = self.pool.acquire().await?;
                staging::stage_members(&mut conn, key, collection_id, &members).await?;
                members.clear();
            }
        }
        anyhow::ensure!(
            complete,
            "collection {collection_id}'s offer listing ended without a final page; nothing was published"
        );
        let mut conn = self.pool.acquire().await?;
        staging::stage_members(&mut conn, key, collection_id, &members).await?;
        Ok(())
    }

    async fn publish_collections(
        &self,
        key: StageKey,
        mode: RefreshMode,
        started_at: DateTime<Utc>,
        (staged, read): (u64, Vec<i64>),
        started: Instant,
        cancel: &CancellationToken,
    ) -> anyhow::Result<RefreshReport> {
        let merchant_id = key.merchant_id;
        let publish_started = Instant::now();
        let mut tx = self.pool.begin().await?;
        self.hold_lease(&mut tx).await?;
        staging::own(&mut tx, key.refresh_id, Tables::Collections, staged).await?;
        let current = changes::lock_merchant(&mut tx, merchant_id).await?;
        let next = current + 1;
        if cancel.is_cancelled() {
            anyhow::bail!("cancelled while publishing");
        }

        let upserted: Vec<i64> = sqlx::query_scalar(UPSERT_COLLECTIONS)
            .bind(key.refresh_id)
            .bind(next)
            .fetch_all(&mut *tx)
            .await?;
        let removed: Vec<i64> = match mode {
            RefreshMode::Full => {
                sqlx::query_scalar(SWEEP_COLLECTIONS)
                    .bind(merchant_id)
                    .bind(key.refresh_id)
                    .bind(next)
                    .fetch_all(&mut *tx)
                    .await?
            }
            RefreshMode::Safe | RefreshMode::Delta => Vec::new(),
        };
        let (pairs, mut changed) = replace_memberships(
            &mut tx,
            key,
            mode == RefreshMode::Full,
            &read,
            started_at,
            &upserted,
        )
        .await?;

        let any = !upserted.is_empty() || !removed.is_empty() || pairs > 0;
        let version = if any { next } else { current };
        publish::update_merchant(&mut tx, merchant_id, version, None).await?;
        // A safe refresh removes no collection: COLLECTION_REMOVED stays pending (the
        // incremental job schedules a full collections refresh for it).
        let topics: Vec<&str> = match mode {
            RefreshMode::Full => COLLECTION_TOPICS.to_vec(),
            RefreshMode::Safe | RefreshMode::Delta => COLLECTION_TOPICS
                .iter()
                .copied()
                .filter(|t| *t != "COLLECTION_REMOVED")
                .collect(),
        };
        let detail = format!(
            "covered by {} collections refresh {}",
            mode_name(mode),
            key.refresh_id
        );
        let folded =
            changes::fold_events(&mut tx, merchant_id, started_at, &topics, &detail).await?;
        let change_no = if any {
            let change = changes::Change {
                merchant_id,
                catalog_version: version,
                reason: Reason::Collections,
                offer_ids: changed.listed(),
                upserted: upserted.len() as i64,
                removed: removed.len() as i64,
            };
            Some(changes::append(&mut tx, &change).await?)
        } else {
            None
        };
        tx.commit().await?;
        Ok(RefreshReport {
            merchant_id,
            refresh_id: key.refresh_id,
            seen: staged,
            upserted: upserted.len() as u64,
            removed: removed.len() as u64,
            held: 0,
            membership_changes: pairs as u64,
            catalog_version: version,
            change_no,
            folded,
            elapsed: started.elapsed(),
            publish: publish_started.elapsed(),
        })
    }
}
