//! The keyword filters of a search (who may see a record, origin,
//! discipline, access, licence, format) as one bitset per segment.
//!
//! Each filter is a `Must` clause, and a term query in a conjunction is
//! sought to every document the rest of the query proposes: through
//! postings blocks, and for a viewer with several audience terms through a
//! union of them. The same few terms (`anyone`, a peer's grants, the common
//! disciplines) are in nearly every search. So a term that covers at least
//! one document in [`DENSE`] of a segment keeps its documents as a bitset
//! per segment ([`FilterCache`]), built once from its postings; rarer terms
//! are read from their postings for each search. A search ORs the terms of
//! each filter and ANDs the filters into one bitset of the segment, and
//! the conjunction seeks that in constant time.
//!
//! The bitsets count deleted documents too, as postings do: the collector
//! skips those. Segments never change their postings, so a held bitset is
//! valid for as long as its segment lives.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use tantivy::index::SegmentId;
use tantivy::query::{EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, DocSet, Score, SegmentReader, TantivyError, Term, TERMINATED};

/// A term is held as a bitset once it covers at least one document in this
/// many of its segment: a bitset costs a bit per document, its postings
/// about a byte per document they name.
pub(crate) const DENSE: u32 = 64;

/// Most bytes of bitsets held; past it every held one is dropped and the
/// cache fills again with the terms searches use.
const MAX_HELD_BYTES: usize = 64 << 20;

/// Documents of one segment, a bit each.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bits {
    words: Box<[u64]>,
    max_doc: DocId,
}

impl Bits {
    fn empty(max_doc: DocId) -> Self {
        Self {
            words: vec![0; (max_doc as usize).div_ceil(64)].into_boxed_slice(),
            max_doc,
        }
    }

    /// The documents of `term`'s postings in `reader`'s segment.
    fn of_term(reader: &SegmentReader, term: &Term) -> tantivy::Result<Self> {
        let mut bits = Self::empty(reader.max_doc());
        let inverted = reader.inverted_index(term.field())?;
        if let Some(mut postings) = inverted.read_postings(term, IndexRecordOption::Basic)? {
            let mut doc = postings.doc();
            while doc != TERMINATED {
                bits.words[doc as usize / 64] |= 1 << (doc % 64);
                doc = postings.advance();
            }
        }
        Ok(bits)
    }

    fn or(&mut self, other: &Bits) {
        for (word, other) in self.words.iter_mut().zip(other.words.iter()) {
            *word |= other;
        }
    }

    fn and(&mut self, other: &Bits) {
        for (word, other) in self.words.iter_mut().zip(other.words.iter()) {
            *word &= other;
        }
    }

    fn len(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    fn bytes(&self) -> usize {
        self.words.len() * 8
    }

    /// The first document at or after `from`, or [`TERMINATED`].
    fn next_from(&self, from: DocId) -> DocId {
        if from >= self.max_doc {
            return TERMINATED;
        }
        let mut at = from as usize / 64;
        let mut word = self.words[at] & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                return (at * 64) as DocId + word.trailing_zeros();
            }
            at += 1;
            if at == self.words.len() {
                return TERMINATED;
            }
            word = self.words[at];
        }
    }
}

/// The bitsets of dense filter terms, per segment.
pub(crate) struct FilterCache {
    held: Mutex<Held>,
    max_bytes: usize,
}

impl Default for FilterCache {
    fn default() -> Self {
        Self::holding(MAX_HELD_BYTES)
    }
}

#[derive(Default)]
struct Held {
    sets: HashMap<(SegmentId, Term), Arc<Bits>>,
    bytes: usize,
}

impl FilterCache {
    /// A cache of at most `max_bytes` of bitsets.
    fn holding(max_bytes: usize) -> Self {
        Self {
            held: Mutex::default(),
            max_bytes,
        }
    }

    /// `term`'s documents in `reader`'s segment: held when the term is
    /// dense there, read from its postings otherwise.
    fn bits(&self, reader: &SegmentReader, term: &Term) -> tantivy::Result<Arc<Bits>> {
        let key = (reader.segment_id(), term.clone());
        if let Some(bits) = self.lock().sets.get(&key) {
            return Ok(bits.clone());
        }
        let doc_freq = reader.inverted_index(term.field())?.doc_freq(term)?;
        let bits = Arc::new(Bits::of_term(reader, term)?);
        if doc_freq.saturating_mul(DENSE) >= reader.max_doc() {
            let mut held = self.lock();
            if held.bytes + bits.bytes() > self.max_bytes {
                held.sets.clear();
                held.bytes = 0;
            }
            held.bytes += bits.bytes();
            if let Some(replaced) = held.sets.insert(key, bits.clone()) {
                held.bytes -= replaced.bytes();
            }
        }
        Ok(bits)
    }

    /// Forgets the bitsets of segments other than `live`.
    pub fn retain(&self, live: &HashSet<SegmentId>) {
        let mut held = self.lock();
        let Held { sets, bytes } = &mut *held;
        sets.retain(|(segment, _), bits| {
            let keep = live.contains(segment);
            if !keep {
                *bytes -= bits.bytes();
            }
            keep
        });
    }

    /// Bitsets held, and their bytes.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let held = self.lock();
        (held.sets.len(), held.bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Documents holding, for every filter, at least one of its terms. Scores
/// 0: filters change the match set, never the ranking.
#[derive(Clone)]
pub(crate) struct FilterQuery {
    /// Each filter's terms; never empty, nor is any filter.
    filters: Vec<Vec<Term>>,
    cache: Arc<FilterCache>,
}

impl FilterQuery {
    /// `None` without filters. A filter without terms matches nothing.
    pub fn new(filters: Vec<Vec<Term>>, cache: Arc<FilterCache>) -> Option<Self> {
        (!filters.is_empty()).then_some(Self { filters, cache })
    }

    /// Each filter's terms.
    pub fn filters(&self) -> &[Vec<Term>] {
        &self.filters
    }

    /// The documents of `reader`'s segment that pass every filter.
    fn bits(&self, reader: &SegmentReader) -> tantivy::Result<Arc<Bits>> {
        let mut all: Option<Arc<Bits>> = None;
        for filter in &self.filters {
            let mut any: Option<Arc<Bits>> = None;
            for term in filter {
                let bits = self.cache.bits(reader, term)?;
                any = Some(match any {
                    None => bits,
                    Some(mut union) => {
                        Arc::make_mut(&mut union).or(&bits);
                        union
                    }
                });
            }
            let any = any.unwrap_or_else(|| Arc::new(Bits::empty(reader.max_doc())));
            all = Some(match all {
                None => any,
                Some(mut both) => {
                    Arc::make_mut(&mut both).and(&any);
                    both
                }
            });
        }
        Ok(all.unwrap_or_else(|| Arc::new(Bits::empty(reader.max_doc()))))
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
        Ok(Box::new(FilterScorer::new(self.bits(reader)?)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        if self.bits(reader)?.next_from(doc) != doc {
            return Err(TantivyError::InvalidArgument(format!(
                "document #({doc}) does not pass the filters"
            )));
        }
        Ok(Explanation::new("filters", 0.0))
    }
}

/// The documents of one segment's [`Bits`], in order.
struct FilterScorer {
    bits: Arc<Bits>,
    len: u32,
    doc: DocId,
}

impl FilterScorer {
    fn new(bits: Arc<Bits>) -> Self {
        let doc = bits.next_from(0);
        let len = bits.len();
        Self { bits, len, doc }
    }
}

impl DocSet for FilterScorer {
    fn advance(&mut self) -> DocId {
        if self.doc != TERMINATED {
            self.doc = self.bits.next_from(self.doc + 1);
        }
        self.doc
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if self.doc < target {
            self.doc = self.bits.next_from(target);
        }
        self.doc
    }

    fn doc(&self) -> DocId {
        self.doc
    }

    fn size_hint(&self) -> u32 {
        self.len
    }
}

impl Scorer for FilterScorer {
    fn score(&mut self) -> Score {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::collector::DocSetCollector;
    use tantivy::query::{BooleanQuery, Occur, TermQuery};
    use tantivy::schema::{Field, Schema, STRING};
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
        let cache = Arc::new(FilterCache::default());
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
    fn only_dense_terms_are_held_and_dead_segments_are_forgotten() {
        let (searcher, a, b) = index();
        let cache = Arc::new(FilterCache::default());
        let filters = vec![
            vec![Term::from_field_text(a, "common")],
            vec![Term::from_field_text(b, "n5")],
            // One document in 100: rarer than one in DENSE.
            vec![Term::from_field_text(a, "rare")],
        ];
        let query = FilterQuery::new(filters, cache.clone()).unwrap();
        matches(&searcher, &query);
        // `common` in each of the three segments; `n5` and `rare` not.
        assert_eq!(cache.held(), (3, 3 * 1_000usize.div_ceil(64) * 8));
        let first = searcher.segment_readers()[0].segment_id();
        cache.retain(&HashSet::from([first]));
        assert_eq!(cache.held(), (1, 1_000usize.div_ceil(64) * 8));
        cache.retain(&HashSet::new());
        assert_eq!(cache.held(), (0, 0));
    }

    #[test]
    fn the_cache_starts_over_when_full() {
        let (searcher, a, b) = index();
        let one = 1_000usize.div_ceil(64) * 8;
        let cache = Arc::new(FilterCache::holding(2 * one));
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
        // the first two.
        assert_eq!(cache.held(), (1, one));
        let want = matches(
            &searcher,
            &as_terms(&[vec![Term::from_field_text(b, "b2")]]),
        );
        assert_eq!(matches(&searcher, &query("b2")), want);
        assert!(cache.held().1 <= 2 * one);
    }

    #[test]
    fn bits_are_found_across_words_and_up_to_the_last_document() {
        let mut bits = Bits::empty(130);
        for doc in [0, 63, 64, 129] {
            bits.words[doc as usize / 64] |= 1 << (doc % 64);
        }
        assert_eq!(bits.len(), 4);
        let found: Vec<DocId> = [0, 1, 63, 64, 65, 129, 130, 5_000]
            .iter()
            .map(|&from| bits.next_from(from))
            .collect();
        assert_eq!(found, [0, 63, 63, 64, 129, 129, TERMINATED, TERMINATED]);
        let mut scorer = FilterScorer::new(Arc::new(bits));
        assert_eq!(scorer.size_hint(), 4);
        assert_eq!(
            [
                scorer.doc(),
                scorer.advance(),
                scorer.seek(100),
                scorer.advance()
            ],
            [0, 63, 129, TERMINATED]
        );
        assert_eq!(scorer.advance(), TERMINATED);
        assert_eq!(
            FilterScorer::new(Arc::new(Bits::empty(0))).doc(),
            TERMINATED
        );
    }
}
