//! Which collections' memberships a collections refresh reads again, and which it
//! keeps as stored.
//!
//! Listing a merchant's collections costs a page per 100 collections; reading every
//! collection's offer listing costs a catalog's worth of offer pages. So a refresh
//! lists every collection (the listing read to its final page is still what makes a
//! pass complete and what removals rest on) and then reads the offers of only:
//! - collections the mirror does not hold live (new, or removed and back);
//! - collections whose `date_last_modified` differs from the stored one, or that
//!   have none on either side. The signal: Violet's collection `date_last_modified`,
//!   **assumed** to move when a collection's membership changes (VIOLET.md documents
//!   the field, not what moves it). The stored date is written only by collections
//!   refreshes, in the transaction that publishes the membership read with it, so an
//!   equal date means "the membership we hold was read at this version";
//! - collections a pending COLLECTION_OFFERS_UPDATED, _UPDATED or _CREATED names (by
//!   `X-Violet-Entity-Id` or the body's `id`): an explicit word from Violet beats a
//!   date;
//! - collections whose membership was last read more than
//!   `refresh.collections_recheck_secs` ago, or never (`members_read_at` NULL): what
//!   keeps the date assumption honest, spread over time like the offers' scheduled
//!   full pass. A manual resync forgets every read ([`forget_membership_reads`]).
//!
//! A safe refresh (after a failed or stalled sync: Violet's copy is in doubt) and a
//! recheck bound of 0 read every membership, as before this existed.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;

use crate::work::RefreshMode;

/// Collection events that name one collection whose membership may have moved.
const NAMING_TOPICS: [&str; 3] = [
    "COLLECTION_OFFERS_UPDATED",
    "COLLECTION_UPDATED",
    "COLLECTION_CREATED",
];

/// Past this many pending naming events the refresh reads every membership (the
/// events are read into memory to find the ids they name).
const MAX_NAMING_EVENTS: i64 = 10_000;

/// The memberships a refresh reads, ascending; the others keep their stored rows.
#[derive(Debug, Default)]
pub(super) struct MembershipPlan {
    pub read: Vec<i64>,
    pub kept: usize,
}

/// Decides which of the `listed` collections (id and listed date) have their offer
/// listing read. `before`: the refresh's start (the events it will fold).
pub(super) async fn plan(
    conn: &mut PgConnection,
    merchant_id: i64,
    listed: &[(i64, Option<DateTime<Utc>>)],
    mode: RefreshMode,
    recheck: Duration,
    before: DateTime<Utc>,
) -> sqlx::Result<MembershipPlan> {
    let everything = MembershipPlan {
        read: listed.iter().map(|(id, _)| *id).collect(),
        kept: 0,
    };
    if mode == RefreshMode::Safe || recheck.is_zero() {
        return Ok(everything);
    }
    let Some(named) = named_by_events(conn, merchant_id, before).await? else {
        return Ok(everything);
    };
    let ids: Vec<i64> = listed.iter().map(|(id, _)| *id).collect();
    let recheck_secs = recheck.as_secs_f64();
    // (date, read recently enough) of each live stored collection.
    let stored: HashMap<i64, (Option<DateTime<Utc>>, bool)> =
        sqlx::query_as::<_, (i64, Option<DateTime<Utc>>, bool)>(
            r#"SELECT collection_id, date_last_modified,
                  COALESCE(members_read_at > now() - make_interval(secs => $3), false)
           FROM collections
           WHERE merchant_id = $1 AND collection_id = ANY($2) AND removed_at IS NULL"#,
        )
        .bind(merchant_id)
        .bind(&ids)
        .bind(recheck_secs)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|(id, date, fresh)| (id, (date, fresh)))
        .collect();
    let mut plan = MembershipPlan::default();
    for (id, date) in listed {
        let keep = match stored.get(id) {
            Some((Some(held), true)) => Some(*held) == *date && !named.contains(id),
            _ => false,
        };
        if keep {
            plan.kept += 1;
        } else {
            plan.read.push(*id);
        }
    }
    Ok(plan)
}

/// Collections named by the merchant's pending naming events received before
/// `before`; `None` when there are too many to read (read every membership then).
async fn named_by_events(
    conn: &mut PgConnection,
    merchant_id: i64,
    before: DateTime<Utc>,
) -> sqlx::Result<Option<HashSet<i64>>> {
    let events: Vec<(Option<String>, Vec<u8>)> = sqlx::query_as(
        r#"SELECT entity_id, body FROM webhook_events
           WHERE merchant_id = $1 AND status = 'pending' AND received_at < $2
             AND upper(btrim(topic)) = ANY($3)
           ORDER BY id LIMIT $4"#,
    )
    .bind(merchant_id)
    .bind(before)
    .bind(&NAMING_TOPICS[..])
    .bind(MAX_NAMING_EVENTS + 1)
    .fetch_all(&mut *conn)
    .await?;
    if events.len() as i64 > MAX_NAMING_EVENTS {
        return Ok(None);
    }
    let mut named = HashSet::new();
    for (entity_id, body) in events {
        match named_collection(entity_id.as_deref(), &body) {
            Some(id) => {
                named.insert(id);
            }
            // An event naming no collection could be about any: read them all.
            None => return Ok(None),
        }
    }
    Ok(Some(named))
}

/// The collection an event names: the body's `id` (the collection object, assumed),
/// else `X-Violet-Entity-Id`.
pub(super) fn named_collection(entity_id: Option<&str>, body: &[u8]) -> Option<i64> {
    let from_body = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|b| match b.get("id")? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        });
    from_body.or_else(|| entity_id.and_then(|e| e.trim().parse().ok()))
}

/// Forgets when the merchant's memberships were read, so its next collections
/// refresh reads every one whatever the dates say (a manual resync: an operator's
/// doubt). Returns how many collections it concerned.
pub async fn forget_membership_reads(
    conn: &mut PgConnection,
    merchant_id: i64,
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE collections SET members_read_at = NULL WHERE merchant_id = $1 AND members_read_at IS NOT NULL",
    )
    .bind(merchant_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_names_its_collection_by_body_or_entity() {
        assert_eq!(named_collection(None, br#"{"id": 7}"#), Some(7));
        assert_eq!(named_collection(Some("9"), br#"{"id": "8"}"#), Some(8));
        assert_eq!(named_collection(Some(" 9 "), b"not json"), Some(9));
        assert_eq!(named_collection(None, br#"{"name": "x"}"#), None);
    }
}
