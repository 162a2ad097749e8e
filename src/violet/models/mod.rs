//! Violet's JSON, typed: Spring pages, offers, SKUs, collections and merchants.
//!
//! Decoding rules, chosen so that nothing is lost silently:
//! - Unknown fields are ignored by the typed view and kept in `raw`, the entity's whole
//!   JSON as received (every field and value; object key order is not kept).
//! - Missing or `null` fields become `None`, `false`, `0` or an empty list.
//! - Enumerations Violet may extend (statuses, types) are open: an unknown value is
//!   kept as `Other(String)`, never an error.
//! - A field of the wrong type (a string where a number belongs, a bad date) fails the
//!   entity with an error naming its index in the page, its id and the offending field
//!   and value; the client turns that into [`VioletError::Decode`] for the whole page.
//!   A catalog with a wrongly typed price must not be mirrored as if it had none.
//!
//! [`VioletError::Decode`]: crate::violet::VioletError::Decode

mod collection;
mod offer;
mod open_enum;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

pub use collection::{Collection, CollectionMedia, CollectionStatus, CollectionType, Merchant};
pub use offer::{Album, Media, Offer, OfferStatus, PublishingStatus, Sku, Variant, VariantValue};

/// One Spring page, as Violet sends it (snake_case). `content` must be there and be
/// an array: an answer without it (a maintenance page, a proxy's `{"status":"ok"}`)
/// is not a page, and reading it as an empty one would end a listing early and sweep
/// a catalog. Missing or `null` metadata fields take their zero value. On the
/// merchant-offers endpoint `total_elements` and `total_pages` are always 0: page
/// until `last` (or an empty page).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct Page<T> {
    pub content: Vec<T>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub last: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub first: bool,
    /// The page number as reported by Violet (assumed 0-based; see
    /// [`PageNumbering`]). `None` when the answer does not say.
    #[serde(default)]
    pub number: Option<i64>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub size: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub number_of_elements: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub empty: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub total_elements: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub total_pages: i64,
}

impl<T> Page<T> {
    /// The page with its content converted, metadata kept.
    pub fn try_map<U, E>(
        self,
        mut convert: impl FnMut(usize, T) -> Result<U, E>,
    ) -> Result<Page<U>, E> {
        let content = self
            .content
            .into_iter()
            .enumerate()
            .map(|(index, item)| convert(index, item))
            .collect::<Result<Vec<U>, E>>()?;
        Ok(Page {
            content,
            last: self.last,
            first: self.first,
            number: self.number,
            size: self.size,
            number_of_elements: self.number_of_elements,
            empty: self.empty,
            total_elements: self.total_elements,
            total_pages: self.total_pages,
        })
    }

    /// Whether paging stops after this page: `last`, or nothing in it.
    pub fn is_final(&self) -> bool {
        self.last || self.content.is_empty()
    }
}

/// An entity decoded from its JSON, keeping what the typed view needs to report a
/// precise error. Implemented by every top-level model.
pub trait FromJson: Sized {
    /// What the entity is called in error messages ("offer", "collection", ...).
    const KIND: &'static str;

    /// Decodes the typed view from `value` (without `raw`).
    fn decode_fields<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;

    /// Stores the entity's whole JSON.
    fn set_raw(&mut self, raw: Value);

    /// Decodes `value`, keeping it as `raw`. The error names the entity's id and the
    /// field that could not be read.
    fn from_json(value: Value) -> Result<Self, String> {
        match Self::decode_fields(&value) {
            Ok(mut entity) => {
                entity.set_raw(value);
                Ok(entity)
            }
            Err(err) => Err(describe_failure::<Self>(&value, &err.to_string())),
        }
    }

    /// Decodes one entity from JSON text (a webhook body, a single-offer response).
    fn from_slice(bytes: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(bytes).map_err(|err| err.to_string())?;
        Self::from_json(value)
    }
}

/// Says which entity and which field failed. `serde_json` reports no field path when
/// decoding from a `Value`, so on this (rare) path the entity is printed one field per
/// line and decoded again from that text: the error's line then holds the field name
/// and value, e.g. `"qty_available": "x"`.
fn describe_failure<T: FromJson>(value: &Value, message: &str) -> String {
    let id = match value.get("id") {
        Some(Value::Number(n)) => format!("id {n}"),
        Some(Value::String(s)) => format!("id {s:?}"),
        _ => "no id".to_string(),
    };
    let near = serde_json::to_string_pretty(value)
        .ok()
        .and_then(|pretty| {
            let err = T::decode_fields(&mut serde_json::Deserializer::from_str(&pretty)).err()?;
            let line = pretty.lines().nth(err.line().checked_sub(1)?)?.trim();
            Some(format!(" (at `{}`)", clip(line.trim_end_matches(','), 160)))
        })
        .unwrap_or_default();
    format!("{} ({id}): {message}{near}", T::KIND)
}

/// At most `max` characters of `text`, marked when cut.
pub(crate) fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// Decodes a Spring page whose items are kept as JSON, for [`Page::try_map`].
pub fn decode_page_values(bytes: &[u8]) -> Result<Page<Value>, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// How a listing numbers its pages in answers, learnt from its first page: Violet's
/// requests are 1-based and its answers appear 0-based (VIOLET.md, assumed), so the
/// first answer may say 0 or 1 and every later one must follow from it. A page that
/// answers with another number (a proxy serving a cached page, a listing restarted
/// under us) is not the page asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageNumbering {
    /// What the answer to the 1-based request page 1 said, once known.
    first: Option<i64>,
}

impl PageNumbering {
    /// Checks the number an answer to `requested` (1-based) carries and returns the
    /// numbering to check the next page with (learnt from page 1). An answer without
    /// a number is accepted (nothing to check).
    pub fn check(self, requested: u32, answered: Option<i64>) -> Result<PageNumbering, String> {
        let Some(answered) = answered else {
            return Ok(self);
        };
        let requested = i64::from(requested);
        let expected = match self.first {
            Some(first) => first + requested - 1,
            None if requested == 1 && matches!(answered, 0 | 1) => {
                return Ok(PageNumbering {
                    first: Some(answered),
                });
            }
            // No first page seen (numbering unknown): 0-based, as Violet appears to be.
            None => requested - 1,
        };
        if answered == expected {
            Ok(self)
        } else {
            Err(format!(
                "asked for page {requested} but the answer says page number {answered} (expected {expected}); not the page asked for"
            ))
        }
    }
}

/// `null` reads as the type's default (lists, flags, counters).
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
