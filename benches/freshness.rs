//! Freshness benchmark, end to end: the real daemon (`catalog-mirror serve`) and the
//! sandbox (`catalog-mirror sandbox`) each in its own process, at the shipped defaults
//! (Violet rate limits, debounce, batch sizes), webhooks in and searchable out. What a
//! user would see, so the figures cannot drift from the daemon's:
//!
//! 1. First onboarding: the onboarding scenario's webhooks (merchant, products and
//!    collections syncs, no per-offer events) to every merchant searchable, next to the
//!    time the listing alone takes at the configured per-merchant rate.
//! 2. An unchanged scheduled sync: PRODUCT_SYNC_COMPLETED to the delta done; API calls.
//! 3. A scheduled sync with 1% of one merchant's offers updated: COMPLETED to
//!    searchable (the change applied by the index) and API calls.
//! 4. Baseline in the same run: the same 1% change picked up by a full pass (a manual
//!    resync): to searchable and API calls.
//!
//! "Searchable" is the admin API's view of the merchant: its catalog version moved and
//! the index has no pending change for it (the watermark `/readyz` uses). Peak RSS is
//! the daemon's VmHWM. The daemon's own log lines for each refresh (`publish_ms`, the
//! index commits) are printed as a breakdown.
//!
//! Run: `cargo bench --bench freshness`. Environment: `TEST_DATABASE_URL` (server,
//! default postgres://postgres@127.0.0.1:5432/postgres), `BENCH_OFFERS` (per merchant,
//! default 100000), `BENCH_MERCHANTS` (default 1; 10 gives the 1,000,000-offer index;
//! the 1% change is always on the first merchant), `BENCH_DAEMON_LOG` (a file to write
//! the daemon's JSON log to), `BENCH_KEEP_DB` (set: keep the database afterwards, to
//! study its plans in psql), `BENCH_RSS_TRACE` (a file for the daemon's resident
//! memory every 20 ms).

#[allow(dead_code)] // the tests use the rest of it
#[path = "../tests/it/common/daemon.rs"]
mod daemon;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use daemon::Daemon;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

const TOKEN: &str = "bench-admin-token";
const FIRST: u64 = 1001;

fn env_number(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `catalog-mirror sandbox` in its own process.
struct SandboxProcess {
    child: Child,
    control: String,
}

impl SandboxProcess {
    async fn start(merchants: u64, offers: u64) -> SandboxProcess {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_catalog-mirror"))
            .args(["sandbox", "--addr", &format!("127.0.0.1:{port}")])
            .args(["--merchants", &merchants.to_string()])
            .args(["--offers", &offers.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the sandbox starts");
        let sandbox = SandboxProcess {
            child,
            control: format!("http://127.0.0.1:{port}/_sandbox"),
        };
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if http.get(&sandbox.control).send().await.is_ok() {
                return sandbox;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the sandbox did not answer");
    }

    fn base_url(&self) -> String {
        self.control.replace("/_sandbox", "/v1")
    }

    async fn requests(&self) -> u64 {
        let stats: Value = reqwest::get(format!("{}/stats", self.control))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["requests"].as_u64().expect("requests counter")
    }

    async fn set_change_mix(&self, mix: Value) {
        let answer = reqwest::Client::new()
            .put(format!("{}/change-mix", self.control))
            .json(&mix)
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_success(),
            "{}",
            answer.text().await.unwrap()
        );
    }

    async fn advance(&self, merchant: u64) -> Value {
        reqwest::Client::new()
            .post(format!("{}/merchants/{merchant}/advance", self.control))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Plays a scenario at the daemon's webhook endpoint, without per-offer events.
    async fn play(&self, scenario: &str, merchant: Option<u64>, target: &str) {
        let answer = reqwest::Client::new()
            .post(format!("{}/play", self.control))
            .json(&json!({
                "scenario": scenario,
                "target": target,
                "merchant_id": merchant,
                "max_offer_events": 0,
            }))
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_success(),
            "{}",
            answer.text().await.unwrap()
        );
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn merchant(daemon: &Daemon, id: u64) -> Value {
    let body: Value = reqwest::Client::new()
        .get(daemon.admin_url(&format!("/api/merchants/{id}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["merchant"].clone()
}

/// Waits until `done` holds for the merchant and its index has nothing pending.
async fn until_searchable(daemon: &Daemon, id: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(3_600);
    loop {
        let m = merchant(daemon, id).await;
        if done(&m) && m["index"]["pending_changes"] == 0 {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "merchant {id} never got there: {m}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until no job is pending or running.
async fn until_idle(daemon: &Daemon) {
    loop {
        let body: Value = reqwest::Client::new()
            .get(daemon.admin_url("/api/jobs?limit=1"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let counts = &body["counts"];
        if counts["pending"] == 0 && counts["running"] == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn vm_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The daemon's JSON log lines with `message`, from line `from` on.
fn log_lines(daemon: &Daemon, from: usize, message: &str) -> Vec<Value> {
    daemon
        .output()
        .lines()
        .skip(from)
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["message"] == message)
        .collect()
}

fn log_len(daemon: &Daemon) -> usize {
    daemon.output().lines().count()
}

fn field(event: &Value, key: &str) -> String {
    event[key]
        .as_u64()
        .map(|n| n.to_string())
        .or_else(|| event[key].as_str().map(str::to_string))
        .unwrap_or_else(|| "-".into())
}

/// The daemon's peak RSS since the last call (MiB), then resets the high-water mark.
fn phase_peak_mib(pid: u32) -> f64 {
    let peak = vm_kib(pid, "VmHWM:") as f64 / 1024.0;
    // "5" resets VmHWM to the current RSS (proc(5), clear_refs).
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    peak
}

/// Samples the daemon's resident memory every 20 ms, split as the kernel counts it:
/// anonymous (heap, stacks) and file-backed (mostly the index's memory-mapped files),
/// so a phase's peak can be attributed. VmHWM alone does not say which it was.
struct RssSampler {
    anon_kib: std::sync::atomic::AtomicU64,
    file_kib: std::sync::atomic::AtomicU64,
    /// Milliseconds from the phase's start to its anonymous peak.
    anon_peak_at_ms: std::sync::atomic::AtomicU64,
    phase_started: std::sync::Mutex<Instant>,
}

impl RssSampler {
    fn start(pid: u32) -> std::sync::Arc<RssSampler> {
        use std::sync::atomic::Ordering::Relaxed;
        let sampler = std::sync::Arc::new(RssSampler {
            anon_kib: Default::default(),
            file_kib: Default::default(),
            anon_peak_at_ms: Default::default(),
            phase_started: std::sync::Mutex::new(Instant::now()),
        });
        let shared = sampler.clone();
        // BENCH_RSS_TRACE=FILE: every sample as "unix_ms anon_kib file_kib", to line up
        // with the daemon's log.
        let mut trace = std::env::var("BENCH_RSS_TRACE")
            .ok()
            .map(|path| std::fs::File::create(path).expect("create the RSS trace"));
        std::thread::spawn(move || {
            loop {
                let anon = vm_kib(pid, "RssAnon:");
                if anon == 0 {
                    return; // the daemon is gone
                }
                if let Some(file) = trace.as_mut() {
                    use std::io::Write;
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_millis();
                    let _ = writeln!(file, "{now} {anon} {}", vm_kib(pid, "RssFile:"));
                }
                if anon > shared.anon_kib.fetch_max(anon, Relaxed) {
                    let at = shared.phase_started.lock().unwrap().elapsed().as_millis() as u64;
                    shared.anon_peak_at_ms.store(at, Relaxed);
                }
                shared.file_kib.fetch_max(vm_kib(pid, "RssFile:"), Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        sampler
    }

    fn reset(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.anon_kib.store(0, Relaxed);
        self.file_kib.store(0, Relaxed);
        *self.phase_started.lock().unwrap() = Instant::now();
    }

    /// "anon A MiB at +T s, file F MiB" for the phase, then starts the next one.
    fn phase(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let line = format!(
            "anonymous {:.0} MiB (at +{:.1} s), file-backed {:.0} MiB",
            self.anon_kib.load(Relaxed) as f64 / 1024.0,
            self.anon_peak_at_ms.load(Relaxed) as f64 / 1000.0,
            self.file_kib.load(Relaxed) as f64 / 1024.0,
        );
        self.reset();
        line
    }
}

/// What the daemon logged about refreshes and index commits since `from`.
/// Returns the daemon's peak RSS in the phase (MiB).
fn breakdown(daemon: &Daemon, rss: &RssSampler, from: usize) -> f64 {
    let peak = phase_peak_mib(daemon.child.id());
    eprintln!("    peak RSS {peak:.0} MiB; sampled peaks: {}", rss.phase());
    for event in log_lines(daemon, from, "products refreshed") {
        let span = &event["span"];
        eprintln!(
            "    products refresh: merchant {} mode {} seen {} upserted {} elapsed {} ms, publish {} ms",
            field(span, "merchant_id"),
            field(span, "mode"),
            field(&event, "seen"),
            field(&event, "upserted"),
            field(&event, "elapsed_ms"),
            field(&event, "publish_ms"),
        );
    }
    for event in log_lines(daemon, from, "collections refreshed") {
        eprintln!(
            "    collections refresh: elapsed {} ms, publish {} ms",
            field(&event, "elapsed_ms"),
            field(&event, "publish_ms"),
        );
    }
    let commits = log_lines(daemon, from, "index commit");
    let sum = |key: &str| -> u64 { commits.iter().filter_map(|e| e[key].as_u64()).sum() };
    eprintln!(
        "    index: {} commits, documents added {} deleted {} unchanged {}, {} ms",
        commits.len(),
        sum("added"),
        sum("deleted"),
        sum("unchanged"),
        sum("elapsed_ms"),
    );
    peak
}

struct Row {
    what: String,
    seconds: f64,
    calls: u64,
    note: String,
    /// The daemon's peak RSS during the phase.
    peak_mib: f64,
}

#[tokio::main]
async fn main() {
    // `cargo test --benches` runs bench targets without --bench: do nothing then.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let offers = env_number("BENCH_OFFERS", 100_000);
    let merchants = env_number("BENCH_MERCHANTS", 1);
    let server = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("cm_fresh_{:08x}", std::process::id());
    let mut admin = PgConnection::connect(&server)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(&server).unwrap();
    url.set_path(&format!("/{name}"));

    let sandbox = SandboxProcess::start(merchants, offers).await;
    let index_dir = tempfile::tempdir().unwrap();
    let settings =
        catalog_mirror::config::Settings::load(&catalog_mirror::config::ConfigSource::DefaultsOnly)
            .unwrap();
    let env = [
        ("CATALOG_MIRROR_DATABASE__URL", url.to_string()),
        (
            "CATALOG_MIRROR_HTTP__PUBLIC_ADDR",
            "127.0.0.1:0".to_string(),
        ),
        ("CATALOG_MIRROR_HTTP__ADMIN_ADDR", "127.0.0.1:0".to_string()),
        ("CATALOG_MIRROR_VIOLET__BASE_URL", sandbox.base_url()),
        (
            "CATALOG_MIRROR_SEARCH__INDEX_DIR",
            index_dir.path().display().to_string(),
        ),
        ("CATALOG_MIRROR_ADMIN__TOKEN", TOKEN.to_string()),
        ("CATALOG_MIRROR_LOG__FILTER", "info".to_string()),
    ];
    let daemon = Daemon::spawn(None, &env);
    let rss = RssSampler::start(daemon.child.id());
    let webhooks = daemon.url("/webhooks/violet");
    let rate = settings.violet.merchant_rate_limit_per_sec as f64;
    let page_size = settings.violet.page_size as f64;
    eprintln!(
        "{merchants} merchant(s) of {offers} offers; shipped defaults: {rate} requests/s per merchant, \
         {} in all, debounce {} ms",
        settings.violet.rate_limit_per_sec, settings.jobs.debounce_ms
    );
    let mut rows = Vec::new();

    // 1. First onboarding.
    let from = log_len(&daemon);
    let calls = sandbox.requests().await;
    let started = Instant::now();
    sandbox.play("onboarding", None, &webhooks).await;
    for id in FIRST..FIRST + merchants {
        until_searchable(&daemon, id, |m| {
            m["freshness"]["last_full_refresh_at"].is_string()
        })
        .await;
    }
    // And the collections refreshes (their index changes) are through too.
    until_idle(&daemon).await;
    for id in FIRST..FIRST + merchants {
        until_searchable(&daemon, id, |_| true).await;
    }
    let onboarding = started.elapsed().as_secs_f64();
    let fetch = (offers as f64 / page_size).ceil() / rate
        * (merchants as f64 / (settings.violet.rate_limit_per_sec as f64 / rate)).max(1.0);
    rows.push(Row {
        what: format!("first onboarding, webhooks to searchable ({merchants} merchant(s))"),
        seconds: onboarding,
        calls: sandbox.requests().await - calls,
        peak_mib: 0.0,
        note: format!(
            "listing alone at the configured rates: {fetch:.1} s; target at most {:.1} s",
            fetch + 15.0
        ),
    });
    eprintln!("onboarding: {onboarding:.1} s");
    rows.last_mut().unwrap().peak_mib = breakdown(&daemon, &rss, from);

    // 2. An unchanged scheduled sync.
    sandbox
        .set_change_mix(json!({"updated": 0.0, "removed": 0.0, "added": 0.0}))
        .await;
    let before = merchant(&daemon, FIRST).await;
    let from = log_len(&daemon);
    let calls = sandbox.requests().await;
    let started = Instant::now();
    sandbox.play("scheduled-sync", Some(FIRST), &webhooks).await;
    let last_delta = before["freshness"]["last_delta_refresh_at"].clone();
    until_searchable(&daemon, FIRST, |m| {
        m["freshness"]["last_delta_refresh_at"] != last_delta
    })
    .await;
    rows.push(Row {
        what: "unchanged scheduled sync, COMPLETED to done".into(),
        seconds: started.elapsed().as_secs_f64(),
        calls: sandbox.requests().await - calls,
        note: "target at most 3 API calls".into(),
        peak_mib: 0.0,
    });
    rows.last_mut().unwrap().peak_mib = breakdown(&daemon, &rss, from);

    // 3. A scheduled sync with 1% of the first merchant's offers updated.
    sandbox
        .set_change_mix(json!({"updated": 0.01, "removed": 0.0, "added": 0.0}))
        .await;
    let version = merchant(&daemon, FIRST).await["catalog_version"]
        .as_i64()
        .unwrap();
    let from = log_len(&daemon);
    let calls = sandbox.requests().await;
    let started = Instant::now();
    sandbox.play("scheduled-sync", Some(FIRST), &webhooks).await;
    let delivered = started.elapsed().as_secs_f64();
    until_searchable(&daemon, FIRST, |m| {
        m["catalog_version"].as_i64().unwrap() > version
    })
    .await;
    let delta_seconds = started.elapsed().as_secs_f64();
    let delta_calls = sandbox.requests().await - calls;
    rows.push(Row {
        what: "scheduled sync, 1% of offers updated: COMPLETED to searchable (delta)".into(),
        seconds: delta_seconds,
        calls: delta_calls,
        peak_mib: 0.0,
        note: format!(
            "webhooks delivered in {delivered:.2} s; includes the {} ms debounce; target 5 s",
            settings.jobs.debounce_ms
        ),
    });
    rows.last_mut().unwrap().peak_mib = breakdown(&daemon, &rss, from);

    // 4. Baseline: the same kind of change picked up by a full pass.
    sandbox.advance(FIRST).await;
    let version = merchant(&daemon, FIRST).await["catalog_version"]
        .as_i64()
        .unwrap();
    let from = log_len(&daemon);
    let calls = sandbox.requests().await;
    let started = Instant::now();
    let answer = reqwest::Client::new()
        .post(daemon.admin_url("/api/resync"))
        .bearer_auth(TOKEN)
        .json(&json!({"merchant_id": FIRST, "kind": "products"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    until_searchable(&daemon, FIRST, |m| {
        m["catalog_version"].as_i64().unwrap() > version
    })
    .await;
    let full_calls = sandbox.requests().await - calls;
    rows.push(Row {
        what: "baseline: 1% of offers updated, full pass (manual resync) to searchable".into(),
        seconds: started.elapsed().as_secs_f64(),
        calls: full_calls,
        peak_mib: 0.0,
        note: format!(
            "the delta made {:.1}% of these calls (target at most 2%)",
            delta_calls as f64 * 100.0 / full_calls.max(1) as f64
        ),
    });
    rows.last_mut().unwrap().peak_mib = breakdown(&daemon, &rss, from);

    let peak_mib = rows.iter().map(|row| row.peak_mib).fold(0.0, f64::max);
    println!(
        "\n| {merchants} merchant(s) x {offers} offers, shipped defaults | seconds | API calls | daemon peak RSS (MiB) | |"
    );
    println!("|---|---:|---:|---:|---|");
    for row in &rows {
        println!(
            "| {} | {:.2} | {} | {:.0} | {} |",
            row.what, row.seconds, row.calls, row.peak_mib, row.note
        );
    }
    println!("\ndaemon peak RSS (VmHWM): {peak_mib:.0} MiB (target under 200 MB)");

    if let Ok(path) = std::env::var("BENCH_DAEMON_LOG") {
        std::fs::write(&path, daemon.output()).expect("write the daemon's log");
        eprintln!("the daemon's log: {path}");
    }
    drop(daemon);
    drop(sandbox);
    if std::env::var_os("BENCH_KEEP_DB").is_some() {
        eprintln!("kept the database {name} (BENCH_KEEP_DB)");
        return;
    }
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
}
