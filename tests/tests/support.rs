//! What several suites share.

use std::collections::BTreeSet;
use std::process::Command;

use meridian_proto::federation_client::FederationClient;
use meridian_proto::{log_entry, pull_item, LogEntry, PullRequest};
use meridian_testkit::harness::{meridian_bin, peer_channel, without_meridian_env, TestNode};
use prost::Message;

/// `meridian init` of node `name` in `data` on a free port, with `extra`
/// arguments (root key files, thresholds); panics with its stderr.
pub fn init_node(name: &str, data: &std::path::Path, extra: &[&str]) {
    let out = without_meridian_env(&mut Command::new(meridian_bin()))
        .args(["init", "--node-id", name, "--listen", "127.0.0.1:0"])
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Imports `lines` at `node` and returns its log size afterwards.
pub fn import_at(node: &TestNode, lines: &[String]) -> u64 {
    let out = node.run_with_stdin(
        &["holdings", "import", "-", "--json"],
        Some(&lines.join("\n")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("import json");
    summary["log_size"].as_u64().expect("log_size")
}

/// `keys status --json` (of `origin`, or of the node itself).
pub fn keys_status(node: &TestNode, origin: Option<&str>) -> serde_json::Value {
    let mut args = vec!["keys", "status", "--json"];
    if let Some(origin) = origin {
        args.extend(["--origin", origin]);
    }
    serde_json::from_str(&node.ok(&args)).expect("keys status: JSON")
}

/// Whether `tool` runs (`probe` exits 0). Without it a test is skipped with
/// a note, except under `CI`, where `.ci/run` installs every tool: there a
/// missing tool fails the test.
pub fn available(tool: &str, probe: &mut Command) -> bool {
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

/// `origin/id` of each hit `meridian search` returns at `node`, as its
/// operator sees them (the local index, up to 1000).
pub fn searched(node: &TestNode, query: &str) -> BTreeSet<String> {
    let out = node.ok(&["search", query, "--json", "--limit", "1000"]);
    let answer: serde_json::Value = serde_json::from_str(&out).expect("search json");
    answer["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|hit| {
            format!(
                "{}/{}",
                hit["origin"].as_str().unwrap(),
                hit["id"].as_str().unwrap()
            )
        })
        .collect()
}

/// The sum of the counts of facet `name` in `answer`: how many records the
/// facet counted, whatever their values.
pub fn facet_total(answer: &meridian_proto::SearchResponse, name: &str) -> u64 {
    answer
        .facets
        .iter()
        .filter(|f| f.name == name)
        .flat_map(|f| f.values.iter().map(|v| v.count))
        .sum()
}

/// What `pull` of `origin` from `to` streams to `from`: the record ids of
/// the entries, the number of redacted items, and every byte sent.
pub async fn pulled(
    from: &TestNode,
    to: &TestNode,
    origin: &str,
) -> (BTreeSet<String>, usize, Vec<u8>) {
    let mut client = FederationClient::new(peer_channel(from, to).await);
    let mut stream = client
        .pull(PullRequest {
            origin: origin.into(),
            after_index: 0,
            max_batch: 0,
        })
        .await
        .expect("pull")
        .into_inner();
    let (mut ids, mut redacted, mut bytes) = (BTreeSet::new(), 0, Vec::new());
    let mut first = true;
    while let Some(item) = stream.message().await.expect("pull item") {
        bytes.extend(item.encode_to_vec());
        match item.item.expect("item") {
            pull_item::Item::Checkpoint(_) => assert!(first, "checkpoint first"),
            pull_item::Item::Entry(envelope) => {
                let entry = LogEntry::decode(envelope.payload.as_slice()).unwrap();
                if let Some(log_entry::Body::Record(record)) = entry.body {
                    ids.insert(record.id);
                }
            }
            pull_item::Item::Redacted(_) => redacted += 1,
            // Key sets are public; they carry no record.
            pull_item::Item::Proof(_) | pull_item::Item::KeySet(_) => {}
        }
        first = false;
    }
    (ids, redacted, bytes)
}
