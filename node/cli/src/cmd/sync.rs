//! `meridian sync now`: a replication round with every active peer, now,
//! reported per peer.

use std::path::Path;

use anyhow::Result;
use clap::Subcommand;
use meridian_proto as proto;

use super::{admin, refused};

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Run a sync round with every active peer now and report per peer.
    Now {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(data_dir: &Path, command: SyncCommand) -> Result<i32> {
    let SyncCommand::Now { json } = command;
    let mut client = admin(data_dir).await?;
    let response = client
        .sync_now(proto::SyncNowRequest {})
        .await
        .map_err(refused)?
        .into_inner();
    let mut failed = false;
    let mut array = json.then(|| crate::output::JsonArray::new(std::io::stdout()));
    for r in &response.reports {
        failed |= !r.ok;
        if let Some(array) = &mut array {
            array.push(
                &serde_json::json!({"peer": r.peer, "ok": r.ok, "outcome": r.outcome, "entries": r.entries, "origins": r.origins, "error": r.error, "held_back": r.held_back}),
            )?;
        } else if r.ok {
            println!(
                "{:<20} ok      {} entries from [{}]",
                r.peer,
                r.entries,
                r.origins.join(", ")
            );
        } else {
            let outcome = if r.outcome.is_empty() {
                "failed"
            } else {
                r.outcome.as_str()
            };
            println!("{:<20} {outcome:<7} {}", r.peer, r.error);
        }
        if array.is_none() {
            for why in &r.held_back {
                println!("{:<28}{why}", r.peer);
            }
        }
    }
    if let Some(array) = array {
        array.finish()?;
    } else if response.reports.is_empty() {
        println!("no active peers; pin one with `meridian trust add TOKEN`");
    } else if response.index_behind > 0 {
        println!(
            "{} entries not yet searchable: the index is catching up (`meridian health`)",
            response.index_behind
        );
    }
    Ok(if failed { 1 } else { 0 })
}
