//! Every request is bounded (DESIGN invariant 11): each bound listed in the README's
//! Search section answers its documented status and body, and totals and pagination
//! follow Meilisearch's `maxTotalHits` semantics (offset capped at the bound, limit at
//! what is left, totals counting at most the bound, `limit`/`page`/`hitsPerPage`
//! echoed as asked).

use crate::common;
use crate::search_support;

use std::time::{Duration, Instant};

use common::TestApp;
use common::webhook::Delivery;
use search_support::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The ids of every shown offer in ranking order of a placeholder search (offer id).
fn shown_ids(offers: &[Offer]) -> Vec<i64> {
    let mut ids: Vec<i64> = offers
        .iter()
        .filter(|offer| offer.shown())
        .map(|offer| offer.id)
        .collect();
    ids.sort();
    ids
}

fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str, kind: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["type"], kind, "{body}");
    assert_eq!(
        body["link"],
        format!("https://docs.meilisearch.com/errors#{code}"),
        "{body}"
    );
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn offset_limit_and_pages_are_cut_at_max_total_hits_as_meilisearch() {
    let (_db, app, offers) = serve_catalog(|settings| settings.search.max_total_hits = 50).await;
    let base = app.url("");
    let all = shown_ids(&offers);
    assert!(all.len() > 100, "the catalog is well above the cap");

    let (status, body) = search(&app.http, &base, json!({ "limit": 1_000_000_000 })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), all[..50], "the first 50, no more");
    assert_eq!(body["limit"], 1_000_000_000, "the limit is echoed as asked");
    assert_eq!(body["offset"], 0);
    assert_eq!(
        body["estimatedTotalHits"], 50,
        "the total counts at most the cap"
    );

    let (_, body) = search(&app.http, &base, json!({ "offset": 40, "limit": 20 })).await;
    assert_eq!(ids(&body), all[40..50], "the limit is cut to what is left");
    assert_eq!(
        (&body["offset"], &body["limit"], &body["estimatedTotalHits"]),
        (&json!(40), &json!(20), &json!(50))
    );

    let (status, body) = search(&app.http, &base, json!({ "offset": 5000 })).await;
    assert_eq!(status, 200);
    assert!(ids(&body).is_empty());
    assert_eq!(body["offset"], 50, "the offset is capped too");

    let page = |page: u64, per: u64| json!({ "page": page, "hitsPerPage": per });
    let (_, body) = search(&app.http, &base, page(2, 30)).await;
    assert_eq!(ids(&body), all[30..50]);
    assert_eq!(
        [
            &body["page"],
            &body["hitsPerPage"],
            &body["totalHits"],
            &body["totalPages"]
        ],
        [&json!(2), &json!(30), &json!(50), &json!(2)],
        "{body}"
    );
    assert!(body.get("estimatedTotalHits").is_none());
    let (_, body) = search(&app.http, &base, page(3, 30)).await;
    assert!(ids(&body).is_empty(), "past the cap: no hits");
    assert_eq!((&body["page"], &body["totalPages"]), (&json!(3), &json!(2)));
    let (_, body) = search(&app.http, &base, json!({ "hitsPerPage": 0 })).await;
    assert_eq!(
        (&body["totalHits"], &body["totalPages"]),
        (&json!(50), &json!(0))
    );
    let (_, body) = search(&app.http, &base, page(1, 1_000_000_000)).await;
    assert_eq!(ids(&body), all[..50]);
    assert_eq!(body["hitsPerPage"], 1_000_000_000);

    // Below the cap the totals are exact.
    let merchant = MERCHANTS[1];
    let narrow: Vec<i64> = offers
        .iter()
        .filter(|o| o.shown() && o.merchant_id == merchant && o.tags.iter().any(|t| t == "eco"))
        .map(|o| o.id)
        .collect();
    assert!(!narrow.is_empty() && narrow.len() < 50);
    let filter = format!("merchant_id = {merchant} AND tags = eco");
    let (_, body) = search(
        &app.http,
        &base,
        json!({ "filter": filter, "limit": 1_000_000_000 }),
    )
    .await;
    assert_eq!(body["estimatedTotalHits"], json!(narrow.len()));
    let (_, body) = search(
        &app.http,
        &base,
        json!({ "filter": filter, "hitsPerPage": 7 }),
    )
    .await;
    assert_eq!(body["totalHits"], json!(narrow.len()));
    assert_eq!(body["totalPages"], json!(narrow.len().div_ceil(7)));

    // The query string form and multi-search are cut the same way.
    let body: Value = app
        .http
        .get(app.url("/indexes/offers/search?limit=1000000000&offset=45"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&body), all[45..50]);
    let body: Value = app
        .http
        .post(app.url("/multi-search"))
        .json(&json!({ "queries": [
            { "indexUid": "offers", "limit": 1_000_000_000 },
            { "indexUid": "offers", "page": 9, "hitsPerPage": 6 },
        ] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&body["results"][0]), all[..50]);
    assert_eq!(body["results"][0]["estimatedTotalHits"], 50);
    assert_eq!(ids(&body["results"][1]), all[48..50]);
    assert_eq!(body["results"][1]["totalPages"], 9);
    app.stop().await;
}

#[tokio::test]
async fn a_multi_search_takes_at_most_the_configured_number_of_queries() {
    let (_db, app, _offers) =
        serve_catalog(|settings| settings.search.max_queries_per_multi_search = 3).await;
    let queries = |n: usize| json!({ "queries": (0..n).map(|_| json!({ "indexUid": "offers", "limit": 1 })).collect::<Vec<_>>() });
    let send = |body: Value| {
        let app = &app;
        async move {
            let response = app
                .http
                .post(app.url("/multi-search"))
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, body) = send(queries(3)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"].as_array().unwrap().len(), 3);
    let (status, body) = send(queries(400)).await;
    assert_error(status, &body, 400, "bad_request", "invalid_request");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("400 given") && message.contains("at most 3"),
        "{message}"
    );
    app.stop().await;
}

#[tokio::test]
async fn facet_values_are_capped_per_facet() {
    let (_db, app, offers) =
        serve_catalog(|settings| settings.search.max_values_per_facet = 3).await;
    let (status, body) = search(
        &app.http,
        &app.url(""),
        json!({ "limit": 0, "facets": ["id", "vendor", "merchant_id"] }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let distribution = &body["facetDistribution"];
    let first_ids: Vec<String> = shown_ids(&offers)[..3].iter().map(i64::to_string).collect();
    let got: Vec<&String> = distribution["id"].as_object().unwrap().keys().collect();
    assert_eq!(got.len(), 3, "{distribution}");
    let mut got: Vec<i64> = got.iter().map(|id| id.parse().unwrap()).collect();
    got.sort();
    assert_eq!(
        got.iter().map(i64::to_string).collect::<Vec<_>>(),
        first_ids,
        "the first values in order"
    );
    assert_eq!(distribution["merchant_id"].as_object().unwrap().len(), 3);
    assert!(distribution["vendor"].as_object().unwrap().len() <= 3);
    // facetStats still cover every matching document.
    let max_id = shown_ids(&offers).last().copied().unwrap();
    assert_eq!(body["facetStats"]["id"]["max"], json!(max_id));
    app.stop().await;
}

#[tokio::test]
async fn a_long_q_answers_200_searched_with_its_first_ten_words() {
    let (_db, app, _offers) = serve_catalog(|_| {}).await;
    let base = app.url("");
    let first_ten = "merino wool sweater red cotton the jacket blue denim hoodie green";
    let tail: Vec<String> = (0..20_000).map(|i| format!("zq{i}")).collect();
    let long = format!("{first_ten} {}", tail.join(" "));
    assert!(long.len() > 100_000);
    let (status, long_body) = search(&app.http, &base, json!({ "q": long, "limit": 50 })).await;
    assert_eq!(status, 200, "{long_body}");
    assert_eq!(long_body["query"], json!(long), "q is echoed whole");
    // The same ten words ("the" is a stop word and does not count), none being typed.
    let (_, short_body) = search(
        &app.http,
        &base,
        json!({ "q": format!("{first_ten} "), "limit": 50 }),
    )
    .await;
    assert_eq!(ids(&long_body), ids(&short_body));
    assert_eq!(
        long_body["estimatedTotalHits"],
        short_body["estimatedTotalHits"]
    );
    assert_eq!(ids(&long_body)[0], 1_001_900, "Merino Wool Sweater first");
    app.stop().await;
}

#[tokio::test]
async fn highlight_tags_and_crop_markers_are_bounded() {
    let (_db, app, _offers) = serve_catalog(|_| {}).await;
    let base = app.url("");
    let long = "x".repeat(257);
    for (field, code) in [
        ("highlightPreTag", "invalid_search_highlight_pre_tag"),
        ("highlightPostTag", "invalid_search_highlight_post_tag"),
        ("cropMarker", "invalid_search_crop_marker"),
    ] {
        let (status, body) = search(
            &app.http,
            &base,
            json!({ "q": "wool", "attributesToHighlight": ["*"], field: long }),
        )
        .await;
        assert_error(status, &body, 400, code, "invalid_request");
        assert!(
            body["message"].as_str().unwrap().contains("at most 256"),
            "{body}"
        );
    }
    let (status, body) = search(
        &app.http,
        &base,
        json!({ "q": "wool", "attributesToHighlight": ["name"], "highlightPreTag": "y".repeat(256) }),
    )
    .await;
    assert_eq!(status, 200, "256 bytes are accepted: {body}");
    app.stop().await;
}

/// A search that costs a few milliseconds: every hit highlighted, every facet counted.
fn heavy(i: usize) -> Value {
    let q = ["wool", "cotton", "red", "blue"][i % 4];
    json!({
        "q": q,
        "limit": 1000,
        "attributesToHighlight": ["*"],
        "attributesToCrop": ["description:5"],
        "facets": ["*"],
    })
}

#[tokio::test]
async fn a_burst_beyond_the_search_queue_gets_503_with_retry_after() {
    let (_db, app, _offers) = serve_catalog(|settings| {
        settings.search.max_concurrent_searches = 1;
        settings.search.max_queued_searches = 1;
    })
    .await;
    let burst: Vec<_> = (0..48)
        .map(|i| {
            let (http, url) = (app.http.clone(), app.url("/indexes/offers/search"));
            tokio::spawn(async move {
                let response = http.post(url).json(&heavy(i)).send().await.unwrap();
                let status = response.status().as_u16();
                let retry = response.headers().get("retry-after").cloned();
                (status, retry, response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let (mut answered, mut refused) = (0, 0);
    for task in burst {
        let (status, retry, body) = task.await.unwrap();
        match status {
            200 => answered += 1,
            503 => {
                refused += 1;
                assert_error(status, &body, 503, "too_many_search_requests", "system");
                assert_eq!(retry.unwrap(), "1");
                assert!(
                    body["message"]
                        .as_str()
                        .unwrap()
                        .starts_with("Too many search requests running at the same time: 1."),
                    "{body}"
                );
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(answered >= 1, "the first search is served");
    assert!(refused > 0, "48 at once cannot all wait in a queue of 1");
    // Once the burst is over the queue has room again.
    let (status, _) = search(&app.http, &app.url(""), json!({ "q": "wool" })).await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn a_search_past_its_time_limit_gets_an_error_not_a_late_answer() {
    let (_db, app, _offers) = serve_catalog(|settings| {
        settings.search.max_concurrent_searches = 1;
        settings.search.timeout_ms = 10;
    })
    .await;
    let burst: Vec<_> = (0..32)
        .map(|i| {
            let (http, url) = (app.http.clone(), app.url("/indexes/offers/search"));
            tokio::spawn(async move {
                let sent = Instant::now();
                let response = http.post(url).json(&heavy(i)).send().await.unwrap();
                let waited = sent.elapsed();
                let status = response.status().as_u16();
                let retry = response.headers().get("retry-after").cloned();
                (
                    status,
                    retry,
                    waited,
                    response.json::<Value>().await.unwrap(),
                )
            })
        })
        .collect();
    let mut timed_out = 0;
    for task in burst {
        let (status, retry, waited, body) = task.await.unwrap();
        if status == 200 {
            continue;
        }
        if status == 408 {
            // The body itself took longer than 10 ms on a busy machine: also no late answer.
            assert_error(status, &body, 408, "request_timeout", "invalid_request");
            continue;
        }
        assert_error(status, &body, 503, "search_timeout", "system");
        assert_eq!(retry.unwrap(), "1");
        assert!(
            body["message"].as_str().unwrap().contains("10 ms"),
            "{body}"
        );
        assert!(
            waited < Duration::from_secs(2),
            "the error comes at the deadline, not when a thread is free: {waited:?}"
        );
        timed_out += 1;
    }
    assert!(
        timed_out > 0,
        "32 heavy searches on one thread cannot all finish in 10 ms"
    );
    app.stop().await;
}

/// Opens a connection and sends a search's headers and the first bytes of its body,
/// never the rest.
async fn half_sent_search(app: &TestApp) -> TcpStream {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /indexes/offers/search HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"q\":",
        app.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

async fn read_answer(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn requests_in_flight_are_bounded_and_a_body_that_never_arrives_times_out() {
    let (_db, app, _offers) = serve_catalog(|settings| {
        settings.search.max_requests_in_flight = 2;
        settings.search.timeout_ms = 1500;
    })
    .await;
    let base = app.url("");
    let mut slow = vec![half_sent_search(&app).await, half_sent_search(&app).await];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = search(&app.http, &base, json!({ "q": "wool" })).await;
    assert_error(status, &body, 503, "too_many_search_requests", "system");
    assert!(body["message"].as_str().unwrap().contains(": 2."), "{body}");

    // At the deadline the slow ones are answered 408 and their places are free again.
    for stream in &mut slow {
        let answer = read_answer(stream).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }
    let (status, body) = search(&app.http, &base, json!({ "q": "wool" })).await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_read_its_answer_holds_no_search_thread() {
    let (_db, app, _offers) =
        serve_catalog(|settings| settings.search.max_concurrent_searches = 1).await;
    // Searches with large answers whose clients never read a byte of them.
    let mut idle = Vec::new();
    for i in 0..8 {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        let body = heavy(i).to_string();
        let request = format!(
            "POST /indexes/offers/search HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        idle.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..20 {
        let started = Instant::now();
        let (status, _) = search(&app.http, &app.url(""), json!({ "q": "jacket" })).await;
        assert_eq!(status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    drop(idle);
    app.stop().await;
}

#[tokio::test]
async fn event_stream_subscribers_are_bounded() {
    let (_db, app, _offers) =
        serve_catalog(|settings| settings.notifications.max_stream_subscribers = 2).await;
    let open = || app.http.get(app.url("/notifications/stream")).send();
    let first = open().await.unwrap();
    let second = open().await.unwrap();
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let refused = open().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "5");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "too_many_subscribers", "{body}");
    drop(first);
    // The server notices the closed stream at the latest when its next keep-alive
    // comment (every 15 s) cannot be written.
    let reopened = common::eventually(Duration::from_secs(20), || async {
        open().await.unwrap().status() == 200
    })
    .await;
    assert!(reopened, "a closed stream frees its place");
    drop(second);
    app.stop().await;
}

#[tokio::test]
async fn webhook_bodies_in_flight_are_bounded() {
    let (_db, app, _offers) =
        serve_catalog(|settings| settings.webhooks.max_bodies_in_flight = 1).await;
    let url = app.url("/webhooks/violet");
    // One delivery whose body never finishes arriving holds the only place.
    let mut stuck = TcpStream::connect(app.addr).await.unwrap();
    stuck
        .write_all(b"POST /webhooks/violet HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"id\":")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let delivery = Delivery::new(
        "evt-bounded-1",
        "OFFER_UPDATED",
        &json!({"id": 1, "merchant_id": 3}),
    );
    let started = Instant::now();
    let refused = delivery.send(&app.http, &url).await;
    assert_eq!(refused.status(), 503);
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "it waited for a place first"
    );
    assert_eq!(refused.headers()["retry-after"], "5");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "busy", "{body}");

    drop(stuck);
    let accepted = common::eventually(Duration::from_secs(10), || async {
        delivery.send(&app.http, &url).await.status() == 200
    })
    .await;
    assert!(
        accepted,
        "once the stuck body is gone, deliveries are stored again"
    );
    app.stop().await;
}

#[tokio::test]
async fn admin_list_pages_are_bounded() {
    const TOKEN: &str = "bounds-admin-token";
    let (_db, app, _offers) = serve_catalog(|settings| {
        settings.admin.token = catalog_mirror::config::Secret::new(TOKEN);
        settings.admin.max_page_size = 5;
    })
    .await;
    let get = |path: &str| app.http.get(app.admin_url(path)).bearer_auth(TOKEN).send();
    for path in [
        "/api/jobs?limit=5",
        "/api/events?limit=5",
        "/api/merchants/1001?runs=5&events=5",
    ] {
        let response = get(path).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    for (path, name) in [
        ("/api/jobs?limit=6", "limit"),
        ("/api/events?limit=6", "limit"),
        ("/api/merchants/1001?runs=6", "runs"),
        ("/api/merchants/1001?events=6", "events"),
    ] {
        let response = get(path).await.unwrap();
        assert_eq!(response.status(), 400, "{path}");
        let body: Value = response.json().await.unwrap();
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with(name) && message.contains("from 1 to 5"),
            "{path}: {message}"
        );
    }
    app.stop().await;
}
