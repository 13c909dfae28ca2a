//! Signed envelopes as a peer sends them. One key signs one entry in this
//! process, so any other payload that `open_entry` accepts is a forgery:
//! the oracle is exact. Inputs either are an envelope's bytes or patch the
//! genuine envelope's encoding (the first byte chooses), so the fuzzer
//! explores near-valid envelopes as well as arbitrary ones.
#![no_main]

use std::sync::OnceLock;

use ed25519_dalek::{Signer as _, SigningKey};
use libfuzzer_sys::fuzz_target;
use meridian_core::log::StoredEntry;
use meridian_core::proto::{log_entry, DatasetRecord, Envelope, LogEntry, Signature};
use meridian_core::sign::{self, KeyId, KeyRing, RECORD_TYPE};
use prost::Message as _;

struct Fixture {
    ring: KeyRing,
    genuine: Vec<u8>,
    payload: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let ring = KeyRing::new("polar", &[key.verifying_key()], 1).expect("a valid ring");
        let entry = LogEntry {
            origin: "polar".into(),
            index: 1,
            body: Some(log_entry::Body::Record(DatasetRecord {
                id: "ds-1".into(),
                origin: "polar".into(),
                version: 1,
                title: "Sea ice thickness".into(),
                ..Default::default()
            })),
        };
        let payload = entry.encode_to_vec();
        let sig = key.sign(&sign::pae(RECORD_TYPE, &payload));
        let envelope = Envelope {
            payload: payload.clone(),
            payload_type: RECORD_TYPE.into(),
            signatures: vec![Signature {
                key_id: KeyId::of(&key.verifying_key()).to_string(),
                sig: sig.to_bytes().to_vec(),
            }],
        };
        Fixture {
            ring,
            genuine: envelope.encode_to_vec(),
            payload,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        // Patches of (position, xor) pairs over the genuine encoding.
        let mut bytes = fixture.genuine.clone();
        for patch in rest.chunks_exact(2) {
            let at = patch[0] as usize % bytes.len();
            bytes[at] ^= patch[1];
        }
        bytes
    };
    if bytes.len() > sign::MAX_ENVELOPE_BYTES {
        return;
    }
    // The one decoder of stored entries must agree on what it reads.
    let _ = StoredEntry::decode(&bytes);
    let Ok(envelope) = Envelope::decode(bytes.as_slice()) else {
        return;
    };
    if let Ok((entry, verified)) = sign::open_entry(&envelope, &fixture.ring) {
        assert_eq!(
            envelope.payload, fixture.payload,
            "an envelope verified with a payload the key never signed"
        );
        assert_eq!(entry.origin, "polar");
        assert!(!verified.key_ids.is_empty());
    }
    let _ = sign::open_checkpoint(&envelope, &fixture.ring);
});
