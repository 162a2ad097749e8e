//! `catalog-mirror demo` as the README runs it: reaches ready, a search through the
//! storefront API returns hits, and Ctrl-C (SIGTERM here) stops it cleanly; its output
//! at the default log level carries no SQL, slow statements included.

use crate::common;

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

/// SQL as it appears in the daemon's statements (upper-case keywords): none of it may
/// reach the demo's output.
const SQL_MARKERS: &[&str] = &[
    "SELECT ",
    "INSERT INTO",
    "UPDATE ",
    "DELETE FROM",
    " FROM ",
    " WHERE ",
    "COPY ",
    "ON CONFLICT",
    "RETURNING",
];

/// Runs the demo to ready and exit; returns stdout and stderr, one line each.
async fn demo_output(args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let db = TestDb::empty().await;
    let index = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_catalog-mirror"));
    command
        .arg("demo")
        .args(args)
        .args(["--sandbox-addr", "127.0.0.1:0", "--exit-when-ready"])
        .env_remove("RUST_LOG")
        .env("DATABASE_URL", &db.url)
        .env("CATALOG_MIRROR_SEARCH__INDEX_DIR", index.path())
        .env("CATALOG_MIRROR_HTTP__PUBLIC_ADDR", "127.0.0.1:0")
        .env("CATALOG_MIRROR_HTTP__ADMIN_ADDR", "127.0.0.1:0")
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(900), command.output())
        .await
        .expect("the demo finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    // The slow-statement lines of a 1 ms threshold would bury the cause.
    let quieter: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.contains("slow statement"))
        .collect();
    assert!(
        output.status.success(),
        "demo failed ({}):\n{stdout}\n{}",
        output.status,
        quieter.join("\n")
    );
    assert!(stdout.contains("\nready: "), "{stdout}");
    stdout
        .lines()
        .chain(stderr.lines())
        .map(str::to_string)
        .collect()
}

fn assert_no_sql(lines: &[String]) {
    for line in lines {
        for marker in SQL_MARKERS {
            assert!(
                !line.contains(marker),
                "SQL ({marker:?}) in the demo's output: {line}"
            );
        }
        assert!(
            !line.contains("execution time exceeded alert threshold"),
            "sqlx's own slow-statement warning: {line}"
        );
    }
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

/// The run the operations issue reported SQL from: three merchants of 33,334 offers at
/// the shipped slow-statement threshold. Its publishes and index reads take long enough
/// to cross that threshold, and each must show as a named line, never as SQL. (Its
/// 900 s bound was once crossed by the indexer's read of the third merchant, planned on
/// statistics that predate its offers: tests/it/search_index.rs pins that plan.)
#[tokio::test(flavor = "multi_thread")]
async fn a_demo_of_a_hundred_thousand_offers_prints_no_sql() {
    let lines = demo_output(&["--merchants", "3", "--offers", "33334"], &[]).await;
    assert_no_sql(&lines);
    assert!(
        lines.iter().any(|line| line.contains("ready: ")),
        "{}",
        lines.join("\n")
    );
}
