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
use crate::forwarded::TrustedProxies;
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
/// counted in `metrics`. A request from one of `proxies` counts as the
/// client it was forwarded for ([`crate::forwarded`]).
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    limits: &Limits,
    proxies: TrustedProxies,
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
                .map_request(move |mut request: axum::extract::Request| {
                    request
                        .extensions_mut()
                        .insert(crate::web::Arrived(std::time::Instant::now()));
                    crate::forwarded::resolve(&proxies, &mut request);
                    request
                })
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
            let caps = crate::tls::ConnCaps::of(limits, Listener::Http, metrics);
            let plain = PlainListener {
                places: Arc::new(tokio::sync::Semaphore::new(caps.connections)),
                listener,
                caps,
            };
            axum::serve(plain, service)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

/// Plain HTTP connections (a node behind a reverse proxy), at most
/// `limits.max_connections` open at once: one more is closed as soon as it
/// is accepted, as on a TLS listener. Nothing else is capped here: every
/// connection comes from the proxy, which keeps its clients' connections
/// and their timeouts.
pub struct PlainListener {
    listener: TcpListener,
    places: Arc<tokio::sync::Semaphore>,
    caps: crate::tls::ConnCaps,
}

/// A plain HTTP connection, holding its place under the listener's cap
/// until it closes.
pub struct PlainConn {
    tcp: tokio::net::TcpStream,
    _slot: crate::tls::Slot,
}

impl axum::serve::Listener for PlainListener {
    type Io = PlainConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (PlainConn, SocketAddr) {
        loop {
            let (tcp, remote) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(slot) = crate::tls::Slot::take(&self.places, None, &self.caps, remote) else {
                continue;
            };
            self.caps
                .metrics
                .connections_accepted
                .inc(self.caps.listener);
            let _ = tcp.set_nodelay(true);
            crate::tls::keepalive(&tcp);
            return (PlainConn { tcp, _slot: slot }, remote);
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl tokio::io::AsyncRead for PlainConn {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for PlainConn {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
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
impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, PlainListener>>
    for ClientConn
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, PlainListener>) -> Self {
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
