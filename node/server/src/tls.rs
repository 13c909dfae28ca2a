//! TLS 1.3 on the node's listeners (rustls with the ring provider).
//!
//! Between nodes, keys are pinned: each node has a self-signed certificate
//! for an Ed25519 TLS key its identity key vouches for in its signed key set
//! (as libp2p-tls does). A peer is accepted only if its certificate's key is
//! pinned in the trust store, and a client checks that the node it reached
//! is the node it dialed. Clients without a certificate are anonymous.
//!
//! One listener serves both kinds of client, and the certificate is chosen
//! per connection ([`CertResolver`]): a peer asks for [`SERVER_NAME`] and
//! gets the pinned key's certificate; anyone else gets the public
//! certificate (ECDSA P-256 by default, or the operator's own), which
//! browsers and BoringSSL-based clients such as Python's grpcio accept.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::Connected;

use meridian_core::certificate::SERVER_NAME;
pub use meridian_core::certificate::{spki_of, PublicIdentity, TlsIdentity};
use meridian_core::metrics::{Limit, Listener, Metrics};

use crate::idle::{Activity, IdleTimer};
use rustls::sign::CertifiedKey;

/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The public certificate or key cannot be used; names the file.
    #[error("{path}: {message}")]
    PublicIdentity { path: String, message: String },
    /// The public certificate or key file could not be read.
    #[error(transparent)]
    Files(#[from] meridian_core::certificate::TlsError),
}

/// The TLS identity a node presents to peers now (it changes with
/// `keys switch-tls`).
pub type IdentitySource = Arc<dyn Fn() -> Arc<TlsIdentity> + Send + Sync>;

/// Chooses the certificate of each connection: the pinned key's for a peer
/// (which asks for [`SERVER_NAME`]), the public one for everyone else.
/// Both can be replaced while connections are served: the peer one follows
/// `identity`, the public one [`CertResolver::reload`].
pub struct CertResolver {
    identity: IdentitySource,
    /// The peer certificate last served, with the key it was made from.
    peer: std::sync::RwLock<(Arc<TlsIdentity>, Arc<CertifiedKey>)>,
    public: std::sync::RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertResolver")
    }
}

impl CertResolver {
    pub fn new(identity: IdentitySource, public: &PublicIdentity) -> Result<Self, TlsError> {
        let current = identity();
        let peer = Arc::new(certified_peer(&current)?);
        Ok(Self {
            identity,
            peer: std::sync::RwLock::new((current, peer)),
            public: std::sync::RwLock::new(Arc::new(certified_public(public)?)),
        })
    }

    /// The certificate of the TLS key the node presents to peers now.
    fn peer_cert(&self) -> Option<Arc<CertifiedKey>> {
        let current = (self.identity)();
        {
            let held = self.peer.read().unwrap_or_else(|p| p.into_inner());
            if Arc::ptr_eq(&held.0, &current) {
                return Some(held.1.clone());
            }
        }
        let certified = Arc::new(certified_peer(&current).ok()?);
        *self.peer.write().unwrap_or_else(|p| p.into_inner()) = (current, certified.clone());
        Some(certified)
    }

    /// Serves `public` to new connections from now on; the connections
    /// already made keep theirs.
    pub fn reload(&self, public: &PublicIdentity) -> Result<(), TlsError> {
        let certified = Arc::new(certified_public(public)?);
        *self.public.write().unwrap_or_else(|p| p.into_inner()) = certified;
        Ok(())
    }

    /// The public certificate chain now served, DER, leaf first.
    pub fn public_chain(&self) -> Vec<CertificateDer<'static>> {
        self.public
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .cert
            .clone()
    }
}

impl rustls::server::ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if hello.server_name() == Some(SERVER_NAME) {
            self.peer_cert()
        } else {
            Some(
                self.public
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone(),
            )
        }
    }
}

fn certified_peer(identity: &TlsIdentity) -> Result<CertifiedKey, TlsError> {
    Ok(CertifiedKey::from_der(
        vec![cert(identity)],
        key(identity),
        &provider(),
    )?)
}

/// Parses a public identity's PEM into a key rustls serves, checking that
/// the key is the certificate's.
fn certified_public(public: &PublicIdentity) -> Result<CertifiedKey, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let bad = |path: &std::path::Path, message: String| TlsError::PublicIdentity {
        path: path.display().to_string(),
        message,
    };
    let chain = CertificateDer::pem_slice_iter(public.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            bad(
                &public.cert_path,
                format!("not a PEM certificate chain: {e}"),
            )
        })?;
    if chain.is_empty() {
        return Err(bad(&public.cert_path, "holds no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(public.key_pem.as_bytes())
        .map_err(|e| bad(&public.key_path, format!("not a PEM private key: {e}")))?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
        bad(
            &public.key_path,
            format!("cannot be used with {}: {e}", public.cert_path.display()),
        )
    })
}

/// The ring provider: the one crypto provider this build uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Decides whether a client certificate key belongs to an accepted peer.
/// Returns a reason when it does not.
pub type ClientCheck = Arc<dyn Fn(&[u8]) -> Result<(), String> + Send + Sync>;

#[derive(Debug)]
struct AnyPinned {
    algorithms: WebPkiSupportedAlgorithms,
}

/// Accepts clients without a certificate (anonymous) and clients whose
/// certificate key passes `check`.
struct PinnedClients {
    check: ClientCheck,
    inner: AnyPinned,
}

impl std::fmt::Debug for PinnedClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinnedClients")
    }
}

impl ClientCertVerifier for PinnedClients {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let spki = spki_of(end_entity.as_ref())
            .ok_or_else(|| rustls::Error::General("client certificate does not parse".into()))?;
        (self.check)(&spki).map_err(rustls::Error::General)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.inner.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.inner.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.algorithms.supported_schemes()
    }
}

/// Why a client refused the server it reached: typed, so a caller can tell an
/// impostor from a network failure.
#[derive(Debug, thiserror::Error)]
#[error("the node reached is not {dialed}: its TLS key is not the one pinned for it")]
pub struct NotTheDialedNode {
    pub dialed: String,
}

/// Whether `error` or one of its causes is a [`NotTheDialedNode`] refusal.
pub fn is_not_the_dialed_node(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<NotTheDialedNode>() {
            return true;
        }
        if let Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) =
            e.downcast_ref::<rustls::Error>()
        {
            if other.0.is::<NotTheDialedNode>() {
                return true;
            }
        }
        // An io::Error hides the error it wraps from `source()`.
        if let Some(inner) = e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            if is_not_the_dialed_node(inner) {
                return true;
            }
        }
        next = e.source();
    }
    false
}

/// Accepts a server only if its certificate key is one of the dialed node's
/// pinned keys.
#[derive(Debug)]
struct PinnedServer {
    dialed: String,
    pins: Vec<Vec<u8>>,
    inner: AnyPinned,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let spki = spki_of(end_entity.as_ref())
            .ok_or_else(|| rustls::Error::General("server certificate does not parse".into()))?;
        if self.pins.contains(&spki) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(NotTheDialedNode {
                    dialed: self.dialed.clone(),
                }))),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.inner.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.inner.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.algorithms.supported_schemes()
    }
}

fn cert(identity: &TlsIdentity) -> CertificateDer<'static> {
    CertificateDer::from(identity.cert_der().to_vec())
}

fn key(identity: &TlsIdentity) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_der().to_vec()))
}

/// The gRPC listener: TLS 1.3 only, h2, the certificate chosen per
/// connection by `certs`, optional pinned client certificates.
pub fn server_config(
    certs: Arc<CertResolver>,
    check: ClientCheck,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(PinnedClients {
        check,
        inner: AnyPinned {
            algorithms: provider.signature_verification_algorithms,
        },
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The HTTP listener: TLS 1.3, the public certificate, no client
/// certificates, HTTP/2 or HTTP/1.1.
pub fn http_config(certs: Arc<CertResolver>) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Client side for dialing node `dialed` whose TLS keys are `pins`; presents
/// this node's certificate when `identity` is given (anonymous otherwise).
pub fn client_config(
    dialed: &str,
    pins: Vec<Vec<u8>>,
    identity: Option<&TlsIdentity>,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(PinnedServer {
        dialed: dialed.to_owned(),
        pins,
        inner: AnyPinned {
            algorithms: provider.signature_verification_algorithms,
        },
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match identity {
        Some(identity) => builder.with_client_auth_cert(vec![cert(identity)], key(identity))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// What the server knows of a connection's other end.
#[derive(Debug, Clone)]
pub struct PeerConnectInfo {
    pub remote: Option<SocketAddr>,
    /// The verified client certificate's key, if the client presented one.
    pub client_spki: Option<Vec<u8>>,
    /// The requests open on the connection ([`crate::idle`]).
    pub activity: Arc<Activity>,
}

/// A server-side TLS connection that tells tonic who is on the other end.
pub struct TlsConn {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    /// Ends the connection's reads once it has held no request for the
    /// listener's idle timeout.
    idle: IdleTimer,
    /// This connection's place under its listener's connection cap, given
    /// back when the connection closes.
    _slot: Slot,
}

/// A connection's place under its listener's caps, counted as open until
/// the connection closes.
pub(crate) struct Slot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    /// Its place among its address's connections, when they are capped.
    _address: Option<AddressPlace>,
    open: prometheus_client::metrics::gauge::Gauge,
}

impl Slot {
    /// A place under `connections` for a connection `caps`' listener
    /// accepted from `remote`, counted as open while it is held; `None`
    /// (the refusal logged and counted) when every place is taken.
    pub(crate) fn take(
        connections: &Arc<tokio::sync::Semaphore>,
        address: Option<AddressPlace>,
        caps: &ConnCaps,
        remote: SocketAddr,
    ) -> Option<Slot> {
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            caps.metrics.limit_hits.inc(Limit::Connections);
            if let Some(held_back) = caps.warnings.connections.admit() {
                tracing::warn!(remote = %remote, limit = caps.connections, held_back, "connection closed: too many connections");
            }
            return None;
        };
        let open = caps.metrics.connections_open.of(caps.listener);
        open.inc();
        Some(Slot {
            _permit: permit,
            _address: address,
            open,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl TlsConn {
    /// The client's address.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.stream.get_ref().0.peer_addr().ok()
    }

    /// The requests open on the connection.
    pub fn activity(&self) -> &Arc<Activity> {
        self.idle.activity()
    }
}

impl Connected for TlsConn {
    type ConnectInfo = PeerConnectInfo;

    fn connect_info(&self) -> PeerConnectInfo {
        let (tcp, session) = self.stream.get_ref();
        PeerConnectInfo {
            remote: tcp.peer_addr().ok(),
            client_spki: session
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|cert| spki_of(cert.as_ref())),
            activity: self.idle.activity().clone(),
        }
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Pending if this.idle.poll_expired(cx) => {
                tracing::debug!(remote = ?this.remote(), "connection closed: idle");
                // The end of the stream: the server closes the connection.
                Poll::Ready(Ok(()))
            }
            polled => polled,
        }
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// One listener's warnings of connections closed at a cap, and of failed
/// handshakes: anyone can cause them as fast as they can connect, so each
/// kind is written at most once a second, with how many of that kind were
/// held back since (`held_back`); the metrics count every one.
#[derive(Debug)]
pub struct Warnings {
    connections: LogThrottle,
    connections_per_address: LogThrottle,
    handshakes: LogThrottle,
    handshakes_per_address: LogThrottle,
    handshakes_failed: LogThrottle,
}

impl Default for Warnings {
    fn default() -> Self {
        let every = || LogThrottle::every(Duration::from_secs(1));
        Self {
            connections: every(),
            connections_per_address: every(),
            handshakes: every(),
            handshakes_per_address: every(),
            handshakes_failed: every(),
        }
    }
}

/// Lets a warning through at most once per interval.
#[derive(Debug)]
pub(crate) struct LogThrottle {
    interval: Duration,
    /// When one was last let through, and how many were held back since.
    state: std::sync::Mutex<(Option<std::time::Instant>, u64)>,
}

impl LogThrottle {
    pub(crate) const fn every(interval: Duration) -> Self {
        Self {
            interval,
            state: std::sync::Mutex::new((None, 0)),
        }
    }

    /// `Some(held back since the last one let through)` when a warning may
    /// be written now; `None` (and one more held back) when not.
    pub(crate) fn admit(&self) -> Option<u64> {
        let now = std::time::Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.0 {
            Some(at) if now.duration_since(at) < self.interval => {
                state.1 += 1;
                None
            }
            _ => {
                state.0 = Some(now);
                Some(std::mem::take(&mut state.1))
            }
        }
    }
}

/// The connections open on one listener from each client address, for
/// `limits.connections_per_address`. An address is in the map only while
/// it holds a connection, so the map holds at most as many addresses as
/// the listener holds connections.
#[derive(Debug)]
pub(crate) struct PerAddress {
    cap: usize,
    open: std::sync::Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    /// A table that gives each address `cap` places.
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            open: std::sync::Mutex::default(),
        })
    }

    /// A place for one more connection from `remote`, or `None` when its
    /// address holds `cap` already.
    pub(crate) fn take(self: &Arc<Self>, remote: IpAddr) -> Option<AddressPlace> {
        let address = address_of(remote);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(address).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(AddressPlace {
            table: self.clone(),
            address,
        })
    }

    /// The places each address has.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// How many addresses hold a connection now.
    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// One connection's place among those of its address, given back when it
/// is dropped; the address leaves the map with its last connection.
#[derive(Debug)]
pub(crate) struct AddressPlace {
    table: Arc<PerAddress>,
    address: IpAddr,
}

impl Drop for AddressPlace {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// The address a connection from `remote` counts against: an IPv4 address
/// (also when written as IPv4-mapped IPv6) as it is, an IPv6 address by its
/// /64 network, the least a site or a host is usually given, so that one
/// host cannot take a new place with each of its addresses.
pub(crate) fn address_of(remote: IpAddr) -> IpAddr {
    match remote {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Caps on one listener's connections, and where its connections and
/// refusals are counted.
#[derive(Debug, Clone)]
pub struct ConnCaps {
    /// Connections open at once (handshaking or established); more are
    /// closed as soon as they are accepted.
    pub connections: usize,
    /// Connections one client address (an IPv6 address by its /64) may hold
    /// open at once; more are closed as soon as they are accepted. 0: no
    /// cap per address.
    pub per_address: usize,
    /// TLS handshakes in progress at once; more are closed as soon as they
    /// are accepted, so slow handshakes cannot hold the listener.
    pub handshakes: usize,
    /// How long a connection may hold no request before it is closed.
    pub idle_timeout: Duration,
    /// Which listener this is, in the metrics.
    pub listener: Listener,
    pub metrics: Metrics,
    /// How often this listener's refusals are logged.
    pub warnings: Arc<Warnings>,
}

impl ConnCaps {
    /// The caps the node's limits set, for `listener`, counted in `metrics`.
    pub fn of(
        limits: &meridian_core::config::Limits,
        listener: Listener,
        metrics: &Metrics,
    ) -> Self {
        Self {
            connections: limits.max_connections,
            per_address: limits.connections_per_address,
            handshakes: limits.max_handshakes,
            idle_timeout: Duration::from_secs(limits.idle_timeout_secs),
            listener,
            metrics: metrics.clone(),
            warnings: Arc::default(),
        }
    }
}

/// Accepts TCP connections on `listener` and yields those whose TLS handshake
/// succeeds; failed handshakes are logged and dropped. A connection over
/// `caps` (its address's, the listener's, the handshakes') is closed at
/// once, before any TLS work.
pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    caps: ConnCaps,
) -> tokio_stream::wrappers::ReceiverStream<io::Result<TlsConn>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let connections = Arc::new(tokio::sync::Semaphore::new(caps.connections));
    let handshakes = Arc::new(tokio::sync::Semaphore::new(caps.handshakes));
    let per_address = (caps.per_address > 0).then(|| PerAddress::new(caps.per_address));
    // While connections are capped per address, so are handshakes: one
    // address holds at most an eighth of the listener's, and cannot keep
    // every other client (pinned peers too) from being accepted.
    let handshaking = (caps.per_address > 0).then(|| PerAddress::new((caps.handshakes / 8).max(1)));
    tokio::spawn(async move {
        loop {
            // Once the server has stopped taking connections, the loop ends
            // at once, closing the listener and letting go of the TLS
            // configuration (and the node its certificate and trust checks
            // hold), not at the next connection attempt.
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let (tcp, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let address = match &per_address {
                Some(table) => match table.take(remote.ip()) {
                    Some(place) => Some(place),
                    None => {
                        caps.metrics.limit_hits.inc(Limit::ConnectionsPerAddress);
                        if let Some(held_back) = caps.warnings.connections_per_address.admit() {
                            tracing::warn!(remote = %remote, limit = caps.per_address, held_back, "connection closed: too many connections from its address");
                        }
                        continue;
                    }
                },
                None => None,
            };
            let Some(slot) = Slot::take(&connections, address, &caps, remote) else {
                continue;
            };
            let Ok(handshake) = handshakes.clone().try_acquire_owned() else {
                caps.metrics.limit_hits.inc(Limit::Handshakes);
                if let Some(held_back) = caps.warnings.handshakes.admit() {
                    tracing::warn!(remote = %remote, limit = caps.handshakes, held_back, "connection closed: too many tls handshakes in progress");
                }
                continue;
            };
            let handshake = match &handshaking {
                Some(table) => match table.take(remote.ip()) {
                    Some(place) => (handshake, Some(place)),
                    None => {
                        caps.metrics.limit_hits.inc(Limit::HandshakesPerAddress);
                        if let Some(held_back) = caps.warnings.handshakes_per_address.admit() {
                            tracing::warn!(remote = %remote, limit = table.cap, held_back, "connection closed: too many tls handshakes in progress from its address");
                        }
                        continue;
                    }
                },
                None => (handshake, None),
            };
            caps.metrics.connections_accepted.inc(caps.listener);
            let _ = tcp.set_nodelay(true);
            keepalive(&tcp);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            let idle_timeout = caps.idle_timeout;
            let warnings = caps.warnings.clone();
            tokio::spawn(async move {
                // A handshake still under way when the server stops ends
                // with it: it holds the configuration too.
                let accepted = tokio::select! {
                    accepted = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => accepted,
                    () = tx.closed() => return,
                };
                drop(handshake);
                match accepted {
                    Ok(Ok(stream)) => {
                        let _ = tx
                            .send(Ok(TlsConn {
                                stream,
                                idle: IdleTimer::new(Activity::new(), idle_timeout),
                                _slot: slot,
                            }))
                            .await;
                    }
                    // Closed before a hello: a TCP probe (a load balancer,
                    // `meridian doctor`), not a client in trouble.
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        tracing::debug!(remote = %remote, "connection closed before a tls hello")
                    }
                    Ok(Err(e)) => {
                        if let Some(held_back) = warnings.handshakes_failed.admit() {
                            tracing::warn!(remote = %remote, error = %e, held_back, "tls handshake refused");
                        }
                    }
                    Err(_) => {
                        if let Some(held_back) = warnings.handshakes_failed.admit() {
                            tracing::warn!(remote = %remote, held_back, "tls handshake timed out");
                        }
                    }
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// TCP keepalive on a connection: the kernel probes it after
/// [`TCP_KEEPALIVE_IDLE`] of silence and closes it when
/// [`TCP_KEEPALIVE_PROBES`] probes go unanswered, so a peer behind a dead
/// link or a dropped partition is noticed even when HTTP/2 is quiet.
pub fn keepalive(tcp: &TcpStream) {
    let settings = socket2::TcpKeepalive::new()
        .with_time(TCP_KEEPALIVE_IDLE)
        .with_interval(TCP_KEEPALIVE_PROBE_INTERVAL)
        .with_retries(TCP_KEEPALIVE_PROBES);
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_keepalive(&settings) {
        tracing::debug!(error = %e, "tcp keepalive not set");
    }
}

/// How often an idle HTTP/2 connection is pinged, and how long the answer
/// may take: on every server of [`crate::stack`] and on the client side of
/// a peer connection ([`connect`]).
pub(crate) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub(crate) const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Silence before the first TCP keepalive probe.
pub const TCP_KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// Time between unanswered TCP keepalive probes.
pub const TCP_KEEPALIVE_PROBE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered TCP keepalive probes after which the connection is closed.
pub const TCP_KEEPALIVE_PROBES: u32 = 3;

/// Dials `addr` over TLS and returns a gRPC channel to it, with HTTP/2
/// keepalive (pings even while no call is open) and TCP keepalive.
pub async fn connect(
    addr: &str,
    config: rustls::ClientConfig,
    timeout: Duration,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let target = addr.to_owned();
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(timeout)
        .timeout(Duration::from_secs(60))
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let connector = connector.clone();
            let target = target.clone();
            async move {
                let tcp = TcpStream::connect(&target).await?;
                let _ = tcp.set_nodelay(true);
                keepalive(&tcp);
                let name = ServerName::try_from(SERVER_NAME).map_err(io::Error::other)?;
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A certificate resolver for a node `polar` created in `dir`.
    fn resolver(dir: &std::path::Path) -> Arc<CertResolver> {
        let identity = TlsIdentity::create(dir, "polar").unwrap();
        PublicIdentity::create(
            dir,
            "polar",
            &PublicIdentity::default_names("127.0.0.1:0".parse().unwrap()),
        )
        .unwrap();
        use meridian_core::certificate::{PUBLIC_CERT_FILE, PUBLIC_KEY_FILE};
        let public =
            PublicIdentity::load(&dir.join(PUBLIC_CERT_FILE), &dir.join(PUBLIC_KEY_FILE)).unwrap();
        let held = Arc::new(identity.clone());
        Arc::new(CertResolver::new(Arc::new(move || held.clone()), &public).unwrap())
    }

    /// Whether the server closes `stream` within a second: reads end (or
    /// fail).
    async fn closed_at_once(stream: &mut TcpStream) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(1), stream.read(&mut byte)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    /// Caps of a gRPC listener: 3 connections, 2 handshakes at once.
    fn test_caps(metrics: &Metrics) -> ConnCaps {
        ConnCaps {
            connections: 3,
            per_address: 0,
            handshakes: 2,
            idle_timeout: Duration::from_secs(180),
            listener: Listener::Grpc,
            metrics: metrics.clone(),
            warnings: Arc::default(),
        }
    }

    /// Issue 9, item 5: connections that never finish their handshake hold
    /// at most the handshake cap; one more is closed at once, and so is any
    /// beyond the connection cap.
    #[tokio::test]
    async fn limits_on_the_open_listener_close_what_is_over_the_caps() {
        let dir = tempfile::tempdir().unwrap();
        let config = server_config(resolver(dir.path()), Arc::new(|_: &[u8]| Ok(()))).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Metrics::default();
        let caps = test_caps(&metrics);
        let _incoming = incoming(listener, Arc::new(config), caps);

        let mut slow = Vec::new();
        for _ in 0..2 {
            slow.push(TcpStream::connect(addr).await.unwrap());
        }
        let mut third = TcpStream::connect(addr).await.unwrap();
        assert!(
            closed_at_once(&mut third).await,
            "a third handshake was let in"
        );
        for stream in &mut slow {
            assert!(
                !closed_at_once(stream).await,
                "a handshake within the cap was closed"
            );
        }
        // The refusal and the two connections are counted; a connection
        // that closes is no longer open.
        assert_eq!(metrics.limit_hits.get(Limit::Handshakes), 1);
        assert_eq!(metrics.connections_accepted.get(Listener::Grpc), 2);
        let open = metrics.connections_open.of(Listener::Grpc);
        assert_eq!(open.get(), 2);
        drop(slow);
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while open.get() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(open.get(), 0, "closed connections still counted as open");
    }

    /// While connections are capped per address, one address holds at
    /// most an eighth of the handshake places: silent connections from it
    /// past that are closed at once, and another address still gets in.
    #[tokio::test]
    async fn one_address_cannot_take_every_handshake_place() {
        let dir = tempfile::tempdir().unwrap();
        let config = server_config(resolver(dir.path()), Arc::new(|_: &[u8]| Ok(()))).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Metrics::default();
        let caps = ConnCaps {
            connections: 64,
            per_address: 64,
            handshakes: 16,
            ..test_caps(&metrics)
        };
        let _incoming = incoming(listener, Arc::new(config), caps);
        let from = |ip: &str| {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
            socket.connect(addr)
        };
        let mut silent = vec![
            from("127.0.0.1").await.unwrap(),
            from("127.0.0.1").await.unwrap(),
        ];
        let mut third = from("127.0.0.1").await.unwrap();
        assert!(
            closed_at_once(&mut third).await,
            "a third handshake from one address"
        );
        let mut other = from("127.0.0.2").await.unwrap();
        assert!(
            !closed_at_once(&mut other).await,
            "another address was refused"
        );
        for stream in &mut silent {
            assert!(
                !closed_at_once(stream).await,
                "a handshake within the cap was closed"
            );
        }
        assert_eq!(metrics.limit_hits.get(Limit::HandshakesPerAddress), 1);
        assert_eq!(metrics.limit_hits.get(Limit::Handshakes), 0);
    }

    /// A warning anyone can cause is written once per interval, saying how
    /// many were held back.
    #[test]
    fn a_throttled_warning_says_how_many_it_held_back() {
        let throttle = LogThrottle::every(Duration::from_millis(200));
        assert_eq!(throttle.admit(), Some(0));
        for _ in 0..5 {
            assert_eq!(throttle.admit(), None);
        }
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(throttle.admit(), Some(5));
        assert_eq!(throttle.admit(), None);
    }

    /// Once the server stops taking connections (it drops the stream), the
    /// listener closes and the TLS configuration is let go of at once, not
    /// at the next connection attempt nor when a handshake under way times
    /// out: the node that configuration holds
    /// (its certificates, its trust checks) is then free, and its store
    /// can be closed and opened again by the stopping process.
    #[tokio::test]
    async fn a_stopped_server_closes_its_listener_and_lets_go_of_its_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let certs = resolver(dir.path());
        let held = Arc::downgrade(&certs);
        let config = server_config(certs, Arc::new(|_: &[u8]| Ok(()))).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let caps = test_caps(&Metrics::default());
        let incoming = incoming(listener, Arc::new(config), caps);
        // A client that connects and says nothing: its handshake is under
        // way when the server stops.
        let _silent = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(incoming);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while held.strong_count() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(held.strong_count(), 0, "the configuration is still held");
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "the listener still takes connections"
        );
    }

    /// Places per address: an IPv6 host's addresses share their /64 and an
    /// IPv4-mapped address is its IPv4 one; each place given back frees one,
    /// and an address whose last connection closed is forgotten.
    #[test]
    fn an_address_holds_at_most_its_places_and_is_forgotten_when_it_holds_none() {
        let table = Arc::new(PerAddress {
            cap: 2,
            open: std::sync::Mutex::default(),
        });
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let first = table.take(ip("2001:db8:1:2::1")).unwrap();
        let second = table.take(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert!(table.take(ip("2001:db8:1:2::3")).is_none(), "same /64");
        assert!(table.take(ip("2001:db8:1:3::1")).is_some(), "another /64");
        let v4 = table.take(ip("192.0.2.7")).unwrap();
        let mapped = table.take(ip("::ffff:192.0.2.7")).unwrap();
        assert!(table.take(ip("192.0.2.7")).is_none(), "mapped is the same");
        assert_eq!(table.addresses(), 2);
        drop(first);
        let third = table.take(ip("2001:db8:1:2::4")).unwrap();
        drop((second, third, v4, mapped));
        assert_eq!(table.addresses(), 0, "addresses without connections kept");
    }
}
