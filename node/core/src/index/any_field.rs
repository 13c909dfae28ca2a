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

/// For each length a field may have (coded in a byte, as tantivy keeps
/// field lengths), the highest count of a term among the documents of a
/// segment with that length: what the term can score at most there,
/// under any BM25 weight (a score rises with the count and falls with the
/// length). Far less than the score of an endless count that BM25 tends
/// to, which is all a term's statistics tell; read once per segment and
/// term, from every posting (some milliseconds for a term in millions of
/// documents, paid by the first search that needs it, which two threads
/// may both pay), and kept for every search (segments never change).
#[derive(Default)]
pub(crate) struct Peaks {
    held: Mutex<HashMap<SegmentId, HashMap<Term, PeaksOf>>>,
}

/// One term's peaks in one segment, by coded field length.
type PeaksOf = Arc<[u32]>;

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
        let mut held = held();
        let terms = held.entry(segment).or_default();
        if terms.len() >= MAX_PEAKS_PER_SEGMENT {
            terms.clear();
        }
        terms.insert(term.clone(), peaks.clone());
        Ok(Some(peaks))
    }

    /// Forgets segments other than `live`.
    pub fn retain(&self, live: &HashSet<SegmentId>) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.keys().any(|segment| !live.contains(segment)) {
            held.retain(|segment, _| live.contains(segment));
        }
    }
}

/// The unfielded words of a conjunction whose every scoring clause is
/// such a word, so that each word can tell what the others may add to a
/// document's score in a segment: a document whose own word cannot reach
/// the bar less that is no hit.
pub(crate) struct Words {
    /// Each word's field terms with their weights, once its weight is
    /// built with scores.
    terms: Box<[OnceLock<Arc<[FieldTerm]>>]>,
    peaks: Arc<Peaks>,
}

impl Words {
    pub fn new(count: usize, peaks: Arc<Peaks>) -> Self {
        Self {
            terms: (0..count).map(|_| OnceLock::new()).collect(),
            peaks,
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
        for term in self.terms.iter() {
            if let Some(mut scorer) = term.scorer(reader, boost)? {
                if let Some((words, _)) = words {
                    let doc_freq = scorer.postings.doc_freq();
                    scorer.most = term.most_of(reader, &words.peaks, doc_freq)?;
                }
                scorers.push(scorer);
            }
        }
        let rest = match words {
            Some((words, at)) => words.others(*at, reader)?,
            None => None,
        };
        Ok(if scorers.is_empty() {
            Box::new(EmptyScorer)
        } else {
            Box::new(AnyFieldScorer::new(scorers, rest))
        })
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
}

impl AnyFieldScorer {
    fn new(scorers: Vec<FieldScorer>, rest: Option<Score>) -> Self {
        let pruning = rest.map(|rest| {
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
        if interrupt::cut() {
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
                if let Some(bar) = prune::bar() {
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
                for &at in &pruning.order[pruning.led..] {
                    next = next.min(step(&mut self.scorers[at]));
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
