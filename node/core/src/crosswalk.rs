//! Crosswalks between the record model and the metadata formats
//! repositories already speak: DataCite XML (kernel 4, standalone or inside
//! `oai_datacite`), DataCite JSON (the REST API's DOI `attributes`) and
//! simple Dublin Core (`oai_dc`), read from files or OAI-PMH responses, and
//! DataCite XML and JSON written for export.
//!
//! Real metadata is messy. What can be made valid without changing its
//! meaning is normalised ([`normalise`]: control characters, whitespace,
//! over-long terms, uncertain dates) and every change is reported with the
//! record; only what cannot be made valid is refused, with the field and
//! the reason. The mapping and the id rule are in `docs/datacite.md`.

pub mod datacite;
pub mod dc;
pub mod normalise;
pub mod tree;

use std::io::BufRead;

pub use normalise::Change;
pub use tree::{Envelope, Header, XmlError};

use crate::proto::DatasetRecord;
use crate::record::{self, RecordError};

/// A metadata format read on import (all four) or written on export
/// (all but `oai_dc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The record's own JSON Lines form (`record::parse_json_line`).
    Jsonl,
    /// DataCite JSON, one DOI per line.
    DataciteJson,
    /// DataCite XML: `resource` elements anywhere in the document.
    DataciteXml,
    /// Dublin Core: `oai_dc:dc` elements anywhere in the document.
    OaiDc,
}

impl Format {
    /// Every format's name, as the CLI spells it.
    pub const NAMES: [&'static str; 4] = ["jsonl", "datacite-json", "datacite-xml", "oai-dc"];

    pub fn name(self) -> &'static str {
        match self {
            Self::Jsonl => "jsonl",
            Self::DataciteJson => "datacite-json",
            Self::DataciteXml => "datacite-xml",
            Self::OaiDc => "oai-dc",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "jsonl" => Ok(Self::Jsonl),
            "datacite-json" => Ok(Self::DataciteJson),
            "datacite-xml" => Ok(Self::DataciteXml),
            "oai-dc" | "oai_dc" => Ok(Self::OaiDc),
            other => Err(format!(
                "`{other}` is not a format; use one of {}",
                Self::NAMES.join(", ")
            )),
        }
    }
}

/// Where a record's `id` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSource {
    /// The metadata: a `meridian` alternate identifier (`ORIGIN/ID`), else
    /// the DOI, else the first other alternate identifier (DataCite); the
    /// DOI, else the first identifier that is not a URL (Dublin Core).
    FromMetadata,
    /// An id given by the caller: a harvested record's OAI identifier.
    Given(String),
}

/// A record read from a foreign format, and what was changed to make it valid.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    pub record: DatasetRecord,
    pub changes: Vec<Change>,
}

/// What one metadata element or OAI-PMH record of a document gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Record(Box<Converted>),
    /// An OAI-PMH record whose header is `status="deleted"`.
    Deleted,
    Refused(RecordError),
}

/// One item of a document, with where it was found.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The line the element starts on (its start tag ends there).
    pub line: u64,
    /// The OAI-PMH header around it, when it came in a response.
    pub header: Option<Header>,
    pub outcome: Outcome,
}

/// Reads the records of an XML document in `format` (DataCite XML or
/// `oai_dc`) one at a time, never holding more than one in memory. A
/// record inside an OAI-PMH response takes its OAI identifier as id.
pub struct XmlRecords<R: BufRead> {
    scan: tree::Scan<R>,
    format: Format,
}

impl<R: BufRead> XmlRecords<R> {
    /// # Panics
    /// Never; a format that is not XML reads as DataCite XML.
    pub fn new(input: R, format: Format) -> Self {
        let target = match format {
            Format::OaiDc => "dc",
            _ => "resource",
        };
        Self {
            scan: tree::Scan::new(input, target),
            format,
        }
    }

    /// The OAI-PMH parts of the document read so far (resumption token, errors).
    pub fn envelope(&self) -> &Envelope {
        &self.scan.envelope
    }
}

impl<R: BufRead> Iterator for XmlRecords<R> {
    type Item = Result<Item, XmlError>;

    fn next(&mut self) -> Option<Self::Item> {
        let found = match self.scan.next()? {
            Ok(found) => found,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(match found {
            tree::Found::Deleted { line, header } => Item {
                line,
                header: Some(header),
                outcome: Outcome::Deleted,
            },
            tree::Found::Empty { line, header } => Item {
                line,
                header: Some(header),
                outcome: Outcome::Refused(RecordError::new(
                    "metadata",
                    match self.format {
                        Format::OaiDc => "no oai_dc:dc element in the record: nothing to import",
                        _ => "no DataCite resource element in the record: nothing to import",
                    },
                )),
            },
            tree::Found::Refused { line, reason } => Item {
                line,
                header: None,
                outcome: Outcome::Refused(RecordError::new("header", reason)),
            },
            // A header that says `deleted` makes a tombstone, whatever
            // metadata a provider still sends with it.
            tree::Found::Metadata {
                line,
                header: Some(header),
                ..
            } if header.deleted => Item {
                line,
                header: Some(header),
                outcome: Outcome::Deleted,
            },
            tree::Found::Metadata {
                line,
                header,
                element,
                replaced,
            } => {
                let id = header.as_ref().map_or(IdSource::FromMetadata, |h| {
                    IdSource::Given(h.identifier.clone())
                });
                let outcome = match element {
                    Err(reason) => Outcome::Refused(RecordError::new("xml", reason)),
                    Ok(element) => {
                        let mut notes = normalise::Notes::default();
                        if replaced {
                            notes.note("xml", "bytes that were not UTF-8 replaced by U+FFFD");
                        }
                        let format = self.format;
                        let record = guarded(|| match format {
                            Format::OaiDc => dc::to_record(&element, &id, &mut notes),
                            _ => {
                                datacite::to_record(&datacite::from_xml(&element), &id, &mut notes)
                            }
                        });
                        match record {
                            Ok(record) => Outcome::Record(Box::new(Converted {
                                record,
                                changes: notes.changes,
                            })),
                            Err(e) => Outcome::Refused(e),
                        }
                    }
                };
                Item {
                    line,
                    header,
                    outcome,
                }
            }
        }))
    }
}

/// Reads one line of DataCite JSON (a REST API response, a DOI object or
/// its `attributes`), bounded like a JSON Lines record.
pub fn read_datacite_json(line: &str) -> Result<Converted, RecordError> {
    if line.len() > record::MAX_LINE_BYTES {
        return Err(RecordError::new(
            "json",
            format!(
                "line is {} bytes long; at most {} are allowed",
                line.len(),
                record::MAX_LINE_BYTES
            ),
        ));
    }
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| RecordError::new("json", e.to_string()))?;
    let mut notes = normalise::Notes::default();
    let record = guarded(|| {
        let resource = datacite::from_json(&value)?;
        datacite::to_record(&resource, &IdSource::FromMetadata, &mut notes)
    })?;
    Ok(Converted {
        record,
        changes: notes.changes,
    })
}

/// Runs one record's conversion, a panic in it (a bug) refusing that
/// record instead of unwinding through the reader: a harvest would fetch
/// and fail the same page at every run, and an import would lose the
/// records read but not yet sent. The panic is reported as such.
fn guarded(
    convert: impl FnOnce() -> Result<DatasetRecord, RecordError>,
) -> Result<DatasetRecord, RecordError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(convert)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(RecordError::new(
            "record",
            format!(
                "cannot be converted: an internal error ({}); please report it",
                normalise::short(&what)
            ),
        ))
    })
}

#[cfg(test)]
mod tests;
