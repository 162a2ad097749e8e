//! Shaping a hit: `attributesToRetrieve`, `_formatted` with highlighted and cropped
//! text, and `_matchesPosition`, the way Meilisearch writes them (every retrieved
//! attribute appears in `_formatted`, numbers and booleans as strings, highlight tags
//! around matched words, crop markers where text was cut).
//!
//! A match is a word of the text that matches a query word (`query::token_matches`),
//! or a run of words that matches a phrase of the query, as one match from its first
//! word to its last ("north face" marks "<em>North Face</em>"); a word matched as the
//! prefix being typed matches only over the typed characters ("swea" marks "Swea" of
//! "Sweater"). Milli's `MatchingWords` and `Matcher` measure them so.

use serde_json::{Map, Value};

use super::params::SearchRequest;
use super::query::{Word, token_matches};
use super::schema::{SEARCHABLE, text_analyzer};
use super::terms::{Highlights, Phrase};

/// The hit for `source` as the request wants it.
pub fn hit(source: &Map<String, Value>, request: &SearchRequest, words: &Highlights) -> Value {
    let retrieved: Map<String, Value> = match &request.attributes_to_retrieve {
        Some(names) if !names.iter().any(|name| name == "*") => source
            .iter()
            .filter(|(key, _)| names.iter().any(|name| name == *key))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
        _ => source.clone(),
    };
    let formatted = (!request.attributes_to_highlight.is_empty()
        || !request.attributes_to_crop.is_empty())
    .then(|| formatted(&retrieved, request, words));
    let positions = request
        .show_matches_position
        .then(|| matches_position(&retrieved, words));
    let mut out = retrieved;
    if let Some(formatted) = formatted {
        out.insert("_formatted".into(), Value::Object(formatted));
    }
    if let Some(positions) = positions {
        out.insert("_matchesPosition".into(), Value::Object(positions));
    }
    Value::Object(out)
}

/// `_formatted`: every retrieved attribute, highlighted and cropped as asked.
fn formatted(
    retrieved: &Map<String, Value>,
    request: &SearchRequest,
    words: &Highlights,
) -> Map<String, Value> {
    let wants = |list: &[String], key: &str| list.iter().any(|name| name == "*" || name == key);
    let crop_names: Vec<String> = request
        .attributes_to_crop
        .iter()
        .map(|(name, _)| name.clone())
        .collect();
    let mut formatted = Map::new();
    for (key, value) in retrieved {
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
    formatted
}

/// `_matchesPosition`: per retrieved attribute with a match, each match's byte `start`
/// and `length` in the value, and for a value inside an array its `indices` (milli's
/// `MatchBounds`). Numbers are matched as written; attributes without a match are left
/// out.
fn matches_position(retrieved: &Map<String, Value>, words: &Highlights) -> Map<String, Value> {
    fn walk(value: &Value, words: &Highlights, indices: &mut Vec<usize>, out: &mut Vec<Value>) {
        let number;
        let text = match value {
            Value::String(text) => text.as_str(),
            Value::Number(written) => {
                number = written.to_string();
                number.as_str()
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    indices.push(i);
                    walk(item, words, indices, out);
                    indices.pop();
                }
                return;
            }
            _ => return,
        };
        for (from, to) in matches(text, words) {
            let mut bound = Map::new();
            bound.insert("start".into(), from.into());
            bound.insert("length".into(), (to - from).into());
            if !indices.is_empty() {
                bound.insert("indices".into(), indices.clone().into());
            }
            out.push(Value::Object(bound));
        }
    }
    let mut positions = Map::new();
    for (key, value) in retrieved {
        let mut bounds = Vec::new();
        walk(value, words, &mut Vec::new(), &mut bounds);
        if !bounds.is_empty() {
            positions.insert(key.clone(), Value::Array(bounds));
        }
    }
    positions
}

fn is_searchable(attribute: &str) -> bool {
    SEARCHABLE.iter().any(|(name, _)| *name == attribute)
}

fn format_value(
    value: &Value,
    highlight: bool,
    crop: Option<usize>,
    request: &SearchRequest,
    words: &Highlights,
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

/// Byte ranges of what matches the query in `text`: a phrase's run of words as one
/// range, else each matching word, whole or only its typed characters when it matches
/// as the prefix being typed (as many as the typed word has; milli's
/// `MatchingWords::match_unique_words`).
fn matches(text: &str, highlights: &Highlights) -> Vec<(usize, usize)> {
    if highlights.is_empty() {
        return Vec::new();
    }
    let mut analyzer = text_analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    if highlights.phrases.is_empty() {
        // Words only: each token is matched as it streams by, nothing is kept.
        while stream.advance() {
            let token = stream.token();
            out.extend(word_match(
                text,
                &token.text,
                (token.offset_from, token.offset_to),
                &highlights.words,
            ));
        }
        return out;
    }
    // A phrase looks ahead: the tokens are kept.
    let mut tokens: Vec<(String, usize, usize)> = Vec::new();
    while stream.advance() {
        let token = stream.token();
        tokens.push((token.text.clone(), token.offset_from, token.offset_to));
    }
    let mut at = 0;
    while at < tokens.len() {
        if let Some(length) = highlights
            .phrases
            .iter()
            .filter(|phrase| phrase_at(phrase, &tokens[at..]))
            .map(Vec::len)
            .max()
        {
            out.push((tokens[at].1, tokens[at + length - 1].2));
            at += length;
            continue;
        }
        let (token, from, to) = &tokens[at];
        out.extend(word_match(text, token, (*from, *to), &highlights.words));
        at += 1;
    }
    out
}

/// The byte range of `text` that `token` (at `bounds`) matches of `words`: the whole
/// word, or only its typed characters when it matches only as the prefix being typed;
/// a word matched otherwise (exactly, with typos, as a synonym) wins over a prefix.
fn word_match(
    text: &str,
    token: &str,
    (from, to): (usize, usize),
    words: &[Word],
) -> Option<(usize, usize)> {
    let matching = || words.iter().filter(|word| token_matches(token, word));
    if matching().any(|word| !typed_prefix(token, word)) {
        return Some((from, to));
    }
    let word = matching().next()?;
    let original = &text[from..to];
    let end = original
        .char_indices()
        .nth(word.text.chars().count())
        .map_or(original.len(), |(at, _)| at);
    Some((from, from + end))
}

/// Whether `tokens` start with `phrase`'s words (a stop word of the phrase, `None`,
/// stands for any word there).
fn phrase_at(phrase: &Phrase, tokens: &[(String, usize, usize)]) -> bool {
    !phrase.is_empty()
        && tokens.len() >= phrase.len()
        && phrase
            .iter()
            .zip(tokens)
            .all(|(word, (token, _, _))| word.as_ref().is_none_or(|word| word == token))
}

/// Whether `token` matches `word` only as the prefix being typed.
fn typed_prefix(token: &str, word: &Word) -> bool {
    word.prefix
        && token != word.text
        && token.starts_with(&word.text)
        && !word
            .synonyms
            .iter()
            .any(|alternative| alternative.len() == 1 && alternative[0] == token)
}

fn format_text(
    text: &str,
    highlight: bool,
    crop: Option<usize>,
    request: &SearchRequest,
    words: &Highlights,
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
    use crate::search::relevance::Relevance;

    /// What a search for `q` highlights.
    fn analyze(q: &str, relevance: &Relevance) -> Highlights {
        crate::search::terms::parse(q, relevance).highlighted()
    }

    fn request() -> SearchRequest {
        SearchRequest::from_object(&Map::new(), &[]).unwrap()
    }

    #[test]
    fn matches_position_gives_byte_bounds_typed_prefixes_and_array_indices() {
        let relevance = Relevance::embedded();
        let source = serde_json::json!({
            "id": 1001,
            "name": "Crème Brûlée Sweater",
            "tags": ["dessert", "sweet", "brulee"],
            "merchant_id": 1001,
            "currency": "EUR",
        });
        let source = source.as_object().unwrap();
        let mut req = request();
        assert!(
            hit(source, &req, &analyze("creme", &relevance))
                .get("_matchesPosition")
                .is_none(),
            "only when asked"
        );
        req.show_matches_position = true;
        // "creme" matches "Crème" whole (6 bytes: è is two); "brul", being typed,
        // matches the first four characters of "Brûlée" (5 bytes) and of "brulee".
        let shown = hit(source, &req, &analyze("creme brul", &relevance));
        assert_eq!(
            shown["_matchesPosition"],
            serde_json::json!({
                "name": [{ "start": 0, "length": 6 }, { "start": 7, "length": 5 }],
                "tags": [{ "start": 0, "length": 4, "indices": [2] }],
            })
        );
        assert_eq!(
            shown["name"], "Crème Brûlée Sweater",
            "the values are untouched"
        );
        // A finished word matches whole, and numbers are matched as written.
        let shown = hit(source, &req, &analyze("sweater 1001 ", &relevance));
        assert_eq!(
            shown["_matchesPosition"],
            serde_json::json!({
                "id": [{ "start": 0, "length": 4 }],
                "merchant_id": [{ "start": 0, "length": 4 }],
                "name": [{ "start": 16, "length": 7 }],
            })
        );
        // With highlighting, the typed prefix alone is marked.
        req.attributes_to_highlight = vec!["name".into()];
        let shown = hit(source, &req, &analyze("swea", &relevance));
        assert_eq!(shown["_formatted"]["name"], "Crème Brûlée <em>Swea</em>ter");
        assert_eq!(
            shown["_matchesPosition"]["name"],
            serde_json::json!([{ "start": 16, "length": 4 }])
        );
    }

    #[test]
    fn a_phrase_matches_as_one_run_of_words_and_only_as_a_run() {
        let relevance = Relevance::embedded();
        let phrase = analyze("\"north face\" jacket", &relevance);
        let mut req = request();
        assert_eq!(
            format_text("The North Face Jacket", true, None, &req, &phrase),
            "The <em>North Face</em> <em>Jacket</em>"
        );
        // Its words apart, or in the other order, are no match.
        assert_eq!(
            format_text("Face North, north face", true, None, &req, &phrase),
            "Face North, <em>north face</em>"
        );
        req.show_matches_position = true;
        let source = serde_json::json!({ "name": "The North Face" });
        assert_eq!(
            hit(source.as_object().unwrap(), &req, &phrase)["_matchesPosition"],
            serde_json::json!({ "name": [{ "start": 4, "length": 10 }] })
        );
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
