//! The HTTPS/1.1 client of `meridian-bench search --http`: one keep-alive
//! connection (hyper's HTTP/1 connection over rustls) that trusts the node's
//! public certificate, so the HTTP API is timed over the same kind of link
//! as gRPC (loopback, TLS), without a connection pool in the figures.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// One HTTPS connection to a node's HTTP listener.
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Client {
    /// Connects to `addr`, trusting only `cert` (PEM), as `localhost`.
    pub async fn connect(addr: std::net::SocketAddr, cert: &Path) -> Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for der in CertificateDer::pem_file_iter(cert).context("public certificate")? {
            roots.add(der?)?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .context("HTTP/1.1 handshake")?;
        tokio::spawn(connection);
        Ok(Self {
            sender,
            host: format!("localhost:{}", addr.port()),
        })
    }

    /// POSTs `body` (JSON) to `path`; the status and the body of the answer,
    /// whichever framing (length or chunks) the node chose.
    pub async fn post_json(&mut self, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, &self.host)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::copy_from_slice(body)))?;
        self.sender
            .ready()
            .await
            .context("the HTTP connection closed")?;
        let answer = self.sender.send_request(request).await?;
        let status = answer.status().as_u16();
        let body = answer.into_body().collect().await?.to_bytes();
        Ok((status, body.to_vec()))
    }
}
