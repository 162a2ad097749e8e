//! The filter parser: a lexer and a recursive-descent parser with a depth limit, so
//! no input (however nested or malformed) panics or overflows the stack. Errors name
//! what was expected and where, in Meilisearch's manner (`message\nstart:end input`).

use super::{CompareOp, Condition, Filter, FilterError};

/// Deepest nesting of parentheses and `NOT` accepted.
pub const MAX_DEPTH: usize = 64;
/// Longest filter string accepted (bytes).
const MAX_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Comma,
    Op(CompareOp),
    /// A bare word (keywords are bare words spelled in upper case).
    Word(String),
    Quoted(String),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Character offsets in the input (start inclusive, end exclusive).
    start: usize,
    end: usize,
}

const KEYWORDS: &[&str] = &[
    "AND", "OR", "NOT", "TO", "IN", "EXISTS", "IS", "NULL", "EMPTY",
];

/// Parses a filter string; `None` when it is empty or only whitespace.
pub fn parse(input: &str) -> Result<Option<Filter>, FilterError> {
    if input.len() > MAX_LEN {
        return Err(FilterError(format!(
            "The filter is too long: {} bytes, at most {MAX_LEN} are accepted.",
            input.len()
        )));
    }
    let tokens = lex(input)?;
    if tokens.is_empty() {
        return Ok(None);
    }
    let mut parser = Parser {
        input,
        tokens,
        pos: 0,
        depth: 0,
    };
    let filter = parser.or()?;
    if let Some(token) = parser.peek() {
        return Err(parser.error_at(
            "Found unexpected characters at the end of the filter: `{}`. You probably forgot an `OR` or an `AND` rule.",
            token.start,
            input.chars().count(),
        ));
    }
    Ok(Some(filter))
}

fn lex(input: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let single = |tok| Token {
            tok,
            start,
            end: start + 1,
        };
        match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => tokens.push(single(Tok::Open)),
            ')' => tokens.push(single(Tok::Close)),
            '[' => tokens.push(single(Tok::OpenBracket)),
            ']' => tokens.push(single(Tok::CloseBracket)),
            ',' => tokens.push(single(Tok::Comma)),
            '=' => tokens.push(single(Tok::Op(CompareOp::Eq))),
            '!' | '>' | '<' => {
                let next_is_eq = chars.get(i + 1) == Some(&'=');
                let op = match (c, next_is_eq) {
                    ('!', true) => CompareOp::Ne,
                    ('>', true) => CompareOp::Ge,
                    ('>', false) => CompareOp::Gt,
                    ('<', true) => CompareOp::Le,
                    ('<', false) => CompareOp::Lt,
                    _ => {
                        return Err(located(
                            input,
                            "Found an unexpected `!`: did you mean `!=`?",
                            start,
                            start + 1,
                        ));
                    }
                };
                let end = if next_is_eq { i + 2 } else { i + 1 };
                tokens.push(Token {
                    tok: Tok::Op(op),
                    start,
                    end,
                });
                i = end;
                continue;
            }
            '\'' | '"' => {
                let quote = c;
                let mut value = String::new();
                let mut j = i + 1;
                let mut closed = false;
                while j < chars.len() {
                    match chars[j] {
                        '\\' if j + 1 < chars.len() => {
                            value.push(chars[j + 1]);
                            j += 2;
                        }
                        ch if ch == quote => {
                            closed = true;
                            j += 1;
                            break;
                        }
                        ch => {
                            value.push(ch);
                            j += 1;
                        }
                    }
                }
                if !closed {
                    return Err(located(
                        input,
                        &format!(
                            "Expression `{}` is missing the following closing delimiter: `{quote}`.",
                            slice(input, start, chars.len())
                        ),
                        start,
                        chars.len(),
                    ));
                }
                tokens.push(Token {
                    tok: Tok::Quoted(value),
                    start,
                    end: j,
                });
                i = j;
                continue;
            }
            _ => {
                let mut j = i;
                while j < chars.len() && !is_delimiter(chars[j]) {
                    j += 1;
                }
                let word: String = chars[i..j].iter().collect();
                tokens.push(Token {
                    tok: Tok::Word(word),
                    start,
                    end: j,
                });
                i = j;
                continue;
            }
        }
        i += 1;
    }
    Ok(tokens)
}

fn is_delimiter(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '(' | ')' | '[' | ']' | ',' | '=' | '!' | '<' | '>' | '\'' | '"'
        )
}

fn slice(input: &str, start: usize, end: usize) -> String {
    input
        .chars()
        .skip(start)
        .take(end.saturating_sub(start))
        .collect()
}

/// `message` followed by Meilisearch's position line: `start:end input`.
fn located(input: &str, message: &str, start: usize, end: usize) -> FilterError {
    FilterError(format!(
        "{message}\n{}:{} {input}",
        start + 1,
        end.max(start + 1)
    ))
}

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Word(word), .. }) if word == keyword)
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let found = self.is_keyword(keyword);
        if found {
            self.pos += 1;
        }
        found
    }

    fn end_offset(&self) -> usize {
        self.input.chars().count()
    }

    fn error_at(&self, template: &str, start: usize, end: usize) -> FilterError {
        let found = slice(self.input, start, end);
        located(self.input, &template.replace("{}", &found), start, end)
    }

    /// An error about the token at the cursor (or the end of input).
    fn expected(&self, what: &str) -> FilterError {
        match self.peek() {
            Some(token) => located(
                self.input,
                &format!(
                    "{what}, but instead got `{}`.",
                    slice(self.input, token.start, token.end)
                ),
                token.start,
                token.end,
            ),
            None => {
                let end = self.end_offset();
                located(
                    self.input,
                    &format!("{what}, but instead got nothing."),
                    end,
                    end,
                )
            }
        }
    }

    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let start = self.peek().map(|token| token.start).unwrap_or(0);
            return Err(located(
                self.input,
                &format!(
                    "The filter exceeded the maximum depth limit ({MAX_DEPTH} nested groups or `NOT`s)."
                ),
                start,
                start + 1,
            ));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut items = vec![self.and()?];
        while self.eat_keyword("OR") {
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one")
        } else {
            Filter::Or(items)
        })
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut items = vec![self.not()?];
        while self.eat_keyword("AND") {
            items.push(self.not()?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one")
        } else {
            Filter::And(items)
        })
    }

    fn not(&mut self) -> Result<Filter, FilterError> {
        self.enter()?;
        let result = if self.eat_keyword("NOT") {
            self.not().map(|inner| Filter::Not(Box::new(inner)))
        } else if matches!(self.peek(), Some(Token { tok: Tok::Open, .. })) {
            let open = self.peek().map(|token| token.start).unwrap_or(0);
            self.pos += 1;
            let inner = self.or()?;
            match self.peek() {
                Some(Token {
                    tok: Tok::Close, ..
                }) => {
                    self.pos += 1;
                    Ok(inner)
                }
                _ => Err(located(
                    self.input,
                    &format!(
                        "Expression `{}` is missing the following closing delimiter: `)`.",
                        slice(self.input, open, self.end_offset())
                    ),
                    open,
                    self.end_offset(),
                )),
            }
        } else {
            self.condition()
        };
        self.depth -= 1;
        result
    }

    fn attribute(&mut self) -> Result<(String, usize, usize), FilterError> {
        const EXPECTED: &str = "Was expecting an attribute name (an attribute followed by an operation such as `=`, `IN` or `EXISTS`)";
        let Some(token) = self.peek().cloned() else {
            return Err(self.expected(EXPECTED));
        };
        let name = match token.tok {
            Tok::Word(word) if !KEYWORDS.contains(&word.as_str()) => word,
            Tok::Quoted(text) => text,
            _ => return Err(self.expected(EXPECTED)),
        };
        self.pos += 1;
        if name.starts_with("_geo") {
            return Err(located(
                self.input,
                "The geo filters (`_geoRadius`, `_geoBoundingBox`, `_geoPolygon`) are not supported: offers have no `_geo` attribute.",
                token.start,
                token.end,
            ));
        }
        Ok((name, token.start, token.end))
    }

    fn value(&mut self) -> Result<String, FilterError> {
        match self.peek().cloned() {
            Some(Token { tok: Tok::Quoted(text), .. }) => {
                self.pos += 1;
                Ok(text)
            }
            Some(Token { tok: Tok::Word(word), .. }) if !KEYWORDS.contains(&word.as_str()) => {
                self.pos += 1;
                Ok(word)
            }
            _ => Err(self.expected(
                "Was expecting a value (a bare word or a quoted string; quote values holding spaces or reserved keywords)",
            )),
        }
    }

    fn condition(&mut self) -> Result<Filter, FilterError> {
        let (attribute, _, _) = self.attribute()?;
        let condition = match self.peek().cloned() {
            Some(Token {
                tok: Tok::Op(op), ..
            }) => {
                self.pos += 1;
                Condition::Compare(op, self.value()?)
            }
            Some(Token {
                tok: Tok::Word(word),
                ..
            }) if word == "IN" => {
                self.pos += 1;
                Condition::In(self.list()?)
            }
            Some(Token {
                tok: Tok::Word(word),
                ..
            }) if word == "EXISTS" => {
                self.pos += 1;
                Condition::Exists
            }
            Some(Token {
                tok: Tok::Word(word),
                ..
            }) if word == "NOT" => {
                self.pos += 1;
                let negated = if self.eat_keyword("IN") {
                    Condition::In(self.list()?)
                } else if self.eat_keyword("EXISTS") {
                    Condition::Exists
                } else {
                    return Err(self.expected("Was expecting `IN` or `EXISTS` after `NOT`"));
                };
                return Ok(Filter::Not(Box::new(Filter::Condition {
                    attribute,
                    condition: negated,
                })));
            }
            Some(Token {
                tok: Tok::Word(word),
                ..
            }) if word == "IS" => {
                self.pos += 1;
                let negate = self.eat_keyword("NOT");
                let condition = if self.eat_keyword("NULL") {
                    Condition::IsNull
                } else if self.eat_keyword("EMPTY") {
                    Condition::IsEmpty
                } else {
                    return Err(self.expected("Was expecting `NULL` or `EMPTY` after `IS`"));
                };
                let filter = Filter::Condition {
                    attribute,
                    condition,
                };
                return Ok(if negate {
                    Filter::Not(Box::new(filter))
                } else {
                    filter
                });
            }
            Some(Token {
                tok: Tok::Word(_) | Tok::Quoted(_),
                ..
            }) => {
                let low = self.value()?;
                if !self.eat_keyword("TO") {
                    return Err(
                        self.expected("Was expecting `TO` after the lower bound of a range")
                    );
                }
                Condition::Range(low, self.value()?)
            }
            _ => {
                return Err(self.expected(
                    "Was expecting an operation `=`, `!=`, `>=`, `>`, `<=`, `<`, `IN`, `NOT IN`, `TO`, `EXISTS`, `NOT EXISTS`, `IS NULL`, `IS NOT NULL`, `IS EMPTY`, `IS NOT EMPTY`",
                ));
            }
        };
        Ok(Filter::Condition {
            attribute,
            condition,
        })
    }

    /// `[a, b, ...]` after `IN`; a trailing comma and an empty list are accepted.
    fn list(&mut self) -> Result<Vec<String>, FilterError> {
        match self.peek() {
            Some(Token {
                tok: Tok::OpenBracket,
                ..
            }) => self.pos += 1,
            _ => return Err(self.expected("Was expecting `[` after `IN`")),
        }
        let mut values = Vec::new();
        loop {
            if let Some(Token {
                tok: Tok::CloseBracket,
                ..
            }) = self.peek()
            {
                self.pos += 1;
                return Ok(values);
            }
            values.push(self.value()?);
            match self.peek() {
                Some(Token {
                    tok: Tok::Comma, ..
                }) => self.pos += 1,
                Some(Token {
                    tok: Tok::CloseBracket,
                    ..
                }) => {}
                _ => return Err(self.expected("Was expecting `,` or `]` in the `IN` list")),
            }
        }
    }
}
