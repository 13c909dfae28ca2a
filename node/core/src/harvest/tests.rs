use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::*;

/// An OAI-PMH provider in memory: day granularity, pages of 2, records
/// in `oai_dc`; it can fail a request or forget its tokens on demand.
#[derive(Default)]
struct Provider {
    /// identifier → (datestamp, title or None when deleted)
    records: Mutex<BTreeMap<String, (String, Option<String>)>>,
    requests: Mutex<Vec<String>>,
    /// Fails the request with this number (1-based) with a network error.
    fail_at: AtomicU32,
    /// Token epoch: tokens of an older epoch are refused.
    epoch: AtomicU32,
}

fn query(url: &str) -> BTreeMap<String, String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), percent_decode(v)))
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn envelope(body: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0"?><OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><responseDate>2024-03-05T10:00:00Z</responseDate>{body}</OAI-PMH>"#
    )
    .into_bytes()
}

#[async_trait::async_trait]
impl Fetch for Provider {
    async fn get(&self, url: &str, _ca: &str) -> Result<Vec<u8>, String> {
        let n = {
            let mut requests = lock(&self.requests);
            requests.push(url.to_owned());
            requests.len() as u32
        };
        if self.fail_at.load(Ordering::SeqCst) == n {
            return Err("connection reset".into());
        }
        let q = query(url);
        if q.get("verb").map(String::as_str) == Some("Identify") {
            return Ok(envelope(
                "<Identify><granularity>YYYY-MM-DD</granularity></Identify>",
            ));
        }
        let (from, offset) = match q.get("resumptionToken") {
            Some(token) => {
                let parts: Vec<&str> = token.split('!').collect();
                let fresh = parts[0].parse::<u32>().ok() == Some(self.epoch.load(Ordering::SeqCst));
                if !fresh {
                    return Ok(envelope(
                        r#"<error code="badResumptionToken">unknown token</error>"#,
                    ));
                }
                (parts[1].to_owned(), parts[2].parse::<usize>().unwrap())
            }
            None => (q.get("from").cloned().unwrap_or_default(), 0),
        };
        let records = lock(&self.records);
        let matching: Vec<_> = records
            .iter()
            .filter(|(_, (stamp, _))| stamp.as_str() >= from.as_str())
            .collect();
        if matching.is_empty() {
            return Ok(envelope(r#"<error code="noRecordsMatch">none</error>"#));
        }
        let mut body = String::from("<ListRecords>");
        for (id, (stamp, title)) in matching.iter().skip(offset).take(2) {
            match title {
                None => body.push_str(&format!(
                    r#"<record><header status="deleted"><identifier>{id}</identifier><datestamp>{stamp}</datestamp></header></record>"#
                )),
                Some(title) => body.push_str(&format!(
                    r#"<record><header><identifier>{id}</identifier><datestamp>{stamp}</datestamp></header><metadata><oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{title}</dc:title><dc:creator>Ruiz, Ana</dc:creator><dc:publisher>Repo</dc:publisher><dc:date>2020</dc:date><dc:type>Dataset</dc:type></oai_dc:dc></metadata></record>"#
                )),
            }
        }
        if offset + 2 < matching.len() {
            body.push_str(&format!(
                "<resumptionToken>{}!{from}!{}</resumptionToken>",
                self.epoch.load(Ordering::SeqCst),
                offset + 2
            ));
        } else if offset > 0 {
            body.push_str("<resumptionToken/>");
        }
        body.push_str("</ListRecords>");
        Ok(envelope(&body))
    }
}

impl Provider {
    fn put(&self, id: &str, stamp: &str, title: Option<&str>) {
        lock(&self.records).insert(
            format!("oai:repo:{id}"),
            (stamp.to_owned(), title.map(str::to_owned)),
        );
    }
}

/// Adds the source `repo`, in `oai_dc`, to `harvester`.
fn add_repo(harvester: &Harvester) {
    harvester
        .add(Source {
            name: "repo".into(),
            url: "https://repo.example.org/oai".into(),
            prefix: "oai_dc".into(),
            ..Default::default()
        })
        .unwrap();
}

fn setup() -> (Arc<Provider>, Harvester, Arc<Node>, tempfile::TempDir) {
    let (node, dir) = crate::test_support::opened_node("polar");
    let provider = Arc::new(Provider::default());
    for i in 1..=5 {
        provider.put(&i.to_string(), "2024-03-01", Some(&format!("Record {i}")));
    }
    provider.put("6", "2024-03-01", Some("")); // no title: refused
    let harvester = Harvester::new(node.clone(), provider.clone()).unwrap();
    add_repo(&harvester);
    (provider, harvester, node, dir)
}

fn held(node: &Node) -> BTreeMap<String, (u64, bool)> {
    let store = node.store();
    (1..=7)
        .filter_map(|i| {
            let id = format!("oai:repo:{i}");
            store
                .record_state(node.node_id(), &id)
                .unwrap()
                .map(|s| (id, (s.version, s.deleted)))
        })
        .collect()
}

fn quiet(_: &State) {}

#[tokio::test(flavor = "multi_thread")]
async fn harvests_follow_tokens_then_go_incremental_with_deletes_as_tombstones() {
    let (provider, harvester, node, _dir) = setup();
    let state = harvester.run("repo", &quiet).await.unwrap();
    assert_eq!(
        (state.added, state.changed, state.deleted, state.rejected),
        (5, 0, 0, 1)
    );
    assert_eq!(state.pages, 3);
    assert_eq!(state.granularity, "YYYY-MM-DD");
    assert_eq!(
        state.from, "2024-03-05",
        "the next run starts at the provider's day"
    );
    assert!(
        state.rejections[0].starts_with("oai:repo:6: title:"),
        "{:?}",
        state.rejections
    );
    assert_eq!(held(&node).len(), 5);

    // Change one, delete one, add one at the provider; the next run lists only those.
    provider.put("2", "2024-03-06", Some("Record 2, revised"));
    provider.put("3", "2024-03-06", None);
    provider.put("7", "2024-03-06", Some("Record 7"));
    let state = harvester.run("repo", &quiet).await.unwrap();
    assert_eq!(
        (state.added, state.changed, state.deleted, state.rejected),
        (1, 1, 1, 0)
    );
    assert!(lock(&provider.requests)
        .iter()
        .any(|u| u.contains("metadataPrefix=oai_dc&from=2024-03-05")));
    let held = held(&node);
    assert_eq!(held["oai:repo:2"], (2, false));
    assert_eq!(
        held["oai:repo:3"],
        (2, true),
        "a deletion is a signed tombstone"
    );
    assert_eq!(held["oai:repo:7"], (1, false));

    // Nothing new: noRecordsMatch is success.
    provider.put("2", "2024-03-01", Some("Record 2, revised"));
    provider.put("3", "2024-03-01", None);
    provider.put("7", "2024-03-01", Some("Record 7"));
    let state = harvester.run("repo", &quiet).await.unwrap();
    assert_eq!(
        (state.added, state.changed, state.deleted, state.pages),
        (0, 0, 0, 0)
    );
    assert!(state.last_error.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_harvest_resumes_at_its_token_without_loss_or_duplication() {
    let (provider, harvester, node, _dir) = setup();
    // Identify, page 1, then page 2 fails.
    provider.fail_at.store(3, Ordering::SeqCst);
    let error = harvester.run("repo", &quiet).await.unwrap_err();
    assert!(error.to_string().contains("connection reset"));
    let (_, state, _) = harvester.list().unwrap().remove(0);
    assert!(state.interrupted);
    assert!(!state.token.is_empty(), "the token to resume at is kept");
    assert_eq!(state.last_error, "connection reset");
    assert_eq!(held(&node).len(), 2);

    let state = harvester.run("repo", &quiet).await.unwrap();
    assert!(lock(&provider.requests)
        .last()
        .unwrap()
        .contains("resumptionToken="));
    assert_eq!(
        lock(&provider.requests)
            .iter()
            .filter(|u| u.contains("metadataPrefix"))
            .count(),
        1,
        "resumed at the token, not listed again"
    );
    assert_eq!(
        (state.added, state.unchanged, state.rejected),
        (5, 0, 1),
        "counts cover the whole run"
    );
    assert!(
        held(&node).values().all(|(version, _)| *version == 1),
        "nothing stored twice"
    );
}

/// A run the node's stop cut short (started, never finished) is due at
/// once, scheduled or not, and resumes at its token; a run that ended in an
/// error is not (it waits for its schedule, so a provider that is down is
/// not asked again every tick).
#[tokio::test(flavor = "multi_thread")]
async fn a_harvest_cut_short_by_a_stop_resumes_at_start_up() {
    let (provider, harvester, node, _dir) = setup();
    let now = crate::date::now_rfc3339();
    assert!(harvester.due(&now).unwrap().is_empty(), "unscheduled");
    provider.fail_at.store(3, Ordering::SeqCst);
    harvester.run("repo", &quiet).await.unwrap_err();
    assert!(
        harvester.due(&now).unwrap().is_empty(),
        "an error finishes a run: not due until its schedule"
    );
    // As a crash leaves it: started after it last finished, mid-list.
    let (source, mut state) = harvester.load("repo").unwrap().unwrap();
    state.last_started = later(&state.last_finished, 1);
    harvester.save(&source, &state).unwrap();
    let now = crate::date::now_rfc3339();
    assert_eq!(
        harvester.due(&later(&now, 2)).unwrap(),
        vec!["repo".to_owned()]
    );

    let state = harvester.run("repo", &quiet).await.unwrap();
    assert!(!state.interrupted);
    assert_eq!(
        lock(&provider.requests)
            .iter()
            .filter(|u| u.contains("metadataPrefix"))
            .count(),
        1,
        "resumed at the token"
    );
    assert_eq!(held(&node).len(), 5);
    assert!(harvester.due(&later(&now, 2)).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_token_lists_again_from_the_start_of_the_list() {
    let (provider, harvester, node, _dir) = setup();
    provider.fail_at.store(3, Ordering::SeqCst);
    harvester.run("repo", &quiet).await.unwrap_err();
    // The provider restarted: its old tokens mean nothing now.
    provider.epoch.store(1, Ordering::SeqCst);
    let state = harvester.run("repo", &quiet).await.unwrap();
    assert_eq!(state.added, 5);
    assert_eq!(state.unchanged, 2, "the first page again: no-ops");
    assert_eq!(held(&node).len(), 5);
    assert!(held(&node).values().all(|(version, _)| *version == 1));
}

/// `noRecordsMatch` answers the first request of a list that is empty.
/// Given for a resumption token, the provider lost the list it was paging
/// through: the list is asked for again from its start, as for
/// `badResumptionToken`, and the rest of it is harvested, not skipped.
#[tokio::test(flavor = "multi_thread")]
async fn no_records_match_for_a_token_lists_again_instead_of_ending() {
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = asked.clone();
    let (result, _harvester, _dir) = run_scripted(move |token| match token {
        "" => format!(
            "<ListRecords>{}{}<resumptionToken>p1</resumptionToken></ListRecords>",
            dc_record(1),
            dc_record(2)
        ),
        _ if counted.fetch_add(1, Ordering::SeqCst) == 0 => {
            r#"<error code="noRecordsMatch">result set expired</error>"#.to_owned()
        }
        _ => format!(
            "<ListRecords>{}{}<resumptionToken/></ListRecords>",
            dc_record(3),
            dc_record(4)
        ),
    })
    .await;
    let state = result.unwrap();
    assert_eq!((state.added, state.unchanged), (4, 2), "{state:?}");
    assert_eq!(asked.load(Ordering::SeqCst), 2);

    // A provider that keeps answering so is stopped after a few restarts,
    // with an error that says what it answered, and nothing of the list is
    // taken for done.
    let (result, harvester, _dir) = run_scripted(move |token| match token {
        "" => format!(
            "<ListRecords>{}<resumptionToken>p1</resumptionToken></ListRecords>",
            dc_record(1)
        ),
        _ => r#"<error code="noRecordsMatch">result set expired</error>"#.to_owned(),
    })
    .await;
    let error = result.unwrap_err().to_string();
    assert!(error.contains("OAI-PMH error noRecordsMatch"), "{error}");
    let (_, state, _) = harvester.list().unwrap().remove(0);
    assert_eq!(state.from, "", "the list's start was not moved on");
}

#[test]
fn sources_are_checked_named_and_removed() {
    let (_provider, harvester, _node, _dir) = setup();
    let source = |name: &str, url: &str, prefix: &str, visibility: &str, groups: &[&str]| Source {
        name: name.into(),
        url: url.into(),
        prefix: prefix.into(),
        visibility: visibility.into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..Default::default()
    };
    let field = |s: Source| match harvester.add(s) {
        Err(HarvestError::Invalid(e)) => e.field,
        other => panic!("{other:?}"),
    };
    assert_eq!(field(source("a b", "https://x/oai", "", "", &[])), "name");
    assert_eq!(field(source("a", "ftp://x/oai", "", "", &[])), "url");
    assert_eq!(
        field(source("a", "https://x/oai?verb=Identify", "", "", &[])),
        "url"
    );
    assert_eq!(
        field(source("a", "https://x/oai", "marc21", "", &[])),
        "prefix"
    );
    assert_eq!(
        field(source("a", "https://x/oai", "", "everyone", &[])),
        "visibility"
    );
    assert_eq!(
        field(source("a", "https://x/oai", "", "groups", &[])),
        "groups"
    );
    assert_eq!(
        field(source("a", "https://x/oai", "", "", &["g"])),
        "groups"
    );
    assert!(matches!(
        harvester.add(source("repo", "https://x/oai", "", "", &[])),
        Err(HarvestError::Exists(_))
    ));
    harvester
        .add(source("b", "https://x/oai", "", "groups", &["g"]))
        .unwrap();
    let names: Vec<String> = harvester
        .list()
        .unwrap()
        .into_iter()
        .map(|(s, _, _)| s.name)
        .collect();
    assert_eq!(names, ["b", "repo"]);
    assert_eq!(
        harvester.list().unwrap()[0].0.prefix,
        "oai_datacite",
        "the default prefix"
    );
    harvester.remove("b").unwrap();
    assert!(matches!(
        harvester.remove("b"),
        Err(HarvestError::NotFound(_))
    ));
    assert_eq!(harvester.list().unwrap().len(), 1);
}

#[test]
fn next_from_follows_the_granularity() {
    assert_eq!(
        next_from("2024-03-05T10:00:00Z", "YYYY-MM-DD"),
        "2024-03-05"
    );
    assert_eq!(
        next_from("2024-03-05T10:00:00Z", "YYYY-MM-DDThh:mm:ssZ"),
        "2024-03-05T09:59:59Z"
    );
    assert_eq!(next_from("", "YYYY-MM-DD"), "");
    assert_eq!(
        later("2024-03-05T10:00:00Z", 6 * 3600),
        "2024-03-05T16:00:00Z"
    );
    assert_eq!(encode_query("oai:x/1 2"), "oai%3Ax%2F1%202");
}

/// A hostile or broken provider: Identify as usual, and every ListRecords
/// answered by `page` from the request's resumption token ("" for the
/// first): the whole response body.
struct Scripted {
    page: Box<PageFn>,
}

/// A scripted page: the body answering a resumption token.
type PageFn = dyn Fn(&str) -> Vec<u8> + Send + Sync;

#[async_trait::async_trait]
impl Fetch for Scripted {
    async fn get(&self, url: &str, _ca: &str) -> Result<Vec<u8>, String> {
        let q = query(url);
        if q.get("verb").map(String::as_str) == Some("Identify") {
            return Ok(envelope(
                "<Identify><granularity>YYYY-MM-DD</granularity></Identify>",
            ));
        }
        let token = q.get("resumptionToken").map_or("", String::as_str);
        Ok((self.page)(token))
    }
}

/// One `oai_dc` record with id `oai:loop:{n}`.
fn dc_record(n: u32) -> String {
    format!(
        r#"<record><header><identifier>oai:loop:{n}</identifier><datestamp>2024-03-01</datestamp></header><metadata><oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Record {n}</dc:title><dc:creator>Ruiz, Ana</dc:creator><dc:publisher>Repo</dc:publisher><dc:date>2020</dc:date><dc:type>Dataset</dc:type></oai_dc:dc></metadata></record>"#
    )
}

/// The page number a token `p{n}` names (0 for the first page).
fn page_number(token: &str) -> u32 {
    token.strip_prefix('p').map_or(0, |n| n.parse().unwrap())
}

/// Runs source `loop` of a node harvesting `page` (the OAI-PMH element's
/// content); the run must end within a minute (before the bounds, these
/// runs never ended).
async fn run_scripted(
    page: impl Fn(&str) -> String + Send + Sync + 'static,
) -> (Result<State, HarvestError>, Harvester, tempfile::TempDir) {
    run_scripted_body(move |token| envelope(&page(token))).await
}

/// [`run_scripted`] with `page` giving the whole response body.
async fn run_scripted_body(
    page: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static,
) -> (Result<State, HarvestError>, Harvester, tempfile::TempDir) {
    let (node, dir) = crate::test_support::opened_node("polar");
    let harvester = scripted(node, Harvester::new, page);
    let result = run_loop(&harvester).await;
    (result, harvester, dir)
}

/// A harvester made by `new` with one source, `loop`, whose provider
/// answers with `page`.
fn scripted(
    node: Arc<Node>,
    new: impl FnOnce(Arc<Node>, Arc<dyn Fetch>) -> Result<Harvester, HarvestError>,
    page: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static,
) -> Harvester {
    let fetch = Arc::new(Scripted {
        page: Box::new(page),
    });
    let harvester = new(node, fetch).unwrap();
    harvester
        .add(Source {
            name: "loop".into(),
            url: "https://loop.example.org/oai".into(),
            prefix: "oai_dc".into(),
            ..Default::default()
        })
        .unwrap();
    harvester
}

/// One run of source `loop`, which must end within a minute.
async fn run_loop(harvester: &Harvester) -> Result<State, HarvestError> {
    tokio::time::timeout(Duration::from_secs(60), harvester.run("loop", &quiet))
        .await
        .expect("the run ends")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_answering_with_the_token_it_was_asked_with_is_stopped() {
    let (result, harvester, _dir) = run_scripted(|_| {
        format!(
            "<ListRecords>{}<resumptionToken>same</resumptionToken></ListRecords>",
            dc_record(1)
        )
    })
    .await;
    let error = result.unwrap_err();
    assert!(matches!(error, HarvestError::Protocol(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with("https://loop.example.org/oai?verb=ListRecords&resumptionToken=same: "),
        "{message}"
    );
    assert!(message.contains("the token it was asked with"), "{message}");
    let (_, state, _) = harvester.list().unwrap().remove(0);
    assert_eq!(state.last_error, message);
}

/// A provider whose tokens go round in a circle, with records on every
/// page, is stopped when a token comes back: before, such a run fetched
/// and imported the same pages for ever.
#[tokio::test(flavor = "multi_thread")]
async fn a_provider_whose_tokens_go_round_in_a_circle_is_stopped() {
    let (result, harvester, _dir) = run_scripted(|token| {
        let n = page_number(token);
        format!(
            "<ListRecords>{}<resumptionToken>p{}</resumptionToken></ListRecords>",
            dc_record(n),
            (n + 1) % 3
        )
    })
    .await;
    let error = result.unwrap_err();
    assert!(matches!(error, HarvestError::Protocol(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with("https://loop.example.org/oai?verb=ListRecords&resumptionToken=p0: "),
        "{message}"
    );
    assert!(
        message.contains("the token it gave 3 pages before"),
        "{message}"
    );
    let (_, state, _) = harvester.list().unwrap().remove(0);
    // The first page again (p0) is read, and its token, p1, stops the run.
    assert_eq!((state.added, state.pages), (3, 3));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_sending_only_empty_pages_is_stopped() {
    let (result, _harvester, _dir) = run_scripted(|token| {
        format!(
            "<ListRecords><resumptionToken>p{}</resumptionToken></ListRecords>",
            page_number(token) + 1
        )
    })
    .await;
    let error = result.unwrap_err();
    assert!(matches!(error, HarvestError::Protocol(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with("https://loop.example.org/oai?verb=ListRecords&resumptionToken=p"),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "{MAX_EMPTY_PAGES} pages in a row without a record"
        )),
        "{message}"
    );
}

/// A provider that sends the same record again and again under fresh
/// tokens (p1, p2, …), records on every page, is stopped: before, neither
/// the empty-page nor the token bound caught it, and the run went on for
/// ever, every other source waiting behind it.
#[tokio::test(flavor = "multi_thread")]
async fn a_provider_resending_the_same_records_under_fresh_tokens_is_stopped() {
    let (result, harvester, _dir) = run_scripted(|token| {
        format!(
            "<ListRecords>{}<resumptionToken>p{}</resumptionToken></ListRecords>",
            dc_record(1),
            page_number(token) + 1
        )
    })
    .await;
    let error = result.unwrap_err();
    assert!(matches!(error, HarvestError::Protocol(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "https://loop.example.org/oai?verb=ListRecords&resumptionToken=p{MAX_STALE_PAGES}: "
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "{MAX_STALE_PAGES} pages in a row without a record not sent before"
        )),
        "{message}"
    );
    let (_, state, _) = harvester.list().unwrap().remove(0);
    assert_eq!(state.added, 1);
    assert_eq!(state.token, format!("p{MAX_STALE_PAGES}"));
}

/// A list longer than one run may fetch, which never repeats itself (a
/// fresh record under a fresh token on every page, as one that never ends
/// would send), is stopped at the pages one run may fetch. The next run is
/// due at once, though the source has no schedule, and continues where the
/// last stopped; the run that reaches the list's end is not due again.
#[tokio::test(flavor = "multi_thread")]
async fn a_list_longer_than_a_run_is_fetched_in_runs_each_due_at_once() {
    let (node, _dir) = crate::test_support::opened_node("polar");
    let fetched = Arc::new(AtomicU32::new(0));
    let counted = fetched.clone();
    let capped = |node, fetch| Harvester::new(node, fetch).map(|h| h.with_run_pages(30));
    let harvester = scripted(node.clone(), capped, move |token| {
        counted.fetch_add(1, Ordering::Relaxed);
        // 75 pages.
        let n = page_number(token);
        let next = if n + 1 < 75 {
            format!("p{}", n + 1)
        } else {
            String::new()
        };
        envelope(&format!(
            "<ListRecords>{}<resumptionToken>{next}</resumptionToken></ListRecords>",
            dc_record(n)
        ))
    });
    for run in 1..=2u64 {
        let error = run_loop(&harvester).await.unwrap_err();
        assert!(matches!(error, HarvestError::PageCap(_)), "{error:?}");
        let message = error.to_string();
        assert_eq!(
            message,
            format!(
                "https://loop.example.org/oai?verb=ListRecords&resumptionToken=p{}: 30 pages \
                 in this run and the list goes on: the run stops here, and the next one, due \
                 at once, continues from this page",
                30 * run
            )
        );
        let now = crate::date::now_rfc3339();
        assert_eq!(harvester.due(&now).unwrap(), ["loop"]);
        let (_, state, _) = harvester.list().unwrap().remove(0);
        assert_eq!(state.last_error, message);
        assert_eq!(state.token, format!("p{}", 30 * run));
        assert!(
            state.interrupted && state.continues,
            "the next run resumes the list"
        );
        // No page is fetched ahead past the last one a run may store.
        assert_eq!(u64::from(fetched.load(Ordering::Relaxed)), 30 * run);
        // The counts of a run that stopped carry into the one resuming it.
        assert_eq!((state.added, state.pages), (30 * run, 30 * run));
    }
    let state = run_loop(&harvester).await.unwrap();
    assert!(!state.interrupted && !state.continues && state.token.is_empty());
    assert_eq!((state.added, state.pages), (75, 75));
    assert_eq!(fetched.load(Ordering::Relaxed), 75);
    let now = crate::date::now_rfc3339();
    assert!(harvester.due(&now).unwrap().is_empty(), "the list ended");
    // Each record once.
    let store = node.store();
    let held = |n: u64| {
        store
            .record_state(node.node_id(), &format!("oai:loop:{n}"))
            .unwrap()
    };
    assert!((0..75).all(|n| held(n).is_some_and(|s| s.version == 1)));
}

#[test]
fn seen_ids_tell_new_identifiers_from_seen_ones() {
    let mut seen = SeenIds::new();
    assert!(seen.insert("oai:x:1"));
    assert!(seen.insert("oai:x:2"));
    assert!(!seen.insert("oai:x:1"));
    let fresh = (3..100_000)
        .filter(|n| seen.insert(&format!("oai:x:{n}")))
        .count();
    assert_eq!(fresh, 100_000 - 3, "no new identifier taken as seen");
    assert!((1..100_000).all(|n| !seen.insert(&format!("oai:x:{n}"))));
}

/// The filter holds 8 MiB whatever a run brings, answers alike in every
/// process, and takes a new identifier for a seen one as rarely as
/// `docs/harvest.md` says.
#[test]
fn seen_ids_are_bounded_deterministic_and_rarely_wrong() {
    let mut seen = SeenIds::new();
    assert_eq!(seen.0.num_bits(), SEEN_BITS);
    assert_eq!(std::mem::size_of_val(seen.0.as_slice()), 8 << 20);
    assert_eq!(seen.0.num_hashes(), SEEN_PROBES);
    // A fixed seed: a random one would give two filters different hashes.
    assert_eq!(
        seen.0.source_hash("oai:x:1"),
        SeenIds::new().0.source_hash("oai:x:1")
    );
    assert!(seen.0.expected_false_pos(1_000_000) < 1.5e-7);
    assert!((0.03..0.07).contains(&seen.0.expected_false_pos(10_000_000)));
    for n in 0..1_000_000 {
        seen.insert(&format!("oai:x:{n}"));
    }
    let taken_as_seen = (1_000_000..2_000_000)
        .filter(|n| !seen.insert(&format!("oai:y:{n}")))
        .count();
    assert!(
        taken_as_seen <= 2,
        "{taken_as_seen} new identifiers taken as seen"
    );
}

/// Empty pages between records, fewer than the bound in a row, are a
/// provider's right: such a list is harvested to its end.
#[tokio::test(flavor = "multi_thread")]
async fn a_list_with_long_runs_of_empty_pages_is_harvested_to_its_end() {
    let last = 2 * MAX_EMPTY_PAGES + 50;
    let (result, _harvester, _dir) = run_scripted(move |token| {
        let n = page_number(token);
        let records = if n % MAX_EMPTY_PAGES == 50 {
            dc_record(n)
        } else {
            String::new()
        };
        let next = if n < last {
            format!("p{}", n + 1)
        } else {
            String::new()
        };
        format!("<ListRecords>{records}<resumptionToken>{next}</resumptionToken></ListRecords>")
    })
    .await;
    let state = result.unwrap();
    assert_eq!((state.added, state.pages), (3, u64::from(last) + 1));
}

/// A token too long to be honest is a page error naming the URL, not a
/// token cut short to resume from.
#[tokio::test(flavor = "multi_thread")]
async fn an_overlong_resumption_token_is_an_error_naming_the_url() {
    let (result, harvester, _dir) = run_scripted(|token| {
        if token.is_empty() {
            format!(
                "<ListRecords>{}<resumptionToken>{}</resumptionToken></ListRecords>",
                dc_record(1),
                "t".repeat(crosswalk::tree::MAX_TOKEN_BYTES + 1)
            )
        } else {
            "<ListRecords><resumptionToken/></ListRecords>".to_owned()
        }
    })
    .await;
    let error = result.unwrap_err();
    assert!(matches!(error, HarvestError::Protocol(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message
            .starts_with("https://loop.example.org/oai?verb=ListRecords&metadataPrefix=oai_dc: "),
        "{message}"
    );
    assert!(message.contains("resumptionToken"), "{message}");
    let (_, state, _) = harvester.list().unwrap().remove(0);
    assert!(state.token.is_empty(), "no token cut short is kept");
    assert_eq!(state.added, 0);
}

/// A page cut short after a record (a dropped connection the HTTP layer
/// did not notice, a proxy's truncated body) has neither its closing tags
/// nor its token. Read as complete, it was the list's last page: the run
/// ended, `from` moved to this list's date, and the rest of the list was
/// never harvested. It is an error naming the URL and token, and the
/// state stays at the page before it.
#[tokio::test(flavor = "multi_thread")]
async fn a_page_cut_short_fails_the_run_and_keeps_its_state() {
    let (result, harvester, _dir) = run_scripted_body(|token| {
        let page = match token {
            "" => format!(
                "<ListRecords>{}{}<resumptionToken>p1</resumptionToken></ListRecords></OAI-PMH>",
                dc_record(1),
                dc_record(2)
            ),
            // Two records, cut after the first `</record>`.
            _ => format!("<ListRecords>{}{}", dc_record(3), dc_record(4))
                .split_inclusive("</record>")
                .next()
                .unwrap()
                .to_owned(),
        };
        format!(
            r#"<?xml version="1.0"?><OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><responseDate>2024-03-05T10:00:00Z</responseDate>{page}"#
        )
        .into_bytes()
    })
    .await;
    let error = result.unwrap_err();
    assert!(matches!(error, HarvestError::Protocol(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with("https://loop.example.org/oai?verb=ListRecords&resumptionToken=p1: "),
        "{message}"
    );
    assert!(
        message.contains("inside <ListRecords>") && message.contains("cut short"),
        "{message}"
    );
    let (_, state, _) = harvester.list().unwrap().remove(0);
    assert_eq!(state.token, "p1", "the run resumes at the page cut short");
    assert_eq!(state.from, "", "the next list starts where this one did");
    assert!(state.interrupted);
    assert_eq!((state.added, state.pages), (2, 1));
    assert_eq!(state.last_error, message);
}

/// A provider answering every list with one page: `body`.
struct OnePage(String);

#[async_trait::async_trait]
impl Fetch for OnePage {
    async fn get(&self, url: &str, _ca: &str) -> Result<Vec<u8>, String> {
        if query(url).get("verb").map(String::as_str) == Some("Identify") {
            return Ok(envelope(
                "<Identify><granularity>YYYY-MM-DD</granularity></Identify>",
            ));
        }
        Ok(envelope(&self.0))
    }
}

/// Within one page the provider's last word on an id stands: a record
/// listed live and then deleted is not held afterwards, whether it was
/// held before or not; a live record without metadata is refused by id.
#[tokio::test(flavor = "multi_thread")]
async fn a_record_listed_then_deleted_in_one_page_ends_deleted() {
    let live = |id: &str| {
        format!(
            r#"<record><header><identifier>oai:repo:{id}</identifier><datestamp>2024-03-01</datestamp></header><metadata><oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Record {id}</dc:title><dc:creator>Ruiz, Ana</dc:creator><dc:publisher>Repo</dc:publisher><dc:date>2020</dc:date><dc:type>Dataset</dc:type></oai_dc:dc></metadata></record>"#
        )
    };
    let gone = |id: &str| {
        format!(
            r#"<record><header status="deleted"><identifier>oai:repo:{id}</identifier><datestamp>2024-03-02</datestamp></header></record>"#
        )
    };
    let (node, _dir) = crate::test_support::opened_node("polar");
    node.import_lines(
        1,
        &[crate::test_support::record_line(
            "oai:repo:1",
            "Record 1",
            "federation",
        )],
    )
    .unwrap();
    // And a live record without metadata: refused, not dropped unsaid.
    let empty = r#"<record><header><identifier>oai:repo:4</identifier><datestamp>2024-03-01</datestamp></header><metadata/></record>"#;
    let page = format!(
        "<ListRecords>{}{}{}{}{}{empty}</ListRecords>",
        live("1"),
        gone("1"),
        live("2"),
        gone("2"),
        live("3")
    );
    let harvester = Harvester::new(node.clone(), Arc::new(OnePage(page))).unwrap();
    add_repo(&harvester);
    let state = harvester.run("repo", &quiet).await.unwrap();
    assert_eq!(
        state.rejections,
        ["oai:repo:4: metadata: no oai_dc:dc element in the record: nothing to import"]
    );
    let held = held(&node);
    assert!(held["oai:repo:1"].1, "held before: ends deleted");
    assert!(!held.contains_key("oai:repo:2"), "never held: not stored");
    assert_eq!(held["oai:repo:3"], (1, false));
}
