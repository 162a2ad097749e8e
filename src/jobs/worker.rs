//! The worker pool: claims due jobs, runs them with a renewed lease, records the outcome.
//!
//! Concurrency is bounded by `jobs.workers`. Workers wake on NOTIFY and poll every
//! `jobs.poll_interval_ms` as a fallback (and while the database is unreachable). On
//! shutdown no new job is claimed; running jobs get `jobs.drain_secs` to finish, then
//! are cancelled and released back to the queue without losing an attempt.

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::queue::{Backoff, Job, JobState, Lease, NOTIFY_CHANNEL, Queue, Renewal};
use crate::config::JobSettings;

pub type JobFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// What the pool runs. The application dispatches on the job kind; tests plug in
/// their own behaviour to exercise the queue.
pub trait JobRunner: Send + Sync + 'static {
    /// Runs one attempt under `lease` (this claim; what it publishes goes through
    /// [`Lease::hold`]). `cancel` fires when the job must stop (drain ran out, or the
    /// lease was lost or could not be renewed in time); the job should return soon after.
    fn run(&self, job: Job, lease: Lease, cancel: CancellationToken) -> JobFuture;

    /// The retry schedule of this job after a failed attempt.
    fn backoff(&self, job: &Job) -> Backoff;

    /// Called once a job is dead (out of attempts), after that is committed.
    fn on_dead(&self, _job: Job, _error: String) -> JobFuture {
        Box::pin(async { Ok(()) })
    }
}

pub struct WorkerPool {
    queue: Queue,
    runner: Arc<dyn JobRunner>,
    settings: JobSettings,
    worker_id: String,
}

enum Outcome {
    Finished(anyhow::Result<()>),
    Panicked(String),
    Released,
}

impl WorkerPool {
    pub fn new(queue: Queue, runner: Arc<dyn JobRunner>, settings: JobSettings) -> Self {
        let worker_id = format!(
            "{}-{}-{:08x}",
            hostname(),
            std::process::id(),
            rand::random::<u32>()
        );
        Self {
            queue,
            runner,
            settings,
            worker_id,
        }
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Runs until `shutdown` is cancelled, then drains.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let wake = Arc::new(Notify::new());
        let listener = tokio::spawn(listen(
            self.queue.pool().clone(),
            wake.clone(),
            shutdown.clone(),
        ));
        let permits = Arc::new(Semaphore::new(self.settings.workers));
        let tracker = TaskTracker::new();
        let jobs_cancel = CancellationToken::new();
        let mut last_reap = Instant::now() - self.settings.lease();

        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = permits.clone().acquire_owned() => permit.expect("semaphore never closed"),
            };
            if last_reap.elapsed() >= self.settings.lease() / 4 {
                last_reap = Instant::now();
                match self.queue.reap_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(jobs = n, "requeued jobs whose lease expired"),
                    Err(err) => tracing::debug!(error = %err, "cannot reap expired leases"),
                }
            }
            match self
                .queue
                .claim(&self.worker_id, self.settings.lease())
                .await
            {
                Ok(Some(job)) => {
                    let pool = self.clone();
                    let cancel = jobs_cancel.clone();
                    tracker.spawn(async move {
                        pool.run_one(job, cancel).await;
                        drop(permit);
                    });
                }
                Ok(None) => {
                    drop(permit);
                    self.idle(&wake, &shutdown).await;
                }
                Err(err) => {
                    drop(permit);
                    tracing::warn!(error = %err, "cannot claim jobs; retrying");
                    self.idle(&wake, &shutdown).await;
                }
            }
        }

        tracker.close();
        if tokio::time::timeout(self.settings.drain(), tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("drain time ran out: releasing running jobs");
            jobs_cancel.cancel();
            tracker.wait().await;
        }
        listener.abort();
    }

    /// Claims and runs due jobs one at a time until none is due. For tests and tools.
    pub async fn run_until_empty(self: &Arc<Self>) -> anyhow::Result<usize> {
        let mut ran = 0;
        while let Some(job) = self
            .queue
            .claim(&self.worker_id, self.settings.lease())
            .await?
        {
            self.run_one(job, CancellationToken::new()).await;
            ran += 1;
        }
        Ok(ran)
    }

    async fn idle(&self, wake: &Notify, shutdown: &CancellationToken) {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(self.settings.poll_interval()) => {}
            _ = shutdown.cancelled() => {}
        }
    }

    #[tracing::instrument(skip_all, fields(job.id = job.id, job.kind = %job.kind, job.attempt = job.attempts))]
    async fn run_one(&self, job: Job, drain_cancel: CancellationToken) {
        let started = Instant::now();
        let lease = job.lease(self.settings.lease());
        let cancel = drain_cancel.child_token();
        let renewer = tokio::spawn(renew_lease(self.queue.clone(), lease, cancel.clone()));
        let attempt =
            AssertUnwindSafe(self.runner.run(job.clone(), lease, cancel.clone())).catch_unwind();
        let outcome = tokio::select! {
            result = attempt => match result {
                Ok(result) => Outcome::Finished(result),
                Err(panic) => Outcome::Panicked(panic_message(&panic)),
            },
            _ = drain_cancel.cancelled() => Outcome::Released,
        };
        // A job that stops with an error because the drain cancelled it (as a refresh
        // does) ended at the same moment as the drain; either branch may have won. It
        // was stopped, not failed: release it without using up an attempt.
        let outcome = match outcome {
            Outcome::Finished(Err(_)) if drain_cancel.is_cancelled() => Outcome::Released,
            outcome => outcome,
        };
        renewer.abort();
        metrics::histogram!("catalog_mirror_job_duration_seconds", "kind" => job.kind.clone())
            .record(started.elapsed().as_secs_f64());

        let recorded = match outcome {
            Outcome::Finished(Ok(())) => self
                .queue
                .complete(&lease)
                .await
                .map(|held| if held { Some(JobState::Done) } else { None }),
            Outcome::Finished(Err(err)) => {
                self.record_failure(&job, &lease, format!("{err:#}")).await
            }
            Outcome::Panicked(message) => {
                self.record_failure(&job, &lease, format!("job panicked: {message}"))
                    .await
            }
            Outcome::Released => self
                .queue
                .release(&lease)
                .await
                .map(|()| Some(JobState::Pending)),
        };
        match recorded {
            Ok(Some(state)) => {
                let outcome = match state {
                    JobState::Done => "done",
                    JobState::Dead => "dead",
                    JobState::Cancelled => "superseded",
                    _ => "retry",
                };
                metrics::counter!("catalog_mirror_jobs_total", "kind" => job.kind.clone(), "outcome" => outcome)
                    .increment(1);
                tracing::debug!(outcome, "job attempt recorded");
            }
            Ok(None) => tracing::warn!(
                "job lease was lost before its outcome was recorded; another worker owns it"
            ),
            Err(err) => {
                tracing::warn!(error = %err, "cannot record the job outcome; its lease will expire and it will run again")
            }
        }
    }

    async fn record_failure(
        &self,
        job: &Job,
        lease: &Lease,
        error: String,
    ) -> sqlx::Result<Option<JobState>> {
        let delay = self.runner.backoff(job).delay(job.attempts);
        let state = self.queue.fail(lease, &error, delay).await?;
        match state {
            Some(JobState::Dead) => {
                tracing::error!(error = %error, attempts = job.attempts, "job is dead after its last attempt");
                if let Err(err) = self.runner.on_dead(job.clone(), error).await {
                    tracing::error!(error = format!("{err:#}"), "dead-job hook failed");
                }
            }
            Some(_) => {
                tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "job attempt failed")
            }
            None => {}
        }
        Ok(state)
    }
}

/// Renews the lease every third of its length; cancels the job when it is lost, and
/// also when renewals keep failing (the database is out of reach) so long that the
/// next try could end after the lease does: the job stops itself while it still holds
/// the lease rather than run on unfenced.
///
/// The lease is counted from when each renewal was *sent* (the database's `now()` is
/// no earlier), so the local deadline is never later than the recorded one. A failed
/// renewal is retried sooner than the regular period, and each try is bounded by
/// `attempt_timeout`, so the job is cancelled with at least that much lease left.
async fn renew_lease(queue: Queue, lease: Lease, cancel: CancellationToken) {
    let every = lease.length / 3;
    let attempt_timeout = every / 2;
    let retry_after = every / 4;
    // The claim was sent a moment before this task started; the margin covers it.
    let mut deadline = Instant::now() + lease.length;
    let mut next = Instant::now() + every;
    loop {
        tokio::time::sleep_until(next.into()).await;
        let sent = Instant::now();
        // A renewal that hangs (a database gone silent) counts as failed.
        let renewed = match tokio::time::timeout(attempt_timeout, queue.renew(&lease)).await {
            Ok(result) => result.map_err(|err| err.to_string()),
            Err(_) => Err("no answer in time".to_string()),
        };
        match renewed {
            Ok(Renewal::Renewed) => {
                deadline = sent + lease.length;
                next = sent + every;
            }
            // The job is publishing: its transaction holds the row (and extended the
            // lease in it), so nobody can take the job until it commits. Not a
            // failure; look again soon.
            Ok(Renewal::Held { left }) => {
                deadline = deadline.max(sent + left);
                next = Instant::now() + retry_after;
            }
            Ok(Renewal::Lost) => {
                tracing::warn!(
                    job.id = lease.job_id,
                    "lease lost: another worker may run this job; stopping it"
                );
                cancel.cancel();
                return;
            }
            Err(err) => {
                tracing::warn!(job.id = lease.job_id, error = %err, "cannot renew lease");
                next = Instant::now() + retry_after;
                // The next try could fail as late as `next + attempt_timeout`; stop
                // now, with lease to spare, rather than find out after it ran out.
                if next + attempt_timeout + retry_after >= deadline {
                    tracing::warn!(
                        job.id = lease.job_id,
                        "lease about to run out without a renewal; stopping the job"
                    );
                    cancel.cancel();
                    return;
                }
            }
        }
    }
}

/// Forwards NOTIFYs on the job channel to `wake`; reconnects when the database drops.
async fn listen(pool: sqlx::PgPool, wake: Arc<Notify>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::debug!(error = %err, "job listener cannot connect; polling meanwhile");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(err) = listener.listen(NOTIFY_CHANNEL).await {
            tracing::debug!(error = %err, "job listener cannot LISTEN; polling meanwhile");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => wake.notify_one(),
                // The connection dropped; wake once in case something was missed.
                Ok(None) => wake.notify_one(),
                Err(err) => {
                    tracing::debug!(error = %err, "job listener lost its connection");
                    break;
                }
            }
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "worker".into())
}
