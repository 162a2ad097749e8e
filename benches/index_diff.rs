//! Index diff benchmark: a change naming a whole merchant (what a full pass past the
//! change log's bound, a collections refresh or a visibility change publishes) applied
//! to a merchant of 100,000 offers, the way the indexer does it now (compare each
//! document's fingerprint, write only what differs) next to the way it did before
//! (delete all of the merchant's documents, add every one again), in the same run,
//! alternating, on the same index.
//!
//! - "before" is the previous `apply_batch`, reproduced here from the same pieces:
//!   one snapshot, the merchant's rows read whole, `delete_term(merchant)`, every
//!   document added, one commit with the payload, reader reloaded.
//! - "after" is `Indexer::apply_batch` itself.
//! - Cases: the merchant unchanged; the merchant with 1% of its offers changed.
//! - Also printed: the mirror read alone (the rows streamed, nothing indexed), and the
//!   process's peak RSS growth over each run (VmHWM, reset before it).
//!
//! Run: `cargo bench --bench index_diff`. Environment: `TEST_DATABASE_URL` (server,
//! default postgres://postgres@127.0.0.1:5432/postgres), `BENCH_OFFERS` (the merchant's
//! offers, default 100000), `BENCH_OTHER_OFFERS` (offers of other merchants in the same
//! index, default 0), `BENCH_ROUNDS` (default 3), `BENCH_KEEP_DB` (set: keep the
//! database for inspection).

use std::time::{Duration, Instant};

use catalog_mirror::search::document::OfferRow;
use catalog_mirror::search::indexer::{self, Live};
use catalog_mirror::search::schema::SCHEMA_VERSION;
use catalog_mirror::search::store::{self, Payload};
use catalog_mirror::search::{Indexer, IndexerSettings, Relevance, SearchIndex, source};
use futures::TryStreamExt;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tantivy::Term;

const MERCHANT: i64 = 4242;

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|value| value.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets VmHWM to the current RSS (Linux: writing 5 to clear_refs).
fn reset_peak() -> u64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    status_kb("VmRSS:")
}

/// Offers of `merchant` with ids from `first`: names, 16-word HTML descriptions, tags,
/// a vendor, one SKU with a GTIN and one of five collections each.
async fn fill(pool: &PgPool, merchant: i64, first: i64, count: i64) {
    for sql in [
        "INSERT INTO merchants (merchant_id, name) VALUES ($1, 'Merchant ' || $1) ON CONFLICT DO NOTHING",
        "INSERT INTO collections (collection_id, merchant_id, name, content_hash, raw)
         SELECT $1 * 10 + k, $1, (ARRAY['Spring', 'Summer', 'Autumn', 'Winter', 'Essentials'])[k + 1], 'x', '{}'
         FROM generate_series(0, 4) k",
    ] {
        sqlx::query(sql).bind(merchant).execute(pool).await.unwrap();
    }
    sqlx::query(
        r#"INSERT INTO offers (offer_id, merchant_id, name, html_description, vendor, seller, tags, category,
               available, visible, min_price, max_price, currency, status, publishing_status,
               date_last_modified, content_hash, raw)
           SELECT g, $1,
                  (ARRAY['Black', 'Blue', 'Red', 'Green', 'White'])[1 + g % 5] || ' '
                    || (ARRAY['Leather', 'Cotton', 'Wool', 'Denim'])[1 + g % 4] || ' '
                    || (ARRAY['Jacket', 'Sneakers', 'Backpack', 'Watch', 'Hoodie', 'Tshirt'])[1 + g % 6]
                    || ' ' || substr(md5(g::text), 1, 6),
                  '<p>' || md5(g::text) || ' ' || md5((g + 1)::text) || ' soft and durable, made to last, '
                    || 'with care for every detail of ' || md5((g * 7)::text) || '</p>',
                  'Brand ' || (g % 200), 'Merchant ' || $1,
                  ARRAY[(ARRAY['sale', 'new', 'eco', 'limited'])[1 + g % 4]], 'Apparel',
                  g % 5 <> 0, true, 500 + g % 20000, 1000 + g % 20000, 'USD',
                  CASE WHEN g % 5 <> 0 THEN 'AVAILABLE' ELSE 'UNAVAILABLE' END, 'PUBLISHED',
                  to_timestamp(1700000000 + g), 'x', '{}'
           FROM generate_series($2::bigint, $2::bigint + $3::bigint - 1) g"#,
    )
    .bind(merchant)
    .bind(first)
    .bind(count)
    .execute(pool)
    .await
    .unwrap();
    for sql in [
        "INSERT INTO skus (sku_id, offer_id, merchant_id, name, gtin, raw)
         SELECT offer_id * 10, offer_id, merchant_id, name || ' M', lpad((offer_id * 10)::text, 13, '0'), '{}'
         FROM offers WHERE merchant_id = $1 AND offer_id >= $2",
        "INSERT INTO collection_offers (collection_id, offer_id, merchant_id)
         SELECT merchant_id * 10 + offer_id % 5, offer_id, merchant_id FROM offers
         WHERE merchant_id = $1 AND offer_id >= $2",
    ] {
        sqlx::query(sql)
            .bind(merchant)
            .bind(first)
            .execute(pool)
            .await
            .unwrap();
    }
}

/// Appends a whole-merchant change the way the mirror does.
async fn publish_whole(pool: &PgPool, merchant: i64) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE change_log IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO change_log (merchant_id, catalog_version, reason) VALUES ($1, 1, 'full_refresh')")
        .bind(merchant)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// What one run did.
struct Run {
    elapsed: Duration,
    written: u64,
    deleted: u64,
    peak_growth_mb: f64,
}

/// The previous `apply_batch` for a whole-merchant change: read it all, delete the
/// merchant's documents, add every one, commit. Takes the generation's writer while it
/// runs (one writer per index) and gives the indexer a new one after.
async fn before(pool: &PgPool, live: Live) -> (Live, Run) {
    let (generation, change_no) = (live.generation.clone(), live.change_no);
    // Dropping the indexer's writer frees the index's writer lock.
    drop(live);
    let rss = reset_peak();
    let started = Instant::now();
    let mut tx = source::snapshot(pool).await.unwrap();
    let plan = source::pending_changes(&mut tx, change_no, 500)
        .await
        .unwrap();
    assert!(plan.merchants.contains(&MERCHANT));
    let rows: Vec<OfferRow> = source::merchant_offers(&mut tx, MERCHANT)
        .try_collect()
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let written = rows.len() as u64;
    let payload = Payload {
        schema_version: SCHEMA_VERSION,
        change_no: plan.last_change,
    };
    let written_to = generation.clone();
    tokio::task::spawn_blocking(move || {
        let mut writer = written_to.writer(1, 64 * 1024 * 1024).unwrap();
        let (_, _, merchant_field) = written_to.schema.attribute("merchant_id").unwrap();
        writer.delete_term(Term::from_field_f64(merchant_field, MERCHANT as f64));
        for row in rows {
            writer
                .add_document(row.to_document(&written_to.schema))
                .unwrap();
        }
        store::commit(&mut writer, payload).unwrap();
        written_to.reader.reload().unwrap();
        writer.wait_merging_threads().unwrap();
    })
    .await
    .unwrap();
    let run = Run {
        elapsed: started.elapsed(),
        written,
        deleted: written,
        peak_growth_mb: status_kb("VmHWM:").saturating_sub(rss) as f64 / 1024.0,
    };
    (Live::open(generation, plan.last_change).unwrap(), run)
}

async fn after(indexer: &Indexer, live: &mut Live) -> Run {
    let rss = reset_peak();
    let report = indexer.apply_batch(live).await.unwrap();
    assert_eq!(report.changes, 1);
    Run {
        elapsed: report.elapsed,
        written: report.documents.added,
        deleted: report.documents.deleted,
        peak_growth_mb: status_kb("VmHWM:").saturating_sub(rss) as f64 / 1024.0,
    }
}

fn line(case: &str, way: &str, run: &Run) {
    println!(
        "| {case} | {way} | {:.2} | {} | {} | {:.0} |",
        run.elapsed.as_secs_f64(),
        run.written,
        run.deleted,
        run.peak_growth_mb
    );
}

/// Changes 1% of the merchant's offers (their names), so a whole-merchant change has
/// something to find.
async fn touch_one_percent(pool: &PgPool, round: usize) {
    sqlx::query(
        "UPDATE offers SET name = regexp_replace(name, ' r[0-9]+$', '') || ' r' || $2
         WHERE merchant_id = $1 AND offer_id % 100 = 7",
    )
    .bind(MERCHANT)
    .bind(round as i64)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::main]
async fn main() {
    // `cargo test --benches` runs bench targets with --bench absent: do nothing then.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let offers: i64 = env_or("BENCH_OFFERS", 100_000);
    let others: i64 = env_or("BENCH_OTHER_OFFERS", 0);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let server = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("cm_bench_diff_{:08x}", std::process::id());
    let mut admin = PgConnection::connect(&server).await.expect("connect");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(&server).unwrap();
    url.set_path(&format!("/{name}"));
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(url.as_str())
        .await
        .unwrap();
    catalog_mirror::db::migrate(&pool).await.unwrap();

    let started = Instant::now();
    fill(&pool, MERCHANT, 1, offers).await;
    // Other merchants of 100,000 offers each, ids after the benchmarked merchant's.
    let mut next = offers + 1;
    let mut merchant = MERCHANT + 1;
    while next <= offers + others {
        let count = (offers + others + 1 - next).min(100_000);
        fill(&pool, merchant, next, count).await;
        next += count;
        merchant += 1;
    }
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    eprintln!(
        "filled the mirror with {} offers in {:.1} s",
        offers + others,
        started.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir().unwrap();
    let (mut live, report) = indexer::rebuild(&pool, dir.path()).await.unwrap();
    eprintln!(
        "rebuilt the index: {} documents in {} ms",
        report.documents,
        report.elapsed.as_millis()
    );
    let index = SearchIndex::new(Relevance::embedded());
    index.swap(live.generation.clone());
    let indexer = Indexer::new(
        pool.clone(),
        IndexerSettings {
            index_dir: dir.path().to_path_buf(),
            poll_interval: Duration::from_secs(1),
        },
        index,
    );

    // The mirror read alone: what any way of applying the change pays first.
    let read = Instant::now();
    let mut tx = source::snapshot(&pool).await.unwrap();
    let count = source::merchant_offers(&mut tx, MERCHANT)
        .try_fold(
            0u64,
            |count, _| async move { Ok::<_, sqlx::Error>(count + 1) },
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    eprintln!(
        "mirror read alone: {count} rows in {:.2} s",
        read.elapsed().as_secs_f64()
    );

    println!(
        "whole-merchant change of merchant {MERCHANT} ({offers} offers; index of {} documents)",
        report.documents
    );
    println!(
        "| case | way | seconds | documents written | documents deleted | peak RSS growth MB |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    for round in 1..=rounds {
        publish_whole(&pool, MERCHANT).await;
        let (reopened, run) = before(&pool, live).await;
        live = reopened;
        line("unchanged", "before (delete all, add all)", &run);
        publish_whole(&pool, MERCHANT).await;
        line(
            "unchanged",
            "after (fingerprint diff)",
            &after(&indexer, &mut live).await,
        );

        touch_one_percent(&pool, round * 2).await;
        publish_whole(&pool, MERCHANT).await;
        let (reopened, run) = before(&pool, live).await;
        live = reopened;
        line("1% changed", "before (delete all, add all)", &run);
        touch_one_percent(&pool, round * 2 + 1).await;
        publish_whole(&pool, MERCHANT).await;
        line(
            "1% changed",
            "after (fingerprint diff)",
            &after(&indexer, &mut live).await,
        );
    }
    let segments = live.generation.reader.searcher().segment_readers().len();
    eprintln!("the index has {segments} segment(s) at the end");
    drop(live);
    pool.close().await;
    if std::env::var_os("BENCH_KEEP_DB").is_some() {
        eprintln!("kept database {name}");
        return;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}
