//! The index on disk: generations and the pointer to the live one.
//!
//! ```text
//! search.index_dir/
//!   CURRENT            name of the live generation, replaced atomically (write + rename)
//!   gen-<nanos>/       one complete tantivy index
//! ```
//! A rebuild writes a new generation beside the live one and, once it is committed,
//! points `CURRENT` at it; the old one keeps serving until then and is removed after.
//! Nothing is ever wiped in place. Each commit's payload is a [`Payload`]: the schema
//! version that wrote it and the last change-log number it applied, so a restart knows
//! both whether it can use the index and where to resume.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tantivy::store::Compressor;
use tantivy::{Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy};

use super::collect::IdsBySegment;
use super::schema::{self, OfferSchema, SCHEMA_VERSION};

const CURRENT: &str = "CURRENT";
const GEN_PREFIX: &str = "gen-";

/// What every commit records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub schema_version: u32,
    /// The last change-log number applied (0: none).
    pub change_no: i64,
}

impl Payload {
    pub fn to_json(self) -> String {
        serde_json::to_string(&self).expect("payload serializes")
    }
}

/// One complete index, open for reading.
pub struct Generation {
    pub name: String,
    pub dir: Option<PathBuf>,
    pub index: Index,
    pub reader: IndexReader,
    pub schema: OfferSchema,
    /// Offer ids by document for the segments searched (see `collect::IdsBySegment`).
    pub ids: Arc<IdsBySegment>,
}

impl Generation {
    fn open_index(name: String, dir: Option<PathBuf>, index: Index) -> anyhow::Result<Generation> {
        schema::register_tokenizers(&index);
        let schema = OfferSchema::resolve(&index.schema())
            .ok_or_else(|| anyhow::anyhow!("the index lacks fields this build needs"))?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .context("cannot open an index reader")?;
        Ok(Generation {
            name,
            dir,
            index,
            reader,
            schema,
            ids: Arc::default(),
        })
    }

    /// An empty in-memory index, served before the first build completes.
    pub fn empty() -> Arc<Generation> {
        let index = Index::create_in_ram(schema::build());
        Arc::new(Generation::open_index("empty".into(), None, index).expect("an empty index opens"))
    }

    /// The payload of the last commit, if any.
    pub fn payload(&self) -> Option<Payload> {
        let metas = self.index.load_metas().ok()?;
        serde_json::from_str(metas.payload.as_deref()?).ok()
    }

    /// A writer for this generation (one per index; tantivy locks the directory).
    pub fn writer(&self, threads: usize, heap_bytes: usize) -> anyhow::Result<IndexWriter> {
        self.index
            .writer_with_num_threads(threads, heap_bytes)
            .context("cannot open the index writer")
    }
}

/// Commits what `writer` holds with `payload` as the commit's payload.
pub fn commit(writer: &mut IndexWriter, payload: Payload) -> anyhow::Result<()> {
    let mut prepared = writer.prepare_commit()?;
    prepared.set_payload(&payload.to_json());
    prepared.commit()?;
    Ok(())
}

/// The state found on disk at start.
pub enum Found {
    /// The live generation, usable and at `payload.change_no`.
    Ready(Generation, Payload),
    /// Must be rebuilt; `serving` is the old generation when it can still answer.
    Rebuild {
        serving: Option<Generation>,
        reason: String,
    },
}

/// Opens what `CURRENT` points at and says whether it can be used as it is.
pub fn open_current(root: &Path) -> Found {
    let Some(name) = current_name(root) else {
        return Found::Rebuild {
            serving: None,
            reason: "no index yet".into(),
        };
    };
    let dir = root.join(&name);
    let generation = match Index::open_in_dir(&dir)
        .map_err(anyhow::Error::from)
        .and_then(|index| Generation::open_index(name.clone(), Some(dir.clone()), index))
    {
        Ok(generation) => generation,
        Err(err) => {
            return Found::Rebuild {
                serving: None,
                reason: format!("index {name} cannot be opened: {err:#}"),
            };
        }
    };
    match generation.payload() {
        Some(payload) if payload.schema_version == SCHEMA_VERSION => {
            Found::Ready(generation, payload)
        }
        Some(payload) => Found::Rebuild {
            reason: format!(
                "index {name} has schema version {}, this build writes {SCHEMA_VERSION}",
                payload.schema_version
            ),
            serving: Some(generation),
        },
        None => Found::Rebuild {
            serving: None,
            reason: format!("index {name} has no commit payload"),
        },
    }
}

/// The generation `CURRENT` names, if any.
pub fn current_name(root: &Path) -> Option<String> {
    let name = fs::read_to_string(root.join(CURRENT)).ok()?;
    let name = name.trim();
    (name.starts_with(GEN_PREFIX) && !name.contains('/')).then(|| name.to_string())
}

/// Creates an empty generation directory with a fresh index.
pub fn create_generation(root: &Path) -> anyhow::Result<Generation> {
    fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    let name = format!("{GEN_PREFIX}{nanos:024}");
    let dir = root.join(&name);
    fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Hits are read from the doc store at random: small uncompressed blocks make each
    // read a slice of the mapped file instead of decompressing 16 KiB for one document.
    let settings = IndexSettings {
        docstore_compression: Compressor::None,
        docstore_blocksize: 2048,
        ..IndexSettings::default()
    };
    let index = Index::builder()
        .schema(schema::build())
        .settings(settings)
        .create_in_dir(&dir)
        .context("cannot create the index")?;
    Generation::open_index(name, Some(dir), index)
}

/// Makes `name` the live generation: `CURRENT` is written aside, synced and renamed.
pub fn publish(root: &Path, name: &str) -> anyhow::Result<()> {
    let tmp = root.join(format!("{CURRENT}.tmp"));
    let mut file =
        fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(format!("{name}\n").as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, root.join(CURRENT)).context("cannot replace CURRENT")?;
    if let Ok(dir) = fs::File::open(root) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Removes the generations older than `keep` (the ones it replaced, and any half-built
/// by a crashed rebuild). Newer ones are left alone: a `reindex` may be writing one.
pub fn remove_other_generations(root: &Path, keep: &str) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with(GEN_PREFIX)
            && name.as_str() < keep
            && let Err(err) = fs::remove_dir_all(entry.path())
        {
            tracing::warn!(generation = name, error = %err, "cannot remove an old index generation");
        }
    }
}
