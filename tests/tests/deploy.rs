//! The deployment as shipped, without Docker: `deploy/bootstrap.sh` (the
//! compose federation's one-shot bootstrap service) run against three real
//! local nodes, the shipped sample holdings, and systemd's readiness
//! protocol (`Type=notify`) over a real Unix datagram socket.

use std::collections::BTreeSet;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use meridian_proto::catalog_client::CatalogClient;
use meridian_proto::SearchRequest;
use meridian_testkit::harness::{anonymous_channel, held, meridian_bin, record_line, TestNode};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// The institutions of deploy/docker-compose.yml, each with a sample file.
const INSTITUTIONS: [&str; 3] = ["polar-dc", "genomics", "materials"];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .join("deploy")
}

/// One sample record: (id, visibility) and the whole line as JSON.
fn samples(institution: &str) -> Vec<serde_json::Value> {
    let path = deploy_dir()
        .join("samples")
        .join(format!("{institution}.jsonl"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{} line {}: {e}", path.display(), n + 1))
        })
        .collect()
}

/// Runs deploy/bootstrap.sh with `nodes` (id, data directory) and `extra`
/// variables.
fn bootstrap(nodes: &[(&str, &Path)], extra: &[(&str, &str)]) -> Output {
    let list = nodes
        .iter()
        .map(|(id, dir)| format!("{id}={}", dir.display()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut command = Command::new("bash");
    command
        .arg(deploy_dir().join("bootstrap.sh"))
        .env("BOOTSTRAP_NODES", list)
        .env("BOOTSTRAP_SAMPLES", deploy_dir().join("samples"))
        .env("BOOTSTRAP_MERIDIAN", meridian_bin())
        .env("BOOTSTRAP_TIMEOUT", "120");
    for (key, value) in extra {
        command.env(key, value);
    }
    command.output().expect("bash runs")
}

fn pinned(node: &TestNode) -> BTreeSet<String> {
    let peers: Vec<serde_json::Value> =
        serde_json::from_str(&node.ok(&["trust", "list", "--json"])).expect("trust list json");
    peers
        .iter()
        .filter(|p| p["state"] == "active")
        .map(|p| p["node_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn anonymous_hits(node: &TestNode) -> BTreeSet<(String, String)> {
    let mut client = CatalogClient::new(anonymous_channel(node).await);
    let answer = client
        .search(SearchRequest {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    answer
        .hits
        .into_iter()
        .map(|hit| (hit.origin, hit.id))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_federates_three_nodes_and_every_public_sample_is_found_everywhere() {
    let nodes: Vec<TestNode> = INSTITUTIONS.iter().map(|id| TestNode::start(id)).collect();
    let listed: Vec<(&str, &Path)> = nodes
        .iter()
        .map(|n| (n.name.as_str(), n.data_dir()))
        .collect();

    // A data directory named for the wrong node is refused before any change.
    let swapped = [listed[1], (listed[0].0, listed[2].1), listed[2]];
    let out = bootstrap(&swapped, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("holds node `materials`, not polar-dc"),
        "{stderr}"
    );
    assert!(nodes.iter().all(|n| pinned(n).is_empty()));

    let out = bootstrap(&listed, &[]);
    assert!(out.status.success(), "bootstrap failed: {out:?}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));

    for node in &nodes {
        let others: BTreeSet<String> = INSTITUTIONS
            .iter()
            .filter(|id| **id != node.name)
            .map(|id| id.to_string())
            .collect();
        assert_eq!(pinned(node), others, "{} pins every other node", node.name);
        // Every sample line was stored, none rejected.
        let own: Vec<serde_json::Value> =
            serde_json::from_str(&node.ok(&["holdings", "list", "--json"])).unwrap();
        assert_eq!(own.len(), samples(&node.name).len(), "{}", node.name);
    }

    // Every node answers an anonymous search with exactly the public sample
    // records of all three institutions: its own and the replicated ones.
    let public: BTreeSet<(String, String)> = INSTITUTIONS
        .iter()
        .flat_map(|origin| {
            samples(origin)
                .into_iter()
                .filter(|r| r["visibility"] == "public")
                .map(|r| (origin.to_string(), r["id"].as_str().unwrap().to_owned()))
        })
        .collect();
    for node in &nodes {
        assert_eq!(
            anonymous_hits(node).await,
            public,
            "anonymous search at {}",
            node.name
        );
    }

    // The shared but not public records reached the peers; private ones
    // stayed home.
    let polar = &nodes[0];
    for origin in ["genomics", "materials"] {
        for record in samples(origin) {
            let id = record["id"].as_str().unwrap();
            let copy = held(polar, origin, id).await;
            match record["visibility"].as_str().unwrap() {
                "private" => assert!(copy.is_none(), "{origin}/{id} is private"),
                _ => assert!(copy.is_some(), "{origin}/{id} reached polar-dc"),
            }
        }
    }

    // Run again (a restarted compose project): nothing changes, nothing fails.
    let out = bootstrap(&listed, &[]);
    assert!(out.status.success(), "second bootstrap failed: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("polar-dc already pins genomics"),
        "{stderr}"
    );
    for node in &nodes {
        assert_eq!(pinned(node).len(), 2);
        let own: Vec<serde_json::Value> =
            serde_json::from_str(&node.ok(&["holdings", "list", "--json"])).unwrap();
        assert_eq!(own.len(), samples(&node.name).len());
    }
    assert_eq!(anonymous_hits(polar).await, public);
}

#[test]
fn bootstrap_names_the_node_that_never_becomes_healthy() {
    let node = TestNode::start("polar-dc");
    let absent = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = bootstrap(
        &[("polar-dc", node.data_dir()), ("genomics", absent.path())],
        &[("BOOTSTRAP_TIMEOUT", "3")],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("genomics is not healthy after 3s"),
        "{stderr}"
    );
    assert!(pinned(&node).is_empty(), "nothing pinned before all are up");

    for (nodes, complaint) in [
        ("polar-dc", "not NODE_ID=DATA_DIR"),
        ("polar-dc=/a", "needs two or more"),
        ("polar-dc=/a polar-dc=/b", "names polar-dc twice"),
    ] {
        let out = Command::new("bash")
            .arg(deploy_dir().join("bootstrap.sh"))
            .env("BOOTSTRAP_NODES", nodes)
            .env("BOOTSTRAP_MERIDIAN", meridian_bin())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{nodes}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(complaint), "{nodes}: {stderr}");
    }
}

/// The shipped samples (real metadata, deploy/samples/SOURCES.md) are varied
/// enough to show what a federation does: every visibility at every
/// institution, several access levels, boxes (some across the
/// antimeridian), time ranges, and no DOI given to two records.
#[test]
fn the_sample_holdings_are_varied_and_distinct() {
    let mut dois = BTreeSet::new();
    let mut access = BTreeSet::new();
    for institution in INSTITUTIONS {
        let records = samples(institution);
        assert!(
            (50..=200).contains(&records.len()),
            "{institution}: a hundred records or so"
        );
        let field = |name: &str| -> BTreeSet<String> {
            records
                .iter()
                .filter_map(|r| r[name].as_str().map(str::to_owned))
                .collect()
        };
        let ids = field("id");
        assert_eq!(ids.len(), records.len(), "{institution}: ids are distinct");
        for visibility in ["public", "federation", "groups", "private"] {
            assert!(field("visibility").contains(visibility), "{institution}");
        }
        access.extend(field("access"));
        for r in &records {
            if let Some(doi) = r["doi"].as_str() {
                assert!(dois.insert(doi.to_owned()), "{institution}: {doi} twice");
            }
            assert!(r.get("origin").is_none(), "the node assigns the origin");
            if r["visibility"] == "groups" {
                assert_eq!(r["groups"], serde_json::json!(["consortium"]));
            }
        }
    }
    assert!(access.len() >= 3, "{access:?}");
    let all: Vec<serde_json::Value> = INSTITUTIONS.iter().flat_map(|i| samples(i)).collect();
    assert!(all.iter().any(|r| r["temporal"].is_object()));
    assert!(dois.len() >= 50, "{} DOIs", dois.len());
    let crosses = all.iter().any(|r| {
        r["spatial"].as_array().is_some_and(|boxes| {
            boxes
                .iter()
                .any(|b| b["west"].as_f64().unwrap() > b["east"].as_f64().unwrap())
        })
    });
    assert!(crosses, "a box crosses the antimeridian");
}

async fn public_status(node: &TestNode) -> ServingStatus {
    let mut client = HealthClient::new(anonymous_channel(node).await);
    client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status()
}

/// Datagrams waiting on `socket`, without blocking.
fn drain(socket: &UnixDatagram) -> Vec<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = socket.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    got
}

fn wait_for(socket: &UnixDatagram, what: &str, at_most: Duration) -> Vec<String> {
    let deadline = Instant::now() + at_most;
    let mut got = Vec::new();
    while !got.iter().any(|m: &String| m.contains(what)) {
        assert!(
            Instant::now() < deadline,
            "no {what} within {at_most:?}: {got:?}"
        );
        got.extend(drain(socket));
        std::thread::sleep(Duration::from_millis(20));
    }
    got
}

/// Under systemd `Type=notify`, READY=1 reaches the service manager only
/// once the node serves (listeners bound, index caught up: public health
/// SERVING), STOPPING=1 when it drains, and then a longer stop timeout
/// while it snapshots its store.
#[tokio::test(flavor = "multi_thread")]
async fn systemd_hears_ready_only_once_the_node_serves_and_stopping_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let manager = UnixDatagram::bind(&path).unwrap();
    manager.set_nonblocking(true).unwrap();
    let socket = path.to_str().unwrap();
    let mut node = TestNode::start_with("polar-dc", &[("NOTIFY_SOCKET", socket)]);
    wait_for(&manager, "READY=1", Duration::from_secs(60));

    let lines: Vec<String> = (0..20_000)
        .map(|i| record_line(&format!("PDC-{i}"), &format!("Ice core {i}"), "public"))
        .collect();
    node.import(&lines);
    assert!(node.stop(), "a clean stop");
    let mut at_stop = wait_for(&manager, "STOPPING=1", Duration::from_secs(5));
    assert!(
        !at_stop.iter().any(|m| m.contains("READY=1")),
        "{at_stop:?}"
    );
    // Then, drained, it asks for time to snapshot its store: the node has
    // exited, so every message it sent is queued.
    at_stop.extend(drain(&manager));
    let stopping = at_stop.iter().position(|m| m.contains("STOPPING=1"));
    let snapshot = at_stop
        .iter()
        .position(|m| m.contains("EXTEND_TIMEOUT_USEC=") && m.contains("STATUS="));
    assert!(
        snapshot.is_some() && stopping < snapshot,
        "no extension of the stop for the store's snapshot after STOPPING=1: {at_stop:?}"
    );

    // Without its index the node re-derives it at start: not ready until then.
    std::fs::remove_dir_all(node.data_dir().join(meridian_core::node::INDEX_DIR)).unwrap();
    node.serve();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut seen_not_serving = false;
    let mut messages = Vec::new();
    loop {
        // Health first, then the socket: a READY=1 found here was sent no
        // earlier than this health answer.
        let status = public_status(&node).await;
        let arrived = drain(&manager);
        messages.extend(arrived.iter().cloned());
        if arrived.iter().any(|m| m.contains("READY=1")) {
            assert_eq!(
                public_status(&node).await,
                ServingStatus::Serving,
                "READY=1 before SERVING"
            );
            break;
        }
        if status == ServingStatus::NotServing {
            seen_not_serving = true;
        }
        assert!(Instant::now() < deadline, "never ready: {messages:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen_not_serving,
        "the node was watched while its index caught up, and was not ready then"
    );
    let out = node.run(&["health", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(node.stop());
    wait_for(&manager, "STOPPING=1", Duration::from_secs(5));
}

/// A pod in a namespace with Services named `meridian` and
/// `meridian-metrics` gets these variables; the node starts with them, and
/// still refuses a mistyped key.
#[test]
fn the_node_starts_with_the_service_links_kubernetes_injects() {
    let injected = [
        ("MERIDIAN_SERVICE_HOST", "10.96.0.7"),
        ("MERIDIAN_SERVICE_PORT", "7400"),
        ("MERIDIAN_SERVICE_PORT_GRPC_TLS", "7400"),
        ("MERIDIAN_PORT", "tcp://10.96.0.7:7400"),
        ("MERIDIAN_PORT_7400_TCP", "tcp://10.96.0.7:7400"),
        ("MERIDIAN_PORT_7400_TCP_PROTO", "tcp"),
        ("MERIDIAN_PORT_7400_TCP_PORT", "7400"),
        ("MERIDIAN_PORT_7400_TCP_ADDR", "10.96.0.7"),
        ("MERIDIAN_METRICS_SERVICE_HOST", "10.96.0.9"),
        ("MERIDIAN_METRICS_PORT", "tcp://10.96.0.9:9474"),
        (
            "MERIDIAN_ENDPOINT",
            "meridian-0.meridian-headless.meridian.svc:7400",
        ),
    ];
    let node = TestNode::start_with("polar-dc", &injected);
    let status: serde_json::Value = serde_json::from_str(&node.ok(&["status", "--json"])).unwrap();
    assert_eq!(
        status["listen"], "meridian-0.meridian-headless.meridian.svc:7400",
        "MERIDIAN_ENDPOINT applies beside the service links"
    );
    let invite = node.ok(&["keys", "show", "--json"]);
    assert!(invite.contains("meridian-0.meridian-headless.meridian.svc:7400"));

    let dir = tempfile::tempdir().unwrap();
    let mut typo = injected.to_vec();
    typo.push(("MERIDIAN_LISTEN_PORT", "7400"));
    let err = match TestNode::start_at(meridian_bin(), dir.path(), "genomics", &typo) {
        Ok(_) => panic!("a node started with MERIDIAN_LISTEN_PORT"),
        Err(e) => e,
    };
    assert!(err.contains("exited before listening"), "{err}");
}
