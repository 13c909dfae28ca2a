//! Writing OAI-PMH responses: a thin layer over quick-xml that escapes
//! every text and attribute value and drops the characters XML 1.0 forbids
//! (control characters other than tab, line feed and carriage return, and
//! U+FFFE, U+FFFF), and the two metadata formats mapped from the record
//! model (`docs/oai-pmh.md` has the mapping as a table; the DataCite
//! resource is written by `meridian_core::crosswalk::datacite`, the same
//! mapping the DataCite export uses).

use meridian_core::proto::{Access, DatasetRecord};
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

pub const OAI_NS: &str = "http://www.openarchives.org/OAI/2.0/";
pub const OAI_XSD: &str = "http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd";
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
pub const OAI_DC_NS: &str = "http://www.openarchives.org/OAI/2.0/oai_dc/";
pub const OAI_DC_XSD: &str = "http://www.openarchives.org/OAI/2.0/oai_dc.xsd";
pub const DC_NS: &str = "http://purl.org/dc/elements/1.1/";
pub const OAI_DATACITE_NS: &str = "http://schema.datacite.org/oai/oai-1.1/";
pub const OAI_DATACITE_XSD: &str = "http://schema.datacite.org/oai/oai-1.1/oai.xsd";
/// Namespace of the provenance this node writes in a record's `about`.
pub const PROVENANCE_NS: &str = "urn:meridian:oai:provenance:1";
/// Its schema, served by the node at `/oai/provenance.xsd`.
pub const PROVENANCE_XSD: &str = include_str!("provenance.xsd");

/// Whether XML 1.0 allows `c` in a document.
fn allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

/// `text` without the characters XML 1.0 forbids.
pub fn clean(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().all(allowed) {
        std::borrow::Cow::Borrowed(text)
    } else {
        std::borrow::Cow::Owned(text.chars().filter(|&c| allowed(c)).collect())
    }
}

/// A document being written. Writing to memory cannot fail, so the
/// methods return nothing.
pub struct Xml {
    writer: Writer<Vec<u8>>,
}

impl Default for Xml {
    fn default() -> Self {
        Self::new()
    }
}

impl Xml {
    pub fn new() -> Self {
        let mut writer = Writer::new(Vec::with_capacity(16 * 1024));
        let _ = writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
        Self { writer }
    }

    fn event(&mut self, event: Event<'_>) {
        // Into a Vec: infallible.
        let _ = self.writer.write_event(event);
    }

    /// Opens `name` with `attrs` (values escaped and cleaned).
    pub fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        let mut start = BytesStart::new(name);
        for (key, value) in attrs {
            start.push_attribute((*key, clean(value).as_ref()));
        }
        self.event(Event::Start(start));
    }

    pub fn close(&mut self, name: &str) {
        self.event(Event::End(BytesEnd::new(name)));
    }

    /// Escaped, cleaned text.
    pub fn text(&mut self, text: &str) {
        let text = clean(text);
        self.event(Event::Text(BytesText::new(&text)));
    }

    /// `<name attrs>text</name>`.
    pub fn leaf(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) {
        self.open(name, attrs);
        self.text(text);
        self.close(name);
    }

    /// `<name>text</name>` unless `text` is empty.
    pub fn leaf_if(&mut self, name: &str, text: &str) {
        if !text.trim().is_empty() {
            self.leaf(name, &[], text);
        }
    }

    pub fn finish(self) -> Vec<u8> {
        self.writer.into_inner()
    }
}

/// The record in Dublin Core (`oai_dc`).
pub fn oai_dc(xml: &mut Xml, record: &DatasetRecord) {
    let location = format!("{OAI_DC_NS} {OAI_DC_XSD}");
    xml.open(
        "oai_dc:dc",
        &[
            ("xmlns:oai_dc", OAI_DC_NS),
            ("xmlns:dc", DC_NS),
            ("xsi:schemaLocation", &location),
        ],
    );
    xml.leaf_if("dc:title", &record.title);
    for creator in &record.creators {
        xml.leaf_if("dc:creator", &creator.name);
    }
    for keyword in &record.keywords {
        xml.leaf_if("dc:subject", keyword);
    }
    for discipline in &record.disciplines {
        xml.leaf_if("dc:subject", discipline);
    }
    for subject in &record.subjects {
        xml.leaf_if("dc:subject", &subject.value);
    }
    xml.leaf_if("dc:description", &record.description);
    xml.leaf_if("dc:publisher", &record.publisher);
    if record.publication_year != 0 {
        xml.leaf_if("dc:date", &record.publication_year.to_string());
    }
    xml.leaf_if("dc:type", &record.resource_type);
    for format in &record.formats {
        xml.leaf_if("dc:format", format);
    }
    if record.size_bytes != 0 {
        xml.leaf_if("dc:format", &format!("{} bytes", record.size_bytes));
    }
    if !record.doi.is_empty() {
        xml.leaf_if("dc:identifier", &format!("https://doi.org/{}", record.doi));
    }
    xml.leaf_if("dc:identifier", &record.landing_url);
    xml.leaf_if("dc:relation", &record.project);
    // Dublin Core has no relation types: the related resource alone.
    for related in &record.related_identifiers {
        let relation = if related.identifier_type == "DOI" {
            format!("https://doi.org/{}", related.identifier)
        } else {
            related.identifier.clone()
        };
        xml.leaf_if("dc:relation", &relation);
    }
    xml.leaf_if("dc:language", &record.language);
    for place in &record.geo_places {
        xml.leaf_if("dc:coverage", place);
    }
    for b in &record.spatial {
        xml.leaf_if(
            "dc:coverage",
            &format!(
                "westlimit={}; southlimit={}; eastlimit={}; northlimit={}",
                b.west, b.south, b.east, b.north
            ),
        );
    }
    if let Some(t) = &record.temporal {
        if !t.start.is_empty() || !t.end.is_empty() {
            xml.leaf_if("dc:coverage", &format!("{}/{}", t.start, t.end));
        }
    }
    xml.leaf_if("dc:rights", &record.license);
    for rights in &record.rights {
        let text = if rights.statement.is_empty() {
            &rights.uri
        } else {
            &rights.statement
        };
        xml.leaf_if("dc:rights", text);
    }
    xml.leaf_if("dc:rights", access_uri(record));
    xml.close("oai_dc:dc");
}

/// The COAR / info:eu-repo access right of a record.
fn access_uri(record: &DatasetRecord) -> &'static str {
    match Access::try_from(record.access) {
        Ok(Access::Open) => "info:eu-repo/semantics/openAccess",
        Ok(Access::Embargoed) => "info:eu-repo/semantics/embargoedAccess",
        Ok(Access::Registered) | Ok(Access::Restricted) => {
            "info:eu-repo/semantics/restrictedAccess"
        }
        _ => "",
    }
}

/// The record in DataCite kernel 4 inside the `oai_datacite` wrapper.
/// `datacentre` is the origin node's id.
pub fn oai_datacite(xml: &mut Xml, record: &DatasetRecord) {
    let location = format!("{OAI_DATACITE_NS} {OAI_DATACITE_XSD}");
    xml.open(
        "oai_datacite",
        &[
            ("xmlns", OAI_DATACITE_NS),
            ("xsi:schemaLocation", &location),
        ],
    );
    xml.leaf("schemaVersion", &[], "4");
    xml.leaf("datacentreSymbol", &[], &record.origin);
    xml.open("payload", &[]);
    // The one DataCite mapping: the same the export writes and the import reads.
    let resource = meridian_core::crosswalk::datacite::from_record(record);
    // Into a Vec: infallible.
    let _ = meridian_core::crosswalk::datacite::write_xml(&mut xml.writer, &resource);
    xml.close("payload");
    xml.close("oai_datacite");
}

/// Where a record was born and how it reached the harvester: the origin,
/// the entry of the origin's log that holds this version, the key that
/// signed it. `schema` is where the node serves [`PROVENANCE_XSD`].
pub fn provenance(
    xml: &mut Xml,
    origin: &str,
    log_index: u64,
    version: u64,
    key_id: &str,
    schema: &str,
) {
    let location = format!("{PROVENANCE_NS} {schema}");
    xml.open(
        "provenance",
        &[("xmlns", PROVENANCE_NS), ("xsi:schemaLocation", &location)],
    );
    xml.leaf("origin", &[], origin);
    xml.leaf("logIndex", &[], &log_index.to_string());
    xml.leaf("version", &[], &version.to_string());
    xml.leaf("keyId", &[], key_id);
    xml.close("provenance");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_attributes_are_escaped_and_forbidden_characters_dropped() {
        let mut xml = Xml::new();
        xml.leaf(
            "t",
            &[("a", "x\"<&>'\u{1}y")],
            "<b>&amp; \u{0}\u{8}\u{b}\u{1f}ok\u{FFFE}\u{FFFF}\t\n\u{85}é",
        );
        let out = String::from_utf8(xml.finish()).unwrap();
        assert!(
            out.ends_with(
                "<t a=\"x&quot;&lt;&amp;&gt;&apos;y\">&lt;b&gt;&amp;amp; ok\t\n\u{85}é</t>"
            ),
            "{out}"
        );
        for c in ['\u{0}', '\u{8}', '\u{b}', '\u{1f}', '\u{FFFE}', '\u{FFFF}'] {
            assert!(!out.contains(c));
        }
    }
}
