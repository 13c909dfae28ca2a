//! `/metrics`: the node's Prometheus metrics, on a listener of their own
//! (`metrics.listen`, off by default), in the Prometheus text format 0.0.4.
//!
//! Metrics are operator data (which peers this node has, how far behind it
//! is, how often its limits are hit): the listener speaks plain HTTP and
//! belongs on a loopback or monitoring-network address, never on the open
//! network. It serves nothing but `/metrics`, a few scrapes at a time.
//!
//! Two kinds of metric make up a scrape:
//! - the counters and histograms the node keeps as things happen
//!   ([`meridian_core::metrics::Metrics`]);
//! - gauges read at scrape time from the node's state, the same state
//!   `meridian status` and `meridian peers status` read ([`NodeState`]), so
//!   nothing is kept twice and nothing can drift.
//!
//! Every label is bounded: origins and peers by the trust store, everything
//! else by a fixed set of words. No series is labelled by a client address
//! or query text. `docs/metrics.md` lists every metric.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use meridian_core::node::{Node, NodeError};
use meridian_core::sync::{OriginLag, Replicator};
use meridian_core::trust::PeerState;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;

/// The exposition's content type (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Scrapes served at once; more wait.
const CONCURRENT_SCRAPES: usize = 4;
/// How long one scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// The node's metrics as Prometheus text: the kept counters and the state
/// read now. Blocking (it reads the store and the index directory).
pub fn exposition(replicator: &Replicator) -> Result<String, ScrapeError> {
    let state = NodeState::read(replicator)?;
    let mut registry = Registry::with_prefix("meridian");
    replicator.node().metrics().register(&mut registry);
    registry.register_collector(Box::new(state));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
        .expect("writing to a String does not fail");
    Ok(text)
}

/// The metrics listener's routes: `/metrics` only.
pub fn router(replicator: Arc<Replicator>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(replicator)
}

async fn scrape(State(replicator): State<Arc<Replicator>>) -> Response {
    match tokio::task::spawn_blocking(move || exposition(&replicator)).await {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "metrics not collected");
            (StatusCode::INTERNAL_SERVER_ERROR, "metrics not collected\n").into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "metrics collection failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "metrics not collected\n").into_response()
        }
    }
}

/// Serves the metrics routes on `listener` (plain HTTP) until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    replicator: Arc<Replicator>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router(replicator).layer(
        tower::ServiceBuilder::new()
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                CONCURRENT_SCRAPES,
            ))
            .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                SCRAPE_TIMEOUT,
            )),
    );
    axum::serve(listener, router.into_make_service())
        .with_graceful_shutdown(shutdown)
        .await
}

/// One origin's or peer's label.
type Labels = Vec<(&'static str, String)>;

/// What the node's state says at a scrape: the gauges `status`,
/// `peers status` and the health check are made of.
#[derive(Debug)]
pub struct NodeState {
    node_id: String,
    index_behind: u64,
    index_documents: u64,
    index_bytes: u64,
    store_bytes: u64,
    /// Entries held per origin.
    log_entries: Vec<(String, u64)>,
    /// Per origin held or pinned: frozen, quarantined.
    origins: Vec<(String, bool, bool)>,
    peers_by_state: [(PeerState, u64); 3],
    /// Per active peer (the ones sync rounds ask): reachable at its last round, seconds
    /// since the epoch of its last successful round (0: none yet),
    /// consecutive failed rounds.
    peers: Vec<(String, bool, u64, u32)>,
    lag: Vec<OriginLag>,
}

impl NodeState {
    /// Reads the state of `replicator`'s node. Blocking.
    pub fn read(replicator: &Replicator) -> Result<Self, ScrapeError> {
        let node: &Node = replicator.node();
        let store = node.store();
        let held = store.origins()?;
        let pinned = node.trust().list()?;
        let mut names: std::collections::BTreeSet<String> =
            held.iter().map(|(origin, _)| origin.clone()).collect();
        names.extend(pinned.iter().map(|peer| peer.node_id.to_string()));
        let mut origins = Vec::with_capacity(names.len());
        for origin in names {
            let frozen = store.is_frozen(&origin)?;
            // Quarantine is of entries: a revoked peer this node holds
            // nothing of has none.
            let holds = held.iter().any(|(o, size)| *o == origin && *size > 0);
            let quarantined = holds && meridian_core::sync::quarantined(node, &origin)?;
            origins.push((origin, frozen, quarantined));
        }
        let mut peers_by_state = [
            (PeerState::Active, 0),
            (PeerState::Suspended, 0),
            (PeerState::Revoked, 0),
        ];
        for peer in &pinned {
            for (state, count) in &mut peers_by_state {
                if *state == peer.state {
                    *count += 1;
                }
            }
        }
        let known = replicator.status();
        let peers = pinned
            .iter()
            .filter(|peer| peer.state == PeerState::Active)
            .map(|peer| {
                let status = known.get(peer.node_id.as_str());
                (
                    peer.node_id.to_string(),
                    status.is_some_and(|s| s.reachable),
                    status.and_then(|s| unix_seconds(&s.last_sync)).unwrap_or(0),
                    status.map_or(0, |s| s.consecutive_failures),
                )
            })
            .collect();
        Ok(Self {
            node_id: node.node_id().to_string(),
            index_behind: node.index_behind()?,
            index_documents: node.live_index().get().doc_count(),
            index_bytes: node.live_index().size_on_disk(),
            store_bytes: store.size_on_disk()?,
            log_entries: held,
            origins,
            peers_by_state,
            peers,
            lag: replicator.lag(),
        })
    }
}

/// Why the node's state could not be read for a scrape.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Sync(#[from] meridian_core::sync::SyncError),
    #[error(transparent)]
    Store(#[from] meridian_core::store::StoreError),
    #[error(transparent)]
    Trust(#[from] meridian_core::trust::TrustError),
}

/// Seconds since the epoch of an RFC 3339 time.
fn unix_seconds(rfc3339: &str) -> Option<u64> {
    let (start, _) = meridian_core::date::bounds(rfc3339).ok()?;
    u64::try_from(start).ok()
}

fn peer_state_name(state: PeerState) -> &'static str {
    match state {
        PeerState::Active => "active",
        PeerState::Suspended => "suspended",
        PeerState::Revoked => "revoked",
    }
}

/// Writes one gauge family.
fn gauges<V: prometheus_client::encoding::EncodeGaugeValue + Copy + std::fmt::Debug>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: &[(Labels, V)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in series {
        ConstGauge::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge<V: prometheus_client::encoding::EncodeGaugeValue + Copy + std::fmt::Debug>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: V,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

fn one(name: &'static str, value: &str) -> Labels {
    vec![(name, value.to_owned())]
}

impl Collector for NodeState {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        gauges(
            e,
            "node",
            "This node: its id and version (always 1)",
            None,
            &[(
                vec![
                    ("node_id", self.node_id.clone()),
                    ("version", env!("CARGO_PKG_VERSION").to_owned()),
                ],
                1i64,
            )],
        )?;
        gauge(
            e,
            "ready",
            "1 when the index has caught up with the store (the node answers searches completely), else 0",
            None,
            i64::from(self.index_behind == 0),
        )?;
        gauge(
            e,
            "index_behind_entries",
            "Log entries stored but not yet searchable",
            None,
            self.index_behind,
        )?;
        gauge(
            e,
            "index_documents",
            "Records in the search index (every visibility)",
            None,
            self.index_documents,
        )?;
        gauge(
            e,
            "index_size",
            "Bytes the search index takes on disk",
            Some(&Unit::Bytes),
            self.index_bytes,
        )?;
        gauge(
            e,
            "store_size",
            "Bytes the database takes on disk",
            Some(&Unit::Bytes),
            self.store_bytes,
        )?;
        let logs: Vec<(Labels, u64)> = self
            .log_entries
            .iter()
            .map(|(origin, size)| (one("origin", origin), *size))
            .collect();
        gauges(
            e,
            "log_entries",
            "Entries of each origin's log held here (this node's own included)",
            None,
            &logs,
        )?;
        let frozen: Vec<(Labels, i64)> = self
            .origins
            .iter()
            .map(|(origin, frozen, _)| (one("origin", origin), i64::from(*frozen)))
            .collect();
        gauges(
            e,
            "origin_frozen",
            "1 when the origin is frozen after evidence of equivocation (two signed checkpoints disagree)",
            None,
            &frozen,
        )?;
        let frozen_total = self.origins.iter().filter(|(_, frozen, _)| *frozen).count();
        gauge(
            e,
            "origins_frozen",
            "Origins frozen here after evidence of equivocation (`meridian peers status`, `meridian evidence export`)",
            None,
            frozen_total as i64,
        )?;
        let quarantined: Vec<(Labels, i64)> = self
            .origins
            .iter()
            .map(|(origin, _, quarantined)| (one("origin", origin), i64::from(*quarantined)))
            .collect();
        gauges(
            e,
            "origin_quarantined",
            "1 when the origin's entries are quarantined (its peer revoked or no longer pinned): not served, not searched",
            None,
            &quarantined,
        )?;
        let states: Vec<(Labels, u64)> = self
            .peers_by_state
            .iter()
            .map(|(state, count)| (one("state", peer_state_name(*state)), *count))
            .collect();
        gauges(e, "peers", "Pinned peers by state", None, &states)?;
        let up: Vec<(Labels, i64)> = self
            .peers
            .iter()
            .map(|(peer, up, _, _)| (one("peer", peer), i64::from(*up)))
            .collect();
        gauges(
            e,
            "peer_up",
            "1 when the peer answered at its last sync round",
            None,
            &up,
        )?;
        let last: Vec<(Labels, u64)> = self
            .peers
            .iter()
            .map(|(peer, _, last, _)| (one("peer", peer), *last))
            .collect();
        gauges(
            e,
            "peer_last_sync_timestamp",
            "Time of the last successful sync round with the peer, in seconds since the epoch (0: none since start)",
            Some(&Unit::Seconds),
            &last,
        )?;
        let failures: Vec<(Labels, u32)> = self
            .peers
            .iter()
            .map(|(peer, _, _, failures)| (one("peer", peer), *failures))
            .collect();
        gauges(
            e,
            "peer_consecutive_failures",
            "Sync rounds with the peer that failed in a row",
            None,
            &failures,
        )?;
        let lag_entries: Vec<(Labels, u64)> = self
            .lag
            .iter()
            .map(|lag| (one("origin", &lag.origin), lag.entries))
            .collect();
        gauges(
            e,
            "sync_lag_entries",
            "Entries of the origin a peer advertised that this node does not hold",
            None,
            &lag_entries,
        )?;
        let lag_seconds: Vec<(Labels, f64)> = self
            .lag
            .iter()
            .map(|lag| (one("origin", &lag.origin), lag.behind_for.as_secs_f64()))
            .collect();
        gauges(
            e,
            "sync_lag",
            "Time since this node first learned of entries of the origin it still lacks (0 when it holds all it knows of)",
            Some(&Unit::Seconds),
            &lag_seconds,
        )?;
        Ok(())
    }
}
