//! Shaping a hit: `attributesToRetrieve`, and `_formatted` with highlighted and cropped
//! text, the way Meilisearch writes it (every retrieved attribute appears in
//! `_formatted`, numbers and booleans as strings, highlight tags around matched words,
//! crop markers where text was cut).

use serde_json::{Map, Value};

use super::params::SearchRequest;
use super::query::{Word, token_matches};
use super::schema::{SEARCHABLE, text_analyzer};

/// The hit for `source` as the request wants it.
pub fn hit(source: &Map<String, Value>, request: &SearchRequest, words: &[Word]) -> Value {
    let retrieved: Map<String, Value> = match &request.attributes_to_retrieve {
        Some(names) if !names.iter().any(|name| name == "*") => source
            .iter()
            .filter(|(key, _)| names.iter().any(|name| name == *key))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
        _ => source.clone(),
    };
    if request.attributes_to_highlight.is_empty() && request.attributes_to_crop.is_empty() {
        return Value::Object(retrieved);
    }
    let wants = |list: &[String], key: &str| list.iter().any(|name| name == "*" || name == key);
    let crop_names: Vec<String> = request
        .attributes_to_crop
        .iter()
        .map(|(name, _)| name.clone())
        .collect();
    let mut formatted = Map::new();
    for (key, value) in &retrieved {
        let highlight = wants(&request.attributes_to_highlight, key) && is_searchable(key);
        let crop = wants(&crop_names, key).then(|| {
            request
                .attributes_to_crop
                .iter()
                .find(|(name, _)| name == key)
                .and_then(|(_, length)| *length)
                .unwrap_or(request.crop_length)
        });
        formatted.insert(
            key.clone(),
            format_value(value, highlight, crop, request, words),
        );
    }
    let mut out = retrieved;
    out.insert("_formatted".into(), Value::Object(formatted));
    Value::Object(out)
}

fn is_searchable(attribute: &str) -> bool {
    SEARCHABLE.iter().any(|(name, _)| *name == attribute)
}

fn format_value(
    value: &Value,
    highlight: bool,
    crop: Option<usize>,
    request: &SearchRequest,
    words: &[Word],
) -> Value {
    match value {
        Value::String(text) => Value::String(format_text(text, highlight, crop, request, words)),
        Value::Number(number) => Value::String(number.to_string()),
        Value::Bool(flag) => Value::String(flag.to_string()),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| format_value(item, highlight, crop, request, words))
                .collect(),
        ),
        Value::Null => Value::Null,
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(key, item)| {
                    (
                        key.clone(),
                        format_value(item, highlight, crop, request, words),
                    )
                })
                .collect(),
        ),
    }
}

/// Byte ranges of the words of `text` that match the query.
fn matches(text: &str, words: &[Word]) -> Vec<(usize, usize)> {
    if words.is_empty() {
        return Vec::new();
    }
    let mut analyzer = text_analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        let token = stream.token();
        if words.iter().any(|word| token_matches(&token.text, word)) {
            out.push((token.offset_from, token.offset_to));
        }
    }
    out
}

fn format_text(
    text: &str,
    highlight: bool,
    crop: Option<usize>,
    request: &SearchRequest,
    words: &[Word],
) -> String {
    let found = matches(text, words);
    let (start, end) = match crop {
        Some(length) => crop_window(text, &found, length),
        None => (0, text.len()),
    };
    let mut out = String::with_capacity(end - start + 16);
    if start > 0 {
        out.push_str(&request.crop_marker);
    }
    let mut cursor = start;
    if highlight {
        for &(from, to) in found
            .iter()
            .filter(|(from, to)| *from >= start && *to <= end)
        {
            out.push_str(&text[cursor..from]);
            out.push_str(&request.highlight_pre_tag);
            out.push_str(&text[from..to]);
            out.push_str(&request.highlight_post_tag);
            cursor = to;
        }
    }
    out.push_str(&text[cursor..end]);
    if end < text.len() {
        out.push_str(&request.crop_marker);
    }
    out
}

/// The byte range of at most `length` whitespace-separated words, starting a little
/// before the first match (or at the start when nothing matched).
fn crop_window(text: &str, found: &[(usize, usize)], length: usize) -> (usize, usize) {
    let spans: Vec<(usize, usize)> = word_spans(text);
    if spans.len() <= length {
        return (0, text.len());
    }
    if length == 0 {
        return (0, 0);
    }
    let first_match = found
        .first()
        .and_then(|(from, _)| spans.iter().position(|(_, end)| end > from))
        .unwrap_or(0);
    let before = (length.saturating_sub(1)) / 2;
    let first = first_match.saturating_sub(before).min(spans.len() - length);
    let last = first + length - 1;
    (spans[first].0, spans[last].1)
}

fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(from)) => {
                spans.push((from, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(from) = start {
        spans.push((from, text.len()));
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::query::analyze;
    use crate::search::relevance::Relevance;

    fn request() -> SearchRequest {
        SearchRequest::from_object(&Map::new(), &[]).unwrap()
    }

    #[test]
    fn highlights_and_crops_around_the_first_match() {
        let words = analyze("wool", &Relevance::embedded());
        let text =
            "one two three four five six seven eight Wool socks for cold nights and long walks";
        let mut req = request();
        req.crop_length = 4;
        assert_eq!(
            format_text(text, true, Some(4), &req, &words),
            "…eight <em>Wool</em> socks for…"
        );
        assert_eq!(
            format_text("Merino wool", true, None, &req, &words),
            "Merino <em>wool</em>"
        );
        assert_eq!(
            format_text("short text", false, Some(10), &req, &words),
            "short text"
        );
    }
}
