//! Refresh progress: for each merchant and listing (products, collections), what the
//! refresh running in this process has done so far, how long it has waited on rate
//! limits, and an estimate of what is left. The admin API, CLI and page read it, and
//! `/metrics` exports it as gauges at scrape time.
//!
//! The refreshes call in at three points (start, each page read, the end); everything
//! else is here, so the refresh code only carries those calls. State is in memory, per
//! process: a refresh run by another instance sharing the database is not seen here,
//! and a restart forgets the last run (the estimate then falls back on the mirror).
//!
//! The estimate. Violet's offer listing carries no totals (`total_elements` is 0), so
//! the size of the pass is taken from what is known, in this order:
//! 1. the last complete pass of the same listing in this process: its item count and
//!    page count, how long its listing took and how long it took to publish;
//! 2. otherwise the mirror: the merchant's live offers (products) or its live
//!    collections plus one page per 100 members of each (collections).
//!
//! While pages are read, the listing's remaining time is the time spent so far scaled
//! by what is left (`elapsed x (expected - done) / done`, by offers for products, by
//! pages for collections), plus the last pass's publish time when known. After the
//! last page it is the last pass's publish time minus the time spent publishing. A
//! pass that outgrows the expected count has no estimate (`null`): the size is then
//! not known.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::RefreshReport;
use crate::violet::VioletClient;

/// The listing a refresh reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProgressKind {
    Products,
    Collections,
}

impl ProgressKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProgressKind::Products => "products",
            ProgressKind::Collections => "collections",
        }
    }
}

/// The shared registry. Cheap to clone; every clone sees the same refreshes.
#[derive(Clone)]
pub struct RefreshProgress {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RefreshProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshProgress").finish_non_exhaustive()
    }
}

struct Inner {
    pool: PgPool,
    /// Reports each merchant's rate-limit waits (cumulative since start).
    client: VioletClient,
    page_size: u64,
    entries: Mutex<HashMap<(i64, ProgressKind), Entry>>,
}

/// A complete pass, remembered to size the next one.
#[derive(Debug, Clone, Copy)]
struct Pass {
    items: u64,
    pages: u64,
    listing: Duration,
    publish: Duration,
}

#[derive(Debug, Clone)]
struct Entry {
    mode: &'static str,
    started_at: DateTime<Utc>,
    started: Instant,
    /// The merchant's cumulative rate-limit wait when the refresh began.
    wait_base: Duration,
    pages: u64,
    staged: u64,
    /// When the listing's final page was read (publishing follows).
    listing_done: Option<Instant>,
    expected: Option<Expected>,
    finished: Option<Finished>,
    /// The last complete pass, kept across refreshes.
    last_pass: Option<Pass>,
}

#[derive(Debug, Clone, Copy)]
struct Expected {
    items: Option<u64>,
    pages: Option<u64>,
    /// What the expected size comes from.
    basis: &'static str,
}

#[derive(Debug, Clone, Copy)]
struct Finished {
    at: DateTime<Utc>,
    elapsed: Duration,
    waited: Duration,
    ok: bool,
}

/// One refresh as the operator sees it (the admin API's `progress` object).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProgressSnapshot {
    pub merchant_id: i64,
    pub kind: &'static str,
    /// full | safe
    pub mode: &'static str,
    pub running: bool,
    /// fetching | publishing while running; completed | failed after.
    pub phase: &'static str,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub elapsed_ms: u64,
    /// Listing pages read so far (collections: the collection pages and every member page).
    pub pages_fetched: u64,
    /// Offers (products) or collections (collections) read and handed to staging.
    pub staged: u64,
    /// What `staged` and `expected` count: `offers` or `collections`.
    pub unit: &'static str,
    /// Time this merchant's Violet calls spent waiting on rate limits (client-side
    /// pacing and 429 Retry-After) since the refresh began.
    pub rate_limit_wait_ms: u64,
    /// The size this pass is expected to have, in `staged` units, when known.
    pub expected: Option<u64>,
    pub expected_pages: Option<u64>,
    /// Where `expected` comes from.
    pub estimate_basis: Option<&'static str>,
    /// Share done, 0 to 100, when the size is known.
    pub percent: Option<f64>,
    /// Time left, when it can be estimated (see the module docs).
    pub estimated_remaining_ms: Option<u64>,
}

impl RefreshProgress {
    pub fn new(pool: PgPool, client: VioletClient) -> Self {
        let page_size = u64::from(client.inner.page_size.max(1));
        Self {
            inner: Arc::new(Inner {
                pool,
                client,
                page_size,
                entries: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<(i64, ProgressKind), Entry>> {
        // A poisoned lock means a panic mid-update of plain counters; they stay usable.
        self.inner
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A refresh of `merchant_id`'s `kind` listing begins.
    pub async fn start(&self, merchant_id: i64, kind: ProgressKind, mode: &'static str) {
        let last_pass = self
            .entries()
            .get(&(merchant_id, kind))
            .and_then(|entry| entry.last_pass);
        // A delta reads what changed: no earlier pass says how much that is.
        let expected = match last_pass {
            _ if mode == "delta" => None,
            Some(pass) => Some(Expected {
                items: Some(pass.items),
                pages: Some(pass.pages),
                basis: "last complete pass",
            }),
            None => self.expected_from_mirror(merchant_id, kind).await,
        };
        let entry = Entry {
            mode,
            started_at: Utc::now(),
            started: Instant::now(),
            wait_base: self.inner.client.rate_limit_wait(merchant_id),
            pages: 0,
            staged: 0,
            listing_done: None,
            expected,
            finished: None,
            last_pass,
        };
        self.entries().insert((merchant_id, kind), entry);
    }

    /// A page of `items` was read; `last` when it ends the listing.
    pub fn page_fetched(&self, merchant_id: i64, kind: ProgressKind, items: usize, last: bool) {
        if let Some(entry) = self.entries().get_mut(&(merchant_id, kind)) {
            entry.pages += 1;
            entry.staged += items as u64;
            if last {
                entry.listing_done = Some(Instant::now());
            }
        }
    }

    /// The refresh ended with `outcome`; a success is remembered to size the next pass.
    pub fn finished(
        &self,
        merchant_id: i64,
        kind: ProgressKind,
        outcome: &anyhow::Result<RefreshReport>,
    ) {
        let waited = self.inner.client.rate_limit_wait(merchant_id);
        let mut entries = self.entries();
        let Some(entry) = entries.get_mut(&(merchant_id, kind)) else {
            return;
        };
        let now = Instant::now();
        // Collections read member pages after their listing: the listing is done when
        // publishing starts, which the report's publish time tells.
        let listing = match (entry.listing_done, outcome) {
            (Some(done), _) => done - entry.started,
            (None, Ok(report)) => (now - entry.started).saturating_sub(report.publish),
            (None, Err(_)) => now - entry.started,
        };
        // Only a complete listing sizes the next one.
        if let (Ok(report), false) = (outcome, entry.mode == "delta") {
            entry.last_pass = Some(Pass {
                items: entry.staged,
                pages: entry.pages,
                listing,
                publish: report.publish,
            });
        }
        entry.finished = Some(Finished {
            at: Utc::now(),
            elapsed: now - entry.started,
            waited: waited.saturating_sub(entry.wait_base),
            ok: outcome.is_ok(),
        });
    }

    /// The latest refresh of `merchant_id`'s `kind` in this process, running or not.
    pub fn snapshot(&self, merchant_id: i64, kind: ProgressKind) -> Option<ProgressSnapshot> {
        let waited = self.inner.client.rate_limit_wait(merchant_id);
        let entries = self.entries();
        let entry = entries.get(&(merchant_id, kind))?;
        Some(entry.snapshot(merchant_id, kind, waited, Instant::now()))
    }

    /// Every refresh known to this process, by merchant then kind.
    pub fn all(&self) -> Vec<ProgressSnapshot> {
        let keys: Vec<(i64, ProgressKind)> = {
            let mut keys: Vec<_> = self.entries().keys().copied().collect();
            keys.sort();
            keys
        };
        keys.into_iter()
            .filter_map(|(merchant_id, kind)| self.snapshot(merchant_id, kind))
            .collect()
    }

    /// Sets the `catalog_mirror_refresh_*` gauges from the current state (called when
    /// `/metrics` is scraped, so elapsed times and estimates are current). A finished
    /// refresh keeps its final numbers with `running` at 0 and no estimate.
    pub fn export_gauges(&self) {
        for snapshot in self.all() {
            let labels = [
                ("merchant", snapshot.merchant_id.to_string()),
                ("kind", snapshot.kind.to_string()),
            ];
            let or_nan = |value: Option<f64>| value.unwrap_or(f64::NAN);
            metrics::gauge!("catalog_mirror_refresh_running", &labels).set(if snapshot.running {
                1.0
            } else {
                0.0
            });
            metrics::gauge!("catalog_mirror_refresh_pages_fetched", &labels)
                .set(snapshot.pages_fetched as f64);
            metrics::gauge!("catalog_mirror_refresh_staged_items", &labels)
                .set(snapshot.staged as f64);
            metrics::gauge!("catalog_mirror_refresh_expected_items", &labels)
                .set(or_nan(snapshot.expected.map(|n| n as f64)));
            metrics::gauge!("catalog_mirror_refresh_rate_limit_wait_seconds", &labels)
                .set(snapshot.rate_limit_wait_ms as f64 / 1000.0);
            metrics::gauge!("catalog_mirror_refresh_elapsed_seconds", &labels)
                .set(snapshot.elapsed_ms as f64 / 1000.0);
            metrics::gauge!("catalog_mirror_refresh_remaining_seconds", &labels).set(or_nan(
                snapshot.estimated_remaining_ms.map(|ms| ms as f64 / 1000.0),
            ));
        }
    }

    /// The pass size the mirror implies, when no pass ran in this process yet.
    async fn expected_from_mirror(&self, merchant_id: i64, kind: ProgressKind) -> Option<Expected> {
        let pool = &self.inner.pool;
        let page = self.inner.page_size as i64;
        let found: sqlx::Result<(i64, i64)> = match kind {
            ProgressKind::Products => {
                sqlx::query_as(
                    "SELECT offer_count, (offer_count + $2 - 1) / $2 FROM merchants WHERE merchant_id = $1",
                )
                .bind(merchant_id)
                .bind(page)
                .fetch_optional(pool)
                .await
                .map(|row| row.unwrap_or((0, 0)))
            }
            // The collection pages, and per collection its member pages (at least one,
            // an empty listing is one page too).
            ProgressKind::Collections => {
                sqlx::query_as(
                    r#"SELECT count(*), (count(*) + $2 - 1) / $2
                              + COALESCE(sum(GREATEST(1, (members.n + $2 - 1) / $2)), 0)::bigint
                       FROM collections c
                       CROSS JOIN LATERAL (SELECT count(*) AS n FROM collection_offers co
                                           WHERE co.collection_id = c.collection_id) members
                       WHERE c.merchant_id = $1 AND c.removed_at IS NULL"#,
                )
                .bind(merchant_id)
                .bind(page)
                .fetch_one(pool)
                .await
            }
        };
        match found {
            Ok((items, pages)) if items > 0 => Some(Expected {
                items: Some(items as u64),
                pages: Some(pages.max(1) as u64),
                basis: "mirror",
            }),
            Ok(_) => None,
            Err(err) => {
                tracing::debug!(error = %err, "cannot size the refresh from the mirror; no estimate");
                None
            }
        }
    }
}

impl Entry {
    fn snapshot(
        &self,
        merchant_id: i64,
        kind: ProgressKind,
        waited_now: Duration,
        now: Instant,
    ) -> ProgressSnapshot {
        let running = self.finished.is_none();
        let elapsed = match &self.finished {
            Some(finished) => finished.elapsed,
            None => now - self.started,
        };
        let waited = match &self.finished {
            Some(finished) => finished.waited,
            None => waited_now.saturating_sub(self.wait_base),
        };
        let phase = match (&self.finished, self.listing_done) {
            (Some(finished), _) if finished.ok => "completed",
            (Some(_), _) => "failed",
            (None, Some(_)) => "publishing",
            (None, None) => "fetching",
        };
        let (percent, remaining) = if running {
            self.estimate(kind, now)
        } else {
            (
                self.finished.filter(|f| f.ok).map(|_| 100.0),
                self.finished.filter(|f| f.ok).map(|_| Duration::ZERO),
            )
        };
        ProgressSnapshot {
            merchant_id,
            kind: kind.as_str(),
            mode: self.mode,
            running,
            phase,
            started_at: self.started_at,
            finished_at: self.finished.map(|f| f.at),
            elapsed_ms: elapsed.as_millis() as u64,
            pages_fetched: self.pages,
            staged: self.staged,
            unit: match kind {
                ProgressKind::Products => "offers",
                ProgressKind::Collections => "collections",
            },
            rate_limit_wait_ms: waited.as_millis() as u64,
            expected: self.expected.and_then(|e| e.items),
            expected_pages: self.expected.and_then(|e| e.pages),
            estimate_basis: self.expected.map(|e| e.basis),
            percent,
            estimated_remaining_ms: remaining.map(|d| d.as_millis() as u64),
        }
    }

    /// Share done and time left of a running refresh (see the module docs).
    fn estimate(&self, kind: ProgressKind, now: Instant) -> (Option<f64>, Option<Duration>) {
        let publish = self.last_pass.map(|pass| pass.publish);
        if let Some(done) = self.listing_done {
            let left = publish.map(|publish| publish.saturating_sub(now - done));
            return (Some(100.0), left);
        }
        let Some(expected) = self.expected else {
            return (None, None);
        };
        // Products count offers; collections count pages (member pages dominate).
        let (done, total) = match kind {
            ProgressKind::Products => (self.staged, expected.items),
            ProgressKind::Collections => (self.pages, expected.pages),
        };
        let Some(total) = total.filter(|total| *total > 0) else {
            return (None, None);
        };
        if done >= total {
            // Past the expected size: the pass is larger than the last one, by an unknown amount.
            return (None, None);
        }
        let percent = done as f64 * 100.0 / total as f64;
        let spent = now - self.started;
        let listing_left = if done == 0 {
            // Nothing read yet: the last pass's listing time, less what was spent.
            match self.last_pass {
                Some(pass) => pass.listing.saturating_sub(spent),
                None => return (Some(percent), None),
            }
        } else {
            spent.mul_f64((total - done) as f64 / done as f64)
        };
        (
            Some(percent),
            Some(listing_left + publish.unwrap_or_default()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(started: Instant, expected: Option<u64>, last_pass: Option<Pass>) -> Entry {
        Entry {
            mode: "full",
            started_at: Utc::now(),
            started,
            wait_base: Duration::ZERO,
            pages: 0,
            staged: 0,
            listing_done: None,
            expected: expected.map(|items| Expected {
                items: Some(items),
                pages: Some(items.div_ceil(100)),
                basis: "mirror",
            }),
            finished: None,
            last_pass,
        }
    }

    #[test]
    fn the_estimate_scales_the_time_spent_by_what_is_left() {
        let started = Instant::now();
        let now = started + Duration::from_secs(10);
        let mut e = entry(started, Some(1000), None);
        e.pages = 2;
        e.staged = 250;
        let (percent, left) = e.estimate(ProgressKind::Products, now);
        assert_eq!(percent, Some(25.0));
        // 10 s for a quarter: 30 s for the rest.
        assert_eq!(left, Some(Duration::from_secs(30)));

        // A known publish time is added.
        e.last_pass = Some(Pass {
            items: 1000,
            pages: 10,
            listing: Duration::from_secs(40),
            publish: Duration::from_secs(5),
        });
        assert_eq!(
            e.estimate(ProgressKind::Products, now).1,
            Some(Duration::from_secs(35))
        );
    }

    #[test]
    fn no_size_or_a_pass_past_it_has_no_estimate() {
        let started = Instant::now();
        let now = started + Duration::from_secs(3);
        let mut e = entry(started, None, None);
        e.staged = 100;
        assert_eq!(e.estimate(ProgressKind::Products, now), (None, None));
        let mut e = entry(started, Some(100), None);
        e.staged = 150;
        assert_eq!(e.estimate(ProgressKind::Products, now), (None, None));
        // Nothing read and no earlier pass: a share (0 %) but no time.
        let e = entry(started, Some(100), None);
        assert_eq!(e.estimate(ProgressKind::Products, now), (Some(0.0), None));
    }

    #[test]
    fn publishing_counts_down_the_last_publish_time() {
        let started = Instant::now();
        let mut e = entry(
            started,
            Some(100),
            Some(Pass {
                items: 100,
                pages: 1,
                listing: Duration::from_secs(1),
                publish: Duration::from_secs(4),
            }),
        );
        e.listing_done = Some(started + Duration::from_secs(2));
        let (percent, left) = e.estimate(ProgressKind::Products, started + Duration::from_secs(3));
        assert_eq!(percent, Some(100.0));
        assert_eq!(left, Some(Duration::from_secs(3)));
        let snapshot = e.snapshot(
            1,
            ProgressKind::Products,
            Duration::ZERO,
            started + Duration::from_secs(3),
        );
        assert_eq!(snapshot.phase, "publishing");
        assert!(snapshot.running);
    }

    #[test]
    fn collections_are_estimated_by_pages() {
        let started = Instant::now();
        let mut e = entry(started, Some(3), None);
        e.expected = Some(Expected {
            items: Some(3),
            pages: Some(8),
            basis: "mirror",
        });
        e.pages = 2;
        e.staged = 3;
        let (percent, left) =
            e.estimate(ProgressKind::Collections, started + Duration::from_secs(2));
        assert_eq!(percent, Some(25.0));
        assert_eq!(left, Some(Duration::from_secs(6)));
    }
}
