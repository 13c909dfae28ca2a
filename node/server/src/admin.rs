//! `Admin`: the operator's service, served only on the Unix socket inside
//! the data directory (mode 0600), so only the operator's account reaches
//! it. The operator sees every record this node holds.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use meridian_core::harvest::{Harvester, Source, State};
use meridian_core::ids::RecordId;
use meridian_core::node::{Node, NodeError};
use meridian_core::sync::Replicator;
use meridian_core::trust::{Invite, PeerState};
use meridian_proto as proto;
use meridian_proto::admin_server::Admin;
use tonic::{Request, Response, Status, Streaming};

use crate::catalog::{blocking, page_size};
use crate::{convert, status};

/// Longest one `WaitSearchable` call waits (and at most half the unary
/// request deadline); the client asks again while the index advances.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How often a backup in progress reports the bytes it wrote.
const BACKUP_PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Most lines one import chunk may carry (the client sends 2,000 at most).
const MAX_IMPORT_CHUNK_LINES: usize = 10_000;

pub struct AdminService {
    node: Arc<Node>,
    replicator: Arc<Replicator>,
    harvester: Arc<Harvester>,
}

impl AdminService {
    /// This node's key sets, with the keys it signs and serves TLS with now.
    fn own_keys_status(
        &self,
        chain: &meridian_core::keyset::KeyChain,
    ) -> proto::KeysStatusResponse {
        use meridian_core::certificate::tls_key_id;
        let mut status = convert::keys_status(chain, Some(self.node.key().key_id().to_string()));
        status.tls_key = tls_key_id(self.node.tls().spki());
        status.tls_next = self
            .node
            .tls_next()
            .map(|next| tls_key_id(next.spki()))
            .unwrap_or_default();
        status
    }

    /// Asks every active peer, at once, how much of this node's log it
    /// holds: those past `index`, and the others with why.
    async fn peers_holding_own_log_past(
        &self,
        index: u64,
    ) -> Result<(Vec<String>, Vec<String>), Status> {
        const ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
        let node = self.node.clone();
        let peers = blocking(move || Ok(node.trust().active()?)).await?;
        let own = self.node.node_id().to_string();
        let asks = peers.into_iter().map(|peer| {
            let replicator = self.replicator.clone();
            let own = own.clone();
            async move {
                let name = peer.node_id.to_string();
                let asked = tokio::time::timeout(ASK_TIMEOUT, async {
                    replicator.dial(peer).await?.node_info().await
                })
                .await;
                let held = match asked {
                    Err(_) => Err(format!("{name}: no answer in {}s", ASK_TIMEOUT.as_secs())),
                    Ok(Err(e)) => Err(format!("{name}: {e}")),
                    Ok(Ok(info)) => Ok(info
                        .origins
                        .iter()
                        .find(|head| head.origin == own)
                        .map_or(0, |head| head.size)),
                };
                match held {
                    Ok(size) if size > index => Ok(name),
                    Ok(size) => Err(format!("{name}: holds {size} entries of this node's log")),
                    Err(why) => Err(why),
                }
            }
        });
        let (mut ready, mut not_ready) = (Vec::new(), Vec::new());
        for answer in futures::future::join_all(asks).await {
            match answer {
                Ok(name) => ready.push(name),
                Err(why) => not_ready.push(why),
            }
        }
        Ok((ready, not_ready))
    }

    pub fn new(replicator: Arc<Replicator>, harvester: Arc<Harvester>) -> Self {
        Self {
            node: replicator.node().clone(),
            replicator,
            harvester,
        }
    }
}

/// A harvest source and its state on the wire.
/// The root keys an operator's request carries as seeds (read by the CLI
/// from the key files): at most 16, each 32 bytes.
fn root_keys(seeds: &[Vec<u8>]) -> Result<Vec<meridian_core::sign::NodeKey>, Status> {
    if seeds.len() > 16 {
        return Err(Status::invalid_argument(
            "root_seeds: more than 16 root keys",
        ));
    }
    seeds
        .iter()
        .enumerate()
        .map(|(i, seed)| {
            let seed: &[u8; 32] = seed.as_slice().try_into().map_err(|_| {
                Status::invalid_argument(format!("root_seeds[{i}]: not a 32-byte seed"))
            })?;
            Ok(meridian_core::sign::NodeKey::from_seed(seed))
        })
        .collect()
}

fn harvest_status(source: Source, state: State, running: bool) -> proto::HarvestSourceStatus {
    proto::HarvestSourceStatus {
        source: Some(proto::HarvestSource {
            name: source.name,
            url: source.url,
            set: source.set,
            prefix: source.prefix,
            every_secs: source.every_secs,
            visibility: source.visibility,
            groups: source.groups,
            ca_cert: source.ca_cert,
        }),
        state: Some(proto::HarvestState {
            granularity: state.granularity,
            from: state.from,
            interrupted: state.interrupted,
            running,
            last_started: state.last_started,
            last_finished: state.last_finished,
            next_run: state.next_run,
            added: state.added,
            changed: state.changed,
            unchanged: state.unchanged,
            deleted: state.deleted,
            rejected: state.rejected,
            normalised: state.normalised,
            pages: state.pages,
            last_error: state.last_error,
            rejections: state.rejections,
            continues: state.continues,
        }),
    }
}

type HarvestStream = Pin<Box<dyn Stream<Item = Result<proto::HarvestSourceStatus, Status>> + Send>>;

type AckStream = Pin<Box<dyn Stream<Item = Result<proto::ImportAck, Status>> + Send>>;
type BackupStream = Pin<Box<dyn Stream<Item = Result<proto::BackupProgress, Status>> + Send>>;
type ProgressStream = Pin<Box<dyn Stream<Item = Result<proto::RebuildProgress, Status>> + Send>>;

#[tonic::async_trait]
impl Admin for AdminService {
    type ImportStream = AckStream;
    type HarvestRunStream = HarvestStream;

    async fn harvest_add(
        &self,
        request: Request<proto::HarvestSource>,
    ) -> Result<Response<proto::HarvestSourceStatus>, Status> {
        let s = request.into_inner();
        let source = Source {
            name: s.name,
            url: s.url,
            set: s.set,
            prefix: s.prefix,
            every_secs: s.every_secs,
            visibility: s.visibility,
            groups: s.groups,
            ca_cert: s.ca_cert,
        };
        let harvester = self.harvester.clone();
        let name = source.name.clone();
        let added = tokio::task::spawn_blocking(move || {
            harvester.add(source)?;
            harvester
                .list()
                .map(|all| all.into_iter().find(|(s, _, _)| s.name == name))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(status::harvest)?;
        let (source, state, running) =
            added.ok_or_else(|| Status::internal("added source not listed"))?;
        Ok(Response::new(harvest_status(source, state, running)))
    }

    async fn harvest_run(
        &self,
        request: Request<proto::HarvestRunRequest>,
    ) -> Result<Response<HarvestStream>, Status> {
        let name = request.into_inner().name;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let harvester = self.harvester.clone();
        // The run goes on when the client leaves: it is the node's work.
        tokio::spawn(async move {
            let progress_tx = tx.clone();
            let progress_name = name.clone();
            let progress = move |state: &State| {
                let source = Source {
                    name: progress_name.clone(),
                    ..Default::default()
                };
                let _ = progress_tx.try_send(Ok(harvest_status(source, state.clone(), true)));
            };
            let result = harvester.run(&name, &progress).await;
            let last = match result {
                Ok(_) => {
                    let all = harvester.list().map_err(status::harvest);
                    all.and_then(|all| {
                        all.into_iter()
                            .find(|(s, _, _)| s.name == name)
                            .map(|(s, st, _)| harvest_status(s, st, false))
                            .ok_or_else(|| Status::not_found(format!("no harvest source `{name}`")))
                    })
                }
                Err(e) => Err(status::harvest(e)),
            };
            let _ = tx.send(last).await;
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn harvest_list(
        &self,
        _request: Request<proto::HarvestListRequest>,
    ) -> Result<Response<proto::HarvestListResponse>, Status> {
        let harvester = self.harvester.clone();
        let all = tokio::task::spawn_blocking(move || harvester.list())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(status::harvest)?;
        Ok(Response::new(proto::HarvestListResponse {
            sources: all
                .into_iter()
                .map(|(source, state, running)| harvest_status(source, state, running))
                .collect(),
        }))
    }

    async fn harvest_remove(
        &self,
        request: Request<proto::HarvestRemoveRequest>,
    ) -> Result<Response<proto::HarvestRemoveResponse>, Status> {
        let name = request.into_inner().name;
        let harvester = self.harvester.clone();
        tokio::task::spawn_blocking(move || harvester.remove(&name))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(status::harvest)?;
        Ok(Response::new(proto::HarvestRemoveResponse {}))
    }
    type RebuildIndexStream = ProgressStream;
    type BackupStream = BackupStream;

    async fn search(
        &self,
        request: Request<proto::SearchRequest>,
    ) -> Result<Response<proto::SearchResponse>, Status> {
        let viewer = self.node.operator();
        let response =
            crate::catalog::search(self.replicator.clone(), request.into_inner(), viewer, None)
                .await?;
        Ok(Response::new(response))
    }

    async fn rebuild_index(
        &self,
        _request: Request<proto::RebuildIndexRequest>,
    ) -> Result<Response<ProgressStream>, Status> {
        let node = self.node.clone();
        let total: u64 = blocking({
            let node = node.clone();
            move || Ok(node.store().origins()?)
        })
        .await?
        .iter()
        .map(|(_, size)| size)
        .sum();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::task::spawn_blocking(move || {
            let progress_tx = tx.clone();
            let result = node.rebuild_index(&mut |indexed| {
                let _ = progress_tx.blocking_send(Ok(proto::RebuildProgress {
                    indexed,
                    total,
                    done: false,
                }));
            });
            let last = result
                .map(|rebuilt| proto::RebuildProgress {
                    indexed: rebuilt.entries,
                    total,
                    done: true,
                })
                .map_err(status::node);
            let _ = tx.blocking_send(last);
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn import(
        &self,
        request: Request<Streaming<proto::ImportChunk>>,
    ) -> Result<Response<AckStream>, Status> {
        let mut chunks = request.into_inner();
        let node = self.node.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        // Three stages at once: a chunk is parsed and validated while the
        // one before it is signed and the one before that commits.
        let (prepared_tx, mut prepared_rx) = tokio::sync::mpsc::channel(1);
        let guard = node.import_guard();
        let parser_node = node.clone();
        // A failure in either stage ends the import with an error the client
        // sees, never with a silent end of acknowledgements that reads as
        // success: the client knows which chunks were acknowledged.
        tokio::spawn(async move {
            loop {
                let chunk = match chunks.message().await {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "import stream ended with an error");
                        let _ = prepared_tx.send(Err(e)).await;
                        break;
                    }
                };
                // Bounded before any line is read: each refused line is
                // answered with its error, so the lines bound the answer.
                if chunk.lines.len() > MAX_IMPORT_CHUNK_LINES
                    || chunk
                        .first_line
                        .checked_add(chunk.lines.len() as u64)
                        .is_none()
                {
                    let refused = status::invalid_field(
                        "lines",
                        format!(
                            "a chunk of {} lines from line {}: at most {MAX_IMPORT_CHUNK_LINES} \
                             lines, numbered within 64 bits",
                            chunk.lines.len(),
                            chunk.first_line
                        ),
                    );
                    let _ = prepared_tx.send(Err(refused)).await;
                    break;
                }
                let node = parser_node.clone();
                let prepared = tokio::task::spawn_blocking(move || {
                    node.prepare_lines(chunk.first_line, &chunk.lines)
                })
                .await
                .map_err(status::join);
                let failed = prepared.is_err();
                if prepared_tx.send(prepared).await.is_err() || failed {
                    break;
                }
            }
        });
        // The second stage signs a chunk while the one before it commits
        // (`Node::import_step`). A signed chunk waits for the next only if
        // that one is parsed already: an acknowledgement is never held back
        // waiting for the client.
        tokio::spawn(async move {
            let _guard = guard;
            let mut pending: Option<meridian_core::holdings::SignedChunk> = None;
            loop {
                let next = if pending.is_some() {
                    prepared_rx.try_recv().ok()
                } else {
                    match prepared_rx.recv().await {
                        Some(next) => Some(next),
                        None => break,
                    }
                };
                let (next, refused) = match next {
                    Some(Ok(next)) => (Some(next), None),
                    Some(Err(status)) => (None, Some(status)),
                    None => (None, None),
                };
                let step = {
                    let node = node.clone();
                    let pending = pending.take();
                    tokio::task::spawn_blocking(move || node.import_step(pending, next))
                        .await
                        .map_err(status::join)
                };
                let step = match step {
                    Ok(step) => step,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        break;
                    }
                };
                if let Some(committed) = step.committed {
                    let result = committed.map(convert::import_ack).map_err(status::node);
                    let failed = result.is_err();
                    if tx.send(result).await.is_err() || failed {
                        break;
                    }
                }
                if let Some(status) = refused {
                    let _ = tx.send(Err(status)).await;
                    break;
                }
                match step.signed {
                    Some(Ok(signed)) => pending = Some(signed),
                    Some(Err(e)) => {
                        let _ = tx.send(Err(status::node(e))).await;
                        break;
                    }
                    None => {}
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn delete_record(
        &self,
        request: Request<proto::DeleteRecordRequest>,
    ) -> Result<Response<proto::DeleteRecordResponse>, Status> {
        let node = self.node.clone();
        let id = RecordId::parse(&request.into_inner().id)
            .map_err(|e| Status::invalid_argument(format!("id: {e}")))?;
        let (version, log_index) = blocking(move || node.delete(&id)).await?;
        Ok(Response::new(proto::DeleteRecordResponse {
            version,
            log_index: log_index.get(),
        }))
    }

    async fn wait_searchable(
        &self,
        request: Request<proto::WaitSearchableRequest>,
    ) -> Result<Response<proto::WaitSearchableResponse>, Status> {
        let req = request.into_inner();
        let deadline =
            std::time::Duration::from_secs(self.node.config().limits.request_timeout_secs);
        let bound = MAX_WAIT.min(deadline / 2);
        let timeout = match req.timeout_ms {
            0 => bound,
            ms => std::time::Duration::from_millis(ms.into()).min(bound),
        };
        let indexed = if req.origin.is_empty() || req.origin == self.node.node_id().as_str() {
            self.node.wait_searchable(req.log_size, timeout).await
        } else {
            self.node
                .wait_indexed(&req.origin, req.log_size, timeout)
                .await
        }
        .map_err(status::node)?;
        Ok(Response::new(proto::WaitSearchableResponse {
            searchable: indexed >= req.log_size,
            indexed,
        }))
    }

    async fn get_record(
        &self,
        request: Request<proto::GetRecordRequest>,
    ) -> Result<Response<proto::RecordView>, Status> {
        let node = self.node.clone();
        let req = request.into_inner();
        let view = blocking(move || node.get(&req.origin, &req.id, &node.operator())).await?;
        Ok(Response::new(convert::record_view(view)))
    }

    async fn list_records(
        &self,
        request: Request<proto::ListRecordsRequest>,
    ) -> Result<Response<proto::ListRecordsResponse>, Status> {
        let node = self.node.clone();
        let req = request.into_inner();
        let page = blocking(move || {
            node.list(
                &req.origin,
                page_size(req.page_size),
                &req.page_token,
                req.include_deleted,
                &node.operator(),
            )
        })
        .await?;
        Ok(Response::new(convert::page(page)))
    }

    async fn status(
        &self,
        _request: Request<proto::StatusRequest>,
    ) -> Result<Response<proto::StatusResponse>, Status> {
        let node = self.node.clone();
        let ((log_size, records), index_behind) =
            blocking(move || Ok((node.holdings_status()?, node.index_behind()?))).await?;
        Ok(Response::new(proto::StatusResponse {
            node_id: self.node.node_id().to_string(),
            key_id: self.node.key().key_id().to_string(),
            log_size,
            records,
            listen: self.node.endpoint(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            index_behind,
            recovering: self.node.recovering(),
        }))
    }

    async fn keys_show(
        &self,
        _request: Request<proto::KeysShowRequest>,
    ) -> Result<Response<proto::KeysShowResponse>, Status> {
        use base64::Engine as _;
        let invite = self.node.invite();
        let signing = self.node.key();
        Ok(Response::new(proto::KeysShowResponse {
            node_id: invite.node_id.to_string(),
            key_id: signing.key_id().to_string(),
            public_key: base64::engine::general_purpose::STANDARD
                .encode(signing.verifying_key().as_bytes()),
            endpoint: invite.endpoint.clone(),
            tls_key: invite.tls_key.clone(),
            invite: invite.to_token(),
            root_key_id: invite.key_id.clone(),
            root_public_key: invite.key.clone(),
        }))
    }

    async fn keys_rotate(
        &self,
        request: Request<proto::KeysRotateRequest>,
    ) -> Result<Response<proto::KeysStatusResponse>, Status> {
        let req = request.into_inner();
        let roots = root_keys(&req.root_seeds)?;
        let node = self.node.clone();
        let new_roots = root_keys(&req.new_root_seeds)?;
        if req.tls && !new_roots.is_empty() {
            return Err(Status::invalid_argument(
                "a TLS key rotation and a root rotation are two key sets: run them one by one",
            ));
        }
        let chain = blocking(move || {
            if !new_roots.is_empty() {
                node.rotate_root(roots, new_roots, req.new_root_threshold, req.expires_days)
            } else if req.tls {
                node.rotate_tls(roots, req.expires_days)
            } else {
                node.rotate_keys(roots, req.keep_signing_key, req.expires_days)
            }
        })
        .await?;
        Ok(Response::new(self.own_keys_status(&chain)))
    }

    async fn keys_switch_tls(
        &self,
        request: Request<proto::KeysSwitchTlsRequest>,
    ) -> Result<Response<proto::KeysSwitchTlsResponse>, Status> {
        use meridian_core::certificate::tls_key_id;
        let force = request.into_inner().force;
        let node = self.node.clone();
        let (_, listed_at) = blocking(move || node.next_tls_key()).await?;
        let (ready, not_ready) = self.peers_holding_own_log_past(listed_at).await?;
        if !not_ready.is_empty() && !force {
            return Err(Status::failed_precondition(format!(
                "not every active peer holds key set at log index {listed_at}, which lists the \
                 next TLS key: {}; they could not dial this node after the switch (wait for \
                 their next sync round, or pass --force when they can get the set from a relay)",
                not_ready.join("; ")
            )));
        }
        let replaced = tls_key_id(self.node.tls().spki());
        let node = self.node.clone();
        let switched = blocking(move || node.switch_tls()).await?;
        Ok(Response::new(proto::KeysSwitchTlsResponse {
            tls_key: tls_key_id(switched.spki()),
            replaced,
            ready,
            not_ready,
        }))
    }

    async fn keys_revoke(
        &self,
        request: Request<proto::KeysRevokeRequest>,
    ) -> Result<Response<proto::KeysStatusResponse>, Status> {
        let req = request.into_inner();
        let roots = root_keys(&req.root_seeds)?;
        let key_id: meridian_core::sign::KeyId = req
            .key_id
            .parse()
            .map_err(|e| Status::invalid_argument(format!("key_id: {e}")))?;
        if req.reason.len() > meridian_core::keyset::MAX_REASON_BYTES {
            return Err(Status::invalid_argument(format!(
                "reason: {} bytes, more than {}",
                req.reason.len(),
                meridian_core::keyset::MAX_REASON_BYTES
            )));
        }
        let node = self.node.clone();
        let chain = blocking(move || {
            node.revoke_key(roots, key_id, req.from_index, req.reason, req.expires_days)
        })
        .await?;
        let node = self.node.clone();
        let quarantined = blocking(move || {
            let own = node.node_id().to_string();
            node.quarantine_count(&own)
        })
        .await?;
        let mut status = self.own_keys_status(&chain);
        status.quarantined = quarantined;
        Ok(Response::new(status))
    }

    async fn keys_resign(
        &self,
        request: Request<proto::KeysResignRequest>,
    ) -> Result<Response<proto::KeysResignResponse>, Status> {
        let dry_run = request.into_inner().dry_run;
        let node = self.node.clone();
        let done = blocking(move || node.resign(dry_run)).await?;
        Ok(Response::new(proto::KeysResignResponse {
            resigned: done.ids.len() as u64,
            log_size: done.log_size,
            ids: done.ids,
        }))
    }

    async fn keys_status(
        &self,
        request: Request<proto::KeysStatusRequest>,
    ) -> Result<Response<proto::KeysStatusResponse>, Status> {
        let origin = request.into_inner().origin;
        let own = origin.is_empty() || origin == self.node.node_id().as_str();
        let node = self.node.clone();
        let lookup = origin.clone();
        let chain = tokio::task::spawn_blocking(move || {
            if own {
                Ok(Some(node.own_chain()))
            } else {
                node.origin_keys(&lookup)
            }
        })
        .await
        .map_err(status::join)?
        .map_err(|e| match e {
            // The peer's state, which the operator acts on (`trust show`
            // says so beside the pin), not a fault of this node.
            NodeError::Sign(e) => Status::failed_precondition(format!(
                "the key sets of {origin} held here do not verify from its pinned root: {e}"
            )),
            e => status::node(e),
        })?
        .ok_or_else(|| Status::not_found(format!("no trusted origin {origin} here")))?;
        let mut status = if own {
            self.own_keys_status(&chain)
        } else {
            convert::keys_status(&chain, None)
        };
        status.cosigners = self.replicator.cosigners(chain.origin());
        let node = self.node.clone();
        let counted = chain.origin().to_owned();
        status.quarantined = blocking(move || node.quarantine_count(&counted)).await?;
        if own {
            let node = self.node.clone();
            status.changes = blocking(move || Ok(node.trust().audit_log()?))
                .await?
                .into_iter()
                .filter(|event| event.action.starts_with("keys-"))
                .map(|event| format!("{} {} {}", event.at, event.action, event.detail))
                .collect();
        }
        Ok(Response::new(status))
    }

    async fn trust_add(
        &self,
        request: Request<proto::TrustAddRequest>,
    ) -> Result<Response<proto::PeerInfo>, Status> {
        let req = request.into_inner();
        let node = self.node.clone();
        let peer = blocking(move || {
            let invite = Invite::from_token(&req.invite)?;
            let peer = node.pin(&invite, &req.groups)?;
            // Who the node's records are for changed: it says so, signed.
            node.publish_audience()?;
            Ok(peer)
        })
        .await?;
        self.replicator.wake();
        Ok(Response::new(convert::peer_info(peer)))
    }

    async fn trust_list(
        &self,
        _request: Request<proto::TrustListRequest>,
    ) -> Result<Response<proto::TrustListResponse>, Status> {
        let node = self.node.clone();
        let (peers, audit) =
            blocking(move || Ok((node.trust().list()?, node.trust().audit_log()?))).await?;
        Ok(Response::new(proto::TrustListResponse {
            peers: peers.into_iter().map(convert::peer_info).collect(),
            audit: audit.into_iter().map(convert::audit_event).collect(),
        }))
    }

    async fn trust_set_state(
        &self,
        request: Request<proto::TrustSetStateRequest>,
    ) -> Result<Response<proto::PeerInfo>, Status> {
        let req = request.into_inner();
        let state = convert::requested_peer_state(req.state)?;
        let node = self.node.clone();
        let peer = blocking(move || {
            let peer = node.set_peer_state(&req.node_id, state)?;
            if peer.state == PeerState::Revoked {
                // Entries under a revoked key are quarantined: out of search at once.
                node.unindex_origin(&peer.node_id)?;
            }
            node.publish_audience()?;
            Ok(peer)
        })
        .await?;
        Ok(Response::new(convert::peer_info(peer)))
    }

    async fn trust_set_groups(
        &self,
        request: Request<proto::TrustSetGroupsRequest>,
    ) -> Result<Response<proto::PeerInfo>, Status> {
        let req = request.into_inner();
        let node = self.node.clone();
        let peer = blocking(move || {
            let peer = node.set_peer_groups(&req.node_id, &req.groups)?;
            node.publish_audience()?;
            Ok(peer)
        })
        .await?;
        self.replicator.wake();
        Ok(Response::new(convert::peer_info(peer)))
    }

    async fn sync_now(
        &self,
        _request: Request<proto::SyncNowRequest>,
    ) -> Result<Response<proto::SyncNowResponse>, Status> {
        let started = std::time::Instant::now();
        let reports = self.replicator.round(true).await;
        // What the round pulled is searchable when the answer comes, as
        // after an import; the wait fits in what is left of the deadline.
        let deadline =
            std::time::Duration::from_secs(self.node.config().limits.request_timeout_secs);
        let left = deadline
            .saturating_sub(started.elapsed())
            .saturating_sub(std::time::Duration::from_secs(1));
        // Also what a hint pulled just before (an appended audience or
        // record hints at once): the round then finds nothing new, but the
        // operator's next search must see it.
        let index_behind = self
            .node
            .wait_caught_up(MAX_WAIT.min(left))
            .await
            .map_err(status::node)?;
        Ok(Response::new(proto::SyncNowResponse {
            index_behind,
            reports: reports
                .into_iter()
                .map(|r| proto::SyncReport {
                    peer: r.peer,
                    ok: r.ok,
                    entries: r.entries,
                    origins: r.origins,
                    error: r.error,
                    outcome: r.outcome,
                    held_back: r.held_back,
                })
                .collect(),
        }))
    }

    async fn backup(
        &self,
        request: Request<proto::BackupRequest>,
    ) -> Result<Response<BackupStream>, Status> {
        let dir = std::path::PathBuf::from(request.into_inner().dir);
        if !dir.is_absolute() {
            return Err(Status::invalid_argument(format!(
                "dir: {} is not an absolute path",
                dir.display()
            )));
        }
        let node = self.node.clone();
        let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = written.clone();
        let mut job = tokio::task::spawn_blocking(move || {
            meridian_core::backup::create(&node, &dir, &counter)
        });
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        // The backup goes on to its end even if the client leaves: it is
        // complete and in place, or not there at all.
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(BACKUP_PROGRESS_EVERY);
            tick.tick().await;
            loop {
                let bytes = || written.load(std::sync::atomic::Ordering::Relaxed);
                tokio::select! {
                    done = &mut job => {
                        let last = done
                            .map_err(status::join)
                            .and_then(|result| result.map_err(status::backup))
                            .and_then(|manifest| {
                                serde_json::to_string_pretty(&manifest)
                                    .map_err(|e| Status::internal(e.to_string()))
                            })
                            .map(|manifest_json| proto::BackupProgress {
                                bytes: bytes(),
                                manifest_json,
                            });
                        let _ = tx.send(last).await;
                        return;
                    }
                    _ = tick.tick() => {
                        let progress = proto::BackupProgress { bytes: bytes(), manifest_json: String::new() };
                        let _ = tx.try_send(Ok(progress));
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn finish_recovery(
        &self,
        _request: Request<proto::FinishRecoveryRequest>,
    ) -> Result<Response<proto::FinishRecoveryResponse>, Status> {
        let node = self.node.clone();
        let was_recovering = blocking(move || node.finish_recovery()).await?;
        Ok(Response::new(proto::FinishRecoveryResponse {
            was_recovering,
        }))
    }

    async fn audit_queries(
        &self,
        request: Request<proto::AuditQueriesRequest>,
    ) -> Result<Response<proto::AuditQueriesResponse>, Status> {
        let req = request.into_inner();
        let node = self.node.clone();
        let entries = tokio::task::spawn_blocking(move || {
            let audit = meridian_core::search::audit::QueryAudit::open(&node)?;
            let peer = (!req.peer.is_empty()).then_some(req.peer.as_str());
            let since = (!req.since.is_empty()).then_some(req.since.as_str());
            audit.read(peer, since)
        })
        .await
        .map_err(status::join)?
        .map_err(status::audit)?;
        Ok(Response::new(proto::AuditQueriesResponse {
            entries: entries
                .into_iter()
                .map(|e| proto::QueryAuditEntry {
                    at: e.at,
                    peer: e.peer,
                    on_behalf_of: e.on_behalf_of,
                    query_hash: e.query_hash,
                    filters: e.filters,
                    hits: e.hits,
                    total: e.total,
                })
                .collect(),
        }))
    }

    async fn peers_status(
        &self,
        _request: Request<proto::PeersStatusRequest>,
    ) -> Result<Response<proto::PeersStatusResponse>, Status> {
        let node = self.node.clone();
        let peers = blocking(move || {
            let stale: std::collections::BTreeMap<String, String> = node
                .stale_origins_at(meridian_core::keyset::now_unix())?
                .into_iter()
                .collect();
            let counts = node.quarantine_counts()?;
            let (_, contested) = meridian_core::search::Registrants::with_conflicts(&node);
            let mut peers = Vec::new();
            for peer in node.trust().list()? {
                let expired = stale.get(peer.node_id.as_str()).cloned();
                let held = counts.held.get(peer.node_id.as_str()).copied();
                let unverified = counts
                    .unverified
                    .get(peer.node_id.as_str())
                    .map(|e| status::chain(e))
                    .unwrap_or_default();
                let frozen = node.store().frozen_reason(peer.node_id.as_str())?;
                let evidence = node.store().evidence(peer.node_id.as_str())?.is_some();
                let contested_doi_prefixes: Vec<String> = contested
                    .iter()
                    .filter(|(_, claimants)| claimants.iter().any(|c| *c == *peer.node_id))
                    .map(|(prefix, _)| prefix.clone())
                    .collect();
                peers.push((
                    peer,
                    expired.unwrap_or_default(),
                    held.unwrap_or(0),
                    frozen,
                    evidence,
                    contested_doi_prefixes,
                    unverified,
                ));
            }
            Ok(peers)
        })
        .await?;
        let known = self.replicator.status();
        Ok(Response::new(proto::PeersStatusResponse {
            peers: peers
                .into_iter()
                .map(
                    |(peer, keys_expired, quarantined, frozen, evidence, contested, unverified)| {
                        let cosigners = self.replicator.cosigners(peer.node_id.as_str());
                        let status = known
                            .get(peer.node_id.as_str())
                            .cloned()
                            .unwrap_or_default();
                        proto::PeerStatus {
                            node_id: peer.node_id.to_string(),
                            state: convert::peer_state(peer.state) as i32,
                            reachable: status.reachable,
                            last_sync: status.last_sync,
                            lag: status.lag,
                            entries_received: status.entries_received,
                            rejected: status.rejected,
                            last_error: status.last_error,
                            endpoint: peer.endpoint,
                            groups: peer.groups,
                            keys_expired,
                            quarantined,
                            frozen: frozen.is_some(),
                            frozen_reason: frozen.unwrap_or_default(),
                            evidence,
                            cosigners,
                            contested_doi_prefixes: contested,
                            keys_unverified: unverified,
                        }
                    },
                )
                .collect(),
        }))
    }

    async fn export_evidence(
        &self,
        request: Request<proto::ExportEvidenceRequest>,
    ) -> Result<Response<proto::ExportEvidenceResponse>, Status> {
        let origin = request.into_inner().origin;
        let node = self.node.clone();
        let asked = origin.clone();
        let (frozen, evidence) = blocking(move || {
            Ok((
                node.store().frozen_reason(&asked)?,
                node.store().evidence(&asked)?,
            ))
        })
        .await?;
        match (frozen, evidence) {
            (_, Some(evidence)) => Ok(Response::new(proto::ExportEvidenceResponse { evidence })),
            (None, None) => Err(Status::not_found(format!(
                "{origin} is not frozen: there is no evidence of equivocation against it"
            ))),
            (Some(reason), None) => Err(Status::failed_precondition(format!(
                "{origin} is frozen ({reason}), but the conflict was found before evidence was kept: there is no file to export"
            ))),
        }
    }
}
