//! The per-origin append-only log (DESIGN §4): an RFC 9162 Merkle tree over
//! the signed entries, the checkpoints that commit to it, and the one form
//! in which an entry is stored.
//!
//! A leaf binds two things: the subject of the entry (which record of which
//! origin it is about) and the exact signed payload bytes. A peer that may not
//! see an entry can still be given its two digests; it recomputes the leaf and
//! checks the tree against the origin's signed checkpoint, and learns only
//! that some record it cannot see changed (see `docs/decisions/log-leaves.md`).
//!
//! Nothing here touches the database: [`Appender`] reads Merkle nodes through
//! [`NodeStore`] and produces a [`LogAppend`] that `store` commits whole.

use std::collections::HashMap;

use prost::Message;
use sha2::{Digest, Sha256};

use crate::ids::LogIndex;
use crate::merkle::{self, Hash, NodeStore, TreeError};
use crate::proto::{
    log_entry::Body, Audience, Checkpoint, DatasetRecord, Envelope, KeySet, LogEntry,
};
use crate::sign::{NodeKey, AUDIENCE_TYPE, CHECKPOINT_TYPE, KEYSET_TYPE, RECORD_TYPE};
use crate::visibility::public_version;

/// Subject of key-set entries, and of every other entry that is not about
/// a record (audiences, and kinds a later version adds): record ids are
/// never empty. A node that does not know an entry's kind computes its leaf
/// with this subject, so the origin must too.
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

/// One log entry as this node stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredEntry {
    /// The envelope exactly as the origin signed it; verified before it was
    /// stored.
    Signed(Envelope),
    /// An entry this node may not see: only its two leaf digests.
    Redacted { subject: Hash, payload: Hash },
}

/// First byte of a stored redacted entry. An encoded `Envelope` never starts
/// with a zero byte (its first field tag is non-zero), so the two forms
/// cannot be confused.
const REDACTED_MARK: u8 = 0;

impl StoredEntry {
    /// The stored bytes: the envelope's encoding, or the mark and digests.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            StoredEntry::Signed(envelope) => envelope.encode_to_vec(),
            StoredEntry::Redacted { subject, payload } => {
                let mut out = Vec::with_capacity(65);
                out.push(REDACTED_MARK);
                out.extend_from_slice(subject);
                out.extend_from_slice(payload);
                out
            }
        }
    }

    /// Reads stored bytes back; the one decoder of stored entries.
    pub fn decode(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        if bytes.len() == 65 && bytes[0] == REDACTED_MARK {
            let mut subject = [0u8; 32];
            let mut payload = [0u8; 32];
            subject.copy_from_slice(&bytes[1..33]);
            payload.copy_from_slice(&bytes[33..65]);
            return Ok(StoredEntry::Redacted { subject, payload });
        }
        Envelope::decode(bytes).map(StoredEntry::Signed)
    }

    /// The payload of a signed entry, decoded without checking the signature
    /// again: stored entries were verified when they were written.
    pub fn entry(&self) -> Result<Option<LogEntry>, prost::DecodeError> {
        match self {
            StoredEntry::Signed(envelope) => {
                LogEntry::decode(envelope.payload.as_slice()).map(Some)
            }
            StoredEntry::Redacted { .. } => Ok(None),
        }
    }

    /// For a key set that revokes signing keys: the first log position
    /// whose entries one of its revocations distrusts.
    pub fn revoked_from(&self) -> Option<u64> {
        match self {
            StoredEntry::Signed(envelope) if envelope.payload_type == KEYSET_TYPE => {
                match self.entry() {
                    Ok(Some(LogEntry {
                        body: Some(Body::KeySet(set)),
                        ..
                    })) => set.revocations.iter().map(|r| r.from_index).min(),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// What the log says of one record without reading its entry: its latest
/// version, where that version sits in the log, whether it is a
/// tombstone, and where its latest version anonymous callers saw whole is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordState {
    pub version: u64,
    /// Position of the entry holding this version in the origin's log.
    pub log_index: LogIndex,
    pub deleted: bool,
    /// The record's latest version that anonymous callers see whole, noted
    /// as each version is stored: what an OAI-PMH harvester is told of a
    /// record no longer public, without reading any of its versions.
    pub last_public: LastPublic,
}

/// Where a record's latest version that anonymous callers see whole
/// (PUBLIC, not a tombstone: [`public_version`]) sits in its origin's log,
/// as the record's state notes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastPublic {
    /// Not noted: a state written before the notes were kept, and no
    /// version stored since was public. The record's versions tell
    /// (`oai` walks them back, a bounded number).
    Unnoted,
    /// None of the versions this node stored whole was.
    Never,
    /// The version at this position.
    At(LogIndex),
}

impl LastPublic {
    /// The note once a version at `index` followed: that version when it
    /// is `public`, else the note as it was.
    pub fn followed_by(self, index: LogIndex, public: bool) -> Self {
        if public {
            LastPublic::At(index)
        } else {
            self
        }
    }
}

impl RecordState {
    /// The state once `record` (a version of it, or its tombstone) is
    /// entry `index` of its origin's log, after `previous` (the state held
    /// before, `None` when none was): the note of its latest public
    /// version carried forward, or this one when it is public. One rule for
    /// imports, pulls, refills and fsck.
    pub fn of_version(
        record: &DatasetRecord,
        index: LogIndex,
        previous: Option<&RecordState>,
    ) -> RecordState {
        let before = previous.map_or(LastPublic::Never, |state| state.last_public);
        RecordState {
            version: record.version,
            log_index: index,
            deleted: record.deleted,
            last_public: before.followed_by(index, public_version(record)),
        }
    }

    /// The state after digests at `index` superseded this held version
    /// (a version this node may not see): a deletion there, its note of
    /// the latest public version carried forward, or `None` when nothing
    /// is held to withdraw. One rule for apply and for fsck.
    pub fn withdrawn_at(self, index: LogIndex) -> Option<RecordState> {
        (!self.deleted && self.log_index < index).then_some(RecordState {
            log_index: index,
            deleted: true,
            ..self
        })
    }
}

/// Everything one append to an origin log changes, committed at once.
#[derive(Debug, Default)]
pub struct LogAppend {
    pub origin: String,
    /// Log size the append was prepared against.
    pub base_size: u64,
    /// `(index, stored entry bytes)`, contiguous from `base_size`.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// New state of each record the entries touch.
    pub records: Vec<(String, RecordState)>,
    /// Subject digest and id of each record of another origin the entries
    /// bring: a later entry about it that arrives as digests only names it
    /// by this digest ([`crate::store::Store::record_by_subject`]).
    pub subjects: Vec<(Hash, String)>,
    /// Merkle nodes completed by the entries: `((level, index), hash)`.
    pub nodes: Vec<((u32, u64), Hash)>,
    /// Positions of the key-set entries among the entries.
    pub key_sets: Vec<u64>,
    /// Where the entries' revocations begin, if they revoke keys: the
    /// records stored from there are restated to harvesters
    /// ([`crate::store::Restatement`]), some now set aside.
    pub restate_from: Option<u64>,
    /// Positions of the audience entries among the entries.
    pub audiences: Vec<u64>,
    /// Records of the origin withdrawn by this append without an entry of
    /// their own: held here, and no longer for this node by the audience
    /// the append brings (`sync::receive`). None has a later entry in the
    /// append: a version after the withdrawal replaces it in `records`.
    pub withdrawn: Vec<(String, RecordState)>,
}

impl LogAppend {
    /// Log size after the append.
    pub fn new_size(&self) -> u64 {
        self.base_size + self.entries.len() as u64
    }
}

/// Merkle nodes as stored, plus the ones an append in progress has made.
struct PendingNodes<S> {
    stored: S,
    pending: HashMap<(u32, u64), Hash>,
}

impl<S: NodeStore> NodeStore for PendingNodes<S> {
    type Error = S::Error;

    fn node(&self, level: u32, index: u64) -> Result<Option<Hash>, S::Error> {
        match self.pending.get(&(level, index)) {
            Some(hash) => Ok(Some(*hash)),
            None => self.stored.node(level, index),
        }
    }
}

/// Builds one atomic append to an origin's log, over the Merkle nodes
/// already stored for it.
pub struct Appender<S> {
    nodes: PendingNodes<S>,
    append: LogAppend,
}

impl<S: NodeStore> Appender<S> {
    /// Starts an append to `origin`'s log, which holds `size` entries whose
    /// Merkle nodes `stored` reads.
    pub fn begin(stored: S, origin: &str, size: u64) -> Self {
        Self {
            nodes: PendingNodes {
                stored,
                pending: HashMap::new(),
            },
            append: LogAppend {
                origin: origin.to_owned(),
                base_size: size,
                ..LogAppend::default()
            },
        }
    }

    /// Index the next pushed entry gets.
    pub fn next_index(&self) -> u64 {
        self.append.new_size()
    }

    /// Adds the next entry: its stored form, its leaf and, for a record
    /// entry, the record's new state.
    pub fn push(
        &mut self,
        entry: &StoredEntry,
        leaf: Hash,
        record: Option<(String, RecordState)>,
    ) -> Result<(), TreeError<S::Error>> {
        let index = self.next_index();
        let nodes = merkle::append_nodes(&self.nodes, index, leaf)?;
        for node in nodes {
            let at = (node.level, node.index);
            self.nodes.pending.insert(at, node.hash);
            self.append.nodes.push((at, node.hash));
        }
        if matches!(entry, StoredEntry::Signed(e) if e.payload_type == KEYSET_TYPE) {
            self.append.key_sets.push(index);
            if let Some(from) = entry.revoked_from() {
                let first = self.append.restate_from.map_or(from, |held| held.min(from));
                self.append.restate_from = Some(first);
            }
        }
        if matches!(entry, StoredEntry::Signed(e) if e.payload_type == AUDIENCE_TYPE) {
            self.append.audiences.push(index);
        }
        self.append.entries.push((index, entry.encode()));
        if let Some(record) = record {
            // A version later than an audience that withdrew the record
            // earlier in this append is the record's state: the withdrawal
            // no longer applies (the store writes withdrawals last).
            self.append.withdrawn.retain(|(id, _)| id != &record.0);
            self.append.records.push(record);
        }
        Ok(())
    }

    /// Withdraws record `id` held here, with no entry of its own: the
    /// audience this append brings no longer names this node for it.
    pub fn withdraw(&mut self, id: String, state: RecordState) {
        self.append.withdrawn.push((id, state));
    }

    /// Remembers that `subject` is the digest of record `id`'s subject,
    /// [`subject_digest`] of this append's origin and `id`.
    pub fn note_subject(&mut self, subject: Hash, id: String) {
        debug_assert_eq!(subject, subject_digest(&self.append.origin, &id));
        self.append.subjects.push((subject, id));
    }

    /// The tree head over the log as it would stand after this append.
    pub fn root(&self) -> Result<Hash, TreeError<S::Error>> {
        merkle::root(&self.nodes, self.next_index())
    }

    /// Number of entries pushed so far.
    pub fn len(&self) -> usize {
        self.append.entries.len()
    }

    /// Whether nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.append.entries.is_empty()
    }

    /// The append, ready for the store to commit.
    pub fn finish(self) -> LogAppend {
        self.append
    }
}

/// An entry of an origin's own log before it is signed.
#[derive(Debug, Clone)]
pub struct UnsignedEntry {
    pub body: Body,
    /// What the entry is about: the record id, or [`KEYSET_SUBJECT`].
    pub subject: String,
    /// The record's new state, for a record entry.
    pub state: Option<RecordState>,
}

impl UnsignedEntry {
    /// A record's new version (or tombstone).
    pub fn record(record: DatasetRecord, state: RecordState) -> Self {
        Self {
            subject: record.id.clone(),
            body: Body::Record(record),
            state: Some(state),
        }
    }

    /// A key set.
    pub fn key_set(key_set: KeySet) -> Self {
        Self {
            body: Body::KeySet(key_set),
            subject: KEYSET_SUBJECT.to_owned(),
            state: None,
        }
    }

    /// The origin's audience.
    pub fn audience(audience: Audience) -> Self {
        Self {
            body: Body::Audience(audience),
            subject: KEYSET_SUBJECT.to_owned(),
            state: None,
        }
    }
}

/// An entry signed and ready to append: its stored form, its leaf, and
/// its record's new state.
pub type SignedEntry = (StoredEntry, Hash, Option<(String, RecordState)>);

/// Signs `entry` as entry `index` of `origin`'s log: a DSSE envelope over
/// `LogEntry { origin, index, body }`, so the position, the origin and the
/// record (with its id and version) are all under the signature.
pub fn sign_entry(key: &NodeKey, origin: &str, index: u64, entry: UnsignedEntry) -> SignedEntry {
    let payload_type = match entry.body {
        Body::Record(_) => RECORD_TYPE,
        Body::KeySet(_) => KEYSET_TYPE,
        Body::Audience(_) => AUDIENCE_TYPE,
    };
    let payload = LogEntry {
        origin: origin.to_owned(),
        index,
        body: Some(entry.body),
    }
    .encode_to_vec();
    let leaf = entry_leaf(origin, &entry.subject, &payload);
    let envelope = key.sign(payload_type, payload);
    let state = entry.state.map(|state| (entry.subject, state));
    (StoredEntry::Signed(envelope), leaf, state)
}

/// Signs a checkpoint of `origin`'s log at `size` with tree head `root`.
/// Sign only after the entries it covers are durable.
pub fn sign_checkpoint(key: &NodeKey, origin: &str, size: u64, root: Hash) -> Envelope {
    let checkpoint = Checkpoint {
        origin: origin.to_owned(),
        size,
        root: root.to_vec(),
    };
    key.sign(CHECKPOINT_TYPE, checkpoint.encode_to_vec())
}

/// The checkpoint in a stored checkpoint envelope, its signature not
/// checked again (it was when stored; a damaged one says what it claims);
/// `None` if it does not decode.
pub fn stored_checkpoint(envelope: &[u8]) -> Option<Checkpoint> {
    let envelope = Envelope::decode(envelope).ok()?;
    Checkpoint::decode(envelope.payload.as_slice()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Signature;

    #[test]
    fn stored_entries_read_back_as_written() {
        let redacted = StoredEntry::Redacted {
            subject: [7; 32],
            payload: [0; 32],
        };
        assert_eq!(StoredEntry::decode(&redacted.encode()).unwrap(), redacted);
        let signed = StoredEntry::Signed(Envelope {
            payload: vec![0; 63],
            payload_type: "t".into(),
            signatures: vec![Signature {
                key_id: "k".into(),
                sig: vec![1; 64],
            }],
        });
        assert_eq!(StoredEntry::decode(&signed.encode()).unwrap(), signed);
    }

    #[test]
    fn an_envelope_of_redaction_size_is_not_taken_for_digests() {
        // 65 bytes of envelope: field 1 (payload) with 63 bytes.
        let envelope = Envelope {
            payload: vec![0; 63],
            ..Default::default()
        };
        let bytes = envelope.encode_to_vec();
        assert_eq!(bytes.len(), 65);
        assert_eq!(
            StoredEntry::decode(&bytes).unwrap(),
            StoredEntry::Signed(envelope)
        );
    }
}
