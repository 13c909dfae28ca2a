//! `meridian audit queries`: the live searches this node answered for its
//! peers (who asked, when, on whose behalf, a hash of the query, its
//! filters and how many hits went back), as the query audit keeps them.

use std::path::Path;

use anyhow::Result;
use clap::Subcommand;
use meridian_proto as proto;

use super::{admin, refused};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Queries peers sent this node, oldest first.
    Queries {
        /// Only this peer's queries.
        #[arg(long)]
        peer: Option<String>,
        /// Only queries answered at or after this time (RFC 3339 or
        /// YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(data_dir: &Path, command: AuditCommand) -> Result<()> {
    let AuditCommand::Queries { peer, since, json } = command;
    let mut client = admin(data_dir).await?;
    let answer = client
        .audit_queries(proto::AuditQueriesRequest {
            peer: peer.unwrap_or_default(),
            since: since.unwrap_or_default(),
        })
        .await
        .map_err(refused)?
        .into_inner();
    if json {
        let mut array = output::JsonArray::new(std::io::stdout());
        for e in &answer.entries {
            array.push(&serde_json::json!({
                "at": e.at, "peer": e.peer, "on_behalf_of": e.on_behalf_of,
                "query_hash": e.query_hash, "filters": e.filters,
                "hits": e.hits, "total": e.total,
            }))?;
        }
        array.finish()?;
        return Ok(());
    }
    println!(
        "{:<21} {:<20} {:<10} {:<16} {:>6} {:>8}  FILTERS",
        "AT", "PEER", "FOR", "QUERY", "HITS", "TOTAL"
    );
    for e in &answer.entries {
        println!(
            "{:<21} {:<20} {:<10} {:<16} {:>6} {:>8}  {}",
            e.at,
            e.peer,
            e.on_behalf_of,
            output::truncate(&e.query_hash, 16),
            e.hits,
            e.total,
            e.filters
        );
    }
    Ok(())
}
