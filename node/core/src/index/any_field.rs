//! One word in any of several fields: the unfielded term of a query (and
//! a word in one field, as the same with one field).
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
//!
//! As one word of a conjunction whose other scoring clauses are words too,
//! it steps over documents that cannot reach a page's worst hit during a
//! pass that prunes ([`super::prune`]), and ends at the search's deadline
//! inside a step of a conjunction ([`super::interrupt`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use tantivy::fieldnorm::FieldNormReader;
use tantivy::index::SegmentId;
use tantivy::postings::{Postings, SegmentPostings};
use tantivy::query::{Bm25Weight, EmptyScorer, EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, DocSet, Score, SegmentReader, TantivyError, Term, TERMINATED};

use super::{interrupt, prune};

/// Postings a term must have in a segment before its [`Peaks`] there are
/// worth reading: a rarer term costs little to score whatever. (Tests
/// read them for the terms of small indexes too.)
const PEAK_POSTINGS: u32 = if cfg!(test) { 64 } else { 8192 };
/// Terms whose peaks are held per segment: 1 KiB each.
const MAX_PEAKS_PER_SEGMENT: usize = 4096;
/// Documents in a window of a [`Ceiling`].
const WINDOW: DocId = 128;
/// Bytes of [`Ceiling`]s held for all segments (a word's ceilings over
/// ten million documents take 312 KiB).
const MAX_CEILING_BYTES: usize = 64 << 20;
/// How far the statistics may move (new documents, merges) before a
/// word's [`Ceiling`] in a segment is reckoned again: by the factor its
/// scores may have risen by.
const MAX_DRIFT: Score = 1.25;

/// For each length a field may have (coded in a byte, as tantivy keeps
/// field lengths), the highest count of a term among the documents of a
/// segment with that length: what the term can score at most there,
/// under any BM25 weight (a score rises with the count and falls with the
/// length). Far less than the score of an endless count that BM25 tends
/// to, which is all a term's statistics tell; read once per segment and
/// term, from every posting (some milliseconds for a term in millions of
/// documents, paid by the first search that needs it, which two threads
/// may both pay), and kept for every search (segments never change).
///
/// The same cache holds each common word's [`Ceiling`]s.
#[derive(Default)]
pub(crate) struct Peaks {
    held: Mutex<HashMap<SegmentId, HashMap<Term, PeaksOf>>>,
    ceilings: Mutex<Ceilings>,
}

/// One term's peaks in one segment, by coded field length.
type PeaksOf = Arc<[u32]>;

/// The [`Ceiling`]s held, by segment and word (its field terms), and
/// their bytes. A word may have ceilings under more than one set of
/// statistics at once: anonymous callers' searches weigh words by fixed
/// statistics, an operator's by the corpus's own.
#[derive(Default)]
struct Ceilings {
    held: HashMap<WordIn, Vec<Arc<Ceiling>>>,
    bytes: usize,
}

/// A word (its field terms) in a segment.
type WordIn = (SegmentId, Box<[Term]>);

/// [`Ceiling`]s held for one word in one segment, under as many sets of
/// statistics.
const MAX_CEILINGS_PER_WORD: usize = 4;

impl Ceilings {
    fn retain(&mut self, live: &HashSet<SegmentId>) {
        self.held.retain(|(segment, _), _| live.contains(segment));
        self.bytes = self.held.values().flatten().map(|c| c.bytes()).sum();
    }
}

/// What one word may score at most in each window of [`WINDOW`]
/// documents of a segment: the best sum of its fields' scores among the
/// window's documents, reckoned from every posting with the weights of
/// the search that first needed it.
///
/// The peaks bound a field's score over a whole segment, and a common
/// word's fields together reach a page's worst hit nearly everywhere by
/// them, although few documents hold the word in all its fields at once.
/// A window's ceiling is what its best document scores, so a search skips
/// every window whose ceiling (summed with the other words' ceilings
/// there) is below the bar. Read once per segment and word (as long as a
/// search reading every match of the word), paid by the first search that
/// needs it and kept while the statistics stay near those it was
/// reckoned with ([`MAX_DRIFT`]).
pub(crate) struct Ceiling {
    windows: Box<[Score]>,
    /// The weights the ceilings were reckoned with, one for each of the
    /// word's field terms.
    weights: Box<[Arc<Bm25Weight>]>,
    /// For each field term, the counts of the word among the segment's
    /// documents of each coded field length: what a change of weights is
    /// measured on.
    counts: Box<[Counts]>,
}

/// The least and the highest count of a term among a segment's documents
/// of each coded field length (0 and 0 for a length no document holding
/// the term has).
#[derive(Clone)]
struct Counts {
    least: [u32; 256],
    most: [u32; 256],
}

impl Counts {
    const NONE: Self = Self {
        least: [u32::MAX; 256],
        most: [0; 256],
    };

    fn add(&mut self, norm: u8, count: u32) {
        let at = usize::from(norm);
        self.least[at] = self.least[at].min(count);
        self.most[at] = self.most[at].max(count);
    }

    /// Each length a document has, with its least and highest count.
    fn held(&self) -> impl Iterator<Item = (u8, u32, u32)> + '_ {
        (0..=u8::MAX)
            .zip(self.least.iter().zip(self.most.iter()))
            .filter(|(_, (_, &most))| most > 0)
            .map(|(norm, (&least, &most))| (norm, least, most))
    }
}

impl Ceiling {
    /// Reckons `terms`' ceilings in `reader`'s segment; every term has a
    /// weight. `None` when the search's deadline passes first.
    fn reckon(reader: &SegmentReader, terms: &[FieldTerm]) -> tantivy::Result<Option<Self>> {
        let mut windows = vec![0.0; reader.max_doc().div_ceil(WINDOW) as usize];
        let mut fields = Vec::with_capacity(terms.len());
        for term in terms {
            fields.push(term.scorer(reader, 1.0)?);
        }
        let mut counts = vec![Counts::NONE; terms.len()];
        // Each window's documents' scores summed field by field in the
        // order the word's scorer sums them.
        let mut sums = [0.0 as Score; WINDOW as usize];
        loop {
            let first = fields
                .iter()
                .flatten()
                .map(FieldScorer::doc)
                .min()
                .unwrap_or(TERMINATED);
            if first == TERMINATED {
                break;
            }
            if interrupt::cut() {
                return Ok(None);
            }
            let start = first - first % WINDOW;
            let end = start.saturating_add(WINDOW);
            sums.fill(0.0);
            for (field, counts) in fields.iter_mut().zip(counts.iter_mut()) {
                let Some(field) = field else {
                    continue;
                };
                let mut doc = field.doc();
                while doc < end {
                    sums[(doc - start) as usize] += field.score();
                    if let Some((norms, _)) = &field.scoring {
                        counts.add(norms.fieldnorm_id(doc), field.postings.term_freq());
                    }
                    doc = field.postings.advance();
                }
            }
            windows[(start / WINDOW) as usize] = sums.iter().copied().fold(0.0, Score::max);
        }
        let weights = terms.iter().filter_map(|term| term.bm25.clone()).collect();
        Ok(Some(Self {
            windows: windows.into(),
            weights,
            counts: counts.into(),
        }))
    }

    fn bytes(&self) -> usize {
        std::mem::size_of_val(&*self.windows)
            + std::mem::size_of_val(&*self.counts)
            + self.weights.len() * std::mem::size_of::<Bm25Weight>()
    }

    /// The factor by which a document's score under the weights of
    /// `terms` may exceed its score under those the ceilings were
    /// reckoned with (at least 1); and the factor by which it may fall
    /// short (at least 1), which says how loose the ceilings have become.
    ///
    /// A field's score is `w · f / (f + k)` for a count `f` and a `k`
    /// set by the document's length and the field's mean length. Under
    /// other statistics `w` and `k` change, and at one length the ratio of
    /// the two scores moves monotonically with `f`: over the counts the
    /// word has at that length, it is greatest and least at the least and
    /// the highest count. So the ratios at those two counts, for each
    /// length the word's documents have, bound it, and for a word in one
    /// field some document's score changes by each.
    fn drift(&self, terms: &[FieldTerm]) -> (Score, Score) {
        let (mut rise, mut fall): (Score, Score) = (1.0, 1.0);
        for ((term, then), counts) in terms
            .iter()
            .zip(self.weights.iter())
            .zip(self.counts.iter())
        {
            let Some(now) = &term.bm25 else {
                return (Score::INFINITY, Score::INFINITY);
            };
            if Arc::ptr_eq(now, then) {
                continue;
            }
            for (norm, least, most) in counts.held() {
                for count in [least, most] {
                    let ratio = now.score(norm, count) / then.score(norm, count);
                    rise = rise.max(ratio);
                    fall = fall.max(1.0 / ratio);
                }
            }
        }
        (rise, fall)
    }
}

impl Peaks {
    /// The peaks of `term` in `reader`'s segment, where it has `doc_freq`
    /// postings; `None` for a term too rare to be worth it.
    fn of(
        &self,
        reader: &SegmentReader,
        term: &Term,
        doc_freq: u32,
    ) -> tantivy::Result<Option<PeaksOf>> {
        if doc_freq < PEAK_POSTINGS {
            return Ok(None);
        }
        let segment = reader.segment_id();
        let held = || self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(peaks) = held().get(&segment).and_then(|terms| terms.get(term)) {
            return Ok(Some(peaks.clone()));
        }
        let index = reader.inverted_index(term.field())?;
        let Some(mut postings) = index.read_postings(term, IndexRecordOption::WithFreqs)? else {
            return Ok(None);
        };
        let norms = norms(reader, term.field())?;
        let mut peaks = vec![0u32; 256];
        let mut doc = postings.doc();
        while doc != TERMINATED {
            let peak = &mut peaks[usize::from(norms.fieldnorm_id(doc))];
            *peak = (*peak).max(postings.term_freq());
            doc = postings.advance();
        }
        let peaks: PeaksOf = peaks.into();
        self.keep(segment, term, peaks.clone());
        Ok(Some(peaks))
    }

    /// Holds `peaks` as `term`'s in `segment`.
    fn keep(&self, segment: SegmentId, term: &Term, peaks: PeaksOf) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let terms = held.entry(segment).or_default();
        if terms.len() >= MAX_PEAKS_PER_SEGMENT {
            terms.clear();
        }
        terms.insert(term.clone(), peaks);
    }

    /// The ceilings of the word of field `terms` in `reader`'s segment,
    /// and by how much its scores may have risen since they were
    /// reckoned; `None` for a word too rare to be worth them or a search
    /// without scores.
    fn ceiling(
        &self,
        reader: &SegmentReader,
        terms: &[FieldTerm],
    ) -> tantivy::Result<Option<(Arc<Ceiling>, Score)>> {
        if terms.iter().any(|term| term.bm25.is_none()) {
            return Ok(None);
        }
        let mut doc_freqs = Vec::with_capacity(terms.len());
        for term in terms {
            let index = reader.inverted_index(term.term.field())?;
            doc_freqs.push(index.doc_freq(&term.term)?);
        }
        if doc_freqs.iter().all(|&doc_freq| doc_freq < PEAK_POSTINGS) {
            return Ok(None);
        }
        let key = (
            reader.segment_id(),
            terms
                .iter()
                .map(|t| t.term.clone())
                .collect::<Box<[Term]>>(),
        );
        let held = || self.ceilings.lock().unwrap_or_else(|p| p.into_inner());
        let kept = held().held.get(&key).cloned().unwrap_or_default();
        for ceiling in kept {
            let (rise, fall) = ceiling.drift(terms);
            if rise <= MAX_DRIFT && fall <= MAX_DRIFT {
                return Ok(Some((ceiling, rise)));
            }
        }
        let Some(ceiling) = Ceiling::reckon(reader, terms)? else {
            return Ok(None);
        };
        // The reckoning read every posting: each field's highest counts
        // are its peaks, not to be read again.
        for ((term, counts), doc_freq) in terms.iter().zip(ceiling.counts.iter()).zip(doc_freqs) {
            if doc_freq >= PEAK_POSTINGS {
                self.keep(reader.segment_id(), &term.term, counts.most.to_vec().into());
            }
        }
        let ceiling = Arc::new(ceiling);
        let mut held = held();
        if held.bytes + ceiling.bytes() > MAX_CEILING_BYTES {
            held.held.clear();
            held.bytes = 0;
        }
        let ceilings = held.held.entry(key).or_default();
        // The one held longest gives way: its statistics are either those
        // of an index that has since moved on, or in use beside others.
        let gone = if ceilings.len() >= MAX_CEILINGS_PER_WORD {
            ceilings.remove(0).bytes()
        } else {
            0
        };
        ceilings.push(ceiling.clone());
        held.bytes = held.bytes + ceiling.bytes() - gone;
        Ok(Some((ceiling, 1.0)))
    }

    /// Forgets segments other than `live`.
    pub fn retain(&self, live: &HashSet<SegmentId>) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.keys().any(|segment| !live.contains(segment)) {
            held.retain(|segment, _| live.contains(segment));
        }
        drop(held);
        self.ceilings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(live);
    }
}

/// The words (unfielded, or in one field) of a conjunction whose every
/// scoring clause is such a word, so that each word can tell what the
/// others may add to a document's score in a segment: a document whose
/// own word cannot reach the bar less that is no hit.
pub(crate) struct Words {
    /// Each word's field terms with their weights, once its weight is
    /// built with scores.
    terms: Box<[OnceLock<Arc<[FieldTerm]>>]>,
    peaks: Arc<Peaks>,
    /// [`Words::limits`] by segment, once summed: every word's scorer in
    /// every piece of a segment reads the same.
    limits: Mutex<HashMap<SegmentId, Arc<[Score]>>>,
}

impl Words {
    pub fn new(count: usize, peaks: Arc<Peaks>) -> Self {
        Self {
            terms: (0..count).map(|_| OnceLock::new()).collect(),
            peaks,
            limits: Mutex::default(),
        }
    }

    /// What the words other than `at` may add at most in `reader`'s
    /// segment; `None` while some word's weight is not built.
    fn others(&self, at: usize, reader: &SegmentReader) -> tantivy::Result<Option<Score>> {
        let mut sum = 0.0;
        for (n, word) in self.terms.iter().enumerate() {
            if n == at {
                continue;
            }
            let Some(terms) = word.get() else {
                return Ok(None);
            };
            for term in terms.iter() {
                sum += term.most(reader, &self.peaks)?;
            }
        }
        Ok(Some(sum))
    }

    /// What the words may score together at most in each window of
    /// `reader`'s segment: each common word by its [`Ceiling`] there,
    /// every other by its peaks. `None` while some word's weight is not
    /// built, or when no word is common enough to have ceilings.
    fn limits(&self, reader: &SegmentReader) -> tantivy::Result<Option<Arc<[Score]>>> {
        let segment = reader.segment_id();
        let held = || self.limits.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(limits) = held().get(&segment) {
            return Ok(Some(limits.clone()));
        }
        let mut limits: Option<Vec<Score>> = None;
        let mut flat = 0.0;
        for word in self.terms.iter() {
            let Some(terms) = word.get() else {
                return Ok(None);
            };
            match self.peaks.ceiling(reader, terms)? {
                Some((ceiling, drift)) => {
                    let limits = limits.get_or_insert_with(|| vec![0.0; ceiling.windows.len()]);
                    for (limit, window) in limits.iter_mut().zip(ceiling.windows.iter()) {
                        *limit += window * drift;
                    }
                }
                None => {
                    for term in terms.iter() {
                        flat += term.most(reader, &self.peaks)?;
                    }
                }
            }
        }
        let Some(mut limits) = limits else {
            return Ok(None);
        };
        for limit in &mut limits {
            *limit += flat;
        }
        let limits: Arc<[Score]> = limits.into();
        held().insert(segment, limits.clone());
        Ok(Some(limits))
    }
}

/// Terms of one word in several fields, each with its boost.
#[derive(Clone)]
pub(crate) struct AnyFieldQuery {
    terms: Vec<(Term, Score)>,
    /// The conjunction's words and this one's place among them, when every
    /// scoring clause of the query is such a word.
    words: Option<(Arc<Words>, usize)>,
}

impl std::fmt::Debug for AnyFieldQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnyFieldQuery")
            .field("terms", &self.terms)
            .finish_non_exhaustive()
    }
}

impl AnyFieldQuery {
    pub fn new(terms: Vec<(Term, Score)>) -> Self {
        Self { terms, words: None }
    }

    /// Word `at` of `words`: the query's other scoring clauses are the
    /// other words, so it may prune.
    pub fn among(&mut self, words: Arc<Words>, at: usize) {
        self.words = Some((words, at));
    }
}

impl Query for AnyFieldQuery {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let schema = scoring.schema();
        let terms = self
            .terms
            .iter()
            .map(|(term, boost)| {
                let entry = schema.get_field_entry(term.field());
                if !entry.is_indexed() {
                    return Err(TantivyError::SchemaError(format!(
                        "field {:?} is not indexed",
                        entry.name()
                    )));
                }
                // The statistics a term query's weight reads, so scores
                // are the same as the union of term queries would give.
                let bm25 = match scoring {
                    EnableScoring::Enabled {
                        statistics_provider,
                        ..
                    } => Some(Arc::new(
                        Bm25Weight::for_terms(statistics_provider, std::slice::from_ref(term))?
                            .boost_by(*boost),
                    )),
                    EnableScoring::Disabled { .. } => None,
                };
                Ok(FieldTerm {
                    term: term.clone(),
                    bm25,
                })
            })
            .collect::<tantivy::Result<Vec<FieldTerm>>>()?;
        let terms: Arc<[FieldTerm]> = terms.into();
        if let (Some((words, at)), EnableScoring::Enabled { .. }) = (&self.words, scoring) {
            if let Some(slot) = words.terms.get(*at) {
                // Built again (a DOI's copies), with the same statistics.
                let _ = slot.set(terms.clone());
            }
        }
        Ok(Box::new(AnyFieldWeight {
            terms,
            words: self.words.clone(),
        }))
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a Term, bool)) {
        for (term, _) in &self.terms {
            visitor(term, false);
        }
    }
}

/// One field's term and, when scores are asked for, its BM25 weight with
/// the field's boost, shared by its scorers in every segment (a weight
/// holds a kilobyte of cached norms).
struct FieldTerm {
    term: Term,
    bm25: Option<Arc<Bm25Weight>>,
}

impl FieldTerm {
    /// The most the term may add to a score in `reader`'s segment: by its
    /// [`Peaks`] there, or for a rarer term by its weight alone.
    fn most(&self, reader: &SegmentReader, peaks: &Peaks) -> tantivy::Result<Score> {
        let doc_freq = reader
            .inverted_index(self.term.field())?
            .doc_freq(&self.term)?;
        self.most_of(reader, peaks, doc_freq)
    }

    /// [`FieldTerm::most`] for a term with `doc_freq` postings in the
    /// segment (known once its postings are open).
    fn most_of(
        &self,
        reader: &SegmentReader,
        peaks: &Peaks,
        doc_freq: u32,
    ) -> tantivy::Result<Score> {
        let Some(bm25) = &self.bm25 else {
            return Ok(1.0);
        };
        if doc_freq == 0 {
            return Ok(0.0);
        }
        Ok(match peaks.of(reader, &self.term, doc_freq)? {
            None => bm25.max_score(),
            Some(peaks) => (0..=u8::MAX)
                .zip(peaks.iter())
                .filter(|(_, &count)| count > 0)
                .map(|(norm, &count)| bm25.score(norm, count))
                .fold(0.0, Score::max),
        })
    }

    /// The term's postings in `reader`'s segment; `None` when the segment
    /// does not hold it.
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Option<FieldScorer>> {
        let field = self.term.field();
        let option = if self.bm25.is_some() {
            IndexRecordOption::WithFreqs
        } else {
            IndexRecordOption::Basic
        };
        let Some(postings) = reader
            .inverted_index(field)?
            .read_postings(&self.term, option)?
        else {
            return Ok(None);
        };
        if postings.doc() == TERMINATED {
            return Ok(None);
        }
        let scoring = match &self.bm25 {
            None => None,
            Some(bm25) => {
                let norms = norms(reader, field)?;
                let bm25 = if boost == 1.0 {
                    bm25.clone()
                } else {
                    Arc::new(bm25.boost_by(boost))
                };
                Some((norms, bm25))
            }
        };
        Ok(Some(FieldScorer {
            postings: Box::new(postings),
            scoring,
            most: Score::INFINITY,
        }))
    }
}

/// The lengths of `field` in `reader`'s segment.
fn norms(
    reader: &SegmentReader,
    field: tantivy::schema::Field,
) -> tantivy::Result<FieldNormReader> {
    Ok(reader
        .fieldnorms_readers()
        .get_field(field)?
        .unwrap_or_else(|| FieldNormReader::constant(reader.max_doc(), 1)))
}

struct AnyFieldWeight {
    terms: Arc<[FieldTerm]>,
    words: Option<(Arc<Words>, usize)>,
}

impl Weight for AnyFieldWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        // Pruning compares scores with what the other words may add, all
        // weighed alike: not under a boost from outside.
        let words = self.words.as_ref().filter(|_| {
            prune::in_pass() && boost == 1.0 && self.terms.iter().all(|t| t.bm25.is_some())
        });
        let mut scorers = Vec::with_capacity(self.terms.len());
        let mut held = Vec::with_capacity(self.terms.len());
        for term in self.terms.iter() {
            if let Some(scorer) = term.scorer(reader, boost)? {
                scorers.push(scorer);
                held.push(term);
            }
        }
        if scorers.is_empty() {
            return Ok(Box::new(EmptyScorer));
        }
        let pruning = match words {
            Some((words, at)) => {
                // Ceilings first: reckoning them keeps the peaks the
                // bounds below read, so no posting is read twice.
                let limits = words.limits(reader)?;
                for (scorer, term) in scorers.iter_mut().zip(held) {
                    let doc_freq = scorer.postings.doc_freq();
                    scorer.most = term.most_of(reader, &words.peaks, doc_freq)?;
                }
                words.others(*at, reader)?.map(|rest| (rest, limits))
            }
            None => None,
        };
        Ok(Box::new(AnyFieldScorer::new(scorers, pruning)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        // The union's score is the sum of the fields on the document.
        let mut matched = false;
        let mut score = 0.0;
        let mut details = Vec::new();
        for term in self.terms.iter() {
            let Some(mut field) = term.scorer(reader, 1.0)? else {
                continue;
            };
            if field.seek(doc) != doc {
                continue;
            }
            matched = true;
            score += field.score();
            if let Some((norms, bm25)) = &field.scoring {
                let mut detail = bm25.explain(norms.fieldnorm_id(doc), field.postings.term_freq());
                detail.add_context(format!("Term={:?}", term.term));
                details.push(detail);
            }
        }
        if !matched {
            return Err(TantivyError::InvalidArgument(format!(
                "document #({doc}) does not match"
            )));
        }
        let mut explanation = Explanation::new("sum of the word's field scores", score);
        for detail in details {
            explanation.add_detail(detail);
        }
        Ok(explanation)
    }
}

/// One field's postings of the word, scored as tantivy's term scorer
/// scores them. Held as postings rather than as a boxed scorer: the union
/// asks each field for its document on every step, and a call through a
/// `dyn` box is not inlined. The postings are boxed all the same: they
/// hold their decoded block, some two kilobytes that every move of the
/// scorer would copy, for each word, field and segment of a search.
struct FieldScorer {
    postings: Box<SegmentPostings>,
    /// The field's norms and BM25 weight; none when scores are not asked
    /// for.
    scoring: Option<(FieldNormReader, Arc<Bm25Weight>)>,
    /// The most the field may add to a score in this segment (when the
    /// word may prune).
    most: Score,
}

impl FieldScorer {
    #[inline]
    fn doc(&self) -> DocId {
        self.postings.doc()
    }

    /// The first document at or after `target`; never moves back.
    #[inline]
    fn seek(&mut self, target: DocId) -> DocId {
        let doc = self.doc();
        if doc >= target {
            return doc;
        }
        self.postings.seek(target)
    }

    #[inline]
    fn score(&self) -> Score {
        match &self.scoring {
            Some((norms, bm25)) => {
                bm25.score(norms.fieldnorm_id(self.doc()), self.postings.term_freq())
            }
            None => 1.0,
        }
    }
}

/// Windows of [`Ceiling`]s stepped over since the process started.
#[cfg(test)]
static WINDOWS_SKIPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many windows pruning passes stepped over by their ceilings.
#[cfg(test)]
pub(crate) fn windows_skipped() -> u64 {
    WINDOWS_SKIPPED.load(std::sync::atomic::Ordering::Relaxed)
}

/// The field scorers, each on its own document; the union is on the least.
///
/// During a pass that prunes, a word that may prune takes its fields from
/// the one that may add least to a score to the one that may add most, and
/// the fields that together cannot lift a document to the bar (with what
/// the other words may add) stop leading: the union steps through the
/// documents of the other fields only, and the led fields are sought to a
/// document only to score it. A document holding the word in led fields
/// alone is no hit. This is MaxScore (Turtle and Flood, 1995) over the
/// fields of one word. Scores are summed in the fields' own order either
/// way, so that a document scores the same to the bit in every pass.
///
/// Where common words have [`Ceiling`]s, the union also steps over every
/// window of [`WINDOW`] documents in which the words together cannot
/// reach the bar: block-max pruning (Ding and Suel, 2011), over windows of
/// document ids rather than a field's blocks of postings, so that one
/// bound covers a document's every field and word.
struct AnyFieldScorer {
    scorers: Vec<FieldScorer>,
    doc: DocId,
    /// When the word may prune.
    pruning: Option<Pruning>,
}

/// What a word needs to prune.
struct Pruning {
    /// What the query's other words may add to a score at most.
    rest: Score,
    /// The field scorers from the least to the most they may add.
    order: Vec<usize>,
    /// What the first `n + 1` of `order` may add together.
    most: Vec<Score>,
    /// Field scorers `order[..led]` are led: they may be behind the union's
    /// document. The others are each on their first document at or after
    /// it.
    led: usize,
    /// What the query's words may score together at most in each window
    /// of [`WINDOW`] documents ([`Words::limits`]): the union steps over
    /// the windows where that is below the bar.
    limits: Option<Arc<[Score]>>,
}

impl AnyFieldScorer {
    /// A union of `scorers`; one that may prune when told what the other
    /// words may add at most, and what all may score in each window.
    fn new(scorers: Vec<FieldScorer>, pruning: Option<(Score, Option<Arc<[Score]>>)>) -> Self {
        let pruning = pruning.map(|(rest, limits)| {
            let mut order: Vec<usize> = (0..scorers.len()).collect();
            order.sort_by(|&a, &b| scorers[a].most.total_cmp(&scorers[b].most));
            let mut sum = 0.0;
            let most = order
                .iter()
                .map(|&at| {
                    sum += scorers[at].most;
                    sum
                })
                .collect();
            Pruning {
                rest,
                order,
                most,
                led: 0,
                limits,
            }
        });
        let doc = scorers
            .iter()
            .map(FieldScorer::doc)
            .min()
            .unwrap_or(TERMINATED);
        Self {
            scorers,
            doc,
            pruning,
        }
    }

    /// Moves the leading fields with `step` and the union to the least of
    /// their documents, after letting the fields that cannot reach the bar
    /// be led; nowhere (`TERMINATED`) once every field is led.
    #[inline]
    fn move_by(&mut self, mut step: impl FnMut(&mut FieldScorer) -> DocId) -> DocId {
        // A conjunction may step through millions of one word's documents
        // in one of its steps: the deadline ends it here.
        if interrupt::cut() || self.doc == TERMINATED {
            self.doc = TERMINATED;
            return TERMINATED;
        }
        let mut next = TERMINATED;
        match &mut self.pruning {
            None => {
                for scorer in &mut self.scorers {
                    next = next.min(step(scorer));
                }
            }
            Some(pruning) => {
                let bar = prune::bar();
                if let Some(bar) = bar {
                    let fields = pruning.order.len();
                    while pruning.led < fields
                        && prune::below(pruning.most[pruning.led] + pruning.rest, bar)
                    {
                        pruning.led += 1;
                    }
                    if pruning.led > 0 {
                        prune::skipped();
                    }
                }
                let leading = &pruning.order[pruning.led..];
                for &at in leading {
                    next = next.min(step(&mut self.scorers[at]));
                }
                if let (Some(bar), Some(limits)) = (bar, &pruning.limits) {
                    // On to the first document in a window that may
                    // reach the bar.
                    while next != TERMINATED {
                        let window = (next / WINDOW) as usize;
                        let open = limits
                            .get(window..)
                            .and_then(|rest| rest.iter().position(|&l| !prune::below(l, bar)));
                        match open {
                            Some(0) => break,
                            Some(past) => {
                                prune::skipped();
                                #[cfg(test)]
                                WINDOWS_SKIPPED
                                    .fetch_add(past as u64, std::sync::atomic::Ordering::Relaxed);
                                let target = (window + past) as DocId * WINDOW;
                                next = TERMINATED;
                                for &at in leading {
                                    next = next.min(self.scorers[at].seek(target));
                                }
                            }
                            None => {
                                prune::skipped();
                                #[cfg(test)]
                                WINDOWS_SKIPPED.fetch_add(
                                    (limits.len() - window) as u64,
                                    std::sync::atomic::Ordering::Relaxed,
                                );
                                next = TERMINATED;
                            }
                        }
                    }
                }
            }
        }
        self.doc = next;
        next
    }
}

impl DocSet for AnyFieldScorer {
    fn advance(&mut self) -> DocId {
        let current = self.doc;
        self.move_by(|scorer| {
            let doc = scorer.doc();
            if doc == current {
                scorer.postings.advance()
            } else {
                doc
            }
        })
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if self.doc >= target {
            return self.doc;
        }
        self.move_by(|scorer| scorer.seek(target))
    }

    fn doc(&self) -> DocId {
        self.doc
    }

    fn size_hint(&self) -> u32 {
        self.scorers
            .iter()
            .map(|s| s.postings.size_hint())
            .max()
            .unwrap_or(0)
    }
}

impl Scorer for AnyFieldScorer {
    fn score(&mut self) -> Score {
        let doc = self.doc;
        if let Some(pruning) = &self.pruning {
            for &at in &pruning.order[..pruning.led] {
                self.scorers[at].seek(doc);
            }
        }
        self.scorers
            .iter()
            .filter(|s| s.doc() == doc)
            .map(FieldScorer::score)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::collector::TopDocs;
    use tantivy::query::{BooleanQuery, BoostQuery, Occur, TermQuery};
    use tantivy::schema::{Schema, TEXT};
    use tantivy::{doc, Index};

    /// `terms` with their weights under `searcher`'s statistics.
    fn weighed(searcher: &tantivy::Searcher, terms: &[(Term, Score)]) -> Vec<FieldTerm> {
        terms
            .iter()
            .map(|(term, boost)| FieldTerm {
                term: term.clone(),
                bm25: Some(Arc::new(
                    Bm25Weight::for_terms(searcher, std::slice::from_ref(term))
                        .unwrap()
                        .boost_by(*boost),
                )),
            })
            .collect()
    }

    /// Each document's score for the word of `terms` in `reader`'s
    /// segment, under `searcher`'s statistics.
    fn scores(
        searcher: &tantivy::Searcher,
        reader: &SegmentReader,
        terms: &[(Term, Score)],
    ) -> Vec<(DocId, Score)> {
        let weight = AnyFieldQuery::new(terms.to_vec())
            .weight(EnableScoring::enabled_from_searcher(searcher))
            .unwrap();
        let mut scorer = weight.scorer(reader, 1.0).unwrap();
        let mut scores = Vec::new();
        while scorer.doc() != TERMINATED {
            scores.push((scorer.doc(), scorer.score()));
            scorer.advance();
        }
        scores
    }

    #[test]
    fn ceilings_are_each_windows_best_score_and_hold_as_statistics_move() {
        let mut builder = Schema::builder();
        let title = builder.add_text_field("title", TEXT);
        let body = builder.add_text_field("body", TEXT);
        let index = Index::create_in_ram(builder.build());
        let mut writer: tantivy::IndexWriter =
            index.writer_with_num_threads(1, 20_000_000).unwrap();
        for n in 0..1000usize {
            // No document holds the word in the sixth window.
            let ice = |m: usize| if n / 128 == 5 { 0 } else { n % m };
            writer
                .add_document(doc!(
                    title => format!("{}{}", "ice ".repeat(ice(3)), "x ".repeat(n % 7)),
                    body => format!("{}{}", "ice ".repeat(ice(5)), "rock ".repeat(n % 11)),
                ))
                .unwrap();
        }
        writer.commit().unwrap();
        let terms = vec![
            (Term::from_field_text(title, "ice"), 3.0),
            (Term::from_field_text(body, "ice"), 1.0),
        ];
        let searcher = index.reader().unwrap().searcher();
        let reader = &searcher.segment_readers()[0];
        let ceiling = Ceiling::reckon(reader, &weighed(&searcher, &terms))
            .unwrap()
            .unwrap();
        assert_eq!(ceiling.windows.len(), 8);
        let mut best = vec![0.0; 8];
        for (doc, score) in scores(&searcher, reader, &terms) {
            let window = &mut best[(doc / WINDOW) as usize];
            *window = Score::max(*window, score);
        }
        assert_eq!(best[5], 0.0);
        assert!(best.iter().filter(|&&b| b > 0.0).count() == 7);
        for (reckoned, best) in ceiling.windows.iter().zip(&best) {
            assert!(
                (reckoned - best).abs() <= 1e-6 * best,
                "{reckoned} for {best}"
            );
        }
        // The same statistics: no drift, and the cache keeps one.
        assert_eq!(ceiling.drift(&weighed(&searcher, &terms)), (1.0, 1.0));
        let peaks = Peaks::default();
        let (held, drift) = peaks
            .ceiling(reader, &weighed(&searcher, &terms))
            .unwrap()
            .unwrap();
        assert_eq!(drift, 1.0);
        let (again, _) = peaks
            .ceiling(reader, &weighed(&searcher, &terms))
            .unwrap()
            .unwrap();
        assert!(Arc::ptr_eq(&held, &again));
        // Reckoning them kept each field's peaks, as reading them anew
        // gives.
        for (term, _) in &terms {
            let doc_freq = reader
                .inverted_index(term.field())
                .unwrap()
                .doc_freq(term)
                .unwrap();
            let read = Peaks::default()
                .of(reader, term, doc_freq)
                .unwrap()
                .unwrap();
            let kept = peaks.held.lock().unwrap()[&reader.segment_id()][term].clone();
            assert_eq!(kept, read);
        }

        // Documents without the word and with longer bodies: the word's
        // weight rises, and so does every score in the first segment.
        let segment = reader.segment_id();
        for _ in 0..3000 {
            writer
                .add_document(doc!(title => "rock", body => "rock ".repeat(40)))
                .unwrap();
        }
        writer.commit().unwrap();
        let larger = index.reader().unwrap().searcher();
        let reader = larger
            .segment_readers()
            .iter()
            .find(|r| r.segment_id() == segment)
            .unwrap();
        let (drift, _) = ceiling.drift(&weighed(&larger, &terms));
        assert!(drift > 1.0 && drift.is_finite(), "{drift}");
        let mut rose = false;
        for ((doc, now), (_, then)) in scores(&larger, reader, &terms).into_iter().zip(scores(
            &searcher,
            &searcher.segment_readers()[0],
            &terms,
        )) {
            rose |= now > then * 1.01;
            let limit = ceiling.windows[(doc / WINDOW) as usize] * drift;
            assert!(
                now <= limit * (1.0 + 1e-6),
                "doc {doc}: {now} above {limit}"
            );
        }
        assert!(rose);
        // For a word in one field, the drift is what some document's score
        // rose by: the bound is tight.
        let body_only = &terms[1..];
        let alone = Ceiling::reckon(
            &searcher.segment_readers()[0],
            &weighed(&searcher, body_only),
        )
        .unwrap()
        .unwrap();
        let (rise, fall) = alone.drift(&weighed(&larger, body_only));
        assert_eq!(fall, 1.0, "every score rose");
        let rose_most = scores(&larger, reader, body_only)
            .into_iter()
            .zip(scores(&searcher, &searcher.segment_readers()[0], body_only))
            .map(|((_, now), (_, then))| now / then)
            .fold(0.0, Score::max);
        assert!(
            (rise - rose_most).abs() <= 1e-5 * rise,
            "{rise} for {rose_most}"
        );
        // And the other way, from the larger index's statistics back to
        // the smaller's: scores fall, by as much as the ceilings are loose.
        let back = Ceiling::reckon(reader, &weighed(&larger, body_only))
            .unwrap()
            .unwrap();
        let (rise, fall) = back.drift(&weighed(&searcher, body_only));
        assert_eq!(rise, 1.0);
        assert!(
            (fall - rose_most).abs() <= 1e-3 * fall,
            "{fall} for {rose_most}"
        );
        // Under statistics this far from its own (the word's weight has
        // more than doubled), a ceiling is reckoned again.
        assert!(drift > MAX_DRIFT, "{drift}");
        let (anew, drift) = peaks
            .ceiling(reader, &weighed(&larger, &terms))
            .unwrap()
            .unwrap();
        assert!(!Arc::ptr_eq(&held, &anew));
        assert_eq!(drift, 1.0);
    }

    /// Same matches and the same scores as the boolean union of boosted
    /// term clauses it replaces, alone and inside an intersection.
    #[test]
    fn matches_and_scores_like_a_union_of_boosted_terms() {
        let mut builder = Schema::builder();
        let title = builder.add_text_field("title", TEXT);
        let body = builder.add_text_field("body", TEXT);
        let tag = builder.add_text_field("tag", TEXT);
        let note = builder.add_text_field("note", TEXT);
        let index = Index::create_in_ram(builder.build());
        let mut writer: tantivy::IndexWriter =
            index.writer_with_num_threads(1, 20_000_000).unwrap();
        for n in 0..3000u32 {
            let word = |m: u32| if n % m == 0 { "ice" } else { "rock" };
            let parity = if n % 2 == 0 { "even" } else { "odd" };
            let fifth = if n % 5 == 0 { "five" } else { "other" };
            writer
                .add_document(doc!(
                    title => format!("{} {}", word(7), "x ".repeat((n % 5) as usize)),
                    body => format!("{} {}", word(3), word(11)),
                    tag => format!("{parity} {fifth}"),
                    note => word(4),
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
            (Term::from_field_text(note, "ice"), 0.5),
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
        let tagged = |value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(tag, value),
                IndexRecordOption::Basic,
            ))
        };
        let even = || tagged("even");
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
        // Boosted from outside, its field scorers take the boost as the
        // union's term scorers do.
        let boosted = |query: Box<dyn Query>| BoostQuery::new(query, 2.5);
        let boosted_any = top(&boosted(any()));
        close(&boosted_any, &top(&boosted(union())));
        let scaled: Vec<_> = top(&*any())
            .into_iter()
            .map(|(score, doc)| (2.5 * score, doc))
            .collect();
        close(&boosted_any, &scaled);
        assert!(!top(&and(any())).is_empty());
        // Sought to documents a third clause mostly turns down; and
        // excluded.
        let and3 = |text: Box<dyn Query>| {
            BooleanQuery::new(vec![
                (Occur::Must, text),
                (Occur::Must, even()),
                (Occur::Must, tagged("five")),
            ])
        };
        close(&top(&and3(any())), &top(&and3(union())));
        assert!(!top(&and3(any())).is_empty());
        let but = |text: Box<dyn Query>| {
            BooleanQuery::new(vec![(Occur::Must, even()), (Occur::MustNot, text)])
        };
        close(&top(&but(any())), &top(&but(union())));
        assert!(!top(&but(any())).is_empty());

        // Stepped and sought by turns, as a conjunction does, the word is
        // always on the least document at or after where it was sent, with
        // that document's score.
        let scoring = EnableScoring::enabled_from_searcher(&searcher);
        let any_weight = any().weight(scoring).unwrap();
        let union_weight = union().weight(scoring).unwrap();
        let mut random = 7u32;
        for reader in searcher.segment_readers() {
            let mut expected = std::collections::BTreeMap::new();
            let mut reference = union_weight.scorer(reader, 1.0).unwrap();
            while reference.doc() != TERMINATED {
                expected.insert(reference.doc(), reference.score());
                reference.advance();
            }
            let mut scorer = any_weight.scorer(reader, 1.0).unwrap();
            let mut at = scorer.doc();
            while at != TERMINATED {
                random = random.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let (doc, target) = match (random >> 16) % 3 {
                    0 => (scorer.advance(), at + 1),
                    _ => {
                        let target = at + 1 + (random >> 20) % 24;
                        (scorer.seek(target), target)
                    }
                };
                let want = expected.range(target..).next();
                assert_eq!(
                    Some(doc).filter(|&d| d != TERMINATED),
                    want.map(|(d, _)| *d)
                );
                if let Some((_, score)) = want.filter(|_| random & 1 == 0) {
                    assert!((scorer.score() - score).abs() < 1e-4);
                }
                at = doc;
            }
        }

        // Every match, and only a match, is explained, with its score.
        let weight = any()
            .weight(EnableScoring::enabled_from_searcher(&searcher))
            .unwrap();
        let hits = top(&*any());
        for (ord, reader) in searcher.segment_readers().iter().enumerate() {
            let scores: std::collections::HashMap<u32, f32> = hits
                .iter()
                .filter(|(_, a)| a.segment_ord as usize == ord)
                .map(|(score, a)| (a.doc_id, *score))
                .collect();
            for doc in 0..reader.max_doc() {
                match (weight.explain(reader, doc), scores.get(&doc)) {
                    (Ok(explanation), Some(score)) => {
                        assert!((explanation.value() - score).abs() < 1e-4);
                    }
                    (Err(_), None) => {}
                    (explained, score) => panic!("doc {doc}: {explained:?} for {score:?}"),
                }
            }
        }
    }
}
