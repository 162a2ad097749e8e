//! Bad input gets a 4xx in Meilisearch's error shape, never a 500 (DESIGN invariant 8),
//! and search keys, restricted keys and tenant tokens limit what each caller sees.

use crate::common;
use crate::search_support;

use catalog_mirror::config::RestrictedKeySettings;
use catalog_mirror::config::Secret;
use catalog_mirror::search::auth::{Hs, sign_tenant_token, sign_tenant_token_with};
use common::TestApp;
use rand::Rng;
use search_support::*;
use serde_json::{Value, json};

struct Case {
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn post(path: &'static str, body: Value, status: u16, code: &'static str) -> Case {
    Case {
        method: "POST",
        path,
        content_type: Some("application/json"),
        body: body.to_string().into_bytes(),
        status,
        code,
    }
}

fn search_case(body: Value, code: &'static str) -> Case {
    post("/indexes/offers/search", body, 400, code)
}

async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app.http.request(method.clone(), app.url(path));
    if method != reqwest::Method::GET {
        request = request.body(body);
    }
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    // Errors too carry the CORS headers: a storefront page must be able to read them.
    assert_eq!(
        response
            .headers()
            .get("access-control-allow-origin")
            .map(|value| value.to_str().unwrap()),
        Some("*"),
        "{method} {path} answered {status} without CORS headers"
    );
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn assert_meilisearch_error(body: &Value, code: &str, context: &str) {
    assert_eq!(body["code"], code, "{context}: {body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|message| !message.is_empty()),
        "{context}: {body}"
    );
    assert!(
        ["invalid_request", "auth"].contains(&body["type"].as_str().unwrap_or("")),
        "{context}: {body}"
    );
    assert_eq!(
        body["link"],
        format!("https://docs.meilisearch.com/errors#{code}"),
        "{context}"
    );
}

#[tokio::test]
async fn malformed_requests_get_meilisearch_errors_with_the_right_status() {
    let (_db, app, _) = serve_catalog(|_| {}).await;
    let deep = format!("{}a = 1{}", "(".repeat(500), ")".repeat(500));
    let mut cases = vec![
        Case {
            content_type: None,
            ..post(
                "/indexes/offers/search",
                json!({}),
                415,
                "missing_content_type",
            )
        },
        Case {
            content_type: Some("text/plain"),
            ..post(
                "/indexes/offers/search",
                json!({}),
                415,
                "invalid_content_type",
            )
        },
        Case {
            body: b"{\"q\": ".to_vec(),
            ..post(
                "/indexes/offers/search",
                json!({}),
                400,
                "malformed_payload",
            )
        },
        Case {
            body: Vec::new(),
            ..post("/indexes/offers/search", json!({}), 400, "missing_payload")
        },
        Case {
            body: vec![b' '; 2 * 1024 * 1024],
            ..post(
                "/indexes/offers/search",
                json!({}),
                413,
                "payload_too_large",
            )
        },
        search_case(json!([]), "bad_request"),
        search_case(json!({ "q": 1 }), "invalid_search_q"),
        search_case(json!({ "limit": -1 }), "invalid_search_limit"),
        search_case(json!({ "limit": "ten" }), "invalid_search_limit"),
        search_case(json!({ "offset": 1.5 }), "invalid_search_offset"),
        search_case(json!({ "page": "2" }), "invalid_search_page"),
        search_case(json!({ "hitsPerPage": -3 }), "invalid_search_hits_per_page"),
        search_case(json!({ "filter": "price >" }), "invalid_search_filter"),
        search_case(
            json!({ "filter": "description = x" }),
            "invalid_search_filter",
        ),
        search_case(
            json!({ "filter": "vendor = 'unclosed" }),
            "invalid_search_filter",
        ),
        search_case(json!({ "filter": 3 }), "invalid_search_filter"),
        search_case(
            json!({ "filter": [[["vendor = a"]]] }),
            "invalid_search_filter",
        ),
        search_case(json!({ "filter": deep }), "invalid_search_filter"),
        search_case(
            json!({ "filter": "_geoRadius(45.4, 9.1, 2000)" }),
            "invalid_search_filter",
        ),
        search_case(json!({ "sort": ["price"] }), "invalid_search_sort"),
        search_case(
            json!({ "sort": ["description:asc"] }),
            "invalid_search_sort",
        ),
        search_case(json!({ "sort": ["tags:asc"] }), "invalid_search_sort"),
        search_case(json!({ "sort": "price:asc" }), "invalid_search_sort"),
        // Five valid criteria: one more than a search may sort by.
        search_case(
            json!({ "sort": ["price:asc", "max_price:desc", "date_last_modified:desc",
                             "merchant_id:asc", "id:asc"] }),
            "invalid_search_sort",
        ),
        // A valid filter one byte over the 64 KiB a filter may take.
        search_case(
            json!({ "filter": format!("vendor = \"{}\"", "a".repeat(64 * 1024 - 10)) }),
            "invalid_search_filter",
        ),
        search_case(
            json!({ "facets": ["description"] }),
            "invalid_search_facets",
        ),
        search_case(json!({ "facets": "vendor" }), "invalid_search_facets"),
        search_case(
            json!({ "attributesToRetrieve": "name" }),
            "invalid_search_attributes_to_retrieve",
        ),
        search_case(
            json!({ "attributesToHighlight": [1] }),
            "invalid_search_attributes_to_highlight",
        ),
        search_case(
            json!({ "attributesToCrop": ["description:x"] }),
            "invalid_search_attributes_to_crop",
        ),
        search_case(json!({ "cropLength": -1 }), "invalid_search_crop_length"),
        search_case(
            json!({ "highlightPreTag": 1 }),
            "invalid_search_highlight_pre_tag",
        ),
        search_case(
            json!({ "matchingStrategy": "some" }),
            "invalid_search_matching_strategy",
        ),
        search_case(
            json!({ "showRankingScore": "yes" }),
            "invalid_search_show_ranking_score",
        ),
        search_case(
            json!({ "rankingScoreThreshold": 42 }),
            "invalid_search_ranking_score_threshold",
        ),
        search_case(
            json!({ "rankingScoreThreshold": "high" }),
            "invalid_search_ranking_score_threshold",
        ),
        search_case(json!({ "unknownField": 1 }), "bad_request"),
        post("/indexes/movies/search", json!({}), 404, "index_not_found"),
        post(
            "/multi-search",
            json!({ "queries": [{ "indexUid": "offers" }, { "indexUid": "offers", "limit": "x" }] }),
            400,
            "invalid_search_limit",
        ),
        post(
            "/multi-search",
            json!({ "queries": [{ "q": "x" }] }),
            400,
            "missing_index_uid",
        ),
        post(
            "/multi-search",
            json!({ "queries": [{ "indexUid": "movies" }] }),
            404,
            "index_not_found",
        ),
        post("/multi-search", json!({ "queries": 3 }), 400, "bad_request"),
        post(
            "/multi-search",
            json!({ "queries": [], "federation": {} }),
            400,
            "bad_request",
        ),
        post(
            "/indexes/offers/facet-search",
            json!({ "facetQuery": "a" }),
            400,
            "missing_facet_search_facet_name",
        ),
        post(
            "/indexes/offers/facet-search",
            json!({ "facetName": "description" }),
            400,
            "invalid_facet_search_facet_name",
        ),
        post(
            "/indexes/offers/facet-search",
            json!({ "facetName": "vendor", "filter": "(" }),
            400,
            "invalid_search_filter",
        ),
    ];
    for (path, code) in [
        ("/indexes/offers/search?limit=abc", "invalid_search_limit"),
        (
            "/indexes/offers/search?filter=price%20%3E",
            "invalid_search_filter",
        ),
        ("/indexes/offers/search?sort=price", "invalid_search_sort"),
    ] {
        cases.push(Case {
            method: "GET",
            path,
            content_type: None,
            body: Vec::new(),
            status: 400,
            code,
        });
    }
    cases.push(Case {
        method: "GET",
        path: "/indexes/movies",
        content_type: None,
        body: Vec::new(),
        status: 404,
        code: "index_not_found",
    });
    let bodiless =
        |method: &'static str, path: &'static str, status: u16, code: &'static str| Case {
            method,
            path,
            content_type: None,
            body: Vec::new(),
            status,
            code,
        };
    cases.extend([
        // Documents: Meilisearch's codes for each parameter.
        bodiless(
            "GET",
            "/indexes/offers/documents?limit=x",
            400,
            "invalid_document_limit",
        ),
        bodiless(
            "GET",
            "/indexes/offers/documents?offset=-2",
            400,
            "invalid_document_offset",
        ),
        bodiless(
            "GET",
            "/indexes/offers/documents?filter=price%20%3E",
            400,
            "invalid_document_filter",
        ),
        bodiless(
            "GET",
            "/indexes/offers/documents?filter=description%20%3D%20x",
            400,
            "invalid_document_filter",
        ),
        bodiless(
            "GET",
            "/indexes/offers/documents?sort=price:asc",
            400,
            "invalid_document_sort",
        ),
        bodiless(
            "GET",
            "/indexes/offers/documents?q=wool",
            400,
            "bad_request",
        ),
        bodiless(
            "GET",
            "/indexes/offers/documents/1?limit=1",
            400,
            "bad_request",
        ),
        bodiless(
            "GET",
            "/indexes/offers/documents/77",
            404,
            "document_not_found",
        ),
        bodiless("GET", "/indexes/movies/documents", 404, "index_not_found"),
        bodiless("GET", "/indexes/movies/documents/1", 404, "index_not_found"),
        post(
            "/indexes/offers/documents/fetch",
            json!({ "limit": "x" }),
            400,
            "invalid_document_limit",
        ),
        post(
            "/indexes/offers/documents/fetch",
            json!({ "fields": "id" }),
            400,
            "invalid_document_fields",
        ),
        post(
            "/indexes/offers/documents/fetch",
            json!({ "ids": [[1]] }),
            400,
            "invalid_document_ids",
        ),
        post(
            "/indexes/offers/documents/fetch",
            json!({ "filter": "(" }),
            400,
            "invalid_document_filter",
        ),
        post(
            "/indexes/offers/documents/fetch",
            json!({ "q": "x" }),
            400,
            "bad_request",
        ),
        Case {
            body: b"{".to_vec(),
            ..post(
                "/indexes/offers/documents/fetch",
                json!({}),
                400,
                "malformed_payload",
            )
        },
        // Settings and the other read-only routes.
        bodiless("GET", "/indexes/movies/settings", 404, "index_not_found"),
        bodiless(
            "GET",
            "/indexes/movies/settings/synonyms",
            404,
            "index_not_found",
        ),
        bodiless(
            "GET",
            "/indexes/offers/settings/bogus",
            404,
            "unrecognized_request_url",
        ),
        bodiless("GET", "/indexes?limit=x", 400, "invalid_index_limit"),
        // Writes: the mirror is read-only (403, as for a search key in Meilisearch).
        post(
            "/indexes/offers/documents",
            json!([{ "id": 1 }]),
            403,
            "invalid_api_key",
        ),
        bodiless("PUT", "/indexes/offers/documents", 403, "invalid_api_key"),
        bodiless(
            "DELETE",
            "/indexes/offers/documents",
            403,
            "invalid_api_key",
        ),
        bodiless(
            "DELETE",
            "/indexes/offers/documents/1001900",
            403,
            "invalid_api_key",
        ),
        post(
            "/indexes/offers/documents/delete-batch",
            json!([1]),
            403,
            "invalid_api_key",
        ),
        post(
            "/indexes/offers/documents/delete",
            json!({ "filter": "id = 1" }),
            403,
            "invalid_api_key",
        ),
        bodiless("PATCH", "/indexes/offers/settings", 403, "invalid_api_key"),
        bodiless("DELETE", "/indexes/offers/settings", 403, "invalid_api_key"),
        bodiless(
            "PUT",
            "/indexes/offers/settings/synonyms",
            403,
            "invalid_api_key",
        ),
        bodiless(
            "DELETE",
            "/indexes/offers/settings/stop-words",
            403,
            "invalid_api_key",
        ),
        post(
            "/indexes",
            json!({ "uid": "movies" }),
            403,
            "invalid_api_key",
        ),
        bodiless("DELETE", "/indexes/offers", 403, "invalid_api_key"),
        bodiless("PATCH", "/indexes/offers", 403, "invalid_api_key"),
        // Unknown routes and wrong methods.
        bodiless("GET", "/nope", 404, "unrecognized_request_url"),
        bodiless(
            "GET",
            "/indexes/offers/nope",
            404,
            "unrecognized_request_url",
        ),
        bodiless("POST", "/keys", 404, "unrecognized_request_url"),
        bodiless(
            "DELETE",
            "/indexes/offers/search",
            405,
            "method_not_allowed",
        ),
        bodiless("GET", "/multi-search", 405, "method_not_allowed"),
        bodiless(
            "GET",
            "/indexes/offers/facet-search",
            405,
            "method_not_allowed",
        ),
        bodiless("PUT", "/version", 405, "method_not_allowed"),
        bodiless("POST", "/stats", 405, "method_not_allowed"),
        // Facet search checks the fields Meilisearch reads (the others are ignored).
        post(
            "/indexes/offers/facet-search",
            json!({ "facetName": "vendor", "facetQuery": 1 }),
            400,
            "invalid_facet_search_query",
        ),
        post(
            "/indexes/offers/facet-search",
            json!({ "facetName": "vendor", "exhaustiveFacetCount": "yes" }),
            400,
            "invalid_facet_search_exhaustive_facet_count",
        ),
        post(
            "/indexes/offers/facet-search",
            json!({ "facetName": "vendor", "attributesToSearchOn": ["price"] }),
            400,
            "invalid_search_attributes_to_search_on",
        ),
        post(
            "/indexes/offers/facet-search",
            json!({ "facetName": "vendor", "matchingStrategy": 3 }),
            400,
            "invalid_search_matching_strategy",
        ),
    ]);

    for case in cases {
        let context = format!(
            "{} {} {}",
            case.method,
            case.path,
            String::from_utf8_lossy(&case.body[..case.body.len().min(80)])
        );
        let (status, body) = send(&app, case.method, case.path, case.content_type, case.body).await;
        assert_eq!(status, case.status, "{context}: {body}");
        assert_meilisearch_error(&body, case.code, &context);
    }
    let (_, body) = send(&app, "GET", "/nope/x?y=1", None, Vec::new()).await;
    assert_eq!(
        body["message"],
        "Unrecognized request URL (GET: /nope/x). See https://www.meilisearch.com/docs/reference/api/overview"
    );
    // A browser's preflight: any origin, the asked method and headers (Authorization
    // included, which a `*` would not cover), for a day.
    for path in [
        "/indexes/offers/search",
        "/indexes/offers/documents/1",
        "/nope",
    ] {
        let response = app
            .http
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("origin", "https://shop.example")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,x-meilisearch-client",
            )
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|value| value.to_str().unwrap().to_string())
        };
        assert_eq!(
            header("access-control-allow-origin").as_deref(),
            Some("*"),
            "{path}"
        );
        assert_eq!(
            header("access-control-allow-methods").as_deref(),
            Some("POST"),
            "{path}"
        );
        assert_eq!(
            header("access-control-allow-headers").as_deref(),
            Some("authorization,content-type,x-meilisearch-client"),
            "{path}"
        );
        assert_eq!(
            header("access-control-max-age").as_deref(),
            Some("86400"),
            "{path}"
        );
    }
    // A facet search with InstantSearch's extra fields is no error.
    let (status, body) = send(
        &app,
        "POST",
        "/indexes/offers/facet-search",
        Some("application/json"),
        json!({ "facetName": "vendor", "attributesToHighlight": ["*"], "highlightPreTag": "<b>", "limit": 10, "anything": {} })
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = send(
        &app,
        "POST",
        "/multi-search",
        Some("application/json"),
        json!({ "queries": [{ "indexUid": "offers" }, { "indexUid": "offers", "limit": "x" }] })
            .to_string()
            .into_bytes(),
    )
    .await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Inside `.queries[1]`"),
        "{body}"
    );
    app.stop().await;
}

/// A random JSON value of bounded depth.
fn random_value(rng: &mut impl Rng, depth: u32) -> Value {
    match rng.random_range(0..if depth == 0 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.random_bool(0.5)),
        2 => json!(rng.random_range(-5i64..50)),
        3 => json!(rng.random::<f64>() * 100.0),
        4 => {
            let pieces = [
                "price", ">", "10", "AND", "vendor", "=", "'a b", "(", ")", "IN", "[", "]", "NOT",
                "wool", ":asc", "*", "é", "TO",
            ];
            let n = rng.random_range(0..6);
            json!(
                (0..n)
                    .map(|_| pieces[rng.random_range(0..pieces.len())])
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
        5 => Value::Array(
            (0..rng.random_range(0..4))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
        _ => json!({ "k": random_value(rng, depth - 1) }),
    }
}

#[tokio::test]
async fn random_parameters_never_get_a_server_error() {
    let (_db, app, offers) = serve_catalog(|_| {}).await;
    wait_for_count(&app.http, &app.url(""), shown_count(&offers)).await;
    let keys = [
        "q",
        "offset",
        "limit",
        "page",
        "hitsPerPage",
        "filter",
        "facets",
        "sort",
        "attributesToRetrieve",
        "attributesToHighlight",
        "highlightPreTag",
        "highlightPostTag",
        "attributesToCrop",
        "cropLength",
        "cropMarker",
        "matchingStrategy",
        "showRankingScore",
        "bogus",
    ];
    let mut rng = rand::rng();
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..400 {
        let mut body = serde_json::Map::new();
        for _ in 0..rng.random_range(0..5) {
            body.insert(
                keys[rng.random_range(0..keys.len())].to_string(),
                random_value(&mut rng, 2),
            );
        }
        let body = Value::Object(body);
        let (status, response) = send(
            &app,
            "POST",
            "/indexes/offers/search",
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await;
        assert!(
            status == 200 || (400..500).contains(&status),
            "{body} got {status}: {response}"
        );
        if status != 200 {
            assert!(
                response["code"].is_string() && response["link"].is_string(),
                "{body}: {response}"
            );
        }
        *statuses.entry(status).or_insert(0) += 1;
    }
    assert!(
        statuses.len() > 1,
        "both successes and errors exercised: {statuses:?}"
    );
    app.stop().await;
}

const KEY_UID: &str = "5a3b4c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d";

#[tokio::test]
async fn search_keys_restricted_keys_and_tenant_tokens_limit_what_each_caller_sees() {
    let (_db, app, offers) = serve_catalog(|settings| {
        settings.search.api_key = Secret::new("search-key");
        settings.search.api_key_uid = KEY_UID.into();
        settings.search.restricted_keys = vec![RestrictedKeySettings {
            key: Secret::new("merchant-1002-key"),
            filter: "merchant_id = 1002".into(),
        }];
    })
    .await;
    let url = app.url("/indexes/offers/search");
    let ask = |key: Option<String>, body: Value| {
        let http = app.http.clone();
        let url = url.clone();
        async move {
            let mut request = http.post(url).json(&body);
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let merchant_ids = |body: &Value| -> std::collections::BTreeSet<i64> {
        body["facetDistribution"]["merchant_id"]
            .as_object()
            .unwrap()
            .keys()
            .map(|key| key.parse().unwrap())
            .collect()
    };
    let everything = json!({ "limit": 0, "facets": ["merchant_id"] });

    let (status, body) = ask(None, everything.clone()).await;
    assert_eq!(status, 401);
    assert_meilisearch_error(&body, "missing_authorization_header", "no key");
    let (status, body) = ask(Some("wrong".into()), everything.clone()).await;
    assert_eq!(status, 403);
    assert_meilisearch_error(&body, "invalid_api_key", "wrong key");

    let shown = shown_count(&offers);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, body) = ask(Some("search-key".into()), everything.clone()).await;
        assert_eq!(status, 200);
        if body["estimatedTotalHits"] == json!(shown) {
            assert_eq!(merchant_ids(&body), MERCHANTS.into_iter().collect());
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never indexed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // A restricted key sees one merchant, whatever the request's own filter says.
    let (_, body) = ask(Some("merchant-1002-key".into()), everything.clone()).await;
    assert_eq!(merchant_ids(&body), [1002].into());
    let (_, body) = ask(
        Some("merchant-1002-key".into()),
        json!({ "filter": "merchant_id = 1001" }),
    )
    .await;
    assert_eq!(body["estimatedTotalHits"], 0);

    // Tenant tokens signed with the search key, as the SDKs make them.
    let token = |claims: Value| sign_tenant_token("search-key", &claims);
    let tenant = token(
        json!({ "searchRules": { "offers": { "filter": "merchant_id = 1003" } }, "apiKeyUid": KEY_UID, "exp": chrono::Utc::now().timestamp() + 600 }),
    );
    let (_, body) = ask(Some(tenant.clone()), everything.clone()).await;
    assert_eq!(merchant_ids(&body), [1003].into());
    let response = app
        .http
        .post(app.url("/indexes/offers/facet-search"))
        .bearer_auth(&tenant)
        .json(&json!({ "facetName": "merchant_id" }))
        .send()
        .await
        .unwrap();
    let facet_hits: Value = response.json().await.unwrap();
    assert_eq!(
        facet_hits["facetHits"].as_array().unwrap().len(),
        1,
        "{facet_hits}"
    );
    let response = app
        .http
        .post(app.url("/multi-search"))
        .bearer_auth(&tenant)
        .json(&json!({ "queries": [{ "indexUid": "offers", "facets": ["merchant_id"], "limit": 0 }] }))
        .send()
        .await
        .unwrap();
    let multi: Value = response.json().await.unwrap();
    assert_eq!(merchant_ids(&multi["results"][0]), [1003].into());

    for (claims, why) in [
        (
            json!({ "searchRules": ["*"], "apiKeyUid": KEY_UID, "exp": 1 }),
            "expired",
        ),
        (
            json!({ "searchRules": ["movies"], "apiKeyUid": KEY_UID }),
            "other index",
        ),
        (
            json!({ "searchRules": ["*"], "apiKeyUid": "00000000-0000-4000-8000-000000000000" }),
            "other key uid",
        ),
    ] {
        let (status, body) = ask(Some(token(claims)), everything.clone()).await;
        assert_eq!(status, 403, "{why}");
        assert_meilisearch_error(&body, "invalid_api_key", why);
    }
    // HS384 and HS512 too, and index patterns as Meilisearch reads them: the most
    // specific pattern matching `offers` gives the rule.
    let signed = |algorithm: Hs, rules: Value| {
        sign_tenant_token_with(
            algorithm,
            "search-key",
            &json!({ "searchRules": rules, "apiKeyUid": KEY_UID }),
        )
    };
    for (algorithm, rules, merchants) in [
        (
            Hs::Hs384,
            json!({ "offers*": { "filter": "merchant_id = 1002" }, "*": { "filter": "merchant_id = 1001" } }),
            vec![1002],
        ),
        (Hs::Hs512, json!(["*"]), MERCHANTS.to_vec()),
        (Hs::Hs512, json!({ "off*": null }), MERCHANTS.to_vec()),
        (
            Hs::Hs256,
            json!({ "movies": null, "*": { "filter": "merchant_id IN [1001, 1003]" } }),
            vec![1001, 1003],
        ),
    ] {
        let (status, body) = ask(Some(signed(algorithm, rules.clone())), everything.clone()).await;
        assert_eq!(status, 200, "{algorithm:?} {rules}: {body}");
        assert_eq!(
            merchant_ids(&body),
            merchants.into_iter().collect(),
            "{algorithm:?} {rules}"
        );
    }
    let (status, _) = ask(
        Some(signed(Hs::Hs384, json!(["offers_eu*"]))),
        everything.clone(),
    )
    .await;
    assert_eq!(status, 403, "a pattern that does not match offers");

    // Documents follow the same rules: a restricted key and a tenant token read only
    // what they may search, and an offer outside it is not found.
    let get = |key: String, path: String| {
        let http = app.http.clone();
        let url = app.url(&path);
        async move {
            let response = http.get(url).bearer_auth(key).send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let shown_of = |merchant: i64| {
        offers
            .iter()
            .filter(|offer| offer.shown() && offer.merchant_id == merchant)
            .count()
    };
    let (status, body) = get(
        "merchant-1002-key".into(),
        "/indexes/offers/documents?limit=0".into(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], json!(shown_of(1002)));
    let (status, body) = get(tenant.clone(), "/indexes/offers/documents?limit=0".into()).await;
    assert_eq!(
        (status, &body["total"]),
        (200, &json!(shown_of(1003))),
        "{body}"
    );
    let other = offers
        .iter()
        .find(|offer| offer.shown() && offer.merchant_id == 1001)
        .unwrap()
        .id;
    let own = offers
        .iter()
        .find(|offer| offer.shown() && offer.merchant_id == 1002)
        .unwrap()
        .id;
    let (status, body) = get(
        "merchant-1002-key".into(),
        format!("/indexes/offers/documents/{other}"),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_meilisearch_error(&body, "document_not_found", "another merchant's offer");
    let (status, body) = get(
        "merchant-1002-key".into(),
        format!("/indexes/offers/documents/{own}"),
    )
    .await;
    assert_eq!((status, &body["id"]), (200, &json!(own)));
    let (status, body) = get("wrong".into(), format!("/indexes/offers/documents/{own}")).await;
    assert_eq!(status, 403);
    assert_meilisearch_error(&body, "invalid_api_key", "documents with a wrong key");
    let (status, body) = get(
        "search-key".into(),
        "/indexes/offers/settings/pagination".into(),
    )
    .await;
    assert_eq!((status, body), (200, json!({ "maxTotalHits": 1000 })));

    let forged = sign_tenant_token(
        "not-the-key",
        &json!({ "searchRules": ["*"], "apiKeyUid": KEY_UID }),
    );
    assert_eq!(ask(Some(forged), everything).await.0, 403);
    app.stop().await;
}
