//! Search: the tantivy index as a projection of the mirror, and a Meilisearch-compatible
//! storefront API over it.
//!
//! - `schema`, `document`: what an offer becomes in the index (typed fields, a stored
//!   hit document). Hidden offers (not visible, removed, archived/disabled/for
//!   deletion, not published, or of a merchant that is disconnected or disabled) are
//!   **kept out of the index**; see `source` for why.
//! - `source`: reads the mirror (change log, indexable offers) in consistent snapshots.
//! - `store`: generations on disk, the `CURRENT` pointer, the commit payload
//!   (schema version + last applied change number).
//! - `indexer`: follows the change log, brings each changed merchant's documents up to
//!   date in one commit, rebuilds aside and swaps when the index is missing, corrupt or
//!   of an older schema, and serves `catalog-mirror reindex`.
//! - `diff`: how a batch writes only the documents that differ from the mirror (by
//!   each document's fingerprint) and deletes those it no longer shows.
//! - `filter`, `query`, `relevance`, `collect`, `execute`, `format`, `params`: the
//!   query side (filter grammar, typo/prefix/synonym matching with field weights,
//!   facets, sort, pagination, highlighting).
//!   `word_scorer` scores the words of `q` in one pass over their postings, into
//!   `rank`'s key of Meilisearch's ranking rules; `proximity` ranks the best
//!   candidates by how close the words are; `sort`
//!   orders by numbers, texts and booleans as Meilisearch does; `syntax` and `terms`
//!   read phrases and exclusions in `q` and apply the matching strategy.
//! - `http`, `auth`, `error`: the routes, keys and tenant tokens, Meilisearch errors;
//!   `pool`: the threads that compute searches. `read_routes` serves the rest of the
//!   API (documents, settings, index information, errors for writes and unknown
//!   routes), from `documents` (offers read as documents) and `settings` (the settings
//!   in use); `facet_search` reads facet-search parameters.
//!
//! [`SearchIndex`] is what the two sides share: the generation being served, swapped
//! atomically; a request takes one searcher (one commit) and keeps it to the end.

pub mod auth;
pub mod collect;
pub mod diff;
pub mod distinct;
pub mod document;
pub mod documents;
pub mod error;
pub mod execute;
pub mod facet_search;
pub mod filter;
pub mod format;
pub mod http;
pub mod indexer;
pub mod params;
pub mod pool;
mod proximity;
pub mod query;
pub mod rank;
mod read_routes;
pub mod relevance;
pub mod rules;
pub mod schema;
mod score;
pub mod settings;
pub mod sort;
pub mod source;
pub mod store;
pub mod syntax;
pub mod terms;
mod word_scorer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context;
use chrono::{DateTime, Utc};

pub use indexer::{BatchReport, Indexer, IndexerSettings, RebuildReport, Startup, reindex};
pub use relevance::Relevance;
pub use store::Generation;

/// The one index uid the API serves.
pub const INDEX_UID: &str = "offers";

/// The generation being served and the relevance settings.
pub struct SearchIndex {
    current: RwLock<Arc<Generation>>,
    /// (change number, merchants) of each live commit, once searches see it.
    commits: tokio::sync::broadcast::Sender<(i64, Vec<i64>)>,
    relevance: Arc<Relevance>,
    indexing: AtomicBool,
    updated_at: Mutex<DateTime<Utc>>,
}

impl SearchIndex {
    /// Serves an empty index until the indexer publishes one.
    pub fn new(relevance: Relevance) -> Arc<SearchIndex> {
        Arc::new(SearchIndex {
            current: RwLock::new(Generation::empty()),
            commits: tokio::sync::broadcast::channel(256).0,
            relevance: Arc::new(relevance),
            indexing: AtomicBool::new(false),
            updated_at: Mutex::new(Utc::now()),
        })
    }

    /// The generation to search now.
    pub fn current(&self) -> Arc<Generation> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn relevance(&self) -> Arc<Relevance> {
        self.relevance.clone()
    }

    /// Serves `generation` from now on (requests in flight finish on the old one).
    pub fn swap(&self, generation: Arc<Generation>) {
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = generation;
        self.touch();
    }

    /// Records that the served index changed (a commit was applied).
    pub fn touch(&self) {
        *self
            .updated_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Utc::now();
    }

    pub fn updated_at(&self) -> DateTime<Utc> {
        *self
            .updated_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn set_indexing(&self, indexing: bool) {
        self.indexing.store(indexing, Ordering::Relaxed);
    }

    pub fn is_indexing(&self) -> bool {
        self.indexing.load(Ordering::Relaxed)
    }

    /// Announces that a commit applying changes up to `change_no` for `merchants` is
    /// visible to searches (the indexer calls this after the reader reloaded).
    pub fn committed(&self, change_no: i64, merchants: Vec<i64>) {
        let _ = self.commits.send((change_no, merchants));
    }

    /// Commits as they become visible: (change number, merchants).
    pub fn subscribe_commits(&self) -> tokio::sync::broadcast::Receiver<(i64, Vec<i64>)> {
        self.commits.subscribe()
    }

    /// The last change number the served generation applied.
    pub fn change_no(&self) -> Option<i64> {
        self.current().payload().map(|payload| payload.change_no)
    }
}

/// Search as a daemon mounts it, built and not yet running: the routes for the public
/// listener, the served index, and the indexer (already opened: the index is served at
/// once when usable) to run with [`Indexer::run`].
pub struct SearchParts {
    pub routes: axum::Router,
    pub index: Arc<SearchIndex>,
    pub indexer: Indexer,
    pub startup: Startup,
}

/// Builds search for a daemon: relevance settings, keys, the search threads, and the
/// opened index.
pub async fn build(
    settings: &crate::config::Settings,
    pool: sqlx::PgPool,
) -> anyhow::Result<SearchParts> {
    let search = &settings.search;
    let settings_dir =
        (!search.settings_dir.as_os_str().is_empty()).then_some(search.settings_dir.as_path());
    let index = SearchIndex::new(Relevance::load(settings_dir)?);
    let api = http::SearchApi::new(
        index.clone(),
        auth::Access::from_settings(search)?,
        http::SearchLimits::from_settings(search),
    )
    .context("starting the search threads")?;
    let indexer = Indexer::new(
        pool,
        IndexerSettings {
            index_dir: search.index_dir.clone(),
            poll_interval: std::time::Duration::from_millis(search.poll_interval_ms),
        },
        index.clone(),
    );
    let startup = indexer.open().await?;
    Ok(SearchParts {
        routes: http::router(api),
        index,
        indexer,
        startup,
    })
}
