//! `meridian keys`: this node's identity (`show`), its key sets
//! (`status`), key set N+1 signed by the root (`rotate`, `renew`,
//! `revoke`, `rotate-root`), the TLS key those sets list served
//! (`switch-tls`), and new
//! versions of what a revocation quarantined (`resign`). The root key is read here, from the operator's file, and handed to the node
//! over the operator-only admin socket; it is never written by the node
//! (docs/decisions/key-sets.md).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::Subcommand;
use meridian_core::config::Config;
use meridian_core::sign::NodeKey;
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
    /// Replace the signing key: append key set N+1, signed by the root, with
    /// a new signing key. Entries signed before keep verifying; the old key
    /// signs nothing after the new set. Peers follow with no re-pinning.
    /// With `--tls`, keep the signing key and list a new TLS key beside the
    /// one in use instead; `keys switch-tls` serves it once peers hold the set.
    Rotate {
        /// Rotate the TLS key (first step) instead of the signing key.
        #[arg(long)]
        tls: bool,
        #[command(flatten)]
        root: RootArgs,
    },
    /// Replace the root: append key set N+1 that lists new root keys (the
    /// threshold of them then signs every later set), signed by the current
    /// root and by every new root key. The signing keys stay; peers follow
    /// with no re-pinning.
    RotateRoot {
        /// A new root key file: read when it exists (mode 0600), made
        /// otherwise. Repeat for a root of several keys, kept apart.
        #[arg(long = "new-root-key", value_name = "FILE", required = true)]
        new_root_keys: Vec<PathBuf>,
        /// How many of the new root keys must sign a later key set.
        #[arg(long, default_value_t = 1)]
        new_root_threshold: u32,
        #[command(flatten)]
        root: RootArgs,
    },
    /// Serve the next TLS key (listed by `keys rotate --tls`) from now on,
    /// as server and as client. Refused while an active peer does not hold
    /// the key set that lists it (it could not dial this node), unless
    /// `--force`. Run `keys renew` afterwards to drop the old key from the
    /// key set at once (otherwise the next set drops it).
    SwitchTls {
        /// Switch even when peers are unreachable or behind.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// Keep the signing key and extend the key set's expiry: append key set
    /// N+1 signed by the root. The node does this itself, when its root key
    /// is in the data directory, 30 days before expiry.
    Renew {
        #[command(flatten)]
        root: RootArgs,
    },
    /// Revoke a signing key from a log index on (a key compromise): append
    /// key set N+1, signed by the root, that drops the key (with a new
    /// signing key when it is the one in use) and says entries it signed at
    /// or after the index are not to be trusted. Every peer quarantines them
    /// (not served, not searched) until `keys resign`.
    Revoke {
        /// The signing key revoked (`ed25519:…`, as `keys status` lists it).
        key_id: String,
        /// The first log index whose entries by the key are not trusted: the
        /// first one the thief may have signed.
        #[arg(long, value_name = "I")]
        from_index: u64,
        /// Why, for the peers' operators (at most 512 bytes).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        root: RootArgs,
    },
    /// Re-sign, with the signing key in use, each record whose current
    /// version a revocation quarantined: a new version with the same
    /// content, which ends its quarantine here and at every peer at its next
    /// pull. Delete (`holdings rm`) or correct (`holdings put`) what the
    /// thief wrote first; `--dry-run` lists what would be re-signed.
    Resign {
        /// Only list the records that would be re-signed.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// The key sets of this node's log (or of a peer's, `--origin`): their
    /// keys, thresholds, expiry, where each retired signing key stops, the
    /// revocations and how many records they quarantine here.
    Status {
        /// A replicated origin instead of this node.
        #[arg(long)]
        origin: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct RootArgs {
    /// A root key file (repeat for a threshold above 1). Default: the root
    /// key in the data directory.
    #[arg(long = "root-key", value_name = "FILE")]
    root_keys: Vec<PathBuf>,
    /// Days until the new key set expires (at most 366; default 365).
    #[arg(long, default_value_t = 0)]
    expires_days: u32,
    #[arg(long)]
    json: bool,
}

pub async fn run(data_dir: &Path, command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Show { invite, cert, json } => show(data_dir, invite, cert, json).await,
        KeysCommand::Rotate { tls, root } => {
            let request = proto::KeysRotateRequest {
                tls,
                ..Default::default()
            };
            rotate(data_dir, root, request).await
        }
        KeysCommand::Renew { root } => {
            let request = proto::KeysRotateRequest {
                keep_signing_key: true,
                ..Default::default()
            };
            rotate(data_dir, root, request).await
        }
        KeysCommand::RotateRoot {
            new_root_keys,
            new_root_threshold,
            root,
        } => {
            let mut new_root_seeds = Vec::new();
            for path in &new_root_keys {
                let key = if path.exists() {
                    NodeKey::load(path)?
                } else {
                    let key = NodeKey::generate();
                    key.save(path)?;
                    eprintln!("made new root key {} ({})", path.display(), key.key_id());
                    key
                };
                new_root_seeds.push(key.seed().to_vec());
            }
            let request = proto::KeysRotateRequest {
                keep_signing_key: true,
                new_root_seeds,
                new_root_threshold,
                ..Default::default()
            };
            rotate(data_dir, root, request).await
        }
        KeysCommand::SwitchTls { force, json } => {
            let mut client = admin(data_dir).await?;
            let done = client
                .keys_switch_tls(proto::KeysSwitchTlsRequest { force })
                .await
                .map_err(refused)?
                .into_inner();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "tls_key": done.tls_key, "replaced": done.replaced,
                        "ready": done.ready, "not_ready": done.not_ready,
                    })
                );
            } else {
                println!("TLS key {} in use (was {})", done.tls_key, done.replaced);
                println!(
                    "peers holding the key set that lists it: {}",
                    done.ready.len()
                );
                for why in &done.not_ready {
                    println!("  NOT READY {why}");
                }
            }
            Ok(())
        }
        KeysCommand::Revoke {
            key_id,
            from_index,
            reason,
            root,
        } => {
            let root_seeds = root_seeds(&root)?;
            let mut client = admin(data_dir).await?;
            let status = client
                .keys_revoke(proto::KeysRevokeRequest {
                    root_seeds,
                    key_id,
                    from_index,
                    reason,
                    expires_days: root.expires_days,
                })
                .await
                .map_err(refused)?
                .into_inner();
            print_status(&status, root.json);
            Ok(())
        }
        KeysCommand::Resign { dry_run, json } => {
            let mut client = admin(data_dir).await?;
            let done = client
                .keys_resign(proto::KeysResignRequest { dry_run })
                .await
                .map_err(refused)?
                .into_inner();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "resigned": done.resigned, "dry_run": dry_run,
                        "log_size": done.log_size, "ids": done.ids,
                    })
                );
            } else if dry_run {
                println!("{} quarantined records would be re-signed", done.resigned);
                for id in &done.ids {
                    println!("  {id}");
                }
            } else {
                println!(
                    "{} quarantined records re-signed (log size {})",
                    done.resigned, done.log_size
                );
            }
            Ok(())
        }
        KeysCommand::Status { origin, json } => {
            let mut client = admin(data_dir).await?;
            let status = client
                .keys_status(proto::KeysStatusRequest {
                    origin: origin.unwrap_or_default(),
                })
                .await
                .map_err(refused)?
                .into_inner();
            print_status(&status, json);
            Ok(())
        }
    }
}

/// The seeds of the root key files given, each checked as every key file
/// is: mode 0600, format, key id.
fn root_seeds(root: &RootArgs) -> Result<Vec<Vec<u8>>> {
    root.root_keys
        .iter()
        .map(|path| Ok(NodeKey::load(path)?.seed().to_vec()))
        .collect()
}

/// Sends `request` (a rotation, renewal or root handover) with the root
/// keys and expiry of `root`, and prints the key sets after it.
async fn rotate(data_dir: &Path, root: RootArgs, request: proto::KeysRotateRequest) -> Result<()> {
    let request = proto::KeysRotateRequest {
        root_seeds: root_seeds(&root)?,
        expires_days: root.expires_days,
        ..request
    };
    let mut client = admin(data_dir).await?;
    let status = client
        .keys_rotate(request)
        .await
        .map_err(refused)?
        .into_inner();
    print_status(&status, root.json);
    Ok(())
}

/// `keys status --json`: the key sets of one origin, its revocations and
/// (own node) the keys in use and the changes made.
pub(super) fn status_json(status: &proto::KeysStatusResponse) -> serde_json::Value {
    let sets: Vec<serde_json::Value> = status
        .sets
        .iter()
        .map(|s| {
            serde_json::json!({
                "index": s.index, "version": s.version, "signing_keys": s.signing_keys,
                "threshold": s.threshold, "root_keys": s.root_keys,
                "root_threshold": s.root_threshold, "expires": s.expires,
                "retired_keys": s.retired_keys, "tls_keys": s.tls_keys,
                "retired_at": (s.retired_at > 0).then_some(s.retired_at),
            })
        })
        .collect();
    let revocations: Vec<serde_json::Value> = status
        .revocations
        .iter()
        .map(|r| {
            serde_json::json!({
                "key_id": r.key_id, "from_index": r.from_index, "until_index": r.until_index,
                "published_at": r.published_at, "reason": r.reason,
            })
        })
        .collect();
    serde_json::json!({
        "origin": status.origin, "stale": status.stale, "sets": sets,
        "changes": status.changes,
        "signing_key": (!status.signing_key.is_empty()).then_some(&status.signing_key),
        "revocations": revocations, "quarantined": status.quarantined,
        "tls_key": (!status.tls_key.is_empty()).then_some(&status.tls_key),
        "tls_next": (!status.tls_next.is_empty()).then_some(&status.tls_next),
        "cosigners": status.cosigners,
    })
}

fn print_status(status: &proto::KeysStatusResponse, json: bool) {
    if json {
        println!("{}", status_json(status));
        return;
    }
    println!("origin       {}", status.origin);
    if !status.signing_key.is_empty() {
        println!("signing key  {}", status.signing_key);
    }
    if !status.tls_key.is_empty() {
        println!("TLS key     {}", status.tls_key);
    }
    if !status.tls_next.is_empty() {
        println!(
            "next TLS key {} (run `meridian keys switch-tls` once peers hold the set that lists it)",
            status.tls_next
        );
    }
    if status.stale {
        println!("STALE: the current key set expired");
    }
    if status.cosigners > 0 {
        println!(
            "witnesses    {} peers cosigned the newest checkpoint held here",
            status.cosigners
        );
    }
    for s in &status.sets {
        println!(
            "\nkey set {} at log index {}{}",
            s.version,
            s.index,
            if s.retired_at == 0 { " (current)" } else { "" }
        );
        println!(
            "  signing  {} of {}",
            s.threshold,
            s.signing_keys.join(", ")
        );
        println!(
            "  root     {} of {}",
            s.root_threshold,
            s.root_keys.join(", ")
        );
        println!(
            "  expires  {}",
            if s.expires.is_empty() {
                "never (made before key sets expired)"
            } else {
                &s.expires
            }
        );
        println!("  TLS      {}", s.tls_keys.join(", "));
        for key in &s.retired_keys {
            println!(
                "  retired  {key}: valid for entries before {}",
                s.retired_at
            );
        }
    }
    for r in &status.revocations {
        println!(
            "\nREVOKED {}: entries from log index {} to {} are not trusted (key set at {}){}",
            r.key_id,
            r.from_index,
            r.until_index,
            r.published_at,
            if r.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", r.reason)
            }
        );
    }
    if status.quarantined > 0 || !status.revocations.is_empty() {
        println!(
            "quarantined  {} records held here (not served, not searched until re-signed)",
            status.quarantined
        );
    }
    if !status.changes.is_empty() {
        println!("\nchanges");
        for change in &status.changes {
            println!("  {change}");
        }
    }
}

async fn show(data_dir: &Path, invite: bool, cert: bool, json: bool) -> Result<()> {
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
                "root_key_id": keys.root_key_id, "root_public_key": keys.root_public_key,
            })
        );
    } else {
        println!("node id     {}", keys.node_id);
        println!("key id      {}", keys.key_id);
        println!("public key  {}", keys.public_key);
        println!("root key    {} (peers pin it)", keys.root_key_id);
        println!("endpoint    {}", keys.endpoint);
        println!(
            "\ninvite a peer's operator to run:\n  meridian trust add {}",
            keys.invite
        );
    }
    Ok(())
}
