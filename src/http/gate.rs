//! Admission control for intake, so a burst queues briefly instead of failing, while
//! an unreachable database still gets a 503 within a second.
//!
//! A burst larger than the pool waits for a permit (up to `wait`), since Violet gives a
//! delivery 10 s. Once a database call failed and nothing has succeeded since, requests
//! within `down_window` of that failure are refused at once instead of each waiting for
//! the pool's acquire timeout; after the window one more attempt probes the database.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

pub struct IntakeGate {
    permits: Semaphore,
    wait: Duration,
    down_window: Duration,
    health: Mutex<Health>,
}

#[derive(Default)]
struct Health {
    last_success: Option<Instant>,
    last_failure: Option<Instant>,
}

impl IntakeGate {
    pub fn new(permits: usize, wait: Duration) -> Self {
        Self {
            permits: Semaphore::new(permits.max(1)),
            wait,
            down_window: Duration::from_millis(500),
            health: Mutex::new(Health::default()),
        }
    }

    /// A permit to use the database, or `None` when the database is known to be down
    /// or the wait ran out.
    pub async fn enter(&self) -> Option<SemaphorePermit<'_>> {
        if self.database_down() {
            return None;
        }
        let permit = tokio::time::timeout(self.wait, self.permits.acquire())
            .await
            .ok()?
            .ok()?;
        (!self.database_down()).then_some(permit)
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
        let gate = IntakeGate::new(2, Duration::from_millis(50));
        assert!(gate.enter().await.is_some());
        gate.failed();
        assert!(
            gate.enter().await.is_none(),
            "down: refused without waiting"
        );
        tokio::time::sleep(Duration::from_millis(520)).await;
        assert!(
            gate.enter().await.is_some(),
            "window over: one more attempt"
        );
        gate.succeeded();
        assert!(gate.enter().await.is_some());
    }

    #[tokio::test]
    async fn a_full_gate_refuses_after_the_wait() {
        let gate = IntakeGate::new(1, Duration::from_millis(30));
        let _held = gate.enter().await.unwrap();
        assert!(gate.enter().await.is_none());
    }
}
