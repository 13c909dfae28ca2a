//! A minimal HTTPS/1.1 client for `meridian-bench search --http`: one
//! keep-alive connection that trusts the node's public certificate, so the
//! HTTP API is timed over the same kind of link as gRPC (loopback, TLS),
//! without a client library's own overhead in the figures.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// One HTTPS connection to a node's HTTP listener.
pub struct Client {
    stream: BufReader<TlsStream<TcpStream>>,
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
        Ok(Self {
            stream: BufReader::new(tls),
            host: format!("localhost:{}", addr.port()),
        })
    }

    /// POSTs `body` (JSON) to `path`; the status and the body of the answer.
    pub async fn post_json(&mut self, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        let stream = self.stream.get_mut();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await?;

        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut length = None;
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                bail!("connection closed in the headers");
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(value.trim().parse::<usize>()?);
                }
            }
        }
        let length = length.context("an answer without Content-Length")?;
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok((status, body))
    }
}
