//! `catalog-mirror demo` run to ready and exit, its output read line by line: shared by
//! the demo tests in tests/it and tests/demo_scale.rs.

use std::time::Duration;

use super::TestDb;

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
pub async fn demo_output(args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
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
    let output = // Beyond the longest `--timeout-secs` a test gives: a demo that hangs fails here.
    tokio::time::timeout(Duration::from_secs(1800), command.output())
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

pub fn assert_no_sql(lines: &[String]) {
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
