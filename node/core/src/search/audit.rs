//! The query audit: every live search this node answered for a peer
//! (`Federation.Search`), with who asked, when, on whose behalf, a hash of
//! the query, its filters and how many hits went back. Kept in the store's
//! `query_audit_by_seq_v1` table for `search.audit_retention_days`, read by
//! the operator (`meridian audit queries`). Searches by the local operator
//! or by anonymous clients are not peers' queries and are never logged here.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::live::OnBehalfOf;
use crate::node::Node;
use crate::query::SearchRequest;
use crate::store::{tree, StoreError, Table};

/// Most entries one read returns (the newest are kept when more match).
pub const MAX_READ: usize = 10_000;

/// One query answered for a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryEntry {
    /// RFC 3339, when it was answered.
    pub at: String,
    /// `at` in Unix seconds, for retention and `since`.
    pub at_unix: i64,
    pub peer: String,
    /// `anonymous` or `node`.
    pub on_behalf_of: String,
    /// SHA-256 of the query text, hex.
    pub query_hash: String,
    /// `name=value` pairs joined by `; `.
    pub filters: String,
    pub hits: u64,
    pub total: u64,
}

/// Why the audit could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored entry does not decode: the table is damaged.
    #[error("query audit entry {key}: {message}")]
    Corrupt { key: String, message: String },
    /// `since` is not a date.
    #[error("since: `{0}` is not an RFC 3339 time or a YYYY-MM-DD date")]
    Since(String),
}

/// The node's query audit.
pub struct QueryAudit {
    table: Table,
    retention_secs: i64,
}

impl QueryAudit {
    /// The audit in `node`'s store, with the node's configured retention.
    pub fn open(node: &Node) -> Result<Self, StoreError> {
        let days = node.config().search.audit_retention_days;
        Ok(Self {
            table: node.store().table(tree::QUERY_AUDIT)?,
            retention_secs: i64::try_from(days.saturating_mul(86_400)).unwrap_or(i64::MAX),
        })
    }

    /// Logs a query `peer` sent on behalf of `claim`, answered with `hits`
    /// of `total`; drops the entries older than the retention first.
    pub fn log(
        &self,
        peer: &str,
        claim: OnBehalfOf,
        request: &SearchRequest,
        hits: u64,
        total: u64,
    ) -> Result<(), AuditError> {
        let at = crate::date::now_rfc3339();
        let at_unix = crate::date::bounds(&at)
            .map(|(start, _)| start)
            .unwrap_or(0);
        self.expire(at_unix)?;
        let entry = QueryEntry {
            at,
            at_unix,
            peer: peer.to_owned(),
            on_behalf_of: match claim {
                OnBehalfOf::Anonymous => "anonymous",
                OnBehalfOf::Node => "node",
            }
            .to_owned(),
            query_hash: hex::encode(Sha256::digest(request.text.as_bytes())),
            filters: filters(request),
            hits,
            total,
        };
        tracing::info!(target: "audit", peer, hits, total, query_hash = %entry.query_hash, "query answered for a peer");
        self.table
            .push(serde_json::to_vec(&entry).expect("an audit entry serializes"))?;
        Ok(())
    }

    /// Removes the entries older than the retention at `now` (Unix
    /// seconds). Entries are in the order answered, so it stops at the
    /// first one still kept.
    fn expire(&self, now: i64) -> Result<(), AuditError> {
        let cutoff = now.saturating_sub(self.retention_secs);
        let mut old = Vec::new();
        for item in self.table.iter() {
            let (key, value) = item?;
            let entry = decode(&key, &value)?;
            if entry.at_unix >= cutoff {
                break;
            }
            old.push(key);
        }
        for key in old {
            self.table.remove(&key)?;
        }
        Ok(())
    }

    /// The entries kept, oldest first: only `peer`'s when given, only those
    /// at or after `since` (RFC 3339 or a date) when given; at most
    /// [`MAX_READ`], the newest.
    pub fn read(
        &self,
        peer: Option<&str>,
        since: Option<&str>,
    ) -> Result<Vec<QueryEntry>, AuditError> {
        let since = since
            .map(|text| {
                crate::date::bounds(text)
                    .map(|(start, _)| start)
                    .map_err(|_| AuditError::Since(text.to_owned()))
            })
            .transpose()?;
        let mut entries = Vec::new();
        for item in self.table.iter() {
            let (key, value) = item?;
            let entry = decode(&key, &value)?;
            if peer.is_some_and(|p| p != entry.peer) || since.is_some_and(|s| entry.at_unix < s) {
                continue;
            }
            entries.push(entry);
        }
        let excess = entries.len().saturating_sub(MAX_READ);
        entries.drain(..excess);
        Ok(entries)
    }
}

fn decode(key: &[u8], value: &[u8]) -> Result<QueryEntry, AuditError> {
    serde_json::from_slice(value).map_err(|e| AuditError::Corrupt {
        key: hex::encode(key),
        message: e.to_string(),
    })
}

/// A request's filters as `name=value` pairs (values of one filter joined
/// by `,`), in a fixed order; the query text is not among them.
fn filters(request: &SearchRequest) -> String {
    let mut parts = Vec::new();
    let mut list = |name: &str, values: &[String]| {
        if !values.is_empty() {
            parts.push(format!("{name}={}", values.join(",")));
        }
    };
    list("origins", &request.origins);
    list("disciplines", &request.disciplines);
    list("licenses", &request.licenses);
    list("formats", &request.formats);
    let access: Vec<String> = request
        .access
        .iter()
        .map(|a| a.as_str_name().to_owned())
        .collect();
    list("access", &access);
    if let Some((from, to)) = request.year {
        let end = |y: Option<u32>| y.map(|y| y.to_string()).unwrap_or_default();
        parts.push(format!("year={}..{}", end(from), end(to)));
    }
    if let Some(b) = &request.bbox {
        parts.push(format!(
            "bbox={},{},{},{}",
            b.west, b.south, b.east, b.north
        ));
    }
    if request.time_from.is_some() || request.time_to.is_some() {
        parts.push(format!(
            "time={}..{}",
            request.time_from.as_deref().unwrap_or_default(),
            request.time_to.as_deref().unwrap_or_default()
        ));
    }
    parts.push(format!("limit={}", request.limit));
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Access;

    #[test]
    fn filters_name_each_one_and_never_the_query_text() {
        let request = SearchRequest {
            text: "secret words".into(),
            origins: vec!["uni".into()],
            access: vec![Access::Open],
            year: Some((Some(2010), None)),
            limit: 5,
            ..SearchRequest::default()
        };
        let text = filters(&request);
        assert_eq!(
            text,
            "origins=uni; access=ACCESS_OPEN; year=2010..; limit=5"
        );
        assert!(!text.contains("secret"));
    }

    #[test]
    fn entries_are_kept_for_the_retention_then_dropped_and_filtered_on_read() {
        let (node, _dir) = crate::test_support::opened_node("audit");
        let audit = QueryAudit::open(&node).unwrap();
        let request = SearchRequest {
            text: "ice".into(),
            ..SearchRequest::default()
        };
        audit.log("uni", OnBehalfOf::Node, &request, 2, 7).unwrap();
        audit
            .log("gen", OnBehalfOf::Anonymous, &request, 0, 0)
            .unwrap();
        let all = audit.read(None, None).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            (
                all[0].peer.as_str(),
                all[0].on_behalf_of.as_str(),
                all[0].hits,
                all[0].total
            ),
            ("uni", "node", 2, 7)
        );
        assert_eq!(all[0].query_hash, hex::encode(Sha256::digest(b"ice")));
        assert_eq!(audit.read(Some("gen"), None).unwrap().len(), 1);
        assert!(audit.read(None, Some("2999-01-01")).unwrap().is_empty());
        assert_eq!(audit.read(None, Some("2000-01-01")).unwrap().len(), 2);
        assert!(matches!(
            audit.read(None, Some("yesterday")),
            Err(AuditError::Since(_))
        ));
        // A day past the retention, both are dropped at the next append.
        let later = all[1].at_unix + audit.retention_secs + 1;
        audit.expire(later).unwrap();
        assert!(audit.read(None, None).unwrap().is_empty());
    }
}
