//! A range of a fast column's values (publication year, temporal coverage,
//! the latitude prefilter of a box) as a clause that tells a conjunction
//! how many documents it holds.
//!
//! A conjunction leads with its smallest clause and seeks the others to
//! each of its documents, smallest first, so a clause that rules out most
//! documents is best asked early. tantivy reads a range from the column
//! and says that its scorer holds every document of the segment; a range
//! was therefore always sought last, after every word had been sought to
//! the leader's document, although a range of a few years holds a
//! twentieth of the records, fewer than any common word. Here the scorer
//! says what a sample of the column holds, and the conjunction
//! orders it, or leads with it, by that.

use std::fmt;
use std::ops::{Bound, RangeBounds};

use tantivy::columnar::{Column, HasAssociatedColumnType};
use tantivy::query::{EmptyScorer, EnableScoring, Explanation, Query, RangeQuery, Scorer, Weight};
use tantivy::schema::Field;
use tantivy::{DocId, DocSet, Score, SegmentReader, Term};

/// Documents of a segment whose values are read to guess what share the
/// range holds: some microseconds, and a guess within a few percent of
/// the segment, which is all an order of clauses needs.
const SAMPLES: u32 = 256;

/// The values a range holds, typed as its column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Values {
    U64(Bound<u64>, Bound<u64>),
    I64(Bound<i64>, Bound<i64>),
    F64(Bound<f64>, Bound<f64>),
}

/// Documents with a value of `field`'s fast column in `values`; a
/// multi-valued column matches when any value is in it. Scores 0.
#[derive(Debug, Clone)]
pub(crate) struct ColumnRange {
    field: Field,
    values: Values,
}

impl ColumnRange {
    pub fn new(field: Field, values: Values) -> Self {
        Self { field, values }
    }

    /// tantivy's query for the same range, which does the reading.
    fn tantivy_query(&self) -> RangeQuery {
        let field = self.field;
        let (lower, upper) = match self.values {
            Values::U64(lower, upper) => (
                lower.map(|v| Term::from_field_u64(field, v)),
                upper.map(|v| Term::from_field_u64(field, v)),
            ),
            Values::I64(lower, upper) => (
                lower.map(|v| Term::from_field_i64(field, v)),
                upper.map(|v| Term::from_field_i64(field, v)),
            ),
            Values::F64(lower, upper) => (
                lower.map(|v| Term::from_field_f64(field, v)),
                upper.map(|v| Term::from_field_f64(field, v)),
            ),
        };
        RangeQuery::new(lower, upper)
    }
}

/// About how many of `reader`'s documents hold a value of the column named
/// `column` in `values`, from a sample of them.
fn held(reader: &SegmentReader, column: &str, values: Values) -> tantivy::Result<u32> {
    fn read<T>(reader: &SegmentReader, column: &str) -> tantivy::Result<Option<Column<T>>>
    where
        T: HasAssociatedColumnType,
        tantivy::columnar::DynamicColumn: Into<Option<Column<T>>>,
    {
        reader.fast_fields().column_opt(column)
    }
    let max_doc = reader.max_doc();
    Ok(match values {
        Values::U64(lower, upper) => share(read(reader, column)?, max_doc, &(lower, upper)),
        Values::I64(lower, upper) => share(read(reader, column)?, max_doc, &(lower, upper)),
        Values::F64(lower, upper) => share(read(reader, column)?, max_doc, &(lower, upper)),
    })
}

/// Of `max_doc` documents, about how many hold a value in `values`, from
/// about [`SAMPLES`] of them, one in each of as many equal steps: never 0
/// when a sampled one does.
fn share<T>(column: Option<Column<T>>, max_doc: DocId, values: &impl RangeBounds<T>) -> u32
where
    T: PartialOrd + Copy + Send + Sync + fmt::Debug + 'static,
{
    let Some(column) = column else {
        return 0;
    };
    let step = (max_doc / SAMPLES).max(1);
    let (mut seen, mut held) = (0u64, 0u64);
    for (i, start) in (0..max_doc).step_by(step as usize).enumerate() {
        // One document at a scattered place in each step, so that values
        // that repeat with the step's period are not all sampled alike.
        let doc = start + (i as u32).wrapping_mul(0x9E37_79B9).rotate_right(16) % step;
        if doc >= max_doc {
            continue;
        }
        seen += 1;
        held += u64::from(column.values_for_doc(doc).any(|v| values.contains(&v)));
    }
    match seen {
        0 => 0,
        seen => u32::try_from((held * u64::from(max_doc)).div_ceil(seen)).unwrap_or(max_doc),
    }
}

impl Query for ColumnRange {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(RangeWeight {
            column: scoring.schema().get_field_name(self.field).to_owned(),
            values: self.values,
            tantivy: self.tantivy_query().weight(scoring)?,
        }))
    }
}

struct RangeWeight {
    column: String,
    values: Values,
    tantivy: Box<dyn Weight>,
}

impl Weight for RangeWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let scorer = self.tantivy.scorer(reader, boost)?;
        // Where tantivy saw from the column's bounds that the range holds
        // nothing, it needs no sample.
        let held = if scorer.is::<EmptyScorer>() {
            0
        } else {
            held(reader, &self.column, self.values)?
        };
        Ok(Box::new(SizedRange { held, scorer }))
    }

    /// Whether `doc` is in the range (tantivy's error when it is not), at
    /// the score a filter has: 0.
    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        self.tantivy.explain(reader, doc)?;
        Ok(Explanation::new("range", 0.0))
    }
}

/// tantivy's scorer of a range, saying how many documents it holds.
struct SizedRange {
    held: u32,
    scorer: Box<dyn Scorer>,
}

impl DocSet for SizedRange {
    fn advance(&mut self) -> DocId {
        self.scorer.advance()
    }

    fn seek(&mut self, target: DocId) -> DocId {
        self.scorer.seek(target)
    }

    fn doc(&self) -> DocId {
        self.scorer.doc()
    }

    fn size_hint(&self) -> u32 {
        self.held
    }
}

impl Scorer for SizedRange {
    /// A filter changes the match set, never the ranking.
    fn score(&mut self) -> Score {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use tantivy::collector::{Count, TopDocs};
    use tantivy::query::{BooleanQuery, Occur, TermQuery};
    use tantivy::schema::{IndexRecordOption, NumericOptions, Schema, STRING};
    use tantivy::{doc, Index};

    /// A segment of 10,000 documents: `year` 2000 + n % 20, `part` from n
    /// % 10 to n % 10 + 1 (two values), `coverage` on every third, the
    /// word `w` on every other and the word `v` on every third.
    fn segment() -> (Index, Field, Field, Field, Field) {
        let mut builder = Schema::builder();
        let fast = NumericOptions::default().set_fast();
        let year = builder.add_u64_field("year", fast.clone());
        let part = builder.add_f64_field("part", fast.clone());
        let coverage = builder.add_i64_field("coverage", fast);
        let word = builder.add_text_field("word", STRING);
        let index = Index::create_in_ram(builder.build());
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        for n in 0..10_000u64 {
            let mut document = doc!(year => 2000 + n % 20);
            document.add_f64(part, (n % 10) as f64);
            document.add_f64(part, (n % 10) as f64 + 1.0);
            if n % 3 == 0 {
                document.add_i64(coverage, -(n as i64));
            }
            if n % 2 == 0 {
                document.add_text(word, "w");
            }
            if n % 3 == 0 {
                document.add_text(word, "v");
            }
            writer.add_document(document).unwrap();
        }
        writer.commit().unwrap();
        (index, year, part, coverage, word)
    }

    fn held(index: &Index, range: &ColumnRange) -> (u32, usize) {
        let searcher = index.reader().unwrap().searcher();
        let reader = searcher.segment_reader(0);
        let weight = range
            .weight(EnableScoring::disabled_from_searcher(&searcher))
            .unwrap();
        let size = weight.scorer(reader, 1.0).unwrap().size_hint();
        (size, searcher.search(range, &Count).unwrap())
    }

    /// The scorer's size is within a few percent of what the range holds,
    /// for each kind of column, and it matches what tantivy's range does.
    #[test]
    fn a_range_says_about_how_many_documents_it_holds() {
        let (index, year, part, coverage, _) = segment();
        let cases = [
            // One year in twenty: 500.
            (
                ColumnRange::new(
                    year,
                    Values::U64(Bound::Included(2003), Bound::Included(2003)),
                ),
                500,
            ),
            (
                ColumnRange::new(year, Values::U64(Bound::Included(2010), Bound::Unbounded)),
                5_000,
            ),
            (
                ColumnRange::new(year, Values::U64(Bound::Excluded(2025), Bound::Unbounded)),
                0,
            ),
            // Outside the column's values: tantivy's empty scorer.
            (
                ColumnRange::new(
                    year,
                    Values::U64(Bound::Included(1800), Bound::Included(1900)),
                ),
                0,
            ),
            // Either of two values of a document: parts 3..4 and 4..5.
            (
                ColumnRange::new(
                    part,
                    Values::F64(Bound::Included(4.0), Bound::Included(4.0)),
                ),
                2_000,
            ),
            // Only the documents that have the column at all.
            (
                ColumnRange::new(coverage, Values::I64(Bound::Unbounded, Bound::Included(0))),
                3_334,
            ),
        ];
        for (range, holds) in cases {
            let (size, count) = held(&index, &range);
            assert_eq!(count, holds, "{range:?}");
            let off = (i64::from(size) - holds as i64).abs();
            assert!(off <= 300, "{range:?}: said {size}, holds {holds}");
        }
    }

    /// Moves of a word's postings a search makes.
    #[derive(Clone)]
    struct Counted {
        word: TermQuery,
        moves: Arc<AtomicU32>,
    }

    impl Query for Counted {
        fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
            Ok(Box::new(CountedWeight {
                word: self.word.weight(scoring)?,
                moves: self.moves.clone(),
            }))
        }
    }

    impl fmt::Debug for Counted {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("Counted")
        }
    }

    struct CountedWeight {
        word: Box<dyn Weight>,
        moves: Arc<AtomicU32>,
    }

    impl Weight for CountedWeight {
        fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
            Ok(Box::new(CountedScorer {
                word: self.word.scorer(reader, boost)?,
                moves: self.moves.clone(),
            }))
        }

        fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
            self.word.explain(reader, doc)
        }
    }

    struct CountedScorer {
        word: Box<dyn Scorer>,
        moves: Arc<AtomicU32>,
    }

    impl DocSet for CountedScorer {
        fn advance(&mut self) -> DocId {
            self.moves.fetch_add(1, Ordering::Relaxed);
            self.word.advance()
        }

        fn seek(&mut self, target: DocId) -> DocId {
            self.moves.fetch_add(1, Ordering::Relaxed);
            self.word.seek(target)
        }

        fn doc(&self) -> DocId {
            self.word.doc()
        }

        fn size_hint(&self) -> u32 {
            self.word.size_hint()
        }
    }

    impl Scorer for CountedScorer {
        fn score(&mut self) -> Score {
            self.word.score()
        }
    }

    /// In a conjunction with two words, on a half and a third of the
    /// documents, a range of a twentieth of them leads: the words move
    /// about as often as the range holds documents. With tantivy's range,
    /// which says it holds every document, the words first agree on each
    /// of the sixth of the documents they share, and only then is the
    /// range asked.
    #[test]
    fn a_narrow_range_leads_a_conjunction_of_common_words() {
        let (index, year, _, _, word_field) = segment();
        let searcher = index.reader().unwrap().searcher();
        let range = ColumnRange::new(
            year,
            Values::U64(Bound::Included(2006), Bound::Included(2006)),
        );
        let moves = |filter: Box<dyn Query>| {
            let moves = Arc::new(AtomicU32::new(0));
            let counted = |text: &str| -> Box<dyn Query> {
                Box::new(Counted {
                    word: TermQuery::new(
                        Term::from_field_text(word_field, text),
                        IndexRecordOption::Basic,
                    ),
                    moves: moves.clone(),
                })
            };
            let conjunction = BooleanQuery::new(vec![
                (Occur::Must, counted("w")),
                (Occur::Must, counted("v")),
                (Occur::Must, filter),
            ]);
            // Year 2006 (n % 20 == 6, so n is even) and n % 3 == 0: n % 60
            // == 6, 167 documents.
            assert_eq!(searcher.search(&conjunction, &Count).unwrap(), 167);
            moves.load(Ordering::Relaxed)
        };
        let led = moves(Box::new(range.clone()));
        let last = moves(Box::new(range.tantivy_query()));
        assert!(
            led * 3 < last,
            "the range led ({led} moves of the words), not last ({last})"
        );
    }

    /// A range that holds fewer documents than a word says so (a
    /// conjunction, which orders its clauses by what they say, then leads
    /// with it), and the conjunction matches what tantivy's range does.
    #[test]
    fn a_narrow_range_says_it_is_smaller_than_a_common_word() {
        let (index, year, _, _, word_field) = segment();
        let searcher = index.reader().unwrap().searcher();
        let range = ColumnRange::new(
            year,
            Values::U64(Bound::Included(2004), Bound::Included(2005)),
        );
        let word = TermQuery::new(
            Term::from_field_text(word_field, "w"),
            IndexRecordOption::Basic,
        );
        let conjunction = BooleanQuery::new(vec![
            (Occur::Must, Box::new(word.clone()) as Box<dyn Query>),
            (Occur::Must, Box::new(range.clone())),
        ]);
        let tantivy = BooleanQuery::new(vec![
            (Occur::Must, Box::new(word) as Box<dyn Query>),
            (Occur::Must, Box::new(range.tantivy_query())),
        ]);
        // Years 2004 (even n) and 2005 (odd n): the even half of 1,000.
        assert_eq!(searcher.search(&conjunction, &Count).unwrap(), 500);
        assert_eq!(searcher.search(&tantivy, &Count).unwrap(), 500);
        let weight = range
            .weight(EnableScoring::disabled_from_searcher(&searcher))
            .unwrap();
        let size = weight
            .scorer(searcher.segment_reader(0), 1.0)
            .unwrap()
            .size_hint();
        assert!(
            size < 5_000,
            "the range ({size}) is smaller than the word (5,000)"
        );
        // A filter: it adds nothing to the word's score.
        let top = searcher
            .search(&conjunction, &TopDocs::with_limit(1))
            .unwrap();
        let (score, address) = top[0];
        let word = TermQuery::new(
            Term::from_field_text(word_field, "w"),
            IndexRecordOption::Basic,
        )
        .weight(EnableScoring::enabled_from_searcher(&searcher))
        .unwrap();
        let alone = word.explain(searcher.segment_reader(0), address.doc_id);
        assert_eq!(alone.unwrap().value(), score);
        let explained = weight.explain(searcher.segment_reader(0), address.doc_id);
        assert_eq!(explained.unwrap().value(), 0.0);
    }
}
