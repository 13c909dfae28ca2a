//! The operator's trust store: which peers this node trusts, with the keys
//! pinned for them, their groups and their state, and an audit trail of every
//! change (DESIGN §5).
//!
//! A peer is pinned from an invitation token that its operator printed with
//! `meridian keys show --invite`; the token carries the node id, endpoint,
//! identity key and TLS key. Suspension and revocation take effect at once on
//! every path: the TLS verifier and each federation request ask this store.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::ids::NodeId;
use crate::sign::{KeyId, KeyRing, SignError};
use crate::store::{tree, Store, StoreError, Table};

const INVITE_PREFIX: &str = "meridian-invite-v1.";
/// Longest invitation token accepted, checked before decoding.
const MAX_INVITE_BYTES: usize = 4096;

/// Why a trust operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The invitation token is malformed; the text says what is wrong.
    #[error("invitation: {0}")]
    Invite(String),
    /// The identity key in the token is unusable (weak, malformed).
    #[error("invitation: identity key: {0}")]
    Key(#[from] SignError),
    /// The node id is already pinned.
    #[error("{0} is already pinned; a node id is pinned once (change its groups with `meridian trust groups`, pause it with `trust suspend`)")]
    AlreadyPinned(String),
    /// A key of the invitation is pinned for another peer: requests signed
    /// or authenticated with it could not be told apart.
    #[error(
        "the {what} of this invitation is already pinned for {peer}; each peer has keys of its own"
    )]
    KeyInUse { what: &'static str, peer: String },
    /// Two pinned peers share a TLS key (a trust store written before keys
    /// were unique): a caller presenting it is attributed to neither.
    #[error("the TLS key presented is pinned for more than one peer ({0}); revoke all but one")]
    AmbiguousKey(String),
    /// No peer with this node id is pinned.
    #[error("no peer {0} in the trust store")]
    UnknownPeer(String),
    /// A node cannot pin itself.
    #[error("{0} is this node itself")]
    SelfPin(String),
    /// Revocation is final.
    #[error("{0} is revoked, and revocation is final: its records stay quarantined; the institution can rejoin only under a new node id")]
    Revoked(String),
    /// A group name is not allowed; the reason is the record rule's.
    #[error("groups: {0}")]
    BadGroup(String),
    /// The database failed.
    #[error("trust store: {0}")]
    Store(#[from] StoreError),
}

/// A peer's state in this node's trust store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    /// Served and pulled from.
    Active,
    /// Neither served nor pulled from, until resumed.
    Suspended,
    /// Its keys are refused everywhere, for good.
    Revoked,
}

impl std::fmt::Display for PeerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PeerState::Active => "active",
            PeerState::Suspended => "suspended",
            PeerState::Revoked => "revoked",
        })
    }
}

/// What an invitation token carries: enough to pin a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    pub node_id: NodeId,
    pub endpoint: String,
    /// Ed25519 identity key, base64.
    pub key: String,
    pub key_id: String,
    /// TLS SubjectPublicKeyInfo DER, base64.
    pub tls_key: String,
}

impl Invite {
    /// The copy-pasteable token.
    pub fn to_token(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{INVITE_PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }

    /// Parses and checks a token: the key id must be the key's own.
    pub fn from_token(token: &str) -> Result<Self, TrustError> {
        let token = token.trim();
        if token.len() > MAX_INVITE_BYTES {
            return Err(TrustError::Invite(format!(
                "longer than {MAX_INVITE_BYTES} bytes"
            )));
        }
        let body = token
            .strip_prefix(INVITE_PREFIX)
            .ok_or_else(|| TrustError::Invite(format!("does not start with `{INVITE_PREFIX}`")))?;
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| TrustError::Invite("not base64url; was it copied whole?".into()))?;
        let invite: Invite =
            serde_json::from_slice(&json).map_err(|e| TrustError::Invite(e.to_string()))?;
        let key = invite.verifying_key()?;
        if KeyId::of(&key).as_str() != invite.key_id {
            return Err(TrustError::Invite(format!(
                "key_id {} is not the id of the key it carries",
                invite.key_id
            )));
        }
        invite.tls_key_der()?;
        Ok(invite)
    }

    fn verifying_key(&self) -> Result<VerifyingKey, TrustError> {
        let bytes = STANDARD
            .decode(&self.key)
            .map_err(|_| TrustError::Invite("key: not base64".into()))?;
        let ring = KeyRing::new(&self.node_id, &[parse_verifying_key(&bytes)?], 1)?;
        let id = ring
            .key_ids()
            .next()
            .cloned()
            .ok_or_else(|| TrustError::Invite("key: missing".into()))?;
        ring.key(&id)
            .copied()
            .ok_or_else(|| TrustError::Invite("key: missing".into()))
    }

    fn tls_key_der(&self) -> Result<Vec<u8>, TrustError> {
        let der = STANDARD
            .decode(&self.tls_key)
            .map_err(|_| TrustError::Invite("tls_key: not base64".into()))?;
        if der.is_empty() || der.len() > 1024 {
            return Err(TrustError::Invite("tls_key: not a public key".into()));
        }
        Ok(der)
    }
}

fn parse_verifying_key(bytes: &[u8]) -> Result<VerifyingKey, TrustError> {
    let bytes: &[u8; 32] = bytes
        .try_into()
        .map_err(|_| TrustError::Invite("key: not 32 bytes".into()))?;
    VerifyingKey::from_bytes(bytes)
        .map_err(|_| TrustError::Invite("key: not an Ed25519 key".into()))
}

/// One pinned peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub node_id: NodeId,
    pub endpoint: String,
    /// Ed25519 identity key, 32 bytes.
    #[serde(with = "b64")]
    pub identity_key: Vec<u8>,
    pub key_id: String,
    /// Pinned TLS SubjectPublicKeyInfo DERs.
    #[serde(with = "b64_list")]
    pub tls_keys: Vec<Vec<u8>>,
    pub groups: Vec<String>,
    pub state: PeerState,
    pub added_at: String,
    pub changed_at: String,
}

impl Peer {
    /// The root key pinned for this peer: its first key set must be signed
    /// by it (for a node made before root keys, its identity key).
    pub fn pinned_root(&self) -> Result<VerifyingKey, TrustError> {
        let key = parse_verifying_key(&self.identity_key)?;
        // The same vetting a key ring gives its keys.
        KeyRing::new(&self.node_id, &[key], 1)?;
        Ok(key)
    }
}

mod b64 {
    use super::*;
    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

mod b64_list {
    use super::*;
    pub fn serialize<S: serde::Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|b| STANDARD.encode(b)))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let list = Vec::<String>::deserialize(d)?;
        list.into_iter()
            .map(|text| STANDARD.decode(text).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub at: String,
    pub action: String,
    pub peer: String,
    pub detail: String,
}

/// The trust store, kept in the node's database.
#[derive(Clone)]
pub struct TrustStore {
    own_id: NodeId,
    peers: Table,
    audit: Table,
}

impl TrustStore {
    /// Opens the trust tables of `store` for node `own_id`.
    pub fn open(store: &Store, own_id: &NodeId) -> Result<Self, TrustError> {
        Ok(Self {
            own_id: own_id.clone(),
            peers: store.table(tree::PEERS)?,
            audit: store.table(tree::AUDIT)?,
        })
    }

    /// Pins a peer from its invitation, in `groups`, unless a key of the
    /// invitation is pinned for another peer. The node pins with
    /// [`crate::node::Node::pin`], which also refuses a TLS key another
    /// peer's key sets list.
    pub fn add(&self, invite: &Invite, groups: &[String]) -> Result<Peer, TrustError> {
        self.add_unless_held(invite, groups, &|_| Vec::new())
    }

    /// [`TrustStore::add`], refusing as well a TLS key that `held` names
    /// for another peer: the keys the node takes as that peer's in a
    /// handshake besides those pinned (the ones its key sets list).
    pub fn add_unless_held(
        &self,
        invite: &Invite,
        groups: &[String],
        held: &dyn Fn(&Peer) -> Vec<Vec<u8>>,
    ) -> Result<Peer, TrustError> {
        if invite.node_id == self.own_id {
            return Err(TrustError::SelfPin(invite.node_id.to_string()));
        }
        for group in groups {
            check_group(group)?;
        }
        let identity_key = STANDARD
            .decode(&invite.key)
            .map_err(|_| TrustError::Invite("key: not base64".into()))?;
        let tls_key = invite.tls_key_der()?;
        for other in self.list()? {
            if other.node_id == invite.node_id {
                continue;
            }
            let what = if other.identity_key == identity_key {
                "identity key"
            } else if other.tls_keys.contains(&tls_key) || held(&other).contains(&tls_key) {
                "TLS key"
            } else {
                continue;
            };
            return Err(TrustError::KeyInUse {
                what,
                peer: other.node_id.to_string(),
            });
        }
        let now = crate::date::now_rfc3339();
        let peer = Peer {
            node_id: invite.node_id.clone(),
            endpoint: invite.endpoint.clone(),
            identity_key,
            key_id: invite.key_id.clone(),
            tls_keys: vec![tls_key],
            groups: groups.to_vec(),
            state: PeerState::Active,
            added_at: now.clone(),
            changed_at: now,
        };
        let value = encode_peer(&peer);
        if !self
            .peers
            .compare_and_swap(peer.node_id.as_bytes(), None, value)?
        {
            return Err(TrustError::AlreadyPinned(peer.node_id.to_string()));
        }
        self.record(
            "pin",
            &peer.node_id,
            &format!(
                "key {} endpoint {} groups [{}]",
                peer.key_id,
                peer.endpoint,
                peer.groups.join(",")
            ),
        )?;
        Ok(peer)
    }

    /// The peer pinned under `node_id`.
    pub fn get(&self, node_id: &str) -> Result<Option<Peer>, TrustError> {
        self.peers
            .get(node_id.as_bytes())?
            .map(|bytes| decode_peer(node_id, &bytes))
            .transpose()
    }

    /// Every pinned peer, by node id.
    pub fn list(&self) -> Result<Vec<Peer>, TrustError> {
        self.peers
            .iter()
            .map(|item| {
                let (key, value) = item?;
                decode_peer(&String::from_utf8_lossy(&key), &value)
            })
            .collect()
    }

    /// Active peers only.
    pub fn active(&self) -> Result<Vec<Peer>, TrustError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|p| p.state == PeerState::Active)
            .collect())
    }

    /// The peer whose pinned TLS key is `spki`, whatever its state; an
    /// error when more than one peer has it (never the first match).
    pub fn by_tls_key(&self, spki: &[u8]) -> Result<Option<Peer>, TrustError> {
        let mut found: Vec<Peer> = self
            .list()?
            .into_iter()
            .filter(|p| p.tls_keys.iter().any(|k| k == spki))
            .collect();
        if found.len() > 1 {
            let names: Vec<&str> = found.iter().map(|p| p.node_id.as_str()).collect();
            return Err(TrustError::AmbiguousKey(names.join(", ")));
        }
        Ok(found.pop())
    }

    /// Changes a peer's state. Revocation is final.
    pub fn set_state(&self, node_id: &str, state: PeerState) -> Result<Peer, TrustError> {
        let (before, peer) = self.update(node_id, |peer| {
            if peer.state == PeerState::Revoked && state != PeerState::Revoked {
                return Err(TrustError::Revoked(node_id.to_owned()));
            }
            peer.state = state;
            Ok(())
        })?;
        self.record(
            &state.to_string(),
            node_id,
            &format!("was {}", before.state),
        )?;
        Ok(peer)
    }

    /// Sets a peer's groups.
    pub fn set_groups(&self, node_id: &str, groups: &[String]) -> Result<Peer, TrustError> {
        for group in groups {
            check_group(group)?;
        }
        let (_, peer) = self.update(node_id, |peer| {
            peer.groups = groups.to_vec();
            Ok(())
        })?;
        self.record("groups", node_id, &format!("[{}]", groups.join(",")))?;
        Ok(peer)
    }

    /// Applies `change` to the stored peer with compare-and-swap, retrying
    /// when another change landed in between, so concurrent changes never
    /// undo each other (a groups update cannot resurrect a revoked peer).
    /// Returns the peer before and after.
    fn update(
        &self,
        node_id: &str,
        mut change: impl FnMut(&mut Peer) -> Result<(), TrustError>,
    ) -> Result<(Peer, Peer), TrustError> {
        loop {
            let stored = self
                .peers
                .get(node_id.as_bytes())?
                .ok_or_else(|| TrustError::UnknownPeer(node_id.to_owned()))?;
            let before = decode_peer(node_id, &stored)?;
            let mut peer = before.clone();
            change(&mut peer)?;
            peer.changed_at = crate::date::now_rfc3339();
            if self
                .peers
                .compare_and_swap(node_id.as_bytes(), Some(&stored), encode_peer(&peer))?
            {
                return Ok((before, peer));
            }
        }
    }

    /// Appends to the audit trail (and to the node's log) and makes it durable.
    pub fn record(&self, action: &str, peer: &str, detail: &str) -> Result<(), TrustError> {
        let event = AuditEvent {
            at: crate::date::now_rfc3339(),
            action: action.to_owned(),
            peer: peer.to_owned(),
            detail: detail.to_owned(),
        };
        tracing::info!(target: "audit", action, peer, detail, "trust change");
        let value = serde_json::to_vec(&event).expect("an audit event serializes");
        self.audit.push(value)?;
        self.audit.flush()?;
        Ok(())
    }

    /// The audit trail, oldest first.
    pub fn audit_log(&self) -> Result<Vec<AuditEvent>, TrustError> {
        self.audit
            .iter()
            .map(|item| {
                let (key, value) = item?;
                serde_json::from_slice(&value).map_err(|e| {
                    TrustError::Store(StoreError::Corrupt {
                        tree: tree::AUDIT,
                        detail: format!("event {}: {e}", hex::encode(key)),
                    })
                })
            })
            .collect()
    }
}

fn encode_peer(peer: &Peer) -> Vec<u8> {
    serde_json::to_vec(peer).expect("a peer serializes")
}

fn decode_peer(key: &str, bytes: &[u8]) -> Result<Peer, TrustError> {
    serde_json::from_slice(bytes).map_err(|e| {
        TrustError::Store(StoreError::Corrupt {
            tree: tree::PEERS,
            detail: format!("peer {key}: {e}"),
        })
    })
}

/// The records' rule for group names, so a peer can be placed in every
/// group a record can name and in no other.
fn check_group(group: &str) -> Result<(), TrustError> {
    crate::record::check_group_name(group).map_err(TrustError::BadGroup)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::NodeKey;

    fn invite(node_id: &str) -> Invite {
        let key = NodeKey::generate();
        Invite {
            node_id: node_id.parse().unwrap(),
            endpoint: "127.0.0.1:7400".into(),
            key: STANDARD.encode(key.public().ed25519),
            key_id: key.key_id().to_string(),
            tls_key: STANDARD.encode(format!("spki of {node_id}'s tls key")),
        }
    }

    fn store() -> (tempfile::TempDir, TrustStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (
            dir,
            TrustStore::open(&store, &"polar".parse().unwrap()).unwrap(),
        )
    }

    #[test]
    fn an_invitation_round_trips_and_is_checked() {
        let original = invite("uni");
        assert_eq!(Invite::from_token(&original.to_token()).unwrap(), original);

        let mut wrong_id = original.clone();
        wrong_id.key_id = NodeKey::generate().key_id().to_string();
        let err = Invite::from_token(&wrong_id.to_token()).unwrap_err();
        assert!(err.to_string().contains("not the id of the key"), "{err}");

        let mut weak = original.clone();
        let mut identity = [0u8; 32];
        identity[0] = 1;
        weak.key = STANDARD.encode(identity);
        weak.key_id = KeyId::from_key_bytes(&identity).to_string();
        assert!(matches!(
            Invite::from_token(&weak.to_token()),
            Err(TrustError::Key(_))
        ));

        let token = original.to_token();
        let truncated = &token[..token.len() - 10];
        assert!(Invite::from_token(truncated).is_err());
        assert!(Invite::from_token("hello")
            .unwrap_err()
            .to_string()
            .contains("meridian-invite-v1"));
        assert!(Invite::from_token(&"x".repeat(10_000)).is_err());
    }

    #[test]
    fn peers_are_pinned_once_and_revocation_is_final() {
        let (_dir, trust) = store();
        let peer = trust
            .add(&invite("uni"), &["polar-consortium".into()])
            .unwrap();
        assert_eq!(peer.state, PeerState::Active);
        assert!(matches!(
            trust.add(&invite("uni"), &[]),
            Err(TrustError::AlreadyPinned(_))
        ));
        assert!(matches!(
            trust.add(&invite("polar"), &[]),
            Err(TrustError::SelfPin(_))
        ));
        assert!(matches!(
            trust.add(&invite("bio"), &["Bad Group".into()]),
            Err(TrustError::BadGroup(_))
        ));

        let found = trust.by_tls_key(b"spki of uni's tls key").unwrap().unwrap();
        assert_eq!(found.node_id, "uni");

        trust.set_state("uni", PeerState::Suspended).unwrap();
        assert!(trust.active().unwrap().is_empty());
        trust.set_state("uni", PeerState::Active).unwrap();
        trust.set_state("uni", PeerState::Revoked).unwrap();
        assert!(matches!(
            trust.set_state("uni", PeerState::Active),
            Err(TrustError::Revoked(_))
        ));
        assert!(matches!(
            trust.set_state("nobody", PeerState::Active),
            Err(TrustError::UnknownPeer(_))
        ));

        let actions: Vec<String> = trust
            .audit_log()
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, ["pin", "suspended", "active", "revoked"]);
    }

    /// Issue item (trust store): keys are pinned for one peer only, group
    /// names follow the records' rule, and the advice after a revoke is
    /// one an operator can follow.
    #[test]
    fn keys_are_pinned_for_one_peer_and_group_names_follow_the_record_rule() {
        let (_dir, trust) = store();
        let uni = invite("uni");
        trust.add(&uni, &[]).unwrap();
        let same_tls = Invite {
            tls_key: uni.tls_key.clone(),
            ..invite("bio")
        };
        let err = trust.add(&same_tls, &[]).unwrap_err();
        assert!(
            matches!(&err, TrustError::KeyInUse { what: "TLS key", peer } if peer == "uni"),
            "{err}"
        );
        let same_identity = Invite {
            key: uni.key.clone(),
            key_id: uni.key_id.clone(),
            ..invite("bio")
        };
        assert!(matches!(
            trust.add(&same_identity, &[]),
            Err(TrustError::KeyInUse {
                what: "identity key",
                ..
            })
        ));
        assert!(trust.list().unwrap().len() == 1, "nothing half-pinned");

        // A name a record may carry is a name a peer may be placed in.
        for (name, record_ok) in [
            ("polar-consortium", true),
            ("-lead", false),
            ("a.b_c", true),
        ] {
            assert_eq!(crate::record::check_group_name(name).is_ok(), record_ok);
            assert_eq!(check_group(name).is_ok(), record_ok, "{name}");
        }

        trust.set_state("uni", PeerState::Revoked).unwrap();
        let advice = trust.add(&invite("uni"), &[]).unwrap_err().to_string();
        assert!(!advice.contains("revoke it first"), "{advice}");
        let advice = trust
            .set_state("uni", PeerState::Active)
            .unwrap_err()
            .to_string();
        assert!(advice.contains("new node id"), "{advice}");
    }
}
