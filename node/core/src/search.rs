//! Answers a search (DESIGN §8): the hits a viewer may see from the local
//! index, and the completeness report that says what the answer covers.
//!
//! This node's own holdings are complete (`ok`); each peer's are a replica
//! as of the last successful sync with it.

use crate::node::Node;
use crate::query::{Scope, SearchError, SearchRequest, SearchResults};
use crate::sync::Replicator;
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
    results.next_cursor = results
        .next_cursor
        .map(|token| node.cursor_key().seal(&token, issued));
    let mut completeness = vec![Completeness {
        origin: node.node_id().to_string(),
        coverage: Coverage::Ok,
        as_of: String::new(),
        peers: 0,
    }];
    if !matches!(request.scope, Scope::Local { .. }) {
        let synced = replicator.status();
        let peers = node
            .trust()
            .list()
            .map_err(|e| SearchError::Unavailable(e.to_string()))?;
        let lines = peers
            .into_iter()
            .filter(|p| p.state != PeerState::Revoked)
            .map(|peer| Completeness {
                as_of: synced
                    .get(peer.node_id.as_str())
                    .map(|s| s.last_sync.clone())
                    .unwrap_or_default(),
                origin: peer.node_id.to_string(),
                coverage: Coverage::Replica,
                peers: 0,
            });
        if *viewer == Viewer::Anonymous {
            // Who this node's peers are is not for the open network: one
            // line counts them, as of the oldest sync (none if one never
            // synced: RFC 3339 strings of one form sort by time).
            let lines: Vec<Completeness> = lines.collect();
            if !lines.is_empty() {
                let oldest = lines
                    .iter()
                    .map(|l| l.as_of.clone())
                    .min()
                    .unwrap_or_default();
                completeness.push(Completeness {
                    origin: String::new(),
                    coverage: Coverage::Replica,
                    as_of: oldest,
                    peers: lines.len() as u32,
                });
            }
        } else {
            completeness.extend(lines);
        }
    }
    Ok(Answer {
        results,
        completeness,
    })
}
