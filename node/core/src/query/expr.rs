//! The query language of `SearchRequest::text`, parsed into an [`Expr`]
//! independent of the index engine.
//!
//! ```text
//! query := and?                        empty text matches every record
//! and   := or ( ["AND"] or )*          juxtaposition is AND
//! or    := unary ( "OR" unary )*       OR binds tighter than AND
//! unary := ("NOT" | "-") unary | "+" unary | atom
//! atom  := "(" and ")" | FIELD ":" value | value
//! value := WORD | WORD "*" | '"' PHRASE '"' | "(" and ")"
//! FIELD := title | description | keyword | creator | project
//! ```
//!
//! `sea ice OR snow` therefore reads `sea AND (ice OR snow)`, as web search
//! engines read it. Operators are upper case; `and`, `or`, `not` are words.
//! An unfielded term searches all five fields. `field:(a OR b)` applies the
//! field to the group. A trailing `*` makes a prefix. A word the analyzer
//! splits (`sea-ice`) is searched as a phrase.
//!
//! Errors carry the 0-based character (Unicode scalar) offset of the
//! problem. Input is bounded ([`MAX_QUERY_CHARS`], [`MAX_DEPTH`],
//! [`MAX_TERMS`]) so no query is unboundedly expensive to parse or run.

use std::fmt;

/// Longest accepted query text, in characters.
pub const MAX_QUERY_CHARS: usize = 1000;
/// Deepest nesting of parentheses and negations.
pub const MAX_DEPTH: usize = 16;
/// Most terms in one query: each word counts, those of a phrase or of a
/// word the analyzer splits (`sea-ice`) each on its own, since a phrase
/// seeks every one of its words.
pub const MAX_TERMS: usize = 64;
/// Most prefixes (`glac*`) in one query: each reads the postings of up to
/// a thousand terms in five fields.
pub const MAX_PREFIXES: usize = 8;
/// Words of this many bytes or more are not indexed (a checksum, a long
/// run of digits), so a query naming one is refused rather than left to
/// match nothing, or, dropped by the analyzer, everything.
pub const MAX_WORD_BYTES: usize = 64;

/// A text field a query term may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TextField {
    Title,
    Description,
    Keyword,
    Creator,
    Project,
}

impl TextField {
    /// Every text field: what an unfielded term searches.
    pub const ALL: [TextField; 5] = [
        Self::Title,
        Self::Description,
        Self::Keyword,
        Self::Creator,
        Self::Project,
    ];

    /// The name used in queries (and in the index schema).
    pub fn name(self) -> &'static str {
        match self {
            Self::Title => "title",
            Self::Description => "description",
            Self::Keyword => "keyword",
            Self::Creator => "creator",
            Self::Project => "project",
        }
    }

    /// Reads a field name, any case. `keywords` and `creators` are accepted
    /// for the record's own (plural) field names.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "title" => Some(Self::Title),
            "description" => Some(Self::Description),
            "keyword" | "keywords" => Some(Self::Keyword),
            "creator" | "creators" => Some(Self::Creator),
            "project" => Some(Self::Project),
            _ => None,
        }
    }
}

/// How a term's text is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// A bare word (a phrase if the analyzer splits it).
    Word,
    /// A quoted phrase.
    Phrase,
    /// `text*`: any indexed term starting with the text.
    Prefix,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Every record.
    All,
    /// A term, searched in `field` or in every text field.
    Text {
        field: Option<TextField>,
        text: String,
        kind: TextKind,
        /// Character offset of the term in the query text.
        position: usize,
    },
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
}

/// Why a query text does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at character {position}: {message}")]
pub struct QueryError {
    /// 0-based character offset.
    pub position: usize,
    pub message: String,
}

fn error<T>(position: usize, message: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError {
        position,
        message: message.into(),
    })
}

/// Parses a query text.
pub fn parse(text: &str) -> Result<Expr, QueryError> {
    // Counted before anything is copied: a text may be as long as the
    // message that carries it.
    if text.chars().take(MAX_QUERY_CHARS + 1).count() > MAX_QUERY_CHARS {
        return error(
            MAX_QUERY_CHARS,
            format!("the query is longer than {MAX_QUERY_CHARS} characters"),
        );
    }
    let chars: Vec<char> = text.chars().collect();
    let tokens = lex(&chars)?;
    let mut parser = Parser {
        tokens: &tokens,
        at: 0,
        end: chars.len(),
        terms: 0,
        prefixes: 0,
    };
    let items = parser.and(0, None)?;
    if let Some(token) = parser.peek() {
        // `and` stops only at the end or at a `)` it did not open.
        return error(token.position, format!("unexpected {}", token.kind));
    }
    Ok(all_of(items))
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Open,
    Close,
    Word(String),
    Phrase(String),
    Field(String),
    And,
    Or,
    Not,
    Minus,
    Plus,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open => f.write_str("`(`"),
            Self::Close => f.write_str("`)`"),
            Self::Word(w) => write!(f, "`{w}`"),
            Self::Phrase(p) => write!(f, "\"{p}\""),
            Self::Field(name) => write!(f, "`{name}:`"),
            Self::And => f.write_str("`AND`"),
            Self::Or => f.write_str("`OR`"),
            Self::Not => f.write_str("`NOT`"),
            Self::Minus => f.write_str("`-`"),
            Self::Plus => f.write_str("`+`"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Token {
    kind: Kind,
    position: usize,
    end: usize,
}

fn lex(chars: &[char]) -> Result<Vec<Token>, QueryError> {
    let mut tokens = Vec::new();
    let mut i = 0;
    // The value right after `field:` is taken as written: no operators, no
    // further `name:` split.
    let mut raw_value = false;
    let push = |tokens: &mut Vec<Token>, kind, position, end| {
        tokens.push(Token {
            kind,
            position,
            end,
        })
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            raw_value = false;
            i += 1;
            continue;
        }
        match c {
            '(' | ')' => {
                let kind = if c == '(' { Kind::Open } else { Kind::Close };
                push(&mut tokens, kind, i, i + 1);
                raw_value = false;
                i += 1;
            }
            '"' => {
                let Some(length) = chars[i + 1..].iter().position(|&c| c == '"') else {
                    return error(i, "unclosed quote");
                };
                let phrase = chars[i + 1..i + 1 + length].iter().collect();
                push(&mut tokens, Kind::Phrase(phrase), i, i + length + 2);
                raw_value = false;
                i += length + 2;
            }
            '-' | '+'
                if !raw_value
                    && chars
                        .get(i + 1)
                        .is_some_and(|next| !next.is_whitespace() && *next != ')') =>
            {
                let kind = if c == '-' { Kind::Minus } else { Kind::Plus };
                push(&mut tokens, kind, i, i + 1);
                i += 1;
            }
            _ => {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c.is_whitespace() || matches!(c, '(' | ')' | '"'))
                    .map_or(chars.len(), |length| i + length);
                let word = &chars[i..end];
                if !raw_value {
                    if let Some(colon) = word.iter().position(|&c| c == ':') {
                        let name = &word[..colon];
                        if !name.is_empty()
                            && name.iter().all(|c| c.is_ascii_alphabetic() || *c == '_')
                        {
                            let name = name.iter().collect();
                            push(&mut tokens, Kind::Field(name), i, i + colon + 1);
                            raw_value = true;
                            i += colon + 1;
                            continue;
                        }
                    }
                }
                let word: String = word.iter().collect();
                let kind = match word.as_str() {
                    "AND" if !raw_value => Kind::And,
                    "OR" if !raw_value => Kind::Or,
                    "NOT" if !raw_value => Kind::Not,
                    _ => Kind::Word(word),
                };
                push(&mut tokens, kind, i, end);
                raw_value = false;
                i = end;
            }
        }
    }
    Ok(tokens)
}

struct Parser<'t> {
    tokens: &'t [Token],
    at: usize,
    /// Length of the text in characters: the position of "the end".
    end: usize,
    terms: usize,
    prefixes: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    /// After an operator, something it can apply to must follow.
    fn expect_operand(&self, operator: &str) -> Result<(), QueryError> {
        match self.peek() {
            Some(Token {
                kind:
                    Kind::Open
                    | Kind::Word(_)
                    | Kind::Phrase(_)
                    | Kind::Field(_)
                    | Kind::Not
                    | Kind::Minus
                    | Kind::Plus,
                ..
            }) => Ok(()),
            Some(token) => error(
                token.position,
                format!("expected a term after `{operator}`, found {}", token.kind),
            ),
            None => error(self.end, format!("expected a term after `{operator}`")),
        }
    }

    /// `and := or ( ["AND"] or )*`, up to the end or a `)`.
    fn and(&mut self, depth: usize, field: Option<TextField>) -> Result<Vec<Expr>, QueryError> {
        let mut items = Vec::new();
        while let Some(token) = self.peek() {
            match token.kind {
                Kind::Close => break,
                Kind::And => {
                    if items.is_empty() {
                        return error(token.position, "`AND` needs a term before it");
                    }
                    self.at += 1;
                    self.expect_operand("AND")?;
                }
                Kind::Or if items.is_empty() => {
                    return error(token.position, "`OR` needs a term before it");
                }
                _ => {}
            }
            items.push(self.or(depth, field)?);
        }
        Ok(items)
    }

    /// `or := unary ( "OR" unary )*`
    fn or(&mut self, depth: usize, field: Option<TextField>) -> Result<Expr, QueryError> {
        let mut alternatives = vec![self.unary(depth, field)?];
        while let Some(Token { kind: Kind::Or, .. }) = self.peek() {
            self.at += 1;
            self.expect_operand("OR")?;
            alternatives.push(self.unary(depth, field)?);
        }
        without_repeats(&mut alternatives);
        Ok(if alternatives.len() == 1 {
            alternatives.remove(0)
        } else {
            Expr::Or(alternatives)
        })
    }

    fn unary(&mut self, depth: usize, field: Option<TextField>) -> Result<Expr, QueryError> {
        let Some(token) = self.peek().cloned() else {
            return error(self.end, "expected a term");
        };
        match token.kind {
            Kind::Not | Kind::Minus | Kind::Plus => {
                if depth >= MAX_DEPTH {
                    return error(token.position, "the query is nested too deeply");
                }
                self.at += 1;
                let operator = match token.kind {
                    Kind::Not => "NOT",
                    Kind::Minus => "-",
                    _ => "+",
                };
                self.expect_operand(operator)?;
                let operand = self.unary(depth + 1, field)?;
                Ok(if token.kind == Kind::Plus {
                    operand
                } else {
                    Expr::Not(Box::new(operand))
                })
            }
            _ => self.atom(depth, field),
        }
    }

    fn atom(&mut self, depth: usize, field: Option<TextField>) -> Result<Expr, QueryError> {
        let Some(token) = self.peek().cloned() else {
            return error(self.end, "expected a term");
        };
        match token.kind {
            Kind::Open => {
                if depth >= MAX_DEPTH {
                    return error(token.position, "the query is nested too deeply");
                }
                self.at += 1;
                let items = self.and(depth + 1, field)?;
                match self.peek() {
                    Some(Token {
                        kind: Kind::Close, ..
                    }) => self.at += 1,
                    _ => return error(token.position, "unclosed `(`"),
                }
                if items.is_empty() {
                    return error(token.position, "empty parentheses");
                }
                Ok(all_of(items))
            }
            Kind::Field(name) => {
                let Some(named) = TextField::from_name(&name) else {
                    return error(
                        token.position,
                        format!(
                            "unknown field `{name}` (fields: title, description, keyword, creator, project)"
                        ),
                    );
                };
                self.at += 1;
                match self.peek() {
                    Some(Token {
                        kind: Kind::Open | Kind::Word(_) | Kind::Phrase(_),
                        ..
                    }) => self.atom(depth, Some(named)),
                    Some(next) => error(
                        next.position,
                        format!("expected a value after `{name}:`, found {}", next.kind),
                    ),
                    None => error(token.end, format!("expected a value after `{name}:`")),
                }
            }
            Kind::Word(word) => {
                self.at += 1;
                self.count_terms(token.position, &word)?;
                let stem = word.trim_end_matches('*');
                if !stem.is_empty() && stem.len() < word.len() {
                    self.prefixes += 1;
                    if self.prefixes > MAX_PREFIXES {
                        return error(
                            token.position,
                            format!("the query has more than {MAX_PREFIXES} prefixes"),
                        );
                    }
                }
                Ok(if stem.is_empty() {
                    Expr::All
                } else {
                    Expr::Text {
                        field,
                        text: stem.to_owned(),
                        kind: if stem.len() < word.len() {
                            TextKind::Prefix
                        } else {
                            TextKind::Word
                        },
                        position: token.position,
                    }
                })
            }
            Kind::Phrase(phrase) => {
                self.at += 1;
                self.count_terms(token.position, &phrase)?;
                Ok(Expr::Text {
                    field,
                    text: phrase,
                    kind: TextKind::Phrase,
                    position: token.position,
                })
            }
            Kind::Close | Kind::And | Kind::Or | Kind::Not | Kind::Minus | Kind::Plus => error(
                token.position,
                format!("expected a term, found {}", token.kind),
            ),
        }
    }

    /// Counts the words of `text` (at least one) towards [`MAX_TERMS`];
    /// refuses one of [`MAX_WORD_BYTES`] or more.
    fn count_terms(&mut self, position: usize, text: &str) -> Result<(), QueryError> {
        let mut words = 0;
        for word in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            if word.len() >= MAX_WORD_BYTES {
                let start: String = word.chars().take(12).collect();
                return error(
                    position,
                    format!(
                        "the word {start}… is {} bytes long; words of {MAX_WORD_BYTES} bytes \
                         or more are not indexed, so none could match",
                        word.len()
                    ),
                );
            }
            words += 1;
        }
        self.terms += words.max(1);
        if self.terms > MAX_TERMS {
            return error(
                position,
                format!("the query has more than {MAX_TERMS} terms"),
            );
        }
        Ok(())
    }
}

/// Drops a term that repeats one before it (same field, text and kind):
/// `a AND a` and `a OR a` match what `a` does, and a query of one prefix
/// many times would read its thousand terms' postings as often.
fn without_repeats(items: &mut Vec<Expr>) {
    let mut seen: Vec<(Option<TextField>, String, TextKind)> = Vec::new();
    items.retain(|item| match item {
        Expr::Text {
            field, text, kind, ..
        } => {
            let key = (*field, text.clone(), *kind);
            let first = !seen.contains(&key);
            if first {
                seen.push(key);
            }
            first
        }
        _ => true,
    });
}

fn all_of(mut items: Vec<Expr>) -> Expr {
    without_repeats(&mut items);
    match items.len() {
        0 => Expr::All,
        1 => items.remove(0),
        _ => Expr::And(items),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn word(text: &str, position: usize) -> Expr {
        Expr::Text {
            field: None,
            text: text.into(),
            kind: TextKind::Word,
            position,
        }
    }

    fn fails_at(text: &str, position: usize, needle: &str) {
        let error = parse(text).unwrap_err();
        assert_eq!(error.position, position, "{text:?}: {error}");
        assert!(error.message.contains(needle), "{text:?}: {error}");
    }

    /// A term repeated in a conjunction or an alternative is read once.
    #[test]
    fn a_repeated_term_is_one_term() {
        assert_eq!(parse("ice ice").unwrap(), word("ice", 0));
        assert_eq!(parse("ice OR ice").unwrap(), word("ice", 0));
        assert_eq!(
            parse("sea ice sea").unwrap(),
            Expr::And(vec![word("sea", 0), word("ice", 4)])
        );
        // Not the same term: another field, or a prefix.
        assert!(matches!(parse("ice title:ice").unwrap(), Expr::And(items) if items.len() == 2));
        assert!(matches!(parse("ice ice*").unwrap(), Expr::And(items) if items.len() == 2));
    }

    /// A word too long to be indexed is refused, naming it, wherever it
    /// stands: alone, in a phrase, in a field, negated, as a prefix.
    #[test]
    fn a_word_too_long_to_be_indexed_is_refused() {
        let checksum = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(checksum.len(), MAX_WORD_BYTES);
        for query in [
            checksum.to_owned(),
            format!("glacier {checksum}"),
            format!("\"ice {checksum}\""),
            format!("title:{checksum}"),
            format!("-{checksum}"),
            format!("{checksum}*"),
        ] {
            let err = parse(&query).unwrap_err();
            assert!(
                err.message.contains("e3b0c44298fc…") && err.message.contains("64 bytes"),
                "{query}: {err}"
            );
        }
        // One byte shorter is a word as any other.
        assert!(parse(&checksum[1..]).is_ok());
        // Counted in bytes, as the index counts them.
        assert!(parse(&"é".repeat(32)).is_err());
        assert!(parse(&"é".repeat(31)).is_ok());
    }

    #[test]
    fn empty_text_matches_everything() {
        assert_eq!(parse("").unwrap(), Expr::All);
        assert_eq!(parse("  \t").unwrap(), Expr::All);
        assert_eq!(parse("*").unwrap(), Expr::All);
    }

    #[test]
    fn juxtaposition_is_and_and_or_binds_tighter() {
        assert_eq!(
            parse("sea ice").unwrap(),
            Expr::And(vec![word("sea", 0), word("ice", 4)])
        );
        assert_eq!(
            parse("sea ice OR snow").unwrap(),
            Expr::And(vec![
                word("sea", 0),
                Expr::Or(vec![word("ice", 4), word("snow", 11)])
            ])
        );
        assert_eq!(
            parse("sea AND ice").unwrap(),
            Expr::And(vec![word("sea", 0), word("ice", 8)])
        );
        assert_eq!(
            parse("(sea ice) OR snow").unwrap(),
            Expr::Or(vec![
                Expr::And(vec![word("sea", 1), word("ice", 5)]),
                word("snow", 13)
            ])
        );
    }

    #[test]
    fn negation_forms() {
        let not_fish = Expr::Not(Box::new(word("fish", 1)));
        assert_eq!(
            parse("-fish ocean").unwrap(),
            Expr::And(vec![not_fish.clone(), word("ocean", 6)])
        );
        assert_eq!(
            parse("NOT fish").unwrap(),
            Expr::Not(Box::new(word("fish", 4)))
        );
        assert_eq!(parse("+ocean").unwrap(), word("ocean", 1));
        // A dash inside a word or standing alone is text, not an operator.
        assert_eq!(parse("sea-ice").unwrap(), word("sea-ice", 0));
        assert_eq!(
            parse("a - b").unwrap(),
            Expr::And(vec![word("a", 0), word("-", 2), word("b", 4)])
        );
        // Lower-case operators are words.
        assert_eq!(
            parse("fish and chips").unwrap(),
            Expr::And(vec![word("fish", 0), word("and", 5), word("chips", 9)])
        );
    }

    #[test]
    fn fields_phrases_and_prefixes() {
        assert_eq!(
            parse("title:glacier").unwrap(),
            Expr::Text {
                field: Some(TextField::Title),
                text: "glacier".into(),
                kind: TextKind::Word,
                position: 6
            }
        );
        assert_eq!(
            parse(r#"keyword:"sea ice""#).unwrap(),
            Expr::Text {
                field: Some(TextField::Keyword),
                text: "sea ice".into(),
                kind: TextKind::Phrase,
                position: 8
            }
        );
        assert_eq!(
            parse("glaci*").unwrap(),
            Expr::Text {
                field: None,
                text: "glaci".into(),
                kind: TextKind::Prefix,
                position: 0
            }
        );
        let creator = |text: &str, position| Expr::Text {
            field: Some(TextField::Creator),
            text: text.into(),
            kind: TextKind::Word,
            position,
        };
        assert_eq!(
            parse("creator:(wang OR li)").unwrap(),
            Expr::Or(vec![creator("wang", 9), creator("li", 17)])
        );
        // The value after `field:` is taken as written.
        assert_eq!(parse("creators:AND").unwrap(), creator("AND", 9));
        assert_eq!(
            parse("Description:a:b").unwrap(),
            Expr::Text {
                field: Some(TextField::Description),
                text: "a:b".into(),
                kind: TextKind::Word,
                position: 12
            }
        );
        // Identifiers and DOIs with punctuation are words.
        assert_eq!(
            parse("10.1234/pdc.2021:0412").unwrap(),
            word("10.1234/pdc.2021:0412", 0)
        );
    }

    #[test]
    fn malformed_queries_report_where() {
        fails_at(r#"title:"sea ice"#, 6, "unclosed quote");
        fails_at("(glacier", 0, "unclosed `(`");
        fails_at("a (b (c)", 2, "unclosed `(`");
        fails_at("glacier)", 7, "unexpected `)`");
        fails_at("ice foo:bar", 4, "unknown field `foo`");
        fails_at("ice AND", 7, "after `AND`");
        fails_at("ice OR", 6, "after `OR`");
        fails_at("ice AND OR snow", 8, "after `AND`");
        fails_at("AND ice", 0, "before it");
        fails_at("OR ice", 0, "before it");
        fails_at("ice NOT", 7, "after `NOT`");
        fails_at("()", 0, "empty parentheses");
        fails_at("title:", 6, "after `title:`");
        fails_at("title: )", 7, "after `title:`");
        // Positions count characters, not bytes.
        fails_at("éé (x", 3, "unclosed `(`");
        fails_at(&"(".repeat(MAX_DEPTH + 1), MAX_DEPTH, "nested");
        fails_at(
            &"-".repeat(40)
                .chars()
                .chain("x".chars())
                .collect::<String>(),
            MAX_DEPTH,
            "nested",
        );
        let many = vec!["w"; MAX_TERMS + 1].join(" ");
        fails_at(&many, 2 * MAX_TERMS, "terms");
        // A phrase's words count each, and so do those of a word the
        // analyzer splits.
        let phrase = format!("\"{}\"", vec!["w"; MAX_TERMS + 1].join(" "));
        fails_at(&phrase, 0, "terms");
        fails_at(&vec!["w"; MAX_TERMS + 1].join("-"), 0, "terms");
        assert!(parse(&format!("\"{}\"", vec!["w"; MAX_TERMS].join(" "))).is_ok());
        let prefixes: Vec<String> = (0..=MAX_PREFIXES).map(|i| format!("p{i}*")).collect();
        fails_at(&prefixes.join(" "), 4 * MAX_PREFIXES, "prefixes");
        assert!(parse(&prefixes[..MAX_PREFIXES].join(" ")).is_ok());
        fails_at(&"x".repeat(MAX_QUERY_CHARS + 1), MAX_QUERY_CHARS, "longer");
        // As long as a message may be (16 MiB, multi-byte): refused on a
        // count of its first characters, nothing copied.
        fails_at(&"é".repeat(8 << 20), MAX_QUERY_CHARS, "longer");
        let longest = vec!["é".repeat(24); 40].join(" ") + "é";
        assert_eq!(longest.chars().count(), MAX_QUERY_CHARS);
        assert!(parse(&longest).is_ok());
    }

    fn query_like() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("AND".to_owned()),
            Just("OR".to_owned()),
            Just("NOT".to_owned()),
            Just("(".to_owned()),
            Just(")".to_owned()),
            Just("\"".to_owned()),
            Just("-".to_owned()),
            Just("+".to_owned()),
            Just("*".to_owned()),
            Just("title:".to_owned()),
            Just("nope:".to_owned()),
            Just(" ".to_owned()),
            "[a-zé:]{1,6}",
        ];
        prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn never_panics_and_positions_lie_inside(text in "\\PC{0,80}") {
            if let Err(error) = parse(&text) {
                prop_assert!(error.position <= text.chars().count());
            }
        }

        #[test]
        fn never_panics_on_operator_soup(text in query_like()) {
            if let Err(error) = parse(&text) {
                prop_assert!(error.position <= text.chars().count());
            }
        }
    }
}
