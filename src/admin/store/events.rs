//! The stored webhook events: filtered listing and one event with its body.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub merchant_id: Option<i64>,
    /// Compared exactly; callers pass it uppercased, as Violet sends topics.
    pub topic: Option<String>,
    pub status: Option<String>,
    /// Received at or after.
    pub since: Option<DateTime<Utc>>,
    /// Only events with a smaller id (paging backwards).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// An event as listed (without its body).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub event_id: String,
    pub topic: String,
    pub entity_id: Option<String>,
    pub merchant_id: Option<i64>,
    pub webhook_id: Option<String>,
    pub event_id_source: Option<String>,
    pub status: String,
    pub detail: Option<String>,
    pub received_at: DateTime<Utc>,
    pub occurred_at: DateTime<Utc>,
    pub body_bytes: i32,
}

/// An event with its raw body, for display and replay.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    #[sqlx(flatten)]
    pub row: EventRow,
    pub body: Vec<u8>,
}

const COLUMNS: &str = "id, event_id, topic, entity_id, merchant_id, webhook_id, event_id_source, status, detail, \
                       received_at, occurred_at, octet_length(body) AS body_bytes";

/// Matching events, newest first.
pub async fn events(pool: &PgPool, filter: &EventFilter) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        r#"SELECT {COLUMNS} FROM webhook_events
           WHERE ($1::bigint IS NULL OR merchant_id = $1) AND ($2::text IS NULL OR topic = $2)
             AND ($3::text IS NULL OR status = $3) AND ($4::timestamptz IS NULL OR received_at >= $4)
             AND ($5::bigint IS NULL OR id < $5)
           ORDER BY id DESC LIMIT $6"#
    )))
    .bind(filter.merchant_id)
    .bind(&filter.topic)
    .bind(&filter.status)
    .bind(filter.since)
    .bind(filter.before_id)
    .bind(filter.limit)
    .fetch_all(pool)
    .await
}

/// One event by its row id.
pub async fn event(pool: &PgPool, id: i64) -> sqlx::Result<Option<StoredEvent>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, body FROM webhook_events WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}
