//! Logging: `tracing` to stderr as text or JSON (one object per line, suited to journald).

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `log.filter`.
/// Calling it twice is harmless (tests and `demo` may).
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
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
