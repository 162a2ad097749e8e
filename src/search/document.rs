//! From a mirror row to what the index holds: the hit document (JSON, stored as
//! `_source`) and the tantivy document (text, keyword and numeric fields).
//!
//! The hit document always carries every attribute of [`DISPLAYED`](super::schema::DISPLAYED)
//! (`null` or `[]` when unknown), so `EXISTS` holds for every known attribute and
//! `IS NULL`/`IS EMPTY` are exact. Dates are Unix seconds (numbers filter and sort);
//! prices stay integers in minor units, as Violet sends them.
//!
//! Every tantivy document is a function of its hit document alone, so the hash of the
//! hit document's JSON (its [`fingerprint`], stored as a fast field) says whether a
//! document built from the mirror now would differ from the one the index holds.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tantivy::TantivyDocument;

use super::schema::{AttrKind, OfferSchema};

/// One indexable offer with its SKU identifiers and collections, as loaded from the mirror.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OfferRow {
    pub offer_id: i64,
    pub merchant_id: i64,
    pub name: String,
    pub description: Option<String>,
    pub html_description: Option<String>,
    pub vendor: Option<String>,
    pub seller: Option<String>,
    pub tags: Vec<String>,
    pub category: Option<String>,
    pub available: Option<bool>,
    pub visible: Option<bool>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub currency: Option<String>,
    pub status: Option<String>,
    pub image_url: Option<String>,
    pub date_last_modified: Option<DateTime<Utc>>,
    pub collection_ids: Vec<i64>,
    pub collections: Vec<String>,
    pub sku_names: Vec<String>,
    pub gtins: Vec<String>,
    pub upcs: Vec<String>,
    pub eans: Vec<String>,
}

impl OfferRow {
    /// The hit document: what the storefront receives.
    pub fn to_source(&self) -> Value {
        let description = self
            .description
            .as_deref()
            .filter(|text| !text.trim().is_empty())
            .or(self.html_description.as_deref())
            .map(strip_html);
        json!({
            "id": self.offer_id,
            "merchant_id": self.merchant_id,
            "name": self.name,
            "description": description,
            "vendor": self.vendor,
            "seller": self.seller,
            "tags": self.tags,
            "category": self.category,
            "collection_ids": self.collection_ids,
            "collections": self.collections,
            "sku_names": self.sku_names,
            "gtins": self.gtins,
            "upcs": self.upcs,
            "eans": self.eans,
            "min_price": self.min_price,
            "max_price": self.max_price,
            "currency": self.currency,
            "available": self.available,
            "visible": self.visible,
            "status": self.status,
            "date_last_modified": self.date_last_modified.map(|date| date.timestamp()),
            "image_url": self.image_url,
        })
    }

    /// The tantivy document for this offer.
    pub fn to_document(&self, schema: &OfferSchema) -> TantivyDocument {
        self.project().into_document(schema)
    }

    /// The hit document, serialized and fingerprinted: enough to tell whether the
    /// index already holds this offer as it is, before paying for the tantivy document.
    pub fn project(&self) -> Projected {
        let source = self.to_source();
        let text = source.to_string();
        Projected {
            fingerprint: fingerprint(&text),
            source,
            text,
        }
    }
}

/// An offer's hit document with its JSON text and fingerprint.
#[derive(Debug, Clone)]
pub struct Projected {
    pub source: Value,
    pub text: String,
    pub fingerprint: u64,
}

impl Projected {
    pub fn into_document(self, schema: &OfferSchema) -> TantivyDocument {
        build(schema, &self.source, self.text, self.fingerprint)
    }
}

/// The fingerprint of a hit document's JSON text: the first 8 bytes of its SHA-256,
/// never 0 (0 is what a document without one reads as: "unknown, rewrite it"). A
/// cryptographic hash because a collision would silently keep a stale document;
/// `serde_json` writes object keys in order, so equal documents give equal text.
pub fn fingerprint(text: &str) -> u64 {
    let digest = Sha256::digest(text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first).max(1)
}

/// Builds the tantivy document from a hit document.
pub fn document_from_source(schema: &OfferSchema, source: &Value) -> TantivyDocument {
    let text = source.to_string();
    let fingerprint = fingerprint(&text);
    build(schema, source, text, fingerprint)
}

fn build(schema: &OfferSchema, source: &Value, text: String, fingerprint: u64) -> TantivyDocument {
    let mut doc = TantivyDocument::default();
    let empty = Map::new();
    let object = source.as_object().unwrap_or(&empty);
    for &(attribute, text_field) in super::schema::SEARCHABLE {
        let field = schema.text_field(text_field);
        for text in strings(object.get(attribute)) {
            doc.add_text(field, text);
        }
    }
    for &(attribute, kind, field) in &schema.attributes {
        let value = object.get(attribute).unwrap_or(&Value::Null);
        match value {
            Value::Null => doc.add_text(schema.nulls, attribute),
            Value::Array(items) if items.is_empty() => doc.add_text(schema.empties, attribute),
            Value::String(text) if text.is_empty() => doc.add_text(schema.empties, attribute),
            _ => {}
        }
        for scalar in scalars(value) {
            match kind {
                AttrKind::Number => {
                    if let Some(number) = scalar.as_f64() {
                        doc.add_f64(field, number);
                    }
                }
                AttrKind::Keyword => {
                    if let Some(text) = keyword_text(scalar) {
                        doc.add_text(field, text);
                    }
                }
            }
        }
    }
    for &(attribute, field) in &schema.sort_keys {
        for scalar in scalars(object.get(attribute).unwrap_or(&Value::Null)) {
            let key = match scalar {
                Value::String(text) => super::schema::sort_key(text),
                Value::Bool(flag) => Some(flag.to_string()),
                // Never from the mirror (see `schema::SORTABLE_TEXT`): no key, so
                // the document sorts as missing rather than among the strings.
                _ => None,
            };
            if let Some(key) = key {
                doc.add_text(field, key);
            }
        }
    }
    doc.add_text(schema.source, text);
    doc.add_u64(schema.fingerprint, fingerprint);
    doc
}

/// The scalar values of an attribute: itself, or the items of an array.
pub fn scalars(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().filter(|item| !item.is_null()).collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// A scalar as the keyword text filters compare: strings as they are, booleans and
/// numbers spelled out.
pub fn keyword_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn strings(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::String(text)) => vec![text.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Text of an HTML fragment: tags dropped (with the content of `script`/`style`),
/// common entities decoded, whitespace collapsed.
pub fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        push_text(&mut out, &rest[..start]);
        let after = &rest[start..];
        let lower_prefix: String = after
            .chars()
            .take(8)
            .collect::<String>()
            .to_ascii_lowercase();
        let skip_to = if lower_prefix.starts_with("<script") {
            find_ci(after, "</script>").map(|at| at + "</script>".len())
        } else if lower_prefix.starts_with("<style") {
            find_ci(after, "</style>").map(|at| at + "</style>".len())
        } else {
            after.find('>').map(|at| at + 1)
        };
        match skip_to {
            Some(end) => {
                out.push(' ');
                rest = &after[end..];
            }
            None => {
                // An unclosed `<` is text, not a tag.
                push_text(&mut out, after);
                rest = "";
            }
        }
    }
    push_text(&mut out, rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack.to_ascii_lowercase().find(needle)
}

fn push_text(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        match after
            .find(';')
            .filter(|end| *end <= 10)
            .and_then(|end| decode_entity(&after[1..end]).map(|c| (c, end)))
        {
            Some((decoded, end)) => {
                out.push(decoded);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
}

fn decode_entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some(' '),
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::strip_html;

    #[test]
    fn html_is_stripped_to_text() {
        assert_eq!(
            strip_html("<p>Soft&nbsp;<b>cotton</b> tee</p>"),
            "Soft cotton tee"
        );
        assert_eq!(strip_html("a <script>var x = '<b>';</script>b"), "a b");
        assert_eq!(
            strip_html("Tom &amp; Jerry &#39;s &#x41; &bogus; 3 < 4"),
            "Tom & Jerry 's A &bogus; 3 < 4"
        );
        assert_eq!(strip_html("<ul><li>one</li><li>two</li></ul>"), "one two");
    }
}
