//! The search threads: a fixed set of threads that compute searches in arrival order.
//!
//! A search is CPU work of under a millisecond. Run on tokio's blocking pool behind a
//! semaphore, every search paid two thread hand-overs (the permit to the waiting task,
//! the task to a blocking thread); here a thread that finishes a search takes the next
//! waiting one from the queue at once, and keeps its scratch memory (see
//! `word_scorer`) from one search to the next. (With the scratch change, 16-client
//! throughput went from about 2,500 to about 4,000 searches a second: BENCHMARKS.md.) A search whose requester has gone away
//! before its turn (the client disconnected, or its time limit passed) is skipped.
//!
//! The queue is bounded (`search.max_queued_searches`): when it is full a search is
//! refused at once ([`PoolError::Full`], a 503 for the client) rather than queued behind
//! more work than it could wait for. A search given a deadline is abandoned by its
//! requester when the deadline passes ([`PoolError::TimedOut`]), skipped if it had not
//! started, and stopped by the collector if it had (see `execute::Bounds`).

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// Threads computing searches; dropping the last handle lets them finish the queue and
/// exit.
#[derive(Clone)]
pub struct SearchPool {
    queue: Sender<Job>,
}

/// Why a search gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("the search threads are not running")]
    Stopped,
    #[error("the search failed unexpectedly (it panicked)")]
    Panicked,
    #[error("{0} searches are already waiting for a search thread")]
    Full(usize),
    #[error("the search's deadline passed before it finished")]
    TimedOut,
}

impl SearchPool {
    /// Starts `threads` search threads (0 means one per CPU) fed by a queue of at most
    /// `queue_capacity` waiting searches.
    pub fn start(threads: usize, queue_capacity: usize) -> std::io::Result<SearchPool> {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(2, |cpus| cpus.get()),
            n => n,
        };
        let (queue, jobs) = crossbeam_channel::bounded::<Job>(queue_capacity.max(1));
        for i in 0..threads {
            let jobs: Receiver<Job> = jobs.clone();
            std::thread::Builder::new()
                .name(format!("search-{i}"))
                .spawn(move || {
                    for job in jobs {
                        job();
                    }
                })?;
        }
        Ok(SearchPool { queue })
    }

    /// Runs `work` on a search thread once those queued before it have started.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        self.run_until(None, work).await
    }

    /// As [`SearchPool::run`], but gives up at `deadline`: the caller gets
    /// [`PoolError::TimedOut`] then, not a late answer, and a search that has not
    /// started by then never starts.
    pub async fn run_until<T: Send + 'static>(
        &self,
        deadline: Option<Instant>,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move || {
            if answer.is_closed() || deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return;
            }
            // A panic stays in this search: the thread goes on with the next one, and
            // the requester sees the answer sender dropped.
            if let Ok(result) = std::panic::catch_unwind(AssertUnwindSafe(work)) {
                let _ = answer.send(result);
            }
        });
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(PoolError::Full(self.queue.capacity().unwrap_or_default()));
            }
            Err(TrySendError::Disconnected(_)) => return Err(PoolError::Stopped),
        }
        let Some(deadline) = deadline else {
            return answered.await.map_err(|_| PoolError::Panicked);
        };
        match tokio::time::timeout_at(deadline.into(), answered).await {
            Ok(Ok(answer)) => Ok(answer),
            // The job saw the deadline pass before this timer did, and skipped.
            Ok(Err(_)) if Instant::now() >= deadline => Err(PoolError::TimedOut),
            Ok(Err(_)) => Err(PoolError::Panicked),
            // Dropping the receiver tells the job, if it has not started, to skip.
            Err(_) => Err(PoolError::TimedOut),
        }
    }

    /// Searches waiting for a thread.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn searches_run_in_arrival_order_on_the_pool_threads() {
        let pool = SearchPool::start(1, 16).unwrap();
        let ran = Arc::new(Mutex::new(Vec::new()));
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        // Occupy the only thread until released.
        let blocker = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(move || blocked.recv().unwrap()).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut tasks = Vec::new();
        for name in ["first", "second", "third"] {
            let (pool, ran) = (pool.clone(), ran.clone());
            tasks.push(tokio::spawn(async move {
                pool.run(move || {
                    let thread = std::thread::current().name().unwrap_or("").to_owned();
                    ran.lock().unwrap().push((name, thread));
                })
                .await
                .unwrap()
            }));
            // Let this one queue before the next arrives.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(pool.queued(), 3, "all three wait behind the busy thread");
        assert!(ran.lock().unwrap().is_empty());
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        for task in tasks {
            task.await.unwrap();
        }
        let ran = ran.lock().unwrap();
        let order: Vec<&str> = ran.iter().map(|(name, _)| *name).collect();
        assert_eq!(order, ["first", "second", "third"]);
        assert!(ran.iter().all(|(_, thread)| thread == "search-0"));
    }

    #[tokio::test]
    async fn a_panicking_search_is_an_error_and_the_thread_carries_on() {
        let pool = SearchPool::start(1, 16).unwrap();
        let failed = pool.run(|| -> u32 { panic!("a bug in one search") }).await;
        assert!(matches!(failed, Err(PoolError::Panicked)), "{failed:?}");
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_search_whose_requester_left_is_skipped() {
        let pool = SearchPool::start(1, 16).unwrap();
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let blocker = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(move || blocked.recv().unwrap()).await })
        };
        let ran = Arc::new(Mutex::new(false));
        let abandoned = {
            let (pool, ran) = (pool.clone(), ran.clone());
            tokio::spawn(async move { pool.run(move || *ran.lock().unwrap() = true).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        abandoned.abort();
        let _ = abandoned.await;
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        // The queue is FIFO: once this one ran, the abandoned one was taken and skipped.
        pool.run(|| ()).await.unwrap();
        assert!(!*ran.lock().unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_at_once() {
        let pool = SearchPool::start(1, 2).unwrap();
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let blocker = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(move || blocked.recv().unwrap()).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let waiting: Vec<_> = (0..2)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.run(move || i).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(pool.queued(), 2);
        let refused = pool.run(|| 9).await;
        assert!(matches!(refused, Err(PoolError::Full(2))), "{refused:?}");
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        for (i, task) in waiting.into_iter().enumerate() {
            assert_eq!(task.await.unwrap().unwrap(), i, "the queued ones still run");
        }
        assert_eq!(pool.run(|| 9).await.unwrap(), 9, "room again");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deadline_answers_in_time_and_the_late_search_never_runs() {
        let pool = SearchPool::start(1, 16).unwrap();
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let blocker = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(move || blocked.recv().unwrap()).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let ran = Arc::new(Mutex::new(false));
        let started = Instant::now();
        let late = {
            let ran = ran.clone();
            pool.run_until(
                Some(Instant::now() + Duration::from_millis(100)),
                move || *ran.lock().unwrap() = true,
            )
            .await
        };
        let waited = started.elapsed();
        assert!(matches!(late, Err(PoolError::TimedOut)), "{late:?}");
        assert!(
            waited >= Duration::from_millis(100) && waited < Duration::from_secs(2),
            "answered at the deadline, not when the thread came free: {waited:?}"
        );
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        pool.run(|| ()).await.unwrap();
        assert!(
            !*ran.lock().unwrap(),
            "a search past its deadline is skipped"
        );
    }
}
