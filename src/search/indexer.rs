//! The indexer: keeps the index equal to the mirror by following the change log.
//!
//! One task per daemon owns the live generation's `IndexWriter`; all tantivy work runs
//! on blocking threads. Each step reads a batch of changes and the documents they name
//! in one snapshot, rewrites the documents that differ from what the index holds and
//! deletes those the mirror no longer shows (`diff`), and commits once, with the last
//! change number in the commit payload, then reloads the reader. A merchant's
//! replacement is therefore never visible half-done, and after a crash the indexer
//! resumes after the payload's change number.
//!
//! At start the index is opened as `CURRENT` names it; when it is missing, unreadable,
//! or of another schema version it is rebuilt into a new generation from the mirror
//! alone while the old one (if readable) keeps serving, then swapped in. `catalog-mirror
//! reindex` builds and publishes a generation the same way; a running daemon notices
//! the new `CURRENT`, adopts it and catches up.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tantivy::IndexWriter;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::SearchIndex;
use super::diff::{self, DocumentCounts, Work};
use super::document::OfferRow;
use super::schema::SCHEMA_VERSION;
use super::source;
use super::store::{self, Found, Generation, Payload};

/// Channel the mirror NOTIFYs when it publishes a change.
pub const NOTIFY_CHANNEL: &str = "catalog_mirror_changes";
/// Changes applied per commit at most.
const BATCH_CHANGES: i64 = 500;
/// Offers per chunk handed to the writer during a rebuild.
const REBUILD_CHUNK: usize = 1000;
/// Offers per chunk compared by a batch (one delete operation each).
const DIFF_CHUNK: usize = 1000;
/// Writer memory: the live writer makes small commits; a rebuild gets more.
const LIVE_HEAP: usize = 64 * 1024 * 1024;
const REBUILD_HEAP: usize = 256 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct IndexerSettings {
    pub index_dir: PathBuf,
    /// Fallback poll when no NOTIFY arrives.
    pub poll_interval: Duration,
}

/// The generation being written and how far it got.
pub struct Live {
    pub generation: Arc<Generation>,
    writer: Arc<Mutex<IndexWriter>>,
    pub change_no: i64,
}

impl Live {
    /// Takes `generation`, committed up to `change_no`, as the one to write (opens its
    /// writer: one at a time per generation).
    pub fn open(generation: Arc<Generation>, change_no: i64) -> anyhow::Result<Live> {
        let writer = generation.writer(1, LIVE_HEAP)?;
        Ok(Live {
            generation,
            writer: Arc::new(Mutex::new(writer)),
            change_no,
        })
    }
}

/// What [`Indexer::open`] found.
pub enum Startup {
    /// Usable as it is, already served.
    Ready(Arc<Generation>, Payload),
    /// Must be rebuilt, for this reason.
    Rebuild(String),
}

/// What one batch did.
#[derive(Debug, Default, Clone)]
pub struct BatchReport {
    /// Changes applied (0: nothing was pending).
    pub changes: usize,
    /// The last change number applied, now in the commit payload.
    pub change_no: i64,
    pub documents: DocumentCounts,
    pub elapsed: Duration,
}

/// What a rebuild did.
#[derive(Debug, Clone)]
pub struct RebuildReport {
    pub generation: String,
    pub documents: u64,
    pub change_no: i64,
    pub elapsed: Duration,
}

pub struct Indexer {
    pool: PgPool,
    settings: IndexerSettings,
    index: Arc<SearchIndex>,
}

impl Indexer {
    pub fn new(pool: PgPool, settings: IndexerSettings, index: Arc<SearchIndex>) -> Indexer {
        Indexer {
            pool,
            settings,
            index,
        }
    }

    /// Opens what is on disk and serves it at once: the index itself when usable, else
    /// the old generation (if readable) while [`Indexer::run`] rebuilds.
    pub async fn open(&self) -> anyhow::Result<Startup> {
        let root = self.settings.index_dir.clone();
        Ok(
            match tokio::task::spawn_blocking(move || store::open_current(&root)).await? {
                Found::Ready(generation, payload) => {
                    tracing::info!(
                        generation = generation.name,
                        change_no = payload.change_no,
                        "index opened"
                    );
                    let generation = Arc::new(generation);
                    self.index.swap(generation.clone());
                    Startup::Ready(generation, payload)
                }
                Found::Rebuild { serving, reason } => {
                    if let Some(serving) = serving {
                        tracing::info!(
                            generation = serving.name,
                            "serving the old index until the rebuild completes"
                        );
                        self.index.swap(Arc::new(serving));
                    }
                    Startup::Rebuild(reason)
                }
            },
        )
    }

    /// Runs until `shutdown`: start from `startup` (from [`Indexer::open`], or opened
    /// here), rebuilding when needed, then apply changes as they come.
    pub async fn run(self, mut startup: Option<Startup>, shutdown: CancellationToken) {
        let wake = Arc::new(Notify::new());
        tokio::spawn(listen(self.pool.clone(), wake.clone(), shutdown.clone()));
        let mut live: Option<Live> = None;
        let mut delay = self.settings.poll_interval;
        while !shutdown.is_cancelled() {
            match self.step(&mut live, &mut startup).await {
                Ok(()) => delay = self.settings.poll_interval,
                Err(err) => {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        retry_in_ms = delay.as_millis() as u64,
                        "indexer step failed"
                    );
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(delay) => {}
            }
        }
        if let Some(live) = live {
            close(live).await;
        }
        tracing::info!("indexer stopped");
    }

    async fn step(
        &self,
        live: &mut Option<Live>,
        startup: &mut Option<Startup>,
    ) -> anyhow::Result<()> {
        let current = match live {
            Some(current) => current,
            None => {
                let opened = match startup.take() {
                    Some(opened) => opened,
                    None => self.open().await?,
                };
                live.insert(self.start(opened).await?)
            }
        };
        let root = self.settings.index_dir.clone();
        let published = tokio::task::spawn_blocking(move || store::current_name(&root)).await?;
        let newer = published
            .as_deref()
            .is_some_and(|name| name > current.generation.name.as_str());
        if newer && let Some(adopted) = self.adopt().await? {
            let old = std::mem::replace(current, adopted);
            close(old).await;
            remove_older(&self.settings.index_dir, &current.generation.name).await;
        }
        while self.apply_batch(current).await?.changes > 0 {}
        Ok(())
    }

    /// Takes the opened index as the live one, or rebuilds and swaps.
    async fn start(&self, opened: Startup) -> anyhow::Result<Live> {
        let live = match opened {
            Startup::Ready(generation, payload) => Live::open(generation, payload.change_no)?,
            Startup::Rebuild(reason) => {
                tracing::warn!(reason, "rebuilding the index from the mirror");
                self.index.set_indexing(true);
                let built = rebuild(&self.pool, &self.settings.index_dir).await;
                self.index.set_indexing(false);
                let (live, report) = built?;
                store::publish(&self.settings.index_dir, &report.generation)?;
                self.index.swap(live.generation.clone());
                tracing::info!(
                    generation = report.generation,
                    documents = report.documents,
                    change_no = report.change_no,
                    elapsed_ms = report.elapsed.as_millis() as u64,
                    "index rebuilt and swapped in"
                );
                live
            }
        };
        remove_older(&self.settings.index_dir, &live.generation.name).await;
        Ok(live)
    }

    /// Opens a generation published by `reindex`; `None` when it is not usable.
    async fn adopt(&self) -> anyhow::Result<Option<Live>> {
        let root = self.settings.index_dir.clone();
        match tokio::task::spawn_blocking(move || store::open_current(&root)).await? {
            Found::Ready(generation, payload) => {
                tracing::info!(
                    generation = generation.name,
                    change_no = payload.change_no,
                    "adopting a rebuilt index"
                );
                let live = Live::open(Arc::new(generation), payload.change_no)?;
                self.index.swap(live.generation.clone());
                Ok(Some(live))
            }
            Found::Rebuild { reason, .. } => {
                tracing::warn!(
                    reason,
                    "the published index is not usable; keeping the current one"
                );
                Ok(None)
            }
        }
    }

    /// Applies the next batch of changes in one commit (see `diff`): the mirror's rows
    /// stream to the writer's thread while it compares, then one commit.
    pub async fn apply_batch(&self, live: &mut Live) -> anyhow::Result<BatchReport> {
        let started = Instant::now();
        let mut tx = source::snapshot(&self.pool).await?;
        let plan = source::pending_changes(&mut tx, live.change_no, BATCH_CHANGES).await?;
        if plan.is_empty() {
            tx.commit().await?;
            return Ok(BatchReport {
                change_no: live.change_no,
                ..BatchReport::default()
            });
        }
        if !plan.merchants.is_empty() {
            source::for_bulk_reads(&mut tx).await?;
        }
        let payload = Payload {
            schema_version: SCHEMA_VERSION,
            change_no: plan.last_change,
        };
        let (sender, receiver) = tokio::sync::mpsc::channel::<Work>(4);
        let writing = {
            let generation = live.generation.clone();
            let writer = live.writer.clone();
            let whole = plan.merchants.clone();
            tokio::task::spawn_blocking(move || {
                let mut writer = writer
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                diff::run(&mut writer, &generation, &whole, receiver)
            })
        };
        let fed = async {
            feed(&mut tx, &plan, &sender).await?;
            tx.commit().await?;
            send(&sender, Work::Commit(payload)).await
        }
        .await;
        drop(sender);
        // The writer's error first: the reading side stops when the writer does.
        let documents = match (writing.await?, fed) {
            (Err(err), _) | (Ok(_), Err(err)) => return Err(err),
            (Ok(Some(documents)), Ok(())) => documents,
            (Ok(None), Ok(())) => anyhow::bail!("the index writer stopped before the commit"),
        };
        live.change_no = plan.last_change;
        self.index.touch();
        let touched: Vec<i64> = plan
            .merchants
            .iter()
            .chain(plan.offers.keys())
            .copied()
            .collect();
        self.index.committed(plan.last_change, touched);
        documents.record();
        metrics::counter!("catalog_mirror_index_commits_total").increment(1);
        metrics::gauge!("catalog_mirror_index_change_no").set(plan.last_change as f64);
        metrics::histogram!("catalog_mirror_index_commit_seconds")
            .record(started.elapsed().as_secs_f64());
        tracing::info!(
            changes = plan.changes,
            change_no = plan.last_change,
            merchants = plan.merchants.len(),
            added = documents.added,
            deleted = documents.deleted,
            unchanged = documents.unchanged,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "index commit"
        );
        Ok(BatchReport {
            changes: plan.changes,
            change_no: plan.last_change,
            documents,
            elapsed: started.elapsed(),
        })
    }
}

/// Reads what `plan` names from the snapshot and hands it to the writer in chunks:
/// each whole merchant's offers in id order, then the listed offers.
async fn feed(
    tx: &mut sqlx::PgConnection,
    plan: &source::Plan,
    sender: &tokio::sync::mpsc::Sender<Work>,
) -> anyhow::Result<()> {
    for &merchant in &plan.merchants {
        send(sender, Work::Merchant(merchant)).await?;
        let mut rows = source::merchant_offers(&mut *tx, merchant);
        let mut chunk = Vec::with_capacity(DIFF_CHUNK);
        while let Some(row) = rows.try_next().await? {
            chunk.push(row);
            if chunk.len() == DIFF_CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(DIFF_CHUNK));
                send(sender, Work::Rows(full)).await?;
            }
        }
        if !chunk.is_empty() {
            send(sender, Work::Rows(chunk)).await?;
        }
    }
    for ids in plan.offer_ids().chunks(DIFF_CHUNK) {
        let rows = source::some_offers(&mut *tx, ids).await?;
        let ids = ids.to_vec();
        send(sender, Work::Listed { ids, rows }).await?;
    }
    Ok(())
}

async fn send(sender: &tokio::sync::mpsc::Sender<Work>, work: Work) -> anyhow::Result<()> {
    sender
        .send(work)
        .await
        .map_err(|_| anyhow::anyhow!("the index writer stopped"))
}

/// Stops a writer and waits for its merges, off the async threads.
async fn close(live: Live) {
    let Live { writer, .. } = live;
    let _ = tokio::task::spawn_blocking(move || {
        if let Ok(writer) = Arc::try_unwrap(writer) {
            let writer = writer
                .into_inner()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Err(err) = writer.wait_merging_threads() {
                tracing::warn!(error = %err, "index writer did not stop cleanly");
            }
        }
    })
    .await;
}

async fn remove_older(root: &Path, keep: &str) {
    let root = root.to_path_buf();
    let keep = keep.to_string();
    let _ =
        tokio::task::spawn_blocking(move || store::remove_other_generations(&root, &keep)).await;
}

/// Builds a new generation from the mirror (not yet published): every indexable offer,
/// read in one snapshot, committed with that snapshot's last change number.
pub async fn rebuild(pool: &PgPool, root: &Path) -> anyhow::Result<(Live, RebuildReport)> {
    let started = Instant::now();
    let dir = root.to_path_buf();
    let generation =
        Arc::new(tokio::task::spawn_blocking(move || store::create_generation(&dir)).await??);
    let writer = Arc::new(Mutex::new(generation.writer(2, REBUILD_HEAP)?));

    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<OfferRow>>(4);
    let consumer = {
        let generation = generation.clone();
        let writer = writer.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
            let writer = writer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let mut documents = 0u64;
            while let Some(chunk) = receiver.blocking_recv() {
                for row in chunk {
                    writer.add_document(row.to_document(&generation.schema))?;
                    documents += 1;
                }
            }
            Ok(documents)
        })
    };

    let mut tx = source::snapshot(pool).await?;
    source::for_bulk_reads(&mut tx).await?;
    let change_no = source::last_change(&mut tx).await?;
    {
        let mut rows = source::all_offers(&mut tx);
        let mut chunk = Vec::with_capacity(REBUILD_CHUNK);
        while let Some(row) = rows.try_next().await? {
            chunk.push(row);
            if chunk.len() == REBUILD_CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(REBUILD_CHUNK));
                if sender.send(full).await.is_err() {
                    break;
                }
            }
        }
        if !chunk.is_empty() {
            let _ = sender.send(chunk).await;
        }
    }
    drop(sender);
    tx.commit().await?;
    let documents = consumer.await??;

    let payload = Payload {
        schema_version: SCHEMA_VERSION,
        change_no,
    };
    {
        let generation = generation.clone();
        let writer = writer.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut writer = writer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            store::commit(&mut writer, payload)?;
            // The indexing threads each wrote a segment: searching one segment instead
            // of several does the per-segment work of a query (term dictionary walks
            // for prefixes and typos, scorer set-up) once.
            // Only an optimisation: a failed merge leaves a correct index of several
            // segments (a background merge may have claimed them first).
            let segments = generation.index.searchable_segment_ids()?;
            if segments.len() > 1
                && let Err(err) = writer.merge(&segments).wait()
            {
                tracing::warn!(error = %err, "cannot merge the rebuilt index into one segment");
            }
            generation.reader.reload()?;
            Ok(())
        })
        .await??;
    }
    metrics::counter!("catalog_mirror_index_rebuilds_total").increment(1);
    let report = RebuildReport {
        generation: generation.name.clone(),
        documents,
        change_no,
        elapsed: started.elapsed(),
    };
    Ok((
        Live {
            generation,
            writer,
            change_no,
        },
        report,
    ))
}

/// `catalog-mirror reindex`: rebuilds from the mirror and publishes the new generation.
/// A running daemon adopts it on its next step; older generations are removed by it
/// (or by the next start), never while they may be in use.
pub async fn reindex(pool: &PgPool, root: &Path) -> anyhow::Result<RebuildReport> {
    let (live, report) = rebuild(pool, root).await?;
    close(live).await;
    store::publish(root, &report.generation)?;
    Ok(report)
}

/// Forwards NOTIFYs on [`NOTIFY_CHANNEL`] to `wake`; reconnects when the database drops.
async fn listen(pool: PgPool, wake: Arc<Notify>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::debug!(error = %err, "index listener cannot connect; polling meanwhile");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(err) = listener.listen(NOTIFY_CHANNEL).await {
            tracing::debug!(error = %err, "index listener cannot LISTEN; polling meanwhile");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                received = listener.try_recv() => match received {
                    Ok(_) => wake.notify_one(),
                    Err(err) => {
                        tracing::debug!(error = %err, "index listener lost its connection");
                        break;
                    }
                }
            }
        }
    }
}
