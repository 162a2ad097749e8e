//! Query syntax through the search API: phrases (`"..."`), exclusions (`-word`,
//! `-"phrase"`), `matchingStrategy: frequency`, `attributesToSearchOn` and
//! `showMatchesPosition`, against results written by hand for a catalog of five offers
//! (the rules themselves are pinned case by case in `src/search/terms_tests.rs`).

use crate::common;
use crate::search_support;

use common::{TestApp, TestDb};
use search_support::*;
use serde_json::{Value, json};

const MERCHANT: i64 = 3001;

/// (id, name, vendor)
const OFFERS: [(i64, &str, &str); 5] = [
    (3_001_001, "Red Lipstick", "Glow"),
    (3_001_002, "Pink Lipstick", "Glow"),
    (3_001_003, "Lipstick Case", "Red Star"),
    (3_001_004, "North Face Jacket", "Outdoors"),
    (3_001_005, "Face North Jacket", "Outdoors"),
];

async fn spawn() -> (TestDb, TestApp) {
    let offers: Vec<Offer> = OFFERS
        .iter()
        .map(|&(id, name, vendor)| {
            let mut offer = small_offer(id, MERCHANT, name);
            offer.vendor = Some(vendor.into());
            offer
        })
        .collect();
    serve_offers(&offers).await
}

/// The offers' last digits (1 to 5) of a search's hits, in order.
fn numbers(body: &Value) -> Vec<i64> {
    ids(body).into_iter().map(|id| id - 3_001_000).collect()
}

#[tokio::test]
async fn phrases_exclusions_and_frequency_answer_as_meilisearch() {
    let (_db, app) = spawn().await;
    let base = app.url("");
    let found = async |body: Value| search_ok(&app.http, &base, body).await;

    // The case: red lipsticks (name or vendor) are left out.
    assert_eq!(numbers(&found(json!({ "q": "lipstick" })).await), [1, 2, 3]);
    assert_eq!(numbers(&found(json!({ "q": "lipstick -red" })).await), [2]);
    assert_eq!(
        numbers(&found(json!({ "q": "lipstick -\"red star\"" })).await),
        [1, 2]
    );
    assert_eq!(numbers(&found(json!({ "q": "-lipstick" })).await), [4, 5]);
    // A lone `-` is text: `- red` searches red.
    assert_eq!(numbers(&found(json!({ "q": "- red" })).await), [1, 3]);

    // A phrase wants its words in order, and highlights them as one match, as
    // Meilisearch does.
    let body = found(json!({ "q": "\"north face\"", "attributesToHighlight": ["name"] })).await;
    assert_eq!(numbers(&body), [4]);
    assert_eq!(
        body["hits"][0]["_formatted"]["name"],
        "<em>North Face</em> Jacket"
    );
    assert_eq!(numbers(&found(json!({ "q": "north face" })).await), [4, 5]);
    assert_eq!(
        numbers(&found(json!({ "q": "jacket -\"north face\"" })).await),
        [5]
    );

    // `last` keeps the first word, `frequency` the rarer one (jacket: 2, lipstick: 3).
    assert_eq!(
        numbers(&found(json!({ "q": "lipstick jacket", "matchingStrategy": "last" })).await),
        [1, 2, 3]
    );
    assert_eq!(
        numbers(&found(json!({ "q": "lipstick jacket", "matchingStrategy": "frequency" })).await),
        [4, 5]
    );
    assert_eq!(
        numbers(&found(json!({ "q": "lipstick jacket", "matchingStrategy": "all" })).await),
        Vec::<i64>::new()
    );

    // Facet search reads `q` the same way.
    let (_, facets) = post_json(
        &app,
        "/indexes/offers/facet-search",
        json!({ "facetName": "vendor", "q": "lipstick -red" }),
    )
    .await;
    assert_eq!(
        facets["facetHits"],
        json!([{ "value": "Glow", "count": 1 }])
    );

    // attributesToSearchOn: "red" is in 1's name and 3's vendor. The vendor shares its
    // text field with the SKU names, and 1's SKUs are named "Red Lipstick size S/M",
    // so naming the vendor finds both; no offer here has a description.
    assert_eq!(numbers(&found(json!({ "q": "red" })).await), [1, 3]);
    let on = |attributes: Value| json!({ "q": "red", "attributesToSearchOn": attributes });
    assert_eq!(numbers(&found(on(json!(["name"]))).await), [1]);
    assert_eq!(numbers(&found(on(json!(["vendor"]))).await), [1, 3]);
    assert!(numbers(&found(on(json!(["description"]))).await).is_empty());
    assert_eq!(numbers(&found(on(json!(["*"]))).await), [1, 3]);
    let response = app
        .http
        .get(app.url("/indexes/offers/search?q=red&attributesToSearchOn=name"))
        .send()
        .await
        .unwrap();
    assert_eq!(numbers(&response.json::<Value>().await.unwrap()), [1]);
    let (status, body) = search(&app.http, &base, on(json!(["min_price"]))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_search_attributes_to_search_on");

    // showMatchesPosition: byte bounds per attribute; the word being typed ("jack")
    // matches over its typed characters only; `attributesToRetrieve` limits it.
    let body = found(json!({
        "q": "north jack",
        "showMatchesPosition": true,
        "attributesToRetrieve": ["id", "name", "vendor"],
        "filter": "id = 3001004",
    }))
    .await;
    assert_eq!(
        body["hits"][0]["_matchesPosition"],
        json!({ "name": [{ "start": 0, "length": 5 }, { "start": 11, "length": 4 }] }),
        "{body}"
    );
    let response = app
        .http
        .get(app.url(
            "/indexes/offers/search?q=face&showMatchesPosition=true&attributesToRetrieve=name&filter=id%20%3D%203001005",
        ))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["hits"][0],
        json!({ "name": "Face North Jacket", "_matchesPosition": { "name": [{ "start": 0, "length": 4 }] } })
    );
    let body = found(json!({ "q": "north" })).await;
    assert!(
        body["hits"][0].get("_matchesPosition").is_none(),
        "only when asked"
    );
    app.stop().await;
}
