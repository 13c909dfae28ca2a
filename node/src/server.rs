//! The gRPC edge: tonic services that convert between the wire contract and
//! the node's library calls, and the one function that assembles the servers.
//!
//! `Catalog` is served on the node's TCP listener (anonymous callers allowed);
//! `Admin` only on a Unix socket inside the data directory, mode 0600, so only
//! the operator's account reaches it. Both serve gRPC health and reflection
//! (v1 and v1alpha).

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;
use tonic::{Request, Response, Status, Streaming};

use crate::node::{Node, NodeError, Page, RecordView, Viewer};
use crate::proto;
use crate::proto::admin_server::{Admin, AdminServer};
use crate::proto::catalog_server::{Catalog, CatalogServer};
use crate::proto::federation_server::FederationServer;
use crate::trust::{Invite, Peer, PeerState, TrustError};

pub mod federation;

use federation::FederationService;

/// The one mapping from node errors to gRPC status codes. Internal errors are
/// logged here in full and leave the node without paths or database text.
pub fn status(error: NodeError) -> Status {
    match &error {
        NodeError::Invalid(_) | NodeError::BadPageToken => {
            Status::invalid_argument(error.to_string())
        }
        NodeError::NotFound { .. } => Status::not_found(error.to_string()),
        NodeError::Trust(
            TrustError::Invite(_)
            | TrustError::Key(_)
            | TrustError::BadGroup(_)
            | TrustError::SelfPin(_),
        ) => Status::invalid_argument(error.to_string()),
        NodeError::Trust(TrustError::AlreadyPinned(_)) => Status::already_exists(error.to_string()),
        NodeError::Trust(TrustError::UnknownPeer(_)) => Status::not_found(error.to_string()),
        NodeError::Trust(TrustError::Revoked(_)) => Status::failed_precondition(error.to_string()),
        NodeError::Config(_)
        | NodeError::Store(_)
        | NodeError::Sign(_)
        | NodeError::Tls(_)
        | NodeError::Trust(_)
        | NodeError::DataDir { .. } => {
            tracing::error!(error = %error, "request failed");
            Status::internal("internal error; the node's log has the details")
        }
    }
}

fn view_to_proto(view: RecordView) -> proto::RecordView {
    proto::RecordView {
        record: Some(view.record),
        envelope: Some(view.envelope),
        log_index: view.log_index,
        verified_key_id: view.verified_key_id,
    }
}

fn page_to_proto(page: Page) -> proto::ListRecordsResponse {
    proto::ListRecordsResponse {
        records: page.records.into_iter().map(view_to_proto).collect(),
        next_page_token: page.next_page_token.unwrap_or_default(),
    }
}

/// The one conversion of a wire search request into the query model.
pub fn search_request(
    req: proto::SearchRequest,
    own: &str,
) -> Result<crate::search::SearchRequest, Status> {
    use crate::search::{Scope, Sort};
    let scope = match req.scope.as_str() {
        "" | "federation" => Scope::Federation,
        "local" => Scope::Local {
            node: own.to_owned(),
        },
        "live" => Scope::Live,
        other => {
            return Err(Status::invalid_argument(format!(
                "scope: `{other}` is not local, federation or live"
            )))
        }
    };
    let sort = match req.sort.as_str() {
        "" | "relevance" => Sort::Relevance,
        "updated" => Sort::Updated,
        "size" => Sort::Size,
        other => {
            return Err(Status::invalid_argument(format!(
                "sort: `{other}` is not relevance, updated or size"
            )))
        }
    };
    let open = |year: u32| (year != 0).then_some(year);
    let year = (req.year_from != 0 || req.year_to != 0)
        .then_some((open(req.year_from), open(req.year_to)));
    let text_or_none = |text: String| (!text.is_empty()).then_some(text);
    Ok(crate::search::SearchRequest {
        text: req.query,
        scope,
        disciplines: req.disciplines,
        origins: req.origins,
        access: req.access,
        licenses: req.licenses,
        formats: req.formats,
        year,
        bbox: req.bbox,
        time_from: text_or_none(req.time_from),
        time_to: text_or_none(req.time_to),
        sort,
        limit: if req.limit == 0 {
            20
        } else {
            req.limit as usize
        },
        after: text_or_none(req.after),
        facets: req.facets,
        highlight: req.highlight,
    })
}

fn search_status(error: crate::search::SearchError) -> Status {
    use crate::search::SearchError;
    match &error {
        SearchError::Query { .. } | SearchError::Invalid(_) | SearchError::Cursor(_) => {
            Status::invalid_argument(error.to_string())
        }
        SearchError::Index(_) => {
            tracing::error!(error = %error, "search failed");
            Status::internal("internal error; the node's log has the details")
        }
    }
}

/// Runs a search for `viewer` and builds the answer with its completeness
/// report: this node's own holdings are complete; each peer's are a replica
/// as of its last successful sync.
pub async fn run_search(
    node: Arc<Node>,
    request: proto::SearchRequest,
    viewer: Viewer,
) -> Result<proto::SearchResponse, Status> {
    let started = std::time::Instant::now();
    let request = search_request(request, node.node_id())?;
    let local_only = matches!(request.scope, crate::search::Scope::Local { .. });
    let searcher = node.clone();
    let results = tokio::task::spawn_blocking(move || searcher.index().search(&request, &viewer))
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(search_status)?;
    let mut completeness = vec![proto::Completeness {
        origin: node.node_id().to_owned(),
        status: "ok".into(),
        as_of: String::new(),
    }];
    if !local_only {
        let synced = node.sync_state().snapshot();
        let peers = node.trust().list().map_err(|e| status(e.into()))?;
        for peer in peers.into_iter().filter(|p| p.state != PeerState::Revoked) {
            let as_of = synced
                .get(&peer.node_id)
                .map(|s| s.last_sync.clone())
                .unwrap_or_default();
            completeness.push(proto::Completeness {
                origin: peer.node_id,
                status: "replica".into(),
                as_of,
            });
        }
    }
    Ok(proto::SearchResponse {
        hits: results
            .hits
            .into_iter()
            .map(|hit| proto::SearchHit {
                origin: hit.origin,
                id: hit.id,
                version: hit.version,
                title: hit.title,
                doi: hit.doi,
                publication_year: hit.publication_year,
                updated_at: hit.updated_at,
                size_bytes: hit.size_bytes,
                score: hit.score,
                snippet: hit.snippet,
                access: crate::record::access_name(hit.access as i32).to_owned(),
                visibility: crate::record::visibility_name(hit.visibility as i32).to_owned(),
                verified: true,
            })
            .collect(),
        total: results.total,
        facets: results
            .facets
            .into_iter()
            .map(|(name, values)| proto::Facet {
                name,
                values: values
                    .into_iter()
                    .map(|(value, count)| proto::FacetValue { value, count })
                    .collect(),
            })
            .collect(),
        next_cursor: results.next_cursor.unwrap_or_default(),
        completeness,
        took_micros: started.elapsed().as_micros() as u64,
    })
}

/// Runs blocking node work off the async executor.
async fn blocking<T, F>(f: F) -> Result<T, Status>
where
    F: FnOnce() -> Result<T, NodeError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))?
        .map_err(status)
}

/// The public read service.
pub struct CatalogService {
    node: Arc<Node>,
}

impl CatalogService {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    /// Who is calling: a pinned peer (by its TLS key), else anonymous.
    fn viewer<T>(&self, request: &Request<T>) -> Result<Viewer, Status> {
        federation::viewer(&self.node, request)
    }
}

#[tonic::async_trait]
impl Catalog for CatalogService {
    async fn search(
        &self,
        request: Request<proto::SearchRequest>,
    ) -> Result<Response<proto::SearchResponse>, Status> {
        let viewer = self.viewer(&request)?;
        let response = run_search(self.node.clone(), request.into_inner(), viewer).await?;
        Ok(Response::new(response))
    }

    async fn get_record(
        &self,
        request: Request<proto::GetRecordRequest>,
    ) -> Result<Response<proto::RecordView>, Status> {
        let viewer = self.viewer(&request)?;
        let node = self.node.clone();
        let req = request.into_inner();
        let view = blocking(move || node.get(&req.origin, &req.id, &viewer)).await?;
        Ok(Response::new(view_to_proto(view)))
    }

    async fn list_records(
        &self,
        request: Request<proto::ListRecordsRequest>,
    ) -> Result<Response<proto::ListRecordsResponse>, Status> {
        let viewer = self.viewer(&request)?;
        let node = self.node.clone();
        let req = request.into_inner();
        let page = blocking(move || {
            node.list(
                &req.origin,
                page_size(req.page_size),
                &req.page_token,
                false,
                &viewer,
            )
        })
        .await?;
        Ok(Response::new(page_to_proto(page)))
    }
}

fn page_size(requested: u32) -> usize {
    if requested == 0 {
        100
    } else {
        requested as usize
    }
}

/// The operator's service.
pub struct AdminService {
    node: Arc<Node>,
}

impl AdminService {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

type AckStream = Pin<Box<dyn Stream<Item = Result<proto::ImportAck, Status>> + Send>>;

#[tonic::async_trait]
impl Admin for AdminService {
    type ImportStream = AckStream;
    type RebuildIndexStream =
        Pin<Box<dyn Stream<Item = Result<proto::RebuildProgress, Status>> + Send>>;

    async fn search(
        &self,
        request: Request<proto::SearchRequest>,
    ) -> Result<Response<proto::SearchResponse>, Status> {
        let viewer = self.node.operator();
        let response = run_search(self.node.clone(), request.into_inner(), viewer).await?;
        Ok(Response::new(response))
    }

    async fn rebuild_index(
        &self,
        _request: Request<proto::RebuildIndexRequest>,
    ) -> Result<Response<Self::RebuildIndexStream>, Status> {
        let node = self.node.clone();
        let total: u64 = node
            .store()
            .origins()
            .map_err(|e| status(e.into()))?
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
                .map(|indexed| proto::RebuildProgress {
                    indexed,
                    total,
                    done: true,
                })
                .map_err(status);
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
        // Two stages: the next chunk is parsed and validated while the
        // previous one is signed and committed.
        let (prepared_tx, mut prepared_rx) = tokio::sync::mpsc::channel(1);
        let guard = node.import_guard();
        let parser_node = node.clone();
        tokio::spawn(async move {
            loop {
                let chunk = match chunks.message().await {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "import stream ended with an error");
                        break;
                    }
                };
                let node = parser_node.clone();
                let prepared = tokio::task::spawn_blocking(move || {
                    node.prepare_lines(chunk.first_line, &chunk.lines)
                })
                .await;
                let Ok(prepared) = prepared else { break };
                if prepared_tx.send(prepared).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            let _guard = guard;
            while let Some(prepared) = prepared_rx.recv().await {
                let node = node.clone();
                let result = blocking(move || node.store_prepared(prepared))
                    .await
                    .map(|outcome| proto::ImportAck {
                        stored: outcome.stored,
                        unchanged: outcome.unchanged,
                        rejected: outcome.rejected,
                        errors: outcome
                            .errors
                            .into_iter()
                            .map(|e| proto::LineError {
                                line: e.line,
                                field: e.field,
                                reason: e.reason,
                            })
                            .collect(),
                        log_size: outcome.log_size,
                    });
                let failed = result.is_err();
                if tx.send(result).await.is_err() || failed {
                    break;
                }
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn delete_record(
        &self,
        request: Request<proto::DeleteRecordRequest>,
    ) -> Result<Response<proto::DeleteRecordResponse>, Status> {
        let node = self.node.clone();
        let id = request.into_inner().id;
        let (version, log_index) = blocking(move || node.delete(&id)).await?;
        Ok(Response::new(proto::DeleteRecordResponse {
            version,
            log_index,
        }))
    }

    async fn get_record(
        &self,
        request: Request<proto::GetRecordRequest>,
    ) -> Result<Response<proto::RecordView>, Status> {
        let node = self.node.clone();
        let req = request.into_inner();
        let view = blocking(move || node.get(&req.origin, &req.id, &node.operator())).await?;
        Ok(Response::new(view_to_proto(view)))
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
        Ok(Response::new(page_to_proto(page)))
    }

    async fn status(
        &self,
        _request: Request<proto::StatusRequest>,
    ) -> Result<Response<proto::StatusResponse>, Status> {
        let node = self.node.clone();
        let (log_size, records) = blocking(move || node.holdings_status()).await?;
        Ok(Response::new(proto::StatusResponse {
            node_id: self.node.node_id().to_owned(),
            key_id: self.node.key().key_id().to_string(),
            log_size,
            records,
            listen: self.node.endpoint(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }))
    }

    async fn keys_show(
        &self,
        _request: Request<proto::KeysShowRequest>,
    ) -> Result<Response<proto::KeysShowResponse>, Status> {
        let invite = self.node.invite();
        Ok(Response::new(proto::KeysShowResponse {
            node_id: invite.node_id.clone(),
            key_id: invite.key_id.clone(),
            public_key: invite.key.clone(),
            endpoint: invite.endpoint.clone(),
            tls_key: invite.tls_key.clone(),
            invite: invite.to_token(),
        }))
    }

    async fn trust_add(
        &self,
        request: Request<proto::TrustAddRequest>,
    ) -> Result<Response<proto::PeerInfo>, Status> {
        let req = request.into_inner();
        let node = self.node.clone();
        let peer = blocking(move || {
            let invite = Invite::from_token(&req.invite)?;
            Ok(node.trust().add(&invite, &req.groups)?)
        })
        .await?;
        self.node.sync_state().wake.notify_one();
        Ok(Response::new(peer_info(peer)))
    }

    async fn trust_list(
        &self,
        _request: Request<proto::TrustListRequest>,
    ) -> Result<Response<proto::TrustListResponse>, Status> {
        let node = self.node.clone();
        let (peers, audit) =
            blocking(move || Ok((node.trust().list()?, node.trust().audit_log()?))).await?;
        Ok(Response::new(proto::TrustListResponse {
            peers: peers.into_iter().map(peer_info).collect(),
            audit: audit
                .iter()
                .filter_map(|event| serde_json::to_string(event).ok())
                .collect(),
        }))
    }

    async fn trust_set_state(
        &self,
        request: Request<proto::TrustSetStateRequest>,
    ) -> Result<Response<proto::PeerInfo>, Status> {
        let req = request.into_inner();
        let state = match req.state.as_str() {
            "active" => PeerState::Active,
            "suspended" => PeerState::Suspended,
            "revoked" => PeerState::Revoked,
            other => {
                return Err(Status::invalid_argument(format!(
                    "state: `{other}` is not active, suspended or revoked"
                )))
            }
        };
        let node = self.node.clone();
        let peer = blocking(move || {
            let peer = node.trust().set_state(&req.node_id, state)?;
            if peer.state == PeerState::Revoked {
                // Entries under a revoked key are quarantined: out of search at once.
                node.unindex_origin(&peer.node_id)?;
            }
            Ok(peer)
        })
        .await?;
        Ok(Response::new(peer_info(peer)))
    }

    async fn sync_now(
        &self,
        _request: Request<proto::SyncNowRequest>,
    ) -> Result<Response<proto::SyncNowResponse>, Status> {
        let connector = federation::connector(self.node.clone());
        let reports = crate::sync::round(self.node.clone(), connector, true).await;
        Ok(Response::new(proto::SyncNowResponse {
            reports: reports
                .into_iter()
                .map(|r| proto::SyncReport {
                    peer: r.peer,
                    ok: r.ok,
                    entries: r.entries,
                    origins: r.origins,
                    error: r.error,
                })
                .collect(),
        }))
    }

    async fn peers_status(
        &self,
        _request: Request<proto::PeersStatusRequest>,
    ) -> Result<Response<proto::PeersStatusResponse>, Status> {
        let node = self.node.clone();
        let peers = blocking(move || Ok(node.trust().list()?)).await?;
        let known = self.node.sync_state().snapshot();
        Ok(Response::new(proto::PeersStatusResponse {
            peers: peers
                .into_iter()
                .map(|peer| {
                    let status = known.get(&peer.node_id).cloned().unwrap_or_default();
                    proto::PeerStatus {
                        node_id: peer.node_id,
                        state: peer.state.to_string(),
                        reachable: status.reachable,
                        last_sync: status.last_sync,
                        lag: status.lag,
                        entries_received: status.entries_received,
                        rejected: status.rejected,
                        last_error: status.last_error,
                        endpoint: peer.endpoint,
                        groups: peer.groups,
                    }
                })
                .collect(),
        }))
    }
}

fn peer_info(peer: Peer) -> proto::PeerInfo {
    proto::PeerInfo {
        node_id: peer.node_id,
        endpoint: peer.endpoint,
        key_id: peer.key_id,
        groups: peer.groups,
        state: peer.state.to_string(),
        added_at: peer.added_at,
        changed_at: peer.changed_at,
    }
}

/// Why the servers could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("another node is already serving {0}")]
    AlreadyRunning(PathBuf),
    #[error("reflection: {0}")]
    Reflection(String),
    #[error("server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Health and reflection services shared by both listeners.
async fn support_services() -> Result<
    (
        tonic_health::server::HealthReporter,
        tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    ServeError,
> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    Ok((reporter, health, v1, v1alpha))
}

/// Binds the admin socket in `data_dir`: refuses if a live node holds it,
/// replaces a stale one, and restricts it to the operator's account.
pub async fn bind_admin_socket(path: &Path) -> Result<UnixListener, ServeError> {
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(ServeError::AlreadyRunning(path.to_owned()));
        }
        let _ = std::fs::remove_file(path);
    }
    let bind_error = |source| ServeError::Bind {
        addr: path.display().to_string(),
        source,
    };
    let listener = UnixListener::bind(path).map_err(bind_error)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_error)?;
    Ok(listener)
}

/// Runs the Catalog on `tcp` and the Admin on `admin` until `shutdown`
/// resolves, then drains in-flight requests.
pub async fn serve(
    node: Arc<Node>,
    tcp: TcpListener,
    admin: UnixListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let limits = node.config().limits.clone();
    let (reporter, health, v1, v1alpha) = support_services().await?;
    reporter
        .set_serving::<CatalogServer<CatalogService>>()
        .await;
    reporter.set_serving::<AdminServer<AdminService>>().await;
    let (admin_health_reporter, admin_health, admin_v1, admin_v1alpha) = support_services().await?;
    admin_health_reporter
        .set_serving::<AdminServer<AdminService>>()
        .await;

    reporter
        .set_serving::<FederationServer<FederationService>>()
        .await;
    let catalog = CatalogServer::new(CatalogService::new(node.clone()))
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);
    let admin_service = AdminServer::new(AdminService::new(node.clone()))
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);

    let federation_service = FederationServer::new(FederationService::new(node.clone()))
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    tokio::spawn(crate::node::indexer::run(node.clone(), stop_rx.clone()));
    let connector = federation::connector(node.clone());
    let interval = Duration::from_secs(node.config().sync.interval_secs);
    tokio::spawn(crate::sync::run(
        node.clone(),
        connector.clone(),
        interval,
        stop_rx.clone(),
    ));
    tokio::spawn(hint_on_growth(node.clone(), connector, stop_rx.clone()));

    let trust_node = node.clone();
    let check: crate::tls::ClientCheck =
        Arc::new(
            move |spki: &[u8]| match trust_node.trust().by_tls_key(spki) {
                // A suspended peer completes the handshake so that each
                // request can tell it why it is refused ("X is suspended");
                // a revoked key is refused outright.
                Ok(Some(peer)) => match peer.state {
                    PeerState::Active | PeerState::Suspended => Ok(()),
                    PeerState::Revoked => Err(format!("{} is revoked", peer.node_id)),
                },
                Ok(None) => Err("certificate key is not pinned here".to_owned()),
                Err(e) => Err(format!("trust store: {e}")),
            },
        );
    let tls_config = crate::tls::server_config(node.tls(), check)
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let public = Server::builder()
        .concurrency_limit_per_connection(limits.concurrency)
        .timeout(Duration::from_secs(limits.request_timeout_secs))
        .tcp_nodelay(true)
        .add_service(health)
        .add_service(v1)
        .add_service(v1alpha)
        .add_service(catalog)
        .add_service(federation_service)
        .serve_with_incoming_shutdown(
            crate::tls::incoming(tcp, Arc::new(tls_config)),
            stopped(stop_rx.clone()),
        );
    // No request timeout on the admin socket: an import of a large file is
    // one long stream.
    let operator = Server::builder()
        .add_service(admin_health)
        .add_service(admin_v1)
        .add_service(admin_v1alpha)
        .add_service(admin_service)
        .serve_with_incoming_shutdown(UnixListenerStream::new(admin), stopped(stop_rx));
    let (a, b) = tokio::join!(public, operator);
    a?;
    b?;
    Ok(())
}

/// Sends peers a hint whenever this node's own log grows, so a change is
/// searchable across the federation within seconds.
async fn hint_on_growth(
    node: Arc<Node>,
    connector: crate::sync::Connector,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut changes = node.subscribe();
    let mut last = node.store().log_size(node.node_id()).unwrap_or(0);
    loop {
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        let size = node.store().log_size(node.node_id()).unwrap_or(last);
        if size > last {
            last = size;
            federation::send_hints(
                node.clone(),
                connector.clone(),
                node.node_id().to_owned(),
                size,
            )
            .await;
        }
    }
}
