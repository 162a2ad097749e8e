//! Logging: `tracing` to stderr as text or JSON (one object per line, suited to
//! journald), and the process's Prometheus recorder.
//!
//! SQL text stays out of the log below trace: sqlx's own slow-statement warnings
//! (which carry whole statements) are turned into one short line each by
//! [`slow_statements`]; the daemon's statements are logged only at trace.

pub mod slow_statements;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, LevelFilter, filter_fn};
use tracing_subscriber::prelude::*;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `log.filter`.
/// Calling it twice is harmless (tests and `demo` may).
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: escape codes in a pipe or a file are noise.
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let output = match settings.format {
        LogFormat::Text => output.boxed(),
        LogFormat::Json => output.json().flatten_event(true).boxed(),
    };
    // The hint keeps the output's own hint (the filter's level) in force: a combined
    // filter without one would make every disabled trace! callsite consult the filters.
    let shown = filter_fn(slow_statements::shown_as_is).with_max_level_hint(LevelFilter::TRACE);
    let _ = tracing_subscriber::registry()
        .with(output.with_filter(filter.and(shown)))
        .with(slow_statements::SlowStatements::new().with_filter(
            filter_fn(slow_statements::received).with_max_level_hint(LevelFilter::INFO),
        ))
        .try_init();
}

/// The process's Prometheus recorder. The `metrics` facade has one global recorder per
/// process by design, so its render handle is process-wide too (tests run several
/// daemons in one process; only the first install succeeds). Metrics recorded before it
/// is installed are lost, so the daemon installs it at start ([`install_metrics`]).
static PROMETHEUS: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
    std::sync::OnceLock::new();

/// Installs the Prometheus recorder (once per process; later calls are no-ops).
pub fn install_metrics() {
    PROMETHEUS.get_or_init(|| {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets(&[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0, 300.0,
            ])
            .ok()?
            .install_recorder();
        match handle {
            Ok(handle) => Some(handle),
            Err(err) => {
                tracing::warn!(error = %err, "cannot install the metrics recorder");
                None
            }
        }
    });
}

/// The metrics in Prometheus' text format (empty when no recorder is installed).
pub fn render_metrics() -> String {
    install_metrics();
    PROMETHEUS
        .get()
        .and_then(|handle| handle.as_ref())
        .map(|handle| handle.render())
        .unwrap_or_default()
}
