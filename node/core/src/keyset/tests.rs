use prost::Message as _;

use super::*;
use crate::proto::{DatasetRecord, PublicKey};
use crate::sign::{NodeKey, CHECKPOINT_TYPE, RECORD_TYPE};

const ORIGIN: &str = "polar";

struct Origin {
    root: NodeKey,
    signing: Vec<NodeKey>,
}

fn roots(key: &NodeKey) -> Vec<PublicKey> {
    vec![key.public()]
}

fn set(origin: &Origin, version: u64, signing: usize, expires: String) -> KeySet {
    key_set(
        ORIGIN,
        version,
        &[&origin.signing[signing]],
        &roots(&origin.root),
        1,
        expires,
        Vec::new(),
    )
}

fn in_a_year() -> String {
    expiry_after(now_unix(), 300)
}

fn record(key: &NodeKey, index: u64) -> Envelope {
    let entry = LogEntry {
        origin: ORIGIN.into(),
        index,
        body: Some(Body::Record(DatasetRecord {
            origin: ORIGIN.into(),
            id: format!("r{index}"),
            version: 1,
            ..Default::default()
        })),
    };
    key.sign(RECORD_TYPE, entry.encode_to_vec())
}

fn checkpoint(key: &NodeKey, size: u64) -> Envelope {
    let checkpoint = Checkpoint {
        origin: ORIGIN.into(),
        size,
        root: vec![1; 32],
    };
    key.sign(CHECKPOINT_TYPE, checkpoint.encode_to_vec())
}

fn new_origin() -> Origin {
    Origin {
        root: NodeKey::generate(),
        signing: (0..3).map(|_| NodeKey::generate()).collect(),
    }
}

/// Set 1 at entry 0 (signing key 0), records 1–3, set 2 at entry 4
/// (signing key 1), as the origin writes them.
fn rotated(origin: &Origin) -> (KeyChain, Envelope, Envelope) {
    let genesis = sign_key_set(&[&origin.root], ORIGIN, 0, set(origin, 1, 0, in_a_year()));
    let second = sign_key_set(&[&origin.root], ORIGIN, 4, set(origin, 2, 1, in_a_year()));
    let mut chain = KeyChain::new(ORIGIN, Some(origin.root.verifying_key()));
    chain.extend(0, &genesis, now_unix()).unwrap();
    chain.extend(4, &second, now_unix()).unwrap();
    (chain, genesis, second)
}

#[test]
fn entries_verify_against_the_set_governing_their_position() {
    let origin = new_origin();
    let (chain, genesis, second) = rotated(&origin);
    let before: Vec<Envelope> = (1..4).map(|i| record(&origin.signing[0], i)).collect();
    let after: Vec<Envelope> = (5..8).map(|i| record(&origin.signing[1], i)).collect();
    let mut items: Vec<(u64, &Envelope)> = vec![(0, &genesis)];
    items.extend(before.iter().enumerate().map(|(i, e)| (i as u64 + 1, e)));
    items.push((4, &second));
    items.extend(after.iter().enumerate().map(|(i, e)| (i as u64 + 5, e)));
    for (result, (index, _)) in chain.open_entries(&items).into_iter().zip(&items) {
        assert_eq!(result.unwrap().index, *index);
    }
    assert_eq!(
        chain.ring_at(4).unwrap().key_ids().next(),
        Some(origin.signing[0].key_id())
    );
    assert_eq!(
        chain.ring_at(5).unwrap().key_ids().next(),
        Some(origin.signing[1].key_id())
    );
    // Checkpoints: by the keys governing their size.
    assert_eq!(
        chain
            .open_checkpoint(&checkpoint(&origin.signing[0], 4))
            .unwrap()
            .size,
        4
    );
    assert_eq!(
        chain
            .open_checkpoint(&checkpoint(&origin.signing[1], 8))
            .unwrap()
            .size,
        8
    );
}

/// Adversarial: a retired key signing a new entry is refused, and the
/// error names the key and where it was retired.
#[test]
fn a_retired_key_signs_nothing_after_its_retirement() {
    let origin = new_origin();
    let (chain, _, _) = rotated(&origin);
    let late = record(&origin.signing[0], 6);
    let err = chain.open_entry(6, &late).unwrap_err();
    assert!(
        matches!(&err, SignError::RetiredKey { key_id, retired_at: 4 } if key_id == origin.signing[0].key_id()),
        "{err}"
    );
    assert!(err.to_string().contains("retired"), "{err}");
    // Its checkpoints past the rotation too.
    let err = chain
        .open_checkpoint(&checkpoint(&origin.signing[0], 6))
        .unwrap_err();
    assert!(
        matches!(err, SignError::RetiredKey { retired_at: 4, .. }),
        "{err}"
    );
    // A new key cannot sign entries before its set either.
    assert!(chain.open_entry(2, &record(&origin.signing[1], 2)).is_err());
    // A key never listed is unknown, not retired.
    let stranger = NodeKey::generate();
    assert!(matches!(
        chain.open_entry(6, &record(&stranger, 6)),
        Err(SignError::UnknownKey(_))
    ));
}

/// Adversarial: a chain that skips N+1 is refused.
#[test]
fn a_chain_that_skips_a_version_is_refused() {
    let origin = new_origin();
    let (mut chain, _, _) = rotated(&origin);
    let skipping = sign_key_set(&[&origin.root], ORIGIN, 9, set(&origin, 4, 2, in_a_year()));
    let err = chain.extend(9, &skipping, now_unix()).unwrap_err();
    assert!(
        matches!(
            err,
            SignError::KeySetSkipped {
                latest: 2,
                found: 4
            }
        ),
        "{err}"
    );
    assert_eq!(chain.links().len(), 2, "nothing was appended");
    // The first set must be version 1, at entry 0.
    let mut fresh = KeyChain::new(ORIGIN, Some(origin.root.verifying_key()));
    let late_first = sign_key_set(&[&origin.root], ORIGIN, 0, set(&origin, 2, 0, in_a_year()));
    assert!(matches!(
        fresh.extend(0, &late_first, now_unix()),
        Err(SignError::KeySetSkipped { .. })
    ));
    let elsewhere = sign_key_set(&[&origin.root], ORIGIN, 3, set(&origin, 1, 0, in_a_year()));
    assert!(matches!(
        fresh.extend(3, &elsewhere, now_unix()),
        Err(SignError::KeySetPosition { index: 3, .. })
    ));
}

/// Adversarial: an old key set replayed at a later position is refused,
/// and so is a set in the stream that is not the one verified there.
#[test]
fn a_replayed_key_set_is_refused() {
    let origin = new_origin();
    let (mut chain, genesis, _) = rotated(&origin);
    // Set 1 again, re-signed by the root for a later index.
    let replay = sign_key_set(&[&origin.root], ORIGIN, 7, set(&origin, 1, 0, in_a_year()));
    assert!(matches!(
        chain.extend(7, &replay, now_unix()),
        Err(SignError::KeySetReplayed {
            latest: 2,
            found: 1
        })
    ));
    let again = sign_key_set(&[&origin.root], ORIGIN, 7, set(&origin, 2, 0, in_a_year()));
    assert!(matches!(
        chain.extend(7, &again, now_unix()),
        Err(SignError::KeySetReplayed { .. })
    ));
    // The genesis envelope itself, at another position.
    assert!(chain.extend(7, &genesis, now_unix()).is_err());
    assert!(matches!(
        chain.open_entry(7, &genesis),
        Err(SignError::KeySetPosition { index: 7, .. })
    ));
}

/// Adversarial: a key set signed by a key that is not the root (the
/// online signing key, or a stranger) is refused.
#[test]
fn a_key_set_not_signed_by_the_root_is_refused() {
    let origin = new_origin();
    let (mut chain, _, _) = rotated(&origin);
    let by_signing_key = sign_key_set(
        &[&origin.signing[1]],
        ORIGIN,
        9,
        set(&origin, 3, 2, in_a_year()),
    );
    let err = chain.extend(9, &by_signing_key, now_unix()).unwrap_err();
    assert!(matches!(err, SignError::UnknownKey(_)), "{err}");
    // A first set that the pinned root did not sign.
    let impostor = new_origin();
    let forged = sign_key_set(
        &[&impostor.root],
        ORIGIN,
        0,
        set(&impostor, 1, 0, in_a_year()),
    );
    let mut fresh = KeyChain::new(ORIGIN, Some(origin.root.verifying_key()));
    assert!(matches!(
        fresh.extend(0, &forged, now_unix()),
        Err(SignError::PinnedRootMissing { .. })
    ));
    // A new root must sign its own appointment.
    let new_root = NodeKey::generate();
    let mut handover = set(&origin, 3, 2, in_a_year());
    handover.root_keys = vec![new_root.public()];
    let only_old = sign_key_set(&[&origin.root], ORIGIN, 9, handover.clone());
    assert!(chain.extend(9, &only_old, now_unix()).is_err());
    let both = sign_key_set(&[&origin.root, &new_root], ORIGIN, 9, handover);
    chain.extend(9, &both, now_unix()).unwrap();
    assert!(chain
        .latest()
        .unwrap()
        .root()
        .key(new_root.key_id())
        .is_some());
}

/// Adversarial: an expired set makes the chain stale; a set valid for more
/// than the cap, or one with root keys and no expiry, is refused.
#[test]
fn expiry_is_capped_and_an_expired_set_is_stale() {
    let origin = new_origin();
    let now = now_unix();
    let lapsed = sign_key_set(
        &[&origin.root],
        ORIGIN,
        0,
        set(&origin, 1, 0, expiry_after(now - 10 * DAY_SECS, 1)),
    );
    let mut chain = KeyChain::new(ORIGIN, Some(origin.root.verifying_key()));
    chain.extend(0, &lapsed, now).unwrap();
    assert!(chain.expired(now).is_some());
    assert!(chain.renewal_due(now));
    // Still usable for what it signed: the flag trusts nothing more or less.
    assert!(chain.open_entry(1, &record(&origin.signing[0], 1)).is_ok());

    let renewed = sign_key_set(&[&origin.root], ORIGIN, 2, set(&origin, 2, 0, in_a_year()));
    chain.extend(2, &renewed, now).unwrap();
    assert!(chain.expired(now).is_none());
    assert!(!chain.renewal_due(now));

    let too_long = sign_key_set(
        &[&origin.root],
        ORIGIN,
        0,
        set(&origin, 1, 0, expiry_after(now, 3 * 365)),
    );
    let mut fresh = KeyChain::new(ORIGIN, Some(origin.root.verifying_key()));
    assert!(matches!(
        fresh.extend(0, &too_long, now),
        Err(SignError::KeySetExpiry(_))
    ));
    let none = sign_key_set(
        &[&origin.root],
        ORIGIN,
        0,
        set(&origin, 1, 0, String::new()),
    );
    assert!(matches!(
        fresh.extend(0, &none, now),
        Err(SignError::KeySetExpiry(_))
    ));
}

/// A set of version `version` with signing keys `signing` (threshold 1)
/// that revokes each `(key, from)` of `revoked`.
fn revoking(origin: &Origin, version: u64, signing: &[usize], revoked: &[(usize, u64)]) -> KeySet {
    let keys: Vec<&NodeKey> = signing.iter().map(|&i| &origin.signing[i]).collect();
    let mut set = key_set(
        ORIGIN,
        version,
        &keys,
        &roots(&origin.root),
        1,
        in_a_year(),
        Vec::new(),
    );
    set.revocations = revoked
        .iter()
        .map(|&(key, from)| crate::proto::Revocation {
            key_id: origin.signing[key].key_id().to_string(),
            from_index: from,
            reason: "key file leaked".into(),
        })
        .collect();
    set
}

/// Adversarial: a revoked key's entries from the revocation's index on are
/// quarantined (they still verify: the log stays verifiable), the entries
/// before it are not, and anything it signs after the revoking set is
/// refused as from a retired key.
#[test]
fn a_revoked_keys_later_entries_are_quarantined_and_refused() {
    let origin = new_origin();
    let (mut chain, _, _) = rotated(&origin);
    // Key 1 signs entries 5-7; set 3 at 8 revokes it from 6 for key 2.
    let third = sign_key_set(
        &[&origin.root],
        ORIGIN,
        8,
        revoking(&origin, 3, &[2], &[(1, 6)]),
    );
    chain.extend(8, &third, now_unix()).unwrap();
    let revoked = &chain.revocations()[0];
    assert_eq!(
        (
            &revoked.key_id,
            revoked.from,
            revoked.until,
            revoked.published_at
        ),
        (origin.signing[1].key_id(), 6, 8, 8)
    );
    let by_key1: Vec<Envelope> = (5..8).map(|i| record(&origin.signing[1], i)).collect();
    assert!(
        chain.quarantines(5, &by_key1[0]).is_none(),
        "before the index"
    );
    for (index, envelope) in [(6, &by_key1[1]), (7, &by_key1[2])] {
        assert_eq!(
            chain.quarantines(index, envelope).map(|r| r.from),
            Some(6),
            "entry {index}"
        );
        assert!(chain.open_entry(index, envelope).is_ok(), "still verifies");
        assert!(chain.quarantines_any_entry_at(index).is_some());
    }
    assert!(chain.quarantines_any_entry_at(5).is_none());
    // Entries before the revoked key's time are untouched.
    assert!(chain
        .quarantines(2, &record(&origin.signing[0], 2))
        .is_none());
    // After the revoking set the key signs nothing.
    let late = record(&origin.signing[1], 9);
    assert!(matches!(
        chain.open_entry(9, &late),
        Err(SignError::RetiredKey { retired_at: 8, .. })
    ));
    let good = record(&origin.signing[2], 9);
    assert!(chain.open_entry(9, &good).is_ok());
    assert!(chain.quarantines(9, &good).is_none());
    // A revoked key never comes back as a signing key.
    let back = sign_key_set(&[&origin.root], ORIGIN, 10, revoking(&origin, 4, &[1], &[]));
    let err = chain.extend(10, &back, now_unix()).unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
}

/// Adversarial: a revocation moves a key's validity back only: never from
/// or after its retirement, never later than a revocation already held; it
/// names a key the origin had, which the set no longer lists; and only the
/// root publishes it.
#[test]
fn a_revocation_only_moves_a_keys_validity_back() {
    let origin = new_origin();
    let (chain, _, _) = rotated(&origin);
    let refused = |set: KeySet, what: &str| {
        let mut attempt = chain.clone();
        let envelope = sign_key_set(&[&origin.root], ORIGIN, 8, set);
        let err = attempt.extend(8, &envelope, now_unix()).unwrap_err();
        assert!(
            matches!(err, SignError::KeySetPosition { index: 8, .. }),
            "{what}: {err}"
        );
        assert!(err.to_string().contains(what), "{err}");
        assert_eq!(attempt.links().len(), 2, "nothing was appended");
    };
    // Key 0 was retired at 4: from 4 or later would move it forward.
    refused(
        revoking(&origin, 3, &[1], &[(0, 4)]),
        "only moves a key's validity back",
    );
    // Key 1 is retired by this very set at 8.
    refused(revoking(&origin, 3, &[2], &[(1, 8)]), "at or after 8");
    refused(revoking(&origin, 3, &[1], &[(1, 5)]), "still lists it");
    let mut stranger = revoking(&origin, 3, &[1], &[]);
    stranger.revocations.push(crate::proto::Revocation {
        key_id: NodeKey::generate().key_id().to_string(),
        from_index: 2,
        reason: String::new(),
    });
    refused(stranger, "not a signing key of an earlier key set");
    let mut garbled = revoking(&origin, 3, &[1], &[]);
    garbled.revocations.push(crate::proto::Revocation {
        key_id: "ed25519:zz".into(),
        from_index: 2,
        reason: String::new(),
    });
    refused(garbled, "revocations[0]");
    let mut wordy = revoking(&origin, 3, &[1], &[(0, 2)]);
    wordy.revocations[0].reason = "x".repeat(MAX_REASON_BYTES + 1);
    refused(wordy, "reason");

    // A retired key revoked later, with the signing key kept.
    let mut chain = chain;
    let third = sign_key_set(
        &[&origin.root],
        ORIGIN,
        8,
        revoking(&origin, 3, &[1], &[(0, 2)]),
    );
    chain.extend(8, &third, now_unix()).unwrap();
    assert!(chain
        .quarantines(1, &record(&origin.signing[0], 1))
        .is_none());
    assert!(chain
        .quarantines(3, &record(&origin.signing[0], 3))
        .is_some());
    assert!(chain
        .quarantines(6, &record(&origin.signing[1], 6))
        .is_none());
    // Later: never forward, but further back is fine.
    let forward = sign_key_set(
        &[&origin.root],
        ORIGIN,
        9,
        revoking(&origin, 4, &[1], &[(0, 3)]),
    );
    let err = chain.clone().extend(9, &forward, now_unix()).unwrap_err();
    assert!(err.to_string().contains("never moves"), "{err}");
    let back = sign_key_set(
        &[&origin.root],
        ORIGIN,
        9,
        revoking(&origin, 4, &[1], &[(0, 1)]),
    );
    chain.extend(9, &back, now_unix()).unwrap();
    assert_eq!(chain.revocations().len(), 1);
    assert_eq!(chain.revocations()[0].from, 1);
    assert!(chain
        .quarantines(1, &record(&origin.signing[0], 1))
        .is_some());
    // As it stood at 8, the chain revoked key 0 from 2 only; before 8, not
    // at all. Later sets do not change what an earlier position saw.
    let at_8 = chain.as_of(8);
    assert_eq!(at_8.links().len(), 3);
    assert_eq!(
        at_8.revocations()
            .iter()
            .map(|r| (r.from, r.published_at))
            .collect::<Vec<_>>(),
        [(2, 8)]
    );
    assert!(at_8
        .quarantines(1, &record(&origin.signing[0], 1))
        .is_none());
    assert!(at_8
        .quarantines(3, &record(&origin.signing[0], 3))
        .is_some());
    assert!(chain.as_of(7).revocations().is_empty());
    assert_eq!(chain.as_of(7).links().len(), 2);
    assert_eq!(chain.as_of(9).revocations()[0].from, 1);

    // Published by a signing key instead of the root: refused.
    let (mut chain, _, _) = rotated(&origin);
    let by_signing_key = sign_key_set(
        &[&origin.signing[1]],
        ORIGIN,
        8,
        revoking(&origin, 3, &[2], &[(1, 5)]),
    );
    assert!(chain.extend(8, &by_signing_key, now_unix()).is_err());
    assert!(chain.revocations().is_empty());
}

/// With two signing keys, only what the revoked one signed is quarantined:
/// an entry the other key signed verifies without it.
#[test]
fn only_entries_of_the_revoked_key_are_quarantined() {
    let origin = new_origin();
    let genesis = sign_key_set(
        &[&origin.root],
        ORIGIN,
        0,
        revoking(&origin, 1, &[0, 1], &[]),
    );
    let second = sign_key_set(
        &[&origin.root],
        ORIGIN,
        4,
        revoking(&origin, 2, &[1], &[(0, 2)]),
    );
    let mut chain = KeyChain::new(ORIGIN, Some(origin.root.verifying_key()));
    chain.extend(0, &genesis, now_unix()).unwrap();
    chain.extend(4, &second, now_unix()).unwrap();
    assert!(chain
        .quarantines(2, &record(&origin.signing[0], 2))
        .is_some());
    assert!(chain
        .quarantines(2, &record(&origin.signing[1], 2))
        .is_none());
    assert!(chain
        .quarantines(1, &record(&origin.signing[0], 1))
        .is_none());
    // Digests alone cannot say which key signed: not counted there.
    assert!(chain.quarantines_any_entry_at(2).is_none());
}

/// A node made before root keys: its identity key the one key of its
/// first set (no root keys, no expiry), at entry 0; then set 2 at entry 5
/// with a new signing key and the identity key as root. Returns the
/// identity key, the new signing key, the chain and the first set.
fn legacy_rotated() -> (NodeKey, NodeKey, KeyChain, Envelope) {
    let identity = NodeKey::generate();
    let legacy = KeySet {
        origin: ORIGIN.into(),
        version: 1,
        keys: vec![identity.public()],
        threshold: 1,
        ..KeySet::default()
    };
    let genesis = sign_key_set(&[&identity], ORIGIN, 0, legacy);
    let mut chain = KeyChain::new(ORIGIN, Some(identity.verifying_key()));
    chain.extend(0, &genesis, now_unix()).unwrap();
    assert!(chain.expired(now_unix()).is_none());
    let signing = NodeKey::generate();
    let next = key_set(
        ORIGIN,
        2,
        &[&signing],
        &roots(&identity),
        1,
        in_a_year(),
        Vec::new(),
    );
    chain
        .extend(5, &sign_key_set(&[&identity], ORIGIN, 5, next), now_unix())
        .unwrap();
    (identity, signing, chain, genesis)
}

/// A node made before root keys: its one identity key is root and signing
/// key, its first set lists no root keys and no expiry, and it rotates.
#[test]
fn a_legacy_identity_key_is_root_and_signing_key() {
    let (identity, signing, chain, genesis) = legacy_rotated();
    assert!(chain.open_entry(6, &record(&signing, 6)).is_ok());
    assert!(matches!(
        chain.open_entry(6, &record(&identity, 6)),
        Err(SignError::RetiredKey { retired_at: 5, .. })
    ));
    // This node's own chain needs no pin.
    let mut own = KeyChain::new(ORIGIN, None);
    own.extend(0, &genesis, now_unix()).unwrap();
}

/// A key revoked may have leaked: a set that revokes a legacy identity
/// key as a signing key and keeps it as its root would leave its holder
/// able to sign the next set. Refused; with a new root that signs too, the
/// same revocation is taken.
#[test]
fn a_revoked_key_cannot_stay_a_root_key() {
    let (identity, signing, mut chain, _) = legacy_rotated();
    let revoking = |root: &NodeKey| {
        let mut third = key_set(
            ORIGIN,
            3,
            &[&signing],
            &roots(root),
            1,
            in_a_year(),
            Vec::new(),
        );
        third.revocations = vec![crate::proto::Revocation {
            key_id: identity.key_id().to_string(),
            from_index: 1,
            reason: "key file leaked".into(),
        }];
        third
    };
    let kept = sign_key_set(&[&identity], ORIGIN, 8, revoking(&identity));
    let refused = chain.extend(8, &kept, now_unix()).unwrap_err();
    assert!(
        matches!(&refused, SignError::KeySetPosition { index: 8, message }
            if message.contains("as a root key, which is revoked")),
        "{refused}"
    );
    assert_eq!(chain.links().len(), 2);
    let new_root = NodeKey::generate();
    let moved = sign_key_set(&[&identity, &new_root], ORIGIN, 8, revoking(&new_root));
    chain.extend(8, &moved, now_unix()).unwrap();
    assert_eq!(chain.revocations()[0].key_id, *identity.key_id());
}

/// A renewed set keeps its signing key. A checkpoint of a size the earlier
/// set governs, signed by that key (a lagging witness's, a relay's behind
/// this node), opens under the earlier set, not refused by the later one.
#[test]
fn a_checkpoint_under_an_earlier_set_with_the_same_key_opens() {
    let origin = new_origin();
    let genesis = sign_key_set(&[&origin.root], ORIGIN, 0, set(&origin, 1, 0, in_a_year()));
    let renewed = sign_key_set(&[&origin.root], ORIGIN, 5, set(&origin, 2, 0, in_a_year()));
    let mut chain = KeyChain::new(ORIGIN, Some(origin.root.verifying_key()));
    chain.extend(0, &genesis, now_unix()).unwrap();
    chain.extend(5, &renewed, now_unix()).unwrap();
    for size in [3, 5, 8] {
        let opened = chain.open_checkpoint(&checkpoint(&origin.signing[0], size));
        assert_eq!(opened.map(|c| c.size).ok(), Some(size), "size {size}");
    }
    // A key of neither set opens nothing.
    assert!(chain
        .open_checkpoint(&checkpoint(&origin.signing[1], 3))
        .is_err());
}

/// A thief holding a revoked key could sign a checkpoint with an invented
/// root and have peers freeze the origin as a fork. A checkpoint that needs
/// a key revoked from before its size is refused; one of a size before the
/// revocation's start, when the key was the origin's, still opens.
#[test]
fn a_checkpoint_by_a_key_revoked_before_its_size_is_refused() {
    let origin = new_origin();
    let genesis = sign_key_set(&[&origin.root], ORIGIN, 0, set(&origin, 1, 0, in_a_year()));
    let revoking_set = sign_key_set(
        &[&origin.root],
        ORIGIN,
        8,
        revoking(&origin, 2, &[1], &[(0, 3)]),
    );
    let mut chain = KeyChain::new(ORIGIN, Some(origin.root.verifying_key()));
    chain.extend(0, &genesis, now_unix()).unwrap();
    chain.extend(8, &revoking_set, now_unix()).unwrap();
    for size in [4, 8] {
        let refused = chain
            .open_checkpoint(&checkpoint(&origin.signing[0], size))
            .unwrap_err();
        assert!(
            matches!(&refused, SignError::RevokedCheckpoint { key_id, from: 3, size: s }
                if key_id == origin.signing[0].key_id() && *s == size),
            "{refused}"
        );
    }
    for size in [2, 3] {
        let opened = chain.open_checkpoint(&checkpoint(&origin.signing[0], size));
        assert_eq!(opened.map(|c| c.size).ok(), Some(size), "size {size}");
    }
    let opened = chain.open_checkpoint(&checkpoint(&origin.signing[1], 12));
    assert_eq!(opened.map(|c| c.size).ok(), Some(12));
}

/// An origin with four signing keys (sets below use some of them).
fn four_keyed_origin() -> Origin {
    Origin {
        root: NodeKey::generate(),
        signing: (0..4).map(|_| NodeKey::generate()).collect(),
    }
}

/// A set of version `version` with signing keys `signing`, `threshold` of
/// them, revoking each `(key, from)` of `revoked`.
fn multi_key(
    origin: &Origin,
    version: u64,
    signing: &[usize],
    threshold: u32,
    revoked: &[(usize, u64)],
) -> KeySet {
    let mut set = revoking(origin, version, signing, revoked);
    set.threshold = threshold;
    set
}

/// A checkpoint of `size` signed by every key of `keys`.
fn checkpoint_by(keys: &[&NodeKey], size: u64) -> Envelope {
    let mut envelope = checkpoint(keys[0], size);
    for key in &keys[1..] {
        key.cosign(&mut envelope);
    }
    envelope
}

/// Set 1 at entry 0: keys 0, 1, 2, two of them to sign; then `second` at
/// entry 6.
fn two_of_three_then(origin: &Origin, second: KeySet) -> KeyChain {
    let genesis = sign_key_set(
        &[&origin.root],
        ORIGIN,
        0,
        multi_key(origin, 1, &[0, 1, 2], 2, &[]),
    );
    let second = sign_key_set(&[&origin.root], ORIGIN, 6, second);
    let mut chain = KeyChain::new(ORIGIN, Some(origin.root.verifying_key()));
    chain.extend(0, &genesis, now_unix()).unwrap();
    chain.extend(6, &second, now_unix()).unwrap();
    chain
}

/// A checkpoint signed by two keys of a 2-of-3 set, at a size that set
/// governs, opens whatever the next set (which keeps one of the keys and
/// adds another) makes of it: when the next set verifies it alone (1 of
/// 2), the keys both hold fall short of the first set's threshold and the
/// first set is tried on its own; when the next set keeps both keys, they
/// suffice; when it needs two of its own keys, it does not verify it and
/// the first set does. Either way a single key, or a key of the next set
/// alone, never vouches for a size the first set governs.
#[test]
fn a_checkpoint_of_a_multi_key_set_opens_under_it_after_the_next_set() {
    let origin = four_keyed_origin();
    let k = &origin.signing;
    // (signing keys of set 2, its threshold)
    for (keys, threshold) in [(&[0, 3][..], 1), (&[0, 1, 3][..], 1), (&[0, 3][..], 2)] {
        let chain = two_of_three_then(&origin, multi_key(&origin, 2, keys, threshold, &[]));
        let case = format!("set 2: keys {keys:?}, {threshold} to sign");
        for size in [3, 6] {
            for signers in [[&k[0], &k[1]], [&k[0], &k[2]], [&k[1], &k[2]]] {
                let opened = chain.open_checkpoint(&checkpoint_by(&signers, size));
                assert_eq!(
                    opened.map(|c| c.size).ok(),
                    Some(size),
                    "{case}, size {size}"
                );
            }
            for signers in [&[&k[0]][..], &[&k[0], &k[3]][..], &[&k[3]][..]] {
                assert!(
                    chain
                        .open_checkpoint(&checkpoint_by(signers, size))
                        .is_err(),
                    "{case}, size {size}: below set 1's threshold"
                );
            }
        }
        // Past set 2, its own keys and threshold decide.
        let both = chain.open_checkpoint(&checkpoint_by(&[&k[0], &k[3]], 8));
        assert_eq!(both.map(|c| c.size).ok(), Some(8), "{case}");
        let retired = chain.open_checkpoint(&checkpoint_by(&[&k[2]], 8));
        assert!(retired.is_err(), "{case}: a key set 2 dropped");
    }
}

/// A checkpoint of a 2-of-3 set that meets the threshold only with a key
/// revoked from before its size is refused, naming the key, whether the
/// next set (the revoking one) verified it first or not; with two keys
/// that stand, or at a size before the revocation's start, it opens.
#[test]
fn a_multi_key_checkpoint_short_of_its_threshold_without_a_revoked_key_is_refused() {
    let origin = four_keyed_origin();
    let k = &origin.signing;
    for threshold in [1, 2] {
        // Set 2 at 6 drops key 1 and revokes it from 3.
        let chain = two_of_three_then(
            &origin,
            multi_key(&origin, 2, &[0, 3], threshold, &[(1, 3)]),
        );
        let case = format!("set 2: {threshold} to sign");
        for (signers, size) in [([&k[0], &k[1]], 4), ([&k[1], &k[2]], 6)] {
            let refused = chain
                .open_checkpoint(&checkpoint_by(&signers, size))
                .unwrap_err();
            assert!(
                matches!(&refused, SignError::RevokedCheckpoint { key_id, from: 3, size: s }
                    if key_id == k[1].key_id() && *s == size),
                "{case}: {refused}"
            );
        }
        let standing = chain.open_checkpoint(&checkpoint_by(&[&k[0], &k[1], &k[2]], 4));
        assert_eq!(standing.map(|c| c.size).ok(), Some(4), "{case}");
        let before = chain.open_checkpoint(&checkpoint_by(&[&k[0], &k[1]], 3));
        assert_eq!(before.map(|c| c.size).ok(), Some(3), "{case}");
    }
}

/// Keys both a set and a later one hold may verify a checkpoint for the
/// earlier set; when one of them was revoked after (by a third set), the
/// keys of the earlier set alone that signed count too: a checkpoint of a
/// 2-of-3 set signed by all three keys, one revoked later, still has two
/// that stand.
#[test]
fn a_multi_key_checkpoint_counts_every_standing_signer_after_a_later_revocation() {
    let origin = four_keyed_origin();
    let k = &origin.signing;
    // Set 2 at 6 keeps keys 0 and 1 (one to sign); set 3 at 9 drops key 1,
    // revoking it from 3, and needs two keys.
    let mut chain = two_of_three_then(&origin, multi_key(&origin, 2, &[0, 1, 3], 1, &[]));
    let third = sign_key_set(
        &[&origin.root],
        ORIGIN,
        9,
        multi_key(&origin, 3, &[0, 3], 2, &[(1, 3)]),
    );
    chain.extend(9, &third, now_unix()).unwrap();
    let opened = chain.open_checkpoint(&checkpoint_by(&[&k[0], &k[1], &k[2]], 4));
    assert_eq!(opened.map(|c| c.size).ok(), Some(4), "keys 0 and 2 stand");
    let refused = chain
        .open_checkpoint(&checkpoint_by(&[&k[0], &k[1]], 4))
        .unwrap_err();
    assert!(
        matches!(&refused, SignError::RevokedCheckpoint { key_id, from: 3, size: 4 }
            if key_id == k[1].key_id()),
        "{refused}"
    );
}

/// Cost of verifying by position: a pulled batch of 2048 records checked
/// through a two-set chain against the same batch checked against one ring
/// (what a pull did before key sets were read). Prints both; run with
/// `cargo test -p meridian-core keyset -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn verifying_by_position_costs_what_verifying_against_one_ring_does() {
    let origin = new_origin();
    let (chain, _, _) = rotated(&origin);
    let envelopes: Vec<Envelope> = (5..5 + 2048)
        .map(|i| record(&origin.signing[1], i))
        .collect();
    let items: Vec<(u64, &Envelope)> = envelopes
        .iter()
        .enumerate()
        .map(|(i, e)| (i as u64 + 5, e))
        .collect();
    let refs: Vec<&Envelope> = envelopes.iter().collect();
    let ring = chain.ring_at(5).unwrap().clone();
    for round in 0..3 {
        let started = std::time::Instant::now();
        assert!(sign::open_entries(&refs, &ring).iter().all(Result::is_ok));
        let one_ring = started.elapsed();
        let started = std::time::Instant::now();
        assert!(chain.open_entries(&items).iter().all(Result::is_ok));
        let by_position = started.elapsed();
        println!(
            "round {round}: one ring {:.1} µs/entry, by position {:.1} µs/entry",
            one_ring.as_secs_f64() * 1e6 / 2048.0,
            by_position.as_secs_f64() * 1e6 / 2048.0
        );
    }
}

#[test]
fn records_opened_in_a_batch_name_their_signer_and_fail_one_by_one() {
    let origin = new_origin();
    let (chain, genesis, _) = rotated(&origin);
    let before = record(&origin.signing[0], 1);
    let after = record(&origin.signing[1], 5);
    // A retired key signing after its retirement, in the same batch.
    let late = record(&origin.signing[0], 6);
    let items = [(1, &before), (5, &after), (6, &late), (0, &genesis)];
    let opened = chain.open_records(&items);
    let (entry, verified) = opened[0].as_ref().unwrap();
    assert_eq!(entry.index, 1);
    assert_eq!(verified.key_ids, vec![origin.signing[0].key_id().clone()]);
    let (entry, verified) = opened[1].as_ref().unwrap();
    assert_eq!(entry.index, 5);
    assert_eq!(verified.key_ids, vec![origin.signing[1].key_id().clone()]);
    let late = opened[2].as_ref().unwrap_err().to_string();
    assert!(late.contains("retired"), "{late}");
    assert!(matches!(opened[3], Err(SignError::WrongPayloadType { .. })));
}

/// Adversarial: a set that lists too many TLS keys, an empty one, an
/// oversized one or one twice is refused before it governs anything; the
/// set before it stays current.
#[test]
fn a_key_sets_tls_keys_are_bounded() {
    let origin = new_origin();
    let (chain, _, _) = rotated(&origin);
    let with_tls = |tls_keys: Vec<Vec<u8>>| {
        let mut third = set(&origin, 3, 1, in_a_year());
        third.tls_keys = tls_keys;
        sign_key_set(&[&origin.root], ORIGIN, 9, third)
    };
    let refused = |tls_keys: Vec<Vec<u8>>, says: &str| {
        let mut chain = chain.clone();
        match chain.extend(9, &with_tls(tls_keys), now_unix()) {
            Err(SignError::KeySetPosition { index: 9, message }) => {
                assert!(message.contains(says), "{message}")
            }
            other => panic!("expected a refusal saying {says:?}, got {other:?}"),
        }
        assert_eq!(chain.latest().unwrap().set.version, 2);
    };
    refused(vec![vec![1; 44]; MAX_TLS_KEYS + 1], "TLS keys, more than");
    refused(vec![vec![1; 44], Vec::new()], "tls_keys[1]: 0 bytes");
    refused(
        vec![vec![1; MAX_TLS_KEY_BYTES + 1]],
        "tls_keys[0]: 1025 bytes",
    );
    refused(
        vec![vec![1; 44], vec![2; 44], vec![1; 44]],
        "tls_keys[2]: listed twice",
    );
    let mut chain = chain.clone();
    chain
        .extend(9, &with_tls(vec![vec![1; 44], vec![2; 44]]), now_unix())
        .unwrap();
    assert_eq!(chain.latest().unwrap().set.tls_keys.len(), 2);
}

/// Adversarial: a set whose signing keys, root keys or DOI prefixes are
/// more than their bounds is refused, naming the list and its length,
/// before any of its keys is vetted (these keys would not even parse), as
/// the first set and as a later one; the set before it stays current.
#[test]
fn a_key_sets_lists_are_bounded_before_any_key_is_vetted() {
    let origin = new_origin();
    let (chain, _, _) = rotated(&origin);
    let unsound = |n: usize| -> Vec<PublicKey> {
        (0..n)
            .map(|i| PublicKey {
                key_id: format!("not-a-key-{i}"),
                ed25519: vec![0; 3],
            })
            .collect()
    };
    let refused = |chain: &KeyChain, index: u64, envelope: &Envelope, says: &str| {
        let mut chain = chain.clone();
        let version = chain.latest().map(|l| l.set.version);
        match chain.extend(index, envelope, now_unix()) {
            Err(SignError::KeySetPosition { index: at, message }) => {
                assert_eq!(at, index);
                assert_eq!(message, says);
            }
            other => panic!("expected a refusal saying {says:?}, got {other:?}"),
        }
        assert_eq!(chain.latest().map(|l| l.set.version), version);
    };
    let mut third = set(&origin, 3, 1, in_a_year());
    third.keys = unsound(MAX_SIGNING_KEYS + 1);
    let envelope = sign_key_set(&[&origin.root], ORIGIN, 9, third);
    refused(&chain, 9, &envelope, "keys: 33 signing keys, more than 32");

    let mut third = set(&origin, 3, 1, in_a_year());
    third.root_keys = unsound(MAX_ROOT_KEYS + 1);
    let envelope = sign_key_set(&[&origin.root], ORIGIN, 9, third);
    refused(
        &chain,
        9,
        &envelope,
        "root_keys: 33 root keys, more than 32",
    );

    let mut third = set(&origin, 3, 1, in_a_year());
    third.doi_prefixes = vec!["10.5285".into(); MAX_KEY_SET_DOI_PREFIXES + 1];
    let envelope = sign_key_set(&[&origin.root], ORIGIN, 9, third);
    refused(
        &chain,
        9,
        &envelope,
        "doi_prefixes: 65 DOI prefixes, more than 64",
    );

    // The first set, signed by the pinned root.
    let pinned = KeyChain::new(ORIGIN, Some(origin.root.verifying_key()));
    let mut first = set(&origin, 1, 0, in_a_year());
    first.keys.extend(unsound(MAX_SIGNING_KEYS));
    let envelope = sign_key_set(&[&origin.root], ORIGIN, 0, first);
    refused(&pinned, 0, &envelope, "keys: 33 signing keys, more than 32");

    // At the bounds, the counts pass and the keys are vetted as ever.
    let mut third = set(&origin, 3, 1, in_a_year());
    third.doi_prefixes = vec!["10.5285".into(); MAX_KEY_SET_DOI_PREFIXES];
    let mut chain = chain.clone();
    chain
        .extend(
            9,
            &sign_key_set(&[&origin.root], ORIGIN, 9, third),
            now_unix(),
        )
        .unwrap();
}
