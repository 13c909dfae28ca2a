//! Habits of the command line: completions and man pages from its grammar,
//! typos in fixed-choice flags answered with the allowed values, and
//! confirmation before taking something away.

use std::process::{Command, Stdio};

use meridian_proto::catalog_client::CatalogClient;
use meridian_proto::SearchRequest;
use meridian_testkit::harness::{anonymous_channel, held, meridian_bin, record_line, TestNode};

fn meridian(args: &[&str]) -> std::process::Output {
    meridian_with(args, &[])
}

/// [`meridian`] with more environment variables.
fn meridian_with(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(meridian_bin())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("meridian runs")
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = meridian(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("holdings"), "{shell}: {script}");
        assert!(script.contains("no-wait"), "{shell} completes flags");
    }
}

/// The node gives memory back: the binary allocates with jemalloc, set to
/// return freed pages after a second from its own thread, also while the
/// node is idle (with glibc a node kept a gigabyte after an index rebuild;
/// docs/benchmarks.md). Without jemalloc as the allocator nothing is
/// printed; without the built-in options the decay is jemalloc's 10 s.
#[test]
fn the_binary_allocates_with_jemalloc_returning_pages_after_a_second() {
    let out = meridian_with(&["--version"], &[("_RJEM_MALLOC_CONF", "stats_print:true")]);
    assert!(out.status.success());
    // jemalloc prints its statistics at exit, a line per option:
    // `  opt.dirty_decay_ms: 1000 (arenas.dirty_decay_ms: 1000)`.
    let stats = String::from_utf8_lossy(&out.stderr);
    let option = |name: &str| {
        let prefix = format!("opt.{name}: ");
        stats
            .lines()
            .find_map(|line| line.trim().strip_prefix(prefix.as_str()))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
    };
    for (name, value) in [
        ("background_thread", "true"),
        ("dirty_decay_ms", "1000"),
        ("muzzy_decay_ms", "0"),
    ] {
        assert_eq!(
            option(name).as_deref(),
            Some(value),
            "opt.{name} in:\n{stats}"
        );
    }
}

#[test]
fn man_pages_are_written_for_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("man1");
    let out = meridian(&["man", target.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let top = std::fs::read_to_string(target.join("meridian.1")).unwrap();
    assert!(top.contains(".TH meridian"), "{top}");
    let names: Vec<String> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for page in [
        "meridian-holdings.1",
        "meridian-holdings-import.1",
        "meridian-search.1",
    ] {
        assert!(names.iter().any(|n| n == page), "{page} in {names:?}");
    }
    let import = std::fs::read_to_string(target.join("meridian-holdings-import.1")).unwrap();
    assert!(import.contains("no\\-wait"), "{import}");
}

#[test]
fn a_typo_in_a_fixed_choice_flag_shows_the_allowed_values() {
    for (args, allowed) in [
        (
            &["search", "ice", "--scope", "locl"][..],
            "local, federation",
        ),
        (&["search", "ice", "--sort", "newest"][..], "relevance"),
        (&["completions", "bsh"][..], "bash"),
    ] {
        let out = meridian(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("possible values"), "{args:?}: {stderr}");
        assert!(stderr.contains(allowed), "{args:?}: {stderr}");
    }
}

/// Without a terminal, `holdings rm` and `trust revoke` refuse unless
/// `--yes`; on a terminal they ask, and only "y" goes ahead.
#[test]
fn taking_something_away_needs_confirmation() {
    let node = TestNode::start("confirm");
    node.import(&[record_line("KEEP-1", "Kept unless confirmed", "public")]);

    let out = node.run(&["holdings", "rm", "KEEP-1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pass --yes"), "{stderr}");
    assert!(node.run(&["holdings", "get", "KEEP-1"]).status.success());

    let out = node.run(&["trust", "revoke", "someone"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --yes"));

    // On a terminal (script(1) gives the command one): "n" keeps it.
    let on_terminal = |answer: &str| {
        let line = format!(
            "{} holdings rm KEEP-1 --data-dir {}",
            meridian_bin().display(),
            node.data_dir().display()
        );
        let mut child = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script(1) runs");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{answer}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = on_terminal("n");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("withdraw KEEP-1"), "{shown}");
    assert!(shown.contains("[y/N]"), "{shown}");
    assert!(node.run(&["holdings", "get", "KEEP-1"]).status.success());
    let out = on_terminal("y");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!node.run(&["holdings", "get", "KEEP-1"]).status.success());

    let out = node.run(&["holdings", "rm", "KEEP-1", "--yes"]);
    assert!(!out.status.success(), "already withdrawn");
}

/// `demo --data-dir DIR` runs the guided tour over the real sample
/// holdings and keeps the federation in DIR, one data directory per
/// institution. Each step's answer is read from what the demo printed and
/// checked again on the nodes it left behind, restarted from DIR: the
/// `consortium` record is at the member only, the withdrawn record is gone
/// everywhere, the box across 180° finds the two institutions' records.
#[tokio::test(flavor = "multi_thread")]
async fn demo_tours_the_federation_and_keeps_it_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("federation");
    let out = Command::new(meridian_bin())
        .args(["demo", "--records", "20", "--exit", "--data-dir"])
        .arg(&root)
        .stdin(Stdio::null())
        .output()
        .expect("demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&root.display().to_string()), "{stdout}");
    assert!(!stdout.contains("temporary directory"), "{stdout}");
    let institutions = ["polar-dc", "genomics", "materials"];
    for institution in institutions {
        assert!(
            root.join(institution).join("meridian.toml").exists(),
            "{institution}"
        );
    }

    // What each step printed.
    let line = |start: &str| -> &str {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?} in\n{stdout}"))
    };
    for (institution, samples) in [("polar-dc", 112), ("genomics", 105), ("materials", 67)] {
        let loaded = line(institution);
        assert!(
            loaded.contains(&format!("{samples} real records"))
                && loaded.contains("+ 20 generated"),
            "{loaded}"
        );
    }
    assert!(line("polar-dc and materials also vouch").contains("consortium"));
    assert!(
        line("Checked record by record").contains("public"),
        "{stdout}"
    );
    let by_origin = line("by origin:");
    for institution in institutions {
        assert!(by_origin.contains(institution), "{by_origin}");
    }
    let tour = stdout
        .split("4. Searches")
        .nth(1)
        .expect("the searches are printed");
    let across = tour
        .split("── ")
        .find(|s| s.starts_with("A box across"))
        .unwrap();
    assert!(across.contains("--bbox 172,50,-170,56"), "{across}");
    for (origin, id) in [("polar-dc", "PC-gnatsgo-rasters"), ("genomics", "PC-fia")] {
        assert!(
            across.lines().any(|l| l.contains(origin) && l.contains(id)),
            "{across}"
        );
    }
    let group = "polar-dc/CMEMS-SEAICE_ARC_SEAICE_L3_REP_OBSERVATIONS_011_010";
    assert!(
        line("at materials (a member)").contains(&format!("found {group}")),
        "{stdout}"
    );
    assert!(
        line("at genomics (not a member)").contains("not found"),
        "{stdout}"
    );
    assert_eq!(
        line("before:"),
        "  before: found at polar-dc, found at genomics"
    );
    assert_eq!(
        line("after the sync:"),
        "  after the sync: not found at polar-dc, not found at genomics"
    );
    // genomics stops; a live search at polar-dc still finds its records,
    // and the report does not pretend genomics answered.
    let stopped = stdout
        .split("── genomics stops; a live search still answers")
        .nth(1)
        .unwrap_or_else(|| panic!("no stopped-institution step: {stdout}"));
    let report = stopped
        .lines()
        .find(|l| l.trim_start().starts_with("completeness:"))
        .unwrap_or_else(|| panic!("no completeness: {stopped}"));
    assert!(
        report.contains("genomics ok (answered by materials)")
            || report.contains("genomics unreachable"),
        "{report}"
    );
    assert!(
        stopped
            .lines()
            .take_while(|l| !l.trim_start().starts_with("completeness:"))
            .any(|l| l.trim_start().starts_with("genomics ")),
        "genomics' records from a copy: {stopped}"
    );
    for institution in institutions {
        let page = stdout
            .lines()
            .find(|l| {
                l.trim_start().starts_with(institution)
                    && (l.contains("https://") || l.contains("(stopped"))
            })
            .unwrap_or_else(|| panic!("no search page for {institution}: {stdout}"));
        if institution != "genomics" {
            assert!(page.trim_end().ends_with('/'), "{page}");
        }
    }

    // The nodes it left behind agree.
    let mut nodes: Vec<TestNode> = institutions
        .iter()
        .map(|id| TestNode::start_at(meridian_bin(), &root.join(id), id, &[]).unwrap())
        .collect();
    let (origin, id) = group.split_once('/').unwrap();
    assert!(held(&nodes[2], origin, id).await.is_some(), "member");
    assert!(held(&nodes[1], origin, id).await.is_none(), "not a member");
    // Anonymous callers of the member see public records only.
    let mut catalog = CatalogClient::new(anonymous_channel(&nodes[2]).await);
    let anonymous = catalog
        .search(SearchRequest {
            query: "\"sea ice drift\"".into(),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(anonymous.total > 0, "the public sea ice drift products");
    assert!(
        !anonymous
            .hits
            .iter()
            .any(|h| h.origin == origin && h.id == id),
        "anonymous search at the member shows the consortium record"
    );
    for node in &nodes[..2] {
        let answer: serde_json::Value = serde_json::from_str(&node.ok(&[
            "search",
            "superconductivity",
            "--json",
            "--limit",
            "100",
        ]))
        .unwrap();
        let hits = answer["hits"].as_array().unwrap();
        assert!(
            !hits
                .iter()
                .any(|h| h["id"] == "matminer-superconductivity2018"),
            "{}: {answer}",
            node.name
        );
    }
    for node in &mut nodes {
        assert!(node.stop(), "{}", node.name);
    }
}

/// Every command that takes `--json` prints exactly one valid JSON value,
/// and a listing with nothing in it is `[]`.
#[test]
fn every_json_output_is_one_json_value() {
    let node = TestNode::start("json");
    let parse = |out: &[u8], args: &[&str]| -> serde_json::Value {
        serde_json::from_slice(out)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(out)))
    };
    let ok = |args: &[&str]| parse(node.ok(args).as_bytes(), args);
    for args in [
        &["holdings", "list", "--json"][..],
        &["holdings", "list", "--json", "--include-deleted"],
        &["trust", "list", "--json"],
        &["peers", "status", "--json"],
        &["sync", "now", "--json"],
    ] {
        assert_eq!(ok(args), serde_json::json!([]), "{args:?}");
    }
    node.import(&[
        record_line("J-1", "Fjord temperature", "public"),
        record_line("J-2", "Fjord salinity", "private"),
    ]);
    assert_eq!(
        ok(&["holdings", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let args = ["holdings", "import", "-", "--json"];
    let out = node.run_with_stdin(&args, Some(&record_line("J-3", "Fjord ice", "public")));
    let summary = parse(&out.stdout, &args);
    assert_eq!(summary["stored"], 1, "{summary}");
    assert_eq!(summary["searchable"], true, "{summary}");
    assert_eq!(summary["errors"], serde_json::json!([]), "{summary}");
    let args = ["holdings", "put", "--json"];
    let out = node.run_with_stdin(&args, Some(&record_line("J-4", "Fjord sediment", "public")));
    let put = parse(&out.stdout, &args);
    assert_eq!(put["id"], "J-4", "{put}");
    assert_eq!(put["stored"], true, "{put}");
    // Pretty-printed, with a key given twice: refused as import refuses
    // it, not stored with one of the two.
    let mut twice = record_line("J-5", "Fjord water", "public");
    twice.insert_str(1, "\n  \"title\": \"First title\",\n");
    let out = node.run_with_stdin(&["holdings", "put"], Some(&twice));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("more than once"), "{stderr}");
    // import and put wait until searchable: all four are found at once.
    assert_eq!(ok(&["search", "fjord", "--json"])["total"], 4);
    assert_eq!(ok(&["health", "--json"])["healthy"], true);
    let removed = ok(&["holdings", "rm", "J-4", "--yes", "--json"]);
    assert_eq!(removed["deleted"], true, "{removed}");
    assert_eq!(
        ok(&["holdings", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(ok(&["holdings", "get", "J-1", "--json"])["id"], "J-1");
    assert_eq!(ok(&["status", "--json"])["node_id"], "json");
    assert_eq!(ok(&["keys", "show", "--json"])["node_id"], "json");
    assert_eq!(ok(&["search", "nothing-matches", "--json"])["total"], 0);

    assert_eq!(ok(&["doctor", "--json"])[0]["check"], "data directory");
    let rebuilt = ok(&["index", "rebuild", "--json"]);
    assert!(rebuilt["indexed"].as_u64().unwrap() >= 4, "{rebuilt}");

    let peer = TestNode::start("json-peer");
    let pinned = ok(&["trust", "add", &peer.invite(), "--json"]);
    assert_eq!(pinned["node_id"], "json-peer", "{pinned}");
    assert_eq!(pinned["state"], "active", "{pinned}");
    assert_eq!(
        ok(&["trust", "list", "--json"]).as_array().unwrap().len(),
        1
    );
    assert_eq!(
        ok(&["trust", "suspend", "json-peer", "--json"])["state"],
        "suspended"
    );
    assert_eq!(
        ok(&["trust", "resume", "json-peer", "--json"])["state"],
        "active"
    );
    let shown = ok(&["trust", "show", "json-peer", "--json"]);
    assert_eq!(shown["node_id"], "json-peer");
    let actions: Vec<&str> = shown["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.len(), 3, "added, suspended, resumed: {shown}");
    assert_eq!(
        ok(&["peers", "status", "--json"]).as_array().unwrap().len(),
        1
    );
    // The peer has not pinned this node: the round fails, still one array.
    let args = ["sync", "now", "--json"];
    let reports = parse(&node.run(&args).stdout, &args);
    assert_eq!(reports.as_array().unwrap().len(), 1, "{reports}");
    assert_eq!(
        ok(&["trust", "revoke", "json-peer", "--yes", "--json"])["state"],
        "revoked"
    );

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh");
    let args = [
        "init",
        "--node-id",
        "fresh",
        "--listen",
        "127.0.0.1:0",
        "--json",
    ];
    let out = meridian(&[&args[..], &["--data-dir", data.to_str().unwrap()]].concat());
    let created = parse(&out.stdout, &args);
    assert_eq!(created["node_id"], "fresh", "{created}");
    assert!(created["key_id"].as_str().unwrap().starts_with("ed25519:"));
}

/// A log filter that does not parse stops `serve` at once, naming
/// `log.level`, instead of running at `info` as if nothing was asked.
#[test]
fn a_log_level_that_is_no_filter_stops_the_node_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let data = data.to_str().unwrap();
    let init = meridian(&[
        "init",
        "--node-id",
        "logs",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data,
    ]);
    assert!(init.status.success(), "{init:?}");
    let out = meridian_with(
        &["serve", "--data-dir", data],
        &[("MERIDIAN_LOG__LEVEL", "info,meridian=[")],
    );
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("log.level: `info,meridian=[` is not a log filter"),
        "{stderr}"
    );
}
