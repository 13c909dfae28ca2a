//! Meridian's edge: the gRPC services over the core, the TLS they run on,
//! and the runtime that owns a node's listeners and background tasks.
//!
//! | module | owns |
//! | --- | --- |
//! | [`runtime`] | binds the listeners, assembles the servers, runs and stops the tasks |
//! | [`stack`] | the one server stack every listener uses: limits, timeouts, tracing |
//! | [`caller`] | who is calling: a pinned peer or an anonymous client |
//! | [`limit`] | per-client request rates |
//! | [`catalog`] | `Catalog`: search and read, anonymous callers allowed |
//! | [`federation`] | `Federation`: the peer-facing service (pull, node info, hints) |
//! | [`admin`] | `Admin`: the operator's service on the Unix socket |
//! | [`http`] | the HTTP server beside gRPC: listener, stack, CORS, `/healthz` |
//! | [`forwarded`] | the client behind a trusted reverse proxy (`X-Forwarded-For`) |
//! | [`api`] | the HTTP/JSON API (`/api/v1`) over [`catalog`], and its OpenAPI document |
//! | [`oai`] | the OAI-PMH 2.0 provider at `/oai` on the HTTP server |
//! | [`metrics`] | `/metrics` (Prometheus) on its own listener: kept counters and state read at scrape time |
//! | [`page`] | the search page and a page per record, with JSON-LD |
//! | [`peer`] | the client side of `Federation`: dialing pinned peers |
//! | [`admin_socket`] | binding the admin socket, the filter that lets any client's `:authority` in, and the client that reaches it |
//! | [`convert`] | wire ⇄ domain conversions |
//! | [`status`] | the one mapping from domain errors to gRPC codes (and those to HTTP statuses) |
//! | [`tls`] | pinned-key TLS 1.3 (rustls with ring) |

pub mod admin;
pub mod admin_socket;
pub mod api;
pub mod caller;
pub mod catalog;
pub mod convert;
pub mod federation;
pub mod fetch;
pub mod forwarded;
pub mod http;
pub mod idle;
pub mod limit;
pub mod metrics;
pub mod notify;
pub mod oai;
pub mod page;
pub mod peer;
pub mod runtime;
pub mod stack;
pub mod status;
pub mod tls;
pub mod web;

pub use runtime::{serve, Listeners, ServeError};

/// An import line of record `id` of the Polar Data Center with
/// `visibility`, titled "Ice core `id`", in `discipline`.
#[cfg(test)]
pub(crate) fn record_line(id: &str, visibility: &str, discipline: &str) -> String {
    serde_json::json!({
        "id": id,
        "title": format!("Ice core {id}"),
        "creators": [{"name": "Nansen, Fridtjof"}],
        "publisher": "Polar Data Center",
        "publication_year": 2021,
        "resource_type": "Dataset",
        "license": "CC-BY-4.0",
        "access": "open",
        "visibility": visibility,
        "disciplines": [discipline],
        "updated_at": "2024-01-01T00:00:00Z",
    })
    .to_string()
}

/// A new node `polar` in a temporary directory, opened with the
/// configuration overrides `env` (`MERIDIAN_…` names), and its replicator.
#[cfg(test)]
pub(crate) fn test_node(
    env: &[(&str, &str)],
) -> (
    std::sync::Arc<meridian_core::node::Node>,
    std::sync::Arc<meridian_core::sync::Replicator>,
    tempfile::TempDir,
) {
    use meridian_core::node::Node;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("polar");
    Node::create(
        &data,
        &"polar".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let node = Node::open(&data, &env).unwrap();
    let replicator =
        meridian_core::sync::Replicator::new(node.clone(), peer::connector(node.clone()));
    (node, replicator, dir)
}

/// The TLS handshake's check of a client certificate key: a pinned peer
/// whose current key set lists the key (or, before any is held here, whose
/// invitation named it) and that is active or suspended completes the
/// handshake (a suspended one is
/// then told per request why it is refused); a revoked or unknown key is
/// refused outright, and so is a key that could be a peer's whose key chain
/// does not verify here, or two peers' (`Node::peer_by_tls_key`), with why.
fn trust_check(node: std::sync::Arc<meridian_core::node::Node>) -> tls::ClientCheck {
    use meridian_core::trust::PeerState;
    std::sync::Arc::new(move |spki: &[u8]| match node.peer_by_tls_key(spki) {
        Ok(Some(peer)) => match peer.state {
            PeerState::Active | PeerState::Suspended => Ok(()),
            PeerState::Revoked => Err(format!("{} is revoked", peer.node_id)),
        },
        Ok(None) => Err("certificate key is not in the key set of a peer pinned here".to_owned()),
        Err(e) => Err(status::chain(&e)),
    })
}
