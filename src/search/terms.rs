//! From `q` to its terms (words and phrases) and exclusions, and from those to the
//! scored query: `syntax` splits `q`, this module analyzes each piece (stop words,
//! typos, prefix, synonyms, Meilisearch's limits) and applies the matching strategy
//! to words and phrases together, as Meilisearch's query graph does
//! (crates/milli/src/search/new/query_graph.rs, `removal_order_for_terms_matching_
//! strategy*`):
//!
//! - a phrase is never dropped: with `last` or `frequency` every phrase must match and
//!   the words are optional; without a phrase, `last` keeps the first word and
//!   `frequency` the rarest ones;
//! - `last` drops words from the end, `frequency` the most frequent first (the words
//!   matching most offers, typos and prefixes included; a word matching nothing counts
//!   as the most frequent; words of equal frequency go together);
//! - excluded words and phrases remove the offers holding them, whatever else matches.

use tantivy::collector::Count;
use tantivy::query::{AllQuery, BooleanQuery, Occur, PhraseQuery, Query, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{Searcher, Term as IndexTerm};

use super::query::{MAX_TOKENS, MAX_WORDS, MatchingStrategy, Word, word_variants};
use super::relevance::Relevance;
use super::schema::{OfferSchema, TextField};
use super::syntax::{self, Kind};
use super::word_scorer::{Variant, WordClause, WordsQuery};

/// A phrase's words in order; `None` stands for a stop word (any word may be there).
pub type Phrase = Vec<Option<String>>;

/// One term of the query.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    Word(Word),
    Phrase(Phrase),
}

/// What `q` asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// Words and phrases in query order, at most [`MAX_WORDS`].
    pub terms: Vec<Term>,
    /// Offers holding one of these words exactly are left out.
    pub excluded_words: Vec<String>,
    /// Offers holding one of these phrases are left out.
    pub excluded_phrases: Vec<Phrase>,
}

/// What highlighting and `_matchesPosition` look for in a hit (see `format`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Highlights {
    /// Each matches a word of the text on its own.
    pub words: Vec<Word>,
    /// Each matches consecutive words of the text, as one match.
    pub phrases: Vec<Phrase>,
}

impl Highlights {
    /// `q` had no term: nothing to look for (and the search is unscored).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty() && self.phrases.is_empty()
    }
}

impl Parsed {
    /// What highlighting looks for: the query's words, and its phrases.
    pub fn highlighted(&self) -> Highlights {
        let mut highlights = Highlights::default();
        for term in &self.terms {
            match term {
                Term::Word(word) => highlights.words.push(word.clone()),
                Term::Phrase(phrase) => highlights.phrases.push(phrase.clone()),
            }
        }
        highlights
    }
}

/// Analyzes `q`: its first [`MAX_WORDS`] terms that are not stop words (stop words
/// when it has nothing else), its exclusions (as many), looking at its first
/// [`MAX_TOKENS`] tokens only. The last word matches as a prefix only when it ends `q`
/// (nothing follows it, not even a space or a quote).
pub fn parse(q: &str, relevance: &Relevance) -> Parsed {
    let mut analyzer = super::schema::text_analyzer();
    let mut parsed = Parsed::default();
    // Words and phrases as read, with where a word ends in `q`.
    let mut terms: Vec<(Option<usize>, Term)> = Vec::new();
    let mut stops: Vec<(usize, String)> = Vec::new();
    let mut seen = 0;
    let mut cut = false;
    'pieces: for piece in syntax::split(q) {
        let mut tokens = Vec::new();
        let mut stream = analyzer.token_stream(&q[piece.start..piece.end]);
        while stream.advance() {
            if seen == MAX_TOKENS {
                cut = true;
                break;
            }
            seen += 1;
            let token = stream.token();
            tokens.push((piece.start + token.offset_to, token.text.clone()));
        }
        match piece.kind {
            Kind::Words | Kind::ExcludedWord => {
                let mut tokens = tokens.into_iter();
                if piece.kind == Kind::ExcludedWord
                    && let Some((_, text)) = tokens.next()
                    && parsed.excluded_words.len() < MAX_WORDS
                {
                    parsed.excluded_words.push(text);
                }
                for (end, text) in tokens {
                    if relevance.stop_words.contains(text.as_str()) {
                        if stops.len() < MAX_WORDS {
                            stops.push((end, text));
                        }
                        continue;
                    }
                    if terms.len() == MAX_WORDS {
                        cut = true;
                        break 'pieces;
                    }
                    terms.push((Some(end), Term::Word(word(text, relevance))));
                }
            }
            Kind::Phrase | Kind::ExcludedPhrase => {
                let phrase: Phrase = tokens
                    .into_iter()
                    .map(|(_, text)| {
                        (!relevance.stop_words.contains(text.as_str())).then_some(text)
                    })
                    .collect();
                if phrase.iter().all(Option::is_none) {
                    continue;
                }
                if piece.kind == Kind::ExcludedPhrase {
                    if parsed.excluded_phrases.len() < MAX_WORDS {
                        parsed.excluded_phrases.push(phrase);
                    }
                } else if terms.len() == MAX_WORDS {
                    cut = true;
                    break 'pieces;
                } else {
                    terms.push((None, Term::Phrase(phrase)));
                }
            }
        }
        if cut {
            break;
        }
    }
    if terms.is_empty() {
        terms = stops
            .into_iter()
            .map(|(end, text)| (Some(end), Term::Word(word(text, relevance))))
            .collect();
    }
    // Only the query's real last token is being typed.
    if !cut
        && let Some((Some(end), Term::Word(word))) = terms.last_mut()
        && *end == q.len()
    {
        word.prefix = true;
    }
    parsed.terms = terms.into_iter().map(|(_, term)| term).collect();
    parsed
}

/// A query word, not a prefix (`parse` marks the one being typed).
fn word(text: String, relevance: &Relevance) -> Word {
    Word {
        prefix: false,
        typos: relevance.typos_for(&text),
        synonyms: relevance.synonyms.get(&text).cloned().unwrap_or_default(),
        text,
    }
}

/// A built query, and what its scores say about each term.
pub struct Scored {
    pub query: Box<dyn Query>,
    /// Each term's words rank (its part of the key is `rank::Layout::words` of it), in query
    /// order: what an offer's words rank says it matched.
    pub ranks: Vec<u32>,
}

/// The scored query for `parsed` (its terms matching in the text fields `on`), with its
/// exclusions; `AllQuery` (minus the exclusions) when it has no term. `searcher`
/// counts the words' offers for `frequency`.
pub fn build(
    parsed: &Parsed,
    strategy: MatchingStrategy,
    schema: &OfferSchema,
    relevance: &Relevance,
    on: &[TextField],
    searcher: &Searcher,
) -> tantivy::Result<Scored> {
    let (positive, ranks): (Box<dyn Query>, _) = if parsed.terms.is_empty() {
        (Box::new(AllQuery), Vec::new())
    } else {
        let (words, ranks) = words_query(parsed, strategy, schema, relevance, on, searcher)?;
        (Box::new(words), ranks)
    };
    if parsed.excluded_words.is_empty() && parsed.excluded_phrases.is_empty() {
        return Ok(Scored {
            query: positive,
            ranks,
        });
    }
    // Every exclusion is a variant of one clause: its documents are gathered into one
    // set (`word_scorer`), which the boolean query then skips. (Tantivy's phrase
    // scorers cannot be seeked backwards, as its union of several excluded clauses
    // would.)
    let mut excluded: Vec<(Variant, u32)> = Vec::new();
    for field in on.iter().map(|which| schema.text_field(*which)) {
        for text in &parsed.excluded_words {
            excluded.push((Variant::Term(IndexTerm::from_field_text(field, text)), 0));
        }
    }
    for &which in on.iter().filter(|which| has_positions(**which)) {
        for phrase in &parsed.excluded_phrases {
            excluded.push((
                Variant::Query(phrase_query(phrase, schema.text_field(which))),
                0,
            ));
        }
    }
    // A skipped clause adds nothing to the score: any rank does.
    let excluded = WordsQuery {
        words: vec![WordClause {
            rank: relevance.order.layout().words(1),
            variants: excluded,
        }],
        required: 1,
    };
    Ok(Scored {
        query: Box::new(BooleanQuery::new(vec![
            (Occur::Must, positive),
            (Occur::MustNot, Box::new(excluded)),
        ])),
        ranks,
    })
}

/// Whether a text field keeps word positions (phrases match in it; SKU codes do not).
pub(super) fn has_positions(which: TextField) -> bool {
    which != TextField::Codes
}

/// The offers holding `phrase` in `field`.
fn phrase_query(phrase: &Phrase, field: tantivy::schema::Field) -> Box<dyn Query> {
    let terms: Vec<(usize, IndexTerm)> = phrase
        .iter()
        .enumerate()
        .filter_map(|(at, word)| Some((at, IndexTerm::from_field_text(field, word.as_ref()?))))
        .collect();
    match terms.as_slice() {
        [(_, term)] => Box::new(TermQuery::new(term.clone(), IndexRecordOption::Basic)),
        _ => Box::new(PhraseQuery::new_with_offset(terms)),
    }
}

/// A phrase's variants: exact, in each field with positions, scored as an exact word.
fn phrase_variants(
    phrase: &Phrase,
    schema: &OfferSchema,
    relevance: &Relevance,
    on: &[TextField],
) -> Vec<(Variant, u32)> {
    on.iter()
        .filter(|which| has_positions(**which))
        .map(|&which| {
            let weight = relevance.weights.of(which);
            (
                Variant::Query(phrase_query(phrase, schema.text_field(which))),
                relevance.order.layout().term_match(0, weight, true),
            )
        })
        .collect()
}

/// The words query: each term a clause, the required ones first; and each term's
/// words rank, in query order.
fn words_query(
    parsed: &Parsed,
    strategy: MatchingStrategy,
    schema: &OfferSchema,
    relevance: &Relevance,
    on: &[TextField],
    searcher: &Searcher,
) -> tantivy::Result<(WordsQuery, Vec<u32>)> {
    let variants: Vec<Vec<(Variant, u32)>> = parsed
        .terms
        .iter()
        .map(|term| match term {
            Term::Word(word) => word_variants(word, schema, relevance, on),
            Term::Phrase(phrase) => phrase_variants(phrase, schema, relevance, on),
        })
        .collect();
    let count = parsed.terms.len();
    let is_phrase: Vec<bool> = parsed
        .terms
        .iter()
        .map(|term| matches!(term, Term::Phrase(_)))
        .collect();
    // Each term's removal group: terms of a higher group are dropped later, so they
    // weigh more; phrases are never dropped.
    let groups: Vec<usize> = match strategy {
        MatchingStrategy::All => vec![0; count],
        MatchingStrategy::Last => (0..count).map(|i| count - 1 - i).collect(),
        MatchingStrategy::Frequency => {
            let mut frequencies = Vec::with_capacity(count);
            for (term, variants) in parsed.terms.iter().zip(&variants) {
                frequencies.push(match term {
                    Term::Phrase(_) => 0,
                    Term::Word(_) => {
                        let query = WordsQuery {
                            words: vec![WordClause {
                                rank: relevance.order.layout().words(1),
                                variants: variants.clone(),
                            }],
                            required: 1,
                        };
                        match searcher.search(&query, &Count)? {
                            0 => usize::MAX,
                            n => n,
                        }
                    }
                });
            }
            // The most frequent word is dropped first: group 0.
            let mut distinct = frequencies.clone();
            distinct.sort_unstable_by(|a, b| b.cmp(a));
            distinct.dedup();
            frequencies
                .iter()
                .map(|f| distinct.iter().position(|d| d == f).unwrap_or_default())
                .collect()
        }
    };
    let top = groups.iter().copied().max().unwrap_or_default();
    let any_phrase = is_phrase.contains(&true);
    let required: Vec<bool> = (0..count)
        .map(|i| {
            strategy == MatchingStrategy::All || is_phrase[i] || (!any_phrase && groups[i] == top)
        })
        .collect();
    // A group weighs more than every lower group together, so matching a later-dropped
    // term outweighs matching all earlier-dropped ones (at most `rank::MAX_WORDS_RANK`
    // in all).
    let mut weights = vec![0u32; top + 1];
    let mut below = 0u32;
    for (group, weight) in weights.iter_mut().enumerate() {
        *weight = below + 1;
        below += *weight * groups.iter().filter(|g| **g == group).count() as u32;
    }
    let ranks: Vec<u32> = groups.iter().map(|group| weights[*group]).collect();
    let mut clauses: Vec<(bool, WordClause)> = variants
        .into_iter()
        .enumerate()
        .map(|(i, variants)| {
            (
                required[i],
                WordClause {
                    rank: relevance.order.layout().words(ranks[i]),
                    variants,
                },
            )
        })
        .collect();
    // Required terms first (`WordsQuery` requires its first `required`).
    clauses.sort_by_key(|(required, _)| !*required);
    let query = WordsQuery {
        required: required.iter().filter(|r| **r).count(),
        words: clauses.into_iter().map(|(_, clause)| clause).collect(),
    };
    Ok((query, ranks))
}

#[cfg(test)]
#[path = "terms_tests.rs"]
mod tests;
