//! Index lag: how far the served search index is behind the change log, in changes and
//! in seconds. `/readyz` compares it with `search.ready_max_lag_changes`; the sampler
//! exports it as `catalog_mirror_index_lag_changes` and `catalog_mirror_index_lag_seconds`.
//!
//! The applied change number is the served generation's commit payload
//! ([`SearchIndex::change_no`]); `None` means no usable index is being served yet (the
//! first build is running), so every change counts as unapplied.

use std::sync::Arc;

use sqlx::PgPool;

use crate::search::SearchIndex;

/// The served index against the change log, at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IndexLag {
    /// The last change number the served index applied; `None` while none is served.
    pub applied: Option<i64>,
    /// The newest change number in the log (0 when the log is empty).
    pub head: i64,
    /// Changes committed to the mirror and not yet searchable.
    pub changes: i64,
    /// Age of the oldest unapplied change (0 when caught up).
    pub seconds: f64,
}

impl IndexLag {
    /// Open (a generation with a commit payload is served) and at most `max_changes` behind.
    pub fn within(&self, max_changes: u64) -> bool {
        self.applied.is_some() && u64::try_from(self.changes).unwrap_or(0) <= max_changes
    }
}

/// The served index's watermark. Reads the commit metadata from disk, so it runs on a
/// blocking thread.
pub async fn applied_change_no(index: &Arc<SearchIndex>) -> Option<i64> {
    let index = index.clone();
    tokio::task::spawn_blocking(move || index.change_no())
        .await
        .ok()
        .flatten()
}

/// Measures the lag of an index that applied `applied`. Two primary-key lookups.
pub async fn measure(pool: &PgPool, applied: Option<i64>) -> sqlx::Result<IndexLag> {
    let (head, seconds): (i64, Option<f64>) = sqlx::query_as(
        r#"
        SELECT COALESCE((SELECT max(change_no) FROM change_log), 0),
               (SELECT EXTRACT(EPOCH FROM (now() - created_at))::float8
                  FROM change_log WHERE change_no > $1 ORDER BY change_no LIMIT 1)
        "#,
    )
    .bind(applied.unwrap_or(0))
    .fetch_one(pool)
    .await?;
    Ok(IndexLag {
        applied,
        head,
        changes: (head - applied.unwrap_or(0)).max(0),
        seconds: seconds.unwrap_or(0.0).max(0.0),
    })
}

/// The lag of the index `index` serves now.
pub async fn of(pool: &PgPool, index: &Arc<SearchIndex>) -> sqlx::Result<IndexLag> {
    let applied = applied_change_no(index).await;
    measure(pool, applied).await
}

#[cfg(test)]
mod tests {
    use super::IndexLag;

    fn lag(applied: Option<i64>, head: i64) -> IndexLag {
        IndexLag {
            applied,
            head,
            changes: (head - applied.unwrap_or(0)).max(0),
            seconds: 0.0,
        }
    }

    #[test]
    fn within_needs_an_open_index_and_a_small_enough_lag() {
        assert!(lag(Some(0), 0).within(0));
        assert!(lag(Some(90), 100).within(10));
        assert!(!lag(Some(89), 100).within(10));
        assert!(!lag(None, 0).within(1000), "no served index is never ready");
    }
}
