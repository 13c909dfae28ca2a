//! `meridian keys show`: this node's identity, and the invitation a peer's
//! operator passes to `meridian trust add`.

use std::path::Path;

use anyhow::Result;
use clap::Subcommand;
use meridian_proto as proto;

use super::{admin, refused};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print the node id, key id, public key and endpoint.
    Show {
        /// Print only the invitation token a peer's operator passes to `trust add`.
        #[arg(long)]
        invite: bool,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(data_dir: &Path, command: KeysCommand) -> Result<()> {
    let KeysCommand::Show { invite, json } = command;
    let mut client = admin(data_dir).await?;
    let keys = client
        .keys_show(proto::KeysShowRequest {})
        .await
        .map_err(refused)?
        .into_inner();
    if invite {
        println!("{}", keys.invite);
    } else if json {
        println!(
            "{}",
            serde_json::json!({
                "node_id": keys.node_id, "key_id": keys.key_id, "public_key": keys.public_key,
                "endpoint": keys.endpoint, "tls_key": keys.tls_key, "invite": keys.invite,
            })
        );
    } else {
        println!("node id     {}", keys.node_id);
        println!("key id      {}", keys.key_id);
        println!("public key  {}", keys.public_key);
        println!("endpoint    {}", keys.endpoint);
        println!(
            "\ninvite a peer's operator to run:\n  meridian trust add {}",
            keys.invite
        );
    }
    Ok(())
}
