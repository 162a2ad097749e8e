//! Intake benchmark: signed webhooks per second and acknowledgement latency at 64
//! concurrent senders on loopback, for the real daemon (durable: every 2xx is a
//! committed event) next to the same route answering without touching the database
//! (signature check and parsing only), measured in the same run.
//!
//! Run: `cargo bench --bench intake` (needs PostgreSQL; `BENCH_DATABASE_URL` names the
//! server, default postgres://postgres@127.0.0.1:5432/postgres; `BENCH_SECS` the
//! duration per target, default 10; `BENCH_SENDERS` the concurrency, default 64;
//! `BENCH_POOL` the daemon's database pool size, default 16 as shipped;
//! `BENCH_MERCHANTS` how many merchants the deliveries are spread over, default 100:
//! fewer, and a batch holds more events of one merchant, as during an onboarding).
//! Deliveries not acknowledged are listed by why (status and the start of the body,
//! or the transport error).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use catalog_mirror::app::Application;
use catalog_mirror::config::{ConfigSource, Secret, Settings};
use catalog_mirror::http::webhooks::parse_delivery;
use catalog_mirror::violet::signature;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "sandbox-app-secret";

struct Delivery {
    headers: Vec<(&'static str, String)>,
    body: Bytes,
}

/// A production-like mix: mostly offer updates, some sync and merchant events, over
/// `merchants` merchants; every delivery has its own event id.
fn deliveries(count: usize, merchants: usize, run: &str) -> Vec<Delivery> {
    (0..count)
        .map(|i| {
            let merchant = 1000 + (i % merchants) as i64;
            let (topic, body) = match i % 20 {
                0 => ("PRODUCT_SYNC_STARTED", json!({"id": i, "merchant_id": merchant, "status": "IN_PROGRESS"})),
                1 => ("PRODUCT_SYNC_COMPLETED", json!({"id": i - 1, "merchant_id": merchant, "status": "COMPLETED", "total_products": 2000})),
                2 => ("MERCHANT_COMPLETE", json!({"id": merchant, "merchant_name": "Shop", "platform": "SHOPIFY"})),
                _ => (
                    "OFFER_UPDATED",
                    json!({
                        "id": merchant * 10_000_000 + i as i64, "merchant_id": merchant, "name": "Linen Travel Backpack",
                        "description": "<p>Hand-finished linen backpack with padded straps and a laptop sleeve.</p>".repeat(4),
                        "vendor": "Northwind", "seller": "Shop", "available": true, "visible": true,
                        "min_price": 4900, "max_price": 6900, "currency": "USD", "status": "AVAILABLE",
                        "tags": ["bags", "travel", "linen"], "source_category_name": "Bags",
                        "skus": [{"id": i, "sale_price": 4900, "retail_price": 5900, "qty_available": 7, "in_stock": true}],
                        "date_last_modified": "2026-11-01T10:00:00+0000"
                    }),
                ),
            };
            let body = Bytes::from(serde_json::to_vec(&body).unwrap());
            Delivery {
                headers: vec![
                    ("X-Violet-Hmac", signature::sign(SECRET, &body)),
                    ("X-Violet-Topic", topic.to_string()),
                    ("X-Violet-Event-Id", format!("{run}-{i}")),
                    ("X-Violet-Entity-Id", i.to_string()),
                    ("X-Violet-Merchant-Id", merchant.to_string()),
                    ("Content-Type", "application/json".into()),
                ],
                body,
            }
        })
        .collect()
}

struct Figures {
    requests: usize,
    acknowledged: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
    /// Why the deliveries not acknowledged were not: status and the start of the body,
    /// or the transport error, with how many.
    refusals: BTreeMap<String, usize>,
}

/// 64 senders loop over the prepared deliveries until the time is up.
async fn load(
    url: String,
    deliveries: Arc<Vec<Delivery>>,
    senders: usize,
    duration: Duration,
) -> Figures {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(senders)
        .build()
        .unwrap();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..senders)
        .map(|_| {
            let (client, url, deliveries, next) = (
                client.clone(),
                url.clone(),
                deliveries.clone(),
                next.clone(),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut ok = 0;
                let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
                while started.elapsed() < duration {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(delivery) = deliveries.get(i) else {
                        break;
                    };
                    let mut request = client.post(&url).body(delivery.body.clone());
                    for (name, value) in &delivery.headers {
                        request = request.header(*name, value);
                    }
                    let sent = Instant::now();
                    let response = request.send().await;
                    latencies.push(sent.elapsed());
                    let refusal = match response {
                        Ok(response) if response.status().is_success() => None,
                        Ok(response) => {
                            let status = response.status();
                            let body = response.text().await.unwrap_or_default();
                            let start: String = body.chars().take(80).collect();
                            Some(format!("{status} {start}"))
                        }
                        Err(err) => Some(format!("transport: {err}")),
                    };
                    match refusal {
                        None => ok += 1,
                        Some(reason) => *refusals.entry(reason).or_default() += 1,
                    }
                }
                (latencies, ok, refusals)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut acknowledged = 0;
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    for task in tasks {
        let (mut l, ok, refused) = task.await.unwrap();
        latencies.append(&mut l);
        acknowledged += ok;
        for (reason, count) in refused {
            *refusals.entry(reason).or_default() += count;
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Figures {
        requests: latencies.len(),
        acknowledged,
        elapsed,
        p50: pick(0.50),
        p99: pick(0.99),
        max: *latencies.last().unwrap(),
        refusals,
    }
}

/// The baseline: the same route, verification and parsing, no storage.
async fn baseline_server() -> SocketAddr {
    async fn receive(
        State(secrets): State<Arc<[Secret]>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        match parse_delivery(&secrets, &headers, &body) {
            Ok(event) => axum::Json(json!({"status": "processed", "event_id": event.event_id}))
                .into_response(),
            Err(rejection) => rejection.into_response(),
        }
    }
    let secrets: Arc<[Secret]> = vec![Secret::new(SECRET)].into();
    let router = Router::new()
        .route("/webhooks/violet", post(receive))
        .with_state(secrets);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn row(name: &str, f: &Figures) {
    println!(
        "{name:<34} {:>9} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8}",
        f.requests,
        f.acknowledged as f64 / f.elapsed.as_secs_f64(),
        f.p50.as_secs_f64() * 1e3,
        f.p99.as_secs_f64() * 1e3,
        f.max.as_secs_f64() * 1e3,
        f.requests - f.acknowledged,
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into());
    let seconds: u64 = env_or("BENCH_SECS", 10);
    let senders: usize = env_or("BENCH_SENDERS", 64);
    let merchants: usize = env_or::<usize>("BENCH_MERCHANTS", 100).max(1);
    let duration = Duration::from_secs(seconds);

    let name = format!("cm_bench_{:08x}", rand::random::<u32>());
    let mut admin = PgConnection::connect(&server).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    let mut url = url::Url::parse(&server)?;
    url.set_path(&format!("/{name}"));

    let mut settings = Settings::load(&ConfigSource::DefaultsOnly)?;
    settings.database.url = Secret::new(url.as_str());
    // Pool size: BENCH_POOL (default 16, the shipped default).
    settings.database.max_connections = env_or("BENCH_POOL", 16);
    settings.database.min_connections = settings.database.max_connections;
    settings.http.public_addr = "127.0.0.1:0".parse()?;
    settings.http.admin_addr = "127.0.0.1:0".parse()?;
    // Keep background jobs out of the measurement: only intake runs.
    settings.jobs.debounce_ms = 600_000;
    settings.sync.stall_timeout_secs = 86_400;
    settings.log.filter = "warn".into();
    catalog_mirror::telemetry::init(&settings.log);

    let app = Application::build(settings).await?;
    let durable_url = format!("http://{}/webhooks/violet", app.public_addr());
    let pool = app.pool().clone();
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let baseline_url = format!("http://{}/webhooks/violet", baseline_server().await);

    // Enough unique deliveries for either target at several thousand per second.
    let count = (seconds as usize) * 40_000;
    println!("preparing {count} signed deliveries per target ...");
    let for_baseline = Arc::new(deliveries(count, merchants, "b"));
    let for_durable = Arc::new(deliveries(count, merchants, "d"));

    // Warm up both (connections, pool), then measure.
    load(
        baseline_url.clone(),
        Arc::new(deliveries(2_000, merchants, "wb")),
        senders,
        Duration::from_secs(1),
    )
    .await;
    load(
        durable_url.clone(),
        Arc::new(deliveries(2_000, merchants, "wd")),
        senders,
        Duration::from_secs(1),
    )
    .await;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_events")
        .fetch_one(&pool)
        .await?;
    let baseline = load(baseline_url, for_baseline, senders, duration).await;
    let durable = load(durable_url, for_durable, senders, duration).await;
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_events")
        .fetch_one(&pool)
        .await?;

    println!();
    println!(
        "intake: {senders} concurrent senders, {seconds} s per target, loopback, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "{:<34} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "target", "requests", "acks/s", "p50 ms", "p99 ms", "max ms", "non-2xx"
    );
    row("same route, no database", &baseline);
    row("durable intake (PostgreSQL)", &durable);
    for (target, figures) in [("same route", &baseline), ("durable intake", &durable)] {
        for (reason, count) in &figures.refusals {
            println!("refused by {target}: {count} x {reason}");
        }
    }
    println!(
        "durability check: {} acknowledgements, {} events stored during the run",
        durable.acknowledged,
        after - before
    );

    shutdown.cancel();
    let _ = daemon.await;
    pool.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    if (after - before) as usize != durable.acknowledged {
        anyhow::bail!("acknowledged events and stored events differ");
    }
    Ok(())
}
