//! English stemming that remembers what it stemmed.
//!
//! Tantivy's `Stemmer` filter runs the Snowball algorithm on every token.
//! Holdings text repeats a small vocabulary (a few thousand words make up
//! most of any catalogue's titles and descriptions), so most tokens were
//! stemmed a moment ago: this filter keeps recent words and their stems in
//! a fixed table and runs Snowball only on a miss. Its output is the
//! `Stemmer`'s, token for token (a test holds it to that), so it changes
//! nothing on disk. The table has a fixed number of slots, each holding one
//! word, so memory is bounded whatever the vocabulary, and in steady state
//! a token costs a hash and a compare, without allocating.

use std::hash::{BuildHasher, BuildHasherDefault};

use rust_stemmers::{Algorithm, Stemmer};
use rustc_hash::FxHasher;
use tantivy::tokenizer::{Token, TokenFilter, TokenStream, Tokenizer};

/// Slots of the table (a power of two); about 1 MiB per analyzer at most.
const SLOTS: usize = 1 << 14;

/// The filter: English Snowball stemming with a memo of recent words.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MemoStemmer;

impl TokenFilter for MemoStemmer {
    type Tokenizer<T: Tokenizer> = MemoStemmerFilter<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> MemoStemmerFilter<T> {
        MemoStemmerFilter {
            inner: tokenizer,
            memo: Memo::default(),
        }
    }
}

/// Word → stem, one entry per slot; a new word takes over its slot.
struct Memo {
    /// Allocated at first use: analyzers that never run cost nothing.
    slots: Vec<Option<(String, String)>>,
    /// Number of slots, a power of two.
    size: usize,
}

impl Default for Memo {
    fn default() -> Self {
        Self::with_slots(SLOTS)
    }
}

// An analyzer is cloned per field and per indexing thread; each clone
// learns its own words rather than copying a table.
impl Clone for Memo {
    fn clone(&self) -> Self {
        Self::with_slots(self.size)
    }
}

impl Memo {
    fn with_slots(size: usize) -> Self {
        debug_assert!(size.is_power_of_two());
        Self {
            slots: Vec::new(),
            size,
        }
    }

    /// Replaces `word` with its stem.
    fn stem(&mut self, stemmer: &Stemmer, word: &mut String) {
        if self.slots.is_empty() {
            self.slots.resize_with(self.size, || None);
        }
        let hash = BuildHasherDefault::<FxHasher>::default().hash_one(word.as_str());
        let slot = &mut self.slots[hash as usize & (self.size - 1)];
        if let Some((known, stem)) = slot {
            if known == word {
                word.clear();
                word.push_str(stem);
                return;
            }
        }
        let stemmed = stemmer.stem(word);
        let (known, stem) = slot.get_or_insert_with(Default::default);
        known.clear();
        known.push_str(word);
        stem.clear();
        stem.push_str(&stemmed);
        word.clear();
        word.push_str(stem);
    }
}

#[derive(Clone)]
pub(crate) struct MemoStemmerFilter<T> {
    inner: T,
    memo: Memo,
}

impl<T: Tokenizer> Tokenizer for MemoStemmerFilter<T> {
    type TokenStream<'a> = MemoStemmerStream<'a, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        MemoStemmerStream {
            tail: self.inner.token_stream(text),
            stemmer: Stemmer::create(Algorithm::English),
            memo: &mut self.memo,
        }
    }
}

pub(crate) struct MemoStemmerStream<'a, T> {
    tail: T,
    stemmer: Stemmer,
    memo: &'a mut Memo,
}

impl<T: TokenStream> TokenStream for MemoStemmerStream<'_, T> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        let token = self.tail.token_mut();
        self.memo.stem(&self.stemmer, &mut token.text);
        true
    }

    fn token(&self) -> &Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tantivy::tokenizer::{
        Language, LowerCaser, SimpleTokenizer, Stemmer as TantivyStemmer, TextAnalyzer,
    };

    fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<Token> {
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().clone());
        }
        out
    }

    /// Words that stem to themselves, to something shorter, to something
    /// else entirely, and words sharing a stem.
    const WORDS: &[&str] = &[
        "sea",
        "ice",
        "glaciers",
        "glacier",
        "glacial",
        "running",
        "runs",
        "ran",
        "studies",
        "study",
        "studying",
        "generously",
        "generous",
        "analysis",
        "analyses",
        "analyzed",
        "data",
        "datasets",
        "measurements",
        "measure",
        "was",
        "is",
        "a",
        "the",
        "fjords",
        "océan",
        "ponies",
        "caresses",
        "sky",
        "skies",
        "dying",
        "lying",
        "news",
    ];

    proptest! {
        /// Whatever words come, in whatever order and however often, the
        /// memo gives what tantivy's stemmer gives, token for token, across
        /// texts.
        #[test]
        fn the_memo_stems_as_tantivy_does(
            texts in prop::collection::vec(
                prop::collection::vec(prop::sample::select(WORDS), 0..40), 1..6),
        ) {
            let mut reference = TextAnalyzer::builder(SimpleTokenizer::default())
                .filter(LowerCaser)
                .filter(TantivyStemmer::new(Language::English))
                .build();
            let mut memo = TextAnalyzer::builder(SimpleTokenizer::default())
                .filter(LowerCaser)
                .filter(MemoStemmer)
                .build();
            for words in &texts {
                let text = words.join(" ");
                prop_assert_eq!(tokens(&mut memo, &text), tokens(&mut reference, &text));
            }
        }

        /// With one or two slots every word evicts another: a word must
        /// never come back with the stem of the word that held its slot.
        #[test]
        fn a_crowded_memo_never_answers_for_another_word(
            words in prop::collection::vec(prop::sample::select(WORDS), 1..200),
            size in prop::sample::select(vec![1usize, 2, 4]),
        ) {
            let stemmer = Stemmer::create(Algorithm::English);
            let mut memo = Memo::with_slots(size);
            for word in words {
                let mut memoized = word.to_owned();
                memo.stem(&stemmer, &mut memoized);
                prop_assert_eq!(memoized, stemmer.stem(word).into_owned());
            }
        }
    }
}
