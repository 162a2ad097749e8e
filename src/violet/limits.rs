//! Client-side politeness: requests per second (all calls, and per merchant) and
//! requests in flight (all calls, and per merchant).
//!
//! Violet publishes no limits and passes merchants' platform 429s through, so the
//! caps are configuration. Order matters: a call first takes its merchant's slot,
//! then a global slot (so a busy merchant never holds global slots while it waits),
//! and waits for the rate limiters just before each send. Calls whose path names no
//! merchant (one offer, a collection's offers) count only against the global limits.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::VioletError;
use crate::config::VioletSettings;

pub(crate) struct Limits {
    global_rate: DefaultDirectRateLimiter,
    merchant_rate: DefaultKeyedRateLimiter<i64>,
    global_slots: Arc<Semaphore>,
    merchant_slots: Mutex<HashMap<i64, Arc<Semaphore>>>,
    merchant_max: usize,
    /// Cumulative rate-limit wait per merchant since start.
    waited: Mutex<HashMap<i64, Duration>>,
}

/// Slots held for the duration of one attempt; released on drop.
pub(crate) struct Slots {
    _merchant: Option<OwnedSemaphorePermit>,
    _global: Option<OwnedSemaphorePermit>,
}

impl Limits {
    pub(crate) fn new(settings: &VioletSettings) -> Result<Self, VioletError> {
        let rate = |value: u32, key: &str| {
            NonZeroU32::new(value)
                .map(Quota::per_second)
                .ok_or_else(|| VioletError::Config(format!("violet.{key} must be greater than 0")))
        };
        let positive = |value: usize, key: &str| {
            if value == 0 {
                Err(VioletError::Config(format!(
                    "violet.{key} must be greater than 0"
                )))
            } else {
                Ok(value)
            }
        };
        Ok(Self {
            global_rate: DefaultDirectRateLimiter::direct(rate(
                settings.rate_limit_per_sec,
                "rate_limit_per_sec",
            )?),
            merchant_rate: DefaultKeyedRateLimiter::keyed(rate(
                settings.merchant_rate_limit_per_sec,
                "merchant_rate_limit_per_sec",
            )?),
            global_slots: Arc::new(Semaphore::new(positive(
                settings.max_concurrency,
                "max_concurrency",
            )?)),
            merchant_slots: Mutex::new(HashMap::new()),
            merchant_max: positive(
                settings.merchant_max_concurrency,
                "merchant_max_concurrency",
            )?,
            waited: Mutex::new(HashMap::new()),
        })
    }

    /// Takes the merchant's slot (if any), then a global slot.
    pub(crate) async fn slots(&self, merchant: Option<i64>) -> Slots {
        let merchant_permit = match merchant {
            Some(id) => self.merchant_semaphore(id).acquire_owned().await.ok(),
            None => None,
        };
        let global = self.global_slots.clone().acquire_owned().await.ok();
        Slots {
            _merchant: merchant_permit,
            _global: global,
        }
    }

    /// Waits until the merchant's and the global rate limits allow one more request,
    /// recording the wait in `catalog_mirror_violet_rate_limit_wait_seconds`.
    pub(crate) async fn pace(&self, merchant: Option<i64>) {
        let started = Instant::now();
        if let Some(id) = merchant {
            self.merchant_rate.until_key_ready(&id).await;
        }
        self.global_rate.until_ready().await;
        let waited = started.elapsed();
        metrics::histogram!("catalog_mirror_violet_rate_limit_wait_seconds")
            .record(waited.as_secs_f64());
        if let Some(id) = merchant {
            self.add_wait(id, waited);
        }
        if waited.as_millis() >= 100 {
            tracing::debug!(waited_ms = waited.as_millis() as u64, merchant_id = ?merchant, "rate limited by client-side limits");
        }
    }

    /// Adds `wait` to the merchant's rate-limit wait.
    pub(crate) fn add_wait(&self, merchant: i64, wait: Duration) {
        if wait.is_zero() {
            return;
        }
        let mut waited = self.waited.lock().unwrap_or_else(|p| p.into_inner());
        *waited.entry(merchant).or_default() += wait;
    }

    /// The merchant's cumulative rate-limit wait since start.
    pub(crate) fn waited(&self, merchant: i64) -> Duration {
        let waited = self.waited.lock().unwrap_or_else(|p| p.into_inner());
        waited.get(&merchant).copied().unwrap_or_default()
    }

    fn merchant_semaphore(&self, id: i64) -> Arc<Semaphore> {
        // A poisoned lock only means another task panicked mid-insert; the map is intact.
        let mut slots = self
            .merchant_slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        slots
            .entry(id)
            .or_insert_with(|| Arc::new(Semaphore::new(self.merchant_max)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigSource, Settings};

    fn settings() -> VioletSettings {
        let mut violet = Settings::load(&ConfigSource::DefaultsOnly).unwrap().violet;
        violet.rate_limit_per_sec = 1000;
        violet.merchant_rate_limit_per_sec = 5;
        violet.max_concurrency = 3;
        violet.merchant_max_concurrency = 1;
        violet
    }

    #[tokio::test]
    async fn merchant_slots_are_per_merchant_and_global_slots_shared() {
        let limits = Limits::new(&settings()).unwrap();
        let first = limits.slots(Some(1)).await;
        // Merchant 1 is at its cap; merchant 2 and unscoped calls still proceed.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), limits.slots(Some(1)))
                .await
                .is_err()
        );
        let _second = limits.slots(Some(2)).await;
        let _third = limits.slots(None).await;
        // Three global slots are taken now.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), limits.slots(None))
                .await
                .is_err()
        );
        drop(first);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), limits.slots(Some(1)))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn merchant_rate_limit_paces_only_that_merchant() {
        let limits = Limits::new(&settings()).unwrap();
        let started = Instant::now();
        for _ in 0..5 {
            limits.pace(Some(7)).await; // the burst of 5
        }
        limits.pace(Some(8)).await;
        assert!(started.elapsed() < Duration::from_millis(100));
        limits.pace(Some(7)).await; // the sixth waits ~200 ms
        assert!(
            started.elapsed() >= Duration::from_millis(150),
            "{:?}",
            started.elapsed()
        );
        // The wait is counted against merchant 7 only.
        assert!(
            limits.waited(7) >= Duration::from_millis(100),
            "{:?}",
            limits.waited(7)
        );
        assert!(limits.waited(8) < Duration::from_millis(50));
    }

    #[test]
    fn zero_limits_are_refused_not_panicked_on() {
        let mut bad = settings();
        bad.merchant_rate_limit_per_sec = 0;
        assert!(matches!(Limits::new(&bad), Err(VioletError::Config(_))));
        let mut bad = settings();
        bad.max_concurrency = 0;
        assert!(Limits::new(&bad).is_err());
    }
}
