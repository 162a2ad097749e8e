//! Removals after a complete pass, and the hold on removals too large to trust.
//!
//! A full refresh removes the merchant's live offers it did not see (and that did not
//! change since it began). A pass that would remove more than
//! `refresh.max_removal_fraction` of the live offers is more likely a listing gone
//! wrong than a merchant emptying its shelves, so those removals are held in
//! `held_removals` and the merchant's products sync is marked `needs_attention` with
//! the reason; the pass still publishes its upserts. Held removals apply when:
//! - the next complete pass would remove the same offers (two passes agree: the
//!   offers in both sets are removed), or
//! - an operator confirms them ([`confirm`]); [`discard`] drops them instead.
//!
//! Removals of a pass that are not held apply at once, after a second look at each
//! (`verify`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use super::changes::{self, ChangedOffers, Reason};
use super::publish;

/// Live offers of the merchant a pass did not stage and that did not change since it
/// began: what a full refresh would remove.
const UNSEEN: &str = r#"
SELECT o.offer_id FROM offers o
WHERE o.merchant_id = $1 AND o.removed_at IS NULL AND o.updated_at < $3
  AND NOT EXISTS (SELECT 1 FROM staged_offers s WHERE s.refresh_id = $2 AND s.offer_id = o.offer_id)
ORDER BY o.offer_id
"#;

/// Marks the listed live offers of the merchant removed.
const REMOVE: &str = r#"
UPDATE offers SET removed_at = now(), catalog_version = $3, updated_at = now()
WHERE merchant_id = $1 AND offer_id = ANY($2) AND removed_at IS NULL
RETURNING offer_id
"#;

/// The reason written on the sync state when removals are held (and recognised when
/// they are released).
const HELD_REASON: &str = "removals held";

/// Removals waiting for agreement, as admin shows them.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct HeldRemovals {
    pub merchant_id: i64,
    pub offers: i64,
    pub live_offers: i64,
    pub refresh_id: i64,
    pub held_at: DateTime<Utc>,
    pub reason: String,
}

/// What a complete pass did about removals.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Removals {
    /// Offers marked removed.
    pub removed: u64,
    /// Offers whose removal is held (0: nothing held after this pass).
    pub held: u64,
}

/// After a complete pass of `refresh_id` (inside its publishing transaction, after
/// the upserts): removes what it did not see, unless that is more than `fraction` of
/// the live offers and not agreed by the pass that held it (see the module doc).
pub(crate) async fn after_complete_pass(
    conn: &mut PgConnection,
    merchant_id: i64,
    refresh_id: i64,
    started_at: DateTime<Utc>,
    version: i64,
    fraction: f64,
    changed: &mut ChangedOffers,
) -> sqlx::Result<Removals> {
    let unseen = unseen(&mut *conn, merchant_id, refresh_id, started_at).await?;
    let mut held: Vec<i64> =
        sqlx::query_scalar("SELECT offer_ids FROM held_removals WHERE merchant_id = $1 FOR UPDATE")
            .bind(merchant_id)
            .fetch_optional(&mut *conn)
            .await?
            .unwrap_or_default();
    held.sort_unstable();
    let live = live_offers(&mut *conn, merchant_id).await?;

    let (agreed, new): (Vec<i64>, Vec<i64>) = unseen
        .into_iter()
        .partition(|id| held.binary_search(id).is_ok());
    let too_many = new.len() as f64 > fraction * live as f64;
    let (remove, hold) = if too_many {
        (agreed, new)
    } else {
        ([agreed, new].concat(), Vec::new())
    };
    let removed = remove_offers(conn, merchant_id, &remove, version, changed).await?;
    if hold.is_empty() {
        release(conn, merchant_id).await?;
    } else {
        let reason = format!(
            "{HELD_REASON}: a complete pass (refresh {refresh_id}) would remove {} of {live} live offers, more than refresh.max_removal_fraction = {fraction}; confirm or discard them, or let the next complete pass agree",
            hold.len()
        );
        hold_removals(conn, merchant_id, &hold, live, refresh_id, &reason).await?;
    }
    Ok(Removals {
        removed,
        held: hold.len() as u64,
    })
}

/// The merchant's live offers that `refresh_id` did not stage and that did not change
/// since `started_at`, ascending.
pub(crate) async fn unseen(
    conn: &mut PgConnection,
    merchant_id: i64,
    refresh_id: i64,
    started_at: DateTime<Utc>,
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(UNSEEN)
        .bind(merchant_id)
        .bind(refresh_id)
        .bind(started_at)
        .fetch_all(conn)
        .await
}

/// How many live offers the merchant has.
pub(crate) async fn live_offers(conn: &mut PgConnection, merchant_id: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM offers WHERE merchant_id = $1 AND removed_at IS NULL")
        .bind(merchant_id)
        .fetch_one(conn)
        .await
}

async fn remove_offers(
    conn: &mut PgConnection,
    merchant_id: i64,
    offer_ids: &[i64],
    version: i64,
    changed: &mut ChangedOffers,
) -> sqlx::Result<u64> {
    if offer_ids.is_empty() {
        return Ok(0);
    }
    let removed: Vec<i64> = sqlx::query_scalar(REMOVE)
        .bind(merchant_id)
        .bind(offer_ids)
        .bind(version)
        .fetch_all(&mut *conn)
        .await?;
    changed.add(&removed);
    Ok(removed.len() as u64)
}

async fn hold_removals(
    conn: &mut PgConnection,
    merchant_id: i64,
    offer_ids: &[i64],
    live: i64,
    refresh_id: i64,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        r#"INSERT INTO held_removals (merchant_id, offer_ids, live_offers, refresh_id, reason)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (merchant_id) DO UPDATE SET offer_ids = EXCLUDED.offer_ids,
               live_offers = EXCLUDED.live_offers, refresh_id = EXCLUDED.refresh_id,
               held_at = now(), reason = EXCLUDED.reason"#,
    )
    .bind(merchant_id)
    .bind(offer_ids)
    .bind(live)
    .bind(refresh_id)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        r#"INSERT INTO sync_state (merchant_id, kind, state, attention_reason)
           VALUES ($1, 'products', 'needs_attention', $2)
           ON CONFLICT (merchant_id, kind) DO UPDATE SET state = 'needs_attention',
               attention_reason = EXCLUDED.attention_reason, state_changed_at = now()"#,
    )
    .bind(merchant_id)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    metrics::counter!("catalog_mirror_removals_held_total").increment(offer_ids.len() as u64);
    tracing::error!(
        merchant_id,
        held = offer_ids.len(),
        live,
        "removals held: a complete pass would remove an unusually large share of the catalog"
    );
    Ok(())
}

/// Drops the merchant's held removals, if any, and the attention they raised.
async fn release(conn: &mut PgConnection, merchant_id: i64) -> sqlx::Result<bool> {
    let dropped = sqlx::query("DELETE FROM held_removals WHERE merchant_id = $1")
        .bind(merchant_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if dropped > 0 {
        sqlx::query(
            r#"UPDATE sync_state SET state = 'completed', attention_reason = NULL, state_changed_at = now()
               WHERE merchant_id = $1 AND kind = 'products' AND state = 'needs_attention'
                 AND attention_reason LIKE $2 || '%'"#,
        )
        .bind(merchant_id)
        .bind(HELD_REASON)
        .execute(&mut *conn)
        .await?;
    }
    Ok(dropped > 0)
}

/// The merchant's held removals, if any.
pub async fn held(pool: &PgPool, merchant_id: i64) -> sqlx::Result<Option<HeldRemovals>> {
    sqlx::query_as(
        r#"SELECT merchant_id, cardinality(offer_ids)::bigint AS offers, live_offers, refresh_id,
                  held_at, reason
           FROM held_removals WHERE merchant_id = $1"#,
    )
    .bind(merchant_id)
    .fetch_optional(pool)
    .await
}

/// An operator confirms the held removals: the offers still live and unchanged since
/// they were held are removed, in one publishing transaction (catalog version, change
/// log). Returns how many were removed, or `None` when nothing was held.
pub async fn confirm(pool: &PgPool, merchant_id: i64) -> sqlx::Result<Option<u64>> {
    let mut tx = pool.begin().await?;
    let current = changes::lock_merchant(&mut tx, merchant_id).await?;
    let held: Option<(Vec<i64>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT offer_ids, held_at FROM held_removals WHERE merchant_id = $1 FOR UPDATE",
    )
    .bind(merchant_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((offer_ids, held_at)) = held else {
        return Ok(None);
    };
    // An offer written since the hold (an event, a later pass) is not what was held.
    let unchanged: Vec<i64> = sqlx::query_scalar(
        "SELECT offer_id FROM offers WHERE merchant_id = $1 AND offer_id = ANY($2) AND updated_at < $3",
    )
    .bind(merchant_id)
    .bind(&offer_ids)
    .bind(held_at)
    .fetch_all(&mut *tx)
    .await?;
    let next = current + 1;
    let mut changed = ChangedOffers::default();
    let removed = remove_offers(&mut tx, merchant_id, &unchanged, next, &mut changed).await?;
    release(&mut tx, merchant_id).await?;
    if removed > 0 {
        publish::update_merchant(&mut tx, merchant_id, next, None).await?;
        let change = changes::Change {
            merchant_id,
            catalog_version: next,
            reason: Reason::RemovalsConfirmed,
            offer_ids: changed.listed(),
            upserted: 0,
            removed: removed as i64,
        };
        changes::append(&mut tx, &change).await?;
    }
    tx.commit().await?;
    tracing::info!(
        merchant_id,
        removed,
        "held removals confirmed by an operator"
    );
    Ok(Some(removed))
}

/// An operator discards the held removals: nothing is removed. Returns false when
/// nothing was held.
pub async fn discard(pool: &PgPool, merchant_id: i64) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let dropped = release(&mut tx, merchant_id).await?;
    tx.commit().await?;
    if dropped {
        tracing::info!(merchant_id, "held removals discarded by an operator");
    }
    Ok(dropped)
}
