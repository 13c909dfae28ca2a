//! TLS keys bound by the key set, with real processes: an origin lists a
//! new TLS key in key set N+1 (`keys rotate --tls`), serves it once its peer
//! holds that set (`keys switch-tls`), and both keep syncing, as server and
//! as client, with no re-pinning. Once a later set drops the old key, a
//! certificate with it is refused both ways, although the peer's operator
//! pinned exactly that key from the invitation.

use std::path::Path;

use meridian_proto::federation_client::FederationClient;
use meridian_testkit::harness::{held, meridian_bin, record_line, tls_key, TestNode};

use crate::support::{init_node, keys_status};

fn lines(ids: &[&str]) -> Vec<String> {
    ids.iter()
        .map(|id| record_line(id, &format!("Sea ice {id}"), "public"))
        .collect()
}

/// The TLS key ids the current key set of `status` lists.
fn current_tls_keys(status: &serde_json::Value) -> Vec<String> {
    let sets = status["sets"].as_array().expect("sets");
    sets.last().expect("a key set")["tls_keys"]
        .as_array()
        .expect("tls_keys")
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

/// Copies the TLS key and certificate in use of `data` into `to`.
fn keep_tls_files(data: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for name in ["tls.key", "tls.crt"] {
        std::fs::copy(data.join(name), to.join(name)).unwrap();
    }
}

/// Starts node `polar` in `data` on `listen`.
fn start_polar(data: &Path, listen: &str) -> TestNode {
    TestNode::start_at(
        meridian_bin(),
        data,
        "polar",
        &[("MERIDIAN_LISTEN", listen)],
    )
    .unwrap()
}

/// Whether a client presenting the certificate in `identity_dir` gets an
/// answer from `to`'s Federation service (it trusts `to`'s key as pinned).
async fn answered_as_peer(identity_dir: &Path, to: &TestNode) -> Result<(), String> {
    let identity = meridian_server::tls::TlsIdentity::load(identity_dir).expect("identity");
    let config = meridian_server::tls::client_config(&to.name, vec![tls_key(to)], Some(&identity))
        .expect("tls config");
    let addr = to.catalog.expect("running").to_string();
    let channel = meridian_server::tls::connect(&addr, config, std::time::Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?;
    FederationClient::new(channel)
        .get_node_info(meridian_proto::NodeInfoRequest {})
        .await
        .map(|_| ())
        .map_err(|status| status.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_key_rotation_is_a_signed_event_and_needs_no_re_pinning() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("polar");
    init_node("polar", &data, &[]);
    let mut polar = start_polar(&data, "127.0.0.1:0");
    let listen = polar.catalog.unwrap().to_string();
    let uni = TestNode::start("uni");
    polar.trust(&uni, &[]);
    uni.trust(&polar, &[]);
    polar.import(&lines(&["PDC-1", "PDC-2"]));
    uni.import(&lines(&["UNI-1"]));
    assert_eq!(uni.sync_now()["polar"]["ok"], true);
    assert_eq!(polar.sync_now()["uni"]["ok"], true);
    let old_files = tmp.path().join("old-tls");
    keep_tls_files(&data, &old_files);

    // uni's operator suspends polar for a while: uni neither pulls from
    // polar nor answers it, so it cannot learn of polar's next key yet.
    uni.ok(&["trust", "suspend", "polar"]);

    // Step one: key set 2 lists the next key beside the one in use, which
    // is still the one served.
    let before = keys_status(&polar, None);
    let old_key = before["tls_key"].as_str().unwrap().to_owned();
    assert_eq!(current_tls_keys(&before), vec![old_key.clone()]);
    let rotated: serde_json::Value =
        serde_json::from_str(&polar.ok(&["keys", "rotate", "--tls", "--json"])).unwrap();
    let new_key = rotated["tls_next"]
        .as_str()
        .expect("a next TLS key")
        .to_owned();
    assert_ne!(new_key, old_key);
    assert_eq!(rotated["tls_key"], old_key.as_str());
    assert_eq!(
        current_tls_keys(&rotated),
        vec![old_key.clone(), new_key.clone()]
    );
    // The signing key stays.
    assert_eq!(rotated["signing_key"], before["signing_key"]);
    // A second TLS rotation waits for the switch.
    let again = polar.run(&["keys", "rotate", "--tls"]);
    assert!(!again.status.success());
    let message = String::from_utf8_lossy(&again.stderr);
    assert!(message.contains("switch-tls"), "{message}");

    // Step two is refused while the peer does not hold set 2: it could not
    // dial polar after the switch.
    let early = polar.run(&["keys", "switch-tls"]);
    assert!(!early.status.success());
    let message = String::from_utf8_lossy(&early.stderr);
    assert!(
        message.contains("uni"),
        "the peer not ready is named: {message}"
    );
    assert_eq!(keys_status(&polar, None)["tls_key"], old_key.as_str());

    uni.ok(&["trust", "resume", "polar"]);
    assert_eq!(uni.sync_now()["polar"]["ok"], true);
    assert_eq!(
        current_tls_keys(&keys_status(&uni, Some("polar"))),
        vec![old_key.clone(), new_key.clone()]
    );
    let switched: serde_json::Value =
        serde_json::from_str(&polar.ok(&["keys", "switch-tls", "--json"])).unwrap();
    assert_eq!(switched["tls_key"], new_key.as_str());
    assert_eq!(switched["replaced"], old_key.as_str());
    assert_eq!(switched["ready"], serde_json::json!(["uni"]));
    let changes = keys_status(&polar, None)["changes"].to_string();
    assert!(
        changes.contains("keys-rotate-tls") && changes.contains("keys-switch-tls"),
        "audited: {changes}"
    );

    // Both ways, with the new certificate and no re-pinning: uni dials
    // polar (server side), polar dials uni (client side).
    polar.import(&lines(&["PDC-3"]));
    uni.import(&lines(&["UNI-2"]));
    let reports = uni.sync_now();
    assert_eq!(reports["polar"]["ok"], true, "{reports:?}");
    let reports = polar.sync_now();
    assert_eq!(reports["uni"]["ok"], true, "{reports:?}");
    assert!(held(&uni, "polar", "PDC-3").await.is_some());
    assert!(held(&polar, "uni", "UNI-2").await.is_some());
    // The old key is still listed (set 2): a client with it still passes.
    answered_as_peer(&old_files, &uni)
        .await
        .expect("the old key is still in polar's current set");

    // A renewal drops the old key from the set; uni learns it at its next
    // pull, after which a certificate with the old key is refused.
    let renewed = keys_status(&polar, None);
    assert_eq!(renewed["tls_next"], serde_json::Value::Null);
    polar.ok(&["keys", "renew"]);
    assert_eq!(
        current_tls_keys(&keys_status(&polar, None)),
        vec![new_key.clone()]
    );
    assert_eq!(uni.sync_now()["polar"]["ok"], true);
    assert_eq!(
        current_tls_keys(&keys_status(&uni, Some("polar"))),
        vec![new_key.clone()]
    );
    // Adversarial, client side: the old key (the one uni's operator pinned
    // from polar's invitation) no longer gets an answer.
    let refused = answered_as_peer(&old_files, &uni).await;
    assert!(
        refused.is_err(),
        "a certificate outside the key set was accepted"
    );

    // Adversarial, server side: polar's address answers with the old key
    // (a thief of it): uni refuses to pull from it and says why.
    assert!(polar.stop());
    drop(polar);
    let new_files = tmp.path().join("new-tls");
    keep_tls_files(&data, &new_files);
    keep_tls_files(&old_files, &data);
    let impostor = start_polar(&data, &listen);
    let reports = uni.sync_now();
    assert_eq!(reports["polar"]["ok"], false, "{reports:?}");
    let error = reports["polar"]["error"].to_string();
    assert!(
        error.contains("not polar") || error.contains("impostor"),
        "{error}"
    );
    drop(impostor);

    // The real key back: polar restarts with it and syncing resumes.
    keep_tls_files(&new_files, &data);
    let polar = start_polar(&data, &listen);
    assert_eq!(keys_status(&polar, None)["tls_key"], new_key.as_str());
    polar.import(&lines(&["PDC-4"]));
    assert_eq!(uni.sync_now()["polar"]["ok"], true);
    assert!(held(&uni, "polar", "PDC-4").await.is_some());
    assert_eq!(polar.sync_now()["uni"]["ok"], true);

    // uni's operator sees polar's key history as uni verified it.
    let shown: serde_json::Value =
        serde_json::from_str(&uni.ok(&["trust", "show", "polar", "--json"])).unwrap();
    let history: Vec<serde_json::Value> = shown["key_sets"]
        .as_array()
        .expect("key_sets")
        .iter()
        .map(|set| set["tls_keys"].clone())
        .collect();
    assert_eq!(
        history,
        vec![
            serde_json::json!([old_key]),
            serde_json::json!([old_key, new_key]),
            serde_json::json!([new_key]),
        ]
    );
    let text = uni.ok(&["trust", "show", "polar"]);
    assert!(
        text.contains("3 at log index") && text.contains("(current)"),
        "{text}"
    );
}
