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
use axum::http::{header, HeaderValue, Method};

use axum::Router;
use futures::StreamExt;
use meridian_core::config::Limits;
use meridian_core::metrics::{Limit, Listener, Metrics};
use meridian_core::sync::Replicator;
use tokio::net::TcpListener;
use tonic::Status;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::catalog::Catalog;
use crate::forwarded::TrustedProxies;
use crate::idle::IdleLayer;
use crate::tls::{PerAddress, TlsConn};
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

/// What a request on the HTTP listener runs within: a place among the
/// listener's, at most `per_client` of them for one client, and the
/// listener's request timeout counted from its arrival.
#[derive(Clone)]
struct Places {
    places: Arc<tokio::sync::Semaphore>,
    per_client: Option<Arc<PerAddress>>,
    timeout: Duration,
    metrics: Metrics,
}

impl Places {
    /// Runs `request` once one of the listener's places is free, if its
    /// client does not hold its share of them already; answers in the
    /// API's JSON when the request is refused or runs out of time.
    async fn run(
        self,
        request: axum::extract::Request,
        next: axum::middleware::Next,
    ) -> axum::response::Response {
        let arrived = request
            .extensions()
            .get::<crate::web::Arrived>()
            .map_or_else(std::time::Instant::now, |arrived| arrived.0);
        let client = request
            .extensions()
            .get::<ConnectInfo<ClientConn>>()
            .map(|ConnectInfo(conn)| conn.addr);
        let _share = match (&self.per_client, client) {
            (Some(table), Some(client)) => match table.take(client.ip()) {
                Some(share) => Some(share),
                None => {
                    self.metrics.limit_hits.inc(Limit::RequestsAtOnce);
                    return refusal(Status::resource_exhausted(format!(
                        "too many requests at once from {}: at most {}; retry once one has been answered",
                        crate::limit::client_at(Some(client), None),
                        table.cap()
                    )));
                }
            },
            _ => None,
        };
        let deadline = tokio::time::Instant::from_std(arrived + self.timeout);
        let run = async {
            // The semaphore is never closed.
            let _place = self.places.acquire().await;
            next.run(request).await
        };
        match tokio::time::timeout_at(deadline, run).await {
            Ok(response) => response,
            Err(_) => refusal(Status::deadline_exceeded(format!(
                "the request took longer than the listener's request timeout ({} s)",
                self.timeout.as_secs()
            ))),
        }
    }
}

/// `status` as the API's JSON error.
fn refusal(status: Status) -> axum::response::Response {
    axum::response::IntoResponse::into_response(crate::api::ApiError::from(status))
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
    let places = Places {
        places: Arc::new(tokio::sync::Semaphore::new(limits.concurrency)),
        per_client: (limits.requests_at_once_per_client > 0)
            .then(|| PerAddress::new(limits.requests_at_once_per_client)),
        timeout: Duration::from_secs(limits.request_timeout_secs),
        metrics: metrics.clone(),
    };
    let router = router
        .layer(axum::extract::DefaultBodyLimit::max(
            limits.max_message_bytes,
        ))
        .layer(
            // The deadline counts from arrival and covers the wait for a
            // place ([`Places::run`]), so a request queued behind slow
            // ones is answered by its own deadline; a client holding its
            // share of places is refused before it waits, so one client's
            // slow requests cannot queue ahead of everyone else's.
            tower::ServiceBuilder::new()
                .map_request(move |mut request: axum::extract::Request| {
                    request
                        .extensions_mut()
                        .insert(crate::web::Arrived(std::time::Instant::now()));
                    crate::forwarded::resolve(&proxies, &mut request);
                    request
                })
                .layer(tower_http::trace::TraceLayer::new_for_http())
                .layer(axum::middleware::from_fn(move |request, next| {
                    places.clone().run(request, next)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// `GET path` over HTTP/1.1 from `ip` to `addr`: the status and body.
    async fn get(addr: SocketAddr, ip: &str, path: &str) -> (u16, String) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
        let mut tcp = socket.connect(addr).await.unwrap();
        tcp.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        let status = answer[9..12].parse().unwrap();
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// One client's slow requests hold at most its share of the listener's
    /// places: one more from it is refused at once (429, JSON, counted)
    /// while another client is served; a request past the listener's
    /// timeout is answered in JSON too, with 504.
    #[tokio::test(flavor = "multi_thread")]
    async fn one_client_holds_at_most_its_share_of_the_places() {
        let limits = Limits {
            requests_at_once_per_client: 2,
            request_timeout_secs: 2,
            ..Limits::default()
        };
        let slow = Arc::new(AtomicUsize::new(0));
        let router = {
            let slow = slow.clone();
            Router::new()
                .route("/fast", axum::routing::get(|| async { "ok" }))
                .route(
                    "/slow",
                    axum::routing::get(move || async move {
                        slow.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        "late"
                    }),
                )
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Metrics::default();
        let server_metrics = metrics.clone();
        tokio::spawn(async move {
            serve(
                listener,
                None,
                router,
                &limits,
                TrustedProxies::default(),
                &server_metrics,
                std::future::pending(),
            )
            .await
        });
        let held: Vec<_> = (0..2)
            .map(|_| tokio::spawn(get(addr, "127.0.0.1", "/slow")))
            .collect();
        while slow.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (status, body) = get(addr, "127.0.0.1", "/fast").await;
        assert_eq!(status, 429, "{body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["code"], "RESOURCE_EXHAUSTED", "{body}");
        assert!(
            error["message"].as_str().unwrap().contains("127.0.0.1"),
            "{body}"
        );
        assert_eq!(metrics.limit_hits.get(Limit::RequestsAtOnce), 1);
        assert_eq!(
            get(addr, "127.0.0.2", "/fast").await,
            (200, "ok".to_owned())
        );
        for request in held {
            let (status, body) = request.await.unwrap();
            assert_eq!(status, 504, "{body}");
            let error: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(error["code"], "DEADLINE_EXCEEDED", "{body}");
        }
        // Their places are given back.
        assert_eq!(
            get(addr, "127.0.0.1", "/fast").await,
            (200, "ok".to_owned())
        );
    }
}
