//! Meilisearch's filter language: the expression tree, its parser (`parse`), the JSON
//! forms the API accepts (a string, or an array whose items are ANDed and whose inner
//! arrays are ORed), and the translation into a tantivy query (`compile`).
//!
//! Grammar (keywords upper case, as in Meilisearch):
//! ```text
//! expr      = or
//! or        = and ("OR" and)*
//! and       = not ("AND" not)*
//! not       = "NOT" not | "(" expr ")" | condition
//! condition = attr ("=" | "!=" | ">" | ">=" | "<" | "<=") value
//!           | attr value "TO" value
//!           | attr ["NOT"] "IN" "[" [value ("," value)* [","]] "]"
//!           | attr ["NOT"] "EXISTS"
//!           | attr "IS" ["NOT"] ("NULL" | "EMPTY")
//! value     = 'single quoted' | "double quoted" | bare-word
//! ```

mod compile;
mod parse;
#[cfg(test)]
mod tests;

use std::fmt;

pub use compile::compile;
pub use parse::{MAX_DEPTH, parse};

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Condition {
        attribute: String,
        condition: Condition,
    },
}

/// What a condition checks about an attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Compare(CompareOp, String),
    /// `attr a TO b`: `>= a AND <= b`.
    Range(String, String),
    In(Vec<String>),
    Exists,
    IsNull,
    IsEmpty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "!=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
        }
    }
}

/// A filter the user got wrong: Meilisearch-style message with the position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError(pub String);

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FilterError {}

/// The `filter` parameter as JSON: `null`, a string, or an array of strings and arrays
/// of strings. `None` when it filters nothing.
pub fn from_json(value: &serde_json::Value) -> Result<Option<Filter>, FilterError> {
    use serde_json::Value;
    match value {
        Value::Null => Ok(None),
        Value::String(text) => parse(text),
        Value::Array(items) => {
            let mut all = Vec::new();
            for item in items {
                match item {
                    Value::String(text) => all.extend(parse(text)?),
                    Value::Array(inner) => {
                        let mut any = Vec::new();
                        for alternative in inner {
                            let Value::String(text) = alternative else {
                                return Err(FilterError(format!(
                                    "Invalid value type at `.filter`: expected a string inside the inner array, but found {}: `{alternative}`.",
                                    json_kind(alternative)
                                )));
                            };
                            any.extend(parse(text)?);
                        }
                        match any.len() {
                            0 => {}
                            1 => all.push(any.pop().expect("one")),
                            _ => all.push(Filter::Or(any)),
                        }
                    }
                    other => {
                        return Err(FilterError(format!(
                            "Invalid value type at `.filter`: expected a string or an array of strings, but found {}: `{other}`.",
                            json_kind(other)
                        )));
                    }
                }
            }
            Ok(match all.len() {
                0 => None,
                1 => all.pop(),
                _ => Some(Filter::And(all)),
            })
        }
        other => Err(FilterError(format!(
            "Invalid value type at `.filter`: expected a string or an array, but found {}: `{other}`.",
            json_kind(other)
        ))),
    }
}

/// Meilisearch's wording for a JSON value's type.
pub fn json_kind(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(number) if number.is_f64() => "a number",
        Value::Number(number) if number.as_i64().is_some_and(|n| n < 0) => "a negative integer",
        Value::Number(_) => "a positive integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl fmt::Display for Filter {
    /// Prints a filter that parses back to the same tree.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::And(items) => join(f, items, " AND "),
            Filter::Or(items) => join(f, items, " OR "),
            Filter::Not(inner) => write!(f, "NOT ({inner})"),
            Filter::Condition {
                attribute,
                condition,
            } => {
                let attribute = quote(attribute);
                match condition {
                    Condition::Compare(op, value) => {
                        write!(f, "{attribute} {} {}", op.symbol(), quote(value))
                    }
                    Condition::Range(low, high) => {
                        write!(f, "{attribute} {} TO {}", quote(low), quote(high))
                    }
                    Condition::In(values) => {
                        let values: Vec<String> = values.iter().map(|value| quote(value)).collect();
                        write!(f, "{attribute} IN [{}]", values.join(", "))
                    }
                    Condition::Exists => write!(f, "{attribute} EXISTS"),
                    Condition::IsNull => write!(f, "{attribute} IS NULL"),
                    Condition::IsEmpty => write!(f, "{attribute} IS EMPTY"),
                }
            }
        }
    }
}

fn join(f: &mut fmt::Formatter<'_>, items: &[Filter], separator: &str) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        write!(f, "({item})")?;
    }
    Ok(())
}

/// A value quoted with double quotes, backslash-escaped.
fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}
