//! Phrases, exclusions and matching strategies on a small catalog, against results
//! written by hand.

use std::sync::Arc;

use serde_json::json;
use tantivy::{Index, IndexWriter};

use super::*;
use crate::search::collect::{IdsBySegment, SearchCollector};
use crate::search::document::document_from_source;
use crate::search::query::ALL_TEXT_FIELDS;
use crate::search::schema::{self, OfferSchema};

fn catalog() -> Index {
    let offers = OfferSchema::current();
    let index = Index::create_in_ram(schema::build());
    schema::register_tokenizers(&index);
    let mut writer: IndexWriter = index.writer_with_num_threads(1, 20_000_000).unwrap();
    for source in [
        json!({ "id": 1, "name": "North Face Jacket", "vendor": "Acme", "description": "warm winter coat" }),
        // The same words in the other order.
        json!({ "id": 2, "name": "Face North Jacket" }),
        // `north` and `face` in two attributes.
        json!({ "id": 3, "name": "North Jacket", "description": "face cream included" }),
        json!({ "id": 4, "name": "Red Lipstick", "description": "a matte red" }),
        json!({ "id": 5, "name": "Pink Lipstick", "description": "not reddish at all" }),
        json!({ "id": 6, "name": "Lipstick Case", "vendor": "Red Star" }),
        json!({ "id": 7, "name": "North of Wales Jacket" }),
        json!({ "id": 8, "name": "T-Shirt North", "description": "face" }),
        // The phrase in a secondary attribute; `north` and `face` in two of them.
        json!({ "id": 9, "name": "Fleece", "vendor": "North Face", "tags": ["north", "face"] }),
        json!({ "id": 10, "name": "North by Wales" }),
    ] {
        writer
            .add_document(document_from_source(&offers, &source))
            .unwrap();
    }
    writer.commit().unwrap();
    index
}

/// The ids `q` finds, best first (ties by id).
fn found(index: &Index, q: &str, strategy: MatchingStrategy) -> Vec<i64> {
    let relevance = Relevance::embedded();
    let parsed = parse(q, &relevance);
    let searcher = index.reader().unwrap().searcher();
    let query = build(
        &parsed,
        strategy,
        &OfferSchema::current(),
        &relevance,
        &ALL_TEXT_FIELDS,
        &searcher,
    )
    .unwrap()
    .query;
    let collector = SearchCollector {
        keep: 100,
        scored: !parsed.terms.is_empty(),
        order: Default::default(),
        sort: Vec::new(),
        facets: Vec::new(),
        ids: Arc::new(IdsBySegment::default()),
        deadline: None,
        distinct: None,
        threshold: None,
    };
    let collected = searcher.search(query.as_ref(), &collector).unwrap();
    collected
        .top
        .iter()
        .map(|ranked| ranked.id as i64)
        .collect()
}

#[test]
fn a_phrase_wants_its_words_in_order_in_one_attribute() {
    let index = catalog();
    let last = MatchingStrategy::Last;
    // The name (1) outweighs the vendor (9); 2 has them reversed, 3, 8 and 9's tags
    // in two attributes.
    assert_eq!(found(&index, "\"north face\"", last), [1, 9]);
    assert_eq!(found(&index, "\"North  FACE\"", last), [1, 9]);
    // Unclosed: to the end of `q`.
    assert_eq!(found(&index, "\"north face", last), [1, 9]);
    // Without quotes: both words anywhere first (the name's before the others), then
    // `north` alone.
    assert_eq!(found(&index, "north face", last), [1, 2, 3, 8, 9, 7, 10]);
    // A stop word keeps its place: one word between `north` and `wales`.
    assert_eq!(found(&index, "\"north of wales\"", last), [7, 10]);
    assert_eq!(found(&index, "\"north wales\"", last), Vec::<i64>::new());
    // A phrase is exact: no prefix, no typo.
    assert_eq!(found(&index, "\"jack\"", last), Vec::<i64>::new());
    assert_eq!(found(&index, "\"jackte\"", last), Vec::<i64>::new());
    // A hard separator splits it: `jacket` and `north`, each exactly, both required.
    assert_eq!(found(&index, "\"jacket. north\"", last), [1, 2, 3, 7]);
    // The phrase is required, the word is not: 1 matches both.
    assert_eq!(found(&index, "coat \"north face\"", last), [1, 9]);
    assert_eq!(found(&index, "\"north face\" coat", last), [1, 9]);
}

#[test]
fn an_excluded_word_or_phrase_removes_the_offers_holding_it_exactly() {
    let index = catalog();
    let last = MatchingStrategy::Last;
    assert_eq!(found(&index, "lipstick", last), [4, 5, 6]);
    // `red` in 4's name and 6's vendor; 5's `reddish` is not `red`.
    assert_eq!(found(&index, "lipstick -red", last), [5]);
    assert_eq!(found(&index, "-red lipstick", last), [5]);
    assert_eq!(found(&index, "lipstick -RED", last), [5]);
    assert_eq!(found(&index, "lipstick -\"red star\"", last), [4, 5]);
    // Alone: every other offer, unscored (id order).
    assert_eq!(found(&index, "-jacket", last), [4, 5, 6, 8, 9, 10]);
    assert_eq!(
        found(&index, "-\"north face\"", last),
        [2, 3, 4, 5, 6, 7, 8, 10]
    );
    // Not an exclusion: after a space, inside a word, alone.
    assert_eq!(found(&index, "- red", last), [4, 6, 5]);
    assert_eq!(found(&index, "t-shirt", last), [8]);
    assert_eq!(found(&index, "lipstick -", last), [4, 5, 6]);
    // `-t-shirt` excludes `t`; `shirt` is searched.
    assert_eq!(found(&index, "-t-shirt", last), Vec::<i64>::new());
    assert_eq!(found(&index, "- \"north face\"", last), [1, 9]);
}

#[test]
fn frequency_drops_the_most_frequent_words_first() {
    let index = catalog();
    // `north` is in 7 offers, `lipstick` in 3: `frequency` keeps `lipstick`, `last`
    // keeps the first word.
    assert_eq!(
        found(&index, "north lipstick", MatchingStrategy::Frequency),
        [4, 5, 6]
    );
    assert_eq!(
        found(&index, "north lipstick", MatchingStrategy::Last),
        [1, 2, 3, 7, 8, 10, 9]
    );
    assert_eq!(
        found(&index, "lipstick north", MatchingStrategy::Frequency),
        [4, 5, 6]
    );
    // Equally frequent words go together: both required, and no offer has both.
    assert_eq!(
        found(&index, "pink case", MatchingStrategy::Frequency),
        Vec::<i64>::new()
    );
    assert_eq!(found(&index, "pink case", MatchingStrategy::Last), [5]);
    // A word no offer holds counts as the most frequent: dropped first.
    assert_eq!(
        found(&index, "zzzz lipstick", MatchingStrategy::Frequency),
        [4, 5, 6]
    );
    assert_eq!(
        found(&index, "zzzz lipstick", MatchingStrategy::Last),
        Vec::<i64>::new()
    );
    // Matching the rarer word too ranks first: `wales` (2) before `jacket` (4).
    assert_eq!(
        found(&index, "jacket wales", MatchingStrategy::Frequency),
        [7, 10]
    );
    assert_eq!(
        found(&index, "jacket wales", MatchingStrategy::Last),
        [7, 1, 2, 3]
    );
}

#[test]
fn parsing_keeps_limits_stop_words_and_the_typed_prefix() {
    let relevance = Relevance::embedded();
    let parsed = parse("red \"north of\" -blue -\"big red\" shoe", &relevance);
    assert_eq!(parsed.excluded_words, ["blue"]);
    assert_eq!(
        parsed.excluded_phrases,
        [vec![Some("big".to_string()), Some("red".to_string())]]
    );
    let Term::Word(last) = parsed.terms.last().unwrap() else {
        panic!("a word last")
    };
    assert!(last.prefix, "the last word ends `q`");
    assert_eq!(
        parsed.terms[1],
        Term::Phrase(vec![Some("north".into()), None])
    );
    // Followed by an exclusion, a quote or a separator: not being typed.
    for q in ["shoe -red", "shoe \"", "shoe.", "shoe "] {
        let Term::Word(word) = &parse(q, &relevance).terms[0] else {
            panic!("a word")
        };
        assert!(!word.prefix, "{q}");
    }
    // Stop words only: searched as written.
    assert_eq!(parse("the", &relevance).terms.len(), 1);
    assert!(parse("\"the of\"", &relevance).terms.is_empty());
}
