//! How the command line prints what the node answers: tables for people,
//! one JSON value (or JSON Lines) for scripts.

use std::io::IsTerminal;

use meridian_core::record;
use meridian_proto as proto;
use meridian_proto::DatasetRecord;

/// Prints one JSON array, item by item as they come (a listing of a million
/// records is never held whole): `[]` when there are none.
pub struct JsonArray<W: std::io::Write> {
    out: W,
    items: u64,
}

impl<W: std::io::Write> JsonArray<W> {
    pub fn new(out: W) -> Self {
        Self { out, items: 0 }
    }

    pub fn push(&mut self, item: &serde_json::Value) -> std::io::Result<()> {
        let sep = if self.items == 0 { "[" } else { "," };
        self.items += 1;
        write!(self.out, "{sep}{item}")
    }

    pub fn finish(mut self) -> std::io::Result<()> {
        if self.items == 0 {
            write!(self.out, "[")?;
        }
        writeln!(self.out, "]")
    }
}

/// The lowercase name of a peer state, as the CLI shows it.
pub fn peer_state(state: i32) -> &'static str {
    match proto::PeerState::try_from(state) {
        Ok(proto::PeerState::Active) => "active",
        Ok(proto::PeerState::Suspended) => "suspended",
        Ok(proto::PeerState::Revoked) => "revoked",
        Ok(proto::PeerState::Unspecified) | Err(_) => "unknown",
    }
}

/// The lowercase name of a completeness status.
pub fn coverage(status: i32) -> &'static str {
    match proto::CompletenessStatus::try_from(status) {
        Ok(proto::CompletenessStatus::Ok) => "ok",
        Ok(proto::CompletenessStatus::Replica) => "replica",
        Ok(proto::CompletenessStatus::Timeout) => "timeout",
        Ok(proto::CompletenessStatus::Unreachable) => "unreachable",
        Ok(proto::CompletenessStatus::Refused) => "refused",
        Ok(proto::CompletenessStatus::Stale) => "stale",
        Ok(proto::CompletenessStatus::Unspecified) | Err(_) => "unknown",
    }
}

pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

pub fn print_record(view: &proto::RecordView, json: bool) {
    let Some(record) = &view.record else { return };
    if json {
        let mut value = record::to_json(record);
        if let Some(map) = value.as_object_mut() {
            map.insert("log_index".into(), view.log_index.into());
            map.insert(
                "verified_key_id".into(),
                view.verified_key_id.clone().into(),
            );
        }
        println!("{value}");
        return;
    }
    print_human(record, view);
}

fn print_human(r: &DatasetRecord, view: &proto::RecordView) {
    println!(
        "{}  (version {}, {})",
        r.title,
        r.version,
        record::visibility_name(r.visibility)
    );
    println!("  id          {}:{}", r.origin, r.id);
    let creators: Vec<&str> = r.creators.iter().map(|c| c.name.as_str()).collect();
    println!("  creators    {}", creators.join("; "));
    println!("  publisher   {} ({})", r.publisher, r.publication_year);
    if !r.doi.is_empty() {
        println!("  doi         {}", r.doi);
    }
    if !r.keywords.is_empty() {
        println!("  keywords    {}", r.keywords.join(", "));
    }
    println!(
        "  access      {}  license {}",
        record::access_name(r.access),
        r.license
    );
    if r.size_bytes > 0 {
        println!(
            "  size        {} bytes in {} files",
            r.size_bytes, r.file_count
        );
    }
    println!("  updated     {}", r.updated_at);
    println!(
        "  signed      log index {}, verified with {}",
        view.log_index, view.verified_key_id
    );
    if !r.description.is_empty() {
        println!("\n{}", r.description);
    }
}

pub fn search_json(answer: &proto::SearchResponse) -> serde_json::Value {
    serde_json::json!({
        "total": answer.total,
        "total_is_lower_bound": answer.total_is_lower_bound,
        "total_is_estimate": answer.total_is_estimate,
        "took_micros": answer.took_micros,
        "next_cursor": answer.next_cursor,
        "hits": answer.hits.iter().map(|h| serde_json::json!({
            "origin": h.origin, "id": h.id, "version": h.version, "title": h.title,
            "doi": h.doi, "publication_year": h.publication_year, "updated_at": h.updated_at,
            "size_bytes": h.size_bytes, "score": h.score, "snippet": h.snippet,
            "access": record::access_name(h.access), "visibility": record::visibility_name(h.visibility),
            "verified": h.verified,
            "also_at": h.also_at.iter().map(|a| serde_json::json!({"origin": a.origin, "id": a.id})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "facets": answer.facets.iter().map(|f| (f.name.clone(), serde_json::json!(
            f.values.iter().map(|v| serde_json::json!({"value": v.value, "count": v.count})).collect::<Vec<_>>()
        ))).collect::<serde_json::Map<_, _>>(),
        "completeness": answer.completeness.iter().map(|c| serde_json::json!({
            "origin": c.origin, "status": coverage(c.status), "as_of": c.as_of,
            "peers": c.peers, "log_size": c.log_size, "answered_by": c.answered_by,
        })).collect::<Vec<_>>(),
    })
}

fn strip_marks(snippet: &str) -> String {
    snippet
        .replace("<b>", "\x1b[1m")
        .replace("</b>", "\x1b[0m")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
}

/// The human form of a search answer: a table of hits, then facets.
pub fn print_search(answer: &proto::SearchResponse) {
    let plain = !std::io::stdout().is_terminal();
    println!(
        "{}{} hits ({:.1} ms)",
        if answer.total_is_estimate {
            "about "
        } else {
            ""
        },
        answer.total,
        answer.took_micros as f64 / 1000.0
    );
    if !answer.hits.is_empty() {
        println!(
            "{:<12} {:<24} {:>4}  {:<10}  TITLE",
            "ORIGIN", "ID", "YEAR", "ACCESS"
        );
    }
    for hit in &answer.hits {
        println!(
            "{:<12} {:<24} {:>4}  {:<10}  {}{}",
            truncate(&hit.origin, 12),
            truncate(&hit.id, 24),
            hit.publication_year,
            record::access_name(hit.access),
            truncate(&hit.title, 70),
            if hit.verified { "" } else { "  (unverified)" }
        );
        for copy in &hit.also_at {
            println!("{:>42}also at {} {}", "", copy.origin, copy.id);
        }
        if !hit.snippet.is_empty() {
            let snippet = if plain {
                strip_marks(&hit.snippet)
                    .replace("\x1b[1m", "")
                    .replace("\x1b[0m", "")
            } else {
                strip_marks(&hit.snippet)
            };
            println!("{:>42}{}", "", snippet.replace('\n', " "));
        }
    }
    for facet in &answer.facets {
        if facet.values.is_empty() {
            continue;
        }
        let values: Vec<String> = facet
            .values
            .iter()
            .take(8)
            .map(|v| format!("{} {}", v.value, v.count))
            .collect();
        println!("{:>12}: {}", facet.name, values.join(", "));
    }
    let sources: Vec<String> = answer
        .completeness
        .iter()
        .map(|c| {
            let who = if c.origin.is_empty() {
                format!("{} peers", c.peers)
            } else {
                c.origin.clone()
            };
            let at = if c.log_size > 0 {
                format!(" at log size {}", c.log_size)
            } else {
                String::new()
            };
            match coverage(c.status) {
                "replica" if c.as_of.is_empty() => format!("{who} (replica, never synced)"),
                "replica" => format!("{who} (replica as of {}{at})", c.as_of),
                "ok" if !c.answered_by.is_empty() => {
                    format!("{who} (ok, answered by {})", c.answered_by)
                }
                "ok" => format!("{who} (ok)"),
                // A live search that missed a peer answered from the replica.
                other if c.log_size > 0 => {
                    format!("{who} ({other}; replica as of {}{at} used)", c.as_of)
                }
                other => format!("{who} ({other})"),
            }
        })
        .collect();
    println!("  sources: {}", sources.join(", "));
    if !answer.next_cursor.is_empty() {
        println!("  more: --after {}", answer.next_cursor);
    }
}

/// `bar` drawn with `template` and ticking while standard error is a
/// terminal; a hidden bar otherwise, so logs and pipes get no progress lines.
pub fn progress(bar: indicatif::ProgressBar, template: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}
