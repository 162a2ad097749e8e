//! What an operator can change: enqueue full refreshes (resync), give a dead job new
//! attempts (retry), plan a stored event again (replay), and confirm or discard the
//! removals a complete pass held. Each runs in one transaction, through the same
//! queue, planner and mirror as the daemon's own work.

use std::time::Duration;

use serde::Serialize;

use super::store::EventRow;
use super::{AdminError, AdminState};
use crate::jobs::{Job, NewJob, OnConflict, Queue};
use crate::lifecycle::{IncomingEvent, Planner, SyncKind, Topic, refresh};
use crate::mirror::{self, removals};
use crate::work::RefreshMode;

/// Which refreshes a resync enqueues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncKind {
    Products,
    Collections,
    Both,
}

impl ResyncKind {
    pub fn parse(text: &str) -> Result<ResyncKind, AdminError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "products" => Ok(ResyncKind::Products),
            "collections" => Ok(ResyncKind::Collections),
            "both" => Ok(ResyncKind::Both),
            other => Err(AdminError::bad_request(format!(
                "unknown kind {other:?}: expected products, collections or both"
            ))),
        }
    }

    fn syncs(self) -> &'static [SyncKind] {
        match self {
            ResyncKind::Products => &[SyncKind::Products],
            ResyncKind::Collections => &[SyncKind::Collections],
            ResyncKind::Both => &[SyncKind::Products, SyncKind::Collections],
        }
    }
}

/// A job a resync enqueued (or the pending one it merged into).
#[derive(Debug, Clone, Serialize)]
pub struct Enqueued {
    pub job_id: i64,
    pub merchant_id: i64,
    pub kind: &'static str,
}

/// Enqueues a full refresh of `kind` for one merchant, or for every connected merchant
/// when `merchant` is `None`. A pending refresh of the same merchant and kind is made
/// due now and upgraded to full rather than duplicated. A collections resync reads
/// every membership again (`mirror::forget_membership_reads`).
pub async fn resync(
    state: &AdminState,
    merchant: Option<i64>,
    kind: ResyncKind,
) -> Result<Vec<Enqueued>, AdminError> {
    let mut tx = state.pool.begin().await?;
    let merchants: Vec<i64> = match merchant {
        Some(id) => {
            let connected: Option<bool> =
                sqlx::query_scalar("SELECT connected FROM merchants WHERE merchant_id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            match connected {
                None => return Err(AdminError::NotFound(format!("no merchant {id}"))),
                Some(false) => {
                    return Err(AdminError::Conflict(format!(
                        "merchant {id} is disconnected: a refresh cannot read its catalog"
                    )));
                }
                Some(true) => vec![id],
            }
        }
        None => {
            sqlx::query_scalar(
                "SELECT merchant_id FROM merchants WHERE connected ORDER BY merchant_id",
            )
            .fetch_all(&mut *tx)
            .await?
        }
    };
    let mut enqueued = Vec::with_capacity(merchants.len() * kind.syncs().len());
    for merchant_id in merchants {
        for sync in kind.syncs() {
            let job = refresh(merchant_id, *sync, RefreshMode::Full);
            let name = job.name();
            let job_id = Queue::enqueue(
                &mut tx,
                &NewJob {
                    kind: job,
                    delay: Duration::ZERO,
                    max_attempts: state.job_max_attempts,
                    on_conflict: OnConflict::KeepEarlier,
                },
            )
            .await?;
            if *sync == SyncKind::Collections {
                // An operator's doubt: the refresh reads every membership again, not
                // only those whose collection's date moved.
                mirror::forget_membership_reads(&mut tx, merchant_id).await?;
            }
            enqueued.push(Enqueued {
                job_id,
                merchant_id,
                kind: name,
            });
        }
    }
    tx.commit().await?;
    tracing::info!(merchant = ?merchant, kind = ?kind, jobs = enqueued.len(), "resync requested by an operator");
    Ok(enqueued)
}

/// Moves a dead or cancelled job back to pending with fresh attempts; returns it as it
/// is now (it may show `cancelled` when a pending twin already covers the work).
pub async fn retry(state: &AdminState, job_id: i64) -> Result<Job, AdminError> {
    let queue = Queue::new(state.pool.clone());
    if queue.retry_dead(job_id).await? {
        tracing::info!(job_id, "job retried by an operator");
        return queue
            .get(job_id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("no job {job_id}")));
    }
    match queue.get(job_id).await? {
        None => Err(AdminError::NotFound(format!("no job {job_id}"))),
        Some(job) => Err(AdminError::Conflict(format!(
            "job {job_id} is {}: only dead or cancelled jobs can be retried",
            super::store::state_name(job.state)
        ))),
    }
}

/// Applies the removals a complete pass held for the merchant (`None`: none held).
pub async fn confirm_removals(
    state: &AdminState,
    merchant_id: i64,
) -> Result<Option<u64>, AdminError> {
    Ok(removals::confirm(&state.pool, merchant_id).await?)
}

/// Drops the removals held for the merchant without removing anything (false: none held).
pub async fn discard_removals(state: &AdminState, merchant_id: i64) -> Result<bool, AdminError> {
    Ok(removals::discard(&state.pool, merchant_id).await?)
}

/// A stored delivery, as intake saw it.
#[derive(sqlx::FromRow)]
struct StoredDelivery {
    event_id: String,
    topic: String,
    entity_id: Option<String>,
    merchant_id: Option<i64>,
    webhook_id: Option<String>,
    event_id_source: Option<String>,
    body: Vec<u8>,
    status: String,
}

/// What a replay did.
#[derive(Debug, Clone, Serialize)]
pub struct Replayed {
    pub previous_status: String,
    pub event: EventRow,
}

/// Plans a stored event again, as intake did when it arrived: the state machine moves
/// (older-than-current events still change nothing) and its jobs are enqueued, and the
/// event's status and detail are updated, all in one transaction.
pub async fn replay(state: &AdminState, id: i64) -> Result<Replayed, AdminError> {
    let mut tx = state.pool.begin().await?;
    let stored: Option<StoredDelivery> = sqlx::query_as(
        r#"SELECT event_id, topic, entity_id, merchant_id, webhook_id, event_id_source, body, status
           FROM webhook_events WHERE id = $1 FOR UPDATE"#,
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(stored) = stored else {
        return Err(AdminError::NotFound(format!("no event {id}")));
    };
    let previous_status = stored.status;
    let event = IncomingEvent {
        event_id: stored.event_id,
        topic: Topic::parse(&stored.topic),
        topic_name: stored.topic,
        entity_id: stored.entity_id,
        webhook_id: stored.webhook_id,
        event_id_source: stored.event_id_source,
        header_merchant_id: stored.merchant_id,
        body: serde_json::from_slice(&stored.body).ok(),
        raw_body: stored.body,
    };
    let (status, detail) = Planner::classify(&event);
    state.planner.apply(&mut tx, &event).await?;
    let detail = detail.unwrap_or_else(|| {
        format!(
            "replayed by an operator at {}",
            chrono::Utc::now().to_rfc3339()
        )
    });
    sqlx::query("UPDATE webhook_events SET status = $2, detail = $3, merchant_id = COALESCE(merchant_id, $4) WHERE id = $1")
        .bind(id)
        .bind(status.as_str())
        .bind(&detail)
        .bind(event.merchant_id())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(id, event_id = %event.event_id, status = status.as_str(), "event replayed by an operator");
    let event = super::store::event(&state.pool, id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no event {id}")))?;
    Ok(Replayed {
        previous_status,
        event: event.row,
    })
}
