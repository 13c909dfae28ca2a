//! The audiences a node keeps: its own, published from its trust store
//! whenever the trust store changes what it says, and the latest one of
//! every other origin it holds, read from that origin's log. The rule that
//! reads them is `crate::visibility`.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Node, NodeError};
use crate::ids::{LogIndex, NodeId};
use crate::keyset::KeyChain;
use crate::log::{StoredEntry, UnsignedEntry};
use crate::proto::{log_entry::Body, Audience, Envelope};
use crate::store::{tree, StoreError};
use crate::trust::{Peer, PeerState};
use crate::visibility::{self, AudienceView, Grants, Viewer};

/// The audience chosen per origin, with the latest audience position and
/// the position of the origin's last key set (once it has revocations) it
/// was chosen at: every revocation, and every move of one further back,
/// comes with a new set.
pub(crate) type Cache = HashMap<String, (u64, Option<u64>, Option<Arc<AudienceView>>)>;

/// An origin's audience that a revocation set aside ([`Node::set_aside_at`]).
#[derive(Debug)]
pub(crate) struct SetAside {
    /// The audience that counts instead; `None` when every earlier one is
    /// set aside too (the origin's pin decides, as before any audience).
    pub in_force: Option<Arc<AudienceView>>,
}

impl Node {
    /// Refuses a trust change after which this node's audience could not be
    /// published (past [`visibility::MAX_ROSTER`] peers or
    /// [`visibility::MAX_AUDIENCE_GROUPS`] groups): `peer`, active with
    /// `groups`, added or changed. Called before the change is stored, so a
    /// refused one leaves the trust store as it was.
    pub fn check_audience_with(&self, peer: &str, groups: &[String]) -> Result<(), NodeError> {
        self.derived_audience(Some((peer, groups))).map(|_| ())
    }

    /// The audience the trust store's active peers make, checked as peers
    /// check it; with `changed`, that peer active with those groups in
    /// place of what the trust store holds for it.
    fn derived_audience(
        &self,
        changed: Option<(&str, &[String])>,
    ) -> Result<(Audience, AudienceView), NodeError> {
        let peers = self.trust.active()?;
        let members = peers
            .iter()
            .filter(|p| changed.is_none_or(|(peer, _)| p.node_id.as_str() != peer))
            .map(|p| (p.node_id.as_str(), p.groups.as_slice()))
            .chain(changed);
        let audience = visibility::audience_of(self.node_id().as_str(), members)?;
        let view = AudienceView::check(self.node_id().as_str(), &audience)?;
        Ok((audience, view))
    }

    /// Sets `peer`'s groups, refused as [`Node::check_audience_with`]
    /// refuses, checked and stored as one.
    pub fn set_peer_groups(&self, peer: &str, groups: &[String]) -> Result<Peer, NodeError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.check_audience_with(peer, groups)?;
        Ok(self.trust.set_groups(peer, groups)?)
    }

    /// Sets `peer`'s state; resuming it is refused as
    /// [`Node::check_audience_with`] refuses, checked and stored as one.
    pub fn set_peer_state(&self, peer: &str, state: PeerState) -> Result<Peer, NodeError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if state == PeerState::Active {
            if let Some(held) = self.trust.get(peer)? {
                self.check_audience_with(peer, &held.groups)?;
            }
        }
        Ok(self.trust.set_state(peer, state)?)
    }

    /// Appends this node's audience to its own log when its trust store
    /// says something else than the latest one published: at start and
    /// after every change of a peer's state or groups. Nothing is appended
    /// when the change does not alter the audience (a suspended peer
    /// resumed before anyone noticed, the same groups set again), so a
    /// burst of operator changes costs one entry per distinct audience.
    pub fn publish_audience(&self) -> Result<Option<u64>, NodeError> {
        if self.recovering() {
            // Appends wait until the node holds its own log again.
            return Ok(None);
        }
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        // Compared with the audience in force (not one a revoked key
        // signed), so a revocation is followed by the genuine audience.
        let (audience, derived) = self.derived_audience(None)?;
        match self.audience(self.node_id().as_str())? {
            Some(in_force) if *in_force == derived => return Ok(None),
            // No peer can pull a node that pins none, so nobody holds its
            // records to enforce an audience for: the first one is
            // published with the first peer.
            None if audience.roster.is_empty()
                && self
                    .store
                    .latest_audience_position(self.node_id().as_str())?
                    .is_none() =>
            {
                return Ok(None)
            }
            _ => {}
        }
        let summary = format!(
            "roster [{}], groups [{}]",
            audience.roster.join(","),
            audience
                .groups
                .iter()
                .map(|g| format!("{}: {}", g.name, g.members.join(" ")))
                .collect::<Vec<_>>()
                .join("; ")
        );
        let appender = self.store.appender(self.node_id())?;
        let index = appender.next_index();
        self.append_own(appender, vec![UnsignedEntry::audience(audience)])?;
        self.trust.record(
            "audience",
            self.node_id(),
            &format!("published at log index {index}: {summary}"),
        )?;
        Ok(Some(index))
    }

    /// The latest audience of `origin` held here, checked; `None` when the
    /// origin has published none (a log written before audiences). An
    /// audience signed by a key the origin revoked from before its position
    /// is quarantined like a record (`crate::quarantine`): the latest one
    /// before it counts. An error when the origin's key chain does not
    /// verify: which audience a revocation sets aside is unknown then, so
    /// none is chosen.
    pub fn audience(&self, origin: &str) -> Result<Option<Arc<AudienceView>>, NodeError> {
        let Some(latest) = self.store.latest_audience_position(origin)? else {
            return Ok(None);
        };
        let revoking = self
            .origin_keys(origin)?
            .filter(|chain| !chain.revocations().is_empty());
        let revised_at = revoking
            .as_ref()
            .and_then(|c| c.latest())
            .map(|link| link.index);
        if let Some((at, seen, view)) = self
            .audiences
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(origin)
        {
            if *at == latest && *seen == revised_at {
                return Ok(view.clone());
            }
        }
        let mut chosen = None;
        for index in self.store.audience_positions(origin)? {
            if let Some(chain) = &revoking {
                if let Some(StoredEntry::Signed(envelope)) =
                    self.store.entry(origin, LogIndex(index))?
                {
                    if chain.quarantines(index, &envelope).is_some() {
                        continue;
                    }
                }
            }
            chosen = Some(index);
            break;
        }
        let view = match chosen {
            Some(index) => Some(self.checked_audience(origin, index)?),
            None => None,
        };
        self.audiences
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(origin.to_owned(), (latest, revised_at, view.clone()));
        Ok(view)
    }

    /// What the revocation carried by `origin`'s key set at `at` sets aside
    /// here: when the latest audience before `at` was signed by a key the
    /// revocation covers (judged by `chain` as it stood at `at`), the
    /// audience that counts from `at` on is the latest one before it that
    /// no revocation covers, or none. `None` when the latest audience
    /// stands. `pending` are audiences not stored yet (the batch being
    /// applied), oldest first, each with its checked view.
    pub(crate) fn set_aside_at(
        &self,
        origin: &str,
        chain: &KeyChain,
        at: u64,
        pending: &[(u64, Envelope, Arc<AudienceView>)],
    ) -> Result<Option<SetAside>, NodeError> {
        let chain = chain.as_of(at);
        if chain.revocations().is_empty() {
            return Ok(None);
        }
        let mut set_aside = false;
        for (index, envelope, view) in pending.iter().rev().filter(|(index, ..)| *index < at) {
            if chain.quarantines(*index, envelope).is_none() {
                return Ok(set_aside.then(|| SetAside {
                    in_force: Some(Arc::clone(view)),
                }));
            }
            set_aside = true;
        }
        for index in self.store.audience_positions(origin)? {
            if index >= at {
                continue;
            }
            let Some(StoredEntry::Signed(envelope)) = self.store.entry(origin, LogIndex(index))?
            else {
                continue;
            };
            if chain.quarantines(index, &envelope).is_none() {
                if !set_aside {
                    return Ok(None);
                }
                return Ok(Some(SetAside {
                    in_force: Some(self.checked_audience(origin, index)?),
                }));
            }
            set_aside = true;
        }
        Ok(set_aside.then_some(SetAside { in_force: None }))
    }

    fn checked_audience(&self, origin: &str, index: u64) -> Result<Arc<AudienceView>, NodeError> {
        let audience = read_audience(self, origin, index)?;
        let view =
            Arc::new(
                AudienceView::check(origin, &audience).map_err(|e| StoreError::Corrupt {
                    tree: tree::LOG,
                    detail: format!("{origin} entry {index}: {e}"),
                })?,
            );
        Ok(view)
    }

    /// What pinned peer `peer` may see of every origin held here, by each
    /// origin's latest audience (`visibility::Grants`). An origin with no
    /// audience yet falls back to this node's pin for FEDERATION, and to
    /// nobody for GROUPS. An origin whose audience cannot be checked (its
    /// key chain does not verify) grants nothing but its PUBLIC records,
    /// and the other origins' grants stand.
    pub fn peer_viewer(&self, peer: &NodeId) -> Result<Viewer, NodeError> {
        let pinned = matches!(
            self.trust.get(peer.as_str())?,
            Some(p) if p.state == PeerState::Active
        );
        let mut grants = Grants::default();
        for (origin, _) in self.store.origins()? {
            match self.audience(&origin) {
                Ok(audience) => grants.add(&origin, audience.as_deref(), peer.as_str(), pinned),
                Err(e) => tracing::warn!(
                    origin = %origin,
                    peer = %peer,
                    error = %e,
                    "cannot check the origin's audience: the peer is granted none of its records but the public ones"
                ),
            }
        }
        Ok(Viewer::peer(peer.clone(), grants))
    }
}

/// The audience entry at `index` of `origin`'s log (verified when stored).
fn read_audience(node: &Node, origin: &str, index: u64) -> Result<Audience, NodeError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        tree: tree::LOG,
        detail: format!("{origin} entry {index}: {detail}"),
    };
    let entry = match node.store.entry(origin, LogIndex(index))? {
        Some(entry @ StoredEntry::Signed(_)) => entry,
        _ => return Err(corrupt("not a stored audience".into()).into()),
    };
    match entry.entry().map_err(|e| corrupt(e.to_string()))? {
        Some(crate::proto::LogEntry {
            body: Some(Body::Audience(audience)),
            ..
        }) => Ok(audience),
        _ => Err(corrupt("not an audience".into()).into()),
    }
}
