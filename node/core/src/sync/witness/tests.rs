//! The evidence file checked on its own: what proves equivocation, and every
//! way a file that proves nothing is refused, with its reason.

use super::*;
use crate::log::sign_checkpoint;
use crate::merkle::{leaf_hash, MemoryTree};
use crate::sign::NodeKey;

const ORIGIN: &str = "polar";

/// An origin: its root, its signing key and its first key set (entry 0).
struct Origin {
    root: NodeKey,
    signing: NodeKey,
    key_set: Envelope,
}

impl Origin {
    fn new() -> Self {
        let root = NodeKey::generate();
        let signing = NodeKey::generate();
        let set = keyset::key_set(
            ORIGIN,
            1,
            &[&signing],
            &[root.public()],
            1,
            keyset::expiry_after(keyset::now_unix(), 365),
            Vec::new(),
        );
        let key_set = keyset::sign_key_set(&[&root], ORIGIN, 0, set);
        Self {
            root,
            signing,
            key_set,
        }
    }

    fn checkpoint(&self, tree: &MemoryTree, size: u64) -> Envelope {
        let root = merkle::root(tree, size).unwrap();
        sign_checkpoint(&self.signing, ORIGIN, size, root)
    }

    /// The evidence file of checkpoints `first` (of `smaller`) and `second`
    /// (of `larger`'s tree), with `larger`'s prefix root and proof.
    fn evidence(
        &self,
        first: &Envelope,
        second: &Envelope,
        larger: Option<(&MemoryTree, u64, u64)>,
    ) -> Evidence {
        let (prefix_root, consistency) = match larger {
            Some((tree, old, new)) => (
                Some(hex::encode(merkle::root(tree, old).unwrap())),
                merkle::consistency_proof(tree, old, new)
                    .unwrap()
                    .iter()
                    .map(hex::encode)
                    .collect(),
            ),
            None => (None, Vec::new()),
        };
        Evidence {
            format: EVIDENCE_FORMAT.into(),
            origin: ORIGIN.into(),
            pinned_root: hex::encode(self.root.verifying_key().to_bytes()),
            key_sets: vec![KeySetEntry {
                index: 0,
                envelope: b64().encode(self.key_set.encode_to_vec()),
            }],
            first: b64().encode(first.encode_to_vec()),
            second: b64().encode(second.encode_to_vec()),
            prefix_root,
            consistency,
            found: String::new(),
        }
    }
}

/// A log of `size` leaves: entry 0 is the key set, then `prefix` entries
/// shared by every fork, then entries of `fork`.
fn log(origin: &Origin, size: u64, prefix: u64, fork: &str) -> MemoryTree {
    MemoryTree::from_leaves((0..size).map(|i| match i {
        0 => leaf_hash(&origin.key_set.payload),
        i if i <= prefix => leaf_hash(format!("shared {i}").as_bytes()),
        i => leaf_hash(format!("{fork} {i}").as_bytes()),
    }))
}

fn check(evidence: &Evidence) -> Result<Proven, EvidenceError> {
    verify(&serde_json::to_vec(evidence).unwrap())
}

#[test]
fn a_fork_seen_at_two_sizes_is_proven_for_every_pair_of_sizes() {
    let origin = Origin::new();
    // Every fork point, smaller size and larger size up to 11 leaves; the
    // smaller sizes include powers of two, whose proofs omit the prefix root.
    for larger in 2..=11u64 {
        for smaller in 1..larger {
            for fork in 0..smaller.saturating_sub(1) {
                let shown_b = log(&origin, larger, fork, "b");
                let shown_c = log(&origin, smaller, fork, "c");
                let first = origin.checkpoint(&shown_c, smaller);
                let second = origin.checkpoint(&shown_b, larger);
                let evidence = origin.evidence(&first, &second, Some((&shown_b, smaller, larger)));
                let proven = check(&evidence).unwrap_or_else(|e| {
                    panic!("sizes {smaller} and {larger}, fork after {fork}: {e}")
                });
                assert_eq!(proven.conflict, Conflict::NotAPrefix { smaller, larger });
                assert_eq!(proven.root_key, *origin.root.key_id());
            }
            // The same log at two sizes proves nothing.
            let whole = log(&origin, larger, larger, "b");
            let evidence = origin.evidence(
                &origin.checkpoint(&whole, smaller),
                &origin.checkpoint(&whole, larger),
                Some((&whole, smaller, larger)),
            );
            assert!(
                matches!(check(&evidence), Err(EvidenceError::Consistent(_))),
                "sizes {smaller} and {larger} of one log"
            );
        }
    }
}

#[test]
fn two_roots_of_one_size_are_proven_and_one_root_twice_is_not() {
    let origin = Origin::new();
    let b = log(&origin, 6, 3, "b");
    let c = log(&origin, 6, 3, "c");
    let evidence = origin.evidence(&origin.checkpoint(&b, 6), &origin.checkpoint(&c, 6), None);
    assert_eq!(
        check(&evidence).unwrap().conflict,
        Conflict::SameSize { size: 6 }
    );
    let same = origin.evidence(&origin.checkpoint(&b, 6), &origin.checkpoint(&b, 6), None);
    let error = check(&same).unwrap_err();
    assert!(error.to_string().contains("same root"), "{error}");
}

/// A proven file, and the checkpoints it holds, to tamper with.
fn proven() -> (Origin, Evidence, MemoryTree, MemoryTree) {
    let origin = Origin::new();
    let b = log(&origin, 7, 3, "b");
    let c = log(&origin, 5, 3, "c");
    let evidence = origin.evidence(
        &origin.checkpoint(&c, 5),
        &origin.checkpoint(&b, 7),
        Some((&b, 5, 7)),
    );
    check(&evidence).unwrap();
    (origin, evidence, b, c)
}

fn refused(evidence: &Evidence) -> String {
    check(evidence)
        .map(|p| panic!("proved {:?}", p.conflict))
        .unwrap_err()
        .to_string()
}

#[test]
fn a_tampered_signature_is_refused_and_named() {
    let (_, mut evidence, _, _) = proven();
    let mut envelope =
        Envelope::decode(b64().decode(&evidence.second).unwrap().as_slice()).unwrap();
    envelope.signatures[0].sig[5] ^= 1;
    evidence.second = b64().encode(envelope.encode_to_vec());
    let message = refused(&evidence);
    assert!(message.starts_with("checkpoint `second`"), "{message}");
}

#[test]
fn a_checkpoint_whose_payload_was_altered_is_refused() {
    let (_, mut evidence, _, _) = proven();
    let mut envelope = Envelope::decode(b64().decode(&evidence.first).unwrap().as_slice()).unwrap();
    let mut checkpoint = Checkpoint::decode(envelope.payload.as_slice()).unwrap();
    checkpoint.size = 6;
    envelope.payload = checkpoint.encode_to_vec();
    evidence.first = b64().encode(envelope.encode_to_vec());
    assert!(refused(&evidence).starts_with("checkpoint `first`"));
}

#[test]
fn a_checkpoint_signed_by_a_key_outside_the_chain_is_refused() {
    let (origin, mut evidence, b, _) = proven();
    let stranger = NodeKey::generate();
    let forged = sign_checkpoint(&stranger, ORIGIN, 7, merkle::root(&b, 7).unwrap());
    evidence.second = b64().encode(forged.encode_to_vec());
    let message = refused(&evidence);
    assert!(message.starts_with("checkpoint `second`"), "{message}");
    // Signed by the root, which signs key sets, not checkpoints, it fails too.
    let by_root = sign_checkpoint(&origin.root, ORIGIN, 7, merkle::root(&b, 7).unwrap());
    evidence.second = b64().encode(by_root.encode_to_vec());
    assert!(refused(&evidence).starts_with("checkpoint `second`"));
}

#[test]
fn a_chain_from_another_root_is_refused() {
    let (_, mut evidence, _, _) = proven();
    evidence.pinned_root = hex::encode(NodeKey::generate().verifying_key().to_bytes());
    let message = refused(&evidence);
    assert!(message.starts_with("key set at log index 0"), "{message}");
    let (_, mut evidence, _, _) = proven();
    evidence.key_sets.clear();
    assert!(refused(&evidence).contains("no key set"));
}

#[test]
fn a_prefix_root_the_proof_does_not_lead_from_is_refused() {
    // The smaller checkpoint's own root: the proof does not lead from it to
    // the larger one, so nothing says the two diverge.
    let (_, mut evidence, _, c) = proven();
    evidence.prefix_root = Some(hex::encode(merkle::root(&c, 5).unwrap()));
    let message = refused(&evidence);
    assert!(message.starts_with("field `consistency`"), "{message}");
    // A proof hash altered.
    let (_, mut evidence, _, _) = proven();
    evidence.consistency[0] = hex::encode([7u8; 32]);
    assert!(refused(&evidence).starts_with("field `consistency`"));
    // No prefix root at all.
    let (_, mut evidence, _, _) = proven();
    evidence.prefix_root = None;
    assert!(refused(&evidence).starts_with("field `prefix_root`"));
}

#[test]
fn checkpoints_in_the_wrong_order_or_of_another_origin_are_refused() {
    let (_, mut evidence, _, _) = proven();
    std::mem::swap(&mut evidence.first, &mut evidence.second);
    assert!(refused(&evidence).contains("larger than the second"));
    let (_, mut evidence, _, _) = proven();
    evidence.origin = "genomics".into();
    assert!(refused(&evidence).starts_with("key set at log index 0"));
}

#[test]
fn a_file_that_is_not_evidence_is_refused_with_its_reason() {
    assert!(verify(b"{\"hello\": 1}")
        .unwrap_err()
        .to_string()
        .starts_with("not an evidence file"));
    assert!(verify(&vec![b' '; MAX_EVIDENCE_BYTES + 1])
        .unwrap_err()
        .to_string()
        .contains("exceeds"));
    let (_, mut evidence, _, _) = proven();
    evidence.format = "meridian.evidence.v0".into();
    assert!(refused(&evidence).starts_with("field `format`"));
    let (_, mut evidence, _, _) = proven();
    evidence.first = "not base64!".into();
    assert!(refused(&evidence).starts_with("field `first`: not base64"));
    let (_, mut evidence, _, _) = proven();
    evidence.consistency = vec![hex::encode([0u8; 32]); MAX_PROOF_HASHES + 1];
    assert!(refused(&evidence).contains("more than"));
}

/// A witness counts for the head held here only when it cosigned that
/// checkpoint: its origin, size and root; only the newest head counts.
#[test]
fn cosigners_count_only_the_newest_head() {
    let head = |size: u64, root: &[u8]| Checkpoint {
        origin: ORIGIN.into(),
        size,
        root: root.to_vec(),
    };
    let cosigned = |origin: &str, size: u64, root: &[u8]| Cosignature {
        origin: origin.into(),
        size,
        root: root.to_vec(),
        ..Default::default()
    };
    let cosigners = Cosigners::default();
    let held = head(1, b"head-1");
    cosigners.note(ORIGIN, &held, &cosigned(ORIGIN, 1, b"head-1"), "uni");
    cosigners.note(ORIGIN, &held, &cosigned(ORIGIN, 1, b"head-1"), "uni");
    cosigners.note(ORIGIN, &held, &cosigned(ORIGIN, 1, b"head-0"), "genomics");
    // The held root at another size, or of another origin: not this head.
    cosigners.note(ORIGIN, &held, &cosigned(ORIGIN, 9, b"head-1"), "marine");
    cosigners.note(ORIGIN, &held, &cosigned("other", 1, b"head-1"), "ocean");
    assert_eq!(cosigners.count(ORIGIN, b"head-1"), 1);
    let newer = head(2, b"head-2");
    cosigners.note(ORIGIN, &newer, &cosigned(ORIGIN, 2, b"head-2"), "genomics");
    assert_eq!(cosigners.count(ORIGIN, b"head-1"), 0);
    assert_eq!(cosigners.count(ORIGIN, b"head-2"), 1);
}
