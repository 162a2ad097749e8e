//! Fails intake fast while the database is known to be down, so an unreachable
//! database still gets a 503 within a second instead of each delivery waiting for the
//! pool's acquire timeout.
//!
//! Once a batch failed because the database could not be reached and nothing has
//! succeeded since, deliveries within `down_window` of that failure are refused at once;
//! after the window one more batch probes the database. How many transactions run at
//! once is bounded by the writers (`webhooks.intake_writers`), not here.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct IntakeGate {
    down_window: Duration,
    health: Mutex<Health>,
}

#[derive(Default)]
struct Health {
    last_success: Option<Instant>,
    last_failure: Option<Instant>,
}

impl Default for IntakeGate {
    fn default() -> Self {
        Self::new(Duration::from_millis(500))
    }
}

impl IntakeGate {
    pub fn new(down_window: Duration) -> Self {
        Self {
            down_window,
            health: Mutex::new(Health::default()),
        }
    }

    /// Whether a delivery may be queued for storage now.
    pub fn admits(&self) -> bool {
        !self.database_down()
    }

    pub fn succeeded(&self) {
        self.health.lock().expect("gate lock").last_success = Some(Instant::now());
    }

    pub fn failed(&self) {
        self.health.lock().expect("gate lock").last_failure = Some(Instant::now());
    }

    fn database_down(&self) -> bool {
        let health = self.health.lock().expect("gate lock");
        match (health.last_failure, health.last_success) {
            (Some(failure), success) => {
                success.is_none_or(|success| failure > success)
                    && failure.elapsed() < self.down_window
            }
            (None, _) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_at_once_after_a_failure_then_probes_again() {
        let gate = IntakeGate::new(Duration::from_millis(100));
        assert!(gate.admits());
        gate.failed();
        assert!(!gate.admits(), "down: refused without waiting");
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(gate.admits(), "window over: one more attempt");
        gate.failed();
        assert!(!gate.admits(), "the probe failed: down again");
        gate.succeeded();
        assert!(gate.admits(), "a success ends the window at once");
    }
}
