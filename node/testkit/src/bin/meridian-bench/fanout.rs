//! `meridian-bench fanout`: live searches (`scope=live`) while peers fail.
//!
//! One asking node pins ten peers (by default); each peer holds records of
//! its own and pins the asker back, and the asker reaches each peer only
//! through a TCP fault proxy (the peer's advertised endpoint, as in the
//! partition suite). The asker pulls a copy of every peer first, so it
//! holds a replica of each. Then one peer is blackholed (its proxy accepts
//! connections and passes nothing, a dropped partition) and one is slowed
//! (each read through its proxy delayed, 2 s by default), and N live
//! searches run at the asker as its operator, with the node's default
//! deadline, a few at a time.
//!
//! Reported: latency at the client (p50, p99, max) against the target of
//! the deadline + 20 ms, the node's own time for the same searches (its
//! `took_micros`: what is not there was spent in transport or waiting for
//! a core), and for every answer whether
//!
//! - each healthy peer answered live (`ok`) with all its matching records,
//! - the blackholed and the slowed peer are reported (`timeout` or
//!   `unreachable`) with their hits answered from the asker's replica.
//!
//! No peer pins another, so no peer holds a copy of another's log and no
//! hedge is possible: a failed peer's hits can only come from the asker's
//! own replica. Exits non-zero when an answer breaks a check.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use meridian_proto::admin_client::AdminClient;
use meridian_proto::{CompletenessStatus, Scope, SearchRequest, SearchResponse};
use meridian_testkit::fault::{Fault, FaultProxy};
use meridian_testkit::harness::{record_line, TestNode};
use tonic::transport::Channel;

use crate::replicate::wait_searchable;
use crate::search::Summary;
use crate::{meridian, meridian_binary, start_node_with};

/// Words of the peers' titles: record `i` of every peer carries word
/// `i % WORDS.len()`, and each query asks for one word, so every peer has
/// hits in every answer.
const WORDS: [&str; 10] = [
    "walrus", "glacier", "plankton", "tundra", "aurora", "fjord", "krill", "moraine", "polynya",
    "lichen",
];

/// The node's default live deadline (`search.live_deadline_ms`): the
/// searches ask for no other.
const DEFAULT_DEADLINE: Duration = Duration::from_millis(2000);

/// What the target allows past the deadline, at the client.
const TARGET_MARGIN: Duration = Duration::from_millis(20);

#[derive(clap::Args)]
pub struct Args {
    /// Peers of the asking node (two of them faulty).
    #[arg(long, default_value_t = 10)]
    peers: usize,
    /// Records each peer holds.
    #[arg(long, default_value_t = 100)]
    records: usize,
    /// Live searches to run.
    #[arg(long, default_value_t = 300)]
    queries: usize,
    /// Searches in flight at once (each waits for its answer).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// How long the slowed peer's proxy delays each read, milliseconds.
    #[arg(long, default_value_t = 2000)]
    slow_ms: u64,
}

/// What one answer showed.
struct Checked {
    latency: Duration,
    /// How long the node took by its own account (`took_micros`).
    took: Duration,
    /// Why the answer breaks a check (empty: it does not).
    problems: Vec<String>,
    /// The faulty peers' statuses, by peer.
    faulty: Vec<(String, CompletenessStatus)>,
}

pub fn run(args: Args) -> Result<()> {
    if args.peers < 3 || args.records < WORDS.len() || args.queries == 0 || args.concurrency == 0 {
        bail!(
            "--peers must be at least 3, --records at least {}, --queries and --concurrency at least 1",
            WORDS.len()
        );
    }
    let bin = meridian_binary()?;
    let work = tempfile::tempdir()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "fan-out benchmark: 1 asking node, {} peers of {} records each behind TCP fault proxies, \
         {} live searches {} at a time, {cores} cores",
        args.peers, args.records, args.queries, args.concurrency
    );

    let asker = start_node_with(&bin, &work.path().join("asker"), "asker", &[])?;
    let mut proxies = Vec::new();
    let mut peers = Vec::new();
    for n in 0..args.peers {
        let name = format!("peer{n:02}");
        let proxy = FaultProxy::start();
        let endpoint = proxy.addr().to_string();
        let peer = start_node_with(
            &bin,
            &work.path().join(&name),
            &name,
            &[("MERIDIAN_ENDPOINT", &endpoint)],
        )?;
        proxy.set_upstream(peer.catalog.context("a peer has no catalog listener")?);
        proxies.push(proxy);
        peers.push(peer);
    }
    let asker_invite = meridian(&asker, &["keys", "show", "--invite"])?;
    for peer in &peers {
        meridian(peer, &["trust", "add", asker_invite.trim()])?;
        let invite = meridian(peer, &["keys", "show", "--invite"])?;
        meridian(&asker, &["trust", "add", invite.trim()])?;
        holdings(peer, args.records, work.path())?;
    }
    meridian(&asker, &["sync", "now"])?;
    for peer in &peers {
        wait_searchable(&asker, &peer.name, args.records as u64)?;
    }
    println!(
        "asker: a replica of every peer's {} records, searchable",
        args.records
    );

    let (blackholed, slowed) = (peers[0].name.clone(), peers[1].name.clone());
    proxies[0].set(Fault::Drop);
    proxies[1].set(Fault::Delay(Duration::from_millis(args.slow_ms)));
    println!(
        "faults: {blackholed} blackholed (connections accepted, nothing passes), \
         {slowed} slowed ({} ms per read); deadline: the node's default, {} ms",
        args.slow_ms,
        DEFAULT_DEADLINE.as_millis()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let names: Vec<String> = peers.iter().map(|p| p.name.clone()).collect();
    let faulty = [blackholed.clone(), slowed.clone()];
    let expect = Arc::new(Expect {
        peers: names,
        faulty: faulty.to_vec(),
        records: args.records,
    });
    let checked = runtime.block_on(searches(&asker, &args, expect))?;

    let latencies: Vec<f64> = checked
        .iter()
        .map(|c| c.latency.as_secs_f64() * 1000.0)
        .collect();
    let summary = Summary::of(&latencies);
    println!("live search latency at the client: {summary}");
    let took: Vec<f64> = checked
        .iter()
        .map(|c| c.took.as_secs_f64() * 1000.0)
        .collect();
    println!(
        "the node's own time (took_micros):    {}",
        Summary::of(&took)
    );
    let bound = (DEFAULT_DEADLINE + TARGET_MARGIN).as_secs_f64() * 1000.0;
    println!(
        "target p99 <= deadline + 20 ms = {bound:.0} ms: {}",
        if summary.p99 <= bound {
            "met"
        } else {
            "missed"
        }
    );
    for name in &faulty {
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for c in &checked {
            for (peer, status) in &c.faulty {
                if peer == name {
                    *counts.entry(status.as_str_name()).or_default() += 1;
                }
            }
        }
        println!(
            "{name}: reported {counts:?}; its hits answered from the asker's replica in every answer that passed"
        );
    }
    let broken: Vec<&Checked> = checked.iter().filter(|c| !c.problems.is_empty()).collect();
    println!(
        "checks: {} answers, {} with every healthy peer's hits live (ok) and both faulty peers \
         reported with their replica's hits",
        checked.len(),
        checked.len() - broken.len()
    );
    for c in broken.iter().take(5) {
        println!("  broken: {}", c.problems.join("; "));
    }
    if !broken.is_empty() {
        bail!(
            "{} of {} answers broke a check",
            broken.len(),
            checked.len()
        );
    }
    Ok(())
}

/// `records` public records at `peer`: record `i` carries word
/// `WORDS[i % WORDS.len()]`.
fn holdings(peer: &TestNode, records: usize, work: &Path) -> Result<()> {
    let file = work.join(format!("{}.jsonl", peer.name));
    let lines: Vec<String> = (0..records)
        .map(|i| {
            record_line(
                &format!("{}-{i:05}", peer.name),
                &format!("Sea ice {} survey {i}", WORDS[i % WORDS.len()]),
                "public",
            )
        })
        .collect();
    std::fs::write(&file, lines.join("\n"))?;
    meridian(
        peer,
        &["holdings", "import", file.to_str().context("a UTF-8 path")?],
    )?;
    Ok(())
}

/// What every answer must show.
struct Expect {
    peers: Vec<String>,
    faulty: Vec<String>,
    records: usize,
}

impl Expect {
    /// How many of each peer's records carry word `w`.
    fn matching(&self, w: usize) -> usize {
        (0..self.records).filter(|i| i % WORDS.len() == w).count()
    }

    fn check(&self, w: usize, latency: Duration, answer: &SearchResponse) -> Checked {
        let mut problems = Vec::new();
        let mut faulty = Vec::new();
        let want = self.matching(w);
        for peer in &self.peers {
            let hits = answer.hits.iter().filter(|h| &h.origin == peer).count();
            if hits != want {
                problems.push(format!("{peer}: {hits} of {want} hits"));
            }
            let Some(line) = answer.completeness.iter().find(|c| &c.origin == peer) else {
                problems.push(format!("{peer}: no completeness line"));
                continue;
            };
            let status = line.status();
            if self.faulty.contains(peer) {
                faulty.push((peer.clone(), status));
                if !matches!(
                    status,
                    CompletenessStatus::Timeout | CompletenessStatus::Unreachable
                ) {
                    problems.push(format!("{peer} (faulty): reported {status:?}"));
                }
            } else if status != CompletenessStatus::Ok || !line.answered_by.is_empty() {
                problems.push(format!(
                    "{peer}: reported {status:?} (answered by {:?}), not ok from itself",
                    line.answered_by
                ));
            }
            if (line.log_size as usize) < self.records {
                problems.push(format!(
                    "{peer}: answered at log size {}, short of its {} records",
                    line.log_size, self.records
                ));
            }
        }
        Checked {
            latency,
            took: Duration::from_micros(answer.took_micros),
            problems,
            faulty,
        }
    }
}

/// Runs the searches, `concurrency` at a time, over the asker's admin
/// socket (as its operator); each answer checked.
async fn searches(asker: &TestNode, args: &Args, expect: Arc<Expect>) -> Result<Vec<Checked>> {
    let admin: AdminClient<Channel> = meridian_server::admin_socket::connect(asker.data_dir())
        .await
        .context("the asker's admin socket")?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (mut admin, next, expect) = (admin.clone(), next.clone(), expect.clone());
        let queries = args.queries;
        workers.spawn(async move {
            let mut checked = Vec::new();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= queries {
                    return anyhow::Ok(checked);
                }
                let w = n % WORDS.len();
                let request = SearchRequest {
                    query: WORDS[w].into(),
                    scope: Scope::Live as i32,
                    limit: 1000,
                    ..Default::default()
                };
                let started = Instant::now();
                let answer = admin.search(request).await?.into_inner();
                checked.push(expect.check(w, started.elapsed(), &answer));
            }
        });
    }
    let mut all = Vec::new();
    while let Some(done) = workers.join_next().await {
        all.extend(done??);
    }
    Ok(all)
}
