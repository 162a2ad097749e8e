//! The daemon's kinds of work: the two syncs Violet runs per merchant, the ways a
//! refresh reads a catalog, and the typed job kinds with the lane and dedupe key each
//! one uses.
//!
//! The queue (`crate::jobs`) stores and leases jobs without knowing any of these kinds:
//! it asks a kind only what [`JobSpec`] asks. They live here, above the queue and below
//! everything that enqueues or runs them (mirror, notify, sync, admin, runner).

use serde::{Deserialize, Serialize};

use crate::jobs::JobSpec;

/// The two independent syncs Violet runs per merchant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncKind {
    Products,
    Collections,
}

impl SyncKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            SyncKind::Products => "products",
            SyncKind::Collections => "collections",
        }
    }
}

/// What a job does. Stored as its `kind` column plus a JSON payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobKind {
    /// Refetch a merchant's offers into the mirror (after PRODUCT_SYNC_COMPLETED,
    /// a manual resync, a failed-sync retry or a stalled sync).
    RefreshProducts { merchant_id: i64, mode: RefreshMode },
    /// Refetch a merchant's collections and their membership.
    RefreshCollections { merchant_id: i64, mode: RefreshMode },
    /// Read again the membership of the collections the merchant's pending
    /// COLLECTION_OFFERS_UPDATED events name (outside a sync window), without listing
    /// every collection; hands over to a full collections refresh when they need one.
    CollectionMembers { merchant_id: i64 },
    /// Apply the merchant's pending offer and collection events received outside a
    /// sync window, in one batch.
    Incremental { merchant_id: i64 },
    /// A retry after *_SYNC_FAILED: a safe refresh on the sync retry schedule; when it
    /// runs out of attempts the merchant needs attention.
    SyncRetry { merchant_id: i64, sync: SyncKind },
    /// Fires `sync.stall_timeout_secs` after a STARTED: marks the sync stalled when it
    /// is still running with that sync id.
    StallCheck {
        merchant_id: i64,
        sync: SyncKind,
        sync_id: Option<String>,
    },
    /// Deliver one notification to one of the channel's URLs (signed, retried).
    Notify {
        merchant_id: i64,
        url: String,
        notification: serde_json::Value,
    },
}

/// A full refresh reads the whole listing and removes what was not seen; a safe one
/// reads the whole listing and only upserts; a delta (products only) reads only the
/// offers modified since the merchant's watermark and only upserts, and becomes a full
/// refresh when a full pass is due (see `mirror::delta`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshMode {
    Full,
    Safe,
    Delta,
}

impl JobKind {
    /// The `kind` column.
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::RefreshProducts { .. } => "refresh_products",
            JobKind::RefreshCollections { .. } => "refresh_collections",
            JobKind::CollectionMembers { .. } => "collection_members",
            JobKind::Incremental { .. } => "incremental",
            JobKind::SyncRetry { .. } => "sync_retry",
            JobKind::StallCheck { .. } => "stall_check",
            JobKind::Notify { .. } => "notify",
        }
    }

    pub fn merchant_id(&self) -> i64 {
        match self {
            JobKind::RefreshProducts { merchant_id, .. }
            | JobKind::RefreshCollections { merchant_id, .. }
            | JobKind::CollectionMembers { merchant_id }
            | JobKind::Incremental { merchant_id }
            | JobKind::SyncRetry { merchant_id, .. }
            | JobKind::StallCheck { merchant_id, .. }
            | JobKind::Notify { merchant_id, .. } => *merchant_id,
        }
    }

    /// The lane: jobs that write the same tables of one merchant share it, and only
    /// one job of a lane runs at a time. A products refresh, a products retry after
    /// FAILED and the incremental offer batch all write the merchant's offers; a
    /// collections refresh, its retry and a membership job write its collections. Other kinds run one
    /// per dedupe key.
    pub fn lane(&self) -> String {
        let merchant = self.merchant_id();
        match self {
            JobKind::RefreshProducts { .. }
            | JobKind::Incremental { .. }
            | JobKind::SyncRetry {
                sync: SyncKind::Products,
                ..
            } => format!("offers:{merchant}"),
            JobKind::RefreshCollections { .. }
            | JobKind::CollectionMembers { .. }
            | JobKind::SyncRetry {
                sync: SyncKind::Collections,
                ..
            } => format!("collections:{merchant}"),
            JobKind::StallCheck { .. } | JobKind::Notify { .. } => self.dedupe_key(),
        }
    }

    /// One pending job per key.
    pub fn dedupe_key(&self) -> String {
        let merchant = self.merchant_id();
        match self {
            JobKind::SyncRetry { sync, .. } | JobKind::StallCheck { sync, .. } => {
                format!("{}:{merchant}:{}", self.name(), sync.as_str())
            }
            // One pending delivery per URL and content: instances announcing the same
            // thing merge, distinct notifications never do.
            JobKind::Notify {
                url, notification, ..
            } => {
                use sha2::Digest;
                let digest = sha2::Sha256::digest(format!("{url}\n{notification}"));
                let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
                format!("{}:{merchant}:{hex}", self.name())
            }
            _ => format!("{}:{merchant}", self.name()),
        }
    }
}

/// The queue's view of a kind: its own methods.
impl JobSpec for JobKind {
    fn name(&self) -> &'static str {
        JobKind::name(self)
    }
    fn merchant_id(&self) -> i64 {
        JobKind::merchant_id(self)
    }
    fn lane(&self) -> String {
        JobKind::lane(self)
    }
    fn dedupe_key(&self) -> String {
        JobKind::dedupe_key(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_writing_the_same_tables_share_a_lane() {
        let m = 7;
        let offers = [
            JobKind::RefreshProducts {
                merchant_id: m,
                mode: RefreshMode::Full,
            },
            JobKind::Incremental { merchant_id: m },
            JobKind::SyncRetry {
                merchant_id: m,
                sync: SyncKind::Products,
            },
        ];
        let collections = [
            JobKind::RefreshCollections {
                merchant_id: m,
                mode: RefreshMode::Safe,
            },
            JobKind::SyncRetry {
                merchant_id: m,
                sync: SyncKind::Collections,
            },
            JobKind::CollectionMembers { merchant_id: m },
        ];
        assert!(offers.iter().all(|j| j.lane() == "offers:7"));
        assert!(collections.iter().all(|j| j.lane() == "collections:7"));
        let other = JobKind::Incremental { merchant_id: 8 };
        assert_ne!(other.lane(), offers[0].lane());
        let stall = JobKind::StallCheck {
            merchant_id: m,
            sync: SyncKind::Products,
            sync_id: None,
        };
        assert_eq!(stall.lane(), stall.dedupe_key());
    }
}
