//! One pass over the match set that yields everything a page needs: the
//! exact spatial check, the total, facet counts, and the top hits after the
//! cursor. It reads fast columns only.
//!
//! Order: a sort value mapped to an order-preserving `u64` ("primary"),
//! descending, then the record key ascending. Within a segment the key is
//! compared by term ordinal of the key column (ordinals follow byte order),
//! so a cursor key is located once per segment and no string is read per
//! document. Opening a column and reading the terms of its dictionary cost
//! more than a small search, so each segment's columns and facet value
//! names are opened once and kept in [`SegmentColumns`] (segments never
//! change), and keys of top hits are read only where equal sort values from
//! different segments must be ordered.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::io;
use std::sync::{Arc, Mutex};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::index::SegmentId;
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader, TantivyError};

use super::pieces::Bar;
use super::schema::column;
use super::spatial::Rect;
use crate::query::Sort;

/// The string facets, by index field name (the facet names of the API).
const STR_FACETS: [&str; 5] = ["discipline", "origin", "access", "license", "format"];
const YEAR_FACET: &str = "year";

/// A relevance score as an order-preserving `u64`.
pub(crate) fn score_key(score: Score) -> u64 {
    let bits = score.to_bits();
    u64::from(if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    })
}

/// An `i64` as an order-preserving `u64`.
fn i64_key(value: i64) -> u64 {
    (value as u64) ^ (1 << 63)
}

/// The columns a search reads, of every live segment, opened once and
/// shared by every search: opening a column parses its header and its
/// dictionary's index, which for a search of a few rare words cost more
/// than the scan itself (segments never change).
#[derive(Default)]
pub(crate) struct SegmentColumns {
    held: Mutex<HashMap<SegmentId, Arc<Columns>>>,
}

/// One segment's columns.
struct Columns {
    keys: StrColumn,
    updated: Option<Column<i64>>,
    size: Option<Column<u64>>,
    /// West, south, east, north; none when no record of the segment has a
    /// box.
    boxes: Option<[Column<f64>; 4]>,
    /// Each of [`STR_FACETS`], with the value of each term ordinal.
    facets: Vec<(Option<StrColumn>, Arc<[String]>)>,
    years: Option<Column<u64>>,
}

impl SegmentColumns {
    /// The columns of `reader`'s segment.
    fn of(&self, reader: &SegmentReader) -> tantivy::Result<Arc<Columns>> {
        let held = || self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(columns) = held().get(&reader.segment_id()) {
            return Ok(columns.clone());
        }
        let columns = Arc::new(Columns::open(reader)?);
        held().insert(reader.segment_id(), columns.clone());
        Ok(columns)
    }

    /// Forgets segments other than `live` once more than `live` are held.
    pub fn retain(&self, live: &HashSet<SegmentId>) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.len() > live.len() {
            held.retain(|segment, _| live.contains(segment));
        }
    }
}

impl Columns {
    fn open(reader: &SegmentReader) -> tantivy::Result<Self> {
        let fast = reader.fast_fields();
        let keys = fast.str(column::KEY)?.ok_or_else(|| {
            TantivyError::SchemaError("the key column is missing from a segment".into())
        })?;
        let [w, s, e, n] = [
            column::BOX_WEST,
            column::BOX_SOUTH,
            column::BOX_EAST,
            column::BOX_NORTH,
        ]
        .map(|name| fast.column_opt::<f64>(name));
        let boxes = match (w?, s?, e?, n?) {
            (Some(w), Some(s), Some(e), Some(n)) => Some([w, s, e, n]),
            _ => None,
        };
        let facets = STR_FACETS
            .iter()
            .map(|name| {
                let column = fast.str(name)?;
                let names = match &column {
                    Some(column) => value_names(column)?,
                    None => Arc::from(Vec::new()),
                };
                Ok((column, names))
            })
            .collect::<tantivy::Result<_>>()?;
        Ok(Self {
            keys,
            updated: fast.column_opt(column::UPDATED)?,
            size: fast.column_opt(column::SIZE)?,
            boxes,
            facets,
            years: fast.column_opt(column::YEAR)?,
        })
    }
}

/// The value of each term ordinal of a facet column.
fn value_names(column: &StrColumn) -> tantivy::Result<Arc<[String]>> {
    let mut names = Vec::with_capacity(column.num_terms());
    let mut stream = column.dictionary().stream()?;
    while stream.advance() {
        names.push(String::from_utf8_lossy(stream.key()).into_owned());
    }
    if names.len() != column.num_terms() {
        return Err(TantivyError::from(io::Error::other(
            "a facet dictionary is shorter than its term count",
        )));
    }
    Ok(names.into())
}

/// Everything the search asks of one pass.
#[derive(Clone)]
pub(crate) struct PageCollector {
    pub sort: Sort,
    /// Whether scores differ between hits (false when the query has no
    /// text: every score would be equal, and tantivy skips scoring).
    pub scored: bool,
    pub limit: usize,
    /// (primary, key) of the last hit of the previous page.
    pub after: Option<(u64, String)>,
    pub facets: bool,
    /// Parts of the query box; `None` without a spatial filter.
    pub spatial: Option<Vec<Rect>>,
    pub columns: Arc<SegmentColumns>,
    /// How many documents each one counted stands for, by segment ordinal,
    /// when counting a sample ([`super::pieces::Sample::weight`]); every
    /// one stands for itself without.
    pub weights: Option<Arc<[f64]>>,
}

impl PageCollector {
    /// Whether hits are ordered by score.
    pub fn ranked(&self) -> bool {
        self.scored && self.sort == Sort::Relevance
    }
}

/// A top hit, resolved.
#[derive(Debug, Clone)]
pub(crate) struct TopHit {
    pub primary: u64,
    pub address: DocAddress,
    pub score: Score,
}

/// The result of one pass.
#[derive(Debug, Default)]
pub(crate) struct Page {
    /// Every visible match.
    pub total: u64,
    /// Matches after the cursor (all matches without one).
    pub remaining: u64,
    /// At most `limit` hits after the cursor, in order.
    pub top: Vec<TopHit>,
    /// Facet name → value → count, over every visible match.
    pub facets: BTreeMap<&'static str, BTreeMap<String, u64>>,
}

/// Position of the cursor key in one segment's key dictionary.
#[derive(Debug, Clone, Copy)]
struct KeyPosition {
    /// Ordinal of the key if present, else of the first greater key.
    ord: u64,
    exact: bool,
}

impl KeyPosition {
    /// Whether the key with ordinal `ord` sorts after the cursor key.
    fn is_before(&self, ord: u64) -> bool {
        if self.exact {
            ord > self.ord
        } else {
            ord >= self.ord
        }
    }
}

enum SortColumn {
    Score,
    I64(Option<Column<i64>>),
    U64(Option<Column<u64>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    primary: u64,
    key_ord: u64,
    doc: DocId,
    score_bits: u32,
}

/// Greater is worse, so a max-heap's top is the hit to drop first.
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .primary
            .cmp(&self.primary)
            .then(self.key_ord.cmp(&other.key_ord))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Documents whose facets are counted together.
const FACET_BLOCK: usize = 512;

struct StrFacet {
    name: &'static str,
    column: Option<StrColumn>,
    /// Value of each term ordinal of `column`.
    names: Arc<[String]>,
    /// Count per term ordinal of the segment.
    counts: Vec<u64>,
}

/// Publication years counted per segment: densely over the segment's
/// range of years when it is small, else in a map.
struct YearCounts {
    column: Column<u64>,
    first: u64,
    dense: Vec<u64>,
    sparse: HashMap<u64, u64>,
}

impl YearCounts {
    const MAX_DENSE: u64 = 4096;

    fn new(column: Column<u64>) -> Self {
        let (first, last) = (column.min_value(), column.max_value());
        let span = last.saturating_sub(first).saturating_add(1);
        let dense = if span <= Self::MAX_DENSE {
            vec![0; span as usize]
        } else {
            Vec::new()
        };
        Self {
            column,
            first,
            dense,
            sparse: HashMap::new(),
        }
    }

    fn add(&mut self, year: u64) {
        match self.dense.get_mut(year.wrapping_sub(self.first) as usize) {
            Some(count) => *count += 1,
            None => *self.sparse.entry(year).or_default() += 1,
        }
    }

    fn into_counts(mut self) -> HashMap<u64, u64> {
        for (offset, count) in self.dense.iter().enumerate() {
            if *count > 0 {
                *self.sparse.entry(self.first + offset as u64).or_default() += count;
            }
        }
        self.sparse
    }
}

/// Buffers reused between blocks.
#[derive(Default)]
struct Scratch {
    docs: Vec<DocId>,
    rows: Vec<u32>,
    values: Vec<u64>,
}

impl Scratch {
    /// Every value of `column` for `docs`, decoded in bulk.
    fn values_of(&mut self, column: &Column<u64>, docs: &[DocId]) -> &[u64] {
        self.docs.clear();
        self.rows.clear();
        column.row_ids_for_docs(docs, &mut self.docs, &mut self.rows);
        self.values.clear();
        self.values.resize(self.rows.len(), 0);
        column.values.get_vals(&self.rows, &mut self.values);
        &self.values
    }
}

pub(crate) struct PageSegment {
    segment: SegmentOrdinal,
    keys: StrColumn,
    sort: SortColumn,
    after: Option<(u64, KeyPosition)>,
    spatial: Option<SpatialCheck>,
    str_facets: Vec<StrFacet>,
    years: Option<YearCounts>,
    /// Matching documents whose facets are not counted yet: counting a
    /// block at a time lets the columns decode values in bulk.
    pending: Vec<DocId>,
    scratch: Scratch,
    limit: usize,
    total: u64,
    remaining: u64,
    top: BinaryHeap<Entry>,
}

/// The query box's parts and this segment's box columns (west, south,
/// east, north); no columns when no record of the segment has a box.
struct SpatialCheck {
    parts: Vec<Rect>,
    columns: Option<[Column<f64>; 4]>,
}

/// What a segment hands to the merge: counts, and the columns needed to
/// turn its ordinals into strings.
pub(crate) struct SegmentPage {
    segment: SegmentOrdinal,
    keys: StrColumn,
    total: u64,
    remaining: u64,
    top: Vec<Entry>,
    str_facets: Vec<StrFacet>,
    year_counts: HashMap<u64, u64>,
}

impl Collector for PageCollector {
    type Fruit = Page;
    type Child = PageSegment;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<PageSegment> {
        let columns = self.columns.of(reader)?;
        let sort = match self.sort {
            Sort::Relevance => SortColumn::Score,
            Sort::Updated => SortColumn::I64(columns.updated.clone()),
            Sort::Size => SortColumn::U64(columns.size.clone()),
        };
        let after = match &self.after {
            None => None,
            Some((primary, key)) => Some((*primary, locate(&columns.keys, key)?)),
        };
        let spatial = self.spatial.as_ref().map(|parts| SpatialCheck {
            parts: parts.clone(),
            columns: columns.boxes.clone(),
        });
        let (str_facets, years) = if self.facets {
            let str_facets = STR_FACETS
                .iter()
                .zip(&columns.facets)
                .map(|(name, (column, names))| StrFacet {
                    name,
                    column: column.clone(),
                    counts: vec![0; names.len()],
                    names: names.clone(),
                })
                .collect();
            (str_facets, columns.years.clone().map(YearCounts::new))
        } else {
            (Vec::new(), None)
        };
        Ok(PageSegment {
            segment,
            keys: columns.keys.clone(),
            sort,
            after,
            spatial,
            str_facets,
            years,
            pending: Vec::with_capacity(if self.facets { FACET_BLOCK } else { 0 }),
            scratch: Scratch::default(),
            limit: self.limit,
            total: 0,
            remaining: 0,
            top: BinaryHeap::with_capacity(self.limit + 1),
        })
    }

    fn requires_scoring(&self) -> bool {
        self.ranked()
    }

    fn merge_fruits(&self, segments: Vec<SegmentPage>) -> tantivy::Result<Page> {
        let mut page = Page::default();
        let mut candidates = Vec::new();
        // Summed as floats: whole counts stay exact (far below 2^53), and
        // a sample's weighted ones are rounded once, at the end.
        let mut total = 0.0;
        let mut facets: BTreeMap<&'static str, BTreeMap<String, f64>> = BTreeMap::new();
        let mut years: BTreeMap<u64, f64> = BTreeMap::new();
        for (at, segment) in segments.iter().enumerate() {
            let weight = self
                .weights
                .as_ref()
                .and_then(|weights| weights.get(segment.segment as usize))
                .copied()
                .unwrap_or(1.0);
            total += segment.total as f64 * weight;
            page.remaining += segment.remaining;
            candidates.extend(segment.top.iter().map(|entry| Candidate {
                at,
                entry: *entry,
                key: None,
            }));
            for facet in &segment.str_facets {
                let values = facets.entry(facet.name).or_default();
                for (name, &count) in facet.names.iter().zip(&facet.counts) {
                    if count > 0 {
                        *values.entry(name.clone()).or_default() += count as f64 * weight;
                    }
                }
            }
            for (year, count) in &segment.year_counts {
                *years.entry(*year).or_default() += *count as f64 * weight;
            }
        }
        let whole = |count: f64| count.round() as u64;
        page.total = whole(total);
        page.facets = facets
            .into_iter()
            .map(|(name, values)| {
                (
                    name,
                    values.into_iter().map(|(v, c)| (v, whole(c))).collect(),
                )
            })
            .collect();
        if self.facets {
            page.facets.insert(
                YEAR_FACET,
                years
                    .into_iter()
                    .map(|(y, c)| (y.to_string(), whole(c)))
                    .collect(),
            );
        }
        page.top = top_hits(&segments, candidates, self.limit)?;
        Ok(page)
    }
}

/// A segment's top hit competing for the page.
struct Candidate {
    /// Index of its segment in the merge.
    at: usize,
    entry: Entry,
    /// The record key, read only when needed to order equal sort values
    /// from different segments.
    key: Option<String>,
}

impl Candidate {
    /// Page order: primary descending, then key ascending. Keys of one
    /// segment compare by ordinal; keys of different segments must have
    /// been read.
    fn order(&self, other: &Self) -> Ordering {
        other
            .entry
            .primary
            .cmp(&self.entry.primary)
            .then_with(|| match (&self.key, &other.key) {
                (Some(a), Some(b)) => a.cmp(b),
                _ => self.entry.key_ord.cmp(&other.entry.key_ord),
            })
    }
}

/// The best `limit` of every segment's top hits, in page order.
fn top_hits(
    segments: &[SegmentPage],
    mut candidates: Vec<Candidate>,
    limit: usize,
) -> tantivy::Result<Vec<TopHit>> {
    candidates.sort_by_key(|c| std::cmp::Reverse(c.entry.primary));
    if candidates.len() > limit {
        // Keep the page and whatever ties with its last sort value.
        let boundary = limit
            .checked_sub(1)
            .map(|last| candidates[last].entry.primary);
        let keep = candidates
            .iter()
            .enumerate()
            .take_while(|(i, c)| *i < limit || Some(c.entry.primary) == boundary)
            .count();
        candidates.truncate(keep);
    }
    // Runs of equal sort values spanning segments are ordered by key.
    let mut start = 0;
    while start < candidates.len() {
        let primary = candidates[start].entry.primary;
        let end = start
            + candidates[start..]
                .iter()
                .take_while(|c| c.entry.primary == primary)
                .count();
        let run = &mut candidates[start..end];
        if run.iter().any(|c| c.at != run[0].at) {
            let mut text = String::new();
            for candidate in run.iter_mut() {
                resolve(
                    &segments[candidate.at].keys,
                    candidate.entry.key_ord,
                    &mut text,
                )?;
                candidate.key = Some(text.clone());
            }
        }
        start = end;
    }
    candidates.sort_by(Candidate::order);
    candidates.truncate(limit);
    Ok(candidates
        .into_iter()
        .map(|c| TopHit {
            primary: c.entry.primary,
            address: DocAddress::new(segments[c.at].segment, c.entry.doc),
            score: f32::from_bits(c.entry.score_bits),
        })
        .collect())
}

impl PageSegment {
    /// Counts the facet values of the pending documents.
    fn count_facets(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        for facet in &mut self.str_facets {
            if let Some(column) = &facet.column {
                for &ord in self.scratch.values_of(column.ords(), &self.pending) {
                    if let Some(count) = facet.counts.get_mut(ord as usize) {
                        *count += 1;
                    }
                }
            }
        }
        if let Some(years) = &mut self.years {
            for &year in self.scratch.values_of(&years.column, &self.pending) {
                years.add(year);
            }
        }
        self.pending.clear();
    }

    /// The exact spatial check: some part of the record's boxes meets some
    /// part of the query box.
    fn in_box(&self, doc: DocId) -> bool {
        let Some(SpatialCheck { parts, columns }) = &self.spatial else {
            return true;
        };
        let Some([w, s, e, n]) = columns else {
            return false;
        };
        w.values_for_doc(doc)
            .zip(s.values_for_doc(doc))
            .zip(e.values_for_doc(doc))
            .zip(n.values_for_doc(doc))
            .any(|(((west, south), east), north)| {
                let part = Rect {
                    west,
                    south,
                    east,
                    north,
                };
                parts.iter().any(|query| query.intersects(&part))
            })
    }
}

impl SegmentCollector for PageSegment {
    type Fruit = SegmentPage;

    fn collect(&mut self, doc: DocId, score: Score) {
        if !self.in_box(doc) {
            return;
        }
        self.total += 1;
        if !self.str_facets.is_empty() {
            self.pending.push(doc);
            if self.pending.len() == FACET_BLOCK {
                self.count_facets();
            }
        }
        let primary = match &self.sort {
            SortColumn::Score => score_key(score),
            SortColumn::I64(column) => i64_key(
                column
                    .as_ref()
                    .and_then(|c| c.first(doc))
                    .unwrap_or(i64::MIN),
            ),
            SortColumn::U64(column) => column.as_ref().and_then(|c| c.first(doc)).unwrap_or(0),
        };
        // The key is read only when the primary value ties.
        let mut key_ord = None;
        let keys = &self.keys;
        let mut key = || *key_ord.get_or_insert_with(|| keys.ords().first(doc).unwrap_or(u64::MAX));
        if let Some((after_primary, position)) = &self.after {
            let after = primary < *after_primary
                || (primary == *after_primary && position.is_before(key()));
            if !after {
                return;
            }
        }
        self.remaining += 1;
        if self.limit == 0 {
            return;
        }
        if self.top.len() == self.limit
            && self.top.peek().is_some_and(|worst| primary < worst.primary)
        {
            return;
        }
        let key_ord = key();
        let entry = Entry {
            primary,
            key_ord,
            doc,
            score_bits: score.to_bits(),
        };
        if self.top.len() < self.limit {
            self.top.push(entry);
        } else if self.top.peek().is_some_and(|worst| entry < *worst) {
            self.top.pop();
            self.top.push(entry);
        }
    }

    fn harvest(mut self) -> SegmentPage {
        self.count_facets();
        SegmentPage {
            segment: self.segment,
            keys: self.keys,
            total: self.total,
            remaining: self.remaining,
            top: self.top.into_vec(),
            str_facets: self.str_facets,
            year_counts: self.years.map(YearCounts::into_counts).unwrap_or_default(),
        }
    }
}

impl Bar for PageSegment {
    /// The page's worst hit's score, once the page is full and ordered by
    /// score: a document scoring less cannot enter it (one scoring the same
    /// may, by its key).
    fn bar(&self) -> Option<Score> {
        if !matches!(self.sort, SortColumn::Score) || self.limit == 0 || self.top.len() < self.limit
        {
            return None;
        }
        self.top
            .peek()
            .map(|worst| f32::from_bits(worst.score_bits))
    }
}

/// Where `key` falls in the segment's key dictionary.
fn locate(keys: &StrColumn, key: &str) -> tantivy::Result<KeyPosition> {
    let dictionary = keys.dictionary();
    if let Some(ord) = dictionary.term_ord(key.as_bytes())? {
        return Ok(KeyPosition { ord, exact: true });
    }
    let mut stream = dictionary.range().ge(key.as_bytes()).into_stream()?;
    let ord = if stream.advance() {
        stream.term_ord()
    } else {
        dictionary.num_terms() as u64
    };
    Ok(KeyPosition { ord, exact: false })
}

fn resolve(column: &StrColumn, ord: u64, into: &mut String) -> tantivy::Result<()> {
    into.clear();
    if column.ord_to_str(ord, into)? {
        Ok(())
    } else {
        Err(TantivyError::from(io::Error::other(
            "a term ordinal is missing from its dictionary",
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sort_keys_preserve_order(a in any::<f32>(), b in any::<f32>(), x in any::<i64>(), y in any::<i64>()) {
            prop_assume!(!a.is_nan() && !b.is_nan());
            if a < b { prop_assert!(score_key(a) < score_key(b)); }
            prop_assert_eq!(x.cmp(&y), i64_key(x).cmp(&i64_key(y)));
        }
    }
}
