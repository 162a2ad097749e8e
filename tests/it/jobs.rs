//! The Postgres job queue and worker pool, against a real database.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use catalog_mirror::config::JobSettings;
use catalog_mirror::jobs::{
    Backoff, Job, JobFuture, JobRunner, JobState, Lease, NewJob, OnConflict, Queue, Renewal,
    WorkerPool,
};
use catalog_mirror::lifecycle::SyncKind;
use catalog_mirror::work::{JobKind, RefreshMode};
use common::{TestDb, eventually};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

type Behaviour = dyn Fn(Job, CancellationToken) -> JobFuture + Send + Sync;

/// A runner whose behaviour each test chooses; counts dead-job notifications.
struct TestRunner {
    behaviour: Box<Behaviour>,
    dead: AtomicUsize,
}

impl TestRunner {
    fn new(
        behaviour: impl Fn(Job, CancellationToken) -> JobFuture + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            behaviour: Box::new(behaviour),
            dead: AtomicUsize::new(0),
        })
    }
}

impl JobRunner for TestRunner {
    fn run(&self, job: Job, _lease: Lease, cancel: CancellationToken) -> JobFuture {
        (self.behaviour)(job, cancel)
    }
    fn backoff(&self, _job: &Job) -> Backoff {
        Backoff {
            base: Duration::from_millis(10),
            factor: 2.0,
            cap: Duration::from_millis(40),
            jitter: 0.0,
        }
    }
    fn on_dead(&self, _job: Job, _error: String) -> JobFuture {
        self.dead.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
}

fn job_settings() -> JobSettings {
    JobSettings {
        workers: 4,
        debounce_ms: 200,
        lease_secs: 1,
        max_attempts: 3,
        retry_base_ms: 10,
        retry_max_ms: 40,
        poll_interval_ms: 50,
        drain_secs: 1,
    }
}

/// A worker pool running in the background until [`Running::stop`].
struct Running {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(pool: &PgPool, runner: Arc<TestRunner>, settings: JobSettings) -> Running {
        let workers = Arc::new(WorkerPool::new(Queue::new(pool.clone()), runner, settings));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(workers.run(shutdown.clone()));
        Running { shutdown, task }
    }

    /// Cancels and waits for the drain to finish.
    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
    }
}

fn incremental(merchant_id: i64) -> JobKind {
    JobKind::Incremental { merchant_id }
}

/// A job due now, debounced, with three attempts: what most tests need.
async fn enqueue_due(pool: &PgPool, kind: JobKind) -> i64 {
    enqueue(pool, kind, Duration::ZERO, OnConflict::Debounce, 3).await
}

async fn enqueue(
    pool: &PgPool,
    kind: JobKind,
    delay: Duration,
    on_conflict: OnConflict,
    max_attempts: i32,
) -> i64 {
    let mut conn = pool.acquire().await.unwrap();
    Queue::enqueue(
        &mut conn,
        &NewJob {
            kind,
            delay,
            max_attempts,
            on_conflict,
        },
    )
    .await
    .unwrap()
}

async fn job(pool: &PgPool, id: i64) -> Job {
    Queue::new(pool.clone())
        .get(id)
        .await
        .unwrap()
        .expect("job exists")
}

#[tokio::test]
async fn enqueueing_again_debounces_into_one_pending_job() {
    let (_db, pool) = TestDb::migrated().await;
    let first = enqueue(
        &pool,
        incremental(1),
        Duration::from_millis(200),
        OnConflict::Debounce,
        3,
    )
    .await;
    let before = job(&pool, first).await.run_at;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = enqueue(
        &pool,
        incremental(1),
        Duration::from_millis(200),
        OnConflict::Debounce,
        3,
    )
    .await;
    assert_eq!(first, second, "same merchant and kind: one pending job");
    assert!(
        job(&pool, first).await.run_at > before,
        "run_at moved later"
    );
    let other = enqueue_due(&pool, incremental(2)).await;
    assert_ne!(first, other, "another merchant gets its own job");
}

#[tokio::test]
async fn a_full_refresh_absorbs_a_pending_safe_one() {
    use catalog_mirror::work::RefreshMode;
    let (_db, pool) = TestDb::migrated().await;
    let kind = |mode| JobKind::RefreshProducts {
        merchant_id: 5,
        mode,
    };
    let id = enqueue(
        &pool,
        kind(RefreshMode::Safe),
        Duration::ZERO,
        OnConflict::KeepEarlier,
        3,
    )
    .await;
    enqueue(
        &pool,
        kind(RefreshMode::Full),
        Duration::ZERO,
        OnConflict::KeepEarlier,
        3,
    )
    .await;
    enqueue(
        &pool,
        kind(RefreshMode::Safe),
        Duration::ZERO,
        OnConflict::KeepEarlier,
        3,
    )
    .await;
    assert_eq!(
        job(&pool, id).await.kind::<JobKind>().unwrap(),
        kind(RefreshMode::Full)
    );
}

#[tokio::test]
async fn concurrent_claims_never_share_a_job_and_one_key_runs_once_at_a_time() {
    let (_db, pool) = TestDb::migrated().await;
    for merchant in 0..20 {
        enqueue(
            &pool,
            incremental(merchant),
            Duration::ZERO,
            OnConflict::Debounce,
            3,
        )
        .await;
    }
    let queue = Queue::new(pool.clone());
    let claims = futures::future::join_all((0..30).map(|i| {
        let queue = queue.clone();
        async move {
            queue
                .claim(&format!("w{i}"), Duration::from_secs(30))
                .await
                .unwrap()
        }
    }))
    .await;
    let mut ids: Vec<i64> = claims.iter().flatten().map(|job| job.id).collect();
    assert_eq!(ids.len(), 20, "every job claimed once");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20, "no job claimed twice");

    // A new pending job for merchant 0 waits while merchant 0's job is running.
    enqueue_due(&pool, incremental(0)).await;
    assert!(
        queue
            .claim("w", Duration::from_secs(30))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn jobs_writing_one_merchants_offers_never_run_at_once() {
    let (_db, pool) = TestDb::migrated().await;
    let same_lane = [
        JobKind::RefreshProducts {
            merchant_id: 1,
            mode: RefreshMode::Full,
        },
        JobKind::SyncRetry {
            merchant_id: 1,
            sync: SyncKind::Products,
        },
        incremental(1),
    ];
    for kind in same_lane.iter().cloned() {
        enqueue(&pool, kind, Duration::ZERO, OnConflict::KeepEarlier, 3).await;
    }
    // Collections of the same merchant are another lane.
    let collections = JobKind::RefreshCollections {
        merchant_id: 1,
        mode: RefreshMode::Full,
    };
    enqueue(
        &pool,
        collections,
        Duration::ZERO,
        OnConflict::KeepEarlier,
        3,
    )
    .await;

    let queue = Queue::new(pool.clone());
    for round in 0..3 {
        let claims = futures::future::join_all((0..12).map(|i| {
            let queue = queue.clone();
            async move {
                queue
                    .claim(&format!("w{i}"), Duration::from_secs(30))
                    .await
                    .expect("a lost race claims nothing, it is no error")
            }
        }))
        .await;
        let claimed: Vec<Job> = claims.into_iter().flatten().collect();
        let offers: Vec<&Job> = claimed
            .iter()
            .filter(|job| job.lane.as_deref() == Some("offers:1"))
            .collect();
        assert_eq!(
            offers.len(),
            1,
            "round {round}: one offers job runs: {claimed:?}"
        );
        if round == 0 {
            assert_eq!(claimed.len(), 2, "the collections lane runs beside it");
        }
        // It finishes; the next job of the lane may run.
        assert!(
            queue
                .complete(&offers[0].lease(Duration::from_secs(30)))
                .await
                .unwrap()
        );
    }
    assert!(
        queue
            .claim("w", Duration::from_secs(30))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_claim_whose_lease_was_taken_over_can_neither_finish_nor_publish() {
    let (_db, pool) = TestDb::migrated().await;
    let id = enqueue_due(&pool, incremental(1)).await;
    let queue = Queue::new(pool.clone());
    // The same worker id both times: fencing must not rely on who claimed.
    let first = queue
        .claim("worker", Duration::from_millis(300))
        .await
        .unwrap()
        .unwrap();
    let stale = first.lease(Duration::from_millis(300));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(queue.reap_expired().await.unwrap(), 1);
    let second = queue
        .claim("worker", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.id, id);
    assert_ne!(second.claims, first.claims, "each claim has its own token");
    let current = second.lease(Duration::from_secs(30));

    assert_eq!(
        queue.renew(&stale).await.unwrap(),
        Renewal::Lost,
        "stale renew"
    );
    let mut tx = pool.begin().await.unwrap();
    let refused = stale.hold(&mut tx).await.unwrap_err();
    assert!(refused.to_string().contains("no longer held"), "{refused}");
    drop(tx);
    assert!(!queue.complete(&stale).await.unwrap(), "stale complete");
    assert_eq!(
        queue.fail(&stale, "late", Duration::ZERO).await.unwrap(),
        None,
        "stale fail"
    );
    queue.release(&stale).await.unwrap();
    assert_eq!(
        job(&pool, id).await.state,
        JobState::Running,
        "still the new claim's"
    );

    let mut tx = pool.begin().await.unwrap();
    current
        .hold(&mut tx)
        .await
        .expect("the current claim holds the job");
    tx.commit().await.unwrap();
    assert_eq!(queue.renew(&current).await.unwrap(), Renewal::Renewed);
    assert!(queue.complete(&current).await.unwrap());
    assert_eq!(job(&pool, id).await.state, JobState::Done);
}

#[tokio::test]
async fn a_job_that_cannot_renew_its_lease_stops_before_the_lease_ends() {
    let (db, pool) = TestDb::migrated().await;
    let proxy = common::proxy::Proxy::start("127.0.0.1:5432").await;
    let proxied = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_millis(300))
        .connect(&db.url.replace("127.0.0.1:5432", &proxy.addr().to_string()))
        .await
        .unwrap();
    let id = enqueue_due(&pool, incremental(1)).await;
    let started = Arc::new(std::sync::Mutex::new(None));
    let stopped = Arc::new(std::sync::Mutex::new(None));
    let (started_at, stopped_at) = (started.clone(), stopped.clone());
    // A job that runs until it is told to stop.
    let runner = TestRunner::new(move |_, cancel| {
        *started_at.lock().unwrap() = Some(std::time::Instant::now());
        let stopped_at = stopped_at.clone();
        Box::pin(async move {
            cancel.cancelled().await;
            *stopped_at.lock().unwrap() = Some(chrono::Utc::now());
            anyhow::bail!("stopped")
        })
    });
    let mut settings = job_settings();
    settings.lease_secs = 3;
    let running = Running::start(&proxied, runner, settings);
    assert!(
        eventually(Duration::from_secs(5), || async {
            started.lock().unwrap().is_some()
        })
        .await
    );
    // The database goes out of reach: renewals fail.
    proxy.cut();
    let stopped_in_time = eventually(Duration::from_secs(5), || async {
        stopped.lock().unwrap().is_some()
    })
    .await;
    assert!(stopped_in_time, "the job was told to stop");
    // Read past the cut proxy: the lease the job last renewed, still recorded.
    let stopped_at = stopped.lock().unwrap().unwrap();
    let lease_ends = job(&pool, id).await.locked_until.expect("still leased");
    assert!(
        stopped_at < lease_ends,
        "stopped at {stopped_at}, before its lease ended at {lease_ends}"
    );
    proxy.restore();
    running.stop().await;
    // Nobody else ran it meanwhile; it runs again once the lease is reaped.
    assert_ne!(job(&pool, id).await.state, JobState::Done);
}

#[tokio::test]
async fn a_lost_worker_loses_its_lease_and_another_worker_completes_the_job() {
    let (_db, pool) = TestDb::migrated().await;
    let id = enqueue_due(&pool, incremental(1)).await;
    // A worker claims the job with a 1 s lease, then disappears without renewing it.
    let queue = Queue::new(pool.clone());
    let claimed = queue
        .claim("lost-worker", Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, id);

    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    let runner = TestRunner::new(move |_, _| {
        counter.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    });
    let running = Running::start(&pool, runner, job_settings());
    let done = eventually(Duration::from_secs(10), || async {
        job(&pool, id).await.state == JobState::Done
    })
    .await;
    running.stop().await;
    assert!(done, "the job was completed by the second worker");
    let finished = job(&pool, id).await;
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert_eq!(finished.attempts, 2, "the lost attempt counts");
    assert_eq!(
        finished.last_error.as_deref(),
        Some("lease expired: the worker stopped renewing it")
    );
}

#[tokio::test]
async fn a_job_that_always_fails_ends_dead_with_its_last_error() {
    let (_db, pool) = TestDb::migrated().await;
    let id = enqueue_due(&pool, incremental(1)).await;
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let runner = TestRunner::new(move |_, _| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move { anyhow::bail!("upstream refused (attempt {n})") })
    });
    let running = Running::start(&pool, runner.clone(), job_settings());
    let dead = eventually(Duration::from_secs(10), || async {
        job(&pool, id).await.state == JobState::Dead
    })
    .await;
    running.stop().await;
    assert!(dead);
    let dead_job = job(&pool, id).await;
    assert_eq!(dead_job.attempts, 3);
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "no attempt beyond the maximum"
    );
    assert_eq!(
        dead_job.last_error.as_deref(),
        Some("upstream refused (attempt 3)")
    );
    assert_eq!(
        runner.dead.load(Ordering::SeqCst),
        1,
        "the dead-job hook ran once"
    );

    // An operator retry gives it fresh attempts.
    assert!(Queue::new(pool.clone()).retry_dead(id).await.unwrap());
    let retried = job(&pool, id).await;
    assert_eq!((retried.state, retried.attempts), (JobState::Pending, 0));
}

#[tokio::test]
async fn a_panicking_job_is_a_failed_attempt_not_a_dead_worker() {
    let (_db, pool) = TestDb::migrated().await;
    let id = enqueue(
        &pool,
        incremental(1),
        Duration::ZERO,
        OnConflict::Debounce,
        1,
    )
    .await;
    let runner = TestRunner::new(|_, _| Box::pin(async { panic!("boom") }));
    let workers = Arc::new(WorkerPool::new(
        Queue::new(pool.clone()),
        runner,
        job_settings(),
    ));
    assert_eq!(workers.run_until_empty().await.unwrap(), 1);
    let dead = job(&pool, id).await;
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(dead.last_error.as_deref(), Some("job panicked: boom"));
}

#[tokio::test]
async fn concurrency_is_bounded_by_the_worker_count() {
    let (_db, pool) = TestDb::migrated().await;
    for merchant in 0..12 {
        enqueue(
            &pool,
            incremental(merchant),
            Duration::ZERO,
            OnConflict::Debounce,
            3,
        )
        .await;
    }
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (in_flight.clone(), peak.clone());
    let runner = TestRunner::new(move |_, _| {
        let (r, p) = (r.clone(), p.clone());
        Box::pin(async move {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            r.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        })
    });
    let settings = JobSettings {
        workers: 3,
        ..job_settings()
    };
    let running = Running::start(&pool, runner, settings);
    let all_done = eventually(Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM jobs WHERE state = 'done'")
            .fetch_one(&pool)
            .await
            .unwrap()
            == 12
    })
    .await;
    running.stop().await;
    assert!(all_done);
    assert_eq!(
        peak.load(Ordering::SeqCst),
        3,
        "never more than 3 at once, and 3 were used"
    );
}

#[tokio::test]
async fn shutdown_releases_a_job_that_outlives_the_drain() {
    let (_db, pool) = TestDb::migrated().await;
    let id = enqueue_due(&pool, incremental(1)).await;
    let runner = TestRunner::new(|_, _| {
        Box::pin(async { std::future::pending::<anyhow::Result<()>>().await })
    });
    let running = Running::start(&pool, runner, job_settings());
    assert!(
        eventually(Duration::from_secs(5), || async {
            job(&pool, id).await.state == JobState::Running
        })
        .await
    );
    let started = std::time::Instant::now();
    running.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "drain is bounded"
    );
    let released = job(&pool, id).await;
    assert_eq!(released.state, JobState::Pending, "back in the queue");
    assert_eq!(released.attempts, 0, "a release does not use up an attempt");
}

#[tokio::test]
async fn a_running_job_finishes_within_the_drain() {
    let (_db, pool) = TestDb::migrated().await;
    let id = enqueue_due(&pool, incremental(1)).await;
    let runner = TestRunner::new(|_, _| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(())
        })
    });
    let running = Running::start(&pool, runner, job_settings());
    assert!(
        eventually(Duration::from_secs(5), || async {
            job(&pool, id).await.state == JobState::Running
        })
        .await
    );
    running.stop().await;
    assert_eq!(job(&pool, id).await.state, JobState::Done);
}

#[tokio::test]
async fn notify_wakes_an_idle_worker_long_before_the_poll_interval() {
    let (_db, pool) = TestDb::migrated().await;
    let runner = TestRunner::new(|_, _| Box::pin(async { Ok(()) }));
    let settings = JobSettings {
        poll_interval_ms: 60_000,
        ..job_settings()
    };
    let running = Running::start(&pool, runner, settings);
    // Let the worker find the queue empty and start waiting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let id = enqueue_due(&pool, incremental(1)).await;
    let done = eventually(Duration::from_secs(5), || async {
        job(&pool, id).await.state == JobState::Done
    })
    .await;
    running.stop().await;
    assert!(done, "woken by NOTIFY, not by the 60 s poll");
}

#[tokio::test]
async fn a_job_publishing_longer_than_a_renewal_timeout_keeps_its_lease() {
    let (_db, pool) = TestDb::migrated().await;
    let id = enqueue_due(&pool, incremental(1)).await;
    let publishing = pool.clone();
    // A job whose publishing transaction holds its row for 2.6 s: renewals in the
    // meantime find the row locked. Counted as failures, they would cancel the job
    // after about 2.3 s (a 3 s lease renews every second and gives up with time to
    // spare); the job watches for that.
    let runner = TestRunner::new(move |job, cancel| {
        let pool = publishing.clone();
        Box::pin(async move {
            let lease = job.lease(Duration::from_secs(3));
            let mut tx = pool.begin().await?;
            lease.hold(&mut tx).await?;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(2_600)) => {}
                _ = cancel.cancelled() => anyhow::bail!("cancelled while publishing"),
            }
            tx.commit().await?;
            Ok(())
        })
    });
    let mut settings = job_settings();
    settings.lease_secs = 3;
    let running = Running::start(&pool, runner, settings);
    assert!(
        eventually(Duration::from_secs(10), || async {
            job(&pool, id).await.state != JobState::Pending
                && job(&pool, id).await.state != JobState::Running
        })
        .await
    );
    running.stop().await;
    let done = job(&pool, id).await;
    assert_eq!(
        (done.state, done.attempts, done.last_error),
        (JobState::Done, 1, None)
    );
}
