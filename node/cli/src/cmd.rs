//! The command line: its grammar (clap) and the dispatch to one module per
//! command group. Operator commands talk to the running node over the admin
//! socket in its data directory.

mod fsck;
mod holdings;
mod index;
mod keys;
mod node;
mod peers;
mod search;
mod sync;
mod trust;

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Parser, Subcommand};
use meridian_proto::admin_client::AdminClient;
use tonic::transport::Channel;

pub use self::fsck::FsckArgs;
pub use self::holdings::HoldingsCommand;
pub use self::index::IndexCommand;
pub use self::keys::KeysCommand;
pub use self::node::InitArgs;
pub use self::peers::PeersCommand;
pub use self::search::SearchArgs;
pub use self::sync::SyncCommand;
pub use self::trust::TrustCommand;

#[derive(Debug, Parser)]
#[command(
    name = "meridian",
    version,
    about = "A federated node for signed research-data metadata"
)]
pub struct Cli {
    /// The node's data directory.
    #[arg(
        long,
        global = true,
        env = "MERIDIAN_DATA_DIR",
        default_value = "meridian-data"
    )]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a node: data directory, configuration and identity key.
    Init(InitArgs),
    /// Run the node until SIGINT or SIGTERM.
    Serve,
    /// Run a local federation of three institutions and search across it.
    Demo(crate::demo::DemoArgs),
    /// Manage this institution's holdings index.
    #[command(subcommand)]
    Holdings(HoldingsCommand),
    /// Show the running node's status.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Search the holdings index (as this node's operator).
    Search(Box<SearchArgs>),
    /// The search index.
    #[command(subcommand)]
    Index(IndexCommand),
    /// This node's identity.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The peers this node trusts.
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Replication state of each peer.
    #[command(subcommand)]
    Peers(PeersCommand),
    /// Replication.
    #[command(subcommand)]
    Sync(SyncCommand),
    /// Check that a stopped node's log, Merkle tree, checkpoints, record
    /// states and search index agree; exit 1 on any disagreement.
    Fsck(FsckArgs),
}

impl Command {
    /// Whether the command runs until stopped (a node or the demo).
    pub fn long_running(&self) -> bool {
        matches!(self, Command::Serve | Command::Demo(_))
    }
}

/// Runs a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> Result<i32> {
    let dir = cli.data_dir.as_path();
    match cli.command {
        Command::Init(args) => node::init(dir, &args).map(|()| 0),
        Command::Serve => node::serve(dir).await.map(|()| 0),
        Command::Demo(args) => crate::demo::run(args).await.map(|()| 0),
        Command::Status { json } => node::status(dir, json).await.map(|()| 0),
        Command::Holdings(command) => holdings::run(dir, command).await,
        Command::Search(args) => search::run(dir, *args).await.map(|()| 0),
        Command::Index(command) => index::run(dir, command).await.map(|()| 0),
        Command::Keys(command) => keys::run(dir, command).await.map(|()| 0),
        Command::Trust(command) => trust::run(dir, command).await.map(|()| 0),
        Command::Peers(command) => peers::run(dir, command).await.map(|()| 0),
        Command::Sync(command) => sync::run(dir, command).await,
        Command::Fsck(args) => fsck::run(dir, &args),
    }
}

/// Connects to the running node's admin socket.
async fn admin(data_dir: &Path) -> Result<AdminClient<Channel>> {
    Ok(meridian_server::admin_socket::connect(data_dir).await?)
}

/// A refusal from the node, as the operator reads it.
fn refused(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}", status.message())
}
