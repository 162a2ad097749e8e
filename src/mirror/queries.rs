//! Reads of the mirror for the admin side and tests: offers, SKUs, collections, the
//! change log, and what the storefront may see.
//!
//! What the storefront may see is read from the `storefront_offers` view (migration
//! 0006), the one statement of that rule; the search index projects the same view
//! (`search::source`), so the two cannot disagree.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;

/// An offer as the mirror holds it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MirrorOffer {
    pub offer_id: i64,
    pub merchant_id: i64,
    pub external_id: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub source: Option<String>,
    pub seller: Option<String>,
    pub vendor: Option<String>,
    pub available: Option<bool>,
    pub visible: Option<bool>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub currency: Option<String>,
    pub status: Option<String>,
    pub publishing_status: Option<String>,
    pub tags: Vec<String>,
    pub category: Option<String>,
    pub image_url: Option<String>,
    pub date_created: Option<DateTime<Utc>>,
    pub date_last_modified: Option<DateTime<Utc>>,
    pub content_hash: String,
    pub removed_at: Option<DateTime<Utc>>,
    pub catalog_version: i64,
    pub raw: Value,
}

/// A SKU as the mirror holds it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MirrorSku {
    pub sku_id: i64,
    pub offer_id: i64,
    pub merchant_id: i64,
    pub external_id: Option<String>,
    pub name: Option<String>,
    pub gtin: Option<String>,
    pub upc: Option<String>,
    pub ean: Option<String>,
    pub isbn: Option<String>,
    pub in_stock: Option<bool>,
    pub quantity: Option<i64>,
    pub sale_price: Option<i64>,
    pub retail_price: Option<i64>,
    pub currency: Option<String>,
    pub status: Option<String>,
    pub raw: Value,
}

/// One change-log row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ChangeRow {
    pub change_no: i64,
    pub merchant_id: i64,
    pub catalog_version: i64,
    pub reason: String,
    pub offer_ids: Option<Vec<i64>>,
    pub upserted: i32,
    pub removed: i32,
    pub created_at: DateTime<Utc>,
}

const OFFER_COLUMNS: &str = "o.offer_id, o.merchant_id, o.external_id, o.name, o.description, o.source, o.seller, \
     o.vendor, o.available, o.visible, o.min_price, o.max_price, o.currency, o.status, o.publishing_status, o.tags, \
     o.category, o.image_url, o.date_created, o.date_last_modified, o.content_hash, o.removed_at, \
     o.catalog_version, o.raw";

/// The merchant's offers the storefront may show, by id.
pub async fn storefront_offers(pool: &PgPool, merchant_id: i64) -> sqlx::Result<Vec<MirrorOffer>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {OFFER_COLUMNS} FROM storefront_offers o WHERE o.merchant_id = $1 ORDER BY o.offer_id"
    )))
    .bind(merchant_id)
    .fetch_all(pool)
    .await
}

/// Whether the storefront may show this offer now.
pub async fn is_on_storefront(pool: &PgPool, offer_id: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM storefront_offers WHERE offer_id = $1)")
        .bind(offer_id)
        .fetch_one(pool)
        .await
}

/// Every offer row of a merchant (removed ones too), by id.
pub async fn merchant_offers(pool: &PgPool, merchant_id: i64) -> sqlx::Result<Vec<MirrorOffer>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {OFFER_COLUMNS} FROM offers o WHERE o.merchant_id = $1 ORDER BY o.offer_id"
    )))
    .bind(merchant_id)
    .fetch_all(pool)
    .await
}

/// One offer row, removed or not.
pub async fn offer(pool: &PgPool, offer_id: i64) -> sqlx::Result<Option<MirrorOffer>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {OFFER_COLUMNS} FROM offers o WHERE o.offer_id = $1"
    )))
    .bind(offer_id)
    .fetch_optional(pool)
    .await
}

/// The SKUs of an offer, by id.
pub async fn offer_skus(pool: &PgPool, offer_id: i64) -> sqlx::Result<Vec<MirrorSku>> {
    sqlx::query_as("SELECT * FROM skus WHERE offer_id = $1 ORDER BY sku_id")
        .bind(offer_id)
        .fetch_all(pool)
        .await
}

/// Every SKU of a merchant, by offer then SKU id.
pub async fn merchant_skus(pool: &PgPool, merchant_id: i64) -> sqlx::Result<Vec<MirrorSku>> {
    sqlx::query_as("SELECT * FROM skus WHERE merchant_id = $1 ORDER BY offer_id, sku_id")
        .bind(merchant_id)
        .fetch_all(pool)
        .await
}

/// Ids of the offers in a collection, ascending.
pub async fn collection_offer_ids(pool: &PgPool, collection_id: i64) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "SELECT offer_id FROM collection_offers WHERE collection_id = $1 ORDER BY offer_id",
    )
    .bind(collection_id)
    .fetch_all(pool)
    .await
}

/// Ids of the offer's collections that are not removed, ascending.
pub async fn offer_collection_ids(pool: &PgPool, offer_id: i64) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        r#"SELECT co.collection_id FROM collection_offers co
           JOIN collections c ON c.collection_id = co.collection_id AND c.removed_at IS NULL
           WHERE co.offer_id = $1 ORDER BY co.collection_id"#,
    )
    .bind(offer_id)
    .fetch_all(pool)
    .await
}

/// Change-log rows after `change_no`, in order, at most `limit`.
pub async fn changes_after(
    pool: &PgPool,
    change_no: i64,
    limit: i64,
) -> sqlx::Result<Vec<ChangeRow>> {
    sqlx::query_as(
        r#"SELECT change_no, merchant_id, catalog_version, reason, offer_ids, upserted, removed, created_at
           FROM change_log WHERE change_no > $1 ORDER BY change_no LIMIT $2"#,
    )
    .bind(change_no)
    .bind(limit)
    .fetch_all(pool)
    .await
}
