//! Search benchmark: 100,000 offers in the mirror, the daemon's search API against
//! PostgreSQL full-text search over the same rows, in the same run.
//!
//! `cargo bench --bench search` (release). It creates a scratch database on
//! `$TEST_DATABASE_URL` (default the local server), fills the mirror tables, times the
//! index rebuild from the mirror, then runs a fixed query mix (single words, several
//! words, typos, prefixes, a phrase, with filter, facets, sort by price, date and name,
//! one product per GTIN with `distinct`; every third offer id shares its GTIN)
//! at 1 and 16 concurrent clients against (a) the daemon over HTTP and (b) PostgreSQL
//! (`tsvector` + GIN, `websearch_to_tsquery`, `ts_rank`, with the same filters, sort,
//! exact count and facet counts), and prints p50/p99 latency and throughput as a
//! Markdown table.
//!
//! Knobs: `BENCH_OFFERS` (100000), `BENCH_SECONDS` per run (10), `BENCH_KEEP_DB=1`,
//! `BENCH_ENGINES=api,engine,pg` (which to run; `engine` is the same search without HTTP),
//! `BENCH_MAX_CONCURRENT` (the daemon's `search.max_concurrent_searches`),
//! `BENCH_KINDS` (which kinds of the mix run, comma-separated, e.g. all but `distinct`
//! to compare with a run of a mix that did not have it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use catalog_mirror::app::Application;
use catalog_mirror::config::{ConfigSource, Secret, Settings};
use catalog_mirror::search::params::SearchRequest;
use catalog_mirror::search::pool::SearchPool;
use catalog_mirror::search::{self, Relevance, SearchIndex, store};
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

const COLORS: [&str; 12] = [
    "black", "white", "red", "blue", "green", "grey", "navy", "olive", "brown", "beige", "pink",
    "yellow",
];
const MATERIALS: [&str; 15] = [
    "cotton", "wool", "leather", "denim", "linen", "silk", "suede", "canvas", "nylon", "cashmere",
    "organic", "recycled", "merino", "bamboo", "fleece",
];
const NOUNS: [&str; 40] = [
    "jacket",
    "tshirt",
    "sweater",
    "hoodie",
    "trousers",
    "jeans",
    "shorts",
    "skirt",
    "dress",
    "shirt",
    "blouse",
    "coat",
    "parka",
    "vest",
    "scarf",
    "beanie",
    "cap",
    "gloves",
    "socks",
    "sneakers",
    "boots",
    "sandals",
    "loafers",
    "backpack",
    "tote",
    "wallet",
    "belt",
    "watch",
    "sunglasses",
    "bracelet",
    "necklace",
    "earrings",
    "ring",
    "mug",
    "lamp",
    "blanket",
    "pillow",
    "towel",
    "candle",
    "notebook",
];
const CATEGORIES: [&str; 12] = [
    "Apparel",
    "Shoes",
    "Bags",
    "Accessories",
    "Jewelry",
    "Home",
    "Outdoor",
    "Kids",
    "Sport",
    "Beauty",
    "Office",
    "Gifts",
];
const TAGS: [&str; 12] = [
    "sale",
    "new",
    "eco",
    "limited",
    "bestseller",
    "gift",
    "vegan",
    "handmade",
    "summer",
    "winter",
    "clearance",
    "exclusive",
];
const MERCHANTS: i64 = 50;

/// Deterministic pseudo-random numbers (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Pronounceable made-up words: model names, brands and description filler.
fn vocabulary(rng: &mut Rng, count: usize) -> Vec<String> {
    const SYLLABLES: [&str; 24] = [
        "ka", "lo", "mi", "ra", "ven", "tor", "sil", "na", "bo", "qui", "del", "fa", "gor", "ix",
        "ul", "pe", "san", "tre", "vo", "zan", "mer", "ost", "lin", "da",
    ];
    (0..count)
        .map(|_| {
            (0..2 + rng.below(2))
                .map(|_| SYLLABLES[rng.below(SYLLABLES.len())])
                .collect()
        })
        .collect()
}

struct Row {
    id: i64,
    merchant: i64,
    name: String,
    description: String,
    vendor: Option<String>,
    tags: String,
    category: String,
    available: bool,
    price: i64,
    modified: i64,
}

fn rows(count: usize) -> Vec<Row> {
    let mut rng = Rng(42);
    let models = vocabulary(&mut rng, 600);
    let filler = vocabulary(&mut rng, 3000);
    let brands: Vec<String> = vocabulary(&mut rng, 200)
        .into_iter()
        .map(|word| word[..1].to_uppercase() + &word[1..])
        .collect();
    (0..count)
        .map(|i| {
            let color = COLORS[rng.below(COLORS.len())];
            let material = MATERIALS[rng.below(MATERIALS.len())];
            let noun = NOUNS[rng.below(NOUNS.len())];
            let model = &models[rng.below(models.len())];
            let mut description: Vec<String> = (0..14)
                .map(|_| filler[rng.below(filler.len())].clone())
                .collect();
            description.insert(rng.below(14), format!("{material} {noun}"));
            description.insert(rng.below(15), color.to_string());
            let tags: Vec<&str> = (0..rng.below(4))
                .map(|_| TAGS[rng.below(TAGS.len())])
                .collect();
            let price = 500 + rng.below(20_000) as i64;
            Row {
                id: i as i64 + 1,
                merchant: 1001 + (i as i64 % MERCHANTS),
                name: format!(
                    "{} {} {} {}",
                    capitalize(color),
                    capitalize(material),
                    capitalize(noun),
                    capitalize(model)
                ),
                description: format!("<p>{}.</p>", description.join(" ")),
                vendor: (rng.below(20) != 0).then(|| brands[rng.below(brands.len())].clone()),
                tags: tags.join(","),
                category: CATEGORIES
                    [NOUNS.iter().position(|n| *n == noun).unwrap_or(0) % CATEGORIES.len()]
                .to_string(),
                available: rng.below(5) != 0,
                price,
                modified: 1_700_000_000 + rng.below(30_000_000) as i64,
            }
        })
        .collect()
}

fn capitalize(word: &str) -> String {
    word[..1].to_uppercase() + &word[1..]
}

async fn fill(pool: &PgPool, count: usize) {
    sqlx::query(
        "INSERT INTO merchants (merchant_id, name) SELECT m, 'Merchant ' || m FROM generate_series(1001, 1000 + $1::bigint) m",
    )
    .bind(MERCHANTS)
    .execute(pool)
    .await
    .unwrap();
    for chunk in rows(count).chunks(5000) {
        sqlx::query(
            r#"INSERT INTO offers (offer_id, merchant_id, name, html_description, vendor, seller, tags, category,
                   available, visible, min_price, max_price, currency, status, publishing_status,
                   date_last_modified, content_hash, raw)
               SELECT id, merchant, name, description, vendor, 'Merchant ' || merchant,
                      COALESCE(string_to_array(NULLIF(tags, ''), ','), '{}'), category, available, true, price, price + 500,
                      'USD', CASE WHEN available THEN 'AVAILABLE' ELSE 'UNAVAILABLE' END, 'PUBLISHED',
                      to_timestamp(modified), 'x', '{}'
               FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                           $8::bool[], $9::bigint[], $10::bigint[])
                    AS t(id, merchant, name, description, vendor, tags, category, available, price, modified)"#,
        )
        .bind(chunk.iter().map(|row| row.id).collect::<Vec<_>>())
        .bind(chunk.iter().map(|row| row.merchant).collect::<Vec<_>>())
        .bind(chunk.iter().map(|row| row.name.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|row| row.description.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|row| row.vendor.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|row| row.tags.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|row| row.category.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|row| row.available).collect::<Vec<_>>())
        .bind(chunk.iter().map(|row| row.price).collect::<Vec<_>>())
        .bind(chunk.iter().map(|row| row.modified).collect::<Vec<_>>())
        .execute(pool)
        .await
        .unwrap();
    }
    for sql in [
        "INSERT INTO skus (sku_id, offer_id, merchant_id, name, gtin, raw)
         SELECT offer_id * 10, offer_id, merchant_id, name || ' M', lpad((offer_id / 3 * 10)::text, 13, '0'), '{}' FROM offers",
        "INSERT INTO collections (collection_id, merchant_id, name, content_hash, raw)
         SELECT m * 10 + k, m, (ARRAY['Spring', 'Summer', 'Autumn', 'Winter', 'Essentials'])[k + 1], 'x', '{}'
         FROM generate_series(1001, 1050) m, generate_series(0, 4) k",
        "INSERT INTO collection_offers (collection_id, offer_id, merchant_id)
         SELECT merchant_id * 10 + offer_id % 5, offer_id, merchant_id FROM offers",
        "INSERT INTO change_log (merchant_id, catalog_version, reason) SELECT merchant_id, 1, 'full_refresh' FROM merchants",
        "ANALYZE",
    ] {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
}

/// The same rows for PostgreSQL FTS: weighted tsvector (name A; vendor, tags, category B;
/// description C) with a GIN index, plus B-tree indexes for filters and sort.
async fn prepare_fts(pool: &PgPool) -> Duration {
    let started = Instant::now();
    for sql in [
        "CREATE TABLE fts AS
         SELECT o.offer_id, o.merchant_id, o.name, o.vendor, o.tags, o.category, o.available, o.min_price, o.date_last_modified,
                setweight(to_tsvector('english', o.name), 'A') ||
                setweight(to_tsvector('english', coalesce(o.vendor, '') || ' ' || array_to_string(o.tags, ' ') || ' ' || coalesce(o.category, '')), 'B') ||
                setweight(to_tsvector('english', regexp_replace(coalesce(o.html_description, ''), '<[^>]+>', ' ', 'g')), 'C') AS doc
         FROM offers o",
        "CREATE INDEX fts_doc ON fts USING GIN (doc)",
        "CREATE INDEX fts_price ON fts (min_price)",
        "CREATE INDEX fts_merchant ON fts (merchant_id)",
        "ANALYZE fts",
    ] {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
    started.elapsed()
}

/// One query of the mix: the API body, and the same intent in SQL.
struct Query {
    kind: &'static str,
    body: Value,
    /// Text for websearch_to_tsquery ('' = no text condition).
    text: &'static str,
    /// Extra SQL condition, order, and whether facet counts are asked.
    filter: &'static str,
    order: &'static str,
    facets: bool,
}

/// The mix, or the kinds `BENCH_KINDS` names.
fn mix() -> Vec<Query> {
    let all = full_mix();
    match std::env::var("BENCH_KINDS") {
        Ok(kinds) => {
            let kinds: Vec<&str> = kinds.split(',').map(str::trim).collect();
            let chosen: Vec<Query> = all
                .into_iter()
                .filter(|query| kinds.contains(&query.kind))
                .collect();
            assert!(
                !chosen.is_empty(),
                "BENCH_KINDS={kinds:?} names no kind of the mix"
            );
            chosen
        }
        Err(_) => all,
    }
}

fn full_mix() -> Vec<Query> {
    let q = |kind, body: Value, text, filter, order, facets| Query {
        kind,
        body,
        text,
        filter,
        order,
        facets,
    };
    vec![
        q(
            "single word",
            json!({ "q": "jacket" }),
            "jacket",
            "",
            "",
            false,
        ),
        q(
            "single word",
            json!({ "q": "leather" }),
            "leather",
            "",
            "",
            false,
        ),
        q(
            "several words",
            json!({ "q": "black leather jacket" }),
            "black leather jacket",
            "",
            "",
            false,
        ),
        q(
            "several words",
            json!({ "q": "organic cotton tshirt" }),
            "organic cotton tshirt",
            "",
            "",
            false,
        ),
        q(
            "typos",
            json!({ "q": "lether jakcet" }),
            "lether jakcet",
            "",
            "",
            false,
        ),
        q(
            "typos",
            json!({ "q": "sneakres" }),
            "sneakres",
            "",
            "",
            false,
        ),
        q("prefix", json!({ "q": "backp" }), "backp", "", "", false),
        q(
            "prefix",
            json!({ "q": "wool swea" }),
            "wool swea",
            "",
            "",
            false,
        ),
        q(
            "filter",
            json!({ "q": "jacket", "filter": "price 2000 TO 8000 AND available = true" }),
            "jacket",
            "min_price BETWEEN 2000 AND 8000 AND available",
            "",
            false,
        ),
        q(
            "facets",
            json!({ "q": "cotton", "facets": ["vendor", "category", "tags"] }),
            "cotton",
            "",
            "",
            true,
        ),
        q(
            "sort",
            json!({ "q": "watch", "sort": ["price:asc"] }),
            "watch",
            "",
            "min_price ASC",
            false,
        ),
        // A storefront's "sort by name" over the whole catalog (term ordinals, see
        // `search::sort`), and a phrase (word positions, see `search::terms`).
        q(
            "sort by name",
            json!({ "sort": ["name:asc"] }),
            "",
            "",
            "lower(name) ASC",
            false,
        ),
        q(
            "phrase",
            json!({ "q": "\"leather jacket\"" }),
            "\"leather jacket\"",
            "",
            "",
            false,
        ),
        // A storefront showing each product once: GTINs are shared by three offers.
        q(
            "distinct",
            json!({ "q": "jacket", "distinct": "gtins" }),
            "jacket",
            "",
            "",
            false,
        ),
        q(
            "filter+facets+sort",
            json!({ "filter": "merchant_id = 1007", "facets": ["vendor", "tags"], "sort": ["date_last_modified:desc"] }),
            "",
            "merchant_id = 1007",
            "date_last_modified DESC",
            true,
        ),
    ]
}

/// Runs `query` on PostgreSQL the way the API answers: top 20, exact count, facets.
async fn run_fts(pool: &PgPool, query: &Query) {
    let text_condition = if query.text.is_empty() {
        "true"
    } else {
        "doc @@ websearch_to_tsquery('english', $1)"
    };
    let filter = if query.filter.is_empty() {
        "true"
    } else {
        query.filter
    };
    let rank = if query.text.is_empty() {
        "0::real"
    } else {
        "ts_rank(doc, websearch_to_tsquery('english', $1))"
    };
    let order = if query.order.is_empty() {
        format!("{rank} DESC")
    } else {
        format!("{rank} DESC, {}", query.order)
    };
    let sql = if query.body.get("distinct").is_some() {
        // One offer per product (offer_id / 3 shares a GTIN), the best ranked of each.
        assert!(
            query.order.is_empty(),
            "a distinct query of the mix has no sort"
        );
        format!(
            "SELECT offer_id, name, count(*) OVER () FROM (
                 SELECT DISTINCT ON (offer_id / 3) offer_id, name, {rank} AS r FROM fts
                 WHERE {text_condition} AND {filter} ORDER BY offer_id / 3, r DESC, offer_id) d
             ORDER BY r DESC, offer_id LIMIT 20"
        )
    } else {
        format!(
            "SELECT offer_id, name, count(*) OVER () FROM fts WHERE {text_condition} AND {filter} ORDER BY {order}, offer_id LIMIT 20"
        )
    };
    let _: Vec<(i64, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(query.text)
        .fetch_all(pool)
        .await
        .unwrap();
    if query.facets {
        for facet in ["vendor", "category"] {
            let sql = format!(
                "SELECT {facet}, count(*) FROM fts WHERE {text_condition} AND {filter} GROUP BY {facet}"
            );
            let _: Vec<(Option<String>, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(query.text)
                .fetch_all(pool)
                .await
                .unwrap();
        }
        let sql = format!(
            "SELECT t, count(*) FROM fts, unnest(tags) t WHERE {text_condition} AND {filter} GROUP BY t"
        );
        let _: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(query.text)
            .fetch_all(pool)
            .await
            .unwrap();
    }
}

#[derive(Clone, Copy)]
enum Engine {
    Api,
    /// The same searches without HTTP, on search threads like the daemon's: where the
    /// time goes.
    InProcess,
    Postgres,
}

struct Measure {
    p50: Duration,
    p99: Duration,
    throughput: f64,
    requests: usize,
    /// Latency per kind of query, in the mix's order.
    by_kind: Vec<KindLatency>,
}

struct KindLatency {
    kind: &'static str,
    p50: Duration,
    p99: Duration,
}

async fn measure(
    engine: Engine,
    clients: usize,
    seconds: u64,
    base: &str,
    pool: &PgPool,
    index: &Arc<catalog_mirror::search::SearchIndex>,
    threads: &SearchPool,
) -> Measure {
    let queries = Arc::new(mix());
    let requests: Arc<Vec<SearchRequest>> = Arc::new(
        queries
            .iter()
            .map(|query| SearchRequest::from_object(query.body.as_object().unwrap(), &[]).unwrap())
            .collect(),
    );
    let http = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (requests, index, threads) = (requests.clone(), index.clone(), threads.clone());
        let (queries, http, stop, pool, url) = (
            queries.clone(),
            http.clone(),
            stop.clone(),
            pool.clone(),
            format!("{base}/indexes/offers/search"),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = client;
            while !stop.load(Ordering::Relaxed) {
                let query = &queries[i % queries.len()];
                let sent = Instant::now();
                match engine {
                    Engine::Api => {
                        let response = http.post(&url).json(&query.body).send().await.unwrap();
                        assert!(response.status().is_success());
                        let _ = response.bytes().await.unwrap();
                    }
                    Engine::InProcess => {
                        let (requests, index) = (requests.clone(), index.clone());
                        let which = i % queries.len();
                        threads
                            .run(move || {
                                let generation = index.current();
                                let relevance = index.relevance();
                                let body = search::execute::search(
                                    &generation,
                                    &relevance,
                                    &requests[which],
                                    None,
                                    &search::execute::Bounds::default(),
                                )
                                .unwrap();
                                serde_json::to_vec(&body).unwrap()
                            })
                            .await
                            .unwrap();
                    }
                    Engine::Postgres => run_fts(&pool, query).await,
                }
                latencies.push((i % queries.len(), sent.elapsed()));
                i += 1;
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    let mut by_kind: Vec<KindLatency> = Vec::new();
    for kind in queries.iter().map(|query| query.kind) {
        if by_kind.iter().any(|seen| seen.kind == kind) {
            continue;
        }
        let mut of_kind: Vec<Duration> = latencies
            .iter()
            .filter(|(i, _)| queries[*i].kind == kind)
            .map(|(_, latency)| *latency)
            .collect();
        of_kind.sort();
        by_kind.push(KindLatency {
            kind,
            p50: quantile(&of_kind, 0.50),
            p99: quantile(&of_kind, 0.99),
        });
    }
    let mut latencies: Vec<Duration> = latencies.into_iter().map(|(_, latency)| latency).collect();
    latencies.sort();
    Measure {
        p50: quantile(&latencies, 0.50),
        p99: quantile(&latencies, 0.99),
        throughput: latencies.len() as f64 / elapsed.as_secs_f64(),
        requests: latencies.len(),
        by_kind,
    }
}

/// The `q` quantile of sorted `latencies` (zero if there are none).
fn quantile(latencies: &[Duration], q: f64) -> Duration {
    let at = ((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1));
    latencies.get(at).copied().unwrap_or_default()
}

/// One row per kind of query, one column per engine measured at `clients`.
fn print_by_kind(
    lines: &[(&str, usize, Measure)],
    clients: usize,
    title: &str,
    pick: fn(&KindLatency) -> Duration,
) {
    println!("\n{title} (ms):\n");
    let columns: Vec<(&str, &Measure)> = lines
        .iter()
        .filter(|(_, c, _)| *c == clients)
        .map(|(label, _, measure)| (*label, measure))
        .collect();
    let labels: Vec<&str> = columns.iter().map(|(label, _)| *label).collect();
    println!("| kind | {} |", labels.join(" | "));
    println!("|---|{}", "---:|".repeat(labels.len()));
    if let Some((_, first)) = columns.first() {
        for (row, kind) in first.by_kind.iter().enumerate() {
            let cells: Vec<String> = columns
                .iter()
                .map(|(_, measure)| {
                    format!("{:.2}", pick(&measure.by_kind[row]).as_secs_f64() * 1000.0)
                })
                .collect();
            println!("| {} | {} |", kind.kind, cells.join(" | "));
        }
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    // `cargo test --benches` runs bench targets with --bench absent: do nothing then.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let offers = env_number("BENCH_OFFERS", 100_000) as usize;
    let seconds = env_number("BENCH_SECONDS", 10);
    let server = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("cm_bench_{:08x}", std::process::id());
    let mut admin = PgConnection::connect(&server)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(&server).unwrap();
    url.set_path(&format!("/{name}"));
    let pool = PgPoolOptions::new()
        .max_connections(20)
        .connect(url.as_str())
        .await
        .unwrap();
    catalog_mirror::db::migrate(&pool).await.unwrap();

    let started = Instant::now();
    fill(&pool, offers).await;
    eprintln!(
        "filled the mirror with {offers} offers in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let index_dir = tempfile::tempdir().unwrap();
    let report = catalog_mirror::search::reindex(&pool, index_dir.path())
        .await
        .unwrap();
    eprintln!(
        "rebuilt the index: {} documents in {} ms",
        report.documents,
        report.elapsed.as_millis()
    );
    let fts_build = prepare_fts(&pool).await;

    let mut settings = Settings::load(&ConfigSource::DefaultsOnly).unwrap();
    settings.database.url = Secret::new(url.as_str());
    settings.http.public_addr = "127.0.0.1:0".parse().unwrap();
    settings.http.admin_addr = "127.0.0.1:0".parse().unwrap();
    settings.search.index_dir = index_dir.path().to_path_buf();
    settings.log.filter = "warn".into();
    if let Ok(limit) = std::env::var("BENCH_MAX_CONCURRENT") {
        settings.search.max_concurrent_searches = limit.parse().expect("BENCH_MAX_CONCURRENT");
    }
    // "Engine only" computes on threads of its own, as many as the daemon's.
    let threads = SearchPool::start(
        settings.search.max_concurrent_searches as usize,
        settings.search.max_queued_searches,
    )
    .unwrap();
    let app = Application::build(settings).await.unwrap();
    let base = format!("http://{}", app.public_addr());
    let shutdown = CancellationToken::new();
    let server_task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut lines = Vec::new();
    // The same index opened a second time, searched without HTTP.
    let in_process = SearchIndex::new(Relevance::embedded());
    match store::open_current(index_dir.path()) {
        store::Found::Ready(generation, _) => {
            let segments = generation.reader.searcher().segment_readers().len();
            eprintln!("the index has {segments} segment(s)");
            in_process.swap(Arc::new(generation));
        }
        store::Found::Rebuild { reason, .. } => panic!("index not usable: {reason}"),
    }
    // BENCH_ENGINES=api,engine,pg (default all) selects what runs, e.g. for profiling.
    let engines = std::env::var("BENCH_ENGINES").unwrap_or_else(|_| "api,engine,pg".into());
    for (engine, label) in [
        (Engine::Api, "catalog-mirror (HTTP, tantivy)"),
        (Engine::InProcess, "catalog-mirror engine only (no HTTP)"),
        (Engine::Postgres, "PostgreSQL FTS (GIN, ts_rank)"),
    ]
    .into_iter()
    .filter(|(engine, _)| {
        let name = match engine {
            Engine::Api => "api",
            Engine::InProcess => "engine",
            Engine::Postgres => "pg",
        };
        engines.split(',').any(|wanted| wanted.trim() == name)
    }) {
        // Warm caches.
        measure(engine, 4, 2, &base, &pool, &in_process, &threads).await;
        for clients in [1, 16] {
            let result = measure(
                engine,
                clients,
                seconds,
                &base,
                &pool,
                &in_process,
                &threads,
            )
            .await;
            lines.push((label, clients, result));
        }
    }
    println!("\n| engine | clients | p50 ms | p99 ms | throughput (req/s) | requests |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, clients, result) in &lines {
        println!(
            "| {label} | {clients} | {:.2} | {:.2} | {:.0} | {} |",
            result.p50.as_secs_f64() * 1000.0,
            result.p99.as_secs_f64() * 1000.0,
            result.throughput,
            result.requests
        );
    }
    print_by_kind(
        &lines,
        1,
        "median latency per kind of query at 1 client",
        |kind| kind.p50,
    );
    print_by_kind(
        &lines,
        16,
        "p99 latency per kind of query at 16 clients",
        |kind| kind.p99,
    );
    let throughput = |label_start: &str, clients: usize| {
        lines
            .iter()
            .find(|(label, c, _)| label.starts_with(label_start) && *c == clients)
            .map(|(_, _, result)| result.throughput)
    };
    for clients in [1, 16] {
        // Only when both ran (BENCH_ENGINES may leave one out).
        if let (Some(ours), Some(postgres)) = (
            throughput("catalog-mirror", clients),
            throughput("PostgreSQL", clients),
        ) {
            println!(
                "\nthroughput ratio at {clients} client(s): {:.1}x",
                ours / postgres.max(0.001)
            );
        }
    }
    println!(
        "\nindex rebuild from the mirror: {} offers in {:.2} s (PostgreSQL tsvector + GIN build: {:.2} s)",
        report.documents,
        report.elapsed.as_secs_f64(),
        fts_build.as_secs_f64()
    );

    shutdown.cancel();
    let _ = server_task.await;
    pool.close().await;
    if std::env::var("BENCH_KEEP_DB").is_err() {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await;
    }
}
