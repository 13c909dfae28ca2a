//! The node's database (sled): records, per-origin logs, Merkle nodes and
//! checkpoints. The store is the source of truth; the search index is derived
//! from it.
//!
//! Trees are named for what they hold and carry a version (`records_v1`);
//! the database records its format version and refuses to open an unknown
//! one. Everything one logical write changes is committed in one transaction,
//! and a write is acknowledged only after [`Store::flush`].

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use crate::ids::LogIndex;
use crate::log::{Appender, LastPublic, LogAppend, RecordState, StoredEntry};
use crate::merkle::{self, Hash, NodeStore, TreeError};

/// The database's trees, by name. Each name says what it holds and carries
/// the version of its layout.
pub mod tree {
    pub const META: &str = "meta_v1";
    pub const RECORDS: &str = "records_v1";
    pub const LOG: &str = "log_runs_by_origin_index_v1";
    pub const MERKLE: &str = "merkle_runs_by_origin_level_index_v1";
    pub const LOG_SIZES: &str = "log_size_by_origin_v1";
    pub const CHECKPOINTS: &str = "checkpoint_by_origin_v1";
    pub const FROZEN: &str = "frozen_origins_v1";
    /// Offline-verifiable evidence of equivocation by origin: the JSON of
    /// `crate::sync::witness::Evidence`, kept with the freeze it caused.
    pub const EVIDENCE: &str = "evidence_by_origin_v1";
    pub const PEERS: &str = "peers_by_node_v1";
    pub const AUDIT: &str = "audit_by_seq_v1";
    /// Live searches answered for peers, in the order answered (the
    /// query audit, `search::audit`).
    pub const QUERY_AUDIT: &str = "query_audit_by_seq_v1";
    /// Record id by origin and subject digest, for records of other origins.
    pub const SUBJECTS: &str = "record_by_origin_subject_v1";
    /// Appends in the order this node stored them: sequence → when, which
    /// origin, which entries ([`super::Arrival`]).
    pub const ARRIVALS: &str = "arrivals_by_seq_v1";
    /// The same appends by origin and first index, to date one entry.
    pub const ARRIVAL_BY_ORIGIN: &str = "arrival_by_origin_index_v1";
    /// For an entry that changed a record held before, the log index of the
    /// version it replaced: a record's versions, newest first.
    pub const PREVIOUS: &str = "previous_version_by_origin_index_v1";
    /// Records of each origin that are not deleted, kept with every commit
    /// so that a node's status costs one read whatever it holds.
    pub const LIVE: &str = "live_records_by_origin_v1";
    /// Log positions of the key-set entries after entry 0, by origin
    /// (entry 0 is always the first set; a store written before key
    /// rotation holds no others).
    pub const KEYSETS: &str = "keyset_by_origin_index_v1";
    /// Log positions of the audience entries, by origin: the last one is
    /// the audience every node enforces for the origin's records.
    pub const AUDIENCES: &str = "audience_by_origin_index_v1";
    /// Origins whose new audience grants this node more than it held: the
    /// log position of that audience. Entries held as digests before it
    /// are asked for again ([`super::Store::refill`]).
    pub const REFILLS: &str = "refill_by_origin_v1";
    /// Records a refill brought back, by origin and id, with the log
    /// position of the version it restored: written with the restored
    /// states and removed once the index holds them, so a crash or an
    /// index error in between cannot leave them out of search for good
    /// (the index's cursor is already past their positions).
    pub const REFILLED: &str = "refilled_by_origin_record_v1";
    /// Each origin's latest restatement ([`super::Restatement`]): entries
    /// stored before it that harvesters are to be told of again, from
    /// where the restatement stands in [`ARRIVALS`].
    pub const RESTATEMENTS: &str = "restatement_by_origin_v1";
    /// Origins an OAI-PMH listing left out (their chain did not verify, or
    /// they were quarantined), with when it first did: restated once they
    /// are listed again.
    pub const LEFT_OUT: &str = "left_out_by_origin_v1";
}

/// On-disk format version of this database. Version 2 adds to each record
/// state the note of the record's latest public version
/// ([`LastPublic`]), which a release that reads version 1 would take for a
/// damaged state: marked so, it refuses the store clearly instead. Version
/// 3 adds restatements ([`Restatement`]) to the arrivals.
pub const FORMAT_VERSION: u32 = 3;
/// Versions this build opens as they are and marks [`FORMAT_VERSION`]:
/// version 1 is version 2 with no state noted, and version 2 is version 3
/// without restatements (which a release reading version 2 would take for
/// damaged arrivals).
const FORMAT_UPGRADES: [&[u8]; 2] = [b"1", b"2"];
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
    /// A stored value does not decode: the database is damaged. `tree` is
    /// one of [`tree`]'s names.
    #[error("corrupt value in {tree}: {detail}")]
    Corrupt { tree: &'static str, detail: String },
}

impl StoreError {
    fn corrupt(tree: &'static str, detail: impl Into<String>) -> Self {
        StoreError::Corrupt {
            tree,
            detail: detail.into(),
        }
    }
}

/// A record state as [`tree::RECORDS`] holds it: version, log index and
/// whether it is a tombstone (17 bytes: all a state written before the
/// notes were kept holds, read as [`LastPublic::Unnoted`]), then the note
/// of the latest public version: 0 for none, or 1 and its log index.
struct EncodedState {
    bytes: [u8; 26],
    len: usize,
}

impl std::ops::Deref for EncodedState {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

fn encode_state(state: &RecordState) -> EncodedState {
    let mut bytes = [0u8; 26];
    bytes[..8].copy_from_slice(&state.version.to_be_bytes());
    bytes[8..16].copy_from_slice(&state.log_index.get().to_be_bytes());
    bytes[16] = u8::from(state.deleted);
    let len = match state.last_public {
        LastPublic::Unnoted => 17,
        LastPublic::Never => 18,
        LastPublic::At(index) => {
            bytes[17] = 1;
            bytes[18..].copy_from_slice(&index.get().to_be_bytes());
            26
        }
    };
    EncodedState { bytes, len }
}

fn decode_state(bytes: &[u8]) -> Result<RecordState, StoreError> {
    let last_public = match (bytes.len(), bytes.get(17)) {
        (17, _) => LastPublic::Unnoted,
        (18, Some(0)) => LastPublic::Never,
        (26, Some(1)) => LastPublic::At(LogIndex(u64_at(&bytes[18..26]))),
        (len, _) => {
            return Err(StoreError::corrupt(
                tree::RECORDS,
                format!("record state of {len} bytes"),
            ))
        }
    };
    Ok(RecordState {
        version: u64_at(&bytes[..8]),
        log_index: LogIndex(u64_at(&bytes[8..16])),
        deleted: bytes[16] != 0,
        last_public,
    })
}

/// One append as this node stored it: `count` entries of `origin`'s log
/// from index `first`, stored at `stored_at` (Unix seconds), the `seq`-th
/// (in order, with gaps) of every append this node made or received.
/// Arrival times never decrease with `seq`. A `restated` arrival brought
/// nothing: it is where entries stored before are listed again
/// ([`Restatement`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub seq: u64,
    pub stored_at: u64,
    pub origin: String,
    pub first: u64,
    pub count: u64,
    pub restated: bool,
}

/// Marks a restatement in [`tree::ARRIVALS`], before the origin: never the
/// first byte of UTF-8.
const RESTATED_MARK: u8 = 0xff;

impl Arrival {
    /// Value in [`tree::ARRIVALS`]: time, first, count, then the origin,
    /// after [`RESTATED_MARK`] for a restatement.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(25 + self.origin.len());
        out.extend_from_slice(&self.stored_at.to_be_bytes());
        out.extend_from_slice(&self.first.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        if self.restated {
            out.push(RESTATED_MARK);
        }
        out.extend_from_slice(self.origin.as_bytes());
        out
    }

    fn decode(seq: &[u8], value: &[u8]) -> Result<Self, StoreError> {
        if seq.len() != 8 || value.len() < 24 {
            return Err(StoreError::corrupt(tree::ARRIVALS, "short arrival"));
        }
        let (restated, origin) = match &value[24..] {
            [RESTATED_MARK, origin @ ..] => (true, origin),
            origin => (false, origin),
        };
        Ok(Self {
            seq: u64_at(seq),
            stored_at: u64_at(&value[..8]),
            first: u64_at(&value[8..16]),
            count: u64_at(&value[16..24]),
            origin: String::from_utf8(origin.to_vec())
                .map_err(|_| StoreError::corrupt(tree::ARRIVALS, "origin is not UTF-8"))?,
            restated,
        })
    }

    /// Value in [`tree::ARRIVAL_BY_ORIGIN`]: seq, time, count.
    fn by_origin_value(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[..8].copy_from_slice(&self.seq.to_be_bytes());
        out[8..16].copy_from_slice(&self.stored_at.to_be_bytes());
        out[16..].copy_from_slice(&self.count.to_be_bytes());
        out
    }

    /// Index after the last entry of the append.
    pub fn end(&self) -> u64 {
        self.first + self.count
    }

    /// The entries a harvest lists at this arrival, given the origin's
    /// latest restatement: all of them, except those a later restatement
    /// lists again (an earlier arrival of the origin ends where the
    /// restatement starts, and an earlier restatement starts no sooner).
    pub fn listed(&self, restatement: Option<&Restatement>) -> std::ops::Range<u64> {
        match restatement {
            Some(later) if later.seq > self.seq => {
                self.first..self.end().min(later.first).max(self.first)
            }
            _ => self.first..self.end(),
        }
    }
}

/// A point in the order of arrivals where entries `first..end` of an
/// origin's log, stored before, are listed to harvesters again with the
/// restatement's time as their datestamp: what a harvest shows of them
/// changed without an entry of their own (a revocation set some aside, or
/// the origin is listed again after a listing left it out). Only the
/// latest restatement of an origin counts; each starts no later than the
/// one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restatement {
    pub seq: u64,
    pub stored_at: u64,
    pub first: u64,
    pub end: u64,
}

impl Restatement {
    /// Value in [`tree::RESTATEMENTS`]: seq, time, first, end.
    fn encode(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out[..8].copy_from_slice(&self.seq.to_be_bytes());
        out[8..16].copy_from_slice(&self.stored_at.to_be_bytes());
        out[16..24].copy_from_slice(&self.first.to_be_bytes());
        out[24..].copy_from_slice(&self.end.to_be_bytes());
        out
    }

    fn decode(value: &[u8]) -> Result<Self, StoreError> {
        if value.len() != 32 {
            return Err(StoreError::corrupt(tree::RESTATEMENTS, "short value"));
        }
        Ok(Self {
            seq: u64_at(&value[..8]),
            stored_at: u64_at(&value[8..16]),
            first: u64_at(&value[16..24]),
            end: u64_at(&value[24..]),
        })
    }

    /// Writes the restatement of `origin`: its row in the order of
    /// arrivals and the origin's latest in [`tree::RESTATEMENTS`].
    fn put<E>(
        &self,
        origin: &str,
        arrivals: &sled::transaction::TransactionalTree,
        restatements: &sled::transaction::TransactionalTree,
    ) -> sled::transaction::ConflictableTransactionResult<(), E> {
        let row = self.arrival(origin);
        arrivals.insert(row.seq.to_be_bytes().to_vec(), row.encode())?;
        restatements.insert(origin.as_bytes(), &self.encode()[..])?;
        Ok(())
    }

    /// The arrival row of the restatement.
    fn arrival(&self, origin: &str) -> Arrival {
        Arrival {
            seq: self.seq,
            stored_at: self.stored_at,
            origin: origin.to_owned(),
            first: self.first,
            count: self.end - self.first,
            restated: true,
        }
    }
}

/// Seconds since the Unix epoch, now.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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
    frozen: sled::Tree,
    evidence: sled::Tree,
    subjects: sled::Tree,
    arrivals: sled::Tree,
    arrival_by_origin: sled::Tree,
    previous: sled::Tree,
    live: sled::Tree,
    keysets: sled::Tree,
    audiences: sled::Tree,
    refills: sled::Tree,
    refilled: sled::Tree,
    restatements: sled::Tree,
    left_out: sled::Tree,
    /// Held while an append commits, so that appends commit in the order of
    /// their arrival sequence; holds the last arrival's time, so that
    /// arrival times never go back even when the clock does.
    arrival_clock: Arc<Mutex<u64>>,
    /// Log sizes as of the last [`Store::flush`]: what survives `kill -9`.
    /// The indexer reads no further, so the index never holds an entry a
    /// crash could take from the store.
    durable: Arc<Mutex<HashMap<String, u64>>>,
    /// Log sizes committed since the last flush.
    unflushed: Arc<Mutex<HashMap<String, u64>>>,
    /// Every write holds it shared; [`Store::dump`] holds it alone, so a
    /// dump sees every tree at one point between writes (sled has no
    /// snapshot across trees).
    gate: Arc<RwLock<()>>,
    /// Sequence numbers for [`tree::ARRIVALS`] and [`Table::push`].
    ids: Arc<IdGen>,
}

/// Sequence numbers that grow past every one already stored: sled's own
/// counter starts again at 0 in a database loaded from a dump.
struct IdGen {
    db: sled::Db,
    last: AtomicU64,
}

impl IdGen {
    fn next(&self) -> Result<u64, StoreError> {
        let generated = self.db.generate_id()?;
        let mut last = self.last.load(Ordering::SeqCst);
        loop {
            let next = generated.max(last.saturating_add(1));
            match self
                .last
                .compare_exchange(last, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Ok(next),
                Err(now) => last = now,
            }
        }
    }
}

/// First line of a store dump ([`Store::dump`]); the version of its layout.
pub const DUMP_MAGIC: &[u8] = b"meridian-store-dump v1\n";
/// Most bytes of one tree name, key or value a dump may declare.
const DUMP_ITEM_MAX: u32 = 64 << 20;
const DUMP_TREE: u8 = 1;
const DUMP_PAIR: u8 = 2;
const DUMP_END: u8 = 0;

/// What a dump holds: the size of every origin's log it caught.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpSummary {
    pub trees: u64,
    pub pairs: u64,
    pub origins: std::collections::BTreeMap<String, u64>,
}

/// Why a dump could not be written or loaded.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The dump is not one this build reads, or is cut short or damaged.
    #[error("not a whole store dump: {0}")]
    Malformed(String),
    /// Loading goes only into a directory that holds no store.
    #[error("{0}: a store is already there; a dump loads only into an empty directory")]
    NotEmpty(String),
}

impl Store {
    /// Opens (or creates) the store in `path`, checking its format version,
    /// with the cache a node has when its configuration names none.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`Store::open`] keeping up to `cache_bytes` of decoded pages in
    /// memory (`store.cache_mib`).
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let db = open_db(path, cache_bytes)?;
        let meta = db.open_tree(tree::META)?;
        match meta.get(FORMAT_KEY)? {
            None => {
                meta.insert(FORMAT_KEY, FORMAT_VERSION.to_string().as_bytes())?;
                db.flush()?;
            }
            Some(found) if found.as_ref() == FORMAT_VERSION.to_string().as_bytes() => {}
            Some(found) if FORMAT_UPGRADES.contains(&found.as_ref()) => {
                meta.insert(FORMAT_KEY, FORMAT_VERSION.to_string().as_bytes())?;
                db.flush()?;
            }
            Some(found) => {
                return Err(StoreError::UnknownFormat {
                    path: path.display().to_string(),
                    found: String::from_utf8_lossy(&found).into_owned(),
                })
            }
        }
        let store = Self {
            records: db.open_tree(tree::RECORDS)?,
            log: db.open_tree(tree::LOG)?,
            merkle: db.open_tree(tree::MERKLE)?,
            heads: db.open_tree(tree::LOG_SIZES)?,
            checkpoints: db.open_tree(tree::CHECKPOINTS)?,
            frozen: db.open_tree(tree::FROZEN)?,
            evidence: db.open_tree(tree::EVIDENCE)?,
            subjects: db.open_tree(tree::SUBJECTS)?,
            arrivals: db.open_tree(tree::ARRIVALS)?,
            arrival_by_origin: db.open_tree(tree::ARRIVAL_BY_ORIGIN)?,
            previous: db.open_tree(tree::PREVIOUS)?,
            live: db.open_tree(tree::LIVE)?,
            keysets: db.open_tree(tree::KEYSETS)?,
            audiences: db.open_tree(tree::AUDIENCES)?,
            refills: db.open_tree(tree::REFILLS)?,
            refilled: db.open_tree(tree::REFILLED)?,
            restatements: db.open_tree(tree::RESTATEMENTS)?,
            left_out: db.open_tree(tree::LEFT_OUT)?,
            arrival_clock: Arc::default(),
            durable: Arc::default(),
            unflushed: Arc::default(),
            gate: Arc::default(),
            ids: Arc::new(IdGen {
                db: db.clone(),
                last: AtomicU64::new(0),
            }),
            db,
        };
        let floor = [tree::ARRIVALS, tree::AUDIT, tree::QUERY_AUDIT]
            .into_iter()
            .map(|name| -> Result<u64, StoreError> {
                Ok(store
                    .db
                    .open_tree(name)?
                    .last()?
                    .map_or(0, |(key, _)| u64_at(&key)))
            })
            .try_fold(0u64, |max, last| last.map(|last| max.max(last)))?;
        store.ids.last.store(floor, Ordering::SeqCst);
        // What was read back at open is on disk.
        let sizes: HashMap<String, u64> = store.origins()?.into_iter().collect();
        store.date_unarrived(&sizes)?;
        store.count_live_once()?;
        *store.durable.lock().unwrap_or_else(|p| p.into_inner()) = sizes;
        Ok(store)
    }

    /// Counts each origin's live records of a store written before the
    /// counts were kept; a no-op once done.
    fn count_live_once(&self) -> Result<(), StoreError> {
        const DONE: &[u8] = b"live_counted";
        let meta = self.db.open_tree(tree::META)?;
        if meta.get(DONE)?.is_some() {
            return Ok(());
        }
        let mut counts: HashMap<Vec<u8>, u64> = HashMap::new();
        for item in self.records.iter() {
            let (key, value) = item?;
            let Some(split) = key.iter().position(|&b| b == 0) else {
                return Err(StoreError::corrupt(tree::RECORDS, "a key without origin"));
            };
            let count = counts.entry(key[..split].to_vec()).or_default();
            if !decode_state(&value)?.deleted {
                *count += 1;
            }
        }
        let mut batch = sled::Batch::default();
        for (origin, count) in counts {
            batch.insert(origin, &count.to_be_bytes()[..]);
        }
        self.live.apply_batch(batch)?;
        meta.insert(DONE, &b"1"[..])?;
        self.db.flush()?;
        Ok(())
    }

    /// Dates entries stored before appends had arrival records (a store
    /// written by an older release): each origin's undated tail becomes one
    /// arrival, now. A no-op once every entry is dated.
    fn date_unarrived(&self, sizes: &HashMap<String, u64>) -> Result<(), StoreError> {
        let mut origins: Vec<(&String, &u64)> = sizes.iter().collect();
        origins.sort();
        let mut last = self
            .arrivals
            .last()?
            .map(|(seq, value)| Arrival::decode(&seq, &value))
            .transpose()?
            .map_or(0, |a| a.stored_at);
        let mut dated_any = false;
        for (origin, &size) in origins {
            let dated = self.dated_size(origin)?;
            if dated >= size {
                continue;
            }
            last = last.max(unix_now());
            let arrival = Arrival {
                seq: self.ids.next()?,
                stored_at: last,
                origin: origin.clone(),
                first: dated,
                count: size - dated,
                restated: false,
            };
            self.arrivals
                .insert(arrival.seq.to_be_bytes(), arrival.encode())?;
            self.arrival_by_origin
                .insert(index_key(origin, dated), &arrival.by_origin_value()[..])?;
            dated_any = true;
        }
        *self.arrival_clock.lock().unwrap_or_else(|p| p.into_inner()) = last;
        if dated_any {
            self.db.flush()?;
        }
        Ok(())
    }

    /// How many of `origin`'s first entries have an arrival.
    fn dated_size(&self, origin: &str) -> Result<u64, StoreError> {
        let prefix = origin_prefix(origin);
        let Some(item) = self.arrival_by_origin.scan_prefix(&prefix).next_back() else {
            return Ok(0);
        };
        let (key, value) = item?;
        if value.len() != 24 {
            return Err(StoreError::corrupt(tree::ARRIVAL_BY_ORIGIN, "short value"));
        }
        Ok(u64_at(&key[prefix.len()..]) + u64_at(&value[16..24]))
    }

    /// Appends from sequence `seq` on, in the order they were stored.
    pub fn arrivals_from(
        &self,
        seq: u64,
    ) -> impl Iterator<Item = Result<Arrival, StoreError>> + '_ {
        self.arrivals.range(seq.to_be_bytes()..).map(|item| {
            let (key, value) = item?;
            Arrival::decode(&key, &value)
        })
    }

    /// The first append this node stored, if any.
    pub fn first_arrival(&self) -> Result<Option<Arrival>, StoreError> {
        self.arrivals_from(0).next().transpose()
    }

    /// The append that brought entry `index` of `origin`'s log.
    pub fn arrival_of(&self, origin: &str, index: LogIndex) -> Result<Option<Arrival>, StoreError> {
        let prefix = origin_prefix(origin);
        let key = index_key(origin, index.get());
        let Some(item) = self
            .arrival_by_origin
            .range(prefix.clone()..=key)
            .next_back()
        else {
            return Ok(None);
        };
        let (found, value) = item?;
        if value.len() != 24 {
            return Err(StoreError::corrupt(tree::ARRIVAL_BY_ORIGIN, "short value"));
        }
        let arrival = Arrival {
            seq: u64_at(&value[..8]),
            stored_at: u64_at(&value[8..16]),
            count: u64_at(&value[16..24]),
            first: u64_at(&found[prefix.len()..]),
            origin: origin.to_owned(),
            restated: false,
        };
        Ok((index.get() < arrival.end()).then_some(arrival))
    }

    /// The arrival a harvest lists entry `index` of `origin` at: the
    /// origin's latest restatement where it covers the entry, else the
    /// append that brought it.
    pub fn listed_arrival(
        &self,
        origin: &str,
        index: LogIndex,
    ) -> Result<Option<Arrival>, StoreError> {
        match self.restatement(origin)? {
            Some(r) if (r.first..r.end).contains(&index.get()) => Ok(Some(r.arrival(origin))),
            _ => self.arrival_of(origin, index),
        }
    }

    /// `origin`'s latest restatement, if it has one.
    pub fn restatement(&self, origin: &str) -> Result<Option<Restatement>, StoreError> {
        self.restatements
            .get(origin.as_bytes())?
            .map(|value| Restatement::decode(&value))
            .transpose()
    }

    /// Notes that a listing left `origin` out, unless noted already.
    pub fn note_left_out(&self, origin: &str) -> Result<(), StoreError> {
        let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
        // Already noted: the note keeps when it first was.
        let _ = self.left_out.compare_and_swap(
            origin.as_bytes(),
            None::<&[u8]>,
            Some(&unix_now().to_be_bytes()[..]),
        )?;
        Ok(())
    }

    /// The origins a listing left out since they were last restated.
    pub fn left_out(&self) -> Result<Vec<String>, StoreError> {
        self.left_out
            .iter()
            .keys()
            .map(|key| Ok(String::from_utf8_lossy(&key?).into_owned()))
            .collect()
    }

    /// Restates every entry of `origin` stored so far, now, and clears the
    /// note that a listing left it out: harvesters that harvested while it
    /// was left out are told of its records again. `None` for an origin
    /// with no entries (nothing to tell; the note is cleared).
    pub fn restate(&self, origin: &str) -> Result<Option<Restatement>, StoreError> {
        let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
        let mut clock = self.arrival_clock.lock().unwrap_or_else(|p| p.into_inner());
        let end = self.log_size(origin)?;
        if end == 0 {
            self.left_out.remove(origin.as_bytes())?;
            return Ok(None);
        }
        let restatement = Restatement {
            seq: self.ids.next()?,
            stored_at: unix_now().max(*clock),
            first: 0,
            end,
        };
        (&self.arrivals, &self.restatements, &self.left_out)
            .transaction(|(arrivals, restatements, left_out)| {
                restatement.put(origin, arrivals, restatements)?;
                left_out.remove(origin.as_bytes())?;
                Ok(())
            })
            .map_err(|e: TransactionError<()>| match e {
                TransactionError::Abort(()) => StoreError::corrupt(
                    tree::RESTATEMENTS,
                    format!("{origin}: restatement aborted"),
                ),
                TransactionError::Storage(e) => e.into(),
            })?;
        *clock = restatement.stored_at;
        self.db.flush()?;
        Ok(Some(restatement))
    }

    /// The log index of the version of a record that entry `index` of
    /// `origin`'s log replaced, if it replaced one.
    pub fn previous_version(
        &self,
        origin: &str,
        index: LogIndex,
    ) -> Result<Option<LogIndex>, StoreError> {
        Ok(self
            .previous
            .get(index_key(origin, index.get()))?
            .map(|v| LogIndex(u64_at(&v))))
    }

    /// A key-value table for a module that keeps its own records (the trust
    /// store): `name` is one of [`tree`]'s.
    pub fn table(&self, name: &'static str) -> Result<Table, StoreError> {
        Ok(Table {
            name,
            tree: self.db.open_tree(name)?,
            db: self.db.clone(),
            gate: self.gate.clone(),
            ids: self.ids.clone(),
        })
    }

    /// Bytes the database takes on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    /// Makes every committed write durable. Call before acknowledging.
    pub fn flush(&self) -> Result<(), StoreError> {
        let flushing =
            std::mem::take(&mut *self.unflushed.lock().unwrap_or_else(|p| p.into_inner()));
        if let Err(e) = self.db.flush() {
            let mut unflushed = self.unflushed.lock().unwrap_or_else(|p| p.into_inner());
            for (origin, size) in flushing {
                let at = unflushed.entry(origin).or_default();
                *at = (*at).max(size);
            }
            return Err(e.into());
        }
        let mut durable = self.durable.lock().unwrap_or_else(|p| p.into_inner());
        for (origin, size) in flushing {
            let at = durable.entry(origin).or_default();
            *at = (*at).max(size);
        }
        Ok(())
    }

    /// A tree by name, to damage in tests.
    #[cfg(test)]
    pub(crate) fn raw_tree(&self, name: &str) -> sled::Tree {
        self.db.open_tree(name).unwrap()
    }

    /// Cuts every record state back to what a store of format 1 held (no
    /// note of the latest public version), to test what such a store does.
    #[cfg(test)]
    pub(crate) fn forget_public_notes(&self) {
        for item in self.records.iter() {
            let (key, value) = item.unwrap();
            self.records.insert(key, &value[..17]).unwrap();
        }
    }

    /// Size of `origin`'s log as of the last flush: what a crash cannot
    /// take back. At most [`Store::log_size`].
    pub fn durable_log_size(&self, origin: &str) -> u64 {
        self.durable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(origin)
            .copied()
            .unwrap_or(0)
    }

    /// The state of record `id` of `origin`, tombstones included.
    pub fn record_state(&self, origin: &str, id: &str) -> Result<Option<RecordState>, StoreError> {
        self.records
            .get(record_key(origin, id))?
            .map(|bytes| decode_state(&bytes))
            .transpose()
    }

    /// The id of the record of `origin` whose subject digest is `subject`,
    /// if one was ever held here from another origin.
    pub fn record_by_subject(
        &self,
        origin: &str,
        subject: &Hash,
    ) -> Result<Option<String>, StoreError> {
        self.subjects
            .get(subject_key(origin, subject))?
            .map(|id| {
                String::from_utf8(id.to_vec())
                    .map_err(|_| StoreError::corrupt(tree::SUBJECTS, "an id is not UTF-8"))
            })
            .transpose()
    }

    /// Fills the subject digests of records of origins other than `own`
    /// held before the store kept them; a no-op once done.
    pub fn index_subjects(&self, own: &str) -> Result<(), StoreError> {
        const DONE: &[u8] = b"subjects_indexed";
        let meta = self.db.open_tree(tree::META)?;
        if meta.get(DONE)?.is_some() {
            return Ok(());
        }
        let own = origin_prefix(own);
        let gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
        for item in self.records.iter() {
            let (key, _) = item?;
            if key.starts_with(&own) {
                continue;
            }
            let Some(split) = key.iter().position(|&b| b == 0) else {
                return Err(StoreError::corrupt(tree::RECORDS, "a key without origin"));
            };
            let (origin, id) = (&key[..split], &key[split + 1..]);
            let (Ok(origin), Ok(id)) = (std::str::from_utf8(origin), std::str::from_utf8(id))
            else {
                return Err(StoreError::corrupt(tree::RECORDS, "a key is not UTF-8"));
            };
            let subject = crate::log::subject_digest(origin, id);
            self.subjects
                .insert(subject_key(origin, &subject), id.as_bytes())?;
        }
        meta.insert(DONE, &b"1"[..])?;
        drop(gate);
        self.flush()
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
            out.push((id, decode_state(&value)?));
        }
        Ok(out)
    }

    /// The records of `origin` whose state is a withdrawal by one of its
    /// audiences, or by a revocation that set an audience aside (key sets
    /// withdraw nothing else), each with the version withdrawn (a version
    /// this node may no longer see): what a later, wider audience can bring
    /// back.
    pub fn withdrawn_by_audience(&self, origin: &str) -> Result<HashMap<String, u64>, StoreError> {
        // With no audience, nothing was ever withdrawn by one or set aside.
        let mut positions: HashSet<u64> = self.audience_positions(origin)?.into_iter().collect();
        let mut out = HashMap::new();
        if positions.is_empty() {
            return Ok(out);
        }
        positions.extend(self.key_set_positions(origin)?);
        let prefix = origin_prefix(origin);
        for item in self.records.scan_prefix(&prefix) {
            let (key, value) = item?;
            let state = decode_state(&value)?;
            if state.deleted && positions.contains(&state.log_index.get()) {
                let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                out.insert(id, state.version);
            }
        }
        Ok(out)
    }

    /// Writes into record states of `origin` the notes of their latest
    /// public version that the log gives (`fsck --repair`): each
    /// `(id, held, note)` where the state is still `held`. Returns how many
    /// were written.
    pub fn renote(
        &self,
        origin: &str,
        notes: &[(String, RecordState, LastPublic)],
    ) -> Result<u64, StoreError> {
        let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
        let mut written = 0;
        for (id, held, note) in notes {
            let noted = RecordState {
                last_public: *note,
                ..*held
            };
            let swapped = self.records.compare_and_swap(
                record_key(origin, id),
                Some(&*encode_state(held)),
                Some(&*encode_state(&noted)),
            )?;
            written += u64::from(swapped.is_ok());
        }
        self.records.flush()?;
        Ok(written)
    }

    /// Number of live (not deleted) records of `origin`.
    pub fn count_live(&self, origin: &str) -> Result<u64, StoreError> {
        Ok(self
            .live
            .get(origin.as_bytes())?
            .map_or(0, |count| u64_at(&count)))
    }

    /// Counts `origin`'s live records again from their states (`fsck
    /// --repair`), with writes held; returns the count.
    pub fn recount_live(&self, origin: &str) -> Result<u64, StoreError> {
        let _gate = self.gate.write().unwrap_or_else(|p| p.into_inner());
        let mut count = 0u64;
        for item in self.records.scan_prefix(origin_prefix(origin)) {
            let (_, value) = item?;
            count += u64::from(!decode_state(&value)?.deleted);
        }
        self.live
            .insert(origin.as_bytes(), &count.to_be_bytes()[..])?;
        self.live.flush()?;
        Ok(count)
    }

    /// Entry `index` of `origin`'s log.
    pub fn entry(&self, origin: &str, index: LogIndex) -> Result<Option<StoredEntry>, StoreError> {
        let index = index.get();
        let Some((first, run)) = self.run_containing(&self.log, &origin_prefix(origin), index)?
        else {
            return Ok(None);
        };
        run_item(&run, (index - first) as usize)?
            .map(|bytes| decode_entry(origin, index, bytes))
            .transpose()
    }

    /// Entries of `origin` from `from` on, in order, at most `limit`.
    pub fn entries(
        &self,
        origin: &str,
        from: LogIndex,
        limit: usize,
    ) -> Result<Vec<(LogIndex, StoredEntry)>, StoreError> {
        self.entries_within(origin, from, limit, usize::MAX)
    }

    /// [`Store::entries`], stopping once the entries read hold `max_bytes`
    /// (one at least), so that a batch of large entries is bounded in
    /// memory as well as in count.
    pub fn entries_within(
        &self,
        origin: &str,
        from: LogIndex,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<(LogIndex, StoredEntry)>, StoreError> {
        let from = from.get();
        let mut bytes_read = 0usize;
        let prefix = origin_prefix(origin);
        let mut out = Vec::with_capacity(limit.min(4096));
        let start = match self.run_containing(&self.log, &prefix, from)? {
            Some((first, _)) => index_key(origin, first),
            None => index_key(origin, from),
        };
        'runs: for item in self.log.range(start..) {
            let (key, run) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            let first = u64_at(&key[prefix.len()..]);
            for (offset, bytes) in run_items(&run)?.into_iter().enumerate() {
                let index = first + offset as u64;
                if index < from {
                    continue;
                }
                if out.len() >= limit || (!out.is_empty() && bytes_read >= max_bytes) {
                    break 'runs;
                }
                bytes_read = bytes_read.saturating_add(bytes.len());
                out.push((LogIndex(index), decode_entry(origin, index, bytes)?));
            }
        }
        Ok(out)
    }

    /// The run of `tree` under `prefix` whose first index is the largest at
    /// or below `index`, if `index` falls inside it.
    fn run_containing(
        &self,
        tree: &sled::Tree,
        prefix: &[u8],
        index: u64,
    ) -> Result<Option<(u64, sled::IVec)>, StoreError> {
        let mut key = prefix.to_vec();
        key.extend_from_slice(&index.to_be_bytes());
        let Some(item) = tree.range(prefix.to_vec()..=key).next_back() else {
            return Ok(None);
        };
        let (found, run) = item?;
        let first = u64_at(&found[prefix.len()..]);
        let count = run_len(&run)? as u64;
        Ok((index < first + count).then_some((first, run)))
    }

    /// Log positions of `origin`'s key-set entries, in order: entry 0 (the
    /// first set) when the log has entries, and every later one.
    pub fn key_set_positions(&self, origin: &str) -> Result<Vec<u64>, StoreError> {
        let mut positions = Vec::new();
        if self.log_size(origin)? > 0 {
            positions.push(0);
        }
        let prefix = origin_prefix(origin);
        for item in self.keysets.scan_prefix(&prefix) {
            let (key, _) = item?;
            let index = u64_at(&key[prefix.len()..]);
            if index > 0 {
                positions.push(index);
            }
        }
        Ok(positions)
    }

    /// Log positions of `origin`'s audience entries, latest first.
    pub fn audience_positions(&self, origin: &str) -> Result<Vec<u64>, StoreError> {
        let prefix = origin_prefix(origin);
        self.audiences
            .scan_prefix(&prefix)
            .rev()
            .map(|item| Ok(u64_at(&item?.0[prefix.len()..])))
            .collect()
    }

    /// Log position of `origin`'s latest audience entry, if it published one.
    pub fn latest_audience_position(&self, origin: &str) -> Result<Option<u64>, StoreError> {
        let prefix = origin_prefix(origin);
        Ok(match self.audiences.scan_prefix(&prefix).next_back() {
            Some(item) => Some(u64_at(&item?.0[prefix.len()..])),
            None => None,
        })
    }

    /// The position of the audience of `origin` that asks for a refill, if
    /// one is due.
    pub fn refill_due(&self, origin: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.refills.get(origin.as_bytes())?.map(|v| u64_at(&v)))
    }

    /// Marks a refill of `origin` due, up to the audience at `at`.
    pub fn mark_refill(&self, origin: &str, at: u64) -> Result<(), StoreError> {
        self.refills
            .insert(origin.as_bytes(), &at.to_be_bytes()[..])?;
        Ok(())
    }

    /// Clears the refill of `origin` marked at `at` (not a later one).
    pub fn refill_done(&self, origin: &str, at: u64) -> Result<(), StoreError> {
        let _ = self.refills.compare_and_swap(
            origin.as_bytes(),
            Some(&at.to_be_bytes()[..]),
            None as Option<&[u8]>,
        )?;
        Ok(())
    }

    /// The records of `origin` a refill brought back that the index may not
    /// hold yet: id and the log position of the version restored.
    pub fn refilled(&self, origin: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let prefix = origin_prefix(origin);
        let mut noted = Vec::new();
        for item in self.refilled.scan_prefix(&prefix) {
            let (key, at) = item?;
            let id = std::str::from_utf8(&key[prefix.len()..])
                .map_err(|e| StoreError::corrupt(tree::REFILLED, format!("{origin}: {e}")))?;
            noted.push((id.to_owned(), u64_at(&at)));
        }
        Ok(noted)
    }

    /// The origins with records a refill brought back that the index may
    /// not hold yet ([`Store::refilled`]).
    /// Every catch-up of the index asks, so it reads one key per origin
    /// (notes of an origin no longer held may stay, many of them), not
    /// every note.
    pub fn refilled_origins(&self) -> Result<Vec<String>, StoreError> {
        let mut origins: Vec<String> = Vec::new();
        let mut from: Vec<u8> = Vec::new();
        while let Some(item) = self.refilled.range(from.as_slice()..).keys().next() {
            let key = item?;
            let end = key.iter().position(|&b| b == 0).unwrap_or(key.len());
            origins.push(String::from_utf8_lossy(&key[..end]).into_owned());
            // Past every `origin ␀ …` key of this origin.
            from = key[..end].to_vec();
            from.push(1);
        }
        Ok(origins)
    }

    /// Forgets the notes of [`Store::refilled`] once the index holds what
    /// they name; a note written again since (a later refill) stays.
    pub fn refilled_indexed(
        &self,
        origin: &str,
        noted: &[(String, u64)],
    ) -> Result<(), StoreError> {
        for (id, at) in noted {
            let _ = self.refilled.compare_and_swap(
                record_key(origin, id),
                Some(&at.to_be_bytes()[..]),
                None as Option<&[u8]>,
            )?;
        }
        Ok(())
    }

    /// Puts the whole entries of a refill in place of the digests held at
    /// their positions (`replaced`: index, stored entry bytes), and the
    /// records they bring back (`records`, with their subject digests), in
    /// one transaction, noting each record brought back for the index
    /// ([`Store::refilled`]). The leaves do not change: each entry hashes to the
    /// digests it replaces (the caller checked), so the log and its tree
    /// stay as they are; the subject digests go in just before
    /// ([`Store::put_subjects`]). Call under the origin's sync lock.
    pub fn refill(
        &self,
        origin: &str,
        replaced: &[(u64, Vec<u8>)],
        restored: &[(String, RecordState, Hash)],
    ) -> Result<(), StoreError> {
        let prefix = origin_prefix(origin);
        // Each run that holds a replaced entry, rewritten whole.
        let mut runs: std::collections::BTreeMap<u64, Vec<Vec<u8>>> = Default::default();
        for (index, bytes) in replaced {
            let Some((first, run)) = self.run_containing(&self.log, &prefix, *index)? else {
                return Err(StoreError::Corrupt {
                    tree: tree::LOG,
                    detail: format!("{origin} entry {index}: not held"),
                });
            };
            let items = match runs.entry(first) {
                std::collections::btree_map::Entry::Occupied(items) => items.into_mut(),
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(run_items(&run)?.into_iter().map(<[u8]>::to_vec).collect())
                }
            };
            items[(index - first) as usize] = bytes.clone();
        }
        let packed: Vec<(Vec<u8>, Vec<u8>)> = runs
            .into_iter()
            .map(|(first, items)| {
                (
                    index_key(origin, first),
                    pack_run(items.iter().map(Vec::as_slice)),
                )
            })
            .collect();
        let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
        self.put_subjects(
            origin,
            restored
                .iter()
                .map(|(id, _, subject)| (subject, id.as_str())),
        )?;
        (&self.log, &self.records, &self.live, &self.refilled)
            .transaction(|(log, records, live, refilled)| {
                for (key, run) in &packed {
                    log.insert(key.as_slice(), run.as_slice())?;
                }
                let mut gained: i64 = 0;
                for (id, state, _) in restored {
                    gained += i64::from(!state.deleted);
                    if !state.deleted {
                        refilled.insert(
                            record_key(origin, id),
                            &state.log_index.get().to_be_bytes()[..],
                        )?;
                    }
                    if let Some(old) =
                        records.insert(record_key(origin, id), &encode_state(state)[..])?
                    {
                        gained -= i64::from(decode_state(&old).is_ok_and(|old| !old.deleted));
                    }
                }
                if gained != 0 {
                    let count = live.get(origin.as_bytes())?.map_or(0, |c| u64_at(&c));
                    let count = count.saturating_add_signed(gained);
                    live.insert(origin.as_bytes(), &count.to_be_bytes()[..])?;
                }
                Ok(())
            })
            .map_err(|e: TransactionError<()>| match e {
                TransactionError::Abort(()) => StoreError::Corrupt {
                    tree: tree::LOG,
                    detail: format!("{origin}: refill aborted"),
                },
                TransactionError::Storage(e) => e.into(),
            })?;
        Ok(())
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
        let mut prefix = origin_prefix(origin);
        prefix.push(level as u8);
        let Some((first, run)) = self.run_containing(&self.merkle, &prefix, index)? else {
            return Ok(None);
        };
        let hash = run_item(&run, (index - first) as usize)?.unwrap_or_default();
        hash.try_into()
            .map(Some)
            .map_err(|_| StoreError::corrupt(tree::MERKLE, format!("node of {} bytes", hash.len())))
    }

    /// The stored Merkle nodes of `origin`'s log.
    pub fn merkle_nodes<'a>(&'a self, origin: &'a str) -> OriginNodes<'a> {
        OriginNodes {
            store: self,
            origin,
        }
    }

    /// Starts an append at the current end of `origin`'s log.
    pub fn appender<'a>(
        &'a self,
        origin: &'a str,
    ) -> Result<Appender<OriginNodes<'a>>, StoreError> {
        let size = self.log_size(origin)?;
        Ok(Appender::begin(self.merkle_nodes(origin), origin, size))
    }

    /// The tree head of the first `size` entries of `origin`'s log.
    pub fn log_root(&self, origin: &str, size: u64) -> Result<Hash, StoreError> {
        merkle::root(&self.merkle_nodes(origin), size).map_err(StoreError::from)
    }

    /// The RFC 9162 consistency proof between sizes `old` and `new` of
    /// `origin`'s log.
    pub fn consistency_proof(
        &self,
        origin: &str,
        old: u64,
        new: u64,
    ) -> Result<Vec<Hash>, StoreError> {
        merkle::consistency_proof(&self.merkle_nodes(origin), old, new).map_err(StoreError::from)
    }

    /// The latest checkpoint envelope of `origin`.
    pub fn checkpoint(&self, origin: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.checkpoints.get(origin.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Stores `origin`'s latest checkpoint envelope.
    pub fn put_checkpoint(&self, origin: &str, envelope: &[u8]) -> Result<(), StoreError> {
        let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
        self.checkpoints.insert(origin.as_bytes(), envelope)?;
        Ok(())
    }

    /// Whether `origin` is frozen after evidence of equivocation.
    pub fn is_frozen(&self, origin: &str) -> Result<bool, StoreError> {
        Ok(self.frozen.contains_key(origin.as_bytes())?)
    }

    /// The reason and evidence kept for a frozen origin: `reason ␀ evidence`.
    pub fn frozen_evidence(&self, origin: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.frozen.get(origin.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Why `origin` was frozen (the `reason` of [`Store::freeze`]); `None`
    /// when it is not frozen.
    pub fn frozen_reason(&self, origin: &str) -> Result<Option<String>, StoreError> {
        Ok(self.frozen.get(origin.as_bytes())?.map(|value| {
            let reason = value.split(|b| *b == 0).next().unwrap_or_default();
            String::from_utf8_lossy(reason).into_owned()
        }))
    }

    /// Freezes `origin`, keeping `reason` and the conflicting checkpoint as
    /// evidence; durable when it returns.
    pub fn freeze(&self, origin: &str, reason: &str, evidence: &[u8]) -> Result<(), StoreError> {
        let mut value = reason.as_bytes().to_vec();
        value.push(0);
        value.extend_from_slice(evidence);
        {
            let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
            self.frozen.insert(origin.as_bytes(), value)?;
        }
        self.flush()
    }

    /// Freezes `origin` as [`Store::freeze`] does, keeping `evidence` (the
    /// offline-verifiable file) beside it; both durable when it returns.
    pub fn freeze_with_evidence(
        &self,
        origin: &str,
        reason: &str,
        conflicting: &[u8],
        evidence: &[u8],
    ) -> Result<(), StoreError> {
        {
            let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
            self.evidence.insert(origin.as_bytes(), evidence)?;
        }
        self.freeze(origin, reason, conflicting)
    }

    /// The evidence file kept for a frozen origin, if the conflict it was
    /// frozen for could be proven offline.
    pub fn evidence(&self, origin: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.evidence.get(origin.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Writes every tree of the database to `out` as one dump, holding off
    /// every write while it reads, so the dump is the database at one point
    /// between writes. `held` runs first, under the same hold (the caller
    /// reads what must agree with the dump). Readers are not held up.
    pub fn dump<T>(
        &self,
        out: &mut dyn Write,
        held: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<(DumpSummary, T), DumpError> {
        let _gate = self.gate.write().unwrap_or_else(|p| p.into_inner());
        let value = held(self)?;
        let mut summary = DumpSummary::default();
        out.write_all(DUMP_MAGIC)?;
        let mut names = self.db.tree_names();
        names.sort();
        for name in names {
            let tree = self.db.open_tree(&name).map_err(StoreError::from)?;
            out.write_all(&[DUMP_TREE])?;
            write_item(out, &name)?;
            summary.trees += 1;
            for item in tree.iter() {
                let (key, value) = item.map_err(StoreError::from)?;
                out.write_all(&[DUMP_PAIR])?;
                write_item(out, &key)?;
                write_item(out, &value)?;
                summary.pairs += 1;
            }
        }
        out.write_all(&[DUMP_END])?;
        out.write_all(&summary.trees.to_be_bytes())?;
        out.write_all(&summary.pairs.to_be_bytes())?;
        summary.origins = self.origins()?.into_iter().collect();
        Ok((summary, value))
    }

    /// Makes a new store in `path` (which must hold none) from a dump that
    /// [`Store::dump`] wrote, durably; refuses a dump cut short or damaged.
    pub fn load_dump(path: &Path, input: &mut dyn Read) -> Result<DumpSummary, DumpError> {
        if path.exists() && std::fs::read_dir(path)?.next().is_some() {
            return Err(DumpError::NotEmpty(path.display().to_string()));
        }
        let mut magic = vec![0u8; DUMP_MAGIC.len()];
        read_exact(input, &mut magic, "the header")?;
        if magic != DUMP_MAGIC {
            return Err(DumpError::Malformed(
                "it does not start with the header of a version 1 dump".into(),
            ));
        }
        let db = open_db(path, DEFAULT_CACHE_BYTES)?;
        let mut summary = DumpSummary::default();
        let mut tree: Option<sled::Tree> = None;
        let mut batch = sled::Batch::default();
        let mut pending = 0usize;
        loop {
            let mut tag = [0u8; 1];
            read_exact(input, &mut tag, "the next item")?;
            match tag[0] {
                DUMP_TREE => {
                    if let Some(tree) = &tree {
                        tree.apply_batch(std::mem::take(&mut batch))
                            .map_err(StoreError::from)?;
                        pending = 0;
                    }
                    let name = read_item(input)?;
                    tree = Some(db.open_tree(name).map_err(StoreError::from)?);
                    summary.trees += 1;
                }
                DUMP_PAIR => {
                    let Some(tree) = &tree else {
                        return Err(DumpError::Malformed("a pair before any tree".into()));
                    };
                    let key = read_item(input)?;
                    let value = read_item(input)?;
                    batch.insert(key, value);
                    summary.pairs += 1;
                    pending += 1;
                    if pending == 10_000 {
                        tree.apply_batch(std::mem::take(&mut batch))
                            .map_err(StoreError::from)?;
                        pending = 0;
                    }
                }
                DUMP_END => break,
                other => {
                    return Err(DumpError::Malformed(format!(
                        "unknown item tag {other} after {} pairs",
                        summary.pairs
                    )))
                }
            }
        }
        if let Some(tree) = &tree {
            tree.apply_batch(batch).map_err(StoreError::from)?;
        }
        let mut counts = [0u8; 16];
        read_exact(input, &mut counts, "the closing counts")?;
        let (trees, pairs) = (u64_at(&counts[..8]), u64_at(&counts[8..]));
        if (trees, pairs) != (summary.trees, summary.pairs) {
            return Err(DumpError::Malformed(format!(
                "it declares {trees} trees and {pairs} pairs but holds {} and {}",
                summary.trees, summary.pairs
            )));
        }
        if input.read(&mut [0u8; 1])? != 0 {
            return Err(DumpError::Malformed("bytes after its end".into()));
        }
        db.flush().map_err(StoreError::from)?;
        for item in db
            .open_tree(tree::LOG_SIZES)
            .map_err(StoreError::from)?
            .iter()
        {
            let (key, value) = item.map_err(StoreError::from)?;
            summary
                .origins
                .insert(String::from_utf8_lossy(&key).into_owned(), u64_at(&value));
        }
        Ok(summary)
    }

    /// Notes the subject digest of each record id of `origin`, ahead of
    /// the transaction that stores the records, in a batch of its own: a
    /// sled transaction reads every key it writes, under a lock that stops
    /// every other read of the store, and these keys are random. A digest
    /// is a hash of its origin and id, so one that lands while its records
    /// do not (a crash between the two, a stale append) is still true of
    /// that id, and names a record the store does not hold: a later
    /// withdrawal finds nothing to withdraw. Call under the gate.
    fn put_subjects<'a>(
        &self,
        origin: &str,
        subjects: impl Iterator<Item = (&'a Hash, &'a str)>,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        let mut any = false;
        for (subject, id) in subjects {
            batch.insert(subject_key(origin, subject), id.as_bytes());
            any = true;
        }
        if any {
            self.subjects.apply_batch(batch)?;
        }
        Ok(())
    }

    /// Commits one log append in a single transaction: entries, record
    /// states, Merkle nodes and the new log size land together or not at
    /// all. The subject digests it notes go in just before
    /// ([`Store::put_subjects`]).
    pub fn commit(&self, append: &LogAppend) -> Result<(), StoreError> {
        let origin = append.origin.as_str();
        let entry_runs = pack_entries(&append.entries);
        let node_runs = pack_nodes(&append.nodes);
        let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
        self.put_subjects(
            origin,
            append
                .subjects
                .iter()
                .map(|(subject, id)| (subject, id.as_str())),
        )?;
        // Appends commit one at a time in arrival order: a listing by
        // arrival never passes a sequence number whose append lands later.
        let mut clock = self.arrival_clock.lock().unwrap_or_else(|p| p.into_inner());
        let arrival = (!append.entries.is_empty())
            .then(|| -> Result<Arrival, StoreError> {
                Ok(Arrival {
                    seq: self.ids.next()?,
                    stored_at: unix_now().max(*clock),
                    origin: origin.to_owned(),
                    first: append.base_size,
                    count: append.entries.len() as u64,
                    restated: false,
                })
            })
            .transpose()?;
        // A revocation restates what it may set aside, with the append,
        // and from no later than the origin's restatement before
        // (restatements are written only with the arrival clock held).
        let restatement = match (&arrival, append.restate_from) {
            (Some(arrival), Some(from)) => {
                let held = self.restatement(origin)?.map_or(from, |held| held.first);
                Some(Restatement {
                    seq: self.ids.next()?,
                    stored_at: arrival.stored_at,
                    first: from.min(held),
                    end: append.new_size(),
                })
            }
            _ => None,
        };
        let result = (
            &self.records,
            &self.log,
            &self.merkle,
            &self.heads,
            &self.arrivals,
            &self.arrival_by_origin,
            &self.previous,
            &self.live,
            &self.keysets,
            &self.audiences,
            &self.restatements,
        )
            .transaction(
                |(
                    records,
                    log,
                    merkle,
                    heads,
                    arrivals,
                    by_origin,
                    previous,
                    live,
                    keysets,
                    audiences,
                    restatements,
                )| {
                    let found = heads
                        .get(origin.as_bytes())?
                        .map(|v| u64_at(&v))
                        .unwrap_or(0);
                    if found != append.base_size {
                        return Err(ConflictableTransactionError::Abort(found));
                    }
                    for (first, run) in &entry_runs {
                        log.insert(index_key(origin, *first), run.as_slice())?;
                    }
                    // Live records gained (+1) and lost (-1) by this append.
                    let mut gained: i64 = 0;
                    for (id, state) in &append.records {
                        let key = record_key(origin, id);
                        gained += i64::from(!state.deleted);
                        if let Some(old) = records.insert(key, &encode_state(state)[..])? {
                            let old = decode_state(&old).ok();
                            gained -= i64::from(old.is_some_and(|old| !old.deleted));
                            if let Some(old) = old.filter(|old| old.log_index != state.log_index) {
                                previous.insert(
                                    index_key(origin, state.log_index.get()),
                                    &old.log_index.get().to_be_bytes()[..],
                                )?;
                            }
                        }
                    }
                    if let Some(arrival) = &arrival {
                        arrivals.insert(arrival.seq.to_be_bytes().to_vec(), arrival.encode())?;
                        by_origin.insert(
                            index_key(origin, arrival.first),
                            &arrival.by_origin_value()[..],
                        )?;
                    }
                    if let Some(restatement) = &restatement {
                        restatement.put(origin, arrivals, restatements)?;
                    }
                    for ((level, first), run) in &node_runs {
                        merkle.insert(node_key(origin, *level, *first), run.as_slice())?;
                    }
                    // Withdrawn by an audience: no entry of their own, so
                    // no previous version is noted for them.
                    for (id, state) in &append.withdrawn {
                        let key = record_key(origin, id);
                        if let Some(old) = records.insert(key, &encode_state(state)[..])? {
                            gained -= i64::from(decode_state(&old).is_ok_and(|old| !old.deleted));
                        }
                    }
                    if gained != 0 {
                        let count = live.get(origin.as_bytes())?.map_or(0, |c| u64_at(&c));
                        let count = count.saturating_add_signed(gained);
                        live.insert(origin.as_bytes(), &count.to_be_bytes()[..])?;
                    }
                    for index in &append.key_sets {
                        keysets.insert(index_key(origin, *index), &[][..])?;
                    }
                    for index in &append.audiences {
                        audiences.insert(index_key(origin, *index), &[][..])?;
                    }
                    heads.insert(origin.as_bytes(), &append.new_size().to_be_bytes()[..])?;
                    Ok(())
                },
            );
        match result {
            Ok(()) => {
                if let Some(arrival) = &arrival {
                    *clock = arrival.stored_at;
                }
                drop(clock);
                self.unflushed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(origin.to_owned(), append.new_size());
                Ok(())
            }
            Err(TransactionError::Abort(found)) => Err(StoreError::Conflict {
                origin: origin.to_owned(),
                expected: append.base_size,
                found,
            }),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }
}

/// Brings sled's snapshot of its page table in `path` up to the end of
/// its log, so that the next open reads only what is written after this
/// one. sled 0.34 writes that snapshot only when it opens a database, after
/// replaying everything its log holds past the last one: every open pays
/// for all writes since the open before (15 s after 10,000,000 imported
/// records, 2 cores). A node calls this at a clean stop, once it has let go
/// of its store, so that the cost falls on the stop, as a database's
/// shutdown checkpoint does. It takes as long as the replay.
///
/// Fails, changing nothing, while anything else holds the store open.
pub fn snapshot_page_table(path: &Path) -> Result<(), StoreError> {
    if !path.join("conf").exists() {
        return Err(StoreError::Db(sled::Error::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no store in {}", path.display()),
        ))));
    }
    // A small cache: the open reads the log, not the trees.
    let db = open_db(path, 1 << 20)?;
    // The snapshot is on disk once the open returns; this flush only
    // closes the database as every stop does.
    db.flush()?;
    Ok(())
}

/// Opens sled in `path`. sled lets go of its file lock only some time after
/// a database is dropped (its threads hold it until they stop), so opening
/// again what this process just closed (a loaded dump, a reopen) waits up
/// to [`LOCK_RELEASE`] for that; a lock another process holds is still an
/// error, after that wait.
fn open_db(path: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + LOCK_RELEASE;
    loop {
        // Before each attempt: while the lock is held it is left alone.
        remove_unfinished_snapshots(path)?;
        match sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open()
        {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            opened => return Ok(opened?),
        }
    }
}

/// sled 0.34 writes a snapshot into `snap.<position>.generating` and
/// renames it into place once it is synced; a process killed before the
/// rename (a stop's snapshot cut short by the grace period, a start's by a
/// crash) leaves the file behind, and the next open takes it for the newest
/// snapshot, fails its checksum and refuses the store as corrupt (sled issue
/// 1527). sled reads a snapshot only once it is renamed, so removing such
/// a file loses nothing the open does not write again. It is removed before
/// each attempt to open, while no process holds the store's lock (sled's
/// `flock` on its `db` file); a store that someone holds is left alone,
/// and the open then waits or fails on the lock as before.
fn remove_unfinished_snapshots(path: &Path) -> Result<(), StoreError> {
    use std::os::fd::AsRawFd;
    let Ok(entries) = std::fs::read_dir(path) else {
        return Ok(()); // no store yet: sled makes it
    };
    let unfinished: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|file| {
            file.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("snap.") && name.ends_with(".generating"))
        })
        .collect();
    if unfinished.is_empty() {
        return Ok(());
    }
    let Ok(db) = std::fs::File::open(path.join("db")) else {
        return Ok(());
    };
    // SAFETY: `flock` on a descriptor this function owns; the lock goes
    // with the descriptor when `db` is dropped.
    if unsafe { libc::flock(db.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Ok(());
    }
    for file in unfinished {
        tracing::warn!(file = %file.display(), "removing a store snapshot whose writing was cut short");
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::Db(sled::Error::Io(e))),
        }
    }
    Ok(())
}

/// Mebibytes of decoded pages a store keeps in memory unless its node's
/// configuration says otherwise (`store.cache_mib`).
pub const DEFAULT_CACHE_MIB: u64 = 64;
const DEFAULT_CACHE_BYTES: u64 = DEFAULT_CACHE_MIB << 20;

/// How long [`open_db`] waits for this process's sled threads to let go
/// of a store's lock.
const LOCK_RELEASE: std::time::Duration = std::time::Duration::from_secs(5);

/// Most items packed into one stored run.
const RUN_MAX: usize = 256;

/// A run is closed once its items hold this many bytes. sled keeps up to
/// 17 values in a leaf and writes a leaf over a quarter of its 512 KiB
/// segment as a blob, which its cache counts by the pointer's size and so
/// never pages out: a node reading its whole log (the indexer catching up)
/// kept every run it read in memory. Runs this small keep leaves inline.
const RUN_BYTES: usize = 4 * 1024;

/// Whether a run of `items` holding `bytes` takes no more: it has
/// [`RUN_MAX`] items or holds [`RUN_BYTES`].
fn run_full(items: usize, bytes: usize) -> bool {
    items == RUN_MAX || bytes >= RUN_BYTES
}

/// Where runs of `lens` (item sizes in bytes) break ([`run_full`]).
fn run_lengths(lens: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut runs = Vec::new();
    let (mut items, mut bytes) = (0, 0);
    for len in lens {
        items += 1;
        bytes += len;
        if run_full(items, bytes) {
            runs.push(items);
            (items, bytes) = (0, 0);
        }
    }
    if items > 0 {
        runs.push(items);
    }
    runs
}

/// Packs consecutive items into one run ([`run_full`] says how many): one
/// sled write per run instead of one per entry (sled writes, not hashing or
/// signing, bound the append rate). Layout: item count (u32), then each
/// item's end offset (u32), then the items.
fn pack_run<'a>(items: impl ExactSizeIterator<Item = &'a [u8]> + Clone) -> Vec<u8> {
    let count = items.len();
    let total: usize = items.clone().map(<[u8]>::len).sum();
    let mut out = Vec::with_capacity(4 + 4 * count + total);
    out.extend_from_slice(&(count as u32).to_be_bytes());
    let mut end = 0u32;
    for item in items.clone() {
        end += item.len() as u32;
        out.extend_from_slice(&end.to_be_bytes());
    }
    for item in items {
        out.extend_from_slice(item);
    }
    out
}

fn corrupt_run(detail: &str) -> StoreError {
    StoreError::corrupt(tree::LOG, detail)
}

fn decode_entry(origin: &str, index: u64, bytes: &[u8]) -> Result<StoredEntry, StoreError> {
    StoredEntry::decode(bytes)
        .map_err(|e| StoreError::corrupt(tree::LOG, format!("{origin} entry {index}: {e}")))
}

impl From<TreeError<StoreError>> for StoreError {
    /// A Merkle computation over stored nodes failed: a read error, or nodes
    /// missing for a size the log claims (damage).
    fn from(e: TreeError<StoreError>) -> Self {
        match e {
            TreeError::Store(e) => e,
            other => StoreError::corrupt(tree::MERKLE, other.to_string()),
        }
    }
}

/// The stored Merkle nodes of one origin's log.
#[derive(Clone, Copy)]
pub struct OriginNodes<'a> {
    store: &'a Store,
    origin: &'a str,
}

impl NodeStore for OriginNodes<'_> {
    type Error = StoreError;

    fn node(&self, level: u32, index: u64) -> Result<Option<Hash>, StoreError> {
        self.store.merkle_node(self.origin, level, index)
    }
}

/// One named table of bytes, for a module that keeps its own records.
#[derive(Clone)]
pub struct Table {
    name: &'static str,
    tree: sled::Tree,
    db: sled::Db,
    gate: Arc<RwLock<()>>,
    ids: Arc<IdGen>,
}

impl Table {
    /// The table's tree name, for messages.
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    /// Writes `value` under `key` only if the key still holds `expected`
    /// (`None`: absent). Returns whether it did.
    pub fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        value: Vec<u8>,
    ) -> Result<bool, StoreError> {
        let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
        Ok(self
            .tree
            .compare_and_swap(key, expected, Some(value))?
            .is_ok())
    }

    /// Every `(key, value)` in key order.
    pub fn iter(&self) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + '_ {
        self.tree.iter().map(|item| {
            item.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(StoreError::from)
        })
    }

    /// Removes `key` and its value (absent: nothing to do).
    pub fn remove(&self, key: &[u8]) -> Result<(), StoreError> {
        let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
        self.tree.remove(key)?;
        Ok(())
    }

    /// Appends `value` under a new key larger than every key before it.
    pub fn push(&self, value: Vec<u8>) -> Result<(), StoreError> {
        let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
        let seq = self.ids.next()?;
        self.tree.insert(seq.to_be_bytes(), value)?;
        Ok(())
    }

    /// Makes every write durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

fn run_len(run: &[u8]) -> Result<usize, StoreError> {
    let count = run
        .get(..4)
        .ok_or_else(|| corrupt_run("run without a header"))?;
    Ok(u32::from_be_bytes([count[0], count[1], count[2], count[3]]) as usize)
}

/// Item `n` of a run, if it has that many.
fn run_item(run: &[u8], n: usize) -> Result<Option<&[u8]>, StoreError> {
    let count = run_len(run)?;
    if n >= count {
        return Ok(None);
    }
    let end_at = |i: usize| -> Result<usize, StoreError> {
        let at = 4 + 4 * i;
        let bytes = run
            .get(at..at + 4)
            .ok_or_else(|| corrupt_run("short offset table"))?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
    };
    let data = 4 + 4 * count;
    let start = if n == 0 { 0 } else { end_at(n - 1)? };
    let end = end_at(n)?;
    run.get(data + start..data + end)
        .map(Some)
        .ok_or_else(|| corrupt_run("item past the end of its run"))
}

/// Every item of a run, in order.
fn run_items(run: &[u8]) -> Result<Vec<&[u8]>, StoreError> {
    (0..run_len(run)?)
        .map(|n| run_item(run, n)?.ok_or_else(|| corrupt_run("missing item")))
        .collect()
}

/// Entry runs of an append: `(first index, packed run)`.
fn pack_entries(entries: &[(u64, Vec<u8>)]) -> Vec<(u64, Vec<u8>)> {
    let mut rest = entries;
    run_lengths(entries.iter().map(|(_, e)| e.len()))
        .into_iter()
        .map(|len| {
            let (chunk, after) = rest.split_at(len);
            rest = after;
            (
                chunk[0].0,
                pack_run(chunk.iter().map(|(_, e)| e.as_slice())),
            )
        })
        .collect()
}

/// Merkle node runs of an append: consecutive indices of one level packed
/// together, `((level, first index), packed run)`.
fn pack_nodes(nodes: &[((u32, u64), Hash)]) -> Vec<((u32, u64), Vec<u8>)> {
    let mut by_level: std::collections::BTreeMap<u32, Vec<(u64, Hash)>> = Default::default();
    for ((level, index), hash) in nodes {
        by_level.entry(*level).or_default().push((*index, *hash));
    }
    let mut runs = Vec::new();
    for (level, mut nodes) in by_level {
        nodes.sort_by_key(|(index, _)| *index);
        let mut start = 0;
        for end in 1..=nodes.len() {
            let breaks = end == nodes.len()
                || nodes[end].0 != nodes[end - 1].0 + 1
                || run_full(end - start, (end - start) * std::mem::size_of::<Hash>());
            if breaks {
                let run = &nodes[start..end];
                runs.push((
                    (level, run[0].0),
                    pack_run(run.iter().map(|(_, h)| h.as_slice())),
                ));
                start = end;
            }
        }
    }
    runs
}

fn write_item(out: &mut dyn Write, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(&(bytes.len() as u32).to_be_bytes())?;
    out.write_all(bytes)
}

fn read_exact(input: &mut dyn Read, buf: &mut [u8], what: &str) -> Result<(), DumpError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => DumpError::Malformed(format!("it ends before {what}")),
        _ => DumpError::Io(e),
    })
}

fn read_item(input: &mut dyn Read) -> Result<Vec<u8>, DumpError> {
    let mut len = [0u8; 4];
    read_exact(input, &mut len, "an item's length")?;
    let len = u32::from_be_bytes(len);
    if len > DUMP_ITEM_MAX {
        return Err(DumpError::Malformed(format!(
            "an item of {len} bytes (at most {DUMP_ITEM_MAX})"
        )));
    }
    let mut item = vec![0u8; len as usize];
    read_exact(input, &mut item, "an item's end")?;
    Ok(item)
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

fn subject_key(origin: &str, subject: &Hash) -> Vec<u8> {
    let mut key = origin_prefix(origin);
    key.extend_from_slice(subject);
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
    use crate::proto::Envelope;

    /// A stored entry whose payload is `text`.
    fn entry(text: &str) -> StoredEntry {
        StoredEntry::Signed(Envelope {
            payload: text.as_bytes().to_vec(),
            ..Default::default()
        })
    }

    fn append(origin: &str, base: u64, ids: &[&str]) -> LogAppend {
        LogAppend {
            origin: origin.into(),
            base_size: base,
            entries: ids
                .iter()
                .enumerate()
                .map(|(i, id)| (base + i as u64, entry(id).encode()))
                .collect(),
            records: ids
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let state = RecordState {
                        version: 1,
                        log_index: LogIndex(base + i as u64),
                        deleted: false,
                        last_public: LastPublic::Never,
                    };
                    (id.to_string(), state)
                })
                .collect(),
            subjects: ids
                .iter()
                .map(|id| (crate::log::subject_digest(origin, id), id.to_string()))
                .collect(),
            nodes: vec![((0, base), [7u8; 32])],
            key_sets: Vec::new(),
            ..LogAppend::default()
        }
    }

    /// The origins with refill notes, each once and in order, whatever
    /// number of notes each holds, and an origin whose name starts with
    /// another's not taken for it.
    #[test]
    fn the_origins_with_refill_notes_are_listed_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.refilled_origins().unwrap().is_empty());
        let notes = store.raw_tree(tree::REFILLED);
        for key in ["a\0x", "a\0y", "a\0z", "ab\0q", "b\0r", "b\0s"] {
            notes.insert(key.as_bytes(), &[][..]).unwrap();
        }
        assert_eq!(store.refilled_origins().unwrap(), ["a", "ab", "b"]);
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
        assert_eq!(
            store.entry("polar", LogIndex(1)).unwrap().unwrap(),
            entry("b")
        );
        let state = store.record_state("polar", "b").unwrap().unwrap();
        assert_eq!(state.log_index, LogIndex(1));
        assert_eq!(store.merkle_node("polar", 0, 0).unwrap(), Some([7u8; 32]));
        let listed = store.list_records("polar", Some("a"), 10).unwrap();
        assert_eq!(
            listed.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
    }

    /// A snapshot whose writing was cut short (a kill before sled renamed
    /// it into place) does not keep the store from opening: sled took it
    /// for the newest snapshot and refused the store as corrupt. A whole
    /// snapshot and the data stay; the unfinished file goes.
    #[test]
    fn a_snapshot_cut_short_does_not_keep_the_store_from_opening() {
        let dir = tempfile::tempdir().unwrap();
        for names in [&["a", "b"][..], &["c"][..]] {
            let store = Store::open(dir.path()).unwrap();
            let base = store.log_size("polar").unwrap();
            store.commit(&append("polar", base, names)).unwrap();
            store.flush().unwrap();
        }
        // The second open wrote a snapshot; a later one was being written.
        let snapshots = |dir: &Path| -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|name| name.starts_with("snap."))
                .collect();
            names.sort();
            names
        };
        let whole = snapshots(dir.path());
        assert_eq!(whole.len(), 1, "{whole:?}");
        let bytes = std::fs::read(dir.path().join(&whole[0])).unwrap();
        std::fs::write(
            dir.path().join("snap.7FFFFFFFFFFFFFFF.generating"),
            &bytes[..bytes.len() / 2],
        )
        .unwrap();

        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.log_size("polar").unwrap(), 3);
        assert_eq!(
            store.entry("polar", LogIndex(2)).unwrap().unwrap(),
            entry("c")
        );
        drop(store);
        assert!(
            snapshots(dir.path())
                .iter()
                .all(|name| !name.ends_with(".generating")),
            "{:?}",
            snapshots(dir.path())
        );
    }

    /// Restatements: a revoking append restates from its first revoked
    /// position, never later than the one before; a restatement of a
    /// left-out origin restates everything and clears the note; each
    /// arrival lists only what no later restatement lists again; all of it
    /// survives a reopen.
    #[test]
    fn restatements_list_entries_again_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let arrivals = |store: &Store| -> Vec<Arrival> {
            store.arrivals_from(0).map(Result::unwrap).collect()
        };
        {
            let store = Store::open(dir.path()).unwrap();
            store.commit(&append("polar", 0, &["a", "b"])).unwrap();
            store.commit(&append("uni", 0, &["u"])).unwrap();
            let mut revoking = append("polar", 2, &["c"]);
            revoking.restate_from = Some(1);
            store.commit(&revoking).unwrap();
            let r = store.restatement("polar").unwrap().unwrap();
            assert_eq!((r.first, r.end), (1, 3));
            let mut later = append("polar", 3, &["d"]);
            later.restate_from = Some(2);
            store.commit(&later).unwrap();
            let r = store.restatement("polar").unwrap().unwrap();
            assert_eq!((r.first, r.end), (1, 4), "starts no later than before");
            assert_eq!(store.restatement("uni").unwrap(), None);

            store.note_left_out("uni").unwrap();
            store.note_left_out("uni").unwrap();
            store.note_left_out("gone").unwrap();
            assert_eq!(store.left_out().unwrap(), ["gone", "uni"]);
            assert_eq!(store.restate("gone").unwrap(), None, "nothing to tell");
            let u = store.restate("uni").unwrap().unwrap();
            assert_eq!((u.first, u.end), (0, 1));
            assert!(store.left_out().unwrap().is_empty());
            store.flush().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let all = arrivals(&store);
        let listed: Vec<(&str, bool, std::ops::Range<u64>)> = all
            .iter()
            .map(|a| {
                let latest = store.restatement(&a.origin).unwrap();
                (a.origin.as_str(), a.restated, a.listed(latest.as_ref()))
            })
            .collect();
        assert_eq!(
            listed,
            [
                ("polar", false, 0..1),
                ("uni", false, 0..0),
                ("polar", false, 2..2),
                ("polar", true, 1..1),
                ("polar", false, 3..3),
                ("polar", true, 1..4),
                ("uni", true, 0..1),
            ]
        );
        let restated = store.restatement("polar").unwrap().unwrap();
        let at = |index| {
            store
                .listed_arrival("polar", LogIndex(index))
                .unwrap()
                .unwrap()
        };
        assert!(!at(0).restated);
        assert_eq!(at(2).seq, restated.seq);
        assert_eq!(at(2).stored_at, restated.stored_at);
        assert!(all.windows(2).all(|w| w[0].stored_at <= w[1].stored_at));
    }

    /// One step of [`a_walk_lists_each_entry_once_and_from_any_point_what_changed`].
    #[derive(Debug, Clone)]
    enum Step {
        /// Appends `count` entries to origin `origin`, revoking from
        /// `revoke` (a fraction of the log) when set.
        Append {
            origin: usize,
            count: u64,
            revoke: Option<u8>,
        },
        /// Restates origin `origin` (left out, listed again).
        Restate { origin: usize },
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            3 => (0..3usize, 1..4u64, proptest::option::weighted(0.3, any::<u8>()))
                .prop_map(|(origin, count, revoke)| Step::Append { origin, count, revoke }),
            1 => (0..3usize).prop_map(|origin| Step::Restate { origin }),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Whatever appends, revocations and restatements happened, a walk of
        /// every arrival lists each entry of each origin exactly once; and a
        /// walk from any point lists at least every entry appended or
        /// restated after it.
        #[test]
        fn a_walk_lists_each_entry_once_and_from_any_point_what_changed(
            steps in proptest::collection::vec(step(), 1..24),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            let origins = ["a", "b", "c"];
            // Per step: the arrival sequence before it, and what it changed.
            let mut changed: Vec<(u64, String, std::ops::Range<u64>)> = Vec::new();
            let mut n = 0;
            for step in steps {
                let before = store.arrivals_from(0).last().map_or(0, |a| a.unwrap().seq);
                match step {
                    Step::Append { origin, count, revoke } => {
                        let origin = origins[origin];
                        let base = store.log_size(origin).unwrap();
                        let ids: Vec<String> = (0..count).map(|_| { n += 1; format!("r{n}") }).collect();
                        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                        let mut append = append(origin, base, &ids);
                        append.nodes.clear();
                        append.restate_from = revoke.map(|f| u64::from(f) * base / 256);
                        store.commit(&append).unwrap();
                        let first = append.restate_from.unwrap_or(base);
                        changed.push((before, origin.into(), first..base + count));
                    }
                    Step::Restate { origin } => {
                        let origin = origins[origin];
                        store.restate(origin).unwrap();
                        changed.push((before, origin.into(), 0..store.log_size(origin).unwrap()));
                    }
                }
            }
            let arrivals: Vec<Arrival> = store.arrivals_from(0).map(Result::unwrap).collect();
            let walk = |from: u64| -> Vec<(String, u64)> {
                let mut listed = Vec::new();
                for a in arrivals.iter().filter(|a| a.seq > from) {
                    let latest = store.restatement(&a.origin).unwrap();
                    listed.extend(a.listed(latest.as_ref()).map(|i| (a.origin.clone(), i)));
                }
                listed
            };
            let mut whole = walk(0);
            whole.sort();
            let mut expected: Vec<(String, u64)> = origins
                .iter()
                .flat_map(|o| (0..store.log_size(o).unwrap()).map(|i| (o.to_string(), i)))
                .collect();
            expected.sort();
            proptest::prop_assert_eq!(whole, expected);
            for (before, origin, range) in &changed {
                let since: std::collections::HashSet<(String, u64)> =
                    walk(*before).into_iter().collect();
                for i in range.clone() {
                    proptest::prop_assert!(
                        since.contains(&(origin.clone(), i)),
                        "{} entry {} changed after arrival {} but is not listed from there",
                        origin, i, before
                    );
                }
            }
            let times: Vec<u64> = arrivals.iter().map(|a| a.stored_at).collect();
            proptest::prop_assert!(times.windows(2).all(|w| w[0] <= w[1]));
        }
    }

    /// A read bounded in bytes stops once it holds them, one entry at
    /// least, and reads on where it stopped.
    #[test]
    fn entries_are_read_within_a_byte_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .commit(&append("polar", 0, &["a", "b", "c", "d"]))
            .unwrap();
        let all = store.entries("polar", LogIndex(0), 100).unwrap();
        assert_eq!(all.len(), 4);
        let one = store.entries_within("polar", LogIndex(0), 100, 1).unwrap();
        assert_eq!(one.len(), 1);
        let next = store.entries_within("polar", LogIndex(1), 100, 1).unwrap();
        assert_eq!(
            next.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [LogIndex(1)]
        );
        // It reads on until what it holds reaches the bound.
        let first_two: usize = all[..2].iter().map(|(_, e)| e.encode().len()).sum();
        let count = |max: usize| {
            store
                .entries_within("polar", LogIndex(0), 100, max)
                .unwrap()
                .len()
        };
        assert_eq!(count(first_two), 2);
        assert_eq!(count(first_two + 1), 3);
        let rest = store
            .entries_within("polar", LogIndex(1), 100, usize::MAX)
            .unwrap();
        assert_eq!(rest.len(), 3);
    }

    #[test]
    fn the_durable_size_grows_only_at_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.commit(&append("polar", 0, &["a", "b"])).unwrap();
            assert_eq!(store.log_size("polar").unwrap(), 2);
            assert_eq!(store.durable_log_size("polar"), 0, "committed, not flushed");
            store.flush().unwrap();
            assert_eq!(store.durable_log_size("polar"), 2);
            store.commit(&append("polar", 2, &["c"])).unwrap();
            assert_eq!(store.durable_log_size("polar"), 2);
            store.flush().unwrap();
        }
        // What a store opens with is on disk.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.durable_log_size("polar"), 3);
        assert_eq!(store.durable_log_size("uni"), 0);
    }

    #[test]
    fn runs_break_by_count_and_by_bytes() {
        // Tiny items: RUN_MAX each.
        assert_eq!(run_lengths(std::iter::repeat_n(8, 600)), [256, 256, 88]);
        // Envelopes of about a kilobyte: four to a run.
        assert_eq!(run_lengths(std::iter::repeat_n(1024, 9)), [4, 4, 1]);
        // An item over the limit closes the run it joins.
        assert_eq!(run_lengths([100, 70_000, 100].into_iter()), [2, 1]);
        assert!(run_lengths(std::iter::empty()).is_empty());
    }

    /// sled never pages a blob out of its cache (it counts one by its
    /// pointer), so a log kept in blobs stays in memory once read: the runs
    /// of a log of kilobyte entries, and their Merkle runs, stay inline.
    #[test]
    fn a_log_of_kilobyte_entries_is_stored_without_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let text = "x".repeat(1000);
        for chunk in 0..4u64 {
            let base = chunk * 2000;
            let ids: Vec<String> = (base..base + 2000).map(|i| format!("{i}{text}")).collect();
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let mut append = append("polar", base, &ids);
            append.nodes = (base..base + 2000).map(|i| ((0, i), [1; 32])).collect();
            store.commit(&append).unwrap();
        }
        store.flush().unwrap();
        assert_eq!(store.log_size("polar").unwrap(), 8000);
        let blobs = std::fs::read_dir(dir.path().join("blobs"))
            .map(|dir| dir.count())
            .unwrap_or(0);
        assert_eq!(blobs, 0, "sled wrote blobs");
    }

    #[test]
    fn runs_of_any_size_read_back_entry_by_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut size = 0u64;
        // Appends of 1, 255, 256, 257 and 600 entries straddle run limits.
        for n in [1usize, 255, 256, 257, 600, 3] {
            let entries: Vec<(u64, Vec<u8>)> = (0..n as u64)
                .map(|i| (size + i, entry(&format!("entry {}", size + i)).encode()))
                .collect();
            let nodes = (0..n as u64)
                .map(|i| ((0, size + i), [(size + i) as u8; 32]))
                .collect();
            let append = LogAppend {
                origin: "polar".into(),
                base_size: size,
                entries,
                records: Vec::new(),
                nodes,
                subjects: Vec::new(),
                key_sets: Vec::new(),
                ..LogAppend::default()
            };
            store.commit(&append).unwrap();
            size += n as u64;
        }
        for index in 0..size {
            let want = entry(&format!("entry {index}"));
            assert_eq!(
                store.entry("polar", LogIndex(index)).unwrap(),
                Some(want),
                "entry {index}"
            );
            assert_eq!(
                store.merkle_node("polar", 0, index).unwrap(),
                Some([index as u8; 32])
            );
        }
        assert_eq!(store.entry("polar", LogIndex(size)).unwrap(), None);
        assert_eq!(store.merkle_node("polar", 0, size).unwrap(), None);
        assert_eq!(store.merkle_node("polar", 1, 0).unwrap(), None);
        for (from, limit) in [(0, 10), (250, 20), (511, 300), (1370, 10), (size - 1, 5)] {
            let got = store.entries("polar", LogIndex(from), limit).unwrap();
            let want: Vec<LogIndex> = (from..size).take(limit).map(LogIndex).collect();
            assert_eq!(
                got.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
                want,
                "from {from}"
            );
            for (index, stored) in got {
                assert_eq!(stored, entry(&format!("entry {index}")));
            }
        }
    }

    #[test]
    fn merkle_runs_split_where_indices_jump() {
        let nodes = vec![
            ((1, 4), [1; 32]),
            ((0, 8), [2; 32]),
            ((1, 5), [3; 32]),
            ((1, 9), [4; 32]),
        ];
        let runs = pack_nodes(&nodes);
        let keys: Vec<(u32, u64)> = runs.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [(0, 8), (1, 4), (1, 9)]);
        assert_eq!(run_len(&runs[1].1).unwrap(), 2);
    }

    /// Nothing of a stale append lands but its subject digests, which are
    /// true of their ids whether or not the record is held.
    #[test]
    fn a_stale_append_is_refused_and_stores_nothing_of_its_log() {
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
        assert_eq!(store.count_live("polar").unwrap(), 1);
        let first = store.entry("polar", LogIndex(0)).unwrap();
        assert!(matches!(first, Some(StoredEntry::Signed(e)) if e.payload == b"a"));
        assert!(store.entry("polar", LogIndex(1)).unwrap().is_none());
    }

    /// The live count follows puts, deletions, versions of a deleted
    /// record and deletions of a deleted record, and a store written before
    /// counts were kept is counted once at open.
    #[test]
    fn live_records_are_counted_as_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.commit(&append("polar", 0, &["a", "b", "c"])).unwrap();
        assert_eq!(store.count_live("polar").unwrap(), 3);
        let version = |base: u64, id: &str, version: u64, deleted: bool| {
            let mut next = append("polar", base, &[id]);
            next.records[0].1.version = version;
            next.records[0].1.deleted = deleted;
            next.subjects.clear();
            next
        };
        store.commit(&version(3, "b", 2, true)).unwrap();
        assert_eq!(store.count_live("polar").unwrap(), 2);
        store.commit(&version(4, "b", 3, true)).unwrap();
        assert_eq!(store.count_live("polar").unwrap(), 2, "deleting twice");
        store.commit(&version(5, "a", 2, false)).unwrap();
        assert_eq!(store.count_live("polar").unwrap(), 2, "a new version");
        store.commit(&version(6, "b", 4, false)).unwrap();
        assert_eq!(store.count_live("polar").unwrap(), 3, "put back");
        assert_eq!(store.count_live("uni").unwrap(), 0);
        store.flush().unwrap();
        // As a store of an older release: no counts, no mark.
        store.live.clear().unwrap();
        store
            .db
            .open_tree(tree::META)
            .unwrap()
            .remove(b"live_counted")
            .unwrap();
        store.flush().unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.count_live("polar").unwrap(), 3);
    }

    #[test]
    fn origins_do_not_bleed_into_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.commit(&append("uni", 0, &["a"])).unwrap();
        store.commit(&append("uni-b", 0, &["b", "c"])).unwrap();
        assert_eq!(store.list_records("uni", None, 10).unwrap().len(), 1);
        assert_eq!(store.entries("uni", LogIndex(0), 10).unwrap().len(), 1);
        assert_eq!(store.count_live("uni-b").unwrap(), 2);
    }

    #[test]
    fn a_dump_loads_into_an_equal_store_whose_sequences_go_on_growing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a")).unwrap();
        store.commit(&append("polar", 0, &["a", "b"])).unwrap();
        store.put_checkpoint("polar", b"signed").unwrap();
        store
            .table(tree::AUDIT)
            .unwrap()
            .push(b"pinned".to_vec())
            .unwrap();
        let mut dump = Vec::new();
        let (summary, held) = store.dump(&mut dump, |s| s.checkpoint("polar")).unwrap();
        assert_eq!(held.as_deref(), Some(&b"signed"[..]));
        assert_eq!(summary.origins.get("polar"), Some(&2));
        let loaded = Store::load_dump(&dir.path().join("b"), &mut dump.as_slice()).unwrap();
        assert_eq!(loaded.pairs, summary.pairs);
        let copy = Store::open(&dir.path().join("b")).unwrap();
        assert_eq!(copy.log_size("polar").unwrap(), 2);
        assert_eq!(copy.entry("polar", LogIndex(1)).unwrap(), Some(entry("b")));
        assert_eq!(copy.checkpoint("polar").unwrap().unwrap(), b"signed");
        // New arrivals and audit entries land after the loaded ones.
        let before: Vec<u64> = copy.arrivals_from(0).map(|a| a.unwrap().seq).collect();
        copy.commit(&append("polar", 2, &["c"])).unwrap();
        let after: Vec<u64> = copy.arrivals_from(0).map(|a| a.unwrap().seq).collect();
        assert_eq!(after.len(), before.len() + 1);
        assert!(after.last() > before.last());
        let audit = copy.table(tree::AUDIT).unwrap();
        audit.push(b"later".to_vec()).unwrap();
        let values: Vec<Vec<u8>> = audit.iter().map(|kv| kv.unwrap().1).collect();
        assert_eq!(values, [b"pinned".to_vec(), b"later".to_vec()]);
    }

    #[test]
    fn a_cut_or_damaged_dump_is_refused_and_a_store_is_never_loaded_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a")).unwrap();
        store.commit(&append("polar", 0, &["a"])).unwrap();
        let mut dump = Vec::new();
        store.dump(&mut dump, |_| Ok(())).unwrap();
        let cut = &dump[..dump.len() - 5];
        let err = Store::load_dump(&dir.path().join("b"), &mut &cut[..]).unwrap_err();
        assert!(err.to_string().contains("ends before"), "{err}");
        let err = Store::load_dump(&dir.path().join("a"), &mut dump.as_slice()).unwrap_err();
        assert!(matches!(err, DumpError::NotEmpty(_)), "{err}");
    }

    fn last_public() -> impl proptest::strategy::Strategy<Value = LastPublic> {
        use proptest::prelude::*;
        prop_oneof![
            Just(LastPublic::Unnoted),
            Just(LastPublic::Never),
            any::<u64>().prop_map(|at| LastPublic::At(LogIndex(at))),
        ]
    }

    proptest::proptest! {
        /// Every state reads back as written, and its first 17 bytes (all
        /// a store of format 1 held) as the same state, not noted.
        #[test]
        fn a_record_state_reads_back_as_written(
            version: u64,
            at: u64,
            deleted: bool,
            note in last_public(),
        ) {
            let state = RecordState {
                version,
                log_index: LogIndex(at),
                deleted,
                last_public: note,
            };
            let bytes = encode_state(&state);
            proptest::prop_assert_eq!(decode_state(&bytes).unwrap(), state);
            let old = RecordState { last_public: LastPublic::Unnoted, ..state };
            proptest::prop_assert_eq!(decode_state(&bytes[..17]).unwrap(), old);
        }
    }

    /// A record state's note of its latest public version comes back after
    /// a reopen and from a dump (it lives in the state itself).
    #[test]
    fn a_record_states_note_survives_a_reopen_and_a_dump() {
        let dir = tempfile::tempdir().unwrap();
        let mut noted = append("polar", 0, &["never", "at", "unnoted"]);
        noted.records[1].1.last_public = LastPublic::At(LogIndex(1));
        noted.records[2].1.last_public = LastPublic::Unnoted;
        let states = noted.records.clone();
        {
            let store = Store::open(&dir.path().join("a")).unwrap();
            store.commit(&noted).unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(&dir.path().join("a")).unwrap();
        let mut dump = Vec::new();
        store.dump(&mut dump, |_| Ok(())).unwrap();
        Store::load_dump(&dir.path().join("b"), &mut dump.as_slice()).unwrap();
        let copy = Store::open(&dir.path().join("b")).unwrap();
        for (id, state) in &states {
            assert_eq!(
                store.record_state("polar", id).unwrap().as_ref(),
                Some(state)
            );
            assert_eq!(
                copy.record_state("polar", id).unwrap().as_ref(),
                Some(state)
            );
        }
    }

    /// A store of format 1 opens as it is, its record states noting nothing,
    /// and one of format 2 as it is; each is marked the current format,
    /// which a release that reads only its own refuses clearly.
    #[test]
    fn stores_of_formats_1_and_2_open_and_are_marked_current() {
        for old in [&b"1"[..], b"2"] {
            let dir = tempfile::tempdir().unwrap();
            {
                let store = Store::open(dir.path()).unwrap();
                store.commit(&append("polar", 0, &["a"])).unwrap();
                if old == b"1" {
                    store.forget_public_notes();
                }
                store.raw_tree(tree::META).insert(FORMAT_KEY, old).unwrap();
                store.flush().unwrap();
            }
            let store = Store::open(dir.path()).unwrap();
            let state = store.record_state("polar", "a").unwrap().unwrap();
            let noted = if old == b"1" {
                LastPublic::Unnoted
            } else {
                LastPublic::Never
            };
            assert_eq!((state.log_index, state.last_public), (LogIndex(0), noted));
            assert_eq!(store.restatement("polar").unwrap(), None);
            let format = store.raw_tree(tree::META).get(FORMAT_KEY).unwrap().unwrap();
            assert_eq!(format.as_ref(), FORMAT_VERSION.to_string().as_bytes());
        }
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
