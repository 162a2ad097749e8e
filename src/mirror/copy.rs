//! `COPY ... FROM STDIN` in PostgreSQL's text format: an encoder for rows of the
//! types staging needs, and the call that streams a buffer of rows in one statement.
//!
//! Text format: columns separated by a tab, rows ended by a newline, `\N` for NULL,
//! and backslash escapes for backslash, newline, carriage return and tab. NUL cannot
//! be stored in PostgreSQL text, so it is dropped from strings (see [`json_text`] for
//! JSON). Arrays use PostgreSQL's array literal, escaped once more for COPY.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sqlx::PgConnection;

/// A buffer of rows in COPY text format.
#[derive(Debug, Default)]
pub(crate) struct CopyText {
    buf: Vec<u8>,
    row_open: bool,
    rows: usize,
}

impl CopyText {
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            buf: Vec::with_capacity(bytes),
            row_open: false,
            rows: 0,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes written so far (row boundaries for [`CopyText::slice`]).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn slice(&self, range: std::ops::Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Appends `rows` complete rows taken from another buffer.
    pub fn extend_rows(&mut self, bytes: &[u8], rows: usize) {
        debug_assert!(!self.row_open, "a row was left open");
        self.buf.extend_from_slice(bytes);
        self.rows += rows;
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.row_open = false;
        self.rows = 0;
    }

    fn field(&mut self) {
        if self.row_open {
            self.buf.push(b'\t');
        }
        self.row_open = true;
    }

    pub fn null(&mut self) -> &mut Self {
        self.field();
        self.buf.extend_from_slice(b"\\N");
        self
    }

    pub fn int(&mut self, value: i64) -> &mut Self {
        self.field();
        self.buf.extend_from_slice(value.to_string().as_bytes());
        self
    }

    pub fn opt_int(&mut self, value: Option<i64>) -> &mut Self {
        match value {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }

    pub fn bool(&mut self, value: bool) -> &mut Self {
        self.field();
        self.buf.push(if value { b't' } else { b'f' });
        self
    }

    pub fn text(&mut self, value: &str) -> &mut Self {
        self.field();
        escape_into(&mut self.buf, value);
        self
    }

    pub fn opt_text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    pub fn timestamp(&mut self, value: Option<DateTime<Utc>>) -> &mut Self {
        match value {
            Some(v) => self.text(&v.to_rfc3339_opts(SecondsFormat::Micros, true)),
            None => self.null(),
        }
    }

    /// A `text[]` value.
    pub fn text_array<S: AsRef<str>>(&mut self, values: &[S]) -> &mut Self {
        let mut literal =
            String::with_capacity(2 + values.iter().map(|v| v.as_ref().len() + 3).sum::<usize>());
        literal.push('{');
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                literal.push(',');
            }
            literal.push('"');
            for c in value.as_ref().chars() {
                match c {
                    '"' | '\\' => {
                        literal.push('\\');
                        literal.push(c);
                    }
                    '\0' => {}
                    c => literal.push(c),
                }
            }
            literal.push('"');
        }
        literal.push('}');
        self.text(&literal)
    }

    /// Ends the current row.
    pub fn end_row(&mut self) {
        self.buf.push(b'\n');
        self.row_open = false;
        self.rows += 1;
    }

    /// Streams the rows with `statement` (a `COPY table (columns) FROM STDIN`) and
    /// clears the buffer. Returns the rows PostgreSQL reports.
    pub async fn send(&mut self, conn: &mut PgConnection, statement: &str) -> sqlx::Result<u64> {
        debug_assert!(!self.row_open, "a row was left open");
        if self.rows == 0 {
            return Ok(0);
        }
        let mut copy = conn.copy_in_raw(statement).await?;
        if let Err(err) = copy.send(self.buf.as_slice()).await {
            let _ = copy.abort("sending COPY data failed").await;
            return Err(err);
        }
        let rows = copy.finish().await?;
        self.clear();
        Ok(rows)
    }
}

fn escape_into(buf: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    if !bytes
        .iter()
        .any(|b| matches!(b, b'\\' | b'\n' | b'\r' | b'\t' | 0))
    {
        buf.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        match b {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            0 => {}
            b => buf.push(b),
        }
    }
}

/// JSON text PostgreSQL's `jsonb` accepts: `\u0000` is refused there, so strings
/// holding NUL lose it (rare: the value is only rewritten when the escape appears).
pub(crate) fn json_text(value: &Value) -> String {
    let text = serde_json::to_string(value).expect("a JSON value serializes");
    if !text.contains("\\u0000") {
        return text;
    }
    let mut clean = value.clone();
    strip_nul(&mut clean);
    serde_json::to_string(&clean).expect("a JSON value serializes")
}

fn strip_nul(value: &mut Value) {
    match value {
        Value::String(s) if s.contains('\0') => s.retain(|c| c != '\0'),
        Value::Array(items) => items.iter_mut().for_each(strip_nul),
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().filter(|k| k.contains('\0')).cloned().collect();
            for key in keys {
                if let Some(v) = map.remove(&key) {
                    map.insert(key.replace('\0', ""), v);
                }
            }
            map.values_mut().for_each(strip_nul);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn encodes_rows_with_escapes_nulls_and_arrays() {
        let mut copy = CopyText::default();
        copy.int(7)
            .text("a\tb\\c\nd")
            .null()
            .bool(true)
            .opt_int(None)
            .text_array(&["x", "say \"hi\"", "back\\slash"])
            .timestamp(Some(Utc.with_ymd_and_hms(2017, 6, 15, 1, 1, 1).unwrap()));
        copy.end_row();
        copy.text("nul\0gone");
        copy.end_row();
        let text = String::from_utf8(copy.buf.clone()).unwrap();
        assert_eq!(
            text,
            "7\ta\\tb\\\\c\\nd\t\\N\tt\t\\N\t{\"x\",\"say \\\\\"hi\\\\\"\",\"back\\\\\\\\slash\"}\t2017-06-15T01:01:01.000000Z\nnulgone\n"
        );
        assert_eq!(copy.rows(), 2);
    }

    #[test]
    fn json_text_drops_nul_only_when_present() {
        let plain = json!({"b": 1, "a": "x"});
        assert_eq!(json_text(&plain), r#"{"a":"x","b":1}"#);
        let nul = json!({"a": "x\u{0}y", "list": ["\u{0}"]});
        assert_eq!(json_text(&nul), r#"{"a":"xy","list":[""]}"#);
    }
}
