//! Durable, idempotent storage of verified webhook events.
//!
//! One transaction per delivery: the event is inserted with `ON CONFLICT DO NOTHING` on
//! its event id; only when it is new does planning run (state, history, jobs) in the
//! same transaction. The caller answers 2xx only after this returns, so a 2xx always
//! means committed, and a duplicate creates no work.

use sqlx::PgPool;

use crate::sync::{EventStatus, IncomingEvent, Planner};

/// What intake did with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntakeOutcome {
    Stored(EventStatus),
    Duplicate,
}

/// Stores `event` and plans its work, atomically.
#[tracing::instrument(skip_all, fields(event_id = %event.event_id, topic = %event.topic_name))]
pub async fn record(pool: &PgPool, planner: &Planner, event: &IncomingEvent) -> sqlx::Result<IntakeOutcome> {
    let (status, detail) = Planner::classify(event);
    let mut tx = pool.begin().await?;
    let inserted: Option<i64> = sqlx::query_scalar(
        r#"INSERT INTO webhook_events
               (event_id, topic, entity_id, merchant_id, webhook_id, event_id_source, body, occurred_at,
                status, detail)
           VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8, now()), $9, $10)
           ON CONFLICT (event_id) DO NOTHING
           RETURNING id"#,
    )
    .bind(&event.event_id)
    .bind(&event.topic_name)
    .bind(&event.entity_id)
    .bind(event.merchant_id())
    .bind(&event.webhook_id)
    .bind(&event.event_id_source)
    .bind(&event.raw_body)
    .bind(event.occurred_at())
    .bind(status.as_str())
    .bind(detail)
    .fetch_optional(&mut *tx)
    .await?;
    if inserted.is_none() {
        // Nothing was written; ending the transaction either way is the same.
        tx.commit().await?;
        return Ok(IntakeOutcome::Duplicate);
    }
    planner.apply(&mut tx, event).await?;
    tx.commit().await?;
    Ok(IntakeOutcome::Stored(status))
}
