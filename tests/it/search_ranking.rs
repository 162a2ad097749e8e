//! Ranking through the search API in Meilisearch's rule order (words, typo, proximity,
//! attribute, sort, exactness), against orders written by hand for a catalog of
//! seven offers where each rule is the one that decides somewhere.

use crate::common;
use crate::search_support;

use common::{TestApp, TestDb};
use search_support::*;
use serde_json::{Value, json};

const MERCHANT: i64 = 3101;

/// (last digit of the id, name, vendor, description, price)
const OFFERS: [(i64, &str, &str, &str, i64); 7] = [
    (1, "Red Velvet Matte Lipstick", "Glow", "", 1_000),
    (2, "Lipstick Red", "Glow", "", 2_000),
    (3, "Red Lipstick", "Glow", "", 3_000),
    (4, "Lipstick", "Red Star", "", 4_000),
    (
        5,
        "Evening Gloss",
        "Glow",
        "<p>A red lipstick for evenings.</p>",
        5_000,
    ),
    (6, "Lipstick Gloss", "Glow", "<p>Deep red.</p>", 6_000),
    (7, "Lipsticks Red", "Glow", "", 7_000),
];

async fn spawn() -> (TestDb, TestApp) {
    let offers: Vec<Offer> = OFFERS
        .iter()
        .map(|&(digit, name, vendor, description, price)| {
            let mut offer = small_offer(3_101_000 + digit, MERCHANT, name);
            offer.vendor = Some(vendor.into());
            offer.html_description = description.into();
            offer.min_price = Some(price);
            offer.max_price = Some(price);
            offer
        })
        .collect();
    serve_offers(&offers).await
}

/// The last digits of a search's hits, in order.
fn digits(body: &Value) -> Vec<i64> {
    ids(body).into_iter().map(|id| id - 3_101_000).collect()
}

#[tokio::test]
async fn proximity_ranks_words_close_together_above_the_same_words_spread_apart() {
    let (_db, app) = spawn().await;
    let base = app.url("");
    let found = async |body: Value| digits(&search_ok(&app.http, &base, body).await);

    // `red lipstick` (a trailing space: no prefix). Every offer holds both words, 7 with
    // a typo (`lipsticks`): typo decides first, so 7 is last though its words are
    // adjacent. Then proximity: adjacent and in order (3 in its name, 5 in its
    // description) first; reversed (2) costs one more; two words between (1) more
    // again; in two attributes (4: name and vendor; 6: name and description) the most.
    // Proximity decides before attribute: 5, whose words are only in the description,
    // ranks above 4 and 6, which hold one in the name. Attribute then decides between
    // 3 and 5, and between 4 and 6.
    let q = json!({ "q": "red lipstick " });
    assert_eq!(found(q.clone()).await, [3, 5, 2, 1, 4, 6, 7]);

    // Pages cut that order without overlap.
    let page = |offset: usize, limit: usize| {
        let mut body = q.clone();
        body["offset"] = json!(offset);
        body["limit"] = json!(limit);
        body
    };
    assert_eq!(found(page(0, 2)).await, [3, 5]);
    assert_eq!(found(page(2, 2)).await, [2, 1]);
    assert_eq!(found(page(4, 3)).await, [4, 6, 7]);

    // `sort` comes after proximity and attribute: it only orders what they tie on
    // (here nothing among the exact matches), so a price sort keeps the order.
    let mut sorted = q.clone();
    sorted["sort"] = json!(["price:desc"]);
    assert_eq!(found(sorted).await, [3, 5, 2, 1, 4, 6, 7]);

    // `lipstik` has one typo against `lipstick` in every offer and does not reach
    // `lipsticks` (two): the typo rule ties, proximity orders as before, and 7, which
    // matches `red` only, comes after every offer matching both words.
    assert_eq!(
        found(json!({ "q": "red lipstik " })).await,
        [3, 5, 2, 1, 4, 6, 7]
    );

    // Without proximity (one word), attribute decides and then the id.
    assert_eq!(found(json!({ "q": "red " })).await, [1, 2, 3, 7, 4, 5, 6]);
    app.stop().await;
}
