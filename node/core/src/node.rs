//! A node's parts, opened from its data directory: configuration, keys,
//! store, trust store and search index. What a node does with them lives in
//! the modules named for it: [`crate::holdings`] (its own records),
//! [`crate::indexer`], [`crate::sync`], [`crate::search`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::certificate::{PublicIdentity, TlsError, TlsIdentity};
use crate::config::{Config, ConfigError, KEY_FILE};
use prost::Message;
use rayon::prelude::*;

use crate::ids::NodeId;
use crate::index::{IndexError, LiveIndex};
use crate::log::{self, Appender, SignedEntry, UnsignedEntry};
use crate::metrics::Metrics;
use crate::proto::{KeySet, Visibility};
use crate::query::cursor::CursorKey;
use crate::record::RecordError;
use crate::sign::{self, KeyRing, NodeKey, SignError};
use crate::store::{OriginNodes, Store, StoreError};
use crate::trust::{Invite, PeerState, TrustError, TrustStore};
use crate::visibility::Viewer;

/// Directory of the store inside the data directory.
pub const STORE_DIR: &str = "store";
/// Directory of the index generations inside the data directory.
pub const INDEX_DIR: &str = "index";
/// In a data directory: the node was restored from a backup and is
/// recovering its own log from its peers ([`crate::backup`]).
pub const RECOVERY_FILE: &str = "recovering";

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
    /// A log size to wait for that this node's log has not reached.
    #[error("log_size: {requested} is beyond this node's log ({size} entries)")]
    BeyondLog { requested: u64, size: u64 },
    /// A page token that this node did not hand out.
    #[error("page_token: not a token from this node")]
    BadPageToken,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The search index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
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
    /// The node was restored from a backup and has not yet pulled its own
    /// log back from its peers: an entry signed now could take an index a
    /// peer already holds a different entry at (a fork of its own log).
    #[error(
        "this node was restored from a backup and is recovering its own log from its peers; \
         it appends nothing of its own until then (see `meridian status`; \
         `meridian finish-recovery` ends it once no peer holds more)"
    )]
    Recovering,
}

/// A node: configuration, keys, store, trust store and search index.
pub struct Node {
    config: Config,
    data_dir: PathBuf,
    key: NodeKey,
    ring: KeyRing,
    tls: TlsIdentity,
    store: Store,
    trust: TrustStore,
    index: LiveIndex,
    /// The address peers dial, known once the listener is bound.
    endpoint: OnceLock<String>,
    /// Bumped after every committed change of any log.
    changes: tokio::sync::watch::Sender<u64>,
    /// Bumped after every index commit and generation switch.
    indexed: tokio::sync::watch::Sender<u64>,
    /// Serialises appends to this node's own log.
    pub(crate) writer: Mutex<()>,
    /// Import streams in progress.
    imports_active: AtomicUsize,
    /// Seals the search cursors this node hands out.
    cursor_key: CursorKey,
    /// What the node counts as it works.
    metrics: Metrics,
    /// Restored from a backup, still pulling its own log back from its
    /// peers ([`RECOVERY_FILE`]).
    recovering: std::sync::atomic::AtomicBool,
}

/// Held while an import stream runs; see [`Node::import_guard`].
pub struct ImportGuard {
    node: Arc<Node>,
}

impl Drop for ImportGuard {
    fn drop(&mut self) {
        self.node.imports_active.fetch_sub(1, Ordering::SeqCst);
        self.node.changed();
    }
}

impl Node {
    /// Creates a node in `data_dir`: the directory (mode 0700), the
    /// configuration, the identity key (0600), the TLS key and certificate.
    /// Refuses to overwrite an existing node.
    pub fn create(
        data_dir: &Path,
        node_id: &NodeId,
        listen: std::net::SocketAddr,
    ) -> Result<sign::KeyId, NodeError> {
        Self::create_with(data_dir, Config::new(node_id, listen))
    }

    /// [`Node::create`] with a configuration of the caller's.
    pub fn create_with(data_dir: &Path, config: Config) -> Result<sign::KeyId, NodeError> {
        use std::os::unix::fs::PermissionsExt;
        let node_id = &config.node_id;
        let dir_error = |message: String| NodeError::DataDir {
            path: data_dir.to_owned(),
            message,
        };
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
        if config.tls.public_cert.is_none() {
            PublicIdentity::create(
                data_dir,
                node_id,
                &PublicIdentity::default_names(config.listen),
            )?;
        }
        std::fs::write(data_dir.join(crate::config::CONFIG_FILE), config.to_toml())
            .map_err(|e| dir_error(e.to_string()))?;
        // The store is made by the first `open`. Opening it here too would
        // race that open: sled lets go of its file lock only some time after
        // the database is dropped, so `create` then `open` in one process
        // (the demo, tests) failed now and then with "could not acquire lock".
        Ok(key.key_id().clone())
    }

    /// Opens the node in `data_dir` (made by `meridian init`). A new log
    /// starts with the node's key set; what a crash can leave behind is set
    /// right: a log ahead of its checkpoint gets one, an index ahead of the
    /// store is rebuilt, index generations a rebuild left unfinished are
    /// removed.
    pub fn open(data_dir: &Path, env: &BTreeMap<String, String>) -> Result<Arc<Self>, NodeError> {
        let node = Self::open_as_is(data_dir, env)?;
        node.publish_key_set()?;
        node.checkpoint_own_log()?;
        node.reconcile_index()?;
        node.live_index().remove_abandoned();
        Ok(node)
    }

    /// Opens the node in `data_dir` and changes nothing in it: for `fsck`,
    /// which must see the data directory as a crash left it.
    pub fn open_as_is(
        data_dir: &Path,
        env: &BTreeMap<String, String>,
    ) -> Result<Arc<Self>, NodeError> {
        let config = Config::load(data_dir, env)?;
        let key = NodeKey::load(&data_dir.join(KEY_FILE))?;
        let ring = KeyRing::new(&config.node_id, &[key.verifying_key()], 1)?;
        let tls = TlsIdentity::load(data_dir)?;
        let (public_cert, _) = config.public_identity_paths(data_dir);
        if config.tls.public_cert.is_none() && !public_cert.exists() {
            // A data directory made before public certificates existed.
            PublicIdentity::create(
                data_dir,
                &config.node_id,
                &PublicIdentity::default_names(config.listen),
            )?;
        }
        let store = Store::open(&data_dir.join(STORE_DIR))?;
        store.index_subjects(config.node_id.as_str())?;
        let trust = TrustStore::open(&store, &config.node_id)?;
        let index = LiveIndex::open(&data_dir.join(INDEX_DIR))?;
        let cursor_key = CursorKey::new(key.derive_secret("search cursor"));
        let node = Self {
            config,
            data_dir: data_dir.to_owned(),
            cursor_key,
            key,
            ring,
            tls,
            store,
            trust,
            index,
            endpoint: OnceLock::new(),
            changes: tokio::sync::watch::channel(0).0,
            indexed: tokio::sync::watch::channel(0).0,
            writer: Mutex::new(()),
            imports_active: AtomicUsize::new(0),
            metrics: Metrics::default(),
            recovering: data_dir.join(RECOVERY_FILE).exists().into(),
        };
        Ok(Arc::new(node))
    }

    /// Signs a checkpoint over this node's whole log if the last one covers
    /// less of it: a crash between an append and its checkpoint leaves the
    /// log ahead, and peers pull only what a checkpoint covers.
    pub(crate) fn checkpoint_own_log(&self) -> Result<bool, NodeError> {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let origin = self.node_id();
        let size = self.store.log_size(origin)?;
        let signed = match self.store.checkpoint(origin)? {
            Some(bytes) => crate::proto::Envelope::decode(bytes.as_slice())
                .ok()
                .and_then(|envelope| sign::open_checkpoint(&envelope, &self.ring).ok())
                .map(|(checkpoint, _)| checkpoint.size),
            None => None,
        };
        match signed {
            Some(signed) if signed == size => return Ok(false),
            Some(signed) if signed > size => {
                // Never re-sign a shorter log: peers hold the longer one.
                tracing::error!(
                    signed,
                    size,
                    "own log is shorter than its last checkpoint; run `meridian fsck`"
                );
                return Ok(false);
            }
            _ => {}
        }
        if size == 0 {
            return Ok(false);
        }
        let root = self.store.log_root(origin, size)?;
        let checkpoint = log::sign_checkpoint(&self.key, origin, size, root);
        self.store
            .put_checkpoint(origin, &checkpoint.encode_to_vec())?;
        self.store.flush()?;
        tracing::warn!(
            signed = signed.unwrap_or(0),
            size,
            "own log was ahead of its last checkpoint; signed a new one"
        );
        Ok(true)
    }

    /// This node's invitation: what a peer's operator needs to pin it.
    pub fn invite(&self) -> Invite {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        Invite {
            node_id: self.node_id().clone(),
            endpoint: self.endpoint(),
            key: b64.encode(self.key.public().ed25519),
            key_id: self.key.key_id().to_string(),
            tls_key: b64.encode(self.tls.spki()),
        }
    }

    /// This node's key set: one identity key, threshold 1, its TLS key.
    pub fn key_set(&self) -> KeySet {
        KeySet {
            origin: self.node_id().to_string(),
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
            node: self.node_id().clone(),
        }
    }

    /// The keys this node's own entries verify against.
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
            Some(peer) if peer.state != PeerState::Revoked => Ok(Some(peer.key_ring()?)),
            _ => Ok(None),
        }
    }

    /// Whether this node serves and indexes `origin`'s records: its own, or
    /// a pinned peer's that is not revoked (quarantined origins answer as
    /// missing). [`Node::origin_ring`] without parsing the keys.
    pub fn holds_origin(&self, origin: &str) -> Result<bool, NodeError> {
        if origin == self.node_id() {
            return Ok(true);
        }
        Ok(matches!(self.trust.get(origin)?, Some(peer) if peer.state != PeerState::Revoked))
    }

    /// Visibility of an imported record that names none.
    pub fn default_visibility(&self) -> Visibility {
        self.config.default_visibility()
    }

    pub fn tls(&self) -> &TlsIdentity {
        &self.tls
    }

    /// The certificate public clients see, read from its files now (the
    /// edge reloads it on SIGHUP).
    pub fn public_identity(&self) -> Result<PublicIdentity, TlsError> {
        let (cert, key) = self.config.public_identity_paths(&self.data_dir);
        PublicIdentity::load(&cert, &key)
    }

    /// Seals and opens the search cursors handed to clients.
    pub fn cursor_key(&self) -> &CursorKey {
        &self.cursor_key
    }

    pub fn trust(&self) -> &TrustStore {
        &self.trust
    }

    /// The search index in use and its writer lock.
    pub fn live_index(&self) -> &LiveIndex {
        &self.index
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

    /// Tells those waiting for the index that it advanced.
    pub(crate) fn index_advanced(&self) {
        self.indexed.send_modify(|n| *n += 1);
    }

    /// A receiver that sees every later [`Node::index_advanced`].
    pub(crate) fn index_progress(&self) -> tokio::sync::watch::Receiver<u64> {
        self.indexed.subscribe()
    }

    /// Counts an import stream in progress: indexing waits for it to end,
    /// so a bulk load gets the cores and the index catches up after.
    pub fn import_guard(self: &Arc<Self>) -> ImportGuard {
        self.imports_active.fetch_add(1, Ordering::SeqCst);
        ImportGuard { node: self.clone() }
    }

    /// Whether an import stream is in progress.
    pub fn importing(&self) -> bool {
        self.imports_active.load(Ordering::SeqCst) > 0
    }

    /// Starts a new log with this node's key set, so peers can check the
    /// binding of its keys from the log itself.
    fn publish_key_set(&self) -> Result<(), NodeError> {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if self.recovering() || self.store.log_size(self.node_id())? > 0 {
            return Ok(());
        }
        let appender = self.store.appender(self.node_id())?;
        self.append_own(appender, vec![UnsignedEntry::key_set(self.key_set())])?;
        Ok(())
    }

    /// Signs entries of this node's own log in parallel, appends them in one
    /// transaction, flushes, then signs a checkpoint over the new log, and
    /// tells subscribers. Returns the log size. Call with `writer` held, on
    /// an appender begun under it.
    pub(crate) fn append_own(
        &self,
        mut appender: Appender<OriginNodes<'_>>,
        entries: Vec<UnsignedEntry>,
    ) -> Result<u64, NodeError> {
        if self.recovering() {
            return Err(NodeError::Recovering);
        }
        let origin = self.node_id();
        let first = appender.next_index();
        let started = std::time::Instant::now();
        let signed: Vec<SignedEntry> = entries
            .into_par_iter()
            .enumerate()
            .map(|(offset, entry)| log::sign_entry(&self.key, origin, first + offset as u64, entry))
            .collect();
        let signed_at = started.elapsed();
        for (entry, leaf, state) in signed {
            appender
                .push(&entry, leaf, state)
                .map_err(StoreError::from)?;
        }
        let merkle_at = started.elapsed();
        if appender.is_empty() {
            return Ok(self.store.log_size(origin)?);
        }
        let root = appender.root().map_err(StoreError::from)?;
        let append = appender.finish();
        let size = append.new_size();
        self.store.commit(&append)?;
        let committed_at = started.elapsed();
        self.store.flush()?;
        let flushed_at = started.elapsed();
        let checkpoint = log::sign_checkpoint(&self.key, origin, size, root);
        self.store
            .put_checkpoint(origin, &checkpoint.encode_to_vec())?;
        self.changed();
        tracing::debug!(
            entries = append.entries.len(),
            sign_us = signed_at.as_micros() as u64,
            merkle_us = (merkle_at - signed_at).as_micros() as u64,
            commit_us = (committed_at - merkle_at).as_micros() as u64,
            flush_us = (flushed_at - committed_at).as_micros() as u64,
            checkpoint_us = (started.elapsed() - flushed_at).as_micros() as u64,
            "appended"
        );
        Ok(size)
    }

    /// Whether the node was restored from a backup and is still pulling
    /// its own log back from its peers: it appends nothing of its own.
    pub fn recovering(&self) -> bool {
        self.recovering.load(Ordering::SeqCst)
    }

    /// Ends the recovery of a restored node: it appends its own entries
    /// again after the last one it holds. Returns whether it was
    /// recovering.
    pub fn finish_recovery(&self) -> Result<bool, NodeError> {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if !self.recovering() {
            return Ok(false);
        }
        let marker = self.data_dir.join(RECOVERY_FILE);
        let dir_error = |e: std::io::Error| NodeError::DataDir {
            path: marker.clone(),
            message: e.to_string(),
        };
        match std::fs::remove_file(&marker) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(dir_error(e)),
        }
        std::fs::File::open(&self.data_dir)
            .and_then(|d| d.sync_all())
            .map_err(dir_error)?;
        self.recovering.store(false, Ordering::SeqCst);
        tracing::warn!(
            log_size = self.store.log_size(self.node_id())?,
            "recovery ended: this node appends its own entries again"
        );
        Ok(true)
    }

    /// Freezes `origin` after evidence of equivocation, keeping the
    /// conflicting checkpoint, and alerts the operator.
    pub fn freeze(&self, origin: &str, reason: &str, evidence: &[u8]) -> Result<(), StoreError> {
        tracing::error!(target: "audit", origin, reason, "equivocation: origin frozen");
        self.store.freeze(origin, reason, evidence)
    }

    /// The node's counters, for the places that count and for scrapes.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn node_id(&self) -> &NodeId {
        &self.config.node_id
    }

    pub fn key(&self) -> &NodeKey {
        &self.key
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

#[cfg(test)]
mod tests;
