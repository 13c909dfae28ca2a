//! `Catalog`: search and read. Anonymous callers are allowed and see PUBLIC
//! records only; a pinned peer sees what the records' audiences allow.

use std::sync::Arc;

use meridian_core::node::Node;
use meridian_core::sync::Replicator;
use meridian_core::visibility::Viewer;
use meridian_proto as proto;
use meridian_proto::catalog_server::Catalog;
use tonic::{Request, Response, Status};

use crate::{caller, convert, status};

/// Default and largest page of `ListRecords`.
const DEFAULT_PAGE: u32 = 100;

pub struct CatalogService {
    node: Arc<Node>,
    replicator: Arc<Replicator>,
}

impl CatalogService {
    pub fn new(replicator: Arc<Replicator>) -> Self {
        Self {
            node: replicator.node().clone(),
            replicator,
        }
    }
}

/// Runs a search for `viewer` off the async executor and answers it on the
/// wire, with its completeness report. Shared by `Catalog` and `Admin`.
pub async fn search(
    replicator: Arc<Replicator>,
    request: proto::SearchRequest,
    viewer: Viewer,
) -> Result<proto::SearchResponse, Status> {
    let started = std::time::Instant::now();
    let request = convert::search_request(request, replicator.node().node_id())?;
    let answer = tokio::task::spawn_blocking(move || {
        meridian_core::search::search(replicator.node(), &replicator, &request, &viewer)
    })
    .await
    .map_err(status::join)?
    .map_err(status::search)?;
    Ok(convert::search_response(
        answer,
        started.elapsed().as_micros() as u64,
    ))
}

/// Runs blocking node work off the async executor.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, Status>
where
    F: FnOnce() -> Result<T, meridian_core::node::NodeError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(status::join)?
        .map_err(status::node)
}

pub(crate) fn page_size(requested: u32) -> usize {
    if requested == 0 {
        DEFAULT_PAGE as usize
    } else {
        requested as usize
    }
}

#[tonic::async_trait]
impl Catalog for CatalogService {
    async fn search(
        &self,
        request: Request<proto::SearchRequest>,
    ) -> Result<Response<proto::SearchResponse>, Status> {
        let viewer = caller::viewer(&self.node, &request)?;
        let response = search(self.replicator.clone(), request.into_inner(), viewer).await?;
        Ok(Response::new(response))
    }

    async fn get_record(
        &self,
        request: Request<proto::GetRecordRequest>,
    ) -> Result<Response<proto::RecordView>, Status> {
        let viewer = caller::viewer(&self.node, &request)?;
        let node = self.node.clone();
        let req = request.into_inner();
        let view = blocking(move || node.get(&req.origin, &req.id, &viewer)).await?;
        Ok(Response::new(convert::record_view(view)))
    }

    async fn list_records(
        &self,
        request: Request<proto::ListRecordsRequest>,
    ) -> Result<Response<proto::ListRecordsResponse>, Status> {
        let viewer = caller::viewer(&self.node, &request)?;
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
        Ok(Response::new(convert::page(page)))
    }
}
