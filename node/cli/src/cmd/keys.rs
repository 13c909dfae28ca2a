//! `meridian keys show`: this node's identity, the invitation a peer's
//! operator passes to `meridian trust add`, and the public certificate
//! standard TLS clients trust.

use std::path::Path;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use meridian_core::config::Config;
use meridian_proto as proto;

use super::node::process_env;
use super::{admin, refused};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print the node id, key id, public key and endpoint.
    Show {
        /// Print only the invitation token a peer's operator passes to `trust add`.
        #[arg(long, conflicts_with_all = ["cert", "json"])]
        invite: bool,
        /// Print only the public listener's certificate (PEM), for standard
        /// TLS clients (Python, curl, browsers) to trust.
        #[arg(long, conflicts_with = "json")]
        cert: bool,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(data_dir: &Path, command: KeysCommand) -> Result<()> {
    let KeysCommand::Show { invite, cert, json } = command;
    if cert {
        // Read at rest from the data directory: the certificate is public
        // and the node need not be running.
        let config = Config::load(data_dir, &process_env())?;
        let (path, _) = config.public_identity_paths(data_dir);
        let pem = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the public certificate {}", path.display()))?;
        print!("{pem}");
        return Ok(());
    }
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
