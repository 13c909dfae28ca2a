//! `meridian-bench search`: latency of `Catalog.Search` on a real node.
//!
//! Generates N records (a university / polar / genomics mix whose words
//! follow a Zipf-like law, `meridian_testkit::generate::Mix`), imports them into a
//! `meridian serve` child process through the admin socket, waits until the
//! index holds all of them and the node is idle, then sends a fixed, seeded
//! list of 1-, 2- and 3-term queries (terms drawn from the same Zipf law, so
//! common and rare words both occur), each with facets and one filter, to
//! `Catalog.Search` over loopback gRPC with TLS as an anonymous client, one
//! at a time. Latency is measured at the client, per request.
//!
//! With `--corpus debian`, the records are instead the Debian archive's
//! package catalogue from apt's lists (`meridian_testkit::debian`, every
//! package a PUBLIC record), and the queries 1–3 adjacent words of the
//! titles of records drawn with a fixed seed, each with limit 10 and facets
//! and no filter.
//!
//! With `--http`, the same searches then also go to the HTTP/JSON API
//! (`POST /api/v1/search`, HTTPS/1.1 keep-alive), interleaved one for one
//! with gRPC (alternating which goes first), and the HTTP overhead is
//! reported as the difference of the two.
//!
//! Everything stays in `--dir` when given: the corpus (`corpus.jsonl`), the
//! node (`node/`), the queries (`queries.jsonl`) and the measurements
//! (`meridian.json`), and a later run with the same `--records` reuses the
//! corpus and the node. `bench/search-vs-postgres.sh` runs the same records
//! and queries against PostgreSQL full-text search.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine;
use meridian_proto::admin_client::AdminClient;
use meridian_proto::catalog_client::CatalogClient;
use meridian_proto::{KeysShowRequest, SearchRequest};
use meridian_testkit::generate::{Generator, Mix, Profile, DISCIPLINES};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use serde_json::json;
use tonic::transport::Channel;

/// Seed of the corpus; the queries use their own.
const CORPUS_SEED: u64 = 42;
const QUERY_SEED: u64 = 7;
/// Hits per page, as a result list shows.
const LIMIT: u32 = 20;
/// Hits per page on the real catalogue: a top ten.
const DEBIAN_LIMIT: u32 = 10;

/// Where the benchmark's records come from.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Corpus {
    /// Generated research records (Zipf-like words), `--records` of them.
    Generated,
    /// The Debian package catalogue from apt's lists (`--apt-lists`).
    Debian,
}

#[derive(clap::Args)]
pub struct Args {
    /// Records in the corpus.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Measured queries (after as many warm-up queries).
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// Keep corpus, node, queries and results here (reused by later runs);
    /// a temporary directory otherwise.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Also write per-query latencies and totals to `meridian.json` in
    /// `--dir`, for the PostgreSQL comparison.
    #[arg(long, requires = "dir")]
    pg: bool,
    /// Also time the same searches over the HTTP/JSON API, interleaved
    /// with gRPC, and report the difference.
    #[arg(long)]
    http: bool,
    /// Which records to search: generated ones or the Debian package
    /// catalogue (then `--records` is ignored).
    #[arg(long, value_enum, default_value_t = Corpus::Generated)]
    corpus: Corpus,
    /// Where apt keeps its lists, for `--corpus debian`.
    #[arg(long, default_value = meridian_testkit::debian::APT_LISTS)]
    apt_lists: PathBuf,
    /// Before the searches, stop the node and start it again, timing how
    /// long it takes to listen and to answer its first search.
    #[arg(long)]
    restart: bool,
    /// Measure only the queries that matched nothing in the warm-up, each
    /// this many times: a query's fixed cost, for profiling.
    #[arg(long, value_name = "ROUNDS", conflicts_with = "slowest_only")]
    no_match_only: Option<usize>,
    /// Measure only the slowest 1% of the queries in the warm-up (the ones
    /// that make p99), each this many times: the heavy searches, for
    /// profiling.
    #[arg(long, value_name = "ROUNDS")]
    slowest_only: Option<usize>,
    /// Misspell the last word of every query (`qx` added): the no-match
    /// query people type most, a word no record holds.
    #[arg(long)]
    misspell: bool,
}

/// One benchmark query: the text, its page size and its filter, if any.
pub(crate) struct Query {
    terms: Vec<String>,
    limit: u32,
    filter: Option<Filter>,
}

enum Filter {
    Discipline(&'static str),
    Access(&'static str),
    Years(u32, u32),
}

impl Filter {
    /// What the filter filters on, as the report names it.
    fn kind(&self) -> &'static str {
        match self {
            Filter::Discipline(_) => "discipline",
            Filter::Access(_) => "access",
            Filter::Years(..) => "years",
        }
    }
}

impl Query {
    fn text(&self) -> String {
        self.terms.join(" ")
    }

    pub(crate) fn request(&self) -> SearchRequest {
        let mut request = SearchRequest {
            query: self.text(),
            limit: self.limit,
            facets: true,
            ..Default::default()
        };
        match self.filter {
            Some(Filter::Discipline(d)) => request.disciplines = vec![d.to_owned()],
            Some(Filter::Access(a)) => {
                let access = meridian_core::record::parse_access(a).expect("an access name");
                request.access = vec![access as i32];
            }
            Some(Filter::Years(from, to)) => {
                request.year_from = from;
                request.year_to = to;
            }
            None => {}
        }
        request
    }

    fn json(&self) -> serde_json::Value {
        let filter = match self.filter {
            Some(Filter::Discipline(d)) => json!({ "discipline": d }),
            Some(Filter::Access(a)) => json!({ "access": a }),
            Some(Filter::Years(from, to)) => json!({ "year_from": from, "year_to": to }),
            None => json!({}),
        };
        json!({ "text": self.text(), "terms": self.terms, "limit": self.limit, "filter": filter })
    }
}

/// The fixed query mix: 1, 2 and 3 terms in turn, each term drawn from the
/// corpus's Zipf law (distinct within a query), and a discipline, access or
/// publication-year filter in turn.
pub(crate) fn queries(count: usize) -> Vec<Query> {
    let mut words = Generator::new(Profile::University, QUERY_SEED);
    let mut rng = StdRng::seed_from_u64(QUERY_SEED);
    (0..count)
        .map(|i| {
            let mut terms: Vec<String> = Vec::new();
            while terms.len() < i % 3 + 1 {
                let word = words.word().to_owned();
                if !terms.contains(&word) {
                    terms.push(word);
                }
            }
            let filter = match (i / 3) % 3 {
                0 => Filter::Discipline(DISCIPLINES[rng.gen_range(0..DISCIPLINES.len())]),
                1 => Filter::Access(["open", "registered", "restricted"][rng.gen_range(0..3)]),
                _ => {
                    let from = rng.gen_range(1995..=2020);
                    Filter::Years(from, from + rng.gen_range(0..=5))
                }
            };
            Query {
                terms,
                limit: LIMIT,
                filter: Some(filter),
            }
        })
        .collect()
}

/// The Debian catalogue's queries: real title words
/// ([`meridian_testkit::debian::queries`]), top ten, facets, no filter.
fn debian_queries(records: &[serde_json::Value], count: usize) -> Vec<Query> {
    meridian_testkit::debian::queries(records, count, QUERY_SEED)
        .into_iter()
        .map(|terms| Query {
            terms,
            limit: DEBIAN_LIMIT,
            filter: None,
        })
        .collect()
}

pub fn run(args: Args) -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(bench(args))
}

async fn bench(args: Args) -> Result<()> {
    let bin = super::meridian_binary()?;
    let temporary = tempfile::tempdir()?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temporary.path().to_owned());
    std::fs::create_dir_all(&dir)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let corpus = dir.join("corpus.jsonl");
    let (records, mut queries) = match args.corpus {
        Corpus::Generated => {
            write_corpus(&corpus, args.records)?;
            (args.records, queries(args.queries))
        }
        Corpus::Debian => {
            let started = Instant::now();
            let records = meridian_testkit::debian::records(&args.apt_lists)?;
            // Not a generated corpus a later run may reuse.
            let _ = std::fs::remove_file(corpus.with_extension("records"));
            let mut out = BufWriter::new(std::fs::File::create(&corpus)?);
            for record in &records {
                writeln!(out, "{record}")?;
            }
            out.flush()?;
            println!(
                "corpus: {} Debian packages from {} ({:.0} MiB) in {:.1}s",
                records.len(),
                args.apt_lists.display(),
                std::fs::metadata(&corpus)?.len() as f64 / 1048576.0,
                started.elapsed().as_secs_f64()
            );
            let queries = debian_queries(&records, args.queries);
            (records.len() as u64, queries)
        }
    };
    if args.misspell {
        for query in &mut queries {
            if let Some(last) = query.terms.last_mut() {
                last.push_str("qx");
            }
        }
    }
    println!(
        "search benchmark: {records} records, {} queries, {cores} cores, in {}",
        queries.len(),
        dir.display()
    );
    {
        let mut out = BufWriter::new(std::fs::File::create(dir.join("queries.jsonl"))?);
        for query in &queries {
            writeln!(out, "{}", query.json())?;
        }
        out.flush()?;
    }

    let node_dir = dir.join("node");
    let mut node = super::start_node(&bin, &node_dir, "bench")?;
    let mut admin = meridian_server::admin_socket::connect(&node_dir).await?;
    if indexed(&mut admin).await? != records {
        let status = admin
            .status(meridian_proto::StatusRequest {})
            .await?
            .into_inner();
        if status.records > 0 && status.records != records {
            bail!(
                "{} holds a node with {} records, not {}: remove it or use another --dir",
                node_dir.display(),
                status.records,
                records
            );
        }
        if status.records == 0 {
            let started = Instant::now();
            // Off this thread: the runtime must go on answering the node's
            // keepalive pings on the admin channel, or the node closes it
            // during a long import.
            let mut import = Command::new(&bin);
            import
                .args(["holdings", "import"])
                .arg(&corpus)
                .arg("--data-dir")
                .arg(&node_dir);
            let out = tokio::task::spawn_blocking(move || import.output()).await??;
            if !out.status.success() {
                bail!("import failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            println!(
                "imported through the admin socket in {:.1}s",
                started.elapsed().as_secs_f64()
            );
        }
        let started = Instant::now();
        loop {
            let total = indexed(&mut admin).await?;
            if total == records {
                break;
            }
            if started.elapsed() > Duration::from_secs(3600) {
                bail!(
                    "the index holds {total} of {} records after an hour",
                    records
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        println!(
            "index caught up {:.1}s after the import",
            started.elapsed().as_secs_f64()
        );
    }
    let started = Instant::now();
    super::wait_idle(&node, Duration::from_secs(600));
    println!(
        "node idle (background merges done) after {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let mut requests: Vec<SearchRequest> = queries.iter().map(Query::request).collect();
    if args.restart {
        if let Some(rss) = node.peak_rss_mib() {
            println!("node peak RSS before the restart: {rss:.0} MiB");
        }
        hang_up(admin).await;
        admin = restart(&mut node, &node_dir, &requests[0]).await?;
    }
    let mut catalog = catalog_client(&node, &mut admin).await?;

    let mut warm_totals = Vec::with_capacity(requests.len());
    let mut warm_times = Vec::with_capacity(requests.len());
    for request in &requests {
        let at = Instant::now();
        warm_totals.push(catalog.search(request.clone()).await?.into_inner().total);
        warm_times.push(at.elapsed());
    }
    let only = match (args.no_match_only, args.slowest_only) {
        (Some(rounds), _) => {
            let none: Vec<usize> = (0..requests.len())
                .filter(|&i| warm_totals[i] == 0)
                .collect();
            println!(
                "only the {} queries that match nothing, {rounds} times each",
                none.len()
            );
            Some((none, rounds))
        }
        (None, Some(rounds)) => {
            let mut slowest: Vec<usize> = (0..requests.len()).collect();
            slowest.sort_by_key(|&i| std::cmp::Reverse(warm_times[i]));
            slowest.truncate(requests.len().div_ceil(100));
            println!(
                "only the {} slowest queries of the warm-up, {rounds} times each:",
                slowest.len()
            );
            for &i in &slowest {
                println!(
                    "  {:7.2} ms  {:>9} matches  {}",
                    warm_times[i].as_secs_f64() * 1e3,
                    warm_totals[i],
                    queries[i].json()
                );
            }
            Some((slowest, rounds))
        }
        (None, None) => None,
    };
    let queries: Vec<&Query> = match only {
        None => queries.iter().collect(),
        Some((picked, rounds)) => {
            let picked: Vec<usize> = picked
                .iter()
                .flat_map(|&i| std::iter::repeat_n(i, rounds))
                .collect();
            requests = picked.iter().map(|&i| requests[i].clone()).collect();
            picked.iter().map(|&i| &queries[i]).collect()
        }
    };
    let mut latencies = Vec::with_capacity(requests.len());
    let mut server = Vec::with_capacity(requests.len());
    let mut totals = Vec::with_capacity(requests.len());
    let started = Instant::now();
    for request in &requests {
        let at = Instant::now();
        let answer = catalog.search(request.clone()).await?.into_inner();
        latencies.push(at.elapsed().as_secs_f64() * 1e3);
        server.push(answer.took_micros as f64 / 1e3);
        totals.push(answer.total);
    }
    let elapsed = started.elapsed().as_secs_f64();

    println!(
        "Catalog.Search, anonymous, loopback gRPC + TLS, limit {}, facets, {}, \
         {} queries after {} warm-up, one at a time:",
        requests.first().map_or(0, |r| r.limit),
        match args.corpus {
            Corpus::Generated => "one filter",
            Corpus::Debian => "no filter",
        },
        requests.len(),
        warm_totals.len()
    );
    let all = Summary::of(&latencies);
    println!(
        "  all      {all}  {:.0} QPS",
        requests.len() as f64 / elapsed
    );
    for terms in 1..=3 {
        let some: Vec<f64> = latencies
            .iter()
            .zip(&queries)
            .filter(|(_, q)| q.terms.len() == terms)
            .map(|(l, _)| *l)
            .collect();
        println!(
            "  {terms} term{} {}",
            if terms == 1 { " " } else { "s" },
            Summary::of(&some)
        );
    }
    if args.corpus == Corpus::Generated {
        for kind in ["discipline", "access", "years"] {
            let some: Vec<f64> = latencies
                .iter()
                .zip(&queries)
                .filter(|(_, q)| q.filter.as_ref().map(Filter::kind) == Some(kind))
                .map(|(l, _)| *l)
                .collect();
            println!("  {kind:<10} {}", Summary::of(&some));
        }
    }
    println!("  in node  {} (took_micros)", Summary::of(&server));
    let (mut found, mut none, mut none_in_node) = (Vec::new(), Vec::new(), Vec::new());
    for ((latency, in_node), total) in latencies.iter().zip(&server).zip(&totals) {
        if *total > 0 {
            found.push(*latency);
        } else {
            none.push(*latency);
            none_in_node.push(*in_node);
        }
    }
    if !none.is_empty() {
        println!(
            "  matching {} ({} queries)",
            Summary::of(&found),
            found.len()
        );
        println!("  no match {} ({} queries)", Summary::of(&none), none.len());
        println!("  in node  {} (no match)", Summary::of(&none_in_node));
    }
    let mut sorted_totals = totals.clone();
    sorted_totals.sort_unstable();
    println!(
        "  matches per query: median {}, max {}",
        sorted_totals[sorted_totals.len() / 2],
        sorted_totals[sorted_totals.len() - 1]
    );
    if let (Some(rss), Some(peak)) = (node.rss_mib(), node.peak_rss_mib()) {
        println!("  node RSS {rss:.0} MiB (peak {peak:.0} MiB since it started)");
    }

    if args.http {
        http_vs_grpc(&node, &node_dir, &mut catalog, &requests).await?;
    }

    if args.pg {
        let results = json!({
            "records": records,
            "cores": cores,
            "corpus": match args.corpus {
                Corpus::Generated => "generated",
                Corpus::Debian => "debian",
            },
            "latency_ms": latencies,
            "totals": totals,
            "p50_ms": all.p50,
            "p99_ms": all.p99,
        });
        std::fs::write(dir.join("meridian.json"), results.to_string())?;
    }
    hang_up((catalog, admin)).await;
    drop(node);
    Ok(())
}

/// Closes `channels` to the node and gives this thread's runtime a moment
/// to close their connections: a stop waits for open connections, and
/// this thread cannot answer the node while it waits for the stop.
async fn hang_up<T>(channels: T) {
    drop(channels);
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The same searches over HTTP (`POST /api/v1/search`) and gRPC, one for
/// one, alternating which goes first; both must find the same totals.
async fn http_vs_grpc(
    node: &meridian_testkit::harness::TestNode,
    node_dir: &Path,
    catalog: &mut CatalogClient<Channel>,
    requests: &[SearchRequest],
) -> Result<()> {
    let addr = node.http.context("the node has no HTTP listener")?;
    let mut client = super::http::Client::connect(addr, &node_dir.join("public.crt")).await?;
    let bodies = requests
        .iter()
        .map(serde_json::to_vec)
        .collect::<Result<Vec<_>, _>>()?;
    for body in &bodies {
        http_total(&mut client, body).await?;
    }
    let (mut over_http, mut over_grpc, mut overhead) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (request, body)) in requests.iter().zip(&bodies).enumerate() {
        let grpc_first = i % 2 == 0;
        let mut grpc_ms = 0.0;
        let mut grpc_total = 0;
        if grpc_first {
            let at = Instant::now();
            grpc_total = catalog.search(request.clone()).await?.into_inner().total;
            grpc_ms = at.elapsed().as_secs_f64() * 1e3;
        }
        let at = Instant::now();
        let found = http_total(&mut client, body).await?;
        let http_ms = at.elapsed().as_secs_f64() * 1e3;
        if !grpc_first {
            let at = Instant::now();
            grpc_total = catalog.search(request.clone()).await?.into_inner().total;
            grpc_ms = at.elapsed().as_secs_f64() * 1e3;
        }
        if found != grpc_total {
            bail!("query {i}: HTTP found {found}, gRPC {grpc_total}");
        }
        over_http.push(http_ms);
        over_grpc.push(grpc_ms);
        overhead.push(http_ms - grpc_ms);
    }
    let (http, grpc) = (Summary::of(&over_http), Summary::of(&over_grpc));
    println!(
        "HTTP/JSON POST /api/v1/search vs Catalog.Search, interleaved, {} queries after {} warm-up:",
        requests.len(),
        requests.len()
    );
    println!("  HTTP     {http}");
    println!("  gRPC     {grpc}");
    println!(
        "  HTTP overhead: p50 {:+.3} ms (p50 HTTP - p50 gRPC), median per query {:+.3} ms",
        http.p50 - grpc.p50,
        Summary::of(&overhead).p50
    );
    Ok(())
}

/// An anonymous `Catalog` client of `node` over its own TLS connection,
/// pinning the key the node's admin socket shows.
pub(crate) async fn catalog_client(
    node: &meridian_testkit::harness::TestNode,
    admin: &mut AdminClient<Channel>,
) -> Result<CatalogClient<Channel>> {
    let keys = admin.keys_show(KeysShowRequest {}).await?.into_inner();
    let pin = base64::engine::general_purpose::STANDARD
        .decode(&keys.tls_key)
        .context("tls_key is not base64")?;
    let config = meridian_server::tls::client_config(&keys.node_id, vec![pin], None)?;
    let channel = meridian_server::tls::connect(
        &node.catalog.context("node not running")?.to_string(),
        config,
        Duration::from_secs(5),
    )
    .await?;
    Ok(CatalogClient::new(channel).max_decoding_message_size(64 << 20))
}

/// Stops `node` and starts it again on the same data directory, printing
/// how long the stop took, how long the start took to listen, to say it serves, and to answer `first`
/// (warm page cache: the files were just in use). Returns a new admin
/// client.
async fn restart(
    node: &mut meridian_testkit::harness::TestNode,
    node_dir: &Path,
    first: &SearchRequest,
) -> Result<AdminClient<Channel>> {
    let stopping = Instant::now();
    if !node.stop() {
        bail!("the node did not stop cleanly");
    }
    println!(
        "stop: exited after {:.0} ms (its store's snapshot included)",
        stopping.elapsed().as_secs_f64() * 1e3
    );
    let started = Instant::now();
    node.serve();
    let listening = started.elapsed();
    let mut admin = meridian_server::admin_socket::connect(node_dir).await?;
    let mut catalog = catalog_client(node, &mut admin).await?;
    let answer = catalog.search(first.clone()).await?.into_inner();
    let answered = started.elapsed();
    while node.run(&["health"]).status.code() != Some(0) {
        if started.elapsed() > Duration::from_secs(600) {
            bail!("not serving 600 s after a restart");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "restart: listening after {:.0} ms, first search answered after {:.0} ms \
         ({} matches), health SERVING by {:.0} ms; RSS then {:.0} MiB",
        listening.as_secs_f64() * 1e3,
        answered.as_secs_f64() * 1e3,
        answer.total,
        started.elapsed().as_secs_f64() * 1e3,
        node.rss_mib().unwrap_or(f64::NAN)
    );
    Ok(admin)
}

/// One HTTP search: its total, or why it failed.
async fn http_total(client: &mut super::http::Client, body: &[u8]) -> Result<u64> {
    let (status, answer) = client.post_json("/api/v1/search", body).await?;
    if status != 200 {
        bail!("HTTP search: {status} {}", String::from_utf8_lossy(&answer));
    }
    let answer: serde_json::Value = serde_json::from_slice(&answer)?;
    answer["total"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .context("an answer without total")
}

/// Records in the index, as the operator counts them.
async fn indexed(admin: &mut AdminClient<Channel>) -> Result<u64> {
    let answer = admin
        .search(SearchRequest {
            limit: 0,
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(answer.total)
}

/// Writes the corpus unless a complete one of `records` lines is there.
fn write_corpus(path: &Path, records: u64) -> Result<()> {
    let stamp = path.with_extension("records");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(&records.to_string()) {
        println!("corpus: reusing {}", path.display());
        return Ok(());
    }
    let started = Instant::now();
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let mut mix = Mix::new(CORPUS_SEED);
    for n in 0..records {
        writeln!(out, "{}", mix.record(n))?;
    }
    out.flush()?;
    std::fs::write(&stamp, records.to_string())?;
    println!(
        "corpus: {records} records ({:.0} MiB) generated in {:.1}s",
        std::fs::metadata(path)?.len() as f64 / 1048576.0,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Nearest-rank percentiles of latencies in milliseconds.
pub(crate) struct Summary {
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
    pub(crate) mean: f64,
}

impl Summary {
    pub(crate) fn of(values: &[f64]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let at = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
            sorted.get(at - 1).copied().unwrap_or(f64::NAN)
        };
        Self {
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: sorted.last().copied().unwrap_or(f64::NAN),
            mean: sorted.iter().sum::<f64>() / sorted.len().max(1) as f64,
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:7.2} ms  p90 {:7.2} ms  p99 {:7.2} ms  max {:7.2} ms  mean {:7.2} ms",
            self.p50, self.p90, self.p99, self.max, self.mean
        )
    }
}
