//! A [`Plan`] and what the caller may see
//! ([`Viewer::index_filter`](crate::visibility::Viewer::index_filter))
//! compiled into one tantivy query.
//!
//! The text query scores; every filter (visibility, scope, value filters,
//! year, time, the spatial prefilter) is a `Must` clause scoring 0, so
//! filters change the match set and never the ranking. Visibility is a
//! clause of the query itself: hits, totals and facet counts all come from
//! the same restricted match set. The keyword filters (visibility, origin,
//! discipline, access, licence, format) are one clause, a bitset per
//! segment ([`super::filter`]); each range of a column (year, time, the
//! spatial prefilter) one clause that says how much it holds
//! ([`super::range`]).

use std::ops::Bound;
use std::sync::Arc;

use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, EmptyQuery, Occur, PhrasePrefixQuery, Query,
};
use tantivy::schema::Field;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::Term;

use super::any_field::AnyFieldQuery;
use super::any_field::{Peaks, Words};
use super::bits::BitsCache;
use super::filter::FilterQuery;
use super::interrupt::BoundedPhrase;
use super::range::{ColumnRange, Values};
use super::schema::{analyze, Fields};
use crate::query::expr::{Expr, TextField, TextKind};
use crate::query::Plan;

/// Most index terms a prefix expands to; beyond it the rarest
/// (lexicographically last) expansions are not searched.
pub(crate) const PREFIX_EXPANSIONS: u32 = 1000;

/// What part of the index an expression matches.
enum Matches {
    Everything,
    Nothing,
    /// Whatever the rest of the query matches: a term without searchable
    /// content (punctuation only) is read as if it were not written, so
    /// its negation constrains nothing either, and it adds no alternative.
    Unconstrained,
    Some(Box<dyn Query>),
}

/// The clauses of a conjunction.
enum Conjunction {
    /// It matches nothing.
    Nothing,
    /// Every item is [`Matches::Unconstrained`].
    Unconstrained,
    /// Each item required, or excluded when negated; none when it matches
    /// everything. Clauses may all be exclusions.
    Clauses(Vec<(Occur, Box<dyn Query>)>),
}

/// Compiles queries against the index schema and analyzers.
pub(crate) struct Compiler<'a> {
    pub fields: &'a Fields,
    /// Bitsets of the dense keyword filters.
    pub bits_cache: &'a Arc<BitsCache>,
    /// What common terms score at most in each segment.
    pub peaks: &'a Arc<Peaks>,
    /// The stemming analyzer of most text fields.
    pub text: &'a TextAnalyzer,
    /// The analyzer of names and of prefixes (no stemming).
    pub plain: &'a TextAnalyzer,
}

impl Compiler<'_> {
    /// The whole query: text, visibility (`audience`, the caller's
    /// [`Viewer::index_filter`](crate::visibility::Viewer::index_filter)),
    /// scope and filters; and whether its words may prune
    /// ([`super::prune`]).
    pub fn build(&self, plan: &Plan, audience: Option<&[String]>) -> (Box<dyn Query>, bool) {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        // The words of a conjunction are clauses of the whole query, beside
        // the filters, rather than a query of their own: one intersection
        // leapfrogs over every clause, where a nested one was sought
        // through a call that builds a list of its clauses on every seek.
        match &plan.query {
            Expr::And(items) => match self.conjunction(items) {
                Conjunction::Clauses(words) => clauses.extend(words),
                Conjunction::Unconstrained => {}
                Conjunction::Nothing => return (Box::new(EmptyQuery), false),
            },
            other => match self.expr(other) {
                Matches::Nothing => return (Box::new(EmptyQuery), false),
                Matches::Everything | Matches::Unconstrained => {}
                Matches::Some(query) => clauses.push((Occur::Must, query)),
            },
        }
        let prunes = share_words(&mut clauses, self.peaks);
        let fields = self.fields;
        let mut keywords: Vec<Vec<Term>> = Vec::new();
        let mut keyword = |field: Field, values: &[String]| {
            if !values.is_empty() {
                let terms = values.iter().map(|v| Term::from_field_text(field, v));
                keywords.push(terms.collect());
            }
        };
        if let Some(audience) = audience {
            keyword(fields.audience, audience);
        }
        if let Some(origin) = &plan.local_origin {
            keyword(fields.origin, std::slice::from_ref(origin));
        }
        keyword(fields.discipline, &plan.disciplines);
        keyword(fields.origin, &plan.origins);
        keyword(fields.access, &plan.access);
        keyword(fields.license, &plan.licenses);
        keyword(fields.format, &plan.formats);
        if let Some(keywords) = FilterQuery::new(keywords, self.bits_cache.clone()) {
            clauses.push((Occur::Must, Box::new(keywords)));
        }
        let mut filter = |range: ColumnRange| clauses.push((Occur::Must, Box::new(range)));
        if let Some((from, to)) = plan.year {
            let bound = |year: Option<u64>| year.map_or(Bound::Unbounded, Bound::Included);
            filter(ColumnRange::new(
                fields.year,
                Values::U64(bound(from), bound(to)),
            ));
        }
        if let Some((from, to)) = plan.time {
            // Overlap of [start, end] with [from, to]: start <= to and end >= from.
            // Records without coverage have neither value and never match.
            if let Some(to) = to {
                filter(ColumnRange::new(
                    fields.time_start,
                    Values::I64(Bound::Unbounded, Bound::Included(to)),
                ));
            }
            if let Some(from) = from {
                filter(ColumnRange::new(
                    fields.time_end,
                    Values::I64(Bound::Included(from), Bound::Unbounded),
                ));
            }
        }
        if let Some(bbox) = &plan.bbox {
            // A superset by latitude: some part reaches down to the box's
            // north and some part up to its south. The collector decides
            // exactly, part by part.
            filter(ColumnRange::new(
                fields.box_south,
                Values::F64(Bound::Unbounded, Bound::Included(bbox.north)),
            ));
            filter(ColumnRange::new(
                fields.box_north,
                Values::F64(Bound::Included(bbox.south), Bound::Unbounded),
            ));
        }
        if clauses.is_empty() {
            return (Box::new(AllQuery), prunes);
        }
        (boolean(clauses), prunes)
    }

    /// The clauses of a conjunction.
    fn conjunction(&self, items: &[Expr]) -> Conjunction {
        let mut clauses = Vec::new();
        let mut constrained = false;
        for item in items {
            let (occur, matches) = match item {
                Expr::Not(inner) => (Occur::MustNot, self.expr(inner)),
                other => (Occur::Must, self.expr(other)),
            };
            match (occur, matches) {
                (_, Matches::Unconstrained) => continue,
                (Occur::MustNot, Matches::Everything) => return Conjunction::Nothing,
                (Occur::MustNot, Matches::Nothing) => {}
                (_, Matches::Everything) => {}
                (_, Matches::Nothing) => return Conjunction::Nothing,
                (occur, Matches::Some(query)) => clauses.push((occur, query)),
            }
            constrained = true;
        }
        if constrained {
            Conjunction::Clauses(clauses)
        } else {
            Conjunction::Unconstrained
        }
    }

    fn expr(&self, expr: &Expr) -> Matches {
        match expr {
            Expr::All => Matches::Everything,
            Expr::Text {
                field, text, kind, ..
            } => self.text_query(*field, text, *kind),
            Expr::And(items) => match self.conjunction(items) {
                Conjunction::Nothing => Matches::Nothing,
                Conjunction::Unconstrained => Matches::Unconstrained,
                Conjunction::Clauses(clauses) if clauses.is_empty() => Matches::Everything,
                Conjunction::Clauses(clauses) => Matches::Some(boolean(clauses)),
            },
            Expr::Or(items) => {
                let mut alternatives = Vec::new();
                let mut constrained = false;
                for item in items {
                    match self.expr(item) {
                        Matches::Everything => return Matches::Everything,
                        Matches::Unconstrained => continue,
                        Matches::Nothing => {}
                        Matches::Some(query) => alternatives.push((Occur::Should, query)),
                    }
                    constrained = true;
                }
                match alternatives.len() {
                    0 if constrained => Matches::Nothing,
                    0 => Matches::Unconstrained,
                    1 => Matches::Some(alternatives.remove(0).1),
                    _ => Matches::Some(Box::new(BooleanQuery::new(alternatives))),
                }
            }
            Expr::Not(inner) => match self.expr(inner) {
                Matches::Everything => Matches::Nothing,
                Matches::Nothing => Matches::Everything,
                Matches::Unconstrained => Matches::Unconstrained,
                Matches::Some(query) => Matches::Some(boolean(vec![(Occur::MustNot, query)])),
            },
        }
    }

    /// A term in one field, or in every text field with per-field boosts.
    /// A term without searchable content (punctuation only) constrains
    /// nothing ([`Matches::Unconstrained`]).
    fn text_query(&self, field: Option<TextField>, text: &str, kind: TextKind) -> Matches {
        let Some(field) = field else {
            if let Some(query) = self.any_field_word(text, kind) {
                return query;
            }
            let mut alternatives: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for field in TextField::ALL {
                if let Some(query) = self.field_query(field, text, kind) {
                    let boosted: Box<dyn Query> = Box::new(BoostQuery::new(query, boost(field)));
                    alternatives.push((Occur::Should, boosted));
                }
            }
            return match alternatives.len() {
                0 => Matches::Unconstrained,
                _ => Matches::Some(Box::new(BooleanQuery::new(alternatives))),
            };
        };
        match self.field_query(field, text, kind) {
            Some(query) => Matches::Some(query),
            None => Matches::Unconstrained,
        }
    }

    /// An unfielded word that is one term in every field's analysis (the
    /// common case) as one [`AnyFieldQuery`]; `None` for phrases, prefixes
    /// and words an analyzer splits.
    fn any_field_word(&self, text: &str, kind: TextKind) -> Option<Matches> {
        if kind != TextKind::Word {
            return None;
        }
        // Fields share two analyzers: each analyzes the word once.
        let (mut stemmed, mut plain) = (None, None);
        let mut terms = Vec::with_capacity(TextField::ALL.len());
        for field in TextField::ALL {
            let analyzer = self.analyzer(field);
            let slot = if std::ptr::eq(analyzer, self.plain) {
                &mut plain
            } else {
                &mut stemmed
            };
            let analyzed = slot.get_or_insert_with(|| analyze(analyzer, text));
            match analyzed.as_slice() {
                [] => {}
                [(_, term)] => terms.push((
                    Term::from_field_text(self.fields.text(field), term),
                    boost(field),
                )),
                _ => return None,
            }
        }
        Some(if terms.is_empty() {
            Matches::Unconstrained
        } else {
            Matches::Some(Box::new(AnyFieldQuery::new(terms)))
        })
    }

    fn field_query(&self, field: TextField, text: &str, kind: TextKind) -> Option<Box<dyn Query>> {
        let index_field = self.fields.text(field);
        let analyzer = self.analyzer(field);
        let term_of = |text: &str| Term::from_field_text(index_field, text);
        match kind {
            TextKind::Word | TextKind::Phrase => {
                let mut terms = analyze(analyzer, text);
                match terms.len() {
                    0 => None,
                    // One field's word, scored as a term query scores it;
                    // as an unfielded word is, so that a conjunction of
                    // such words ends at the deadline inside a step, and
                    // may prune.
                    1 => Some(Box::new(AnyFieldQuery::new(vec![(
                        term_of(&terms.remove(0).1),
                        1.0,
                    )]))),
                    _ => Some(Box::new(BoundedPhrase::new(
                        terms.iter().map(|(at, t)| (*at, term_of(t))).collect(),
                    ))),
                }
            }
            TextKind::Prefix => {
                // The last word is a prefix of indexed terms and is not
                // stemmed; the words before it are matched as indexed.
                let plain = analyze(self.plain, text);
                let stemmed = analyze(analyzer, text);
                let (last_at, last) = plain.last()?;
                let mut terms: Vec<(usize, Term)> = if stemmed.len() == plain.len() {
                    stemmed[..stemmed.len() - 1]
                        .iter()
                        .map(|(at, t)| (*at, term_of(t)))
                        .collect()
                } else {
                    plain[..plain.len() - 1]
                        .iter()
                        .map(|(at, t)| (*at, term_of(t)))
                        .collect()
                };
                terms.push((*last_at, term_of(last)));
                let mut query = PhrasePrefixQuery::new_with_offset(terms);
                query.set_max_expansions(PREFIX_EXPANSIONS);
                Some(Box::new(query))
            }
        }
    }

    fn analyzer(&self, field: TextField) -> &TextAnalyzer {
        match field {
            TextField::Creator => self.plain,
            _ => self.text,
        }
    }
}

/// Tells each word (unfielded, or in one field) of the text's `clauses`
/// what the others may add to a score, so that it may prune
/// ([`super::prune`]): only when every clause that scores is such a word
/// (and then true). Exclusions do not score, nor do the filters added
/// later.
fn share_words(clauses: &mut [(Occur, Box<dyn Query>)], peaks: &Arc<Peaks>) -> bool {
    let scoring = || clauses.iter().filter(|(occur, _)| *occur != Occur::MustNot);
    let count = scoring().count();
    if count == 0 || !scoring().all(|(_, query)| query.is::<AnyFieldQuery>()) {
        return false;
    }
    let words = Arc::new(Words::new(count, peaks.clone()));
    let scoring = clauses
        .iter_mut()
        .filter(|(occur, _)| *occur != Occur::MustNot);
    for (at, (_, query)) in scoring.enumerate() {
        if let Some(word) = query.downcast_mut::<AnyFieldQuery>() {
            word.among(words.clone(), at);
        }
    }
    true
}

/// The conjunction of `clauses`; exclusions alone are taken from every
/// record.
fn boolean(mut clauses: Vec<(Occur, Box<dyn Query>)>) -> Box<dyn Query> {
    if !clauses.iter().any(|(occur, _)| *occur == Occur::Must) {
        clauses.push((Occur::Must, Box::new(AllQuery)));
    }
    Box::new(BooleanQuery::new(clauses))
}

/// Weight of a match in each field for unfielded terms.
fn boost(field: TextField) -> f32 {
    match field {
        TextField::Title => 3.0,
        TextField::Keyword | TextField::Creator => 2.0,
        TextField::Project => 1.5,
        TextField::Description => 1.0,
    }
}
