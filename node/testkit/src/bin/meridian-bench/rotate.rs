//! `meridian-bench rotate`: a replica pulls N records while the origin
//! rotates its keys. The origin holds the first half; the replica pins it
//! and starts pulling; a quarter of the way in, the origin replaces its
//! signing key (`keys rotate`), lists a new TLS key (`keys rotate --tls`)
//! and imports the second half under the new signing key; once the replica
//! holds the set listing the new TLS key, the origin serves it (`keys
//! switch-tls`, retried until every peer is ready). Nobody re-pins. The
//! replica must end with every visible record searchable, no entry rejected
//! and no sync error; the rate is given before, during and after.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use meridian_testkit::generate::Profile;

use crate::replicate::searchable;
use crate::{meridian, meridian_binary, start_node, write_records};

/// One sample of the replica's progress.
struct Sample {
    at: Duration,
    held: u64,
}

pub fn run(records: u64) -> Result<()> {
    let bin = meridian_binary()?;
    let work = tempfile::tempdir()?;
    let half = records / 2;
    let (first, second) = (
        work.path().join("first.jsonl"),
        work.path().join("second.jsonl"),
    );
    let visible_first = write_records(&first, 0..half, Profile::Polar, 42)?;
    let visible_second = write_records(&second, half..records, Profile::Polar, 42)?;
    let visible = visible_first + visible_second;
    let a = start_node(&bin, &work.path().join("origin"), "origin")?;
    let b = start_node(&bin, &work.path().join("replica"), "replica")?;
    meridian(
        &a,
        &["holdings", "import", first.to_str().unwrap_or_default()],
    )?;
    crate::replicate::wait_searchable(&a, "origin", half)?;
    println!("origin: first {half} records imported and searchable");

    let invite_a = meridian(&a, &["keys", "show", "--invite"])?;
    let invite_b = meridian(&b, &["keys", "show", "--invite"])?;
    meridian(&a, &["trust", "add", invite_b.trim()])?;
    let started = Instant::now();
    // Pinning starts the pull at once; hints keep it going as the log grows.
    meridian(&b, &["trust", "add", invite_a.trim()])?;

    let mut samples = Vec::new();
    let mut rotated_at = None;
    let mut switched_at = None;
    let mut importing: Option<std::thread::JoinHandle<Result<()>>> = None;
    let mut next_switch_try = Duration::ZERO;
    let deadline = Duration::from_secs(3600);
    loop {
        let held = searchable(&b, "origin")?;
        let at = started.elapsed();
        samples.push(Sample { at, held });
        if held >= visible && switched_at.is_some() {
            break;
        }
        if at > deadline {
            bail!("the replica holds {held} of {visible} after {at:?}");
        }
        if rotated_at.is_none() && held >= visible_first / 4 {
            meridian(&a, &["keys", "rotate"])?;
            meridian(&a, &["keys", "rotate", "--tls"])?;
            rotated_at = Some(started.elapsed());
            println!(
                "origin: signing key rotated and next TLS key listed at {:.1}s ({held} held by the replica)",
                started.elapsed().as_secs_f64()
            );
            let origin_data = a.data_dir().to_owned();
            let bin = bin.clone();
            let second = second.clone();
            importing = Some(std::thread::spawn(move || {
                let out = std::process::Command::new(&bin)
                    .args(["holdings", "import"])
                    .arg(&second)
                    .arg("--data-dir")
                    .arg(&origin_data)
                    .output()?;
                if !out.status.success() {
                    bail!("import: {}", String::from_utf8_lossy(&out.stderr));
                }
                Ok(())
            }));
        }
        if rotated_at.is_some() && switched_at.is_none() && at >= next_switch_try {
            // Refused while the replica does not hold the set that lists
            // the new key; tried again every two seconds.
            if meridian(&a, &["keys", "switch-tls"]).is_ok() {
                switched_at = Some(started.elapsed());
                println!(
                    "origin: new TLS key served from {:.1}s ({held} held by the replica)",
                    started.elapsed().as_secs_f64()
                );
            }
            next_switch_try = at + Duration::from_secs(2);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let total = started.elapsed();
    if let Some(import) = importing {
        match import.join() {
            Ok(result) => result?,
            Err(_) => bail!("the import thread panicked"),
        }
    }

    let rate = |from: Duration, to: Duration| {
        let held_at = |t: Duration| {
            samples
                .iter()
                .take_while(|s| s.at <= t)
                .last()
                .map_or(0, |s| s.held)
        };
        let (a, b) = (held_at(from), held_at(to));
        (b - a, (b - a) as f64 / (to - from).as_secs_f64().max(1e-3))
    };
    let rotated = rotated_at.unwrap_or_default();
    let switched = switched_at.unwrap_or_default();
    for (phase, from, to) in [
        ("before the rotation", Duration::ZERO, rotated),
        ("rotation to TLS switch", rotated, switched),
        ("after the TLS switch", switched, total),
    ] {
        let (count, per_sec) = rate(from, to);
        println!(
            "replica {phase}: {count} records in {:.1}s = {per_sec:.0} records/s",
            (to - from).as_secs_f64()
        );
    }
    println!(
        "replica: {visible} of {records} records (the ones it may see) searchable after {:.1}s = {:.0} records/s",
        total.as_secs_f64(),
        visible as f64 / total.as_secs_f64()
    );

    // Zero errors: nothing rejected, the last round clean, the chain whole.
    let peers: serde_json::Value =
        serde_json::from_str(&meridian(&b, &["peers", "status", "--json"])?)?;
    let origin = peers
        .as_array()
        .and_then(|all| all.iter().find(|p| p["node_id"] == "origin"))
        .cloned()
        .unwrap_or_default();
    let keys: serde_json::Value = serde_json::from_str(&meridian(
        &b,
        &["keys", "status", "--origin", "origin", "--json"],
    )?)?;
    let sets = keys["sets"].as_array().map_or(0, Vec::len);
    println!(
        "replica: rejected {}, last error {:?}, key sets of the origin held {sets}",
        origin["rejected"], origin["last_error"]
    );
    if origin["rejected"] != 0 || sets != 3 {
        bail!("the rotation cost entries or key sets: {origin} ({sets} key sets)");
    }
    Ok(())
}
