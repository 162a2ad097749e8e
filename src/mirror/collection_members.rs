//! COLLECTION_OFFERS_UPDATED outside a sync window, applied by itself: the named
//! collections' offer listings are read to their final page and only their membership
//! is replaced, in one transaction, without listing the merchant's collections. When
//! the event's body is the collection (**assumed**, like the offer events' bodies: it
//! parses, names this collection and merchant, and carries `name` and
//! `date_last_modified`) and is not older than the stored row, the row is updated from
//! it, so its stored date stays the date its membership was read at
//! (`collection_delta`); otherwise the row stays and the next listing reads the
//! membership once more.
//!
//! Only a membership moves, so nothing else needs the listing (VIOLET.md documents no
//! endpoint for one collection), and removals rest on a complete listing. So whenever the pending collection events
//! ask for more (a COLLECTION_CREATED, _UPDATED or _REMOVED, an event naming no
//! collection, a collection the mirror does not hold live, one whose offer listing
//! answers 404) this job hands over to a full collections refresh, which lists, reads
//! what it must (`collection_delta`) and folds every pending collection event.
//! It runs in the merchant's collections lane, so never beside a collections refresh.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Mirror;
use super::changes::{self, COLLECTION_TOPICS, Reason};
use super::collection_delta::named_collection;
use super::collections::{UPSERT_COLLECTIONS, replace_memberships};
use super::publish;
use super::rows::StageKey;
use super::staging::{self, CollectionStager, Tables};
use crate::jobs::{NewJob, OnConflict, Queue};
use crate::violet::{Collection, FromJson, VioletError};
use crate::work::{JobKind, RefreshMode};

const OFFERS_UPDATED: &str = "COLLECTION_OFFERS_UPDATED";

/// Past this many pending events the job hands over to a full collections refresh.
const MAX_EVENTS: i64 = 1_000;

/// What a membership job did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembersReport {
    /// Pending COLLECTION_OFFERS_UPDATED events covered (folded).
    pub events: u64,
    /// Collections whose membership was read again.
    pub collections: u64,
    /// Membership pairs added plus removed.
    pub membership_changes: u64,
    /// The events asked for more: a full collections refresh was scheduled instead.
    pub handed_over: bool,
}

impl Mirror {
    /// Reads again the membership of each collection a pending COLLECTION_OFFERS_UPDATED
    /// names, or schedules a full collections refresh when the events need one.
    #[tracing::instrument(name = "collection_members", skip(self, cancel))]
    pub async fn refresh_collection_members(
        &self,
        merchant_id: i64,
        cancel: &CancellationToken,
    ) -> anyhow::Result<MembersReport> {
        let (started_at, key) = staging::begin(
            &self.pool,
            merchant_id,
            Tables::Collections,
            self.lease.as_ref(),
        )
        .await?;
        let outcome = self.members(key, started_at, cancel).await;
        staging::discard_quietly(&self.pool, key.refresh_id, Tables::Collections).await;
        if let Ok(report) = &outcome {
            tracing::info!(
                events = report.events,
                collections = report.collections,
                membership_changes = report.membership_changes,
                handed_over = report.handed_over,
                "collection memberships read again"
            );
        }
        outcome
    }

    async fn members(
        &self,
        key: StageKey,
        started_at: chrono::DateTime<chrono::Utc>,
        cancel: &CancellationToken,
    ) -> anyhow::Result<MembersReport> {
        let merchant_id = key.merchant_id;
        let events: Vec<(i64, String, Option<String>, Vec<u8>)> = sqlx::query_as(
            r#"SELECT id, upper(btrim(topic)), entity_id, body FROM webhook_events
               WHERE merchant_id = $1 AND status = 'pending' AND received_at < $2
                 AND upper(btrim(topic)) = ANY($3)
               ORDER BY id LIMIT $4"#,
        )
        .bind(merchant_id)
        .bind(started_at)
        .bind(&COLLECTION_TOPICS[..])
        .bind(MAX_EVENTS + 1)
        .fetch_all(&self.pool)
        .await?;
        if events.is_empty() {
            return Ok(MembersReport::default());
        }
        let mut named = BTreeSet::new();
        let mut bodies: BTreeMap<i64, Collection> = BTreeMap::new();
        let mut event_ids = Vec::with_capacity(events.len());
        let mut simple = events.len() as i64 <= MAX_EVENTS;
        for (id, topic, entity_id, body) in &events {
            match named_collection(entity_id.as_deref(), body) {
                Some(collection) if topic == OFFERS_UPDATED => {
                    named.insert(collection);
                    event_ids.push(*id);
                    if let Some(body) = full_collection(body, collection, merchant_id) {
                        let newer = bodies
                            .get(&collection)
                            .is_none_or(|held| body.date_last_modified >= held.date_last_modified);
                        if newer {
                            bodies.insert(collection, body);
                        }
                    }
                }
                _ => simple = false,
            }
        }
        let named: Vec<i64> = named.into_iter().collect();
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM collections WHERE merchant_id = $1 AND collection_id = ANY($2) AND removed_at IS NULL",
        )
        .bind(merchant_id)
        .bind(&named)
        .fetch_one(&self.pool)
        .await?;
        if !simple || live as usize != named.len() {
            return self.hand_over(merchant_id).await;
        }

        for &collection_id in &named {
            if let Err(err) = self.stage_membership(key, collection_id, cancel).await {
                let gone = err
                    .downcast_ref::<VioletError>()
                    .is_some_and(|e| matches!(e, VioletError::Http { status: 404, .. }));
                if gone {
                    // Gone from Violet: only a complete listing may remove it.
                    return self.hand_over(merchant_id).await;
                }
                return Err(err);
            }
        }

        // Rows from bodies not older than the stored rows (the lane keeps other writers
        // of this merchant's collections out until this job ends).
        let stored: HashMap<i64, Option<chrono::DateTime<chrono::Utc>>> = sqlx::query_as(
            "SELECT collection_id, date_last_modified FROM collections WHERE collection_id = ANY($1)",
        )
        .bind(&named)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .collect();
        let mut stager = CollectionStager::new(key);
        for (id, body) in &bodies {
            let held = stored.get(id).copied().flatten();
            if held.is_none_or(|held| body.date_last_modified >= Some(held)) {
                stager.push(body);
            }
        }
        stager.flush(&self.pool).await?;

        let mut tx = self.pool.begin().await?;
        self.hold_lease(&mut tx).await?;
        staging::own(
            &mut tx,
            key.refresh_id,
            Tables::Collections,
            stager.staged(),
        )
        .await?;
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
        let (pairs, mut changed) =
            replace_memberships(&mut tx, key, false, &named, started_at, &upserted).await?;
        sqlx::query("UPDATE webhook_events SET status = 'folded', detail = $2 WHERE id = ANY($1)")
            .bind(&event_ids)
            .bind(format!(
                "membership read again by collection members refresh {}",
                key.refresh_id
            ))
            .execute(&mut *tx)
            .await?;
        if pairs > 0 || !upserted.is_empty() {
            publish::update_merchant(&mut tx, merchant_id, next, None).await?;
            let change = changes::Change {
                merchant_id,
                catalog_version: next,
                reason: Reason::Collections,
                offer_ids: changed.listed(),
                upserted: upserted.len() as i64,
                removed: 0,
            };
            changes::append(&mut tx, &change).await?;
        }
        tx.commit().await?;
        Ok(MembersReport {
            events: event_ids.len() as u64,
            collections: named.len() as u64,
            membership_changes: pairs as u64,
            handed_over: false,
        })
    }

    /// Schedules a full collections refresh, due now; it folds the pending events.
    async fn hand_over(&self, merchant_id: i64) -> anyhow::Result<MembersReport> {
        let mut conn = self.pool.acquire().await?;
        Queue::enqueue(
            &mut conn,
            &NewJob {
                kind: JobKind::RefreshCollections {
                    merchant_id,
                    mode: RefreshMode::Full,
                },
                delay: Duration::ZERO,
                max_attempts: self.settings.job_max_attempts,
                on_conflict: OnConflict::KeepEarlier,
            },
        )
        .await?;
        Ok(MembersReport {
            handed_over: true,
            ..MembersReport::default()
        })
    }
}

/// The collection in an event body when it is a whole one: it parses, names
/// `collection_id` and `merchant_id`, and carries a name and a date.
fn full_collection(body: &[u8], collection_id: i64, merchant_id: i64) -> Option<Collection> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let collection = Collection::from_json(value).ok()?;
    let whole = collection.id == collection_id
        && collection.merchant_id == Some(merchant_id)
        && collection.name.is_some()
        && collection.date_last_modified.is_some();
    whole.then_some(collection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_whole_collection_of_this_merchant_is_taken_from_a_body() {
        let body = br#"{"id": 5, "merchant_id": 7, "name": "Sale", "date_last_modified": "2025-01-02T00:00:00Z"}"#;
        assert!(full_collection(body, 5, 7).is_some());
        assert!(full_collection(body, 6, 7).is_none(), "another collection");
        assert!(full_collection(body, 5, 8).is_none(), "another merchant");
        assert!(full_collection(br#"{"id": 5, "merchant_id": 7, "name": "Sale"}"#, 5, 7).is_none());
        assert!(full_collection(br#"{"merchant_id": 7}"#, 5, 7).is_none());
    }
}
