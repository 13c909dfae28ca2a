//! `meridian demo`: a local federation of three institutions on loopback.
//!
//! A polar data center, a university and a genomics institute, each a real
//! node (TLS listener, admin socket, background tasks) in this process, with
//! a generated holdings index. They pin each other, replicate through the
//! same admin calls an operator makes (`sync now`), and answer
//! cross-institution searches. The federation keeps running until Ctrl-C
//! (or stops after the searches with `--exit`) so it can be queried with the
//! CLI or grpcurl.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use meridian_core::node::Node;
use meridian_proto as proto;
use meridian_proto::admin_client::AdminClient;
use meridian_testkit::generate::{Generator, Profile};
use tonic::transport::Channel;

use crate::output;

/// The institutions of the demo: node id and the holdings it generates.
const INSTITUTIONS: [(&str, Profile); 3] = [
    ("polar-dc", Profile::Polar),
    ("university", Profile::University),
    ("genomics", Profile::Genomics),
];

/// How long the demo waits for replication and indexing to settle.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Options of `meridian demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Generated records per institution.
    #[arg(long, default_value_t = 2000)]
    pub records: u64,
    /// Keep the federation in this directory instead of a temporary one
    /// (`--data-dir` says the same).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Stop after the example searches instead of serving until Ctrl-C.
    #[arg(long, alias = "no-wait")]
    pub exit: bool,
}

struct Running {
    node: Arc<Node>,
    dir: PathBuf,
    admin: AdminClient<Channel>,
    /// Where its Prometheus metrics are served.
    metrics: Option<std::net::SocketAddr>,
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> Result<()> {
    let temp = tempfile::Builder::new()
        .prefix("meridian-demo-")
        .tempdir()?;
    let root = args.dir.clone().unwrap_or_else(|| temp.path().to_owned());
    println!("Meridian demo: three institutions in {}\n", root.display());

    let mut nodes = Vec::new();
    for (seed, (id, profile)) in INSTITUTIONS.iter().enumerate() {
        let running = start(&root.join(id), id).await?;
        let started = Instant::now();
        load(&running.node, *profile, seed as u64, args.records).await?;
        let (log_size, records) = running.node.holdings_status()?;
        println!(
            "  {id:<11} {} · {records} records signed into a log of {log_size} entries ({:.1}s)",
            running.node.endpoint(),
            started.elapsed().as_secs_f64()
        );
        nodes.push(running);
    }

    // Everyone pins everyone. The university shares the polar and biomedical
    // consortia; the polar center and the genomics institute share neither.
    let invites = invites(&root).await?;
    for a in &mut nodes {
        for (b, invite) in INSTITUTIONS
            .iter()
            .map(|(id, _)| *id)
            .zip(invites.iter().cloned())
        {
            if a.node.node_id() == b {
                continue;
            }
            let groups: Vec<String> = match (a.node.node_id().as_str(), b) {
                ("polar-dc", "university") => vec!["polar-consortium".into()],
                ("genomics", "university") => vec!["biomed-consortium".into()],
                _ => Vec::new(),
            };
            a.admin
                .trust_add(proto::TrustAddRequest { invite, groups })
                .await
                .map_err(|s| {
                    anyhow::anyhow!("trust add at {}: {}", a.node.node_id(), s.message())
                })?;
        }
    }
    println!("\n  trust: each node pinned the others' identity and TLS keys");

    let started = Instant::now();
    // Two rounds: the second carries what each node relays for the others.
    for _ in 0..2 {
        for running in &mut nodes {
            let reports = running
                .admin
                .sync_now(proto::SyncNowRequest {})
                .await
                .map_err(|s| {
                    anyhow::anyhow!("sync at {}: {}", running.node.node_id(), s.message())
                })?
                .into_inner()
                .reports;
            for report in reports.iter().filter(|r| !r.ok) {
                println!(
                    "  sync {} ← {}: {}",
                    running.node.node_id(),
                    report.peer,
                    report.error
                );
            }
        }
    }
    for running in &nodes {
        searchable(&running.node).await?;
    }
    println!(
        "  sync: signed records verified and replicated in {:.1}s\n",
        started.elapsed().as_secs_f64()
    );

    let searches: [(&str, proto::SearchRequest); 3] = [
        (
            "search at the university for \"sea ice\" across the federation",
            proto::SearchRequest {
                query: "sea ice".into(),
                limit: 5,
                facets: true,
                highlight: true,
                ..Default::default()
            },
        ),
        (
            "datasets over the Bering Strait (box across the antimeridian), 1990-2010",
            proto::SearchRequest {
                bbox: Some(proto::BoundingBox {
                    west: 170.0,
                    south: 50.0,
                    east: -160.0,
                    north: 75.0,
                }),
                time_from: "1990".into(),
                time_to: "2010".into(),
                limit: 5,
                facets: true,
                ..Default::default()
            },
        ),
        (
            "life-science datasets held at the genomics institute, newest first",
            proto::SearchRequest {
                query: "genome OR sequencing OR variants".into(),
                origins: vec!["genomics".into()],
                disciplines: vec!["life".into()],
                sort: proto::Sort::Updated as i32,
                limit: 5,
                facets: true,
                ..Default::default()
            },
        ),
    ];
    let university = &mut nodes[1];
    for (title, request) in searches {
        println!("── {title}");
        let answer = university
            .admin
            .search(request)
            .await
            .map_err(|s| anyhow::anyhow!("search: {}", s.message()))?
            .into_inner();
        output::print_search(&answer);
        println!();
    }

    let uni_dir = nodes[1].dir.display().to_string();
    println!("The federation is running. Try, in another terminal:");
    println!("  meridian search \"ice core\" --data-dir {uni_dir}");
    println!("  meridian search --bbox 160,60,-120,90 --sort size --data-dir {uni_dir}");
    println!("  meridian peers status --data-dir {uni_dir}");
    println!(
        "  meridian holdings list --data-dir {}",
        nodes[0].dir.display()
    );
    println!(
        "  grpcurl -insecure -d '{{\"query\":\"glacier\"}}' {} meridian.v1.Catalog/Search",
        nodes[1].node.endpoint()
    );
    if let Some(metrics) = nodes[1].metrics {
        println!("  curl -s http://{metrics}/metrics | grep '^meridian_sync'");
    }
    if args.dir.is_none() {
        println!("(everything lives in a temporary directory and is removed on exit)");
    }

    if !args.exit {
        println!("\nCtrl-C stops the federation.");
        tokio::signal::ctrl_c().await?;
    }
    for running in nodes {
        let _ = running.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), running.server).await;
    }
    Ok(())
}

/// Creates the node in `dir`, binds its listeners (port 0) and serves it.
async fn start(dir: &Path, id: &str) -> Result<Running> {
    let loopback = "127.0.0.1:0".parse().expect("loopback address");
    Node::create(dir, &id.parse()?, loopback)?;
    // Metrics on a free loopback port, as an operator would keep them.
    let env = [(
        "MERIDIAN_METRICS__LISTEN".to_owned(),
        "127.0.0.1:0".to_owned(),
    )]
    .into();
    let node = Node::open(dir, &env)?;
    let listeners = meridian_server::Listeners::bind(&node).await?;
    let metrics = listeners.metrics;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let server = {
        let node = node.clone();
        tokio::spawn(async move {
            let mut stopped = stopped;
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = listeners.serve(node, shutdown).await {
                tracing::error!(error = %e, "demo node failed");
            }
        })
    };
    let admin = meridian_server::admin_socket::connect(dir).await?;
    Ok(Running {
        node,
        dir: dir.to_owned(),
        admin,
        metrics,
        stop,
        server,
    })
}

/// Each institution's invitation token, in [`INSTITUTIONS`] order, as
/// `meridian keys show --invite` prints it.
async fn invites(root: &Path) -> Result<Vec<String>> {
    let mut invites = Vec::new();
    for (id, _) in INSTITUTIONS {
        let mut admin = meridian_server::admin_socket::connect(&root.join(id)).await?;
        let keys = admin
            .keys_show(proto::KeysShowRequest {})
            .await
            .map_err(|s| anyhow::anyhow!("keys show at {id}: {}", s.message()))?
            .into_inner();
        invites.push(keys.invite);
    }
    Ok(invites)
}

/// Signs generated holdings into `node`'s log, as an import would.
async fn load(node: &Arc<Node>, profile: Profile, seed: u64, records: u64) -> Result<()> {
    let node = node.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let mut generator = Generator::new(profile, seed + 1);
        let mut n = 0;
        while n < records {
            let lines: Vec<String> = (n..(n + 2000).min(records))
                .map(|i| generator.record(i).to_string())
                .collect();
            let outcome = node.import_lines(n + 1, &lines)?;
            if let Some(error) = outcome.errors.first() {
                bail!(
                    "generated line {}: {}: {}",
                    error.line,
                    error.field,
                    error.reason
                );
            }
            n += lines.len() as u64;
        }
        Ok(())
    })
    .await
    .context("loading holdings")?
}

/// Waits until everything `node` holds is searchable.
async fn searchable(node: &Arc<Node>) -> Result<()> {
    let behind = node.wait_caught_up(SETTLE_TIMEOUT).await?;
    if behind > 0 {
        bail!(
            "{}: the index is still {behind} entries behind",
            node.node_id()
        );
    }
    Ok(())
}
