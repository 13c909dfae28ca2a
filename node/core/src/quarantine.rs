//! Records quarantined by a key revocation (DESIGN §5;
//! `docs/decisions/key-sets.md`, "Revocation and quarantine").
//!
//! Nothing is stored for a quarantine: it is derived from the origin's key
//! chain ([`KeyChain::quarantines`]) and the log. A record is quarantined
//! at a node when its current version is an entry that a revocation covers
//! (signed by the revoked key at or after the revocation's index), or
//! digests there that withdrew the version held before. Every path that
//! emits a record asks the chain the same question: reads (`holdings`),
//! the index (`indexer`), OAI-PMH (`oai`) and the pull (`sync::serve`, which
//! sends such entries as digests). A quarantine ends when the record gets a
//! later version: the origin re-signs it ([`Node::resign`]), or its operator
//! puts or deletes it with the signing key in use.

use std::collections::BTreeMap;

use crate::ids::LogIndex;
use crate::keyset::KeyChain;
use crate::log::{RecordState, StoredEntry, UnsignedEntry};
use crate::node::{Node, NodeError};
use crate::proto::{log_entry::Body, LogEntry};
use crate::sign::{KeyId, RECORD_TYPE};
use crate::store::StoreError;

/// Log entries read at a time when looking for quarantined records.
const SCAN_BATCH: usize = 1024;
/// Records re-signed per append: one transaction, one checkpoint.
const RESIGN_CHUNK: usize = 4096;

/// A record held here whose current version is quarantined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// The record's id.
    pub id: String,
    /// The log position of its quarantined version.
    pub index: LogIndex,
    /// The revoked key that signed it.
    pub key_id: KeyId,
}

/// What [`Node::quarantine_counts`] found, per origin held here.
#[derive(Debug, Default)]
pub struct QuarantineCounts {
    /// Quarantined records per origin, only origins with any.
    pub held: BTreeMap<String, u64>,
    /// Origins whose key chain does not verify from the root pinned for
    /// them, with why: what their revocations quarantine is unknown, and
    /// they are held back meanwhile (not indexed further, no audience
    /// chosen, stale).
    pub unverified: BTreeMap<String, NodeError>,
}

/// What [`Node::resign`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resigned {
    /// The records re-signed (or that would be, on a dry run), in log
    /// order of their quarantined versions.
    pub ids: Vec<String>,
    /// This node's log size afterwards.
    pub log_size: u64,
}

impl Node {
    /// The records of `origin` held here whose current version a
    /// revocation of its key chain quarantines, in log order. Reads only
    /// the revoked ranges of the log; nothing when the chain revokes
    /// nothing (or the origin is not held).
    pub fn quarantined(&self, origin: &str) -> Result<Vec<Quarantined>, NodeError> {
        let Some(chain) = self.origin_keys(origin)? else {
            return Ok(Vec::new());
        };
        if chain.revocations().is_empty() {
            return Ok(Vec::new());
        }
        let size = self.store().log_size(origin)?;
        let mut out = Vec::new();
        for (from, until) in revoked_ranges(&chain, size) {
            let mut at = from;
            while at < until {
                let want = usize::try_from(until - at).map_or(SCAN_BATCH, |n| n.min(SCAN_BATCH));
                let batch = self.store().entries(origin, LogIndex(at), want)?;
                let Some((last, _)) = batch.last() else {
                    break;
                };
                at = last.get() + 1;
                for (index, stored) in batch {
                    if index.get() >= until {
                        break;
                    }
                    if let Some(found) = self.quarantined_entry(origin, &chain, index, stored)? {
                        out.push(found);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Whether entry `index` of `origin`'s log holds the current version of
    /// a record and is quarantined.
    fn quarantined_entry(
        &self,
        origin: &str,
        chain: &KeyChain,
        index: LogIndex,
        stored: StoredEntry,
    ) -> Result<Option<Quarantined>, NodeError> {
        let (id, revoked) = match &stored {
            StoredEntry::Signed(envelope) => {
                if envelope.payload_type != RECORD_TYPE {
                    return Ok(None);
                }
                let Some(revoked) = chain.quarantines(index.get(), envelope) else {
                    return Ok(None);
                };
                match stored.entry() {
                    Ok(Some(LogEntry {
                        body: Some(Body::Record(record)),
                        ..
                    })) => (record.id, revoked),
                    _ => return Ok(None),
                }
            }
            StoredEntry::Redacted { subject, .. } => {
                let Some(revoked) = chain.quarantines_any_entry_at(index.get()) else {
                    return Ok(None);
                };
                match self.store().record_by_subject(origin, subject)? {
                    Some(id) => (id, revoked),
                    None => return Ok(None),
                }
            }
        };
        let current = self
            .store()
            .record_state(origin, &id)?
            .is_some_and(|state| state.log_index == index);
        Ok(current.then(|| Quarantined {
            id,
            index,
            key_id: revoked.key_id.clone(),
        }))
    }

    /// How many records of `origin` are quarantined here; counted again
    /// only when its log grew or its chain changed since.
    pub fn quarantine_count(&self, origin: &str) -> Result<u64, NodeError> {
        let Some(chain) = self.origin_keys(origin)? else {
            return Ok(0);
        };
        if chain.revocations().is_empty() {
            return Ok(0);
        }
        let size = self.store().log_size(origin)?;
        let links = chain.links().len();
        {
            let counts = self
                .quarantine_counts
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(&(at, held_links, count)) = counts.get(origin) {
                if at == size && held_links == links {
                    return Ok(count);
                }
            }
        }
        let count = self.quarantined(origin)?.len() as u64;
        self.quarantine_counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(origin.to_owned(), (size, links, count));
        Ok(count)
    }

    /// Quarantined records per origin held here (this node included), and
    /// the origins whose count is unknown because their key chain does not
    /// verify; sets the `keys_quarantined_records` gauge from the counted
    /// ones. One origin's chain holds up none of the others.
    pub fn quarantine_counts(&self) -> Result<QuarantineCounts, NodeError> {
        let mut counts = QuarantineCounts::default();
        for (origin, _) in self.store().origins()? {
            // Its revocations say what is quarantined: unknown without them.
            if let Err(e) = self.origin_keys(&origin) {
                counts.unverified.insert(origin, e);
                continue;
            }
            match self.quarantine_count(&origin) {
                Ok(0) => {}
                Ok(count) => {
                    counts.held.insert(origin, count);
                }
                Err(e) => {
                    tracing::warn!(origin = %origin, error = %e, "cannot count the origin's quarantined records");
                }
            }
        }
        self.metrics()
            .keys_quarantined_records
            .set(counts.held.values().sum::<u64>() as i64);
        Ok(counts)
    }

    /// Whether `origin`'s record entry `envelope` at `index` is quarantined
    /// here (see [`KeyChain::quarantines`]).
    pub fn is_quarantined(
        &self,
        origin: &str,
        index: LogIndex,
        envelope: &crate::proto::Envelope,
    ) -> Result<bool, NodeError> {
        Ok(self
            .origin_keys(origin)?
            .is_some_and(|chain| chain.quarantines(index.get(), envelope).is_some()))
    }

    /// Re-signs this node's quarantined records with the signing key in
    /// use: each gets a new version with the same content, appended as a
    /// new log entry, which ends its quarantine here at once and at every
    /// peer at its next pull. Idempotent: a second run finds nothing. With
    /// `dry_run`, only says which records it would re-sign. Audited.
    ///
    /// It re-signs what the log holds: records a thief wrote are re-signed
    /// too unless the operator deleted them (or put their true content)
    /// first, which ends their quarantine the same way.
    pub fn resign(&self, dry_run: bool) -> Result<Resigned, NodeError> {
        let guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let origin = self.node_id().clone();
        let quarantined = self.quarantined(origin.as_str())?;
        let ids: Vec<String> = quarantined.iter().map(|q| q.id.clone()).collect();
        if dry_run || quarantined.is_empty() {
            return Ok(Resigned {
                ids,
                log_size: self.store().log_size(&origin)?,
            });
        }
        // What a dry run says needs no signing: only a run that signs must
        // be able to.
        self.may_append()?;
        let key = self.key();
        let mut log_size = 0;
        for chunk in quarantined.chunks(RESIGN_CHUNK) {
            let appender = self.store().appender(&origin)?;
            let first = appender.next_index();
            let mut planned = Vec::with_capacity(chunk.len());
            for (offset, held) in chunk.iter().enumerate() {
                let corrupt = |detail: String| StoreError::Corrupt {
                    tree: crate::store::tree::LOG,
                    detail,
                };
                let record = match self.store().entry(&origin, held.index)? {
                    Some(stored @ StoredEntry::Signed(_)) => match stored.entry() {
                        Ok(Some(LogEntry {
                            body: Some(Body::Record(record)),
                            ..
                        })) => record,
                        _ => {
                            return Err(corrupt(format!(
                                "{origin} entry {} is not a record",
                                held.index
                            ))
                            .into())
                        }
                    },
                    _ => {
                        return Err(corrupt(format!(
                            "{origin} entry {} is not a signed entry",
                            held.index
                        ))
                        .into())
                    }
                };
                let mut record = record;
                record.version += 1;
                // The note of its latest public version goes on from the
                // state of the version re-signed.
                let held_state = self.store().record_state(&origin, &held.id)?;
                let state = RecordState::of_version(
                    &record,
                    LogIndex(first + offset as u64),
                    held_state.as_ref(),
                );
                planned.push(UnsignedEntry::record(record, state));
            }
            log_size = self.append_own(appender, planned)?;
        }
        self.trust().record(
            "keys-resign",
            &origin,
            &format!(
                "{} quarantined records re-signed with {} (log size {log_size})",
                ids.len(),
                key.key_id()
            ),
        )?;
        drop(guard);
        self.quarantine_counts()?;
        Ok(Resigned { ids, log_size })
    }
}

/// The log ranges `[from, until)` that revocations of `chain` cover, within
/// a log of `size` entries, merged and in order.
fn revoked_ranges(chain: &KeyChain, size: u64) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = chain
        .revocations()
        .iter()
        .map(|r| (r.from, r.until.min(size)))
        .filter(|(from, until)| from < until)
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (from, until) in ranges {
        match merged.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(until),
            _ => merged.push((from, until)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::pull_item;
    use crate::test_support::{opened_node, record_line};

    fn line(id: &str) -> String {
        record_line(id, &format!("Ice core {id}"), "public")
    }

    /// At the origin itself: a revocation quarantines what the revoked key
    /// signed from its index on (not read, not listed, not indexed, sent
    /// as digests on a pull) and nothing before it; `resign` ends the
    /// quarantine with new versions by the key in use, once.
    #[test]
    fn a_revocation_quarantines_at_the_origin_until_resign() {
        let (node, _dir) = opened_node("polar");
        node.import_lines(1, &[line("A"), line("B")]).unwrap();
        let from = node.store().log_size("polar").unwrap();
        node.import_lines(1, &[line("C"), line("D")]).unwrap();
        let leaked = node.key().key_id().clone();
        node.catch_up_index(&mut |_| {}).unwrap();
        assert_eq!(node.index().doc_count(), 4);

        node.revoke_key(Vec::new(), leaked.clone(), from, "leaked".into(), 30)
            .unwrap();
        assert_ne!(node.key().key_id(), &leaked, "a new signing key");
        let held = node.quarantined("polar").unwrap();
        let ids: Vec<&str> = held.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(ids, ["C", "D"]);
        assert!(held.iter().all(|q| q.key_id == leaked));
        assert_eq!(node.quarantine_count("polar").unwrap(), 2);
        assert_eq!(node.metrics().keys_quarantined_records.get(), 2);

        let operator = node.operator();
        assert!(matches!(
            node.get("", "C", &operator),
            Err(NodeError::NotFound { .. })
        ));
        assert!(node.get("", "A", &operator).is_ok());
        let page = node.list("", 100, "", false, &operator).unwrap();
        let listed: Vec<&str> = page.records.iter().map(|v| v.record.id.as_str()).collect();
        assert_eq!(listed, ["A", "B"]);
        // The indexer drops them when it reaches the revoking set.
        node.catch_up_index(&mut |_| {}).unwrap();
        assert_eq!(node.index().doc_count(), 2);
        // A pull carries them as digests; the rest whole.
        let size = node.store().log_size("polar").unwrap();
        let items = crate::sync::serve_entries(&node, &operator, "polar", 0, size, 100).unwrap();
        let redacted: Vec<u64> = items
            .iter()
            .filter(|item| matches!(item.item, Some(pull_item::Item::Redacted(_))))
            .map(|item| item.index)
            .collect();
        assert_eq!(redacted, [from, from + 1]);

        assert_eq!(node.resign(true).unwrap().ids, ["C", "D"]);
        assert_eq!(node.quarantine_count("polar").unwrap(), 2, "a dry run");
        let done = node.resign(false).unwrap();
        assert_eq!(done.ids, ["C", "D"]);
        assert_eq!(done.log_size, size + 2);
        assert_eq!(node.quarantine_count("polar").unwrap(), 0);
        let view = node.get("", "C", &operator).unwrap();
        assert_eq!(view.record.version, 2);
        assert_eq!(view.record.title, "Ice core C");
        assert_eq!(view.verified_key_id, node.key().key_id().to_string());
        assert!(node.resign(false).unwrap().ids.is_empty(), "idempotent");
        node.catch_up_index(&mut |_| {}).unwrap();
        assert_eq!(node.index().doc_count(), 4);
        // Re-importing a quarantined record's content, unchanged, is not a
        // no-op: it gets a new version like a re-signing.
        node.import_lines(1, &[line("E")]).unwrap();
        let leaked_again = node.key().key_id().clone();
        let at = node.store().log_size("polar").unwrap() - 1;
        node.revoke_key(Vec::new(), leaked_again, at, "again".into(), 30)
            .unwrap();
        assert_eq!(node.quarantine_count("polar").unwrap(), 1);
        let outcome = node.import_lines(1, &[line("E")]).unwrap();
        assert_eq!((outcome.stored, outcome.unchanged), (1, 0));
        assert_eq!(node.quarantine_count("polar").unwrap(), 0);
        assert_eq!(node.get("", "E", &operator).unwrap().record.version, 2);
        // Entries signed before the index still verify under the leaked key.
        assert_eq!(
            node.get("", "A", &operator).unwrap().verified_key_id,
            leaked.to_string()
        );
    }
}
