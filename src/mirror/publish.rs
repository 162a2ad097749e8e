//! Publishing staged offers into the live tables, set-based, in one transaction.
//!
//! Offers are upserted from staging in keyset batches of `refresh.batch_size` (one
//! `INSERT ... SELECT ... ON CONFLICT` per batch, never one round trip per offer). A row
//! is rewritten only when its content hash differs (or it was removed, or moved
//! merchant), and never with an older `date_last_modified` than the stored one, so a
//! refresh that staged an older copy cannot undo a newer incremental update, nor bring
//! back an offer removed after it began reading. The SKUs of each changed offer are
//! replaced. Removals after a complete pass are `removals`' business.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;

use super::changes::ChangedOffers;

const MERGE_OFFERS: &str = r#"
WITH batch AS (
    SELECT DISTINCT ON (offer_id) *
    FROM staged_offers
    WHERE refresh_id = $1 AND offer_id > $2
    ORDER BY offer_id, seq DESC
    LIMIT $3
), up AS (
    INSERT INTO offers AS o (offer_id, merchant_id, external_id, name, description, html_description, source,
        seller, vendor, available, visible, min_price, max_price, currency, status, publishing_status, tags,
        category, image_url, date_created, date_last_modified, content_hash, raw, removed_at, catalog_version,
        updated_at)
    SELECT offer_id, merchant_id, external_id, name, description, html_description, source,
        seller, vendor, available, visible, min_price, max_price, currency, status, publishing_status, tags,
        category, image_url, date_created, date_last_modified, content_hash, raw, NULL, $4, now()
    FROM batch
    WHERE raw IS NOT NULL -- markers: the live row already has this content
    ON CONFLICT (offer_id) DO UPDATE SET
        merchant_id = EXCLUDED.merchant_id, external_id = EXCLUDED.external_id, name = EXCLUDED.name,
        description = EXCLUDED.description, html_description = EXCLUDED.html_description,
        source = EXCLUDED.source, seller = EXCLUDED.seller, vendor = EXCLUDED.vendor,
        available = EXCLUDED.available, visible = EXCLUDED.visible, min_price = EXCLUDED.min_price,
        max_price = EXCLUDED.max_price, currency = EXCLUDED.currency, status = EXCLUDED.status,
        publishing_status = EXCLUDED.publishing_status, tags = EXCLUDED.tags, category = EXCLUDED.category,
        image_url = EXCLUDED.image_url, date_created = EXCLUDED.date_created,
        date_last_modified = EXCLUDED.date_last_modified, content_hash = EXCLUDED.content_hash,
        raw = EXCLUDED.raw, removed_at = NULL, catalog_version = EXCLUDED.catalog_version,
        updated_at = EXCLUDED.updated_at
    WHERE (o.content_hash <> EXCLUDED.content_hash OR o.removed_at IS NOT NULL
           OR o.merchant_id <> EXCLUDED.merchant_id)
      AND (o.date_last_modified IS NULL OR EXCLUDED.date_last_modified IS NULL
           OR EXCLUDED.date_last_modified >= o.date_last_modified)
      -- An offer removed after the listing began to be read stays removed: the
      -- removal is newer than the copy this refresh staged.
      AND ($5::timestamptz IS NULL OR o.removed_at IS NULL OR o.removed_at < $5)
    RETURNING o.offer_id
)
SELECT (SELECT max(offer_id) FROM batch) AS last_id,
       (SELECT count(*) FROM batch) AS seen,
       COALESCE((SELECT array_agg(u.offer_id ORDER BY u.offer_id) FROM up u), '{}') AS changed_ids,
       COALESCE((SELECT array_agg(b.seq ORDER BY u.offer_id) FROM up u JOIN batch b USING (offer_id)), '{}')
           AS changed_seqs
"#;

const INSERT_SKUS: &str = r#"
INSERT INTO skus (sku_id, offer_id, merchant_id, external_id, name, gtin, upc, ean, isbn, in_stock,
    quantity, sale_price, retail_price, currency, status, raw)
SELECT DISTINCT ON (s.sku_id) s.sku_id, s.offer_id, s.merchant_id, s.external_id, s.name, s.gtin, s.upc,
    s.ean, s.isbn, s.in_stock, s.quantity, s.sale_price, s.retail_price, s.currency, s.status, s.raw
FROM UNNEST($2::bigint[], $3::int[]) AS c(offer_id, seq)
JOIN staged_skus s ON s.refresh_id = $1 AND s.offer_id = c.offer_id AND s.seq = c.seq
ORDER BY s.sku_id, s.seq DESC
ON CONFLICT (sku_id) DO UPDATE SET
    offer_id = EXCLUDED.offer_id, merchant_id = EXCLUDED.merchant_id, external_id = EXCLUDED.external_id,
    name = EXCLUDED.name, gtin = EXCLUDED.gtin, upc = EXCLUDED.upc, ean = EXCLUDED.ean, isbn = EXCLUDED.isbn,
    in_stock = EXCLUDED.in_stock, quantity = EXCLUDED.quantity, sale_price = EXCLUDED.sale_price,
    retail_price = EXCLUDED.retail_price, currency = EXCLUDED.currency, status = EXCLUDED.status,
    raw = EXCLUDED.raw
"#;

/// Plans of the publishing statements are chosen without looking at the batch's
/// array parameters: staging is never analyzed (its rows live for seconds), and a
/// custom plan, seeing a 1,000-element array against a table it believes small, picks
/// a merge join that sorts the whole refresh for every batch (measured: 200+ ms per
/// batch instead of ~20 ms). The generic plan probes the staging index per element.
pub(crate) async fn prefer_generic_plans(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("SET LOCAL plan_cache_mode = force_generic_plan")
        .execute(conn)
        .await?;
    Ok(())
}

/// What merging staged offers did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Merged {
    /// Distinct offers read from staging.
    pub seen: u64,
    /// Offers inserted or rewritten.
    pub upserted: u64,
}

/// Upserts the staged offers of `refresh_id` (and replaces the SKUs of those that
/// changed) at catalog version `version`, adding the changed ids to `changed`. An
/// offer removed at or after `read_since` (when the staged copies began to be read)
/// is not brought back by them. Stops with an error (the caller's transaction rolls
/// back) when `cancel` fires.
pub(crate) async fn merge_staged_offers(
    conn: &mut PgConnection,
    refresh_id: i64,
    version: i64,
    read_since: Option<DateTime<Utc>>,
    batch_size: usize,
    changed: &mut ChangedOffers,
    cancel: &CancellationToken,
) -> anyhow::Result<Merged> {
    let mut merged = Merged::default();
    let mut after = i64::MIN;
    let mut stats = LiveStats::read(&mut *conn).await?;
    loop {
        if cancel.is_cancelled() {
            anyhow::bail!("cancelled while publishing");
        }
        stats
            .refresh_if_outgrown(&mut *conn, merged.upserted)
            .await?;
        let (last, seen, ids, seqs): (Option<i64>, i64, Vec<i64>, Vec<i32>) =
            sqlx::query_as(MERGE_OFFERS)
                .bind(refresh_id)
                .bind(after)
                .bind(batch_size as i64)
                .bind(version)
                .bind(read_since)
                .fetch_one(&mut *conn)
                .await?;
        let Some(last) = last else { break };
        merged.seen += seen as u64;
        if !ids.is_empty() {
            sqlx::query("DELETE FROM skus WHERE offer_id = ANY($1)")
                .bind(&ids)
                .execute(&mut *conn)
                .await?;

            sqlx::query(INSERT_SKUS)
                .bind(refresh_id)
                .bind(&ids)
                .bind(&seqs)
                .execute(&mut *conn)
                .await?;
            merged.upserted += ids.len() as u64;
            changed.add(&ids);
        }
        after = last;
    }
    Ok(merged)
}

/// What the planner believes of the live tables. On a first onboarding they are empty
/// when the publishing transaction begins and hold a whole catalog by its end; plans
/// chosen for an empty `skus` table scan it whole for every batch, and the batches
/// slow down as it grows (measured in the daemon: a 100,000-offer first publish took
/// 71 s, the same publish against analyzed tables 14 s). Once this transaction has
/// written more rows than the statistics know of, the live tables are analyzed inside
/// it (ANALYZE sees the transaction's own rows); cached plans are replanned.
struct LiveStats {
    known_offers: f64,
}

impl LiveStats {
    async fn read(conn: &mut PgConnection) -> sqlx::Result<Self> {
        let known_offers: f32 =
            sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = 'offers'::regclass")
                .fetch_one(conn)
                .await?;
        Ok(Self {
            known_offers: f64::from(known_offers.max(0.0)),
        })
    }

    async fn refresh_if_outgrown(
        &mut self,
        conn: &mut PgConnection,
        written: u64,
    ) -> sqlx::Result<()> {
        // Past a few batches, and past what the planner knows of (with room to grow).
        if written < 2_000 || (written as f64) < self.known_offers * 2.0 {
            return Ok(());
        }
        self.known_offers = written as f64;
        // ANALYZE holds a lock on the tables until this transaction ends, which a
        // concurrent publish's ANALYZE would wait for: never wait for it, skip instead.
        let previous: String = sqlx::query_scalar("SELECT current_setting('lock_timeout')")
            .fetch_one(&mut *conn)
            .await?;
        sqlx::query("SAVEPOINT live_stats")
            .execute(&mut *conn)
            .await?;
        sqlx::query("SET LOCAL lock_timeout = '50ms'")
            .execute(&mut *conn)
            .await?;
        match sqlx::query("ANALYZE offers, skus")
            .execute(&mut *conn)
            .await
        {
            Ok(_) => {
                // A released savepoint keeps its SET LOCAL: put the timeout back.
                sqlx::query("RELEASE SAVEPOINT live_stats")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("SELECT set_config('lock_timeout', $1, true)")
                    .bind(&previous)
                    .execute(&mut *conn)
                    .await?;
                tracing::debug!(written, "analyzed the live tables inside the publish");
            }
            Err(err) => {
                sqlx::query("ROLLBACK TO SAVEPOINT live_stats")
                    .execute(&mut *conn)
                    .await?;
                tracing::debug!(written, error = %err, "live tables not analyzed (busy)");
            }
        }
        Ok(())
    }
}

/// Records the outcome on the merchant row: the catalog version, the live offer count
/// and (for products refreshes) when it ran and how long it took.
pub(crate) async fn update_merchant(
    conn: &mut PgConnection,
    merchant_id: i64,
    version: i64,
    refresh_ms: Option<i64>,
) -> sqlx::Result<()> {
    sqlx::query(
        r#"UPDATE merchants SET catalog_version = $2,
               offer_count = (SELECT count(*) FROM offers WHERE merchant_id = $1 AND removed_at IS NULL),
               last_refresh_at = CASE WHEN $3::bigint IS NULL THEN last_refresh_at ELSE now() END,
               last_refresh_ms = COALESCE($3, last_refresh_ms),
               updated_at = now()
           WHERE merchant_id = $1"#,
    )
    .bind(merchant_id)
    .bind(version)
    .bind(refresh_ms)
    .execute(conn)
    .await?;
    Ok(())
}
