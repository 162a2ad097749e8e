//! systemd integration: `READY=1` once the daemon serves, `STOPPING=1` on shutdown, and
//! watchdog pings from a loop on the async runtime, so a wedged runtime stops pinging
//! and systemd restarts the service. Without systemd (no `NOTIFY_SOCKET`) all of this
//! does nothing.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

pub fn ready() {
    notify(&[NotifyState::Ready]);
}

pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

fn notify(state: &[NotifyState]) {
    if let Err(err) = sd_notify::notify(false, state) {
        tracing::debug!(error = %err, "sd_notify failed");
    }
}

/// Pings the watchdog at half its interval until `shutdown`, when `WatchdogSec=` is set
/// (at once done otherwise).
pub async fn watchdog(shutdown: CancellationToken) {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let every = Duration::from_micros(usec) / 2;
    tracing::info!(
        interval_ms = every.as_millis() as u64,
        "systemd watchdog enabled"
    );
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => notify(&[NotifyState::Watchdog]),
        }
    }
}
