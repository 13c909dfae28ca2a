//! One word in any of several fields: the unfielded term of a query.
//!
//! Matches the documents holding any of the terms and scores a match as
//! the sum of each field's BM25 score times its boost, as a `BooleanQuery`
//! of boosted `Should` term clauses does. The difference is how it moves:
//! tantivy's union scorer fills a 4096-document window from every field
//! and scores every posting in it, so a common word costs all of its
//! postings even where the filters or the other words leave only a few
//! documents. This one keeps the field scorers side by side, seeks them to
//! the documents the rest of the query proposes, and scores only the
//! documents that are collected.

use tantivy::query::{EmptyScorer, EnableScoring, Explanation, Query, Scorer, TermQuery, Weight};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, DocSet, Score, SegmentReader, TantivyError, Term, TERMINATED};

/// Terms of one word in several fields, each with its boost.
#[derive(Debug, Clone)]
pub(crate) struct AnyFieldQuery {
    terms: Vec<(Term, Score)>,
}

impl AnyFieldQuery {
    pub fn new(terms: Vec<(Term, Score)>) -> Self {
        Self { terms }
    }
}

impl Query for AnyFieldQuery {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let weights = self
            .terms
            .iter()
            .map(|(term, boost)| {
                let query = TermQuery::new(term.clone(), IndexRecordOption::WithFreqs);
                Ok((query.weight(scoring)?, *boost))
            })
            .collect::<tantivy::Result<_>>()?;
        Ok(Box::new(AnyFieldWeight { weights }))
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a Term, bool)) {
        for (term, _) in &self.terms {
            visitor(term, false);
        }
    }
}

struct AnyFieldWeight {
    weights: Vec<(Box<dyn Weight>, Score)>,
}

impl Weight for AnyFieldWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let mut scorers = Vec::with_capacity(self.weights.len());
        for (weight, field_boost) in &self.weights {
            let scorer = weight.scorer(reader, boost * field_boost)?;
            if scorer.doc() != TERMINATED {
                scorers.push(scorer);
            }
        }
        Ok(match scorers.len() {
            0 => Box::new(EmptyScorer),
            1 => scorers.remove(0),
            _ => Box::new(AnyFieldScorer::new(scorers)),
        })
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let mut scorer = self.scorer(reader, 1.0)?;
        if scorer.doc() > doc || scorer.seek(doc) != doc {
            return Err(TantivyError::InvalidArgument(format!(
                "document #({doc}) does not match"
            )));
        }
        let mut explanation = Explanation::new("sum of the word's field scores", scorer.score());
        for (weight, _) in &self.weights {
            if let Ok(detail) = weight.explain(reader, doc) {
                explanation.add_detail(detail);
            }
        }
        Ok(explanation)
    }
}

/// The field scorers, each on its own document; the union is on the least.
struct AnyFieldScorer {
    scorers: Vec<Box<dyn Scorer>>,
    doc: DocId,
}

impl AnyFieldScorer {
    fn new(scorers: Vec<Box<dyn Scorer>>) -> Self {
        let doc = scorers.iter().map(|s| s.doc()).min().unwrap_or(TERMINATED);
        Self { scorers, doc }
    }
}

impl DocSet for AnyFieldScorer {
    fn advance(&mut self) -> DocId {
        let current = self.doc;
        let mut next = TERMINATED;
        for scorer in &mut self.scorers {
            let mut doc = scorer.doc();
            if doc == current {
                doc = scorer.advance();
            }
            next = next.min(doc);
        }
        self.doc = next;
        next
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if self.doc >= target {
            return self.doc;
        }
        let mut next = TERMINATED;
        for scorer in &mut self.scorers {
            let mut doc = scorer.doc();
            if doc < target {
                doc = scorer.seek(target);
            }
            next = next.min(doc);
        }
        self.doc = next;
        next
    }

    fn doc(&self) -> DocId {
        self.doc
    }

    fn size_hint(&self) -> u32 {
        self.scorers
            .iter()
            .map(|s| s.size_hint())
            .max()
            .unwrap_or(0)
    }
}

impl Scorer for AnyFieldScorer {
    fn score(&mut self) -> Score {
        let doc = self.doc;
        self.scorers
            .iter_mut()
            .filter(|s| s.doc() == doc)
            .map(|s| s.score())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::collector::TopDocs;
    use tantivy::query::{BooleanQuery, BoostQuery, Occur};
    use tantivy::schema::{Schema, TEXT};
    use tantivy::{doc, Index};

    /// Same matches and the same scores as the boolean union of boosted
    /// term clauses it replaces, alone and inside an intersection.
    #[test]
    fn matches_and_scores_like_a_union_of_boosted_terms() {
        let mut builder = Schema::builder();
        let title = builder.add_text_field("title", TEXT);
        let body = builder.add_text_field("body", TEXT);
        let tag = builder.add_text_field("tag", TEXT);
        let index = Index::create_in_ram(builder.build());
        let mut writer: tantivy::IndexWriter =
            index.writer_with_num_threads(1, 20_000_000).unwrap();
        for n in 0..3000u32 {
            let word = |m: u32| if n % m == 0 { "ice" } else { "rock" };
            writer
                .add_document(doc!(
                    title => format!("{} {}", word(7), "x ".repeat((n % 5) as usize)),
                    body => format!("{} {}", word(3), word(11)),
                    tag => if n % 2 == 0 { "even" } else { "odd" },
                ))
                .unwrap();
            if n % 1000 == 999 {
                writer.commit().unwrap();
            }
        }
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        let terms = vec![
            (Term::from_field_text(title, "ice"), 3.0),
            (Term::from_field_text(body, "ice"), 1.0),
        ];
        let union = || -> Box<dyn Query> {
            Box::new(BooleanQuery::new(
                terms
                    .iter()
                    .map(|(term, boost)| {
                        let q: Box<dyn Query> = Box::new(BoostQuery::new(
                            Box::new(TermQuery::new(term.clone(), IndexRecordOption::WithFreqs)),
                            *boost,
                        ));
                        (Occur::Should, q)
                    })
                    .collect(),
            ))
        };
        let any = || -> Box<dyn Query> { Box::new(AnyFieldQuery::new(terms.clone())) };
        let even = || -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(tag, "even"),
                IndexRecordOption::Basic,
            ))
        };
        let top = |query: &dyn Query| {
            let mut hits = searcher.search(query, &TopDocs::with_limit(5000)).unwrap();
            hits.sort_by_key(|(_, address)| *address);
            hits
        };
        let close = |a: &[(f32, tantivy::DocAddress)], b: &[(f32, tantivy::DocAddress)]| {
            assert_eq!(a.len(), b.len());
            for ((sa, da), (sb, db)) in a.iter().zip(b) {
                assert_eq!(da, db);
                assert!((sa - sb).abs() < 1e-4, "{sa} vs {sb}");
            }
        };
        close(&top(&*any()), &top(&*union()));
        let and = |text: Box<dyn Query>| {
            BooleanQuery::new(vec![(Occur::Must, text), (Occur::Must, even())])
        };
        close(&top(&and(any())), &top(&and(union())));
        assert!(!top(&and(any())).is_empty());
    }
}
