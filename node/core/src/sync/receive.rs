//! The receiving side of replication: a pull of one origin from one peer.
//!
//! Every entry is verified against the origin's key chain before it is
//! decoded ([`check_batch`], batch verification off the async executor):
//! the chain as stored here, verified from the root pinned for the origin,
//! and extended first by the key sets the serving peer announces after the
//! checkpoint, so entries and checkpoints signed by a new signing key verify
//! with no re-pinning, and each entry only against the keys valid at its
//! position (`crate::keyset`);
//! [`apply_batch`] is where a replicated record's version is applied: its
//! signed index must be the next one, its version must grow, and the batch
//! commits with the cursor only if its consistency proof against the
//! origin's checkpoint holds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use prost::Message;

use super::{
    origin_chain, FederationPeer, SyncError, BATCH, MAX_ANNOUNCED_KEY_SETS, MAX_BATCH_BYTES,
    MAX_PROOF_HASHES, MAX_PULL_BYTES, MAX_PULL_ITEM_BYTES, MAX_UNPROVEN, VERIFY_SLICE,
};
use crate::ids::LogIndex;
use crate::keyset::{self, KeyChain};
use crate::log::{self, Appender, RecordState, StoredEntry, KEYSET_SUBJECT};
use crate::merkle::Hash;
use crate::metrics::{LabelValue, WithdrawReason};
use crate::node::handoff::Handed;
use crate::node::Node;
use crate::proto::{
    log_entry::Body, pull_item, BatchProof, Checkpoint, Envelope, LogEntry, PullItem, Redacted,
};
use crate::sign::{SignError, MAX_ENVELOPE_BYTES};
use crate::store::{OriginNodes, StoreError};
use crate::visibility::{AudienceView, Grants, Viewer};

/// Receiver state of one pull of one origin.
pub struct Ingest {
    origin: String,
    chain: Arc<KeyChain>,
    checkpoint: Checkpoint,
    checkpoint_envelope: Vec<u8>,
    /// Entries applied by this pull.
    pub applied: u64,
}

/// Starts a pull of `origin`: extends the origin's key chain by the key
/// sets announced after the checkpoint (`announced`, each at its log
/// position, each verified as N → N+1), verifies the checkpoint the peer
/// holds against the keys governing its size, and compares it with what
/// this node holds. `None` when there is nothing new.
pub fn begin_ingest(
    node: &Node,
    origin: &str,
    checkpoint: &Envelope,
    announced: &[(u64, Envelope)],
) -> Result<Option<Ingest>, SyncError> {
    if node.store().is_frozen(origin)? {
        return Err(SyncError::Frozen(origin.to_owned()));
    }
    let ours = node.store().log_size(origin)?;
    let mut chain = origin_chain(node, origin)?;
    if chain.links().is_empty() && origin == node.node_id().as_str() && !announced.is_empty() {
        // This node's own first set comes from its own store (or its
        // `init`), never from a peer: nothing pins it here but that.
        return Err(SyncError::Sequence {
            origin: origin.to_owned(),
            index: 0,
            message: "this node's own first key set is not taken from a peer".into(),
        });
    }
    if !announced.is_empty() {
        let extended = Arc::make_mut(&mut chain);
        let now = keyset::now_unix();
        for (index, envelope) in announced {
            if *index < ours {
                return Err(SyncError::Sequence {
                    origin: origin.to_owned(),
                    index: *index,
                    message: format!("key set announced before the cursor ({ours})"),
                });
            }
            extended
                .extend(*index, envelope, now)
                .map_err(|source| SyncError::Verify {
                    origin: origin.to_owned(),
                    index: *index,
                    source,
                })?;
        }
    }
    let cp = chain
        .open_checkpoint(checkpoint)
        .map_err(|source| SyncError::Checkpoint {
            origin: origin.to_owned(),
            source,
        })?;
    if let Some((index, _)) = announced.iter().find(|(index, _)| *index >= cp.size) {
        return Err(SyncError::Sequence {
            origin: origin.to_owned(),
            index: *index,
            message: format!(
                "key set announced beyond the checkpoint of size {}",
                cp.size
            ),
        });
    }
    if cp.size <= ours {
        let root = node.store().log_root(origin, cp.size)?;
        if root.as_slice() != cp.root.as_slice() {
            // Against the checkpoint held here, the conflict is provable
            // offline: kept as evidence (`super::witness`).
            let witnessed = crate::proto::WitnessedCheckpoint {
                checkpoint: Some(checkpoint.clone()),
                origin: origin.to_owned(),
                ..Default::default()
            };
            if let Ok(super::witness::Seen::Equivocation(message)) =
                super::witness::check(node, "a pull", origin, &witnessed)
            {
                return Err(SyncError::Equivocation {
                    origin: origin.to_owned(),
                    message,
                });
            }
            // Beyond the checkpoint held here (entries of a pull not yet
            // finished): frozen, without an offline proof.
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
        // The log is whole but its checkpoint was lost (a crash before the
        // checkpoint reached the disk): keep this one, which covers it.
        if cp.size == ours {
            let held = node.store().checkpoint(origin)?;
            let held_size = held
                .as_deref()
                .and_then(log::stored_checkpoint)
                .map(|c| c.size);
            if held_size.is_none_or(|held| held < cp.size) {
                node.store()
                    .put_checkpoint(origin, &checkpoint.encode_to_vec())?;
                node.store().flush()?;
            }
        }
        return Ok(None);
    }
    Ok(Some(Ingest {
        origin: origin.to_owned(),
        chain,
        checkpoint: cp,
        checkpoint_envelope: checkpoint.encode_to_vec(),
        applied: 0,
    }))
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

/// Verifies the signatures of a pulled batch against the origin's key
/// chain, each entry against the keys valid at its position, and decodes
/// what verified. Touches no stored state, so the next batch is checked
/// while this one is applied. Blocking (CPU).
pub fn check_batch(chain: &KeyChain, items: Vec<PullItem>) -> CheckedBatch {
    let envelopes: Vec<(usize, (u64, &Envelope))> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| match &item.item {
            Some(pull_item::Item::Entry(e)) => Some((i, (item.index, e))),
            _ => None,
        })
        .collect();
    // Batch verification, spread over the cores in one slice each.
    let refs: Vec<(u64, &Envelope)> = envelopes.iter().map(|(_, e)| *e).collect();
    let slice = refs
        .len()
        .div_ceil(rayon::current_num_threads())
        .max(VERIFY_SLICE);
    let opened: Vec<_> = {
        use rayon::prelude::*;
        refs.par_chunks(slice)
            .flat_map_iter(|slice| chain.open_entries(slice))
            .collect()
    };
    let opened = envelopes.iter().map(|(i, _)| *i).zip(opened).collect();
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
    let mut appender = store.appender(&origin)?;
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
    // A batch brings at least one entry (an honest peer serves none past
    // the checkpoint): one of proofs alone would hold a pull, and the
    // origin's sync with it, open for as long as the peer goes on.
    if items.is_empty() {
        return Err(SyncError::Sequence {
            origin: origin.clone(),
            index: appender.next_index(),
            message: "a batch with no entries, only its proof".into(),
        });
    }
    let about_no_record = log::subject_digest(&origin, KEYSET_SUBJECT);
    let mut touched: HashMap<String, RecordState> = HashMap::new();
    // Subject digests of the records this batch brings, for digests later
    // in the same batch.
    let mut subjects: HashMap<Hash, String> = HashMap::new();
    // Visibility and groups of the records this batch brings, for an
    // audience later in the same batch.
    let mut audiences: RecordAudiences = HashMap::new();
    let mut audience = AudienceInBatch::new(node, &ingest.chain, &origin);
    // For the indexer, one per entry in order: a record entry's record,
    // any other entry as stored (`node::handoff`).
    let first = appender.next_index();
    let mut handed = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
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
        match item.item {
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
                // The record, kept for the indexer.
                let (subject, record_state, record) = match entry.body {
                    Some(Body::Record(record)) => {
                        let subject = log::subject_digest(&origin, &record.id);
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
                        let state =
                            RecordState::of_version(&record, LogIndex(index), previous.as_ref());
                        if previous.is_none() && !subjects.contains_key(&subject) {
                            appender.note_subject(subject, record.id.clone());
                            subjects.insert(subject, record.id.clone());
                        }
                        touched.insert(record.id.clone(), state);
                        // Withdrawn earlier in the batch, current again.
                        audience.withdrawn.remove(&record.id);
                        audiences.insert(
                            record.id.clone(),
                            (record.visibility, record.groups.clone()),
                        );
                        (
                            subject,
                            Some((record.id.clone(), state)),
                            Some(Box::new(record)),
                        )
                    }
                    Some(Body::Audience(body)) => {
                        let view = AudienceView::check(&origin, &body)
                            .map_err(|e| sequence(e.to_string()))?;
                        if origin != node.node_id().as_str() {
                            let view = Arc::new(view);
                            audience.change(
                                WithdrawReason::Audience,
                                index,
                                Some(Arc::clone(&view)),
                                (&mut touched, &audiences),
                                &mut appender,
                            )?;
                            audience.brought.push((index, envelope.clone(), view));
                        }
                        (log::subject_digest(&origin, KEYSET_SUBJECT), None, None)
                    }
                    // A revocation that sets aside the audience in force
                    // here (one the revoked key signed): the latest one
                    // before it that no revocation covers counts again, and
                    // what the set-aside one let in is withdrawn now, not at
                    // the origin's next audience.
                    Some(Body::KeySet(set))
                        if !set.revocations.is_empty() && origin != node.node_id().as_str() =>
                    {
                        if let Some(set_aside) = node
                            .set_aside_at(&origin, &ingest.chain, index, &audience.brought)
                            .map_err(|e| sequence(e.to_string()))?
                        {
                            tracing::warn!(
                                origin = origin.as_str(),
                                index,
                                "a revocation set aside the origin's audience in force here \
                                 (the revoked key signed it); the one before it counts again"
                            );
                            audience.change(
                                WithdrawReason::Revocation,
                                index,
                                set_aside.in_force,
                                (&mut touched, &audiences),
                                &mut appender,
                            )?;
                        }
                        (log::subject_digest(&origin, KEYSET_SUBJECT), None, None)
                    }
                    // Key sets, and kinds of entry a later version adds:
                    // verified, kept and relayed, about no record.
                    _ => (log::subject_digest(&origin, KEYSET_SUBJECT), None, None),
                };
                let leaf =
                    log::leaf_from_digests(&subject, &log::payload_digest(&envelope.payload));
                let stored = StoredEntry::Signed(envelope);
                appender
                    .push(&stored, leaf, record_state)
                    .map_err(StoreError::from)?;
                handed.push(match record {
                    Some(record) => Handed::Record(record),
                    None => Handed::Stored(stored),
                });
            }
            Some(pull_item::Item::Redacted(Redacted {
                subject_digest,
                payload_digest,
            })) => {
                let subject = digest(&subject_digest, &origin, index, "subject")?;
                let payload = digest(&payload_digest, &origin, index, "payload")?;
                // An entry about no record (a key set, an audience, a kind
                // a later version adds) goes to every peer whole. Taken as
                // digests, a relay could hide an audience that narrows what
                // a peer may see, or a revocation, and this node would
                // enforce the one before it for good.
                if subject == about_no_record {
                    return Err(sequence(
                        "an entry about no record (a key set or an audience) came as digests; \
                         every node must receive those whole"
                            .into(),
                    ));
                }
                let leaf = log::leaf_from_digests(&subject, &payload);
                let withdrawn = withdrawal(store, &origin, index, &subject, &subjects, &touched)?;
                if let Some((id, state)) = &withdrawn {
                    touched.insert(id.clone(), *state);
                    audience
                        .withdrawn
                        .insert(id.clone(), WithdrawReason::Narrowed);
                }
                let stored = StoredEntry::Redacted { subject, payload };
                appender
                    .push(&stored, leaf, withdrawn)
                    .map_err(StoreError::from)?;
                handed.push(Handed::Stored(stored));
            }
            _ => return Err(sequence("neither an entry nor its digests".into())),
        }
    }
    check_batch_proof(&origin, &appender, &ingest.checkpoint, &proof)?;
    if let Some(at) = audience.refill_at {
        // Before the commit: a crash between the two asks for a refill that
        // finds nothing, never forgets one.
        store.mark_refill(&origin, at)?;
    }
    let count = appender.len() as u64;
    if count > 0 {
        store.commit(&appender.finish())?;
        store.flush()?;
        // One handed entry per entry committed, in order.
        debug_assert_eq!(handed.len() as u64, count);
        if handed.len() as u64 == count {
            node.handoff.give(&origin, first, handed);
        }
        ingest.applied += count;
        let metrics = node.metrics();
        metrics.entries_pulled.inc_by(count);
        for reason in audience.withdrawn.into_values() {
            metrics.withdrawn.add(reason, 1);
        }
        node.changed();
    }
    Ok(count)
}

/// A later entry about a record this node holds that arrives as digests
/// only is a version this node may not see: a narrowed visibility, a
/// tombstone of such a version, or a relay's copy that went out of date.
/// The held version is withdrawn (its state becomes a deletion at `index`),
/// so it is neither searched nor served nor relayed any more.
fn withdrawal(
    store: &crate::store::Store,
    origin: &str,
    index: u64,
    subject: &Hash,
    batch_subjects: &HashMap<Hash, String>,
    touched: &HashMap<String, RecordState>,
) -> Result<Option<(String, RecordState)>, SyncError> {
    let id = match batch_subjects.get(subject) {
        Some(id) => id.clone(),
        None => match store.record_by_subject(origin, subject)? {
            Some(id) => id,
            None => return Ok(None),
        },
    };
    let held = match touched.get(&id) {
        Some(state) => Some(*state),
        None => store.record_state(origin, &id)?,
    };
    Ok(held
        .and_then(|held| held.withdrawn_at(LogIndex(index)))
        .map(|state| (id, state)))
}

/// Visibility and groups of each record a batch brought, by id.
type RecordAudiences = HashMap<String, (i32, Vec<String>)>;

/// The origin's audience as a batch applies it.
struct AudienceInBatch<'a> {
    node: &'a Node,
    chain: &'a KeyChain,
    origin: &'a str,
    /// In force as of the entry being applied, once the batch changed it
    /// (an audience, or a revocation that set one aside); the store's
    /// until then.
    in_force: Option<Option<Arc<AudienceView>>>,
    /// The audiences the batch brought, oldest first.
    brought: Vec<(u64, Envelope, Arc<AudienceView>)>,
    /// The position of a change that grants this node more than before.
    refill_at: Option<u64>,
    /// Records the batch withdrew (by a change of audience, or by digests
    /// of a later version) and no later entry of it brought back, with why.
    withdrawn: HashMap<String, WithdrawReason>,
}

impl<'a> AudienceInBatch<'a> {
    fn new(node: &'a Node, chain: &'a KeyChain, origin: &'a str) -> Self {
        Self {
            node,
            chain,
            origin,
            in_force: None,
            brought: Vec::new(),
            refill_at: None,
            withdrawn: HashMap::new(),
        }
    }

    /// Makes `to` the audience in force from entry `index` on (`why`: an
    /// audience, or a revocation that set one aside). Notes a refill when
    /// it grants this node more than the one before, and withdraws at
    /// `index`, in `appender` and in `touched`, the records held here that
    /// it no longer lets this node see (`touched` and `batch`: the states
    /// and audiences of what the batch brought so far).
    fn change(
        &mut self,
        why: WithdrawReason,
        index: u64,
        to: Option<Arc<AudienceView>>,
        (touched, batch): (&mut HashMap<String, RecordState>, &RecordAudiences),
        appender: &mut Appender<OriginNodes<'_>>,
    ) -> Result<(), SyncError> {
        let (node, origin) = (self.node, self.origin);
        let me = node.node_id().as_str();
        let before = match &self.in_force {
            Some(view) => view.clone(),
            None => node.audience(origin).map_err(|e| SyncError::Sequence {
                origin: origin.to_owned(),
                index,
                message: e.to_string(),
            })?,
        };
        let granted = Grants::of(origin, to.as_deref(), me, false);
        let held = Grants::of(origin, before.as_deref(), me, false);
        if !held.includes(&granted) {
            // More for this node than before: what it holds as digests may
            // now come whole.
            self.refill_at = Some(index);
        }
        let withdrawn = if may_narrow(self.chain, origin, before.as_deref(), &granted, me) {
            no_longer_for_us(node, origin, index, to.as_deref(), touched, batch)?
        } else {
            Vec::new()
        };
        if !withdrawn.is_empty() {
            tracing::info!(
                origin,
                index,
                records = withdrawn.len(),
                reason = why.as_str(),
                "the origin's audience in force no longer lets this node see records it held; withdrawn"
            );
        }
        for (id, state) in withdrawn {
            touched.insert(id.clone(), state);
            self.withdrawn.insert(id.clone(), why);
            appender.withdraw(id, state);
        }
        self.in_force = Some(to);
        Ok(())
    }
}

/// Whether an audience granting this node `granted` may leave out a record
/// it holds of `origin`, so that each must be checked again
/// ([`no_longer_for_us`], a read of every held record's entry). It cannot
/// when it grants at least what `before` (the audience in force here until
/// now) did: every record held whole was served under an audience of the
/// origin no older than the one in force when it arrived, each audience
/// since withdrew what it left out, and none was set aside. With no
/// audience before, the origin served FEDERATION records to the peers it
/// pinned, so this node may hold those. A revocation sets aside the
/// audiences its key signed, and what they let in is checked again.
fn may_narrow(
    chain: &KeyChain,
    origin: &str,
    before: Option<&AudienceView>,
    granted: &Grants,
    me: &str,
) -> bool {
    !chain.revocations().is_empty() || !granted.includes(&Grants::of(origin, before, me, true))
}

/// The records of `origin` this node holds that `audience` (the origin's
/// audience in force from `index` on; `None`: the pin decides) no longer
/// lets it see, each with its state withdrawn at `index`: this node is
/// honest about itself, and drops what the origin no longer shares with
/// it, as for a narrowed record.
fn no_longer_for_us(
    node: &Node,
    origin: &str,
    index: u64,
    audience: Option<&AudienceView>,
    touched: &HashMap<String, RecordState>,
    batch: &RecordAudiences,
) -> Result<Vec<(String, RecordState)>, SyncError> {
    let store = node.store();
    let us = Viewer::peer(
        node.node_id().clone(),
        Grants::of(origin, audience, node.node_id().as_str(), false),
    );
    let mut held: Vec<(String, RecordState)> = touched
        .iter()
        .map(|(id, state)| (id.clone(), *state))
        .collect();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_records(origin, after.as_deref(), BATCH)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        held.extend(page.into_iter().filter(|(id, _)| !touched.contains_key(id)));
    }
    let mut withdrawn = Vec::new();
    for (id, state) in held {
        let Some(withdrawn_state) = state.withdrawn_at(LogIndex(index)) else {
            continue;
        };
        let may_see = match batch.get(&id) {
            Some((visibility, groups)) => us.may_see_audience(origin, *visibility, groups),
            None => match store.entry(origin, state.log_index)? {
                Some(StoredEntry::Signed(envelope)) => {
                    let (delivery, _) = crate::visibility::pull_delivery(&us, &envelope.payload)
                        .map_err(|e| StoreError::Corrupt {
                            tree: crate::store::tree::LOG,
                            detail: format!("{origin} entry {}: {e}", state.log_index.get()),
                        })?;
                    delivery == crate::visibility::Delivery::Envelope
                }
                // Held as digests only: nothing of it to withdraw.
                _ => true,
            },
        };
        if !may_see {
            withdrawn.push((id, withdrawn_state));
        }
    }
    Ok(withdrawn)
}

fn describe(item: &PullItem) -> &'static str {
    match item.item {
        Some(pull_item::Item::Checkpoint(_)) => "a checkpoint",
        Some(pull_item::Item::Entry(_)) => "an entry",
        Some(pull_item::Item::Redacted(_)) => "digests",
        Some(pull_item::Item::Proof(_)) => "a proof",
        Some(pull_item::Item::KeySet(_)) => "a key set announcement",
        None => "an empty item",
    }
}

/// Checks that the log as it stands after this batch is a prefix of the
/// log the origin signed: an entry is signed, but digests are not, and this
/// is what keeps a relay from inventing or altering them. A failure blames
/// the serving peer, not the origin.
fn check_batch_proof(
    origin: &str,
    appender: &Appender<OriginNodes<'_>>,
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
    let root = appender.root().map_err(StoreError::from)?;
    crate::merkle::verify_consistency(size, checkpoint.size, &root, &signed_root, &hashes)
        .map_err(|e| unproven(e.to_string()))
}

/// Ends a pull: once the log reaches the checkpoint, its root must match.
pub fn finish_ingest(node: &Node, ingest: &Ingest) -> Result<(), SyncError> {
    let size = node.store().log_size(&ingest.origin)?;
    if size != ingest.checkpoint.size {
        return Ok(());
    }
    let root = node.store().log_root(&ingest.origin, size)?;
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
    // Durable before the pull reports: the checkpoint is what this node
    // serves and checks the next pull against.
    node.store().flush()?;
    Ok(())
}

/// `what` from `peer`, or [`SyncError::Stalled`] once it has taken `idle`.
pub(super) async fn within<T>(
    peer: &str,
    idle: Duration,
    what: impl std::future::Future<Output = T>,
) -> Result<T, SyncError> {
    tokio::time::timeout(idle, what)
        .await
        .map_err(|_| SyncError::Stalled {
            peer: peer.to_owned(),
            secs: idle.as_secs(),
        })
}

/// What one pull may hold: each item is checked against its bound as it
/// arrives, before it is kept; the open batch has a byte budget; and every
/// batch holds its bytes of the pull's budget until it is applied, so the
/// receiver waits rather than buffer more than [`MAX_PULL_BYTES`].
struct Bounds {
    peer: String,
    origin: String,
    budget: Arc<tokio::sync::Semaphore>,
    /// Bytes of the open batch, and the room they hold in the budget.
    batch_bytes: usize,
    held: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Bounds {
    fn new(peer: &str, origin: &str) -> Self {
        Self {
            peer: peer.to_owned(),
            origin: origin.to_owned(),
            budget: Arc::new(tokio::sync::Semaphore::new(MAX_PULL_BYTES)),
            batch_bytes: 0,
            held: None,
        }
    }

    fn overrun(&self, index: u64, message: String) -> SyncError {
        SyncError::Overrun {
            peer: self.peer.clone(),
            origin: self.origin.clone(),
            index,
            message,
        }
    }

    /// Checks one arriving item against its bound and the batch's budget,
    /// and takes its bytes from the pull's budget (waiting for room).
    async fn admit(&mut self, item: &PullItem) -> Result<(), SyncError> {
        let size = item_bounds(item).map_err(|message| self.overrun(item.index, message))?;
        if self.batch_bytes + size > MAX_BATCH_BYTES {
            return Err(self.overrun(
                item.index,
                format!("more than {MAX_BATCH_BYTES} bytes without a proof"),
            ));
        }
        self.batch_bytes += size;
        // `size` is at most MAX_PULL_ITEM_BYTES, far below u32::MAX.
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(size as u32)
            .await
            .map_err(|_| self.overrun(item.index, "the pull was closed".into()))?;
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        Ok(())
    }

    /// Closes the open batch: its room in the budget goes with it.
    fn close(&mut self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.batch_bytes = 0;
        self.held.take()
    }
}

/// The size of a pulled item if it is within its bound, or what is wrong
/// with it. Looks at lengths only: no decoding, no crypto.
fn item_bounds(item: &PullItem) -> Result<usize, String> {
    let size = item.encoded_len();
    match &item.item {
        Some(pull_item::Item::Entry(envelope))
        | Some(pull_item::Item::Checkpoint(envelope))
        | Some(pull_item::Item::KeySet(envelope)) => {
            let envelope_size = envelope.encoded_len();
            if envelope_size > MAX_ENVELOPE_BYTES {
                return Err(SignError::TooLarge {
                    size: envelope_size,
                    max: MAX_ENVELOPE_BYTES,
                }
                .to_string());
            }
        }
        Some(pull_item::Item::Redacted(Redacted {
            subject_digest,
            payload_digest,
        })) => {
            for (what, digest) in [("subject", subject_digest), ("payload", payload_digest)] {
                if digest.len() != 32 {
                    return Err(format!("{what} digest is {} bytes, not 32", digest.len()));
                }
            }
        }
        Some(pull_item::Item::Proof(proof)) => {
            if proof.hashes.len() > MAX_PROOF_HASHES {
                return Err(format!(
                    "a proof of {} hashes, more than {MAX_PROOF_HASHES}",
                    proof.hashes.len()
                ));
            }
            if let Some(hash) = proof.hashes.iter().find(|h| h.len() != 32) {
                return Err(format!("a proof hash is {} bytes, not 32", hash.len()));
            }
        }
        None => {}
    }
    if size > MAX_PULL_ITEM_BYTES {
        return Err(format!(
            "an item of {size} bytes exceeds the limit of {MAX_PULL_ITEM_BYTES} bytes"
        ));
    }
    Ok(size)
}

/// Pulls one origin from one peer, committing in batches. The peer may
/// send nothing for at most `idle` at any point (the answer, each item);
/// then the pull ends with [`SyncError::Stalled`], keeping every batch
/// committed so far.
pub(super) async fn pull_origin(
    node: &Arc<Node>,
    client: &dyn FederationPeer,
    peer: &str,
    origin: &str,
    after: u64,
    max_batch: u32,
    idle: Duration,
) -> Result<u64, SyncError> {
    let mut stream = within(peer, idle, client.pull(origin, after, max_batch)).await??;
    let mut bounds = Bounds::new(peer, origin);
    let first = match within(peer, idle, stream.next()).await? {
        Some(item) => item?,
        None => return Ok(0),
    };
    // The checkpoint and the key sets announced after it are held until
    // they are checked, and their bytes with them: they stay in the pull's
    // budget, as one opening batch, until then.
    bounds.admit(&first).await?;
    let Some(pull_item::Item::Checkpoint(checkpoint)) = first.item else {
        return Err(SyncError::Sequence {
            origin: origin.to_owned(),
            index: after,
            message: "pull did not start with a checkpoint".into(),
        });
    };
    // The key sets after the cursor come next, announced before the
    // entries, so the checkpoint and new keys verify.
    let mut announced = Vec::new();
    let mut pending = None;
    while let Some(next) = within(peer, idle, stream.next()).await? {
        let item = next?;
        bounds.admit(&item).await?;
        match item.item {
            Some(pull_item::Item::KeySet(envelope)) => {
                if announced.len() >= MAX_ANNOUNCED_KEY_SETS {
                    return Err(bounds.overrun(
                        item.index,
                        format!("more than {MAX_ANNOUNCED_KEY_SETS} key sets in one pull"),
                    ));
                }
                announced.push((item.index, envelope));
            }
            _ => {
                pending = Some(item);
                break;
            }
        }
    }
    let opening = bounds.close();
    let (n, o) = (node.clone(), origin.to_owned());
    let ingest = tokio::task::spawn_blocking(move || begin_ingest(&n, &o, &checkpoint, &announced))
        .await
        .map_err(|e| join_error(origin, e))??;
    drop(opening);
    let Some(mut ingest) = ingest else {
        return Ok(0);
    };
    // Receiving runs ahead of verifying and committing: the next batch
    // arrives while this one is checked, so neither side waits on the other.
    // Each batch carries its room in the pull's byte budget until applied.
    type Room = Option<tokio::sync::OwnedSemaphorePermit>;
    let (batches, mut ready) = tokio::sync::mpsc::channel::<(Vec<PullItem>, Room)>(2);
    let receiver_peer = peer.to_owned();
    let receiver = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        let mut pending = pending;
        loop {
            let item = match pending.take() {
                // Its bytes were admitted and released: admit them again
                // for the batch it opens.
                Some(item) => item,
                None => match within(&receiver_peer, idle, stream.next()).await? {
                    Some(next) => next?,
                    None => break,
                },
            };
            bounds.admit(&item).await?;
            if batch.len() >= MAX_UNPROVEN {
                return Err(bounds.overrun(
                    item.index,
                    format!("more than {MAX_UNPROVEN} items without a proof"),
                ));
            }
            let closes = matches!(item.item, Some(pull_item::Item::Proof(_)));
            batch.push(item);
            if closes {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                if batches.send((full, bounds.close())).await.is_err() {
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
    let (checked_tx, mut checked) = tokio::sync::mpsc::channel::<(CheckedBatch, Room)>(1);
    let chain = ingest.chain.clone();
    let checker = tokio::spawn(async move {
        while let Some((items, room)) = ready.recv().await {
            let chain = chain.clone();
            let batch = tokio::task::spawn_blocking(move || check_batch(&chain, items)).await?;
            if checked_tx.send((batch, room)).await.is_err() {
                break;
            }
        }
        Ok::<(), tokio::task::JoinError>(())
    });
    while let Some((batch, room)) = checked.recv().await {
        let n = node.clone();
        let result = tokio::task::spawn_blocking(move || {
            let outcome = apply_batch(&n, &mut ingest, batch);
            (outcome, ingest)
        })
        .await
        .map_err(|e| join_error(origin, e))?;
        drop(room);
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

/// Asks `peer` again for the entries of `origin` below `upto` (the
/// position of an audience that grants this node more than it held) and
/// puts each that now comes whole in place of the digests held for it
/// ([`refill_batch`]). Returns how many records came back, and whether the
/// peer holds the audience (its checkpoint covers `upto`): only then is
/// the refill done, since a peer that lacks it still serves digests.
pub(super) async fn refill_origin(
    node: &Arc<Node>,
    client: &dyn FederationPeer,
    peer: &str,
    origin: &str,
    upto: u64,
    idle: Duration,
) -> Result<(u64, bool), SyncError> {
    let chain = origin_chain(node, origin)?;
    let (n, o) = (node.clone(), origin.to_owned());
    // First what an earlier refill stored but did not index.
    let refill = tokio::task::spawn_blocking(move || {
        index_refilled(&n, &o)?;
        Refill::new(&n, &o)
    })
    .await
    .map_err(|e| join_error(origin, e))??;
    let refill = Arc::new(refill);
    let mut stream = within(peer, idle, client.pull(origin, 0, 0)).await??;
    let mut covers = false;
    let mut restored = 0;
    let mut batch: Vec<PullItem> = Vec::new();
    let mut bytes = 0;
    let bounds = Bounds::new(peer, origin);
    // What a pull may bring, so that a peer cannot keep one going without
    // progress: one checkpoint first, the key sets it announces at rising
    // positions within it (a refill reads from the start of the log, so
    // there may be more than a pull's 64), entries at rising positions, and
    // a proof after each batch of them.
    let (mut checkpoints, mut signed_size, mut last_key_set) = (0, None::<u64>, None::<u64>);
    let (mut last_entry, mut entries_since_proof) = (None::<u64>, 0);
    while let Some(next) = within(peer, idle, stream.next()).await? {
        let item = next?;
        let size = item_bounds(&item).map_err(|message| bounds.overrun(item.index, message))?;
        let unexpected = match &item.item {
            Some(pull_item::Item::Checkpoint(_)) => {
                checkpoints += 1;
                (checkpoints > 1).then(|| "a second checkpoint".to_owned())
            }
            Some(pull_item::Item::KeySet(_)) => {
                let behind = last_key_set.is_some_and(|last| item.index <= last);
                last_key_set = Some(item.index);
                match signed_size {
                    None => Some("a key set before the checkpoint".to_owned()),
                    Some(size) if item.index >= size => {
                        Some(format!("a key set beyond the checkpoint of size {size}"))
                    }
                    _ => behind.then(|| "a key set at or before the one before it".to_owned()),
                }
            }
            Some(pull_item::Item::Proof(_)) => {
                let empty = entries_since_proof == 0;
                entries_since_proof = 0;
                empty.then(|| "a proof of a batch with no entries".to_owned())
            }
            Some(pull_item::Item::Entry(_)) | Some(pull_item::Item::Redacted(_)) => {
                entries_since_proof += 1;
                let behind = last_entry.is_some_and(|last| item.index <= last);
                last_entry = Some(item.index);
                behind.then(|| "an entry at or before the one before it".to_owned())
            }
            // Nothing to take, and nothing else would end a stream of them.
            None => Some("an empty item".to_owned()),
        };
        if let Some(message) = unexpected {
            return Err(bounds.overrun(item.index, message));
        }
        match &item.item {
            Some(pull_item::Item::Checkpoint(envelope)) => {
                let checkpoint =
                    chain
                        .open_checkpoint(envelope)
                        .map_err(|source| SyncError::Checkpoint {
                            origin: origin.to_owned(),
                            source,
                        })?;
                covers = checkpoint.size > upto;
                signed_size = Some(checkpoint.size);
                continue;
            }
            Some(pull_item::Item::Entry(_)) if item.index < upto => {}
            Some(pull_item::Item::Entry(_)) | Some(pull_item::Item::Redacted(_))
                if item.index >= upto =>
            {
                break
            }
            _ => continue,
        }
        bytes += size;
        batch.push(item);
        if batch.len() >= BATCH || bytes >= MAX_BATCH_BYTES {
            let items = std::mem::take(&mut batch);
            bytes = 0;
            restored += refill_blocking(node, &chain, origin, items, &refill).await?;
        }
    }
    if !batch.is_empty() {
        restored += refill_blocking(node, &chain, origin, batch, &refill).await?;
    }
    Ok((restored, covers))
}

async fn refill_blocking(
    node: &Arc<Node>,
    chain: &Arc<KeyChain>,
    origin: &str,
    items: Vec<PullItem>,
    refill: &Arc<Refill>,
) -> Result<u64, SyncError> {
    let (n, c, o, r) = (
        node.clone(),
        chain.clone(),
        origin.to_owned(),
        refill.clone(),
    );
    tokio::task::spawn_blocking(move || refill_batch(&n, &c, &o, items, &r))
        .await
        .map_err(|e| join_error(origin, e))?
}

/// What a refill of one origin reads of what is held here, once.
pub struct Refill {
    /// The records an audience withdrew, by id, with their version.
    withdrawn: HashMap<String, u64>,
    /// This node as the origin's audience in force sees it.
    us: Viewer,
    /// Per record subject digest, the last position of the log held here
    /// about it (whole or as digests), read when a batch first has a
    /// record to bring back.
    latest: std::sync::Mutex<Option<Arc<HashMap<Hash, u64>>>>,
}

impl Refill {
    /// Reads what a refill of `origin` at `node` needs before it starts.
    pub fn new(node: &Node, origin: &str) -> Result<Self, SyncError> {
        let withdrawn = node.store().withdrawn_by_audience(origin)?;
        let me = node.node_id();
        let audience = node
            .audience(origin)
            .map_err(|e| super::node_error(origin, e))?;
        // As `no_longer_for_us` reads it: what that withdraws, a refill
        // never brings back.
        let us = Viewer::peer(
            me.clone(),
            Grants::of(origin, audience.as_deref(), me.as_str(), false),
        );
        Ok(Self {
            withdrawn,
            us,
            latest: std::sync::Mutex::new(None),
        })
    }

    /// Per record subject digest, the last position held about it.
    fn latest(&self, node: &Node, origin: &str) -> Result<Arc<HashMap<Hash, u64>>, SyncError> {
        let mut held = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(latest) = &*held {
            return Ok(latest.clone());
        }
        let store = node.store();
        let size = store.log_size(origin)?;
        let mut latest = HashMap::new();
        let mut from = 0;
        while from < size {
            let entries = store.entries(origin, LogIndex(from), BATCH)?;
            let Some((last, _)) = entries.last() else {
                break;
            };
            from = last.next().get();
            for (index, entry) in entries {
                let subject = match entry {
                    StoredEntry::Redacted { subject, .. } => subject,
                    StoredEntry::Signed(envelope) => {
                        match LogEntry::decode(envelope.payload.as_slice()) {
                            Ok(LogEntry {
                                body: Some(Body::Record(record)),
                                ..
                            }) => log::subject_digest(origin, &record.id),
                            _ => continue,
                        }
                    }
                };
                latest.insert(subject, index.get());
            }
        }
        let latest = Arc::new(latest);
        *held = Some(latest.clone());
        Ok(latest)
    }
}

/// One batch of a refill: each whole entry, verified against the origin's
/// keys at its position, that hashes to the digests held at its position
/// replaces them (the log and its tree do not change), and its record
/// becomes the current state when it is newer than what is held, or when
/// what is held is this very version withdrawn (by digests at this
/// position, or by an earlier audience). Anything else is ignored: a relay
/// cannot make this node hold what the origin did not sign there, nor a
/// version that the origin's audience in force does not let it see, nor
/// one the log held here has a later entry about (a later version or
/// tombstone, whole or as digests): an honest server sends none of those
/// whole.
///
/// Only what can change is verified: an entry held whole already, byte for
/// byte, was verified when it arrived and brings back only a version
/// an audience withdrew; an entry whose payload does not hash to the
/// digests held at its position is ignored before its signature is checked.
pub fn refill_batch(
    node: &Node,
    chain: &KeyChain,
    origin: &str,
    items: Vec<PullItem>,
    refill: &Refill,
) -> Result<u64, SyncError> {
    let withdrawn = &refill.withdrawn;
    let store = node.store();
    let mut held = HeldEntries::new(store, origin);
    // In log order: each entry that may change something, and whether it
    // replaces digests (then its signature is checked) or is held whole.
    let mut candidates: Vec<(u64, Candidate)> = Vec::new();
    let mut unverified: Vec<PullItem> = Vec::new();
    for item in items {
        let index = item.index;
        let Some(pull_item::Item::Entry(envelope)) = &item.item else {
            continue;
        };
        match held.at(index)? {
            Some(StoredEntry::Redacted { subject, payload })
                if *payload == log::payload_digest(&envelope.payload) =>
            {
                candidates.push((index, Candidate::Digests(*subject, unverified.len())));
                unverified.push(item);
            }
            Some(StoredEntry::Signed(whole))
                if !withdrawn.is_empty() && whole.payload == envelope.payload =>
            {
                if let Ok(entry) = LogEntry::decode(whole.payload.as_slice()) {
                    let back = matches!(&entry.body, Some(Body::Record(r))
                        if withdrawn.get(&r.id) == Some(&r.version));
                    if back {
                        candidates.push((index, Candidate::Whole(Box::new(entry))));
                    }
                }
            }
            _ => {}
        }
    }
    if candidates.is_empty() {
        return Ok(0);
    }
    let CheckedBatch {
        items: verified,
        mut opened,
    } = check_batch(chain, unverified);
    let mut verified: Vec<Option<PullItem>> = verified.into_iter().map(Some).collect();
    let mut replaced = Vec::new();
    let mut restored: HashMap<String, (RecordState, Hash)> = HashMap::new();
    for (index, candidate) in candidates {
        let (entry, subject) = match candidate {
            Candidate::Digests(subject, at) => {
                let Some(Ok(entry)) = opened.remove(&at) else {
                    continue;
                };
                (entry, Some((subject, at)))
            }
            Candidate::Whole(entry) => (*entry, None),
        };
        let Some(Body::Record(record)) = entry.body else {
            continue;
        };
        if entry.index != index || crate::record::validate(&record).is_err() {
            continue;
        }
        // Not for this node under the audience in force: it stays as held.
        if !refill
            .us
            .may_see_audience(origin, record.visibility, &record.groups)
        {
            continue;
        }
        let digest = log::subject_digest(origin, &record.id);
        // Superseded by a later entry held here: not the current version.
        if refill
            .latest(node, origin)?
            .get(&digest)
            .is_some_and(|&last| last > index)
        {
            continue;
        }
        if let Some((held_subject, at)) = subject {
            if held_subject != digest {
                continue;
            }
            let Some(PullItem {
                item: Some(pull_item::Item::Entry(envelope)),
                ..
            }) = verified[at].take()
            else {
                continue;
            };
            replaced.push((index, StoredEntry::Signed(envelope).encode()));
        }
        let current = match restored.get(&record.id) {
            Some((state, _)) => Some(*state),
            None => store.record_state(origin, &record.id)?,
        };
        let state = RecordState::of_version(&record, LogIndex(index), current.as_ref());
        let takes = match current {
            None => true,
            Some(held) if held.log_index < LogIndex(index) => held.version < record.version,
            // Withdrawn by these very digests.
            Some(held) if held.log_index == LogIndex(index) => held.deleted,
            // This version, withdrawn by an audience that a later one undid
            // (the state is the store's: the refill holds the origin's lock).
            Some(held) => {
                held.deleted
                    && held.version == record.version
                    && withdrawn.get(&record.id) == Some(&record.version)
            }
        };
        if takes {
            restored.insert(record.id.clone(), (state, digest));
        }
    }
    if replaced.is_empty() && restored.is_empty() {
        return Ok(0);
    }
    let states: Vec<(String, RecordState, Hash)> = restored
        .iter()
        .map(|(id, (state, subject))| (id.clone(), *state, *subject))
        .collect();
    store.refill(origin, &replaced, &states)?;
    store.flush()?;
    // Digests handed over at these positions are whole now.
    node.handoff.forget(origin);
    let count = states.iter().filter(|(_, state, _)| !state.deleted).count() as u64;
    // The store noted the records for the index with their states: what
    // this does not index (a crash, an error), the next refill or index
    // catch-up does.
    index_refilled(node, origin)?;
    Ok(count)
}

/// Indexes what refills of `origin` brought back ([`Node::index_refilled`]).
fn index_refilled(node: &Node, origin: &str) -> Result<(), SyncError> {
    node.index_refilled(origin).map_err(|e| SyncError::Worker {
        origin: origin.to_owned(),
        message: e.to_string(),
    })
}

/// An entry of a refill batch that may change what is held.
enum Candidate {
    /// Replaces the digests held at its position, whose subject digest is
    /// given: the entry is the `usize`-th of those whose signatures are
    /// checked.
    Digests(Hash, usize),
    /// The very entry held, already verified: brings back a version an
    /// audience withdrew.
    Whole(Box<LogEntry>),
}

/// The entries of `origin` held here, read in runs of a batch's size as a
/// refill walks its positions forward.
struct HeldEntries<'a> {
    store: &'a crate::store::Store,
    origin: &'a str,
    window: HashMap<u64, StoredEntry>,
    /// The positions read: `start..end`.
    start: u64,
    end: u64,
}

impl<'a> HeldEntries<'a> {
    fn new(store: &'a crate::store::Store, origin: &'a str) -> Self {
        Self {
            store,
            origin,
            window: HashMap::new(),
            start: 0,
            end: 0,
        }
    }

    /// The entry held at `index`; positions are asked in increasing order.
    fn at(&mut self, index: u64) -> Result<Option<&StoredEntry>, StoreError> {
        if !(self.start..self.end).contains(&index) {
            self.window = self
                .store
                .entries(self.origin, LogIndex(index), BATCH)?
                .into_iter()
                .map(|(at, entry)| (at.get(), entry))
                .collect();
            (self.start, self.end) = (index, index + BATCH as u64);
        }
        Ok(self.window.get(&index))
    }
}

/// A key-set entry of a peer's log stored here with other signatures than
/// the ones the origin signed it with: the first stored set that does not
/// extend the chain before it, for its signatures only. A release that took
/// a relay's batch whose key set differed from the one it verified could
/// store one (signatures stripped, forged or padded: the Merkle leaf covers
/// the payload only); it holds the origin back until the origin's own
/// envelope for it is fetched again ([`refetch_key_set`]).
pub(crate) struct DamagedKeySet {
    /// Its log position.
    pub index: u64,
    /// The chain up to the set before it, verified from the pinned root.
    before: KeyChain,
    /// The entry as stored.
    stored: Envelope,
}

/// The key set of `origin` stored with other signatures than the origin's,
/// when that is where its chain stops verifying from the root pinned for
/// it. `None` for this node's own log, for a chain that verifies, and for
/// one that breaks otherwise (a pin changed, a set that is not a valid
/// next set), which no peer's copy can mend.
pub(crate) fn damaged_key_set(
    node: &Node,
    origin: &str,
) -> Result<Option<DamagedKeySet>, SyncError> {
    if origin == node.node_id().as_str() {
        return Ok(None);
    }
    let Some(pinned) = node
        .trust()
        .get(origin)?
        .and_then(|peer| peer.pinned_root().ok())
    else {
        return Ok(None);
    };
    let (before, broken) = crate::node::walk_chain(node.store(), origin, Some(pinned))?;
    Ok(match broken {
        Some(crate::node::ChainBreak {
            index,
            stored: Some(stored),
            error: Some(error),
        }) if keyset::fails_on_signatures(&error) => Some(DamagedKeySet {
            index,
            before,
            stored,
        }),
        _ => None,
    })
}

/// Asks `peer` for the `damaged` key set of `origin` alone and puts the
/// origin's envelope for it in place of the one stored
/// ([`put_key_set`]). The pull asked for starts at its position in
/// batches of one; the first item must be a checkpoint (not needed here,
/// not verified), then the key set announced at the position or the entry
/// served there, whichever comes first, is taken; the key sets announced
/// after it are skipped, anything else is refused. Each item is held to
/// its bound before it is looked at, at most a checkpoint, the key sets a
/// pull may announce and the entry are read, and the stream is dropped
/// then. Call under the origin's sync lock.
pub(super) async fn refetch_key_set(
    node: &Arc<Node>,
    client: &dyn FederationPeer,
    peer: &str,
    origin: &str,
    damaged: DamagedKeySet,
    idle: Duration,
) -> Result<(), SyncError> {
    let index = damaged.index;
    let mut stream = within(peer, idle, client.pull(origin, index, 1)).await??;
    let bounds = Bounds::new(peer, origin);
    let refused = |at: u64, message: String| SyncError::Sequence {
        origin: origin.to_owned(),
        index: at,
        message,
    };
    let mut read = 0;
    let fetched = loop {
        let Some(next) = within(peer, idle, stream.next()).await? else {
            return Err(refused(
                index,
                "the pull ended before the key set asked for".into(),
            ));
        };
        let item = next?;
        item_bounds(&item).map_err(|message| bounds.overrun(item.index, message))?;
        read += 1;
        if read > MAX_ANNOUNCED_KEY_SETS + 2 {
            return Err(bounds.overrun(
                item.index,
                format!("more than {MAX_ANNOUNCED_KEY_SETS} key sets before the one asked for"),
            ));
        }
        match &item.item {
            Some(pull_item::Item::Checkpoint(_)) if read == 1 => {}
            _ if read == 1 => {
                return Err(refused(
                    index,
                    "pull did not start with a checkpoint".into(),
                ))
            }
            Some(pull_item::Item::KeySet(envelope) | pull_item::Item::Entry(envelope))
                if item.index == index =>
            {
                break envelope.clone();
            }
            Some(pull_item::Item::KeySet(_)) if item.index > index => {}
            _ => {
                return Err(refused(
                    item.index,
                    format!(
                        "{} where the key set at {index} was asked for",
                        describe(&item)
                    ),
                ))
            }
        }
    };
    drop(stream);
    let (n, o) = (node.clone(), origin.to_owned());
    tokio::task::spawn_blocking(move || put_key_set(&n, &o, &damaged, &fetched))
        .await
        .map_err(|e| join_error(origin, e))?
}

/// Puts `fetched`, a peer's envelope of the `damaged` key set, in place of
/// the one stored, once it is the origin's: its payload is the stored
/// payload byte for byte (so the log's leaf and its tree stay as they are:
/// [`crate::store::Store::refill`]), and its signatures make it the next
/// set of the chain before it, verified as the chain is
/// ([`KeyChain::extend`]). Anything else is refused as a bad entry from
/// the peer, and nothing is stored. The chain is built again from the
/// store at its next use, and the indexer takes the origin up where it
/// stopped. Call under the origin's sync lock. Blocking.
fn put_key_set(
    node: &Node,
    origin: &str,
    damaged: &DamagedKeySet,
    fetched: &Envelope,
) -> Result<(), SyncError> {
    let index = damaged.index;
    if fetched.payload != damaged.stored.payload {
        return Err(SyncError::Sequence {
            origin: origin.to_owned(),
            index,
            message: "differs from the key set held at this position".into(),
        });
    }
    let mut chain = damaged.before.clone();
    chain
        .extend(index, fetched, keyset::now_unix())
        .map_err(|source| {
            if *fetched == damaged.stored {
                // The peer holds the same damaged copy (a relay it took it
                // from altered it too): nothing it sent is its fault, and
                // the origin stays held back.
                SyncError::HeldBack {
                    origin: origin.to_owned(),
                    source,
                }
            } else {
                SyncError::Verify {
                    origin: origin.to_owned(),
                    index,
                    source,
                }
            }
        })?;
    let store = node.store();
    store.refill(
        origin,
        &[(index, StoredEntry::Signed(fetched.clone()).encode())],
        &[],
    )?;
    store.flush()?;
    node.forget_chain(origin);
    node.changed();
    Ok(())
}

fn join_error(origin: &str, e: tokio::task::JoinError) -> SyncError {
    SyncError::Worker {
        origin: origin.to_owned(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogAppend;
    use std::time::Duration;

    /// An append of record `id` of `origin` at `base`, noting its subject.
    fn record_append(origin: &str, base: u64, id: &str) -> LogAppend {
        let state = RecordState {
            version: 1,
            log_index: LogIndex(base),
            deleted: false,
            last_public: crate::log::LastPublic::Never,
        };
        LogAppend {
            origin: origin.into(),
            base_size: base,
            entries: vec![(base, id.as_bytes().to_vec())],
            records: vec![(id.into(), state)],
            subjects: vec![(log::subject_digest(origin, id), id.into())],
            ..LogAppend::default()
        }
    }

    /// The subject map is written ahead of its append, outside the
    /// append's transaction. An append that does not land (here refused as
    /// stale) may leave its record's subject behind: a later entry that
    /// arrives as digests about that subject withdraws nothing, and one
    /// about a record that did land withdraws it.
    #[test]
    fn a_subject_whose_append_did_not_land_withdraws_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        store.commit(&record_append("polar", 0, "held")).unwrap();
        let stale = store.commit(&record_append("polar", 0, "lost"));
        assert!(
            matches!(stale, Err(StoreError::Conflict { .. })),
            "{stale:?}"
        );
        assert_eq!(store.record_state("polar", "lost").unwrap(), None);
        // The case at hand: the map names a record the store does not hold.
        let lost = log::subject_digest("polar", "lost");
        assert_eq!(
            store.record_by_subject("polar", &lost).unwrap().as_deref(),
            Some("lost")
        );

        let (batch, touched) = (HashMap::new(), HashMap::new());
        assert_eq!(
            withdrawal(&store, "polar", 5, &lost, &batch, &touched).unwrap(),
            None
        );
        let held = log::subject_digest("polar", "held");
        let (id, state) = withdrawal(&store, "polar", 5, &held, &batch, &touched)
            .unwrap()
            .expect("the held record is withdrawn");
        assert_eq!(id, "held");
        assert_eq!((state.log_index, state.deleted), (LogIndex(5), true));
    }

    /// A pulled batch is verified in one slice per core, several hundred
    /// signatures each: one bad signature deep in a slice is found, named
    /// by its key, and holds back no other entry of the batch.
    #[test]
    fn one_bad_signature_in_a_large_batch_is_found_and_costs_no_other_entry() {
        let (node, _dir) = crate::test_support::opened_node("polar");
        let lines: Vec<String> = (0..700)
            .map(|i| {
                crate::test_support::record_line(&format!("PDC-{i}"), &format!("Ice {i}"), "public")
            })
            .collect();
        node.import_lines(1, &lines).unwrap();
        let size = node.store().log_size("polar").unwrap();
        let mut items: Vec<PullItem> = (1..size)
            .map(
                |index| match node.store().entry("polar", LogIndex(index)).unwrap() {
                    Some(StoredEntry::Signed(envelope)) => PullItem {
                        index,
                        item: Some(pull_item::Item::Entry(envelope)),
                    },
                    other => panic!("entry {index} is {other:?}"),
                },
            )
            .collect();
        assert!(items.len() >= 700, "{}", items.len());
        let bad = 500;
        match &mut items[bad].item {
            Some(pull_item::Item::Entry(envelope)) => envelope.signatures[0].sig[7] ^= 1,
            _ => unreachable!(),
        }
        let checked = check_batch(&node.own_chain(), items);
        assert_eq!(checked.opened.len(), checked.items.len());
        for (at, opened) in &checked.opened {
            if *at == bad {
                assert!(
                    matches!(opened, Err(SignError::BadSignature { .. })),
                    "{opened:?}"
                );
            } else {
                assert!(opened.is_ok(), "entry {at}: {opened:?}");
            }
        }
    }

    fn entry(index: u64, bytes: usize) -> PullItem {
        PullItem {
            index,
            item: Some(pull_item::Item::Entry(Envelope {
                payload: vec![0; bytes],
                payload_type: String::new(),
                signatures: Vec::new(),
            })),
        }
    }

    /// Issue 9, item 3: batches not yet applied hold their bytes, so a peer
    /// that sends faster than this node applies makes the receiver wait at
    /// the pull's budget instead of buffering more.
    #[tokio::test]
    async fn peer_input_is_bounded_before_it_is_buffered_per_pull() {
        let mut bounds = Bounds::new("uni", "polar");
        let item_bytes = MAX_ENVELOPE_BYTES - 64;
        let per_batch = MAX_BATCH_BYTES / MAX_PULL_ITEM_BYTES;
        let mut unapplied = Vec::new();
        let mut index = 0;
        let mut held = 0;
        while held + per_batch * item_bytes <= MAX_PULL_BYTES {
            for _ in 0..per_batch {
                bounds.admit(&entry(index, item_bytes)).await.unwrap();
                index += 1;
            }
            held += per_batch * item_bytes;
            unapplied.push(bounds.close());
        }
        // The budget is nearly spent: one more batch does not fit.
        let more = async {
            for i in 0..per_batch as u64 {
                bounds.admit(&entry(index + i, item_bytes)).await.unwrap();
            }
        };
        assert!(
            tokio::time::timeout(Duration::from_millis(200), more)
                .await
                .is_err(),
            "the receiver buffered past the pull's budget"
        );
        // Applying a batch makes room again.
        bounds.close();
        drop(unapplied.remove(0));
        let admitted = tokio::time::timeout(
            Duration::from_millis(200),
            bounds.admit(&entry(index, item_bytes)),
        )
        .await;
        assert!(matches!(admitted, Ok(Ok(()))), "{admitted:?}");
    }

    #[test]
    fn items_over_their_bounds_are_named() {
        let big = entry(3, MAX_ENVELOPE_BYTES);
        assert!(item_bounds(&big).unwrap_err().contains("exceeds the limit"));
        let proof = PullItem {
            index: 4,
            item: Some(pull_item::Item::Proof(BatchProof {
                size: 4,
                hashes: vec![vec![0; 32]; MAX_PROOF_HASHES + 1],
            })),
        };
        assert!(item_bounds(&proof).unwrap_err().contains("hashes"));
        let short = PullItem {
            index: 5,
            item: Some(pull_item::Item::Redacted(Redacted {
                subject_digest: vec![0; 32],
                payload_digest: vec![0; 31],
            })),
        };
        assert_eq!(
            item_bounds(&short).unwrap_err(),
            "payload digest is 31 bytes, not 32"
        );
        assert!(item_bounds(&entry(6, 1000)).is_ok());
    }
}
