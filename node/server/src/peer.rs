//! The client side of `Federation`: a pinned peer dialed over TLS with this
//! node's identity, behind the core's [`FederationPeer`].

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use meridian_core::node::Node;
use meridian_core::sync::{Connector, FederationPeer, PullStream, SyncError, MAX_PULL_ITEM_BYTES};
use meridian_core::trust::Peer;
use meridian_proto as proto;
use meridian_proto::federation_client::FederationClient;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::{status, tls};

/// How long dialing a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest message decoded from a peer: a pulled item at its bound, or a
/// `NodeInfo` (one key-set envelope and the heads of the origins it holds).
/// A larger one is refused by the decoder before it is buffered whole.
const MAX_DECODE_BYTES: usize = MAX_PULL_ITEM_BYTES + 64 * 1024;

/// A peer's Federation service over pinned-key TLS.
pub struct RemotePeer {
    node_id: String,
    client: FederationClient<Channel>,
}

fn remote_error(peer: &str, status: Status) -> SyncError {
    let message = status.message().to_owned();
    let peer = peer.to_owned();
    match status.code() {
        tonic::Code::PermissionDenied
        | tonic::Code::Unauthenticated
        | tonic::Code::FailedPrecondition
        | tonic::Code::NotFound => SyncError::Refused { peer, message },
        // tonic refuses a message over its size limit as OUT_OF_RANGE; a
        // peer's rates and limits answer RESOURCE_EXHAUSTED.
        tonic::Code::OutOfRange => SyncError::TooLarge { peer, message },
        tonic::Code::ResourceExhausted => SyncError::Busy { peer, message },
        _ => SyncError::Unreachable {
            peer,
            message: format!("{}: {message}", status.code()),
        },
    }
}

#[async_trait::async_trait]
impl FederationPeer for RemotePeer {
    async fn node_info(&self) -> Result<proto::NodeInfo, SyncError> {
        let mut client = self.client.clone();
        client
            .get_node_info(Request::new(proto::NodeInfoRequest {}))
            .await
            .map(Response::into_inner)
            .map_err(|s| remote_error(&self.node_id, s))
    }

    async fn pull(
        &self,
        origin: &str,
        after_index: u64,
        max_batch: u32,
    ) -> Result<PullStream, SyncError> {
        let mut client = self.client.clone();
        let stream = client
            .pull(proto::PullRequest {
                origin: origin.to_owned(),
                after_index,
                max_batch,
            })
            .await
            .map_err(|s| remote_error(&self.node_id, s))?
            .into_inner();
        let peer = self.node_id.clone();
        Ok(Box::pin(
            stream.map(move |item| item.map_err(|s| remote_error(&peer, s))),
        ))
    }

    async fn hint(&self, origin: &str, size: u64) -> Result<(), SyncError> {
        let mut client = self.client.clone();
        client
            .hint(proto::HintRequest {
                origin: origin.to_owned(),
                size,
            })
            .await
            .map(|_| ())
            .map_err(|s| remote_error(&self.node_id, s))
    }

    async fn search(
        &self,
        request: proto::PeerSearchRequest,
        within: std::time::Duration,
    ) -> Result<proto::PeerSearchResponse, SyncError> {
        let mut client = self.client.clone();
        // Sent as `grpc-timeout`: the peer's search stops when this one
        // stops waiting, not at its own longest.
        let mut request = tonic::Request::new(request);
        request.set_timeout(within);
        client
            .search(request)
            .await
            .map(Response::into_inner)
            .map_err(|s| remote_error(&self.node_id, s))
    }

    async fn witness(
        &self,
        request: proto::WitnessRequest,
    ) -> Result<proto::WitnessResponse, SyncError> {
        let mut client = self.client.clone();
        client
            .witness(request)
            .await
            .map(Response::into_inner)
            .map_err(|s| remote_error(&self.node_id, s))
    }
}

/// Dials pinned peers with `node`'s TLS identity.
pub fn connector(node: Arc<Node>) -> Connector {
    Arc::new(move |peer: Peer| {
        let node = node.clone();
        Box::pin(async move {
            let unreachable = |message: String| SyncError::Unreachable {
                peer: peer.node_id.to_string(),
                message,
            };
            // The keys of the peer's current key set, verified here from
            // its pinned root: a TLS key rotation needs no re-pinning.
            let pins = node
                .peer_tls_keys(&peer)
                .map_err(|e| unreachable(format!("its TLS keys: {e}")))?;
            let config = tls::client_config(&peer.node_id, pins, Some(&node.tls()))
                .map_err(|e| unreachable(e.to_string()))?;
            let channel = tls::connect(&peer.endpoint, config, CONNECT_TIMEOUT)
                .await
                .map_err(|e| {
                    if tls::is_not_the_dialed_node(&e) {
                        SyncError::Impostor {
                            peer: peer.node_id.to_string(),
                        }
                    } else {
                        unreachable(status::chain(&e))
                    }
                })?;
            let max = node.config().limits.max_message_bytes;
            let client = FederationClient::new(channel)
                .max_decoding_message_size(MAX_DECODE_BYTES.min(max))
                .max_encoding_message_size(max);
            Ok(Arc::new(RemotePeer {
                node_id: peer.node_id.to_string(),
                client,
            }) as Arc<dyn FederationPeer>)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that holds this node to its rate is busy, not at fault: the
    /// refusal is not counted against it as a rejection of what it sent,
    /// and not reported as a message too large, which tonic answers as
    /// OUT_OF_RANGE.
    #[test]
    fn a_rate_refusal_is_busy_and_an_oversized_message_a_rejection() {
        let busy = remote_error("uni", Status::resource_exhausted("too many requests"));
        assert!(matches!(busy, SyncError::Busy { .. }), "{busy}");
        assert!(!busy.is_rejection());
        assert_eq!(busy.to_string(), "uni: busy: too many requests");
        let large = remote_error(
            "uni",
            Status::out_of_range("decoded message length too large"),
        );
        assert!(matches!(large, SyncError::TooLarge { .. }), "{large}");
        assert!(large.is_rejection());
    }
}
