//! From a [`Filter`] to a tantivy query over the offer schema.
//!
//! Numbers compare as `f64` (terms and fast-field ranges); strings and booleans compare
//! case-insensitively as whole values (keyword terms; `<`/`>` are lexicographic). A
//! value of the wrong kind (a word against a number) matches nothing, as in
//! Meilisearch. `NOT x` is everything but `x`, so `tags != a` also keeps offers with no
//! tags. Every attribute of a hit document exists (see `document`), so `EXISTS` holds
//! for any known attribute.

use std::ops::Bound;

use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, InvertedIndexRangeQuery, Occur, Query, RangeQuery,
    TermQuery,
};
use tantivy::query::{EnableScoring, Explanation, Scorer, Weight};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocId, DocSet, Score, SegmentReader, Term};

use super::{CompareOp, Condition, Filter, FilterError};
use crate::search::schema::{self, AttrKind, OfferSchema};

/// Compiles `filter`; an attribute that is not filterable is an error.
pub fn compile(filter: &Filter, schema: &OfferSchema) -> Result<Box<dyn Query>, FilterError> {
    Ok(match filter {
        Filter::And(items) => Box::new(BooleanQuery::new(
            items
                .iter()
                .map(|item| compile(item, schema).map(|query| (Occur::Must, query)))
                .collect::<Result<_, _>>()?,
        )),
        Filter::Or(items) => Box::new(BooleanQuery::new(
            items
                .iter()
                .map(|item| compile(item, schema).map(|query| (Occur::Should, query)))
                .collect::<Result<_, _>>()?,
        )),
        Filter::Not(inner) => not(compile(inner, schema)?),
        Filter::Condition {
            attribute,
            condition,
        } => {
            let Some((name, kind, field)) = schema.attribute(attribute) else {
                return Err(FilterError(format!(
                    "Attribute `{attribute}` is not filterable. Available filterable attributes are: `{}`.",
                    schema::filterable_names().join("`, `")
                )));
            };
            condition_query(schema, name, kind, field, condition)
        }
    })
}

fn not(query: Box<dyn Query>) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(vec![
        (Occur::Must, Box::new(AllQuery) as Box<dyn Query>),
        (Occur::MustNot, query),
    ]))
}

fn condition_query(
    schema: &OfferSchema,
    name: &str,
    kind: AttrKind,
    field: Field,
    condition: &Condition,
) -> Box<dyn Query> {
    match condition {
        Condition::Exists => Box::new(AllQuery),
        Condition::IsNull => term(Term::from_field_text(schema.nulls, name)),
        Condition::IsEmpty => term(Term::from_field_text(schema.empties, name)),
        Condition::In(values) => Box::new(BooleanQuery::new(
            values
                .iter()
                .map(|value| (Occur::Should, equals(kind, field, value)))
                .collect(),
        )),
        Condition::Compare(CompareOp::Eq, value) => equals(kind, field, value),
        Condition::Compare(CompareOp::Ne, value) => not(equals(kind, field, value)),
        Condition::Compare(op, value) => {
            let bound = |value: &str| -> Option<Term> { bound_term(kind, field, value) };
            let Some(term) = bound(value) else {
                return Box::new(EmptyQuery);
            };
            let (lower, upper) = match op {
                CompareOp::Gt => (Bound::Excluded(term), Bound::Unbounded),
                CompareOp::Ge => (Bound::Included(term), Bound::Unbounded),
                CompareOp::Lt => (Bound::Unbounded, Bound::Excluded(term)),
                CompareOp::Le => (Bound::Unbounded, Bound::Included(term)),
                CompareOp::Eq | CompareOp::Ne => unreachable!("handled above"),
            };
            range(kind, lower, upper)
        }
        Condition::Range(low, high) => {
            match (bound_term(kind, field, low), bound_term(kind, field, high)) {
                (Some(low), Some(high)) => range(kind, Bound::Included(low), Bound::Included(high)),
                _ => Box::new(EmptyQuery),
            }
        }
    }
}

fn term(term: Term) -> Box<dyn Query> {
    Box::new(TermQuery::new(term, IndexRecordOption::Basic))
}

/// `field = value`: a term of the right kind, or nothing for a value of the wrong kind.
fn equals(kind: AttrKind, field: Field, value: &str) -> Box<dyn Query> {
    match bound_term(kind, field, value) {
        Some(found) => term(found),
        None => Box::new(EmptyQuery),
    }
}

fn bound_term(kind: AttrKind, field: Field, value: &str) -> Option<Term> {
    match kind {
        AttrKind::Number => parse_number(value).map(|number| Term::from_field_f64(field, number)),
        AttrKind::Keyword => Some(Term::from_field_text(
            field,
            &schema::normalize_keyword(value),
        )),
    }
}

fn range(kind: AttrKind, lower: Bound<Term>, upper: Bound<Term>) -> Box<dyn Query> {
    match kind {
        AttrKind::Number => Box::new(ForwardOnly(Box::new(RangeQuery::new(lower, upper)))),
        // Keyword fields are also fast fields holding the original spelling; compare
        // the lowercased indexed terms instead.
        AttrKind::Keyword => Box::new(InvertedIndexRangeQuery::new(lower, upper)),
    }
}

/// A filter value as a number: finite decimal notation only.
pub fn parse_number(value: &str) -> Option<f64> {
    let trimmed = value.trim();
    if trimmed.is_empty()
        || trimmed
            .chars()
            .any(|c| c.is_alphabetic() && c != 'e' && c != 'E')
    {
        return None;
    }
    trimmed
        .parse::<f64>()
        .ok()
        .filter(|number| number.is_finite())
}

/// Wraps a query so its scorers only ever seek forward from where they are.
///
/// tantivy 0.27's fast-field range doc set subtracts the previous seek target from the
/// next one; an exclusion (`NOT`, `!=`) can seek it backwards (`Exclude::new` through
/// `seek_danger`), which overflows (a panic in debug builds, a needless re-fetch in
/// release). Found by the filter property test; this guard answers backward seeks from
/// the current position and never calls `seek_danger` on the inner doc set.
#[derive(Debug)]
struct ForwardOnly(Box<dyn Query>);

impl Clone for ForwardOnly {
    fn clone(&self) -> Self {
        ForwardOnly(self.0.box_clone())
    }
}

impl Query for ForwardOnly {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(ForwardOnlyWeight(self.0.weight(scoring)?)))
    }
}

struct ForwardOnlyWeight(Box<dyn Weight>);

impl Weight for ForwardOnlyWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        Ok(Box::new(ForwardOnlyScorer(self.0.scorer(reader, boost)?)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        self.0.explain(reader, doc)
    }
}

struct ForwardOnlyScorer(Box<dyn Scorer>);

impl DocSet for ForwardOnlyScorer {
    fn advance(&mut self) -> DocId {
        self.0.advance()
    }

    fn seek(&mut self, target: DocId) -> DocId {
        let doc = self.0.doc();
        if doc >= target {
            doc
        } else {
            self.0.seek(target)
        }
    }

    fn doc(&self) -> DocId {
        self.0.doc()
    }

    fn size_hint(&self) -> u32 {
        self.0.size_hint()
    }
}

impl Scorer for ForwardOnlyScorer {
    fn score(&mut self) -> Score {
        self.0.score()
    }
}
