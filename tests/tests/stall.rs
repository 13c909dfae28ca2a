//! A peer that stops answering (its process stopped with SIGSTOP: the
//! kernel still accepts its TCP connections, nothing answers them) never
//! holds up `sync now`, and the origin it would have served comes through
//! a relay in the same round.

use std::time::{Duration, Instant};

use meridian_testkit::harness::{held, meridian_bin, record_line, TestNode};

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_peer_never_holds_up_sync_now_and_its_origin_comes_through_a_relay() {
    let polar = TestNode::start("polar");
    let uni = TestNode::start("uni");
    let dir = tempfile::tempdir().unwrap();
    let mut here = TestNode::start_at(
        meridian_bin(),
        &dir.path().join("genomics"),
        "genomics",
        &[
            ("MERIDIAN_SYNC__IDLE_TIMEOUT_SECS", "2"),
            ("MERIDIAN_SYNC__ROUND_TIMEOUT_SECS", "20"),
        ],
    )
    .unwrap();
    polar.trust(&uni, &[]);
    uni.trust(&polar, &[]);
    polar.trust(&here, &[]);
    uni.trust(&here, &[]);
    polar.import(&[
        record_line("PDC-1", "Arctic sea ice thickness", "public"),
        record_line("PDC-2", "Dome A ice core isotopes", "public"),
        record_line("PDC-3", "Glacier survey", "public"),
    ]);
    let relayed = uni.sync_now();
    assert_eq!(relayed["polar"]["ok"], true, "{relayed:?}");

    // The origin stops answering; `uni` holds its log. `here` pins both
    // only now, so nothing reached it before.
    let polar_invite = polar.invite();
    polar.signal(libc::SIGSTOP);
    here.ok(&["trust", "add", &polar_invite]);
    here.trust(&uni, &[]);
    let started = Instant::now();
    let reports = here.sync_now();
    let took = started.elapsed();
    let status = here.peers_status();
    polar.signal(libc::SIGCONT);
    assert!(took < Duration::from_secs(15), "sync now took {took:?}");

    let silent = &reports["polar"];
    assert_eq!(silent["ok"], false, "{reports:?}");
    assert_eq!(silent["outcome"], "timeout", "{reports:?}");
    assert_eq!(
        silent["error"], "polar: sent nothing for 2 s",
        "{reports:?}"
    );
    assert_eq!(reports["uni"]["ok"], true, "{reports:?}");
    assert!(
        held(&here, "polar", "PDC-3").await.is_some(),
        "polar's records came through uni"
    );
    assert_eq!(
        status["polar"]["last_error"], "polar: sent nothing for 2 s",
        "{status:?}"
    );
    assert_eq!(status["polar"]["reachable"], false, "{status:?}");
    eprintln!("sync now with a stopped peer answered in {took:?}");

    // Once it answers again, it is pulled from as before.
    let again = here.sync_now();
    assert_eq!(again["polar"]["ok"], true, "{again:?}");
    let status = here.peers_status();
    assert_eq!(status["polar"]["last_error"], "", "{status:?}");
    assert_eq!(status["polar"]["reachable"], true, "{status:?}");
    assert!(here.stop());
}

/// A client that opens a connection and then stops answering (here on the
/// admin socket: the HTTP/2 preface and settings, then nothing read) never
/// holds up a stop: HTTP/2's graceful close waits for the client to answer
/// a ping, and the node closes what is still open a few seconds after the
/// stop was asked for, well within what an orchestrator waits.
#[test]
fn a_client_that_stops_answering_never_holds_up_a_stop() {
    use std::io::Write;

    let mut node = TestNode::start("stuck");
    let mut stuck = std::os::unix::net::UnixStream::connect(node.data_dir().join("admin.sock"))
        .expect("connect to the admin socket");
    // The client preface, then an empty SETTINGS frame.
    stuck
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    assert!(node.stop(), "the node stopped cleanly");
    let took = started.elapsed();
    // Docker kills a container 10 s after it asked it to stop.
    assert!(took < Duration::from_secs(10), "the stop took {took:?}");
    eprintln!("stopped with a silent client connected in {took:?}");
    drop(stuck);
}
