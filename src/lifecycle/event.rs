//! A verified webhook delivery, its topic, and the facts read from its headers and body.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::SyncKind;

/// The topics that matter; anything else is kept as `Other` (stored and ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    SyncStarted(SyncKind),
    SyncCompleted(SyncKind),
    SyncFailed(SyncKind),
    MerchantConnected,
    MerchantDisconnected,
    MerchantEnabled,
    MerchantDisabled,
    MerchantNeedsAttention,
    MerchantComplete,
    /// OFFER_ADDED, OFFER_UPDATED, OFFER_CREATED (deprecated alias of ADDED).
    OfferUpserted,
    /// OFFER_REMOVED, OFFER_DELETED.
    OfferRemoved,
    /// COLLECTION_CREATED, COLLECTION_UPDATED, COLLECTION_REMOVED, COLLECTION_OFFERS_UPDATED.
    CollectionChanged,
    Other,
}

/// How the planner treats a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventClass {
    Sync,
    Merchant,
    Offer,
    Collection,
    Unknown,
}

impl Topic {
    pub fn parse(topic: &str) -> Topic {
        use SyncKind::*;
        match topic.trim().to_ascii_uppercase().as_str() {
            "PRODUCT_SYNC_STARTED" => Topic::SyncStarted(Products),
            "PRODUCT_SYNC_COMPLETED" => Topic::SyncCompleted(Products),
            "PRODUCT_SYNC_FAILED" => Topic::SyncFailed(Products),
            "COLLECTION_SYNC_STARTED" => Topic::SyncStarted(Collections),
            "COLLECTION_SYNC_COMPLETED" => Topic::SyncCompleted(Collections),
            "COLLECTION_SYNC_FAILED" => Topic::SyncFailed(Collections),
            "MERCHANT_CONNECTED" => Topic::MerchantConnected,
            "MERCHANT_DISCONNECTED" => Topic::MerchantDisconnected,
            "MERCHANT_ENABLED" => Topic::MerchantEnabled,
            "MERCHANT_DISABLED" => Topic::MerchantDisabled,
            "MERCHANT_NEEDS_ATTENTION" => Topic::MerchantNeedsAttention,
            "MERCHANT_COMPLETE" => Topic::MerchantComplete,
            "OFFER_ADDED" | "OFFER_UPDATED" | "OFFER_CREATED" => Topic::OfferUpserted,
            "OFFER_REMOVED" | "OFFER_DELETED" => Topic::OfferRemoved,
            "COLLECTION_CREATED"
            | "COLLECTION_UPDATED"
            | "COLLECTION_REMOVED"
            | "COLLECTION_OFFERS_UPDATED" => Topic::CollectionChanged,
            _ => Topic::Other,
        }
    }

    pub fn class(&self) -> EventClass {
        match self {
            Topic::SyncStarted(_) | Topic::SyncCompleted(_) | Topic::SyncFailed(_) => {
                EventClass::Sync
            }
            Topic::MerchantConnected
            | Topic::MerchantDisconnected
            | Topic::MerchantEnabled
            | Topic::MerchantDisabled
            | Topic::MerchantNeedsAttention
            | Topic::MerchantComplete => EventClass::Merchant,
            Topic::OfferUpserted | Topic::OfferRemoved => EventClass::Offer,
            Topic::CollectionChanged => EventClass::Collection,
            Topic::Other => EventClass::Unknown,
        }
    }
}

/// One delivery after its signature was verified.
#[derive(Debug, Clone)]
pub struct IncomingEvent {
    pub event_id: String,
    pub topic_name: String,
    pub topic: Topic,
    pub entity_id: Option<String>,
    pub webhook_id: Option<String>,
    pub event_id_source: Option<String>,
    pub header_merchant_id: Option<i64>,
    pub raw_body: Vec<u8>,
    /// The body as JSON; `None` when it does not parse (stored as unprocessable).
    pub body: Option<Value>,
}

impl IncomingEvent {
    /// The merchant: the header, else the one the body names. When both are present
    /// and differ, [`IncomingEvent::merchant_conflict`] says so and planning refuses
    /// the event; this still answers the header's, which is what intake stores (and
    /// what a replay reads back as the header, so a replay refuses it too).
    pub fn merchant_id(&self) -> Option<i64> {
        self.header_merchant_id.or_else(|| self.body_merchant_id())
    }

    /// The merchant the body names: its `merchant_id`, else (merchant events, whose
    /// body is the merchant) its `id`.
    pub fn body_merchant_id(&self) -> Option<i64> {
        let body = self.body.as_ref()?;
        int_field(body, "merchant_id").or_else(|| match self.topic.class() {
            EventClass::Merchant => int_field(body, "id"),
            _ => None,
        })
    }

    /// `(header, body)` when `X-Violet-Merchant-Id` and the body name different
    /// merchants. Neither can be trusted over the other: the event must not act on
    /// either merchant.
    pub fn merchant_conflict(&self) -> Option<(i64, i64)> {
        match (self.header_merchant_id, self.body_merchant_id()) {
            (Some(header), Some(body)) if header != body => Some((header, body)),
            _ => None,
        }
    }

    /// The sync operation id: `X-Violet-Entity-Id`, else the body's `id`.
    pub fn sync_id(&self) -> Option<String> {
        self.entity_id
            .clone()
            .filter(|id| !id.is_empty())
            .or_else(|| {
                self.body.as_ref().and_then(|body| match body.get("id") {
                    Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
                    Some(Value::Number(id)) => Some(id.to_string()),
                    _ => None,
                })
            })
    }

    /// When the event happened according to its body, if it says. Used to keep an
    /// older event from overwriting newer state when deliveries arrive out of order.
    pub fn occurred_at(&self) -> Option<DateTime<Utc>> {
        let body = self.body.as_ref()?;
        ["date_last_synced", "date_last_modified", "date_created"]
            .iter()
            .find_map(|field| {
                body.get(*field)
                    .and_then(Value::as_str)
                    .and_then(parse_violet_date)
            })
    }

    /// Integer field of the body, accepting numbers and numeric strings.
    pub fn body_int(&self, field: &str) -> Option<i64> {
        self.body.as_ref().and_then(|body| int_field(body, field))
    }
}

fn int_field(body: &Value, field: &str) -> Option<i64> {
    match body.get(field)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Violet dates: `2017-06-15T01:01:01+0000`, `...Z`, `...+00:00`, optional fractions.
pub fn parse_violet_date(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map(|date| date.with_timezone(&Utc))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_violet_date_formats() {
        let a = parse_violet_date("2017-06-15T01:01:01+0000").unwrap();
        let b = parse_violet_date("2017-06-15T01:01:01Z").unwrap();
        let c = parse_violet_date("2017-06-15T01:01:01.000+00:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert!(parse_violet_date("yesterday").is_none());
    }

    #[test]
    fn topics_are_open() {
        assert_eq!(
            Topic::parse("PRODUCT_SYNC_COMPLETED"),
            Topic::SyncCompleted(SyncKind::Products)
        );
        assert_eq!(Topic::parse("OFFER_CREATED"), Topic::OfferUpserted);
        assert_eq!(Topic::parse("SOMETHING_NEW").class(), EventClass::Unknown);
    }
}
