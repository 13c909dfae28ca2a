//! Keeps the search index in step with the store (DESIGN §8).
//!
//! The index records, per origin, the log position it has applied (in its
//! commit payload). Catching up reads each origin's log from there, so after
//! a crash the node resumes without a full rebuild. A rebuild fills a fresh
//! index generation and switches to it when complete; until then searches
//! keep using the old one, which keeps taking changes, withdrawals
//! included.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::ids::LogIndex;
use crate::index::{HoldingsIndex, IndexOp};
use crate::keyset::KeyChain;
use crate::log::StoredEntry;
use crate::node::handoff::Handed;
use crate::node::{Node, NodeError};
use crate::proto::log_entry::Body;
use crate::proto::{Envelope, LogEntry};
use crate::sign::{AUDIENCE_TYPE, RECORD_TYPE};
use crate::store::{tree, Store, StoreError};
use prost::Message as _;

/// Log entries read and applied per index commit.
const BATCH: usize = 50_000;
/// Most bytes of stored entries read for one batch: entries may be as
/// large as a record line (1 MiB), and a batch of 50,000 such would not
/// fit in memory.
const BATCH_BYTES: usize = 64 << 20;

/// What [`Node::rebuild_index`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    /// Log entries the new generation applied.
    pub entries: u64,
    /// Of them, those applied while the index writer was held, when the
    /// index in use took no change.
    pub under_writer: u64,
}

/// Most passes a rebuild makes without the index writer over what the
/// store took while it filled.
const CATCH_UP_PASSES: usize = 8;

impl Node {
    /// The search index in use.
    pub fn index(&self) -> Arc<HoldingsIndex> {
        self.live_index().get()
    }

    /// Applies every log entry the index has not seen, in batches; returns
    /// how many entries were read. `progress` gets the running count.
    pub fn catch_up_index(&self, progress: &mut dyn FnMut(u64)) -> Result<u64, NodeError> {
        self.catch_up_index_while(progress, &|| true)
    }

    /// [`Node::catch_up_index`], stopping between batches once `go_on`
    /// turns false (what was applied stays applied).
    pub fn catch_up_index_while(
        &self,
        progress: &mut dyn FnMut(u64),
        go_on: &dyn Fn() -> bool,
    ) -> Result<u64, NodeError> {
        let _writer = self.live_index().writer();
        let index = self.index();
        self.catch_up(&index, progress, go_on, Filling::InUse)
    }

    /// Brings `index` up to the store: the log entries it has not applied,
    /// then what a refill restored that a crash or an error kept from it
    /// (`Node::index_refilled`). Under the writer.
    fn catch_up(
        &self,
        index: &HoldingsIndex,
        progress: &mut dyn FnMut(u64),
        go_on: &dyn Fn() -> bool,
        filling: Filling,
    ) -> Result<u64, NodeError> {
        let seen = self.fill(index, progress, go_on, filling)?;
        self.apply_all_refilled(index, filling)?;
        Ok(seen)
    }

    /// What a refill restored, for every origin held whose chain verifies
    /// ([`Node::index_refilled`]), into `index`. Under the writer.
    fn apply_all_refilled(&self, index: &HoldingsIndex, filling: Filling) -> Result<(), NodeError> {
        for origin in self.store().refilled_origins()? {
            if self.holds_origin(&origin)? && self.origin_keys(&origin).is_ok() {
                self.apply_refilled(index, &origin, filling)?;
            }
        }
        Ok(())
    }

    fn fill(
        &self,
        index: &HoldingsIndex,
        progress: &mut dyn FnMut(u64),
        go_on: &dyn Fn() -> bool,
        filling: Filling,
    ) -> Result<u64, NodeError> {
        // A commit whose reload failed becomes searchable first. Should
        // the reload fail again, the catch-up goes on all the same: each
        // commit notes what it withdraws (`Snapshots::withdraw`) whether or
        // not the reader loads it.
        if let Err(e) = index.load_committed() {
            tracing::error!(error = %e, "the index reader cannot load the last commit");
        }
        let mut cursors = index.committed_cursors();
        let mut seen = 0;
        for (origin, _) in self.store().origins()? {
            // Quarantined origins (revoked or unknown) stay out of the index.
            if !self.holds_origin(&origin)? {
                continue;
            }
            // Only what is flushed: an entry a crash could still take from
            // the store never reaches the index, so its cursor never sits
            // past the log.
            let size = self.store().durable_log_size(&origin);
            let mut from = cursors.get(&origin).copied().unwrap_or(0);
            // Revocations decide what is quarantined (crate::quarantine).
            // While the origin's chain does not verify from its pin (a
            // stored set that no longer verifies, a pin changed since), its
            // revocations are unknown: nothing more of it is indexed, and
            // its cursor stays where it is, so it catches up once the chain
            // verifies again. The other origins go on.
            let chain = match self.origin_keys(&origin) {
                Ok(chain) => chain.filter(|chain| !chain.revocations().is_empty()),
                Err(e) => {
                    self.handoff.forget(&origin);
                    if from < size {
                        tracing::error!(
                            origin = %origin,
                            error = %e,
                            "the origin's key chain does not verify: its new entries are not indexed"
                        );
                    }
                    continue;
                }
            };
            if chain.is_some() {
                // Each entry is checked against the revocations, as stored.
                self.handoff.forget(&origin);
            }
            while from < size && go_on() {
                let handed = match (&chain, filling) {
                    (None, Filling::InUse) => self.handoff.take(&origin, from, size),
                    _ => None,
                };
                let entries = match handed {
                    Some(handed) => handed,
                    // Up to the flushed size, not past it: what a crash
                    // could take back stays out of the index.
                    None => self
                        .store()
                        .entries_within(
                            &origin,
                            LogIndex(from),
                            BATCH.min((size - from) as usize),
                            BATCH_BYTES,
                        )?
                        .into_iter()
                        .map(|(index, entry)| (index, Handed::Stored(entry)))
                        .collect(),
                };
                let Some((last, _)) = entries.last() else {
                    break;
                };
                from = last.next().get();
                seen += entries.len() as u64;
                let mut ops = Vec::with_capacity(entries.len());
                for (index, handed) in entries {
                    let entry = match handed {
                        Handed::Record(record) => {
                            ops.push(record_op(*record));
                            continue;
                        }
                        Handed::Stored(entry) => entry,
                    };
                    let entry = &entry;
                    if let Some(chain) = &chain {
                        if entry.revoked_from().is_some() {
                            // A set that revokes a key: what it quarantines
                            // leaves the index, with the cursor past it, and
                            // so does what an audience it set aside had let
                            // in (withdrawn at its position, `sync::receive`).
                            let quarantined = self.quarantined(&origin)?.into_iter().map(|q| q.id);
                            ops.extend(removals(&origin, quarantined));
                            if origin != self.node_id().as_str() {
                                let withdrawn = withdrawn_at(self.store(), &origin, index)?;
                                ops.extend(removals(&origin, withdrawn));
                            }
                            continue;
                        }
                        if let StoredEntry::Signed(envelope) = entry {
                            if let Some(id) = quarantined_id(chain, index, envelope) {
                                ops.push(IndexOp::Remove {
                                    origin: origin.clone(),
                                    id,
                                });
                                continue;
                            }
                        }
                    }
                    if is_audience(entry) && origin != self.node_id().as_str() {
                        // An audience that no longer names this node for
                        // records it held: they were withdrawn at its
                        // position (`sync::receive`).
                        let withdrawn = withdrawn_at(self.store(), &origin, index)?;
                        ops.extend(removals(&origin, withdrawn));
                        continue;
                    }
                    if let Some(op) = index_op(self.store(), &origin, index, entry)? {
                        ops.push(op);
                    }
                }
                cursors.insert(origin.clone(), from);
                index.apply(ops, &cursors)?;
                self.index_advanced();
                progress(seen);
            }
        }
        Ok(seen)
    }

    /// At open: rebuilds the index if its cursor for some origin is past
    /// that origin's log in the store (the store lost entries to a crash
    /// after the index applied them), so no search finds what the store
    /// does not hold. Returns whether it rebuilt.
    pub fn reconcile_index(&self) -> Result<bool, NodeError> {
        let mut ahead = Vec::new();
        for (origin, cursor) in self.index().committed_cursors() {
            let size = self.store().log_size(&origin)?;
            if cursor > size {
                ahead.push(format!("{origin}: index at {cursor}, log at {size}"));
            }
        }
        if ahead.is_empty() {
            return Ok(false);
        }
        tracing::warn!(ahead = %ahead.join("; "), "index ahead of the store; rebuilding it");
        self.rebuild_index(&mut |_| {})?;
        Ok(true)
    }

    /// How many log entries the index has yet to apply, over every origin
    /// it indexes: 0 once everything committed is searchable. An origin
    /// whose key chain does not verify is held back, not behind: the
    /// indexer takes none of its entries until it does (and says so), so
    /// counting them would keep the node from ever reporting itself
    /// caught up.
    pub fn index_behind(&self) -> Result<u64, NodeError> {
        let cursors = self.index().cursors();
        let mut behind = 0;
        for (origin, size) in self.store().origins()? {
            if !self.holds_origin(&origin)? || self.origin_keys(&origin).is_err() {
                continue;
            }
            behind += size.saturating_sub(cursors.get(&origin).copied().unwrap_or(0));
        }
        Ok(behind)
    }

    /// Rebuilds the index from the store into a new generation and switches
    /// to it. Searches use the old index until the new one is complete, and
    /// the old one keeps taking changes meanwhile: the new one is filled
    /// without the writer, then, under it, catches up from the log
    /// positions it reached (as after a crash), leaves out the origins
    /// revoked since, and replaces the old one.
    pub fn rebuild_index(&self, progress: &mut dyn FnMut(u64)) -> Result<Rebuilt, NodeError> {
        let live = self.live_index();
        let rebuild = live.rebuild()?;
        let next = rebuild.index().clone();
        let mut filled = self.fill(&next, progress, &|| true, Filling::Rebuild)?;
        // What the store took while it filled, still without the writer,
        // pass after pass until one finds nothing (or after a few, should a
        // pull never pause): what is left to take under the writer is then
        // what arrived during the last, short pass, however much an import
        // or a pull brought during the long ones.
        for _ in 0..CATCH_UP_PASSES {
            let took = self.fill(
                &next,
                &mut |seen| progress(filled + seen),
                &|| true,
                Filling::Rebuild,
            )?;
            filled += took;
            if took == 0 {
                break;
            }
        }
        let _writer = live.writer();
        // A refill's notes are cleared once the next generation has them:
        // the index in use takes them first, should the switch fail.
        self.apply_all_refilled(&self.index(), Filling::InUse)?;
        let caught_up = self.catch_up(
            &next,
            &mut |seen| progress(filled + seen),
            &|| true,
            Filling::Rebuild,
        )?;
        // The index in use took their records out (`Node::unindex_origin`).
        for origin in next.cursors().into_keys() {
            if !self.holds_origin(&origin)? {
                self.remove_records(&next, &origin)?;
            }
        }
        rebuild.switch()?;
        self.index_advanced();
        tracing::info!(
            entries = filled + caught_up,
            under_writer = caught_up,
            "index rebuilt"
        );
        Ok(Rebuilt {
            entries: filled + caught_up,
            under_writer: caught_up,
        })
    }

    /// How much of `origin`'s log the index in use has applied: every entry
    /// below it is searchable.
    pub fn indexed(&self, origin: &str) -> u64 {
        self.index().cursors().get(origin).copied().unwrap_or(0)
    }

    /// Waits until this node's own log up to `log_size` is searchable, or
    /// `timeout` passes; returns how much of it the index has applied
    /// (`>= log_size` when it is searchable). A `log_size` beyond the log
    /// is refused: it would never be reached.
    pub async fn wait_searchable(
        &self,
        log_size: u64,
        timeout: std::time::Duration,
    ) -> Result<u64, NodeError> {
        let own = self.node_id().as_str();
        let size = self.store().log_size(self.node_id())?;
        if log_size > size {
            return Err(NodeError::BeyondLog {
                requested: log_size,
                size,
            });
        }
        self.wait_indexed(own, log_size, timeout).await
    }

    /// Waits until `origin`'s log up to `log_size` is searchable here, or
    /// `timeout` passes; returns how much of it the index has applied. For
    /// another origin the entries may not have arrived yet: waiting for
    /// them to be pulled and indexed is the point (a change made at a peer
    /// becoming searchable here).
    pub async fn wait_indexed(
        &self,
        origin: &str,
        log_size: u64,
        timeout: std::time::Duration,
    ) -> Result<u64, NodeError> {
        // Subscribed before the first look, so no advance is missed.
        let mut advanced = self.index_progress();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let indexed = self.indexed(origin);
            if indexed >= log_size {
                return Ok(indexed);
            }
            match tokio::time::timeout_at(deadline, advanced.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Ok(indexed),
            }
        }
    }

    /// Waits until every stored entry is searchable, or `timeout` passes;
    /// returns how many entries are still not (0 when caught up).
    pub async fn wait_caught_up(&self, timeout: std::time::Duration) -> Result<u64, NodeError> {
        // Subscribed before the first look, so no advance is missed.
        let mut advanced = self.index_progress();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let behind = self.index_behind()?;
            if behind == 0 {
                return Ok(0);
            }
            match tokio::time::timeout_at(deadline, advanced.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Ok(behind),
            }
        }
    }

    /// Puts in the index, as they are, the records a refill of `origin`
    /// brought back (noted in the store with their states,
    /// `Store::refilled`): entries the indexer passed as digests or as a
    /// version an audience withdrew, so its cursor is already past them.
    /// Each replaces what the index holds of its record, even at version
    /// 1: the indexer may not have reached the audience whose withdrawal
    /// the refill undoes, and the version is still indexed. A record whose
    /// current entry the indexer has not reached is left to it: it indexes
    /// the entry, whole in the store now, when it gets there. The notes are
    /// cleared only after the index commit, so a crash or an error before
    /// it leaves them for the next call (a refill, or any catch-up).
    pub fn index_refilled(&self, origin: &str) -> Result<(), NodeError> {
        if self.store().refilled(origin)?.is_empty() {
            return Ok(());
        }
        let _writer = self.live_index().writer();
        self.apply_refilled(&self.index(), origin, Filling::InUse)
    }

    /// [`Node::index_refilled`], under the index writer. The notes stay
    /// while a rebuild fills the next generation: it may have passed their
    /// entries, and takes them when it catches up.
    fn apply_refilled(
        &self,
        index: &HoldingsIndex,
        origin: &str,
        filling: Filling,
    ) -> Result<(), NodeError> {
        let noted = self.store().refilled(origin)?;
        if noted.is_empty() {
            return Ok(());
        }
        // Read under the writer, so that no later version of a record is
        // indexed between reading its state and replacing it.
        let reached = index.committed_cursors().get(origin).copied().unwrap_or(0);
        // A version a revocation quarantines stays out, as the indexer
        // leaves it out (it may have arrived since the refill).
        let chain = self
            .origin_keys(origin)?
            .filter(|chain| !chain.revocations().is_empty());
        let mut ops = Vec::with_capacity(noted.len());
        for (id, _) in &noted {
            let Some(state) = self.store().record_state(origin, id)? else {
                continue;
            };
            // Withdrawn or superseded since, or not reached: the indexer
            // takes the entry its state points at when it gets there.
            if state.deleted || state.log_index.get() >= reached {
                continue;
            }
            let Some(StoredEntry::Signed(envelope)) =
                self.store().entry(origin, state.log_index)?
            else {
                continue;
            };
            if chain
                .as_ref()
                .is_some_and(|chain| quarantined_id(chain, state.log_index, &envelope).is_some())
            {
                continue;
            }
            let entry = LogEntry::decode(envelope.payload.as_slice()).ok();
            if let Some(LogEntry {
                body: Some(Body::Record(record)),
                ..
            }) = entry
            {
                if record.id == *id && !record.deleted {
                    ops.push(IndexOp::Replace(record));
                }
            }
        }
        if !ops.is_empty() {
            index.apply(ops, &BTreeMap::new())?;
            self.index_advanced();
        }
        if filling == Filling::Rebuild || !self.live_index().rebuilding() {
            self.store().refilled_indexed(origin, &noted)?;
        }
        Ok(())
    }

    /// Removes every record of `origin` from the index (its peer was revoked).
    pub fn unindex_origin(&self, origin: &str) -> Result<(), NodeError> {
        let _writer = self.live_index().writer();
        let index = self.index();
        let removed = self.remove_records(&index, origin);
        // Searches paged before the revocation read it no more, even if
        // removing its records failed part way.
        index.drop_snapshots();
        removed
    }

    /// Removes every record of `origin` from `index`.
    fn remove_records(&self, index: &HoldingsIndex, origin: &str) -> Result<(), NodeError> {
        let mut after: Option<String> = None;
        loop {
            let page = self.store().list_records(origin, after.as_deref(), BATCH)?;
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            after = Some(last.clone());
            let ops = page
                .into_iter()
                .map(|(id, _)| IndexOp::Remove {
                    origin: origin.to_owned(),
                    id,
                })
                .collect();
            index.apply(ops, &BTreeMap::new())?;
        }
    }
}

/// Which index a catch-up fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filling {
    /// The index in use: takes the entries sync handed over.
    InUse,
    /// A rebuild's next generation: reads every entry from the store,
    /// leaving the handed ones to the index in use.
    Rebuild,
}

/// Whether a stored entry is an origin's audience.
fn is_audience(entry: &StoredEntry) -> bool {
    matches!(entry, StoredEntry::Signed(envelope) if envelope.payload_type == AUDIENCE_TYPE)
}

/// The index changes that take records `ids` of `origin` out.
fn removals<'a>(
    origin: &'a str,
    ids: impl IntoIterator<Item = String> + 'a,
) -> impl Iterator<Item = IndexOp> + 'a {
    ids.into_iter().map(move |id| IndexOp::Remove {
        origin: origin.to_owned(),
        id,
    })
}

/// Records of `origin` whose state is a withdrawal at `index`: what the
/// audience entry there withdrew, or the revocation there that set an
/// audience aside. Reads the origin's record states; both are rare, and
/// one that withdraws nothing costs one scan.
fn withdrawn_at(store: &Store, origin: &str, index: LogIndex) -> Result<Vec<String>, NodeError> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_records(origin, after.as_deref(), BATCH)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        ids.extend(
            page.into_iter()
                .filter(|(_, state)| state.deleted && state.log_index == index)
                .map(|(id, _)| id),
        );
    }
    Ok(ids)
}

/// The id of the record in entry `index` when `chain` quarantines it: its
/// version is not indexed, and one indexed before it leaves the index.
fn quarantined_id(chain: &KeyChain, index: LogIndex, envelope: &Envelope) -> Option<String> {
    if envelope.payload_type != RECORD_TYPE {
        return None;
    }
    chain.quarantines(index.get(), envelope)?;
    match LogEntry::decode(envelope.payload.as_slice()) {
        Ok(LogEntry {
            body: Some(Body::Record(record)),
            ..
        }) => Some(record.id),
        _ => None,
    }
}

/// The index change one stored log entry makes, if any.
fn index_op(
    store: &Store,
    origin: &str,
    index: LogIndex,
    entry: &StoredEntry,
) -> Result<Option<IndexOp>, NodeError> {
    if let StoredEntry::Redacted { subject, .. } = entry {
        // Digests that withdrew a held version (see `sync::receive`): the
        // record's state points at them.
        let Some(id) = store.record_by_subject(origin, subject)? else {
            return Ok(None);
        };
        let withdrawn = store
            .record_state(origin, &id)?
            .is_some_and(|state| state.deleted && state.log_index == index);
        return Ok(withdrawn.then(|| IndexOp::Remove {
            origin: origin.to_owned(),
            id,
        }));
    }
    let body = entry
        .entry()
        .map_err(|e| StoreError::Corrupt {
            tree: tree::LOG,
            detail: format!("{origin} entry {index}: {e}"),
        })?
        .and_then(|entry| entry.body);
    Ok(match body {
        Some(Body::Record(record)) => Some(record_op(record)),
        _ => None,
    })
}

/// The index change a record entry makes.
fn record_op(record: crate::proto::DatasetRecord) -> IndexOp {
    if record.deleted {
        IndexOp::Remove {
            origin: record.origin,
            id: record.id,
        }
    } else {
        IndexOp::Upsert(record)
    }
}

/// How long the indexer lets changes gather after a round that applied
/// `applied` entries: a quarter of a second for a trickle, a second while
/// a pull or an import streams in.
fn gather(applied: u64) -> std::time::Duration {
    const STREAMING: u64 = 10_000;
    std::time::Duration::from_millis(if applied >= STREAMING { 1_000 } else { 250 })
}

/// Keeps the index caught up: at start, then after every committed change,
/// until `stop` turns true.
pub async fn run(node: Arc<Node>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut changes = node.subscribe();
    loop {
        let n = node.clone();
        let started = std::time::Instant::now();
        let running = stop.clone();
        let result = tokio::task::spawn_blocking(move || {
            n.catch_up_index_while(&mut |_| {}, &|| !*running.borrow())
        })
        .await;
        let mut applied = 0;
        match result {
            Ok(Err(e)) => tracing::error!(error = %e, "indexing failed"),
            Err(e) => tracing::error!(error = %e, "indexer stopped"),
            Ok(Ok(0)) => {}
            Ok(Ok(entries)) => {
                applied = entries;
                tracing::debug!(
                    entries,
                    ms = started.elapsed().as_millis() as u64,
                    "index caught up"
                )
            }
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        // Let a burst of commits (a pull lands every 2,048 entries) gather
        // before indexing them in one commit, and leave the cores to a bulk
        // import until it ends. While a pull streams in, wait longer: each
        // commit writes new segments that merges then read and write again.
        tokio::time::sleep(gather(applied)).await;
        while node.importing() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests;
