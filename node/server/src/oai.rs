//! The OAI-PMH 2.0 data provider at `/oai`
//! (<https://www.openarchives.org/OAI/openarchivesprotocol.html>): all six
//! verbs over GET and POST (`application/x-www-form-urlencoded`), the
//! formats `oai_dc` and `oai_datacite`, sets by discipline, origin and
//! project, `from`/`until` at seconds (and day) granularity, resumption
//! tokens, and persistent deleted records.
//!
//! What is listed, in which order, with which datestamp and whether a
//! harvester sees a record whole or as deleted is decided in the core
//! ([`meridian_core::oai`], with the visibility rule of
//! [`meridian_core::visibility`]); this module checks requests
//! ([`request`]), seals tokens ([`token`]) and writes XML ([`xml`]).
//! Harvesters are anonymous: they see PUBLIC records only. Reads run off
//! the async executor within the node's budget of anonymous reads and each
//! client's request rate; a harvester over either gets HTTP 503 with
//! `Retry-After`, as the protocol provides.

pub mod request;
pub mod token;
pub mod xml;

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Extension, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use meridian_core::node::Node;
use meridian_core::oai::{self, Filter, Item, Position, Set, Status};
use meridian_core::sync::Replicator;

use crate::catalog::Catalog;
use crate::forwarded::ForwardedOrigin;
use crate::limit;
use crate::web::{Arrived, ClientAddr};
use request::{Checked, ListArgs, OaiError, Prefix, Request, Verb};
use token::{Token, TokenKey};
use xml::Xml;

/// Seconds a refused harvester is told to wait.
const RETRY_AFTER_SECS: &str = "2";
/// Largest body of a request by POST, in bytes: a request carries at most
/// [`request::MAX_ARGUMENTS`] arguments of [`request::MAX_VALUE_BYTES`] each.
pub const MAX_POST_BYTES: usize = 64 * 1024;
/// How long the first page of a list may spend counting the rest for
/// `completeListSize` (optional in OAI-PMH: omitted when the count does
/// not finish), so that a large store's first page does not hold a worker
/// for the whole request budget.
const COUNT_BUDGET: std::time::Duration = std::time::Duration::from_secs(1);

/// The provider's state.
pub struct Provider {
    node: Arc<Node>,
    tokens: TokenKey,
    page_size: usize,
    plaintext: bool,
    /// The anonymous reads and request rates the Catalog keeps: one
    /// budget for gRPC, the HTTP API and harvests alike.
    catalog: Arc<Catalog>,
    /// How long one request may scan.
    budget: Duration,
    /// The sets of the holdings as they last stood when asked for.
    sets: Mutex<SetsFound>,
    /// Lists the deadline cut short before they found a record: by the
    /// request's token (its arguments and start), where the scan got to,
    /// so that the same request asked again goes on from there. At most
    /// [`MAX_LISTS_UNDER_WAY`], the oldest dropped first.
    under_way: Mutex<VecDeque<(Token, Position)>>,
}

/// Most lists cut short before their first record that are remembered.
const MAX_LISTS_UNDER_WAY: usize = 64;

/// The sets of the PUBLIC records at one state of the holdings, as far as
/// the scan for them went.
#[derive(Default)]
struct SetsFound {
    /// The holdings they were read from; `None` before the first ListSets.
    stamp: Option<oai::Stamp>,
    /// Where the scan stopped, and whether it read everything stored.
    reached: Position,
    done: bool,
    sets: BTreeSet<Set>,
}

/// The routes of the provider: `/oai` (GET and POST) and the schema of its
/// provenance records at `/oai/provenance.xsd`.
pub fn router(replicator: Arc<Replicator>, catalog: Arc<Catalog>) -> Router {
    routes(Provider::new(replicator.node().clone(), catalog))
}

fn routes(provider: Provider) -> Router {
    Router::new()
        .route("/oai", get(get_oai).post(post_oai))
        .route("/oai/provenance.xsd", get(provenance_schema))
        .with_state(Arc::new(provider))
}

impl Provider {
    fn new(node: Arc<Node>, catalog: Arc<Catalog>) -> Self {
        let config = node.config();
        Self {
            tokens: TokenKey::new(node.key().derive_secret("oai resumption token").as_slice()),
            page_size: config.oai.page_size,
            plaintext: config.http.plaintext,
            catalog,
            // Leave room to write the answer inside the request timeout.
            budget: Duration::from_secs(config.limits.request_timeout_secs) * 3 / 4,
            sets: Mutex::default(),
            under_way: Mutex::default(),
            node,
        }
    }
}

async fn provenance_schema() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        xml::PROVENANCE_XSD,
    )
}

async fn get_oai(
    State(provider): State<Arc<Provider>>,
    client: ClientAddr,
    arrived: Arrived,
    forwarded: Option<Extension<ForwardedOrigin>>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    // One past the most a request may carry, so too many is still seen.
    let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .take(request::MAX_ARGUMENTS + 1)
        .collect();
    let forwarded = forwarded.map(|Extension(origin)| origin);
    let base_url = provider.base_url(&uri, &headers, forwarded.as_ref());
    serve(provider, client, arrived, base_url, pairs).await
}

async fn post_oai(
    State(provider): State<Arc<Provider>>,
    client: ClientAddr,
    arrived: Arrived,
    forwarded: Option<Extension<ForwardedOrigin>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Read first (bounded), so a client still sending its body gets the
    // answer rather than a reset stream.
    let body = match crate::web::read_body(body, MAX_POST_BYTES).await {
        Ok(body) => body,
        Err(crate::web::BodyError::TooLarge) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("an OAI-PMH request by POST carries at most {MAX_POST_BYTES} bytes\n"),
            )
                .into_response()
        }
        Err(crate::web::BodyError::TooSlow) => {
            return (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request's body did not arrive whole within {} s\n",
                    crate::web::BODY_ARRIVAL.as_secs()
                ),
            )
                .into_response()
        }
        Err(crate::web::BodyError::Broken(why)) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("the request's body could not be read: {why}\n"),
            )
                .into_response()
        }
    };
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    // An empty body carries no arguments whatever its type (clients send
    // none with it): the request then lacks a verb.
    if !form && !body.is_empty() {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "OAI-PMH requests by POST must be application/x-www-form-urlencoded\n",
        )
            .into_response();
    }
    let pairs = form_urlencoded::parse(&body)
        .into_owned()
        .take(request::MAX_ARGUMENTS + 1)
        .collect();
    let forwarded = forwarded.map(|Extension(origin)| origin);
    let base_url = provider.base_url(&uri, &headers, forwarded.as_ref());
    serve(provider, client, arrived, base_url, pairs).await
}

/// 503 with Retry-After: the protocol's way to tell a harvester to wait.
fn busy(why: String) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, RETRY_AFTER_SECS)],
        why,
    )
        .into_response()
}

async fn serve(
    provider: Arc<Provider>,
    client: ClientAddr,
    arrived: Arrived,
    base_url: String,
    pairs: Vec<(String, String)>,
) -> Response {
    // The request's budget, and no later than the listener's own timeout
    // allows, which counts from the request's arrival: time spent waiting
    // for a place or a slot counts, so the answer is this provider's (a
    // page and how to go on, or a 503 with Retry-After), never the
    // listener cutting the request off without one.
    let deadline = (Instant::now() + provider.budget).min(provider.catalog.answer_by(arrived.0));
    if let Err(status) = provider
        .catalog
        .admit(&limit::client_at(Some(client.0), None))
    {
        return busy(format!("{}\n", status.message()));
    }
    let slot = match provider.catalog.anonymous_read_slot().await {
        Ok(slot) => slot,
        Err(status) => return busy(format!("{}\n", status.message())),
    };
    let work = provider.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        work.answer(&base_url, pairs, deadline)
    })
    .await;
    match answer {
        Ok(Ok(body)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
            body,
        )
            .into_response(),
        Ok(Err(Fault::Busy(why))) => busy(why),
        Ok(Err(Fault::Node(e))) => {
            let id = rand::random::<u32>();
            tracing::error!(error = %e, fault = id, "oai request failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal error (id {id:08x})\n"),
            )
                .into_response()
        }
        Err(e) => {
            let id = rand::random::<u32>();
            tracing::error!(error = %e, fault = id, "oai worker failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal error (id {id:08x})\n"),
            )
                .into_response()
        }
    }
}

/// Why a request got no OAI-PMH answer.
enum Fault {
    /// The scan found nothing before its deadline: ask again.
    Busy(String),
    /// The node failed (logged with an id; the harvester learns no more).
    Node(meridian_core::node::NodeError),
}

impl From<meridian_core::node::NodeError> for Fault {
    fn from(e: meridian_core::node::NodeError) -> Self {
        Fault::Node(e)
    }
}

impl From<meridian_core::store::StoreError> for Fault {
    fn from(e: meridian_core::store::StoreError) -> Self {
        Fault::Node(e.into())
    }
}

/// A response being written.
struct Draft {
    xml: Xml,
}

impl Provider {
    /// `baseURL`: the configured one, else the request's scheme and host
    /// with `/oai`, as a trusted proxy forwarded them where one did. The
    /// host is the request's authority (HTTP/2 sends it so, with no `Host`
    /// header), else its `Host`.
    fn base_url(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        forwarded: Option<&ForwardedOrigin>,
    ) -> String {
        if let Some(url) = &self.node.config().oai.base_url {
            return url.clone();
        }
        let forwarded = forwarded.cloned().unwrap_or_default();
        let plausible =
            |host: &str| crate::forwarded::plausible_host(host).then(|| host.to_owned());
        let host = forwarded
            .host
            .or_else(|| uri.authority().and_then(|a| plausible(a.as_str())))
            .or_else(|| plausible(headers.get(header::HOST)?.to_str().ok()?))
            .unwrap_or_else(|| self.node.config().node_id.to_string());
        let scheme = forwarded
            .scheme
            .unwrap_or(if self.plaintext { "http" } else { "https" });
        format!("{scheme}://{host}/oai")
    }

    fn node_id(&self) -> &str {
        self.node.node_id()
    }

    /// Answers one request: the XML of the response, or a fault.
    fn answer(
        &self,
        base_url: &str,
        pairs: Vec<(String, String)>,
        deadline: Instant,
    ) -> Result<Vec<u8>, Fault> {
        let checked = match request::check(pairs) {
            Ok(checked) => checked,
            Err((verb, echo, error)) => return Ok(self.error(base_url, verb, &echo, &error)),
        };
        match self.verb(base_url, &checked, deadline) {
            Ok(body) => Ok(body),
            Err(Answer::Oai(error)) => {
                Ok(self.error(base_url, Some(checked.verb), &checked.echo, &error))
            }
            Err(Answer::Fault(fault)) => Err(fault),
        }
    }

    /// The start of every response, up to and including `request`.
    fn begin(&self, base_url: &str, verb: Option<Verb>, echo: &[(String, String)]) -> Draft {
        let mut xml = Xml::new();
        let location = format!("{} {}", xml::OAI_NS, xml::OAI_XSD);
        xml.open(
            "OAI-PMH",
            &[
                ("xmlns", xml::OAI_NS),
                ("xmlns:xsi", xml::XSI_NS),
                ("xsi:schemaLocation", &location),
            ],
        );
        xml.leaf("responseDate", &[], &request::datestamp(now()));
        let mut attrs: Vec<(&str, &str)> = Vec::new();
        if let Some(verb) = verb {
            attrs.push(("verb", verb.name()));
            attrs.extend(echo.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        xml.leaf("request", &attrs, base_url);
        Draft { xml }
    }

    fn end(mut response: Draft) -> Vec<u8> {
        response.xml.close("OAI-PMH");
        response.xml.finish()
    }

    fn error(
        &self,
        base_url: &str,
        verb: Option<Verb>,
        echo: &[(String, String)],
        error: &OaiError,
    ) -> Vec<u8> {
        let (verb, echo) = if error.echoes_arguments() {
            (verb, echo)
        } else {
            (None, &[][..])
        };
        let mut response = self.begin(base_url, verb, echo);
        response
            .xml
            .leaf("error", &[("code", error.code())], error.message());
        Self::end(response)
    }

    fn verb(
        &self,
        base_url: &str,
        checked: &Checked,
        deadline: Instant,
    ) -> Result<Vec<u8>, Answer> {
        match &checked.request {
            Request::Identify => self.identify(base_url, checked),
            Request::ListMetadataFormats { identifier } => {
                if let Some(identifier) = identifier {
                    self.find(identifier)?;
                }
                let mut response = self.begin(base_url, Some(checked.verb), &checked.echo);
                let xml = &mut response.xml;
                xml.open("ListMetadataFormats", &[]);
                for (prefix, schema, namespace) in [
                    ("oai_dc", xml::OAI_DC_XSD, xml::OAI_DC_NS),
                    ("oai_datacite", xml::OAI_DATACITE_XSD, xml::OAI_DATACITE_NS),
                ] {
                    xml.open("metadataFormat", &[]);
                    xml.leaf("metadataPrefix", &[], prefix);
                    xml.leaf("schema", &[], schema);
                    xml.leaf("metadataNamespace", &[], namespace);
                    xml.close("metadataFormat");
                }
                xml.close("ListMetadataFormats");
                Ok(Self::end(response))
            }
            Request::ListSets { resumption_token } => {
                if resumption_token.is_some() {
                    return Err(Answer::Oai(OaiError::BadResumptionToken(
                        "this repository lists every set in one response and issues no resumptionToken for ListSets".into(),
                    )));
                }
                let sets = self.sets(deadline)?;
                if sets.is_empty() {
                    return Err(Answer::Oai(OaiError::NoSetHierarchy(
                        "this repository holds no public records now, so it has no sets".into(),
                    )));
                }
                let mut response = self.begin(base_url, Some(checked.verb), &checked.echo);
                let xml = &mut response.xml;
                xml.open("ListSets", &[]);
                for set in &sets {
                    xml.open("set", &[]);
                    xml.leaf("setSpec", &[], &request::set_spec(set));
                    xml.leaf("setName", &[], &request::set_name(set));
                    xml.close("set");
                }
                xml.close("ListSets");
                Ok(Self::end(response))
            }
            Request::GetRecord { identifier, prefix } => {
                let item = self.find(identifier)?;
                let mut response = self.begin(base_url, Some(checked.verb), &checked.echo);
                response.xml.open("GetRecord", &[]);
                self.record(&mut response.xml, base_url, &item, *prefix, true);
                response.xml.close("GetRecord");
                Ok(Self::end(response))
            }
            Request::List { records, args } => {
                let token = Token {
                    records: *records,
                    args: args.clone(),
                    position: Position::default(),
                    cursor: 0,
                    complete: None,
                };
                self.list(base_url, checked, token, false, deadline)
            }
            Request::Resume { records, token } => {
                let token = self
                    .tokens
                    .open(token)
                    .map_err(|e| Answer::Oai(OaiError::BadResumptionToken(e)))?;
                if token.records != *records {
                    let (issued, used) = if token.records {
                        ("ListRecords", "ListIdentifiers")
                    } else {
                        ("ListIdentifiers", "ListRecords")
                    };
                    return Err(Answer::Oai(OaiError::BadResumptionToken(format!(
                        "this resumptionToken continues a {issued} list, not {used}"
                    ))));
                }
                self.list(base_url, checked, token, true, deadline)
            }
        }
    }

    fn identify(&self, base_url: &str, checked: &Checked) -> Result<Vec<u8>, Answer> {
        let config = self.node.config();
        let earliest = self
            .node
            .store()
            .first_arrival()
            .map_err(|e| Answer::Fault(e.into()))?
            .map_or_else(now, |a| a.stored_at);
        let name = config
            .oai
            .repository_name
            .clone()
            .unwrap_or_else(|| format!("Meridian node {}", self.node_id()));
        let email = config
            .oai
            .admin_email
            .clone()
            .unwrap_or_else(|| format!("meridian@{}.invalid", self.node_id()));
        let mut response = self.begin(base_url, Some(checked.verb), &checked.echo);
        let xml = &mut response.xml;
        xml.open("Identify", &[]);
        xml.leaf("repositoryName", &[], &name);
        xml.leaf("baseURL", &[], base_url);
        xml.leaf("protocolVersion", &[], "2.0");
        xml.leaf("adminEmail", &[], &email);
        xml.leaf("earliestDatestamp", &[], &request::datestamp(earliest));
        xml.leaf("deletedRecord", &[], "persistent");
        xml.leaf("granularity", &[], "YYYY-MM-DDThh:mm:ssZ");
        xml.close("Identify");
        Ok(Self::end(response))
    }

    /// The record an identifier names, as a harvester may see it.
    fn find(&self, identifier: &str) -> Result<Item, Answer> {
        let unknown = || {
            Answer::Oai(OaiError::IdDoesNotExist(format!(
                "no record {identifier} in this repository"
            )))
        };
        let (origin, id) =
            request::parse_identifier(self.node_id(), identifier).ok_or_else(unknown)?;
        oai::get(&self.node, &origin, &id)
            .map_err(|e| Answer::Fault(e.into()))?
            .ok_or_else(unknown)
    }

    /// Every set of a record PUBLIC now. The sets are kept while the
    /// holdings stay as they were read; once anything was stored since
    /// (a narrowed or withdrawn record included), they are read again from
    /// the start, so a set none of whose records a harvester may still see
    /// is no longer named. A scan the deadline cuts short is continued by
    /// the next ListSets while the holdings stay the same.
    fn sets(&self, deadline: Instant) -> Result<BTreeSet<Set>, Answer> {
        // Taken before the scan: what is stored during it changes the
        // stamp, and the next ListSets reads again.
        let stamp = oai::Stamp::of(&self.node).map_err(|e| Answer::Fault(e.into()))?;
        let mut found = self.sets.lock().unwrap_or_else(|p| p.into_inner());
        if found.stamp.as_ref() != Some(&stamp) {
            *found = SetsFound {
                stamp: Some(stamp),
                ..SetsFound::default()
            };
        }
        if !found.done {
            let SetsFound { reached, sets, .. } = &mut *found;
            let (at, done) = oai::sets_from(&self.node, *reached, sets, deadline)
                .map_err(|e| Answer::Fault(e.into()))?;
            found.reached = at;
            found.done = done;
        }
        if !found.done {
            return Err(Answer::Fault(Fault::Busy(
                "the sets could not be read in time; retry the same request\n".into(),
            )));
        }
        Ok(found.sets.clone())
    }

    /// Where the list `asked` got to before a deadline cut it short, if it
    /// did: taken out of [`Provider::under_way`].
    fn resume_from(&self, asked: &Token) -> Option<Position> {
        let mut under_way = self.under_way.lock().unwrap_or_else(|p| p.into_inner());
        let at = under_way.iter().position(|(key, _)| key == asked)?;
        under_way.remove(at).map(|(_, position)| position)
    }

    /// Records that the list `asked` got to `reached` before its deadline.
    fn remember(&self, asked: Token, reached: Position) {
        let mut under_way = self.under_way.lock().unwrap_or_else(|p| p.into_inner());
        if under_way.len() >= MAX_LISTS_UNDER_WAY {
            under_way.pop_front();
        }
        under_way.push_back((asked, reached));
    }

    fn list(
        &self,
        base_url: &str,
        checked: &Checked,
        token: Token,
        resumed: bool,
        deadline: Instant,
    ) -> Result<Vec<u8>, Answer> {
        let ListArgs {
            prefix,
            set,
            from,
            until,
            ..
        } = token.args.clone();
        let filter = Filter { from, until, set };
        // Counted once, when the list begins: a later page of a list whose
        // count did not finish goes without, rather than count again.
        let count = (!resumed).then(|| Instant::now() + COUNT_BUDGET);
        // A request asked again after its scan was cut short before the
        // first record starts where that scan stopped: nothing it passed
        // matched, and nothing stored since comes before it.
        let start = self.resume_from(&token).unwrap_or(token.position);
        let scan = oai::scan(&self.node, start, &filter, self.page_size, count, deadline)
            .map_err(|e| Answer::Fault(e.into()))?;
        if scan.items.is_empty() {
            if let (true, Some(reached)) = (scan.cut_short, scan.next) {
                self.remember(token, reached);
                return Err(Answer::Fault(Fault::Busy(
                    "the list could not be read in time; retry the same request\n".into(),
                )));
            }
            let why = if resumed {
                "no more records match: those that remained were withdrawn since the list began"
            } else {
                "no records match the request"
            };
            return Err(Answer::Oai(OaiError::NoRecordsMatch(why.into())));
        }
        let sent = token.cursor + scan.items.len() as u64;
        let complete = token
            .complete
            .or_else(|| scan.remaining.map(|rest| sent + rest));
        let mut response = self.begin(base_url, Some(checked.verb), &checked.echo);
        let records = token.records;
        let container = if records {
            "ListRecords"
        } else {
            "ListIdentifiers"
        };
        response.xml.open(container, &[]);
        for item in &scan.items {
            if records {
                self.record(&mut response.xml, base_url, item, prefix, true);
            } else {
                self.header(&mut response.xml, item);
            }
        }
        let cursor = token.cursor.to_string();
        let size = complete.filter(|&n| n > 0).map(|n| n.to_string());
        let mut attrs: Vec<(&str, &str)> = Vec::new();
        if let Some(size) = &size {
            attrs.push(("completeListSize", size.as_str()));
        }
        attrs.push(("cursor", cursor.as_str()));
        match scan.next {
            Some(position) => {
                let next = self.tokens.seal(&Token {
                    position,
                    cursor: sent,
                    complete,
                    ..token
                });
                response.xml.leaf("resumptionToken", &attrs, &next);
            }
            // The last page of a list that took several: an empty token.
            None if resumed => response.xml.leaf("resumptionToken", &attrs, ""),
            None => {}
        }
        response.xml.close(container);
        Ok(Self::end(response))
    }

    fn header(&self, xml: &mut Xml, item: &Item) {
        let deleted = matches!(item.status, Status::Deleted { .. });
        let attrs: &[(&str, &str)] = if deleted {
            &[("status", "deleted")]
        } else {
            &[]
        };
        xml.open("header", attrs);
        xml.leaf(
            "identifier",
            &[],
            &request::identifier(self.node_id(), &item.origin, &item.id),
        );
        xml.leaf("datestamp", &[], &request::datestamp(item.datestamp));
        for set in item.sets() {
            xml.leaf("setSpec", &[], &request::set_spec(&set));
        }
        xml.close("header");
    }

    fn record(&self, xml: &mut Xml, base_url: &str, item: &Item, prefix: Prefix, about: bool) {
        xml.open("record", &[]);
        self.header(xml, item);
        if let Status::Live(view) = &item.status {
            xml.open("metadata", &[]);
            match prefix {
                Prefix::OaiDc => xml::oai_dc(xml, &view.record),
                Prefix::OaiDatacite => xml::oai_datacite(xml, &view.record),
            }
            xml.close("metadata");
            if about {
                xml.open("about", &[]);
                xml::provenance(
                    xml,
                    &item.origin,
                    item.log_index.get(),
                    view.record.version,
                    &view.verified_key_id,
                    &format!("{base_url}/provenance.xsd"),
                );
                xml.close("about");
            }
        }
        xml.close("record");
    }
}

/// How a verb ended when not with its response.
enum Answer {
    Oai(OaiError),
    Fault(Fault),
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::ClientConn;
    use axum::extract::ConnectInfo;
    use tower::ServiceExt;

    /// The provider of a new node, behind the server's own body limit.
    fn provider() -> (Router, Arc<Node>, tempfile::TempDir) {
        provider_with(|_| {})
    }

    /// [`provider`], its settings changed by `change`.
    fn provider_with(change: impl FnOnce(&mut Provider)) -> (Router, Arc<Node>, tempfile::TempDir) {
        let (node, replicator, dir) = crate::test_node(&[]);
        let catalog = Arc::new(Catalog::new(replicator.clone()));
        let limit = node.config().limits.max_message_bytes;
        let mut provider = Provider::new(node.clone(), catalog);
        change(&mut provider);
        let router = routes(provider).layer(axum::extract::DefaultBodyLimit::max(limit));
        (router, node, dir)
    }

    /// A request's time counts from its arrival at the listener, as the
    /// listener's own timeout does: one that waited there for most of it
    /// gets the provider's 503 and Retry-After in time, not the listener
    /// cutting it off without an answer.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_list_answers_by_the_deadline_counted_from_its_arrival() {
        let (router, node, _dir) = provider();
        let lines: Vec<String> = (0..3)
            .map(|i| crate::record_line(&format!("OPEN-{i}"), "public", "glaciology"))
            .collect();
        node.import_lines(1, &lines).unwrap();
        let list = "verb=ListIdentifiers&metadataPrefix=oai_dc".to_owned();
        let (status, body) = post(&router, list.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("OPEN-2"), "{body}");
        let timeout = Duration::from_secs(node.config().limits.request_timeout_secs);
        let waited = Instant::now() - timeout;
        let (status, body) = post_arrived(&router, list, waited).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(body.contains("retry the same request"), "{body}");
    }

    /// A list whose first record lies past what one request's budget can
    /// scan (here a budget of nothing: one entry per request) is answered
    /// "retry the same request"; each retry goes on from where the one
    /// before stopped, so the record is listed in the end. Before, every
    /// retry began again at the start and the list never began.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_list_cut_short_before_its_first_record_goes_on_when_asked_again() {
        let (router, node, _dir) = provider_with(|p| p.budget = Duration::ZERO);
        let mut lines: Vec<String> = (0..8)
            .map(|i| crate::record_line(&format!("HIDDEN-{i}"), "private", "glaciology"))
            .collect();
        lines.push(crate::record_line("OPEN", "public", "glaciology"));
        node.import_lines(1, &lines).unwrap();
        let list = |prefix: &str| {
            let router = router.clone();
            let body = format!("verb=ListIdentifiers&metadataPrefix={prefix}");
            async move { post(&router, body).await }
        };
        // How many retries a list takes to reach the open record.
        let mut retries = 0;
        let listed = loop {
            let (status, body) = list("oai_datacite").await;
            if status == StatusCode::OK {
                break body;
            }
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            assert!(body.contains("retry the same request"), "{body}");
            retries += 1;
            assert!(retries <= 12, "no progress after {retries} requests");
        };
        assert!(listed.contains("OPEN"), "{listed}");
        assert!(!listed.contains("HIDDEN"), "{listed}");
        // Each list goes on from where it stopped, apart from the others:
        // another list asked for meanwhile starts at the beginning, and
        // takes nothing from this one.
        for _ in 0..retries {
            assert_eq!(list("oai_dc").await.0, StatusCode::SERVICE_UNAVAILABLE);
        }
        assert_eq!(
            list("oai_datacite").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let (status, listed) = list("oai_dc").await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        assert!(listed.contains("OPEN"), "{listed}");
    }

    async fn post(router: &Router, body: String) -> (StatusCode, String) {
        post_arrived(router, body, Instant::now()).await
    }

    /// [`post`] of a request that reached the listener at `arrived`.
    async fn post_arrived(router: &Router, body: String, arrived: Instant) -> (StatusCode, String) {
        let mut request = axum::http::Request::post("/oai")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .extension(Arrived(arrived))
            .body(axum::body::Body::from(body))
            .unwrap();
        request.extensions_mut().insert(ConnectInfo(ClientConn {
            addr: "127.0.0.1:4000".parse().unwrap(),
            activity: None,
        }));
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// A request by POST is a few KiB; a body past [`MAX_POST_BYTES`] is
    /// refused as too large, not read on to the server's limit.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_post_body_past_the_bound_is_refused_as_too_large() {
        let (router, _node, _dir) = provider();
        let (status, body) = post(&router, "verb=Identify".into()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("<Identify>"), "{body}");

        let padded = format!("verb=Identify&x={}", "a".repeat(MAX_POST_BYTES));
        let (status, body) = post(&router, padded).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert!(
            body.contains(&format!("at most {MAX_POST_BYTES} bytes")),
            "{body}"
        );
    }

    /// A set is named while a harvester may see one of its records: once
    /// the only PUBLIC record of a discipline is narrowed, and the only one
    /// of another withdrawn, ListSets names neither, so a set's name does
    /// not tell that records of it are still held.
    #[tokio::test(flavor = "multi_thread")]
    async fn list_sets_names_only_sets_of_records_public_now() {
        let (router, node, _dir) = provider();
        async fn list_sets(router: &Router) -> String {
            let (status, body) = post(router, "verb=ListSets".into()).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        }
        node.import_lines(
            1,
            &[
                crate::record_line("OPEN", "public", "oceanography"),
                crate::record_line("NARROWED", "public", "glaciology"),
                crate::record_line("WITHDRAWN", "public", "volcanology"),
            ],
        )
        .unwrap();
        let listed = list_sets(&router).await;
        for set in [
            "discipline:oceanography",
            "discipline:glaciology",
            "discipline:volcanology",
        ] {
            assert!(
                listed.contains(&format!("<setSpec>{set}</setSpec>")),
                "{set}: {listed}"
            );
        }

        node.import_lines(
            1,
            &[crate::record_line("NARROWED", "federation", "glaciology")],
        )
        .unwrap();
        let listed = list_sets(&router).await;
        assert!(!listed.contains("glaciology"), "{listed}");
        assert!(
            listed.contains("<setSpec>discipline:volcanology</setSpec>"),
            "{listed}"
        );

        node.delete(&meridian_core::ids::RecordId::parse("WITHDRAWN").unwrap())
            .unwrap();
        let listed = list_sets(&router).await;
        assert!(!listed.contains("volcanology"), "{listed}");
        assert!(
            listed.contains("<setSpec>discipline:oceanography</setSpec>"),
            "{listed}"
        );

        // Nothing PUBLIC left: no sets at all.
        node.delete(&meridian_core::ids::RecordId::parse("OPEN").unwrap())
            .unwrap();
        let listed = list_sets(&router).await;
        assert!(listed.contains("noSetHierarchy"), "{listed}");
        assert!(!listed.contains("<setSpec>"), "{listed}");
    }
}
