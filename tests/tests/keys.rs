//! Operators' keys with real processes: an origin whose root key lives
//! outside its data directory rotates its signing key between two imports;
//! a replica keeps pulling with no re-pinning, and every record it holds
//! verifies under the key valid at its log position, before and after both
//! nodes restart.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use meridian_testkit::harness::{meridian_bin, record_line, without_meridian_env, TestNode};

/// `keys status --json` (of `origin`, or of the node itself).
fn keys_status(node: &TestNode, origin: Option<&str>) -> serde_json::Value {
    let mut args = vec!["keys", "status", "--json"];
    if let Some(origin) = origin {
        args.extend(["--origin", origin]);
    }
    serde_json::from_str(&node.ok(&args)).expect("keys status: JSON")
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
    let out = without_meridian_env(&mut Command::new(meridian_bin()))
        .args(["init", "--node-id", "polar", "--listen", "127.0.0.1:0"])
        .arg("--root-key")
        .arg(&root_key)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    // Set 1's signing key is retired at the rotation's position (entry 4:
    // the first set, three records, then set 2).
    assert_eq!(sets[0]["retired_keys"][0], old_key.as_str());
    assert_eq!(sets[0]["retired_at"], 4);
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
