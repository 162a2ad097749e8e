//! Slow statements in the log: one line per statement slower than
//! `database.slow_statement_ms`, with a short name, where it ran and how long it took,
//! never its SQL text.
//!
//! sqlx reports a slow statement itself, as a warn event on target `sqlx::query` whose
//! fields carry the whole statement: multi-line SQL in the middle of an operator's log.
//! The log subscriber keeps those events out of the output ([`is_sqlx_slow`]) and hands
//! them to [`SlowStatements`], which names the statement ([`statement_name`]) and logs
//! it again as `slow statement` on target `catalog_mirror::db`. That second event is
//! sent from a thread of its own: emitting it from inside the subscriber's callback for
//! the first would re-enter the subscriber while it is dispatching.

use std::fmt::Write as _;
use std::sync::mpsc;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

const SQLX_TARGET: &str = "sqlx::query";
/// Slow statements waiting to be logged; beyond this, more are dropped (a database
/// so slow that a thousand statements queue up is reported by much else).
const QUEUE: usize = 1024;
/// Longest name logged.
const MAX_NAME: usize = 64;

/// Whether `meta` is sqlx's slow-statement event: the daemon's pool logs every
/// statement at trace and slow ones at warn (`crate::db::pool`), and connections made
/// with sqlx's defaults (creating the database) log only slow ones at warn.
pub fn is_sqlx_slow(meta: &tracing::Metadata<'_>) -> bool {
    meta.target() == SQLX_TARGET && *meta.level() <= tracing::Level::WARN
}

/// Whether the log output shows `meta`: sqlx's statement events only at trace, where
/// the daemon's pool logs them (`crate::db::pool`). The slow ones go to
/// [`SlowStatements`] instead, and the debug-level ones of connections made with sqlx's
/// defaults (checking that the database exists) are dropped: SQL is for trace only.
pub fn shown_as_is(meta: &tracing::Metadata<'_>) -> bool {
    meta.target() != SQLX_TARGET || *meta.level() == tracing::Level::TRACE
}

/// What [`SlowStatements`] receives: sqlx's slow-statement events, and the spans at info
/// and above, so it can say where a statement ran (a layer sees only the spans its own
/// filter lets through).
pub fn received(meta: &tracing::Metadata<'_>) -> bool {
    is_sqlx_slow(meta) || (meta.is_span() && *meta.level() <= tracing::Level::INFO)
}

/// What is logged about one slow statement.
#[derive(Debug, Default)]
struct Slow {
    statement: String,
    summary: String,
    within: String,
    elapsed_secs: f64,
    rows_returned: u64,
    rows_affected: u64,
    threshold: String,
}

impl Visit for Slow {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "db.statement" => self.statement = value.to_string(),
            "summary" => self.summary = value.to_string(),
            _ => {}
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = value;
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "rows_returned" => self.rows_returned = value,
            "rows_affected" => self.rows_affected = value,
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        match field.name() {
            "slow_threshold" => self.threshold = text,
            // Strings recorded through Debug arrive quoted.
            "db.statement" | "summary" => self.record_str(field, text.trim_matches('"')),
            _ => {}
        }
    }
}

/// The layer that receives sqlx's slow-statement events (install it with the filter
/// [`received`]).
pub struct SlowStatements {
    queue: mpsc::SyncSender<Slow>,
}

impl SlowStatements {
    /// The layer and the thread that logs what it receives; the thread ends when the
    /// layer is dropped (e.g. when another subscriber was installed first).
    pub fn new() -> Self {
        let (queue, received) = mpsc::sync_channel::<Slow>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("slow-statements".into())
            .spawn(move || {
                for slow in received {
                    let sql = if slow.statement.trim().is_empty() {
                        slow.summary.as_str()
                    } else {
                        slow.statement.as_str()
                    };
                    tracing::warn!(
                        target: "catalog_mirror::db",
                        statement = %statement_name(sql),
                        within = %slow.within,
                        elapsed_ms = (slow.elapsed_secs * 1000.0).round() as u64,
                        threshold = %slow.threshold,
                        rows_returned = slow.rows_returned,
                        rows_affected = slow.rows_affected,
                        "slow statement"
                    );
                }
            });
        if let Err(err) = spawned {
            eprintln!("cannot start the slow-statement logger: {err}");
        }
        Self { queue }
    }
}

impl Default for SlowStatements {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for SlowStatements
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if !is_sqlx_slow(event.metadata()) {
            return;
        }
        let mut slow = Slow::default();
        event.record(&mut slow);
        slow.within = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .from_root()
                    .map(|span| span.name())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_default();
        if slow.within.is_empty() {
            slow.within = "-".into();
        }
        // Full queue or no logger thread: the statement goes unreported rather than
        // blocking the query that just finished.
        let _ = self.queue.try_send(slow);
    }
}

/// A short name for a statement, for logs: a leading `-- name: x` comment when there
/// is one, else the verb and the first table it reads or writes (`select offers`,
/// `insert staged_offers`, `with collection_offers`), in lower case.
pub fn statement_name(sql: &str) -> String {
    let sql = sql.trim_start();
    if let Some(rest) = sql.strip_prefix("-- name:") {
        let name = rest.lines().next().unwrap_or_default().trim();
        if !name.is_empty() {
            return cut(name.to_string());
        }
    }
    let text = strip_comments(sql);
    let tokens = tokens(&text);
    let Some(verb) = tokens.first() else {
        return "statement".into();
    };
    let verb = verb.to_ascii_lowercase();
    let table = table_of(&verb, &tokens);
    cut(match table {
        Some(table) => format!("{verb} {}", table.to_ascii_lowercase()),
        None => verb,
    })
}

fn cut(mut name: String) -> String {
    if name.len() > MAX_NAME {
        let mut end = MAX_NAME;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    name
}

/// The text without `-- ...` and `/* ... */` comments (string literals are left as
/// they are: a name is wanted, not a parse).
fn strip_comments(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.find('\n').map(|i| &after[i..]).unwrap_or("");
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map(|i| &after[i + 2..]).unwrap_or("");
            out.push(' ');
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Identifiers (letters, digits, `_`, `.`, `"`) and single punctuation characters.
fn tokens(sql: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut start = None;
    for (i, c) in sql.char_indices() {
        let word = c.is_alphanumeric() || matches!(c, '_' | '.' | '"' | '$');
        match (word, start) {
            (true, None) => start = Some(i),
            (true, Some(_)) => {}
            (false, Some(s)) => {
                tokens.push(&sql[s..i]);
                start = None;
            }
            (false, None) => {}
        }
        if !word && !c.is_whitespace() {
            tokens.push(&sql[i..i + c.len_utf8()]);
        }
    }
    if let Some(s) = start {
        tokens.push(&sql[s..]);
    }
    tokens
}

/// The table a statement with `verb` is about: the word after the keyword that
/// introduces it, skipping `FROM (` (a subquery, or `EXTRACT(x FROM ...)`).
fn table_of<'a>(verb: &str, tokens: &[&'a str]) -> Option<&'a str> {
    let keywords: &[&str] = match verb {
        "insert" => &["into"],
        "update" => &["update"],
        "copy" => &["copy"],
        "create" | "drop" | "alter" | "truncate" => &["table", "database", "index", "truncate"],
        _ => &["from"],
    };
    let is_name = |token: &str| {
        token
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_' || c == '"')
    };
    tokens.windows(2).find_map(|pair| {
        let keyword = pair[0].to_ascii_lowercase();
        (keywords.contains(&keyword.as_str()) && is_name(pair[1]))
            .then(|| pair[1].trim_matches('"'))
            .filter(|name| {
                !matches!(
                    name.to_ascii_lowercase().as_str(),
                    "only" | "if" | "lateral"
                )
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_named_by_verb_and_table() {
        for (sql, name) in [
            (
                "\n  SELECT o.offer_id, o.merchant_id, o.name\n  FROM offers o\n  WHERE o.merchant_id = $1",
                "select offers",
            ),
            (
                "INSERT INTO collections AS c (collection_id) SELECT 1 FROM staged_collections",
                "insert collections",
            ),
            (
                "UPDATE collections c SET removed_at = now() WHERE c.merchant_id = $1",
                "update collections",
            ),
            (
                "DELETE FROM staged_offers WHERE refresh_id = $1",
                "delete staged_offers",
            ),
            (
                "COPY staged_offers (refresh_id, seq) FROM STDIN",
                "copy staged_offers",
            ),
            (
                "WITH dropped AS (DELETE FROM collection_offers co WHERE co.merchant_id = $1) SELECT 1",
                "with collection_offers",
            ),
            (
                "SELECT (SELECT EXTRACT(EPOCH FROM (now() - created_at)) FROM change_log)",
                "select change_log",
            ),
            ("CREATE DATABASE cm_test_1", "create cm_test_1"),
            ("SELECT pg_advisory_lock($1)", "select"),
            (
                "-- name: merge_staged_offers\nINSERT INTO offers SELECT 1",
                "merge_staged_offers",
            ),
            ("/* why */ SELECT 1 FROM \"jobs\"", "select jobs"),
            ("", "statement"),
        ] {
            assert_eq!(statement_name(sql), name, "{sql}");
        }
    }

    #[test]
    fn names_carry_no_sql_beyond_verb_and_table() {
        let name = statement_name(
            "SELECT a, b, c FROM offers WHERE secret_column = 'x' AND merchant_id = $1",
        );
        assert_eq!(name, "select offers");
        assert!(
            statement_name(&format!("-- name: {}\nSELECT 1", "n".repeat(200))).len() <= MAX_NAME
        );
    }
}
