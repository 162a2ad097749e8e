//! One transaction for the events of a batch, so they share one commit.
//!
//! Each event runs the statements it would run alone ([`super::record_in`]), so
//! idempotency (`ON CONFLICT DO NOTHING`), the hold rule, the state machine and job
//! planning keep their semantics: each statement sees the batch's earlier writes, as it
//! would see those of transactions committed before it. One exception saves round
//! trips: a merchant's offer (or collection) events that follow one another in the
//! batch, with no sync event between them, are stored by one statement
//! ([`super::record_batched_run`]), which the hold rule reads one sync state for, as
//! each of them would have read it. Two rules keep concurrent
//! batches (several writers, several daemons) from deadlocking, which transactions of one
//! event, each about one merchant, never could:
//! - events are taken merchant by merchant in merchant id order, and each merchant's in
//!   arrival order. Events of different merchants touch different rows, so only the
//!   order within a merchant matters, and every batch takes rows in the same order;
//! - a merchant with a sync or merchant event in the batch has its row locked before any
//!   of its events, the order every planning transaction keeps (`lifecycle::lock_merchant`),
//!   so no batch holds one of its job rows while waiting for that lock;
//! - the change-log rows of merchants whose visibility moved are appended after the last
//!   event: the change log's table lock is then the last lock the batch takes, as in
//!   every other transaction that appends to it, so no batch waits while holding it.
//!
//! When the database refuses a statement (bad data, a deadlock with another instance),
//! the batch is rolled back and its events are stored one by one, each in its own
//! transaction as before batching: a bad event then gets its 503 alone, instead of
//! making every delivery that arrived with it retry, and failing again the batch its
//! retry arrives in. When the database cannot be reached, the batch fails as a whole.

use std::collections::HashSet;

use sqlx::PgPool;

use super::IntakeOutcome;
use crate::lifecycle::{EventStatus, IncomingEvent, Planner, SyncKind};

/// What became of each event of a batch, in the order given: all stored and committed
/// together, or (after the database refused the batch) each on its own.
pub(super) type Outcomes = Vec<sqlx::Result<IntakeOutcome>>;

/// Stores `events` in one transaction; `Err` when the batch failed as a whole and
/// nothing of it was stored.
pub(super) async fn store(
    pool: &PgPool,
    planner: &Planner,
    events: &[&IncomingEvent],
) -> sqlx::Result<Outcomes> {
    if let [event] = events {
        return Ok(vec![Ok(super::record(pool, planner, event).await?)]);
    }
    match in_one_transaction(pool, planner, events).await {
        Ok(outcomes) => Ok(outcomes.into_iter().map(Ok).collect()),
        Err(err) if refused_by_database(&err) => {
            tracing::warn!(
                error = %err,
                events = events.len(),
                "batch refused by the database; storing its events one by one"
            );
            metrics::counter!("catalog_mirror_intake_batches_split_total").increment(1);
            let mut outcomes = Vec::with_capacity(events.len());
            for event in events {
                outcomes.push(super::record(pool, planner, event).await);
            }
            Ok(outcomes)
        }
        Err(err) => Err(err),
    }
}

async fn in_one_transaction(
    pool: &PgPool,
    planner: &Planner,
    events: &[&IncomingEvent],
) -> sqlx::Result<Vec<IntakeOutcome>> {
    let mut order: Vec<usize> = (0..events.len()).collect();
    // Stable: each merchant's events stay in arrival order.
    order.sort_by_key(|&i| events[i].merchant_id());
    let classified: Vec<(EventStatus, Option<String>)> = events
        .iter()
        .map(|event| Planner::classify(event))
        .collect();
    let planned: HashSet<i64> = events
        .iter()
        .zip(&classified)
        .filter(|(_, (status, _))| *status == EventStatus::Processed)
        .filter_map(|(event, _)| event.merchant_id())
        .collect();
    let batched: Vec<Option<(SyncKind, i64)>> = events
        .iter()
        .zip(&classified)
        .map(|(event, (status, _))| super::batched_kind(*status, event))
        .collect();

    let mut outcomes = vec![None; events.len()];
    let mut visibility_moved = Vec::new();
    let mut tx = pool.begin().await?;
    let mut previous = None;
    let mut at = 0;
    while at < order.len() {
        let i = order[at];
        let merchant = events[i].merchant_id();
        if merchant != previous {
            previous = merchant;
            if let Some(merchant) = merchant.filter(|m| planned.contains(m)) {
                crate::lifecycle::lock_merchant(&mut tx, merchant).await?;
            }
        }
        // Offer or collection events of one merchant and kind in a row (no sync event
        // between them) are stored in one statement; one alone as it would be alone.
        let run = batched[i].map_or(1, |key| {
            order[at..]
                .iter()
                .take_while(|&&j| batched[j] == Some(key))
                .count()
        });
        let (Some((kind, merchant_id)), true) = (batched[i], run > 1) else {
            outcomes[i] =
                Some(super::record_in(&mut tx, planner, events[i], &mut visibility_moved).await?);
            at += 1;
            continue;
        };
        let indices = &order[at..at + run];
        let run_events: Vec<super::Classified> = indices
            .iter()
            .map(|&j| (events[j], classified[j].0, classified[j].1.as_deref()))
            .collect();
        let stored =
            super::record_batched_run(&mut tx, planner, &run_events, kind, merchant_id).await?;
        for (&j, outcome) in indices.iter().zip(stored) {
            outcomes[j] = Some(outcome);
        }
        at += run;
    }
    // Last: the change log's table lock is held until commit (see the module doc).
    crate::lifecycle::append_visibility_changes(&mut tx, &visibility_moved).await?;
    tx.commit().await?;
    Ok(outcomes
        .into_iter()
        .map(|outcome| outcome.expect("every event of the batch was stored"))
        .collect())
}

/// Whether the database answered and refused a statement, which one event may have
/// caused, as opposed to the database being unwell: a connection exception (SQLSTATE
/// class 08), insufficient resources (53) or operator intervention (57: shutdown, a
/// terminated backend, a cancelled statement) would fail the events alone as well.
fn refused_by_database(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(err) = err else {
        return false;
    };
    !err.code().is_some_and(|code| {
        ["08", "53", "57"]
            .iter()
            .any(|class| code.starts_with(class))
    })
}
