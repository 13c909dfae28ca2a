//! The one server stack every listener is built with: per-connection
//! concurrency, a request deadline, HTTP/2 keepalive, a tracing span per
//! request, and message-size limits on every service.

use std::time::Duration;

use meridian_core::config::Limits;
use meridian_proto::admin_server::{Admin, AdminServer};
use meridian_proto::catalog_server::{Catalog, CatalogServer};
use meridian_proto::federation_server::{Federation, FederationServer};
use tonic::transport::Server;
use tower::layer::util::Identity;

use crate::idle::IdleLayer;
use crate::tls::{PeerConnectInfo, KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT};

/// A server builder with the node's limits. Requests are counted on the
/// connection they came on, which is closed once it holds none for the idle
/// timeout ([`crate::idle`]).
pub fn server(limits: &Limits) -> Server<tower::layer::util::Stack<IdleLayer, Identity>> {
    Server::builder()
        .concurrency_limit_per_connection(limits.concurrency)
        .timeout(Duration::from_secs(limits.request_timeout_secs))
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .trace_fn(|request| tracing::debug_span!("grpc", method = %request.uri().path()))
        .layer(IdleLayer::new(|extensions| {
            extensions
                .get::<PeerConnectInfo>()
                .map(|info| info.activity.clone())
        }))
}

/// A generated service with the node's message-size limits.
pub trait Limited: Sized {
    fn limited(self, limits: &Limits) -> Self;
}

impl<T: Catalog> Limited for CatalogServer<T> {
    fn limited(self, limits: &Limits) -> Self {
        self.max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes)
    }
}

impl<T: Federation> Limited for FederationServer<T> {
    fn limited(self, limits: &Limits) -> Self {
        self.max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes)
    }
}

/// The operator's service on the admin socket. Its messages are bounded as
/// its client's are ([`crate::admin_socket::MAX_MESSAGE_BYTES`]), not by
/// `limits.max_message_bytes`, which bounds what the public listeners take
/// from strangers: an import sends chunks of up to 4 MiB and a line, and
/// its answer lists the lines refused.
pub fn operator<T: Admin>(service: T) -> AdminServer<T> {
    AdminServer::new(service)
        .max_decoding_message_size(crate::admin_socket::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(crate::admin_socket::MAX_MESSAGE_BYTES)
}
