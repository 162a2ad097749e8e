//! A randomized, model-based soak of the whole daemon (in the spirit of Jepsen).
//!
//! A seeded generator plays random schedules against two `catalog-mirror serve`
//! processes sharing one database and the sandbox: product and collection syncs that
//! complete, fail or stall, with catalog changes between syncs; offer events inside
//! and outside sync windows; duplicate and out-of-order deliveries. Meanwhile faults
//! fire: 5xx bursts, 429 storms, 200 answers that are no page, truncated and stale
//! pages, slow pages, expired tokens, a daemon paused while it holds a job, past the
//! job's lease (its claim lapses and is taken over), and a daemon killed with SIGKILL
//! and started again. A schedule of at least nine steps fires every kind at least
//! once. A concurrent reader searches all along.
//!
//! At the end, with the faults cleared and one last sync per merchant:
//! - every acknowledged delivery is stored, once;
//! - the mirror equals the sandbox's catalog (offers and collection membership);
//! - each daemon's index equals the mirror's storefront, document for document;
//! - no job is left pending or running, and none is dead;
//! - every fault kind fired, and a paused daemon's claim was taken over;
//! - no offer the reader had found ever went missing from search while the sandbox
//!   still sold it (on the storefront by the rule of `storefront_offers`, unchanged
//!   since search last showed it) and its merchant was connected and enabled: judged
//!   by the sandbox and the schedule alone, never by the mirror.
//!
//! `scripts/test` runs one short schedule with a fixed seed. A longer run:
//! `SOAK_SCHEDULES=6 SOAK_STEPS=60 SOAK_SEED=41 cargo test --test it soak:: -- --nocapture`
//! (each schedule uses its own seed, `SOAK_SEED + n`, printed with its statistics).

use crate::common;
use crate::mirror_common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use catalog_mirror::mirror::queries;
use catalog_mirror::sandbox::{
    Catalog, ChangeSet, MerchantSpec, RateLimit, Sandbox, SandboxConfig,
};
use common::daemon::Daemon;
use common::webhook::Delivery;
use common::{TestDb, eventually};
use futures::TryStreamExt;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sqlx::PgPool;

const MERCHANTS: [u64; 3] = [7101, 7102, 7103];
/// Short leases, so a paused daemon loses its claims within the schedule.
const LEASE_SECS: u64 = 3;
/// The daemons' admin token (the final full pass is an operator's resync).
const ADMIN_TOKEN: &str = "soak-admin-token";

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
    /// Pauses of daemon 0 whose lease the other daemon (or daemon 0's own reaper)
    /// took over while it was stopped: its claim no longer held the job when it resumed.
    takeovers: u64,
    /// Live offers the sandbox had removed without an event, still in the mirror
    /// after the last syncs (deltas) and removed by the final full pass.
    left_for_a_full_pass: u64,
    /// Pauses of daemon 0 holding a job whose expired lease nobody took over.
    not_taken_over: Vec<String>,
}

/// Every fault kind, by the name the tally counts it under. A schedule of at least
/// this many steps fires each of them at least once (see [`fault_plan`]).
const FAULTS: [&str; 9] = [
    "5xx burst",
    "429 storm",
    "200 that is no page",
    "truncated page",
    "stale page",
    "slow pages",
    "token expiry",
    "lapsed lease",
    "kill -9 and restart",
];
/// The tally's name for a lapsed-lease fault that found no job held by daemon 0
/// within its bounded wait (nothing was paused).
const LAPSED_LEASE_SKIPPED: &str = "lapsed lease skipped (no job held)";

/// Which steps fire which fault kind regardless of the random draw: when the schedule
/// has room (`steps >= FAULTS.len()`), one step per kind, at seeded random positions,
/// the kinds in a seeded shuffled order (a planned step whose kind already fired is a
/// random step). Other steps stay random (and may fire any kind again).
fn fault_plan(rng: &mut StdRng, steps: u64) -> BTreeMap<u64, usize> {
    if steps < FAULTS.len() as u64 {
        return BTreeMap::new();
    }
    let mut kinds: Vec<usize> = (0..FAULTS.len()).collect();
    kinds.shuffle(rng);
    let positions = rand::seq::index::sample(rng, steps as usize, FAULTS.len());
    positions
        .into_iter()
        .map(|step| step as u64)
        .zip(kinds)
        .collect()
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
    /// The merchants' connection as the events sent so far have it (the reader's).
    merchants: Merchants,
    /// Hidden copies the sandbox served (the reader's).
    hidden: HiddenCopies,
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
        ("CATALOG_MIRROR_ADMIN__TOKEN", ADMIN_TOKEN.into()),
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
            merchants: Merchants::default(),
            hidden: HiddenCopies::default(),
        }
    }

    fn catalog(&self) -> Arc<Catalog> {
        self.sandbox.catalog()
    }

    /// Moves the merchant's sandbox catalog to its next generation, and records the
    /// copies it now serves that the storefront does not show.
    fn advance(&self, merchant: u64) -> ChangeSet {
        let catalog = self.catalog();
        let change = catalog.advance(merchant);
        let mut hidden = self.hidden.lock().unwrap();
        for &id in change.updated.iter().chain(&change.added) {
            if let Some(copy) = catalog.offer_json_bare(id)
                && !sandbox_storefront_shows(&copy)
                && let Some(date) = sandbox_date(&copy)
            {
                hidden.entry(id).or_default().push(date);
            }
        }
        change
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
        let change: Option<fn(&mut MerchantModel)> = match topic {
            "MERCHANT_CONNECTED" => Some(|m| m.connected = true),
            "MERCHANT_DISCONNECTED" => Some(|m| m.connected = false),
            "MERCHANT_ENABLED" => Some(|m| m.enabled = true),
            "MERCHANT_DISABLED" => Some(|m| m.enabled = false),
            _ => None,
        };
        if let Some(change) = change {
            // Before it is delivered: from now on the reader forgives this merchant's
            // offers that had been shown (the schedule sends these at onboarding only).
            let mut merchants = self.merchants.lock().unwrap();
            let model = merchants.entry(merchant).or_default();
            change(model);
            model.epoch += 1;
        }
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
            let change = self.advance(merchant);
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
            let change = self.advance(merchant);
            for &id in change.removed.iter().take(2) {
                if let Some(body) = catalog.removed_offer_json(id) {
                    events.push(self.event("OFFER_REMOVED", merchant, &id.to_string(), &body));
                }
            }
        }
        events
    }

    /// Fires fault `FAULTS[kind]`; some end by themselves (counters), the rest are
    /// undone at the next step or at the end.
    async fn fault(&mut self, rng: &mut StdRng, kind: usize) {
        let fault = match kind {
            0 => {
                let n = rng.random_range(1..6);
                self.sandbox.set_knobs(|k| k.fail_next_5xx = n);
                FAULTS[0]
            }
            1 => {
                self.sandbox.set_knobs(|k| {
                    k.rate_limit = Some(RateLimit {
                        requests_per_sec: 3,
                        retry_after_secs: 1,
                    })
                });
                FAULTS[1]
            }
            2 => {
                let n = rng.random_range(1..5);
                self.sandbox.set_knobs(|k| k.odd_ok_next = n);
                FAULTS[2]
            }
            3 => {
                let n = rng.random_range(1..4);
                self.sandbox.set_knobs(|k| k.truncate_next = n);
                FAULTS[3]
            }
            4 => {
                let n = rng.random_range(1..4);
                self.sandbox.set_knobs(|k| k.stale_page_next = n);
                FAULTS[4]
            }
            5 => {
                self.sandbox
                    .set_knobs(|k| k.latency = Duration::from_millis(40));
                FAULTS[5]
            }
            6 => {
                self.sandbox.expire_tokens();
                FAULTS[6]
            }
            7 => self.lapse_a_lease(rng).await,
            _ => {
                if let Some(mut daemon) = self.daemons[0].take() {
                    signal(&daemon, "-KILL");
                    let _ = daemon.wait(Duration::from_secs(5)).await;
                }
                let env = daemon_env(&self.db, &self.sandbox, self.index_dirs[0].path());
                self.daemons[0] = Some(Daemon::spawn(None, &env));
                FAULTS[8]
            }
        };
        *self.tally.faults.entry(fault).or_default() += 1;
    }

    /// Pauses daemon 0 (SIGSTOP) while it holds a running job, past the job's lease,
    /// until the job is reaped (and claimed again) while it is stopped; when it
    /// resumes, its copy must neither publish nor finish (the fenced claim).
    ///
    /// To give it something to hold, every merchant's products sync completes (one
    /// refresh job per merchant, claimed by either daemon) and pages are slowed down
    /// while it looks for one (bounded). Returns the tally's name: skipped when daemon
    /// 0 held no job in time. A pause that lands while the job's publishing
    /// transaction is open cannot lapse (the transaction locks the job's row, so
    /// nobody can reap it until it commits, by design): it is tried once more. Any
    /// other pause whose claim is not taken over is recorded as a failure.
    async fn lapse_a_lease(&mut self, rng: &mut StdRng) -> &'static str {
        for _attempt in 0..2 {
            let Some((job, claim)) = self.pause_holding_a_job(rng).await else {
                return LAPSED_LEASE_SKIPPED;
            };
            // Until the claim no longer holds the job: its lease runs out (at most
            // LEASE_SECS after its last renewal) and the other daemon's reaper (every
            // lease / 4) requeues it.
            let pool = &self.pool;
            let taken = eventually(Duration::from_secs(3 * LEASE_SECS), || async move {
                !still_holds(pool, job, claim).await
            })
            .await;
            let publishing = !taken && row_locked(&self.pool, job).await;
            let unreaped = (!taken && !publishing).then(|| format!("{job}"));
            signal(self.daemons[0].as_ref().unwrap(), "-CONT");
            if taken {
                self.tally.takeovers += 1;
                return FAULTS[7];
            }
            if let Some(job) = unreaped {
                self.tally.not_taken_over.push(format!(
                    "job {job} (claim {claim}): daemon 0 was paused for {}s holding it, and its \
                     expired lease was not taken over",
                    3 * LEASE_SECS
                ));
                return FAULTS[7];
            }
        }
        LAPSED_LEASE_SKIPPED
    }

    /// Stops daemon 0 once it holds a running job (bounded): the job and its claim.
    async fn pause_holding_a_job(&mut self, rng: &mut StdRng) -> Option<(i64, i32)> {
        let latency_before = self.sandbox.knobs().latency;
        self.sandbox
            .set_knobs(|k| k.latency = k.latency.max(Duration::from_millis(150)));
        let deadline = Instant::now() + Duration::from_secs(12);
        let mut next_trigger = Instant::now();
        let mut held = None;
        while held.is_none() && Instant::now() < deadline {
            if Instant::now() >= next_trigger {
                next_trigger = Instant::now() + Duration::from_secs(3);
                for merchant in MERCHANTS {
                    for event in self.completed_sync(merchant, "PRODUCT") {
                        self.deliver(rng, &event).await;
                    }
                }
            }
            let daemon = self.daemons[0].as_ref().expect("daemon 0 runs");
            // The worker id is `host-pid-random` (src/jobs/worker.rs).
            let owner = format!("%-{}-%", daemon.child.id());
            let running: Option<(i64, i32)> = sqlx::query_as(
                "SELECT id, claims FROM jobs WHERE state = 'running' AND locked_by LIKE $1 ORDER BY id LIMIT 1",
            )
            .bind(&owner)
            .fetch_optional(&self.pool)
            .await
            .unwrap();
            if let Some((job, claim)) = running {
                signal(daemon, "-STOP");
                // Statements it had sent before it stopped still land: look again.
                tokio::time::sleep(Duration::from_millis(100)).await;
                if still_holds(&self.pool, job, claim).await {
                    held = Some((job, claim));
                } else {
                    signal(daemon, "-CONT");
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.sandbox.set_knobs(|k| k.latency = latency_before);
        held
    }

    /// STARTED and COMPLETED of one sync of `prefix` (`PRODUCT` or `COLLECTION`).
    fn completed_sync(&mut self, merchant: u64, prefix: &str) -> Vec<Delivery> {
        self.next_event += 1;
        let id = format!("sync-{merchant}-{}", self.next_event);
        let record = json!({"id": id, "merchant_id": merchant, "status": "COMPLETED"});
        let kind = if prefix == "PRODUCT" {
            "products"
        } else {
            "collections"
        };
        *self.tally.syncs.entry(kind).or_default() += 1;
        *self.tally.syncs.entry("completed").or_default() += 1;
        vec![
            self.event(&format!("{prefix}_SYNC_STARTED"), merchant, &id, &record),
            self.event(&format!("{prefix}_SYNC_COMPLETED"), merchant, &id, &record),
        ]
    }

    fn calm(&self) {
        self.sandbox.set_knobs(|k| *k = Default::default());
    }
}

/// Whether an open transaction locks the job's row (its publishing transaction).
async fn row_locked(pool: &PgPool, job: i64) -> bool {
    let mut tx = pool.begin().await.unwrap();
    let free: Option<i64> =
        sqlx::query_scalar("SELECT id FROM jobs WHERE id = $1 FOR UPDATE SKIP LOCKED")
            .bind(job)
            .fetch_optional(&mut *tx)
            .await
            .unwrap();
    tx.rollback().await.unwrap();
    free.is_none()
}

/// Whether claim `claim` of `job` still holds it (running under that claim).
async fn still_holds(pool: &PgPool, job: i64, claim: i32) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $1 AND state = 'running' AND claims = $2)",
    )
    .bind(job)
    .bind(claim)
    .fetch_one(pool)
    .await
    .unwrap()
}

fn signal(daemon: &Daemon, which: &str) {
    let status = std::process::Command::new("kill")
        .args([which, &daemon.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {which}");
}

/// The merchant's offers one daemon's search shows, with the `date_last_modified`
/// (Unix seconds) of the copy it shows (`None`: no answer).
async fn searched(
    http: &reqwest::Client,
    daemon_url: &str,
    merchant: u64,
) -> Option<BTreeMap<u64, Option<i64>>> {
    let hits = search_merchant(
        http,
        daemon_url,
        merchant,
        Some(&["id", "date_last_modified"]),
    )
    .await?;
    Some(
        hits.into_iter()
            .map(|(id, hit)| (id, hit["date_last_modified"].as_i64()))
            .collect(),
    )
}

/// The merchant's hits on one daemon, by id, with `fields` only (`None`: every
/// attribute); `None` when the daemon does not answer.
async fn search_merchant(
    http: &reqwest::Client,
    daemon_url: &str,
    merchant: u64,
    fields: Option<&[&str]>,
) -> Option<BTreeMap<u64, Value>> {
    let mut body = json!({
        "q": "",
        "filter": format!("merchant_id = {merchant}"),
        "limit": 1000,
    });
    if let Some(fields) = fields {
        body["attributesToRetrieve"] = json!(fields);
    }
    let response = http
        .post(format!("{daemon_url}/indexes/offers/search"))
        .json(&body)
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
            .filter_map(|hit| Some((hit["id"].as_u64()?, hit.clone())))
            .collect(),
    )
}

/// An offer's `date_last_modified` as the sandbox serves it, in Unix seconds.
fn sandbox_date(offer: &Value) -> Option<i64> {
    let raw = offer["date_last_modified"].as_str()?;
    chrono::DateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(raw))
        .ok()
        .map(|date| date.timestamp())
}

/// Per offer, the dates of the copies the sandbox served that the storefront does not
/// show, recorded by the schedule right after each catalog change.
type HiddenCopies = Arc<Mutex<HashMap<u64, Vec<i64>>>>;

/// What the schedule has told the daemons about a merchant's connection: the
/// storefront sells a merchant's offers only while it is connected and enabled.
#[derive(Debug, Clone, Copy)]
struct MerchantModel {
    connected: bool,
    enabled: bool,
    /// Bumped by every connection or enablement event the schedule sends, whatever
    /// it says: the reader forgives an offer that left search across such a change.
    epoch: u64,
}

impl Default for MerchantModel {
    fn default() -> Self {
        // Enabled until told otherwise; connected by its MERCHANT_CONNECTED.
        Self {
            connected: false,
            enabled: true,
            epoch: 0,
        }
    }
}

type Merchants = Arc<Mutex<BTreeMap<u64, MerchantModel>>>;

/// The storefront rule of the view `storefront_offers` (migration 0006), evaluated on
/// an offer as the sandbox serves it: an explicit `visible: false` hides, so do the
/// statuses under which Violet does not sell (case-insensitive) and an explicit
/// `NOT_PUBLISHED`; anything else, missing flags included, shows. (The view's other
/// conditions, the merchant's `visible` and `removed_at`, are the merchant model's and
/// the sandbox's: a removed offer is one the sandbox no longer serves.)
fn sandbox_storefront_shows(offer: &Value) -> bool {
    let upper = |key: &str| offer[key].as_str().unwrap_or("").to_uppercase();
    offer["visible"] != Value::Bool(false)
        && ![
            "ARCHIVED",
            "FOR_DELETION",
            "DISABLED_AVAILABLE",
            "DISABLED_UNAVAILABLE",
        ]
        .contains(&upper("status").as_str())
        && upper("publishing_status") != "NOT_PUBLISHED"
}

/// What the reader knew of an offer the last time search showed it.
struct Shown {
    /// The sandbox's copy read just after that search (without collections, which do
    /// not decide whether it sells); `None` when the sandbox no longer had it.
    upstream: Option<Value>,
    /// The sandbox merchant's generation read before that copy: while it stays the
    /// same, so does the copy (no need to render it again).
    generation: u32,
    /// The merchant model's epoch then.
    epoch: u64,
    /// The `date_last_modified` of the copy search showed.
    shown_date: Option<i64>,
}

/// Searches the second daemon (never paused or killed) until stopped, and judges by
/// the sandbox and the schedule alone, never by the mirror: an offer that search had
/// shown and that is now missing is a violation when the sandbox still has it,
/// unchanged since search last showed it, on the storefront (the rule of
/// `storefront_offers`, on the sandbox's copy), and its merchant is connected and
/// enabled with no connection event sent meanwhile.
///
/// Legitimate transitions are kept out: the sandbox removed or changed the offer (a
/// change may hide it), or the merchant's connection changed. One window the design
/// allows is kept out too: the mirror lags. A refresh publishes the copy it read, which
/// may have been replaced upstream since; so when the sandbox served a hidden copy
/// newer than the one search showed (say ARCHIVED, then AVAILABLE again), a refresh that
/// read the hidden copy may publish it after the sandbox moved on, and the offer leaves
/// search until the next pass (the soak saw it: seed 46, a full pass that read offer
/// 71010000301 ARCHIVED published after the sandbox had made it AVAILABLE again). No
/// copy older than the one shown can be published (the mirror never writes an older
/// `date_last_modified` than it holds), so only hidden copies dated after the shown one
/// excuse a miss. No other window is allowed: a partial pass changes nothing, removals
/// come only after a complete pass with a second look by id at what it missed, one
/// index commit per merchant.
///
/// Races with the schedule cannot raise a false alarm: the sandbox's copy is read
/// after each search, and copies only move forward, so equal copies before the
/// sighting and after the miss mean it was that copy all along in between; the
/// schedule records a hidden copy right after the change that made it, before any
/// later change, and the reader reads the current copy before those records.
fn spawn_reader(
    http: reqwest::Client,
    url: String,
    catalog: Arc<Catalog>,
    merchants: Merchants,
    hidden: HiddenCopies,
    pool: PgPool,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<(u64, Vec<String>)> {
    tokio::spawn(async move {
        let mut shown_before: HashMap<u64, Shown> = HashMap::new();
        let mut violations = Vec::new();
        let mut reads = 0;
        while !stop.is_cancelled() {
            for merchant in MERCHANTS {
                let Some(shown) = searched(&http, &url, merchant).await else {
                    continue;
                };
                reads += 1;
                let model = merchants
                    .lock()
                    .unwrap()
                    .get(&merchant)
                    .copied()
                    .unwrap_or_default();
                let mut gone = Vec::new();
                shown_before.retain(|&id, before| {
                    if id / catalog_mirror::sandbox::OFFER_ID_STRIDE != merchant
                        || shown.contains_key(&id)
                    {
                        return true;
                    }
                    let now = catalog.offer_json_bare(id);
                    // Read after the copy: a hidden copy it replaced is recorded by now.
                    let hidden_since_shown = hidden.lock().unwrap().get(&id).is_some_and(|dates| {
                        dates
                            .iter()
                            .any(|&date| before.shown_date.is_none_or(|shown| date > shown))
                    });
                    if let Some(now) = &now
                        && before.upstream.as_ref() == Some(now)
                        && sandbox_storefront_shows(now)
                        && !hidden_since_shown
                        && model.connected
                        && model.enabled
                        && model.epoch == before.epoch
                    {
                        gone.push((id, now["date_last_modified"].clone()));
                    }
                    false
                });
                // The mirror's side, for the report only (never for the judgement).
                for (id, modified) in gone.drain(..) {
                    type Row = (Option<String>, Option<String>, Option<String>, i64, String);
                    let row: Option<Row> =
                        sqlx::query_as(
                            "SELECT removed_at::text, date_last_modified::text, updated_at::text, catalog_version, \
                             COALESCE((SELECT string_agg(state || ' ' || kind || ' ' || merchant_id, ', ') FROM jobs WHERE state = 'running'), '') \
                             || ' visible=' || COALESCE(visible::text, '-') || ' status=' || COALESCE(status, '-') \
                             || ' publishing=' || COALESCE(publishing_status, '-') \
                             FROM offers WHERE offer_id = $1",
                        )
                        .bind(id as i64)
                        .fetch_optional(&pool)
                        .await
                        .ok()
                        .flatten();
                    let changes: Vec<(i64, i64, String, i32, i32, bool, String)> = sqlx::query_as(
                        "SELECT change_no, catalog_version, reason, upserted, removed, \
                         COALESCE($2 = ANY(offer_ids), true), created_at::text FROM change_log \
                         WHERE merchant_id = $1 ORDER BY change_no DESC LIMIT 4",
                    )
                    .bind(merchant as i64)
                    .bind(id as i64)
                    .fetch_all(&pool)
                    .await
                    .unwrap_or_default();
                    let storefront: Option<(i64, String)> = sqlx::query_as(
                        "SELECT count(*), now()::text FROM storefront_offers WHERE merchant_id = $1",
                    )
                    .bind(merchant as i64)
                    .fetch_optional(&pool)
                    .await
                    .ok()
                    .flatten();
                    violations.push(format!(
                        "offer {id} of merchant {merchant} left search ({} shown now) while the sandbox sells \
                         it unchanged (date_last_modified {modified}) and the merchant is connected and enabled; \
                         the mirror's row (removed_at, date_last_modified, updated_at, catalog_version, running jobs): {row:?}; \
                         storefront rows and now: {storefront:?}; last changes (no, version, reason, upserted, removed, \
                         names it, at): {changes:?}",
                        shown.len()
                    ));
                }
                let generation = catalog.generation(merchant);
                for (&id, &shown_date) in &shown {
                    match shown_before.get_mut(&id) {
                        Some(before) if before.generation == generation => {
                            before.epoch = model.epoch;
                            before.shown_date = shown_date;
                        }
                        _ => {
                            shown_before.insert(
                                id,
                                Shown {
                                    upstream: catalog.offer_json_bare(id),
                                    generation,
                                    epoch: model.epoch,
                                    shown_date,
                                },
                            );
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        (reads, violations)
    })
}

/// Waits until no job is pending or running (bounded), or fails the schedule.
async fn settle(pool: &PgPool, seed: u64) {
    let settled = eventually(Duration::from_secs(120), || async {
        count(
            pool,
            "SELECT count(*) FROM jobs WHERE state IN ('pending', 'running')",
        )
        .await
            == 0
    })
    .await;
    let jobs: Vec<(i64, String, String, i32, Option<String>)> = sqlx::query_as(
        "SELECT id, kind, state, attempts, last_error FROM jobs WHERE state IN ('pending', 'running')",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(
        settled,
        "seed {seed}: jobs left pending or running: {jobs:?}"
    );
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
        world.merchants.clone(),
        world.hidden.clone(),
        world.pool.clone(),
        stop.clone(),
    );

    let plan = fault_plan(&mut rng, steps);
    for step in 0..steps {
        let merchant = MERCHANTS[rng.random_range(0..MERCHANTS.len())];
        // A planned fault fires unless its kind already fired this schedule.
        if let Some(&kind) = plan.get(&step)
            && !world.tally.faults.contains_key(FAULTS[kind])
        {
            world.fault(&mut rng, kind).await;
            tokio::time::sleep(Duration::from_millis(rng.random_range(50..400))).await;
            continue;
        }
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
            60..85 => {
                let kind = rng.random_range(0..FAULTS.len());
                world.fault(&mut rng, kind).await
            }
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
    settle(&pool, seed).await;
    // Those syncs are deltas unless a full pass was due (refresh.mode = "delta"): by
    // design they remove nothing, so the offers the sandbox removed without an
    // OFFER_REMOVED since the merchant's last full pass are still live. A full pass of
    // every merchant, as an operator's resync asks for, reads them.
    let catalog = world.catalog();
    for merchant in MERCHANTS {
        let live: Vec<i64> = sqlx::query_scalar(
            "SELECT offer_id FROM offers WHERE merchant_id = $1 AND removed_at IS NULL",
        )
        .bind(merchant as i64)
        .fetch_all(&pool)
        .await
        .unwrap();
        world.tally.left_for_a_full_pass += live
            .iter()
            .filter(|&&id| catalog.offer_json(id as u64).is_none())
            .count() as u64;
    }
    let resync = world
        .http
        .post(world.daemons[1].as_ref().unwrap().admin_url("/api/resync"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"all": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resync.status(), 202, "{:?}", resync.text().await);
    settle(&pool, seed).await;
    // Every job ended done (or cancelled, superseded by a pending one): none used up
    // its attempts under the faults.
    let dead: Vec<(i64, String, i32, i32, Option<String>)> = sqlx::query_as(
        "SELECT id, kind, attempts, claims, last_error FROM jobs WHERE state = 'dead' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(dead.is_empty(), "seed {seed}: dead jobs: {dead:#?}");

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
    for merchant in MERCHANTS {
        mirror_common::assert_offers_match(&pool, &catalog, merchant as i64).await;
        mirror_common::assert_collections_match(&pool, &catalog, merchant as i64).await;
    }

    // Each daemon's index equals the mirror's storefront, document for document: the
    // ids are the view's, and each hit is the document built from the mirror's rows
    // now (offer fields, SKU identifiers, collections).
    for merchant in MERCHANTS {
        let mut conn = pool.acquire().await.unwrap();
        let expected: BTreeMap<u64, Value> =
            catalog_mirror::search::source::merchant_offers(&mut conn, merchant as i64)
                .map_ok(|row| (row.offer_id as u64, row.to_source()))
                .try_collect()
                .await
                .unwrap();
        drop(conn);
        let storefront: BTreeSet<u64> = queries::storefront_offers(&pool, merchant as i64)
            .await
            .unwrap()
            .iter()
            .map(|o| o.offer_id as u64)
            .collect();
        assert_eq!(
            expected.keys().copied().collect::<BTreeSet<u64>>(),
            storefront,
            "seed {seed}: the indexer's rows of {merchant} are the storefront's"
        );
        for daemon in world.daemons.iter().flatten() {
            let url = daemon.url("");
            let deadline = Instant::now() + Duration::from_secs(30);
            let (same, last) = loop {
                let docs = search_merchant(&world.http, &url, merchant, None).await;
                if docs.as_ref() == Some(&expected) {
                    break (true, docs);
                }
                if Instant::now() >= deadline {
                    break (false, docs);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            let first_difference = last.as_ref().map(|docs| {
                let ids: BTreeSet<&u64> = docs.keys().chain(expected.keys()).collect();
                ids.into_iter()
                    .find(|id| docs.get(id) != expected.get(id))
                    .map(|id| (id, docs.get(id), expected.get(id)))
            });
            assert!(
                same,
                "seed {seed}: the index of {url} equals the mirror of {merchant}; first difference \
                 (offer, index, mirror): {first_difference:?}"
            );
        }
    }

    stop.cancel();
    let (reads, violations) = reader.await.unwrap();
    assert!(reads > 0, "the reader searched");
    if !violations.is_empty() {
        for (n, daemon) in world.daemons.iter().enumerate() {
            if let Some(daemon) = daemon {
                let path = std::env::temp_dir().join(format!("soak-{seed}-daemon-{n}.log"));
                let _ = std::fs::write(&path, daemon.output());
                eprintln!("soak: daemon {n}'s log is in {}", path.display());
            }
        }
    }
    assert!(violations.is_empty(), "seed {seed}: {violations:#?}");
    if steps >= FAULTS.len() as u64 {
        let missing: Vec<&str> = FAULTS
            .iter()
            .copied()
            .filter(|kind| !world.tally.faults.contains_key(kind))
            .collect();
        assert!(
            missing.is_empty(),
            "seed {seed}: faults that never fired: {missing:?} ({:?})",
            world.tally.faults
        );
    }
    assert!(
        world.tally.not_taken_over.is_empty(),
        "seed {seed}: {:#?}",
        world.tally.not_taken_over
    );
    if world.tally.faults.contains_key(FAULTS[7]) {
        assert!(
            world.tally.takeovers > 0,
            "seed {seed}: daemon 0 was paused holding a job past its lease and no claim was taken over"
        );
    }
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
    let (mut acknowledged, mut takeovers) = (0, 0);
    for n in 0..schedules {
        let tally = schedule(seed + n, steps).await;
        for (fault, times) in tally.faults {
            *faults.entry(fault).or_default() += times;
        }
        acknowledged += tally.acknowledged;
        takeovers += tally.takeovers;
    }
    println!(
        "soak: {schedules} schedule(s) of {steps} steps survived in {:?}; faults fired: {faults:?}; \
         events acknowledged: {acknowledged}; leases taken over: {takeovers}",
        started.elapsed()
    );
}
