//! Search through the real binary and over TLS: scopes, visibility in hits
//! and facet counts for each kind of caller, and query errors.

use std::time::{Duration, Instant};

use meridian_proto::catalog_client::CatalogClient;
use meridian_proto::SearchRequest;
use meridian_testkit::harness::{record_line, TestNode};

use crate::support::facet_total;

/// `meridian search --json`, retried until `ready` holds (indexing is
/// asynchronous: an import is durable at once and searchable a moment later).
fn search_until(
    node: &TestNode,
    args: &[&str],
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut full = vec!["search"];
        full.extend_from_slice(args);
        full.push("--json");
        let answer: serde_json::Value = serde_json::from_str(&node.ok(&full)).expect("json");
        if ready(&answer) || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ids(answer: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = answer["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn corpus() -> Vec<String> {
    vec![
        record_line("ICE-pub", "Sea ice thickness", "public"),
        record_line("ICE-fed", "Sea ice drift buoys", "federation"),
        record_line("ICE-grp", "Sea ice mass balance", "groups"),
        record_line("ICE-priv", "Sea ice draft sonar", "private"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn each_caller_sees_only_what_it_may_in_hits_and_facets() {
    let a = TestNode::start("polar");
    let b = TestNode::start("uni");
    let c = TestNode::start("genomics");
    a.trust(&b, &["polar-consortium"]);
    a.trust(&c, &[]);
    a.import(&corpus());

    let operator = search_until(&a, &["sea ice"], |v| v["total"] == 4);
    assert_eq!(
        ids(&operator),
        ["ICE-fed", "ICE-grp", "ICE-priv", "ICE-pub"]
    );

    let request = SearchRequest {
        query: "sea ice".into(),
        facets: true,
        limit: 100,
        ..Default::default()
    };
    let mut anonymous = CatalogClient::new(meridian_testkit::harness::anonymous_channel(&a).await);
    let answer = anonymous
        .search(request.clone())
        .await
        .unwrap()
        .into_inner();
    let seen: Vec<_> = answer.hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(seen, ["ICE-pub"]);
    assert_eq!(answer.total, 1);
    assert_eq!(
        facet_total(&answer, "access"),
        1,
        "facet counts leak nothing"
    );

    for (peer, expected) in [
        (&b, vec!["ICE-fed", "ICE-grp", "ICE-pub"]),
        (&c, vec!["ICE-fed", "ICE-pub"]),
    ] {
        let mut client =
            CatalogClient::new(meridian_testkit::harness::peer_channel(peer, &a).await);
        let answer = client.search(request.clone()).await.unwrap().into_inner();
        let mut seen: Vec<_> = answer.hits.iter().map(|h| h.id.clone()).collect();
        seen.sort();
        assert_eq!(seen, expected, "as {}", peer.name);
        assert_eq!(answer.total, expected.len() as u64);
        assert_eq!(
            facet_total(&answer, "access"),
            expected.len() as u64,
            "as {}",
            peer.name
        );
        assert_eq!(
            facet_total(&answer, "origin"),
            expected.len() as u64,
            "as {}",
            peer.name
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn federation_scope_finds_replicated_records_with_their_origin() {
    let a = TestNode::start("polar");
    let c = TestNode::start("genomics");
    a.trust(&c, &[]);
    c.trust(&a, &[]);
    a.import(&corpus());
    c.import(&[record_line("GEN-1", "Sea ice algae metagenomes", "public")]);
    c.sync_now();

    let federation = search_until(&c, &["sea ice"], |v| v["total"] == 3);
    assert_eq!(ids(&federation), ["GEN-1", "ICE-fed", "ICE-pub"]);
    for hit in federation["hits"].as_array().unwrap() {
        assert_eq!(hit["verified"], true);
        let expected_origin = if hit["id"] == "GEN-1" {
            "genomics"
        } else {
            "polar"
        };
        assert_eq!(hit["origin"], expected_origin);
    }
    let sources = federation["completeness"].as_array().unwrap();
    assert!(sources
        .iter()
        .any(|s| s["origin"] == "polar" && s["status"] == "replica" && s["as_of"] != ""));

    let local = search_until(&c, &["sea ice", "--scope", "local"], |v| v["total"] == 1);
    assert_eq!(ids(&local), ["GEN-1"]);

    let filtered = search_until(&c, &["sea ice", "--origin", "polar"], |v| v["total"] == 2);
    assert_eq!(ids(&filtered), ["ICE-fed", "ICE-pub"]);

    // A delete at the origin leaves the federation index after a sync.
    a.ok(&["holdings", "rm", "ICE-pub", "--yes"]);
    c.sync_now();
    let after = search_until(&c, &["sea ice", "--origin", "polar"], |v| v["total"] == 1);
    assert_eq!(ids(&after), ["ICE-fed"]);
}

#[test]
fn a_malformed_query_says_where() {
    let a = TestNode::start("polar");
    let out = a.run(&["search", "title:\"sea ice"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("character"), "{stderr}");
    let out = a.run(&["search", "ice", "--bbox", "1,2,3"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bbox"));
}
