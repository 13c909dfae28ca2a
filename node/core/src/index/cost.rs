//! What a search will cost, told before it runs, from the term
//! dictionaries alone: the postings its compiled query reads.
//!
//! A conjunction reads its smallest required clause's postings and seeks
//! each other clause to every one of them (tantivy leads with the
//! smallest), a disjunction the sum of its clauses, a phrase its rarest
//! word's postings and a seek into each other word's, and a term query (or
//! a wrapper of term queries) the postings of its terms; the keyword
//! filters, those of their narrowest filter. A query without
//! terms (a range, every record) reads a column of the whole segment, so
//! its cost is not known from the dictionary: `None`.

use tantivy::query::{BooleanQuery, EmptyQuery, Occur, Query};
use tantivy::Term;

use super::filter::FilterQuery;
use super::interrupt::BoundedPhrase;
use crate::query::expr::{Expr, TextKind};

/// What seeking a clause to a document costs, in postings read in a row:
/// a seek into a dense clause mostly lands in the block it has decoded, one
/// into a sparse clause decodes another (measured: 16 kept no-match
/// queries off the caller's thread that take 0.1 ms there).
const SEEK_POSTINGS: u64 = 4;

/// Postings `query` reads, roughly and never less than it does, with
/// `doc_freq` giving each term's; `None` when that is not known from terms.
/// `Some(0)` only when a clause it needs has no postings, that is, when it
/// matches nothing ([`super::HoldingsIndex`] answers those without a search).
pub(crate) fn postings(query: &dyn Query, doc_freq: &mut dyn FnMut(&Term) -> u64) -> Option<u64> {
    read(query, doc_freq, SEEK_POSTINGS)
}

/// Documents `query` matches at most, with `doc_freq` giving each term's:
/// what its smallest required clause matches; `None` when that is not
/// known from terms.
pub(crate) fn matches(query: &dyn Query, doc_freq: &mut dyn FnMut(&Term) -> u64) -> Option<u64> {
    read(query, doc_freq, 0)
}

/// [`postings`] with a seek costing `seek` postings.
fn read(query: &dyn Query, doc_freq: &mut dyn FnMut(&Term) -> u64, seek: u64) -> Option<u64> {
    if query.is::<EmptyQuery>() {
        return Some(0);
    }
    if let Some(boolean) = query.downcast_ref::<BooleanQuery>() {
        let clauses = boolean.clauses();
        let required: Vec<&dyn Query> = clauses
            .iter()
            .filter(|(occur, _)| *occur == Occur::Must)
            .map(|(_, clause)| &**clause)
            .collect();
        if !required.is_empty() {
            // The smallest known clause leads, and every clause is sought
            // to each of its documents; without a known clause, the whole
            // segment is read.
            let lead = required
                .iter()
                .filter_map(|clause| read(*clause, doc_freq, seek))
                .min()?;
            let sought = (required.len() as u64 - 1).saturating_mul(seek);
            return Some(lead.saturating_mul(1 + sought));
        }
        return clauses
            .iter()
            .filter(|(occur, _)| *occur == Occur::Should)
            .try_fold(0u64, |sum, (_, clause)| {
                Some(sum.saturating_add(read(&**clause, doc_freq, seek)?))
            });
    }
    if let Some(filters) = query.downcast_ref::<FilterQuery>() {
        // Read as a bitset; its documents are those of its narrowest filter
        // at most.
        return filters
            .filters()
            .iter()
            .map(|terms| terms.iter().map(&mut *doc_freq).sum::<u64>())
            .min();
    }
    if let Some(phrase) = query.downcast_ref::<BoundedPhrase>() {
        let lead = phrase.words().map(&mut *doc_freq).min()?;
        let sought = (phrase.words().len() as u64)
            .saturating_sub(1)
            .saturating_mul(seek);
        return Some(lead.saturating_mul(1 + sought));
    }
    let mut sum = None::<u64>;
    query.query_terms(&mut |term, _| {
        sum = Some(sum.unwrap_or(0).saturating_add(doc_freq(term)));
    });
    sum
}

/// Every posting of every term `query` names, with `doc_freq` giving each
/// term's: what a query holding a phrase may read whatever leads it. A
/// phrase's scorer steps to its first match as it is built, and to its
/// next one at each seek, through the documents holding all its words,
/// checking their positions: a phrase whose words are common but never
/// side by side reads them all, however rare the word beside it.
pub(crate) fn every_posting(query: &dyn Query, doc_freq: &mut dyn FnMut(&Term) -> u64) -> u64 {
    let mut sum = 0u64;
    query.query_terms(&mut |term, _| sum = sum.saturating_add(doc_freq(term)));
    sum
}

/// Whether `expr` holds a phrase: a quoted one, or a word the analyzer
/// splits (`sea-ice`), matched as a phrase of its parts.
pub(crate) fn has_phrase(expr: &Expr) -> bool {
    match expr {
        Expr::All => false,
        Expr::Text { kind, text, .. } => {
            *kind == TextKind::Phrase
                || text
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|word| !word.is_empty())
                    .nth(1)
                    .is_some()
        }
        Expr::And(items) | Expr::Or(items) => items.iter().any(has_phrase),
        Expr::Not(inner) => has_phrase(inner),
    }
}

/// Whether `expr` holds a prefix: its query reads the postings of up to
/// [`super::compile::PREFIX_EXPANSIONS`] terms the dictionary expands it
/// to, which its own term does not tell.
pub(crate) fn has_prefix(expr: &Expr) -> bool {
    match expr {
        Expr::All => false,
        Expr::Text { kind, .. } => *kind == TextKind::Prefix,
        Expr::And(items) | Expr::Or(items) => items.iter().any(has_prefix),
        Expr::Not(inner) => has_prefix(inner),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::query::{AllQuery, BoostQuery, ConstScoreQuery, TermQuery};
    use tantivy::schema::{IndexRecordOption, Schema, STRING};

    fn term(text: &str) -> Term {
        let mut builder = Schema::builder();
        let field = builder.add_text_field("f", STRING);
        Term::from_field_text(field, text)
    }

    fn query(text: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(term(text), IndexRecordOption::Basic))
    }

    /// Each term's postings: its length in characters times 100.
    fn cost(query: &dyn Query) -> Option<u64> {
        postings(query, &mut |term| {
            100 * term.value().as_str().map_or(0, |text| text.len() as u64)
        })
    }

    #[test]
    fn a_conjunction_costs_its_smallest_clause_per_clause_and_a_disjunction_the_sum() {
        let and = BooleanQuery::new(vec![
            (Occur::Must, query("aaaa")),
            (Occur::Must, query("aa")),
            (Occur::MustNot, query("a")),
            (Occur::Must, Box::new(AllQuery)),
        ]);
        // "aa" leads, and the two other clauses are sought to each of its
        // documents.
        assert_eq!(cost(&and), Some(200 * (1 + 2 * SEEK_POSTINGS)));
        let or = BooleanQuery::new(vec![
            (Occur::Should, query("aaaa")),
            (Occur::Should, query("aa")),
        ]);
        assert_eq!(cost(&or), Some(600));
        // Wrappers count the terms inside them.
        let wrapped = BooleanQuery::new(vec![
            (Occur::Must, Box::new(BoostQuery::new(Box::new(or), 2.0))),
            (
                Occur::Must,
                Box::new(ConstScoreQuery::new(query("aaaaaaaa"), 0.0)),
            ),
        ]);
        assert_eq!(cost(&wrapped), Some(600 * (1 + SEEK_POSTINGS)));
        assert_eq!(cost(&EmptyQuery), Some(0));
        // A phrase needs every word: the rarest leads.
        let phrase = BoundedPhrase::new(vec![(0, term("aaaa")), (1, term("aa")), (2, term("aaa"))]);
        assert_eq!(cost(&phrase), Some(200 * (1 + 2 * SEEK_POSTINGS)));
        // What they match at most: their smallest required clause's.
        let most = |query: &dyn Query| {
            matches(query, &mut |term| {
                100 * term.value().as_str().map_or(0, |text| text.len() as u64)
            })
        };
        assert_eq!(most(&and), Some(200));
        assert_eq!(most(&wrapped), Some(600));
        assert_eq!(most(&phrase), Some(200));
    }

    #[test]
    fn the_keyword_filters_cost_their_narrowest_filter() {
        let filters = |sets: &[&[&str]]| {
            let filters = sets
                .iter()
                .map(|terms| terms.iter().map(|t| term(t)).collect())
                .collect();
            FilterQuery::new(filters, Default::default()).unwrap()
        };
        // Either of "aa" and "aaaa" (600), and "aaa" (300).
        let both = filters(&[&["aa", "aaaa"], &["aaa"]]);
        assert_eq!(cost(&both), Some(300));
        let and = BooleanQuery::new(vec![
            (Occur::Must, query("aaaaa")),
            (Occur::Must, Box::new(both)),
        ]);
        assert_eq!(cost(&and), Some(300 * (1 + SEEK_POSTINGS)));
        // A filter whose only term no record holds: nothing matches.
        assert_eq!(cost(&filters(&[&["aa"], &[""]])), Some(0));
    }

    #[test]
    fn a_query_without_terms_has_no_known_cost() {
        assert_eq!(cost(&AllQuery), None);
        let or = BooleanQuery::new(vec![
            (Occur::Should, query("aa")),
            (Occur::Should, Box::new(AllQuery)),
        ]);
        assert_eq!(cost(&or), None);
        let and = BooleanQuery::new(vec![(Occur::Must, Box::new(AllQuery))]);
        assert_eq!(cost(&and), None);
    }

    #[test]
    fn prefixes_are_found_at_any_depth() {
        let text = |kind| Expr::Text {
            field: None,
            text: "ice".into(),
            kind,
            position: 0,
        };
        assert!(!has_prefix(&Expr::And(vec![
            text(TextKind::Word),
            text(TextKind::Phrase)
        ])));
        assert!(has_prefix(&Expr::Or(vec![
            text(TextKind::Word),
            Expr::Not(Box::new(text(TextKind::Prefix)))
        ])));
    }
}
