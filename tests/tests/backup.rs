//! Backup and restore with real processes: a backup of a node that serves
//! (and imports) meanwhile; a backup cut short by `kill -9` is refused by
//! `restore`; the last complete backup, restored into a new directory,
//! passes `fsck`, pulls back from its peer the own entries signed after
//! the backup, and only then signs new ones, which the peer accepts (no
//! fork of its log).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use meridian_testkit::harness::{held, meridian_bin, record_line, TestNode};

fn lines(range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| record_line(&format!("PDC-{i:04}"), &format!("Ice core {i}"), "public"))
        .collect()
}

fn meridian(data_dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(meridian_bin())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::null())
        .output()
        .expect("meridian runs")
}

fn status(node: &TestNode) -> serde_json::Value {
    serde_json::from_str(&node.ok(&["status", "--json"])).expect("status json")
}

/// `meridian fsck --json` on a stopped data directory: (clean, report).
fn fsck(data_dir: &Path) -> (bool, serde_json::Value) {
    let out = meridian(data_dir, &["fsck", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "fsck output ({e}): {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success() && report["clean"] == true, report)
}

/// The hidden directories a backup into `work` is written in first.
fn partials(work: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(work)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .contains(".partial-")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restored_node_recovers_its_own_log_from_its_peer_and_never_forks_it() {
    let mut origin = TestNode::start("polar");
    let peer = TestNode::start("uni");
    origin.trust(&peer, &[]);
    peer.trust(&origin, &[]);
    origin.import(&lines(0..300));
    assert_eq!(peer.sync_now()["polar"]["ok"], true);
    let work = tempfile::tempdir().unwrap();

    // A backup while imports run against the node.
    let importer = {
        let data_dir = origin.data_dir().to_owned();
        std::thread::spawn(move || {
            for chunk in 0..5 {
                let mut child = Command::new(meridian_bin())
                    .args(["holdings", "import", "-", "--no-wait", "--data-dir"])
                    .arg(&data_dir)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                let text = lines(300 + chunk * 40..340 + chunk * 40).join("\n");
                std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes())
                    .unwrap();
                let out = child.wait_with_output().unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        })
    };
    let first = work.path().join("first");
    let out = origin.ok(&["backup", first.to_str().unwrap(), "--json"]);
    importer.join().unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&out).unwrap();
    let backed_up = manifest["own_log_size"].as_u64().unwrap();
    assert_eq!(
        manifest["own_checkpoint_size"], backed_up,
        "the own log and its checkpoint agree in a backup"
    );
    assert!(
        (301..=501).contains(&backed_up),
        "key set + 300..500 records: {backed_up}"
    );
    assert!(manifest["files"]["identity.key"].is_object());
    assert!(!first.join("index").exists(), "the index is re-derived");
    assert!(partials(work.path()).is_empty());

    // Own entries signed after the backup reach the peer.
    origin.import(&lines(500..550));
    let published = status(&origin)["log_size"].as_u64().unwrap();
    assert!(published > backed_up);
    assert_eq!(peer.sync_now()["polar"]["ok"], true);
    assert!(held(&peer, "polar", "PDC-0549").await.is_some());

    // A later backup cut short: the node is killed while it writes it.
    let mut cut_short = None;
    for attempt in 0..20 {
        let dest = work.path().join(format!("later-{attempt}"));
        let mut backup = Command::new(meridian_bin())
            .args(["backup"])
            .arg(&dest)
            .arg("--data-dir")
            .arg(origin.data_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while partials(work.path()).is_empty()
            && !dest.exists()
            && started.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        if dest.exists() {
            // It finished before the kill: try again.
            backup.wait().unwrap();
            std::fs::remove_dir_all(&dest).unwrap();
            continue;
        }
        origin.kill9();
        if dest.exists() {
            // It finished between the look and the kill: try again.
            backup.wait().unwrap();
            std::fs::remove_dir_all(&dest).unwrap();
            origin.serve();
            continue;
        }
        let out = backup.wait_with_output().unwrap();
        assert!(!out.status.success(), "a backup whose node died failed");
        assert!(!dest.exists(), "no directory under the backup's name");
        cut_short = partials(work.path()).pop();
        eprintln!("backup: killed during attempt {attempt}");
        break;
    }
    let partial = cut_short.expect("a backup was interrupted");
    let refused = meridian(
        &work.path().join("never"),
        &["restore", partial.to_str().unwrap()],
    );
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(
        error.contains("manifest.json: missing") && error.contains("not a complete backup"),
        "{error}"
    );
    assert!(!work.path().join("never").join("store").exists());

    // Never over a node.
    let over = meridian(origin.data_dir(), &["restore", first.to_str().unwrap()]);
    assert!(!over.status.success());
    assert!(String::from_utf8_lossy(&over.stderr).contains("not empty"));

    // The last complete backup, restored into a new directory.
    let restored_dir = work.path().join("restored");
    let out = meridian(&restored_dir, &["restore", first.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = |name: &str| {
        std::fs::metadata(restored_dir.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("."), 0o700);
    assert_eq!(mode("identity.key"), 0o600);
    assert_eq!(mode("tls.key"), 0o600);
    let (clean, report) = fsck(&restored_dir);
    assert!(clean, "{report}");

    // Started where the node was (its peer dials that address).
    let address = origin.catalog.unwrap().to_string();
    let restored = TestNode::start_at(
        meridian_bin(),
        &restored_dir,
        "polar",
        &[("MERIDIAN_LISTEN", address.as_str())],
    )
    .unwrap();
    let before = status(&restored);
    assert_eq!(before["recovering"], true, "{before}");
    assert_eq!(before["log_size"], backed_up);
    let human = restored.ok(&["status"]);
    assert!(human.contains("recovering"), "{human}");
    let refused = restored.run_with_stdin(
        &["holdings", "import", "-"],
        Some(&lines(900..901).join("\n")),
    );
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(error.contains("recovering its own log"), "{error}");
    // With --json, what was stored and why it stopped is one JSON value.
    let refused = restored.run_with_stdin(
        &["holdings", "import", "-", "--json"],
        Some(&lines(900..901).join("\n")),
    );
    assert!(!refused.status.success());
    let stopped: serde_json::Value = serde_json::from_slice(&refused.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&refused.stdout)));
    assert!(
        stopped["stopped"]
            .as_str()
            .unwrap()
            .contains("recovering its own log"),
        "{stopped}"
    );
    assert_eq!(stopped["stored"], 0, "{stopped}");
    assert_eq!(
        stopped["lines_not_stored"],
        serde_json::json!(["1-1"]),
        "{stopped}"
    );

    // It pulls its own entries back from the peer, verified with its key.
    let reports = restored.sync_now();
    assert_eq!(reports["uni"]["ok"], true, "{reports:?}");
    let after = status(&restored);
    assert_eq!(after["log_size"], published, "{after}");
    assert_eq!(after["recovering"], false, "every peer reached: {after}");
    assert!(held(&restored, "polar", "PDC-0549").await.is_some());

    // Then it signs on after them, and the peer takes the new entries.
    restored.import(&lines(900..910));
    let reports = peer.sync_now();
    assert_eq!(reports["polar"]["ok"], true, "{reports:?}");
    assert!(held(&peer, "polar", "PDC-0909").await.is_some());
    let peers = peer.peers_status();
    assert_eq!(peers["polar"]["rejected"], 0, "{peers:?}");
    assert_eq!(peers["polar"]["last_error"], "", "{peers:?}");
    let reports = peer.sync_now();
    assert_eq!(reports["polar"]["ok"], true, "no fork seen: {reports:?}");

    let mut restored = restored;
    assert!(restored.stop());
    let (clean, report) = fsck(&restored_dir);
    assert!(clean, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_node_is_backed_up_and_restored_with_or_without_recovery() {
    let mut node = TestNode::start("polar");
    node.import(&lines(0..20));
    assert!(node.stop());
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("cold");
    node.ok(&["backup", dest.to_str().unwrap()]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["own_log_size"], 21);

    // A flipped byte anywhere is named.
    let dump = dest.join("store.dump");
    let mut bytes = std::fs::read(&dump).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x80;
    std::fs::write(&dump, &bytes).unwrap();
    let target = work.path().join("restored");
    let out = meridian(&target, &["restore", dest.to_str().unwrap()]);
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("store.dump") && error.contains("SHA-256"),
        "{error}"
    );
    bytes[at] ^= 0x80;
    std::fs::write(&dump, &bytes).unwrap();

    let out = meridian(
        &target,
        &["restore", dest.to_str().unwrap(), "--no-recover"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored = TestNode::start_at(meridian_bin(), &target, "polar", &[]).unwrap();
    assert_eq!(status(&restored)["recovering"], false);
    assert!(held(&restored, "polar", "PDC-0019").await.is_some());
    restored.import(&lines(20..21));
    assert_eq!(status(&restored)["log_size"], 22);

    // Recovering with no peer to ask: it waits until the operator ends it.
    let waiting_dir = work.path().join("waiting");
    let out = meridian(&waiting_dir, &["restore", dest.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let waiting = TestNode::start_at(meridian_bin(), &waiting_dir, "polar", &[]).unwrap();
    waiting.sync_now();
    assert_eq!(status(&waiting)["recovering"], true);
    let said = waiting.ok(&["finish-recovery"]);
    assert!(said.contains("recovery ended"), "{said}");
    assert_eq!(status(&waiting)["recovering"], false);
    assert!(!waiting_dir.join("recovering").exists());
    waiting.import(&lines(20..22));
    assert_eq!(status(&waiting)["log_size"], 23);
}

/// `meridian restore` killed (`kill -9`) while it loads the store leaves a
/// directory that neither `serve` nor `fsck` opens: each says the restore
/// did not finish and what to do. Removed, the directory takes the same
/// backup whole, and `fsck` finds it clean.
#[test]
fn a_restore_killed_while_it_loads_the_store_is_refused_until_done_again() {
    let mut node = TestNode::start("polar");
    node.import(&lines(0..1000));
    assert!(node.stop());
    let work = tempfile::tempdir().unwrap();
    let backup = work.path().join("backup");
    node.ok(&["backup", backup.to_str().unwrap()]);

    let target = work.path().join("restored");
    let mut killed = false;
    for attempt in 0..20 {
        let _ = std::fs::remove_dir_all(&target);
        let mut restore = Command::new(meridian_bin())
            .args(["restore", backup.to_str().unwrap(), "--data-dir"])
            .arg(&target)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("meridian runs");
        // The store's directory appears when its load begins.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !target.join("store").exists() && Instant::now() < deadline {
            if restore.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        restore.kill().unwrap();
        restore.wait().unwrap();
        // Killed before its last step, or not: what it left says which.
        if !target.join("restore-unfinished").exists() {
            eprintln!("restore: finished before the kill, attempt {attempt}");
            continue;
        }
        killed = true;
        break;
    }
    assert!(killed, "every restore finished before its kill");

    for command in [&["fsck"][..], &["serve"][..]] {
        let out = meridian(&target, command);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {out:?}");
        let error = String::from_utf8_lossy(&out.stderr);
        assert!(
            error.contains("a restore into this directory began and did not finish")
                && error.contains("run `meridian restore` again"),
            "{command:?}: {error}"
        );
    }
    let out = meridian(&target, &["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("did not finish") && said.contains("meridian restore"),
        "{said}"
    );

    // Killed before the configuration was written: the same refusal,
    // not a missing configuration.
    let early = work.path().join("early");
    std::fs::create_dir(&early).unwrap();
    std::fs::copy(
        target.join("restore-unfinished"),
        early.join("restore-unfinished"),
    )
    .unwrap();
    let out = meridian(&early, &["serve"]);
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2) && error.contains("did not finish"),
        "{out:?}"
    );

    std::fs::remove_dir_all(&target).unwrap();
    let out = meridian(&target, &["restore", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let (clean, report) = fsck(&target);
    assert!(clean, "{report}");
}

/// A backup of a stopped node says on stderr what of its configuration it
/// does not carry: an operator's certificate in a directory of its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_backup_says_which_operator_certificate_it_does_not_carry() {
    let mut node = TestNode::start("polar");
    assert!(node.stop());
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("cold");
    let out = Command::new(meridian_bin())
        .args(["backup", dest.to_str().unwrap(), "--data-dir"])
        .arg(node.data_dir())
        .env("MERIDIAN_TLS__PUBLIC_CERT", "certs/site.crt")
        .env("MERIDIAN_TLS__PUBLIC_KEY", "certs/site.key")
        .stdin(Stdio::null())
        .output()
        .expect("meridian runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("certs/site.crt") && stderr.contains("does not carry"),
        "{stderr}"
    );
}
