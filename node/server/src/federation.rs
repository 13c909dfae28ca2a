//! `Federation`: the peer-facing service, over mutual TLS with pinned keys.
//! Every call needs a pinned, active peer; the logic is the core's
//! ([`meridian_core::sync`]).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use meridian_core::node::Node;
use meridian_core::sync::{self, Replicator};
use meridian_core::trust::Peer;
use meridian_proto as proto;
use meridian_proto::federation_server::Federation;
use meridian_proto::{pull_item, PullItem};
use tonic::{Request, Response, Status};

use crate::limit::{self, RateLimiter};
use crate::{caller, convert, status};
use meridian_core::query::SearchError;
use meridian_core::search::audit::QueryAudit;
use meridian_core::search::live::{self, OnBehalfOf};

/// Items read from the store per blocking step while serving a pull.
const SERVE_BATCH: usize = 1024;
/// The smallest batch served when a puller asks for small ones: each batch
/// carries a proof, so smaller would spend more on proofs than entries.
const MIN_SERVE_BATCH: usize = 16;

/// Entries per batch for a puller that asked for `asked` (0: no wish).
fn batch_size(asked: u32) -> usize {
    match asked {
        0 => SERVE_BATCH,
        n => (n as usize).clamp(MIN_SERVE_BATCH, SERVE_BATCH),
    }
}

/// Items of a pull made off the async executor (they read the store).
async fn serve(
    make: impl FnOnce() -> Result<Vec<PullItem>, sync::SyncError> + Send + 'static,
) -> Result<Vec<PullItem>, Status> {
    tokio::task::spawn_blocking(make)
        .await
        .map_err(status::join)?
        .map_err(status::sync)
}

/// Sends `item` to a pull's reader unless it has taken nothing for `idle`;
/// `false` when the pull is over (the reader left or stopped reading), so
/// the serving task and the batch it holds never wait on a reader forever.
async fn send_within<T>(
    tx: &tokio::sync::mpsc::Sender<T>,
    item: T,
    idle: Duration,
    peer: &str,
) -> bool {
    match tokio::time::timeout(idle, tx.send(item)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            tracing::warn!(peer = %peer, secs = idle.as_secs(), "pull ended: the reader took nothing");
            false
        }
    }
}

fn viewer_name(viewer: &meridian_core::visibility::Viewer) -> String {
    use meridian_core::visibility::Viewer;
    match viewer {
        Viewer::Peer { node, .. } | Viewer::Operator { node } => node.to_string(),
        Viewer::Anonymous => "anonymous".to_owned(),
    }
}

pub struct FederationService {
    node: Arc<Node>,
    replicator: Arc<Replicator>,
    rates: RateLimiter,
}

impl FederationService {
    pub fn new(replicator: Arc<Replicator>) -> Self {
        Self {
            rates: RateLimiter::new(
                &replicator.node().config().limits,
                replicator.node().metrics(),
            ),
            node: replicator.node().clone(),
            replicator,
        }
    }

    /// The pinned peer calling, once its request fits its rate.
    fn peer<T>(&self, request: &Request<T>) -> Result<Peer, Status> {
        self.peer_calling(request, "")
    }

    /// The pinned peer forwarding a live search, once it fits the rate of
    /// its searches: a bucket of their own, so that a peer whose users
    /// search without pause spends it, never the rate its pulls, hints and
    /// witness questions need to keep its replicas current.
    fn searching_peer<T>(&self, request: &Request<T>) -> Result<Peer, Status> {
        self.peer_calling(request, ", searching")
    }

    fn peer_calling<T>(&self, request: &Request<T>, calls: &str) -> Result<Peer, Status> {
        let peer = caller::peer(&self.node, request)?.ok_or_else(|| {
            Status::unauthenticated("federation requires a pinned client certificate")
        })?;
        let client = limit::client(request, Some(peer.node_id.as_str()));
        self.rates.check(&format!("{client}{calls}"))?;
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
        let peer = self.peer(&request)?;
        let req = request.into_inner();
        // An origin pulling its own log back (recovering after a restore)
        // receives every entry it signed: they are its own records.
        let viewer = if peer.node_id.as_str() == req.origin {
            meridian_core::visibility::Viewer::Operator { node: peer.node_id }
        } else {
            caller::peer_viewer(&self.node, peer)?
        };
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
        // A peer that stops reading ends its pull after the idle timeout
        // that bounds a pulling node's wait for items.
        let idle = Duration::from_secs(node.config().sync.idle_timeout_secs);
        let peer_name = viewer_name(&viewer);
        tokio::spawn(async move {
            let first = PullItem {
                index: size,
                item: Some(pull_item::Item::Checkpoint(checkpoint)),
            };
            if !send_within(&tx, Ok(first), idle, &peer_name).await {
                return;
            }
            // The key sets after the caller's cursor, so it can verify the
            // checkpoint and the entries of keys it does not know yet.
            let (n, o, after) = (node.clone(), req.origin.clone(), req.after_index);
            let announced = match serve(move || sync::serve_key_sets(&n, &o, after, size)).await {
                Ok(items) => items,
                Err(e) => {
                    send_within(&tx, Err(e), idle, &peer_name).await;
                    return;
                }
            };
            for item in announced {
                if !send_within(&tx, Ok(item), idle, &peer_name).await {
                    return;
                }
            }
            let mut from = req.after_index;
            let per_batch = batch_size(req.max_batch);
            while from < size {
                let (n, v, o) = (node.clone(), viewer.clone(), req.origin.clone());
                let batch = serve(move || sync::serve_batch(&n, &v, &o, from, size, per_batch));
                let items = match batch.await {
                    // More than the proof alone: entries to send.
                    Ok(items) if items.len() > 1 => items,
                    Ok(_) => break,
                    Err(e) => {
                        send_within(&tx, Err(e), idle, &peer_name).await;
                        return;
                    }
                };
                // The last item is the batch's proof; its index is the batch's end.
                from = items.last().map(|i| i.index).unwrap_or(size);
                for item in items {
                    if !send_within(&tx, Ok(item), idle, &peer_name).await {
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

    /// Witnessing: this node's newest checkpoints of the origins the peer
    /// asks about, with consistency proofs from the sizes it holds and this
    /// node's cosignatures (`meridian_core::sync::witness`).
    async fn witness(
        &self,
        request: Request<proto::WitnessRequest>,
    ) -> Result<Response<proto::WitnessResponse>, Status> {
        let _peer = self.peer(&request)?;
        let req = request.into_inner();
        let node = self.node.clone();
        let answer =
            tokio::task::spawn_blocking(move || meridian_core::sync::witness::answer(&node, &req))
                .await
                .map_err(status::join)?
                .map_err(status::sync)?;
        Ok(Response::new(answer))
    }

    /// A live search forwarded by a peer: answered from this node's index
    /// for the claimed audience narrowed to the peer's pin, never forwarded
    /// again.
    async fn search(
        &self,
        request: Request<proto::PeerSearchRequest>,
    ) -> Result<Response<proto::PeerSearchResponse>, Status> {
        let peer = self.searching_peer(&request)?;
        let started = std::time::Instant::now();
        let asked = crate::catalog::asked_timeout(&request);
        let req = request.into_inner();
        let claim = OnBehalfOf::from_wire(req.on_behalf_of);
        let asker = peer.node_id.to_string();
        let viewer = live::forwarded_viewer(caller::peer_viewer(&self.node, peer)?, claim);
        let wire = req
            .request
            .ok_or_else(|| status::invalid_field("request", "request: missing"))?;
        let request = convert::search_request(wire, self.node.node_id())?;
        // The asker waits no longer than its `grpc-timeout`, nor does the
        // search.
        let (until, capped) = crate::catalog::search_deadline(&self.node, &viewer, started, asked);
        let slot = crate::catalog::search_slot(&self.node, &viewer).await?;
        let node = self.node.clone();
        let forwarded = tokio::task::spawn_blocking(move || {
            // Held until the search ends, even when the asker has left.
            let _slot = slot;
            let forwarded = live::answer_forwarded(&node, request.clone(), &viewer, until);
            crate::catalog::ran_out(node.metrics(), &forwarded, capped);
            let forwarded = forwarded?;
            // Every query answered for a peer is audited; one that cannot
            // be is not answered.
            QueryAudit::open(&node)
                .map_err(|e| SearchError::Unavailable(e.to_string()))?
                .log(
                    &asker,
                    claim,
                    &request,
                    forwarded.results.hits.len() as u64,
                    forwarded.results.total,
                )
                .map_err(|e| SearchError::Unavailable(e.to_string()))?;
            Ok::<_, SearchError>(forwarded)
        })
        .await
        .map_err(status::join)?
        .map_err(status::search)?;
        Ok(Response::new(convert::forwarded(forwarded)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_core::metrics::Limit;
    use meridian_core::visibility::Viewer;

    /// A search a pinned peer forwards takes one of the `limits.searches`
    /// places, as every search not the operator's does: with them all
    /// held it waits a moment and is refused (and counted), then runs once
    /// a place is free.
    #[tokio::test]
    async fn a_peers_search_beyond_the_places_is_refused() {
        let (node, replicator, _dir) = crate::test_node(&[("MERIDIAN_LIMITS__SEARCHES", "1")]);
        let peer_dir = tempfile::tempdir().unwrap();
        let peer_data = peer_dir.path().join("uni");
        Node::create(
            &peer_data,
            &"uni".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let uni = Node::open(&peer_data, &Default::default()).unwrap();
        let pinned = node.trust().add(&uni.invite(), &[]).unwrap();
        let service = FederationService::new(replicator);
        let request = || {
            let mut request = Request::new(proto::PeerSearchRequest {
                request: Some(proto::SearchRequest {
                    origins: vec!["polar".into()],
                    ..Default::default()
                }),
                on_behalf_of: proto::OnBehalfOf::Node as i32,
            });
            request
                .extensions_mut()
                .insert(crate::tls::PeerConnectInfo {
                    remote: None,
                    client_spki: Some(pinned.tls_keys[0].clone()),
                    activity: crate::idle::Activity::new(),
                });
            request
        };
        let held = crate::catalog::search_slot(&node, &Viewer::Anonymous)
            .await
            .unwrap();
        let refused = service.search(request()).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused}");
        assert!(refused.message().contains("at most 1 at once"), "{refused}");
        assert_eq!(node.metrics().limit_hits.get(Limit::Searches), 1);
        drop(held);
        service.search(request()).await.unwrap();
    }

    /// Issue item (limits): a pull whose reader stops reading ends once the
    /// idle timeout passes, instead of holding its task and batch forever.
    #[tokio::test]
    async fn a_pull_whose_reader_stops_reading_ends() {
        let (tx, _rx) = tokio::sync::mpsc::channel::<u32>(1);
        let idle = Duration::from_millis(50);
        assert!(send_within(&tx, 1, idle, "uni").await, "room for one");
        let started = std::time::Instant::now();
        assert!(!send_within(&tx, 2, idle, "uni").await, "nobody reads");
        assert!(started.elapsed() >= idle && started.elapsed() < Duration::from_secs(2));
        drop(_rx);
        assert!(!send_within(&tx, 3, idle, "uni").await, "the reader left");
    }

    #[test]
    fn a_pullers_batch_wish_is_kept_within_bounds() {
        assert_eq!(batch_size(0), SERVE_BATCH, "no wish: the server's size");
        assert_eq!(batch_size(256), 256);
        assert_eq!(
            batch_size(1),
            MIN_SERVE_BATCH,
            "proofs would outweigh entries"
        );
        assert_eq!(batch_size(u32::MAX), SERVE_BATCH, "never more than unasked");
    }
}
