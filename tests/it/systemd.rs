//! The shipped unit file is valid for systemd and keeps its promises (notify, watchdog,
//! check-config before start, a stop timeout above the job drain).

use std::process::Command;

const UNIT: &str = include_str!("../../systemd/catalog-mirror.service");

#[test]
fn the_unit_file_passes_systemd_analyze_verify() {
    // systemd-analyze needs ExecStart= to exist: point it at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("catalog-mirror.service");
    std::fs::write(
        &unit,
        UNIT.replace(
            "/usr/local/bin/catalog-mirror",
            env!("CARGO_BIN_EXE_catalog-mirror"),
        ),
    )
    .unwrap();
    let out = match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
    {
        Ok(out) => out,
        Err(err) => panic!("systemd-analyze is required (scripts/test-deps installs it): {err}"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

#[test]
fn the_unit_promises_what_the_daemon_does() {
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "ExecStartPre=/usr/local/bin/catalog-mirror check-config",
        "EnvironmentFile=-/etc/default/catalog-mirror",
        "StateDirectory=catalog-mirror",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
    ] {
        assert!(UNIT.lines().any(|l| l.starts_with(line)), "missing {line}");
    }
    let stop: u64 = UNIT
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim_end_matches('s').parse().ok())
        .expect("TimeoutStopSec in seconds");
    let settings =
        catalog_mirror::config::Settings::load(&catalog_mirror::config::ConfigSource::DefaultsOnly)
            .unwrap();
    assert!(
        stop > settings.jobs.drain_secs,
        "stop timeout {stop}s must exceed the {}s drain",
        settings.jobs.drain_secs
    );
}
