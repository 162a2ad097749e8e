//! SQL of the queue: enqueue with dedupe, claim with SKIP LOCKED, lease renewal,
//! completion, failure with backoff, reaping of expired leases, release on shutdown.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use super::JobKind;

/// Channel a trigger on `jobs` NOTIFYs when a job becomes pending (see the migration).
pub const NOTIFY_CHANNEL: &str = "catalog_mirror_jobs";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Pending,
    Running,
    Done,
    Dead,
    Cancelled,
}

/// A job row.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub merchant_id: Option<i64>,
    pub dedupe_key: Option<String>,
    pub payload: serde_json::Value,
    pub state: JobState,
    pub run_at: DateTime<Utc>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub locked_by: Option<String>,
    pub locked_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Job {
    /// The typed kind, from the payload.
    pub fn kind(&self) -> Result<JobKind, serde_json::Error> {
        serde_json::from_value(self.payload.clone())
    }
}

/// Exponential backoff with jitter: `base * factor^(attempt-1)`, capped, then moved by
/// up to `jitter` of itself either way, so retries of many jobs spread out.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub factor: f64,
    pub cap: Duration,
    pub jitter: f64,
}

impl Backoff {
    /// Delay before attempt `attempt + 1`, after `attempt` (1-based) failed.
    pub fn delay(&self, attempt: i32) -> Duration {
        let exponent = attempt.saturating_sub(1).clamp(0, 62);
        let raw = self.base.as_secs_f64() * self.factor.powi(exponent);
        let capped = raw.min(self.cap.as_secs_f64());
        let spread = capped * self.jitter.clamp(0.0, 1.0);
        let jittered = if spread > 0.0 {
            capped + rand::rng().random_range(-spread..=spread)
        } else {
            capped
        };
        Duration::from_secs_f64(jittered.clamp(0.0, self.cap.as_secs_f64()))
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: JobKind,
    /// Delay from now until it may run.
    pub delay: Duration,
    pub max_attempts: i32,
    /// What happens to the run_at of a pending job with the same dedupe key.
    pub on_conflict: OnConflict,
}

/// How enqueueing treats a pending job with the same dedupe key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Move run_at to now + delay (debounce a burst), at most 10 delays after creation.
    Debounce,
    /// Keep whichever run_at is earlier.
    KeepEarlier,
    /// Take the new run_at.
    Replace,
}

/// Handle to the queue; cheap to clone.
#[derive(Debug, Clone)]
pub struct Queue {
    pool: PgPool,
}

/// How long a burst may keep pushing a debounced job back: this many debounce delays.
const MAX_DEBOUNCE_FACTOR: f64 = 10.0;

/// The arguments of the `enqueue_job` SQL function (see migration 0001), in order.
#[derive(Debug, Clone)]
pub struct EnqueueArgs {
    pub kind: &'static str,
    pub merchant_id: i64,
    pub dedupe_key: String,
    pub payload: serde_json::Value,
    pub delay_ms: f64,
    pub max_attempts: i32,
    pub mode: &'static str,
    pub max_delay_ms: f64,
    pub slack_ms: f64,
}

impl EnqueueArgs {
    pub fn new(job: &NewJob) -> Self {
        let delay_ms = job.delay.as_millis() as f64;
        Self {
            kind: job.kind.name(),
            merchant_id: job.kind.merchant_id(),
            dedupe_key: job.kind.dedupe_key(),
            payload: serde_json::to_value(&job.kind).expect("job kinds serialize"),
            delay_ms,
            max_attempts: job.max_attempts,
            mode: match job.on_conflict {
                OnConflict::Debounce => "debounce",
                OnConflict::KeepEarlier => "keep_earlier",
                OnConflict::Replace => "replace",
            },
            max_delay_ms: delay_ms * MAX_DEBOUNCE_FACTOR,
            // Debounced bursts only rewrite the pending row when run_at moves by more
            // than a quarter of the debounce.
            slack_ms: match job.on_conflict {
                OnConflict::Debounce => delay_ms / 4.0,
                OnConflict::KeepEarlier | OnConflict::Replace => 0.0,
            },
        }
    }
}

impl Queue {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Inserts or merges a pending job inside the caller's transaction (the
    /// `enqueue_job` SQL function); the table's trigger NOTIFYs workers on commit. Returns the id of the pending job.
    pub async fn enqueue(conn: &mut PgConnection, job: &NewJob) -> sqlx::Result<i64> {
        match Self::enqueue_quietly(conn, job).await? {
            Some(id) => Ok(id),
            // The pending job already covers this; it is locked by us until commit.
            None => {
                sqlx::query_scalar(
                    "SELECT id FROM jobs WHERE dedupe_key = $1 AND state = 'pending'",
                )
                .bind(job.kind.dedupe_key())
                .fetch_one(&mut *conn)
                .await
            }
        }
    }

    /// [`Queue::enqueue`] without looking up the id when a pending job already covered
    /// the work unchanged (`None`): one round trip, for the intake's hot path.
    pub async fn enqueue_quietly(
        conn: &mut PgConnection,
        job: &NewJob,
    ) -> sqlx::Result<Option<i64>> {
        let args = EnqueueArgs::new(job);
        sqlx::query_scalar("SELECT enqueue_job($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(args.kind)
            .bind(args.merchant_id)
            .bind(args.dedupe_key)
            .bind(args.payload)
            .bind(args.delay_ms)
            .bind(args.max_attempts)
            .bind(args.mode)
            .bind(args.max_delay_ms)
            .bind(args.slack_ms)
            .fetch_one(&mut *conn)
            .await
    }

    /// Cancels pending jobs of `kind` for a merchant (`None`: every kind). Returns how many.
    pub async fn cancel_pending(
        conn: &mut PgConnection,
        merchant_id: i64,
        dedupe_key: Option<&str>,
        reason: &str,
    ) -> sqlx::Result<u64> {
        let result = sqlx::query(
            r#"
            UPDATE jobs SET state = 'cancelled', last_error = $3, finished_at = now(), updated_at = now()
            WHERE state = 'pending' AND merchant_id = $1 AND ($2::text IS NULL OR dedupe_key = $2)
            "#,
        )
        .bind(merchant_id)
        .bind(dedupe_key)
        .bind(reason)
        .execute(conn)
        .await?;
        Ok(result.rows_affected())
    }

    /// Claims the next due job, skipping rows other workers hold and keys that already
    /// have a running job (one refresh of a kind per merchant at a time).
    pub async fn claim(&self, worker: &str, lease: Duration) -> sqlx::Result<Option<Job>> {
        sqlx::query_as(
            r#"
            UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = $1,
                locked_until = now() + $2 * interval '1 millisecond', updated_at = now()
            WHERE id = (
                SELECT id FROM jobs j
                WHERE j.state = 'pending' AND j.run_at <= now()
                  AND (j.dedupe_key IS NULL OR NOT EXISTS (
                        SELECT 1 FROM jobs r WHERE r.state = 'running' AND r.dedupe_key = j.dedupe_key))
                ORDER BY j.run_at, j.id
                FOR UPDATE SKIP LOCKED
                LIMIT 1)
            RETURNING *
            "#,
        )
        .bind(worker)
        .bind(lease.as_millis() as f64)
        .fetch_optional(&self.pool)
        .await
    }

    /// Extends the lease of a job this worker still holds; false when it lost the job.
    pub async fn renew(&self, job_id: i64, worker: &str, lease: Duration) -> sqlx::Result<bool> {
        let result = sqlx::query(
            r#"
            UPDATE jobs SET locked_until = now() + $3 * interval '1 millisecond', updated_at = now()
            WHERE id = $1 AND state = 'running' AND locked_by = $2
            "#,
        )
        .bind(job_id)
        .bind(worker)
        .bind(lease.as_millis() as f64)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Marks a job done; false when this worker no longer held it.
    pub async fn complete(&self, job_id: i64, worker: &str) -> sqlx::Result<bool> {
        let result = sqlx::query(
            r#"
            UPDATE jobs SET state = 'done', locked_by = NULL, locked_until = NULL,
                finished_at = now(), updated_at = now()
            WHERE id = $1 AND state = 'running' AND locked_by = $2
            "#,
        )
        .bind(job_id)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Records a failed attempt: back to pending after `retry_in`, or `dead` when the
    /// attempts are used up. Returns the new state (None when the job was not held).
    pub async fn fail(
        &self,
        job: &Job,
        worker: &str,
        error: &str,
        retry_in: Duration,
    ) -> sqlx::Result<Option<JobState>> {
        let mut tx = self.pool.begin().await?;
        let held: Option<(i32, i32)> = sqlx::query_as(
            "SELECT attempts, max_attempts FROM jobs WHERE id = $1 AND state = 'running' AND locked_by = $2 FOR UPDATE",
        )
        .bind(job.id)
        .bind(worker)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((attempts, max_attempts)) = held else {
            return Ok(None);
        };
        let state = if attempts >= max_attempts {
            sqlx::query(
                r#"UPDATE jobs SET state = 'dead', last_error = $2, locked_by = NULL, locked_until = NULL,
                   finished_at = now(), updated_at = now() WHERE id = $1"#,
            )
            .bind(job.id)
            .bind(error)
            .execute(&mut *tx)
            .await?;
            JobState::Dead
        } else {
            requeue(&mut tx, job.id, error, retry_in).await?
        };
        tx.commit().await?;
        Ok(Some(state))
    }

    /// Gives a running job back without counting the attempt (shutdown drain ran out).
    pub async fn release(&self, job_id: i64, worker: &str) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        let held: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE id = $1 AND state = 'running' AND locked_by = $2 FOR UPDATE",
        )
        .bind(job_id)
        .bind(worker)
        .fetch_optional(&mut *tx)
        .await?;
        if held.is_some() {
            sqlx::query("UPDATE jobs SET attempts = GREATEST(attempts - 1, 0) WHERE id = $1")
                .bind(job_id)
                .execute(&mut *tx)
                .await?;
            requeue(&mut tx, job_id, "released at shutdown", Duration::ZERO).await?;
        }
        tx.commit().await
    }

    /// Puts jobs whose lease expired (their worker died or hung) back in the queue, or
    /// marks them dead when they have no attempts left. Returns how many were reaped.
    pub async fn reap_expired(&self) -> sqlx::Result<u64> {
        let mut tx = self.pool.begin().await?;
        let expired: Vec<(i64, i32, i32)> = sqlx::query_as(
            r#"SELECT id, attempts, max_attempts FROM jobs
               WHERE state = 'running' AND locked_until < now() FOR UPDATE SKIP LOCKED"#,
        )
        .fetch_all(&mut *tx)
        .await?;
        for (id, attempts, max_attempts) in &expired {
            let error = "lease expired: the worker stopped renewing it";
            if attempts >= max_attempts {
                sqlx::query(
                    r#"UPDATE jobs SET state = 'dead', last_error = $2, locked_by = NULL,
                       locked_until = NULL, finished_at = now(), updated_at = now() WHERE id = $1"#,
                )
                .bind(id)
                .bind(error)
                .execute(&mut *tx)
                .await?;
            } else {
                requeue(&mut tx, *id, error, Duration::ZERO).await?;
            }
        }
        tx.commit().await?;
        Ok(expired.len() as u64)
    }

    /// Moves a dead (or cancelled) job back to pending with fresh attempts (admin retry).
    pub async fn retry_dead(&self, job_id: i64) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE id = $1 AND state IN ('dead', 'cancelled') FOR UPDATE",
        )
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await?;
        if found.is_none() {
            return Ok(false);
        }
        sqlx::query("UPDATE jobs SET attempts = 0, finished_at = NULL WHERE id = $1")
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        requeue(&mut tx, job_id, "retried by an operator", Duration::ZERO).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn get(&self, job_id: i64) -> sqlx::Result<Option<Job>> {
        sqlx::query_as("SELECT * FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await
    }
}

/// Returns a job to `pending`. When another pending job with the same dedupe key
/// appeared meanwhile, that one already covers the work: this one is cancelled as
/// superseded and the other is made due no later than this one would have been.
///
/// Both this and [`Queue::enqueue`] take a transaction-scoped advisory lock on the
/// dedupe key first, so a pending sibling committed by a concurrent enqueue is always
/// seen here (instead of colliding with it on the unique index).
async fn requeue(
    conn: &mut PgConnection,
    job_id: i64,
    error: &str,
    retry_in: Duration,
) -> sqlx::Result<JobState> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext(dedupe_key)) FROM jobs WHERE id = $1 AND dedupe_key IS NOT NULL")
        .bind(job_id)
        .execute(&mut *conn)
        .await?;
    let sibling: Option<i64> = sqlx::query_scalar(
        r#"SELECT s.id FROM jobs s JOIN jobs j ON j.dedupe_key = s.dedupe_key
           WHERE j.id = $1 AND s.state = 'pending' AND s.id <> j.id FOR UPDATE OF s"#,
    )
    .bind(job_id)
    .fetch_optional(&mut *conn)
    .await?;
    let retry_ms = retry_in.as_millis() as f64;
    let state = if let Some(sibling) = sibling {
        sqlx::query(
            r#"UPDATE jobs SET run_at = LEAST(run_at, now() + $2 * interval '1 millisecond'),
                   payload = CASE WHEN (SELECT payload->>'mode' FROM jobs WHERE id = $3) = 'full'
                                  THEN (SELECT payload FROM jobs WHERE id = $3) ELSE payload END,
                   updated_at = now()
               WHERE id = $1"#,
        )
        .bind(sibling)
        .bind(retry_ms)
        .bind(job_id)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            r#"UPDATE jobs SET state = 'cancelled', locked_by = NULL, locked_until = NULL,
                   last_error = $2 || ' (superseded by pending job ' || $3 || ')',
                   finished_at = now(), updated_at = now()
               WHERE id = $1"#,
        )
        .bind(job_id)
        .bind(error)
        .bind(sibling.to_string())
        .execute(&mut *conn)
        .await?;
        JobState::Cancelled
    } else {
        sqlx::query(
            r#"UPDATE jobs SET state = 'pending', locked_by = NULL, locked_until = NULL,
                   last_error = $2, run_at = now() + $3 * interval '1 millisecond', updated_at = now()
               WHERE id = $1"#,
        )
        .bind(job_id)
        .bind(error)
        .bind(retry_ms)
        .execute(&mut *conn)
        .await?;
        JobState::Pending
    };
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let backoff = Backoff {
            base: Duration::from_secs(1),
            factor: 2.0,
            cap: Duration::from_secs(10),
            jitter: 0.0,
        };
        assert_eq!(backoff.delay(1), Duration::from_secs(1));
        assert_eq!(backoff.delay(3), Duration::from_secs(4));
        assert_eq!(backoff.delay(10), Duration::from_secs(10));
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let backoff = Backoff {
            base: Duration::from_secs(8),
            factor: 2.0,
            cap: Duration::from_secs(100),
            jitter: 0.25,
        };
        for _ in 0..200 {
            let delay = backoff.delay(1).as_secs_f64();
            assert!((6.0..=10.0).contains(&delay), "{delay}");
        }
    }
}
