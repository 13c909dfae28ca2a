//! The node's own holdings (DESIGN §2, §4): import, put and delete, each
//! change signed into the origin log and durable before it is acknowledged;
//! and reading records back, verified, for a viewer.
//!
//! An import chunk is planned (each record's version and log position),
//! signed ([`crate::log::sign_entry`]), then committed: appended in one
//! transaction, flushed, and covered by a signed checkpoint
//! ([`Node::commit_signed`]). An import stream signs a chunk while the one
//! before it commits ([`Node::import_step`]); the commit checks, under the
//! writer lock, that the chunk's place in the log and its key still hold.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rayon::prelude::*;

use crate::ids::{LogIndex, RecordId};
use crate::keyset::KeyChain;
use crate::log::{RecordState, SignedEntry, StoredEntry, UnsignedEntry};
use crate::metrics::ImportResult;
use crate::node::{Node, NodeError};
use crate::proto::{log_entry::Body, DatasetRecord, Envelope, Visibility};
use crate::record::{self, RecordError};
use crate::sign::NodeKey;
use crate::store::StoreError;
use crate::visibility::{self, Delivery, Viewer};

/// A record as read back: the payload and the envelope it was verified from.
#[derive(Debug, Clone)]
pub struct RecordView {
    pub record: DatasetRecord,
    pub envelope: Envelope,
    pub log_index: LogIndex,
    pub verified_key_id: String,
}

/// One rejected import line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: u64,
    pub field: String,
    pub reason: String,
}

/// What one import chunk did; counted after the chunk is durable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    pub stored: u64,
    pub unchanged: u64,
    pub rejected: u64,
    pub errors: Vec<LineError>,
    pub log_size: u64,
}

/// A chunk of import lines, parsed and validated, not yet stored.
#[derive(Debug, Default)]
pub struct PreparedChunk {
    /// Each record with its line.
    records: Vec<(u64, DatasetRecord)>,
    outcome: ImportOutcome,
}

/// States planned for records but not yet stored, by id.
type Touched = HashMap<String, (RecordState, DatasetRecord)>;

/// What [`Node::plan`] made of a chunk's records.
struct Planned {
    entries: Vec<UnsignedEntry>,
    /// The states they leave, by id.
    touched: Touched,
    /// Records the same as the version held.
    unchanged: u64,
    /// Lines refused.
    refused: Vec<LineError>,
}

/// A chunk whose records have versions and log positions, not yet signed.
struct PlannedChunk {
    prepared: PreparedChunk,
    first: u64,
    entries: Vec<UnsignedEntry>,
    touched: Touched,
    unchanged: u64,
    /// Lines planning refused (a tombstone of a record never held).
    refused: Vec<LineError>,
    /// The own log's state it was planned on, and the one it leaves when
    /// it commits as planned ([`Node::own_head`]).
    basis: u64,
    head: u64,
}

/// A chunk planned and signed, waiting to commit ([`Node::commit_signed`]).
/// It keeps the records as prepared, to plan them again should the log
/// move before it commits.
pub struct SignedChunk {
    prepared: PreparedChunk,
    /// The log position of its first entry, and the key that signed it.
    first: u64,
    key: Arc<NodeKey>,
    signed: Vec<SignedEntry>,
    /// The states its records leave, for the chunk planned after it.
    touched: Touched,
    unchanged: u64,
    refused: Vec<LineError>,
    basis: u64,
    head: u64,
}

/// What one [`Node::import_step`] did: the pending chunk's commit and the
/// next chunk signed, each when there was one.
pub struct ImportStep {
    pub committed: Option<Result<ImportOutcome, NodeError>>,
    pub signed: Option<Result<SignedChunk, NodeError>>,
}

/// A page of records.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub records: Vec<RecordView>,
    pub next_page_token: Option<String>,
    /// Entries looked at for this page (not sent).
    pub scanned: usize,
    /// Signatures verified for this page: only of records the viewer sees
    /// (not sent).
    pub verified: usize,
    /// The deadline passed before the page filled (not sent): the token
    /// resumes after the last record on the page, or after the last entry
    /// scanned when there is none (an id the caller may not see: see
    /// [`Node::list_until`]).
    pub cut_short: bool,
}

/// Largest page a list call returns.
pub const MAX_PAGE: usize = 1000;

impl Node {
    /// Validates, signs and stores a chunk of JSON Lines. Every valid line is
    /// stored; each bad one is reported by number; nothing is acknowledged
    /// before it is durable. Blocking: call from a blocking thread.
    pub fn import_lines(
        &self,
        first_line: u64,
        lines: &[String],
    ) -> Result<ImportOutcome, NodeError> {
        let prepared = self.prepare_lines(first_line, lines);
        self.store_prepared(prepared)
    }

    /// [`Node::import_lines`] for records already read (a harvest's): the
    /// same checks, versions, signing and storing, without a JSON round trip.
    /// Blocking: call from a blocking thread.
    pub fn import_records(
        &self,
        first_line: u64,
        records: Vec<DatasetRecord>,
    ) -> Result<ImportOutcome, NodeError> {
        let checked: Vec<Result<DatasetRecord, RecordError>> = records
            .into_par_iter()
            .map(|r| record::validate(&r).and_then(|()| self.adopt(r)))
            .collect();
        let mut prepared = PreparedChunk::default();
        for (offset, result) in checked.into_iter().enumerate() {
            match result {
                Ok(record) => prepared.records.push((first_line + offset as u64, record)),
                Err(e) => prepared.outcome.reject(first_line + offset as u64, e),
            }
        }
        self.store_prepared(prepared)
    }

    /// The first half of an import, which needs no lock: parses and
    /// validates the lines in parallel. An import stream prepares the next
    /// chunk while [`Node::import_step`] signs and commits earlier ones.
    pub fn prepare_lines(&self, first_line: u64, lines: &[String]) -> PreparedChunk {
        let parsed: Vec<Result<DatasetRecord, RecordError>> = lines
            .par_iter()
            .map(|line| record::parse_json_line(line).and_then(|r| self.adopt(r)))
            .collect();
        let mut prepared = PreparedChunk::default();
        for (offset, result) in parsed.into_iter().enumerate() {
            match result {
                Ok(record) => prepared.records.push((first_line + offset as u64, record)),
                Err(e) => prepared.outcome.reject(first_line + offset as u64, e),
            }
        }
        prepared
    }

    /// The second half of an import: assigns versions and log positions,
    /// signs, appends in one transaction and flushes.
    pub fn store_prepared(&self, prepared: PreparedChunk) -> Result<ImportOutcome, NodeError> {
        let planned = self.plan_chunk(prepared, None)?;
        self.commit_signed(self.sign_chunk(planned))
    }

    /// One step of an import stream, which signs a chunk while the one
    /// before it commits: plans `next` to follow `pending`, then commits
    /// `pending` on a thread of its own while `next` is signed. Either may
    /// be absent (the first chunk has nothing to commit; the last, or one
    /// whose successor has not arrived yet, nothing to sign). Blocking.
    ///
    /// `next` is planned before `pending` commits, on the states `pending`
    /// leaves: its reads never wait for `pending`'s transaction. Its place
    /// in the log and its key are checked again when it commits
    /// ([`Node::commit_signed`]).
    pub fn import_step(
        &self,
        pending: Option<SignedChunk>,
        next: Option<PreparedChunk>,
    ) -> ImportStep {
        let planned = next.map(|next| self.plan_chunk(next, pending.as_ref()));
        std::thread::scope(|scope| {
            let committing = pending.map(|chunk| scope.spawn(|| self.commit_signed(chunk)));
            let signed = planned.map(|planned| planned.map(|planned| self.sign_chunk(planned)));
            let committed = committing.map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            });
            ImportStep { committed, signed }
        })
    }

    /// Decides each record's version and log position, the first at the
    /// end of the log, or after `after` when that chunk has yet to commit
    /// (its records' states are then the ones it leaves). Reads the store;
    /// takes no lock.
    fn plan_chunk(
        &self,
        prepared: PreparedChunk,
        after: Option<&SignedChunk>,
    ) -> Result<PlannedChunk, NodeError> {
        // Read before the store: an append after this moves the head, and
        // the chunk is planned again when it commits.
        let (first, earlier, basis) = match after {
            Some(after) => (
                after.first + after.signed.len() as u64,
                Some(&after.touched),
                after.head,
            ),
            None => {
                let basis = self.own_head.load(Ordering::SeqCst);
                (self.store().log_size(self.node_id())?, None, basis)
            }
        };
        self.plan_at(prepared, first, earlier, basis)
    }

    /// Plans `prepared` from log position `first` ([`Node::plan`]), on the
    /// own log's state `basis`.
    fn plan_at(
        &self,
        prepared: PreparedChunk,
        first: u64,
        earlier: Option<&Touched>,
        basis: u64,
    ) -> Result<PlannedChunk, NodeError> {
        let Planned {
            entries,
            touched,
            unchanged,
            refused,
        } = self.plan(&prepared.records, first, earlier)?;
        Ok(PlannedChunk {
            prepared,
            first,
            entries,
            touched,
            unchanged,
            refused,
            basis,
            head: self.fresh_head(),
        })
    }

    /// The versions of `records` (each with its line) as entries from log
    /// position `first`, with the states they leave. `earlier` holds states
    /// planned but not yet stored.
    fn plan(
        &self,
        records: &[(u64, DatasetRecord)],
        first: u64,
        earlier: Option<&Touched>,
    ) -> Result<Planned, NodeError> {
        // The latest state of each id this chunk touches, so an id repeated
        // within the chunk sees its own earlier line.
        let mut touched = Touched::new();
        let mut planned: Vec<UnsignedEntry> = Vec::with_capacity(records.len());
        let mut unchanged = 0;
        let mut refused = Vec::new();
        // Whether any of this node's entries is quarantined (a revoked key).
        let chain = self.own_chain();
        let revoking = !chain.revocations().is_empty();
        for (line, record) in records {
            let mut record = record.clone();
            let mut quarantined = false;
            let planned_before = touched
                .get(&record.id)
                .or_else(|| earlier.and_then(|earlier| earlier.get(&record.id)));
            let previous = match planned_before {
                Some((state, old)) => Some((*state, old.clone())),
                None => {
                    let current = self.current(&record.id)?;
                    if let Some((state, _)) = current.as_ref().filter(|_| revoking) {
                        let envelope = self.stored_envelope(self.node_id(), state.log_index)?;
                        quarantined = chain
                            .quarantines(state.log_index.get(), &envelope)
                            .is_some();
                    }
                    current
                }
            };
            if record.deleted && previous.is_none() {
                // As `holdings rm` answers for it: likely a mistyped id.
                refused.push(LineError {
                    line: *line,
                    field: "id".into(),
                    reason: format!(
                        "a tombstone of {}, a record this node does not hold",
                        crate::quote::short_text(&record.id)
                    ),
                });
                continue;
            }
            let index = LogIndex(first + planned.len() as u64);
            let Some(state) = plan_version(&mut record, previous, quarantined, index) else {
                unchanged += 1;
                continue;
            };
            touched.insert(record.id.clone(), (state, record.clone()));
            planned.push(UnsignedEntry::record(record, state));
        }
        Ok(Planned {
            entries: planned,
            touched,
            unchanged,
            refused,
        })
    }

    /// Signs a planned chunk's entries with the signing key in use, in
    /// parallel. Touches no store.
    fn sign_chunk(&self, planned: PlannedChunk) -> SignedChunk {
        let key = self.key();
        let signed = self.sign_own(&key, planned.first, planned.entries);
        SignedChunk {
            prepared: planned.prepared,
            first: planned.first,
            key,
            signed,
            touched: planned.touched,
            unchanged: planned.unchanged,
            refused: planned.refused,
            basis: planned.basis,
            head: planned.head,
        }
    }

    /// Appends a signed chunk in one transaction, flushes and signs a
    /// checkpoint, under the writer lock. When the log has moved since the
    /// chunk was planned (a delete or a key change came in between, or the
    /// chunk it was planned after was itself planned again) or the signing
    /// key changed, the chunk is planned and signed again first, so what is
    /// stored is what planning under the lock would have stored. The log's
    /// length alone cannot tell: a chunk planned again may end where the
    /// one after it was planned to begin.
    pub fn commit_signed(&self, chunk: SignedChunk) -> Result<ImportOutcome, NodeError> {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.may_append()?;
        let appender = self.store().appender(self.node_id())?;
        let as_planned = appender.next_index() == chunk.first
            && self.own_head.load(Ordering::SeqCst) == chunk.basis
            && Arc::ptr_eq(&chunk.key, &self.key());
        let chunk = if as_planned {
            chunk
        } else {
            tracing::debug!(
                planned_at = chunk.first,
                log_size = appender.next_index(),
                "the log moved while an import chunk was signed; planning it again"
            );
            let basis = self.own_head.load(Ordering::SeqCst);
            self.sign_chunk(self.plan_at(chunk.prepared, appender.next_index(), None, basis)?)
        };
        let head = chunk.head;
        let mut outcome = chunk.prepared.outcome;
        outcome.unchanged += chunk.unchanged;
        outcome.rejected += chunk.refused.len() as u64;
        outcome.errors.extend(chunk.refused);
        outcome.errors.sort_by_key(|error| error.line);
        outcome.stored = chunk.signed.len() as u64;
        outcome.log_size = self.commit_own(appender, chunk.signed, &chunk.key)?;
        if as_planned {
            // The chunk planned after this one was planned on what it left.
            self.own_head.store(head, Ordering::SeqCst);
        }
        let imports = &self.metrics().imports;
        imports.add(ImportResult::Stored, outcome.stored);
        imports.add(ImportResult::Unchanged, outcome.unchanged);
        imports.add(ImportResult::Rejected, outcome.rejected);
        Ok(outcome)
    }

    /// Withdraws record `id` with a signed tombstone. Returns the tombstone's
    /// version and log index.
    pub fn delete(&self, id: &RecordId) -> Result<(u64, LogIndex), NodeError> {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let Some((state, old)) = self.current(id)? else {
            return Err(self.not_found(id));
        };
        if state.deleted {
            return Err(self.not_found(id));
        }
        let appender = self.store().appender(self.node_id())?;
        let index = LogIndex(appender.next_index());
        let tombstone = DatasetRecord {
            origin: self.node_id().to_string(),
            id: id.to_string(),
            version: state.version + 1,
            visibility: old.visibility,
            groups: old.groups,
            updated_at: crate::date::now_rfc3339(),
            deleted: true,
            ..DatasetRecord::default()
        };
        let new_state = RecordState::of_version(&tombstone, index, Some(&state));
        self.append_own(appender, vec![UnsignedEntry::record(tombstone, new_state)])?;
        Ok((new_state.version, index))
    }

    /// Record `id` of `origin` (this node when empty), if `viewer` may see it.
    pub fn get(&self, origin: &str, id: &str, viewer: &Viewer) -> Result<RecordView, NodeError> {
        let origin = if origin.is_empty() {
            self.node_id()
        } else {
            origin
        };
        let not_found = || NodeError::NotFound {
            origin: origin.to_owned(),
            id: id.to_owned(),
        };
        // A quarantined origin's records answer exactly as missing ones.
        if !self.holds_origin(origin)? {
            return Err(not_found());
        }
        let state = self
            .store()
            .record_state(origin, id)?
            .ok_or_else(not_found)?;
        if state.deleted {
            return Err(not_found());
        }
        let chain = self.readable_keys(origin, viewer)?.ok_or_else(not_found)?;
        let envelope = self.stored_envelope(origin, state.log_index)?;
        // Whether the viewer may see it, from the few fields that say so,
        // before any signature is checked: a hidden record answers about
        // as fast as a missing one, so the time taken does not tell that
        // it exists.
        if !may_receive(viewer, origin, state.log_index, &envelope)? {
            return Err(not_found());
        }
        // A version signed by a revoked key answers as missing, for every
        // viewer, until the origin re-signs it (crate::quarantine).
        if chain
            .quarantines(state.log_index.get(), &envelope)
            .is_some()
        {
            return Err(not_found());
        }
        let view = open_view(origin, envelope, state.log_index, &chain)?;
        if !viewer.may_see(&view.record) {
            return Err(not_found());
        }
        Ok(view)
    }

    /// A page of `origin`'s records (this node when empty) that `viewer` may see.
    pub fn list(
        &self,
        origin: &str,
        page_size: usize,
        page_token: &str,
        include_deleted: bool,
        viewer: &Viewer,
    ) -> Result<Page, NodeError> {
        self.list_until(origin, page_size, page_token, include_deleted, viewer, None)
    }

    /// [`Node::list`] that stops scanning when `deadline` passes, after
    /// the first entry at least: the page then holds what was found, and
    /// its token resumes after the last record on it. A page cut short
    /// with no record has the token of the last entry scanned, which names
    /// a record the caller may not see: a caller who is not the operator
    /// must not be handed it. Visibility is decided before any signature is
    /// verified, from the audience fields of the stored payload (verified
    /// when it was stored), so records the viewer may not see cost a read
    /// and a small decode, never a verification.
    pub fn list_until(
        &self,
        origin: &str,
        page_size: usize,
        page_token: &str,
        include_deleted: bool,
        viewer: &Viewer,
        deadline: Option<std::time::Instant>,
    ) -> Result<Page, NodeError> {
        let origin = if origin.is_empty() {
            self.node_id()
        } else {
            origin
        };
        let page_size = page_size.clamp(1, MAX_PAGE);
        let mut after = decode_page_token(page_token)?;
        let mut page = Page::default();
        // A quarantined origin lists as one this node holds nothing of.
        let Some(ring) = self.readable_keys(origin, viewer)? else {
            return Ok(page);
        };
        loop {
            let batch = self
                .store()
                .list_records(origin, after.as_deref(), page_size)?;
            let exhausted = batch.len() < page_size;
            for (id, state) in batch {
                if page.scanned > 0 && deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                    page.cut_short = true;
                    let last = match page.records.last() {
                        Some(view) => Some(view.record.id.as_str()),
                        None => after.as_deref(),
                    };
                    page.next_page_token = last.map(encode_page_token);
                    return Ok(page);
                }
                after = Some(id);
                page.scanned += 1;
                if state.deleted && !include_deleted {
                    continue;
                }
                let stored = self.store().entry(origin, state.log_index)?;
                if state.deleted && matches!(stored, Some(StoredEntry::Redacted { .. })) {
                    // Withdrawn by a version this node may not see: there
                    // is no tombstone to show.
                    continue;
                }
                let envelope = signed_envelope(origin, state.log_index, stored)?;
                if !may_receive(viewer, origin, state.log_index, &envelope)? {
                    continue;
                }
                if ring.quarantines(state.log_index.get(), &envelope).is_some() {
                    continue;
                }
                page.verified += 1;
                let view = open_view(origin, envelope, state.log_index, &ring)?;
                if viewer.may_see(&view.record) {
                    page.records.push(view);
                }
                if page.records.len() == page_size {
                    break;
                }
            }
            if page.records.len() == page_size {
                page.next_page_token = after.as_deref().map(encode_page_token);
                return Ok(page);
            }
            if exhausted {
                return Ok(page);
            }
        }
    }

    /// Log size and live record count of this node's own holdings.
    pub fn holdings_status(&self) -> Result<(u64, u64), NodeError> {
        Ok((
            self.store().log_size(self.node_id())?,
            self.store().count_live(self.node_id())?,
        ))
    }

    /// Checks an imported record against this node's rules and fills in
    /// what the node assigns.
    fn adopt(&self, mut record: DatasetRecord) -> Result<DatasetRecord, RecordError> {
        if !record.origin.is_empty() && record.origin != self.node_id() {
            return Err(RecordError {
                field: "origin".into(),
                reason: format!(
                    "record belongs to `{}`, this node is `{}`; a node imports only its own holdings",
                    record.origin,
                    self.node_id()
                ),
            });
        }
        record::check_new(&record)?;
        record.origin = self.node_id().to_string();
        if record.visibility == Visibility::Unspecified as i32 {
            record.visibility = self.default_visibility() as i32;
        }
        Ok(record)
    }

    /// The stored state and content of this node's record `id`.
    fn current(&self, id: &str) -> Result<Option<(RecordState, DatasetRecord)>, NodeError> {
        let Some(state) = self.store().record_state(self.node_id(), id)? else {
            return Ok(None);
        };
        let view = self.read_entry(self.node_id(), state.log_index)?;
        Ok(Some((state, view.record)))
    }

    /// The chain `origin`'s records are read under for `viewer`: for anyone
    /// but the operator, [`Node::served_keys`] (none for a quarantined
    /// origin or one whose chain does not verify, whose records then
    /// answer exactly as missing ones); the operator is told why.
    fn readable_keys(
        &self,
        origin: &str,
        viewer: &Viewer,
    ) -> Result<Option<Arc<KeyChain>>, NodeError> {
        if matches!(viewer, Viewer::Operator { .. }) {
            return self.origin_keys(origin);
        }
        self.served_keys(origin, |e| {
            tracing::debug!(origin = %origin, error = %e, "the origin's key chain does not verify: its records are not served");
        })
    }

    /// Reads and verifies entry `index` of `origin`'s log.
    fn read_entry(&self, origin: &str, index: LogIndex) -> Result<RecordView, NodeError> {
        let envelope = self.stored_envelope(origin, index)?;
        let ring = self
            .origin_keys(origin)?
            .ok_or_else(|| NodeError::NotFound {
                origin: origin.to_owned(),
                id: format!("entry {index}"),
            })?;
        open_view(origin, envelope, index, &ring)
    }

    /// The signed envelope of entry `index` of `origin`'s log, unverified.
    fn stored_envelope(&self, origin: &str, index: LogIndex) -> Result<Envelope, NodeError> {
        signed_envelope(origin, index, self.store().entry(origin, index)?)
    }

    fn not_found(&self, id: &str) -> NodeError {
        NodeError::NotFound {
            origin: self.node_id().to_string(),
            id: id.to_owned(),
        }
    }
}

/// The signed envelope in entry `index` of `origin`'s log as read from the
/// store; digests only or nothing there is a corrupt store.
fn signed_envelope(
    origin: &str,
    index: LogIndex,
    stored: Option<StoredEntry>,
) -> Result<Envelope, NodeError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        tree: crate::store::tree::LOG,
        detail,
    };
    match stored {
        Some(StoredEntry::Signed(envelope)) => Ok(envelope),
        Some(StoredEntry::Redacted { .. }) => {
            Err(corrupt(format!("{origin} entry {index} is held as digests only")).into())
        }
        None => Err(corrupt(format!("{origin} entry {index} missing")).into()),
    }
}

impl ImportOutcome {
    fn reject(&mut self, line: u64, error: RecordError) {
        self.rejected += 1;
        self.errors.push(LineError {
            line,
            field: error.field,
            reason: error.reason,
        });
    }
}

/// Decides the version of an incoming record against the one stored, or
/// `None` when nothing changed (re-importing an unchanged record is a no-op).
/// A record without `updated_at` keeps the stored one when otherwise equal.
/// A stored version that is `quarantined` (signed by a revoked key) is
/// never "unchanged": the same content gets a new version, signed by the
/// key in use, which ends the quarantine.
fn plan_version(
    record: &mut DatasetRecord,
    previous: Option<(RecordState, DatasetRecord)>,
    quarantined: bool,
    index: LogIndex,
) -> Option<RecordState> {
    let stamp_missing = record.updated_at.is_empty();
    let before = previous.as_ref().map(|(state, _)| *state);
    let version = match previous {
        Some((state, old)) => {
            if record.deleted && state.deleted {
                return None;
            }
            if record.deleted {
                // A tombstone carries the audience of the version it
                // withdraws, whatever the line says: it goes to exactly
                // those who saw that version.
                record.visibility = old.visibility;
                record.groups = old.groups.clone();
            }
            let mut candidate = record.clone();
            candidate.version = old.version;
            if stamp_missing {
                candidate.updated_at = old.updated_at.clone();
            }
            if !state.deleted && candidate == old && !quarantined {
                return None;
            }
            state.version + 1
        }
        None if record.deleted => return None,
        None => 1,
    };
    if stamp_missing {
        record.updated_at = crate::date::now_rfc3339();
    }
    record.version = version;
    Some(RecordState::of_version(record, index, before.as_ref()))
}

/// Verifies a stored envelope of `origin` against `ring` and reads its record.
pub(crate) fn open_view(
    origin: &str,
    envelope: Envelope,
    index: LogIndex,
    keys: &crate::keyset::KeyChain,
) -> Result<RecordView, NodeError> {
    let (entry, verified) = keys.open_record(index.get(), &envelope)?;
    view_of(origin, envelope, index, entry, verified)
}

/// [`open_view`] for many records of one origin: their signatures are
/// verified in one batch per key set, about a third of the cost of one at a
/// time. Fails as a whole if any fails.
pub(crate) fn open_views(
    origin: &str,
    items: Vec<(LogIndex, Envelope)>,
    keys: &crate::keyset::KeyChain,
) -> Result<Vec<RecordView>, NodeError> {
    let refs: Vec<(u64, &Envelope)> = items.iter().map(|(at, e)| (at.get(), e)).collect();
    let opened = keys.open_records(&refs);
    items
        .into_iter()
        .zip(opened)
        .map(|((index, envelope), opened)| {
            let (entry, verified) = opened?;
            view_of(origin, envelope, index, entry, verified)
        })
        .collect()
}

fn view_of(
    origin: &str,
    envelope: Envelope,
    index: LogIndex,
    entry: crate::proto::LogEntry,
    verified: crate::sign::Verified,
) -> Result<RecordView, NodeError> {
    let Some(Body::Record(record)) = entry.body else {
        return Err(StoreError::Corrupt {
            tree: crate::store::tree::LOG,
            detail: format!("{origin} entry {index} is not a record"),
        }
        .into());
    };
    Ok(RecordView {
        record,
        envelope,
        log_index: index,
        verified_key_id: verified
            .key_ids
            .first()
            .map(|k| k.to_string())
            .unwrap_or_default(),
    })
}

fn encode_page_token(after_id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(after_id)
}

fn decode_page_token(token: &str) -> Result<Option<String>, NodeError> {
    use base64::Engine;
    if token.is_empty() {
        return Ok(None);
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| NodeError::BadPageToken)?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| NodeError::BadPageToken)
}

/// Whether `viewer` may receive the stored entry `envelope` (`origin`'s at
/// `index`), from the few payload fields that decide it: no signature is
/// checked, so records it may not see cost no verification.
fn may_receive(
    viewer: &Viewer,
    origin: &str,
    index: LogIndex,
    envelope: &Envelope,
) -> Result<bool, StoreError> {
    let (delivery, _) =
        visibility::pull_delivery(viewer, &envelope.payload).map_err(|e| StoreError::Corrupt {
            tree: crate::store::tree::LOG,
            detail: format!("{origin} entry {index}: {e}"),
        })?;
    Ok(delivery == Delivery::Envelope)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn line(id: &str, visibility: &str) -> String {
        crate::test_support::record_line(id, &format!("Ice core {id}"), visibility)
    }

    /// A new node `polar` in a temporary directory.
    fn polar() -> (std::sync::Arc<Node>, tempfile::TempDir) {
        crate::test_support::opened_node("polar")
    }

    /// The import counters say what became of each line: stored, unchanged
    /// on a re-import, rejected with its reason reported.
    #[test]
    fn imports_are_counted_by_result() {
        let (node, _dir) = polar();
        let lines = vec![
            line("A", "public"),
            line("B", "federation"),
            "{\"id\": \"C\"}".to_owned(),
        ];
        node.import_lines(1, &lines).unwrap();
        node.import_lines(1, &lines[..1]).unwrap();
        let imports = &node.metrics().imports;
        assert_eq!(imports.get(ImportResult::Stored), 2);
        assert_eq!(imports.get(ImportResult::Unchanged), 1);
        assert_eq!(imports.get(ImportResult::Rejected), 1);
    }

    /// An id or DOI holding an invisible format character is refused on its
    /// line, by JSON Lines and by a harvest's records alike; the lines around
    /// it are stored, and letters beyond ASCII are ids like any other.
    #[test]
    fn a_new_id_with_an_invisible_character_is_refused_on_its_line() {
        let (node, _dir) = polar();
        let lines = vec![
            line("A-1", "public"),
            line("A-\u{200B}1", "public"),
            line("\u{202E}1-A", "public"),
            line("Ålesund-ｸ-1", "public"),
        ];
        let outcome = node.import_lines(1, &lines).unwrap();
        assert_eq!((outcome.stored, outcome.rejected), (2, 2), "{outcome:?}");
        let refused: Vec<(u64, &str, bool)> = outcome
            .errors
            .iter()
            .map(|e| (e.line, e.field.as_str(), e.reason.contains("U+")))
            .collect();
        assert_eq!(refused, [(2, "id", true), (3, "id", true)]);
        assert!(outcome.errors[0].reason.contains("U+200B at byte 2"));
        assert!(node.get("polar", "Ålesund-ｸ-1", &node.operator()).is_ok());

        let before = node.store().log_size("polar").unwrap();
        let mut record = record::parse_json_line(&line("B-1", "public")).unwrap();
        record.doi = "10.1234/b\u{00AD}1".into();
        let outcome = node.import_records(7, vec![record]).unwrap();
        assert_eq!(outcome.stored, 0, "{outcome:?}");
        assert_eq!(
            (outcome.errors[0].line, outcome.errors[0].field.as_str()),
            (7, "doi")
        );
        assert!(outcome.errors[0].reason.contains("U+00AD"));
        let after = node.store().log_size("polar").unwrap();
        assert_eq!(after, before, "nothing of a refused record was written");

        // A record held under such an id from before the rule (stored here
        // without the check) is refused again, and can still be deleted by
        // a line.
        let mut old = record::parse_json_line(&line("OLD-\u{200B}1", "public")).unwrap();
        old.origin = "polar".into();
        let mut prepared = PreparedChunk::default();
        prepared.records.push((1, old.clone()));
        assert_eq!(node.store_prepared(prepared).unwrap().stored, 1);
        let again = node.import_records(1, vec![old]).unwrap();
        assert_eq!((again.stored, again.errors[0].field.as_str()), (0, "id"));
        let tombstone =
            r#"{"origin": "polar", "id": "OLD-\u200b1", "version": 1, "deleted": true}"#;
        let outcome = node.import_lines(1, &[tombstone.to_owned()]).unwrap();
        assert_eq!((outcome.stored, outcome.rejected), (1, 0), "{outcome:?}");
        let state = node.store().record_state("polar", "OLD-\u{200B}1").unwrap();
        assert!(state.unwrap().deleted);
    }

    /// An import stream signs a chunk while the one before it commits: the
    /// chunk signed ahead sees the states the committing one leaves (a
    /// record it changes gets the next version, one it repeats is
    /// unchanged), and the log it leaves is the one chunk-by-chunk imports
    /// would have written.
    #[test]
    fn a_chunk_signed_while_the_one_before_commits_sees_its_states() {
        let (node, _dir) = polar();
        let first = vec![line("A", "public"), line("B", "public")];
        let second = vec![
            crate::test_support::record_line("A", "Ice core A, second edition", "public"),
            line("B", "public"),
            line("C", "federation"),
        ];
        let size_before = node.store().log_size("polar").unwrap();
        let step = node.import_step(None, Some(node.prepare_lines(1, &first)));
        assert!(step.committed.is_none());
        let signed = step.signed.unwrap().unwrap();
        // Planned on the states the first chunk leaves, not on the store,
        // which does not hold them yet (planned again at commit otherwise).
        let planned = node
            .plan_chunk(node.prepare_lines(3, &second), Some(&signed))
            .unwrap();
        assert_eq!(planned.first, size_before + 2);
        assert_eq!(planned.unchanged, 1);
        let versions: Vec<u64> = planned
            .entries
            .iter()
            .map(|entry| entry.state.unwrap().version)
            .collect();
        assert_eq!(versions, [2, 1]);
        let step = node.import_step(Some(signed), Some(node.prepare_lines(3, &second)));
        let committed = step.committed.unwrap().unwrap();
        assert_eq!((committed.stored, committed.unchanged), (2, 0));
        assert_eq!(committed.log_size, size_before + 2);
        let step = node.import_step(Some(step.signed.unwrap().unwrap()), None);
        assert!(step.signed.is_none());
        let committed = step.committed.unwrap().unwrap();
        assert_eq!((committed.stored, committed.unchanged), (2, 1));
        assert_eq!(committed.log_size, size_before + 4);

        let operator = node.operator();
        let a = node.get("polar", "A", &operator).unwrap();
        assert_eq!(a.record.version, 2);
        assert_eq!(a.record.title, "Ice core A, second edition");
        assert_eq!(a.log_index.get(), size_before + 2);
        assert_eq!(node.get("polar", "B", &operator).unwrap().record.version, 1);
        assert_eq!(
            node.get("polar", "C", &operator).unwrap().log_index.get(),
            size_before + 3
        );
        let report = crate::fsck::check(&node).unwrap();
        assert!(report.clean(), "{:?}", report.findings);
    }

    /// A chunk signed ahead whose place in the log was taken before it
    /// committed (here by a delete) is planned and signed again under the
    /// writer lock: nothing is stored at a position twice, and the record
    /// deleted in between is stored again as its next version.
    #[test]
    fn a_chunk_whose_place_was_taken_is_planned_again() {
        let (node, _dir) = polar();
        node.import_lines(1, &[line("A", "public")]).unwrap();
        let signed = node
            .import_step(
                None,
                Some(node.prepare_lines(2, &[line("A", "public"), line("B", "public")])),
            )
            .signed
            .unwrap()
            .unwrap();
        let (_, tombstone_at) = node.delete(&RecordId::parse("A").unwrap()).unwrap();
        let committed = node.commit_signed(signed).unwrap();
        assert_eq!((committed.stored, committed.unchanged), (2, 0));
        assert_eq!(committed.log_size, tombstone_at.get() + 3);
        let a = node.get("polar", "A", &node.operator()).unwrap();
        assert_eq!(a.record.version, 3);
        assert_eq!(a.log_index.get(), tombstone_at.get() + 1);
        let report = crate::fsck::check(&node).unwrap();
        assert!(report.clean(), "{:?}", report.findings);
    }

    /// A chunk planned after one that was itself planned again is planned
    /// again too, even when the log ends where it was planned to begin:
    /// its states were taken from a plan that did not land.
    #[test]
    fn a_chunk_after_one_planned_again_is_planned_again() {
        let (node, _dir) = polar();
        let z = crate::test_support::record_line("Z", "Ice core Z", "private");
        let first = vec![line("Y", "public"), z.clone()];
        let signed = node
            .import_step(None, Some(node.prepare_lines(1, &first)))
            .signed
            .unwrap()
            .unwrap();
        // Another import stores Z as the first chunk has it: that chunk is
        // planned again with Y alone, and ends where the next one begins.
        node.import_lines(1, std::slice::from_ref(&z)).unwrap();
        let step = node.import_step(
            Some(signed),
            Some(node.prepare_lines(3, &[line("Y", "private")])),
        );
        let committed = step.committed.unwrap().unwrap();
        assert_eq!((committed.stored, committed.unchanged), (1, 1));
        let committed = node.commit_signed(step.signed.unwrap().unwrap()).unwrap();
        assert_eq!(committed.stored, 1);
        // Y's note of its latest PUBLIC version is its own version 1.
        let state = node.store().record_state("polar", "Y").unwrap().unwrap();
        assert_eq!(state.version, 2);
        let y1 = node
            .store()
            .record_state("polar", "Z")
            .unwrap()
            .unwrap()
            .log_index
            .get()
            + 1;
        assert_eq!(state.last_public, crate::log::LastPublic::At(LogIndex(y1)));
        let report = crate::fsck::check(&node).unwrap();
        assert!(report.clean(), "{:?}", report.findings);
    }

    /// An imported tombstone carries the audience of the version it
    /// withdraws, whatever its line says; one of a record never held is
    /// refused, naming its line and the field.
    #[test]
    fn an_imported_tombstone_keeps_the_audience_it_withdraws() {
        let (node, _dir) = polar();
        node.import_lines(1, &[line("HIDDEN", "private")]).unwrap();
        let tombstones = [
            r#"{"origin": "polar", "id": "HIDDEN", "version": 1, "deleted": true}"#.to_owned(),
            r#"{"origin": "polar", "id": "NOWHERE", "version": 1, "deleted": true, "visibility": "public"}"#.to_owned(),
        ];
        let outcome = node.import_lines(7, &tombstones).unwrap();
        assert_eq!(
            (outcome.stored, outcome.rejected),
            (1, 1),
            "{:?}",
            outcome.errors
        );
        let error = &outcome.errors[0];
        assert_eq!((error.line, error.field.as_str()), (8, "id"));
        assert!(error.reason.contains("NOWHERE"), "{}", error.reason);
        let state = node
            .store()
            .record_state("polar", "HIDDEN")
            .unwrap()
            .unwrap();
        let tombstone = node.read_entry("polar", state.log_index).unwrap();
        assert!(tombstone.record.deleted);
        assert_eq!(tombstone.record.visibility, Visibility::Private as i32);
        assert!(node.get("polar", "HIDDEN", &Viewer::Anonymous).is_err());
    }

    /// A read of a record the caller may not see checks no signature: it
    /// answers about as fast as a read of a record that is not there, so
    /// the time taken does not tell that the record exists.
    #[test]
    fn a_hidden_record_is_judged_before_its_signature_is_checked() {
        let (node, _dir) = polar();
        node.import_lines(1, &[line("OPEN", "public"), line("HIDDEN", "federation")])
            .unwrap();
        let timed = |id: &str| {
            let started = Instant::now();
            let found = node.get("polar", id, &Viewer::Anonymous).is_ok();
            (started.elapsed(), found)
        };
        let (mut open, mut hidden) = (Vec::new(), Vec::new());
        for _ in 0..51 {
            let (took, found) = timed("OPEN");
            assert!(found);
            open.push(took);
            let (took, found) = timed("HIDDEN");
            assert!(!found);
            hidden.push(took);
        }
        open.sort();
        hidden.sort();
        assert!(
            hidden[25] * 2 < open[25],
            "hidden {:?} against visible {:?}",
            hidden[25],
            open[25]
        );
    }

    /// Issue 9, item 4: an anonymous ListRecords over many records it may
    /// not see verifies no signature for them, and stops at its deadline.
    #[test]
    fn reads_cost_what_they_return() {
        let (node, _dir) = polar();
        let mut lines: Vec<String> = (0..3000)
            .map(|i| line(&format!("HIDDEN-{i:05}"), "federation"))
            .collect();
        lines.push(line("OPEN-1", "public"));
        lines.push(line("OPEN-2", "public"));
        let outcome = node.import_lines(1, &lines).unwrap();
        assert_eq!(outcome.stored, 3002, "{outcome:?}");

        let page = node.list("", 10, "", false, &Viewer::Anonymous).unwrap();
        let ids: Vec<&str> = page.records.iter().map(|v| v.record.id.as_str()).collect();
        assert_eq!(ids, ["OPEN-1", "OPEN-2"]);
        assert_eq!(page.scanned, 3002);
        assert_eq!(
            page.verified, 2,
            "signatures verified for invisible records"
        );

        // The operator sees all, and each record it is sent is verified.
        let page = node.list("", 10, "", false, &node.operator()).unwrap();
        assert_eq!((page.records.len(), page.verified), (10, 10));

        // A deadline that has passed stops the scan after one entry, with
        // a token that resumes where it stopped.
        let page = node
            .list_until("", 10, "", false, &Viewer::Anonymous, Some(Instant::now()))
            .unwrap();
        assert!(page.cut_short && page.records.is_empty() && page.scanned == 1);
        assert_eq!(
            page.next_page_token,
            Some(encode_page_token("HIDDEN-00000"))
        );
        let soon = Instant::now() + Duration::from_millis(1);
        let page = node
            .list_until("", 10, "", false, &Viewer::Anonymous, Some(soon))
            .unwrap();
        if page.cut_short {
            let rest = node
                .list(
                    "",
                    10,
                    page.next_page_token.as_deref().unwrap_or(""),
                    false,
                    &Viewer::Anonymous,
                )
                .unwrap();
            assert_eq!(page.records.len() + rest.records.len(), 2);
        }
    }
}
