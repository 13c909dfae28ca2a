//! Point-in-time searchers for cursor pagination.
//!
//! A page that has a next page keeps its `Searcher` here under the reader
//! generation it belongs to; the cursor names (process epoch, generation).
//! The next page reads the same searcher, so it sees the same documents and
//! the same BM25 statistics: no hit is skipped or repeated whatever is
//! committed meanwhile. Pages of one generation share one entry, so the
//! number held is bounded by commits per TTL and by [`MAX_SNAPSHOTS`]. A
//! held searcher pins its segment files; expiry releases them.
//!
//! A snapshot never serves what was withdrawn after it was taken: a
//! deleted record, or a record whose audience may have narrowed, is
//! recorded against every held snapshot and left out of its later pages
//! ([`Snapshots::withdraw`]); a revoked origin drops every snapshot
//! ([`Snapshots::clear`]). A search runs on the searcher it was prepared
//! with, so a withdrawal can land while it runs, before its snapshot is
//! held: a searcher older than the last withdrawal is not kept (its next
//! pages read the index as it is). However often it is used, a snapshot is
//! dropped [`MAX_CURSOR_AGE`] after it was taken.
//!
//! A withdrawal is noted once its commit is durable, before the reader
//! loads it ([`Snapshots::withdraw`]), and settled when the reader has
//! ([`Snapshots::loaded`]). Should the reload fail, the current searcher
//! may still show what was withdrawn: until a reload succeeds, searches of
//! it leave those records out ([`Snapshots::unread`]) and no searcher is
//! kept. Past [`MAX_UNREAD`] such records searches are refused instead,
//! until a reload succeeds: the set, and the clause every search would
//! build of it, stay bounded however long the reloads fail.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tantivy::index::SegmentId;
use tantivy::Searcher;

use crate::query::cursor::MAX_CURSOR_AGE;

/// How long an unused snapshot is kept.
pub(crate) const SNAPSHOT_TTL: Duration = Duration::from_secs(5 * 60);
/// Most snapshots held at once; the least recently used goes first.
pub(crate) const MAX_SNAPSHOTS: usize = 32;
/// Most withdrawn records one snapshot leaves out; past it the snapshot is
/// dropped (its next pages read the index as it is).
pub(crate) const MAX_WITHDRAWN: usize = 4096;
/// Most records withdrawn by commits the reader failed to load that
/// searches leave out; past it they are refused until a reload succeeds.
pub(crate) const MAX_UNREAD: usize = 65_536;

/// The reader has not loaded more than [`MAX_UNREAD`] withdrawals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooManyUnread;

/// Withdrawals by commits the reader has not been seen to load.
#[derive(Clone)]
enum Unread {
    Keys(Arc<BTreeSet<String>>),
    TooMany,
}

struct Held {
    searcher: Searcher,
    taken: Instant,
    used: Instant,
    /// Record keys withdrawn since the snapshot was taken.
    withdrawn: Arc<BTreeSet<String>>,
}

/// The snapshots held, and where the last withdrawal was.
#[derive(Default)]
struct State {
    held: HashMap<u64, Held>,
    /// Reader generation current at the last withdrawal or clear: an older
    /// searcher may still show what was withdrawn. (Not any generation
    /// older than the reader's: the reader also reloads for merges, and on
    /// its own after each commit, which withdraw nothing.)
    withdrawn_at: u64,
    /// Record keys withdrawn by commits the reader has not been seen to
    /// load (its reload failed, or has not happened yet): the current
    /// searcher may show them.
    unread: Option<Unread>,
}

pub(crate) struct Snapshots {
    /// Distinguishes this process's generations from a previous one's.
    epoch: u64,
    ttl: Duration,
    state: Mutex<State>,
}

impl Snapshots {
    pub fn new(ttl: Duration) -> Self {
        Self {
            epoch: rand::random(),
            ttl,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `searcher` for a while and returns its snapshot id; `None`
    /// when it is not held and a record was withdrawn since it was the
    /// reader's searcher, or by a commit the reader has not loaded: it may
    /// show that record, and no withdrawn set says so.
    pub fn keep(&self, searcher: &Searcher) -> Option<(u64, u64)> {
        let generation = searcher.generation().generation_id();
        let now = Instant::now();
        let mut state = self.lock();
        let State {
            held,
            withdrawn_at,
            unread,
        } = &mut *state;
        self.expire(held, now);
        match held.get_mut(&generation) {
            Some(entry) => entry.used = now,
            None if unread.is_some() || generation < *withdrawn_at => return None,
            None => {
                held.insert(
                    generation,
                    Held {
                        searcher: searcher.clone(),
                        taken: now,
                        used: now,
                        withdrawn: Arc::default(),
                    },
                );
            }
        }
        while held.len() > MAX_SNAPSHOTS {
            let oldest = held
                .iter()
                .min_by_key(|(_, entry)| entry.used)
                .map(|(generation, _)| *generation);
            match oldest {
                Some(generation) => held.remove(&generation),
                None => break,
            };
        }
        Some((self.epoch, generation))
    }

    /// The searcher of a snapshot id, if still held, and the record keys
    /// withdrawn since it was taken.
    pub fn get(
        &self,
        (epoch, generation): (u64, u64),
    ) -> Option<(Searcher, Arc<BTreeSet<String>>)> {
        if epoch != self.epoch {
            return None;
        }
        let now = Instant::now();
        let mut state = self.lock();
        self.expire(&mut state.held, now);
        let entry = state.held.get_mut(&generation)?;
        entry.used = now;
        Some((entry.searcher.clone(), entry.withdrawn.clone()))
    }

    /// Records that `keys` were withdrawn by a commit that is durable but
    /// that the reader may not have loaded: no held snapshot shows them
    /// again, searches of the current searcher leave them out, and no
    /// searcher is kept, until [`Self::loaded`].
    pub fn withdraw(&self, keys: &[String]) {
        if keys.is_empty() {
            return;
        }
        let mut state = self.lock();
        let unread = state
            .unread
            .get_or_insert_with(|| Unread::Keys(Arc::default()));
        if let Unread::Keys(set) = unread {
            let set = Arc::make_mut(set);
            set.extend(keys.iter().cloned());
            if set.len() > MAX_UNREAD {
                *unread = Unread::TooMany;
            }
        }
        state.held.retain(|_, entry| {
            let withdrawn = Arc::make_mut(&mut entry.withdrawn);
            withdrawn.extend(keys.iter().cloned());
            withdrawn.len() <= MAX_WITHDRAWN
        });
    }

    /// Records that the reader loaded every commit so far, and `current`
    /// is its generation now: searchers of it show nothing withdrawn, and
    /// no older one is kept from now on. Called under the index writer, so
    /// that no withdrawal is committed between the reload and this.
    pub fn loaded(&self, current: u64) {
        let mut state = self.lock();
        if state.unread.take().is_some() {
            state.withdrawn_at = state.withdrawn_at.max(current);
        }
    }

    /// Record keys withdrawn by commits the reader has not been seen to
    /// load: a search of the current searcher leaves them out. An error
    /// when there are more than [`MAX_UNREAD`]: no search may run on it.
    pub fn unread(&self) -> Result<Arc<BTreeSet<String>>, TooManyUnread> {
        match &self.lock().unread {
            None => Ok(Arc::default()),
            Some(Unread::Keys(keys)) => Ok(keys.clone()),
            Some(Unread::TooMany) => Err(TooManyUnread),
        }
    }

    /// Drops every held snapshot, and keeps none older than `current`, the
    /// reader generation now: the next page of each search reads the index
    /// as it is now (search-after on its sort position).
    pub fn clear(&self, current: u64) {
        let mut state = self.lock();
        state.held.clear();
        state.withdrawn_at = state.withdrawn_at.max(current);
    }

    /// The segments the held snapshots read.
    pub fn segments(&self) -> Vec<SegmentId> {
        self.lock()
            .held
            .values()
            .flat_map(|entry| entry.searcher.segment_readers())
            .map(|segment| segment.segment_id())
            .collect()
    }

    fn expire(&self, held: &mut HashMap<u64, Held>, now: Instant) {
        held.retain(|_, entry| {
            now.duration_since(entry.used) < self.ttl
                && now.duration_since(entry.taken) < MAX_CURSOR_AGE
        });
    }
}
