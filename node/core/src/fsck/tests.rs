//! Each kind of damage is named where it is, and `repair` fixes what can be
//! derived (the index, the own log's checkpoint) and leaves the rest named.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::index::IndexOp;

const POLAR: &str = "polar";

fn node() -> (Arc<Node>, tempfile::TempDir) {
    crate::test_support::opened_node(POLAR)
}

fn line(i: usize, title: &str) -> String {
    crate::test_support::record_line(&format!("PDC-{i}"), title, "public")
}

/// A node holding PDC-1..=5, PDC-2 at version 2 and PDC-5 deleted, indexed.
fn holding() -> (Arc<Node>, tempfile::TempDir) {
    let (node, dir) = node();
    let lines: Vec<String> = (1..=5)
        .map(|i| line(i, &format!("Ice station {i}")))
        .collect();
    node.import_lines(1, &lines).unwrap();
    node.import_lines(1, &[line(2, "Ice station 2, revised")])
        .unwrap();
    node.delete(&"PDC-5".parse().unwrap()).unwrap();
    node.catch_up_index(&mut |_| {}).unwrap();
    (node, dir)
}

fn key(id: &str) -> Vec<u8> {
    let mut key = POLAR.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(id.as_bytes());
    key
}

#[test]
fn a_sound_node_is_clean() {
    let (node, _dir) = holding();
    let report = check(&node).unwrap();
    assert!(report.clean(), "{:#?}", report.findings);
    // The key set, five records, a new version and a tombstone.
    assert_eq!(report.entries, 8);
    assert_eq!(report.records, 5);
    assert_eq!(report.indexed, 4);
    assert_eq!(report.origins, 1);
    assert_eq!(report.index_behind, 0);
}

#[test]
fn a_lost_record_state_is_named_with_its_entry() {
    let (node, _dir) = holding();
    node.store()
        .raw_tree(tree::RECORDS)
        .remove(key("PDC-3"))
        .unwrap();
    let report = repair(&node).unwrap();
    assert_eq!(
        report.findings,
        vec![Finding {
            part: "record",
            tree: tree::RECORDS,
            origin: POLAR.into(),
            key: Some("PDC-3".into()),
            log_index: Some(3),
            message: "no state, but entry 3 is version 1 of it".into(),
            repairable: false,
        }]
    );
    // The live count went with the state; repair counts what is left.
    assert_eq!(
        report.repaired,
        vec![format!(
            "counted {} live records of {POLAR}",
            node.store().count_live(POLAR).unwrap()
        )]
    );
    assert!(check(&node)
        .unwrap()
        .findings
        .iter()
        .all(|f| f.tree != tree::LIVE));
}

#[test]
fn a_state_that_points_elsewhere_is_named() {
    let (node, _dir) = holding();
    let records = node.store().raw_tree(tree::RECORDS);
    let stale = records.get(key("PDC-1")).unwrap().unwrap();
    records.insert(key("PDC-2"), stale).unwrap();
    let report = check(&node).unwrap();
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let finding = &report.findings[0];
    assert_eq!(
        (finding.part, finding.key.as_deref()),
        ("record", Some("PDC-2"))
    );
    assert_eq!(
        finding.message,
        "the state says version 1 at entry 1; the log's last entry is version 2 at entry 6"
    );
}

#[test]
fn index_damage_is_named_and_repaired() {
    let (node, _dir) = holding();
    let index = node.index();
    // A record missing, a deleted one back, one that never existed.
    let mut ghost = crate::record::parse_json_line(&line(9, "Ghost")).unwrap();
    ghost.origin = POLAR.into();
    ghost.version = 1;
    let mut deleted = crate::record::parse_json_line(&line(5, "Ice station 5")).unwrap();
    deleted.origin = POLAR.into();
    deleted.version = 1;
    index
        .apply(
            vec![
                IndexOp::Remove {
                    origin: POLAR.into(),
                    id: "PDC-4".into(),
                },
                IndexOp::Upsert(ghost),
                IndexOp::Upsert(deleted),
            ],
            &BTreeMap::new(),
        )
        .unwrap();
    let report = check(&node).unwrap();
    let named: Vec<(Option<&str>, &str)> = report
        .findings
        .iter()
        .map(|f| (f.key.as_deref(), f.message.as_str()))
        .collect();
    assert_eq!(
        named,
        vec![
            (Some("PDC-4"), "version 1 is not indexed"),
            (Some("PDC-5"), "deleted, but still indexed"),
            (
                Some("PDC-9"),
                "indexed, but the log has no entry of this record"
            ),
        ]
    );
    assert!(report
        .findings
        .iter()
        .all(|f| f.part == "index" && f.repairable));

    let repaired = repair(&node).unwrap();
    assert!(repaired.clean(), "{:#?}", repaired.findings);
    assert_eq!(repaired.repaired.len(), 1, "{:?}", repaired.repaired);
    assert!(repaired.repaired[0].starts_with("rebuilt the index"));
    assert_eq!(repaired.indexed, 4);
}

#[test]
fn an_index_past_the_log_is_named_and_repaired() {
    let (node, _dir) = holding();
    let size = node.store().log_size(POLAR).unwrap();
    node.index()
        .apply(vec![], &BTreeMap::from([(POLAR.to_owned(), size + 5)]))
        .unwrap();
    let report = check(&node).unwrap();
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    assert_eq!(
        report.findings[0].to_string(),
        format!(
            "index [index] polar entry {}: the index has applied {} entries; the log holds {size}",
            size + 5,
            size + 5
        )
    );
    assert!(repair(&node).unwrap().clean());
}

#[test]
fn an_own_log_ahead_of_its_checkpoint_is_named_and_signed_over() {
    let (node, _dir) = node();
    node.import_lines(1, &[line(1, "Ice station 1")]).unwrap();
    let older = node.store().checkpoint(POLAR).unwrap().unwrap();
    node.import_lines(1, &[line(2, "Ice station 2")]).unwrap();
    node.store().put_checkpoint(POLAR, &older).unwrap();
    node.catch_up_index(&mut |_| {}).unwrap();
    let report = check(&node).unwrap();
    assert_eq!(
        report.findings.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
        ["checkpoint [checkpoint_by_origin_v1] polar entry 2: covers 2 of the own log's 3 entries"]
    );
    let repaired = repair(&node).unwrap();
    assert!(repaired.clean(), "{:#?}", repaired.findings);
    assert_eq!(
        repaired.repaired,
        ["signed a checkpoint over the whole log of polar (3 entries)"]
    );
}

/// A checkpoint whose signature no longer verifies, claiming more entries
/// than the log holds, is not re-signed over the shorter log, neither by
/// `repair` nor at start: peers may hold the longer one.
#[test]
fn a_broken_checkpoint_over_a_longer_log_is_not_signed_over() {
    let (node, _dir) = node();
    node.import_lines(1, &[line(1, "Ice station 1")]).unwrap();
    node.catch_up_index(&mut |_| {}).unwrap();
    let stored = node.store().checkpoint(POLAR).unwrap().unwrap();
    let mut envelope = crate::proto::Envelope::decode(stored.as_slice()).unwrap();
    let mut checkpoint = crate::proto::Checkpoint::decode(envelope.payload.as_slice()).unwrap();
    checkpoint.size += 3;
    envelope.payload = checkpoint.encode_to_vec();
    let broken = envelope.encode_to_vec();
    node.store().put_checkpoint(POLAR, &broken).unwrap();

    let report = check(&node).unwrap();
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let finding = report.findings[0].to_string();
    assert!(
        finding.contains("does not verify")
            && finding.contains("claims 5 entries and the log holds 2"),
        "{finding}"
    );
    assert!(!repair(&node).unwrap().clean());
    assert!(!node.checkpoint_own_log().unwrap());
    assert_eq!(node.store().checkpoint(POLAR).unwrap().unwrap(), broken);

    // Broken over exactly the log it has: signed again.
    checkpoint.size -= 3;
    envelope.payload = checkpoint.encode_to_vec();
    envelope.signatures[0].sig[0] ^= 1;
    node.store()
        .put_checkpoint(POLAR, &envelope.encode_to_vec())
        .unwrap();
    assert!(!check(&node).unwrap().clean());
    let repaired = repair(&node).unwrap();
    assert!(repaired.clean(), "{:#?}", repaired.findings);
    assert!(check(&node).unwrap().clean());
}

#[test]
fn a_damaged_merkle_node_and_entry_are_named_and_not_repaired() {
    let (node, _dir) = holding();
    // Every stored hash of the tree altered.
    let merkle = node.store().raw_tree(tree::MERKLE);
    let runs: Vec<(Vec<u8>, Vec<u8>)> = merkle
        .scan_prefix(key(""))
        .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
        .collect();
    for (k, mut v) in runs {
        let last = v.len() - 1;
        v[last] ^= 1;
        merkle.insert(k, v).unwrap();
    }
    let report = repair(&node).unwrap();
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.part == "merkle" && f.message.contains("the log's leaves give")),
        "{:#?}",
        report.findings
    );
    assert!(report.findings.iter().all(|f| !f.repairable));
    assert!(!report.clean());
}

/// A record state's note of the record's latest public version is held to
/// the log: a wrong one is named, and repair writes the log's.
#[test]
fn a_wrong_note_of_the_latest_public_version_is_named_and_repaired() {
    let (node, _dir) = holding();
    let records = node.store().raw_tree(tree::RECORDS);
    // PDC-2 noted at its first version (entry 2), PDC-3 as never public.
    let mut earlier = records.get(key("PDC-2")).unwrap().unwrap().to_vec();
    earlier[18..].copy_from_slice(&2u64.to_be_bytes());
    records.insert(key("PDC-2"), earlier).unwrap();
    let mut never = records.get(key("PDC-3")).unwrap().unwrap().to_vec();
    never.truncate(18);
    never[17] = 0;
    records.insert(key("PDC-3"), never).unwrap();
    let report = check(&node).unwrap();
    assert_eq!(
        report
            .findings
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>(),
        [
            "record [records_v1] polar entry 6 record `PDC-2`: the latest public version \
             is entry 2 by the state, entry 6 by the log",
            "record [records_v1] polar entry 3 record `PDC-3`: the latest public version \
             is none by the state, entry 3 by the log",
        ]
    );
    assert!(report.findings.iter().all(|f| f.repairable));
    let repaired = repair(&node).unwrap();
    assert!(repaired.clean(), "{:#?}", repaired.findings);
    assert_eq!(
        repaired.repaired,
        ["noted the latest public version in 2 record states of polar"]
    );
    let noted = |id: &str| {
        let state = node.store().record_state(POLAR, id).unwrap().unwrap();
        state.last_public
    };
    assert_eq!(noted("PDC-2"), LastPublic::At(LogIndex(6)));
    assert_eq!(noted("PDC-3"), LastPublic::At(LogIndex(3)));
}

/// The states of a store written before the notes were kept note nothing,
/// which is no damage; repair notes them all from the log, a tombstone's
/// the version it deleted.
#[test]
fn repair_notes_the_states_of_a_store_written_before() {
    let (node, _dir) = holding();
    node.store().forget_public_notes();
    assert!(check(&node).unwrap().clean());
    let repaired = repair(&node).unwrap();
    assert!(repaired.clean(), "{:#?}", repaired.findings);
    assert_eq!(
        repaired.repaired,
        ["noted the latest public version in 5 record states of polar"]
    );
    let noted: Vec<LastPublic> = (1..=5)
        .map(|i| {
            let id = format!("PDC-{i}");
            node.store()
                .record_state(POLAR, &id)
                .unwrap()
                .unwrap()
                .last_public
        })
        .collect();
    assert_eq!(
        noted,
        [1, 6, 3, 4, 5].map(|at| LastPublic::At(LogIndex(at)))
    );
    assert!(repair(&node).unwrap().repaired.is_empty(), "once is enough");
}

/// A log size damaged to a huge value is named, not taken as the number of
/// entries to make room for.
#[test]
fn a_damaged_log_size_is_named_without_making_room_for_it() {
    let (node, _dir) = holding();
    let sizes = node.store().raw_tree(tree::LOG_SIZES);
    sizes
        .insert(POLAR.as_bytes(), &u64::MAX.to_be_bytes()[..])
        .unwrap();
    let report = check(&node).unwrap();
    assert!(!report.clean());
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.part == "log" && f.to_string().contains("polar")),
        "{:#?}",
        report.findings
    );
}
