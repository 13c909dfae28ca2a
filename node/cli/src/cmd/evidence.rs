//! `meridian evidence export ORIGIN --out FILE`: the evidence of
//! equivocation a frozen origin was frozen for, as a self-contained file;
//! `meridian evidence verify FILE`: checks such a file with no node and no
//! data directory (`meridian_core::sync::witness`, `docs/decisions/witnesses.md`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use meridian_proto as proto;

use super::{admin, refused};

#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Write the evidence held for frozen ORIGIN to FILE (JSON): both signed
    /// checkpoints, the proof they conflict, and the origin's key sets.
    Export {
        origin: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Check an evidence file offline: exit 0 when it proves that the
    /// origin signed two checkpoints that cannot both be true, 1 otherwise.
    Verify {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(data_dir: &Path, command: EvidenceCommand) -> Result<i32> {
    match command {
        EvidenceCommand::Export { origin, out } => {
            let mut client = admin(data_dir).await?;
            let evidence = client
                .export_evidence(proto::ExportEvidenceRequest {
                    origin: origin.clone(),
                })
                .await
                .map_err(refused)?
                .into_inner()
                .evidence;
            std::fs::write(&out, &evidence)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "evidence against {origin} written to {} ({} bytes); check it with `meridian evidence verify {}`",
                out.display(),
                evidence.len(),
                out.display()
            );
            Ok(0)
        }
        EvidenceCommand::Verify { file, json } => Ok(verify(&file, json)),
    }
}

/// Verifies `file`; the exit code.
fn verify(file: &Path, json: bool) -> i32 {
    let verdict = read_bounded(file).and_then(|bytes| {
        meridian_core::sync::witness::verify(&bytes).map_err(|e| format!("{}: {e}", file.display()))
    });
    match (verdict, json) {
        (Ok(proven), false) => {
            println!(
                "{}: equivocation proven: origin {} signed {}; its key chain starts at the pinned root key {} (compare it with the origin's)",
                file.display(),
                proven.origin,
                proven.conflict,
                proven.root_key
            );
            0
        }
        (Ok(proven), true) => {
            println!(
                "{}",
                serde_json::json!({"proven": true, "origin": proven.origin,
                    "conflict": proven.conflict.to_string(), "root_key": proven.root_key.to_string()})
            );
            0
        }
        (Err(reason), false) => {
            eprintln!("error: {reason}: nothing is proven");
            1
        }
        (Err(reason), true) => {
            println!("{}", serde_json::json!({"proven": false, "error": reason}));
            1
        }
    }
}

fn read_bounded(file: &Path) -> Result<Vec<u8>, String> {
    let max = meridian_core::sync::witness::MAX_EVIDENCE_BYTES as u64;
    let size = std::fs::metadata(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?
        .len();
    if size > max {
        return Err(format!(
            "{}: {size} bytes, more than an evidence file may hold ({max})",
            file.display()
        ));
    }
    std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
}
