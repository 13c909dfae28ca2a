//! Point-in-time searchers for cursor pagination.
//!
//! A page that has a next page keeps its `Searcher` here under the reader
//! generation it belongs to; the cursor names (process epoch, generation).
//! The next page reads the same searcher, so it sees the same documents and
//! the same BM25 statistics: no hit is skipped or repeated whatever is
//! committed meanwhile. Pages of one generation share one entry, so the
//! number held is bounded by commits per TTL and by [`MAX_SNAPSHOTS`]. A
//! held searcher pins its segment files; expiry releases them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tantivy::Searcher;

/// How long an unused snapshot is kept.
pub(crate) const SNAPSHOT_TTL: Duration = Duration::from_secs(5 * 60);
/// Most snapshots held at once; the least recently used goes first.
pub(crate) const MAX_SNAPSHOTS: usize = 32;

pub(crate) struct Snapshots {
    /// Distinguishes this process's generations from a previous one's.
    epoch: u64,
    ttl: Duration,
    held: Mutex<HashMap<u64, (Searcher, Instant)>>,
}

impl Snapshots {
    pub fn new(ttl: Duration) -> Self {
        Self {
            epoch: rand::random(),
            ttl,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps `searcher` for a while and returns its snapshot id.
    pub fn keep(&self, searcher: &Searcher) -> (u64, u64) {
        let generation = searcher.generation().generation_id();
        let now = Instant::now();
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|_, (_, used)| now.duration_since(*used) < self.ttl);
        held.insert(generation, (searcher.clone(), now));
        while held.len() > MAX_SNAPSHOTS {
            let oldest = held
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(generation, _)| *generation);
            match oldest {
                Some(generation) => held.remove(&generation),
                None => break,
            };
        }
        (self.epoch, generation)
    }

    /// The searcher of a snapshot id, if still held.
    pub fn get(&self, (epoch, generation): (u64, u64)) -> Option<Searcher> {
        if epoch != self.epoch {
            return None;
        }
        let now = Instant::now();
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|_, (_, used)| now.duration_since(*used) < self.ttl);
        let (searcher, used) = held.get_mut(&generation)?;
        *used = now;
        Some(searcher.clone())
    }
}
