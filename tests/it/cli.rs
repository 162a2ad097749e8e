//! The binary's commands as an operator runs them.

use std::process::{Command, Output};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_catalog-mirror"));
    command.args(args).env_remove("DATABASE_URL");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_config_prints_the_effective_configuration_with_secrets_redacted() {
    let out = run(
        &["check-config"],
        &[
            ("CATALOG_MIRROR_VIOLET__PASSWORD", "very-secret-password"),
            ("CATALOG_MIRROR_JOBS__WORKERS", "9"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("workers = 9"), "{stdout}");
    assert!(stdout.contains("[redacted]"));
    assert!(!stdout.contains("very-secret-password"));
    assert!(!stdout.contains("sandbox-app-secret"));
}

#[test]
fn check_config_names_the_invalid_key_and_exits_non_zero() {
    let out = run(
        &["check-config"],
        &[("CATALOG_MIRROR_VIOLET__PAGE_SIZE", "500")],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("violet.page_size") && stderr.contains("between 1 and 100"),
        "{stderr}"
    );

    let out = run(
        &["check-config"],
        &[("CATALOG_MIRROR_HTTP__PUBLIC_ADDR", "not-an-address")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("http.public_addr"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_missing_config_file_is_refused() {
    let out = run(
        &[
            "--config",
            "/nonexistent/catalog-mirror.toml",
            "check-config",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/catalog-mirror.toml"));
}

#[test]
fn serve_refuses_an_invalid_configuration_before_starting() {
    let out = run(&["serve"], &[("CATALOG_MIRROR_JOBS__WORKERS", "zero")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("jobs.workers"));
}

#[test]
fn check_config_and_serve_refuse_the_sandbox_secret_against_a_real_violet() {
    let production = [(
        "CATALOG_MIRROR_VIOLET__BASE_URL",
        "https://api.violet.io/v1",
    )];
    for command in ["check-config", "serve"] {
        let out = run(&[command], &production);
        assert_eq!(out.status.code(), Some(1), "{command}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("violet.app_secret") && stderr.contains("violet.base_url"),
            "{command}: {stderr}"
        );
        assert!(
            !stderr.contains("sandbox-app-secret"),
            "{command}: {stderr}"
        );
    }
    let out = run(
        &["check-config"],
        &[
            production[0],
            ("CATALOG_MIRROR_VIOLET__APP_SECRET", "the-apps-own-secret"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(
        &["check-config"],
        &[(
            "CATALOG_MIRROR_VIOLET__BASE_URL",
            "http://localhost:8090/v1",
        )],
    );
    assert!(
        out.status.success(),
        "the sandbox on loopback: {}",
        text(&out.stderr)
    );
}

#[test]
fn every_command_explains_itself() {
    for command in ["serve", "migrate", "sandbox", "check-config"] {
        let out = run(&[command, "--help"], &[]);
        assert!(out.status.success(), "{command} --help");
        assert!(
            text(&out.stdout).len() > 80,
            "{command} --help says something"
        );
    }
    let out = run(&["frobnicate"], &[]);
    assert_eq!(out.status.code(), Some(2), "clap refuses unknown commands");
}

#[test]
fn check_config_names_a_restricted_key_whose_filter_does_not_parse() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog-mirror.toml");
    std::fs::write(
        &path,
        r#"
[[search.restricted_keys]]
key = "shop-a"
filter = "merchant_id = 1001"

[[search.restricted_keys]]
key = "shop-b"
filter = "merchant_id ="

[[search.restricted_keys]]
key = "shop-c"
filter = "  "
"#,
    )
    .unwrap();
    let out = run(&["--config", path.to_str().unwrap(), "check-config"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("search.restricted_keys[1].filter: is not a valid filter"),
        "{stderr}"
    );
    assert!(
        stderr.contains("search.restricted_keys[2].filter: must not be empty"),
        "{stderr}"
    );
    assert!(!stderr.contains("restricted_keys[0]"), "{stderr}");
}
