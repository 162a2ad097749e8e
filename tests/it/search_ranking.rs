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
    serve_offers(&offers()).await
}

fn offers() -> Vec<Offer> {
    OFFERS
        .iter()
        .map(|&(digit, name, vendor, description, price)| {
            let mut offer = small_offer(3_101_000 + digit, MERCHANT, name);
            offer.vendor = Some(vendor.into());
            offer.html_description = description.into();
            offer.min_price = Some(price);
            offer.max_price = Some(price);
            offer
        })
        .collect()
}

/// The daemon over the seven offers, ranking with `rules` (index/relevance.toml's
/// `ranking.rules`, from a settings directory); the directory must outlive it.
async fn spawn_ranking(rules: &str) -> (TestDb, TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let shipped = include_str!("../../index/relevance.toml");
    let listed = r#"rules = ["words", "typo", "proximity", "attribute", "sort", "exactness"]"#;
    assert!(shipped.contains(listed));
    std::fs::write(
        dir.path().join("relevance.toml"),
        shipped.replace(listed, &format!("rules = {rules}")),
    )
    .unwrap();
    let settings_dir = dir.path().to_path_buf();
    let (db, app) = serve_offers_with(&offers(), |settings| {
        settings.search.settings_dir = settings_dir;
    })
    .await;
    (db, app, dir)
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

/// `_rankingScore` follows the ranking order, `_rankingScoreDetails` names each rule's
/// part, and `rankingScoreThreshold` leaves out what scores below it, in the hits and in
/// the count. The scores are computed by hand from src/search/score.rs's ranks, with
/// index/relevance.toml's weights (name 3 of at most 3, description 1).
#[tokio::test]
async fn ranking_scores_follow_the_order_and_the_threshold_cuts_the_hits_and_the_count() {
    let (_db, app) = spawn().await;
    let base = app.url("");
    let search = async |body: Value| search_ok(&app.http, &base, body).await;

    let body = search(json!({
        "q": "red lipstick ",
        "showRankingScore": true,
        "showRankingScoreDetails": true,
    }))
    .await;
    assert_eq!(digits(&body), [3, 5, 2, 1, 4, 6, 7]);
    let hits = body["hits"].as_array().unwrap();
    let scores: Vec<f64> = hits
        .iter()
        .map(|hit| hit["_rankingScore"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|pair| pair[0] >= pair[1]),
        "{scores:?}"
    );
    // 3, "Red Lipstick": every rule at its best but proximity, 8 of its 9 ranks (the
    // words adjacent, cost 1 of 8): the last 1/36 is lost.
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert!(close(scores[0], 35.0 / 36.0), "{scores:?}");
    // 5, the same words adjacent in the description: attribute 3 of 7 (weights 1 + 1
    // of 3 + 3, plus one): (34 * 7 + 3) * 3 + 3 of 756 before exactness = 723 / 756.
    assert!(close(scores[1], 723.0 / 756.0), "{scores:?}");
    // 2, "Lipstick Red": reversed, cost 2: 714 / 756.
    assert!(close(scores[2], 714.0 / 756.0), "{scores:?}");
    let details = &hits[0]["_rankingScoreDetails"];
    assert_eq!(details["words"]["matchingWords"], 2);
    assert_eq!(details["words"]["maxMatchingWords"], 2);
    assert_eq!(details["typo"]["maxTypoCount"], 1);
    assert_eq!(details["exactness"]["matchingWords"], 2);
    // 7, "Lipsticks Red": one typo of the one `lipstick` allows, halving the typo rank.
    let seven = &hits[6]["_rankingScoreDetails"];
    assert_eq!(seven["typo"]["typoCount"], 1);
    assert_eq!(seven["typo"]["score"], 0.5);
    assert_eq!(seven["exactness"]["matchingWords"], 1);
    // With `matchingStrategy: all` every hit matches every term: `words` does not rank
    // (no detail of it, as in Meilisearch), and the merge starts at typo: 2 of 2, then
    // proximity (2 - 1) * 9 + 8 = 17 of 18; attribute and exactness at their best keep
    // that fraction (17 / 18, where `last` gave 35 / 36).
    let all = search(json!({
        "q": "red lipstick ", "matchingStrategy": "all", "limit": 1,
        "showRankingScore": true, "showRankingScoreDetails": true,
    }))
    .await;
    assert_eq!(digits(&all), [3]);
    let details = &all["hits"][0]["_rankingScoreDetails"];
    assert!(details.get("words").is_none(), "{details}");
    assert_eq!(details["typo"]["order"], 0);
    assert!(close(
        all["hits"][0]["_rankingScore"].as_f64().unwrap(),
        17.0 / 18.0
    ));
    // Asked for neither, a hit carries neither.
    let plain = search(json!({ "q": "red lipstick " })).await;
    assert!(plain["hits"][0].get("_rankingScore").is_none());
    assert!(plain["hits"][0].get("_rankingScoreDetails").is_none());

    // A threshold between 2 and 5 keeps 3 and 5, and the count says 2: the offers
    // whose words and typo cannot reach it (7) are not counted, those that could but
    // whose proximity did not (2, 1, 4, 6) leave the count once ranked.
    let cut = |limit: usize| json!({ "q": "red lipstick ", "rankingScoreThreshold": 0.95, "limit": limit });
    let body = search(cut(20)).await;
    assert_eq!(digits(&body), [3, 5]);
    assert_eq!(body["estimatedTotalHits"], 2);
    let body = search(cut(1)).await;
    assert_eq!(digits(&body), [3]);
    assert_eq!(body["estimatedTotalHits"], 2);
    // The same through GET, its numbers and booleans spelled out.
    let response = app
        .http
        .get(format!(
            "{base}/indexes/offers/search?q=red%20lipstick%20&rankingScoreThreshold=0.95&showRankingScore=true"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(digits(&body), [3, 5]);
    assert!(close(
        body["hits"][1]["_rankingScore"].as_f64().unwrap(),
        723.0 / 756.0
    ));
    // Page numbers count what the threshold keeps.
    let body = search(json!({
        "q": "red lipstick ", "rankingScoreThreshold": 0.95, "hitsPerPage": 1, "page": 2,
    }))
    .await;
    assert_eq!(digits(&body), [5]);
    assert_eq!(body["totalHits"], 2);
    // 0 keeps everything; 1 keeps only a perfect hit, which none is here.
    let body = search(json!({ "q": "red lipstick ", "rankingScoreThreshold": 0.0 })).await;
    assert_eq!(digits(&body), [3, 5, 2, 1, 4, 6, 7]);
    let body = search(json!({ "q": "red lipstick ", "rankingScoreThreshold": 1.0 })).await;
    assert_eq!(digits(&body), Vec::<i64>::new());
    // Facet search ranks nothing: it counts the offers whose rules but proximity may
    // reach the threshold. At 0.99 that leaves out 5 (attribute: description only,
    // 747 / 756 at best) and 7 (a typo: at most 3 / 4).
    let vendors = async |body: Value| {
        let (status, body) = post_json(&app, "/indexes/offers/facet-search", body).await;
        assert_eq!(status, 200, "{body}");
        body["facetHits"].clone()
    };
    assert_eq!(
        vendors(json!({ "facetName": "vendor", "q": "red lipstick " })).await,
        json!([{ "value": "Glow", "count": 6 }, { "value": "Red Star", "count": 1 }])
    );
    assert_eq!(
        vendors(
            json!({ "facetName": "vendor", "q": "red lipstick ", "rankingScoreThreshold": 0.99 })
        )
        .await,
        json!([{ "value": "Glow", "count": 4 }, { "value": "Red Star", "count": 1 }])
    );

    // A search without words scores 1 whatever the threshold, and its details list the
    // sort only.
    let body = search(json!({
        "q": "", "rankingScoreThreshold": 1.0, "sort": ["price:asc"], "limit": 2,
        "showRankingScore": true, "showRankingScoreDetails": true,
    }))
    .await;
    assert_eq!(digits(&body), [1, 2]);
    assert_eq!(body["hits"][0]["_rankingScore"], 1.0);
    // The sort is named as the request named it; the value is the document's.
    assert_eq!(
        body["hits"][0]["_rankingScoreDetails"],
        json!({ "price:asc": { "order": 0, "value": 1000 } })
    );
    app.stop().await;
}

/// `sort` listed first orders by the sort over every relevance rule; the settings API
/// answers the list as configured, and the scores' details follow it.
#[tokio::test]
async fn ranking_rules_listed_with_sort_first_sort_before_relevance() {
    let (_db, app, _dir) =
        spawn_ranking(r#"["sort", "words", "typo", "proximity", "attribute", "exactness"]"#).await;
    let base = app.url("");
    let found = async |body: Value| digits(&search_ok(&app.http, &base, body).await);

    let (_, rules) = get_json(&app, "/indexes/offers/settings/ranking-rules").await;
    assert_eq!(
        rules,
        json!([
            "sort",
            "words",
            "typo",
            "proximity",
            "attribute",
            "exactness"
        ])
    );
    // By price whatever the words: 7, with a typo, first (with the shipped rules it
    // is last, see the proximity test).
    assert_eq!(
        found(json!({ "q": "red lipstick ", "sort": ["price:desc"] })).await,
        [7, 6, 5, 4, 3, 2, 1]
    );
    // `red` in the name (1, 2, 3, 7) outranks the vendor (4) and the description (5,
    // 6) under the shipped rules, whatever the price; here the price decides.
    assert_eq!(
        found(json!({ "q": "red ", "sort": ["price:asc"] })).await,
        [1, 2, 3, 4, 5, 6, 7]
    );
    // Without a sort in the search, the rule has nothing to order by: relevance.
    assert_eq!(
        found(json!({ "q": "red lipstick " })).await,
        [3, 5, 2, 1, 4, 6, 7]
    );
    let body = search_ok(
        &app.http,
        &base,
        json!({ "q": "red lipstick ", "sort": ["price:desc"], "limit": 1, "showRankingScoreDetails": true }),
    )
    .await;
    let details = &body["hits"][0]["_rankingScoreDetails"];
    assert_eq!(details["price:desc"], json!({ "order": 0, "value": 7000 }));
    assert_eq!(details["words"]["order"], 1);
    assert_eq!(details["exactness"]["order"], 5);
    app.stop().await;
}

/// A subset leaves its other rules out, and the order of the rules listed decides.
/// Under `q: "red lipstick "`, with typo and proximity left out:
/// - attribute (name 3, vendor 2, description 1, summed over the two words): 1, 2, 3
///   and 7 hold both words in the name (6), 4 one in the vendor (5), 6 one in the
///   description (4), 5 both there (2);
/// - exactness: every offer matched both words as typed but 7 (`lipsticks`, a typo).
#[tokio::test]
async fn ranking_rules_listed_as_a_subset_rank_by_those_rules_in_their_order() {
    let q = json!({ "q": "red lipstick " });
    let (_db, app, _dir) = spawn_ranking(r#"["words", "attribute", "exactness"]"#).await;
    let base = app.url("");
    // Attribute first: 7 ties 1, 2 and 3 on it, and exactness then puts it after
    // them; its typo counts for nothing, and neither do the words' distances (3, the
    // words adjacent, no longer comes first: the id orders 1, 2, 3).
    assert_eq!(
        digits(&search_ok(&app.http, &base, q.clone()).await),
        [1, 2, 3, 7, 4, 6, 5]
    );
    // `sort` is not listed: a search may not sort (Meilisearch's error).
    let (status, error) = post_json(
        &app,
        "/indexes/offers/search",
        json!({ "q": "red", "sort": ["price:asc"] }),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(error["code"], "invalid_search_sort");
    assert_eq!(
        error["message"],
        "You must specify where `sort` is listed in the rankingRules setting to use the sort parameter at search time."
    );
    let body = search_ok(
        &app.http,
        &base,
        json!({ "q": "red lipstick ", "limit": 1, "showRankingScoreDetails": true }),
    )
    .await;
    let details = body["hits"][0]["_rankingScoreDetails"]
        .as_object()
        .unwrap()
        .clone();
    let keys: Vec<&str> = details.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 3, "{details:?}");
    assert_eq!(details["attribute"]["order"], 1);
    assert_eq!(details["exactness"]["order"], 2);
    app.stop().await;

    // Exactness before attribute: 7 falls below every offer matched as typed.
    let (_db, app, _dir) = spawn_ranking(r#"["words", "exactness", "attribute"]"#).await;
    assert_eq!(
        digits(&search_ok(&app.http, &app.url(""), q).await),
        [1, 2, 3, 4, 6, 5, 7]
    );
    app.stop().await;
}
