//! Generations of the index on disk: `index/CURRENT` names the directory
//! (`g1`, `g2`, …) in use. A rebuild fills the next generation while
//! searches keep using the current one, which keeps taking changes, then
//! switches `CURRENT` atomically (write, fsync, rename, fsync the
//! directory) and removes the old one.
//! A rebuild cut short by a crash leaves its unfinished generation (or,
//! killed between the switch and the removal, the old one) behind;
//! [`LiveIndex::remove_abandoned`], run when the node opens, removes every
//! generation but the current one, so neither piles up.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use super::{HoldingsIndex, IndexError};

const CURRENT_FILE: &str = "CURRENT";

/// The index in use, replaced whole by a rebuild.
pub struct LiveIndex {
    root: PathBuf,
    current: RwLock<Arc<HoldingsIndex>>,
    dir: Mutex<PathBuf>,
    /// Serialises writers of the index in use: catch-up, removals, and a
    /// rebuild's last catch-up and switch.
    writer: Mutex<()>,
    /// One rebuild at a time, held while it runs ([`LiveIndex::rebuilding`]).
    rebuild: Mutex<()>,
}

/// A generation being filled by a rebuild.
pub struct NextGeneration {
    pub index: Arc<HoldingsIndex>,
    dir: PathBuf,
}

/// A rebuild under way ([`LiveIndex::rebuild`]): its generation, filled
/// without the writer, and switched to under it. A rebuild that fails
/// leaves its generation behind, removed when the node opens next
/// ([`LiveIndex::remove_abandoned`]).
pub struct Rebuild<'a> {
    live: &'a LiveIndex,
    next: NextGeneration,
    _one: MutexGuard<'a, ()>,
}

impl Rebuild<'_> {
    /// The index being filled.
    pub fn index(&self) -> &Arc<HoldingsIndex> {
        &self.next.index
    }

    /// Makes the filled generation the current one ([`LiveIndex::switch`]).
    /// Called under the writer, once the generation has caught up.
    pub fn switch(self) -> Result<(), IndexError> {
        self.live.switch(self.next)
    }
}

impl LiveIndex {
    /// Opens the current generation under `root`. An index of another
    /// layout is derived data: it is replaced by an empty one of this
    /// layout, which the caller fills from the store.
    pub fn open(root: &Path) -> Result<Self, IndexError> {
        fs::create_dir_all(root).map_err(io(root))?;
        let generation = fs::read_to_string(root.join(CURRENT_FILE))
            .map(|text| text.trim().to_owned())
            .unwrap_or_else(|_| "g1".to_owned());
        let dir = root.join(&generation);
        let (index, dir) = match HoldingsIndex::open(&dir) {
            Ok(index) => (index, dir),
            Err(IndexError::SchemaVersion { .. }) | Err(IndexError::NotAnIndex(_)) => {
                tracing::warn!(dir = %dir.display(), "search index of another layout; rebuilding from the store");
                let dir = next_dir(root);
                let index = HoldingsIndex::create_fresh(&dir)?;
                switch_current(root, &dir)?;
                (index, dir)
            }
            Err(e) => return Err(e),
        };
        Ok(Self {
            root: root.to_owned(),
            current: RwLock::new(Arc::new(index)),
            dir: Mutex::new(dir),
            writer: Mutex::new(()),
            rebuild: Mutex::new(()),
        })
    }

    /// The index in use.
    pub fn get(&self) -> Arc<HoldingsIndex> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Holds every [`LiveIndex::get`], and with it every search, until the
    /// guard is dropped: for tests that need searches to take long.
    #[cfg(test)]
    pub(crate) fn hold(&self) -> std::sync::RwLockWriteGuard<'_, Arc<HoldingsIndex>> {
        self.current.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes the index takes on disk: every generation's files (a rebuild
    /// in progress included). Files that vanish while counted (a merge, a
    /// switch) count as nothing.
    pub fn size_on_disk(&self) -> u64 {
        fn walk(dir: &Path) -> u64 {
            let Ok(entries) = fs::read_dir(dir) else {
                return 0;
            };
            entries
                .flatten()
                .map(|entry| match entry.file_type() {
                    Ok(kind) if kind.is_dir() => walk(&entry.path()),
                    Ok(_) => entry.metadata().map_or(0, |m| m.len()),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.root)
    }

    /// Held by whoever writes to the index.
    pub fn writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a rebuild: waits for any other to end, then makes an empty
    /// index in the next generation's directory. Until the rebuild is
    /// switched to or dropped, [`LiveIndex::rebuilding`] says so.
    pub fn rebuild(&self) -> Result<Rebuild<'_>, IndexError> {
        let one = self.rebuild.lock().unwrap_or_else(|p| p.into_inner());
        let _writer = self.writer();
        Ok(Rebuild {
            live: self,
            next: self.next()?,
            _one: one,
        })
    }

    /// Whether a rebuild is filling the next generation: what changes the
    /// index in use without a log position (a refill's notes) must be
    /// left for the rebuild to take as well.
    pub fn rebuilding(&self) -> bool {
        matches!(
            self.rebuild.try_lock(),
            Err(std::sync::TryLockError::WouldBlock)
        )
    }

    /// An empty index in the next generation's directory.
    fn next(&self) -> Result<NextGeneration, IndexError> {
        let dir = next_dir(&self.root);
        let index = Arc::new(HoldingsIndex::create_fresh(&dir)?);
        Ok(NextGeneration { index, dir })
    }

    /// Makes a filled generation the current one and removes the old one
    /// (open readers of it keep their mapped files until they finish).
    fn switch(&self, next: NextGeneration) -> Result<(), IndexError> {
        switch_current(&self.root, &next.dir)?;
        let old = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(|p| p.into_inner()),
            next.index,
        );
        drop(old);
        let old_dir = std::mem::replace(
            &mut *self.dir.lock().unwrap_or_else(|p| p.into_inner()),
            next.dir,
        );
        if let Err(e) = fs::remove_dir_all(&old_dir) {
            tracing::warn!(dir = %old_dir.display(), error = %e, "old index generation not removed");
        }
        Ok(())
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> IndexError + '_ {
    move |source| IndexError::Io {
        path: path.to_owned(),
        source,
    }
}

impl LiveIndex {
    /// Removes every generation but the current one, and a `CURRENT` not
    /// yet renamed into place: what a crash during a rebuild or a switch
    /// leaves. Holds the writer lock, so no rebuild is filling one; nothing
    /// reads them, so a failure to remove is only logged.
    pub fn remove_abandoned(&self) {
        let _writer = self.writer();
        let current = self.dir.lock().unwrap_or_else(|p| p.into_inner()).clone();
        remove_abandoned(&self.root, &current);
    }
}

fn remove_abandoned(root: &Path, current: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let removed = if name == "CURRENT.tmp" {
            fs::remove_file(&path)
        } else if is_generation(&name) && path != current {
            fs::remove_dir_all(&path)
        } else {
            continue;
        };
        match removed {
            Ok(()) => {
                tracing::warn!(path = %path.display(), "removed an abandoned index generation")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "abandoned index generation not removed")
            }
        }
    }
}

/// Whether `name` is a generation's directory name (`g` and a number).
fn is_generation(name: &str) -> bool {
    name.strip_prefix('g')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn next_dir(root: &Path) -> PathBuf {
    (1u64..)
        .map(|n| root.join(format!("g{n}")))
        .find(|dir| !dir.exists())
        .expect("generations are finite")
}

/// Points `CURRENT` at `dir`, durably: a crash leaves the old or the new
/// name, never an empty file.
fn switch_current(root: &Path, dir: &Path) -> Result<(), IndexError> {
    use std::io::Write;
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("g1");
    let tmp = root.join("CURRENT.tmp");
    let mut file = fs::File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(name.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io(&tmp))?;
    fs::rename(&tmp, root.join(CURRENT_FILE)).map_err(io(root))?;
    fs::File::open(root)
        .and_then(|d| d.sync_all())
        .map_err(io(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_switch_survives_reopen_and_removes_the_old_generation() {
        let root = tempfile::tempdir().unwrap();
        let live = LiveIndex::open(root.path()).unwrap();
        assert!(root.path().join("g1").exists());
        let next = live.next().unwrap();
        live.switch(next).unwrap();
        assert!(!root.path().join("g1").exists());
        assert_eq!(
            fs::read_to_string(root.path().join(CURRENT_FILE)).unwrap(),
            "g2"
        );
        drop(live);
        LiveIndex::open(root.path()).unwrap();
        assert!(!root.path().join("g1").exists());
    }

    #[test]
    fn removing_abandoned_drops_a_rebuild_cut_short_and_keeps_the_current_index() {
        let root = tempfile::tempdir().unwrap();
        let live = LiveIndex::open(root.path()).unwrap();
        live.switch(live.next().unwrap()).unwrap();
        // A rebuild killed while filling g1 (the lowest free name), one
        // killed before its switch renamed CURRENT, and a stray directory
        // that is no generation.
        let unfinished = live.next().unwrap();
        drop(unfinished);
        fs::write(root.path().join("CURRENT.tmp"), "g1").unwrap();
        fs::create_dir(root.path().join("gx")).unwrap();
        drop(live);
        let live = LiveIndex::open(root.path()).unwrap();
        assert!(
            root.path().join("g1").exists(),
            "opening alone changes nothing"
        );
        live.remove_abandoned();
        assert!(
            !root.path().join("g1").exists(),
            "abandoned generation kept"
        );
        assert!(!root.path().join("CURRENT.tmp").exists());
        assert!(root.path().join("g2").exists(), "the current index removed");
        assert!(
            root.path().join("gx").exists(),
            "a foreign directory removed"
        );
        assert_eq!(live.next().unwrap().dir, root.path().join("g1"));
    }

    #[test]
    fn generation_names() {
        assert!(is_generation("g1") && is_generation("g42"));
        assert!(!is_generation("g") && !is_generation("gx") && !is_generation("CURRENT"));
    }
}
