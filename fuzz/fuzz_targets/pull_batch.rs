//! A pulled batch as a peer streams it: items decode without panicking, and
//! batch verification gives every envelope the verdict single verification
//! gives it (one validity rule, however the batches fall), while accepting
//! no payload the origin's key never signed.
#![no_main]

use std::sync::OnceLock;

use ed25519_dalek::{Signer as _, SigningKey};
use libfuzzer_sys::fuzz_target;
use meridian_core::proto::{
    log_entry, pull_item, DatasetRecord, Envelope, LogEntry, PullItem, Signature,
};
use meridian_core::sign::{self, KeyId, KeyRing, RECORD_TYPE};
use prost::Message as _;

/// Items per fuzzed batch, at most.
const MAX_ITEMS: usize = 64;

struct Fixture {
    ring: KeyRing,
    genuine: Vec<Envelope>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let ring = KeyRing::new("polar", &[key.verifying_key()], 1).expect("a valid ring");
        let genuine = (1..=4)
            .map(|index| {
                let payload = LogEntry {
                    origin: "polar".into(),
                    index,
                    body: Some(log_entry::Body::Record(DatasetRecord {
                        id: format!("ds-{index}"),
                        origin: "polar".into(),
                        version: 1,
                        title: "Sea ice".into(),
                        ..Default::default()
                    })),
                }
                .encode_to_vec();
                let sig = key.sign(&sign::pae(RECORD_TYPE, &payload));
                Envelope {
                    payload,
                    payload_type: RECORD_TYPE.into(),
                    signatures: vec![Signature {
                        key_id: KeyId::of(&key.verifying_key()).to_string(),
                        sig: sig.to_bytes().to_vec(),
                    }],
                }
            })
            .collect();
        Fixture { ring, genuine }
    })
}

/// One envelope from a chunk of input: a decoded item, or a genuine
/// envelope with a byte or two changed (the first byte chooses).
fn envelope_of(chunk: &[u8], fixture: &Fixture) -> Option<Envelope> {
    let (&mode, rest) = chunk.split_first()?;
    match mode % 3 {
        0 => match PullItem::decode(rest).ok()?.item? {
            pull_item::Item::Entry(e) | pull_item::Item::Checkpoint(e) => Some(e),
            _ => None,
        },
        1 => Some(fixture.genuine[rest.len() % fixture.genuine.len()].clone()),
        _ => {
            let mut envelope = fixture.genuine[mode as usize % fixture.genuine.len()].clone();
            let mut bytes = envelope.encode_to_vec();
            for patch in rest.chunks_exact(2) {
                let at = patch[0] as usize % bytes.len();
                bytes[at] ^= patch[1];
            }
            envelope = Envelope::decode(bytes.as_slice()).ok()?;
            Some(envelope)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    // Items are separated by 0xFF bytes.
    let envelopes: Vec<Envelope> = data
        .split(|&b| b == 0xFF)
        .take(MAX_ITEMS)
        .filter_map(|chunk| envelope_of(chunk, fixture))
        .collect();
    let refs: Vec<&Envelope> = envelopes.iter().collect();
    let batch = sign::open_entries(&refs, &fixture.ring);
    assert_eq!(batch.len(), envelopes.len());
    for (envelope, batched) in envelopes.iter().zip(&batch) {
        let single = sign::open_entry(envelope, &fixture.ring);
        assert_eq!(
            single.is_ok(),
            batched.is_ok(),
            "single and batch verification disagree: {single:?} / {batched:?}"
        );
        if batched.is_ok() {
            assert!(
                fixture
                    .genuine
                    .iter()
                    .any(|g| g.payload == envelope.payload),
                "a payload the key never signed was accepted"
            );
        }
    }
});
