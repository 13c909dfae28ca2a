//! What the OAI-PMH 2.0 provider lists
//! (<https://www.openarchives.org/OAI/openarchivesprotocol.html>), without
//! HTTP or XML: the order of a harvest, each record's datestamp, its sets,
//! and whether an anonymous harvester sees it whole, as deleted, or not at
//! all.
//!
//! **Order and datestamps.** A harvest walks the appends in the order this
//! node stored them ([`Store::arrivals_from`]): a [`Position`] names an
//! append and an entry of it, so it stays valid across restarts and index
//! rebuilds. Each record appears at the entry that holds its current
//! version; a record changed during a harvest moves to a later position and
//! is listed there (never skipped, and listed twice only when it really
//! changed). A record's datestamp is when that entry was stored here
//! ([`crate::store::Arrival::stored_at`]), which never decreases along the
//! order, so `from`/`until` select a contiguous stretch of it. A record
//! whose listing changed without an entry of its own (a revocation set it
//! aside; a listing left its origin out) is listed at its origin's latest
//! restatement instead ([`crate::store::Restatement`]), with its time.
//!
//! **Visibility.** Harvesters are anonymous: a record is listed whole only
//! when its current version is PUBLIC by [`Viewer::may_see`] (decided first
//! by [`visibility::pull_delivery`], the same rule). A record that is not
//! (deleted, withdrawn, or narrowed) is listed as deleted when one of its
//! versions was PUBLIC, so harvesters that took it drop it; a record that
//! was never PUBLIC is not listed at all and answers as if it did not
//! exist. Which it is, the record's state says
//! ([`RecordState::last_public`]), without a walk of its versions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::holdings::{open_view, open_views, RecordView};
use crate::ids::LogIndex;
use crate::keyset::KeyChain;
use crate::log::{LastPublic, RecordState, StoredEntry};
use crate::node::{Node, NodeError};
use crate::proto::{log_entry::Body, DatasetRecord, Envelope, LogEntry};
use crate::store::{Restatement, StoreError};
use crate::visibility::{self, Delivery, Viewer};

/// Versions of one record walked back to find one that was PUBLIC, for a
/// record whose state does not note its latest public version (written
/// before the notes were kept, [`LastPublic::Unnoted`]).
pub const MAX_VERSIONS_BACK: usize = 64;

/// Where a harvest stands: the next entry to look at is entry `index` of
/// the append with sequence `seq` (an index past that append's end means
/// the next append).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub seq: u64,
    pub index: u64,
}

/// A set of the provider: records sharing a discipline, an origin or a
/// project.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Set {
    Discipline(String),
    Origin(String),
    Project(String),
}

impl Set {
    /// The sets `record` belongs to.
    pub fn of(record: &DatasetRecord) -> Vec<Set> {
        let mut sets = vec![Set::Origin(record.origin.clone())];
        sets.extend(
            record
                .disciplines
                .iter()
                .filter(|d| !d.is_empty())
                .map(|d| Set::Discipline(d.clone())),
        );
        if !record.project.is_empty() {
            sets.push(Set::Project(record.project.clone()));
        }
        sets
    }

    fn contains(&self, record: &DatasetRecord) -> bool {
        match self {
            Set::Origin(origin) => &record.origin == origin,
            Set::Discipline(d) => record.disciplines.iter().any(|x| x == d),
            Set::Project(p) => &record.project == p,
        }
    }
}

/// What a listing selects, besides visibility.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Datestamps at or after, in Unix seconds.
    pub from: Option<u64>,
    /// Datestamps at or before, in Unix seconds.
    pub until: Option<u64>,
    pub set: Option<Set>,
}

/// How an anonymous harvester sees one record.
#[derive(Debug, Clone)]
pub enum Status {
    /// Its current version, verified.
    Live(Box<RecordView>),
    /// Deleted for this harvester: `last_public` is its latest PUBLIC
    /// version (for its sets), when still held.
    Deleted {
        last_public: Option<Box<DatasetRecord>>,
    },
}

/// One record as a harvester receives it.
#[derive(Debug, Clone)]
pub struct Item {
    pub origin: String,
    pub id: String,
    /// When the entry holding the record's current state was stored here
    /// (Unix seconds).
    pub datestamp: u64,
    /// That entry's index in the origin's log.
    pub log_index: LogIndex,
    pub status: Status,
}

impl Item {
    /// The sets the record is listed in.
    pub fn sets(&self) -> Vec<Set> {
        match &self.status {
            Status::Live(view) => Set::of(&view.record),
            Status::Deleted {
                last_public: Some(record),
            } => Set::of(record),
            Status::Deleted { last_public: None } => vec![Set::Origin(self.origin.clone())],
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub items: Vec<Item>,
    /// Where the next page starts; `None` when the list is complete.
    pub next: Option<Position>,
    /// When counting was asked for: how many more records match after this
    /// page, `None` if the deadline passed before the count finished.
    pub remaining: Option<u64>,
    /// The deadline passed before the page filled: `next` resumes there.
    pub cut_short: bool,
}

/// What the judgement of one entry found, before any signature check.
enum Verdict {
    /// Not listed: superseded, a key set, or never PUBLIC.
    Skip,
    /// The current PUBLIC version of `record` (decoded, not yet verified).
    Live {
        id: String,
        record: Box<DatasetRecord>,
        envelope: crate::proto::Envelope,
    },
    Deleted {
        id: String,
        last_public: Option<Box<DatasetRecord>>,
    },
}

/// Lists records for an anonymous harvester from `start`: at most `want`
/// until `deadline`, then looks on for the rest: counts it until `count`
/// (or `deadline`, whichever comes first) when given, else stops at the
/// first. `next` is set only when a record is known to follow or the
/// deadline cut the page or the count short.
pub fn scan(
    node: &Node,
    start: Position,
    filter: &Filter,
    want: usize,
    count: Option<Instant>,
    deadline: Instant,
) -> Result<Scan, NodeError> {
    // At least one entry is judged whatever the deadline, so that a scan
    // resumed where the last one stopped always gets further.
    let mut judged = false;
    // Every record after the page is counted until this time; after it, or
    // without it, only whether one more follows is found out (a token must
    // lead to a record), until the deadline.
    let mut count_until = count;
    let store = node.store();
    restate_returned(node)?;
    let mut origins = Origins::default();
    let mut out = Scan::default();
    let mut slots: Vec<Slot> = Vec::new();
    let mut remaining = 0u64;
    let mut counting = false;
    for arrival in store.arrivals_from(start.seq) {
        let arrival = arrival?;
        if filter.until.is_some_and(|until| arrival.stored_at > until) {
            // Arrival times never decrease: nothing later matches.
            break;
        }
        if filter.from.is_some_and(|from| arrival.stored_at < from) {
            continue;
        }
        if let Some(Set::Origin(origin)) = &filter.set {
            if origin != &arrival.origin {
                continue;
            }
        }
        let listed = origins.get(node, &arrival.origin)?;
        // A quarantined origin, or one whose chain does not verify, lists
        // as one this node holds nothing of.
        let Some(ring) = listed.keys else { continue };
        let range = arrival.listed(listed.restatement.as_ref());
        let mut index = if arrival.seq == start.seq {
            start.index.max(range.start)
        } else {
            range.start
        };
        while index < range.end {
            let batch = store.entries(
                &arrival.origin,
                LogIndex(index),
                (range.end - index).min(256) as usize,
            )?;
            if batch.is_empty() {
                return Err(StoreError::Corrupt {
                    tree: crate::store::tree::LOG,
                    detail: format!("{} entry {index} missing", arrival.origin),
                }
                .into());
            }
            for (at, stored) in batch {
                let now = Instant::now();
                if judged && counting && count_until.is_some_and(|until| now >= until) {
                    count_until = None;
                }
                if judged && now >= deadline {
                    if counting {
                        // Unknown whether more follow: keep the token.
                        out.remaining = None;
                        return finish(out, slots);
                    }
                    out.cut_short = true;
                    out.next = Some(Position {
                        seq: arrival.seq,
                        index: at.get(),
                    });
                    return finish(out, slots);
                }
                index = at.get() + 1;
                judged = true;
                let verdict = judge(node, &ring, &arrival.origin, at, stored)?;
                let matches = |record: Option<&DatasetRecord>| match &filter.set {
                    None | Some(Set::Origin(_)) => true,
                    Some(set) => record.is_some_and(|r| set.contains(r)),
                };
                let item = match verdict {
                    Verdict::Skip => continue,
                    Verdict::Live { record, .. } if !matches(Some(&record)) => continue,
                    Verdict::Deleted { last_public, .. } if !matches(last_public.as_deref()) => {
                        continue
                    }
                    _ if counting => {
                        remaining += 1;
                        if count_until.is_none() {
                            // One more exists: the page gets a token, its
                            // list's size unknown.
                            out.remaining = None;
                            return finish(out, slots);
                        }
                        continue;
                    }
                    // Visibility is decided on the decoded record before
                    // its signature is checked, with the page's others.
                    Verdict::Live { record, .. } if !Viewer::Anonymous.may_see(&record) => continue,
                    Verdict::Live { id, envelope, .. } => Slot::Unverified {
                        origin: arrival.origin.clone(),
                        id,
                        datestamp: arrival.stored_at,
                        log_index: at,
                        envelope,
                        keys: ring.clone(),
                    },
                    Verdict::Deleted { id, last_public } => Slot::Ready(Item {
                        origin: arrival.origin.clone(),
                        id,
                        datestamp: arrival.stored_at,
                        log_index: at,
                        status: Status::Deleted { last_public },
                    }),
                };
                slots.push(item);
                if slots.len() >= want {
                    out.next = Some(Position {
                        seq: arrival.seq,
                        index: at.get() + 1,
                    });
                    // Look on: to count the rest, or to learn whether there
                    // is any (a token must lead to at least one record).
                    counting = true;
                }
            }
        }
    }
    // The end of what is stored: a token only if records follow the page.
    if remaining == 0 {
        out.next = None;
    }
    // Counted whole, or nothing follows: the size is known.
    out.remaining = (count_until.is_some() || remaining == 0).then_some(remaining);
    finish(out, slots)
}

/// How a listing treats an origin's arrivals.
#[derive(Clone)]
struct Listed {
    /// The key chain its records are listed under; `None` while it is
    /// left out.
    keys: Option<Arc<KeyChain>>,
    /// Its latest restatement: what it lists again, and so not before.
    restatement: Option<Restatement>,
}

/// Each origin's [`Listed`], looked up once per listing (and a chain that
/// does not verify said once).
#[derive(Default)]
struct Origins(HashMap<String, Listed>);

impl Origins {
    fn get(&mut self, node: &Node, origin: &str) -> Result<Listed, NodeError> {
        if let Some(listed) = self.0.get(origin) {
            return Ok(listed.clone());
        }
        let listed = Listed {
            keys: listed_keys(node, origin)?,
            restatement: node.store().restatement(origin)?,
        };
        self.0.insert(origin.to_owned(), listed.clone());
        Ok(listed)
    }
}

/// The key chain `origin`'s records are listed under: `None` for a
/// quarantined origin, and for one whose chain does not verify from its
/// pinned root (its records are not served until it does; said once per
/// call, so once per listing), which holds up none of the others. A
/// listing that leaves an origin out notes it, so that its records are
/// restated once it is listed again ([`restate_returned`]).
fn listed_keys(node: &Node, origin: &str) -> Result<Option<Arc<KeyChain>>, NodeError> {
    let keys = shown_keys(node, origin, |e| {
        tracing::warn!(
            origin = %origin,
            error = %e,
            "the origin's key chain does not verify: its records are left out of the listing"
        );
    });
    if keys.is_none() {
        node.store().note_left_out(origin)?;
    }
    Ok(keys)
}

/// The key chain `origin`'s records are shown under over OAI-PMH
/// ([`Node::served_keys`]). A chain that cannot be read for another reason
/// (the store failed to read it) leaves the origin out too, so that one
/// origin holds up no answer; `say` is told why either way.
fn shown_keys(
    node: &Node,
    origin: &str,
    say: impl Fn(&dyn std::fmt::Display),
) -> Option<Arc<KeyChain>> {
    node.served_keys(origin, |e| say(e)).unwrap_or_else(|e| {
        say(&e);
        None
    })
}

/// Restates the records of each origin a listing left out that would be
/// listed now: a harvester that harvested incrementally meanwhile was not
/// told of them, and their entries' datestamps are from before. Run
/// before a listing walks, so that it meets the restatements.
fn restate_returned(node: &Node) -> Result<(), NodeError> {
    for origin in node.store().left_out()? {
        if let Ok(Some(_)) = node.origin_keys(&origin) {
            if let Some(restatement) = node.store().restate(&origin)? {
                tracing::info!(
                    origin = %origin,
                    entries = restatement.end,
                    "the origin is listed again: its records are restated to harvesters"
                );
            }
        }
    }
    Ok(())
}

/// One item of a page as [`scan`] collects it: a deleted record is ready;
/// a live one waits for its signature to be checked with the page's
/// others.
enum Slot {
    Ready(Item),
    Unverified {
        origin: String,
        id: String,
        datestamp: u64,
        log_index: LogIndex,
        envelope: Envelope,
        keys: Arc<KeyChain>,
    },
}

/// The live records of one origin on a page, with the origin's keys.
type Batch = (Arc<KeyChain>, Vec<(LogIndex, Envelope)>);

/// Verifies the page's live records, one batch per origin, and puts the
/// page in order into `scan`. Any record that fails its check fails the
/// page, as a single check would (the store holds only what verified).
fn finish(mut scan: Scan, slots: Vec<Slot>) -> Result<Scan, NodeError> {
    // The page's live records by origin, in page order, and the keys of each.
    let mut batches: HashMap<String, Batch> = HashMap::new();
    let mut order = Vec::with_capacity(slots.len());
    for slot in slots {
        match slot {
            Slot::Ready(item) => order.push(Ok(item)),
            Slot::Unverified {
                origin,
                id,
                datestamp,
                log_index,
                envelope,
                keys,
            } => {
                batches
                    .entry(origin.clone())
                    .or_insert_with(|| (keys, Vec::new()))
                    .1
                    .push((log_index, envelope));
                order.push(Err((origin, id, datestamp, log_index)));
            }
        }
    }
    let mut views: HashMap<String, std::vec::IntoIter<RecordView>> = HashMap::new();
    for (origin, (keys, items)) in batches {
        let opened = open_views(&origin, items, &keys)?;
        views.insert(origin, opened.into_iter());
    }
    scan.items = order
        .into_iter()
        .map(|slot| match slot {
            Ok(item) => item,
            Err((origin, id, datestamp, log_index)) => {
                let view = views
                    .get_mut(&origin)
                    .and_then(Iterator::next)
                    .expect("one view per live record of the page, in order");
                Item {
                    origin,
                    id,
                    datestamp,
                    log_index,
                    status: Status::Live(Box::new(view)),
                }
            }
        })
        .collect();
    Ok(scan)
}

/// Record `id` of `origin` as an anonymous harvester sees it; `None` when
/// it may not know of it (or it does not exist). A record none of whose
/// versions was PUBLIC is told so by its state's note alone
/// ([`RecordState::last_public`]), before any entry is read, so it answers
/// about as fast as a missing one however many versions it has; for the
/// others, whether the current version is shown is decided from its
/// audience fields before its signature is checked, and one earlier
/// version at most is read.
pub fn get(node: &Node, origin: &str, id: &str) -> Result<Option<Item>, NodeError> {
    let store = node.store();
    // An origin that is quarantined, or whose chain does not verify, has
    // no record to show, as in the listings. A broken chain is said here
    // at debug level only: a harvester asks once per record, and the
    // listings, the indexer and `peers status` say it already.
    let Some(ring) = shown_keys(node, origin, |e| {
        tracing::debug!(origin = %origin, error = %e, "the origin's key chain does not verify: its records are not served");
    }) else {
        return Ok(None);
    };
    let Some(state) = store.record_state(origin, id)? else {
        return Ok(None);
    };
    if state.last_public == LastPublic::Never {
        return Ok(None);
    }
    let Some(stored) = store.entry(origin, state.log_index)? else {
        return Ok(None);
    };
    let status = match judge(node, &ring, origin, state.log_index, stored)? {
        Verdict::Live {
            id: found,
            record,
            envelope,
        } if found == id && Viewer::Anonymous.may_see(&record) => Status::Live(Box::new(
            open_view(origin, envelope, state.log_index, &ring)?,
        )),
        Verdict::Deleted {
            id: found,
            last_public,
        } if found == id => Status::Deleted { last_public },
        _ => return Ok(None),
    };
    let Some(arrival) = store.listed_arrival(origin, state.log_index)? else {
        return Ok(None);
    };
    Ok(Some(Item {
        origin: origin.to_owned(),
        id: id.to_owned(),
        datestamp: arrival.stored_at,
        log_index: state.log_index,
        status,
    }))
}

/// What the sets [`sets_from`] finds depend on: each origin's log size,
/// and the keys its entries are judged by (a revocation, a peer revoked or
/// pinned again replace them). Sets found at one stamp are the sets for as
/// long as the holdings keep it; any append, narrowing and withdrawal
/// included, changes it.
#[derive(Debug, Clone)]
pub struct Stamp(Vec<(String, u64, Option<Arc<KeyChain>>)>);

impl Stamp {
    /// The holdings' stamp now.
    pub fn of(node: &Node) -> Result<Stamp, NodeError> {
        let mut origins = Vec::new();
        for (origin, size) in node.store().origins()? {
            // A chain that does not verify stamps as no keys: once it
            // verifies again the stamp changes, and its sets are read.
            let keys = node.origin_keys(&origin).ok().flatten();
            origins.push((origin, size, keys));
        }
        Ok(Stamp(origins))
    }
}

impl PartialEq for Stamp {
    fn eq(&self, other: &Self) -> bool {
        let same_keys = |a: &Option<Arc<KeyChain>>, b: &Option<Arc<KeyChain>>| match (a, b) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (a, b) => a.is_none() && b.is_none(),
        };
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|(a, b)| a.0 == b.0 && a.1 == b.1 && same_keys(&a.2, &b.2))
    }
}

/// Adds to `sets` every set of a PUBLIC record from `start` on, until
/// `deadline`. Returns where it stopped and whether that is the end of
/// what is stored. Sets only accumulate: a record that left public view
/// after it was read keeps its sets in `sets`, so a caller that keeps them
/// starts again from nothing once the [`Stamp`] changed.
pub fn sets_from(
    node: &Node,
    start: Position,
    sets: &mut std::collections::BTreeSet<Set>,
    deadline: Instant,
) -> Result<(Position, bool), NodeError> {
    let store = node.store();
    let mut reached = start;
    restate_returned(node)?;
    let mut origins = Origins::default();
    for arrival in store.arrivals_from(start.seq) {
        let arrival = arrival?;
        let listed = origins.get(node, &arrival.origin)?;
        let range = arrival.listed(listed.restatement.as_ref());
        let mut index = if arrival.seq == start.seq {
            start.index.max(range.start)
        } else {
            range.start
        };
        // A quarantined origin, or one whose chain does not verify, lists
        // as one this node holds nothing of.
        let chain = listed.keys;
        if chain.is_none() {
            index = range.end;
        }
        while index < range.end {
            if Instant::now() >= deadline {
                let at = Position {
                    seq: arrival.seq,
                    index,
                };
                return Ok((at, false));
            }
            let batch = store.entries(
                &arrival.origin,
                LogIndex(index),
                (range.end - index).min(256) as usize,
            )?;
            if batch.is_empty() {
                break;
            }
            for (at, stored) in batch {
                index = at.get() + 1;
                let Some(chain) = &chain else { break };
                if let Verdict::Live { record, .. } =
                    judge(node, chain, &arrival.origin, at, stored)?
                {
                    sets.extend(Set::of(&record));
                }
            }
        }
        reached = Position {
            seq: arrival.seq,
            index: arrival.end(),
        };
    }
    Ok((reached, true))
}

/// How an anonymous harvester sees entry `index` of `origin`'s log. A
/// current version signed by a key the origin revoked (`chain`) is not
/// live: a harvester that may have seen the record is told it is deleted.
fn judge(
    node: &Node,
    chain: &crate::keyset::KeyChain,
    origin: &str,
    index: LogIndex,
    stored: StoredEntry,
) -> Result<Verdict, NodeError> {
    let store = node.store();
    let corrupt = |e: prost::DecodeError| StoreError::Corrupt {
        tree: crate::store::tree::LOG,
        detail: format!("{origin} entry {index}: {e}"),
    };
    let (public, id, envelope) = match stored {
        StoredEntry::Signed(envelope) => {
            let (delivery, id) = visibility::pull_delivery(&Viewer::Anonymous, &envelope.payload)
                .map_err(corrupt)?;
            let Some(id) = id else {
                return Ok(Verdict::Skip);
            };
            (delivery == Delivery::Envelope, id, Some(envelope))
        }
        StoredEntry::Redacted { subject, .. } => match store.record_by_subject(origin, &subject)? {
            Some(id) => (false, id, None),
            None => return Ok(Verdict::Skip),
        },
    };
    let Some(state) = store.record_state(origin, &id)? else {
        return Ok(Verdict::Skip);
    };
    if state.log_index != index {
        // Superseded: the record is listed where its current state is.
        return Ok(Verdict::Skip);
    }
    // Whether a revocation set it aside is asked last: it can take a
    // signature check, which a hidden record never costs.
    if let Some(envelope) = envelope.filter(|_| public && !state.deleted) {
        if chain.quarantines(index.get(), &envelope).is_none() {
            let record = Box::new(record_of(&envelope).map_err(corrupt)?);
            return Ok(Verdict::Live {
                id,
                record,
                envelope,
            });
        }
    }
    // Not public now: deleted if a version of it was PUBLIC (a current one
    // set aside by a revocation included), else unknown.
    let last_public = match state.last_public {
        LastPublic::Never => return Ok(Verdict::Skip),
        LastPublic::At(noted) => earlier_public_version(node, origin, &id, noted, &state)?,
        // As before the notes: a PUBLIC current version (a tombstone, or
        // set aside) is told deleted too.
        LastPublic::Unnoted => {
            let walked = walk_to_public_version(node, origin, index)?;
            if walked.is_none() && !public {
                return Ok(Verdict::Skip);
            }
            walked
        }
    };
    Ok(Verdict::Deleted { id, last_public })
}

/// The record's latest version that anonymous callers saw whole, the one
/// its state notes at `noted`, when it is earlier than the current one
/// (`state`) and held whole. A current version that is PUBLIC but set
/// aside (signed by a revoked key) is the one noted: no earlier one is
/// shown for it.
fn earlier_public_version(
    node: &Node,
    origin: &str,
    id: &str,
    noted: LogIndex,
    state: &RecordState,
) -> Result<Option<Box<DatasetRecord>>, NodeError> {
    if noted >= state.log_index {
        return Ok(None);
    }
    let Some(StoredEntry::Signed(envelope)) = node.store().entry(origin, noted)? else {
        return Ok(None);
    };
    // A note is only as good as the store: what it points at must be a
    // PUBLIC version of this record, or nothing of it is shown.
    let record = public_record(&envelope).filter(|record| record.id == id);
    if record.is_none() {
        tracing::warn!(
            origin,
            id = %crate::quote::short_text(id),
            noted = noted.get(),
            "the note of a record's last PUBLIC version points elsewhere; run `meridian fsck`"
        );
    }
    Ok(record.map(Box::new))
}

/// For a state written before the notes were kept: the latest PUBLIC live
/// version of the record whose entry `index` replaced earlier ones,
/// walking back at most [`MAX_VERSIONS_BACK`].
fn walk_to_public_version(
    node: &Node,
    origin: &str,
    index: LogIndex,
) -> Result<Option<Box<DatasetRecord>>, NodeError> {
    let store = node.store();
    let mut at = index;
    for _ in 0..MAX_VERSIONS_BACK {
        let Some(previous) = store.previous_version(origin, at)? else {
            return Ok(None);
        };
        at = previous;
        let Some(StoredEntry::Signed(envelope)) = store.entry(origin, at)? else {
            continue;
        };
        if let Some(record) = public_record(&envelope).filter(|record| !record.deleted) {
            return Ok(Some(Box::new(record)));
        }
    }
    Ok(None)
}

/// The record in a stored envelope if anonymous callers may receive it
/// whole (decoded as [`record_of`]).
fn public_record(envelope: &crate::proto::Envelope) -> Option<DatasetRecord> {
    let Ok((Delivery::Envelope, Some(_))) =
        visibility::pull_delivery(&Viewer::Anonymous, &envelope.payload)
    else {
        return None;
    };
    record_of(envelope).ok()
}

/// The record in a stored envelope, decoded without checking its signature
/// (it was verified when stored; records sent to a harvester are verified
/// again by [`open_view`]).
fn record_of(envelope: &crate::proto::Envelope) -> Result<DatasetRecord, prost::DecodeError> {
    use prost::Message;
    match LogEntry::decode(envelope.payload.as_slice())?.body {
        Some(Body::Record(record)) => Ok(record),
        _ => Ok(DatasetRecord::default()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Duration;

    use super::*;
    use crate::ids::RecordId;

    fn line(id: &str, visibility: &str) -> String {
        crate::test_support::record_line(id, &format!("Ice core {id}"), visibility)
    }

    fn node(dir: &std::path::Path) -> std::sync::Arc<Node> {
        let data = dir.join("polar");
        Node::create(
            &data,
            &"polar".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        Node::open(&data, &BTreeMap::new()).unwrap()
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    /// Every page from the start, following `next`: `(id, deleted)`.
    fn harvest(node: &Node, filter: &Filter, page: usize) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        let mut at = Position::default();
        loop {
            let scan = scan(node, at, filter, page, None, later()).unwrap();
            assert!(!scan.cut_short);
            assert!(scan.items.len() <= page);
            out.extend(
                scan.items
                    .iter()
                    .map(|i| (i.id.clone(), matches!(i.status, Status::Deleted { .. }))),
            );
            match scan.next {
                Some(next) => {
                    assert_eq!(scan.items.len(), page, "a token only after a full page");
                    at = next;
                }
                None => return out,
            }
        }
    }

    #[test]
    fn a_harvest_lists_each_public_record_once_and_what_left_public_view_as_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let node = node(dir.path());
        let mut lines: Vec<String> = (0..25)
            .map(|i| line(&format!("P-{i:02}"), "public"))
            .collect();
        lines.extend((0..10).map(|i| line(&format!("F-{i:02}"), "federation")));
        lines.extend((0..5).map(|i| line(&format!("X-{i:02}"), "private")));
        node.import_lines(1, &lines).unwrap();
        // Deleted while public; deleted while never public; narrowed;
        // widened; changed while public.
        node.delete(&RecordId::parse("P-03").unwrap()).unwrap();
        node.delete(&RecordId::parse("F-00").unwrap()).unwrap();
        let mut changed = vec![line("P-04", "federation"), line("F-01", "public")];
        changed.push(crate::test_support::record_line(
            "P-05",
            "Ice core P-05, revised",
            "public",
        ));
        node.import_lines(1, &changed).unwrap();

        let mut want: BTreeSet<(String, bool)> = (0..25)
            .map(|i| (format!("P-{i:02}"), matches!(i, 3 | 4)))
            .collect();
        want.insert(("F-01".into(), false));
        for page in [1, 7, 26, 1000] {
            let got = harvest(&node, &Filter::default(), page);
            let set: BTreeSet<(String, bool)> = got.iter().cloned().collect();
            assert_eq!(set.len(), got.len(), "a record twice with pages of {page}");
            assert_eq!(set, want, "pages of {page}");
            // The changed record comes last: at its new version's place.
            assert_eq!(got.last().unwrap().0, "P-05", "pages of {page}");
        }

        // The first page counts the whole list.
        let first = scan(
            &node,
            Position::default(),
            &Filter::default(),
            7,
            Some(later()),
            later(),
        )
        .unwrap();
        assert_eq!(
            first.items.len() as u64 + first.remaining.unwrap(),
            want.len() as u64
        );
        // A count whose own time is up leaves the page whole, its token
        // set, and the size unknown.
        let uncounted = scan(
            &node,
            Position::default(),
            &Filter::default(),
            7,
            Some(Instant::now()),
            later(),
        )
        .unwrap();
        assert_eq!(uncounted.items.len(), 7);
        assert!(!uncounted.cut_short);
        assert_eq!(uncounted.next, first.next);
        assert_eq!(uncounted.remaining, None);
        // Still, a page that holds the last records gets no token: whether
        // one more follows is found out whatever the count's time.
        let whole = scan(
            &node,
            Position::default(),
            &Filter::default(),
            want.len(),
            Some(Instant::now()),
            later(),
        )
        .unwrap();
        assert_eq!(whole.items.len(), want.len());
        assert_eq!((whole.next, whole.remaining), (None, Some(0)));

        // Reads answer as lists do; never-public records do not exist.
        assert!(matches!(
            get(&node, "polar", "P-00").unwrap().unwrap().status,
            Status::Live(_)
        ));
        for deleted in ["P-03", "P-04"] {
            let item = get(&node, "polar", deleted).unwrap().unwrap();
            let Status::Deleted {
                last_public: Some(record),
            } = item.status
            else {
                panic!("{deleted}: {:?}", item.status);
            };
            assert_eq!(record.id, deleted);
        }
        for hidden in ["F-00", "F-02", "X-00", "nothing"] {
            assert!(get(&node, "polar", hidden).unwrap().is_none(), "{hidden}");
        }
        assert!(get(&node, "elsewhere", "P-00").unwrap().is_none());
    }

    #[test]
    fn from_and_until_select_by_when_the_entry_was_stored() {
        let dir = tempfile::tempdir().unwrap();
        let node = node(dir.path());
        node.import_lines(1, &[line("A", "public"), line("B", "public")])
            .unwrap();
        let first = get(&node, "polar", "A").unwrap().unwrap().datestamp;
        std::thread::sleep(Duration::from_millis(1100));
        node.import_lines(1, &[line("C", "public")]).unwrap();
        let second = get(&node, "polar", "C").unwrap().unwrap().datestamp;
        assert!(second > first);
        let ids = |filter: Filter| -> Vec<String> {
            harvest(&node, &filter, 10)
                .into_iter()
                .map(|(id, _)| id)
                .collect()
        };
        assert_eq!(
            ids(Filter {
                from: Some(second),
                ..Filter::default()
            }),
            ["C"]
        );
        assert_eq!(
            ids(Filter {
                until: Some(first),
                ..Filter::default()
            }),
            ["A", "B"]
        );
        assert_eq!(
            ids(Filter {
                from: Some(first),
                until: Some(second),
                ..Filter::default()
            }),
            ["A", "B", "C"]
        );
        assert!(ids(Filter {
            from: Some(second + 1),
            ..Filter::default()
        })
        .is_empty());
    }

    #[test]
    fn a_position_survives_a_reopen_and_sets_hold_only_public_records() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("polar");
        let mut lines: Vec<String> = (0..10).map(|i| line(&format!("P-{i}"), "public")).collect();
        let mut secret: serde_json::Value = serde_json::from_str(&line("S", "federation")).unwrap();
        secret["project"] = serde_json::json!("Secret project");
        secret["disciplines"] = serde_json::json!(["secretdiscipline"]);
        lines.push(secret.to_string());
        let (position, first) = {
            let node = node(dir.path());
            node.import_lines(1, &lines).unwrap();
            let scan = scan(
                &node,
                Position::default(),
                &Filter::default(),
                4,
                None,
                later(),
            )
            .unwrap();
            (scan.next.unwrap(), scan.items)
        };
        let node = Node::open(&data, &BTreeMap::new()).unwrap();
        let rest = harvest_from(&node, position);
        let all: Vec<String> = first.iter().map(|i| i.id.clone()).chain(rest).collect();
        assert_eq!(all, (0..10).map(|i| format!("P-{i}")).collect::<Vec<_>>());

        let mut sets = std::collections::BTreeSet::new();
        let (_, done) = sets_from(&node, Position::default(), &mut sets, later()).unwrap();
        assert!(done);
        assert_eq!(sets, BTreeSet::from([Set::Origin("polar".into())]));
        // A passed deadline stops a scan after the first entry it judged.
        let stopped = scan(
            &node,
            Position::default(),
            &Filter::default(),
            4,
            None,
            Instant::now(),
        )
        .unwrap();
        assert!(stopped.cut_short && stopped.items.is_empty() && stopped.next.is_some());
        assert_ne!(stopped.next, Some(Position::default()), "no progress");
    }

    /// A record that was PUBLIC is told deleted however many hidden
    /// versions followed, with the sets of its last PUBLIC version. In a
    /// store written before the notes were kept the versions are walked
    /// back, 64 at most, as before; `fsck --repair` notes them.
    #[test]
    fn a_record_public_long_ago_is_told_deleted_however_many_versions_followed() {
        let dir = tempfile::tempdir().unwrap();
        let node = node(dir.path());
        let mut first: serde_json::Value = serde_json::from_str(&line("LONG", "public")).unwrap();
        first["disciplines"] = serde_json::json!(["glaciology"]);
        node.import_lines(1, &[first.to_string()]).unwrap();
        for version in 0..100 {
            let title = format!("Ice core, hidden revision {version}");
            let hidden = crate::test_support::record_line("LONG", &title, "federation");
            node.import_lines(1, &[hidden]).unwrap();
        }
        let told = |node: &Node| {
            let item = get(node, "polar", "LONG").unwrap().expect("told deleted");
            let Status::Deleted {
                last_public: Some(record),
            } = &item.status
            else {
                panic!("{:?}", item.status);
            };
            assert_eq!(record.disciplines, ["glaciology"]);
            assert!(item.sets().contains(&Set::Discipline("glaciology".into())));
            assert_eq!(
                harvest(node, &Filter::default(), 10),
                vec![("LONG".to_owned(), true)]
            );
        };
        told(&node);

        // A store of an earlier release: no state notes anything.
        node.store().forget_public_notes();
        assert!(get(&node, "polar", "LONG").unwrap().is_none());
        let report = crate::fsck::repair(&node).unwrap();
        assert!(report.clean(), "{:?}", report.findings);
        assert!(
            report.repaired.iter().any(|r| r.starts_with("noted")),
            "{:?}",
            report.repaired
        );
        told(&node);
    }

    /// A note of a record's last PUBLIC version that points at another
    /// record's entry (a damaged store) shows nothing of that entry: the
    /// record is told deleted without its sets.
    #[test]
    fn a_note_pointing_at_another_record_shows_nothing_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let node = node(dir.path());
        // Both kinds of entry it could point at: another record's PUBLIC
        // version (only the id tells), and a hidden one.
        let mut other: serde_json::Value = serde_json::from_str(&line("OTHER", "public")).unwrap();
        other["disciplines"] = serde_json::json!(["oncology"]);
        let mut secret: serde_json::Value =
            serde_json::from_str(&line("SECRET", "federation")).unwrap();
        secret["disciplines"] = serde_json::json!(["oncology"]);
        node.import_lines(
            1,
            &[
                line("GONE", "public"),
                other.to_string(),
                secret.to_string(),
            ],
        )
        .unwrap();
        let hidden = crate::test_support::record_line("GONE", "Ice core, hidden", "federation");
        node.import_lines(1, &[hidden]).unwrap();
        let state = |id: &str| node.store().record_state("polar", id).unwrap().unwrap();
        for elsewhere in ["OTHER", "SECRET"] {
            let held = state("GONE");
            let note = LastPublic::At(state(elsewhere).log_index);
            assert_eq!(
                node.store()
                    .renote("polar", &[("GONE".into(), held, note)])
                    .unwrap(),
                1
            );
            let item = get(&node, "polar", "GONE").unwrap().expect("told deleted");
            assert!(
                matches!(item.status, Status::Deleted { last_public: None }),
                "{elsewhere}: {:?}",
                item.status
            );
            assert!(!item.sets().contains(&Set::Discipline("oncology".into())));
        }
    }

    /// A store written before the notes were kept answers as it did: a
    /// record PUBLIC a few versions back is told deleted, one never PUBLIC
    /// is not told; the first PUBLIC version stored since is noted.
    #[test]
    fn a_store_written_before_the_notes_walks_back_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let node = node(dir.path());
        node.import_lines(1, &[line("OLD", "public"), line("SECRET", "federation")])
            .unwrap();
        for version in 0..3 {
            let lines = ["OLD", "SECRET"].map(|id| {
                let title = format!("Ice core {id}, hidden revision {version}");
                crate::test_support::record_line(id, &title, "federation")
            });
            node.import_lines(1, &lines).unwrap();
        }
        node.store().forget_public_notes();
        let state = |id: &str| node.store().record_state("polar", id).unwrap().unwrap();
        assert_eq!(state("OLD").last_public, LastPublic::Unnoted);
        let item = get(&node, "polar", "OLD").unwrap().expect("told deleted");
        assert!(
            matches!(&item.status, Status::Deleted { last_public: Some(r) } if r.title == "Ice core OLD"),
            "{:?}",
            item.status
        );
        assert!(get(&node, "polar", "SECRET").unwrap().is_none());
        assert_eq!(
            harvest(&node, &Filter::default(), 10),
            vec![("OLD".to_owned(), true)]
        );

        // Hidden again after a PUBLIC version: the note tells, not the walk.
        node.import_lines(1, &[line("SECRET", "public")]).unwrap();
        let public_at = state("SECRET").log_index;
        node.import_lines(1, &[line("SECRET", "private")]).unwrap();
        assert_eq!(state("SECRET").last_public, LastPublic::At(public_at));
        assert!(matches!(
            get(&node, "polar", "SECRET").unwrap().unwrap().status,
            Status::Deleted {
                last_public: Some(_)
            }
        ));
    }

    /// A GetRecord of a record a harvester may not know of reads none of
    /// its versions: one with a hundred hidden versions answers about as
    /// fast as one with a single version and as a missing one, so the time
    /// taken tells neither that it exists nor how often it changed.
    #[test]
    fn a_hidden_record_answers_as_fast_however_many_versions_it_has() {
        let dir = tempfile::tempdir().unwrap();
        let node = node(dir.path());
        node.import_lines(1, &[line("ONE", "federation")]).unwrap();
        for version in 0..100 {
            let title = format!("Ice core, revision {version}");
            let hidden = crate::test_support::record_line("MANY", &title, "federation");
            node.import_lines(1, &[hidden]).unwrap();
        }
        let timed = |id: &str| {
            let started = Instant::now();
            assert!(get(&node, "polar", id).unwrap().is_none(), "{id}");
            started.elapsed()
        };
        let (mut one, mut many, mut missing) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..101 {
            one.push(timed("ONE"));
            many.push(timed("MANY"));
            missing.push(timed("MISSING"));
        }
        one.sort();
        many.sort();
        missing.sort();
        eprintln!(
            "median: one version {:?}, a hundred {:?}, missing {:?}",
            one[50], many[50], missing[50]
        );
        assert!(
            many[50] < one[50] * 2,
            "a hundred versions {:?} against one {:?}",
            many[50],
            one[50]
        );
        // A read of the store more than a missing record's, nothing like a
        // signature check or a version's decoding.
        assert!(
            many[50] < missing[50] * 4,
            "a hundred versions {:?} against a missing record {:?}",
            many[50],
            missing[50]
        );
    }

    fn harvest_from(node: &Node, mut at: Position) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let scan = scan(node, at, &Filter::default(), 4, None, later()).unwrap();
            out.extend(scan.items.iter().map(|i| i.id.clone()));
            match scan.next {
                Some(next) => at = next,
                None => return out,
            }
        }
    }
}
