//! `meridian harvest …`: the OAI-PMH providers this node harvests into its
//! holdings (`docs/harvest.md`). The harvest itself runs inside the node.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Subcommand;
use meridian_proto as proto;

use super::{admin, refused};

#[derive(Debug, Subcommand)]
pub enum HarvestCommand {
    /// Add an OAI-PMH provider (base URL) to harvest.
    Add {
        name: String,
        url: String,
        /// Harvest only this set.
        #[arg(long)]
        set: Option<String>,
        /// Metadata format to ask for: oai_datacite (exact) or oai_dc (loose).
        #[arg(long, default_value = "oai_datacite")]
        prefix: String,
        /// Harvest on a schedule, e.g. 6h, 30m, 1d (whole seconds, minutes,
        /// hours or days); without it only `harvest run` harvests.
        #[arg(long)]
        every: Option<String>,
        /// Visibility of the harvested records (default: the node's).
        #[arg(long)]
        visibility: Option<String>,
        /// Groups, comma-separated, with --visibility groups.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// A PEM file of roots to trust for the provider's certificate,
        /// besides the system's.
        #[arg(long)]
        ca_cert: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Harvest a source now, from where its last run left off.
    Run {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List the sources with their last run.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one source: last run, counts, next run, last error, rejections.
    Status {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a source (the records it brought stay).
    Rm {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

/// Seconds in `6h`, `30m`, `1d`, `90s`.
fn parse_every(text: &str) -> Result<u64> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number.parse().map_err(|_| {
        anyhow::anyhow!("--every: `{text}` is not a duration such as 6h, 30m or 1d")
    })?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("--every: `{text}` is not a duration such as 6h, 30m or 1d"),
    };
    if n == 0 {
        bail!("--every: must be more than 0");
    }
    n.checked_mul(factor)
        .ok_or_else(|| anyhow::anyhow!("--every: `{text}` is too long"))
}

pub async fn run(data_dir: &Path, command: HarvestCommand) -> Result<i32> {
    let mut client = admin(data_dir).await?;
    match command {
        HarvestCommand::Add {
            name,
            url,
            set,
            prefix,
            every,
            visibility,
            groups,
            ca_cert,
            json,
        } => {
            let every_secs = every.as_deref().map(parse_every).transpose()?.unwrap_or(0);
            let ca_cert = match ca_cert {
                Some(path) => std::fs::canonicalize(&path)
                    .map_err(|e| anyhow::anyhow!("--ca-cert {}: {e}", path.display()))?
                    .display()
                    .to_string(),
                None => String::new(),
            };
            let status = client
                .harvest_add(proto::HarvestSource {
                    name,
                    url,
                    set: set.unwrap_or_default(),
                    prefix,
                    every_secs,
                    visibility: visibility.unwrap_or_default(),
                    groups,
                    ca_cert,
                })
                .await
                .map_err(refused)?
                .into_inner();
            if json {
                println!("{}", status_json(&status));
            } else {
                let source = status.source.unwrap_or_default();
                println!("added {} ({} {})", source.name, source.url, source.prefix);
            }
            Ok(0)
        }
        HarvestCommand::Run { name, json } => {
            let mut stream = client
                .harvest_run(proto::HarvestRunRequest { name })
                .await
                .map_err(refused)?
                .into_inner();
            let bar = if json {
                indicatif::ProgressBar::hidden()
            } else {
                crate::output::progress(indicatif::ProgressBar::new_spinner(), "{spinner} {msg}")
            };
            let mut last = None;
            while let Some(status) = stream.message().await.map_err(|s| {
                bar.finish_and_clear();
                refused(s)
            })? {
                if let Some(state) = &status.state {
                    bar.set_message(format!(
                        "page {}: {} added, {} changed, {} deleted, {} rejected",
                        state.pages, state.added, state.changed, state.deleted, state.rejected
                    ));
                }
                last = Some(status);
            }
            bar.finish_and_clear();
            let Some(status) = last else {
                bail!("the node ended the harvest without a result");
            };
            if json {
                println!("{}", status_json(&status));
            } else {
                print_status(&status);
            }
            let state = status.state.unwrap_or_default();
            Ok(if state.rejected > 0 { 1 } else { 0 })
        }
        HarvestCommand::List { json } => {
            let list = client
                .harvest_list(proto::HarvestListRequest {})
                .await
                .map_err(refused)?
                .into_inner();
            if json {
                let all: Vec<serde_json::Value> = list.sources.iter().map(status_json).collect();
                println!("{}", serde_json::Value::Array(all));
            } else {
                println!(
                    "{:<16} {:<13} {:<21} {:>7} {:>7} {:>7} {:>8}  URL",
                    "NAME", "PREFIX", "LAST RUN", "ADDED", "CHANGED", "DELETED", "REJECTED"
                );
                for status in &list.sources {
                    let (source, state) = (
                        status.source.clone().unwrap_or_default(),
                        status.state.clone().unwrap_or_default(),
                    );
                    println!(
                        "{:<16} {:<13} {:<21} {:>7} {:>7} {:>7} {:>8}  {}",
                        source.name,
                        source.prefix,
                        if state.last_finished.is_empty() {
                            "never"
                        } else {
                            state.last_finished.as_str()
                        },
                        state.added,
                        state.changed,
                        state.deleted,
                        state.rejected,
                        source.url
                    );
                }
            }
            Ok(0)
        }
        HarvestCommand::Status { name, json } => {
            let list = client
                .harvest_list(proto::HarvestListRequest {})
                .await
                .map_err(refused)?
                .into_inner();
            let Some(status) = list
                .sources
                .into_iter()
                .find(|s| s.source.as_ref().is_some_and(|s| s.name == name))
            else {
                bail!("no harvest source `{name}` (`meridian harvest list`)");
            };
            if json {
                println!("{}", status_json(&status));
            } else {
                print_status(&status);
            }
            Ok(0)
        }
        HarvestCommand::Rm { name, json } => {
            client
                .harvest_remove(proto::HarvestRemoveRequest { name: name.clone() })
                .await
                .map_err(refused)?;
            if json {
                println!("{}", serde_json::json!({"name": name, "removed": true}));
            } else {
                println!("removed {name} (the records it brought stay)");
            }
            Ok(0)
        }
    }
}

fn status_json(status: &proto::HarvestSourceStatus) -> serde_json::Value {
    let source = status.source.clone().unwrap_or_default();
    let state = status.state.clone().unwrap_or_default();
    serde_json::json!({
        "name": source.name, "url": source.url, "set": source.set, "prefix": source.prefix,
        "every_secs": source.every_secs, "visibility": source.visibility, "groups": source.groups,
        "granularity": state.granularity, "from": state.from, "running": state.running,
        "interrupted": state.interrupted, "last_started": state.last_started,
        "last_finished": state.last_finished, "next_run": state.next_run,
        "added": state.added, "changed": state.changed, "unchanged": state.unchanged,
        "deleted": state.deleted, "rejected": state.rejected, "normalised": state.normalised,
        "pages": state.pages, "last_error": state.last_error, "rejections": state.rejections,
        "continues": state.continues,
    })
}

fn print_status(status: &proto::HarvestSourceStatus) {
    let source = status.source.clone().unwrap_or_default();
    let state = status.state.clone().unwrap_or_default();
    println!(
        "{} ({} {}{})",
        source.name,
        source.url,
        source.prefix,
        if source.set.is_empty() {
            String::new()
        } else {
            format!(", set {}", source.set)
        }
    );
    let last = if state.last_finished.is_empty() {
        "never".to_owned()
    } else {
        state.last_finished.clone()
    };
    println!(
        "last run:   {last}{}",
        if state.running { " (running now)" } else { "" }
    );
    println!(
        "records:    {} added, {} changed, {} unchanged, {} deleted, {} rejected ({} normalised) in {} pages",
        state.added, state.changed, state.unchanged, state.deleted, state.rejected, state.normalised, state.pages
    );
    if !state.from.is_empty() {
        println!("next from:  {}", state.from);
    }
    println!(
        "next run:   {}",
        if state.continues {
            "at once: the list goes on past the pages of one run".to_owned()
        } else if source.every_secs == 0 {
            "on demand (`meridian harvest run`)".to_owned()
        } else {
            state.next_run.clone()
        }
    );
    if state.interrupted {
        println!("interrupted: the next run resumes where this one stopped");
    }
    if !state.last_error.is_empty() {
        println!("last error: {}", state.last_error);
    }
    for rejection in &state.rejections {
        println!("rejected:   {rejection}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_reads_units() {
        assert_eq!(super::parse_every("6h").unwrap(), 21_600);
        assert_eq!(super::parse_every("30m").unwrap(), 1800);
        assert_eq!(super::parse_every("1d").unwrap(), 86_400);
        assert!(super::parse_every("0h").is_err());
        assert!(super::parse_every("6 hours").is_err());
        assert!(super::parse_every("h").is_err());
    }
}
