//! Writing OAI-PMH responses: a thin layer over quick-xml that escapes
//! every text and attribute value and drops the characters XML 1.0 forbids
//! (control characters other than tab, line feed and carriage return, and
//! U+FFFE, U+FFFF), and the two metadata formats mapped from the record
//! model (`docs/oai-pmh.md` has the mapping as a table).

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
pub const DATACITE_NS: &str = "http://datacite.org/schema/kernel-4";
pub const DATACITE_XSD: &str = "http://schema.datacite.org/meta/kernel-4/metadata.xsd";
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

/// DataCite's `resourceTypeGeneral` values (kernel 4.5).
const RESOURCE_TYPES: &[&str] = &[
    "Audiovisual",
    "Book",
    "BookChapter",
    "Collection",
    "ComputationalNotebook",
    "ConferencePaper",
    "ConferenceProceeding",
    "DataPaper",
    "Dataset",
    "Dissertation",
    "Event",
    "Image",
    "Instrument",
    "InteractiveResource",
    "Journal",
    "JournalArticle",
    "Model",
    "OutputManagementPlan",
    "PeerReview",
    "PhysicalObject",
    "Preprint",
    "Report",
    "Service",
    "Software",
    "Sound",
    "Standard",
    "StudyRegistration",
    "Text",
    "Workflow",
    "Other",
];

/// The `resourceTypeGeneral` of a record's free `resource_type`: the
/// DataCite term it names (any case, spaces ignored), else Dataset.
fn resource_type_general(resource_type: &str) -> &'static str {
    let wanted: String = resource_type
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    RESOURCE_TYPES
        .iter()
        .find(|t| t.eq_ignore_ascii_case(&wanted))
        .copied()
        .unwrap_or("Dataset")
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
    let location = format!("{DATACITE_NS} {DATACITE_XSD}");
    xml.open(
        "resource",
        &[("xmlns", DATACITE_NS), ("xsi:schemaLocation", &location)],
    );
    if !record.doi.is_empty() {
        xml.leaf("identifier", &[("identifierType", "DOI")], &record.doi);
    }
    xml.open("creators", &[]);
    for creator in &record.creators {
        xml.open("creator", &[]);
        xml.leaf("creatorName", &[], &creator.name);
        if !creator.orcid.is_empty() {
            xml.leaf(
                "nameIdentifier",
                &[
                    ("nameIdentifierScheme", "ORCID"),
                    ("schemeURI", "https://orcid.org"),
                ],
                &creator.orcid,
            );
        }
        xml.leaf_if("affiliation", &creator.affiliation);
        xml.close("creator");
    }
    xml.close("creators");
    xml.open("titles", &[]);
    xml.leaf("title", &[], &record.title);
    xml.close("titles");
    xml.leaf("publisher", &[], &record.publisher);
    xml.leaf("publicationYear", &[], &record.publication_year.to_string());
    xml.leaf(
        "resourceType",
        &[(
            "resourceTypeGeneral",
            resource_type_general(&record.resource_type),
        )],
        &record.resource_type,
    );
    if !record.keywords.is_empty() || !record.disciplines.is_empty() {
        xml.open("subjects", &[]);
        for keyword in &record.keywords {
            xml.leaf("subject", &[], keyword);
        }
        for discipline in &record.disciplines {
            xml.leaf(
                "subject",
                &[("subjectScheme", "meridian discipline")],
                discipline,
            );
        }
        xml.close("subjects");
    }
    let temporal = record
        .temporal
        .as_ref()
        .filter(|t| !t.start.is_empty() || !t.end.is_empty());
    if !record.updated_at.is_empty() || !record.embargo_until.is_empty() || temporal.is_some() {
        xml.open("dates", &[]);
        if !record.updated_at.is_empty() {
            xml.leaf("date", &[("dateType", "Updated")], &record.updated_at);
        }
        if !record.embargo_until.is_empty() {
            xml.leaf("date", &[("dateType", "Available")], &record.embargo_until);
        }
        if let Some(t) = temporal {
            xml.leaf(
                "date",
                &[("dateType", "Collected")],
                &format!("{}/{}", t.start, t.end),
            );
        }
        xml.close("dates");
    }
    xml.open("alternateIdentifiers", &[]);
    let local = format!("{}/{}", record.origin, record.id);
    xml.leaf(
        "alternateIdentifier",
        &[("alternateIdentifierType", "meridian")],
        &local,
    );
    if !record.landing_url.is_empty() {
        xml.leaf(
            "alternateIdentifier",
            &[("alternateIdentifierType", "URL")],
            &record.landing_url,
        );
    }
    xml.close("alternateIdentifiers");
    if record.size_bytes != 0 || record.file_count != 0 {
        xml.open("sizes", &[]);
        if record.size_bytes != 0 {
            xml.leaf("size", &[], &format!("{} bytes", record.size_bytes));
        }
        if record.file_count != 0 {
            xml.leaf("size", &[], &format!("{} files", record.file_count));
        }
        xml.close("sizes");
    }
    if !record.formats.is_empty() {
        xml.open("formats", &[]);
        for format in &record.formats {
            xml.leaf("format", &[], format);
        }
        xml.close("formats");
    }
    let access = access_uri(record);
    if !record.license.is_empty() || !access.is_empty() {
        xml.open("rightsList", &[]);
        if !record.license.is_empty() {
            let uri = format!("https://spdx.org/licenses/{}", record.license);
            let spdx = !record.license.starts_with("LicenseRef-");
            let mut attrs = vec![("rightsIdentifier", record.license.as_str())];
            if spdx {
                attrs.extend([
                    ("rightsIdentifierScheme", "SPDX"),
                    ("schemeURI", "https://spdx.org/licenses/"),
                    ("rightsURI", uri.as_str()),
                ]);
            }
            xml.leaf("rights", &attrs, &record.license);
        }
        if !access.is_empty() {
            xml.leaf("rights", &[("rightsURI", access)], "");
        }
        xml.close("rightsList");
    }
    if !record.description.is_empty() || !record.project.is_empty() {
        xml.open("descriptions", &[]);
        if !record.description.is_empty() {
            xml.leaf(
                "description",
                &[("descriptionType", "Abstract")],
                &record.description,
            );
        }
        if !record.project.is_empty() {
            xml.leaf(
                "description",
                &[("descriptionType", "Other")],
                &format!("Project: {}", record.project),
            );
        }
        xml.close("descriptions");
    }
    if !record.spatial.is_empty() {
        xml.open("geoLocations", &[]);
        for b in &record.spatial {
            xml.open("geoLocation", &[]);
            xml.open("geoLocationBox", &[]);
            xml.leaf("westBoundLongitude", &[], &b.west.to_string());
            xml.leaf("eastBoundLongitude", &[], &b.east.to_string());
            xml.leaf("southBoundLatitude", &[], &b.south.to_string());
            xml.leaf("northBoundLatitude", &[], &b.north.to_string());
            xml.close("geoLocationBox");
            xml.close("geoLocation");
        }
        xml.close("geoLocations");
    }
    xml.close("resource");
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

    #[test]
    fn free_resource_types_map_to_datacite_terms() {
        assert_eq!(resource_type_general("dataset"), "Dataset");
        assert_eq!(resource_type_general("Journal Article"), "JournalArticle");
        assert_eq!(resource_type_general("Ice core samples"), "Dataset");
    }
}
