//! Offers, SKUs and collections as staging rows: the typed columns the mirror keeps,
//! taken from the client's typed models (one set of decoding rules), the raw JSON, and
//! the content hash that lets publishing skip what did not change.
//!
//! The column lists here are the single source of the staging COPY statements.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::copy::{CopyText, json_text};
use crate::violet::{Album, Collection, Offer};

/// `COPY` of staged offers; the order of [`push_offer`]'s fields.
pub(crate) const COPY_OFFERS: &str = "COPY staged_offers (refresh_id, merchant_id, seq, offer_id, external_id, name, \
     description, html_description, source, seller, vendor, available, visible, min_price, max_price, currency, \
     status, publishing_status, tags, category, image_url, date_created, date_last_modified, content_hash, raw) \
     FROM STDIN";

/// `COPY` of staged SKUs; the order of [`push_offer`]'s SKU fields.
pub(crate) const COPY_SKUS: &str = "COPY staged_skus (refresh_id, merchant_id, seq, offer_id, sku_id, external_id, \
     name, gtin, upc, ean, isbn, in_stock, quantity, sale_price, retail_price, currency, status, raw) FROM STDIN";

/// `COPY` of staged collections; the order of [`push_collection`]'s fields.
pub(crate) const COPY_COLLECTIONS: &str = "COPY staged_collections (refresh_id, merchant_id, seq, collection_id, \
     external_id, parent_id, name, handle, description, status, type, image_url, date_last_modified, content_hash, \
     raw) FROM STDIN";

/// Fingerprint of an entity's JSON text: hex of the first 128 bits of its SHA-256.
/// `serde_json` writes object keys sorted, so equal JSON gives equal text.
pub fn content_hash(json: &str) -> String {
    let digest = Sha256::digest(json.as_bytes());
    let mut hex = String::with_capacity(32);
    for byte in &digest[..16] {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Where staged rows go and who they belong to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StageKey {
    pub refresh_id: i64,
    /// The merchant being refreshed (the owner of the staged rows).
    pub merchant_id: i64,
}

/// Appends one offer to `offers` and its SKUs to `skus`, filed under `key.merchant_id`
/// (the merchant whose listing or event delivered it). Returns its content hash and
/// the number of SKUs.
pub(crate) fn push_offer(
    offers: &mut CopyText,
    skus: &mut CopyText,
    key: StageKey,
    seq: i32,
    offer: &Offer,
) -> (String, usize) {
    let raw = json_text(&offer.raw);
    let hash = content_hash(&raw);
    offers
        .int(key.refresh_id)
        .int(key.merchant_id)
        .int(i64::from(seq))
        .int(offer.id)
        .opt_text(offer.external_id.as_deref())
        .text(offer.name.as_deref().unwrap_or(""))
        .opt_text(offer.description.as_deref())
        .opt_text(offer.html_description.as_deref())
        .opt_text(offer.source.as_deref())
        .opt_text(offer.seller.as_deref())
        .opt_text(offer.vendor.as_deref())
        .bool(offer.available)
        .bool(offer.visible)
        .opt_int(offer.min_price)
        .opt_int(offer.max_price)
        .opt_text(offer.currency.as_deref())
        .opt_text(offer.status.as_ref().map(|s| s.as_str()))
        .opt_text(offer.publishing_status.as_ref().map(|s| s.as_str()))
        .text_array(&offer.tags)
        .opt_text(offer.source_category_name.as_deref())
        .opt_text(primary_image(&offer.albums))
        .timestamp(offer.date_created)
        .timestamp(offer.date_last_modified)
        .text(&hash)
        .text(&raw);
    offers.end_row();

    // The typed SKUs are decoded from `raw["skus"]`, in order.
    let raw_skus = offer.raw.get("skus").and_then(Value::as_array);
    for (index, sku) in offer.skus.iter().enumerate() {
        let sku_raw = raw_skus
            .and_then(|list| list.get(index))
            .map(json_text)
            .unwrap_or_else(|| "{}".into());
        skus.int(key.refresh_id)
            .int(key.merchant_id)
            .int(i64::from(seq))
            .int(offer.id)
            .int(sku.id)
            .opt_text(sku.external_id.as_deref())
            .opt_text(sku.name.as_deref())
            .opt_text(sku.gtin.as_deref())
            .opt_text(sku.upc.as_deref())
            .opt_text(sku.ean.as_deref())
            .opt_text(sku.isbn.as_deref())
            .bool(sku.in_stock)
            .opt_int(sku.quantity)
            .opt_int(sku.sale_price)
            .opt_int(sku.retail_price)
            .opt_text(sku.currency.as_deref().or(offer.currency.as_deref()))
            .opt_text(sku.status.as_deref())
            .text(&sku_raw);
        skus.end_row();
    }
    (hash, offer.skus.len())
}

/// Appends a marker: an offer seen by the listing whose live row already has `hash`.
pub(crate) fn push_marker(out: &mut CopyText, key: StageKey, seq: i32, offer_id: i64, hash: &str) {
    out.int(key.refresh_id)
        .int(key.merchant_id)
        .int(i64::from(seq))
        .int(offer_id);
    // external_id through date_last_modified.
    for _ in 0..19 {
        out.null();
    }
    out.text(hash).null();
    out.end_row();
}

/// Appends one collection.
pub(crate) fn push_collection(
    out: &mut CopyText,
    key: StageKey,
    seq: i32,
    collection: &Collection,
) {
    let raw = json_text(&collection.raw);
    let hash = content_hash(&raw);
    out.int(key.refresh_id)
        .int(key.merchant_id)
        .int(i64::from(seq))
        .int(collection.id)
        .opt_text(collection.external_id.as_deref())
        .opt_int(collection.parent_id)
        .text(collection.name.as_deref().unwrap_or(""))
        .opt_text(collection.handle.as_deref())
        .opt_text(collection.description.as_deref())
        .opt_text(collection.status.as_ref().map(|s| s.as_str()))
        .opt_text(collection.kind.as_ref().map(|k| k.as_str()))
        .opt_text(
            collection
                .media
                .as_ref()
                .and_then(|m| m.source_url.as_deref()),
        )
        .timestamp(collection.date_last_modified)
        .text(&hash)
        .text(&raw);
    out.end_row();
}

/// The offer's main image: the first media marked primary, else the first media by
/// display order, searching albums in order.
pub fn primary_image(albums: &[Album]) -> Option<&str> {
    fn url(media: &crate::violet::Media) -> Option<&str> {
        media.url.as_deref().or(media.source_url.as_deref())
    }
    albums
        .iter()
        .flat_map(|a| a.media.iter())
        .find(|m| m.primary && url(m).is_some())
        .or_else(|| {
            albums
                .iter()
                .flat_map(|a| a.media.iter())
                .filter(|m| url(m).is_some())
                .min_by_key(|m| m.display_order.unwrap_or(i64::MAX))
        })
        .and_then(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::violet::FromJson;
    use serde_json::json;

    #[test]
    fn hash_is_stable_and_content_sensitive() {
        let a = content_hash(r#"{"a":1}"#);
        assert_eq!(a.len(), 32);
        assert_eq!(a, content_hash(r#"{"a":1}"#));
        assert_ne!(a, content_hash(r#"{"a":2}"#));
    }

    #[test]
    fn primary_image_prefers_primary_then_display_order() {
        let offer = Offer::from_json(json!({"id": 1, "albums": [
            {"media": [{"url": "b", "display_order": 2}, {"url": "a", "display_order": 1}]},
            {"media": [{"url": "p", "primary": true, "display_order": 9}]}
        ]}))
        .unwrap();
        assert_eq!(primary_image(&offer.albums), Some("p"));
        let offer = Offer::from_json(json!({"id": 1, "albums": [
            {"media": [{"url": "b", "display_order": 2}, {"source_url": "a", "display_order": 1}]}
        ]}))
        .unwrap();
        assert_eq!(primary_image(&offer.albums), Some("a"));
        assert_eq!(primary_image(&[]), None);
    }

    #[test]
    fn offer_rows_carry_skus_with_their_raw_json() {
        let offer = Offer::from_json(json!({"id": 5, "name": "Shirt", "currency": "USD", "tags": ["a"],
            "skus": [{"id": 51, "qty_available": 3}, {"id": 52, "quantity_available": 4, "currency": "EUR"}]}))
        .unwrap();
        let (mut offers, mut skus) = (CopyText::default(), CopyText::default());
        let key = StageKey {
            refresh_id: 9,
            merchant_id: 1,
        };
        let (hash, count) = push_offer(&mut offers, &mut skus, key, 0, &offer);
        assert_eq!((hash.len(), count), (32, 2));
        assert_eq!((offers.rows(), skus.rows()), (1, 2));
        push_marker(&mut offers, key, 1, 5, &hash);
        let text = String::from_utf8(offers.slice(0..offers.len()).to_vec()).unwrap();
        let marker = text.lines().nth(1).unwrap();
        assert_eq!(
            marker.split('\t').count(),
            25,
            "every staged column: {marker}"
        );
        assert_eq!(
            marker,
            format!("9\t1\t1\t5{}\t{hash}\t\\N", "\t\\N".repeat(19))
        );
    }
}
