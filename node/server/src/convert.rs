//! Conversions between the wire contract and the core's types. Every
//! service converts here and nowhere else.

use meridian_core::holdings::{ImportOutcome, Page, RecordView};
use meridian_core::query::Hit;
use meridian_core::query::{self, Scope, Sort};
use meridian_core::search::live::Forwarded;
use meridian_core::search::{Answer, Coverage};
use meridian_core::trust::{AuditEvent, Peer, PeerState};
use meridian_proto as proto;
use std::collections::BTreeMap;
use tonic::Status;

/// Hits per page when the request does not say.
const DEFAULT_LIMIT: u32 = 20;

/// A wire search request as the query model; `own` is this node's id, the
/// origin of the `local` scope.
pub fn search_request(
    req: proto::SearchRequest,
    own: &str,
) -> Result<query::SearchRequest, Status> {
    let scope = match req.scope() {
        proto::Scope::Unspecified | proto::Scope::Federation => Scope::Federation,
        proto::Scope::Local => Scope::Local {
            node: own.to_owned(),
        },
        proto::Scope::Live => Scope::Live,
    };
    let sort = match req.sort() {
        proto::Sort::Unspecified | proto::Sort::Relevance => Sort::Relevance,
        proto::Sort::Updated => Sort::Updated,
        proto::Sort::Size => Sort::Size,
    };
    let access = req
        .access
        .iter()
        .map(|value| {
            proto::Access::try_from(*value).map_err(|_| {
                crate::status::invalid_field("access", format!("access: unknown value {value}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let open = |year: u32| (year != 0).then_some(year);
    let year = (req.year_from != 0 || req.year_to != 0)
        .then_some((open(req.year_from), open(req.year_to)));
    let text_or_none = |text: String| (!text.is_empty()).then_some(text);
    Ok(query::SearchRequest {
        text: req.query,
        scope,
        disciplines: req.disciplines,
        origins: req.origins,
        access,
        licenses: req.licenses,
        formats: req.formats,
        year,
        bbox: req.bbox,
        time_from: text_or_none(req.time_from),
        time_to: text_or_none(req.time_to),
        sort,
        limit: if req.limit == 0 {
            DEFAULT_LIMIT as usize
        } else {
            req.limit as usize
        },
        after: text_or_none(req.after),
        facets: req.facets,
        highlight: req.highlight,
    })
}

/// A search answer on the wire; `took_micros` is measured by the caller.
pub fn search_response(answer: Answer, took_micros: u64) -> proto::SearchResponse {
    let Answer {
        results,
        completeness,
    } = answer;
    proto::SearchResponse {
        hits: results.hits.into_iter().map(hit).collect(),
        total: results.total,
        facets: facets(results.facets),
        next_cursor: results.next_cursor.unwrap_or_default(),
        completeness: completeness
            .into_iter()
            .map(|c| proto::Completeness {
                origin: c.origin,
                status: coverage(c.coverage) as i32,
                as_of: c.as_of,
                peers: c.peers,
                log_size: c.log_size,
                answered_by: c.answered_by,
            })
            .collect(),
        took_micros,
        total_is_lower_bound: true,
        total_is_estimate: results.estimated,
    }
}

/// One hit on the wire.
pub fn hit(hit: Hit) -> proto::SearchHit {
    proto::SearchHit {
        origin: hit.origin,
        id: hit.id,
        version: hit.version,
        title: hit.title,
        doi: hit.doi,
        publication_year: hit.publication_year,
        updated_at: hit.updated_at,
        size_bytes: hit.size_bytes,
        score: hit.score,
        snippet: hit.snippet,
        access: hit.access as i32,
        visibility: hit.visibility as i32,
        verified: hit.verified,
        also_at: hit
            .also_at
            .into_iter()
            .map(|a| proto::AlsoAt {
                origin: a.origin,
                id: a.id,
            })
            .collect(),
    }
}

fn facets(facets: BTreeMap<String, Vec<(String, u64)>>) -> Vec<proto::Facet> {
    facets
        .into_iter()
        .map(|(name, values)| proto::Facet {
            name,
            values: values
                .into_iter()
                .map(|(value, count)| proto::FacetValue { value, count })
                .collect(),
        })
        .collect()
}

/// A forwarded search's answer on the wire.
pub fn forwarded(forwarded: Forwarded) -> proto::PeerSearchResponse {
    proto::PeerSearchResponse {
        hits: forwarded.results.hits.into_iter().map(hit).collect(),
        total: forwarded.results.total,
        total_is_estimate: forwarded.results.estimated,
        facets: facets(forwarded.results.facets),
        positions: forwarded
            .positions
            .into_iter()
            .map(|(origin, size)| proto::OriginHead { origin, size })
            .collect(),
    }
}

fn coverage(coverage: Coverage) -> proto::CompletenessStatus {
    match coverage {
        Coverage::Ok => proto::CompletenessStatus::Ok,
        Coverage::Replica => proto::CompletenessStatus::Replica,
        Coverage::Timeout => proto::CompletenessStatus::Timeout,
        Coverage::Unreachable => proto::CompletenessStatus::Unreachable,
        Coverage::Refused => proto::CompletenessStatus::Refused,
        Coverage::Stale => proto::CompletenessStatus::Stale,
    }
}

pub fn record_view(view: RecordView) -> proto::RecordView {
    proto::RecordView {
        record: Some(view.record),
        envelope: Some(view.envelope),
        log_index: view.log_index.get(),
        verified_key_id: view.verified_key_id,
    }
}

pub fn page(page: Page) -> proto::ListRecordsResponse {
    proto::ListRecordsResponse {
        records: page.records.into_iter().map(record_view).collect(),
        next_page_token: page.next_page_token.unwrap_or_default(),
    }
}

pub fn import_ack(outcome: ImportOutcome) -> proto::ImportAck {
    proto::ImportAck {
        stored: outcome.stored,
        unchanged: outcome.unchanged,
        rejected: outcome.rejected,
        errors: outcome
            .errors
            .into_iter()
            .map(|e| proto::LineError {
                line: e.line,
                field: e.field,
                reason: e.reason,
            })
            .collect(),
        log_size: outcome.log_size,
    }
}

pub fn peer_state(state: PeerState) -> proto::PeerState {
    match state {
        PeerState::Active => proto::PeerState::Active,
        PeerState::Suspended => proto::PeerState::Suspended,
        PeerState::Revoked => proto::PeerState::Revoked,
    }
}

/// The state an operator asks for; unspecified is refused.
pub fn requested_peer_state(state: i32) -> Result<PeerState, Status> {
    match proto::PeerState::try_from(state) {
        Ok(proto::PeerState::Active) => Ok(PeerState::Active),
        Ok(proto::PeerState::Suspended) => Ok(PeerState::Suspended),
        Ok(proto::PeerState::Revoked) => Ok(PeerState::Revoked),
        Ok(proto::PeerState::Unspecified) | Err(_) => Err(Status::invalid_argument(
            "state: must be ACTIVE, SUSPENDED or REVOKED",
        )),
    }
}

pub fn peer_info(peer: Peer) -> proto::PeerInfo {
    proto::PeerInfo {
        node_id: peer.node_id.to_string(),
        endpoint: peer.endpoint,
        key_id: peer.key_id,
        groups: peer.groups,
        state: peer_state(peer.state) as i32,
        added_at: peer.added_at,
        changed_at: peer.changed_at,
    }
}

pub fn audit_event(event: AuditEvent) -> proto::AuditEvent {
    proto::AuditEvent {
        at: event.at,
        action: event.action,
        peer: event.peer,
        detail: event.detail,
    }
}

/// The key sets of a chain as `keys status` shows them: for each set its
/// keys, expiry, and the signing keys the next set retired, with where.
pub fn keys_status(
    chain: &meridian_core::keyset::KeyChain,
    signing_key: Option<String>,
) -> proto::KeysStatusResponse {
    let links = chain.links();
    let ids = |keys: &[proto::PublicKey]| keys.iter().map(|k| k.key_id.clone()).collect::<Vec<_>>();
    let sets = links
        .iter()
        .enumerate()
        .map(|(i, link)| {
            let next = links.get(i + 1);
            let signing = ids(&link.set.keys);
            let retired_keys = next
                .map(|next| {
                    signing
                        .iter()
                        .filter(|k| !next.set.keys.iter().any(|n| &n.key_id == *k))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let (root_keys, root_threshold) = if link.set.root_keys.is_empty() {
                (signing.clone(), link.set.threshold)
            } else {
                (ids(&link.set.root_keys), link.set.root_threshold)
            };
            proto::KeySetStatus {
                index: link.index,
                version: link.set.version,
                signing_keys: signing,
                threshold: link.set.threshold,
                root_keys,
                root_threshold,
                expires: link.set.expires.clone(),
                retired_keys,
                retired_at: next.map(|n| n.index).unwrap_or(0),
                tls_keys: link
                    .set
                    .tls_keys
                    .iter()
                    .map(|k| meridian_core::certificate::tls_key_id(k))
                    .collect(),
            }
        })
        .collect();
    proto::KeysStatusResponse {
        origin: chain.origin().to_owned(),
        sets,
        stale: chain.expired(meridian_core::keyset::now_unix()).is_some(),
        signing_key: signing_key.unwrap_or_default(),
        changes: Vec::new(),
        revocations: chain
            .revocations()
            .iter()
            .map(|r| proto::RevocationStatus {
                key_id: r.key_id.to_string(),
                from_index: r.from,
                until_index: r.until,
                published_at: r.published_at,
                reason: r.reason.clone(),
            })
            .collect(),
        quarantined: 0,
        tls_key: String::new(),
        tls_next: String::new(),
        cosigners: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(estimated: bool) -> query::SearchResults {
        query::SearchResults {
            hits: Vec::new(),
            total: 3_351_798,
            estimated,
            facets: BTreeMap::new(),
            next_cursor: None,
        }
    }

    /// A client and a peer are told when a total is an estimate, and only
    /// then.
    #[test]
    fn an_estimated_total_says_so_on_the_wire() {
        for estimated in [true, false] {
            let answer = Answer {
                results: results(estimated),
                completeness: Vec::new(),
            };
            let wire = search_response(answer, 1);
            assert_eq!(wire.total_is_estimate, estimated);
            assert_eq!(wire.total, 3_351_798);
            let forwarded = forwarded(Forwarded {
                results: results(estimated),
                positions: Vec::new(),
            });
            assert_eq!(forwarded.total_is_estimate, estimated);
        }
    }
}
