//! Top hits without scoring every match.
//!
//! A search of a common word at ten million records matches millions of
//! them, and scoring each to keep the ten best is most of its time. Once a
//! page is full, its worst hit sets a bar: a document that cannot score
//! above it is of no use to the page. The words of a conjunction, unfielded
//! or in one field ([`super::any_field`]), know, for each of their fields,
//! the most it may add to a score, and let the fields that together cannot
//! lift a document to the bar stop leading (MaxScore, Turtle and Flood,
//! 1995), so the documents holding the word in those fields alone are
//! stepped over unscored; and common words know what they score at most
//! in each window of documents, so windows where the words together
//! cannot reach the bar are stepped over whole. The bounds hold for every document, so the page
//! is exactly the page of a pass that scores everything.
//!
//! Stepping over documents leaves them out of the match set, so a pass
//! that prunes yields top hits only, never a total or facet counts. The
//! bar is per thread: a search's pieces each run on one thread, scorer and
//! collector side by side ([`super::pieces`]), and a pass that prunes
//! holds a [`Pass`] for each piece, begun before its scorer is built.
//! Every other search sees no bar and prunes nothing.

use std::cell::Cell;

use tantivy::Score;

thread_local! {
    /// The least score a document must reach to be a hit of the page
    /// being collected on this thread.
    static BAR: Cell<Score> = const { Cell::new(Score::NEG_INFINITY) };
    /// Whether a pruning pass is running on this thread.
    static PASS: Cell<bool> = const { Cell::new(false) };
    /// Whether documents were stepped over since the pass began.
    static SKIPPED: Cell<bool> = const { Cell::new(false) };
}

/// Moves that stepped over documents since the process started (tests
/// only).
#[cfg(test)]
static STEPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many moves of pruning passes stepped over documents.
#[cfg(test)]
pub(crate) fn stepped() -> u64 {
    STEPPED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Float sums taken in another order may differ in their last bits: a
/// run is stepped over only when what it may reach is below the bar by
/// more than this share of it.
const ROUNDING: Score = 1e-4;

/// A pruning pass over one piece, on this thread: the bar starts unset
/// and is unset again when the pass ends.
pub(crate) struct Pass(());

impl Pass {
    pub fn begin() -> Self {
        PASS.with(|pass| pass.set(true));
        BAR.with(|bar| bar.set(Score::NEG_INFINITY));
        SKIPPED.with(|skipped| skipped.set(false));
        Self(())
    }

    /// Documents scoring below `score` are of no use to the page.
    pub fn raise(&self, score: Score) {
        BAR.with(|bar| {
            if score > bar.get() {
                bar.set(score);
            }
        });
    }

    /// Whether some documents were stepped over unscored.
    pub fn stepped_over(&self) -> bool {
        SKIPPED.with(Cell::get)
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        PASS.with(|pass| pass.set(false));
        BAR.with(|bar| bar.set(Score::NEG_INFINITY));
    }
}

/// Whether a pruning pass is running on this thread: only then are the
/// scorers built for one told what they need to prune.
pub(super) fn in_pass() -> bool {
    PASS.with(Cell::get)
}

/// The least score a hit must reach on this thread; `None` outside a
/// pass that prunes, or before its page is full.
#[inline]
pub(super) fn bar() -> Option<Score> {
    let bar = BAR.with(Cell::get);
    (bar != Score::NEG_INFINITY).then_some(bar)
}

/// Whether a document scoring `reach` at most is below `bar`, by more than
/// float sums taken in another order may differ.
#[inline]
pub(super) fn below(reach: Score, bar: Score) -> bool {
    reach + ROUNDING * reach.abs().max(bar.abs()) < bar
}

/// Notes that documents were stepped over unscored.
#[inline]
pub(super) fn skipped() {
    SKIPPED.with(|skipped| skipped.set(true));
    #[cfg(test)]
    STEPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_is_set_only_during_a_pass_and_only_rises() {
        assert_eq!(bar(), None);
        assert!(!in_pass());
        {
            let pass = Pass::begin();
            assert!(in_pass());
            assert_eq!(bar(), None);
            pass.raise(5.0);
            pass.raise(3.0);
            assert_eq!(bar(), Some(5.0));
            assert!(!pass.stepped_over());
            skipped();
            assert!(pass.stepped_over());
        }
        assert_eq!(bar(), None);
        assert!(!in_pass());
        let pass = Pass::begin();
        assert!(!pass.stepped_over(), "a new pass starts afresh");
        assert!(below(4.0, 5.0));
        assert!(!below(4.9999, 5.0), "within rounding");
        assert!(!below(5.0, 5.0));
    }
}
