//! `meridian demo`: a guided tour of a local federation of three
//! institutions on loopback.
//!
//! A polar and ocean data center, a genomics institute and a materials
//! laboratory, each a real node (TLS listener, HTTP search page, admin
//! socket, background tasks) in this process, holding the real public
//! metadata of `deploy/samples/` (embedded; `deploy/samples/SOURCES.md` says
//! where it comes from), plus `--records N` generated records each for
//! load. They pin each other, replicate through the same admin calls an
//! operator makes (`sync now`), and the tour runs searches chosen to show
//! what the federation does: one query over all three institutions, a box
//! across the antimeridian, a facet, a record only a group's members may
//! see, and a withdrawal reaching the other nodes. Each step prints the
//! command a user would type and why the answer is what it is, and checks
//! that answer: a step whose answer is wrong stops the demo with an error.
//! The federation keeps running until Ctrl-C (or stops after the tour with
//! `--exit`) so it can be queried with the CLI, a browser or grpcurl.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use meridian_core::node::Node;
use meridian_proto as proto;
use meridian_proto::admin_client::AdminClient;
use meridian_testkit::generate::{Generator, Profile};
use tonic::transport::Channel;

/// One institution of the demo.
struct Institution {
    /// Its node id.
    id: &'static str,
    /// What it is, in a few words.
    what: &'static str,
    /// Its sample holdings, JSON Lines.
    samples: &'static str,
    /// Where the samples come from.
    sources: &'static str,
    /// The profile of its generated records (`--records`).
    profile: Profile,
}

/// The institutions of the demo, as in deploy/docker-compose.yml.
const INSTITUTIONS: [Institution; 3] = [
    Institution {
        id: "polar-dc",
        what: "a polar and ocean data center (earth)",
        samples: include_str!("../../../deploy/samples/polar-dc.jsonl"),
        sources: "Copernicus Marine and Planetary Computer collections, FAIRsharing",
        profile: Profile::Polar,
    },
    Institution {
        id: "genomics",
        what: "a genomics institute (life)",
        samples: include_str!("../../../deploy/samples/genomics.jsonl"),
        sources: "FAIRsharing databases, Planetary Computer biodiversity collections",
        profile: Profile::Genomics,
    },
    Institution {
        id: "materials",
        what: "a materials laboratory (matter)",
        samples: include_str!("../../../deploy/samples/materials.jsonl"),
        sources: "matminer and Matbench datasets, FAIRsharing",
        profile: Profile::University,
    },
];

/// The group polar-dc and materials vouch for each other in; genomics is in
/// none.
const GROUP: &str = "consortium";
/// A polar-dc sample record shared with `GROUP` only (deploy/samples/build.py
/// pins its visibility).
const GROUP_RECORD: (&str, &str) = (
    "polar-dc",
    "CMEMS-SEAICE_ARC_SEAICE_L3_REP_OBSERVATIONS_011_010",
);
/// Two sample records whose boxes cross the antimeridian near the Aleutians.
const ACROSS_180: [(&str, &str); 2] = [("polar-dc", "PC-gnatsgo-rasters"), ("genomics", "PC-fia")];
/// The public materials record the tour withdraws.
const WITHDRAWN: (&str, &str) = ("materials", "matminer-superconductivity2018");

/// Hits shown per search.
const SHOWN: usize = 5;

/// How long the demo waits for replication and indexing to settle.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Options of `meridian demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Generated records per institution, added to its real sample holdings
    /// (for load).
    #[arg(long, default_value_t = 0)]
    pub records: u64,
    /// Keep the federation in this directory instead of a temporary one
    /// (`--data-dir` says the same).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Stop after the tour instead of serving until Ctrl-C.
    #[arg(long, alias = "no-wait")]
    pub exit: bool,
}

struct Running {
    node: Arc<Node>,
    dir: PathBuf,
    admin: AdminClient<Channel>,
    /// Where its search page is served (HTTPS).
    http: Option<std::net::SocketAddr>,
    /// Where its Prometheus metrics are served.
    metrics: Option<std::net::SocketAddr>,
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    fn id(&self) -> &str {
        self.node.node_id().as_str()
    }

    /// The CLI's `--data-dir` for this node, as a user would type it.
    fn data_dir(&self) -> String {
        self.dir.display().to_string()
    }

    async fn search(&mut self, request: proto::SearchRequest) -> Result<proto::SearchResponse> {
        let id = self.id().to_owned();
        Ok(self
            .admin
            .search(request)
            .await
            .map_err(|s| anyhow::anyhow!("search at {id}: {}", s.message()))?
            .into_inner())
    }

    /// Prints the `meridian search` command that asks `request` here, as a
    /// user would type it, then asks it.
    async fn search_typed(
        &mut self,
        request: proto::SearchRequest,
    ) -> Result<proto::SearchResponse> {
        println!(
            "  $ meridian search {} --data-dir {}",
            typed(&request),
            self.data_dir()
        );
        self.search(request).await
    }

    /// Pulls from every peer now and waits until it is searchable.
    async fn sync(&mut self) -> Result<()> {
        let id = self.id().to_owned();
        let reports = self
            .admin
            .sync_now(proto::SyncNowRequest {})
            .await
            .map_err(|s| anyhow::anyhow!("sync at {id}: {}", s.message()))?
            .into_inner()
            .reports;
        for report in reports.iter().filter(|r| !r.ok) {
            println!("  sync {id} ← {}: {}", report.peer, report.error);
        }
        searchable(&self.node).await
    }
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> Result<()> {
    let temp = tempfile::Builder::new()
        .prefix("meridian-demo-")
        .tempdir()?;
    let root = args.dir.clone().unwrap_or_else(|| temp.path().to_owned());
    println!("Meridian demo: three institutions in {}\n", root.display());

    println!("1. Each institution signs its holdings into its own log");
    let mut nodes = Vec::new();
    for (seed, institution) in INSTITUTIONS.iter().enumerate() {
        let running = start(&root.join(institution.id), institution.id).await?;
        let started = Instant::now();
        let samples = load(&running.node, institution, seed as u64, args.records).await?;
        let (log_size, records) = running.node.holdings_status()?;
        println!(
            "  {:<10} {}, {}: {samples} real records ({}){} → {records} records, log of {log_size} signed entries ({:.1}s)",
            institution.id,
            institution.what,
            running.node.endpoint(),
            institution.sources,
            if args.records > 0 {
                format!(" + {} generated", args.records)
            } else {
                String::new()
            },
            started.elapsed().as_secs_f64()
        );
        nodes.push(running);
    }
    println!("  (the samples are real public metadata: deploy/samples/SOURCES.md)\n");

    println!("2. Who trusts whom");
    pin(&root, &mut nodes).await?;
    println!(
        "  Each institution pinned the other two from their invitations: node id, root key, TLS keys.\n  \
         $ meridian keys show --invite --data-dir DIR      (at each institution)\n  \
         $ meridian trust add INVITE --data-dir DIR        (at each of the others)\n  \
         polar-dc and materials also vouch for each other as members of the group `{GROUP}`\n  \
         ($ meridian trust add INVITE --groups {GROUP}); genomics is in no group.\n"
    );

    println!("3. Replication: each node pulls the others' signed logs and verifies every entry");
    let started = Instant::now();
    // Two rounds: the second carries what each node relays for the others.
    for _ in 0..2 {
        for running in nodes.iter_mut() {
            running.sync().await?;
        }
    }
    for running in nodes.iter_mut() {
        let everything = running
            .search(proto::SearchRequest {
                limit: 0,
                facets: true,
                ..Default::default()
            })
            .await?;
        println!(
            "  at {:<10} searchable by origin: {}",
            running.id(),
            counts(&everything, "origin")
        );
    }
    let checked = audiences(&mut nodes).await?;
    println!(
        "  ({:.1}s; `$ meridian sync now` forces a round, a background task runs one every interval.)\n  \
         Checked record by record: {checked}.\n",
        started.elapsed().as_secs_f64()
    );

    println!("4. Searches");
    across_institutions(&mut nodes[1]).await?;
    across_antimeridian(&mut nodes[2]).await?;
    facet(&mut nodes[0]).await?;
    group_only(&mut nodes).await?;
    withdrawal(&mut nodes).await?;
    let stopped = one_stopped(&mut nodes).await?;

    println!("The federation is running. Each node's search page (HTTPS; the certificate is public.crt in its directory):");
    for running in &nodes {
        match running.http {
            Some(http) => println!("  {:<10} https://{http}/", running.id()),
            None => println!("  {:<10} (no HTTP listener)", running.id()),
        }
    }
    println!("  {stopped:<10} (stopped in the last search)");
    let polar = nodes[0].data_dir();
    let materials = nodes[1].data_dir();
    println!("Try, in another terminal:");
    println!("  meridian search \"sea ice\" --data-dir {polar}");
    println!("  meridian search 'keyword:Genomics' --discipline life --data-dir {polar}");
    println!("  meridian search --bbox 160,50,-120,75 --from 2000 --data-dir {materials}");
    println!("  meridian search \"band gap\" --sort updated --json --data-dir {materials}");
    println!("  meridian search genome --scope live --data-dir {polar}");
    println!("  meridian peers status --data-dir {polar}");
    println!("  meridian holdings list --data-dir {materials}");
    println!(
        "  grpcurl -insecure -d '{{\"query\":\"glacier\"}}' {} meridian.v1.Catalog/Search",
        nodes[0].node.endpoint()
    );
    if let Some(metrics) = nodes[0].metrics {
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

/// Stops genomics and searches live at polar-dc: the answer still comes,
/// with genomics' records from a copy, and the completeness report says so.
/// Returns the stopped node's id; the node is gone from `nodes`.
async fn one_stopped(nodes: &mut Vec<Running>) -> Result<String> {
    let stopped = nodes.remove(1);
    let id = stopped.id().to_owned();
    let _ = stopped.stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), stopped.server).await;
    let at = &mut nodes[0];
    let query = "genome";
    println!(
        "── {id} stops; a live search still answers (asked at {})",
        at.id()
    );
    let started = Instant::now();
    let answer = at
        .search_typed(proto::SearchRequest {
            query: query.into(),
            scope: proto::Scope::Live as i32,
            limit: SHOWN as u32,
            deadline_ms: 2000,
            ..Default::default()
        })
        .await?;
    let took = started.elapsed();
    show(&answer);
    let lines: Vec<String> = answer
        .completeness
        .iter()
        .map(|c| {
            let by = if c.answered_by.is_empty() {
                String::new()
            } else {
                format!(" (answered by {})", c.answered_by)
            };
            format!("{} {}{by}", c.origin, crate::output::coverage(c.status))
        })
        .collect();
    println!("  completeness: {}", lines.join("; "));
    let line = answer.completeness.iter().find(|c| c.origin == id);
    ensure!(
        line.is_some_and(
            |c| !(crate::output::coverage(c.status) == "ok" && c.answered_by.is_empty())
        ),
        "a live search with {id} stopped should not report {id} as answered by itself: {}",
        lines.join("; ")
    );
    ensure!(
        answer.hits.iter().any(|h| h.origin == id),
        "\"{query}\" should still find {id}'s records from a copy"
    );
    println!(
        "  Why: a live search asks each institution now, under a deadline (answered in {:.2}s here), and takes what a\n  \
         stopped one cannot give from a verified copy: another institution's, or its own. The report\n  \
         says which part came from where, so a missing answer is never mistaken for no answer.\n",
        took.as_secs_f64()
    );
    Ok(id)
}

/// Whether `origin`'s operator placed `member` in [`GROUP`].
fn in_group(origin: &str, member: &str) -> bool {
    matches!(
        (origin, member),
        ("polar-dc", "materials") | ("materials", "polar-dc")
    )
}

/// Checks that every sample record reached exactly the nodes its
/// visibility allows; says what was checked.
async fn audiences(nodes: &mut [Running]) -> Result<String> {
    let mut reached = std::collections::BTreeMap::<String, usize>::new();
    for institution in &INSTITUTIONS {
        for line in institution.samples.lines() {
            let record: serde_json::Value = serde_json::from_str(line)?;
            let id = record["id"].as_str().context("a sample without an id")?;
            let visibility = record["visibility"].as_str().unwrap_or("public");
            *reached.entry(visibility.to_owned()).or_default() += 1;
            for running in nodes.iter_mut().filter(|n| n.id() != institution.id) {
                let expected = match visibility {
                    "public" | "federation" => true,
                    "groups" => in_group(institution.id, running.id()),
                    _ => false,
                };
                let held = running
                    .admin
                    .get_record(proto::GetRecordRequest {
                        origin: institution.id.into(),
                        id: id.into(),
                    })
                    .await
                    .is_ok();
                ensure!(
                    held == expected,
                    "{}/{id} ({visibility}) {} at {}",
                    institution.id,
                    if held { "reached" } else { "did not reach" },
                    running.id()
                );
            }
        }
    }
    let n = |v: &str| reached.get(v).copied().unwrap_or(0);
    Ok(format!(
        "the {} public and {} federation records reached both peers,\n  \
         the {} `{GROUP}` ones only the fellow members of their origin, none of the {} private ones left home",
        n("public"),
        n("federation"),
        n("groups"),
        n("private")
    ))
}

/// Everyone pins everyone; polar-dc and materials vouch for each other in
/// [`GROUP`].
async fn pin(root: &Path, nodes: &mut [Running]) -> Result<()> {
    let invites = invites(root).await?;
    for a in nodes.iter_mut() {
        for (b, invite) in INSTITUTIONS
            .iter()
            .map(|i| i.id)
            .zip(invites.iter().cloned())
        {
            if a.id() == b {
                continue;
            }
            let groups = if in_group(a.id(), b) {
                vec![GROUP.to_owned()]
            } else {
                Vec::new()
            };
            let id = a.id().to_owned();
            a.admin
                .trust_add(proto::TrustAddRequest { invite, groups })
                .await
                .map_err(|s| anyhow::anyhow!("trust add at {id}: {}", s.message()))?;
        }
    }
    Ok(())
}

async fn across_institutions(at: &mut Running) -> Result<()> {
    let query = "chemistry";
    println!(
        "── One query over three institutions (asked at {})",
        at.id()
    );
    let answer = at
        .search_typed(proto::SearchRequest {
            query: query.into(),
            limit: SHOWN as u32,
            facets: true,
            ..Default::default()
        })
        .await?;
    show(&answer);
    let origins = facet_values(&answer, "origin");
    ensure!(
        INSTITUTIONS
            .iter()
            .all(|i| origins.iter().any(|(origin, _)| origin == i.id)),
        "\"{query}\" at {} should find records of all three institutions, found {}",
        at.id(),
        counts(&answer, "origin")
    );
    let sources: Vec<String> = answer
        .completeness
        .iter()
        .map(|c| match crate::output::coverage(c.status) {
            "replica" => format!("{} replica as of {}", c.origin, c.as_of),
            other => format!("{} {other}", c.origin),
        })
        .collect();
    println!(
        "  by origin: {}\n  completeness: {}\n  \
         Why: {} holds its own records and verified replicas of the others' in one index, so one\n  \
         query ranks them together; the completeness report says how fresh each institution's part is.\n",
        counts(&answer, "origin"),
        sources.join("; "),
        at.id()
    );
    Ok(())
}

async fn across_antimeridian(at: &mut Running) -> Result<()> {
    println!(
        "── A box across the antimeridian: the Aleutians, 172°E to 170°W (asked at {})",
        at.id()
    );
    let answer = at
        .search_typed(proto::SearchRequest {
            query: "soil OR forest".into(),
            bbox: Some(proto::BoundingBox {
                west: 172.0,
                south: 50.0,
                east: -170.0,
                north: 56.0,
            }),
            limit: 20,
            facets: true,
            ..Default::default()
        })
        .await?;
    show(&answer);
    for (origin, id) in ACROSS_180 {
        ensure!(
            found(&answer, origin, id),
            "the box across 180° at {} should find {origin}/{id}",
            at.id()
        );
    }
    println!(
        "  Why: west > east means the box crosses 180°. gNATSGO's Alaska box (157.4°E to 117.3°W) and the\n  \
         Forest Inventory's Aleutian boxes overlap it; read naively (170°W to 172°E) it would span the\n  \
         other 342° of the globe.\n"
    );
    Ok(())
}

async fn facet(at: &mut Running) -> Result<()> {
    let query = "temperature";
    println!(
        "── Facets: \"{query}\" by discipline (asked at {})",
        at.id()
    );
    let answer = at
        .search_typed(proto::SearchRequest {
            query: query.into(),
            limit: 0,
            facets: true,
            ..Default::default()
        })
        .await?;
    println!(
        "  {} hits; discipline: {}",
        answer.total,
        counts(&answer, "discipline")
    );
    let matter = facet_values(&answer, "discipline")
        .into_iter()
        .find(|(value, _)| value == "matter")
        .map(|(_, count)| count)
        .context("no materials record mentions temperature")?;
    let narrowed = at
        .search_typed(proto::SearchRequest {
            query: query.into(),
            disciplines: vec!["matter".into()],
            limit: SHOWN as u32,
            ..Default::default()
        })
        .await?;
    show(&narrowed);
    ensure!(
        narrowed.total == matter,
        "the facet promised {matter} materials hits, the filter found {}",
        narrowed.total
    );
    println!(
        "  Why: every answer counts its hits by discipline, origin, access, license, format and year\n  \
         (only what the caller may see); choosing a value filters on it: {matter} promised, {matter} found.\n"
    );
    Ok(())
}

async fn group_only(nodes: &mut [Running]) -> Result<()> {
    let (origin, id) = GROUP_RECORD;
    let query = "\"sea ice drift\"";
    println!("── A record for the `{GROUP}` only: {origin}/{id}");
    let mut seen = Vec::new();
    for (at, member) in [(2, true), (1, false)] {
        let running = &mut nodes[at];
        let answer = running
            .search_typed(proto::SearchRequest {
                query: query.into(),
                limit: 50,
                ..Default::default()
            })
            .await?;
        let there = found(&answer, origin, id);
        println!(
            "  at {} ({}): {} ({} hits)",
            running.id(),
            if member { "a member" } else { "not a member" },
            if there {
                format!("found {origin}/{id}")
            } else {
                "not found".to_owned()
            },
            answer.total
        );
        seen.push((running.id().to_owned(), member, there));
    }
    for (at, member, there) in seen {
        ensure!(
            member == there,
            "{origin}/{id} is for {GROUP} members, yet at {at} found = {there}"
        );
    }
    println!(
        "  Why: the record is signed for the group `{GROUP}`, and {origin}'s operator placed materials in it\n  \
         (`trust add --groups`). A node sends a group's records only to peers in the group and serves them\n  \
         only to callers in it: genomics was never sent the record.\n"
    );
    Ok(())
}

async fn withdrawal(nodes: &mut [Running]) -> Result<()> {
    let (origin, id) = WITHDRAWN;
    let query = "superconductivity";
    println!("── A record withdrawn at its origin: {origin}/{id}");
    let before = at_others(nodes, origin, query, id).await?;
    ensure!(
        before.iter().all(|(_, there)| *there),
        "before the withdrawal, {origin}/{id} should be found everywhere: {before:?}"
    );
    println!("  before: {}", listing(&before));
    let at = nodes
        .iter_mut()
        .find(|n| n.id() == origin)
        .expect("the origin runs");
    println!(
        "  $ meridian holdings rm {id} --yes --data-dir {}",
        at.data_dir()
    );
    at.admin
        .delete_record(proto::DeleteRecordRequest { id: id.into() })
        .await
        .map_err(|s| anyhow::anyhow!("holdings rm at {origin}: {}", s.message()))?;
    for running in nodes.iter_mut().filter(|n| n.id() != origin) {
        println!("  $ meridian sync now --data-dir {}", running.data_dir());
        running.sync().await?;
    }
    let after = at_others(nodes, origin, query, id).await?;
    println!("  after the sync: {}", listing(&after));
    ensure!(
        after.iter().all(|(_, there)| !*there),
        "after the withdrawal, {origin}/{id} is still found: {after:?}"
    );
    println!(
        "  Why: the withdrawal is a signed tombstone appended to the log of {origin}. The others verified it\n  \
         like any entry and dropped the record from their indexes; no relay can bring it back.\n"
    );
    Ok(())
}

/// Whether `id` of `origin` is found for `query` at each node but `origin`.
async fn at_others(
    nodes: &mut [Running],
    origin: &str,
    query: &str,
    id: &str,
) -> Result<Vec<(String, bool)>> {
    let mut out = Vec::new();
    for running in nodes.iter_mut().filter(|n| n.id() != origin) {
        let answer = running
            .search_typed(proto::SearchRequest {
                query: query.into(),
                limit: 50,
                ..Default::default()
            })
            .await?;
        out.push((running.id().to_owned(), found(&answer, origin, id)));
    }
    Ok(out)
}

fn listing(found: &[(String, bool)]) -> String {
    found
        .iter()
        .map(|(at, there)| format!("{} at {at}", if *there { "found" } else { "not found" }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The arguments of `meridian search` that ask `request`: the query,
/// quoted as a shell needs it, then its flags.
fn typed(request: &proto::SearchRequest) -> String {
    let query = &request.query;
    let mut args = vec![if query.contains('"') {
        format!("'{query}'")
    } else if query.contains(' ') {
        format!("\"{query}\"")
    } else {
        query.clone()
    }];
    if request.scope == proto::Scope::Live as i32 {
        args.push("--scope live".into());
    }
    if let Some(b) = &request.bbox {
        args.push(format!(
            "--bbox {},{},{},{}",
            b.west, b.south, b.east, b.north
        ));
    }
    for discipline in &request.disciplines {
        args.push(format!("--discipline {discipline}"));
    }
    args.join(" ")
}

fn found(answer: &proto::SearchResponse, origin: &str, id: &str) -> bool {
    answer.hits.iter().any(|h| h.origin == origin && h.id == id)
}

/// The first hits of an answer, one line each, with the count.
fn show(answer: &proto::SearchResponse) {
    println!("  {} hits", answer.total);
    for hit in answer.hits.iter().take(SHOWN) {
        println!(
            "    {:<10} {:<40} {}",
            hit.origin,
            hit.id,
            crate::output::truncate(&hit.title, 60)
        );
    }
}

fn facet_values(answer: &proto::SearchResponse, name: &str) -> Vec<(String, u64)> {
    answer
        .facets
        .iter()
        .filter(|f| f.name == name)
        .flat_map(|f| f.values.iter().map(|v| (v.value.clone(), v.count)))
        .collect()
}

/// `a 12, b 3` for a facet of an answer.
fn counts(answer: &proto::SearchResponse, name: &str) -> String {
    facet_values(answer, name)
        .iter()
        .map(|(value, count)| format!("{value} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
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
    let http = listeners.http;
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
        http,
        metrics,
        stop,
        server,
    })
}

/// Each institution's invitation token, in [`INSTITUTIONS`] order, as
/// `meridian keys show --invite` prints it.
async fn invites(root: &Path) -> Result<Vec<String>> {
    let mut invites = Vec::new();
    for Institution { id, .. } in INSTITUTIONS {
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

/// Signs the institution's sample holdings into `node`'s log, then
/// `generated` generated records, as an import would; returns the number of
/// samples.
async fn load(
    node: &Arc<Node>,
    institution: &Institution,
    seed: u64,
    generated: u64,
) -> Result<usize> {
    let node = node.clone();
    let samples: Vec<String> = institution.samples.lines().map(str::to_owned).collect();
    let (id, profile) = (institution.id, institution.profile);
    tokio::task::spawn_blocking(move || -> Result<usize> {
        let outcome = node.import_lines(1, &samples)?;
        if let Some(error) = outcome.errors.first() {
            bail!(
                "deploy/samples/{id}.jsonl line {}: {}: {}",
                error.line,
                error.field,
                error.reason
            );
        }
        let mut generator = Generator::new(profile, seed + 1);
        let mut n = 0;
        while n < generated {
            let lines: Vec<String> = (n..(n + 2000).min(generated))
                .map(|i| generator.record(i).to_string())
                .collect();
            let first = samples.len() as u64 + n + 1;
            let outcome = node.import_lines(first, &lines)?;
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
        Ok(samples.len())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(origin: &str, id: &str) -> serde_json::Value {
        let institution = INSTITUTIONS
            .iter()
            .find(|i| i.id == origin)
            .expect("an institution of the demo");
        institution
            .samples
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{origin}/{id} is not in the samples"))
    }

    /// A rebuild of deploy/samples that drops or re-labels a record the tour
    /// names fails here, before any node starts.
    #[test]
    fn the_records_the_tour_names_have_the_audience_it_explains() {
        let (origin, id) = GROUP_RECORD;
        let group = sample(origin, id);
        assert_eq!(group["visibility"], "groups");
        assert_eq!(group["groups"], serde_json::json!([GROUP]));
        assert!(in_group(origin, "materials") && !in_group(origin, "genomics"));

        let (origin, id) = WITHDRAWN;
        assert_eq!(sample(origin, id)["visibility"], "public");

        for (origin, id) in ACROSS_180 {
            let record = sample(origin, id);
            assert_eq!(record["visibility"], "public", "{id}");
            assert!(record["spatial"].as_array().is_some_and(|b| !b.is_empty()));
        }
        let gnatsgo = sample(ACROSS_180[0].0, ACROSS_180[0].1);
        assert!(gnatsgo["spatial"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["west"].as_f64() > b["east"].as_f64()));
    }

    /// The commands the tour prints are the searches it asks, typed as a
    /// shell takes them.
    #[test]
    fn the_tour_prints_each_search_as_a_user_types_it() {
        let ask = |query: &str| proto::SearchRequest {
            query: query.into(),
            ..Default::default()
        };
        assert_eq!(typed(&ask("chemistry")), "chemistry");
        assert_eq!(typed(&ask("\"sea ice drift\"")), "'\"sea ice drift\"'");
        let boxed = proto::SearchRequest {
            bbox: Some(proto::BoundingBox {
                west: 172.0,
                south: 50.0,
                east: -170.0,
                north: 56.0,
            }),
            ..ask("soil OR forest")
        };
        assert_eq!(typed(&boxed), "\"soil OR forest\" --bbox 172,50,-170,56");
        let narrowed = proto::SearchRequest {
            disciplines: vec!["matter".into()],
            ..ask("temperature")
        };
        assert_eq!(typed(&narrowed), "temperature --discipline matter");
        let live = proto::SearchRequest {
            scope: proto::Scope::Live as i32,
            ..ask("genome")
        };
        assert_eq!(typed(&live), "genome --scope live");
    }

    #[test]
    fn every_sample_line_parses_as_a_record() {
        for institution in &INSTITUTIONS {
            for (n, line) in institution.samples.lines().enumerate() {
                meridian_core::record::parse_json_line(line)
                    .unwrap_or_else(|e| panic!("{}.jsonl line {}: {e}", institution.id, n + 1));
            }
        }
    }
}
