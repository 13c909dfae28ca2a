//! Partitions between real nodes: the origin's peers reach it only through
//! a TCP fault proxy (its advertised endpoint), which the test switches
//! while streams are open. A cut mid-stream (drop, then reject), a flapping
//! link, a peer that accepts TCP and never answers, and a slow path: sync
//! resumes after each, searches keep answering, `peers status` says why,
//! and nothing is lost or duplicated.

use std::time::{Duration, Instant};

use meridian_testkit::fault::{Fault, FaultProxy};
use meridian_testkit::harness::{meridian_bin, record_line, TestNode};

/// Idle timeout of a pull, seconds: a silent link is given up this soon.
const IDLE_SECS: &str = "2";

/// The origin, reachable only through `proxy`, holding `records` records.
fn origin_behind(proxy: &FaultProxy, records: usize) -> (TestNode, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = proxy.addr().to_string();
    let polar = TestNode::start_at(
        meridian_bin(),
        &dir.path().join("polar"),
        "polar",
        &[("MERIDIAN_ENDPOINT", &endpoint)],
    )
    .unwrap();
    proxy.set_upstream(polar.catalog.expect("a catalog listener"));
    let lines: Vec<String> = (0..records)
        .map(|i| {
            record_line(
                &format!("PDC-{i:05}"),
                &format!("Sea ice survey {i}"),
                "public",
            )
        })
        .collect();
    for chunk in lines.chunks(2000) {
        polar.import(chunk);
    }
    (polar, dir)
}

/// A node that pulls with a short idle timeout.
fn puller(dir: &tempfile::TempDir, name: &str) -> TestNode {
    TestNode::start_at(
        meridian_bin(),
        &dir.path().join(name),
        name,
        &[
            ("MERIDIAN_SYNC__IDLE_TIMEOUT_SECS", IDLE_SECS),
            ("MERIDIAN_SYNC__ROUND_TIMEOUT_SECS", "30"),
        ],
    )
    .unwrap()
}

/// How many of polar's records `node` serves to a search, once its index
/// has caught up with its store (`meridian health` passes).
fn polar_records(node: &TestNode) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !node.run(&["health"]).status.success() {
        assert!(Instant::now() < deadline, "the index never caught up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = node.ok(&["search", "--origin", "polar", "--limit", "0", "--json"]);
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    answer["total"].as_u64().unwrap()
}

/// Waits (bounded) until `node`'s index serves `count` of polar's records.
fn wait_polar_records(node: &TestNode, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = polar_records(node);
        if now == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{now} of {count} records searchable"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A search at `node` answers, and fast, whatever the links do.
fn search_answers_quickly(node: &TestNode) {
    let started = Instant::now();
    node.ok(&["search", "sea ice", "--limit", "5", "--json"]);
    let took = started.elapsed();
    // A CLI process start included; the node's own answer is milliseconds.
    assert!(took < Duration::from_secs(3), "search took {took:?}");
}

/// The node's fsck, at rest, finds nothing; the node is started again.
fn fsck_clean(node: &mut TestNode) {
    assert!(node.stop(), "stops cleanly");
    let out = node.run(&["fsck", "--json"]);
    assert!(
        out.status.success(),
        "fsck: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    node.serve();
}

#[test]
fn a_link_cut_mid_stream_then_rejected_resumes_without_loss_or_duplicates() {
    const RECORDS: usize = 4000;
    let proxy = FaultProxy::start();
    let (polar, _polar_dir) = origin_behind(&proxy, RECORDS);
    let dir = tempfile::tempdir().unwrap();
    let mut here = puller(&dir, "genomics");
    polar.trust(&here, &[]);
    here.trust(&polar, &[]);

    // A slow path, so the pull is still streaming when the link is cut.
    proxy.set(Fault::Delay(Duration::from_millis(25)));
    let pulling = {
        let here_dir = here.data_dir().to_owned();
        std::thread::spawn(move || {
            let out = std::process::Command::new(meridian_bin())
                .arg("--data-dir")
                .arg(here_dir)
                .args(["sync", "now", "--json"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while polar_records(&here) == 0 {
        assert!(
            Instant::now() < deadline,
            "nothing arrived over the slow link"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    proxy.set(Fault::Drop);
    let cut_at = Instant::now();
    let report: serde_json::Value = serde_json::from_str(&pulling.join().unwrap()).unwrap();
    let report = report
        .as_array()
        .and_then(|peers| peers.iter().find(|p| p["peer"] == "polar"))
        .cloned()
        .expect("a report for polar");
    assert!(
        cut_at.elapsed() < Duration::from_secs(10),
        "the cut was noticed after {:?}",
        cut_at.elapsed()
    );
    assert_eq!(report["outcome"], "timeout", "{report}");
    assert_eq!(
        report["error"],
        format!("polar: sent nothing for {IDLE_SECS} s")
    );
    let status = here.peers_status();
    assert_eq!(status["polar"]["reachable"], false, "{status:?}");
    let kept = polar_records(&here);
    assert!(
        kept > 0 && kept < RECORDS as u64,
        "a part was committed before the cut: {kept}"
    );
    search_answers_quickly(&here);

    // Now the link rejects: the round says unreachable, at once.
    proxy.set(Fault::Reject);
    let started = Instant::now();
    let reports = here.sync_now();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(reports["polar"]["ok"], false, "{reports:?}");
    assert_eq!(reports["polar"]["outcome"], "unreachable", "{reports:?}");
    let status = here.peers_status();
    let reason = status["polar"]["last_error"].as_str().unwrap_or_default();
    assert!(reason.starts_with("polar: unreachable"), "{status:?}");
    assert_eq!(polar_records(&here), kept, "nothing committed is lost");

    // Healed: the pull resumes from its cursor and completes.
    proxy.set(Fault::Pass);
    let reports = here.sync_now();
    assert_eq!(reports["polar"]["ok"], true, "{reports:?}");
    // Exactly what was missing: the cursor kept every committed entry.
    let resumed = reports["polar"]["entries"].as_u64().unwrap();
    // The records not yet held, and the audience polar published when it
    // pinned `here` (after its records).
    assert_eq!(
        resumed,
        RECORDS as u64 - kept + 1,
        "resumed from the cursor, neither from the start nor past a gap"
    );
    wait_polar_records(&here, RECORDS as u64);
    assert_eq!(here.peers_status()["polar"]["lag"], 0);
    fsck_clean(&mut here);
    assert_eq!(polar_records(&here), RECORDS as u64);
}

#[test]
fn a_flapping_link_converges_and_a_silent_or_slow_peer_is_named() {
    const RECORDS: usize = 1000;
    let proxy = FaultProxy::start();
    let (polar, _polar_dir) = origin_behind(&proxy, RECORDS);
    let dir = tempfile::tempdir().unwrap();
    let here = puller(&dir, "genomics");
    polar.trust(&here, &[]);

    // A peer that accepts TCP and never answers: the round ends within the
    // idle timeout and names the reason.
    proxy.set(Fault::Drop);
    here.trust(&polar, &[]);
    let started = Instant::now();
    let reports = here.sync_now();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "sync now took {took:?}");
    assert_eq!(reports["polar"]["ok"], false, "{reports:?}");
    let status = here.peers_status();
    assert_eq!(status["polar"]["reachable"], false, "{status:?}");
    assert_ne!(status["polar"]["last_error"], "", "{status:?}");
    search_answers_quickly(&here);

    // A flapping link: up (slow: the whole log takes longer than one up
    // phase) and down every 400 ms while rounds run. Each round keeps what
    // it committed; the copy converges.
    let flapping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let proxy = std::sync::Arc::new(proxy);
    let flapper = {
        let (proxy, flapping) = (proxy.clone(), flapping.clone());
        std::thread::spawn(move || {
            let mut up = true;
            while flapping.load(std::sync::atomic::Ordering::Relaxed) {
                proxy.set(if up {
                    Fault::Delay(Duration::from_millis(15))
                } else {
                    Fault::Reject
                });
                up = !up;
                std::thread::sleep(Duration::from_millis(400));
            }
        })
    };
    let mut rounds = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        rounds += 1;
        let reports = here.sync_now();
        if reports["polar"]["ok"] == true && here.peers_status()["polar"]["lag"] == 0 {
            break;
        }
        // A refused round ends at once: let the link come up again.
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            Instant::now() < deadline,
            "no convergence in {rounds} rounds"
        );
    }
    flapping.store(false, std::sync::atomic::Ordering::Relaxed);
    flapper.join().unwrap();
    wait_polar_records(&here, RECORDS as u64);
    assert!(rounds > 1, "the link went down during the pull");
    eprintln!("converged over a flapping link in {rounds} rounds");

    // A slow path: every read delayed, yet items keep coming, so the idle
    // timeout never fires and a new record arrives.
    proxy.set(Fault::Delay(Duration::from_millis(200)));
    polar.import(&[record_line("PDC-late", "Late sea ice survey", "public")]);
    let reports = here.sync_now();
    assert_eq!(reports["polar"]["ok"], true, "{reports:?}");
    wait_polar_records(&here, RECORDS as u64 + 1);
    search_answers_quickly(&here);
    assert_eq!(here.peers_status()["polar"]["reachable"], true);
}
