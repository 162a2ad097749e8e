//! Offers (Violet's products) and what they contain: SKUs, variants, albums, media.
//!
//! `Offer` keeps its whole JSON in `raw`; the nested types are typed views only
//! (their JSON is inside the offer's `raw`). Field names are exactly Violet's.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::open_enum::open_enum;
use super::{Collection, FromJson, null_as_default};
use crate::violet::dates;

open_enum!(
    /// An offer's `status`.
    OfferStatus {
        Available => "AVAILABLE",
        Unavailable => "UNAVAILABLE",
        DisabledAvailable => "DISABLED_AVAILABLE",
        DisabledUnavailable => "DISABLED_UNAVAILABLE",
        Archived => "ARCHIVED",
        ForDeletion => "FOR_DELETION",
    }
);

open_enum!(
    /// An offer's `publishing_status`.
    PublishingStatus {
        Published => "PUBLISHED",
        NotPublished => "NOT_PUBLISHED",
    }
);

/// One offer. `raw` is the offer's whole JSON as received, unknown fields included.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(remote = "Self")]
pub struct Offer {
    pub id: i64,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// May hold HTML.
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub html_description: Option<String>,
    /// The merchant's platform, e.g. `SHOPIFY`.
    #[serde(default)]
    pub source: Option<String>,
    /// The merchant's name.
    #[serde(default)]
    pub seller: Option<String>,
    /// The brand.
    #[serde(default)]
    pub vendor: Option<String>,
    #[serde(default)]
    pub merchant_id: Option<i64>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub available: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub visible: bool,
    /// Minor units (cents).
    #[serde(default)]
    pub min_price: Option<i64>,
    /// Minor units (cents).
    #[serde(default)]
    pub max_price: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub status: Option<OfferStatus>,
    #[serde(default)]
    pub publishing_status: Option<PublishingStatus>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
    #[serde(default)]
    pub source_category_name: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub variants: Vec<Variant>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub skus: Vec<Sku>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub albums: Vec<Album>,
    /// Present when requested with `include=collections`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub collections: Vec<Collection>,
    #[serde(default, deserialize_with = "dates::optional")]
    pub date_created: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "dates::optional")]
    pub date_last_modified: Option<DateTime<Utc>>,
    /// The whole offer JSON as received.
    #[serde(skip)]
    pub raw: Value,
}

impl FromJson for Offer {
    const KIND: &'static str = "offer";

    fn decode_fields<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Offer::deserialize(deserializer)
    }

    fn set_raw(&mut self, raw: Value) {
        self.raw = raw;
    }
}

impl<'de> Deserialize<'de> for Offer {
    /// Reads the JSON once, keeps it as `raw` and decodes the typed view from it.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Offer::from_json(value).map_err(serde::de::Error::custom)
    }
}

/// One purchasable variant of an offer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(remote = "Self")]
pub struct Sku {
    pub id: i64,
    #[serde(default)]
    pub offer_id: Option<i64>,
    #[serde(default)]
    pub merchant_id: Option<i64>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub gtin: Option<String>,
    #[serde(default)]
    pub upc: Option<String>,
    #[serde(default)]
    pub ean: Option<String>,
    #[serde(default)]
    pub isbn: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub in_stock: bool,
    /// Units available: Violet's `qty_available`, or `quantity_available` when only
    /// that is sent (both spellings occur). `qty_available` wins when both are present.
    #[serde(default, rename = "qty_available")]
    pub quantity: Option<i64>,
    #[serde(default)]
    quantity_available: Option<i64>,
    /// Minor units (cents).
    #[serde(default)]
    pub sale_price: Option<i64>,
    /// Minor units (cents).
    #[serde(default)]
    pub retail_price: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
    /// Open string; Violet does not document the values.
    #[serde(default)]
    pub status: Option<String>,
    /// As received: the contract does not pin the element shape.
    #[serde(default, deserialize_with = "null_as_default")]
    pub variant_values: Vec<Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub albums: Vec<Album>,
    #[serde(default, deserialize_with = "dates::optional")]
    pub date_last_modified: Option<DateTime<Utc>>,
}

impl<'de> Deserialize<'de> for Sku {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut sku = Sku::deserialize(deserializer)?;
        if sku.quantity.is_none() {
            sku.quantity = sku.quantity_available.take();
        }
        sku.quantity_available = None;
        Ok(sku)
    }
}

/// An option axis of an offer (e.g. Size) and its values.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Variant {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub values: Vec<VariantValue>,
}

/// One value of a variant (e.g. `M`) and the SKUs that have it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VariantValue {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub sku_ids: Vec<i64>,
}

/// A group of media of an offer or SKU.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Album {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub media: Vec<Media>,
}

/// One image or video of an album.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Media {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub source_url: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub primary: bool,
    #[serde(default)]
    pub display_order: Option<i64>,
}
