//! Incremental offer events (OFFER_ADDED/UPDATED/CREATED/REMOVED/DELETED received
//! outside a sync window), applied in event order, in batches of `refresh.batch_size`.
//!
//! Each batch is reduced to one action per offer (`events`); offers whose event body
//! is partial are fetched by id (a 404 means it is gone: removed), before the
//! transaction. Each batch is one transaction that stages the offers and
//! publishes them through the same merge as a refresh, so an offer older than the
//! stored one (`date_last_modified`) is ignored. Removal sets `removed_at` (the row
//! stays, with the status its body carries); a removal dated older than the stored
//! offer is ignored. Events are marked `applied`; a change-log row is written per batch
//! that changed something. An event changes only offers of the merchant it names: one
//! whose offer the mirror holds for another merchant, or whose offer copy names another
//! merchant, is marked `unprocessable` and changes nothing.
//!
//! Collection events are not applied here (they belong to the collections lane): when
//! only COLLECTION_OFFERS_UPDATED are pending they schedule a membership job that reads
//! just the collections they name (`collection_members`); otherwise a full collections
//! refresh, which lists the merchant's collections (a page per 100), reads the offer
//! listing of only the collections the events name or whose date moved
//! (`collection_delta`), and folds the events when it publishes.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt, stream};
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;

use super::Mirror;
use super::changes::{
    self, COLLECTION_TOPICS, ChangedOffers, OFFER_REMOVAL_TOPICS, OFFER_UPSERT_TOPICS, Reason,
};
use super::events::{Action, PendingEvent, Plan, plan};
use super::publish;
use super::rows::StageKey;
use super::staging::{self, OfferStager, Tables};
use crate::jobs::{NewJob, OnConflict, Queue};
use crate::violet::Offer;
use crate::work::{JobKind, RefreshMode};

/// Collection events that need the collection listing (a collection's own fields, or
/// a removal, which only a complete listing may make).
const LISTING_TOPICS: [&str; 3] = [
    "COLLECTION_CREATED",
    "COLLECTION_UPDATED",
    "COLLECTION_REMOVED",
];

/// What an incremental job did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncrementalReport {
    /// Offer events read.
    pub events: u64,
    pub batches: u64,
    /// Offers written (inserted or updated).
    pub upserted: u64,
    /// Offers marked removed.
    pub removed: u64,
    /// Offers fetched by id because their event body was partial.
    pub fetched: u64,
    /// Events that had nothing to apply: older than (or equal to) the stored offer.
    pub unchanged: u64,
    /// Events not applied: without an offer id, or naming another merchant's offer.
    pub unprocessable: u64,
    /// A collections refresh was scheduled for pending collection events.
    pub collections_scheduled: bool,
}

impl Mirror {
    /// Applies the merchant's pending offer events, batch after batch, until none is
    /// left; schedules a collections refresh when collection events are pending.
    #[tracing::instrument(name = "incremental", skip(self, cancel))]
    pub async fn apply_pending(
        &self,
        merchant_id: i64,
        cancel: &CancellationToken,
    ) -> anyhow::Result<IncrementalReport> {
        let started = Instant::now();
        let outcome = self.incremental(merchant_id, cancel).await;
        metrics::histogram!("catalog_mirror_refresh_duration_seconds", "kind" => "incremental", "mode" => "incremental")
            .record(started.elapsed().as_secs_f64());
        if let Ok(report) = &outcome {
            metrics::counter!("catalog_mirror_refresh_changes_total", "kind" => "incremental", "change" => "upserted")
                .increment(report.upserted);
            metrics::counter!("catalog_mirror_refresh_changes_total", "kind" => "incremental", "change" => "removed")
                .increment(report.removed);
            tracing::info!(
                events = report.events,
                upserted = report.upserted,
                removed = report.removed,
                fetched = report.fetched,
                unchanged = report.unchanged,
                "offer events applied"
            );
        }
        outcome
    }

    async fn incremental(
        &self,
        merchant_id: i64,
        cancel: &CancellationToken,
    ) -> anyhow::Result<IncrementalReport> {
        let mut report = IncrementalReport::default();
        {
            let mut conn = self.pool.acquire().await?;
            if changes::has_pending(&mut conn, merchant_id, &COLLECTION_TOPICS).await? {
                let listing = changes::has_pending(&mut conn, merchant_id, &LISTING_TOPICS).await?;
                self.schedule_collections(&mut conn, merchant_id, listing)
                    .await?;
                report.collections_scheduled = true;
            }
        }
        let topics: Vec<&str> = OFFER_UPSERT_TOPICS
            .iter()
            .chain(&OFFER_REMOVAL_TOPICS)
            .copied()
            .collect();
        let mut after = 0i64;
        loop {
            if cancel.is_cancelled() {
                anyhow::bail!("cancelled between batches");
            }
            let events: Vec<PendingEvent> = sqlx::query_as::<_, (i64, String, Option<String>, Vec<u8>)>(
                r#"SELECT id, topic, entity_id, body FROM webhook_events
                   WHERE merchant_id = $1 AND status = 'pending' AND id > $2 AND upper(btrim(topic)) = ANY($3)
                   ORDER BY id LIMIT $4"#,
            )
            .bind(merchant_id)
            .bind(after)
            .bind(&topics)
            .bind(self.settings.batch_size as i64)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|(id, topic, entity_id, body)| PendingEvent {
                id,
                topic,
                entity_id,
                body,
            })
            .collect();
            let Some(last) = events.last() else { break };
            after = last.id;
            report.events += events.len() as u64;
            report.batches += 1;
            let plan = plan(&events);
            drop(events);
            // On a task of its own: a job cut off at shutdown does not cut the batch's
            // transaction off in the middle of its COPY.
            let (this, cancel) = (self.clone(), cancel.clone());
            let batch = staging::run_detached(async move {
                let mut batch = IncrementalReport::default();
                this.apply_batch(merchant_id, plan, &cancel, &mut batch)
                    .await?;
                Ok(batch)
            })
            .await?;
            report.upserted += batch.upserted;
            report.removed += batch.removed;
            report.fetched += batch.fetched;
            report.unchanged += batch.unchanged;
            report.unprocessable += batch.unprocessable;
        }
        Ok(report)
    }

    /// A full collections refresh when an event needs the listing, else a membership job.
    async fn schedule_collections(
        &self,
        conn: &mut PgConnection,
        merchant_id: i64,
        listing: bool,
    ) -> sqlx::Result<()> {
        let kind = if listing {
            JobKind::RefreshCollections {
                merchant_id,
                mode: RefreshMode::Full,
            }
        } else {
            JobKind::CollectionMembers { merchant_id }
        };
        Queue::enqueue(
            conn,
            &NewJob {
                kind,
                delay: Duration::ZERO,
                max_attempts: self.settings.job_max_attempts,
                on_conflict: OnConflict::KeepEarlier,
            },
        )
        .await?;
        Ok(())
    }

    async fn apply_batch(
        &self,
        merchant_id: i64,
        mut plan: Plan,
        cancel: &CancellationToken,
        report: &mut IncrementalReport,
    ) -> anyhow::Result<()> {
        // Fetch what the events did not carry, before any transaction.
        let to_fetch: Vec<i64> = plan
            .actions
            .iter()
            .filter(|(_, a)| matches!(a, Action::Fetch))
            .map(|(id, _)| *id)
            .collect();
        report.fetched += to_fetch.len() as u64;
        let client = self.client.clone();
        let fetched: Vec<(i64, Option<Offer>)> = stream::iter(to_fetch)
            .map(|id| {
                let client = client.clone();
                async move { client.offer(id).await.map(|offer| (id, offer)) }
            })
            .buffer_unordered(self.settings.fetch_concurrency.max(1))
            .try_collect()
            .await?;
        for (id, offer) in fetched {
            let action = match offer {
                Some(offer) => Action::Upsert(Box::new(offer)),
                None => Action::Remove {
                    body: None,
                    date: None,
                },
            };
            plan.actions.insert(id, action);
        }
        // An event of this merchant changes this merchant's offers only. An offer whose
        // own copy names another merchant is that merchant's refresh's business.
        for (id, other) in plan.naming_other_merchants(merchant_id) {
            plan.refuse(
                id,
                &format!("offer {id} is merchant {other}'s, not {merchant_id}'s; not applied"),
            );
        }
        if cancel.is_cancelled() {
            anyhow::bail!("cancelled before publishing a batch");
        }

        let mut tx = self.pool.begin().await?;
        self.hold_lease(&mut tx).await?;
        let current = changes::lock_merchant(&mut tx, merchant_id).await?;
        publish::prefer_generic_plans(&mut tx).await?;
        let next = current + 1;
        // Likewise an offer the mirror holds for another merchant: a removal (or an
        // upsert) by id must not take it from that merchant.
        let planned: Vec<i64> = plan.actions.keys().copied().collect();
        let owned_elsewhere: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT offer_id, merchant_id FROM offers WHERE offer_id = ANY($1) AND merchant_id <> $2",
        )
        .bind(&planned)
        .bind(merchant_id)
        .fetch_all(&mut *tx)
        .await?;
        for (id, other) in owned_elsewhere {
            plan.refuse(
                id,
                &format!(
                    "offer {id} belongs to merchant {other} in the mirror, not {merchant_id}; not applied"
                ),
            );
        }
        let refresh_id = staging::next_refresh_id(&self.pool).await?;
        let key = StageKey {
            refresh_id,
            merchant_id,
        };
        let mut stager = OfferStager::new(key, self.settings.batch_size);
        let mut removals: Vec<(i64, Option<DateTime<Utc>>)> = Vec::new();
        for (id, action) in &plan.actions {
            match action {
                Action::Upsert(offer) => stager.push(offer),
                Action::Remove { body, date } => {
                    if let Some(offer) = body {
                        stager.push(offer);
                    }
                    removals.push((*id, *date));
                }
                Action::Fetch => unreachable!("fetched above"),
            }
        }
        stager.take(None).write(&mut tx).await?;
        let mut changed = ChangedOffers::default();
        let merged = publish::merge_staged_offers(
            &mut tx,
            refresh_id,
            next,
            None,
            self.settings.batch_size,
            &mut changed,
            cancel,
        )
        .await?;
        staging::discard(&mut tx, refresh_id, Tables::Offers).await?;
        let (ids, dates): (Vec<i64>, Vec<Option<DateTime<Utc>>>) = removals.into_iter().unzip();
        let removed: Vec<i64> = sqlx::query_scalar(
            r#"UPDATE offers o SET removed_at = now(), catalog_version = $3, updated_at = now()
               FROM UNNEST($1::bigint[], $2::timestamptz[]) AS r(offer_id, date)
               WHERE o.offer_id = r.offer_id AND o.merchant_id = $4 AND o.removed_at IS NULL
                 AND (r.date IS NULL OR o.date_last_modified IS NULL OR r.date >= o.date_last_modified)
               RETURNING o.offer_id"#,
        )
        .bind(&ids)
        .bind(&dates)
        .bind(next)
        .bind(merchant_id)
        .fetch_all(&mut *tx)
        .await?;
        changed.add(&removed);

        // Events whose offer this transaction wrote are applied; the others had
        // nothing newer than the mirror.
        let offer_ids: Vec<i64> = plan.events_of.keys().copied().collect();
        let written: HashSet<i64> = sqlx::query_scalar(
            "SELECT offer_id FROM offers WHERE offer_id = ANY($1) AND catalog_version = $2 AND updated_at = now()",
        )
        .bind(&offer_ids)
        .bind(next)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let mut applied = Vec::new();
        let mut unchanged = Vec::new();
        for (offer_id, events) in &plan.events_of {
            if written.contains(offer_id) {
                applied.extend_from_slice(events);
            } else {
                unchanged.extend_from_slice(events);
            }
        }
        mark(&mut tx, &applied, "applied", None).await?;
        mark(
            &mut tx,
            &unchanged,
            "applied",
            Some("no change: the mirror holds this version or a newer one"),
        )
        .await?;
        mark(
            &mut tx,
            &plan.unprocessable,
            "unprocessable",
            Some("no offer id in the body or X-Violet-Entity-Id"),
        )
        .await?;
        let (refused, why): (Vec<i64>, Vec<String>) = plan.refused.iter().cloned().unzip();
        sqlx::query(
            r#"UPDATE webhook_events e SET status = 'unprocessable', detail = r.why
               FROM UNNEST($1::bigint[], $2::text[]) AS r(id, why) WHERE e.id = r.id"#,
        )
        .bind(&refused)
        .bind(&why)
        .execute(&mut *tx)
        .await?;

        let any = merged.upserted > 0 || !removed.is_empty();
        if any {
            publish::update_merchant(&mut tx, merchant_id, next, None).await?;
            let change = changes::Change {
                merchant_id,
                catalog_version: next,
                reason: Reason::Incremental,
                offer_ids: changed.listed(),
                upserted: merged.upserted as i64,
                removed: removed.len() as i64,
            };
            changes::append(&mut tx, &change).await?;
        }
        tx.commit().await?;
        report.upserted += merged.upserted;
        report.removed += removed.len() as u64;
        report.unchanged += unchanged.len() as u64;
        report.unprocessable += (plan.unprocessable.len() + plan.refused.len()) as u64;
        Ok(())
    }
}

async fn mark(
    conn: &mut PgConnection,
    ids: &[i64],
    status: &str,
    detail: Option<&str>,
) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query("UPDATE webhook_events SET status = $2, detail = $3 WHERE id = ANY($1)")
        .bind(ids)
        .bind(status)
        .bind(detail)
        .execute(conn)
        .await?;
    Ok(())
}
