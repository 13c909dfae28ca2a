//! `meridian-bench replicate`: one node holds N records; an empty node pins
//! it and pulls everything over TLS on loopback. Measured end to end: every
//! record verified, stored, indexed and searchable at the receiver.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use meridian_testkit::generate::Profile;

use meridian_testkit::harness::TestNode;

use crate::{meridian, meridian_binary, start_node_with, write_corpus};

pub fn run(records: u64, cache_mib: Option<u64>) -> Result<()> {
    let bin = meridian_binary()?;
    let cache = cache_mib.map(|mib| mib.to_string());
    let cache: Vec<(&str, &str)> = cache
        .iter()
        .map(|mib| ("MERIDIAN_STORE__CACHE_MIB", mib.as_str()))
        .collect();
    let work = tempfile::tempdir()?;
    let file = work.path().join("holdings.jsonl");
    let visible = write_corpus(&file, records, Profile::Polar)?;
    let (a_dir, b_dir) = (work.path().join("origin"), work.path().join("replica"));
    let a = start_node_with(&bin, &a_dir, "origin", &cache)?;
    let started = Instant::now();
    meridian(
        &a,
        &["holdings", "import", file.to_str().unwrap_or_default()],
    )?;
    println!(
        "origin: {records} records imported in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    // Let the origin finish indexing its own import, so that what is
    // measured is replication alone.
    wait_searchable(&a, "origin", records)?;
    println!(
        "origin: all records searchable after {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // `sync now` waits for the whole pull: a round at a million records
    // outlasts the default 45 s after which a round is left to finish in
    // the background (and a round must end within a request's time).
    let b = start_node_with(
        &bin,
        &b_dir,
        "replica",
        &[
            &[
                ("MERIDIAN_SYNC__ROUND_TIMEOUT_SECS", "3600"),
                ("MERIDIAN_LIMITS__REQUEST_TIMEOUT_SECS", "3601"),
            ],
            &cache[..],
        ]
        .concat(),
    )?;
    let invite_a = meridian(&a, &["keys", "show", "--invite"])?;
    let invite_b = meridian(&b, &["keys", "show", "--invite"])?;
    meridian(&a, &["trust", "add", invite_b.trim()])?;

    let cpu_before = (a.cpu_secs(), b.cpu_secs());
    let started = Instant::now();
    // Pinning starts a background round at once; `sync now` waits for the
    // pull to finish either way.
    meridian(&b, &["trust", "add", invite_a.trim()])?;
    meridian(&b, &["sync", "now"])?;
    let synced = started.elapsed();
    wait_searchable(&b, "origin", visible)?;
    let searchable = started.elapsed();
    println!(
        "replicate: {records} entries ({visible} visible to the replica) pulled, verified and stored in {:.1}s; \
         all searchable after {:.1}s",
        synced.as_secs_f64(),
        searchable.as_secs_f64()
    );
    println!(
        "replicate: {:.0} records/s end to end over TLS on loopback ({} cores)",
        records as f64 / searchable.as_secs_f64(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    // CPU time is steadier than wall time on a shared machine: what each
    // side spends per record, whatever else ran beside it.
    for (name, node, before) in [("origin", &a, cpu_before.0), ("replica", &b, cpu_before.1)] {
        if let (Some(after), Some(before)) = (node.cpu_secs(), before) {
            println!(
                "{name} CPU: {:.1} s, {:.0} µs per record",
                after - before,
                (after - before) * 1e6 / records as f64
            );
        }
    }
    for (name, node) in [("origin", &a), ("replica", &b)] {
        if let Some(rss) = node.peak_rss_mib() {
            println!("{name} peak RSS: {rss:.0} MiB");
        }
    }
    Ok(())
}

/// How many records of `origin` `node` finds (as its operator).
pub(crate) fn searchable(node: &TestNode, origin: &str) -> Result<u64> {
    let answer = meridian(
        node,
        &["search", "--origin", origin, "--limit", "0", "--json"],
    )?;
    let answer: serde_json::Value = serde_json::from_str(&answer)?;
    Ok(answer["total"].as_u64().unwrap_or(0))
}

/// Waits until `node` finds `count` records of `origin` (as its operator).
pub(crate) fn wait_searchable(node: &TestNode, origin: &str, count: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let total = searchable(node, origin)?;
        if total >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("searchable count stuck at {total} of {count}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
