//! `catalog-mirror admin ...`: the real binary against a running daemon, with the
//! token and address from the environment, as an operator would run it.

use crate::admin_support;
use crate::common;

use std::process::Output;

use admin_support::{
    ACME, BOLT, GONE, SLOW_MERCHANT, SLOW_OFFERS, SLOW_PAGE_SIZE, TOKEN, block_claims,
    hold_removals, seed, set_freshness, spawn, spawn_slow_refresh,
};
use common::TestApp;
use serde_json::Value;

/// Runs `catalog-mirror admin ARGS` against `app` with `token` (None: no token at all).
async fn admin_with(app: &TestApp, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_catalog-mirror"));
    command
        .arg("admin")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "CATALOG_MIRROR_ADMIN__URL",
            format!("http://{}", app.admin_addr),
        )
        .kill_on_drop(true);
    if let Some(token) = token {
        command.env("CATALOG_MIRROR_ADMIN__TOKEN", token);
    }
    command.output().await.expect("run the binary")
}

async fn admin(app: &TestApp, args: &[&str]) -> (String, String, i32) {
    let output = admin_with(app, Some(TOKEN), args).await;
    (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
        output.status.code().unwrap_or(-1),
    )
}

async fn admin_ok(app: &TestApp, args: &[&str]) -> String {
    let (stdout, stderr, code) = admin(app, args).await;
    assert_eq!(code, 0, "admin {args:?} failed: {stderr}");
    stdout
}

async fn admin_json(app: &TestApp, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&admin_ok(app, &args).await).expect("--json prints JSON")
}

/// The table row whose first column is `first`.
fn row<'a>(table: &'a str, first: &str) -> &'a str {
    table
        .lines()
        .find(|line| line.split_whitespace().next() == Some(first))
        .unwrap_or_else(|| panic!("no row {first} in:\n{table}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_merchant_print_tables_and_json() {
    let (_db, app) = spawn().await;
    seed(&app).await;

    let table = admin_ok(&app, &["status"]).await;
    let header = table.lines().next().unwrap();
    for column in [
        "ID",
        "NAME",
        "PRODUCTS",
        "COLLECTIONS",
        "LAST SYNC",
        "SUCCESS",
        "OFFERS",
        "INDEX LAG",
    ] {
        assert!(header.contains(column), "{column} in {header}");
    }
    let acme = row(&table, &ACME.to_string());
    // products / collections: the failed run lasted a minute; 1 of 2 runs succeeded
    for cell in [
        "Acme",
        "failed",
        "idle",
        "1m 00s / -",
        "50%/2 / -",
        "1 / 0",
        "  3  ",
    ] {
        assert!(acme.contains(cell), "{cell:?} in {acme}");
    }
    assert!(row(&table, &BOLT.to_string()).contains("syncing"));
    assert!(row(&table, &GONE.to_string()).contains("disconnected"));

    let json = admin_json(&app, &["status"]).await;
    let ids: Vec<i64> = json["merchants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["merchant_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![ACME, BOLT, GONE]);

    let text = admin_ok(&app, &["merchant", &ACME.to_string()]).await;
    assert!(text.starts_with("merchant 101 Acme"), "{text}");
    assert!(
        text.contains("sync history:")
            && text.contains("recent events:")
            && text.contains("recent jobs:")
    );
    let history: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("9001") || line.contains("9002"))
        .collect();
    assert!(
        history
            .iter()
            .any(|l| l.contains("9002") && l.contains("failed") && l.contains("1m 00s")),
        "{text}"
    );
    assert!(
        history
            .iter()
            .any(|l| l.contains("9001") && l.contains("completed") && l.contains("4m 00s")),
        "{text}"
    );
    assert!(text.contains("PRODUCT_SYNC_FAILED"));
    let json = admin_json(&app, &["merchant", &ACME.to_string()]).await;
    assert_eq!(json["runs"].as_array().unwrap().len(), 2);

    let (_, stderr, code) = admin(&app, &["merchant", "999"]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("no merchant 999"), "{stderr}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_and_reindex_enqueue_and_start_work() {
    let (_db, app) = spawn().await;
    seed(&app).await;
    let text = admin_ok(
        &app,
        &[
            "resync",
            "--merchant",
            &BOLT.to_string(),
            "--kind",
            "collections",
        ],
    )
    .await;
    assert!(text.starts_with("enqueued 1 full refresh job(s)"), "{text}");
    let job_id: i64 = text
        .lines()
        .nth(2)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (kind, merchant, mode): (String, i64, String) =
        sqlx::query_as("SELECT kind, merchant_id, payload->>'mode' FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (kind.as_str(), merchant, mode.as_str()),
        ("refresh_collections", BOLT, "full")
    );

    let json = admin_json(&app, &["resync"]).await;
    assert_eq!(
        json["count"], 4,
        "both kinds of the two connected merchants: {json}"
    );
    let (_, stderr, code) = admin(&app, &["resync", "--merchant", &GONE.to_string()]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("disconnected"), "{stderr}");
    let (_, stderr, code) = admin(&app, &["resync", "--kind", "everything"]).await;
    assert_eq!(code, 2, "clap refuses an unknown kind: {stderr}");

    let text = admin_ok(&app, &["reindex"]).await;
    assert!(text.starts_with("reindex started"), "{text}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_retry_events_and_replay() {
    let (_db, app) = spawn().await;
    let seeded = seed(&app).await;
    block_claims(&app.pool, "refresh_collections", ACME).await;
    let dead = seeded.dead_job.to_string();

    let table = admin_ok(&app, &["jobs", "--state", "dead"]).await;
    assert!(
        table.lines().next().unwrap().contains("dead "),
        "counts line first: {table}"
    );
    let line = row(&table, &dead);
    assert!(
        line.contains("refresh_collections") && line.contains("violet answered 404"),
        "{line}"
    );
    let json = admin_json(
        &app,
        &[
            "jobs",
            "--state",
            "dead",
            "--merchant",
            &ACME.to_string(),
            "--limit",
            "5",
        ],
    )
    .await;
    assert!(
        json["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["state"] == "dead" && j["merchant_id"] == ACME)
    );

    let text = admin_ok(&app, &["retry", &dead]).await;
    assert!(
        text.contains(&format!("job {dead}")) && text.contains("is now pending"),
        "{text}"
    );
    let (_, stderr, code) = admin(&app, &["retry", &dead]).await;
    assert_eq!(code, 1, "a pending job cannot be retried");
    assert!(stderr.contains("only dead or cancelled"), "{stderr}");
    let (_, _, code) = admin(&app, &["retry", "424242"]).await;
    assert_eq!(code, 1);
    let (_, _, code) = admin(&app, &["jobs", "--limit", "0"]).await;
    assert_eq!(code, 2);

    let table = admin_ok(
        &app,
        &[
            "events",
            "--merchant",
            &ACME.to_string(),
            "--topic",
            "PRODUCT_SYNC_STARTED",
            "--limit",
            "10",
        ],
    )
    .await;
    let lines: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("PRODUCT_SYNC_STARTED") && l.contains("processed"))
    );
    assert!(
        lines[0].contains("ev-acme-started-2") && lines[1].contains("ev-acme-started-1"),
        "newest first: {table}"
    );
    let json = admin_json(&app, &["events", "--since", "1h", "--limit", "3"]).await;
    assert_eq!(json["events"].as_array().unwrap().len(), 3);
    let (_, stderr, code) = admin(&app, &["events", "--since", "last week"]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("since must be"), "{stderr}");

    let event_id = lines[1].split_whitespace().next().unwrap();
    let text = admin_ok(&app, &["replay", event_id]).await;
    assert!(text.contains("replayed: processed -> processed"), "{text}");
    let detail: String = sqlx::query_scalar("SELECT detail FROM webhook_events WHERE id = $1")
        .bind(event_id.parse::<i64>().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(detail.starts_with("replayed by an operator"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_and_an_unreachable_daemon_fail_clearly() {
    let (_db, app) = spawn().await;
    for args in [
        &["status"][..],
        &["jobs"],
        &["resync"],
        &["reindex"],
        &["retry", "1"],
        &["events"],
        &["merchant", "1"],
        &["replay", "1"],
    ] {
        let output = admin_with(&app, Some("not-the-token"), args).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(4), "{args:?}: {stderr}");
        assert!(
            stderr.contains("refused the token") && stderr.contains("401"),
            "{stderr}"
        );
        assert!(output.stdout.is_empty());
    }
    let output = admin_with(&app, None, &["status"]).await;
    assert_eq!(output.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no admin token"));
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0, "refused resyncs enqueued nothing");

    // Nothing listens there: a clear error, exit 3.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (_, stderr, code) = admin(&app, &["--url", &url, "status"]).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("cannot reach the daemon's admin API") && stderr.contains(&url),
        "{stderr}"
    );
    assert!(!stderr.contains(TOKEN), "the token never appears in errors");
    app.stop().await;
}

#[tokio::test]
async fn every_subcommand_and_flag_has_help() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_catalog-mirror"))
        .args(["admin", "--help"])
        .output()
        .await
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for command in [
        "status", "merchant", "resync", "reindex", "jobs", "retry", "events", "replay", "--json",
        "--url",
    ] {
        assert!(help.contains(command), "{command} in {help}");
    }
    assert!(help.contains("Exit codes"));
    for (command, flags) in [
        ("status", &["--watch", "--interval"][..]),
        ("resync", &["--merchant", "--kind"]),
        ("jobs", &["--state", "--merchant", "--limit"]),
        (
            "events",
            &["--merchant", "--topic", "--status", "--since", "--limit"],
        ),
    ] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_catalog-mirror"))
            .args(["admin", command, "--help"])
            .output()
            .await
            .unwrap();
        let help = String::from_utf8(output.stdout).unwrap();
        for flag in flags {
            let line = help
                .lines()
                .find(|l| l.trim_start().starts_with(flag))
                .unwrap_or_else(|| panic!("{flag} in {help}"));
            let described =
                line.trim_start().len() > flag.len() + 12 || help.contains(&format!("{flag} <"));
            assert!(described, "{command} {flag} has help: {help}");
        }
    }
}

/// The slow merchant's `kind` object in a `status --json` answer.
fn slow_kind<'a>(status: &'a Value, kind: &str) -> &'a Value {
    let merchant = status["merchants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["merchant_id"] == SLOW_MERCHANT)
        .unwrap_or_else(|| panic!("merchant {SLOW_MERCHANT} in {status}"));
    &merchant[kind]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_refresh_progress_in_json_tables_and_watch() {
    let slow = spawn_slow_refresh().await;
    let app = &slow.app;

    // The first pass, finished: its final numbers. Nothing sized it (the mirror was
    // empty), so it has no expected size.
    let json = admin_json(app, &["status"]).await;
    let first = &slow_kind(&json, "products")["progress"];
    assert_eq!(first["running"], false, "{first}");
    assert_eq!(first["phase"], "completed");
    assert_eq!(first["mode"], "full");
    assert_eq!(first["staged"], SLOW_OFFERS);
    assert_eq!(first["unit"], "offers");
    assert!(first["pages_fetched"].as_u64().unwrap() >= SLOW_OFFERS / SLOW_PAGE_SIZE);
    assert_eq!(first["expected"], Value::Null);
    assert_eq!(first["estimated_remaining_ms"], 0);
    assert!(first["finished_at"].is_string());
    let collections = &slow_kind(&json, "collections")["progress"];
    assert_eq!(collections["unit"], "collections");
    assert_eq!(collections["staged"], 2);

    // A second, slow pass: sized from the first.
    slow.resync_products().await;
    slow.wait_until_fetching(3).await;
    let json = admin_json(app, &["status"]).await;
    let p = &slow_kind(&json, "products")["progress"];
    assert_eq!(p["running"], true, "{p}");
    assert_eq!(p["phase"], "fetching");
    let pages = p["pages_fetched"].as_u64().unwrap();
    let staged = p["staged"].as_u64().unwrap();
    assert!(pages >= 3, "{p}");
    assert_eq!(staged, pages * SLOW_PAGE_SIZE, "{p}");
    assert_eq!(p["expected"], SLOW_OFFERS);
    assert_eq!(p["expected_pages"], SLOW_OFFERS / SLOW_PAGE_SIZE);
    assert_eq!(p["estimate_basis"], "last complete pass");
    let percent = p["percent"].as_f64().unwrap();
    assert!(
        (percent - staged as f64 * 100.0 / SLOW_OFFERS as f64).abs() < 1e-9,
        "{p}"
    );
    assert!(p["estimated_remaining_ms"].as_u64().unwrap() > 0, "{p}");
    assert!(p["elapsed_ms"].as_u64().unwrap() > 0);
    assert!(p["rate_limit_wait_ms"].is_u64());
    assert!(p["started_at"].is_string() && p["finished_at"].is_null());

    // The table: a progress row under the merchants.
    let table = admin_ok(app, &["status"]).await;
    let row = table
        .lines()
        .find(|line| line.contains("products (full)"))
        .unwrap_or_else(|| panic!("a progress row in:\n{table}"));
    for cell in [
        &SLOW_MERCHANT.to_string(),
        "fetching",
        "offers",
        "300 (last complete pass)",
    ] {
        assert!(row.contains(cell), "{cell:?} in {row}");
    }

    // --watch --json: one document per line, every interval, the numbers moving.
    let mut watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_catalog-mirror"))
        .args(["admin", "status", "--watch", "--interval", "1", "--json"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "CATALOG_MIRROR_ADMIN__URL",
            format!("http://{}", app.admin_addr),
        )
        .env("CATALOG_MIRROR_ADMIN__TOKEN", TOKEN)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(watch.stdout.take().unwrap()));
    let mut frames = Vec::new();
    while frames.len() < 3 {
        let line = tokio::time::timeout(std::time::Duration::from_secs(15), lines.next_line())
            .await
            .expect("a frame within 15 s")
            .unwrap()
            .expect("the watch keeps printing");
        frames.push(serde_json::from_str::<Value>(&line).expect("one JSON document per line"));
    }
    // Each frame is a new reading: a running refresh's elapsed time grows between them.
    let readings: Vec<(bool, u64)> = frames
        .iter()
        .map(|f| {
            let p = &slow_kind(f, "products")["progress"];
            (p["running"] == true, p["elapsed_ms"].as_u64().unwrap())
        })
        .collect();
    assert!(
        readings[0].0,
        "the first frame shows the refresh running: {readings:?}"
    );
    assert!(
        readings.windows(2).all(|w| !w[1].0 || w[1].1 > w[0].1),
        "{readings:?}"
    );
    watch.kill().await.unwrap();

    // The end: every offer staged, the sandbox's 429s counted as rate-limit wait.
    assert!(
        common::eventually(std::time::Duration::from_secs(90), || async {
            slow.products_progress().await["running"] == false
        })
        .await
    );
    let json = admin_json(app, &["merchant", &SLOW_MERCHANT.to_string()]).await;
    let done = &json["merchant"]["products"]["progress"];
    assert_eq!(done["phase"], "completed", "{done}");
    assert_eq!(done["staged"], SLOW_OFFERS);
    assert!(
        done["rate_limit_wait_ms"].as_u64().unwrap() >= 1000,
        "at least one Retry-After second: {done}"
    );
    let text = admin_ok(app, &["merchant", &SLOW_MERCHANT.to_string()]).await;
    assert!(text.contains("refresh progress:"), "{text}");
    slow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_shows_confirms_and_refuses_what_is_not_held() {
    let (_db, app) = spawn().await;
    seed(&app).await;
    hold_removals(&app).await;
    let acme = ACME.to_string();
    let status = admin_ok(&app, &["status"]).await;
    assert!(
        status.contains(&format!("merchant {ACME}: 2 removals held")),
        "{status}"
    );
    let shown = admin_ok(&app, &["removals", &acme]).await;
    assert!(
        shown.contains("2 removals held of 3 live offers"),
        "{shown}"
    );
    assert!(shown.contains("--confirm"), "{shown}");
    let (_, _, code) = admin(&app, &["removals", &acme, "--confirm", "--discard"]).await;
    assert_eq!(code, 2, "one decision at a time");
    let confirmed = admin_ok(&app, &["removals", &acme, "--confirm"]).await;
    assert!(confirmed.contains("2 offers removed"), "{confirmed}");
    let (_, stderr, code) = admin(&app, &["removals", &acme, "--discard"]).await;
    assert_eq!(code, 1, "nothing held any more: {stderr}");
    assert!(stderr.contains("no held removals"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merchant_shows_the_last_full_pass_the_last_delta_and_the_watermark() {
    let (_db, app) = spawn().await;
    seed(&app).await;
    set_freshness(&app).await;
    let text = admin_ok(&app, &["merchant", &ACME.to_string()]).await;
    assert!(
        text.contains(
            "last full pass 2026-11-30 08:00:00  last delta 2026-12-01 09:30:00  watermark 2026-11-30 23:55:00  next pass full: a products sync failed"
        ),
        "{text}"
    );
    let json = admin_json(&app, &["merchant", &ACME.to_string()]).await;
    let freshness = &json["merchant"]["freshness"];
    assert_eq!(freshness["last_full_refresh_at"], "2026-11-30T08:00:00Z");
    assert_eq!(freshness["last_delta_refresh_at"], "2026-12-01T09:30:00Z");
    assert_eq!(freshness["offers_watermark"], "2026-11-30T23:55:00Z");
    assert_eq!(freshness["full_refresh_due"], "a products sync failed");
    // A merchant that never refreshed shows dashes, and no reason.
    let text = admin_ok(&app, &["merchant", &BOLT.to_string()]).await;
    assert!(
        text.contains("last full pass -  last delta -  watermark -\n"),
        "{text}"
    );
    app.stop().await;
}
