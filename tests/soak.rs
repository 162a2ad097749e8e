//! A randomized, model-based soak of the whole daemon (in the spirit of Jepsen).
//!
//! A seeded generator plays random schedules against two `catalog-mirror serve`
//! processes sharing one database and the sandbox: product and collection syncs that
//! complete, fail or stall, with catalog changes between syncs; offer events inside
//! and outside sync windows; duplicate and out-of-order deliveries. Meanwhile faults
//! fire: 5xx bursts, 429 storms, 200 answers that are no page, truncated and stale
//! pages, slow pages, expired tokens, a daemon paused past its job leases (its claims
//! lapse and the other daemon takes over), and a daemon killed with SIGKILL and
//! started again. A concurrent reader searches all along.
//!
//! At the end, with the faults cleared and one last sync per merchant:
//! - every acknowledged delivery is stored, once;
//! - the mirror equals the sandbox's catalog (offers and collection membership);
//! - each daemon's index equals the mirror's storefront;
//! - no job is left pending or running;
//! - no offer the reader had found ever went missing from search while the sandbox
//!   still had it unchanged and the mirror's storefront showed it (merchants stay
//!   connected and enabled).
//!
//! `scripts/test` runs one short schedule with a fixed seed. A longer run:
//! `SOAK_SCHEDULES=6 SOAK_STEPS=60 SOAK_SEED=41 cargo test --test soak -- --nocapture`
//! (each schedule uses its own seed, `SOAK_SEED + n`, printed with its statistics).

mod common;
mod mirror_common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use catalog_mirror::mirror::queries;
use catalog_mirror::sandbox::{Catalog, MerchantSpec, RateLimit, Sandbox, SandboxConfig};
use common::daemon::Daemon;
use common::webhook::Delivery;
use common::{TestDb, eventually};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sqlx::PgPool;

const MERCHANTS: [u64; 3] = [7101, 7102, 7103];
/// Short leases, so a paused daemon loses its claims within the schedule.
const LEASE_SECS: u64 = 3;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one schedule did, for the report.
#[derive(Debug, Default)]
struct Tally {
    deliveries: u64,
    acknowledged: u64,
    duplicates: u64,
    reordered: u64,
    syncs: BTreeMap<&'static str, u64>,
    faults: BTreeMap<&'static str, u64>,
}

/// The daemons, the sandbox and the model of what was acknowledged.
struct World {
    db: TestDb,
    pool: PgPool,
    sandbox: Sandbox,
    index_dirs: [tempfile::TempDir; 2],
    daemons: [Option<Daemon>; 2],
    http: reqwest::Client,
    acked: BTreeSet<String>,
    sent: Vec<Delivery>,
    next_event: u64,
    tally: Tally,
}

fn daemon_env(db: &TestDb, sandbox: &Sandbox, index_dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", db.url.clone()),
        ("CATALOG_MIRROR_HTTP__PUBLIC_ADDR", "127.0.0.1:0".into()),
        ("CATALOG_MIRROR_HTTP__ADMIN_ADDR", "127.0.0.1:0".into()),
        ("CATALOG_MIRROR_VIOLET__BASE_URL", sandbox.base_url()),
        ("CATALOG_MIRROR_VIOLET__MAX_RETRIES", "2".into()),
        ("CATALOG_MIRROR_VIOLET__RETRY_BASE_MS", "20".into()),
        ("CATALOG_MIRROR_VIOLET__RETRY_MAX_MS", "200".into()),
        ("CATALOG_MIRROR_VIOLET__RETRY_AFTER_MAX_SECS", "1".into()),
        ("CATALOG_MIRROR_VIOLET__REQUEST_TIMEOUT_MS", "3000".into()),
        ("CATALOG_MIRROR_VIOLET__RATE_LIMIT_PER_SEC", "1000".into()),
        (
            "CATALOG_MIRROR_VIOLET__MERCHANT_RATE_LIMIT_PER_SEC",
            "1000".into(),
        ),
        ("CATALOG_MIRROR_JOBS__DEBOUNCE_MS", "300".into()),
        ("CATALOG_MIRROR_JOBS__POLL_INTERVAL_MS", "200".into()),
        ("CATALOG_MIRROR_JOBS__LEASE_SECS", LEASE_SECS.to_string()),
        ("CATALOG_MIRROR_JOBS__RETRY_BASE_MS", "200".into()),
        ("CATALOG_MIRROR_JOBS__RETRY_MAX_MS", "1000".into()),
        ("CATALOG_MIRROR_JOBS__MAX_ATTEMPTS", "6".into()),
        ("CATALOG_MIRROR_JOBS__DRAIN_SECS", "2".into()),
        ("CATALOG_MIRROR_SYNC__STALL_TIMEOUT_SECS", "3".into()),
        ("CATALOG_MIRROR_SYNC__FAILED_RETRY_BASE_SECS", "1".into()),
        ("CATALOG_MIRROR_SYNC__FAILED_RETRY_CAP_SECS", "2".into()),
        (
            "CATALOG_MIRROR_SEARCH__INDEX_DIR",
            index_dir.display().to_string(),
        ),
        ("CATALOG_MIRROR_SEARCH__POLL_INTERVAL_MS", "100".into()),
        ("CATALOG_MIRROR_LOG__FILTER", "info".into()),
    ]
}

impl World {
    async fn start(seed: u64) -> World {
        let db = TestDb::empty().await;
        let sandbox = Sandbox::start(
            SandboxConfig {
                seed,
                merchants: MERCHANTS
                    .iter()
                    .map(|&id| MerchantSpec {
                        id,
                        name: format!("Soak {id}"),
                        offers: 300,
                        collections: 3,
                    })
                    .collect(),
                ..Default::default()
            },
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let index_dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let a = Daemon::spawn(None, &daemon_env(&db, &sandbox, index_dirs[0].path()));
        let b = Daemon::spawn(None, &daemon_env(&db, &sandbox, index_dirs[1].path()));
        let pool = db.pool().await;
        World {
            db,
            pool,
            sandbox,
            index_dirs,
            daemons: [Some(a), Some(b)],
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
            acked: BTreeSet::new(),
            sent: Vec::new(),
            next_event: 0,
            tally: Tally::default(),
        }
    }

    fn catalog(&self) -> Arc<Catalog> {
        self.sandbox.catalog()
    }

    /// Delivers to a random daemon that is up, and to the other if that fails (as
    /// Violet retries); remembers it as acknowledged only on a 2xx.
    async fn deliver(&mut self, rng: &mut StdRng, delivery: &Delivery) {
        self.tally.deliveries += 1;
        let first = rng.random_range(0..2usize);
        for which in [first, 1 - first] {
            let Some(daemon) = &self.daemons[which] else {
                continue;
            };
            let url = daemon.url("/webhooks/violet");
            if let Ok(response) = delivery.try_send(&self.http, &url).await
                && response.status().is_success()
            {
                self.tally.acknowledged += 1;
                self.acked.insert(delivery.event_id.clone().unwrap());
                return;
            }
        }
    }

    fn event(&mut self, topic: &str, merchant: u64, entity: &str, body: &Value) -> Delivery {
        self.next_event += 1;
        let delivery = Delivery::new(&format!("soak-{}", self.next_event), topic, body)
            .entity(entity)
            .merchant(merchant as i64);
        self.sent.push(delivery.clone());
        delivery
    }

    /// The events of one sync: STARTED, then (for products) the catalog changes and a
    /// few offer events, then the end; sometimes two neighbours swapped.
    fn sync_events(&mut self, rng: &mut StdRng, merchant: u64) -> Vec<Delivery> {
        let products = rng.random_bool(0.75);
        let prefix = if products { "PRODUCT" } else { "COLLECTION" };
        self.next_event += 1;
        let sync_id = format!("sync-{merchant}-{}", self.next_event);
        let record =
            |status: &str| json!({"id": sync_id, "merchant_id": merchant, "status": status});
        let mut events = vec![self.event(
            &format!("{prefix}_SYNC_STARTED"),
            merchant,
            &sync_id,
            &record("IN_PROGRESS"),
        )];
        let outcome = rng.random_range(0..100);
        let ending = match outcome {
            0..60 => Some("COMPLETED"),
            60..85 => Some("FAILED"),
            _ => None, // stalls: no end
        };
        let label = match ending {
            Some("COMPLETED") => "completed",
            Some(_) => "failed",
            None => "stalled",
        };
        *self
            .tally
            .syncs
            .entry(if products { "products" } else { "collections" })
            .or_default() += 1;
        *self.tally.syncs.entry(label).or_default() += 1;
        if products {
            let change = self.catalog().advance(merchant);
            let catalog = self.catalog();
            for &id in change.updated.iter().take(rng.random_range(0..4)) {
                if let Some(body) = catalog.offer_json(id) {
                    events.push(self.event("OFFER_UPDATED", merchant, &id.to_string(), &body));
                }
            }
        }
        if let Some(ending) = ending {
            events.push(self.event(
                &format!("{prefix}_SYNC_{ending}"),
                merchant,
                &sync_id,
                &record(ending),
            ));
        }
        if events.len() > 1 && rng.random_bool(0.2) {
            let i = rng.random_range(0..events.len() - 1);
            events.swap(i, i + 1);
            self.tally.reordered += 1;
        }
        events
    }

    /// Offer events outside a sync: updates of offers as they are now, and removals
    /// of offers the sandbox removed.
    fn offer_events(&mut self, rng: &mut StdRng, merchant: u64) -> Vec<Delivery> {
        let catalog = self.catalog();
        let ids: Vec<u64> = catalog.offer_ids(merchant).collect();
        let mut events = Vec::new();
        for _ in 0..rng.random_range(1..4) {
            let id = ids[rng.random_range(0..ids.len())];
            if let Some(body) = catalog.offer_json(id) {
                events.push(self.event("OFFER_UPDATED", merchant, &id.to_string(), &body));
            }
        }
        if rng.random_bool(0.5) {
            let change = catalog.advance(merchant);
            for &id in change.removed.iter().take(2) {
                if let Some(body) = catalog.removed_offer_json(id) {
                    events.push(self.event("OFFER_REMOVED", merchant, &id.to_string(), &body));
                }
            }
        }
        events
    }

    /// Fires one fault; some end by themselves (counters), the rest are undone at the
    /// next step or at the end.
    async fn fault(&mut self, rng: &mut StdRng) {
        let fault = match rng.random_range(0..9) {
            0 => {
                let n = rng.random_range(1..6);
                self.sandbox.set_knobs(|k| k.fail_next_5xx = n);
                "5xx burst"
            }
            1 => {
                self.sandbox.set_knobs(|k| {
                    k.rate_limit = Some(RateLimit {
                        requests_per_sec: 3,
                        retry_after_secs: 1,
                    })
                });
                "429 storm"
            }
            2 => {
                let n = rng.random_range(1..5);
                self.sandbox.set_knobs(|k| k.odd_ok_next = n);
                "200 that is no page"
            }
            3 => {
                let n = rng.random_range(1..4);
                self.sandbox.set_knobs(|k| k.truncate_next = n);
                "truncated page"
            }
            4 => {
                let n = rng.random_range(1..4);
                self.sandbox.set_knobs(|k| k.stale_page_next = n);
                "stale page"
            }
            5 => {
                self.sandbox
                    .set_knobs(|k| k.latency = Duration::from_millis(40));
                "slow pages"
            }
            6 => {
                self.sandbox.expire_tokens();
                "token expiry"
            }
            7 => {
                // A pause longer than the lease: the other daemon reaps and runs its
                // jobs; when it resumes, its copies must publish nothing.
                if let Some(daemon) = &self.daemons[0] {
                    signal(daemon, "-STOP");
                    tokio::time::sleep(Duration::from_secs(LEASE_SECS + 1)).await;
                    signal(daemon, "-CONT");
                }
                "lapsed lease"
            }
            _ => {
                if let Some(mut daemon) = self.daemons[0].take() {
                    signal(&daemon, "-KILL");
                    let _ = daemon.wait(Duration::from_secs(5)).await;
                }
                let env = daemon_env(&self.db, &self.sandbox, self.index_dirs[0].path());
                self.daemons[0] = Some(Daemon::spawn(None, &env));
                "kill -9 and restart"
            }
        };
        *self.tally.faults.entry(fault).or_default() += 1;
    }

    fn calm(&self) {
        self.sandbox.set_knobs(|k| *k = Default::default());
    }
}

fn signal(daemon: &Daemon, which: &str) {
    let status = std::process::Command::new("kill")
        .args([which, &daemon.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {which}");
}

/// Ids of the merchant's offers one daemon's search shows (`None`: no answer).
async fn searched(
    http: &reqwest::Client,
    daemon_url: &str,
    merchant: u64,
) -> Option<BTreeSet<u64>> {
    let response = http
        .post(format!("{daemon_url}/indexes/offers/search"))
        .json(&json!({
            "q": "",
            "filter": format!("merchant_id = {merchant}"),
            "limit": 1000,
            "attributesToRetrieve": ["id"],
        }))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    Some(
        body["hits"]
            .as_array()?
            .iter()
            .filter_map(|hit| hit["id"].as_u64())
            .collect(),
    )
}

/// Searches the second daemon (never paused or killed) until stopped; reports every
/// offer that went missing while the sandbox still had it unchanged since the reader
/// first found it and the mirror's storefront (the `storefront_offers` view, the rule
/// the index applies) still shows it.
fn spawn_reader(
    http: reqwest::Client,
    url: String,
    catalog: Arc<Catalog>,
    pool: PgPool,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<(u64, Vec<String>)> {
    tokio::spawn(async move {
        // offer -> the sandbox's date_last_modified when the reader first found it.
        let mut found: HashMap<u64, Value> = HashMap::new();
        let mut violations = Vec::new();
        let mut reads = 0;
        while !stop.is_cancelled() {
            for merchant in MERCHANTS {
                let Some(shown) = searched(&http, &url, merchant).await else {
                    continue;
                };
                reads += 1;
                for &id in &shown {
                    found.entry(id).or_insert_with(|| {
                        catalog
                            .offer_json(id)
                            .map(|o| o["date_last_modified"].clone())
                            .unwrap_or(Value::Null)
                    });
                }
                let mut unchanged_but_gone = Vec::new();
                found.retain(|&id, seen_at| {
                    if id / catalog_mirror::sandbox::OFFER_ID_STRIDE != merchant
                        || shown.contains(&id)
                    {
                        return true;
                    }
                    if let Some(now) = catalog.offer_json(id)
                        && now["date_last_modified"] == *seen_at
                    {
                        unchanged_but_gone.push(id);
                    }
                    false
                });
                // Hidden upstream before the reader first found it (the index had not
                // caught up yet) is no violation: only an offer the mirror still shows.
                for id in unchanged_but_gone {
                    if queries::is_on_storefront(&pool, id as i64)
                        .await
                        .unwrap_or(false)
                    {
                        violations.push(format!(
                            "offer {id} of merchant {merchant} left search while the sandbox has it unchanged and the mirror shows it"
                        ));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        (reads, violations)
    })
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// One schedule of `steps` random steps with `seed`, then the checks.
async fn schedule(seed: u64, steps: u64) -> Tally {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut world = World::start(seed).await;

    // Onboarding: every merchant syncs once, without faults.
    for merchant in MERCHANTS {
        let events = {
            let id = format!("onboard-{merchant}");
            let record = json!({"id": id, "merchant_id": merchant, "status": "COMPLETED"});
            vec![
                world.event(
                    "MERCHANT_CONNECTED",
                    merchant,
                    &merchant.to_string(),
                    &json!({"id": merchant, "merchant_name": format!("Soak {merchant}")}),
                ),
                world.event("PRODUCT_SYNC_STARTED", merchant, &id, &record),
                world.event("PRODUCT_SYNC_COMPLETED", merchant, &id, &record),
                world.event("COLLECTION_SYNC_STARTED", merchant, &id, &record),
                world.event("COLLECTION_SYNC_COMPLETED", merchant, &id, &record),
            ]
        };
        for event in events {
            world.deliver(&mut rng, &event).await;
        }
    }
    let reader_url = world.daemons[1].as_ref().unwrap().url("");
    let stop = tokio_util::sync::CancellationToken::new();
    let reader = spawn_reader(
        world.http.clone(),
        reader_url.clone(),
        world.catalog(),
        world.pool.clone(),
        stop.clone(),
    );

    for _ in 0..steps {
        let merchant = MERCHANTS[rng.random_range(0..MERCHANTS.len())];
        match rng.random_range(0..100) {
            0..35 => {
                let events = world.sync_events(&mut rng, merchant);
                for event in events {
                    world.deliver(&mut rng, &event).await;
                }
            }
            35..50 => {
                let events = world.offer_events(&mut rng, merchant);
                for event in events {
                    world.deliver(&mut rng, &event).await;
                }
            }
            50..60 => {
                let again = world.sent[rng.random_range(0..world.sent.len())].clone();
                world.tally.duplicates += 1;
                world.deliver(&mut rng, &again).await;
            }
            60..85 => world.fault(&mut rng).await,
            _ => world.calm(),
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..400))).await;
    }

    // The end: no more faults, one last complete sync of each merchant and kind.
    world.calm();
    for merchant in MERCHANTS {
        for prefix in ["PRODUCT", "COLLECTION"] {
            let id = format!("final-{prefix}-{merchant}");
            let record = json!({"id": id, "merchant_id": merchant, "status": "COMPLETED"});
            let started = world.event(&format!("{prefix}_SYNC_STARTED"), merchant, &id, &record);
            let completed =
                world.event(&format!("{prefix}_SYNC_COMPLETED"), merchant, &id, &record);
            world.deliver(&mut rng, &started).await;
            world.deliver(&mut rng, &completed).await;
        }
    }
    let pool = world.pool.clone();
    let settled = eventually(Duration::from_secs(120), || async {
        count(
            &pool,
            "SELECT count(*) FROM jobs WHERE state IN ('pending', 'running')",
        )
        .await
            == 0
    })
    .await;
    let jobs: Vec<(i64, String, String, i32, Option<String>)> = sqlx::query_as(
        "SELECT id, kind, state, attempts, last_error FROM jobs WHERE state IN ('pending', 'running')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        settled,
        "seed {seed}: jobs left pending or running: {jobs:?}"
    );

    // Every acknowledged delivery is stored, once.
    let stored: Vec<(String, i64)> =
        sqlx::query_as("SELECT event_id, count(*) FROM webhook_events GROUP BY event_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let stored: BTreeMap<String, i64> = stored.into_iter().collect();
    for id in &world.acked {
        assert_eq!(
            stored.get(id),
            Some(&1),
            "seed {seed}: acknowledged {id} stored once"
        );
    }

    // The mirror equals the sandbox.
    let catalog = world.catalog();
    for merchant in MERCHANTS {
        mirror_common::assert_offers_match(&pool, &catalog, merchant as i64).await;
        mirror_common::assert_collections_match(&pool, &catalog, merchant as i64).await;
    }

    // Each daemon's index equals the mirror's storefront.
    for daemon in world.daemons.iter().flatten() {
        let url = daemon.url("");
        for merchant in MERCHANTS {
            let expected: BTreeSet<u64> = queries::storefront_offers(&pool, merchant as i64)
                .await
                .unwrap()
                .iter()
                .map(|o| o.offer_id as u64)
                .collect();
            let same = eventually(Duration::from_secs(30), || async {
                searched(&world.http, &url, merchant).await.as_ref() == Some(&expected)
            })
            .await;
            assert!(
                same,
                "seed {seed}: the index of {url} equals the mirror of {merchant}"
            );
        }
    }

    stop.cancel();
    let (reads, violations) = reader.await.unwrap();
    assert!(reads > 0, "the reader searched");
    assert!(violations.is_empty(), "seed {seed}: {violations:#?}");
    println!(
        "soak seed {seed}: {steps} steps, {reads} searches by the reader, {:?}",
        world.tally
    );
    world.tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_schedules_with_faults_keep_every_promise() {
    let seed = env_number("SOAK_SEED", 20261202);
    let schedules = env_number("SOAK_SCHEDULES", 1);
    let steps = env_number("SOAK_STEPS", 30);
    let started = Instant::now();
    let mut faults: BTreeMap<&'static str, u64> = BTreeMap::new();
    for n in 0..schedules {
        let tally = schedule(seed + n, steps).await;
        for (fault, times) in tally.faults {
            *faults.entry(fault).or_default() += times;
        }
    }
    println!(
        "soak: {schedules} schedule(s) of {steps} steps survived in {:?}; faults fired: {faults:?}",
        started.elapsed()
    );
}
