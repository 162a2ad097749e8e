//! Scoring the words of `q` in one pass over their postings.
//!
//! Every match has a constant score (see `query`): a word scores its rank plus its best
//! variant (exact, prefix or typo, synonym, in one of the text fields), and an offer
//! scores the sum over the words it matches: `rank`'s key, passed to tantivy as the
//! float with its bits. Tantivy's generic scorers compute that
//! with a disjunction-max union per word inside a union of words, paying a virtual call
//! and a seek per posting per level; on common words that was most of a search's time.
//!
//! Here, per segment, each variant's postings are read block by block straight from the
//! inverted index (a term, or every term an automaton accepts) and folded into dense
//! arrays indexed by document: the best variant score of the current word, then the
//! running sum. The documents that match every required word become a bitset, iterated
//! by the scorer with the sum as score. The result is the same set and the same scores.
//!
//! The dense arrays (9 bytes per document of the largest segment seen) are kept per
//! thread and are all zero between searches: a search resets only the entries it
//! touched, so its cost follows its matches, not the size of the segment.

use std::cell::RefCell;

use tantivy::postings::BlockSegmentPostings;
use tantivy::query::{BitSetDocSet, EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{BitSet, DocId, DocSet, Score, SegmentReader, TERMINATED, Term};

use super::query::ExceptWord;
use super::rank::Key;

/// Where a variant's documents come from.
#[derive(Debug)]
pub enum Variant {
    /// The documents of one term.
    Term(Term),
    /// The documents of every term of `field` that `automaton` accepts.
    Terms { field: Field, automaton: ExceptWord },
    /// Any other query (a synonym of several words, all of which must match).
    Query(Box<dyn Query>),
}

impl Clone for Variant {
    fn clone(&self) -> Variant {
        match self {
            Variant::Term(term) => Variant::Term(term.clone()),
            Variant::Terms { field, automaton } => Variant::Terms {
                field: *field,
                automaton: automaton.clone(),
            },
            Variant::Query(query) => Variant::Query(query.box_clone()),
        }
    }
}

/// One query word: its rank (what matching it adds, `rank::words`) and its variants,
/// each with what a match through it adds on top of the rank (`rank::term_match`).
#[derive(Debug, Clone)]
pub struct WordClause {
    pub rank: u32,
    pub variants: Vec<(Variant, u32)>,
}

/// The words of a query; the first `required` must all match (1 for matching strategy
/// `last`, all of them for `all`).
#[derive(Debug, Clone)]
pub struct WordsQuery {
    pub words: Vec<WordClause>,
    pub required: usize,
}

impl Query for WordsQuery {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        // Variant scores are constants: their own scoring (BM25 statistics) is not needed.
        let unscored = EnableScoring::disabled_from_schema(scoring.schema());
        let words = self
            .words
            .iter()
            .map(|word| {
                let variants = word
                    .variants
                    .iter()
                    .map(|(variant, score)| {
                        let prepared = match variant {
                            Variant::Term(term) => Prepared::Term(term.clone()),
                            Variant::Terms { field, automaton } => Prepared::Terms {
                                field: *field,
                                automaton: automaton.clone(),
                            },
                            Variant::Query(query) => Prepared::Weight(query.weight(unscored)?),
                        };
                        Ok((prepared, *score))
                    })
                    .collect::<tantivy::Result<Vec<_>>>()?;
                Ok(WordWeights {
                    rank: word.rank,
                    variants,
                })
            })
            .collect::<tantivy::Result<Vec<_>>>()?;
        Ok(Box::new(WordsWeight {
            words,
            required: self.required.min(self.words.len()),
        }))
    }
}

/// A variant ready to be read in any segment: terms are read from the postings
/// directly, any other query through its tantivy weight.
enum Prepared {
    Term(Term),
    Terms { field: Field, automaton: ExceptWord },
    Weight(Box<dyn Weight>),
}

impl Prepared {
    /// Calls `fold` with the variant's documents in `reader`, a block at a time (a
    /// document may come more than once, through several terms).
    fn for_each_block(
        &self,
        reader: &SegmentReader,
        fold: &mut dyn FnMut(&[DocId]),
    ) -> tantivy::Result<()> {
        match self {
            Prepared::Term(term) => {
                let inverted = reader.inverted_index(term.field())?;
                if let Some(mut postings) =
                    inverted.read_block_postings(term, IndexRecordOption::Basic)?
                {
                    fold_blocks(&mut postings, fold);
                }
            }
            Prepared::Terms { field, automaton } => {
                let inverted = reader.inverted_index(*field)?;
                let mut terms = inverted
                    .terms()
                    .search(automaton)
                    .without_keys()
                    .into_stream()?;
                while terms.advance() {
                    let mut postings = inverted.read_block_postings_from_terminfo(
                        terms.value(),
                        IndexRecordOption::Basic,
                    )?;
                    fold_blocks(&mut postings, fold);
                }
            }
            Prepared::Weight(weight) => weight.for_each_no_score(reader, fold)?,
        }
        Ok(())
    }
}

fn fold_blocks(postings: &mut BlockSegmentPostings, fold: &mut dyn FnMut(&[DocId])) {
    loop {
        let docs = postings.docs();
        if docs.is_empty() {
            return;
        }
        fold(docs);
        postings.advance();
    }
}

struct WordWeights {
    rank: u32,
    variants: Vec<(Prepared, u32)>,
}

struct WordsWeight {
    words: Vec<WordWeights>,
    required: usize,
}

/// Dense per-document arrays, all zero whenever they are in the pool.
#[derive(Default)]
struct Scratch {
    /// Running sum of the matched words' keys.
    total: Vec<u32>,
    /// Best variant of the current word, plus one (0: not matched).
    best: Vec<u32>,
    /// How many of the required words matched (only with more than one).
    required_matched: Vec<u8>,
}

thread_local! {
    /// Each search thread's arrays, taken by a segment's scorer and given back, zeroed,
    /// when it is dropped.
    static SCRATCH: RefCell<Vec<Scratch>> = const { RefCell::new(Vec::new()) };
}

impl Scratch {
    /// Arrays of at least `size` entries, all zero.
    fn take(size: usize) -> Scratch {
        let mut scratch = SCRATCH
            .with(|pool| pool.borrow_mut().pop())
            .unwrap_or_default();
        for array in [&mut scratch.total, &mut scratch.best] {
            if array.len() < size {
                array.resize(size, 0);
            }
        }
        if scratch.required_matched.len() < size {
            scratch.required_matched.resize(size, 0);
        }
        scratch
    }

    /// Zeroes the entries of `dirty` (`best` is zeroed word by word already; the counts
    /// only if `counted`) and puts the arrays back in the thread's pool.
    fn give_back(mut self, dirty: &[DocId], counted: bool) {
        for &doc in dirty {
            self.total[doc as usize] = 0;
        }
        if counted {
            for &doc in dirty {
                self.required_matched[doc as usize] = 0;
            }
        }
        SCRATCH.with(|pool| pool.borrow_mut().push(self));
    }
}

impl WordsWeight {
    fn dense_scorer(&self, reader: &SegmentReader) -> tantivy::Result<DenseScorer> {
        let max_doc = reader.max_doc();
        let mut scratch = Scratch::take(max_doc as usize);
        let mut dirty: Vec<DocId> = Vec::new();
        let outcome = self.score_words(reader, &mut scratch, &mut dirty);
        let counted = self.counting();
        match outcome {
            Ok(docs) => Ok(DenseScorer {
                docs: BitSetDocSet::from(docs),
                scratch: Some(scratch),
                dirty,
                counted,
            }),
            Err(err) => {
                scratch.give_back(&dirty, counted);
                Err(err)
            }
        }
    }

    /// With one required word, matching it is what makes a candidate: no count.
    fn counting(&self) -> bool {
        self.required > 1
    }

    /// Fills `scratch.total` for every document matching a word (each recorded in
    /// `dirty`) and returns the documents matching every required word.
    fn score_words(
        &self,
        reader: &SegmentReader,
        scratch: &mut Scratch,
        dirty: &mut Vec<DocId>,
    ) -> tantivy::Result<BitSet> {
        let Scratch {
            total,
            best,
            required_matched,
        } = scratch;
        let counting = self.counting();
        // The documents the current word matched; `dirty` ends as the union.
        let mut touched: Vec<DocId> = Vec::new();
        let mut candidates = 0..0;
        for (i, word) in self.words.iter().enumerate() {
            touched.clear();
            for (variant, score) in &word.variants {
                let score = *score + 1;
                let result = variant.for_each_block(reader, &mut |docs: &[DocId]| {
                    for &doc in docs {
                        let slot = &mut best[doc as usize];
                        if *slot == 0 {
                            touched.push(doc);
                        }
                        if *slot < score {
                            *slot = score;
                        }
                    }
                });
                if let Err(err) = result {
                    for &doc in &touched {
                        best[doc as usize] = 0;
                    }
                    dirty.extend_from_slice(&touched);
                    return Err(err);
                }
            }
            for &doc in &touched {
                let slot = &mut best[doc as usize];
                total[doc as usize] += word.rank + *slot - 1;
                *slot = 0;
                if counting && i < self.required {
                    required_matched[doc as usize] += 1;
                }
            }
            let start = dirty.len();
            dirty.extend_from_slice(&touched);
            if i == 0 {
                // Whoever matches every required word matched the first one.
                candidates = start..dirty.len();
            }
        }
        let mut docs = BitSet::with_max_value(reader.max_doc());
        for &doc in &dirty[candidates] {
            if !counting || required_matched[doc as usize] as usize == self.required {
                docs.insert(doc);
            }
        }
        Ok(docs)
    }
}

impl Weight for WordsWeight {
    fn scorer(&self, reader: &SegmentReader, _boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        Ok(Box::new(self.dense_scorer(reader)?))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let mut scorer = self.dense_scorer(reader)?;
        if scorer.seek(doc) != doc {
            return Err(tantivy::TantivyError::InvalidArgument(format!(
                "document {doc} does not match"
            )));
        }
        Ok(Explanation::new(
            "sum of the matched words' ranks and best variants",
            scorer.score(),
        ))
    }
}

/// The matching documents of a segment and their scores.
struct DenseScorer {
    docs: BitSetDocSet,
    /// Always `Some` until dropped.
    scratch: Option<Scratch>,
    /// The entries of `scratch` to zero when done.
    dirty: Vec<DocId>,
    /// Whether the required words were counted.
    counted: bool,
}

impl Drop for DenseScorer {
    fn drop(&mut self) {
        if let Some(scratch) = self.scratch.take() {
            scratch.give_back(&self.dirty, self.counted);
        }
    }
}

impl DocSet for DenseScorer {
    fn advance(&mut self) -> DocId {
        self.docs.advance()
    }

    fn seek(&mut self, target: DocId) -> DocId {
        self.docs.seek(target)
    }

    fn doc(&self) -> DocId {
        self.docs.doc()
    }

    fn size_hint(&self) -> u32 {
        self.docs.size_hint()
    }
}

impl Scorer for DenseScorer {
    fn score(&mut self) -> Score {
        match (self.docs.doc(), &self.scratch) {
            (TERMINATED, _) | (_, None) => 0.0,
            (doc, Some(scratch)) => Key(scratch.total[doc as usize]).score(),
        }
    }
}
