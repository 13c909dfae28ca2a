//! `Federation`: the peer-facing service, over mutual TLS with pinned keys.
//! Every call needs a pinned, active peer; the logic is the core's
//! ([`meridian_core::sync`]).

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use meridian_core::node::Node;
use meridian_core::sync::{self, Replicator};
use meridian_core::trust::Peer;
use meridian_proto as proto;
use meridian_proto::federation_server::Federation;
use meridian_proto::{pull_item, PullItem};
use tonic::{Request, Response, Status};

use crate::limit::{self, RateLimiter};
use crate::{caller, status};

/// Items read from the store per blocking step while serving a pull.
const SERVE_BATCH: usize = 1024;

pub struct FederationService {
    node: Arc<Node>,
    replicator: Arc<Replicator>,
    rates: RateLimiter,
}

impl FederationService {
    pub fn new(replicator: Arc<Replicator>) -> Self {
        Self {
            rates: RateLimiter::new(&replicator.node().config().limits),
            node: replicator.node().clone(),
            replicator,
        }
    }

    /// The pinned peer calling, once its request fits its rate.
    fn peer<T>(&self, request: &Request<T>) -> Result<Peer, Status> {
        let peer = caller::peer(&self.node, request)?.ok_or_else(|| {
            Status::unauthenticated("federation requires a pinned client certificate")
        })?;
        self.rates
            .check(&limit::client(request, Some(peer.node_id.as_str())))?;
        Ok(peer)
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
        let info = tokio::task::spawn_blocking(move || sync::node_info(&node))
            .await
            .map_err(status::join)?
            .map_err(status::sync)?;
        Ok(Response::new(info))
    }

    type PullStream = ItemStream;

    async fn pull(
        &self,
        request: Request<proto::PullRequest>,
    ) -> Result<Response<ItemStream>, Status> {
        let viewer = caller::peer_viewer(self.peer(&request)?);
        let req = request.into_inner();
        let node = self.node.clone();
        let origin = req.origin.clone();
        let head = tokio::task::spawn_blocking(move || sync::serve_checkpoint(&node, &origin))
            .await
            .map_err(status::join)?
            .map_err(status::sync)?;
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
                        let _ = tx.send(Err(status::sync(e))).await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(status::join(e))).await;
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
        self.replicator
            .hinted(peer.node_id.as_str(), &hint.origin, hint.size);
        Ok(Response::new(proto::HintResponse {}))
    }
}
