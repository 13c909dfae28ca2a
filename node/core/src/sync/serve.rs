//! The serving side of replication: what a node tells a pinned peer about
//! the logs it holds, and the entries of one log as that peer may receive
//! them, in batches that each end with a consistency proof.

use prost::Message;

use super::{PeerState, SyncError, MAX_ANNOUNCED_KEY_SETS, SERVE_BATCH_BYTES};
use crate::ids::LogIndex;
use crate::log::{self, StoredEntry};
use crate::node::Node;
use crate::proto::{
    pull_item, BatchProof, Checkpoint, Envelope, NodeInfo, OriginHead, PullItem, Redacted,
};
use crate::store::{tree, StoreError};
use crate::visibility::{self, Delivery, Viewer};

/// Whether `origin`'s entries are quarantined here: its peer was revoked or
/// is no longer pinned. They are neither served, relayed nor announced.
pub fn quarantined(node: &Node, origin: &str) -> Result<bool, SyncError> {
    if origin == node.node_id().as_str() {
        return Ok(false);
    }
    Ok(!matches!(
        node.trust().get(origin)?,
        Some(peer) if peer.state != PeerState::Revoked
    ))
}

/// Who this node is and the logs it holds (frozen and quarantined origins
/// left out).
pub fn node_info(node: &Node) -> Result<NodeInfo, SyncError> {
    let mut origins = Vec::new();
    for (origin, _) in node.store().origins()? {
        if node.store().is_frozen(&origin)? {
            continue;
        }
        if let Some((_, size)) = serve_checkpoint(node, &origin)? {
            origins.push(OriginHead { origin, size });
        }
    }
    let key_set_index = node
        .store()
        .key_set_positions(node.node_id())?
        .last()
        .copied()
        .unwrap_or(0);
    let key_set = match node
        .store()
        .entry(node.node_id(), LogIndex(key_set_index))?
    {
        Some(StoredEntry::Signed(envelope)) => Some(envelope),
        _ => None,
    };
    Ok(NodeInfo {
        node_id: node.node_id().to_string(),
        key_set,
        endpoint: node.endpoint(),
        origins,
        key_set_index,
    })
}

/// The checkpoint this node holds for `origin`, and its size; `None` for an
/// origin it holds nothing of, or whose entries are quarantined.
pub fn serve_checkpoint(node: &Node, origin: &str) -> Result<Option<(Envelope, u64)>, SyncError> {
    if node.store().is_frozen(origin)? {
        return Err(SyncError::Frozen(origin.to_owned()));
    }
    if quarantined(node, origin)? {
        return Ok(None);
    }
    let Some(bytes) = node.store().checkpoint(origin)? else {
        return Ok(None);
    };
    let corrupt = |e: prost::DecodeError| StoreError::Corrupt {
        tree: tree::CHECKPOINTS,
        detail: format!("{origin}: {e}"),
    };
    let envelope = Envelope::decode(bytes.as_slice()).map_err(corrupt)?;
    let checkpoint = Checkpoint::decode(envelope.payload.as_slice()).map_err(corrupt)?;
    Ok(Some((envelope, checkpoint.size)))
}

/// The key-set entries of `origin` in `[from, to)`, announced at the start
/// of a pull so the receiver can extend the origin's key chain before it
/// verifies the checkpoint (at most [`MAX_ANNOUNCED_KEY_SETS`]: a pull
/// then ends before the first set not announced, see `serve_batch`'s
/// caller). Key sets are public to every peer: no visibility applies.
pub fn serve_key_sets(
    node: &Node,
    origin: &str,
    from: u64,
    to: u64,
) -> Result<Vec<PullItem>, SyncError> {
    let mut items = Vec::new();
    for index in node.store().key_set_positions(origin)? {
        if index < from || index >= to {
            continue;
        }
        if items.len() >= MAX_ANNOUNCED_KEY_SETS {
            break;
        }
        match node.store().entry(origin, LogIndex(index))? {
            Some(StoredEntry::Signed(envelope)) => items.push(PullItem {
                index,
                item: Some(pull_item::Item::KeySet(envelope)),
            }),
            _ => {
                return Err(StoreError::Corrupt {
                    tree: tree::KEYSETS,
                    detail: format!("{origin} entry {index} is not a stored key set"),
                }
                .into())
            }
        }
    }
    Ok(items)
}

/// Entries `[from, to)` of `origin` as `viewer` may receive them; what it may
/// not see goes out as digests ([`visibility::pull_delivery`]). At most
/// `max` items, and no more after [`SERVE_BATCH_BYTES`] (at least one), so
/// an honest batch fits the receiver's budget however large its records.
pub fn serve_entries(
    node: &Node,
    viewer: &Viewer,
    origin: &str,
    from: u64,
    to: u64,
    max: usize,
) -> Result<Vec<PullItem>, SyncError> {
    let limit = max.min(to.saturating_sub(from) as usize);
    // The origin's revocations, when it has any: entries signed by a
    // revoked key go out as digests (crate::quarantine).
    let revoking = node
        .origin_keys(origin)
        .map_err(|e| match e {
            crate::node::NodeError::Store(e) => SyncError::Store(e),
            other => SyncError::Worker {
                origin: origin.to_owned(),
                message: other.to_string(),
            },
        })?
        .filter(|chain| !chain.revocations().is_empty());
    let mut items = Vec::with_capacity(limit);
    let mut bytes = 0;
    for (index, stored) in node.store().entries(origin, LogIndex(from), limit)? {
        let item =
            match stored {
                StoredEntry::Redacted { subject, payload } => redacted(&subject, &payload),
                StoredEntry::Signed(envelope) => {
                    // Trusted bytes: verified when they were stored.
                    let (delivery, id) = visibility::pull_delivery(viewer, &envelope.payload)
                        .map_err(|e| StoreError::Corrupt {
                            tree: tree::LOG,
                            detail: format!("{origin} entry {index}: {e}"),
                        })?;
                    match (delivery, id) {
                        (Delivery::Digests, Some(id)) => redacted(
                            &log::subject_digest(origin, &id),
                            &log::payload_digest(&envelope.payload),
                        ),
                        // A version superseded here (by a later version or
                        // a withdrawal) goes out as digests: a relay never
                        // hands on what the origin has since narrowed or
                        // withdrawn, and the caller needs only the latest.
                        (Delivery::Envelope, Some(id)) if superseded(node, origin, &id, index)? => {
                            redacted(
                                &log::subject_digest(origin, &id),
                                &log::payload_digest(&envelope.payload),
                            )
                        }
                        // Quarantined: signed by a key the origin revoked
                        // from before this position. Never relayed as
                        // trusted; the digests keep the log verifiable.
                        (Delivery::Envelope, Some(id))
                            if revoking.as_ref().is_some_and(|chain| {
                                chain.quarantines(index.get(), &envelope).is_some()
                            }) =>
                        {
                            redacted(
                                &log::subject_digest(origin, &id),
                                &log::payload_digest(&envelope.payload),
                            )
                        }
                        _ => pull_item::Item::Entry(envelope),
                    }
                }
            };
        let item = PullItem {
            index: index.get(),
            item: Some(item),
        };
        bytes += item.encoded_len();
        items.push(item);
        if bytes >= SERVE_BATCH_BYTES {
            break;
        }
    }
    Ok(items)
}

/// Whether record `id`'s entry at `index` is no longer its current state.
fn superseded(node: &Node, origin: &str, id: &str, index: LogIndex) -> Result<bool, SyncError> {
    Ok(node
        .store()
        .record_state(origin, id)?
        .is_some_and(|state| state.log_index > index))
}

fn redacted(subject: &[u8; 32], payload: &[u8; 32]) -> pull_item::Item {
    pull_item::Item::Redacted(Redacted {
        subject_digest: subject.to_vec(),
        payload_digest: payload.to_vec(),
    })
}

/// One batch of a pull: entries `[from, …)` as `viewer` may receive them
/// (see [`serve_entries`]), closed by the proof that the log up to the
/// batch's end is consistent with the checkpoint of size `size`.
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
    let hashes = node.store().consistency_proof(origin, end, size)?;
    items.push(PullItem {
        index: end,
        item: Some(pull_item::Item::Proof(BatchProof {
            size: end,
            hashes: hashes.iter().map(|h| h.to_vec()).collect(),
        })),
    });
    Ok(items)
}
