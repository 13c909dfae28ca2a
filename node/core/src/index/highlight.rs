//! Snippets: a fragment of the description (or the title) with the terms
//! the query matched in `<b>…</b>`, the text HTML-escaped.
//!
//! Terms come from the positive part of the parsed query (a term under NOT
//! is not highlighted). Prefix terms are expanded against the words of the
//! document being shown, analyzed the way the index analyzes them.

use std::collections::BTreeMap;

use tantivy::schema::Field;
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::TextAnalyzer;

use super::schema::{analyze, Fields};
use crate::query::expr::{Expr, TextField, TextKind};

/// Longest fragment, in characters.
const SNIPPET_CHARS: usize = 200;

struct FieldTerms {
    field: Field,
    analyzer: TextAnalyzer,
    terms: BTreeMap<String, f32>,
    prefixes: Vec<String>,
}

pub(crate) struct Highlighter {
    description: FieldTerms,
    title: FieldTerms,
}

impl Highlighter {
    pub fn new(query: &Expr, fields: &Fields, text: &TextAnalyzer, plain: &TextAnalyzer) -> Self {
        let empty = |field| FieldTerms {
            field,
            analyzer: text.clone(),
            terms: BTreeMap::new(),
            prefixes: Vec::new(),
        };
        let mut highlighter = Self {
            description: empty(fields.description),
            title: empty(fields.title),
        };
        highlighter.collect(query, plain);
        highlighter
    }

    fn collect(&mut self, expr: &Expr, plain: &TextAnalyzer) {
        match expr {
            Expr::All | Expr::Not(_) => {}
            Expr::And(items) | Expr::Or(items) => {
                for item in items {
                    self.collect(item, plain);
                }
            }
            Expr::Text {
                field, text, kind, ..
            } => {
                let targets = match field {
                    None => vec![&mut self.description, &mut self.title],
                    Some(TextField::Description) => vec![&mut self.description],
                    Some(TextField::Title) => vec![&mut self.title],
                    Some(_) => Vec::new(),
                };
                for target in targets {
                    let mut terms = analyze(&target.analyzer, text);
                    if *kind == TextKind::Prefix {
                        if let Some((_, last)) = analyze(plain, text).pop() {
                            target.prefixes.push(last);
                        }
                        terms.pop();
                    }
                    for (_, term) in terms {
                        target.terms.insert(term, 1.0);
                    }
                }
            }
        }
    }

    /// The snippet of a hit; the start of the description when no query
    /// term occurs in the description or title.
    pub fn snippet(&self, title: &str, description: &str) -> String {
        for (terms, text) in [(&self.description, description), (&self.title, title)] {
            let mut words = terms.terms.clone();
            if !terms.prefixes.is_empty() {
                for (_, word) in analyze(&terms.analyzer, text) {
                    if terms.prefixes.iter().any(|p| word.starts_with(p.as_str())) {
                        words.insert(word, 1.0);
                    }
                }
            }
            if words.is_empty() {
                continue;
            }
            let generator =
                SnippetGenerator::new(words, terms.analyzer.clone(), terms.field, SNIPPET_CHARS);
            let snippet = generator.snippet(text);
            if !snippet.highlighted().is_empty() {
                return snippet.to_html();
            }
        }
        escape(&leading(description, SNIPPET_CHARS))
    }
}

/// The first words of `text`, at most `max` characters, cut at a space.
fn leading(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    match cut.rfind(char::is_whitespace) {
        Some(space) if space > 0 => format!("{}…", cut[..space].trim_end()),
        _ => format!("{cut}…"),
    }
}

/// Text made safe for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        push_escaped(&mut escaped, c);
    }
    escaped
}

/// `c` onto `out`, escaped as [`escape`] does.
fn push_escaped(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '"' => out.push_str("&quot;"),
        '\'' => out.push_str("&#39;"),
        c => out.push(c),
    }
}

/// `snippet`, which another node says is a snippet, as this node writes
/// one: text escaped, with `<b>` and `</b>` the only markup and balanced.
/// The entities [`escape`] writes are kept; any other `<`, `>`, `&` or
/// quote is escaped, so nothing a peer sends becomes markup of its own.
pub fn sanitize(snippet: &str) -> String {
    const ENTITIES: [&str; 5] = ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"];
    let mut out = String::with_capacity(snippet.len());
    let mut open = false;
    let mut rest = snippet;
    while let Some(c) = rest.chars().next() {
        if let Some(entity) = ENTITIES.iter().find(|e| rest.starts_with(**e)) {
            out.push_str(entity);
            rest = &rest[entity.len()..];
        } else if rest.starts_with("<b>") {
            if !open {
                out.push_str("<b>");
                open = true;
            }
            rest = &rest[3..];
        } else if rest.starts_with("</b>") {
            if open {
                out.push_str("</b>");
                open = false;
            }
            rest = &rest[4..];
        } else {
            push_escaped(&mut out, c);
            rest = &rest[c.len_utf8()..];
        }
    }
    if open {
        out.push_str("</b>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a peer sends as a snippet becomes what this node writes:
    /// escaped text with balanced `<b>` marks, nothing else.
    #[test]
    fn a_peers_snippet_keeps_only_bold_marks_and_escaped_text() {
        let cases = [
            ("sea <b>ice</b> &amp; snow", "sea <b>ice</b> &amp; snow"),
            (
                "<img src=x onerror=alert(1)>",
                "&lt;img src=x onerror=alert(1)&gt;",
            ),
            (
                "<b onclick=x>ice</b> & \"q\" 'a'",
                "&lt;b onclick=x&gt;ice &amp; &quot;q&quot; &#39;a&#39;",
            ),
            ("&lt;script&gt;", "&lt;script&gt;"),
            ("&#x3c;script", "&amp;#x3c;script"),
            ("<b><b>ice", "<b>ice</b>"),
            ("</b>ice</b>", "ice"),
            ("<B>ice</B>", "&lt;B&gt;ice&lt;/B&gt;"),
        ];
        for (sent, kept) in cases {
            assert_eq!(sanitize(sent), kept, "{sent}");
        }
        // This node's own snippets pass unchanged.
        let own = format!("{} <b>{}</b>", escape("a & <b>"), escape("ice"));
        assert_eq!(sanitize(&own), own);
    }

    #[test]
    fn leading_text_is_cut_at_a_word_and_escaped() {
        assert_eq!(leading("short", 10), "short");
        assert_eq!(leading("sea ice thickness", 10), "sea ice…");
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
