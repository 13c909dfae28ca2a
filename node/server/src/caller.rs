//! Who is calling, judged per request from the TLS connection: a pinned
//! peer (by its certificate's key) or an anonymous client. A peer suspended
//! or revoked after its connection was made is refused from then on.

use meridian_core::node::Node;
use meridian_core::trust::{Peer, PeerState};
use meridian_core::visibility::Viewer;
use tonic::{Request, Status};

use crate::tls::PeerConnectInfo;

/// The pinned peer behind a request, `None` for a client without a
/// certificate; an error for a peer that may not call now.
pub fn peer<T>(node: &Node, request: &Request<T>) -> Result<Option<Peer>, Status> {
    let Some(spki) = request
        .extensions()
        .get::<PeerConnectInfo>()
        .and_then(|info| info.client_spki.clone())
    else {
        return Ok(None);
    };
    let peer = node
        .peer_by_tls_key(&spki)
        .map_err(crate::status::node)?
        .ok_or_else(|| {
            Status::unauthenticated("certificate key is not in the key set of a peer pinned here")
        })?;
    match peer.state {
        PeerState::Active => Ok(Some(peer)),
        PeerState::Suspended => Err(Status::permission_denied(format!(
            "{} is suspended",
            peer.node_id
        ))),
        PeerState::Revoked => Err(Status::permission_denied(format!(
            "{} is revoked",
            peer.node_id
        ))),
    }
}

/// The viewer a request speaks for (anonymous without a certificate).
pub fn viewer<T>(node: &Node, request: &Request<T>) -> Result<Viewer, Status> {
    Ok(match peer(node, request)? {
        Some(peer) => peer_viewer(node, peer)?,
        None => Viewer::Anonymous,
    })
}

/// What a pinned peer may see: per origin, what that origin's latest
/// audience held here grants it (`Node::peer_viewer`), never what this
/// node's own trust store says of the peer's groups.
pub fn peer_viewer(node: &Node, peer: Peer) -> Result<Viewer, Status> {
    node.peer_viewer(&peer.node_id).map_err(crate::status::node)
}
