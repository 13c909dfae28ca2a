//! A search's deadline, and scorers that stop at it from inside one step.
//!
//! A search looks at its deadline between the matches it collects
//! ([`super::pieces`]). One step of a scorer may itself be long: a phrase's
//! scorer steps to its first match as it is built, and to its next at each
//! step, through every document that holds all its words; a conjunction of
//! words steps through one word's documents until the others hold one too.
//! For common words that are never side by side, or never in one record,
//! one step reads all of them in its segment, past any deadline.
//!
//! So the walk over the matches, the postings of a phrase
//! ([`BoundedPhrase`]) and the fields of a word, unfielded or in one field
//! ([`super::any_field`]), all ask [`cut`] as they move. While a [`Watch`]
//! is kept on the thread, `cut` looks at the clock every
//! [`MOVES_PER_LOOK`] moves; once the deadline has passed it stays true and
//! they end (`TERMINATED`). The watch then marks the search's deadline as
//! passed, so what was collected is never taken for a whole answer.
//! Without a watch nothing is ever cut.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tantivy::fieldnorm::FieldNormReader;
use tantivy::postings::{Postings, SegmentPostings};
use tantivy::query::{Bm25Weight, EmptyScorer, EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocId, DocSet, Score, SegmentReader, Term, TERMINATED};

/// When a search gives up, shared by its threads: the first to see the
/// time pass stops the others at their next look.
#[derive(Debug)]
pub(crate) struct Deadline {
    at: Instant,
    passed: AtomicBool,
}

impl Deadline {
    pub fn new(at: Instant) -> Self {
        Self {
            at,
            passed: AtomicBool::new(false),
        }
    }

    /// When the search is to stop.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// Whether the search was cut short: some thread saw `at` pass.
    pub fn passed(&self) -> bool {
        self.passed.load(Ordering::Relaxed)
    }

    /// Looks at the clock (and at the other threads).
    pub fn look(&self) -> bool {
        if self.passed() {
            return true;
        }
        let passed = Instant::now() >= self.at;
        if passed {
            self.passed.store(true, Ordering::Relaxed);
        }
        passed
    }
}

/// Moves between two looks at the clock: a move costs tens of
/// nanoseconds, a look about twenty.
const MOVES_PER_LOOK: u32 = 1024;

thread_local! {
    /// The deadline of the search running on this thread.
    static AT: Cell<Option<Instant>> = const { Cell::new(None) };
    /// Moves left before the next look at the clock; 0 once the deadline
    /// was seen to pass (and kept there until the watch ends).
    static LEFT: Cell<u32> = const { Cell::new(MOVES_PER_LOOK) };
}

/// The deadline of one search's piece, kept on this thread from before its
/// scorer is built until it is dropped.
pub(crate) struct Watch<'a> {
    deadline: Option<&'a Deadline>,
}

impl<'a> Watch<'a> {
    pub fn begin(deadline: Option<&'a Deadline>) -> Self {
        AT.with(|at| at.set(deadline.map(Deadline::at)));
        LEFT.with(|left| left.set(MOVES_PER_LOOK));
        Self { deadline }
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        if LEFT.with(Cell::get) == 0 {
            if let Some(deadline) = self.deadline {
                // The clock has passed it: this marks it passed for every
                // thread of the search.
                deadline.look();
            }
        }
        AT.with(|at| at.set(None));
        LEFT.with(|left| left.set(MOVES_PER_LOOK));
    }
}

/// Whether the scorer moving now should end: a watch is kept on this
/// thread and its deadline has passed. One thread-local count per move;
/// the clock is read every [`MOVES_PER_LOOK`] moves.
#[inline]
pub(super) fn cut() -> bool {
    LEFT.with(|left| match left.get() {
        0 => true,
        1 => look(left),
        n => {
            left.set(n - 1);
            false
        }
    })
}

#[cold]
fn look(left: &Cell<u32>) -> bool {
    let passed = AT.with(Cell::get).is_some_and(|at| Instant::now() >= at);
    left.set(if passed { 0 } else { MOVES_PER_LOOK });
    passed
}

/// Postings that end once [`cut`] says so.
pub(super) struct Bounded<P> {
    inner: P,
    ended: bool,
}

impl<P: Postings> Bounded<P> {
    pub fn new(inner: P) -> Self {
        Self {
            inner,
            ended: false,
        }
    }

    #[inline]
    fn end(&mut self) -> DocId {
        self.ended = true;
        TERMINATED
    }
}

impl<P: Postings> DocSet for Bounded<P> {
    #[inline]
    fn advance(&mut self) -> DocId {
        if self.ended || cut() {
            return self.end();
        }
        self.inner.advance()
    }

    #[inline]
    fn seek(&mut self, target: DocId) -> DocId {
        if self.ended || cut() {
            return self.end();
        }
        self.inner.seek(target)
    }

    #[inline]
    fn doc(&self) -> DocId {
        if self.ended {
            TERMINATED
        } else {
            self.inner.doc()
        }
    }

    fn size_hint(&self) -> u32 {
        self.inner.size_hint()
    }
}

impl<P: Postings> Postings for Bounded<P> {
    #[inline]
    fn term_freq(&self) -> u32 {
        self.inner.term_freq()
    }

    #[inline]
    fn append_positions_with_offset(&mut self, offset: u32, output: &mut Vec<u32>) {
        self.inner.append_positions_with_offset(offset, output);
    }
}

/// A phrase (words side by side, in order) in one field: what tantivy's
/// phrase query matches, scored as it scores it, by a scorer over
/// [`Bounded`] postings. Tantivy's phrase scorer takes only the postings
/// it reads itself, so this one is written here; a test holds the two to
/// the same documents and scores.
#[derive(Clone, Debug)]
pub(crate) struct BoundedPhrase {
    /// The words, each with its position in the phrase, in that order.
    terms: Vec<(usize, Term)>,
}

impl BoundedPhrase {
    /// `terms`: two at least, of one field, with their positions.
    pub fn new(mut terms: Vec<(usize, Term)>) -> Self {
        assert!(terms.len() > 1, "a phrase has two words at least");
        let field = terms[0].1.field();
        assert!(terms.iter().all(|(_, term)| term.field() == field));
        terms.sort_by_key(|&(at, _)| at);
        Self { terms }
    }

    /// The words, in the phrase's order.
    pub fn words(&self) -> impl ExactSizeIterator<Item = &Term> {
        self.terms.iter().map(|(_, term)| term)
    }
}

impl Query for BoundedPhrase {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let bm25 = match scoring {
            EnableScoring::Enabled {
                statistics_provider,
                ..
            } => {
                let words: Vec<Term> = self.words().cloned().collect();
                Some(Bm25Weight::for_terms(statistics_provider, &words)?)
            }
            EnableScoring::Disabled { .. } => None,
        };
        Ok(Box::new(BoundedPhraseWeight {
            field: self.terms[0].1.field(),
            terms: self.terms.clone(),
            bm25,
        }))
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a Term, bool)) {
        for term in self.words() {
            visitor(term, true);
        }
    }
}

struct BoundedPhraseWeight {
    field: Field,
    /// The words, each with its position in the phrase.
    terms: Vec<(usize, Term)>,
    bm25: Option<Bm25Weight>,
}

impl BoundedPhraseWeight {
    fn phrase_scorer(
        &self,
        reader: &SegmentReader,
        boost: Score,
    ) -> tantivy::Result<Option<PhraseScorer>> {
        let index = reader.inverted_index(self.field)?;
        let last = self.terms.iter().map(|(at, _)| *at).max().unwrap_or(0);
        let mut words = Vec::with_capacity(self.terms.len());
        for (at, term) in &self.terms {
            let Some(postings) =
                index.read_postings(term, IndexRecordOption::WithFreqsAndPositions)?
            else {
                return Ok(None);
            };
            // Positions moved to where the phrase's last word would be.
            words.push(((last - at) as u32, Bounded::new(postings)));
        }
        let norms = match &self.bm25 {
            Some(_) => reader.fieldnorms_readers().get_field(self.field)?,
            None => None,
        }
        .unwrap_or_else(|| FieldNormReader::constant(reader.max_doc(), 1));
        let bm25 = self.bm25.as_ref().map(|bm25| bm25.boost_by(boost));
        Ok(Some(PhraseScorer::new(words, norms, bm25)))
    }
}

impl Weight for BoundedPhraseWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        Ok(match self.phrase_scorer(reader, boost)? {
            Some(scorer) => Box::new(scorer),
            None => Box::new(EmptyScorer),
        })
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let not_found =
            || tantivy::TantivyError::InvalidArgument(format!("Document #({doc}) does not match"));
        let mut scorer = self.phrase_scorer(reader, 1.0)?.ok_or_else(not_found)?;
        if scorer.seek(doc) != doc {
            return Err(not_found());
        }
        let mut explanation = Explanation::new("Phrase", scorer.score());
        if let Some(bm25) = &self.bm25 {
            explanation.add_detail(bm25.explain(scorer.norms.fieldnorm_id(doc), scorer.count));
        }
        Ok(explanation)
    }
}

/// The documents holding every word of a phrase (the rarest word leads,
/// the others are sought to it), and among them those where the words
/// stand side by side: each word's positions, moved to where the last
/// word would be, are intersected; what remains is how often the phrase
/// occurs, which BM25 scores as a term's frequency.
struct PhraseScorer {
    /// Each word's postings with what moves its positions, rarest first.
    words: Vec<(u32, Bounded<SegmentPostings>)>,
    norms: FieldNormReader,
    bm25: Option<Bm25Weight>,
    doc: DocId,
    /// Occurrences of the phrase in `doc`.
    count: u32,
    at: Vec<u32>,
    next: Vec<u32>,
}

impl PhraseScorer {
    fn new(
        mut words: Vec<(u32, Bounded<SegmentPostings>)>,
        norms: FieldNormReader,
        bm25: Option<Bm25Weight>,
    ) -> Self {
        words.sort_by_key(|(_, postings)| postings.size_hint());
        let first = words
            .iter()
            .map(|(_, postings)| postings.doc())
            .max()
            .unwrap_or(TERMINATED);
        let mut scorer = Self {
            words,
            norms,
            bm25,
            doc: TERMINATED,
            count: 0,
            at: Vec::new(),
            next: Vec::new(),
        };
        scorer.settle(first);
        scorer
    }

    /// Moves to the first document at or after `candidate` that holds the
    /// phrase.
    fn settle(&mut self, mut candidate: DocId) -> DocId {
        loop {
            candidate = self.all_words(candidate);
            if candidate == TERMINATED || self.side_by_side() {
                self.doc = candidate;
                return candidate;
            }
            candidate = self.words[0].1.advance();
        }
    }

    /// The first document at or after `candidate` holding every word.
    fn all_words(&mut self, mut candidate: DocId) -> DocId {
        if candidate == TERMINATED {
            return TERMINATED;
        }
        'again: loop {
            for (_, postings) in &mut self.words {
                let doc = postings.seek(candidate);
                if doc == TERMINATED {
                    return TERMINATED;
                }
                if doc > candidate {
                    candidate = doc;
                    continue 'again;
                }
            }
            return candidate;
        }
    }

    /// Whether the words stand side by side in the document they are all
    /// on; counts how often.
    fn side_by_side(&mut self) -> bool {
        let (first, rest) = self.words.split_first_mut().expect("two words at least");
        first.1.positions_with_offset(first.0, &mut self.at);
        for (offset, postings) in rest {
            postings.positions_with_offset(*offset, &mut self.next);
            let next = &self.next;
            let mut from = 0;
            self.at.retain(|position| {
                while from < next.len() && next[from] < *position {
                    from += 1;
                }
                from < next.len() && next[from] == *position
            });
            if self.at.is_empty() {
                return false;
            }
        }
        self.count = self.at.len() as u32;
        true
    }
}

impl DocSet for PhraseScorer {
    fn advance(&mut self) -> DocId {
        if self.doc == TERMINATED {
            return TERMINATED;
        }
        let next = self.words[0].1.advance();
        self.settle(next)
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if self.doc >= target {
            return self.doc;
        }
        self.settle(target)
    }

    fn doc(&self) -> DocId {
        self.doc
    }

    fn size_hint(&self) -> u32 {
        self.words[0].1.size_hint()
    }
}

impl Scorer for PhraseScorer {
    fn score(&mut self) -> Score {
        match &self.bm25 {
            Some(bm25) => bm25.score(self.norms.fieldnorm_id(self.doc), self.count),
            None => 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use rand::{Rng, SeedableRng};
    use tantivy::collector::{Count, TopDocs};
    use tantivy::schema::{Schema, TEXT};
    use tantivy::{doc, Index, IndexWriter, Searcher};

    fn index_of(texts: impl IntoIterator<Item = String>) -> (Searcher, Field) {
        let mut schema = Schema::builder();
        let text = schema.add_text_field("text", TEXT);
        let index = Index::create_in_ram(schema.build());
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 20_000_000).unwrap();
        for body in texts {
            writer.add_document(doc!(text => body)).unwrap();
        }
        writer.commit().unwrap();
        (index.reader().unwrap().searcher(), text)
    }

    fn hits(searcher: &Searcher, query: &dyn Query, scored: bool) -> (usize, Vec<(u32, u32)>) {
        let top = TopDocs::with_limit(50);
        let scoring = if scored {
            EnableScoring::enabled_from_searcher(searcher)
        } else {
            EnableScoring::disabled_from_searcher(searcher)
        };
        let (count, top) = searcher
            .search_with_executor(
                query,
                &(Count, top),
                &tantivy::Executor::SingleThread,
                scoring,
            )
            .unwrap();
        let top = top
            .into_iter()
            .map(|(score, at)| (score.to_bits(), at.doc_id))
            .collect();
        (count, top)
    }

    /// Random texts of a five-word vocabulary, phrases of two and three
    /// words, some with a gap (a stop word's place): the same documents,
    /// and the same scores to the bit, as tantivy's phrase query.
    #[test]
    fn a_phrase_matches_and_scores_as_tantivys_does() {
        let words = ["alpha", "beta", "gamma", "delta", "eps"];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let texts = (0..3_000).map(|_| {
            let len = rng.gen_range(1..12);
            (0..len)
                .map(|_| words[rng.gen_range(0..words.len())])
                .collect::<Vec<_>>()
                .join(" ")
        });
        let (searcher, text) = index_of(texts);
        let term = |word: &str| Term::from_field_text(text, word);
        let phrases: Vec<Vec<(usize, Term)>> = vec![
            vec![(0, term("alpha")), (1, term("beta"))],
            vec![(0, term("beta")), (1, term("alpha"))],
            vec![(0, term("alpha")), (1, term("alpha"))],
            vec![(0, term("gamma")), (1, term("delta")), (2, term("eps"))],
            vec![(0, term("eps")), (2, term("beta"))],
            vec![(1, term("delta")), (0, term("alpha")), (3, term("gamma"))],
            vec![(0, term("alpha")), (1, term("missing"))],
        ];
        for (at, terms) in phrases.into_iter().enumerate() {
            let ours = BoundedPhrase::new(terms.clone());
            let tantivys = tantivy::query::PhraseQuery::new_with_offset(terms.clone());
            for scored in [true, false] {
                let expected = hits(&searcher, &tantivys, scored);
                assert_eq!(hits(&searcher, &ours, scored), expected, "{terms:?}");
                // Each but the last matches some of the documents.
                assert_eq!(expected.0 == 0, at == 6, "{terms:?}: {}", expected.0);
                assert!(expected.0 < 3_000);
            }
        }
    }

    /// Without a deadline, or with one to come, building the scorer finds
    /// the phrase in the last of 20,000 documents that hold its words; with
    /// one that has passed, it stops within a look of the clock instead of
    /// reading them all, and the deadline is marked passed when the watch
    /// ends.
    #[test]
    fn a_phrase_stops_at_the_deadline_while_its_scorer_is_built() {
        let texts = (0..19_999)
            .map(|_| "gamma beta alpha".to_owned())
            .chain(["alpha gamma".to_owned()]);
        let (searcher, text) = index_of(texts);
        let term = |word: &str| Term::from_field_text(text, word);
        let phrase = BoundedPhrase::new(vec![(0, term("alpha")), (1, term("gamma"))]);
        let reader = searcher.segment_reader(0);
        let weight = phrase
            .weight(EnableScoring::enabled_from_searcher(&searcher))
            .unwrap();
        let future = Deadline::new(Instant::now() + Duration::from_secs(3600));
        {
            let _watch = Watch::begin(Some(&future));
            let scorer = weight.scorer(reader, 1.0).unwrap();
            assert_eq!(scorer.doc(), 19_999, "found under a deadline to come");
        }
        assert!(!future.passed());

        let past = Deadline::new(Instant::now());
        {
            let _watch = Watch::begin(Some(&past));
            let mut scorer = weight.scorer(reader, 1.0).unwrap();
            assert_eq!(scorer.doc(), TERMINATED, "cut while it was built");
            assert_eq!(scorer.advance(), TERMINATED);
            assert!(!past.passed(), "marked when the watch ends");
        }
        assert!(past.passed());
        // Nothing is cut on a thread without a watch.
        assert_eq!(weight.scorer(reader, 1.0).unwrap().doc(), 19_999);
    }

    /// The same for a conjunction of two unfielded words that no document
    /// but the last holds together: the intersection steps through one
    /// word's documents as its scorer is built, and stops at the deadline.
    #[test]
    fn a_conjunction_of_words_stops_at_the_deadline_inside_one_step() {
        let texts = (0..19_999)
            .map(|n| if n % 2 == 0 { "alpha" } else { "beta" }.to_owned())
            .chain(["alpha beta".to_owned()]);
        let (searcher, text) = index_of(texts);
        let word = |word: &str| -> Box<dyn Query> {
            Box::new(super::super::any_field::AnyFieldQuery::new(vec![(
                Term::from_field_text(text, word),
                1.0,
            )]))
        };
        let both = tantivy::query::BooleanQuery::new(vec![
            (tantivy::query::Occur::Must, word("alpha")),
            (tantivy::query::Occur::Must, word("beta")),
        ]);
        let reader = searcher.segment_reader(0);
        let weight = both
            .weight(EnableScoring::enabled_from_searcher(&searcher))
            .unwrap();
        assert_eq!(weight.scorer(reader, 1.0).unwrap().doc(), 19_999);
        let past = Deadline::new(Instant::now());
        {
            let _watch = Watch::begin(Some(&past));
            let scorer = weight.scorer(reader, 1.0).unwrap();
            assert_eq!(scorer.doc(), TERMINATED, "cut while it was built");
        }
        assert!(past.passed());
    }

    #[test]
    fn a_cut_is_seen_at_a_look_and_lasts_until_the_watch_ends() {
        let past = Deadline::new(Instant::now());
        {
            let _watch = Watch::begin(Some(&past));
            let first = (1..=2 * MOVES_PER_LOOK).find(|_| cut());
            assert_eq!(first, Some(MOVES_PER_LOOK));
            assert!(cut() && cut());
        }
        assert!(!cut());
        let _watch = Watch::begin(None);
        assert!((0..3 * MOVES_PER_LOOK).all(|_| !cut()));
    }
}
