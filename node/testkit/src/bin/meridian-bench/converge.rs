//! `meridian-bench converge`: how soon a change made at one node is
//! searchable at every node of a federation.
//!
//! Twenty nodes (by default) on one machine, each pinning every other (a
//! full mesh: the topology of a federation whose operators all vouch for
//! each other, and the one in which every node hears each origin's hints
//! directly). Each node holds a few records of its own; every record is
//! FEDERATION-visible, so every node may see it. Push hints are on (they
//! always are) and every node keeps its default limits and the default
//! background round of 30 s.
//!
//! Then N changes (1,000 by default), one every `--pace-ms`, at random
//! nodes: new records, edits of a record (a new title word) and
//! withdrawals (deletes). For each, the time from just before the change
//! is made at its origin until, at every node (the origin included), the
//! index has applied the origin's log up to the change
//! (`Admin.WaitSearchable` for that origin) and a search for the change's
//! word finds the record (new, edit) or no longer does (withdrawal).
//! Reported: p50, p99 and max over all changes and per kind; at the end,
//! every node's count of every origin's records is checked against the
//! origin's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use meridian_proto::admin_client::AdminClient;
use meridian_proto::{
    DeleteRecordRequest, ImportChunk, ImportFormat, KeysShowRequest, SearchRequest, StatusRequest,
    TrustAddRequest, WaitSearchableRequest,
};
use meridian_testkit::harness::{record_line, TestNode};
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;

use crate::meridian_binary;
use crate::search::Summary;

/// A change not searchable everywhere within this long counts as failed.
const GIVE_UP: Duration = Duration::from_secs(60);

#[derive(clap::Args)]
pub struct Args {
    /// Nodes of the federation.
    #[arg(long, default_value_t = 20)]
    nodes: usize,
    /// Changes to make.
    #[arg(long, default_value_t = 1000)]
    changes: usize,
    /// A change starts every this many milliseconds (whether or not the
    /// previous ones have converged).
    #[arg(long, default_value_t = 1000)]
    pace_ms: u64,
    /// Records each node holds before the changes start.
    #[arg(long, default_value_t = 10)]
    initial: usize,
    /// Seed of the choice of nodes and changes.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    New,
    Edit,
    Withdraw,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::New => "new",
            Kind::Edit => "edit",
            Kind::Withdraw => "withdrawal",
        }
    }
}

/// One change, as each node is checked for it.
struct Change {
    origin: String,
    id: String,
    /// The word the record's title carries (new, edit) or carried
    /// (withdrawal).
    word: String,
    /// The origin's log size once the change is in it.
    log_size: u64,
    kind: Kind,
}

pub fn run(args: Args) -> Result<()> {
    if args.nodes < 2 || args.changes == 0 || args.initial == 0 {
        bail!("--nodes must be at least 2, --changes and --initial at least 1");
    }
    let bin = meridian_binary()?;
    let work = tempfile::tempdir()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "convergence benchmark: {} nodes, full mesh of pins, {} changes one every {} ms \
         at random nodes, {cores} cores",
        args.nodes, args.changes, args.pace_ms
    );
    let started = Instant::now();
    let level = std::env::var("MERIDIAN_BENCH_LOG").unwrap_or_else(|_| "warn".into());
    let mut nodes = Vec::new();
    for n in 0..args.nodes {
        let name = format!("n{n:02}");
        // The operator's default background round, not the harness's, and
        // every default limit (the benchmark talks to each node over its
        // admin socket only).
        let node = TestNode::start_at(
            &bin,
            &work.path().join(&name),
            &name,
            &[
                ("MERIDIAN_LOG__LEVEL", level.as_str()),
                ("MERIDIAN_SYNC__INTERVAL_SECS", "30"),
            ],
        )
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        nodes.push(node);
    }
    println!(
        "{} nodes started in {:.1}s",
        nodes.len(),
        started.elapsed().as_secs_f64()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(bench(&nodes, &args))
}

async fn bench(nodes: &[TestNode], args: &Args) -> Result<()> {
    let mut admins: Vec<AdminClient<Channel>> = Vec::new();
    for node in nodes {
        admins.push(
            meridian_server::admin_socket::connect(node.data_dir())
                .await
                .with_context(|| format!("{}'s admin socket", node.name))?,
        );
    }
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();

    // The mesh.
    let started = Instant::now();
    let mut invites = Vec::new();
    for admin in &mut admins {
        invites.push(
            admin
                .keys_show(KeysShowRequest {})
                .await?
                .into_inner()
                .invite,
        );
    }
    for (a, admin) in admins.iter_mut().enumerate() {
        for (b, invite) in invites.iter().enumerate() {
            if a != b {
                admin
                    .trust_add(TrustAddRequest {
                        invite: invite.clone(),
                        groups: Vec::new(),
                    })
                    .await?;
            }
        }
    }
    println!(
        "mesh: {} pins in {:.1}s",
        names.len() * (names.len() - 1),
        started.elapsed().as_secs_f64()
    );

    // Each node's own records, then every node holding all of them.
    let mut held: Vec<Vec<(String, String)>> = Vec::new();
    for (n, admin) in admins.iter_mut().enumerate() {
        let mut records = Vec::new();
        let mut lines = Vec::new();
        for i in 0..args.initial {
            let (id, word) = (format!("{}-i{i:04}", names[n]), format!("w{n:02}i{i:04}"));
            lines.push(record_line(&id, &format!("Dataset {word}"), "federation"));
            records.push((id, word));
        }
        import(admin, lines).await?;
        held.push(records);
    }
    let started = Instant::now();
    settle(&mut admins, &names).await?;
    println!(
        "initial holdings: {} records at each node, searchable everywhere after {:.1}s",
        args.initial,
        started.elapsed().as_secs_f64()
    );

    // The changes.
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    // Records whose last change is still being measured: not changed
    // again until it is everywhere, or a later change would hide it.
    let in_flight: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>> = Arc::default();
    let mut measures = tokio::task::JoinSet::new();
    let pace = Duration::from_millis(args.pace_ms);
    let started = tokio::time::Instant::now();
    for c in 0..args.changes {
        tokio::time::sleep_until(started + pace * c as u32).await;
        let n = rng.gen_range(0..names.len());
        let roll: f64 = rng.gen();
        let settled: Vec<usize> = {
            let busy = in_flight.lock().expect("in-flight lock");
            (0..held[n].len())
                .filter(|i| !busy.contains(&held[n][*i].0))
                .collect()
        };
        let kind = if settled.is_empty() || roll < 0.5 {
            Kind::New
        } else if roll < 0.8 {
            Kind::Edit
        } else {
            Kind::Withdraw
        };
        let word = format!("c{c:05}x");
        let at = Instant::now();
        let change = match kind {
            Kind::New => {
                let id = format!("{}-c{c:05}", names[n]);
                let line = record_line(&id, &format!("Change {word}"), "federation");
                let log_size = import(&mut admins[n], vec![line]).await?;
                held[n].push((id.clone(), word.clone()));
                Change {
                    origin: names[n].clone(),
                    id,
                    word,
                    log_size,
                    kind,
                }
            }
            Kind::Edit => {
                let pick = settled[rng.gen_range(0..settled.len())];
                let id = held[n][pick].0.clone();
                let line = record_line(&id, &format!("Edited {word}"), "federation");
                let log_size = import(&mut admins[n], vec![line]).await?;
                held[n][pick].1 = word.clone();
                Change {
                    origin: names[n].clone(),
                    id,
                    word,
                    log_size,
                    kind,
                }
            }
            Kind::Withdraw => {
                let pick = settled[rng.gen_range(0..settled.len())];
                let (id, old_word) = held[n].swap_remove(pick);
                let deleted = admins[n]
                    .delete_record(DeleteRecordRequest { id: id.clone() })
                    .await?
                    .into_inner();
                Change {
                    origin: names[n].clone(),
                    id,
                    word: old_word,
                    log_size: deleted.log_index + 1,
                    kind,
                }
            }
        };
        in_flight
            .lock()
            .expect("in-flight lock")
            .insert(change.id.clone());
        let change = Arc::new(change);
        let admins = admins.clone();
        let in_flight = in_flight.clone();
        measures.spawn(async move {
            // Every node, the origin included: the change's time is its
            // last node's.
            let mut each = tokio::task::JoinSet::new();
            for admin in admins {
                let change = change.clone();
                each.spawn(async move { converged(admin, &change, at).await });
            }
            let mut slowest = Ok(Duration::ZERO);
            while let Some(took) = each.join_next().await {
                slowest = match (slowest, took?) {
                    (Ok(a), Ok(b)) => Ok(a.max(b)),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                };
            }
            in_flight.lock().expect("in-flight lock").remove(&change.id);
            slowest.map(|took| (kind, took))
        });
    }

    let mut all = Vec::new();
    let mut by_kind: std::collections::BTreeMap<Kind, Vec<f64>> = Default::default();
    let mut failed = 0;
    while let Some(done) = measures.join_next().await {
        match done? {
            Ok((kind, took)) => {
                let ms = took.as_secs_f64() * 1000.0;
                all.push(ms);
                by_kind.entry(kind).or_default().push(ms);
            }
            Err(e) => {
                failed += 1;
                if failed <= 5 {
                    println!("  not converged: {e}");
                }
            }
        }
    }
    println!(
        "changes made in {:.1}s; searchable (or gone) at all {} nodes:",
        started.elapsed().as_secs_f64(),
        names.len()
    );
    println!("  all {:>5}: {}", all.len(), Summary::of(&all));
    for (kind, values) in &by_kind {
        println!(
            "  {:>9} {:>4}: {}",
            kind.name(),
            values.len(),
            Summary::of(values)
        );
    }
    let within = all.iter().filter(|ms| **ms <= 2000.0).count();
    println!(
        "  {within} of {} changes within 2 s; target p99 <= 2 s: {}",
        args.changes,
        if failed == 0 && Summary::of(&all).p99 <= 2000.0 {
            "met"
        } else {
            "missed"
        }
    );

    // Every node counts every origin's records as the origin does.
    let mut disagree = 0;
    for (n, admin) in admins.iter_mut().enumerate() {
        for (o, origin) in names.iter().enumerate() {
            let answer = admin
                .search(SearchRequest {
                    origins: vec![origin.clone()],
                    limit: 0,
                    ..Default::default()
                })
                .await?
                .into_inner();
            if answer.total != held[o].len() as u64 {
                disagree += 1;
                if disagree <= 5 {
                    println!(
                        "  {} counts {} records of {origin}, which holds {}",
                        names[n],
                        answer.total,
                        held[o].len()
                    );
                }
            }
        }
    }
    println!(
        "final check: {} of {} (node, origin) counts agree with the origin",
        names.len() * names.len() - disagree,
        names.len() * names.len()
    );
    if failed > 0 || disagree > 0 {
        bail!("{failed} changes did not converge, {disagree} counts disagree");
    }
    Ok(())
}

/// Waits until `change` is searchable (or gone) at the node of `admin`;
/// the time since `at`.
async fn converged(
    mut admin: AdminClient<Channel>,
    change: &Change,
    at: Instant,
) -> Result<Duration> {
    loop {
        let reply = admin
            .wait_searchable(WaitSearchableRequest {
                log_size: change.log_size,
                timeout_ms: 10_000,
                origin: change.origin.clone(),
            })
            .await?
            .into_inner();
        if reply.searchable {
            break;
        }
        if at.elapsed() > GIVE_UP {
            bail!(
                "{}/{} not indexed after {GIVE_UP:?}",
                change.origin,
                change.id
            );
        }
    }
    // The index has applied the change: a search must show it.
    loop {
        let answer = admin
            .search(SearchRequest {
                query: change.word.clone(),
                limit: 10,
                ..Default::default()
            })
            .await?
            .into_inner();
        let found = answer
            .hits
            .iter()
            .any(|h| h.origin == change.origin && h.id == change.id);
        if found == (change.kind != Kind::Withdraw) {
            return Ok(at.elapsed());
        }
        if at.elapsed() > GIVE_UP {
            bail!(
                "{}/{} indexed, but a search for {} still says found = {found}",
                change.origin,
                change.id,
                change.word
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Imports `lines` at the node of `admin`; its log size after them.
async fn import(admin: &mut AdminClient<Channel>, lines: Vec<String>) -> Result<u64> {
    let count = lines.len() as u64;
    let chunk = ImportChunk {
        format: ImportFormat::Jsonl as i32,
        first_line: 1,
        lines,
    };
    let mut acks = admin
        .import(tokio_stream::iter(vec![chunk]))
        .await?
        .into_inner();
    let mut log_size = 0;
    let mut stored = 0;
    while let Some(ack) = acks.message().await? {
        if ack.rejected > 0 {
            bail!("import rejected: {:?}", ack.errors);
        }
        stored += ack.stored + ack.unchanged;
        log_size = ack.log_size;
    }
    if stored != count {
        bail!("import stored {stored} of {count} records");
    }
    Ok(log_size)
}

/// Waits until every node's index holds every origin's whole log.
async fn settle(admins: &mut [AdminClient<Channel>], names: &[String]) -> Result<()> {
    let mut sizes = Vec::new();
    for admin in admins.iter_mut() {
        sizes.push(admin.status(StatusRequest {}).await?.into_inner().log_size);
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    for admin in admins.iter_mut() {
        for (origin, size) in names.iter().zip(&sizes) {
            loop {
                let reply = admin
                    .wait_searchable(WaitSearchableRequest {
                        log_size: *size,
                        timeout_ms: 10_000,
                        origin: origin.clone(),
                    })
                    .await?
                    .into_inner();
                if reply.searchable {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{origin}'s log not indexed everywhere after 300 s");
                }
            }
        }
    }
    Ok(())
}
