//! `meridian trust …`: the peers this node pins, their states and the audit
//! trail of every change.

use std::path::Path;

use anyhow::{Context, Result};
use clap::Subcommand;
use meridian_proto as proto;

use super::{admin, refused};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Pin a peer from its invitation token.
    Add {
        token: String,
        /// Groups the peer belongs to, comma-separated (for GROUPS visibility).
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List pinned peers.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one peer, its key history (the key sets verified here from its
    /// pinned root: signing, root and TLS keys, expiry, revocations) and the
    /// audit trail of its changes.
    Show {
        node_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Set a peer's groups (replacing the ones it had; none to clear them).
    /// The node publishes its new audience, signed: every node that serves
    /// its records enforces it from the next sync round.
    Groups {
        node_id: String,
        /// Groups, comma-separated; omit to place the peer in none.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Stop serving and pulling from a peer until resumed.
    Suspend {
        node_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Make a suspended peer active again.
    Resume {
        node_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Refuse a peer's keys everywhere, for good; asks first on a terminal.
    Revoke {
        node_id: String,
        /// Do not ask for confirmation (needed when standard input is not a
        /// terminal).
        #[arg(long, short)]
        yes: bool,
        #[arg(long)]
        json: bool,
    },
}

/// One peer as JSON: what `trust list --json` lists and the other
/// commands print.
fn peer_json(peer: &proto::PeerInfo) -> serde_json::Value {
    serde_json::json!({
        "node_id": peer.node_id, "state": output::peer_state(peer.state), "endpoint": peer.endpoint,
        "key_id": peer.key_id, "groups": peer.groups, "added_at": peer.added_at,
        "changed_at": peer.changed_at,
    })
}

fn print_peer(peer: &proto::PeerInfo) {
    println!(
        "{:<20} {:<10} {:<22} {:<24} [{}]",
        peer.node_id,
        output::peer_state(peer.state),
        peer.endpoint,
        peer.key_id,
        peer.groups.join(",")
    );
}

pub async fn run(data_dir: &Path, command: TrustCommand) -> Result<()> {
    let mut client = admin(data_dir).await?;
    let set_state = |node_id: String, state: proto::PeerState| proto::TrustSetStateRequest {
        node_id,
        state: state as i32,
    };
    let changed = match command {
        TrustCommand::Add {
            token,
            groups,
            json,
        } => {
            let peer = client
                .trust_add(proto::TrustAddRequest {
                    invite: token,
                    groups,
                })
                .await
                .map_err(refused)?
                .into_inner();
            if json {
                println!("{}", peer_json(&peer));
            } else {
                println!(
                    "pinned {} at {} (key {})",
                    peer.node_id, peer.endpoint, peer.key_id
                );
            }
            return Ok(());
        }
        TrustCommand::List { json } => {
            let list = client
                .trust_list(proto::TrustListRequest {})
                .await
                .map_err(refused)?
                .into_inner();
            if json {
                let mut array = output::JsonArray::new(std::io::stdout().lock());
                for peer in &list.peers {
                    array.push(&peer_json(peer))?;
                }
                array.finish()?;
            } else {
                println!(
                    "{:<20} {:<10} {:<22} {:<24} GROUPS",
                    "NODE", "STATE", "ENDPOINT", "KEY ID"
                );
                list.peers.iter().for_each(print_peer);
            }
            return Ok(());
        }
        TrustCommand::Show { node_id, json } => {
            let list = client
                .trust_list(proto::TrustListRequest {})
                .await
                .map_err(refused)?
                .into_inner();
            let peer = list
                .peers
                .iter()
                .find(|p| p.node_id == node_id)
                .with_context(|| format!("no peer {node_id} in the trust store"))?;
            let audit = list.audit.iter().filter(|e| e.peer == node_id);
            // The peer's key history as this node verified it from the
            // pinned root; none before its first key set is held here (or
            // for a revoked peer, whose chain is no longer read).
            // A chain that does not verify is shown as such beside the
            // pin: it is what this command is run to look into.
            let mut unverified = None;
            let history = match client
                .keys_status(proto::KeysStatusRequest {
                    origin: node_id.clone(),
                })
                .await
            {
                Ok(status) => Some(status.into_inner()),
                Err(status) if status.code() == tonic::Code::NotFound => None,
                Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                    unverified = Some(status.message().to_owned());
                    None
                }
                Err(status) => return Err(refused(status)),
            };
            if json {
                let mut shown = peer_json(peer);
                let history = history.as_ref().map(super::keys::status_json);
                shown["key_sets"] = history
                    .as_ref()
                    .map_or(serde_json::json!([]), |h| h["sets"].clone());
                shown["revocations"] = history
                    .as_ref()
                    .map_or(serde_json::json!([]), |h| h["revocations"].clone());
                shown["stale"] = history
                    .as_ref()
                    .map_or(serde_json::json!(false), |h| h["stale"].clone());
                if let Some(reason) = &unverified {
                    shown["key_sets_unverified"] = serde_json::json!(reason);
                }
                shown["audit"] = audit
                    .map(
                        |e| serde_json::json!({"at": e.at, "action": e.action, "detail": e.detail}),
                    )
                    .collect();
                println!("{shown}");
                return Ok(());
            }
            println!("node id     {}", peer.node_id);
            println!("state       {}", output::peer_state(peer.state));
            println!("endpoint    {}", peer.endpoint);
            println!("key id      {}", peer.key_id);
            println!("groups      {}", peer.groups.join(", "));
            println!("added       {}", peer.added_at);
            println!("changed     {}", peer.changed_at);
            match &history {
                Some(history) if !history.sets.is_empty() => {
                    println!("key sets (as verified here from the pinned root):");
                    for set in &history.sets {
                        println!(
                            "  {} at log index {}{}: signing {} of [{}], root {} of [{}], TLS [{}], expires {}",
                            set.version,
                            set.index,
                            if set.retired_at == 0 { " (current)" } else { "" },
                            set.threshold,
                            set.signing_keys.join(", "),
                            set.root_threshold,
                            set.root_keys.join(", "),
                            set.tls_keys.join(", "),
                            if set.expires.is_empty() { "never" } else { &set.expires },
                        );
                    }
                    for r in &history.revocations {
                        println!(
                            "  REVOKED {} from log index {} (key set at {}) {}",
                            r.key_id, r.from_index, r.published_at, r.reason
                        );
                    }
                    if history.stale {
                        println!("  STALE: the current key set expired");
                    }
                }
                _ => match &unverified {
                    Some(reason) => println!("key sets:   DO NOT VERIFY: {reason}"),
                    None => println!("key sets:   none held here yet (pinned from the invitation)"),
                },
            }
            println!("audit:");
            for event in audit {
                println!("  {}  {:<10} {}", event.at, event.action, event.detail);
            }
            return Ok(());
        }
        TrustCommand::Groups {
            node_id,
            groups,
            json,
        } => {
            let peer = client
                .trust_set_groups(proto::TrustSetGroupsRequest { node_id, groups })
                .await
                .map_err(refused)?
                .into_inner();
            if json {
                println!("{}", peer_json(&peer));
            } else {
                println!(
                    "{} is now in groups [{}]",
                    peer.node_id,
                    peer.groups.join(",")
                );
            }
            return Ok(());
        }
        TrustCommand::Suspend { node_id, json } => (
            client
                .trust_set_state(set_state(node_id, proto::PeerState::Suspended))
                .await,
            json,
        ),
        TrustCommand::Resume { node_id, json } => (
            client
                .trust_set_state(set_state(node_id, proto::PeerState::Active))
                .await,
            json,
        ),
        TrustCommand::Revoke { node_id, yes, json } => {
            let what = format!("revoke {node_id} (its keys are refused everywhere, for good)");
            if !super::confirm(&what, yes)? {
                anyhow::bail!("{node_id} was not revoked");
            }
            (
                client
                    .trust_set_state(set_state(node_id, proto::PeerState::Revoked))
                    .await,
                json,
            )
        }
    };
    let (changed, json) = changed;
    let peer = changed.map_err(refused)?.into_inner();
    if json {
        println!("{}", peer_json(&peer));
    } else {
        println!("{} is now {}", peer.node_id, output::peer_state(peer.state));
    }
    Ok(())
}
