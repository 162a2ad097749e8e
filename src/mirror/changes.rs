//! What every publishing transaction shares: the per-merchant publish lock and catalog
//! version, the change log (whose insert trigger NOTIFYs the indexers on
//! [`CHANGES_CHANNEL`]), and folding the webhook events a refresh covered.
//!
//! Lock order, the same in every writer so none can deadlock: the merchant's publish
//! lock (a transaction-scoped advisory lock), then offer/collection rows, then the
//! `merchants` row, then `change_log` (`LOCK TABLE ... IN EXCLUSIVE MODE`, taken last and
//! held only until commit, so change numbers become visible in commit order). Intake
//! never takes the publish lock: it only waits for the short tail of a publish. Its
//! planning transactions (sync and merchant events) lock the `merchants` row first, then
//! `sync_state`, `change_log` and pending `jobs` rows, so they cannot deadlock each other
//! either (`lifecycle::merchants::lock`).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// The channel the `change_log` insert trigger notifies (payload: the change number).
pub const CHANGES_CHANNEL: &str = "catalog_mirror_changes";

/// A change-log row lists at most this many offers; beyond it, `offer_ids` is NULL
/// (the indexer re-projects the whole merchant).
pub const MAX_LISTED_OFFERS: usize = 10_000;

/// Topics a products refresh covers (upserts, and removals when it is a full one).
pub(crate) const OFFER_UPSERT_TOPICS: [&str; 3] = ["OFFER_ADDED", "OFFER_UPDATED", "OFFER_CREATED"];
pub(crate) const OFFER_REMOVAL_TOPICS: [&str; 2] = ["OFFER_REMOVED", "OFFER_DELETED"];
pub(crate) const COLLECTION_TOPICS: [&str; 4] = [
    "COLLECTION_CREATED",
    "COLLECTION_UPDATED",
    "COLLECTION_REMOVED",
    "COLLECTION_OFFERS_UPDATED",
];

/// Why a change-log row was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    FullRefresh,
    SafeRefresh,
    DeltaRefresh,
    Collections,
    Incremental,
    Visibility,
    /// An operator confirmed removals held after a complete pass.
    RemovalsConfirmed,
}

impl Reason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::FullRefresh => "full_refresh",
            Reason::SafeRefresh => "safe_refresh",
            Reason::DeltaRefresh => "delta_refresh",
            Reason::Collections => "collections",
            Reason::Incremental => "incremental",
            Reason::Visibility => "visibility",
            Reason::RemovalsConfirmed => "removals_confirmed",
        }
    }
}

/// One change-log row to append.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    pub merchant_id: i64,
    pub catalog_version: i64,
    pub reason: Reason,
    /// `None`: the merchant's whole catalog.
    pub offer_ids: Option<&'a [i64]>,
    pub upserted: i64,
    pub removed: i64,
}

/// Appends a change under the table lock; returns its change number. Call it last in
/// the transaction: the lock is held until commit.
pub async fn append(conn: &mut PgConnection, change: &Change<'_>) -> sqlx::Result<i64> {
    sqlx::query("LOCK TABLE change_log IN EXCLUSIVE MODE")
        .execute(&mut *conn)
        .await?;
    sqlx::query_scalar(
        r#"INSERT INTO change_log (merchant_id, catalog_version, reason, offer_ids, upserted, removed)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING change_no"#,
    )
    .bind(change.merchant_id)
    .bind(change.catalog_version)
    .bind(change.reason.as_str())
    .bind(change.offer_ids)
    .bind(i32::try_from(change.upserted).unwrap_or(i32::MAX))
    .bind(i32::try_from(change.removed).unwrap_or(i32::MAX))
    .fetch_one(conn)
    .await
}

/// A merchant's visibility moved (connected/enabled): the indexer must re-project all
/// of it. Called inside the intake transaction that moved it, after the `merchants`
/// row was updated (so the lock order above holds).
pub async fn visibility_changed(conn: &mut PgConnection, merchant_id: i64) -> sqlx::Result<i64> {
    let version: i64 =
        sqlx::query_scalar("SELECT catalog_version FROM merchants WHERE merchant_id = $1")
            .bind(merchant_id)
            .fetch_one(&mut *conn)
            .await?;
    append(
        conn,
        &Change {
            merchant_id,
            catalog_version: version,
            reason: Reason::Visibility,
            offer_ids: None,
            upserted: 0,
            removed: 0,
        },
    )
    .await
}

/// Serializes publishing transactions of one merchant (products, collections,
/// incremental) and returns its current catalog version. Makes sure the merchant row
/// exists (a manual refresh may come before any event).
pub(crate) async fn lock_merchant(conn: &mut PgConnection, merchant_id: i64) -> sqlx::Result<i64> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('catalog_mirror:publish', $1))")
        .bind(merchant_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO merchants (merchant_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(merchant_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query_scalar("SELECT catalog_version FROM merchants WHERE merchant_id = $1")
        .bind(merchant_id)
        .fetch_one(conn)
        .await
}

/// Marks the merchant's pending events with one of `topics`, received before
/// `before`, as `folded` (covered by a refresh). Returns how many.
pub(crate) async fn fold_events(
    conn: &mut PgConnection,
    merchant_id: i64,
    before: DateTime<Utc>,
    topics: &[&str],
    detail: &str,
) -> sqlx::Result<u64> {
    let result = sqlx::query(
        r#"UPDATE webhook_events SET status = 'folded', detail = $4
           WHERE merchant_id = $1 AND status = 'pending' AND received_at < $2
             AND upper(btrim(topic)) = ANY($3)"#,
    )
    .bind(merchant_id)
    .bind(before)
    .bind(topics)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}

/// Whether the merchant has pending events with one of `topics`.
pub(crate) async fn has_pending(
    conn: &mut PgConnection,
    merchant_id: i64,
    topics: &[&str],
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        r#"SELECT EXISTS (SELECT 1 FROM webhook_events
           WHERE merchant_id = $1 AND status = 'pending' AND upper(btrim(topic)) = ANY($2))"#,
    )
    .bind(merchant_id)
    .bind(topics)
    .fetch_one(conn)
    .await
}

/// The offers a publish changed, kept up to a bound so memory does not grow with the
/// catalog: past [`MAX_LISTED_OFFERS`] only the count is kept.
#[derive(Debug, Default)]
pub(crate) struct ChangedOffers {
    ids: Vec<i64>,
    overflow: bool,
}

impl ChangedOffers {
    pub fn add(&mut self, ids: &[i64]) {
        if self.overflow {
            return;
        }
        if self.ids.len() + ids.len() > MAX_LISTED_OFFERS {
            self.overflow = true;
            self.ids = Vec::new();
        } else {
            self.ids.extend_from_slice(ids);
        }
    }

    /// Forces the change to cover the whole merchant.
    pub fn whole_merchant(&mut self) {
        self.overflow = true;
        self.ids = Vec::new();
    }

    /// The ids for the change log, sorted and unique, or `None` for the whole merchant.
    pub fn listed(&mut self) -> Option<&[i64]> {
        if self.overflow {
            return None;
        }
        self.ids.sort_unstable();
        self.ids.dedup();
        Some(&self.ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_offers_are_bounded() {
        let mut changed = ChangedOffers::default();
        changed.add(&[3, 1, 3]);
        assert_eq!(changed.listed(), Some(&[1, 3][..]));
        let many: Vec<i64> = (0..MAX_LISTED_OFFERS as i64).collect();
        changed.add(&many);
        assert_eq!(
            changed.listed(),
            None,
            "past the bound the whole merchant is named"
        );
    }
}
