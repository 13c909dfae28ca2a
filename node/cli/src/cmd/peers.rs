//! `meridian peers status`: per peer, whether it is reachable, its last
//! sync, lag, what was received and rejected, how many of its records a
//! key revocation quarantines here, and whether its key chain verifies.

use std::path::Path;

use anyhow::Result;
use clap::Subcommand;
use meridian_proto as proto;

use super::{admin, refused};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum PeersCommand {
    /// Per peer: reachable, last sync, lag, errors.
    Status {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(data_dir: &Path, command: PeersCommand) -> Result<()> {
    let PeersCommand::Status { json } = command;
    let mut client = admin(data_dir).await?;
    let status = client
        .peers_status(proto::PeersStatusRequest {})
        .await
        .map_err(refused)?
        .into_inner();
    if !json {
        println!(
            "{:<20} {:<10} {:<9} {:<21} {:>8} {:>9} {:>8}  LAST ERROR",
            "PEER", "STATE", "REACHABLE", "LAST SYNC", "LAG", "RECEIVED", "REJECTED"
        );
    }
    let mut array = json.then(|| output::JsonArray::new(std::io::stdout()));
    for p in &status.peers {
        if let Some(array) = &mut array {
            array.push(
                &serde_json::json!({
                    "node_id": p.node_id, "state": output::peer_state(p.state), "reachable": p.reachable,
                    "last_sync": p.last_sync, "lag": p.lag, "entries_received": p.entries_received,
                    "rejected": p.rejected, "last_error": p.last_error, "endpoint": p.endpoint,
                    "groups": p.groups,
                    "stale": !p.keys_expired.is_empty() || !p.keys_unverified.is_empty(),
                    "keys_expired": p.keys_expired, "keys_unverified": p.keys_unverified,
                    "quarantined": p.quarantined,
                    "contested_doi_prefixes": p.contested_doi_prefixes,
                    "frozen": p.frozen, "frozen_reason": p.frozen_reason,
                    "evidence": p.evidence, "cosigners": p.cosigners,
                }),
            )?;
        } else {
            let last = if p.last_sync.is_empty() {
                "never"
            } else {
                p.last_sync.as_str()
            };
            println!(
                "{:<20} {:<10} {:<9} {:<21} {:>8} {:>9} {:>8}  {}",
                p.node_id,
                output::peer_state(p.state),
                if p.reachable { "yes" } else { "no" },
                last,
                p.lag,
                p.entries_received,
                p.rejected,
                {
                    let mut notes = Vec::new();
                    if p.frozen {
                        notes.push(format!(
                            "FROZEN: {}{}",
                            p.frozen_reason,
                            if p.evidence {
                                format!(" (`meridian evidence export {}`)", p.node_id)
                            } else {
                                String::new()
                            }
                        ));
                    }
                    if !p.keys_unverified.is_empty() {
                        notes.push(format!(
                            "UNVERIFIED: its key chain does not verify from the pinned root, \
                             its log is held back and its TLS keys refused: {}",
                            p.keys_unverified
                        ));
                    }
                    if !p.keys_expired.is_empty() {
                        notes.push(format!("STALE: key set expired {}", p.keys_expired));
                    }
                    if p.quarantined > 0 {
                        notes.push(format!(
                            "QUARANTINED: {} records signed by a revoked key",
                            p.quarantined
                        ));
                    }
                    if !p.contested_doi_prefixes.is_empty() {
                        notes.push(format!(
                            "CONTESTED DOI prefixes (another origin claims them too): {}",
                            p.contested_doi_prefixes.join(", ")
                        ));
                    }
                    if !p.last_error.is_empty() || notes.is_empty() {
                        notes.push(p.last_error.clone());
                    }
                    notes.join("; ")
                }
            );
        }
    }
    if let Some(array) = array {
        array.finish()?;
    }
    Ok(())
}
