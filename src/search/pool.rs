//! The search threads: a fixed set of threads that compute searches in arrival order.
//!
//! A search is CPU work of under a millisecond. Run on tokio's blocking pool behind a
//! semaphore, every search paid two thread hand-overs (the permit to the waiting task,
//! the task to a blocking thread); here a thread that finishes a search takes the next
//! waiting one from the queue at once, and keeps its scratch memory (see
//! `word_scorer`) from one search to the next. (With the scratch change, 16-client
//! throughput went from about 2,500 to about 4,000 searches a second: BENCHMARKS.md.) A search whose requester has gone away
//! before its turn (the client disconnected, so its request was dropped) is skipped.

use std::panic::AssertUnwindSafe;

use crossbeam_channel::{Receiver, Sender};
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
}

impl SearchPool {
    /// Starts `threads` search threads; 0 means one per CPU.
    pub fn start(threads: usize) -> std::io::Result<SearchPool> {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(2, |cpus| cpus.get()),
            n => n,
        };
        let (queue, jobs) = crossbeam_channel::unbounded::<Job>();
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
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move || {
            if answer.is_closed() {
                return;
            }
            // A panic stays in this search: the thread goes on with the next one, and
            // the requester sees the answer sender dropped.
            if let Ok(result) = std::panic::catch_unwind(AssertUnwindSafe(work)) {
                let _ = answer.send(result);
            }
        });
        self.queue.send(job).map_err(|_| PoolError::Stopped)?;
        answered.await.map_err(|_| PoolError::Panicked)
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
        let pool = SearchPool::start(1).unwrap();
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
        let pool = SearchPool::start(1).unwrap();
        let failed = pool.run(|| -> u32 { panic!("a bug in one search") }).await;
        assert!(matches!(failed, Err(PoolError::Panicked)), "{failed:?}");
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_search_whose_requester_left_is_skipped() {
        let pool = SearchPool::start(1).unwrap();
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
}
