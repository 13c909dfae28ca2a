//! The admin socket answers gRPC clients as they come: grpcurl and Python's
//! grpcio each send their own made-up `:authority` over a Unix socket (the
//! socket's path, or its percent-encoding), and the node serves them
//! without `-authority` or `grpc.default_authority`.
//!
//! grpcurl and grpcio are installed by `.ci/run`; where one is missing and
//! `CI` is not set, its test is skipped with a note.

use std::io::{Read, Write};
use std::process::Command;

use meridian_testkit::harness::TestNode;

/// Whether `tool` runs; with `CI` set, a missing tool fails the test.
pub(crate) fn available(tool: &str, probe: &mut Command) -> bool {
    let found = probe.output().is_ok_and(|out| out.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is not installed; .ci/run installs it"
        );
        eprintln!("skipped: {tool} is not installed");
    }
    found
}

#[test]
fn grpcurl_reaches_the_admin_socket_with_its_default_authority() {
    if !available("grpcurl", Command::new("grpcurl").arg("-version")) {
        return;
    }
    let node = TestNode::start("grpcurl-admin");
    let socket = node.data_dir().join("admin.sock");
    let out = Command::new("grpcurl")
        .args(["-plaintext", "-unix"])
        .arg(&socket)
        .arg("meridian.v1.Admin/Status")
        .output()
        .expect("grpcurl runs");
    assert!(
        out.status.success(),
        "grpcurl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["nodeId"], "grpcurl-admin");

    // Reflection and health go through the same filter.
    let out = Command::new("grpcurl")
        .args(["-plaintext", "-unix"])
        .arg(&socket)
        .arg("list")
        .output()
        .expect("grpcurl runs");
    let services = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(services.contains("meridian.v1.Admin"), "{services}");
    let out = Command::new("grpcurl")
        .args(["-plaintext", "-unix"])
        .arg(&socket)
        .arg("grpc.health.v1.Health/Check")
        .output()
        .expect("grpcurl runs");
    assert!(String::from_utf8_lossy(&out.stdout).contains("SERVING"));

    // An authority given explicitly works as before.
    let out = Command::new("grpcurl")
        .args(["-plaintext", "-unix", "-authority", "localhost"])
        .arg(&socket)
        .arg("meridian.v1.Admin/Status")
        .output()
        .expect("grpcurl runs");
    assert!(out.status.success());
}

/// Calls `Admin.Status` and `Admin.ListRecords` with grpcio on
/// `unix:PATH` (argv 1), without protobuf stubs, and checks the raw
/// responses name the node (argv 2) and the record (argv 3).
const GRPCIO_CLIENT: &str = r#"
import sys, grpc
socket, node, record = sys.argv[1:4]
channel = grpc.insecure_channel("unix:" + socket)
status = channel.unary_unary("/meridian.v1.Admin/Status")(b"", timeout=20)
assert node.encode() in status, status
listed = channel.unary_unary("/meridian.v1.Admin/ListRecords")(b"", timeout=20)
assert record.encode() in listed, listed
print("ok")
"#;

#[test]
fn grpcio_reaches_the_admin_socket_with_its_default_authority() {
    if !available(
        "python3 with grpcio",
        Command::new("python3").args(["-c", "import grpc"]),
    ) {
        return;
    }
    let node = TestNode::start("grpcio-admin");
    node.import(&[meridian_testkit::harness::record_line(
        "GRPCIO-1",
        "Read over the admin socket by grpcio",
        "private",
    )]);
    let out = Command::new("python3")
        .args(["-c", GRPCIO_CLIENT])
        .arg(node.data_dir().join("admin.sock"))
        .args(["grpcio-admin", "GRPCIO-1"])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "grpcio failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

/// A client that sends a malformed header block loses its connection; the
/// node goes on serving everyone else.
#[test]
fn a_malformed_header_block_closes_only_its_connection() {
    let node = TestNode::start("admin-malformed");
    let socket = node.data_dir().join("admin.sock");
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .unwrap();
    stream.write_all(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]).unwrap(); // SETTINGS
                                                               // HEADERS on stream 1: a table size update cut short.
    stream
        .write_all(&[0, 0, 1, 0x1, 0x5, 0, 0, 0, 1, 0x3f])
        .unwrap();
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    // The server's SETTINGS may have arrived; then the connection ended.
    assert!(received.len() < 1024, "{received:?}");

    let status: serde_json::Value = serde_json::from_str(&node.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["node_id"], "admin-malformed");
}
