//! Counters of what the sandbox answered, readable while it runs.
//!
//! Tests assert on them (did the client log in once, refresh once, back off after a
//! 429?) and `GET /_sandbox/stats` shows them to people driving the demo.

use std::sync::atomic::{AtomicU64, Ordering};

use super::SandboxStats;

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        #[derive(Default)]
        pub struct Stats {
            $(pub $name: AtomicU64,)*
        }

        impl Stats {
            pub fn snapshot(&self) -> SandboxStats {
                SandboxStats { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters!(
    requests,
    logins,
    refreshes,
    unauthorized,
    expired_tokens,
    rate_limited,
    server_errors,
    hangs,
    truncated,
    malformed,
    not_found,
    pages_served,
    offers_served,
);

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Adds one to a counter.
pub fn bump(counter: &AtomicU64) {
    add(counter, 1);
}
