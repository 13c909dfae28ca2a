//! The OAI-PMH harvester end to end: one node harvests another's `/oai`
//! over HTTPS (real TLS, the provider's certificate given with
//! `--ca-cert`) through several resumption tokens, then incrementally after
//! records were changed, added and deleted at the provider; deletions
//! become signed tombstones. Sources are listed, shown and removed with
//! the CLI; bad settings and an unreachable provider are reported.

use std::collections::BTreeMap;

use meridian_testkit::harness::{record_line, TestNode};
use serde_json::Value;

fn json(node: &TestNode, args: &[&str]) -> Value {
    serde_json::from_str(&node.ok(args)).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// The harvested holdings: id → (title, version, deleted).
fn held(node: &TestNode) -> BTreeMap<String, (String, u64, bool)> {
    let list = json(node, &["holdings", "list", "--json", "--include-deleted"]);
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                (
                    r["title"].as_str().unwrap_or_default().to_owned(),
                    r["version"].as_u64().unwrap(),
                    r["deleted"].as_bool().unwrap_or(false),
                ),
            )
        })
        .collect()
}

fn run(node: &TestNode, name: &str) -> Value {
    let out = node.run(&["harvest", "run", name, "--json"]);
    assert!(
        out.status.success(),
        "harvest run: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn counts(status: &Value) -> [u64; 4] {
    ["added", "changed", "deleted", "rejected"].map(|k| status[k].as_u64().unwrap())
}

#[test]
fn a_node_harvests_another_nodes_oai_incrementally_with_tombstones() {
    let provider = TestNode::start_with("provider", &[("MERIDIAN_OAI__PAGE_SIZE", "3")]);
    let mut lines: Vec<String> = (1..=10)
        .map(|i| {
            record_line(
                &format!("P-{i}"),
                &format!("Glacier mass balance {i}"),
                "public",
            )
        })
        .collect();
    lines.push(record_line("S-1", "Private station log", "private"));
    provider.import(&lines);
    let url = format!(
        "https://localhost:{}/oai",
        provider.http.expect("http listener").port()
    );
    let ca = provider.data_dir().join("public.crt");

    let node = TestNode::start("harvester");
    let added = json(
        &node,
        &[
            "harvest",
            "add",
            "prov",
            &url,
            "--ca-cert",
            ca.to_str().unwrap(),
            "--every",
            "6h",
            "--json",
        ],
    );
    assert_eq!(added["prefix"], "oai_datacite");
    assert_eq!(added["every_secs"], 21_600);

    let status = run(&node, "prov");
    assert_eq!(counts(&status), [10, 0, 0, 0], "{status}");
    assert_eq!(
        status["pages"], 4,
        "pages of 3: the tokens were followed to the end"
    );
    assert_eq!(status["granularity"], "YYYY-MM-DDThh:mm:ssZ");
    assert!(!status["from"].as_str().unwrap().is_empty());
    let first = held(&node);
    assert_eq!(
        first.len(),
        10,
        "only PUBLIC records are harvested: {first:?}"
    );
    let id = |n: u32| format!("oai:provider:provider/P-{n}");
    assert_eq!(
        first[&id(4)],
        ("Glacier mass balance 4".to_owned(), 1, false)
    );

    // Nothing changed: nothing stored.
    let status = run(&node, "prov");
    assert_eq!(counts(&status), [0, 0, 0, 0], "{status}");

    // At the provider: one changed, one deleted, one added.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    provider.import(&[
        record_line("P-1", "Glacier mass balance 1, revised", "public"),
        record_line("P-11", "Glacier mass balance 11", "public"),
    ]);
    provider.ok(&["holdings", "rm", "P-2", "--yes"]);
    let status = run(&node, "prov");
    assert_eq!(counts(&status), [1, 1, 1, 0], "{status}");
    let second = held(&node);
    assert_eq!(second.len(), 11);
    assert_eq!(
        second[&id(1)],
        ("Glacier mass balance 1, revised".to_owned(), 2, false)
    );
    assert_eq!(second[&id(2)].1, 2);
    assert!(
        second[&id(2)].2,
        "a deletion at the provider is a tombstone here"
    );
    assert_eq!(second[&id(11)].1, 1);

    // Status and list say the same.
    let shown = json(&node, &["harvest", "status", "prov", "--json"]);
    assert_eq!(counts(&shown), [1, 1, 1, 0]);
    assert_eq!(shown["last_error"], "");
    assert!(!shown["next_run"].as_str().unwrap().is_empty());
    let text = node.ok(&["harvest", "status", "prov"]);
    assert!(text.contains("1 added, 1 changed"), "{text}");
    let listed = json(&node, &["harvest", "list", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    node.ok(&["harvest", "rm", "prov"]);
    assert_eq!(
        json(&node, &["harvest", "list", "--json"]),
        serde_json::json!([])
    );
    assert_eq!(held(&node).len(), 11, "the records stay");
}

#[test]
fn bad_sources_and_unreachable_providers_are_reported() {
    let node = TestNode::start("harvester");
    let out = node.run(&["harvest", "add", "x", "ftp://repo.example.org/oai"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("url"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = node.run(&[
        "harvest",
        "add",
        "x",
        "https://repo.example.org/oai",
        "--prefix",
        "marc21",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("prefix"));
    let out = node.run(&["harvest", "run", "nothing"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no harvest source `nothing`"));

    // A provider that is not there: the run fails, the error is kept.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    node.ok(&[
        "harvest",
        "add",
        "gone",
        &format!("http://127.0.0.1:{port}/oai"),
    ]);
    let out = node.run(&["harvest", "run", "gone"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot connect"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = json(&node, &["harvest", "status", "gone", "--json"]);
    assert!(
        shown["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{shown}"
    );
}

/// The third-party provider of `tests/fixtures/harvest/provider.py`
/// serving the records of `data`, stopped when dropped.
struct Provider {
    child: std::process::Child,
    url: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn provider(data: &std::path::Path, args: &[&str]) -> Option<Provider> {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    if !crate::support::available(
        "python3 with oaipmh 4.x",
        Command::new("python3").args(["-c", "import oaipmh.server"]),
    ) {
        return None;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/harvest/provider.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(data)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("provider said {line:?}"));
    Some(Provider {
        child,
        url: format!("http://127.0.0.1:{port}/oai"),
    })
}

/// A Dublin Core record as a repository writes it.
fn dc(id: u32, stamp: &str, title: &str) -> Value {
    serde_json::json!({
        "id": format!("oai:fixture.example.org:{id}"), "datestamp": stamp,
        "dc": {"title": [title], "creator": ["Ortega, Lucía"], "publisher": ["Fixture University"],
               "date": ["2019-00-00"], "type": ["Dataset"], "subject": ["hydrology"],
               "identifier": [format!("https://doi.org/10.5555/fixture.{id}")],
               "rights": ["CC-BY-4.0", "info:eu-repo/semantics/openAccess"]}
    })
}

fn write_data(path: &std::path::Path, records: &[Value]) {
    std::fs::write(path, serde_json::to_vec(records).unwrap()).unwrap();
}

#[test]
fn a_third_party_provider_is_harvested_through_503_bad_records_deletes_and_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("records.json");
    let mut records: Vec<Value> = (1..=12)
        .map(|i| dc(i, "2024-03-01", &format!("River gauge series {i}")))
        .collect();
    // No publisher: cannot be made valid; reported and skipped.
    let mut bad = dc(13, "2024-03-01", "Unpublished");
    bad["dc"].as_object_mut().unwrap().remove("publisher");
    records.push(bad);
    // Deleted before this node ever saw it: nothing to withdraw.
    records.push(serde_json::json!({"id": "oai:fixture.example.org:14", "datestamp": "2024-03-01", "deleted": true}));
    write_data(&data, &records);
    // The first two requests are answered 503 with Retry-After; every
    // ListRecords page takes 0.7 s, so the node can be killed mid-list.
    let Some(provider) = provider(&data, &["--busy", "2", "--slow", "0.7"]) else {
        return;
    };

    let mut node = TestNode::start("harvester");
    node.ok(&[
        "harvest",
        "add",
        "fixture",
        &provider.url,
        "--prefix",
        "oai_dc",
    ]);
    // Kill the node in the middle of the list (5 pages of 3).
    let runner = {
        let args: Vec<String> = ["harvest", "run", "fixture"].map(String::from).to_vec();
        let data_dir = node.data_dir().to_owned();
        std::thread::spawn(move || {
            let _ = std::process::Command::new(meridian_testkit::harness::meridian_bin())
                .args(&args)
                .arg("--data-dir")
                .arg(&data_dir)
                .output();
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let cut = loop {
        let shown = json(&node, &["harvest", "status", "fixture", "--json"]);
        if shown["pages"].as_u64().unwrap_or(0) >= 2 {
            break shown;
        }
        assert!(std::time::Instant::now() < deadline, "no progress: {shown}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    node.kill9();
    let _ = runner.join();
    // Killed mid-list: the run had started and not finished.
    assert_eq!(cut["interrupted"], true, "{cut}");
    assert!(cut["pages"].as_u64().unwrap_or(0) < 5, "{cut}");

    // Back up, the node resumes the run the kill cut short by itself.
    node.serve();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        let shown = json(&node, &["harvest", "status", "fixture", "--json"]);
        if shown["interrupted"] == false && shown["running"] == false {
            break shown;
        }
        assert!(std::time::Instant::now() < deadline, "not resumed: {shown}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // Counts carry over from the interrupted run; a page stored just before
    // the kill, and listed again, counts as unchanged.
    let [added, changed, deleted, rejected] = counts(&status);
    assert!((9..=12).contains(&added), "{status}");
    assert_eq!((changed, deleted, rejected), (0, 0, 1), "{status}");
    assert_eq!(status["interrupted"], false);
    assert_eq!(status["granularity"], "YYYY-MM-DD");
    assert!(
        status["rejections"][0]
            .as_str()
            .unwrap()
            .starts_with("oai:fixture.example.org:13: publisher"),
        "{status}"
    );
    let first = held(&node);
    assert_eq!(first.len(), 12);
    assert!(
        first
            .values()
            .all(|(_, version, deleted)| *version == 1 && !deleted),
        "none stored twice: {first:?}"
    );

    // At the provider: one changed, one deleted, one added, today.
    records[0] = dc(1, "now", "River gauge series 1, corrected");
    records[1] =
        serde_json::json!({"id": "oai:fixture.example.org:2", "datestamp": "now", "deleted": true});
    records.push(dc(15, "now", "River gauge series 15"));
    write_data(&data, &records);
    let status = run(&node, "fixture");
    assert_eq!(
        counts(&status),
        [1, 1, 1, 0],
        "only what changed is listed: {status}"
    );
    let second = held(&node);
    let id = |n: u32| format!("oai:fixture.example.org:{n}");
    assert_eq!(
        second[&id(1)],
        ("River gauge series 1, corrected".to_owned(), 2, false)
    );
    assert_eq!(
        (second[&id(2)].1, second[&id(2)].2),
        (2, true),
        "a tombstone"
    );
    assert_eq!(second[&id(15)].1, 1);
    let record = json(&node, &["holdings", "get", &id(15), "--json"]);
    let text = record.to_string();
    assert!(
        text.contains("10.5555/fixture.15") && text.contains("2019"),
        "{text}"
    );

    // A run that had to skip a record says so in its exit code.
    let mut bad = dc(16, "now", "Unpublished again");
    bad["dc"].as_object_mut().unwrap().remove("publisher");
    records.push(bad);
    write_data(&data, &records);
    let out = node.run(&["harvest", "run", "fixture", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a rejected record makes the run exit 1"
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(counts(&status), [0, 0, 0, 1], "{status}");
}
