//! `meridian fsck [--repair] [--json]`: checks that a stopped node's log,
//! Merkle tree, signed checkpoints, record states and search index agree
//! (`meridian_core::fsck`), prints each disagreement with where it is, and
//! exits 1 if any remains. `--repair` re-derives the index, the own log's
//! checkpoint and each record state's note of its latest public version
//! first.

use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;
use meridian_core::fsck::{self, FsckReport};
use meridian_core::node::Node;

use super::node::process_env;

#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Re-derive what can be derived (the search index, the checkpoint of
    /// this node's own log, each record state's note of its latest public
    /// version), then check again.
    #[arg(long)]
    pub repair: bool,
    /// Print one JSON object: counts, findings, repairs.
    #[arg(long)]
    pub json: bool,
}

pub fn run(data_dir: &Path, args: &FsckArgs) -> Result<i32> {
    if data_dir.join(meridian_core::config::ADMIN_SOCKET).exists()
        && std::os::unix::net::UnixStream::connect(
            data_dir.join(meridian_core::config::ADMIN_SOCKET),
        )
        .is_ok()
    {
        anyhow::bail!(
            "{}: the node is running; stop it first (fsck checks a data directory at rest)",
            data_dir.display()
        );
    }
    let node = Node::open_as_is(data_dir, &process_env())
        .with_context(|| format!("{}: cannot open the node", data_dir.display()))?;
    let report = if args.repair {
        fsck::repair(&node)?
    } else {
        fsck::check(&node)?
    };
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["clean"] = report.clean().into();
        println!("{value}");
    } else {
        print_human(&report);
    }
    Ok(if report.clean() { 0 } else { 1 })
}

fn print_human(report: &FsckReport) {
    for done in &report.repaired {
        println!("repaired: {done}");
    }
    for finding in &report.findings {
        let hint = if finding.repairable {
            " (fsck --repair re-derives it)"
        } else {
            ""
        };
        println!("{finding}{hint}");
    }
    let verdict = if report.clean() {
        "clean".to_owned()
    } else {
        format!("{} disagreements", report.findings.len())
    };
    println!(
        "{verdict}: {} origins, {} log entries, {} record states, {} indexed ({} entries to index)",
        report.origins, report.entries, report.records, report.indexed, report.index_behind
    );
}
