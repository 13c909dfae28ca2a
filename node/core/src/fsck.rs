//! `meridian fsck`: whether a node's log, Merkle tree, signed checkpoints,
//! record states and search index agree, and exactly where they do not.
//!
//! For each origin held: every log entry is present, decodes, sits at the
//! index it was signed for and verifies against the origin's keys (batch
//! verification); the Merkle nodes stored give the root of the leaves the
//! log hashes to (RFC 9162); the stored checkpoint verifies, covers no more
//! than the log and signs the root of the log at its size (the own log's
//! checkpoint covers the whole log); each record state names the record's
//! last entry and notes its latest public version where the log has it;
//! and the index holds exactly the live records up to its cursor, each
//! once, at its version. A peer whose stored key chain does not verify
//! from the root pinned for it (sync holds it back) is named where the
//! chain breaks, and its log checked without its keys. [`repair`]
//! re-derives what can be derived without anyone else's key: the index,
//! the notes of the latest public versions, and the own log's checkpoint.

use std::collections::{BTreeMap, HashMap};

use prost::Message;
use serde::Serialize;

use crate::ids::LogIndex;
use crate::keyset::KeyChain;
use crate::log::{self, LastPublic, RecordState, StoredEntry, KEYSET_SUBJECT};
use crate::merkle::{Hash, MemoryTree};
use crate::node::{Node, NodeError};
use crate::proto::{log_entry::Body, Envelope};
use crate::store::tree;
use crate::visibility::{self, AudienceView, Delivery, Grants, Viewer};

/// Entries read (and verified) at a time.
const CHUNK: usize = 4096;

/// One disagreement, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What disagrees: `log`, `merkle`, `checkpoint`, `record` or `index`.
    pub part: &'static str,
    /// The sled tree, or `index`, holding the bad item.
    pub tree: &'static str,
    pub origin: String,
    /// The record id, when one record is concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The log index, when one entry is concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_index: Option<u64>,
    pub message: String,
    /// Whether [`repair`] re-derives it.
    pub repairable: bool,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}] {}", self.part, self.tree, self.origin)?;
        if let Some(index) = self.log_index {
            write!(f, " entry {index}")?;
        }
        if let Some(key) = &self.key {
            write!(f, " record `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// What a check found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FsckReport {
    /// Origins whose logs were checked.
    pub origins: u64,
    /// Log entries read.
    pub entries: u64,
    /// Record states read.
    pub records: u64,
    /// Documents in the index.
    pub indexed: u64,
    /// Entries committed but not yet indexed (the indexer catches up).
    pub index_behind: u64,
    pub findings: Vec<Finding>,
    /// What [`repair`] did.
    pub repaired: Vec<String>,
}

impl FsckReport {
    /// Whether everything agrees.
    pub fn clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Builds the findings of one origin.
struct Findings<'a> {
    origin: &'a str,
    out: &'a mut Vec<Finding>,
}

impl Findings<'_> {
    fn add(
        &mut self,
        part: &'static str,
        tree: &'static str,
        key: Option<&str>,
        log_index: Option<u64>,
        message: impl Into<String>,
        repairable: bool,
    ) {
        self.out.push(Finding {
            part,
            tree,
            origin: self.origin.to_owned(),
            key: key.map(str::to_owned),
            log_index,
            message: message.into(),
            repairable,
        });
    }
}

/// What the log says an origin holds: its leaves and each record's last
/// signed entry.
struct LogScan {
    leaves: Vec<Hash>,
    latest: HashMap<String, RecordState>,
    /// Records withdrawn by an audience of the origin that a later one
    /// grants this node again: the state before the withdrawal, which a
    /// refill restores (`sync::receive::refill_batch`) once a peer served it.
    restorable: HashMap<String, RecordState>,
}

/// Checks the node as it is. Reads everything; changes nothing.
pub fn check(node: &Node) -> Result<FsckReport, NodeError> {
    examine(node, false)
}

/// [`check`]; with `renote`, also writes into the record states the notes
/// of the latest public version the log gives where they disagree or are
/// missing (the check has the log in hand then), saying so in `repaired`.
fn examine(node: &Node, renote: bool) -> Result<FsckReport, NodeError> {
    let store = node.store();
    let mut report = FsckReport::default();
    let index = node.index();
    let cursors = index.committed_cursors();
    // The index's documents by origin and id: the versions indexed.
    let mut documents: BTreeMap<String, HashMap<String, Vec<u64>>> = BTreeMap::new();
    for (origin, id, version) in index.documents()? {
        report.indexed += 1;
        documents
            .entry(origin)
            .or_default()
            .entry(id)
            .or_default()
            .push(version);
    }
    let origins = store.origins()?;
    for (origin, size) in &origins {
        report.origins += 1;
        let mut findings = Findings {
            origin,
            out: &mut report.findings,
        };
        // A peer whose stored key chain does not verify from its pin is
        // held back by sync and the indexer: named where its chain breaks,
        // and its log checked without its keys.
        let (ring, broken) = match node.origin_keys(origin) {
            Ok(ring) => (ring, None),
            Err(NodeError::Sign(error)) => (None, Some(error)),
            Err(e) => return Err(e),
        };
        let scan = scan_log(node, origin, *size, ring.as_deref(), &mut findings)?;
        report.entries += scan.leaves.len() as u64;
        check_merkle(node, origin, &scan, &mut findings)?;
        check_checkpoint(node, origin, &scan, ring.as_deref(), &mut findings)?;
        if let Some(error) = &broken {
            name_chain_break(node, origin, error, &mut findings)?;
        }
        let (read, noted) = check_records(node, origin, &scan, renote, &mut findings)?;
        report.records += read;
        if noted > 0 {
            report.repaired.push(format!(
                "noted the latest public version in {noted} record states of {origin}"
            ));
        }
        if broken.is_some() {
            // What the index took of it before it was held back cannot be
            // held to its quarantine, which its chain decides.
            documents.remove(origin.as_str());
            continue;
        }
        let cursor = cursors.get(origin.as_str()).copied().unwrap_or(0);
        let durable = store.durable_log_size(origin).min(*size);
        if ring.is_some() {
            report.index_behind += durable.saturating_sub(cursor);
        }
        // Records a key revocation quarantines are kept out of the index.
        let quarantined: std::collections::HashSet<String> = node
            .quarantined(origin)?
            .into_iter()
            .map(|q| q.id)
            .collect();
        check_index(
            *size,
            cursor,
            ring.is_some(),
            &scan,
            &quarantined,
            documents.remove(origin.as_str()).unwrap_or_default(),
            &mut findings,
        );
    }
    // Whatever is left in the index belongs to no origin held here.
    for (origin, ids) in documents {
        let mut ids: Vec<String> = ids.into_keys().collect();
        ids.sort();
        for id in ids {
            report.findings.push(Finding {
                part: "index",
                tree: "index",
                origin: origin.clone(),
                key: Some(id),
                log_index: None,
                message: "indexed, but this node holds no log of its origin".into(),
                repairable: true,
            });
        }
    }
    for (origin, cursor) in &cursors {
        if !origins.iter().any(|(o, _)| o == origin) && *cursor > 0 {
            report.findings.push(Finding {
                part: "index",
                tree: "index",
                origin: origin.clone(),
                key: None,
                log_index: Some(*cursor),
                message: format!("the index has applied {cursor} entries of a log not held here"),
                repairable: true,
            });
        }
    }
    Ok(report)
}

/// Checks, then re-derives what can be: the own log's checkpoint, the
/// notes of each record's latest public version (a store written before
/// they were kept gets them all here) and the index. Returns the check
/// after the repairs, with what was done.
pub fn repair(node: &Node) -> Result<FsckReport, NodeError> {
    let before = examine(node, true)?;
    let mut repaired = before.repaired.clone();
    let own = node.node_id().as_str();
    if before
        .findings
        .iter()
        .any(|f| f.repairable && f.part == "checkpoint" && f.origin == own)
        && node.checkpoint_own_log()?
    {
        repaired.push(format!(
            "signed a checkpoint over the whole log of {own} ({} entries)",
            node.store().log_size(own)?
        ));
    }
    for finding in &before.findings {
        if finding.repairable && finding.tree == tree::LIVE {
            let live = node.store().recount_live(&finding.origin)?;
            repaired.push(format!("counted {live} live records of {}", finding.origin));
        }
    }
    if before
        .findings
        .iter()
        .any(|f| f.repairable && f.part == "index")
    {
        let seen = node.rebuild_index(&mut |_| {})?.entries;
        repaired.push(format!("rebuilt the index from the store ({seen} entries)"));
    }
    // Repairs are on disk when the command returns, whatever else still
    // holds the store open.
    node.store().flush()?;
    let mut after = check(node)?;
    after.repaired = repaired;
    Ok(after)
}

/// Names where `origin`'s stored key chain stops verifying from the root
/// pinned for it (`error`, as the chain was refused): the first stored key
/// set that does not extend the chain before it.
///
/// A log's Merkle leaves cover each entry's payload, not its signatures.
/// So a key set whose payload the origin's stored checkpoint covers, but
/// whose signatures do not verify, holds the payload the origin signed
/// with other signatures than the origin's: stripped, forged or padded by
/// a relay before batches whose key set differs from the verified one were
/// refused (`keyset::KeyChain::open_entries`). Nothing here can put the
/// origin's signatures back: the entry has to be fetched again from a peer.
fn name_chain_break(
    node: &Node,
    origin: &str,
    error: &crate::sign::SignError,
    findings: &mut Findings<'_>,
) -> Result<(), NodeError> {
    let store = node.store();
    let pinned = node
        .trust()
        .get(origin)?
        .and_then(|peer| peer.pinned_root().ok());
    let (chain, failed) = crate::node::walk_chain(store, origin, pinned)?;
    let at = failed.as_ref().map(|broken| broken.index);
    let reason = failed
        .as_ref()
        .and_then(|broken| broken.error.as_ref())
        .map_or_else(|| error.to_string(), ToString::to_string);
    // Only the signatures fail (the payload is a valid next set), and the
    // stored checkpoint, which agrees with the log's leaves, covers it.
    let signatures_only = failed
        .as_ref()
        .and_then(|broken| broken.error.as_ref())
        .is_some_and(crate::keyset::fails_on_signatures);
    let checkpoint_agrees = !findings
        .out
        .iter()
        .any(|f| f.origin == origin && f.part == "checkpoint");
    let covered = store
        .checkpoint(origin)?
        .as_deref()
        .and_then(crate::log::stored_checkpoint)
        .map(|c| c.size);
    let message = match (at, chain.latest()) {
        (Some(index), Some(before))
            if signatures_only && checkpoint_agrees && covered.is_some_and(|size| size > index) =>
        {
            format!(
                "the key set's signatures differ from the ones the origin signed: its payload is \
                 covered by the origin's stored checkpoint, but its signatures do not verify \
                 against the set at entry {} ({reason}); the origin is held back (not pulled, \
                 not indexed further) until this entry is fetched again from a peer",
                before.index
            )
        }
        (Some(_), Some(before)) => format!(
            "the key set does not verify against the set at entry {} ({reason}); the origin is \
             held back (not pulled, not indexed further) until it does",
            before.index
        ),
        _ => format!(
            "the origin's key chain does not verify from the root pinned for it ({reason}); the \
             origin is held back (not pulled, not indexed further) until it does: check the \
             pin (`meridian trust show {origin}`), or the stored set is damaged"
        ),
    };
    findings.add("log", tree::KEYSETS, None, at, message, false);
    Ok(())
}

fn scan_log(
    node: &Node,
    origin: &str,
    size: u64,
    ring: Option<&KeyChain>,
    findings: &mut Findings<'_>,
) -> Result<LogScan, NodeError> {
    let store = node.store();
    let mut scan = LogScan {
        // The size is read from the store, which may be damaged: the
        // leaves grow as entries are found, not by what the size claims.
        leaves: Vec::with_capacity(size.min(1 << 16) as usize),
        latest: HashMap::new(),
        restorable: HashMap::new(),
    };
    // Before an audience withdrew them: what a later audience may restore.
    let mut withdrawn_by_audience: HashMap<String, RecordState> = HashMap::new();
    let mut next = 0u64;
    while next < size {
        let entries = match store.entries(origin, LogIndex(next), CHUNK) {
            Ok(entries) => entries,
            Err(e) => {
                findings.add(
                    "log",
                    tree::LOG,
                    None,
                    Some(next),
                    format!("cannot be read: {e}"),
                    false,
                );
                return Ok(scan);
            }
        };
        let Some((first, _)) = entries.first() else {
            findings.add(
                "log",
                tree::LOG,
                None,
                Some(next),
                format!("missing: the log size is {size}, entries end at {next}"),
                false,
            );
            return Ok(scan);
        };
        if first.get() != next {
            findings.add(
                "log",
                tree::LOG,
                None,
                Some(next),
                format!("missing: the next entry stored is {}", first.get()),
                false,
            );
            return Ok(scan);
        }
        // Signatures in one batch per chunk.
        let envelopes: Vec<(u64, &Envelope)> = entries
            .iter()
            .filter_map(|(index, e)| match e {
                StoredEntry::Signed(envelope) => Some((index.get(), envelope)),
                StoredEntry::Redacted { .. } => None,
            })
            .collect();
        let verified: Vec<Result<(), String>> = match ring {
            Some(ring) => ring
                .open_entries(&envelopes)
                .into_iter()
                .map(|r| r.map(|_| ()).map_err(|e| e.to_string()))
                .collect(),
            // A quarantined origin: its key is no longer trusted here.
            None => vec![Ok(()); envelopes.len()],
        };
        let mut verified = verified.into_iter();
        for (index, entry) in &entries {
            let index = index.get();
            if index != next {
                findings.add(
                    "log",
                    tree::LOG,
                    None,
                    Some(next),
                    format!("missing: the next entry stored is {index}"),
                    false,
                );
                return Ok(scan);
            }
            next += 1;
            let leaf = match entry {
                StoredEntry::Redacted { subject, payload } => {
                    // Digests after a version held here withdrew it (see
                    // `sync::receive::withdrawal`): the state is a deletion
                    // at the digests' position.
                    if let Some(id) = store.record_by_subject(origin, subject)? {
                        if let Some(held) = scan.latest.get_mut(&id) {
                            if let Some(withdrawn) = held.withdrawn_at(LogIndex(index)) {
                                *held = withdrawn;
                            }
                        }
                    }
                    log::leaf_from_digests(subject, payload)
                }
                StoredEntry::Signed(envelope) => {
                    if let Some(Err(e)) = verified.next() {
                        findings.add(
                            "log",
                            tree::LOG,
                            None,
                            Some(index),
                            format!("does not verify: {e}"),
                            false,
                        );
                    }
                    let decoded = match entry.entry() {
                        Ok(Some(decoded)) => decoded,
                        Ok(None) => unreachable!("a signed entry has a payload"),
                        Err(e) => {
                            findings.add(
                                "log",
                                tree::LOG,
                                None,
                                Some(index),
                                format!("does not decode: {e}"),
                                false,
                            );
                            scan.leaves.push([0u8; 32]);
                            continue;
                        }
                    };
                    if decoded.index != index || decoded.origin != origin {
                        findings.add(
                            "log",
                            tree::LOG,
                            None,
                            Some(index),
                            format!(
                                "signed as entry {} of {}'s log",
                                decoded.index, decoded.origin
                            ),
                            false,
                        );
                    }
                    let subject = match decoded.body {
                        Some(Body::Record(record)) => {
                            let previous = scan.latest.get(&record.id);
                            let state = RecordState::of_version(&record, LogIndex(index), previous);
                            if let Some(previous) = previous {
                                if previous.version >= record.version {
                                    findings.add(
                                        "log",
                                        tree::LOG,
                                        Some(&record.id),
                                        Some(index),
                                        format!(
                                            "version {} does not follow version {} (entry {})",
                                            record.version,
                                            previous.version,
                                            previous.log_index.get()
                                        ),
                                        false,
                                    );
                                }
                            }
                            scan.latest.insert(record.id.clone(), state);
                            withdrawn_by_audience.remove(&record.id);
                            scan.restorable.remove(&record.id);
                            record.id
                        }
                        // What `sync::receive` withdraws at an audience of
                        // another origin that no longer names this node.
                        Some(Body::Audience(audience)) if origin != node.node_id().as_str() => {
                            if let Ok(view) = AudienceView::check(origin, &audience) {
                                replay_audience(
                                    node,
                                    origin,
                                    index,
                                    Some(&view),
                                    &mut scan,
                                    &mut withdrawn_by_audience,
                                )?;
                            }
                            KEYSET_SUBJECT.to_owned()
                        }
                        // And at a revocation that set aside the audience in
                        // force (one the revoked key signed).
                        Some(Body::KeySet(set))
                            if !set.revocations.is_empty() && origin != node.node_id().as_str() =>
                        {
                            if let Some(ring) = ring {
                                if let Some(set_aside) =
                                    node.set_aside_at(origin, ring, index, &[])?
                                {
                                    replay_audience(
                                        node,
                                        origin,
                                        index,
                                        set_aside.in_force.as_deref(),
                                        &mut scan,
                                        &mut withdrawn_by_audience,
                                    )?;
                                }
                            }
                            KEYSET_SUBJECT.to_owned()
                        }
                        _ => KEYSET_SUBJECT.to_owned(),
                    };
                    log::entry_leaf(origin, &subject, &envelope.payload)
                }
            };
            scan.leaves.push(leaf);
        }
    }
    Ok(scan)
}

/// Replays what `sync::receive` does when `audience` (`None`: the pin
/// decides) becomes the one in force at `index`: each held record it does
/// not let this node see is withdrawn there, remembered as it was before,
/// and what it lets this node see again of what was withdrawn so is
/// restorable (a refill brings it back).
fn replay_audience(
    node: &Node,
    origin: &str,
    index: u64,
    audience: Option<&AudienceView>,
    scan: &mut LogScan,
    withdrawn_by_audience: &mut HashMap<String, RecordState>,
) -> Result<(), NodeError> {
    let store = node.store();
    let me = node.node_id().as_str();
    let us = Viewer::peer(
        node.node_id().clone(),
        Grants::of(origin, audience, me, false),
    );
    let sees = |state: &RecordState| -> Result<bool, NodeError> {
        Ok(match store.entry(origin, state.log_index)? {
            Some(StoredEntry::Signed(e)) => visibility::pull_delivery(&us, &e.payload)
                .is_ok_and(|(delivery, _)| delivery == Delivery::Envelope),
            _ => true,
        })
    };
    for (id, held) in scan.latest.iter_mut() {
        if let Some(withdrawn) = held.withdrawn_at(LogIndex(index)) {
            if !sees(held)? {
                withdrawn_by_audience.insert(id.clone(), *held);
                *held = withdrawn;
            }
        }
    }
    for (id, before) in withdrawn_by_audience.iter() {
        if sees(before)? {
            scan.restorable.insert(id.clone(), *before);
        }
    }
    Ok(())
}

fn check_merkle(
    node: &Node,
    origin: &str,
    scan: &LogScan,
    findings: &mut Findings<'_>,
) -> Result<(), NodeError> {
    let size = scan.leaves.len() as u64;
    if size == 0 {
        return Ok(());
    }
    let computed = MemoryTree::from_leaves(scan.leaves.iter().copied()).root();
    match node.store().log_root(origin, size) {
        Ok(stored) if stored == computed => {}
        Ok(stored) => findings.add(
            "merkle",
            tree::MERKLE,
            None,
            None,
            format!(
                "the stored nodes give root {} at size {size}; the log's leaves give {}",
                hex::encode(stored),
                hex::encode(computed)
            ),
            false,
        ),
        Err(e) => findings.add(
            "merkle",
            tree::MERKLE,
            None,
            None,
            format!("no root at size {size}: {e}"),
            false,
        ),
    }
    Ok(())
}

fn check_checkpoint(
    node: &Node,
    origin: &str,
    scan: &LogScan,
    ring: Option<&KeyChain>,
    findings: &mut Findings<'_>,
) -> Result<(), NodeError> {
    let size = scan.leaves.len() as u64;
    let own = origin == node.node_id().as_str();
    let Some(bytes) = node.store().checkpoint(origin)? else {
        // A peer's log without a checkpoint is a pull under way: the
        // checkpoint is kept once the log reaches it.
        if size > 0 && own {
            let message = format!("none stored for a log of {size} entries");
            findings.add("checkpoint", tree::CHECKPOINTS, None, None, message, true);
        }
        return Ok(());
    };
    // Verified against the origin's keys when they are trusted here; only
    // decoded for a quarantined origin. A finding is repairable for the own
    // log (its checkpoint is re-signed), except one that merely decodes.
    let opened = Envelope::decode(bytes.as_slice())
        .map_err(|e| (format!("does not decode: {e}"), own))
        .and_then(|envelope| match ring {
            Some(ring) => ring
                .open_checkpoint(&envelope)
                .map_err(|e| (format!("does not verify: {e}"), own)),
            None => crate::proto::Checkpoint::decode(envelope.payload.as_slice())
                .map_err(|e| (format!("does not decode: {e}"), false)),
        });
    let checkpoint = match opened {
        Ok(checkpoint) => checkpoint,
        Err((message, repairable)) => {
            // Re-signing would publish a shorter log than the broken
            // checkpoint says this node may have sent its peers.
            let claimed = crate::log::stored_checkpoint(&bytes).map_or(0, |c| c.size);
            let (message, repairable) = if claimed > size {
                (
                    format!("{message}; it claims {claimed} entries and the log holds {size}"),
                    false,
                )
            } else {
                (message, repairable)
            };
            findings.add(
                "checkpoint",
                tree::CHECKPOINTS,
                None,
                None,
                message,
                repairable,
            );
            return Ok(());
        }
    };
    if checkpoint.size > size {
        findings.add(
            "checkpoint",
            tree::CHECKPOINTS,
            None,
            None,
            format!("signs {} entries; the log holds {size}", checkpoint.size),
            false,
        );
        return Ok(());
    }
    if checkpoint.size > 0 {
        let root =
            MemoryTree::from_leaves(scan.leaves[..checkpoint.size as usize].iter().copied()).root();
        if root.as_slice() != checkpoint.root.as_slice() {
            findings.add(
                "checkpoint",
                tree::CHECKPOINTS,
                None,
                None,
                format!(
                    "signs root {} at size {}; the log's first {} entries hash to {}",
                    hex::encode(&checkpoint.root),
                    checkpoint.size,
                    checkpoint.size,
                    hex::encode(root)
                ),
                false,
            );
            return Ok(());
        }
    }
    if own && checkpoint.size < size {
        findings.add(
            "checkpoint",
            tree::CHECKPOINTS,
            None,
            Some(checkpoint.size),
            format!("covers {} of the own log's {size} entries", checkpoint.size),
            true,
        );
    }
    Ok(())
}

/// Record states against the log's last entry of each record, their notes
/// of the latest public version included (a state written before the
/// notes were kept notes none, and agrees). With `renote`, writes the
/// log's note into each state that agrees but for its note, or has none.
/// Returns how many states were read, and how many were noted.
fn check_records(
    node: &Node,
    origin: &str,
    scan: &LogScan,
    renote: bool,
    findings: &mut Findings<'_>,
) -> Result<(u64, u64), NodeError> {
    let mut expected = scan.latest.clone();
    let mut after: Option<String> = None;
    let mut read = 0;
    let mut live = 0;
    let mut noted = 0;
    loop {
        let page = node.store().list_records(origin, after.as_deref(), CHUNK)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        let mut notes = Vec::new();
        for (id, state) in page {
            read += 1;
            live += u64::from(!state.deleted);
            // The log's state of the record, or the one a refill restores,
            // when the stored one is that version.
            let logged = expected.remove(&id);
            let same = logged
                .filter(|last| same_version(last, &state))
                .or_else(|| {
                    scan.restorable
                        .get(&id)
                        .filter(|before| same_version(before, &state))
                        .copied()
                });
            if let Some(log) = same {
                if log.last_public != state.last_public {
                    if state.last_public != LastPublic::Unnoted {
                        findings.add(
                            "record",
                            tree::RECORDS,
                            Some(&id),
                            Some(state.log_index.get()),
                            format!(
                                "the latest public version is {} by the state, {} by the log",
                                describe_note(state.last_public),
                                describe_note(log.last_public)
                            ),
                            true,
                        );
                    }
                    notes.push((id, state, log.last_public));
                }
                continue;
            }
            match logged {
                None => findings.add(
                    "record",
                    tree::RECORDS,
                    Some(&id),
                    Some(state.log_index.get()),
                    format!(
                        "the state points to entry {}, but the log has no entry of this record",
                        state.log_index.get()
                    ),
                    false,
                ),
                Some(last) => findings.add(
                    "record",
                    tree::RECORDS,
                    Some(&id),
                    Some(state.log_index.get()),
                    format!(
                        "the state says version {} at entry {}{}; the log's last entry is version {} at entry {}{}",
                        state.version,
                        state.log_index.get(),
                        if state.deleted { " (deleted)" } else { "" },
                        last.version,
                        last.log_index.get(),
                        if last.deleted { " (deleted)" } else { "" },
                    ),
                    false,
                ),
            }
        }
        if renote && !notes.is_empty() {
            noted += node.store().renote(origin, &notes)?;
        }
    }
    let counted = node.store().count_live(origin)?;
    if counted != live {
        findings.add(
            "record",
            tree::LIVE,
            None,
            None,
            format!("the live count says {counted} records, the states hold {live} live ones"),
            true,
        );
    }
    let mut missing: Vec<_> = expected.into_iter().collect();
    missing.sort_by_key(|(_, state)| state.log_index);
    for (id, state) in missing {
        findings.add(
            "record",
            tree::RECORDS,
            Some(&id),
            Some(state.log_index.get()),
            format!(
                "no state, but entry {} is version {} of it",
                state.log_index.get(),
                state.version
            ),
            false,
        );
    }
    Ok((read, noted))
}

/// Whether two states are of the same version at the same entry, their
/// notes aside.
fn same_version(a: &RecordState, b: &RecordState) -> bool {
    (a.version, a.log_index, a.deleted) == (b.version, b.log_index, b.deleted)
}

fn describe_note(note: LastPublic) -> String {
    match note {
        LastPublic::Unnoted => "not noted".into(),
        LastPublic::Never => "none".into(),
        LastPublic::At(index) => format!("entry {}", index.get()),
    }
}

/// The index against the log up to the index's cursor: each live record
/// indexed once at its version, nothing else. `documents` are the index's
/// documents of this origin (id → versions).
fn check_index(
    size: u64,
    cursor: u64,
    indexed: bool,
    scan: &LogScan,
    quarantined: &std::collections::HashSet<String>,
    mut documents: HashMap<String, Vec<u64>>,
    findings: &mut Findings<'_>,
) {
    if cursor > size {
        findings.add(
            "index",
            "index",
            None,
            Some(cursor),
            format!("the index has applied {cursor} entries; the log holds {size}"),
            true,
        );
    }
    let mut ids: Vec<(&String, &RecordState)> = scan.latest.iter().collect();
    ids.sort_by_key(|(_, state)| state.log_index);
    for (id, state) in ids {
        let found = documents.remove(id.as_str());
        let at = Some(state.log_index.get());
        let key = Some(id.as_str());
        let mut add = |message: String| findings.add("index", "index", key, at, message, true);
        if !indexed {
            if found.is_some() {
                add("indexed, but its origin is quarantined (revoked or unknown)".into());
            }
            continue;
        }
        if state.log_index.get() >= cursor {
            // Not applied yet: the indexer catches up.
            continue;
        }
        if quarantined.contains(id.as_str()) {
            // Dropped when the indexer reaches the set that revoked its key.
            if found.is_some() && cursor >= size {
                add("signed by a revoked key (quarantined), but still indexed".into());
            }
            continue;
        }
        match found {
            None if state.deleted => {}
            None => add(format!("version {} is not indexed", state.version)),
            // Withdrawn by an audience that a later one undid: indexed
            // again once a refill restored it (`check_records` holds the
            // state to the same rule).
            Some(versions)
                if state.deleted
                    && scan
                        .restorable
                        .get(id.as_str())
                        .is_some_and(|before| versions == [before.version]) => {}
            Some(_) if state.deleted => add("deleted, but still indexed".into()),
            Some(versions) if versions.len() > 1 => {
                add(format!("indexed {} times", versions.len()))
            }
            Some(versions) if versions[0] != state.version => add(format!(
                "indexed at version {}; the log's last is version {}",
                versions[0], state.version
            )),
            Some(_) => {}
        }
    }
    let mut extra: Vec<String> = documents.into_keys().collect();
    extra.sort();
    for id in extra {
        findings.add(
            "index",
            "index",
            Some(&id),
            None,
            "indexed, but the log has no entry of this record",
            true,
        );
    }
}

#[cfg(test)]
mod tests;
