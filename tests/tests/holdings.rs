//! A node's own holdings end to end: init, serve, import, read, delete,
//! restart, and `kill -9` in the middle of a large import.

use std::io::Write;
use std::time::Duration;

use meridian_proto::catalog_client::CatalogClient;
use meridian_proto::{GetRecordRequest, ImportChunk, ListRecordsRequest};
use meridian_testkit::harness::{record_line, TestNode};

fn listed_ids(node: &TestNode, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["holdings", "list", "--json"];
    args.extend_from_slice(extra);
    let records: Vec<serde_json::Value> =
        serde_json::from_str(&node.ok(&args)).expect("records: a JSON array");
    records
        .iter()
        .map(|value| value["id"].as_str().expect("id").to_owned())
        .collect()
}

#[test]
fn init_refuses_to_overwrite_and_keeps_the_key_private() {
    let mut node = TestNode::start("polar");
    node.stop();
    let out = node.run(&["init", "--node-id", "other", "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(node.data_dir().join("identity.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn import_reports_bad_lines_and_keeps_the_good_ones_across_restart() {
    let mut node = TestNode::start("polar");
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let lines = [
        record_line("PDC-1", "Arctic sea ice thickness", "public"),
        record_line("PDC-2", "Dome A ice core isotopes", "federation"),
        // line 3: no title
        r#"{"id":"PDC-3","creators":[{"name":"A"}],"publisher":"P","publication_year":2020,"resource_type":"Dataset"}"#.to_owned(),
        // line 4: unknown field
        record_line("PDC-4", "Snow depth", "public").replace("\"title\"", "\"colour\":1,\"title\""),
        String::new(),
        // line 6: broken JSON
        "{\"id\": ".to_owned(),
        record_line("PDC-7", "Permafrost boreholes", "private"),
    ];
    writeln!(file, "{}", lines.join("\n")).unwrap();
    let path = file.path().to_str().unwrap();

    let out = node.run(&["holdings", "import", path]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a rejected line makes the import fail: {stderr}"
    );
    assert!(
        stdout.contains("stored 3, unchanged 0, rejected 3"),
        "{stdout}"
    );
    assert!(stderr.contains("line 3: title:"), "{stderr}");
    assert!(stderr.contains("line 4: colour:"), "{stderr}");
    assert!(stderr.contains("line 6: json:"), "{stderr}");
    assert_eq!(listed_ids(&node, &[]), ["PDC-1", "PDC-2", "PDC-7"]);

    // Importing the same file again changes nothing.
    let out = node.run(&["holdings", "import", path]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("stored 0, unchanged 3, rejected 3"));

    // A changed record gets the next version.
    let changed = record_line("PDC-1", "Arctic sea ice thickness, revised", "public");
    let out = node.run_with_stdin(&["holdings", "put"], Some(&changed));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value =
        serde_json::from_str(&node.ok(&["holdings", "get", "PDC-1", "--json"])).unwrap();
    assert_eq!(got["version"], 2);
    assert_eq!(got["origin"], "polar");
    assert!(got["verified_key_id"]
        .as_str()
        .unwrap()
        .starts_with("ed25519:"));

    let out = node.ok(&["holdings", "rm", "PDC-2", "--yes"]);
    assert!(out.contains("deleted PDC-2"), "{out}");
    assert!(!node.run(&["holdings", "get", "PDC-2"]).status.success());
    assert!(
        !node
            .run(&["holdings", "rm", "PDC-2", "--yes"])
            .status
            .success(),
        "a second delete is refused"
    );

    assert!(node.stop(), "graceful shutdown");
    node.serve();
    assert_eq!(listed_ids(&node, &[]), ["PDC-1", "PDC-7"]);
    assert_eq!(
        listed_ids(&node, &["--include-deleted"]),
        ["PDC-1", "PDC-2", "PDC-7"]
    );
    let got: serde_json::Value =
        serde_json::from_str(&node.ok(&["holdings", "get", "PDC-1", "--json"])).unwrap();
    assert_eq!(got["title"], "Arctic sea ice thickness, revised");
    let status: serde_json::Value = serde_json::from_str(&node.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["records"], 2);
    assert_eq!(
        status["log_size"], 6,
        "key set, 3 puts, 1 new version, 1 tombstone"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_catalog_clients_see_public_records_only() {
    let node = TestNode::start("uni");
    let lines = [
        record_line("open-1", "Open survey", "public"),
        record_line("fed-1", "Federation survey", "federation"),
        record_line("grp-1", "Consortium survey", "groups"),
        record_line("priv-1", "Private survey", "private"),
    ];
    let out = node.run_with_stdin(&["holdings", "import", "-"], Some(&lines.join("\n")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut client = CatalogClient::new(meridian_testkit::harness::anonymous_channel(&node).await);
    let page = client
        .list_records(ListRecordsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = page
        .records
        .iter()
        .map(|v| v.record.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(ids, ["open-1"]);
    for hidden in ["fed-1", "grp-1", "priv-1"] {
        let err = client
            .get_record(GetRecordRequest {
                origin: String::new(),
                id: hidden.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            tonic::Code::NotFound,
            "{hidden} must look absent"
        );
    }
    let open = client
        .get_record(GetRecordRequest {
            origin: "uni".into(),
            id: "open-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        open.envelope.unwrap().payload_type,
        "application/vnd.meridian.record.v1+proto"
    );
}

/// Acknowledged records survive `kill -9`; nothing half-written appears.
#[tokio::test(flavor = "multi_thread")]
async fn kill_during_import_loses_no_acknowledged_record() {
    let mut node = TestNode::start("genomics");
    let mut admin = meridian_server::admin_socket::connect(node.data_dir())
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let producer = tokio::spawn(async move {
        for chunk in 0..200u64 {
            let lines = (0..500)
                .map(|i| {
                    record_line(
                        &format!("GEN-{chunk}-{i}"),
                        &format!("Cohort {chunk} sample {i}"),
                        "public",
                    )
                })
                .collect();
            let chunk = ImportChunk {
                first_line: chunk * 500 + 1,
                lines,
                ..Default::default()
            };
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
    });
    let mut acks = admin
        .import(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut acknowledged = 0u64;
    while let Ok(Some(ack)) = acks.message().await {
        assert_eq!(ack.rejected, 0);
        acknowledged += ack.stored;
        if acknowledged >= 10_000 {
            break;
        }
    }
    node.kill9();
    producer.abort();
    // Whatever the producer had in flight may or may not have landed.
    tokio::time::sleep(Duration::from_millis(100)).await;
    node.serve();
    let status: serde_json::Value = serde_json::from_str(&node.ok(&["status", "--json"])).unwrap();
    let records = status["records"].as_u64().unwrap();
    assert!(
        records >= acknowledged,
        "{records} records after restart, {acknowledged} acknowledged"
    );
    assert_eq!(records % 500, 0, "chunks land whole: {records}");
    assert_eq!(
        status["log_size"].as_u64().unwrap(),
        records + 1,
        "the key set, then one entry per record"
    );
    // Every acknowledged record reads back verified.
    for chunk in 0..acknowledged / 500 {
        let id = format!("GEN-{chunk}-499");
        let got: serde_json::Value =
            serde_json::from_str(&node.ok(&["holdings", "get", &id, "--json"])).unwrap();
        assert_eq!(got["version"], 1);
    }
    // Importing continues from where the log stands.
    let more = record_line("GEN-after", "After the crash", "public");
    assert!(node
        .run_with_stdin(&["holdings", "put"], Some(&more))
        .status
        .success());
    let status: serde_json::Value = serde_json::from_str(&node.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["log_size"].as_u64().unwrap(), records + 2);
}

/// Issue item: a date whose UTC form leaves the years 0000–9999 is refused by
/// line and field, every other line is stored, and the same date as a search
/// filter is an invalid argument, not a failure of the node.
#[tokio::test(flavor = "multi_thread")]
async fn an_out_of_range_date_is_rejected_by_line_and_the_rest_stored() {
    let node = TestNode::start("polar");
    let bad_date = "9999-12-31T23:30:00-01:00";
    let mut lines: Vec<String> = (1..=60)
        .map(|i| record_line(&format!("PDC-{i}"), &format!("Ice survey {i}"), "public"))
        .collect();
    let mut odd: serde_json::Value =
        serde_json::from_str(&record_line("PDC-odd", "Far future", "public")).unwrap();
    odd["temporal"] = serde_json::json!({"start": bad_date, "end": ""});
    lines.insert(30, odd.to_string());
    let out = node.run_with_stdin(&["holdings", "import", "-"], Some(&lines.join("\n")));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("stored 60, unchanged 0, rejected 1"),
        "{stdout}"
    );
    assert!(
        stderr.contains("line 31: temporal.start:") && stderr.contains("outside the years"),
        "{stderr}"
    );
    assert_eq!(listed_ids(&node, &[]).len(), 60);

    let out = node.run(&["search", "ice", "--from", bad_date]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("time_from") && !stderr.contains("panic"),
        "{stderr}"
    );
    let mut client = CatalogClient::new(meridian_testkit::harness::anonymous_channel(&node).await);
    let err = client
        .search(meridian_proto::SearchRequest {
            query: "ice".into(),
            time_from: bad_date.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("time_from"), "{}", err.message());
}

/// The admin socket's messages are bounded as its client's are, not by
/// `limits.max_message_bytes` (what the public listeners take from
/// strangers): with that set small, an import still sends its 4 MiB chunks
/// and every line is stored.
#[test]
fn an_import_is_not_held_to_the_public_listeners_message_bound() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start_at(
        meridian_testkit::harness::meridian_bin(),
        dir.path(),
        "polar",
        &[("MERIDIAN_LIMITS__MAX_MESSAGE_BYTES", "262144")],
    )
    .unwrap();
    let padding = "x".repeat(1_900);
    let lines: Vec<String> = (0..2_800)
        .map(|i| {
            let mut record: serde_json::Value =
                serde_json::from_str(&record_line(&format!("PDC-{i}"), "Ice survey", "public"))
                    .unwrap();
            record["description"] = serde_json::json!(format!("{padding} {i}"));
            record.to_string()
        })
        .collect();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    assert!(bytes > 5 << 20, "{bytes} bytes");
    let out = node.run_with_stdin(&["holdings", "import", "-"], Some(&lines.join("\n")));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("stored 2800"), "{stdout}");
}

/// An import chunk is bounded before its lines are read, and a refused
/// line's error quotes at most a little of it, escaped: a chunk of more
/// lines than any client sends, or numbered past 64 bits, is refused by
/// field; lines holding many control characters are each refused
/// with a short reason, and the good lines beside them are stored.
#[tokio::test(flavor = "multi_thread")]
async fn import_chunks_and_the_errors_they_bring_back_are_bounded() {
    let node = TestNode::start("polar");
    let admin = meridian_server::admin_socket::connect(node.data_dir())
        .await
        .unwrap();
    let import = |chunks: Vec<ImportChunk>| {
        let mut admin = admin.clone();
        async move {
            let mut acks = admin.import(tokio_stream::iter(chunks)).await?.into_inner();
            let mut all = Vec::new();
            while let Some(ack) = acks.message().await? {
                all.push(ack);
            }
            Ok::<_, tonic::Status>(all)
        }
    };
    for chunk in [
        ImportChunk {
            first_line: 1,
            lines: vec!["{}".to_owned(); 10_001],
            ..Default::default()
        },
        ImportChunk {
            first_line: u64::MAX,
            lines: vec!["{}".to_owned(); 2],
            ..Default::default()
        },
    ] {
        let refused = import(vec![chunk]).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused}");
        assert!(
            refused.message().contains("at most 10000 lines"),
            "{refused}"
        );
    }

    let del = "\u{7f}".repeat(64 << 10);
    let mut lines: Vec<String> = (0..20)
        .map(|i| record_line(&format!("PDC-{i}"), "Ice survey", "public"))
        .collect();
    for (n, field) in ["orcid", "date", "key"].iter().enumerate() {
        let mut record: serde_json::Value =
            serde_json::from_str(&record_line(&format!("BAD-{n}"), "Bad", "public")).unwrap();
        match *field {
            "orcid" => {
                record["creators"] = serde_json::json!([{"name": "Ruiz, Ana", "orcid": del}])
            }
            "date" => record["embargo_until"] = serde_json::json!(format!("\u{1b}]2;x\u{7}{del}")),
            _ => record[format!("\u{1b}[2J{del}")] = serde_json::json!(1),
        }
        lines.insert(5 * n + 3, record.to_string());
    }
    let acks = import(vec![ImportChunk {
        first_line: 1,
        lines,
        ..Default::default()
    }])
    .await
    .unwrap();
    let stored: u64 = acks.iter().map(|a| a.stored).sum();
    let errors: Vec<&meridian_proto::LineError> = acks.iter().flat_map(|a| &a.errors).collect();
    assert_eq!(stored, 20);
    assert_eq!(errors.len(), 3, "{errors:?}");
    for error in errors {
        let text = format!("{}: {}", error.field, error.reason);
        assert!(text.len() < 1200, "{} bytes: {text}", text.len());
        assert!(!text.chars().any(|c| c.is_control()), "{text:?}");
    }
}

/// The operator's search for `query`: its total.
fn search_total(node: &TestNode, query: &str) -> u64 {
    let out = node.ok(&["search", query, "--limit", "0", "--json"]);
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    answer["total"].as_u64().unwrap()
}

/// Read-your-writes: once `import` or `put` returns, a search finds what
/// they stored (the index catches up asynchronously; the CLI waits for it).
#[test]
fn a_search_right_after_import_or_put_finds_every_record() {
    let node = TestNode::start("ryw");
    for round in 0..3 {
        let lines: Vec<String> = (0..400)
            .map(|n| {
                record_line(
                    &format!("RYW-{round}-{n}"),
                    &format!("Moraine {round} survey {n}"),
                    "private",
                )
            })
            .collect();
        let out = node.run_with_stdin(&["holdings", "import", "-"], Some(&lines.join("\n")));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("searchable after "), "{stdout}");
        assert_eq!(search_total(&node, "moraine"), 400 * (round + 1));
    }

    let record = record_line("RYW-PUT", "Drumlin field mapping", "public");
    let out = node.run_with_stdin(&["holdings", "put"], Some(&record));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("searchable after "), "{stdout}");
    assert_eq!(search_total(&node, "drumlin"), 1);

    // --no-wait says it did not wait.
    let record = record_line("RYW-NOWAIT", "Esker sediments", "public");
    let out = node.run_with_stdin(&["holdings", "put", "--no-wait"], Some(&record));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("not waiting for the index"));
}

/// A wait for a log position the node has not reached is refused at once
/// (it would never end), naming the field.
#[tokio::test(flavor = "multi_thread")]
async fn waiting_for_a_position_beyond_the_log_is_refused() {
    let node = TestNode::start("ryw-beyond");
    let mut admin = meridian_server::admin_socket::connect(node.data_dir())
        .await
        .unwrap();
    let size = admin
        .status(meridian_proto::StatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .log_size;
    let reply = admin
        .wait_searchable(meridian_proto::WaitSearchableRequest {
            log_size: size,
            timeout_ms: 5_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(reply.searchable);
    let err = admin
        .wait_searchable(meridian_proto::WaitSearchableRequest {
            log_size: size + 1,
            timeout_ms: 5_000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().starts_with("log_size: "), "{}", err.message());
}

/// Withdrawals that come in while a large import streams land between its
/// chunks. The import signs a chunk while the one before it commits, and a
/// chunk whose place in the log a withdrawal took meanwhile is planned and
/// signed again: every line is stored once, every withdrawal holds, the
/// log holds exactly one entry for each, and `fsck` finds nothing.
#[test]
fn withdrawals_during_an_import_each_land_and_nothing_is_stored_twice() {
    let mut node = TestNode::start("polar");
    let status = |node: &TestNode| -> serde_json::Value {
        serde_json::from_str(&node.ok(&["status", "--json"])).unwrap()
    };
    let early: Vec<String> = (0..40)
        .map(|i| {
            record_line(
                &format!("OLD-{i:03}"),
                &format!("Old station {i}"),
                "public",
            )
        })
        .collect();
    node.import_no_wait(&early);
    let size_before = status(&node)["log_size"].as_u64().unwrap();
    let big: Vec<String> = (0..20_000)
        .map(|i| {
            record_line(
                &format!("NEW-{i:06}"),
                &format!("Ice station {i}"),
                "public",
            )
        })
        .collect();
    let withdrawn = 30;
    let imported = std::thread::scope(|scope| {
        let importer = scope.spawn(|| {
            node.run_with_stdin(
                &["holdings", "import", "-", "--json", "--no-wait"],
                Some(&big.join("\n")),
            )
        });
        for i in 0..withdrawn {
            node.ok(&["holdings", "rm", &format!("OLD-{i:03}"), "--yes"]);
        }
        importer.join().unwrap()
    });
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&imported.stdout).unwrap();
    assert_eq!(summary["stored"], 20_000, "{summary}");
    assert_eq!(summary["rejected"], 0, "{summary}");

    let after = status(&node);
    assert_eq!(
        after["log_size"].as_u64().unwrap(),
        size_before + 20_000 + withdrawn,
        "{after}"
    );
    assert_eq!(after["records"], 40 - withdrawn + 20_000, "{after}");
    assert!(node.stop(), "a clean stop");
    let out = node.run(&["fsck", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["clean"], true, "{report}");
}
