//! Real nodes over real TLS, facing callers they must refuse: an unpinned
//! node, a pinned peer reached at another node's address, suspended and
//! revoked peers, a peer whose key chain no longer verifies, a key set
//! stored with other signatures than its origin's, an oversized message,
//! and a peer asking for records its groups may not see.

use std::collections::BTreeSet;

use meridian_proto::catalog_client::CatalogClient;
use meridian_proto::federation_client::FederationClient;
use meridian_proto::{NodeInfoRequest, PullRequest, SearchRequest, SearchResponse};
use meridian_testkit::harness::{
    anonymous_channel, held, meridian_bin, peer_channel, record_line, TestNode,
};
use tonic::Code;

use crate::support::{facet_total, pulled, searched};

/// Waits until `check` holds, for at most ten seconds.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !check() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unpinned_node_is_refused_at_the_handshake() {
    let polar = TestNode::start("polar");
    let stranger = TestNode::start("stranger");
    stranger.trust(&polar, &[]);
    polar.import(&[record_line("PDC-open", "Arctic sea ice", "federation")]);

    let reports = stranger.sync_now();
    let report = &reports["polar"];
    assert_eq!(report["ok"], false, "{reports:?}");
    let error = report["error"].as_str().unwrap();
    assert!(error.starts_with("polar: unreachable: "), "{error}");
    assert!(held(&stranger, "polar", "PDC-open").await.is_none());
    let status = stranger.peers_status();
    assert_eq!(status["polar"]["reachable"], false);
    assert_eq!(status["polar"]["last_error"], error);

    // The refusing node keeps no trace of the stranger as a peer.
    assert!(
        !polar.peers_status().contains_key("stranger"),
        "{:?}",
        polar.peers_status()
    );

    // Without a certificate the Federation service is closed too.
    let mut anonymous = FederationClient::new(anonymous_channel(&polar).await);
    let refused = anonymous
        .get_node_info(NodeInfoRequest {})
        .await
        .expect_err("anonymous federation call");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pinned_peer_reached_at_another_nodes_address_is_refused() {
    let polar = TestNode::start("polar");
    let uni = TestNode::start("uni");
    let genomics = TestNode::start("genomics");
    genomics.import(&[record_line("GEN-1", "Tumour panel", "federation")]);
    uni.import(&[record_line("UNI-1", "Campus weather", "federation")]);
    uni.trust(&polar, &[]);
    genomics.trust(&polar, &[]);
    polar.trust(&genomics, &[]);
    // `uni`'s pinned endpoint leads to `genomics`, a pinned node too.
    let mut invite = meridian_core::trust::Invite::from_token(&uni.invite()).unwrap();
    invite.endpoint = genomics.catalog.unwrap().to_string();
    polar.ok(&["trust", "add", &invite.to_token()]);

    let reports = polar.sync_now();
    let report = &reports["uni"];
    assert_eq!(report["ok"], false, "{reports:?}");
    let error = report["error"].as_str().unwrap();
    assert_eq!(
        error,
        "uni: the node reached is not uni: its TLS key is not the one pinned for it"
    );
    assert_eq!(reports["genomics"]["ok"], true, "{reports:?}");
    assert!(
        held(&polar, "uni", "UNI-1").await.is_none(),
        "nothing pulled as uni"
    );
    assert!(held(&polar, "genomics", "GEN-1").await.is_some());
    let status = polar.peers_status();
    assert_eq!(status["uni"]["last_error"], error, "{status:?}");
    assert!(
        status["uni"]["rejected"].as_u64().unwrap() >= 1,
        "{status:?}"
    );
    assert_eq!(status["uni"]["reachable"], true, "an impostor answered");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suspended_peer_is_neither_served_nor_pulled_until_resumed() {
    let polar = TestNode::start("polar");
    let uni = TestNode::start("uni");
    polar.trust(&uni, &[]);
    uni.trust(&polar, &[]);
    // Suspended before either logs grows: a hint would otherwise race it.
    polar.ok(&["trust", "suspend", "uni"]);
    polar.import(&[record_line("PDC-1", "Arctic sea ice", "federation")]);
    uni.import(&[record_line("UNI-1", "Campus weather", "federation")]);

    // The suspended side is refused, with the reason.
    let reports = uni.sync_now();
    let report = &reports["polar"];
    assert_eq!(report["ok"], false, "{reports:?}");
    let error = report["error"].as_str().unwrap();
    assert!(error.starts_with("polar: "), "{error}");
    assert!(held(&uni, "polar", "PDC-1").await.is_none());

    // The suspending side does not pull from it.
    let reports = polar.sync_now();
    assert!(!reports.contains_key("uni"), "{reports:?}");
    assert!(held(&polar, "uni", "UNI-1").await.is_none());
    assert_eq!(polar.peers_status()["uni"]["state"], "suspended");

    polar.ok(&["trust", "resume", "uni"]);
    assert_eq!(polar.sync_now()["uni"]["ok"], true);
    assert!(held(&polar, "uni", "UNI-1").await.is_some());
    assert_eq!(uni.sync_now()["polar"]["ok"], true);
    assert!(held(&uni, "polar", "PDC-1").await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_peer_is_refused_at_once_and_its_records_leave_search() {
    let polar = TestNode::start("polar");
    let uni = TestNode::start("uni");
    polar.trust(&uni, &[]);
    uni.trust(&polar, &[]);
    polar.import(&[record_line("PDC-1", "Arctic sea ice", "federation")]);
    uni.import(&[
        record_line("UNI-1", "Campus weather station", "federation"),
        record_line("UNI-2", "Campus river gauge", "public"),
    ]);
    assert_eq!(polar.sync_now()["uni"]["ok"], true);
    let ids = |set: &[&str]| set.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    eventually("uni's records searchable at polar", || {
        searched(&polar, "campus") == ids(&["uni/UNI-1", "uni/UNI-2"])
    });

    // A connection made while uni was trusted.
    let channel = peer_channel(&uni, &polar).await;
    let mut federation = FederationClient::new(channel.clone());
    let mut catalog = CatalogClient::new(channel);
    federation
        .get_node_info(NodeInfoRequest {})
        .await
        .expect("trusted");

    polar.ok(&["trust", "revoke", "uni", "--yes"]);

    // Refused on the very same connection, per request.
    let refused = federation
        .get_node_info(NodeInfoRequest {})
        .await
        .expect_err("revoked");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused}");
    assert_eq!(refused.message(), "uni is revoked");
    let refused = federation
        .pull(PullRequest {
            origin: "polar".into(),
            after_index: 0,
            max_batch: 0,
        })
        .await
        .expect_err("revoked");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused}");
    let refused = catalog
        .search(SearchRequest::default())
        .await
        .expect_err("revoked");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused}");

    // And on a new connection.
    let reports = uni.sync_now();
    assert_eq!(reports["polar"]["ok"], false, "{reports:?}");

    // Its records leave search and reads at once, and are not pulled again.
    assert_eq!(searched(&polar, "campus"), BTreeSet::new());
    assert!(held(&polar, "uni", "UNI-1").await.is_none());
    assert!(!polar.sync_now().contains_key("uni"));
    uni.import(&[record_line("UNI-3", "Campus snow depth", "public")]);
    polar.sync_now();
    assert!(held(&polar, "uni", "UNI-3").await.is_none());
    assert_eq!(searched(&polar, "campus"), BTreeSet::new());
    assert_eq!(polar.peers_status()["uni"]["state"], "revoked");
}

/// Pins `origin`, in the store of the stopped node in `data`, to a root key
/// no key set names: its stored key chain no longer verifies, as after a
/// pin changed under the store.
fn repin_to_a_stranger(data: &std::path::Path, origin: &str) {
    use meridian_core::store::{tree, Store};
    let store = Store::open(&data.join("store")).expect("store");
    let peers = store.table(tree::PEERS).unwrap();
    let held = peers.get(origin.as_bytes()).unwrap().expect("pinned");
    let mut peer: meridian_core::trust::Peer = serde_json::from_slice(&held).unwrap();
    let stranger = meridian_core::sign::NodeKey::generate();
    peer.identity_key = stranger.verifying_key().to_bytes().to_vec();
    let changed = serde_json::to_vec(&peer).unwrap();
    assert!(peers
        .compare_and_swap(origin.as_bytes(), Some(&held), changed)
        .unwrap());
    store.flush().unwrap();
}

/// Starts node `name` in `data` again on `listen`, where its peers dial it,
/// once this process has let go of its store (the lock outlives the
/// store's drop by a moment).
fn restart(data: &std::path::Path, name: &str, listen: &str) -> TestNode {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match TestNode::start_at(meridian_bin(), data, name, &[("MERIDIAN_LISTEN", listen)]) {
            Ok(node) => return node,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("{name} not started yet: {e}");
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => panic!("{name}: {e}"),
        }
    }
}

/// Nodes `here` (in `data`), `polar` and `uni`, each pinning the others:
/// uni holds polar's log too, and serves it to here.
fn here_polar_and_a_relay(data: &std::path::Path) -> (TestNode, TestNode, TestNode) {
    let here = TestNode::start_at(meridian_bin(), data, "here", &[]).unwrap();
    let polar = TestNode::start("polar");
    let uni = TestNode::start("uni");
    for peer in [&polar, &uni] {
        here.trust(peer, &[]);
        peer.trust(&here, &[]);
    }
    uni.trust(&polar, &[]);
    polar.trust(&uni, &[]);
    (here, polar, uni)
}

/// One peer whose key chain, as stored at a node, no longer verifies from
/// the root pinned for it is held back alone: `peers status` names it with
/// why, its connections are refused, and the other peers' handshakes and
/// requests go on as before, both ways.
#[tokio::test(flavor = "multi_thread")]
async fn a_peer_whose_key_chain_does_not_verify_holds_up_no_other_peer() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("here");
    let (mut here, polar, uni) = here_polar_and_a_relay(&data);
    polar.import(&[record_line("PDC-1", "Arctic sea ice", "public")]);
    let reports = here.sync_now();
    assert_eq!(reports["polar"]["ok"], true, "{reports:?}");
    let reports = uni.sync_now();
    assert_eq!(reports["polar"]["ok"], true, "{reports:?}");
    let listen = here.catalog.unwrap().to_string();
    assert!(here.stop());
    repin_to_a_stranger(&data, "polar");
    let here = restart(&data, "here", &listen);

    let status = here.peers_status();
    let why = status["polar"]["keys_unverified"].as_str().unwrap();
    assert!(why.contains("not signed by the pinned root key"), "{why}");
    assert_eq!(status["polar"]["stale"], true);
    assert_eq!(status["uni"]["keys_unverified"], "");
    assert_eq!(status["uni"]["stale"], false);
    // `trust show`, which `doctor` points to, shows the pin and why.
    let shown: serde_json::Value =
        serde_json::from_str(&here.ok(&["trust", "show", "polar", "--json"])).unwrap();
    assert_eq!(shown["node_id"], "polar", "{shown}");
    let why = shown["key_sets_unverified"].as_str().unwrap();
    assert!(why.contains("not signed by the pinned root key"), "{why}");

    uni.import(&[record_line("UNI-1", "Campus weather station", "public")]);
    here.import(&[record_line("HERE-1", "Harbour tide gauge", "public")]);
    polar.import(&[record_line("PDC-2", "Antarctic sea ice", "public")]);
    let reports = uni.sync_now();
    assert_eq!(reports["here"]["ok"], true, "{reports:?}");
    assert_eq!(reports["polar"]["ok"], true, "{reports:?}");
    assert!(held(&uni, "here", "HERE-1").await.is_some());
    let reports = here.sync_now();
    assert_eq!(reports["uni"]["ok"], true, "{reports:?}");
    assert!(held(&here, "uni", "UNI-1").await.is_some());
    // What uni serves of polar is not pulled, and no fault of uni's.
    let held_back = reports["uni"]["held_back"].as_array().unwrap();
    assert_eq!(held_back.len(), 1, "{reports:?}");
    assert!(
        held_back[0]
            .as_str()
            .unwrap()
            .starts_with("polar: held back"),
        "{reports:?}"
    );

    // here refuses polar's connections; what here publishes reaches polar
    // through uni.
    let reports = polar.sync_now();
    assert_eq!(reports["here"]["ok"], false, "{reports:?}");
    assert_eq!(reports["uni"]["ok"], true, "{reports:?}");
    assert!(held(&polar, "here", "HERE-1").await.is_some());
}

/// Clears, in the store of the stopped node in `data`, the signatures of
/// `origin`'s key set of version `version`, as a relay could once leave
/// them; returns the entry's position in the origin's log.
fn strip_key_set_signatures(data: &std::path::Path, origin: &str, version: u64) -> u64 {
    use meridian_core::log::StoredEntry;
    use meridian_core::proto::{log_entry::Body, LogEntry};
    use meridian_core::store::Store;
    use prost::Message;
    let store = Store::open(&data.join("store")).expect("store");
    let entries = store
        .entries(origin, meridian_core::ids::LogIndex(0), 1000)
        .unwrap();
    let (index, mut envelope) = entries
        .into_iter()
        .find_map(|(index, entry)| {
            let StoredEntry::Signed(envelope) = entry else {
                return None;
            };
            let entry = LogEntry::decode(envelope.payload.as_slice()).ok()?;
            let Some(Body::KeySet(set)) = entry.body else {
                return None;
            };
            (set.version == version).then_some((index.0, envelope))
        })
        .unwrap_or_else(|| panic!("{origin} holds no key set {version}"));
    assert!(!envelope.signatures.is_empty());
    envelope.signatures.clear();
    store
        .refill(
            origin,
            &[(index, StoredEntry::Signed(envelope).encode())],
            &[],
        )
        .unwrap();
    store.flush().unwrap();
    index
}

/// A key set held with other signatures than its origin's (a relay's
/// doing, before relays were checked) holds its origin back, and `fsck`
/// names the entry. The running node fetches the entry again from a peer
/// that relays the origin's log (the origin's own connections are refused
/// while its keys are unknown), puts it in place, and pulls the origin in
/// the same round: a record only the relay held arrives (a held-back
/// origin's records stay searchable, so search alone would show nothing),
/// later ones too, and `fsck` is clean. Real processes; in-process,
/// `sync::tests` covers each kind of damage and each kind of peer answer.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_set_stored_with_other_signatures_is_fetched_again_from_a_relay() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("here");
    let (mut here, polar, uni) = here_polar_and_a_relay(&data);
    polar.import(&[record_line("PDC-1", "Arctic sea ice", "public")]);
    // A second key set, whose new signing key signs what follows.
    polar.ok(&["keys", "rotate"]);
    polar.import(&[record_line("PDC-2", "Antarctic sea ice", "public")]);
    for node in [&uni, &here] {
        let reports = node.sync_now();
        assert_eq!(reports["polar"]["ok"], true, "{}: {reports:?}", node.name);
    }
    let both = BTreeSet::from(["polar/PDC-1".to_owned(), "polar/PDC-2".to_owned()]);
    assert_eq!(searched(&here, "sea ice"), both);

    let listen = here.catalog.unwrap().to_string();
    assert!(here.stop());
    let index = strip_key_set_signatures(&data, "polar", 2);
    let (clean, report) = fsck_once_the_store_is_free(&here);
    assert!(!clean, "fsck passed a key set without signatures");
    let finding = &report["findings"][0];
    assert_eq!(
        report["findings"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    assert_eq!(
        (&finding["origin"], &finding["log_index"]),
        (&"polar".into(), &index.into())
    );
    let message = finding["message"].as_str().unwrap();
    assert!(message.contains("fetched again from a peer"), "{message}");

    let here = restart(&data, "here", &listen);
    let status = here.peers_status();
    let why = status["polar"]["keys_unverified"].as_str().unwrap();
    assert!(!why.is_empty(), "polar is not held back: {status:?}");
    // A record here has not pulled yet, which uni relays.
    polar.import(&[record_line("PDC-3", "Sea ice in the Ross Sea", "public")]);
    assert_eq!(uni.sync_now()["polar"]["ok"], true);
    assert!(held(&here, "polar", "PDC-3").await.is_none());

    // One round: the entry comes from uni, then polar's log is pulled on.
    let reports = here.sync_now();
    assert_eq!(reports["uni"]["ok"], true, "{reports:?}");
    let status = here.peers_status();
    assert_eq!(status["polar"]["keys_unverified"], "", "{status:?}");
    assert_eq!(status["polar"]["stale"], false, "{status:?}");
    assert_eq!(status["uni"]["rejected"], 0, "{status:?}");
    assert!(held(&here, "polar", "PDC-3").await.is_some());
    let all = ["polar/PDC-1", "polar/PDC-2", "polar/PDC-3"].map(String::from);
    assert_eq!(searched(&here, "sea ice"), BTreeSet::from(all));

    polar.import(&[record_line("PDC-4", "Sea ice in the Weddell Sea", "public")]);
    let reports = here.sync_now();
    assert_eq!(reports["polar"]["ok"], true, "{reports:?}");
    assert!(held(&here, "polar", "PDC-4").await.is_some());

    let mut here = here;
    assert!(here.stop());
    let (clean, report) = fsck_once_the_store_is_free(&here);
    assert!(clean, "{report}");
}

/// `meridian fsck --json` on the stopped `node`, once this process has let
/// go of its store (the lock outlives the store's drop by a moment): clean
/// or not, and the report.
fn fsck_once_the_store_is_free(node: &TestNode) -> (bool, serde_json::Value) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = node.run(&["fsck", "--json"]);
        match serde_json::from_slice(&out.stdout) {
            Ok(report) => return (out.status.success(), report),
            Err(_) if std::time::Instant::now() < deadline => {
                eprintln!("fsck: {}", String::from_utf8_lossy(&out.stderr));
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => panic!(
                "fsck ({e}): {} {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_message_is_refused_and_the_node_keeps_serving() {
    let polar = TestNode::start("polar");
    let uni = TestNode::start("uni");
    polar.trust(&uni, &[]);
    polar.import(&[record_line("PDC-1", "Arctic sea ice", "public")]);
    let limit = 16 * 1024 * 1024;

    let mut catalog = CatalogClient::new(anonymous_channel(&polar).await);
    let refused = catalog
        .search(SearchRequest {
            query: "x".repeat(limit + 1),
            ..SearchRequest::default()
        })
        .await
        .expect_err("oversized search");
    assert!(
        matches!(refused.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{refused}"
    );

    // The same from a pinned peer on the Federation service.
    let mut federation = FederationClient::new(peer_channel(&uni, &polar).await);
    let refused = federation
        .hint(meridian_proto::HintRequest {
            origin: "y".repeat(limit + 1),
            size: 1,
        })
        .await
        .expect_err("oversized hint");
    assert!(
        matches!(refused.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{refused}"
    );

    // The node still answers, on the same connection and on a new one
    // (indexing is asynchronous: the record becomes searchable shortly).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let answer = catalog
            .search(SearchRequest {
                query: "sea ice".into(),
                ..SearchRequest::default()
            })
            .await
            .expect("search after the refusal")
            .into_inner();
        if answer.hits.len() == 1 || std::time::Instant::now() > deadline {
            assert_eq!(answer.hits.len(), 1);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    federation
        .get_node_info(NodeInfoRequest {})
        .await
        .expect("federation after the refusal");
    let mut fresh = CatalogClient::new(anonymous_channel(&polar).await);
    fresh
        .search(SearchRequest::default())
        .await
        .expect("new connection");
}

/// A record line with its own discipline and license, so facet counts show
/// whether it was counted.
fn distinct_line(id: &str, title: &str, visibility: &str, discipline: &str) -> String {
    let mut value: serde_json::Value =
        serde_json::from_str(&record_line(id, title, visibility)).unwrap();
    value["disciplines"] = serde_json::json!([discipline]);
    value["keywords"] = serde_json::json!([discipline]);
    value.to_string()
}

fn facet_values(answer: &SearchResponse, name: &str) -> BTreeSet<String> {
    answer
        .facets
        .iter()
        .filter(|f| f.name == name)
        .flat_map(|f| f.values.iter().map(|v| v.value.clone()))
        .collect()
}

async fn peer_search(from: &TestNode, to: &TestNode, query: &str) -> SearchResponse {
    let mut client = CatalogClient::new(peer_channel(from, to).await);
    client
        .search(SearchRequest {
            query: query.into(),
            facets: true,
            limit: 100,
            ..SearchRequest::default()
        })
        .await
        .expect("search")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_gets_none_of_the_records_its_groups_may_not_see() {
    let polar = TestNode::start("polar");
    let member = TestNode::start("uni");
    let outsider = TestNode::start("genomics");
    polar.trust(&member, &["polar-consortium"]);
    polar.trust(&outsider, &["other-consortium"]);
    polar.import(&[
        distinct_line("PDC-open", "Arctic sea ice", "public", "oceanography"),
        distinct_line("PDC-fed", "Dome A ice core", "federation", "paleoclimate"),
        distinct_line(
            "PDC-grp",
            "Consortium glacier survey",
            "groups",
            "glaciology",
        ),
        distinct_line(
            "PDC-priv",
            "Unpublished borehole logs",
            "private",
            "geothermics",
        ),
    ]);
    eventually("records searchable at polar", || {
        searched(&polar, "").len() == 4
    });

    // Pull: what a peer may not see arrives as two digests, nothing more.
    let (ids, redacted, bytes) = pulled(&outsider, &polar, "polar").await;
    assert_eq!(ids, BTreeSet::from(["PDC-open".into(), "PDC-fed".into()]));
    assert_eq!(redacted, 2);
    for secret in [
        "PDC-grp",
        "Consortium glacier",
        "glaciology",
        "PDC-priv",
        "borehole",
        "geothermics",
    ] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "`{secret}` leaked in the pull stream"
        );
    }
    let (ids, redacted, _) = pulled(&member, &polar, "polar").await;
    assert_eq!(
        ids,
        BTreeSet::from(["PDC-open".into(), "PDC-fed".into(), "PDC-grp".into()])
    );
    assert_eq!(redacted, 1, "PRIVATE never leaves the node");

    // Search: neither hits nor totals nor facet counts show them.
    let answer = peer_search(&outsider, &polar, "").await;
    let hits: BTreeSet<String> = answer.hits.iter().map(|h| h.id.clone()).collect();
    assert_eq!(hits, BTreeSet::from(["PDC-open".into(), "PDC-fed".into()]));
    assert_eq!(answer.total, 2);
    assert_eq!(
        facet_values(&answer, "discipline"),
        BTreeSet::from(["oceanography".into(), "paleoclimate".into()])
    );
    for facet in ["discipline", "origin", "access", "license", "year"] {
        assert_eq!(facet_total(&answer, facet), 2, "facet {facet}: {answer:?}");
    }
    for query in ["glacier", "borehole", "keyword:glaciology", "PDC-grp"] {
        let answer = peer_search(&outsider, &polar, query).await;
        assert_eq!(answer.total, 0, "{query}: {answer:?}");
        assert!(answer.hits.is_empty(), "{query}");
        assert_eq!(facet_total(&answer, "discipline"), 0, "{query}");
    }

    let answer = peer_search(&member, &polar, "").await;
    assert_eq!(answer.total, 3);
    assert!(facet_values(&answer, "discipline").contains("glaciology"));
    assert!(!facet_values(&answer, "discipline").contains("geothermics"));
    assert_eq!(facet_total(&answer, "origin"), 3);
}
