//! Health tells the truth: the public listener is NOT_SERVING until the
//! index has caught up with the store, and never reports the Admin service.

use std::time::{Duration, Instant};

use meridian_testkit::harness::{anonymous_channel, record_line, TestNode};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

async fn status(node: &TestNode, service: &str) -> Result<ServingStatus, tonic::Status> {
    let mut client = HealthClient::new(anonymous_channel(node).await);
    let reply = client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await?;
    Ok(reply.into_inner().status())
}

#[tokio::test(flavor = "multi_thread")]
async fn health_is_serving_only_once_the_index_has_caught_up() {
    let mut node = TestNode::start("polar");
    let lines: Vec<String> = (0..20_000)
        .map(|i| record_line(&format!("PDC-{i}"), &format!("Ice core {i}"), "public"))
        .collect();
    node.import(&lines);
    node.stop();
    // Without its index the node re-derives it at start.
    std::fs::remove_dir_all(node.data_dir().join(meridian_core::node::INDEX_DIR)).unwrap();
    node.serve();

    assert_eq!(
        status(&node, "meridian.v1.Catalog").await.unwrap(),
        ServingStatus::NotServing,
        "20,000 records are not indexed yet"
    );
    assert_eq!(status(&node, "").await.unwrap(), ServingStatus::NotServing);
    let deadline = Instant::now() + Duration::from_secs(300);
    while status(&node, "").await.unwrap() != ServingStatus::Serving {
        assert!(Instant::now() < deadline, "never caught up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        status(&node, "meridian.v1.Catalog").await.unwrap(),
        ServingStatus::Serving
    );
    let behind: serde_json::Value = serde_json::from_str(&node.ok(&["status", "--json"])).unwrap();
    assert_eq!(behind["records"], 20_000);

    let out = node.run(&["health", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let health: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(health["healthy"], true);
    assert_eq!(health["index_behind"], 0);

    let err = status(&node, "meridian.v1.Admin").await.unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::NotFound,
        "the public listener knows no Admin service"
    );
}

/// `meridian health` says why a node is not healthy and exits 1: while its
/// index catches up, and when it does not run at all.
#[test]
fn the_health_command_exits_1_with_the_reason() {
    let mut node = TestNode::start("uni");
    let lines: Vec<String> = (0..20_000)
        .map(|i| record_line(&format!("UNI-{i}"), &format!("Cohort {i}"), "public"))
        .collect();
    node.import(&lines);
    node.stop();
    std::fs::remove_dir_all(node.data_dir().join(meridian_core::node::INDEX_DIR)).unwrap();
    node.serve();
    let out = node.run(&["health", "--json"]);
    let health: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        health["healthy"], false,
        "20,000 records are not indexed yet"
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        health["reason"]
            .as_str()
            .unwrap()
            .contains("entries behind"),
        "{health}"
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    while !node.run(&["health"]).status.success() {
        assert!(Instant::now() < deadline, "never healthy");
        std::thread::sleep(Duration::from_millis(200));
    }
    node.stop();
    let out = node.run(&["health", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let health: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(health["healthy"], false);
    assert!(
        health["reason"]
            .as_str()
            .unwrap()
            .contains("no node is running"),
        "{health}"
    );
}
