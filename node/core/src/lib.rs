//! Meridian's domain: everything a node knows and decides, with no gRPC
//! server and no HTTP (those are `meridian-server`'s).
//!
//! Modules, from the bottom up (each uses only those above it):
//!
//! | module | owns |
//! | --- | --- |
//! | [`ids`] | the names the domain passes around: node ids, record ids, log positions |
//! | `quote` | text from input quoted in error messages: bounded and escaped |
//! | [`config`] | the TOML configuration and its environment overrides |
//! | [`date`] | dates as records carry them (`YYYY`, `YYYY-MM-DD`, RFC 3339) |
//! | [`record`] | the metadata model's JSON form and its validation (DESIGN §2) |
//! | [`metrics`] | what the node counts as it works (Prometheus) |
//! | [`merkle`] | RFC 9162 Merkle tree math |
//! | [`sign`] | DSSE envelopes, Ed25519 keys, verification (DESIGN §3) |
//! | [`certificate`] | this node's TLS key and certificate files |
//! | [`log`] | per-origin logs: leaves, stored entries, appends, checkpoints (§4) |
//! | [`store`] | the sled database, the only user of sled (§9) |
//! | [`trust`] | the operator's trust store and audit trail (§5) |
//! | [`visibility`] | who may see what, for every path (§6) |
//! | [`query`] | the search request, its query language and cursors |
//! | [`index`] | the tantivy holdings index (§8) |
//! | [`node`] | a node's parts, opened from its data directory |
//! | [`backup`] | backups of a node, restores, and the recovery a restore starts |
//! | [`holdings`] | the node's own records: import, sign, delete, read |
//! | [`quarantine`] | records a key revocation quarantines, counted, and re-signed |
//! | [`indexer`] | keeps the index in step with the store |
//! | [`search`] | answers a search with its completeness report |
//! | [`sync`] | replication: pull, verify, apply, serve (§7); witnesses and evidence of equivocation (`sync::witness`, §4–§5) |
//! | [`oai`] | what the OAI-PMH provider lists: order, datestamps, sets, deleted records |

/// The wire types, generated from `proto/` (re-exported from `meridian-proto`).
pub use meridian_proto as proto;

pub mod backup;
pub mod certificate;
pub mod config;
pub mod crosswalk;
pub mod date;
pub mod fsck;
pub mod harvest;
pub mod holdings;
pub mod ids;
pub mod index;
pub mod indexer;
pub mod keyset;
pub mod log;
pub mod merkle;
pub mod metrics;
pub mod node;
pub mod oai;
pub mod quarantine;
pub mod query;
mod quote;
pub mod record;
pub mod search;
pub mod sign;
pub mod store;
pub mod sync;
#[cfg(test)]
mod test_support;
pub mod trust;
pub mod visibility;
