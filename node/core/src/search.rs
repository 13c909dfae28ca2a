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
    let results = node.index().search(request, viewer)?;
    let mut completeness = vec![Completeness {
        origin: node.node_id().to_string(),
        coverage: Coverage::Ok,
        as_of: String::new(),
    }];
    if !matches!(request.scope, Scope::Local { .. }) {
        let synced = replicator.status();
        let peers = node
            .trust()
            .list()
            .map_err(|e| SearchError::Unavailable(e.to_string()))?;
        for peer in peers.into_iter().filter(|p| p.state != PeerState::Revoked) {
            let as_of = synced
                .get(peer.node_id.as_str())
                .map(|s| s.last_sync.clone())
                .unwrap_or_default();
            completeness.push(Completeness {
                origin: peer.node_id.to_string(),
                coverage: Coverage::Replica,
                as_of,
            });
        }
    }
    Ok(Answer {
        results,
        completeness,
    })
}
