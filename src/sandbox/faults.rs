//! The live [`Knobs`] and the decisions they drive: should this request fail, hang,
//! be rate limited, or have its page corrupted?
//!
//! Each decision takes the lock once and counts down in the same step, so "the next
//! N requests" means exactly N even under concurrent clients. Randomness comes from
//! one seeded stream, so a run with the same seed and request order fails alike.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use super::hash::{Rng, mix, tag};
use super::{Knobs, RateLimit};

/// How a page response is spoiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    Truncate,
    Malformed,
    OddOk,
    StalePage,
}

/// A 5xx to answer instead of serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerError {
    /// `fail_next_5xx`: 503.
    Scheduled,
    /// `error_rate_5xx`: one of 500, 502, 503, 504.
    Random(u16),
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

struct Inner {
    knobs: Knobs,
    rng: Rng,
    buckets: HashMap<u64, Bucket>,
}

pub struct Faults {
    inner: Mutex<Inner>,
}

impl Faults {
    pub fn new(seed: u64) -> Faults {
        Faults {
            inner: Mutex::new(Inner {
                knobs: Knobs::default(),
                rng: Rng::new(mix(&[seed, tag("faults")])),
                buckets: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn knobs(&self) -> Knobs {
        self.lock().knobs.clone()
    }

    /// Changes the knobs; a changed rate limit starts with full buckets.
    pub fn update(&self, f: impl FnOnce(&mut Knobs)) {
        let mut inner = self.lock();
        let before = inner.knobs.rate_limit.clone();
        f(&mut inner.knobs);
        if inner.knobs.rate_limit != before {
            inner.buckets.clear();
        }
    }

    pub fn latency(&self) -> std::time::Duration {
        self.lock().knobs.latency
    }

    /// Consumes one `hang_next`.
    pub fn take_hang(&self) -> bool {
        take(&mut self.lock().knobs.hang_next)
    }

    /// Consumes one `fail_next_5xx`, or draws against `error_rate_5xx`.
    pub fn take_server_error(&self) -> Option<ServerError> {
        let mut inner = self.lock();
        if take(&mut inner.knobs.fail_next_5xx) {
            return Some(ServerError::Scheduled);
        }
        let rate = inner.knobs.error_rate_5xx;
        if inner.rng.chance(rate) {
            let code = [500, 502, 503, 504][inner.rng.below(4) as usize];
            return Some(ServerError::Random(code));
        }
        None
    }

    /// Takes a token from the merchant's bucket; `Some(retry_after_secs)` when empty.
    pub fn rate_limited(&self, merchant: u64) -> Option<u64> {
        let mut inner = self.lock();
        let RateLimit {
            requests_per_sec,
            retry_after_secs,
        } = inner.knobs.rate_limit.clone()?;
        let rate = f64::from(requests_per_sec.max(1));
        let now = Instant::now();
        let bucket = inner.buckets.entry(merchant).or_insert(Bucket {
            tokens: rate,
            last: now,
        });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.last).as_secs_f64() * rate).min(rate);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            None
        } else {
            Some(retry_after_secs)
        }
    }

    /// Whether the offers listing of `merchant` fails at `page`; counts `times` down
    /// and clears the fault when it reaches zero.
    pub fn take_page_fault(&self, merchant: u64, page: u64) -> bool {
        let mut inner = self.lock();
        let Some(fault) = inner.knobs.fail_at_page.as_mut() else {
            return false;
        };
        if u64::from(fault.page) != page || fault.merchant_id.is_some_and(|m| m != merchant) {
            return false;
        }
        match fault.times.as_mut() {
            None => true,
            Some(0) => {
                inner.knobs.fail_at_page = None;
                false
            }
            Some(n) => {
                *n -= 1;
                if *n == 0 {
                    inner.knobs.fail_at_page = None;
                }
                true
            }
        }
    }

    /// Consumes one `truncate_next`, else one `malformed_next` or `odd_ok_next`, in
    /// that order; for pages after the first (`page_index` is 0-based), else one
    /// `stale_page_next`.
    pub fn take_corruption(&self, page_index: u64) -> Option<Corruption> {
        let mut inner = self.lock();
        let knobs = &mut inner.knobs;
        if take(&mut knobs.truncate_next) {
            Some(Corruption::Truncate)
        } else if take(&mut knobs.malformed_next) {
            Some(Corruption::Malformed)
        } else if take(&mut knobs.odd_ok_next) {
            Some(Corruption::OddOk)
        } else if page_index > 0 && take(&mut knobs.stale_page_next) {
            Some(Corruption::StalePage)
        } else {
            None
        }
    }
}

fn take(counter: &mut u32) -> bool {
    if *counter > 0 {
        *counter -= 1;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::PageFault;

    #[test]
    fn counters_fire_exactly_n_times() {
        let f = Faults::new(1);
        f.update(|k| {
            k.fail_next_5xx = 2;
            k.truncate_next = 1;
            k.malformed_next = 1;
        });
        assert_eq!(f.take_server_error(), Some(ServerError::Scheduled));
        assert_eq!(f.take_server_error(), Some(ServerError::Scheduled));
        assert_eq!(f.take_server_error(), None);
        assert_eq!(f.take_corruption(0), Some(Corruption::Truncate));
        assert_eq!(f.take_corruption(0), Some(Corruption::Malformed));
        assert_eq!(f.take_corruption(0), None);
        f.update(|k| {
            k.odd_ok_next = 1;
            k.stale_page_next = 1;
        });
        assert_eq!(f.take_corruption(0), Some(Corruption::OddOk));
        assert_eq!(f.take_corruption(0), None, "a first page is never stale");
        assert_eq!(f.take_corruption(3), Some(Corruption::StalePage));
        assert_eq!(f.take_corruption(3), None);
    }

    #[test]
    fn page_fault_counts_down_and_filters_merchant() {
        let f = Faults::new(1);
        f.update(|k| {
            k.fail_at_page = Some(PageFault {
                merchant_id: Some(7),
                page: 3,
                times: Some(2),
            })
        });
        assert!(!f.take_page_fault(8, 3));
        assert!(!f.take_page_fault(7, 2));
        assert!(f.take_page_fault(7, 3));
        assert!(f.take_page_fault(7, 3));
        assert!(!f.take_page_fault(7, 3));
        assert_eq!(f.knobs().fail_at_page, None);
    }

    #[test]
    fn bucket_allows_burst_then_limits() {
        let f = Faults::new(1);
        f.update(|k| {
            k.rate_limit = Some(RateLimit {
                requests_per_sec: 5,
                retry_after_secs: 2,
            })
        });
        let limited = (0..20).filter(|_| f.rate_limited(1).is_some()).count();
        assert!((14..=15).contains(&limited), "limited {limited}");
        assert_eq!(f.rate_limited(2), None, "buckets are per merchant");
    }

    #[test]
    fn error_rate_is_roughly_honoured() {
        let f = Faults::new(9);
        f.update(|k| k.error_rate_5xx = 0.25);
        let errors = (0..4000)
            .filter(|_| f.take_server_error().is_some())
            .count();
        assert!((800..1200).contains(&errors), "errors {errors}");
    }
}
