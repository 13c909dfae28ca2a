//! Live search (DESIGN §8, scope `live`): the query is sent now, at once,
//! to the peers that hold what this node's index may lack, each under the
//! caller's deadline, and merged with the local index's answer for every
//! origin no peer answered for.
//!
//! Which peers are asked, how answers are checked and merged, and what the
//! completeness report says are decided here; the transport is
//! [`FederationPeer::search`], implemented by `meridian-server` over the
//! pinned-key mTLS client, as for pulls.
//!
//! - Each active peer is asked for its own records (origin = itself). When
//!   it fails, or has not answered after half the deadline, one peer that
//!   advertised a copy of its log is asked too (a hedge); the first answer
//!   wins. A peer past the deadline is dropped: it never delays the answer.
//! - Origins nobody answered for, and every origin no active peer stands
//!   for, are answered from the local index (as of the last sync). Those
//!   are searched while the peers are asked: every origin no peer is asked
//!   for at once, an origin whose peer failed when it failed, and one that
//!   has not answered by half the deadline from then on, so an origin that
//!   never answers costs nothing past the deadline but the merge. One live
//!   search runs at most two of them at once (`LOCAL_SEARCHES`), however
//!   many peers fail; the others wait for a place.
//! - One hit per DOI, the registrant's copy authoritative
//!   ([`super::Registrants`], docs/decisions/doi-registrant.md).
//! - The caller's identity travels as a claim ([`OnBehalfOf`]): anonymous
//!   callers (and pinned peers calling this node's Catalog) are asked for
//!   as anonymous, so peers send PUBLIC records only; only the operator's
//!   searches are asked for on behalf of this node. The answering node runs
//!   the query for [`forwarded_viewer`]: the claim narrowed to the pin of
//!   the node that connected, never widened, and never forwards it again
//!   ([`answer_forwarded`]).
//! - Each answer is checked before it is merged: hits of another origin
//!   than the one asked for, or that the viewer may not see, are dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::{Answer, Completeness, Coverage};
use crate::config::SearchConfig;
use crate::node::Node;
use crate::proto::{self, Access, Visibility};
use crate::query::{
    Hit, Scope, SearchError, SearchRequest, SearchResults, Sort, FACETS, FACET_TOP_N,
    MAX_FILTER_VALUE_BYTES,
};
use crate::sync::{Replicator, SyncError};
use crate::trust::Peer;
use crate::visibility::Viewer;

/// On whose behalf a node asks a peer (`PeerSearchRequest.on_behalf_of`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBehalfOf {
    /// An anonymous caller: the peer answers with PUBLIC records only.
    Anonymous,
    /// The asking node itself: the peer answers with what the asking
    /// node's pin allows.
    Node,
}

impl OnBehalfOf {
    /// Whom a fan-out for `viewer` claims to ask for. Only the operator's
    /// searches are asked for as this node: a pinned peer calling this
    /// node's Catalog may see less than this node, and its own node can ask
    /// the others itself.
    pub fn for_viewer(viewer: &Viewer) -> Self {
        match viewer {
            Viewer::Operator { .. } => OnBehalfOf::Node,
            Viewer::Peer { .. } | Viewer::Anonymous => OnBehalfOf::Anonymous,
        }
    }

    /// The wire value.
    pub fn to_wire(self) -> proto::OnBehalfOf {
        match self {
            OnBehalfOf::Anonymous => proto::OnBehalfOf::Anonymous,
            OnBehalfOf::Node => proto::OnBehalfOf::Node,
        }
    }

    /// From the wire: an unspecified or unknown value is anonymous (fail
    /// closed).
    pub fn from_wire(value: i32) -> Self {
        match proto::OnBehalfOf::try_from(value) {
            Ok(proto::OnBehalfOf::Node) => OnBehalfOf::Node,
            _ => OnBehalfOf::Anonymous,
        }
    }
}

/// The viewer a forwarded query runs for at the answering node: `pinned`
/// is what the connecting peer may see by its pin; the claim can only
/// narrow it, never widen it.
pub fn forwarded_viewer(pinned: Viewer, claim: OnBehalfOf) -> Viewer {
    match (claim, pinned) {
        (OnBehalfOf::Node, pinned @ Viewer::Peer { .. }) => pinned,
        _ => Viewer::Anonymous,
    }
}

/// How long a live search waits for peers: the caller's wish (`None`: the
/// configured default), at most the configured maximum.
pub fn deadline(config: &SearchConfig, asked: Option<Duration>) -> Duration {
    let max = Duration::from_millis(config.max_live_deadline_ms);
    asked
        .unwrap_or(Duration::from_millis(config.live_deadline_ms))
        .min(max)
}

/// A forwarded query's answer: one page, and for each origin asked for the
/// log position the index had reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Forwarded {
    pub results: SearchResults,
    pub positions: Vec<(String, u64)>,
}

/// Most origins one forwarded query may name.
pub const MAX_FORWARDED_ORIGINS: usize = 16;

/// Answers a query another node forwarded, for `viewer` (see
/// [`forwarded_viewer`]), from this node's own index only: a forwarded
/// query is never forwarded again. Blocking.
pub fn answer_forwarded(
    node: &Node,
    mut request: SearchRequest,
    viewer: &Viewer,
    until: std::time::Instant,
) -> Result<Forwarded, SearchError> {
    if request.after.is_some() {
        return Err(SearchError::Invalid(
            "after: a forwarded search answers one page and takes no cursor".into(),
        ));
    }
    if request.origins.is_empty() || request.origins.len() > MAX_FORWARDED_ORIGINS {
        return Err(SearchError::Invalid(format!(
            "origins: a forwarded search names 1 to {MAX_FORWARDED_ORIGINS} origins, not {}",
            request.origins.len()
        )));
    }
    request.scope = Scope::Federation;
    let mut results = node.index().search_until(&request, viewer, until)?;
    results.next_cursor = None;
    let cursors = node.index().cursors();
    let positions = request
        .origins
        .iter()
        .map(|o| (o.clone(), cursors.get(o).copied().unwrap_or(0)))
        .collect();
    Ok(Forwarded { results, positions })
}

/// One origin to ask, and who may answer for it: the origin itself first,
/// then at most one replica holder to hedge to.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub origin: String,
    pub holders: Vec<Peer>,
}

/// The origins a live search asks peers about: every active peer but this
/// node, within the request's origin filter; each with the origin itself
/// and the first other active peer that advertised a copy of its log.
pub fn plan(
    own: &str,
    active: &[Peer],
    replica_holders: impl Fn(&str) -> Vec<String>,
    origins: &[String],
) -> Vec<Target> {
    let by_id: BTreeMap<&str, &Peer> = active.iter().map(|p| (p.node_id.as_str(), p)).collect();
    active
        .iter()
        .filter(|p| p.node_id.as_str() != own)
        .filter(|p| origins.is_empty() || origins.iter().any(|o| o == p.node_id.as_str()))
        .map(|origin| {
            let mut holders = vec![origin.clone()];
            holders.extend(
                replica_holders(origin.node_id.as_str())
                    .iter()
                    .filter(|h| h.as_str() != own && h.as_str() != origin.node_id.as_str())
                    .find_map(|h| by_id.get(h.as_str()).map(|p| (*p).clone())),
            );
            Target {
                origin: origin.node_id.to_string(),
                holders,
            }
        })
        .collect()
}

/// What came of asking for one origin.
#[derive(Debug)]
enum Outcome {
    Answered {
        by: String,
        response: proto::PeerSearchResponse,
    },
    Failed(Coverage),
}

/// The report's word for a peer that failed with `e`.
fn coverage_of(e: &SyncError) -> Coverage {
    match e {
        SyncError::Refused { .. }
        | SyncError::NotTrusted(_)
        | SyncError::TooLarge { .. }
        | SyncError::Busy { .. } => Coverage::Refused,
        SyncError::Stalled { .. } => Coverage::Timeout,
        _ => Coverage::Unreachable,
    }
}

async fn ask(
    replicator: Arc<Replicator>,
    peer: Peer,
    request: proto::PeerSearchRequest,
    deadline: Instant,
) -> Result<proto::PeerSearchResponse, SyncError> {
    let client = replicator.dial(peer).await?;
    client
        .search(request, deadline.saturating_duration_since(Instant::now()))
        .await
}

/// Asks the target's origin, hedging to its replica holder when the
/// origin fails or is slow (half the time left), until `deadline`.
async fn ask_origin(
    replicator: Arc<Replicator>,
    target: Target,
    request: proto::PeerSearchRequest,
    deadline: Instant,
) -> (String, Outcome) {
    let origin = target.origin.clone();
    let hedge_at = Instant::now() + (deadline - Instant::now()) / 2;
    let mut holders = target.holders.into_iter();
    let Some(primary) = holders.next() else {
        return (origin, Outcome::Failed(Coverage::Unreachable));
    };
    let second = holders.next();
    let primary_id = primary.node_id.to_string();
    let mut first = Box::pin(ask(replicator.clone(), primary, request.clone(), deadline));
    let early = tokio::select! {
        result = &mut first => Some(result),
        _ = tokio::time::sleep_until(hedge_at) => None,
    };
    let outcome = match (early, second) {
        (Some(Ok(response)), _) => Outcome::Answered {
            by: primary_id,
            response,
        },
        (Some(Err(e)), None) => Outcome::Failed(coverage_of(&e)),
        (Some(Err(e)), Some(holder)) => {
            let by = holder.node_id.to_string();
            match tokio::time::timeout_at(deadline, ask(replicator, holder, request, deadline))
                .await
            {
                Ok(Ok(response)) => Outcome::Answered { by, response },
                // The origin's own failure is what the report names.
                Ok(Err(_)) | Err(_) => Outcome::Failed(coverage_of(&e)),
            }
        }
        (None, None) => match tokio::time::timeout_at(deadline, first).await {
            Ok(Ok(response)) => Outcome::Answered {
                by: primary_id,
                response,
            },
            Ok(Err(e)) => Outcome::Failed(coverage_of(&e)),
            Err(_) => Outcome::Failed(Coverage::Timeout),
        },
        (None, Some(holder)) => {
            let by = holder.node_id.to_string();
            let hedge = Box::pin(ask(replicator, holder, request, deadline));
            race(first, primary_id, hedge, by, deadline).await
        }
    };
    (origin, outcome)
}

/// The first of two asks to answer, until `deadline`; when both fail, the
/// first one's failure.
async fn race(
    first: impl std::future::Future<Output = Result<proto::PeerSearchResponse, SyncError>> + Unpin,
    first_id: String,
    second: impl std::future::Future<Output = Result<proto::PeerSearchResponse, SyncError>> + Unpin,
    second_id: String,
    deadline: Instant,
) -> Outcome {
    let both = async {
        match futures::future::select(first, second).await {
            futures::future::Either::Left((Ok(response), _)) => Outcome::Answered {
                by: first_id,
                response,
            },
            futures::future::Either::Right((Ok(response), _)) => Outcome::Answered {
                by: second_id,
                response,
            },
            futures::future::Either::Left((Err(e), other)) => match other.await {
                Ok(response) => Outcome::Answered {
                    by: second_id,
                    response,
                },
                Err(_) => Outcome::Failed(coverage_of(&e)),
            },
            futures::future::Either::Right((Err(_), other)) => match other.await {
                Ok(response) => Outcome::Answered {
                    by: first_id,
                    response,
                },
                Err(e) => Outcome::Failed(coverage_of(&e)),
            },
        }
    };
    tokio::time::timeout_at(deadline, both)
        .await
        .unwrap_or(Outcome::Failed(Coverage::Timeout))
}

/// What a live search learned of one origin.
enum Found {
    /// The origin, or the replica holder `by` in its place, answered.
    Live {
        by: String,
        response: proto::PeerSearchResponse,
    },
    /// Nobody answered, for the reason `coverage`: this node's copy of the
    /// origin answered instead.
    Replica {
        coverage: Coverage,
        results: Result<SearchResults, SearchError>,
    },
}

/// Searches of the local index one live search runs at once: as many as
/// one search of the index spreads over ([`crate::index::SEARCH_THREADS`]),
/// so that a live search with many peers down or slow, each answered from
/// the local copy, holds no more blocking threads than that.
const LOCAL_SEARCHES: usize = crate::index::SEARCH_THREADS;

/// Searches of this node's own index as part of a live search: scored as
/// the peers score (fixed statistics), so the hits merge with theirs.
#[derive(Clone)]
struct LocalIndex {
    node: Arc<Node>,
    request: SearchRequest,
    viewer: Viewer,
    /// When a search of the local index gives up: what
    /// [`super::time_allowed`] allows after the live search began (not the
    /// peers' deadline, which a search of the local copy may outlast).
    until: std::time::Instant,
    /// The live search's places for searches of the local index
    /// ([`LOCAL_SEARCHES`]), shared by all of them.
    places: Arc<tokio::sync::Semaphore>,
    /// The caller's place among the node's searches (`limits.searches`),
    /// when it takes one: given back once the live search and every search
    /// of the local index it started have ended, so a caller that hangs up
    /// does not leave searches running outside the node's count.
    caller: Option<Arc<OwnedSemaphorePermit>>,
}

impl LocalIndex {
    fn new(
        node: Arc<Node>,
        request: SearchRequest,
        viewer: Viewer,
        caller: Option<OwnedSemaphorePermit>,
    ) -> Self {
        let until = std::time::Instant::now() + super::time_allowed(&node, &viewer, None).0;
        Self {
            node,
            request,
            viewer,
            until,
            places: Arc::new(tokio::sync::Semaphore::new(LOCAL_SEARCHES)),
            caller: caller.map(Arc::new),
        }
    }

    /// Starts searching the index for `origins`' records, off the executor,
    /// once one of the live search's places is free. The place is held
    /// until the search ends, even when the search's answer is no longer
    /// wanted, since a blocking search cannot be called back.
    fn search(&self, origins: Vec<String>) -> LocalSearch {
        let (node, viewer) = (self.node.clone(), self.viewer.clone());
        let mut request = self.request.clone();
        request.scope = Scope::Live;
        request.origins = origins;
        let until = self.until;
        let places = self.places.clone();
        let caller = self.caller.clone();
        LocalSearch(tokio::spawn(async move {
            let place = places
                .acquire_owned()
                .await
                .map_err(|e| SearchError::Unavailable(e.to_string()))?;
            tokio::task::spawn_blocking(move || {
                let _places = (place, caller);
                node.index().search_until(&request, &viewer, until)
            })
            .await
            .map_err(|e| SearchError::Unavailable(e.to_string()))?
        }))
    }
}

/// A search of the local index, waiting for a place or under way. Dropped
/// before it has a place, it never starts.
struct LocalSearch(tokio::task::JoinHandle<Result<SearchResults, SearchError>>);

impl LocalSearch {
    async fn results(mut self) -> Result<SearchResults, SearchError> {
        (&mut self.0)
            .await
            .map_err(|e| SearchError::Unavailable(e.to_string()))?
    }
}

impl Drop for LocalSearch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Asks for one origin ([`ask_origin`]). When the origin has not answered
/// by half the deadline, or fails, this node's copy of it is searched
/// meanwhile (once one of the live search's places is free): an origin
/// that never answers then costs nothing past the deadline but the merge
/// (its copy is ready when the deadline passes). A copy searched for an
/// origin that answers after all is dropped: not started if it still
/// waits for a place, else its search keeps the place until it ends.
async fn ask_or_replica(
    replicator: Arc<Replicator>,
    target: Target,
    request: proto::PeerSearchRequest,
    deadline: Instant,
    local: LocalIndex,
) -> (String, Found) {
    let origin = target.origin.clone();
    let halfway = Instant::now() + deadline.saturating_duration_since(Instant::now()) / 2;
    let asking = ask_origin(replicator, target, request, deadline);
    tokio::pin!(asking);
    let mut copy = None;
    let (_, outcome) = tokio::select! {
        done = &mut asking => done,
        _ = tokio::time::sleep_until(halfway) => {
            copy = Some(local.search(vec![origin.clone()]));
            asking.await
        }
    };
    let found = match outcome {
        Outcome::Answered { by, response } => Found::Live { by, response },
        Outcome::Failed(coverage) => {
            let copy = copy.unwrap_or_else(|| local.search(vec![origin.clone()]));
            Found::Replica {
                coverage,
                results: copy.results().await,
            }
        }
    };
    (origin, found)
}

/// A peer's hit in the core's form: its word, not verified here. Its
/// snippet is made markup this node would write (escaped text, `<b>`
/// marks), and a score that is not a finite, non-negative number counts 0,
/// so no peer ranks first by NaN or infinity.
fn hit_from_wire(hit: proto::SearchHit) -> Hit {
    let score = if hit.score.is_finite() && hit.score > 0.0 {
        hit.score
    } else {
        0.0
    };
    Hit {
        origin: hit.origin,
        id: hit.id,
        version: hit.version,
        title: hit.title,
        doi: hit.doi,
        publication_year: hit.publication_year,
        updated_at: hit.updated_at,
        size_bytes: hit.size_bytes,
        score,
        snippet: crate::index::highlight::sanitize(&hit.snippet),
        access: Access::try_from(hit.access).unwrap_or_default(),
        visibility: Visibility::try_from(hit.visibility).unwrap_or(Visibility::Private),
        also_at: Vec::new(),
        verified: false,
    }
}

/// A peer's answer for `origin` as results `viewer` may be shown: hits of
/// another origin, or that the viewer may not see, are dropped (a peer
/// that breaks the rule leaks nothing through this node); at most `limit`
/// hits are kept. Of its facets, each known one once, with its top values
/// that could be true: each value once and no longer than a filter value,
/// the `origin` facet naming `origin` only, years as numbers, and no count
/// above the answer's total (so a peer cannot push the true values of the
/// merged facets out of their top, nor name origins it was not asked for).
pub(crate) fn accept(
    origin: &str,
    viewer: &Viewer,
    limit: usize,
    response: proto::PeerSearchResponse,
) -> SearchResults {
    let hits: Vec<Hit> = response
        .hits
        .into_iter()
        .filter(|h| h.origin == origin && viewer.may_see_audience(origin, h.visibility, &[]))
        .take(limit)
        .map(hit_from_wire)
        .collect();
    let total = response.total.max(hits.len() as u64);
    let mut facets: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for facet in response.facets {
        if !FACETS.contains(&facet.name.as_str()) || facets.contains_key(&facet.name) {
            continue;
        }
        let could_be = |value: &str| match facet.name.as_str() {
            "origin" => value == origin,
            "year" => value
                .parse::<u32>()
                .is_ok_and(|year| year.to_string() == value),
            _ => value.len() <= MAX_FILTER_VALUE_BYTES,
        };
        let mut values: Vec<(String, u64)> = Vec::new();
        for value in facet.values {
            if values.len() == FACET_TOP_N {
                break;
            }
            if could_be(&value.value) && !values.iter().any(|(v, _)| *v == value.value) {
                values.push((value.value, value.count.min(total)));
            }
        }
        facets.insert(facet.name, values);
    }
    SearchResults {
        total,
        estimated: response.total_is_estimate,
        hits,
        facets,
        next_cursor: None,
    }
}

/// The order of `sort` over hits from several nodes: descending, ties by
/// (origin, id).
fn order(sort: Sort, a: &Hit, b: &Hit) -> std::cmp::Ordering {
    let key = match sort {
        Sort::Relevance => b.score.total_cmp(&a.score),
        Sort::Updated => b.updated_at.cmp(&a.updated_at),
        Sort::Size => b.size_bytes.cmp(&a.size_bytes),
    };
    key.then_with(|| (&a.origin, &a.id).cmp(&(&b.origin, &b.id)))
}

/// Several nodes' pages as one: hits in `sort` order, each record once and
/// each DOI once ([`super::dedupe`], the registrant's copy authoritative),
/// the first `limit`; totals and facet counts summed (the parts cover
/// disjoint origins).
pub(crate) fn merge(
    sort: Sort,
    limit: usize,
    parts: Vec<SearchResults>,
    registrants: &super::Registrants,
) -> SearchResults {
    let mut total = 0;
    let mut estimated = false;
    let mut hits = Vec::new();
    let mut facets: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    // Peers' counts are theirs to claim: summed without overflow, so a
    // peer's u64::MAX neither panics nor wraps the total to a small one.
    for part in parts {
        total = u64::saturating_add(total, part.total);
        estimated |= part.estimated;
        hits.extend(part.hits);
        for (name, values) in part.facets {
            let counts = facets.entry(name).or_default();
            for (value, count) in values {
                let sum = counts.entry(value).or_default();
                *sum = sum.saturating_add(count);
            }
        }
    }
    hits.sort_by(|a, b| order(sort, a, b));
    let mut seen = BTreeSet::new();
    hits.retain(|h| seen.insert((h.origin.clone(), h.id.clone())));
    let mut hits = super::dedupe(hits, || registrants);
    hits.truncate(limit);
    let facets = facets
        .into_iter()
        .map(|(name, counts)| {
            let mut values: Vec<(String, u64)> = counts.into_iter().collect();
            values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            values.truncate(FACET_TOP_N);
            (name, values)
        })
        .collect();
    SearchResults {
        hits,
        total,
        estimated,
        facets,
        next_cursor: None,
    }
}

/// Runs a live search for `viewer`: `request` as the core reads it, `wire`
/// as peers are sent it, waiting at most `wait` for peers. `place`, the
/// caller's place among the node's searches, is held until this search
/// and every search of the local index it started have ended.
pub async fn live(
    replicator: Arc<Replicator>,
    request: SearchRequest,
    wire: proto::SearchRequest,
    viewer: Viewer,
    wait: Duration,
    place: Option<OwnedSemaphorePermit>,
) -> Result<Answer, SearchError> {
    if request.after.is_some() {
        return Err(SearchError::Invalid(
            "after: a live search answers one page; page through the federation scope".into(),
        ));
    }
    // The query must parse here before it is sent anywhere.
    request.plan()?;
    let deadline = Instant::now() + wait;
    let node = replicator.node().clone();
    let own = node.node_id().to_string();
    let active = node
        .trust()
        .active()
        .map_err(|e| SearchError::Unavailable(e.to_string()))?;
    let targets = plan(
        &own,
        &active,
        |origin| replicator.replica_holders(origin),
        &request.origins,
    );
    let claim = OnBehalfOf::for_viewer(&viewer);
    let local = LocalIndex::new(node.clone(), request.clone(), viewer.clone(), place);
    // Every origin no peer is asked for comes from the local index (as of
    // the last sync), searched while the peers are asked. The index keeps
    // its position in the log of an origin it no longer holds (a revoked
    // peer): that origin has no records there and gets no line, as in
    // the federation scope.
    let asked: BTreeSet<&str> = targets.iter().map(|t| t.origin.as_str()).collect();
    let mut local_only = Vec::new();
    for origin in node
        .index()
        .cursors()
        .into_keys()
        .chain(std::iter::once(own.clone()))
        .collect::<BTreeSet<_>>()
    {
        if asked.contains(origin.as_str())
            || !(request.origins.is_empty() || request.origins.contains(&origin))
        {
            continue;
        }
        let held = node
            .holds_origin(&origin)
            .map_err(|e| SearchError::Unavailable(e.to_string()))?;
        if held {
            local_only.push(origin);
        }
    }
    let local_part = (!local_only.is_empty()).then(|| local.search(local_only.clone()));
    let asks = targets.into_iter().map(|target| {
        let mut asked = wire.clone();
        asked.scope = proto::Scope::Federation as i32;
        asked.origins = vec![target.origin.clone()];
        asked.after = String::new();
        asked.deadline_ms = 0;
        let request = proto::PeerSearchRequest {
            request: Some(asked),
            on_behalf_of: claim.to_wire() as i32,
        };
        tokio::spawn(ask_or_replica(
            replicator.clone(),
            target,
            request,
            deadline,
            local.clone(),
        ))
    });
    // Known before the deadline, so the answer costs only the merge after.
    let registrants = super::Registrants::of(&node);
    let found: Vec<(String, Found)> = futures::future::join_all(asks)
        .await
        .into_iter()
        .filter_map(Result::ok)
        .collect();

    let mut parts = Vec::new();
    let mut lines = Vec::new();
    let synced = replicator.status();
    for (origin, found) in found {
        match found {
            Found::Live { by, response } => {
                let log_size = response
                    .positions
                    .iter()
                    .find(|p| p.origin == origin)
                    .map_or(0, |p| p.size);
                parts.push(accept(&origin, &viewer, request.limit, response));
                lines.push(Completeness {
                    answered_by: if by == origin { String::new() } else { by },
                    coverage: super::vouched(&node, &origin, Coverage::Ok),
                    as_of: String::new(),
                    peers: 0,
                    log_size,
                    origin: origin.clone(),
                });
            }
            Found::Replica { coverage, results } => {
                parts.push(results?);
                lines.push(super::copy_line(&node, &synced, &origin, coverage));
            }
        }
    }
    for origin in local_only.iter().filter(|o| **o != own) {
        lines.push(super::copy_line(&node, &synced, origin, Coverage::Replica));
    }
    if let Some(search) = local_part {
        parts.push(search.results().await?);
    }
    lines.sort_by(|a, b| a.origin.cmp(&b.origin));
    let mut completeness = vec![super::own_line(&node)];
    if viewer == Viewer::Anonymous {
        completeness.extend(super::anonymous_lines(lines));
    } else {
        completeness.extend(lines);
    }
    Ok(Answer {
        results: merge(request.sort, request.limit, parts, &registrants),
        completeness,
    })
}

#[cfg(test)]
mod tests;
