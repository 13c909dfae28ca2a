//! Answers a search (DESIGN §8): the hits a viewer may see from the local
//! index, and the completeness report that says what the answer covers.
//!
//! This node's own holdings are complete (`ok`); each peer's are a replica
//! as of the last successful sync with it. The `live` scope asks peers now
//! ([`live`]).

pub mod audit;
pub mod live;

use std::collections::BTreeMap;

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
    /// The origin's key set expired: still searched, no longer vouched for
    /// ([`Node::is_stale`]).
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
///
/// Cursors leave this node sealed ([`crate::query::cursor::CursorKey`]):
/// one that comes back is opened and checked before the index reads it,
/// and the next page's cursor keeps the time of the search's first page.
pub fn search(
    node: &Node,
    replicator: &Replicator,
    request: &SearchRequest,
    viewer: &Viewer,
) -> Result<Answer, SearchError> {
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
    let mut results = node.index().search(&request, viewer)?;
    results.hits = dedupe(std::mem::take(&mut results.hits));
    results.next_cursor = results
        .next_cursor
        .map(|token| node.cursor_key().seal(&token, issued));
    let mut completeness = vec![own_line(node)];
    if !matches!(request.scope, Scope::Local { .. }) {
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
        if *viewer == Viewer::Anonymous {
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

/// `coverage`, unless the origin's key set expired: then `Stale`, whatever
/// answered for it. Its hits are kept; the caller is told nothing vouches
/// for its keys.
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
fn doi_key(doi: &str) -> Option<String> {
    let canonical = crate::record::canonical_doi(doi);
    (!canonical.is_empty()).then_some(canonical)
}

/// One hit per DOI: copies of the same DOI from several origins become the
/// authoritative copy's hit, at the place of the best-ranked copy, listing
/// the others in [`Hit::also_at`]. The authoritative copy is the oldest
/// signed one (earliest `updated_at`, which the origin signed; then origin
/// and id), as no registry of DOI registrants is known to the node. Hits
/// without a DOI never merge.
pub fn dedupe(hits: Vec<crate::query::Hit>) -> Vec<crate::query::Hit> {
    use std::collections::BTreeMap;
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
                let oldest = |h: &crate::query::Hit| {
                    (
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
        })
        .collect()
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
            keys(&dedupe(hits)),
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

    #[test]
    fn doi_keys_ignore_case_and_resolver_prefixes() {
        assert_eq!(doi_key(" DOI:10.5/X "), Some("10.5/x".into()));
        assert_eq!(doi_key("https://dx.doi.org/10.5/x"), Some("10.5/x".into()));
        assert_eq!(doi_key(""), None);
        assert_eq!(doi_key("doi:"), None);
    }
}
