//! What several suites share.

use std::collections::BTreeSet;
use std::process::Command;

use meridian_testkit::harness::TestNode;

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
