//! The Python client of `examples/python/` against a live node: grpcio over
//! standard TLS with the certificate `meridian keys show --cert` prints,
//! and a record's signature checked in Python (PyNaCl) against its
//! origin's key, needing nothing from Meridian but the bytes.
//!
//! `.ci/run` installs the client's requirements; without them and without
//! `CI` set, the tests are skipped with a note.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use meridian_testkit::harness::{record_line, TestNode};

use crate::support::available;

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python")
}

/// Whether Python has the client's requirements.
fn requirements_installed() -> bool {
    available(
        "the Python client's requirements (examples/python/requirements.txt)",
        Command::new("python3").args(["-c", "import grpc, grpc_tools, nacl, google.protobuf"]),
    )
}

/// A node serving one PUBLIC and one PRIVATE record, and the PEM file a
/// standard client trusts.
fn node_with_holdings() -> (TestNode, PathBuf) {
    let node = TestNode::start("polar");
    node.import(&[
        record_line("ice-1", "Arctic sea ice thickness", "public"),
        record_line("ice-2", "Arctic sea ice drafts under embargo", "private"),
    ]);
    let pem = node.ok(&["keys", "show", "--cert"]);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let path = node.data_dir().join("trusted.pem");
    std::fs::write(&path, pem).unwrap();
    (node, path)
}

fn client(node: &TestNode, cacert: &Path, args: &[&str]) -> Output {
    let port = node.catalog.expect("a catalog listener").port();
    Command::new("python3")
        .arg(client_dir().join("meridian_client.py"))
        .arg("--address")
        .arg(format!("localhost:{port}"))
        .arg("--cacert")
        .arg(cacert)
        .args(args)
        .output()
        .expect("python3 runs")
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the client prints JSON")
}

#[test]
fn python_searches_over_standard_tls_and_sees_public_records_only() {
    if !requirements_installed() {
        return;
    }
    let (node, cacert) = node_with_holdings();
    let answer = json_of(&client(&node, &cacert, &["search", "sea ice", "--facets"]));
    let ids: Vec<&str> = answer["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|hit| hit["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ice-1"], "{answer}");
    assert_eq!(answer["hits"][0]["verified"], true);
    assert_eq!(answer["total"], "1", "64-bit counts are strings in JSON");
    assert!(answer["facets"].as_array().is_some_and(|f| !f.is_empty()));

    // A certificate the node does not hold is refused as any TLS client
    // refuses it: the client's trust is real.
    let other = TestNode::start("other");
    let out = client(
        &node,
        &other.data_dir().join("public.crt"),
        &["search", "ice"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("UNAVAILABLE"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn python_verifies_the_origin_signature_and_refuses_a_wrong_key_or_a_changed_byte() {
    if !requirements_installed() {
        return;
    }
    let (node, cacert) = node_with_holdings();
    let keys: serde_json::Value =
        serde_json::from_str(&node.ok(&["keys", "show", "--json"])).unwrap();
    let public_key = keys["public_key"].as_str().unwrap();

    let verified = json_of(&client(
        &node,
        &cacert,
        &["verify", "--id", "ice-1", "--public-key", public_key],
    ));
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["origin"], "polar");
    // Python derives the same key id as the node.
    assert_eq!(verified["keyId"], keys["key_id"]);
    assert_eq!(verified["record"]["title"], "Arctic sea ice thickness");

    // Another node's key: not the origin's signature.
    let other = TestNode::start("other");
    let other_keys: serde_json::Value =
        serde_json::from_str(&other.ok(&["keys", "show", "--json"])).unwrap();
    let wrong = other_keys["public_key"].as_str().unwrap();
    let out = client(
        &node,
        &cacert,
        &["verify", "--id", "ice-1", "--public-key", wrong],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not verified"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The private record does not exist for an anonymous caller.
    let out = client(
        &node,
        &cacert,
        &["verify", "--id", "ice-2", "--public-key", public_key],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NOT_FOUND"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // One changed byte of the signed payload, or a changed record beside
    // an intact envelope, fails verification in Python.
    let port = node.catalog.unwrap().port();
    let script = format!(
        r#"
import sys
sys.path.insert(0, {dir:?})
import base64, meridian_client as m
m.generate_stubs()
channel = m.connect("localhost:{port}", {cacert:?})
key = base64.b64decode({public_key:?})
view, entry = m.fetch_and_verify(channel, "", "ice-1", key)
tampered = type(view.envelope)()
tampered.CopyFrom(view.envelope)
payload = bytearray(tampered.payload)
payload[len(payload) // 2] ^= 1
tampered.payload = bytes(payload)
try:
    m.verify_envelope(tampered, key)
    sys.exit("a changed payload verified")
except m.VerificationError as e:
    print("refused:", e)
"#,
        dir = client_dir().display().to_string(),
        cacert = cacert.display().to_string(),
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("does not verify"));
}
