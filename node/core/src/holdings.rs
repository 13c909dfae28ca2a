//! The node's own holdings (DESIGN §2, §4): import, put and delete, each
//! change signed into the origin log and durable before it is acknowledged;
//! and reading records back, verified, for a viewer.
//!
//! [`Node::store_prepared`] decides each record's version and log position;
//! [`Node::append_own`] signs the entries ([`crate::log::sign_entry`]),
//! appends them in one transaction, flushes, then signs a checkpoint.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::ids::{LogIndex, RecordId};
use crate::log::{RecordState, StoredEntry, UnsignedEntry};
use crate::node::{Node, NodeError};
use crate::proto::{log_entry::Body, DatasetRecord, Envelope, Visibility};
use crate::record::{self, RecordError};
use crate::sign;
use crate::store::StoreError;
use crate::visibility::Viewer;

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
    records: Vec<DatasetRecord>,
    outcome: ImportOutcome,
}

/// A page of records.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub records: Vec<RecordView>,
    pub next_page_token: Option<String>,
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

    /// The first half of an import, which needs no lock: parses and
    /// validates the lines in parallel. A pipeline prepares the next chunk
    /// while [`Node::store_prepared`] stores this one.
    pub fn prepare_lines(&self, first_line: u64, lines: &[String]) -> PreparedChunk {
        let parsed: Vec<Result<DatasetRecord, RecordError>> = lines
            .par_iter()
            .map(|line| record::parse_json_line(line).and_then(|r| self.adopt(r)))
            .collect();
        let mut prepared = PreparedChunk::default();
        for (offset, result) in parsed.into_iter().enumerate() {
            match result {
                Ok(record) => prepared.records.push(record),
                Err(e) => prepared.outcome.reject(first_line + offset as u64, e),
            }
        }
        prepared
    }

    /// The second half of an import: assigns versions and log positions,
    /// signs, appends in one transaction and flushes.
    pub fn store_prepared(&self, prepared: PreparedChunk) -> Result<ImportOutcome, NodeError> {
        let PreparedChunk {
            records,
            mut outcome,
        } = prepared;
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let appender = self.store().appender(self.node_id())?;
        // The latest state of each id this chunk touches, so an id repeated
        // within the chunk sees its own earlier line.
        let mut touched: HashMap<String, (RecordState, DatasetRecord)> = HashMap::new();
        let mut planned: Vec<UnsignedEntry> = Vec::with_capacity(records.len());
        for mut record in records {
            let previous = match touched.get(&record.id) {
                Some((state, old)) => Some((*state, old.clone())),
                None => self.current(&record.id)?,
            };
            let index = LogIndex(appender.next_index() + planned.len() as u64);
            let Some(state) = plan_version(&mut record, previous, index) else {
                outcome.unchanged += 1;
                continue;
            };
            touched.insert(record.id.clone(), (state, record.clone()));
            planned.push(UnsignedEntry::record(record, state));
        }
        outcome.stored = planned.len() as u64;
        outcome.log_size = self.append_own(appender, planned)?;
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
        let new_state = RecordState {
            version: tombstone.version,
            log_index: index,
            deleted: true,
        };
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
        let state = self
            .store()
            .record_state(origin, id)?
            .ok_or_else(not_found)?;
        if state.deleted {
            return Err(not_found());
        }
        let view = self.read_entry(origin, state.log_index)?;
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
        let origin = if origin.is_empty() {
            self.node_id()
        } else {
            origin
        };
        let page_size = page_size.clamp(1, MAX_PAGE);
        let mut after = decode_page_token(page_token)?;
        let mut page = Page::default();
        loop {
            let batch = self
                .store()
                .list_records(origin, after.as_deref(), page_size)?;
            let exhausted = batch.len() < page_size;
            for (id, state) in batch {
                after = Some(id);
                if state.deleted && !include_deleted {
                    continue;
                }
                if state.deleted
                    && matches!(
                        self.store().entry(origin, state.log_index)?,
                        Some(StoredEntry::Redacted { .. })
                    )
                {
                    // Withdrawn by a version this node may not see: there
                    // is no tombstone to show.
                    continue;
                }
                let view = self.read_entry(origin, state.log_index)?;
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

    /// Reads and verifies entry `index` of `origin`'s log.
    fn read_entry(&self, origin: &str, index: LogIndex) -> Result<RecordView, NodeError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            tree: crate::store::tree::LOG,
            detail,
        };
        let envelope = match self.store().entry(origin, index)? {
            Some(StoredEntry::Signed(envelope)) => envelope,
            Some(StoredEntry::Redacted { .. }) => {
                return Err(
                    corrupt(format!("{origin} entry {index} is held as digests only")).into(),
                )
            }
            None => return Err(corrupt(format!("{origin} entry {index} missing")).into()),
        };
        let ring = self
            .origin_ring(origin)?
            .ok_or_else(|| NodeError::NotFound {
                origin: origin.to_owned(),
                id: format!("entry {index}"),
            })?;
        let (entry, verified) = sign::open_entry(&envelope, &ring)?;
        let Some(Body::Record(record)) = entry.body else {
            return Err(corrupt(format!("{origin} entry {index} is not a record")).into());
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

    fn not_found(&self, id: &str) -> NodeError {
        NodeError::NotFound {
            origin: self.node_id().to_string(),
            id: id.to_owned(),
        }
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
fn plan_version(
    record: &mut DatasetRecord,
    previous: Option<(RecordState, DatasetRecord)>,
    index: LogIndex,
) -> Option<RecordState> {
    let stamp_missing = record.updated_at.is_empty();
    let version = match previous {
        Some((state, old)) => {
            if record.deleted && state.deleted {
                return None;
            }
            let mut candidate = record.clone();
            candidate.version = old.version;
            if stamp_missing {
                candidate.updated_at = old.updated_at.clone();
            }
            if !state.deleted && candidate == old {
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
    Some(RecordState {
        version,
        log_index: index,
        deleted: record.deleted,
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
