//! Replication against a peer that lies. Each test serves a real node's log
//! through an in-process [`FederationPeer`] that tampers with the stream, and
//! shows the receiver refuses it with the error that names the fault, keeps
//! nothing of the refused batch, counts the rejection against the peer, and
//! still completes an honest pull afterwards (unless the origin was frozen).

use std::collections::BTreeMap;
use std::sync::Arc;

use prost::Message;
use tempfile::TempDir;

use super::*;
use crate::log::{self, LastPublic, RecordState, StoredEntry};
use crate::node::NodeError;
use crate::proto::{
    log_entry::Body, pull_item, Checkpoint, DatasetRecord, Envelope, LogEntry, OriginHead,
    Visibility,
};
use crate::sign::{SignError, MAX_ENVELOPE_BYTES, RECORD_TYPE};
use crate::visibility::Viewer;

/// The origin under attack.
const POLAR: &str = "polar";
/// A pinned peer with a valid key of its own, relaying `polar`'s log.
const UNI: &str = "uni";
/// The receiver.
const HERE: &str = "genomics";

struct Federation {
    polar: Arc<Node>,
    uni: Arc<Node>,
    here: Arc<Node>,
    /// Replication at `here`.
    sync: Arc<Replicator>,
    _dirs: Vec<TempDir>,
}

fn open_node(id: &str, env: &BTreeMap<String, String>) -> (Arc<Node>, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join(id);
    let node_id = id.parse().unwrap();
    Node::create(&data, &node_id, "127.0.0.1:0".parse().unwrap()).unwrap();
    (Node::open(&data, env).unwrap(), dir)
}

/// Three nodes that pin one another; `here` is in no group at `polar`.
fn federation() -> Federation {
    federation_with(&[])
}

/// [`federation`] with configuration overrides at `here`.
fn federation_with(overrides: &[(&str, &str)]) -> Federation {
    federation_configured(&[], &[], overrides)
}

/// [`federation`] with configuration overrides at `polar`, `uni` and `here`.
fn federation_configured(
    at_polar: &[(&str, &str)],
    at_uni: &[(&str, &str)],
    at_here: &[(&str, &str)],
) -> Federation {
    let env = |overrides: &[(&str, &str)]| -> BTreeMap<String, String> {
        overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let (polar, d1) = open_node(POLAR, &env(at_polar));
    let (uni, d2) = open_node(UNI, &env(at_uni));
    let (here, d3) = open_node(HERE, &env(at_here));
    let pin = |at: &Node, other: &Node, groups: &[&str]| {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        at.trust().add(&other.invite(), &groups).unwrap();
    };
    pin(&polar, &uni, &["polar-consortium"]);
    pin(&polar, &here, &[]);
    pin(&uni, &polar, &[]);
    pin(&uni, &here, &[]);
    pin(&here, &polar, &[]);
    pin(&here, &uni, &[]);
    let sync = Replicator::new(here.clone(), no_dialing());
    Federation {
        polar,
        uni,
        here,
        sync,
        _dirs: vec![d1, d2, d3],
    }
}

/// Tests hand each round its peer; nothing is dialed.
fn no_dialing() -> Connector {
    Arc::new(|peer: crate::trust::Peer| {
        Box::pin(async move {
            Err(SyncError::Unreachable {
                peer: peer.node_id.to_string(),
                message: "tests do not dial".into(),
            })
        })
    })
}

fn line(id: &str, title: &str, visibility: &str) -> String {
    crate::test_support::record_line(id, title, visibility)
}

/// Imports public records `PDC-1..=n` at `node`: entries 1..=n of its log.
fn import(node: &Node, first: usize, n: usize) {
    let lines: Vec<String> = (first..first + n)
        .map(|i| line(&format!("PDC-{i}"), &format!("Ice station {i}"), "public"))
        .collect();
    let outcome = node.import_lines(1, &lines).unwrap();
    assert_eq!(outcome.stored, n as u64, "{outcome:?}");
}

/// What a faulty or compromised origin could publish: `record` signed with
/// `node`'s own key at the next index of its log, with a fresh checkpoint.
fn publish_raw(node: &Node, record: DatasetRecord) -> u64 {
    let store = node.store();
    let mut appender = store.appender(node.node_id()).unwrap();
    let index = appender.next_index();
    let id = record.id.clone();
    let previous = store.record_state(node.node_id(), &id).unwrap();
    let state = RecordState::of_version(&record, crate::ids::LogIndex(index), previous.as_ref());
    let entry = LogEntry {
        origin: node.node_id().to_string(),
        index,
        body: Some(Body::Record(record)),
    };
    let payload = entry.encode_to_vec();
    let leaf = log::entry_leaf(node.node_id(), &id, &payload);
    let envelope = node.key().sign(RECORD_TYPE, payload);
    appender
        .push(&StoredEntry::Signed(envelope), leaf, Some((id, state)))
        .unwrap();
    let root = appender.root().unwrap();
    let append = appender.finish();
    store.commit(&append).unwrap();
    store.flush().unwrap();
    let checkpoint = log::sign_checkpoint(&node.key(), node.node_id(), append.new_size(), root);
    store
        .put_checkpoint(node.node_id(), &checkpoint.encode_to_vec())
        .unwrap();
    index
}

/// A valid public record of `origin` at `version`.
fn raw_record(origin: &str, id: &str, version: u64) -> DatasetRecord {
    let mut record =
        crate::record::parse_json_line(&line(id, &format!("{id} version {version}"), "public"))
            .unwrap();
    record.origin = origin.into();
    record.version = version;
    record.visibility = Visibility::Public as i32;
    record
}

type Tamper = Box<dyn Fn(&mut Vec<PullItem>) + Send + Sync>;

/// A peer that serves `source`'s logs as the server would to `viewer`, then
/// lets `tamper` rewrite the stream (item 0 is the checkpoint).
struct Served {
    claims: String,
    source: Arc<Node>,
    /// Who pulls: served what `source` grants it, as the server does.
    receiver: crate::ids::NodeId,
    /// Log size to announce instead of the checkpoint's.
    head: Option<u64>,
    tamper: Tamper,
}

impl Served {
    /// `source` answering honestly as itself, to `receiver`.
    fn honest(source: &Arc<Node>, receiver: &str) -> Self {
        Self::relay(source.node_id(), source, receiver, Box::new(|_| {}))
    }

    /// Peer `claims` serving what `source` holds, as `source` would serve it
    /// to `receiver`, rewritten by `tamper`.
    fn relay(claims: &str, source: &Arc<Node>, receiver: &str, tamper: Tamper) -> Self {
        Self {
            claims: claims.to_owned(),
            source: source.clone(),
            receiver: receiver.parse().unwrap(),
            head: None,
            tamper,
        }
    }
}

#[async_trait::async_trait]
impl FederationPeer for Served {
    async fn node_info(&self) -> Result<NodeInfo, SyncError> {
        let mut origins = Vec::new();
        for (origin, _) in self.source.store().origins()? {
            if let Some((_, size)) = serve_checkpoint(&self.source, &origin)? {
                let size = self.head.unwrap_or(size);
                origins.push(OriginHead { origin, size });
            }
        }
        Ok(NodeInfo {
            node_id: self.claims.clone(),
            origins,
            ..NodeInfo::default()
        })
    }

    async fn pull(
        &self,
        origin: &str,
        after_index: u64,
        max_batch: u32,
    ) -> Result<PullStream, SyncError> {
        let Some((checkpoint, size)) = serve_checkpoint(&self.source, origin)? else {
            return Err(SyncError::Refused {
                peer: self.claims.clone(),
                message: format!("no log of {origin} here"),
            });
        };
        let mut items = vec![PullItem {
            index: size,
            item: Some(pull_item::Item::Checkpoint(checkpoint)),
        }];
        let per_batch = match max_batch {
            0 => BATCH,
            n => n as usize,
        };
        let viewer = self
            .source
            .peer_viewer(&self.receiver)
            .expect("the source's audiences");
        let mut from = after_index;
        while from < size {
            let batch = serve_batch(&self.source, &viewer, origin, from, size, per_batch)?;
            from = batch.last().map(|proof| proof.index).unwrap_or(size);
            items.extend(batch);
        }
        (self.tamper)(&mut items);
        // The key sets announced after the checkpoint, as the Federation
        // service sends them; the tampers above see the stream without them.
        let announced = serve_key_sets(&self.source, origin, after_index, size)?;
        let at = usize::from(matches!(
            items.first(),
            Some(PullItem {
                item: Some(pull_item::Item::Checkpoint(_)),
                ..
            })
        ));
        items.splice(at..at, announced);
        Ok(Box::pin(futures::stream::iter(items.into_iter().map(Ok))))
    }

    async fn hint(&self, _origin: &str, _size: u64) -> Result<(), SyncError> {
        Ok(())
    }

    async fn search(
        &self,
        _request: crate::proto::PeerSearchRequest,
        _within: std::time::Duration,
    ) -> Result<crate::proto::PeerSearchResponse, SyncError> {
        Err(no_searches())
    }
}

/// Runs one round of `here` with the peer pinned as `peer`, served by `served`.
async fn round_with(
    sync: &Arc<Replicator>,
    peer: &str,
    served: impl FederationPeer + 'static,
) -> RoundReport {
    let pinned = sync.node().trust().get(peer).unwrap().expect("peer pinned");
    sync.sync_peer(pinned, Arc::new(served)).await
}

/// A round at `here` with `uni` relaying `polar`'s log, altered by `tamper`.
async fn tampered_round(
    fed: &Federation,
    tamper: impl Fn(&mut Vec<PullItem>) + Send + Sync + 'static,
) -> RoundReport {
    round_with(
        &fed.sync,
        UNI,
        Served::relay(UNI, &fed.polar, HERE, Box::new(tamper)),
    )
    .await
}

fn status(sync: &Replicator, peer: &str) -> PeerStatus {
    sync.status().get(peer).cloned().unwrap_or_default()
}

/// The served item carrying entry `index` (item 0 is the checkpoint).
fn item(items: &mut [PullItem], index: u64) -> &mut PullItem {
    items
        .iter_mut()
        .find(|i| {
            i.index == index
                && !matches!(
                    i.item,
                    Some(
                        pull_item::Item::Checkpoint(_)
                            | pull_item::Item::Proof(_)
                            | pull_item::Item::KeySet(_)
                    )
                )
        })
        .unwrap_or_else(|| panic!("no entry {index} served"))
}

fn envelope(item: &mut PullItem) -> &mut Envelope {
    match &mut item.item {
        Some(pull_item::Item::Entry(envelope)) => envelope,
        other => panic!("entry {} is not an envelope: {other:?}", item.index),
    }
}

/// Entry `index` of `origin`'s log as stored at `node`.
fn stored_envelope(node: &Node, origin: &str, index: u64) -> Envelope {
    match node
        .store()
        .entry(origin, crate::ids::LogIndex(index))
        .unwrap()
    {
        Some(StoredEntry::Signed(envelope)) => envelope,
        other => panic!("{origin} entry {index} is {other:?}"),
    }
}

fn checkpoint_of(node: &Node, origin: &str) -> Envelope {
    serve_checkpoint(node, origin).unwrap().unwrap().0
}

/// The reason and evidence kept for a frozen origin.
fn frozen_evidence(node: &Node, origin: &str) -> (String, Envelope) {
    let value = node
        .store()
        .frozen_evidence(origin)
        .unwrap()
        .expect("origin frozen");
    let cut = value.iter().position(|b| *b == 0).unwrap();
    (
        String::from_utf8(value[..cut].to_vec()).unwrap(),
        Envelope::decode(&value[cut + 1..]).unwrap(),
    )
}

fn verify_error(index: u64, source: SignError) -> String {
    SyncError::Verify {
        origin: POLAR.into(),
        index,
        source,
    }
    .to_string()
}

fn sequence_error(index: u64, message: &str) -> String {
    SyncError::Sequence {
        origin: POLAR.into(),
        index,
        message: message.into(),
    }
    .to_string()
}

/// Asserts the round failed with exactly `expected`, counted as the
/// `n`-th rejection of `peer`.
fn assert_refused(
    sync: &Arc<Replicator>,
    report: &RoundReport,
    peer: &str,
    expected: &str,
    n: u64,
) {
    assert!(!report.ok, "accepted: {report:?}");
    assert_eq!(report.error, expected);
    let status = status(sync, peer);
    assert_eq!(status.rejected, n, "{status:?}");
    assert_eq!(status.last_error, expected);
}

/// `polar` revokes its signing key from log position `from` on, as after
/// a leak.
fn revoke_polar_key_from(fed: &Federation, from: u64) {
    let leaked = fed.polar.key().key_id().clone();
    fed.polar
        .revoke_key(Vec::new(), leaked, from, "leaked".into(), 30)
        .unwrap();
}

/// An honest pull from `polar` itself completes and leaves `here` with
/// `polar`'s whole log under its checkpoint.
async fn assert_honest_retry(fed: &Federation) {
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    assert!(report.ok, "{report:?}");
    let size = fed.polar.store().log_size(POLAR).unwrap();
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), size);
    assert_eq!(
        fed.here.store().durable_log_size(POLAR),
        size,
        "a pull is durable when its round ends"
    );
    assert_eq!(
        fed.here.store().checkpoint(POLAR).unwrap(),
        fed.polar.store().checkpoint(POLAR).unwrap(),
        "the receiver holds the origin's checkpoint over the whole log"
    );
    assert!(!fed.here.store().is_frozen(POLAR).unwrap());
}

#[tokio::test]
async fn a_flipped_payload_byte_is_refused_and_its_batch_not_kept() {
    let fed = federation();
    import(&fed.polar, 1, 5);
    let report = tampered_round(&fed, |items| {
        let payload = &mut envelope(item(items, 3)).payload;
        let at = payload.len() / 2;
        payload[at] ^= 0x01;
    })
    .await;
    let expected = verify_error(
        3,
        SignError::BadSignature {
            key_id: fed.polar.key().key_id().clone(),
        },
    );
    assert_refused(&fed.sync, &report, UNI, &expected, 1);
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 0);
    assert_eq!(fed.here.store().record_state(POLAR, "PDC-1").unwrap(), None);
    assert_eq!(status(&fed.sync, UNI).entries_received, 0);
    assert_honest_retry(&fed).await;
}

#[tokio::test]
async fn a_record_signed_by_another_pinned_nodes_key_is_refused() {
    let fed = federation();
    import(&fed.polar, 1, 5);
    // `uni` signs a well-formed entry 3 claiming to be `polar`'s.
    let forged = LogEntry {
        origin: POLAR.into(),
        index: 3,
        body: Some(Body::Record(raw_record(POLAR, "PDC-3", 7))),
    };
    let forged = fed.uni.key().sign(RECORD_TYPE, forged.encode_to_vec());
    let polar_key = fed.polar.key().key_id().clone();

    // Signed under its own key id: not a key of the origin.
    let as_is = forged.clone();
    let report = tampered_round(&fed, move |items| *envelope(item(items, 3)) = as_is.clone()).await;
    let expected = verify_error(3, SignError::UnknownKey(fed.uni.key().key_id().to_string()));
    assert_refused(&fed.sync, &report, UNI, &expected, 1);

    // The same signature labelled with the origin's key id: `key_id` is only a hint.
    let mut relabelled = forged;
    relabelled.signatures[0].key_id = polar_key.to_string();
    let report = tampered_round(&fed, move |items| {
        *envelope(item(items, 3)) = relabelled.clone()
    })
    .await;
    let expected = verify_error(3, SignError::BadSignature { key_id: polar_key });
    assert_refused(&fed.sync, &report, UNI, &expected, 2);

    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 0);
    assert_eq!(fed.here.store().record_state(POLAR, "PDC-3").unwrap(), None);
    assert_honest_retry(&fed).await;
}

#[tokio::test]
async fn an_older_entry_replayed_at_a_later_index_is_refused() {
    let fed = federation();
    import(&fed.polar, 1, 3);
    // PDC-1 changes: version 2 is entry 4.
    let changed = line("PDC-1", "Ice station 1, corrected", "public");
    fed.polar.import_lines(1, &[changed]).unwrap();
    assert_eq!(fed.polar.store().log_size(POLAR).unwrap(), 5);
    let old = stored_envelope(&fed.polar, POLAR, 1);

    // The relay serves version 1 again where version 2 stands.
    let report = tampered_round(&fed, move |items| *envelope(item(items, 4)) = old.clone()).await;
    assert_refused(
        &fed.sync,
        &report,
        UNI,
        &sequence_error(4, "signed as entry 1 of its log"),
        1,
    );
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 0);
    assert_honest_retry(&fed).await;
    assert_eq!(
        fed.here
            .store()
            .record_state(POLAR, "PDC-1")
            .unwrap()
            .unwrap()
            .version,
        2
    );
}

#[tokio::test]
async fn a_lower_version_is_refused_even_when_the_origin_signs_it() {
    let fed = federation();
    import(&fed.polar, 1, 2);
    fed.polar
        .import_lines(1, &[line("PDC-1", "Ice station 1, corrected", "public")])
        .unwrap();
    assert_honest_retry(&fed).await;
    // The origin itself goes back to version 1 of PDC-1 at a new index: held
    // here as version 2 since an earlier pull, so a later batch must see it.
    let index = publish_raw(&fed.polar, raw_record(POLAR, "PDC-1", 1));
    let before = fed.here.store().log_size(POLAR).unwrap();
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    assert_refused(
        &fed.sync,
        &report,
        POLAR,
        &sequence_error(index, "record PDC-1 version 1 does not follow version 2"),
        1,
    );
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), before);
    let state = fed.here.store().record_state(POLAR, "PDC-1").unwrap();
    assert_eq!(state.unwrap().version, 2, "the held version stands");
}

#[tokio::test]
async fn a_rehomed_record_is_refused() {
    let fed = federation();
    import(&fed.polar, 1, 3);
    import(&fed.uni, 1, 2);
    let polar_key = fed.polar.key().key_id().clone();

    // 1. The relay rewrites the origin inside a signed payload.
    let report = tampered_round(&fed, |items| {
        let envelope = envelope(item(items, 2));
        let mut entry = LogEntry::decode(envelope.payload.as_slice()).unwrap();
        entry.origin = UNI.into();
        if let Some(Body::Record(record)) = &mut entry.body {
            record.origin = UNI.into();
        }
        envelope.payload = entry.encode_to_vec();
    })
    .await;
    let expected = verify_error(
        2,
        SignError::BadSignature {
            key_id: polar_key.clone(),
        },
    );
    assert_refused(&fed.sync, &report, UNI, &expected, 1);
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 0);

    // 2. `uni` slips `polar`'s genuine entry into its own log.
    let genuine = stored_envelope(&fed.polar, POLAR, 1);
    let report = round_with(
        &fed.sync,
        UNI,
        Served::relay(
            UNI,
            &fed.uni,
            HERE,
            Box::new(move |items| *envelope(item(items, 1)) = genuine.clone()),
        ),
    )
    .await;
    let expected = SyncError::Verify {
        origin: UNI.into(),
        index: 1,
        source: SignError::UnknownKey(polar_key.to_string()),
    }
    .to_string();
    assert_refused(&fed.sync, &report, UNI, &expected, 2);
    assert_eq!(fed.here.store().log_size(UNI).unwrap(), 0);
    assert_eq!(fed.here.store().record_state(UNI, "PDC-1").unwrap(), None);

    // 3. `polar` signs, in its own log, a record that names `uni` as origin.
    let index = publish_raw(&fed.polar, raw_record(UNI, "UNI-claimed", 1));
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    let expected = verify_error(
        index,
        SignError::OriginMismatch {
            expected: POLAR.into(),
            found: UNI.into(),
        },
    );
    assert_refused(&fed.sync, &report, POLAR, &expected, 1);
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 0);
    assert_eq!(
        fed.here.store().record_state(UNI, "UNI-claimed").unwrap(),
        None
    );

    // `uni`'s own log still arrives intact from `uni`.
    let report = round_with(&fed.sync, UNI, Served::honest(&fed.uni, HERE)).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(fed.here.store().log_size(UNI).unwrap(), 3);
}

#[tokio::test]
async fn a_signed_record_that_breaks_the_record_rules_is_refused() {
    let fed = federation();
    import(&fed.polar, 1, 2);
    // No id: it would share the subject digest of the origin's key sets.
    let mut bad = raw_record(POLAR, "PDC-x", 1);
    bad.id = String::new();
    let reason = crate::record::validate(&bad).unwrap_err();
    let index = publish_raw(&fed.polar, bad);
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    let expected = SyncError::Invalid {
        origin: POLAR.into(),
        index,
        id: String::new(),
        source: reason,
    }
    .to_string();
    assert_refused(&fed.sync, &report, POLAR, &expected, 1);
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 0);
    assert_eq!(fed.here.store().record_state(POLAR, "").unwrap(), None);
}

/// An origin may have signed an id holding an invisible format character
/// before such ids were refused at import: its replicas keep taking its
/// log rather than stop at that entry for good.
#[tokio::test]
async fn a_peer_record_whose_id_holds_a_format_character_still_replicates() {
    let fed = federation();
    import(&fed.polar, 1, 2);
    let id = "PDC-\u{200B}1";
    let record = raw_record(POLAR, id, 1);
    assert!(crate::record::check_new(&record).is_err());
    let index = publish_raw(&fed.polar, record);
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(
        fed.here.store().log_size(POLAR).unwrap(),
        fed.polar.store().log_size(POLAR).unwrap()
    );
    let state = fed.here.store().record_state(POLAR, id).unwrap();
    assert_eq!(state.map(|state| state.log_index.0), Some(index));
    assert!(operator_sees(&fed.here, POLAR, id));
}

#[tokio::test]
async fn reordered_skipped_or_stray_entries_are_refused() {
    let fed = federation();
    import(&fed.polar, 1, 5);
    let cases: Vec<(Tamper, String)> = vec![
        (
            // Two entries swapped in the stream.
            Box::new(|items| items.swap(3, 4)),
            sequence_error(2, "arrived as entry 3, expected 2"),
        ),
        (
            // Two envelopes swapped under their labels.
            Box::new(|items| {
                let two = envelope(item(items, 2)).clone();
                let three = envelope(item(items, 3)).clone();
                *envelope(item(items, 2)) = three;
                *envelope(item(items, 3)) = two;
            }),
            sequence_error(2, "signed as entry 3 of its log"),
        ),
        (
            // An entry left out.
            Box::new(|items| {
                items.remove(3);
            }),
            sequence_error(2, "arrived as entry 3, expected 2"),
        ),
        (
            // No checkpoint first.
            Box::new(|items| {
                items.remove(0);
            }),
            sequence_error(0, "pull did not start with a checkpoint"),
        ),
        (
            // A checkpoint where an entry belongs.
            Box::new(|items| items[3].item = items[0].item.clone()),
            sequence_error(2, "neither an entry nor its digests"),
        ),
        (
            // An empty item.
            Box::new(|items| items[3].item = None),
            sequence_error(2, "neither an entry nor its digests"),
        ),
    ];
    for (n, (tamper, expected)) in cases.into_iter().enumerate() {
        let report = round_with(&fed.sync, UNI, Served::relay(UNI, &fed.polar, HERE, tamper)).await;
        assert_refused(&fed.sync, &report, UNI, &expected, n as u64 + 1);
        assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 0, "{expected}");
    }
    assert_honest_retry(&fed).await;
}

/// Digests in place of `items`' entry `index`, as a relay sends a record
/// the receiver may not see.
fn as_digests(items: &mut [PullItem], index: u64) {
    let entry = item(items, index);
    let payload = log::payload_digest(&envelope(entry).payload);
    entry.item = Some(pull_item::Item::Redacted(crate::proto::Redacted {
        subject_digest: log::subject_digest(POLAR, log::KEYSET_SUBJECT).to_vec(),
        payload_digest: payload.to_vec(),
    }));
}

/// An entry about no record goes to every peer whole. A relay that sends
/// an audience as digests (with the right digests, so the log's proof
/// holds) would have the receiver enforce the audience before it for good:
/// here, one that still places `here` in the group the origin has since
/// taken it out of. The batch is refused and the relay blamed; the same
/// for the key set at entry 0.
#[tokio::test]
async fn an_audience_or_a_key_set_sent_as_digests_is_refused() {
    let fed = federation();
    publish_with_here_in(&fed.polar, &["polar-consortium"]);
    import(&fed.polar, 1, 2);
    narrow(&fed.polar, "PDC-1", "groups");
    assert_honest_retry(&fed).await;
    assert!(operator_sees(&fed.here, POLAR, "PDC-1"), "in the group");
    let held = fed.here.store().log_size(POLAR).unwrap();

    let narrowed = publish_with_here_in(&fed.polar, &[]);
    let report = tampered_round(&fed, move |items| as_digests(items, narrowed)).await;
    let refused = "an entry about no record (a key set or an audience) came as digests; \
                   every node must receive those whole";
    assert_refused(
        &fed.sync,
        &report,
        UNI,
        &sequence_error(narrowed, refused),
        1,
    );
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), held);
    assert!(operator_sees(&fed.here, POLAR, "PDC-1"), "nothing changed");

    // From the origin itself, whole: the record leaves.
    assert_honest_retry(&fed).await;
    assert!(!operator_sees(&fed.here, POLAR, "PDC-1"), "withdrawn");

    // The key set at entry 0, at a node that holds nothing yet.
    let fresh = federation();
    import(&fresh.polar, 1, 2);
    let report = tampered_round(&fresh, |items| as_digests(items, 0)).await;
    assert_refused(&fresh.sync, &report, UNI, &sequence_error(0, refused), 1);
    assert_eq!(fresh.here.store().log_size(POLAR).unwrap(), 0);
    assert_honest_retry(&fresh).await;
}

#[tokio::test]
async fn entries_beyond_the_checkpoint_are_refused() {
    let fed = federation();
    import(&fed.polar, 1, 3);
    let older = checkpoint_of(&fed.polar, POLAR);
    import(&fed.polar, 4, 3);
    // An older, genuinely signed checkpoint of size 4, and entries up to 7.
    let report = tampered_round(&fed, move |items| {
        items[0].item = Some(pull_item::Item::Checkpoint(older.clone()));
    })
    .await;
    assert_refused(
        &fed.sync,
        &report,
        UNI,
        &sequence_error(4, "beyond the checkpoint of size 4"),
        1,
    );
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 0);
    assert_honest_retry(&fed).await;
}

#[tokio::test]
async fn an_oversized_envelope_is_refused_before_verification() {
    let fed = federation();
    import(&fed.polar, 1, 3);
    let report = tampered_round(&fed, |items| {
        envelope(item(items, 2)).payload = vec![7; MAX_ENVELOPE_BYTES]
    })
    .await;
    assert!(!report.ok);
    assert!(
        report.error.starts_with(&format!(
            "{UNI}: pull of {POLAR} cut off at entry 2: envelope of "
        )) && report
            .error
            .ends_with(&format!("exceeds the limit of {MAX_ENVELOPE_BYTES} bytes")),
        "{}",
        report.error
    );
    assert_eq!(status(&fed.sync, UNI).rejected, 1);
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 0);
    assert_honest_retry(&fed).await;
}

#[tokio::test]
async fn a_checkpoint_not_signed_by_the_origin_is_refused_and_frames_nobody() {
    let fed = federation();
    import(&fed.polar, 1, 3);
    // `uni` signs a checkpoint for `polar` with a root of its choosing.
    let forged = Checkpoint {
        origin: POLAR.into(),
        size: 4,
        root: vec![9; 32],
    };
    let forged = fed
        .uni
        .key()
        .sign(crate::sign::CHECKPOINT_TYPE, forged.encode_to_vec());
    let report = tampered_round(&fed, move |items| {
        items[0].item = Some(pull_item::Item::Checkpoint(forged.clone()));
    })
    .await;
    let expected = SyncError::Checkpoint {
        origin: POLAR.into(),
        source: SignError::UnknownKey(fed.uni.key().key_id().to_string()),
    }
    .to_string();
    assert_refused(&fed.sync, &report, UNI, &expected, 1);
    assert!(
        !fed.here.store().is_frozen(POLAR).unwrap(),
        "a relay's own signature is no evidence against the origin"
    );
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 0);
    assert_honest_retry(&fed).await;
}

/// The thief of a key the origin has revoked signs a checkpoint with a
/// root of its choosing over the range the revocation covers. It no longer
/// speaks for the origin: refused, and the origin is not frozen as a fork
/// at the node that holds the revocation.
#[tokio::test]
async fn a_checkpoint_by_a_revoked_key_is_refused_and_frames_nobody() {
    let fed = federation();
    import(&fed.polar, 1, 3);
    let leaked = fed.polar.key();
    fed.polar
        .revoke_key(Vec::new(), leaked.key_id().clone(), 2, "leaked".into(), 30)
        .unwrap();
    assert_honest_retry(&fed).await;
    let forged = Checkpoint {
        origin: POLAR.into(),
        size: 4,
        root: vec![9; 32],
    };
    let forged = leaked.sign(crate::sign::CHECKPOINT_TYPE, forged.encode_to_vec());
    let tamper = move |items: &mut Vec<PullItem>| {
        items[0].item = Some(pull_item::Item::Checkpoint(forged.clone()));
    };
    let mut relay = Served::relay(UNI, &fed.polar, HERE, Box::new(tamper));
    // Announcing more than `here` holds, so that it pulls.
    relay.head = Some(100);
    let report = round_with(&fed.sync, UNI, relay).await;
    let expected = SyncError::Checkpoint {
        origin: POLAR.into(),
        source: SignError::RevokedCheckpoint {
            key_id: leaked.key_id().clone(),
            from: 2,
            size: 4,
        },
    }
    .to_string();
    assert_refused(&fed.sync, &report, UNI, &expected, 1);
    assert!(!fed.here.store().is_frozen(POLAR).unwrap(), "framed");
    assert_honest_retry(&fed).await;
}

#[tokio::test]
async fn a_forged_digest_is_refused_with_its_batch_and_blames_the_relay() {
    let fed = federation();
    import(&fed.polar, 1, 2);
    // Entry 3 is a group record `here` may not see: it arrives as digests.
    fed.polar
        .import_lines(1, &[line("PDC-grp", "Consortium survey", "groups")])
        .unwrap();
    import(&fed.polar, 4, 2);
    let size = fed.polar.store().log_size(POLAR).unwrap();

    let report = tampered_round(&fed, |items| match &mut item(items, 3).item {
        Some(pull_item::Item::Redacted(redacted)) => {
            redacted.payload_digest[0] ^= 0x80;
        }
        other => panic!("entry 3 should be redacted for {HERE}: {other:?}"),
    })
    .await;
    assert!(!report.ok, "accepted: {report:?}");
    assert!(
        report.error.starts_with(&format!(
            "{POLAR}: entries up to {size} are not part of the signed log"
        )),
        "{}",
        report.error
    );
    assert_eq!(status(&fed.sync, UNI).rejected, 1, "the relay is blamed");

    // Nothing of the batch was kept, and the origin is not framed: the
    // digests are unsigned, so a forged one says nothing about the origin.
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 0);
    assert!(!fed.here.store().is_frozen(POLAR).unwrap());
    assert_eq!(fed.here.store().checkpoint(POLAR).unwrap(), None);
    assert_honest_retry(&fed).await;
}

/// A relay that stops before closing a batch leaves nothing unproven behind.
#[tokio::test]
async fn a_batch_cut_before_its_proof_is_dropped_and_pulled_again() {
    let fed = federation();
    import(&fed.polar, 1, 5);
    let report = tampered_round(&fed, |items| {
        items.retain(|i| !matches!(i.item, Some(pull_item::Item::Proof(_))));
    })
    .await;
    assert!(!report.ok, "{report:?}");
    assert!(
        report.error.contains("items after the last proof"),
        "{}",
        report.error
    );
    assert_eq!(report.entries, 0);
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 0);
    assert_eq!(status(&fed.sync, UNI).rejected, 1);
    assert_honest_retry(&fed).await;
}

#[tokio::test]
async fn a_second_checkpoint_that_disagrees_is_equivocation() {
    let fed = federation();
    import(&fed.polar, 1, 4);
    assert_honest_retry(&fed).await;
    let held = fed.here.store().log_size(POLAR).unwrap();
    let first = fed.here.store().checkpoint(POLAR).unwrap().unwrap();

    // The origin's key signs a second tree head for a size already held here.
    let second = Checkpoint {
        origin: POLAR.into(),
        size: held - 1,
        root: vec![3; 32],
    };
    let second = fed
        .polar
        .key()
        .sign(crate::sign::CHECKPOINT_TYPE, second.encode_to_vec());
    let served = second.clone();
    let mut relay = Served::relay(
        UNI,
        &fed.polar,
        HERE,
        Box::new(move |items| {
            items.truncate(1);
            items[0].item = Some(pull_item::Item::Checkpoint(served.clone()));
        }),
    );
    relay.head = Some(held + 1);
    let report = round_with(&fed.sync, UNI, relay).await;
    let message = format!(
        "the signed checkpoint of size {} is not a prefix of the signed checkpoint of size {held} (seen through a pull)",
        held - 1
    );
    let expected = SyncError::Equivocation {
        origin: POLAR.into(),
        message: message.clone(),
    }
    .to_string();
    assert_refused(&fed.sync, &report, UNI, &expected, 1);

    // Both checkpoints are kept: the one held, and the conflicting one as evidence.
    assert!(fed.here.store().is_frozen(POLAR).unwrap());
    let (reason, evidence) = frozen_evidence(&fed.here, POLAR);
    assert_eq!(reason, message);
    assert_eq!(evidence, second);
    assert_eq!(fed.here.store().checkpoint(POLAR).unwrap().unwrap(), first);
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), held);
    // The evidence file proves it with nothing else.
    let file = fed
        .here
        .store()
        .evidence(POLAR)
        .unwrap()
        .expect("evidence kept");
    let proven = crate::sync::witness::verify(&file).unwrap();
    assert_eq!(
        proven.conflict,
        crate::sync::witness::Conflict::NotAPrefix {
            smaller: held - 1,
            larger: held
        }
    );

    import(&fed.polar, 5, 1);
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    assert!(report.ok && report.entries == 0, "{report:?}");
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), held);
    assert!(matches!(
        begin_ingest(&fed.here, POLAR, &checkpoint_of(&fed.polar, POLAR), &[]),
        Err(SyncError::Frozen(_))
    ));
}

#[tokio::test]
async fn an_agreeing_checkpoint_for_a_held_size_is_no_evidence() {
    let fed = federation();
    import(&fed.polar, 1, 2);
    let older = checkpoint_of(&fed.polar, POLAR);
    import(&fed.polar, 3, 2);
    assert_honest_retry(&fed).await;
    assert!(matches!(
        begin_ingest(&fed.here, POLAR, &older, &[]),
        Ok(None)
    ));
    assert!(!fed.here.store().is_frozen(POLAR).unwrap());
}

#[tokio::test]
async fn a_peer_answering_as_another_node_is_refused() {
    let fed = federation();
    import(&fed.polar, 1, 2);
    // Dialed as `uni`, the peer says it is `polar`.
    let report = round_with(
        &fed.sync,
        UNI,
        Served::relay(POLAR, &fed.polar, HERE, Box::new(|_| {})),
    )
    .await;
    let expected = SyncError::WrongNode {
        peer: UNI.into(),
        found: POLAR.into(),
    }
    .to_string();
    assert_refused(&fed.sync, &report, UNI, &expected, 1);
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 0);
}

#[tokio::test]
async fn a_bad_entry_in_a_later_batch_keeps_the_earlier_batches_and_the_pull_resumes() {
    let fed = federation();
    import(&fed.polar, 1, 2 * BATCH + 20);
    let bad = 2 * BATCH as u64 + 7;
    let report = tampered_round(&fed, move |items| {
        envelope(item(items, bad)).payload[5] ^= 0x20
    })
    .await;
    let expected = verify_error(
        bad,
        SignError::BadSignature {
            key_id: fed.polar.key().key_id().clone(),
        },
    );
    assert_refused(&fed.sync, &report, UNI, &expected, 1);
    // The first two batches committed whole with their cursor, and are
    // durable although the pull failed; nothing of the third.
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 2 * BATCH as u64);
    assert_eq!(fed.here.store().durable_log_size(POLAR), 2 * BATCH as u64);
    let last_good = format!("PDC-{}", 2 * BATCH - 1);
    assert!(fed
        .here
        .store()
        .record_state(POLAR, &last_good)
        .unwrap()
        .is_some());
    let first_refused = format!("PDC-{}", 2 * BATCH);
    assert_eq!(
        fed.here
            .store()
            .record_state(POLAR, &first_refused)
            .unwrap(),
        None
    );
    assert_eq!(fed.here.store().checkpoint(POLAR).unwrap(), None);

    // The honest retry starts where the good batches ended.
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.entries, 21, "only the entries after the cursor");
    assert_honest_retry(&fed).await;
}

#[tokio::test]
async fn suspended_and_revoked_origins_are_not_pulled_even_through_a_relay() {
    let fed = federation();
    import(&fed.polar, 1, 3);
    let checkpoint = checkpoint_of(&fed.polar, POLAR);
    let relay = |fed: &Federation| Served::relay(UNI, &fed.polar, HERE, Box::new(|_| {}));

    fed.here
        .trust()
        .set_state(POLAR, PeerState::Suspended)
        .unwrap();
    let report = round_with(&fed.sync, UNI, relay(&fed)).await;
    assert!(report.ok && report.entries == 0, "{report:?}");
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 0);
    assert!(matches!(
        begin_ingest(&fed.here, POLAR, &checkpoint, &[]),
        Err(SyncError::NotTrusted(origin)) if origin == POLAR
    ));

    fed.here
        .trust()
        .set_state(POLAR, PeerState::Active)
        .unwrap();
    import(&fed.polar, 4, 1);
    let report = round_with(&fed.sync, UNI, relay(&fed)).await;
    assert!(report.ok && report.entries == 5, "resumed: {report:?}");

    fed.here
        .trust()
        .set_state(POLAR, PeerState::Revoked)
        .unwrap();
    import(&fed.polar, 5, 1);
    let report = round_with(&fed.sync, UNI, relay(&fed)).await;
    assert!(report.ok && report.entries == 0, "{report:?}");
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 5);
    assert!(matches!(
        begin_ingest(&fed.here, POLAR, &checkpoint_of(&fed.polar, POLAR), &[]),
        Err(SyncError::NotTrusted(_))
    ));
}

// ------------------------------------------------------------ withdrawal

fn operator_sees(node: &Node, origin: &str, id: &str) -> bool {
    let operator = Viewer::Operator {
        node: node.node_id().clone(),
    };
    node.get(origin, id, &operator).is_ok()
}

/// Records `node` withdrew after holding them whole: narrowed, by an
/// audience, by a revocation (`meridian_sync_withdrawn_records_total`).
fn withdrawn(node: &Node) -> [u64; 3] {
    use crate::metrics::WithdrawReason::{Audience, Narrowed, Revocation};
    let counts = &node.metrics().withdrawn;
    [
        counts.get(Narrowed),
        counts.get(Audience),
        counts.get(Revocation),
    ]
}

/// `fsck` finds `node`'s store and index in order.
fn assert_fsck_clean(node: &Node) {
    let report = crate::fsck::check(node).unwrap();
    assert!(report.clean(), "{:?}", report.findings);
}

/// An index rebuilt from `node`'s store finds `ids` for "station", and
/// `fsck` finds all in order.
fn assert_rebuilt_and_clean(node: &Node, ids: &[&str]) {
    node.rebuild_index(&mut |_| {}).unwrap();
    assert_eq!(searched(node, "station"), ids);
    assert_fsck_clean(node);
}

/// Ids `node` finds for `text` as its operator, after indexing what it holds.
fn searched(node: &Node, text: &str) -> Vec<String> {
    node.catch_up_index(&mut |_| {}).unwrap();
    let request = crate::query::SearchRequest {
        text: text.into(),
        limit: 100,
        ..Default::default()
    };
    let operator = Viewer::Operator {
        node: node.node_id().clone(),
    };
    let results = node.index().search(&request, &operator).unwrap();
    let mut ids: Vec<String> = results.hits.into_iter().map(|hit| hit.id).collect();
    ids.sort();
    ids
}

/// How `source` serves entry `index` of `origin` to `viewer`.
fn served_as(source: &Node, viewer: &Viewer, origin: &str, index: u64) -> &'static str {
    let items = serve_entries(source, viewer, origin, index, index + 1, 1).unwrap();
    match items[0].item {
        Some(pull_item::Item::Entry(_)) => "entry",
        Some(pull_item::Item::Redacted(_)) => "digests",
        _ => "other",
    }
}

fn narrow(node: &Node, id: &str, visibility: &str) {
    let outcome = node
        .import_lines(1, &[line(id, &format!("Ice station {id}"), visibility)])
        .unwrap();
    assert_eq!(outcome.stored, 1, "{outcome:?}");
}

/// A record made private, then withdrawn, at its origin leaves every
/// replica: neither read, searched nor relayed, directly or through a relay.
#[tokio::test]
async fn a_narrowed_then_withdrawn_record_leaves_the_replicas() {
    let fed = federation();
    import(&fed.polar, 1, 3);
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    assert!(report.ok, "{report:?}");
    assert!(operator_sees(&fed.here, POLAR, "PDC-2"));
    assert_eq!(searched(&fed.here, "station"), ["PDC-1", "PDC-2", "PDC-3"]);

    // v2 private, then v3 a tombstone: both reach `here` as digests only.
    narrow(&fed.polar, "PDC-2", "private");
    fed.polar
        .delete(&crate::ids::RecordId::parse("PDC-2").unwrap())
        .unwrap();
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    assert!(report.ok && report.entries == 2, "{report:?}");
    assert!(!operator_sees(&fed.here, POLAR, "PDC-2"));
    assert_eq!(searched(&fed.here, "station"), ["PDC-1", "PDC-3"]);
    assert_eq!(withdrawn(&fed.here), [1, 0, 0], "counted once, as narrowed");
    let page = fed
        .here
        .list(
            POLAR,
            100,
            "",
            true,
            &Viewer::Operator {
                node: fed.here.node_id().clone(),
            },
        )
        .unwrap();
    let ids: Vec<_> = page.records.iter().map(|v| v.record.id.as_str()).collect();
    assert_eq!(
        ids,
        ["PDC-1", "PDC-3"],
        "nothing shown for the withdrawn one"
    );

    // `here` relays v1 to nobody: entry 2 of polar's log goes out as digests.
    let uni = fed.here.peer_viewer(&UNI.parse().unwrap()).unwrap();
    assert_eq!(served_as(&fed.here, &uni, POLAR, 2), "digests");
    assert_eq!(served_as(&fed.here, &uni, POLAR, 1), "entry");

    // The index forgets it on a rebuild too, and fsck finds all in order.
    assert_rebuilt_and_clean(&fed.here, &["PDC-1", "PDC-3"]);
}

/// A peer revoked while a rebuild runs leaves search at once, and the
/// rebuilt index, which had taken its records before, does not bring them
/// back.
#[tokio::test]
async fn a_peer_revoked_while_a_rebuild_runs_leaves_search_and_stays_out() {
    let fed = federation();
    import(&fed.polar, 1, 2);
    import(&fed.here, 7, 1);
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(searched(&fed.here, "station"), ["PDC-1", "PDC-2", "PDC-7"]);
    let here = fed.here.clone();
    let every: u64 = here
        .store()
        .origins()
        .unwrap()
        .iter()
        .map(|(_, size)| size)
        .sum();
    let mut revoked = false;
    here.rebuild_index(&mut |seen| {
        // Once the next generation holds every entry, polar's included.
        if seen < every || std::mem::replace(&mut revoked, true) {
            return;
        }
        here.trust().set_state(POLAR, PeerState::Revoked).unwrap();
        // As `trust revoke` does, on a thread of its own: the rebuild
        // waits here for it.
        let (done, unindexed) = std::sync::mpsc::channel();
        let node = here.clone();
        std::thread::spawn(move || {
            let _ = done.send(node.unindex_origin(POLAR));
        });
        unindexed
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("a revocation waited for the rebuild")
            .unwrap();
        let request = crate::query::SearchRequest {
            text: "station".into(),
            ..Default::default()
        };
        let found = here.index().search(&request, &here.operator()).unwrap();
        let ids: Vec<_> = found.hits.iter().map(|hit| hit.id.as_str()).collect();
        assert_eq!(ids, ["PDC-7"], "while the rebuild runs");
    })
    .unwrap();
    assert!(revoked);
    assert_eq!(
        searched(&fed.here, "station"),
        ["PDC-7"],
        "after the rebuild"
    );
}

/// The indexer takes what a pull applied from sync's hands instead of
/// reading it back, and indexes the same as from the store: new records,
/// a version, a deletion, and a version withdrawn by digests in the same
/// batch as the one it replaces.
#[tokio::test]
async fn a_pull_is_indexed_from_what_sync_handed_over_as_a_rebuild_indexes_it() {
    let fed = federation();
    import(&fed.polar, 1, 4);
    narrow(&fed.polar, "PDC-2", "private");
    narrow(&fed.polar, "PDC-4", "public");
    fed.polar
        .delete(&crate::ids::RecordId::parse("PDC-3").unwrap())
        .unwrap();
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    assert!(report.ok, "{report:?}");
    let size = fed.here.store().log_size(POLAR).unwrap();
    assert_eq!(
        fed.here.handoff.held() as u64,
        size,
        "every entry handed over"
    );
    assert_eq!(searched(&fed.here, "station"), ["PDC-1", "PDC-4"]);
    assert_eq!(fed.here.handoff.held(), 0, "all taken by the indexer");
    let mut handed = fed.here.index().documents().unwrap();
    fed.here.rebuild_index(&mut |_| {}).unwrap();
    let mut rebuilt = fed.here.index().documents().unwrap();
    handed.sort();
    rebuilt.sort();
    assert_eq!(handed, rebuilt);
    assert!(
        handed.contains(&(POLAR.into(), "PDC-4".into(), 2)),
        "{handed:?}"
    );
}

/// Narrowing alone withdraws the copy from a peer outside the new audience,
/// also when the narrowed version comes through a relay that may see it.
#[tokio::test]
async fn narrowing_to_a_group_withdraws_the_copy_outside_it_through_a_relay() {
    let fed = federation();
    import(&fed.polar, 1, 2);
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    assert!(report.ok, "{report:?}");
    // `uni` is in polar-consortium; `here` is not.
    narrow(&fed.polar, "PDC-1", "groups");
    let report = round_with(
        &fed.sync,
        UNI,
        Served::relay(UNI, &fed.polar, HERE, Box::new(|_| {})),
    )
    .await;
    assert!(report.ok && report.entries == 1, "{report:?}");
    assert!(!operator_sees(&fed.here, POLAR, "PDC-1"));
    assert!(operator_sees(&fed.here, POLAR, "PDC-2"));
    assert_eq!(searched(&fed.here, "station"), ["PDC-2"]);

    // Made public again, it comes back.
    narrow(&fed.polar, "PDC-1", "public");
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    assert!(report.ok && report.entries == 1, "{report:?}");
    assert!(operator_sees(&fed.here, POLAR, "PDC-1"));
    assert_eq!(searched(&fed.here, "station"), ["PDC-1", "PDC-2"]);
}

/// A replica notes each record's latest public version as it applies a
/// pull, so an OAI-PMH harvester there is told deleted a record it held
/// PUBLIC and that was hidden since (by a version the replica holds whole,
/// then by one it may not see), with that PUBLIC version. A record never
/// PUBLIC is not told at all, nor is one whose PUBLIC version the replica
/// never held whole (superseded before it pulled, it came as digests).
#[tokio::test]
async fn a_replica_tells_harvesters_what_was_public_from_its_notes() {
    let fed = federation();
    import(&fed.polar, 1, 1);
    let public_at = fed
        .polar
        .store()
        .record_state(POLAR, "PDC-1")
        .unwrap()
        .unwrap();
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    assert!(report.ok, "{report:?}");
    import(&fed.polar, 3, 1);
    let hidden = [
        line("PDC-1", "Ice station 1, for the federation", "federation"),
        line("PDC-2", "Ice station 2", "federation"),
        line("PDC-3", "Ice station 3, for the federation", "federation"),
    ];
    fed.polar.import_lines(1, &hidden).unwrap();
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    assert!(report.ok, "{report:?}");
    assert!(operator_sees(&fed.here, POLAR, "PDC-1"), "held whole");
    let note = |id: &str| {
        let state = fed.here.store().record_state(POLAR, id).unwrap().unwrap();
        state.last_public
    };
    let told = |id: &str| crate::oai::get(&fed.here, POLAR, id).unwrap();
    let told_deleted = |id: &str| match told(id).map(|item| item.status) {
        Some(crate::oai::Status::Deleted {
            last_public: Some(record),
        }) => record.title,
        other => panic!("{id}: {other:?}"),
    };
    assert_eq!(note("PDC-1"), LastPublic::At(public_at.log_index));
    assert_eq!(told_deleted("PDC-1"), "Ice station 1");
    for never in ["PDC-2", "PDC-3"] {
        assert_eq!(note(never), LastPublic::Never, "{never}");
        assert!(told(never).is_none(), "{never}");
    }

    // Private now: digests at `here` withdraw it; the note stays.
    narrow(&fed.polar, "PDC-1", "private");
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    assert!(report.ok && report.entries == 1, "{report:?}");
    assert!(!operator_sees(&fed.here, POLAR, "PDC-1"), "withdrawn");
    assert_eq!(note("PDC-1"), LastPublic::At(public_at.log_index));
    assert_eq!(told_deleted("PDC-1"), "Ice station 1");
    assert_fsck_clean(&fed.here);
}

/// A version that stays visible replaces the held one; only the newest goes
/// out whole, and a fresh replica gets the same records.
#[tokio::test]
async fn only_the_current_version_is_served_whole() {
    let fed = federation();
    import(&fed.polar, 1, 1);
    narrow(&fed.polar, "PDC-1", "federation");
    let viewer = fed.polar.peer_viewer(&HERE.parse().unwrap()).unwrap();
    assert_eq!(served_as(&fed.polar, &viewer, POLAR, 1), "digests");
    assert_eq!(served_as(&fed.polar, &viewer, POLAR, 2), "entry");
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    assert!(report.ok && report.entries == 3, "{report:?}");
    let operator = Viewer::Operator {
        node: fed.here.node_id().clone(),
    };
    assert_eq!(
        fed.here
            .get(POLAR, "PDC-1", &operator)
            .unwrap()
            .record
            .version,
        2
    );
}

/// A peer that serves like `served` but goes silent: it never answers what
/// it holds (`stall_after` 0), or it stops after `stall_after` items of a
/// pull (1: right after the checkpoint) without closing the stream.
struct Silent {
    served: Served,
    stall_after: usize,
}

#[async_trait::async_trait]
impl FederationPeer for Silent {
    async fn node_info(&self) -> Result<NodeInfo, SyncError> {
        if self.stall_after == 0 {
            futures::future::pending::<()>().await;
        }
        self.served.node_info().await
    }

    async fn pull(
        &self,
        origin: &str,
        after_index: u64,
        max_batch: u32,
    ) -> Result<PullStream, SyncError> {
        use futures::StreamExt;
        let sent = self
            .served
            .pull(origin, after_index, max_batch)
            .await?
            .take(self.stall_after);
        Ok(Box::pin(sent.chain(futures::stream::pending())))
    }

    async fn hint(&self, _origin: &str, _size: u64) -> Result<(), SyncError> {
        Ok(())
    }

    async fn search(
        &self,
        _request: crate::proto::PeerSearchRequest,
        _within: std::time::Duration,
    ) -> Result<crate::proto::PeerSearchResponse, SyncError> {
        Err(no_searches())
    }
}

/// What the fake peers of these tests answer to a live search.
fn no_searches() -> SyncError {
    SyncError::Refused {
        peer: "test".into(),
        message: "replication tests serve no searches".into(),
    }
}

fn dyn_peer(peer: impl FederationPeer + 'static) -> Arc<dyn FederationPeer> {
    Arc::new(peer)
}

/// Dials each peer to the in-process peer given for it.
fn dialing(peers: Vec<(&str, Arc<dyn FederationPeer>)>) -> Connector {
    let peers: Arc<BTreeMap<String, Arc<dyn FederationPeer>>> = Arc::new(
        peers
            .into_iter()
            .map(|(id, peer)| (id.to_owned(), peer))
            .collect(),
    );
    Arc::new(move |peer: crate::trust::Peer| {
        let found = peers.get(peer.node_id.as_str()).cloned();
        Box::pin(async move {
            found.ok_or_else(|| SyncError::Unreachable {
                peer: peer.node_id.to_string(),
                message: "not served in this test".into(),
            })
        })
    })
}

const IDLE_1S: (&str, &str) = ("MERIDIAN_SYNC__IDLE_TIMEOUT_SECS", "1");

fn report_of<'a>(reports: &'a [RoundReport], peer: &str) -> &'a RoundReport {
    reports
        .iter()
        .find(|r| r.peer == peer)
        .unwrap_or_else(|| panic!("no report for {peer}: {reports:?}"))
}

#[tokio::test]
async fn a_relay_silent_after_its_checkpoint_never_holds_up_an_honest_origin() {
    let fed = federation_with(&[IDLE_1S]);
    import(&fed.polar, 1, 5);
    // `uni` holds a log of its own and goes silent after sending its
    // checkpoint, the stream left open.
    let uni_lines: Vec<String> = (1..=3)
        .map(|i| line(&format!("UNI-{i}"), &format!("Soil core {i}"), "public"))
        .collect();
    fed.uni.import_lines(1, &uni_lines).unwrap();
    let silent = Silent {
        served: Served::honest(&fed.uni, HERE),
        stall_after: 1,
    };
    let sync = Replicator::new(
        fed.here.clone(),
        dialing(vec![
            (POLAR, dyn_peer(Served::honest(&fed.polar, HERE))),
            (UNI, dyn_peer(silent)),
        ]),
    );
    let started = Instant::now();
    let reports = sync.round(true).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "the round took {took:?}");

    let honest = report_of(&reports, POLAR);
    assert!(honest.ok, "{honest:?}");
    assert_eq!((honest.outcome.as_str(), honest.entries), ("ok", 6));
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 6);
    assert_eq!(
        fed.here.store().checkpoint(POLAR).unwrap(),
        fed.polar.store().checkpoint(POLAR).unwrap()
    );

    let stuck = report_of(&reports, UNI);
    assert!(!stuck.ok, "{stuck:?}");
    assert_eq!(stuck.outcome, "timeout");
    assert_eq!(stuck.error, "uni: sent nothing for 1 s");
    assert_eq!(fed.here.store().log_size(UNI).unwrap(), 0);
    // `peers status` gives the reason.
    let status = status(&sync, UNI);
    assert_eq!(status.last_error, "uni: sent nothing for 1 s");
    assert!(!status.reachable);
    assert_eq!(status.rejected, 0, "silence is no rejection");
    assert!(status.consecutive_failures >= 1);
    assert!(self::status(&sync, POLAR).reachable);

    // The origin lock was released: the next round pulls `uni` honestly.
    let report = round_with(&sync, UNI, Served::honest(&fed.uni, HERE)).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(fed.here.store().log_size(UNI).unwrap(), 4);
}

/// A round at `here` in which `polar` itself goes silent after
/// `stall_after` items (0: it never answers) while `uni` relays its log;
/// the round must report within 4 s, whatever the silent peer does.
async fn round_beside_a_silent_origin(fed: &Federation, stall_after: usize) -> Vec<RoundReport> {
    let sync = Replicator::new(
        fed.here.clone(),
        dialing(vec![
            (
                POLAR,
                dyn_peer(Silent {
                    served: Served::honest(&fed.polar, HERE),
                    stall_after,
                }),
            ),
            (
                UNI,
                dyn_peer(Served::relay(UNI, &fed.polar, HERE, Box::new(|_| {}))),
            ),
        ]),
    );
    let started = Instant::now();
    let reports = sync.round(true).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    reports
}

#[tokio::test]
async fn an_origin_silent_mid_pull_is_pulled_from_another_holder_in_the_same_round() {
    let fed = federation_with(&[IDLE_1S]);
    import(&fed.polar, 1, 5);
    // The origin itself is tried first; it sends its checkpoint and then
    // nothing. `uni` relays the same log.
    let reports = round_beside_a_silent_origin(&fed, 1).await;
    let origin = report_of(&reports, POLAR);
    assert_eq!(origin.outcome, "timeout", "{origin:?}");
    assert_eq!(origin.error, "polar: sent nothing for 1 s");
    let relay = report_of(&reports, UNI);
    assert!(relay.ok, "{relay:?}");
    assert_eq!(relay.entries, 6, "the key set and five records");
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 6);
    assert_eq!(
        fed.here.store().checkpoint(POLAR).unwrap(),
        fed.polar.store().checkpoint(POLAR).unwrap()
    );
}

#[tokio::test]
async fn a_peer_that_never_answers_is_reported_within_the_idle_timeout() {
    let fed = federation_with(&[IDLE_1S]);
    import(&fed.polar, 1, 4);
    let reports = round_beside_a_silent_origin(&fed, 0).await;
    let silent = report_of(&reports, POLAR);
    assert_eq!(
        (silent.outcome.as_str(), silent.error.as_str()),
        ("timeout", "polar: sent nothing for 1 s")
    );
    assert!(report_of(&reports, UNI).ok, "{reports:?}");
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 5);
}

#[tokio::test]
async fn pulls_that_break_before_a_batch_completes_ask_for_smaller_batches_until_they_commit() {
    let fed = federation_with(&[IDLE_1S]);
    import(&fed.polar, 1, 1000);
    // Every connection carries 300 items and then goes silent: shorter than
    // the batches a server sends unasked.
    let sync = Replicator::new(
        fed.here.clone(),
        dialing(vec![(
            POLAR,
            dyn_peer(Silent {
                served: Served::honest(&fed.polar, HERE),
                stall_after: 300,
            }),
        )]),
    );
    let mut held = Vec::new();
    for _ in 0..8 {
        sync.round(true).await;
        held.push(fed.here.store().log_size(POLAR).unwrap());
        if held.last() == Some(&1001) {
            break;
        }
    }
    // 2048 and then 512 per batch: nothing commits; 256 per batch does.
    assert_eq!(held[..3], [0, 0, 256], "{held:?}");
    assert_eq!(held.last(), Some(&1001), "the whole log arrived: {held:?}");
    assert_eq!(sync.batch_ask(POLAR), 256);
    assert_eq!(
        fed.here.store().checkpoint(POLAR).unwrap(),
        fed.polar.store().checkpoint(POLAR).unwrap()
    );
}

#[tokio::test]
async fn a_stall_after_a_batch_keeps_the_batch_and_the_next_pull_resumes() {
    let fed = federation_with(&[IDLE_1S]);
    import(&fed.polar, 1, BATCH + 20);
    // The checkpoint, the first key set's announcement, the first batch's
    // entries and its proof; then silence.
    let silent = Silent {
        served: Served::honest(&fed.polar, HERE),
        stall_after: 1 + 1 + BATCH + 1,
    };
    let report = round_with(&fed.sync, POLAR, silent).await;
    assert_eq!(report.error, "polar: sent nothing for 1 s");
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), BATCH as u64);
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.entries, 21, "only the entries after the cursor");
    assert_honest_retry(&fed).await;
}

#[tokio::test]
async fn a_round_reports_by_its_deadline_while_a_slow_pull_goes_on() {
    // The idle timeout is long; the round's deadline is what bounds it.
    let fed = federation_with(&[
        ("MERIDIAN_SYNC__IDLE_TIMEOUT_SECS", "30"),
        ("MERIDIAN_SYNC__ROUND_TIMEOUT_SECS", "1"),
    ]);
    import(&fed.polar, 1, 3);
    let uni_lines: Vec<String> = (1..=2)
        .map(|i| line(&format!("UNI-{i}"), &format!("Soil core {i}"), "public"))
        .collect();
    fed.uni.import_lines(1, &uni_lines).unwrap();
    let sync = Replicator::new(
        fed.here.clone(),
        dialing(vec![
            (
                POLAR,
                dyn_peer(Silent {
                    served: Served::honest(&fed.polar, HERE),
                    stall_after: 1,
                }),
            ),
            (UNI, dyn_peer(Served::honest(&fed.uni, HERE))),
        ]),
    );
    let started = Instant::now();
    let reports = sync.round(true).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let slow = report_of(&reports, POLAR);
    assert_eq!(slow.outcome, "timeout", "{slow:?}");
    assert!(slow.error.contains("still pulling after 1 s"), "{slow:?}");
    let other = report_of(&reports, UNI);
    assert!(other.ok, "{other:?}");
    assert_eq!(fed.here.store().log_size(UNI).unwrap(), 3);
}

#[tokio::test]
async fn a_checkpoint_lost_in_a_crash_is_kept_again_at_the_next_pull() {
    let fed = federation();
    import(&fed.polar, 1, 3);
    assert_honest_retry(&fed).await;
    let older = fed.here.store().checkpoint(POLAR).unwrap().unwrap();
    import(&fed.polar, 4, 2);
    assert_honest_retry(&fed).await;
    // The log reached the disk, its newest checkpoint did not.
    fed.here.store().put_checkpoint(POLAR, &older).unwrap();
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.entries, 0, "nothing left to pull");
    assert_eq!(
        fed.here.store().checkpoint(POLAR).unwrap(),
        fed.polar.store().checkpoint(POLAR).unwrap(),
        "the checkpoint over the whole log is held again"
    );
}

/// A peer that claims `uni`, announces `polar`'s head (`listed` times),
/// and answers a pull with `polar`'s checkpoint and then `item(index)` for
/// each next index (`None`: an item with nothing in it), up to `cap` items,
/// counting how many the receiver took.
struct Endless {
    source: Arc<Node>,
    item: Arc<dyn Fn(u64) -> Option<pull_item::Item> + Send + Sync>,
    cap: usize,
    taken: Arc<std::sync::atomic::AtomicUsize>,
    /// How many times it lists `polar`'s head (once, honestly).
    listed: usize,
}

#[async_trait::async_trait]
impl FederationPeer for Endless {
    async fn node_info(&self) -> Result<NodeInfo, SyncError> {
        let (_, size) = serve_checkpoint(&self.source, POLAR)?.expect("polar has a log");
        let head = OriginHead {
            origin: POLAR.into(),
            size,
        };
        Ok(NodeInfo {
            node_id: UNI.into(),
            origins: vec![head; self.listed],
            ..NodeInfo::default()
        })
    }

    async fn pull(
        &self,
        origin: &str,
        after_index: u64,
        _max_batch: u32,
    ) -> Result<PullStream, SyncError> {
        let (checkpoint, size) = serve_checkpoint(&self.source, origin)?.expect("a log");
        let first = PullItem {
            index: size,
            item: Some(pull_item::Item::Checkpoint(checkpoint)),
        };
        let announced: Vec<Result<PullItem, SyncError>> =
            serve_key_sets(&self.source, origin, after_index, size)?
                .into_iter()
                .map(Ok)
                .collect();
        let (item, taken) = (self.item.clone(), self.taken.clone());
        let rest = (after_index..).take(self.cap).map(move |index| {
            taken.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(PullItem {
                index,
                item: item(index),
            })
        });
        Ok(Box::pin(futures::stream::iter(
            std::iter::once(Ok(first)).chain(announced).chain(rest),
        )))
    }

    async fn hint(&self, _origin: &str, _size: u64) -> Result<(), SyncError> {
        Ok(())
    }

    async fn search(
        &self,
        _request: crate::proto::PeerSearchRequest,
        _within: std::time::Duration,
    ) -> Result<crate::proto::PeerSearchResponse, SyncError> {
        Err(no_searches())
    }
}

async fn endless_round(
    fed: &Federation,
    cap: usize,
    item: impl Fn(u64) -> pull_item::Item + Send + Sync + 'static,
) -> (RoundReport, usize) {
    let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let peer = Endless {
        source: fed.polar.clone(),
        item: Arc::new(move |index| Some(item(index))),
        cap,
        taken: taken.clone(),
        listed: 1,
    };
    let pinned = fed.sync.node().trust().get(UNI).unwrap().unwrap();
    let report = fed.sync.sync_peer(pinned, Arc::new(peer)).await;
    (report, taken.load(std::sync::atomic::Ordering::SeqCst))
}

/// The key sets a pull announces are held until the chain is extended with
/// them, after the last of them has come: their bytes stay in the pull's
/// budget until then, so a peer that pads each to the envelope bound is cut
/// off at the batch budget, not after holding 64 of them.
#[tokio::test]
async fn announced_key_sets_count_against_the_pulls_budget() {
    let fed = federation();
    import(&fed.polar, 1, 3);
    let mut padded = stored_envelope(&fed.polar, POLAR, 0);
    padded.payload_type = "k".repeat(1_000_000);
    let (report, taken) = endless_round(&fed, 10_000, move |_| {
        pull_item::Item::KeySet(padded.clone())
    })
    .await;
    let bytes = 32 << 20;
    assert!(
        report
            .error
            .ends_with(&format!("more than {bytes} bytes without a proof")),
        "{report:?}"
    );
    assert!(
        report
            .error
            .starts_with("uni: pull of polar cut off at entry"),
        "{report:?}"
    );
    assert!(taken <= 34, "the receiver held {taken} padded key sets");
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 0);
    assert_honest_retry(&fed).await;
}

/// A peer that lists an origin many times in what it holds would be tried
/// as that many holders in one round, each pull under the origin's lock
/// (a silent one waiting out the idle timeout each time): its answer is
/// refused as malformed, naming it, and nothing is pulled from it.
#[tokio::test]
async fn a_peer_listing_an_origin_twice_is_refused_before_any_pull() {
    let fed = federation();
    import(&fed.polar, 1, 3);
    let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let peer = Endless {
        source: fed.polar.clone(),
        item: Arc::new(|_| None),
        cap: 10_000,
        taken: taken.clone(),
        listed: 1_000,
    };
    let pinned = fed.sync.node().trust().get(UNI).unwrap().unwrap();
    let report = fed.sync.sync_peer(pinned, Arc::new(peer)).await;
    let expected = "uni: malformed answer: an origin \"polar\" is listed twice in what it holds";
    assert_refused(&fed.sync, &report, UNI, expected, 1);
    assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), 0, "pulled");
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 0);
    assert_honest_retry(&fed).await;
}

/// A peer that answers a pull with proofs alone, batch after batch, brings
/// nothing and would hold the pull, and with it the origin's sync, open for
/// as long as it went on: the first batch without entries ends the pull.
#[tokio::test]
async fn a_pull_of_proofs_alone_is_cut_off_at_the_first() {
    let fed = federation();
    import(&fed.polar, 1, 3);
    let (report, taken) = endless_round(&fed, 10_000, |_| {
        pull_item::Item::Proof(crate::proto::BatchProof {
            size: 0,
            hashes: Vec::new(),
        })
    })
    .await;
    let expected = sequence_error(0, "a batch with no entries, only its proof");
    assert_refused(&fed.sync, &report, UNI, &expected, 1);
    assert!(taken <= 16, "the receiver took {taken} empty batches");
    assert_honest_retry(&fed).await;
}

/// A refill reads a stream that must make progress too: a second
/// checkpoint, a proof with no entries before it, a key set it has seen,
/// or an item with nothing in it cuts it off at once, naming the peer
/// (the refill runs under the origin's lock: a stream that never ended
/// would stop the origin's sync from every holder).
#[tokio::test]
async fn a_refill_from_a_peer_that_makes_no_progress_is_cut_off() {
    let fed = federation();
    let at = digests_then_a_wider_audience(&fed).await;
    let checkpoint = checkpoint_of(&fed.polar, POLAR);
    let cases: Vec<(Option<pull_item::Item>, &str)> = vec![
        (
            Some(pull_item::Item::Checkpoint(checkpoint)),
            "a second checkpoint",
        ),
        (
            Some(pull_item::Item::Proof(crate::proto::BatchProof {
                size: 0,
                hashes: Vec::new(),
            })),
            "a proof of a batch with no entries",
        ),
        (
            // The key set at entry 0 again and again, after the
            // announced ones.
            Some(pull_item::Item::KeySet(stored_envelope(
                &fed.polar, POLAR, 0,
            ))),
            "a key set at or before the one before it",
        ),
        (None, "an empty item"),
    ];
    for (sent, message) in cases {
        let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peer = Endless {
            source: fed.polar.clone(),
            item: Arc::new(move |_| sent.clone()),
            cap: 10_000,
            taken: taken.clone(),
            listed: 1,
        };
        let idle = std::time::Duration::from_secs(5);
        let error = receive::refill_origin(&fed.here, &peer, UNI, POLAR, at, idle)
            .await
            .unwrap_err();
        let expected = SyncError::Overrun {
            peer: UNI.into(),
            origin: POLAR.into(),
            index: 0,
            message: message.into(),
        };
        assert_eq!(error.to_string(), expected.to_string());
        let taken = taken.load(std::sync::atomic::Ordering::SeqCst);
        assert!(taken <= 1, "the refill took {taken} items");
    }
    assert!(!operator_sees(&fed.here, POLAR, "PDC-1"), "digests still");
}

/// Issue 9, item 3: a relay streaming redacted items with oversized digests
/// is cut off at the first one, before it is buffered, by an error that
/// names the relay; nothing is kept and an honest pull still completes.
#[tokio::test]
async fn peer_input_is_bounded_before_it_is_buffered_oversized_digests() {
    let fed = federation();
    import(&fed.polar, 1, 3);
    let (report, taken) = endless_round(&fed, 10_000, |_| {
        pull_item::Item::Redacted(crate::proto::Redacted {
            subject_digest: vec![1; 4096],
            payload_digest: vec![2; 4096],
        })
    })
    .await;
    let expected = SyncError::Overrun {
        peer: UNI.into(),
        origin: POLAR.into(),
        index: 0,
        message: "subject digest is 4096 bytes, not 32".into(),
    }
    .to_string();
    assert_eq!(report.error, expected, "{report:?}");
    assert!(report
        .error
        .starts_with("uni: pull of polar cut off at entry 0"));
    assert!(
        taken <= 2,
        "the receiver took {taken} items past the bad one"
    );
    assert_eq!(status(&fed.sync, UNI).rejected, 1);
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 0);
    assert_honest_retry(&fed).await;
}

/// Issue 9, item 3: envelopes each under the 1 MiB bound, sent without ever
/// closing a batch, are cut off once the batch's byte budget is spent, long
/// before the item count limit (8,192 items of up to 1 MiB each).
#[tokio::test]
async fn peer_input_is_bounded_before_it_is_buffered_batch_budget() {
    let fed = federation();
    import(&fed.polar, 1, 3);
    let envelope = Envelope {
        payload: vec![7; 512 * 1024],
        payload_type: RECORD_TYPE.into(),
        signatures: Vec::new(),
    };
    let (report, taken) =
        endless_round(&fed, 200, move |_| pull_item::Item::Entry(envelope.clone())).await;
    assert!(!report.ok, "{report:?}");
    assert!(
        report
            .error
            .starts_with("uni: pull of polar cut off at entry ")
            && report.error.ends_with(&format!(
                "more than {MAX_BATCH_BYTES} bytes without a proof"
            )),
        "{}",
        report.error
    );
    assert!(
        taken <= MAX_BATCH_BYTES / (512 * 1024) + 1,
        "the receiver took {taken} items"
    );
    assert_eq!(status(&fed.sync, UNI).rejected, 1);
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 0);
    assert_honest_retry(&fed).await;
}

/// Issue 9, item 6: once an origin is revoked here, this node neither
/// announces nor serves its log to any peer: a revoked origin is not relayed.
#[tokio::test]
async fn revocation_is_final_everywhere_a_revoked_origin_is_not_relayed() {
    let fed = federation();
    import(&fed.polar, 1, 3);
    assert_honest_retry(&fed).await;
    let announced = |node: &Node| -> Vec<String> {
        node_info(node)
            .unwrap()
            .origins
            .into_iter()
            .map(|head| head.origin)
            .collect()
    };
    assert!(announced(&fed.here).contains(&POLAR.to_owned()));
    assert!(serve_checkpoint(&fed.here, POLAR).unwrap().is_some());

    fed.here
        .trust()
        .set_state(POLAR, PeerState::Revoked)
        .unwrap();
    assert!(!announced(&fed.here).contains(&POLAR.to_owned()));
    assert!(serve_checkpoint(&fed.here, POLAR).unwrap().is_none());
    assert!(announced(&fed.here).contains(&HERE.to_owned()));
    // `uni` pulling from `here` finds nothing of polar to take.
    let uni_sync = Replicator::new(fed.uni.clone(), no_dialing());
    let pinned = fed.uni.trust().get(HERE).unwrap().unwrap();
    let report = uni_sync
        .sync_peer(pinned, Arc::new(Served::honest(&fed.here, UNI)))
        .await;
    assert!(report.ok, "{report:?}");
    assert!(!report.origins.contains(&POLAR.to_owned()), "{report:?}");
    assert_eq!(fed.uni.store().log_size(POLAR).unwrap(), 0);
}

/// Issue 9, item 5, and issue 14, item 6: a pinned peer's hints start one
/// sync with it at a time, at once, and a flood of them while it runs is
/// coalesced into one more; a peer whose hinted sync does not bring what
/// it announced has its hints held to one round per interval. Another
/// peer's hint is not held back.
#[tokio::test(flavor = "multi_thread")]
async fn hints_start_one_sync_at_a_time_and_a_false_one_holds_the_peer_to_the_interval() {
    let mut fed = federation();
    fed.sync = Replicator::new(
        fed.here.clone(),
        dialing(vec![(POLAR, Arc::new(Served::honest(&fed.polar, HERE)))]),
    );
    let running = |sync: &Replicator| {
        sync.hints
            .lock()
            .unwrap()
            .get(POLAR)
            .is_some_and(|state| state.running || state.again)
    };
    let settled = |sync: Arc<Replicator>| async move {
        for _ in 0..500 {
            if !running(&sync) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the hinted sync never ended");
    };
    import(&fed.polar, 1, 3);
    let size = fed.polar.store().log_size(POLAR).unwrap();
    assert!(fed.sync.hinted(POLAR, POLAR, size));
    let mut started = 1;
    for _ in 0..100 {
        if fed.sync.hinted(POLAR, POLAR, size) {
            started += 1;
        }
    }
    // While a sync runs, the flood is one more sync; one that already
    // brought the entries makes the rest start nothing.
    assert!(started <= 2, "a hint flood started {started} syncs");
    settled(fed.sync.clone()).await;
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), size);
    // An honest peer's next change is pulled at once, not at the
    // interval's end.
    import(&fed.polar, 4, 1);
    let grown = fed.polar.store().log_size(POLAR).unwrap();
    assert!(fed.sync.hinted(POLAR, POLAR, grown));
    settled(fed.sync.clone()).await;
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), grown);
    assert!(fed.sync.deferred_hints.lock().unwrap().is_empty());

    // A hint of entries polar does not serve: the sync brings less, and
    // polar's hints are held to the interval, coalesced at its end.
    assert!(fed.sync.hinted(POLAR, POLAR, grown + 100));
    settled(fed.sync.clone()).await;
    for _ in 0..100 {
        assert!(
            !fed.sync.hinted(POLAR, POLAR, grown + 100),
            "a held peer's hint started a sync"
        );
    }
    assert_eq!(
        fed.sync
            .deferred_hints
            .lock()
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        [POLAR]
    );
    assert!(fed.sync.hinted(UNI, POLAR, grown + 1));
    // A hint for what is already held starts nothing.
    assert!(!fed.sync.hinted(HERE, POLAR, 0));
}

/// The metrics tell pulls apart: a tampered pull counts its rejection by
/// reason and an error, an honest one an ok and its entries once. Lag is
/// measured against what peers advertise, for pinned origins only, clears
/// when this node holds what it was told of, and stays up while a peer
/// advertises more than it serves.
#[tokio::test]
async fn metrics_count_pulls_rejections_and_lag() {
    let fed = federation();
    import(&fed.polar, 1, 5);
    let metrics = fed.here.metrics();
    let lag_of = |origin: &str| fed.sync.lag().into_iter().find(|lag| lag.origin == origin);

    tampered_round(&fed, |items| {
        let payload = &mut envelope(item(items, 3)).payload;
        let at = payload.len() / 2;
        payload[at] ^= 0x01;
    })
    .await;
    assert_eq!(metrics.rejections.get(RejectReason::Signature), 1);
    assert_eq!(metrics.rejections.get(RejectReason::Sequence), 0);
    assert_eq!(metrics.pulls.get(PullOutcome::Error), 1);
    assert_eq!(metrics.pulls.get(PullOutcome::Ok), 0);
    assert_eq!(metrics.entries_pulled.get(), 0);
    // The key set and five records were advertised; none is held.
    assert_eq!(lag_of(POLAR).unwrap().entries, 6);

    assert_honest_retry(&fed).await;
    assert_eq!(metrics.pulls.get(PullOutcome::Ok), 1);
    assert_eq!(metrics.entries_pulled.get(), 6);
    let caught_up = lag_of(POLAR).unwrap();
    assert_eq!(
        (caught_up.entries, caught_up.behind_for),
        (0, Duration::ZERO)
    );

    // A peer that advertises more than it serves keeps the lag up, and
    // the time behind grows.
    let mut inflated = Served::honest(&fed.polar, HERE);
    inflated.head = Some(100);
    round_with(&fed.sync, POLAR, inflated).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let behind = lag_of(POLAR).unwrap();
    assert_eq!(behind.entries, 94);
    assert!(behind.behind_for >= Duration::from_millis(20), "{behind:?}");

    // An origin this node does not pin never gets a series, whatever a
    // peer advertises.
    let (stranger, _dir) = open_node("stranger", &BTreeMap::new());
    import(&stranger, 1, 2);
    round_with(
        &fed.sync,
        UNI,
        Served::relay(UNI, &stranger, HERE, Box::new(|_| {})),
    )
    .await;
    assert!(lag_of("stranger").is_none(), "{:?}", fed.sync.lag());
}

/// A connector that reaches `nodes` (served honestly to `receiver`); any
/// other peer is unreachable.
fn reaching(nodes: Vec<Arc<Node>>, receiver: &str) -> Connector {
    let receiver = receiver.to_owned();
    Arc::new(move |peer: crate::trust::Peer| {
        let found = nodes.iter().find(|n| n.node_id() == &peer.node_id).cloned();
        let receiver = receiver.clone();
        Box::pin(async move {
            match found {
                Some(node) => {
                    Ok(Arc::new(Served::honest(&node, &receiver)) as Arc<dyn FederationPeer>)
                }
                None => Err(SyncError::Unreachable {
                    peer: peer.node_id.to_string(),
                    message: "down".into(),
                }),
            }
        })
    })
}

#[tokio::test]
async fn a_restored_node_takes_its_own_log_back_before_it_signs_again() {
    let fed = federation();
    let uni_sync = Replicator::new(fed.uni.clone(), no_dialing());
    import(&fed.polar, 1, 5);
    let backups = tempfile::tempdir().unwrap();
    let backup = backups.path().join("polar-1");
    crate::backup::create(&fed.polar, &backup, &Default::default()).unwrap();
    // Signed and published after the backup: uni holds entries 6..=9.
    import(&fed.polar, 6, 4);
    let published = fed.polar.store().log_size(POLAR).unwrap();
    let report = round_with(&uni_sync, POLAR, Served::honest(&fed.polar, UNI)).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(fed.uni.store().log_size(POLAR).unwrap(), published);

    let restored_dir = backups.path().join("restored");
    crate::backup::restore(&backup, &restored_dir, crate::backup::Recovery::FromPeers).unwrap();
    let restored = Node::open(&restored_dir, &BTreeMap::new()).unwrap();
    assert!(restored.recovering());
    assert_eq!(restored.store().log_size(POLAR).unwrap(), 6);

    // Pulling from a peer that alters its own entries is refused like any
    // other origin's: verified with its own key.
    let sync = Replicator::new(restored.clone(), no_dialing());
    let report = round_with(
        &sync,
        UNI,
        Served::relay(
            UNI,
            &fed.uni,
            POLAR,
            Box::new(|items| envelope(item(items, 7)).payload[3] ^= 1),
        ),
    )
    .await;
    assert!(!report.ok, "{report:?}");
    assert_eq!(restored.store().log_size(POLAR).unwrap(), 6);

    // One peer reached, one down: the entries come back, recovery waits
    // for the peer that may hold more.
    let sync = Replicator::new(restored.clone(), reaching(vec![fed.uni.clone()], POLAR));
    sync.round(true).await;
    assert_eq!(restored.store().log_size(POLAR).unwrap(), published);
    assert!(restored.recovering(), "genomics was not reached");
    let err = restored
        .import_lines(1, &[line("PDC-new", "After", "public")])
        .unwrap_err();
    assert!(matches!(err, crate::node::NodeError::Recovering), "{err}");

    // Every peer reached, none holds more: it signs on after the last.
    recover_from_every_peer(&fed, &restored).await;
    // Its first own entry after the recovery is the audience its trust
    // store says (the fixture pins peers without publishing one), then the
    // new record.
    let outcome = restored
        .import_lines(1, &[line("PDC-new", "After", "public")])
        .unwrap();
    assert_eq!(outcome.log_size, published + 2);
    // uni takes the new entries: the log it holds is a prefix of this one.
    let report = round_with(&uni_sync, POLAR, Served::honest(&restored, UNI)).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(fed.uni.store().log_size(POLAR).unwrap(), published + 2);
    assert!(!fed.uni.store().is_frozen(POLAR).unwrap());
}

/// A round of the restored `polar` that reaches both of its peers, after
/// which it has recovered its own log and may sign again.
async fn recover_from_every_peer(fed: &Federation, restored: &Arc<Node>) {
    let sync = Replicator::new(
        restored.clone(),
        reaching(vec![fed.uni.clone(), fed.here.clone()], POLAR),
    );
    let reports = sync.round(true).await;
    assert!(reports.iter().all(|r| r.ok), "{reports:?}");
    assert!(!restored.recovering());
}

/// A node restored from a backup older than its last key set takes that
/// set back with its log, and follows it: after a renewal it signs on and
/// renews to the set after it; after a rotation (whose new signing key the
/// backup lacks) it signs nothing and renews nothing, each refusal saying
/// why, until the operator rotates with the root key. Its peers accept
/// what it signs then. Before, it kept the chain of its backup: it renewed
/// to a version already taken, or signed with the retired key, and its
/// peers refused both.
#[tokio::test]
async fn a_restored_node_follows_the_key_sets_signed_after_its_backup() {
    for rotated in [false, true] {
        let fed = federation();
        let uni_sync = Replicator::new(fed.uni.clone(), no_dialing());
        import(&fed.polar, 1, 3);
        let backups = tempfile::tempdir().unwrap();
        let backup = backups.path().join("polar-1");
        crate::backup::create(&fed.polar, &backup, &Default::default()).unwrap();
        let backed_up = fed.polar.own_chain().latest().unwrap().set.version;
        fed.polar.rotate_keys(Vec::new(), !rotated, 90).unwrap();
        import(&fed.polar, 4, 2);
        let published = fed.polar.store().log_size(POLAR).unwrap();
        let report = round_with(&uni_sync, POLAR, Served::honest(&fed.polar, UNI)).await;
        assert!(report.ok, "{report:?}");

        let restored_dir = backups.path().join("restored");
        crate::backup::restore(&backup, &restored_dir, crate::backup::Recovery::FromPeers).unwrap();
        let restored = Node::open(&restored_dir, &BTreeMap::new()).unwrap();
        recover_from_every_peer(&fed, &restored).await;
        // With a key it may sign with, its audience first (the fixture pins
        // peers without publishing one).
        let audience = u64::from(!rotated);
        assert_eq!(
            restored.store().log_size(POLAR).unwrap(),
            published + audience
        );
        let latest = || restored.own_chain().latest().unwrap().set.version;
        assert_eq!(latest(), backed_up + 1, "rotated: {rotated}");

        let record = |n: u32| line(&format!("PDC-after-{n}"), "After", "public");
        if rotated {
            let refused = restored.import_lines(1, &[record(1)]).unwrap_err();
            let message = refused.to_string();
            assert!(message.contains("is not in its key set"), "{message}");
            assert!(message.contains("keys rotate"), "{message}");
            let refused = restored.rotate_keys(Vec::new(), true, 90).unwrap_err();
            assert!(
                refused.to_string().contains("rotate the signing key first"),
                "{refused}"
            );
            assert_eq!(restored.store().log_size(POLAR).unwrap(), published);
            restored.rotate_keys(Vec::new(), false, 90).unwrap();
        } else {
            restored.rotate_keys(Vec::new(), true, 90).unwrap();
        }
        assert_eq!(latest(), backed_up + 2, "rotated: {rotated}");
        restored.import_lines(1, &[record(2)]).unwrap();

        let report = round_with(&uni_sync, POLAR, Served::honest(&restored, UNI)).await;
        assert!(report.ok, "rotated: {rotated}: {report:?}");
        assert_eq!(
            fed.uni.store().log_size(POLAR).unwrap(),
            restored.store().log_size(POLAR).unwrap()
        );
        assert!(!fed.uni.store().is_frozen(POLAR).unwrap());
        all_entries_verify(&fed.uni, POLAR);
    }
}

// ------------------------------------------------------------ key rotation

/// Entries `[0, size)` of `origin` at `node` all verify against the keys
/// that govern their positions in the chain held there.
fn all_entries_verify(node: &Node, origin: &str) {
    let chain = node.origin_keys(origin).unwrap().expect("a trusted origin");
    let size = node.store().log_size(origin).unwrap();
    let stored: Vec<(u64, Envelope)> = (0..size)
        .map(|i| (i, stored_envelope(node, origin, i)))
        .collect();
    let refs: Vec<(u64, &Envelope)> = stored.iter().map(|(i, e)| (*i, e)).collect();
    for (result, (index, _)) in chain.open_entries(&refs).into_iter().zip(&refs) {
        assert!(result.is_ok(), "{origin} entry {index}: {result:?}");
    }
}

/// Issue 11, item 2: the origin rotates its signing key between two pulls
/// (and a relay serves the rotation); the receiver follows the chain
/// N -> N+1 from the root it pinned, with no re-pinning, and every entry
/// it holds verifies against the keys of its position.
#[tokio::test]
async fn replication_continues_through_a_rotation_with_no_re_pinning() {
    let fed = federation();
    import(&fed.polar, 1, 3);
    assert_honest_retry(&fed).await;
    let old = fed.polar.key().key_id().clone();
    let chain = fed.polar.rotate_keys(Vec::new(), false, 90).unwrap();
    assert_eq!(chain.links().len(), 2);
    assert_ne!(fed.polar.key().key_id(), &old);
    import(&fed.polar, 4, 3);
    // Through the relay, which has not pulled the rotation itself.
    let report = tampered_round(&fed, |_| {}).await;
    assert!(report.ok && report.entries == 4, "{report:?}");
    assert_honest_retry(&fed).await;
    let held = fed.here.origin_keys(POLAR).unwrap().unwrap();
    assert_eq!(held.links().len(), 2);
    assert_eq!(held.links()[1].index, 4);
    all_entries_verify(&fed.here, POLAR);
    // A second rotation, pulled by a node that already holds the first.
    fed.polar.rotate_keys(Vec::new(), false, 90).unwrap();
    import(&fed.polar, 7, 2);
    assert_honest_retry(&fed).await;
    assert_eq!(
        fed.here.origin_keys(POLAR).unwrap().unwrap().links().len(),
        3
    );
    all_entries_verify(&fed.here, POLAR);
}

/// Adversarial: whoever still holds a retired signing key signs a new
/// entry. The batch is refused whole, the origin does not advance, and
/// the error names the origin, the index and the key.
#[tokio::test]
async fn a_retired_key_signing_a_new_entry_is_refused_and_nothing_advances() {
    let fed = federation();
    import(&fed.polar, 1, 2);
    assert_honest_retry(&fed).await;
    let held = fed.here.store().log_size(POLAR).unwrap();
    let old = fed.polar.key();
    fed.polar.rotate_keys(Vec::new(), false, 90).unwrap();
    assert_eq!(held, 3, "the rotation is entry 3");
    import(&fed.polar, 3, 2);
    let forged = old.sign(RECORD_TYPE, stored_envelope(&fed.polar, POLAR, 5).payload);
    let report = tampered_round(&fed, move |items| {
        *envelope(item(items, 5)) = forged.clone()
    })
    .await;
    let expected = verify_error(
        5,
        SignError::RetiredKey {
            key_id: old.key_id().clone(),
            retired_at: 3,
        },
    );
    assert_refused(&fed.sync, &report, UNI, &expected, 1);
    assert!(
        expected.contains(POLAR)
            && expected.contains("entry 5")
            && expected.contains(old.key_id().as_str()),
        "{expected}"
    );
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), held);
    assert_eq!(
        fed.here.origin_keys(POLAR).unwrap().unwrap().links().len(),
        1
    );
    assert_honest_retry(&fed).await;
    all_entries_verify(&fed.here, POLAR);
}

/// Adversarial: a relay that passes the announced key set off as another
/// entry at its position (here, relabelled as a record) is refused: the
/// chain holds the set at that position, and nothing else is taken there.
#[tokio::test]
async fn an_entry_in_place_of_the_announced_key_set_is_refused() {
    let fed = federation();
    import(&fed.polar, 1, 2);
    assert_honest_retry(&fed).await;
    fed.polar.rotate_keys(Vec::new(), false, 90).unwrap();
    import(&fed.polar, 3, 1);
    let held = fed.here.store().log_size(POLAR).unwrap();
    let report = tampered_round(&fed, |items| {
        let envelope = envelope(item(items, 3));
        envelope.payload_type = RECORD_TYPE.into();
    })
    .await;
    assert!(!report.ok, "{report:?}");
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), held);
    assert_honest_retry(&fed).await;
}

/// Adversarial: a relay serves the announced key set with its payload
/// intact but other signatures (none, a forged one, more than an envelope
/// may carry). The Merkle leaf covers the payload only, so the batch proof
/// holds; what is stored must still be the envelope the chain verified, or
/// the chain rebuilt from the store would no longer verify and the origin
/// would be held back for good. Each is refused at the set's position, the
/// origin's chain still verifies here, and an honest pull completes.
#[tokio::test]
async fn a_key_set_with_other_signatures_than_announced_is_refused() {
    let tampers = key_set_tampers();
    for (n, (what, resign)) in tampers.into_iter().enumerate() {
        let fed = federation();
        import(&fed.polar, 1, 2);
        assert_honest_retry(&fed).await;
        fed.polar.rotate_keys(Vec::new(), false, 90).unwrap();
        import(&fed.polar, 3, 2);
        let held = fed.here.store().log_size(POLAR).unwrap();
        assert_eq!(held, 3, "the rotation is entry 3");
        let report = tampered_round(&fed, move |items| resign(envelope(item(items, 3)))).await;
        let expected = verify_error(
            3,
            SignError::KeySetPosition {
                index: 3,
                message: "carries other signatures than the key set verified for this position"
                    .into(),
            },
        );
        assert_refused(&fed.sync, &report, UNI, &expected, 1);
        assert!(
            expected.contains(POLAR) && expected.contains("entry 3"),
            "{what}"
        );
        assert_eq!(fed.here.store().log_size(POLAR).unwrap(), held, "{what}");
        let chain = fed.here.origin_keys(POLAR);
        assert!(
            matches!(&chain, Ok(Some(chain)) if chain.links().len() == 1),
            "{what} (case {n}): {chain:?}"
        );
        assert_honest_retry(&fed).await;
        let chain = fed.here.origin_keys(POLAR).unwrap().unwrap();
        assert_eq!(chain.links().len(), 2, "{what}");
        assert_eq!(
            stored_envelope(&fed.here, POLAR, 3),
            stored_envelope(&fed.polar, POLAR, 3),
            "{what}: the set is stored as the origin signed it"
        );
        all_entries_verify(&fed.here, POLAR);
    }
}

/// A store that took a key set with other signatures than the origin's
/// (stripped, forged or padded by a relay, before such batches were
/// refused) holds the origin back for good. `fsck` names the entry and
/// why, and checks the rest of the store, where it used to stop at the
/// chain's error; `--repair` does not claim to fix it.
#[tokio::test]
async fn fsck_names_a_key_set_stored_with_other_signatures_than_the_origins() {
    let tampers = key_set_tampers();
    for (what, resign) in tampers {
        let fed = federation();
        import(&fed.polar, 1, 2);
        assert_honest_retry(&fed).await;
        fed.polar.rotate_keys(Vec::new(), false, 90).unwrap();
        import(&fed.polar, 3, 2);
        assert_honest_retry(&fed).await;
        // The rotation is entry 3; stored here as the old relay left it:
        // the payload the origin signed, other signatures.
        let mut damaged = stored_envelope(&fed.here, POLAR, 3);
        resign(&mut damaged);
        let store = fed.here.store();
        store
            .refill(POLAR, &[(3, StoredEntry::Signed(damaged).encode())], &[])
            .unwrap();
        store.flush().unwrap();
        // Opened again, as after a restart, through a backup of the store.
        let dir = tempfile::tempdir().unwrap();
        let backup = dir.path().join("backup");
        crate::backup::create(&fed.here, &backup, &Default::default()).unwrap();
        let restored = dir.path().join("restored");
        crate::backup::restore(&backup, &restored, crate::backup::Recovery::Skip).unwrap();
        let node = Node::open(&restored, &BTreeMap::new()).unwrap();
        assert!(
            matches!(
                crate::sync::origin_chain(&node, POLAR),
                Err(SyncError::HeldBack { .. })
            ),
            "{what}"
        );

        let report = crate::fsck::check(&node).unwrap();
        let named: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.origin == POLAR)
            .collect();
        assert_eq!(named.len(), 1, "{what}: {:#?}", report.findings);
        let finding = named[0];
        assert_eq!(finding.log_index, Some(3), "{what}: {finding}");
        assert_eq!(finding.tree, crate::store::tree::KEYSETS);
        assert!(!finding.repairable);
        assert!(
            finding
                .message
                .starts_with("the key set's signatures differ from the ones the origin signed"),
            "{what}: {finding}"
        );
        assert!(finding.message.contains("entry 0"), "{what}: {finding}");
        assert!(
            report.findings.iter().all(|f| f.origin == POLAR),
            "the other origins are checked as usual: {:#?}",
            report.findings
        );
        let repaired = crate::fsck::repair(&node).unwrap();
        assert_eq!(repaired.findings, report.findings, "{what}");
    }
}

/// Rewrites the signatures of an envelope.
type Resign = fn(&mut Envelope);

/// The tampers a relay could once leave on a stored key-set entry.
fn key_set_tampers() -> [(&'static str, Resign); 3] {
    [
        ("no signature", |envelope| envelope.signatures.clear()),
        ("a forged signature", |envelope| {
            envelope.signatures[0].sig = vec![0x5a; 64];
        }),
        ("40 signatures of unknown keys", |envelope| {
            for _ in 0..40 {
                let key = crate::sign::NodeKey::generate();
                envelope.signatures.push(crate::proto::Signature {
                    key_id: key.key_id().to_string(),
                    sig: vec![0xa5; 64],
                });
            }
        }),
    ]
}

/// `here` holds `polar`'s log through a rotation at entry 3 (entries 0–5),
/// with entry 3 stored as `resign` leaves it: the payload the origin
/// signed, other signatures, as a relay could leave it before such batches
/// were refused. The chain is built again from the store, as after a
/// restart, and does not verify: `polar` is held back. Returns the stored
/// entry.
async fn damaged_key_set_here(fed: &Federation, resign: Resign) -> Envelope {
    import(&fed.polar, 1, 2);
    assert_honest_retry(fed).await;
    fed.polar.rotate_keys(Vec::new(), false, 90).unwrap();
    import(&fed.polar, 3, 2);
    assert_honest_retry(fed).await;
    fed.here.catch_up_index(&mut |_| {}).unwrap();
    store_damaged(fed, &[(3, resign)]).remove(0)
}

/// Stores `polar`'s entry at each index of `damaged` in `here` as its
/// `Resign` leaves it, and builds the chain again from the store, as after
/// a restart: `polar` is held back. Returns the stored entries.
fn store_damaged(fed: &Federation, damaged: &[(u64, Resign)]) -> Vec<Envelope> {
    let store = fed.here.store();
    let stored = damaged
        .iter()
        .map(|(index, resign)| {
            let mut envelope = stored_envelope(&fed.here, POLAR, *index);
            resign(&mut envelope);
            store
                .refill(
                    POLAR,
                    &[(*index, StoredEntry::Signed(envelope.clone()).encode())],
                    &[],
                )
                .unwrap();
            envelope
        })
        .collect();
    store.flush().unwrap();
    fed.here.forget_chain(POLAR);
    assert!(matches!(
        crate::sync::origin_chain(&fed.here, POLAR),
        Err(SyncError::HeldBack { .. })
    ));
    stored
}

/// A store holding a key set with other signatures than the origin's has
/// the origin held back; one round with a peer that holds the origin's
/// log fetches that one entry again, checks it, and puts it in place: the
/// entry is the origin's byte for byte, the chain verifies, fsck is clean,
/// the origin's later entries are pulled in the same round and indexed.
/// A peer that holds no more than this node puts it right too.
#[tokio::test]
async fn a_key_set_stored_with_other_signatures_is_fetched_again_from_a_peer() {
    for (n, (what, resign)) in key_set_tampers().into_iter().enumerate() {
        let fed = federation();
        damaged_key_set_here(&fed, resign).await;
        assert!(!crate::fsck::check(&fed.here).unwrap().clean(), "{what}");
        // The origin goes on meanwhile; in the first case it does not.
        let grows = n > 0;
        if grows {
            import(&fed.polar, 5, 2);
        }
        let report = round_with(
            &fed.sync,
            UNI,
            Served::relay(UNI, &fed.polar, HERE, Box::new(|_| {})),
        )
        .await;
        assert!(
            report.ok && report.held_back.is_empty(),
            "{what}: {report:?}"
        );
        assert_eq!(report.entries, if grows { 2 } else { 0 }, "{what}");
        assert_eq!(
            stored_envelope(&fed.here, POLAR, 3),
            stored_envelope(&fed.polar, POLAR, 3),
            "{what}: the set is stored as the origin signed it"
        );
        let chain = fed.here.origin_keys(POLAR).unwrap().unwrap();
        assert_eq!(chain.links().len(), 2, "{what}");
        let size = fed.polar.store().log_size(POLAR).unwrap();
        assert_eq!(fed.here.store().log_size(POLAR).unwrap(), size, "{what}");
        assert_eq!(
            fed.here.store().checkpoint(POLAR).unwrap(),
            fed.polar.store().checkpoint(POLAR).unwrap(),
            "{what}"
        );
        all_entries_verify(&fed.here, POLAR);
        fed.here.catch_up_index(&mut |_| {}).unwrap();
        assert_eq!(
            fed.here.index().cursors().get(POLAR).copied(),
            Some(size),
            "{what}: the index took the origin up again"
        );
        let report = crate::fsck::check(&fed.here).unwrap();
        assert!(report.clean(), "{what}: {:#?}", report.findings);
        assert_eq!(status(&fed.sync, UNI).rejected, 0, "{what}");
    }
}

/// Two key sets of one chain stored with other signatures (the rotations
/// at entries 3 and 6, each damaged its own way): one round puts right
/// the first, then the second, which the first hid, and pulls what the
/// origin wrote after them.
#[tokio::test]
async fn two_damaged_key_sets_of_one_chain_are_both_put_right_in_one_round() {
    let tampers = key_set_tampers();
    let fed = federation();
    import(&fed.polar, 1, 2);
    assert_honest_retry(&fed).await;
    fed.polar.rotate_keys(Vec::new(), false, 90).unwrap();
    import(&fed.polar, 3, 2);
    fed.polar.rotate_keys(Vec::new(), false, 90).unwrap();
    import(&fed.polar, 5, 2);
    assert_honest_retry(&fed).await;
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), 9);
    store_damaged(&fed, &[(3, tampers[0].1), (6, tampers[2].1)]);
    let report = crate::fsck::check(&fed.here).unwrap();
    assert!(!report.clean());
    import(&fed.polar, 7, 2);

    let report = round_with(
        &fed.sync,
        UNI,
        Served::relay(UNI, &fed.polar, HERE, Box::new(|_| {})),
    )
    .await;
    assert!(report.ok && report.held_back.is_empty(), "{report:?}");
    assert_eq!(report.entries, 2, "{report:?}");
    for index in [3, 6] {
        assert_eq!(
            stored_envelope(&fed.here, POLAR, index),
            stored_envelope(&fed.polar, POLAR, index),
            "entry {index} is stored as the origin signed it"
        );
    }
    assert_eq!(
        fed.here.origin_keys(POLAR).unwrap().unwrap().links().len(),
        3
    );
    all_entries_verify(&fed.here, POLAR);
    let report = crate::fsck::check(&fed.here).unwrap();
    assert!(report.clean(), "{:#?}", report.findings);
    assert_eq!(status(&fed.sync, UNI).rejected, 0);
}

/// A peer that serves a stream rewritten by `tamper` after the key sets
/// were announced: it lies about the announced sets too. `refuses`: it
/// refuses every pull instead.
struct Rewritten {
    inner: Served,
    tamper: Tamper,
    refuses: bool,
}

impl Rewritten {
    fn new(inner: Served, tamper: Tamper) -> Self {
        Self {
            inner,
            tamper,
            refuses: false,
        }
    }

    fn refusing(self) -> Self {
        Self {
            refuses: true,
            ..self
        }
    }
}

#[async_trait::async_trait]
impl FederationPeer for Rewritten {
    async fn node_info(&self) -> Result<NodeInfo, SyncError> {
        self.inner.node_info().await
    }

    async fn pull(
        &self,
        origin: &str,
        after_index: u64,
        max_batch: u32,
    ) -> Result<PullStream, SyncError> {
        use futures::StreamExt;
        if self.refuses {
            return Err(SyncError::Refused {
                peer: self.inner.claims.clone(),
                message: format!("no log of {origin} here"),
            });
        }
        let stream = self.inner.pull(origin, after_index, max_batch).await?;
        let mut items: Vec<PullItem> = stream
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        (self.tamper)(&mut items);
        Ok(Box::pin(futures::stream::iter(items.into_iter().map(Ok))))
    }

    async fn hint(&self, origin: &str, size: u64) -> Result<(), SyncError> {
        self.inner.hint(origin, size).await
    }

    async fn search(
        &self,
        request: crate::proto::PeerSearchRequest,
        within: std::time::Duration,
    ) -> Result<crate::proto::PeerSearchResponse, SyncError> {
        self.inner.search(request, within).await
    }
}

/// A peer asked again for a key set stored with other signatures than the
/// origin's that answers with another payload, or with signatures that do
/// not make it the next set, is refused and counted as for a bad entry:
/// nothing stored changes, the origin stays held back and nothing more of
/// it is pulled. An honest peer then puts it right.
#[tokio::test]
async fn a_key_set_fetched_again_that_is_not_the_origins_changes_nothing() {
    type Lie = fn(&mut Envelope, &Envelope);
    let lies: [(&str, Lie, &str); 3] = [
        (
            "another payload",
            |envelope, _| {
                let at = envelope.payload.len() / 2;
                envelope.payload[at] ^= 0x01;
            },
            "differs from the key set held at this position",
        ),
        (
            "a forged signature",
            |envelope, _| envelope.signatures[0].sig = vec![0x5a; 64],
            "",
        ),
        (
            "no signature",
            |envelope, _| envelope.signatures.clear(),
            "",
        ),
    ];
    for (what, lie, message) in lies {
        let fed = federation();
        let damaged = damaged_key_set_here(&fed, |envelope| {
            envelope.signatures[0].sig = vec![0x33; 64];
        })
        .await;
        import(&fed.polar, 5, 2);
        let held = fed.here.store().log_size(POLAR).unwrap();
        let copy = damaged.clone();
        let tamper: Tamper = Box::new(move |items: &mut Vec<PullItem>| {
            for item in items.iter_mut().filter(|item| item.index == 3) {
                if let Some(pull_item::Item::KeySet(envelope) | pull_item::Item::Entry(envelope)) =
                    &mut item.item
                {
                    lie(envelope, &copy);
                }
            }
        });
        let hostile = Rewritten::new(
            Served::relay(UNI, &fed.polar, HERE, Box::new(|_| {})),
            tamper,
        );
        let report = round_with(&fed.sync, UNI, hostile).await;
        assert!(!report.ok, "{what}: {report:?}");
        assert!(report.error.contains("entry 3"), "{what}: {report:?}");
        // Counted as a bad entry of a pull: its signatures, or its payload.
        let reason = if message.is_empty() {
            RejectReason::Signature
        } else {
            assert_eq!(report.error, sequence_error(3, message), "{what}");
            RejectReason::Sequence
        };
        assert_eq!(fed.here.metrics().rejections.get(reason), 1, "{what}");
        assert_eq!(report.held_back.len(), 1, "{what}: {report:?}");
        let status = status(&fed.sync, UNI);
        assert_eq!(status.rejected, 1, "{what}: {status:?}");
        assert_eq!(
            stored_envelope(&fed.here, POLAR, 3),
            damaged,
            "{what}: nothing stored changed"
        );
        assert_eq!(fed.here.store().log_size(POLAR).unwrap(), held, "{what}");
        assert!(
            matches!(
                crate::sync::origin_chain(&fed.here, POLAR),
                Err(SyncError::HeldBack { .. })
            ),
            "{what}"
        );
        // A peer that refuses the pull sent nothing wrong: not blamed, no
        // failure counted.
        let refusing = Rewritten::new(
            Served::relay(UNI, &fed.polar, HERE, Box::new(|_| {})),
            Box::new(|_| {}),
        )
        .refusing();
        let report = round_with(&fed.sync, UNI, refusing).await;
        assert!(report.ok, "{what}: {report:?}");
        assert_eq!(report.held_back.len(), 1, "{what}: {report:?}");
        let after = fed.sync.status()[UNI].clone();
        assert_eq!(
            (after.rejected, after.consecutive_failures),
            (1, 0),
            "{what}: {after:?}"
        );
        assert_eq!(stored_envelope(&fed.here, POLAR, 3), damaged, "{what}");
        let report = round_with(
            &fed.sync,
            UNI,
            Served::relay(UNI, &fed.polar, HERE, Box::new(|_| {})),
        )
        .await;
        assert!(
            report.ok && report.held_back.is_empty(),
            "{what}: {report:?}"
        );
        assert_eq!(
            stored_envelope(&fed.here, POLAR, 3),
            stored_envelope(&fed.polar, POLAR, 3),
            "{what}"
        );
        assert!(crate::fsck::check(&fed.here).unwrap().clean(), "{what}");
    }
}

/// A peer whose own copy of the key set carries the same damage (a relay
/// altered it on its way there too) sends nothing that is its fault: it is
/// not blamed, no failure is counted that would delay the other origins it
/// serves, and the origin stays held back until a peer holds the origin's.
#[tokio::test]
async fn a_peer_holding_the_same_damaged_key_set_is_not_blamed() {
    let fed = federation();
    let damaged = damaged_key_set_here(&fed, |envelope| {
        envelope.signatures[0].sig = vec![0x33; 64];
    })
    .await;
    import(&fed.polar, 5, 2);
    let copy = damaged.clone();
    let same_damage: Tamper = Box::new(move |items: &mut Vec<PullItem>| {
        for item in items.iter_mut().filter(|item| item.index == 3) {
            if let Some(pull_item::Item::KeySet(envelope) | pull_item::Item::Entry(envelope)) =
                &mut item.item
            {
                *envelope = copy.clone();
            }
        }
    });
    let damaged_too = Rewritten::new(
        Served::relay(UNI, &fed.polar, HERE, Box::new(|_| {})),
        same_damage,
    );
    let report = round_with(&fed.sync, UNI, damaged_too).await;
    assert_eq!(report.held_back.len(), 1, "{report:?}");
    let status = fed.sync.status()[UNI].clone();
    assert_eq!(
        (status.rejected, status.consecutive_failures),
        (0, 0),
        "{status:?}"
    );
    assert_eq!(
        fed.here.metrics().rejections.get(RejectReason::Signature),
        0
    );
    assert_eq!(stored_envelope(&fed.here, POLAR, 3), damaged);
    let report = round_with(
        &fed.sync,
        UNI,
        Served::relay(UNI, &fed.polar, HERE, Box::new(|_| {})),
    )
    .await;
    assert!(report.ok && report.held_back.is_empty(), "{report:?}");
}

/// An origin held back because its pin changed under the store is named
/// at its first key set, pointing to the pin, not to a relay.
#[tokio::test]
async fn fsck_names_an_origin_whose_pin_no_longer_verifies_its_chain() {
    let fed = federation();
    import(&fed.polar, 1, 2);
    assert_honest_retry(&fed).await;
    let pinned = repin(&fed.here, POLAR, &stranger_root());
    let report = crate::fsck::check(&fed.here).unwrap();
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let finding = &report.findings[0];
    assert_eq!(
        (finding.origin.as_str(), finding.log_index),
        (POLAR, Some(0))
    );
    assert!(finding.message.contains("check the pin"), "{finding}");
    repin(&fed.here, POLAR, &pinned);
    assert!(crate::fsck::check(&fed.here).unwrap().clean());
}

/// Issue 11, item 3: an origin whose key set expired is stale: still
/// held and searchable, flagged, counted in the gauge; a renewal ends it.
#[tokio::test]
async fn an_expired_key_set_makes_its_origin_stale_until_renewed() {
    let fed = federation();
    import(&fed.polar, 1, 2);
    fed.polar.rotate_keys(Vec::new(), true, 1).unwrap();
    assert_honest_retry(&fed).await;
    let now = crate::keyset::now_unix();
    assert!(fed.here.stale_origins_at(now).unwrap().is_empty());
    let later = now + 2 * 86_400;
    let stale = fed.here.stale_origins_at(later).unwrap();
    let origins: Vec<&str> = stale.iter().map(|(o, _)| o.as_str()).collect();
    assert!(origins.contains(&POLAR), "{stale:?}");
    assert_eq!(
        fed.here.metrics().keys_stale_origins.get(),
        stale.len() as i64
    );
    // Still held: its records are there to search.
    assert!(fed
        .here
        .store()
        .record_state(POLAR, "PDC-1")
        .unwrap()
        .is_some());
    // A search's completeness report says so, for the operator and (as a
    // count) for an anonymous caller.
    let coverage = |viewer: &Viewer| {
        crate::search::search(
            &fed.here,
            &fed.sync,
            &crate::query::SearchRequest::default(),
            viewer,
        )
        .unwrap()
        .completeness
        .into_iter()
        .map(|line| (line.origin, line.coverage))
        .collect::<Vec<_>>()
    };
    let operator = Viewer::Operator {
        node: fed.here.node_id().clone(),
    };
    assert!(
        coverage(&operator).contains(&(POLAR.to_owned(), crate::search::Coverage::Stale)),
        "{:?}",
        coverage(&operator)
    );
    assert!(coverage(&Viewer::Anonymous)
        .iter()
        .any(|(origin, c)| origin.is_empty() && *c == crate::search::Coverage::Stale));
    // The origin renews; once pulled, it is no longer stale then.
    fed.polar.rotate_keys(Vec::new(), true, 90).unwrap();
    assert_honest_retry(&fed).await;
    let stale = fed.here.stale_origins_at(later).unwrap();
    assert!(!stale.iter().any(|(o, _)| o == POLAR), "{stale:?}");
    assert!(!coverage(&operator)
        .iter()
        .any(|(_, c)| *c == crate::search::Coverage::Stale));
}

// ------------------------------------------------------------ record model v2

/// Where `needle` starts in `payload`.
fn position(payload: &[u8], needle: &[u8]) -> usize {
    payload
        .windows(needle.len())
        .position(|window| window == needle)
        .unwrap_or_else(|| panic!("{} not in the payload", String::from_utf8_lossy(needle)))
}

#[tokio::test]
async fn a_flipped_byte_in_a_record_model_v2_field_is_refused_and_the_honest_copy_arrives_whole() {
    let fed = federation();
    let line = crate::test_support::rich_record_line("PDC-V2", "Bering Strait moorings", "public");
    let outcome = fed.polar.import_lines(1, &[line]).unwrap();
    assert_eq!(outcome.stored, 1, "{outcome:?}");
    let operator = |node: &Node| Viewer::Operator {
        node: node.node_id().clone(),
    };
    let original = fed
        .polar
        .get(POLAR, "PDC-V2", &operator(&fed.polar))
        .unwrap();
    let index = original.log_index.0;
    assert!(!original.record.funding_references.is_empty());

    // One byte of the award title (field 29, unknown to a v1 node) flipped.
    let at = position(&original.envelope.payload, b"Sustainability");
    let report = tampered_round(&fed, move |items| {
        envelope(item(items, index)).payload[at] ^= 0x01;
    })
    .await;
    let expected = verify_error(
        index,
        SignError::BadSignature {
            key_id: fed.polar.key().key_id().clone(),
        },
    );
    assert_refused(&fed.sync, &report, UNI, &expected, 1);
    assert_eq!(
        fed.here.store().record_state(POLAR, "PDC-V2").unwrap(),
        None
    );

    // The same for a polygon's coordinate: the signature covers field 31.
    let payload = &original.envelope.payload;
    let Some(Body::Record(record)) = LogEntry::decode(payload.as_slice()).unwrap().body else {
        panic!("a record entry")
    };
    let latitude = record.geo_polygons[0].points[2].latitude.to_le_bytes();
    let polygon_at = position(payload, &latitude);
    let report = tampered_round(&fed, move |items| {
        envelope(item(items, index)).payload[polygon_at + 7] ^= 0x40;
    })
    .await;
    assert_refused(&fed.sync, &report, UNI, &expected, 2);

    assert_honest_retry(&fed).await;
    let held = fed.here.get(POLAR, "PDC-V2", &operator(&fed.here)).unwrap();
    assert_eq!(held.record, original.record, "every v2 field arrives");
    assert_eq!(
        held.envelope.payload, original.envelope.payload,
        "forwarded byte for byte"
    );
}

/// Issue 11, item 4: the replica pulled what the leaked key signed before
/// the origin revoked it; once it pulls the revoking set, it quarantines
/// them (not read, not indexed, relayed as digests only) and counts them,
/// with no re-pinning; the origin's re-signed versions end the quarantine.
#[tokio::test]
async fn a_revocation_pulled_after_the_entries_quarantines_them_at_the_replica() {
    let fed = federation();
    import(&fed.polar, 1, 2);
    let from = fed.polar.store().log_size(POLAR).unwrap();
    import(&fed.polar, 3, 2);
    assert_honest_retry(&fed).await;
    fed.here.catch_up_index(&mut |_| {}).unwrap();
    assert_eq!(fed.here.index().doc_count(), 4);
    let operator = Viewer::Operator {
        node: fed.here.node_id().clone(),
    };
    assert!(fed.here.get(POLAR, "PDC-3", &operator).is_ok());

    let leaked = fed.polar.key().key_id().clone();
    fed.polar
        .revoke_key(Vec::new(), leaked.clone(), from, "leaked".into(), 30)
        .unwrap();
    assert_honest_retry(&fed).await;
    let held = fed.here.quarantined(POLAR).unwrap();
    let ids: Vec<&str> = held.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(ids, ["PDC-3", "PDC-4"]);
    assert_eq!(fed.here.quarantine_count(POLAR).unwrap(), 2);
    assert!(matches!(
        fed.here.get(POLAR, "PDC-3", &operator),
        Err(crate::node::NodeError::NotFound { .. })
    ));
    assert!(fed.here.get(POLAR, "PDC-1", &operator).is_ok());
    let listed = fed.here.list(POLAR, 100, "", false, &operator).unwrap();
    assert_eq!(listed.records.len(), 2);
    fed.here.catch_up_index(&mut |_| {}).unwrap();
    assert_eq!(fed.here.index().doc_count(), 2, "dropped from the index");
    // Relayed as digests only.
    let peer = fed.here.peer_viewer(&UNI.parse().unwrap()).unwrap();
    let size = fed.here.store().log_size(POLAR).unwrap();
    let items = serve_entries(&fed.here, &peer, POLAR, from, size, 100).unwrap();
    assert!(items[..2]
        .iter()
        .all(|item| matches!(item.item, Some(pull_item::Item::Redacted(_)))));
    assert!(fed.sync.status().values().all(|peer| peer.rejected == 0));

    assert_eq!(fed.polar.resign(false).unwrap().ids, ["PDC-3", "PDC-4"]);
    assert_honest_retry(&fed).await;
    assert_eq!(fed.here.quarantine_count(POLAR).unwrap(), 0);
    let view = fed.here.get(POLAR, "PDC-3", &operator).unwrap();
    assert_eq!(view.verified_key_id, fed.polar.key().key_id().to_string());
    fed.here.catch_up_index(&mut |_| {}).unwrap();
    assert_eq!(fed.here.index().doc_count(), 4);
    all_entries_verify(&fed.here, POLAR);
}

/// A peer that serves whole the entries its origin serves as digests once
/// a revocation quarantines them (a stale or hostile relay): they arrive
/// in the same pull as the revocation and verify, since the key signed
/// them before it was revoked. Decoded, they are handed to the indexer as
/// every pulled record is. Two checks keep them out of the index, each
/// enough alone: for an origin with revocations the indexer reads entries
/// from the store, not the handoff, and checks each against the
/// revocations; and the revoking key set removes what it quarantines.
#[tokio::test]
async fn whole_entries_pulled_with_the_revocation_that_quarantines_them_are_never_indexed() {
    let fed = federation();
    import(&fed.polar, 1, 2);
    assert_honest_retry(&fed).await;
    assert_eq!(searched(&fed.here, "station"), ["PDC-1", "PDC-2"]);

    let from = fed.polar.store().log_size(POLAR).unwrap();
    import(&fed.polar, 3, 2);
    let viewer = fed.polar.peer_viewer(&HERE.parse().unwrap()).unwrap();
    let size = fed.polar.store().log_size(POLAR).unwrap();
    let whole = serve_entries(&fed.polar, &viewer, POLAR, from, size, 100).unwrap();
    revoke_polar_key_from(&fed, from);
    let tamper: Tamper = Box::new(move |items| {
        for item in items.iter_mut() {
            if let Some(entry) = whole.iter().find(|w| w.index == item.index) {
                *item = entry.clone();
            }
        }
    });
    let report = round_with(
        &fed.sync,
        POLAR,
        Served::relay(POLAR, &fed.polar, HERE, tamper),
    )
    .await;
    assert!(report.ok, "{report:?}");
    assert_eq!(fed.here.quarantine_count(POLAR).unwrap(), 2);
    assert!(
        fed.here.handoff.held() > 0,
        "the pull handed its records on"
    );
    assert_eq!(searched(&fed.here, "station"), ["PDC-1", "PDC-2"]);
    assert_eq!(fed.here.handoff.held(), 0, "what was handed is let go");

    // Signed again with the origin's new key, they come back.
    assert_eq!(fed.polar.resign(false).unwrap().ids, ["PDC-3", "PDC-4"]);
    assert_honest_retry(&fed).await;
    assert_eq!(
        searched(&fed.here, "station"),
        ["PDC-1", "PDC-2", "PDC-3", "PDC-4"]
    );
}

/// Pins `origin` at `node` to the root key `root` instead, as a pin
/// changed under a store (or a store whose key sets no longer match the
/// pin): the origin's stored key chain no longer verifies. Returns the
/// root pinned before.
fn repin(node: &Node, origin: &str, root: &[u8]) -> Vec<u8> {
    let mut before = Vec::new();
    edit_pin(node, origin, |peer| {
        before = std::mem::replace(&mut peer.identity_key, root.to_vec());
    });
    before
}

/// Changes what the trust store holds for `origin` at `node`, behind the
/// trust store's back.
fn edit_pin(node: &Node, origin: &str, change: impl FnOnce(&mut crate::trust::Peer)) {
    let peers = node.store().table(crate::store::tree::PEERS).unwrap();
    let held = peers
        .get(origin.as_bytes())
        .unwrap()
        .expect("a pinned peer");
    let mut peer: crate::trust::Peer = serde_json::from_slice(&held).unwrap();
    change(&mut peer);
    let changed = serde_json::to_vec(&peer).unwrap();
    assert!(peers
        .compare_and_swap(origin.as_bytes(), Some(&held), changed)
        .unwrap());
}

/// A root key no key set of any origin here names.
fn stranger_root() -> Vec<u8> {
    crate::sign::NodeKey::generate()
        .verifying_key()
        .to_bytes()
        .to_vec()
}

/// An origin's revocations are read from its key chain. While that chain
/// does not verify from the pin, the indexer cannot tell what they
/// quarantine: it indexes nothing more of the origin (not the entries a
/// revocation quarantines, which it would take as trusted without the
/// chain), keeps its cursor, and goes on with the other origins; the
/// origin is held back, not counted as behind. Once the chain verifies
/// again, the origin catches up, with its quarantine applied.
#[tokio::test]
async fn an_origin_whose_key_chain_does_not_verify_is_not_indexed_until_it_does() {
    let fed = federation();
    import(&fed.polar, 1, 2);
    assert_honest_retry(&fed).await;
    assert_eq!(searched(&fed.here, "station"), ["PDC-1", "PDC-2"]);
    let cursor = fed.here.indexed(POLAR);

    // Pulled whole before the revocation, then the revocation: nothing of
    // either is indexed yet.
    let from = fed.polar.store().log_size(POLAR).unwrap();
    import(&fed.polar, 3, 2);
    assert_honest_retry(&fed).await;
    revoke_polar_key_from(&fed, from);
    assert_honest_retry(&fed).await;
    assert_eq!(fed.here.quarantine_count(POLAR).unwrap(), 2);
    fed.uni
        .import_lines(1, &[line("UNI-1", "Ice station at uni", "public")])
        .unwrap();
    let report = round_with(&fed.sync, UNI, Served::honest(&fed.uni, HERE)).await;
    assert!(report.ok, "{report:?}");

    let pinned = repin(&fed.here, POLAR, &stranger_root());
    assert!(fed.here.origin_keys(POLAR).is_err());
    assert_eq!(
        searched(&fed.here, "station"),
        ["PDC-1", "PDC-2", "UNI-1"],
        "the other origin is indexed; nothing more of the unverified one"
    );
    assert_eq!(fed.here.indexed(POLAR), cursor, "its cursor stays");
    assert_eq!(
        fed.here.indexed(UNI),
        fed.here.store().log_size(UNI).unwrap()
    );
    assert_eq!(fed.here.index_behind().unwrap(), 0, "held back, not behind");
    assert_eq!(
        fed.here.catch_up_index(&mut |_| {}).unwrap(),
        0,
        "a round after reads nothing again"
    );

    repin(&fed.here, POLAR, &pinned);
    assert_eq!(
        searched(&fed.here, "station"),
        ["PDC-1", "PDC-2", "UNI-1"],
        "caught up, its quarantine applied"
    );
    assert_eq!(
        fed.here.indexed(POLAR),
        fed.here.store().log_size(POLAR).unwrap()
    );
}

/// While an origin's key chain does not verify, its records are not
/// served, and to anyone but the operator they answer exactly as missing
/// ones: a record, a missing id and a listing say nothing of whether this
/// node holds the origin. The operator is told why.
#[tokio::test]
async fn an_origin_whose_key_chain_does_not_verify_answers_as_one_not_held() {
    use crate::node::NodeError;
    let fed = federation();
    import(&fed.polar, 1, 2);
    assert_honest_retry(&fed).await;
    let anonymous = Viewer::Anonymous;
    assert!(fed.here.get(POLAR, "PDC-1", &anonymous).is_ok());
    repin(&fed.here, POLAR, &stranger_root());

    let not_found = |id: &str| match fed.here.get(POLAR, id, &anonymous) {
        Err(NodeError::NotFound { origin, id: named }) => {
            assert_eq!((origin.as_str(), named.as_str()), (POLAR, id));
        }
        other => panic!("{id}: {other:?}"),
    };
    not_found("PDC-1");
    not_found("NOPE");
    let page = fed.here.list(POLAR, 10, "", false, &anonymous).unwrap();
    assert!(page.records.is_empty(), "{} records", page.records.len());
    let never_held = fed.here.list("nowhere", 10, "", false, &anonymous).unwrap();
    assert_eq!(page.next_page_token, never_held.next_page_token);

    let operator = fed.here.operator();
    assert!(
        matches!(
            fed.here.get(POLAR, "PDC-1", &operator),
            Err(NodeError::Sign(_))
        ),
        "the operator is told why"
    );
}

/// Which audience of an origin counts depends on its revocations, read
/// from its key chain. While the chain does not verify, no audience is
/// chosen (an error), and a pinned peer is granted none of the origin's
/// records but the public ones: never what an audience the chain would
/// set aside grants. The other origins' grants stand.
#[tokio::test]
async fn an_audience_that_cannot_be_checked_against_the_key_chain_grants_nothing() {
    let fed = federation();
    // `uni` is on polar's roster and in its polar-consortium.
    fed.polar.publish_audience().unwrap().expect("an audience");
    import(&fed.polar, 1, 1);
    assert_honest_retry(&fed).await;
    let sees = |origin: &str, visibility: Visibility, groups: &[&str]| {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        fed.here
            .peer_viewer(&UNI.parse().unwrap())
            .unwrap()
            .may_see_audience(origin, visibility as i32, &groups)
    };
    assert!(fed.here.audience(POLAR).unwrap().is_some());
    assert!(sees(POLAR, Visibility::Federation, &[]));
    assert!(sees(POLAR, Visibility::Groups, &["polar-consortium"]));

    let pinned = repin(&fed.here, POLAR, &stranger_root());
    assert!(fed.here.audience(POLAR).is_err());
    assert!(!sees(POLAR, Visibility::Federation, &[]));
    assert!(!sees(POLAR, Visibility::Groups, &["polar-consortium"]));
    assert!(sees(POLAR, Visibility::Public, &[]));
    assert!(
        sees(HERE, Visibility::Federation, &[]),
        "other origins stand"
    );

    repin(&fed.here, POLAR, &pinned);
    assert!(sees(POLAR, Visibility::Federation, &[]));
}

/// An origin whose key chain does not verify is vouched for by nothing:
/// a search reports it stale, and no DOI prefix names a registrant while
/// its claim cannot be read, so a rival claimant of its prefix does not
/// become the sole one (`docs/decisions/doi-registrant.md`).
#[tokio::test]
async fn an_origin_whose_key_chain_does_not_verify_is_not_vouched_for() {
    let claim = [("MERIDIAN_DOI_PREFIXES", "10.5555")];
    let fed = federation_configured(&claim, &claim, &[]);
    for claimant in [&fed.polar, &fed.uni] {
        claimant.publish_doi_prefixes_if_changed().unwrap();
        let chain = claimant.own_chain();
        assert_eq!(chain.latest().unwrap().set.doi_prefixes, ["10.5555"]);
    }
    assert_honest_retry(&fed).await;
    let report = round_with(&fed.sync, UNI, Served::honest(&fed.uni, HERE)).await;
    assert!(report.ok, "{report:?}");
    let (registrants, contested) = crate::search::Registrants::with_conflicts(&fed.here);
    assert_eq!(registrants, crate::search::Registrants::default());
    assert_eq!(contested["10.5555"], [POLAR, UNI]);
    let now = crate::keyset::now_unix();
    fed.here.stale_origins_at(now).unwrap();
    assert!(!fed.here.is_stale(POLAR));

    let pinned = repin(&fed.here, POLAR, &stranger_root());
    let (registrants, _) = crate::search::Registrants::with_conflicts(&fed.here);
    assert_eq!(
        registrants,
        crate::search::Registrants::default(),
        "uni's claim is not the only one"
    );
    assert!(
        fed.here.stale_origins_at(now).unwrap().is_empty(),
        "not expired"
    );
    assert!(fed.here.is_stale(POLAR));
    assert!(!fed.here.is_stale(UNI));
    assert_eq!(
        crate::search::vouched(&fed.here, POLAR, crate::search::Coverage::Replica),
        crate::search::Coverage::Stale
    );

    repin(&fed.here, POLAR, &pinned);
    fed.here.stale_origins_at(now).unwrap();
    assert!(!fed.here.is_stale(POLAR));
}

/// An origin whose key chain as stored here does not verify is held back,
/// whoever serves it: a relay that serves it is not blamed (no rejection,
/// no failure, no backoff that would delay the other origins it relays),
/// the round reports the origin held back, and the witness exchange finds
/// nothing to compare. Once the pin is put right, the relay serves it.
#[tokio::test]
async fn an_origin_held_back_here_is_no_fault_of_the_relay_that_serves_it() {
    let fed = federation();
    import(&fed.polar, 1, 2);
    assert_honest_retry(&fed).await;
    let pinned = repin(&fed.here, POLAR, &stranger_root());
    assert!(fed.here.origin_keys(POLAR).is_err());
    import(&fed.polar, 3, 2);
    fed.uni
        .import_lines(1, &[line("UNI-1", "Ice station at uni", "public")])
        .unwrap();
    let at_uni = Replicator::new(fed.uni.clone(), no_dialing());
    let report = round_with(&at_uni, POLAR, Served::honest(&fed.polar, UNI)).await;
    assert!(report.ok, "{report:?}");
    let held = fed.here.store().log_size(POLAR).unwrap();

    let report = round_with(&fed.sync, UNI, Served::honest(&fed.uni, HERE)).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.origins, [UNI], "{report:?}");
    assert_eq!(report.held_back.len(), 1, "{report:?}");
    assert!(
        report.held_back[0].starts_with(&format!("{POLAR}: held back: ")),
        "{report:?}"
    );
    let status = status(&fed.sync, UNI);
    assert_eq!(status.rejected, 0, "{status:?}");
    assert_eq!(status.consecutive_failures, 0, "{status:?}");
    assert!(status.last_error.is_empty(), "{status:?}");
    assert_eq!(
        fed.here.metrics().rejections.get(RejectReason::Signature),
        0
    );
    assert_eq!(fed.here.store().log_size(POLAR).unwrap(), held);
    assert!(fed.here.store().log_size(UNI).unwrap() > 0);
    let witnessed = crate::proto::WitnessedCheckpoint {
        checkpoint: Some(checkpoint_of(&fed.uni, POLAR)),
        origin: POLAR.into(),
        ..Default::default()
    };
    assert_eq!(
        witness::check(&fed.here, UNI, POLAR, &witnessed).unwrap(),
        witness::Seen::Unheld
    );

    repin(&fed.here, POLAR, &pinned);
    let report = round_with(&fed.sync, UNI, Served::honest(&fed.uni, HERE)).await;
    assert!(report.ok && report.held_back.is_empty(), "{report:?}");
    assert_eq!(
        fed.here.store().log_size(POLAR).unwrap(),
        fed.polar.store().log_size(POLAR).unwrap()
    );
}

/// Sets the TLS keys pinned for `origin` at `node`, as a trust store
/// written before keys were unique per peer could hold them.
fn pin_tls_keys(node: &Node, origin: &str, keys: Vec<Vec<u8>>) {
    edit_pin(node, origin, |peer| peer.tls_keys = keys);
}

/// One peer whose key chain does not verify takes no other peer off the
/// federation: the others are identified by their TLS keys as before. It
/// is never identified itself: a key that could be its own (pinned for
/// it, or listed by one of its stored key sets, verified or not) is
/// refused naming it; and a key that could be its and is another peer's
/// too stays refused for both, though its chain cannot say whether it
/// lists the key now. Revoked, it holds up nobody either.
#[tokio::test]
async fn a_peer_whose_key_chain_does_not_verify_is_not_identified_and_holds_up_no_other() {
    let fed = federation();
    fed.polar.rotate_tls(Vec::new(), 30).unwrap();
    let polar_next = fed.polar.tls_next().unwrap().spki().to_vec();
    assert_honest_retry(&fed).await;
    let polar_key = fed.polar.tls().spki().to_vec();
    let uni_key = fed.uni.tls().spki().to_vec();
    let here = &fed.here;
    let identified = |spki: &[u8]| {
        here.peer_by_tls_key(spki)
            .unwrap()
            .map(|peer| peer.node_id.to_string())
    };
    assert_eq!(identified(&polar_next).as_deref(), Some(POLAR));

    let pinned = repin(here, POLAR, &stranger_root());
    let builds = here.chain_builds();
    let reads = here.unverified_reads();
    assert_eq!(identified(&uni_key).as_deref(), Some(UNI));
    for key in [&polar_key, &polar_next, &polar_key, &polar_next] {
        match here.peer_by_tls_key(key) {
            Err(NodeError::PeerUnverified { peer, source }) => {
                assert_eq!(peer, POLAR);
                assert!(
                    matches!(
                        *source,
                        NodeError::Sign(SignError::PinnedRootMissing { .. })
                    ),
                    "{source}"
                );
            }
            other => panic!("polar identified: {other:?}"),
        }
    }
    assert_eq!(identified(&stranger_root()), None);
    // The broken chain was built and refused once, not per request, and
    // the keys its stored sets list were read once with it.
    assert_eq!(here.chain_builds() - builds, 1);
    assert_eq!(here.unverified_reads() - reads, 1);
    // A pin put right is taken at once.
    repin(here, POLAR, &pinned);
    assert_eq!(identified(&polar_key).as_deref(), Some(POLAR));

    // Uni's pin names polar's pinned key and the one only polar's set lists.
    repin(here, POLAR, &stranger_root());
    pin_tls_keys(
        here,
        UNI,
        vec![uni_key.clone(), polar_key.clone(), polar_next.clone()],
    );
    for key in [&polar_key, &polar_next] {
        match here.peer_by_tls_key(key) {
            Err(NodeError::Trust(TrustError::AmbiguousKey(names))) => {
                assert_eq!(names, "polar, uni")
            }
            other => panic!("a key two peers list was attributed: {other:?}"),
        }
    }
    assert_eq!(identified(&uni_key).as_deref(), Some(UNI));

    here.trust().set_state(POLAR, PeerState::Revoked).unwrap();
    assert_eq!(identified(&uni_key).as_deref(), Some(UNI));
}

/// `trust add` refuses a TLS key another peer holds as this node judges
/// it in a handshake, not only as pinned from its invitation: after
/// polar's TLS rotation, switch and renewal (its current set lists only a
/// key no pin names), an invitation for a newcomer that carries polar's
/// key is refused naming polar, and polar is still identified by it.
#[tokio::test]
async fn a_tls_key_a_peer_s_key_set_lists_is_not_pinned_for_another() {
    use base64::Engine as _;
    let fed = federation();
    let polar_pinned = fed.polar.tls().spki().to_vec();
    fed.polar.rotate_tls(Vec::new(), 30).unwrap();
    fed.polar.switch_tls().unwrap();
    fed.polar.rotate_keys(Vec::new(), true, 90).unwrap();
    let polar_key = fed.polar.tls().spki().to_vec();
    assert_ne!(polar_key, polar_pinned);
    assert_honest_retry(&fed).await;
    let here = &fed.here;
    let pin = here.trust().get(POLAR).unwrap().unwrap();
    assert_eq!(pin.tls_keys, vec![polar_pinned.clone()]);
    assert_eq!(here.peer_tls_keys(&pin).unwrap(), vec![polar_key.clone()]);

    let (bio, _dir) = open_node("bio", &BTreeMap::new());
    let mut invite = bio.invite();
    for key in [&polar_key, &polar_pinned] {
        invite.tls_key = base64::engine::general_purpose::STANDARD.encode(key);
        match here.pin(&invite, &[]) {
            Err(NodeError::Trust(TrustError::KeyInUse { what, peer })) => {
                assert_eq!((what, peer.as_str()), ("TLS key", POLAR))
            }
            other => panic!("polar's TLS key was pinned for bio: {other:?}"),
        }
    }
    assert!(here.trust().get("bio").unwrap().is_none());
    let identified = here.peer_by_tls_key(&polar_key).unwrap().unwrap();
    assert_eq!(identified.node_id.as_str(), POLAR);

    // Bio's own key is pinned as usual.
    let pinned = here.pin(&bio.invite(), &[]).unwrap();
    assert_eq!(pinned.node_id.as_str(), "bio");
    let polar_again = here.peer_by_tls_key(&polar_key).unwrap().unwrap();
    assert_eq!(polar_again.node_id.as_str(), POLAR);
}

/// Quarantine counts are per origin: an origin whose key chain does not
/// verify is listed apart with why (what its revocations quarantine is
/// unknown), and the others are counted as before, the gauge with them.
#[tokio::test]
async fn quarantine_counts_name_an_origin_whose_key_chain_does_not_verify_and_count_the_others() {
    let fed = federation();
    import(&fed.polar, 1, 2);
    let from = fed.polar.store().log_size(POLAR).unwrap();
    import(&fed.polar, 3, 2);
    // Pulled whole before the revocation, then the revocation.
    assert_honest_retry(&fed).await;
    revoke_polar_key_from(&fed, from);
    assert_honest_retry(&fed).await;
    fed.here
        .import_lines(1, &[line("HERE-1", "Ice station here", "public")])
        .unwrap();
    let own = fed.here.store().log_size(HERE).unwrap() - 1;
    let key = fed.here.key().key_id().clone();
    fed.here
        .revoke_key(Vec::new(), key, own, "leaked".into(), 30)
        .unwrap();
    let counts = fed.here.quarantine_counts().unwrap();
    assert_eq!(
        counts.held,
        BTreeMap::from([(HERE.into(), 1), (POLAR.into(), 2)])
    );
    assert!(counts.unverified.is_empty());

    let pinned = repin(&fed.here, POLAR, &stranger_root());
    let counts = fed.here.quarantine_counts().unwrap();
    assert_eq!(counts.held, BTreeMap::from([(HERE.into(), 1)]));
    let unverified: Vec<&String> = counts.unverified.keys().collect();
    assert_eq!(unverified, [POLAR]);
    assert!(
        matches!(
            counts.unverified[POLAR],
            NodeError::Sign(SignError::PinnedRootMissing { .. })
        ),
        "{}",
        counts.unverified[POLAR]
    );
    assert_eq!(fed.here.metrics().keys_quarantined_records.get(), 1);

    repin(&fed.here, POLAR, &pinned);
    assert_eq!(fed.here.quarantine_counts().unwrap().held.len(), 2);
}

/// OAI-PMH listings leave out the records of an origin whose key chain
/// does not verify (they are not served while it does not) and list the
/// others'; its sets come back, and its records are listed again, once the
/// chain verifies.
#[tokio::test]
async fn harvests_leave_out_an_origin_whose_key_chain_does_not_verify_and_list_the_rest() {
    use crate::oai::{self, Filter, Position, Set, Stamp};
    let fed = federation();
    import(&fed.polar, 1, 2);
    assert_honest_retry(&fed).await;
    fed.uni
        .import_lines(1, &[line("UNI-1", "Ice station at uni", "public")])
        .unwrap();
    let report = round_with(&fed.sync, UNI, Served::honest(&fed.uni, HERE)).await;
    assert!(report.ok, "{report:?}");
    fed.here
        .import_lines(1, &[line("HERE-1", "Ice station here", "public")])
        .unwrap();
    let later = || std::time::Instant::now() + std::time::Duration::from_secs(60);
    let listed = || -> Vec<String> {
        let scan = oai::scan(
            &fed.here,
            Position::default(),
            &Filter::default(),
            100,
            Some(later()),
            later(),
        )
        .unwrap();
        assert_eq!(scan.remaining, Some(0));
        scan.items.iter().map(|i| i.id.clone()).collect()
    };
    // The origins among the sets of a scan from the start (what ListSets
    // reads whenever the holdings' stamp changed).
    let origins = || -> Vec<String> {
        let mut sets = std::collections::BTreeSet::new();
        let (_, done) = oai::sets_from(&fed.here, Position::default(), &mut sets, later()).unwrap();
        assert!(done);
        sets.iter()
            .filter_map(|set| match set {
                Set::Origin(origin) => Some(origin.clone()),
                _ => None,
            })
            .collect()
    };
    let mut all = listed();
    all.sort();
    assert_eq!(all, ["HERE-1", "PDC-1", "PDC-2", "UNI-1"]);
    // Where an incremental harvest would go on from.
    let after = after_last_arrival(&fed.here);
    assert!(harvest_from(&fed.here, after).is_empty());

    let pinned = repin(&fed.here, POLAR, &stranger_root());
    let mut rest = listed();
    rest.sort();
    assert_eq!(rest, ["HERE-1", "UNI-1"]);
    assert!(oai::get(&fed.here, UNI, "UNI-1").unwrap().is_some());
    assert!(
        oai::get(&fed.here, POLAR, "PDC-1").unwrap().is_none(),
        "a record of the origin answers as missing, not as a fault"
    );
    assert_eq!(origins(), [HERE, UNI]);
    let broken = Stamp::of(&fed.here).unwrap();

    repin(&fed.here, POLAR, &pinned);
    assert!(
        Stamp::of(&fed.here).unwrap() != broken,
        "the sets are read again once the chain verifies"
    );
    assert_eq!(origins(), [HERE, POLAR, UNI]);
    let mut again = listed();
    again.sort();
    assert_eq!(again, all, "each record once");

    // A harvester that harvested while the origin was left out is told of
    // its records by its next incremental harvest: they are restated, with
    // the time of their return as their datestamp. Nothing else is.
    assert_eq!(
        harvest_from(&fed.here, after),
        [("PDC-1".to_owned(), true), ("PDC-2".to_owned(), true)]
    );
    let restated = fed.here.store().restatement(POLAR).unwrap().unwrap();
    assert_eq!(
        (restated.first, restated.end),
        (0, fed.here.store().log_size(POLAR).unwrap())
    );
    let told = oai::get(&fed.here, POLAR, "PDC-1").unwrap().unwrap();
    assert_eq!(told.datestamp, restated.stored_at);
    assert!(fed.here.store().left_out().unwrap().is_empty());
    // Once restated, the next listings restate nothing again.
    let after = after_last_arrival(&fed.here);
    listed();
    assert!(harvest_from(&fed.here, after).is_empty());
}

/// The position after every arrival `node` holds: where an incremental
/// harvest that ended now goes on from.
fn after_last_arrival(node: &Node) -> crate::oai::Position {
    let last = node.store().arrivals_from(0).last().unwrap().unwrap();
    crate::oai::Position {
        seq: last.seq + 1,
        index: 0,
    }
}

/// What an OAI-PMH harvest from `at` lists at `node`: each record's id, and
/// whether it is listed whole (else as deleted).
fn harvest_from(node: &Node, at: crate::oai::Position) -> Vec<(String, bool)> {
    let later = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let scan = crate::oai::scan(
        node,
        at,
        &crate::oai::Filter::default(),
        100,
        Some(later),
        later,
    )
    .unwrap();
    assert_eq!(scan.remaining, Some(0));
    scan.items
        .into_iter()
        .map(|item| (item.id, matches!(item.status, crate::oai::Status::Live(_))))
        .collect()
}

/// A revocation sets aside records stored before it: a harvester that took
/// them is told by its next incremental harvest that they are deleted (they
/// are restated from the revocation's first position, with the revoking
/// append's time), and the records before that position are not listed
/// again. Signed again, they come back whole.
#[tokio::test]
async fn an_incremental_harvest_learns_what_a_revocation_set_aside() {
    let fed = federation();
    import(&fed.polar, 1, 2);
    assert_honest_retry(&fed).await;
    let from = fed.polar.store().log_size(POLAR).unwrap();
    import(&fed.polar, 3, 2);
    assert_honest_retry(&fed).await;
    let all = harvest_from(&fed.here, crate::oai::Position::default());
    assert_eq!(all.len(), 4, "{all:?}");
    let after = after_last_arrival(&fed.here);

    revoke_polar_key_from(&fed, from);
    assert_honest_retry(&fed).await;
    assert_eq!(fed.here.quarantine_count(POLAR).unwrap(), 2);
    assert_eq!(
        harvest_from(&fed.here, after),
        [("PDC-3".to_owned(), false), ("PDC-4".to_owned(), false)]
    );
    let restated = fed.here.store().restatement(POLAR).unwrap().unwrap();
    assert_eq!(
        (restated.first, restated.end),
        (from, fed.here.store().log_size(POLAR).unwrap())
    );
    let datestamp = |id: &str| {
        crate::oai::get(&fed.here, POLAR, id)
            .unwrap()
            .unwrap()
            .datestamp
    };
    assert_eq!(datestamp("PDC-3"), restated.stored_at);
    let first = fed
        .here
        .store()
        .arrivals_from(0)
        .find(|a| a.as_ref().unwrap().origin == POLAR)
        .unwrap()
        .unwrap();
    assert_eq!(datestamp("PDC-1"), first.stored_at);
    // A whole harvest lists each record once.
    let mut whole = harvest_from(&fed.here, crate::oai::Position::default());
    whole.sort();
    assert_eq!(
        whole,
        [
            ("PDC-1".to_owned(), true),
            ("PDC-2".to_owned(), true),
            ("PDC-3".to_owned(), false),
            ("PDC-4".to_owned(), false)
        ]
    );

    let after = after_last_arrival(&fed.here);
    assert_eq!(fed.polar.resign(false).unwrap().ids, ["PDC-3", "PDC-4"]);
    assert_honest_retry(&fed).await;
    assert_eq!(
        harvest_from(&fed.here, after),
        [("PDC-3".to_owned(), true), ("PDC-4".to_owned(), true)]
    );
}

/// Issue 11 item 6: the origin's audience decides, and its changes reach
/// the holder within a round. Added to the group, `here` gets whole what it
/// held as digests (a refill); taken out again, it withdraws the record
/// from reads and search; and a relay that pins `here` in the group does
/// not widen it.
#[tokio::test]
async fn an_audience_that_adds_then_removes_this_node_refills_then_withdraws() {
    let fed = federation();
    // `uni` is in polar-consortium by polar's audience; `here` is not.
    fed.polar.publish_audience().unwrap().expect("an audience");
    import(&fed.polar, 1, 2);
    narrow(&fed.polar, "PDC-1", "groups");
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    assert!(report.ok, "{report:?}");
    assert!(!operator_sees(&fed.here, POLAR, "PDC-1"));
    assert_eq!(searched(&fed.here, "station"), ["PDC-2"]);

    // A relay whose operator places `here` in the group serves it digests.
    fed.uni
        .trust()
        .set_groups(HERE, &["polar-consortium".into()])
        .unwrap();
    let at_uni = Replicator::new(fed.uni.clone(), no_dialing());
    let report = round_with(&at_uni, POLAR, Served::honest(&fed.polar, UNI)).await;
    assert!(report.ok, "{report:?}");
    let widened = fed.uni.peer_viewer(&HERE.parse().unwrap()).unwrap();
    // Entry 4 is PDC-1 v2 (0: key set, 1: audience, 2 and 3: the import).
    assert_eq!(served_as(&fed.uni, &widened, POLAR, 4), "digests");
    assert_eq!(served_as(&fed.uni, &widened, POLAR, 3), "entry");

    // Added by the origin: one round brings the record whole.
    publish_with_here_in(&fed.polar, &["polar-consortium"]);
    assert!(fed.polar.publish_audience().unwrap().is_none(), "coalesced");
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    assert!(report.ok, "{report:?}");
    assert!(operator_sees(&fed.here, POLAR, "PDC-1"), "refilled");
    assert_eq!(searched(&fed.here, "station"), ["PDC-1", "PDC-2"]);
    assert_eq!(fed.here.store().refill_due(POLAR).unwrap(), None);

    // Removed by the origin: one round withdraws it.
    publish_with_here_in(&fed.polar, &[]);
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    assert!(report.ok, "{report:?}");
    assert!(!operator_sees(&fed.here, POLAR, "PDC-1"), "withdrawn");
    assert_eq!(searched(&fed.here, "station"), ["PDC-2"]);
    assert_rebuilt_and_clean(&fed.here, &["PDC-2"]);
}

/// `here` holds PDC-1 v2 (entry 4) as digests, and then `polar` publishes
/// an audience that places `here` in its group; returns its position.
async fn digests_then_a_wider_audience(fed: &Federation) -> u64 {
    fed.polar.publish_audience().unwrap().expect("an audience");
    import(&fed.polar, 1, 2);
    narrow(&fed.polar, "PDC-1", "groups");
    assert_honest_retry(fed).await;
    assert!(!operator_sees(&fed.here, POLAR, "PDC-1"), "digests only");
    publish_with_here_in(&fed.polar, &["polar-consortium"])
}

/// `here` pulls what `polar` appended, refilling nothing: the refill that
/// follows a wider audience is left to the test.
async fn pull_only(fed: &Federation) {
    let ours = fed.here.store().log_size(POLAR).unwrap();
    let polar = Served::honest(&fed.polar, HERE);
    let idle = std::time::Duration::from_secs(5);
    receive::pull_origin(&fed.here, &polar, POLAR, POLAR, ours, 0, idle)
        .await
        .unwrap();
    assert_eq!(
        fed.here.store().log_size(POLAR).unwrap(),
        fed.polar.store().log_size(POLAR).unwrap()
    );
}

/// `polar` places `here` in `groups` (only) and publishes its audience;
/// returns the audience's position.
fn publish_with_here_in(polar: &Node, groups: &[&str]) -> u64 {
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    polar.trust().set_groups(HERE, &groups).unwrap();
    polar.publish_audience().unwrap().expect("a new audience")
}

/// A refill takes from the serving peer only what the origin signed at the
/// position of the digests held there: a whole entry with a broken
/// signature, or one whose payload does not hash to those digests, leaves
/// the digests and the record as they were.
#[tokio::test]
async fn a_refill_restores_nothing_a_relay_altered() {
    let fed = federation();
    let at = digests_then_a_wider_audience(&fed).await;
    pull_only(&fed).await;
    async fn refill(fed: &Federation, at: u64, change: fn(&mut Envelope)) -> (u64, bool) {
        let tamper = move |items: &mut Vec<PullItem>| change(envelope(item(items, 4)));
        let relay = Served::relay(UNI, &fed.polar, HERE, Box::new(tamper));
        let idle = std::time::Duration::from_secs(5);
        receive::refill_origin(&fed.here, &relay, UNI, POLAR, at, idle)
            .await
            .unwrap()
    }
    let digests_held = || {
        matches!(
            fed.here
                .store()
                .entry(POLAR, crate::ids::LogIndex(4))
                .unwrap(),
            Some(StoredEntry::Redacted { .. })
        )
    };

    let broken = refill(&fed, at, |e| e.signatures[0].sig[0] ^= 0x01).await;
    assert_eq!(broken, (0, true), "a broken signature restores nothing");
    let other = refill(&fed, at, |e| e.payload.push(0)).await;
    assert_eq!(other, (0, true), "another payload restores nothing");
    assert!(digests_held());
    assert!(!operator_sees(&fed.here, POLAR, "PDC-1"));

    assert_eq!(
        refill(&fed, at, |_| {}).await,
        (1, true),
        "the origin's entry"
    );
    assert!(!digests_held());
    assert!(operator_sees(&fed.here, POLAR, "PDC-1"));

    // A relay that serves whole what the origin serves as digests: a
    // version the audience in force still withholds from this node, and
    // a version the origin has since replaced.
    async fn refill_whole(fed: &Federation, at: u64, index: u64) -> (u64, bool) {
        let whole = stored_envelope(&fed.polar, POLAR, index);
        let tamper = move |items: &mut Vec<PullItem>| {
            item(items, index).item = Some(pull_item::Item::Entry(whole.clone()));
        };
        let relay = Served::relay(UNI, &fed.polar, HERE, Box::new(tamper));
        let idle = std::time::Duration::from_secs(5);
        receive::refill_origin(&fed.here, &relay, UNI, POLAR, at, idle)
            .await
            .unwrap()
    }
    let at_of = |fed: &Federation, id: &str| {
        let state = fed.polar.store().record_state(POLAR, id).unwrap().unwrap();
        state.log_index.get()
    };

    // Held whole in the group, withdrawn when the origin took this node
    // out; a later audience grants another group, not that one.
    let fed = federation();
    publish_with_here_in(&fed.polar, &["polar-consortium"]);
    import(&fed.polar, 1, 2);
    narrow(&fed.polar, "PDC-1", "groups");
    assert_honest_retry(&fed).await;
    assert!(operator_sees(&fed.here, POLAR, "PDC-1"), "in the group");
    publish_with_here_in(&fed.polar, &[]);
    assert_honest_retry(&fed).await;
    assert!(!operator_sees(&fed.here, POLAR, "PDC-1"), "withdrawn");
    let at = publish_with_here_in(&fed.polar, &["polar-observers"]);
    pull_only(&fed).await;
    let v2 = at_of(&fed, "PDC-1");
    assert_eq!(
        refill_whole(&fed, at, v2).await,
        (0, true),
        "a version the audience in force withholds"
    );
    assert!(!operator_sees(&fed.here, POLAR, "PDC-1"));
    assert_fsck_clean(&fed.here);

    // Version 1 held as digests, and version 2 (private) as digests after
    // it; then this node joins the group version 1 was for.
    let fed = federation();
    fed.polar.publish_audience().unwrap().expect("an audience");
    narrow(&fed.polar, "PDC-1", "groups");
    let v1 = at_of(&fed, "PDC-1");
    narrow(&fed.polar, "PDC-1", "private");
    assert_honest_retry(&fed).await;
    let at = publish_with_here_in(&fed.polar, &["polar-consortium"]);
    pull_only(&fed).await;
    assert!(!operator_sees(&fed.here, POLAR, "PDC-1"));
    assert_eq!(
        refill_whole(&fed, at, v1).await,
        (0, true),
        "a version the origin replaced"
    );
    assert!(!operator_sees(&fed.here, POLAR, "PDC-1"));
    assert_eq!(fed.here.store().record_state(POLAR, "PDC-1").unwrap(), None);
    assert_fsck_clean(&fed.here);
}

/// A refill still due (one that failed midway keeps its mark) is asked of
/// a holder of the audience in the next round, although the origin has
/// appended nothing since.
#[tokio::test]
async fn a_refill_still_due_is_tried_again_in_a_round_with_nothing_new() {
    let fed = federation();
    let at = digests_then_a_wider_audience(&fed).await;
    // The round through the relay pulls the audience; its refill fails.
    let report = round_with(
        &fed.sync,
        UNI,
        Served::relay(
            UNI,
            &fed.polar,
            HERE,
            Box::new(|items: &mut Vec<PullItem>| {
                // The pull starts after entry 4; the refill serves it.
                if items.iter().any(|i| i.index == 4) {
                    envelope(item(items, 4)).signatures[0].sig[0] ^= 0x01;
                }
            }),
        ),
    )
    .await;
    assert!(report.ok, "{report:?}");
    assert!(!operator_sees(&fed.here, POLAR, "PDC-1"));
    // The relay held the audience, so its refill counted as done; a
    // refill that fails midway keeps the mark, as here.
    fed.here.store().mark_refill(POLAR, at).unwrap();

    assert_honest_retry(&fed).await;
    assert!(operator_sees(&fed.here, POLAR, "PDC-1"), "refilled");
    assert_eq!(fed.here.store().refill_due(POLAR).unwrap(), None);
}

/// A refill that stored what it brought back but did not index it (the
/// process died between the two, or the index failed) leaves nothing out
/// of search: the next round and the next index catch-up index it,
/// although the index's cursor is past its position and the refill finds
/// nothing more to restore.
#[tokio::test]
async fn a_refill_cut_off_before_its_index_commit_is_indexed_later() {
    let fed = federation();
    let at = digests_then_a_wider_audience(&fed).await;
    pull_only(&fed).await;
    assert_eq!(searched(&fed.here, "station"), ["PDC-2"]);
    refill_store_part(&fed, at);

    assert_honest_retry(&fed).await;
    assert_eq!(fed.here.store().refill_due(POLAR).unwrap(), None);
    assert_eq!(searched(&fed.here, "station"), ["PDC-1", "PDC-2"]);
    assert!(fed.here.store().refilled(POLAR).unwrap().is_empty());
    assert_fsck_clean(&fed.here);
}

/// The store part of the refill of entry 4 (PDC-1 v2) that the audience
/// at `at` asks for, as a refill writes it, and no index commit after it.
fn refill_store_part(fed: &Federation, at: u64) {
    assert_eq!(fed.here.store().refill_due(POLAR).unwrap(), Some(at));
    let whole = fed
        .polar
        .store()
        .entry(POLAR, crate::ids::LogIndex(4))
        .unwrap()
        .unwrap();
    let Some(LogEntry {
        body: Some(Body::Record(record)),
        ..
    }) = whole.entry().unwrap()
    else {
        panic!("entry 4 is a record");
    };
    assert_eq!((record.id.as_str(), record.version), ("PDC-1", 2));
    let store = fed.here.store();
    let held = store.record_state(POLAR, "PDC-1").unwrap();
    let state = RecordState::of_version(&record, crate::ids::LogIndex(4), held.as_ref());
    let subject = log::subject_digest(POLAR, "PDC-1");
    store
        .refill(
            POLAR,
            &[(4, whole.encode())],
            &[("PDC-1".into(), state, subject)],
        )
        .unwrap();
    store.flush().unwrap();
    assert!(operator_sees(&fed.here, POLAR, "PDC-1"), "stored");
}

/// What such a refill left for the index stays out of search when a
/// revocation pulled since covers it (the revoked key also signed the
/// audience that asked for the refill, so the record is withdrawn).
#[tokio::test]
async fn a_refill_left_for_the_index_stays_out_once_quarantined() {
    let fed = federation();
    let at = digests_then_a_wider_audience(&fed).await;
    pull_only(&fed).await;
    assert_eq!(searched(&fed.here, "station"), ["PDC-2"]);
    refill_store_part(&fed, at);

    // PDC-1 v2 (entry 4) is in the revoked range; the indexer reaches the
    // revoking set before it indexes what the refill left.
    revoke_polar_key_from(&fed, 4);
    pull_only(&fed).await;
    assert!(!operator_sees(&fed.here, POLAR, "PDC-1"), "quarantined");
    assert_eq!(searched(&fed.here, "station"), ["PDC-2"]);
    assert_honest_retry(&fed).await;
    assert_eq!(searched(&fed.here, "station"), ["PDC-2"]);
    assert!(fed.here.store().refilled(POLAR).unwrap().is_empty());
    assert_fsck_clean(&fed.here);
}

/// This node in polar's group `polar-consortium`, and polar's PDC-1 (of
/// PDC-1 and PDC-2) narrowed to that group: pulled and held whole here.
async fn held_whole_in_the_group(fed: &Federation) {
    publish_with_here_in(&fed.polar, &["polar-consortium"]);
    import(&fed.polar, 1, 2);
    narrow(&fed.polar, "PDC-1", "groups");
    assert_honest_retry(fed).await;
    assert!(
        operator_sees(&fed.here, POLAR, "PDC-1"),
        "whole in the group"
    );
}

/// A record an audience withdrew comes back when a later audience lets this
/// node see it again: the refill finds the entry held whole (not verified
/// again) and makes its version current once more.
#[tokio::test]
async fn a_record_an_audience_withdrew_comes_back_with_a_wider_audience() {
    let fed = federation();
    let in_group = |groups: &[&str]| publish_with_here_in(&fed.polar, groups);
    held_whole_in_the_group(&fed).await;

    in_group(&[]);
    assert_honest_retry(&fed).await;
    assert!(!operator_sees(&fed.here, POLAR, "PDC-1"), "withdrawn");
    let withdrawn = fed.here.store().withdrawn_by_audience(POLAR).unwrap();
    assert_eq!(
        withdrawn.into_iter().collect::<Vec<_>>(),
        [("PDC-1".to_string(), 2)]
    );

    in_group(&["polar-consortium"]);
    assert_honest_retry(&fed).await;
    assert!(operator_sees(&fed.here, POLAR, "PDC-1"), "back");
    assert_eq!(searched(&fed.here, "station"), ["PDC-1", "PDC-2"]);
    assert_eq!(fed.here.store().refill_due(POLAR).unwrap(), None);
    assert!(fed
        .here
        .store()
        .withdrawn_by_audience(POLAR)
        .unwrap()
        .is_empty());
    assert_fsck_clean(&fed.here);
}

/// A version 1 that an audience withdrew and the next one brings back, both
/// pulled before the indexer reaches the first: whether the indexer had
/// indexed the version already or has yet to reach its entry, the record
/// is indexed once.
#[tokio::test]
async fn a_version_1_withdrawn_and_brought_back_before_indexing_is_indexed_once() {
    for indexed_first in [true, false] {
        let fed = federation();
        let in_group = |groups: &[&str]| publish_with_here_in(&fed.polar, groups);
        in_group(&["polar-consortium"]);
        let lines = [
            line("PDC-1", "Ice station 1", "groups"),
            line("PDC-2", "Ice station 2", "public"),
        ];
        assert_eq!(fed.polar.import_lines(1, &lines).unwrap().stored, 2);
        assert_honest_retry(&fed).await;
        if indexed_first {
            assert_eq!(searched(&fed.here, "station"), ["PDC-1", "PDC-2"]);
        }
        in_group(&[]);
        in_group(&["polar-consortium"]);
        assert_honest_retry(&fed).await;
        assert!(operator_sees(&fed.here, POLAR, "PDC-1"), "back");
        assert_eq!(
            searched(&fed.here, "station"),
            ["PDC-1", "PDC-2"],
            "indexed first: {indexed_first}"
        );
        assert_fsck_clean(&fed.here);
    }
}

/// The origin takes this node out of a group, then makes a record it held
/// in that group PUBLIC, and both arrive in one batch: the audience
/// withdraws the held version, the later version replaces it. The record
/// stays readable and searchable at its new version, is not counted as
/// withdrawn, and `fsck` agrees.
#[tokio::test]
async fn a_version_after_an_audience_that_withdrew_its_record_is_kept() {
    let fed = federation();
    let in_group = |groups: &[&str]| publish_with_here_in(&fed.polar, groups);
    held_whole_in_the_group(&fed).await;

    let removed = in_group(&[]);
    narrow(&fed.polar, "PDC-1", "public");
    let report = round_with(&fed.sync, POLAR, Served::honest(&fed.polar, HERE)).await;
    assert!(report.ok && report.entries == 2, "one batch: {report:?}");
    let state = fed
        .here
        .store()
        .record_state(POLAR, "PDC-1")
        .unwrap()
        .unwrap();
    assert_eq!(
        (state.version, state.log_index.get(), state.deleted),
        (3, removed + 1, false),
        "the later version is the record's state"
    );
    assert!(operator_sees(&fed.here, POLAR, "PDC-1"), "version 3 held");
    assert_eq!(withdrawn(&fed.here), [0, 0, 0], "nothing stays withdrawn");
    assert_eq!(searched(&fed.here, "station"), ["PDC-1", "PDC-2"]);
    assert_eq!(fed.here.store().count_live(POLAR).unwrap(), 2);
    assert_fsck_clean(&fed.here);
    assert_rebuilt_and_clean(&fed.here, &["PDC-1", "PDC-2"]);
}

/// Before its first audience an origin serves FEDERATION records to the
/// peers it pins; a first audience that leaves this node off its roster
/// withdraws them, although it grants no less than "no audience" would.
#[tokio::test]
async fn a_first_audience_without_this_node_withdraws_what_the_pin_let_in() {
    let fed = federation();
    let lines = [line("PDC-1", "Ice station 1", "federation")];
    assert_eq!(fed.polar.import_lines(1, &lines).unwrap().stored, 1);
    import(&fed.polar, 2, 1);
    assert_honest_retry(&fed).await;
    assert!(
        operator_sees(&fed.here, POLAR, "PDC-1"),
        "served under the pin"
    );
    assert!(fed.here.audience(POLAR).unwrap().is_none());

    fed.polar
        .trust()
        .set_state(HERE, crate::trust::PeerState::Suspended)
        .unwrap();
    fed.polar
        .publish_audience()
        .unwrap()
        .expect("a first audience");
    assert_honest_retry(&fed).await;
    assert!(fed.here.audience(POLAR).unwrap().is_some());
    assert!(!operator_sees(&fed.here, POLAR, "PDC-1"), "withdrawn");
    assert!(operator_sees(&fed.here, POLAR, "PDC-2"));
    assert_eq!(searched(&fed.here, "station"), ["PDC-2"]);
}

/// Whether `node` holds that `polar`'s audience in force places `here` in
/// polar-consortium.
fn here_in_group(node: &Node) -> bool {
    node.peer_viewer(&HERE.parse().unwrap())
        .unwrap()
        .may_see_audience(
            POLAR,
            crate::proto::Visibility::Groups as i32,
            &["polar-consortium".into()],
        )
}

/// The leaked key of `polar` publishes an audience that places `here` in
/// the group; the operator's trust store never said so.
fn publish_thiefs_audience(polar: &Node) {
    publish_with_here_in(polar, &["polar-consortium"]);
    polar.trust().set_groups(HERE, &[]).unwrap();
}

/// What a revoked key's audience let in is withdrawn when the revocation
/// arrives, although the origin publishes no audience after it (the one in
/// its trust store is the one in force again, so there is nothing new to
/// sign); the index, a rebuild and fsck agree.
#[tokio::test]
async fn what_a_revoked_keys_audience_let_in_is_withdrawn_at_the_revocation() {
    let fed = federation();
    fed.polar.publish_audience().unwrap().expect("an audience");
    import(&fed.polar, 1, 2);
    narrow(&fed.polar, "PDC-1", "groups");
    let from = fed.polar.store().log_size(POLAR).unwrap();
    // `here` pulls PDC-1 whole.
    publish_thiefs_audience(&fed.polar);
    assert_honest_retry(&fed).await;
    assert!(operator_sees(&fed.here, POLAR, "PDC-1"), "let in");
    assert_eq!(searched(&fed.here, "station"), ["PDC-1", "PDC-2"]);

    let leaked = fed.polar.key().key_id().clone();
    let before = fed.polar.store().log_size(POLAR).unwrap();
    fed.polar
        .revoke_key(Vec::new(), leaked, from, "leaked".into(), 30)
        .unwrap();
    assert_eq!(
        fed.polar.store().log_size(POLAR).unwrap(),
        before + 1,
        "the revocation alone: the genuine audience is in force again"
    );
    assert_honest_retry(&fed).await;
    assert!(!operator_sees(&fed.here, POLAR, "PDC-1"), "withdrawn");
    assert!(operator_sees(&fed.here, POLAR, "PDC-2"));
    assert_eq!(searched(&fed.here, "station"), ["PDC-2"]);
    assert_eq!(
        withdrawn(&fed.here),
        [0, 0, 1],
        "counted as by the revocation"
    );
    assert_rebuilt_and_clean(&fed.here, &["PDC-2"]);

    // A genuine audience that places `here` in another group changes
    // nothing of that; one from the origin's operator that places it in
    // the group brings the record back (a refill of what the revocation
    // withdrew).
    publish_with_here_in(&fed.polar, &["other-group"]);
    assert_honest_retry(&fed).await;
    assert!(!operator_sees(&fed.here, POLAR, "PDC-1"));
    publish_with_here_in(&fed.polar, &["polar-consortium"]);
    assert_honest_retry(&fed).await;
    assert!(
        operator_sees(&fed.here, POLAR, "PDC-1"),
        "granted by the origin"
    );
    assert_eq!(searched(&fed.here, "station"), ["PDC-1", "PDC-2"]);
    assert_fsck_clean(&fed.here);
}

/// A revocation sets aside what it covered when it arrived, not what later
/// revocations cover: the first of two revocations of one key leaves the
/// audience before the one it covers in force, and only the second, which
/// moves the key's validity back past that audience, withdraws what it let
/// in and quarantines the record the key signed in between. A rebuild and
/// fsck, which replay the log with both revocations known, agree with what
/// the pulls did one at a time.
#[tokio::test]
async fn a_later_revocation_does_not_change_what_an_earlier_one_set_aside() {
    let fed = federation();
    fed.polar.publish_audience().unwrap().expect("an audience");
    import(&fed.polar, 1, 2);
    narrow(&fed.polar, "PDC-1", "groups");
    let long_ago = fed.polar.store().log_size(POLAR).unwrap();
    publish_with_here_in(&fed.polar, &["polar-consortium"]);
    import(&fed.polar, 3, 1);
    let lately = fed.polar.store().log_size(POLAR).unwrap();
    publish_with_here_in(&fed.polar, &["polar-consortium", "other-group"]);
    assert_honest_retry(&fed).await;
    assert!(operator_sees(&fed.here, POLAR, "PDC-1"), "in the group");

    // The key leaked lately: the audience before the one it covers grants
    // the group, as the trust store does, so no audience follows.
    fed.polar
        .trust()
        .set_groups(HERE, &["polar-consortium".into()])
        .unwrap();
    let leaked = fed.polar.key().key_id().clone();
    let before = fed.polar.store().log_size(POLAR).unwrap();
    fed.polar
        .revoke_key(Vec::new(), leaked.clone(), lately, "leaked".into(), 30)
        .unwrap();
    assert_eq!(fed.polar.store().log_size(POLAR).unwrap(), before + 1);
    assert_honest_retry(&fed).await;
    assert!(
        operator_sees(&fed.here, POLAR, "PDC-1"),
        "the audience before the revoked one grants the group"
    );
    assert!(here_in_group(&fed.here) && here_in_group(&fed.polar));
    assert_eq!(withdrawn(&fed.here), [0, 0, 0]);
    assert_rebuilt_and_clean(&fed.here, &["PDC-1", "PDC-2", "PDC-3"]);

    // It leaked long ago: the first audience, which leaves `here` out of
    // the group, is the one in force again. The origin chooses it afresh,
    // as after a restart, so only what `here` works out is tested.
    fed.polar.trust().set_groups(HERE, &[]).unwrap();
    fed.polar
        .audiences
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    let before = fed.polar.store().log_size(POLAR).unwrap();
    fed.polar
        .revoke_key(Vec::new(), leaked, long_ago, "leaked earlier".into(), 30)
        .unwrap();
    assert_eq!(fed.polar.store().log_size(POLAR).unwrap(), before + 1);
    assert_honest_retry(&fed).await;
    assert!(!operator_sees(&fed.here, POLAR, "PDC-1"), "withdrawn");
    assert!(!operator_sees(&fed.here, POLAR, "PDC-3"), "quarantined");
    assert!(!here_in_group(&fed.here) && !here_in_group(&fed.polar));
    assert_eq!(withdrawn(&fed.here), [0, 0, 1]);
    assert_rebuilt_and_clean(&fed.here, &["PDC-2"]);
}

/// What a revoked key's audience withdrew comes back when the revocation
/// arrives: the audience in force again grants it, so the record is asked
/// for again (a refill) and is held, searched and checked as before.
#[tokio::test]
async fn what_a_revoked_keys_audience_withdrew_comes_back_at_the_revocation() {
    let fed = federation();
    publish_with_here_in(&fed.polar, &["polar-consortium"]);
    import(&fed.polar, 1, 2);
    narrow(&fed.polar, "PDC-1", "groups");
    assert_honest_retry(&fed).await;
    assert!(operator_sees(&fed.here, POLAR, "PDC-1"), "in the group");
    let from = fed.polar.store().log_size(POLAR).unwrap();
    // The leaked key takes `here` out of the group; the operator never did.
    publish_with_here_in(&fed.polar, &[]);
    fed.polar
        .trust()
        .set_groups(HERE, &["polar-consortium".into()])
        .unwrap();
    assert_honest_retry(&fed).await;
    assert!(!operator_sees(&fed.here, POLAR, "PDC-1"), "withdrawn");
    assert_eq!(
        withdrawn(&fed.here),
        [0, 1, 0],
        "counted as by the audience"
    );

    revoke_polar_key_from(&fed, from);
    assert_honest_retry(&fed).await;
    assert!(operator_sees(&fed.here, POLAR, "PDC-1"), "back");
    assert_eq!(searched(&fed.here, "station"), ["PDC-1", "PDC-2"]);
    assert_eq!(fed.here.store().refill_due(POLAR).unwrap(), None);
    assert_rebuilt_and_clean(&fed.here, &["PDC-1", "PDC-2"]);
}

/// An audience signed by a key the origin later revokes from before it is
/// quarantined like a record: holders go back to the audience before it,
/// so a thief's audience cannot widen a group past the revocation.
#[tokio::test]
async fn an_audience_signed_by_a_revoked_key_no_longer_counts() {
    let fed = federation();
    fed.polar.publish_audience().unwrap().expect("an audience");
    let from = fed.polar.store().log_size(POLAR).unwrap();
    publish_thiefs_audience(&fed.polar);
    assert_honest_retry(&fed).await;
    assert!(here_in_group(&fed.polar));
    assert!(here_in_group(&fed.here), "before the revocation");

    revoke_polar_key_from(&fed, from);
    assert_honest_retry(&fed).await;
    assert!(
        !here_in_group(&fed.here),
        "the revoked key's audience is quarantined"
    );
    assert!(!here_in_group(&fed.polar));
}

/// Witnessing between two nodes: the same checkpoint, a newer one with its
/// proof, a proof that does not hold (the peer's fault: nothing frozen),
/// and a signed larger tree that does not extend the log held here (the
/// origin's equivocation: frozen, with evidence that verifies alone).
#[tokio::test]
async fn witnessed_checkpoints_are_told_apart_from_forks() {
    use crate::proto::{OriginHead, WitnessRequest};
    use crate::sync::witness::{self, Seen};
    let fed = federation();
    import(&fed.polar, 1, 4);
    assert_honest_retry(&fed).await;
    let held = fed.here.store().log_size(POLAR).unwrap();
    let ask = |size: u64| WitnessRequest {
        held: vec![OriginHead {
            origin: POLAR.into(),
            size,
        }],
    };

    // The origin answers with the checkpoint held here, cosigned.
    let answer = witness::answer(&fed.polar, &ask(held)).unwrap();
    let same = &answer.checkpoints[0];
    assert!(same.consistency.is_empty() && same.prefix_root.is_empty());
    assert_eq!(
        witness::check(&fed.here, POLAR, POLAR, same).unwrap(),
        Seen::Consistent
    );
    let chain = fed.here.origin_keys(POLAR).unwrap().unwrap();
    let cosigned =
        witness::open_cosignature(&chain, POLAR, same.cosignature.as_ref().unwrap()).unwrap();
    assert_eq!((cosigned.origin.as_str(), cosigned.size), (POLAR, held));
    assert!(witness::open_cosignature(&chain, UNI, same.cosignature.as_ref().unwrap()).is_none());

    // A newer checkpoint comes with the proof from the size held here.
    import(&fed.polar, 5, 3);
    let answer = witness::answer(&fed.polar, &ask(held)).unwrap();
    let newer = answer.checkpoints[0].clone();
    assert!(!newer.consistency.is_empty());
    assert_eq!(
        witness::check(&fed.here, POLAR, POLAR, &newer).unwrap(),
        Seen::Newer
    );

    // A proof that does not lead from the root held here to it blames the
    // peer that sent it; the origin is not frozen.
    let mut bogus = newer.clone();
    bogus.prefix_root = vec![9; 32];
    assert!(matches!(
        witness::check(&fed.here, UNI, POLAR, &bogus),
        Err(SyncError::Unproven { .. })
    ));
    let mut no_proof = newer.clone();
    no_proof.prefix_root.clear();
    assert!(witness::check(&fed.here, UNI, POLAR, &no_proof).is_err());
    assert!(!fed.here.store().is_frozen(POLAR).unwrap());

    // The origin signs a larger tree that shares only entry 0 with the log
    // held here, and a relay passes it on with an honest proof of that tree.
    let leaves = (0..held + 2).map(|i| {
        if i == 0 {
            fed.here.store().log_root(POLAR, 1).unwrap()
        } else {
            crate::merkle::leaf_hash(format!("forked {i}").as_bytes())
        }
    });
    let tree = crate::merkle::MemoryTree::from_leaves(leaves);
    let forked = log::sign_checkpoint(&fed.polar.key(), POLAR, held + 2, tree.root());
    let fork = crate::proto::WitnessedCheckpoint {
        checkpoint: Some(forked),
        prefix_root: crate::merkle::root(&tree, held).unwrap().to_vec(),
        consistency: crate::merkle::consistency_proof(&tree, held, held + 2)
            .unwrap()
            .iter()
            .map(|h| h.to_vec())
            .collect(),
        cosignature: None,
        origin: POLAR.into(),
    };
    let seen = witness::check(&fed.here, UNI, POLAR, &fork).unwrap();
    assert!(
        matches!(&seen, Seen::Equivocation(reason) if reason.contains("through uni")),
        "{seen:?}"
    );
    assert!(fed.here.store().is_frozen(POLAR).unwrap());
    let file = fed.here.store().evidence(POLAR).unwrap().unwrap();
    assert_eq!(
        witness::verify(&file).unwrap().conflict,
        witness::Conflict::NotAPrefix {
            smaller: held,
            larger: held + 2
        }
    );
    // A frozen origin is not asked about any more, but its checkpoint is
    // still given to witnesses: they find the conflict themselves.
    assert!(witness::request(&fed.here).unwrap().held.is_empty());
    let still = witness::answer(&fed.here, &ask(1)).unwrap();
    assert_eq!(still.checkpoints.len(), 1);
    assert!(node_info(&fed.here)
        .unwrap()
        .origins
        .iter()
        .all(|head| head.origin != POLAR));
}

/// A peer that serves like `served` and witnesses from `node`'s store.
struct Witnessing {
    served: Served,
    node: Arc<Node>,
}

#[async_trait::async_trait]
impl FederationPeer for Witnessing {
    async fn node_info(&self) -> Result<NodeInfo, SyncError> {
        self.served.node_info().await
    }

    async fn pull(
        &self,
        origin: &str,
        after_index: u64,
        max_batch: u32,
    ) -> Result<PullStream, SyncError> {
        self.served.pull(origin, after_index, max_batch).await
    }

    async fn hint(&self, _origin: &str, _size: u64) -> Result<(), SyncError> {
        Ok(())
    }

    async fn search(
        &self,
        _request: crate::proto::PeerSearchRequest,
        _within: std::time::Duration,
    ) -> Result<crate::proto::PeerSearchResponse, SyncError> {
        Err(no_searches())
    }

    async fn witness(
        &self,
        request: crate::proto::WitnessRequest,
    ) -> Result<crate::proto::WitnessResponse, SyncError> {
        crate::sync::witness::answer(&self.node, &request)
    }
}

/// A witness that has not pulled a revocation yet holds the checkpoint the
/// origin signed before it, with the key it revoked since from before that
/// checkpoint's size. Refused as evidence here, it is no fault of the
/// witness: not counted as a rejection, not reported as a problem, and
/// nothing is frozen.
#[tokio::test]
async fn a_witness_holding_a_checkpoint_from_before_a_revocation_is_not_blamed() {
    use crate::sync::witness::{self, Seen};
    let fed = federation();
    import(&fed.polar, 1, 3);
    let at_uni = Replicator::new(fed.uni.clone(), no_dialing());
    let report = round_with(&at_uni, POLAR, Served::honest(&fed.polar, UNI)).await;
    assert!(report.ok, "{report:?}");
    let theirs = fed.uni.store().log_size(POLAR).unwrap();
    assert_honest_retry(&fed).await;

    // Revoked from before the size of the checkpoint `uni` holds; `here`
    // pulls the revocation, `uni` does not.
    revoke_polar_key_from(&fed, 2);
    assert_honest_retry(&fed).await;
    assert!(fed.here.store().log_size(POLAR).unwrap() > theirs);

    let asked = witness::request(&fed.here).unwrap();
    let answer = witness::answer(&fed.uni, &asked).unwrap();
    let held = answer.checkpoints[0].clone();
    let rejected = |n: &Node| {
        n.metrics()
            .rejections
            .get(crate::metrics::RejectReason::Checkpoint)
    };
    let before = rejected(&fed.here);
    let witnessing = Witnessing {
        served: Served::honest(&fed.uni, HERE),
        node: fed.uni.clone(),
    };
    let problems = fed.sync.witness_with(UNI, &witnessing).await;
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(rejected(&fed.here), before, "counted as a rejection");
    assert_eq!(
        witness::check(&fed.here, UNI, POLAR, &held).unwrap(),
        Seen::Unheld
    );
    assert!(!fed.here.store().is_frozen(POLAR).unwrap());
}

#[test]
fn a_witness_request_over_its_bound_is_refused_before_any_work() {
    let fed = federation();
    let request = crate::proto::WitnessRequest {
        held: vec![
            crate::proto::OriginHead {
                origin: POLAR.into(),
                size: 1
            };
            crate::sync::witness::MAX_WITNESS_ORIGINS + 1
        ],
    };
    assert!(matches!(
        crate::sync::witness::answer(&fed.here, &request),
        Err(SyncError::TooLarge { .. })
    ));
}

/// An older checkpoint of the same log is no evidence; a second tree head
/// of the size held here is, and its file proves it alone.
#[tokio::test]
async fn a_second_head_of_the_held_size_is_evidence_an_older_head_is_not() {
    use crate::sync::witness::{self, Conflict, Seen};
    let fed = federation();
    import(&fed.polar, 1, 4);
    assert_honest_retry(&fed).await;
    let held = fed.here.store().log_size(POLAR).unwrap();
    let signed = |size: u64, root: crate::merkle::Hash| crate::proto::WitnessedCheckpoint {
        checkpoint: Some(log::sign_checkpoint(&fed.polar.key(), POLAR, size, root)),
        origin: POLAR.into(),
        ..Default::default()
    };
    let older = signed(
        held - 2,
        fed.polar.store().log_root(POLAR, held - 2).unwrap(),
    );
    assert_eq!(
        witness::check(&fed.here, UNI, POLAR, &older).unwrap(),
        Seen::Consistent
    );
    // Signed by a key that is not the origin's: the relay's fault.
    let mut forged = signed(held, [4; 32]);
    forged.checkpoint = Some(log::sign_checkpoint(&fed.uni.key(), POLAR, held, [4; 32]));
    assert!(matches!(
        witness::check(&fed.here, UNI, POLAR, &forged),
        Err(SyncError::Checkpoint { .. })
    ));
    assert!(!fed.here.store().is_frozen(POLAR).unwrap());

    let second = signed(held, [4; 32]);
    assert!(matches!(
        witness::check(&fed.here, UNI, POLAR, &second).unwrap(),
        Seen::Equivocation(_)
    ));
    let file = fed.here.store().evidence(POLAR).unwrap().unwrap();
    assert_eq!(
        witness::verify(&file).unwrap().conflict,
        Conflict::SameSize { size: held }
    );
}

/// A suspended origin is not asked about; a checkpoint beyond the log held
/// here that does not verify (it may be signed by keys not pulled yet) is
/// left for later, not held against the peer.
#[tokio::test]
async fn what_cannot_be_checked_now_is_neither_asked_nor_blamed() {
    use crate::sync::witness::{self, Seen};
    let fed = federation();
    import(&fed.polar, 1, 3);
    assert_honest_retry(&fed).await;
    let held = fed.here.store().log_size(POLAR).unwrap();
    assert_eq!(witness::request(&fed.here).unwrap().held.len(), 1);
    let beyond = crate::proto::WitnessedCheckpoint {
        checkpoint: Some(log::sign_checkpoint(
            &fed.uni.key(),
            POLAR,
            held + 5,
            [1; 32],
        )),
        origin: POLAR.into(),
        ..Default::default()
    };
    assert_eq!(
        witness::check(&fed.here, UNI, POLAR, &beyond).unwrap(),
        Seen::Unheld
    );
    fed.here
        .trust()
        .set_state(POLAR, PeerState::Suspended)
        .unwrap();
    assert!(witness::request(&fed.here).unwrap().held.is_empty());
    let answer = witness::answer(
        &fed.polar,
        &crate::proto::WitnessRequest {
            held: vec![crate::proto::OriginHead {
                origin: POLAR.into(),
                size: held,
            }],
        },
    )
    .unwrap();
    assert_eq!(
        witness::check(&fed.here, POLAR, POLAR, &answer.checkpoints[0]).unwrap(),
        Seen::Unheld
    );
    assert!(!fed.here.store().is_frozen(POLAR).unwrap());
}
