//! Scoring the words of `q` in one pass over their postings.
//!
//! Every match has a constant score (see `query`): a word scores its rank plus its best
//! variant (exact, prefix or typo, synonym, in one of the text fields), and an offer
//! scores the sum over the words it matches. Tantivy's generic scorers compute that
//! with a disjunction-max union per word inside a union of words, paying a virtual call
//! and a seek per posting per level; on common words that was most of a search's time.
//!
//! Here, per segment, each variant's postings are read in blocks and folded into
//! dense arrays indexed by document: the best variant score of the current word, then
//! the running sum. The documents that match every required word become a bitset,
//! iterated by the scorer with the sum as score. The result is the same set and the
//! same scores; memory is about 9 bytes per document of the segment for the duration of
//! a search.

use tantivy::query::{BitSetDocSet, EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::{BitSet, DocId, DocSet, Score, SegmentReader, TERMINATED};

/// One query word: its rank (what matching it adds) and its variants, each a query
/// with the score a match through it adds on top of the rank.
#[derive(Debug)]
pub struct WordClause {
    pub rank: Score,
    pub variants: Vec<(Box<dyn Query>, Score)>,
}

impl Clone for WordClause {
    fn clone(&self) -> WordClause {
        WordClause {
            rank: self.rank,
            variants: self
                .variants
                .iter()
                .map(|(query, score)| (query.box_clone(), *score))
                .collect(),
        }
    }
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
                    .map(|(query, score)| Ok((query.weight(unscored)?, *score)))
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

struct WordWeights {
    rank: Score,
    variants: Vec<(Box<dyn Weight>, Score)>,
}

struct WordsWeight {
    words: Vec<WordWeights>,
    required: usize,
}

impl WordsWeight {
    fn dense_scorer(&self, reader: &SegmentReader) -> tantivy::Result<DenseScorer> {
        let max_doc = reader.max_doc();
        let size = max_doc as usize;
        let mut total = vec![0.0 as Score; size];
        // With one required word, matching it is what makes a candidate: no count.
        let counting = self.required > 1;
        let mut required_matched = vec![0u8; if counting { size } else { 0 }];
        let mut touched: Vec<DocId> = Vec::new();
        let mut candidates: Vec<DocId> = Vec::new();
        // Best variant score of the current word per document (0: not matched); the
        // entries a word touched are reset before the next word.
        let mut best = vec![0.0 as Score; size];
        for (i, word) in self.words.iter().enumerate() {
            touched.clear();
            for (weight, score) in &word.variants {
                let score = *score;
                weight.for_each_no_score(reader, &mut |docs: &[DocId]| {
                    for &doc in docs {
                        let slot = &mut best[doc as usize];
                        if *slot == 0.0 {
                            touched.push(doc);
                        }
                        if *slot < score {
                            *slot = score;
                        }
                    }
                })?;
            }
            for &doc in &touched {
                let slot = &mut best[doc as usize];
                total[doc as usize] += word.rank + *slot;
                *slot = 0.0;
                if counting && i < self.required {
                    required_matched[doc as usize] += 1;
                }
            }
            if i == 0 {
                // Whoever matches every required word matched the first one.
                std::mem::swap(&mut candidates, &mut touched);
            }
        }
        let mut docs = BitSet::with_max_value(max_doc);
        for &doc in &candidates {
            if !counting || required_matched[doc as usize] as usize == self.required {
                docs.insert(doc);
            }
        }
        Ok(DenseScorer {
            docs: BitSetDocSet::from(docs),
            total,
        })
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
    total: Vec<Score>,
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
        match self.docs.doc() {
            TERMINATED => 0.0,
            doc => self.total[doc as usize],
        }
    }
}
