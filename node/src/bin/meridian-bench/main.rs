//! Benchmarks of a real node (not tests): they print numbers.
//!
//! `meridian-bench import --records 1000000` generates a holdings file,
//! starts `meridian serve` (the binary next to this one) and imports the file
//! through the admin socket with `meridian holdings import`, reporting
//! records/s and the node's peak RSS. Build both first:
//! `cargo build --release --bins`.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use meridian::generate::{Generator, Profile};

mod replicate;
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
    },
    /// Latency of Catalog.Search over loopback gRPC with TLS.
    Search(search::Args),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Bench::Import { records } => import(records),
        Bench::Replicate { records } => replicate::run(records),
        Bench::Search(args) => search::run(args),
    }
}

/// Writes `records` generated records as JSON Lines; returns how many a
/// peer outside every group may see (PUBLIC and FEDERATION).
pub fn write_corpus(path: &Path, records: u64, profile: Profile) -> Result<u64> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let mut generator = Generator::new(profile, 42);
    let mut visible = 0;
    for n in 0..records {
        let record = generator.record(n);
        if matches!(record["visibility"].as_str(), Some("public" | "federation")) {
            visible += 1;
        }
        writeln!(out, "{record}")?;
    }
    out.flush()?;
    Ok(visible)
}

/// Runs a `meridian` command against `dir` and returns its stdout.
pub fn meridian(bin: &Path, dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(bin)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()?;
    if !out.status.success() {
        bail!(
            "meridian {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn meridian_binary() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let bin = me.with_file_name("meridian");
    if !bin.exists() {
        bail!(
            "{} not found: build it first (cargo build --release --bins)",
            bin.display()
        );
    }
    Ok(bin)
}

/// A `meridian serve` child on a data directory (made by `meridian init`
/// on first use), stopped with SIGTERM when dropped.
pub struct Served {
    child: Child,
    /// The Catalog listener's address.
    pub catalog: String,
}

impl Served {
    pub fn start(bin: &Path, dir: &Path, node_id: &str) -> Result<Self> {
        if !dir.join("meridian.toml").exists() {
            let status = Command::new(bin)
                .args(["init", "--node-id", node_id, "--listen", "127.0.0.1:0"])
                .arg("--data-dir")
                .arg(dir)
                .stdout(Stdio::null())
                .status()?;
            if !status.success() {
                bail!("meridian init failed");
            }
        }
        let mut child = Command::new(bin)
            .args(["serve", "--data-dir"])
            .arg(dir)
            .env(
                "MERIDIAN_LOG__LEVEL",
                std::env::var("MERIDIAN_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().context("serve exited early")??;
        std::thread::spawn(move || for _ in lines {});
        // "listening catalog=ADDR admin=SOCKET"
        let catalog = first
            .split_whitespace()
            .find_map(|word| word.strip_prefix("catalog="))
            .with_context(|| format!("unexpected first line from serve: {first}"))?
            .to_owned();
        Ok(Self { child, catalog })
    }

    /// CPU seconds the node has used, from /proc.
    pub fn cpu_secs(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the parenthesised command name; utime and stime are
        // the 14th and 15th fields of the line.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        Some(ticks / 100.0)
    }

    /// Waits until the node uses under 5% of a core over two seconds: the
    /// indexer and the background merges have finished.
    pub fn wait_idle(&self, at_most: Duration) -> Result<()> {
        let started = Instant::now();
        let mut last = self.cpu_secs().context("no /proc stat for the node")?;
        while started.elapsed() < at_most {
            std::thread::sleep(Duration::from_secs(2));
            let now = self.cpu_secs().context("the node exited")?;
            if now - last < 0.1 {
                return Ok(());
            }
            last = now;
        }
        println!("warning: the node was still busy after {at_most:?}");
        Ok(())
    }

    pub fn rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }

    /// Peak resident set size of the node, from /proc.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // SIGTERM first: the node shuts down cleanly and its data directory
        // stays reusable.
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: `pid` is our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    let node = Served::start(&bin, &node_dir, "bench")?;
    let started = Instant::now();
    let out = Command::new(&bin)
        .args(["holdings", "import"])
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
