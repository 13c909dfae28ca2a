//! `meridian-bench harvest --records N`: one node holds N generated records;
//! another harvests its `/oai` (`oai_datacite`, pages of 1000, HTTPS on
//! loopback) with `meridian harvest run`. Measured end to end: every PUBLIC
//! record listed, parsed, validated, signed, stored and searchable at the
//! harvester.

use std::time::Instant;

use anyhow::{bail, Result};
use meridian_testkit::generate::Profile;

use crate::replicate::wait_searchable;
use crate::{meridian, meridian_binary, start_node, start_node_with, write_corpus};

pub fn run(records: u64) -> Result<()> {
    let bin = meridian_binary()?;
    let work = tempfile::tempdir()?;
    let file = work.path().join("holdings.jsonl");
    write_corpus(&file, records, Profile::Polar)?;
    let provider = start_node_with(
        &bin,
        &work.path().join("provider"),
        "provider",
        &[("MERIDIAN_OAI__PAGE_SIZE", "1000")],
    )?;
    meridian(
        &provider,
        &["holdings", "import", file.to_str().unwrap_or_default()],
    )?;
    let Some(http) = provider.http else {
        bail!("the provider has no HTTP listener");
    };
    let url = format!("https://localhost:{}/oai", http.port());
    let ca = provider.data_dir().join("public.crt");

    let harvester = start_node(&bin, &work.path().join("harvester"), "harvester")?;
    meridian(
        &harvester,
        &[
            "harvest",
            "add",
            "bench",
            &url,
            "--ca-cert",
            ca.to_str().unwrap_or_default(),
        ],
    )?;
    let cpu_before = (provider.cpu_secs(), harvester.cpu_secs());
    let started = Instant::now();
    let status: serde_json::Value = serde_json::from_str(&meridian(
        &harvester,
        &["harvest", "run", "bench", "--json"],
    )?)?;
    let harvested = started.elapsed();
    let added = status["added"].as_u64().unwrap_or(0);
    wait_searchable(&harvester, "harvester", added)?;
    let searchable = started.elapsed();
    println!(
        "harvest: {added} of {records} records PUBLIC at the provider; listed, parsed, signed and stored \
         in {:.1}s ({} pages, {} rejected); all searchable after {:.1}s",
        harvested.as_secs_f64(),
        status["pages"],
        status["rejected"],
        searchable.as_secs_f64()
    );
    println!(
        "harvest: {:.0} records/s end to end over HTTPS on loopback ({} cores)",
        added as f64 / searchable.as_secs_f64(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    for (name, node, before) in [
        ("provider", &provider, cpu_before.0),
        ("harvester", &harvester, cpu_before.1),
    ] {
        if let (Some(after), Some(before)) = (node.cpu_secs(), before) {
            println!(
                "{name} CPU: {:.1} s, {:.0} µs per record",
                after - before,
                (after - before) * 1e6 / added.max(1) as f64
            );
        }
    }
    Ok(())
}
