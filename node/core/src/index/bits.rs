//! Sets of a segment's documents as bitsets, held for the term sets that
//! searches use over and over.
//!
//! A conjunction seeks each of its clauses to every document the rest of
//! the query proposes. Through postings a seek decodes blocks; for a viewer
//! with several audience terms it seeks a union of postings. The same few
//! sets come back in nearly every search: `anyone`, a peer's grants, the
//! common disciplines. So the documents holding any of a set of terms, when
//! they are at least one in [`DENSE`] of a segment, are kept as a bitset of
//! that segment ([`BitsCache`]), built once from the postings; a seek into
//! it is a word lookup.
//!
//! A bitset counts deleted documents too, as postings do: the collector
//! skips those. Segments never change their postings, so a held bitset is
//! valid for as long as its segment lives.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tantivy::index::{InvertedIndexReader, SegmentId};
use tantivy::postings::TermInfo;
use tantivy::query::Scorer;
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, DocSet, Score, SegmentReader, Term, TERMINATED};

/// Documents are held as a bitset once they are at least one in this many
/// of their segment: a bitset costs a bit per document, postings about a
/// byte per document they name.
const DENSE: u32 = 64;

/// Most bytes of bitsets held; past it the oldest are dropped.
const MAX_HELD_BYTES: usize = 64 << 20;

/// Documents of one segment, a bit each, and how many there are.
/// Never copied: a held set is shared by every search that reads it.
#[derive(Debug)]
pub(crate) struct Bits {
    words: Box<[u64]>,
    max_doc: DocId,
    len: u32,
}

impl Bits {
    pub fn empty(max_doc: DocId) -> Self {
        Self {
            words: vec![0; (max_doc as usize).div_ceil(64)].into_boxed_slice(),
            max_doc,
            len: 0,
        }
    }

    /// The documents of the postings of `terms` in `reader`'s segment,
    /// each term with its dictionary entry.
    fn of_postings(
        reader: &SegmentReader,
        terms: &[(Arc<InvertedIndexReader>, TermInfo)],
    ) -> tantivy::Result<Self> {
        let mut bits = Self::empty(reader.max_doc());
        for (inverted, info) in terms {
            let mut postings =
                inverted.read_postings_from_terminfo(info, IndexRecordOption::Basic)?;
            let mut doc = postings.doc();
            while doc != TERMINATED {
                bits.words[doc as usize / 64] |= 1 << (doc % 64);
                doc = postings.advance();
            }
        }
        bits.count();
        Ok(bits)
    }

    fn count(&mut self) {
        self.len = self.words.iter().map(|w| w.count_ones()).sum();
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    fn bytes(&self) -> usize {
        self.words.len() * 8
    }

    /// The first document at or after `from`, or [`TERMINATED`].
    pub fn next_from(&self, from: DocId) -> DocId {
        first_set(from, self.max_doc, |at| self.words[at])
    }
}

/// The first set bit at or after `from` of `max_doc` bits, read 64 at a
/// time by `word_at` (the index of a word), or [`TERMINATED`].
#[inline]
fn first_set(from: DocId, max_doc: DocId, word_at: impl Fn(usize) -> u64) -> DocId {
    if from >= max_doc {
        return TERMINATED;
    }
    let words = (max_doc as usize).div_ceil(64);
    let mut at = from as usize / 64;
    let mut word = word_at(at) & (u64::MAX << (from % 64));
    loop {
        if word != 0 {
            return (at * 64) as DocId + word.trailing_zeros();
        }
        at += 1;
        if at == words {
            return TERMINATED;
        }
        word = word_at(at);
    }
}

/// The bitsets of dense term sets, per segment, at most [`MAX_HELD_BYTES`]
/// of them and their keys: a key holds its term set, which a caller names
/// (up to 256 values of 256 bytes in one filter), and may outweigh its
/// bitset on a small segment.
pub(crate) struct BitsCache {
    held: Mutex<Held>,
    max_bytes: usize,
}

type Key = (SegmentId, Box<[Term]>);

#[derive(Default)]
struct Held {
    /// Each bitset with what it costs the cache ([`cost`]).
    sets: HashMap<Key, (Arc<Bits>, usize)>,
    /// Keys in the order they were held, oldest first.
    order: VecDeque<Key>,
    bytes: usize,
}

impl Default for BitsCache {
    fn default() -> Self {
        Self::holding(MAX_HELD_BYTES)
    }
}

impl BitsCache {
    /// A cache of at most `max_bytes` of bitsets.
    pub fn holding(max_bytes: usize) -> Self {
        Self {
            held: Mutex::default(),
            max_bytes,
        }
    }

    /// The documents of `reader`'s segment holding any of `terms`: held
    /// when they are dense there (built from the postings on first use),
    /// read from the postings otherwise.
    pub fn any(&self, reader: &SegmentReader, terms: &[Term]) -> tantivy::Result<Arc<Bits>> {
        let key: Key = (reader.segment_id(), terms.into());
        if let Some((bits, _)) = self.lock().sets.get(&key) {
            return Ok(bits.clone());
        }
        let mut found = Vec::with_capacity(terms.len());
        let mut doc_freq = 0u32;
        for term in terms {
            let inverted = reader.inverted_index(term.field())?;
            if let Some(info) = inverted.get_term_info(term)? {
                doc_freq = doc_freq.saturating_add(info.doc_freq);
                found.push((inverted, info));
            }
        }
        let bits = Arc::new(Bits::of_postings(reader, &found)?);
        if doc_freq.saturating_mul(DENSE) >= reader.max_doc() {
            self.hold(key, bits.clone());
        }
        Ok(bits)
    }

    /// Holds `bits` under `key`, dropping the oldest held until they fit;
    /// a key another search has held meanwhile stays as it is.
    fn hold(&self, key: Key, bits: Arc<Bits>) {
        let mut held = self.lock();
        let Held { sets, order, bytes } = &mut *held;
        if sets.contains_key(&key) {
            return;
        }
        let cost = cost(&key.1, &bits);
        while *bytes + cost > self.max_bytes {
            let Some(oldest) = order.pop_front() else {
                // Larger than the whole cache: not held.
                return;
            };
            if let Some((_, dropped)) = sets.remove(&oldest) {
                *bytes -= dropped;
            }
        }
        *bytes += cost;
        order.push_back(key.clone());
        sets.insert(key, (bits, cost));
    }

    /// Forgets the bitsets of segments other than `live`.
    pub fn retain(&self, live: &HashSet<SegmentId>) {
        let mut held = self.lock();
        let Held { sets, order, bytes } = &mut *held;
        sets.retain(|(segment, _), (_, cost)| {
            let keep = live.contains(segment);
            if !keep {
                *bytes -= *cost;
            }
            keep
        });
        order.retain(|(segment, _)| live.contains(segment));
    }

    /// Bitsets held, and their bytes with their keys'.
    #[cfg(test)]
    pub fn held(&self) -> (usize, usize) {
        let held = self.lock();
        (held.sets.len(), held.bytes)
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What holding `bits` under the term set `terms` costs the cache: the
/// bitset, and its key twice (in the map and in the order of holding).
pub(crate) fn cost(terms: &[Term], bits: &Bits) -> usize {
    let key: usize = terms
        .iter()
        .map(|term| std::mem::size_of::<Term>() + term.serialized_term().len())
        .sum();
    bits.bytes() + 2 * (std::mem::size_of::<Key>() + key)
}

/// The first document at or after `from` in every one of `sets` (of one
/// segment, at least one), or [`TERMINATED`]. The sets are ANDed a word
/// at a time as they are read: a held set is shared by every search, and
/// a copy of it narrowed by the others would cost each search a bit per
/// document of the segment.
pub(crate) fn next_in_all(sets: &[Arc<Bits>], from: DocId) -> DocId {
    let [first, rest @ ..] = sets else {
        return TERMINATED;
    };
    if rest.is_empty() {
        return first.next_from(from);
    }
    first_set(from, first.max_doc, |at| {
        rest.iter()
            .fold(first.words[at], |word, set| word & set.words[at])
    })
}

/// The documents of one segment in every one of some [`Bits`], in order;
/// a scorer that scores 0.
pub(crate) struct BitsDocSet {
    /// At least one.
    sets: Box<[Arc<Bits>]>,
    doc: DocId,
}

impl BitsDocSet {
    pub fn new(sets: Vec<Arc<Bits>>) -> Self {
        let doc = next_in_all(&sets, 0);
        Self {
            sets: sets.into(),
            doc,
        }
    }
}

impl DocSet for BitsDocSet {
    fn advance(&mut self) -> DocId {
        if self.doc != TERMINATED {
            self.doc = next_in_all(&self.sets, self.doc + 1);
        }
        self.doc
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if self.doc < target {
            self.doc = next_in_all(&self.sets, target);
        }
        self.doc
    }

    fn doc(&self) -> DocId {
        self.doc
    }

    /// At most this many: the smallest set's count.
    fn size_hint(&self) -> u32 {
        self.sets.iter().map(|set| set.len()).min().unwrap_or(0)
    }
}

impl Scorer for BitsDocSet {
    fn score(&mut self) -> Score {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_found_across_words_and_up_to_the_last_document() {
        let mut bits = Bits::empty(130);
        for doc in [0, 63, 64, 129] {
            bits.words[doc as usize / 64] |= 1 << (doc % 64);
        }
        bits.count();
        assert_eq!(bits.len(), 4);
        let found: Vec<DocId> = [0, 1, 63, 64, 65, 129, 130, 5_000]
            .iter()
            .map(|&from| bits.next_from(from))
            .collect();
        assert_eq!(found, [0, 63, 63, 64, 129, 129, TERMINATED, TERMINATED]);
        // With another set: the documents in both, found across words.
        let bits = Arc::new(bits);
        let mut other = Bits::empty(130);
        for doc in [1, 63, 100, 129] {
            other.words[doc as usize / 64] |= 1 << (doc % 64);
        }
        other.count();
        let both = [bits.clone(), Arc::new(other)];
        let found: Vec<DocId> = [0, 63, 64, 129, 130]
            .iter()
            .map(|&from| next_in_all(&both, from))
            .collect();
        assert_eq!(found, [63, 63, 129, 129, TERMINATED]);
        let mut narrowed = BitsDocSet::new(both.to_vec());
        assert_eq!(narrowed.size_hint(), 4);
        assert_eq!(
            [narrowed.doc(), narrowed.advance(), narrowed.advance()],
            [63, 129, TERMINATED]
        );
        let mut scorer = BitsDocSet::new(vec![bits]);
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
            BitsDocSet::new(vec![Arc::new(Bits::empty(0))]).doc(),
            TERMINATED
        );
    }
}
