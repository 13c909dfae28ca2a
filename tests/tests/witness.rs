//! Witnesses (`docs/decisions/witnesses.md`): a rogue origin shows one log
//! to one relay and a forked log (same prefix, then different entries) to
//! another. A node that pulls the origin through the first relay and
//! compares checkpoints with the second finds the fork, keeps evidence,
//! freezes the origin, and the evidence file proves the equivocation to
//! anyone, offline.

use std::path::Path;
use std::process::Command;

use meridian_testkit::harness::{held, meridian_bin, record_line, without_meridian_env, TestNode};

/// Copies a stopped node's data directory (regular files only: the admin
/// socket is not copied).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).unwrap();
            let mode = std::fs::metadata(entry.path()).unwrap().permissions();
            std::fs::set_permissions(&target, mode).unwrap();
        }
    }
}

/// The origin's node started in `dir` at `port`, where its peers pinned it.
fn origin_at(dir: &Path, port: u16) -> TestNode {
    let listen = format!("127.0.0.1:{port}");
    TestNode::start_at(
        meridian_bin(),
        dir,
        "polar",
        &[("MERIDIAN_LISTEN", &listen)],
    )
    .unwrap_or_else(|e| panic!("polar at {listen}: {e}"))
}

/// `meridian evidence verify FILE` run with no data directory and no node.
fn verify_offline(file: &Path) -> std::process::Output {
    let empty = tempfile::tempdir().unwrap();
    without_meridian_env(&mut Command::new(meridian_bin()))
        .current_dir(empty.path())
        .args(["evidence", "verify"])
        .arg(file)
        .output()
        .unwrap()
}

/// `evidence export polar` at `node` into `dir`, then `evidence verify`
/// of that file with no node: the file and what the check said.
fn export_and_verify(node: &TestNode, dir: &Path) -> (std::path::PathBuf, std::process::Output) {
    let file = dir.join("polar.evidence.json");
    node.ok(&[
        "evidence",
        "export",
        "polar",
        "--out",
        file.to_str().unwrap(),
    ]);
    let out = verify_offline(&file);
    (file, out)
}

/// `peers status` once `polar` is frozen at `node` (within 30 s).
fn frozen(node: &TestNode) -> std::collections::BTreeMap<String, serde_json::Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status = node.peers_status();
        if status["polar"]["frozen"] == true {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "polar not frozen: {status:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Starts the origin from `dir` on `port`, imports `ids` there, lets
/// `relay` pull them, and stops it: one branch of the fork, shown to one
/// relay.
fn show_branch(dir: &std::path::Path, port: u16, ids: &[&str], relay: &TestNode) {
    let mut origin = origin_at(dir, port);
    let title = format!("Shown to {}", relay.name);
    let lines: Vec<String> = ids
        .iter()
        .map(|id| record_line(id, &title, "public"))
        .collect();
    origin.import(&lines);
    assert_eq!(relay.sync_now()["polar"]["ok"], true);
    assert!(origin.stop());
}

fn pins_each_other(a: &TestNode, b: &TestNode) {
    a.trust(b, &[]);
    b.trust(a, &[]);
}

/// A federation where the origin `polar` forked its log: three entries
/// shared, then `b_ids` shown to relay b and `c_ids` to relay c, through a
/// copy of its data directory that signs on at the same address. Each relay
/// talks to one side only (the origin is suspended at the other meanwhile: a
/// relay that saw both would find the fork itself). The origin is stopped.
/// Returns the directory that holds them, the origin's invitation, the relays
/// and a fresh node to witness.
struct Forked {
    tmp: tempfile::TempDir,
    polar_invite: String,
    relay_b: TestNode,
    relay_c: TestNode,
    witness: TestNode,
}

fn forked(b_ids: &[&str], c_ids: &[&str]) -> Forked {
    let tmp = tempfile::tempdir().unwrap();
    let honest_dir = tmp.path().join("polar");
    let fork_dir = tmp.path().join("polar-fork");
    let mut polar = TestNode::start_at(meridian_bin(), &honest_dir, "polar", &[]).unwrap();
    let port = polar.catalog.unwrap().port();
    let polar_invite = polar.invite();
    let relay_b = TestNode::start("relay-b");
    let relay_c = TestNode::start("relay-c");
    let witness = TestNode::start("witness");
    pins_each_other(&polar, &relay_b);
    pins_each_other(&polar, &relay_c);

    // Both relays hold the same first entries.
    polar.import(&["P-1", "P-2", "P-3"].map(|id| record_line(id, &format!("Ice {id}"), "public")));
    assert_eq!(relay_b.sync_now()["polar"]["ok"], true);
    assert_eq!(relay_c.sync_now()["polar"]["ok"], true);

    assert!(polar.stop());
    drop(polar);
    copy_dir(&honest_dir, &fork_dir);
    relay_c.ok(&["trust", "suspend", "polar"]);
    show_branch(&honest_dir, port, b_ids, &relay_b);
    relay_b.ok(&["trust", "suspend", "polar"]);
    relay_c.ok(&["trust", "resume", "polar"]);
    show_branch(&fork_dir, port, c_ids, &relay_c);
    relay_b.ok(&["trust", "resume", "polar"]);
    for relay in [&relay_b, &relay_c] {
        assert_eq!(relay.peers_status()["polar"]["frozen"], false);
    }
    Forked {
        tmp,
        polar_invite,
        relay_b,
        relay_c,
        witness,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forked_checkpoints_seen_through_two_relays_freeze_the_origin_with_evidence() {
    let Forked {
        tmp,
        polar_invite,
        relay_b,
        relay_c,
        witness,
    } = forked(&["B-4", "B-5"], &["C-4"]);

    // The witness pins the origin and both relays; the origin is away.
    witness.ok(&["trust", "add", &polar_invite]);
    pins_each_other(&witness, &relay_b);
    pins_each_other(&witness, &relay_c);
    // (A round woken by `trust add` may find it first: either way it ends
    // frozen, through relay c.)
    witness.sync_now();
    let status = frozen(&witness);

    // Frozen, with evidence, shown to the operator.
    let seen = &status["polar"];
    assert_eq!(seen["frozen"], true, "{status:?}");
    assert_eq!(seen["evidence"], true, "{status:?}");
    let reason = seen["frozen_reason"].as_str().unwrap();
    assert!(
        fork_sizes(reason).map(|(smaller, larger)| larger - smaller) == Some(1)
            && reason.contains("relay-c"),
        "{reason}"
    );
    assert_eq!(
        seen["cosigners"], 1,
        "relay b cosigned the checkpoint held: {status:?}"
    );
    let keys: serde_json::Value =
        serde_json::from_str(&witness.ok(&["keys", "status", "--origin", "polar", "--json"]))
            .unwrap();
    assert_eq!(
        keys["cosigners"], 1,
        "keys status names the witnesses too: {keys}"
    );
    let shown: serde_json::Value =
        serde_json::from_str(&witness.ok(&["trust", "show", "polar", "--json"])).unwrap();
    assert!(
        shown["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|event| event["action"] == "origin-frozen"),
        "{shown}"
    );
    let metrics = crate::metrics::scrape(&witness);
    assert_eq!(
        crate::metrics::value(&metrics, "meridian_origins_frozen"),
        Some(1.0),
        "{metrics}"
    );
    // Nothing more is taken from a frozen origin, by any holder.
    let again = witness.sync_now();
    assert!(
        again
            .values()
            .all(|r| r["entries"].as_u64().unwrap_or(0) == 0),
        "{again:?}"
    );

    // The evidence file proves it offline; a tampered one proves nothing.
    let (file, out) = export_and_verify(&witness, tmp.path());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("equivocation proven: origin polar signed the signed checkpoint of size"),
        "{said}"
    );

    let mut evidence: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let first = evidence["first"].as_str().unwrap().to_owned();
    // Another checkpoint swapped in for the relay c's: the proof no longer
    // shows a conflict, or the signature fails.
    evidence["first"] = evidence["second"].clone();
    let tampered = tmp.path().join("tampered.json");
    std::fs::write(&tampered, evidence.to_string()).unwrap();
    let out = verify_offline(&tampered);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("nothing is proven"), "{said}");
    // One bit of the relay c's checkpoint signature flipped.
    // (A base64 digit near the end: the last bytes are the signature's.)
    let mut text = first.into_bytes();
    let at = text.len() - 6;
    text[at] = if text[at] == b'A' { b'B' } else { b'A' };
    evidence["first"] = String::from_utf8(text).unwrap().into();
    std::fs::write(&tampered, evidence.to_string()).unwrap();
    let out = verify_offline(&tampered);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("checkpoint `first`"), "{said}");

    // A node that is not frozen has nothing to export.
    let refused = relay_b.run(&["evidence", "export", "polar", "--out", "x.json"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is not frozen"));
}

/// The other way round: the node holds the shorter branch, and the relay
/// with the longer one gives its checkpoint with the consistency proof from
/// the size held here, which shows the branch held here is not a prefix of
/// its own. The relay, comparing with this node, finds the fork too and
/// keeps its own evidence.
#[tokio::test(flavor = "multi_thread")]
async fn a_longer_fork_is_proven_by_the_proof_its_relay_serves() {
    let Forked {
        tmp,
        polar_invite,
        relay_b,
        relay_c,
        witness,
    } = forked(&["B-4"], &["C-4", "C-5", "C-6"]);
    witness.ok(&["trust", "add", &polar_invite]);
    pins_each_other(&witness, &relay_b);
    assert_eq!(witness.sync_now()["relay-b"]["ok"], true);
    assert_eq!(witness.peers_status()["polar"]["frozen"], false);

    pins_each_other(&witness, &relay_c);
    witness.sync_now();
    let status = frozen(&witness);
    relay_c.sync_now();
    let at_c = frozen(&relay_c);
    assert!(
        at_c["polar"]["frozen_reason"]
            .as_str()
            .unwrap()
            .contains("through witness"),
        "{at_c:?}"
    );
    let reason = status["polar"]["frozen_reason"].as_str().unwrap();
    assert!(
        fork_sizes(reason).map(|(smaller, larger)| larger - smaller) == Some(2)
            && reason.contains("relay-c"),
        "{reason}"
    );
    let (_, out) = export_and_verify(&witness, tmp.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing of the longer branch was kept; the branch held stays.
    assert!(held(&witness, "polar", "C-4").await.is_none());
    assert!(held(&witness, "polar", "B-4").await.is_some());
}

/// The two sizes of "… checkpoint of size S is not a prefix of the signed
/// checkpoint of size L …": the branch held and the other, whose difference
/// is what the fork added (the absolute sizes count the origin's key set
/// and audiences too).
fn fork_sizes(reason: &str) -> Option<(u64, u64)> {
    let (before, after) =
        reason.split_once(" is not a prefix of the signed checkpoint of size ")?;
    let smaller = before.rsplit(' ').next()?.parse().ok()?;
    let larger = after
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((smaller, larger))
}
