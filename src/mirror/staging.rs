//! Staging: where a refresh writes what it reads, batch by batch, never into live rows.
//!
//! Each refresh gets an id from the `refresh_ids` sequence. Rows are buffered in COPY
//! text format up to `refresh.batch_size` offers (memory is bounded by that, not by
//! the catalog) and written with one `COPY` per table in one short transaction; no
//! transaction is ever open while the next page is fetched. Offers whose live row
//! already has their content hash are staged as markers (seen, nothing to write), so
//! a refresh of a mostly unchanged catalog writes little.
//!
//! Staged rows belong to one refresh, registered in `refresh_runs` with the job claim
//! that runs it. A failed or cancelled refresh discards its own rows; a new refresh of
//! a merchant purges only the rows of refreshes that are provably dead: their claim no
//! longer runs (or they had none) and they are not publishing (a publishing
//! transaction holds its `refresh_runs` row locked, see [`own`]). So two refreshes
//! can never destroy each other's staging, even if the queue's lanes were bypassed.

use std::collections::HashMap;
use std::ops::Range;

use anyhow::Context;
use sqlx::{PgConnection, PgPool};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::copy::CopyText;
use super::rows::{self, COPY_OFFERS, COPY_SKUS, StageKey};
use crate::jobs::Lease;
use crate::violet::{Collection, Offer};

/// The staging tables of one kind of refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tables {
    Offers,
    Collections,
}

impl Tables {
    fn names(self) -> &'static [&'static str] {
        match self {
            Tables::Offers => &["staged_offers", "staged_skus"],
            Tables::Collections => &["staged_collections", "staged_collection_offers"],
        }
    }
}

pub(crate) async fn next_refresh_id(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT nextval('refresh_ids')")
        .fetch_one(pool)
        .await
}

impl Tables {
    /// The `refresh_runs.tables` value.
    fn as_str(self) -> &'static str {
        match self {
            Tables::Offers => "offers",
            Tables::Collections => "collections",
        }
    }
}

/// Starts a refresh of `tables` for a merchant: reads the database clock (webhook
/// events are stamped with it), takes a new refresh id and registers it with the
/// claim running it (`lease`; `None` for a refresh a tool or test runs directly),
/// then purges what dead refreshes of the merchant left staged.
pub(crate) async fn begin(
    pool: &PgPool,
    merchant_id: i64,
    tables: Tables,
    lease: Option<&Lease>,
) -> anyhow::Result<(chrono::DateTime<chrono::Utc>, StageKey)> {
    let started_at = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(pool)
        .await?;
    let refresh_id = next_refresh_id(pool).await?;
    sqlx::query(
        "INSERT INTO refresh_runs (refresh_id, merchant_id, tables, job_id, claim) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(refresh_id)
    .bind(merchant_id)
    .bind(tables.as_str())
    .bind(lease.map(|l| l.job_id))
    .bind(lease.map(|l| l.token))
    .execute(pool)
    .await?;
    tracing::Span::current().record("refresh_id", refresh_id);
    let purged = purge_dead(pool, merchant_id, tables, refresh_id).await?;
    if purged > 0 {
        tracing::warn!(purged, "removed staged rows left by a refresh that died");
    }
    Ok((
        started_at,
        StageKey {
            refresh_id,
            merchant_id,
        },
    ))
}

/// Refreshes of the merchant and tables, other than `current`, that are provably
/// dead: their claim no longer runs (or they had none: a direct refresh is finished
/// when another starts) and they are not publishing (locked rows are skipped). Their
/// registrations are deleted in the same statement, which locks them until commit.
const DEAD_REFRESHES: &str = r#"
WITH dead AS (
    SELECT r.refresh_id FROM refresh_runs r
    WHERE r.merchant_id = $1 AND r.tables = $2 AND r.refresh_id <> $3
      AND NOT EXISTS (SELECT 1 FROM jobs j
                      WHERE j.id = r.job_id AND j.claims = r.claim AND j.state = 'running')
    FOR UPDATE SKIP LOCKED
)
DELETE FROM refresh_runs WHERE refresh_id IN (SELECT refresh_id FROM dead)
RETURNING refresh_id
"#;

/// Deletes the staged rows of the merchant's dead refreshes of `tables` (see
/// [`DEAD_REFRESHES`]), and rows that no registered refresh owns (staged before
/// refreshes were registered). One transaction, so a refresh found dead stays
/// unregistered only together with its rows gone.
pub(crate) async fn purge_dead(
    pool: &PgPool,
    merchant_id: i64,
    tables: Tables,
    current: i64,
) -> sqlx::Result<u64> {
    let mut tx = pool.begin().await?;
    let dead: Vec<i64> = sqlx::query_scalar(DEAD_REFRESHES)
        .bind(merchant_id)
        .bind(tables.as_str())
        .bind(current)
        .fetch_all(&mut *tx)
        .await?;
    let mut purged = 0;
    for table in tables.names() {
        purged += sqlx::query(sqlx::AssertSqlSafe(format!(
            r#"DELETE FROM {table} s WHERE s.merchant_id = $1
               AND (s.refresh_id = ANY($2)
                    OR NOT EXISTS (SELECT 1 FROM refresh_runs r WHERE r.refresh_id = s.refresh_id))"#
        )))
        .bind(merchant_id)
        .bind(&dead)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    tx.commit().await?;
    Ok(purged)
}

/// Inside a publishing transaction: locks the refresh's registration until commit
/// (no purge can take its rows meanwhile) and checks that its staging still holds
/// `staged` offers (or collections), as written. An error means another refresh
/// purged it (it was taken for dead): nothing may be published from it.
pub(crate) async fn own(
    conn: &mut PgConnection,
    refresh_id: i64,
    tables: Tables,
    staged: u64,
) -> anyhow::Result<()> {
    let registered: Option<i64> =
        sqlx::query_scalar("SELECT refresh_id FROM refresh_runs WHERE refresh_id = $1 FOR UPDATE")
            .bind(refresh_id)
            .fetch_optional(&mut *conn)
            .await?;
    anyhow::ensure!(
        registered.is_some(),
        "staging of refresh {refresh_id} was purged by another refresh; nothing was published"
    );
    let table = tables.names()[0];
    let in_staging: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {table} WHERE refresh_id = $1"
    )))
    .bind(refresh_id)
    .fetch_one(&mut *conn)
    .await?;
    anyhow::ensure!(
        in_staging as u64 == staged,
        "staging of refresh {refresh_id} holds {in_staging} rows but {staged} were written; nothing was published"
    );
    Ok(())
}

/// Deletes one refresh's staged rows and its registration.
pub(crate) async fn discard(
    conn: &mut PgConnection,
    refresh_id: i64,
    tables: Tables,
) -> sqlx::Result<()> {
    for table in tables.names() {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE refresh_id = $1"
        )))
        .bind(refresh_id)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("DELETE FROM refresh_runs WHERE refresh_id = $1")
        .bind(refresh_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Deletes one refresh's staged rows, logging instead of failing: used on error paths,
/// where the rows are harmless leftovers that the next refresh purges anyway.
pub(crate) async fn discard_quietly(pool: &PgPool, refresh_id: i64, tables: Tables) {
    let result = async {
        let mut conn = pool.acquire().await?;
        discard(&mut conn, refresh_id, tables).await
    }
    .await;
    if let Err(err) = result {
        tracing::warn!(refresh_id, error = %err, "cannot discard staged rows; the next refresh purges them");
    }
}

/// Where one offer's rows sit in a batch.
#[derive(Debug)]
struct Entry {
    offer_id: i64,
    seq: i32,
    hash: String,
    offer: Range<usize>,
    skus: Range<usize>,
    sku_rows: usize,
}

/// One batch of staged offer and SKU rows, in COPY text format.
#[derive(Debug)]
pub(crate) struct OfferBatch {
    key: StageKey,
    offers: CopyText,
    skus: CopyText,
    entries: Vec<Entry>,
    /// What is sent when some offers are unchanged (reused between batches).
    out_offers: CopyText,
    out_skus: CopyText,
}

impl OfferBatch {
    fn with_capacity(key: StageKey, batch_size: usize) -> Self {
        let rows = batch_size.min(10_000);
        Self {
            key,
            offers: CopyText::with_capacity(rows * 6144),
            skus: CopyText::with_capacity(rows * 3072),
            entries: Vec::with_capacity(rows),
            out_offers: CopyText::default(),
            out_skus: CopyText::default(),
        }
    }

    /// Offers in the batch.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn push(&mut self, seq: i32, offer: &Offer) {
        let (offer_start, sku_start, sku_rows) =
            (self.offers.len(), self.skus.len(), self.skus.rows());
        let (hash, _) = rows::push_offer(&mut self.offers, &mut self.skus, self.key, seq, offer);
        self.entries.push(Entry {
            offer_id: offer.id,
            seq,
            hash,
            offer: offer_start..self.offers.len(),
            skus: sku_start..self.skus.len(),
            sku_rows: self.skus.rows() - sku_rows,
        });
    }

    /// Writes the batch on `conn` (the caller decides the transaction) and empties it,
    /// keeping its buffers for reuse. An offer whose live row (same merchant, not
    /// removed) already has its hash is written as a marker only. Returns the offers
    /// staged (markers included).
    pub async fn write(&mut self, conn: &mut PgConnection) -> sqlx::Result<u64> {
        if self.entries.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = self.entries.iter().map(|e| e.offer_id).collect();
        let live: HashMap<i64, String> = sqlx::query_as(
            r#"SELECT offer_id, content_hash FROM offers
               WHERE offer_id = ANY($1) AND merchant_id = $2 AND removed_at IS NULL"#,
        )
        .bind(&ids)
        .bind(self.key.merchant_id)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
        let staged = if live.is_empty() {
            let staged = self.offers.send(conn, COPY_OFFERS).await?;
            self.skus.send(conn, COPY_SKUS).await?;
            staged
        } else {
            for entry in &self.entries {
                if live.get(&entry.offer_id) == Some(&entry.hash) {
                    rows::push_marker(
                        &mut self.out_offers,
                        self.key,
                        entry.seq,
                        entry.offer_id,
                        &entry.hash,
                    );
                } else {
                    self.out_offers
                        .extend_rows(self.offers.slice(entry.offer.clone()), 1);
                    self.out_skus
                        .extend_rows(self.skus.slice(entry.skus.clone()), entry.sku_rows);
                }
            }
            self.offers.clear();
            self.skus.clear();
            let staged = self.out_offers.send(conn, COPY_OFFERS).await?;
            self.out_skus.send(conn, COPY_SKUS).await?;
            staged
        };
        self.entries.clear();
        Ok(staged)
    }
}

/// Turns offers of one refresh into staging rows, batch by batch.
#[derive(Debug)]
pub(crate) struct OfferStager {
    key: StageKey,
    batch: OfferBatch,
    batch_size: usize,
    next_seq: i32,
}

impl OfferStager {
    pub fn new(key: StageKey, batch_size: usize) -> Self {
        Self {
            key,
            batch: OfferBatch::with_capacity(key, batch_size),
            batch_size,
            next_seq: 0,
        }
    }

    pub fn push(&mut self, offer: &Offer) {
        self.batch.push(self.next_seq, offer);
        self.next_seq = self.next_seq.saturating_add(1);
    }

    /// Offers buffered and not yet taken.
    pub fn buffered(&self) -> usize {
        self.batch.len()
    }

    /// Takes the buffered batch, continuing in `spare` (an emptied earlier batch, whose
    /// buffers are reused) or in new buffers.
    pub fn take(&mut self, spare: Option<OfferBatch>) -> OfferBatch {
        let next = spare.unwrap_or_else(|| OfferBatch::with_capacity(self.key, self.batch_size));
        std::mem::replace(&mut self.batch, next)
    }
}

/// Batches being copied at once by one refresh. PostgreSQL parses (JSON) and
/// compresses every staged row on the backend that receives it; with one COPY at a
/// time that single backend was the refresh's bottleneck while the other core waited.
const WRITES_IN_FLIGHT: usize = 2;

/// Writes batches in the background, [`WRITES_IN_FLIGHT`] at a time on their own
/// connections, each in its own short transaction, so the next batch fills (pages
/// fetched, rows encoded) while earlier ones are copied. At most
/// `WRITES_IN_FLIGHT + 1` batches exist at once: memory stays bounded by the batch
/// size. A write in progress is never cut off (that would leave its pooled connection
/// in the middle of a COPY): [`BatchWriter::abandon`] waits for them, and if the
/// refresh itself is dropped the writes finish in the background; their rows are
/// purged by the next refresh of the merchant.
pub(crate) struct BatchWriter {
    pool: PgPool,
    in_flight: std::collections::VecDeque<JoinHandle<sqlx::Result<(u64, OfferBatch)>>>,
    written: u64,
}

impl BatchWriter {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            in_flight: std::collections::VecDeque::with_capacity(WRITES_IN_FLIGHT),
            written: 0,
        }
    }

    /// Waits for the oldest write in progress, if any; returns its emptied batch for
    /// reuse.
    async fn settle(&mut self) -> anyhow::Result<Option<OfferBatch>> {
        let Some(task) = self.in_flight.pop_front() else {
            return Ok(None);
        };
        let (written, batch) = task
            .await
            .context("the staging task stopped")?
            .context("cannot write staged offers")?;
        self.written += written;
        Ok(Some(batch))
    }

    /// Starts writing the stager's batch once fewer than [`WRITES_IN_FLIGHT`] writes
    /// are in progress.
    pub async fn write(&mut self, stager: &mut OfferStager) -> anyhow::Result<()> {
        let spare = if self.in_flight.len() >= WRITES_IN_FLIGHT {
            self.settle().await?
        } else {
            None
        };
        let mut batch = stager.take(spare);
        let pool = self.pool.clone();
        let task = tokio::spawn(
            async move {
                let mut tx = pool.begin().await?;
                let written = batch.write(&mut tx).await?;
                tx.commit().await?;
                Ok((written, batch))
            }
            .in_current_span(),
        );
        self.in_flight.push_back(task);
        Ok(())
    }

    /// Writes what the stager still holds and waits for every write; returns the
    /// offers written in all.
    pub async fn finish(mut self, stager: &mut OfferStager) -> anyhow::Result<u64> {
        if stager.buffered() > 0 {
            self.write(stager).await?;
        }
        self.settle_all().await?;
        Ok(self.written)
    }

    /// Waits for the writes in progress and forgets the outcome (the refresh failed).
    pub async fn abandon(mut self) {
        let _ = self.settle_all().await;
    }

    /// Waits for every write in progress, also after one failed; returns the first
    /// failure.
    async fn settle_all(&mut self) -> anyhow::Result<()> {
        let mut failed = None;
        while !self.in_flight.is_empty() {
            if let Err(err) = self.settle().await {
                failed.get_or_insert(err);
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

/// Runs `work` on its own task and waits for it. If the caller is dropped (a job
/// cut off at shutdown), `work` still runs to its end rather than leaving a pooled
/// connection in the middle of a COPY.
pub(crate) async fn run_detached<T: Send + 'static>(
    work: impl Future<Output = anyhow::Result<T>> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::spawn(work.in_current_span())
        .await
        .context("a staging task stopped")?
}

/// Buffers collections of one refresh.
#[derive(Debug)]
pub(crate) struct CollectionStager {
    key: StageKey,
    rows: CopyText,
    next_seq: i32,
    staged: u64,
}

impl CollectionStager {
    pub fn new(key: StageKey) -> Self {
        Self {
            key,
            rows: CopyText::default(),
            next_seq: 0,
            staged: 0,
        }
    }

    pub fn push(&mut self, collection: &Collection) {
        rows::push_collection(&mut self.rows, self.key, self.next_seq, collection);
        self.next_seq = self.next_seq.saturating_add(1);
    }

    pub fn staged(&self) -> u64 {
        self.staged
    }

    /// Writes the buffered collections (on a task of its own, see [`run_detached`]).
    pub async fn flush(&mut self, pool: &PgPool) -> anyhow::Result<()> {
        let pool = pool.clone();
        let mut buffer = std::mem::take(&mut self.rows);
        self.staged += run_detached(async move {
            let mut conn = pool.acquire().await?;
            Ok(buffer.send(&mut conn, rows::COPY_COLLECTIONS).await?)
        })
        .await?;
        Ok(())
    }
}

/// Stages member offer ids of one collection.
pub(crate) async fn stage_members(
    conn: &mut PgConnection,
    key: StageKey,
    collection_id: i64,
    offer_ids: &[i64],
) -> sqlx::Result<()> {
    if offer_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        r#"INSERT INTO staged_collection_offers (refresh_id, merchant_id, collection_id, offer_id)
           SELECT $1, $2, $3, id FROM UNNEST($4::bigint[]) AS id"#,
    )
    .bind(key.refresh_id)
    .bind(key.merchant_id)
    .bind(collection_id)
    .bind(offer_ids)
    .execute(conn)
    .await?;
    Ok(())
}
