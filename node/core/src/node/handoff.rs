//! Entries sync applied, handed to the indexer (`crate::indexer`) so it
//! need not read them back from the store and decode them again.

use crate::ids::LogIndex;
use crate::log::StoredEntry;

/// An entry as sync hands it to the indexer: a record entry's record,
/// decoded and verified, or any other entry as stored.
pub(crate) enum Handed {
    Record(Box<crate::proto::DatasetRecord>),
    Stored(StoredEntry),
}

/// Entries sync applied, by origin, in runs of consecutive positions: the
/// indexer takes them instead of reading each entry back from the store
/// and decoding it again. Only an aid: what is not here (dropped to stay
/// within [`Handoff::MAX`], from before a restart, an origin with
/// revocations) is read from the store as before.
#[derive(Default)]
pub(crate) struct Handoff {
    runs: std::sync::Mutex<Runs>,
}

#[derive(Default)]
struct Runs {
    by_origin: std::collections::HashMap<String, std::collections::VecDeque<(u64, Vec<Handed>)>>,
    /// Entries held, over every origin.
    held: usize,
}

impl Handoff {
    /// Most entries held: what a pull at full speed brings while the
    /// indexer waits and commits a round (records of about 1 KiB: some
    /// 130 MiB).
    const MAX: usize = 131_072;

    fn runs(&self) -> std::sync::MutexGuard<'_, Runs> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands over entries `first..` of `origin`, just committed and
    /// flushed. A run that does not follow the last one held replaces
    /// them; past [`Handoff::MAX`] the oldest runs of the origin go first
    /// (the indexer is behind them: it reads those from the store), then
    /// those of other origins.
    pub(crate) fn give(&self, origin: &str, first: u64, entries: Vec<Handed>) {
        if entries.is_empty() || entries.len() > Self::MAX {
            return;
        }
        let mut runs = self.runs();
        let Runs { by_origin, held } = &mut *runs;
        let queue = by_origin.entry(origin.to_owned()).or_default();
        if queue
            .back()
            .is_some_and(|(at, run)| at + run.len() as u64 != first)
        {
            *held -= queue.iter().map(|(_, run)| run.len()).sum::<usize>();
            queue.clear();
        }
        while *held + entries.len() > Self::MAX {
            let Some((_, run)) = queue.pop_front() else {
                break;
            };
            *held -= run.len();
        }
        *held += entries.len();
        queue.push_back((first, entries));
        if *held > Self::MAX {
            let origin = origin.to_owned();
            by_origin.retain(|name, _| *name == origin);
            *held = by_origin.values().flatten().map(|(_, run)| run.len()).sum();
        }
    }

    /// The entries of `origin` from `from` up to at most `size`, if those
    /// from `from` on are held; drops what lies before `from`.
    pub(crate) fn take(
        &self,
        origin: &str,
        from: u64,
        size: u64,
    ) -> Option<Vec<(LogIndex, Handed)>> {
        let mut runs = self.runs();
        let Runs { by_origin, held } = &mut *runs;
        let queue = by_origin.get_mut(origin)?;
        while queue
            .front()
            .is_some_and(|(at, run)| at + run.len() as u64 <= from)
        {
            if let Some((_, run)) = queue.pop_front() {
                *held -= run.len();
            }
        }
        let mut taken = Vec::new();
        let mut next = from;
        while queue
            .front()
            .is_some_and(|(at, run)| *at == next && at + run.len() as u64 <= size)
        {
            let Some((at, run)) = queue.pop_front() else {
                break;
            };
            *held -= run.len();
            next = at + run.len() as u64;
            taken.extend((at..).map(LogIndex).zip(run));
        }
        (!taken.is_empty()).then_some(taken)
    }

    /// Entries held, over every origin.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.runs().held
    }

    /// Drops what is held of `origin`: its entries are to be read as
    /// stored.
    pub(crate) fn forget(&self, origin: &str) {
        let mut runs = self.runs();
        if let Some(queue) = runs.by_origin.remove(origin) {
            runs.held -= queue.iter().map(|(_, run)| run.len()).sum::<usize>();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(ids: &[&str]) -> Vec<Handed> {
        ids.iter()
            .map(|id| {
                Handed::Record(Box::new(crate::proto::DatasetRecord {
                    id: (*id).into(),
                    ..Default::default()
                }))
            })
            .collect()
    }

    fn ids(taken: Option<Vec<(LogIndex, Handed)>>) -> Vec<(u64, String)> {
        taken
            .unwrap_or_default()
            .into_iter()
            .map(|(index, handed)| match handed {
                Handed::Record(record) => (index.get(), record.id),
                Handed::Stored(_) => (index.get(), "stored".into()),
            })
            .collect()
    }

    #[test]
    fn runs_are_taken_from_the_indexers_position_up_to_the_durable_size() {
        let handoff = Handoff::default();
        handoff.give("polar", 5, records(&["a", "b"]));
        handoff.give("polar", 7, records(&["c"]));
        handoff.give("polar", 8, records(&["d"]));
        // The indexer is further back: it reads the store.
        assert!(handoff.take("polar", 3, 9).is_none());
        // Only whole runs below the durable size.
        assert_eq!(
            ids(handoff.take("polar", 5, 8)),
            [(5, "a".into()), (6, "b".into()), (7, "c".into())]
        );
        assert_eq!(handoff.held(), 1);
        assert!(handoff.take("uni", 0, 9).is_none());
        assert_eq!(ids(handoff.take("polar", 8, 9)), [(8, "d".into())]);
        assert_eq!(handoff.held(), 0);
    }

    #[test]
    fn runs_behind_the_indexer_or_broken_off_are_dropped() {
        let handoff = Handoff::default();
        handoff.give("polar", 0, records(&["a", "b"]));
        handoff.give("polar", 2, records(&["c"]));
        // Past the first run (the indexer read it from the store).
        assert_eq!(ids(handoff.take("polar", 2, 3)), [(2, "c".into())]);
        handoff.give("polar", 3, records(&["d"]));
        // A run that does not follow replaces what was held of the origin.
        handoff.give("polar", 10, records(&["x"]));
        assert!(handoff.take("polar", 3, 11).is_none());
        assert_eq!(ids(handoff.take("polar", 10, 11)), [(10, "x".into())]);
        handoff.give("ice", 0, records(&["i"]));
        handoff.forget("ice");
        assert_eq!(handoff.held(), 0);
    }

    #[test]
    fn what_is_held_stays_within_its_bound_oldest_first() {
        let handoff = Handoff::default();
        let run = |n: usize| -> Vec<Handed> { (0..n).flat_map(|_| records(&["r"])).collect() };
        let half = Handoff::MAX / 2;
        handoff.give("polar", 0, run(half));
        handoff.give("polar", half as u64, run(half - 1));
        handoff.give("ice", 0, run(1));
        assert_eq!(handoff.held(), Handoff::MAX);
        // The origin's oldest run makes room for its newest.
        handoff.give("polar", (2 * half - 1) as u64, run(2));
        assert_eq!(handoff.held(), Handoff::MAX - half + 2);
        assert!(handoff.take("polar", 0, u64::MAX).is_none());
        assert_eq!(
            ids(handoff.take("polar", half as u64, u64::MAX)).len(),
            half + 1
        );
        assert_eq!(ids(handoff.take("ice", 0, 1)).len(), 1);
        // When the origin's own runs are not enough, other origins' go.
        handoff.give("ice", 1, run(half));
        handoff.give("polar", 0, run(half + 1));
        assert_eq!(handoff.held(), half + 1);
        assert!(handoff.take("ice", 1, u64::MAX).is_none());
        // A run over the bound is not held at all.
        handoff.give("uni", 0, run(Handoff::MAX + 1));
        assert!(handoff.take("uni", 0, u64::MAX).is_none());
    }
}
