//! `meridian init`, `serve` and `status`: create a node, run it, ask it how
//! it is.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Result;
use clap::Args;
use meridian_core::config::{Config, LogFormat};
use meridian_core::ids::NodeId;
use meridian_core::node::Node;
use meridian_proto as proto;

use super::{admin, refused};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// This node's id, e.g. `polar-dc`: the origin of every record it holds.
    #[arg(long)]
    pub node_id: NodeId,
    /// Address of the node's gRPC listener.
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub listen: std::net::SocketAddr,
    /// Address of the node's HTTP listener (OAI-PMH, HTTP API, search page).
    /// Default: the gRPC listener's address at port 7480 (a free port when
    /// `--listen` asks for port 0).
    #[arg(long)]
    pub http_listen: Option<std::net::SocketAddr>,
    /// Write the root key, which signs this node's key sets, to FILE (which
    /// must not exist) instead of the data directory, so it can be kept
    /// offline; `keys rotate` and `keys renew` then take `--root-key FILE`.
    /// Repeat for a root of several keys, kept by different people.
    #[arg(long, value_name = "FILE")]
    pub root_key: Vec<std::path::PathBuf>,
    /// How many of the root keys must sign a key set (with several
    /// `--root-key`; default 1).
    #[arg(long, default_value_t = 1)]
    pub root_threshold: u32,
    /// Days until the first key set expires (at most 366).
    #[arg(long, default_value_t = meridian_core::keyset::DEFAULT_EXPIRY_DAYS)]
    pub expires_days: u32,
    #[arg(long)]
    pub json: bool,
}

pub fn init(data_dir: &Path, args: &InitArgs) -> Result<()> {
    let mut config = Config::new(&args.node_id, args.listen);
    if let Some(http) = args.http_listen {
        config.http.listen = Some(http);
    }
    let http = config.http.listen;
    let key_id = Node::create_with_root(
        data_dir,
        config,
        &args.root_key,
        args.root_threshold,
        args.expires_days,
    )?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "node_id": args.node_id.as_str(), "key_id": key_id.to_string(),
                "listen": args.listen, "http": http, "data_dir": data_dir.display().to_string(),
            })
        );
        return Ok(());
    }
    println!("created node {} in {}", args.node_id, data_dir.display());
    println!("  key id   {key_id}");
    for root in &args.root_key {
        println!("  root key {} (move it offline)", root.display());
    }
    if args.root_key.len() > 1 {
        println!(
            "  root     {} of {} keys sign a key set",
            args.root_threshold,
            args.root_key.len()
        );
    }
    println!("  listen   {}", args.listen);
    if let Some(http) = http {
        println!("  http     {http}");
    }
    let dir = data_dir.display();
    println!("\nnext:");
    println!("  1. start the node          meridian serve --data-dir {dir}");
    println!("  2. share your invitation   meridian keys show --invite --data-dir {dir}");
    println!("     (a peer's operator runs `meridian trust add TOKEN`; pin theirs the same way)");
    println!("  3. load your holdings      meridian holdings import FILE.jsonl --data-dir {dir}");
    println!("check the set-up any time:   meridian doctor --data-dir {dir}");
    Ok(())
}

/// The `MERIDIAN_*` variables of this process: configuration overrides.
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("MERIDIAN_"))
        .collect()
}

/// Sets up tracing as the node's configuration asks; a `log.level` that is
/// not a filter is refused, naming it, rather than read as `info`.
pub fn init_tracing(config: &Config) -> Result<()> {
    // tantivy reports every commit at info; keep it to warnings unless asked.
    let level = if config.log.level.contains("tantivy") {
        config.log.level.clone()
    } else {
        format!("{},tantivy=warn", config.log.level)
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&level).map_err(|e| {
        anyhow::anyhow!(
            "log.level: `{}` is not a log filter ({e}); write a level (error, warn, info, \
             debug, trace) or directives such as `info,meridian_core=debug`",
            config.log.level
        )
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
    Ok(())
}

pub async fn serve(data_dir: &Path) -> Result<()> {
    let env = process_env();
    // Before the configuration: a restore cut short may not have written it.
    meridian_core::node::refuse_unfinished_restore(data_dir)?;
    // Logging first: opening the node may repair what a crash left.
    init_tracing(&Config::load(data_dir, &env)?)?;
    let node = Node::open(data_dir, &env)?;
    let listeners = meridian_server::Listeners::bind(&node).await?;
    let (catalog, admin_path) = (listeners.catalog, listeners.admin_path.clone());
    let http = listeners
        .http
        .map(|addr| format!(" http={addr}"))
        .unwrap_or_default();
    let metrics = listeners
        .metrics
        .map(|addr| format!(" metrics={addr}"))
        .unwrap_or_default();
    tracing::info!(node = %node.node_id(), catalog = %catalog, http = %http.trim(), metrics = %metrics.trim(), admin = %admin_path.display(), "node serving");
    // One machine-readable line on stdout: scripts and tests read the ports.
    println!(
        "listening catalog={catalog}{http}{metrics} admin={}",
        admin_path.display()
    );
    std::io::stdout().flush()?;
    let released = std::sync::Arc::downgrade(&node);
    listeners.serve(node, shutdown_signal()).await?;
    snapshot_store(data_dir, released).await;
    tracing::info!("node stopped");
    Ok(())
}

/// Once the node has let go of its store, has sled write the snapshot that
/// spares the next start a replay of everything written since this one
/// ([`meridian_core::store::snapshot_page_table`]). A failure costs only
/// that: the next start replays the log, as after a crash. So does a node
/// still held [`RELEASE_WAIT`] after the stop (a connection the drain
/// closed whose task has not ended, a search still running): the stop
/// does not wait longer for it.
async fn snapshot_store(data_dir: &Path, node: std::sync::Weak<Node>) {
    let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
    while node.strong_count() > 0 {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(after = ?RELEASE_WAIT, "the node is still in use after the stop; no store snapshot: the next start replays its log");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let store = data_dir.join(meridian_core::node::STORE_DIR);
    meridian_server::notify::Notifier::from_env().snapshotting_store();
    let started = std::time::Instant::now();
    match tokio::task::spawn_blocking(move || meridian_core::store::snapshot_page_table(&store))
        .await
    {
        Ok(Ok(())) => {
            tracing::info!(took = ?started.elapsed(), "store snapshot written; the next start reads the log from here")
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot write the store's snapshot; the next start replays its log")
        }
        Err(e) => tracing::warn!(error = %e, "the store's snapshot did not finish"),
    }
}

/// How long a stop waits for the node to be let go of before it gives up
/// the store's snapshot.
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested; draining");
}

pub async fn status(data_dir: &Path, json: bool) -> Result<()> {
    let mut client = admin(data_dir).await?;
    let s = client
        .status(proto::StatusRequest {})
        .await
        .map_err(refused)?
        .into_inner();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "node_id": s.node_id, "key_id": s.key_id, "log_size": s.log_size,
                "records": s.records, "listen": s.listen, "version": s.version,
                "index_behind": s.index_behind, "recovering": s.recovering,
            })
        );
    } else {
        println!("node      {}", s.node_id);
        println!("key id    {}", s.key_id);
        println!("listen    {}", s.listen);
        println!("records   {}", s.records);
        println!("log size  {}", s.log_size);
        if s.recovering {
            println!(
                "state     recovering: restored from a backup, pulling its own log back from its \
                 peers; own imports are refused until then (`meridian finish-recovery` ends it \
                 when no peer holds more)"
            );
        }
    }
    Ok(())
}

/// `meridian health`: 0 when the node answers on its admin socket and its
/// index has caught up with its store (it serves complete answers), 1
/// otherwise, with the reason. For probes: it needs no TLS and no network.
pub async fn health(data_dir: &Path, json: bool) -> Result<i32> {
    let answer = match admin(data_dir).await {
        Ok(mut client) => client
            .status(proto::StatusRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| status.message().to_owned()),
        Err(e) => Err(e.to_string()),
    };
    let (healthy, reason, node_id, behind) = match &answer {
        Ok(s) if s.index_behind == 0 => (true, "serving".to_owned(), s.node_id.clone(), 0),
        Ok(s) => (
            false,
            format!("the index is {} entries behind the store", s.index_behind),
            s.node_id.clone(),
            s.index_behind,
        ),
        Err(e) => (false, e.clone(), String::new(), 0),
    };
    if json {
        println!(
            "{}",
            serde_json::json!({
                "healthy": healthy, "reason": reason, "node_id": node_id,
                "index_behind": behind,
            })
        );
    } else if healthy {
        println!("healthy: {node_id} {reason}");
    } else {
        eprintln!("unhealthy: {reason}");
    }
    Ok(if healthy { 0 } else { 1 })
}
