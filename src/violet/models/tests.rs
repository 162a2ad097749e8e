//! Decoding of Violet's JSON shapes: both SKU quantity spellings, both date shapes,
//! unknown fields and values kept, raw JSON kept, bad input refused with a precise error.

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use super::*;

fn offer_json() -> Value {
    json!({
        "id": 12345,
        "external_id": "ext-1",
        "name": "Linen shirt",
        "description": "<p>Soft</p>",
        "html_description": "<p>Soft</p>",
        "source": "SHOPIFY",
        "seller": "Acme",
        "vendor": "Acme Brand",
        "merchant_id": 1001,
        "available": true,
        "visible": true,
        "min_price": 1999,
        "max_price": 2999,
        "currency": "USD",
        "status": "AVAILABLE",
        "publishing_status": "PUBLISHED",
        "tags": ["summer", "linen"],
        "source_category_name": "Shirts",
        "variants": [{"id": 1, "name": "Size", "values": [{"name": "M", "sku_ids": [1, 2]}]}],
        "skus": [
            {"id": 1, "offer_id": 12345, "in_stock": true, "qty_available": 4, "sale_price": 1999,
             "variant_values": [{"variant": "Size", "value": "M"}],
             "date_last_modified": "2017-06-15T01:01:01+0000"},
            {"id": 2, "offer_id": 12345, "in_stock": false, "quantity_available": 7, "retail_price": 2999}
        ],
        "albums": [{"id": 9, "type": "OFFER", "media": [
            {"url": "https://img/1.jpg", "primary": true, "display_order": 0}
        ]}],
        "collections": [{"id": 77, "name": "Summer", "status": "ACTIVE", "type": "CUSTOM",
                          "media": {"source_url": "https://img/c.jpg", "alt": "c", "height": 10, "width": 20}}],
        "date_created": "2017-06-15T01:01:01Z",
        "date_last_modified": "2017-06-15T01:01:01.123+0000",
        "shipping": {"free": true},
        "extra_flag": null
    })
}

#[test]
fn decodes_every_documented_offer_field() {
    let offer = Offer::from_json(offer_json()).unwrap();
    assert_eq!(offer.id, 12345);
    assert_eq!(offer.external_id.as_deref(), Some("ext-1"));
    assert_eq!(offer.merchant_id, Some(1001));
    assert!(offer.available && offer.visible);
    assert_eq!((offer.min_price, offer.max_price), (Some(1999), Some(2999)));
    assert_eq!(offer.status, Some(OfferStatus::Available));
    assert_eq!(offer.publishing_status, Some(PublishingStatus::Published));
    assert_eq!(offer.tags, ["summer", "linen"]);
    assert_eq!(offer.variants[0].values[0].sku_ids, [1, 2]);
    assert_eq!(
        offer.albums[0].media[0].url.as_deref(),
        Some("https://img/1.jpg")
    );
    assert!(offer.albums[0].media[0].primary);
    let collection = &offer.collections[0];
    assert_eq!(collection.kind, Some(CollectionType::Custom));
    assert_eq!(collection.status, Some(CollectionStatus::Active));
    assert_eq!(collection.media.as_ref().and_then(|m| m.width), Some(20));
    assert_eq!(collection.raw["name"], "Summer");
    assert_eq!(
        offer.date_created,
        Some(Utc.with_ymd_and_hms(2017, 6, 15, 1, 1, 1).unwrap())
    );
    assert_eq!(
        offer.date_last_modified.unwrap().timestamp_subsec_millis(),
        123
    );
}

#[test]
fn accepts_both_sku_quantity_spellings() {
    let offer = Offer::from_json(offer_json()).unwrap();
    assert_eq!(offer.skus[0].quantity, Some(4), "qty_available");
    assert_eq!(offer.skus[1].quantity, Some(7), "quantity_available");
    let both: Sku =
        serde_json::from_value(json!({"id": 3, "qty_available": 1, "quantity_available": 2}))
            .unwrap();
    assert_eq!(
        both.quantity,
        Some(1),
        "qty_available wins when both are sent"
    );
    let neither: Sku = serde_json::from_value(json!({"id": 4})).unwrap();
    assert_eq!(neither.quantity, None);
}

#[test]
fn keeps_the_whole_json_and_unknown_values() {
    let mut json = offer_json();
    json["status"] = json!("SOMETHING_NEW");
    json["publishing_status"] = json!("SCHEDULED");
    let offer = Offer::from_json(json.clone()).unwrap();
    assert_eq!(offer.raw, json, "raw is the offer exactly as received");
    assert_eq!(
        offer.raw["shipping"]["free"], true,
        "unknown fields stay in raw"
    );
    assert_eq!(
        offer.status,
        Some(OfferStatus::Other("SOMETHING_NEW".into()))
    );
    assert_eq!(offer.status.as_ref().unwrap().as_str(), "SOMETHING_NEW");
    assert_eq!(offer.publishing_status.unwrap().to_string(), "SCHEDULED");
    // Through the plain serde entry point too (webhook bodies).
    let via_serde: Offer = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(via_serde.raw, json);
}

#[test]
fn tolerates_missing_and_null_fields() {
    let offer = Offer::from_json(json!({"id": 1, "tags": null, "skus": null, "status": null,
                                        "available": null, "date_created": null}))
    .unwrap();
    assert!(offer.tags.is_empty() && offer.skus.is_empty());
    assert_eq!(
        (offer.status, offer.available, offer.date_created),
        (None, false, None)
    );
}

#[test]
fn wrong_types_fail_naming_the_entity_and_field() {
    let mut json = offer_json();
    json["skus"][1]["quantity_available"] = json!("seven");
    let err = Offer::from_json(json).unwrap_err();
    assert!(
        err.starts_with("offer (id 12345): invalid type: string \"seven\""),
        "{err}"
    );
    assert!(err.contains("\"quantity_available\": \"seven\""), "{err}");

    let mut json = offer_json();
    json["min_price"] = json!(19.99);
    let err = Offer::from_json(json).unwrap_err();
    assert!(err.contains("\"min_price\": 19.99"), "{err}");

    let mut json = offer_json();
    json["date_last_modified"] = json!("last tuesday");
    let err = Offer::from_json(json).unwrap_err();
    assert!(err.contains("invalid date \"last tuesday\""), "{err}");
    assert!(err.contains("date_last_modified"), "{err}");

    let err = Offer::from_json(json!({"name": "no id"})).unwrap_err();
    assert!(
        err.contains("no id") && err.contains("missing field `id`"),
        "{err}"
    );
    assert!(Offer::from_json(json!("not an object")).is_err());
    assert!(
        Offer::from_json(json!({"id": "12"})).is_err(),
        "string ids are not guessed"
    );
}

#[test]
fn malformed_json_is_an_error() {
    let text = serde_json::to_vec(&offer_json()).unwrap();
    assert!(Offer::from_slice(&text).is_ok());
    assert!(
        Offer::from_slice(&text[..text.len() / 2]).is_err(),
        "truncated"
    );
    assert!(Offer::from_slice(b"{\"id\": 1,,}").is_err());
    assert!(Offer::from_slice(b"").is_err());
    assert!(decode_page_values(b"{\"content\": [").is_err());
}

#[test]
fn pages_tolerate_missing_metadata_and_keep_items_as_json() {
    let page = decode_page_values(
        br#"{"content":[{"id":1},{"id":2}],"last":true,"number":0,
        "total_elements":0,"total_pages":0,"pageable":{"page_number":0}}"#,
    )
    .unwrap();
    assert_eq!(page.content.len(), 2);
    assert!(page.last && page.is_final());
    assert_eq!((page.total_elements, page.number_of_elements), (0, 0));
    let offers = page.try_map(|_, value| Offer::from_json(value)).unwrap();
    assert_eq!(offers.content[1].id, 2);

    let empty = decode_page_values(br#"{"content":[]}"#).unwrap();
    assert!(empty.content.is_empty() && !empty.last && empty.is_final());
    let not_last = decode_page_values(br#"{"content":[{"id":1}],"last":false}"#).unwrap();
    assert!(!not_last.is_final());
    assert!(decode_page_values(br#"{"content":{}}"#).is_err());
    assert!(decode_page_values(br#"[1,2]"#).is_err());
}

#[test]
fn an_answer_without_an_array_of_content_is_not_a_page() {
    for body in [
        &br#"{"status":"ok","message":"maintenance window"}"#[..],
        br#"{"content":null,"last":true}"#,
        br#"{"content":"none","last":true}"#,
        br#"{"last":true}"#,
        br#"{}"#,
    ] {
        assert!(
            decode_page_values(body).is_err(),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn page_numbers_must_follow_the_first_answer() {
    let zero_based = PageNumbering::default().check(1, Some(0)).unwrap();
    let zero_based = zero_based.check(2, Some(1)).unwrap();
    assert!(zero_based.check(3, Some(1)).is_err(), "page 2 served again");
    assert!(zero_based.check(3, None).is_ok(), "nothing to check");

    let one_based = PageNumbering::default().check(1, Some(1)).unwrap();
    let one_based = one_based.check(2, Some(2)).unwrap();
    assert!(
        one_based.check(3, Some(0)).is_err(),
        "page 1 served for page 3"
    );

    assert!(PageNumbering::default().check(1, Some(5)).is_err());
    assert!(PageNumbering::default().check(2, Some(1)).is_ok());
    assert!(PageNumbering::default().check(2, Some(0)).is_err());
}
