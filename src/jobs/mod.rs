//! The durable job queue in PostgreSQL and the worker pool that runs it.
//!
//! One `jobs` table. A job is claimed with `FOR UPDATE SKIP LOCKED` and a lease
//! (`locked_until`) that the worker renews while the job runs, so no transaction is
//! held across network calls and a lost worker's job is picked up again once its lease
//! expires. Failures back off exponentially with jitter; after `max_attempts` a job is
//! `dead`, its last error kept. A dedupe key allows one pending job per merchant and
//! kind: enqueueing again moves `run_at` (debounce). Workers wake on NOTIFY and poll as
//! a fallback.

mod kinds;
mod queue;
mod worker;

pub use kinds::{JobKind, RefreshMode};
pub use queue::{Backoff, EnqueueArgs, Job, JobState, NOTIFY_CHANNEL, NewJob, OnConflict, Queue};
pub use worker::{JobFuture, JobRunner, WorkerPool};
