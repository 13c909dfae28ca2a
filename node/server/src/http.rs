//! The HTTP server beside gRPC (axum): one listener, with the same limits,
//! logging and TLS as the gRPC listener, for what web clients, harvesters and
//! browsers use. Every route is listed in [`crate::api::table`], which the
//! OpenAPI document is checked against; this module owns the listener, the
//! stack, CORS and `/healthz`.
//!
//! HTTPS with the public certificate by default; plain HTTP only when the
//! configuration asks for it (`http.plaintext`, a node behind a reverse
//! proxy that terminates TLS).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Method, StatusCode};

use axum::Router;
use futures::StreamExt;
use meridian_core::config::Limits;
use meridian_core::metrics::{Listener, Metrics};
use meridian_core::sync::Replicator;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::catalog::Catalog;
use crate::idle::IdleLayer;
use crate::tls::TlsConn;
use crate::web::{AppState, ClientConn};

/// Every route of the HTTP server ([`crate::api::table`]), with
/// the CORS policy of the node's configuration.
pub fn router(replicator: Arc<Replicator>, catalog: Arc<Catalog>) -> Router {
    let cors = cors(&replicator.node().config().http.cors_origins);
    crate::api::routes()
        .layer(cors)
        .merge(crate::page::routes())
        .with_state(AppState {
            replicator: replicator.clone(),
            catalog: catalog.clone(),
        })
        .merge(crate::oai::router(replicator, catalog))
}

/// The CORS layer for `origins` (none: browsers allow no other page's
/// scripts to read the answers). The configuration checked each origin.
fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(Duration::from_secs(3600));
    if origins.iter().any(|origin| origin == "*") {
        return layer.allow_origin(AllowOrigin::any());
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    if list.is_empty() {
        layer
    } else {
        layer.allow_origin(list)
    }
}

/// Runs `request` once one of the listener's `places` is free.
async fn within_places(
    places: &Arc<tokio::sync::Semaphore>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // The semaphore is never closed.
    let _place = places.acquire().await;
    next.run(request).await
}

/// Serves `router` on `listener` until `shutdown` resolves, over TLS with
/// `tls` (plain HTTP when `None`), within `limits`; its connections are
/// counted in `metrics`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    limits: &Limits,
    metrics: &Metrics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let places = Arc::new(tokio::sync::Semaphore::new(limits.concurrency));
    let router = router
        .layer(axum::extract::DefaultBodyLimit::max(
            limits.max_message_bytes,
        ))
        .layer(
            // The deadline is outside the cap on requests at once, and the
            // place is taken when the request is called (tower's limit
            // takes it before, where no deadline runs): time spent waiting
            // for a place counts, so a request queued behind slow ones is
            // answered by its own deadline.
            tower::ServiceBuilder::new()
                .layer(tower_http::trace::TraceLayer::new_for_http())
                .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    Duration::from_secs(limits.request_timeout_secs),
                ))
                .layer(axum::middleware::from_fn(move |request, next| {
                    let places = places.clone();
                    async move { within_places(&places, request, next).await }
                })),
        );
    let router = router.layer(IdleLayer::new(|extensions| {
        extensions
            .get::<ConnectInfo<ClientConn>>()
            .and_then(|info| info.activity.clone())
    }));
    let service = router.into_make_service_with_connect_info::<ClientConn>();
    match tls {
        Some(config) => {
            let local = listener.local_addr()?;
            let incoming = crate::tls::incoming(
                listener,
                config,
                crate::tls::ConnCaps::of(limits, Listener::Http, metrics),
            );
            axum::serve(TlsListener { incoming, local }, service)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(listener, service)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for ClientConn
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        Self {
            addr: *stream.remote_addr(),
            activity: Some(stream.io().activity().clone()),
        }
    }
}

/// Behind a reverse proxy the proxy keeps the connections: no idle timer.
impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>>
    for ClientConn
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TcpListener>) -> Self {
        Self {
            addr: *stream.remote_addr(),
            activity: None,
        }
    }
}

/// The connections of [`crate::tls::incoming`] whose handshake succeeded.
pub struct TlsListener {
    incoming: tokio_stream::wrappers::ReceiverStream<std::io::Result<TlsConn>>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TlsConn, SocketAddr) {
        loop {
            match self.incoming.next().await {
                Some(Ok(conn)) => {
                    let remote = conn.remote().unwrap_or(self.local);
                    return (conn, remote);
                }
                Some(Err(e)) => tracing::warn!(error = %e, "accept failed"),
                // The accepting task ended: nothing more will come.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
