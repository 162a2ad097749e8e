//! Clients we did not write, unchanged, against the daemon: the official meilisearch
//! JavaScript client (node), the official Python SDK, and an InstantSearch page through
//! `@meilisearch/instant-meilisearch` in headless Chromium, driven by Playwright.
//!
//! Their tools are installed by `scripts/test-deps` (nodejs, npm, chromium, `npm ci` in
//! tests/js for the clients, esbuild and playwright-core, `pip install meilisearch`); a missing tool fails the test, naming that script.

use crate::common;
use crate::search_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

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
    let key = key.to_string();
    let (db, app, _) = serve_catalog(move |settings| {
        settings.search.api_key = Secret::new(key);
        settings.search.api_key_uid = KEY_UID.into();
    })
    .await;
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
        json!(sql_counts(pool, condition, "o.vendor").await)
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
        json!({ "rankingRules": ["words", "typo", "proximity", "attribute", "sort", "exactness"], "firstSearchable": "name", "maxTotalHits": 1000 })
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

/// What the page showed after one step of tests/js/instantsearch/drive.mjs.
#[derive(Debug, serde::Deserialize)]
struct Step {
    name: String,
    stats: String,
    hits: Vec<ShownHit>,
    vendors: Vec<(String, i64)>,
    price: ShownRange,
    page: String,
    sort: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct ShownHit {
    id: i64,
    name: String,
    highlighted: Vec<String>,
}

#[derive(Debug, serde::Deserialize)]
struct ShownRange {
    min: Option<String>,
    max: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct Drive {
    steps: Vec<Step>,
    errors: Vec<String>,
}

impl Step {
    fn ids(&self) -> Vec<i64> {
        self.hits.iter().map(|hit| hit.id).collect()
    }

    /// The hit count in the stats line ("12 results found in 1ms").
    fn total(&self) -> i64 {
        self.stats
            .split_whitespace()
            .next()
            .and_then(|count| count.replace(',', "").parse().ok())
            .unwrap_or_else(|| panic!("no count in the stats of {}: {:?}", self.name, self.stats))
    }
}

/// The ids of the storefront offers matching `condition`, as `sort: ["name:asc"]`
/// orders them (the catalog's names are ASCII: lowercased is Meilisearch's sort key),
/// ties by id.
async fn sql_ids_by_name(pool: &PgPool, condition: &str, offset: i64, limit: i64) -> Vec<i64> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT o.offer_id {SHOWN} AND ({condition}) ORDER BY lower(o.name), o.offer_id OFFSET {offset} LIMIT {limit}"
    )))
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_instantsearch_storefront_works_in_chromium_driven_by_playwright() {
    let dir = js_dir();
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run scripts/test-deps (npm ci in tests/js)"
    );
    // A public search key, as a storefront page would carry.
    let (_db, app) = spawn(KEY).await;
    let page_dir = tempfile::tempdir().unwrap();
    let bundle = page_dir.path().join("app.bundle.js");
    let page = std::fs::read_to_string(dir.join("instantsearch/page.html"))
        .unwrap()
        .replace("__HOST__", &app.url(""))
        .replace("__KEY__", KEY)
        .replace("__QUERY__", "wool");
    let page_path = page_dir.path().join("page.html");
    std::fs::write(&page_path, page).unwrap();
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .expect("chromium is missing: run scripts/test-deps");
    let url = format!("file://{}", page_path.display());
    let output = tokio::task::spawn_blocking(move || {
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
        );
        run("node", &["instantsearch/drive.mjs", &url, chromium], &dir)
    })
    .await
    .unwrap();
    let drive: Drive = serde_json::from_str(output.trim())
        .unwrap_or_else(|err| panic!("drive.mjs printed no report ({err}): {output}"));
    assert!(
        drive.errors.is_empty(),
        "the page failed: {:?}",
        drive.errors
    );
    let step = |name: &str| -> &Step {
        drive
            .steps
            .iter()
            .find(|step| step.name == name)
            .unwrap_or_else(|| panic!("no step {name}: {:?}", drive.steps))
    };
    let pool = &app.pool;
    let wool = "o.name ~* '\\mwool' OR o.html_description ~* '\\mwool'";
    let northwind = "o.vendor = 'Northwind'";

    // The first page of "wool": six hits, the word highlighted in the names holding it,
    // the total, the vendor counts and the price bounds of the matches.
    let initial = step("initial");
    let total = sql_count(pool, wool).await;
    assert_eq!(initial.total(), total, "{initial:?}");
    assert_eq!(initial.hits.len() as i64, total.min(6), "{initial:?}");
    for hit in &initial.hits {
        let holds_wool = hit.name.to_lowercase().contains("wool");
        assert_eq!(
            hit.highlighted.iter().any(|mark| mark == "Wool"),
            holds_wool,
            "{hit:?}"
        );
        assert!(hit.highlighted.iter().all(|mark| mark == "Wool"), "{hit:?}");
    }
    assert!(initial.hits.iter().any(|hit| !hit.highlighted.is_empty()));
    let shown: BTreeMap<String, i64> = initial.vendors.iter().cloned().collect();
    assert_eq!(
        shown,
        sql_counts(pool, wool, "o.vendor").await,
        "vendor counts"
    );
    let (min, max): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT min(o.min_price), max(o.min_price) {SHOWN} AND ({wool})"
    )))
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        initial.price.min,
        Some(min.to_string()),
        "{:?}",
        initial.price
    );
    assert_eq!(
        initial.price.max,
        Some(max.to_string()),
        "{:?}",
        initial.price
    );
    assert_eq!(initial.sort.as_deref(), Some("offers"));

    // Typing into the vendor list's own search box narrows it to Northwind, with its
    // count among the wool offers; ticking it refines the hits.
    let narrowed = step("vendor search");
    let wool_northwind = format!("({wool}) AND {northwind}");
    assert_eq!(
        narrowed.vendors,
        [(
            "Northwind".to_string(),
            sql_count(pool, &wool_northwind).await
        )],
        "{narrowed:?}"
    );
    let refined = step("vendor refined");
    assert_eq!(refined.total(), sql_count(pool, &wool_northwind).await);

    // Without a query, sorted by name, within a price range, page by page.
    let cleared = step("query cleared");
    assert_eq!(cleared.total(), sql_count(pool, northwind).await);
    let by_name = step("sorted by name");
    assert_eq!(by_name.sort.as_deref(), Some("offers:name:asc"));
    assert_eq!(by_name.ids(), sql_ids_by_name(pool, northwind, 0, 6).await);
    let in_range = format!("{northwind} AND o.min_price BETWEEN 2000 AND 4000");
    let ranged = step("price range");
    assert_eq!(
        ranged.total(),
        sql_count(pool, &in_range).await,
        "{ranged:?}"
    );
    assert!(ranged.total() > 12, "the range must span pages: {ranged:?}");
    assert_eq!(ranged.ids(), sql_ids_by_name(pool, &in_range, 0, 6).await);
    let next = step("next page");
    assert_eq!(next.page, "2");
    assert_eq!(next.ids(), sql_ids_by_name(pool, &in_range, 6, 6).await);
    let twelve = step("12 per page");
    assert_eq!(twelve.ids(), sql_ids_by_name(pool, &in_range, 0, 12).await);

    // Clearing the refinements leaves the whole storefront, still sorted by name.
    let everything = step("refinements cleared");
    assert_eq!(everything.total(), sql_count(pool, "true").await);
    assert_eq!(everything.ids(), sql_ids_by_name(pool, "true", 0, 12).await);
    app.stop().await;
}
