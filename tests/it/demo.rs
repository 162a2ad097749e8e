//! `catalog-mirror demo` as the README runs it: reaches ready, a search through the
//! storefront API returns hits, and Ctrl-C (SIGTERM here) stops it cleanly; its output
//! at the default log level carries no SQL, slow statements included. The demo of a
//! hundred thousand offers is its own test binary (tests/demo_scale.rs).

use crate::common;
use crate::common::demo::{assert_no_sql, demo_output};

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestDb;

#[tokio::test(flavor = "multi_thread")]
async fn demo_reaches_ready_and_search_returns_hits() {
    let db = TestDb::empty().await;
    let index = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_catalog-mirror"))
        .args([
            "demo",
            "--merchants",
            "2",
            "--offers",
            "300",
            "--sandbox-addr",
            "127.0.0.1:0",
            "--timeout-secs",
            "240",
        ])
        .env("DATABASE_URL", &db.url)
        .env("CATALOG_MIRROR_SEARCH__INDEX_DIR", index.path())
        .env("CATALOG_MIRROR_HTTP__PUBLIC_ADDR", "127.0.0.1:0")
        .env("CATALOG_MIRROR_HTTP__ADMIN_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo starts");

    // Read the demo's output until it prints the search command.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut output = Vec::new();
    let search_line = loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) if line.trim_start().starts_with("search:") => break line,
            Ok(line) => output.push(line),
            Err(_) if started.elapsed() > Duration::from_secs(240) => {
                let _ = child.kill();
                panic!(
                    "demo did not reach ready; output so far:\n{}",
                    output.join("\n")
                );
            }
            Err(_) => {}
        }
    };
    assert!(
        output
            .iter()
            .any(|l| l.starts_with("ready: 600 offers from 2 merchants")),
        "{output:?}"
    );

    // The printed command: curl -s http://HOST:PORT/indexes/offers/search ... -d '{"q":"word","limit":3}'
    let url = search_line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("search url")
        .to_string();
    let body = search_line
        .split("-d '")
        .nth(1)
        .and_then(|rest| rest.strip_suffix('\''))
        .expect("search body");
    let response: serde_json::Value = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hits = response["hits"].as_array().expect("hits");
    assert!(
        !hits.is_empty(),
        "the printed search finds offers: {response}"
    );

    // Ctrl-C: a clean exit.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "demo did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit status {status}");
}

/// With a threshold every statement exceeds, each is logged as one named line with its
/// duration: the warning sqlx would print with the whole SQL, readable instead.
#[tokio::test(flavor = "multi_thread")]
async fn slow_statements_are_named_not_printed() {
    let lines = demo_output(
        &["--merchants", "2", "--offers", "200"],
        &[("CATALOG_MIRROR_DATABASE__SLOW_STATEMENT_MS", "1")],
    )
    .await;
    let slow: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains("slow statement"))
        .collect();
    assert!(
        slow.len() >= 5,
        "a 1 ms threshold reports statements:\n{}",
        lines.join("\n")
    );
    for line in &slow {
        for field in ["statement=", "within=", "elapsed_ms=", "threshold=1ms"] {
            assert!(line.contains(field), "{field} in {line}");
        }
    }
    assert!(
        slow.iter().any(|line| line.contains("statement=select ")),
        "statements named by verb and table:\n{}",
        slow.iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_no_sql(&lines);
}

/// A demo that cannot finish in time says where each merchant stood, so a slow or stuck
/// run can be told apart from the output alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_demo_past_its_timeout_says_where_each_merchant_stood() {
    let db = TestDb::empty().await;
    let index = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_catalog-mirror"))
        .args(["demo", "--merchants", "2", "--offers", "3000"])
        .args(["--sandbox-addr", "127.0.0.1:0", "--exit-when-ready"])
        .args(["--timeout-secs", "1"])
        .env_remove("RUST_LOG")
        .env("DATABASE_URL", &db.url)
        .env("CATALOG_MIRROR_SEARCH__INDEX_DIR", index.path())
        .env("CATALOG_MIRROR_HTTP__PUBLIC_ADDR", "127.0.0.1:0")
        .env("CATALOG_MIRROR_HTTP__ADMIN_ADDR", "127.0.0.1:0")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("the demo gives up")
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the catalogs were not searchable after 1 s:"),
        "{stderr}"
    );
    let standing: Vec<&str> = stderr
        .lines()
        .filter(|line| {
            line.contains(" of 3000 offers mirrored, last change ")
                && line.contains(" webhooks stored")
        })
        .collect();
    // Both merchants, once in the log line and once in the printed error.
    assert!(standing.len() >= 2, "{stderr}");
}
