//! `Catalog`: search and read. Anonymous callers are allowed and see PUBLIC
//! records only; a pinned peer sees what the records' audiences allow.
//!
//! [`Catalog`] holds the reads and their limits; the gRPC service
//! ([`CatalogService`]) and the HTTP API ([`crate::api`]) both call it, so
//! there is one search path and one read path whatever the protocol.

use std::sync::Arc;
use std::time::{Duration, Instant};

use meridian_core::ids::{NodeId, RecordId};
use meridian_core::index::Work;
use meridian_core::node::Node;
use meridian_core::sync::Replicator;
use meridian_core::visibility::Viewer;
use meridian_proto as proto;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Request, Response, Status};

mod position;

use crate::limit::{self, RateLimiter};
use crate::{caller, convert, status};
use meridian_core::metrics::{Limit, Metrics, SearchScope};
use meridian_core::query::{Scope, SearchError};
use meridian_core::search::live;
use position::PositionKey;

/// Default and largest page of `ListRecords`.
const DEFAULT_PAGE: u32 = 100;
/// How long an anonymous read waits for a free slot before it is refused.
const ANONYMOUS_QUEUE_WAIT: Duration = Duration::from_secs(1);

/// The Catalog's reads with the limits they run under: one per node,
/// shared by the gRPC service and the HTTP API, so a client meets the same
/// rate, read slots and answers whichever protocol it speaks.
pub struct Catalog {
    node: Arc<Node>,
    replicator: Arc<Replicator>,
    /// Anonymous reads (GetRecord, ListRecords) running at once: they take
    /// blocking threads from this budget only, so the open network cannot
    /// starve import, sync or search.
    anonymous_reads: Arc<Semaphore>,
    anonymous_limit: usize,
    request_timeout: Duration,
    rates: RateLimiter,
    /// Seals the page tokens of `ListRecords`.
    positions: PositionKey,
}

impl Catalog {
    pub fn new(replicator: Arc<Replicator>) -> Self {
        let limits = replicator.node().config().limits.clone();
        let rates = RateLimiter::new(&limits, replicator.node().metrics());
        let positions = PositionKey::new(&replicator.node().key().derive_secret("list position"));
        Self {
            node: replicator.node().clone(),
            replicator,
            anonymous_reads: Arc::new(Semaphore::new(limits.anonymous_reads)),
            anonymous_limit: limits.anonymous_reads,
            request_timeout: Duration::from_secs(limits.request_timeout_secs),
            rates,
            positions,
        }
    }

    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Takes one request from `client`'s rate (see [`limit::client`]).
    pub fn admit(&self, client: &str) -> Result<(), Status> {
        self.rates.check(client)
    }

    /// A slot for a read by `viewer`: anonymous reads wait briefly for one
    /// of their own and are refused when none frees up; others need none.
    async fn read_slot(&self, viewer: &Viewer) -> Result<Option<OwnedSemaphorePermit>, Status> {
        if !matches!(viewer, Viewer::Anonymous) {
            return Ok(None);
        }
        self.anonymous_read_slot().await.map(Some)
    }

    /// A slot for an anonymous read (a search, a record, a harvest): waits
    /// briefly for one and is refused when none frees up.
    pub async fn anonymous_read_slot(&self) -> Result<OwnedSemaphorePermit, Status> {
        match tokio::time::timeout(
            ANONYMOUS_QUEUE_WAIT,
            self.anonymous_reads.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                self.node.metrics().limit_hits.inc(Limit::AnonymousReads);
                Err(Status::resource_exhausted(format!(
                    "too many anonymous reads in progress (at most {} at once); retry later",
                    self.anonymous_limit
                )))
            }
        }
    }

    /// When a caller that asked for `asked` stops waiting: at most the
    /// node's request timeout from now.
    pub fn deadline(&self, asked: Option<Duration>) -> Instant {
        Instant::now() + asked.map_or(self.request_timeout, |t| t.min(self.request_timeout))
    }

    /// The deadline of a read over HTTP that reached the listener at
    /// `arrived`: a little before the listener's own request timeout, which
    /// counts from then too, so that the read answers what it found and
    /// how to go on rather than being cut off without an answer.
    pub fn answer_by(&self, arrived: Instant) -> Instant {
        let margin = (self.request_timeout / 10).min(Duration::from_millis(500));
        arrived + self.request_timeout - margin
    }

    /// A search for `viewer`, with its completeness report; a live one
    /// waits for peers at most `within` (the caller's own deadline) too.
    pub async fn search(
        &self,
        request: proto::SearchRequest,
        viewer: Viewer,
        within: Option<Duration>,
    ) -> Result<proto::SearchResponse, Status> {
        search(self.replicator.clone(), request, viewer, within).await
    }

    /// One record with its envelope, as `viewer` may see it: a record the
    /// viewer may not see is NOT_FOUND, exactly as a missing one.
    pub async fn get_record(
        &self,
        request: proto::GetRecordRequest,
        viewer: Viewer,
    ) -> Result<proto::RecordView, Status> {
        // Names no record could have are refused before any work, and
        // never echoed whole (an id may be as long as the message).
        if !request.origin.is_empty() {
            NodeId::parse(&request.origin)
                .map_err(|e| crate::status::invalid_field("origin", format!("origin: {e}")))?;
        }
        RecordId::parse(&request.id)
            .map_err(|e| crate::status::invalid_field("id", format!("id: {e}")))?;
        // The slot goes with the work: a caller that leaves does not free
        // it while the read still runs.
        let slot = self.read_slot(&viewer).await?;
        let node = self.node.clone();
        let view = blocking(move || {
            let _slot = slot;
            node.get(&request.origin, &request.id, &viewer)
        })
        .await?;
        Ok(convert::record_view(view))
    }

    /// A page of an origin's records that `viewer` may see, scanned until
    /// `deadline` at most. A page the deadline cut short before it found
    /// a record is empty, with a token that goes on from where it stopped:
    /// sealed, as every token is, since that place is a record the caller
    /// may not see.
    pub async fn list_records(
        &self,
        mut request: proto::ListRecordsRequest,
        viewer: Viewer,
        deadline: Instant,
    ) -> Result<proto::ListRecordsResponse, Status> {
        let origin = if request.origin.is_empty() {
            self.node.node_id().to_string()
        } else {
            request.origin.clone()
        };
        request.page_token = self
            .positions
            .open(&origin, &request.page_token)
            .map_err(|e| crate::status::invalid_field("page_token", format!("page_token: {e}")))?;
        let slot = self.read_slot(&viewer).await?;
        let node = self.node.clone();
        let page = blocking(move || {
            let _slot = slot;
            node.list_until(
                &request.origin,
                page_size(request.page_size),
                &request.page_token,
                false,
                &viewer,
                Some(deadline),
            )
        })
        .await?;
        let mut page = convert::page(page);
        page.next_page_token = self
            .positions
            .seal(&origin, &page.next_page_token)
            .map_err(|e| crate::status::internal(&e))?;
        Ok(page)
    }
}

/// `Catalog` on gRPC: who is calling, then the shared [`Catalog`].
pub struct CatalogService {
    catalog: Arc<Catalog>,
}

impl CatalogService {
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self { catalog }
    }

    /// Who is calling, once their request fits their rate.
    fn caller<T>(&self, request: &Request<T>) -> Result<Viewer, Status> {
        let viewer = caller::viewer(self.catalog.node(), request)?;
        let peer = match &viewer {
            Viewer::Peer { node, .. } => Some(node.as_str()),
            _ => None,
        };
        self.catalog.admit(&limit::client(request, peer))?;
        Ok(viewer)
    }

    /// When the caller stops waiting: its `grpc-timeout`, at most the
    /// node's request timeout.
    fn deadline<T>(&self, request: &Request<T>) -> Instant {
        self.catalog.deadline(asked_timeout(request))
    }
}

/// The `grpc-timeout` a caller sent, if it is well formed.
pub(crate) fn asked_timeout<T>(request: &Request<T>) -> Option<Duration> {
    request
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
}

/// A `grpc-timeout` header value: at most 8 digits and a unit (gRPC over
/// HTTP/2: `H`, `M`, `S`, `m`, `u`, `n`).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let unit = value.chars().last()?;
    let digits = &value[..value.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        'H' => Duration::from_secs(n * 3600),
        'M' => Duration::from_secs(n * 60),
        'S' => Duration::from_secs(n),
        'm' => Duration::from_millis(n),
        'u' => Duration::from_micros(n),
        'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A place among the searches run for others than the operator (anonymous
/// callers, peers, live searches peers forward): at most `limits.searches`
/// at once, so that expensive queries cannot pile up on the blocking
/// threads. Waits briefly for one, then refuses; the operator never waits.
pub(crate) async fn search_slot(
    node: &Node,
    viewer: &Viewer,
) -> Result<Option<OwnedSemaphorePermit>, Status> {
    if matches!(viewer, Viewer::Operator { .. }) {
        return Ok(None);
    }
    match tokio::time::timeout(
        ANONYMOUS_QUEUE_WAIT,
        node.search_slots().clone().acquire_owned(),
    )
    .await
    {
        Ok(Ok(permit)) => Ok(Some(permit)),
        _ => {
            node.metrics().limit_hits.inc(Limit::Searches);
            Err(Status::resource_exhausted(format!(
                "too many searches in progress (at most {} at once); retry later",
                node.config().limits.searches
            )))
        }
    }
}

/// Runs a search for `viewer` off the async executor and answers it on the
/// wire, with its completeness report. Shared by `Catalog` and `Admin`.
/// A live search asks peers for at most the request's `deadline_ms` (the
/// configured default when 0), `within`, and `search.max_live_deadline_ms`.
pub async fn search(
    replicator: Arc<Replicator>,
    request: proto::SearchRequest,
    viewer: Viewer,
    within: Option<Duration>,
) -> Result<proto::SearchResponse, Status> {
    let started = std::time::Instant::now();
    let (deadline, capped) = search_deadline(replicator.node(), &viewer, started, within);
    let slot = search_slot(replicator.node(), &viewer).await?;
    let wire = request.clone();
    let request = convert::search_request(request, replicator.node().node_id())?;
    let scope = match request.scope {
        Scope::Local { .. } => SearchScope::Local,
        Scope::Federation => SearchScope::Federation,
        Scope::Live => SearchScope::Live,
    };
    let metrics = replicator.node().metrics().clone();
    let answer = if scope == SearchScope::Live {
        let asked = (wire.deadline_ms != 0).then(|| Duration::from_millis(wire.deadline_ms.into()));
        let asked = match (asked, within) {
            (Some(a), Some(w)) => Some(a.min(w)),
            (a, w) => a.or(w),
        };
        let wait = live::deadline(&replicator.node().config().search, asked);
        live::live(replicator, request, wire, viewer, wait, slot)
            .await
            .map_err(status::search)?
    } else {
        let prepared = meridian_core::search::prepare(replicator.node(), &request, &viewer)
            .map_err(status::search)?;
        let answered = if prepared.work() == Work::Small {
            // Done sooner than a blocking thread would wake up for it.
            prepared.answer(replicator.node(), &replicator, Some(deadline))
        } else {
            // The place goes with the work: it is given back when the
            // search ends, not when a caller that left drops this future.
            tokio::task::spawn_blocking(move || {
                let _slot = slot;
                prepared.answer(replicator.node(), &replicator, Some(deadline))
            })
            .await
            .map_err(status::join)?
        };
        ran_out(&metrics, &answered, capped);
        answered.map_err(status::search)?
    };
    let elapsed = started.elapsed();
    metrics.observe_search(scope, elapsed.as_secs_f64());
    Ok(convert::search_response(answer, elapsed.as_micros() as u64))
}

/// When a search for `viewer` begun at `started` gives up
/// ([`meridian_core::search::time_allowed`]), and whether
/// `search.max_search_ms` is what sets it.
pub(crate) fn search_deadline(
    node: &Node,
    viewer: &Viewer,
    started: Instant,
    within: Option<Duration>,
) -> (Instant, bool) {
    let (allowed, capped) = meridian_core::search::time_allowed(node, viewer, within);
    (started + allowed, capped)
}

/// Counts a search given up at `search.max_search_ms` (`capped`) as a
/// limit hit; one given up because its caller stopped waiting is not.
pub(crate) fn ran_out<T>(metrics: &Metrics, answered: &Result<T, SearchError>, capped: bool) {
    if capped && matches!(answered, Err(SearchError::Deadline)) {
        metrics.limit_hits.inc(Limit::SearchTime);
    }
}

/// Runs blocking node work off the async executor.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, Status>
where
    F: FnOnce() -> Result<T, meridian_core::node::NodeError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(status::join)?
        .map_err(status::node)
}

pub(crate) fn page_size(requested: u32) -> usize {
    if requested == 0 {
        DEFAULT_PAGE as usize
    } else {
        requested as usize
    }
}

#[tonic::async_trait]
impl proto::catalog_server::Catalog for CatalogService {
    async fn search(
        &self,
        request: Request<proto::SearchRequest>,
    ) -> Result<Response<proto::SearchResponse>, Status> {
        let viewer = self.caller(&request)?;
        // A live search answers before the caller's own deadline: peers get
        // at most three quarters of it, the rest is for merging.
        let within = asked_timeout(&request).map(|t| t * 3 / 4);
        let response = self
            .catalog
            .search(request.into_inner(), viewer, within)
            .await?;
        Ok(Response::new(response))
    }

    async fn get_record(
        &self,
        request: Request<proto::GetRecordRequest>,
    ) -> Result<Response<proto::RecordView>, Status> {
        let viewer = self.caller(&request)?;
        let view = self
            .catalog
            .get_record(request.into_inner(), viewer)
            .await?;
        Ok(Response::new(view))
    }

    async fn list_records(
        &self,
        request: Request<proto::ListRecordsRequest>,
    ) -> Result<Response<proto::ListRecordsResponse>, Status> {
        let viewer = self.caller(&request)?;
        let deadline = self.deadline(&request);
        let page = self
            .catalog
            .list_records(request.into_inner(), viewer, deadline)
            .await?;
        Ok(Response::new(page))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_and_bad_ones_are_ignored() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        for bad in ["", "S", "123456789S", "10x", "-1S", "1.5S", "é"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
    }

    /// With `limits.searches` places taken, another caller's search waits a
    /// moment and is refused (and counted); the operator's is not held up.
    #[tokio::test]
    async fn searches_beyond_their_places_are_refused_and_the_operators_run() {
        let (node, replicator, _dir) = crate::test_node(&[("MERIDIAN_LIMITS__SEARCHES", "1")]);
        let search = |viewer: Viewer| {
            search(
                replicator.clone(),
                proto::SearchRequest::default(),
                viewer,
                None,
            )
        };
        let held = search_slot(&node, &Viewer::Anonymous).await.unwrap();
        let refused = search(Viewer::Anonymous).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused}");
        assert!(refused.message().contains("at most 1 at once"), "{refused}");
        assert_eq!(node.metrics().limit_hits.get(Limit::Searches), 1);
        search(node.operator()).await.unwrap();
        drop(held);
        search(Viewer::Anonymous).await.unwrap();
    }

    /// A record id or origin no record could have is refused as invalid,
    /// naming the field, before any work and without echoing it whole; a
    /// valid name of no record is NOT_FOUND, as before.
    #[tokio::test(flavor = "multi_thread")]
    async fn get_record_refuses_names_no_record_could_have() {
        let (_node, replicator, _dir) = crate::test_node(&[]);
        let catalog = Catalog::new(replicator);
        let get = |origin: &str, id: String| {
            catalog.get_record(
                proto::GetRecordRequest {
                    origin: origin.into(),
                    id,
                },
                Viewer::Anonymous,
            )
        };
        let huge = "x".repeat(1 << 20);
        for (origin, id, field) in [
            ("polar", huge.clone(), "id"),
            ("polar", String::new(), "id"),
            ("polar", "a b".to_owned(), "id"),
            (huge.as_str(), "PDC-1".to_owned(), "origin"),
            ("Polar!", "PDC-1".to_owned(), "origin"),
        ] {
            let refused = get(origin, id).await.unwrap_err();
            assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused}");
            assert_eq!(crate::status::field(&refused), Some(field), "{refused}");
            assert!(refused.message().len() < 200, "{}", refused.message().len());
        }
        let missing = get("polar", "PDC-404".into()).await.unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound, "{missing}");
        assert!(missing.message().contains("PDC-404"), "{missing}");
    }

    /// A listing its deadline cuts short sends the records it found, with
    /// a token after the last of them, so that every request gets further
    /// (each scans one entry at least). One that found none is an empty
    /// page whose token goes on past the hidden record it stopped at: the
    /// token is sealed, as every one is, so it names nothing.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_listing_cut_short_sends_what_it_found_and_goes_on_from_there() {
        use base64::Engine as _;
        let (node, replicator, _dir) = crate::test_node(&[]);
        let lines: Vec<String> = ["a-open", "b-hidden", "c-hidden", "d-open", "e-open"]
            .iter()
            .map(|id| {
                let visibility = if id.ends_with("hidden") {
                    "private"
                } else {
                    "public"
                };
                crate::record_line(id, visibility, "earth")
            })
            .collect();
        tokio::task::block_in_place(|| node.import_lines(1, &lines).unwrap());
        let catalog = Catalog::new(replicator);
        let list = |origin: &str, page_token: String, deadline: Instant| {
            catalog.list_records(
                proto::ListRecordsRequest {
                    origin: origin.into(),
                    page_size: 10,
                    page_token,
                    ..Default::default()
                },
                Viewer::Anonymous,
                deadline,
            )
        };
        let ids = |page: &proto::ListRecordsResponse| -> Vec<String> {
            page.records
                .iter()
                .filter_map(|r| r.record.as_ref().map(|r| r.id.clone()))
                .collect()
        };
        // A deadline already passed: one entry per request.
        let mut token = String::new();
        let mut pages = Vec::new();
        let mut tokens = Vec::new();
        for _ in 0..10 {
            let page = list("polar", token, Instant::now()).await.unwrap();
            pages.push(ids(&page));
            token = page.next_page_token;
            if token.is_empty() {
                break;
            }
            tokens.push(token.clone());
        }
        assert_eq!(
            pages,
            [
                vec!["a-open"],
                vec![],
                vec![],
                vec!["d-open"],
                vec!["e-open"]
            ],
            "the hidden run is crossed one empty page at a time"
        );
        // Every token has one form and one length, whatever it stands on.
        for token in &tokens {
            assert!(token.starts_with("p1."), "{token}");
            assert_eq!(token.len(), tokens[0].len(), "{token}");
        }
        // A token belongs to the listing of its origin.
        let elsewhere = list("marine", tokens[1].clone(), Instant::now())
            .await
            .unwrap_err();
        assert_eq!(
            elsewhere.code(),
            tonic::Code::InvalidArgument,
            "{elsewhere}"
        );
        assert_eq!(crate::status::field(&elsewhere), Some("page_token"));
        // A token the caller wrote (the form tokens had before they were
        // sealed) would start after any id it names: refused.
        let plain = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("b-hidden");
        let written = list("polar", plain, Instant::now()).await.unwrap_err();
        assert_eq!(written.code(), tonic::Code::InvalidArgument, "{written}");
        // The token handed out goes on.
        let rest = list(
            "polar",
            tokens[2].clone(),
            Instant::now() + Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(ids(&rest), ["d-open", "e-open"]);
    }

    /// Imports 30,000 records titled "Ice core rN", enough that a search of
    /// all of them runs on a thread of its own, and indexes them.
    fn ice_cores(node: &Node) {
        let lines: Vec<String> = (0..30_000)
            .map(|n| crate::record_line(&format!("r{n:05}"), "public", "earth"))
            .collect();
        let stored = tokio::task::block_in_place(|| {
            let outcome = node.import_lines(1, &lines).unwrap();
            node.catch_up_index(&mut |_| {}).unwrap();
            outcome
        });
        assert_eq!(stored.stored, 30_000, "{:?}", stored.errors.first());
    }

    /// A search for anyone but the operator runs `search.max_search_ms` at
    /// most, whatever deadline its caller names, and is counted when that
    /// bound cuts it; one its caller's own deadline cuts is not counted.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_search_runs_no_longer_than_the_node_allows_but_the_operators() {
        let (node, replicator, _dir) = crate::test_node(&[("MERIDIAN_SEARCH__MAX_SEARCH_MS", "1")]);
        ice_cores(&node);
        let request = || proto::SearchRequest {
            query: "ice OR core".into(),
            facets: true,
            ..Default::default()
        };
        let asked = Some(Duration::from_secs(30));
        let cut = search(replicator.clone(), request(), Viewer::Anonymous, asked)
            .await
            .unwrap_err();
        assert_eq!(cut.code(), tonic::Code::DeadlineExceeded, "{cut}");
        assert_eq!(node.metrics().limit_hits.get(Limit::SearchTime), 1);
        let operators = search(replicator.clone(), request(), node.operator(), asked)
            .await
            .unwrap();
        assert_eq!(operators.total, 30_000);
        let left = search(
            replicator.clone(),
            request(),
            node.operator(),
            Some(Duration::ZERO),
        )
        .await
        .unwrap_err();
        assert_eq!(left.code(), tonic::Code::DeadlineExceeded, "{left}");
        assert_eq!(node.metrics().limit_hits.get(Limit::SearchTime), 1);
    }

    /// An anonymous listing keeps its read slot while its scan runs, even
    /// when the caller has left: a caller that hangs up at once cannot keep
    /// more scans going than there are slots.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_anonymous_listing_keeps_its_slot_until_its_scan_ends() {
        let (node, replicator, _dir) =
            crate::test_node(&[("MERIDIAN_LIMITS__ANONYMOUS_READS", "1")]);
        // Records an anonymous caller may not see: a listing scans them all
        // and answers an empty page.
        let lines: Vec<String> = (0..30_000)
            .map(|n| crate::record_line(&format!("r{n:05}"), "private", "earth"))
            .collect();
        let stored = tokio::task::block_in_place(|| node.import_lines(1, &lines).unwrap());
        assert_eq!(stored.stored, 30_000, "{:?}", stored.errors.first());
        let catalog = Catalog::new(replicator);
        let list = || {
            catalog.list_records(
                proto::ListRecordsRequest {
                    origin: "polar".into(),
                    ..Default::default()
                },
                Viewer::Anonymous,
                Instant::now() + Duration::from_secs(60),
            )
        };
        let started = Instant::now();
        let page = list().await.unwrap();
        let took = started.elapsed();
        assert!(page.records.is_empty(), "{} records", page.records.len());
        assert!(
            took >= Duration::from_millis(10),
            "{took:?}: too short to leave early"
        );

        let left = tokio::time::timeout(Duration::from_millis(1), list()).await;
        assert!(left.is_err(), "a listing of everything took {took:?}");
        assert_eq!(
            catalog.anonymous_reads.available_permits(),
            0,
            "the scan still runs and holds its slot"
        );
        let waited = Instant::now();
        while catalog.anonymous_reads.available_permits() == 0 {
            assert!(
                waited.elapsed() < Duration::from_secs(30),
                "the slot was never given back"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// A search gives up when its caller's deadline passes, and keeps its
    /// place while it runs even when the caller has left: a caller that
    /// hangs up at once cannot start more searches than there are places.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_search_keeps_its_place_until_it_ends_and_ends_at_its_deadline() {
        let (node, replicator, _dir) = crate::test_node(&[("MERIDIAN_LIMITS__SEARCHES", "1")]);
        ice_cores(&node);
        // A thousand hits to read and highlight: long enough that the
        // caller below leaves well before the end.
        let everything = || proto::SearchRequest {
            query: "ice OR core".into(),
            facets: true,
            limit: 1000,
            ..Default::default()
        };
        let search = |within: Option<Duration>| {
            search(replicator.clone(), everything(), Viewer::Anonymous, within)
        };

        // The shorter of two: the first search also opens the columns.
        let mut took = Duration::MAX;
        for _ in 0..2 {
            let started = std::time::Instant::now();
            let whole = search(None).await.unwrap();
            took = took.min(started.elapsed());
            assert_eq!(whole.total, 30_000);
        }

        let given_up = search(Some(Duration::ZERO)).await.unwrap_err();
        assert_eq!(given_up.code(), tonic::Code::DeadlineExceeded, "{given_up}");
        assert!(given_up.message().contains("deadline"), "{given_up}");

        // The caller leaves after a millisecond, well before the end.
        assert!(
            took >= Duration::from_millis(10),
            "{took:?}: too short to leave early"
        );
        let left = tokio::time::timeout(Duration::from_millis(1), search(None)).await;
        assert!(left.is_err(), "a search of everything took {took:?}");
        assert_eq!(
            node.search_slots().available_permits(),
            0,
            "the search still runs and holds its place"
        );
        let waited = std::time::Instant::now();
        while node.search_slots().available_permits() == 0 {
            assert!(
                waited.elapsed() < Duration::from_secs(30),
                "the place was never given back"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}
