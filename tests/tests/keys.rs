//! Operators' keys with real processes: an origin whose root key lives
//! outside its data directory rotates its signing key between two imports;
//! a replica keeps pulling with no re-pinning, and every record it holds
//! verifies under the key valid at its log position, before and after both
//! nodes restart. And the compromise drill: a leaked signing key, forged
//! records replicated, the key revoked from the first forged index, the
//! forged records quarantined at every peer, the genuine ones re-signed.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;

use meridian_proto::catalog_client::CatalogClient;
use meridian_proto::SearchRequest;
use meridian_testkit::harness::{
    anonymous_channel, held, meridian_bin, peer_channel, record_line, TestNode,
};

use crate::support::{import_at, init_node, keys_status, searched};

/// `meridian init` of node `polar` in `data`, its root key written to
/// `root_key` (outside the data directory).
fn init_polar(data: &std::path::Path, root_key: &std::path::Path) {
    init_node("polar", data, &["--root-key", root_key.to_str().unwrap()]);
}

/// The key id that verified each of `origin`'s records held at `node`
/// (operator view: `GetRecord` verifies the stored envelope again), by id.
async fn verified_keys(node: &TestNode, origin: &str, ids: &[String]) -> BTreeMap<String, String> {
    let mut admin = meridian_server::admin_socket::connect(node.data_dir())
        .await
        .expect("admin socket");
    let mut keys = BTreeMap::new();
    for id in ids {
        let view = admin
            .get_record(meridian_proto::GetRecordRequest {
                origin: origin.into(),
                id: id.clone(),
            })
            .await
            .unwrap_or_else(|status| panic!("{origin}/{id} at {}: {status}", node.name))
            .into_inner();
        assert_eq!(view.record.expect("record").id, *id);
        keys.insert(id.clone(), view.verified_key_id);
    }
    keys
}

fn lines(ids: &[String]) -> Vec<String> {
    ids.iter()
        .map(|id| record_line(id, &format!("Ice core {id}"), "public"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_follows_a_signing_key_rotation_with_no_re_pinning() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("polar");
    let offline = tmp.path().join("offline");
    std::fs::create_dir(&offline).unwrap();
    let root_key = offline.join("polar-root.key");
    init_polar(&data, &root_key);
    // The root went where the operator said, private; not into the data directory.
    let mode = std::fs::metadata(&root_key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(!data.join("root.key").exists());

    let mut polar = TestNode::start_at(meridian_bin(), &data, "polar", &[]).unwrap();
    let mut uni = TestNode::start("uni");
    polar.trust(&uni, &[]);
    uni.trust(&polar, &[]);

    let first: Vec<String> = (1..=3).map(|i| format!("PDC-{i}")).collect();
    polar.import(&lines(&first));
    assert_eq!(uni.sync_now()["polar"]["ok"], true);

    let before = keys_status(&polar, None);
    let old_key = before["signing_key"].as_str().unwrap().to_owned();
    assert_eq!(before["sets"].as_array().unwrap().len(), 1);
    assert_eq!(before["stale"], false);

    // Without the root at hand the rotation is refused, and says what to pass.
    let refused = polar.run(&["keys", "rotate"]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("--root-key"), "{message}");

    let root_arg = root_key.to_str().unwrap();
    let rotated: serde_json::Value = serde_json::from_str(&polar.ok(&[
        "keys",
        "rotate",
        "--root-key",
        root_arg,
        "--expires-days",
        "90",
        "--json",
    ]))
    .unwrap();
    let sets = rotated["sets"].as_array().unwrap();
    assert_eq!(sets.len(), 2, "{rotated}");
    let new_key = rotated["signing_key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, old_key);
    // Set 1's signing key is retired at the rotation's position (entry 5:
    // the first set, the audience (polar pins uni), three records, then
    // set 2).
    assert_eq!(sets[0]["retired_keys"][0], old_key.as_str());
    assert_eq!(sets[0]["retired_at"], 5);
    assert_eq!(sets[1]["signing_keys"][0], new_key.as_str());
    assert_eq!(sets[1]["root_keys"], sets[0]["root_keys"]);
    // Audited.
    let changes = keys_status(&polar, None)["changes"].clone();
    let audited = changes[0].as_str().unwrap_or_default();
    assert!(
        audited.contains("keys-rotate") && audited.contains(&old_key) && audited.contains(&new_key),
        "{changes}"
    );
    // `keys show` names the key records verify under, and the root peers pin.
    let shown: serde_json::Value =
        serde_json::from_str(&polar.ok(&["keys", "show", "--json"])).unwrap();
    assert_eq!(shown["key_id"], new_key.as_str());
    assert_eq!(shown["root_key_id"], sets[0]["root_keys"][0]);

    let second: Vec<String> = (4..=6).map(|i| format!("PDC-{i}")).collect();
    polar.import(&lines(&second));
    let reports = uni.sync_now();
    assert_eq!(reports["polar"]["ok"], true, "{reports:?}");

    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    let check = |keys: BTreeMap<String, String>| {
        for id in &first {
            assert_eq!(keys[id], old_key, "{id} was signed before the rotation");
        }
        for id in &second {
            assert_eq!(keys[id], new_key, "{id} was signed after the rotation");
        }
    };
    check(verified_keys(&uni, "polar", &all).await);
    let seen = keys_status(&uni, Some("polar"));
    assert_eq!(seen["sets"].as_array().unwrap().len(), 2, "{seen}");
    assert_eq!(seen["stale"], false);
    let status = uni.peers_status();
    assert_eq!(status["polar"]["rejected"], 0, "{status:?}");
    assert_eq!(status["polar"]["stale"], false);

    // Both restart (the origin where the replica dials it): the new key is
    // the origin's, the replica's chain holds.
    let address = polar.catalog.unwrap().to_string();
    assert!(polar.stop());
    assert!(uni.stop());
    drop(polar);
    let polar = TestNode::start_at(
        meridian_bin(),
        &data,
        "polar",
        &[("MERIDIAN_LISTEN", address.as_str())],
    )
    .unwrap();
    uni.serve();
    check(verified_keys(&uni, "polar", &all).await);
    assert_eq!(keys_status(&polar, None)["signing_key"], new_key.as_str());
    let third = vec!["PDC-7".to_owned()];
    polar.import(&lines(&third));
    assert_eq!(uni.sync_now()["polar"]["ok"], true);
    let mut after: Vec<String> = all.clone();
    after.extend(third.iter().cloned());
    let keys = verified_keys(&uni, "polar", &after).await;
    assert_eq!(keys["PDC-7"], new_key);
    check(keys);
    assert_eq!(uni.peers_status()["polar"]["rejected"], 0);
}

/// Ids (`origin/id`) of the hits of `query` at `node` through `channel`
/// (an anonymous caller or a pinned peer), federation scope.
async fn hits(channel: tonic::transport::Channel, query: &str) -> BTreeSet<String> {
    let answer = CatalogClient::new(channel)
        .search(SearchRequest {
            query: query.into(),
            limit: 100,
            ..SearchRequest::default()
        })
        .await
        .expect("search")
        .into_inner();
    answer
        .hits
        .into_iter()
        .map(|hit| format!("{}/{}", hit.origin, hit.id))
        .collect()
}

/// Waits until `check` holds, for at most twenty seconds (the index
/// applies a commit asynchronously).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// The compromise drill of `docs/operations/keys.md`, scripted: the
/// signing key leaks; the thief, with the key and a shell on the origin's
/// host, appends forged records (a new one, and a forged version of a
/// genuine one) that the origin's process signs with the leaked key, as a
/// rogue origin process would; the operator, not yet aware, adds a genuine
/// record with the same key; a peer replicates all of it. The operator
/// revokes the key from the first forged index (with a new signing key,
/// one command, the root brought from offline): the origin and the peer
/// that already holds the forged entries quarantine them (not served,
/// not searched by anonymous callers, peers or the operator; counted in
/// `peers status` and `keys status`), and a peer that joins afterwards
/// never receives them. The operator deletes the forged record, puts the
/// genuine content back, and `keys resign` re-signs the genuine record the
/// leaked key signed; the federation syncs on with no re-pinning and every
/// peer ends with the genuine records, each verified, and nothing forged.
/// When the leak turns out to be older, the key is revoked again from
/// further back, and the same steps end the quarantine of what it adds.
#[tokio::test(flavor = "multi_thread")]
async fn the_compromise_drill_revokes_quarantines_and_resigns() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("polar");
    let root_key = tmp.path().join("polar-root.key");
    init_polar(&data, &root_key);
    let polar = TestNode::start_at(meridian_bin(), &data, "polar", &[]).unwrap();
    let uni = TestNode::start("uni");
    let genomics = TestNode::start("genomics");
    polar.trust(&uni, &[]);
    uni.trust(&polar, &[]);
    polar.trust(&genomics, &[]);
    uni.trust(&genomics, &[]);
    genomics.trust(&uni, &[]);

    // Before the leak: three genuine records, replicated.
    let genuine = |id: &str| record_line(id, &format!("Ice core {id}"), "public");
    let before = import_at(&polar, &["PDC-1", "PDC-2", "PDC-3"].map(genuine));
    assert_eq!(uni.sync_now()["polar"]["ok"], true);

    // The signing key leaks.
    let leaked = meridian_core::sign::NodeKey::load(&data.join("identity.key")).unwrap();
    let leaked_id = leaked.key_id().to_string();
    assert_eq!(keys_status(&polar, None)["signing_key"], leaked_id.as_str());

    // The thief appends: a forged record and a forged version of PDC-2.
    let first_forged = before;
    import_at(
        &polar,
        &[
            record_line("FORGED-1", "Forged ice core", "public"),
            record_line("PDC-2", "Forged ice core PDC-2", "public"),
        ],
    );
    // The operator, unaware, adds a genuine record: the leaked key signs it too.
    import_at(&polar, &[genuine("PDC-4")]);
    assert_eq!(uni.sync_now()["polar"]["ok"], true);
    let signed = verified_keys(&uni, "polar", &["FORGED-1".into(), "PDC-4".into()]).await;
    assert!(signed.values().all(|key| *key == leaked_id), "{signed:?}");
    assert_eq!(
        hits(anonymous_channel(&uni).await, "forged").await,
        set(&["polar/FORGED-1", "polar/PDC-2"]),
        "the peer serves the forgeries before the revocation"
    );

    // Revocation refused without the root, and for a later index than the
    // key's retirement would allow: it only moves validity back.
    let refused = polar.run(&["keys", "revoke", &leaked_id, "--from-index", "4"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--root-key"));
    let root_arg = root_key.to_str().unwrap();
    let too_late = polar.run(&[
        "keys",
        "revoke",
        &leaked_id,
        "--from-index",
        "999",
        "--root-key",
        root_arg,
    ]);
    assert!(!too_late.status.success());
    let message = String::from_utf8_lossy(&too_late.stderr);
    assert!(
        message.contains("only moves a key's validity back"),
        "{message}"
    );

    // The operator revokes the leaked key from the first forged index.
    let from = first_forged.to_string();
    let revoked: serde_json::Value = serde_json::from_str(&polar.ok(&[
        "keys",
        "revoke",
        &leaked_id,
        "--from-index",
        &from,
        "--reason",
        "identity.key leaked",
        "--root-key",
        root_arg,
        "--json",
    ]))
    .unwrap();
    let new_key = revoked["signing_key"].as_str().unwrap().to_owned();
    assert_ne!(
        new_key, leaked_id,
        "a new signing key replaces the revoked one"
    );
    assert_eq!(revoked["revocations"][0]["key_id"], leaked_id.as_str());
    assert_eq!(revoked["revocations"][0]["from_index"], first_forged);
    assert_eq!(revoked["revocations"][0]["reason"], "identity.key leaked");
    // FORGED-1, the forged PDC-2 and the genuine PDC-4.
    assert_eq!(revoked["quarantined"], 3, "{revoked}");
    assert!(keys_status(&polar, None)["changes"]
        .to_string()
        .contains("keys-revoke"));

    // The origin quarantines them itself: not read, not searched.
    for id in ["FORGED-1", "PDC-2", "PDC-4"] {
        assert!(held(&polar, "polar", id).await.is_none(), "{id} at polar");
    }
    assert!(held(&polar, "polar", "PDC-1").await.is_some());
    let origin = &polar;
    eventually("the origin's index drops them", || async move {
        searched(origin, "ice").is_disjoint(&set(&["polar/FORGED-1", "polar/PDC-2", "polar/PDC-4"]))
    })
    .await;
    assert_eq!(
        hits(anonymous_channel(&polar).await, "ice").await,
        set(&["polar/PDC-1", "polar/PDC-3"])
    );

    // The peer that already indexed the forged entries drops them once it
    // pulls the revoking set.
    assert_eq!(uni.sync_now()["polar"]["ok"], true);
    for id in ["FORGED-1", "PDC-2", "PDC-4"] {
        assert!(held(&uni, "polar", id).await.is_none(), "{id} at uni");
    }
    let status = uni.peers_status();
    assert_eq!(status["polar"]["quarantined"], 3, "{status:?}");
    assert_eq!(status["polar"]["rejected"], 0, "{status:?}");
    let seen = keys_status(&uni, Some("polar"));
    assert_eq!(seen["quarantined"], 3, "{seen}");
    assert_eq!(seen["revocations"][0]["from_index"], first_forged);
    let replica = &uni;
    eventually("the peer's index drops them", || async move {
        hits(anonymous_channel(replica).await, "forged")
            .await
            .is_empty()
    })
    .await;
    assert_eq!(searched(&uni, "forged"), BTreeSet::new());
    assert_eq!(
        hits(anonymous_channel(&uni).await, "ice").await,
        set(&["polar/PDC-1", "polar/PDC-3"])
    );
    // A peer searching it finds none of them either.
    assert_eq!(
        hits(peer_channel(&genomics, &uni).await, "ice").await,
        set(&["polar/PDC-1", "polar/PDC-3"])
    );
    let metrics = crate::metrics::scrape(&uni);
    assert_eq!(
        crate::metrics::value(&metrics, "meridian_keys_quarantined_records"),
        Some(3.0),
        "{metrics}"
    );

    // A peer that joins now never receives them: they are served as digests.
    genomics.trust(&polar, &[]);
    assert_eq!(genomics.sync_now()["polar"]["ok"], true);
    for id in ["FORGED-1", "PDC-2", "PDC-4"] {
        assert!(
            held(&genomics, "polar", id).await.is_none(),
            "{id} at genomics"
        );
    }
    assert!(held(&genomics, "polar", "PDC-1").await.is_some());
    assert_eq!(searched(&genomics, "forged"), BTreeSet::new());

    // The operator removes what the thief wrote, and puts PDC-2 back.
    polar.ok(&["holdings", "rm", "FORGED-1", "--yes"]);
    let put = polar.run_with_stdin(&["holdings", "put"], Some(&genuine("PDC-2")));
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    // What is left is the genuine record the leaked key signed.
    let dry: serde_json::Value =
        serde_json::from_str(&polar.ok(&["keys", "resign", "--dry-run", "--json"])).unwrap();
    assert_eq!(dry["ids"], serde_json::json!(["PDC-4"]), "{dry}");
    let resigned: serde_json::Value =
        serde_json::from_str(&polar.ok(&["keys", "resign", "--json"])).unwrap();
    assert_eq!(resigned["resigned"], 1, "{resigned}");
    let again: serde_json::Value =
        serde_json::from_str(&polar.ok(&["keys", "resign", "--json"])).unwrap();
    assert_eq!(again["resigned"], 0, "idempotent: {again}");
    assert_eq!(keys_status(&polar, None)["quarantined"], 0);

    // The federation syncs on, no re-pinning: every peer ends with the
    // genuine records, verified, and nothing forged.
    for peer in [&uni, &genomics] {
        let reports = peer.sync_now();
        assert_eq!(reports["polar"]["ok"], true, "{reports:?}");
        let all: Vec<String> = (1..=4).map(|i| format!("PDC-{i}")).collect();
        let keys = verified_keys(peer, "polar", &all).await;
        assert_eq!(
            keys["PDC-1"], leaked_id,
            "signed before the leak: still valid"
        );
        assert_eq!(keys["PDC-3"], leaked_id);
        assert_eq!(keys["PDC-2"], new_key);
        assert_eq!(keys["PDC-4"], new_key);
        let pdc2 = held(peer, "polar", "PDC-2").await.unwrap();
        assert_eq!(pdc2.title, "Ice core PDC-2", "the genuine content");
        assert!(held(peer, "polar", "FORGED-1").await.is_none());
        let status = peer.peers_status();
        assert_eq!(status["polar"]["quarantined"], 0, "{status:?}");
        assert_eq!(status["polar"]["rejected"], 0, "{status:?}");
        eventually("the genuine records are searchable", || async move {
            hits(anonymous_channel(peer).await, "ice").await
                == set(&["polar/PDC-1", "polar/PDC-2", "polar/PDC-3", "polar/PDC-4"])
        })
        .await;
        assert_eq!(searched(peer, "forged"), BTreeSet::new());
    }

    // Later the operator learns that the key leaked before PDC-3 was
    // signed: revoked again from further back, it quarantines PDC-3 at
    // the origin and at every peer, and `keys resign` brings it back
    // signed by the key in use.
    let pdc3 = first_forged - 1;
    let moved: serde_json::Value = serde_json::from_str(&polar.ok(&[
        "keys",
        "revoke",
        &leaked_id,
        "--from-index",
        &pdc3.to_string(),
        "--reason",
        "leaked before PDC-3",
        "--root-key",
        root_arg,
        "--json",
    ]))
    .unwrap();
    assert_eq!(moved["signing_key"], new_key.as_str(), "{moved}");
    assert_eq!(moved["revocations"][0]["from_index"], pdc3, "{moved}");
    assert_eq!(moved["quarantined"], 1, "{moved}");
    assert!(held(&polar, "polar", "PDC-3").await.is_none());
    for peer in [&uni, &genomics] {
        assert_eq!(peer.sync_now()["polar"]["ok"], true);
        assert!(held(peer, "polar", "PDC-3").await.is_none());
        let status = peer.peers_status();
        assert_eq!(status["polar"]["quarantined"], 1, "{status:?}");
        eventually("PDC-3 leaves search", || async move {
            hits(anonymous_channel(peer).await, "ice").await
                == set(&["polar/PDC-1", "polar/PDC-2", "polar/PDC-4"])
        })
        .await;
    }
    let resigned: serde_json::Value =
        serde_json::from_str(&polar.ok(&["keys", "resign", "--json"])).unwrap();
    assert_eq!(resigned["resigned"], 1, "{resigned}");
    for peer in [&uni, &genomics] {
        assert_eq!(peer.sync_now()["polar"]["ok"], true);
        let keys = verified_keys(peer, "polar", &["PDC-1".into(), "PDC-3".into()]).await;
        assert_eq!(keys["PDC-1"], leaked_id, "signed before both ranges");
        assert_eq!(keys["PDC-3"], new_key);
        eventually("PDC-3 is back", || async move {
            hits(anonymous_channel(peer).await, "ice").await
                == set(&["polar/PDC-1", "polar/PDC-2", "polar/PDC-3", "polar/PDC-4"])
        })
        .await;
    }
}

/// A root of two of three keys kept apart: one key alone signs no key set;
/// two renew it; two hand over to a new root (which signs too); the old
/// root signs nothing after; a replica follows every step, and a peer that
/// pins the node only after the handover verifies the whole chain from the
/// root its invitation names.
#[tokio::test(flavor = "multi_thread")]
async fn a_two_of_three_root_hands_over_to_a_new_root_with_no_re_pinning() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("polar");
    let safe = tmp.path().join("safe");
    std::fs::create_dir(&safe).unwrap();
    let root = |name: &str| safe.join(name).to_str().unwrap().to_owned();
    let (r1, r2, r3, n1) = (
        root("r1.key"),
        root("r2.key"),
        root("r3.key"),
        root("n1.key"),
    );
    init_node(
        "polar",
        &data,
        &[
            "--root-key",
            &r1,
            "--root-key",
            &r2,
            "--root-key",
            &r3,
            "--root-threshold",
            "2",
        ],
    );
    let polar = TestNode::start_at(meridian_bin(), &data, "polar", &[]).unwrap();
    let uni = TestNode::start("uni");
    polar.trust(&uni, &[]);
    uni.trust(&polar, &[]);
    polar.import(&lines(&["PDC-1".to_owned()]));
    assert_eq!(uni.sync_now()["polar"]["ok"], true);
    let first = keys_status(&polar, None);
    assert_eq!(first["sets"][0]["root_threshold"], 2);
    assert_eq!(first["sets"][0]["root_keys"].as_array().unwrap().len(), 3);

    // One key of three signs nothing.
    let alone = polar.run(&["keys", "renew", "--root-key", &r1]);
    assert!(
        !alone.status.success(),
        "one root key of a 2-of-3 root renewed the set"
    );
    assert_eq!(
        keys_status(&polar, None)["sets"].as_array().unwrap().len(),
        1
    );
    // Two do.
    polar.ok(&["keys", "renew", "--root-key", &r1, "--root-key", &r3]);

    // The handover: two old keys and the new one sign set 3.
    let handed: serde_json::Value = serde_json::from_str(&polar.ok(&[
        "keys",
        "rotate-root",
        "--root-key",
        &r1,
        "--root-key",
        &r2,
        "--new-root-key",
        &n1,
        "--json",
    ]))
    .unwrap();
    let sets = handed["sets"].as_array().unwrap();
    assert_eq!(sets.len(), 3, "{handed}");
    assert_eq!(sets[2]["root_threshold"], 1);
    assert_eq!(sets[2]["root_keys"].as_array().unwrap().len(), 1);
    assert_ne!(sets[2]["root_keys"][0], sets[1]["root_keys"][0]);
    // The signing key stays.
    assert_eq!(sets[2]["signing_keys"], sets[1]["signing_keys"]);
    let mode = std::fs::metadata(&n1).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the new root key file is private");
    assert!(keys_status(&polar, None)["changes"]
        .to_string()
        .contains("keys-rotate-root"));

    // Adversarial: the old root signs nothing after the handover.
    let old = polar.run(&["keys", "renew", "--root-key", &r1, "--root-key", &r2]);
    assert!(!old.status.success());
    let message = String::from_utf8_lossy(&old.stderr);
    assert!(message.contains("not a root key"), "{message}");

    // The new root rotates the signing key; the replica follows it all.
    polar.ok(&["keys", "rotate", "--root-key", &n1]);
    polar.import(&lines(&["PDC-2".to_owned()]));
    assert_eq!(uni.sync_now()["polar"]["ok"], true);
    let seen = keys_status(&uni, Some("polar"));
    assert_eq!(seen["sets"].as_array().unwrap().len(), 4, "{seen}");
    assert_eq!(seen["sets"][2]["root_keys"], sets[2]["root_keys"]);
    assert!(held(&uni, "polar", "PDC-2").await.is_some());
    assert_eq!(uni.peers_status()["polar"]["rejected"], 0);

    // A peer that pins polar after the handover: its invitation names the
    // root of set 1, from which the whole chain verifies.
    let lab = TestNode::start("lab");
    lab.trust(&polar, &[]);
    polar.trust(&lab, &[]);
    assert_eq!(lab.sync_now()["polar"]["ok"], true);
    assert!(held(&lab, "polar", "PDC-1").await.is_some());
    assert!(held(&lab, "polar", "PDC-2").await.is_some());
    assert_eq!(
        keys_status(&lab, Some("polar"))["sets"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}
