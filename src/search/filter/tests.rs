//! The filter language under examples and properties: any input parses or fails
//! cleanly (never panics), printed filters parse back to the same tree, and the
//! compiled tantivy query selects exactly the documents a direct evaluation over the
//! JSON documents selects.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{Value, json};
use tantivy::collector::DocSetCollector;
use tantivy::{Index, IndexReader};

use super::*;
use crate::search::document::{document_from_source, keyword_text, scalars};
use crate::search::schema::{self, AttrKind, OfferSchema};

fn cond(attribute: &str, condition: Condition) -> Filter {
    Filter::Condition {
        attribute: attribute.into(),
        condition,
    }
}

#[test]
fn parses_meilisearch_examples() {
    let parsed = parse("vendor = 'Blue Fox' AND (price 10 TO 20 OR tags IN [sale, \"new\",]) AND NOT available = false")
        .unwrap()
        .unwrap();
    assert_eq!(
        parsed,
        Filter::And(vec![
            cond(
                "vendor",
                Condition::Compare(CompareOp::Eq, "Blue Fox".into())
            ),
            Filter::Or(vec![
                cond("price", Condition::Range("10".into(), "20".into())),
                cond("tags", Condition::In(vec!["sale".into(), "new".into()])),
            ]),
            Filter::Not(Box::new(cond(
                "available",
                Condition::Compare(CompareOp::Eq, "false".into())
            ))),
        ])
    );
    assert_eq!(
        parse("tags NOT IN [a] OR vendor IS NOT NULL OR category NOT EXISTS OR tags IS EMPTY")
            .unwrap()
            .unwrap(),
        Filter::Or(vec![
            Filter::Not(Box::new(cond("tags", Condition::In(vec!["a".into()])))),
            Filter::Not(Box::new(cond("vendor", Condition::IsNull))),
            Filter::Not(Box::new(cond("category", Condition::Exists))),
            cond("tags", Condition::IsEmpty),
        ])
    );
    assert_eq!(parse("   ").unwrap(), None);
    let array = from_json(&json!([["tags = a", "tags = b"], "min_price >= 5"]))
        .unwrap()
        .unwrap();
    assert_eq!(
        array.to_string(),
        "((\"tags\" = \"a\") OR (\"tags\" = \"b\")) AND (\"min_price\" >= \"5\")"
    );
}

#[test]
fn malformed_filters_say_what_and_where() {
    for bad in [
        "price >",
        "price",
        "= 3",
        "(price > 3",
        "price > 3 vendor = a",
        "tags IN [a, b",
        "vendor = 'open",
        "price 3 TO",
        "AND",
        "_geoRadius(1, 2, 3)",
        "a ! b",
        "tags IS FULL",
    ] {
        let err = parse(bad).expect_err(bad);
        assert!(
            err.0.contains('\n') || err.0.contains("geo"),
            "{bad}: {err}"
        );
    }
    let deep = format!(
        "{}a = 1{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert!(parse(&deep).unwrap_err().0.contains("depth"));
    let deep_not = format!("{}a = 1", "NOT ".repeat(10_000));
    assert!(parse(&deep_not).is_err());
    assert!(from_json(&json!([[["nested"]]])).is_err());
    assert!(from_json(&json!(3)).is_err());
}

/// Pieces that make inputs close to the grammar, so the parser's deep paths run.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "AND",
            "OR",
            "NOT",
            "TO",
            "IN",
            "EXISTS",
            "IS",
            "NULL",
            "EMPTY",
            "(",
            ")",
            "[",
            "]",
            ",",
            "=",
            "!=",
            ">",
            ">=",
            "<",
            "<=",
            "!",
            "price",
            "vendor",
            "tags",
            "'a b'",
            "\"x\\\"y\"",
            "'",
            "\"",
            "10",
            "-3.5",
            "_geoRadius",
            "é",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,4}",
    ]
}

fn leaf() -> impl Strategy<Value = Filter> {
    // Names starting with `_geo` are refused by design (tested on their own above).
    let attribute = prop_oneof![Just("price".to_string()), "[a-z_]{1,8}", ".{0,6}"]
        .prop_filter("`_geo` names are reserved", |name| {
            !name.starts_with("_geo")
        });
    let value = || prop_oneof!["[a-z0-9]{0,6}", ".{0,8}"];
    let op = prop::sample::select(vec![
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ]);
    let condition = prop_oneof![
        (op, value()).prop_map(|(op, value)| Condition::Compare(op, value)),
        (value(), value()).prop_map(|(low, high)| Condition::Range(low, high)),
        prop::collection::vec(value(), 0..4).prop_map(Condition::In),
        Just(Condition::Exists),
        Just(Condition::IsNull),
        Just(Condition::IsEmpty),
    ];
    (attribute, condition).prop_map(|(attribute, condition)| Filter::Condition {
        attribute,
        condition,
    })
}

fn tree(leaf: impl Strategy<Value = Filter> + 'static) -> impl Strategy<Value = Filter> {
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Filter::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Filter::Or),
            inner.prop_map(|filter| Filter::Not(Box::new(filter))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn any_string_parses_or_fails_cleanly(input in ".{0,120}") {
        let _ = parse(&input);
    }

    #[test]
    fn grammar_like_input_parses_or_fails_cleanly(pieces in prop::collection::vec(fragment(), 0..24)) {
        let input = pieces.join(" ");
        if let Ok(Some(filter)) = parse(&input) {
            // Whatever parsed prints back to an equivalent filter.
            prop_assert_eq!(parse(&filter.to_string()).unwrap(), Some(filter));
        }
    }

    #[test]
    fn printed_filters_parse_back_to_the_same_tree(filter in tree(leaf())) {
        prop_assert_eq!(parse(&filter.to_string()).unwrap(), Some(filter));
    }

    #[test]
    fn compiled_filters_select_what_direct_evaluation_selects(filter in tree(field_leaf())) {
        let (index, reader, schema, docs) = corpus();
        let _ = index;
        let query = compile(&filter, schema).unwrap();
        let searcher = reader.searcher();
        let found: BTreeSet<i64> = searcher
            .search(&query, &DocSetCollector)
            .unwrap()
            .into_iter()
            .map(|address| {
                let column = searcher.segment_reader(address.segment_ord).fast_fields().f64("id").unwrap();
                column.first(address.doc_id).unwrap() as i64
            })
            .collect();
        let expected: BTreeSet<i64> = docs
            .iter()
            .filter(|doc| eval(&filter, doc))
            .map(|doc| doc["id"].as_i64().unwrap())
            .collect();
        prop_assert_eq!(found, expected, "filter: {}", filter);
    }
}

/// Leaves over the corpus' attributes with values that occur in it (and some that don't).
fn field_leaf() -> impl Strategy<Value = Filter> {
    let number = prop::sample::select(vec!["0", "3", "5", "7", "10", "12.5", "-1", "x"]);
    let word = prop::sample::select(vec![
        "acme", "Blue Fox", "BLUE FOX", "sale", "new", "eco", "true", "false", "", "zzz",
    ]);
    let op = prop::sample::select(vec![
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ]);
    let numeric = (
        prop::sample::select(vec!["min_price", "merchant_id", "price", "collection_ids"]),
        op.clone(),
        number.clone(),
    )
        .prop_map(|(attribute, op, value)| cond(attribute, Condition::Compare(op, value.into())));
    let range = (
        prop::sample::select(vec!["min_price", "collection_ids"]),
        number.clone(),
        number,
    )
        .prop_map(|(attribute, low, high)| {
            cond(attribute, Condition::Range(low.into(), high.into()))
        });
    let keyword = (
        prop::sample::select(vec!["vendor", "tags", "available", "category"]),
        op,
        word.clone(),
    )
        .prop_map(|(attribute, op, value)| cond(attribute, Condition::Compare(op, value.into())));
    let set = (
        prop::sample::select(vec!["vendor", "tags"]),
        prop::collection::vec(word, 0..3),
    )
        .prop_map(|(attribute, values)| {
            cond(
                attribute,
                Condition::In(values.into_iter().map(String::from).collect()),
            )
        });
    let unary = (
        prop::sample::select(vec!["vendor", "tags", "min_price", "category"]),
        prop::sample::select(vec![
            Condition::Exists,
            Condition::IsNull,
            Condition::IsEmpty,
        ]),
    )
        .prop_map(|(attribute, condition)| cond(attribute, condition));
    prop_oneof![numeric, range, keyword, set, unary]
}

type Corpus = (Index, IndexReader, OfferSchema, Vec<Value>);

/// Sixty documents with nulls, empty arrays, multi-valued attributes and mixed case.
fn corpus() -> &'static Corpus {
    static CORPUS: OnceLock<Corpus> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let vendors = [json!("Acme"), json!("Blue Fox"), json!("blue fox"), Value::Null, json!("")];
        let tags = [json!([]), json!(["sale"]), json!(["sale", "new"]), json!(["eco", "NEW"])];
        let docs: Vec<Value> = (0..60i64)
            .map(|i| {
                json!({
                    "id": i,
                    "merchant_id": 1 + i % 3,
                    "name": format!("offer {i}"),
                    "vendor": vendors[(i % 5) as usize],
                    "tags": tags[(i % 4) as usize],
                    "category": if i % 7 == 0 { Value::Null } else { json!(format!("cat{}", i % 2)) },
                    "collection_ids": if i % 6 == 0 { json!([]) } else { json!([i % 4, 10 + i % 3]) },
                    "min_price": if i % 9 == 0 { Value::Null } else { json!((i * 7) % 13) },
                    "available": if i % 8 == 0 { Value::Null } else { json!(i % 2 == 0) },
                })
            })
            .collect();
        let index = Index::create_in_ram(schema::build());
        schema::register_tokenizers(&index);
        let schema = OfferSchema::resolve(&index.schema()).unwrap();
        let mut writer = index.writer_with_num_threads(1, 20_000_000).unwrap();
        for doc in &docs {
            writer.add_document(document_from_source(&schema, doc)).unwrap();
        }
        writer.commit().unwrap();
        let reader = index.reader().unwrap();
        (index, reader, schema, docs)
    })
}

/// The filter evaluated directly on a JSON document: the reference the index must match.
fn eval(filter: &Filter, doc: &Value) -> bool {
    match filter {
        Filter::And(items) => items.iter().all(|item| eval(item, doc)),
        Filter::Or(items) => items.iter().any(|item| eval(item, doc)),
        Filter::Not(inner) => !eval(inner, doc),
        Filter::Condition {
            attribute,
            condition,
        } => {
            let name = schema::canonical(attribute);
            let kind = schema::FILTERABLE
                .iter()
                .find(|(attr, _)| *attr == name)
                .map(|(_, kind)| *kind)
                .unwrap();
            let value = doc.get(name).unwrap_or(&Value::Null);
            let values = scalars(value);
            let number = |text: &str| compile::parse_number(text);
            let equals = |target: &str| match kind {
                AttrKind::Number => {
                    number(target).is_some_and(|n| values.iter().any(|v| v.as_f64() == Some(n)))
                }
                AttrKind::Keyword => values.iter().any(|v| {
                    keyword_text(v).is_some_and(|text| text.to_lowercase() == target.to_lowercase())
                }),
            };
            let compare = |target: &str, keep: &dyn Fn(std::cmp::Ordering) -> bool| match kind {
                AttrKind::Number => number(target).is_some_and(|n| {
                    values
                        .iter()
                        .filter_map(|v| v.as_f64())
                        .any(|v| v.partial_cmp(&n).is_some_and(keep))
                }),
                AttrKind::Keyword => values
                    .iter()
                    .filter_map(|v| keyword_text(v))
                    .any(|text| keep(text.to_lowercase().cmp(&target.to_lowercase()))),
            };
            use std::cmp::Ordering::*;
            match condition {
                Condition::Exists => true,
                Condition::IsNull => value.is_null(),
                Condition::IsEmpty => {
                    value.as_array().is_some_and(Vec::is_empty) || value.as_str() == Some("")
                }
                Condition::In(targets) => targets.iter().any(|target| equals(target)),
                Condition::Compare(CompareOp::Eq, target) => equals(target),
                Condition::Compare(CompareOp::Ne, target) => !equals(target),
                Condition::Compare(CompareOp::Gt, target) => compare(target, &|o| o == Greater),
                Condition::Compare(CompareOp::Ge, target) => compare(target, &|o| o != Less),
                Condition::Compare(CompareOp::Lt, target) => compare(target, &|o| o == Less),
                Condition::Compare(CompareOp::Le, target) => compare(target, &|o| o != Greater),
                Condition::Range(low, high) => match kind {
                    AttrKind::Number => match (number(low), number(high)) {
                        (Some(low), Some(high)) => values
                            .iter()
                            .filter_map(|v| v.as_f64())
                            .any(|v| v >= low && v <= high),
                        _ => false,
                    },
                    AttrKind::Keyword => {
                        values.iter().filter_map(|v| keyword_text(v)).any(|text| {
                            let text = text.to_lowercase();
                            text >= low.to_lowercase() && text <= high.to_lowercase()
                        })
                    }
                },
            }
        }
    }
}
