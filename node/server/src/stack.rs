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

/// Streams a connection may reset with errors of its own before it is
/// closed: h2's own default, which tonic turns off unless it is given.
const LOCAL_ERROR_RESETS: usize = 1024;

/// A server builder with the node's limits. A connection has at most
/// `limits.concurrency` streams open: HTTP/2 tells the client so, and
/// refuses a stream past it, so no connection can queue work without end
/// behind its requests in progress. Requests are counted on the connection
/// they came on, which is closed once it holds none for the idle timeout
/// ([`crate::idle`]).
pub fn server(limits: &Limits) -> Server<tower::layer::util::Stack<IdleLayer, Identity>> {
    Server::builder()
        .max_concurrent_streams(u32::try_from(limits.concurrency).unwrap_or(u32::MAX))
        .http2_max_local_error_reset_streams(Some(LOCAL_ERROR_RESETS))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A client learns how many streams it may open at once on one
    /// connection: the node's `concurrency`, not without bound.
    #[tokio::test]
    async fn a_connection_is_told_how_many_streams_it_may_open() {
        let limits = Limits {
            concurrency: 3,
            ..Limits::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (health, service) = tonic_health::server::health_reporter();
        drop(health);
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(
            server(&limits)
                .add_service(service)
                .serve_with_incoming(incoming),
        );
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(connection);
        let mut client = client.ready().await.unwrap();
        let request = axum::http::Request::post("http://node/grpc.health.v1.Health/Check")
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        // The answer comes after the server's settings.
        let (answer, _) = client.send_request(request, true).unwrap();
        answer.await.unwrap();
        assert_eq!(client.current_max_send_streams(), 3);
    }
}
