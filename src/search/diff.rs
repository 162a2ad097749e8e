//! Writing only what changed: one batch of changes applied to the live writer by
//! comparing each document the mirror yields now with the one the index holds.
//!
//! A change that names a whole merchant (a full pass past the change log's bound, a
//! collections refresh, a visibility change) used to delete all of the merchant's
//! documents and add them again: a 100,000-offer merchant rewrote 100,000 documents
//! even when three had changed, and a commit grew with the merchant. Now each
//! document carries the fingerprint of its hit document (`_fingerprint`, see
//! `document::fingerprint`); the merchant's committed fingerprints are read by offer id
//! (one map per merchant, a few dozen bytes an offer, dropped before the next merchant), the
//! mirror's rows stream past in chunks, and only offers that are new or differ are
//! deleted and added again; offers the index holds and the mirror no longer shows are
//! deleted. Listed offers are compared the same way. Everything goes through the one
//! writer and is committed once by the caller, so a reader still sees a batch whole.
//!
//! Order matters because a tantivy delete removes every matching document added
//! before it, in this commit too. A merchant's pass deletes what it rewrites by offer
//! id just before adding it, and deletes what the mirror no longer shows by offer id
//! *and* merchant, so an offer that moved to a merchant processed earlier in the batch
//! keeps its new document. Listed offers come last and leave alone the offers of
//! merchants replaced as a whole in the batch (their pass owns them).

use std::collections::{BTreeSet, HashMap};

use tantivy::query::{BooleanQuery, Query, TermQuery, TermSetQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, DocSet, IndexWriter, Searcher, SegmentReader, TERMINATED, Term};

use super::document::OfferRow;
use super::schema::OfferSchema;
use super::store::{self, Generation, Payload};

/// What a fingerprint reads as when the index cannot vouch for a document: missing,
/// or the offer has several documents. Such offers are always rewritten.
const UNKNOWN: u64 = 0;

/// Documents a batch wrote, removed, and found as they should be.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DocumentCounts {
    /// Documents added (new offers and new versions of changed ones).
    pub added: u64,
    /// Documents removed (old versions of changed offers and offers no longer shown).
    pub deleted: u64,
    /// Offers whose document already matched the mirror: not touched.
    pub unchanged: u64,
}

impl DocumentCounts {
    /// Reports the counts to `catalog_mirror_index_documents_total{op}`.
    pub fn record(&self) {
        for (op, count) in [
            ("added", self.added),
            ("deleted", self.deleted),
            ("unchanged", self.unchanged),
        ] {
            metrics::counter!("catalog_mirror_index_documents_total", "op" => op).increment(count);
        }
    }
}

/// One batch's work on the writer, against the committed state `searcher` shows.
pub struct Diff<'a> {
    writer: &'a IndexWriter,
    searcher: Searcher,
    /// The fast fields read, per segment of `searcher`.
    columns: Vec<Columns>,
    schema: &'a OfferSchema,
    /// Merchants replaced as a whole in this batch.
    whole: &'a BTreeSet<i64>,
    /// The merchant being replaced: its committed documents not yet matched by a row.
    merchant: Option<(i64, HashMap<i64, u64>)>,
    counts: DocumentCounts,
}

impl<'a> Diff<'a> {
    pub fn new(
        writer: &'a IndexWriter,
        searcher: Searcher,
        schema: &'a OfferSchema,
        whole: &'a BTreeSet<i64>,
    ) -> anyhow::Result<Diff<'a>> {
        let columns = searcher
            .segment_readers()
            .iter()
            .map(Columns::open)
            .collect::<anyhow::Result<_>>()?;
        Ok(Diff {
            writer,
            searcher,
            columns,
            schema,
            whole,
            merchant: None,
            counts: DocumentCounts::default(),
        })
    }

    pub fn counts(&self) -> DocumentCounts {
        self.counts
    }

    /// Starts replacing `merchant` as a whole; its rows follow in [`Diff::rows`].
    pub fn begin_merchant(&mut self, merchant: i64) -> anyhow::Result<()> {
        self.end_merchant()?;
        let mut indexed = HashMap::new();
        let merchant_field = self.field("merchant_id")?;
        self.each_document(
            Term::from_field_f64(merchant_field, merchant as f64),
            |id, _, fingerprint| {
                indexed
                    .entry(id)
                    .and_modify(|seen| *seen = UNKNOWN)
                    .or_insert(fingerprint);
            },
        )?;
        self.merchant = Some((merchant, indexed));
        Ok(())
    }

    /// The next rows of the merchant begun last (all of them of that merchant).
    pub fn rows(&mut self, rows: Vec<OfferRow>) -> anyhow::Result<()> {
        let Some((_, indexed)) = self.merchant.as_mut() else {
            anyhow::bail!("merchant rows before the merchant");
        };
        let mut write = Vec::new();
        for row in rows {
            let projected = row.project();
            match indexed.remove(&row.offer_id) {
                Some(held) if held == projected.fingerprint => self.counts.unchanged += 1,
                Some(_) => {
                    self.counts.deleted += 1;
                    write.push((row.offer_id, projected));
                }
                None => write.push((row.offer_id, projected)),
            }
        }
        // By offer id alone: a copy filed under another merchant goes too.
        self.delete_ids(write.iter().map(|(id, _)| *id))?;
        for (_, projected) in write {
            self.writer
                .add_document(projected.into_document(self.schema))?;
            self.counts.added += 1;
        }
        Ok(())
    }

    /// Ends the merchant begun last: what it held that the mirror did not show goes.
    pub fn end_merchant(&mut self) -> anyhow::Result<()> {
        let Some((merchant, indexed)) = self.merchant.take() else {
            return Ok(());
        };
        if indexed.is_empty() {
            return Ok(());
        }
        let merchant_field = self.field("merchant_id")?;
        let id_field = self.field("id")?;
        let gone = indexed.len() as u64;
        let query = BooleanQuery::intersection(vec![
            Box::new(TermQuery::new(
                Term::from_field_f64(merchant_field, merchant as f64),
                IndexRecordOption::Basic,
            )) as Box<dyn Query>,
            Box::new(TermSetQuery::new(
                indexed
                    .into_keys()
                    .map(|id| Term::from_field_f64(id_field, id as f64)),
            )),
        ]);
        self.writer.delete_query(Box::new(query))?;
        self.counts.deleted += gone;
        Ok(())
    }

    /// Listed offers: `ids` changed, `rows` are those of them the mirror shows.
    pub fn listed(&mut self, ids: &[i64], rows: Vec<OfferRow>) -> anyhow::Result<()> {
        self.end_merchant()?;
        // (merchant, fingerprint) of each listed offer's committed document.
        let mut indexed: HashMap<i64, (i64, u64)> = HashMap::with_capacity(ids.len());
        let id_field = self.field("id")?;
        for &id in ids {
            self.each_document(
                Term::from_field_f64(id_field, id as f64),
                |_, merchant, fingerprint| {
                    indexed
                        .entry(id)
                        .and_modify(|seen| seen.1 = UNKNOWN)
                        .or_insert((merchant, fingerprint));
                },
            )?;
        }
        let mut shown: HashMap<i64, OfferRow> =
            rows.into_iter().map(|row| (row.offer_id, row)).collect();
        let mut delete = Vec::new();
        let mut write = Vec::new();
        for &id in ids {
            let held = indexed.get(&id).copied();
            match shown.remove(&id) {
                // Owned by a merchant replaced as a whole in this batch.
                Some(row) if self.whole.contains(&row.merchant_id) => {}
                Some(row) => {
                    let projected = row.project();
                    match held {
                        Some((_, fingerprint)) if fingerprint == projected.fingerprint => {
                            self.counts.unchanged += 1;
                        }
                        Some(_) => {
                            self.counts.deleted += 1;
                            delete.push(id);
                            write.push(projected);
                        }
                        None => {
                            delete.push(id);
                            write.push(projected);
                        }
                    }
                }
                None => match held {
                    Some((merchant, _)) if !self.whole.contains(&merchant) => {
                        self.counts.deleted += 1;
                        delete.push(id);
                    }
                    _ => {}
                },
            }
        }
        self.delete_ids(delete.into_iter())?;
        for projected in write {
            self.writer
                .add_document(projected.into_document(self.schema))?;
            self.counts.added += 1;
        }
        Ok(())
    }

    /// One delete operation for every document of these offers.
    fn delete_ids(&self, ids: impl Iterator<Item = i64>) -> anyhow::Result<()> {
        let id_field = self.field("id")?;
        let terms: Vec<Term> = ids
            .map(|id| Term::from_field_f64(id_field, id as f64))
            .collect();
        if !terms.is_empty() {
            self.writer
                .delete_query(Box::new(TermSetQuery::new(terms)))?;
        }
        Ok(())
    }

    fn field(&self, name: &str) -> anyhow::Result<tantivy::schema::Field> {
        self.schema
            .attribute(name)
            .map(|(_, _, field)| field)
            .ok_or_else(|| anyhow::anyhow!("the index has no {name} field"))
    }

    /// Calls `found(id, merchant, fingerprint)` for each live committed document
    /// holding `term` (read from the postings and fast fields, no search).
    fn each_document(
        &self,
        term: Term,
        mut found: impl FnMut(i64, i64, u64),
    ) -> anyhow::Result<()> {
        for (segment, columns) in self.searcher.segment_readers().iter().zip(&self.columns) {
            let Some(mut postings) = segment
                .inverted_index(term.field())?
                .read_postings(&term, IndexRecordOption::Basic)?
            else {
                continue;
            };
            let mut doc = postings.doc();
            while doc != TERMINATED {
                if !segment.is_deleted(doc) {
                    let (id, merchant, fingerprint) = columns.read(doc);
                    found(id, merchant, fingerprint);
                }
                doc = postings.advance();
            }
        }
        Ok(())
    }
}

/// The fast fields a diff reads of one segment.
struct Columns {
    id: tantivy::columnar::Column<f64>,
    merchant: tantivy::columnar::Column<f64>,
    fingerprint: Option<tantivy::columnar::Column<u64>>,
}

impl Columns {
    fn open(segment: &SegmentReader) -> anyhow::Result<Columns> {
        let fast = segment.fast_fields();
        Ok(Columns {
            id: fast.f64("id")?,
            merchant: fast.f64("merchant_id")?,
            // A segment where no document has one has no column: all unknown.
            fingerprint: fast.u64("_fingerprint").ok(),
        })
    }

    fn read(&self, doc: DocId) -> (i64, i64, u64) {
        (
            self.id.first(doc).map_or(-1, |id| id as i64),
            self.merchant.first(doc).map_or(-1, |id| id as i64),
            self.fingerprint
                .as_ref()
                .and_then(|column| column.first(doc))
                .unwrap_or(UNKNOWN),
        )
    }
}

/// What the indexer's reading side hands the writer, in order.
pub enum Work {
    /// Replace this merchant as a whole; its rows follow.
    Merchant(i64),
    /// The next rows of that merchant.
    Rows(Vec<OfferRow>),
    /// Listed offers and those of them the mirror shows.
    Listed { ids: Vec<i64>, rows: Vec<OfferRow> },
    /// Everything was sent: commit with this payload.
    Commit(Payload),
}

/// Applies `work` as it arrives and commits once at [`Work::Commit`], then reloads the
/// reader; runs on a blocking thread holding the writer. Returns `None` when the
/// stream ended without a commit (the reading side failed). Then, and on any error,
/// the writer is rolled back to the last commit so nothing half-applied is left for
/// the next batch's commit to publish.
pub fn run(
    writer: &mut IndexWriter,
    generation: &Generation,
    whole: &BTreeSet<i64>,
    mut work: tokio::sync::mpsc::Receiver<Work>,
) -> anyhow::Result<Option<DocumentCounts>> {
    let applied = (|| -> anyhow::Result<Option<DocumentCounts>> {
        // The committed state to compare with (the last commit reloaded it; again in
        // case that reload failed: a stale view could keep a stale document).
        generation.reader.reload()?;
        let mut diff = Diff::new(
            writer,
            generation.reader.searcher(),
            &generation.schema,
            whole,
        )?;
        while let Some(next) = work.blocking_recv() {
            match next {
                Work::Merchant(merchant) => diff.begin_merchant(merchant)?,
                Work::Rows(rows) => diff.rows(rows)?,
                Work::Listed { ids, rows } => diff.listed(&ids, rows)?,
                Work::Commit(payload) => {
                    diff.end_merchant()?;
                    let counts = diff.counts();
                    drop(diff);
                    store::commit(writer, payload)?;
                    generation.reader.reload()?;
                    return Ok(Some(counts));
                }
            }
        }
        Ok(None)
    })();
    if !matches!(applied, Ok(Some(_)))
        && let Err(err) = writer.rollback()
    {
        tracing::warn!(error = %err, "cannot roll the index writer back");
    }
    applied
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
