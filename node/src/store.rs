//! The node's database (sled): records, per-origin logs, Merkle nodes and
//! checkpoints. The store is the source of truth; the search index is derived
//! from it.
//!
//! Trees are named for what they hold and carry a version (`records_v1`);
//! the database records its format version and refuses to open an unknown
//! one. Everything one logical write changes is committed in one transaction,
//! and a write is acknowledged only after [`Store::flush`].

use std::path::Path;

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use crate::merkle::Hash;

/// On-disk format version of this database.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_KEY: &[u8] = b"format_version";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or written.
    #[error("database error: {0}")]
    Db(#[from] sled::Error),
    /// The database was written by a format this build does not know.
    #[error(
        "the store at {path} has format version {found}, this meridian reads version {FORMAT_VERSION}; \
         use the matching meridian release or migrate the data directory"
    )]
    UnknownFormat { path: String, found: String },
    /// A log append raced another writer of the same origin log.
    #[error("log of {origin} moved from size {expected} to {found} during the write")]
    Conflict {
        origin: String,
        expected: u64,
        found: u64,
    },
    /// A stored value does not decode: the database is damaged.
    #[error("corrupt value in {tree}: {detail}")]
    Corrupt { tree: &'static str, detail: String },
}

/// What the store knows of one record without reading its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordState {
    pub version: u64,
    /// Position of the entry holding this version in the origin's log.
    pub log_index: u64,
    pub deleted: bool,
}

impl RecordState {
    fn encode(&self) -> [u8; 17] {
        let mut out = [0u8; 17];
        out[..8].copy_from_slice(&self.version.to_be_bytes());
        out[8..16].copy_from_slice(&self.log_index.to_be_bytes());
        out[16] = u8::from(self.deleted);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        if bytes.len() != 17 {
            return Err(StoreError::Corrupt {
                tree: "records_v1",
                detail: format!("record state of {} bytes", bytes.len()),
            });
        }
        Ok(Self {
            version: u64_at(&bytes[..8]),
            log_index: u64_at(&bytes[8..16]),
            deleted: bytes[16] != 0,
        })
    }
}

/// Everything one append to an origin log changes, committed at once.
#[derive(Debug, Default)]
pub struct LogAppend {
    pub origin: String,
    /// Log size the append was prepared against.
    pub base_size: u64,
    /// `(index, envelope bytes)`, contiguous from `base_size`.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// New state of each record the entries touch.
    pub records: Vec<(String, RecordState)>,
    /// Merkle nodes completed by the entries: `((level, index), hash)`.
    pub nodes: Vec<((u32, u64), Hash)>,
}

impl LogAppend {
    /// Log size after the append.
    pub fn new_size(&self) -> u64 {
        self.base_size + self.entries.len() as u64
    }
}

/// The node's database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    records: sled::Tree,
    log: sled::Tree,
    merkle: sled::Tree,
    heads: sled::Tree,
    checkpoints: sled::Tree,
}

impl Store {
    /// Opens (or creates) the store in `path`, checking its format version.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(256 * 1024 * 1024)
            .open()?;
        let meta = db.open_tree("meta_v1")?;
        match meta.get(FORMAT_KEY)? {
            None => {
                meta.insert(FORMAT_KEY, FORMAT_VERSION.to_string().as_bytes())?;
                db.flush()?;
            }
            Some(found) if found.as_ref() == FORMAT_VERSION.to_string().as_bytes() => {}
            Some(found) => {
                return Err(StoreError::UnknownFormat {
                    path: path.display().to_string(),
                    found: String::from_utf8_lossy(&found).into_owned(),
                })
            }
        }
        Ok(Self {
            records: db.open_tree("records_v1")?,
            log: db.open_tree("log_entries_by_origin_index_v1")?,
            merkle: db.open_tree("merkle_nodes_by_origin_level_index_v1")?,
            heads: db.open_tree("log_size_by_origin_v1")?,
            checkpoints: db.open_tree("checkpoint_by_origin_v1")?,
            db,
        })
    }

    /// The underlying database, for trees other modules own (trust store).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Makes every committed write durable. Call before acknowledging.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// The state of record `id` of `origin`, tombstones included.
    pub fn record_state(&self, origin: &str, id: &str) -> Result<Option<RecordState>, StoreError> {
        self.records
            .get(record_key(origin, id))?
            .map(|bytes| RecordState::decode(&bytes))
            .transpose()
    }

    /// Records of `origin` in id order, starting after `after_id`.
    pub fn list_records(
        &self,
        origin: &str,
        after_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, RecordState)>, StoreError> {
        let prefix = origin_prefix(origin);
        let start = match after_id {
            Some(id) => {
                let mut key = record_key(origin, id);
                key.push(0);
                key
            }
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        for item in self.records.range(start..) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            out.push((id, RecordState::decode(&value)?));
        }
        Ok(out)
    }

    /// Number of live (not deleted) records of `origin`.
    pub fn count_live(&self, origin: &str) -> Result<u64, StoreError> {
        let mut count = 0;
        for item in self.records.scan_prefix(origin_prefix(origin)) {
            let (_, value) = item?;
            if !RecordState::decode(&value)?.deleted {
                count += 1;
            }
        }
        Ok(count)
    }

    /// The envelope bytes of entry `index` of `origin`'s log.
    pub fn entry(&self, origin: &str, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.log.get(index_key(origin, index))?.map(|v| v.to_vec()))
    }

    /// Entries of `origin` from `from` on, in order, at most `limit`.
    pub fn entries(
        &self,
        origin: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let prefix = origin_prefix(origin);
        let mut out = Vec::with_capacity(limit.min(4096));
        for item in self.log.range(index_key(origin, from)..) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            out.push((u64_at(&key[prefix.len()..]), value.to_vec()));
        }
        Ok(out)
    }

    /// Size of `origin`'s log as held here (0 if unknown).
    pub fn log_size(&self, origin: &str) -> Result<u64, StoreError> {
        Ok(self
            .heads
            .get(origin.as_bytes())?
            .map(|v| u64_at(&v))
            .unwrap_or(0))
    }

    /// Every origin whose log this store holds, with its size.
    pub fn origins(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.heads
            .iter()
            .map(|item| {
                let (key, value) = item?;
                Ok((String::from_utf8_lossy(&key).into_owned(), u64_at(&value)))
            })
            .collect()
    }

    /// A stored Merkle node of `origin`'s log.
    pub fn merkle_node(
        &self,
        origin: &str,
        level: u32,
        index: u64,
    ) -> Result<Option<Hash>, StoreError> {
        match self.merkle.get(node_key(origin, level, index))? {
            None => Ok(None),
            Some(bytes) => bytes
                .as_ref()
                .try_into()
                .map(Some)
                .map_err(|_| StoreError::Corrupt {
                    tree: "merkle_nodes",
                    detail: format!("node of {} bytes", bytes.len()),
                }),
        }
    }

    /// The latest checkpoint envelope of `origin`.
    pub fn checkpoint(&self, origin: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.checkpoints.get(origin.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Stores `origin`'s latest checkpoint envelope.
    pub fn put_checkpoint(&self, origin: &str, envelope: &[u8]) -> Result<(), StoreError> {
        self.checkpoints.insert(origin.as_bytes(), envelope)?;
        Ok(())
    }

    /// Commits one log append in a single transaction: entries, record
    /// states, Merkle nodes and the new log size land together or not at all.
    pub fn commit(&self, append: &LogAppend) -> Result<(), StoreError> {
        let origin = append.origin.as_str();
        let result = (&self.records, &self.log, &self.merkle, &self.heads).transaction(
            |(records, log, merkle, heads)| {
                let found = heads
                    .get(origin.as_bytes())?
                    .map(|v| u64_at(&v))
                    .unwrap_or(0);
                if found != append.base_size {
                    return Err(ConflictableTransactionError::Abort(found));
                }
                for (index, envelope) in &append.entries {
                    log.insert(index_key(origin, *index), envelope.as_slice())?;
                }
                for (id, state) in &append.records {
                    records.insert(record_key(origin, id), &state.encode()[..])?;
                }
                for ((level, index), hash) in &append.nodes {
                    merkle.insert(node_key(origin, *level, *index), &hash[..])?;
                }
                heads.insert(origin.as_bytes(), &append.new_size().to_be_bytes()[..])?;
                Ok(())
            },
        );
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(found)) => Err(StoreError::Conflict {
                origin: origin.to_owned(),
                expected: append.base_size,
                found,
            }),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }
}

fn u64_at(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(buf)
}

/// Origins and ids never hold NUL (validated), so it separates key parts.
fn origin_prefix(origin: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(origin.len() + 1);
    key.extend_from_slice(origin.as_bytes());
    key.push(0);
    key
}

fn record_key(origin: &str, id: &str) -> Vec<u8> {
    let mut key = origin_prefix(origin);
    key.extend_from_slice(id.as_bytes());
    key
}

fn index_key(origin: &str, index: u64) -> Vec<u8> {
    let mut key = origin_prefix(origin);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

fn node_key(origin: &str, level: u32, index: u64) -> Vec<u8> {
    let mut key = origin_prefix(origin);
    key.push(level as u8);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(origin: &str, base: u64, ids: &[&str]) -> LogAppend {
        LogAppend {
            origin: origin.into(),
            base_size: base,
            entries: ids
                .iter()
                .enumerate()
                .map(|(i, id)| (base + i as u64, id.as_bytes().to_vec()))
                .collect(),
            records: ids
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let state = RecordState {
                        version: 1,
                        log_index: base + i as u64,
                        deleted: false,
                    };
                    (id.to_string(), state)
                })
                .collect(),
            nodes: vec![((0, base), [7u8; 32])],
        }
    }

    #[test]
    fn a_commit_lands_whole_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.commit(&append("polar", 0, &["a", "b"])).unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.log_size("polar").unwrap(), 2);
        assert_eq!(store.entry("polar", 1).unwrap().unwrap(), b"b");
        let state = store.record_state("polar", "b").unwrap().unwrap();
        assert_eq!(state.log_index, 1);
        assert_eq!(store.merkle_node("polar", 0, 0).unwrap(), Some([7u8; 32]));
        let listed = store.list_records("polar", Some("a"), 10).unwrap();
        assert_eq!(
            listed.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
    }

    #[test]
    fn a_stale_append_is_refused_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.commit(&append("polar", 0, &["a"])).unwrap();
        let err = store.commit(&append("polar", 0, &["z"])).unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict { found: 1, .. }),
            "{err}"
        );
        assert!(store.record_state("polar", "z").unwrap().is_none());
        assert_eq!(store.log_size("polar").unwrap(), 1);
    }

    #[test]
    fn origins_do_not_bleed_into_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.commit(&append("uni", 0, &["a"])).unwrap();
        store.commit(&append("uni-b", 0, &["b", "c"])).unwrap();
        assert_eq!(store.list_records("uni", None, 10).unwrap().len(), 1);
        assert_eq!(store.entries("uni", 0, 10).unwrap().len(), 1);
        assert_eq!(store.count_live("uni-b").unwrap(), 2);
    }

    #[test]
    fn an_unknown_format_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.open_tree("meta_v1")
                .unwrap()
                .insert(FORMAT_KEY, b"99")
                .unwrap();
            db.flush().unwrap();
        }
        let err = Store::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("format version 99"), "{err}");
    }
}
