//! Search test support: a deterministic catalog written straight into the mirror tables
//! (the way the mirror publishes: rows, then a change-log row under the table lock),
//! and small helpers to query the daemon's search API.
//!
//! Which offers the storefront may see comes from the database's `storefront_offers`
//! view, the daemon's one statement of that rule, never from a copy here: the view
//! itself is pinned edge case by edge case in tests/it/search_index.rs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;

pub const MERCHANTS: [i64; 3] = [1001, 1002, 1003];
/// Has offers in the mirror but is disabled: none of them may be searchable.
pub const DISABLED_MERCHANT: i64 = 1004;
pub const OFFERS_PER_MERCHANT: i64 = 80;

const COLORS: [&str; 5] = ["Red", "Blue", "Green", "Black", "White"];
const MATERIALS: [&str; 5] = ["Cotton", "Wool", "Leather", "Denim", "Linen"];
const NOUNS: [(&str, &str); 8] = [
    ("Sneakers", "Shoes"),
    ("Jacket", "Apparel"),
    ("Hoodie", "Apparel"),
    ("Backpack", "Bags"),
    ("Tshirt", "Apparel"),
    ("Sweater", "Apparel"),
    ("Trousers", "Apparel"),
    ("Watch", "Accessories"),
];
const VENDORS: [Option<&str>; 4] = [Some("Acme"), Some("Blue Fox"), Some("Northwind"), None];
const TAGS: [&str; 4] = ["sale", "new", "eco", "limited"];
const COLLECTIONS: [&str; 3] = ["Summer", "Winter", "Essentials"];

/// The offers a storefront may see, as a SQL `FROM` clause the oracles extend with
/// `AND (condition)`: `o` is the `storefront_offers` view.
pub const SHOWN: &str = "FROM storefront_offers o WHERE true";

/// One offer as the test writes it.
#[derive(Debug, Clone)]
pub struct Offer {
    pub id: i64,
    pub merchant_id: i64,
    pub name: String,
    pub html_description: String,
    pub vendor: Option<String>,
    pub tags: Vec<String>,
    pub category: Option<String>,
    pub available: bool,
    pub visible: bool,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub status: String,
    pub publishing_status: String,
    pub removed: bool,
    pub date_last_modified: i64,
    pub collection: i64,
    /// Whether the `storefront_offers` view selected it right after [`seed`] wrote it;
    /// `None` for an offer [`seed`] did not write.
    pub on_storefront: Option<bool>,
}

impl Offer {
    /// Whether the storefront may see it, as the database's rule said when it was seeded.
    pub fn shown(&self) -> bool {
        self.on_storefront
            .expect("only offers returned by seed() know whether they are shown")
    }
}

/// The generic offers of `merchant`, with hidden ones sprinkled in.
pub fn generic_offers(merchant: i64) -> Vec<Offer> {
    (0..OFFERS_PER_MERCHANT)
        .map(|i| {
            let color = COLORS[(i % 5) as usize];
            let material = MATERIALS[((i / 5) % 5) as usize];
            let (noun, category) = NOUNS[((i * 7 + merchant) % 8) as usize];
            let vendor = VENDORS[((i + merchant) % 4) as usize].map(str::to_string);
            let tag_bits = (i * 3 + merchant) % 16;
            let tags = TAGS
                .iter()
                .enumerate()
                .filter(|(bit, _)| tag_bits & (1 << bit) != 0)
                .map(|(_, tag)| tag.to_string())
                .collect();
            let available = i % 3 != 0;
            let min_price = (i % 29 != 0).then(|| 500 + (i * 37 + merchant) % 9000);
            Offer {
                id: merchant * 1000 + i,
                merchant_id: merchant,
                name: format!("{color} {material} {noun}"),
                html_description: format!(
                    "<p>A {} {} in {}.</p><p><b>Made</b> with care &amp; {}.</p>",
                    material.to_lowercase(),
                    noun.to_lowercase(),
                    color.to_lowercase(),
                    vendor.as_deref().unwrap_or("love")
                ),
                vendor,
                tags,
                category: (i % 13 != 0).then(|| category.to_string()),
                available,
                visible: i % 17 != 5,
                min_price,
                max_price: min_price.map(|min| min + (i % 4) * 250),
                status: if i % 23 == 11 {
                    "ARCHIVED".into()
                } else if available {
                    "AVAILABLE".into()
                } else {
                    "UNAVAILABLE".into()
                },
                publishing_status: if i % 31 == 13 {
                    "NOT_PUBLISHED".into()
                } else {
                    "PUBLISHED".into()
                },
                removed: i % 19 == 7,
                date_last_modified: 1_700_000_000 + i * 3600 * (merchant - 1000),
                collection: merchant * 100 + i % 3,
                on_storefront: None,
            }
        })
        .collect()
}

/// Targets of the relevance tests (merchant 1001, ids 1001900+).
pub fn special_offers() -> Vec<Offer> {
    let names = [
        "Merino Wool Sweater",
        "Cotten Beanie",
        "Northwind Parka",
        "Trail Backpack",
        "Zephyr Runner",
    ];
    names
        .iter()
        .enumerate()
        .map(|(i, name)| Offer {
            id: 1_001_900 + i as i64,
            merchant_id: 1001,
            name: name.to_string(),
            html_description: format!("<div>The {name}.</div>"),
            vendor: Some("Specials".into()),
            tags: vec!["featured".into()],
            category: Some("Featured".into()),
            available: true,
            visible: true,
            min_price: Some(9_900),
            max_price: Some(9_900),
            status: "AVAILABLE".into(),
            publishing_status: "PUBLISHED".into(),
            removed: false,
            date_last_modified: 1_700_000_000,
            collection: 100_100,
            on_storefront: None,
        })
        .collect()
}

/// The whole test catalog.
pub fn catalog() -> Vec<Offer> {
    let mut offers: Vec<Offer> = MERCHANTS
        .iter()
        .chain([&DISABLED_MERCHANT])
        .flat_map(|m| generic_offers(*m))
        .collect();
    offers.extend(special_offers());
    offers
}

/// Writes merchants, offers, SKUs and collections, then one change per merchant;
/// returns the offers with [`Offer::on_storefront`] read from the view.
pub async fn seed(pool: &PgPool) -> Vec<Offer> {
    for merchant in MERCHANTS.iter().chain([&DISABLED_MERCHANT]) {
        sqlx::query("INSERT INTO merchants (merchant_id, name, enabled) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(merchant)
            .bind(format!("Merchant {merchant}"))
            .bind(*merchant != DISABLED_MERCHANT)
            .execute(pool)
            .await
            .unwrap();
        for (k, name) in COLLECTIONS.iter().enumerate() {
            sqlx::query(
                "INSERT INTO collections (collection_id, merchant_id, name, content_hash, raw) VALUES ($1, $2, $3, 'x', '{}')",
            )
            .bind(merchant * 100 + k as i64)
            .bind(merchant)
            .bind(name)
            .execute(pool)
            .await
            .unwrap();
        }
    }
    let mut offers = catalog();
    write_offers(pool, &offers).await;
    for merchant in MERCHANTS.iter().chain([&DISABLED_MERCHANT]) {
        publish(pool, *merchant, None).await;
    }
    let shown = storefront_ids(pool).await;
    for offer in &mut offers {
        offer.on_storefront = Some(shown.contains(&offer.id));
    }
    offers
}

/// An offer of `merchant` shown on the storefront, built from the first special offer
/// (available, visible, published), with no description and its merchant's collection.
pub fn small_offer(id: i64, merchant: i64, name: &str) -> Offer {
    let mut offer = special_offers()[0].clone();
    offer.id = id;
    offer.merchant_id = merchant;
    offer.name = name.into();
    offer.html_description = String::new();
    offer.collection = merchant * 100;
    offer
}

/// A daemon over the seeded test catalog ([`seed`]), the indexer polling every 100 ms,
/// with `configure`'s changes to its settings; returned once every shown offer a search
/// can reach (at most `search.max_total_hits`) is searchable, asked with the search
/// key when one is set.
pub async fn serve_catalog(
    configure: impl FnOnce(&mut catalog_mirror::config::Settings) + Send + 'static,
) -> (crate::common::TestDb, crate::common::TestApp, Vec<Offer>) {
    let (db, pool) = crate::common::TestDb::migrated().await;
    let offers = seed(&pool).await;
    let app = crate::common::TestApp::builder()
        .configure(|settings| settings.search.poll_interval_ms = 100)
        .configure(configure)
        .spawn_on(&db)
        .await;
    let reachable = shown_count(&offers).min(app.settings.search.max_total_hits);
    let key = app.settings.search.api_key.clone();
    let key = (!key.is_empty()).then(|| key.expose().to_string());
    wait_until_searchable(&app.http, &app.url(""), reachable, key.as_deref()).await;
    (db, app, offers)
}

/// A daemon over a hand-made catalog of storefront offers, once all of them are
/// searchable: a fresh database with `offers` seeded ([`seed_offers`]) and the indexer
/// polling every 100 ms.
pub async fn serve_offers(offers: &[Offer]) -> (crate::common::TestDb, crate::common::TestApp) {
    serve_offers_with(offers, |_| {}).await
}

/// [`serve_offers`] with the settings `configure` changes.
pub async fn serve_offers_with(
    offers: &[Offer],
    configure: impl FnOnce(&mut catalog_mirror::config::Settings) + Send + 'static,
) -> (crate::common::TestDb, crate::common::TestApp) {
    let (db, pool) = crate::common::TestDb::migrated().await;
    seed_offers(&pool, offers).await;
    let app = crate::common::TestApp::builder()
        .configure(|settings| settings.search.poll_interval_ms = 100)
        .configure(configure)
        .spawn_on(&db)
        .await;
    wait_for_count(&app.http, &app.url(""), offers.len()).await;
    (db, app)
}

/// Writes a hand-made catalog: its merchants (enabled, one collection each), the
/// offers, then one change per merchant.
pub async fn seed_offers(pool: &PgPool, offers: &[Offer]) {
    let merchants: BTreeSet<i64> = offers.iter().map(|offer| offer.merchant_id).collect();
    for &merchant in &merchants {
        sqlx::query("INSERT INTO merchants (merchant_id, name, enabled) VALUES ($1, $2, true)")
            .bind(merchant)
            .bind(format!("Merchant {merchant}"))
            .execute(pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO collections (collection_id, merchant_id, name, content_hash, raw) VALUES ($1, $2, 'All', 'x', '{}')",
        )
        .bind(merchant * 100)
        .bind(merchant)
        .execute(pool)
        .await
        .unwrap();
    }
    write_offers(pool, offers).await;
    for &merchant in &merchants {
        publish(pool, merchant, None).await;
    }
}

/// Oracle: how many storefront offers match the SQL `condition` (over `o`, the
/// `storefront_offers` view).
pub async fn sql_count(pool: &PgPool, condition: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) {SHOWN} AND ({condition})"
    )))
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Oracle of a facet: per value of `expression` (e.g. `o.vendor`, `unnest(o.tags)`),
/// the storefront offers matching `condition` that hold it; no entry for null or empty.
pub async fn sql_counts(pool: &PgPool, condition: &str, expression: &str) -> BTreeMap<String, i64> {
    let sql = format!(
        "SELECT v, count(DISTINCT o.offer_id) FROM (SELECT o.*, {expression} AS v {SHOWN} AND ({condition})) o WHERE v IS NOT NULL AND v <> '' GROUP BY v"
    );
    let rows: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
        .unwrap();
    rows.into_iter().collect()
}

/// Ids of the offers the storefront may see now (the `storefront_offers` view).
pub async fn storefront_ids(pool: &PgPool) -> BTreeSet<i64> {
    sqlx::query_scalar("SELECT offer_id FROM storefront_offers")
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// Inserts or replaces offers (and their SKUs and collection membership).
pub async fn write_offers(pool: &PgPool, offers: &[Offer]) {
    let mut tx = pool.begin().await.unwrap();
    for offer in offers {
        sqlx::query(
            r#"INSERT INTO offers (offer_id, merchant_id, name, html_description, vendor, seller, tags, category,
                   available, visible, min_price, max_price, currency, status, publishing_status,
                   image_url, date_last_modified, content_hash, raw, removed_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'USD', $13, $14, $15,
                   to_timestamp($16), 'x', '{}', CASE WHEN $17 THEN now() END)
               ON CONFLICT (offer_id) DO UPDATE SET name = EXCLUDED.name, html_description = EXCLUDED.html_description,
                   vendor = EXCLUDED.vendor, tags = EXCLUDED.tags, min_price = EXCLUDED.min_price,
                   max_price = EXCLUDED.max_price, visible = EXCLUDED.visible, removed_at = EXCLUDED.removed_at"#,
        )
        .bind(offer.id)
        .bind(offer.merchant_id)
        .bind(&offer.name)
        .bind(&offer.html_description)
        .bind(&offer.vendor)
        .bind(format!("Merchant {}", offer.merchant_id))
        .bind(&offer.tags)
        .bind(&offer.category)
        .bind(offer.available)
        .bind(offer.visible)
        .bind(offer.min_price)
        .bind(offer.max_price)
        .bind(&offer.status)
        .bind(&offer.publishing_status)
        .bind(format!("https://img.example/{}.jpg", offer.id))
        .bind(offer.date_last_modified as f64)
        .bind(offer.removed)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query("DELETE FROM skus WHERE offer_id = $1")
            .bind(offer.id)
            .execute(&mut *tx)
            .await
            .unwrap();
        for k in 0..2i64 {
            sqlx::query(
                "INSERT INTO skus (sku_id, offer_id, merchant_id, name, gtin, raw) VALUES ($1, $2, $3, $4, $5, '{}')",
            )
            .bind(offer.id * 10 + k)
            .bind(offer.id)
            .bind(offer.merchant_id)
            .bind(format!("{} size {}", offer.name, ["S", "M"][k as usize]))
            .bind(format!("{:013}", offer.id * 10 + k))
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        sqlx::query(
            "INSERT INTO collection_offers (collection_id, offer_id, merchant_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(offer.collection)
        .bind(offer.id)
        .bind(offer.merchant_id)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

/// Appends a change-log row the way the mirror does (table lock, then insert); returns
/// its number. `None`: the merchant's whole catalog.
pub async fn publish(pool: &PgPool, merchant: i64, offer_ids: Option<Vec<i64>>) -> i64 {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE change_log IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let change_no: i64 = sqlx::query_scalar(
        "INSERT INTO change_log (merchant_id, catalog_version, reason, offer_ids) VALUES ($1, 1, 'full_refresh', $2) RETURNING change_no",
    )
    .bind(merchant)
    .bind(offer_ids)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    change_no
}

/// POSTs a search and returns the status and the JSON body.
pub async fn search(http: &reqwest::Client, base: &str, body: Value) -> (u16, Value) {
    let response = http
        .post(format!("{base}/indexes/offers/search"))
        .json(&body)
        .send()
        .await
        .expect("search request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `GET path` on the daemon's public listener: the status and the JSON body
/// (`null` when it is none).
pub async fn get_json(app: &crate::common::TestApp, path: &str) -> (u16, Value) {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `POST path` with a JSON body on the daemon's public listener: the status and the
/// JSON body (`null` when it is none).
pub async fn post_json(app: &crate::common::TestApp, path: &str, body: Value) -> (u16, Value) {
    let response = app
        .http
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A search that must answer 200: its body.
pub async fn search_ok(http: &reqwest::Client, base: &str, body: Value) -> Value {
    let (status, body) = search(http, base, body).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The ids of the hits, in order.
pub fn ids(body: &Value) -> Vec<i64> {
    body["hits"]
        .as_array()
        .map(|hits| hits.iter().filter_map(|hit| hit["id"].as_i64()).collect())
        .unwrap_or_default()
}

/// Waits until a placeholder search counts `expected` offers.
pub async fn wait_for_count(http: &reqwest::Client, base: &str, expected: usize) {
    wait_until_searchable(http, base, expected, None).await;
}

/// [`wait_for_count`], searching with `key` as the bearer when given.
async fn wait_until_searchable(
    http: &reqwest::Client,
    base: &str,
    expected: usize,
    key: Option<&str>,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut request = http
            .post(format!("{base}/indexes/offers/search"))
            .json(&json!({ "limit": 0 }));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("search request");
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status == 200 && body["estimatedTotalHits"] == json!(expected) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "index never reached {expected} offers: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many offers of `offers` the storefront may see.
pub fn shown_count(offers: &[Offer]) -> usize {
    offers.iter().filter(|offer| offer.shown()).count()
}
