//! The index holds each record once, whichever of a refill and the indexer
//! takes its entry first.

use std::time::Duration;

use crate::ids::RecordId;
use crate::node::Node;
use crate::proto::DatasetRecord;
use crate::query::SearchRequest;
use crate::test_support::{opened_node, record_line};
use crate::visibility::Viewer;

fn operator(node: &Node) -> Viewer {
    Viewer::Operator {
        node: node.node_id().clone(),
    }
}

/// Ids the operator finds for `text` in the index as it is, and the total.
fn found(node: &Node, text: &str) -> (Vec<String>, u64) {
    let request = SearchRequest {
        text: text.into(),
        limit: 100,
        ..Default::default()
    };
    let results = node.index().search(&request, &operator(node)).unwrap();
    let mut ids: Vec<String> = results.hits.into_iter().map(|hit| hit.id).collect();
    ids.sort();
    (ids, results.total)
}

/// `record`, held at its current state, noted for the index as a refill
/// notes what it brings back.
fn noted_as_refilled(node: &Node, record: &DatasetRecord) {
    let store = node.store();
    let state = store
        .record_state(&record.origin, &record.id)
        .unwrap()
        .unwrap();
    let subject = crate::log::subject_digest(&record.origin, &record.id);
    store
        .refill(&record.origin, &[], &[(record.id.clone(), state, subject)])
        .unwrap();
}

/// `record` noted as a refill notes it, then indexed as a refill does.
fn refilled(node: &Node, record: &DatasetRecord) {
    noted_as_refilled(node, record);
    node.index_refilled(&record.origin).unwrap();
    assert!(node.store().refilled(&record.origin).unwrap().is_empty());
}

/// `node` with PDC-1 and PDC-2 stored at version 1, not yet indexed; the
/// stored PDC-1.
fn stored() -> (std::sync::Arc<Node>, tempfile::TempDir, DatasetRecord) {
    let (node, dir) = opened_node("here");
    let lines = [
        record_line("PDC-1", "Ice station 1", "public"),
        record_line("PDC-2", "Ice station 2", "public"),
    ];
    let outcome = node.import_lines(1, &lines).unwrap();
    assert_eq!(outcome.stored, 2, "{outcome:?}");
    let record = node.get("", "PDC-1", &operator(&node)).unwrap().record;
    assert_eq!(record.version, 1);
    (node, dir, record)
}

/// A refill brings back a version 1 the index holds (the indexer had not
/// yet reached the audience that withdrew it), or one whose entry the
/// indexer has yet to reach: either way it is found once, and counted
/// once.
#[test]
fn a_version_1_a_refill_brings_back_is_indexed_once() {
    // Indexed, then brought back by a refill.
    let (node, _dir, record) = stored();
    node.catch_up_index(&mut |_| {}).unwrap();
    refilled(&node, &record);
    assert_eq!(
        found(&node, "station"),
        (vec!["PDC-1".into(), "PDC-2".into()], 2)
    );
    assert_eq!(found(&node, "\"station 1\""), (vec!["PDC-1".into()], 1));
    let report = crate::fsck::check(&node).unwrap();
    assert!(report.clean(), "{:?}", report.findings);

    // Brought back before the indexer reaches its entry.
    let (node, _dir, record) = stored();
    refilled(&node, &record);
    node.catch_up_index(&mut |_| {}).unwrap();
    assert_eq!(
        found(&node, "station"),
        (vec!["PDC-1".into(), "PDC-2".into()], 2)
    );
    let report = crate::fsck::check(&node).unwrap();
    assert!(report.clean(), "{:?}", report.findings);
}

/// A record a refill left for the index that a revocation quarantines
/// since stays out of the index: the indexer removed it at the revoking
/// set, and what the refill left does not bring it back.
#[test]
fn a_refilled_record_a_revocation_quarantines_stays_out_of_the_index() {
    let (node, _dir, record) = stored();
    node.catch_up_index(&mut |_| {}).unwrap();
    let at = node
        .store()
        .record_state(&record.origin, &record.id)
        .unwrap()
        .unwrap()
        .log_index;
    // Noted by a refill whose index commit did not happen.
    noted_as_refilled(&node, &record);
    let key = node.key().key_id().clone();
    node.revoke_key(Vec::new(), key, at.get(), "leaked".into(), 30)
        .unwrap();
    node.catch_up_index(&mut |_| {}).unwrap();
    // Both versions are in the revoked range.
    assert_eq!(found(&node, "station"), (vec![], 0));
    assert!(node.store().refilled(&record.origin).unwrap().is_empty());
}

/// What an import or a pull adds while a rebuild fills its generation is
/// taken in further passes without the index writer, so the writer is held
/// only for what arrived during the last pass, which found nothing: here
/// nothing, although records came in during the first pass and the second.
#[test]
fn what_arrives_while_a_rebuild_fills_is_taken_before_it_holds_the_writer() {
    let (node, _dir, _) = stored();
    node.catch_up_index(&mut |_| {}).unwrap();
    let mut calls = 0;
    let rebuilt = node
        .rebuild_index(&mut |_| {
            calls += 1;
            if calls <= 2 {
                let id = format!("PDC-{}", 10 + calls);
                let line = record_line(&id, &format!("Ice station {id}"), "public");
                assert_eq!(node.import_lines(3, &[line]).unwrap().stored, 1);
            }
        })
        .unwrap();
    assert_eq!(
        rebuilt,
        crate::indexer::Rebuilt {
            entries: 5,
            under_writer: 0
        }
    );
    assert_eq!(found(&node, "station").1, 4);
}

/// While a rebuild fills the next generation, the index in use keeps
/// taking changes: a record deleted meanwhile leaves search at once and is
/// not in the rebuilt index, and one imported meanwhile is. What a refill
/// noted meanwhile reaches both.
#[test]
fn changes_made_while_a_rebuild_runs_reach_search_and_stay_after_it() {
    let (node, _dir, _) = stored();
    node.catch_up_index(&mut |_| {}).unwrap();
    let mut changed = false;
    node.rebuild_index(&mut |_| {
        if std::mem::replace(&mut changed, true) {
            return;
        }
        // The next generation holds both records by now.
        node.delete(&RecordId::parse("PDC-1").unwrap()).unwrap();
        // A refill's notes are left for the rebuild, which may have passed
        // their entries.
        let kept = node.get("", "PDC-2", &operator(&node)).unwrap().record;
        noted_as_refilled(&node, &kept);
        node.index_refilled(&kept.origin).unwrap();
        assert!(!node.store().refilled(&kept.origin).unwrap().is_empty());
        let line = record_line("PDC-3", "Ice station 3", "public");
        assert_eq!(node.import_lines(3, &[line]).unwrap().stored, 1);
        // Indexed on a thread of its own, as the indexer task does: the
        // rebuild waits here for it.
        let (done, indexed) = std::sync::mpsc::channel();
        let indexer = node.clone();
        std::thread::spawn(move || {
            let _ = done.send(indexer.catch_up_index(&mut |_| {}).map(|_| ()));
        });
        indexed
            .recv_timeout(Duration::from_secs(30))
            .expect("the index in use took no change while a rebuild ran")
            .unwrap();
        assert_eq!(
            found(&node, "station"),
            (vec!["PDC-2".into(), "PDC-3".into()], 2),
            "while the rebuild runs"
        );
    })
    .unwrap();
    assert!(changed);
    assert!(node.store().refilled_origins().unwrap().is_empty());
    assert_eq!(
        found(&node, "station"),
        (vec!["PDC-2".into(), "PDC-3".into()], 2),
        "after the rebuild"
    );
    let report = crate::fsck::check(&node).unwrap();
    assert!(report.clean(), "{:?}", report.findings);
}

/// The indexer reads only what the store has flushed: an entry committed
/// and not yet flushed (a crash could take it back) stays out of the index,
/// and the index's cursor never passes the durable log. Before, the batch
/// read ran on to the end of the committed log.
#[test]
fn what_is_committed_but_not_flushed_is_not_indexed() {
    use crate::ids::LogIndex;
    use crate::log::{RecordState, UnsignedEntry};
    let (node, _dir, _) = stored();
    let origin = node.node_id().to_string();
    node.catch_up_index(&mut |_| {}).unwrap();
    // A record stored and flushed that the index has yet to take, then one
    // committed after it and not flushed.
    node.import_lines(1, &[record_line("PDC-3", "Ice station 3", "public")])
        .unwrap();
    let durable = node.store().durable_log_size(&origin);
    assert_eq!(node.index().cursors().get(&origin), Some(&(durable - 1)));

    let mut late =
        crate::record::parse_json_line(&record_line("PDC-late", "Ice late", "public")).unwrap();
    late.origin = origin.clone();
    late.version = 1;
    let mut appender = node.store().appender(&origin).unwrap();
    let index = LogIndex(appender.next_index());
    let state = RecordState::of_version(&late, index, None);
    let signed = node.sign_own(
        &node.key(),
        index.get(),
        vec![UnsignedEntry::record(late, state)],
    );
    for (entry, leaf, state) in signed {
        appender.push(&entry, leaf, state).unwrap();
    }
    node.store().commit(&appender.finish()).unwrap();
    assert_eq!(node.store().log_size(&origin).unwrap(), durable + 1);
    assert_eq!(node.store().durable_log_size(&origin), durable);

    node.catch_up_index(&mut |_| {}).unwrap();
    assert_eq!(node.index().cursors().get(&origin), Some(&durable));
    assert_eq!(found(&node, "late").1, 0, "indexed before it was durable");

    node.store().flush().unwrap();
    node.catch_up_index(&mut |_| {}).unwrap();
    assert_eq!(node.index().cursors().get(&origin), Some(&(durable + 1)));
    assert_eq!(found(&node, "late").1, 1);
}

/// A commit whose reader reload fails is durable all the same: the indexer
/// goes on from it, not from what the reader last loaded (before, it
/// applied the same entries again, and every new record was indexed
/// twice), and goes on taking entries while reloads fail (a record
/// withdrawn meanwhile leaves searches at once); the first reload that
/// succeeds makes it all searchable.
#[test]
fn entries_committed_before_a_failed_reload_are_not_indexed_again() {
    use std::sync::atomic::Ordering;
    let (node, _dir, _) = stored();
    node.catch_up_index(&mut |_| {}).unwrap();
    assert_eq!(found(&node, "station").1, 2);
    let origin = node.node_id().to_string();

    node.index().fail_reload.store(true, Ordering::Relaxed);
    node.import_lines(1, &[record_line("PDC-3", "Ice station 3", "public")])
        .unwrap();
    assert!(node.catch_up_index(&mut |_| {}).is_err());
    let size = node.store().log_size(&origin).unwrap();
    assert_eq!(node.index().committed_cursors().get(&origin), Some(&size));
    assert_ne!(node.index().cursors().get(&origin), Some(&size));
    node.delete(&RecordId::parse("PDC-2").unwrap()).unwrap();
    assert!(node.catch_up_index(&mut |_| {}).is_err());
    assert_eq!(
        node.index().committed_cursors().get(&origin),
        Some(&(size + 1))
    );
    let (ids, _) = found(&node, "station");
    assert_eq!(ids, ["PDC-1"], "the withdrawn record still shown");

    node.index().fail_reload.store(false, Ordering::Relaxed);
    node.catch_up_index(&mut |_| {}).unwrap();
    let mut documents = node.index().documents().unwrap();
    let all = documents.len();
    documents.sort();
    documents.dedup();
    assert_eq!(documents.len(), all, "a record indexed twice");
    assert_eq!(all, 2);
    let (ids, _) = found(&node, "station");
    assert_eq!(ids, ["PDC-1", "PDC-3"]);
}
