//! Real nodes over real TLS facing hostile or careless callers and peers:
//! revocation is final on every path, and nothing about records a caller
//! may not see leaks through errors, cursors or reports.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use meridian_proto::catalog_client::CatalogClient;
use meridian_proto::federation_client::FederationClient;
use meridian_proto::{
    GetRecordRequest, NodeInfoRequest, PullRequest, SearchRequest, SearchResponse,
};
use meridian_testkit::harness::{anonymous_channel, held, peer_channel, record_line, TestNode};
use tonic::Code;

fn origins_of(answer: &SearchResponse) -> BTreeSet<String> {
    answer.hits.iter().map(|hit| hit.origin.clone()).collect()
}

/// `polar` publishes, `uni` replicates and serves, `genomics` asks `uni`.
fn federation() -> (TestNode, TestNode, TestNode) {
    let polar = TestNode::start("polar");
    let uni = TestNode::start("uni");
    let genomics = TestNode::start("genomics");
    polar.trust(&uni, &[]);
    uni.trust(&polar, &[]);
    uni.trust(&genomics, &[]);
    genomics.trust(&uni, &[]);
    genomics.trust(&polar, &[]);
    (polar, uni, genomics)
}

/// Issue 9, item 6: once `uni` revokes `polar`, no path of `uni` serves
/// `polar`'s records: not a search page read from a snapshot taken before,
/// not GetNodeInfo or Pull to another peer, not GetRecord. A cursor that was
/// altered is refused with INVALID_ARGUMENT.
#[tokio::test(flavor = "multi_thread")]
async fn revocation_is_final_everywhere() {
    let (polar, uni, genomics) = federation();
    let lines: Vec<String> = (1..=6)
        .map(|i| {
            record_line(
                &format!("PDC-{i}"),
                &format!("Sea ice station {i}"),
                "public",
            )
        })
        .collect();
    polar.import(&lines);
    uni.import(&[record_line("UNI-1", "Sea ice model", "public")]);
    let reports = uni.sync_now();
    assert_eq!(reports["polar"]["ok"], true, "{reports:?}");
    assert!(held(&uni, "polar", "PDC-1").await.is_some());

    let mut catalog = CatalogClient::new(anonymous_channel(&uni).await);
    let ask = |after: String| SearchRequest {
        query: "ice".into(),
        limit: 2,
        after,
        ..SearchRequest::default()
    };
    // The index catches up with the store in the background.
    let mut first = catalog
        .search(ask(String::new()))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..100 {
        if first.total == 7 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        first = catalog
            .search(ask(String::new()))
            .await
            .unwrap()
            .into_inner();
    }
    assert_eq!(first.total, 7, "{first:?}");
    assert!(!first.next_cursor.is_empty());

    let mut federation = FederationClient::new(peer_channel(&genomics, &uni).await);
    let info = federation
        .get_node_info(NodeInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(info.origins.iter().any(|head| head.origin == "polar"));

    uni.ok(&["trust", "revoke", "polar", "--yes"]);

    // The next page reads no snapshot held from before the revocation.
    let mut after = first.next_cursor.clone();
    while !after.is_empty() {
        let page = catalog.search(ask(after)).await.unwrap().into_inner();
        assert!(
            !origins_of(&page).contains("polar"),
            "a revoked origin's record served from a held snapshot: {page:?}"
        );
        after = page.next_cursor;
    }
    let fresh = catalog
        .search(ask(String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fresh.total, 1, "{fresh:?}");

    // Not relayed: not announced, not served.
    let info = federation
        .get_node_info(NodeInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        !info.origins.iter().any(|head| head.origin == "polar"),
        "{info:?}"
    );
    let pulled = federation
        .pull(PullRequest {
            origin: "polar".into(),
            after_index: 0,
            max_batch: 0,
        })
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(pulled.code(), Code::NotFound, "{pulled:?}");
    let reports = genomics.sync_now();
    assert_eq!(reports["uni"]["ok"], true, "{reports:?}");
    // (genomics may hold polar's entries from a background round before the
    // revocation; what matters is that uni serves none of them now.)
    let pulled_from_uni = reports["uni"]["origins"].as_array().unwrap();
    assert!(!pulled_from_uni.iter().any(|o| o == "polar"), "{reports:?}");

    // GetRecord on the revoked origin answers exactly like a missing record.
    let get = |id: &str| GetRecordRequest {
        origin: "polar".into(),
        id: id.into(),
    };
    let revoked = catalog.get_record(get("PDC-1")).await.unwrap_err();
    let missing = catalog.get_record(get("PDC-404")).await.unwrap_err();
    assert_eq!(revoked.code(), Code::NotFound);
    assert_eq!(
        revoked.message().replace("PDC-1", "<id>"),
        missing.message().replace("PDC-404", "<id>"),
    );
    assert!(!revoked.message().contains("entry"), "{revoked:?}");

    // A cursor altered by the caller is refused, and says why.
    let page = catalog
        .search(SearchRequest {
            query: "ice".into(),
            limit: 0,
            ..ask(String::new())
        })
        .await
        .unwrap()
        .into_inner();
    assert!(page.next_cursor.is_empty(), "one record left: {page:?}");
    uni.import(&[
        record_line("UNI-2", "Sea ice drift", "public"),
        record_line("UNI-3", "Sea ice albedo", "public"),
    ]);
    let mut page = catalog
        .search(ask(String::new()))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..100 {
        if page.total == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        page = catalog
            .search(ask(String::new()))
            .await
            .unwrap()
            .into_inner();
    }
    let mut cursor = page.next_cursor.into_bytes();
    assert!(!cursor.is_empty());
    let last = cursor.len() - 3;
    cursor[last] = if cursor[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(cursor).unwrap();
    let refused = catalog.search(ask(tampered)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("cursor"),
        "{}",
        refused.message()
    );
}

/// A TLS connection to `node`'s public listener that says nothing after
/// its handshake; `None` when the node closes it at once.
async fn silent_connection(
    node: &TestNode,
) -> Option<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let config = meridian_server::tls::client_config(
        &node.name,
        vec![meridian_testkit::harness::tls_key(node)],
        None,
    )
    .unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(node.catalog.unwrap())
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from(meridian_core::certificate::SERVER_NAME)
        .unwrap()
        .to_owned();
    let mut stream = connector.connect(name, tcp).await.ok()?;
    // The node writes its HTTP/2 settings first; a closed connection reads 0.
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 256];
    match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => None,
        _ => Some(stream),
    }
}

/// Reads until the node closes the connection; how long that took.
async fn closed_after(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    limit: Duration,
) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let started = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// One address cannot take every place of the listener: with
/// `limits.connections_per_address` at 2, two connections from 127.0.0.1
/// held open leave no third one from it, the refusal is counted, and once
/// one of the two closes the next is let in.
#[tokio::test(flavor = "multi_thread")]
async fn one_address_holds_at_most_its_share_of_connections() {
    let node = TestNode::start_with(
        "polar",
        &[("MERIDIAN_LIMITS__CONNECTIONS_PER_ADDRESS", "2")],
    );
    let first = silent_connection(&node).await.expect("a place");
    let _second = silent_connection(&node).await.expect("a place");
    assert!(
        silent_connection(&node).await.is_none(),
        "a third connection from the same address was let in"
    );
    let refused = |text: &str| {
        crate::metrics::value(
            text,
            "meridian_limit_hits_total{limit=\"connections_per_address\"}",
        )
    };
    assert_eq!(refused(&crate::metrics::scrape(&node)), Some(1.0));

    // The node sees the close and gives the place back.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut again = None;
    while again.is_none() && Instant::now() < deadline {
        again = silent_connection(&node).await;
        if again.is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(
        again.is_some(),
        "the closed connection's place was not given back"
    );
    assert!(
        silent_connection(&node).await.is_none(),
        "still two at most"
    );
}

/// A plain TCP connection to `addr` that says nothing, or `None` when the
/// listener closes it at once.
async fn silent_plain_connection(addr: std::net::SocketAddr) -> Option<tokio::net::TcpStream> {
    use tokio::io::AsyncReadExt;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => None,
        _ => Some(tcp),
    }
}

/// A plain HTTP listener (`http.plaintext`, behind a reverse proxy) holds
/// at most `limits.max_connections` connections at once, as a TLS listener
/// does: one more is closed at accept and counted, and a closed
/// connection's place goes to the next request.
#[tokio::test(flavor = "multi_thread")]
async fn a_plain_http_listener_holds_at_most_its_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = TestNode::start_with(
        "polar",
        &[
            ("MERIDIAN_HTTP__PLAINTEXT", "true"),
            ("MERIDIAN_LIMITS__MAX_CONNECTIONS", "2"),
        ],
    );
    let http = node.http.expect("an HTTP listener");
    let first = silent_plain_connection(http).await.expect("a place");
    let _second = silent_plain_connection(http).await.expect("a place");
    assert!(
        silent_plain_connection(http).await.is_none(),
        "a third plain connection was let in"
    );
    let scraped = crate::metrics::scrape(&node);
    assert_eq!(
        crate::metrics::value(&scraped, "meridian_limit_hits_total{limit=\"connections\"}"),
        Some(1.0),
        "{scraped}"
    );
    assert_eq!(
        crate::metrics::value(&scraped, "meridian_connections_open{listener=\"http\"}"),
        Some(2.0),
        "{scraped}"
    );

    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let mut tcp = tokio::net::TcpStream::connect(http).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut answer)).await;
        if !answer.is_empty() || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// One plain HTTP/1.1 `GET path` from `source` (any free port), with an
/// `X-Forwarded-For` of `forwarded_for`; the whole answer.
async fn plain_get_from(
    source: std::net::IpAddr,
    http: std::net::SocketAddr,
    path: &str,
    forwarded_for: &str,
) -> String {
    plain_get_with(source, http, path, &[("X-Forwarded-For", forwarded_for)]).await
}

/// Asks `path` over plain HTTP/1.1 from the local address `source`, with
/// `headers` besides `Host: localhost`: the whole answer.
async fn plain_get_with(
    source: std::net::IpAddr,
    http: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::new(source, 0)).unwrap();
    let mut tcp = socket.connect(http).await.unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(20), tcp.read_to_string(&mut answer))
        .await
        .expect("an answer within 20 s")
        .unwrap();
    answer
}

/// Asks `path` from `source` with each of `forwarded` in turn, round and
/// round, until the node refuses one for its rate: the refusal's answer.
async fn first_refusal(
    source: std::net::IpAddr,
    http: std::net::SocketAddr,
    forwarded: &[&str],
) -> String {
    for round in 0..50 {
        let answer = plain_get_from(
            source,
            http,
            "/api/v1/node",
            forwarded[round % forwarded.len()],
        )
        .await;
        if answer.starts_with("HTTP/1.1 429") {
            return answer;
        }
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    panic!("no request was refused for its rate");
}

/// Behind a reverse proxy (`http.trusted_proxies`), each client forwarded
/// by the proxy has its own rate, named in the refusal; what a client
/// writes into `X-Forwarded-For` itself is not believed, and the header
/// of a connection from any other address is ignored.
#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_proxy_names_its_clients_and_no_one_else_does() {
    let node = TestNode::start_with(
        "polar",
        &[
            ("MERIDIAN_HTTP__PLAINTEXT", "true"),
            ("MERIDIAN_HTTP__TRUSTED_PROXIES", "127.0.0.1"),
            ("MERIDIAN_LIMITS__REQUESTS_PER_SECOND", "1"),
            ("MERIDIAN_LIMITS__REQUEST_BURST", "3"),
        ],
    );
    let http = node.http.expect("an HTTP listener");
    let proxy: std::net::IpAddr = "127.0.0.1".parse().unwrap();

    // The proxy's client 192.0.2.1 runs out of requests; entries it wrote
    // itself to the left of the proxy's do not change whose they are.
    let refused = first_refusal(proxy, http, &["192.0.2.1", "203.0.113.9, 192.0.2.1"]).await;
    assert!(
        refused.contains("too many requests from 192.0.2.1"),
        "{refused}"
    );
    // Another client of the same proxy is still served.
    let other = plain_get_from(proxy, http, "/api/v1/node", "192.0.2.2").await;
    assert!(other.starts_with("HTTP/1.1 200"), "{other}");

    // A client that connects directly from another address names whoever
    // it likes in vain: every request counts against its own address.
    let direct: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let refused = first_refusal(
        direct,
        http,
        &["198.51.100.1", "198.51.100.2", "198.51.100.3"],
    )
    .await;
    assert!(
        refused.contains("too many requests from 127.0.0.2"),
        "{refused}"
    );
}

/// Behind a TLS-terminating proxy, the harvest endpoint a harvester is
/// told (OAI-PMH `baseURL`) is the one it asked the proxy for: the scheme
/// and host of the trusted proxy's `X-Forwarded-Proto` and
/// `X-Forwarded-Host`. The same headers from any other address are
/// ignored, so no client can have the node name another site.
#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_proxy_names_the_harvest_url_and_no_one_else_does() {
    let node = TestNode::start_with(
        "polar",
        &[
            ("MERIDIAN_HTTP__PLAINTEXT", "true"),
            ("MERIDIAN_HTTP__TRUSTED_PROXIES", "127.0.0.1"),
        ],
    );
    let http = node.http.expect("an HTTP listener");
    let base_url = |answer: &str| {
        let start = answer.find("<baseURL>").expect("a baseURL") + "<baseURL>".len();
        let end = answer[start..].find("</baseURL>").unwrap();
        answer[start..start + end].to_owned()
    };
    let forwarded = [
        ("X-Forwarded-For", "192.0.2.1"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "data.example.edu"),
    ];
    let identify = "/oai?verb=Identify";

    let proxy: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let answer = plain_get_with(proxy, http, identify, &forwarded).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(base_url(&answer), "https://data.example.edu/oai");
    // Only the scheme forwarded: the host is the request's own.
    let answer = plain_get_with(proxy, http, identify, &forwarded[1..2]).await;
    assert_eq!(base_url(&answer), "https://localhost/oai");
    // A host that could break out of the URL is not believed.
    let hostile = [("X-Forwarded-Host", "evil.example/\"><x")];
    let answer = plain_get_with(proxy, http, identify, &hostile).await;
    assert_eq!(base_url(&answer), "http://localhost/oai");

    let direct: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let answer = plain_get_with(direct, http, identify, &forwarded).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(base_url(&answer), "http://localhost/oai");
}

/// Issue 9, item 5: connections that connect and then say nothing cannot
/// keep the listener's places: each is closed once it has held no request
/// for `limits.idle_timeout_secs`, and its place goes to the next client. A
/// connection whose requests keep coming is never closed for idleness.
#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_give_their_place_back() {
    let node = TestNode::start_with(
        "polar",
        &[
            ("MERIDIAN_LIMITS__MAX_CONNECTIONS", "2"),
            ("MERIDIAN_LIMITS__IDLE_TIMEOUT_SECS", "2"),
        ],
    );
    // Two silent clients take both places; a third is turned away.
    let mut first = silent_connection(&node).await.expect("a place");
    let mut second = silent_connection(&node).await.expect("a place");
    assert!(silent_connection(&node).await.is_none(), "no place left");

    // Both are closed after the idle timeout, not before.
    let waited = closed_after(&mut first, Duration::from_secs(10)).await;
    let waited = waited.expect("the idle connection is closed");
    assert!(waited >= Duration::from_millis(1000), "{waited:?}");
    assert!(closed_after(&mut second, Duration::from_secs(5))
        .await
        .is_some());

    // A client whose requests keep coming keeps its one connection across
    // three idle timeouts.
    let accepted = |text: &str| {
        crate::metrics::value(
            text,
            "meridian_connections_accepted_total{listener=\"grpc\"}",
        )
        .unwrap_or(0.0)
    };
    let before = accepted(&crate::metrics::scrape(&node));
    let mut catalog = CatalogClient::new(anonymous_channel(&node).await);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        catalog
            .search(SearchRequest::default())
            .await
            .expect("the busy connection is served");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let after = accepted(&crate::metrics::scrape(&node));
    assert_eq!(after - before, 1.0, "one connection for every request");
}
