//! `meridian index rebuild`: drop the search index and rebuild it from the
//! store, with progress.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use clap::Subcommand;
use meridian_proto as proto;

use super::{admin, refused};

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Drop the search index and rebuild it from the store.
    Rebuild {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(data_dir: &Path, command: IndexCommand) -> Result<()> {
    let IndexCommand::Rebuild { json } = command;
    let mut client = admin(data_dir).await?;
    let started = Instant::now();
    let mut stream = client
        .rebuild_index(proto::RebuildIndexRequest {})
        .await
        .map_err(refused)?
        .into_inner();
    let bar = crate::output::progress(
        indicatif::ProgressBar::new(0),
        "{bar:40} {pos}/{len} log entries  {per_sec}  eta {eta}",
    );
    let mut indexed = 0;
    while let Some(progress) = stream.message().await.map_err(refused)? {
        bar.set_length(progress.total);
        bar.set_position(progress.indexed);
        indexed = progress.indexed;
        if progress.done {
            break;
        }
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    if json {
        println!(
            "{}",
            serde_json::json!({"indexed": indexed, "seconds": secs})
        );
    } else {
        println!("rebuilt the search index from {indexed} log entries in {secs:.1}s");
    }
    Ok(())
}
