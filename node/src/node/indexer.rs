//! Keeps the search index in step with the store (DESIGN §8).
//!
//! The index records, per origin, the log position it has applied (in its
//! commit payload). Catching up reads each origin's log from there, so after
//! a crash the node resumes without a full rebuild. A rebuild builds a fresh
//! index in a new generation directory and switches to it when complete;
//! searches keep using the old one until then.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;

use super::{Node, NodeError};
use crate::index::{HoldingsIndex, IndexError, IndexOp};
use crate::proto::{log_entry::Body, Envelope, LogEntry};
use crate::store::StoreError;

/// Directory of the index generations inside the data directory.
pub const INDEX_DIR: &str = "index";
const CURRENT_FILE: &str = "CURRENT";
/// Log entries read and applied per index commit.
const BATCH: usize = 50_000;

/// The active index generation and its directory.
pub(super) fn open_index(data_dir: &Path) -> Result<(HoldingsIndex, PathBuf), NodeError> {
    let root = data_dir.join(INDEX_DIR);
    std::fs::create_dir_all(&root).map_err(|e| NodeError::DataDir {
        path: root.clone(),
        message: e.to_string(),
    })?;
    let generation = std::fs::read_to_string(root.join(CURRENT_FILE))
        .map(|text| text.trim().to_owned())
        .unwrap_or_else(|_| "g1".to_owned());
    let dir = root.join(&generation);
    match HoldingsIndex::open(&dir) {
        Ok(index) => Ok((index, dir)),
        Err(IndexError::SchemaVersion { .. }) | Err(IndexError::NotAnIndex(_)) => {
            // The index is derived data: an index of another layout is
            // replaced by an empty one of this layout, filled from the store.
            tracing::warn!(dir = %dir.display(), "search index of another layout; rebuilding from the store");
            let dir = next_generation(&root)?;
            let index = HoldingsIndex::create_fresh(&dir).map_err(index_error)?;
            switch_generation(&root, &dir)?;
            Ok((index, dir))
        }
        Err(e) => Err(index_error(e)),
    }
}

fn next_generation(root: &Path) -> Result<PathBuf, NodeError> {
    for n in 1u64.. {
        let dir = root.join(format!("g{n}"));
        if !dir.exists() {
            return Ok(dir);
        }
    }
    unreachable!("generations are finite")
}

fn switch_generation(root: &Path, dir: &Path) -> Result<(), NodeError> {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("g1");
    let tmp = root.join("CURRENT.tmp");
    let io = |e: std::io::Error| NodeError::DataDir {
        path: root.to_owned(),
        message: e.to_string(),
    };
    std::fs::write(&tmp, name).map_err(io)?;
    std::fs::rename(&tmp, root.join(CURRENT_FILE)).map_err(io)?;
    Ok(())
}

pub(super) fn index_error(e: IndexError) -> NodeError {
    NodeError::Store(StoreError::Corrupt {
        tree: "search index",
        detail: e.to_string(),
    })
}

impl Node {
    /// The active search index.
    pub fn index(&self) -> Arc<HoldingsIndex> {
        self.index.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Applies every log entry the index has not seen, in batches; returns
    /// how many entries were read. `progress` gets the running count.
    pub fn catch_up_index(&self, progress: &mut dyn FnMut(u64)) -> Result<u64, NodeError> {
        let _writer = self.index_writer.lock().unwrap_or_else(|p| p.into_inner());
        let index = self.index();
        self.fill(&index, progress)
    }

    fn fill(&self, index: &HoldingsIndex, progress: &mut dyn FnMut(u64)) -> Result<u64, NodeError> {
        let mut cursors = index.cursors();
        let mut seen = 0;
        for (origin, size) in self.store.origins()? {
            // Quarantined origins (revoked or unknown) stay out of the index.
            if self.origin_ring(&origin)?.is_none() {
                continue;
            }
            let mut from = cursors.get(&origin).copied().unwrap_or(0);
            while from < size {
                let entries = self.store.entries(&origin, from, BATCH)?;
                let Some((last, _)) = entries.last() else {
                    break;
                };
                from = last + 1;
                seen += entries.len() as u64;
                let ops = entries
                    .iter()
                    .filter_map(|(index, bytes)| index_op(&origin, *index, bytes).transpose())
                    .collect::<Result<Vec<_>, _>>()?;
                cursors.insert(origin.clone(), from);
                index.apply(ops, &cursors).map_err(index_error)?;
                progress(seen);
            }
        }
        Ok(seen)
    }

    /// Rebuilds the index from the store into a new generation and switches
    /// to it. Searches use the old index until the new one is complete.
    pub fn rebuild_index(&self, progress: &mut dyn FnMut(u64)) -> Result<u64, NodeError> {
        let _writer = self.index_writer.lock().unwrap_or_else(|p| p.into_inner());
        let root = self.data_dir.join(INDEX_DIR);
        let dir = next_generation(&root)?;
        let fresh = Arc::new(HoldingsIndex::create_fresh(&dir).map_err(index_error)?);
        let seen = self.fill(&fresh, progress)?;
        switch_generation(&root, &dir)?;
        let old = {
            let mut slot = self.index.write().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *slot, fresh)
        };
        drop(old);
        let old_dir = std::mem::replace(
            &mut *self.index_dir.lock().unwrap_or_else(|p| p.into_inner()),
            dir,
        );
        // Open readers of the old generation keep their mapped files.
        if let Err(e) = std::fs::remove_dir_all(&old_dir) {
            tracing::warn!(dir = %old_dir.display(), error = %e, "old index generation not removed");
        }
        Ok(seen)
    }

    /// Removes every record of `origin` from the index (its peer was revoked).
    pub fn unindex_origin(&self, origin: &str) -> Result<(), NodeError> {
        let _writer = self.index_writer.lock().unwrap_or_else(|p| p.into_inner());
        let index = self.index();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.list_records(origin, after.as_deref(), BATCH)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            let ops = page
                .into_iter()
                .map(|(id, _)| IndexOp::Remove {
                    origin: origin.to_owned(),
                    id,
                })
                .collect();
            index.apply(ops, &BTreeMap::new()).map_err(index_error)?;
        }
        Ok(())
    }
}

/// The index change one stored log entry makes, if any.
fn index_op(origin: &str, index: u64, bytes: &[u8]) -> Result<Option<IndexOp>, NodeError> {
    if crate::sync::decode_redacted(bytes).is_some() {
        return Ok(None);
    }
    let corrupt = |e: prost::DecodeError| StoreError::Corrupt {
        tree: "log_entries",
        detail: format!("{origin} entry {index}: {e}"),
    };
    // Stored entries were verified when they were written.
    let envelope = Envelope::decode(bytes).map_err(corrupt)?;
    let entry = LogEntry::decode(envelope.payload.as_slice()).map_err(corrupt)?;
    Ok(match entry.body {
        Some(Body::Record(record)) if record.deleted => Some(IndexOp::Remove {
            origin: record.origin,
            id: record.id,
        }),
        Some(Body::Record(record)) => Some(IndexOp::Upsert(record)),
        _ => None,
    })
}

/// Keeps the index caught up: at start, then after every committed change.
pub async fn run(node: Arc<Node>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut changes = node.subscribe();
    loop {
        let n = node.clone();
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || n.catch_up_index(&mut |_| {})).await;
        match result {
            Ok(Err(e)) => tracing::error!(error = %e, "indexing failed"),
            Err(e) => tracing::error!(error = %e, "indexer stopped"),
            Ok(Ok(0)) => {}
            Ok(Ok(entries)) => tracing::debug!(
                entries,
                ms = started.elapsed().as_millis() as u64,
                "index caught up"
            ),
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        // Let a burst of commits (a pull lands every 2,048 entries) gather
        // before indexing them in one commit, and leave the cores to a bulk
        // import until it ends.
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        while node.importing() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
