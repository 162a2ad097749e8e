//! What the admin side needs from the search index: its watermark (for index lag) and a
//! rebuild trigger (for `reindex`), as a trait the daemon's wiring plugs in with
//! [`super::AdminState::with_index`]. Without it, merchants show an unknown lag
//! (`applied_change_no`/`pending_changes` are `null`) and `reindex` answers 503.
//!
//! [`IndexDir`] implements it over the search side's public API: the watermark is the
//! served index's (the change number of the generation searches read, the same fact
//! `/readyz` judges lag by), and a rebuild is
//! [`crate::search::reindex`] (built aside, published; the running indexer adopts it and
//! catches up), one at a time, in the background.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::search::SearchIndex;

/// The index as the admin API sees it.
pub trait IndexControl: Send + Sync + 'static {
    /// The last change-log number the served index has applied (its commit payload),
    /// or `None` while that is not known (no index yet). Read from memory: cheap.
    fn applied_change_no(&self) -> Option<i64>;

    /// Starts a rebuild of the whole index from PostgreSQL and returns at once with a
    /// line for the operator, or why it cannot start now (one is already running).
    fn request_rebuild(&self) -> Result<String, String>;
}

/// The index directory of this daemon (`search.index_dir`).
pub struct IndexDir {
    pool: PgPool,
    root: PathBuf,
    served: Arc<SearchIndex>,
    rebuilding: Arc<AtomicBool>,
    shutdown: CancellationToken,
}

impl IndexDir {
    /// A rebuild in progress is abandoned when `shutdown` is cancelled (its half-built
    /// generation is never published and is removed by the indexer later).
    pub fn new(
        pool: PgPool,
        root: PathBuf,
        served: Arc<SearchIndex>,
        shutdown: CancellationToken,
    ) -> IndexDir {
        IndexDir {
            pool,
            root,
            served,
            rebuilding: Arc::new(AtomicBool::new(false)),
            shutdown,
        }
    }
}

impl IndexControl for IndexDir {
    fn applied_change_no(&self) -> Option<i64> {
        self.served.change_no()
    }

    fn request_rebuild(&self) -> Result<String, String> {
        if self.rebuilding.swap(true, Ordering::SeqCst) {
            return Err("a rebuild requested from the admin API is already running".into());
        }
        let (pool, root, flag, shutdown) = (
            self.pool.clone(),
            self.root.clone(),
            self.rebuilding.clone(),
            self.shutdown.clone(),
        );
        tokio::spawn(async move {
            tokio::select! {
                built = crate::search::reindex(&pool, &root) => match built {
                    Ok(report) => tracing::info!(
                        generation = report.generation,
                        documents = report.documents,
                        change_no = report.change_no,
                        elapsed_ms = report.elapsed.as_millis() as u64,
                        "index rebuilt on an operator's request; the indexer adopts it next"
                    ),
                    Err(err) => tracing::error!(error = format!("{err:#}"), "index rebuild requested by an operator failed"),
                },
                _ = shutdown.cancelled() => tracing::info!("index rebuild abandoned at shutdown"),
            }
            flag.store(false, Ordering::SeqCst);
        });
        Ok("rebuilding the index from PostgreSQL in the background; it is swapped in when complete".into())
    }
}
