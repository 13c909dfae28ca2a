//! The `meridian` command line (clap). Operator commands talk to the running
//! node over the admin socket in its data directory.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::config::{Config, ADMIN_SOCKET};
use crate::node::Node;
use crate::proto::admin_client::AdminClient;
use crate::proto::{self, DatasetRecord};
use crate::record;

/// Lines per import chunk, and the byte budget of one chunk.
const CHUNK_LINES: usize = 2000;
const CHUNK_BYTES: usize = 4 * 1024 * 1024;

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
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Free text with fields (`title:ice`, `keyword:"sea ice"`, `creator:wang`),
    /// phrases, AND/OR/NOT, prefixes (`glaci*`). Empty matches everything.
    #[arg(default_value = "")]
    pub query: String,
    /// local (own holdings), federation (own and replicated) or live.
    #[arg(long, default_value = "federation")]
    pub scope: String,
    #[arg(long = "discipline")]
    pub disciplines: Vec<String>,
    #[arg(long = "origin")]
    pub origins: Vec<String>,
    /// open, registered, embargoed or restricted.
    #[arg(long)]
    pub access: Vec<String>,
    #[arg(long = "license")]
    pub licenses: Vec<String>,
    #[arg(long = "format")]
    pub formats: Vec<String>,
    /// Publication years `FROM..TO` (either side may be empty).
    #[arg(long)]
    pub year: Option<String>,
    /// Bounding box `W,S,E,N` in degrees; W > E crosses the antimeridian.
    #[arg(long, allow_hyphen_values = true)]
    pub bbox: Option<String>,
    /// Temporal coverage overlapping from this date.
    #[arg(long)]
    pub from: Option<String>,
    /// Temporal coverage overlapping up to this date.
    #[arg(long)]
    pub to: Option<String>,
    /// relevance, updated or size.
    #[arg(long, default_value = "relevance")]
    pub sort: String,
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// The cursor printed after the previous page.
    #[arg(long)]
    pub after: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Drop the search index and rebuild it from the store.
    Rebuild,
}

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

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Pin a peer from its invitation token.
    Add {
        token: String,
        /// Groups the peer belongs to, comma-separated (for GROUPS visibility).
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
    },
    /// List pinned peers.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one peer and the audit trail of its changes.
    Show { node_id: String },
    /// Stop serving and pulling from a peer until resumed.
    Suspend { node_id: String },
    /// Make a suspended peer active again.
    Resume { node_id: String },
    /// Refuse a peer's keys everywhere, for good.
    Revoke { node_id: String },
}

#[derive(Debug, Subcommand)]
pub enum PeersCommand {
    /// Per peer: reachable, last sync, lag, errors.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Run a sync round with every active peer now and report per peer.
    Now {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// This node's id, e.g. `polar-dc`: the origin of every record it holds.
    #[arg(long)]
    pub node_id: String,
    /// Address of the node's gRPC listener.
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub listen: std::net::SocketAddr,
}

#[derive(Debug, Subcommand)]
pub enum HoldingsCommand {
    /// Import JSON Lines records (`-` reads standard input).
    Import { file: PathBuf },
    /// Store one record read as JSON from standard input.
    Put,
    /// Show one record.
    Get {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// List the holdings.
    List {
        #[arg(long)]
        json: bool,
        /// Also list tombstones of deleted records.
        #[arg(long)]
        include_deleted: bool,
    },
    /// Withdraw a record (a signed tombstone replaces it).
    Rm { id: String },
}

/// Runs a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Init(args) => init(&cli.data_dir, &args).map(|()| 0),
        Command::Serve => serve(&cli.data_dir).await.map(|()| 0),
        Command::Demo(args) => crate::demo::run(args).await.map(|()| 0),
        Command::Holdings(command) => holdings(&cli.data_dir, command).await,
        Command::Status { json } => status(&cli.data_dir, json).await.map(|()| 0),
        Command::Search(args) => search(&cli.data_dir, *args).await.map(|()| 0),
        Command::Index(IndexCommand::Rebuild) => rebuild_index(&cli.data_dir).await.map(|()| 0),
        Command::Keys(command) => keys(&cli.data_dir, command).await.map(|()| 0),
        Command::Trust(command) => trust(&cli.data_dir, command).await.map(|()| 0),
        Command::Peers(PeersCommand::Status { json }) => {
            peers_status(&cli.data_dir, json).await.map(|()| 0)
        }
        Command::Sync(SyncCommand::Now { json }) => sync_now(&cli.data_dir, json).await,
    }
}

fn init(data_dir: &Path, args: &InitArgs) -> Result<()> {
    let key_id = Node::create(data_dir, &args.node_id, args.listen)?;
    println!("created node {} in {}", args.node_id, data_dir.display());
    println!("  key id   {key_id}");
    println!("  listen   {}", args.listen);
    println!(
        "start it with: meridian serve --data-dir {}",
        data_dir.display()
    );
    Ok(())
}

pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("MERIDIAN_"))
        .collect()
}

/// Sets up tracing as the node's configuration asks.
pub fn init_tracing(config: &Config) {
    // tantivy reports every commit at info; keep it to warnings unless asked.
    let level = if config.log.level.contains("tantivy") {
        config.log.level.clone()
    } else {
        format!("{},tantivy=warn", config.log.level)
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if config.log.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

async fn serve(data_dir: &Path) -> Result<()> {
    let node = Node::open(data_dir, &process_env())?;
    init_tracing(node.config());
    let listen = node.config().listen;
    let tcp = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = tcp.local_addr()?;
    let endpoint = node
        .config()
        .endpoint
        .clone()
        .unwrap_or_else(|| bound.to_string());
    node.set_endpoint(endpoint);
    let socket = data_dir.join(ADMIN_SOCKET);
    let admin = crate::server::bind_admin_socket(&socket).await?;
    tracing::info!(node = %node.node_id(), catalog = %bound, admin = %socket.display(), "node serving");
    // One machine-readable line on stdout: scripts and tests read the port.
    println!("listening catalog={bound} admin={}", socket.display());
    std::io::stdout().flush()?;
    crate::server::serve(node, tcp, admin, shutdown_signal()).await?;
    let _ = std::fs::remove_file(&socket);
    tracing::info!("node stopped");
    Ok(())
}

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

/// Connects to the running node's admin socket.
pub async fn admin_client(data_dir: &Path) -> Result<AdminClient<Channel>> {
    let socket = data_dir.join(ADMIN_SOCKET);
    if !socket.exists() {
        bail!(
            "no node is running in {} (no {}); start it with `meridian serve --data-dir {}`",
            data_dir.display(),
            ADMIN_SOCKET,
            data_dir.display()
        );
    }
    let channel = Endpoint::from_static("http://admin.local")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                tokio::net::UnixStream::connect(socket)
                    .await
                    .map(TokioIo::new)
            }
        }))
        .await
        .with_context(|| {
            format!(
                "cannot reach the node's admin socket in {}",
                data_dir.display()
            )
        })?;
    Ok(AdminClient::new(channel)
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024))
}

async fn holdings(data_dir: &Path, command: HoldingsCommand) -> Result<i32> {
    let mut client = admin_client(data_dir).await?;
    match command {
        HoldingsCommand::Import { file } => import(&mut client, &file).await,
        HoldingsCommand::Put => put(&mut client).await,
        HoldingsCommand::Get { id, json } => {
            let view = client
                .get_record(proto::GetRecordRequest {
                    origin: String::new(),
                    id,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            print_record(&view, json);
            Ok(0)
        }
        HoldingsCommand::List {
            json,
            include_deleted,
        } => {
            list(&mut client, json, include_deleted).await?;
            Ok(0)
        }
        HoldingsCommand::Rm { id } => {
            let reply = client
                .delete_record(proto::DeleteRecordRequest { id: id.clone() })
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "deleted {id} (tombstone version {}, log index {})",
                reply.version, reply.log_index
            );
            Ok(0)
        }
    }
}

fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}", status.message())
}

/// Reads lines of at most `limit` bytes; a longer line is skipped to its end
/// and reported, so one huge line never has to fit in memory.
enum Line {
    Text(String),
    TooLong,
    NotUtf8,
}

fn read_line_bounded(reader: &mut impl BufRead, limit: usize) -> std::io::Result<Option<Line>> {
    let mut buf = Vec::new();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            if buf.is_empty() && !too_long {
                return Ok(None);
            }
            break;
        }
        let (take, done) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        if !too_long {
            buf.extend_from_slice(&available[..take]);
            if buf.len() > limit + 1 {
                too_long = true;
                buf = Vec::new();
            }
        }
        reader.consume(take);
        if done {
            break;
        }
    }
    if too_long {
        return Ok(Some(Line::TooLong));
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Some(match String::from_utf8(buf) {
        Ok(text) => Line::Text(text),
        Err(_) => Line::NotUtf8,
    }))
}

async fn import(client: &mut AdminClient<Channel>, file: &Path) -> Result<i32> {
    let (reader, total_bytes): (Box<dyn BufRead + Send>, Option<u64>) = if file == Path::new("-") {
        (Box::new(BufReader::new(std::io::stdin())), None)
    } else {
        let handle =
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        let len = handle.metadata().ok().map(|m| m.len());
        (Box::new(BufReader::with_capacity(1 << 20, handle)), len)
    };
    let progress = progress_bar(total_bytes);
    let (tx, rx) = tokio::sync::mpsc::channel::<proto::ImportChunk>(4);
    // Reading runs on its own thread: the file is streamed, never loaded whole.
    let name = file.display().to_string();
    let reader_task = tokio::task::spawn_blocking(move || -> Result<Vec<(u64, String)>> {
        let mut reader = reader;
        let mut local_errors = Vec::new();
        let mut line_no = 0u64;
        let mut chunk = proto::ImportChunk {
            first_line: 1,
            ..Default::default()
        };
        let mut chunk_bytes = 0usize;
        loop {
            let line = read_line_bounded(&mut reader, record::MAX_LINE_BYTES)
                .with_context(|| format!("reading {name}"))?;
            let Some(line) = line else { break };
            line_no += 1;
            let text = match line {
                Line::Text(text) if text.trim().is_empty() => continue,
                Line::Text(text) => text,
                Line::TooLong => {
                    local_errors.push((
                        line_no,
                        format!("line: longer than {} bytes", record::MAX_LINE_BYTES),
                    ));
                    continue;
                }
                Line::NotUtf8 => {
                    local_errors.push((line_no, "line: not valid UTF-8".to_owned()));
                    continue;
                }
            };
            if chunk.lines.is_empty() {
                chunk.first_line = line_no;
            } else if chunk.first_line + chunk.lines.len() as u64 != line_no {
                // Keep line numbers exact: a skipped line starts a new chunk.
                let full = std::mem::take(&mut chunk);
                chunk_bytes = 0;
                if tx.blocking_send(full).is_err() {
                    break;
                }
                chunk.first_line = line_no;
            }
            chunk_bytes += text.len();
            chunk.lines.push(text);
            if chunk.lines.len() >= CHUNK_LINES || chunk_bytes >= CHUNK_BYTES {
                let full = std::mem::take(&mut chunk);
                chunk_bytes = 0;
                if tx.blocking_send(full).is_err() {
                    break;
                }
            }
        }
        if !chunk.lines.is_empty() {
            let _ = tx.blocking_send(chunk);
        }
        Ok(local_errors)
    });

    let started = Instant::now();
    let mut acks = client
        .import(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(status_error)?
        .into_inner();
    let (mut stored, mut unchanged, mut rejected) = (0u64, 0u64, 0u64);
    let mut errors: Vec<(u64, String)> = Vec::new();
    while let Some(ack) = acks.message().await.map_err(status_error)? {
        stored += ack.stored;
        unchanged += ack.unchanged;
        rejected += ack.rejected;
        for e in ack.errors {
            errors.push((e.line, format!("{}: {}", e.field, e.reason)));
        }
        progress.set_message(format!(
            "{stored} stored, {unchanged} unchanged, {rejected} rejected"
        ));
        progress.inc(0);
        progress.set_position(stored + unchanged + rejected);
    }
    let local_errors = reader_task.await??;
    rejected += local_errors.len() as u64;
    errors.extend(local_errors);
    progress.finish_and_clear();
    errors.sort_by_key(|(line, _)| *line);
    let mut stderr = std::io::stderr().lock();
    for (line, message) in &errors {
        writeln!(stderr, "line {line}: {message}")?;
    }
    let secs = started.elapsed().as_secs_f64();
    let total = stored + unchanged + rejected;
    println!(
        "stored {stored}, unchanged {unchanged}, rejected {rejected} ({total} records in {secs:.1}s, {:.0} records/s)",
        total as f64 / secs.max(1e-9)
    );
    Ok(if rejected > 0 { 1 } else { 0 })
}

fn progress_bar(_total_bytes: Option<u64>) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} records  {per_sec}  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

async fn put(client: &mut AdminClient<Channel>) -> Result<i32> {
    let mut text = String::new();
    std::io::stdin()
        .take(record::MAX_LINE_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .context("reading the record from standard input")?;
    if text.len() > record::MAX_LINE_BYTES {
        bail!("record: longer than {} bytes", record::MAX_LINE_BYTES);
    }
    // Accept pretty-printed JSON: the node takes one record per line.
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("json: {e}"))?;
    let chunk = proto::ImportChunk {
        first_line: 1,
        lines: vec![value.to_string()],
        ..Default::default()
    };
    let mut acks = client
        .import(tokio_stream::iter(vec![chunk]))
        .await
        .map_err(status_error)?
        .into_inner();
    let ack = acks
        .message()
        .await
        .map_err(status_error)?
        .context("the node closed the import without an answer")?;
    if let Some(e) = ack.errors.first() {
        eprintln!("{}: {}", e.field, e.reason);
        return Ok(1);
    }
    let id = value.get("id").and_then(|v| v.as_str()).unwrap_or_default();
    if ack.unchanged > 0 {
        println!("{id} unchanged");
    } else {
        println!("stored {id} (log size {})", ack.log_size);
    }
    Ok(0)
}

async fn list(client: &mut AdminClient<Channel>, json: bool, include_deleted: bool) -> Result<()> {
    let mut token = String::new();
    let mut out = std::io::stdout().lock();
    if !json {
        writeln!(
            out,
            "{:<28} {:>4}  {:<10}  {:<20}  TITLE",
            "ID", "VER", "VISIBILITY", "UPDATED"
        )?;
    }
    loop {
        let page = client
            .list_records(proto::ListRecordsRequest {
                origin: String::new(),
                page_size: 500,
                page_token: token,
                include_deleted,
            })
            .await
            .map_err(status_error)?
            .into_inner();
        for view in &page.records {
            let Some(record) = &view.record else { continue };
            if json {
                writeln!(out, "{}", record::to_json(record))?;
            } else {
                let title = if record.deleted {
                    "(deleted)".to_owned()
                } else {
                    truncate(&record.title, 60)
                };
                writeln!(
                    out,
                    "{:<28} {:>4}  {:<10}  {:<20}  {}",
                    truncate(&record.id, 28),
                    record.version,
                    record::visibility_name(record.visibility),
                    record.updated_at,
                    title
                )?;
            }
        }
        if page.next_page_token.is_empty() {
            return Ok(());
        }
        token = page.next_page_token;
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

fn print_record(view: &proto::RecordView, json: bool) {
    let Some(record) = &view.record else { return };
    if json {
        let mut value = record::to_json(record);
        if let Some(map) = value.as_object_mut() {
            map.insert("log_index".into(), view.log_index.into());
            map.insert(
                "verified_key_id".into(),
                view.verified_key_id.clone().into(),
            );
        }
        println!("{value}");
        return;
    }
    print_human(record, view);
}

fn print_human(r: &DatasetRecord, view: &proto::RecordView) {
    println!(
        "{}  (version {}, {})",
        r.title,
        r.version,
        record::visibility_name(r.visibility)
    );
    println!("  id          {}:{}", r.origin, r.id);
    let creators: Vec<&str> = r.creators.iter().map(|c| c.name.as_str()).collect();
    println!("  creators    {}", creators.join("; "));
    println!("  publisher   {} ({})", r.publisher, r.publication_year);
    if !r.doi.is_empty() {
        println!("  doi         {}", r.doi);
    }
    if !r.keywords.is_empty() {
        println!("  keywords    {}", r.keywords.join(", "));
    }
    println!(
        "  access      {}  license {}",
        record::access_name(r.access),
        r.license
    );
    if r.size_bytes > 0 {
        println!(
            "  size        {} bytes in {} files",
            r.size_bytes, r.file_count
        );
    }
    println!("  updated     {}", r.updated_at);
    println!(
        "  signed      log index {}, verified with {}",
        view.log_index, view.verified_key_id
    );
    if !r.description.is_empty() {
        println!("\n{}", r.description);
    }
}

async fn status(data_dir: &Path, json: bool) -> Result<()> {
    let mut client = admin_client(data_dir).await?;
    let s = client
        .status(proto::StatusRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "node_id": s.node_id, "key_id": s.key_id, "log_size": s.log_size,
                "records": s.records, "listen": s.listen, "version": s.version,
            })
        );
    } else {
        println!("node      {}", s.node_id);
        println!("key id    {}", s.key_id);
        println!("listen    {}", s.listen);
        println!("records   {}", s.records);
        println!("log size  {}", s.log_size);
    }
    Ok(())
}

async fn keys(data_dir: &Path, command: KeysCommand) -> Result<()> {
    let KeysCommand::Show { invite, json } = command;
    let mut client = admin_client(data_dir).await?;
    let keys = client
        .keys_show(proto::KeysShowRequest {})
        .await
        .map_err(status_error)?
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

fn print_peer(peer: &proto::PeerInfo) {
    println!(
        "{:<20} {:<10} {:<22} {:<24} [{}]",
        peer.node_id,
        peer.state,
        peer.endpoint,
        peer.key_id,
        peer.groups.join(",")
    );
}

async fn trust(data_dir: &Path, command: TrustCommand) -> Result<()> {
    let mut client = admin_client(data_dir).await?;
    let set_state = |node_id: String, state: &str| proto::TrustSetStateRequest {
        node_id,
        state: state.to_owned(),
    };
    let changed = match command {
        TrustCommand::Add { token, groups } => {
            let peer = client
                .trust_add(proto::TrustAddRequest {
                    invite: token,
                    groups,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "pinned {} at {} (key {})",
                peer.node_id, peer.endpoint, peer.key_id
            );
            return Ok(());
        }
        TrustCommand::List { json } => {
            let list = client
                .trust_list(proto::TrustListRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            if json {
                for peer in &list.peers {
                    println!(
                        "{}",
                        serde_json::json!({
                            "node_id": peer.node_id, "state": peer.state, "endpoint": peer.endpoint,
                            "key_id": peer.key_id, "groups": peer.groups, "added_at": peer.added_at,
                            "changed_at": peer.changed_at,
                        })
                    );
                }
            } else {
                println!(
                    "{:<20} {:<10} {:<22} {:<24} GROUPS",
                    "NODE", "STATE", "ENDPOINT", "KEY ID"
                );
                list.peers.iter().for_each(print_peer);
            }
            return Ok(());
        }
        TrustCommand::Show { node_id } => {
            let list = client
                .trust_list(proto::TrustListRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            let peer = list
                .peers
                .iter()
                .find(|p| p.node_id == node_id)
                .with_context(|| format!("no peer {node_id} in the trust store"))?;
            println!("node id     {}", peer.node_id);
            println!("state       {}", peer.state);
            println!("endpoint    {}", peer.endpoint);
            println!("key id      {}", peer.key_id);
            println!("groups      {}", peer.groups.join(", "));
            println!("added       {}", peer.added_at);
            println!("changed     {}", peer.changed_at);
            println!("audit:");
            for line in &list.audit {
                let event: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
                if event["peer"] == node_id.as_str() {
                    println!(
                        "  {}  {:<10} {}",
                        event["at"].as_str().unwrap_or(""),
                        event["action"].as_str().unwrap_or(""),
                        event["detail"].as_str().unwrap_or("")
                    );
                }
            }
            return Ok(());
        }
        TrustCommand::Suspend { node_id } => {
            client
                .trust_set_state(set_state(node_id, "suspended"))
                .await
        }
        TrustCommand::Resume { node_id } => {
            client.trust_set_state(set_state(node_id, "active")).await
        }
        TrustCommand::Revoke { node_id } => {
            client.trust_set_state(set_state(node_id, "revoked")).await
        }
    };
    let peer = changed.map_err(status_error)?.into_inner();
    println!("{} is now {}", peer.node_id, peer.state);
    Ok(())
}

async fn peers_status(data_dir: &Path, json: bool) -> Result<()> {
    let mut client = admin_client(data_dir).await?;
    let status = client
        .peers_status(proto::PeersStatusRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    if !json {
        println!(
            "{:<20} {:<10} {:<9} {:<21} {:>8} {:>9} {:>8}  LAST ERROR",
            "PEER", "STATE", "REACHABLE", "LAST SYNC", "LAG", "RECEIVED", "REJECTED"
        );
    }
    for p in &status.peers {
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "node_id": p.node_id, "state": p.state, "reachable": p.reachable,
                    "last_sync": p.last_sync, "lag": p.lag, "entries_received": p.entries_received,
                    "rejected": p.rejected, "last_error": p.last_error, "endpoint": p.endpoint,
                    "groups": p.groups,
                })
            );
        } else {
            let last = if p.last_sync.is_empty() {
                "never"
            } else {
                p.last_sync.as_str()
            };
            println!(
                "{:<20} {:<10} {:<9} {:<21} {:>8} {:>9} {:>8}  {}",
                p.node_id,
                p.state,
                if p.reachable { "yes" } else { "no" },
                last,
                p.lag,
                p.entries_received,
                p.rejected,
                p.last_error
            );
        }
    }
    Ok(())
}

async fn sync_now(data_dir: &Path, json: bool) -> Result<i32> {
    let mut client = admin_client(data_dir).await?;
    let response = client
        .sync_now(proto::SyncNowRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    let mut failed = false;
    for r in &response.reports {
        failed |= !r.ok;
        if json {
            println!(
                "{}",
                serde_json::json!({"peer": r.peer, "ok": r.ok, "entries": r.entries, "origins": r.origins, "error": r.error})
            );
        } else if r.ok {
            println!(
                "{:<20} ok      {} entries from [{}]",
                r.peer,
                r.entries,
                r.origins.join(", ")
            );
        } else {
            println!("{:<20} failed  {}", r.peer, r.error);
        }
    }
    if response.reports.is_empty() && !json {
        println!("no active peers; pin one with `meridian trust add TOKEN`");
    }
    Ok(if failed { 1 } else { 0 })
}

/// Parses `FROM..TO` years; either side may be empty.
fn parse_years(text: &str) -> Result<(u32, u32)> {
    let (from, to) = text.split_once("..").unwrap_or((text, text));
    let year = |part: &str| -> Result<u32> {
        if part.trim().is_empty() {
            return Ok(0);
        }
        part.trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("--year: `{part}` is not a year"))
    };
    Ok((year(from)?, year(to)?))
}

/// Parses `W,S,E,N`.
fn parse_bbox(text: &str) -> Result<proto::BoundingBox> {
    let parts: Vec<f64> = text
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("--bbox: `{text}` is not W,S,E,N in degrees"))?;
    let [west, south, east, north] = parts[..] else {
        bail!(
            "--bbox: `{text}` has {} numbers, expected W,S,E,N",
            parts.len()
        );
    };
    if !(-180.0..=180.0).contains(&west) || !(-180.0..=180.0).contains(&east) {
        bail!("--bbox: longitudes must be within -180..180");
    }
    if !(-90.0..=90.0).contains(&south) || !(-90.0..=90.0).contains(&north) || south > north {
        bail!("--bbox: latitudes must be within -90..90 with S <= N");
    }
    Ok(proto::BoundingBox {
        west,
        south,
        east,
        north,
    })
}

async fn search(data_dir: &Path, args: SearchArgs) -> Result<()> {
    let (year_from, year_to) = match &args.year {
        Some(text) => parse_years(text)?,
        None => (0, 0),
    };
    let request = proto::SearchRequest {
        query: args.query,
        scope: args.scope,
        disciplines: args.disciplines,
        origins: args.origins,
        access: args.access,
        licenses: args.licenses,
        formats: args.formats,
        year_from,
        year_to,
        bbox: args.bbox.as_deref().map(parse_bbox).transpose()?,
        time_from: args.from.unwrap_or_default(),
        time_to: args.to.unwrap_or_default(),
        sort: args.sort,
        limit: args.limit,
        after: args.after.unwrap_or_default(),
        facets: true,
        highlight: !args.json,
    };
    let mut client = admin_client(data_dir).await?;
    let answer = client
        .search(request)
        .await
        .map_err(status_error)?
        .into_inner();
    if args.json {
        println!("{}", search_json(&answer));
        return Ok(());
    }
    print_search(&answer);
    Ok(())
}

/// The JSON form of a search answer (`--json`).
pub fn search_json(answer: &proto::SearchResponse) -> serde_json::Value {
    serde_json::json!({
        "total": answer.total,
        "took_micros": answer.took_micros,
        "next_cursor": answer.next_cursor,
        "hits": answer.hits.iter().map(|h| serde_json::json!({
            "origin": h.origin, "id": h.id, "version": h.version, "title": h.title,
            "doi": h.doi, "publication_year": h.publication_year, "updated_at": h.updated_at,
            "size_bytes": h.size_bytes, "score": h.score, "snippet": h.snippet,
            "access": h.access, "visibility": h.visibility, "verified": h.verified,
        })).collect::<Vec<_>>(),
        "facets": answer.facets.iter().map(|f| (f.name.clone(), serde_json::json!(
            f.values.iter().map(|v| serde_json::json!({"value": v.value, "count": v.count})).collect::<Vec<_>>()
        ))).collect::<serde_json::Map<_, _>>(),
        "completeness": answer.completeness.iter().map(|c| serde_json::json!({
            "origin": c.origin, "status": c.status, "as_of": c.as_of,
        })).collect::<Vec<_>>(),
    })
}

fn strip_marks(snippet: &str) -> String {
    snippet
        .replace("<b>", "\x1b[1m")
        .replace("</b>", "\x1b[0m")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
}

/// The human form of a search answer: a table of hits, then facets.
pub fn print_search(answer: &proto::SearchResponse) {
    let plain = !std::io::stdout().is_terminal();
    println!(
        "{} hits ({:.1} ms)",
        answer.total,
        answer.took_micros as f64 / 1000.0
    );
    if !answer.hits.is_empty() {
        println!(
            "{:<12} {:<24} {:>4}  {:<10}  TITLE",
            "ORIGIN", "ID", "YEAR", "ACCESS"
        );
    }
    for hit in &answer.hits {
        println!(
            "{:<12} {:<24} {:>4}  {:<10}  {}{}",
            truncate(&hit.origin, 12),
            truncate(&hit.id, 24),
            hit.publication_year,
            hit.access,
            truncate(&hit.title, 70),
            if hit.verified { "" } else { "  (unverified)" }
        );
        if !hit.snippet.is_empty() {
            let snippet = if plain {
                strip_marks(&hit.snippet)
                    .replace("\x1b[1m", "")
                    .replace("\x1b[0m", "")
            } else {
                strip_marks(&hit.snippet)
            };
            println!("{:>42}{}", "", snippet.replace('\n', " "));
        }
    }
    for facet in &answer.facets {
        if facet.values.is_empty() {
            continue;
        }
        let values: Vec<String> = facet
            .values
            .iter()
            .take(8)
            .map(|v| format!("{} {}", v.value, v.count))
            .collect();
        println!("{:>12}: {}", facet.name, values.join(", "));
    }
    let sources: Vec<String> = answer
        .completeness
        .iter()
        .map(|c| match c.status.as_str() {
            "replica" if c.as_of.is_empty() => format!("{} (replica, never synced)", c.origin),
            "replica" => format!("{} (replica as of {})", c.origin, c.as_of),
            other => format!("{} ({other})", c.origin),
        })
        .collect();
    println!("  sources: {}", sources.join(", "));
    if !answer.next_cursor.is_empty() {
        println!("  more: --after {}", answer.next_cursor);
    }
}

async fn rebuild_index(data_dir: &Path) -> Result<()> {
    let mut client = admin_client(data_dir).await?;
    let started = Instant::now();
    let mut stream = client
        .rebuild_index(proto::RebuildIndexRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(0)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} log entries  {per_sec}  eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut indexed = 0;
    while let Some(progress) = stream.message().await.map_err(status_error)? {
        bar.set_length(progress.total);
        bar.set_position(progress.indexed);
        indexed = progress.indexed;
        if progress.done {
            break;
        }
    }
    bar.finish_and_clear();
    println!(
        "rebuilt the search index from {indexed} log entries in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
