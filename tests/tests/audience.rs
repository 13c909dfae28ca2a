//! Audiences the origin signs, over real nodes and real TLS: a relay whose
//! operator places an outsider in the origin's group does not widen the
//! group — the outsider receives none of the group's records from the relay
//! by Pull, Search (local, forwarded and live), GetRecord, ListRecords or
//! facet counts — and the origin's own changes reach every holder within a
//! sync round: an added member receives what it held as digests, a removed
//! one withdraws what it held.

use std::collections::BTreeSet;

use meridian_proto::catalog_client::CatalogClient;
use meridian_proto::federation_client::FederationClient;
use meridian_proto::{
    GetRecordRequest, ListRecordsRequest, OnBehalfOf, PeerSearchRequest, Scope, SearchRequest,
    SearchResponse,
};
use meridian_testkit::harness::{held, peer_channel, record_line, TestNode};
use prost::Message;
use tonic::Code;

use crate::support::{facet_total, pulled, searched};

const GROUP: &str = "polar-consortium";
/// Words only the group's record holds: none may reach the outsider.
const SECRETS: [&str; 3] = ["PDC-grp", "Consortium glacier", "glaciology"];

fn line(id: &str, title: &str, visibility: &str, discipline: &str) -> String {
    let mut value: serde_json::Value =
        serde_json::from_str(&record_line(id, title, visibility)).unwrap();
    value["disciplines"] = serde_json::json!([discipline]);
    value["keywords"] = serde_json::json!([discipline]);
    value.to_string()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

fn assert_no_secret(what: &str, bytes: &[u8]) {
    for secret in SECRETS {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "`{secret}` leaked in {what}"
        );
    }
}

fn hit_ids(answer: &SearchResponse) -> BTreeSet<String> {
    answer.hits.iter().map(|h| h.id.clone()).collect()
}

/// Everything `from`, as a pinned peer, can learn of `origin`'s records at
/// `to` by every read path: pull, search with facets, the forwarded (live)
/// search on behalf of the node, GetRecord of `probe` and ListRecords.
async fn seen_by_peer(
    from: &TestNode,
    to: &TestNode,
    origin: &str,
    probe: &str,
) -> (BTreeSet<String>, Vec<u8>) {
    let (mut ids, _, mut bytes) = pulled(from, to, origin).await;
    let mut catalog = CatalogClient::new(peer_channel(from, to).await);
    let answer = catalog
        .search(SearchRequest {
            facets: true,
            limit: 100,
            ..SearchRequest::default()
        })
        .await
        .expect("search")
        .into_inner();
    bytes.extend(answer.encode_to_vec());
    ids.extend(hit_ids(&answer));
    for facet in ["discipline", "origin", "access", "license", "year"] {
        assert_eq!(
            facet_total(&answer, facet),
            answer.hits.len() as u64,
            "facet {facet} counts what the hits do not show: {answer:?}"
        );
    }
    assert_eq!(answer.total, answer.hits.len() as u64, "{answer:?}");
    let mut federation = FederationClient::new(peer_channel(from, to).await);
    let forwarded = federation
        .search(PeerSearchRequest {
            request: Some(SearchRequest {
                origins: vec![origin.into()],
                scope: Scope::Live as i32,
                facets: true,
                limit: 100,
                ..SearchRequest::default()
            }),
            on_behalf_of: OnBehalfOf::Node as i32,
        })
        .await
        .expect("forwarded search")
        .into_inner();
    bytes.extend(forwarded.encode_to_vec());
    ids.extend(forwarded.hits.iter().map(|h| h.id.clone()));
    match catalog
        .get_record(GetRecordRequest {
            origin: origin.into(),
            id: probe.into(),
        })
        .await
    {
        Ok(view) => {
            let view = view.into_inner();
            bytes.extend(view.encode_to_vec());
            ids.extend(view.record.map(|r| r.id));
        }
        Err(status) => assert_eq!(status.code(), Code::NotFound, "{status}"),
    }
    let listed = catalog
        .list_records(ListRecordsRequest {
            origin: origin.into(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    bytes.extend(listed.encode_to_vec());
    ids.extend(
        listed
            .records
            .iter()
            .filter_map(|v| v.record.as_ref().map(|r| r.id.clone())),
    );
    (ids, bytes)
}

/// A live search as `node`'s operator: the fan-out to its peers now.
async fn live_ids(node: &TestNode) -> BTreeSet<String> {
    let mut admin = meridian_server::admin_socket::connect(node.data_dir())
        .await
        .unwrap();
    let answer = admin
        .search(SearchRequest {
            scope: Scope::Live as i32,
            origins: vec!["polar".into()],
            limit: 100,
            deadline_ms: 5000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_no_secret_unless_held(&answer);
    hit_ids(&answer)
}

fn assert_no_secret_unless_held(answer: &SearchResponse) {
    if !hit_ids(answer).contains("PDC-grp") {
        assert_no_secret("a live answer", &answer.encode_to_vec());
    }
}

/// Waits until `check` holds, for at most ten seconds (the index follows
/// the store within a moment).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !check() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn synced(node: &TestNode) {
    for (peer, report) in node.sync_now() {
        assert_eq!(report["ok"], true, "{} from {peer}: {report}", node.name);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_cannot_widen_the_origins_group_and_the_origins_changes_reach_every_holder() {
    let polar = TestNode::start("polar");
    let relay = TestNode::start("relay");
    let outsider = TestNode::start("genomics");
    // The origin: the relay is in its group, the outsider a peer outside it.
    polar.trust(&relay, &[GROUP]);
    polar.trust(&outsider, &[]);
    // The relay's operator places the outsider in the group.
    relay.trust(&polar, &[]);
    relay.trust(&outsider, &[GROUP]);
    outsider.trust(&relay, &[]);
    outsider.trust(&polar, &[]);
    polar.import(&[
        line("PDC-open", "Arctic sea ice", "public", "oceanography"),
        line("PDC-fed", "Dome A ice core", "federation", "paleoclimate"),
        line(
            "PDC-grp",
            "Consortium glacier survey",
            "groups",
            "glaciology",
        ),
    ]);
    synced(&relay);
    assert!(held(&relay, "polar", "PDC-grp").await.is_some());

    // The outsider receives nothing of the group's records from the relay,
    // by any path, nor from the origin.
    let visible = set(&["PDC-open", "PDC-fed"]);
    for serving in [&relay, &polar] {
        let (ids, bytes) = seen_by_peer(&outsider, serving, "polar", "PDC-grp").await;
        assert_eq!(ids, visible, "served by {}", serving.name);
        assert_no_secret(&format!("what {} served", serving.name), &bytes);
    }
    synced(&outsider);
    assert!(held(&outsider, "polar", "PDC-grp").await.is_none());
    assert!(held(&outsider, "polar", "PDC-fed").await.is_some());
    assert_eq!(live_ids(&outsider).await, visible);
    // The relay itself, in the group by the origin's audience, holds it.
    let (ids, _) = seen_by_peer(&relay, &polar, "polar", "PDC-grp").await;
    assert!(ids.contains("PDC-grp"));

    // The origin adds the outsider to the group: after one round it holds
    // the record it had as digests, searches it, and the relay serves it.
    polar.ok(&["trust", "groups", "genomics", "--groups", GROUP]);
    synced(&outsider);
    let record = held(&outsider, "polar", "PDC-grp")
        .await
        .expect("the record, after the round that brought the wider audience");
    assert_eq!(record.title, "Consortium glacier survey");
    eventually("the refilled record searchable", || {
        searched(&outsider, "glacier").contains("polar/PDC-grp")
    });
    synced(&relay);
    let (ids, _) = seen_by_peer(&outsider, &relay, "polar", "PDC-grp").await;
    assert_eq!(ids, set(&["PDC-open", "PDC-fed", "PDC-grp"]));

    // The origin takes the outsider out again: after one round it holds
    // the record no more, and neither the origin nor the relay serves it.
    polar.ok(&["trust", "groups", "genomics"]);
    synced(&outsider);
    assert!(held(&outsider, "polar", "PDC-grp").await.is_none());
    eventually("the withdrawn record out of search", || {
        !searched(&outsider, "glacier").contains("polar/PDC-grp")
    });
    assert!(held(&outsider, "polar", "PDC-fed").await.is_some());
    synced(&relay);
    for serving in [&relay, &polar] {
        let (ids, bytes) = seen_by_peer(&outsider, serving, "polar", "PDC-grp").await;
        assert_eq!(ids, visible, "served by {} after the removal", serving.name);
        assert_no_secret(&format!("what {} served", serving.name), &bytes);
    }
    assert_eq!(live_ids(&outsider).await, visible);
}
