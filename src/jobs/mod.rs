//! The durable job queue in PostgreSQL and the worker pool that runs it. The queue
//! knows no job kinds: a kind tells it its name, merchant, lane and dedupe key through
//! [`JobSpec`] (the daemon's kinds are in `crate::work`).
//!
//! One `jobs` table. A job is claimed with `FOR UPDATE SKIP LOCKED` and a lease
//! (`locked_until`) that the worker renews while the job runs, so no transaction is
//! held across network calls and a lost worker's job is picked up again once its lease
//! expires. Failures back off exponentially with jitter; after `max_attempts` a job is
//! `dead`, its last error kept. A dedupe key allows one pending job per merchant and
//! kind: enqueueing again moves `run_at` (debounce). Workers wake on NOTIFY and poll as
//! a fallback.
//!
//! Two guarantees for jobs that write shared state (DESIGN.md, invariant 10):
//! - **Lanes**: jobs that write the same tables of one merchant share a lane, whatever
//!   their kind; at most one job per lane runs (a unique index enforces it, so two
//!   workers racing to claim cannot both win).
//! - **Fenced claims**: every claim has its own token ([`Lease`]). Renewing, finishing
//!   and publishing match on it, so a copy whose lease lapsed and whose job was claimed
//!   again can neither publish ([`Lease::hold`]) nor record an outcome.

mod queue;
mod worker;

pub use queue::{
    Backoff, ENQUEUE_ARGS, EnqueueArgs, Job, JobSpec, JobState, Lease, LeaseLost, NOTIFY_CHANNEL,
    NewJob, OnConflict, Queue, Renewal,
};
pub use worker::{JobFuture, JobRunner, WorkerPool};
