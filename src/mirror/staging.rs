//! Staging: where a refresh writes what it reads, batch by batch, never into live rows.
//!
//! Each refresh gets an id from the `refresh_ids` sequence. Rows are buffered in COPY
//! text format up to `refresh.batch_size` offers (memory is bounded by that, not by
//! the catalog) and written with one `COPY` per table in one short transaction; no
//! transaction is ever open while the next page is fetched. A failed or cancelled
//! refresh discards its rows; a new refresh of a merchant purges what a crashed attempt
//! of the same kind left behind.

use sqlx::{PgConnection, PgPool};

use super::copy::CopyText;
use super::rows::{self, COPY_OFFERS, COPY_SKUS, StageKey};
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

/// Deletes a merchant's staged rows of one kind: leftovers of an attempt that died.
/// Safe because the queue runs one refresh per merchant and kind at a time, and the
/// incremental job stages and publishes in one transaction (its rows are never seen).
pub(crate) async fn purge_merchant(
    pool: &PgPool,
    merchant_id: i64,
    tables: Tables,
) -> sqlx::Result<u64> {
    let mut purged = 0;
    for table in tables.names() {
        purged += sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE merchant_id = $1"
        )))
        .bind(merchant_id)
        .execute(pool)
        .await?
        .rows_affected();
    }
    Ok(purged)
}

/// Deletes one refresh's staged rows.
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

/// Buffers offers (and their SKUs) of one refresh and writes them in batches.
#[derive(Debug)]
pub(crate) struct OfferStager {
    key: StageKey,
    offers: CopyText,
    skus: CopyText,
    next_seq: i32,
    staged: u64,
}

impl OfferStager {
    pub fn new(key: StageKey, batch_size: usize) -> Self {
        Self {
            key,
            offers: CopyText::with_capacity(batch_size.min(10_000) * 4096),
            skus: CopyText::with_capacity(batch_size.min(10_000) * 2048),
            next_seq: 0,
            staged: 0,
        }
    }

    pub fn push(&mut self, offer: &Offer) {
        rows::push_offer(
            &mut self.offers,
            &mut self.skus,
            self.key,
            self.next_seq,
            offer,
        );
        self.next_seq = self.next_seq.saturating_add(1);
    }

    /// Offers buffered and not yet written.
    pub fn buffered(&self) -> usize {
        self.offers.rows()
    }

    /// Offers written so far.
    pub fn staged(&self) -> u64 {
        self.staged
    }

    /// Writes the buffer on `conn` (the caller decides the transaction).
    pub async fn flush(&mut self, conn: &mut PgConnection) -> sqlx::Result<()> {
        if self.offers.is_empty() {
            return Ok(());
        }
        let offers = self.offers.rows() as u64;
        self.offers.send(conn, COPY_OFFERS).await?;
        self.skus.send(conn, COPY_SKUS).await?;
        self.staged += offers;
        Ok(())
    }
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

    pub async fn flush(&mut self, conn: &mut PgConnection) -> sqlx::Result<()> {
        self.staged += self.rows.send(conn, rows::COPY_COLLECTIONS).await?;
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
