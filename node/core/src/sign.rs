//! Signed envelopes and node keys: DSSE v1 semantics with Ed25519.
//!
//! Every record, key set and checkpoint travels as an [`Envelope`]; its
//! signatures are Ed25519 over the DSSE pre-authentication encoding
//! ([`pae`], <https://github.com/secure-systems-lab/dsse/blob/master/protocol.md>).
//! The payload bytes are forwarded as they are, so no canonical encoding is
//! needed. DESIGN.md §3 and §5 fix the rules this module enforces:
//!
//! - the envelope size is bounded before any crypto or parsing;
//! - the payload type is specific and checked before the signatures;
//! - a signature's `key_id` is a hint that selects a key of the ring; it
//!   grants nothing (the signature must verify under that key);
//! - one validity rule for single and batch verification, ZIP-215's
//!   cofactored equation with a canonical `s`, so that every node accepts
//!   the same signatures however its batches fall (see
//!   `docs/decisions/signature-validity.md`); weak and mixed-order keys
//!   never enter a [`KeyRing`];
//! - payloads are parsed only after they verified ([`open_entry`],
//!   [`open_checkpoint`]).
//!
//! Signatures under keys the ring does not hold are skipped, not fatal:
//! during a rotation an entry carries signatures of key set N and N+1 and is
//! verified against each ring in turn, and a checkpoint may carry witness
//! cosignatures next to the origin's. A signature that names a key of the
//! ring and does not verify fails the whole envelope.
//!
//! Which key set applies at which log position, expiry and revocation are
//! the trust store's concern; this module checks an envelope against the
//! ring it is given.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature as Ed25519Signature, Signer as _, SigningKey, VerifyingKey};
use prost::Message as _;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::proto::{log_entry, Checkpoint, Envelope, KeySet, LogEntry, PublicKey, Signature};

/// Payload type of an envelope whose payload is a `LogEntry` holding a record.
pub const RECORD_TYPE: &str = "application/vnd.meridian.record.v1+proto";
/// Payload type of an envelope whose payload is a `LogEntry` holding a key set.
pub const KEYSET_TYPE: &str = "application/vnd.meridian.keyset.v1+proto";
/// Payload type of an envelope whose payload is a `LogEntry` holding the
/// origin's audience (who its FEDERATION and GROUPS records are for).
pub const AUDIENCE_TYPE: &str = "application/vnd.meridian.audience.v1+proto";
/// Payload type of an envelope whose payload is a `Checkpoint`.
pub const CHECKPOINT_TYPE: &str = "application/vnd.meridian.checkpoint.v1+proto";

/// The largest envelope (protobuf-encoded) this node verifies: 1 MiB.
pub const MAX_ENVELOPE_BYTES: usize = 1 << 20;

/// Most signatures one envelope may carry. The signature list is covered by
/// no signature, so a relay could pad it: this bounds what a padded entry
/// adds (about 3.5 KiB) to what this node stores and hands on. An honest
/// envelope carries a threshold of one key set's keys, of two during a
/// rotation or a handover of roots, and witness cosignatures on a
/// checkpoint.
pub const MAX_SIGNATURES: usize = 32;

/// Domain separation for key ids, so a key id is never a hash that some
/// other protocol also computes over the same key.
const KEY_ID_DOMAIN: &[u8] = b"meridian key id v1 ed25519\0";
const KEY_ID_PREFIX: &str = "ed25519:";
/// Bytes of the SHA-256 kept in a key id.
const KEY_ID_BYTES: usize = 16;

/// Untrusted text copied into an error is cut to this many characters.
const MAX_ERROR_TEXT: usize = 80;

/// The first line of a key file; the version is refused if unknown.
const KEY_FILE_MAGIC: &str = "meridian-node-key";
const KEY_FILE_VERSION: &str = "v1";
/// A key file is a few lines; anything longer is not one.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// DSSE v1 pre-authentication encoding:
/// `"DSSEv1" SP len(type) SP type SP len(payload) SP payload`, lengths in
/// ASCII decimal bytes. This is what is signed, never the payload alone, so
/// a signature cannot be moved to another payload type.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let type_len = payload_type.len().to_string();
    let payload_len = payload.len().to_string();
    let mut out = Vec::with_capacity(
        10 + type_len.len() + payload_type.len() + payload_len.len() + payload.len(),
    );
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(type_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// The id of an Ed25519 public key: `ed25519:` and the first 16 bytes of
/// `SHA-256(domain ‖ key)` in lowercase hex. It is a hash of the key, so two
/// keys never share an id and an id is never reused for another key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// The id of the key with these (compressed Edwards point) bytes.
    pub fn from_key_bytes(key: &[u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(KEY_ID_DOMAIN);
        h.update(key);
        let digest = h.finalize();
        Self(format!(
            "{KEY_ID_PREFIX}{}",
            hex::encode(&digest[..KEY_ID_BYTES])
        ))
    }

    /// The id of `key`.
    pub fn of(key: &VerifyingKey) -> Self {
        Self::from_key_bytes(key.as_bytes())
    }

    /// The text form, as carried in `Signature.key_id` and `PublicKey.key_id`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A text that is not a key id (`ed25519:` and 32 lowercase hex digits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a key id (expected ed25519: and 32 lowercase hex digits)")]
pub struct ParseKeyIdError(String);

impl FromStr for KeyId {
    type Err = ParseKeyIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = s.strip_prefix(KEY_ID_PREFIX).is_some_and(|digits| {
            digits.len() == 2 * KEY_ID_BYTES
                && digits
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseKeyIdError(truncate(s)))
        }
    }
}

/// Why an envelope, a key set or a key file was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SignError {
    /// The envelope is larger than [`MAX_ENVELOPE_BYTES`]; nothing else was
    /// looked at.
    #[error("envelope of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    /// The envelope's payload type is not the one the caller expects.
    #[error("payload type `{found}` where `{expected}` was expected")]
    WrongPayloadType { expected: String, found: String },
    /// The envelope carries no signature.
    #[error("envelope has no signature")]
    NoSignature,
    /// The envelope carries more than [`MAX_SIGNATURES`] signatures.
    #[error("envelope has {count} signatures, more than the {max} allowed")]
    TooManySignatures { count: usize, max: usize },
    /// A signature's key id is not one (`ed25519:` and 32 hex digits).
    #[error("signature {position} names {hint}, not a key id")]
    NotAKeyId { position: usize, hint: String },
    /// Two signatures name the same key: a signer signs an envelope once.
    #[error("key {0} signs the envelope more than once")]
    DuplicateSignature(KeyId),
    /// No signature names a key of the ring; the first hint is given.
    #[error("no signature is by a key of the origin (first key id seen: `{0}`)")]
    UnknownKey(String),
    /// A signature names a key of the ring and does not verify under it.
    #[error("signature by key {key_id} does not verify")]
    BadSignature { key_id: KeyId },
    /// A signature naming a key of the ring is not 64 bytes.
    #[error("signature by key {key_id} is {len} bytes, not 64")]
    MalformedSignature { key_id: KeyId, len: usize },
    /// A key set holds bytes that are not an Ed25519 public key.
    #[error("key `{key_id}` is malformed: {reason}")]
    MalformedKey {
        key_id: String,
        reason: &'static str,
    },
    /// A key set holds a key of small order or with a torsion component:
    /// signatures under it prove nothing, or not the same thing to every
    /// verifier.
    #[error("key {key_id} is weak (small order or mixed order)")]
    WeakKey { key_id: KeyId },
    /// A key set names a key with an id that is not the key's own.
    #[error("key listed as `{claimed}` has id {derived}")]
    KeyIdMismatch { claimed: String, derived: KeyId },
    /// A key set lists the same key twice.
    #[error("key {0} is listed twice")]
    DuplicateKey(KeyId),
    /// A key set's threshold is 0 or larger than its number of keys.
    #[error("threshold {threshold} is not between 1 and the {keys} keys of the set")]
    InvalidThreshold { threshold: u32, keys: usize },
    /// Fewer distinct keys of the ring signed than its threshold requires.
    #[error("{have} distinct keys signed, {need} required")]
    ThresholdNotMet { have: usize, need: u32 },
    /// The payload verified but is not a valid message of its type.
    #[error("signed payload does not decode")]
    Decode(#[source] prost::DecodeError),
    /// The payload type and the decoded body disagree (a record under the
    /// key-set type, or no body at all).
    #[error("payload type `{payload_type}` carries {body}")]
    PayloadMismatch {
        payload_type: String,
        body: &'static str,
    },
    /// The payload speaks for another origin than the ring's.
    #[error("payload is for origin `{found}`, the keys are origin `{expected}`'s")]
    OriginMismatch { expected: String, found: String },
    /// A checkpoint's root is not a 32-byte hash.
    #[error("checkpoint root is {len} bytes, not 32")]
    BadCheckpointRoot { len: usize },
    /// The entry is signed by a key that an earlier key set listed and a
    /// later one dropped: it signs nothing at or after that set's position.
    #[error(
        "key {key_id} was retired by the key set at log index {retired_at}; it is not valid here"
    )]
    RetiredKey { key_id: KeyId, retired_at: u64 },
    /// A checkpoint that meets its threshold only with a key revoked from
    /// before its size: it vouches for entries the key may have forged.
    #[error(
        "checkpoint of size {size} is signed by {key_id}, revoked from log index {from}; \
         it vouches for entries the key may have forged"
    )]
    RevokedCheckpoint { key_id: KeyId, from: u64, size: u64 },
    /// A key set that does not follow the chain's latest (a skipped set).
    #[error("key set version {found} does not follow version {latest}: a chain goes N to N+1 (a skipped set)")]
    KeySetSkipped { latest: u64, found: u64 },
    /// A key set with a version the chain already holds (a replayed set).
    #[error("key set version {found} is not newer than version {latest} (a replayed set)")]
    KeySetReplayed { latest: u64, found: u64 },
    /// A key set at a log position the chain cannot take (not entry 0 for
    /// the first set, not after the latest, not announced).
    #[error("key set at log index {index}: {message}")]
    KeySetPosition { index: u64, message: String },
    /// The first key set does not list, or is not signed by, the root key
    /// pinned for the origin.
    #[error("the first key set is not signed by the pinned root key {pinned}")]
    PinnedRootMissing { pinned: KeyId },
    /// A key set's expiry is missing, unreadable or beyond the cap.
    #[error("key set expiry: {0}")]
    KeySetExpiry(String),
    /// No key set covers this log position (the chain is empty).
    #[error("no key set of the origin is known for log index {0}")]
    NoKeySet(u64),
    /// A key file cannot be used; the message names the file and the reason.
    #[error("key file `{}`: {problem}", path.display())]
    KeyFile {
        path: PathBuf,
        problem: KeyFileProblem,
    },
}

/// What is wrong with a key file (inside [`SignError::KeyFile`]).
#[derive(Debug, thiserror::Error)]
pub enum KeyFileProblem {
    /// Group or others may access it. Fix: `chmod 600`.
    #[error("mode {mode:04o} gives group or others access; it must be 0600 or stricter")]
    TooOpen { mode: u32 },
    /// Not a regular file.
    #[error("not a regular file")]
    NotAFile,
    /// Not a node key file of a version this node reads.
    #[error("not a node key file: {0}")]
    Format(String),
    /// Reading or writing failed (an existing file on save is
    /// `ErrorKind::AlreadyExists`; a missing one on load is `NotFound`).
    #[error("{0}")]
    Io(io::Error),
}

/// A copy keeps an I/O error's kind and message (an `io::Error` is not
/// `Clone`).
impl Clone for KeyFileProblem {
    fn clone(&self) -> Self {
        match self {
            Self::TooOpen { mode } => Self::TooOpen { mode: *mode },
            Self::NotAFile => Self::NotAFile,
            Self::Format(message) => Self::Format(message.clone()),
            Self::Io(e) => Self::Io(io::Error::new(e.kind(), e.to_string())),
        }
    }
}

fn key_file_error(path: &Path, problem: KeyFileProblem) -> SignError {
    SignError::KeyFile {
        path: path.to_owned(),
        problem,
    }
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_ERROR_TEXT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// This node's identity signing key. The secret is zeroed on drop.
pub struct NodeKey {
    signing: SigningKey,
    key_id: KeyId,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl NodeKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Self {
        Self::from_signing_key(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    fn from_signing_key(signing: SigningKey) -> Self {
        let key_id = KeyId::of(&signing.verifying_key());
        Self { signing, key_id }
    }

    /// A key from its 32-byte seed (as [`NodeKey::seed`] gives it).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self::from_signing_key(SigningKey::from_bytes(seed))
    }

    /// The secret seed, for handing a root key from the CLI to the node
    /// over the operator-only admin socket. Zeroed on drop.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// The id of this key.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// A secret for `purpose` derived from this key's seed (HMAC-SHA256 of
    /// the purpose under the seed, domain-separated), so secrets of the
    /// node need no file of their own and differ from purpose to purpose.
    pub fn derive_secret(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let mut message = Vec::from(&b"meridian derived secret v1\0"[..]);
        message.extend_from_slice(purpose.as_bytes());
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.signing.as_bytes());
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(ring::hmac::sign(&key, &message).as_ref());
        secret
    }

    /// The public half as a key set lists it.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            key_id: self.key_id.to_string(),
            ed25519: self.verifying_key().to_bytes().to_vec(),
        }
    }

    /// An envelope of `payload` signed by this key. Verifiers refuse an
    /// envelope over [`MAX_ENVELOPE_BYTES`]; bounding what is signed is the
    /// caller's job.
    pub fn sign(&self, payload_type: &str, payload: Vec<u8>) -> Envelope {
        let mut envelope = Envelope {
            payload,
            payload_type: payload_type.to_owned(),
            signatures: Vec::new(),
        };
        self.cosign(&mut envelope);
        envelope
    }

    /// Adds this key's signature to an envelope (a second key of a
    /// threshold set, the new key of a rotation, a witness). Does nothing if
    /// this key already signed it: Ed25519 signatures are deterministic.
    pub fn cosign(&self, envelope: &mut Envelope) {
        if envelope
            .signatures
            .iter()
            .any(|s| s.key_id == self.key_id.as_str())
        {
            return;
        }
        let message = pae(&envelope.payload_type, &envelope.payload);
        envelope.signatures.push(Signature {
            key_id: self.key_id.to_string(),
            sig: self.signing.sign(&message).to_bytes().to_vec(),
        });
    }

    /// Writes the key to a new file at `path` with mode 0600. Refuses to
    /// replace an existing file, so a key is never lost to a second `init`.
    ///
    /// Format (versioned, text):
    /// ```text
    /// meridian-node-key v1
    /// ed25519-seed <base64 of the 32-byte seed>
    /// key-id ed25519:…
    /// ```
    pub fn save(&self, path: &Path) -> Result<(), SignError> {
        let io_err = |e| key_file_error(path, KeyFileProblem::Io(e));
        let text = Zeroizing::new(format!(
            "{KEY_FILE_MAGIC} {KEY_FILE_VERSION}\ned25519-seed {}\nkey-id {}\n",
            Zeroizing::new(BASE64.encode(self.signing.as_bytes())).as_str(),
            self.key_id
        ));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io_err)?;
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all());
        if let Err(e) = written {
            drop(file);
            // Do not leave half a key behind: the next start would refuse it.
            let _ = std::fs::remove_file(path);
            return Err(io_err(e));
        }
        // Make the new directory entry durable too: a key that vanishes in
        // a crash would give the node a new identity.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)?;
        }
        Ok(())
    }

    /// Reads a key written by [`NodeKey::save`]. Refuses a file that group
    /// or others may access (as ssh does), naming the file and its mode.
    pub fn load(path: &Path) -> Result<Self, SignError> {
        let err = |problem| key_file_error(path, problem);
        let file = File::open(path).map_err(|e| err(KeyFileProblem::Io(e)))?;
        // Check the opened file, not the path: no window to swap it.
        let meta = file.metadata().map_err(|e| err(KeyFileProblem::Io(e)))?;
        if !meta.is_file() {
            return Err(err(KeyFileProblem::NotAFile));
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(err(KeyFileProblem::TooOpen { mode }));
        }
        let mut text = Zeroizing::new(String::new());
        file.take(MAX_KEY_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| err(KeyFileProblem::Io(e)))?;
        if text.len() as u64 > MAX_KEY_FILE_BYTES {
            return Err(err(KeyFileProblem::Format("file is too long".into())));
        }
        Self::parse_key_file(&text).map_err(|reason| err(KeyFileProblem::Format(reason)))
    }

    fn parse_key_file(text: &str) -> Result<Self, String> {
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        match header.split_once(' ') {
            Some((KEY_FILE_MAGIC, KEY_FILE_VERSION)) => {}
            Some((KEY_FILE_MAGIC, version)) => {
                return Err(format!(
                    "unsupported version `{}` (this node reads {KEY_FILE_VERSION})",
                    truncate(version)
                ))
            }
            _ => return Err(format!("first line is not `{KEY_FILE_MAGIC} …`")),
        }
        let seed_b64 = lines
            .next()
            .and_then(|l| l.strip_prefix("ed25519-seed "))
            .ok_or("second line is not `ed25519-seed …`")?;
        let mut seed = Zeroizing::new([0u8; 32]);
        match BASE64.decode_slice(seed_b64.trim(), seed.as_mut()) {
            Ok(32) => {}
            _ => return Err("the seed is not 32 bytes of base64".into()),
        }
        let key = Self::from_signing_key(SigningKey::from_bytes(&seed));
        let recorded = lines
            .next()
            .and_then(|l| l.strip_prefix("key-id "))
            .ok_or("third line is not `key-id …`")?;
        if recorded.trim() != key.key_id.as_str() {
            return Err(format!(
                "recorded key id `{}` is not the seed's ({}); the file is damaged",
                truncate(recorded.trim()),
                key.key_id
            ));
        }
        if lines.any(|l| !l.trim().is_empty()) {
            return Err("unexpected lines after `key-id`".into());
        }
        Ok(key)
    }
}

/// The keys an origin signs with and how many must sign: the trust side of
/// a [`KeySet`]. Only sound keys get in (see [`KeyRing::from_key_set`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRing {
    origin: String,
    version: u64,
    keys: BTreeMap<KeyId, RingKey>,
    threshold: u32,
}

/// A key of a ring, decoded once for both verifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RingKey {
    key: VerifyingKey,
    zip215: ed25519_zebra::VerificationKey,
}

impl RingKey {
    fn new(key: VerifyingKey) -> Self {
        let zip215 = ed25519_zebra::VerificationKey::try_from(key.to_bytes())
            .expect("a vetted key is a curve point");
        Self { key, zip215 }
    }
}

impl KeyRing {
    /// The ring of a published key set. Refuses a key that is not 32 bytes,
    /// not a canonical point encoding, weak (small order or with a torsion
    /// component), listed under an id that is not its own, or listed twice,
    /// and a threshold outside `1..=keys`.
    pub fn from_key_set(set: &KeySet) -> Result<Self, SignError> {
        let mut keys = BTreeMap::new();
        for listed in &set.keys {
            let key = parse_key(&listed.key_id, &listed.ed25519)?;
            let id = KeyId::of(&key);
            if listed.key_id != id.as_str() {
                return Err(SignError::KeyIdMismatch {
                    claimed: truncate(&listed.key_id),
                    derived: id,
                });
            }
            if keys.insert(id.clone(), RingKey::new(key)).is_some() {
                return Err(SignError::DuplicateKey(id));
            }
        }
        Self::build(set.origin.clone(), set.version, keys, set.threshold)
    }

    /// The root ring of a published key set: its root keys and root
    /// threshold, or, in the legacy form that lists no root keys, its
    /// signing keys and threshold. Same checks as [`KeyRing::from_key_set`].
    pub fn root_of_key_set(set: &KeySet) -> Result<Self, SignError> {
        if set.root_keys.is_empty() {
            return Self::from_key_set(set);
        }
        Self::from_key_set(&KeySet {
            keys: set.root_keys.clone(),
            threshold: set.root_threshold,
            ..KeySet::default()
        })
        .map(|ring| Self {
            origin: set.origin.clone(),
            version: set.version,
            ..ring
        })
    }

    /// Whether both rings hold the same keys with the same threshold.
    pub fn same_keys(&self, other: &KeyRing) -> bool {
        self.threshold == other.threshold && self.keys.keys().eq(other.keys.keys())
    }

    /// A ring of the given keys (version 0), with the same checks as
    /// [`KeyRing::from_key_set`].
    pub fn new(origin: &str, keys: &[VerifyingKey], threshold: u32) -> Result<Self, SignError> {
        let mut map = BTreeMap::new();
        for key in keys {
            let key = parse_key(KeyId::of(key).as_str(), key.as_bytes())?;
            let id = KeyId::of(&key);
            if map.insert(id.clone(), RingKey::new(key)).is_some() {
                return Err(SignError::DuplicateKey(id));
            }
        }
        Self::build(origin.to_owned(), 0, map, threshold)
    }

    fn build(
        origin: String,
        version: u64,
        keys: BTreeMap<KeyId, RingKey>,
        threshold: u32,
    ) -> Result<Self, SignError> {
        if threshold == 0 || threshold as usize > keys.len() {
            return Err(SignError::InvalidThreshold {
                threshold,
                keys: keys.len(),
            });
        }
        Ok(Self {
            origin,
            version,
            keys,
            threshold,
        })
    }

    /// The node id whose keys these are.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The key set version this ring was built from.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// How many distinct keys must sign.
    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// The key with this id, if the ring holds it.
    pub fn key(&self, id: &KeyId) -> Option<&VerifyingKey> {
        self.keys.get(id).map(|k| &k.key)
    }

    /// The ids of the ring's keys, in order.
    pub fn key_ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.keys()
    }

    /// The ring without the keys `removed`, with the same threshold; `None`
    /// when the keys left cannot meet it (nothing would verify).
    pub fn without(&self, removed: &[&KeyId]) -> Option<KeyRing> {
        let keys: BTreeMap<KeyId, RingKey> = self
            .keys
            .iter()
            .filter(|(id, _)| !removed.contains(id))
            .map(|(id, key)| (id.clone(), key.clone()))
            .collect();
        if (keys.len() as u64) < u64::from(self.threshold) {
            return None;
        }
        Some(KeyRing {
            keys,
            ..self.clone()
        })
    }
}

/// Decodes and vets one public key; `listed_as` names it in errors.
fn parse_key(listed_as: &str, bytes: &[u8]) -> Result<VerifyingKey, SignError> {
    let malformed = |reason| SignError::MalformedKey {
        key_id: truncate(listed_as),
        reason,
    };
    let bytes: &[u8; 32] = bytes.try_into().map_err(|_| malformed("not 32 bytes"))?;
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| malformed("not a curve point"))?;
    let point = key.to_edwards();
    if point.compress().as_bytes() != bytes {
        return Err(malformed("not the canonical encoding of its point"));
    }
    // `is_weak` catches the small-order points; a mixed-order key (a sound
    // key plus a torsion point) is refused too: no honest key has one.
    if key.is_weak() || !point.is_torsion_free() {
        return Err(SignError::WeakKey {
            key_id: KeyId::from_key_bytes(bytes),
        });
    }
    Ok(key)
}

/// What a successful verification proved: these distinct keys of the ring
/// signed the envelope's payload under its payload type, and they meet the
/// ring's threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Verified {
    /// The keys whose signatures verified, in order.
    pub key_ids: Vec<KeyId>,
}

/// A signature that names a key of the ring, ready to verify.
struct Candidate<'r> {
    key_id: KeyId,
    key: &'r ed25519_zebra::VerificationKey,
    sig: Ed25519Signature,
}

/// The checks before any crypto, and the signatures left to verify.
struct Prepared<'r> {
    candidates: Vec<Candidate<'r>>,
    first_unknown: Option<String>,
}

fn check_size(envelope: &Envelope) -> Result<(), SignError> {
    let size = envelope.encoded_len();
    if size > MAX_ENVELOPE_BYTES {
        return Err(SignError::TooLarge {
            size,
            max: MAX_ENVELOPE_BYTES,
        });
    }
    Ok(())
}

fn prepare<'r>(
    envelope: &Envelope,
    expected_type: &str,
    ring: &'r KeyRing,
) -> Result<Prepared<'r>, SignError> {
    check_size(envelope)?;
    if envelope.payload_type != expected_type {
        return Err(SignError::WrongPayloadType {
            expected: expected_type.to_owned(),
            found: truncate(&envelope.payload_type),
        });
    }
    if envelope.signatures.is_empty() {
        return Err(SignError::NoSignature);
    }
    if envelope.signatures.len() > MAX_SIGNATURES {
        return Err(SignError::TooManySignatures {
            count: envelope.signatures.len(),
            max: MAX_SIGNATURES,
        });
    }
    // Every signature is well formed, known key or not, and names its key
    // once: what a relay could add to an envelope is bounded, and a
    // signature repeated is not verified again and again.
    let mut named = BTreeSet::new();
    let mut candidates = Vec::with_capacity(envelope.signatures.len());
    let mut first_unknown = None;
    for (position, signature) in envelope.signatures.iter().enumerate() {
        let key_id = KeyId::from_str(&signature.key_id).map_err(|_| SignError::NotAKeyId {
            position,
            hint: format!("`{}`", truncate(&signature.key_id)),
        })?;
        let sig = Ed25519Signature::from_slice(&signature.sig).map_err(|_| {
            SignError::MalformedSignature {
                key_id: key_id.clone(),
                len: signature.sig.len(),
            }
        })?;
        if !named.insert(key_id.clone()) {
            return Err(SignError::DuplicateSignature(key_id));
        }
        let Some(key) = ring.keys.get(&key_id) else {
            first_unknown.get_or_insert_with(|| key_id.to_string());
            continue;
        };
        candidates.push(Candidate {
            key_id,
            key: &key.zip215,
            sig,
        });
    }
    Ok(Prepared {
        candidates,
        first_unknown,
    })
}

impl Prepared<'_> {
    /// Verifies each candidate signature on its own over `message` (the
    /// envelope's [`pae`]), then gives the verdict.
    fn verify_each(self, message: &[u8], ring: &KeyRing) -> Result<Verified, SignError> {
        for c in &self.candidates {
            c.key
                .verify(&c.sig, message)
                .map_err(|_| SignError::BadSignature {
                    key_id: c.key_id.clone(),
                })?;
        }
        self.conclude(ring)
    }

    /// The verdict once every candidate signature verified.
    fn conclude(self, ring: &KeyRing) -> Result<Verified, SignError> {
        let signed: BTreeSet<KeyId> = self.candidates.into_iter().map(|c| c.key_id).collect();
        if signed.len() >= ring.threshold as usize {
            return Ok(Verified {
                key_ids: signed.into_iter().collect(),
            });
        }
        match self.first_unknown {
            Some(hint) if signed.is_empty() => Err(SignError::UnknownKey(hint)),
            _ => Err(SignError::ThresholdNotMet {
                have: signed.len(),
                need: ring.threshold,
            }),
        }
    }
}

/// Verifies an envelope against an origin's keys: size bound, then payload
/// type, then each signature whose key id names a key of `ring` (over the
/// [`pae`], by the ZIP-215 rule: `s` canonical, `[8][s]B = [8]R + [8][k]A`);
/// distinct keys count towards the ring's threshold. Signatures naming
/// other keys are skipped.
pub fn verify(
    envelope: &Envelope,
    expected_type: &str,
    ring: &KeyRing,
) -> Result<Verified, SignError> {
    let prepared = prepare(envelope, expected_type, ring)?;
    let message = pae(&envelope.payload_type, &envelope.payload);
    prepared.verify_each(&message, ring)
}

/// Verifies many envelopes, each against its own ring; the result `i` is
/// what [`verify`] returns for item `i`. All signatures go through one
/// Ed25519 batch verification, which folds the signatures of each key into
/// one term and so costs about a quarter of verifying one by one; if the
/// batch fails, each envelope is verified on its own to name the bad ones.
///
/// Batch and single verification check the same cofactored equation, so
/// they accept exactly the same signatures (up to the batch's 2^-128 chance
/// of missing a bad one); with the cofactorless equation of
/// `verify_strict` a signer could put a torsion point in `R` and have some
/// batches accept what single verification refuses.
pub fn verify_batch(
    items: &[(&Envelope, &KeyRing)],
    expected_type: &str,
) -> Vec<Result<Verified, SignError>> {
    let prepared: Vec<Result<(Prepared<'_>, Vec<u8>), SignError>> = items
        .iter()
        .map(|&(envelope, ring)| {
            let prepared = prepare(envelope, expected_type, ring)?;
            Ok((prepared, pae(&envelope.payload_type, &envelope.payload)))
        })
        .collect();
    let mut batch = ed25519_zebra::batch::Verifier::new();
    for (p, message) in prepared.iter().flatten() {
        for c in &p.candidates {
            let key = ed25519_zebra::VerificationKeyBytes::from(*c.key);
            batch.queue((key, c.sig, message));
        }
    }
    let batch_ok = batch.verify(rand::thread_rng()).is_ok();

    prepared
        .into_iter()
        .zip(items)
        .map(|(prepared, &(_, ring))| {
            let (p, message) = prepared?;
            if batch_ok {
                p.conclude(ring)
            } else {
                p.verify_each(&message, ring)
            }
        })
        .collect()
}

fn check_origin(ring: &KeyRing, found: &str) -> Result<(), SignError> {
    if found != ring.origin {
        return Err(SignError::OriginMismatch {
            expected: ring.origin.clone(),
            found: truncate(found),
        });
    }
    Ok(())
}

/// Verifies a log entry envelope (record or key set) and only then decodes
/// it. The body must be what the payload type says, and the entry and its
/// body must name the ring's origin.
pub fn open_entry(envelope: &Envelope, ring: &KeyRing) -> Result<(LogEntry, Verified), SignError> {
    let payload_type = entry_type(envelope)?;
    if payload_type == FUTURE_ENTRY {
        // A kind a later version adds: verified by the signing keys like a
        // record; its body is unknown here, so it is about no record.
        let verified = verify(envelope, &envelope.payload_type, ring)?;
        let entry = LogEntry::decode(envelope.payload.as_slice()).map_err(SignError::Decode)?;
        if entry.body.is_some() {
            return Err(SignError::PayloadMismatch {
                payload_type: truncate(&envelope.payload_type),
                body: "a known kind of entry",
            });
        }
        check_origin(ring, &entry.origin)?;
        return Ok((entry, verified));
    }
    let verified = verify(envelope, payload_type, ring)?;
    decode_entry(envelope, payload_type, ring).map(|entry| (entry, verified))
}

/// [`open_entry`] for many entries of one origin: the record entries are
/// verified in one batch ([`verify_batch`]), then each is decoded.
pub fn open_entries(
    envelopes: &[&Envelope],
    ring: &KeyRing,
) -> Vec<Result<(LogEntry, Verified), SignError>> {
    let records: Vec<(usize, (&Envelope, &KeyRing))> = envelopes
        .iter()
        .enumerate()
        .filter(|(_, e)| e.payload_type == RECORD_TYPE)
        .map(|(i, e)| (i, (*e, ring)))
        .collect();
    let items: Vec<(&Envelope, &KeyRing)> = records.iter().map(|(_, item)| *item).collect();
    let mut batched: BTreeMap<usize, Result<Verified, SignError>> = records
        .iter()
        .map(|(i, _)| *i)
        .zip(verify_batch(&items, RECORD_TYPE))
        .collect();
    envelopes
        .iter()
        .enumerate()
        .map(|(i, envelope)| match batched.remove(&i) {
            Some(verified) => {
                let verified = verified?;
                decode_entry(envelope, RECORD_TYPE, ring).map(|entry| (entry, verified))
            }
            None => open_entry(envelope, ring),
        })
        .collect()
}

/// What [`entry_type`] answers for a log entry of a kind a later version
/// adds (`application/vnd.meridian.<kind>.v<n>+proto`, not a checkpoint):
/// it verifies, is stored and relayed, and is about no record, so a node
/// need not be upgraded before its peers publish a new kind.
const FUTURE_ENTRY: &str = "future log entry";

fn is_future_entry_type(payload_type: &str) -> bool {
    payload_type
        .strip_prefix("application/vnd.meridian.")
        .and_then(|rest| rest.strip_suffix("+proto"))
        .is_some_and(|kind| {
            !kind.is_empty()
                && kind.len() <= 64
                && kind
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        })
        && payload_type != CHECKPOINT_TYPE
}

/// The payload type of a log entry envelope, after the size bound.
fn entry_type(envelope: &Envelope) -> Result<&'static str, SignError> {
    check_size(envelope)?;
    match envelope.payload_type.as_str() {
        RECORD_TYPE => Ok(RECORD_TYPE),
        KEYSET_TYPE => Ok(KEYSET_TYPE),
        AUDIENCE_TYPE => Ok(AUDIENCE_TYPE),
        other if is_future_entry_type(other) => Ok(FUTURE_ENTRY),
        other => Err(SignError::WrongPayloadType {
            expected: format!("{RECORD_TYPE}, {KEYSET_TYPE} or {AUDIENCE_TYPE}"),
            found: truncate(other),
        }),
    }
}

/// Decodes a verified entry and checks it against its type and origin.
fn decode_entry(
    envelope: &Envelope,
    payload_type: &str,
    ring: &KeyRing,
) -> Result<LogEntry, SignError> {
    let entry = LogEntry::decode(envelope.payload.as_slice()).map_err(SignError::Decode)?;
    let body_origin = match (payload_type, &entry.body) {
        (RECORD_TYPE, Some(log_entry::Body::Record(record))) => &record.origin,
        (KEYSET_TYPE, Some(log_entry::Body::KeySet(set))) => &set.origin,
        (AUDIENCE_TYPE, Some(log_entry::Body::Audience(audience))) => &audience.origin,
        (_, body) => {
            return Err(SignError::PayloadMismatch {
                payload_type: payload_type.to_owned(),
                body: match body {
                    Some(log_entry::Body::Record(_)) => "a record",
                    Some(log_entry::Body::KeySet(_)) => "a key set",
                    Some(log_entry::Body::Audience(_)) => "an audience",
                    None => "no body",
                },
            })
        }
    };
    check_origin(ring, &entry.origin)?;
    check_origin(ring, body_origin)?;
    Ok(entry)
}

/// Verifies a checkpoint envelope and only then decodes it; the checkpoint
/// must name the ring's origin and carry a 32-byte root.
pub fn open_checkpoint(
    envelope: &Envelope,
    ring: &KeyRing,
) -> Result<(Checkpoint, Verified), SignError> {
    let verified = verify(envelope, CHECKPOINT_TYPE, ring)?;
    let checkpoint = Checkpoint::decode(envelope.payload.as_slice()).map_err(SignError::Decode)?;
    check_origin(ring, &checkpoint.origin)?;
    if checkpoint.root.len() != 32 {
        return Err(SignError::BadCheckpointRoot {
            len: checkpoint.root.len(),
        });
    }
    Ok((checkpoint, verified))
}

#[cfg(test)]
mod tests {
    #[test]
    fn derived_secrets_differ_by_purpose_and_repeat() {
        let key = NodeKey::generate();
        assert_ne!(*key.derive_secret("a"), *key.derive_secret("b"));
        assert_eq!(*key.derive_secret("a"), *key.derive_secret("a"));
        assert_ne!(
            *key.derive_secret("a"),
            *NodeKey::generate().derive_secret("a")
        );
    }

    use super::*;
    use crate::proto::DatasetRecord;
    use proptest::prelude::*;

    const ORIGIN: &str = "node-a";

    fn ring_of(keys: &[&NodeKey], threshold: u32) -> KeyRing {
        let keys: Vec<_> = keys.iter().map(|k| k.verifying_key()).collect();
        KeyRing::new(ORIGIN, &keys, threshold).unwrap()
    }

    fn record_entry(origin: &str, index: u64) -> LogEntry {
        LogEntry {
            origin: origin.into(),
            index,
            body: Some(log_entry::Body::Record(DatasetRecord {
                origin: origin.into(),
                id: format!("doi:10.1234/{index}"),
                version: 1,
                title: "Sea ice thickness, Fram Strait".into(),
                ..Default::default()
            })),
        }
    }

    fn signed_record(key: &NodeKey, index: u64) -> Envelope {
        key.sign(RECORD_TYPE, record_entry(ORIGIN, index).encode_to_vec())
    }

    #[test]
    fn pae_matches_the_dsse_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    }

    #[test]
    fn key_ids_derive_from_the_key() {
        let (a, b) = (NodeKey::generate(), NodeKey::generate());
        assert_ne!(a.key_id(), b.key_id());
        assert_eq!(*a.key_id(), KeyId::of(&a.verifying_key()));
        let text = a.key_id().to_string();
        assert!(text.starts_with("ed25519:") && text.len() == 8 + 32);
        assert_eq!(text.parse::<KeyId>().unwrap(), *a.key_id());
        for bad in [
            "",
            "ed25519:",
            &text.to_uppercase(),
            &text[..text.len() - 1],
            &format!("{text}0"),
            &text.replace("ed25519", "x25519"),
        ] {
            assert!(bad.parse::<KeyId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_signed_envelope_verifies_and_says_by_whom() {
        let key = NodeKey::generate();
        let envelope = signed_record(&key, 7);
        let verified = verify(&envelope, RECORD_TYPE, &ring_of(&[&key], 1)).unwrap();
        assert_eq!(verified.key_ids, [key.key_id().clone()]);
    }

    proptest! {
        #[test]
        fn any_flipped_payload_byte_is_rejected(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let key = NodeKey::generate();
            let mut envelope = signed_record(&key, 1);
            let i = pos.index(envelope.payload.len());
            envelope.payload[i] ^= 1 << bit;
            let result = verify(&envelope, RECORD_TYPE, &ring_of(&[&key], 1));
            prop_assert!(
                matches!(&result, Err(SignError::BadSignature { key_id }) if key_id == key.key_id()),
                "{result:?}"
            );
        }

        #[test]
        fn any_flipped_signature_byte_is_rejected(pos in 0usize..64, bit in 0u8..8) {
            let key = NodeKey::generate();
            let mut envelope = signed_record(&key, 1);
            envelope.signatures[0].sig[pos] ^= 1 << bit;
            let result = verify(&envelope, RECORD_TYPE, &ring_of(&[&key], 1));
            prop_assert!(matches!(result, Err(SignError::BadSignature { .. })), "{result:?}");
        }
    }

    #[test]
    fn the_payload_type_is_signed_and_checked() {
        let key = NodeKey::generate();
        let ring = ring_of(&[&key], 1);
        let mut envelope = signed_record(&key, 1);
        let _ = verify(&envelope, RECORD_TYPE, &ring).unwrap();
        assert!(matches!(
            verify(&envelope, KEYSET_TYPE, &ring),
            Err(SignError::WrongPayloadType { .. })
        ));
        // Relabelled: the type matches what is expected, the signature does not.
        envelope.payload_type = KEYSET_TYPE.into();
        assert!(matches!(
            verify(&envelope, KEYSET_TYPE, &ring),
            Err(SignError::BadSignature { .. })
        ));
    }

    #[test]
    fn a_key_id_hint_grants_nothing() {
        let (trusted, other) = (NodeKey::generate(), NodeKey::generate());
        let mut envelope = signed_record(&other, 1);
        envelope.signatures[0].key_id = trusted.key_id().to_string();
        let result = verify(&envelope, RECORD_TYPE, &ring_of(&[&trusted], 1));
        assert!(
            matches!(&result, Err(SignError::BadSignature { key_id }) if key_id == trusted.key_id()),
            "{result:?}"
        );
    }

    #[test]
    fn unknown_keys_are_skipped_but_not_enough() {
        let (origin, witness) = (NodeKey::generate(), NodeKey::generate());
        let ring = ring_of(&[&origin], 1);
        let mut envelope = signed_record(&witness, 1);
        assert!(matches!(
            verify(&envelope, RECORD_TYPE, &ring),
            Err(SignError::UnknownKey(id)) if id == witness.key_id().as_str()
        ));
        // A witness cosignature next to the origin's does not get in the way.
        origin.cosign(&mut envelope);
        let verified = verify(&envelope, RECORD_TYPE, &ring).unwrap();
        assert_eq!(verified.key_ids, [origin.key_id().clone()]);
        envelope.signatures.clear();
        assert!(matches!(
            verify(&envelope, RECORD_TYPE, &ring),
            Err(SignError::NoSignature)
        ));
    }

    #[test]
    fn a_truncated_signature_is_malformed() {
        let key = NodeKey::generate();
        let mut envelope = signed_record(&key, 1);
        envelope.signatures[0].sig.pop();
        assert!(matches!(
            verify(&envelope, RECORD_TYPE, &ring_of(&[&key], 1)),
            Err(SignError::MalformedSignature { len: 63, .. })
        ));
    }

    /// The signature list is signed by no one, so a relay could pad it:
    /// with signatures of keys the ring does not hold (skipped, but stored
    /// and handed on), or with the genuine one again and again (each
    /// verified). Every signature must be well formed and name its key
    /// once, and there are at most [`MAX_SIGNATURES`].
    #[test]
    fn a_padded_signature_list_is_refused_before_any_crypto() {
        let key = NodeKey::generate();
        let ring = ring_of(&[&key], 1);
        let genuine = signed_record(&key, 1);
        let padded = |pad: &dyn Fn(&mut Envelope)| {
            let mut envelope = genuine.clone();
            pad(&mut envelope);
            verify(&envelope, RECORD_TYPE, &ring)
        };
        let others: Vec<NodeKey> = (0..MAX_SIGNATURES).map(|_| NodeKey::generate()).collect();
        // Up to the bound, unknown keys are skipped.
        let result = padded(&|e| others[1..].iter().for_each(|k| k.cosign(e)));
        assert_eq!(result.unwrap().key_ids, [key.key_id().clone()]);
        let result = padded(&|e| others.iter().for_each(|k| k.cosign(e)));
        assert!(
            matches!(
                result,
                Err(SignError::TooManySignatures { count: 33, max: 32 })
            ),
            "{result:?}"
        );
        let result = padded(&|e| {
            let again = e.signatures[0].clone();
            e.signatures.push(again);
        });
        assert!(
            matches!(&result, Err(SignError::DuplicateSignature(id)) if id == key.key_id()),
            "{result:?}"
        );
        let result = padded(&|e| {
            e.signatures.push(Signature {
                key_id: "x".repeat(4096),
                sig: vec![0; 64],
            })
        });
        let message = result.unwrap_err().to_string();
        assert!(message.starts_with("signature 1 names `xxx"), "{message}");
        assert!(message.len() < 200, "the hint is cut: {message}");
        let result = padded(&|e| {
            e.signatures.push(Signature {
                key_id: others[0].key_id().to_string(),
                sig: vec![0; 4096],
            })
        });
        assert!(
            matches!(&result, Err(SignError::MalformedSignature { key_id, len: 4096 }) if key_id == others[0].key_id()),
            "{result:?}"
        );
    }

    #[test]
    fn the_threshold_counts_distinct_keys() {
        let (a, b) = (NodeKey::generate(), NodeKey::generate());
        let ring = ring_of(&[&a, &b], 2);
        let mut envelope = signed_record(&a, 1);
        assert!(matches!(
            verify(&envelope, RECORD_TYPE, &ring),
            Err(SignError::ThresholdNotMet { have: 1, need: 2 })
        ));
        b.cosign(&mut envelope);
        let verified = verify(&envelope, RECORD_TYPE, &ring).unwrap();
        let mut both = vec![a.key_id().clone(), b.key_id().clone()];
        both.sort();
        assert_eq!(verified.key_ids, both);
    }

    #[test]
    fn an_oversized_envelope_is_refused_before_anything_else() {
        let key = NodeKey::generate();
        // Validly signed, but too large: the size alone decides, ahead of
        // the payload type (wrong here) and the signature (good here).
        let envelope = key.sign(CHECKPOINT_TYPE, vec![0; MAX_ENVELOPE_BYTES]);
        let ring = ring_of(&[&key], 1);
        for expected in [CHECKPOINT_TYPE, RECORD_TYPE] {
            match verify(&envelope, expected, &ring) {
                Err(SignError::TooLarge { size, max }) => {
                    assert!(size > max && max == MAX_ENVELOPE_BYTES)
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            open_entry(&envelope, &ring),
            Err(SignError::TooLarge { .. })
        ));
        // Just under the bound passes.
        let room = MAX_ENVELOPE_BYTES - signed_record(&key, 0).encoded_len();
        let fits = key.sign(CHECKPOINT_TYPE, vec![0; room]);
        assert!(fits.encoded_len() <= MAX_ENVELOPE_BYTES);
        let _ = verify(&fits, CHECKPOINT_TYPE, &ring).unwrap();
    }

    fn key_set(keys: Vec<PublicKey>, threshold: u32) -> KeySet {
        KeySet {
            origin: ORIGIN.into(),
            version: 3,
            keys,
            threshold,
            ..Default::default()
        }
    }

    fn listed(bytes: [u8; 32]) -> PublicKey {
        PublicKey {
            key_id: KeyId::from_key_bytes(&bytes).to_string(),
            ed25519: bytes.to_vec(),
        }
    }

    #[test]
    fn weak_keys_never_enter_a_ring() {
        // The identity point: every signature verifies under it without verify_strict.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(matches!(
            KeyRing::from_key_set(&key_set(vec![listed(identity)], 1)),
            Err(SignError::WeakKey { .. })
        ));
        // A sound key plus the point of order 2, (0, -1): mixed order.
        let sound = NodeKey::generate().verifying_key().to_edwards();
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        let torsion = VerifyingKey::from_bytes(&minus_one).unwrap();
        assert!(torsion.is_weak());
        let mixed = (sound + torsion.to_edwards()).compress().to_bytes();
        assert!(!VerifyingKey::from_bytes(&mixed).unwrap().is_weak());
        assert!(matches!(
            KeyRing::from_key_set(&key_set(vec![listed(mixed)], 1)),
            Err(SignError::WeakKey { .. })
        ));
    }

    #[test]
    fn malformed_key_sets_are_refused() {
        let (a, b) = (NodeKey::generate(), NodeKey::generate());
        let ring = KeyRing::from_key_set(&key_set(vec![a.public(), b.public()], 2)).unwrap();
        assert_eq!(
            (ring.origin(), ring.version(), ring.threshold()),
            (ORIGIN, 3, 2)
        );
        assert_eq!(ring.key_ids().count(), 2);

        let mut short = a.public();
        short.ed25519.pop();
        assert!(matches!(
            KeyRing::from_key_set(&key_set(vec![short], 1)),
            Err(SignError::MalformedKey { .. })
        ));
        let mut renamed = a.public();
        renamed.key_id = b.key_id().to_string();
        assert!(matches!(
            KeyRing::from_key_set(&key_set(vec![renamed], 1)),
            Err(SignError::KeyIdMismatch { .. })
        ));
        assert!(matches!(
            KeyRing::from_key_set(&key_set(vec![a.public(), a.public()], 1)),
            Err(SignError::DuplicateKey(_))
        ));
        for threshold in [0, 3] {
            assert!(matches!(
                KeyRing::from_key_set(&key_set(vec![a.public(), b.public()], threshold)),
                Err(SignError::InvalidThreshold { .. })
            ));
        }
    }

    #[test]
    fn entries_open_only_when_signed_and_coherent() {
        let key = NodeKey::generate();
        let ring = ring_of(&[&key], 1);
        let (entry, verified) = open_entry(&signed_record(&key, 4), &ring).unwrap();
        assert_eq!(entry, record_entry(ORIGIN, 4));
        assert_eq!(verified.key_ids, [key.key_id().clone()]);

        // A record under the key-set type, signed as such.
        let relabelled = key.sign(KEYSET_TYPE, record_entry(ORIGIN, 4).encode_to_vec());
        assert!(matches!(
            open_entry(&relabelled, &ring),
            Err(SignError::PayloadMismatch {
                body: "a record",
                ..
            })
        ));
        // A key-set entry opens under its type.
        let set_entry = LogEntry {
            origin: ORIGIN.into(),
            index: 5,
            body: Some(log_entry::Body::KeySet(key_set(vec![key.public()], 1))),
        };
        let _ = open_entry(&key.sign(KEYSET_TYPE, set_entry.encode_to_vec()), &ring).unwrap();
        // Signed bytes that are not a message.
        let garbage = key.sign(RECORD_TYPE, vec![0xff; 16]);
        assert!(matches!(
            open_entry(&garbage, &ring),
            Err(SignError::Decode(_))
        ));
        // Signed by the right key, but speaking for another origin.
        let rehomed = key.sign(RECORD_TYPE, record_entry("node-b", 4).encode_to_vec());
        assert!(matches!(
            open_entry(&rehomed, &ring),
            Err(SignError::OriginMismatch { .. })
        ));
        // Not verified: not parsed (the payload is garbage, the error is the signature).
        let mut forged = garbage;
        forged.signatures[0].sig[0] ^= 1;
        assert!(matches!(
            open_entry(&forged, &ring),
            Err(SignError::BadSignature { .. })
        ));
        let checkpoint = key.sign(CHECKPOINT_TYPE, Vec::new());
        assert!(matches!(
            open_entry(&checkpoint, &ring),
            Err(SignError::WrongPayloadType { .. })
        ));
    }

    /// A kind of entry a later version adds verifies, and is about no
    /// record: an older node keeps and relays it rather than stop the
    /// origin's log there. It cannot pass off a known kind, or a foreign
    /// type, or another origin.
    #[test]
    fn an_entry_of_a_later_kind_opens_as_about_no_record() {
        let key = NodeKey::generate();
        let ring = ring_of(&[&key], 1);
        const LATER: &str = "application/vnd.meridian.widget.v2+proto";
        // The bytes of a body this version does not know: field 9.
        let mut payload = LogEntry {
            origin: ORIGIN.into(),
            index: 6,
            body: None,
        }
        .encode_to_vec();
        payload.extend_from_slice(&[0x4a, 0x02, 0x08, 0x01]);
        let (entry, verified) = open_entry(&key.sign(LATER, payload.clone()), &ring).unwrap();
        assert_eq!((entry.index, entry.body), (6, None));
        assert_eq!(verified.key_ids, [key.key_id().clone()]);
        let mut forged = key.sign(LATER, payload);
        forged.signatures[0].sig[0] ^= 1;
        assert!(matches!(
            open_entry(&forged, &ring),
            Err(SignError::BadSignature { .. })
        ));
        assert!(matches!(
            open_entry(
                &key.sign(LATER, record_entry(ORIGIN, 6).encode_to_vec()),
                &ring
            ),
            Err(SignError::PayloadMismatch { .. })
        ));
        let elsewhere = LogEntry {
            origin: "node-b".into(),
            index: 6,
            body: None,
        };
        assert!(matches!(
            open_entry(&key.sign(LATER, elsewhere.encode_to_vec()), &ring),
            Err(SignError::OriginMismatch { .. })
        ));
        for foreign in ["application/json", "application/vnd.meridian.+proto"] {
            assert!(matches!(
                open_entry(&key.sign(foreign, Vec::new()), &ring),
                Err(SignError::WrongPayloadType { .. })
            ));
        }
    }

    #[test]
    fn checkpoints_open_only_when_signed_and_whole() {
        let key = NodeKey::generate();
        let ring = ring_of(&[&key], 1);
        let checkpoint = Checkpoint {
            origin: ORIGIN.into(),
            size: 10,
            root: vec![7; 32],
        };
        let envelope = key.sign(CHECKPOINT_TYPE, checkpoint.encode_to_vec());
        assert_eq!(open_checkpoint(&envelope, &ring).unwrap().0, checkpoint);
        let short_root = Checkpoint {
            root: vec![7; 31],
            ..checkpoint
        };
        let envelope = key.sign(CHECKPOINT_TYPE, short_root.encode_to_vec());
        assert!(matches!(
            open_checkpoint(&envelope, &ring),
            Err(SignError::BadCheckpointRoot { len: 31 })
        ));
        assert!(matches!(
            open_checkpoint(&signed_record(&key, 1), &ring),
            Err(SignError::WrongPayloadType { .. })
        ));
    }

    #[test]
    fn batch_verification_names_the_bad_envelope() {
        let keys: Vec<NodeKey> = (0..3).map(|_| NodeKey::generate()).collect();
        let rings: Vec<KeyRing> = keys.iter().map(|k| ring_of(&[k], 1)).collect();
        let mut envelopes: Vec<Envelope> = (0..40)
            .map(|i| signed_record(&keys[i % 3], i as u64))
            .collect();
        let items = |envs: &[Envelope]| -> Vec<Result<Verified, SignError>> {
            let pairs: Vec<(&Envelope, &KeyRing)> = envs
                .iter()
                .enumerate()
                .map(|(i, e)| (e, &rings[i % 3]))
                .collect();
            verify_batch(&pairs, RECORD_TYPE)
        };
        let all = items(&envelopes);
        assert!(all.iter().all(Result::is_ok));
        assert_eq!(all[4].as_ref().unwrap().key_ids, [keys[1].key_id().clone()]);

        envelopes[13].payload[3] ^= 0x40;
        envelopes[21].payload_type = KEYSET_TYPE.into();
        let results = items(&envelopes);
        for (i, result) in results.iter().enumerate() {
            match i {
                13 => assert!(matches!(result, Err(SignError::BadSignature { .. }))),
                21 => assert!(matches!(result, Err(SignError::WrongPayloadType { .. }))),
                _ => assert!(result.is_ok(), "item {i}: {result:?}"),
            }
        }
        assert!(verify_batch(&[], RECORD_TYPE).is_empty());
    }

    /// Signs `envelope` by hand with nonce point `[r]B + extra`: what only
    /// the key's holder can do, and what a hostile origin would do to make
    /// verifiers disagree.
    fn sign_with_nonce(
        key: &NodeKey,
        envelope: &mut Envelope,
        extra: curve25519_dalek::EdwardsPoint,
        encode: impl Fn(&curve25519_dalek::EdwardsPoint) -> [u8; 32],
    ) {
        use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
        use curve25519_dalek::scalar::Scalar;
        use sha2::Sha512;

        let message = pae(&envelope.payload_type, &envelope.payload);
        let mut wide = [0u8; 64];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut wide);
        let r = Scalar::from_bytes_mod_order_wide(&wide);
        let big_r = encode(&(ED25519_BASEPOINT_POINT * r + extra));
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(big_r)
                .chain_update(key.verifying_key().as_bytes())
                .chain_update(&message),
        );
        let s = r + k * key.signing.to_scalar();
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&big_r);
        sig[32..].copy_from_slice(s.as_bytes());
        envelope.signatures[0].sig = sig.to_vec();
    }

    /// A signer can put a torsion point into `R`. Whatever the rule makes
    /// of such a signature, every verifier must make the same of it: alone,
    /// in a batch of good ones, and in a batch that fails for another
    /// envelope and falls back to one by one.
    #[test]
    fn batch_and_single_verification_agree_on_torsion_nonces() {
        let key = NodeKey::generate();
        let ring = ring_of(&[&key], 1);
        // (0, -1), the point of order two.
        let order_two = VerifyingKey::from_bytes(&{
            let mut b = [0xffu8; 32];
            b[0] = 0xec;
            b[31] = 0x7f;
            b
        })
        .unwrap()
        .to_edwards();
        let plain = |p: &curve25519_dalek::EdwardsPoint| p.compress().to_bytes();
        let cases = [
            (
                "torsion-free",
                curve25519_dalek::EdwardsPoint::default(),
                true,
            ),
            ("order-two component", order_two, false),
        ];
        for (name, extra, strict_accepts) in cases {
            for i in 0..16u64 {
                let mut odd = signed_record(&key, 1_000 + i);
                sign_with_nonce(&key, &mut odd, extra, plain);
                let alone = verify(&odd, RECORD_TYPE, &ring).is_ok();
                // Both ZIP-215 verifiers accept it: the key's holder signed.
                assert!(alone, "{name}");
                // `verify_strict` refuses a torsion component in `R`: the
                // case where a cofactorless batch would be a coin toss.
                let sig = Ed25519Signature::from_slice(&odd.signatures[0].sig).unwrap();
                let message = pae(&odd.payload_type, &odd.payload);
                let strict = key.verifying_key().verify_strict(&message, &sig).is_ok();
                assert_eq!(strict, strict_accepts, "{name}");
                let good: Vec<Envelope> = (0..8).map(|j| signed_record(&key, j)).collect();
                let mut bad = signed_record(&key, 99);
                bad.payload[0] ^= 1;
                for with_bad in [false, true] {
                    let mut batch: Vec<&Envelope> = good.iter().collect();
                    batch.insert(3, &odd);
                    if with_bad {
                        batch.push(&bad);
                    }
                    let pairs: Vec<(&Envelope, &KeyRing)> =
                        batch.iter().map(|e| (*e, &ring)).collect();
                    let results = verify_batch(&pairs, RECORD_TYPE);
                    assert_eq!(
                        results[3].is_ok(),
                        alone,
                        "{name}, bad in batch: {with_bad}"
                    );
                    assert_eq!(
                        results.iter().filter(|r| r.is_err()).count(),
                        usize::from(with_bad)
                    );
                }
            }
        }
    }

    /// A signature whose `s` is not reduced (`s + l`) verifies under the
    /// same equation but is refused, alone and in a batch: an observer
    /// cannot make a second valid signature from a first.
    #[test]
    fn a_non_canonical_s_is_refused_alone_and_in_a_batch() {
        // l = 2^252 + 27742317777372353535851937790883648493, little-endian.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let key = NodeKey::generate();
        let ring = ring_of(&[&key], 1);
        let mut envelope = signed_record(&key, 7);
        let sig = &mut envelope.signatures[0].sig;
        let mut s = [0u8; 32];
        s.copy_from_slice(&sig[32..]);
        // s + l, added as little-endian integers (it stays below 2^256).
        let mut carry = 0u16;
        for (si, li) in s.iter_mut().zip(L) {
            let sum = *si as u16 + li as u16 + carry;
            *si = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0);
        sig[32..].copy_from_slice(&s);
        assert!(verify(&envelope, RECORD_TYPE, &ring).is_err());
        let good = signed_record(&key, 8);
        let results = verify_batch(&[(&good, &ring), (&envelope, &ring)], RECORD_TYPE);
        assert!(results[0].is_ok() && results[1].is_err(), "{results:?}");
    }

    #[test]
    fn a_saved_key_loads_back_and_signs_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let key = NodeKey::generate();
        key.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = NodeKey::load(&path).unwrap();
        assert_eq!(loaded.key_id(), key.key_id());
        assert_eq!(
            loaded.sign(RECORD_TYPE, b"x".to_vec()),
            key.sign(RECORD_TYPE, b"x".to_vec())
        );
        assert!(!format!("{loaded:?}").contains(&BASE64.encode(key.signing.as_bytes())));
    }

    #[test]
    fn save_never_replaces_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let first = NodeKey::generate();
        first.save(&path).unwrap();
        let err = NodeKey::generate().save(&path).unwrap_err();
        assert!(matches!(
            &err,
            SignError::KeyFile { problem: KeyFileProblem::Io(e), .. }
                if e.kind() == io::ErrorKind::AlreadyExists
        ));
        assert_eq!(NodeKey::load(&path).unwrap().key_id(), first.key_id());
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        NodeKey::generate().save(&path).unwrap();
        for open in [0o640, 0o604, 0o660, 0o700] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(open)).unwrap();
            assert!(
                matches!(
                    NodeKey::load(&path),
                    Err(SignError::KeyFile {
                        problem: KeyFileProblem::TooOpen { .. },
                        ..
                    })
                ) == (open & 0o077 != 0),
                "{open:o}"
            );
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = NodeKey::load(&path).unwrap_err();
        assert!(matches!(
            err,
            SignError::KeyFile {
                problem: KeyFileProblem::TooOpen { mode: 0o644 },
                ..
            }
        ));
        let message = err.to_string();
        assert!(
            message.contains(&path.display().to_string()) && message.contains("0644"),
            "{message}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        NodeKey::load(&path).unwrap();
    }

    #[test]
    fn damaged_or_unknown_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = NodeKey::generate();
        let good = format!(
            "meridian-node-key v1\ned25519-seed {}\nkey-id {}\n",
            BASE64.encode(key.signing.as_bytes()),
            key.key_id()
        );
        let other = NodeKey::generate().key_id().to_string();
        let cases = [
            ("good", good.clone(), true),
            ("v2", good.replace(" v1\n", " v2\n"), false),
            ("pem", "-----BEGIN PRIVATE KEY-----\n".into(), false),
            (
                "short",
                good.replace("ed25519-seed ", "ed25519-seed AAAA"),
                false,
            ),
            ("id", good.replace(key.key_id().as_str(), &other), false),
            ("trailing", format!("{good}more\n"), false),
            ("empty", String::new(), false),
        ];
        for (name, text, ok) in cases {
            let path = dir.path().join(name);
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let result = NodeKey::load(&path);
            assert_eq!(result.is_ok(), ok, "{name}: {result:?}");
            if !ok {
                assert!(
                    matches!(
                        result,
                        Err(SignError::KeyFile {
                            problem: KeyFileProblem::Format(_),
                            ..
                        })
                    ),
                    "{name}"
                );
            }
        }
        assert!(matches!(
            NodeKey::load(dir.path()),
            Err(SignError::KeyFile {
                problem: KeyFileProblem::NotAFile,
                ..
            })
        ));
    }
}
