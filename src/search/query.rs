//! From `q` to a scored tantivy query, imitating Meilisearch's ranking rules with
//! constant scores so that the order is deterministic and explainable (each rule's
//! part of the score is `rank`'s). In Meilisearch's default order, which
//! `index/relevance.toml` may change (`rules`):
//!
//! 1. **words** (`matchingStrategy`): with `last` (the default) an offer must match the
//!    first word and each further word adds a weight that halves from word to word, so
//!    offers matching all words come first, then those missing the last one, and so
//!    on; with `all` every word must match; `frequency` drops the most frequent words
//!    first. Phrases, exclusions and the strategies over words and phrases together
//!    are `terms`'s; [`build`] here is the words-only form of the same query.
//! 2. **typo**: fewer typos rank first; an exact word, a synonym or a plain prefix has
//!    none. Words of 5+ characters allow one typo, 9+ two (Meilisearch's defaults,
//!    `index/relevance.toml`); the last word also matches as a prefix (search as you
//!    type) unless the query ends with a space. One automaton per field and word covers
//!    prefix and typo matches, counted at the word's allowance.
//! 3. **proximity**: the query's words close together and in order rank first
//!    (`proximity`, computed for the best candidates only).
//! 4. **attribute**: a match in the name beats vendor, seller, tags, category,
//!    collections and SKU names, which beat the description.
//! 5. **sort**, then 6. **exactness**: more words matched as typed (not through a
//!    prefix, a typo or a synonym) rank first.
//!
//! Each word scores its best variant (exact, prefix, typos, synonyms) in any text
//! field, so a word counts once, at its best match (`word_scorer` computes it). Stop
//! words are dropped from the query unless it has nothing else. The last ties are
//! broken by offer id (see `collect`).

use std::sync::Arc;

use tantivy::Term;
use tantivy::query::{AllQuery, BooleanQuery, DfaWrapper, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy_fst::Automaton;

use super::relevance::Relevance;
use super::schema::{OfferSchema, TextField};
use super::word_scorer::{Variant, WordClause, WordsQuery};

/// Most query words considered (Meilisearch's limit).
pub const MAX_WORDS: usize = 10;
/// Most tokens of `q` looked at (Meilisearch's `MAX_TOKEN_COUNT`).
pub const MAX_TOKENS: usize = 1000;

/// `matchingStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchingStrategy {
    #[default]
    Last,
    All,
    /// The most frequent words are dropped first (see `terms`).
    Frequency,
}

/// One analyzed query word.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub text: String,
    /// Matches as a prefix too (the last word, while typing).
    pub prefix: bool,
    /// Typos allowed (0, 1 or 2).
    pub typos: u8,
    /// Alternatives from the synonyms file, each a list of words.
    pub synonyms: Vec<Vec<String>>,
}

/// The words of `q` that take part in matching: its first [`MAX_WORDS`] words that are
/// not stop words (stop words only when `q` has nothing else), as Meilisearch does. A
/// longer `q` is searched with those words, never refused, and only its first
/// [`MAX_TOKENS`] tokens are looked at, so its length costs nothing more.
pub fn analyze(q: &str, relevance: &Relevance) -> Vec<Word> {
    let mut analyzer = super::schema::text_analyzer();
    let mut stream = analyzer.token_stream(q);
    let (mut kept, mut stops) = (Vec::new(), Vec::new());
    let mut cut = false;
    let mut seen = 0;
    while stream.advance() {
        if kept.len() == MAX_WORDS || seen == MAX_TOKENS {
            cut = true;
            break;
        }
        seen += 1;
        let text = &stream.token().text;
        if !relevance.stop_words.contains(text.as_str()) {
            kept.push(text.clone());
        } else if stops.len() < MAX_WORDS {
            stops.push(text.clone());
        }
    }
    let tokens = if kept.is_empty() { stops } else { kept };
    // Only the query's real last word is being typed: a cut query's last kept word is not.
    let typing = !cut && !q.ends_with(char::is_whitespace);
    let count = tokens.len();
    tokens
        .into_iter()
        .enumerate()
        .map(|(i, text)| Word {
            prefix: typing && i + 1 == count,
            typos: relevance.typos_for(&text),
            synonyms: relevance.synonyms.get(&text).cloned().unwrap_or_default(),
            text,
        })
        .collect()
}

/// The scored query for `words`; `AllQuery` when there are none (placeholder search).
pub fn build(
    words: &[Word],
    strategy: MatchingStrategy,
    schema: &OfferSchema,
    relevance: &Relevance,
) -> Box<dyn Query> {
    build_on(words, strategy, schema, relevance, &ALL_TEXT_FIELDS)
}

/// Every text field, from most to least important.
pub const ALL_TEXT_FIELDS: [TextField; 4] = [
    TextField::Name,
    TextField::Secondary,
    TextField::Description,
    TextField::Codes,
];

/// [`build`], the words matching only in the text fields `on` (`attributesToSearchOn`).
pub fn build_on(
    words: &[Word],
    strategy: MatchingStrategy,
    schema: &OfferSchema,
    relevance: &Relevance,
    on: &[TextField],
) -> Box<dyn Query> {
    if words.is_empty() {
        return Box::new(AllQuery);
    }
    let count = words.len();
    let clauses = words
        .iter()
        .enumerate()
        .map(|(i, word)| WordClause {
            rank: word_rank(i, count, strategy, relevance),
            variants: word_variants(word, schema, relevance, on),
        })
        .collect();
    Box::new(WordsQuery {
        words: clauses,
        required: match strategy {
            MatchingStrategy::Last | MatchingStrategy::Frequency => 1,
            MatchingStrategy::All => count,
        },
    })
}

/// What matching the `i`th of `count` words adds: with `last`, halving from word to
/// word, so matching an earlier word outweighs matching all later ones.
fn word_rank(i: usize, count: usize, strategy: MatchingStrategy, relevance: &Relevance) -> u32 {
    relevance.order.layout().words(match strategy {
        MatchingStrategy::Last | MatchingStrategy::Frequency => 1 << (count - 1 - i),
        MatchingStrategy::All => 1,
    })
}

/// A word's variants in every text field, each with what a match through it adds to the
/// word's rank (its typo, attribute and exactness parts, see `rank`); the word scores
/// its best.
pub(super) fn word_variants(
    word: &Word,
    schema: &OfferSchema,
    relevance: &Relevance,
    on: &[TextField],
) -> Vec<(Variant, u32)> {
    let fields = ALL_TEXT_FIELDS
        .into_iter()
        .filter(|which| on.contains(which))
        .map(|which| (which, relevance.weights.of(which)));
    let layout = relevance.order.layout();
    let mut variants: Vec<(Variant, u32)> = Vec::new();
    // The word's prefix-and-typo automaton, built once and walked in each field.
    let loose = (word.prefix || word.typos > 0)
        .then(|| loose_automaton(word, schema))
        .flatten();
    for (which, weight) in fields {
        let field = schema.text_field(which);
        variants.push((
            Variant::Term(Term::from_field_text(field, &word.text)),
            layout.term_match(0, weight, true),
        ));
        if which == TextField::Codes {
            continue;
        }
        // One automaton covers the prefix and typo matches (fewer, wider variants are
        // much cheaper than one per typo count): a plain prefix has no typo but is not
        // exact; with typos allowed, prefix and typo matches share the typo count of
        // the word's allowance.
        if let Some(automaton) = &loose {
            variants.push((
                Variant::Terms {
                    field,
                    automaton: automaton.clone(),
                },
                layout.term_match(word.typos, weight, false),
            ));
        }
        for alternative in &word.synonyms {
            let variant = match alternative.as_slice() {
                [synonym] => Variant::Term(Term::from_field_text(field, synonym)),
                _ => {
                    let all: Vec<(Occur, Box<dyn Query>)> = alternative
                        .iter()
                        .map(|synonym| {
                            let query: Box<dyn Query> = Box::new(TermQuery::new(
                                Term::from_field_text(field, synonym),
                                IndexRecordOption::Basic,
                            ));
                            (Occur::Must, query)
                        })
                        .collect();
                    Variant::Query(Box::new(BooleanQuery::new(all)))
                }
            };
            variants.push((variant, layout.term_match(0, weight, false)));
        }
    }
    variants
}

/// The automaton of a word's prefix and typo matches. `None` only for more typos than
/// tantivy's automata allow (2), which `Relevance::typos_for` never gives.
pub(super) fn loose_automaton(word: &Word, schema: &OfferSchema) -> Option<ExceptWord> {
    // The term only carries the word's text; the automaton is walked in any field.
    let term = Term::from_field_text(schema.text_field(TextField::Name), &word.text);
    let fuzzy = if word.prefix {
        FuzzyTermQuery::new_prefix(term, word.typos, true)
    } else {
        FuzzyTermQuery::new(term, word.typos, true)
    };
    Some(ExceptWord {
        inner: Arc::new(fuzzy.automaton().ok()?),
        word: word.text.as_bytes().into(),
    })
}

/// An automaton accepting what `inner` accepts except `word` itself: a word's prefix and
/// typo matches *without* the word (the exact variant has it), so the two sets of
/// postings barely overlap and a word's postings are read about once instead of twice.
/// Cloning shares the automaton: it is built once per word and walked in every field
/// and segment.
#[derive(Clone)]
pub struct ExceptWord {
    inner: Arc<DfaWrapper>,
    word: Arc<[u8]>,
}

impl std::fmt::Debug for ExceptWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExceptWord")
            .field("word", &String::from_utf8_lossy(&self.word))
            .finish()
    }
}

impl Automaton for ExceptWord {
    /// The inner state, and how many bytes of `word` were followed (`None`: diverged).
    type State = (u32, Option<usize>);

    fn start(&self) -> Self::State {
        (self.inner.start(), Some(0))
    }

    fn is_match(&self, state: &Self::State) -> bool {
        self.inner.is_match(&state.0) && state.1 != Some(self.word.len())
    }

    fn can_match(&self, state: &Self::State) -> bool {
        self.inner.can_match(&state.0)
    }

    fn accept(&self, state: &Self::State, byte: u8) -> Self::State {
        let followed = match state.1 {
            Some(at) if self.word.get(at) == Some(&byte) => Some(at + 1),
            _ => None,
        };
        (self.inner.accept(&state.0, byte), followed)
    }
}

/// Whether the indexed word `token` matches `word` (exactly, as a prefix, within its
/// typos, or as a one-word synonym): the same rule as the query, for highlighting.
pub fn token_matches(token: &str, word: &Word) -> bool {
    if token == word.text {
        return true;
    }
    if word.prefix && token.starts_with(&word.text) {
        return true;
    }
    if word
        .synonyms
        .iter()
        .any(|alt| alt.len() == 1 && alt[0] == token)
    {
        return true;
    }
    if word.typos == 0 {
        return false;
    }
    let candidate: Vec<char> = token.chars().collect();
    let target: Vec<char> = word.text.chars().collect();
    let typos = word.typos as usize;
    if word.prefix {
        // Some prefix of the token within the distance.
        let low = target.len().saturating_sub(typos);
        let high = (target.len() + typos).min(candidate.len());
        (low..=high)
            .any(|len| len <= candidate.len() && distance(&candidate[..len], &target) <= typos)
    } else {
        distance(&candidate, &target) <= typos
    }
}

/// Damerau-Levenshtein distance (optimal string alignment), as tantivy's automata count.
fn distance(a: &[char], b: &[char]) -> usize {
    let (n, m) = (a.len(), b.len());
    if n.abs_diff(m) > 2 {
        return 3;
    }
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[n][m]
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::query::{AutomatonWeight, EnableScoring, Weight};
    use tantivy::schema::Field;

    #[test]
    fn the_last_word_is_a_prefix_and_stop_words_go() {
        let relevance = Relevance::embedded();
        let words = analyze("the red runn", &relevance);
        let texts: Vec<&str> = words.iter().map(|word| word.text.as_str()).collect();
        assert_eq!(texts, ["red", "runn"]);
        assert!(words[1].prefix && !words[0].prefix);
        assert!(!analyze("red ", &relevance)[0].prefix);
        assert_eq!(
            analyze("the", &relevance)[0].text,
            "the",
            "only stop words: kept"
        );
    }

    #[test]
    fn a_long_query_keeps_its_first_ten_words_and_no_prefix() {
        let relevance = Relevance::embedded();
        let q: Vec<String> = (0..5000).map(|i| format!("w{i}")).collect();
        let q = format!("the {}", q.join(" the "));
        let words = analyze(&q, &relevance);
        let texts: Vec<&str> = words.iter().map(|word| word.text.as_str()).collect();
        assert_eq!(
            texts,
            ["w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9"],
            "stop words do not count towards the ten"
        );
        assert!(
            words.iter().all(|word| !word.prefix),
            "the tenth word is not the one being typed"
        );
        let exactly_ten = analyze("a1 b2 c3 d4 e5 f6 g7 h8 i9 j10", &relevance);
        assert!(exactly_ten[9].prefix, "ten words: the last is still typed");
    }

    /// The reference formulation of the keys `word_scorer` computes: per word a
    /// disjunction-max of constant-score variants, words combined by a boolean query
    /// (first word required with `last`, every word with `all`). Its scores are the
    /// keys as plain numbers (exact as `f32` below 2^24: up to six words).
    fn reference(
        words: &[Word],
        strategy: MatchingStrategy,
        schema: &OfferSchema,
        relevance: &Relevance,
    ) -> Box<dyn Query> {
        let count = words.len();
        let clauses = words
            .iter()
            .enumerate()
            .map(|(i, word)| {
                let rank = word_rank(i, count, strategy, relevance);
                let variants: Vec<Box<dyn Query>> =
                    word_variants(word, schema, relevance, &ALL_TEXT_FIELDS)
                        .into_iter()
                        .map(|(variant, score)| -> Box<dyn Query> {
                            let query: Box<dyn Query> = match variant {
                                Variant::Term(term) => {
                                    Box::new(TermQuery::new(term, IndexRecordOption::Basic))
                                }
                                Variant::Terms { field, automaton } => {
                                    Box::new(LooseTermQuery { field, automaton })
                                }
                                Variant::Query(query) => query,
                            };
                            let key = (rank + score) as f32;
                            Box::new(tantivy::query::ConstScoreQuery::new(query, key))
                        })
                        .collect();
                let occur = if i == 0 || strategy == MatchingStrategy::All {
                    Occur::Must
                } else {
                    Occur::Should
                };
                let word: Box<dyn Query> =
                    Box::new(tantivy::query::DisjunctionMaxQuery::new(variants));
                (occur, word)
            })
            .collect();
        Box::new(BooleanQuery::new(clauses))
    }

    /// The terms of `field` an automaton accepts, as tantivy's own query.
    #[derive(Debug, Clone)]
    struct LooseTermQuery {
        field: Field,
        automaton: ExceptWord,
    }

    impl Query for LooseTermQuery {
        fn weight(&self, _scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
            Ok(Box::new(AutomatonWeight::new(
                self.field,
                self.automaton.clone(),
            )))
        }
    }

    #[test]
    fn dense_word_scoring_equals_the_boolean_formulation() {
        use tantivy::collector::TopDocs;
        use tantivy::{Index, IndexWriter};

        const VOCABULARY: [&str; 14] = [
            "black",
            "blacks",
            "block",
            "leather",
            "lather",
            "jacket",
            "jackets",
            "tee",
            "tshirt",
            "shirt",
            "cotton",
            "coton",
            "sweatshirt",
            "sweatshirts",
        ];
        let schema = OfferSchema::current();
        let index = Index::create_in_ram(super::super::schema::build());
        super::super::schema::register_tokenizers(&index);
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 20_000_000).unwrap();
        let mut seed = 7u64;
        let mut pick = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        for id in 0..600 {
            let mut phrase = |words: usize| {
                (0..words)
                    .map(|_| VOCABULARY[pick(VOCABULARY.len())])
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let (name, description, vendor) = (phrase(2), phrase(4), phrase(1));
            let source = serde_json::json!({
                "id": id, "name": name, "description": description, "vendor": vendor,
            });
            writer
                .add_document(super::super::document::document_from_source(
                    &schema, &source,
                ))
                .unwrap();
            // Several segments.
            if id % 200 == 199 {
                writer.commit().unwrap();
            }
        }
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        let relevance = Relevance::embedded();
        let scored = |query: &dyn Query, as_key: fn(f32) -> u32| {
            let mut hits = searcher
                .search(query, &TopDocs::with_limit(10_000).order_by_score())
                .unwrap()
                .into_iter()
                .map(|(score, address)| (address, as_key(score)))
                .collect::<Vec<_>>();
            hits.sort_by_key(|(address, _)| *address);
            hits
        };
        for q in [
            "black",
            "blakc",
            "jack",
            "leather jacket",
            "black leather jacket",
            "tee",
            "coton tee",
            "sweatshirts block",
            "jackets lather blacks shirt",
        ] {
            for strategy in [MatchingStrategy::Last, MatchingStrategy::All] {
                let words = analyze(q, &relevance);
                let dense = scored(
                    build(&words, strategy, &schema, &relevance).as_ref(),
                    |score| crate::search::rank::Key::of(score).0,
                );
                let expected = scored(
                    reference(&words, strategy, &schema, &relevance).as_ref(),
                    |score| score as u32,
                );
                assert!(!expected.is_empty(), "`{q}` matches something");
                assert_eq!(dense, expected, "`{q}` with {strategy:?}");
            }
        }
    }

    #[test]
    fn highlighting_uses_the_query_rules() {
        let relevance = Relevance::embedded();
        let word = &analyze("sneakr", &relevance)[0];
        assert!(token_matches("sneaker", word));
        assert!(token_matches("sneakers", word), "prefix with one typo");
        assert!(!token_matches("snow", word));
        let word = &analyze("tee ", &relevance)[0];
        assert!(token_matches("tshirt", word));
    }
}
