//! Benchmarks of a real node (not tests): they print numbers.
//!
//! `meridian-bench import --records 1000000` generates a holdings file,
//! starts `meridian serve` (the binary next to this one) and imports the file
//! through the admin socket with `meridian holdings import`, reporting
//! records/s and the node's peak RSS. `replicate`, `search`, `load`
//! (searches during a pull and a stalled peer), `harvest`, `fanout` (live
//! searches while peers fail) and `converge` (changes searchable at every
//! node of a federation) are in their modules. Build
//! both first:
//! `cargo build --release --workspace --bins`.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use meridian_testkit::generate::{Generator, Profile};
use meridian_testkit::harness::TestNode;

mod converge;
mod fanout;
mod harvest;
mod http;
mod load;
mod replicate;
mod rotate;
mod search;

#[derive(Parser)]
#[command(name = "meridian-bench", about = "Benchmarks of a real meridian node")]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Import generated records through the admin socket.
    Import {
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
    },
    /// Replicate generated records from one node to an empty one over TLS.
    Replicate {
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Both nodes' `store.cache_mib` (the node's own default if not given).
        #[arg(long)]
        cache_mib: Option<u64>,
    },
    /// A replica pulls N records while the origin rotates its signing key
    /// and its TLS key; rates before, during and after.
    Rotate {
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
    },
    /// Latency of Catalog.Search over loopback gRPC with TLS (and, with
    /// `--http`, of the same searches over the HTTP/JSON API).
    Search(search::Args),
    /// Searches against a replica while it pulls N records from an
    /// origin, and while that origin is stalled.
    Load(load::Args),
    /// One node harvests another's /oai (OAI-PMH over HTTPS on loopback).
    Harvest {
        #[arg(long, default_value_t = 100_000)]
        records: u64,
    },
    /// Live searches at a node whose peers sit behind fault proxies, one
    /// blackholed and one slowed.
    Fanout(fanout::Args),
    /// Changes at random nodes of a fully meshed federation: time until
    /// each is searchable (or gone) at every node.
    Converge(converge::Args),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Bench::Import { records } => import(records),
        Bench::Replicate { records, cache_mib } => replicate::run(records, cache_mib),
        Bench::Rotate { records } => rotate::run(records),
        Bench::Search(args) => search::run(args),
        Bench::Load(args) => load::run(args),
        Bench::Harvest { records } => harvest::run(records),
        Bench::Fanout(args) => fanout::run(args),
        Bench::Converge(args) => converge::run(args),
    }
}

/// Writes `records` generated records as JSON Lines; returns how many a
/// peer outside every group may see (PUBLIC and FEDERATION).
pub fn write_corpus(path: &Path, records: u64, profile: Profile) -> Result<u64> {
    write_records(path, 0..records, profile, 42)
}

/// Writes the generated records numbered `numbers` (of the generator
/// seeded with `seed`) as JSON Lines; returns how many a peer outside every
/// group may see (PUBLIC and FEDERATION).
pub fn write_records(
    path: &Path,
    numbers: std::ops::Range<u64>,
    profile: Profile,
    seed: u64,
) -> Result<u64> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let mut generator = Generator::new(profile, seed);
    let mut visible = 0;
    for n in numbers {
        let record = generator.record(n);
        if matches!(record["visibility"].as_str(), Some("public" | "federation")) {
            visible += 1;
        }
        writeln!(out, "{record}")?;
    }
    out.flush()?;
    Ok(visible)
}

/// The `meridian` binary next to this one (`cargo build --release --workspace --bins`).
pub fn meridian_binary() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let bin = me.with_file_name("meridian");
    if !bin.exists() {
        bail!(
            "{} not found: build it first (cargo build --release --workspace --bins)",
            bin.display()
        );
    }
    Ok(bin)
}

/// Starts a node for a benchmark: `bin` in `dir`, logging at
/// `MERIDIAN_BENCH_LOG` (default `warn`), stopped with SIGTERM when dropped.
/// The benchmark client is one address asking as fast as the node answers,
/// so the per-client request rate is lifted for it.
pub fn start_node(bin: &Path, dir: &Path, node_id: &str) -> Result<TestNode> {
    start_node_with(bin, dir, node_id, &[])
}

/// [`start_node`] with more `MERIDIAN_*` variables.
pub fn start_node_with(
    bin: &Path,
    dir: &Path,
    node_id: &str,
    env: &[(&str, &str)],
) -> Result<TestNode> {
    let level = std::env::var("MERIDIAN_BENCH_LOG").unwrap_or_else(|_| "warn".into());
    let mut all = vec![
        ("MERIDIAN_LOG__LEVEL", level.as_str()),
        ("MERIDIAN_LIMITS__REQUESTS_PER_SECOND", "1000000"),
        ("MERIDIAN_LIMITS__REQUEST_BURST", "1000000"),
    ];
    all.extend_from_slice(env);
    TestNode::start_at(bin, dir, node_id, &all).map_err(|e| anyhow::anyhow!("{node_id}: {e}"))
}

/// Runs a `meridian` command against `node`'s data directory; its stdout.
pub fn meridian(node: &TestNode, args: &[&str]) -> Result<String> {
    node.try_ok(args).map_err(anyhow::Error::msg)
}

/// Waits until `node` has gone idle (indexing and merges done), or says it
/// did not.
pub fn wait_idle(node: &TestNode, at_most: Duration) {
    if !node.wait_idle(at_most) {
        println!("warning: {} was still busy after {at_most:?}", node.name);
    }
}

fn import(records: u64) -> Result<()> {
    let bin = meridian_binary()?;
    let work = tempfile::tempdir()?;
    let file = work.path().join("holdings.jsonl");
    let started = Instant::now();
    write_corpus(&file, records, Profile::University)?;
    let size = std::fs::metadata(&file)?.len();
    println!(
        "generated {records} records ({:.1} MiB) in {:.1}s",
        size as f64 / 1048576.0,
        started.elapsed().as_secs_f64()
    );
    let node_dir = work.path().join("node");
    let node = start_node(&bin, &node_dir, "bench")?;
    let started = Instant::now();
    let out = Command::new(&bin)
        // The figure is the store's rate, as before read-your-writes.
        .args(["holdings", "import", "--no-wait"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&node_dir)
        .output()?;
    let secs = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("import failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    print!("{}", String::from_utf8_lossy(&out.stdout));
    println!(
        "import: {records} records in {secs:.1}s = {:.0} records/s through the admin socket ({} cores)",
        records as f64 / secs,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    if let Some(rss) = node.peak_rss_mib() {
        println!("node peak RSS: {rss:.0} MiB");
    }
    Ok(())
}
