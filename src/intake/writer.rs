//! The writers: group commit for intake.
//!
//! Each delivery is queued ([`IntakeQueue::store`]) and waits for its answer. A writer
//! takes the first queued delivery, then whatever else arrives within
//! `webhooks.batch_window_ms` of it, up to `webhooks.batch_max_events`, stores them in
//! one transaction ([`super::batch`]), commits once, and only then answers each one: a
//! 2xx still means committed, while one commit (one WAL flush) serves many deliveries.
//! `webhooks.writers` writers store batches at once; one gathers at a time, so under
//! load batches fill up instead of splitting the queue between them. A batch of one
//! event is stored exactly as before batching.
//!
//! Bounded: the queue holds at most `webhooks.queue_capacity` deliveries; beyond that a
//! delivery is refused at once as [`Refused::Busy`]. On shutdown the writers close the
//! queue (later deliveries are refused), store and answer what it holds, then stop.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{IntakeGate, IntakeOutcome, batch};
use crate::config::WebhookSettings;
use crate::lifecycle::{IncomingEvent, Planner};

/// How deliveries are gathered into batches.
#[derive(Debug, Clone)]
pub struct BatchSettings {
    pub max_events: usize,
    /// Zero: a batch is what is queued already, with no waiting for more.
    pub window: Duration,
    pub queue_capacity: usize,
    pub writers: usize,
    /// Longest a batch may take (connection, statements, commit) before its deliveries
    /// get 503.
    pub timeout: Duration,
}

impl BatchSettings {
    pub fn new(webhooks: &WebhookSettings, timeout: Duration) -> Self {
        Self {
            max_events: webhooks.batch_max_events.max(1),
            window: webhooks.batch_window(),
            queue_capacity: webhooks.queue_capacity.max(1),
            writers: webhooks.writers.max(1),
            timeout,
        }
    }
}

/// Why a delivery was not stored; each is a 503, which Violet retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue to the writers is full.
    Busy,
    /// The database was found unreachable moments ago; not tried.
    DatabaseDown,
    /// Its batch failed or took too long, or intake is stopping (the cause is logged
    /// once per batch).
    NotStored,
}

type Answer = Result<IntakeOutcome, Refused>;

struct Submission {
    event: IncomingEvent,
    reply: oneshot::Sender<Answer>,
}

/// The route's side: queues deliveries for the writers. Cheap to clone.
#[derive(Clone)]
pub struct IntakeQueue {
    sender: mpsc::Sender<Submission>,
    gate: Arc<IntakeGate>,
    /// Longest a delivery waits for its answer: a safety net, since every batch is
    /// bounded by its own timeout.
    wait: Duration,
}

impl IntakeQueue {
    /// Stores `event` and returns once the transaction that holds it has committed.
    pub async fn store(&self, event: IncomingEvent) -> Answer {
        if !self.gate.admits() {
            return Err(Refused::DatabaseDown);
        }
        let (reply, answer) = oneshot::channel();
        match self.sender.try_send(Submission { event, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(Refused::Busy),
            Err(TrySendError::Closed(_)) => return Err(Refused::NotStored),
        }
        match tokio::time::timeout(self.wait, answer).await {
            Ok(Ok(answer)) => answer,
            // No answer: not known to be committed.
            Ok(Err(_)) | Err(_) => Err(Refused::NotStored),
        }
    }
}

/// The writers, built by [`Writers::new`] and started by [`Writers::start`].
pub struct Writers {
    writer: Arc<Writer>,
    receiver: Arc<Mutex<mpsc::Receiver<Submission>>>,
    tracker: TaskTracker,
}

impl Writers {
    /// Builds the queue and its writers; nothing is stored until [`Writers::start`].
    pub fn new(
        pool: PgPool,
        planner: Arc<Planner>,
        settings: BatchSettings,
        database_addr: Option<String>,
    ) -> (IntakeQueue, Writers) {
        let (sender, receiver) = mpsc::channel(settings.queue_capacity);
        let gate = Arc::new(IntakeGate::default());
        let queue = IntakeQueue {
            sender,
            gate: gate.clone(),
            wait: settings.timeout * 3 + settings.window,
        };
        let writer = Arc::new(Writer {
            pool,
            planner,
            gate,
            database_addr,
            settings,
        });
        let writers = Writers {
            writer,
            receiver: Arc::new(Mutex::new(receiver)),
            tracker: TaskTracker::new(),
        };
        (queue, writers)
    }

    /// Starts the writers; they stop once `stop` is cancelled and the queue is drained.
    pub fn start(&self, stop: CancellationToken) {
        for _ in 0..self.writer.settings.writers {
            self.tracker
                .spawn(self.writer.clone().run(self.receiver.clone(), stop.clone()));
        }
        self.tracker.close();
    }

    /// Waits until every writer has answered what it held and stopped.
    pub async fn stopped(self) {
        self.tracker.wait().await;
    }
}

struct Writer {
    pool: PgPool,
    planner: Arc<Planner>,
    gate: Arc<IntakeGate>,
    /// `host:port` of the database server, probed to tell "down" from "busy".
    database_addr: Option<String>,
    settings: BatchSettings,
}

impl Writer {
    async fn run(
        self: Arc<Self>,
        queue: Arc<Mutex<mpsc::Receiver<Submission>>>,
        stop: CancellationToken,
    ) {
        loop {
            let batch = {
                let mut queue = queue.lock().await;
                self.gather(&mut queue, &stop).await
            };
            if batch.is_empty() {
                return;
            }
            self.store(batch).await;
        }
    }

    /// The next batch: the first delivery, then what arrives within the window of it, up
    /// to the batch size. Empty once stopped and drained.
    async fn gather(
        &self,
        queue: &mut mpsc::Receiver<Submission>,
        stop: &CancellationToken,
    ) -> Vec<Submission> {
        let Some(first) = next(queue, stop).await else {
            return Vec::new();
        };
        let deadline = Instant::now() + self.settings.window;
        let mut batch = Vec::with_capacity(self.settings.max_events);
        batch.push(first);
        while batch.len() < self.settings.max_events {
            // What is queued already joins without waiting, whatever the window.
            match queue.try_recv() {
                Ok(submission) => {
                    batch.push(submission);
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
            if self.settings.window.is_zero() || stop.is_cancelled() {
                break;
            }
            match tokio::time::timeout_at(deadline, next(queue, stop)).await {
                Ok(Some(submission)) => batch.push(submission),
                Ok(None) | Err(_) => break,
            }
        }
        batch
    }

    /// Stores a batch, then answers each of its deliveries.
    async fn store(&self, batch: Vec<Submission>) {
        metrics::histogram!("catalog_mirror_intake_batch_events").record(batch.len() as f64);
        let events: Vec<&IncomingEvent> = batch.iter().map(|s| &s.event).collect();
        let stored = tokio::time::timeout(
            self.settings.timeout,
            batch::store(&self.pool, &self.planner, &events),
        )
        .await;
        let answers: Vec<Answer> = match stored {
            Ok(Ok(outcomes)) => {
                self.gate.succeeded();
                outcomes
                    .into_iter()
                    .map(|outcome| {
                        outcome.map_err(|err| {
                            tracing::warn!(error = %err, "webhook not stored: database error; asking Violet to retry");
                            Refused::NotStored
                        })
                    })
                    .collect()
            }
            Ok(Err(err)) => {
                if self.database_unreachable(&err).await {
                    self.gate.failed();
                }
                tracing::warn!(error = %err, events = events.len(), "webhook not stored: database error; asking Violet to retry");
                vec![Err(Refused::NotStored); events.len()]
            }
            Err(_) => {
                // Past its time limit the database is down or only slow (a lock held
                // long, a burst): only the former closes the gate, or one slow batch
                // would refuse every delivery for the gate's window.
                let down = self.server_down().await;
                if down {
                    self.gate.failed();
                }
                tracing::warn!(
                    events = events.len(),
                    server_down = down,
                    "webhook not stored: database too slow; asking Violet to retry"
                );
                vec![Err(Refused::NotStored); events.len()]
            }
        };
        drop(events);
        for (submission, answer) in batch.into_iter().zip(answers) {
            // The delivery may have gone (its client hung up): nothing to answer.
            let _ = submission.reply.send(answer);
        }
    }

    /// Whether `err` means the database cannot be reached, as opposed to one statement
    /// failing or the pool being saturated by a burst. A pool timeout alone cannot tell
    /// those apart, so it is settled by trying a TCP connection to the server.
    async fn database_unreachable(&self, err: &sqlx::Error) -> bool {
        match crate::db::Failure::of(err) {
            crate::db::Failure::Unreachable => true,
            crate::db::Failure::PoolTimedOut => self.server_down().await,
            crate::db::Failure::Statement => false,
        }
    }

    /// Whether the database server refuses a TCP connection (or its address is not
    /// known): what settles a pool timeout or a batch past its time limit.
    async fn server_down(&self) -> bool {
        match &self.database_addr {
            Some(addr) => !crate::db::server_answers(addr).await,
            None => true,
        }
    }
}

/// The next queued delivery; once `stop` is cancelled, the queue is closed to new ones
/// and this drains what it holds, then gives `None`.
async fn next(
    queue: &mut mpsc::Receiver<Submission>,
    stop: &CancellationToken,
) -> Option<Submission> {
    if !stop.is_cancelled() {
        tokio::select! {
            biased;
            submission = queue.recv() => return submission,
            _ = stop.cancelled() => {}
        }
    }
    queue.close();
    queue.recv().await
}
