//! A node's parts, opened from its data directory: configuration, keys,
//! store, trust store and search index. What a node does with them lives in
//! the modules named for it: [`crate::holdings`] (its own records),
//! [`crate::indexer`], [`crate::sync`], [`crate::search`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use crate::certificate::{self, PublicIdentity, TlsError, TlsIdentity};
use crate::config::{Config, ConfigError, KEY_FILE};
use prost::Message;
use rayon::prelude::*;

use crate::ids::{LogIndex, NodeId};
use crate::index::{IndexError, LiveIndex};
use crate::keyset::{self, KeyChain};
use crate::log::{self, Appender, SignedEntry, StoredEntry, UnsignedEntry, KEYSET_SUBJECT};
use crate::metrics::Metrics;
use crate::proto::{KeySet, Visibility};
use crate::query::cursor::CursorKey;
use crate::record::RecordError;
use crate::sign::{self, KeyId, NodeKey, SignError};
use crate::store::{OriginNodes, Store, StoreError};
use crate::trust::{Invite, Peer, PeerState, TrustError, TrustStore};
use crate::visibility::Viewer;

/// Directory of the store inside the data directory.
pub const STORE_DIR: &str = "store";
/// Directory of the index generations inside the data directory.
pub const INDEX_DIR: &str = "index";
/// In a data directory: the node was restored from a backup and is
/// recovering its own log from its peers ([`crate::backup`]).
pub const RECOVERY_FILE: &str = "recovering";
/// In a data directory while `meridian restore` writes it, removed as the
/// restore's last step: a restore cut short (killed, a full disk) leaves
/// a directory whose store may hold part of the backup, which no command
/// opens as a node ([`NodeError::RestoreUnfinished`]).
pub const RESTORE_UNFINISHED_FILE: &str = "restore-unfinished";
/// In a data directory: the root key, unless the operator keeps it
/// elsewhere (`meridian init --root-key FILE`).
pub const ROOT_KEY_FILE: &str = "root.key";
/// In a data directory: the first key set, signed by the root at `init`,
/// which the first start puts at entry 0 of the log.
pub const GENESIS_FILE: &str = "keyset-1.dsse";
/// In a data directory during a rotation: the new signing key, until the
/// key set that lists it is durable and it replaces the key file.
pub const NEXT_KEY_FILE: &str = "identity.key.next";

/// Refuses `data_dir` when a restore began writing it and did not finish
/// ([`RESTORE_UNFINISHED_FILE`]): its store may hold part of a backup. A
/// mark that is there but cannot be read still refuses; a directory that
/// cannot be looked into is left to what reads it next to name.
pub fn refuse_unfinished_restore(data_dir: &Path) -> Result<(), NodeError> {
    let mark = data_dir.join(RESTORE_UNFINISHED_FILE);
    match std::fs::symlink_metadata(&mark) {
        Err(_) => Ok(()),
        Ok(_) => Err(NodeError::RestoreUnfinished {
            path: data_dir.to_owned(),
            note: match std::fs::read_to_string(&mark) {
                Ok(note) => note.trim().to_owned(),
                Err(e) => format!("{}: {e}", mark.display()),
            },
        }),
    }
}

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
    /// A pinned peer presented a TLS key that may be its own, but its key
    /// chain does not verify from the root pinned for it (`source` says
    /// why): which TLS keys are its is unknown, so it is not identified
    /// until the chain verifies again.
    #[error(
        "{peer}: its key chain does not verify from the root pinned for it here, \
         so it is not identified until it does"
    )]
    PeerUnverified {
        peer: String,
        #[source]
        source: Box<NodeError>,
    },
    /// This node's audience cannot be published as its trust store stands.
    #[error(transparent)]
    Audience(#[from] crate::visibility::AudienceError),
    /// The data directory is missing a part.
    #[error("{path}: {message}")]
    DataDir { path: PathBuf, message: String },
    /// A key operation cannot be done; the message says why and what to do.
    #[error("keys: {0}")]
    Keys(String),
    /// A restore into the data directory began and did not finish.
    #[error(
        "{path}: a restore into this directory began and did not finish ({note}), so its store \
         may hold only part of the backup; remove the directory and run `meridian restore` again"
    )]
    RestoreUnfinished { path: PathBuf, note: String },
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
    /// The online signing key; replaced by a rotation.
    key: RwLock<Arc<NodeKey>>,
    /// The key sets of this node's own log.
    chain: RwLock<Arc<KeyChain>>,
    /// Verified key chains of other origins, with the key-set positions
    /// and pinned root they were built from.
    chains: Mutex<std::collections::HashMap<String, CachedChain>>,
    /// How many times a peer's key chain was built and verified.
    chain_builds: AtomicU64,
    /// How many times the TLS keys of a peer's stored key sets were read
    /// without verifying them ([`Node::tls_keys_of_unverified`]).
    unverified_reads: AtomicU64,
    /// Origins whose key set had expired at the last key upkeep
    /// ([`Node::stale_origins_at`]), for completeness reports.
    stale: RwLock<std::collections::BTreeSet<String>>,
    /// DOI prefixes claimed by more than one origin, as last logged
    /// ([`crate::search::Registrants::of`]).
    doi_conflicts: Mutex<std::collections::BTreeMap<String, Vec<String>>>,
    /// The signing key was read from [`NEXT_KEY_FILE`]: a rotation ended
    /// before it replaced the key file.
    key_pending_rename: bool,
    /// The TLS key and certificate in use; replaced by `keys switch-tls`.
    tls: RwLock<Arc<TlsIdentity>>,
    /// The next TLS key (`keys rotate --tls`): listed in the key set beside
    /// the one in use, so peers accept it before it is served.
    tls_next: RwLock<Option<Arc<TlsIdentity>>>,
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
    /// Quarantined records per origin, with the log size and key-set count
    /// they were counted at ([`crate::quarantine`]).
    pub(crate) quarantine_counts: Mutex<std::collections::HashMap<String, (u64, usize, u64)>>,
    /// The latest audience of each origin, with the log position it was
    /// read at ([`Node::audience`]).
    pub(crate) audiences: Mutex<audience::Cache>,
    /// Entries sync applied, decoded, for the indexer to take rather than
    /// read back ([`handoff::Handoff`]).
    pub(crate) handoff: handoff::Handoff,
    /// Names the state of the own log an import chunk was planned on: each
    /// append gives it a new value, except an import chunk committed as
    /// planned, which gives it the one the chunk planned after it expects
    /// ([`Node::import_step`]).
    pub(crate) own_head: AtomicU64,
    /// Where new values of `own_head` come from.
    pub(crate) heads: AtomicU64,
    /// Places for the searches run for others than the operator
    /// (`limits.searches`).
    search_slots: Arc<tokio::sync::Semaphore>,
}

/// What a new key set of this node changes.
enum KeyChange {
    /// A new signing key.
    Rotate,
    /// The same keys, a later expiry.
    Renew,
    /// Revokes a signing key from a log index on; with a new signing key
    /// when it is the one in use.
    Revoke {
        key_id: KeyId,
        from: u64,
        reason: String,
    },
    /// The same signing keys and a new TLS key, listed beside the one in
    /// use until `keys switch-tls`.
    StageTls,
    /// The same signing keys and a new root: `threshold` of `roots` sign
    /// the sets after this one (which both roots sign).
    Root { roots: Vec<NodeKey>, threshold: u32 },
}

/// A peer's key chain as last built: from which key-set positions and
/// pinned root, and the chain or why it did not verify (with when that was
/// found, so that a chain that does not verify is built again at most every
/// [`BROKEN_CHAIN_RECHECK`], not on every request of the peer).
struct CachedChain {
    positions: Vec<u64>,
    root: [u8; 32],
    built: Result<Arc<KeyChain>, Refusal>,
}

/// Why a peer's key chain did not verify, when that was found, and the
/// TLS keys its stored sets list, read without verifying them (each
/// handshake while the chain is refused asks for them:
/// [`Node::tls_keys_of_unverified`]).
struct Refusal {
    error: SignError,
    at: std::time::Instant,
    listed: ListedKeys,
}

/// TLS keys a peer's stored key sets list, read without verifying them.
type ListedKeys = Arc<[Vec<u8>]>;

impl Refusal {
    /// The error and the listed keys [`Node::chain_or_refusal`] answers.
    fn answer(&self) -> (NodeError, Option<ListedKeys>) {
        (
            NodeError::Sign(self.error.clone()),
            Some(self.listed.clone()),
        )
    }
}

/// The TLS keys `peer`'s verified `chain` lists in its current set; before
/// any key set of the peer is held, the key its invitation named.
fn tls_keys_in(chain: &KeyChain, peer: &Peer) -> Vec<Vec<u8>> {
    match chain.latest() {
        Some(link) => link.set.tls_keys.clone(),
        None => peer.tls_keys.clone(),
    }
}

/// How long a key chain that did not verify is taken as still broken while
/// neither its key sets nor its pin change.
const BROKEN_CHAIN_RECHECK: std::time::Duration = std::time::Duration::from_secs(30);

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

    /// [`Node::create`] with a configuration of the caller's; the root key
    /// goes into the data directory.
    pub fn create_with(data_dir: &Path, config: Config) -> Result<sign::KeyId, NodeError> {
        Self::create_with_root(data_dir, config, &[], 1, keyset::DEFAULT_EXPIRY_DAYS)
    }

    /// [`Node::create_with`], writing one root key to each of `root_files`
    /// (which must not exist) when given, so the operators can keep them
    /// offline, apart, with `root_threshold` of them needed to sign a key
    /// set; and signing the first key set to expire in `expires_days`.
    /// Without root files the one root key goes into the data directory.
    pub fn create_with_root(
        data_dir: &Path,
        config: Config,
        root_files: &[PathBuf],
        root_threshold: u32,
        expires_days: u32,
    ) -> Result<sign::KeyId, NodeError> {
        check_expiry_days(expires_days)?;
        check_root_threshold(root_threshold, root_files.len().max(1))?;
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
        let key = NodeKey::generate();
        let root_paths = if root_files.is_empty() {
            vec![data_dir.join(ROOT_KEY_FILE)]
        } else {
            root_files.to_vec()
        };
        if let Some(taken) = root_paths.iter().find(|path| path.exists()) {
            return Err(NodeError::Keys(format!(
                "{}: already exists; a root key is never overwritten",
                taken.display()
            )));
        }
        // Once nothing refuses the init: a refused one leaves the
        // directory as it was.
        std::fs::create_dir_all(data_dir).map_err(|e| dir_error(e.to_string()))?;
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| dir_error(e.to_string()))?;
        let roots: Vec<NodeKey> = root_paths.iter().map(|_| NodeKey::generate()).collect();
        for (root, path) in roots.iter().zip(&root_paths) {
            root.save(path)?;
        }
        key.save(&data_dir.join(KEY_FILE))?;
        let tls = TlsIdentity::create(data_dir, node_id)?;
        let first = keyset::key_set(
            node_id.as_str(),
            1,
            &[&key],
            &roots.iter().map(NodeKey::public).collect::<Vec<_>>(),
            root_threshold,
            keyset::expiry_after(keyset::now_unix(), expires_days),
            vec![tls.spki().to_vec()],
        );
        let genesis = keyset::sign_key_set(
            &roots.iter().collect::<Vec<_>>(),
            node_id.as_str(),
            0,
            first,
        );
        write_durably(&data_dir.join(GENESIS_FILE), &genesis.encode_to_vec())
            .map_err(|e| dir_error(format!("{GENESIS_FILE}: {e}")))?;
        if config.tls.public_cert.is_none() {
            PublicIdentity::create(
                data_dir,
                node_id,
                &PublicIdentity::default_names(config.listen),
            )?;
        }
        // Last, whole or not at all: a crash before it leaves a directory
        // `init` names as taken (its key exists), never one whose
        // configuration is cut short.
        write_replacing(
            &data_dir.join(crate::config::CONFIG_FILE),
            config.to_toml().as_bytes(),
        )
        .map_err(|e| dir_error(format!("{}: {e}", crate::config::CONFIG_FILE)))?;
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
        // Before anything is appended: an append could bring the log back
        // up to an index cursor that a crash left past it, and the index
        // would then keep what the store lost.
        node.reconcile_index()?;
        node.publish_key_set()?;
        node.finish_key_rename()?;
        // A trust store whose audience cannot be published (one stored by
        // a release that did not check first) keeps the audience in force,
        // which grants no more than it did: the node starts all the same.
        match node.publish_audience() {
            Ok(_) => {}
            Err(e @ (NodeError::Audience(_) | NodeError::Keys(_))) => {
                tracing::error!(error = %e, "this node's audience could not be published");
            }
            Err(e) => return Err(e),
        }
        node.checkpoint_own_log()?;
        // Renewal and the stale count only log what fails: a node whose
        // root is elsewhere still starts.
        node.key_upkeep();
        node.warn_if_tls_key_unlisted();
        node.live_index().remove_abandoned();
        Ok(node)
    }

    /// Opens the node in `data_dir` and changes nothing in it: for `fsck`,
    /// which must see the data directory as a crash left it.
    pub fn open_as_is(
        data_dir: &Path,
        env: &BTreeMap<String, String>,
    ) -> Result<Arc<Self>, NodeError> {
        refuse_unfinished_restore(data_dir)?;
        let config = Config::load(data_dir, env)?;
        let key = NodeKey::load(&data_dir.join(KEY_FILE))?;
        let tls = TlsIdentity::load(data_dir)?;
        let tls_next = TlsIdentity::load_next(data_dir)?;
        let (public_cert, _) = config.public_identity_paths(data_dir);
        if config.tls.public_cert.is_none() && !public_cert.exists() {
            // A data directory made before public certificates existed.
            PublicIdentity::create(
                data_dir,
                &config.node_id,
                &PublicIdentity::default_names(config.listen),
            )?;
        }
        let store = Store::open_with_cache(&data_dir.join(STORE_DIR), config.store.cache_bytes())?;
        store.index_subjects(config.node_id.as_str())?;
        let trust = TrustStore::open(&store, &config.node_id)?;
        let chain = build_chain(&store, config.node_id.as_str(), None)?;
        let (key, key_pending_rename) = current_signing_key(data_dir, &chain, key)?;
        let index = LiveIndex::open(&data_dir.join(INDEX_DIR))?;
        let cursor_key = CursorKey::new(key.derive_secret("search cursor"));
        let search_slots = Arc::new(tokio::sync::Semaphore::new(config.limits.searches));
        let node = Self {
            config,
            data_dir: data_dir.to_owned(),
            cursor_key,
            key: RwLock::new(Arc::new(key)),
            chain: RwLock::new(Arc::new(chain)),
            chains: Mutex::default(),
            chain_builds: AtomicU64::new(0),
            unverified_reads: AtomicU64::new(0),
            stale: RwLock::default(),
            doi_conflicts: Mutex::default(),
            key_pending_rename,
            tls: RwLock::new(Arc::new(tls)),
            tls_next: RwLock::new(tls_next.map(Arc::new)),
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
            quarantine_counts: Mutex::default(),
            audiences: Mutex::default(),
            handoff: handoff::Handoff::default(),
            own_head: AtomicU64::new(0),
            heads: AtomicU64::new(0),
            search_slots,
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
        let stored = self.store.checkpoint(origin)?;
        let signed = stored
            .as_deref()
            .and_then(|bytes| crate::proto::Envelope::decode(bytes).ok())
            .and_then(|envelope| self.own_chain().open_checkpoint(&envelope).ok())
            .map(|checkpoint| checkpoint.size);
        // A checkpoint that no longer verifies still says how long a log
        // this node may have published: damage that broke it may have cut
        // the log too.
        let claimed = stored
            .as_deref()
            .and_then(log::stored_checkpoint)
            .map(|checkpoint| checkpoint.size);
        if signed == Some(size) {
            return Ok(false);
        }
        // A broken checkpoint over the whole log is signed again; one over
        // more than the log never is.
        // (A checkpoint that verifies claims what it signs.)
        if let Some(signed) = claimed.filter(|signed| *signed > size) {
            // Never re-sign a shorter log: peers hold the longer one.
            tracing::error!(
                signed,
                size,
                "own log is shorter than its last checkpoint; run `meridian fsck`"
            );
            return Ok(false);
        }
        if size == 0 {
            return Ok(false);
        }
        let root = self.store.log_root(origin, size)?;
        let checkpoint = log::sign_checkpoint(&self.key(), origin, size, root);
        self.store
            .put_checkpoint(origin, &checkpoint.encode_to_vec())?;
        self.store.flush()?;
        tracing::warn!(
            signed = claimed.unwrap_or(0),
            size,
            "own log was ahead of its last checkpoint; signed a new one"
        );
        Ok(true)
    }

    /// This node's invitation: what a peer's operator needs to pin it. Its
    /// key is the root of the node's first key set, which peers pin (for a
    /// node made before root keys, its identity key).
    pub fn invite(&self) -> Invite {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let chain = self.own_chain();
        let root = chain
            .links()
            .first()
            .map(|first| {
                if first.set.root_keys.is_empty() {
                    first.set.keys[0].clone()
                } else {
                    first.set.root_keys[0].clone()
                }
            })
            .unwrap_or_else(|| self.key().public());
        Invite {
            node_id: self.node_id().clone(),
            endpoint: self.endpoint(),
            key: b64.encode(&root.ed25519),
            key_id: root.key_id,
            tls_key: b64.encode(self.tls().spki()),
        }
    }

    /// The legacy first key set, for a data directory made before root
    /// keys: one identity key, root and signing key at once, threshold 1,
    /// no expiry, its TLS key.
    fn legacy_key_set(&self) -> KeySet {
        KeySet {
            origin: self.node_id().to_string(),
            version: 1,
            keys: vec![self.key().public()],
            threshold: 1,
            expires: String::new(),
            tls_keys: self.listed_tls_keys(),
            ..KeySet::default()
        }
    }

    /// The viewer of this node's operator: sees everything held here.
    pub fn operator(&self) -> Viewer {
        Viewer::Operator {
            node: self.node_id().clone(),
        }
    }

    /// The key sets of this node's own log.
    pub fn own_chain(&self) -> Arc<KeyChain> {
        self.chain.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The key sets `origin`'s entries verify against: this node's own, or
    /// the chain stored for the peer, verified from the root pinned for it.
    /// `None` for an origin whose peer was revoked or is unknown: its
    /// entries are quarantined (not served).
    pub fn origin_keys(&self, origin: &str) -> Result<Option<Arc<KeyChain>>, NodeError> {
        if origin == self.node_id() {
            return Ok(Some(self.own_chain()));
        }
        match self.trust.get(origin)? {
            Some(peer) if peer.state != PeerState::Revoked => Ok(Some(self.peer_chain(&peer)?)),
            _ => Ok(None),
        }
    }

    /// The key chain `origin`'s records are served under to anyone but the
    /// operator: none for a quarantined origin, and none for one whose chain
    /// does not verify from its pinned root. Which of that origin's records
    /// a revocation quarantines is unknown until the chain verifies, so none
    /// is served meanwhile, and they answer exactly as missing ones (the
    /// holdings' reads, OAI-PMH): a caller cannot tell which origins this
    /// node holds. Why the chain does not verify is handed to `unverified`,
    /// for the caller to say at its own level (per request, or once per
    /// listing); any other error is returned. The operator reads under
    /// [`Node::origin_keys`] and is told why.
    pub fn served_keys(
        &self,
        origin: &str,
        unverified: impl FnOnce(&SignError),
    ) -> Result<Option<Arc<KeyChain>>, NodeError> {
        match self.origin_keys(origin) {
            Err(NodeError::Sign(e)) => {
                unverified(&e);
                Ok(None)
            }
            other => other,
        }
    }

    /// The stored chain of `peer`'s log, verified from the root pinned for
    /// it; rebuilt only when a key set was added since or the pin changed.
    /// A chain that does not verify is refused with the same error, without
    /// being built again, for [`BROKEN_CHAIN_RECHECK`]. The pinned key is
    /// parsed and vetted only when the chain is built (vetting costs tens
    /// of microseconds, and every request of a peer looks its chain up).
    pub fn peer_chain(&self, peer: &Peer) -> Result<Arc<KeyChain>, NodeError> {
        self.chain_or_refusal(peer).map_err(|(error, _)| error)
    }

    /// Forgets the chain built for `origin`, so that the next use builds
    /// it again from the store: a stored key-set entry was put in place of
    /// another at the same position, which the cache does not see.
    pub(crate) fn forget_chain(&self, origin: &str) {
        self.chains
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(origin);
    }

    /// [`Node::peer_chain`], and with a chain that does not verify, the TLS
    /// keys its stored sets list, read without verifying them (kept with
    /// the refusal: [`Refusal`]); none with any other error.
    fn chain_or_refusal(
        &self,
        peer: &Peer,
    ) -> Result<Arc<KeyChain>, (NodeError, Option<ListedKeys>)> {
        let origin = peer.node_id.as_str();
        let positions = self
            .store
            .key_set_positions(origin)
            .map_err(|e| (e.into(), None))?;
        let mut cache = self.chains.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cached) = cache.get(origin) {
            if cached.positions == positions && cached.root[..] == peer.identity_key[..] {
                match &cached.built {
                    Ok(chain) => return Ok(chain.clone()),
                    Err(refused) if refused.at.elapsed() < BROKEN_CHAIN_RECHECK => {
                        return Err(refused.answer());
                    }
                    Err(_) => {}
                }
            }
        }
        let pinned = peer.pinned_root().map_err(|e| (e.into(), None))?;
        self.chain_builds.fetch_add(1, Ordering::Relaxed);
        let built = match build_chain(&self.store, origin, Some(pinned)) {
            Ok(chain) => Ok(Arc::new(chain)),
            Err(NodeError::Sign(error)) => Err(Refusal {
                error,
                at: std::time::Instant::now(),
                listed: self.stored_tls_keys(origin, &positions).into(),
            }),
            // A store that failed to read is not a chain that does not
            // verify: asked again next time.
            Err(other) => return Err((other, None)),
        };
        let answer = match &built {
            Ok(chain) => Ok(chain.clone()),
            Err(refused) => Err(refused.answer()),
        };
        cache.insert(
            origin.to_owned(),
            CachedChain {
                positions,
                root: pinned.to_bytes(),
                built,
            },
        );
        answer
    }

    /// How many times a peer's key chain was built and verified so far.
    #[cfg(test)]
    pub(crate) fn chain_builds(&self) -> u64 {
        self.chain_builds.load(Ordering::Relaxed)
    }

    /// How many times the stored key sets of a peer were read for the TLS
    /// keys they list, without verifying them, so far.
    #[cfg(test)]
    pub(crate) fn unverified_reads(&self) -> u64 {
        self.unverified_reads.load(Ordering::Relaxed)
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

    /// The TLS key and certificate this node presents to peers now.
    pub fn tls(&self) -> Arc<TlsIdentity> {
        self.tls.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The next TLS key, while a TLS key rotation is under way.
    pub fn tls_next(&self) -> Option<Arc<TlsIdentity>> {
        self.tls_next
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The TLS keys this node's next key set lists: the one in use, and the
    /// next one while a rotation is under way.
    fn listed_tls_keys(&self) -> Vec<Vec<u8>> {
        let mut keys = vec![self.tls().spki().to_vec()];
        keys.extend(self.tls_next().map(|next| next.spki().to_vec()));
        keys
    }

    /// Warns when the TLS key in use is not in this node's current key set
    /// (a data directory restored with an older key): peers refuse it.
    fn warn_if_tls_key_unlisted(&self) {
        let chain = self.own_chain();
        let Some(latest) = chain.latest() else {
            return;
        };
        let tls = self.tls();
        if !latest.set.tls_keys.iter().any(|k| k == tls.spki()) {
            tracing::warn!(
                tls_key = %certificate::tls_key_id(tls.spki()),
                key_set = latest.set.version,
                "the TLS key in use is not listed in this node's current key set: peers will \
                 refuse it; restore the TLS key the set lists, or list this one with \
                 `meridian keys renew`"
            );
        }
    }

    /// The TLS keys this node accepts in `peer`'s certificate: those its
    /// current key set lists, as verified here from the root pinned for it
    /// (DESIGN §5), so a TLS key rotation needs no re-pinning. Before any
    /// key set of the peer is held, the key its invitation named.
    pub fn peer_tls_keys(&self, peer: &Peer) -> Result<Vec<Vec<u8>>, NodeError> {
        Ok(tls_keys_in(&*self.peer_chain(peer)?, peer))
    }

    /// Pins a peer from its invitation, in `groups`, unless a key of the
    /// invitation is another peer's as this node judges keys in a
    /// handshake ([`Node::peer_by_tls_key`]): pinned for it, listed in the
    /// current key set it holds of it, or, while its key chain does not
    /// verify, listed in any of its stored sets. A TLS key that a peer's
    /// rotated set lists but no pin names would otherwise be pinned for the
    /// newcomer too, and every handshake with it refused as ambiguous.
    pub fn pin(&self, invite: &Invite, groups: &[String]) -> Result<Peer, NodeError> {
        // Checked and stored as one under the writer, so that two pins at
        // once cannot each pass the bound that together they break.
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.check_audience_with(invite.node_id.as_str(), groups)?;
        Ok(self
            .trust
            .add_unless_held(invite, groups, &|peer| self.tls_keys_judged(peer))?)
    }

    /// Every TLS key this node takes as `peer`'s in a handshake: those its
    /// verified chain lists ([`Node::peer_tls_keys`]); while the chain does
    /// not verify, every key that could be its
    /// ([`Node::tls_keys_of_unverified`]).
    fn tls_keys_judged(&self, peer: &Peer) -> Vec<Vec<u8>> {
        match self.chain_or_refusal(peer) {
            Ok(chain) => tls_keys_in(&chain, peer),
            Err((_, listed)) => self.tls_keys_of_unverified(peer, listed),
        }
    }

    /// The pinned peer, in any state, whose current TLS keys
    /// ([`Node::peer_tls_keys`]) include `spki`; an error when more than one
    /// lists it (never the first match).
    ///
    /// A peer whose key chain does not verify from its pinned root is never
    /// identified, and it holds up no other peer: a key that could be its
    /// own and no other peer's is refused with [`NodeError::PeerUnverified`],
    /// naming it and why, and the other peers' keys are judged as usual.
    ///
    /// For the rule that a key listed for two peers is refused for both,
    /// the unverified peer lists every key that could be its
    /// ([`Node::tls_keys_of_unverified`]), not only those pinned for it: its
    /// chain may list others, which cannot be checked against the rule
    /// while it does not verify. Refused, such a key costs only a peer
    /// whose key the unverified peer's stored sets name; taken as the other
    /// peer's, it could let the unverified peer, were it to hold the key,
    /// be served as the other. No other key is refused on its account, so
    /// one broken chain does not take the other peers off the federation.
    pub fn peer_by_tls_key(&self, spki: &[u8]) -> Result<Option<Peer>, NodeError> {
        let mut found = Vec::new();
        let mut unverified = None;
        for peer in self.trust.list()? {
            match self.chain_or_refusal(&peer) {
                Ok(chain) => {
                    if tls_keys_in(&chain, &peer).iter().any(|k| k == spki) {
                        found.push(peer);
                    }
                }
                Err((e, listed)) => {
                    if self
                        .tls_keys_of_unverified(&peer, listed)
                        .iter()
                        .any(|k| k == spki)
                    {
                        unverified = Some((peer.node_id.to_string(), e));
                        found.push(peer);
                    }
                }
            }
        }
        if found.len() > 1 {
            let names: Vec<&str> = found.iter().map(|p| p.node_id.as_str()).collect();
            return Err(TrustError::AmbiguousKey(names.join(", ")).into());
        }
        if let Some((peer, e)) = unverified {
            return Err(NodeError::PeerUnverified {
                peer,
                source: Box::new(e),
            });
        }
        Ok(found.pop())
    }

    /// Every TLS key that could be `peer`'s while its key chain does not
    /// verify: those pinned for it (which need no chain) and those any of
    /// its stored key sets lists, read without verifying them. Only ever
    /// used to refuse a key, never to accept one. `listed`: what the
    /// stored sets list as kept with the chain's refusal
    /// ([`Node::chain_or_refusal`]); read here when there is none (the
    /// chain could not be built for another reason).
    fn tls_keys_of_unverified(&self, peer: &Peer, listed: Option<ListedKeys>) -> Vec<Vec<u8>> {
        let listed = listed.unwrap_or_else(|| {
            let origin = peer.node_id.as_str();
            let positions = self.store.key_set_positions(origin).unwrap_or_default();
            self.stored_tls_keys(origin, &positions).into()
        });
        let mut keys = peer.tls_keys.clone();
        keys.extend(listed.iter().cloned());
        keys
    }

    /// The TLS keys the key sets stored at `positions` of `origin`'s log
    /// list, read without verifying them. A stored set that cannot be read
    /// adds nothing: what it lists is unknown to this node.
    fn stored_tls_keys(&self, origin: &str, positions: &[u64]) -> Vec<Vec<u8>> {
        use crate::proto::{log_entry::Body, LogEntry};
        self.unverified_reads.fetch_add(1, Ordering::Relaxed);
        let mut keys = Vec::new();
        for &index in positions {
            let Ok(Some(stored)) = self.store.entry(origin, LogIndex(index)) else {
                continue;
            };
            if let Ok(Some(LogEntry {
                body: Some(Body::KeySet(set)),
                ..
            })) = stored.entry()
            {
                keys.extend(set.tls_keys);
            }
        }
        keys
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
        let genesis_path = self.data_dir.join(GENESIS_FILE);
        match std::fs::read(&genesis_path) {
            Ok(bytes) => {
                let dir_error = |message: String| NodeError::DataDir {
                    path: genesis_path.clone(),
                    message,
                };
                let envelope = crate::proto::Envelope::decode(bytes.as_slice())
                    .map_err(|e| dir_error(e.to_string()))?;
                let mut chain = KeyChain::new(self.node_id().as_str(), None);
                chain
                    .extend(0, &envelope, keyset::now_unix())
                    .map_err(|e| dir_error(e.to_string()))?;
                let leaf = log::entry_leaf(self.node_id(), KEYSET_SUBJECT, &envelope.payload);
                let key = self.key();
                self.commit_own(
                    appender,
                    vec![(StoredEntry::Signed(envelope), leaf, None)],
                    &key,
                )?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A data directory made before root keys: its identity key
                // is root and signing key (docs/decisions/key-sets.md).
                self.append_own(
                    appender,
                    vec![UnsignedEntry::key_set(self.legacy_key_set())],
                )?;
            }
            Err(e) => {
                return Err(NodeError::DataDir {
                    path: genesis_path,
                    message: e.to_string(),
                })
            }
        }
        self.reload_own_chain()?;
        Ok(())
    }

    fn reload_own_chain(&self) -> Result<Arc<KeyChain>, NodeError> {
        let chain = Arc::new(build_chain(&self.store, self.node_id().as_str(), None)?);
        *self.chain.write().unwrap_or_else(|p| p.into_inner()) = chain.clone();
        Ok(chain)
    }

    /// Ends a rotation that stopped after its key set was durable: the new
    /// signing key replaces the key file.
    fn finish_key_rename(&self) -> Result<(), NodeError> {
        if !self.key_pending_rename {
            return Ok(());
        }
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        replace_key_file(&self.data_dir)?;
        tracing::warn!("a key rotation was finished at start: the new signing key is in place");
        Ok(())
    }

    /// Appends a renewed key set (same keys, a new expiry) when the current
    /// one expires within [`keyset::RENEW_WITHIN_DAYS`] and the root is in
    /// the data directory; warns when the root is not at hand.
    pub fn renew_keys_if_due(&self) -> Result<bool, NodeError> {
        if self.recovering() || !self.own_chain().renewal_due(keyset::now_unix()) {
            return Ok(false);
        }
        if !self.data_dir.join(ROOT_KEY_FILE).exists() {
            tracing::warn!(
                expires = %self.own_chain().latest().map(|l| l.set.expires.clone()).unwrap_or_default(),
                "key set expires soon and the root key is not in the data directory; \
                 run `meridian keys renew --root-key FILE`"
            );
            return Ok(false);
        }
        self.rotate_keys(Vec::new(), true, keyset::DEFAULT_EXPIRY_DAYS)?;
        Ok(true)
    }

    /// The DOI prefixes the configuration declares, sorted, once each: what
    /// this node's next key set publishes.
    fn declared_doi_prefixes(&self) -> Vec<String> {
        let prefixes: std::collections::BTreeSet<&String> =
            self.config.doi_prefixes.iter().collect();
        prefixes.into_iter().cloned().collect()
    }

    /// Appends a key set (same keys, a new expiry) that publishes the
    /// configured `doi_prefixes` when they differ from the current set's
    /// and the root is in the data directory; warns when it is not.
    pub fn publish_doi_prefixes_if_changed(&self) -> Result<bool, NodeError> {
        let declared = self.declared_doi_prefixes();
        let published = self
            .own_chain()
            .latest()
            .map(|l| l.set.doi_prefixes.clone())
            .unwrap_or_default();
        if self.recovering() || declared == published {
            return Ok(false);
        }
        if !self.data_dir.join(ROOT_KEY_FILE).exists() {
            tracing::warn!(
                declared = ?declared,
                published = ?published,
                "doi_prefixes differ from the key set's and the root key is not in the data directory; \
                 run `meridian keys renew --root-key FILE` to publish them"
            );
            return Ok(false);
        }
        self.rotate_keys(Vec::new(), true, keyset::DEFAULT_EXPIRY_DAYS)?;
        tracing::info!(doi_prefixes = ?declared, "doi prefixes published in a new key set");
        Ok(true)
    }

    /// Periodic key upkeep: renews this node's key set when it is due, or
    /// when the configured DOI prefixes changed, then counts the origins
    /// whose key set expired ([`Node::stale_origins_at`]).
    pub fn key_upkeep(&self) {
        if let Err(e) = self.renew_keys_if_due() {
            tracing::error!(error = %e, "cannot renew this node's key set");
        }
        if let Err(e) = self.publish_doi_prefixes_if_changed() {
            tracing::error!(error = %e, "cannot publish this node's doi prefixes");
        }
        if let Err(e) = self.stale_origins_at(keyset::now_unix()) {
            tracing::error!(error = %e, "cannot read the origins' key sets");
        }
        if let Err(e) = self.quarantine_counts() {
            tracing::error!(error = %e, "cannot count quarantined records");
        }
    }

    /// The origins held here (this node included) whose current key set
    /// expired at `now`, with when: they stay searchable, are flagged in
    /// `peers status` and counted in the `keys_stale_origins` gauge, and
    /// are never taken as freshly vouched for. An origin whose key chain
    /// does not verify from its pin is not vouched for either: it is not
    /// listed (it has no expiry to show), but [`Node::is_stale`] says so
    /// until the chain verifies again.
    pub fn stale_origins_at(&self, now: i64) -> Result<Vec<(String, String)>, NodeError> {
        let mut stale = Vec::new();
        let mut unverified = Vec::new();
        for (origin, _) in self.store.origins()? {
            match self.origin_keys(&origin) {
                Ok(Some(chain)) => {
                    if let Some(expired) = chain.expired(now) {
                        stale.push((origin, expired));
                    }
                }
                // Revoked or unknown: not served at all.
                Ok(None) => {}
                // Named by the indexer and by sync, which stop at it.
                Err(_) => unverified.push(origin),
            }
        }
        self.metrics.keys_stale_origins.set(stale.len() as i64);
        let mut held = self.stale.write().unwrap_or_else(|p| p.into_inner());
        // Said once when an origin turns stale, not at every round after.
        for (origin, expired) in stale.iter().filter(|(o, _)| !held.contains(o)) {
            tracing::warn!(origin = %origin, expired = %expired, "key set expired: origin is stale");
        }
        *held = stale
            .iter()
            .map(|(origin, _)| origin.clone())
            .chain(unverified)
            .collect();
        drop(held);
        Ok(stale)
    }

    /// Logs the DOI prefixes more than one origin claims, once each time
    /// the set of conflicts changes: their DOIs fall back to the oldest
    /// signed copy.
    pub(crate) fn note_doi_conflicts(
        &self,
        conflicts: std::collections::BTreeMap<String, Vec<String>>,
    ) {
        let mut said = self.doi_conflicts.lock().unwrap_or_else(|p| p.into_inner());
        if *said == conflicts {
            return;
        }
        for (prefix, claimants) in conflicts.iter().filter(|(p, c)| said.get(*p) != Some(*c)) {
            tracing::warn!(
                prefix = %prefix,
                claimants = ?claimants,
                "doi prefix claimed by several origins: none is its registrant, the oldest signed copy of its dois is authoritative"
            );
        }
        *said = conflicts;
    }

    /// Whether `origin`'s key set had expired, or its key chain did not
    /// verify, at the last key upkeep (at start and after every sync round).
    pub fn is_stale(&self, origin: &str) -> bool {
        self.stale
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(origin)
    }

    /// Appends key set N+1 to this node's log, signed by `roots` (or by the
    /// root in the data directory, or, for a node made before root keys, by
    /// its identity key): a new signing key, or with `keep_signing_key` the
    /// same keys with a new expiry. The new key is durable before the set
    /// is, and replaces the key file once the set is. Audited.
    pub fn rotate_keys(
        &self,
        roots: Vec<NodeKey>,
        keep_signing_key: bool,
        expires_days: u32,
    ) -> Result<Arc<KeyChain>, NodeError> {
        let change = if keep_signing_key {
            KeyChange::Renew
        } else {
            KeyChange::Rotate
        };
        self.change_keys(roots, change, expires_days)
    }

    /// Appends key set N+1 with a new root: `threshold` of `new_roots` sign
    /// the sets after it. Signed by `roots` (a threshold of the current
    /// root, as for [`Node::rotate_keys`]) and by every new root key, as
    /// peers require (DESIGN §5); the signing keys stay. Peers follow with
    /// no re-pinning. When the current root was the data directory's, the
    /// one new root key takes its place there (with several, none does:
    /// renewals then need `--root-key`). Audited.
    pub fn rotate_root(
        &self,
        roots: Vec<NodeKey>,
        new_roots: Vec<NodeKey>,
        threshold: u32,
        expires_days: u32,
    ) -> Result<Arc<KeyChain>, NodeError> {
        self.change_keys(
            roots,
            KeyChange::Root {
                roots: new_roots,
                threshold,
            },
            expires_days,
        )
    }

    /// Puts the one new root key in the data directory in place of the old
    /// one (or, for several, removes the old one: it signs nothing now).
    fn replace_data_dir_root(&self, new_roots: &[NodeKey]) -> Result<(), NodeError> {
        let root_path = self.data_dir.join(ROOT_KEY_FILE);
        let staged = self.data_dir.join(format!("{ROOT_KEY_FILE}.new"));
        let file_error = |path: &Path, e: std::io::Error| NodeError::DataDir {
            path: path.to_owned(),
            message: e.to_string(),
        };
        match new_roots {
            [one] => {
                let _ = std::fs::remove_file(&staged);
                one.save(&staged)?;
                std::fs::rename(&staged, &root_path).map_err(|e| file_error(&root_path, e))?;
            }
            _ => {
                std::fs::remove_file(&root_path).map_err(|e| file_error(&root_path, e))?;
                tracing::warn!(
                    "the root is now several keys: the data directory keeps none; \
                     renew the key set with `meridian keys renew --root-key FILE …`"
                );
            }
        }
        // The rename or removal survives a crash.
        std::fs::File::open(&self.data_dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| file_error(&self.data_dir, e))?;
        Ok(())
    }

    /// Appends key set N+1, signed by `roots` as for [`Node::rotate_keys`],
    /// that lists a new TLS key beside the one in use (the same signing
    /// keys). Peers accept the new key once they hold the set;
    /// [`Node::switch_tls`] then makes it the key served. Audited.
    pub fn rotate_tls(
        &self,
        roots: Vec<NodeKey>,
        expires_days: u32,
    ) -> Result<Arc<KeyChain>, NodeError> {
        self.change_keys(roots, KeyChange::StageTls, expires_days)
    }

    /// Makes a new next TLS key for [`Node::rotate_tls`]; refused while a
    /// next key the current set lists waits for its switch.
    fn stage_tls(&self, latest: &keyset::Link) -> Result<Arc<TlsIdentity>, NodeError> {
        if let Some(next) = self.tls_next() {
            if latest.set.tls_keys.iter().any(|k| k == next.spki()) {
                return Err(NodeError::Keys(format!(
                    "the next TLS key {} is listed in key set {} already; \
                     run `meridian keys switch-tls` before another TLS rotation",
                    certificate::tls_key_id(next.spki()),
                    latest.set.version
                )));
            }
        }
        let next = Arc::new(TlsIdentity::create_next(
            &self.data_dir,
            self.node_id().as_str(),
        )?);
        *self.tls_next.write().unwrap_or_else(|p| p.into_inner()) = Some(next.clone());
        Ok(next)
    }

    /// The next TLS key and the log position of the first key set that
    /// lists it (a peer accepts the key once its copy of this node's log
    /// is longer); refused when there is none or the current set does not
    /// list it (peers would refuse it).
    pub fn next_tls_key(&self) -> Result<(Arc<TlsIdentity>, u64), NodeError> {
        let next = self.tls_next().ok_or_else(|| {
            NodeError::Keys("no next TLS key: run `meridian keys rotate --tls` first".into())
        })?;
        let chain = self.own_chain();
        let lists = |link: &&keyset::Link| link.set.tls_keys.iter().any(|k| k == next.spki());
        match chain.latest() {
            Some(latest) if lists(&latest) => {}
            _ => {
                return Err(NodeError::Keys(format!(
                    "the next TLS key {} is not listed in the current key set: peers would \
                     refuse it; run `meridian keys rotate --tls` to list a new one",
                    certificate::tls_key_id(next.spki()),
                )))
            }
        }
        let listed_at = chain
            .links()
            .iter()
            .find(lists)
            .map_or(0, |link| link.index);
        Ok((next, listed_at))
    }

    /// Serves the next TLS key from now on (new connections, as server and
    /// as client): it must be listed in the current key set, so every peer
    /// holding that set accepts it. The key it replaces stays listed until
    /// the next key set (`keys renew` drops it at once). Audited.
    pub fn switch_tls(&self) -> Result<Arc<TlsIdentity>, NodeError> {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.next_tls_key()?;
        let before = self.tls();
        let switched = Arc::new(TlsIdentity::switch_to_next(&self.data_dir)?);
        *self.tls.write().unwrap_or_else(|p| p.into_inner()) = switched.clone();
        *self.tls_next.write().unwrap_or_else(|p| p.into_inner()) = None;
        self.trust.record(
            "keys-switch-tls",
            self.node_id(),
            &format!(
                "TLS key {} in use, was {}; the current key set lists both until the next one",
                certificate::tls_key_id(switched.spki()),
                certificate::tls_key_id(before.spki()),
            ),
        )?;
        Ok(switched)
    }

    /// Appends key set N+1 that revokes signing key `key_id` from log index
    /// `from` on (docs/decisions/key-sets.md), signed by `roots` as for
    /// [`Node::rotate_keys`]. When `key_id` is the key in use, the set
    /// drops it for a new signing key. The entries it signed from `from` on
    /// are quarantined here at once and at every peer once it pulls the
    /// set, until `keys resign` gives their records new versions. Audited.
    pub fn revoke_key(
        &self,
        roots: Vec<NodeKey>,
        key_id: KeyId,
        from: u64,
        reason: String,
        expires_days: u32,
    ) -> Result<Arc<KeyChain>, NodeError> {
        let chain = self.change_keys(
            roots,
            KeyChange::Revoke {
                key_id,
                from,
                reason,
            },
            expires_days,
        )?;
        // The gauge says at once what this node now holds back.
        self.quarantine_counts()?;
        // An audience the revoked key signed no longer counts: the trust
        // store's is signed again with the key now in use.
        self.publish_audience()?;
        Ok(chain)
    }

    /// Appends key set N+1 making `change`; see [`Node::rotate_keys`].
    fn change_keys(
        &self,
        roots: Vec<NodeKey>,
        change: KeyChange,
        expires_days: u32,
    ) -> Result<Arc<KeyChain>, NodeError> {
        let expires_days = if expires_days == 0 {
            keyset::DEFAULT_EXPIRY_DAYS
        } else {
            expires_days
        };
        check_expiry_days(expires_days)?;
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if self.recovering() {
            return Err(NodeError::Recovering);
        }
        // Read from the store, not the chain held: the next set follows
        // the last one stored, whichever way it came.
        let chain = self.reload_own_chain()?;
        let latest = chain
            .latest()
            .ok_or_else(|| NodeError::Keys("this node's log holds no key set yet".into()))?;
        let current = self.key();
        let keep_signing_key = match &change {
            KeyChange::Renew | KeyChange::StageTls | KeyChange::Root { .. } => true,
            KeyChange::Rotate => false,
            // A retired key is revoked without a new signing key.
            KeyChange::Revoke { key_id, .. } => latest.signing().key(key_id).is_none(),
        };
        if keep_signing_key && latest.signing().key(current.key_id()).is_none() {
            // A set that kept it would bring back a key the node's own log
            // retired (this one came from a backup older than that).
            return Err(NodeError::Keys(format!(
                "this node's signing key {} is not in its key set {}, and a new set that kept \
                 it would bring it back: rotate the signing key first (`meridian keys rotate`)",
                current.key_id(),
                latest.set.version
            )));
        }
        if let KeyChange::Revoke { key_id, .. } = &change {
            // The root the next set keeps: its own, or its signing keys.
            let root = if latest.set.root_keys.is_empty() {
                &latest.set.keys
            } else {
                &latest.set.root_keys
            };
            if root.iter().any(|k| k.key_id == key_id.as_str()) {
                return Err(NodeError::Keys(format!(
                    "{key_id} is also a root key of this node, and a revoked key must not \
                     sign the next key set: move the root first (`meridian keys rotate-root`, \
                     docs/operations/keys.md), then revoke it"
                )));
            }
        }
        let root_path = self.data_dir.join(ROOT_KEY_FILE);
        let mut roots = roots;
        let mut save_legacy_root = false;
        let mut root_in_data_dir = false;
        if roots.is_empty() {
            if root_path.exists() {
                root_in_data_dir = true;
                roots.push(NodeKey::load(&root_path)?);
            } else if latest.root().key(current.key_id()).is_some() {
                // The identity key of a node made before root keys is its
                // root: it is kept as the root key file before the key file
                // gets the new signing key.
                roots.push(NodeKey::from_seed(&current.seed()));
                save_legacy_root = !keep_signing_key;
            } else {
                return Err(NodeError::Keys(format!(
                    "no root key given and none in {}; pass --root-key FILE",
                    root_path.display()
                )));
            }
        }
        // A root named by its file that is the data directory's all the
        // same is the data directory's: a new root replaces it there.
        if !root_in_data_dir && root_path.exists() {
            let here = NodeKey::load(&root_path)?;
            root_in_data_dir = roots.iter().any(|root| root.key_id() == here.key_id());
        }
        for root in &roots {
            if latest.root().key(root.key_id()).is_none() {
                return Err(NodeError::Keys(format!(
                    "{} is not a root key of key set {} (its root keys: {})",
                    root.key_id(),
                    latest.set.version,
                    latest
                        .root()
                        .key_ids()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let next_key_path = self.data_dir.join(NEXT_KEY_FILE);
        let signing = if keep_signing_key {
            current.clone()
        } else {
            match std::fs::remove_file(&next_key_path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(NodeError::DataDir {
                        path: next_key_path,
                        message: e.to_string(),
                    })
                }
            }
            let key = NodeKey::generate();
            key.save(&next_key_path)?;
            Arc::new(key)
        };
        if save_legacy_root {
            roots[0].save(&root_path)?;
        }
        let (root_keys, root_threshold) = match &change {
            KeyChange::Root {
                roots: new_roots,
                threshold,
            } => {
                check_root_threshold(*threshold, new_roots.len())?;
                (new_roots.iter().map(NodeKey::public).collect(), *threshold)
            }
            _ if latest.set.root_keys.is_empty() => (latest.set.keys.clone(), latest.set.threshold),
            _ => (latest.set.root_keys.clone(), latest.set.root_threshold),
        };
        let staged_tls = match &change {
            KeyChange::StageTls => Some(self.stage_tls(latest)?),
            _ => None,
        };
        let expires = keyset::expiry_after(keyset::now_unix(), expires_days);
        let mut set = keyset::key_set(
            self.node_id().as_str(),
            latest.set.version + 1,
            &[&signing],
            &root_keys,
            root_threshold,
            expires.clone(),
            self.listed_tls_keys(),
        );
        if let KeyChange::Revoke {
            key_id,
            from,
            reason,
        } = &change
        {
            set.revocations.push(crate::proto::Revocation {
                key_id: key_id.to_string(),
                from_index: *from,
                reason: reason.clone(),
            });
        }
        set.doi_prefixes = self.declared_doi_prefixes();
        let appender = self.store.appender(self.node_id())?;
        let index = appender.next_index();
        let mut root_refs: Vec<&NodeKey> = roots.iter().collect();
        if let KeyChange::Root {
            roots: new_roots, ..
        } = &change
        {
            // A new root accepts its office by signing the set too.
            for new_root in new_roots {
                if !root_refs.iter().any(|r| r.key_id() == new_root.key_id()) {
                    root_refs.push(new_root);
                }
            }
        }
        let envelope = keyset::sign_key_set(&root_refs, self.node_id().as_str(), index, set);
        // Checked as a peer will check it before anything is written.
        let mut next = (*chain).clone();
        next.extend(index, &envelope, keyset::now_unix())
            .inspect_err(|_| {
                // Nothing was written: the new keys are not needed.
                if !keep_signing_key {
                    let _ = std::fs::remove_file(&next_key_path);
                }
                if staged_tls.is_some() {
                    let _ = TlsIdentity::remove_next(&self.data_dir);
                    *self.tls_next.write().unwrap_or_else(|p| p.into_inner()) = None;
                }
            })
            .map_err(|e| match (&change, e) {
                // A revocation the chain refuses says why in its own words.
                (KeyChange::Revoke { .. }, SignError::KeySetPosition { message, .. }) => {
                    NodeError::Keys(format!("cannot revoke: {message}"))
                }
                (_, e) => NodeError::Keys(format!("the new key set would not verify: {e}")),
            })?;
        let leaf = log::entry_leaf(self.node_id(), KEYSET_SUBJECT, &envelope.payload);
        self.commit_own(
            appender,
            vec![(StoredEntry::Signed(envelope), leaf, None)],
            &signing,
        )?;
        // The set is durable: the node signs with its keys from now on,
        // whatever happens to the files below (a key file not yet replaced
        // is replaced at the next start).
        *self.key.write().unwrap_or_else(|p| p.into_inner()) = signing.clone();
        let chain = self.reload_own_chain()?;
        if !keep_signing_key {
            replace_key_file(&self.data_dir)?;
        }
        if let (
            KeyChange::Root {
                roots: new_roots, ..
            },
            true,
        ) = (&change, root_in_data_dir)
        {
            self.replace_data_dir_root(new_roots)?;
        }
        let (action, detail) = if let KeyChange::Revoke {
            key_id,
            from,
            reason,
        } = &change
        {
            (
                "keys-revoke",
                format!(
                    "key set {} at log index {index}: signing key {key_id} revoked from log index {from} \
                     ({reason}), {} in use, expires {expires}",
                    latest.set.version + 1,
                    signing.key_id()
                ),
            )
        } else if let KeyChange::Root {
            roots: new_roots,
            threshold,
        } = &change
        {
            let ids = |keys: Vec<String>| keys.join(", ");
            (
                "keys-rotate-root",
                format!(
                    "key set {} at log index {index}: root {threshold} of [{}] replaces {} of [{}], \
                     expires {expires}",
                    latest.set.version + 1,
                    ids(new_roots.iter().map(|k| k.key_id().to_string()).collect()),
                    latest.root().threshold(),
                    ids(latest.root().key_ids().map(ToString::to_string).collect()),
                ),
            )
        } else if let Some(next) = &staged_tls {
            (
                "keys-rotate-tls",
                format!(
                    "key set {} at log index {index}: next TLS key {} listed beside {} in use, expires {expires}",
                    latest.set.version + 1,
                    certificate::tls_key_id(next.spki()),
                    certificate::tls_key_id(self.tls().spki()),
                ),
            )
        } else if keep_signing_key {
            (
                "keys-renew",
                format!(
                    "key set {} at log index {index}: same signing key {}, expires {expires}",
                    latest.set.version + 1,
                    signing.key_id()
                ),
            )
        } else {
            (
                "keys-rotate",
                format!(
                    "key set {} at log index {index}: signing key {} retired, {} in use, expires {expires}",
                    latest.set.version + 1,
                    current.key_id(),
                    signing.key_id()
                ),
            )
        };
        self.trust.record(action, self.node_id(), &detail)?;
        Ok(chain)
    }

    /// Signs entries of this node's own log in parallel, appends them in one
    /// transaction, flushes, then signs a checkpoint over the new log, and
    /// tells subscribers. Returns the log size. Call with `writer` held, on
    /// an appender begun under it.
    pub(crate) fn append_own(
        &self,
        appender: Appender<OriginNodes<'_>>,
        entries: Vec<UnsignedEntry>,
    ) -> Result<u64, NodeError> {
        self.may_append()?;
        let key = self.key();
        let signed = self.sign_own(&key, appender.next_index(), entries);
        self.commit_own(appender, signed, &key)
    }

    /// A value of [`Node::own_head`] never given before.
    pub(crate) fn fresh_head(&self) -> u64 {
        self.heads.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Signs `entries` with `key` as this node's log entries from position
    /// `first` on, in parallel.
    pub(crate) fn sign_own(
        &self,
        key: &NodeKey,
        first: u64,
        entries: Vec<UnsignedEntry>,
    ) -> Vec<SignedEntry> {
        let origin = self.node_id();
        entries
            .into_par_iter()
            .enumerate()
            .map(|(offset, entry)| log::sign_entry(key, origin, first + offset as u64, entry))
            .collect()
    }

    /// Appends signed entries to this node's own log in one transaction,
    /// flushes, signs a checkpoint with `key` (the signing key governing
    /// the new size) and tells subscribers. Call with `writer` held.
    pub(crate) fn commit_own(
        &self,
        mut appender: Appender<OriginNodes<'_>>,
        signed: Vec<SignedEntry>,
        key: &NodeKey,
    ) -> Result<u64, NodeError> {
        let origin = self.node_id();
        let started = std::time::Instant::now();
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
        // Before anything is written: an append that fails half way has
        // moved the log as surely as one that lands.
        self.own_head.store(self.fresh_head(), Ordering::SeqCst);
        let root = appender.root().map_err(StoreError::from)?;
        let append = appender.finish();
        let size = append.new_size();
        self.store.commit(&append)?;
        let committed_at = started.elapsed();
        self.store.flush()?;
        let flushed_at = started.elapsed();
        let checkpoint = log::sign_checkpoint(key, origin, size, root);
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

    /// Whether this node may sign entries of its own log now: not while it
    /// recovers its log, and not with a signing key its current key set
    /// does not list (a backup restored from before a rotation brings the
    /// key it had then, and its peers hand back the set that retired it):
    /// every peer would refuse what it signed.
    pub(crate) fn may_append(&self) -> Result<(), NodeError> {
        if self.recovering() {
            return Err(NodeError::Recovering);
        }
        let key = self.key();
        let chain = self.own_chain();
        match chain.latest() {
            Some(latest) if latest.signing().key(key.key_id()).is_none() => {
                Err(NodeError::Keys(format!(
                    "this node's signing key {} is not in its key set {} (its signing keys: \
                     {}), so nothing it signed would be accepted; the key of that set is not \
                     here (a backup from before a rotation?): rotate the signing key with the \
                     root key (`meridian keys rotate`, docs/operations/keys.md)",
                    key.key_id(),
                    latest.set.version,
                    signing_key_ids(latest)
                )))
            }
            _ => Ok(()),
        }
    }

    /// Ends the recovery of a restored node: it appends its own entries
    /// again after the last one it holds. Returns whether it was
    /// recovering.
    pub fn finish_recovery(&self) -> Result<bool, NodeError> {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if !self.recovering() {
            return Ok(false);
        }
        // The key sets signed after the backup came back with the log: the
        // chain held since the start predates them, and the next renewal
        // or rotation must follow the last of them, as the signing must.
        let chain = self.reload_own_chain()?;
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
            key_set = chain.latest().map_or(0, |latest| latest.set.version),
            "recovery ended: this node appends its own entries again"
        );
        drop(_guard);
        if let Err(e) = self.may_append() {
            // Recovery is over all the same: the log is whole. What it
            // signs waits for the operator's rotation.
            tracing::error!(error = %e, "recovery ended, but this node cannot sign");
            return Ok(true);
        }
        // Trust changes made while recovering are published now.
        self.publish_audience()?;
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

    /// Places for the searches run for others than the operator: at most
    /// `limits.searches` at once, so that expensive queries cannot pile up
    /// on the blocking threads.
    pub fn search_slots(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.search_slots
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn node_id(&self) -> &NodeId {
        &self.config.node_id
    }

    /// The signing key in use now.
    pub fn key(&self) -> Arc<NodeKey> {
        self.key.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Builds the key chain of `origin` from the key-set entries stored for
/// it, verifying each link (from `pinned` for a peer).
pub(crate) fn build_chain(
    store: &Store,
    origin: &str,
    pinned: Option<ed25519_dalek::VerifyingKey>,
) -> Result<KeyChain, NodeError> {
    match walk_chain(store, origin, pinned)? {
        (chain, None) => Ok(chain),
        (_, Some(ChainBreak { error: Some(e), .. })) => Err(e.into()),
        (_, Some(ChainBreak { index, .. })) => Err(StoreError::Corrupt {
            tree: crate::store::tree::KEYSETS,
            detail: format!("{origin} entry {index} is not a stored key set"),
        }
        .into()),
    }
}

/// Where a stored key chain stops verifying: the first key-set position
/// whose entry does not extend the chain before it.
pub(crate) struct ChainBreak {
    pub index: u64,
    /// The entry stored there; `None` when it is no signed entry.
    pub stored: Option<crate::proto::Envelope>,
    /// Why it does not extend the chain; `None` with no signed entry.
    pub error: Option<SignError>,
}

/// `origin`'s key chain as far as its stored key sets verify, link by link
/// (from `pinned` for a peer), and where it stops, if it does.
pub(crate) fn walk_chain(
    store: &Store,
    origin: &str,
    pinned: Option<ed25519_dalek::VerifyingKey>,
) -> Result<(KeyChain, Option<ChainBreak>), StoreError> {
    let mut chain = KeyChain::new(origin, pinned);
    let now = keyset::now_unix();
    for index in store.key_set_positions(origin)? {
        let stored = match store.entry(origin, LogIndex(index))? {
            Some(StoredEntry::Signed(envelope)) => envelope,
            _ => {
                let broken = ChainBreak {
                    index,
                    stored: None,
                    error: None,
                };
                return Ok((chain, Some(broken)));
            }
        };
        // A set that does not verify leaves the chain as it was.
        if let Err(error) = chain.extend(index, &stored, now) {
            let broken = ChainBreak {
                index,
                stored: Some(stored),
                error: Some(error),
            };
            return Ok((chain, Some(broken)));
        }
    }
    Ok((chain, None))
}

/// The signing key to use: the key file's, if the current set lists it,
/// or the one a rotation left in [`NEXT_KEY_FILE`] (with `true`: it still
/// has to replace the key file).
fn current_signing_key(
    data_dir: &Path,
    chain: &KeyChain,
    key: NodeKey,
) -> Result<(NodeKey, bool), NodeError> {
    let Some(latest) = chain.latest() else {
        return Ok((key, false));
    };
    if latest.signing().key(key.key_id()).is_some() {
        return Ok((key, false));
    }
    let next = data_dir.join(NEXT_KEY_FILE);
    if next.exists() {
        let next_key = NodeKey::load(&next)?;
        if latest.signing().key(next_key.key_id()).is_some() {
            return Ok((next_key, true));
        }
    }
    Err(NodeError::DataDir {
        path: data_dir.join(KEY_FILE),
        message: format!(
            "signing key {} is not in this node's key set {} (its signing keys: {}); \
             restore the key file of that set",
            key.key_id(),
            latest.set.version,
            signing_key_ids(latest)
        ),
    })
}

/// The signing keys of a key set, for a message.
fn signing_key_ids(link: &crate::keyset::Link) -> String {
    link.signing()
        .key_ids()
        .map(KeyId::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Moves [`NEXT_KEY_FILE`] over the key file, durably.
fn replace_key_file(data_dir: &Path) -> Result<(), NodeError> {
    let dir_error = |e: std::io::Error| NodeError::DataDir {
        path: data_dir.join(NEXT_KEY_FILE),
        message: e.to_string(),
    };
    std::fs::rename(data_dir.join(NEXT_KEY_FILE), data_dir.join(KEY_FILE)).map_err(dir_error)?;
    std::fs::File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(dir_error)
}

/// Writes a new file and makes it and its directory entry durable.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Writes `bytes` to `path` through a file beside it, synced and renamed
/// into place: a crash leaves the old file or the new one, never a part.
fn write_replacing(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut staged = path.as_os_str().to_owned();
    staged.push(".new");
    let staged = PathBuf::from(staged);
    // A leftover of a crash here is only ever a copy being written.
    let _ = std::fs::remove_file(&staged);
    write_durably(&staged, bytes)?;
    std::fs::rename(&staged, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A root threshold of 1 to `keys` (the number of root keys).
fn check_root_threshold(threshold: u32, keys: usize) -> Result<(), NodeError> {
    if threshold == 0 || threshold as usize > keys {
        return Err(NodeError::Keys(format!(
            "a root threshold of {threshold} with {keys} root key(s): it must be 1 to {keys}"
        )));
    }
    Ok(())
}

/// Refuses a key-set validity beyond the cap.
fn check_expiry_days(days: u32) -> Result<(), NodeError> {
    if days == 0 || days > keyset::MAX_EXPIRY_DAYS {
        return Err(NodeError::Keys(format!(
            "expires_days: {days} is not between 1 and {}",
            keyset::MAX_EXPIRY_DAYS
        )));
    }
    Ok(())
}

mod audience;
pub(crate) mod handoff;
#[cfg(test)]
mod tests;
