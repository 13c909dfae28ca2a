//! `meridian holdings …`: import, put, get, list and withdraw this
//! institution's records.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use meridian_core::crosswalk::{self, Format, Outcome, XmlRecords};
use meridian_core::record;
use meridian_proto as proto;
use meridian_proto::admin_client::AdminClient;
use tonic::transport::Channel;

use super::{admin, refused};
use crate::output;

/// Lines per import chunk, and the byte budget of one chunk.
const CHUNK_LINES: usize = 2000;
const CHUNK_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Subcommand)]
pub enum HoldingsCommand {
    /// Import records (`-` reads standard input), then wait until they
    /// are searchable. Records read from DataCite or Dublin Core are
    /// normalised where needed, and each change is reported.
    Import {
        file: PathBuf,
        /// What the file holds: jsonl, datacite-json (one DOI per line),
        /// datacite-xml (every `resource` element), oai-dc (every
        /// `oai_dc:dc` element).
        #[arg(long, default_value = "jsonl")]
        format: Format,
        /// Return once the records are stored, without waiting for the
        /// index (a search right after may not find them yet).
        #[arg(long)]
        no_wait: bool,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Store one record read as JSON from standard input, then wait until
    /// it is searchable.
    Put {
        /// Return once the record is stored, without waiting for the index.
        #[arg(long)]
        no_wait: bool,
        /// Print the outcome as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Write every record of the holdings (not the tombstones) to standard
    /// output: jsonl, datacite-json (one DOI object per line) or
    /// datacite-xml (one document of `resource` elements).
    Export {
        #[arg(long, default_value = "jsonl")]
        format: Format,
    },
    /// Show one record.
    Get {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// List the holdings.
    List {
        #[arg(long)]
        json: bool,
        /// Also list tombstones of deleted records.
        #[arg(long)]
        include_deleted: bool,
    },
    /// Withdraw a record (a signed tombstone replaces it); asks first on a
    /// terminal.
    Rm {
        id: String,
        /// Do not ask for confirmation (needed when standard input is not a
        /// terminal).
        #[arg(long, short)]
        yes: bool,
        /// Print the tombstone as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(data_dir: &Path, command: HoldingsCommand) -> Result<i32> {
    let mut client = admin(data_dir).await?;
    match command {
        HoldingsCommand::Import {
            file,
            format,
            no_wait,
            json,
        } => import(&mut client, &file, format, !no_wait, json).await,
        HoldingsCommand::Export { format } => export(&mut client, format).await,
        HoldingsCommand::Put { no_wait, json } => put(&mut client, !no_wait, json).await,
        HoldingsCommand::Get { id, json } => {
            let view = client
                .get_record(proto::GetRecordRequest {
                    origin: String::new(),
                    id,
                })
                .await
                .map_err(refused)?
                .into_inner();
            output::print_record(&view, json);
            Ok(0)
        }
        HoldingsCommand::List {
            json,
            include_deleted,
        } => {
            list(&mut client, json, include_deleted).await?;
            Ok(0)
        }
        HoldingsCommand::Rm { id, yes, json } => {
            if !super::confirm(
                &format!("withdraw {id} (a signed tombstone replaces it everywhere)"),
                yes,
            )? {
                return Ok(1);
            }
            let reply = client
                .delete_record(proto::DeleteRecordRequest { id: id.clone() })
                .await
                .map_err(refused)?
                .into_inner();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"id": id, "deleted": true, "version": reply.version, "log_index": reply.log_index})
                );
            } else {
                println!(
                    "deleted {id} (tombstone version {}, log index {})",
                    reply.version, reply.log_index
                );
            }
            Ok(0)
        }
    }
}

/// Reads lines of at most `limit` bytes; a longer line is skipped to its end
/// and reported, so one huge line never has to fit in memory.
enum Line {
    Text(String),
    TooLong,
    NotUtf8,
}

fn read_line_bounded(
    reader: &mut impl BufRead,
    limit: usize,
    consumed: &mut u64,
) -> std::io::Result<Option<Line>> {
    let mut buf = Vec::new();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            if buf.is_empty() && !too_long {
                return Ok(None);
            }
            break;
        }
        let (take, done) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        if !too_long {
            buf.extend_from_slice(&available[..take]);
            if buf.len() > limit + 1 {
                too_long = true;
                buf = Vec::new();
            }
        }
        reader.consume(take);
        *consumed += take as u64;
        if done {
            break;
        }
    }
    if too_long {
        return Ok(Some(Line::TooLong));
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Some(match String::from_utf8(buf) {
        Ok(text) => Line::Text(text),
        Err(_) => Line::NotUtf8,
    }))
}

async fn import(
    client: &mut AdminClient<Channel>,
    file: &Path,
    format: Format,
    wait: bool,
    json: bool,
) -> Result<i32> {
    let (reader, total_bytes): (Box<dyn BufRead + Send>, Option<u64>) = if file == Path::new("-") {
        (Box::new(BufReader::new(std::io::stdin())), None)
    } else {
        let handle =
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        let len = handle.metadata().ok().map(|m| m.len());
        (Box::new(BufReader::with_capacity(1 << 20, handle)), len)
    };
    let progress = progress_bar(total_bytes);
    let (tx, rx) = tokio::sync::mpsc::channel::<proto::ImportChunk>(4);
    // The line span of each chunk sent and not yet acknowledged, in order:
    // the node acknowledges chunks in the order it receives them, so what is
    // left when the stream ends was not stored.
    let pending = Arc::new(Mutex::new(VecDeque::<(u64, u64)>::new()));
    // The last chunk line handed to the node: if reading fails midway,
    // the lines after it were not sent.
    let sent_through = Arc::new(AtomicU64::new(0));
    let send = {
        let pending = pending.clone();
        let sent_through = sent_through.clone();
        move |chunk: proto::ImportChunk| {
            let last = chunk.first_line + chunk.lines.len() as u64 - 1;
            lock(&pending).push_back((chunk.first_line, last));
            sent_through.store(last, Ordering::SeqCst);
            tx.blocking_send(chunk).is_ok()
        }
    };
    // Reading runs on its own thread: the file is streamed, never loaded whole.
    let name = file.display().to_string();
    let read_bar = progress.clone();
    // For a format other than JSON Lines, chunk lines are numbered by
    // record (1, 2, …) and `positions` maps each to its line in the file.
    let positions = Arc::new(Mutex::new(Vec::<u64>::new()));
    let foreign_positions = positions.clone();
    let reader_task = tokio::task::spawn_blocking(move || -> Result<ReadOutcome> {
        if format != Format::Jsonl {
            let reader = Box::new(Counted {
                inner: reader,
                bar: read_bar,
            });
            return read_foreign(format, reader, &name, &foreign_positions, send);
        }
        let mut reader = reader;
        let mut local_errors = Vec::new();
        let mut line_no = 0u64;
        let mut chunk = proto::ImportChunk {
            first_line: 1,
            ..Default::default()
        };
        let mut chunk_bytes = 0usize;
        loop {
            let mut consumed = 0;
            let line = read_line_bounded(&mut reader, record::MAX_LINE_BYTES, &mut consumed)
                .with_context(|| format!("reading {name}"))?;
            read_bar.inc(consumed);
            let Some(line) = line else { break };
            line_no += 1;
            let text = match line {
                Line::Text(text) if text.trim().is_empty() => continue,
                Line::Text(text) => text,
                Line::TooLong => {
                    local_errors.push((
                        line_no,
                        format!("line: longer than {} bytes", record::MAX_LINE_BYTES),
                    ));
                    continue;
                }
                Line::NotUtf8 => {
                    local_errors.push((line_no, "line: not valid UTF-8".to_owned()));
                    continue;
                }
            };
            if chunk.lines.is_empty() {
                chunk.first_line = line_no;
            } else if chunk.first_line + chunk.lines.len() as u64 != line_no {
                // Keep line numbers exact: a skipped line starts a new chunk.
                let full = std::mem::take(&mut chunk);
                chunk_bytes = 0;
                if !send(full) {
                    return Ok(ReadOutcome::stopped(local_errors, line_no));
                }
                chunk.first_line = line_no;
            }
            chunk_bytes += text.len();
            chunk.lines.push(text);
            if chunk.lines.len() >= CHUNK_LINES || chunk_bytes >= CHUNK_BYTES {
                let full = std::mem::take(&mut chunk);
                chunk_bytes = 0;
                if !send(full) {
                    return Ok(ReadOutcome::stopped(local_errors, line_no + 1));
                }
            }
        }
        if !chunk.lines.is_empty() {
            // Unsent, it stays pending and is reported as not stored.
            send(chunk);
        }
        Ok(ReadOutcome {
            errors: local_errors,
            unread_from: None,
            changes: Vec::new(),
            deleted: 0,
        })
    });

    let started = Instant::now();
    let mut acks = client
        .import(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(refused)?
        .into_inner();
    let (mut stored, mut unchanged, mut rejected) = (0u64, 0u64, 0u64);
    let mut log_size = 0u64;
    let mut errors: Vec<(u64, String)> = Vec::new();
    let mut failure = None;
    loop {
        let ack = match acks.message().await {
            Ok(Some(ack)) => ack,
            Ok(None) => break,
            Err(status) => {
                failure = Some(status);
                break;
            }
        };
        lock(&pending).pop_front();
        stored += ack.stored;
        unchanged += ack.unchanged;
        rejected += ack.rejected;
        log_size = log_size.max(ack.log_size);
        for e in ack.errors {
            let line = file_line(&positions, e.line);
            errors.push((line, format!("{}: {}", e.field, e.reason)));
        }
        progress.set_message(format!(
            "{stored} stored, {unchanged} unchanged, {rejected} rejected"
        ));
    }
    drop(acks);
    // A panic of the reading thread (a bug) ends the stream early: the
    // records it had read and not sent are lost, so it is reported as a
    // stop with the lines not stored, like any other.
    let (read, read_failure) = match reader_task.await {
        Ok(read) => (read?, None),
        Err(e) => {
            let from = unsent_from(&positions, sent_through.load(Ordering::SeqCst));
            let outcome = ReadOutcome::stopped(Vec::new(), from);
            (
                outcome,
                Some(format!("reading {} failed: {e}", file.display())),
            )
        }
    };
    rejected += read.errors.len() as u64;
    errors.extend(read.errors);
    progress.finish_and_clear();
    errors.sort_by_key(|(line, _)| *line);
    let mut stderr = std::io::stderr().lock();
    for (line, message) in &read.changes {
        writeln!(stderr, "line {line}: changed: {message}")?;
    }
    for (line, message) in &errors {
        writeln!(stderr, "line {line}: {message}")?;
    }
    if read.deleted > 0 {
        writeln!(
            stderr,
            "{} record(s) marked deleted in the file were not imported",
            read.deleted
        )?;
    }
    let changed = read.changes.len();
    let not_stored: Vec<(u64, u64)> = lock(&pending)
        .drain(..)
        .map(|(first, last)| (file_line(&positions, first), file_line(&positions, last)))
        .collect();
    if failure.is_some()
        || read_failure.is_some()
        || !not_stored.is_empty()
        || read.unread_from.is_some()
    {
        let mut spans: Vec<String> = not_stored
            .iter()
            .map(|(first, last)| format!("{first}-{last}"))
            .collect();
        if let Some(from) = read.unread_from {
            spans.push(format!("{} to the end", file_line(&positions, from)));
        }
        let reason = match (&failure, read_failure) {
            (Some(status), _) => refused(status.clone()).to_string(),
            (None, Some(reading)) => reading,
            (None, None) => "the node ended the import early".to_owned(),
        };
        writeln!(stderr, "import stopped: {reason}")?;
        if !spans.is_empty() {
            writeln!(
                stderr,
                "lines not stored: {} (import them again: stored lines are unchanged on a second import)",
                spans.join(", ")
            )?;
        }
        if json {
            let mut summary = import_summary(stored, unchanged, rejected, &errors, &read.changes);
            summary["stopped"] = serde_json::json!(reason);
            summary["lines_not_stored"] = serde_json::json!(spans);
            println!("{summary}");
        } else {
            println!(
                "stored {stored}, unchanged {unchanged}, rejected {rejected} before the import stopped"
            );
        }
        return Ok(1);
    }
    let secs = started.elapsed().as_secs_f64();
    let total = stored + unchanged + rejected;
    let waited = if stored > 0 {
        searchable(client, log_size, wait).await?
    } else {
        Some(0.0)
    };
    if json {
        let mut summary = import_summary(stored, unchanged, rejected, &errors, &read.changes);
        summary["seconds"] = serde_json::json!(secs);
        summary["log_size"] = serde_json::json!(log_size);
        summary["searchable"] = serde_json::json!(waited.is_some());
        summary["searchable_after_secs"] = serde_json::json!(waited);
        println!("{summary}");
    } else {
        println!(
            "stored {stored}, unchanged {unchanged}, rejected {rejected} ({total} records in {secs:.1}s, {:.0} records/s)",
            total as f64 / secs.max(1e-9)
        );
        if changed > 0 {
            println!("{changed} change(s) made to records to make them valid (listed above)");
        }
        if stored > 0 {
            println!("{}", searchable_line(waited));
        }
    }
    Ok(if rejected > 0 { 1 } else { 0 })
}

/// What the reading thread saw: the lines refused before sending, the
/// first line it did not read because the node stopped taking chunks, the
/// changes made to records to make them valid, and how many records the
/// file marks deleted (not imported).
struct ReadOutcome {
    errors: Vec<(u64, String)>,
    unread_from: Option<u64>,
    changes: Vec<(u64, String)>,
    deleted: u64,
}

impl ReadOutcome {
    fn stopped(errors: Vec<(u64, String)>, unread_from: u64) -> Self {
        Self {
            errors,
            unread_from: Some(unread_from),
            changes: Vec::new(),
            deleted: 0,
        }
    }
}

/// The chunk line that starts what was not sent when reading stopped
/// after chunk line `sent` went out. For a format other than JSON Lines, a
/// record converted but not sent has its position; when none was, the
/// position after the last one read is added, so that [`file_line`] names
/// the line reading had reached.
fn unsent_from(positions: &Mutex<Vec<u64>>, sent: u64) -> u64 {
    let mut positions = lock(positions);
    if let Some(&last) = positions.last() {
        if positions.len() as u64 <= sent {
            positions.push(last + 1);
        }
    }
    sent + 1
}

/// The file line of chunk line `n`: itself for JSON Lines, else the line
/// the `n`-th record starts on.
fn file_line(positions: &Mutex<Vec<u64>>, n: u64) -> u64 {
    let positions = lock(positions);
    if positions.is_empty() {
        return n;
    }
    usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| positions.get(i).copied())
        .unwrap_or(n)
}

/// A reader that moves the progress bar by what is consumed.
struct Counted {
    inner: Box<dyn BufRead + Send>,
    bar: indicatif::ProgressBar,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

impl BufRead for Counted {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.bar.inc(amt as u64);
        self.inner.consume(amt);
    }
}

/// Reads DataCite or Dublin Core records, converts each to a JSON line and
/// sends them in chunks numbered by record; records that cannot be made
/// valid are reported by their line in the file and not sent.
fn read_foreign(
    format: Format,
    reader: Box<dyn BufRead + Send>,
    name: &str,
    positions: &Mutex<Vec<u64>>,
    send: impl Fn(proto::ImportChunk) -> bool,
) -> Result<ReadOutcome> {
    let mut outcome = ReadOutcome {
        errors: Vec::new(),
        unread_from: None,
        changes: Vec::new(),
        deleted: 0,
    };
    let mut chunk = proto::ImportChunk {
        first_line: 1,
        ..Default::default()
    };
    let mut chunk_bytes = 0usize;
    let mut ordinal = 0u64;
    let flush = |chunk: &mut proto::ImportChunk, chunk_bytes: &mut usize| -> bool {
        let full = std::mem::take(chunk);
        *chunk_bytes = 0;
        chunk.first_line = full.first_line + full.lines.len() as u64;
        full.lines.is_empty() || send(full)
    };
    let items: Box<dyn Iterator<Item = Result<crosswalk::Item, crosswalk::XmlError>>> = match format
    {
        Format::DataciteJson => Box::new(json_items(reader, name)),
        _ => Box::new(XmlRecords::new(reader, format)),
    };
    for item in items {
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                outcome.errors.push((
                    e.line,
                    format!("xml: {} (the rest of the file is not read)", e.message),
                ));
                break;
            }
        };
        let converted = match item.outcome {
            Outcome::Deleted => {
                outcome.deleted += 1;
                continue;
            }
            Outcome::Refused(e) => {
                outcome
                    .errors
                    .push((item.line, format!("{}: {}", e.field, e.reason)));
                continue;
            }
            Outcome::Record(converted) => converted,
        };
        for change in &converted.changes {
            outcome.changes.push((item.line, change.to_string()));
        }
        ordinal += 1;
        lock(positions).push(item.line);
        let text = record::to_json(&converted.record).to_string();
        chunk_bytes += text.len();
        chunk.lines.push(text);
        if (chunk.lines.len() >= CHUNK_LINES || chunk_bytes >= CHUNK_BYTES)
            && !flush(&mut chunk, &mut chunk_bytes)
        {
            // The records after this one were not read: from the next line on.
            lock(positions).push(item.line + 1);
            outcome.unread_from = Some(ordinal + 1);
            return Ok(outcome);
        }
    }
    // Unsent, a chunk stays pending and is reported as not stored.
    flush(&mut chunk, &mut chunk_bytes);
    Ok(outcome)
}

/// DataCite JSON, one DOI per line, as crosswalk items.
fn json_items(
    mut reader: Box<dyn BufRead + Send>,
    name: &str,
) -> impl Iterator<Item = Result<crosswalk::Item, crosswalk::XmlError>> {
    let name = name.to_owned();
    let mut line_no = 0u64;
    std::iter::from_fn(move || loop {
        let mut consumed = 0;
        let line = match read_line_bounded(&mut reader, record::MAX_LINE_BYTES, &mut consumed) {
            Ok(line) => line?,
            Err(e) => {
                return Some(Err(crosswalk::XmlError {
                    line: line_no + 1,
                    message: format!("reading {name}: {e}"),
                }))
            }
        };
        line_no += 1;
        let outcome = match line {
            Line::Text(text) if text.trim().is_empty() => continue,
            Line::Text(text) => match crosswalk::read_datacite_json(&text) {
                Ok(converted) => Outcome::Record(Box::new(converted)),
                Err(e) => Outcome::Refused(e),
            },
            Line::TooLong => Outcome::Refused(record::RecordError::new(
                "line",
                format!("longer than {} bytes", record::MAX_LINE_BYTES),
            )),
            Line::NotUtf8 => Outcome::Refused(record::RecordError::new("line", "not valid UTF-8")),
        };
        return Some(Ok(crosswalk::Item {
            line: line_no,
            header: None,
            outcome,
        }));
    })
}

/// Writes every live record of the holdings to standard output in `format`.
async fn export(client: &mut AdminClient<Channel>, format: Format) -> Result<i32> {
    if format == Format::OaiDc {
        bail!("oai-dc is read on import only; the node's /oai serves oai_dc to harvesters");
    }
    let progress = output::progress(
        indicatif::ProgressBar::new_spinner(),
        "{spinner} {pos} records  {per_sec}",
    );
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if format == Format::DataciteXml {
        writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
        writeln!(out, "<resources>")?;
    }
    let mut count = 0u64;
    each_page(client, false, |records| {
        for view in records {
            let Some(record) = &view.record else { continue };
            match format {
                Format::DataciteXml => crosswalk::datacite::write_resource(&mut out, record)?,
                Format::DataciteJson => {
                    writeln!(out, "{}", crosswalk::datacite::to_json(record))?;
                }
                _ => writeln!(out, "{}", record::to_json(record))?,
            }
            count += 1;
        }
        progress.set_position(count);
        Ok(())
    })
    .await?;
    if format == Format::DataciteXml {
        writeln!(out, "</resources>")?;
    }
    out.flush()?;
    progress.finish_and_clear();
    Ok(0)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A byte-based progress bar with rate and ETA on a terminal (a spinner
/// with bytes and rate for standard input, whose size is unknown); nothing
/// when standard error is not a terminal.
fn progress_bar(total_bytes: Option<u64>) -> indicatif::ProgressBar {
    let (bar, template) = match total_bytes {
        Some(total) => (
            indicatif::ProgressBar::new(total),
            "{bar:30} {bytes}/{total_bytes}  {bytes_per_sec}  ETA {eta}  {msg}",
        ),
        None => (
            indicatif::ProgressBar::new_spinner(),
            "{spinner} {bytes}  {bytes_per_sec}  {msg}",
        ),
    };
    output::progress(bar, template)
}

async fn put(client: &mut AdminClient<Channel>, wait: bool, json: bool) -> Result<i32> {
    let mut text = String::new();
    std::io::stdin()
        .take(record::MAX_LINE_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .context("reading the record from standard input")?;
    if text.len() > record::MAX_LINE_BYTES {
        bail!("record: longer than {} bytes", record::MAX_LINE_BYTES);
    }
    // Accept pretty-printed JSON: the node takes one record per line. A
    // line break in JSON is whitespace between tokens (a string holds none
    // raw), so the text is joined as it is, not parsed and written again,
    // which would keep one of a key given twice and hide the mistake the
    // node reports for it.
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("json: {e}"))?;
    let line = text.replace(['\n', '\r'], " ");
    let chunk = proto::ImportChunk {
        first_line: 1,
        lines: vec![line.trim().to_owned()],
        ..Default::default()
    };
    let mut acks = client
        .import(tokio_stream::iter(vec![chunk]))
        .await
        .map_err(refused)?
        .into_inner();
    let ack = acks
        .message()
        .await
        .map_err(refused)?
        .context("the node closed the import without an answer")?;
    if let Some(e) = ack.errors.first() {
        if json {
            println!(
                "{}",
                serde_json::json!({"stored": false, "errors": [{"field": e.field, "reason": e.reason}]})
            );
        } else {
            eprintln!("{}: {}", e.field, e.reason);
        }
        return Ok(1);
    }
    let id = value.get("id").and_then(|v| v.as_str()).unwrap_or_default();
    let changed = ack.unchanged == 0;
    let waited = if changed {
        searchable(client, ack.log_size, wait).await?
    } else {
        Some(0.0)
    };
    if json {
        println!(
            "{}",
            serde_json::json!({
                "id": id, "stored": changed, "unchanged": !changed, "log_size": ack.log_size,
                "searchable": waited.is_some(), "searchable_after_secs": waited,
            })
        );
    } else if changed {
        println!("stored {id} (log size {})", ack.log_size);
        println!("{}", searchable_line(waited));
    } else {
        println!("{id} unchanged");
    }
    Ok(0)
}

/// How long the index may go without advancing before the wait gives up.
const STALLED: Duration = Duration::from_secs(60);

/// What `holdings import --json` says of an import, whether it ended or
/// stopped: the counts, each line refused and each change made, by line.
fn import_summary(
    stored: u64,
    unchanged: u64,
    rejected: u64,
    errors: &[(u64, String)],
    changes: &[(u64, String)],
) -> serde_json::Value {
    let by_line = |list: &[(u64, String)]| -> Vec<serde_json::Value> {
        list.iter()
            .map(|(line, message)| serde_json::json!({"line": line, "message": message}))
            .collect()
    };
    serde_json::json!({
        "stored": stored, "unchanged": unchanged, "rejected": rejected,
        "errors": by_line(errors), "changes": by_line(changes),
    })
}

/// Waits, unless told not to, until this node's log up to `log_size` is
/// searchable; the seconds it took, or `None` when it did not wait.
/// What the summary says of [`searchable`]'s answer.
fn searchable_line(waited: Option<f64>) -> String {
    match waited {
        Some(secs) => format!("searchable after {secs:.1}s"),
        None => "not waiting for the index (--no-wait): searches may miss these records for a few seconds".into(),
    }
}

async fn searchable(
    client: &mut AdminClient<Channel>,
    log_size: u64,
    wait: bool,
) -> Result<Option<f64>> {
    if !wait {
        return Ok(None);
    }
    let started = Instant::now();
    let mut last = (0u64, Instant::now());
    loop {
        let reply = client
            .wait_searchable(proto::WaitSearchableRequest {
                log_size,
                timeout_ms: 0,
                origin: String::new(),
            })
            .await
            .map_err(refused)?
            .into_inner();
        if reply.searchable {
            return Ok(Some(started.elapsed().as_secs_f64()));
        }
        if reply.indexed > last.0 {
            last = (reply.indexed, Instant::now());
        } else if last.1.elapsed() >= STALLED {
            bail!(
                "stored, but the index has not advanced for {}s (at {} of {log_size} log entries); \
                 searches may miss these records until it catches up (see the node's log)",
                STALLED.as_secs(),
                reply.indexed
            );
        }
    }
}

async fn list(client: &mut AdminClient<Channel>, json: bool, include_deleted: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let mut array = json.then(|| output::JsonArray::new(std::io::stdout()));
    if !json {
        writeln!(
            out,
            "{:<28} {:>4}  {:<10}  {:<20}  TITLE",
            "ID", "VER", "VISIBILITY", "UPDATED"
        )?;
    }
    each_page(client, include_deleted, |records| {
        for view in records {
            let Some(record) = &view.record else { continue };
            if let Some(array) = &mut array {
                array.push(&record::to_json(record))?;
            } else {
                let title = if record.deleted {
                    "(deleted)".to_owned()
                } else {
                    output::truncate(&record.title, 60)
                };
                writeln!(
                    out,
                    "{:<28} {:>4}  {:<10}  {:<20}  {}",
                    output::truncate(&record.id, 28),
                    record.version,
                    record::visibility_name(record.visibility),
                    record.updated_at,
                    title
                )?;
            }
        }
        Ok(())
    })
    .await?;
    drop(out);
    if let Some(array) = array {
        array.finish()?;
    }
    Ok(())
}

/// Pages through this node's own holdings (`Admin.ListRecords`), handing
/// each page to `each` as it arrives.
async fn each_page(
    client: &mut AdminClient<Channel>,
    include_deleted: bool,
    mut each: impl FnMut(&[proto::RecordView]) -> Result<()>,
) -> Result<()> {
    let mut token = String::new();
    loop {
        let page = client
            .list_records(proto::ListRecordsRequest {
                origin: String::new(),
                page_size: 500,
                page_token: token,
                include_deleted,
            })
            .await
            .map_err(refused)?
            .into_inner();
        each(&page.records)?;
        if page.next_page_token.is_empty() {
            return Ok(());
        }
        token = page.next_page_token;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// When reading stops midway, the lines not stored are named from the
    /// first record that was not sent, or from where reading had got to.
    #[test]
    fn lines_not_sent_are_named_by_their_line_in_the_file() {
        // JSON Lines: chunk lines are file lines.
        let none = Mutex::new(Vec::new());
        assert_eq!(file_line(&none, unsent_from(&none, 2000)), 2001);
        // Records starting on lines 3, 9, 14; the first two were sent.
        let positions = Mutex::new(vec![3, 9, 14]);
        assert_eq!(file_line(&positions, unsent_from(&positions, 2)), 14);
        // All three were sent: reading had got past line 14.
        let positions = Mutex::new(vec![3, 9, 14]);
        assert_eq!(file_line(&positions, unsent_from(&positions, 3)), 15);
    }
}
