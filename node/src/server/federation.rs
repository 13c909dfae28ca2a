//! The peer-facing `Federation` service and its client: tonic on both sides
//! of [`crate::sync`], which holds the logic.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::node::{Node, Viewer};
use crate::proto;
use crate::proto::federation_client::FederationClient;
use crate::proto::federation_server::Federation;
use crate::proto::{pull_item, PullItem};
use crate::sync::{self, Connector, FederationPeer, PullStream, SyncError};
use crate::tls::{self, PeerConnectInfo};
use crate::trust::{Peer, PeerState};

/// Items read from the store per blocking step while serving a pull.
const SERVE_BATCH: usize = 1024;

/// Who a request comes from, judged per request: a peer suspended or revoked
/// after its connection was made is refused from then on.
pub fn caller<T>(node: &Node, request: &Request<T>) -> Result<Option<Peer>, Status> {
    let Some(spki) = request
        .extensions()
        .get::<PeerConnectInfo>()
        .and_then(|info| info.client_spki.clone())
    else {
        return Ok(None);
    };
    let peer = node
        .trust()
        .by_tls_key(&spki)
        .map_err(|e| crate::server::status(e.into()))?
        .ok_or_else(|| Status::unauthenticated("certificate key is not pinned here"))?;
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
    Ok(match caller(node, request)? {
        Some(peer) => Viewer::Peer {
            node: peer.node_id,
            groups: peer.groups,
        },
        None => Viewer::Anonymous,
    })
}

fn sync_status(error: SyncError) -> Status {
    match &error {
        SyncError::Frozen(_) | SyncError::NotTrusted(_) => {
            Status::failed_precondition(error.to_string())
        }
        SyncError::Store(_) | SyncError::Trust(_) => {
            tracing::error!(error = %error, "federation request failed");
            Status::internal("internal error; the node's log has the details")
        }
        _ => Status::unavailable(error.to_string()),
    }
}

pub struct FederationService {
    node: Arc<Node>,
}

impl FederationService {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    fn peer<T>(&self, request: &Request<T>) -> Result<Peer, Status> {
        caller(&self.node, request)?.ok_or_else(|| {
            Status::unauthenticated("federation requires a pinned client certificate")
        })
    }
}

type ItemStream = Pin<Box<dyn Stream<Item = Result<PullItem, Status>> + Send>>;

#[tonic::async_trait]
impl Federation for FederationService {
    async fn get_node_info(
        &self,
        request: Request<proto::NodeInfoRequest>,
    ) -> Result<Response<proto::NodeInfo>, Status> {
        self.peer(&request)?;
        let node = self.node.clone();
        let info = tokio::task::spawn_blocking(move || -> Result<proto::NodeInfo, SyncError> {
            let mut origins = Vec::new();
            for (origin, _) in node.store().origins()? {
                if node.is_frozen(&origin)? {
                    continue;
                }
                if let Some((_, size)) = sync::serve_checkpoint(&node, &origin)? {
                    origins.push(proto::OriginHead { origin, size });
                }
            }
            let key_set = node.store().entry(node.node_id(), 0)?.unwrap_or_default();
            Ok(proto::NodeInfo {
                node_id: node.node_id().to_owned(),
                key_set: prost::Message::decode(key_set.as_slice()).ok(),
                endpoint: node.endpoint(),
                origins,
                key_set_index: 0,
            })
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(sync_status)?;
        Ok(Response::new(info))
    }

    type PullStream = ItemStream;

    async fn pull(
        &self,
        request: Request<proto::PullRequest>,
    ) -> Result<Response<ItemStream>, Status> {
        let peer = self.peer(&request)?;
        let viewer = Viewer::Peer {
            node: peer.node_id.clone(),
            groups: peer.groups.clone(),
        };
        let req = request.into_inner();
        let node = self.node.clone();
        let origin = req.origin.clone();
        let head = tokio::task::spawn_blocking(move || sync::serve_checkpoint(&node, &origin))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(sync_status)?;
        let Some((checkpoint, size)) = head else {
            return Err(Status::not_found(format!("no log of {} here", req.origin)));
        };
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let node = self.node.clone();
        tokio::spawn(async move {
            let first = PullItem {
                index: size,
                item: Some(pull_item::Item::Checkpoint(checkpoint)),
            };
            if tx.send(Ok(first)).await.is_err() {
                return;
            }
            let mut from = req.after_index;
            while from < size {
                let (n, v, o) = (node.clone(), viewer.clone(), req.origin.clone());
                let batch = tokio::task::spawn_blocking(move || {
                    sync::serve_batch(&n, &v, &o, from, size, SERVE_BATCH)
                })
                .await;
                let items = match batch {
                    // More than the proof alone: entries to send.
                    Ok(Ok(items)) if items.len() > 1 => items,
                    Ok(Ok(_)) => break,
                    Ok(Err(e)) => {
                        let _ = tx.send(Err(sync_status(e))).await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                        return;
                    }
                };
                // The last item is the batch's proof; its index is the batch's end.
                from = items.last().map(|i| i.index).unwrap_or(size);
                for item in items {
                    if tx.send(Ok(item)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn hint(
        &self,
        request: Request<proto::HintRequest>,
    ) -> Result<Response<proto::HintResponse>, Status> {
        let peer = self.peer(&request)?;
        let hint = request.into_inner();
        tracing::debug!(peer = %peer.node_id, origin = %hint.origin, size = hint.size, "hint");
        let ours = self.node.store().log_size(&hint.origin).unwrap_or(0);
        if hint.size > ours {
            self.node.sync_state().wake.notify_one();
        }
        Ok(Response::new(proto::HintResponse {}))
    }
}

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
        tonic::Code::ResourceExhausted | tonic::Code::OutOfRange => {
            SyncError::TooLarge { peer, message }
        }
        _ => SyncError::Unreachable {
            peer,
            message: format!("{}: {message}", status.code()),
        },
    }
}

#[tonic::async_trait]
impl FederationPeer for RemotePeer {
    async fn node_info(&self) -> Result<proto::NodeInfo, SyncError> {
        let mut client = self.client.clone();
        let request = Request::new(proto::NodeInfoRequest {});
        client
            .get_node_info(request)
            .await
            .map(Response::into_inner)
            .map_err(|s| remote_error(&self.node_id, s))
    }

    async fn pull(&self, origin: &str, after_index: u64) -> Result<PullStream, SyncError> {
        let mut client = self.client.clone();
        let stream = client
            .pull(proto::PullRequest {
                origin: origin.to_owned(),
                after_index,
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
}

/// Dials pinned peers with this node's TLS identity.
pub fn connector(node: Arc<Node>) -> Connector {
    Arc::new(move |peer: Peer| {
        let node = node.clone();
        Box::pin(async move {
            let unreachable = |message: String| SyncError::Unreachable {
                peer: peer.node_id.clone(),
                message,
            };
            let config = tls::client_config(&peer.node_id, peer.tls_keys.clone(), Some(node.tls()))
                .map_err(|e| unreachable(e.to_string()))?;
            let channel = tls::connect(&peer.endpoint, config, Duration::from_secs(5))
                .await
                .map_err(|e| {
                    if tls::is_not_the_dialed_node(&e) {
                        SyncError::Impostor {
                            peer: peer.node_id.clone(),
                        }
                    } else {
                        unreachable(error_chain(&e))
                    }
                })?;
            let max = node.config().limits.max_message_bytes;
            let client = FederationClient::new(channel)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max);
            Ok(Arc::new(RemotePeer {
                node_id: peer.node_id.clone(),
                client,
            }) as Arc<dyn FederationPeer>)
        })
    })
}

/// An error with its causes, for messages an operator reads.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Sends a hint about `origin` at `size` to every active peer; failures only
/// delay the change to the peer's next interval.
pub async fn send_hints(node: Arc<Node>, connector: Connector, origin: String, size: u64) {
    let Ok(peers) = node.trust().active() else {
        return;
    };
    for peer in peers {
        let connector = connector.clone();
        let origin = origin.clone();
        tokio::spawn(async move {
            let id = peer.node_id.clone();
            let result = tokio::time::timeout(Duration::from_secs(3), async {
                connector(peer).await?.hint(&origin, size).await
            })
            .await;
            if let Ok(Err(e)) = result {
                tracing::debug!(peer = %id, error = %e, "hint not delivered");
            }
        });
    }
}
