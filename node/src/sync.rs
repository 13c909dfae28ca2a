//! Replication (DESIGN §7): pull-based, resumable, per origin, with relay.
//!
//! A node pulls, for every origin it trusts, from any active peer that holds
//! more of that origin's log than it does. Each pull starts with the
//! checkpoint the serving peer holds (signed by the origin), then streams the
//! entries after the receiver's cursor. Every entry is verified against the
//! origin's pinned keys before it is decoded; its index must be the next one;
//! entries the receiver may not see arrive as digests only. Batches commit
//! atomically with the cursor (the origin's log size here), so an interrupted
//! pull resumes exactly where it stopped. When the log reaches the
//! checkpoint's size its Merkle root must equal the signed root; a mismatch
//! is evidence of equivocation and freezes the origin.
//!
//! Transport is behind [`FederationPeer`]; `server` implements it over tonic.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use prost::Message;
use serde::Serialize;

use crate::log::{self, Appender, KEYSET_SUBJECT};
use crate::merkle::Hash;
use crate::node::{Node, Viewer};
use crate::proto::{
    log_entry::Body, pull_item, BatchProof, Checkpoint, Envelope, LogEntry, NodeInfo, PullItem,
    Redacted,
};
use crate::record::RecordError;
use crate::sign::{self, KeyRing, SignError};
use crate::store::{RecordState, StoreError};
use crate::trust::{Peer, PeerState, TrustError};

/// Entries committed per transaction while pulling.
pub const BATCH: usize = 2048;
/// Most items a peer may send before closing a batch with a proof.
const MAX_UNPROVEN: usize = 4 * BATCH;
/// Envelopes per batch verification (one slice per core at a time).
const VERIFY_SLICE: usize = 256;

/// Why a sync step failed. Each names the peer or origin involved.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The peer could not be reached or the connection broke.
    #[error("{peer}: unreachable: {message}")]
    Unreachable { peer: String, message: String },
    /// The peer refused the request.
    #[error("{peer}: refused: {message}")]
    Refused { peer: String, message: String },
    /// The peer is not who it was dialed as.
    #[error("{peer}: answered as {found}")]
    WrongNode { peer: String, found: String },
    /// The node reached at the peer's endpoint is not the peer: its TLS key
    /// is not the one pinned for it.
    #[error("{peer}: the node reached is not {peer}: its TLS key is not the one pinned for it")]
    Impostor { peer: String },
    /// An envelope failed verification.
    #[error("{origin} entry {index}: {source}")]
    Verify {
        origin: String,
        index: u64,
        #[source]
        source: SignError,
    },
    /// The checkpoint failed verification.
    #[error("{origin} checkpoint: {source}")]
    Checkpoint {
        origin: String,
        #[source]
        source: SignError,
    },
    /// Entries out of order, out of range or inconsistent with their envelope.
    #[error("{origin} entry {index}: {message}")]
    Sequence {
        origin: String,
        index: u64,
        message: String,
    },
    /// A validly signed record breaks the record rules (DESIGN §2).
    #[error("{origin} entry {index}: record `{id}`: {source}")]
    Invalid {
        origin: String,
        index: u64,
        id: String,
        #[source]
        source: RecordError,
    },
    /// A batch is not consistent with the checkpoint the peer sent: the
    /// peer altered or invented digests (or entries). Nothing was kept.
    #[error("{origin}: entries up to {size} are not part of the signed log: {message}")]
    Unproven {
        origin: String,
        size: u64,
        message: String,
    },
    /// Two validly signed checkpoints disagree: the origin is frozen.
    #[error("{origin}: equivocation: {message}; origin frozen")]
    Equivocation { origin: String, message: String },
    /// The origin is frozen after earlier evidence of equivocation.
    #[error("{0}: frozen after evidence of equivocation")]
    Frozen(String),
    /// The origin is not an active peer of this node.
    #[error("{0}: not an active peer in the trust store")]
    NotTrusted(String),
    /// A message was larger than allowed.
    #[error("{peer}: message too large: {message}")]
    TooLarge { peer: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Trust(#[from] TrustError),
}

impl SyncError {
    /// Whether the fault lies with what the peer sent (counted as a rejection).
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            SyncError::Verify { .. }
                | SyncError::Checkpoint { .. }
                | SyncError::Sequence { .. }
                | SyncError::Unproven { .. }
                | SyncError::Invalid { .. }
                | SyncError::Equivocation { .. }
                | SyncError::WrongNode { .. }
                | SyncError::Impostor { .. }
                | SyncError::TooLarge { .. }
        )
    }
}

/// A stream of pulled items.
pub type PullStream = Pin<Box<dyn Stream<Item = Result<PullItem, SyncError>> + Send>>;

/// A connection to one peer's Federation service.
#[tonic::async_trait]
pub trait FederationPeer: Send + Sync {
    async fn node_info(&self) -> Result<NodeInfo, SyncError>;
    async fn pull(&self, origin: &str, after_index: u64) -> Result<PullStream, SyncError>;
    async fn hint(&self, origin: &str, size: u64) -> Result<(), SyncError>;
}

/// Dials a pinned peer.
pub type Connector = Arc<
    dyn Fn(
            Peer,
        ) -> Pin<
            Box<
                dyn std::future::Future<Output = Result<Arc<dyn FederationPeer>, SyncError>> + Send,
            >,
        > + Send
        + Sync,
>;

/// What the operator sees of one peer (`meridian peers status`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PeerStatus {
    pub node_id: String,
    pub state: String,
    pub reachable: bool,
    /// RFC 3339 time of the last successful round.
    pub last_sync: String,
    /// Entries this peer holds that this node does not, summed over origins.
    pub lag: u64,
    pub entries_received: u64,
    pub rejected: u64,
    pub last_error: String,
    pub consecutive_failures: u32,
}

/// Outcome of one round with one peer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoundReport {
    pub peer: String,
    pub ok: bool,
    pub entries: u64,
    pub origins: Vec<String>,
    pub error: String,
}

/// In-memory replication state: per-peer status and backoff.
#[derive(Default)]
pub struct SyncState {
    peers: std::sync::Mutex<BTreeMap<String, PeerStatus>>,
    next_try: std::sync::Mutex<HashMap<String, Instant>>,
    /// Serialises pulls of one origin.
    origin_locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Wakes the background loop early (hints, `sync now`).
    pub wake: tokio::sync::Notify,
}

impl SyncState {
    fn update(&self, peer: &str, f: impl FnOnce(&mut PeerStatus)) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let status = peers.entry(peer.to_owned()).or_insert_with(|| PeerStatus {
            node_id: peer.to_owned(),
            ..PeerStatus::default()
        });
        f(status);
    }

    fn origin_lock(&self, origin: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.origin_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(origin.to_owned()).or_default().clone()
    }

    /// A snapshot of what is known of each peer.
    pub fn snapshot(&self) -> BTreeMap<String, PeerStatus> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Receiver state of one pull of one origin.
pub struct Ingest {
    origin: String,
    ring: KeyRing,
    checkpoint: Checkpoint,
    checkpoint_envelope: Vec<u8>,
    /// Entries applied by this pull.
    pub applied: u64,
}

/// Starts a pull of `origin`: verifies the checkpoint the peer holds and
/// compares it with what this node holds. `None` when there is nothing new.
pub fn begin_ingest(
    node: &Node,
    origin: &str,
    checkpoint: &Envelope,
) -> Result<Option<Ingest>, SyncError> {
    if node.is_frozen(origin)? {
        return Err(SyncError::Frozen(origin.to_owned()));
    }
    let ring = origin_ring(node, origin)?;
    let (cp, _) =
        sign::open_checkpoint(checkpoint, &ring).map_err(|source| SyncError::Checkpoint {
            origin: origin.to_owned(),
            source,
        })?;
    let ours = node.store().log_size(origin)?;
    if cp.size <= ours {
        let root = log::root(node.store(), origin, cp.size)?;
        if root.as_slice() != cp.root.as_slice() {
            let message = format!(
                "checkpoint of size {} disagrees with the log held here",
                cp.size
            );
            node.freeze(origin, &message, &checkpoint.encode_to_vec())?;
            return Err(SyncError::Equivocation {
                origin: origin.to_owned(),
                message,
            });
        }
        return Ok(None);
    }
    Ok(Some(Ingest {
        origin: origin.to_owned(),
        ring,
        checkpoint: cp,
        checkpoint_envelope: checkpoint.encode_to_vec(),
        applied: 0,
    }))
}

/// The key ring an origin's entries must verify against: this node's own,
/// or the identity key pinned for an active peer.
fn origin_ring(node: &Node, origin: &str) -> Result<KeyRing, SyncError> {
    if origin == node.node_id() {
        return Ok(node.ring().clone());
    }
    match node.trust().get(origin)? {
        Some(peer) if peer.state == PeerState::Active => Ok(peer.key_ring()?),
        _ => Err(SyncError::NotTrusted(origin.to_owned())),
    }
}

/// Marker of a stored entry this node holds only as digests.
const REDACTED_MARK: u8 = 0;

/// What the log tree holds for an entry this node may not see.
pub fn encode_redacted(subject: &Hash, payload: &Hash) -> Vec<u8> {
    let mut out = Vec::with_capacity(65);
    out.push(REDACTED_MARK);
    out.extend_from_slice(subject);
    out.extend_from_slice(payload);
    out
}

/// The digests of a stored redacted entry, or `None` for an envelope.
/// (An encoded Envelope never starts with a zero byte.)
pub fn decode_redacted(bytes: &[u8]) -> Option<(Hash, Hash)> {
    if bytes.len() != 65 || bytes[0] != REDACTED_MARK {
        return None;
    }
    let subject: Hash = bytes[1..33].try_into().ok()?;
    let payload: Hash = bytes[33..65].try_into().ok()?;
    Some((subject, payload))
}

fn digest(bytes: &[u8], origin: &str, index: u64, what: &str) -> Result<Hash, SyncError> {
    bytes.try_into().map_err(|_| SyncError::Sequence {
        origin: origin.to_owned(),
        index,
        message: format!("{what} digest is {} bytes, not 32", bytes.len()),
    })
}

/// A pulled batch whose signatures were checked: each entry item's opened
/// log entry, or why it did not open.
pub struct CheckedBatch {
    items: Vec<PullItem>,
    opened: HashMap<usize, Result<LogEntry, SignError>>,
}

/// Verifies the signatures of a pulled batch against `ring` and decodes
/// what verified. Touches no stored state, so the next batch is checked
/// while this one is applied. Blocking (CPU).
pub fn check_batch(ring: &KeyRing, items: Vec<PullItem>) -> CheckedBatch {
    let envelopes: Vec<(usize, &Envelope)> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| match &item.item {
            Some(pull_item::Item::Entry(e)) => Some((i, e)),
            _ => None,
        })
        .collect();
    // Batch verification, spread over the cores in slices.
    let refs: Vec<&Envelope> = envelopes.iter().map(|(_, e)| *e).collect();
    let opened: Vec<_> = {
        use rayon::prelude::*;
        refs.par_chunks(VERIFY_SLICE)
            .flat_map_iter(|slice| sign::open_entries(slice, ring))
            .collect()
    };
    let opened = envelopes
        .iter()
        .map(|(i, _)| *i)
        .zip(opened.into_iter().map(|r| r.map(|(entry, _)| entry)))
        .collect();
    CheckedBatch { items, opened }
}

/// Commits one checked batch, in order, in one transaction with the new
/// cursor; nothing of it if any entry is refused. Blocking.
pub fn apply_batch(
    node: &Node,
    ingest: &mut Ingest,
    checked: CheckedBatch,
) -> Result<u64, SyncError> {
    let CheckedBatch {
        mut items,
        mut opened,
    } = checked;
    let origin = ingest.origin.clone();
    let store = node.store();
    let mut appender = Appender::begin(store, &origin)?;
    // A batch ends with the proof that it is consistent with the checkpoint.
    let proof = match items.pop() {
        Some(PullItem {
            item: Some(pull_item::Item::Proof(proof)),
            ..
        }) => proof,
        other => {
            return Err(SyncError::Sequence {
                origin: origin.clone(),
                index: appender.next_index() + items.len() as u64,
                message: format!(
                    "batch does not end with a consistency proof (ends with {})",
                    other.map(|item| describe(&item)).unwrap_or("nothing")
                ),
            })
        }
    };
    let mut touched: HashMap<String, RecordState> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let index = appender.next_index();
        let sequence = |message: String| SyncError::Sequence {
            origin: origin.clone(),
            index,
            message,
        };
        if item.index != index {
            return Err(sequence(format!(
                "arrived as entry {}, expected {index}",
                item.index
            )));
        }
        if index >= ingest.checkpoint.size {
            return Err(sequence(format!(
                "beyond the checkpoint of size {}",
                ingest.checkpoint.size
            )));
        }
        match &item.item {
            Some(pull_item::Item::Entry(envelope)) => {
                let entry = opened
                    .remove(&i)
                    .unwrap_or(Err(SignError::NoSignature))
                    .map_err(|source| SyncError::Verify {
                        origin: origin.clone(),
                        index,
                        source,
                    })?;
                if entry.index != index {
                    return Err(sequence(format!(
                        "signed as entry {} of its log",
                        entry.index
                    )));
                }
                let (subject, record_state) = match entry.body {
                    Some(Body::Record(record)) => {
                        // Signed is not valid: a peer's record meets the
                        // same rules as an imported one.
                        crate::record::validate(&record).map_err(|source| SyncError::Invalid {
                            origin: origin.clone(),
                            index,
                            id: record.id.clone(),
                            source,
                        })?;
                        let previous = match touched.get(&record.id) {
                            Some(state) => Some(*state),
                            None => store.record_state(&origin, &record.id)?,
                        };
                        if let Some(previous) = previous {
                            if record.version <= previous.version {
                                return Err(sequence(format!(
                                    "record {} version {} does not follow version {}",
                                    record.id, record.version, previous.version
                                )));
                            }
                        }
                        let state = RecordState {
                            version: record.version,
                            log_index: index,
                            deleted: record.deleted,
                        };
                        touched.insert(record.id.clone(), state);
                        (record.id.clone(), Some((record.id, state)))
                    }
                    _ => (KEYSET_SUBJECT.to_owned(), None),
                };
                let leaf = log::entry_leaf(&origin, &subject, &envelope.payload);
                appender.push(envelope.encode_to_vec(), leaf, record_state)?;
            }
            Some(pull_item::Item::Redacted(Redacted {
                subject_digest,
                payload_digest,
            })) => {
                let subject = digest(subject_digest, &origin, index, "subject")?;
                let payload = digest(payload_digest, &origin, index, "payload")?;
                let leaf = log::leaf_from_digests(&subject, &payload);
                appender.push(encode_redacted(&subject, &payload), leaf, None)?;
            }
            _ => return Err(sequence("neither an entry nor its digests".into())),
        }
    }
    check_batch_proof(&origin, &appender, &ingest.checkpoint, &proof)?;
    let count = appender.len() as u64;
    if count > 0 {
        store.commit(&appender.finish())?;
        store.flush()?;
        ingest.applied += count;
        node.changed();
    }
    Ok(count)
}

fn describe(item: &PullItem) -> &'static str {
    match item.item {
        Some(pull_item::Item::Checkpoint(_)) => "a checkpoint",
        Some(pull_item::Item::Entry(_)) => "an entry",
        Some(pull_item::Item::Redacted(_)) => "digests",
        Some(pull_item::Item::Proof(_)) => "a proof",
        None => "an empty item",
    }
}

/// Checks that the log as it stands after this batch is a prefix of the
/// log the origin signed: an entry is signed, but digests are not, and this
/// is what keeps a relay from inventing or altering them. A failure blames
/// the serving peer, not the origin.
fn check_batch_proof(
    origin: &str,
    appender: &Appender<'_>,
    checkpoint: &Checkpoint,
    proof: &BatchProof,
) -> Result<(), SyncError> {
    let size = appender.next_index();
    let unproven = |message: String| SyncError::Unproven {
        origin: origin.to_owned(),
        size,
        message,
    };
    if proof.size != size {
        return Err(unproven(format!("the proof is for size {}", proof.size)));
    }
    let hashes = proof
        .hashes
        .iter()
        .map(|h| Hash::try_from(h.as_slice()))
        .collect::<Result<Vec<Hash>, _>>()
        .map_err(|_| unproven("a proof hash is not 32 bytes".into()))?;
    let signed_root: Hash = checkpoint
        .root
        .as_slice()
        .try_into()
        .map_err(|_| unproven("checkpoint root is not 32 bytes".into()))?;
    let root = appender.root()?;
    crate::merkle::verify_consistency(size, checkpoint.size, &root, &signed_root, &hashes)
        .map_err(|e| unproven(e.to_string()))
}

/// Ends a pull: once the log reaches the checkpoint, its root must match.
pub fn finish_ingest(node: &Node, ingest: &Ingest) -> Result<(), SyncError> {
    let size = node.store().log_size(&ingest.origin)?;
    if size != ingest.checkpoint.size {
        return Ok(());
    }
    let root = log::root(node.store(), &ingest.origin, size)?;
    if root.as_slice() != ingest.checkpoint.root.as_slice() {
        let message = format!("entries do not hash to the signed root of size {size}");
        node.freeze(&ingest.origin, &message, &ingest.checkpoint_envelope)?;
        return Err(SyncError::Equivocation {
            origin: ingest.origin.clone(),
            message,
        });
    }
    node.store()
        .put_checkpoint(&ingest.origin, &ingest.checkpoint_envelope)?;
    Ok(())
}

/// Serving side: the checkpoint this node holds for `origin` and its size.
pub fn serve_checkpoint(node: &Node, origin: &str) -> Result<Option<(Envelope, u64)>, SyncError> {
    if node.is_frozen(origin)? {
        return Err(SyncError::Frozen(origin.to_owned()));
    }
    let Some(bytes) = node.store().checkpoint(origin)? else {
        return Ok(None);
    };
    let envelope = Envelope::decode(bytes.as_slice()).map_err(|e| StoreError::Corrupt {
        tree: "checkpoints",
        detail: e.to_string(),
    })?;
    let checkpoint =
        Checkpoint::decode(envelope.payload.as_slice()).map_err(|e| StoreError::Corrupt {
            tree: "checkpoints",
            detail: e.to_string(),
        })?;
    Ok(Some((envelope, checkpoint.size)))
}

/// Of a `LogEntry`, what decides who may receive it: the same wire
/// fields, decoded without the rest of the record (serving a pull reads
/// every entry, and most of a record's bytes do not matter here).
#[derive(Clone, PartialEq, prost::Message)]
struct EntryAudience {
    /// `LogEntry.record` (a member of the `body` oneof); `None` for a key set.
    #[prost(message, optional, tag = "3")]
    record: Option<RecordAudience>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RecordAudience {
    /// `DatasetRecord.id`.
    #[prost(string, tag = "2")]
    id: String,
    /// `DatasetRecord.visibility`.
    #[prost(enumeration = "crate::proto::Visibility", tag = "17")]
    visibility: i32,
    /// `DatasetRecord.groups`.
    #[prost(string, repeated, tag = "18")]
    groups: Vec<String>,
}

/// Serving side: entries `[from, to)` of `origin` as `viewer` may receive
/// them; what it may not see goes out as digests. At most `max` items.
pub fn serve_entries(
    node: &Node,
    viewer: &Viewer,
    origin: &str,
    from: u64,
    to: u64,
    max: usize,
) -> Result<Vec<PullItem>, SyncError> {
    let limit = max.min(to.saturating_sub(from) as usize);
    let mut items = Vec::with_capacity(limit);
    for (index, bytes) in node.store().entries(origin, from, limit)? {
        let item = match decode_redacted(&bytes) {
            Some((subject, payload)) => pull_item::Item::Redacted(Redacted {
                subject_digest: subject.to_vec(),
                payload_digest: payload.to_vec(),
            }),
            None => {
                let envelope =
                    Envelope::decode(bytes.as_slice()).map_err(|e| StoreError::Corrupt {
                        tree: "log_entries",
                        detail: format!("{origin} entry {index}: {e}"),
                    })?;
                // Trusted bytes: verified when they were stored.
                let entry = EntryAudience::decode(envelope.payload.as_slice()).map_err(|e| {
                    StoreError::Corrupt {
                        tree: "log_entries",
                        detail: format!("{origin} entry {index}: {e}"),
                    }
                })?;
                match entry.record {
                    Some(record) if !viewer.may_see_audience(record.visibility, &record.groups) => {
                        pull_item::Item::Redacted(Redacted {
                            subject_digest: log::subject_digest(origin, &record.id).to_vec(),
                            payload_digest: log::payload_digest(&envelope.payload).to_vec(),
                        })
                    }
                    _ => pull_item::Item::Entry(envelope),
                }
            }
        };
        items.push(PullItem {
            index,
            item: Some(item),
        });
    }
    Ok(items)
}

/// Serving side: one batch of a pull — entries `[from, …)` as `viewer` may
/// receive them (see [`serve_entries`]), closed by the proof that the log up
/// to the batch's end is consistent with the checkpoint of size `size`.
pub fn serve_batch(
    node: &Node,
    viewer: &Viewer,
    origin: &str,
    from: u64,
    size: u64,
    max: usize,
) -> Result<Vec<PullItem>, SyncError> {
    let mut items = serve_entries(node, viewer, origin, from, size, max)?;
    let end = items.last().map(|i| i.index + 1).unwrap_or(from);
    let hashes = log::consistency_proof(node.store(), origin, end, size)?;
    items.push(PullItem {
        index: end,
        item: Some(pull_item::Item::Proof(BatchProof {
            size: end,
            hashes: hashes.iter().map(|h| h.to_vec()).collect(),
        })),
    });
    Ok(items)
}

/// Pulls every origin `peer` holds more of than this node, from `peer`.
pub async fn sync_peer(
    node: Arc<Node>,
    peer: Peer,
    client: Arc<dyn FederationPeer>,
) -> RoundReport {
    let mut report = RoundReport {
        peer: peer.node_id.clone(),
        ..RoundReport::default()
    };
    let result = sync_peer_inner(&node, &peer, client.as_ref(), &mut report).await;
    let state = node.sync_state();
    match result {
        Ok(lag) => {
            report.ok = true;
            state.update(&peer.node_id, |s| {
                s.reachable = true;
                s.last_sync = crate::date::now_rfc3339();
                s.lag = lag;
                s.entries_received += report.entries;
                s.consecutive_failures = 0;
            });
        }
        Err(e) => {
            tracing::warn!(peer = %peer.node_id, error = %e, "sync failed");
            report.error = e.to_string();
            let unreachable = matches!(e, SyncError::Unreachable { .. });
            state.update(&peer.node_id, |s| {
                s.reachable = !unreachable;
                s.last_error = e.to_string();
                s.entries_received += report.entries;
                s.consecutive_failures += 1;
                if e.is_rejection() {
                    s.rejected += 1;
                }
            });
        }
    }
    report
}

async fn sync_peer_inner(
    node: &Arc<Node>,
    peer: &Peer,
    client: &dyn FederationPeer,
    report: &mut RoundReport,
) -> Result<u64, SyncError> {
    let info = client.node_info().await?;
    if info.node_id != peer.node_id {
        return Err(SyncError::WrongNode {
            peer: peer.node_id.clone(),
            found: info.node_id,
        });
    }
    let mut lag = 0;
    for head in info.origins {
        if head.origin == node.node_id() {
            continue;
        }
        let Ok(Some(origin_peer)) = node.trust().get(&head.origin) else {
            continue;
        };
        if origin_peer.state != PeerState::Active || node.is_frozen(&head.origin)? {
            continue;
        }
        let lock = node.sync_state().origin_lock(&head.origin);
        let _guard = lock.lock().await;
        let ours = node.store().log_size(&head.origin)?;
        if head.size <= ours {
            continue;
        }
        let pulled = pull_origin(node, client, &head.origin, ours).await?;
        report.entries += pulled;
        report.origins.push(head.origin.clone());
        let now = node.store().log_size(&head.origin)?;
        lag += head.size.saturating_sub(now);
    }
    Ok(lag)
}

/// Pulls one origin from one peer, committing in batches.
async fn pull_origin(
    node: &Arc<Node>,
    client: &dyn FederationPeer,
    origin: &str,
    after: u64,
) -> Result<u64, SyncError> {
    let mut stream = client.pull(origin, after).await?;
    let first = match stream.next().await {
        Some(item) => item?,
        None => return Ok(0),
    };
    let Some(pull_item::Item::Checkpoint(checkpoint)) = first.item else {
        return Err(SyncError::Sequence {
            origin: origin.to_owned(),
            index: after,
            message: "pull did not start with a checkpoint".into(),
        });
    };
    let (n, o) = (node.clone(), origin.to_owned());
    let ingest = tokio::task::spawn_blocking(move || begin_ingest(&n, &o, &checkpoint))
        .await
        .map_err(|e| join_error(origin, e))??;
    let Some(mut ingest) = ingest else {
        return Ok(0);
    };
    // Receiving runs ahead of verifying and committing: the next batch
    // arrives while this one is checked, so neither side waits on the other.
    let (batches, mut ready) = tokio::sync::mpsc::channel::<Vec<PullItem>>(2);
    let receiver_origin = origin.to_owned();
    let receiver = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(next) = stream.next().await {
            let item = next?;
            let closes = matches!(item.item, Some(pull_item::Item::Proof(_)));
            batch.push(item);
            if batch.len() > MAX_UNPROVEN {
                return Err(SyncError::Sequence {
                    origin: receiver_origin,
                    index: after,
                    message: format!("more than {MAX_UNPROVEN} items without a proof"),
                });
            }
            if closes {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                if batches.send(full).await.is_err() {
                    return Ok(0);
                }
            }
        }
        // Items after the last proof are unproven: they are dropped, and the
        // next pull asks for them again.
        Ok(batch.len())
    });
    // Signatures of the next batch are checked while this one is applied:
    // checking needs no stored state, applying needs the previous batch.
    let (checked_tx, mut checked) = tokio::sync::mpsc::channel::<CheckedBatch>(1);
    let ring = Arc::new(ingest.ring.clone());
    let checker = tokio::spawn(async move {
        while let Some(items) = ready.recv().await {
            let ring = ring.clone();
            let batch = tokio::task::spawn_blocking(move || check_batch(&ring, items)).await?;
            if checked_tx.send(batch).await.is_err() {
                break;
            }
        }
        Ok::<(), tokio::task::JoinError>(())
    });
    while let Some(batch) = checked.recv().await {
        let n = node.clone();
        let result = tokio::task::spawn_blocking(move || {
            let outcome = apply_batch(&n, &mut ingest, batch);
            (outcome, ingest)
        })
        .await
        .map_err(|e| join_error(origin, e))?;
        ingest = result.1;
        if let Err(e) = result.0 {
            receiver.abort();
            checker.abort();
            return Err(e);
        }
    }
    match checker.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) | Err(e) => {
            receiver.abort();
            return Err(join_error(origin, e));
        }
    }
    let failure = match receiver.await {
        Ok(Ok(0)) => None,
        Ok(Ok(left)) => Some(SyncError::Sequence {
            origin: origin.to_owned(),
            index: node.store().log_size(origin)?,
            message: format!("stream ended with {left} items after the last proof"),
        }),
        Ok(Err(e)) => Some(e),
        Err(e) => Some(join_error(origin, e)),
    };
    let applied = ingest.applied;
    let n = node.clone();
    tokio::task::spawn_blocking(move || finish_ingest(&n, &ingest))
        .await
        .map_err(|e| join_error(origin, e))??;
    match failure {
        Some(e) => Err(e),
        None => Ok(applied),
    }
}

fn join_error(origin: &str, e: tokio::task::JoinError) -> SyncError {
    SyncError::Store(StoreError::Corrupt {
        tree: "sync",
        detail: format!("{origin}: worker failed: {e}"),
    })
}

/// One round: every active peer not in backoff (or all, when `force`).
pub async fn round(node: Arc<Node>, connector: Connector, force: bool) -> Vec<RoundReport> {
    let peers = match node.trust().active() {
        Ok(peers) => peers,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the trust store");
            return Vec::new();
        }
    };
    let state = node.sync_state();
    let now = Instant::now();
    let mut tasks = Vec::new();
    for peer in peers {
        let due = {
            let next = state.next_try.lock().unwrap_or_else(|p| p.into_inner());
            next.get(&peer.node_id).is_none_or(|at| *at <= now)
        };
        if !due && !force {
            continue;
        }
        let node = node.clone();
        let connector = connector.clone();
        tasks.push(tokio::spawn(async move {
            match connector(peer.clone()).await {
                Ok(client) => sync_peer(node, peer, client).await,
                Err(e) => {
                    node.sync_state().update(&peer.node_id, |s| {
                        s.reachable = !matches!(e, SyncError::Unreachable { .. });
                        s.last_error = e.to_string();
                        s.consecutive_failures += 1;
                        // A node that answered with the wrong key is counted
                        // like any peer that sent what it must not.
                        if e.is_rejection() {
                            s.rejected += 1;
                        }
                    });
                    RoundReport {
                        peer: peer.node_id.clone(),
                        error: e.to_string(),
                        ..RoundReport::default()
                    }
                }
            }
        }));
    }
    let mut reports = Vec::new();
    for task in tasks {
        if let Ok(report) = task.await {
            let failures = state
                .snapshot()
                .get(&report.peer)
                .map(|s| s.consecutive_failures)
                .unwrap_or(0);
            let mut next = state.next_try.lock().unwrap_or_else(|p| p.into_inner());
            next.insert(report.peer.clone(), Instant::now() + backoff(failures));
            reports.push(report);
        }
    }
    reports
}

/// Exponential backoff with jitter: 0 failures → none; then 2 s doubling to 5 min.
fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let base = Duration::from_secs(2u64.saturating_pow(failures.min(9)).min(300));
    base + jitter(base / 4)
}

fn jitter(max: Duration) -> Duration {
    use rand::Rng;
    if max.is_zero() {
        return Duration::ZERO;
    }
    Duration::from_millis(rand::thread_rng().gen_range(0..=max.as_millis() as u64))
}

/// The background loop: a round every `interval` (with jitter), or at once
/// when woken by a hint or `sync now`.
pub async fn run(
    node: Arc<Node>,
    connector: Connector,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let wait = interval + jitter(interval / 5);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = node.sync_state().wake.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        round(node.clone(), connector.clone(), false).await;
    }
}

#[cfg(test)]
mod tests;
