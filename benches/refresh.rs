//! Refresh benchmark: a full refresh of one 100,000-offer sandbox merchant (no rate
//! limit, the sandbox in this process), next to (a) COPY of the same rows into empty
//! tables and (b) a naive loop of one INSERT per offer, all in the same run, plus the
//! peak resident memory of the process during the refresh.
//!
//! - The refresh is `Mirror::refresh_products` (full mode) into an empty mirror: fetch
//!   1,000 pages over HTTP, decode, stage with COPY, publish in one transaction.
//! - (a) The offers and SKUs the refresh published are exported to files first (not
//!   timed), then streamed with `COPY ... FROM STDIN` into empty tables shaped like the
//!   live ones (`LIKE ... INCLUDING ALL`: keys and indexes) and, for reference, into
//!   bare tables without any index.
//! - (b) One autocommitted statement per offer inserting the offer row and its SKUs
//!   (bound parameters, one round trip per offer), on a sample, extrapolated.
//! - For context: the same refresh again with nothing changed upstream, and the
//!   listing alone (every page fetched and decoded, nothing written).
//! - CPU seconds of this process (which includes the sandbox) and of its PostgreSQL
//!   backends, per phase, from /proc: the two cores are shared, so wall time moves
//!   with other load while these say what each phase costs.
//! - Peak RSS: the kernel's high-water mark (VmHWM, reset just before the refresh) and
//!   a 5 ms RSS sampler; it includes the in-process sandbox serving the pages.
//!
//! Run: `cargo bench --bench refresh`. Environment: `BENCH_DATABASE_URL` (server,
//! default postgres://postgres@127.0.0.1:5432/postgres), `BENCH_OFFERS` (default
//! 100000), `BENCH_NAIVE_SAMPLE` (offers in the naive loop, default 5000),
//! `BENCH_KEEP_DB` (set: keep the database for inspection).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use catalog_mirror::config::{ConfigSource, Settings};
use catalog_mirror::mirror::{Mirror, MirrorSettings};
use catalog_mirror::sandbox::{MerchantSpec, Sandbox, SandboxConfig};
use catalog_mirror::violet::VioletClient;
use catalog_mirror::work::RefreshMode;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

const MERCHANT: i64 = 4242;
const WARMUP_MERCHANT: i64 = 4243;

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) a process has used, from /proc/PID/stat.
fn cpu_seconds(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which may hold spaces) start at ") ".
            let rest = stat.rsplit_once(") ")?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks =
                fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            Some(ticks as f64 / 100.0)
        })
        .unwrap_or(0.0)
}

/// CPU used by this process and by the PostgreSQL backends serving this database.
#[derive(Clone, Default)]
struct Cpu {
    ours: f64,
    backends: std::collections::HashMap<i32, f64>,
}

impl Cpu {
    async fn now(pool: &PgPool) -> anyhow::Result<Cpu> {
        let pids: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'",
        )
        .fetch_all(pool)
        .await?;
        Ok(Cpu {
            ours: cpu_seconds("self"),
            backends: pids
                .into_iter()
                .map(|pid| (pid, cpu_seconds(&pid.to_string())))
                .collect(),
        })
    }

    /// `(this process, PostgreSQL)` CPU seconds since `before`.
    async fn since(pool: &PgPool, before: &Cpu) -> anyhow::Result<(f64, f64)> {
        let after = Cpu::now(pool).await?;
        let pg = after
            .backends
            .iter()
            .map(|(pid, cpu)| cpu - before.backends.get(pid).copied().unwrap_or(0.0))
            .sum();
        Ok((after.ours - before.ours, pg))
    }
}

/// Wall time and CPU of one measured phase.
#[derive(Clone, Copy, Default)]
struct Phase {
    wall: Duration,
    ours: f64,
    pg: f64,
}

struct Meter {
    started: Instant,
    cpu: Cpu,
}

impl Meter {
    async fn start(pool: &PgPool) -> anyhow::Result<Meter> {
        Ok(Meter {
            cpu: Cpu::now(pool).await?,
            started: Instant::now(),
        })
    }

    async fn stop(self, pool: &PgPool) -> anyhow::Result<Phase> {
        let wall = self.started.elapsed();
        let (ours, pg) = Cpu::since(pool, &self.cpu).await?;
        Ok(Phase { wall, ours, pg })
    }

    /// A phase measured on a sample, scaled to the whole catalog.
    fn scaled(phase: Phase, factor: f64) -> Phase {
        Phase {
            wall: phase.wall.mul_f64(factor),
            ours: phase.ours * factor,
            pg: phase.pg * factor,
        }
    }
}

/// Samples RSS (from /proc/self/statm) every 5 ms until stopped; keeps the maximum.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let page = 4096u64;
        let thread = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(rss) =
                        std::fs::read_to_string("/proc/self/statm")
                            .ok()
                            .and_then(|s| {
                                s.split_whitespace()
                                    .nth(1)
                                    .and_then(|v| v.parse::<u64>().ok())
                            })
                    {
                        peak.fetch_max(rss * page, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        Self {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

const OFFER_COLUMNS: &str = "offer_id, merchant_id, external_id, name, description, html_description, source, \
     seller, vendor, available, visible, min_price, max_price, currency, status, publishing_status, tags, category, \
     image_url, date_created, date_last_modified, content_hash, raw, removed_at, catalog_version, updated_at";
const SKU_COLUMNS: &str = "sku_id, offer_id, merchant_id, external_id, name, gtin, upc, ean, isbn, in_stock, \
     quantity, sale_price, retail_price, currency, status, raw";

/// Exports `query` (a `COPY (...) TO STDOUT`) to a temporary file; returns it and its size.
async fn export(
    conn: &mut PgConnection,
    query: &str,
) -> anyhow::Result<(tempfile::NamedTempFile, u64)> {
    let mut file = tempfile::NamedTempFile::new()?;
    let mut bytes = 0u64;
    {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file.as_file_mut());
        let mut stream = conn.copy_out_raw(query).await?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            bytes += chunk.len() as u64;
            out.write_all(&chunk)?;
        }
        out.flush()?;
    }
    Ok((file, bytes))
}

/// Streams a file into `COPY ... FROM STDIN`, 1 MiB at a time.
async fn copy_in(
    conn: &mut PgConnection,
    statement: &str,
    file: &tempfile::NamedTempFile,
) -> anyhow::Result<u64> {
    let mut reader = tokio::fs::File::open(file.path()).await?;
    let mut copy = conn.copy_in_raw(statement).await?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        copy.send(&buf[..n]).await?;
    }
    Ok(copy.finish().await?)
}

async fn checkpoint(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("CHECKPOINT").execute(pool).await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct OfferRow {
    offer_id: i64,
    merchant_id: i64,
    external_id: Option<String>,
    name: String,
    description: Option<String>,
    html_description: Option<String>,
    source: Option<String>,
    seller: Option<String>,
    vendor: Option<String>,
    available: Option<bool>,
    visible: Option<bool>,
    min_price: Option<i64>,
    max_price: Option<i64>,
    currency: Option<String>,
    status: Option<String>,
    publishing_status: Option<String>,
    tags: Vec<String>,
    category: Option<String>,
    image_url: Option<String>,
    date_created: Option<DateTime<Utc>>,
    date_last_modified: Option<DateTime<Utc>>,
    content_hash: String,
    raw: Value,
}

#[derive(sqlx::FromRow)]
struct SkuRow {
    sku_id: i64,
    offer_id: i64,
    merchant_id: i64,
    external_id: Option<String>,
    name: Option<String>,
    gtin: Option<String>,
    upc: Option<String>,
    ean: Option<String>,
    isbn: Option<String>,
    in_stock: Option<bool>,
    quantity: Option<i64>,
    sale_price: Option<i64>,
    retail_price: Option<i64>,
    currency: Option<String>,
    status: Option<String>,
    raw: Value,
}

const NAIVE_INSERT: &str = r#"
WITH o AS (
    INSERT INTO naive_offers (offer_id, merchant_id, external_id, name, description, html_description, source,
        seller, vendor, available, visible, min_price, max_price, currency, status, publishing_status, tags,
        category, image_url, date_created, date_last_modified, content_hash, raw, catalog_version, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
        $23, 1, now())
)
INSERT INTO naive_skus (sku_id, offer_id, merchant_id, external_id, name, gtin, upc, ean, isbn, in_stock,
    quantity, sale_price, retail_price, currency, status, raw)
SELECT * FROM UNNEST($24::bigint[], $25::bigint[], $26::bigint[], $27::text[], $28::text[], $29::text[],
    $30::text[], $31::text[], $32::text[], $33::boolean[], $34::bigint[], $35::bigint[], $36::bigint[],
    $37::text[], $38::text[], $39::jsonb[])
"#;

/// One statement per offer (the offer row and its SKUs), autocommitted.
async fn naive_insert(
    conn: &mut PgConnection,
    offer: &OfferRow,
    skus: &[SkuRow],
) -> anyhow::Result<()> {
    macro_rules! col {
        ($f:ident) => {
            skus.iter().map(|s| s.$f.clone()).collect::<Vec<_>>()
        };
    }
    sqlx::query(NAIVE_INSERT)
        .bind(offer.offer_id)
        .bind(offer.merchant_id)
        .bind(&offer.external_id)
        .bind(&offer.name)
        .bind(&offer.description)
        .bind(&offer.html_description)
        .bind(&offer.source)
        .bind(&offer.seller)
        .bind(&offer.vendor)
        .bind(offer.available)
        .bind(offer.visible)
        .bind(offer.min_price)
        .bind(offer.max_price)
        .bind(&offer.currency)
        .bind(&offer.status)
        .bind(&offer.publishing_status)
        .bind(&offer.tags)
        .bind(&offer.category)
        .bind(&offer.image_url)
        .bind(offer.date_created)
        .bind(offer.date_last_modified)
        .bind(&offer.content_hash)
        .bind(&offer.raw)
        .bind(col!(sku_id))
        .bind(col!(offer_id))
        .bind(col!(merchant_id))
        .bind(col!(external_id))
        .bind(col!(name))
        .bind(col!(gtin))
        .bind(col!(upc))
        .bind(col!(ean))
        .bind(col!(isbn))
        .bind(col!(in_stock))
        .bind(col!(quantity))
        .bind(col!(sale_price))
        .bind(col!(retail_price))
        .bind(col!(currency))
        .bind(col!(status))
        .bind(col!(raw))
        .execute(conn)
        .await?;
    Ok(())
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let offers: u64 = env_or("BENCH_OFFERS", 100_000);
    let sample: i64 = env_or("BENCH_NAIVE_SAMPLE", 5_000);
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let name = format!("cm_bench_refresh_{:08x}", rand::random::<u32>());
    let mut admin = PgConnection::connect(&server).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    let mut url = url::Url::parse(&server)?;
    url.set_path(&format!("/{name}"));
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect(url.as_str())
        .await?;
    catalog_mirror::db::migrate(&pool).await?;
    let pg_version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&pool)
        .await?;

    let sandbox = Sandbox::start(
        SandboxConfig {
            seed: 1,
            merchants: vec![
                MerchantSpec {
                    id: MERCHANT as u64,
                    name: "Bench Outfitters".into(),
                    offers,
                    collections: 20,
                },
                MerchantSpec {
                    id: WARMUP_MERCHANT as u64,
                    name: "Warm Up".into(),
                    offers: 2_000,
                    collections: 2,
                },
            ],
            ..Default::default()
        },
        "127.0.0.1:0".parse()?,
    )
    .await?;
    let mut settings = Settings::load(&ConfigSource::DefaultsOnly)?;
    settings.violet.base_url = sandbox.base_url();
    settings.violet.rate_limit_per_sec = 1_000_000;
    settings.violet.merchant_rate_limit_per_sec = 1_000_000;
    let client = VioletClient::new(&settings.violet)?;
    let mirror = Mirror::new(
        pool.clone(),
        client,
        MirrorSettings::new(&settings.refresh, &settings.jobs),
    );
    let cancel = CancellationToken::new();

    // Warm up: login, connections, code paths.
    mirror
        .refresh_products(WARMUP_MERCHANT, RefreshMode::Full, &cancel)
        .await?;
    checkpoint(&pool).await?;

    // The listing alone: fetch and decode every page, write nothing.
    let meter = Meter::start(&pool).await?;
    let mut listed = 0u64;
    let mut pages = std::pin::pin!(VioletClient::new(&settings.violet)?.offer_pages(MERCHANT));
    while let Some(page) = pages.next().await {
        listed += page?.content.len() as u64;
    }
    let fetch_only = meter.stop(&pool).await?;
    anyhow::ensure!(listed == offers, "listed {listed} of {offers} offers");
    checkpoint(&pool).await?;

    // The refresh, with memory watched.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = status_kb("VmRSS:") * 1024;
    let sampler = RssSampler::start();
    let meter = Meter::start(&pool).await?;
    let report = mirror
        .refresh_products(MERCHANT, RefreshMode::Full, &cancel)
        .await?;
    let refresh = meter.stop(&pool).await?;
    let sampled_peak = sampler.finish();
    let hwm = status_kb("VmHWM:") * 1024;
    anyhow::ensure!(
        report.upserted == offers,
        "the refresh wrote {} of {offers} offers",
        report.upserted
    );
    let skus: i64 = sqlx::query_scalar("SELECT count(*) FROM skus WHERE merchant_id = $1")
        .bind(MERCHANT)
        .fetch_one(&pool)
        .await?;

    // The same refresh again: nothing changed upstream, every row is skipped by hash.
    checkpoint(&pool).await?;
    let meter = Meter::start(&pool).await?;
    let again = mirror
        .refresh_products(MERCHANT, RefreshMode::Full, &cancel)
        .await?;
    let unchanged = meter.stop(&pool).await?;
    anyhow::ensure!(
        again.upserted == 0 && again.removed == 0,
        "an unchanged refresh wrote rows"
    );

    // (a) COPY of the same rows into empty tables.
    let mut conn = pool.acquire().await?;
    let (offers_file, offers_bytes) = export(
        &mut conn,
        &format!("COPY (SELECT {OFFER_COLUMNS} FROM offers WHERE merchant_id = {MERCHANT} ORDER BY offer_id) TO STDOUT"),
    )
    .await?;
    let (skus_file, skus_bytes) = export(
        &mut conn,
        &format!("COPY (SELECT {SKU_COLUMNS} FROM skus WHERE merchant_id = {MERCHANT} ORDER BY sku_id) TO STDOUT"),
    )
    .await?;
    sqlx::raw_sql(
        "CREATE TABLE copy_offers (LIKE offers INCLUDING ALL); CREATE TABLE copy_skus (LIKE skus INCLUDING ALL);
         CREATE TABLE bare_offers (LIKE offers INCLUDING DEFAULTS); CREATE TABLE bare_skus (LIKE skus INCLUDING DEFAULTS);
         CREATE TABLE naive_offers (LIKE offers INCLUDING ALL); CREATE TABLE naive_skus (LIKE skus INCLUDING ALL);",
    )
    .execute(&mut *conn)
    .await?;
    checkpoint(&pool).await?;
    let meter = Meter::start(&pool).await?;
    copy_in(
        &mut conn,
        &format!("COPY copy_offers ({OFFER_COLUMNS}) FROM STDIN"),
        &offers_file,
    )
    .await?;
    copy_in(
        &mut conn,
        &format!("COPY copy_skus ({SKU_COLUMNS}) FROM STDIN"),
        &skus_file,
    )
    .await?;
    let copy_indexed = meter.stop(&pool).await?;
    checkpoint(&pool).await?;
    let meter = Meter::start(&pool).await?;
    copy_in(
        &mut conn,
        &format!("COPY bare_offers ({OFFER_COLUMNS}) FROM STDIN"),
        &offers_file,
    )
    .await?;
    copy_in(
        &mut conn,
        &format!("COPY bare_skus ({SKU_COLUMNS}) FROM STDIN"),
        &skus_file,
    )
    .await?;
    let copy_bare = meter.stop(&pool).await?;
    drop((offers_file, skus_file));

    // (b) The naive loop on a sample, extrapolated.
    let sample_offers: Vec<OfferRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {OFFER_COLUMNS} FROM offers WHERE merchant_id = $1 ORDER BY offer_id LIMIT $2"
    )))
    .bind(MERCHANT)
    .bind(sample)
    .fetch_all(&mut *conn)
    .await?;
    let last = sample_offers.last().map_or(0, |o| o.offer_id);
    let sample_skus: Vec<SkuRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SKU_COLUMNS} FROM skus WHERE merchant_id = $1 AND offer_id <= $2 ORDER BY offer_id, sku_id"
    )))
    .bind(MERCHANT)
    .bind(last)
    .fetch_all(&mut *conn)
    .await?;
    checkpoint(&pool).await?;
    let meter = Meter::start(&pool).await?;
    let mut from = 0;
    for offer in &sample_offers {
        let to = from
            + sample_skus[from..]
                .iter()
                .take_while(|s| s.offer_id == offer.offer_id)
                .count();
        naive_insert(&mut conn, offer, &sample_skus[from..to]).await?;
        from = to;
    }
    let naive = Meter::scaled(
        meter.stop(&pool).await?,
        offers as f64 / sample_offers.len().max(1) as f64,
    );
    drop(conn);

    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let secs = |d: Duration| d.as_secs_f64();
    println!();
    println!(
        "refresh: one merchant, {offers} offers ({skus} SKUs), sandbox in-process over loopback, no rate limit, \
         page size {}, batch {}",
        settings.violet.page_size, settings.refresh.batch_size
    );
    println!(
        "machine: {} cores, PostgreSQL {pg_version}; load average before {}, after {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        load_before
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        load_after
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    println!(
        "rows as COPY text: offers {:.0} MiB, SKUs {:.0} MiB",
        mb(offers_bytes),
        mb(skus_bytes)
    );
    println!();
    println!(
        "{:<58} {:>8} {:>9} {:>8} {:>9} {:>8}",
        "", "seconds", "offers/s", "vs COPY", "CPU ours", "CPU pg"
    );
    let line = |label: &str, p: Phase| {
        println!(
            "{label:<58} {:>8.2} {:>9.0} {:>7.2}x {:>9.2} {:>8.2}",
            secs(p.wall),
            offers as f64 / secs(p.wall),
            secs(p.wall) / secs(copy_indexed.wall),
            p.ours,
            p.pg
        );
    };
    let part = |label: &str, d: Duration| {
        println!(
            "{label:<58} {:>8.2} {:>9} {:>7.2}x",
            secs(d),
            "",
            secs(d) / secs(copy_indexed.wall)
        );
    };
    line(
        "full refresh (fetch, stage, publish), empty mirror",
        refresh,
    );
    part("  of which the publishing transaction", report.publish);
    line("full refresh again, nothing changed", unchanged);
    part("  of which the publishing transaction", again.publish);
    line(
        "listing alone: fetch and decode every page, no database",
        fetch_only,
    );
    line(
        "(a) COPY same rows into empty tables with keys/indexes",
        copy_indexed,
    );
    line(
        "(a') COPY same rows into empty tables, no indexes",
        copy_bare,
    );
    line(
        &format!(
            "(b) naive: 1 INSERT per offer, {} sampled, extrapolated",
            sample_offers.len()
        ),
        naive,
    );
    println!(
        "(CPU: seconds used by this process, which includes the sandbox, and by its PostgreSQL backends)"
    );
    println!();
    println!(
        "peak RSS during the refresh: {:.0} MiB (VmHWM), {:.0} MiB sampled every 5 ms; {:.0} MiB before it",
        mb(hwm),
        mb(sampled_peak),
        mb(rss_before)
    );
    let vs_copy = secs(refresh.wall) / secs(copy_indexed.wall);
    let vs_bare = secs(refresh.wall) / secs(copy_bare.wall);
    let vs_naive = secs(naive.wall) / secs(refresh.wall);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "targets: within 2x of COPY: {:.2}x ({}; {:.2}x of COPY without indexes); \
         >=10x faster than naive: {:.1}x ({}); peak RSS < 200 MiB: {:.0} MiB ({})",
        vs_copy,
        verdict(vs_copy <= 2.0),
        vs_bare,
        vs_naive,
        verdict(vs_naive >= 10.0),
        mb(hwm),
        verdict(hwm < 200 * 1024 * 1024)
    );

    sandbox.shutdown().await;
    pool.close().await;
    if std::env::var_os("BENCH_KEEP_DB").is_some() {
        println!("kept database {name}");
        return Ok(());
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    Ok(())
}
