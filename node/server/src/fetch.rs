//! The harvester's HTTP client ([`meridian_core::harvest::Fetch`]): HTTP/1.1
//! over TCP or TLS (rustls with ring, the one crypto provider of the node),
//! redirects followed, `503` with `Retry-After` honoured within bounds, and
//! the body bounded before it is buffered. Providers' certificates are
//! checked against the system's roots (the PEM bundle of the distribution)
//! and the source's own `ca_cert` file. Responses may come gzip-encoded
//! (`Accept-Encoding: gzip, identity`); what they inflate to is bounded like
//! an uncompressed body, so a small response cannot unpack into gigabytes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use meridian_core::harvest::{Fetch, MAX_RESPONSE_BYTES};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// Redirects followed for one request.
const MAX_REDIRECTS: u32 = 5;
/// `503` answers retried for one request.
const MAX_RETRIES: u32 = 5;
/// Longest `Retry-After` waited, and the wait when none is given.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Time for one request, from connecting to the last byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Where distributions keep the system's trusted roots.
const SYSTEM_ROOTS: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// Gets OAI-PMH responses over HTTP(S).
#[derive(Default)]
pub struct HttpFetch;

#[async_trait::async_trait]
impl Fetch for HttpFetch {
    async fn get(&self, url: &str, ca_cert: &str) -> Result<Vec<u8>, String> {
        let mut url = url.to_owned();
        let (mut redirects, mut retries) = (0, 0);
        loop {
            let uri: Uri = url.parse().map_err(|e| format!("{url}: not a URL: {e}"))?;
            let response = tokio::time::timeout(REQUEST_TIMEOUT, request(&uri, ca_cert))
                .await
                .map_err(|_| format!("{url}: no answer within {}s", REQUEST_TIMEOUT.as_secs()))??;
            let status = response.status();
            if status == StatusCode::OK {
                let encoding = Encoding::of(&response).map_err(|e| format!("{url}: {e}"))?;
                let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES);
                let body = tokio::time::timeout(REQUEST_TIMEOUT, body.collect())
                    .await
                    .map_err(|_| {
                        format!(
                            "{url}: the body did not arrive within {}s",
                            REQUEST_TIMEOUT.as_secs()
                        )
                    })?
                    .map_err(|e| {
                        format!("{url}: reading the body: {e} (at most {MAX_RESPONSE_BYTES} bytes)")
                    })?;
                return encoding
                    .decode(body.to_bytes())
                    .map_err(|e| format!("{url}: {e}"));
            }
            if status.is_redirection() && redirects < MAX_REDIRECTS {
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| format!("{url}: HTTP {status} without a Location"))?;
                url = follow(&uri, location).map_err(|e| format!("{url}: {e}"))?;
                redirects += 1;
                continue;
            }
            if status == StatusCode::SERVICE_UNAVAILABLE && retries < MAX_RETRIES {
                let wait = response
                    .headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs)
                    .clamp(Duration::from_secs(1), MAX_RETRY_AFTER);
                tracing::info!(url = %url, wait_secs = wait.as_secs(), "provider busy; retrying");
                tokio::time::sleep(wait).await;
                retries += 1;
                continue;
            }
            return Err(format!("{url}: HTTP {status}"));
        }
    }
}

/// How a response body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
}

impl Encoding {
    /// The response's `Content-Encoding`: none, `identity`, `gzip` or
    /// `x-gzip`; anything else was not asked for and is an error.
    fn of<B>(response: &http::Response<B>) -> Result<Self, String> {
        let Some(value) = response.headers().get(header::CONTENT_ENCODING) else {
            return Ok(Encoding::Identity);
        };
        let value = value.to_str().unwrap_or("").trim().to_ascii_lowercase();
        match value.as_str() {
            "" | "identity" => Ok(Encoding::Identity),
            "gzip" | "x-gzip" => Ok(Encoding::Gzip),
            other => Err(format!(
                "Content-Encoding `{}` was not asked for (gzip or identity)",
                other.chars().take(40).collect::<String>()
            )),
        }
    }

    /// The body as sent, inflated at most to [`MAX_RESPONSE_BYTES`].
    fn decode(self, body: Bytes) -> Result<Vec<u8>, String> {
        match self {
            Encoding::Identity => Ok(body.to_vec()),
            Encoding::Gzip => {
                use std::io::Read;
                let mut out = Vec::new();
                flate2::read::MultiGzDecoder::new(body.as_ref())
                    .take(MAX_RESPONSE_BYTES as u64 + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| format!("gzip body: {e}"))?;
                if out.len() > MAX_RESPONSE_BYTES {
                    return Err(format!(
                        "gzip body inflates to more than {MAX_RESPONSE_BYTES} bytes"
                    ));
                }
                Ok(out)
            }
        }
    }
}

/// Where a redirect from `from` to `location` leads, unless it leads from
/// TLS to plain HTTP: a source configured with `https://` (and perhaps its
/// own `ca_cert`) is never read in the clear because it said so.
fn follow(from: &Uri, location: &str) -> Result<String, String> {
    let to = resolve(from, location);
    let plain = to
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"));
    if from.scheme_str() == Some("https") && plain {
        return Err(format!(
            "redirected from https to plain http ({to}); configure the http address if it is meant"
        ));
    }
    Ok(to)
}

/// A `Location` made absolute against the URI that answered, by RFC 3986
/// §5.2 (a fragment is dropped: it is never sent).
fn resolve(base: &Uri, location: &str) -> String {
    let location = location.split('#').next().unwrap_or_default();
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map_or("", |a| a.as_str());
    // A scheme: letters, digits, `+`, `-`, `.` before the first `:`,
    // starting with a letter.
    let has_scheme = location.split_once(':').is_some_and(|(name, _)| {
        name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if has_scheme {
        return location.to_owned();
    }
    if let Some(rest) = location.strip_prefix("//") {
        let (host, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        return format!("{scheme}://{host}{}", without_dot_segments(path));
    }
    let (path, query) = match location.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (location, None),
    };
    let base_path = base.path();
    let path = if path.is_empty() {
        base_path.to_owned()
    } else if path.starts_with('/') {
        without_dot_segments(path)
    } else {
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        let dir = if dir.is_empty() { "/" } else { dir };
        without_dot_segments(&format!("{dir}{path}"))
    };
    let query = match query {
        Some(query) => format!("?{query}"),
        None if location.is_empty() => base.query().map(|q| format!("?{q}")).unwrap_or_default(),
        None => String::new(),
    };
    format!("{scheme}://{authority}{path}{query}")
}

/// A path with its `.` and `..` segments taken out (RFC 3986 §5.2.4).
fn without_dot_segments(path: &str) -> String {
    let (path, query) = match path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path, None),
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." | ".." => {
                if *segment == ".." && out.len() > 1 {
                    out.pop();
                }
                // A directory reference at the end keeps its slash.
                if last {
                    out.push("");
                }
            }
            other => out.push(other),
        }
    }
    let mut joined = out.join("/");
    if path.starts_with('/') && !joined.starts_with('/') {
        joined.insert(0, '/');
    }
    match query {
        Some(query) => format!("{joined}?{query}"),
        None => joined,
    }
}

async fn request(
    uri: &Uri,
    ca_cert: &str,
) -> Result<http::Response<hyper::body::Incoming>, String> {
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("{uri}: only http and https are harvested")),
    };
    let host = uri
        .host()
        .ok_or_else(|| format!("{uri}: no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("{uri}: cannot connect: {e}"))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = uri.authority().map_or(host.as_str(), |a| a.as_str());
    let request = Request::get(path)
        .header(header::HOST, authority)
        .header(
            header::USER_AGENT,
            concat!("meridian-harvester/", env!("CARGO_PKG_VERSION")),
        )
        .header(header::ACCEPT_ENCODING, "gzip, identity")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("{uri}: {e}"))?;
    if https {
        let config = client_config(ca_cert)?;
        let name = ServerName::try_from(host.clone()).map_err(|e| format!("{uri}: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("{uri}: TLS: {e}"))?;
        send(uri, TokioIo::new(stream), request).await
    } else {
        send(uri, TokioIo::new(tcp), request).await
    }
}

async fn send<T>(
    uri: &Uri,
    io: T,
    request: Request<Empty<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("{uri}: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "harvest connection ended");
        }
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| format!("{uri}: {e}"))
}

/// The system's roots, read once: every page of a harvest over TLS needs
/// them, and the bundle is a file of a hundred-odd certificates.
fn system_roots() -> &'static rustls::RootCertStore {
    static ROOTS: std::sync::OnceLock<rustls::RootCertStore> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        for path in SYSTEM_ROOTS {
            if let Ok(certs) = CertificateDer::pem_file_iter(path) {
                for cert in certs.flatten() {
                    let _ = roots.add(cert);
                }
                break;
            }
        }
        roots
    })
}

/// rustls with ring, trusting the system's roots and `ca_cert` (read at
/// each request, so an operator's replaced file takes effect at once).
fn client_config(ca_cert: &str) -> Result<rustls::ClientConfig, String> {
    let mut roots = system_roots().clone();
    if !ca_cert.is_empty() {
        let certs = CertificateDer::pem_file_iter(ca_cert)
            .map_err(|e| format!("ca_cert {ca_cert}: {e}"))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("ca_cert {ca_cert}: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("ca_cert {ca_cert}: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(bytes: &[u8]) -> Bytes {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        Bytes::from(encoder.finish().unwrap())
    }

    fn answer(encoding: Option<&str>) -> http::Response<()> {
        let mut response = http::Response::builder();
        if let Some(encoding) = encoding {
            response = response.header(header::CONTENT_ENCODING, encoding);
        }
        response.body(()).unwrap()
    }

    #[test]
    fn gzip_bodies_inflate_and_other_encodings_are_refused() {
        let page = b"<OAI-PMH><responseDate>2024-03-05T00:00:00Z</responseDate></OAI-PMH>";
        for header in ["gzip", "x-gzip", " GZIP "] {
            let encoding = Encoding::of(&answer(Some(header))).unwrap();
            assert_eq!(encoding.decode(gzip(page)).unwrap(), page, "{header}");
        }
        for header in [None, Some("identity")] {
            let encoding = Encoding::of(&answer(header)).unwrap();
            assert_eq!(encoding.decode(Bytes::from_static(page)).unwrap(), page);
        }
        let refused = Encoding::of(&answer(Some("br"))).unwrap_err();
        assert!(refused.contains("`br` was not asked for"), "{refused}");
        let broken = Encoding::Gzip
            .decode(Bytes::from_static(b"not gzip at all"))
            .unwrap_err();
        assert!(broken.starts_with("gzip body:"), "{broken}");
    }

    /// Over a real socket: the request asks for gzip, and a gzip answer
    /// arrives inflated.
    #[tokio::test]
    async fn a_provider_answering_in_gzip_is_read_inflated() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let page = b"<OAI-PMH><responseDate>2024-03-05T00:00:00Z</responseDate></OAI-PMH>";
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let provider = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                socket.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            let body = gzip(page);
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Encoding: gzip\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
            socket.write_all(&body).await.unwrap();
            String::from_utf8(head).unwrap().to_ascii_lowercase()
        });
        let url = format!("http://127.0.0.1:{port}/oai?verb=Identify");
        let got = HttpFetch.get(&url, "").await.unwrap();
        assert_eq!(got, page);
        let head = provider.await.unwrap();
        assert!(head.contains("accept-encoding: gzip, identity"), "{head}");
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_response_bound() {
        // 65 MiB of zeros compress to ~65 KiB: inflated, one byte over the bound.
        let bomb = gzip(&vec![0u8; MAX_RESPONSE_BYTES + 1]);
        assert!(bomb.len() < MAX_RESPONSE_BYTES / 500);
        let refused = Encoding::Gzip.decode(bomb).unwrap_err();
        assert!(refused.contains("inflates to more than"), "{refused}");
        let at_bound = gzip(&vec![0u8; MAX_RESPONSE_BYTES]);
        assert_eq!(
            Encoding::Gzip.decode(at_bound).unwrap().len(),
            MAX_RESPONSE_BYTES
        );
    }

    #[test]
    fn a_redirect_from_tls_to_plain_http_is_refused() {
        let https: Uri = "https://repo.example.org/oai?verb=Identify"
            .parse()
            .unwrap();
        let http: Uri = "http://repo.example.org/oai?verb=Identify".parse().unwrap();
        for location in [
            "http://169.254.169.254/latest",
            "HTTP://repo.example.org/oai",
        ] {
            let refused = follow(&https, location).unwrap_err();
            assert!(refused.contains("from https to plain http"), "{refused}");
        }
        for (from, location, to) in [
            (&https, "/oai2", "https://repo.example.org/oai2"),
            (
                &https,
                "https://mirror.example.org/oai",
                "https://mirror.example.org/oai",
            ),
            (
                &http,
                "https://repo.example.org/oai",
                "https://repo.example.org/oai",
            ),
            (
                &http,
                "http://mirror.example.org/oai",
                "http://mirror.example.org/oai",
            ),
        ] {
            assert_eq!(follow(from, location).unwrap(), to, "{from} → {location}");
        }
    }

    #[test]
    fn redirects_resolve_against_the_answering_uri() {
        let base: Uri = "https://repo.example.org:8443/oai/request?verb=Identify"
            .parse()
            .unwrap();
        for (location, want) in [
            ("https://other.org/oai", "https://other.org/oai"),
            (
                "/v2/oai?verb=Identify",
                "https://repo.example.org:8443/v2/oai?verb=Identify",
            ),
            (
                "provider?verb=Identify",
                "https://repo.example.org:8443/oai/provider?verb=Identify",
            ),
            (
                "//mirror.example.org/oai?verb=Identify",
                "https://mirror.example.org/oai?verb=Identify",
            ),
            (
                "?verb=ListSets",
                "https://repo.example.org:8443/oai/request?verb=ListSets",
            ),
        ] {
            assert_eq!(resolve(&base, location), want, "{location:?}");
        }
    }

    /// The examples of RFC 3986 §5.4.1 (those with an http scheme; a
    /// fragment is dropped, as it is never sent).
    #[test]
    fn redirects_resolve_as_rfc_3986_says() {
        let base: Uri = "http://a/b/c/d;p?q".parse().unwrap();
        for (reference, want) in [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q"),
            ("g#s", "http://a/b/c/g"),
            ("g?y#s", "http://a/b/c/g?y"),
            (";x", "http://a/b/c/;x"),
            ("g;x", "http://a/b/c/g;x"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("./", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../", "http://a/"),
            ("../../g", "http://a/g"),
            // Abnormal examples (§5.4.2).
            ("../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("/../g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            ("..g", "http://a/b/c/..g"),
            ("./../g", "http://a/b/g"),
            ("g/./h", "http://a/b/c/g/h"),
            ("g/../h", "http://a/b/c/h"),
            ("http://b/c", "http://b/c"),
        ] {
            assert_eq!(resolve(&base, reference), want, "{reference:?}");
        }
    }
}
