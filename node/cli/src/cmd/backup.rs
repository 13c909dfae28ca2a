//! `meridian backup DIR`, `meridian restore DIR` and
//! `meridian finish-recovery` (`meridian_core::backup`,
//! `docs/operations.md`).
//!
//! A running node writes its own backup (over the admin socket) while it
//! serves; a stopped node's data directory is backed up by this process.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use meridian_core::backup::{self, Manifest, Recovery};
use meridian_core::config::ADMIN_SOCKET;
use meridian_core::node::Node;
use meridian_proto as proto;

use super::node::process_env;
use super::{admin, refused};

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The directory to write; it must not exist. Written beside it under
    /// a hidden name, then renamed into place when complete.
    pub dir: PathBuf,
    /// Print the manifest as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A directory `meridian backup` wrote.
    pub dir: PathBuf,
    /// Start the node as the backup left it, without recovering its own
    /// log from its peers: only when no peer can hold own entries newer
    /// than the backup (it would sign different ones at their indices).
    #[arg(long)]
    pub no_recover: bool,
}

/// Whether a node answers on the admin socket of `data_dir`.
fn running(data_dir: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(data_dir.join(ADMIN_SOCKET)).is_ok()
}

pub async fn backup(data_dir: &Path, args: &BackupArgs) -> Result<()> {
    let dir = std::path::absolute(&args.dir)
        .with_context(|| format!("{}: not a usable path", args.dir.display()))?;
    let manifest: Manifest = if running(data_dir) {
        let mut client = admin(data_dir).await?;
        let mut progress = client
            .backup(proto::BackupRequest {
                dir: dir.display().to_string(),
            })
            .await
            .map_err(refused)?
            .into_inner();
        let mut manifest = None;
        while let Some(message) = progress.message().await.map_err(refused)? {
            if !message.manifest_json.is_empty() {
                manifest = Some(message.manifest_json);
                break;
            }
            if !args.json {
                eprintln!("{} bytes written", message.bytes);
            }
        }
        let manifest = manifest.context("the node ended the backup without its manifest")?;
        serde_json::from_str(&manifest).context("the node's manifest")?
    } else {
        let node = Node::open_as_is(data_dir, &process_env())
            .with_context(|| format!("{}: cannot open the node", data_dir.display()))?;
        backup::create(&node, &dir, &Default::default())?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&manifest)?);
    } else {
        let bytes: u64 = manifest.files.values().map(|f| f.bytes).sum();
        println!(
            "backup of {} written to {}: own log {} entries (checkpoint at {}), {} origins, {} bytes",
            manifest.node_id,
            dir.display(),
            manifest.own_log_size,
            manifest.own_checkpoint_size,
            manifest.origins.len(),
            bytes
        );
        println!("it holds the node's private keys: keep it as safe as the keys");
    }
    Ok(())
}

pub fn restore(data_dir: &Path, args: &RestoreArgs) -> Result<()> {
    let recovery = if args.no_recover {
        Recovery::Skip
    } else {
        Recovery::FromPeers
    };
    let manifest = backup::restore(&args.dir, data_dir, recovery)?;
    println!(
        "restored {} into {}: own log {} entries, {} origins, taken {}",
        manifest.node_id,
        data_dir.display(),
        manifest.own_log_size,
        manifest.origins.len(),
        manifest.created
    );
    if recovery == Recovery::FromPeers {
        println!(
            "when it starts, the node pulls its own log back from its peers before it appends \
             anything of its own (`meridian status` shows it)"
        );
    }
    Ok(())
}

pub async fn finish_recovery(data_dir: &Path) -> Result<()> {
    let mut client = admin(data_dir).await?;
    let response = client
        .finish_recovery(proto::FinishRecoveryRequest {})
        .await
        .map_err(refused)?
        .into_inner();
    if response.was_recovering {
        println!("recovery ended: the node appends its own entries again");
    } else {
        println!("the node was not recovering");
    }
    Ok(())
}
