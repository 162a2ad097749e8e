//! The search API against a running daemon and a real PostgreSQL mirror: what lands in
//! the mirror becomes searchable, relevance (typos, prefixes, synonyms, weights), and
//! filters, facets, sort and pagination checked against a brute-force SQL evaluation
//! of the same rows.

use crate::common;
use crate::search_support;

use std::collections::{BTreeMap, BTreeSet};

use common::{TestApp, TestDb};
use search_support::*;
use serde_json::{Value, json};
use sqlx::PgPool;

#[tokio::test]
async fn offers_that_land_in_the_mirror_become_searchable_and_hidden_ones_never_do() {
    let (_db, app, offers) = serve_catalog(|_| {}).await;
    let base = app.url("");

    let (status, body) = search(&app.http, &base, json!({ "q": "merino wool sweater" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body)[0], 1_001_900, "{body}");
    let hit = &body["hits"][0];
    assert_eq!(hit["name"], "Merino Wool Sweater");
    assert_eq!(
        hit["description"], "The Merino Wool Sweater.",
        "HTML stripped"
    );
    assert_eq!(hit["gtins"][0], "0000010019000");
    assert_eq!(hit["collections"], json!(["Summer"]));
    assert!(body["processingTimeMs"].is_u64());

    // Every shown offer is findable by id; no hidden one ever is.
    let (_, all) = search(
        &app.http,
        &base,
        json!({ "limit": 1000, "attributesToRetrieve": ["id"] }),
    )
    .await;
    let found: BTreeSet<i64> = ids(&all).into_iter().collect();
    let shown: BTreeSet<i64> = offers
        .iter()
        .filter(|offer| offer.shown())
        .map(|offer| offer.id)
        .collect();
    assert_eq!(found, shown);
    assert!(
        offers
            .iter()
            .any(|offer| !offer.shown() && offer.merchant_id != DISABLED_MERCHANT)
    );

    // A new offer written and published later appears; a removed one disappears.
    let pool = &app.pool;
    let mut new = special_offers()[0].clone();
    new.id = 1_001_990;
    new.name = "Quokka Lamp".into();
    write_offers(pool, &[new]).await;
    let mut gone = offers
        .iter()
        .find(|offer| offer.shown() && offer.merchant_id == 1002)
        .unwrap()
        .clone();
    gone.removed = true;
    write_offers(pool, std::slice::from_ref(&gone)).await;
    publish(pool, 1001, Some(vec![1_001_990])).await;
    publish(pool, 1002, Some(vec![gone.id])).await;
    let appeared = common::eventually(std::time::Duration::from_secs(10), || async {
        let (_, body) = search(&app.http, &base, json!({ "q": "quokka" })).await;
        ids(&body) == [1_001_990]
    })
    .await;
    assert!(appeared, "the new offer never became searchable");
    let removed = common::eventually(std::time::Duration::from_secs(10), || async {
        let (_, body) = search(
            &app.http,
            &base,
            json!({ "filter": format!("id = {}", gone.id) }),
        )
        .await;
        body["estimatedTotalHits"] == 0
    })
    .await;
    assert!(removed, "the removed offer stayed searchable");

    let (_, stats) = get_json(&app, "/indexes/offers/stats").await;
    assert_eq!(stats["numberOfDocuments"], json!(shown.len()));
    let (_, info) = get_json(&app, "/indexes/offers").await;
    assert_eq!(info["primaryKey"], "id");
    app.stop().await;
}

#[tokio::test]
async fn typo_prefix_synonym_and_weighted_queries_find_their_targets() {
    let (_db, app, _) = serve_catalog(|_| {}).await;
    let base = app.url("");
    let first = |body: &Value| {
        body["hits"][0]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    // One typo in a 7-letter word (transposition), two in a 9+ letter word.
    let (_, body) = search(&app.http, &base, json!({ "q": "merino sweatre" })).await;
    assert_eq!(first(&body), "Merino Wool Sweater", "{body}");
    let (_, body) = search(&app.http, &base, json!({ "q": "northwnid parka" })).await;
    assert_eq!(first(&body), "Northwind Parka", "{body}");
    // No typo allowed under 5 letters.
    let (_, body) = search(&app.http, &base, json!({ "q": "wlol " })).await;
    assert_eq!(body["estimatedTotalHits"], 0, "{body}");

    // Search as you type: the last word is a prefix.
    let (_, body) = search(&app.http, &base, json!({ "q": "trail backp" })).await;
    assert_eq!(first(&body), "Trail Backpack", "{body}");
    let (_, body) = search(&app.http, &base, json!({ "q": "zeph" })).await;
    assert_eq!(ids(&body), [1_001_904]);

    // Synonyms from index/synonyms.json: jumper → sweater.
    let (_, body) = search(&app.http, &base, json!({ "q": "merino jumper" })).await;
    assert_eq!(first(&body), "Merino Wool Sweater", "{body}");

    // Exact matches rank above typo matches: every "Cotton ..." comes before "Cotten Beanie".
    let (_, body) = search(
        &app.http,
        &base,
        json!({ "q": "cotton", "limit": 500, "attributesToRetrieve": ["name"] }),
    )
    .await;
    let names: Vec<String> = body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["name"].as_str().unwrap().to_string())
        .collect();
    let beanie = names
        .iter()
        .position(|name| name == "Cotten Beanie")
        .expect("typo match found");
    assert!(
        names[..beanie].iter().all(|name| name.contains("Cotton")),
        "{names:?}"
    );
    assert!(beanie > 0);

    // Field weights: the name match ranks above vendor matches.
    let (_, body) = search(&app.http, &base, json!({ "q": "northwind" })).await;
    assert_eq!(first(&body), "Northwind Parka", "{body}");
    assert!(
        body["estimatedTotalHits"].as_u64().unwrap() > 10,
        "vendor matches found too"
    );

    // Stop words are ignored, and matchingStrategy `all` needs every word.
    let (_, with_stop) = search(&app.http, &base, json!({ "q": "the merino sweater" })).await;
    assert_eq!(first(&with_stop), "Merino Wool Sweater");
    let (_, all) = search(
        &app.http,
        &base,
        json!({ "q": "merino zephyr", "matchingStrategy": "all" }),
    )
    .await;
    assert_eq!(all["estimatedTotalHits"], 0);
    let (_, last) = search(&app.http, &base, json!({ "q": "merino zephyr" })).await;
    assert_eq!(ids(&last), [1_001_900], "`last` drops the last word");

    // Highlighting and cropping.
    let (_, body) = search(
        &app.http,
        &base,
        json!({
            "q": "merino",
            "attributesToHighlight": ["name"],
            "highlightPreTag": "[",
            "highlightPostTag": "]",
            "attributesToCrop": ["description:2"],
        }),
    )
    .await;
    let formatted = &body["hits"][0]["_formatted"];
    assert_eq!(formatted["name"], "[Merino] Wool Sweater", "{body}");
    assert_eq!(formatted["description"], "…Merino Wool…");
    assert_eq!(
        formatted["id"], "1001900",
        "numbers are strings in _formatted"
    );
    app.stop().await;
}

/// Filters in Meilisearch's grammar and the same condition in SQL over the mirror.
const FILTER_CASES: &[(&str, &str)] = &[
    ("merchant_id = 1002", "o.merchant_id = 1002"),
    ("price 1000 TO 3000", "o.min_price BETWEEN 1000 AND 3000"),
    (
        "vendor IN ['Blue Fox', acme] AND available = true",
        "lower(o.vendor) IN ('blue fox', 'acme') AND o.available",
    ),
    (
        "NOT tags = sale OR category = Shoes",
        "NOT ('sale' = ANY(o.tags)) OR o.category IS NOT DISTINCT FROM 'Shoes'",
    ),
    (
        "vendor IS NULL OR min_price IS NULL",
        "o.vendor IS NULL OR o.min_price IS NULL",
    ),
    (
        "collections = Winter AND merchant_id != 1001",
        "o.offer_id IN (SELECT co.offer_id FROM collection_offers co JOIN collections c USING (collection_id) WHERE c.name = 'Winter') AND o.merchant_id <> 1001",
    ),
    (
        "date_last_modified > 1700100000 AND (status = unavailable OR tags IS EMPTY)",
        "extract(epoch FROM o.date_last_modified) > 1700100000 AND (o.status = 'UNAVAILABLE' OR o.tags = '{}')",
    ),
    (
        "tags NOT IN [new, eco] AND max_price <= 4000",
        "NOT (o.tags && ARRAY['new', 'eco']) AND o.max_price <= 4000",
    ),
];

async fn sql_ids(pool: &PgPool, condition: &str, order: &str) -> Vec<i64> {
    let sql = format!("SELECT o.offer_id {SHOWN} AND ({condition}) ORDER BY {order}");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
        .unwrap()
}

fn distribution(body: &Value, facet: &str) -> BTreeMap<String, i64> {
    body["facetDistribution"][facet]
        .as_object()
        .map(|values| {
            values
                .iter()
                .map(|(key, count)| (key.clone(), count.as_i64().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn filters_facets_sort_and_pagination_match_a_brute_force_evaluation_of_the_mirror() {
    let (_db, app, _) = serve_catalog(|_| {}).await;
    let base = app.url("");
    let pool = &app.pool;
    let mut filters: Vec<(Value, String)> = FILTER_CASES
        .iter()
        .map(|(meili, sql)| (json!(meili), sql.to_string()))
        .collect();
    filters.push((
        json!([["tags = eco", "tags = limited"], "max_price < 5000"]),
        "('eco' = ANY(o.tags) OR 'limited' = ANY(o.tags)) AND o.max_price < 5000".into(),
    ));
    filters.push((json!(null), "true".into()));

    for (filter, condition) in &filters {
        // limit/offset pages, sorted by price (missing prices last), ties by id.
        let expected = sql_ids(pool, condition, "o.min_price ASC NULLS LAST, o.offer_id").await;
        assert!(!expected.is_empty(), "case selects nothing: {filter}");
        let mut paged = Vec::new();
        for page in 0..expected.len().div_ceil(7).min(4) {
            let (status, body) = search(
                &app.http,
                &base,
                json!({ "filter": filter, "sort": ["price:asc"], "limit": 7, "offset": page * 7 }),
            )
            .await;
            assert_eq!(status, 200, "{filter}: {body}");
            assert_eq!(
                body["estimatedTotalHits"],
                json!(expected.len()),
                "{filter}"
            );
            paged.extend(ids(&body));
        }
        assert_eq!(paged, expected[..paged.len()], "{filter}");

        // page/hitsPerPage, sorted by date descending.
        let expected = sql_ids(
            pool,
            condition,
            "o.date_last_modified DESC NULLS LAST, o.offer_id",
        )
        .await;
        let (_, body) =
            search(&app.http, &base, json!({ "filter": filter, "sort": ["date_last_modified:desc"], "hitsPerPage": 5, "page": 2 })).await;
        assert_eq!(body["totalHits"], json!(expected.len()), "{filter}");
        assert_eq!(
            body["totalPages"],
            json!(expected.len().div_ceil(5)),
            "{filter}"
        );
        assert_eq!(
            ids(&body),
            expected.iter().skip(5).take(5).copied().collect::<Vec<_>>(),
            "{filter}"
        );

        // Facets and facet stats.
        let (_, body) = search(
            &app.http,
            &base,
            json!({ "filter": filter, "limit": 0, "facets": ["vendor", "tags", "merchant_id", "price"] }),
        )
        .await;
        assert_eq!(
            distribution(&body, "vendor"),
            sql_counts(pool, condition, "o.vendor").await,
            "{filter}"
        );
        assert_eq!(
            distribution(&body, "tags"),
            sql_counts(pool, condition, "unnest(o.tags)").await,
            "{filter}"
        );
        assert_eq!(
            distribution(&body, "merchant_id"),
            sql_counts(pool, condition, "o.merchant_id::text").await,
            "{filter}"
        );
        let (min, max): (Option<i64>, Option<i64>) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT min(o.min_price), max(o.min_price) {SHOWN} AND ({condition})"
        )))
        .fetch_one(pool)
        .await
        .unwrap();
        if let (Some(min), Some(max)) = (min, max) {
            assert_eq!(
                body["facetStats"]["price"],
                json!({ "min": min, "max": max }),
                "{filter}"
            );
        }

        // A word query with the filter: the offers whose name or description has a word
        // starting with "wool" (the last word is a prefix).
        let expected: BTreeSet<i64> = sql_ids(
            pool,
            &format!("({condition}) AND (o.name ~* '\\mwool' OR o.html_description ~* '\\mwool')"),
            "o.offer_id",
        )
        .await
        .into_iter()
        .collect();
        let (_, body) = search(
            &app.http,
            &base,
            json!({ "q": "wool", "filter": filter, "limit": 1000 }),
        )
        .await;
        assert_eq!(
            ids(&body).into_iter().collect::<BTreeSet<_>>(),
            expected,
            "{filter}"
        );
    }
    app.stop().await;
}

/// `facetHits` as Meilisearch writes them under the shipped `sortFacetValuesBy`
/// (`alpha`): by value.
fn facet_hits(counts: BTreeMap<String, i64>) -> Value {
    hits_as_json(counts.into_iter().collect())
}

/// (value, count) pairs in `sortFacetValuesBy: count` order: most frequent first,
/// equal counts greater value first (as milli lists them).
fn by_count(counts: BTreeMap<String, i64>) -> Vec<(String, i64)> {
    let mut hits: Vec<(String, i64)> = counts.into_iter().collect();
    hits.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    hits
}

fn hits_as_json(hits: Vec<(String, i64)>) -> Value {
    Value::Array(
        hits.into_iter()
            .map(|(value, count)| json!({ "value": value, "count": count }))
            .collect(),
    )
}

#[tokio::test]
async fn facet_search_reads_meilisearch_parameters_and_ignores_instantsearch_extras() {
    let (_db, app, _) = serve_catalog(|_| {}).await;
    let pool = &app.pool;
    let wool = "(o.name ~* '\\mwool' OR o.html_description ~* '\\mwool')";
    // What InstantSearch's searchable refinementList sends besides the facet search's
    // own fields (instant-meilisearch 0.31): the page's search parameters.
    let instantsearch = json!({
        "attributesToHighlight": ["*"], "highlightPreTag": "__ais-highlight__",
        "highlightPostTag": "__/ais-highlight__", "limit": 10, "offset": 0,
        "attributesToSnippet": [], "facets": ["vendor"], "sort": [],
    });
    let with_extras = |fields: Value| {
        let mut body = instantsearch.clone();
        for (key, value) in fields.as_object().unwrap() {
            body[key] = value.clone();
        }
        body
    };
    let facet_search = |body: Value| post_json(&app, "/indexes/offers/facet-search", body);

    // q, filter and facetQuery together; the ignored fields change nothing.
    let condition = format!("o.merchant_id = 1002 AND {wool} AND o.vendor ~* '\\mno'");
    let expected = facet_hits(sql_counts(pool, &condition, "o.vendor").await);
    assert_eq!(
        expected.as_array().unwrap().len(),
        1,
        "only Northwind: {expected}"
    );
    let (status, body) = facet_search(with_extras(json!({
        "facetName": "vendor", "facetQuery": "no", "q": "wool", "filter": "merchant_id = 1002",
    })))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["facetHits"], expected, "{body}");
    assert_eq!(body["facetQuery"], "no");
    // exhaustiveFacetCount: the counts are exact either way.
    for exhaustive in [true, false] {
        let (_, again) = facet_search(json!({
            "facetName": "vendor", "facetQuery": "no", "q": "wool",
            "filter": "merchant_id = 1002", "exhaustiveFacetCount": exhaustive,
        }))
        .await;
        assert_eq!(
            again["facetHits"], expected,
            "exhaustiveFacetCount {exhaustive}"
        );
    }
    // No facetQuery: every vendor of the matching offers.
    let (_, body) = facet_search(with_extras(json!({ "facetName": "vendor", "q": "wool" }))).await;
    assert_eq!(
        body["facetHits"],
        facet_hits(sql_counts(pool, wool, "o.vendor").await),
        "{body}"
    );

    // attributesToSearchOn: "northwind" is a vendor and one offer's name.
    let (_, everywhere) = facet_search(json!({ "facetName": "vendor", "q": "northwind" })).await;
    let mut counts = sql_counts(pool, "o.vendor = 'Northwind'", "o.vendor").await;
    counts.insert("Specials".into(), 1);
    assert_eq!(everywhere["facetHits"], facet_hits(counts), "{everywhere}");
    let (_, in_names) = facet_search(json!({
        "facetName": "vendor", "q": "northwind", "attributesToSearchOn": ["name"],
    }))
    .await;
    assert_eq!(
        in_names["facetHits"],
        json!([{ "value": "Specials", "count": 1 }])
    );
    let (_, in_descriptions) = facet_search(json!({
        "facetName": "category", "q": "parka", "attributesToSearchOn": ["description"],
    }))
    .await;
    assert_eq!(
        in_descriptions["facetHits"],
        json!([{ "value": "Featured", "count": 1 }])
    );
    let (_, in_codes) = facet_search(json!({
        "facetName": "category", "q": "parka", "attributesToSearchOn": ["gtins", "eans"],
    }))
    .await;
    assert_eq!(in_codes["facetHits"], json!([]), "{in_codes}");
    // Attributes that share a text field are searched together (README): the SKU
    // names ("Northwind Parka size S") are in the field that also holds the tags.
    let (_, in_tags) = facet_search(json!({
        "facetName": "category", "q": "parka", "attributesToSearchOn": ["tags"],
    }))
    .await;
    assert_eq!(
        in_tags["facetHits"],
        json!([{ "value": "Featured", "count": 1 }])
    );

    // matchingStrategy: `all` needs both words, `last` drops the last one.
    let (_, all) = facet_search(json!({
        "facetName": "vendor", "q": "merino zephyr", "matchingStrategy": "all",
    }))
    .await;
    assert_eq!(all["facetHits"], json!([]));
    let (_, last) = facet_search(json!({ "facetName": "vendor", "q": "merino zephyr" })).await;
    assert_eq!(
        last["facetHits"],
        json!([{ "value": "Specials", "count": 1 }])
    );
    app.stop().await;
}

#[tokio::test]
async fn documents_settings_stats_and_version_answer_like_meilisearch() {
    let (_db, app, offers) = serve_catalog(|_| {}).await;
    let pool = &app.pool;
    let all_ids = sql_ids(pool, "true", "o.offer_id").await;
    let result_ids = |body: &Value| -> Vec<i64> {
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|document| document["id"].as_i64().unwrap())
            .collect()
    };

    // A page, in offer id order, with only the fields asked for.
    let (status, body) = get_json(
        &app,
        "/indexes/offers/documents?limit=5&offset=3&fields=id,name",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(result_ids(&body), all_ids[3..8]);
    assert_eq!(
        (&body["offset"], &body["limit"], &body["total"]),
        (&json!(3), &json!(5), &json!(all_ids.len()))
    );
    for document in body["results"].as_array().unwrap() {
        let keys: Vec<&String> = document.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["id", "name"], "{document}");
    }
    // A filter, and a limit beyond the bound (cut, and the answer says so).
    let (_, body) = get_json(
        &app,
        "/indexes/offers/documents?filter=merchant_id%20%3D%201002%20AND%20tags%20%3D%20eco&limit=5000",
    )
    .await;
    let expected = sql_ids(
        pool,
        "o.merchant_id = 1002 AND 'eco' = ANY(o.tags)",
        "o.offer_id",
    )
    .await;
    assert_eq!(result_ids(&body), expected);
    assert_eq!(body["total"], json!(expected.len()));
    assert_eq!(body["limit"], 1000);
    // POST fetch: filter array, ids (a hidden offer and a non-id among them), fields.
    let hidden = offers.iter().find(|offer| !offer.shown()).unwrap().id;
    let asked: Vec<Value> = all_ids
        .iter()
        .step_by(7)
        .map(|id| json!(id))
        .chain([json!(hidden), json!("not-an-id")])
        .collect();
    let (status, body) = post_json(
        &app,
        "/indexes/offers/documents/fetch",
        json!({ "filter": [["vendor = Acme", "vendor = Northwind"], "available = true"], "ids": asked, "fields": ["id", "vendor"], "limit": 100 }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let step_ids: Vec<String> = all_ids.iter().step_by(7).map(i64::to_string).collect();
    let expected = sql_ids(
        pool,
        &format!(
            "o.vendor IN ('Acme', 'Northwind') AND o.available AND o.offer_id IN ({})",
            step_ids.join(", ")
        ),
        "o.offer_id",
    )
    .await;
    assert!(!expected.is_empty());
    assert_eq!(result_ids(&body), expected);
    assert_eq!(body["total"], json!(expected.len()));

    // One document: the stored offer, as search returns it; fields; 404s.
    let (status, document) = get_json(&app, "/indexes/offers/documents/1001900").await;
    assert_eq!(status, 200);
    let (_, hit) = search(&app.http, &app.url(""), json!({ "filter": "id = 1001900" })).await;
    assert_eq!(document, hit["hits"][0]);
    let (_, document) =
        get_json(&app, "/indexes/offers/documents/1001900?fields=name,vendor").await;
    assert_eq!(
        document,
        json!({ "name": "Merino Wool Sweater", "vendor": "Specials" })
    );
    for id in [hidden.to_string(), "abc".into(), "99999999".into()] {
        let (status, body) = get_json(&app, &format!("/indexes/offers/documents/{id}")).await;
        assert_eq!(status, 404, "{id}");
        assert_eq!(body["code"], "document_not_found", "{id}: {body}");
        assert_eq!(body["message"], format!("Document `{id}` not found."));
    }

    // Settings: what the daemon uses (index/ and config/default.toml).
    let (status, settings) = get_json(&app, "/indexes/offers/settings").await;
    assert_eq!(status, 200);
    assert_eq!(
        settings["rankingRules"],
        json!([
            "words",
            "typo",
            "proximity",
            "attribute",
            "sort",
            "exactness"
        ])
    );
    assert_eq!(settings["searchableAttributes"][0], "name");
    assert_eq!(
        settings["searchableAttributes"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
        "description"
    );
    assert_eq!(settings["synonyms"]["jumper"], json!(["sweater"]));
    assert!(
        settings["stopWords"]
            .as_array()
            .unwrap()
            .contains(&json!("the"))
    );
    assert_eq!(
        settings["typoTolerance"]["minWordSizeForTypos"],
        json!({ "oneTypo": 5, "twoTypos": 9 })
    );
    assert_eq!(settings["pagination"], json!({ "maxTotalHits": 1000 }));
    assert_eq!(settings["faceting"]["maxValuesPerFacet"], 100);
    assert!(
        settings["sortableAttributes"]
            .as_array()
            .unwrap()
            .contains(&json!("min_price"))
    );
    assert!(
        settings["filterableAttributes"]
            .as_array()
            .unwrap()
            .contains(&json!("vendor"))
    );
    for (route, field) in [
        ("pagination", "pagination"),
        ("ranking-rules", "rankingRules"),
        ("typo-tolerance", "typoTolerance"),
        ("synonyms", "synonyms"),
        ("displayed-attributes", "displayedAttributes"),
        ("distinct-attribute", "distinctAttribute"),
    ] {
        let (status, value) = get_json(&app, &format!("/indexes/offers/settings/{route}")).await;
        assert_eq!(status, 200, "{route}");
        assert_eq!(value, settings[field], "{route}");
    }
    let (status, body) = get_json(&app, "/indexes/offers/settings/bogus").await;
    assert_eq!(
        (status, &body["code"]),
        (404, &json!("unrecognized_request_url"))
    );

    // The one index, everywhere it is listed.
    let shown = shown_count(&offers);
    let (_, version) = get_json(&app, "/version").await;
    assert_eq!(version["pkgVersion"], "1.16.0");
    assert_eq!(version["catalogMirrorVersion"], env!("CARGO_PKG_VERSION"));
    let (_, stats) = get_json(&app, "/stats").await;
    assert_eq!(
        stats["indexes"]["offers"]["numberOfDocuments"],
        json!(shown)
    );
    assert_eq!(stats["indexes"].as_object().unwrap().len(), 1);
    assert!(stats["databaseSize"].as_u64().unwrap() > 0);
    let (_, indexes) = get_json(&app, "/indexes").await;
    assert_eq!(indexes["total"], 1);
    assert_eq!(indexes["results"][0]["uid"], "offers");
    assert_eq!(indexes["results"][0]["numberOfDocuments"], json!(shown));
    let (_, none) = get_json(&app, "/indexes?offset=1").await;
    assert_eq!(none["results"], json!([]));

    // A trailing slash names the same route, as Meilisearch trims it before routing.
    let (status, slashed) = get_json(&app, "/version/").await;
    assert_eq!((status, &slashed), (200, &version));
    let (status, body) = post_json(&app, "/indexes/offers/search/", json!({ "q": "" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["estimatedTotalHits"], json!(shown));
    let (status, body) = get_json(&app, "/indexes/offers/nope/").await;
    assert_eq!(
        (status, &body["code"]),
        (404, &json!("unrecognized_request_url"))
    );
    app.stop().await;
}

/// A JSON object's entries in the order the answer wrote them (a `Value` map sorts them).
struct Entries<V>(Vec<(String, V)>);

impl<'de, V: serde::Deserialize<'de>> serde::Deserialize<'de> for Entries<V> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<V>(std::marker::PhantomData<V>);
        impl<'de, V: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Entries<V>, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(Visit(std::marker::PhantomData))
    }
}

#[tokio::test]
async fn facet_values_are_listed_in_the_configured_sort_facet_values_by_order() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = include_str!("../../index/relevance.toml");
    std::fs::write(
        dir.path().join("relevance.toml"),
        shipped.replace(
            r#"sort_facet_values_by = { "*" = "alpha" }"#,
            r#"sort_facet_values_by = { "*" = "alpha", vendor = "count" }"#,
        ),
    )
    .unwrap();
    let settings_dir = dir.path().to_path_buf();
    let (_db, app, _) = serve_catalog(move |settings| {
        settings.search.settings_dir = settings_dir;
        // Two values per facet: the order decides which two are listed.
        settings.search.max_values_per_facet = 2;
    })
    .await;
    let pool = app.pool.clone();

    let (_, settings) = get_json(&app, "/indexes/offers/settings/faceting").await;
    assert_eq!(
        settings["sortFacetValuesBy"],
        json!({ "*": "alpha", "vendor": "count" })
    );

    // facetDistribution: the two most frequent vendors, the first two categories by
    // value, each in the answer's own order.
    let response = app
        .http
        .post(app.url("/indexes/offers/search"))
        .json(&json!({ "q": "", "facets": ["vendor", "category"], "limit": 0 }))
        .send()
        .await
        .unwrap();
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "facetDistribution")]
        facet_distribution: Entries<Entries<i64>>,
    }
    let answer: Answer = response.json().await.unwrap();
    let listed: BTreeMap<String, Vec<(String, i64)>> = answer
        .facet_distribution
        .0
        .into_iter()
        .map(|(facet, values)| (facet, values.0))
        .collect();
    let vendors = sql_counts(&pool, "true", "o.vendor").await;
    let expected_vendors = by_count(vendors.clone());
    let first_by_value: Vec<&String> = vendors.keys().take(2).collect();
    let first_by_count: Vec<&String> = expected_vendors.iter().take(2).map(|(v, _)| v).collect();
    assert_ne!(
        first_by_value, first_by_count,
        "the catalog must tell count order from value order: {expected_vendors:?}"
    );
    assert_eq!(listed["vendor"], expected_vendors[..2]);
    let categories: Vec<(String, i64)> = sql_counts(&pool, "true", "o.category")
        .await
        .into_iter()
        .collect();
    assert!(categories.len() > 2, "{categories:?}");
    assert_eq!(listed["category"], categories[..2]);

    // Facet search follows the same order, and the same cut: as Meilisearch's
    // `perform_facet_search`, at most `maxValuesPerFacet` hits.
    let (status, body) = post_json(
        &app,
        "/indexes/offers/facet-search",
        json!({ "facetName": "vendor" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["facetHits"],
        hits_as_json(expected_vendors[..2].to_vec())
    );
    let (_, body) = post_json(
        &app,
        "/indexes/offers/facet-search",
        json!({ "facetName": "category" }),
    )
    .await;
    assert_eq!(body["facetHits"], hits_as_json(categories[..2].to_vec()));
    app.stop().await;
}

/// An offer of the mirror as `distinct` sees it.
#[derive(Debug, Clone)]
struct DistinctRow {
    id: i64,
    vendor: Option<String>,
    gtins: Vec<String>,
}

/// The storefront's offers with their vendor and GTINs, read from the mirror.
async fn distinct_rows(pool: &PgPool) -> BTreeMap<i64, DistinctRow> {
    let sql = format!(
        "SELECT o.offer_id, o.vendor, ARRAY(SELECT k.gtin FROM skus k WHERE k.offer_id = o.offer_id AND k.gtin <> '') {SHOWN}"
    );
    let rows: Vec<(i64, Option<String>, Vec<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
        .unwrap();
    rows.into_iter()
        .map(|(id, vendor, gtins)| (id, DistinctRow { id, vendor, gtins }))
        .collect()
}

/// Brute force of Meilisearch's rule: walking `rows` in their order, an offer is kept
/// unless it shares a value with one kept before; one without a value is kept.
fn dedupe<'a>(
    rows: impl IntoIterator<Item = &'a DistinctRow>,
    values: impl Fn(&DistinctRow) -> Vec<String>,
) -> Vec<&'a DistinctRow> {
    let mut taken = BTreeSet::new();
    let mut kept = Vec::new();
    for row in rows {
        let own = values(row);
        if own.iter().any(|value| taken.contains(value)) {
            continue;
        }
        taken.extend(own);
        kept.push(row);
    }
    kept
}

fn vendor_counts(rows: &[&DistinctRow]) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for row in rows {
        if let Some(vendor) = &row.vendor {
            *counts.entry(vendor.clone()).or_default() += 1;
        }
    }
    counts
}

#[tokio::test]
async fn distinct_keeps_one_offer_per_product_as_a_brute_force_dedupe_of_the_mirror() {
    let (db, pool) = TestDb::migrated().await;
    let offers = seed(&pool).await;
    // Products sold by several merchants: offer i of 1002 and of 1003 (i divisible by
    // 4) is offer i of 1001, with its vendor and tags and both its GTINs; for i
    // divisible by 8, 1003's carries only the first GTIN and one of its own, so a
    // product's offers share a GTIN without having the same ones. Offers with i % 10
    // = 3 have no GTIN at all (each is its own product).
    let mut shared: Vec<Offer> = Vec::new();
    for merchant in [1002, 1003] {
        for offer in offers.iter().filter(|offer| offer.merchant_id == merchant) {
            let i = offer.id % 1000;
            if i % 4 == 0 {
                let original = offers.iter().find(|o| o.id == 1_001_000 + i).unwrap();
                let mut copy = offer.clone();
                copy.vendor = original.vendor.clone();
                copy.tags = original.tags.clone();
                shared.push(copy);
            }
        }
    }
    write_offers(&pool, &shared).await;
    sqlx::query(
        "UPDATE skus SET gtin = lpad(((1001000 + offer_id % 1000) * 10 + sku_id % 10)::text, 13, '0')
         WHERE merchant_id IN (1002, 1003) AND offer_id % 1000 % 4 = 0
           AND NOT (merchant_id = 1003 AND offer_id % 1000 % 8 = 0 AND sku_id % 10 = 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE skus SET gtin = NULL WHERE offer_id % 1000 % 10 = 3")
        .execute(&pool)
        .await
        .unwrap();
    for merchant in MERCHANTS {
        publish(&pool, merchant, None).await;
    }
    // Searches keep one offer per GTIN unless they name their own `distinct`.
    let dir = tempfile::tempdir().unwrap();
    let shipped = include_str!("../../index/relevance.toml");
    std::fs::write(
        dir.path().join("relevance.toml"),
        shipped.replace(r#"# attribute = "gtins""#, r#"attribute = "gtins""#),
    )
    .unwrap();
    let settings_dir = dir.path().to_path_buf();
    let app = TestApp::builder()
        .configure(move |settings| {
            settings.search.poll_interval_ms = 100;
            settings.search.settings_dir = settings_dir;
        })
        .spawn_on(&db)
        .await;
    let rows = distinct_rows(&pool).await;
    let gtins = |row: &DistinctRow| row.gtins.clone();
    let vendor = |row: &DistinctRow| row.vendor.iter().cloned().collect();
    // The setting dedupes every count: wait with `distinct: "id"` (unique) instead.
    let indexed = common::eventually(std::time::Duration::from_secs(30), || async {
        let (_, body) = post_json(
            &app,
            "/indexes/offers/search",
            json!({ "limit": 0, "distinct": "id" }),
        )
        .await;
        body["estimatedTotalHits"] == json!(rows.len())
    })
    .await;
    assert!(indexed, "the index never held the {} offers", rows.len());

    let (_, body) = get_json(&app, "/indexes/offers/settings/distinct-attribute").await;
    assert_eq!(body, json!("gtins"));

    // Totals and facet counts: one offer per product, whichever order walks them (the
    // catalog is built so that the count cannot depend on it; checked both ways).
    let by_id = dedupe(rows.values(), gtins);
    let by_id_desc = dedupe(rows.values().rev(), gtins);
    assert_eq!(by_id.len(), by_id_desc.len());
    assert_eq!(vendor_counts(&by_id), vendor_counts(&by_id_desc));
    let products = by_id.len();
    assert!(
        products < rows.len() - 20 && products > rows.len() / 2,
        "{products} of {}",
        rows.len()
    );
    let (status, body) = post_json(
        &app,
        "/indexes/offers/search",
        json!({ "facets": ["vendor"], "hitsPerPage": 0 }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalHits"], json!(products), "{body}");
    assert_eq!(distribution(&body, "vendor"), vendor_counts(&by_id));
    // Facet search counts every match, as Meilisearch's does (its candidates are not
    // deduplicated exhaustively).
    let every = sql_counts(&pool, "true", "o.vendor").await;
    assert_ne!(
        every,
        vendor_counts(&by_id),
        "the catalog must tell them apart"
    );
    let (status, body) = post_json(
        &app,
        "/indexes/offers/facet-search",
        json!({ "facetName": "vendor" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Listed by value, the shipped sortFacetValuesBy.
    assert_eq!(body["facetHits"], hits_as_json(every.into_iter().collect()));

    // Hits: in ranking order, an offer sharing a GTIN with a better one is left out.
    // The ranking itself is the daemon's without distinct (`id` is unique, so
    // `distinct: "id"` keeps everything).
    let query = json!({ "sort": ["min_price:desc"], "filter": "merchant_id != 1001" });
    let mut undeduped = query.clone();
    undeduped["distinct"] = json!("id");
    undeduped["limit"] = json!(1000);
    undeduped["attributesToRetrieve"] = json!(["id"]);
    let (status, body) = post_json(&app, "/indexes/offers/search", undeduped).await;
    assert_eq!(status, 200, "{body}");
    let ranked: Vec<&DistinctRow> = ids(&body).iter().map(|id| &rows[id]).collect();
    assert_eq!(body["estimatedTotalHits"], json!(ranked.len()));
    let expected: Vec<i64> = dedupe(ranked.iter().copied(), gtins)
        .iter()
        .map(|row| row.id)
        .collect();
    assert!(expected.len() < ranked.len() - 10, "{expected:?}");
    for (offset, limit) in [(0, 20), (20, 20), (37, 50), (0, 1000)] {
        let mut page = query.clone();
        page["offset"] = json!(offset);
        page["limit"] = json!(limit);
        let (status, body) = post_json(&app, "/indexes/offers/search", page).await;
        assert_eq!(status, 200, "{body}");
        let want: Vec<i64> = expected.iter().skip(offset).take(limit).copied().collect();
        assert_eq!(ids(&body), want, "offset {offset} limit {limit}");
        assert_eq!(body["estimatedTotalHits"], json!(expected.len()));
    }

    // A search's own `distinct` overrides the setting: one offer per vendor, offers
    // without a vendor each kept, in a placeholder search (ranked by id).
    let all_by_id: Vec<&DistinctRow> = rows.values().collect();
    let per_vendor: Vec<i64> = dedupe(all_by_id.iter().copied(), vendor)
        .iter()
        .map(|row| row.id)
        .collect();
    let (status, body) = post_json(
        &app,
        "/indexes/offers/search",
        json!({ "distinct": "vendor", "limit": 1000, "facets": ["vendor"] }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), per_vendor);
    assert!(
        distribution(&body, "vendor")
            .values()
            .all(|count| *count == 1)
    );
    // A number: one offer per merchant, the first of each by id. Few candidates are
    // kept, so the search must widen past its first pass to find the third merchant.
    let (status, body) = post_json(
        &app,
        "/indexes/offers/search",
        json!({ "distinct": "merchant_id", "limit": 5 }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let first_per_merchant: Vec<i64> = dedupe(all_by_id.iter().copied(), |row| {
        vec![(row.id / 1000).to_string()]
    })
    .iter()
    .map(|row| row.id)
    .collect();
    assert_eq!(first_per_merchant.len(), MERCHANTS.len());
    assert_eq!(ids(&body), first_per_merchant);
    assert_eq!(body["estimatedTotalHits"], json!(MERCHANTS.len()));
    // The GET form reads it too.
    let response = app
        .http
        .get(app.url("/indexes/offers/search?distinct=vendor&limit=1000"))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(ids(&body), per_vendor);

    // Only a filterable attribute may be distinct, and it must be a string.
    for (distinct, needle) in [
        (json!("name"), "`name` is not filterable"),
        (json!(3), "a string"),
    ] {
        let (status, body) = post_json(
            &app,
            "/indexes/offers/search",
            json!({ "distinct": distinct }),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["code"], "invalid_search_distinct", "{body}");
        assert!(body["message"].as_str().unwrap().contains(needle), "{body}");
    }
    app.stop().await;
}
