//! `meridian search`: the holdings index as this node's operator sees it.

use std::path::Path;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use meridian_proto as proto;

use super::{admin, refused};
use crate::output;

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Free text with fields (`title:ice`, `keyword:"sea ice"`, `creator:wang`),
    /// phrases, AND/OR/NOT, prefixes (`glaci*`). Empty matches everything.
    #[arg(default_value = "")]
    pub query: String,
    /// Which holdings to search.
    #[arg(long, value_enum, default_value_t = ScopeArg::Federation)]
    pub scope: ScopeArg,
    #[arg(long = "discipline")]
    pub disciplines: Vec<String>,
    #[arg(long = "origin")]
    pub origins: Vec<String>,
    /// Access level of the data (repeat for several).
    #[arg(long, value_enum)]
    pub access: Vec<AccessArg>,
    #[arg(long = "license")]
    pub licenses: Vec<String>,
    #[arg(long = "format")]
    pub formats: Vec<String>,
    /// Publication years `FROM..TO` (either side may be empty).
    #[arg(long)]
    pub year: Option<String>,
    /// Bounding box `W,S,E,N` in degrees; W > E crosses the antimeridian.
    #[arg(long, allow_hyphen_values = true)]
    pub bbox: Option<String>,
    /// Temporal coverage overlapping from this date.
    #[arg(long)]
    pub from: Option<String>,
    /// Temporal coverage overlapping up to this date.
    #[arg(long)]
    pub to: Option<String>,
    /// Order of the hits.
    #[arg(long, value_enum, default_value_t = SortArg::Relevance)]
    pub sort: SortArg,
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// The cursor printed after the previous page.
    #[arg(long)]
    pub after: Option<String>,
    /// With `--scope live`: how long to wait for peers, in milliseconds
    /// (default: the node's `search.live_deadline_ms`).
    #[arg(long)]
    pub deadline_ms: Option<u32>,
    #[arg(long)]
    pub json: bool,
}

/// `--scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    /// This node's own holdings.
    Local,
    /// Own and replicated records (the local index).
    Federation,
    /// Ask peers now, under a deadline.
    Live,
}

/// `--sort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortArg {
    Relevance,
    Updated,
    Size,
}

/// `--access`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccessArg {
    Open,
    Registered,
    Embargoed,
    Restricted,
}

impl ScopeArg {
    fn wire(self) -> proto::Scope {
        match self {
            ScopeArg::Local => proto::Scope::Local,
            ScopeArg::Federation => proto::Scope::Federation,
            ScopeArg::Live => proto::Scope::Live,
        }
    }
}

impl SortArg {
    fn wire(self) -> proto::Sort {
        match self {
            SortArg::Relevance => proto::Sort::Relevance,
            SortArg::Updated => proto::Sort::Updated,
            SortArg::Size => proto::Sort::Size,
        }
    }
}

impl AccessArg {
    fn wire(self) -> proto::Access {
        match self {
            AccessArg::Open => proto::Access::Open,
            AccessArg::Registered => proto::Access::Registered,
            AccessArg::Embargoed => proto::Access::Embargoed,
            AccessArg::Restricted => proto::Access::Restricted,
        }
    }
}

fn parse_years(text: &str) -> Result<(u32, u32)> {
    let (from, to) = text.split_once("..").unwrap_or((text, text));
    let year = |part: &str| -> Result<u32> {
        if part.trim().is_empty() {
            return Ok(0);
        }
        part.trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("--year: `{part}` is not a year"))
    };
    Ok((year(from)?, year(to)?))
}

/// Parses `W,S,E,N`.
fn parse_bbox(text: &str) -> Result<proto::BoundingBox> {
    let parts: Vec<f64> = text
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("--bbox: `{text}` is not W,S,E,N in degrees"))?;
    let [west, south, east, north] = parts[..] else {
        bail!(
            "--bbox: `{text}` has {} numbers, expected W,S,E,N",
            parts.len()
        );
    };
    if !(-180.0..=180.0).contains(&west) || !(-180.0..=180.0).contains(&east) {
        bail!("--bbox: longitudes must be within -180..180");
    }
    if !(-90.0..=90.0).contains(&south) || !(-90.0..=90.0).contains(&north) || south > north {
        bail!("--bbox: latitudes must be within -90..90 with S <= N");
    }
    Ok(proto::BoundingBox {
        west,
        south,
        east,
        north,
    })
}

pub async fn run(data_dir: &Path, args: SearchArgs) -> Result<()> {
    let (year_from, year_to) = match &args.year {
        Some(text) => parse_years(text)?,
        None => (0, 0),
    };
    let request = proto::SearchRequest {
        query: args.query,
        scope: args.scope.wire() as i32,
        disciplines: args.disciplines,
        origins: args.origins,
        access: args.access.iter().map(|a| a.wire() as i32).collect(),
        licenses: args.licenses,
        formats: args.formats,
        year_from,
        year_to,
        bbox: args.bbox.as_deref().map(parse_bbox).transpose()?,
        time_from: args.from.unwrap_or_default(),
        time_to: args.to.unwrap_or_default(),
        sort: args.sort.wire() as i32,
        limit: args.limit,
        after: args.after.unwrap_or_default(),
        facets: true,
        highlight: !args.json,
        deadline_ms: args.deadline_ms.unwrap_or(0),
    };
    let mut client = admin(data_dir).await?;
    let answer = client.search(request).await.map_err(refused)?.into_inner();
    if args.json {
        println!("{}", output::search_json(&answer));
        return Ok(());
    }
    output::print_search(&answer);
    Ok(())
}
