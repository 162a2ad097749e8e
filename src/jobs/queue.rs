//! SQL of the queue: enqueue with dedupe, claim with SKIP LOCKED, lease renewal,
//! completion, failure with backoff, reaping of expired leases, release on shutdown.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::{PgConnection, PgPool};

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
    /// Jobs of one lane never run at the same time (see the module doc).
    pub lane: Option<String>,
    /// How many times the job was claimed; the latest claim's token.
    pub claims: i32,
}

impl Job {
    /// The typed kind, from the payload.
    pub fn kind<K: DeserializeOwned>(&self) -> Result<K, serde_json::Error> {
        serde_json::from_value(self.payload.clone())
    }

    /// The lease of this claim (valid while the job row says it runs with this token).
    pub fn lease(&self, length: Duration) -> Lease {
        Lease {
            job_id: self.id,
            token: self.claims,
            length,
        }
    }
}

/// One claim of a job: its id and the claim's token. Everything a job does to shared
/// state after a network call goes through [`Lease::hold`], so a copy that lost its
/// lease (a pause or database outage longer than the lease, after which the job was
/// claimed again) cannot publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub job_id: i64,
    pub token: i32,
    /// How long a renewal keeps the job.
    pub length: Duration,
}

/// What a renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// The lease now runs `Lease::length` from the renewal.
    Renewed,
    /// The claim still holds the job, but its row is locked (by the job's own
    /// publishing transaction, as a rule): the committed lease has `left` to run.
    Held { left: Duration },
    /// Reaped, claimed again or finished.
    Lost,
}

/// The job is no longer held by this claim: it was reaped, claimed again, or finished.
#[derive(Debug, thiserror::Error)]
#[error(
    "job {job_id} is no longer held by claim {token} (its lease lapsed or it was claimed again); nothing was published"
)]
pub struct LeaseLost {
    pub job_id: i64,
    pub token: i32,
}

impl Lease {
    /// Inside the caller's transaction: proves this claim still holds the job with time
    /// left, extends the lease, and locks the job row until commit, so the lease cannot
    /// be reaped or claimed by anyone else while the transaction publishes.
    pub async fn hold(&self, conn: &mut PgConnection) -> anyhow::Result<()> {
        let held = sqlx::query(
            r#"UPDATE jobs SET locked_until = GREATEST(locked_until, now() + $3 * interval '1 millisecond'),
                   updated_at = now()
               WHERE id = $1 AND claims = $2 AND state = 'running' AND locked_until > now()"#,
        )
        .bind(self.job_id)
        .bind(self.token)
        .bind(self.length.as_millis() as f64)
        .execute(conn)
        .await?
        .rows_affected();
        if held == 1 {
            Ok(())
        } else {
            Err(LeaseLost {
                job_id: self.job_id,
                token: self.token,
            }
            .into())
        }
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

/// What the queue asks of a job's kind. The payload is the kind itself, serialized
/// (it must carry its own tag, so that [`Job::kind`] reads it back).
pub trait JobSpec: Serialize {
    /// The `kind` column.
    fn name(&self) -> &'static str;
    fn merchant_id(&self) -> i64;
    /// Jobs of one lane never run at the same time (see the module doc).
    fn lane(&self) -> String;
    /// One pending job per key.
    fn dedupe_key(&self) -> String;
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob<K> {
    pub kind: K,
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

/// The arguments of the `enqueue_job` SQL function (see migrations 0001 and 0004), in
/// order.
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
    pub lane: String,
}

/// How many arguments `enqueue_job` takes ([`EnqueueArgs::bind`] binds them in order).
pub const ENQUEUE_ARGS: usize = 10;

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

impl EnqueueArgs {
    pub fn new<K: JobSpec>(job: &NewJob<K>) -> Self {
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
            lane: job.kind.lane(),
        }
    }

    /// Binds the [`ENQUEUE_ARGS`] arguments, in `enqueue_job`'s order, after whatever
    /// `query` already has.
    pub fn bind(self, query: PgQuery<'_>) -> PgQuery<'_> {
        query
            .bind(self.kind)
            .bind(self.merchant_id)
            .bind(self.dedupe_key)
            .bind(self.payload)
            .bind(self.delay_ms)
            .bind(self.max_attempts)
            .bind(self.mode)
            .bind(self.max_delay_ms)
            .bind(self.slack_ms)
            .bind(self.lane)
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
    pub async fn enqueue<K: JobSpec>(
        conn: &mut PgConnection,
        job: &NewJob<K>,
    ) -> sqlx::Result<i64> {
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
    pub async fn enqueue_quietly<K: JobSpec>(
        conn: &mut PgConnection,
        job: &NewJob<K>,
    ) -> sqlx::Result<Option<i64>> {
        let query = sqlx::query("SELECT enqueue_job($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)");
        let row = EnqueueArgs::new(job)
            .bind(query)
            .fetch_one(&mut *conn)
            .await?;
        sqlx::Row::try_get(&row, 0)
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

    /// Claims the next due job, skipping rows other workers hold and lanes that
    /// already have a running job (one writer per merchant and tables at a time). Each
    /// claim gets the next token (`claims`). Two workers racing for jobs of one lane
    /// meet on the unique index of running lanes: the loser claims nothing this time.
    pub async fn claim(&self, worker: &str, lease: Duration) -> sqlx::Result<Option<Job>> {
        let claimed = sqlx::query_as(
            r#"
            UPDATE jobs SET state = 'running', attempts = attempts + 1, claims = claims + 1,
                locked_by = $1, locked_until = now() + $2 * interval '1 millisecond', updated_at = now()
            WHERE id = (
                SELECT id FROM jobs j
                WHERE j.state = 'pending' AND j.run_at <= now()
                  AND (j.lane IS NULL OR NOT EXISTS (
                        SELECT 1 FROM jobs r WHERE r.state = 'running' AND r.lane = j.lane))
                ORDER BY j.run_at, j.id
                FOR UPDATE SKIP LOCKED
                LIMIT 1)
            RETURNING *
            "#,
        )
        .bind(worker)
        .bind(lease.as_millis() as f64)
        .fetch_optional(&self.pool)
        .await;
        match claimed {
            Err(sqlx::Error::Database(err))
                if err.constraint() == Some("jobs_one_running_per_lane") =>
            {
                Ok(None)
            }
            other => other,
        }
    }

    /// Extends the lease of a claim that still holds its job, without waiting on the
    /// job's row: while the job's own publishing transaction holds it ([`Lease::hold`]
    /// locks it until commit, and nobody can reap or claim it meanwhile) a renewal that
    /// waited would stall for the whole publish and look like a database that stopped
    /// answering. A locked row that this claim still holds answers [`Renewal::Held`]
    /// with the committed lease's time left.
    pub async fn renew(&self, lease: &Lease) -> sqlx::Result<Renewal> {
        let (renewed, left_ms): (bool, Option<f64>) = sqlx::query_as(
            r#"
            WITH target AS (
                SELECT id FROM jobs WHERE id = $1 AND state = 'running' AND claims = $2
                FOR NO KEY UPDATE SKIP LOCKED
            ), renewed AS (
                UPDATE jobs SET locked_until = now() + $3 * interval '1 millisecond', updated_at = now()
                FROM target WHERE jobs.id = target.id
                RETURNING jobs.id
            )
            SELECT EXISTS (SELECT 1 FROM renewed),
                   (SELECT GREATEST(EXTRACT(EPOCH FROM (locked_until - now())) * 1000, 0)::float8
                    FROM jobs WHERE id = $1 AND state = 'running' AND claims = $2)
            "#,
        )
        .bind(lease.job_id)
        .bind(lease.token)
        .bind(lease.length.as_millis() as f64)
        .fetch_one(&self.pool)
        .await?;
        Ok(match (renewed, left_ms) {
            (true, _) => Renewal::Renewed,
            (false, Some(ms)) => Renewal::Held {
                left: Duration::from_millis(ms as u64),
            },
            (false, None) => Renewal::Lost,
        })
    }

    /// Marks a job done; false when this claim no longer held it.
    pub async fn complete(&self, lease: &Lease) -> sqlx::Result<bool> {
        let result = sqlx::query(
            r#"
            UPDATE jobs SET state = 'done', locked_by = NULL, locked_until = NULL,
                finished_at = now(), updated_at = now()
            WHERE id = $1 AND state = 'running' AND claims = $2
            "#,
        )
        .bind(lease.job_id)
        .bind(lease.token)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Records a failed attempt: back to pending after `retry_in`, or `dead` when the
    /// attempts are used up. Returns the new state (None when the claim no longer held
    /// the job).
    pub async fn fail(
        &self,
        lease: &Lease,
        error: &str,
        retry_in: Duration,
    ) -> sqlx::Result<Option<JobState>> {
        let mut tx = self.pool.begin().await?;
        let held: Option<(i32, i32)> = sqlx::query_as(
            "SELECT attempts, max_attempts FROM jobs WHERE id = $1 AND state = 'running' AND claims = $2 FOR UPDATE",
        )
        .bind(lease.job_id)
        .bind(lease.token)
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
            .bind(lease.job_id)
            .bind(error)
            .execute(&mut *tx)
            .await?;
            JobState::Dead
        } else {
            requeue(&mut tx, lease.job_id, error, retry_in).await?
        };
        tx.commit().await?;
        Ok(Some(state))
    }

    /// Gives a running job back without counting the attempt (shutdown drain ran out).
    pub async fn release(&self, lease: &Lease) -> sqlx::Result<()> {
        let job_id = lease.job_id;
        let mut tx = self.pool.begin().await?;
        let held: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE id = $1 AND state = 'running' AND claims = $2 FOR UPDATE",
        )
        .bind(job_id)
        .bind(lease.token)
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

    /// The pending job with this dedupe key, if any.
    pub async fn pending(&self, dedupe_key: &str) -> sqlx::Result<Option<Job>> {
        sqlx::query_as("SELECT * FROM jobs WHERE dedupe_key = $1 AND state = 'pending'")
            .bind(dedupe_key)
            .fetch_optional(&self.pool)
            .await
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
