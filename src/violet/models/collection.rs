//! Collections (a merchant's groupings of offers) and merchants.
//!
//! Both keep their whole JSON in `raw`, like offers, because the webhook bodies and
//! the mirror store them as received.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::FromJson;
use super::open_enum::open_enum;
use crate::violet::dates;

open_enum!(
    /// A collection's `status`.
    CollectionStatus {
        Inactive => "INACTIVE",
        Active => "ACTIVE",
        SyncInProgress => "SYNC_IN_PROGRESS",
        ForDeletion => "FOR_DELETION",
    }
);

open_enum!(
    /// A collection's `type`.
    CollectionType {
        Custom => "CUSTOM",
        Automated => "AUTOMATED",
    }
);

/// One collection. `raw` is its whole JSON as received.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(remote = "Self")]
pub struct Collection {
    pub id: i64,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub merchant_id: Option<i64>,
    #[serde(default)]
    pub parent_id: Option<i64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub handle: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub status: Option<CollectionStatus>,
    #[serde(default, rename = "type")]
    pub kind: Option<CollectionType>,
    #[serde(default)]
    pub media: Option<CollectionMedia>,
    #[serde(default, deserialize_with = "dates::optional")]
    pub date_created: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "dates::optional")]
    pub date_last_modified: Option<DateTime<Utc>>,
    /// The whole collection JSON as received.
    #[serde(skip)]
    pub raw: Value,
}

impl FromJson for Collection {
    const KIND: &'static str = "collection";

    fn decode_fields<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Collection::deserialize(deserializer)
    }

    fn set_raw(&mut self, raw: Value) {
        self.raw = raw;
    }
}

impl<'de> Deserialize<'de> for Collection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Collection::from_json(value).map_err(serde::de::Error::custom)
    }
}

/// A collection's image.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CollectionMedia {
    #[serde(default)]
    pub source_url: Option<String>,
    #[serde(default)]
    pub alt: Option<String>,
    #[serde(default)]
    pub height: Option<i64>,
    #[serde(default)]
    pub width: Option<i64>,
}

/// A merchant connected to the channel. `raw` is its whole JSON as received.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(remote = "Self")]
pub struct Merchant {
    pub id: i64,
    #[serde(default)]
    pub merchant_name: Option<String>,
    /// E.g. `SHOPIFY`.
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub store_url: Option<String>,
    /// Open string; Violet does not document the values.
    #[serde(default)]
    pub status: Option<String>,
    /// The whole merchant JSON as received.
    #[serde(skip)]
    pub raw: Value,
}

impl FromJson for Merchant {
    const KIND: &'static str = "merchant";

    fn decode_fields<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Merchant::deserialize(deserializer)
    }

    fn set_raw(&mut self, raw: Value) {
        self.raw = raw;
    }
}

impl<'de> Deserialize<'de> for Merchant {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Merchant::from_json(value).map_err(serde::de::Error::custom)
    }
}
