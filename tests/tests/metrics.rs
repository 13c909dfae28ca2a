//! `/metrics` on a live node: the values after an import and a sync between
//! two nodes, checked by `promtool`; what the metrics must not reveal or
//! let a client grow (client addresses, query text); that only the metrics
//! listener serves them; and that the dashboard, the alert rules and
//! `docs/metrics.md` name only metrics the node serves. (An unpinned
//! origin a peer advertises gets no series: `sync/tests.rs`.)

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use meridian_proto::catalog_client::CatalogClient;
use meridian_proto::SearchRequest;
use meridian_testkit::harness::{anonymous_channel, meridian_bin, record_line, TestNode};

use crate::support::available;

/// One HTTP/1.1 GET of `path` on a plain listener: the status line, the
/// headers and the body.
pub(crate) fn get(addr: SocketAddr, path: &str) -> (String, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a full response");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (
        status.to_owned(),
        headers.to_ascii_lowercase(),
        body.to_owned(),
    )
}

/// The node's `/metrics` text.
pub(crate) fn scrape(node: &TestNode) -> String {
    let addr = node.metrics.expect("test nodes serve metrics");
    let (status, headers, body) = get(addr, "/metrics");
    assert!(status.contains(" 200 "), "{status}\n{body}");
    assert!(
        headers.contains("content-type: text/plain; version=0.0.4"),
        "{headers}"
    );
    body
}

/// The value of the series written exactly as `series` (name and labels).
pub(crate) fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a number"))
}

fn expect(text: &str, series: &str, expected: f64) {
    assert_eq!(value(text, series), Some(expected), "{series} in\n{text}");
}

/// Scrapes until `ready` holds for the text, at most 30 s.
fn scrape_until(node: &TestNode, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = scrape(node);
        if ready(&text) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `promtool check metrics` passes on `text`: valid exposition, and no
/// lint problem (names, units, help).
fn promtool_passes(text: &str) {
    if !available("promtool", Command::new("promtool").arg("--version")) {
        return;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Names of the samples in an exposition (`_bucket`, `_sum`, `_count`
/// of a histogram included).
fn sample_names(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// Every `meridian_*` name that `text` mentions.
fn names_in(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("meridian_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// The dashboard, the alert rules and the metrics page name only metrics
/// the node serves, and the page lists every metric it serves.
fn deploy_and_docs_match(scrape: &str) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let served = sample_names(scrape);
    for file in [
        "deploy/grafana/meridian.json",
        "deploy/prometheus/alerts.yml",
        "docs/metrics.md",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let unknown: Vec<String> = names_in(&text)
            .into_iter()
            // A histogram is named by its samples' common stem.
            .filter(|name| !served.contains(name) && !served.contains(&format!("{name}_count")))
            .collect();
        assert!(
            unknown.is_empty(),
            "{file} names metrics the node does not serve: {unknown:?}"
        );
    }
    let documented = std::fs::read_to_string(root.join("docs/metrics.md")).unwrap();
    for line in scrape.lines() {
        if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|t| t.split(' ').next())
        {
            assert!(
                documented.contains(&format!("`{name}`")),
                "{name} is not in docs/metrics.md"
            );
        }
    }
}

/// The imported records, the pull that brings them to a peer, zero lag,
/// the peers by state and the index: each as the metrics say it, and the
/// scrape passes promtool.
#[test]
fn metrics_tell_an_import_and_a_sync_as_they_happened() {
    let polar = TestNode::start("polar");
    let uni = TestNode::start("uni");
    polar.trust(&uni, &[]);
    uni.trust(&polar, &[]);

    let lines: Vec<String> = (0..4)
        .map(|i| record_line(&format!("PDC-{i}"), &format!("Ice core {i}"), "public"))
        .collect();
    polar.import(&lines);
    // A re-import stores nothing; a bad line is rejected, the good one kept.
    let mut again = lines[..1].to_vec();
    again.push("{\"id\": \"PDC-bad\"}".to_owned());
    let _ = polar.run_with_stdin(&["holdings", "import", "-"], Some(&again.join("\n")));

    let text = scrape(&polar);
    expect(
        &text,
        "meridian_import_records_total{result=\"stored\"}",
        4.0,
    );
    expect(
        &text,
        "meridian_import_records_total{result=\"unchanged\"}",
        1.0,
    );
    expect(
        &text,
        "meridian_import_records_total{result=\"rejected\"}",
        1.0,
    );
    // The key set, the audience (polar pins uni) and four records.
    expect(&text, "meridian_log_entries{origin=\"polar\"}", 6.0);
    expect(&text, "meridian_peers{state=\"active\"}", 1.0);
    expect(
        &text,
        "meridian_node{node_id=\"polar\",version=\"0.1.0\"}",
        1.0,
    );
    assert!(value(&text, "meridian_store_size_bytes").unwrap() > 0.0);
    promtool_passes(&text);

    let reports = uni.sync_now();
    assert_eq!(reports["polar"]["outcome"], "ok", "{reports:?}");
    let text = scrape_until(&uni, |t| value(t, "meridian_ready") == Some(1.0));
    // Pinning polar and polar's import each start a round (a wake, a
    // hint), so the pulls may be split; the entries are counted once.
    assert!(value(&text, "meridian_sync_pulls_total{outcome=\"ok\"}").unwrap() >= 1.0);
    expect(&text, "meridian_sync_pulls_total{outcome=\"error\"}", 0.0);
    expect(&text, "meridian_sync_pulls_total{outcome=\"timeout\"}", 0.0);
    expect(&text, "meridian_sync_entries_pulled_total", 6.0);
    expect(
        &text,
        "meridian_sync_rejections_total{reason=\"signature\"}",
        0.0,
    );
    expect(&text, "meridian_sync_lag_entries{origin=\"polar\"}", 0.0);
    expect(&text, "meridian_sync_lag_seconds{origin=\"polar\"}", 0.0);
    expect(&text, "meridian_log_entries{origin=\"polar\"}", 6.0);
    expect(&text, "meridian_origin_frozen{origin=\"polar\"}", 0.0);
    expect(&text, "meridian_origin_quarantined{origin=\"polar\"}", 0.0);
    expect(&text, "meridian_peer_up{peer=\"polar\"}", 1.0);
    expect(&text, "meridian_peers{state=\"active\"}", 1.0);
    expect(&text, "meridian_ready", 1.0);
    expect(&text, "meridian_index_behind_entries", 0.0);
    // Polar's four records (key sets are not documents).
    expect(&text, "meridian_index_documents", 4.0);
    assert!(value(&text, "meridian_index_size_bytes").unwrap() > 0.0);
    let synced = value(
        &text,
        "meridian_peer_last_sync_timestamp_seconds{peer=\"polar\"}",
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - synced).abs() < 120.0,
        "last sync {synced}, now {now}"
    );
    promtool_passes(&text);
    deploy_and_docs_match(&text);

    // A searched scope is counted in its histogram only.
    let search = uni.ok(&["search", "ice", "--json"]);
    assert!(search.contains("PDC-"), "{search}");
    let text = scrape(&uni);
    expect(
        &text,
        "meridian_search_duration_seconds_count{scope=\"federation\"}",
        1.0,
    );
    expect(
        &text,
        "meridian_search_duration_seconds_count{scope=\"local\"}",
        0.0,
    );

    // A record narrowed to private reaches uni as digests: withdrawn there.
    expect(
        &text,
        "meridian_sync_withdrawn_records_total{reason=\"narrowed\"}",
        0.0,
    );
    polar.import(&[record_line("PDC-0", "Ice core 0", "private")]);
    let reports = uni.sync_now();
    assert_eq!(reports["polar"]["outcome"], "ok", "{reports:?}");
    let text = scrape_until(&uni, |t| value(t, "meridian_index_documents") == Some(3.0));
    expect(
        &text,
        "meridian_sync_withdrawn_records_total{reason=\"narrowed\"}",
        1.0,
    );
    expect(
        &text,
        "meridian_sync_withdrawn_records_total{reason=\"audience\"}",
        0.0,
    );
    promtool_passes(&text);

    // Suspending and revoking move peers between states; a revoked
    // origin's entries are quarantined.
    uni.ok(&["trust", "revoke", "polar", "--yes"]);
    let text = scrape(&uni);
    expect(&text, "meridian_peers{state=\"active\"}", 0.0);
    expect(&text, "meridian_peers{state=\"revoked\"}", 1.0);
    expect(&text, "meridian_origin_quarantined{origin=\"polar\"}", 1.0);
    assert!(
        value(&text, "meridian_peer_up{peer=\"polar\"}").is_none(),
        "only active peers are watched"
    );
    polar.ok(&["trust", "suspend", "uni"]);
    let text = scrape(&polar);
    expect(&text, "meridian_peers{state=\"suspended\"}", 1.0);
    expect(&text, "meridian_peers{state=\"active\"}", 0.0);
}

/// A client over its rate is counted under the limit, and neither its
/// address nor its query text becomes a label; the public listeners do
/// not serve the metrics.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_limits_without_naming_clients_or_queries() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start_at(
        meridian_bin(),
        &dir.path().join("polar"),
        "polar",
        &[
            ("MERIDIAN_LIMITS__REQUESTS_PER_SECOND", "1"),
            ("MERIDIAN_LIMITS__REQUEST_BURST", "3"),
        ],
    )
    .unwrap();
    node.import(&[record_line("PDC-1", "Ice core", "public")]);

    let query = "zanzibar-unique-query-text";
    let mut client = CatalogClient::new(anonymous_channel(&node).await);
    let (mut served, mut refused) = (0u64, 0u64);
    for _ in 0..8 {
        let answer = client
            .search(SearchRequest {
                query: query.into(),
                ..Default::default()
            })
            .await;
        match answer {
            Ok(_) => served += 1,
            Err(status) if status.code() == tonic::Code::ResourceExhausted => refused += 1,
            Err(status) => panic!("{status}"),
        }
    }
    assert!(refused > 0, "the rate limit was never hit");

    let text = scrape(&node);
    expect(
        &text,
        "meridian_limit_hits_total{limit=\"request_rate\"}",
        refused as f64,
    );
    expect(
        &text,
        "meridian_search_duration_seconds_count{scope=\"federation\"}",
        served as f64,
    );
    expect(&text, "meridian_connections_open{listener=\"grpc\"}", 1.0);
    assert!(
        value(
            &text,
            "meridian_connections_accepted_total{listener=\"grpc\"}"
        )
        .unwrap()
            >= 1.0
    );
    for secret in [query, "127.0.0.1", "zanzibar"] {
        let leaked: Vec<&str> = text
            .lines()
            .filter(|line| !line.starts_with('#') && line.contains(secret))
            .collect();
        assert!(leaked.is_empty(), "{secret} in the metrics: {leaked:?}");
    }
    promtool_passes(&text);

    // The metrics listener serves /metrics only; the public HTTP listener
    // does not serve them at all.
    let (status, _, _) = get(node.metrics.unwrap(), "/healthz");
    assert!(status.contains(" 404 "), "{status}");
    let http = node.http.expect("an HTTP listener");
    let out = Command::new("curl")
        .args([
            "--silent",
            "--output",
            "/dev/null",
            "--write-out",
            "%{http_code}",
            "--cacert",
        ])
        .arg(node.data_dir().join("public.crt"))
        .arg("--resolve")
        .arg(format!("localhost:{}:127.0.0.1", http.port()))
        .arg(format!("https://localhost:{}/metrics", http.port()))
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
}
