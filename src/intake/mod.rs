//! Durable, idempotent storage of verified webhook events.
//!
//! The event is inserted with `ON CONFLICT DO NOTHING` on its event id; only when it is
//! new does planning run, atomically with the insert. Offer and collection events (most
//! of the traffic) take one statement: insert, and batch into the merchant's incremental
//! job unless it is syncing (in a batch, a merchant's consecutive ones share that one
//! statement). Sync and merchant events take one transaction: insert, then
//! the state machine and its jobs. The caller answers 2xx only after this returns, so a
//! 2xx always means committed, and a duplicate creates no work.
//!
//! Deliveries reach the database through the writers ([`writer`]), which store the events
//! that arrive together in one transaction ([`batch`]) and so share one commit.

mod batch;
mod gate;
mod writer;

pub use gate::IntakeGate;
pub use writer::{BatchSettings, IntakeQueue, Refused, Writers};

use std::sync::LazyLock;

use sqlx::{PgConnection, PgPool};

use crate::jobs::EnqueueArgs;
use crate::lifecycle::{
    EventClass, EventStatus, IncomingEvent, Planner, SyncKind, batch_unless_syncing,
};

/// What intake did with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntakeOutcome {
    Stored(EventStatus),
    Duplicate,
}

/// The statement part that makes sure the merchant `merchant` (a parameter) exists once
/// the statement's `event` stored something.
///
/// The merchant is inserted only when no row of it is seen: `ON CONFLICT DO NOTHING`
/// alone waits for a transaction that updated the row (a batch storing a MERCHANT_*
/// event), and these statements may already hold their job's advisory lock
/// (`enqueue_job`), which that batch may be waiting for: a deadlock that outlasted the
/// batch's time limit and answered its deliveries 503 (BENCHMARKS.md, Intake).
fn insert_merchant(merchant: &str) -> String {
    format!(
        "INSERT INTO merchants (merchant_id) SELECT {merchant}
        WHERE {merchant} IS NOT NULL AND EXISTS (SELECT 1 FROM event)
            AND NOT EXISTS (SELECT 1 FROM merchants WHERE merchant_id = {merchant})
        ON CONFLICT DO NOTHING"
    )
}

/// Inserts the event ($1..$10) unless its id is known, makes sure its merchant exists,
/// and returns its row id (no row for a duplicate).
static INSERT_EVENT: LazyLock<String> = LazyLock::new(|| {
    format!(
        r#"
    WITH event AS (
        INSERT INTO webhook_events
            (event_id, topic, entity_id, merchant_id, webhook_id, event_id_source, body, occurred_at, status, detail)
        VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8, now()), $9, $10)
        ON CONFLICT (event_id) DO NOTHING
        RETURNING id
    ), merchant AS ({})"#,
        insert_merchant("$4")
    )
});

/// The single statement of an offer or collection event: the insert, then the hold
/// rule with the job's arguments from $12 ($11 is the sync kind).
static STORE_BATCHED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{} SELECT event.id, {} FROM event",
        INSERT_EVENT.as_str(),
        batch_unless_syncing("$4", "$11", 12)
    )
});

/// The offer or collection events of one merchant and kind that follow one another in a
/// batch, in one statement: each inserted unless its id is known (in order: of two
/// copies in the run the first is stored), then the hold rule once for all of them
/// ($1..$9 the events' columns as arrays, $10 the merchant, $11 the sync kind, the
/// job's arguments from $12). The hold rule reads the same sync state for each: no
/// sync event lies between them. For one event [`STORE_BATCHED`] is used instead: its
/// `VALUES` insert answered 8% more deliveries a second than this one's `unnest` over a
/// single row (BENCHMARKS.md, Intake).
static STORE_BATCHED_RUN: LazyLock<String> = LazyLock::new(|| {
    format!(
        r#"
    WITH input AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::bytea[], $7::timestamptz[], $8::text[], $9::text[])
            WITH ORDINALITY AS input(event_id, topic, entity_id, webhook_id, event_id_source,
                                     body, occurred_at, status, detail, n)
    ), event AS (
        INSERT INTO webhook_events
            (event_id, topic, entity_id, merchant_id, webhook_id, event_id_source, body, occurred_at, status, detail)
        SELECT event_id, topic, entity_id, $10, webhook_id, event_id_source, body,
               COALESCE(occurred_at, now()), status, detail
        FROM input ORDER BY n
        ON CONFLICT (event_id) DO NOTHING
        RETURNING event_id
    ), merchant AS ({})
    SELECT COALESCE((SELECT array_agg(event_id) FROM event), '{{}}'::text[]),
           CASE WHEN EXISTS (SELECT 1 FROM event) THEN {} END"#,
        insert_merchant("$10"),
        batch_unless_syncing("$10", "$11", 12)
    )
});

/// The insert alone, for events planned in a transaction.
static STORE_ONLY: LazyLock<String> =
    LazyLock::new(|| format!("{} SELECT id FROM event", INSERT_EVENT.as_str()));

/// Stores `event` and plans its work, atomically, in a transaction of its own (or one
/// statement for offer and collection events).
#[tracing::instrument(skip_all, fields(event_id = %event.event_id, topic = %event.topic_name))]
pub async fn record(
    pool: &PgPool,
    planner: &Planner,
    event: &IncomingEvent,
) -> sqlx::Result<IntakeOutcome> {
    if batched_kind(Planner::classify(event).0, event).is_some() {
        // One statement: atomic without a transaction around it.
        let mut conn = pool.acquire().await?;
        return record_in(&mut conn, planner, event, &mut Vec::new()).await;
    }
    let mut tx = pool.begin().await?;
    let mut visibility_moved = Vec::new();
    let outcome = record_in(&mut tx, planner, event, &mut visibility_moved).await?;
    crate::lifecycle::append_visibility_changes(&mut tx, &visibility_moved).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// Stores `event` and plans its work on `conn`, inside the caller's transaction when it
/// has one: the same statements as [`record`], which a batch runs for each of its events.
/// Merchants whose visibility moved are pushed onto `visibility_moved`: the caller
/// appends their changes last, before its commit (see `lifecycle::append_visibility_changes`).
pub async fn record_in(
    conn: &mut PgConnection,
    planner: &Planner,
    event: &IncomingEvent,
    visibility_moved: &mut Vec<i64>,
) -> sqlx::Result<IntakeOutcome> {
    let (status, detail) = Planner::classify(event);
    if let Some((kind, merchant_id)) = batched_kind(status, event) {
        let query = bind_event(
            sqlx::query(sqlx::AssertSqlSafe(STORE_BATCHED.as_str())),
            event,
            status,
            &detail,
        )
        .bind(kind.as_str());
        let stored = EnqueueArgs::new(&planner.batched_job(merchant_id))
            .bind(query)
            .fetch_optional(&mut *conn)
            .await?;
        return Ok(if stored.is_some() {
            IntakeOutcome::Stored(status)
        } else {
            IntakeOutcome::Duplicate
        });
    }
    if !insert_event(conn, event, status, &detail).await? {
        return Ok(IntakeOutcome::Duplicate);
    }
    planner
        .apply_deferring(conn, event, visibility_moved)
        .await?;
    Ok(IntakeOutcome::Stored(status))
}

/// An event with what [`Planner::classify`] made of it: its status and detail.
pub(crate) type Classified<'e> = (&'e IncomingEvent, EventStatus, Option<&'e str>);

/// Stores offer or collection events of `merchant_id` and `kind`, consecutive in a
/// batch (see [`batched_kind`]), in one statement in the caller's transaction: what
/// [`record_in`] does for each, with one round trip and one job upsert for all.
pub(crate) async fn record_batched_run(
    conn: &mut PgConnection,
    planner: &Planner,
    events: &[Classified<'_>],
    kind: SyncKind,
    merchant_id: i64,
) -> sqlx::Result<Vec<IntakeOutcome>> {
    let column = |get: fn(&IncomingEvent) -> Option<&str>| -> Vec<Option<&str>> {
        events.iter().map(|(event, _, _)| get(event)).collect()
    };
    let query = sqlx::query(sqlx::AssertSqlSafe(STORE_BATCHED_RUN.as_str()))
        .bind(column(|event| Some(&event.event_id)))
        .bind(column(|event| Some(&event.topic_name)))
        .bind(column(|event| event.entity_id.as_deref()))
        .bind(column(|event| event.webhook_id.as_deref()))
        .bind(column(|event| event.event_id_source.as_deref()))
        .bind(
            events
                .iter()
                .map(|(event, _, _)| event.raw_body.as_slice())
                .collect::<Vec<&[u8]>>(),
        )
        .bind(
            events
                .iter()
                .map(|(event, _, _)| event.occurred_at())
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .iter()
                .map(|(_, status, _)| status.as_str())
                .collect::<Vec<&str>>(),
        )
        .bind(
            events
                .iter()
                .map(|(_, _, detail)| *detail)
                .collect::<Vec<Option<&str>>>(),
        )
        .bind(merchant_id)
        .bind(kind.as_str());
    let row = EnqueueArgs::new(&planner.batched_job(merchant_id))
        .bind(query)
        .fetch_one(&mut *conn)
        .await?;
    let stored: Vec<String> = sqlx::Row::try_get(&row, 0)?;
    // The first copy of each stored id is the one stored; any later copy is a
    // duplicate, as it would have been one statement later.
    let mut stored: std::collections::HashSet<String> = stored.into_iter().collect();
    Ok(events
        .iter()
        .map(|&(event, status, _)| {
            if stored.remove(&event.event_id) {
                IntakeOutcome::Stored(status)
            } else {
                IntakeOutcome::Duplicate
            }
        })
        .collect())
}

/// The sync kind and merchant of an offer or collection event that is stored and batched
/// in one statement; `None` for every other event.
pub(crate) fn batched_kind(status: EventStatus, event: &IncomingEvent) -> Option<(SyncKind, i64)> {
    match (status, event.topic.class(), event.merchant_id()) {
        (EventStatus::Pending, EventClass::Offer, Some(merchant)) => {
            Some((SyncKind::Products, merchant))
        }
        (EventStatus::Pending, EventClass::Collection, Some(merchant)) => {
            Some((SyncKind::Collections, merchant))
        }
        _ => None,
    }
}

/// Inserts the event in the caller's transaction; false when its id was already stored.
async fn insert_event(
    conn: &mut PgConnection,
    event: &IncomingEvent,
    status: EventStatus,
    detail: &Option<String>,
) -> sqlx::Result<bool> {
    let inserted = bind_event(
        sqlx::query(sqlx::AssertSqlSafe(STORE_ONLY.as_str())),
        event,
        status,
        detail,
    )
    .fetch_optional(conn)
    .await?;
    Ok(inserted.is_some())
}

fn bind_event<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    event: &'q IncomingEvent,
    status: EventStatus,
    detail: &'q Option<String>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
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
}
