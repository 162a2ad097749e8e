//! Announcements for storefronts and alerting: a merchant's new catalog is searchable
//! (`catalog.ready`, with its catalog version and offer count), or a sync changed state
//! (`sync.failed`, `sync.stalled`, `sync.needs_attention`, `sync.recovered`).
//!
//! Each notification goes to this instance's Server-Sent Events subscribers
//! (`GET /notifications/stream`) and, when `notifications.webhook_urls` is set, to each
//! URL as a signed POST delivered by a durable job (retried with backoff, dead after
//! `notifications.max_attempts`). `catalog.ready` comes from this instance's indexer
//! after its commit is visible to searches, so a subscriber that searches on the same
//! instance finds the catalog. Sync state changes are raised inside the transaction that
//! makes them (`pg_notify`, delivered at commit) and reach every instance.

mod deliver;
mod stream;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub use deliver::{SIGNATURE_HEADER, deliver};
pub use stream::router;

use crate::config::{NotificationSettings, Secret};
use crate::jobs::{NewJob, OnConflict, Queue};
use crate::work::JobKind;
use crate::work::SyncKind;

/// The PostgreSQL channel sync state changes travel on.
pub const CHANNEL: &str = "catalog_mirror_notifications";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// `catalog.ready`, `sync.failed`, `sync.stalled`, `sync.needs_attention`, `sync.recovered`.
    #[serde(rename = "type")]
    pub kind: String,
    pub merchant_id: i64,
    /// `products` or `collections`, for sync notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_version: Option<i64>,
    /// Offers the storefront now sees for this merchant (catalog.ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offers: Option<i64>,
    /// The change-log number the index applied (catalog.ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_no: Option<i64>,
    pub at: DateTime<Utc>,
}

/// Publishes notifications on this instance. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    sender: broadcast::Sender<Notification>,
    pool: PgPool,
    settings: NotificationSettings,
    stream_key: Secret,
}

impl Notifier {
    /// `stream_key`: the key the SSE stream asks for (the search key); empty: open.
    pub fn new(pool: PgPool, settings: NotificationSettings, stream_key: Secret) -> Notifier {
        let (sender, _) = broadcast::channel(1024);
        Notifier {
            inner: Arc::new(Inner {
                sender,
                pool,
                settings,
                stream_key,
            }),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notification> {
        self.inner.sender.subscribe()
    }

    pub fn settings(&self) -> &NotificationSettings {
        &self.inner.settings
    }

    /// To SSE subscribers now; to the configured URLs through durable delivery jobs.
    pub async fn publish(&self, notification: Notification) -> sqlx::Result<()> {
        let _ = self.inner.sender.send(notification.clone());
        if self.inner.settings.webhook_urls.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_value(&notification).expect("notifications serialize");
        let mut conn = self.inner.pool.acquire().await?;
        for url in &self.inner.settings.webhook_urls {
            Queue::enqueue(
                &mut conn,
                &NewJob {
                    kind: JobKind::Notify {
                        merchant_id: notification.merchant_id,
                        url: url.clone(),
                        notification: body.clone(),
                    },
                    delay: std::time::Duration::ZERO,
                    max_attempts: self.inner.settings.max_attempts,
                    // Another instance announcing the same thing merges into one delivery.
                    on_conflict: OnConflict::KeepEarlier,
                },
            )
            .await?;
        }
        Ok(())
    }
}

/// Raises a sync state change inside the caller's transaction; every instance's
/// [`forward_sync_changes`] publishes it once the transaction commits.
pub async fn sync_state_changed(
    conn: &mut PgConnection,
    merchant_id: i64,
    kind: SyncKind,
    state: &str,
) -> sqlx::Result<()> {
    let notification = Notification {
        kind: format!("sync.{state}"),
        merchant_id,
        sync: Some(kind.as_str().to_string()),
        catalog_version: None,
        offers: None,
        change_no: None,
        at: Utc::now(),
    };
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(serde_json::to_string(&notification).expect("notifications serialize"))
        .execute(conn)
        .await?;
    Ok(())
}

/// Publishes the sync state changes committed by any instance. Only one instance
/// enqueues a given outbound delivery while it is pending (dedupe key).
pub async fn forward_sync_changes(notifier: Notifier, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let mut listener =
            match sqlx::postgres::PgListener::connect_with(&notifier.inner.pool).await {
                Ok(listener) => listener,
                Err(err) => {
                    tracing::debug!(error = %err, "notification listener cannot connect");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
        if listener.listen(CHANNEL).await.is_err() {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            continue;
        }
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => return,
                received = listener.recv() => received,
            };
            let Ok(message) = received else { break };
            match serde_json::from_str::<Notification>(message.payload()) {
                Ok(notification) => {
                    if let Err(err) = notifier.publish(notification).await {
                        tracing::warn!(error = %err, "cannot enqueue a sync notification");
                    }
                }
                Err(err) => tracing::warn!(error = %err, "ignoring a malformed notification"),
            }
        }
    }
}

/// Announces `catalog.ready` for each merchant of each index commit, once the commit is
/// visible to searches.
pub async fn announce_catalogs(
    notifier: Notifier,
    mut commits: broadcast::Receiver<(i64, Vec<i64>)>,
    shutdown: CancellationToken,
) {
    loop {
        let commit = tokio::select! {
            _ = shutdown.cancelled() => return,
            commit = commits.recv() => commit,
        };
        let (change_no, merchants) = match commit {
            Ok(commit) => commit,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "catalog announcements fell behind the index");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        // `offers` is what the storefront sees (the view the index projects), not the
        // live rows: a disabled merchant's announcement says 0, as its searches do.
        let facts: Result<Vec<(i64, i64, i64)>, _> = sqlx::query_as(
            r#"SELECT m.merchant_id, m.catalog_version,
                      (SELECT count(*) FROM storefront_offers o WHERE o.merchant_id = m.merchant_id)
               FROM merchants m WHERE m.merchant_id = ANY($1)"#,
        )
        .bind(&merchants)
        .fetch_all(&notifier.inner.pool)
        .await;
        let facts = match facts {
            Ok(facts) => facts,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read catalog facts for announcements");
                continue;
            }
        };
        for (merchant_id, catalog_version, offers) in facts {
            let notification = Notification {
                kind: "catalog.ready".into(),
                merchant_id,
                sync: None,
                catalog_version: Some(catalog_version),
                offers: Some(offers),
                change_no: Some(change_no),
                at: Utc::now(),
            };
            if let Err(err) = notifier.publish(notification).await {
                tracing::warn!(error = %err, "cannot enqueue a catalog announcement");
            }
        }
    }
}
