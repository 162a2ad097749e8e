//! Clients we did not write, unchanged, against the daemon: the official meilisearch
//! JavaScript client (node), the official Python SDK, and an InstantSearch page through
//! `@meilisearch/instant-meilisearch` rendered by headless Chromium.
//!
//! Their tools are installed by `scripts/test-deps` (nodejs, npm, chromium, `npm ci` in
//! tests/js, `pip install meilisearch`); a missing tool fails the test, naming that script.

mod common;
mod search_support;
// Only the typing, waiting and reading helpers are used here.
#[allow(dead_code)]
#[path = "admin_support/cdp.rs"]
mod cdp;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use catalog_mirror::config::Secret;
use common::{TestApp, TestDb};
use search_support::*;
use serde_json::{Value, json};
use sqlx::PgPool;

const KEY: &str = "client-test-search-key";
const KEY_UID: &str = "8f14e45f-ceea-4e67-a2b1-3c9d5e7f1a2b";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn spawn(key: &str) -> (TestDb, TestApp) {
    let (db, pool) = TestDb::migrated().await;
    let offers = seed(&pool).await;
    let mut settings = common::settings(&db.url);
    settings.search.poll_interval_ms = 100;
    settings.search.api_key = Secret::new(key);
    settings.search.api_key_uid = KEY_UID.into();
    let app = TestApp::spawn(settings).await;
    let ready = common::eventually(Duration::from_secs(30), || async {
        let response = app
            .http
            .post(app.url("/indexes/offers/search"))
            .bearer_auth(key)
            .json(&json!({ "limit": 0 }))
            .send()
            .await
            .unwrap();
        response.json::<Value>().await.unwrap()["estimatedTotalHits"] == json!(shown_count(&offers))
    })
    .await;
    assert!(ready, "the index never caught up");
    (db, app)
}

/// Runs a tool; panics with the install hint when it is missing or fails.
fn run(program: &str, args: &[&str], dir: &Path) -> String {
    let output = Command::new(program).args(args).current_dir(dir).output().unwrap_or_else(|err| {
        panic!("cannot run `{program}` ({err}): install the client-test tools with scripts/test-deps")
    });
    assert!(
        output.status.success(),
        "`{program} {}` failed: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn js_dir() -> PathBuf {
    let dir = repo().join("tests/js");
    assert!(
        dir.join("node_modules/meilisearch").exists(),
        "tests/js/node_modules is missing: run scripts/test-deps (npm ci in tests/js)"
    );
    dir
}

async fn sql_ids(pool: &PgPool, condition: &str, order: &str) -> Vec<i64> {
    let sql = format!("SELECT o.offer_id {SHOWN} AND ({condition}) ORDER BY {order}");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn sql_count(pool: &PgPool, condition: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) {SHOWN} AND ({condition})"
    )))
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn sql_groups(pool: &PgPool, condition: &str, expression: &str) -> BTreeMap<String, i64> {
    let sql = format!(
        "SELECT v, count(*) FROM (SELECT {expression} AS v {SHOWN} AND ({condition})) t WHERE v IS NOT NULL GROUP BY v"
    );
    let rows: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
        .unwrap();
    rows.into_iter().collect()
}

#[tokio::test]
async fn the_official_javascript_client_searches_multi_searches_and_facet_searches() {
    let dir = js_dir();
    let (_db, app) = spawn(KEY).await;
    let host = app.url("");
    let out = tokio::task::spawn_blocking(move || {
        run("node", &["client.mjs", &host, KEY, KEY_UID], &dir)
    })
    .await
    .unwrap();
    let summary: Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("not JSON: {out}"));
    let pool = &app.pool;

    assert_eq!(summary["typo"]["first"], "Merino Wool Sweater", "{summary}");
    assert_eq!(
        summary["typo"]["formatted"], "<em>Merino</em> Wool <em>Sweater</em>",
        "the typo match is highlighted too"
    );

    let condition = "o.merchant_id = 1002 AND o.tags && ARRAY['eco', 'sale']";
    let expected = sql_ids(pool, condition, "o.min_price DESC NULLS LAST, o.offer_id").await;
    assert_eq!(summary["paged"]["totalHits"], json!(expected.len()));
    assert_eq!(
        summary["paged"]["totalPages"],
        json!(expected.len().div_ceil(5))
    );
    assert_eq!(summary["paged"]["page"], 2);
    assert_eq!(
        summary["paged"]["ids"],
        json!(expected.iter().skip(5).take(5).collect::<Vec<_>>())
    );
    assert_eq!(
        summary["paged"]["vendors"],
        json!(sql_groups(pool, condition, "o.vendor").await)
    );
    let (min, max): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT min(o.min_price), max(o.min_price) {SHOWN} AND ({condition})"
    )))
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        summary["paged"]["priceStats"],
        json!({ "min": min, "max": max })
    );

    assert_eq!(summary["multi"]["first"], "Trail Backpack");
    assert_eq!(summary["multi"]["uids"], json!(["offers", "offers"]));
    assert_eq!(
        summary["multi"]["northwindAvailable"],
        json!(sql_count(pool, "o.vendor = 'Northwind' AND o.available").await)
    );
    assert_eq!(
        summary["facetSearch"],
        json!([{ "value": "Northwind", "count": sql_count(pool, "o.vendor = 'Northwind'").await }])
    );
    assert_eq!(summary["facetSearchWithExtras"], summary["facetSearch"]);
    assert_eq!(summary["error"], "invalid_search_filter");
    assert_eq!(summary["tenant"], json!(["1003"]));

    // The product page: getDocument, getDocuments, getSettings, getVersion.
    assert_eq!(
        summary["product"],
        json!({ "id": 1_001_900, "name": "Merino Wool Sweater", "vendor": "Specials" })
    );
    assert_eq!(summary["missingProduct"], "document_not_found");
    let merchant = sql_ids(pool, "o.merchant_id = 1002", "o.offer_id").await;
    assert_eq!(
        summary["documents"]["filtered"],
        json!({ "ids": merchant[2..5], "total": merchant.len(), "limit": 3, "offset": 2 })
    );
    let all = sql_ids(pool, "true", "o.offer_id").await;
    assert_eq!(
        summary["documents"]["browsed"],
        json!({ "ids": all[..4], "total": all.len() })
    );
    assert_eq!(
        summary["settings"],
        json!({ "rankingRules": ["words", "typo", "attribute", "sort"], "firstSearchable": "name", "maxTotalHits": 1000 })
    );
    assert_eq!(summary["version"], "1.16.0");
    assert_eq!(
        summary["write"], "invalid_api_key",
        "the mirror is read-only"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_official_python_client_searches_multi_searches_facet_searches_and_signs_tenant_tokens()
{
    let (_db, app) = spawn(KEY).await;
    let host = app.url("");
    let script = repo().join("tests/py/client.py");
    let out = tokio::task::spawn_blocking(move || {
        run(
            "python3",
            &[script.to_str().unwrap(), &host, KEY, KEY_UID],
            &repo(),
        )
    })
    .await
    .unwrap();
    let summary: Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("not JSON: {out}"));
    let pool = &app.pool;

    assert_eq!(summary["prefix"]["first"], "Trail Backpack", "{summary}");
    assert_eq!(summary["prefix"]["cropped"], "…Trail Backpack.");
    let expected = sql_ids(
        pool,
        "o.min_price BETWEEN 1000 AND 3000",
        "o.min_price, o.offer_id",
    )
    .await;
    assert_eq!(summary["offset"]["total"], json!(expected.len()));
    assert_eq!(
        summary["offset"]["ids"],
        json!(expected.iter().skip(4).take(4).collect::<Vec<_>>())
    );
    assert_eq!(summary["multi"]["synonym"], "Merino Wool Sweater");
    assert_eq!(
        summary["multi"]["cotton_categories"]["Featured"], 1,
        "the typo match (Cotten Beanie) is there"
    );
    assert!(
        summary["multi"]["cotton_categories"]["Apparel"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(
        summary["facet_search"],
        json!([{ "value": "limited", "count": sql_count(pool, "'limited' = ANY(o.tags)").await }])
    );
    // Names compared lowercased, byte by byte (they are ASCII), missing prices last.
    let by_name = sql_ids(
        pool,
        "o.merchant_id = 1003",
        "lower(o.name) COLLATE \"C\", o.min_price DESC NULLS LAST, o.offer_id",
    )
    .await;
    assert_eq!(summary["by_name"], json!(by_name[..6]));
    assert_eq!(summary["error"], "invalid_search_sort");
    assert_eq!(summary["tenant"], json!(["1002"]));

    // The product page: get_document, get_documents, get_settings, get_version.
    assert_eq!(
        summary["product"],
        json!({ "id": 1_001_900, "name": "Merino Wool Sweater", "min_price": 9900 })
    );
    assert_eq!(summary["missing_product"], "document_not_found");
    let condition = "o.merchant_id = 1003 AND o.available";
    let expected = sql_ids(pool, condition, "o.offer_id").await;
    assert_eq!(
        summary["documents"],
        json!({ "ids": expected[..5], "total": expected.len() })
    );
    assert!(
        summary["settings"]["filterable"]
            .as_array()
            .unwrap()
            .contains(&json!("vendor"))
    );
    assert_eq!(
        summary["settings"]["typo"],
        json!({ "oneTypo": 5, "twoTypos": 9 })
    );
    assert_eq!(summary["settings"]["stop_words"], true);
    assert_eq!(summary["synonyms"], json!(["jumper"]));
    assert_eq!(summary["version"], "1.16.0");
    assert_eq!(
        summary["write"], "invalid_api_key",
        "the mirror is read-only"
    );
    app.stop().await;
}

/// The texts of the elements with `class` in `html`, in order.
fn texts_of(html: &str, class: &str) -> Vec<String> {
    let marker = format!("class=\"{class}\">");
    html.match_indices(&marker)
        .map(|(at, _)| {
            let rest = &html[at + marker.len()..];
            rest[..rest.find('<').unwrap_or(rest.len())]
                .trim()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn an_instantsearch_page_renders_hits_and_facet_counts_in_headless_chromium() {
    let dir = js_dir();
    // A public search key, as a storefront page would carry.
    let (_db, app) = spawn(KEY).await;
    let page_dir = tempfile::tempdir().unwrap();
    let bundle = page_dir.path().join("app.bundle.js");
    {
        let dir = dir.clone();
        let bundle = bundle.clone();
        tokio::task::spawn_blocking(move || {
            run(
                "node_modules/.bin/esbuild",
                &[
                    "instantsearch/app.js",
                    "--bundle",
                    "--format=iife",
                    "--log-level=warning",
                    &format!("--outfile={}", bundle.display()),
                ],
                &dir,
            )
        })
        .await
        .unwrap();
    }
    let page = std::fs::read_to_string(dir.join("instantsearch/page.html"))
        .unwrap()
        .replace("__HOST__", &app.url(""))
        .replace("__KEY__", KEY)
        .replace("__QUERY__", "wool");
    let page_path = page_dir.path().join("page.html");
    std::fs::write(&page_path, page).unwrap();

    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page_path.display());
    let page_url = url.clone();
    let profile_arg = format!("--user-data-dir={}", profile.path().display());
    let dom = tokio::task::spawn_blocking(move || {
        run(
            "chromium",
            &[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                &profile_arg,
                "--virtual-time-budget=20000",
                "--dump-dom",
                &url,
            ],
            Path::new("/"),
        )
    })
    .await
    .unwrap();

    let pool = &app.pool;
    let wool = "o.name ~* '\\mwool' OR o.html_description ~* '\\mwool'";
    let total = sql_count(pool, wool).await as usize;
    let names = texts_of(&dom, "hit-name");
    assert_eq!(
        names.len(),
        total.min(20),
        "hits shown (InstantSearch's first page):\n{dom}"
    );
    assert!(
        names
            .iter()
            .all(|name| name.to_lowercase().contains("wool")),
        "{names:?}"
    );
    let stats = texts_of(&dom, "ais-Stats-text").join(" ");
    assert!(stats.contains(&total.to_string()), "stats: {stats}");

    let vendors = texts_of(&dom, "ais-RefinementList-labelText");
    let counts = texts_of(&dom, "ais-RefinementList-count");
    let shown: BTreeMap<String, i64> = vendors
        .into_iter()
        .zip(counts.iter().map(|count| count.parse().unwrap()))
        .collect();
    assert_eq!(
        shown,
        sql_groups(pool, wool, "o.vendor").await,
        "vendor facet counts shown"
    );

    // Typing into the searchable vendor list, in a browser driven over the DevTools
    // protocol: InstantSearch sends a facet search carrying the page's search
    // parameters, and the list shows the matching vendors of the "wool" offers.
    let browser = cdp::Browser::launch().await;
    let mut tab = browser.page().await;
    tab.goto(&page_url).await;
    let list = "#vendor .ais-RefinementList-labelText";
    assert!(
        tab.wait_until(
            &format!("document.querySelectorAll('{list}').length > 1"),
            Duration::from_secs(20)
        )
        .await,
        "the vendor list never rendered"
    );
    tab.type_into("#vendor .ais-SearchBox-input", "nor").await;
    let only_northwind = format!(
        "(() => {{ const labels = [...document.querySelectorAll('{list}')].map(el => el.textContent.trim()); \
         return labels.length === 1 && labels[0] === 'Northwind'; }})()"
    );
    let narrowed = tab
        .wait_until(&only_northwind, Duration::from_secs(20))
        .await;
    let labels = tab
        .eval(&format!(
            "[...document.querySelectorAll('{list}')].map(el => el.textContent.trim())"
        ))
        .await;
    assert!(
        narrowed,
        "the facet search did not narrow the list: {labels}"
    );
    let count: i64 = tab
        .text("#vendor .ais-RefinementList-count")
        .await
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        count,
        sql_count(pool, &format!("({wool}) AND o.vendor = 'Northwind'")).await,
        "Northwind's count among the wool offers"
    );
    browser.close().await;
    app.stop().await;
}
