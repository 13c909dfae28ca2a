//! The per-origin append-only log: an RFC 9162 Merkle tree over the signed
//! entries, and the checkpoints that commit to it.
//!
//! A leaf binds two things: the subject of the entry (which record of which
//! origin it is about) and the exact signed payload bytes. A peer that may not
//! see an entry can still be given its two digests; it recomputes the leaf and
//! checks the tree against the origin's signed checkpoint, and learns only
//! that some record it cannot see changed (see `docs/decisions/log-leaves.md`).

use std::collections::HashMap;

use prost::Message;
use sha2::{Digest, Sha256};

use crate::merkle::{self, Hash, NodeStore};
use crate::proto::{Checkpoint, Envelope};
use crate::sign::{NodeKey, CHECKPOINT_TYPE};
use crate::store::{LogAppend, RecordState, Store, StoreError};

/// Subject of key-set entries (record ids are never empty).
pub const KEYSET_SUBJECT: &str = "";

/// Digest naming what an entry is about: one record of one origin.
pub fn subject_digest(origin: &str, subject: &str) -> Hash {
    let mut h = Sha256::new();
    h.update(b"meridian-subject-v1\0");
    h.update(origin.as_bytes());
    h.update([0]);
    h.update(subject.as_bytes());
    h.finalize().into()
}

/// Digest of a signed payload.
pub fn payload_digest(payload: &[u8]) -> Hash {
    Sha256::digest(payload).into()
}

/// The Merkle leaf of an entry, from its two digests.
pub fn leaf_from_digests(subject: &Hash, payload: &Hash) -> Hash {
    let mut data = [0u8; 64];
    data[..32].copy_from_slice(subject);
    data[32..].copy_from_slice(payload);
    merkle::leaf_hash(&data)
}

/// The Merkle leaf of an entry about `subject` of `origin` with `payload`.
pub fn entry_leaf(origin: &str, subject: &str, payload: &[u8]) -> Hash {
    leaf_from_digests(&subject_digest(origin, subject), &payload_digest(payload))
}

/// Merkle nodes as stored, plus the ones an append in progress has made.
struct PendingNodes<'a> {
    store: &'a Store,
    origin: &'a str,
    pending: HashMap<(u32, u64), Hash>,
}

impl NodeStore for PendingNodes<'_> {
    type Error = StoreError;

    fn node(&self, level: u32, index: u64) -> Result<Option<Hash>, StoreError> {
        match self.pending.get(&(level, index)) {
            Some(hash) => Ok(Some(*hash)),
            None => self.store.merkle_node(self.origin, level, index),
        }
    }
}

/// Builds one atomic append to an origin's log.
pub struct Appender<'a> {
    nodes: PendingNodes<'a>,
    append: LogAppend,
}

impl<'a> Appender<'a> {
    /// Starts an append at the current end of `origin`'s log.
    pub fn begin(store: &'a Store, origin: &'a str) -> Result<Self, StoreError> {
        let base_size = store.log_size(origin)?;
        Ok(Self {
            nodes: PendingNodes {
                store,
                origin,
                pending: HashMap::new(),
            },
            append: LogAppend {
                origin: origin.to_owned(),
                base_size,
                ..LogAppend::default()
            },
        })
    }

    /// Index the next pushed entry gets.
    pub fn next_index(&self) -> u64 {
        self.append.new_size()
    }

    /// Adds the next entry: its encoded envelope, its leaf and, for a record
    /// entry, the record's new state.
    pub fn push(
        &mut self,
        envelope: Vec<u8>,
        leaf: Hash,
        record: Option<(String, RecordState)>,
    ) -> Result<(), StoreError> {
        let index = self.next_index();
        let nodes = merkle::append_nodes(&self.nodes, index, leaf).map_err(merkle_error)?;
        for node in nodes {
            let at = (node.level, node.index);
            self.nodes.pending.insert(at, node.hash);
            self.append.nodes.push((at, node.hash));
        }
        self.append.entries.push((index, envelope));
        if let Some(record) = record {
            self.append.records.push(record);
        }
        Ok(())
    }

    /// The tree head over the log as it would stand after this append.
    pub fn root(&self) -> Result<Hash, StoreError> {
        merkle::root(&self.nodes, self.next_index()).map_err(merkle_error)
    }

    /// Number of entries pushed so far.
    pub fn len(&self) -> usize {
        self.append.entries.len()
    }

    /// Whether nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.append.entries.is_empty()
    }

    /// The append, ready for [`Store::commit`].
    pub fn finish(self) -> LogAppend {
        self.append
    }
}

fn merkle_error(e: merkle::TreeError<StoreError>) -> StoreError {
    match e {
        merkle::TreeError::Store(e) => e,
        other => StoreError::Corrupt {
            tree: "merkle_nodes",
            detail: other.to_string(),
        },
    }
}

/// The tree head of the first `size` entries of `origin`'s log.
pub fn root(store: &Store, origin: &str, size: u64) -> Result<Hash, StoreError> {
    let nodes = PendingNodes {
        store,
        origin,
        pending: HashMap::new(),
    };
    merkle::root(&nodes, size).map_err(merkle_error)
}

/// The RFC 9162 consistency proof between sizes `old` and `new` of
/// `origin`'s log.
pub fn consistency_proof(
    store: &Store,
    origin: &str,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, StoreError> {
    let nodes = PendingNodes {
        store,
        origin,
        pending: HashMap::new(),
    };
    merkle::consistency_proof(&nodes, old, new).map_err(merkle_error)
}

/// Signs a checkpoint of `origin`'s log as it stands and stores it. Call only
/// after the entries it covers were flushed.
pub fn checkpoint(store: &Store, key: &NodeKey, origin: &str) -> Result<Envelope, StoreError> {
    let size = store.log_size(origin)?;
    let checkpoint = Checkpoint {
        origin: origin.to_owned(),
        size,
        root: root(store, origin, size)?.to_vec(),
    };
    let envelope = key.sign(CHECKPOINT_TYPE, checkpoint.encode_to_vec());
    store.put_checkpoint(origin, &envelope.encode_to_vec())?;
    Ok(envelope)
}
