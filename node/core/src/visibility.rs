//! Who may see what (DESIGN §6): the one rule, and the forms the rest of
//! the node needs it in.
//!
//! A record's `visibility` and `groups` are inside the origin's signature,
//! and so is who they mean: the origin publishes its **audience** (an
//! `Audience` log entry: the roster FEDERATION means, and each group's
//! members), and every node that serves the origin's records — the origin
//! or a relay — decides from the latest audience of that origin it holds,
//! never from its own trust store ([`Grants`]). An origin with no audience
//! yet (a log written before audiences) falls back to the serving node's
//! pin for FEDERATION and to nobody for GROUPS (fail safe).
//!
//! The rule ([`Viewer::may_see`]) decides for every path that reads the
//! store (GetRecord, ListRecords). The index cannot call a function per
//! document, so it stores [`audience_terms`] with each record (they name the
//! origin: `fed:<origin>`, `grp:<origin>:<group>`) and filters on
//! [`Viewer::index_filter`]; a pull decides per entry from a few wire fields
//! without decoding the record ([`pull_delivery`]). The tests below hold the
//! three to the same verdict for random records, audiences and callers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use prost::Message;

use crate::ids::NodeId;
use crate::proto::{Audience, AudienceGroup, DatasetRecord, Visibility};

/// At most this many peers in an audience's roster (DESIGN: a federation
/// of 10–200 nodes; room for five times that).
pub const MAX_ROSTER: usize = 1024;
/// At most this many groups in an audience.
pub const MAX_AUDIENCE_GROUPS: usize = 256;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// The operator of this node: sees every record the node holds.
    Operator { node: NodeId },
    /// A trusted peer: PUBLIC records, and FEDERATION and GROUPS records
    /// of the origins whose audiences name it ([`Grants`]). Never PRIVATE.
    Peer { node: NodeId, grants: Arc<Grants> },
    /// An unauthenticated client: PUBLIC records only.
    Anonymous,
}

/// What one peer may see beyond PUBLIC, per origin: built by the serving
/// node from the latest audience it holds of each origin ([`Grants::add`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Origins whose FEDERATION records the peer may see.
    federation: BTreeSet<String>,
    /// `(origin, group)`: GROUPS records of the origin in the group.
    groups: BTreeSet<(String, String)>,
}

impl Grants {
    /// Adds what `origin`'s audience grants `peer`. `audience` is the latest
    /// audience of the origin held here, `None` when the origin has
    /// published none: then FEDERATION follows `pinned_here` (whether the
    /// serving node pins the peer as active) and GROUPS grant nothing.
    pub fn add(
        &mut self,
        origin: &str,
        audience: Option<&AudienceView>,
        peer: &str,
        pinned_here: bool,
    ) {
        match audience {
            Some(audience) => {
                if audience.roster.contains(peer) {
                    self.federation.insert(origin.to_owned());
                }
                for (group, members) in &audience.groups {
                    if members.contains(peer) {
                        self.groups.insert((origin.to_owned(), group.clone()));
                    }
                }
            }
            None if pinned_here => {
                self.federation.insert(origin.to_owned());
            }
            None => {}
        }
    }

    /// The grants of `peer` by one origin's audience alone.
    pub fn of(origin: &str, audience: Option<&AudienceView>, peer: &str, pinned: bool) -> Self {
        let mut grants = Self::default();
        grants.add(origin, audience, peer, pinned);
        grants
    }

    /// Whether these grants include everything `other` grants.
    pub fn includes(&self, other: &Grants) -> bool {
        self.federation.is_superset(&other.federation) && self.groups.is_superset(&other.groups)
    }

    fn admits(&self, origin: &str, visibility: Visibility, record_groups: &[String]) -> bool {
        match visibility {
            Visibility::Public => true,
            Visibility::Federation => self.federation.contains(origin),
            Visibility::Groups => record_groups
                .iter()
                .any(|g| self.groups.contains(&(origin.to_owned(), g.clone()))),
            Visibility::Private | Visibility::Unspecified => false,
        }
    }
}

impl Viewer {
    /// A peer viewer with `grants`.
    pub fn peer(node: NodeId, grants: Grants) -> Self {
        Viewer::Peer {
            node,
            grants: Arc::new(grants),
        }
    }

    /// For tests: a peer that `origin`'s audience places on its roster and
    /// in `groups`.
    #[cfg(test)]
    pub(crate) fn peer_of(node: &str, origin: &str, groups: &[&str]) -> Self {
        let mut grants = Grants::default();
        grants.federation.insert(origin.to_owned());
        for group in groups {
            grants
                .groups
                .insert((origin.to_owned(), (*group).to_owned()));
        }
        Viewer::peer(NodeId::parse(node).expect("a node id"), grants)
    }

    /// Whether this viewer may see `record`.
    pub fn may_see(&self, record: &DatasetRecord) -> bool {
        self.may_see_audience(&record.origin, record.visibility, &record.groups)
    }

    /// The rule, from a record's origin, `visibility` and `groups` alone.
    /// An unknown or unspecified visibility is PRIVATE: fail closed.
    pub fn may_see_audience(
        &self,
        origin: &str,
        visibility: i32,
        record_groups: &[String],
    ) -> bool {
        let visibility = Visibility::try_from(visibility).unwrap_or(Visibility::Private);
        match self {
            Viewer::Operator { .. } => true,
            Viewer::Anonymous => visibility == Visibility::Public,
            // A peer's own records, as relayed back to it: what it shared.
            Viewer::Peer { node, .. } if node.as_str() == origin => matches!(
                visibility,
                Visibility::Public | Visibility::Federation | Visibility::Groups
            ),
            Viewer::Peer { grants, .. } => grants.admits(origin, visibility, record_groups),
        }
    }

    /// The index's form of the rule: a record is visible when it carries at
    /// least one of these [`audience_terms`]; `None` when everything is.
    /// A peer's filter has one term per origin and group its grants name.
    pub fn index_filter(&self) -> Option<Vec<String>> {
        match self {
            Viewer::Operator { .. } => None,
            Viewer::Anonymous => Some(vec![ANYONE.to_owned()]),
            Viewer::Peer { node, grants } => {
                let mut terms = vec![ANYONE.to_owned(), shared_term(node.as_str())];
                terms.extend(grants.federation.iter().map(|o| federation_term(o)));
                terms.extend(grants.groups.iter().map(|(o, g)| group_term(o, g)));
                Some(terms)
            }
        }
    }
}

/// A digest of what a viewer whose [`Viewer::index_filter`] is `audience`
/// may see in the index, the same in every process and every build:
/// whether two pages of one search were asked by a caller who saw the same
/// records (a cursor carries it).
pub fn audience_digest(audience: Option<&[String]>) -> u64 {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    match audience {
        None => hash.update(b"everything"),
        Some(terms) => {
            let mut terms: Vec<&str> = terms.iter().map(String::as_str).collect();
            terms.sort_unstable();
            terms.dedup();
            hash.update(b"terms");
            // Length-prefixed, so no two lists hash the same bytes.
            for term in terms {
                hash.update((term.len() as u64).to_le_bytes());
                hash.update(term.as_bytes());
            }
        }
    }
    let digest = hash.finalize();
    u64::from_le_bytes(
        digest[..8]
            .try_into()
            .expect("a SHA-256 digest has 32 bytes"),
    )
}

/// Audience term of PUBLIC records: every viewer.
const ANYONE: &str = "anyone";

/// Node ids hold no ':', so these terms cannot collide.
fn shared_term(origin: &str) -> String {
    format!("own:{origin}")
}

fn federation_term(origin: &str) -> String {
    format!("fed:{origin}")
}

fn group_term(origin: &str, group: &str) -> String {
    format!("grp:{origin}:{group}")
}

/// The terms the index stores with a record of `origin`, naming who may see
/// it besides the operator. PRIVATE and unknown visibilities have none.
/// Every record the origin shares also carries `own:<origin>`, so the
/// origin, as a peer of the node relaying its records, sees them all.
pub fn audience_terms(origin: &str, visibility: i32, groups: &[String]) -> Vec<String> {
    let mut terms = match Visibility::try_from(visibility).unwrap_or(Visibility::Private) {
        Visibility::Public => vec![ANYONE.to_owned()],
        Visibility::Federation => vec![federation_term(origin)],
        Visibility::Groups => groups.iter().map(|g| group_term(origin, g)).collect(),
        Visibility::Private | Visibility::Unspecified => return Vec::new(),
    };
    terms.push(shared_term(origin));
    terms
}

/// An origin's audience, checked: what [`Grants::add`] reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AudienceView {
    roster: BTreeSet<String>,
    groups: BTreeMap<String, BTreeSet<String>>,
}

/// Why an audience was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audience of {origin}: {message}")]
pub struct AudienceError {
    pub origin: String,
    pub message: String,
}

impl AudienceView {
    /// Checks a signed audience of `origin`: it names the origin, its node
    /// ids and group names are valid, sorted and unique, within
    /// [`MAX_ROSTER`] and [`MAX_AUDIENCE_GROUPS`], and every member of a
    /// group is on the roster.
    pub fn check(origin: &str, audience: &Audience) -> Result<Self, AudienceError> {
        let error = |message: String| AudienceError {
            origin: origin.to_owned(),
            message,
        };
        if audience.origin != origin {
            return Err(error(format!("names origin `{}`", audience.origin)));
        }
        if audience.roster.len() > MAX_ROSTER {
            return Err(error(format!(
                "roster: {} peers, at most {MAX_ROSTER}",
                audience.roster.len()
            )));
        }
        if audience.groups.len() > MAX_AUDIENCE_GROUPS {
            return Err(error(format!(
                "groups: {} groups, at most {MAX_AUDIENCE_GROUPS}",
                audience.groups.len()
            )));
        }
        let ascending = |list: &[String]| list.windows(2).all(|w| w[0] < w[1]);
        if !ascending(&audience.roster) {
            return Err(error("roster: not sorted and unique".into()));
        }
        for id in &audience.roster {
            NodeId::parse(id).map_err(|e| error(format!("roster: {id}: {e}")))?;
        }
        let roster: BTreeSet<String> = audience.roster.iter().cloned().collect();
        let names: Vec<String> = audience.groups.iter().map(|g| g.name.clone()).collect();
        if !ascending(&names) {
            return Err(error("groups: not sorted and unique".into()));
        }
        let mut groups = BTreeMap::new();
        for group in &audience.groups {
            crate::record::check_group_name(&group.name)
                .map_err(|e| error(format!("group `{}`: {e}", group.name)))?;
            if !ascending(&group.members) {
                return Err(error(format!(
                    "group `{}`: members not sorted and unique",
                    group.name
                )));
            }
            if let Some(outsider) = group.members.iter().find(|m| !roster.contains(*m)) {
                return Err(error(format!(
                    "group `{}`: member {outsider} is not on the roster",
                    group.name
                )));
            }
            groups.insert(
                group.name.clone(),
                group.members.iter().cloned().collect::<BTreeSet<_>>(),
            );
        }
        Ok(Self { roster, groups })
    }
}

/// The audience an origin publishes from its trust store: `peers` are its
/// active peers with their groups. Sorted, so the same trust store always
/// gives the same bytes; refused beyond the bounds (naming which).
pub fn audience_of<'a>(
    origin: &str,
    peers: impl IntoIterator<Item = (&'a str, &'a [String])>,
) -> Result<Audience, AudienceError> {
    let mut roster = BTreeSet::new();
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (node, peer_groups) in peers {
        roster.insert(node.to_owned());
        for group in peer_groups {
            groups
                .entry(group.clone())
                .or_default()
                .insert(node.to_owned());
        }
    }
    let audience = Audience {
        origin: origin.to_owned(),
        roster: roster.into_iter().collect(),
        groups: groups
            .into_iter()
            .map(|(name, members)| AudienceGroup {
                name,
                members: members.into_iter().collect(),
            })
            .collect(),
    };
    AudienceView::check(origin, &audience)?;
    Ok(audience)
}

/// How a pull sends one log entry to its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The signed envelope, whole.
    Envelope,
    /// Its two leaf digests only: the caller can check the log but learns
    /// nothing of the record.
    Digests,
}

/// Whether anonymous callers see `record`, one version of a record, whole:
/// PUBLIC, and not a tombstone. The latest such version is what a record's
/// state notes ([`crate::log::LastPublic`]) and what an OAI-PMH harvester
/// is told of a record that left public view.
pub fn public_version(record: &DatasetRecord) -> bool {
    !record.deleted && Viewer::Anonymous.may_see(record)
}

/// Of a `LogEntry`, what decides who may receive it: the same wire fields,
/// decoded without the rest of the record (serving a pull reads every
/// entry, and most of a record's bytes do not matter here). The tags are
/// those of `proto/meridian/v1/record.proto`; a test checks this decode
/// against the full one.
#[derive(Clone, PartialEq, prost::Message)]
struct EntryAudience {
    /// `LogEntry.origin`.
    #[prost(string, tag = "1")]
    origin: String,
    /// `LogEntry.record` (a member of the `body` oneof); `None` for a key
    /// set, an audience or a kind of entry this build does not know.
    #[prost(message, optional, tag = "3")]
    record: Option<RecordAudience>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RecordAudience {
    /// `DatasetRecord.id`.
    #[prost(string, tag = "2")]
    id: String,
    /// `DatasetRecord.visibility`.
    #[prost(enumeration = "crate::proto::Visibility", tag = "17")]
    visibility: i32,
    /// `DatasetRecord.groups`.
    #[prost(string, repeated, tag = "18")]
    groups: Vec<String>,
}

/// The pull's form of the rule: how `viewer` receives the entry whose
/// verified payload is `payload`, and the id of the record it is about
/// (`None` for a key set or an audience, which every peer receives: they
/// are what a receiver and a relay need to verify and to enforce).
pub fn pull_delivery(
    viewer: &Viewer,
    payload: &[u8],
) -> Result<(Delivery, Option<String>), prost::DecodeError> {
    let entry = EntryAudience::decode(payload)?;
    Ok(match entry.record {
        Some(record)
            if !viewer.may_see_audience(&entry.origin, record.visibility, &record.groups) =>
        {
            (Delivery::Digests, Some(record.id))
        }
        Some(record) => (Delivery::Envelope, Some(record.id)),
        None => (Delivery::Envelope, None),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::proto::{log_entry::Body, KeySet, LogEntry};

    const GROUPS: [&str; 3] = ["polar-consortium", "biomed", "a.b_c-d"];
    const ORIGINS: [&str; 3] = ["polar", "uni", "relay"];
    const NODES: [&str; 3] = ["peer", "outsider", "uni"];

    fn groups() -> impl Strategy<Value = Vec<String>> {
        proptest::sample::subsequence(GROUPS.to_vec(), 0..=GROUPS.len())
            .prop_map(|g| g.into_iter().map(str::to_owned).collect())
    }

    fn node(id: &str) -> NodeId {
        NodeId::parse(id).unwrap()
    }

    /// An audience over NODES and GROUPS, or none (an origin that has not
    /// published one).
    fn audience(origin: &'static str) -> impl Strategy<Value = Option<Audience>> {
        proptest::option::of(
            proptest::collection::vec((proptest::sample::select(NODES.to_vec()), groups()), 0..4)
                .prop_map(move |peers| {
                    let peers: BTreeMap<&str, Vec<String>> = peers.into_iter().collect();
                    audience_of(origin, peers.iter().map(|(n, g)| (*n, g.as_slice()))).unwrap()
                }),
        )
    }

    /// The viewer a serving node builds for `peer` from the audiences it
    /// holds of each origin.
    fn viewer() -> impl Strategy<Value = (Viewer, Vec<Option<Audience>>, bool)> {
        (
            0..3usize,
            proptest::sample::select(NODES.to_vec()),
            any::<bool>(),
            audience("polar"),
            audience("uni"),
            audience("relay"),
        )
            .prop_map(|(kind, peer, pinned, a, b, c)| {
                let audiences = vec![a, b, c];
                let viewer = match kind {
                    0 => Viewer::Anonymous,
                    1 => Viewer::Operator { node: node("here") },
                    _ => {
                        let mut grants = Grants::default();
                        for (origin, audience) in ORIGINS.iter().zip(&audiences) {
                            let view = audience
                                .as_ref()
                                .map(|a| AudienceView::check(origin, a).unwrap());
                            grants.add(origin, view.as_ref(), peer, pinned);
                        }
                        Viewer::peer(node(peer), grants)
                    }
                };
                (viewer, audiences, pinned)
            })
    }

    fn record() -> impl Strategy<Value = DatasetRecord> {
        // -1 and 9 are values no version of the enum names: fail closed.
        (
            proptest::sample::select(ORIGINS.to_vec()),
            prop_oneof![Just(-1), 0..=4, Just(9)],
            groups(),
        )
            .prop_map(|(origin, visibility, groups)| DatasetRecord {
                origin: origin.into(),
                id: "PDC-1".into(),
                version: 3,
                title: "Sea ice thickness".into(),
                description: "Fifty years of it".into(),
                keywords: vec!["sea ice".into()],
                visibility,
                groups,
                ..Default::default()
            })
    }

    fn index_admits(viewer: &Viewer, record: &DatasetRecord) -> bool {
        let terms = audience_terms(&record.origin, record.visibility, &record.groups);
        match viewer.index_filter() {
            None => true,
            Some(filter) => filter.iter().any(|t| terms.contains(t)),
        }
    }

    /// The rule, written out from the audience itself: what the grants,
    /// the index and the pull must all agree with.
    fn expected(
        viewer: &Viewer,
        record: &DatasetRecord,
        audiences: &[Option<Audience>],
        pinned: bool,
    ) -> bool {
        let visibility = Visibility::try_from(record.visibility).unwrap_or(Visibility::Private);
        let peer = match viewer {
            Viewer::Operator { .. } => return true,
            Viewer::Anonymous => return visibility == Visibility::Public,
            Viewer::Peer { node, .. } => node.as_str(),
        };
        let at = ORIGINS.iter().position(|o| *o == record.origin).unwrap();
        if peer == record.origin {
            // Its own records, relayed back: whatever it shared.
            return matches!(
                visibility,
                Visibility::Public | Visibility::Federation | Visibility::Groups
            );
        }
        match (visibility, &audiences[at]) {
            (Visibility::Public, _) => true,
            (Visibility::Federation, Some(a)) => a.roster.iter().any(|n| n == peer),
            (Visibility::Federation, None) => pinned,
            (Visibility::Groups, Some(a)) => a
                .groups
                .iter()
                .any(|g| record.groups.contains(&g.name) && g.members.iter().any(|n| n == peer)),
            (Visibility::Groups, None) => false,
            _ => false,
        }
    }

    proptest! {
        #[test]
        fn the_rule_the_index_filter_and_the_pull_agree(
            record in record(),
            (viewer, audiences, pinned) in viewer(),
        ) {
            let rule = viewer.may_see(&record);
            prop_assert_eq!(index_admits(&viewer, &record), rule);
            let payload = LogEntry {
                origin: record.origin.clone(),
                index: 7,
                body: Some(Body::Record(record.clone())),
            }
            .encode_to_vec();
            let (delivery, id) = pull_delivery(&viewer, &payload).unwrap();
            prop_assert_eq!(delivery == Delivery::Envelope, rule);
            prop_assert_eq!(id.as_deref(), Some("PDC-1"));
            // And all three are what the origin's audience says (for an
            // origin with none: the serving node's pin, or nothing).
            prop_assert_eq!(rule, expected(&viewer, &record, &audiences, pinned));
        }
    }

    /// A cursor carries the digest of what its caller may see, so the
    /// digest must not change with the build that computes it (a node
    /// upgraded between two pages) nor with the order of the terms, and
    /// must tell different audiences apart.
    #[test]
    fn the_audience_digest_is_stable_and_tells_audiences_apart() {
        let terms = |list: &[&str]| list.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        // The first 8 bytes, little-endian, of SHA-256 over "terms" and
        // each term after its length as a little-endian u64.
        let anonymous = Viewer::Anonymous.index_filter();
        assert_eq!(audience_digest(anonymous.as_deref()), 0xa181_a788_b9d6_b9d9);
        assert_eq!(audience_digest(None), 0x7e2b_c3cf_d84e_a4a0);
        let ab = audience_digest(Some(&terms(&["anyone", "fed:b"])));
        assert_eq!(audience_digest(Some(&terms(&["fed:b", "anyone"]))), ab);
        assert_eq!(
            audience_digest(Some(&terms(&["fed:b", "anyone", "fed:b"]))),
            ab
        );
        let others = [
            audience_digest(None),
            audience_digest(Some(&[])),
            audience_digest(Some(&terms(&["anyone"]))),
            audience_digest(Some(&terms(&["anyonefed:b"]))),
            audience_digest(Some(&terms(&["anyone", "fed:c"]))),
        ];
        for other in others {
            assert_ne!(other, ab);
        }
        let distinct: BTreeSet<u64> = others.into_iter().collect();
        assert_eq!(distinct.len(), others.len());
    }

    /// Issue 11 item 6: a relay that pins an outsider in a group does not
    /// widen the group: the outsider's grants come from the origin's
    /// audience, and the relay's own trust store is not consulted.
    #[test]
    fn a_relay_cannot_widen_an_origins_group() {
        let audience = audience_of(
            "polar",
            [
                ("uni", &["polar-consortium".to_owned()][..]),
                ("outsider", &[][..]),
            ],
        )
        .unwrap();
        let view = AudienceView::check("polar", &audience).unwrap();
        let record = DatasetRecord {
            origin: "polar".into(),
            id: "PDC-1".into(),
            visibility: Visibility::Groups as i32,
            groups: vec!["polar-consortium".into()],
            ..Default::default()
        };
        // The relay pins the outsider (pinned = true) and would place it in
        // the group: none of that counts where the origin has spoken.
        let outsider = Viewer::peer(
            node("outsider"),
            Grants::of("polar", Some(&view), "outsider", true),
        );
        let uni = Viewer::peer(node("uni"), Grants::of("polar", Some(&view), "uni", false));
        assert!(!outsider.may_see(&record));
        assert!(uni.may_see(&record));
        // The same group name of another origin grants nothing here.
        let elsewhere =
            audience_of("uni", [("outsider", &["polar-consortium".to_owned()][..])]).unwrap();
        let mut grants = Grants::of("polar", Some(&view), "outsider", true);
        grants.add(
            "uni",
            Some(&AudienceView::check("uni", &elsewhere).unwrap()),
            "outsider",
            true,
        );
        assert!(!Viewer::peer(node("outsider"), grants).may_see(&record));
        // An origin with no audience yet: FEDERATION by the serving node's
        // pin, GROUPS to nobody.
        let legacy = Viewer::peer(node("uni"), Grants::of("polar", None, "uni", true));
        assert!(!legacy.may_see(&record));
        assert!(legacy.may_see(&DatasetRecord {
            visibility: Visibility::Federation as i32,
            ..record.clone()
        }));
    }

    #[test]
    fn audiences_are_checked_and_bounded() {
        let good = audience_of(
            "polar",
            [
                ("uni", &["b".to_owned(), "a".to_owned()][..]),
                ("genomics", &["a".to_owned()][..]),
            ],
        )
        .unwrap();
        // Sorted whatever the trust store's order.
        assert_eq!(good.roster, ["genomics", "uni"]);
        assert_eq!(good.groups[0].name, "a");
        assert_eq!(good.groups[0].members, ["genomics", "uni"]);
        let refused = |change: &dyn Fn(&mut Audience)| {
            let mut bad = good.clone();
            change(&mut bad);
            AudienceView::check("polar", &bad).unwrap_err().to_string()
        };
        assert!(refused(&|a| a.origin = "uni".into()).contains("names origin `uni`"));
        assert!(refused(&|a| a.roster.reverse()).contains("roster: not sorted"));
        assert!(refused(&|a| a.roster[0] = "Bad Id".into()).contains("roster: Bad Id"));
        assert!(refused(&|a| a.groups[0].members = vec!["zz".into()])
            .contains("member zz is not on the roster"));
        assert!(refused(&|a| a.groups.reverse()).contains("groups: not sorted"));
        let many: Vec<String> = (0..=MAX_ROSTER).map(|i| format!("n{i:05}")).collect();
        assert!(refused(&|a| a.roster = many.clone()).contains("at most 1024"));
        let too_many =
            audience_of("polar", many.iter().map(|n| (n.as_str(), &[][..]))).unwrap_err();
        assert!(too_many.to_string().contains("roster"), "{too_many}");
    }

    #[test]
    fn key_sets_and_audiences_go_to_every_peer() {
        for body in [
            Body::KeySet(KeySet::default()),
            Body::Audience(Audience::default()),
        ] {
            let payload = LogEntry {
                origin: "polar".into(),
                index: 0,
                body: Some(body),
            }
            .encode_to_vec();
            let (delivery, id) = pull_delivery(&Viewer::Anonymous, &payload).unwrap();
            assert_eq!((delivery, id), (Delivery::Envelope, None));
        }
    }

    #[test]
    fn nobody_but_the_operator_sees_a_private_record() {
        let private = DatasetRecord {
            origin: "polar".into(),
            visibility: Visibility::Private as i32,
            groups: vec!["biomed".into()],
            ..Default::default()
        };
        let peer = Viewer::peer_of("uni", "polar", &["biomed"]);
        assert!(!peer.may_see(&private));
        assert!(!Viewer::Anonymous.may_see(&private));
        assert!(Viewer::Operator { node: node("x") }.may_see(&private));
        assert!(audience_terms("polar", private.visibility, &private.groups).is_empty());
    }
}
