use super::*;
use crate::ids::NodeId;
use crate::proto::DatasetRecord;
use crate::trust::PeerState;

fn peer(id: &str) -> Peer {
    Peer {
        node_id: NodeId::parse(id).unwrap(),
        endpoint: format!("{id}.example:7443"),
        identity_key: vec![0; 32],
        key_id: String::new(),
        tls_keys: Vec::new(),
        groups: vec!["polar".into()],
        state: PeerState::Active,
        added_at: String::new(),
        changed_at: String::new(),
    }
}

fn hit(origin: &str, id: &str, score: f32, visibility: Visibility) -> proto::SearchHit {
    proto::SearchHit {
        origin: origin.into(),
        id: id.into(),
        score,
        visibility: visibility as i32,
        ..Default::default()
    }
}

fn ids(results: &SearchResults) -> Vec<(String, String)> {
    results
        .hits
        .iter()
        .map(|h| (h.origin.clone(), h.id.clone()))
        .collect()
}

#[test]
fn the_plan_asks_each_other_active_origin_with_one_replica_holder_to_hedge_to() {
    let active = [peer("a"), peer("b"), peer("c")];
    let holders = |origin: &str| match origin {
        // "gone" is not an active peer: it cannot be asked.
        "b" => vec!["gone".into(), "a".into(), "c".into()],
        "c" => vec!["own".into()],
        _ => Vec::new(),
    };
    let targets = plan("own", &active, holders, &[]);
    let asked: Vec<(&str, Vec<&str>)> = targets
        .iter()
        .map(|t| {
            (
                t.origin.as_str(),
                t.holders.iter().map(|p| p.node_id.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        asked,
        vec![("a", vec!["a"]), ("b", vec!["b", "a"]), ("c", vec!["c"])]
    );
    // The origin filter narrows who is asked; this node is never asked.
    let targets = plan("a", &active, |_| Vec::new(), &["a".into(), "c".into()]);
    assert_eq!(
        targets
            .iter()
            .map(|t| t.origin.as_str())
            .collect::<Vec<_>>(),
        vec!["c"]
    );
}

#[test]
fn a_claim_narrows_what_the_pin_allows_and_never_widens_it() {
    let pinned = Viewer::peer_of("a", "polar", &["polar"]);
    assert_eq!(
        forwarded_viewer(pinned.clone(), OnBehalfOf::Node),
        pinned.clone()
    );
    assert_eq!(
        forwarded_viewer(pinned.clone(), OnBehalfOf::Anonymous),
        Viewer::Anonymous
    );
    // Unknown and unspecified claims are anonymous.
    assert_eq!(OnBehalfOf::from_wire(0), OnBehalfOf::Anonymous);
    assert_eq!(OnBehalfOf::from_wire(99), OnBehalfOf::Anonymous);
    assert_eq!(
        OnBehalfOf::from_wire(proto::OnBehalfOf::Node as i32),
        OnBehalfOf::Node
    );
    // Only the operator's searches are asked for as the node itself.
    assert_eq!(
        OnBehalfOf::for_viewer(&Viewer::Operator {
            node: NodeId::parse("a").unwrap()
        }),
        OnBehalfOf::Node
    );
    assert_eq!(OnBehalfOf::for_viewer(&pinned), OnBehalfOf::Anonymous);
    assert_eq!(
        OnBehalfOf::for_viewer(&Viewer::Anonymous),
        OnBehalfOf::Anonymous
    );
}

#[test]
fn a_peer_answer_keeps_only_the_asked_origin_and_what_the_viewer_may_see() {
    let response = proto::PeerSearchResponse {
        hits: vec![
            hit("b", "public", 3.0, Visibility::Public),
            hit("b", "federation", 2.0, Visibility::Federation),
            hit("b", "private", 2.0, Visibility::Private),
            hit("x", "injected", 9.0, Visibility::Public),
        ],
        total: 4,
        total_is_estimate: false,
        facets: vec![
            proto::Facet {
                name: "origin".into(),
                values: vec![proto::FacetValue {
                    value: "b".into(),
                    count: 4,
                }],
            },
            proto::Facet {
                name: "made-up".into(),
                values: Vec::new(),
            },
        ],
        positions: Vec::new(),
    };
    let anonymous = accept("b", &Viewer::Anonymous, 20, response.clone());
    assert_eq!(ids(&anonymous), vec![("b".into(), "public".into())]);
    assert!(anonymous.facets.contains_key("origin"));
    assert!(!anonymous.facets.contains_key("made-up"));
    let operator = Viewer::Operator {
        node: NodeId::parse("a").unwrap(),
    };
    let seen = accept("b", &operator, 2, response);
    assert_eq!(
        ids(&seen),
        vec![
            ("b".into(), "public".into()),
            ("b".into(), "federation".into())
        ]
    );
}

/// A peer's facets are held to what could be true of its answer: no other
/// origin named, no count above its total, no value past a filter value's
/// length, no year that is not a number, each facet and value once. So a
/// peer cannot make the merged facets name origins it was not asked for,
/// nor push the true values out of their top with counts of u64::MAX.
#[test]
fn a_peers_facets_cannot_name_other_origins_or_outweigh_the_rest() {
    let values = |pairs: &[(&str, u64)]| {
        pairs
            .iter()
            .map(|(value, count)| proto::FacetValue {
                value: (*value).into(),
                count: *count,
            })
            .collect()
    };
    let long = "x".repeat(crate::query::MAX_FILTER_VALUE_BYTES + 1);
    let facet = |name: &str, pairs: &[(&str, u64)]| proto::Facet {
        name: name.into(),
        values: values(pairs),
    };
    let response = proto::PeerSearchResponse {
        hits: Vec::new(),
        total: 7,
        total_is_estimate: true,
        facets: vec![
            facet("origin", &[("victim", u64::MAX), ("b", 7)]),
            facet("origin", &[("other", 3)]),
            facet(
                "discipline",
                &[
                    ("made-up", u64::MAX),
                    ("made-up", 5),
                    (&long, 1),
                    ("ice", 2),
                ],
            ),
            facet("year", &[("1999", 4), ("soon", 2)]),
        ],
        positions: Vec::new(),
    };
    let accepted = accept("b", &Viewer::Anonymous, 20, response);
    assert!(accepted.estimated, "the peer's counts are its estimates");
    assert_eq!(accepted.facets["origin"], [("b".to_owned(), 7)]);
    assert_eq!(
        accepted.facets["discipline"],
        [("made-up".to_owned(), 7), ("ice".to_owned(), 2)]
    );
    assert_eq!(accepted.facets["year"], [("1999".to_owned(), 4)]);

    // Merged with this node's own part, the true values keep their place.
    let own = SearchResults {
        total: 50,
        estimated: false,
        hits: Vec::new(),
        facets: BTreeMap::from([(
            "discipline".to_owned(),
            (0..20).map(|i| (format!("d{i:02}"), 40 - i)).collect(),
        )]),
        next_cursor: None,
    };
    let merged = merge(
        Sort::Relevance,
        10,
        vec![own, accepted],
        &Default::default(),
    );
    let disciplines: Vec<&str> = merged.facets["discipline"]
        .iter()
        .map(|(value, _)| value.as_str())
        .collect();
    assert_eq!(disciplines.len(), FACET_TOP_N);
    assert_eq!(disciplines[0], "d00");
    assert!(!disciplines.contains(&"made-up"), "{disciplines:?}");
}

/// A peer's hit is its word: not marked verified, its snippet made markup
/// this node would write, and a score that is not a finite positive number
/// counts 0, so no peer ranks first by NaN or infinity.
#[test]
fn a_peers_hit_is_unverified_sanitized_and_cannot_outrank_by_nan() {
    let mut sent = hit("a", "r0", f32::NAN, Visibility::Public);
    sent.snippet = "<script>x</script><b>ice</b>".into();
    let taken = hit_from_wire(sent);
    assert!(!taken.verified);
    assert_eq!(taken.score, 0.0);
    assert_eq!(taken.snippet, "&lt;script&gt;x&lt;/script&gt;<b>ice</b>");
    for score in [f32::INFINITY, f32::NEG_INFINITY, -3.0] {
        assert_eq!(
            hit_from_wire(hit("a", "r0", score, Visibility::Public)).score,
            0.0
        );
    }
    assert_eq!(
        hit_from_wire(hit("a", "r0", 2.5, Visibility::Public)).score,
        2.5
    );
}

#[test]
fn merged_pages_rank_in_one_order_and_sum_totals_and_facets() {
    let part = |origin: &str, scores: &[f32], total: u64, count: u64| SearchResults {
        estimated: origin == "b",
        hits: scores
            .iter()
            .enumerate()
            .map(|(i, s)| hit_from_wire(hit(origin, &format!("r{i}"), *s, Visibility::Public)))
            .collect(),
        total,
        facets: [(
            "access".to_owned(),
            vec![("open".to_owned(), count), (origin.to_owned(), 1)],
        )]
        .into(),
        next_cursor: None,
    };
    let merged = merge(
        Sort::Relevance,
        3,
        vec![part("a", &[5.0, 1.0], 10, 4), part("b", &[3.0, 1.0], 7, 2)],
        &Default::default(),
    );
    assert_eq!(
        ids(&merged),
        vec![
            ("a".into(), "r0".into()),
            ("b".into(), "r0".into()),
            // Equal scores: ties by (origin, id).
            ("a".into(), "r1".into()),
        ]
    );
    assert_eq!(merged.total, 17);
    assert!(merged.estimated, "b's counts were estimated, so is the sum");
    assert_eq!(
        merged.facets["access"],
        vec![("open".into(), 6), ("a".into(), 1), ("b".into(), 1)]
    );
    assert_eq!(merged.next_cursor, None);

    // A peer claiming the largest counts: the sums stay at the largest.
    let merged = merge(
        Sort::Relevance,
        3,
        vec![
            part("a", &[1.0], u64::MAX, u64::MAX),
            part("b", &[1.0], 7, 2),
        ],
        &Default::default(),
    );
    assert_eq!(merged.total, u64::MAX);
    assert_eq!(merged.facets["access"][0], ("open".into(), u64::MAX));
}

#[test]
fn the_deadline_defaults_and_is_capped() {
    let config = SearchConfig {
        live_deadline_ms: 2000,
        max_live_deadline_ms: 5000,
        ..SearchConfig::default()
    };
    assert_eq!(deadline(&config, None), Duration::from_secs(2));
    assert_eq!(
        deadline(&config, Some(Duration::from_millis(300))),
        Duration::from_millis(300)
    );
    assert_eq!(
        deadline(&config, Some(Duration::from_secs(60))),
        Duration::from_secs(5)
    );
}

#[test]
fn anonymous_callers_get_counts_per_coverage_not_peer_names() {
    let line = |origin: &str, coverage, as_of: &str| Completeness {
        origin: origin.into(),
        coverage,
        as_of: as_of.into(),
        peers: 0,
        log_size: 7,
        answered_by: "z".into(),
    };
    let lines = super::super::anonymous_lines(vec![
        line("b", Coverage::Ok, ""),
        line("c", Coverage::Timeout, "2026-01-02T00:00:00Z"),
        line("d", Coverage::Timeout, "2026-01-01T00:00:00Z"),
    ]);
    assert_eq!(lines.len(), 2);
    assert!(lines
        .iter()
        .all(|l| l.origin.is_empty() && l.answered_by.is_empty() && l.log_size == 0));
    assert_eq!((lines[0].coverage, lines[0].peers), (Coverage::Ok, 1));
    assert_eq!(
        (lines[1].coverage, lines[1].peers, lines[1].as_of.as_str()),
        (Coverage::Timeout, 2, "2026-01-01T00:00:00Z")
    );
}

/// The real sample holdings of three institutions, each as its origin would
/// index them.
fn samples() -> Vec<(&'static str, Vec<DatasetRecord>)> {
    [
        (
            "polar-dc",
            include_str!("../../../../../deploy/samples/polar-dc.jsonl"),
        ),
        (
            "genomics",
            include_str!("../../../../../deploy/samples/genomics.jsonl"),
        ),
        (
            "materials",
            include_str!("../../../../../deploy/samples/materials.jsonl"),
        ),
    ]
    .into_iter()
    .map(|(origin, lines)| {
        let records = lines
            .lines()
            .map(|line| {
                let mut record = crate::record::parse_json_line(line).unwrap();
                record.origin = origin.into();
                record.version = 1;
                record.visibility = Visibility::Public as i32;
                record
            })
            .collect();
        (origin, records)
    })
    .collect()
}

fn index_of(
    records: Vec<DatasetRecord>,
) -> (
    std::sync::Arc<crate::index::HoldingsIndex>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let index = std::sync::Arc::new(crate::index::HoldingsIndex::open(dir.path()).unwrap());
    let ops = records
        .into_iter()
        .map(crate::index::IndexOp::Upsert)
        .collect();
    index.apply(ops, &Default::default()).unwrap();
    (index, dir)
}

/// One ranking: a live search's hits, merged from three nodes that each
/// hold one institution's records, come in the order one index holding all
/// of them gives, whoever asks; the queries are every word of the
/// records' titles and each title's first pair of words.
#[test]
fn live_hits_rank_as_one_index_holding_everything_ranks_them() {
    let samples = samples();
    let everything: Vec<DatasetRecord> = samples.iter().flat_map(|(_, r)| r.clone()).collect();
    let mut queries: Vec<String> = Vec::new();
    for record in &everything {
        let words: Vec<String> = record
            .title
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.len() > 3)
            .map(str::to_lowercase)
            .collect();
        queries.extend(words.iter().cloned());
        if let [a, b, ..] = words.as_slice() {
            queries.push(format!("{a} {b}"));
        }
    }
    queries.sort();
    queries.dedup();
    assert!(queries.len() >= 500, "{} queries", queries.len());
    let (one, _one_dir) = index_of(everything);
    let nodes: Vec<_> = samples.into_iter().map(|(_, r)| index_of(r)).collect();
    let operator = Viewer::Operator {
        node: NodeId::parse("polar-dc").unwrap(),
    };
    for viewer in [operator, Viewer::Anonymous] {
        for text in &queries {
            let request = SearchRequest {
                text: text.clone(),
                scope: Scope::Live,
                limit: 10,
                ..Default::default()
            };
            let parts = nodes
                .iter()
                .map(|(index, _)| index.search(&request, &viewer).unwrap())
                .collect();
            let merged = merge(Sort::Relevance, 10, parts, &Default::default());
            let alone = one.search(&request, &viewer).unwrap();
            assert_eq!(merged.total, alone.total, "{text}");
            let scores = |r: &SearchResults| r.hits.iter().map(|h| h.score).collect::<Vec<_>>();
            assert_eq!(scores(&merged), scores(&alone), "{text}");
            assert_eq!(ids(&merged), ids(&alone), "{text}");
        }
    }
}

/// Holds every search of `node`'s index (on a thread of its own) until the
/// returned sender is dropped.
fn hold_searches(node: &Arc<Node>) -> std::sync::mpsc::Sender<()> {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (held, holding) = std::sync::mpsc::channel();
    let node = node.clone();
    std::thread::spawn(move || {
        let _held = node.live_index().hold();
        held.send(()).unwrap();
        let _ = released.recv();
    });
    holding.recv().unwrap();
    release
}

/// Dials peers as `peer` says, counting the dials.
fn dialing(
    dialed: Arc<std::sync::atomic::AtomicUsize>,
    peer: impl Fn() -> Result<Arc<dyn crate::sync::FederationPeer>, SyncError> + Send + Sync + 'static,
) -> crate::sync::Connector {
    let peer = Arc::new(peer);
    Arc::new(move |_: Peer| {
        dialed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let answer = peer();
        Box::pin(async move { answer })
    })
}

/// A peer that answers a live search, with nothing, after `after`, and
/// notes how long each asker said it would wait.
#[derive(Default)]
struct Slow {
    after: Duration,
    within: Arc<std::sync::Mutex<Vec<Duration>>>,
}

#[async_trait::async_trait]
impl crate::sync::FederationPeer for Slow {
    async fn node_info(&self) -> Result<proto::NodeInfo, SyncError> {
        Err(SyncError::NotTrusted("slow".into()))
    }
    async fn pull(
        &self,
        _origin: &str,
        _after_index: u64,
        _max_batch: u32,
    ) -> Result<crate::sync::PullStream, SyncError> {
        Err(SyncError::NotTrusted("slow".into()))
    }
    async fn hint(&self, _origin: &str, _size: u64) -> Result<(), SyncError> {
        Ok(())
    }
    async fn search(
        &self,
        _request: proto::PeerSearchRequest,
        within: std::time::Duration,
    ) -> Result<proto::PeerSearchResponse, SyncError> {
        self.within.lock().unwrap().push(within);
        tokio::time::sleep(self.after).await;
        Ok(proto::PeerSearchResponse::default())
    }
}

/// Waits until `check` holds, for at most ten seconds.
async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn target(origin: &str) -> Target {
    Target {
        origin: origin.into(),
        holders: vec![peer(origin)],
    }
}

/// However many peers are down, one live search searches at most two local
/// copies at once (the blocking threads one search may take): with six
/// origins failing together, two copies are searched and four wait for a
/// place; once the searches end, every origin is answered from its copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_search_searches_at_most_two_local_copies_at_once() {
    let (node, _dir) = crate::test_support::opened_node("here");
    let dialed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let down = dialing(dialed.clone(), || {
        Err(SyncError::Unreachable {
            peer: "down".into(),
            message: "connection refused".into(),
        })
    });
    let replicator = Replicator::new(node.clone(), down);
    let local = LocalIndex::new(
        node.clone(),
        SearchRequest::default(),
        Viewer::Anonymous,
        None,
    );
    let places = local.places.clone();
    let searching = || LOCAL_SEARCHES - places.available_permits();

    let held = hold_searches(&node);
    let deadline = Instant::now() + Duration::from_secs(10);
    let asks: Vec<_> = (1..=6)
        .map(|i| {
            tokio::spawn(ask_or_replica(
                replicator.clone(),
                target(&format!("peer-{i}")),
                proto::PeerSearchRequest::default(),
                deadline,
                local.clone(),
            ))
        })
        .collect();
    until("every origin failed and copies are searched", || {
        dialed.load(std::sync::atomic::Ordering::SeqCst) == 6 && searching() >= 2
    })
    .await;
    // The other four asked for their copies at the same moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(searching(), 2, "local copies searched at once");

    drop(held);
    for ask in asks {
        let (origin, found) = ask.await.unwrap();
        let Found::Replica { coverage, results } = found else {
            panic!("{origin}: answered live");
        };
        assert_eq!(coverage, Coverage::Unreachable, "{origin}");
        results.unwrap();
    }
    assert_eq!(searching(), 0, "every place given back");
}

/// A peer is told how long the asker waits (sent as the call's
/// `grpc-timeout`), so that its search stops when the asker stops
/// waiting, not at the longest it allows.
#[tokio::test]
async fn a_peer_is_told_how_long_the_asker_waits() {
    let (node, _dir) = crate::test_support::opened_node("here");
    let within = Arc::new(std::sync::Mutex::new(Vec::new()));
    let told = within.clone();
    let replicator = Replicator::new(
        node.clone(),
        dialing(Arc::default(), move || {
            Ok(Arc::new(Slow {
                after: Duration::ZERO,
                within: told.clone(),
            }) as Arc<dyn crate::sync::FederationPeer>)
        }),
    );
    let local = LocalIndex::new(node, SearchRequest::default(), Viewer::Anonymous, None);
    let wait = Duration::from_millis(800);
    let (origin, found) = ask_or_replica(
        replicator,
        target("peer-1"),
        proto::PeerSearchRequest::default(),
        Instant::now() + wait,
        local,
    )
    .await;
    assert!(matches!(found, Found::Live { .. }), "{origin}");
    let within = within.lock().unwrap().clone();
    assert_eq!(within.len(), 1, "{within:?}");
    assert!(
        within[0] <= wait && within[0] > wait / 2,
        "told {:?} of {wait:?}",
        within[0]
    );
}

/// A copy searched for an origin that answers after all is dropped: one
/// still waiting for a place never starts, and one under way keeps its
/// place until its search ends (a blocking search cannot be called back),
/// so the places count the blocking threads a live search holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_copy_starts_no_search_and_a_running_one_keeps_its_place() {
    let (node, _dir) = crate::test_support::opened_node("here");
    let dialed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Answers after half the deadline: its copy is searched meanwhile.
    let slow = dialing(dialed, || {
        Ok(Arc::new(Slow {
            after: Duration::from_millis(1500),
            ..Slow::default()
        }) as Arc<dyn crate::sync::FederationPeer>)
    });
    let replicator = Replicator::new(node.clone(), slow);
    // The caller's place among the node's searches (`limits.searches`).
    let searches = Arc::new(tokio::sync::Semaphore::new(1));
    let caller = searches.clone().acquire_owned().await.unwrap();
    let local = LocalIndex::new(
        node.clone(),
        SearchRequest::default(),
        Viewer::Anonymous,
        Some(caller),
    );
    let places = local.places.clone();
    let searching = || LOCAL_SEARCHES - places.available_permits();
    let held = hold_searches(&node);
    let ask = |local: LocalIndex| {
        ask_or_replica(
            replicator.clone(),
            target("slow"),
            proto::PeerSearchRequest::default(),
            Instant::now() + Duration::from_secs(2),
            local,
        )
    };

    // Every place taken: the copy waits, and is dropped before it starts.
    let taken = places.clone().acquire_many_owned(2).await.unwrap();
    let (_, found) = ask(local.clone()).await;
    assert!(matches!(found, Found::Live { .. }));
    drop(taken);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(searching(), 0, "a dropped copy started a search");

    // A place free: the copy's search starts and outlasts the answer, and
    // the live search itself (its caller hung up).
    let (_, found) = ask(local.clone()).await;
    assert!(matches!(found, Found::Live { .. }));
    assert_eq!(searching(), 1, "the running search keeps its place");
    drop(local);
    assert_eq!(
        searches.available_permits(),
        0,
        "the running search keeps the caller's place too"
    );
    drop(held);
    until("the search ended", || searching() == 0).await;
    until("the caller's place is given back", || {
        searches.available_permits() == 1
    })
    .await;
}

/// A revoked peer's records leave the index, but the index keeps its
/// position in that peer's log: a live search names no revoked peer in its
/// report, nor counts it among the peers an anonymous caller is told of,
/// as the federation scope does not. A suspended peer is not asked and is
/// answered from its copy.
#[tokio::test]
async fn a_live_report_names_no_revoked_peer() {
    let (here, _here) = crate::test_support::opened_node("here");
    let (polar, _polar) = crate::test_support::opened_node("polar");
    let (uni, _uni) = crate::test_support::opened_node("uni");
    here.trust().add(&polar.invite(), &[]).unwrap();
    here.trust().add(&uni.invite(), &[]).unwrap();
    let copies: Vec<crate::index::IndexOp> = ["polar", "uni"]
        .into_iter()
        .map(|origin| {
            let mut record = crate::record::parse_json_line(&crate::test_support::record_line(
                "PDC-1",
                "Ice station",
                "public",
            ))
            .unwrap();
            record.origin = origin.into();
            record.version = 1;
            crate::index::IndexOp::Upsert(record)
        })
        .collect();
    let cursors = BTreeMap::from([("polar".to_string(), 1), ("uni".to_string(), 1)]);
    here.index().apply(copies, &cursors).unwrap();
    here.trust().set_state("uni", PeerState::Suspended).unwrap();
    here.trust().set_state("polar", PeerState::Revoked).unwrap();
    here.unindex_origin("polar").unwrap();
    // The store holds none of polar's records here: take out the copy the
    // revocation would have found there.
    here.index()
        .apply(
            vec![crate::index::IndexOp::Remove {
                origin: "polar".into(),
                id: "PDC-1".into(),
            }],
            &BTreeMap::new(),
        )
        .unwrap();
    assert!(here.index().cursors().contains_key("polar"));

    let dialed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let replicator = Replicator::new(
        here.clone(),
        dialing(dialed.clone(), || {
            Err(SyncError::Unreachable {
                peer: "nobody".into(),
                message: "not dialed".into(),
            })
        }),
    );
    let search = |viewer: Viewer| {
        live(
            replicator.clone(),
            SearchRequest {
                text: "station".into(),
                ..Default::default()
            },
            proto::SearchRequest::default(),
            viewer,
            Duration::from_secs(2),
            None,
        )
    };
    let operator = Viewer::Operator {
        node: here.node_id().clone(),
    };
    let answer = search(operator).await.unwrap();
    let named: Vec<&str> = answer
        .completeness
        .iter()
        .map(|line| line.origin.as_str())
        .collect();
    assert_eq!(named, ["here", "uni"], "{:?}", answer.completeness);
    assert_eq!(
        ids(&answer.results),
        [("uni".to_string(), "PDC-1".to_string())]
    );

    let answer = search(Viewer::Anonymous).await.unwrap();
    let peers: u32 = answer.completeness[1..].iter().map(|line| line.peers).sum();
    assert_eq!(peers, 1, "{:?}", answer.completeness);
    assert_eq!(dialed.load(std::sync::atomic::Ordering::SeqCst), 0);
}
