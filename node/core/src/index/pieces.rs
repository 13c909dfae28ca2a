//! A search spread over threads by equal shares of documents, not by
//! segments.
//!
//! tantivy hands each segment to one thread, so a search is as slow as the
//! thread with the most documents: five segments of 200,000 on two threads
//! are three on one and two on the other. Here the segments are laid end
//! to end and cut into equal shares, each a run of ranges of document ids
//! searched by scorers of their own that seek to each range's start, so
//! the threads get equal work whatever the segments. Segments that already
//! balance over the threads stay whole.

use std::ops::Range;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::{EnableScoring, Query, Weight};
use tantivy::{DocId, Executor, Score, Searcher, SegmentReader};

use super::interrupt::{self, Deadline};
use super::prune;

/// Shares per thread: more than one lets a thread that finishes early
/// take over work (matches need not spread evenly over the documents);
/// fewer keeps the scorers built per search down.
const SHARES_PER_THREAD: u64 = 2;

/// Documents a search steps over between two looks at the clock: tens
/// of microseconds of work, against some 25 ns per look. (Counted here
/// rather than by [`interrupt::cut`], whose count is a thread-local: a
/// walk that asked it at every step measured 1–5% slower at 1,000,000
/// records.)
const STEPS_PER_LOOK: u32 = 1024;

/// One range of one segment's documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Piece {
    segment: usize,
    docs: Range<DocId>,
}

/// Cuts segments of `max_docs` documents, laid end to end, into equal
/// shares for `threads` threads: each share is the pieces of segments it
/// covers, in order. Where whole segments already give each thread about
/// the same number of documents, each segment is a share of its own, as
/// in tantivy, and no scorer more is built. Empty segments have nothing
/// to search.
pub(super) fn shares(max_docs: &[DocId], threads: usize) -> Vec<Vec<Piece>> {
    let total: u64 = max_docs.iter().map(|&docs| u64::from(docs)).sum();
    if total == 0 {
        return Vec::new();
    }
    if whole_segments_balance(max_docs, threads, total) {
        return max_docs
            .iter()
            .enumerate()
            .filter(|(_, &docs)| docs > 0)
            .map(|(segment, &docs)| {
                vec![Piece {
                    segment,
                    docs: 0..docs,
                }]
            })
            .collect();
    }
    let count = (SHARES_PER_THREAD * threads.max(1) as u64).min(total);
    let mut shares: Vec<Vec<Piece>> = vec![Vec::new(); count as usize];
    // Document `n` of the whole belongs to share `n * count / total`.
    let mut offset = 0u64;
    for (segment, &docs) in max_docs.iter().enumerate() {
        let end = offset + u64::from(docs);
        let mut at = offset;
        while at < end {
            let share = at * count / total;
            // The first document of the next share, or the segment's end.
            let next = ((share + 1) * total).div_ceil(count).min(end);
            shares[share as usize].push(Piece {
                segment,
                docs: (at - offset) as DocId..(next - offset) as DocId,
            });
            at = next;
        }
        offset = end;
    }
    shares
}

/// Whether whole segments, the largest first each to the thread with the
/// fewest documents so far, leave no thread more than a tenth above an
/// equal share.
fn whole_segments_balance(max_docs: &[DocId], threads: usize, total: u64) -> bool {
    let mut sizes: Vec<u64> = max_docs.iter().map(|&docs| u64::from(docs)).collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    let mut loads = vec![0u64; threads.max(1)];
    for size in sizes {
        if let Some(least) = loads.iter_mut().min() {
            *least += size;
        }
    }
    let most = loads.iter().copied().max().unwrap_or(0);
    most * loads.len() as u64 * 10 <= total * 11
}

/// A segment collector that can tell the least score a document must
/// reach to change what it collects.
pub(crate) trait Bar {
    /// `None` while every document would.
    fn bar(&self) -> Option<Score>;
}

/// Which documents of each piece a search visits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walk {
    /// Every match.
    Every,
    /// Matches that may reach the collector's [`Bar`]; runs of documents
    /// that cannot are stepped over ([`prune`]).
    Pruned,
    /// Every match in a sample of the documents ([`Sample`]).
    Sample(Sample),
}

/// Windows of `width` documents, one in every `every`, from each
/// segment's first document: a sample of the segment that does not
/// depend on what is searched, so that counts from it scale to the whole.
/// A segment no longer than one stride (`width` times `every`: a recent,
/// small one, often one origin's records) is counted whole, with weight 1,
/// rather than by its first window scaled as if it were a sample of more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    pub width: DocId,
    pub every: DocId,
}

impl Sample {
    fn stride(self) -> DocId {
        self.width.saturating_mul(self.every.max(1)).max(1)
    }

    /// The windows of a segment of `max_doc` documents that meet `docs`,
    /// cut to it.
    fn windows(self, max_doc: DocId, docs: Range<DocId>) -> impl Iterator<Item = Range<DocId>> {
        let (stride, width) = if max_doc <= self.stride() {
            // Counted whole: one window, the segment.
            (max_doc.max(1), max_doc.max(1))
        } else {
            (self.stride(), self.width)
        };
        let first = docs.start / stride;
        let last = docs.end.div_ceil(stride);
        (first..last).filter_map(move |n| {
            let start = n.checked_mul(stride)?;
            let window = start.max(docs.start)..start.saturating_add(width).min(docs.end);
            (!window.is_empty()).then_some(window)
        })
    }

    /// How many of a segment's `max_doc` documents the sample holds.
    fn docs_in(self, max_doc: DocId) -> u64 {
        self.windows(max_doc, 0..max_doc)
            .map(|w| u64::from(w.len() as u32))
            .sum()
    }

    /// How many documents of a segment of `max_doc` each one the sample
    /// holds stands for.
    pub fn weight(self, max_doc: DocId) -> f64 {
        match self.docs_in(max_doc) {
            0 => 1.0,
            sampled => f64::from(max_doc) / sampled as f64,
        }
    }
}

/// What a search found beside its fruit.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Walked {
    /// A pruned walk stepped over documents: matches may have gone
    /// uncollected.
    pub skipped: bool,
}

/// Runs `query` over every document of `searcher` as tantivy's
/// `search_with_executor` does, with the work cut into [`shares`] for
/// `threads` threads, visiting the documents `walk` says. The collector
/// gets one fruit per piece, so several may come from one segment. Every
/// thread stops stepping once `deadline` passes, with what it collected so
/// far: the caller asks [`Deadline::passed`] whether the fruit is whole.
#[allow(clippy::too_many_arguments)]
pub(crate) fn search<C>(
    searcher: &Searcher,
    query: &dyn Query,
    collector: &C,
    executor: &Executor,
    threads: usize,
    scoring: EnableScoring<'_>,
    walk: Walk,
    deadline: Option<&Deadline>,
) -> tantivy::Result<(C::Fruit, Walked)>
where
    C: Collector,
    C::Child: Bar,
{
    let weight = query.weight(scoring)?;
    let readers = searcher.segment_readers();
    let max_docs: Vec<DocId> = readers.iter().map(SegmentReader::max_doc).collect();
    let fruits = executor.map(
        |share: Vec<Piece>| {
            share
                .into_iter()
                .map(|piece| {
                    let reader = &readers[piece.segment];
                    let child = collector.for_segment(piece.segment as u32, reader)?;
                    let scored = collector.requires_scoring();
                    let step = Step {
                        weight: weight.as_ref(),
                        reader,
                        scored,
                        deadline,
                    };
                    step.collect(child, piece.docs, walk)
                })
                .collect::<tantivy::Result<Vec<_>>>()
        },
        shares(&max_docs, threads).into_iter(),
    )?;
    let mut walked = Walked::default();
    let fruits = fruits
        .into_iter()
        .flatten()
        .map(|(fruit, skipped)| {
            walked.skipped |= skipped;
            fruit
        })
        .collect();
    Ok((collector.merge_fruits(fruits)?, walked))
}

/// What collecting one piece needs besides its collector.
struct Step<'a> {
    weight: &'a dyn Weight,
    reader: &'a SegmentReader,
    scored: bool,
    deadline: Option<&'a Deadline>,
}

impl Step<'_> {
    /// Feeds the live documents of `docs` that match and that `walk`
    /// visits to `child`, with their scores when the collector wants
    /// them, until the deadline passes; and tells whether a pruned walk
    /// stepped over any.
    fn collect<S: SegmentCollector + Bar>(
        &self,
        mut child: S,
        docs: Range<DocId>,
        walk: Walk,
    ) -> tantivy::Result<(S::Fruit, bool)> {
        if self.deadline.is_some_and(Deadline::look) {
            return Ok((child.harvest(), false));
        }
        // Kept until the walk ends: a scorer that stops inside one step
        // then marks the deadline passed.
        let _watch = interrupt::Watch::begin(self.deadline);
        let scorer = || self.weight.scorer(self.reader, 1.0);
        let mut steps = STEPS_PER_LOOK;
        let windows: Box<dyn Iterator<Item = Range<DocId>>> = match walk {
            Walk::Pruned => {
                // Begun before the scorer is built, which then prepares
                // to prune.
                let pass = prune::Pass::begin();
                self.run(&mut *scorer()?, &mut child, docs, &mut steps, |child| {
                    if let Some(bar) = child.bar() {
                        pass.raise(bar);
                    }
                });
                return Ok((child.harvest(), pass.stepped_over()));
            }
            Walk::Every => Box::new(std::iter::once(docs)),
            Walk::Sample(sample) => Box::new(sample.windows(self.reader.max_doc(), docs)),
        };
        let mut scorer = scorer()?;
        for window in windows {
            if !self.run(&mut *scorer, &mut child, window, &mut steps, |_| {}) {
                break;
            }
        }
        Ok((child.harvest(), false))
    }

    /// Collects the matches of `docs` (the scorer is at or before its
    /// start), calling `after` after each, with `steps` left before the
    /// next look at the clock (carried from one window to the next); false
    /// when the deadline passed.
    fn run<S: SegmentCollector>(
        &self,
        scorer: &mut dyn tantivy::query::Scorer,
        child: &mut S,
        docs: Range<DocId>,
        steps: &mut u32,
        mut after: impl FnMut(&S),
    ) -> bool {
        let mut doc = scorer.doc();
        if doc < docs.start {
            doc = scorer.seek(docs.start);
        }
        let alive = self.reader.alive_bitset();
        // `TERMINATED` is above every range's end.
        while doc < docs.end {
            if alive.is_none_or(|alive| alive.is_alive(doc)) {
                let score = if self.scored { scorer.score() } else { 0.0 };
                child.collect(doc, score);
                after(child);
            }
            doc = scorer.advance();
            *steps -= 1;
            if *steps == 0 {
                if self.deadline.is_some_and(Deadline::look) {
                    return false;
                }
                *steps = STEPS_PER_LOOK;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};
    use tantivy::query::{EnableScoring, Explanation, Scorer};
    use tantivy::schema::{Schema, TEXT};
    use tantivy::{doc, Index, IndexWriter, TERMINATED};

    /// Counts what it is fed.
    struct Counting;

    struct CountingSegment(u64);

    impl Collector for Counting {
        type Fruit = u64;
        type Child = CountingSegment;

        fn for_segment(&self, _: u32, _: &SegmentReader) -> tantivy::Result<CountingSegment> {
            Ok(CountingSegment(0))
        }

        fn requires_scoring(&self) -> bool {
            false
        }

        fn merge_fruits(&self, counts: Vec<u64>) -> tantivy::Result<u64> {
            Ok(counts.into_iter().sum())
        }
    }

    impl SegmentCollector for CountingSegment {
        type Fruit = u64;

        fn collect(&mut self, _: DocId, _: Score) {
            self.0 += 1;
        }

        fn harvest(self) -> u64 {
            self.0
        }
    }

    impl Bar for CountingSegment {
        fn bar(&self) -> Option<Score> {
            None
        }
    }

    /// The last document of a segment, from a scorer that takes `build` to
    /// be built and then steps through every document in its first step,
    /// asking [`interrupt::cut`] at each, as a phrase of common words does.
    #[derive(Debug, Clone)]
    struct Slow {
        build: Duration,
    }

    struct SlowWeight(Duration);

    struct Last {
        doc: DocId,
    }

    impl tantivy::DocSet for Last {
        fn advance(&mut self) -> DocId {
            self.doc = TERMINATED;
            self.doc
        }

        fn doc(&self) -> DocId {
            self.doc
        }

        fn size_hint(&self) -> u32 {
            1
        }
    }

    impl Query for Slow {
        fn weight(&self, _: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
            Ok(Box::new(SlowWeight(self.build)))
        }
    }

    impl Weight for SlowWeight {
        fn scorer(&self, reader: &SegmentReader, _: Score) -> tantivy::Result<Box<dyn Scorer>> {
            std::thread::sleep(self.0);
            // Its first step: to the last document, past every other.
            let mut doc = 0;
            while doc + 1 < reader.max_doc() {
                if interrupt::cut() {
                    doc = TERMINATED;
                    break;
                }
                doc += 1;
            }
            Ok(Box::new(Last { doc }))
        }

        fn explain(&self, _: &SegmentReader, _: DocId) -> tantivy::Result<Explanation> {
            Ok(Explanation::new("last", 1.0))
        }
    }

    impl Scorer for Last {
        fn score(&mut self) -> Score {
            1.0
        }
    }

    /// A deadline that passes while a piece's scorer is being built, after
    /// the walk's first look at the clock, stops the scorer inside its one
    /// long step, and the walk marks the search's deadline passed, so that
    /// the caller does not take what was collected for the whole.
    #[test]
    fn a_deadline_that_passes_while_a_scorer_is_built_stops_the_walk() {
        let mut schema = Schema::builder();
        let text = schema.add_text_field("text", TEXT);
        let index = Index::create_in_ram(schema.build());
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
        for _ in 0..20_000 {
            writer.add_document(doc!(text => "ice")).unwrap();
        }
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        let slow = Slow {
            build: Duration::from_millis(300),
        };
        let walk = |deadline: Option<&Deadline>| {
            let scoring = EnableScoring::disabled_from_searcher(&searcher);
            let executor = Executor::SingleThread;
            search(
                &searcher,
                &slow,
                &Counting,
                &executor,
                1,
                scoring,
                Walk::Every,
                deadline,
            )
            .unwrap()
            .0
        };
        assert_eq!(walk(None), 1);
        let deadline = Deadline::new(Instant::now() + Duration::from_millis(100));
        assert_eq!(walk(Some(&deadline)), 0, "the last document was reached");
        assert!(deadline.passed());
    }

    fn ranges(max_docs: &[DocId], threads: usize) -> Vec<Vec<(usize, Range<DocId>)>> {
        shares(max_docs, threads)
            .into_iter()
            .map(|share| share.into_iter().map(|p| (p.segment, p.docs)).collect())
            .collect()
    }

    #[test]
    fn a_sample_is_every_nth_window_of_each_segment_cut_to_the_piece() {
        let sample = Sample {
            width: 10,
            every: 4,
        };
        let windows =
            |max_doc: DocId, docs: Range<DocId>| sample.windows(max_doc, docs).collect::<Vec<_>>();
        assert_eq!(windows(100, 0..100), [0..10, 40..50, 80..90]);
        assert_eq!(windows(100, 5..85), [5..10, 40..50, 80..85]);
        assert_eq!(windows(100, 10..40), Vec::<Range<DocId>>::new());
        assert_eq!(windows(100, 45..46), vec![45..46]);
        // Pieces of a segment hold together what the segment holds.
        let whole: u64 = windows(1_000, 0..1_000)
            .iter()
            .map(|w| w.len() as u64)
            .sum();
        let cut: u64 = [0..333, 333..700, 700..1_000]
            .into_iter()
            .flat_map(|piece| sample.windows(1_000, piece))
            .map(|w| w.len() as u64)
            .sum();
        assert_eq!((whole, cut), (250, 250));
        assert_eq!(sample.docs_in(1_000), 250);
        assert_eq!(sample.weight(1_000), 4.0);
        assert_eq!(sample.docs_in(45), 15);
        assert_eq!(sample.weight(45), 3.0);
        // A segment no longer than one stride is counted whole.
        assert_eq!(windows(40, 0..40), vec![0..40]);
        assert_eq!(windows(40, 12..30), vec![12..30]);
        assert_eq!(sample.weight(40), 1.0);
        assert_eq!(sample.weight(7), 1.0);
        assert_eq!(sample.docs_in(0), 0);
        let all = Sample { width: 7, every: 1 };
        assert_eq!(all.docs_in(100), 100);
        assert_eq!(all.weight(100), 1.0);
    }

    #[test]
    fn one_segment_is_cut_into_equal_shares() {
        assert_eq!(
            ranges(&[1_000_000], 2),
            [
                [(0, 0..250_000)],
                [(0, 250_000..500_000)],
                [(0, 500_000..750_000)],
                [(0, 750_000..1_000_000)],
            ]
        );
    }

    #[test]
    fn five_equal_segments_are_cut_into_four_equal_shares() {
        // Whole, they would be three on one thread and two on the other.
        assert_eq!(
            ranges(&[200_000; 5], 2),
            [
                vec![(0, 0..200_000), (1, 0..50_000)],
                vec![(1, 50_000..200_000), (2, 0..100_000)],
                vec![(2, 100_000..200_000), (3, 0..150_000)],
                vec![(3, 150_000..200_000), (4, 0..200_000)],
            ]
        );
    }

    #[test]
    fn segments_that_already_balance_stay_whole() {
        // The 10,000,000-record benchmark index: 5.0M and 5.0M whole.
        let max_docs = [
            1_733_196, 1_684_807, 1_650_000, 1_650_000, 1_632_357, 1_617_643, 16_804, 15_193,
        ];
        let whole: Vec<_> = (0..8).map(|s| vec![(s, 0..max_docs[s])]).collect();
        assert_eq!(ranges(&max_docs, 2), whole);
        // One thread: nothing to balance.
        assert_eq!(ranges(&[10, 20], 1), [[(0, 0..10)], [(1, 0..20)]]);
        assert_eq!(ranges(&[10, 0, 10], 2), [[(0, 0..10)], [(2, 0..10)]]);
    }

    #[test]
    fn shares_cross_segments_and_skip_empty_ones() {
        // 1,000 documents, four shares of 250.
        assert_eq!(
            ranges(&[700, 0, 100, 200], 2),
            [
                vec![(0, 0..250)],
                vec![(0, 250..500)],
                vec![(0, 500..700), (2, 0..50)],
                vec![(2, 50..100), (3, 0..200)],
            ]
        );
    }

    #[test]
    fn a_tiny_index_has_no_empty_shares() {
        assert_eq!(
            ranges(&[1, 0, 2], 2),
            [[(0, 0..1)], [(2, 0..1)], [(2, 1..2)]]
        );
        assert!(ranges(&[], 2).is_empty());
        assert!(ranges(&[0], 2).is_empty());
    }

    #[test]
    fn every_document_is_in_exactly_one_piece_and_cut_shares_are_equal() {
        for max_docs in [
            vec![1],
            vec![3, 1, 4, 1, 5, 9, 2, 6],
            vec![999_983, 0, 17, 65_536],
        ] {
            let total: u64 = max_docs.iter().map(|&d| u64::from(d)).sum();
            for threads in 1..=4 {
                let shares = shares(&max_docs, threads);
                let sizes: Vec<u64> = shares
                    .iter()
                    .map(|share| share.iter().map(|p| u64::from(p.docs.len() as u32)).sum())
                    .collect();
                assert_eq!(sizes.iter().sum::<u64>(), total);
                let (least, most) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                let whole = shares
                    .iter()
                    .flatten()
                    .all(|p| p.docs.start == 0 && p.docs.end == max_docs[p.segment]);
                assert!(
                    whole || most - least <= 1,
                    "{max_docs:?} on {threads}: {sizes:?}"
                );
                let mut pieces: Vec<&Piece> = shares.iter().flatten().collect();
                pieces.sort_by_key(|p| (p.segment, p.docs.start));
                for (segment, &docs) in max_docs.iter().enumerate() {
                    let mut next = 0;
                    for piece in pieces.iter().filter(|p| p.segment == segment) {
                        assert_eq!(piece.docs.start, next, "{max_docs:?} on {threads}");
                        assert!(!piece.docs.is_empty());
                        next = piece.docs.end;
                    }
                    assert_eq!(next, docs, "{max_docs:?} on {threads}");
                }
            }
        }
    }
}
