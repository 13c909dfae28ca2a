//! Who may see what (DESIGN §6): the one rule, and the two forms the rest of
//! the node needs it in.
//!
//! A record's `visibility` and `groups` are inside the origin's signature.
//! The rule ([`Viewer::may_see`]) decides for every path that reads the
//! store (GetRecord, ListRecords). The index cannot call a function per
//! document, so it stores [`audience_terms`] with each record and filters
//! on [`Viewer::index_filter`]; a pull decides per entry from three wire
//! fields without decoding the record ([`pull_delivery`]). The tests below
//! hold the three to the same verdict for random records and callers.

use prost::Message;

use crate::ids::NodeId;
use crate::proto::{DatasetRecord, Visibility};

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// The operator of this node: sees every record the node holds.
    Operator { node: NodeId },
    /// A trusted peer: PUBLIC and FEDERATION records, and GROUPS records
    /// that share one of `groups`. Never PRIVATE.
    Peer { node: NodeId, groups: Vec<String> },
    /// An unauthenticated client: PUBLIC records only.
    Anonymous,
}

impl Viewer {
    /// Whether this viewer may see `record`.
    pub fn may_see(&self, record: &DatasetRecord) -> bool {
        self.may_see_audience(record.visibility, &record.groups)
    }

    /// The rule, from a record's `visibility` and `groups` alone. An unknown
    /// or unspecified visibility is PRIVATE: fail closed.
    pub fn may_see_audience(&self, visibility: i32, record_groups: &[String]) -> bool {
        let visibility = Visibility::try_from(visibility).unwrap_or(Visibility::Private);
        match self {
            Viewer::Operator { .. } => true,
            Viewer::Anonymous => visibility == Visibility::Public,
            Viewer::Peer { groups, .. } => match visibility {
                Visibility::Public | Visibility::Federation => true,
                Visibility::Groups => record_groups.iter().any(|g| groups.contains(g)),
                Visibility::Private | Visibility::Unspecified => false,
            },
        }
    }

    /// The index's form of the rule: a record is visible when it carries at
    /// least one of these [`audience_terms`]; `None` when everything is.
    pub fn index_filter(&self) -> Option<Vec<String>> {
        match self {
            Viewer::Operator { .. } => None,
            Viewer::Anonymous => Some(vec![ANYONE.to_owned()]),
            Viewer::Peer { groups, .. } => {
                let mut terms = vec![PEERS.to_owned()];
                terms.extend(groups.iter().map(|g| group_term(g)));
                Some(terms)
            }
        }
    }
}

/// Audience term of PUBLIC records: every viewer.
const ANYONE: &str = "anyone";
/// Audience term of PUBLIC and FEDERATION records: every trusted peer.
const PEERS: &str = "peers";

fn group_term(group: &str) -> String {
    format!("group:{group}")
}

/// The terms the index stores with a record, naming who may see it besides
/// the operator: a viewer's filter is then one term (anonymous), or one term
/// plus one per group (peers). PRIVATE and unknown visibilities have none.
pub fn audience_terms(visibility: i32, groups: &[String]) -> Vec<String> {
    match Visibility::try_from(visibility).unwrap_or(Visibility::Private) {
        Visibility::Public => vec![ANYONE.to_owned(), PEERS.to_owned()],
        Visibility::Federation => vec![PEERS.to_owned()],
        Visibility::Groups => groups.iter().map(|g| group_term(g)).collect(),
        Visibility::Private | Visibility::Unspecified => Vec::new(),
    }
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

/// Of a `LogEntry`, what decides who may receive it: the same wire fields,
/// decoded without the rest of the record (serving a pull reads every
/// entry, and most of a record's bytes do not matter here). The tags are
/// those of `proto/meridian/v1/record.proto`; a test checks this decode
/// against the full one.
#[derive(Clone, PartialEq, prost::Message)]
struct EntryAudience {
    /// `LogEntry.record` (a member of the `body` oneof); `None` for a key set.
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
/// (`None` for a key set, which every peer receives).
pub fn pull_delivery(
    viewer: &Viewer,
    payload: &[u8],
) -> Result<(Delivery, Option<String>), prost::DecodeError> {
    let entry = EntryAudience::decode(payload)?;
    Ok(match entry.record {
        Some(record) if !viewer.may_see_audience(record.visibility, &record.groups) => {
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

    fn groups() -> impl Strategy<Value = Vec<String>> {
        proptest::sample::subsequence(GROUPS.to_vec(), 0..=GROUPS.len())
            .prop_map(|g| g.into_iter().map(str::to_owned).collect())
    }

    fn node(id: &str) -> NodeId {
        NodeId::parse(id).unwrap()
    }

    fn viewer() -> impl Strategy<Value = Viewer> {
        prop_oneof![
            Just(Viewer::Anonymous),
            Just(Viewer::Operator { node: node("here") }),
            groups().prop_map(|groups| Viewer::Peer {
                node: node("peer"),
                groups
            }),
        ]
    }

    fn record() -> impl Strategy<Value = DatasetRecord> {
        // -1 and 9 are values no version of the enum names: fail closed.
        (prop_oneof![Just(-1), 0..=4, Just(9)], groups()).prop_map(|(visibility, groups)| {
            DatasetRecord {
                origin: "polar".into(),
                id: "PDC-1".into(),
                version: 3,
                title: "Sea ice thickness".into(),
                description: "Fifty years of it".into(),
                keywords: vec!["sea ice".into()],
                visibility,
                groups,
                ..Default::default()
            }
        })
    }

    fn index_admits(viewer: &Viewer, record: &DatasetRecord) -> bool {
        let terms = audience_terms(record.visibility, &record.groups);
        match viewer.index_filter() {
            None => true,
            Some(filter) => filter.iter().any(|t| terms.contains(t)),
        }
    }

    proptest! {
        #[test]
        fn the_rule_the_index_filter_and_the_pull_agree(
            record in record(),
            viewer in viewer(),
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
        }
    }

    #[test]
    fn key_sets_go_to_every_peer() {
        let payload = LogEntry {
            origin: "polar".into(),
            index: 0,
            body: Some(Body::KeySet(KeySet::default())),
        }
        .encode_to_vec();
        let (delivery, id) = pull_delivery(&Viewer::Anonymous, &payload).unwrap();
        assert_eq!((delivery, id), (Delivery::Envelope, None));
    }

    #[test]
    fn nobody_but_the_operator_sees_a_private_record() {
        let private = DatasetRecord {
            visibility: Visibility::Private as i32,
            groups: vec!["biomed".into()],
            ..Default::default()
        };
        let peer = Viewer::Peer {
            node: node("uni"),
            groups: vec!["biomed".into()],
        };
        assert!(!peer.may_see(&private));
        assert!(!Viewer::Anonymous.may_see(&private));
        assert!(Viewer::Operator { node: node("x") }.may_see(&private));
        assert!(audience_terms(private.visibility, &private.groups).is_empty());
    }
}
