//! The node's own holdings: import, put, delete and read, each change signed
//! into the origin log and durable before it is acknowledged.
//!
//! This is plain library code: the gRPC services in `server` only convert.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use prost::Message;
use rayon::prelude::*;

use crate::config::{Config, ConfigError, KEY_FILE};
use crate::log::{self, Appender, KEYSET_SUBJECT};
use crate::proto::{log_entry::Body, DatasetRecord, Envelope, KeySet, LogEntry, Visibility};
use crate::record::{self, RecordError};
use crate::sign::{self, KeyRing, NodeKey, SignError, KEYSET_TYPE, RECORD_TYPE};
use crate::store::{RecordState, Store, StoreError};
use crate::sync::SyncState;
use crate::tls::{TlsError, TlsIdentity};
use crate::trust::{TrustError, TrustStore};

pub mod indexer;

/// Directory of the store inside the data directory.
pub const STORE_DIR: &str = "store";

/// Why a node operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Input that breaks a rule, naming the field.
    #[error("{0}")]
    Invalid(#[from] RecordError),
    /// No such record visible to the caller.
    #[error("no record {id} of {origin}")]
    NotFound { origin: String, id: String },
    /// A page token that this node did not hand out.
    #[error("page_token: not a token from this node")]
    BadPageToken,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored entry failed verification or the key could not be used.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The TLS key or certificate is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The trust store failed or refused the change.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The data directory is missing a part.
    #[error("{path}: {message}")]
    DataDir { path: PathBuf, message: String },
}

pub use crate::search::Viewer;

/// A record as read back: the payload and the envelope it was verified from.
#[derive(Debug, Clone)]
pub struct RecordView {
    pub record: DatasetRecord,
    pub envelope: Envelope,
    pub log_index: u64,
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

/// Held while an import stream runs; see [`Node::import_guard`].
pub struct ImportGuard {
    node: Arc<Node>,
}

impl Drop for ImportGuard {
    fn drop(&mut self) {
        self.node
            .imports_active
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.node.changed();
    }
}

/// A page of records.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub records: Vec<RecordView>,
    pub next_page_token: Option<String>,
}

/// Largest page a list call returns.
pub const MAX_PAGE: usize = 1000;

/// A running node: configuration, keys, store, trust store and replication state.
pub struct Node {
    config: Config,
    data_dir: PathBuf,
    key: NodeKey,
    ring: KeyRing,
    tls: TlsIdentity,
    store: Store,
    trust: TrustStore,
    frozen: sled::Tree,
    sync: SyncState,
    /// The address peers dial, known once the listener is bound.
    endpoint: std::sync::OnceLock<String>,
    /// Bumped after every committed change of any log.
    changes: tokio::sync::watch::Sender<u64>,
    /// Serialises appends to this node's own log.
    writer: Mutex<()>,
    /// The search index, replaced whole by a rebuild.
    index: std::sync::RwLock<Arc<crate::index::HoldingsIndex>>,
    index_dir: Mutex<PathBuf>,
    /// Serialises index writers (catch-up, rebuild, removals).
    index_writer: Mutex<()>,
    /// Import streams in progress.
    imports_active: std::sync::atomic::AtomicUsize,
}

impl Node {
    /// Creates a node in `data_dir`: the directory (mode 0700), the
    /// configuration, the identity key (0600), the TLS key and certificate.
    /// Refuses to overwrite an existing node.
    pub fn create(
        data_dir: &Path,
        node_id: &str,
        listen: std::net::SocketAddr,
    ) -> Result<sign::KeyId, NodeError> {
        use std::os::unix::fs::PermissionsExt;
        let dir_error = |message: String| NodeError::DataDir {
            path: data_dir.to_owned(),
            message,
        };
        crate::config::validate_node_id(node_id)
            .map_err(|reason| dir_error(format!("node id: {reason}")))?;
        for existing in [crate::config::CONFIG_FILE, KEY_FILE] {
            if data_dir.join(existing).exists() {
                return Err(dir_error(format!(
                    "{existing} already exists: this directory holds a node; refusing to overwrite it"
                )));
            }
        }
        std::fs::create_dir_all(data_dir).map_err(|e| dir_error(e.to_string()))?;
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| dir_error(e.to_string()))?;
        let key = NodeKey::generate();
        key.save(&data_dir.join(KEY_FILE))?;
        TlsIdentity::create(data_dir, node_id)?;
        let config = Config::new(node_id, listen);
        std::fs::write(data_dir.join(crate::config::CONFIG_FILE), config.to_toml())
            .map_err(|e| dir_error(e.to_string()))?;
        // The store is made by the first `open`. Opening it here too would
        // race that open: sled lets go of its file lock only some time after
        // the database is dropped, so `create` then `open` in one process
        // (the demo, tests) failed now and then with "could not acquire lock".
        Ok(key.key_id().clone())
    }

    /// This node's invitation: what a peer's operator needs to pin it.
    pub fn invite(&self) -> crate::trust::Invite {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        crate::trust::Invite {
            node_id: self.node_id().to_owned(),
            endpoint: self.endpoint(),
            key: b64.encode(self.key.public().ed25519),
            key_id: self.key.key_id().to_string(),
            tls_key: b64.encode(self.tls.spki()),
        }
    }

    /// Opens the node in `data_dir` (made by `meridian init`).
    pub fn open(data_dir: &Path, env: &BTreeMap<String, String>) -> Result<Arc<Self>, NodeError> {
        let config = Config::load(data_dir, env)?;
        let key = NodeKey::load(&data_dir.join(KEY_FILE))?;
        let ring = KeyRing::new(&config.node_id, &[key.verifying_key()], 1)?;
        let tls = TlsIdentity::load(data_dir)?;
        let store = Store::open(&data_dir.join(STORE_DIR))?;
        let trust = TrustStore::open(store.db(), &config.node_id)?;
        let frozen = store
            .db()
            .open_tree("frozen_origins_v1")
            .map_err(StoreError::from)?;
        let (index, index_dir) = indexer::open_index(data_dir)?;
        let node = Self {
            config,
            data_dir: data_dir.to_owned(),
            key,
            ring,
            tls,
            store,
            trust,
            frozen,
            sync: SyncState::default(),
            endpoint: std::sync::OnceLock::new(),
            changes: tokio::sync::watch::channel(0).0,
            writer: Mutex::new(()),
            index: std::sync::RwLock::new(Arc::new(index)),
            index_dir: Mutex::new(index_dir),
            index_writer: Mutex::new(()),
            imports_active: Default::default(),
        };
        node.publish_key_set()?;
        Ok(Arc::new(node))
    }

    /// A new log starts with the node's key set (identity key and the TLS
    /// key it vouches for), so peers can check the binding from the log.
    fn publish_key_set(&self) -> Result<(), NodeError> {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if self.store.log_size(self.node_id())? > 0 {
            return Ok(());
        }
        let mut appender = Appender::begin(&self.store, self.node_id())?;
        let entry = LogEntry {
            origin: self.node_id().to_owned(),
            index: appender.next_index(),
            body: Some(Body::KeySet(self.key_set())),
        };
        let payload = entry.encode_to_vec();
        let leaf = log::entry_leaf(self.node_id(), KEYSET_SUBJECT, &payload);
        let envelope = self.key.sign(KEYSET_TYPE, payload).encode_to_vec();
        appender.push(envelope, leaf, None)?;
        self.store.commit(&appender.finish())?;
        self.store.flush()?;
        log::checkpoint(&self.store, &self.key, self.node_id())?;
        Ok(())
    }

    /// This node's key set: one identity key, threshold 1, its TLS key.
    pub fn key_set(&self) -> KeySet {
        KeySet {
            origin: self.node_id().to_owned(),
            version: 1,
            keys: vec![self.key.public()],
            threshold: 1,
            expires: String::new(),
            tls_keys: vec![self.tls.spki().to_vec()],
        }
    }

    /// The viewer of this node's operator: sees everything held here.
    pub fn operator(&self) -> Viewer {
        Viewer::Operator {
            node: self.node_id().to_owned(),
        }
    }

    pub fn ring(&self) -> &KeyRing {
        &self.ring
    }

    /// The keys `origin`'s entries verify against: this node's own, or the
    /// identity key pinned for the peer. `None` for an origin whose peer was
    /// revoked or is unknown: its entries are quarantined (not served).
    pub fn origin_ring(&self, origin: &str) -> Result<Option<KeyRing>, NodeError> {
        if origin == self.node_id() {
            return Ok(Some(self.ring.clone()));
        }
        match self.trust.get(origin)? {
            Some(peer) if peer.state != crate::trust::PeerState::Revoked => {
                Ok(Some(peer.key_ring()?))
            }
            _ => Ok(None),
        }
    }

    pub fn tls(&self) -> &TlsIdentity {
        &self.tls
    }

    pub fn trust(&self) -> &TrustStore {
        &self.trust
    }

    pub fn sync_state(&self) -> &SyncState {
        &self.sync
    }

    /// Records the address peers dial (the bound listener).
    pub fn set_endpoint(&self, endpoint: String) {
        let _ = self.endpoint.set(endpoint);
    }

    /// The address peers dial.
    pub fn endpoint(&self) -> String {
        self.endpoint
            .get()
            .cloned()
            .unwrap_or_else(|| self.config.listen.to_string())
    }

    /// Subscribes to change notifications (the value grows on every commit).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Tells subscribers (indexer, hints) that a log grew.
    pub fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// Whether `origin` is frozen after evidence of equivocation.
    pub fn is_frozen(&self, origin: &str) -> Result<bool, StoreError> {
        Ok(self.frozen.contains_key(origin.as_bytes())?)
    }

    /// Freezes `origin`, keeping the conflicting checkpoint as evidence, and
    /// alerts the operator.
    pub fn freeze(&self, origin: &str, reason: &str, evidence: &[u8]) -> Result<(), StoreError> {
        tracing::error!(target: "audit", origin, reason, "equivocation: origin frozen");
        let mut value = reason.as_bytes().to_vec();
        value.push(0);
        value.extend_from_slice(evidence);
        self.frozen.insert(origin.as_bytes(), value)?;
        self.store.flush()?;
        Ok(())
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    pub fn key(&self) -> &NodeKey {
        &self.key
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

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
        let appender = Appender::begin(&self.store, self.node_id())?;
        // The latest state of each id this chunk touches, so an id repeated
        // within the chunk sees its own earlier line.
        let mut touched: HashMap<String, (RecordState, DatasetRecord)> = HashMap::new();
        let mut planned: Vec<(DatasetRecord, RecordState)> = Vec::with_capacity(records.len());
        for mut record in records {
            let previous = match touched.get(&record.id) {
                Some((state, old)) => Some((*state, old.clone())),
                None => self.current(&record.id)?,
            };
            let index = appender.next_index() + planned.len() as u64;
            let Some(state) = plan_version(&mut record, previous, index) else {
                outcome.unchanged += 1;
                continue;
            };
            touched.insert(record.id.clone(), (state, record.clone()));
            planned.push((record, state));
        }
        self.append_records(appender, planned, &mut outcome)?;
        Ok(outcome)
    }

    /// Counts an import stream in progress: indexing waits for it to end,
    /// so a bulk load gets the cores and the index catches up after.
    pub fn import_guard(self: &Arc<Self>) -> ImportGuard {
        self.imports_active
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        ImportGuard { node: self.clone() }
    }

    /// Whether an import stream is in progress.
    pub fn importing(&self) -> bool {
        self.imports_active
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
    }

    /// Withdraws record `id` with a signed tombstone. Returns the tombstone's
    /// version and log index.
    pub fn delete(&self, id: &str) -> Result<(u64, u64), NodeError> {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let Some((state, old)) = self.current(id)? else {
            return Err(self.not_found(id));
        };
        if state.deleted {
            return Err(self.not_found(id));
        }
        let appender = Appender::begin(&self.store, self.node_id())?;
        let index = appender.next_index();
        let tombstone = DatasetRecord {
            origin: self.node_id().to_owned(),
            id: id.to_owned(),
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
        let mut outcome = ImportOutcome::default();
        self.append_records(appender, vec![(tombstone, new_state)], &mut outcome)?;
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
        let state = self.store.record_state(origin, id)?.ok_or_else(not_found)?;
        let view = self.read_entry(origin, state.log_index)?;
        if state.deleted || !viewer.may_see(&view.record) {
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
                .store
                .list_records(origin, after.as_deref(), page_size)?;
            let exhausted = batch.len() < page_size;
            for (id, state) in batch {
                after = Some(id);
                if state.deleted && !include_deleted {
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
            self.store.log_size(self.node_id())?,
            self.store.count_live(self.node_id())?,
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
        record.origin = self.node_id().to_owned();
        if record.visibility == Visibility::Unspecified as i32 {
            record.visibility = self.config.default_visibility() as i32;
        }
        Ok(record)
    }

    /// The stored state and content of this node's record `id`.
    fn current(&self, id: &str) -> Result<Option<(RecordState, DatasetRecord)>, NodeError> {
        let Some(state) = self.store.record_state(self.node_id(), id)? else {
            return Ok(None);
        };
        let view = self.read_entry(self.node_id(), state.log_index)?;
        Ok(Some((state, view.record)))
    }

    /// Signs the planned records in parallel, appends them in one
    /// transaction, flushes, then signs a checkpoint over the new log.
    fn append_records(
        &self,
        mut appender: Appender<'_>,
        planned: Vec<(DatasetRecord, RecordState)>,
        outcome: &mut ImportOutcome,
    ) -> Result<(), NodeError> {
        let origin = self.node_id();
        let started = std::time::Instant::now();
        let signed: Vec<(Vec<u8>, crate::merkle::Hash, String, RecordState)> = planned
            .into_par_iter()
            .map(|(record, state)| {
                let id = record.id.clone();
                let entry = LogEntry {
                    origin: origin.to_owned(),
                    index: state.log_index,
                    body: Some(Body::Record(record)),
                };
                let payload = entry.encode_to_vec();
                let leaf = log::entry_leaf(origin, &id, &payload);
                let envelope = self.key.sign(RECORD_TYPE, payload.clone()).encode_to_vec();
                (envelope, leaf, id, state)
            })
            .collect();
        let signed_at = started.elapsed();
        for (envelope, leaf, id, state) in signed {
            appender.push(envelope, leaf, Some((id, state)))?;
            outcome.stored += 1;
        }
        let merkle_at = started.elapsed();
        if !appender.is_empty() {
            self.store.commit(&appender.finish())?;
            let committed_at = started.elapsed();
            self.store.flush()?;
            let flushed_at = started.elapsed();
            log::checkpoint(&self.store, &self.key, origin)?;
            self.changed();
            tracing::debug!(
                entries = outcome.stored,
                sign_us = signed_at.as_micros() as u64,
                merkle_us = (merkle_at - signed_at).as_micros() as u64,
                commit_us = (committed_at - merkle_at).as_micros() as u64,
                flush_us = (flushed_at - committed_at).as_micros() as u64,
                checkpoint_us = (started.elapsed() - flushed_at).as_micros() as u64,
                "appended"
            );
        }
        outcome.log_size = self.store.log_size(origin)?;
        Ok(())
    }

    /// Reads and verifies entry `index` of `origin`'s log.
    fn read_entry(&self, origin: &str, index: u64) -> Result<RecordView, NodeError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            tree: "log_entries",
            detail,
        };
        let bytes = self
            .store
            .entry(origin, index)?
            .ok_or_else(|| corrupt(format!("{origin} entry {index} missing")))?;
        let envelope = Envelope::decode(bytes.as_slice())
            .map_err(|e| corrupt(format!("{origin} entry {index}: {e}")))?;
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
            origin: self.node_id().to_owned(),
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
    index: u64,
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
