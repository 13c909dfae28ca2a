//! `meridian-bench load`: searches against a replica while it pulls, and
//! while its peer is stalled.
//!
//! An origin holds N generated university records and is reached only
//! through a TCP fault proxy (its advertised endpoint, as in the partition
//! suite). A replica holds a small index of its own. Searchers (200 by
//! default, over a few TLS connections, anonymous) send the search
//! benchmark's query mix (1–3 words of the generator's vocabulary, facets
//! and one filter) to the replica's `Catalog.Search`, each waiting for its
//! answer and then a random pause, through three phases:
//!
//! 1. **before**: the replica serves its own small, warm index;
//! 2. **pull**: the replica pins the origin and pulls all N records
//!    (`sync now` until every record it may see is searchable);
//! 3. **after**: once the replica is idle again, against the grown index
//!    (the baseline of the next phase);
//! 4. **stalled**: the origin gets more
//!    records, a pull of them starts and the proxy then goes silent
//!    mid-stream (connections stay open, nothing
//!    passes) while the replica keeps running sync rounds.
//!
//! Reported per phase: searches, errors (any failed or unanswered search:
//! there must be none), latency p50/p90/p99 and the replica's RSS (from
//! /proc) at the start and at its highest; the pull's records/s; how long
//! the stalled rounds took; and that the pull resumed once the link passed
//! again. Exits non-zero if a search failed.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use meridian_proto::catalog_client::CatalogClient;
use meridian_proto::SearchRequest;
use meridian_testkit::fault::{Fault, FaultProxy};
use meridian_testkit::generate::Profile;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;

use crate::replicate::{searchable, wait_searchable};
use crate::search::{catalog_client, queries, Summary};
use crate::{meridian, meridian_binary, start_node_with, write_corpus};

/// A search not answered within this long counts as an error.
const SEARCH_DEADLINE: Duration = Duration::from_secs(10);
/// Distinct queries the searchers cycle through.
const QUERIES: usize = 1000;

#[derive(clap::Args)]
pub struct Args {
    /// Records at the origin, pulled by the replica.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Concurrent searchers.
    #[arg(long, default_value_t = 200)]
    searchers: usize,
    /// TLS connections the searchers share (HTTP/2 streams on each).
    #[arg(long, default_value_t = 20)]
    connections: usize,
    /// Each searcher pauses a random 0 to 2× this many milliseconds after
    /// each answer.
    #[arg(long, default_value_t = 100)]
    think_ms: u64,
    /// Records of the replica's own, indexed before anything is measured.
    #[arg(long, default_value_t = 10_000)]
    warm: u64,
    /// The replica's idle timeout of a pulled stream, seconds: how soon
    /// it gives up a silent peer.
    #[arg(long, default_value_t = 5)]
    idle_secs: u64,
    /// Length of the "before", "after" and "stalled" phases, seconds.
    #[arg(long, default_value_t = 20)]
    phase_secs: u64,
}

pub fn run(args: Args) -> Result<()> {
    if args.searchers == 0 || args.connections == 0 || args.records == 0 || args.idle_secs == 0 {
        bail!("--records, --searchers, --connections and --idle-secs must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let bin = meridian_binary()?;
    let work = tempfile::tempdir()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "load benchmark: {} records at the origin, {} searchers on {} TLS connections, \
         think 0–{} ms, {cores} cores",
        args.records,
        args.searchers,
        args.connections,
        2 * args.think_ms
    );

    let proxy = FaultProxy::start();
    let endpoint = proxy.addr().to_string();
    let origin = start_node_with(
        &bin,
        &work.path().join("origin"),
        "origin",
        &[("MERIDIAN_ENDPOINT", &endpoint)],
    )?;
    proxy.set_upstream(
        origin
            .catalog
            .context("the origin has no catalog listener")?,
    );
    let corpus = work.path().join("origin.jsonl");
    let visible = write_corpus(&corpus, args.records, Profile::University)?;
    let started = Instant::now();
    meridian(&origin, &["holdings", "import", path(&corpus)?])?;
    wait_searchable(&origin, "origin", args.records)?;
    println!(
        "origin: {} records imported and searchable in {:.1}s ({visible} visible to the replica)",
        args.records,
        started.elapsed().as_secs_f64()
    );

    let replica = start_node_with(
        &bin,
        &work.path().join("replica"),
        "replica",
        &[(
            "MERIDIAN_SYNC__IDLE_TIMEOUT_SECS",
            &args.idle_secs.to_string(),
        )],
    )?;
    let own = work.path().join("replica.jsonl");
    write_corpus(&own, args.warm, Profile::University)?;
    if args.warm > 0 {
        meridian(&replica, &["holdings", "import", path(&own)?])?;
        wait_searchable(&replica, "replica", args.warm)?;
    }
    let pid = replica.pid().context("the replica is not running")?;
    let clients = runtime.block_on(async {
        let mut admin = meridian_server::admin_socket::connect(replica.data_dir()).await?;
        let mut clients = Vec::with_capacity(args.connections);
        for _ in 0..args.connections {
            clients.push(catalog_client(&replica, &mut admin).await?);
        }
        anyhow::Ok(clients)
    })?;
    let requests: Arc<Vec<SearchRequest>> =
        Arc::new(queries(QUERIES).iter().map(|q| q.request()).collect());
    // Every query once (one connection each share), so that "before"
    // measures a warm index.
    runtime.block_on(async {
        let mut shares = tokio::task::JoinSet::new();
        for (n, client) in clients.iter().enumerate() {
            let (mut client, requests) = (client.clone(), requests.clone());
            let step = clients.len();
            shares.spawn(async move {
                for request in requests.iter().skip(n).step_by(step) {
                    client.search(request.clone()).await?;
                }
                anyhow::Ok(())
            });
        }
        while let Some(share) = shares.join_next().await {
            share??;
        }
        anyhow::Ok(())
    })?;
    println!(
        "replica: {} records of its own, indexed and warm",
        args.warm
    );

    let mut phases = Vec::new();

    // 1. Before the pull.
    let load = Load::start(&runtime, &clients, &requests, &args);
    let rss = Rss::sample(pid);
    std::thread::sleep(Duration::from_secs(args.phase_secs));
    phases.push(("before", load.finish(&runtime), rss.finish()));

    // 2. During the pull: pinning starts a round at once; `sync now` runs
    // rounds until every visible record is searchable.
    meridian(
        &origin,
        &[
            "trust",
            "add",
            meridian(&replica, &["keys", "show", "--invite"])?.trim(),
        ],
    )?;
    let load = Load::start(&runtime, &clients, &requests, &args);
    let rss = Rss::sample(pid);
    let started = Instant::now();
    meridian(
        &replica,
        &[
            "trust",
            "add",
            meridian(&origin, &["keys", "show", "--invite"])?.trim(),
        ],
    )?;
    let mut rounds = Vec::new();
    while searchable(&replica, "origin")? < visible {
        if started.elapsed() > Duration::from_secs(3600) {
            bail!("the pull did not finish within an hour");
        }
        rounds.push(Round::run(&replica));
    }
    let pulled = started.elapsed();
    phases.push(("pull", load.finish(&runtime), rss.finish()));

    // The replica merges what it indexed before the next phase, so that
    // the next phase measures the stall, not the tail of the pull.
    let settling = Instant::now();
    crate::wait_idle(&replica, Duration::from_secs(1800));
    println!(
        "replica: idle {:.1}s after the pull (indexing and merges done)",
        settling.elapsed().as_secs_f64()
    );

    // 3. After the pull, nothing else going on: what the grown index costs
    // a search, for comparison with the stall.
    let load = Load::start(&runtime, &clients, &requests, &args);
    let rss = Rss::sample(pid);
    std::thread::sleep(Duration::from_secs(args.phase_secs));
    phases.push(("after", load.finish(&runtime), rss.finish()));

    // 4. A peer stalled mid-stream: new records at the origin, a pull of
    // them under way, then the link goes silent.
    let more = (args.records / 10).clamp(1, 50_000);
    let extra = work.path().join("more.jsonl");
    // Numbered after the first records: their ids are new.
    let more_visible = crate::write_records(
        &extra,
        args.records..args.records + more,
        Profile::University,
        43,
    )?;
    meridian(&origin, &["holdings", "import", path(&extra)?])?;
    let before_stall = searchable(&replica, "origin")?;
    let load = Load::start(&runtime, &clients, &requests, &args);
    let rss = Rss::sample(pid);
    let stop = AtomicBool::new(false);
    let (rounds_before, stalled_rounds) = std::thread::scope(|s| {
        let sync = s.spawn(|| {
            let mut rounds = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                rounds.push(Round::run(&replica));
            }
            rounds
        });
        std::thread::sleep(Duration::from_millis(500));
        proxy.set(Fault::Drop);
        let silent = Instant::now();
        std::thread::sleep(Duration::from_secs(args.phase_secs));
        stop.store(true, Ordering::Relaxed);
        let rounds = sync.join().expect("the sync thread");
        // Rounds over before the link went silent, and the others.
        rounds
            .into_iter()
            .partition::<Vec<_>, _>(|r| r.started + r.took < silent)
    });
    let during_stall = searchable(&replica, "origin")?;
    phases.push(("stalled", load.finish(&runtime), rss.finish()));
    proxy.set(Fault::Pass);
    let started_resume = Instant::now();
    let mut resume_rounds = Vec::new();
    while searchable(&replica, "origin")? < visible + more_visible {
        if started_resume.elapsed() > Duration::from_secs(600) {
            bail!("the pull did not resume after the link came back");
        }
        resume_rounds.push(Round::run(&replica));
    }
    let resumed = started_resume.elapsed();

    println!(
        "Catalog.Search at the replica, anonymous, TLS on loopback, facets and one filter, \
         {} searchers:",
        args.searchers
    );
    println!(
        "  {:<8} {:>8} {:>6} {:>6}  {:<70}  replica RSS",
        "phase", "searches", "errors", "QPS", "latency"
    );
    let mut errors = 0;
    for (name, samples, rss) in &phases {
        errors += samples.errors;
        println!(
            "  {name:<8} {:>8} {:>6} {:>6.0}  {}  {:.0} → max {:.0} MiB",
            samples.latencies.len(),
            samples.errors,
            samples.latencies.len() as f64 / samples.secs,
            Summary::of(&samples.latencies),
            rss.0,
            rss.1
        );
        if let Some(error) = &samples.first_error {
            println!("    first error: {error}");
        }
    }
    println!(
        "pull: {} entries in {:.1}s = {:.0} records/s end to end under search load; {}",
        args.records,
        pulled.as_secs_f64(),
        args.records as f64 / pulled.as_secs_f64(),
        Round::summary(&rounds)
    );
    println!(
        "stalled: the link went silent 0.5 s into a pull of {more} new records ({} sync rounds \
         over before); then {}; {} of them searchable when the phase ended",
        rounds_before.len(),
        Round::summary(&stalled_rounds),
        during_stall - before_stall,
    );
    println!(
        "resumed: all {more_visible} visible new records searchable {:.1}s after the link passed again; {}",
        resumed.as_secs_f64(),
        Round::summary(&resume_rounds)
    );
    if errors > 0 {
        bail!("{errors} searches failed");
    }
    println!("errors: 0");
    Ok(())
}

fn path(path: &Path) -> Result<&str> {
    path.to_str().context("a temporary path that is not UTF-8")
}

/// One `sync now` of the replica: how long it took and what it reported.
struct Round {
    started: Instant,
    took: Duration,
    /// Each peer's outcome (`ok`, `timeout`, `unreachable`, …), or
    /// `no peer tried` (all in backoff).
    outcome: String,
    /// The first failure's reason.
    error: Option<String>,
}

impl Round {
    fn run(node: &meridian_testkit::harness::TestNode) -> Self {
        let at = Instant::now();
        let out = node.run(&["sync", "now", "--json"]);
        let took = at.elapsed();
        match serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout) {
            Ok(reports) if reports.is_empty() => Self {
                started: at,
                took,
                outcome: "no peer tried".into(),
                error: None,
            },
            Ok(reports) => Self {
                started: at,
                took,
                outcome: reports
                    .iter()
                    .map(|r| r["outcome"].as_str().unwrap_or("?").to_owned())
                    .collect::<Vec<_>>()
                    .join("+"),
                error: reports
                    .iter()
                    .find(|r| r["ok"] != true)
                    .map(|r| format!("{}: {}", r["peer"], r["error"])),
            },
            Err(_) => Self {
                started: at,
                took,
                outcome: "failed".into(),
                error: Some(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
            },
        }
    }

    /// "N sync rounds (k ok, j timeout: first reason), the longest S s".
    fn summary(rounds: &[Round]) -> String {
        let mut outcomes: std::collections::BTreeMap<&str, usize> = Default::default();
        for round in rounds {
            *outcomes.entry(&round.outcome).or_default() += 1;
        }
        let outcomes: Vec<String> = outcomes.iter().map(|(o, n)| format!("{n} {o}")).collect();
        let first = rounds
            .iter()
            .find_map(|r| r.error.as_deref())
            .map(|e| format!("; first failure: {e}"))
            .unwrap_or_default();
        let longest = rounds.iter().map(|r| r.took).max().unwrap_or_default();
        format!(
            "{} sync rounds ({}{first}), the longest took {:.1}s",
            rounds.len(),
            outcomes.join(", "),
            longest.as_secs_f64()
        )
    }
}

/// What the searchers saw in one phase.
#[derive(Default)]
struct Samples {
    /// Latency of each answered search, milliseconds.
    latencies: Vec<f64>,
    errors: u64,
    first_error: Option<String>,
    secs: f64,
}

/// Searchers running until told to stop.
struct Load {
    stop: Arc<AtomicBool>,
    started: Instant,
    tasks: Vec<tokio::task::JoinHandle<Samples>>,
}

impl Load {
    fn start(
        runtime: &tokio::runtime::Runtime,
        clients: &[CatalogClient<Channel>],
        requests: &Arc<Vec<SearchRequest>>,
        args: &Args,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..args.searchers)
            .map(|n| {
                let client = clients[n % clients.len()].clone();
                let (requests, stop) = (requests.clone(), stop.clone());
                let (searchers, think_ms) = (args.searchers, args.think_ms);
                runtime.spawn(searcher(n, searchers, think_ms, client, requests, stop))
            })
            .collect();
        Self {
            stop,
            started: Instant::now(),
            tasks,
        }
    }

    fn finish(self, runtime: &tokio::runtime::Runtime) -> Samples {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Samples {
            secs: self.started.elapsed().as_secs_f64(),
            ..Samples::default()
        };
        for task in self.tasks {
            let samples = runtime.block_on(task).unwrap_or_else(|e| Samples {
                errors: 1,
                first_error: Some(format!("searcher panicked: {e}")),
                ..Samples::default()
            });
            all.latencies.extend(samples.latencies);
            all.errors += samples.errors;
            if all.first_error.is_none() {
                all.first_error = samples.first_error;
            }
        }
        all
    }
}

/// One searcher: query `n`, `n + searchers`, … of the mix, one at a time.
async fn searcher(
    n: usize,
    searchers: usize,
    think_ms: u64,
    mut client: CatalogClient<Channel>,
    requests: Arc<Vec<SearchRequest>>,
    stop: Arc<AtomicBool>,
) -> Samples {
    let mut samples = Samples::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64);
    let mut next = n;
    while !stop.load(Ordering::Relaxed) {
        let request = requests[next % requests.len()].clone();
        next += searchers;
        let at = Instant::now();
        let error = match tokio::time::timeout(SEARCH_DEADLINE, client.search(request)).await {
            Ok(Ok(_)) => {
                samples.latencies.push(at.elapsed().as_secs_f64() * 1e3);
                None
            }
            Ok(Err(status)) => Some(format!("{:?}: {}", status.code(), status.message())),
            Err(_) => Some(format!("no answer within {SEARCH_DEADLINE:?}")),
        };
        if let Some(error) = error {
            samples.errors += 1;
            samples.first_error.get_or_insert(error);
        }
        if think_ms > 0 {
            let pause = rng.gen_range(0..=2 * think_ms);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }
    samples
}

/// The replica's resident set size, sampled from /proc every 250 ms.
struct Rss {
    first: f64,
    max: Arc<Mutex<f64>>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Rss {
    fn sample(pid: u32) -> Self {
        let first = rss_mib(pid).unwrap_or(f64::NAN);
        let max = Arc::new(Mutex::new(first));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (max, stop) = (max.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(now) = rss_mib(pid) {
                        let mut max = max.lock().unwrap_or_else(|p| p.into_inner());
                        *max = max.max(now);
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            })
        };
        Self {
            first,
            max,
            stop,
            thread,
        }
    }

    /// RSS at the start and at its highest, MiB.
    fn finish(self) -> (f64, f64) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        let max = *self.max.lock().unwrap_or_else(|p| p.into_inner());
        (self.first, max)
    }
}

/// VmRSS of `pid`, MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
