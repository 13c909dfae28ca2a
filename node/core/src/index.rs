//! The holdings index: a tantivy index of every record this node may show,
//! its own and replicated ones (DESIGN.md §8). It is derived: the store is
//! the source of truth, and the index can be dropped and rebuilt from it.
//!
//! Writes come as batches of [`IndexOp`] together with the per-origin log
//! positions they bring the index up to. The batch and the positions are
//! committed atomically (positions in the tantivy commit payload), so after
//! a crash [`HoldingsIndex::cursors`] says exactly where to resume.
//!
//! Reads enforce visibility inside the query (hits, totals and facets see
//! the same restricted set) and paginate on point-in-time snapshots. The
//! decisions are recorded in `docs/decisions/search-index.md`.

mod any_field;
mod bits;
mod collect;
mod compile;
mod cost;
mod directory;
mod filter;
mod generation;
pub(crate) mod highlight;
mod interrupt;
mod pieces;
mod prune;
mod range;

pub use self::highlight::escape as escape_html;
mod schema;
mod snapshot;
mod spatial;
mod stem;

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use tantivy::query::EnableScoring;
use tantivy::schema::Value;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{
    Executor, Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, Searcher,
    SegmentReader, TantivyDocument, TantivyError, Term,
};

pub use self::generation::{LiveIndex, NextGeneration, Rebuild};

use self::bits::BitsCache;
use self::collect::{Page, PageCollector, SegmentColumns, TopHit};
use self::compile::Compiler;
use self::directory::IndexDirectory;
use self::highlight::Highlighter;
use self::interrupt::Deadline;
use self::pieces::{Sample, Walk};
use self::schema::{record_key, Fields, PLAIN_ANALYZER, SCHEMA_VERSION};
use self::snapshot::{Snapshots, MAX_UNREAD, SNAPSHOT_TTL};
use self::spatial::Rect;
use crate::proto::{DatasetRecord, Visibility};
use crate::query::cursor::Cursor;
use crate::query::expr::Expr;
use crate::query::{Hit, Plan, SearchError, SearchRequest, SearchResults, FACETS, FACET_TOP_N};
use crate::visibility::Viewer;

/// Indexing threads of the writer.
const WRITER_THREADS: usize = 2;
/// Memory the writer buffers before it flushes a segment (all threads).
const WRITER_HEAP_BYTES: usize = 128 << 20;
/// Threads a search spreads its documents over.
pub(crate) const SEARCH_THREADS: usize = 2;
/// Bytes of stored documents compressed together (new indexes): a hit
/// reads and decompresses its whole block. With tantivy's default of
/// 16 KiB, reading a page of hits took 6% of a search at 1M records; with
/// 4 KiB, 3%, for a store 18% larger.
const STORE_BLOCK_BYTES: usize = 4 << 10;
/// Matches beyond which a ranked search's total and facet counts are
/// estimated from a sample of the index and its top hits found by a pass
/// that steps over what cannot reach them ([`prune`]): counting every
/// match costs some 40 ns of wall time each on two threads, so at this
/// many a search takes 20 ms, and a common word among ten million records
/// matches millions.
const EXACT_MATCHES: u64 = 500_000;
/// Matches an estimate's sample is meant to hold, going by what the
/// dictionaries bound (which may be some times too many): a total off by
/// about a percent at most (one in the square root of what the sample
/// holds).
const SAMPLE_MATCHES: u64 = 32_768;
/// Documents in a window of the sample: windows this short spread the
/// sample over records of every origin and import, which lie in runs of
/// document ids.
const SAMPLE_WIDTH: tantivy::DocId = 256;
/// At most one window in this many is sampled.
const MAX_SAMPLE_EVERY: u64 = 64;
/// Postings a search must read before spreading it over threads pays.
const SPREAD_POSTINGS: u64 = 50_000;
/// Postings a search reads in well under a millisecond (a few nanoseconds
/// each in a row, about a hundred per seek): fewer than this, and it runs
/// on the thread that asked (see [`Work::Small`]).
const INLINE_POSTINGS: u64 = 20_000;

/// How a search is run, by the postings it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Done before a handoff to another thread would be: run it where it
    /// was asked, even on an async executor's thread.
    Small,
    /// On one thread, not the async executor's.
    Single,
    /// Its segments spread over the search threads.
    Spread,
}

/// A search compiled against a point-in-time view of the index, with what
/// it will cost; [`PreparedSearch::run`] answers it.
pub struct PreparedSearch {
    index: Arc<HoldingsIndex>,
    plan: Plan,
    searcher: Searcher,
    query: Box<dyn tantivy::query::Query>,
    /// Whether scores may use the corpus's statistics.
    corpus_statistics: bool,
    /// Whether the search reads what its earlier pages read: a first page,
    /// or a next page whose snapshot is held, for a caller who sees what
    /// the earlier page's caller saw. Only then does a copy ranked before
    /// the cursor say that an earlier page showed its dataset.
    same_as_earlier_pages: bool,
    /// [`Viewer::seen`] of the caller, carried by the next page's cursor.
    seen: u64,
    work: Work,
    /// The records the search matches at most, over the whole index
    /// ([`cost::matches`]); the index's records when that is not known.
    matches: u64,
    /// Whether its words may prune ([`prune`]): a search whose top hits
    /// cannot be found without scoring every match counts every match.
    prunes: bool,
}

impl PreparedSearch {
    pub fn work(&self) -> Work {
        self.work
    }

    /// Answers the search. Blocks for as long as [`Self::work`] says.
    pub fn run(self) -> Result<SearchResults, SearchError> {
        self.run_until(None)
    }

    /// [`Self::run`] that gives up when `deadline` passes
    /// ([`SearchError::Deadline`]), so that a search nobody waits for any
    /// more stops taking a thread. A [`Work::Small`] search is done sooner
    /// than a look at the clock would matter and always runs to its end.
    pub fn run_until(self, deadline: Option<Instant>) -> Result<SearchResults, SearchError> {
        let index = self.index.clone();
        index.run(self, deadline, false).map(|(results, _)| results)
    }

    /// [`Self::run_until`], with every copy the search matches of each DOI
    /// that more than one record of the index carries, by the DOI's key
    /// ([`crate::record::canonical_doi`]), for each such DOI on the page:
    /// what merging one dataset's copies across pages needs
    /// ([`crate::search::merge_copies`]).
    ///
    /// The copies are matched by the same query (the viewer's visibility,
    /// scope and filters, the spatial check, what was withdrawn from the
    /// snapshot) on the same snapshot, and ranked with the same scores and
    /// tie-break, so a copy this search would not show is never named.
    /// Whether a copy came before the page is whether an earlier page
    /// showed it when the page reads its earlier pages' snapshot; when that
    /// snapshot is gone, no hit is left out for it (a dataset may then show
    /// twice, never not at all). A DOI no other live record carries costs
    /// a read of its postings; one that others carry, a search of its
    /// postings alone (each record has one DOI, so a page's lookups read at
    /// most the index's records once), under the search's deadline, and the
    /// stored documents of at most [`MAX_DOI_COPIES`] copies; a DOI that
    /// more records matching the search carry has no entry.
    pub fn run_with_copies(
        self,
        deadline: Option<Instant>,
    ) -> Result<(SearchResults, BTreeMap<String, DoiCopies>), SearchError> {
        let index = self.index.clone();
        index.run(self, deadline, true)
    }
}

/// Most copies of one DOI a search merges ([`PreparedSearch::run_with_copies`]).
/// One dataset is held at a few origins; a DOI that more records matching
/// a search carry is one origin's records repeating it (a collection's
/// granules), which stay apart rather than have their stored documents
/// read, and all but one left out, on every page.
pub const MAX_DOI_COPIES: usize = 16;

/// The copies a search matches of one DOI.
#[derive(Debug, Clone, PartialEq)]
pub struct DoiCopies {
    /// Some copy ranks at or before the cursor the page starts after: an
    /// earlier page showed the dataset.
    pub shown_before: bool,
    /// The copies ranked after the cursor, at most [`MAX_DOI_COPIES`], in
    /// the search's order (the page's own copies among them); empty when
    /// `shown_before`.
    pub copies: Vec<Hit>,
}

/// Whether a search of an index of `total` records, `largest` of them in
/// its largest segment, reads at least [`SPREAD_POSTINGS`]: the postings of
/// the query's words counted in the largest segment and scaled to the
/// index (`None`: a query without words reads the whole index). A spread
/// search is cut into equal shares whatever the segments ([`pieces`]), so
/// the segments do not matter.
fn spread_pays(total: u64, largest: u64, postings_in_largest: Option<u64>) -> bool {
    if total < SPREAD_POSTINGS || largest == 0 {
        return false;
    }
    let work = match postings_in_largest {
        Some(postings) => postings as f64 * total as f64 / largest as f64,
        None => total as f64,
    };
    work >= SPREAD_POSTINGS as f64
}

/// One change to the index.
// Nearly every op of a batch is an upsert; boxing the record would only add
// an allocation to each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum IndexOp {
    /// Index the record, replacing any earlier version of (origin, id). A
    /// tombstone (`deleted`) removes it. Version 1 is taken to be new to
    /// the index (nothing to replace): see [`IndexOp::Replace`].
    Upsert(DatasetRecord),
    /// [`IndexOp::Upsert`] that replaces whatever the index holds of
    /// (origin, id), whatever its version: for a record that may be
    /// indexed already at the same version (a refill brings back a version
    /// the indexer may not have taken out yet).
    Replace(DatasetRecord),
    /// Remove (origin, id): withdrawn, quarantined, or no longer shown.
    Remove { origin: String, id: String },
}

/// Why the index could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The directory holds an index of another layout than this build's.
    #[error(
        "the search index at {dir} has schema version {found}, this build uses version \
         {expected}: run `meridian index rebuild`"
    )]
    SchemaVersion {
        dir: PathBuf,
        found: String,
        expected: u32,
    },
    /// `create_fresh` was pointed at a directory holding something else.
    #[error("{0} is not empty and does not hold a search index: refusing to clear it")]
    NotAnIndex(PathBuf),
    /// The index directory could not be read, created or cleared.
    #[error("search index directory {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// tantivy failed (disk, lock held by another process, corruption).
    #[error("search index failure")]
    Tantivy(#[from] TantivyError),
}

/// BM25 statistics that do not come from the corpus: every term is as rare
/// as can be and every field of a typical length, so a score is a function
/// of the record and the query alone. Used for every caller who may not see
/// every record: with the corpus's own statistics, comparing scores with
/// visible totals would estimate how many hidden records hold a word. It
/// also makes scores of different nodes comparable as they are.
struct FixedStatistics;

/// The corpus size [`FixedStatistics`] claims, and the tokens of a field.
const FIXED_DOCS: u64 = 1_000_000;
const FIXED_FIELD_TOKENS: u64 = 16;

impl tantivy::query::Bm25StatisticsProvider for FixedStatistics {
    fn total_num_tokens(&self, _field: tantivy::schema::Field) -> tantivy::Result<u64> {
        Ok(FIXED_DOCS * FIXED_FIELD_TOKENS)
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        Ok(FIXED_DOCS)
    }

    fn doc_freq(&self, _term: &Term) -> tantivy::Result<u64> {
        Ok(1)
    }
}

/// What each commit records besides the documents.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Payload {
    schema: u32,
    /// Origin → log position the index has applied up to.
    cursors: BTreeMap<String, u64>,
}

/// The holdings index. Shared by reference: searches run concurrently,
/// `apply` calls are serialised.
pub struct HoldingsIndex {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    /// Cursors of the last commit the reader loaded: what is searchable.
    cursors: RwLock<BTreeMap<String, u64>>,
    /// Cursors of the last commit, loaded by the reader or not: what the
    /// index holds on disk, where the indexer goes on from. Ahead of
    /// `cursors` while reloads fail.
    committed: RwLock<BTreeMap<String, u64>>,
    /// A commit was made that the reader has not loaded (its reload
    /// failed): [`HoldingsIndex::load_committed`] loads it.
    unloaded: std::sync::atomic::AtomicBool,
    fields: Fields,
    text: TextAnalyzer,
    plain: TextAnalyzer,
    snapshots: Snapshots,
    columns: Arc<SegmentColumns>,
    bits_cache: Arc<BitsCache>,
    /// What common terms score at most in each segment.
    peaks: Arc<any_field::Peaks>,
    /// When a search's counts are estimated (changed by tests only).
    estimates: RwLock<Estimates>,
    /// Makes every reload fail, as a disk or mapping error would.
    #[cfg(test)]
    pub(crate) fail_reload: std::sync::atomic::AtomicBool,
}

impl HoldingsIndex {
    /// Opens the index in `dir`, creating an empty one if there is none.
    /// An index of another schema version is refused with a message telling
    /// the operator to rebuild.
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        Self::open_with(dir, SNAPSHOT_TTL)
    }

    /// Creates an empty index in `dir`, discarding any index there, for a
    /// rebuild from the store. `dir` must not be open elsewhere; a
    /// directory holding anything but an index is refused.
    pub fn create_fresh(dir: &Path) -> Result<Self, IndexError> {
        let io = |source| IndexError::Io {
            path: dir.to_owned(),
            source,
        };
        if dir.exists() {
            let has_entries = fs::read_dir(dir).map_err(io)?.next().is_some();
            if has_entries && !dir.join("meta.json").exists() {
                return Err(IndexError::NotAnIndex(dir.to_owned()));
            }
            fs::remove_dir_all(dir).map_err(io)?;
        }
        Self::open(dir)
    }

    fn open_with(dir: &Path, snapshot_ttl: Duration) -> Result<Self, IndexError> {
        let io = |source| IndexError::Io {
            path: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(io)?;
        let fields = Fields::new();
        let directory = IndexDirectory::open(dir).map_err(TantivyError::from)?;
        let (mut index, payload) = if Index::exists(&directory).map_err(TantivyError::from)? {
            let index = Index::open(directory)?;
            let payload = Self::check(dir, &index, &fields)?;
            (index, payload)
        } else {
            let settings = IndexSettings {
                docstore_blocksize: STORE_BLOCK_BYTES,
                ..IndexSettings::default()
            };
            let index = Index::create(directory, fields.schema.clone(), settings)?;
            (index, None)
        };
        schema::register_analyzers(index.tokenizers());
        index.set_multithread_executor(SEARCH_THREADS)?;
        let mut writer: IndexWriter =
            index.writer_with_num_threads(WRITER_THREADS, WRITER_HEAP_BYTES)?;
        let payload = match payload {
            Some(payload) => payload,
            None => {
                // A new index: record its version before anything else.
                let payload = Payload {
                    schema: SCHEMA_VERSION,
                    cursors: BTreeMap::new(),
                };
                commit(&mut writer, &payload)?;
                payload
            }
        };
        // Reloaded after every commit by `apply`, and when a background
        // merge publishes its segment, so searches see merged segments.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()?;
        let analyzer = |name: &str| {
            index.tokenizers().get(name).ok_or_else(|| {
                TantivyError::SchemaError(format!("analyzer {name} is not registered"))
            })
        };
        let text = schema::query_text_analyzer();
        let plain = analyzer(PLAIN_ANALYZER)?;
        Ok(Self {
            reader,
            writer: Mutex::new(writer),
            committed: RwLock::new(payload.cursors.clone()),
            unloaded: Default::default(),
            cursors: RwLock::new(payload.cursors),
            fields,
            text,
            plain,
            snapshots: Snapshots::new(snapshot_ttl),
            columns: Arc::default(),
            bits_cache: Arc::default(),
            peaks: Arc::default(),
            estimates: RwLock::default(),
            #[cfg(test)]
            fail_reload: Default::default(),
        })
    }

    /// Checks that an existing index is of this build's layout and returns
    /// its last payload; `None` for an index created but never committed.
    fn check(dir: &Path, index: &Index, fields: &Fields) -> Result<Option<Payload>, IndexError> {
        let refuse = |found: String| IndexError::SchemaVersion {
            dir: dir.to_owned(),
            found,
            expected: SCHEMA_VERSION,
        };
        let metas = index.load_metas()?;
        let Some(text) = metas.payload else {
            let empty = metas.segments.is_empty();
            return if empty && index.schema() == fields.schema {
                Ok(None)
            } else {
                Err(refuse("unknown".to_owned()))
            };
        };
        let payload: Payload = serde_json::from_str(&text)
            .map_err(|_| refuse("unknown (unreadable commit data)".to_owned()))?;
        if payload.schema != SCHEMA_VERSION {
            return Err(refuse(payload.schema.to_string()));
        }
        if index.schema() != fields.schema {
            return Err(refuse(format!(
                "{} (with a different schema)",
                payload.schema
            )));
        }
        Ok(Some(payload))
    }

    /// Applies a batch and records `cursors` (merged over the committed
    /// ones: origins not named keep their position) in one commit; the
    /// change is searchable when this returns. On error nothing of the
    /// batch is committed.
    pub fn apply(
        &self,
        ops: Vec<IndexOp>,
        cursors: &BTreeMap<String, u64>,
    ) -> Result<(), IndexError> {
        let mut writer = self.writer();
        // A record deleted, or changed to an audience other than everyone
        // (it may have narrowed), must not stay readable in a snapshot.
        let withdrawn: Vec<String> = ops
            .iter()
            .filter_map(|op| match op {
                IndexOp::Upsert(record) | IndexOp::Replace(record)
                    if record.deleted
                        || (record.version > 1
                            && record.visibility != Visibility::Public as i32) =>
                {
                    Some(record_key(&record.origin, &record.id))
                }
                IndexOp::Remove { origin, id } => Some(record_key(origin, id)),
                IndexOp::Upsert(_) | IndexOp::Replace(_) => None,
            })
            .collect();
        if let Err(error) = self.stage(&writer, ops) {
            writer.rollback()?;
            return Err(error.into());
        }
        let mut merged = self.committed_cursors();
        merged.extend(cursors.iter().map(|(origin, at)| (origin.clone(), *at)));
        let payload = Payload {
            schema: SCHEMA_VERSION,
            cursors: merged,
        };
        if let Err(error) = commit(&mut writer, &payload) {
            writer.rollback()?;
            return Err(error.into());
        }
        // Durable: the next apply goes on from here even if the reload
        // below fails (from the searchable cursors it would apply the same
        // entries again, and index each new record twice).
        *self.committed.write().unwrap_or_else(|p| p.into_inner()) = payload.cursors.clone();
        self.unloaded
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Noted before the reload, which can fail: the withdrawals are
        // durable now, and a reader that did not load them must not serve
        // them.
        self.snapshots.withdraw(&withdrawn);
        // Searchers see the commit before the cursors say so: a position
        // in `cursors` is searchable (what read-your-writes waits for).
        self.reload()?;
        self.loaded(payload.cursors);
        Ok(())
    }

    /// Records that the reader loaded the last commit, whose cursors are
    /// `cursors`. Under the writer.
    fn loaded(&self, cursors: BTreeMap<String, u64>) {
        *self.cursors.write().unwrap_or_else(|p| p.into_inner()) = cursors;
        self.unloaded
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.snapshots.loaded(self.generation());
    }

    /// Loads into the reader a commit whose reload failed, if there is
    /// one: what it applied becomes searchable, and what it withdrew is
    /// settled ([`Snapshots::loaded`]). Nothing else would load it while
    /// nothing new is applied.
    pub fn load_committed(&self) -> Result<(), IndexError> {
        let _writer = self.writer();
        if !self.unloaded.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        self.reload()?;
        self.loaded(self.committed_cursors());
        Ok(())
    }

    /// Loads the last commit into the reader.
    fn reload(&self) -> Result<(), TantivyError> {
        #[cfg(test)]
        if self.fail_reload.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(TantivyError::InternalError("reload refused".to_owned()));
        }
        self.reader.reload()
    }

    fn stage(&self, writer: &IndexWriter, ops: Vec<IndexOp>) -> Result<(), TantivyError> {
        for op in ops {
            let (record, replaces) = match op {
                // Versions start at 1 and grow with every entry of a record
                // in its origin's log, so version 1 is the first: nothing
                // to replace, and no delete for every segment to look up
                // (most of a bulk load).
                IndexOp::Upsert(record) => {
                    let replaces = record.version > 1;
                    (record, replaces)
                }
                IndexOp::Replace(record) => (record, true),
                IndexOp::Remove { origin, id } => {
                    writer.delete_term(self.key_term(&origin, &id));
                    continue;
                }
            };
            if replaces {
                writer.delete_term(self.key_term(&record.origin, &record.id));
            }
            if !record.deleted {
                writer.add_document(self.fields.document(&record))?;
            }
        }
        Ok(())
    }

    fn key_term(&self, origin: &str, id: &str) -> Term {
        Term::from_field_text(self.fields.key, &record_key(origin, id))
    }

    fn writer(&self) -> MutexGuard<'_, IndexWriter> {
        // A panic while holding the lock leaves uncommitted changes at most;
        // the next apply commits or rolls back over them.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Per-origin log positions of the last commit the reader loaded:
    /// every entry below is searchable.
    pub fn cursors(&self) -> BTreeMap<String, u64> {
        self.cursors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Per-origin log positions of the last commit, whether or not the
    /// reader loaded it: what the index holds, and where to resume.
    pub fn committed_cursors(&self) -> BTreeMap<String, u64> {
        self.committed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every record in the index as (origin, id, version), in no order;
    /// a record indexed twice appears twice. For `fsck`: reads every
    /// document, so it costs a scan of the index.
    pub fn documents(&self) -> Result<Vec<(String, String, u64)>, IndexError> {
        let searcher = self.reader.searcher();
        let mut out = Vec::with_capacity(searcher.num_docs() as usize);
        for segment in searcher.segment_readers() {
            let store = segment.get_store_reader(64).map_err(TantivyError::from)?;
            for doc_id in segment.doc_ids_alive() {
                let doc: TantivyDocument = store.get(doc_id)?;
                let text = |field| {
                    doc.get_first(field)
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_owned()
                };
                let version = doc
                    .get_first(self.fields.version)
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0);
                out.push((text(self.fields.origin), text(self.fields.id), version));
            }
        }
        Ok(out)
    }

    /// Drops every held snapshot (see [`Snapshots::clear`]).
    pub fn drop_snapshots(&self) {
        self.snapshots.clear(self.generation());
    }

    /// The generation of the reader's current searcher.
    fn generation(&self) -> u64 {
        self.reader.searcher().generation().generation_id()
    }

    /// Records in the index (all visibilities).
    pub fn doc_count(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// How a search of `query` is best run: on the caller's thread when it
    /// reads fewer than [`INLINE_POSTINGS`] (handing it to another thread
    /// would cost more than the search), over the search threads only when
    /// a second thread would save at least half of [`SPREAD_POSTINGS`] (a
    /// query for a few rare words is done before a second thread would
    /// have woken up). Work is the postings the query reads ([`cost`]),
    /// counted in the largest segment and scaled to the index (records
    /// land in segments regardless of their words), or the whole index for
    /// a query whose cost is not known from its terms. With the largest
    /// segment on one thread the other saves at most the smaller of that
    /// segment and the rest, so an index that is mostly one segment is
    /// searched on one thread. Told with it: how many records the query
    /// matches at most, scaled the same way.
    ///
    /// `None` when the dictionaries alone tell that the query matches no
    /// record: a word it needs is in no segment. Tantivy would build a
    /// scorer for each word, field and segment only to find them empty.
    fn work(
        &self,
        searcher: &Searcher,
        plan: &Plan,
        query: &dyn tantivy::query::Query,
    ) -> Option<(Work, u64)> {
        let total = searcher.num_docs();
        let phrase = cost::has_phrase(&plan.query);
        // A small index is searched before a handoff would be done, and is
        // what most nodes hold: no dictionary lookups for those, unless the
        // query holds a phrase, which may read every posting of its words.
        if total <= INLINE_POSTINGS && !phrase {
            return Some((Work::Small, total));
        }
        let segments = searcher.segment_readers();
        let largest = segments.iter().max_by_key(|segment| segment.num_docs())?;
        let largest_docs = u64::from(largest.num_docs());
        // A term's documents in a segment, deleted ones included (so zero
        // is exact); the whole segment when the dictionary cannot tell.
        let doc_freq = |segment: &SegmentReader, term: &Term| {
            segment
                .inverted_index(term.field())
                .and_then(|index| Ok(index.doc_freq(term)?))
                .map_or(u64::from(segment.max_doc()), u64::from)
        };
        let postings = if cost::has_prefix(&plan.query) {
            None
        } else {
            cost::postings(query, &mut |term| doc_freq(largest, term))
        };
        // Nothing in the largest segment: most likely nothing anywhere,
        // which the other segments' dictionaries confirm.
        if postings == Some(0)
            && cost::postings(query, &mut |term| {
                segments.iter().map(|segment| doc_freq(segment, term)).sum()
            }) == Some(0)
        {
            return None;
        }
        let postings = if phrase {
            postings.map(|_| cost::every_posting(query, &mut |term| doc_freq(largest, term)))
        } else {
            postings
        };
        let scale = |count: Option<u64>| {
            count.map_or(total, |count| {
                (count as f64 * total as f64 / largest_docs.max(1) as f64) as u64
            })
        };
        let scaled = scale(postings);
        let work = if scaled <= INLINE_POSTINGS {
            Work::Small
        } else if spread_pays(total, largest_docs, postings) {
            Work::Spread
        } else {
            Work::Single
        };
        // A search matches no more records than it reads postings; only
        // one that may match enough to be estimated is bounded closer.
        let exact_matches = self.estimates().exact_matches;
        let matches = if scaled < exact_matches || postings.is_none() {
            scaled
        } else {
            scale(cost::matches(query, &mut |term| doc_freq(largest, term)))
        };
        Some((work, matches.min(total)))
    }

    fn estimates(&self) -> Estimates {
        *self.estimates.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers one page of a search as `viewer` may see it.
    pub fn search(
        self: &Arc<Self>,
        request: &SearchRequest,
        viewer: &Viewer,
    ) -> Result<SearchResults, SearchError> {
        self.prepare(request, viewer)?.run()
    }

    /// [`Self::search`] that gives up when `deadline` passes
    /// ([`PreparedSearch::run_until`]).
    pub fn search_until(
        self: &Arc<Self>,
        request: &SearchRequest,
        viewer: &Viewer,
        deadline: Instant,
    ) -> Result<SearchResults, SearchError> {
        self.prepare(request, viewer)?.run_until(Some(deadline))
    }

    /// Compiles a search and tells what it will cost
    /// ([`PreparedSearch::work`]) without running it.
    pub fn prepare(
        self: &Arc<Self>,
        request: &SearchRequest,
        viewer: &Viewer,
    ) -> Result<PreparedSearch, SearchError> {
        let plan = request.plan()?;
        // A held snapshot leaves out what was withdrawn since it was taken;
        // the reader's searcher, what it has not loaded yet.
        let held = plan
            .after
            .as_ref()
            .and_then(|cursor| cursor.snapshot)
            .and_then(|id| self.snapshots.get(id));
        // What the viewer may see, worked out once for the whole search.
        let audience = viewer.index_filter();
        let seen = crate::visibility::audience_digest(audience.as_deref());
        let same_as_earlier_pages = match &plan.after {
            None => true,
            Some(cursor) => held.is_some() && cursor.seen == seen,
        };
        let (searcher, withdrawn) = match held {
            Some(held) => held,
            None => {
                let unread = self.snapshots.unread().map_err(|_| {
                    SearchError::Unavailable(format!(
                        "the search index has failed to load more than {MAX_UNREAD} withdrawn \
                         records and would show them; searches resume once it loads them"
                    ))
                })?;
                (self.reader.searcher(), unread)
            }
        };
        let compiler = Compiler {
            fields: &self.fields,
            bits_cache: &self.bits_cache,
            peaks: &self.peaks,
            text: &self.text,
            plain: &self.plain,
        };
        let (query, prunes) = compiler.build(&plan, audience.as_deref());
        let query: Box<dyn tantivy::query::Query> = if withdrawn.is_empty() {
            query
        } else {
            let keys = withdrawn
                .iter()
                .map(|key| Term::from_field_text(self.fields.key, key));
            Box::new(tantivy::query::BooleanQuery::new(vec![
                (tantivy::query::Occur::Must, query),
                (
                    tantivy::query::Occur::MustNot,
                    Box::new(tantivy::query::TermSetQuery::new(keys)),
                ),
            ]))
        };
        let (query, (work, matches)) = match self.work(&searcher, &plan, &*query) {
            Some(work) => (query, work),
            // Answered as every search is, from no documents.
            None => (
                Box::new(tantivy::query::EmptyQuery) as Box<dyn tantivy::query::Query>,
                (Work::Small, 0),
            ),
        };
        Ok(PreparedSearch {
            index: self.clone(),
            // Callers who may not see every record get scores that use no
            // statistics of the corpus, so no score depends on a hidden
            // record; nor do scores merged with other nodes' (a live
            // search), so that the order does not depend on where a record
            // lives.
            corpus_statistics: audience.is_none() && !plan.comparable_scores,
            same_as_earlier_pages,
            seen,
            plan,
            searcher,
            query,
            work,
            matches,
            prunes,
        })
    }

    /// Runs a prepared search, until `deadline` at most; with `copies`,
    /// also the copies of the page's shared DOIs
    /// ([`PreparedSearch::run_with_copies`]).
    fn run(
        &self,
        prepared: PreparedSearch,
        deadline: Option<Instant>,
        copies: bool,
    ) -> Result<(SearchResults, BTreeMap<String, DoiCopies>), SearchError> {
        let PreparedSearch {
            plan,
            searcher,
            query,
            corpus_statistics,
            same_as_earlier_pages,
            seen,
            work,
            matches,
            prunes,
            ..
        } = prepared;
        let collector = PageCollector {
            sort: plan.sort,
            scored: plan.query != Expr::All,
            limit: plan.limit,
            after: plan
                .after
                .as_ref()
                .map(|cursor| (cursor.primary, record_key(&cursor.origin, &cursor.id))),
            facets: plan.facets,
            spatial: plan.bbox.as_ref().map(Rect::parts_of),
            columns: self.columns.clone(),
            weights: None,
        };
        let statistics: &dyn tantivy::query::Bm25StatisticsProvider = if corpus_statistics {
            &searcher
        } else {
            &FixedStatistics
        };
        let scoring = if tantivy::collector::Collector::requires_scoring(&collector) {
            EnableScoring::enabled_from_statistics_provider(statistics, &searcher)
        } else {
            EnableScoring::disabled_from_searcher(&searcher)
        };
        let deadline = deadline.map(Deadline::new);
        let (executor, threads) = match work {
            Work::Spread => (searcher.index().search_executor(), SEARCH_THREADS),
            Work::Single | Work::Small => (&Executor::SingleThread, 1),
        };
        let walk = |collector: &PageCollector, scoring, walk| {
            pieces::search(
                &searcher,
                &*query,
                collector,
                executor,
                threads,
                scoring,
                walk,
                deadline.as_ref(),
            )
        };
        let estimates = self.estimates();
        let large = matches >= estimates.exact_matches;
        let estimated = if work != Work::Small && large && prunes && collector.ranked() {
            estimate(
                estimates,
                &searcher,
                &collector,
                matches,
                |collector, sample| {
                    let scoring = EnableScoring::disabled_from_searcher(&searcher);
                    walk(collector, scoring, Walk::Sample(sample)).map(|(page, _)| page)
                },
            )?
        } else {
            None
        };
        let (page, estimated) = match estimated {
            Some(counted) => {
                // Top hits by a pass that steps over what cannot reach
                // them; the counts come from the sample.
                let top = PageCollector {
                    facets: false,
                    ..collector.clone()
                };
                let (mut page, walked) = walk(&top, scoring, Walk::Pruned)?;
                if walked.skipped {
                    // Matches after the page went uncounted.
                    page.remaining = page.remaining.max(plan.limit as u64 + 1);
                }
                page.total = counted.total;
                page.facets = counted.facets;
                (page, true)
            }
            None => {
                let page = match work {
                    Work::Spread | Work::Single => walk(&collector, scoring, Walk::Every)?.0,
                    Work::Small => searcher.search_with_executor(
                        &*query,
                        &collector,
                        &Executor::SingleThread,
                        scoring,
                    )?,
                };
                (page, false)
            }
        };
        if deadline.as_ref().is_some_and(Deadline::passed) {
            return Err(SearchError::Deadline);
        }
        // What this search, the index as it is now and the held snapshots
        // read: a page of an older snapshot keeps the current segments'.
        let live = [&searcher, &self.reader.searcher()]
            .into_iter()
            .flat_map(|searcher| searcher.segment_readers())
            .map(|segment| segment.segment_id())
            .chain(self.snapshots.segments())
            .collect::<HashSet<_>>();
        self.columns.retain(&live);
        self.bits_cache.retain(&live);
        self.peaks.retain(&live);
        let highlighter = plan
            .highlight
            .then(|| Highlighter::new(&plan.query, &self.fields, &self.text, &self.plain));
        let hits = page
            .top
            .iter()
            .map(|top| self.hit(&searcher, top, highlighter.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let copies = if copies {
            let lookup = CopyLookup {
                searcher: &searcher,
                query: &*query,
                collector: &collector,
                scoring,
                highlighter: highlighter.as_ref(),
                deadline: deadline.as_ref(),
                same_as_earlier_pages,
                last_shown: plan
                    .after
                    .as_ref()
                    .map(|c| (c.origin.as_str(), c.id.as_str())),
            };
            self.doi_copies(&lookup, &hits)?
        } else {
            BTreeMap::new()
        };
        let next_cursor = match (page.top.last(), hits.last()) {
            (Some(top), Some(hit)) if page.remaining > hits.len() as u64 => Some(
                Cursor {
                    // Taken when the search was prepared: if a record was
                    // withdrawn since, it is not kept, and the next page
                    // reads the index as it is then.
                    snapshot: self.snapshots.keep(&searcher),
                    fingerprint: plan.fingerprint,
                    sort: plan.sort,
                    primary: top.primary,
                    origin: hit.origin.clone(),
                    id: hit.id.clone(),
                    seen,
                }
                .encode(),
            ),
            _ => None,
        };
        let facets = if plan.facets {
            let mut counted = page.facets;
            FACETS
                .iter()
                .map(|name| {
                    let mut values: Vec<(String, u64)> = counted
                        .remove(name)
                        .unwrap_or_default()
                        .into_iter()
                        .collect();
                    values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                    values.truncate(FACET_TOP_N);
                    ((*name).to_owned(), values)
                })
                .collect()
        } else {
            BTreeMap::new()
        };
        let results = SearchResults {
            hits,
            total: page.total,
            estimated,
            facets,
            next_cursor,
        };
        Ok((results, copies))
    }

    /// The copies of each DOI of `hits` that other records of the index
    /// carry too, as `lookup`'s search matches and ranks them, by DOI key.
    fn doi_copies(
        &self,
        lookup: &CopyLookup<'_>,
        hits: &[Hit],
    ) -> Result<BTreeMap<String, DoiCopies>, SearchError> {
        let mut found = BTreeMap::new();
        // Each DOI is looked at once per page, whether its copies merge or
        // (too many, or none other live) stay apart.
        let mut looked_at = HashSet::new();
        for hit in hits {
            let Some(key) = crate::search::doi_key(&hit.doi) else {
                continue;
            };
            if !looked_at.insert(key.clone()) {
                continue;
            }
            let term = Term::from_field_text(self.fields.doi_key, &key);
            if live_postings(lookup.searcher, self.fields.doi_key, &term, 2)? < 2 {
                continue;
            }
            if lookup.deadline.is_some_and(Deadline::look) {
                return Err(SearchError::Deadline);
            }
            // The search's own query, narrowed to the DOI by a clause that
            // scores 0: each copy's score is the search's, to the bit.
            let query = tantivy::query::BooleanQuery::new(vec![
                (tantivy::query::Occur::Must, lookup.query.box_clone()),
                (
                    tantivy::query::Occur::Must,
                    Box::new(tantivy::query::ConstScoreQuery::new(
                        Box::new(tantivy::query::TermQuery::new(
                            term,
                            tantivy::schema::IndexRecordOption::Basic,
                        )),
                        0.0,
                    )),
                ),
            ]);
            let collector = PageCollector {
                limit: MAX_DOI_COPIES,
                facets: false,
                ..lookup.collector.clone()
            };
            // The query's phrases and words stop inside a step at the
            // deadline here too ([`interrupt`]).
            let watch = interrupt::Watch::begin(lookup.deadline);
            let page = lookup.searcher.search_with_executor(
                &query,
                &collector,
                &Executor::SingleThread,
                lookup.scoring,
            )?;
            drop(watch);
            if lookup.deadline.is_some_and(Deadline::passed) {
                return Err(SearchError::Deadline);
            }
            // More copies than that are one origin's records sharing a
            // DOI, not one dataset's copies: they stay apart, so none of
            // them is left out of every page.
            if page.total > MAX_DOI_COPIES as u64 {
                continue;
            }
            // A copy before the cursor was on an earlier page only if the
            // earlier pages read this snapshot; otherwise the hit is kept,
            // since showing a dataset twice is better than never.
            let mut shown_before = lookup.same_as_earlier_pages && page.remaining < page.total;
            let mut copies = Vec::new();
            if !shown_before {
                copies = page
                    .top
                    .iter()
                    .map(|top| self.hit(lookup.searcher, top, lookup.highlighter))
                    .collect::<Result<Vec<_>, _>>()?;
                // The cursor's own record was shown, whatever a sum of its
                // scores in another order makes of its rank here.
                if lookup.same_as_earlier_pages
                    && copies
                        .iter()
                        .any(|c| lookup.last_shown == Some((c.origin.as_str(), c.id.as_str())))
                {
                    shown_before = true;
                    copies.clear();
                }
            }
            found.insert(
                key,
                DoiCopies {
                    shown_before,
                    copies,
                },
            );
        }
        Ok(found)
    }

    /// Merges every segment into one, as background merges eventually do.
    #[cfg(test)]
    fn merge_segments(&self) -> Result<(), TantivyError> {
        let segments = self.reader.searcher().index().searchable_segment_ids()?;
        let mut writer = self.writer();
        writer.merge(&segments).wait()?;
        let payload = Payload {
            schema: SCHEMA_VERSION,
            cursors: self.committed_cursors(),
        };
        commit(&mut writer, &payload)?;
        self.reload()
    }

    fn hit(
        &self,
        searcher: &Searcher,
        top: &TopHit,
        highlighter: Option<&Highlighter>,
    ) -> Result<Hit, SearchError> {
        let doc: TantivyDocument = searcher.doc(top.address)?;
        let f = &self.fields;
        let text = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let number = |field| doc.get_first(field).and_then(|v| v.as_u64()).unwrap_or(0);
        let title = text(f.title);
        let snippet = match highlighter {
            Some(highlighter) => highlighter.snippet(&title, &text(f.description)),
            None => String::new(),
        };
        let visibility = match text(f.visibility).as_str() {
            "public" => Visibility::Public,
            "federation" => Visibility::Federation,
            "groups" => Visibility::Groups,
            "private" => Visibility::Private,
            _ => Visibility::Unspecified,
        };
        Ok(Hit {
            origin: text(f.origin),
            id: text(f.id),
            version: number(f.version),
            title,
            doi: text(f.doi),
            publication_year: u32::try_from(number(f.year)).unwrap_or(0),
            updated_at: text(f.updated_at),
            size_bytes: number(f.size),
            // tantivy passes 0 when the sort needs no scores.
            score: top.score,
            snippet,
            access: crate::record::parse_access(&text(f.access)).unwrap_or_default(),
            visibility,
            also_at: Vec::new(),
            verified: true,
        })
    }
}

/// The total and facet counts of a search that matches at least
/// [`EXACT_MATCHES`] records, estimated from its matches in a sample of the
/// index (windows of [`SAMPLE_WIDTH`] documents) meant to hold some
/// [`SAMPLE_MATCHES`] of them, going by the `matches` the search may have
/// at most; `count` counts them. `None` when the sample says the search
/// matches fewer, and its counts are to be exact.
fn estimate(
    estimates: Estimates,
    searcher: &Searcher,
    collector: &PageCollector,
    matches: u64,
    count: impl Fn(&PageCollector, Sample) -> tantivy::Result<Page>,
) -> Result<Option<Page>, SearchError> {
    let every = (matches / estimates.sample_matches.max(1)).min(MAX_SAMPLE_EVERY);
    if every < 2 {
        return Ok(None);
    }
    let sample = Sample {
        width: estimates.sample_width,
        every: every as tantivy::DocId,
    };
    let readers = searcher.segment_readers();
    let weights = readers.iter().map(|r| sample.weight(r.max_doc())).collect();
    let counter = PageCollector {
        limit: 0,
        after: None,
        scored: false,
        weights: Some(weights),
        ..collector.clone()
    };
    let counted = count(&counter, sample)?;
    Ok((counted.total >= estimates.exact_matches).then_some(counted))
}

/// When a ranked search's total and facet counts are estimated, and from
/// how large a sample.
#[derive(Debug, Clone, Copy)]
struct Estimates {
    /// [`EXACT_MATCHES`].
    exact_matches: u64,
    /// [`SAMPLE_MATCHES`].
    sample_matches: u64,
    /// [`SAMPLE_WIDTH`].
    sample_width: tantivy::DocId,
}

impl Default for Estimates {
    fn default() -> Self {
        Self {
            exact_matches: EXACT_MATCHES,
            sample_matches: SAMPLE_MATCHES,
            sample_width: SAMPLE_WIDTH,
        }
    }
}

/// How many live documents (not deleted) of `searcher` hold `term` in
/// `field`, counted up to `enough`.
fn live_postings(
    searcher: &Searcher,
    field: tantivy::schema::Field,
    term: &Term,
    enough: u32,
) -> Result<u32, TantivyError> {
    let mut found = 0;
    for segment in searcher.segment_readers() {
        let Some(mut postings) = segment
            .inverted_index(field)?
            .read_postings(term, tantivy::schema::IndexRecordOption::Basic)?
        else {
            continue;
        };
        use tantivy::DocSet;
        let alive = segment.alive_bitset();
        let mut doc = postings.doc();
        while doc != tantivy::TERMINATED {
            if alive.is_none_or(|alive| alive.is_alive(doc)) {
                found += 1;
                if found >= enough {
                    return Ok(found);
                }
            }
            doc = postings.advance();
        }
    }
    Ok(found)
}

/// What a search's lookup of a DOI's copies shares with the search.
struct CopyLookup<'a> {
    searcher: &'a Searcher,
    query: &'a dyn tantivy::query::Query,
    collector: &'a PageCollector,
    scoring: EnableScoring<'a>,
    highlighter: Option<&'a Highlighter>,
    deadline: Option<&'a Deadline>,
    /// [`PreparedSearch::same_as_earlier_pages`].
    same_as_earlier_pages: bool,
    /// The record the page before ended with (origin, id), from the cursor.
    last_shown: Option<(&'a str, &'a str)>,
}

fn commit(writer: &mut IndexWriter, payload: &Payload) -> Result<(), TantivyError> {
    let payload = serde_json::to_string(payload)
        .map_err(|e| TantivyError::InternalError(format!("payload: {e}")))?;
    let mut prepared = writer.prepare_commit()?;
    prepared.set_payload(&payload);
    prepared.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests;
