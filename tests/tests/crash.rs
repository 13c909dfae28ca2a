//! `kill -9` at random moments during an import, during a pull and during
//! `meridian index rebuild`, with real processes. After each kill:
//! `meridian fsck` on the data directory at rest finds nothing but what
//! opening the node sets right, and after the restart every acknowledged
//! record is there, once (and, after a rebuild cut short, searchable, with
//! no unfinished index generation left on disk). At the end the node is
//! stopped cleanly and `fsck` is clean; so it is after a clean stop that
//! follows an import at once.
//!
//! The default run holds 5,000 records and kills 5 times; with
//! `MERIDIAN_LONG_TESTS=1`, 200,000 records and 20 kills (5 during a
//! rebuild). The seed is printed; `MERIDIAN_CRASH_SEED` replays a run.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use meridian_testkit::harness::{record_line, TestNode};

/// Records per `holdings import`: one acknowledgement each.
const IMPORT_CHUNK: usize = 250;

struct Plan {
    seed: u64,
    records: usize,
    kills: usize,
}

/// The run's size: `kills` is for the short and the long run.
fn plan(name: &str, kills: (usize, usize)) -> Plan {
    let long = std::env::var("MERIDIAN_LONG_TESTS").is_ok_and(|v| v == "1");
    let seed = std::env::var("MERIDIAN_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let (records, kills) = if long {
        (200_000, kills.1)
    } else {
        (5_000, kills.0)
    };
    eprintln!("{name}: MERIDIAN_CRASH_SEED={seed} records={records} kills={kills}");
    Plan {
        seed,
        records,
        kills,
    }
}

/// A small deterministic generator (xorshift*), so a seed replays a run.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn lines(records: usize) -> Vec<String> {
    (0..records)
        .map(|i| {
            record_line(
                &format!("PDC-{i:06}"),
                &format!("Ice station {i}"),
                "public",
            )
        })
        .collect()
}

/// `meridian fsck --json` on the stopped node.
fn fsck(node: &TestNode) -> (bool, serde_json::Value) {
    let out = node.run(&["fsck", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "fsck output ({e}): {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

/// After a kill, only what opening the node repairs may disagree: the own
/// log ahead of its checkpoint (a crash between the append and the
/// checkpoint). Returns the findings seen, for the log.
fn assert_only_open_repairs(node: &TestNode, own: &str, kill: usize) -> Vec<String> {
    let (_, report) = fsck(node);
    let findings = report["findings"].as_array().cloned().unwrap_or_default();
    for finding in &findings {
        assert!(
            finding["part"] == "checkpoint"
                && finding["origin"] == own
                && finding["repairable"] == true,
            "kill {kill}: fsck after the crash: {finding}"
        );
    }
    findings
        .iter()
        .map(|f| f["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The ids `node` holds of `origin` (`holdings list` for its own).
fn own_ids(node: &TestNode) -> Vec<String> {
    let records: Vec<serde_json::Value> =
        serde_json::from_str(&node.ok(&["holdings", "list", "--json"])).expect("a JSON array");
    records
        .iter()
        .map(|value| value["id"].as_str().expect("id").to_owned())
        .collect()
}

/// A clean stop right after an import leaves nothing for `fsck` to find:
/// the checkpoint signed over the import is on disk with the entries it
/// covers, although the stop comes before sled's own periodic flush.
#[test]
fn a_clean_stop_right_after_an_import_leaves_fsck_clean() {
    let mut node = TestNode::start("polar");
    let lines = lines(20);
    for (round, chunk) in lines.chunks(10).enumerate() {
        // Acknowledged once stored and signed, not once searchable: the
        // stop follows at once.
        node.import_no_wait(chunk);
        assert!(node.stop(), "round {round}: a clean stop");
        let (_, report) = fsck(&node);
        assert_eq!(report["clean"], true, "round {round}: {report}");
        node.serve();
    }
    assert_eq!(own_ids(&node).len(), 20);
}

/// The log position sled's newest page-table snapshot in `node`'s store
/// covers (its file is `snap.<position in hex>`); none in a store that was
/// empty when it was last opened.
fn store_snapshot(node: &TestNode) -> Option<u64> {
    let store = node.data_dir().join("store");
    std::fs::read_dir(&store)
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().ok()?;
            u64::from_str_radix(name.strip_prefix("snap.")?, 16).ok()
        })
        .max()
}

/// A clean stop leaves a snapshot of the store that covers everything
/// written before it, so the next start replays none of it (sled writes
/// one only when it opens a store; 15 s of replay after 10,000,000
/// records). After a kill the next start replays, and snapshots, as before.
#[test]
fn a_clean_stop_leaves_a_store_snapshot_for_the_next_start() {
    let mut node = TestNode::start("polar");
    let at_start = store_snapshot(&node);
    node.import(&lines(500));
    assert_eq!(
        store_snapshot(&node),
        at_start,
        "a running node writes no snapshot of its own"
    );
    assert!(node.stop(), "a clean stop");
    let at_stop = store_snapshot(&node);
    assert!(
        at_stop > at_start,
        "the stop snapshots what the import wrote: {at_start:?} then {at_stop:?}"
    );
    let (_, report) = fsck(&node);
    assert_eq!(report["clean"], true, "{report}");

    node.serve();
    // What the start replayed: only what fsck's open and the snapshot's
    // own close wrote (a few KiB), not the import (over 500 KiB).
    let replayed = store_snapshot(&node).unwrap() - at_stop.unwrap();
    assert!(
        replayed < 64 * 1024,
        "the start replayed {replayed} bytes past the stop's snapshot"
    );
    assert_eq!(own_ids(&node).len(), 500);
    node.import(&lines(1000)[500..]);
    let before_kill = store_snapshot(&node);
    node.kill9();
    assert_eq!(store_snapshot(&node), before_kill, "a kill writes none");
    node.serve();
    assert!(
        store_snapshot(&node) > before_kill,
        "the start after a kill replays the log and snapshots it"
    );
    assert_eq!(own_ids(&node).len(), 1000);
    assert!(node.stop(), "a clean stop");
}

#[test]
fn kill_9_during_an_import_loses_no_acknowledged_record() {
    let plan = plan("import", (5, 20));
    let mut rng = Rng::new(plan.seed);
    let all = lines(plan.records);
    let mut node = TestNode::start("polar");
    let work = tempfile::tempdir().unwrap();
    let chunk_file = work.path().join("chunk.jsonl");
    let mut acked: BTreeSet<usize> = BTreeSet::new();
    let mut next = 0usize;
    let started = Instant::now();
    // Each kill falls in its own share of the records, so it hits an
    // import in progress (or, when the share is done early, an idle node).
    let share = plan.records.div_ceil(plan.kills);
    // Imports of a few chunks per share, with kills spread over them: in the
    // long run the kills reach deep into a large log, not only its start.
    let chunk = (share / 5).max(IMPORT_CHUNK);
    let latest_kill = 400 * (chunk / IMPORT_CHUNK) as u64;
    for kill in 0..plan.kills {
        let delay = Duration::from_millis(10 + rng.below(latest_kill));
        let round_end = ((kill + 1) * share).min(all.len());
        let reached = std::thread::scope(|s| {
            let node = &node;
            s.spawn(move || {
                std::thread::sleep(delay);
                node.signal(libc::SIGKILL);
            });
            let mut reached = next;
            while reached < round_end {
                let end = (reached + chunk).min(round_end);
                // From a file: a node killed mid-import closes the
                // connection before the CLI has read all its input.
                std::fs::write(&chunk_file, all[reached..end].join("\n")).unwrap();
                let out = node.run(&["holdings", "import", chunk_file.to_str().unwrap()]);
                if !out.status.success() {
                    break;
                }
                acked.extend(reached..end);
                reached = end;
            }
            reached
        });
        next = reached;
        node.kill9();
        let findings = assert_only_open_repairs(&node, "polar", kill);
        eprintln!(
            "import kill {kill}: after {delay:?}, {} acknowledged; at rest: {findings:?}",
            acked.len()
        );
        node.serve();
        let ids = own_ids(&node);
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(
            unique.len(),
            ids.len(),
            "kill {kill}: a record listed twice"
        );
        for i in &acked {
            let id = format!("PDC-{i:06}");
            assert!(unique.contains(&id), "kill {kill}: acknowledged {id} lost");
        }
    }
    // Import whatever is left (records stored but not acknowledged come
    // back unchanged, not as a second version).
    for chunk in all[next..].chunks(IMPORT_CHUNK) {
        node.import(chunk);
    }
    node.import(&all[..IMPORT_CHUNK.min(all.len())]);
    assert!(node.stop(), "the node stops cleanly");
    let (clean, report) = fsck(&node);
    assert!(clean, "{report}");
    assert_eq!(report["records"], plan.records as u64, "{report}");
    assert_eq!(
        report["entries"],
        plan.records as u64 + 1,
        "each record once, after the key set: {report}"
    );
    eprintln!(
        "import: {} records, {} kills in {:?}",
        plan.records,
        plan.kills,
        started.elapsed()
    );
}

#[test]
fn kill_9_during_a_pull_resumes_from_the_cursor() {
    let plan = plan("pull", (5, 20));
    let mut rng = Rng::new(plan.seed ^ 0x5eed);
    let source = TestNode::start("polar");
    let mut replica = TestNode::start("uni");
    source.trust(&replica, &[]);
    replica.trust(&source, &[]);
    let all = lines(plan.records);
    let share = plan.records.div_ceil(plan.kills);
    // The source's log: its key set, its audience (it pins the replica)
    // and the records.
    let want = plan.records as u64 + 2;
    let started = Instant::now();
    let mut sizes = Vec::new();
    for kill in 0..plan.kills {
        // A share of new records at the source, so each kill hits a pull
        // in progress (or, when it is done early, an idle node).
        let from = (kill * share).min(all.len());
        let to = ((kill + 1) * share).min(all.len());
        for chunk in all[from..to].chunks(2_000) {
            source.import(chunk);
        }
        let delay = Duration::from_millis(10 + rng.below(600));
        std::thread::scope(|s| {
            let replica = &replica;
            s.spawn(move || {
                std::thread::sleep(delay);
                replica.signal(libc::SIGKILL);
            });
            // Pull until killed (or done: then the kill hits an idle node).
            while replica.run(&["sync", "now", "--json"]).status.success() {}
        });
        replica.kill9();
        let (_, report) = fsck(&replica);
        let findings = report["findings"].as_array().cloned().unwrap_or_default();
        assert!(
            findings.iter().all(|f| f["origin"] == "uni"
                && f["part"] == "checkpoint"
                && f["repairable"] == true),
            "kill {kill}: fsck after the crash: {report}"
        );
        let held = report["entries"].as_u64().unwrap_or(0);
        sizes.push(held);
        eprintln!("pull kill {kill}: after {delay:?}, {held} entries held (of {want} + own)");
        replica.serve();
    }
    // The cursor never went back: entries held only grow across kills.
    assert!(
        sizes.windows(2).all(|w| w[0] <= w[1]),
        "entries held went back: {sizes:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let reports = replica.sync_now();
        if reports
            .get("polar")
            .is_some_and(|r| r["ok"] == true && r["entries"] == 0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pull did not finish: {reports:?}"
        );
    }
    assert!(replica.stop(), "the replica stops cleanly");
    let (clean, report) = fsck(&replica);
    assert!(clean, "{report}");
    // The replica's own key set and audience, and the source's whole log.
    assert_eq!(report["entries"], want + 2, "{report}");
    eprintln!(
        "pull: {} records, {} kills in {:?}",
        plan.records,
        plan.kills,
        started.elapsed()
    );
}

/// What `meridian search` finds of `query` (as the operator): its total.
fn found(node: &TestNode, query: &str) -> Result<u64, String> {
    let out = node.try_ok(&["search", query, "--limit", "0", "--json"])?;
    let answer: serde_json::Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
    answer["total"]
        .as_u64()
        .ok_or_else(|| format!("no total in {answer}"))
}

/// Waits until `query` finds `want` records; panics with what it found.
fn wait_found(node: &TestNode, query: &str, want: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let total = found(node, query);
        if total == Ok(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: searching {query:?} finds {total:?}, not {want}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The index generations on disk (`g1`, `g2`, …): after an open, only the
/// one `CURRENT` names.
fn generations(node: &TestNode) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(node.data_dir().join("index"))
        .expect("the index directory")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "CURRENT")
        .collect();
    names.sort();
    names
}

/// `meridian index rebuild --json`: the entries it indexed, or why it failed.
fn rebuild(node: &TestNode) -> Result<u64, String> {
    let out = node.try_ok(&["index", "rebuild", "--json"])?;
    let report: serde_json::Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
    report["indexed"]
        .as_u64()
        .ok_or_else(|| format!("no count in {report}"))
}

#[test]
fn kill_9_during_an_index_rebuild_leaves_a_usable_index() {
    let plan = plan("rebuild", (5, 5));
    let mut rng = Rng::new(plan.seed ^ 0x1d3c);
    let mut node = TestNode::start("polar");
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("holdings.jsonl");
    std::fs::write(&file, lines(plan.records).join("\n")).unwrap();
    node.ok(&["holdings", "import", file.to_str().unwrap()]);
    let want = plan.records as u64;
    // The key set, then each record once.
    let entries = want + 1;
    wait_found(&node, "station", want, "after the import");
    // `index rebuild` is online only: the serving node does the work, so
    // that is the process killed. A first rebuild measures how long one
    // takes, and each kill falls at a random moment within that.
    let started = Instant::now();
    assert_eq!(rebuild(&node), Ok(entries), "a first rebuild");
    let took = started.elapsed();
    eprintln!("rebuild: {entries} entries in {took:?}");
    let window = took.as_millis().max(1) as u64;
    let mut outcomes = Vec::new();
    for kill in 0..plan.kills {
        let delay = Duration::from_millis(rng.below(window));
        let finished = std::thread::scope(|s| {
            let node = &node;
            s.spawn(move || {
                std::thread::sleep(delay);
                node.signal(libc::SIGKILL);
            });
            rebuild(node).is_ok()
        });
        node.kill9();
        let findings = assert_only_open_repairs(&node, "polar", kill);
        node.serve();
        assert_eq!(
            generations(&node).len(),
            1,
            "kill {kill}: index generations left after the restart: {:?}",
            generations(&node)
        );
        wait_found(&node, "station", want, &format!("kill {kill}"));
        wait_found(&node, "", want, &format!("kill {kill}"));
        assert_eq!(
            rebuild(&node),
            Ok(entries),
            "kill {kill}: a rebuild after the restart"
        );
        wait_found(&node, "station", want, &format!("kill {kill}, rebuilt"));
        assert_eq!(generations(&node).len(), 1, "kill {kill}: after a rebuild");
        eprintln!(
            "rebuild kill {kill}: after {delay:?}, rebuild {}; at rest: {findings:?}",
            if finished {
                "had finished"
            } else {
                "cut short"
            }
        );
        outcomes.push(finished);
    }
    assert!(node.stop(), "the node stops cleanly");
    let (clean, report) = fsck(&node);
    assert!(clean, "{report}");
    assert_eq!(report["records"], want, "{report}");
    assert_eq!(report["indexed"], want, "{report}");
    eprintln!(
        "rebuild: {} records, {} kills ({} cut a rebuild short) in {:?}",
        plan.records,
        plan.kills,
        outcomes.iter().filter(|done| !**done).count(),
        started.elapsed()
    );
}
