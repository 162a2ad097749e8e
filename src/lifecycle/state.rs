//! The per-merchant, per-kind sync state machine and its history of runs.
//!
//! States: idle → syncing (STARTED) → completed (COMPLETED) | failed (FAILED);
//! syncing → stalled (no end within the timeout); failed → needs_attention (retries
//! exhausted). Each STARTED is paired with its end into `sync_runs`, by sync id, else
//! by the latest open run. Disorder is tolerated: state only moves for an event at
//! least as new as the one that set it, and a STARTED whose run already ended leaves
//! the state alone.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use super::SyncKind;

/// A row of `sync_state`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SyncState {
    pub merchant_id: i64,
    pub kind: String,
    pub state: String,
    pub state_event_at: Option<DateTime<Utc>>,
    pub state_changed_at: DateTime<Utc>,
    pub current_sync_id: Option<String>,
    pub consecutive_failures: i32,
    pub last_started_at: Option<DateTime<Utc>>,
    pub last_completed_at: Option<DateTime<Utc>>,
    pub last_failed_at: Option<DateTime<Utc>>,
}

impl SyncState {
    pub async fn get(
        conn: &mut PgConnection,
        merchant_id: i64,
        kind: SyncKind,
    ) -> sqlx::Result<Option<SyncState>> {
        sqlx::query_as("SELECT * FROM sync_state WHERE merchant_id = $1 AND kind = $2")
            .bind(merchant_id)
            .bind(kind.as_str())
            .fetch_optional(conn)
            .await
    }
}

/// Facts of one sync event.
pub(super) struct SyncEvent<'a> {
    pub merchant_id: i64,
    pub kind: SyncKind,
    pub sync_id: Option<&'a str>,
    pub at: DateTime<Utc>,
    pub event_id: &'a str,
    pub total_products: Option<i64>,
    pub total_products_synced: Option<i64>,
}

async fn ensure_row(conn: &mut PgConnection, merchant_id: i64, kind: SyncKind) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sync_state (merchant_id, kind) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(merchant_id)
    .bind(kind.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// STARTED: opens (or completes the pairing of) a run and moves the state to
/// `syncing` unless that run already ended or a newer event set the state.
/// Returns whether the state moved.
pub(super) async fn on_started(
    conn: &mut PgConnection,
    event: &SyncEvent<'_>,
) -> sqlx::Result<bool> {
    ensure_row(conn, event.merchant_id, event.kind).await?;
    let run_outcome: String = match event.sync_id {
        Some(sync_id) => {
            sqlx::query_scalar(
                r#"INSERT INTO sync_runs (merchant_id, kind, sync_id, started_at, outcome, started_event_id)
                   VALUES ($1, $2, $3, $4, 'running', $5)
                   ON CONFLICT (merchant_id, kind, sync_id) WHERE sync_id IS NOT NULL DO UPDATE SET
                       started_at = COALESCE(sync_runs.started_at, EXCLUDED.started_at),
                       started_event_id = COALESCE(sync_runs.started_event_id, EXCLUDED.started_event_id)
                   RETURNING outcome"#,
            )
            .bind(event.merchant_id)
            .bind(event.kind.as_str())
            .bind(sync_id)
            .bind(event.at)
            .bind(event.event_id)
            .fetch_one(&mut *conn)
            .await?
        }
        None => {
            sqlx::query_scalar(
                r#"INSERT INTO sync_runs (merchant_id, kind, started_at, outcome, started_event_id)
                   VALUES ($1, $2, $3, 'running', $4) RETURNING outcome"#,
            )
            .bind(event.merchant_id)
            .bind(event.kind.as_str())
            .bind(event.at)
            .bind(event.event_id)
            .fetch_one(&mut *conn)
            .await?
        }
    };
    if run_outcome != "running" {
        // This STARTED belongs to a run whose end arrived first: history is now
        // complete, and the state already reflects the end.
        return Ok(false);
    }
    // Older runs of this merchant and kind that never ended are superseded by this one.
    sqlx::query(
        r#"UPDATE sync_runs SET outcome = 'abandoned'
           WHERE merchant_id = $1 AND kind = $2 AND outcome = 'running' AND started_at < $3
             AND sync_id IS DISTINCT FROM $4"#,
    )
    .bind(event.merchant_id)
    .bind(event.kind.as_str())
    .bind(event.at)
    .bind(event.sync_id)
    .execute(&mut *conn)
    .await?;
    let moved = sqlx::query(
        r#"UPDATE sync_state SET state = 'syncing', state_event_at = $3, state_changed_at = now(),
               current_sync_id = $4, last_started_at = $3
           WHERE merchant_id = $1 AND kind = $2 AND (state_event_at IS NULL OR state_event_at < $3)"#,
    )
    .bind(event.merchant_id)
    .bind(event.kind.as_str())
    .bind(event.at)
    .bind(event.sync_id)
    .execute(&mut *conn)
    .await?;
    Ok(moved.rows_affected() == 1)
}

/// The result of an end event.
pub(super) struct Ended {
    /// The state moved (the event was not older than the current state).
    pub moved: bool,
    pub consecutive_failures: i32,
}

/// COMPLETED or FAILED: closes the matching run (by sync id, else the latest open run,
/// else a new run without a start) and moves the state unless a newer event set it.
pub(super) async fn on_ended(
    conn: &mut PgConnection,
    event: &SyncEvent<'_>,
    completed: bool,
) -> sqlx::Result<Ended> {
    ensure_row(conn, event.merchant_id, event.kind).await?;
    let outcome = if completed { "completed" } else { "failed" };
    let run_id: Option<i64> =
        match event.sync_id {
            Some(sync_id) => sqlx::query_scalar(
                "SELECT id FROM sync_runs WHERE merchant_id = $1 AND kind = $2 AND sync_id = $3",
            )
            .bind(event.merchant_id)
            .bind(event.kind.as_str())
            .bind(sync_id)
            .fetch_optional(&mut *conn)
            .await?,
            None => None,
        };
    let run_id = match run_id {
        Some(id) => Some(id),
        // No run carries this sync id: pair with the latest open run that has no id
        // (or any open run when the end has no id either).
        None => {
            sqlx::query_scalar(
                r#"SELECT id FROM sync_runs
               WHERE merchant_id = $1 AND kind = $2 AND outcome = 'running'
                 AND ($3::text IS NULL OR sync_id IS NULL)
               ORDER BY started_at DESC NULLS LAST, id DESC LIMIT 1"#,
            )
            .bind(event.merchant_id)
            .bind(event.kind.as_str())
            .bind(event.sync_id)
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    match run_id {
        Some(id) => {
            sqlx::query(
                r#"UPDATE sync_runs SET ended_at = $2, outcome = $3, ended_event_id = $4,
                       sync_id = COALESCE(sync_id, $5),
                       total_products = COALESCE($6, total_products),
                       total_products_synced = COALESCE($7, total_products_synced)
                   WHERE id = $1 AND (ended_at IS NULL OR ended_at <= $2)"#,
            )
            .bind(id)
            .bind(event.at)
            .bind(outcome)
            .bind(event.event_id)
            .bind(event.sync_id)
            .bind(event.total_products)
            .bind(event.total_products_synced)
            .execute(&mut *conn)
            .await?;
        }
        None => {
            sqlx::query(
                r#"INSERT INTO sync_runs (merchant_id, kind, sync_id, ended_at, outcome, ended_event_id,
                                          total_products, total_products_synced)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#,
            )
            .bind(event.merchant_id)
            .bind(event.kind.as_str())
            .bind(event.sync_id)
            .bind(event.at)
            .bind(outcome)
            .bind(event.event_id)
            .bind(event.total_products)
            .bind(event.total_products_synced)
            .execute(&mut *conn)
            .await?;
        }
    }
    let failures: Option<i32> = sqlx::query_scalar(
        r#"UPDATE sync_state SET
               state = $3, state_event_at = $4, state_changed_at = now(), current_sync_id = NULL,
               consecutive_failures = CASE WHEN $5 THEN 0 ELSE consecutive_failures + 1 END,
               last_completed_at = CASE WHEN $5 THEN $4 ELSE last_completed_at END,
               last_failed_at = CASE WHEN $5 THEN last_failed_at ELSE $4 END
           WHERE merchant_id = $1 AND kind = $2 AND (state_event_at IS NULL OR state_event_at <= $4)
           RETURNING consecutive_failures"#,
    )
    .bind(event.merchant_id)
    .bind(event.kind.as_str())
    .bind(outcome)
    .bind(event.at)
    .bind(completed)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match failures {
        Some(consecutive_failures) => Ended {
            moved: true,
            consecutive_failures,
        },
        None => Ended {
            moved: false,
            consecutive_failures: 0,
        },
    })
}

/// Marks a sync stalled when it is still running with `sync_id` (its STARTED got no
/// end within the timeout). Returns whether it was.
pub async fn mark_stalled(
    conn: &mut PgConnection,
    merchant_id: i64,
    kind: SyncKind,
    sync_id: Option<&str>,
) -> sqlx::Result<bool> {
    let moved = sqlx::query(
        r#"UPDATE sync_state SET state = 'stalled', state_changed_at = now()
           WHERE merchant_id = $1 AND kind = $2 AND state = 'syncing'
             AND current_sync_id IS NOT DISTINCT FROM $3"#,
    )
    .bind(merchant_id)
    .bind(kind.as_str())
    .bind(sync_id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if moved {
        sqlx::query(
            r#"UPDATE sync_runs SET outcome = 'stalled'
               WHERE merchant_id = $1 AND kind = $2 AND outcome = 'running'
                 AND sync_id IS NOT DISTINCT FROM $3"#,
        )
        .bind(merchant_id)
        .bind(kind.as_str())
        .bind(sync_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(moved)
}

/// Marks a merchant's sync as needing attention (retries exhausted), unless a newer
/// sync has started or completed meanwhile.
pub async fn mark_needs_attention(
    conn: &mut PgConnection,
    merchant_id: i64,
    kind: SyncKind,
) -> sqlx::Result<bool> {
    let moved = sqlx::query(
        r#"UPDATE sync_state SET state = 'needs_attention', state_changed_at = now()
           WHERE merchant_id = $1 AND kind = $2 AND state IN ('failed', 'stalled')"#,
    )
    .bind(merchant_id)
    .bind(kind.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if moved {
        metrics::counter!("catalog_mirror_sync_needs_attention_total", "kind" => kind.as_str())
            .increment(1);
        tracing::error!(
            merchant_id,
            kind = kind.as_str(),
            "sync needs attention: retries are exhausted"
        );
        crate::notify::sync_state_changed(conn, merchant_id, kind, "needs_attention").await?;
    }
    Ok(moved)
}
