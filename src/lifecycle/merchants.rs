//! Merchant events: connection, enablement and health, applied in event order.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;

use super::Topic;
use crate::jobs::Queue;

/// Makes sure a row exists for a merchant first seen through a sync or offer event.
pub(super) async fn ensure(conn: &mut PgConnection, merchant_id: i64) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO merchants (merchant_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(merchant_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Makes sure the merchant's row exists and locks it until the transaction ends.
///
/// Every planning transaction of a sync or merchant event takes this first, before any
/// `sync_state` or `jobs` row: a COMPLETED cancels the stall check and then updates the
/// merchant, a DISCONNECTED updates the merchant and then cancels every pending job, so
/// without one order the two wait on each other (a deadlock, and a 503 for one of them).
/// Publishing transactions lock the row only at their end, after their offer rows, and
/// take no `sync_state` or pending-job row, so this order holds there too.
pub(crate) async fn lock(conn: &mut PgConnection, merchant_id: i64) -> sqlx::Result<()> {
    ensure(conn, merchant_id).await?;
    sqlx::query("SELECT 1 FROM merchants WHERE merchant_id = $1 FOR NO KEY UPDATE")
        .bind(merchant_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Applies a MERCHANT_* event. Status changes from an event older than the last one
/// applied are ignored; descriptive fields (name, platform, URL) are taken from any
/// event that carries them. Returns whether the status moved. A merchant whose
/// visibility moved is pushed onto `visibility_moved`: the caller appends its change
/// last in the transaction ([`append_visibility_changes`]).
pub(super) async fn apply(
    conn: &mut PgConnection,
    merchant_id: i64,
    topic: &Topic,
    body: &Value,
    at: DateTime<Utc>,
    visibility_moved: &mut Vec<i64>,
) -> sqlx::Result<bool> {
    ensure(conn, merchant_id).await?;
    let text = |field: &str| body.get(field).and_then(Value::as_str).map(str::to_string);
    // Locks the row first (the order [`lock`] explains); `visible` is still what it
    // was before this event.
    let was_visible: bool = sqlx::query_scalar(
        r#"UPDATE merchants SET
               name = COALESCE($2, name), platform = COALESCE($3, platform),
               store_url = COALESCE($4, store_url), raw = COALESCE($5, raw), updated_at = now()
           WHERE merchant_id = $1
           RETURNING visible"#,
    )
    .bind(merchant_id)
    .bind(text("merchant_name").or_else(|| text("name")))
    .bind(text("platform"))
    .bind(text("store_url"))
    .bind(body.is_object().then(|| body.clone()))
    .fetch_one(&mut *conn)
    .await?;

    // (connected, enabled, health, resync_expected): None leaves the column as it is.
    let (connected, enabled, health, resync) = match topic {
        Topic::MerchantConnected => (Some(true), None, None, None),
        Topic::MerchantDisconnected => (Some(false), None, None, None),
        Topic::MerchantEnabled => (None, Some(true), None, Some(true)),
        Topic::MerchantDisabled => (None, Some(false), None, None),
        Topic::MerchantNeedsAttention => (None, None, Some("needs_attention"), None),
        Topic::MerchantComplete => (None, None, Some("complete"), None),
        _ => return Ok(false),
    };
    let visible: Option<bool> = sqlx::query_scalar(
        r#"UPDATE merchants SET
               connected = COALESCE($2, connected), enabled = COALESCE($3, enabled),
               health = COALESCE($4, health), resync_expected = COALESCE($5, resync_expected),
               violet_status = COALESCE($6, violet_status), status_event_at = $7, updated_at = now()
           WHERE merchant_id = $1 AND (status_event_at IS NULL OR status_event_at <= $7)
           RETURNING visible"#,
    )
    .bind(merchant_id)
    .bind(connected)
    .bind(enabled)
    .bind(health)
    .bind(resync)
    .bind(text("status"))
    .bind(at)
    .fetch_optional(&mut *conn)
    .await?;
    let moved = visible.is_some();
    if visible.is_some_and(|visible| visible != was_visible) {
        visibility_moved.push(merchant_id);
    }

    if moved && *topic == Topic::MerchantDisconnected {
        // The app lost access to the catalog: nothing pending for it can succeed.
        let cancelled =
            Queue::cancel_pending(conn, merchant_id, None, "merchant disconnected").await?;
        tracing::info!(
            merchant_id,
            cancelled,
            "merchant disconnected: catalog hidden, pending jobs cancelled"
        );
    }
    Ok(moved)
}

/// Appends a change for each merchant whose visibility moved: the indexer re-projects
/// what the storefront may see of it. Called last in the transaction, because the
/// change log's table lock is held until commit: a transaction that held it while
/// waiting for another lock could deadlock with one holding that lock and waiting for
/// the change log (two intake batches, or a batch and a refresh publishing).
pub(crate) async fn append_visibility_changes(
    conn: &mut PgConnection,
    merchants: &[i64],
) -> sqlx::Result<()> {
    for &merchant_id in merchants {
        let change_no = crate::mirror::visibility_changed(conn, merchant_id).await?;
        tracing::info!(merchant_id, change_no, "merchant visibility changed");
    }
    Ok(())
}
