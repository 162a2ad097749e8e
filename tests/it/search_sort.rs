//! `sort` on texts, booleans and numbers through the search API, against orders
//! written by hand for a catalog of seven offers: Meilisearch's semantics (strings
//! lowercased and compared byte by byte after compatibility decomposition, `false`
//! before `true`, documents without the value last in both directions, each criterion
//! breaking the ties of the one before, then the offer id), in a search, the query
//! string form and a multi-search such as InstantSearch's `sortBy` sends.

use crate::common;
use crate::search_support;

use common::{TestApp, TestDb};
use search_support::*;
use serde_json::{Value, json};

/// Offer `n` of merchant 2001 (2002 for the last one): its id.
fn id(n: i64) -> i64 {
    if n == 7 { 2_002_001 } else { 2_001_000 + n }
}

/// The catalog, as (n, merchant, name, vendor, category, available, min_price).
#[allow(clippy::type_complexity)]
const OFFERS: [(
    i64,
    i64,
    &str,
    Option<&str>,
    Option<&str>,
    bool,
    Option<i64>,
); 7] = [
    (
        1,
        2001,
        "banana split",
        Some("Zeta"),
        Some("Food"),
        true,
        Some(300),
    ),
    (2, 2001, "Apple pie", None, Some("food"), false, Some(100)),
    (3, 2001, "cherry tart", Some("alpha"), None, true, None),
    (
        4,
        2001,
        "apple pie",
        Some("Beta"),
        Some("Bakery"),
        true,
        Some(200),
    ),
    // "É" decomposes to "e" and a combining accent, which sorts after "c": eclair first.
    (
        5,
        2001,
        "Éclair",
        Some(""),
        Some("Bakery"),
        false,
        Some(100),
    ),
    (
        6,
        2001,
        "eclair",
        Some("beta"),
        Some("Bakery"),
        true,
        Some(300),
    ),
    (7, 2002, "APPLE PIE", Some("ACME"), None, true, Some(100)),
];

async fn spawn() -> (TestDb, TestApp) {
    let offers: Vec<Offer> = OFFERS
        .iter()
        .map(
            |&(n, merchant, name, vendor, category, available, min_price)| {
                let mut offer = small_offer(id(n), merchant, name);
                offer.vendor = vendor.map(str::to_string);
                offer.category = category.map(str::to_string);
                offer.available = available;
                offer.min_price = min_price;
                offer.max_price = min_price;
                offer
            },
        )
        .collect();
    serve_offers(&offers).await
}

/// The offers' numbers (1 to 7) of a search's hits, in order.
fn numbers(body: &Value) -> Vec<i64> {
    ids(body)
        .into_iter()
        .map(|id| if id == 2_002_001 { 7 } else { id - 2_001_000 })
        .collect()
}

#[tokio::test]
async fn texts_booleans_and_numbers_sort_in_meilisearchs_order_with_missing_values_last() {
    let (_db, app) = spawn().await;
    let base = app.url("");
    for (sort, expected) in [
        // apple pie (2, 4, 7 whatever their case), banana, cherry, eclair, Éclair.
        (json!(["name:asc"]), vec![2, 4, 7, 1, 3, 6, 5]),
        (json!(["name:desc"]), vec![5, 6, 3, 1, 2, 4, 7]),
        // acme, alpha, beta (Beta, beta), zeta; no vendor (2) and "" (5) last.
        (json!(["vendor:asc"]), vec![7, 3, 4, 6, 1, 2, 5]),
        (json!(["vendor:desc"]), vec![1, 4, 6, 3, 7, 2, 5]),
        // Merchant 2002 before 2001, then names.
        (
            json!(["seller:desc", "name:asc"]),
            vec![7, 2, 4, 1, 3, 6, 5],
        ),
        // bakery by price down (6, 4, 5), food (Food, food: 1, 2), then no category
        // (7 priced, 3 without a price last).
        (
            json!(["category:asc", "min_price:desc"]),
            vec![6, 4, 5, 1, 2, 7, 3],
        ),
        // Available ones first; the three apple pies split by availability, the two
        // available ones by price.
        (
            json!(["available:desc", "name:asc", "min_price:asc"]),
            vec![7, 4, 1, 3, 6, 2, 5],
        ),
        (
            json!(["available:asc", "id:desc"]),
            vec![5, 2, 7, 6, 4, 3, 1],
        ),
        // `price` is `min_price`: 3 has none and is last both ways.
        (json!(["price:asc", "name:desc"]), vec![5, 2, 7, 4, 6, 1, 3]),
        (
            json!(["price:desc", "name:desc"]),
            vec![6, 1, 4, 5, 2, 7, 3],
        ),
    ] {
        let (status, body) = search(&app.http, &base, json!({ "sort": sort })).await;
        assert_eq!(status, 200, "{sort}: {body}");
        assert_eq!(numbers(&body), expected, "{sort}");
        let (_, page) = search(
            &app.http,
            &base,
            json!({ "sort": sort, "limit": 3, "offset": 2 }),
        )
        .await;
        assert_eq!(numbers(&page), expected[2..5], "{sort}, a page");
    }

    // With a query, relevance ranks first and sort orders the equally relevant: the
    // three apple pies match alike.
    let (_, body) = search(
        &app.http,
        &base,
        json!({ "q": "apple", "sort": ["vendor:desc"] }),
    )
    .await;
    assert_eq!(numbers(&body), [4, 7, 2]);

    // The query string form.
    let body: Value = app
        .http
        .get(app.url("/indexes/offers/search?sort=name:desc,id:asc"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(numbers(&body), [5, 6, 3, 1, 2, 4, 7]);

    // InstantSearch's `sortBy` item `offers:name:asc`: a multi-search whose queries all
    // succeed (one failing query would fail the whole page).
    let response = app
        .http
        .post(app.url("/multi-search"))
        .json(&json!({ "queries": [
            { "indexUid": "offers", "q": "", "sort": ["name:asc"], "hitsPerPage": 3, "page": 1,
              "facets": ["category"] },
            { "indexUid": "offers", "q": "", "sort": ["name:asc"], "limit": 0,
              "facets": ["available"] },
        ] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(numbers(&body["results"][0]), [2, 4, 7]);
    assert_eq!(body["results"][0]["totalHits"], 7);
    assert_eq!(
        body["results"][1]["facetDistribution"]["available"],
        json!({ "false": 2, "true": 5 })
    );

    // The settings list what sorts; an unknown attribute's error still does.
    let (_, settings) = get_json(&app, "/indexes/offers/settings/sortable-attributes").await;
    assert_eq!(
        settings,
        json!([
            "available",
            "category",
            "collection_ids",
            "currency",
            "date_last_modified",
            "id",
            "max_price",
            "merchant_id",
            "min_price",
            "name",
            "seller",
            "status",
            "vendor",
            "visible"
        ])
    );
    let (status, body) = search(&app.http, &base, json!({ "sort": ["description:asc"] })).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "invalid_search_sort");
    assert_eq!(
        body["message"],
        "Attribute `description` is not sortable. Available sortable attributes are: \
         `available, category, collection_ids, currency, date_last_modified, id, max_price, \
         merchant_id, min_price, name, price, seller, status, vendor, visible`."
    );
    app.stop().await;
}
