//! An origin's key sets (DESIGN §5; `docs/decisions/key-sets.md`): the
//! chain of sets its log carries, which keys are valid at which log
//! position, and when the current set expires.
//!
//! - A **root** (threshold *t* of *n*) signs key sets; online **signing
//!   keys** sign entries and checkpoints. A set that lists no root keys is
//!   the legacy form: its signing keys are its root as well.
//! - Set 1 is entry 0 of the log, signed by its own root; when the origin
//!   is a peer, by the root key pinned for it too.
//! - Set N+1 is signed by a threshold of set N's root (and of its own root
//!   when the root changes), and carries version N+1: a skipped or replayed
//!   set is refused.
//! - The set carried by the entry at position *k* governs the entries after
//!   *k* and the checkpoints of size above *k*. A signing key that set N+1
//!   drops is retired at N+1's position: it stays valid for the entries
//!   before it only. Validity is judged by log position, never by a clock;
//!   the clock only decides whether a chain is stale (its current set
//!   expired), which flags the origin and trusts nothing more or less.
//! - A set may **revoke** a signing key of an earlier set from a log index
//!   on (a key compromise): entries that key signed from there to its
//!   retirement stay in the log, and verify, but are quarantined
//!   ([`KeyChain::quarantines`]): not served, searched or relayed as
//!   trusted until the origin re-signs their records. A revocation only
//!   moves a key's validity back, never forward, and a revoked key never
//!   signs again.

use std::collections::BTreeMap;
use std::str::FromStr;

use ed25519_dalek::VerifyingKey;
use prost::Message as _;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::proto::{log_entry::Body, Checkpoint, Envelope, KeySet, LogEntry};
use crate::sign::{self, KeyId, KeyRing, SignError, KEYSET_TYPE, RECORD_TYPE};

/// The longest a key set may be valid for, in days from when it is
/// checked: a set is renewed at least once a year.
pub const MAX_EXPIRY_DAYS: u32 = 366;
/// Validity of a new set unless the operator says otherwise.
pub const DEFAULT_EXPIRY_DAYS: u32 = 365;
/// A node renews its current set (when its root is at hand) once fewer
/// than this many days are left.
pub const RENEW_WITHIN_DAYS: i64 = 30;
/// Clock difference between an origin and its peers tolerated when a set's
/// expiry is checked against the cap.
const CLOCK_SLACK_SECS: i64 = 86_400;
const DAY_SECS: i64 = 86_400;
/// Most revocations one key set may carry.
pub const MAX_REVOCATIONS: usize = 64;
/// Longest reason a revocation may give, in bytes.
pub const MAX_REASON_BYTES: usize = 512;
/// At most this many TLS keys in a set: the key in use and the next one
/// while a TLS key rotation is under way, and room to spare.
pub const MAX_TLS_KEYS: usize = 4;
/// Most signing keys (`keys`) one key set may list. An entry or checkpoint
/// carries at most 32 signatures (`sign::MAX_SIGNATURES`), so a larger set
/// could never meet a threshold over them.
pub const MAX_SIGNING_KEYS: usize = sign::MAX_SIGNATURES;
/// Most root keys (`root_keys`) one key set may list: the first set is
/// signed by every root key, in at most 32 signatures.
pub const MAX_ROOT_KEYS: usize = sign::MAX_SIGNATURES;
/// Most DOI prefixes one key set may claim: as many as a node may declare
/// (`config::MAX_DOI_PREFIXES`).
pub const MAX_KEY_SET_DOI_PREFIXES: usize = crate::config::MAX_DOI_PREFIXES;
/// A TLS key's SubjectPublicKeyInfo is at most this long (an Ed25519 one is
/// 44 bytes, an RSA-4096 one about 550).
pub const MAX_TLS_KEY_BYTES: usize = 1024;

/// A revocation the chain holds: entries `key_id` signed at log positions
/// `from..until` are not trusted. `until` is where a set dropped the key:
/// it signs nothing at or after it anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub key_id: KeyId,
    /// The first position whose entries by the key are quarantined.
    pub from: u64,
    /// The position of the set that retired the key.
    pub until: u64,
    /// The position of the set that published (or last moved back) the
    /// revocation.
    pub published_at: u64,
    /// The operator's words.
    pub reason: String,
}

/// An entry opened by [`KeyChain::open_batched`].
type Opened = Result<(LogEntry, Option<sign::Verified>), SignError>;

/// The current time in Unix seconds.
pub fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Whether `error`, met while a key-set entry was verified as the next set
/// of a chain, is about its signatures only: none, too many, unknown keys,
/// signatures that do not verify, a threshold not met. The payload was not
/// looked at, or was a valid next set. A log's Merkle leaves cover the
/// payload, not the signatures, so such an entry whose payload the log
/// holds can be made whole by the origin's own envelope for it, fetched
/// again from a peer (`crate::sync`).
pub fn fails_on_signatures(error: &SignError) -> bool {
    matches!(
        error,
        SignError::NoSignature
            | SignError::TooManySignatures { .. }
            | SignError::NotAKeyId { .. }
            | SignError::DuplicateSignature(_)
            | SignError::UnknownKey(_)
            | SignError::BadSignature { .. }
            | SignError::MalformedSignature { .. }
            | SignError::ThresholdNotMet { .. }
    )
}

/// RFC 3339 text (UTC, to the second) of `days` days after `now`.
pub fn expiry_after(now: i64, days: u32) -> String {
    let at = OffsetDateTime::from_unix_timestamp(now + i64::from(days) * DAY_SECS)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    at.format(&Rfc3339).unwrap_or_default()
}

/// One key set of the chain, with the position of the entry carrying it.
#[derive(Debug, Clone)]
pub struct Link {
    /// Log position of the key-set entry.
    pub index: u64,
    /// The set as signed.
    pub set: KeySet,
    /// The envelope as verified, signatures included: the entry at this
    /// position must arrive as exactly this, since what is stored is
    /// verified again whenever the chain is rebuilt from the store.
    envelope: Envelope,
    signing: KeyRing,
    root: KeyRing,
    /// Expiry in Unix seconds; `None` for a legacy set without one.
    expires: Option<i64>,
}

impl Link {
    /// The keys that sign entries and checkpoints under this set.
    pub fn signing(&self) -> &KeyRing {
        &self.signing
    }

    /// The keys that sign the next set.
    pub fn root(&self) -> &KeyRing {
        &self.root
    }

    /// Expiry in Unix seconds, if the set has one.
    pub fn expires(&self) -> Option<i64> {
        self.expires
    }
}

/// The verified key sets of one origin, in log order.
#[derive(Debug, Clone)]
pub struct KeyChain {
    origin: String,
    pinned: Option<VerifyingKey>,
    links: Vec<Link>,
    /// Every revocation the sets published, one per key.
    revoked: Vec<Revoked>,
}

impl KeyChain {
    /// An empty chain of `origin`. `pinned` is the root key the operator
    /// pinned for a peer; `None` for this node's own log, which it wrote.
    pub fn new(origin: &str, pinned: Option<VerifyingKey>) -> Self {
        Self {
            origin: origin.to_owned(),
            pinned,
            links: Vec::new(),
            revoked: Vec::new(),
        }
    }

    /// The origin whose keys these are.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The sets, oldest first.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// The current set.
    pub fn latest(&self) -> Option<&Link> {
        self.links.last()
    }

    /// Verifies the key-set entry `envelope` at log position `index` as the
    /// next set of the chain and appends it. `now` (Unix seconds) only
    /// bounds the expiry a set may carry.
    pub fn extend(&mut self, index: u64, envelope: &Envelope, now: i64) -> Result<(), SignError> {
        let position = |message: String| SignError::KeySetPosition { index, message };
        let (entry, root) = match self.links.last() {
            None => {
                if index != 0 {
                    return Err(position(
                        "the first key set must be entry 0 of the log".into(),
                    ));
                }
                // Verify before parsing: against the pinned root when there is one.
                let entry = match &self.pinned {
                    Some(pinned) => {
                        let ring = KeyRing::new(&self.origin, &[*pinned], 1)?;
                        sign::open_entry(envelope, &ring)
                            .map_err(|e| match e {
                                SignError::UnknownKey(_) | SignError::ThresholdNotMet { .. } => {
                                    SignError::PinnedRootMissing {
                                        pinned: KeyId::of(pinned),
                                    }
                                }
                                other => other,
                            })?
                            .0
                    }
                    // This node's own first set, read from its own store.
                    None => decode_key_set_entry(envelope, &self.origin)?,
                };
                let set = key_set_of(&entry)?;
                check_counts(index, set)?;
                let root = KeyRing::root_of_key_set(set)?;
                if let Some(pinned) = &self.pinned {
                    if root.key(&KeyId::of(pinned)).is_none() {
                        return Err(SignError::PinnedRootMissing {
                            pinned: KeyId::of(pinned),
                        });
                    }
                }
                // The threshold of its own root.
                let _ = sign::verify(envelope, KEYSET_TYPE, &root)?;
                if set.version != 1 {
                    return Err(SignError::KeySetSkipped {
                        latest: 0,
                        found: set.version,
                    });
                }
                (entry, root)
            }
            Some(last) => {
                if index <= last.index {
                    return Err(position(format!(
                        "not after the latest key set, at log index {}",
                        last.index
                    )));
                }
                // Signed by the threshold of the current set's root.
                let (entry, _) = sign::open_entry(envelope, &last.root)?;
                let set = key_set_of(&entry)?;
                check_counts(index, set)?;
                if set.version <= last.set.version {
                    return Err(SignError::KeySetReplayed {
                        latest: last.set.version,
                        found: set.version,
                    });
                }
                if set.version != last.set.version + 1 {
                    return Err(SignError::KeySetSkipped {
                        latest: last.set.version,
                        found: set.version,
                    });
                }
                let root = KeyRing::root_of_key_set(set)?;
                if !root.same_keys(&last.root) {
                    // A new root accepts its office by signing too.
                    let _ = sign::verify(envelope, KEYSET_TYPE, &root)?;
                }
                (entry, root)
            }
        };
        if entry.index != index {
            return Err(position(format!("signed as entry {}", entry.index)));
        }
        let Some(Body::KeySet(set)) = entry.body else {
            unreachable!("key_set_of checked the body");
        };
        let signing = KeyRing::from_key_set(&set)?;
        check_tls_keys(index, &set)?;
        let expires = check_expiry(&set, now)?;
        let revoked = self.revocations_with(index, &set)?;
        self.revoked = revoked;
        self.links.push(Link {
            index,
            set,
            envelope: envelope.clone(),
            signing,
            root,
            expires,
        });
        Ok(())
    }

    /// The chain's revocations once the set `set` at `index` is added:
    /// each names a signing key of an earlier set that `set` does not list,
    /// from a position before the key's retirement, and never later than a
    /// revocation of the same key already held. A set may not list a
    /// revoked key as a signing key again.
    fn revocations_with(&self, index: u64, set: &KeySet) -> Result<Vec<Revoked>, SignError> {
        let position = |message: String| SignError::KeySetPosition { index, message };
        if let Some(listed) = set
            .keys
            .iter()
            .find(|k| self.revoked.iter().any(|r| r.key_id.as_str() == k.key_id))
        {
            return Err(position(format!(
                "lists {} as a signing key, which an earlier set revoked",
                listed.key_id.chars().take(80).collect::<String>()
            )));
        }
        let mut revoked = self.revoked.clone();
        for (i, revocation) in set.revocations.iter().enumerate() {
            let what = format!("revocations[{i}]");
            let key_id = KeyId::from_str(&revocation.key_id)
                .map_err(|e| position(format!("{what}: {e}")))?;
            if revocation.reason.len() > MAX_REASON_BYTES {
                return Err(position(format!(
                    "{what}: a reason of {} bytes, more than {MAX_REASON_BYTES}",
                    revocation.reason.len()
                )));
            }
            if set.keys.iter().any(|k| k.key_id == key_id.as_str()) {
                return Err(position(format!(
                    "{what}: revokes {key_id} but still lists it as a signing key"
                )));
            }
            let Some(last) = self
                .links
                .iter()
                .rposition(|link| link.signing.key(&key_id).is_some())
            else {
                return Err(position(format!(
                    "{what}: {key_id} is not a signing key of an earlier key set of {}",
                    self.origin
                )));
            };
            let until = self.links.get(last + 1).map_or(index, |link| link.index);
            if revocation.from_index >= until {
                return Err(position(format!(
                    "{what}: from index {} is at or after {until}, where {key_id} was retired; \
                     a revocation only moves a key's validity back",
                    revocation.from_index
                )));
            }
            match revoked.iter_mut().find(|r| r.key_id == key_id) {
                Some(held) if revocation.from_index > held.from => {
                    return Err(position(format!(
                        "{what}: {key_id} is revoked from index {} already; \
                         a revocation never moves a key's validity forward",
                        held.from
                    )))
                }
                Some(held) => {
                    held.from = revocation.from_index;
                    held.published_at = index;
                    held.reason = revocation.reason.clone();
                }
                None => revoked.push(Revoked {
                    key_id,
                    from: revocation.from_index,
                    until,
                    published_at: index,
                    reason: revocation.reason.clone(),
                }),
            }
        }
        // A revoked key may have leaked: as a root it would still sign the
        // next key set, naming whatever signing key its holder likes. (A
        // set without root keys has its signing keys for root, checked
        // above.)
        if let Some(root) = set
            .root_keys
            .iter()
            .find(|k| revoked.iter().any(|r| r.key_id.as_str() == k.key_id))
        {
            return Err(position(format!(
                "lists {} as a root key, which is revoked; the root must change first",
                root.key_id
            )));
        }
        Ok(revoked)
    }

    /// The revocations the chain holds, in the order first published.
    pub fn revocations(&self) -> &[Revoked] {
        &self.revoked
    }

    /// The chain as it stood once the entry at `index` was in the log: its
    /// sets up to that position, and the revocations they published. What
    /// a revocation set aside when it arrived does not depend on sets the
    /// origin appended later.
    pub fn as_of(&self, index: u64) -> KeyChain {
        let mut chain = KeyChain::new(&self.origin, self.pinned);
        for link in self.links.iter().take_while(|link| link.index <= index) {
            chain.revoked = chain
                .revocations_with(link.index, &link.set)
                .expect("each set's revocations were checked when it joined the chain");
            chain.links.push(link.clone());
        }
        chain
    }

    /// The revocations covering log position `index`.
    fn revoked_at(&self, index: u64) -> impl Iterator<Item = &Revoked> {
        self.revoked
            .iter()
            .filter(move |r| r.from <= index && index < r.until)
    }

    /// The signing keys valid at `index` once the keys revoked there are
    /// taken out; `Err` with the revocation when they cannot meet the
    /// threshold (every entry there was signed by a revoked key), `Ok(None)`
    /// when no revocation covers `index`.
    fn unrevoked_ring(&self, index: u64) -> Result<Option<KeyRing>, &Revoked> {
        let Some(first) = self.revoked_at(index).next() else {
            return Ok(None);
        };
        let Ok(ring) = self.ring_at(index) else {
            return Ok(None);
        };
        let removed: Vec<&KeyId> = self.revoked_at(index).map(|r| &r.key_id).collect();
        ring.without(&removed).map(Some).ok_or(first)
    }

    /// Whether the record entry `envelope` at `index` (verified when it
    /// was stored) is quarantined: a revocation covers its position and it
    /// does not verify without the keys revoked there. Costs nothing when
    /// no revocation covers `index`, and no crypto when every key of the
    /// set there is revoked.
    pub fn quarantines(&self, index: u64, envelope: &Envelope) -> Option<&Revoked> {
        match self.unrevoked_ring(index) {
            Ok(None) => None,
            Err(revoked) => Some(revoked),
            Ok(Some(rest)) => {
                let first = self.revoked_at(index).next()?;
                sign::open_entry(envelope, &rest).is_err().then_some(first)
            }
        }
    }

    /// Whether an entry at `index` held as digests only was necessarily
    /// signed by a revoked key (every signing key valid there is revoked).
    pub fn quarantines_any_entry_at(&self, index: u64) -> Option<&Revoked> {
        self.unrevoked_ring(index).err()
    }

    /// Position in `links` of the set governing log position `index` (an
    /// entry at `index`, or a checkpoint of size `index`): the latest set
    /// carried by an entry before it.
    fn governing(&self, index: u64) -> Result<usize, SignError> {
        self.links
            .iter()
            .rposition(|link| link.index < index)
            .ok_or(SignError::NoKeySet(index))
    }

    /// The signing keys valid for the entry at `index` (and for a
    /// checkpoint of size `index`).
    pub fn ring_at(&self, index: u64) -> Result<&KeyRing, SignError> {
        self.governing(index).map(|at| &self.links[at].signing)
    }

    /// The set carried by the entry at exactly `index`, if it is one.
    pub fn set_at(&self, index: u64) -> Option<&Link> {
        self.links.iter().find(|link| link.index == index)
    }

    /// Where `key` was retired, if a set before `index` listed it and a
    /// later set at or before `index` dropped it.
    fn retirement(&self, key: &KeyId, index: u64) -> Option<u64> {
        let governing = self.governing(index).ok()?;
        if self.links[governing].signing.key(key).is_some() {
            return None;
        }
        self.links[..governing]
            .iter()
            .rposition(|link| link.signing.key(key).is_some())
            .map(|at| self.links[at + 1].index)
    }

    /// Names a retired key instead of an unknown one.
    fn explain(&self, index: u64, error: SignError) -> SignError {
        if let SignError::UnknownKey(hint) = &error {
            if let Ok(key_id) = KeyId::from_str(hint) {
                if let Some(retired_at) = self.retirement(&key_id, index) {
                    return SignError::RetiredKey { key_id, retired_at };
                }
            }
        }
        error
    }

    /// Verifies and opens log entries of the origin, each at its position:
    /// a record against the signing keys that govern its position (one
    /// batch per set), a key-set entry only if it is the very set the chain
    /// holds there.
    pub fn open_entries(&self, items: &[(u64, &Envelope)]) -> Vec<Result<LogEntry, SignError>> {
        self.open_batched(items)
            .into_iter()
            .map(|result| result.map(|(entry, _)| entry))
            .collect()
    }

    /// [`KeyChain::open_entries`] for record entries, saying which keys
    /// signed each: what a listing of many records verifies in one batch
    /// per set instead of one signature at a time. A key-set entry is an
    /// error here.
    pub fn open_records(
        &self,
        items: &[(u64, &Envelope)],
    ) -> Vec<Result<(LogEntry, sign::Verified), SignError>> {
        self.open_batched(items)
            .into_iter()
            .map(|result| match result? {
                (entry, Some(verified)) => Ok((entry, verified)),
                (_, None) => Err(SignError::WrongPayloadType {
                    expected: RECORD_TYPE.into(),
                    found: KEYSET_TYPE.into(),
                }),
            })
            .collect()
    }

    /// Both of the above: a record's keys that signed, `None` for a key set
    /// (whose bytes are compared with the chain's, not verified again).
    fn open_batched(&self, items: &[(u64, &Envelope)]) -> Vec<Opened> {
        let mut results: Vec<Option<Opened>> = (0..items.len()).map(|_| None).collect();
        let mut by_set: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (at, (index, envelope)) in items.iter().enumerate() {
            if envelope.payload_type == KEYSET_TYPE {
                results[at] = Some(
                    self.open_key_set_entry(*index, envelope)
                        .map(|entry| (entry, None)),
                );
                continue;
            }
            match self.governing(*index) {
                Ok(set) => by_set.entry(set).or_default().push(at),
                Err(e) => results[at] = Some(Err(e)),
            }
        }
        for (set, positions) in by_set {
            let envelopes: Vec<&Envelope> = positions.iter().map(|&at| items[at].1).collect();
            let opened = sign::open_entries(&envelopes, &self.links[set].signing);
            for (at, result) in positions.into_iter().zip(opened) {
                let index = items[at].0;
                results[at] = Some(
                    result
                        .map(|(entry, verified)| (entry, Some(verified)))
                        .map_err(|e| self.explain(index, e)),
                );
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every item has a result"))
            .collect()
    }

    /// Verifies and opens the record entry at `index` against the signing
    /// keys governing it, saying which keys signed.
    pub fn open_record(
        &self,
        index: u64,
        envelope: &Envelope,
    ) -> Result<(LogEntry, sign::Verified), SignError> {
        sign::open_entry(envelope, self.ring_at(index)?).map_err(|e| self.explain(index, e))
    }

    /// [`KeyChain::open_entries`] for one entry.
    pub fn open_entry(&self, index: u64, envelope: &Envelope) -> Result<LogEntry, SignError> {
        self.open_entries(&[(index, envelope)])
            .pop()
            .expect("one result")
    }

    fn open_key_set_entry(&self, index: u64, envelope: &Envelope) -> Result<LogEntry, SignError> {
        match self.set_at(index) {
            // Whole, signatures included: the Merkle leaf covers the payload
            // only, and an entry stored with other signatures than the ones
            // verified would break the chain when it is rebuilt from the
            // store.
            Some(link) if link.envelope == *envelope => {
                decode_key_set_entry(envelope, &self.origin)
            }
            Some(link) if link.envelope.payload == envelope.payload => {
                Err(SignError::KeySetPosition {
                    index,
                    message: "carries other signatures than the key set verified for this \
                              position"
                        .into(),
                })
            }
            Some(_) => Err(SignError::KeySetPosition {
                index,
                message: "differs from the key set verified for this position".into(),
            }),
            None => Err(SignError::KeySetPosition {
                index,
                message: "not a key set of the origin's verified chain".into(),
            }),
        }
    }

    /// Verifies a checkpoint of the origin: it must be signed by the keys
    /// of the set that governs its size, and a key revoked from before its
    /// size does not count. Each set's keys are tried, newest first, before
    /// the payload is parsed.
    pub fn open_checkpoint(&self, envelope: &Envelope) -> Result<Checkpoint, SignError> {
        let (checkpoint, governing, signers) = self.opened_checkpoint(envelope)?;
        // A checkpoint vouches for every entry before its size: one that
        // needs a key revoked from before that size to meet the threshold
        // vouches for what the key's thief may have forged. Refused, so a
        // thief's checkpoint with an invented root freezes no one's copy
        // of the origin as a fork. `signers` are every key of the governing
        // set whose signature verified, so no signature is checked again.
        let size = checkpoint.size;
        let revoked = |key: &KeyId| {
            self.revoked
                .iter()
                .find(|r| r.from < size && &r.key_id == key)
        };
        let Some(first) = signers.iter().find_map(&revoked) else {
            return Ok(checkpoint);
        };
        let standing = signers.iter().filter(|key| revoked(key).is_none()).count();
        if standing >= self.links[governing].signing.threshold() as usize {
            return Ok(checkpoint);
        }
        Err(SignError::RevokedCheckpoint {
            key_id: first.key_id.clone(),
            from: first.from,
            size,
        })
    }

    /// [`Self::open_checkpoint`] before revocations are considered: the
    /// checkpoint, the position in `links` of the set governing its size,
    /// and the keys of that set whose signatures verified.
    fn opened_checkpoint(
        &self,
        envelope: &Envelope,
    ) -> Result<(Checkpoint, usize, Vec<KeyId>), SignError> {
        let mut first_error = None;
        for (at, link) in self.links.iter().enumerate().rev() {
            match sign::open_checkpoint(envelope, &link.signing) {
                Ok((checkpoint, verified)) => {
                    let governing = self.governing(checkpoint.size)?;
                    if governing == at {
                        return Ok((checkpoint, at, verified.key_ids));
                    }
                    // A later set that kept the key (a renewal, a new TLS
                    // or root key) verified it first: it is judged by the
                    // set of its size. The keys both sets hold verified
                    // already; its own keys are tried only when those fall
                    // short of its threshold, or when a key only it holds
                    // signed too: the revocation check counts every signer
                    // of the governing set, and that one may be what meets
                    // the threshold once a revoked key is taken away.
                    if governing < at {
                        let ring = &self.links[governing].signing;
                        let shared: Vec<KeyId> = verified
                            .key_ids
                            .iter()
                            .filter(|key| ring.key(key).is_some())
                            .cloned()
                            .collect();
                        if shared.len() >= ring.threshold() as usize
                            && shared.len() == named_in(envelope, ring)
                        {
                            return Ok((checkpoint, governing, shared));
                        }
                        if let Ok((checkpoint, verified)) = sign::open_checkpoint(envelope, ring) {
                            return Ok((checkpoint, governing, verified.key_ids));
                        }
                    }
                    if governing > at {
                        return Err(SignError::RetiredKey {
                            key_id: verified.key_ids[0].clone(),
                            retired_at: self.links[at + 1].index,
                        });
                    }
                    return Err(SignError::KeySetPosition {
                        index: link.index,
                        message: format!(
                            "its keys sign a checkpoint of size {}, which it does not cover",
                            checkpoint.size
                        ),
                    });
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or(SignError::NoKeySet(0)))
    }

    /// The current set's expiry, if it has passed at `now`.
    pub fn expired(&self, now: i64) -> Option<String> {
        let latest = self.latest()?;
        latest
            .expires
            .filter(|&at| at <= now)
            .map(|_| latest.set.expires.clone())
    }

    /// Whether the current set expires within the renewal window.
    pub fn renewal_due(&self, now: i64) -> bool {
        self.latest()
            .and_then(|l| l.expires)
            .is_some_and(|at| at - now < RENEW_WITHIN_DAYS * DAY_SECS)
    }
}

/// How many of `envelope`'s signatures name a key of `ring` (before any
/// is verified; a key is named at most once, `sign::verify` refuses more).
fn named_in(envelope: &Envelope, ring: &KeyRing) -> usize {
    envelope
        .signatures
        .iter()
        .filter(|s| KeyId::from_str(&s.key_id).is_ok_and(|key| ring.key(&key).is_some()))
        .count()
}

fn key_set_of(entry: &LogEntry) -> Result<&KeySet, SignError> {
    match &entry.body {
        Some(Body::KeySet(set)) => Ok(set),
        Some(Body::Record(_)) => Err(SignError::PayloadMismatch {
            payload_type: KEYSET_TYPE.into(),
            body: "a record",
        }),
        Some(Body::Audience(_)) => Err(SignError::PayloadMismatch {
            payload_type: KEYSET_TYPE.into(),
            body: "an audience",
        }),
        None => Err(SignError::PayloadMismatch {
            payload_type: KEYSET_TYPE.into(),
            body: "no body",
        }),
    }
}

/// Decodes a key-set entry whose signatures were checked (or that this
/// node wrote), checking its type and origin.
fn decode_key_set_entry(envelope: &Envelope, origin: &str) -> Result<LogEntry, SignError> {
    if envelope.payload_type != KEYSET_TYPE {
        return Err(SignError::WrongPayloadType {
            expected: KEYSET_TYPE.into(),
            found: envelope.payload_type.chars().take(80).collect(),
        });
    }
    let entry = LogEntry::decode(envelope.payload.as_slice()).map_err(SignError::Decode)?;
    let set = key_set_of(&entry)?;
    for found in [&entry.origin, &set.origin] {
        if found != origin {
            return Err(SignError::OriginMismatch {
                expected: origin.to_owned(),
                found: found.chars().take(80).collect(),
            });
        }
    }
    Ok(entry)
}

/// The expiry of a set in Unix seconds; refuses one beyond the cap, and a
/// set with root keys that carries none.
fn check_expiry(set: &KeySet, now: i64) -> Result<Option<i64>, SignError> {
    if set.expires.is_empty() {
        if set.root_keys.is_empty() {
            return Ok(None);
        }
        return Err(SignError::KeySetExpiry(
            "a key set with root keys must carry an expiry".into(),
        ));
    }
    let at = OffsetDateTime::parse(&set.expires, &Rfc3339)
        .map_err(|_| {
            SignError::KeySetExpiry(format!(
                "`{}` is not an RFC 3339 time",
                set.expires.chars().take(40).collect::<String>()
            ))
        })?
        .unix_timestamp();
    let cap = now + i64::from(MAX_EXPIRY_DAYS) * DAY_SECS + CLOCK_SLACK_SECS;
    if at > cap {
        return Err(SignError::KeySetExpiry(format!(
            "{} is more than {MAX_EXPIRY_DAYS} days ahead",
            set.expires
        )));
    }
    Ok(Some(at))
}

/// The TLS keys a set lists (the keys peers accept in this origin's
/// certificate while it is the current set): bounded, none empty, none
/// twice.
fn check_tls_keys(index: u64, set: &KeySet) -> Result<(), SignError> {
    let position = |message: String| SignError::KeySetPosition { index, message };
    for (i, key) in set.tls_keys.iter().enumerate() {
        if key.is_empty() || key.len() > MAX_TLS_KEY_BYTES {
            return Err(position(format!(
                "tls_keys[{i}]: {} bytes, not 1 to {MAX_TLS_KEY_BYTES}",
                key.len()
            )));
        }
        if set.tls_keys[..i].contains(key) {
            return Err(position(format!("tls_keys[{i}]: listed twice")));
        }
    }
    Ok(())
}

/// Refuses the set at `index` when one of its lists is longer than its
/// bound, naming the list and its length: checked before any of its keys is
/// parsed or vetted, so a set's cost is bounded by its counts, not only by
/// its size.
fn check_counts(index: u64, set: &KeySet) -> Result<(), SignError> {
    let lists = [
        ("keys", "signing keys", set.keys.len(), MAX_SIGNING_KEYS),
        ("root_keys", "root keys", set.root_keys.len(), MAX_ROOT_KEYS),
        ("tls_keys", "TLS keys", set.tls_keys.len(), MAX_TLS_KEYS),
        (
            "revocations",
            "revocations",
            set.revocations.len(),
            MAX_REVOCATIONS,
        ),
        (
            "doi_prefixes",
            "DOI prefixes",
            set.doi_prefixes.len(),
            MAX_KEY_SET_DOI_PREFIXES,
        ),
    ];
    match lists.into_iter().find(|(_, _, count, max)| count > max) {
        Some((field, what, count, max)) => Err(SignError::KeySetPosition {
            index,
            message: format!("{field}: {count} {what}, more than {max}"),
        }),
        None => Ok(()),
    }
}

/// Signs `set` as entry `index` of `origin`'s log with each of `roots`:
/// the envelope of a key-set entry.
pub fn sign_key_set(roots: &[&sign::NodeKey], origin: &str, index: u64, set: KeySet) -> Envelope {
    let payload = LogEntry {
        origin: origin.to_owned(),
        index,
        body: Some(Body::KeySet(set)),
    }
    .encode_to_vec();
    let mut envelope = Envelope {
        payload,
        payload_type: KEYSET_TYPE.to_owned(),
        signatures: Vec::new(),
    };
    for root in roots {
        root.cosign(&mut envelope);
    }
    envelope
}

/// A key set of `origin` (version, signing keys, root keys, expiry, TLS
/// keys), thresholds 1 and 1.
pub fn key_set(
    origin: &str,
    version: u64,
    signing: &[&sign::NodeKey],
    roots: &[crate::proto::PublicKey],
    root_threshold: u32,
    expires: String,
    tls_keys: Vec<Vec<u8>>,
) -> KeySet {
    KeySet {
        origin: origin.to_owned(),
        version,
        keys: signing.iter().map(|k| k.public()).collect(),
        threshold: 1,
        expires,
        tls_keys,
        root_keys: roots.to_vec(),
        root_threshold,
        revocations: Vec::new(),
        doi_prefixes: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
