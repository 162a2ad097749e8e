//! The query syntax of `q`, as Meilisearch reads it
//! (crates/milli/src/search/new/query_term/parse_query.rs,
//! `located_query_terms_from_tokens`):
//!
//! - `"..."` is a **phrase**: its words must follow each other in one attribute, exactly
//!   (no typo, no prefix, no synonym). Stop words inside keep their place (`"north of
//!   wales"` wants one word between `north` and `wales`); a phrase of stop words only is
//!   dropped; a quote never closed runs to the end of `q`; a hard separator (`.`, `!`,
//!   `?`, `;`, a line break) inside a phrase ends it and starts another.
//! - `-word` **excludes** the offers holding `word` exactly (typos and prefixes of it
//!   are not excluded); `-"phrase"` excludes those holding the phrase. The `-` counts
//!   only at the start of `q` or after whitespace and right before the word or quote:
//!   `t-shirt`, `- red` and a lone `-` are ordinary text.
//! - everything else is ordinary words.
//!
//! This module only splits `q` into those pieces; `query` turns them into words and
//! phrases (stop words, typos, prefix, limits) and the query.

/// What a piece of `q` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Ordinary words.
    Words,
    /// The first word of the text excludes; the rest are ordinary words.
    ExcludedWord,
    Phrase,
    ExcludedPhrase,
}

/// A piece of `q`: its kind and its text (a byte range of `q`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

/// Separators that end a phrase (Meilisearch's hard separators, the common ones).
fn is_hard_separator(c: char) -> bool {
    matches!(
        c,
        '.' | '!' | '?' | ';' | '\n' | '\r' | '。' | '！' | '？' | '；'
    )
}

/// Splits `q` into its pieces, in order.
pub fn split(q: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut words_start = 0;
    // Where the open phrase's text starts, and whether it excludes.
    let mut phrase: Option<(usize, bool)> = None;
    let mut after_whitespace = true;
    let mut chars = q.char_indices().peekable();
    let push = |pieces: &mut Vec<Piece>, kind, start, end| {
        if start < end {
            pieces.push(Piece { kind, start, end });
        }
    };
    while let Some((at, c)) = chars.next() {
        let next = chars.peek().map(|&(_, next)| next);
        match phrase {
            Some((start, excluded)) => {
                let kind = if excluded {
                    Kind::ExcludedPhrase
                } else {
                    Kind::Phrase
                };
                if c == '"' {
                    push(&mut pieces, kind, start, at);
                    phrase = None;
                    words_start = at + 1;
                } else if is_hard_separator(c) {
                    push(&mut pieces, kind, start, at);
                    phrase = Some((at + c.len_utf8(), excluded));
                }
            }
            None if c == '"' => {
                push(&mut pieces, Kind::Words, words_start, at);
                phrase = Some((at + 1, false));
            }
            None if c == '-' && after_whitespace && next == Some('"') => {
                push(&mut pieces, Kind::Words, words_start, at);
                chars.next();
                phrase = Some((at + 2, true));
            }
            None if c == '-' && after_whitespace && next.is_some_and(char::is_alphanumeric) => {
                push(&mut pieces, Kind::Words, words_start, at);
                // The excluded word runs to the next whitespace; `query` takes its first
                // word only (`-t-shirt` excludes `t`, and `shirt` is an ordinary word).
                let start = at + 1;
                let mut end = q.len();
                while let Some(&(at, c)) = chars.peek() {
                    if c.is_whitespace() || c == '"' {
                        end = at;
                        break;
                    }
                    chars.next();
                }
                push(&mut pieces, Kind::ExcludedWord, start, end);
                words_start = end;
                after_whitespace = false;
                continue;
            }
            None => {}
        }
        after_whitespace = c.is_whitespace();
    }
    match phrase {
        Some((start, excluded)) => {
            let kind = if excluded {
                Kind::ExcludedPhrase
            } else {
                Kind::Phrase
            };
            push(&mut pieces, kind, start, q.len());
        }
        None => push(&mut pieces, Kind::Words, words_start, q.len()),
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(q: &str) -> Vec<(Kind, &str)> {
        split(q)
            .into_iter()
            .map(|piece| (piece.kind, &q[piece.start..piece.end]))
            .collect()
    }

    #[test]
    fn phrases_and_exclusions_are_read_as_meilisearch_reads_them() {
        use Kind::*;
        assert_eq!(pieces("red shoes"), [(Words, "red shoes")]);
        assert_eq!(
            pieces("lipstick -red"),
            [(Words, "lipstick "), (ExcludedWord, "red")]
        );
        assert_eq!(
            pieces("-red lipstick"),
            [(ExcludedWord, "red"), (Words, " lipstick")]
        );
        assert_eq!(
            pieces("\"north face\" jacket"),
            [(Phrase, "north face"), (Words, " jacket")]
        );
        assert_eq!(
            pieces("jacket -\"north face\""),
            [(Words, "jacket "), (ExcludedPhrase, "north face")]
        );
        // Not a negation: inside a word, before whitespace, alone, doubled.
        assert_eq!(pieces("t-shirt"), [(Words, "t-shirt")]);
        assert_eq!(pieces("- escape"), [(Words, "- escape")]);
        assert_eq!(pieces("-"), [(Words, "-")]);
        assert_eq!(pieces("--red"), [(Words, "--red")]);
        assert_eq!(
            pieces("- \"train your dragon\""),
            [(Words, "- "), (Phrase, "train your dragon")]
        );
        // The excluded word's text runs to the next whitespace (`query` keeps its
        // first word excluded).
        assert_eq!(
            pieces("-t-shirt tee"),
            [(ExcludedWord, "t-shirt"), (Words, " tee")]
        );
        // An unclosed quote runs to the end; a hard separator splits a phrase.
        assert_eq!(
            pieces("wool \"merino jumper"),
            [(Words, "wool "), (Phrase, "merino jumper")]
        );
        assert_eq!(
            pieces("\"blue. green\""),
            [(Phrase, "blue"), (Phrase, " green")]
        );
        assert_eq!(pieces("\"\""), []);
        assert_eq!(
            pieces("how \"to\" train \"the"),
            [
                (Words, "how "),
                (Phrase, "to"),
                (Words, " train "),
                (Phrase, "the")
            ]
        );
    }
}
