//! `meridian init` says what to do next, and `meridian doctor` finds what
//! is wrong with a node and says how to fix it: a key others can read, a
//! broken configuration, a stopped node, a peer that cannot be reached.

use meridian_testkit::harness::TestNode;

/// `doctor --json` of `node`: its exit code and checks by name (the last
/// of a name wins; peers are looked up by detail).
fn doctor(node: &TestNode) -> (i32, Vec<serde_json::Value>) {
    let out = node.run(&["doctor", "--json"]);
    let checks: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), checks)
}

fn check<'a>(checks: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    checks
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no `{name}` check in {checks:?}"))
}

#[test]
fn init_says_what_to_do_next() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(meridian_testkit::harness::meridian_bin())
        .args([
            "init",
            "--node-id",
            "polar",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("node"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for step in [
        "1. start the node",
        "meridian serve --data-dir",
        "2. share your invitation",
        "meridian keys show --invite",
        "3. load your holdings",
        "meridian holdings import",
        "meridian doctor",
    ] {
        assert!(text.contains(step), "`{step}` missing from:\n{text}");
    }
}

#[test]
fn doctor_passes_a_healthy_node_and_names_each_problem_with_its_fix() {
    let mut polar = TestNode::start("polar");
    let (code, checks) = doctor(&polar);
    assert_eq!(code, 0, "{checks:#?}");
    for name in [
        "data directory",
        "configuration",
        "identity key",
        "tls key",
        "public tls key",
        "public certificate",
        "clock",
        "node",
        "catalog listener",
    ] {
        assert_eq!(check(&checks, name)["verdict"], "ok", "{name}: {checks:#?}");
    }
    // A fresh node has no peers: a warning that says how to get one.
    let peers = check(&checks, "peers");
    assert_eq!(peers["verdict"], "warn");
    assert!(peers["fix"]
        .as_str()
        .unwrap()
        .contains("meridian trust add"));

    // A pinned peer that is down is named, with where it was dialed.
    let mut uni = TestNode::start("uni");
    polar.trust(&uni, &[]);
    uni.trust(&polar, &[]);
    assert!(uni.stop());
    polar.sync_now();
    let (code, checks) = doctor(&polar);
    assert_eq!(code, 0, "a peer down is a warning: {checks:#?}");
    let peer = check(&checks, "peer");
    assert_eq!(peer["verdict"], "warn", "{checks:#?}");
    assert!(
        peer["detail"].as_str().unwrap().starts_with("uni: "),
        "{peer}"
    );
    assert!(
        peer["fix"].as_str().unwrap().contains("reachable"),
        "{peer}"
    );

    // A private key others can read fails, with the command that fixes it.
    let key = polar.data_dir().join("identity.key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let (code, checks) = doctor(&polar);
    assert_eq!(code, 1);
    let failed = check(&checks, "identity key");
    assert_eq!(failed["verdict"], "fail");
    assert_eq!(failed["fix"], format!("chmod 600 {}", key.display()));
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();

    // So does a root key kept in the data directory, when it is there.
    let root = polar.data_dir().join("root.key");
    std::fs::copy(&key, &root).unwrap();
    std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    let (code, checks) = doctor(&polar);
    assert_eq!(code, 1);
    assert_eq!(check(&checks, "root key")["verdict"], "fail", "{checks:#?}");
    std::fs::remove_file(&root).unwrap();

    // A data directory its group may write to is named.
    let dir = polar.data_dir();
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o770)).unwrap();
    let (_, checks) = doctor(&polar);
    let open = check(&checks, "data directory");
    assert_eq!(open["verdict"], "warn", "{checks:#?}");
    assert!(
        open["detail"].as_str().unwrap().contains("socket"),
        "{open}"
    );
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();

    // Stopped, with a configuration that does not parse: both said.
    assert!(polar.stop());
    let config = polar.data_dir().join("meridian.toml");
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{good}\nlisten = [oops\n")).unwrap();
    let (code, checks) = doctor(&polar);
    assert_eq!(code, 1);
    let broken = check(&checks, "configuration");
    assert_eq!(broken["verdict"], "fail");
    assert!(
        broken["detail"].as_str().unwrap().contains("meridian.toml"),
        "names the file: {broken}"
    );
    let node = check(&checks, "node");
    assert_eq!(node["verdict"], "warn");
    assert!(node["fix"]
        .as_str()
        .unwrap()
        .starts_with("start it: meridian serve"));
    std::fs::write(&config, good).unwrap();
    let (code, _) = doctor(&polar);
    assert_eq!(code, 0);
}
