//! The certificates a node presents: pinned-key TLS for peers, a standard
//! certificate for everyone else, on the gRPC listener and the HTTP
//! listener alike, reloaded on SIGHUP without a restart.

use std::process::Command;
use std::sync::Arc;

use meridian_testkit::harness::{anonymous_channel, TestNode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// The certificate a TLS client sees at `addr` when it asks for
/// `server_name`, trusting only `roots`; `Err` if the handshake fails.
async fn handshake(
    addr: std::net::SocketAddr,
    server_name: &str,
    roots: &[CertificateDer<'static>],
) -> Result<CertificateDer<'static>, String> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .map_err(|e| e.to_string())?
    .with_root_certificates(store)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (_, session) = tls.get_ref();
    Ok(session.peer_certificates().expect("a certificate")[0].clone())
}

fn public_cert(node: &TestNode) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(node.data_dir().join("public.crt"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn curl_health(node: &TestNode) -> std::process::Output {
    let http = node.http.expect("an HTTP listener");
    Command::new("curl")
        // A node just started answers 503 until its index has caught up:
        // curl retries that, as a probe would.
        .args(["--silent", "--show-error", "--fail", "--retry", "10"])
        .args(["--retry-delay", "1", "--cacert"])
        .arg(node.data_dir().join("public.crt"))
        .arg("--resolve")
        .arg(format!("localhost:{}:127.0.0.1", http.port()))
        .arg(format!("https://localhost:{}/healthz", http.port()))
        .output()
        .expect("curl runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_clients_get_the_public_certificate_and_peers_the_pinned_one() {
    let polar = TestNode::start("polar");
    let addr = polar.catalog.unwrap();
    let roots = public_cert(&polar);

    // Any name but the peers' gets the public certificate, which verifies
    // against public.crt as a standard client would check it.
    let seen = handshake(addr, "localhost", &roots).await.unwrap();
    assert_eq!(seen, roots[0]);
    // Peers ask for meridian.node and get the pinned Ed25519 certificate:
    // not one a standard client accepts.
    let refused = handshake(addr, "meridian.node", &roots).await.unwrap_err();
    assert!(
        refused.contains("certificate") || refused.contains("issuer"),
        "{refused}"
    );
    // The pinned dialer (peers' and anonymous Rust clients') still works.
    let mut catalog =
        meridian_proto::catalog_client::CatalogClient::new(anonymous_channel(&polar).await);
    catalog
        .search(meridian_proto::SearchRequest::default())
        .await
        .expect("search over the pinned key");

    // The HTTP listener presents the public certificate too.
    let out = curl_health(&polar);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let health: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(health["status"], "serving");
    assert_eq!(health["node_id"], "polar");
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_public_certificate_without_dropping_the_node() {
    let mut polar = TestNode::start("polar");
    let addr = polar.catalog.unwrap();
    let before = public_cert(&polar);

    // The operator installs a new certificate: made elsewhere, moved in.
    let elsewhere = tempfile::tempdir().unwrap();
    meridian_core::certificate::PublicIdentity::create(
        elsewhere.path(),
        "polar",
        &["localhost".to_owned()],
    )
    .unwrap();
    for file in ["public.crt", "public.key"] {
        std::fs::rename(elsewhere.path().join(file), polar.data_dir().join(file)).unwrap();
    }
    let after = public_cert(&polar);
    assert_ne!(before, after);
    polar.signal(libc::SIGHUP);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if handshake(addr, "localhost", &after).await.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate is not served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(handshake(addr, "localhost", &before).await.is_err());
    assert!(curl_health(&polar).status.success());

    // A broken certificate is refused and the one in use is kept.
    std::fs::write(polar.data_dir().join("public.crt"), "not a certificate").unwrap();
    polar.signal(libc::SIGHUP);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(handshake(addr, "localhost", &after).await.is_ok());
    assert!(polar.stop(), "the node keeps running and stops cleanly");
}
