//! Jobs for the operator: filtered listing (dead ones carry their last error) and
//! counts per state.

use std::collections::BTreeMap;

use sqlx::PgPool;

use crate::jobs::{Job, JobState};

/// The `kind` column of every job kind ([`crate::work::JobKind::name`]).
pub const JOB_KINDS: &[&str] = &[
    "refresh_products",
    "refresh_collections",
    "collection_members",
    "incremental",
    "sync_retry",
    "stall_check",
];

/// The states a job can be in, as stored.
pub const JOB_STATES: &[&str] = &["pending", "running", "done", "dead", "cancelled"];

#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// One of [`JOB_STATES`]; `None`: any.
    pub state: Option<String>,
    pub merchant_id: Option<i64>,
    /// The `kind` column, e.g. `refresh_products`.
    pub kind: Option<String>,
    pub limit: i64,
}

/// Matching jobs, newest first.
pub async fn jobs(pool: &PgPool, filter: &JobFilter) -> sqlx::Result<Vec<Job>> {
    sqlx::query_as(
        r#"SELECT * FROM jobs
           WHERE ($1::text IS NULL OR state = $1) AND ($2::bigint IS NULL OR merchant_id = $2)
             AND ($3::text IS NULL OR kind = $3)
           ORDER BY id DESC LIMIT $4"#,
    )
    .bind(&filter.state)
    .bind(filter.merchant_id)
    .bind(&filter.kind)
    .bind(filter.limit)
    .fetch_all(pool)
    .await
}

/// How many jobs are in each state (every state listed, zero included).
pub async fn job_counts(pool: &PgPool) -> sqlx::Result<BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM jobs GROUP BY state")
            .fetch_all(pool)
            .await?;
    let mut counts: BTreeMap<String, i64> = JOB_STATES
        .iter()
        .map(|state| (state.to_string(), 0))
        .collect();
    counts.extend(rows);
    Ok(counts)
}

/// The stored name of a state.
pub fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Pending => "pending",
        JobState::Running => "running",
        JobState::Done => "done",
        JobState::Dead => "dead",
        JobState::Cancelled => "cancelled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::SyncKind;
    use crate::work::{JobKind, RefreshMode};

    #[test]
    fn every_job_kind_is_listed() {
        let kinds = [
            JobKind::RefreshProducts {
                merchant_id: 1,
                mode: RefreshMode::Full,
            },
            JobKind::RefreshCollections {
                merchant_id: 1,
                mode: RefreshMode::Full,
            },
            JobKind::CollectionMembers { merchant_id: 1 },
            JobKind::Incremental { merchant_id: 1 },
            JobKind::SyncRetry {
                merchant_id: 1,
                sync: SyncKind::Products,
            },
            JobKind::StallCheck {
                merchant_id: 1,
                sync: SyncKind::Products,
                sync_id: None,
            },
        ];
        for kind in kinds {
            assert!(JOB_KINDS.contains(&kind.name()), "{}", kind.name());
        }
        assert_eq!(JOB_KINDS.len(), 6);
    }
}
