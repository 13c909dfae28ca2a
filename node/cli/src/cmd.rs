//! The command line: its grammar (clap) and the dispatch to one module per
//! command group. Operator commands talk to the running node over the admin
//! socket in its data directory.

mod audit;
mod backup;
mod doctor;
mod evidence;
mod fsck;
mod harvest;
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

pub use self::audit::AuditCommand;
pub use self::backup::{BackupArgs, RestoreArgs};
pub use self::doctor::DoctorArgs;
pub use self::evidence::EvidenceCommand;
pub use self::fsck::FsckArgs;
pub use self::harvest::HarvestCommand;
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
    /// The node's data directory [default: meridian-data]; for `demo`, the
    /// directory that keeps the federation (a temporary one if not given).
    #[arg(long, global = true, env = "MERIDIAN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
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
    /// Harvest OAI-PMH providers (DSpace, Dataverse, CKAN, InvenioRDM,
    /// another node's /oai) into the holdings.
    #[command(subcommand)]
    Harvest(HarvestCommand),
    /// Show the running node's status.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 when the node answers and its index has caught up, 1 (with
    /// the reason) otherwise: for health checks and probes.
    Health {
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
    /// Evidence of equivocation: export what froze an origin, verify a
    /// file offline.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// What peers asked this node (`audit queries`).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Check that a stopped node's log, Merkle tree, checkpoints, record
    /// states and search index agree; exit 1 on any disagreement.
    Fsck(FsckArgs),
    /// Check a data directory and, when it runs, the node: permissions,
    /// configuration, keys, certificate, clock, disk space, listeners and
    /// peers; say what to fix. Exit 1 when a check fails.
    Doctor(DoctorArgs),
    /// Write a consistent backup of the node (running or stopped) into a
    /// new directory DIR: store, keys, trust store, audit trail and
    /// configuration; not the search index, which a node re-derives.
    Backup(BackupArgs),
    /// Restore the backup in DIR into the empty directory --data-dir; the
    /// restored node recovers its own log from its peers before it appends.
    Restore(RestoreArgs),
    /// End the recovery of a restored node when no peer holds more of its
    /// own log (it ends by itself once every peer was reached).
    FinishRecovery,
    /// Print the shell completion script for SHELL (source it, or install it
    /// where the shell looks for completions).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages of `meridian` and every subcommand into DIR.
    Man { dir: PathBuf },
}

impl Command {
    /// Whether the command runs until stopped (a node or the demo).
    pub fn long_running(&self) -> bool {
        matches!(self, Command::Serve | Command::Demo(_))
    }
}

/// The data directory when neither `--data-dir` nor `MERIDIAN_DATA_DIR`
/// names one.
const DEFAULT_DATA_DIR: &str = "meridian-data";

/// Runs a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> Result<i32> {
    let data_dir = cli
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let dir = data_dir.as_path();
    match cli.command {
        Command::Init(args) => node::init(dir, &args).map(|()| 0),
        Command::Serve => node::serve(dir).await.map(|()| 0),
        Command::Demo(mut args) => {
            args.dir = args.dir.or(cli.data_dir);
            crate::demo::run(args).await.map(|()| 0)
        }
        Command::Status { json } => node::status(dir, json).await.map(|()| 0),
        Command::Health { json } => node::health(dir, json).await,
        Command::Holdings(command) => holdings::run(dir, command).await,
        Command::Search(args) => search::run(dir, *args).await.map(|()| 0),
        Command::Index(command) => index::run(dir, command).await.map(|()| 0),
        Command::Keys(command) => keys::run(dir, command).await.map(|()| 0),
        Command::Trust(command) => trust::run(dir, command).await.map(|()| 0),
        Command::Peers(command) => peers::run(dir, command).await.map(|()| 0),
        Command::Sync(command) => sync::run(dir, command).await,
        Command::Evidence(command) => evidence::run(dir, command).await,
        Command::Audit(command) => audit::run(dir, command).await.map(|()| 0),
        Command::Harvest(command) => harvest::run(dir, command).await,
        Command::Fsck(args) => fsck::run(dir, &args),
        Command::Doctor(args) => doctor::run(dir, &args).await,
        Command::Backup(args) => backup::backup(dir, &args).await.map(|()| 0),
        Command::Restore(args) => backup::restore(dir, &args).map(|()| 0),
        Command::FinishRecovery => backup::finish_recovery(dir).await.map(|()| 0),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "meridian",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
        Command::Man { dir } => man(&dir).map(|()| 0),
    }
}

/// Writes `meridian.1` and one page per subcommand (`meridian-holdings-import.1`, …) into `dir`.
fn man(dir: &Path) -> Result<()> {
    use anyhow::Context;
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
    println!("man pages written to {}", dir.display());
    Ok(())
}

/// Asks the operator to confirm `what` when standard input is a terminal;
/// `--yes` confirms in advance. Without a terminal and without `--yes` the
/// command is refused, so a script never takes something away by accident.
fn confirm(what: &str, yes: bool) -> Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "{what}: not confirmed (standard input is not a terminal); pass --yes to confirm"
        );
    }
    eprint!("{what}? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    let confirmed = matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes");
    if !confirmed {
        eprintln!("cancelled");
    }
    Ok(confirmed)
}

/// Connects to the running node's admin socket.
async fn admin(data_dir: &Path) -> Result<AdminClient<Channel>> {
    Ok(meridian_server::admin_socket::connect(data_dir).await?)
}

/// A refusal from the node, as the operator reads it.
fn refused(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}", status.message())
}
