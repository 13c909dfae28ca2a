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
//! - [`receive`]: one pull, verified and applied batch by batch.
//! - [`serve`]: what a peer is told and sent.
//! - [`Replicator`]: rounds over every peer, backoff, hints, status.
//!
//! Transport is behind [`FederationPeer`]; `meridian-server` implements it
//! over tonic, and the tests with in-process peers that lie.

use prost::Message as _;

pub(crate) mod receive;
pub(crate) mod serve;
pub mod witness;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::Stream;
use serde::Serialize;

use crate::metrics::{LabelValue, PullOutcome, RejectReason};
use crate::node::Node;
use crate::proto::{NodeInfo, PeerSearchRequest, PeerSearchResponse, PullItem};
use crate::record::RecordError;
use crate::sign::{SignError, MAX_ENVELOPE_BYTES};
use crate::store::StoreError;
use crate::trust::{Peer, PeerState, TrustError};

pub use self::receive::{
    apply_batch, begin_ingest, check_batch, finish_ingest, CheckedBatch, Ingest,
};
pub use self::serve::{
    node_info, quarantined, serve_batch, serve_checkpoint, serve_entries, serve_key_sets,
};

/// Entries committed per transaction while pulling.
pub const BATCH: usize = 2048;
/// The batch first asked for after a pull broke before committing: half of
/// what servers send unasked.
const FIRST_SMALLER_BATCH: u32 = 512;
/// The smallest batch a puller asks for.
const SMALLEST_BATCH_ASK: u32 = 16;
/// Most items a peer may send before closing a batch with a proof.
const MAX_UNPROVEN: usize = 4 * BATCH;
/// Fewest envelopes per batch verification: a pulled batch is cut into one
/// slice per core, none smaller than this. A batch verification costs less
/// per signature the larger it is (ed25519-zebra, one key, 900-byte
/// messages: 11.2–11.4 µs at 256, 10.3–10.6 µs at 1,024), and below 256
/// it takes another algorithm that costs 12.7–13.3 µs.
const VERIFY_SLICE: usize = 256;
/// Largest pulled item: an envelope at its bound ([`MAX_ENVELOPE_BYTES`])
/// and the item's own framing. The Federation client decodes nothing larger.
pub const MAX_PULL_ITEM_BYTES: usize = MAX_ENVELOPE_BYTES + 1024;
/// Most bytes of items a peer may send before closing a batch with a proof.
/// Batches are served under half of it ([`SERVE_BATCH_BYTES`]).
const MAX_BATCH_BYTES: usize = 32 << 20;
/// Bytes a server puts in one batch before closing it (at least one entry).
pub const SERVE_BATCH_BYTES: usize = 16 << 20;
/// Most bytes of pulled items held at once by one pull: received, being
/// verified and being applied. The receiver waits for room, so a peer
/// faster than this node cannot make it buffer more.
const MAX_PULL_BYTES: usize = 3 * MAX_BATCH_BYTES;
/// Most key sets a peer may announce at the start of one pull: a pull
/// covers at most this many rotations (the next pull covers the rest, as
/// the receiver asks from its cursor and the server announces from there).
pub const MAX_ANNOUNCED_KEY_SETS: usize = 64;
/// Most hashes in a batch's consistency proof: an RFC 9162 proof holds
/// about one per level of the tree, and a log has at most 64 levels.
const MAX_PROOF_HASHES: usize = 128;

/// Why a sync step failed. Each names the peer or origin involved.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The peer could not be reached or the connection broke.
    #[error("{peer}: unreachable: {message}")]
    Unreachable { peer: String, message: String },
    /// The peer sent nothing (no answer, no pulled item) for the idle
    /// timeout: the pull ended and kept what was committed.
    #[error("{peer}: sent nothing for {secs} s")]
    Stalled { peer: String, secs: u64 },
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
    /// The origin's key chain as stored here does not verify from the root
    /// pinned for it (a pin changed under the store, a stored set damaged):
    /// the origin is held back, its entries neither pulled nor checked,
    /// until it verifies again. No fault of the peer that serves it.
    #[error("{origin}: held back: its key chain as stored here does not verify from the root pinned for it: {source}")]
    HeldBack {
        origin: String,
        #[source]
        source: SignError,
    },
    /// A message was larger than allowed.
    #[error("{peer}: message too large: {message}")]
    TooLarge { peer: String, message: String },
    /// The peer holds this node to a rate or a limit and refused the
    /// request for now: no fault of what either side sent.
    #[error("{peer}: busy: {message}")]
    Busy { peer: String, message: String },
    /// A peer sent a pulled item over its bound (an envelope over 1 MiB, a
    /// digest that is not 32 bytes, a batch over its byte budget): the pull
    /// was cut off as the item arrived, before it was buffered, and nothing
    /// of the open batch was kept.
    #[error("{peer}: pull of {origin} cut off at entry {index}: {message}")]
    Overrun {
        peer: String,
        origin: String,
        index: u64,
        message: String,
    },
    /// The peer's answer breaks the protocol's rules (its account of what
    /// it holds lists an origin twice): nothing is taken from it.
    #[error("{peer}: malformed answer: {message}")]
    Malformed { peer: String, message: String },
    /// A worker of this node failed (a bug): nothing of the batch was kept.
    #[error("{origin}: worker failed: {message}")]
    Worker { origin: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Trust(#[from] TrustError),
}

impl SyncError {
    /// Whether the fault lies with what the peer sent (counted as a rejection).
    pub fn is_rejection(&self) -> bool {
        self.rejection().is_some()
    }

    /// Why what the peer sent was rejected, when the fault lies with it.
    pub fn rejection(&self) -> Option<RejectReason> {
        Some(match self {
            SyncError::Verify { .. } => RejectReason::Signature,
            SyncError::Checkpoint { .. } => RejectReason::Checkpoint,
            SyncError::Sequence { .. } => RejectReason::Sequence,
            SyncError::Unproven { .. } => RejectReason::Unproven,
            SyncError::Invalid { .. } => RejectReason::InvalidRecord,
            SyncError::Equivocation { .. } => RejectReason::Equivocation,
            SyncError::WrongNode { .. } | SyncError::Impostor { .. } => RejectReason::WrongNode,
            SyncError::TooLarge { .. } | SyncError::Overrun { .. } => RejectReason::TooLarge,
            SyncError::Malformed { .. } => RejectReason::Malformed,
            SyncError::Unreachable { .. }
            | SyncError::Stalled { .. }
            | SyncError::Busy { .. }
            | SyncError::Refused { .. }
            | SyncError::Frozen(_)
            | SyncError::NotTrusted(_)
            | SyncError::HeldBack { .. }
            | SyncError::Worker { .. }
            | SyncError::Store(_)
            | SyncError::Trust(_) => return None,
        })
    }
}

/// A stream of pulled items.
pub type PullStream = Pin<Box<dyn Stream<Item = Result<PullItem, SyncError>> + Send>>;

/// A connection to one peer's Federation service.
#[async_trait::async_trait]
pub trait FederationPeer: Send + Sync {
    async fn node_info(&self) -> Result<NodeInfo, SyncError>;
    /// Streams `origin`'s log from `after_index`, in batches of at most
    /// `max_batch` entries (0: the server's choice).
    async fn pull(
        &self,
        origin: &str,
        after_index: u64,
        max_batch: u32,
    ) -> Result<PullStream, SyncError>;
    async fn hint(&self, origin: &str, size: u64) -> Result<(), SyncError>;
    /// One page of a live search, answered from the peer's own index for
    /// the audience the request claims (see [`crate::search::live`]).
    /// A live search asked on a client's behalf; `within` is how long the
    /// asker waits, sent as the call's deadline so that the peer gives up
    /// when the asker does.
    async fn search(
        &self,
        request: PeerSearchRequest,
        within: Duration,
    ) -> Result<PeerSearchResponse, SyncError>;
    /// The peer's newest checkpoints of the origins asked about, with
    /// consistency proofs and its cosignatures ([`witness`]). A peer
    /// that does not witness answers nothing.
    async fn witness(
        &self,
        _request: crate::proto::WitnessRequest,
    ) -> Result<crate::proto::WitnessResponse, SyncError> {
        Ok(crate::proto::WitnessResponse::default())
    }
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
    /// `ok`, `timeout` (the peer stalled, or its pull outlasted the round's
    /// deadline), `unreachable` or `error`.
    pub outcome: String,
    pub entries: u64,
    pub origins: Vec<String>,
    pub error: String,
    /// Origins this peer serves that are held back here, each with why:
    /// their key chain as stored here does not verify, so nothing of them
    /// was pulled. Not a failure of the peer.
    pub held_back: Vec<String>,
}

/// One pull of one origin from one of its holders.
struct Attempt {
    /// The holder's position among the round's peers.
    holder: usize,
    origin: String,
    entries: u64,
    result: Result<(), SyncError>,
}

impl Attempt {
    fn failed(holder: usize, origin: &str, e: SyncError) -> Self {
        Self {
            holder,
            origin: origin.to_owned(),
            entries: 0,
            result: Err(e),
        }
    }
}

/// Whether a peer that failed with `e` still counts as reachable.
fn reachable_after(e: &SyncError) -> bool {
    !matches!(e, SyncError::Unreachable { .. } | SyncError::Stalled { .. })
}

/// The report's word for a failure.
fn outcome_of(e: &SyncError) -> &'static str {
    pull_outcome(e).as_str()
}

/// How a pull that failed with `e` is counted.
fn pull_outcome(e: &SyncError) -> PullOutcome {
    match e {
        SyncError::Stalled { .. } => PullOutcome::Timeout,
        SyncError::Unreachable { .. } => PullOutcome::Unreachable,
        _ => PullOutcome::Error,
    }
}

/// How far behind this node is on one origin, as its peers advertised it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginLag {
    pub origin: String,
    /// Entries the fullest holder advertised that this node does not hold.
    pub entries: u64,
    /// Time since this node first learned of entries it still lacks
    /// (zero when it holds all it knows of).
    pub behind_for: Duration,
}

/// The most a peer advertised of one origin, and since when this node has
/// lacked part of it.
#[derive(Debug, Clone, Copy)]
struct Head {
    advertised: u64,
    behind_since: Option<Instant>,
}

/// Replication of one node: rounds over its active peers, with per-peer
/// status and backoff, one pull per origin at a time, and hints.
pub struct Replicator {
    node: Arc<Node>,
    connector: Connector,
    peers: Mutex<BTreeMap<String, PeerStatus>>,
    next_try: Mutex<HashMap<String, Instant>>,
    /// Serialises pulls of one origin.
    origin_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Wakes the background loop early (hints, `sync now`, a new peer).
    wake: tokio::sync::Notify,
    /// Per peer, the sync its hints started and what they announced.
    hints: Mutex<HashMap<String, HintState>>,
    /// Peers whose hints are held to the interval and whose deferred round
    /// waits for its end (one per peer, however many hints came).
    deferred_hints: Mutex<BTreeSet<String>>,
    /// Per origin, the batch size asked for while pulls break before a
    /// batch completes (absent: the server's choice).
    batch_asks: Mutex<HashMap<String, u32>>,
    /// What peers advertised of each trusted origin (for its lag).
    heads: Mutex<BTreeMap<String, Head>>,
    /// Per peer, the origins it advertised in its last answer: the holders
    /// a live search may ask for an origin that does not answer itself.
    holdings: Mutex<BTreeMap<String, BTreeSet<String>>>,
    /// Witnesses that cosigned the newest checkpoint held of each origin.
    cosigners: witness::Cosigners,
}

impl Replicator {
    /// Replication of `node`, dialing peers with `connector`.
    pub fn new(node: Arc<Node>, connector: Connector) -> Arc<Self> {
        Arc::new(Self {
            node,
            connector,
            peers: Mutex::default(),
            next_try: Mutex::default(),
            origin_locks: Mutex::default(),
            wake: tokio::sync::Notify::new(),
            hints: Mutex::default(),
            deferred_hints: Mutex::default(),
            batch_asks: Mutex::default(),
            heads: Mutex::default(),
            holdings: Mutex::default(),
            cosigners: witness::Cosigners::default(),
        })
    }

    /// How many peers cosigned the newest checkpoint of `origin` held here.
    pub fn cosigners(&self, origin: &str) -> u32 {
        let held = self
            .node
            .store()
            .checkpoint(origin)
            .ok()
            .flatten()
            .and_then(|bytes| crate::log::stored_checkpoint(&bytes));
        match held {
            Some(checkpoint) => self.cosigners.count(origin, &checkpoint.root),
            None => 0,
        }
    }

    /// Asks each peer that answered this round for its newest checkpoints
    /// of the origins held here and compares them with ours
    /// ([`witness::check`]): a conflict freezes the origin with its
    /// evidence. Each answer is bounded (count, sizes) before any work;
    /// a peer that stalls is given up after the idle timeout. Returns, per
    /// peer, what it sent that could not be checked or that conflicted.
    async fn witness_all(
        self: &Arc<Self>,
        peers: Vec<(String, Arc<dyn FederationPeer>)>,
    ) -> BTreeMap<String, Vec<String>> {
        let mut tasks = tokio::task::JoinSet::new();
        for (peer, client) in peers {
            let this = self.clone();
            tasks.spawn(async move {
                let problems = this.witness_with(&peer, client.as_ref()).await;
                (peer, problems)
            });
        }
        let mut out = BTreeMap::new();
        while let Some(joined) = tasks.join_next().await {
            if let Ok((peer, problems)) = joined {
                if !problems.is_empty() {
                    let message = problems.join("; ");
                    self.update(&peer, |s| s.last_error = message);
                    out.insert(peer, problems);
                }
            }
        }
        out
    }

    async fn witness_with(&self, peer: &str, client: &dyn FederationPeer) -> Vec<String> {
        let node = self.node.clone();
        let request = match witness::request(&node) {
            Ok(request) if !request.held.is_empty() => request,
            Ok(_) => return Vec::new(),
            Err(e) => return vec![e.to_string()],
        };
        let asked: BTreeSet<String> = request.held.iter().map(|h| h.origin.clone()).collect();
        let answer = match receive::within(peer, self.idle(), client.witness(request)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) | Err(e) => {
                tracing::debug!(peer, error = %e, "witness exchange failed");
                return Vec::new();
            }
        };
        if answer.checkpoints.len() > asked.len() {
            return vec![format!(
                "{peer}: {} witnessed checkpoints for {} origins asked about",
                answer.checkpoints.len(),
                asked.len()
            )];
        }
        let witness_chain = origin_chain(&node, peer).ok();
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for item in answer.checkpoints {
            let origin = item.origin.clone();
            if !asked.contains(&origin) || !seen.insert(origin.clone()) {
                problems.push(format!("{peer}: a checkpoint of {origin}, not asked for"));
                continue;
            }
            if item
                .checkpoint
                .as_ref()
                .is_some_and(|e| e.encoded_len() > crate::sign::MAX_ENVELOPE_BYTES)
            {
                problems.push(format!(
                    "{peer}: a checkpoint of {origin} over its size bound"
                ));
                continue;
            }
            let (n, p, o, checked) = (node.clone(), peer.to_owned(), origin.clone(), item.clone());
            let verdict =
                tokio::task::spawn_blocking(move || witness::check(&n, &p, &o, &checked)).await;
            match verdict {
                Ok(Ok(witness::Seen::Equivocation(reason))) => {
                    tracing::error!(origin = %origin, via = peer, reason = %reason, "origin frozen");
                    problems.push(format!("{origin}: equivocation: {reason}; origin frozen"));
                }
                Ok(Ok(_)) => {
                    let (Some(chain), Some(cosignature)) = (&witness_chain, &item.cosignature)
                    else {
                        continue;
                    };
                    let Some(cosigned) = witness::open_cosignature(chain, peer, cosignature) else {
                        continue;
                    };
                    // What the witness cosigned counts when it is the
                    // checkpoint held here, whatever the peer sent beside
                    // it (which may not verify).
                    let held = node
                        .store()
                        .checkpoint(&origin)
                        .ok()
                        .flatten()
                        .and_then(|held| crate::log::stored_checkpoint(&held));
                    if let Some(held) = held {
                        self.cosigners.note(&origin, &held, &cosigned, peer);
                    }
                }
                Ok(Err(e)) => {
                    if e.is_rejection() {
                        self.count_rejection(&e);
                    }
                    problems.push(e.to_string());
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        problems
    }

    /// Dials `peer` with this node's identity.
    pub async fn dial(&self, peer: Peer) -> Result<Arc<dyn FederationPeer>, SyncError> {
        (self.connector)(peer).await
    }

    /// The peers other than `origin` itself that advertised a copy of
    /// `origin`'s log in their last answer, by node id.
    pub fn replica_holders(&self, origin: &str) -> Vec<String> {
        self.holdings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(peer, origins)| peer.as_str() != origin && origins.contains(origin))
            .map(|(peer, _)| peer.clone())
            .collect()
    }

    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// A snapshot of what is known of each peer.
    pub fn status(&self) -> BTreeMap<String, PeerStatus> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs the next background round now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Counts `e` by its reason when the fault lies with what the peer sent.
    fn count_rejection(&self, e: &SyncError) {
        if let Some(reason) = e.rejection() {
            self.node.metrics().rejections.inc(reason);
        }
    }

    /// Notes that a peer holds `size` entries of `origin`.
    fn advertised(&self, origin: &str, size: u64) {
        let held = self.node.store().log_size(origin).unwrap_or(0);
        let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
        let head = heads.entry(origin.to_owned()).or_insert(Head {
            advertised: 0,
            behind_since: None,
        });
        head.advertised = head.advertised.max(size);
        if head.advertised > held && head.behind_since.is_none() {
            head.behind_since = Some(Instant::now());
        }
    }

    /// Whether `origin` is an active peer: one this node pulls.
    fn is_active(&self, origin: &str) -> bool {
        matches!(self.node.trust().get(origin), Ok(Some(peer)) if peer.state == PeerState::Active)
    }

    /// How far behind this node is on each active origin a peer has
    /// advertised, by what it holds now. Origins no longer active (not
    /// pulled) are left out, so the list is bounded by the trust store.
    pub fn lag(&self) -> Vec<OriginLag> {
        let now = Instant::now();
        let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
        heads.retain(|origin, _| self.is_active(origin));
        heads
            .iter_mut()
            .map(|(origin, head)| {
                let held = self.node.store().log_size(origin).unwrap_or(0);
                let entries = head.advertised.saturating_sub(held);
                if entries == 0 {
                    head.behind_since = None;
                }
                OriginLag {
                    origin: origin.clone(),
                    entries,
                    behind_for: head
                        .behind_since
                        .map_or(Duration::ZERO, |since| now.duration_since(since)),
                }
            })
            .collect()
    }

    fn update(&self, peer: &str, f: impl FnOnce(&mut PeerStatus)) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let status = peers.entry(peer.to_owned()).or_insert_with(|| PeerStatus {
            node_id: peer.to_owned(),
            ..PeerStatus::default()
        });
        f(status);
    }

    /// The batch size to ask for when pulling `origin` (0: the server's).
    fn batch_ask(&self, origin: &str) -> u32 {
        self.batch_asks
            .lock()
            .expect("batch asks lock")
            .get(origin)
            .copied()
            .unwrap_or(0)
    }

    /// After a pull of `origin` that committed `committed` entries: a pull
    /// that broke on the link before committing anything asks for half the
    /// batch next time (a flapping or slow link then still makes progress);
    /// a pull that completed leaves the size to the server again.
    fn adapt_batch(&self, origin: &str, result: &Result<u64, SyncError>, committed: u64) {
        let mut asks = self.batch_asks.lock().expect("batch asks lock");
        match result {
            Ok(_) => {
                asks.remove(origin);
            }
            Err(e) if !reachable_after(e) && committed == 0 => {
                let now = asks.get(origin).copied().unwrap_or(FIRST_SMALLER_BATCH * 2);
                let next = (now / 2).max(SMALLEST_BATCH_ASK);
                if next != now {
                    tracing::info!(
                        origin,
                        batch = next,
                        "pulls break before a batch completes: asking for smaller batches"
                    );
                }
                asks.insert(origin.to_owned(), next);
            }
            Err(_) => {}
        }
    }

    fn origin_lock(&self, origin: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.origin_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(origin.to_owned()).or_default().clone()
    }

    /// How long a peer may send nothing before a step with it is given up.
    fn idle(&self) -> Duration {
        Duration::from_secs(self.node.config().sync.idle_timeout_secs)
    }

    /// How long a round waits for its pulls before it reports.
    fn round_deadline(&self) -> Duration {
        Duration::from_secs(self.node.config().sync.round_timeout_secs)
    }

    /// Pulls every origin `peer` holds more of than this node, from `peer`.
    pub async fn sync_peer(
        self: &Arc<Self>,
        peer: Peer,
        client: Arc<dyn FederationPeer>,
    ) -> RoundReport {
        let id = peer.node_id.to_string();
        match self.ask(&peer, client.as_ref()).await {
            Ok(info) => self
                .pull_all(vec![(peer, client, info)])
                .await
                .pop()
                .unwrap_or_default(),
            Err(e) => self.failed(&id, e),
        }
    }

    /// Asks `peer` what it holds, within the idle timeout.
    async fn ask(&self, peer: &Peer, client: &dyn FederationPeer) -> Result<NodeInfo, SyncError> {
        let info = receive::within(&peer.node_id, self.idle(), client.node_info()).await??;
        if info.node_id != peer.node_id {
            return Err(SyncError::WrongNode {
                peer: peer.node_id.to_string(),
                found: info.node_id,
            });
        }
        // Each origin once: a round tries every listed holder of an origin
        // in turn, under the origin's lock, so a peer listing one origin
        // many times would be pulled from (and wait out) that many times.
        let mut listed = std::collections::HashSet::with_capacity(info.origins.len());
        if let Some(twice) = info.origins.iter().find(|h| !listed.insert(&h.origin)) {
            return Err(SyncError::Malformed {
                peer: peer.node_id.to_string(),
                message: format!(
                    "an origin \"{}\" is listed twice in what it holds",
                    crate::quote::short_text(&twice.origin)
                ),
            });
        }
        Ok(info)
    }

    /// Records that nothing could be pulled from `peer` this round.
    fn failed(&self, peer: &str, e: SyncError) -> RoundReport {
        tracing::warn!(peer = %peer, error = %e, "sync failed");
        // A node that answered with the wrong key is counted like any peer
        // that sent what it must not.
        self.pull_failed(peer, &e);
        self.update(peer, |s| s.consecutive_failures += 1);
        RoundReport {
            peer: peer.to_owned(),
            outcome: outcome_of(&e).into(),
            error: e.to_string(),
            ..RoundReport::default()
        }
    }

    /// Pulls, from the peers that answered, every origin this node trusts
    /// and lacks: one task per origin, all at once, each trying the
    /// origin's holders in turn (the origin itself first, then by size) so
    /// an origin whose holder failed or stalled is pulled from the next
    /// one in the same round. Waits at most the round deadline; a pull
    /// still running then goes on in the background and its peer is
    /// reported as `timeout`.
    async fn pull_all(
        self: &Arc<Self>,
        answered: Vec<(Peer, Arc<dyn FederationPeer>, NodeInfo)>,
    ) -> Vec<RoundReport> {
        let node = &self.node;
        let started = Instant::now();
        // Who holds how much of each origin worth pulling.
        let mut holders: BTreeMap<String, Vec<(usize, u64)>> = BTreeMap::new();
        let mut reports: Vec<RoundReport> = answered
            .iter()
            .map(|(peer, _, _)| RoundReport {
                peer: peer.node_id.to_string(),
                ok: true,
                outcome: "ok".into(),
                ..RoundReport::default()
            })
            .collect();
        let mut errors: Vec<Vec<SyncError>> = answered.iter().map(|_| Vec::new()).collect();
        for (i, (peer, _, info)) in answered.iter().enumerate() {
            self.holdings
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    peer.node_id.to_string(),
                    info.origins.iter().map(|h| h.origin.clone()).collect(),
                );
            for head in &info.origins {
                // A node pulls its own log only to recover it after a
                // restore (crate::backup): otherwise it is the one source.
                if head.origin == node.node_id() && !node.recovering() {
                    continue;
                }
                if self.is_active(&head.origin) {
                    self.advertised(&head.origin, head.size);
                }
                match self.worth_pulling(&head.origin, head.size) {
                    Ok(true) => holders
                        .entry(head.origin.clone())
                        .or_default()
                        .push((i, head.size)),
                    Ok(false) => {}
                    Err(e) => errors[i].push(e),
                }
            }
        }
        let peers: Arc<Vec<(Peer, Arc<dyn FederationPeer>)>> = Arc::new(
            answered
                .iter()
                .map(|(peer, client, _)| (peer.clone(), client.clone()))
                .collect(),
        );
        let mut tasks = tokio::task::JoinSet::new();
        // The holders of each origin whose task has not reported.
        let mut unfinished: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (origin, mut holding) in holders {
            // The origin serves its own log first; then the fullest copy.
            holding.sort_by_key(|(i, size)| {
                (
                    peers[*i].0.node_id.as_str() != origin,
                    std::cmp::Reverse(*size),
                    *i,
                )
            });
            unfinished.insert(origin.clone(), holding.iter().map(|(i, _)| *i).collect());
            let (this, peers) = (self.clone(), peers.clone());
            tasks.spawn(async move {
                let attempts = this.pull_from_holders(&origin, &holding, &peers).await;
                (origin, attempts)
            });
        }
        let deadline = tokio::time::sleep(self.round_deadline());
        tokio::pin!(deadline);
        let mut finished = Vec::new();
        loop {
            tokio::select! {
                joined = tasks.join_next() => match joined {
                    Some(Ok((origin, attempts))) => {
                        unfinished.remove(&origin);
                        finished.extend(attempts);
                    }
                    Some(Err(e)) => tracing::error!(error = %e, "a pull task failed"),
                    None => break,
                },
                _ = &mut deadline => {
                    // The pulls go on; their outcome reaches the status.
                    tasks.detach_all();
                    break;
                }
            }
        }
        let mut pending = vec![false; answered.len()];
        for i in unfinished.values().flatten() {
            pending[*i] = true;
        }
        for attempt in finished {
            let report = &mut reports[attempt.holder];
            match attempt.result {
                // Nothing was asked of the peer: no fault of it.
                Err(e @ SyncError::HeldBack { .. }) => report.held_back.push(e.to_string()),
                result => {
                    report.entries += attempt.entries;
                    report.origins.push(attempt.origin);
                    if let Err(e) = result {
                        errors[attempt.holder].push(e);
                    }
                }
            }
        }
        let waited = started.elapsed().as_secs();
        for (i, ((peer, _, info), report)) in answered.iter().zip(&mut reports).enumerate() {
            let errors = std::mem::take(&mut errors[i]);
            if pending[i] {
                report.ok = false;
                report.outcome = "timeout".into();
                report.error = format!(
                    "{}: still pulling after {waited} s; the pull goes on in the background",
                    peer.node_id
                );
                continue;
            }
            if let Some(first) = errors.first() {
                report.ok = false;
                report.outcome = outcome_of(first).into();
                report.error = errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                self.update(&peer.node_id, |s| s.consecutive_failures += 1);
                continue;
            }
            let lag = info
                .origins
                .iter()
                .filter(|head| head.origin != node.node_id())
                .filter(|head| self.worth_pulling(&head.origin, 0).unwrap_or(false))
                .map(|head| {
                    let held = node.store().log_size(&head.origin).unwrap_or(0);
                    head.size.saturating_sub(held)
                })
                .sum();
            self.update(&peer.node_id, |s| {
                s.reachable = true;
                s.last_sync = crate::date::now_rfc3339();
                s.lag = lag;
                s.consecutive_failures = 0;
                // The peer works again: an error from before would mislead.
                s.last_error.clear();
            });
        }
        reports
    }

    /// Whether `origin` is trusted, active, not frozen, and `size` is more
    /// than this node holds of it (`size` 0: whether it may be pulled).
    fn worth_pulling(&self, origin: &str, size: u64) -> Result<bool, SyncError> {
        let node = &self.node;
        if origin == node.node_id() {
            // Verified with this node's own key, as any peer verifies it.
            if !node.recovering() || node.store().is_frozen(origin)? {
                return Ok(false);
            }
        } else {
            let Ok(Some(origin_peer)) = node.trust().get(origin) else {
                return Ok(false);
            };
            if origin_peer.state != PeerState::Active || node.store().is_frozen(origin)? {
                return Ok(false);
            }
        }
        let ours = node.store().log_size(origin)?;
        // A refill still due (one that failed, or a relay that lacked the
        // audience) is asked of a holder of that audience with nothing new.
        Ok(size == 0
            || size > ours
            || (size == ours && self.lacks_checkpoint(origin, ours)?)
            || node.store().refill_due(origin)?.is_some_and(|at| size > at)
            || (size == ours && self.mendable(origin)?))
    }

    /// Whether `origin` is held back by a key set stored here with other
    /// signatures than the origin's: a holder of its log may put it right
    /// (`Replicator::refetch_key_sets`), with nothing new to pull.
    fn mendable(&self, origin: &str) -> Result<bool, SyncError> {
        if !matches!(
            origin_chain(&self.node, origin),
            Err(SyncError::HeldBack { .. })
        ) {
            return Ok(false);
        }
        Ok(receive::damaged_key_set(&self.node, origin)?.is_some())
    }

    /// Whether the checkpoint held for `origin` covers less than the `held`
    /// entries (a crash took it): a pull of nothing new brings it back.
    fn lacks_checkpoint(&self, origin: &str, held: u64) -> Result<bool, SyncError> {
        if held == 0 {
            return Ok(false);
        }
        let signed = self
            .node
            .store()
            .checkpoint(origin)?
            .as_deref()
            .and_then(crate::log::stored_checkpoint)
            .map(|c| c.size);
        Ok(signed.is_none_or(|signed| signed < held))
    }

    /// Pulls `origin` from its holders in turn, under the origin's lock,
    /// until this node holds what the holders advertised or none is left.
    async fn pull_from_holders(
        &self,
        origin: &str,
        holding: &[(usize, u64)],
        peers: &[(Peer, Arc<dyn FederationPeer>)],
    ) -> Vec<Attempt> {
        let node = &self.node;
        let lock = self.origin_lock(origin);
        let _guard = lock.lock().await;
        let mut attempts = Vec::new();
        // An origin whose chain does not verify here is held back whoever
        // serves it (`docs/security.md`, the operator's files): no holder
        // is pulled from, and none is blamed. Only a key set stored with
        // other signatures than the origin's is first asked of the holders
        // again, and what they send judged as any pulled entry.
        if let (Err(e @ SyncError::HeldBack { .. }), Some((first, _))) =
            (origin_chain(node, origin), holding.first())
        {
            if !self
                .refetch_key_sets(origin, holding, peers, &mut attempts)
                .await
            {
                tracing::warn!(origin = %origin, error = %e, "origin held back: not pulled");
                attempts.push(Attempt::failed(*first, origin, e));
                return attempts;
            }
        }
        for (i, size) in holding {
            let (peer, client) = &peers[*i];
            let ours = match node.store().log_size(origin) {
                Ok(ours) => ours,
                Err(e) => {
                    attempts.push(Attempt::failed(*i, origin, e.into()));
                    break;
                }
            };
            let lacks = match self.lacks_checkpoint(origin, ours) {
                Ok(lacks) => lacks,
                Err(e) => {
                    attempts.push(Attempt::failed(*i, origin, e));
                    break;
                }
            };
            if *size < ours || (*size == ours && !lacks) {
                self.refill_if_due(origin, &peer.node_id, client.as_ref(), *size)
                    .await;
                continue;
            }
            if node.store().is_frozen(origin).unwrap_or(true) {
                break;
            }
            let ask = self.batch_ask(origin);
            let result = receive::pull_origin(
                node,
                client.as_ref(),
                &peer.node_id,
                origin,
                ours,
                ask,
                self.idle(),
            )
            .await;
            if let Err(e @ SyncError::HeldBack { .. }) = result {
                // The chain broke since it was checked above.
                tracing::warn!(origin = %origin, error = %e, "origin held back: not pulled");
                attempts.push(Attempt::failed(*i, origin, e));
                break;
            }
            let committed = node.store().log_size(origin).map_or(0, |now| now - ours);
            self.adapt_batch(origin, &result, committed);
            node.metrics().pulls.inc(match &result {
                Ok(_) => PullOutcome::Ok,
                Err(e) => pull_outcome(e),
            });
            let attempt = match result {
                Ok(entries) => {
                    self.update(&peer.node_id, |s| s.entries_received += entries);
                    Attempt {
                        holder: *i,
                        origin: origin.to_owned(),
                        entries,
                        result: Ok(()),
                    }
                }
                Err(e) => {
                    tracing::warn!(peer = %peer.node_id, origin = %origin, error = %e, "pull failed");
                    self.pull_failed(&peer.node_id, &e);
                    Attempt::failed(*i, origin, e)
                }
            };
            let refill = attempt.result.is_ok();
            attempts.push(attempt);
            if refill {
                let size = node.store().log_size(origin).unwrap_or(0);
                self.refill_if_due(origin, &peer.node_id, client.as_ref(), size)
                    .await;
            }
        }
        attempts
    }

    /// Counts a pull from `peer` that failed with `e` in its status.
    fn pull_failed(&self, peer: &str, e: &SyncError) {
        self.update(peer, |s| {
            s.reachable = reachable_after(e);
            s.last_error = e.to_string();
            if e.is_rejection() {
                s.rejected += 1;
            }
        });
        self.count_rejection(e);
    }

    /// While `origin` is held back by a key set stored here with other
    /// signatures than the origin's (`receive::damaged_key_set`), asks its
    /// holders in turn, each that holds the entry, for that one entry and
    /// puts the origin's envelope in place of the stored one
    /// (`receive::refetch_key_set`); then the next such set, if any. A
    /// holder that sends anything else is counted as for a bad entry of a
    /// pull, and the next one is asked; one that does not answer is only
    /// logged. Returns whether the origin's chain verifies now. Call under
    /// the origin's lock.
    async fn refetch_key_sets(
        &self,
        origin: &str,
        holding: &[(usize, u64)],
        peers: &[(Peer, Arc<dyn FederationPeer>)],
        attempts: &mut Vec<Attempt>,
    ) -> bool {
        let node = &self.node;
        let mut mended: Option<u64> = None;
        'holders: for (i, size) in holding {
            let (peer, client) = &peers[*i];
            loop {
                let damaged = match receive::damaged_key_set(node, origin) {
                    Ok(Some(damaged)) => damaged,
                    Ok(None) => break 'holders,
                    Err(e) => {
                        tracing::warn!(origin = %origin, error = %e, "cannot read the origin's key sets");
                        break 'holders;
                    }
                };
                let index = damaged.index;
                // Each set put right moves the break forward, or ends it.
                if mended.is_some_and(|at| index <= at) {
                    break 'holders;
                }
                if *size <= index {
                    continue 'holders;
                }
                let result = receive::refetch_key_set(
                    node,
                    client.as_ref(),
                    &peer.node_id,
                    origin,
                    damaged,
                    self.idle(),
                )
                .await;
                match result {
                    Ok(()) => {
                        tracing::info!(
                            origin = %origin,
                            index,
                            peer = %peer.node_id,
                            "key set stored with other signatures than the origin's replaced by the origin's, fetched from a peer"
                        );
                        mended = Some(index);
                    }
                    // What the peer sent is blamed as a bad entry of a pull.
                    Err(e) if e.is_rejection() => {
                        tracing::warn!(
                            peer = %peer.node_id,
                            origin = %origin,
                            index,
                            error = %e,
                            "key set fetched again refused"
                        );
                        self.pull_failed(&peer.node_id, &e);
                        attempts.push(Attempt::failed(*i, origin, e));
                        continue 'holders;
                    }
                    // A peer that did not answer (gone, busy, refusing
                    // the pull) is not: no failure is counted that would
                    // delay the other origins it serves.
                    Err(e) => {
                        tracing::warn!(
                            peer = %peer.node_id,
                            origin = %origin,
                            index,
                            error = %e,
                            "key set not fetched again"
                        );
                        continue 'holders;
                    }
                }
            }
        }
        origin_chain(node, origin).is_ok()
    }

    /// When an audience of `origin` granted this node more than it held,
    /// asks `peer` (which holds `size` entries of it) for the entries held
    /// here as digests only, once the peer holds that audience too
    /// (`receive::refill_origin`). A failure is logged and tried again in
    /// the next round.
    async fn refill_if_due(
        &self,
        origin: &str,
        peer: &str,
        client: &dyn FederationPeer,
        size: u64,
    ) {
        let node = &self.node;
        let Ok(Some(at)) = node.store().refill_due(origin) else {
            return;
        };
        if size <= at {
            return;
        }
        match receive::refill_origin(node, client, peer, origin, at, self.idle()).await {
            Ok((restored, covers)) => {
                tracing::info!(peer = %peer, origin = %origin, restored, "refilled after a wider audience");
                if covers {
                    if let Err(e) = node.store().refill_done(origin, at) {
                        tracing::warn!(origin = %origin, error = %e, "cannot clear the refill");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(peer = %peer, origin = %origin, error = %e, "refill failed");
            }
        }
    }

    /// One round: every active peer not in backoff (or all, when `force`).
    /// Peers are dialed and asked at once, each within the idle timeout,
    /// and the round reports within its deadline whatever a peer does.
    pub async fn round(self: &Arc<Self>, force: bool) -> Vec<RoundReport> {
        let peers = match self.node.trust().active() {
            Ok(peers) => peers,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the trust store");
                return Vec::new();
            }
        };
        let now = Instant::now();
        let expected = peers.len();
        let mut dials = tokio::task::JoinSet::new();
        for peer in peers {
            let due = {
                let next = self.next_try.lock().unwrap_or_else(|p| p.into_inner());
                next.get(peer.node_id.as_str()).is_none_or(|at| *at <= now)
            };
            if !due && !force {
                continue;
            }
            let this = self.clone();
            dials.spawn(async move {
                let id = peer.node_id.to_string();
                let dialed =
                    match receive::within(&id, this.idle(), (this.connector)(peer.clone())).await {
                        Ok(Ok(client)) => Ok(client),
                        Ok(Err(e)) | Err(e) => Err(e),
                    };
                let answer = match dialed {
                    Ok(client) => match this.ask(&peer, client.as_ref()).await {
                        Ok(info) => Ok((peer, client, info)),
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                };
                (id, answer)
            });
        }
        let mut answered = Vec::new();
        let mut reports = Vec::new();
        while let Some(joined) = dials.join_next().await {
            match joined {
                Ok((_, Ok(answer))) => answered.push(answer),
                Ok((id, Err(e))) => reports.push(self.failed(&id, e)),
                Err(e) => tracing::error!(error = %e, "a dial task failed"),
            }
        }
        let recovering = self.node.recovering();
        let own = self.node.node_id().to_string();
        let own_held_by_peers: Vec<u64> = answered
            .iter()
            .flat_map(|(_, _, info)| &info.origins)
            .filter(|head| head.origin == own)
            .map(|head| head.size)
            .collect();
        let witnesses: Vec<(String, Arc<dyn FederationPeer>)> = answered
            .iter()
            .map(|(peer, client, _)| (peer.node_id.to_string(), client.clone()))
            .collect();
        let started = Instant::now();
        reports.extend(self.pull_all(answered).await);
        // After the pulls: the checkpoints held here are the newest this
        // round could verify; each peer's are compared with them, within
        // what is left of the round's deadline (then in the background,
        // where what it finds reaches the status and the store).
        let this = self.clone();
        let witnessing = tokio::spawn(async move { this.witness_all(witnesses).await });
        let left = self.round_deadline().saturating_sub(started.elapsed());
        if let Ok(Ok(found)) = tokio::time::timeout(left, witnessing).await {
            for (peer, problems) in found {
                if let Some(report) = reports.iter_mut().find(|r| r.peer == peer) {
                    report.ok = false;
                    report.outcome = "error".into();
                    if !report.error.is_empty() {
                        report.error.push_str("; ");
                    }
                    report.error.push_str(&problems.join("; "));
                }
            }
        }
        reports.sort_by(|a, b| a.peer.cmp(&b.peer));
        if recovering {
            self.end_recovery_if_whole(expected, &reports, &own_held_by_peers);
        }
        for report in &reports {
            let failures = self
                .status()
                .get(&report.peer)
                .map(|s| s.consecutive_failures)
                .unwrap_or(0);
            let mut next = self.next_try.lock().unwrap_or_else(|p| p.into_inner());
            next.insert(report.peer.clone(), Instant::now() + backoff(failures));
        }
        reports
    }

    /// Ends the recovery of a restored node once every active peer was
    /// reached in this round (`expected` of them, each `ok`), and this node
    /// holds, with a checkpoint over it, as much of its own log as any of
    /// them (`own_held_by_peers`). A peer that was not reached may hold
    /// more, so recovery waits for it (or for the operator).
    fn end_recovery_if_whole(
        &self,
        expected: usize,
        reports: &[RoundReport],
        own_held_by_peers: &[u64],
    ) {
        let node = &self.node;
        let own = node.node_id().as_str();
        let Ok(ours) = node.store().log_size(own) else {
            return;
        };
        let reached = expected > 0 && reports.len() == expected && reports.iter().all(|r| r.ok);
        let covered = !self.lacks_checkpoint(own, ours).unwrap_or(true);
        let highest = own_held_by_peers.iter().copied().max().unwrap_or(0);
        if !reached || !covered || highest > ours {
            tracing::info!(
                held = ours,
                highest,
                reached,
                "recovering the own log from peers"
            );
            return;
        }
        if let Err(e) = node.finish_recovery() {
            tracing::error!(error = %e, "cannot end recovery");
        }
    }

    /// The background loop: a round every `interval` (with jitter), or at
    /// once when woken by a hint or `sync now`, until `stop` turns true.
    pub async fn run(
        self: Arc<Self>,
        interval: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let wait = interval + jitter(interval / 5);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            self.round(false).await;
            // Key upkeep rides on the round: renew this node's set before
            // it lapses, and flag origins whose set did.
            let node = self.node.clone();
            let _ = tokio::task::spawn_blocking(move || node.key_upkeep()).await;
        }
    }

    /// `peer` says its copy of `origin` grew to `size`: if that is more
    /// than this node holds, sync with `peer` alone, at once. One hinted
    /// sync per peer runs at a time: hints that arrive meanwhile are
    /// coalesced into one more sync when it ends, so however fast a peer
    /// hints, this node pulls from it back to back at most, and each pull
    /// brings what the peer really added. A peer whose hinted sync did not
    /// bring what its hints announced (it hinted entries it does not serve,
    /// or the pull failed) has its hints held to one round per
    /// `limits.hint_interval_secs`: they are deferred to the interval's
    /// end and coalesced there, so a peer cannot make this node sync
    /// without pause for nothing. Hints are advisory and carry nothing.
    /// Returns whether a sync starts now.
    pub fn hinted(self: &Arc<Self>, peer: &str, origin: &str, size: u64) -> bool {
        let ours = self.node.store().log_size(origin).unwrap_or(0);
        // Only origins this node pulls: what a peer's hints may name stays
        // bounded by the trust store.
        if size <= ours || !self.is_active(origin) {
            return false;
        }
        let now = Instant::now();
        let mut hints = self.hints.lock().unwrap_or_else(|p| p.into_inner());
        let state = hints.entry(peer.to_owned()).or_default();
        let announced = state.announced.entry(origin.to_owned()).or_default();
        *announced = (*announced).max(size);
        if let Some(until) = state.held_until.filter(|until| now < *until) {
            drop(hints);
            self.defer_hint(peer, until);
            tracing::debug!(peer = %peer, origin = %origin, "hint deferred: this peer's hints are held to the interval");
            return false;
        }
        if state.running {
            state.again = true;
            return false;
        }
        state.running = true;
        drop(hints);
        self.retry_now(peer);
        tokio::spawn(self.clone().hinted_sync(peer.to_owned()));
        true
    }

    /// Syncs with `peer` for its hints until none came during the last
    /// sync; holds the peer's hints to the interval when a sync did not
    /// bring what they announced.
    async fn hinted_sync(self: Arc<Self>, peer: String) {
        loop {
            let announced = {
                let mut hints = self.hints.lock().unwrap_or_else(|p| p.into_inner());
                let state = hints.entry(peer.clone()).or_default();
                state.again = false;
                std::mem::take(&mut state.announced)
            };
            self.sync_with(&peer).await;
            let unserved: Vec<&String> = announced
                .iter()
                .filter(|(origin, size)| self.node.store().log_size(origin).unwrap_or(0) < **size)
                .map(|(origin, _)| origin)
                .collect();
            let mut hints = self.hints.lock().unwrap_or_else(|p| p.into_inner());
            let state = hints.entry(peer.clone()).or_default();
            if !unserved.is_empty() {
                let interval = Duration::from_secs(self.node.config().limits.hint_interval_secs);
                state.held_until = Some(Instant::now() + interval);
                tracing::info!(peer = %peer, origins = ?unserved, "hints held to one round per interval: a hinted sync did not bring what they announced");
            }
            if state.again && unserved.is_empty() {
                continue;
            }
            state.running = false;
            let deferred = state.again.then_some(state.held_until).flatten();
            state.again = false;
            drop(hints);
            if let Some(until) = deferred {
                self.defer_hint(&peer, until);
            }
            return;
        }
    }

    /// Dials `peer` and pulls from it every origin it holds more of.
    async fn sync_with(self: &Arc<Self>, peer: &str) {
        let pinned = match self.node.trust().get(peer) {
            Ok(Some(pinned)) if pinned.state == PeerState::Active => pinned,
            _ => return,
        };
        match receive::within(peer, self.idle(), (self.connector)(pinned.clone())).await {
            Ok(Ok(client)) => {
                self.sync_peer(pinned, client).await;
            }
            Ok(Err(e)) | Err(e) => {
                self.failed(peer, e);
            }
        }
    }

    /// A hint from `peer` came over its pinned connection, so it is up: the
    /// sync or round the hint starts tries it whatever backoff earlier
    /// failures (say, before it pinned this node) left it with.
    fn retry_now(&self, peer: &str) {
        self.next_try
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(peer);
    }

    /// Starts a round at `at` for `peer`'s hints, unless one is pending.
    fn defer_hint(self: &Arc<Self>, peer: &str, at: Instant) {
        if !self
            .deferred_hints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(peer.to_owned())
        {
            return;
        }
        let (this, peer) = (self.clone(), peer.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            this.deferred_hints
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&peer);
            this.retry_now(&peer);
            this.wake();
        });
    }

    /// Tells every active peer, whenever this node's own log grows, so a
    /// change is searchable across the federation within seconds; runs
    /// until `stop` turns true. A lost hint only delays the change to the
    /// peer's next round.
    pub async fn hint_on_growth(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let node = self.node.clone();
        let mut changes = node.subscribe();
        let mut last = node.store().log_size(node.node_id()).unwrap_or(0);
        loop {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = stop.wait_for(|s| *s) => return,
            }
            let size = node.store().log_size(node.node_id()).unwrap_or(last);
            if size > last {
                last = size;
                self.send_hints(node.node_id(), size);
            }
        }
    }

    fn send_hints(&self, origin: &str, size: u64) {
        let Ok(peers) = self.node.trust().active() else {
            return;
        };
        for peer in peers {
            let connector = self.connector.clone();
            let origin = origin.to_owned();
            tokio::spawn(async move {
                let id = peer.node_id.clone();
                let result = tokio::time::timeout(HINT_TIMEOUT, async {
                    connector(peer).await?.hint(&origin, size).await
                })
                .await;
                if let Ok(Err(e)) = result {
                    tracing::debug!(peer = %id, error = %e, "hint not delivered");
                }
            });
        }
    }
}

/// What a peer's hints have asked of this node.
#[derive(Debug, Default)]
struct HintState {
    /// A sync the peer's hints started is running.
    running: bool,
    /// Another hint came while it ran: sync once more when it ends.
    again: bool,
    /// The largest log size hinted per origin since the running sync began.
    announced: BTreeMap<String, u64>,
    /// The peer's hints are held to one round per interval until then.
    held_until: Option<Instant>,
}

/// How long a hint may take before it is given up.
const HINT_TIMEOUT: Duration = Duration::from_secs(3);

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

#[cfg(test)]
mod tests;

/// The key chain an origin's entries must verify against: this node's
/// own, or the one stored for an active peer, verified from its pinned root.
pub(crate) fn origin_chain(
    node: &Node,
    origin: &str,
) -> Result<Arc<crate::keyset::KeyChain>, SyncError> {
    if origin == node.node_id() {
        return Ok(node.own_chain());
    }
    match node.trust().get(origin)? {
        Some(peer) if peer.state == PeerState::Active => {
            node.peer_chain(&peer).map_err(|e| node_error(origin, e))
        }
        _ => Err(SyncError::NotTrusted(origin.to_owned())),
    }
}

/// An error of this node about `origin` met while syncing it: a key chain
/// that does not verify is the chain as stored here, not anything a peer
/// sent, so the origin is held back.
pub(crate) fn node_error(origin: &str, e: crate::node::NodeError) -> SyncError {
    match e {
        crate::node::NodeError::Sign(source) => SyncError::HeldBack {
            origin: origin.to_owned(),
            source,
        },
        crate::node::NodeError::Store(e) => SyncError::Store(e),
        other => SyncError::Worker {
            origin: origin.to_owned(),
            message: other.to_string(),
        },
    }
}
