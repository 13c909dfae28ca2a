//! Witnessing (DESIGN §4–§5, `docs/decisions/witnesses.md`): peers compare
//! the checkpoints they hold of each origin, cosign the ones they verified,
//! and keep **evidence** when two checkpoints of one origin, both signed
//! under its key chain, cannot both be true.
//!
//! Two checkpoints conflict when
//! - they have the same size and different roots, or
//! - the smaller one is not a prefix of the larger: an RFC 9162
//!   consistency proof leads from a root `P` of the smaller size to the
//!   larger checkpoint's root, and `P` is not the smaller checkpoint's root.
//!   (A valid consistency proof from `P` makes `P` the root of the larger
//!   tree's prefix, unless SHA-256 collides.)
//!
//! The evidence is a self-contained JSON file ([`Evidence`], format
//! [`EVIDENCE_FORMAT`]): both signed checkpoints, the proof, and the
//! origin's key-set entries from its first set on, with the root key pinned
//! for it. [`verify`] checks it with nothing else: no node, no data
//! directory. What it cannot prove: that the pinned root is the origin's
//! real root; that is for the reader to compare ([`Proven::root_key`]).

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use prost::Message as _;
use serde::{Deserialize, Serialize};

use super::SyncError;
use crate::keyset::{self, KeyChain};
use crate::merkle::{self, Hash, MerkleError};
use crate::node::Node;
use crate::proto::{
    Checkpoint, Cosignature, Envelope, OriginHead, WitnessRequest, WitnessResponse,
    WitnessedCheckpoint,
};
use crate::sign::{self, KeyId, SignError, MAX_ENVELOPE_BYTES};
use crate::store::StoreError;

/// Payload type of a witness's cosignature of a checkpoint.
pub const COSIGNATURE_TYPE: &str = "application/vnd.meridian.cosignature.v1+proto";
/// The `format` an evidence file carries; another is refused.
pub const EVIDENCE_FORMAT: &str = "meridian.evidence.v1";
/// Most origins one witness request may name.
pub const MAX_WITNESS_ORIGINS: usize = 1024;
/// Largest evidence file [`verify`] reads.
pub const MAX_EVIDENCE_BYTES: usize = 16 << 20;
/// Most key-set entries an evidence file may carry.
pub const MAX_EVIDENCE_KEY_SETS: usize = 4096;
/// Most hashes of a consistency proof (a tree of 2^64 leaves needs 128).
pub const MAX_PROOF_HASHES: usize = 128;
/// Largest cosignature envelope accepted from a peer.
pub const MAX_COSIGNATURE_BYTES: usize = 4096;

/// One key-set entry of the origin's log, as signed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeySetEntry {
    /// Its position in the origin's log.
    pub index: u64,
    /// The entry's envelope (protobuf), base64.
    pub envelope: String,
}

/// The evidence file: two checkpoints of one origin that cannot both hold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// [`EVIDENCE_FORMAT`].
    pub format: String,
    pub origin: String,
    /// The root key pinned for the origin (32 bytes, hex): entry 0's key
    /// set must be signed by it.
    pub pinned_root: String,
    /// The origin's key-set entries, entry 0 first, each verified as the
    /// next set of the chain.
    pub key_sets: Vec<KeySetEntry>,
    /// The checkpoint of smaller or equal size (envelope, protobuf, base64).
    pub first: String,
    /// The other checkpoint.
    pub second: String,
    /// When the sizes differ: the root of `second`'s tree at `first`'s size
    /// (hex), which differs from `first`'s root…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_root: Option<String>,
    /// …and the RFC 9162 consistency proof from it to `second` (hex).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consistency: Vec<String>,
    /// Where and when the conflict was found; not signed, not checked.
    #[serde(default)]
    pub found: String,
}

/// Why two checkpoints cannot both be true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// Same size, different roots.
    SameSize { size: u64 },
    /// The smaller checkpoint is not a prefix of the larger one.
    NotAPrefix { smaller: u64, larger: u64 },
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Conflict::SameSize { size } => {
                write!(f, "two signed checkpoints of size {size} with different roots")
            }
            Conflict::NotAPrefix { smaller, larger } => write!(
                f,
                "the signed checkpoint of size {smaller} is not a prefix of the signed checkpoint of size {larger}"
            ),
        }
    }
}

/// What a verified evidence file proves.
#[derive(Debug, Clone)]
pub struct Proven {
    pub origin: String,
    /// The pinned root the chain starts from: compare it with the origin's.
    pub root_key: KeyId,
    pub conflict: Conflict,
}

/// Why an evidence file proves nothing.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// The file is larger than [`MAX_EVIDENCE_BYTES`].
    #[error("evidence file of {size} bytes exceeds {MAX_EVIDENCE_BYTES} bytes")]
    TooLarge { size: usize },
    /// The file is not evidence JSON.
    #[error("not an evidence file: {0}")]
    Json(#[from] serde_json::Error),
    /// A field does not decode or breaks a bound.
    #[error("field `{field}`: {message}")]
    Field { field: String, message: String },
    /// A key-set entry does not extend the chain from the pinned root.
    #[error("key set at log index {index}: {source}")]
    KeySet {
        index: u64,
        #[source]
        source: SignError,
    },
    /// A checkpoint's signature does not verify under the origin's chain.
    #[error("checkpoint `{which}`: {source}")]
    Signature {
        which: &'static str,
        #[source]
        source: SignError,
    },
    /// The two checkpoints are consistent: nothing is proven.
    #[error("no equivocation: {0}")]
    Consistent(String),
}

fn field(name: &str, message: impl Into<String>) -> EvidenceError {
    EvidenceError::Field {
        field: name.to_owned(),
        message: message.into(),
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn decode_envelope(name: &str, text: &str) -> Result<Envelope, EvidenceError> {
    let bytes = b64()
        .decode(text)
        .map_err(|e| field(name, format!("not base64: {e}")))?;
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(field(
            name,
            format!("{} bytes, more than {MAX_ENVELOPE_BYTES}", bytes.len()),
        ));
    }
    Envelope::decode(bytes.as_slice()).map_err(|e| field(name, format!("not an envelope: {e}")))
}

fn decode_hash(name: &str, text: &str) -> Result<Hash, EvidenceError> {
    let bytes = hex::decode(text).map_err(|e| field(name, format!("not hex: {e}")))?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| field(name, format!("{} bytes, not 32", bytes.len())))
}

fn root_of(checkpoint: &Checkpoint) -> Hash {
    // `sign::open_checkpoint` refuses a root that is not 32 bytes.
    checkpoint.root.as_slice().try_into().unwrap_or([0; 32])
}

/// Checks an evidence file on its own: the key chain from the pinned root,
/// both checkpoint signatures under it, and that the two cannot both hold.
pub fn verify(bytes: &[u8]) -> Result<Proven, EvidenceError> {
    if bytes.len() > MAX_EVIDENCE_BYTES {
        return Err(EvidenceError::TooLarge { size: bytes.len() });
    }
    let evidence: Evidence = serde_json::from_slice(bytes)?;
    if evidence.format != EVIDENCE_FORMAT {
        return Err(field(
            "format",
            format!("`{}` is not {EVIDENCE_FORMAT}", evidence.format),
        ));
    }
    if evidence.key_sets.len() > MAX_EVIDENCE_KEY_SETS {
        return Err(field(
            "key_sets",
            format!("more than {MAX_EVIDENCE_KEY_SETS} entries"),
        ));
    }
    if evidence.consistency.len() > MAX_PROOF_HASHES {
        return Err(field(
            "consistency",
            format!("more than {MAX_PROOF_HASHES} hashes"),
        ));
    }
    let root = decode_hash("pinned_root", &evidence.pinned_root)?;
    let pinned = ed25519_dalek::VerifyingKey::from_bytes(&root)
        .map_err(|e| field("pinned_root", format!("not an Ed25519 key: {e}")))?;
    let mut chain = KeyChain::new(&evidence.origin, Some(pinned));
    let now = keyset::now_unix();
    for entry in &evidence.key_sets {
        let envelope = decode_envelope("key_sets", &entry.envelope)?;
        chain
            .extend(entry.index, &envelope, now)
            .map_err(|source| EvidenceError::KeySet {
                index: entry.index,
                source,
            })?;
    }
    if chain.links().is_empty() {
        return Err(field("key_sets", "no key set: nothing to verify against"));
    }
    let open = |which: &'static str, text: &str| {
        let envelope = decode_envelope(which, text)?;
        chain
            .open_checkpoint(&envelope)
            .map_err(|source| EvidenceError::Signature { which, source })
    };
    let first = open("first", &evidence.first)?;
    let second = open("second", &evidence.second)?;
    let conflict = conflict(
        &first,
        &second,
        evidence.prefix_root.as_deref(),
        &evidence.consistency,
    )?;
    Ok(Proven {
        origin: evidence.origin,
        root_key: KeyId::of(&pinned),
        conflict,
    })
}

/// Whether two verified checkpoints conflict, given the prefix root and
/// consistency proof of the larger one at the smaller's size.
fn conflict(
    first: &Checkpoint,
    second: &Checkpoint,
    prefix_root: Option<&str>,
    consistency: &[String],
) -> Result<Conflict, EvidenceError> {
    if first.size > second.size {
        return Err(field(
            "first",
            format!(
                "size {} is larger than the second's {}",
                first.size, second.size
            ),
        ));
    }
    if first.size == second.size {
        if first.root == second.root {
            return Err(EvidenceError::Consistent(format!(
                "both checkpoints of size {} have the same root",
                first.size
            )));
        }
        return Ok(Conflict::SameSize { size: first.size });
    }
    let Some(prefix) = prefix_root else {
        return Err(field(
            "prefix_root",
            "missing: checkpoints of different sizes need the larger tree's root at the smaller size",
        ));
    };
    let prefix = decode_hash("prefix_root", prefix)?;
    let proof = consistency
        .iter()
        .map(|h| decode_hash("consistency", h))
        .collect::<Result<Vec<_>, _>>()?;
    merkle::verify_consistency(first.size, second.size, &prefix, &root_of(second), &proof)
        .map_err(|e: MerkleError| {
            field(
                "consistency",
                format!(
                "does not prove `prefix_root` is the root of size {} of the second checkpoint: {e}",
                first.size
            ),
            )
        })?;
    if prefix == root_of(first) {
        return Err(EvidenceError::Consistent(format!(
            "the checkpoint of size {} is a prefix of the one of size {}",
            first.size, second.size
        )));
    }
    Ok(Conflict::NotAPrefix {
        smaller: first.size,
        larger: second.size,
    })
}

/// What a peer's checkpoint says next to the one held here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// The same checkpoint, or one of a prefix of the log held here.
    Consistent,
    /// A checkpoint of a longer log that extends the one held here.
    Newer,
    /// Nothing to compare it with now: no checkpoint is held here, the
    /// origin is no longer active, the checkpoint is beyond the log held
    /// here and signed by keys not pulled yet, or it is signed by a key the
    /// origin revoked since from before its size.
    Unheld,
    /// The two conflict: the origin is now frozen, with this reason.
    Equivocation(String),
}

/// Builds the evidence file of `conflict` between two verified checkpoint
/// envelopes (`first` the smaller or equal one), with the origin's key sets
/// as held here and its pinned root.
fn evidence_file(
    node: &Node,
    origin: &str,
    pinned_root: &[u8; 32],
    first: &Envelope,
    second: &Envelope,
    prefix: Option<(Hash, Vec<Hash>)>,
    found: String,
) -> Result<Vec<u8>, SyncError> {
    let store = node.store();
    let mut key_sets = Vec::new();
    for index in store.key_set_positions(origin)? {
        if let Some(crate::log::StoredEntry::Signed(envelope)) =
            store.entry(origin, crate::ids::LogIndex(index))?
        {
            key_sets.push(KeySetEntry {
                index,
                envelope: b64().encode(envelope.encode_to_vec()),
            });
        }
    }
    let (prefix_root, consistency) = match prefix {
        Some((root, proof)) => (
            Some(hex::encode(root)),
            proof.iter().map(hex::encode).collect(),
        ),
        None => (None, Vec::new()),
    };
    let evidence = Evidence {
        format: EVIDENCE_FORMAT.into(),
        origin: origin.to_owned(),
        pinned_root: hex::encode(pinned_root),
        key_sets,
        first: b64().encode(first.encode_to_vec()),
        second: b64().encode(second.encode_to_vec()),
        prefix_root,
        consistency,
        found,
    };
    Ok(serde_json::to_vec_pretty(&evidence).expect("evidence serializes"))
}

/// Compares `item`, a checkpoint of `origin` that peer `via` holds, with the
/// checkpoint and log held here. A conflict is stored as evidence, the
/// origin frozen, the freeze audited. A checkpoint that fails its signature
/// or a proof that does not hold blames `via` (an error), never the origin.
pub fn check(
    node: &Node,
    via: &str,
    origin: &str,
    item: &WitnessedCheckpoint,
) -> Result<Seen, SyncError> {
    let store = node.store();
    if store.is_frozen(origin)? {
        return Ok(Seen::Consistent);
    }
    let envelope = item
        .checkpoint
        .as_ref()
        .ok_or_else(|| SyncError::Sequence {
            origin: origin.to_owned(),
            index: 0,
            message: format!("{via} sent a witnessed checkpoint without a checkpoint"),
        })?;
    let chain = match super::origin_chain(node, origin) {
        Ok(chain) => chain,
        // Suspended or revoked since it was asked about, or held back here
        // (its chain does not verify from the pin): nothing to compare it
        // with, and no fault of the peer.
        Err(SyncError::NotTrusted(_) | SyncError::HeldBack { .. }) => return Ok(Seen::Unheld),
        Err(e) => return Err(e),
    };
    let theirs = match chain.open_checkpoint(envelope) {
        Ok(theirs) => theirs,
        // Signed by the keys that governed its size, one of them revoked
        // since from before it: what a witness that has not pulled the
        // revocation yet holds, as the origin signed it then. It is no
        // evidence (it vouches for entries the key's thief may have
        // forged), and no fault of the peer that holds it.
        Err(SignError::RevokedCheckpoint { key_id, from, size }) => {
            tracing::debug!(
                origin = %origin,
                via,
                key = %key_id,
                from,
                size,
                "witnessed checkpoint signed by a key revoked since; not compared"
            );
            return Ok(Seen::Unheld);
        }
        Err(source) => {
            // A checkpoint beyond the log held here may be signed under a
            // key set this node has not pulled yet: not checkable now. The
            // size it claims only decides that; nothing else of it is used.
            let claimed = Checkpoint::decode(envelope.payload.as_slice()).map(|c| c.size);
            if claimed.is_ok_and(|size| size > store.log_size(origin).unwrap_or(0)) {
                return Ok(Seen::Unheld);
            }
            return Err(SyncError::Checkpoint {
                origin: origin.to_owned(),
                source,
            });
        }
    };
    let Some(held_bytes) = store.checkpoint(origin)? else {
        return Ok(Seen::Unheld);
    };
    let corrupt = |e: prost::DecodeError| StoreError::Corrupt {
        tree: crate::store::tree::CHECKPOINTS,
        detail: format!("{origin}: {e}"),
    };
    let held_envelope = Envelope::decode(held_bytes.as_slice()).map_err(corrupt)?;
    let held = Checkpoint::decode(held_envelope.payload.as_slice()).map_err(corrupt)?;
    let unproven = |message: String| SyncError::Unproven {
        origin: origin.to_owned(),
        size: theirs.size,
        message: format!("{via}: {message}"),
    };
    let (first, second, prefix, conflict) = if theirs.size == held.size {
        if theirs.root == held.root {
            return Ok(Seen::Consistent);
        }
        (
            &held_envelope,
            envelope,
            None,
            Conflict::SameSize { size: held.size },
        )
    } else if theirs.size < held.size {
        let prefix = store.log_root(origin, theirs.size)?;
        if prefix.as_slice() == theirs.root.as_slice() {
            return Ok(Seen::Consistent);
        }
        let proof = store.consistency_proof(origin, theirs.size, held.size)?;
        (
            envelope,
            &held_envelope,
            Some((prefix, proof)),
            Conflict::NotAPrefix {
                smaller: theirs.size,
                larger: held.size,
            },
        )
    } else {
        if item.consistency.len() > MAX_PROOF_HASHES {
            return Err(unproven(format!(
                "a proof of {} hashes",
                item.consistency.len()
            )));
        }
        let prefix: Hash = item
            .prefix_root
            .as_slice()
            .try_into()
            .map_err(|_| unproven("no 32-byte root at the size held here".into()))?;
        let proof = item
            .consistency
            .iter()
            .map(|h| Hash::try_from(h.as_slice()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| unproven("a proof hash is not 32 bytes".into()))?;
        merkle::verify_consistency(held.size, theirs.size, &prefix, &root_of(&theirs), &proof)
            .map_err(|e| unproven(format!("consistency from size {}: {e}", held.size)))?;
        if prefix.as_slice() == held.root.as_slice() {
            return Ok(Seen::Newer);
        }
        (
            &held_envelope,
            envelope,
            Some((prefix, proof)),
            Conflict::NotAPrefix {
                smaller: held.size,
                larger: theirs.size,
            },
        )
    };
    let peer = node.trust().get(origin)?;
    let pinned = match &peer {
        Some(peer) => peer.pinned_root()?.to_bytes(),
        None => return Err(SyncError::NotTrusted(origin.to_owned())),
    };
    let reason = format!("{conflict} (seen through {via})");
    let found = format!("{} at {}", reason, crate::date::now_rfc3339());
    let file = evidence_file(node, origin, &pinned, first, second, prefix, found)?;
    tracing::error!(target: "audit", origin, via, reason, "equivocation: origin frozen, evidence kept");
    store.freeze_with_evidence(origin, &reason, &envelope.encode_to_vec(), &file)?;
    node.trust().record("origin-frozen", origin, &reason)?;
    Ok(Seen::Equivocation(reason))
}

/// What this node answers a peer's [`WitnessRequest`]: its newest
/// checkpoint of each origin asked about that it holds and does not
/// quarantine (frozen ones included), with a consistency proof from the
/// size the peer holds, and its cosignature.
pub fn answer(node: &Node, request: &WitnessRequest) -> Result<WitnessResponse, SyncError> {
    if request.held.len() > MAX_WITNESS_ORIGINS {
        return Err(SyncError::TooLarge {
            peer: String::new(),
            message: format!(
                "a witness request of {} origins, more than {MAX_WITNESS_ORIGINS}",
                request.held.len()
            ),
        });
    }
    let asked: BTreeMap<&str, u64> = request
        .held
        .iter()
        .map(|head| (head.origin.as_str(), head.size))
        .collect();
    let mut checkpoints = Vec::new();
    for (origin, size) in asked {
        // A frozen origin's checkpoint is still given: it is how the
        // asker finds the conflict itself. Its entries are not served.
        if super::serve::quarantined(node, origin)? {
            continue;
        }
        let Some(bytes) = node.store().checkpoint(origin)? else {
            continue;
        };
        let Ok(envelope) = Envelope::decode(bytes.as_slice()) else {
            continue;
        };
        let Ok(checkpoint) = Checkpoint::decode(envelope.payload.as_slice()) else {
            continue;
        };
        let held = checkpoint.size;
        let (prefix_root, consistency) = if size > 0 && size < held {
            (
                node.store().log_root(origin, size)?.to_vec(),
                node.store()
                    .consistency_proof(origin, size, held)?
                    .iter()
                    .map(|h| h.to_vec())
                    .collect(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let cosignature = cosign(node, &checkpoint);
        checkpoints.push(WitnessedCheckpoint {
            checkpoint: Some(envelope),
            prefix_root,
            consistency,
            cosignature: Some(cosignature),
            origin: origin.to_owned(),
        });
    }
    Ok(WitnessResponse { checkpoints })
}

/// This node's cosignature of a checkpoint it verified.
pub fn cosign(node: &Node, checkpoint: &Checkpoint) -> Envelope {
    let payload = Cosignature {
        origin: checkpoint.origin.clone(),
        size: checkpoint.size,
        root: checkpoint.root.clone(),
        witness: node.node_id().to_string(),
    };
    node.key().sign(COSIGNATURE_TYPE, payload.encode_to_vec())
}

/// Verifies `witness`'s cosignature against its current signing keys as
/// held here: what it cosigned, or `None` if it is over its size bound,
/// does not verify, or names another witness.
pub fn open_cosignature(
    chain: &KeyChain,
    witness: &str,
    envelope: &Envelope,
) -> Option<Cosignature> {
    if envelope.encoded_len() > MAX_COSIGNATURE_BYTES {
        return None;
    }
    let ring = chain.latest()?.signing();
    let _verified = sign::verify(envelope, COSIGNATURE_TYPE, ring).ok()?;
    let cosignature = Cosignature::decode(envelope.payload.as_slice()).ok()?;
    (cosignature.witness == witness).then_some(cosignature)
}

/// The request this node sends a witness: every origin of an active peer
/// it holds a checkpoint of and has not frozen, with that checkpoint's size
/// (at most [`MAX_WITNESS_ORIGINS`]).
pub fn request(node: &Node) -> Result<WitnessRequest, SyncError> {
    let mut held = Vec::new();
    for (origin, _) in node.store().origins()? {
        if origin == node.node_id().as_str() || node.store().is_frozen(&origin)? {
            continue;
        }
        if !matches!(node.trust().get(&origin)?, Some(peer) if peer.state == super::PeerState::Active)
        {
            continue;
        }
        let Some(bytes) = node.store().checkpoint(&origin)? else {
            continue;
        };
        let size = crate::log::stored_checkpoint(&bytes).map(|c| c.size);
        let Some(size) = size else {
            continue;
        };
        held.push(OriginHead { origin, size });
        if held.len() == MAX_WITNESS_ORIGINS {
            break;
        }
    }
    Ok(WitnessRequest { held })
}

/// Witnesses whose cosignature of the newest checkpoint held here was
/// verified, per origin: reset when the checkpoint changes.
#[derive(Debug, Default)]
pub struct Cosigners {
    by_origin: std::sync::Mutex<BTreeMap<String, Cosigned>>,
}

/// The head held of one origin, and who cosigned it.
type Cosigned = (Vec<u8>, BTreeSet<String>);

impl Cosigners {
    /// Notes that `witness` cosigned `cosigned`, if that is the checkpoint
    /// of `origin` held here (`held`): the same origin, size and root.
    /// Only the newest head held here counts.
    pub fn note(&self, origin: &str, held: &Checkpoint, cosigned: &Cosignature, witness: &str) {
        let held_root = held.root.as_slice();
        if cosigned.origin != origin || cosigned.size != held.size || cosigned.root != held_root {
            return;
        }
        let mut map = self.by_origin.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map
            .entry(origin.to_owned())
            .or_insert_with(|| (held_root.to_vec(), BTreeSet::new()));
        if entry.0 != held_root {
            *entry = (held_root.to_vec(), BTreeSet::new());
        }
        entry.1.insert(witness.to_owned());
    }

    /// How many witnesses cosigned `origin`'s checkpoint with head `root`.
    pub fn count(&self, origin: &str, root: &[u8]) -> u32 {
        let map = self.by_origin.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(origin) {
            Some((held, witnesses)) if held == root => witnesses.len() as u32,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests;
