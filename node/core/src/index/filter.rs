//! The keyword filters of a search (who may see a record, origin,
//! discipline, access, licence, format) as one clause: per segment and
//! filter, the documents holding one of the filter's terms, as a bitset.
//!
//! A filter's terms are ORed into a bitset ([`BitsCache::any`]: held when
//! dense, the common case for audiences and disciplines); the conjunction
//! seeks the documents in every filter's bitset, ANDed as they are read.

use std::fmt;
use std::sync::Arc;

use tantivy::query::{EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::{DocId, Score, SegmentReader, TantivyError, Term};

use super::bits::{next_in_all, Bits, BitsCache, BitsDocSet};

/// Documents holding, for every filter, at least one of its terms. Scores
/// 0: filters change the match set, never the ranking.
#[derive(Clone)]
pub(crate) struct FilterQuery {
    /// Each filter's terms; there is at least one filter.
    filters: Vec<Vec<Term>>,
    cache: Arc<BitsCache>,
}

impl FilterQuery {
    /// `None` without filters. A filter without terms matches nothing.
    pub fn new(filters: Vec<Vec<Term>>, cache: Arc<BitsCache>) -> Option<Self> {
        (!filters.is_empty()).then_some(Self { filters, cache })
    }

    /// Each filter's terms.
    pub fn filters(&self) -> &[Vec<Term>] {
        &self.filters
    }

    /// The documents of `reader`'s segment that pass each filter, one set
    /// per filter: those that pass them all are in every set.
    fn bits(&self, reader: &SegmentReader) -> tantivy::Result<Vec<Arc<Bits>>> {
        self.filters
            .iter()
            .map(|terms| self.cache.any(reader, terms))
            .collect()
    }
}

impl fmt::Debug for FilterQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilterQuery")
            .field("filters", &self.filters)
            .finish_non_exhaustive()
    }
}

impl Query for FilterQuery {
    fn weight(&self, _: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(self.clone()))
    }
}

impl Weight for FilterQuery {
    fn scorer(&self, reader: &SegmentReader, _boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        Ok(Box::new(BitsDocSet::new(self.bits(reader)?)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        if next_in_all(&self.bits(reader)?, doc) != doc {
            return Err(TantivyError::InvalidArgument(format!(
                "document #({doc}) does not pass the filters"
            )));
        }
        Ok(Explanation::new("filters", 0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::bits::cost;
    use std::collections::HashSet;
    use tantivy::collector::DocSetCollector;
    use tantivy::query::{BooleanQuery, Occur, TermQuery};
    use tantivy::schema::{Field, IndexRecordOption, Schema, STRING};
    use tantivy::{doc, DocAddress, Index, IndexWriter, Searcher};

    /// Three segments of `a` and `b` values: `a` is dense in every one
    /// (`common` in all but every seventh document, `rare` in every 100th),
    /// `b` cycles through five values; every 11th document is deleted.
    fn index() -> (Searcher, Field, Field) {
        let mut builder = Schema::builder();
        let a = builder.add_text_field("a", STRING);
        let b = builder.add_text_field("b", STRING);
        let index = Index::create_in_ram(builder.build());
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
        for n in 0..3_000u32 {
            let common = if n % 7 == 0 { "other" } else { "common" };
            let mut document = doc!(a => common, b => format!("b{}", n % 5), b => format!("n{n}"));
            if n % 100 == 0 {
                document.add_text(a, "rare");
            }
            writer.add_document(document).unwrap();
            if n % 1_000 == 999 {
                writer.commit().unwrap();
            }
        }
        for n in (0..3_000u32).step_by(11) {
            writer.delete_term(Term::from_field_text(b, &format!("n{n}")));
        }
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        assert_eq!(searcher.segment_readers().len(), 3);
        (searcher, a, b)
    }

    fn matches(searcher: &Searcher, query: &dyn Query) -> std::collections::HashSet<DocAddress> {
        searcher.search(query, &DocSetCollector).unwrap()
    }

    /// The same filters as term queries: a conjunction of disjunctions.
    fn as_terms(filters: &[Vec<Term>]) -> BooleanQuery {
        BooleanQuery::new(
            filters
                .iter()
                .map(|terms| {
                    let any = terms
                        .iter()
                        .map(|term| {
                            let q: Box<dyn Query> =
                                Box::new(TermQuery::new(term.clone(), IndexRecordOption::Basic));
                            (Occur::Should, q)
                        })
                        .collect();
                    (
                        Occur::Must,
                        Box::new(BooleanQuery::new(any)) as Box<dyn Query>,
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn filters_match_what_their_term_queries_match() {
        let (searcher, a, b) = index();
        let t = |field, value: &str| Term::from_field_text(field, value);
        let cache = Arc::new(BitsCache::default());
        let cases = [
            vec![vec![t(a, "common")]],
            vec![vec![t(a, "rare")]],
            vec![vec![t(a, "missing")]],
            vec![vec![t(a, "rare"), t(a, "other")]],
            vec![vec![t(a, "common")], vec![t(b, "b1"), t(b, "b3")]],
            vec![vec![t(a, "other"), t(a, "rare")], vec![t(b, "b0")]],
            vec![vec![t(a, "common")], vec![t(b, "n12"), t(b, "n2999")]],
            vec![vec![t(a, "common")], vec![t(b, "missing")]],
        ];
        for filters in cases {
            let want = matches(&searcher, &as_terms(&filters));
            let query = FilterQuery::new(filters.clone(), cache.clone()).unwrap();
            // Twice: built from postings, then from what the cache holds.
            for round in 0..2 {
                assert_eq!(
                    matches(&searcher, &query),
                    want,
                    "{filters:?}, round {round}"
                );
            }
            assert_eq!(
                Query::count(&query, &searcher).unwrap(),
                want.len(),
                "{filters:?}"
            );
        }
        assert!(FilterQuery::new(Vec::new(), cache).is_none());
    }

    #[test]
    fn only_dense_filters_are_held_and_dead_segments_are_forgotten() {
        let (searcher, a, b) = index();
        let cache = Arc::new(BitsCache::default());
        let t = |field, value: &str| Term::from_field_text(field, value);
        let filters = vec![
            vec![t(a, "common")],
            vec![t(b, "n5")],
            // One document in 100: rarer than one in DENSE.
            vec![t(a, "rare")],
            // Held as one union, as a peer's audience terms are.
            vec![t(a, "rare"), t(a, "other")],
        ];
        let query = FilterQuery::new(filters, cache.clone()).unwrap();
        matches(&searcher, &query);
        // `common` and `rare or other` in each of the three segments;
        // `n5` and `rare` alone not.
        let bits = Bits::empty(1_000);
        let common = cost(&[t(a, "common")], &bits);
        let either = cost(&[t(a, "rare"), t(a, "other")], &bits);
        assert_eq!(cache.held(), (6, 3 * (common + either)));
        let first = searcher.segment_readers()[0].segment_id();
        cache.retain(&HashSet::from([first]));
        assert_eq!(cache.held(), (2, common + either));
        cache.retain(&HashSet::new());
        assert_eq!(cache.held(), (0, 0));
    }

    #[test]
    fn a_full_cache_drops_its_oldest_bitsets() {
        let (searcher, a, b) = index();
        let one = cost(&[Term::from_field_text(a, "common")], &Bits::empty(1_000));
        let cache = Arc::new(BitsCache::holding(2 * one));
        let query = |value: &str| {
            let term = Term::from_field_text(b, value);
            FilterQuery::new(vec![vec![term]], cache.clone()).unwrap()
        };
        let common = FilterQuery::new(
            vec![vec![Term::from_field_text(a, "common")]],
            cache.clone(),
        );
        matches(&searcher, &common.unwrap());
        // Three segments do not fit in two bitsets' bytes: the third drops
        // the oldest.
        assert_eq!(cache.held(), (2, 2 * one));
        let want = matches(
            &searcher,
            &as_terms(&[vec![Term::from_field_text(b, "b2")]]),
        );
        assert_eq!(matches(&searcher, &query("b2")), want);
        assert!(cache.held().1 <= 2 * one);
    }

    /// A caller naming many long values in one filter cannot grow the
    /// cache past its bound: the term sets it keys by are counted.
    #[test]
    fn the_terms_a_cache_is_keyed_by_count_against_its_bound() {
        let (searcher, a, _) = index();
        let bound = 1 << 20;
        let cache = Arc::new(BitsCache::holding(bound));
        let long = "x".repeat(200);
        for round in 0..40 {
            // One common value, dense in every segment, and 255 made up.
            let mut values = vec![Term::from_field_text(a, "common")];
            values
                .extend((0..255).map(|n| Term::from_field_text(a, &format!("{round}-{n}-{long}"))));
            let query = FilterQuery::new(vec![values], cache.clone()).unwrap();
            matches(&searcher, &query);
            assert!(cache.held().1 <= bound, "round {round}");
        }
        // Each key holds more than 255 × 200 bytes, twice: no more than
        // the bound's worth of them, of the 120 term sets made.
        let (held, _) = cache.held();
        assert!(held > 0, "none held");
        assert!(held <= bound / (2 * 255 * 200), "{held} held");
    }
}
