//! Answers a search (DESIGN §8): the hits a viewer may see from the local
//! index, and the completeness report that says what the answer covers.
//!
//! This node's own holdings are complete (`ok`); each peer's are a replica
//! as of the last successful sync with it. The `live` scope asks peers now
//! ([`live`]).

pub mod audit;
pub mod live;

use std::borrow::Borrow;
use std::cell::LazyCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::index::{DoiCopies, PreparedSearch, Work};
use crate::node::Node;
use crate::query::{Scope, SearchError, SearchRequest, SearchResults};
use crate::sync::{PeerStatus, Replicator};
use crate::trust::PeerState;
use crate::visibility::Viewer;

/// How complete an answer is for one origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// Answered from this node's own, authoritative holdings.
    Ok,
    /// Answered from this node's copy of the origin's log.
    Replica,
    /// The origin did not answer before the deadline.
    Timeout,
    /// The origin could not be reached.
    Unreachable,
    /// The origin refused the query.
    Refused,
    /// The origin's key set expired, or its key chain does not verify from
    /// its pin: still searched, no longer vouched for ([`Node::is_stale`]).
    Stale,
}

/// One origin's line of the completeness report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completeness {
    pub origin: String,
    pub coverage: Coverage,
    /// For a replica: RFC 3339 time of the last successful sync (empty if
    /// there was none).
    pub as_of: String,
    /// On the one line an anonymous caller gets for all peers: how many it
    /// counts (`origin` is then empty). 0 on a line naming its origin.
    pub peers: u32,
    /// The origin's log size the answer covers: the answering index's
    /// position (`Ok`), or this node's copy when the hits came from it.
    pub log_size: u64,
    /// A live search's answer for the origin came from this replica holder
    /// (empty: from the origin itself, or not live).
    pub answered_by: String,
}

/// The lines about peers as an anonymous caller gets them: who this node's
/// peers are is not for the open network, so one line per coverage counts
/// them, with the oldest sync among them (none if one never synced: RFC
/// 3339 strings of one form sort by time).
pub(crate) fn anonymous_lines(lines: Vec<Completeness>) -> Vec<Completeness> {
    let mut by_coverage: Vec<(Coverage, Vec<Completeness>)> = Vec::new();
    for line in lines {
        match by_coverage.iter_mut().find(|(c, _)| *c == line.coverage) {
            Some((_, group)) => group.push(line),
            None => by_coverage.push((line.coverage, vec![line])),
        }
    }
    by_coverage
        .into_iter()
        .map(|(coverage, group)| Completeness {
            origin: String::new(),
            coverage,
            as_of: if coverage == Coverage::Ok {
                String::new()
            } else {
                group
                    .iter()
                    .map(|l| l.as_of.clone())
                    .min()
                    .unwrap_or_default()
            },
            peers: group.len() as u32,
            log_size: 0,
            answered_by: String::new(),
        })
        .collect()
}

/// A search's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub results: SearchResults,
    pub completeness: Vec<Completeness>,
}

/// Runs `request` for `viewer` against the local index. Blocking.
pub fn search(
    node: &Node,
    replicator: &Replicator,
    request: &SearchRequest,
    viewer: &Viewer,
) -> Result<Answer, SearchError> {
    prepare(node, request, viewer)?.answer(node, replicator, None)
}

/// How long a search for `viewer` may run: what its caller waits
/// (`asked`, at most the request timeout), and for anyone but the
/// operator `search.max_search_ms` at most. Whether that bound is the one
/// that applies comes with it (a search it cuts is counted as a limit hit).
pub fn time_allowed(node: &Node, viewer: &Viewer, asked: Option<Duration>) -> (Duration, bool) {
    let config = node.config();
    let timeout = Duration::from_secs(config.limits.request_timeout_secs);
    let asked = asked.map_or(timeout, |asked| asked.min(timeout));
    let most = Duration::from_millis(config.search.max_search_ms);
    if matches!(viewer, Viewer::Operator { .. }) || asked <= most {
        (asked, false)
    } else {
        (most, true)
    }
}

/// A local search compiled and sized, not yet run: [`Prepared::work`] tells
/// whether it is worth a thread of its own.
pub struct Prepared {
    search: PreparedSearch,
    scope: Scope,
    /// The caller is anonymous: peers are counted, not named.
    anonymous: bool,
    /// When the search's first page was asked (Unix seconds).
    issued: u64,
}

/// Opens `request`'s cursor and compiles it against the index; cheap, and
/// bounded by the query's size.
///
/// Cursors leave this node sealed ([`crate::query::cursor::CursorKey`]):
/// one that comes back is opened and checked before the index reads it,
/// and the next page's cursor keeps the time of the search's first page.
pub fn prepare(
    node: &Node,
    request: &SearchRequest,
    viewer: &Viewer,
) -> Result<Prepared, SearchError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (request, issued) = match &request.after {
        None => (std::borrow::Cow::Borrowed(request), now),
        Some(sealed) => {
            let (token, issued) = node.cursor_key().open(sealed, now)?;
            let mut opened = request.clone();
            opened.after = Some(token);
            (std::borrow::Cow::Owned(opened), issued)
        }
    };
    Ok(Prepared {
        search: node.index().prepare(&request, viewer)?,
        scope: request.scope.clone(),
        anonymous: *viewer == Viewer::Anonymous,
        issued,
    })
}

impl Prepared {
    pub fn work(&self) -> Work {
        self.search.work()
    }

    /// Runs the search: hits from the index, and the completeness report.
    /// Blocks for as long as [`Self::work`] says, and gives up when
    /// `deadline` passes ([`PreparedSearch::run_until`]).
    pub fn answer(
        self,
        node: &Node,
        replicator: &Replicator,
        deadline: Option<std::time::Instant>,
    ) -> Result<Answer, SearchError> {
        let mut results = page(self.search, deadline, || Registrants::of(node))?;
        results.next_cursor = results
            .next_cursor
            .map(|token| node.cursor_key().seal(&token, self.issued));
        let mut completeness = vec![own_line(node)];
        if !matches!(self.scope, Scope::Local { .. }) {
            let synced = replicator.status();
            let peers = node
                .trust()
                .list()
                .map_err(|e| SearchError::Unavailable(e.to_string()))?;
            let lines: Vec<Completeness> = peers
                .into_iter()
                .filter(|p| p.state != PeerState::Revoked)
                .map(|peer| copy_line(node, &synced, peer.node_id.as_str(), Coverage::Replica))
                .collect();
            if self.anonymous {
                completeness.extend(anonymous_lines(lines));
            } else {
                completeness.extend(lines);
            }
        }
        Ok(Answer {
            results,
            completeness,
        })
    }
}

/// One page of a local search, one hit per DOI across its pages
/// ([`merge_copies`]).
fn page<R: Borrow<Registrants>>(
    search: PreparedSearch,
    deadline: Option<std::time::Instant>,
    registrants: impl FnOnce() -> R,
) -> Result<SearchResults, SearchError> {
    let (mut results, copies) = search.run_with_copies(deadline)?;
    results.hits = merge_copies(std::mem::take(&mut results.hits), copies, registrants);
    Ok(results)
}

/// The line of this node's own holdings: complete as far as the index has
/// applied its log.
pub(crate) fn own_line(node: &Node) -> Completeness {
    let own = node.node_id().as_str();
    Completeness {
        origin: own.to_owned(),
        coverage: vouched(node, own, Coverage::Ok),
        as_of: String::new(),
        peers: 0,
        log_size: node.indexed(own),
        answered_by: String::new(),
    }
}

/// The line of an origin whose hits came from this node's copy of its log
/// (as of the last sync with it), `coverage` saying why.
pub(crate) fn copy_line(
    node: &Node,
    synced: &BTreeMap<String, PeerStatus>,
    origin: &str,
    coverage: Coverage,
) -> Completeness {
    Completeness {
        origin: origin.to_owned(),
        coverage: vouched(node, origin, coverage),
        as_of: synced
            .get(origin)
            .map(|s| s.last_sync.clone())
            .unwrap_or_default(),
        peers: 0,
        log_size: node.store().log_size(origin).unwrap_or(0),
        answered_by: String::new(),
    }
}

/// `coverage`, unless the origin's key set expired (or its key chain does
/// not verify): then `Stale`, whatever answered for it. Its hits are kept;
/// the caller is told nothing vouches for its keys.
pub(crate) fn vouched(node: &Node, origin: &str, coverage: Coverage) -> Coverage {
    if node.is_stale(origin) {
        Coverage::Stale
    } else {
        coverage
    }
}

/// A DOI as compared across origins ([`crate::record::canonical_doi`]:
/// case-insensitive, without a resolver prefix). `None` for a record
/// without one.
pub(crate) fn doi_key(doi: &str) -> Option<String> {
    let canonical = crate::record::canonical_doi(doi);
    (!canonical.is_empty()).then_some(canonical)
}

/// Who registers DOIs under which prefix, as the origins claim it in their
/// key sets (`KeySet.doi_prefixes`, signed by each origin's root, so no
/// relay can add or drop a claim): a prefix claimed by exactly one origin
/// this node trusts (itself or an active peer) names that origin, unless
/// its key set expired; a prefix claimed by several names none, and the
/// conflict is logged (docs/decisions/doi-registrant.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registrants {
    by_prefix: BTreeMap<String, String>,
}

/// One origin's claim: its id, the prefixes its current key set lists, and
/// whether that set is in force (not expired).
pub struct Claim<'a> {
    pub origin: &'a str,
    pub prefixes: &'a [String],
    pub vouched: bool,
}

impl Registrants {
    /// The registrants `claims` establish, and the prefixes more than one
    /// origin claims, with their claimants. A claimed prefix that is not a
    /// DOI prefix is ignored, as the configuration refuses it.
    pub fn from_claims<'a>(
        claims: impl IntoIterator<Item = Claim<'a>>,
    ) -> (Self, BTreeMap<String, Vec<String>>) {
        let mut claimants: BTreeMap<&str, BTreeMap<&str, bool>> = BTreeMap::new();
        for claim in claims {
            for prefix in claim.prefixes {
                if crate::config::is_doi_prefix(prefix) {
                    claimants
                        .entry(prefix.as_str())
                        .or_default()
                        .insert(claim.origin, claim.vouched);
                }
            }
        }
        let mut by_prefix = BTreeMap::new();
        let mut conflicts = BTreeMap::new();
        for (prefix, origins) in claimants {
            let mut each = origins.iter();
            match (each.next(), each.next()) {
                (Some((origin, true)), None) => {
                    by_prefix.insert(prefix.to_owned(), (*origin).to_owned());
                }
                (Some(_), None) | (None, _) => {}
                (Some(_), Some(_)) => {
                    conflicts.insert(
                        prefix.to_owned(),
                        origins.keys().map(|o| (*o).to_owned()).collect(),
                    );
                }
            }
        }
        (Self { by_prefix }, conflicts)
    }

    /// The claims of this node (its key set as published, not as
    /// configured) and of its active peers (their key sets as held here).
    /// A conflict that is new since the last call is logged.
    pub fn of(node: &Node) -> Self {
        let (registrants, conflicts) = Self::with_conflicts(node);
        node.note_doi_conflicts(conflicts);
        registrants
    }

    /// [`Registrants::of`], with the prefixes more than one origin claims
    /// and their claimants (for `peers status`), logging nothing.
    ///
    /// When the claims of some trusted origin cannot be read (the trust
    /// store, or an origin's key chain that does not verify), no prefix
    /// names a registrant: the unread claim could contest any of them, and
    /// a false claimant must not become the sole one because the true
    /// registrant's claim went missing. Every DOI falls back to the oldest
    /// signed copy until the claims can be read again.
    pub fn with_conflicts(node: &Node) -> (Self, BTreeMap<String, Vec<String>>) {
        let mut held: Vec<(String, Vec<String>, bool)> = Vec::new();
        let own = node.node_id().to_string();
        let mut origins = vec![own];
        let mut unread = false;
        match node.trust().active() {
            Ok(peers) => origins.extend(peers.into_iter().map(|p| p.node_id.to_string())),
            Err(_) => unread = true,
        }
        for origin in origins {
            match node.origin_keys(&origin) {
                Ok(Some(chain)) => {
                    if let Some(latest) = chain.latest() {
                        let vouched = !node.is_stale(&origin);
                        held.push((origin, latest.set.doi_prefixes.clone(), vouched));
                    }
                }
                Ok(None) => {}
                Err(_) => unread = true,
            }
        }
        let (registrants, conflicts) =
            Self::from_claims(held.iter().map(|(origin, prefixes, vouched)| Claim {
                origin,
                prefixes,
                vouched: *vouched,
            }));
        if unread {
            return (Self::default(), conflicts);
        }
        (registrants, conflicts)
    }

    /// The registrant of a DOI as [`doi_key`] gives it: the origin that
    /// alone claims its prefix (what precedes the first `/`).
    fn of_doi(&self, key: &str) -> Option<&str> {
        let (prefix, _) = key.split_once('/')?;
        self.by_prefix.get(prefix).map(String::as_str)
    }
}

/// One hit per DOI over all the pages of a search of the local index: a
/// page's hit whose DOI other records carry too becomes, at the place of
/// the first of its copies to rank there, the authoritative copy's hit
/// among every copy the search matches (`copies`, from
/// [`PreparedSearch::run_with_copies`]), naming the others in
/// [`Hit::also_at`]; it is left out when a copy ranked on an earlier page,
/// which showed the dataset. The authoritative copy is chosen as
/// [`dedupe`] chooses it. Hits without a DOI never merge, nor do those of
/// a DOI more than [`crate::index::MAX_DOI_COPIES`] records matching the
/// search carry (they have no entry in `copies`).
///
/// A page can so hold fewer hits than asked for, or none, and still have
/// a next page: its cursor follows the copies, as totals and facets count
/// them. `registrants` is asked only when copies merge.
pub fn merge_copies<R: Borrow<Registrants>>(
    hits: Vec<crate::query::Hit>,
    mut copies: BTreeMap<String, DoiCopies>,
    registrants: impl FnOnce() -> R,
) -> Vec<crate::query::Hit> {
    let registrants = LazyCell::new(registrants);
    let mut placed = BTreeSet::new();
    let mut merged = Vec::with_capacity(hits.len());
    for hit in hits {
        let Some(key) = doi_key(&hit.doi) else {
            merged.push(hit);
            continue;
        };
        if placed.contains(&key) {
            // Merged into the hit placed before it.
            continue;
        }
        // A DOI that no other record carries has no entry: two hits of
        // one page that share a DOI always do.
        let Some(found) = copies.remove(&key) else {
            merged.push(hit);
            continue;
        };
        placed.insert(key.clone());
        if found.shown_before {
            continue;
        }
        let mut group = found.copies;
        if !group
            .iter()
            .any(|c| (&c.origin, &c.id) == (&hit.origin, &hit.id))
        {
            group.push(hit);
        }
        if group.len() == 1 {
            merged.extend(group);
        } else {
            merged.push(authoritative(group, (*registrants).borrow().of_doi(&key)));
        }
    }
    merged
}

/// One hit per DOI: copies of the same DOI from several origins become the
/// authoritative copy's hit, at the place of the best-ranked copy, listing
/// the others in [`Hit::also_at`]. The authoritative copy is the one from
/// the DOI's registrant ([`Registrants`]) when it is among the copies;
/// failing that, the oldest signed one (earliest `updated_at`, which the
/// origin signed; then origin and id). Hits without a DOI never merge.
///
/// `registrants` is asked only when two hits share a DOI (reading them
/// walks the trust store, and most pages have no shared DOI).
pub fn dedupe<R: Borrow<Registrants>>(
    hits: Vec<crate::query::Hit>,
    registrants: impl FnOnce() -> R,
) -> Vec<crate::query::Hit> {
    let registrants = LazyCell::new(registrants);
    let mut groups: BTreeMap<String, Vec<crate::query::Hit>> = BTreeMap::new();
    // Each place in the page: a hit without a DOI, or the first of a DOI.
    enum Slot {
        Single(Box<crate::query::Hit>),
        Doi(String),
    }
    let mut slots = Vec::new();
    for hit in hits {
        match doi_key(&hit.doi) {
            None => slots.push(Slot::Single(Box::new(hit))),
            Some(key) => {
                let copies = groups.entry(key.clone()).or_default();
                if copies.is_empty() {
                    slots.push(Slot::Doi(key));
                }
                copies.push(hit);
            }
        }
    }
    slots
        .into_iter()
        .map(|slot| match slot {
            Slot::Single(hit) => *hit,
            Slot::Doi(key) => {
                let mut copies = groups.remove(&key).unwrap_or_default();
                if copies.len() == 1 {
                    return copies.remove(0);
                }
                authoritative(copies, (*registrants).borrow().of_doi(&key))
            }
        })
        .collect()
}

/// The authoritative one of a DOI's `copies` (at least one), naming the
/// others in [`Hit::also_at`]: `registrant`'s copy, else the oldest signed
/// one (earliest `updated_at`, then origin and id).
fn authoritative(
    mut copies: Vec<crate::query::Hit>,
    registrant: Option<&str>,
) -> crate::query::Hit {
    let oldest = |h: &crate::query::Hit| {
        (
            registrant != Some(h.origin.as_str()),
            h.updated_at.is_empty(),
            h.updated_at.clone(),
            h.origin.clone(),
            h.id.clone(),
        )
    };
    copies.sort_by_key(oldest);
    let mut copies = copies.into_iter();
    let mut authoritative = copies.next().expect("a DOI's group has a copy");
    authoritative
        .also_at
        .extend(copies.map(|c| crate::query::AlsoAt {
            origin: c.origin,
            id: c.id,
        }));
    authoritative.also_at.sort();
    authoritative.also_at.dedup();
    authoritative
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::Hit;

    fn hit(origin: &str, id: &str, doi: &str, updated_at: &str) -> Hit {
        Hit {
            origin: origin.into(),
            id: id.into(),
            version: 1,
            title: String::new(),
            doi: doi.into(),
            publication_year: 0,
            updated_at: updated_at.into(),
            size_bytes: 0,
            score: 0.0,
            snippet: String::new(),
            access: Default::default(),
            visibility: crate::proto::Visibility::Public,
            also_at: Vec::new(),
            verified: true,
        }
    }

    fn keys(hits: &[Hit]) -> Vec<(String, String, Vec<String>)> {
        hits.iter()
            .map(|h| {
                (
                    h.origin.clone(),
                    h.id.clone(),
                    h.also_at
                        .iter()
                        .map(|a| format!("{}/{}", a.origin, a.id))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn one_hit_per_doi_the_oldest_copy_authoritative_others_also_at() {
        let hits = vec![
            hit("uni", "U-1", "10.1234/ABC", "2024-05-01T00:00:00Z"),
            hit("uni", "U-2", "", "2020-01-01T00:00:00Z"),
            hit(
                "polar",
                "P-1",
                "https://doi.org/10.1234/abc",
                "2021-01-01T00:00:00Z",
            ),
            hit("gen", "G-1", "", "2020-01-01T00:00:00Z"),
            hit("gen", "G-2", "doi:10.1234/abc", ""),
            hit("gen", "G-3", "10.9999/other", ""),
        ];
        assert_eq!(
            keys(&dedupe(hits, Registrants::default)),
            vec![
                // At the best-ranked copy's place, the oldest signed copy.
                (
                    "polar".into(),
                    "P-1".into(),
                    vec!["gen/G-2".into(), "uni/U-1".into()]
                ),
                // Records without a DOI never merge.
                ("uni".into(), "U-2".into(), vec![]),
                ("gen".into(), "G-1".into(), vec![]),
                ("gen".into(), "G-3".into(), vec![]),
            ]
        );
    }

    fn claim<'a>(origin: &'a str, prefixes: &'a [String], vouched: bool) -> Claim<'a> {
        Claim {
            origin,
            prefixes,
            vouched,
        }
    }

    #[test]
    fn the_registrants_copy_wins_even_when_younger_and_a_contested_prefix_falls_back_to_the_oldest()
    {
        let polar = vec!["10.5285".to_owned()];
        let uni = vec!["10.1234".to_owned(), "not-a-prefix".to_owned()];
        let gen = vec!["10.1234".to_owned()];
        let hits = || {
            vec![
                hit("uni", "U-1", "10.5285/ICE", "2019-01-01T00:00:00Z"),
                hit(
                    "polar",
                    "P-1",
                    "https://doi.org/10.5285/ice",
                    "2024-01-01T00:00:00Z",
                ),
                hit("gen", "G-1", "10.1234/x", "2024-01-01T00:00:00Z"),
                hit("uni", "U-2", "10.1234/X", "2023-01-01T00:00:00Z"),
                hit("polar", "P-2", "", "2020-01-01T00:00:00Z"),
                hit("gen", "G-2", "", "2020-01-01T00:00:00Z"),
            ]
        };
        let (registrants, conflicts) = Registrants::from_claims([
            claim("polar", &polar, true),
            claim("uni", &uni, true),
            claim("gen", &gen, true),
        ]);
        assert_eq!(
            conflicts,
            BTreeMap::from([(
                "10.1234".to_owned(),
                vec!["gen".to_owned(), "uni".to_owned()]
            )])
        );
        assert_eq!(
            keys(&dedupe(hits(), || &registrants)),
            vec![
                // polar alone registers 10.5285: its younger copy wins.
                ("polar".into(), "P-1".into(), vec!["uni/U-1".into()]),
                // 10.1234 is claimed twice: the oldest signed copy.
                ("uni".into(), "U-2".into(), vec!["gen/G-1".into()]),
                // Records without a DOI never merge.
                ("polar".into(), "P-2".into(), vec![]),
                ("gen".into(), "G-2".into(), vec![]),
            ]
        );
        // A sole claimant whose key set expired is no registrant.
        let (stale, conflicts) = Registrants::from_claims([claim("polar", &polar, false)]);
        assert!(conflicts.is_empty());
        assert_eq!(keys(&dedupe(hits(), || &stale))[0].0, "uni");
    }

    /// The registrants (read from the store) are asked for only when two
    /// hits share a DOI; a page without one comes back as it was.
    #[test]
    fn registrants_are_read_only_for_a_shared_doi() {
        let unique = vec![
            hit("uni", "U-1", "10.1234/abc", "2024-05-01T00:00:00Z"),
            hit("uni", "U-2", "", ""),
            hit("gen", "G-1", "", ""),
            hit("gen", "G-2", "10.1234/other", ""),
        ];
        let untouched = dedupe(unique.clone(), || -> Registrants {
            panic!("registrants read for a page without a shared DOI")
        });
        assert_eq!(untouched, unique);
        let shared = vec![
            hit("uni", "U-1", "10.1234/ABC", ""),
            hit("polar", "P-1", "https://doi.org/10.1234/abc", ""),
        ];
        let mut asked = 0;
        let merged = dedupe(shared, || {
            asked += 1;
            Registrants::default()
        });
        assert_eq!((merged.len(), asked), (1, 1));
    }

    // ------------------------------------------------ copies across pages

    /// A record of `origin` whose title says `ice` `weight` times (more
    /// ranks first for the query `ice`).
    fn copy(
        origin: &str,
        id: &str,
        doi: &str,
        weight: usize,
        updated_at: &str,
    ) -> crate::proto::DatasetRecord {
        crate::proto::DatasetRecord {
            origin: origin.into(),
            id: id.into(),
            version: 1,
            title: vec!["ice"; weight].join(" "),
            doi: doi.into(),
            publication_year: 2020,
            visibility: crate::proto::Visibility::Public as i32,
            updated_at: updated_at.into(),
            size_bytes: 1,
            ..Default::default()
        }
    }

    /// `record` with `visibility`, for `groups`.
    fn restricted(
        mut record: crate::proto::DatasetRecord,
        visibility: crate::proto::Visibility,
        groups: &[&str],
    ) -> crate::proto::DatasetRecord {
        record.visibility = visibility as i32;
        record.groups = groups.iter().map(|g| (*g).to_owned()).collect();
        record
    }

    /// An index of `records`, each committed on its own, so that copies
    /// of one DOI lie in different segments.
    fn holdings(
        records: Vec<crate::proto::DatasetRecord>,
    ) -> (
        std::sync::Arc<crate::index::HoldingsIndex>,
        tempfile::TempDir,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let index = std::sync::Arc::new(crate::index::HoldingsIndex::open(dir.path()).unwrap());
        for record in records {
            let op = crate::index::IndexOp::Upsert(record);
            index.apply(vec![op], &BTreeMap::new()).unwrap();
        }
        (index, dir)
    }

    /// A page's hits as [`keys`] gives them, and its total.
    type Page = (Vec<(String, String, Vec<String>)>, u64);

    /// Every page of `request` as `viewer` gets it, following the cursors.
    fn pages(
        index: &std::sync::Arc<crate::index::HoldingsIndex>,
        mut request: SearchRequest,
        viewer: &Viewer,
        registrants: &Registrants,
    ) -> Vec<Page> {
        let mut pages = Vec::new();
        loop {
            let prepared = index.prepare(&request, viewer).unwrap();
            let results = page(prepared, None, || registrants).unwrap();
            pages.push((keys(&results.hits), results.total));
            match results.next_cursor {
                Some(cursor) => request.after = Some(cursor),
                None => return pages,
            }
            assert!(pages.len() < 20, "the cursors do not end");
        }
    }

    fn shown(origin: &str, id: &str, also_at: &[&str]) -> (String, String, Vec<String>) {
        (
            origin.into(),
            id.into(),
            also_at.iter().map(|a| (*a).to_owned()).collect(),
        )
    }

    fn ice(limit: usize) -> SearchRequest {
        SearchRequest {
            text: "ice".into(),
            limit,
            ..Default::default()
        }
    }

    /// Ranked P-1, U-1, U-2, G-1, G-2 for `ice`; P-1 and U-2 are one DOI,
    /// G-2's DOI only starts like it, U-1 and G-1 have none.
    fn boundary_corpus() -> Vec<crate::proto::DatasetRecord> {
        vec![
            copy("polar", "P-1", "10.5285/ice", 5, "2020-01-01T00:00:00Z"),
            copy("uni", "U-1", "", 4, "2020-01-01T00:00:00Z"),
            copy(
                "uni",
                "U-2",
                "https://doi.org/10.5285/ICE",
                3,
                "2024-01-01T00:00:00Z",
            ),
            copy("gen", "G-1", "", 2, "2020-01-01T00:00:00Z"),
            copy("gen", "G-2", "10.5285/ice2", 2, "2020-01-01T00:00:00Z"),
        ]
    }

    #[test]
    fn copies_on_either_side_of_a_page_boundary_appear_once_on_the_first_page() {
        let (index, _dir) = holdings(boundary_corpus());
        // The ranking the pages cut: P-1 and U-2 on either side.
        let ranked = index.search(&ice(10), &Viewer::Anonymous).unwrap();
        let ids: Vec<&str> = ranked.hits.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["P-1", "U-1", "U-2", "G-1", "G-2"]);
        assert_eq!(
            pages(&index, ice(2), &Viewer::Anonymous, &Registrants::default()),
            vec![
                // The oldest copy, naming the one of the next page.
                (
                    vec![
                        shown("polar", "P-1", &["uni/U-2"]),
                        shown("uni", "U-1", &[])
                    ],
                    5
                ),
                // U-2 is not shown again; records without a DOI, and a
                // DOI that only starts like another, never merge.
                (vec![shown("gen", "G-1", &[])], 5),
                (vec![shown("gen", "G-2", &[])], 5),
            ]
        );
    }

    #[test]
    fn the_registrants_copy_wins_even_when_it_ranks_on_a_later_page() {
        let (index, _dir) = holdings(boundary_corpus());
        let prefixes = vec!["10.5285".to_owned()];
        let (uni, _) = Registrants::from_claims([claim("uni", &prefixes, true)]);
        assert_eq!(
            pages(&index, ice(2), &Viewer::Anonymous, &uni),
            vec![
                // At the place of the best-ranked copy, P-1.
                (
                    vec![
                        shown("uni", "U-2", &["polar/P-1"]),
                        shown("uni", "U-1", &[])
                    ],
                    5
                ),
                (vec![shown("gen", "G-1", &[])], 5),
                (vec![shown("gen", "G-2", &[])], 5),
            ]
        );
    }

    /// A copy the viewer may not see is matched by no lookup: it neither
    /// hides a copy the viewer sees nor is named, nor chosen.
    #[test]
    fn copies_the_viewer_may_not_see_are_neither_named_nor_hide_a_visible_copy() {
        let doi = "10.5285/ice";
        let (index, _dir) = holdings(vec![
            // Ranks first, and is the oldest copy.
            restricted(
                copy("uni", "H-1", doi, 6, "2018-01-01T00:00:00Z"),
                crate::proto::Visibility::Private,
                &[],
            ),
            copy("polar", "P-1", doi, 5, "2020-01-01T00:00:00Z"),
            copy("gen", "G-1", "", 4, "2020-01-01T00:00:00Z"),
            restricted(
                copy("uni", "U-2", doi, 3, "2019-01-01T00:00:00Z"),
                crate::proto::Visibility::Groups,
                &["ice-team"],
            ),
            copy("gen", "G-3", doi, 2, "2024-01-01T00:00:00Z"),
        ]);
        let none = Registrants::default();
        // Sees P-1, G-1 and G-3.
        assert_eq!(
            pages(&index, ice(1), &Viewer::Anonymous, &none),
            vec![
                (vec![shown("polar", "P-1", &["gen/G-3"])], 3),
                (vec![shown("gen", "G-1", &[])], 3),
                (vec![], 3),
            ]
        );
        // Outside the group: the same.
        let outsider = Viewer::peer_of("peer.example", "uni", &[]);
        assert_eq!(
            pages(&index, ice(1), &outsider, &none),
            pages(&index, ice(1), &Viewer::Anonymous, &none)
        );
        // In the group: U-2 too, the oldest it may see.
        let member = Viewer::peer_of("peer.example", "uni", &["ice-team"]);
        assert_eq!(
            pages(&index, ice(1), &member, &none),
            vec![
                (vec![shown("uni", "U-2", &["gen/G-3", "polar/P-1"])], 4),
                (vec![shown("gen", "G-1", &[])], 4),
                (vec![], 4),
                (vec![], 4),
            ]
        );
        // Filters bound the copies as they bound the hits.
        let filtered = SearchRequest {
            origins: vec!["polar".into(), "gen".into()],
            ..ice(1)
        };
        let operator = Viewer::Operator {
            node: "here.example".parse().unwrap(),
        };
        assert_eq!(
            pages(&index, filtered, &operator, &none),
            vec![
                (vec![shown("polar", "P-1", &["gen/G-3"])], 3),
                (vec![shown("gen", "G-1", &[])], 3),
                (vec![], 3),
            ]
        );
    }

    /// A next page whose snapshot is gone reads the index as it is now,
    /// where a copy ranked before the cursor may never have been on an
    /// earlier page: its dataset is shown (again, perhaps), not left out.
    #[test]
    fn a_page_that_lost_its_snapshot_leaves_out_no_dataset() {
        let doi = "10.5285/ice";
        let (index, _dir) = holdings(vec![
            copy("gen", "A-1", "", 5, "2020-01-01T00:00:00Z"),
            copy("gen", "A-2", "", 4, "2020-01-01T00:00:00Z"),
            copy("polar", "P-1", doi, 3, "2020-01-01T00:00:00Z"),
            copy("uni", "U-2", doi, 2, "2024-01-01T00:00:00Z"),
        ]);
        let none = Registrants::default();
        let first = page(
            index.prepare(&ice(2), &Viewer::Anonymous).unwrap(),
            None,
            || &none,
        )
        .unwrap();
        assert_eq!(
            keys(&first.hits),
            vec![shown("gen", "A-1", &[]), shown("gen", "A-2", &[])]
        );
        // A copy that ranks before the cursor arrives, and the page's
        // snapshot is dropped (as a revocation, or its age, drops it).
        let arrived = copy("gen", "X-1", doi, 6, "2025-01-01T00:00:00Z");
        index
            .apply(
                vec![crate::index::IndexOp::Upsert(arrived)],
                &BTreeMap::new(),
            )
            .unwrap();
        index.drop_snapshots();
        let mut next = ice(2);
        next.after = first.next_cursor;
        let second = page(
            index.prepare(&next, &Viewer::Anonymous).unwrap(),
            None,
            || &none,
        )
        .unwrap();
        assert_eq!(
            keys(&second.hits),
            vec![shown("polar", "P-1", &["uni/U-2"])]
        );
    }

    /// A caller who sees more on a next page (a group granted meanwhile)
    /// may see a copy ranked before the cursor that no earlier page showed:
    /// it leaves no hit out for it.
    #[test]
    fn a_caller_who_sees_more_on_a_next_page_is_left_no_dataset_out() {
        let doi = "10.5285/ice";
        let (index, _dir) = holdings(vec![
            restricted(
                copy("uni", "U-2", doi, 6, "2019-01-01T00:00:00Z"),
                crate::proto::Visibility::Groups,
                &["ice-team"],
            ),
            copy("gen", "A-1", "", 5, "2020-01-01T00:00:00Z"),
            copy("polar", "P-1", doi, 3, "2020-01-01T00:00:00Z"),
        ]);
        let none = Registrants::default();
        let outsider = Viewer::peer_of("peer.example", "uni", &[]);
        let first = page(index.prepare(&ice(1), &outsider).unwrap(), None, || &none).unwrap();
        assert_eq!(keys(&first.hits), vec![shown("gen", "A-1", &[])]);
        let member = Viewer::peer_of("peer.example", "uni", &["ice-team"]);
        let mut next = ice(1);
        next.after = first.next_cursor;
        let second = page(index.prepare(&next, &member).unwrap(), None, || &none).unwrap();
        assert_eq!(keys(&second.hits), vec![shown("polar", "P-1", &[])]);
    }

    /// More records matching a search than a dataset has copies, sharing
    /// one DOI, are one origin's records (granules): each stays a hit of
    /// its own, none is left out of every page.
    #[test]
    fn records_beyond_a_datasets_copies_sharing_a_doi_each_stay_a_hit() {
        let many = crate::index::MAX_DOI_COPIES + 1;
        let (index, _dir) = holdings(
            (0..many)
                .map(|i| copy("gen", &format!("G-{i:02}"), "10.5285/granules", 2, ""))
                .collect(),
        );
        let shown: Vec<String> = pages(&index, ice(5), &Viewer::Anonymous, &Registrants::default())
            .into_iter()
            .flat_map(|(hits, _)| hits)
            .map(|(origin, id, also_at)| {
                assert_eq!((origin.as_str(), also_at), ("gen", vec![]));
                id
            })
            .collect();
        let shown_ids: BTreeSet<&String> = shown.iter().collect();
        assert_eq!(shown_ids.len(), many);
        assert_eq!(shown.len(), many, "each record once: {shown:?}");
    }

    #[test]
    fn copies_merge_across_pages_sorted_by_size_or_update_too() {
        let sized = |mut record: crate::proto::DatasetRecord, size| {
            record.size_bytes = size;
            record
        };
        let doi = "10.5285/ice";
        // Ranked P-1, U-1, U-2, G-1 by either sort; U-1 and U-2 tie, and
        // their keys order them.
        let (index, _dir) = holdings(vec![
            sized(copy("polar", "P-1", doi, 1, "2024-03-01T00:00:00Z"), 300),
            sized(copy("uni", "U-1", "", 1, "2023-01-01T00:00:00Z"), 200),
            sized(copy("uni", "U-2", doi, 1, "2023-01-01T00:00:00Z"), 200),
            sized(copy("gen", "G-1", "", 1, "2022-01-01T00:00:00Z"), 100),
        ]);
        for sort in [crate::query::Sort::Size, crate::query::Sort::Updated] {
            let request = SearchRequest {
                sort,
                limit: 2,
                ..Default::default()
            };
            let ranked = index
                .search(
                    &SearchRequest {
                        limit: 10,
                        ..request.clone()
                    },
                    &Viewer::Anonymous,
                )
                .unwrap();
            let ids: Vec<&str> = ranked.hits.iter().map(|h| h.id.as_str()).collect();
            assert_eq!(ids, ["P-1", "U-1", "U-2", "G-1"], "{sort:?}");
            assert_eq!(
                pages(&index, request, &Viewer::Anonymous, &Registrants::default()),
                vec![
                    // U-2 is the older copy, at P-1's place.
                    (
                        vec![
                            shown("uni", "U-2", &["polar/P-1"]),
                            shown("uni", "U-1", &[])
                        ],
                        4
                    ),
                    (vec![shown("gen", "G-1", &[])], 4),
                ],
                "{sort:?}"
            );
        }
    }

    #[test]
    fn doi_keys_ignore_case_and_resolver_prefixes() {
        assert_eq!(doi_key(" DOI:10.5/X "), Some("10.5/x".into()));
        assert_eq!(doi_key("https://dx.doi.org/10.5/x"), Some("10.5/x".into()));
        assert_eq!(doi_key(""), None);
        assert_eq!(doi_key("doi:"), None);
    }
}
