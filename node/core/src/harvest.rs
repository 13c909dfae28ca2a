//! Harvesting [OAI-PMH 2.0](https://www.openarchives.org/OAI/openarchivesprotocol.html)
//! providers into this node's holdings (`docs/harvest.md`).
//!
//! A source is a provider's base URL with a metadata prefix (`oai_datacite`
//! or `oai_dc`) and optionally a set. A run lists the records changed since
//! the last complete run (`from`, at the provider's granularity, from
//! Identify), follows resumption tokens to the end, imports each page
//! through the node's own import (so unchanged records are no-ops and every
//! stored record is signed and logged), turns deleted records into signed
//! tombstones, and reports records that cannot be made valid by OAI
//! identifier without stopping. After every page the source's state (the
//! next token and the `from` of the list) is stored durably, so a run cut
//! short by a crash or a network failure resumes where it stopped; a
//! provider that no longer knows the token (`badResumptionToken`) gets the
//! list again from `from`, and the pages seen twice change nothing. A
//! provider whose list does not move on (the token it was asked with, a
//! token it gave before, [`MAX_EMPTY_PAGES`] pages in a row without a
//! record, or [`MAX_STALE_PAGES`] in a row without a record it had not
//! sent before) stops the run, and so does a list that goes on past
//! [`MAX_RUN_PAGES`]; the next run continues that one.
//!
//! HTTP is not done here: the edge supplies a [`Fetch`].

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::crosswalk::{self, Format, Outcome, XmlRecords};
use crate::ids::RecordId;
use crate::node::{Node, NodeError};
use crate::proto::Visibility;
use crate::record::{self, RecordError};
use crate::store::{StoreError, Table};

/// The store table of sources and their state, by name.
pub const TABLE: &str = "harvest_sources_v1";
/// Version of the stored form; another is refused.
const FORMAT_VERSION: u32 = 1;
/// Most sources a node keeps.
pub const MAX_SOURCES: usize = 256;
/// Largest response body accepted from a provider, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;
/// Rejections kept in a source's status (the newest).
pub const KEPT_REJECTIONS: usize = 20;
/// Times one run starts its list again after `badResumptionToken`.
const MAX_RESTARTS: u32 = 3;
/// Pages in a row without a record after which a run stops: a provider may
/// send a few empty pages (a set filtered after paging), but one that sends
/// only empty pages with fresh tokens would keep a run going for ever.
pub const MAX_EMPTY_PAGES: u32 = 100;
/// Pages in a row that bring no OAI identifier the run has not seen before
/// after which a run stops: a provider that sends the same records again
/// and again under fresh tokens would keep a run going for ever, and runs
/// are one at a time, so every other source would wait.
pub const MAX_STALE_PAGES: u32 = 100;
/// Pages one run fetches at most; a list that goes on stops there, and the
/// next run continues it. The bounds above catch lists that repeat
/// themselves; this one catches a list that never repeats (fresh tokens,
/// fresh identifiers, for ever), and bounds what a run keeps of its tokens
/// (some 5 MB) and how full its filter of identifiers gets. An honest list
/// of 10,000,000 records fits in one run at 100 records a page.
pub const MAX_RUN_PAGES: u64 = 100_000;
/// Bits of the filter of identifiers a run has seen ([`SeenIds`]): 8 MiB.
const SEEN_BITS: usize = 1 << 26;
/// Probes per identifier in that filter.
const SEEN_PROBES: u32 = 7;
/// Key of the hash that filter probes from: fixed, so that a run's
/// verdicts do not depend on the process.
const SEEN_SEED: u128 = 0x6d65_7269_6469_616e_2d73_6565_6e2d_6964;
/// The metadata prefixes a source may use.
pub const PREFIXES: [&str; 2] = ["oai_datacite", "oai_dc"];

/// Why a harvest call failed.
#[derive(Debug, thiserror::Error)]
pub enum HarvestError {
    /// A source's settings break a rule; names the setting.
    #[error("{0}")]
    Invalid(#[from] RecordError),
    /// No source of that name.
    #[error("no harvest source `{0}`")]
    NotFound(String),
    /// A source of that name exists already.
    #[error("a harvest source `{0}` exists already")]
    Exists(String),
    /// The source is being harvested now.
    #[error("harvest source `{0}` is running")]
    Running(String),
    /// The provider could not be reached or answered badly (HTTP).
    #[error("{0}")]
    Fetch(String),
    /// The provider answered with an OAI-PMH error or a document that is not OAI-PMH.
    #[error("{0}")]
    Protocol(String),
    /// The run fetched [`MAX_RUN_PAGES`] pages and the list goes on; the
    /// next run, due at once, continues it.
    #[error("{0}")]
    PageCap(String),
    /// The stored state is from an unknown format version.
    #[error(
        "harvest source `{name}`: stored in format {version}; this release reads {FORMAT_VERSION}"
    )]
    Version { name: String, version: u32 },
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Gets a provider's response; implemented at the edge over HTTP(S).
#[async_trait::async_trait]
pub trait Fetch: Send + Sync {
    /// The body of `url`, redirects followed, `503` with `Retry-After`
    /// honoured within bounds, at most [`MAX_RESPONSE_BYTES`]. `ca_cert` is
    /// a PEM file of extra roots to trust ("" for none).
    async fn get(&self, url: &str, ca_cert: &str) -> Result<Vec<u8>, String>;
}

/// A provider to harvest, as the operator added it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub name: String,
    /// The base URL (`https://repo.example.org/oai`).
    pub url: String,
    /// A set spec, or "" for the whole repository.
    pub set: String,
    /// `oai_datacite` or `oai_dc`.
    pub prefix: String,
    /// Seconds between scheduled runs; 0: only `harvest run`.
    pub every_secs: u64,
    /// Visibility given to the records ("" keeps the node's default).
    pub visibility: String,
    pub groups: Vec<String>,
    /// PEM file of roots to trust for this provider's certificate ("" for none).
    pub ca_cert: String,
}

/// Where a source's harvesting stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The provider's datestamp granularity (`YYYY-MM-DD` or `YYYY-MM-DDThh:mm:ssZ`).
    pub granularity: String,
    /// `from` of the list under way, or of the next run ("" for everything).
    pub from: String,
    /// The resumption token that continues the list under way ("" when none is).
    pub token: String,
    /// The provider's time at the first page of the list under way: the next run's `from`.
    pub list_started: String,
    /// Whether a run stopped before its list ended (it resumes at `token`).
    pub interrupted: bool,
    /// Whether the last run stopped at [`MAX_RUN_PAGES`] with the list going
    /// on: the next run is due at once, scheduled or not.
    #[serde(default)]
    pub continues: bool,
    pub last_started: String,
    pub last_finished: String,
    pub next_run: String,
    /// Counts of the last run (of the run under way while it runs).
    pub added: u64,
    pub changed: u64,
    pub unchanged: u64,
    pub deleted: u64,
    pub rejected: u64,
    /// Changes made to records to make them valid.
    pub normalised: u64,
    pub pages: u64,
    pub last_error: String,
    /// The newest rejections: `OAI identifier: field: reason`.
    pub rejections: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    source: Source,
    state: State,
}

/// Runs and keeps the node's harvest sources.
pub struct Harvester {
    node: Arc<Node>,
    fetch: Arc<dyn Fetch>,
    table: Table,
    running: Mutex<BTreeSet<String>>,
    /// Pages one run fetches at most ([`MAX_RUN_PAGES`]).
    run_pages: u64,
}

/// Marks a source as running until dropped.
struct Claim<'a> {
    harvester: &'a Harvester,
    name: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        lock(&self.harvester.running).remove(&self.name);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A record of a harvested page waiting to be imported with the rest.
struct Pending {
    oai_id: String,
    record: crate::proto::DatasetRecord,
    /// Not held here before this page.
    new: bool,
    /// Changes made to it to make it valid.
    changes: u64,
}

impl Harvester {
    pub fn new(node: Arc<Node>, fetch: Arc<dyn Fetch>) -> Result<Self, HarvestError> {
        let table = node.store().table(TABLE)?;
        Ok(Self {
            node,
            fetch,
            table,
            running: Mutex::new(BTreeSet::new()),
            run_pages: MAX_RUN_PAGES,
        })
    }

    /// A harvester whose runs fetch at most `pages` pages.
    #[cfg(test)]
    fn with_run_pages(self, pages: u64) -> Self {
        Self {
            run_pages: pages,
            ..self
        }
    }

    /// Adds a source after checking its settings. Its first run is due now.
    pub fn add(&self, mut source: Source) -> Result<(), HarvestError> {
        check_source(&mut source)?;
        if self.load(&source.name)?.is_some() {
            return Err(HarvestError::Exists(source.name));
        }
        if self.table.iter().count() >= MAX_SOURCES {
            return Err(
                RecordError::new("name", format!("at most {MAX_SOURCES} harvest sources")).into(),
            );
        }
        let state = State {
            next_run: if source.every_secs > 0 {
                crate::date::now_rfc3339()
            } else {
                String::new()
            },
            ..Default::default()
        };
        let stored = encode(&source, &state);
        if !self
            .table
            .compare_and_swap(source.name.as_bytes(), None, stored)?
        {
            return Err(HarvestError::Exists(source.name));
        }
        self.table.flush()?;
        Ok(())
    }

    /// Removes a source and its state; the records it brought stay.
    pub fn remove(&self, name: &str) -> Result<(), HarvestError> {
        let _claim = self.claim(name)?;
        if self.load(name)?.is_none() {
            return Err(HarvestError::NotFound(name.to_owned()));
        }
        self.table.remove(name.as_bytes())?;
        self.table.flush()?;
        Ok(())
    }

    /// Every source with its state, by name.
    pub fn list(&self) -> Result<Vec<(Source, State, bool)>, HarvestError> {
        let running = lock(&self.running).clone();
        let mut out = Vec::new();
        for item in self.table.iter() {
            let (key, value) = item?;
            let name = String::from_utf8_lossy(&key).into_owned();
            let (source, state) = decode(&name, &value)?;
            let is_running = running.contains(&source.name);
            out.push((source, state, is_running));
        }
        Ok(out)
    }

    /// Names of the sources to run at `now` (RFC 3339): the scheduled ones
    /// whose next run is due, and any whose last run a crash or a stop cut
    /// short, or that stopped at [`MAX_RUN_PAGES`] (it resumes at its token
    /// at once, scheduled or not). A run that ended in an error waits for
    /// its next scheduled run instead.
    pub fn due(&self, now: &str) -> Result<Vec<String>, HarvestError> {
        let now = crate::date::bounds(now).map(|b| b.0).unwrap_or(i64::MAX);
        Ok(self
            .list()?
            .into_iter()
            .filter(|(source, state, running)| {
                !running
                    && (cut_short(state)
                        || state.continues
                        || source.every_secs > 0
                            && crate::date::bounds(&state.next_run).map_or(true, |b| b.0 <= now))
            })
            .map(|(source, _, _)| source.name)
            .collect())
    }

    fn claim(&self, name: &str) -> Result<Claim<'_>, HarvestError> {
        if !lock(&self.running).insert(name.to_owned()) {
            return Err(HarvestError::Running(name.to_owned()));
        }
        Ok(Claim {
            harvester: self,
            name: name.to_owned(),
        })
    }

    fn load(&self, name: &str) -> Result<Option<(Source, State)>, HarvestError> {
        match self.table.get(name.as_bytes())? {
            None => Ok(None),
            Some(bytes) => decode(name, &bytes).map(Some),
        }
    }

    fn save(&self, source: &Source, state: &State) -> Result<(), HarvestError> {
        let current = self.table.get(source.name.as_bytes())?;
        if current.is_none() {
            return Err(HarvestError::NotFound(source.name.clone()));
        }
        self.table.compare_and_swap(
            source.name.as_bytes(),
            current.as_deref(),
            encode(source, state),
        )?;
        self.table.flush()?;
        Ok(())
    }

    /// Harvests source `name` now: from where its last run left off, to the
    /// end of the provider's list. `progress` sees the state after each page.
    pub async fn run(
        &self,
        name: &str,
        progress: &(dyn Fn(&State) + Send + Sync),
    ) -> Result<State, HarvestError> {
        let _claim = self.claim(name)?;
        let (source, mut state) = self
            .load(name)?
            .ok_or_else(|| HarvestError::NotFound(name.to_owned()))?;
        state.last_started = crate::date::now_rfc3339();
        state.last_error.clear();
        if !state.interrupted {
            state.added = 0;
            state.changed = 0;
            state.unchanged = 0;
            state.deleted = 0;
            state.rejected = 0;
            state.normalised = 0;
            state.pages = 0;
            state.rejections.clear();
        }
        state.interrupted = true;
        self.save(&source, &state)?;
        let result = self.pages(&source, &mut state, progress).await;
        // Cleared only as the run ends: one cut short keeps it, and resumes.
        state.continues = matches!(result, Err(HarvestError::PageCap(_)));
        if let Err(HarvestError::PageCap(message)) = &result {
            // Not the provider's fault: the list goes on at the next run.
            state.last_error = message.clone();
            tracing::info!(source = %source.name, pages = self.run_pages, "harvest run at its page cap; the next run continues the list");
        } else if let Err(error) = &result {
            // The token and `from` stay: the next run resumes the list.
            state.last_error = error.to_string();
            tracing::warn!(source = %source.name, error = %error, "harvest stopped");
        } else {
            state.interrupted = false;
            state.token.clear();
            if !state.list_started.is_empty() {
                state.from = next_from(&state.list_started, &state.granularity);
            }
            state.list_started.clear();
        }
        state.last_finished = crate::date::now_rfc3339();
        if source.every_secs > 0 {
            state.next_run = later(&state.last_finished, source.every_secs);
        }
        self.save(&source, &state)?;
        result.map(|()| state)
    }

    async fn pages(
        &self,
        source: &Source,
        state: &mut State,
        progress: &(dyn Fn(&State) + Send + Sync),
    ) -> Result<(), HarvestError> {
        if state.granularity.is_empty() {
            state.granularity = self.granularity(source).await?;
            self.save(source, state)?;
        }
        let format = if source.prefix == "oai_dc" {
            Format::OaiDc
        } else {
            Format::DataciteXml
        };
        let mut restarts = 0;
        let mut run_pages = 0u64;
        let mut empty_pages = 0;
        let mut stale_pages = 0;
        let mut seen_ids = SeenIds::new();
        // Digests of the tokens this run was given, by page: a list that
        // hands out a token again goes round in a circle, records or not.
        let mut tokens_seen: HashMap<[u8; 32], u64> = HashMap::new();
        // The next page is fetched while this one is stored; the state
        // records a page's token only once the page is stored. (Parsing it
        // meanwhile too was measured: no faster end to end, and ~10% more
        // CPU, the XML contending with the signing threads.)
        let mut prefetched: Option<tokio::task::JoinHandle<Result<Vec<u8>, String>>> = None;
        loop {
            let url = list_url(source, &state.token, &state.from);
            let body = match prefetched.take() {
                Some(handle) => handle
                    .await
                    .map_err(|e| HarvestError::Fetch(format!("{url}: {e}")))?,
                None => self.fetch.get(&url, &source.ca_cert).await,
            }
            .map_err(HarvestError::Fetch)?;
            let Page { items, envelope } = parse_page(body, format, url.clone()).await?;
            if state.token.is_empty() && !envelope.response_date.is_empty() {
                state.list_started = envelope.response_date.clone();
            }
            if let Some((code, message)) = envelope.errors.first() {
                match code.as_str() {
                    // An empty list. Given for a resumption token instead,
                    // it says the provider lost the list it was paging
                    // through, as badResumptionToken would: taken for the
                    // end, it would skip the rest of the list for good.
                    "noRecordsMatch" if state.token.is_empty() => return Ok(()),
                    "badResumptionToken" | "noRecordsMatch"
                        if !state.token.is_empty() && restarts < MAX_RESTARTS =>
                    {
                        tracing::info!(source = %source.name, code = %code, "resumption token refused; listing again from the start");
                        restarts += 1;
                        run_pages = 0;
                        tokens_seen.clear();
                        seen_ids = SeenIds::new();
                        stale_pages = 0;
                        state.token.clear();
                        self.save(source, state)?;
                        continue;
                    }
                    _ => {
                        return Err(HarvestError::Protocol(format!(
                            "{url}: OAI-PMH error {code}: {message}"
                        )))
                    }
                }
            }
            if envelope.response_date.is_empty() {
                return Err(HarvestError::Protocol(format!(
                    "{url}: not an OAI-PMH response (no responseDate)"
                )));
            }
            let next = envelope.resumption_token.unwrap_or_default();
            if !next.is_empty() && next == state.token {
                return Err(HarvestError::Protocol(format!(
                    "{url}: the provider answered with the token it was asked with: its list does not move on"
                )));
            }
            if !next.is_empty() {
                let digest: [u8; 32] = Sha256::digest(next.as_bytes()).into();
                if let Some(page) = tokens_seen.insert(digest, state.pages) {
                    return Err(HarvestError::Protocol(format!(
                        "{url}: the provider answered with the token it gave {} pages before: \
                         its list goes round in a circle",
                        state.pages - page
                    )));
                }
            }
            empty_pages = if items.is_empty() { empty_pages + 1 } else { 0 };
            if empty_pages >= MAX_EMPTY_PAGES && !next.is_empty() {
                return Err(HarvestError::Protocol(format!(
                    "{url}: {MAX_EMPTY_PAGES} pages in a row without a record: the provider's list does not end"
                )));
            }
            // Every identifier is recorded: no short-circuit.
            let mut brings_new = false;
            for header in items.iter().filter_map(|item| item.header.as_ref()) {
                brings_new |= seen_ids.insert(&header.identifier);
            }
            stale_pages = if brings_new { 0 } else { stale_pages + 1 };
            if stale_pages >= MAX_STALE_PAGES && !next.is_empty() {
                return Err(HarvestError::Protocol(format!(
                    "{url}: {MAX_STALE_PAGES} pages in a row without a record not sent before \
                     in this run: the provider's list does not end"
                )));
            }
            // The run's last page: nothing to fetch ahead.
            let last = run_pages + 1 >= self.run_pages;
            if !next.is_empty() && !last {
                let (fetch, url, ca) = (
                    self.fetch.clone(),
                    list_url(source, &next, &state.from),
                    source.ca_cert.clone(),
                );
                prefetched = Some(tokio::spawn(async move { fetch.get(&url, &ca).await }));
            }
            let stored = self.apply(source, state, items).await.and_then(|()| {
                state.pages += 1;
                state.token = next;
                self.save(source, state)
            });
            if let Err(error) = stored {
                if let Some(ahead) = prefetched.take() {
                    ahead.abort();
                }
                return Err(error);
            }
            progress(state);
            if state.token.is_empty() {
                return Ok(());
            }
            run_pages += 1;
            if last {
                return Err(HarvestError::PageCap(format!(
                    "{}: {run_pages} pages in this run and the list goes on: the run stops \
                     here, and the next one, due at once, continues from this page",
                    list_url(source, &state.token, &state.from)
                )));
            }
        }
    }

    async fn granularity(&self, source: &Source) -> Result<String, HarvestError> {
        let url = format!("{}?verb=Identify", source.url);
        let body = self
            .fetch
            .get(&url, &source.ca_cert)
            .await
            .map_err(HarvestError::Fetch)?;
        let mut scan = crosswalk::tree::Scan::new(body.as_slice(), "granularity");
        let found = scan.next();
        if let Some((code, message)) = scan.envelope.errors.first() {
            return Err(HarvestError::Protocol(format!(
                "{url}: OAI-PMH error {code}: {message}"
            )));
        }
        match found {
            Some(Ok(crosswalk::tree::Found::Metadata { element: Ok(e), .. })) => {
                let text = e.text.trim();
                if text == "YYYY-MM-DD" || text == "YYYY-MM-DDThh:mm:ssZ" {
                    Ok(text.to_owned())
                } else {
                    Err(HarvestError::Protocol(format!(
                        "{url}: unknown granularity `{text}`"
                    )))
                }
            }
            _ => Err(HarvestError::Protocol(format!(
                "{url}: Identify has no granularity"
            ))),
        }
    }

    /// Imports one page: records through the node's import, deletions as tombstones.
    async fn apply(
        &self,
        source: &Source,
        state: &mut State,
        items: Vec<crosswalk::Item>,
    ) -> Result<(), HarvestError> {
        let node = self.node.clone();
        let visibility =
            record::parse_visibility(&source.visibility).unwrap_or(Visibility::Unspecified);
        let groups = source.groups.clone();
        let (outcome, rejections, normalised, deleted) = tokio::task::spawn_blocking(move || {
            // The page's records to import, in its order.
            let mut pending: Vec<Pending> = Vec::new();
            let mut rejections = Vec::new();
            let mut deleted = 0u64;
            for item in items {
                let oai_id = item
                    .header
                    .as_ref()
                    .map_or_else(|| format!("line {}", item.line), |h| h.identifier.clone());
                match item.outcome {
                    Outcome::Record(converted) => {
                        let mut record = converted.record;
                        if visibility != Visibility::Unspecified {
                            record.visibility = visibility as i32;
                            record.groups = groups.clone();
                        }
                        let held = node.store().record_state(node.node_id(), &record.id)?;
                        pending.push(Pending {
                            oai_id,
                            record,
                            new: held.is_none(),
                            changes: converted.changes.len() as u64,
                        });
                    }
                    Outcome::Refused(e) => {
                        rejections.push(format!("{oai_id}: {}: {}", e.field, e.reason))
                    }
                    Outcome::Deleted => {
                        // The provider's last word on an id stands: a live
                        // version listed before its deletion in this page
                        // is not imported after it.
                        pending.retain(|earlier| earlier.oai_id != oai_id);
                        let Ok(id) = RecordId::parse(&oai_id) else {
                            rejections.push(format!("{oai_id}: id: not a record id"));
                            continue;
                        };
                        let held = node.store().record_state(node.node_id(), &oai_id)?;
                        if held.is_some_and(|s| !s.deleted) {
                            node.delete(&id)?;
                            deleted += 1;
                        }
                    }
                }
            }
            let records = pending
                .iter_mut()
                .map(|item| std::mem::take(&mut item.record))
                .collect();
            let outcome = node.import_records(1, records)?;
            let mut refused = vec![false; pending.len()];
            for error in &outcome.errors {
                let at = (error.line as usize).saturating_sub(1);
                if let Some(slot) = refused.get_mut(at) {
                    *slot = true;
                }
                let oai_id = pending.get(at).map_or("?", |item| item.oai_id.as_str());
                rejections.push(format!("{oai_id}: {}: {}", error.field, error.reason));
            }
            let added = pending
                .iter()
                .zip(&refused)
                .filter(|(item, refused)| item.new && !**refused)
                .count() as u64;
            let normalised: u64 = pending.iter().map(|item| item.changes).sum();
            Ok::<_, HarvestError>(((outcome, added), rejections, normalised, deleted))
        })
        .await
        .map_err(|e| HarvestError::Protocol(format!("harvest task failed: {e}")))??;
        let ((outcome, added), rejections) = (outcome, rejections);
        state.added += added;
        state.changed += outcome.stored.saturating_sub(added);
        state.unchanged += outcome.unchanged;
        state.deleted += deleted;
        state.normalised += normalised;
        state.rejected += rejections.len() as u64;
        for rejection in rejections {
            tracing::info!(source = %source.name, rejection = %rejection, "harvested record refused");
            state.rejections.push(rejection);
        }
        let excess = state.rejections.len().saturating_sub(KEPT_REJECTIONS);
        state.rejections.drain(..excess);
        Ok(())
    }
}

/// The OAI identifiers a run was given, in bounded memory: a Bloom filter
/// ([`fastbloom`]) of [`SEEN_BITS`] bits, [`SEEN_PROBES`] probes from each
/// identifier's SipHash-1-3 under [`SEEN_SEED`]. It may take a new
/// identifier for one seen — about one in 10^7 after 10^6 identifiers, one
/// in 20 after 10^7 — never a seen one for new; a run stops only when every
/// identifier of [`MAX_STALE_PAGES`] pages in a row is taken as seen, so an
/// honest list of any size is not stopped. The filter lives for one run and
/// is never stored; the fixed seed gives the same list the same verdicts in
/// every run.
struct SeenIds(fastbloom::BloomFilter);

impl SeenIds {
    fn new() -> Self {
        Self(
            fastbloom::BloomFilter::with_num_bits(SEEN_BITS)
                .seed(&SEEN_SEED)
                .hashes(SEEN_PROBES),
        )
    }

    /// Records `id`; whether it is new to the run.
    fn insert(&mut self, id: &str) -> bool {
        !self.0.insert(id)
    }
}

/// Whether the last run of a source started and never finished: the node
/// stopped (or crashed) under it. An error finishes a run.
fn cut_short(state: &State) -> bool {
    let at = |stamp: &str| crate::date::bounds(stamp).ok().map(|b| b.0);
    state.interrupted
        && match (at(&state.last_started), at(&state.last_finished)) {
            (Some(started), Some(finished)) => finished < started,
            (Some(_), None) => true,
            _ => false,
        }
}

fn encode(source: &Source, state: &State) -> Vec<u8> {
    serde_json::to_vec(&Stored {
        version: FORMAT_VERSION,
        source: source.clone(),
        state: state.clone(),
    })
    .unwrap_or_default()
}

fn decode(name: &str, bytes: &[u8]) -> Result<(Source, State), HarvestError> {
    #[derive(Deserialize)]
    struct Version {
        version: u32,
    }
    let corrupt = |e: serde_json::Error| {
        HarvestError::Protocol(format!(
            "harvest source `{name}`: stored state unreadable: {e}"
        ))
    };
    let Version { version } = serde_json::from_slice(bytes).map_err(corrupt)?;
    if version != FORMAT_VERSION {
        return Err(HarvestError::Version {
            name: name.to_owned(),
            version,
        });
    }
    let stored: Stored = serde_json::from_slice(bytes).map_err(corrupt)?;
    Ok((stored.source, stored.state))
}

/// Checks and tidies a source's settings, naming the one that is wrong.
fn check_source(source: &mut Source) -> Result<(), RecordError> {
    let name_ok = !source.name.is_empty()
        && source.name.len() <= 64
        && source
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !name_ok {
        return Err(RecordError::new(
            "name",
            "1 to 64 letters, digits, `-`, `_` or `.`",
        ));
    }
    source.url = source.url.trim().to_owned();
    let scheme_ok = source.url.starts_with("https://") || source.url.starts_with("http://");
    if !scheme_ok
        || source.url.contains(['?', '#', ' '])
        || source.url.len() > record::MAX_URL_BYTES
    {
        return Err(RecordError::new(
            "url",
            format!(
                "`{}` is not an OAI-PMH base URL (http:// or https://, without a query)",
                source.url
            ),
        ));
    }
    if source.prefix.is_empty() {
        source.prefix = PREFIXES[0].to_owned();
    }
    if !PREFIXES.contains(&source.prefix.as_str()) {
        return Err(RecordError::new(
            "prefix",
            format!("`{}`: use one of {}", source.prefix, PREFIXES.join(", ")),
        ));
    }
    if !source.visibility.is_empty() {
        let visibility = record::parse_visibility(&source.visibility).ok_or_else(|| {
            RecordError::new(
                "visibility",
                format!(
                    "`{}` is not one of {}",
                    source.visibility,
                    record::VISIBILITY_NAMES.join(", ")
                ),
            )
        })?;
        source.visibility = record::visibility_name(visibility as i32).to_owned();
        if (visibility == Visibility::Groups) == source.groups.is_empty() {
            return Err(RecordError::new(
                "groups",
                "are given exactly when visibility is groups",
            ));
        }
    } else if !source.groups.is_empty() {
        return Err(RecordError::new("groups", "need --visibility groups"));
    }
    if source.set.len() > 1024 {
        return Err(RecordError::new("set", "longer than 1024 bytes"));
    }
    Ok(())
}

/// The `from` of the next run: the provider's time at the start of the
/// last complete list, at its granularity. For seconds, one second earlier:
/// a record stored in the second the list began may carry that second.
fn next_from(list_started: &str, granularity: &str) -> String {
    if list_started.is_empty() {
        return String::new();
    }
    if granularity == "YYYY-MM-DD" {
        return list_started.get(..10).unwrap_or(list_started).to_owned();
    }
    match crate::date::bounds(list_started) {
        Ok((start, _)) => rfc3339(start - 1),
        Err(_) => list_started.to_owned(),
    }
}

fn later(now: &str, secs: u64) -> String {
    let start = crate::date::bounds(now).map(|b| b.0).unwrap_or_default();
    rfc3339(start.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX / 2)))
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// One page of a list: its records and its OAI-PMH envelope.
struct Page {
    items: Vec<crosswalk::Item>,
    envelope: crosswalk::tree::Envelope,
}

/// Parses a fetched page on a blocking thread: a page of a thousand
/// DataCite records is tens of milliseconds of XML, which would otherwise
/// hold a runtime thread (and the searches waiting on it).
async fn parse_page(body: Vec<u8>, format: Format, url: String) -> Result<Page, HarvestError> {
    tokio::task::spawn_blocking(move || {
        let mut reader = XmlRecords::new(body.as_slice(), format);
        let items: Vec<crosswalk::Item> =
            reader.by_ref().collect::<Result<_, _>>().map_err(|e| {
                HarvestError::Protocol(format!("{url}: the response cannot be read: {e}"))
            })?;
        let envelope = reader.envelope().clone();
        Ok(Page { items, envelope })
    })
    .await
    .map_err(|e| HarvestError::Protocol(format!("harvest task failed: {e}")))?
}

/// The ListRecords request that continues at `token`, or starts the list.
fn list_url(source: &Source, token: &str, from: &str) -> String {
    if !token.is_empty() {
        return format!(
            "{}?verb=ListRecords&resumptionToken={}",
            source.url,
            encode_query(token)
        );
    }
    let mut url = format!(
        "{}?verb=ListRecords&metadataPrefix={}",
        source.url,
        encode_query(&source.prefix)
    );
    if !source.set.is_empty() {
        url.push_str(&format!("&set={}", encode_query(&source.set)));
    }
    if !from.is_empty() {
        url.push_str(&format!("&from={}", encode_query(from)));
    }
    url
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
